//! The artifact routes MLflow's web UI reads from: a run's listing (`artifacts/list`), one file
//! of a run (`/get-artifact`), of a registered model version (`/model-versions/get-artifact`)
//! or of a logged model (`logged-models/{id}/artifacts/files`), and a logged model's listing
//! (`logged-models/{id}/artifacts/directories`); and the one it writes through, a small file
//! uploaded into a run (`upload-artifact`).
//!
//! Unlike the proxied artifact API, these name artifacts by the entity that owns them, so the
//! server first resolves that entity's artifact location through mlox-artifacts'
//! [`ArtifactLocations`] (the proxy's repository, a bucket's or a directory's); this module
//! only does the HTTP side. Client paths are relative to that location and pass through
//! [`ArtifactPath`], so they can never leave it.
//!
//! Files are served for preview in a browser on this server's origin, so nothing served here
//! may become an active document there: HTML goes out as plain text, and every file is an
//! attachment that may not be sniffed, under a sandboxing content security policy.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use mlox_artifacts::{
    ArtifactLocation, ArtifactLocations, ArtifactPath, INVALID_PATH_MESSAGE, content_type_for,
};
use mlox_core::location::{Location, LocationError, logged_model_reference};
use mlox_core::{Code, Error, validation};
use serde_json::{Value, json};

use crate::artifacts::{attachment_headers, query_param};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

fn invalid_path() -> ApiError {
    ApiError(Error::invalid(INVALID_PATH_MESSAGE))
}

fn missing(name: &str) -> ApiError {
    ApiError(validation::missing_request_parameter(name))
}

/// A query parameter that must be present and not empty.
fn required(query: Option<&str>, name: &str) -> ApiResult<String> {
    query_param(query, name)?
        .filter(|v| !v.is_empty())
        .ok_or_else(|| missing(name))
}

/// Either spelling of the run id; the web UI sends `run_uuid`, the API `run_id`.
fn run_id(query: Option<&str>) -> ApiResult<String> {
    let run_id = query_param(query, "run_id")?.filter(|v| !v.is_empty());
    match run_id {
        Some(id) => Ok(id),
        None => required(query, "run_uuid").map_err(|_| missing("run_id")),
    }
}

/// A client path relative to an artifact location; absent or empty is the location itself.
fn optional_path(query: Option<&str>, name: &str) -> ApiResult<ArtifactPath> {
    match query_param(query, name) {
        Ok(Some(raw)) => Ok(ArtifactPath::parse(&raw)?),
        Ok(None) => Ok(ArtifactPath::root()),
        Err(_) => Err(invalid_path()),
    }
}

/// A client path naming a file.
fn required_path(query: Option<&str>, name: &str) -> ApiResult<ArtifactPath> {
    match query_param(query, name) {
        Ok(Some(raw)) => Ok(ArtifactPath::parse(&raw)?),
        Ok(None) => Err(missing(name)),
        Err(_) => Err(invalid_path()),
    }
}

/// MLflow's `ListArtifacts` answer for the directory `path` below the location `uri`: entries
/// named relative to the location, and no `files` at all when there is nothing (proto JSON
/// leaves out empty lists).
async fn list(locations: &ArtifactLocations, uri: &str, path: &ArtifactPath) -> ApiResult<Value> {
    let location = locations.locate(uri).await?;
    let entries = location.repo.list(&location.join(path)?).await?;
    let files: Vec<Value> = entries
        .into_iter()
        .map(|mut entry| {
            if !path.is_root() {
                entry.path = format!("{path}/{}", entry.path);
            }
            json!(entry)
        })
        .collect();
    let mut body = json!({ "root_uri": uri });
    if !files.is_empty() {
        body["files"] = Value::Array(files);
    }
    Ok(body)
}

/// The file at `path` below `location`, streamed.
async fn send(location: ArtifactLocation, path: &ArtifactPath) -> ApiResult<Response> {
    let is_directory = || {
        ApiError(Error::invalid(format!(
            "Artifact path refers to a directory, not a file: '{path}'"
        )))
    };
    if path.is_root() {
        return Err(is_directory());
    }
    let full = location.join(path)?;
    let file = match location.repo.get(&full).await {
        Ok(file) => file,
        Err(e) if e.code == Code::ResourceDoesNotExist => {
            let listed = location.repo.list(&full).await.unwrap_or_default();
            if !listed.is_empty() {
                return Err(is_directory());
            }
            // Named by the client's path: where the location sits in the store is not theirs.
            return Err(ApiError(Error::not_found(format!(
                "No such artifact: '{path}'"
            ))));
        }
        Err(e) => return Err(e.into()),
    };
    let name = path.file_name().unwrap_or("artifact");
    let mut headers = attachment_headers(name, preview_content_type(name), file.size);
    // Opened directly, a document served here still runs no script and reaches no cookie of
    // this origin.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    // Artifacts can be overwritten; a preview must not show a stale copy.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok((StatusCode::OK, headers, Body::from_stream(file.stream)).into_response())
}

/// The `Content-Type` a previewed file is served with: MLflow's choice, bare as MLflow sends
/// it, except that documents a browser would render as a page are plain text (the UI shows
/// them in a sandboxed frame).
fn preview_content_type(name: &str) -> HeaderValue {
    HeaderValue::from_static(match content_type_for(name) {
        "text/html" | "application/xhtml+xml" => "text/plain",
        other => other,
    })
}

/// The location a model version's download URI names. Besides plain locations, a version may
/// point at a run's artifacts (`runs:/<run id>/<path>`) or a logged model (`models:/<model id>`).
async fn locate_source(s: &AppState, uri: &str) -> ApiResult<ArtifactLocation> {
    let (owner_location, sub) = match Location::parse(uri) {
        Ok(Location::Run { run_id, path }) => {
            (s.store.get_run_info(&run_id).await?.artifact_uri, path)
        }
        Ok(Location::Models(reference)) => match logged_model_reference(&reference) {
            Some((model_id, sub)) => {
                let model = s.store.get_logged_model(model_id).await?;
                let sub = ArtifactPath::parse(sub.trim_end_matches('/'))
                    .map_err(|_| mlox_artifacts::bad_location(uri))?;
                (model.info.artifact_uri, sub)
            }
            None => return Ok(s.artifacts.locate(uri).await?),
        },
        Err(LocationError::UnsafePath) => return Err(mlox_artifacts::bad_location(uri).into()),
        _ => return Ok(s.artifacts.locate(uri).await?),
    };
    Ok(s.artifacts.locate(&owner_location).await?.descend(&sub)?)
}

/// `GET …/artifacts/list?run_id=…&path=…`: the entries directly under `path` in a run's
/// artifacts.
pub async fn list_run_artifacts(
    State(s): State<AppState>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let query = query.as_deref();
    let run_id = run_id(query)?;
    let path = optional_path(query, "path")?;
    let run = s.store.get_run_info(&run_id).await?;
    Ok(Json(list(&s.artifacts, &run.artifact_uri, &path).await?))
}

/// `GET /get-artifact?run_id=…&path=…`: one file of a run's artifacts.
pub async fn get_run_artifact(
    State(s): State<AppState>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let query = query.as_deref();
    let run_id = run_id(query)?;
    let path = required_path(query, "path")?;
    let run = s.store.get_run_info(&run_id).await?;
    send(s.artifacts.locate(&run.artifact_uri).await?, &path).await
}

/// `GET /model-versions/get-artifact?name=…&version=…&path=…`: one file of a registered model
/// version.
pub async fn get_model_version_artifact(
    State(s): State<AppState>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let query = query.as_deref();
    let name = required(query, "name")?;
    let version = required(query, "version")?;
    let path = required_path(query, "path")?;
    let uri = s
        .store
        .get_model_version_download_uri(&name, &version)
        .await?;
    send(locate_source(&s, &uri).await?, &path).await
}

/// Largest file the web UI may upload into a run through `upload-artifact`, as in MLflow.
const MAX_UI_UPLOAD_BYTES: usize = 10 * 1024 * 1024;

fn upload_too_large() -> ApiError {
    ApiError(Error::invalid(
        "Artifact size is too large. Max size is 10MB.",
    ))
}

/// `POST /ajax-api/2.0/mlflow/upload-artifact?run_uuid=…&path=…`: the request body becomes the
/// file at `path` in the run's artifacts (the web UI uploads small files this way). Checked in
/// MLflow's order and words.
pub async fn upload_run_artifact(
    State(s): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Value>> {
    let query = query.as_deref();
    let run_id = query_param(query, "run_uuid")?
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError(Error::invalid("Request must specify run_uuid.")))?;
    let raw_path = query_param(query, "path")
        .map_err(|_| invalid_path())?
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError(Error::invalid("Request must specify path.")))?;
    let path = ArtifactPath::parse(&raw_path)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_UI_UPLOAD_BYTES) {
        return Err(upload_too_large());
    }
    let data = axum::body::to_bytes(body, MAX_UI_UPLOAD_BYTES)
        .await
        .map_err(|e| {
            let cause = e.into_inner();
            if cause.is::<http_body_util::LengthLimitError>() {
                upload_too_large()
            } else {
                ApiError(Error::bad_request(format!(
                    "Failed to read the request body: {cause}"
                )))
            }
        })?;
    if data.is_empty() {
        return Err(ApiError(Error::invalid("Request must specify data.")));
    }
    let run = s.store.get_run_info(&run_id).await?;
    let location = s.artifacts.locate(&run.artifact_uri).await?;
    let body: mlox_artifacts::ByteStream = futures::stream::once(async { Ok(data) }).boxed();
    location.repo.put(&location.join(&path)?, body).await?;
    Ok(Json(json!({})))
}

/// `GET …/logged-models/{model_id}/artifacts/directories?artifact_directory_path=…`: the
/// entries directly under a directory of a logged model's artifacts.
pub async fn list_logged_model_artifacts(
    State(s): State<AppState>,
    Path(model_id): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let path = optional_path(query.as_deref(), "artifact_directory_path")?;
    let model = s.store.get_logged_model(&model_id).await?;
    Ok(Json(
        list(&s.artifacts, &model.info.artifact_uri, &path).await?,
    ))
}

/// `GET …/logged-models/{model_id}/artifacts/files?artifact_file_path=…`: one file of a logged
/// model's artifacts.
pub async fn get_logged_model_artifact(
    State(s): State<AppState>,
    Path(model_id): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let query = query.as_deref();
    let raw = query_param(query, "artifact_file_path")?.filter(|p| !p.is_empty());
    let Some(raw) = raw else {
        return Err(ApiError(Error::bad_request(
            "Request must include the \"artifact_file_path\" query parameter.",
        )));
    };
    let path = ArtifactPath::parse(&raw)?;
    let model = s.store.get_logged_model(&model_id).await?;
    send(s.artifacts.locate(&model.info.artifact_uri).await?, &path).await
}

/// `GET /get-trace-artifact?request_id=…`: a trace's span data as the UI downloads it
/// (`traces.json`, `{"spans": [...]}` in MLflow's span dictionaries): assembled from the
/// database when the spans came over OTLP, else the file the client uploaded.
pub async fn get_trace_artifact(
    State(s): State<AppState>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    use mlox_core::spans::trace_key;
    let request_id = required(query.as_deref(), "request_id")?;
    let info = s.store.get_trace_info(&request_id).await?;
    let tag = |key: &str| {
        info.pointer("/tags")
            .and_then(|tags| tags.get(key))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    if tag(trace_key::SPANS_LOCATION).as_deref() == Some(trace_key::SPANS_IN_TRACKING_STORE) {
        let spans = s
            .store
            .load_spans(std::slice::from_ref(&request_id))
            .await?
            .remove(&request_id)
            .unwrap_or_default();
        let body = json!({ "spans": spans }).to_string();
        let headers = attachment_headers(
            "traces.json",
            HeaderValue::from_static("application/json"),
            body.len() as u64,
        );
        return Ok((StatusCode::OK, headers, body).into_response());
    }
    let location = tag(mlox_store::traces::ARTIFACT_LOCATION_TAG).ok_or_else(|| {
        ApiError(Error::not_found(format!(
            "Trace {request_id} has no artifact location"
        )))
    })?;
    send(
        s.artifacts.locate(&location).await?,
        &ArtifactPath::parse("traces.json")?,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_never_served_as_pages() {
        let ty = |name: &str| preview_content_type(name).to_str().unwrap_or("").to_owned();
        assert_eq!(ty("report.html"), "text/plain");
        assert_eq!(ty("REPORT.HTM"), "text/plain");
        assert_eq!(ty("model/MLmodel"), "text/plain");
        assert_eq!(ty("style.css"), "text/css");
        assert_eq!(ty("plot.svg"), "image/svg+xml");
        assert_eq!(ty("plot.png"), "image/png");
        assert_eq!(ty("model.pkl"), "application/octet-stream");
    }
}
