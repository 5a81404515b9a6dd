//! Admission to `mlox serve` and `mlox gateway` with the tracking server's users: the caller's
//! `Authorization` header (a personal access token or basic credentials) is shown to the
//! tracking server, which says who it is (`users/current`) and whether they have USE on the
//! served model or gateway endpoint (`users/permissions/get`). Answers are remembered for a
//! short while, so a busy model server asks once per caller and resource, not per request.

use crate::credentials::token_digest;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use mlox_core::auth::{AccessGate, GateFuture, Refusal, ResourceType};
use mlox_core::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long an admission is remembered; a revoked token or grant takes this long to bite.
const ADMITTED_FOR: Duration = Duration::from_secs(30);
/// How long a refusal is remembered (short: a grant just made should work soon).
const REFUSED_FOR: Duration = Duration::from_secs(5);
const MAX_REMEMBERED: usize = 100_000;

type Verdict = (Instant, std::result::Result<(), Refusal>);

/// A gate that asks a tracking server running with `--app-name basic-auth`.
pub struct RemoteGate {
    tracking_uri: String,
    resource_type: ResourceType,
    client: reqwest::Client,
    remembered: Mutex<HashMap<(String, Option<String>), Verdict>>,
}

impl RemoteGate {
    pub fn new(tracking_uri: &str, resource_type: ResourceType) -> Result<RemoteGate> {
        let tracking_uri = tracking_uri.trim_end_matches('/').to_string();
        if !(tracking_uri.starts_with("http://") || tracking_uri.starts_with("https://")) {
            return Err(Error::invalid(format!(
                "--auth-tracking-uri must be the tracking server's http(s):// address, got '{tracking_uri}'"
            )));
        }
        // https tracking servers need a TLS provider; ring is the one every mlox client uses.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Error::internal(format!("cannot build an HTTP client: {e}")))?;
        Ok(RemoteGate {
            tracking_uri,
            resource_type,
            client,
            remembered: Mutex::default(),
        })
    }

    async fn check(
        &self,
        authorization: Option<&str>,
        resource: Option<&str>,
    ) -> std::result::Result<(), Refusal> {
        let Some(authorization) = authorization.filter(|a| !a.trim().is_empty()) else {
            return Err(Refusal::Unauthenticated);
        };
        let key = (token_digest(authorization), resource.map(str::to_string));
        if let Ok(remembered) = self.remembered.lock()
            && let Some((at, verdict)) = remembered.get(&key)
        {
            let fresh_for = if verdict.is_ok() {
                ADMITTED_FOR
            } else {
                REFUSED_FOR
            };
            if at.elapsed() < fresh_for {
                return verdict.clone();
            }
        }
        let verdict = self.ask(authorization, resource).await;
        if !matches!(verdict, Err(Refusal::Unavailable(_)))
            && let Ok(mut remembered) = self.remembered.lock()
        {
            if remembered.len() >= MAX_REMEMBERED {
                remembered.clear();
            }
            remembered.insert(key, (Instant::now(), verdict.clone()));
        }
        verdict
    }

    async fn ask(
        &self,
        authorization: &str,
        resource: Option<&str>,
    ) -> std::result::Result<(), Refusal> {
        let unavailable = |e: reqwest::Error| Refusal::Unavailable(e.to_string());
        let current = self
            .client
            .get(format!(
                "{}/api/2.0/mlflow/users/current",
                self.tracking_uri
            ))
            .header(header::AUTHORIZATION, authorization)
            .send()
            .await
            .map_err(unavailable)?;
        match current.status() {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED | StatusCode::TOO_MANY_REQUESTS => {
                return Err(Refusal::Unauthenticated);
            }
            other => {
                return Err(Refusal::Unavailable(format!(
                    "the tracking server answered {other} to users/current (is it running with --app-name basic-auth?)"
                )));
            }
        }
        let Some(resource) = resource else {
            return Ok(());
        };
        let user: serde_json::Value =
            serde_json::from_slice(&current.bytes().await.map_err(unavailable)?)
                .unwrap_or_default();
        let Some(username) = user["user"]["username"].as_str() else {
            return Err(Refusal::Unavailable(
                "the tracking server's users/current named no user".to_string(),
            ));
        };
        let permission = self
            .client
            .get(format!(
                "{}/api/3.0/mlflow/users/permissions/get?username={}&resource_type={}&resource_id={}",
                self.tracking_uri,
                encode(username),
                self.resource_type.name(),
                encode(resource),
            ))
            .header(header::AUTHORIZATION, authorization)
            .send()
            .await
            .map_err(unavailable)?;
        if !permission.status().is_success() {
            return Err(Refusal::Denied);
        }
        let answer: serde_json::Value =
            serde_json::from_slice(&permission.bytes().await.map_err(unavailable)?)
                .unwrap_or_default();
        if answer["allowed"].as_bool() == Some(true) {
            Ok(())
        } else {
            Err(Refusal::Denied)
        }
    }
}

fn encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

impl AccessGate for RemoteGate {
    fn admit<'a>(
        &'a self,
        authorization: Option<&'a str>,
        resource: Option<&'a str>,
    ) -> GateFuture<'a> {
        Box::pin(self.check(authorization, resource))
    }
}

/// What a gateway request needs: nothing (health), a signed-in caller (listings), or USE on
/// the endpoint its path or its body's `model` names.
fn gateway_endpoint(path: &str, body: Option<&serde_json::Value>) -> Option<Option<String>> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["health"] => None,
        ["endpoints" | "gateway", name, "invocations"]
        | ["api", "2.0", "endpoints", name]
        | ["api", "3.0", "gateway", "endpoint" | "route", name] => Some(Some((*name).to_string())),
        ["v1", "chat" | "completions" | "embeddings", ..] => Some(
            body.and_then(|b| b.get("model"))
                .and_then(|m| m.as_str())
                .map(str::to_string),
        ),
        _ => Some(None),
    }
}

/// The layer of `mlox gateway --auth-tracking-uri`; refusals in the gateway's own error shape
/// (`{"detail": …}`).
pub async fn guard_gateway(
    State(gate): State<Arc<RemoteGate>>,
    request: Request,
    next: Next,
) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let path = request.uri().path().to_string();
    let (request, body) = if path.starts_with("/v1/") && request.method() == "POST" {
        let (parts, body) = request.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, 16 * 1024 * 1024).await else {
            return detail(
                StatusCode::PAYLOAD_TOO_LARGE,
                "The request body is too large.",
            );
        };
        let value = serde_json::from_slice::<serde_json::Value>(&bytes).ok();
        (Request::from_parts(parts, Body::from(bytes)), value)
    } else {
        (request, None)
    };
    let Some(endpoint) = gateway_endpoint(&path, body.as_ref()) else {
        return next.run(request).await;
    };
    match gate
        .check(authorization.as_deref(), endpoint.as_deref())
        .await
    {
        Ok(()) => next.run(request).await,
        Err(Refusal::Unauthenticated) => {
            let mut response = detail(StatusCode::UNAUTHORIZED, "You are not authenticated.");
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"mlflow\""),
            );
            response
        }
        Err(Refusal::Denied) => detail(
            StatusCode::FORBIDDEN,
            "Permission denied: this endpoint needs USE on it.",
        ),
        Err(Refusal::Unavailable(why)) => detail(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("Credentials cannot be checked now: {why}"),
        ),
    }
}

fn detail(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "detail": message }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_requests_name_their_endpoint() {
        let body = serde_json::json!({"model": "chat"});
        assert_eq!(gateway_endpoint("/health", None), None);
        assert_eq!(
            gateway_endpoint("/endpoints/chat/invocations", None),
            Some(Some("chat".to_string()))
        );
        assert_eq!(
            gateway_endpoint("/gateway/embed/invocations", None),
            Some(Some("embed".to_string()))
        );
        assert_eq!(
            gateway_endpoint("/v1/chat/completions", Some(&body)),
            Some(Some("chat".to_string()))
        );
        assert_eq!(gateway_endpoint("/api/2.0/endpoints/", None), Some(None));
        assert_eq!(gateway_endpoint("/v1/models", None), Some(None));
    }

    #[test]
    fn only_http_tracking_servers_are_accepted() {
        assert!(RemoteGate::new("http://127.0.0.1:5000/", ResourceType::RegisteredModel).is_ok());
        assert!(RemoteGate::new("file:///tmp", ResourceType::RegisteredModel).is_err());
    }
}
