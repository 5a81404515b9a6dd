//! One log line per request, as operators read them: method, path, status, latency and the
//! request id (the caller's `x-request-id`, else a fresh one, echoed on the response). Client
//! errors are logged at `info` with their MLflow `error_code`; server errors at `error` with
//! the message that says why.

use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What an error response carried, left on the response for the log line.
#[derive(Clone, Debug)]
pub struct LoggedError {
    pub error_code: &'static str,
    pub message: String,
}

/// The middleware: `axum::middleware::from_fn(access_log::log_request)`.
pub async fn log_request(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = match request.headers().get(REQUEST_ID) {
        Some(id) => id.clone(),
        None => {
            let fresh = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("-"));
            request.headers_mut().insert(REQUEST_ID, fresh.clone());
            fresh
        }
    };
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let mut response = next.run(request).await;
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_micros() as f64 / 1000.0;
    let request_id = id.to_str().unwrap_or("-");
    match response.extensions().get::<LoggedError>() {
        Some(error) if status >= 500 => tracing::error!(
            %method, path = %path, status, latency_ms, request_id = %request_id,
            error_code = %error.error_code, cause = %error.message,
            "request failed"
        ),
        None if status >= 500 => tracing::error!(
            %method, path = %path, status, latency_ms, request_id = %request_id,
            "request failed"
        ),
        Some(error) => tracing::info!(
            %method, path = %path, status, latency_ms, request_id = %request_id,
            error_code = %error.error_code,
            "request"
        ),
        None => tracing::info!(
            %method, path = %path, status, latency_ms, request_id = %request_id,
            "request"
        ),
    }
    response.headers_mut().insert(REQUEST_ID, id);
    response
}
