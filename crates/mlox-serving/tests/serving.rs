//! The serving protocols as a client sees them: real REST and gRPC servers on free ports over
//! deterministic test models (see `common/fixtures.rs`), driven by an HTTP client and by a
//! tonic client generated from the same proto. Request bodies are MLServer's and MLflow's
//! from the reference captures; answers are stated in full.

#![allow(clippy::unwrap_used)]

#[path = "common/fixtures.rs"]
mod fixtures;

use std::sync::Arc;

use fixtures::{WINE_COLUMNS, WINE_ROWS, wine_prediction};
use mlox_serving::grpc::pb;
use mlox_serving::grpc::pb::grpc_inference_service_client::GrpcInferenceServiceClient;
use mlox_serving::{Dataplane, ModelRepository, ServeConfig, ServerInfo};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

struct Server {
    http: String,
    grpc: String,
    stop: CancellationToken,
    client: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn start_with(repo: ModelRepository, config: ServeConfig) -> Server {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let urls = (
        format!("http://{}", http.local_addr().unwrap()),
        format!("http://{}", grpc.local_addr().unwrap()),
    );
    let stop = CancellationToken::new();
    let dataplane = Dataplane::new(
        repo,
        ServerInfo {
            name: "mlox-test".into(),
            version: "0.1.0".into(),
        },
    );
    tokio::spawn(mlox_serving::serve(
        dataplane,
        http,
        Some(grpc),
        config,
        stop.clone(),
    ));
    Server {
        http: urls.0,
        grpc: urls.1,
        stop,
        client: reqwest::Client::new(),
    }
}

async fn start() -> Server {
    start_with(fixtures::repository(), ServeConfig::default()).await
}

/// Status and body; a body that is not JSON comes back as a JSON string.
async fn answer(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

impl Server {
    async fn get(&self, path: &str) -> (u16, Value) {
        answer(
            self.client
                .get(format!("{}{path}", self.http))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        answer(
            self.client
                .post(format!("{}{path}", self.http))
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    async fn post_text(&self, path: &str, content_type: &str, body: &str) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.http))
            .header("content-type", content_type)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        answer(r).await
    }

    async fn grpc(&self) -> GrpcInferenceServiceClient<tonic::transport::Channel> {
        GrpcInferenceServiceClient::connect(self.grpc.clone())
            .await
            .unwrap()
    }
}

/// One V2 input per wine column, as MLServer's pandas codec and seed 001 send them.
fn wine_columns(shape_suffix: &[i64]) -> Vec<Value> {
    WINE_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut shape = vec![2];
            shape.extend(shape_suffix);
            json!({"name": name, "shape": shape, "datatype": "FP64", "data": [WINE_ROWS[0][i], WINE_ROWS[1][i]]})
        })
        .collect()
}

fn expected(intercept: f64) -> Value {
    json!([
        wine_prediction(&WINE_ROWS[0], intercept),
        wine_prediction(&WINE_ROWS[1], intercept)
    ])
}

#[tokio::test]
async fn health_and_server_metadata() {
    let s = start().await;
    assert_eq!(s.get("/v2/health/live").await, (200, json!({"live": true})));
    assert_eq!(
        s.get("/v2/health/ready").await,
        (200, json!({"ready": true}))
    );
    insta::assert_json_snapshot!(s.get("/v2").await, @r#"
        [
          200,
          {
            "extensions": [
              "binary_tensor_data"
            ],
            "name": "mlox-test",
            "version": "0.1.0"
          }
        ]
        "#);
    assert_eq!(
        s.get("/v2/models/wine/ready").await,
        (200, json!({"name": "wine", "ready": true}))
    );
    assert_eq!(s.get("/v2/models/wine/versions/v1/ready").await.0, 200);
    insta::assert_json_snapshot!(s.get("/v2/models/nope/ready").await, @r#"
        [
          404,
          {
            "error": "Model nope not found"
          }
        ]
        "#);
    insta::assert_json_snapshot!(s.post("/v2/repository/index", json!({})).await, @r#"
        [
          200,
          [
            {
              "name": "wine",
              "reason": "",
              "state": "READY",
              "version": "v1"
            },
            {
              "name": "wine",
              "reason": "",
              "state": "READY",
              "version": "v2"
            },
            {
              "name": "echo",
              "reason": "",
              "state": "READY",
              "version": "v1"
            },
            {
              "name": "echo-raw",
              "reason": "",
              "state": "READY",
              "version": ""
            }
          ]
        ]
        "#);
}

#[tokio::test]
async fn model_metadata_describes_the_signature() {
    let s = start().await;
    insta::assert_json_snapshot!(s.get("/v2/models/echo").await, @r#"
        [
          200,
          {
            "inputs": [
              {
                "datatype": "BYTES",
                "name": "text",
                "parameters": {
                  "content_type": "str"
                },
                "shape": [
                  -1,
                  1
                ]
              }
            ],
            "name": "echo",
            "outputs": [
              {
                "datatype": "BYTES",
                "name": "output",
                "parameters": {
                  "content_type": "str"
                },
                "shape": [
                  -1,
                  1
                ]
              }
            ],
            "parameters": {
              "content_type": "pd"
            },
            "platform": "mlflow",
            "versions": [
              "v1"
            ]
          }
        ]
        "#);
    let (status, wine) = s.get("/v2/models/wine/versions/v1").await;
    assert_eq!(status, 200);
    assert_eq!(wine["versions"], json!(["v1", "v2"]));
    assert_eq!(wine["inputs"].as_array().unwrap().len(), 11);
    assert_eq!(
        wine["inputs"][10],
        json!({"name": "alcohol", "datatype": "FP64", "shape": [-1, 1], "parameters": {"content_type": "np"}})
    );
    assert_eq!(
        wine["outputs"],
        json!([{"name": "predictions", "datatype": "FP64", "shape": [-1, 1], "parameters": {"content_type": "np"}}])
    );
    insta::assert_json_snapshot!(s.get("/v2/models/wine/versions/v9").await, @r#"
        [
          404,
          {
            "error": "Model wine with version v9 not found"
          }
        ]
        "#);
}

#[tokio::test]
async fn mlserver_multi_input_request_is_a_dataframe() {
    let s = start().await;
    // The reference capture's request, on the versioned path with an id.
    let (status, body) = s
        .post(
            "/v2/models/wine/versions/v1/infer",
            json!({"inputs": wine_columns(&[1]), "id": "req-42"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outputs"][0]["data"], expected(0.0));
    insta::assert_json_snapshot!(body, @r#"
        {
          "id": "req-42",
          "model_name": "wine",
          "model_version": "v1",
          "outputs": [
            {
              "data": [
                110.38157,
                92.89968999999999
              ],
              "datatype": "FP64",
              "name": "predictions",
              "parameters": {
                "content_type": "np"
              },
              "shape": [
                2
              ]
            }
          ],
          "parameters": {
            "content_type": "np"
          }
        }
        "#);
    // Without a version the newest one answers; seed 001's [1]-shaped FP32 inputs work too.
    let seed_001: Vec<Value> = WINE_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, n)| json!({"name": n, "shape": [1], "datatype": "FP32", "data": [WINE_ROWS[0][i]]}))
        .collect();
    let (status, body) = s
        .post("/v2/models/wine/infer", json!({"inputs": seed_001}))
        .await;
    assert_eq!((status, body["model_version"].clone()), (200, json!("v2")));
    let y = body["outputs"][0]["data"][0].as_f64().unwrap();
    assert!(
        (y - wine_prediction(&WINE_ROWS[0], 1.0)).abs() < 1e-4,
        "{y}"
    );
}

#[tokio::test]
async fn a_single_2d_tensor_is_split_into_the_signature_columns() {
    let s = start().await;
    let flat: Vec<f64> = WINE_ROWS.iter().flatten().copied().collect();
    for params in [json!(null), json!({"content_type": "np"})] {
        let (status, body) = s
            .post(
                "/v2/models/wine/versions/v1/infer",
                json!({"parameters": params, "inputs": [{"name": "input-0", "shape": [2, 11], "datatype": "FP64", "data": flat}]}),
            )
            .await;
        assert_eq!(status, 200, "MLServer answers 500 here: {body}");
        assert_eq!(body["outputs"][0]["data"], expected(0.0));
    }
}

#[tokio::test]
async fn seed_000_string_codec_round_trip() {
    let s = start().await;
    // mlserver.codecs.string.StringRequestCodec.encode_request(['{"a": 10}'])
    let request = json!({"parameters": {"content_type": "str"}, "inputs": [
        {"name": "input-1", "shape": [1, 1], "datatype": "BYTES", "parameters": {"content_type": "str"}, "data": ["{\"a\": 10}"]}
    ]});
    let (status, body) = s.post("/v2/models/echo/infer", request).await;
    assert_eq!(status, 200, "{body}");
    insta::assert_json_snapshot!(body, {".id" => "[uuid]"}, @r#"
        {
          "id": "[uuid]",
          "model_name": "echo",
          "model_version": "v1",
          "outputs": [
            {
              "data": [
                "{\"a\": 10}"
              ],
              "datatype": "BYTES",
              "name": "output",
              "parameters": {
                "content_type": "str"
              },
              "shape": [
                1,
                1
              ]
            }
          ],
          "parameters": {
            "content_type": "str"
          }
        }
        "#);
    // The seed's own hand-made request: a bare string, shape [len(string)], no content type,
    // to a model logged without a signature.
    let (status, body) = s
        .post(
            "/v2/models/echo-raw/infer",
            json!({"inputs": [{"name": "work_model1", "shape": [9], "datatype": "BYTES", "data": "{\"a\": 10}"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outputs"][0]["data"], json!(["{\"a\": 10}"]));
    assert_eq!(body["outputs"][0]["datatype"], "BYTES");
}

#[tokio::test]
async fn parameters_reach_the_model_and_outputs_can_be_chosen() {
    let s = start().await;
    let (status, body) = s
        .post(
            "/v2/models/echo/infer",
            json!({"parameters": {"suffix": "!"}, "inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["hello", "world"]}], "outputs": [{"name": "output"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outputs"][0]["data"], json!(["hello!", "world!"]));
    let (status, body) = s
        .post(
            "/v2/models/echo/infer",
            json!({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["x"]}], "outputs": [{"name": "foo"}]}),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"error": "the model has no output 'foo' (its outputs: output)"})
        )
    );
}

#[tokio::test]
async fn bad_requests_are_400s_that_say_why() {
    let s = start().await;
    let mut missing = wine_columns(&[1]);
    missing.pop();
    let mut strings = wine_columns(&[1]);
    strings[0]["data"] = json!(["a", "b"]);
    let mut fp99 = wine_columns(&[1]);
    fp99[0]["datatype"] = json!("FP99");
    let mut bytes = wine_columns(&[1]);
    bytes[0]["datatype"] = json!("BYTES");
    bytes[0]["data"] = json!(["abc", "def"]);
    let mut ragged = wine_columns(&[1]);
    ragged[0]["shape"] = json!([3, 1]);
    let cases = [
        ("missing column", json!({"inputs": missing})),
        ("strings in FP64", json!({"inputs": strings})),
        ("unknown datatype", json!({"inputs": fp99})),
        ("shape and data disagree", json!({"inputs": ragged})),
        ("missing inputs field", json!({"foo": 1})),
        (
            "wrong width",
            json!({"inputs": [{"name": "input-0", "shape": [1, 10], "datatype": "FP64", "data": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}]}),
        ),
        ("bytes for doubles", json!({"inputs": bytes})),
        (
            "np with two inputs",
            json!({"parameters": {"content_type": "np"}, "inputs": wine_columns(&[1])}),
        ),
    ];
    let mut answers = Vec::new();
    for (what, body) in cases {
        let (status, body) = s.post("/v2/models/wine/versions/v1/infer", body).await;
        answers.push(json!({"case": what, "status": status, "body": body}));
    }
    insta::assert_json_snapshot!(answers, @r#"
        [
          {
            "body": {
              "error": "the request lacks 1 input the model signature requires: 'alcohol' (double)"
            },
            "case": "missing column",
            "status": 400
          },
          {
            "body": {
              "error": "input 'fixed acidity': element 0 (\"a\") is not a valid FP64 value"
            },
            "case": "strings in FP64",
            "status": 400
          },
          {
            "body": {
              "error": "input 'fixed acidity': unknown datatype 'FP99' (expected one of BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BYTES)"
            },
            "case": "unknown datatype",
            "status": 400
          },
          {
            "body": {
              "error": "input 'fixed acidity' has shape [3, 1] (3 elements) but 2 data elements"
            },
            "case": "shape and data disagree",
            "status": 400
          },
          {
            "body": {
              "error": "malformed inference request: missing field `inputs` at line 1 column 9"
            },
            "case": "missing inputs field",
            "status": 400
          },
          {
            "body": {
              "error": "input 'input-0' has shape [1, 10], but the model signature has 11 columns (fixed acidity, volatile acidity, citric acid, residual sugar, chlorides, free sulfur dioxide, total sulfur dioxide, density, pH, sulphates, alcohol); send a [rows, 11] tensor or one input per column"
            },
            "case": "wrong width",
            "status": 400
          },
          {
            "body": {
              "error": "input 'fixed acidity' has datatype BYTES but the model signature expects double"
            },
            "case": "bytes for doubles",
            "status": 400
          },
          {
            "body": {
              "error": "the 'np' content type takes exactly one input (11 were sent); use 'pd' for one input per column"
            },
            "case": "np with two inputs",
            "status": 400
          }
        ]
        "#);
    let r = s
        .client
        .post(format!("{}/v2/models/wine/infer", s.http))
        .header("content-type", "application/json")
        .body(r#"{"inputs": [{"name": "x", "#)
        .send()
        .await
        .unwrap();
    insta::assert_json_snapshot!(answer(r).await, @r#"
        [
          400,
          {
            "error": "malformed inference request: EOF while parsing a value at line 1 column 26"
          }
        ]
        "#);
}

#[tokio::test]
async fn unknown_models_routes_and_methods() {
    let s = start().await;
    let (status, body) = s
        .post(
            "/v2/models/nope/infer",
            json!({"inputs": wine_columns(&[1])}),
        )
        .await;
    assert_eq!(
        (status, body),
        (404, json!({"error": "Model nope not found"}))
    );
    let (status, body) = s
        .post(
            "/v2/models/wine/versions/v9/infer",
            json!({"inputs": wine_columns(&[1])}),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({"error": "Model wine with version v9 not found"})
        )
    );
    assert_eq!(
        s.get("/v2/nothing").await,
        (404, json!({"error": "no route for GET /v2/nothing"}))
    );
    assert_eq!(
        s.get("/invocations").await,
        (405, json!({"error": "/invocations does not accept GET"}))
    );
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let mut config = ServeConfig::default();
    config.rest.max_body_bytes = 1024;
    let s = start_with(fixtures::repository(), config).await;
    let big = json!({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["x".repeat(2000)]}]});
    assert_eq!(
        s.post("/v2/models/echo/infer", big).await,
        (
            413,
            json!({"error": "the request body is larger than the server's limit of 1024 bytes"})
        )
    );
}

#[tokio::test]
async fn models_that_are_not_ready_answer_503() {
    let repo = ModelRepository::new();
    repo.set_loading("slow", None);
    repo.insert("crashy", None, fixtures::unavailable_model());
    let s = start_with(repo.clone(), ServeConfig::default()).await;
    assert_eq!(
        s.get("/v2/health/ready").await,
        (503, json!({"ready": false}))
    );
    assert_eq!(s.get("/ping").await.0, 503);
    assert_eq!(
        s.get("/v2/models/slow/ready").await,
        (503, json!({"name": "slow", "ready": false}))
    );
    let infer =
        json!({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["x"]}]});
    assert_eq!(
        s.post("/v2/models/slow/infer", infer.clone()).await,
        (
            503,
            json!({"error": "Model slow is not ready: it is still loading"})
        )
    );
    assert_eq!(
        s.post("/v2/models/crashy/infer", infer.clone()).await,
        (
            503,
            json!({"error": "the model's worker exited; it is being restarted"})
        )
    );
    let status = s
        .grpc()
        .await
        .model_infer(pb::ModelInferRequest {
            model_name: "slow".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    repo.insert("slow", None, fixtures::echo_model());
    assert_eq!(s.post("/v2/models/slow/infer", infer).await.0, 200);
}

#[tokio::test]
async fn triton_binary_tensor_extension() {
    let s = start().await;
    // tritonclient.http's default: binary inputs and binary_data_output for all outputs.
    let header = json!({
        "inputs": [{"name": "input-0", "shape": [2, 11], "datatype": "FP64", "parameters": {"binary_data_size": 176}}],
        "parameters": {"binary_data_output": true}
    })
    .to_string();
    let mut body = header.clone().into_bytes();
    for x in WINE_ROWS.iter().flatten() {
        body.extend_from_slice(&x.to_le_bytes());
    }
    let r = s
        .client
        .post(format!("{}/v2/models/wine/versions/v1/infer", s.http))
        .header("inference-header-content-length", header.len())
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let json_len: usize = r.headers()["inference-header-content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = r.bytes().await.unwrap();
    let head: Value = serde_json::from_slice(&bytes[..json_len]).unwrap();
    insta::assert_json_snapshot!(head, {".id" => "[uuid]"}, @r#"
        {
          "id": "[uuid]",
          "model_name": "wine",
          "model_version": "v1",
          "outputs": [
            {
              "datatype": "FP64",
              "name": "predictions",
              "parameters": {
                "binary_data_size": 16,
                "content_type": "np"
              },
              "shape": [
                2
              ]
            }
          ],
          "parameters": {
            "content_type": "np"
          }
        }
        "#);
    let ys: Vec<f64> = bytes[json_len..]
        .chunks(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(json!(ys), expected(0.0));
}

#[tokio::test]
async fn mlflow_scoring_routes() {
    let s = start().await;
    assert_eq!(s.get("/ping").await, (200, json!("\n")));
    assert_eq!(s.get("/health").await, (200, json!("\n")));
    assert_eq!(s.get("/version").await, (200, json!("3.17.2")));
    let rows: Vec<Vec<f64>> = WINE_ROWS.iter().map(|r| r.to_vec()).collect();
    let records: Vec<Value> = WINE_ROWS
        .iter()
        .map(|r| {
            Value::Object(
                WINE_COLUMNS
                    .iter()
                    .zip(r)
                    .map(|(c, x)| (c.to_string(), json!(x)))
                    .collect(),
            )
        })
        .collect();
    let dict: serde_json::Map<String, Value> = WINE_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, c)| (c.to_string(), json!([WINE_ROWS[0][i], WINE_ROWS[1][i]])))
        .collect();
    let want = json!({"predictions": expected(0.0)});
    for body in [
        json!({"dataframe_split": {"columns": WINE_COLUMNS, "data": rows}}),
        json!({"dataframe_records": records}),
        json!({"instances": records}),
        json!({"inputs": dict}),
        json!({"inputs": rows}),
    ] {
        assert_eq!(
            s.post("/models/wine/versions/v1/invocations", body.clone())
                .await,
            (200, want.clone()),
            "{body}"
        );
    }
    let mut csv = WINE_COLUMNS.join(",");
    for r in WINE_ROWS {
        csv.push('\n');
        csv.push_str(&r.iter().map(f64::to_string).collect::<Vec<_>>().join(","));
    }
    assert_eq!(
        s.post_text("/models/wine/versions/v1/invocations", "text/csv", &csv)
            .await,
        (200, want)
    );
    assert_eq!(
        s.post(
            "/models/echo/invocations",
            json!({"inputs": {"text": ["hello"]}, "params": {"suffix": "?"}})
        )
        .await,
        (200, json!({"predictions": ["hello?"]}))
    );
    assert_eq!(
        s.post(
            "/models/echo/invocations",
            json!({"dataframe_split": {"columns": ["text"], "data": [["hello"], ["world"]]}})
        )
        .await,
        (200, json!({"predictions": ["hello", "world"]}))
    );
}

#[tokio::test]
async fn mlflow_scoring_errors_use_mlflows_shape() {
    let s = start().await;
    let cases = [
        (
            "/invocations",
            "application/json",
            r#"{"inputs": {"text": ["x"]}}"#,
        ),
        (
            "/models/wine/invocations",
            "application/json",
            r#"{"dataframe_split": {"columns": "#,
        ),
        (
            "/models/wine/invocations",
            "application/json",
            r#"{"columns": ["a"], "data": [[1]]}"#,
        ),
        (
            "/models/wine/invocations",
            "application/json",
            r#"{"dataframe_split": {"columns": ["fixed acidity"], "data": [["x"]]}}"#,
        ),
        (
            "/models/wine/invocations",
            "application/x-www-form-urlencoded",
            "a=b",
        ),
        (
            "/models/nope/invocations",
            "application/json",
            r#"{"inputs": [1]}"#,
        ),
    ];
    let mut answers = Vec::new();
    for (path, content_type, body) in cases {
        let (status, body) = s.post_text(path, content_type, body).await;
        answers.push(json!({"path": path, "status": status, "body": body}));
    }
    insta::assert_json_snapshot!(answers, @r#"
        [
          {
            "body": {
              "error_code": "BAD_REQUEST",
              "message": "this server holds 3 models, so /invocations cannot tell which one to call; POST to /models/<name>/invocations instead (models: wine, echo, echo-raw)"
            },
            "path": "/invocations",
            "status": 400
          },
          {
            "body": {
              "error_code": "BAD_REQUEST",
              "message": "Invalid input. Ensure that input is a valid JSON formatted string. Error: EOF while parsing a value at line 1 column 32"
            },
            "path": "/models/wine/invocations",
            "status": 400
          },
          {
            "body": {
              "error_code": "BAD_REQUEST",
              "message": "The input must be a JSON dictionary with exactly one of the input fields {'dataframe_split', 'dataframe_records', 'instances', 'inputs'}. Received dictionary with input fields: [\"columns\", \"data\"]. MLflow 2.0 changed the scoring format: a DataFrame goes under 'dataframe_split' or 'dataframe_records'."
            },
            "path": "/models/wine/invocations",
            "status": 400
          },
          {
            "body": {
              "error_code": "INVALID_PARAMETER_VALUE",
              "message": "the request lacks 10 inputs the model signature requires: 'volatile acidity' (double), 'citric acid' (double), 'residual sugar' (double), 'chlorides' (double), 'free sulfur dioxide' (double), 'total sulfur dioxide' (double), 'density' (double), 'pH' (double), 'sulphates' (double), 'alcohol' (double)"
            },
            "path": "/models/wine/invocations",
            "status": 400
          },
          {
            "body": {
              "error_code": "BAD_REQUEST",
              "message": "This predictor only supports the following content types: text/csv, application/json. Got 'application/x-www-form-urlencoded'."
            },
            "path": "/models/wine/invocations",
            "status": 415
          },
          {
            "body": {
              "error_code": "RESOURCE_DOES_NOT_EXIST",
              "message": "Model nope not found"
            },
            "path": "/models/nope/invocations",
            "status": 404
          }
        ]
        "#);
}

#[tokio::test]
async fn a_single_model_server_answers_the_global_invocations_route() {
    let repo = ModelRepository::new();
    repo.insert("echo", None, fixtures::echo_model());
    let s = start_with(repo, ServeConfig::default()).await;
    assert_eq!(
        s.post(
            "/invocations",
            json!({"instances": [{"text": "a"}, {"text": "b"}]})
        )
        .await,
        (200, json!({"predictions": ["a", "b"]}))
    );
}

fn param(s: &str) -> pb::InferParameter {
    pb::InferParameter {
        parameter_choice: Some(pb::infer_parameter::ParameterChoice::StringParam(s.into())),
    }
}

fn grpc_wine_inputs(
    raw: bool,
) -> (
    Vec<pb::model_infer_request::InferInputTensor>,
    Vec<bytes::Bytes>,
) {
    let mut raw_contents = Vec::new();
    let inputs = WINE_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let values = vec![WINE_ROWS[0][i], WINE_ROWS[1][i]];
            let contents = if raw {
                raw_contents.push(bytes::Bytes::from(
                    values
                        .iter()
                        .flat_map(|x| x.to_le_bytes())
                        .collect::<Vec<u8>>(),
                ));
                None
            } else {
                Some(pb::InferTensorContents {
                    fp64_contents: values,
                    ..Default::default()
                })
            };
            pb::model_infer_request::InferInputTensor {
                name: name.to_string(),
                datatype: "FP64".into(),
                shape: vec![2, 1],
                contents,
                ..Default::default()
            }
        })
        .collect();
    (inputs, raw_contents)
}

#[tokio::test]
async fn grpc_health_metadata_and_errors() {
    let s = start().await;
    let mut c = s.grpc().await;
    assert!(
        c.server_live(pb::ServerLiveRequest {})
            .await
            .unwrap()
            .into_inner()
            .live
    );
    assert!(
        c.server_ready(pb::ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    let m = c
        .server_metadata(pb::ServerMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (m.name.as_str(), m.extensions),
        ("mlox-test", vec!["binary_tensor_data".to_string()])
    );
    let ready = c
        .model_ready(pb::ModelReadyRequest {
            name: "wine".into(),
            version: "v1".into(),
        })
        .await
        .unwrap();
    assert!(ready.into_inner().ready);
    let m = c
        .model_metadata(pb::ModelMetadataRequest {
            name: "echo".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (m.platform.as_str(), m.versions),
        ("mlflow", vec!["v1".to_string()])
    );
    assert_eq!(m.inputs[0].name, "text");
    assert_eq!(m.inputs[0].datatype, "BYTES");
    assert_eq!(m.inputs[0].parameters["content_type"], param("str"));
    let e = c
        .model_metadata(pb::ModelMetadataRequest {
            name: "nope".into(),
            version: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (tonic::Code::NotFound, "Model nope not found")
    );
    // MLServer answers INTERNAL for a missing column; it is the caller's mistake.
    let (mut inputs, _) = grpc_wine_inputs(false);
    inputs.truncate(1);
    let e = c
        .model_infer(pb::ModelInferRequest {
            model_name: "wine".into(),
            inputs,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message()
            .starts_with("the request lacks 10 inputs the model signature requires"),
        "{}",
        e.message()
    );
}

#[tokio::test]
async fn grpc_infer_typed_and_raw() {
    let s = start().await;
    let mut c = s.grpc().await;
    let (inputs, _) = grpc_wine_inputs(false);
    let r = c
        .model_infer(pb::ModelInferRequest {
            model_name: "wine".into(),
            model_version: "v1".into(),
            id: "grpc-1".into(),
            inputs,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.model_version.as_str(), r.id.as_str()), ("v1", "grpc-1"));
    assert!(r.raw_output_contents.is_empty());
    let out = &r.outputs[0];
    assert_eq!(
        (out.name.as_str(), out.datatype.as_str(), out.shape.clone()),
        ("predictions", "FP64", vec![2])
    );
    assert_eq!(
        json!(out.contents.as_ref().unwrap().fp64_contents),
        expected(0.0)
    );

    // Raw in, raw out: what tritonclient.grpc sends and reads.
    let (inputs, raw_input_contents) = grpc_wine_inputs(true);
    let r = c
        .model_infer(pb::ModelInferRequest {
            model_name: "wine".into(),
            model_version: "v1".into(),
            inputs,
            raw_input_contents,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.outputs[0].contents.is_none());
    let ys: Vec<f64> = r.raw_output_contents[0]
        .chunks(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(json!(ys), expected(0.0));

    // Echo with BYTES contents, as the reference capture sends it.
    let r = c
        .model_infer(pb::ModelInferRequest {
            model_name: "echo".into(),
            inputs: vec![pb::model_infer_request::InferInputTensor {
                name: "text".into(),
                datatype: "BYTES".into(),
                shape: vec![2, 1],
                contents: Some(pb::InferTensorContents {
                    bytes_contents: vec!["hello".into(), "world".into()],
                    ..Default::default()
                }),
                ..Default::default()
            }],
            parameters: [("suffix".to_string(), param("!"))].into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let out = &r.outputs[0];
    assert_eq!(
        (out.datatype.as_str(), out.shape.clone()),
        ("BYTES", vec![2, 1])
    );
    assert_eq!(
        out.contents.as_ref().unwrap().bytes_contents,
        vec![bytes::Bytes::from("hello!"), bytes::Bytes::from("world!")]
    );
    assert_eq!(r.parameters["content_type"], param("str"));
}

#[tokio::test]
async fn a_version_swap_never_fails_requests() {
    let repo = fixtures::repository();
    let s = Arc::new(start_with(repo.clone(), ServeConfig::default()).await);
    let body = json!({"inputs": wine_columns(&[1])});
    let load = {
        let s = s.clone();
        tokio::spawn(async move {
            let mut failures = 0;
            for _ in 0..200 {
                if s.post("/v2/models/wine/infer", body.clone()).await.0 != 200 {
                    failures += 1;
                }
            }
            failures
        })
    };
    for i in 0..50 {
        repo.insert(
            "wine",
            Some(format!("v{}", 3 + i)),
            fixtures::wine_model(0.0),
        );
        repo.remove("wine", Some(&format!("v{}", 2 + i)));
        tokio::task::yield_now().await;
    }
    assert_eq!(load.await.unwrap(), 0);
}
