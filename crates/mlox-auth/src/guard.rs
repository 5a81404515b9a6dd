//! The layer every request of a protected server passes: sign-in, the route's rule from
//! `mlox_core::auth`, the resource the request names (read from its path, query or body), the
//! caller's permission on it, and the few things that happen around a handler: the caller
//! recorded as a new run's author, MANAGE for whoever creates an experiment or a model, grants
//! that follow a model's rename or deletion, and searches cut down to what the caller may read.

use crate::{Auth, Caller};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use mlox_core::auth::{Access, Listing, Permission, ResourceType, Rule, Target, User, rule_for};
use mlox_core::{Code, Error, Result};
use mlox_store::auth::OwnedBy;
use mlox_tracking::error::error_response;
use mlox_tracking::request::{MAX_JSON_BODY, query_to_json};
use serde_json::Value;
use std::sync::Arc;

const UNAUTHENTICATED: &str = "You are not authenticated. Please see \
    https://www.mlflow.org/docs/latest/auth/index.html#authenticating-to-mlflow on how to \
    authenticate.";

/// The 401 MLflow answers, with the challenge browsers show a sign-in prompt for.
pub(crate) fn challenge() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [
            (header::WWW_AUTHENTICATE, "Basic realm=\"mlflow\""),
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        ],
        UNAUTHENTICATED,
    )
        .into_response()
}

pub(crate) fn denied() -> Response {
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Permission denied",
    )
        .into_response()
}

fn locked(retry_after: u64) -> Response {
    let mut response = error_response(&Error::new(
        Code::RequestLimitExceeded,
        format!("Too many failed sign-ins for this user; try again in {retry_after} seconds."),
    ));
    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    if let Ok(value) = HeaderValue::from_str(&retry_after.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

enum SignIn {
    User(User),
    /// No credentials, or wrong ones.
    Refused,
    Locked(u64),
}

/// How a signed-in request proved who it is; the UI offers signing out only for sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ViaSession(pub bool);

async fn sign_in(auth: &Auth, headers: &HeaderMap) -> Result<(SignIn, ViaSession)> {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        let Some(secret) = crate::session::session_secret(headers) else {
            return Ok((SignIn::Refused, ViaSession(false)));
        };
        let signed_in = match auth.token_user(secret).await? {
            Some(user) => SignIn::User(user),
            None => SignIn::Refused,
        };
        return Ok((signed_in, ViaSession(true)));
    };
    Ok((sign_in_with_header(auth, value).await?, ViaSession(false)))
}

async fn sign_in_with_header(auth: &Auth, value: &str) -> Result<SignIn> {
    let (scheme, credential) = value.trim().split_once(' ').unwrap_or((value, ""));
    let credential = credential.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let Some((username, password)) = base64::engine::general_purpose::STANDARD
            .decode(credential)
            .ok()
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|text| {
                text.split_once(':')
                    .map(|(u, p)| (u.to_string(), p.to_string()))
            })
        else {
            return Ok(SignIn::Refused);
        };
        return sign_in_with_password(auth, &username, &password).await;
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok(match auth.token_user(credential).await? {
            Some(user) => SignIn::User(user),
            None => SignIn::Refused,
        });
    }
    Ok(SignIn::Refused)
}

/// The user these credentials belong to, if they are right (and the username not locked).
pub(crate) async fn check_password(
    auth: &Auth,
    username: &str,
    password: &str,
) -> Result<Option<User>> {
    Ok(
        match sign_in_with_password(auth, username, password).await? {
            SignIn::User(user) => Some(user),
            SignIn::Refused | SignIn::Locked(_) => None,
        },
    )
}

async fn sign_in_with_password(auth: &Auth, username: &str, password: &str) -> Result<SignIn> {
    if let crate::credentials::Gate::Locked(seconds) = auth.credentials.gate(username) {
        return Ok(SignIn::Locked(seconds));
    }
    if let Some(user) = auth.credentials.remembered(username, password) {
        return Ok(SignIn::User(user));
    }
    let stored = auth.users.user(username).await?;
    // An unknown username costs the same argon2 run as a wrong password, so timing does not
    // tell which usernames exist.
    let hash = stored
        .as_ref()
        .map(|s| s.password_hash.clone())
        .unwrap_or_else(|| auth.decoy_hash.clone());
    let candidate = password.to_string();
    let verified =
        tokio::task::spawn_blocking(move || crate::credentials::verify_password(&candidate, &hash))
            .await
            .unwrap_or(false);
    match stored {
        Some(stored) if verified => {
            auth.credentials.record_success(username);
            auth.credentials
                .remember(username, password, stored.user.clone());
            Ok(SignIn::User(stored.user))
        }
        _ => {
            auth.credentials.record_failure(username);
            Ok(SignIn::Refused)
        }
    }
}

/// A browser opening the UI: it gets the login page instead of the basic-auth prompt.
fn wants_page(req: &Request) -> bool {
    req.method() == axum::http::Method::GET
        && matches!(req.uri().path(), "/" | "/index.html")
        && req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"))
}

fn redirect_to_login(uri: &axum::http::Uri) -> Response {
    let next = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let location = format!(
        "login?next={}",
        percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC)
    );
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// The layer itself.
pub(crate) async fn guard(State(auth): State<Arc<Auth>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let rule = rule_for(req.method().as_str(), &path);
    if rule == Some(Rule::Public) {
        return next.run(req).await;
    }
    let (user, via) = match sign_in(&auth, req.headers()).await {
        Ok((SignIn::User(user), via)) => (user, via),
        Ok((SignIn::Refused, _)) if wants_page(&req) => {
            return redirect_to_login(req.uri());
        }
        Ok((SignIn::Refused, _)) => return challenge(),
        Ok((SignIn::Locked(seconds), _)) => return locked(seconds),
        Err(err) => return error_response(&err),
    };
    let mut req = req;
    req.extensions_mut().insert(via);
    match authorize(&auth, &user, rule, &path, req, next).await {
        Ok(response) => response,
        Err(err) => error_response(&err),
    }
}

/// What the request says, read once: the query always, the JSON body when a rule needs it.
struct Parts {
    query: Value,
    body: Option<Value>,
    /// The one header a rule reads (OpenTelemetry's experiment header), when the rule reads it.
    experiment_header: Option<String>,
}

impl Parts {
    fn strings(&self, field: &str) -> Vec<String> {
        let mut found = Vec::new();
        for source in [Some(&self.query), self.body.as_ref()]
            .into_iter()
            .flatten()
        {
            match source.get(field) {
                Some(Value::String(s)) => found.push(s.clone()),
                Some(Value::Number(n)) => found.push(n.to_string()),
                Some(Value::Array(items)) => found.extend(items.iter().filter_map(scalar)),
                _ => {}
            }
        }
        found
    }

    fn first(&self, fields: &[&str]) -> Option<String> {
        fields
            .iter()
            .find_map(|field| self.strings(field).into_iter().next())
    }
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Every value of `field` anywhere in the document (a trace names its experiment deep inside
/// `trace.trace_info.trace_location`); a rule checks all of them, so no nesting hides one.
fn values_anywhere(value: &Value, field: &str, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if key == field
                    && let Some(v) = scalar(child)
                {
                    found.push(v);
                }
                values_anywhere(child, field, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| values_anywhere(v, field, found)),
        _ => {}
    }
}

fn needs_body(rule: Option<Rule>, path: &str) -> bool {
    let touches_ids = matches!(
        rule,
        Some(Rule::Resource(
            _,
            Target::Experiment(_)
                | Target::ExperimentName(_)
                | Target::Run
                | Target::RegisteredModel(_)
                | Target::Trace
                | Target::GatewayEndpoint
        )) | Some(Rule::Filtered(
            Listing::RunsInExperiments | Listing::TracesInExperiments
        ))
    );
    // The UI's upload carries the file as its body and the run in its query.
    (touches_ids && !path.ends_with("/upload-artifact"))
        || path.ends_with("/registered-models/create")
}

async fn read_body(req: Request) -> Result<(Request, Option<Value>)> {
    let (parts, body) = req.into_parts();
    let bytes: Bytes = axum::body::to_bytes(body, MAX_JSON_BODY)
        .await
        .map_err(|_| {
            Error::new(
                Code::PayloadTooLarge,
                format!("The request body is over {MAX_JSON_BODY} bytes."),
            )
        })?;
    // A body that is not JSON is the handler's to refuse, in its own words.
    let value = serde_json::from_slice::<Value>(&bytes).ok();
    Ok((Request::from_parts(parts, Body::from(bytes)), value))
}

async fn authorize(
    auth: &Auth,
    user: &User,
    rule: Option<Rule>,
    path: &str,
    mut req: Request,
    next: Next,
) -> Result<Response> {
    req.extensions_mut().insert(Caller(user.clone()));
    // For handlers outside this crate (the gateway's budgets count calls by user).
    req.extensions_mut().insert(user.clone());
    let method = req.method().as_str().to_string();
    let query = query_to_json(req.uri().query().unwrap_or(""));
    let mut body = None;
    if method != "GET" && method != "HEAD" && needs_body(rule, path) {
        let (rebuilt, value) = read_body(req).await?;
        req = rebuilt;
        body = value;
    }
    let experiment_header = match rule {
        Some(Rule::Resource(_, Target::ExperimentHeader(name))) => req
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_string()),
        _ => None,
    };
    let parts = Parts {
        query,
        body,
        experiment_header,
    };
    let route = mlox_core::wire::api_route(path);

    if let Some(Rule::Resource(access, target)) = rule
        && !user.is_admin
        && !allowed(auth, user, access, target, path, &parts).await?
    {
        return Ok(denied());
    }
    match rule {
        None if !user.is_admin => return Ok(denied()),
        Some(Rule::Filtered(listing)) if !user.is_admin => match listing {
            Listing::RunsInExperiments | Listing::TracesInExperiments => {
                match narrow_experiments(auth, user, listing, &method, &parts).await? {
                    Narrowed::Unchanged => {}
                    Narrowed::Nothing => {
                        return Ok(axum::Json(serde_json::json!({})).into_response());
                    }
                    Narrowed::Denied => return Ok(denied()),
                    Narrowed::Rewritten(body) => {
                        req = with_json_body(req, &body);
                    }
                }
            }
            _ => {
                if filter_needed(auth, user, listing).await? {
                    return fill_listing(auth, user, listing, req, next).await;
                }
            }
        },
        _ => {}
    }

    if method == "POST" && route == Some("runs/create") {
        req = record_author(req, &parts, user);
    }
    let response = next.run(req).await;
    if response.status().is_success() {
        after_success(auth, user, &method, route, &parts, response).await
    } else {
        Ok(response)
    }
}

fn missing(field: &str) -> Error {
    Error::invalid(format!("Missing value for required parameter '{field}'."))
}

/// The path segment after `marker/` (`logged-models/{id}`, `traces/{id}`).
fn segment_after<'p>(path: &'p str, marker: &str) -> Option<&'p str> {
    let rest = &path[path.find(marker)? + marker.len()..];
    rest.split('/').next().filter(|s| !s.is_empty())
}

async fn allowed(
    auth: &Auth,
    user: &User,
    access: Access,
    target: Target,
    path: &str,
    parts: &Parts,
) -> Result<bool> {
    let experiments: Vec<String> = match target {
        Target::Experiment(field) => {
            let mut found = parts.strings(field);
            if let Some(body) = &parts.body {
                values_anywhere(body, field, &mut found);
            }
            if found.is_empty() {
                return Err(missing(field));
            }
            found
        }
        Target::ExperimentName(field) => {
            let name = parts.first(&[field]).ok_or_else(|| missing(field))?;
            match auth
                .owning_experiment(OwnedBy::ExperimentName, &name)
                .await?
            {
                Some(id) => vec![id],
                // No such experiment: the handler answers its 404.
                None => return Ok(true),
            }
        }
        Target::Run => {
            let run = parts
                .first(&["run_id", "run_uuid"])
                .ok_or_else(|| missing("run_id"))?;
            match auth.owning_experiment(OwnedBy::Run, &run).await? {
                Some(id) => vec![id],
                None => return Ok(true),
            }
        }
        Target::Runs => {
            let runs = parts.strings("run_ids");
            let mut experiments = Vec::new();
            for run in runs {
                if let Some(id) = auth.owning_experiment(OwnedBy::Run, &run).await? {
                    experiments.push(id);
                }
            }
            experiments
        }
        Target::RegisteredModel(field) => {
            let name = parts.first(&[field]).ok_or_else(|| missing(field))?;
            let permission = auth
                .permission(user, ResourceType::RegisteredModel, &name)
                .await?;
            return Ok(permission.allows(access));
        }
        Target::GatewayEndpoint => {
            let name = match segment_after(path, "/gateway/") {
                Some("mlflow") | None => parts.first(&["model"]).ok_or_else(|| missing("model"))?,
                Some(name) => percent_encoding::percent_decode_str(name)
                    .decode_utf8_lossy()
                    .into_owned(),
            };
            let endpoint = match auth.tracking.get_gateway_endpoint(None, Some(&name)).await {
                Ok(endpoint) => endpoint,
                // As MLflow: whether an endpoint exists is not told to who may not call it.
                Err(e) if e.code == mlox_core::Code::ResourceDoesNotExist => {
                    return Ok(user.is_admin);
                }
                Err(e) => return Err(e),
            };
            let permission = auth
                .permission(user, ResourceType::GatewayEndpoint, &endpoint.endpoint_id)
                .await?;
            return Ok(permission.allows(access));
        }
        Target::LoggedModel => {
            let Some(model) = segment_after(path, "logged-models/") else {
                return Ok(false);
            };
            match auth.owning_experiment(OwnedBy::LoggedModel, model).await? {
                Some(id) => vec![id],
                None => return Ok(true),
            }
        }
        Target::Trace => {
            let trace = parts
                .first(&["trace_id", "request_id"])
                .or_else(|| segment_after(path, "/traces/").map(str::to_string))
                .ok_or_else(|| missing("trace_id"))?;
            match auth.owning_experiment(OwnedBy::Trace, &trace).await? {
                Some(id) => vec![id],
                None => return Ok(true),
            }
        }
        Target::Traces => {
            let mut experiments = Vec::new();
            for trace in parts.strings("trace_ids") {
                if let Some(id) = auth.owning_experiment(OwnedBy::Trace, &trace).await? {
                    experiments.push(id);
                }
            }
            experiments
        }
        Target::ExperimentHeader(name) => {
            let id = parts
                .experiment_header
                .clone()
                .ok_or_else(|| Error::invalid(format!("Missing header '{name}'.")))?;
            vec![id]
        }
        Target::ArtifactPath => match artifact_experiment(path, parts) {
            Some(id) => vec![id],
            // Outside every experiment's directory: administrators only.
            None => return Ok(false),
        },
    };
    for experiment in experiments {
        let permission = auth
            .permission(user, ResourceType::Experiment, &experiment)
            .await?;
        if !permission.allows(access) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The experiment a proxied artifact path lies under: its first segment, as experiment
/// artifact locations are `mlflow-artifacts:/<experiment id>`.
fn artifact_experiment(path: &str, parts: &Parts) -> Option<String> {
    let rest = path.strip_prefix("/api/2.0/mlflow-artifacts/")?;
    let relative = if let Some(after) = rest.strip_prefix("artifacts/") {
        after.to_string()
    } else if let Some(after) = rest.strip_prefix("mpu/") {
        after.split_once('/').map(|(_, p)| p.to_string())?
    } else {
        // Listing: the directory is in `path`.
        parts.first(&["path"])?
    };
    let first = relative.trim_start_matches('/').split('/').next()?;
    (!first.is_empty() && first.bytes().all(|b| b.is_ascii_digit())).then(|| first.to_string())
}

enum Narrowed {
    Unchanged,
    Nothing,
    Denied,
    Rewritten(Value),
}

/// Run and trace searches name their experiments up front; the unreadable ones are taken out
/// of a run search before it runs (as MLflow does), and refuse a trace search.
async fn narrow_experiments(
    auth: &Auth,
    user: &User,
    listing: Listing,
    method: &str,
    parts: &Parts,
) -> Result<Narrowed> {
    let mut named = parts.strings("experiment_ids");
    if let Some(body) = &parts.body
        && let Some(locations) = body.get("locations")
    {
        values_anywhere(locations, "experiment_id", &mut named);
    }
    let mut readable = Vec::new();
    for id in &named {
        if auth
            .permission(user, ResourceType::Experiment, id)
            .await?
            .allows(Access::Read)
        {
            readable.push(id.clone());
        }
    }
    if readable.len() == named.len() {
        return Ok(Narrowed::Unchanged);
    }
    if listing == Listing::TracesInExperiments || method == "GET" {
        return Ok(Narrowed::Denied);
    }
    if readable.is_empty() {
        return Ok(Narrowed::Nothing);
    }
    let mut body = parts.body.clone().unwrap_or_else(|| serde_json::json!({}));
    body["experiment_ids"] = Value::from(readable);
    Ok(Narrowed::Rewritten(body))
}

fn with_json_body(req: Request, body: &Value) -> Request {
    let (mut parts, _) = req.into_parts();
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    Request::from_parts(parts, Body::from(bytes))
}

/// The signed-in user is a new run's author, whatever the client wrote.
fn record_author(req: Request, parts: &Parts, user: &User) -> Request {
    let Some(Value::Object(mut body)) = parts.body.clone() else {
        return req;
    };
    body.insert("user_id".to_string(), Value::from(user.username.clone()));
    let mut tags: Vec<Value> = match body.remove("tags") {
        Some(Value::Array(tags)) => tags
            .into_iter()
            .filter(|t| t.get("key").and_then(Value::as_str) != Some("mlflow.user"))
            .collect(),
        _ => Vec::new(),
    };
    tags.push(serde_json::json!({"key": "mlflow.user", "value": user.username}));
    body.insert("tags".to_string(), Value::from(tags));
    with_json_body(req, &Value::Object(body))
}

/// Whether a listing can hold something this user may not read: only when the default
/// permission does not allow reading, or a grant denies.
async fn filter_needed(auth: &Auth, user: &User, listing: Listing) -> Result<bool> {
    if !auth.config.default_permission.allows(Access::Read) {
        return Ok(true);
    }
    let resource_type = listing_type(listing);
    let grants = auth.grants_of(user.id).await?;
    Ok(grants
        .iter()
        .any(|g| g.permission == Permission::Deny && g.resource_type == resource_type))
}

fn listing_type(listing: Listing) -> ResourceType {
    match listing {
        Listing::RegisteredModels | Listing::ModelVersions => ResourceType::RegisteredModel,
        _ => ResourceType::Experiment,
    }
}

/// The list a search answers with, and where each row names the resource it is about.
fn listing_rows(listing: Listing) -> Option<(&'static str, &'static [&'static str])> {
    match listing {
        Listing::Experiments => Some(("experiments", &["experiment_id"])),
        Listing::RegisteredModels => Some(("registered_models", &["name"])),
        Listing::ModelVersions => Some(("model_versions", &["name"])),
        Listing::LoggedModels => Some(("models", &["info", "experiment_id"])),
        Listing::RunsInExperiments | Listing::TracesInExperiments => None,
    }
}

/// Pages searched for one answer at most; a caller who may read almost nothing of a large
/// store gets a short page with a token to continue rather than a search of everything.
const MAX_SEARCH_ROUNDS: usize = 50;

/// A search answer holding only rows the caller may read, filled up to `max_results` as
/// MLflow fills it: the search runs again from where the last page stopped until the page is
/// full or the results end. The page token names the row after the last one looked at, so
/// paging neither skips nor repeats a readable row.
async fn fill_listing(
    auth: &Auth,
    user: &User,
    listing: Listing,
    req: Request,
    next: Next,
) -> Result<Response> {
    let Some((list, key)) = listing_rows(listing) else {
        return Ok(next.run(req).await);
    };
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_JSON_BODY)
        .await
        .map_err(|_| Error::new(Code::PayloadTooLarge, "The request body is too large."))?;
    let is_get = parts.method == axum::http::Method::GET;
    let message = if is_get {
        query_to_json(parts.uri.query().unwrap_or(""))
    } else if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    let Value::Object(mut message) = message else {
        // Not a message the search reads: it answers its own 400.
        return Ok(next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await);
    };
    let mut offset = match message.get("page_token").and_then(scalar) {
        Some(token) => match mlox_core::page_token::decode(Some(&token)) {
            Ok(offset) => offset,
            Err(_) => {
                return Ok(next
                    .run(Request::from_parts(parts, Body::from(bytes)))
                    .await);
            }
        },
        None => 0,
    };
    let mut wanted: Option<usize> = message
        .get("max_results")
        .and_then(scalar)
        .and_then(|m| m.parse().ok());
    let resource_type = listing_type(listing);
    let mut kept: Vec<Value> = Vec::new();
    let mut next_offset: Option<u64> = None;
    let mut last: Option<(axum::http::response::Parts, serde_json::Map<String, Value>)> = None;
    for round in 0..MAX_SEARCH_ROUNDS {
        if offset > 0 {
            message.insert(
                "page_token".to_string(),
                Value::from(mlox_core::page_token::encode(offset)),
            );
        } else {
            message.remove("page_token");
        }
        let request = rebuilt_search(&parts, &message, is_get);
        let response = next.clone().run(request).await;
        if !response.status().is_success() {
            return Ok(response);
        }
        let (head, body) = response.into_parts();
        let answer_bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .map_err(|e| Error::internal(format!("cannot read a search answer: {e}")))?;
        let Ok(Value::Object(mut answer)) = serde_json::from_slice::<Value>(&answer_bytes) else {
            return Ok(Response::from_parts(head, Body::from(answer_bytes)));
        };
        let rows = match answer.remove(list) {
            Some(Value::Array(rows)) => rows,
            _ => Vec::new(),
        };
        let more_pages = answer.get("next_page_token").is_some();
        let wanted = *wanted.get_or_insert(if more_pages { rows.len() } else { usize::MAX });
        let page_len = rows.len();
        last = Some((head, answer));
        let mut full = false;
        for (index, row) in rows.into_iter().enumerate() {
            let id = key
                .iter()
                .try_fold(&row, |node, k| node.get(*k))
                .and_then(scalar);
            let readable = match id {
                Some(id) => auth
                    .permission(user, resource_type, &id)
                    .await?
                    .allows(Access::Read),
                None => false,
            };
            if readable {
                kept.push(row);
            }
            if kept.len() >= wanted {
                let consumed = (index + 1) as u64;
                next_offset =
                    (consumed < page_len as u64 || more_pages).then_some(offset + consumed);
                full = true;
                break;
            }
        }
        if full || !more_pages || page_len == 0 {
            break;
        }
        offset += page_len as u64;
        if round + 1 == MAX_SEARCH_ROUNDS {
            next_offset = Some(offset);
        }
    }
    let Some((mut head, mut answer)) = last else {
        return Err(Error::internal("a search answered nothing"));
    };
    answer.insert(list.to_string(), Value::from(kept));
    match next_offset {
        Some(offset) => {
            answer.insert(
                "next_page_token".to_string(),
                Value::from(mlox_core::page_token::encode(offset)),
            );
        }
        None => {
            answer.remove("next_page_token");
        }
    }
    head.headers.remove(header::CONTENT_LENGTH);
    let bytes = serde_json::to_vec(&answer).unwrap_or_default();
    Ok(Response::from_parts(head, Body::from(bytes)))
}

/// The search request again, with the message's current page token.
fn rebuilt_search(
    parts: &axum::http::request::Parts,
    message: &serde_json::Map<String, Value>,
    is_get: bool,
) -> Request {
    let mut request = Request::new(Body::empty());
    *request.method_mut() = parts.method.clone();
    *request.headers_mut() = parts.headers.clone();
    request.headers_mut().remove(header::CONTENT_LENGTH);
    if is_get {
        let mut query = String::new();
        for (name, value) in message {
            let values = match value {
                Value::Array(items) => items.iter().filter_map(scalar).collect(),
                other => scalar(other).into_iter().collect::<Vec<_>>(),
            };
            for value in values {
                if !query.is_empty() {
                    query.push('&');
                }
                query.push_str(&encode_component(name));
                query.push('=');
                query.push_str(&encode_component(&value));
            }
        }
        let path = parts.uri.path();
        let uri = if query.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{query}")
        };
        *request.uri_mut() = uri.parse().unwrap_or_else(|_| parts.uri.clone());
    } else {
        *request.uri_mut() = parts.uri.clone();
        *request.body_mut() =
            Body::from(serde_json::to_vec(&Value::Object(message.clone())).unwrap_or_default());
    }
    request
}

fn encode_component(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// What follows a successful write: creators manage what they created; a model's grants
/// follow its rename and go with its deletion.
async fn after_success(
    auth: &Auth,
    user: &User,
    method: &str,
    route: Option<&str>,
    parts: &Parts,
    response: Response,
) -> Result<Response> {
    let workspace = mlox_core::auth::DEFAULT_WORKSPACE;
    match (method, route) {
        ("POST", Some("experiments/create")) => {
            let (head, body) = response.into_parts();
            let bytes = axum::body::to_bytes(body, MAX_JSON_BODY)
                .await
                .map_err(|e| Error::internal(format!("cannot read an answer: {e}")))?;
            if let Some(id) = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| v.get("experiment_id").and_then(scalar))
            {
                auth.users
                    .grant_direct(user.id, workspace, "experiment", &id, "MANAGE")
                    .await?;
                auth.grants_changed();
            }
            Ok(Response::from_parts(head, Body::from(bytes)))
        }
        ("POST", Some("registered-models/create")) => {
            if let Some(name) = parts.first(&["name"]) {
                auth.users
                    .grant_direct(user.id, workspace, "registered_model", &name, "MANAGE")
                    .await?;
                auth.grants_changed();
            }
            Ok(response)
        }
        ("POST", Some("registered-models/rename")) => {
            if let (Some(old), Some(new)) = (parts.first(&["name"]), parts.first(&["new_name"])) {
                auth.users
                    .rename_resource_grants("registered_model", &old, &new)
                    .await?;
                auth.grants_changed();
            }
            Ok(response)
        }
        ("DELETE", Some("registered-models/delete")) => {
            if let Some(name) = parts.first(&["name"]) {
                auth.users
                    .delete_resource_grants("registered_model", &name)
                    .await?;
                auth.grants_changed();
            }
            Ok(response)
        }
        _ => Ok(response),
    }
}
