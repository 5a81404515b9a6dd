//! The HTTP skin: MLflow's deployments-server routes (byte-compatible JSON) and OpenAI's `/v1`
//! routes over one [`Gateway`]. Handlers only decode, call the gateway and render; which status
//! a failure gets is [`GatewayError::status`]'s decision.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::catalog::{ModelCatalog, Usage, usage_of};
use crate::config::{EndpointConfig, EndpointType, Limit, RouteConfig, normalize_provider};
use crate::error::GatewayError;
use crate::gateway::{Answer, Gateway};
use crate::sse;
use crate::stored::{Answered, CallScope, EndpointSource, LoadedEndpoint};
use crate::traces::GatewayCall;
use crate::upstream::Upstream;

/// Largest request body read, in bytes: chat histories and embedding batches fit; anything
/// bigger is refused before it is buffered.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

/// MLflow's page size for `GET /api/2.0/endpoints/`.
pub const LIST_PAGE_SIZE: usize = 3000;

/// The gateway a request is answered by: the configuration current when the request arrived.
/// A reload swaps in a new [`Gateway`]; requests and streams already under way finish on the
/// one they started with, which lives as long as they hold it.
pub struct LiveGateway {
    current: std::sync::RwLock<Arc<Gateway>>,
}

impl LiveGateway {
    pub fn new(gateway: Gateway) -> Arc<LiveGateway> {
        Arc::new(LiveGateway {
            current: std::sync::RwLock::new(Arc::new(gateway)),
        })
    }

    pub fn current(&self) -> Arc<Gateway> {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Serves every request from now on with `gateway`.
    pub fn replace(&self, gateway: Gateway) {
        let gateway = Arc::new(gateway);
        match self.current.write() {
            Ok(mut current) => *current = gateway,
            Err(poisoned) => *poisoned.into_inner() = gateway,
        }
    }
}

/// The current gateway, taken once per request.
struct Current(Arc<Gateway>);

impl axum::extract::FromRequestParts<Arc<LiveGateway>> for Current {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        _: &mut axum::http::request::Parts,
        live: &Arc<LiveGateway>,
    ) -> Result<Self, Self::Rejection> {
        Ok(Current(live.current()))
    }
}

/// MLflow's and OpenAI's routes over one fixed gateway.
pub fn router(gateway: Gateway) -> Router {
    live_router(LiveGateway::new(gateway))
}

/// MLflow's and OpenAI's routes over a gateway that can be reloaded.
pub fn live_router(gateway: Arc<LiveGateway>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/api/2.0/endpoints/", get(list_endpoints))
        .route("/api/2.0/endpoints", get(list_endpoints))
        .route("/api/2.0/endpoints/{name}", get(get_endpoint))
        .route("/api/3.0/gateway/endpoint/{name}", get(get_endpoint))
        .route("/api/3.0/gateway/route/{name}", get(get_route))
        .route("/endpoints/{name}/invocations", post(invoke))
        .route("/gateway/{name}/invocations", post(invoke))
        .route("/v1/chat/completions", post(openai_chat))
        .route("/v1/completions", post(openai_completions))
        .route("/v1/embeddings", post(openai_embeddings))
        .route("/v1/models", get(openai_models))
        .route("/openapi.json", get(openapi_document))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(gateway)
}

/// The invocation routes of the endpoints kept in the tracking database, as MLflow's tracking
/// server serves them under `/gateway/`: `{name}/mlflow/invocations` (chat or embeddings by the
/// body's shape), OpenAI's `mlflow/v1/chat/completions` (the endpoint in `model`) and
/// `mlflow/v1/models`. Errors are FastAPI's `{"detail": …}`, as MLflow answers there. Calls are
/// priced from `catalog` and counted against the source's budgets.
pub fn stored_router<S: EndpointSource>(
    source: Arc<S>,
    upstream: Upstream,
    catalog: Arc<ModelCatalog>,
) -> Router {
    Router::new()
        .route(
            "/gateway/{name}/mlflow/invocations",
            post(stored_invocations::<S>),
        )
        .route(
            "/gateway/mlflow/v1/chat/completions",
            post(stored_chat::<S>),
        )
        .route("/gateway/mlflow/v1/models", get(stored_models::<S>))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(StoredState {
            source,
            upstream,
            catalog,
        })
}

struct StoredState<S> {
    source: Arc<S>,
    upstream: Upstream,
    catalog: Arc<ModelCatalog>,
}

impl<S> Clone for StoredState<S> {
    fn clone(&self) -> Self {
        StoredState {
            source: self.source.clone(),
            upstream: self.upstream.clone(),
            catalog: self.catalog.clone(),
        }
    }
}

/// The signed-in caller, when the server signs callers in.
type SignedIn = Option<axum::Extension<mlox_core::auth::User>>;

async fn stored_invocations<S: EndpointSource>(
    State(state): State<StoredState<S>>,
    Path(name): Path<String>,
    user: SignedIn,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match read_object(body) {
        Ok(body) => body,
        Err(e) => return detail_error(&e),
    };
    let kind = if body.contains_key("messages") {
        EndpointType::Chat
    } else if body.contains_key("input") {
        EndpointType::Embeddings
    } else {
        return detail_error(&GatewayError::BadRequest(
            "Invalid request: payload format must be either chat or embeddings".into(),
        ));
    };
    stored_call(&state, &name, user, kind, body).await
}

async fn stored_chat<S: EndpointSource>(
    State(state): State<StoredState<S>>,
    user: SignedIn,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut body = match read_object(body) {
        Ok(body) => body,
        Err(e) => return detail_error(&e),
    };
    let name = match body.remove("model") {
        Some(Value::String(name)) if !name.is_empty() => name,
        _ => {
            return detail_error(&GatewayError::BadRequest(
                "Missing required 'model' parameter in request body".into(),
            ));
        }
    };
    stored_call(&state, &name, user, EndpointType::Chat, body).await
}

async fn stored_call<S: EndpointSource>(
    state: &StoredState<S>,
    name: &str,
    user: SignedIn,
    kind: EndpointType,
    body: Map<String, Value>,
) -> Response {
    let LoadedEndpoint {
        endpoint,
        usage_experiment_id,
    } = match state.source.endpoint(name).await {
        Ok(loaded) => loaded,
        Err(e) => return detail_error(&e),
    };
    let scope = CallScope {
        endpoint_id: endpoint.id.clone(),
        username: user.map(|u| u.0.username),
    };
    let started = std::time::SystemTime::now();
    if let Err(e) = state.source.admit(&scope).await {
        if let Some(experiment_id) = &usage_experiment_id {
            let call =
                GatewayCall::finished(name, kind, Value::Object(body), started, &Err(e.clone()));
            state.source.record(experiment_id, call);
        }
        return detail_error(&e);
    }
    let inputs = usage_experiment_id
        .as_ref()
        .map(|_| Value::Object(body.clone()));
    let pass_usage_chunk = sse::client_wants_usage(&body);
    let allow_private = state.source.allow_private_destinations();
    let result = endpoint
        .invoke(&state.upstream, kind, body, allow_private)
        .await;
    let (result, answered_by) = match result {
        Ok(Answered { answer, model }) => (
            Ok(answer),
            Some((model.provider.clone(), model.model_name.clone())),
        ),
        Err(e) => (Err(e), None),
    };
    let mut trace = match (usage_experiment_id, inputs) {
        (Some(experiment_id), Some(inputs)) => Some((
            experiment_id,
            GatewayCall::finished(name, kind, inputs, started, &result),
        )),
        _ => None,
    };
    let Some((provider, model)) = answered_by else {
        if let Some((experiment_id, call)) = trace {
            state.source.record(&experiment_id, call);
        }
        return match result {
            Ok(answer) => answer_response(answer),
            Err(e) => detail_error(&e),
        };
    };
    if let Some((_, call)) = &mut trace {
        call.details.provider = Some(provider.clone());
        call.details.model = Some(model.clone());
    }
    let settle = Settlement {
        source: state.source.clone(),
        catalog: state.catalog.clone(),
        scope,
        provider,
        model,
        trace,
    };
    match result {
        Ok(Answer::Json(bytes)) => {
            let usage = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| usage_of(&v));
            tokio::spawn(settle.run(usage));
            answer_response(Answer::Json(bytes))
        }
        Ok(Answer::Stream(stream)) => {
            let tapped = sse::tap_usage(stream, pass_usage_chunk, move |usage| {
                // The stream may be dropped while the runtime shuts down, where nothing more
                // can be spawned; that last call then goes unsettled rather than panicking.
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(settle.run(usage));
                }
            });
            answer_response(Answer::Stream(tapped))
        }
        Err(e) => detail_error(&e),
    }
}

/// What is left to do once a stored endpoint's call is answered: price it, charge its
/// budgets and record its trace. Runs on a task of its own, never delaying the answer.
struct Settlement<S> {
    source: Arc<S>,
    catalog: Arc<ModelCatalog>,
    scope: CallScope,
    provider: String,
    model: String,
    trace: Option<(String, GatewayCall)>,
}

impl<S: EndpointSource> Settlement<S> {
    async fn run(self, usage: Option<Usage>) {
        let cost = match usage {
            Some(usage) => self
                .catalog
                .price(&normalize_provider(&self.provider), &self.model)
                .await
                .map(|price| price.cost(usage)),
            None => None,
        };
        if let Some(cost) = cost
            && cost.total() > 0.0
        {
            self.source.charge(self.scope, cost.total());
        }
        if let Some((experiment_id, mut call)) = self.trace {
            call.details.usage = usage;
            call.details.cost = cost;
            self.source.record(&experiment_id, call);
        }
    }
}

async fn stored_models<S: EndpointSource>(State(state): State<StoredState<S>>) -> Response {
    let mut names = match state.source.endpoint_names().await {
        Ok(names) => names,
        Err(e) => return detail_error(&e),
    };
    names.sort();
    let data: Vec<Value> = names
        .iter()
        .map(|(name, created_ms)| {
            serde_json::json!({
                "id": name,
                "object": "model",
                "created": created_ms / 1000,
                "owned_by": "mlflow",
            })
        })
        .collect();
    json_value(
        StatusCode::OK,
        &serde_json::json!({"object": "list", "data": data}),
    )
}

// ------------------------------------------------------------------------------- MLflow's API

async fn health() -> Response {
    json_response(StatusCode::OK, br#"{"status":"OK"}"#.to_vec())
}

async fn not_found() -> Response {
    json_response(StatusCode::NOT_FOUND, br#"{"detail":"Not Found"}"#.to_vec())
}

async fn method_not_allowed() -> Response {
    json_response(
        StatusCode::METHOD_NOT_ALLOWED,
        br#"{"detail":"Method Not Allowed"}"#.to_vec(),
    )
}

/// MLflow's `Endpoint` in its field order.
#[derive(Serialize)]
struct EndpointView<'a> {
    name: &'a str,
    endpoint_type: &'static str,
    model: ModelView<'a>,
    endpoint_url: String,
    limit: Option<LimitView<'a>>,
}

#[derive(Serialize)]
struct ModelView<'a> {
    name: Option<&'a str>,
    provider: &'static str,
}

#[derive(Serialize)]
struct LimitView<'a> {
    calls: u64,
    key: Option<&'a str>,
    renewal_period: &'a str,
}

impl<'a> EndpointView<'a> {
    fn new(e: &'a EndpointConfig) -> Self {
        EndpointView {
            name: &e.name,
            endpoint_type: e.endpoint_type.as_str(),
            model: ModelView {
                name: e.model_name.as_deref(),
                provider: e.provider.name(),
            },
            endpoint_url: format!("/gateway/{}/invocations", e.name),
            limit: e.limit.as_ref().map(LimitView::new),
        }
    }
}

impl<'a> LimitView<'a> {
    fn new(l: &'a Limit) -> Self {
        LimitView {
            calls: l.calls,
            key: l.key.as_deref(),
            renewal_period: &l.renewal_period,
        }
    }
}

#[derive(Serialize)]
struct EndpointList<'a> {
    endpoints: Vec<EndpointView<'a>>,
    next_page_token: Option<String>,
}

#[derive(Serialize)]
struct RouteView<'a> {
    name: &'a str,
    task_type: &'static str,
    destinations: Vec<DestinationView<'a>>,
    routing_strategy: &'static str,
}

#[derive(Serialize)]
struct DestinationView<'a> {
    name: &'a str,
    traffic_percentage: u8,
}

impl<'a> RouteView<'a> {
    fn new(r: &'a RouteConfig) -> Self {
        RouteView {
            name: &r.name,
            task_type: r.task_type.as_str(),
            destinations: r
                .destinations
                .iter()
                .map(|d| DestinationView {
                    name: &d.name,
                    traffic_percentage: d.traffic_percentage,
                })
                .collect(),
            routing_strategy: "TRAFFIC_SPLIT",
        }
    }
}

#[derive(Deserialize)]
struct PageQuery {
    page_token: Option<String>,
}

/// MLflow's page token: base64 of `{"index": N}` as Python's json.dumps writes it.
fn encode_page_token(index: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{{\"index\": {index}}}"))
}

fn decode_page_token(token: &str) -> Option<usize> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    match value.get("index")? {
        Value::Number(n) => n.as_u64().and_then(|n| usize::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

async fn list_endpoints(
    Current(gateway): Current,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let token = query.ok().and_then(|Query(q)| q.page_token);
    let start = match token.as_deref().map(decode_page_token) {
        None => 0,
        Some(Some(index)) => index,
        Some(None) => {
            return mlflow_error(&GatewayError::BadRequest(format!(
                "Invalid SearchRoutes token: {}. The index is not defined as a value that can be represented as a positive integer.",
                token.unwrap_or_default()
            )));
        }
    };
    let all: Vec<&EndpointConfig> = gateway.endpoints().collect();
    let end = start.saturating_add(LIST_PAGE_SIZE);
    let page = all
        .iter()
        .skip(start)
        .take(LIST_PAGE_SIZE)
        .map(|e| EndpointView::new(e))
        .collect();
    let next_page_token = (all.len() > end).then(|| encode_page_token(end));
    json_value(
        StatusCode::OK,
        &EndpointList {
            endpoints: page,
            next_page_token,
        },
    )
}

async fn get_endpoint(Current(gateway): Current, Path(name): Path<String>) -> Response {
    match gateway.endpoint(&name) {
        Some(e) => json_value(StatusCode::OK, &EndpointView::new(e)),
        None => mlflow_error(&GatewayError::NotFound(format!(
            "The endpoint '{name}' is not present or active on the server. Please verify the endpoint name."
        ))),
    }
}

async fn get_route(Current(gateway): Current, Path(name): Path<String>) -> Response {
    match gateway.route(&name) {
        Some(r) => json_value(StatusCode::OK, &RouteView::new(r)),
        None => mlflow_error(&GatewayError::NotFound(format!(
            "The route '{name}' is not present or active on the server. Please verify the route name."
        ))),
    }
}

/// Prometheus metrics of the calls (an mlox extension), when the gateway keeps them.
/// The OpenAPI document of the config being served.
async fn openapi_document(Current(gateway): Current) -> Response {
    json_value(
        StatusCode::OK,
        &crate::openapi::document(&gateway, env!("CARGO_PKG_VERSION")),
    )
}

async fn metrics(Current(gateway): Current) -> Response {
    match gateway.metrics() {
        Some(metrics) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            metrics.render(),
        )
            .into_response(),
        None => not_found().await,
    }
}

async fn invoke(
    Current(gateway): Current,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    // FastAPI registers one route per name, so an unknown name is its plain 404.
    if gateway.kind_of(&name).is_none() {
        return not_found().await;
    }
    let body = match read_object(body) {
        Ok(body) => body,
        Err(e) => return mlflow_error(&e),
    };
    match gateway.invoke(&name, body).await {
        Ok(answer) => answer_response(answer),
        Err(e) => mlflow_error(&e),
    }
}

// ------------------------------------------------------------------------------- OpenAI's API

async fn openai_chat(Current(gateway): Current, body: Result<Bytes, BytesRejection>) -> Response {
    openai_invoke(&gateway, EndpointType::Chat, body).await
}

async fn openai_completions(
    Current(gateway): Current,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    openai_invoke(&gateway, EndpointType::Completions, body).await
}

async fn openai_embeddings(
    Current(gateway): Current,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    openai_invoke(&gateway, EndpointType::Embeddings, body).await
}

async fn openai_invoke(
    gateway: &Gateway,
    kind: EndpointType,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let mut body = read_object(body)?;
        let name = match body.remove("model") {
            Some(Value::String(name)) => name,
            Some(_) => return Err(GatewayError::BadRequest("model must be a string".into())),
            None => {
                return Err(GatewayError::BadRequest(
                    "you must provide a model parameter: an endpoint or route name (GET /v1/models lists them)"
                        .into(),
                ));
            }
        };
        let Some(actual) = gateway.kind_of(&name) else {
            return Err(GatewayError::NotFound(format!(
                "The model `{name}` does not exist: it is not an endpoint or route of this gateway (GET /v1/models lists them)."
            )));
        };
        if actual != kind {
            let what = match kind {
                EndpointType::Chat => "a chat",
                EndpointType::Completions => "a completions",
                EndpointType::Embeddings => "an embeddings",
            };
            return Err(GatewayError::BadRequest(format!(
                "Endpoint '{name}' is not {what} endpoint."
            )));
        }
        gateway.invoke(&name, body).await
    }
    .await;
    match result {
        Ok(answer) => answer_response(answer),
        Err(e) => openai_error(&e),
    }
}

#[derive(Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: Vec<ModelEntry<'a>>,
}

#[derive(Serialize)]
struct ModelEntry<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
}

async fn openai_models(Current(gateway): Current) -> Response {
    let mut data: Vec<ModelEntry> = gateway
        .endpoints()
        .map(|e| ModelEntry {
            id: &e.name,
            object: "model",
            created: 0,
            owned_by: e.provider.name(),
        })
        .collect();
    data.extend(gateway.routes().map(|r| ModelEntry {
        id: &r.name,
        object: "model",
        created: 0,
        owned_by: "route",
    }));
    json_value(
        StatusCode::OK,
        &ModelList {
            object: "list",
            data,
        },
    )
}

// ------------------------------------------------------------------------------- rendering

fn read_object(body: Result<Bytes, BytesRejection>) -> Result<Map<String, Value>, GatewayError> {
    let bytes = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            GatewayError::PayloadTooLarge(format!(
                "the request body is larger than {MAX_REQUEST_BYTES} bytes"
            ))
        } else {
            GatewayError::BadRequest(format!("cannot read the request body: {rejection}"))
        }
    })?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(GatewayError::BadRequest(
            "the request body must be a JSON object".into(),
        )),
        Err(e) => Err(GatewayError::BadRequest(format!(
            "the request body is not valid JSON: {e}"
        ))),
    }
}

fn answer_response(answer: Answer) -> Response {
    match answer {
        Answer::Json(bytes) => json_response(StatusCode::OK, bytes.into()),
        Answer::Stream(events) => {
            let mut response = Response::new(Body::from_stream(events));
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream; charset=utf-8"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            // Proxies such as nginx would otherwise hold events back.
            headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
            response
        }
    }
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn json_value<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => json_response(status, body),
        Err(e) => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({"detail": format!("cannot encode the answer: {e}")})
                .to_string()
                .into_bytes(),
        ),
    }
}

fn with_retry_after(mut response: Response, retry_after: Option<Duration>) -> Response {
    if let Some(after) = retry_after {
        // Whole seconds, rounded up, so a client that waits that long is let through.
        let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        if let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    response
}

fn status_of(error: &GatewayError) -> StatusCode {
    StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_GATEWAY)
}

/// MLflow's error bodies: `{"detail": …}`, and slowapi's `{"error": …}` for rate limits.
fn mlflow_error(error: &GatewayError) -> Response {
    let body = match error {
        GatewayError::RateLimited { message, .. } => serde_json::json!({ "error": message }),
        other => serde_json::json!({ "detail": other.to_string() }),
    };
    with_retry_after(
        json_response(status_of(error), body.to_string().into_bytes()),
        error.retry_after(),
    )
}

/// FastAPI's `{"detail": …}`, as the tracking server's gateway answers every failure, a
/// budget's refusal included.
fn detail_error(error: &GatewayError) -> Response {
    with_retry_after(
        json_response(
            status_of(error),
            serde_json::json!({ "detail": error.to_string() })
                .to_string()
                .into_bytes(),
        ),
        error.retry_after(),
    )
}

/// OpenAI's error body: `{"error": {message, type, param, code}}`.
fn openai_error(error: &GatewayError) -> Response {
    with_retry_after(
        json_response(
            status_of(error),
            error.openai_body().to_string().into_bytes(),
        ),
        error.retry_after(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_like_mlflow() {
        // base64 of `{"index": 3000}` as Python writes it.
        assert_eq!(encode_page_token(3000), "eyJpbmRleCI6IDMwMDB9");
        assert_eq!(decode_page_token("eyJpbmRleCI6IDMwMDB9"), Some(3000));
        assert_eq!(decode_page_token("not base64"), None);
        assert_eq!(decode_page_token("eyJpbmRleCI6IC0xfQ=="), None);
    }
}
