//! MLflow's proxied artifact API (`/api/2.0/mlflow-artifacts/…` and its `/ajax-api/` twin):
//! listing, streamed download, streamed upload, deletion and multipart uploads, over any
//! [`ArtifactRepository`]. Bodies are never buffered: uploads flow from the socket to the
//! repository chunk by chunk and downloads the other way, so memory per request is bounded
//! whatever the artifact size. Every client-supplied path goes through [`ArtifactPath`], so a
//! bad one is a 400 `INVALID_PARAMETER_VALUE`, never a file outside the artifact root.
//!
//! Multipart uploads follow the protocol MLflow's client speaks to object stores: `mpu/create`
//! answers one URL per part, the client `PUT`s each part there with no other headers, then
//! calls `mpu/complete` with the ETags it got back (or `mpu/abort`). When the repository cannot
//! hand out presigned URLs, the part URLs point back at this server's `mpu/upload` route, which
//! is keyed by the upload id (an unguessable UUID) because the client sends no credentials to
//! part URLs.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, RawPathParamsRejection};
use axum::extract::{OriginalUri, RawPathParams, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use futures::StreamExt;
use mlox_artifacts::{
    ArtifactPath, ArtifactRepository, ByteStream, CompletedPart, INVALID_PATH_MESSAGE,
    MAX_MULTIPART_PARTS, content_type_for,
};
use mlox_core::Error;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::Deserialize;
use serde_json::{Value, json};
use unicode_normalization::UnicodeNormalization;

use crate::error::{ApiError, ApiResult};

/// Where the artifact routes live; both prefixes serve the same handlers.
pub const API_PREFIX: &str = "/api/2.0/mlflow-artifacts";
pub const AJAX_PREFIX: &str = "/ajax-api/2.0/mlflow-artifacts";

/// Characters left alone in a `filename*` value: RFC 5987's attr-char.
const RFC5987_ATTR_CHAR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// Characters left alone when a path segment goes into a part URL: RFC 3986 unreserved.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// How the artifact routes behave beyond the repository they serve.
#[derive(Clone, Debug, Default)]
pub struct ArtifactsConfig {
    /// Largest accepted upload body (a whole artifact or one multipart part), in bytes.
    pub max_upload_bytes: Option<u64>,
    /// The URL clients use to reach this server (their tracking URI, e.g.
    /// `https://mlflow.example.com/prefix`). Part-upload URLs are built from it; when unset
    /// they are built from the `mpu/create` request's own host, scheme and path, which is right
    /// unless a proxy in front rewrites the path.
    pub public_url: Option<String>,
}

#[derive(Clone)]
struct ArtifactsState {
    repo: Arc<dyn ArtifactRepository>,
    config: Arc<ArtifactsConfig>,
}

/// The artifact routes under both prefixes, with default configuration.
pub fn router(repo: Arc<dyn ArtifactRepository>) -> Router {
    router_with_config(repo, ArtifactsConfig::default())
}

/// The artifact routes under both prefixes.
pub fn router_with_config(repo: Arc<dyn ArtifactRepository>, config: ArtifactsConfig) -> Router {
    let state = ArtifactsState {
        repo,
        config: Arc::new(config),
    };
    let routes = Router::new()
        .route("/artifacts", get(list))
        .route(
            "/artifacts/{*path}",
            get(download).put(upload).delete(delete),
        )
        .route("/mpu/create/{*path}", post(create_multipart))
        .route("/mpu/upload/{*path}", put(upload_part))
        .route("/mpu/complete/{*path}", post(complete_multipart))
        .route("/mpu/abort/{*path}", post(abort_multipart))
        .with_state(state);
    Router::new()
        .nest(API_PREFIX, routes.clone())
        .nest(AJAX_PREFIX, routes)
}

/// The artifact routes of a server started with `--no-serve-artifacts`: every request is told
/// why, with a status the client does not retry (MLflow answers 503, which makes the client
/// back off for minutes before reporting anything).
pub fn disabled_router() -> Router {
    async fn disabled(uri: axum::http::Uri) -> ApiError {
        ApiError(Error::not_implemented(format!(
            "Endpoint: {} disabled due to the mlox server running with `--no-serve-artifacts`. \
             To enable artifacts server functionality, run `mlox server` with `--serve-artifacts`",
            uri.path()
        )))
    }
    let routes = Router::new()
        .route("/artifacts", axum::routing::any(disabled))
        .route("/{*rest}", axum::routing::any(disabled));
    Router::new()
        .nest(API_PREFIX, routes.clone())
        .nest(AJAX_PREFIX, routes)
}

fn invalid_path() -> ApiError {
    ApiError(Error::invalid(INVALID_PATH_MESSAGE))
}

/// The `{*path}` capture (already percent-decoded once, as Flask does) as an artifact path.
fn captured_path(params: Result<RawPathParams, RawPathParamsRejection>) -> ApiResult<ArtifactPath> {
    let params = params.map_err(|_| invalid_path())?;
    let raw = params
        .iter()
        .find(|(key, _)| *key == "path")
        .map(|(_, v)| v)
        .unwrap_or("");
    Ok(ArtifactPath::parse(raw)?)
}

fn empty_json() -> axum::Json<Value> {
    axum::Json(json!({}))
}

/// The value of `name` in a query string, decoded as forms are (`+` is a space). Decoding is
/// strict: invalid UTF-8 is refused rather than replaced, so what the client sent is what gets
/// validated. A repeated parameter keeps its first value, as Flask's `args.get` does.
pub(crate) fn query_param(query: Option<&str>, name: &str) -> ApiResult<Option<String>> {
    for pair in query.unwrap_or("").split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if form_decode(key)?.as_deref() != Some(name) {
            continue;
        }
        return form_decode(value);
    }
    Ok(None)
}

fn form_decode(text: &str) -> ApiResult<Option<String>> {
    let spaced = text.replace('+', " ");
    match percent_decode_str(&spaced).decode_utf8() {
        Ok(decoded) => Ok(Some(decoded.into_owned())),
        Err(_) => Err(ApiError(Error::invalid("Invalid query string"))),
    }
}

async fn list(
    State(state): State<ArtifactsState>,
    RawQuery(query): RawQuery,
) -> ApiResult<axum::Json<Value>> {
    let path = match query_param(query.as_deref(), "path") {
        Ok(Some(raw)) => ArtifactPath::parse(&raw)?,
        Ok(None) => ArtifactPath::root(),
        // The only thing that can be wrong with the query is the path in it.
        Err(_) => return Err(invalid_path()),
    };
    let files = state.repo.list(&path).await?;
    // MLflow omits empty repeated fields; the client reads `{}` as "a file or nothing".
    if files.is_empty() {
        return Ok(empty_json());
    }
    Ok(axum::Json(json!({ "files": files })))
}

async fn download(
    State(state): State<ArtifactsState>,
    params: Result<RawPathParams, RawPathParamsRejection>,
) -> ApiResult<Response> {
    let path = captured_path(params)?;
    let file = state.repo.get(&path).await?;
    let name = path.file_name().unwrap_or("artifact");
    let headers = attachment_headers(
        name,
        HeaderValue::from_static(content_type_for(name)),
        file.size,
    );
    Ok((StatusCode::OK, headers, Body::from_stream(file.stream)).into_response())
}

/// Headers of a streamed artifact: served as an attachment that browsers may not sniff, so an
/// uploaded HTML or SVG file cannot run script on this server's origin.
pub(crate) fn attachment_headers(name: &str, content_type: HeaderValue, size: u64) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    if let Ok(value) = HeaderValue::from_str(&content_disposition(name)) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers
}

/// `attachment; filename=…` as MLflow writes it: a name of token characters bare, any other
/// ASCII name quoted; a non-ASCII name gets an ASCII fallback (its compatibility decomposition
/// without the rest, or `download`) and an RFC 5987 `filename*`.
pub(crate) fn content_disposition(name: &str) -> String {
    if name.is_ascii() {
        return format!("attachment; filename={}", quote_header_value(name));
    }
    let fallback: String = name.nfkd().filter(char::is_ascii).collect();
    let fallback = if fallback.is_empty() {
        "download".to_string()
    } else {
        fallback
    };
    format!(
        "attachment; filename={}; filename*=UTF-8''{}",
        quote_header_value(&fallback),
        utf8_percent_encode(name, RFC5987_ATTR_CHAR)
    )
}

/// An HTTP token as it stands, anything else in double quotes with `"` and `\` escaped.
fn quote_header_value(value: &str) -> String {
    let is_token_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if !value.is_empty() && value.chars().all(is_token_char) {
        return value.to_string();
    }
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

async fn upload(
    State(state): State<ArtifactsState>,
    params: Result<RawPathParams, RawPathParamsRejection>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<axum::Json<Value>> {
    let path = captured_path(params)?;
    let stream = body_stream(&headers, body, state.config.max_upload_bytes)?;
    state.repo.put(&path, stream).await?;
    Ok(empty_json())
}

async fn delete(
    State(state): State<ArtifactsState>,
    params: Result<RawPathParams, RawPathParamsRejection>,
) -> ApiResult<axum::Json<Value>> {
    let path = captured_path(params)?;
    state.repo.delete(&path).await?;
    Ok(empty_json())
}

fn too_large(max: u64) -> Error {
    // Not 413/429: MLflow's client retries 429 and 5xx for minutes, and this will not change.
    Error::invalid(format!(
        "Upload exceeds the maximum artifact size of {max} bytes"
    ))
}

/// The request body as a stream, cut off with an error past `limit` bytes.
fn body_stream(headers: &HeaderMap, body: Body, limit: Option<u64>) -> ApiResult<ByteStream> {
    if let Some(max) = limit {
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > max) {
            return Err(too_large(max).into());
        }
    }
    let mut seen: u64 = 0;
    Ok(body
        .into_data_stream()
        .map(move |chunk| {
            let chunk = chunk
                .map_err(|e| Error::bad_request(format!("Failed to read the request body: {e}")))?;
            seen += chunk.len() as u64;
            match limit {
                Some(max) if seen > max => Err(too_large(max)),
                _ => Ok(chunk),
            }
        })
        .boxed())
}

/// A small JSON request body, with MLflow-shaped errors for anything unparsable.
fn json_body<T: serde::de::DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> ApiResult<T> {
    let body = body.map_err(|e| ApiError(Error::bad_request(e.body_text())))?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError(Error::invalid(format!("Invalid request body: {e}"))))
}

fn missing(param: &str) -> ApiError {
    ApiError(Error::invalid(format!(
        "Missing value for required parameter '{param}'. See the API docs for more information \
         about request parameters."
    )))
}

/// The file a multipart request is about: the directory from the URL plus the base name of the
/// client's local file, as MLflow's object-store repositories name it.
fn multipart_target(dir: &ArtifactPath, local_path: Option<&str>) -> ApiResult<ArtifactPath> {
    let local_path = local_path
        .filter(|p| !p.is_empty())
        .ok_or_else(|| missing("path"))?;
    // Either separator: a Windows client sends its own kind of path.
    let name = local_path.rsplit(['/', '\\']).next().unwrap_or(local_path);
    dir.join_name(name).map_err(|_| invalid_path())
}

/// An integer that may arrive as a JSON number or string, as protobuf JSON allows for int64.
fn int_like(value: &Value, param: &str) -> ApiResult<u64> {
    let parsed = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| {
        ApiError(Error::invalid(format!(
            "Invalid value {value} for parameter '{param}' supplied: expected a non-negative integer"
        )))
    })
}

#[derive(Deserialize)]
struct CreateRequest {
    path: Option<String>,
    num_parts: Option<Value>,
}

async fn create_multipart(
    State(state): State<ArtifactsState>,
    OriginalUri(original): OriginalUri,
    headers: HeaderMap,
    params: Result<RawPathParams, RawPathParamsRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<axum::Json<Value>> {
    let dir = captured_path(params)?;
    let request: CreateRequest = json_body(body)?;
    let target = multipart_target(&dir, request.path.as_deref())?;
    let num_parts = match &request.num_parts {
        Some(value) => int_like(value, "num_parts")?,
        None => 1,
    };
    if !(1..=u64::from(MAX_MULTIPART_PARTS)).contains(&num_parts) {
        return Err(ApiError(Error::invalid(format!(
            "num_parts must be between 1 and {MAX_MULTIPART_PARTS}, got {num_parts}"
        ))));
    }
    let num_parts = u32::try_from(num_parts)
        .map_err(|_| ApiError(Error::invalid("num_parts is out of range")))?;
    let created = state.repo.create_multipart(&target, num_parts).await?;
    let credentials: Vec<Value> = match created.presigned {
        Some(parts) => parts
            .into_iter()
            .map(|p| json!({ "url": p.url, "part_number": p.part_number, "headers": p.headers }))
            .collect(),
        None => {
            let base = part_url_base(&state.config, &headers, original.path())?;
            let encoded: Vec<String> = target
                .segments()
                .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
                .collect();
            let upload_id = utf8_percent_encode(&created.upload_id, SEGMENT);
            (1..=num_parts)
                .map(|n| {
                    let url = format!(
                        "{base}/mpu/upload/{}?upload_id={upload_id}&part_number={n}",
                        encoded.join("/")
                    );
                    json!({ "url": url, "part_number": n, "headers": BTreeMap::<String, String>::new() })
                })
                .collect()
        }
    };
    Ok(axum::Json(
        json!({ "upload_id": created.upload_id, "credentials": credentials }),
    ))
}

/// The absolute URL of this router's prefix as the client reaches it, e.g.
/// `http://host:5000/api/2.0/mlflow-artifacts`. The client sends part uploads with a bare
/// HTTP library, so the URL must be absolute.
fn part_url_base(
    config: &ArtifactsConfig,
    headers: &HeaderMap,
    request_path: &str,
) -> ApiResult<String> {
    if let Some(public) = &config.public_url {
        return Ok(format!("{}{API_PREFIX}", public.trim_end_matches('/')));
    }
    let first = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let host = first("x-forwarded-host")
        .or_else(|| first(header::HOST.as_str()))
        .ok_or_else(|| {
            ApiError(Error::bad_request(
                "A Host header is required for multipart uploads",
            ))
        })?;
    // The value goes into a URL handed back to the caller; refuse anything that would change
    // the URL's structure rather than just naming a host.
    if host
        .chars()
        .any(|c| matches!(c, '/' | '\\' | '?' | '#' | '@') || c.is_whitespace())
    {
        return Err(ApiError(Error::bad_request("Invalid Host header")));
    }
    let scheme = match first("x-forwarded-proto").as_deref() {
        Some("https") => "https",
        _ => "http",
    };
    // Everything before the route's own tail: the mount prefix plus any outer nesting.
    let prefix = request_path
        .find("/mpu/create/")
        .map(|idx| &request_path[..idx])
        .unwrap_or(API_PREFIX);
    Ok(format!("{scheme}://{host}{prefix}"))
}

async fn upload_part(
    State(state): State<ArtifactsState>,
    params: Result<RawPathParams, RawPathParamsRejection>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let path = captured_path(params)?;
    let upload_id = query_param(query.as_deref(), "upload_id")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| missing("upload_id"))?;
    let part_number =
        query_param(query.as_deref(), "part_number")?.ok_or_else(|| missing("part_number"))?;
    let part_number = u32::try_from(int_like(&Value::String(part_number), "part_number")?)
        .map_err(|_| ApiError(Error::invalid("part_number is out of range")))?;
    let stream = body_stream(&headers, body, state.config.max_upload_bytes)?;
    let etag = state
        .repo
        .upload_part(&path, &upload_id, part_number, stream)
        .await?;
    let mut response = empty_json().into_response();
    // Quoted, as HTTP and object stores give ETags; completion accepts either form.
    if let Ok(value) = HeaderValue::from_str(&format!("\"{etag}\"")) {
        response.headers_mut().insert(header::ETAG, value);
    }
    Ok(response)
}

#[derive(Deserialize)]
struct PartRef {
    part_number: Option<Value>,
    etag: Option<String>,
}

#[derive(Deserialize)]
struct CompleteRequest {
    path: Option<String>,
    upload_id: Option<String>,
    parts: Option<Vec<PartRef>>,
}

async fn complete_multipart(
    State(state): State<ArtifactsState>,
    params: Result<RawPathParams, RawPathParamsRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<axum::Json<Value>> {
    let dir = captured_path(params)?;
    let request: CompleteRequest = json_body(body)?;
    let target = multipart_target(&dir, request.path.as_deref())?;
    let upload_id = request
        .upload_id
        .filter(|s| !s.is_empty())
        .ok_or_else(|| missing("upload_id"))?;
    let parts = request.parts.ok_or_else(|| missing("parts"))?;
    let parts = parts
        .into_iter()
        .map(|part| {
            let number = part
                .part_number
                .as_ref()
                .ok_or_else(|| missing("part_number"))?;
            let part_number = u32::try_from(int_like(number, "part_number")?)
                .map_err(|_| ApiError(Error::invalid("part_number is out of range")))?;
            Ok(CompletedPart {
                part_number,
                etag: part.etag.filter(|e| !e.is_empty()),
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    state
        .repo
        .complete_multipart(&target, &upload_id, &parts)
        .await?;
    Ok(empty_json())
}

#[derive(Deserialize)]
struct AbortRequest {
    path: Option<String>,
    upload_id: Option<String>,
}

async fn abort_multipart(
    State(state): State<ArtifactsState>,
    params: Result<RawPathParams, RawPathParamsRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<axum::Json<Value>> {
    let dir = captured_path(params)?;
    let request: AbortRequest = json_body(body)?;
    let target = multipart_target(&dir, request.path.as_deref())?;
    let upload_id = request
        .upload_id
        .filter(|s| !s.is_empty())
        .ok_or_else(|| missing("upload_id"))?;
    state.repo.abort_multipart(&target, &upload_id).await?;
    Ok(empty_json())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_disposition_is_always_a_valid_header() {
        // Each as werkzeug's `quote_header_value` and MLflow's fallback write it.
        assert_eq!(content_disposition("a.txt"), "attachment; filename=a.txt");
        assert_eq!(
            content_disposition("dog+step+20+timestamp+100+0f1e.png"),
            "attachment; filename=dog+step+20+timestamp+100+0f1e.png"
        );
        assert_eq!(
            content_disposition("my file.txt"),
            "attachment; filename=\"my file.txt\""
        );
        assert_eq!(
            content_disposition("a\"b"),
            "attachment; filename=\"a\\\"b\""
        );
        assert_eq!(
            content_disposition("日本.txt"),
            "attachment; filename=.txt; filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt"
        );
        assert_eq!(
            content_disposition("naïve résumé.txt"),
            "attachment; filename=\"naive resume.txt\"; \
             filename*=UTF-8''na%C3%AFve%20r%C3%A9sum%C3%A9.txt"
        );
        assert_eq!(
            content_disposition("日本"),
            "attachment; filename=download; filename*=UTF-8''%E6%97%A5%E6%9C%AC"
        );
        for name in ["a.txt", "日本", "x y\"z"] {
            assert!(HeaderValue::from_str(&content_disposition(name)).is_ok());
        }
    }

    #[test]
    fn part_urls_follow_the_request_or_the_configured_url() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("example.com:5000"));
        let config = ArtifactsConfig::default();
        let base = |headers: &HeaderMap, path: &str| part_url_base(&config, headers, path).unwrap();
        assert_eq!(
            base(
                &headers,
                "/api/2.0/mlflow-artifacts/mpu/create/1/run/artifacts"
            ),
            "http://example.com:5000/api/2.0/mlflow-artifacts"
        );
        assert_eq!(
            base(
                &headers,
                "/mlflow/ajax-api/2.0/mlflow-artifacts/mpu/create/x"
            ),
            "http://example.com:5000/mlflow/ajax-api/2.0/mlflow-artifacts"
        );
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        headers.insert(
            "x-forwarded-host",
            HeaderValue::from_static("public.example, inner"),
        );
        assert_eq!(
            base(&headers, "/api/2.0/mlflow-artifacts/mpu/create/x"),
            "https://public.example/api/2.0/mlflow-artifacts"
        );
        headers.insert(
            "x-forwarded-host",
            HeaderValue::from_static("evil.example/path?"),
        );
        assert!(
            part_url_base(&config, &headers, "/api/2.0/mlflow-artifacts/mpu/create/x").is_err()
        );
        let configured = ArtifactsConfig {
            public_url: Some("https://ml.example/prefix/".into()),
            ..ArtifactsConfig::default()
        };
        assert_eq!(
            part_url_base(&configured, &HeaderMap::new(), "/whatever").unwrap(),
            "https://ml.example/prefix/api/2.0/mlflow-artifacts"
        );
    }
}
