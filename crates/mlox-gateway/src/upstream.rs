//! Calls to upstreams: one pooled keep-alive HTTP client for the whole gateway, a timeout per
//! attempt, and the endpoint's retry policy.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

use crate::error::GatewayError;
use crate::provider::UpstreamRequest;
use crate::retry::{RetryPolicy, is_retryable_status, parse_retry_after};

/// Longest upstream error text passed on to the client.
const MAX_ERROR_MESSAGE: usize = 2000;

/// The shared HTTP client. Connections to each upstream are kept alive and reused.
#[derive(Clone)]
pub struct Upstream {
    client: reqwest::Client,
}

/// How one attempt failed.
enum Failure {
    /// Worth another attempt (after `retry_after`, if the upstream said).
    Retryable {
        error: GatewayError,
        retry_after: Option<Duration>,
    },
    Final(GatewayError),
}

impl Upstream {
    pub fn new() -> Result<Self, String> {
        // rustls needs one process-wide crypto provider; ring keeps aws-lc out of the build.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(10))
            // A redirected POST would be replayed as a GET by the default policy; an upstream
            // that redirects is misconfigured, and its 3xx is answered as a bad gateway.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Upstream { client })
    }

    fn request(&self, call: &UpstreamRequest) -> reqwest::RequestBuilder {
        let mut builder = self.client.post(&call.url).json(&call.body);
        if let Some(key) = &call.bearer {
            builder = builder.bearer_auth(key.trim_end());
        }
        for (name, value) in &call.headers {
            builder = builder.header(*name, value.trim_end());
        }
        if let Some(org) = &call.organization {
            builder = builder.header("OpenAI-Organization", org);
        }
        if call.stream {
            builder = builder.header(reqwest::header::ACCEPT, "text/event-stream");
        }
        builder
    }

    /// One call whose whole answer is read: the body of a success status.
    pub async fn call(
        &self,
        call: &UpstreamRequest,
        policy: &RetryPolicy,
        timeout: Duration,
    ) -> Result<Bytes, GatewayError> {
        with_retries(policy, || async {
            let attempt = async {
                let response = self.request(call).send().await.map_err(send_failure)?;
                let response = check_status(response).await?;
                response.bytes().await.map_err(|e| {
                    Failure::Final(GatewayError::BadGateway(format!(
                        "the upstream's answer broke off: {e}"
                    )))
                })
            };
            match tokio::time::timeout(timeout, attempt).await {
                Ok(result) => result,
                Err(_) => Err(timed_out(timeout)),
            }
        })
        .await
    }

    /// One streamed call: retried until the upstream answers with a success status, after
    /// which the body is the caller's to read, chunk by chunk. The timeout covers the wait
    /// for that status only, so a long stream is not cut.
    pub async fn open_stream(
        &self,
        call: &UpstreamRequest,
        policy: &RetryPolicy,
        timeout: Duration,
    ) -> Result<reqwest::Response, GatewayError> {
        with_retries(policy, || async {
            let attempt = async {
                let response = self.request(call).send().await.map_err(send_failure)?;
                check_status(response).await
            };
            match tokio::time::timeout(timeout, attempt).await {
                Ok(result) => result,
                Err(_) => Err(timed_out(timeout)),
            }
        })
        .await
    }
}

fn timed_out(timeout: Duration) -> Failure {
    Failure::Retryable {
        error: GatewayError::Timeout(format!(
            "the upstream did not answer within {} s",
            timeout.as_secs_f64()
        )),
        retry_after: None,
    }
}

async fn with_retries<T, F, Fut>(policy: &RetryPolicy, mut attempt: F) -> Result<T, GatewayError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let attempts = policy.max_attempts.max(1);
    let mut number = 1;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(Failure::Final(error)) => return Err(error),
            Err(Failure::Retryable { error, retry_after }) => {
                if number >= attempts {
                    return Err(error);
                }
                let wait = match retry_after {
                    // The upstream asked for more patience than the policy allows: its
                    // answer (with its Retry-After) goes to the client instead.
                    Some(after) if after > policy.max_retry_after => return Err(error),
                    Some(after) => after.max(policy.backoff_for(number)),
                    None => policy.backoff_for(number),
                };
                tracing::debug!(attempt = number, wait_ms = wait.as_millis() as u64, %error, "retrying upstream call");
                tokio::time::sleep(wait).await;
                number += 1;
            }
        }
    }
}

fn send_failure(e: reqwest::Error) -> Failure {
    let error = GatewayError::BadGateway(format!("cannot reach the upstream: {}", error_chain(&e)));
    if e.is_connect() || e.is_timeout() {
        Failure::Retryable {
            error,
            retry_after: None,
        }
    } else {
        Failure::Final(error)
    }
}

/// reqwest's own message is generic ("error sending request"); the cause says what happened.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

async fn check_status(response: reqwest::Response) -> Result<reqwest::Response, Failure> {
    let status = response.status().as_u16();
    if response.status().is_success() {
        return Ok(response);
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let body = response.bytes().await.unwrap_or_default();
    let error = GatewayError::Upstream {
        status,
        message: upstream_message(status, &body),
        retry_after,
    };
    if is_retryable_status(status) {
        Err(Failure::Retryable { error, retry_after })
    } else {
        Err(Failure::Final(error))
    }
}

/// The message inside an upstream's error body: OpenAI's `error.message`, FastAPI's `detail`,
/// MLflow's `message`, or the text itself.
pub fn upstream_message(status: u16, body: &[u8]) -> String {
    let from_json = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            let text = v
                .pointer("/error/message")
                .or_else(|| v.get("detail"))
                .or_else(|| v.get("message"))
                .or_else(|| v.get("error"))?;
            Some(match text {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        });
    let mut message = from_json.unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
    if message.is_empty() {
        message = format!("the upstream answered {status}");
    }
    if message.len() > MAX_ERROR_MESSAGE {
        let mut cut = MAX_ERROR_MESSAGE;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
    message
}
