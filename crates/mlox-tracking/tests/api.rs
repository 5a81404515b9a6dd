//! The MLflow REST surface over a real SQLite store: the status and body every kind of bad
//! request gets, the shapes of key successful answers, and the rule that no input, however
//! malformed, makes the server answer 5xx.

// Helpers outside `#[test]` functions panic too; in a test that is the failure report.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use mlox_store::{SqlStore, StoreOptions};
use mlox_tracking::{AppState, ServerSettings, router};
use serde_json::{Value, json};
use tower::ServiceExt;

const API: &str = "/api/2.0/mlflow";
const DOCS_HINT: &str = "See the API docs for more information about request parameters.";

struct Api {
    _dir: tempfile::TempDir,
    app: Router,
}

struct Reply {
    status: StatusCode,
    body: Value,
    raw: String,
}

async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::open(StoreOptions {
        uri: format!("sqlite:///{}/t.db", dir.path().display()),
        default_artifact_root: "mlflow-artifacts:".into(),
        max_connections: 4,
    })
    .await
    .unwrap();
    let state = AppState {
        store,
        settings: Arc::new(ServerSettings {
            serve_artifacts: false,
            api_version: "3.5.0".into(),
            store_type: "SqlStore".into(),
            webhook_policy: mlox_webhooks::UrlPolicy::default(),
            artifact_host_policy: Default::default(),
        }),
        artifacts: mlox_tracking::ArtifactLocations::default(),
    };
    Api {
        _dir: dir,
        app: router(state),
    }
}

impl Api {
    async fn send(&self, method: Method, uri: &str, body: Option<String>) -> Reply {
        let mut request = Request::builder().method(method).uri(uri);
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let raw = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply { status, body, raw }
    }

    async fn get(&self, path_and_query: &str) -> Reply {
        self.send(Method::GET, &format!("{API}{path_and_query}"), None)
            .await
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(
            Method::POST,
            &format!("{API}{path}"),
            Some(body.to_string()),
        )
        .await
    }

    async fn post_raw(&self, path: &str, body: &str) -> Reply {
        self.send(
            Method::POST,
            &format!("{API}{path}"),
            Some(body.to_string()),
        )
        .await
    }

    /// Sends a request that must succeed and returns its body.
    async fn ok(&self, method: Method, path: &str, body: Value) -> Value {
        let reply = if method == Method::GET {
            self.get(path).await
        } else {
            self.send(method, &format!("{API}{path}"), Some(body.to_string()))
                .await
        };
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.raw);
        reply.body
    }

    async fn create_run(&self, experiment_id: &str) -> String {
        let body = self
            .ok(
                Method::POST,
                "/runs/create",
                json!({ "experiment_id": experiment_id, "start_time": 1 }),
            )
            .await;
        body["run"]["info"]["run_id"].as_str().unwrap().to_string()
    }
}

/// Asserts the reply is a 4xx with MLflow's error shape and returns its body.
#[track_caller]
fn error(reply: &Reply, status: StatusCode) -> &Value {
    assert_eq!(reply.status, status, "{}", reply.raw);
    let keys: Vec<&String> = reply.body.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 2, "{}", reply.raw);
    assert!(reply.body["error_code"].is_string() && reply.body["message"].is_string());
    &reply.body
}

// ------------------------------------------------------------------------- 404s

#[tokio::test]
async fn a_missing_run_is_404_resource_does_not_exist() {
    let api = api().await;
    let reply = api.get("/runs/get?run_id=0123abcd").await;
    insta::assert_json_snapshot!(error(&reply, StatusCode::NOT_FOUND), @r#"
    {
      "error_code": "RESOURCE_DOES_NOT_EXIST",
      "message": "Run with id=0123abcd not found"
    }
    "#);
    let reply = api
        .post(
            "/runs/log-parameter",
            json!({"run_id": "0123abcd", "key": "k", "value": "v"}),
        )
        .await;
    assert_eq!(
        error(&reply, StatusCode::NOT_FOUND)["message"],
        "Run with id=0123abcd not found"
    );
}

#[tokio::test]
async fn a_missing_experiment_is_404_resource_does_not_exist() {
    let api = api().await;
    let reply = api.get("/experiments/get?experiment_id=42").await;
    insta::assert_json_snapshot!(error(&reply, StatusCode::NOT_FOUND), @r#"
    {
      "error_code": "RESOURCE_DOES_NOT_EXIST",
      "message": "No Experiment with id=42 exists"
    }
    "#);
    let reply = api
        .get("/experiments/get-by-name?experiment_name=nowhere")
        .await;
    insta::assert_json_snapshot!(error(&reply, StatusCode::NOT_FOUND), @r#"
    {
      "error_code": "RESOURCE_DOES_NOT_EXIST",
      "message": "Could not find experiment with name 'nowhere'"
    }
    "#);
}

#[tokio::test]
async fn a_missing_registered_model_or_version_is_404_resource_does_not_exist() {
    let api = api().await;
    let reply = api.get("/registered-models/get?name=nope").await;
    insta::assert_json_snapshot!(error(&reply, StatusCode::NOT_FOUND), @r#"
    {
      "error_code": "RESOURCE_DOES_NOT_EXIST",
      "message": "Registered Model with name=nope not found"
    }
    "#);

    api.ok(
        Method::POST,
        "/registered-models/create",
        json!({"name": "m"}),
    )
    .await;
    let reply = api.get("/model-versions/get?name=m&version=3").await;
    insta::assert_json_snapshot!(error(&reply, StatusCode::NOT_FOUND), @r#"
    {
      "error_code": "RESOURCE_DOES_NOT_EXIST",
      "message": "Model Version (name=m, version=3) not found"
    }
    "#);
    let reply = api.get("/model-versions/get?name=nope&version=1").await;
    assert_eq!(
        error(&reply, StatusCode::NOT_FOUND)["message"],
        "Model Version (name=nope, version=1) not found"
    );
}

#[tokio::test]
async fn an_unknown_route_is_a_404_json_error() {
    let api = api().await;
    let reply = api.get("/experiments/frobnicate").await;
    insta::assert_json_snapshot!(error(&reply, StatusCode::NOT_FOUND), @r#"
    {
      "error_code": "ENDPOINT_NOT_FOUND",
      "message": "No API endpoint at '/api/2.0/mlflow/experiments/frobnicate'."
    }
    "#);
    let reply = api.send(Method::GET, "/no/such/thing", None).await;
    assert_eq!(
        error(&reply, StatusCode::NOT_FOUND)["error_code"],
        "ENDPOINT_NOT_FOUND"
    );
    let reply = api
        .send(Method::GET, "/ajax-api/2.0/mlflow/nope", None)
        .await;
    assert_eq!(
        error(&reply, StatusCode::NOT_FOUND)["error_code"],
        "ENDPOINT_NOT_FOUND"
    );
}

#[tokio::test]
async fn a_known_route_with_the_wrong_method_is_405() {
    let api = api().await;
    for (method, path) in [
        (Method::GET, "/experiments/create"),
        (Method::POST, "/runs/get"),
        (Method::PUT, "/runs/search"),
        (Method::GET, "/registered-models/delete"),
    ] {
        let reply = api
            .send(method.clone(), &format!("{API}{path}"), None)
            .await;
        assert_eq!(
            reply.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {}",
            reply.raw
        );
        assert_eq!(
            error(&reply, StatusCode::METHOD_NOT_ALLOWED)["error_code"],
            "ENDPOINT_NOT_FOUND",
            "{method} {path}"
        );
    }
}

// ------------------------------------------------------------------------- 400s

#[tokio::test]
async fn a_duplicate_experiment_is_400_resource_already_exists() {
    let api = api().await;
    api.ok(Method::POST, "/experiments/create", json!({"name": "dup"}))
        .await;
    let reply = api
        .post("/experiments/create", json!({"name": "dup"}))
        .await;
    insta::assert_json_snapshot!(error(&reply, StatusCode::BAD_REQUEST), @r#"
    {
      "error_code": "RESOURCE_ALREADY_EXISTS",
      "message": "Experiment(name=dup) already exists."
    }
    "#);
}

#[tokio::test]
async fn a_duplicate_registered_model_is_400_resource_already_exists() {
    let api = api().await;
    api.ok(
        Method::POST,
        "/registered-models/create",
        json!({"name": "dup"}),
    )
    .await;
    let reply = api
        .post("/registered-models/create", json!({"name": "dup"}))
        .await;
    insta::assert_json_snapshot!(error(&reply, StatusCode::BAD_REQUEST), @r#"
    {
      "error_code": "RESOURCE_ALREADY_EXISTS",
      "message": "Registered Model (name=dup) already exists."
    }
    "#);
}

#[tokio::test]
async fn an_unparsable_search_filter_is_400_invalid_parameter_value() {
    let api = api().await;
    let reply = api
        .post(
            "/runs/search",
            json!({"experiment_ids": ["0"], "filter": "metrics.acc >"}),
        )
        .await;
    let body = error(&reply, StatusCode::BAD_REQUEST);
    assert_eq!(body["error_code"], "INVALID_PARAMETER_VALUE");
    let reply = api
        .post(
            "/runs/search",
            json!({"experiment_ids": ["0"], "filter": "colour = 'red'"}),
        )
        .await;
    assert_eq!(
        error(&reply, StatusCode::BAD_REQUEST)["error_code"],
        "INVALID_PARAMETER_VALUE"
    );
    let reply = api
        .get("/registered-models/search?filter=name%20%3D%3D%3D%20x")
        .await;
    assert_eq!(
        error(&reply, StatusCode::BAD_REQUEST)["error_code"],
        "INVALID_PARAMETER_VALUE"
    );
}

#[tokio::test]
async fn a_non_integer_experiment_id_is_400_invalid_parameter_value() {
    let api = api().await;
    let reply = api.get("/experiments/get?experiment_id=abc").await;
    insta::assert_json_snapshot!(error(&reply, StatusCode::BAD_REQUEST), @r#"
    {
      "error_code": "INVALID_PARAMETER_VALUE",
      "message": "Invalid experiment ID 'abc'. Experiment ID must be a valid integer."
    }
    "#);
    let reply = api
        .post("/runs/create", json!({"experiment_id": "one"}))
        .await;
    assert_eq!(
        error(&reply, StatusCode::BAD_REQUEST)["error_code"],
        "INVALID_PARAMETER_VALUE"
    );
}

#[tokio::test]
async fn a_missing_required_parameter_is_named_and_points_to_the_api_docs() {
    let api = api().await;
    let reply = api.post("/experiments/create", json!({})).await;
    insta::assert_json_snapshot!(error(&reply, StatusCode::BAD_REQUEST), @r#"
    {
      "error_code": "INVALID_PARAMETER_VALUE",
      "message": "Missing value for required parameter 'name'. See the API docs for more information about request parameters."
    }
    "#);
    for (method, path, body, param) in [
        (Method::GET, "/runs/get", None, "run_id"),
        (Method::GET, "/experiments/get", None, "experiment_id"),
        (
            Method::GET,
            "/metrics/get-history?run_id=abc",
            None,
            "metric_key",
        ),
        (Method::POST, "/runs/log-metric", Some(json!({})), "run_id"),
        (
            Method::POST,
            "/registered-models/create",
            Some(json!({"name": ""})),
            "name",
        ),
        (
            Method::POST,
            "/experiments/set-experiment-tag",
            Some(json!({"experiment_id": "0"})),
            "key",
        ),
    ] {
        let reply = match body {
            None => api.get(path).await,
            Some(b) => {
                api.send(method, &format!("{API}{path}"), Some(b.to_string()))
                    .await
            }
        };
        let message = error(&reply, StatusCode::BAD_REQUEST)["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            message.starts_with(&format!("Missing value for required parameter '{param}'."))
                && message.ends_with(DOCS_HINT),
            "{path}: {message}"
        );
    }
}

#[tokio::test]
async fn a_malformed_json_body_is_400_invalid_parameter_value() {
    let api = api().await;
    let reply = api.post_raw("/experiments/create", "{\"name\": ").await;
    insta::assert_json_snapshot!(error(&reply, StatusCode::BAD_REQUEST), @r#"
    {
      "error_code": "INVALID_PARAMETER_VALUE",
      "message": "Malformed JSON request body: EOF while parsing a value at line 1 column 9"
    }
    "#);
}

#[tokio::test]
async fn a_json_body_that_is_not_an_object_is_400_invalid_parameter_value() {
    let api = api().await;
    for body in ["[1, 2]", "\"name\"", "7", "null"] {
        let reply = api.post_raw("/experiments/create", body).await;
        assert_eq!(
            error(&reply, StatusCode::BAD_REQUEST),
            &json!({
                "error_code": "INVALID_PARAMETER_VALUE",
                "message": "The request body must be a JSON object."
            }),
            "{body}"
        );
    }
}

#[tokio::test]
async fn a_field_of_the_wrong_type_is_400_invalid_parameter_value() {
    let api = api().await;
    let reply = api
        .post("/experiments/create", json!({"name": ["a", "list"]}))
        .await;
    let body = error(&reply, StatusCode::BAD_REQUEST);
    assert_eq!(body["error_code"], "INVALID_PARAMETER_VALUE");
    assert_eq!(
        body["message"],
        "Invalid value [\"a\",\"list\"] for parameter 'name' supplied:  Hint: Value was of \
         type 'list'. See the API docs for more information about request parameters.",
        "{body}"
    );
}

#[tokio::test]
async fn a_log_batch_over_the_metric_limit_is_400_and_logs_nothing() {
    let api = api().await;
    let run = api.create_run("0").await;
    let metrics: Vec<Value> = (0..1001)
        .map(|i| json!({"key": "m", "value": i, "timestamp": i, "step": i}))
        .collect();
    let reply = api
        .post(
            "/runs/log-batch",
            json!({"run_id": run, "metrics": metrics}),
        )
        .await;
    insta::assert_json_snapshot!(error(&reply, StatusCode::BAD_REQUEST), @r#"
    {
      "error_code": "INVALID_PARAMETER_VALUE",
      "message": "A batch logging request can contain at most 1000 metrics. Got 1001 metrics. Please split up metrics across multiple requests and try again."
    }
    "#);
    let history = api
        .ok(
            Method::GET,
            &format!("/metrics/get-history?run_id={run}&metric_key=m"),
            Value::Null,
        )
        .await;
    assert_eq!(history["metrics"], json!([]));
}

#[tokio::test]
async fn an_unknown_view_type_is_400_invalid_parameter_value() {
    let api = api().await;
    let reply = api
        .post("/experiments/search", json!({"view_type": "SOMETIMES"}))
        .await;
    insta::assert_json_snapshot!(error(&reply, StatusCode::BAD_REQUEST), @r#"
    {
      "error_code": "INVALID_PARAMETER_VALUE",
      "message": "Invalid view type 'SOMETIMES'. Expected one of ACTIVE_ONLY, DELETED_ONLY, ALL."
    }
    "#);
    let reply = api
        .get("/runs/search?experiment_ids=0&run_view_type=NEVER")
        .await;
    assert_eq!(
        error(&reply, StatusCode::BAD_REQUEST)["error_code"],
        "INVALID_PARAMETER_VALUE"
    );
}

#[tokio::test]
async fn an_undecodable_page_token_is_400_invalid_parameter_value() {
    let api = api().await;
    let reply = api
        .post(
            "/runs/search",
            json!({"experiment_ids": ["0"], "page_token": "not-a-token"}),
        )
        .await;
    insta::assert_json_snapshot!(error(&reply, StatusCode::BAD_REQUEST), @r#"
    {
      "error_code": "INVALID_PARAMETER_VALUE",
      "message": "Invalid page token, could not base64-decode: 'not-a-token'"
    }
    "#);
    // Valid base64 of something that is not a token is refused too.
    let reply = api
        .get("/registered-models/search?page_token=eyJ4IjoxfQ%3D%3D")
        .await;
    assert_eq!(
        error(&reply, StatusCode::BAD_REQUEST)["error_code"],
        "INVALID_PARAMETER_VALUE"
    );
}

// ---------------------------------------------------------------- request forms

#[tokio::test]
async fn a_get_query_string_with_repeated_keys_means_the_same_as_a_post_json_body() {
    let api = api().await;
    let exp = api
        .ok(Method::POST, "/experiments/create", json!({"name": "e"}))
        .await["experiment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let in_default = api.create_run("0").await;
    let in_exp = api.create_run(&exp).await;

    let run_ids = |body: &Value| {
        let mut ids: Vec<String> = body["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["info"]["run_id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    let mut both = vec![in_default.clone(), in_exp.clone()];
    both.sort();

    let by_get = api
        .ok(
            Method::GET,
            &format!("/runs/search?experiment_ids=0&experiment_ids={exp}"),
            Value::Null,
        )
        .await;
    let by_post = api
        .ok(
            Method::POST,
            "/runs/search",
            json!({"experiment_ids": ["0", exp]}),
        )
        .await;
    assert_eq!(run_ids(&by_get), both);
    assert_eq!(by_get, by_post);

    // A single key is a one-element list.
    let one = api
        .ok(
            Method::GET,
            &format!("/runs/search?experiment_ids={exp}"),
            Value::Null,
        )
        .await;
    assert_eq!(run_ids(&one), vec![in_exp.clone()]);

    // Query values are percent-decoded, `+` included.
    let filtered = api
        .ok(
            Method::GET,
            &format!(
                "/runs/search?experiment_ids=0&experiment_ids={exp}&filter=attributes.run_id+%3D+%27{in_exp}%27"
            ),
            Value::Null,
        )
        .await;
    assert_eq!(run_ids(&filtered), vec![in_exp]);
}

#[tokio::test]
async fn every_api_prefix_serves_the_same_routes() {
    let api = api().await;
    for prefix in [
        "/api/2.0/mlflow",
        "/ajax-api/2.0/mlflow",
        "/api/3.0/mlflow",
        "/ajax-api/3.0/mlflow",
    ] {
        let reply = api
            .send(
                Method::GET,
                &format!("{prefix}/experiments/get?experiment_id=0"),
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{prefix}");
        assert_eq!(reply.body["experiment"]["name"], "Default");
    }
}

// ------------------------------------------------------------- success shapes

#[tokio::test]
async fn experiment_create_and_get_answer_in_mlflows_shape() {
    let api = api().await;
    let created = api
        .ok(
            Method::POST,
            "/experiments/create",
            json!({"name": "shape", "tags": [{"key": "team", "value": "ml"}]}),
        )
        .await;
    insta::assert_json_snapshot!(created, @r#"
    {
      "experiment_id": "1"
    }
    "#);
    let got = api.get("/experiments/get?experiment_id=1").await;
    insta::assert_json_snapshot!(got.body, {
        ".experiment.creation_time" => "[ms]",
        ".experiment.last_update_time" => "[ms]",
    }, @r#"
    {
      "experiment": {
        "artifact_location": "mlflow-artifacts:/1",
        "creation_time": "[ms]",
        "experiment_id": "1",
        "last_update_time": "[ms]",
        "lifecycle_stage": "active",
        "name": "shape",
        "tags": [
          {
            "key": "team",
            "value": "ml"
          }
        ]
      }
    }
    "#);
}

#[tokio::test]
async fn run_create_log_and_get_answer_in_mlflows_shape() {
    let api = api().await;
    let created = api
        .ok(
            Method::POST,
            "/runs/create",
            json!({"experiment_id": "0", "run_name": "shape", "start_time": 1700000000000_i64, "user_id": "me"}),
        )
        .await;
    let run_id = created["run"]["info"]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    api.ok(
        Method::POST,
        "/runs/log-batch",
        json!({
            "run_id": run_id,
            "metrics": [{"key": "loss", "value": 0.25, "timestamp": 5, "step": 2}],
            "params": [{"key": "lr", "value": "0.1"}],
        }),
    )
    .await;
    let got = api.get(&format!("/runs/get?run_id={run_id}")).await;
    insta::assert_json_snapshot!(got.body, {
        ".run.info.run_id" => "[id]",
        ".run.info.run_uuid" => "[id]",
        ".run.info.artifact_uri" => "[artifact_uri]",
    }, @r#"
    {
      "run": {
        "data": {
          "metrics": [
            {
              "key": "loss",
              "step": 2,
              "timestamp": 5,
              "value": 0.25
            }
          ],
          "params": [
            {
              "key": "lr",
              "value": "0.1"
            }
          ],
          "tags": [
            {
              "key": "mlflow.runName",
              "value": "shape"
            }
          ]
        },
        "info": {
          "artifact_uri": "[artifact_uri]",
          "experiment_id": "0",
          "lifecycle_stage": "active",
          "run_id": "[id]",
          "run_name": "shape",
          "run_uuid": "[id]",
          "start_time": 1700000000000,
          "status": "RUNNING",
          "user_id": "me"
        },
        "inputs": {}
      }
    }
    "#);
    assert_eq!(
        got.body["run"]["info"]["artifact_uri"],
        format!("mlflow-artifacts:/0/{run_id}/artifacts")
    );
}

#[tokio::test]
async fn registered_model_and_version_answer_in_mlflows_shape() {
    let api = api().await;
    api.ok(
        Method::POST,
        "/registered-models/create",
        json!({"name": "shape", "description": "d"}),
    )
    .await;
    let version = api
        .ok(
            Method::POST,
            "/model-versions/create",
            json!({"name": "shape", "source": "s3://bucket/model"}),
        )
        .await;
    insta::assert_json_snapshot!(version, {
        ".model_version.creation_timestamp" => "[ms]",
        ".model_version.last_updated_timestamp" => "[ms]",
    }, @r#"
    {
      "model_version": {
        "creation_timestamp": "[ms]",
        "current_stage": "None",
        "description": "",
        "last_updated_timestamp": "[ms]",
        "name": "shape",
        "run_id": "",
        "run_link": "",
        "source": "s3://bucket/model",
        "status": "READY",
        "version": "1"
      }
    }
    "#);
    let model = api.get("/registered-models/get?name=shape").await;
    insta::assert_json_snapshot!(model.body, {
        ".**.creation_timestamp" => "[ms]",
        ".**.last_updated_timestamp" => "[ms]",
    }, @r#"
    {
      "registered_model": {
        "creation_timestamp": "[ms]",
        "description": "d",
        "last_updated_timestamp": "[ms]",
        "latest_versions": [
          {
            "creation_timestamp": "[ms]",
            "current_stage": "None",
            "description": "",
            "last_updated_timestamp": "[ms]",
            "name": "shape",
            "run_id": "",
            "run_link": "",
            "source": "s3://bucket/model",
            "status": "READY",
            "version": "1"
          }
        ],
        "name": "shape"
      }
    }
    "#);
}

#[tokio::test]
async fn non_finite_metric_values_travel_as_mlflows_strings() {
    let api = api().await;
    let run = api.create_run("0").await;
    for (step, value) in [
        (0, json!("NaN")),
        (1, json!("Infinity")),
        (2, json!("-Infinity")),
    ] {
        api.ok(
            Method::POST,
            "/runs/log-metric",
            json!({"run_id": run, "key": "m", "value": value, "timestamp": 10, "step": step}),
        )
        .await;
    }
    let history = api
        .get(&format!("/metrics/get-history?run_id={run}&metric_key=m"))
        .await;
    insta::assert_json_snapshot!(history.body, @r#"
    {
      "metrics": [
        {
          "key": "m",
          "step": 0,
          "timestamp": 10,
          "value": "NaN"
        },
        {
          "key": "m",
          "step": 1,
          "timestamp": 10,
          "value": "Infinity"
        },
        {
          "key": "m",
          "step": 2,
          "timestamp": 10,
          "value": "-Infinity"
        }
      ]
    }
    "#);
}

#[tokio::test]
async fn changing_a_logged_param_is_400_with_mlflows_message() {
    let api = api().await;
    let run = api.create_run("0").await;
    api.ok(
        Method::POST,
        "/runs/log-parameter",
        json!({"run_id": run, "key": "lr", "value": "0.1"}),
    )
    .await;
    let reply = api
        .post(
            "/runs/log-parameter",
            json!({"run_id": run, "key": "lr", "value": "0.2"}),
        )
        .await;
    let body = error(&reply, StatusCode::BAD_REQUEST).clone();
    insta::assert_json_snapshot!(body, {".message" => insta::dynamic_redaction({
        let run = run.clone();
        move |value, _| value.as_str().unwrap().replace(&run, "[run_id]")
    })}, @r#"
    {
      "error_code": "INVALID_PARAMETER_VALUE",
      "message": "Changing param values is not allowed. Param with key='lr' was already logged with value='0.1' for run ID='[run_id]'. Attempted logging new value '0.2'."
    }
    "#);
}

// ------------------------------------------------------------------ never a 5xx

/// Every route that takes a body, with its method; `{id}` stands for a path segment.
const BODY_ROUTES: &[(&str, &str)] = &[
    ("POST", "/experiments/create"),
    ("POST", "/experiments/search"),
    ("POST", "/experiments/update"),
    ("POST", "/experiments/delete"),
    ("POST", "/experiments/restore"),
    ("POST", "/experiments/set-experiment-tag"),
    ("POST", "/experiments/delete-experiment-tag"),
    ("POST", "/experiments/search-datasets"),
    ("POST", "/runs/create"),
    ("POST", "/runs/update"),
    ("POST", "/runs/delete"),
    ("POST", "/runs/restore"),
    ("POST", "/runs/log-metric"),
    ("POST", "/runs/log-parameter"),
    ("POST", "/runs/log-batch"),
    ("POST", "/runs/set-tag"),
    ("POST", "/runs/delete-tag"),
    ("POST", "/runs/log-inputs"),
    ("POST", "/runs/outputs"),
    ("POST", "/runs/log-model"),
    ("POST", "/runs/search"),
    ("POST", "/logged-models"),
    ("POST", "/logged-models/search"),
    ("PATCH", "/logged-models/{id}"),
    ("DELETE", "/logged-models/{id}"),
    ("PATCH", "/logged-models/{id}/tags"),
    ("DELETE", "/logged-models/{id}/tags/{id}"),
    ("POST", "/logged-models/{id}/params"),
    ("POST", "/traces"),
    ("POST", "/traces/search"),
    ("POST", "/traces/delete-traces"),
    ("PATCH", "/traces/{id}/tags"),
    ("DELETE", "/traces/{id}/tags"),
    ("POST", "/traces/{id}/assessments"),
    ("POST", "/registered-models/create"),
    ("POST", "/registered-models/rename"),
    ("PATCH", "/registered-models/update"),
    ("DELETE", "/registered-models/delete"),
    ("POST", "/registered-models/search"),
    ("POST", "/registered-models/get-latest-versions"),
    ("POST", "/registered-models/set-tag"),
    ("DELETE", "/registered-models/delete-tag"),
    ("POST", "/registered-models/alias"),
    ("DELETE", "/registered-models/alias"),
    ("POST", "/model-versions/create"),
    ("PATCH", "/model-versions/update"),
    ("DELETE", "/model-versions/delete"),
    ("POST", "/model-versions/search"),
    ("POST", "/model-versions/transition-stage"),
    ("POST", "/model-versions/set-tag"),
    ("DELETE", "/model-versions/delete-tag"),
    ("POST", "/webhooks"),
    ("POST", "/webhooks/{id}/test"),
    ("POST", "/datasets/create"),
    ("POST", "/datasets/search"),
    ("DELETE", "/datasets/{id}"),
    ("POST", "/datasets/{id}/records"),
    ("DELETE", "/datasets/{id}/records"),
    ("PATCH", "/datasets/{id}/tags"),
    ("DELETE", "/datasets/{id}/tags/{id}"),
    ("POST", "/datasets/{id}/add-experiments"),
    ("POST", "/datasets/{id}/remove-experiments"),
];

fn garbage_bodies(run_id: &str) -> Vec<String> {
    let mut bodies: Vec<String> = [
        "",
        "{",
        "}",
        "[]",
        "[{}]",
        "null",
        "true",
        "-1",
        "\"text\"",
        "{}",
        "{\"\u{0}\": 1}",
        "\u{feff}{}",
        "{\"a\": 1e999}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for value in [
        json!(null),
        json!(-1),
        json!(9_223_372_036_854_775_807_i64),
        json!(1.5e300),
        json!(""),
        json!("../../etc/passwd"),
        json!("x".repeat(10_000)),
        json!([]),
        json!({}),
        json!([1, "two", null]),
        json!(true),
    ] {
        bodies.push(
            json!({
                "name": value, "experiment_id": value, "experiment_ids": value,
                "run_id": value, "run_uuid": value, "key": value, "value": value,
                "version": value, "source": value, "filter": value, "max_results": value,
                "page_token": value, "order_by": value, "view_type": value,
                "run_view_type": value, "tags": value, "metrics": value, "params": value,
                "timestamp": value, "step": value, "status": value, "stage": value,
                "alias": value, "new_name": value, "datasets": value, "models": value,
                "url": value, "events": value, "trace_ids": value, "model_id": value,
            })
            .to_string(),
        );
    }
    // Well-typed requests aimed at a real run with hostile values.
    for (key, value) in [
        (
            "metrics",
            json!([{"key": "", "value": "NaN", "timestamp": -1, "step": -1}]),
        ),
        (
            "metrics",
            json!([{"key": "m", "value": "x", "timestamp": 1}]),
        ),
        ("params", json!([{"key": "../p", "value": "v"}])),
        ("tags", json!([{"key": "t"}])),
        ("max_results", json!(-5)),
        ("max_results", json!(0)),
        ("filter", json!("metrics.x > 1 AND AND")),
        ("order_by", json!(["metrics.`x DESC"])),
        ("page_token", json!("eyJvZmZzZXQiOi0xfQ==")),
    ] {
        bodies.push(
            json!({
                "run_id": run_id, "experiment_id": "0", "experiment_ids": ["0"],
                "name": "m", "version": "1", key: value,
            })
            .to_string(),
        );
    }
    bodies
}

#[tokio::test]
async fn no_malformed_request_ever_gets_a_server_error() {
    let api = api().await;
    let run_id = api.create_run("0").await;
    api.ok(
        Method::POST,
        "/registered-models/create",
        json!({"name": "m"}),
    )
    .await;
    api.ok(
        Method::POST,
        "/model-versions/create",
        json!({"name": "m", "source": "s3://b/m"}),
    )
    .await;
    let bodies = garbage_bodies(&run_id);
    let mut checked = 0;
    for (method, route) in BODY_ROUTES {
        for segment in ["x", &run_id, "m-00000000000000000000000000000000"] {
            let path = format!("{API}{}", route.replace("{id}", segment));
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            for body in &bodies {
                let reply = api.send(method.clone(), &path, Some(body.clone())).await;
                assert!(
                    reply.status.as_u16() < 500,
                    "{method} {path} with {body:.200} answered {}: {}",
                    reply.status,
                    reply.raw
                );
                checked += 1;
            }
            if !route.contains("{id}") {
                break;
            }
        }
    }
    assert!(checked > 1000, "{checked}");
}

#[tokio::test]
async fn no_malformed_query_string_ever_gets_a_server_error() {
    let api = api().await;
    let run_id = api.create_run("0").await;
    for path in [
        "/experiments/get",
        "/experiments/get-by-name",
        "/experiments/search",
        "/runs/get",
        "/runs/search",
        "/metrics/get-history",
        "/metrics/get-history-bulk",
        "/metrics/get-history-bulk-interval",
        "/registered-models/get",
        "/registered-models/search",
        "/registered-models/get-latest-versions",
        "/registered-models/alias",
        "/model-versions/get",
        "/model-versions/search",
        "/model-versions/get-download-uri",
        "/model-versions/get-artifact",
        "/artifacts/list",
        "/logged-models/m-00000000000000000000000000000000/artifacts/directories",
        "/logged-models/m-00000000000000000000000000000000/artifacts/files",
        "/traces/get",
        "/traces/batchGet",
        "/traces/search",
        "/webhooks",
        "/datasets/search",
        "/datasets/x",
        "/datasets/x/records",
        "/datasets/x/experiment-ids",
    ] {
        for query in [
            String::new(),
            "?".into(),
            "?=&&=".into(),
            "?experiment_id=%FF%FE".into(),
            "?experiment_id=99999999999999999999999".into(),
            format!("?run_id={run_id}&metric_key=m&max_results=-1"),
            format!("?run_ids={run_id}&metric_key=m&max_results=99999999"),
            format!("?run_id={run_id}&metric_key=m&page_token=%%%"),
            "?name=m&version=abc&alias=latest".into(),
            "?max_results=abc&filter=%27&order_by=%60".into(),
            "?experiment_ids=x&experiment_ids=&view_type=3&run_view_type=9".into(),
        ] {
            let uri = format!("{API}{path}{query}");
            let reply = api.send(Method::GET, &uri, None).await;
            assert!(
                reply.status.as_u16() < 500,
                "GET {uri} answered {}: {}",
                reply.status,
                reply.raw
            );
        }
    }
}

#[tokio::test]
async fn otlp_spans_are_kept_and_come_back_with_their_trace() {
    let api = api().await;
    api.ok(Method::POST, "/experiments/create", json!({"name": "otlp"}))
        .await;
    let export = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "0123456789abcdef0123456789abcdef",
        "spanId": "0011223344556677",
        "name": "root",
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000001500000000",
        "attributes": [
            {"key": "openinference.span.kind", "value": {"stringValue": "LLM"}},
            {"key": "input.value", "value": {"stringValue": "Hello"}},
            {"key": "llm.token_count.prompt", "value": {"intValue": "12"}},
            {"key": "llm.token_count.completion", "value": {"intValue": "3"}}
        ],
        "status": {"code": 1}
    }]}]}]});
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/traces")
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-mlflow-experiment-id", "1")
        .body(Body::from(export.to_string()))
        .unwrap();
    let response = api.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/x-protobuf"
    );

    let trace = api
        .send(
            Method::GET,
            "/api/3.0/mlflow/traces/get?trace_id=tr-0123456789abcdef0123456789abcdef",
            None,
        )
        .await;
    assert_eq!(trace.status, StatusCode::OK, "{}", trace.raw);
    insta::assert_json_snapshot!(trace.body, @r#"
    {
      "trace": {
        "spans": [
          {
            "attributes": [
              {
                "key": "input.value",
                "value": {
                  "string_value": "Hello"
                }
              },
              {
                "key": "llm.token_count.completion",
                "value": {
                  "int_value": 3
                }
              },
              {
                "key": "llm.token_count.prompt",
                "value": {
                  "int_value": 12
                }
              },
              {
                "key": "mlflow.chat.tokenUsage",
                "value": {
                  "kvlist_value": {
                    "values": [
                      {
                        "key": "input_tokens",
                        "value": {
                          "int_value": 12
                        }
                      },
                      {
                        "key": "output_tokens",
                        "value": {
                          "int_value": 3
                        }
                      },
                      {
                        "key": "total_tokens",
                        "value": {
                          "int_value": 15
                        }
                      }
                    ]
                  }
                }
              },
              {
                "key": "mlflow.spanInputs",
                "value": {
                  "string_value": "Hello"
                }
              },
              {
                "key": "mlflow.spanType",
                "value": {
                  "string_value": "LLM"
                }
              },
              {
                "key": "mlflow.traceRequestId",
                "value": {
                  "string_value": "tr-0123456789abcdef0123456789abcdef"
                }
              },
              {
                "key": "openinference.span.kind",
                "value": {
                  "string_value": "LLM"
                }
              }
            ],
            "end_time_unix_nano": 1700000001500000000,
            "events": [],
            "name": "root",
            "span_id": "ABEiM0RVZnc=",
            "start_time_unix_nano": 1700000000000000000,
            "status": {
              "code": "STATUS_CODE_OK",
              "message": ""
            },
            "trace_id": "ASNFZ4mrze8BI0VniavN7w=="
          }
        ],
        "trace_info": {
          "execution_duration": "1.500s",
          "request_preview": "\"Hello\"",
          "request_time": "2023-11-14T22:13:20.000Z",
          "state": "OK",
          "tags": {
            "mlflow.artifactLocation": "mlflow-artifacts:/1/traces/tr-0123456789abcdef0123456789abcdef/artifacts",
            "mlflow.trace.spansLocation": "TRACKING_STORE"
          },
          "trace_id": "tr-0123456789abcdef0123456789abcdef",
          "trace_location": {
            "mlflow_experiment": {
              "experiment_id": "1"
            },
            "type": "MLFLOW_EXPERIMENT"
          },
          "trace_metadata": {
            "mlflow.trace.tokenUsage": "{\"input_tokens\": 12, \"output_tokens\": 3, \"total_tokens\": 15}"
          }
        }
      }
    }
    "#);
}

// ------------------------------------------------------------------- web UI reads

#[tokio::test]
async fn metric_history_bulk_is_ordered_by_run_then_time_and_checks_its_arguments() {
    let api = api().await;
    let mut runs = [api.create_run("0").await, api.create_run("0").await];
    runs.sort();
    for (i, run_id) in runs.iter().enumerate() {
        for (timestamp, step, value) in [(2, 0, 1.0), (1, 5, 2.0), (1, 5, 0.5)] {
            api.ok(
                Method::POST,
                "/runs/log-metric",
                json!({"run_id": run_id, "key": "loss", "value": value + i as f64,
                       "timestamp": timestamp, "step": step}),
            )
            .await;
        }
    }
    let path = format!(
        "/ajax-api/2.0/mlflow/metrics/get-history-bulk?run_id={}&run_id={}&metric_key=loss",
        runs[1], runs[0]
    );
    let reply = api.send(Method::GET, &path, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.raw);
    let points: Vec<(String, i64, i64, f64)> = reply.body["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m.as_object().unwrap().len(), 5, "{m}");
            (
                m["run_id"].as_str().unwrap().to_string(),
                m["timestamp"].as_i64().unwrap(),
                m["step"].as_i64().unwrap(),
                m["value"].as_f64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, i64, i64, f64)> = runs
        .iter()
        .enumerate()
        .flat_map(|(i, run_id)| {
            [(1, 5, 0.5), (1, 5, 2.0), (2, 0, 1.0)]
                .map(|(t, s, v)| (run_id.clone(), t, s, v + i as f64))
        })
        .collect();
    assert_eq!(points, expected);
    let reply = api
        .send(Method::GET, &format!("{path}&max_results=2"), None)
        .await;
    assert_eq!(reply.body["metrics"].as_array().unwrap().len(), 2);

    let bulk = "/ajax-api/2.0/mlflow/metrics/get-history-bulk";
    let too_many: String = (0..101).map(|i| format!("run_id=r{i}&")).collect();
    for (query, message) in [
        (
            "metric_key=loss".to_string(),
            "GetMetricHistoryBulk request must specify at least one run_id.",
        ),
        (
            format!("{too_many}metric_key=loss"),
            "GetMetricHistoryBulk request cannot specify more than 100 run_ids. Received 101 run_ids.",
        ),
        (
            "run_id=r".to_string(),
            "GetMetricHistoryBulk request must specify a metric_key.",
        ),
    ] {
        let reply = api
            .send(Method::GET, &format!("{bulk}?{query}"), None)
            .await;
        let body = error(&reply, StatusCode::BAD_REQUEST);
        assert_eq!(body["error_code"], "INVALID_PARAMETER_VALUE");
        assert_eq!(body["message"], message);
    }
}

#[tokio::test]
async fn dataset_summaries_list_each_dataset_with_its_context_once() {
    let api = api().await;
    let run_id = api.create_run("0").await;
    let input = |name: &str, context: Option<&str>| {
        let tags = context.map_or(
            json!([]),
            |c| json!([{"key": "mlflow.data.context", "value": c}]),
        );
        json!({"tags": tags, "dataset": {"name": name, "digest": "d1", "source_type": "local", "source": "{}"}})
    };
    api.ok(
        Method::POST,
        "/runs/log-inputs",
        json!({"run_id": run_id, "datasets": [input("train", Some("training")), input("raw", None)]}),
    )
    .await;
    let other_run = api.create_run("0").await;
    api.ok(
        Method::POST,
        "/runs/log-inputs",
        json!({"run_id": other_run, "datasets": [input("train", Some("training"))]}),
    )
    .await;
    let path = "/ajax-api/2.0/mlflow/experiments/search-datasets";
    let reply = api
        .send(
            Method::POST,
            path,
            Some(json!({"experiment_ids": ["0"]}).to_string()),
        )
        .await;
    insta::assert_json_snapshot!(reply.body, @r#"
    {
      "dataset_summaries": [
        {
          "digest": "d1",
          "experiment_id": "0",
          "name": "raw"
        },
        {
          "context": "training",
          "digest": "d1",
          "experiment_id": "0",
          "name": "train"
        }
      ]
    }
    "#);
    let created = api
        .ok(
            Method::POST,
            "/experiments/create",
            json!({"name": "empty"}),
        )
        .await;
    let reply = api
        .send(
            Method::POST,
            path,
            Some(json!({"experiment_ids": [created["experiment_id"]]}).to_string()),
        )
        .await;
    assert_eq!(reply.body, json!({}));
    let ids: Vec<String> = (0..21).map(|i| i.to_string()).collect();
    for (body, message) in [
        (
            json!({}),
            "SearchDatasets request must specify at least one experiment_id.",
        ),
        (
            json!({"experiment_ids": ids}),
            "SearchDatasets request cannot specify more than 20 experiment_ids. Received 21 experiment_ids.",
        ),
    ] {
        let reply = api.send(Method::POST, path, Some(body.to_string())).await;
        assert_eq!(error(&reply, StatusCode::BAD_REQUEST)["message"], message);
    }
}

// ------------------------------------------------------------------ logged models

#[tokio::test]
async fn a_logged_model_may_name_a_source_run_this_server_does_not_know() {
    let api = api().await;
    let body = api
        .ok(
            Method::POST,
            "/logged-models",
            json!({"experiment_id": "0", "source_run_id": "123"}),
        )
        .await;
    assert_eq!(body["model"]["info"]["source_run_id"], "123");
}

#[tokio::test]
async fn registering_a_logged_model_lists_the_version_in_its_model_versions_tag() {
    let api = api().await;
    let model = api
        .ok(
            Method::POST,
            "/logged-models",
            json!({"experiment_id": "0"}),
        )
        .await;
    let model_id = model["model"]["info"]["model_id"].as_str().unwrap();
    let location = model["model"]["info"]["artifact_uri"].as_str().unwrap();
    api.ok(
        Method::POST,
        "/registered-models/create",
        json!({"name": "model"}),
    )
    .await;
    let mut tags = Vec::new();
    for _ in 0..2 {
        api.ok(
            Method::POST,
            "/model-versions/create",
            json!({"name": "model", "source": location, "model_id": model_id}),
        )
        .await;
        let body = api.get(&format!("/logged-models/{model_id}")).await.body;
        let tag = body["model"]["info"]["tags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["key"] == "mlflow.modelVersions")
            .map(|t| t["value"].clone());
        tags.push(tag);
    }
    insta::assert_json_snapshot!(tags, @r#"
    [
      "[{\"name\": \"model\", \"version\": 1}]",
      "[{\"name\": \"model\", \"version\": 1}, {\"name\": \"model\", \"version\": 2}]"
    ]
    "#);
}

#[tokio::test]
async fn logged_model_search_keeps_models_with_metrics_on_the_given_datasets() {
    let api = api().await;
    let run_id = api.create_run("0").await;
    let mut ids = Vec::new();
    for (name, dataset, value) in [("a", "eval", 0.9), ("b", "train", 0.8), ("c", "eval", 0.1)] {
        let model = api
            .ok(
                Method::POST,
                "/logged-models",
                json!({"experiment_id": "0", "name": name}),
            )
            .await;
        let model_id = model["model"]["info"]["model_id"]
            .as_str()
            .unwrap()
            .to_string();
        api.ok(
            Method::POST,
            "/runs/log-metric",
            json!({"run_id": run_id, "key": "acc", "value": value, "timestamp": 1,
                   "model_id": model_id, "dataset_name": dataset, "dataset_digest": "123"}),
        )
        .await;
        ids.push(model_id);
    }
    let names = |body: Value| -> Vec<String> {
        let mut names: Vec<String> = body["models"]
            .as_array()
            .map(|models| {
                models
                    .iter()
                    .map(|m| m["info"]["name"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };
    let search = |extra: Value| {
        let mut body = json!({"experiment_ids": ["0"]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let eval = json!([{"dataset_name": "eval", "dataset_digest": "123"}]);
    let found = api
        .ok(
            Method::POST,
            "/logged-models/search",
            search(json!({"datasets": eval})),
        )
        .await;
    assert_eq!(names(found), ["a", "c"]);
    // A metric clause compares the metrics on those datasets only.
    let found = api
        .ok(
            Method::POST,
            "/logged-models/search",
            search(json!({"datasets": [{"dataset_name": "train"}], "filter": "metrics.acc > 0.5"})),
        )
        .await;
    assert_eq!(names(found), ["b"]);
    let found = api
        .ok(
            Method::POST,
            "/logged-models/search",
            search(json!({"datasets": [{"dataset_name": "eval", "dataset_digest": "456"}]})),
        )
        .await;
    assert_eq!(names(found), Vec::<String>::new());
    let reply = api
        .post(
            "/logged-models/search",
            search(json!({"datasets": [{"dataset_digest": "123"}]})),
        )
        .await;
    assert_eq!(
        error(&reply, StatusCode::BAD_REQUEST)["message"],
        "`dataset_name` in the `datasets` clause must be specified."
    );
}

// ------------------------------------------------------------------- experiments

#[tokio::test]
async fn a_relative_artifact_location_is_made_absolute_against_the_working_directory() {
    let api = api().await;
    let cwd = std::env::current_dir().unwrap();
    for (given, stored) in [
        ("my_location", cwd.join("my_location").display().to_string()),
        (
            "file:rel/dir",
            format!("file://{}", cwd.join("rel/dir").display()),
        ),
        ("s3://bucket/key", "s3://bucket/key".to_string()),
    ] {
        let created = api
            .ok(
                Method::POST,
                "/experiments/create",
                json!({"name": given, "artifact_location": given}),
            )
            .await;
        let id = created["experiment_id"].as_str().unwrap();
        let body = api
            .get(&format!("/experiments/get?experiment_id={id}"))
            .await
            .body;
        assert_eq!(body["experiment"]["artifact_location"], stored.as_str());
    }
}

// ------------------------------------------------------------------ request shapes

#[tokio::test]
async fn a_bad_run_id_is_reported_before_the_fields_after_it() {
    let api = api().await;
    let run_id = api.create_run("0").await;
    for (path, body, message) in [
        (
            "/runs/log-metric",
            json!({"run_id": 31, "key": "metric", "value": 41, "timestamp": 59, "step": 26}),
            "Invalid value 31 for parameter 'run_id' supplied",
        ),
        (
            "/runs/log-metric",
            json!({"run_id": run_id, "key": 31, "value": 41, "timestamp": 59}),
            "Invalid value 31 for parameter 'key' supplied",
        ),
        (
            "/runs/log-parameter",
            json!({"run_id": 31, "key": "param", "value": 41}),
            "Invalid value 31 for parameter 'run_id' supplied",
        ),
        (
            "/runs/set-tag",
            json!({"run_id": run_id, "key": "tag", "value": 41}),
            "Invalid value 41 for parameter 'value' supplied",
        ),
        (
            "/runs/set-tag",
            json!({"run_id": null, "key": "tag", "value": "v"}),
            "Missing value for required parameter 'run_id'.",
        ),
    ] {
        let reply = api.post(path, body).await;
        let message_found = error(&reply, StatusCode::BAD_REQUEST)["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            message_found.starts_with(message),
            "{path}: {message_found}"
        );
    }
}

#[tokio::test]
async fn a_path_with_repeated_slashes_is_redirected_to_its_merged_spelling() {
    let api = api().await;
    let reply = api
        .send(
            Method::GET,
            "//model-versions//get-artifact?name=m&version=1&path=..%2Fx",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::PERMANENT_REDIRECT);
    let request = Request::builder()
        .uri("//evil.example/api")
        .body(Body::empty())
        .unwrap();
    let response = api.app.clone().oneshot(request).await.unwrap();
    assert_eq!(
        response.headers()[header::LOCATION],
        "/evil.example/api",
        "never a redirect to another host"
    );
    let request = Request::builder()
        .uri("//model-versions//get-artifact?name=m&version=1&path=..%2Fx")
        .body(Body::empty())
        .unwrap();
    let response = api.app.clone().oneshot(request).await.unwrap();
    assert_eq!(
        response.headers()[header::LOCATION],
        "/model-versions/get-artifact?name=m&version=1&path=..%2Fx"
    );
}

// ------------------------------------------------------------------------ GraphQL

#[tokio::test]
async fn graphql_answers_the_selected_fields_typed_as_mlflows_schema() {
    let api = api().await;
    let run_id = api.create_run("0").await;
    for (key, value) in [("loss", json!(0.5)), ("bad", json!("NaN"))] {
        api.ok(
            Method::POST,
            "/runs/log-metric",
            json!({"run_id": run_id, "key": key, "value": value, "timestamp": 7, "step": 2}),
        )
        .await;
    }
    api.ok(
        Method::POST,
        "/registered-models/create",
        json!({"name": "reg"}),
    )
    .await;
    api.ok(
        Method::POST,
        "/model-versions/create",
        json!({"name": "reg", "source": format!("runs:/{run_id}/model"), "run_id": run_id}),
    )
    .await;
    let query = r#"
        query q($id: String) @component(name: "Test") {
          r: mlflowGetRun(input: {runId: $id}) {
            run {
              info { status endTime }
              data { metrics { key value step } }
              experiment { name }
              modelVersions { name version }
              ... on MlflowRun { __typename }
            }
            apiError { code }
          }
        }"#;
    let body = json!({"query": query, "variables": {"id": run_id}, "operationName": "q"});
    let reply = api
        .send(Method::POST, "/graphql", Some(body.to_string()))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.raw);
    let mut answer = reply.body;
    let metrics = answer["data"]["r"]["run"]["data"]["metrics"].take();
    let mut metrics: Vec<Value> = metrics.as_array().unwrap().clone();
    metrics.sort_by_key(|m| m["key"].as_str().unwrap().to_string());
    insta::assert_json_snapshot!((answer, metrics), @r#"
    [
      {
        "data": {
          "r": {
            "apiError": null,
            "run": {
              "__typename": "MlflowRun",
              "data": {
                "metrics": null
              },
              "experiment": {
                "name": "Default"
              },
              "info": {
                "endTime": "0",
                "status": "RUNNING"
              },
              "modelVersions": [
                {
                  "name": "reg",
                  "version": "1"
                }
              ]
            }
          }
        },
        "errors": null
      },
      [
        {
          "key": "bad",
          "step": "2",
          "value": null
        },
        {
          "key": "loss",
          "step": "2",
          "value": 0.5
        }
      ]
    ]
    "#);
}

#[tokio::test]
async fn graphql_reports_unknown_fields_failed_calls_and_bad_documents() {
    let api = api().await;
    let post = |query: &str| {
        let body = json!({ "query": query });
        api.send(Method::POST, "/graphql", Some(body.to_string()))
    };
    let reply =
        post("{ mlflowGetExperiment(input: {experimentId: \"0\"}) { experiment { colour } } }")
            .await;
    assert_eq!(
        reply.body,
        json!({"data": null, "errors": ["Cannot query field 'colour' on type 'MlflowExperiment'."]})
    );
    let reply =
        post("{ mlflowGetExperiment(input: {experimentId: \"42\"}) { experiment { name } } }")
            .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["data"]["mlflowGetExperiment"], Value::Null);
    assert_eq!(reply.body["errors"][0], "No Experiment with id=42 exists");
    let reply = post("{ mlflowGetExperiment(input: ").await;
    let body = error(&reply, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Syntax Error"),
        "{body}"
    );
}

// ------------------------------------------------------------ evaluation datasets

#[tokio::test]
async fn evaluation_datasets_answer_in_mlflows_shape() {
    let api = api().await;
    api.ok(
        Method::POST,
        "/experiments/create",
        json!({"name": "evals"}),
    )
    .await;
    let v3 = |path: &str| format!("/api/3.0/mlflow/datasets{path}");
    let created = api
        .send(
            Method::POST,
            &v3("/create"),
            Some(
                json!({"name": "qa", "experiment_ids": ["1"], "tags": "{\"team\": \"ml\", \"mlflow.user\": \"ann\"}"})
                    .to_string(),
            ),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.raw);
    let id = created.body["dataset"]["dataset_id"]
        .as_str()
        .unwrap()
        .to_string();
    let dataset_redactions = |prefix: &str| {
        [
            format!("{prefix}.dataset_id"),
            format!("{prefix}.digest"),
            format!("{prefix}.created_time"),
            format!("{prefix}.last_update_time"),
        ]
    };
    let [a, b, c, d] = dataset_redactions(".dataset");
    insta::assert_json_snapshot!(created.body, {
        a.as_str() => "[id]", b.as_str() => "[digest]", c.as_str() => "[ms]", d.as_str() => "[ms]",
    }, @r#"
    {
      "dataset": {
        "created_by": "ann",
        "created_time": "[ms]",
        "dataset_id": "[id]",
        "digest": "[digest]",
        "experiment_ids": [
          "1"
        ],
        "last_update_time": "[ms]",
        "last_updated_by": "ann",
        "name": "qa",
        "tags": "{\"mlflow.user\": \"ann\", \"team\": \"ml\"}"
      }
    }
    "#);

    let records = json!([
        {"inputs": {"question": "What is MLflow?"}, "expectations": {"answer": "A platform"},
         "tags": {"difficulty": "easy"}, "source": {"source_type": "human", "source_data": {"source_id": "s1"}}},
        {"inputs": {"question": "What is mlox?"}, "outputs": "A server"},
    ]);
    let upserted = api
        .send(
            Method::POST,
            &v3(&format!("/{id}/records")),
            Some(json!({"records": records.to_string()}).to_string()),
        )
        .await;
    insta::assert_json_snapshot!(upserted.body, @r#"
    {
      "inserted_count": 2,
      "updated_count": 0
    }
    "#);
    let again = api
        .send(
            Method::POST,
            &v3(&format!("/{id}/records")),
            Some(json!({"records": json!([{"inputs": {"question": "What is mlox?"}, "expectations": {"answer": "MLflow in Rust"}}]).to_string()}).to_string()),
        )
        .await;
    insta::assert_json_snapshot!(again.body, @r#"
    {
      "inserted_count": 0,
      "updated_count": 1
    }
    "#);

    let got = api.send(Method::GET, &v3(&format!("/{id}")), None).await;
    insta::assert_json_snapshot!(got.body, {
        a.as_str() => "[id]", b.as_str() => "[digest]", c.as_str() => "[ms]", d.as_str() => "[ms]",
    }, @r#"
    {
      "dataset": {
        "created_by": "ann",
        "created_time": "[ms]",
        "dataset_id": "[id]",
        "digest": "[digest]",
        "experiment_ids": [
          "1"
        ],
        "last_update_time": "[ms]",
        "name": "qa",
        "profile": "{\"num_records\": 2}",
        "schema": "{\"inputs\": {\"question\": \"string\"}, \"outputs\": \"string\", \"expectations\": {\"answer\": \"string\"}, \"version\": \"1.0\"}",
        "tags": "{\"mlflow.user\": \"ann\", \"team\": \"ml\"}"
      }
    }
    "#);

    let listed = api
        .send(
            Method::GET,
            &v3(&format!("/{id}/records?max_results=1")),
            None,
        )
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.raw);
    assert!(listed.body["next_page_token"].is_string());
    let all = api
        .send(Method::GET, &v3(&format!("/{id}/records")), None)
        .await;
    // Records of one upsert share their creation time; ids, which are random, order them.
    let mut parsed: Vec<Value> =
        serde_json::from_str(all.body["records"].as_str().unwrap()).unwrap();
    parsed.sort_by_key(|record| record["inputs"]["question"].to_string());
    insta::assert_json_snapshot!(parsed, {
        "[].dataset_record_id" => "[id]", "[].dataset_id" => "[id]",
        "[].created_time" => "[ms]", "[].last_update_time" => "[ms]",
    }, @r#"
    [
      {
        "created_time": "[ms]",
        "dataset_id": "[id]",
        "dataset_record_id": "[id]",
        "expectations": {
          "answer": "A platform"
        },
        "inputs": {
          "question": "What is MLflow?"
        },
        "last_update_time": "[ms]",
        "outputs": {},
        "source": {
          "source_data": {
            "source_id": "s1"
          },
          "source_type": "HUMAN"
        },
        "source_id": "s1",
        "source_type": "HUMAN",
        "tags": {
          "difficulty": "easy"
        }
      },
      {
        "created_time": "[ms]",
        "dataset_id": "[id]",
        "dataset_record_id": "[id]",
        "expectations": {
          "answer": "MLflow in Rust"
        },
        "inputs": {
          "question": "What is mlox?"
        },
        "last_update_time": "[ms]",
        "outputs": "A server",
        "tags": {}
      }
    ]
    "#);

    let searched = api
        .send(
            Method::POST,
            &v3("/search"),
            Some(
                json!({"filter_string": "tags.team = 'ml'", "order_by": ["name ASC"]}).to_string(),
            ),
        )
        .await;
    // A search lists each dataset as get answers it.
    assert_eq!(searched.body, json!({ "datasets": [got.body["dataset"]] }));

    // Errors are MLflow's 4xx, never a server error.
    let missing = api.send(Method::GET, &v3("/d-missing"), None).await;
    insta::assert_json_snapshot!(error(&missing, StatusCode::NOT_FOUND), @r#"
    {
      "error_code": "RESOURCE_DOES_NOT_EXIST",
      "message": "Evaluation dataset with id 'd-missing' not found"
    }
    "#);
    let bad_records = api
        .send(
            Method::POST,
            &v3(&format!("/{id}/records")),
            Some(
                json!({"records": "[{\"inputs\": {}, \"source\": {\"source_type\": \"robot\"}}]"})
                    .to_string(),
            ),
        )
        .await;
    insta::assert_json_snapshot!(error(&bad_records, StatusCode::BAD_REQUEST), @r#"
    {
      "error_code": "INVALID_PARAMETER_VALUE",
      "message": "Invalid dataset record source type: ROBOT. Valid source types: ['UNSPECIFIED', 'TRACE', 'HUMAN', 'DOCUMENT', 'CODE']"
    }
    "#);
    let bad_filter = api
        .send(
            Method::GET,
            &v3("/search?filter_string=params.x%20%3D%20%27y%27"),
            None,
        )
        .await;
    insta::assert_json_snapshot!(error(&bad_filter, StatusCode::BAD_REQUEST), @r#"
    {
      "error_code": "INVALID_PARAMETER_VALUE",
      "message": "Invalid identifier token 'params' specified"
    }
    "#);
    let no_experiment = api
        .send(
            Method::POST,
            &v3(&format!("/{id}/add-experiments")),
            Some(json!({"experiment_ids": ["42"]}).to_string()),
        )
        .await;
    insta::assert_json_snapshot!(error(&no_experiment, StatusCode::NOT_FOUND), @r#"
    {
      "error_code": "RESOURCE_DOES_NOT_EXIST",
      "message": "No Experiment with id=42"
    }
    "#);

    let deleted = api.send(Method::DELETE, &v3(&format!("/{id}")), None).await;
    assert_eq!(
        (deleted.status, deleted.body.clone()),
        (StatusCode::OK, json!({}))
    );
}

/// A history page is streamed a thousand points at a time; the bytes are those MLflow's JSON
/// has (NaN and infinities as strings, integral values with their `.0`), and the page token
/// leads to exactly the rest.
#[tokio::test]
async fn metric_history_pages_are_streamed_in_mlflows_json() {
    let api = api().await;
    let run = api.create_run("0").await;
    let odd = [
        json!({"key": "m", "value": "NaN", "timestamp": 5, "step": 0}),
        json!({"key": "m", "value": "Infinity", "timestamp": 5, "step": 1}),
        json!({"key": "m", "value": 1.0, "timestamp": 6, "step": 2}),
    ];
    api.ok(
        Method::POST,
        "/runs/log-batch",
        json!({"run_id": run, "metrics": odd}),
    )
    .await;
    let first = api
        .get(&format!(
            "/metrics/get-history?run_id={run}&metric_key=m&max_results=2"
        ))
        .await;
    let token = first.body["next_page_token"].as_str().unwrap().to_string();
    let shown = first.raw.replace(&token, "<token>");
    insta::assert_snapshot!(shown, @r#"{"metrics":[{"key":"m","value":"NaN","timestamp":5,"step":0},{"key":"m","value":"Infinity","timestamp":5,"step":1}],"next_page_token":"<token>"}"#);
    let rest = api
        .get(&format!(
            "/metrics/get-history?run_id={run}&metric_key=m&max_results=2&page_token={token}"
        ))
        .await;
    insta::assert_snapshot!(rest.raw, @r#"{"metrics":[{"key":"m","value":1.0,"timestamp":6,"step":2}]}"#);

    // Across the chunks of a long page, every point once and in order.
    for chunk in 0..3 {
        let metrics: Vec<Value> = (0..1000)
            .map(|i| json!({"key": "long", "value": i, "timestamp": 10, "step": chunk * 1000 + i}))
            .collect();
        api.ok(
            Method::POST,
            "/runs/log-batch",
            json!({"run_id": run, "metrics": metrics}),
        )
        .await;
    }
    let long = api
        .get(&format!(
            "/metrics/get-history?run_id={run}&metric_key=long"
        ))
        .await;
    let steps: Vec<i64> = long.body["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["step"].as_i64().unwrap())
        .collect();
    assert_eq!(steps, (0..3000).collect::<Vec<i64>>());
    assert!(long.body.get("next_page_token").is_none());
}
