//! The few tracking-server calls that turn a model URI into a storage location, each the one
//! MLflow's client makes for the same URI.

use std::time::Duration;

use mlox_core::{Code, Error, Result};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use crate::FetchConfig;

const API: &str = "/api/2.0/mlflow";

#[derive(Clone, Debug)]
pub struct TrackingClient {
    base: String,
    http: reqwest::Client,
    auth: Option<String>,
}

fn enc(value: &str) -> String {
    utf8_percent_encode(value, NON_ALPHANUMERIC).to_string()
}

impl TrackingClient {
    pub fn new(base: &str, config: &FetchConfig) -> Result<Self> {
        // Built without a bundled TLS provider (see the workspace manifest); ring is installed
        // process-wide, and installing it twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| Error::internal(format!("cannot build an HTTP client: {e}")))?;
        let auth = match (&config.token, &config.basic_auth) {
            (Some(token), _) => Some(format!("Bearer {token}")),
            (None, Some((user, password))) => {
                use base64::Engine;
                let pair = format!("{user}:{password}");
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ))
            }
            (None, None) => None,
        };
        Ok(TrackingClient {
            base: base.trim_end_matches('/').to_string(),
            http,
            auth,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub(crate) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(auth) = &self.auth {
            request = request.header(reqwest::header::AUTHORIZATION, auth);
        }
        request
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| self.unreachable(e))?;
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|e| {
                Error::internal(format!(
                    "the tracking server sent malformed JSON for {path}: {e}"
                ))
            });
        }
        // Keep the server's own code and message: "Registered Model with name=x not found".
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let message = body
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| {
                format!(
                    "HTTP {status}: {}",
                    text.chars().take(200).collect::<String>()
                )
            });
        let code = match status.as_u16() {
            404 => Code::ResourceDoesNotExist,
            400 => Code::InvalidParameterValue,
            401 | 403 => Code::PermissionDenied,
            _ => Code::TemporarilyUnavailable,
        };
        Err(Error::new(code, message))
    }

    fn unreachable(&self, e: reqwest::Error) -> Error {
        Error::unavailable(format!(
            "cannot reach the tracking server at {}: {e}",
            self.base
        ))
    }

    /// `runs:/<run>/<path>`: MLflow 3 first looks for a logged model of that name from the run,
    /// then falls back to the run's own artifacts.
    pub async fn run_location(&self, run_id: &str, path: &str) -> Result<String> {
        let run = self
            .call(
                reqwest::Method::GET,
                &format!("{API}/runs/get?run_id={}", enc(run_id)),
                None,
            )
            .await?;
        let info = &run["run"]["info"];
        if !path.is_empty() && !path.contains('/') {
            let experiment_id = info["experiment_id"].as_str().unwrap_or_default();
            let filter = format!(
                "source_run_id='{run_id}' AND name='{}'",
                path.replace('\'', "\\'")
            );
            let found = self
                .call(
                    reqwest::Method::POST,
                    &format!("{API}/logged-models/search"),
                    Some(json!({
                        "experiment_ids": [experiment_id],
                        "filter": filter,
                        "max_results": 2,
                    })),
                )
                .await?;
            if let Some(location) = found["models"]
                .as_array()
                .and_then(|models| models.first())
                .and_then(|m| m["info"]["artifact_uri"].as_str())
            {
                return Ok(location.to_string());
            }
        }
        let root = info["artifact_uri"]
            .as_str()
            .ok_or_else(|| Error::internal(format!("run {run_id} has no artifact_uri")))?;
        Ok(if path.is_empty() {
            root.to_string()
        } else {
            format!("{}/{path}", root.trim_end_matches('/'))
        })
    }

    pub async fn logged_model_location(&self, model_id: &str) -> Result<String> {
        let model = self
            .call(
                reqwest::Method::GET,
                &format!("{API}/logged-models/{}", enc(model_id)),
                None,
            )
            .await?;
        model["model"]["info"]["artifact_uri"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| Error::internal(format!("logged model {model_id} has no artifact_uri")))
    }

    pub async fn version_location(&self, name: &str, version: &str) -> Result<String> {
        let answer = self
            .call(
                reqwest::Method::GET,
                &format!(
                    "{API}/model-versions/get-download-uri?name={}&version={}",
                    enc(name),
                    enc(version)
                ),
                None,
            )
            .await?;
        answer["artifact_uri"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| {
                Error::internal(format!("version {version} of '{name}' has no download URI"))
            })
    }

    pub async fn alias_version(&self, name: &str, alias: &str) -> Result<String> {
        let answer = self
            .call(
                reqwest::Method::GET,
                &format!(
                    "{API}/registered-models/alias?name={}&alias={}",
                    enc(name),
                    enc(alias)
                ),
                None,
            )
            .await?;
        version_of(&answer["model_version"])
            .ok_or_else(|| Error::internal(format!("alias '{alias}' of '{name}' names no version")))
    }

    /// The newest version overall, or in `stage`.
    pub async fn latest_version(&self, name: &str, stage: Option<&str>) -> Result<String> {
        let mut body = json!({ "name": name });
        if let Some(stage) = stage {
            body["stages"] = json!([stage]);
        }
        let answer = self
            .call(
                reqwest::Method::POST,
                &format!("{API}/registered-models/get-latest-versions"),
                Some(body),
            )
            .await?;
        answer["model_versions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(version_of)
            .max_by_key(|v| v.parse::<u64>().unwrap_or(0))
            .ok_or_else(|| {
                Error::not_found(match stage {
                    Some(stage) => format!("No versions of model '{name}' in stage '{stage}'"),
                    None => format!("No versions of model '{name}' found"),
                })
            })
    }
}

fn version_of(version: &Value) -> Option<String> {
    match &version["version"] {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
