//! MLflow's scoring routes, answering as `mlflow models serve` does: `/ping` and `/health`
//! with a newline, `/version` with the MLflow version we speak, `{"predictions": …}` for
//! scoring and `{"error_code", "message"}` errors. Besides the global `/invocations`, every
//! model has its own `/models/{m}[/versions/{v}]/invocations`, since one server may hold many.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use mlox_core::{Code, Error};
use serde_json::json;

use super::{RestState, http_status, is_server_fault, probe_status, read_body};
use crate::ScoringFormat;
use crate::dataplane::Scoring;

/// The MLflow release whose scoring protocol these routes follow; clients read it from
/// `/version`.
pub const MLFLOW_VERSION: &str = "3.17.2";

pub(super) async fn ping(State(s): State<RestState>) -> Response {
    (probe_status(s.dataplane.ready()), "\n").into_response()
}

pub(super) async fn version() -> &'static str {
    MLFLOW_VERSION
}

pub(super) async fn invocations(
    State(s): State<RestState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    score(s, None, headers, body).await
}

pub(super) async fn invocations_model(
    State(s): State<RestState>,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    score(s, Some((model, None)), headers, body).await
}

pub(super) async fn invocations_version(
    State(s): State<RestState>,
    Path((model, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    score(s, Some((model, Some(version))), headers, body).await
}

#[derive(serde::Serialize)]
struct Scored {
    predictions: crate::scoring::Predictions,
}

async fn score(
    s: RestState,
    model: Option<(String, Option<String>)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let format = match format(&headers) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let body = match read_body(body, s.config.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return error_response(e),
    };
    let target = model.as_ref().map(|(m, v)| (m.as_str(), v.as_deref()));
    match s.dataplane.invocations(target, &body, format).await {
        Ok(Scoring::Predictions(predictions)) => Json(Scored { predictions }).into_response(),
        Ok(Scoring::Unwrapped(value)) => Json(value).into_response(),
        Err(e) => error_response(e),
    }
}

/// The body format from `Content-Type`; MLflow's clients always send one, curl users often
/// do not, so a missing type means JSON.
fn format(headers: &HeaderMap) -> Result<ScoringFormat, Box<Response>> {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return Ok(ScoringFormat::Json);
    };
    let full = value.to_str().unwrap_or_default();
    let essence = full
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "" | "application/json" => Ok(ScoringFormat::Json),
        "text/csv" => Ok(ScoringFormat::Csv),
        "application/vnd.apache.parquet" => Err(Box::new(error_response(Error::new(
            Code::UnsupportedMediaType,
            "Parquet bodies are not supported yet; send JSON or CSV",
        )))),
        _ => Err(Box::new(error_response(Error::new(
            Code::UnsupportedMediaType,
            format!(
                "This predictor only supports the following content types: text/csv, \
                 application/json. Got '{full}'."
            ),
        )))),
    }
}

/// MLflow's `{"error_code", "message"}` with the status of the error's code.
fn error_response(e: Error) -> Response {
    let status = http_status(e.code);
    if is_server_fault(e.code) {
        tracing::error!(%status, message = %e.message, "scoring request failed");
    }
    (
        status,
        Json(json!({ "error_code": e.code.as_str(), "message": e.message })),
    )
        .into_response()
}
