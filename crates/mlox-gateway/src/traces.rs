//! Recording each gateway call as an MLflow trace in a tracking server: one span per call, named
//! after the endpoint, typed by its kind (`CHAT_MODEL`, `LLM`, `EMBEDDING`), with the request
//! as its inputs and the answer (or the error) as its outputs, sent as OpenTelemetry JSON to the
//! server's `/v1/traces` into one experiment (made on first use). Recording happens after the
//! answer, on a task of its own: a slow or absent tracking server never delays or fails a call.

use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::{Notify, OnceCell};

use crate::config::EndpointType;
use crate::error::GatewayError;
use crate::gateway::Answer;

/// How the recorder signs in to the tracking server.
#[derive(Clone, Debug)]
pub enum TrackingCredentials {
    None,
    Token(String),
    Basic { username: String, password: String },
}

pub struct TraceRecorder {
    http: reqwest::Client,
    tracking_uri: String,
    experiment_name: String,
    experiment_id: OnceCell<String>,
    credentials: TrackingCredentials,
    /// Traces being sent, so that a stopping gateway can wait for them.
    sending: AtomicUsize,
    sent: Notify,
}

/// One finished call.
pub struct GatewayCall {
    pub endpoint: String,
    pub kind: Option<EndpointType>,
    pub inputs: Value,
    pub outputs: Value,
    pub started: SystemTime,
    pub ended: SystemTime,
    pub error: Option<String>,
    /// Which model answered and what it used, when known.
    pub details: CallDetails,
}

/// What the answer of a call said about its model and tokens, and what that cost.
#[derive(Clone, Debug, Default)]
pub struct CallDetails {
    pub provider: Option<String>,
    pub model: Option<String>,
    pub usage: Option<crate::catalog::Usage>,
    pub cost: Option<crate::catalog::Cost>,
}

impl GatewayCall {
    /// A call that just ended with `result`.
    pub fn finished(
        endpoint: &str,
        kind: EndpointType,
        inputs: Value,
        started: SystemTime,
        result: &Result<Answer, GatewayError>,
    ) -> GatewayCall {
        let (outputs, error) = match result {
            Ok(Answer::Json(bytes)) => (serde_json::from_slice(bytes).unwrap_or(Value::Null), None),
            // A stream's chunks go to the caller as they come; the trace says it streamed.
            Ok(Answer::Stream(_)) => (serde_json::json!({"stream": true}), None),
            Err(e) => (Value::Null, Some(e.to_string())),
        };
        GatewayCall {
            endpoint: endpoint.to_string(),
            kind: Some(kind),
            inputs,
            outputs,
            started,
            ended: SystemTime::now(),
            error,
            details: CallDetails::default(),
        }
    }
}

impl TraceRecorder {
    pub fn new(
        tracking_uri: &str,
        experiment_name: &str,
        credentials: TrackingCredentials,
    ) -> Result<TraceRecorder, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| format!("cannot build the trace client: {e}"))?;
        Ok(TraceRecorder {
            http,
            tracking_uri: tracking_uri.trim_end_matches('/').to_string(),
            experiment_name: experiment_name.to_string(),
            experiment_id: OnceCell::new(),
            credentials,
            sending: AtomicUsize::new(0),
            sent: Notify::new(),
        })
    }

    fn signed(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.credentials {
            TrackingCredentials::None => request,
            TrackingCredentials::Token(token) => request.bearer_auth(token),
            TrackingCredentials::Basic { username, password } => {
                request.basic_auth(username, Some(password))
            }
        }
    }

    async fn find_experiment(&self) -> Result<Option<String>, String> {
        let answer = self
            .signed(self.http.get(format!(
                "{}/api/2.0/mlflow/experiments/get-by-name?experiment_name={}",
                self.tracking_uri,
                percent_encoding::utf8_percent_encode(
                    &self.experiment_name,
                    percent_encoding::NON_ALPHANUMERIC
                )
            )))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if answer.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let status = answer.status();
        let body: Value = answer.json().await.map_err(|e| e.to_string())?;
        match body["experiment"]["experiment_id"].as_str() {
            Some(id) if status.is_success() => Ok(Some(id.to_string())),
            _ => Err(format!("{status}: {body}")),
        }
    }

    /// The experiment's id, made if it does not exist (another replica may make it first).
    async fn experiment_id(&self) -> Result<String, String> {
        self.experiment_id
            .get_or_try_init(|| async {
                if let Some(id) = self.find_experiment().await? {
                    return Ok(id);
                }
                let made = self
                    .signed(self.http.post(format!(
                        "{}/api/2.0/mlflow/experiments/create",
                        self.tracking_uri
                    )))
                    .json(&json!({"name": self.experiment_name}))
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let body: Value = made.json().await.map_err(|e| e.to_string())?;
                if let Some(id) = body["experiment_id"].as_str() {
                    return Ok(id.to_string());
                }
                self.find_experiment()
                    .await?
                    .ok_or_else(|| format!("cannot make the experiment: {body}"))
            })
            .await
            .cloned()
    }

    /// Sends the call's trace on a task of its own; failures are logged, never returned.
    pub fn record(self: &std::sync::Arc<Self>, call: GatewayCall) {
        self.sending.fetch_add(1, Ordering::SeqCst);
        let recorder = self.clone();
        tokio::spawn(async move {
            if let Err(e) = recorder.send(&call).await {
                tracing::warn!(endpoint = %call.endpoint, "the call's trace was not recorded: {e}");
            }
            recorder.sending.fetch_sub(1, Ordering::SeqCst);
            recorder.sent.notify_waiters();
        });
    }

    /// Waits until every trace recorded so far is sent (or `timeout` passes): a gateway that
    /// stops does not drop the traces of its last calls.
    pub async fn flush(&self, timeout: std::time::Duration) {
        let all_sent = async {
            loop {
                let sent = self.sent.notified();
                if self.sending.load(Ordering::SeqCst) == 0 {
                    return;
                }
                sent.await;
            }
        };
        let _ = tokio::time::timeout(timeout, all_sent).await;
    }

    async fn send(&self, call: &GatewayCall) -> Result<(), String> {
        let experiment = self.experiment_id().await?;
        let answer = self
            .signed(self.http.post(format!("{}/v1/traces", self.tracking_uri)))
            .header("x-mlflow-experiment-id", &experiment)
            .json(&otlp_export(call))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !answer.status().is_success() {
            let status = answer.status();
            return Err(format!(
                "{status}: {}",
                answer.text().await.unwrap_or_default()
            ));
        }
        Ok(())
    }
}

pub fn span_type(kind: Option<EndpointType>) -> &'static str {
    match kind {
        Some(EndpointType::Chat) => "CHAT_MODEL",
        Some(EndpointType::Completions) => "LLM",
        Some(EndpointType::Embeddings) => "EMBEDDING",
        None => "UNKNOWN",
    }
}

fn nanos(time: SystemTime) -> String {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
        .to_string()
}

fn hex_id(bytes: usize) -> String {
    let mut id = String::new();
    while id.len() < bytes * 2 {
        id.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    id.truncate(bytes * 2);
    id
}

/// MLflow keeps span attributes as JSON text.
fn attribute(key: &str, value: &Value) -> Value {
    json!({"key": key, "value": {"stringValue": value.to_string()}})
}

/// The call as an OTLP/JSON export of one root span.
pub fn otlp_export(call: &GatewayCall) -> Value {
    let mut attributes = vec![
        attribute("mlflow.spanType", &json!(span_type(call.kind))),
        attribute("mlflow.spanInputs", &call.inputs),
    ];
    if call.error.is_none() {
        attributes.push(attribute("mlflow.spanOutputs", &call.outputs));
    }
    attributes.push(attribute("mlflow.gateway.endpoint", &json!(call.endpoint)));
    let details = &call.details;
    if let Some(model) = &details.model {
        attributes.push(attribute("mlflow.llm.model", &json!(model)));
    }
    if let Some(provider) = &details.provider {
        attributes.push(attribute("mlflow.llm.provider", &json!(provider)));
    }
    if let Some(usage) = details.usage {
        attributes.push(attribute(
            "mlflow.chat.tokenUsage",
            &json!({
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "total_tokens": usage.input_tokens + usage.output_tokens,
            }),
        ));
    }
    if let Some(cost) = details.cost {
        attributes.push(attribute("mlflow.llm.cost", &cost.to_json()));
    }
    let status = match &call.error {
        None => json!({"code": 1}),
        Some(message) => json!({"code": 2, "message": message}),
    };
    json!({
        "resourceSpans": [{
            "resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": "mlox-gateway"}}
            ]},
            "scopeSpans": [{
                "scope": {"name": "mlox.gateway"},
                "spans": [{
                    "traceId": hex_id(16),
                    "spanId": hex_id(8),
                    "name": call.endpoint,
                    "kind": 1,
                    "startTimeUnixNano": nanos(call.started),
                    "endTimeUnixNano": nanos(call.ended),
                    "attributes": attributes,
                    "status": status,
                }]
            }]
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_one_root_span_with_mlflows_attributes() {
        let started = UNIX_EPOCH + std::time::Duration::from_millis(1_000);
        let call = GatewayCall {
            endpoint: "chat".into(),
            kind: Some(EndpointType::Chat),
            inputs: json!({"messages": [{"role": "user", "content": "hi"}]}),
            outputs: json!({"choices": []}),
            started,
            ended: started + std::time::Duration::from_millis(250),
            error: None,
            details: CallDetails {
                provider: Some("openai".into()),
                model: Some("gpt-test".into()),
                usage: Some(crate::catalog::Usage {
                    input_tokens: 3,
                    output_tokens: 2,
                    cached_input_tokens: 0,
                }),
                cost: Some(crate::catalog::Cost {
                    input_cost: 0.25,
                    output_cost: 0.5,
                }),
            },
        };
        let export = otlp_export(&call);
        let span = &export["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(span["name"], "chat");
        assert_eq!(span["traceId"].as_str().unwrap().len(), 32);
        assert_eq!(span["spanId"].as_str().unwrap().len(), 16);
        assert_eq!(span["startTimeUnixNano"], "1000000000");
        assert_eq!(span["endTimeUnixNano"], "1250000000");
        assert_eq!(span["status"]["code"], 1);
        let attrs: Vec<(&str, &str)> = span["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["key"].as_str().unwrap(),
                    a["value"]["stringValue"].as_str().unwrap(),
                )
            })
            .collect();
        assert!(attrs.contains(&("mlflow.spanType", "\"CHAT_MODEL\"")));
        assert!(attrs.contains(&(
            "mlflow.spanInputs",
            r#"{"messages":[{"content":"hi","role":"user"}]}"#
        )));
        assert!(attrs.contains(&("mlflow.llm.model", "\"gpt-test\"")));
        assert!(attrs.contains(&(
            "mlflow.chat.tokenUsage",
            r#"{"input_tokens":3,"output_tokens":2,"total_tokens":5}"#
        )));
        assert!(attrs.contains(&(
            "mlflow.llm.cost",
            r#"{"input_cost":0.25,"output_cost":0.5,"total_cost":0.75}"#
        )));
    }

    #[test]
    fn a_failed_call_is_an_error_span_without_outputs() {
        let now = SystemTime::now();
        let call = GatewayCall {
            endpoint: "embeddings".into(),
            kind: Some(EndpointType::Embeddings),
            inputs: json!({"input": "x"}),
            outputs: Value::Null,
            started: now,
            ended: now,
            error: Some("upstream timed out".into()),
            details: CallDetails::default(),
        };
        let span = &otlp_export(&call)["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(
            span["status"],
            json!({"code": 2, "message": "upstream timed out"})
        );
        assert!(
            !span["attributes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["key"] == "mlflow.spanOutputs")
        );
        assert!(span["attributes"].to_string().contains("EMBEDDING"));
    }
}
