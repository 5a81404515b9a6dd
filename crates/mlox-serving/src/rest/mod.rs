//! The REST skin: V2 inference routes (MLServer's and Triton's paths, with Triton's binary
//! tensor extension) and MLflow's scoring routes, all over one [`Dataplane`]. Handlers read
//! the body, call one operation and render its answer; every error is JSON — `{"error": …}`
//! on V2 routes, MLflow's `{"error_code", "message"}` on scoring routes — with 400 for bad
//! input, 404 for unknown models, 413 for oversized bodies and 503 while a model is not ready,
//! each the HTTP status its `Code` carries in mlox-core's error table.
//!
//! Routes:
//! - `GET /v2/health/live`, `GET /v2/health/ready`, `GET /v2`
//! - `GET /v2/models/{m}[/versions/{v}]`, `GET …/ready`, `POST …/infer`
//! - `POST /v2/repository/index`, `POST /v2/repository/models/{m}/load|unload`
//! - `POST /mlox/refresh`: look up aliases, stages and `latest` now (a registry webhook's
//!   target), answering `{"swapped": n}`
//! - `GET /ping`, `GET /health`, `GET /version`
//! - `GET /metrics`: Prometheus text (see [`crate::metrics`])
//! - `GET /v2/docs[/dataplane.json]`, `GET /v2/models/{m}/docs[/dataplane.json]`: OpenAPI
//! - `POST /invocations` (only while the server holds exactly one model)
//! - `POST /models/{m}[/versions/{v}]/invocations` (MLflow scoring for one model of many)
//! - `GET /v1/models`, `POST /v1/chat/completions`, `/v1/completions`, `/v1/embeddings`:
//!   OpenAI's API for language models (see [`openai`])

mod mlflow;
pub use mlflow::MLFLOW_VERSION;
mod docs;
mod openai;
mod v2;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use bytes::Bytes;
use http_body_util::BodyExt;
use mlox_core::{Code, Error};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::Dataplane;

/// Limits of the REST server.
#[derive(Clone, Debug)]
pub struct RestConfig {
    /// Largest request body accepted; larger ones get 413.
    pub max_body_bytes: usize,
}

impl Default for RestConfig {
    fn default() -> Self {
        RestConfig {
            max_body_bytes: 64 * 1024 * 1024,
        }
    }
}

#[derive(Clone)]
pub(crate) struct RestState {
    pub dataplane: Arc<Dataplane>,
    pub config: Arc<RestConfig>,
}

/// Every REST route over `dataplane`; merge it into a larger router or pass it to [`serve`].
pub fn router(dataplane: Arc<Dataplane>, config: RestConfig) -> Router {
    let state = RestState {
        dataplane,
        config: Arc::new(config),
    };
    Router::new()
        .route("/v2/health/live", get(v2::live))
        .route("/v2/health/ready", get(v2::ready))
        .route("/v2", get(v2::server_metadata))
        .route("/v2/models/{model}", get(v2::model_metadata))
        .route(
            "/v2/models/{model}/versions/{version}",
            get(v2::model_metadata_version),
        )
        .route("/v2/models/{model}/ready", get(v2::model_ready))
        .route(
            "/v2/models/{model}/versions/{version}/ready",
            get(v2::model_ready_version),
        )
        .route("/v2/models/{model}/infer", post(v2::infer))
        .route(
            "/v2/models/{model}/versions/{version}/infer",
            post(v2::infer_version),
        )
        .route("/v2/repository/index", post(v2::repository_index))
        .route("/v2/repository/models/{model}/load", post(v2::load_model))
        .route(
            "/v2/repository/models/{model}/unload",
            post(v2::unload_model),
        )
        .route("/mlox/refresh", post(v2::refresh))
        .route("/ping", get(mlflow::ping))
        .route("/health", get(mlflow::ping))
        .route("/version", get(mlflow::version))
        .route("/invocations", post(mlflow::invocations))
        .route(
            "/models/{model}/invocations",
            post(mlflow::invocations_model),
        )
        .route(
            "/models/{model}/versions/{version}/invocations",
            post(mlflow::invocations_version),
        )
        .route("/v1/models", get(openai::models))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/completions", post(openai::completions))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/metrics", get(metrics))
        .route("/v2/docs", get(docs::page))
        .route("/v2/docs/dataplane.json", get(docs::document))
        .nest_service("/v2/docs/swagger-ui", mlox_web::swagger_ui_router())
        .route("/v2/models/{model}/docs", get(docs::model_page))
        .route(
            "/v2/models/{model}/docs/dataplane.json",
            get(docs::model_document),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), admit))
        .layer(axum::middleware::from_fn(request_id))
        .with_state(state)
}

/// What a request needs from the gate: nothing (probes, metrics, docs), a signed-in caller,
/// or USE on one model.
enum Needs {
    Nothing,
    SignedIn,
    Model(String),
}

fn needs(path: &str) -> Option<Needs> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    Some(match segments.as_slice() {
        ["v2"] | ["v2", "health", ..] | ["ping" | "health" | "version" | "metrics"] => {
            Needs::Nothing
        }
        ["v2", "docs", ..] => Needs::Nothing,
        ["v2", "models", model, ..]
        | ["models", model, ..]
        | ["v2", "repository", "models", model, ..] => Needs::Model((*model).to_string()),
        // The body names the model; read below.
        ["v1", "chat" | "completions" | "embeddings", ..] => return None,
        _ => Needs::SignedIn,
    })
}

/// The gate of `mlox serve --auth-tracking-uri`: 401 without accepted credentials, 403 without
/// USE on the model, both in the V2 error shape. Ungated servers pass every request.
async fn admit(
    axum::extract::State(state): axum::extract::State<RestState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !state.dataplane.gated() {
        return next.run(request).await;
    }
    let authorization = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let path = request.uri().path().to_string();
    let (request, model) = match needs(&path) {
        Some(Needs::Nothing) => return next.run(request).await,
        Some(Needs::SignedIn) if path == "/invocations" => (request, state.dataplane.only_model()),
        Some(Needs::SignedIn) => (request, None),
        Some(Needs::Model(model)) => (request, Some(model)),
        None => {
            let (parts, body) = request.into_parts();
            let bytes = match read_body(body, state.config.max_body_bytes).await {
                Ok(bytes) => bytes,
                Err(err) => return V2Error(err).into_response(),
            };
            let named = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("model").and_then(|m| m.as_str()).map(str::to_string));
            let model = named.or_else(|| state.dataplane.only_model());
            (
                axum::extract::Request::from_parts(parts, Body::from(bytes)),
                model,
            )
        }
    };
    match state
        .dataplane
        .admit(authorization.as_deref(), model.as_deref())
        .await
    {
        Ok(()) => next.run(request).await,
        Err(refusal) => refused(refusal),
    }
}

fn refused(refusal: mlox_core::auth::Refusal) -> Response {
    use mlox_core::auth::Refusal;
    let (status, message) = match refusal {
        Refusal::Unauthenticated => (
            StatusCode::UNAUTHORIZED,
            "You are not authenticated: send a personal access token (Authorization: Bearer) or basic credentials of the tracking server.".to_string(),
        ),
        Refusal::Denied => (
            StatusCode::FORBIDDEN,
            "Permission denied: using this model needs USE on it.".to_string(),
        ),
        Refusal::Unavailable(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Credentials cannot be checked now: {why}"),
        ),
    };
    let mut response =
        (status, axum::Json(serde_json::json!({ "error": message }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"mlflow\""),
        );
    }
    response
}

/// Gives every request an `x-request-id` (the caller's, else a fresh UUID) and answers with
/// it, so a request can be followed through logs and proxies; V2 inference uses it as the
/// response `id` when the body has none.
async fn request_id(mut request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let id = match request.headers().get(REQUEST_ID) {
        Some(id) => id.clone(),
        None => {
            let fresh = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("-"));
            request.headers_mut().insert(REQUEST_ID, fresh.clone());
            fresh
        }
    };
    let mut response = next.run(request).await;
    response.headers_mut().insert(REQUEST_ID, id);
    response
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

async fn metrics(axum::extract::State(s): axum::extract::State<RestState>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.dataplane.metrics_text(),
    )
        .into_response()
}

/// Serves [`router`] on `listener` until `shutdown` is cancelled, then drains open requests.
pub async fn serve(
    listener: TcpListener,
    dataplane: Arc<Dataplane>,
    config: RestConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // Responses are small and written in pieces; without NODELAY, Nagle and delayed ACKs
    // add tens of milliseconds to a sub-millisecond prediction.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router(dataplane, config))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// Serves the Prometheus metrics alone at `path` on `listener` (MLServer's `metrics_port` and
/// `metrics_endpoint`), so scrapers need no access to the inference port, until `shutdown` is
/// cancelled. The inference port keeps its own `/metrics`.
pub async fn serve_metrics(
    listener: TcpListener,
    dataplane: Arc<Dataplane>,
    path: &str,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    let app = Router::new()
        .route(&path, get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(RestState {
            dataplane,
            config: Arc::new(RestConfig::default()),
        });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

async fn not_found(method: Method, uri: Uri) -> Response {
    V2Error::from(Error::not_found(format!(
        "no route for {method} {}",
        uri.path()
    )))
    .into_response()
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    V2Error::from(Error::new(
        Code::MethodNotAllowed,
        format!("{} does not accept {method}", uri.path()),
    ))
    .into_response()
}

/// A V2 error: `{"error": message}` with the status of its code.
#[derive(Debug)]
pub(crate) struct V2Error(Error);

impl From<Error> for V2Error {
    fn from(err: Error) -> Self {
        V2Error(err)
    }
}

/// The HTTP status of `code`, from mlox-core's error table.
pub(crate) fn http_status(code: Code) -> StatusCode {
    StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A readiness probe's status: 200 when ready, else the status of a temporarily unavailable
/// service (503); probes and clients read the status, not the body.
pub(crate) fn probe_status(ok: bool) -> StatusCode {
    if ok {
        StatusCode::OK
    } else {
        http_status(Code::TemporarilyUnavailable)
    }
}

/// Whether a failure is the server's own (logged), rather than the caller's or a model that
/// is not ready yet.
pub(crate) fn is_server_fault(code: Code) -> bool {
    code.http_status() >= 500 && code != Code::TemporarilyUnavailable
}

impl IntoResponse for V2Error {
    fn into_response(self) -> Response {
        let V2Error(err) = self;
        let status = http_status(err.code);
        if is_server_fault(err.code) {
            tracing::error!(%status, message = %err.message, "request failed");
        }
        let body = serde_json::json!({ "error": err.message });
        (status, axum::Json(body)).into_response()
    }
}

/// Reads a whole body up to the configured limit; the 413 says what the limit is.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, Error> {
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(Error::new(
                Code::PayloadTooLarge,
                format!("the request body is larger than the server's limit of {limit} bytes"),
            ))
        }
        Err(e) => Err(Error::bad_request(format!(
            "could not read the request body: {e}"
        ))),
    }
}
