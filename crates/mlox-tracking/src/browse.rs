//! The artifact routes MLflow's web UI reads from: a run's listing (`artifacts/list`), one file
//! of a run (`/get-artifact`), of a registered model version (`/model-versions/get-artifact`)
//! or of a logged model (`logged-models/{id}/artifacts/files`), and a logged model's listing
//! (`logged-models/{id}/artifacts/directories`).
//!
//! Unlike the proxied artifact API, these name artifacts by the entity that owns them, so the
//! server first resolves that entity's artifact location: an `mlflow-artifacts:` URI is a place
//! under this server's own artifact proxy, anything else (a bucket, a directory) is opened
//! directly. Client paths are relative to that location and pass through [`ArtifactPath`], so
//! they can never leave it.
//!
//! Files are served for preview in a browser on this server's origin, so nothing served here
//! may become an active document there: HTML goes out as plain text, and every file is an
//! attachment that may not be sniffed, under a sandboxing content security policy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mlox_artifacts::{ArtifactPath, ArtifactRepository, INVALID_PATH_MESSAGE, content_type_for};
use mlox_core::{Code, Error, validation};
use serde_json::{Value, json};

use crate::artifacts::{attachment_headers, query_param};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Buckets whose clients are kept for reuse; past this the cache starts over, so locations
/// chosen by clients cannot grow it without bound.
const MAX_CACHED_BUCKETS: usize = 32;

/// Where a proxied artifact location's path starts in an `http(s)` artifact URI.
const PROXY_ROUTE_ANCHOR: &str = "/api/2.0/mlflow-artifacts/artifacts/";

/// Finds the repository behind a stored artifact location (a run's, a logged model's or a model
/// version's).
#[derive(Clone, Default)]
pub struct ArtifactLocations {
    proxy: Option<Arc<dyn ArtifactRepository>>,
    buckets: Arc<Mutex<HashMap<String, Arc<dyn ArtifactRepository>>>>,
}

impl ArtifactLocations {
    /// `proxy` is the repository `mlflow-artifacts:` URIs point into (the server's artifacts
    /// destination); `None` when the server does not serve artifacts.
    pub fn new(proxy: Option<Arc<dyn ArtifactRepository>>) -> Self {
        ArtifactLocations {
            proxy,
            buckets: Arc::default(),
        }
    }

    async fn locate(&self, uri: &str) -> ApiResult<Location> {
        if let Some(path) = proxied_path(uri) {
            let Some(proxy) = &self.proxy else {
                return Err(ApiError(Error::invalid_state(format!(
                    "The artifacts at '{uri}' are stored through the artifact proxy, which this \
                     server does not run: it was started with `--no-serve-artifacts`. Restart it \
                     with `--serve-artifacts` and the same `--artifacts-destination` to browse them."
                ))));
            };
            return Ok(Location {
                repo: proxy.clone(),
                base: ArtifactPath::parse(path).map_err(|_| bad_location(uri))?,
            });
        }
        // One client per bucket, with the location's key prefix as a path inside it: runs are
        // many, buckets few.
        if let Some((bucket, prefix)) = s3_bucket_and_prefix(uri)
            && let Ok(base) = ArtifactPath::parse(prefix)
        {
            return Ok(Location {
                repo: self.bucket(bucket).await?,
                base,
            });
        }
        Ok(Location {
            repo: mlox_artifacts::open_artifact_repository_for_reading(uri).await?,
            base: ArtifactPath::root(),
        })
    }

    async fn bucket(&self, bucket: &str) -> ApiResult<Arc<dyn ArtifactRepository>> {
        let cached = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(bucket)
            .cloned();
        if let Some(repo) = cached {
            return Ok(repo);
        }
        let repo =
            mlox_artifacts::open_artifact_repository_for_reading(&format!("s3://{bucket}")).await?;
        let mut cache = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if cache.len() >= MAX_CACHED_BUCKETS {
            cache.clear();
        }
        cache.insert(bucket.to_owned(), repo.clone());
        Ok(repo)
    }
}

/// An artifact location resolved: a directory `base` inside `repo`.
struct Location {
    repo: Arc<dyn ArtifactRepository>,
    base: ArtifactPath,
}

impl Location {
    /// A client's path, relative to this location, as a path inside the repository.
    fn join(&self, path: &ArtifactPath) -> ApiResult<ArtifactPath> {
        if self.base.is_root() {
            return Ok(path.clone());
        }
        if path.is_root() {
            return Ok(self.base.clone());
        }
        // Both halves are valid already; parsing again only re-checks the combined length.
        ArtifactPath::parse(&format!("{}/{}", self.base, path)).map_err(|_| invalid_path())
    }

    /// The location `sub` (a path from a stored URI, such as `runs:/<id>/model`) below this one.
    fn descend(self, sub: &str, uri: &str) -> ApiResult<Location> {
        let sub = ArtifactPath::parse(sub).map_err(|_| bad_location(uri))?;
        let base = self.join(&sub)?;
        Ok(Location {
            repo: self.repo,
            base,
        })
    }
}

/// The path inside the proxy's repository that a proxied artifact URI names, as MLflow reads
/// them: `mlflow-artifacts:/<path>` or `mlflow-artifacts://<host>/<path>` (the host is the
/// server the client went through, not a different store), or an `http(s)` URL of the proxy's
/// artifact route.
fn proxied_path(uri: &str) -> Option<&str> {
    let (scheme, rest) = uri.split_once(':')?;
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    if scheme.eq_ignore_ascii_case("mlflow-artifacts") {
        let path = match rest.strip_prefix("//") {
            Some(authority_and_path) => authority_and_path
                .find('/')
                .map_or("", |slash| &authority_and_path[slash..]),
            None => rest,
        };
        return Some(path.trim_start_matches('/'));
    }
    if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") {
        let start = rest.find(PROXY_ROUTE_ANCHOR)? + PROXY_ROUTE_ANCHOR.len();
        return Some(rest[start..].trim_start_matches('/'));
    }
    None
}

fn s3_bucket_and_prefix(uri: &str) -> Option<(&str, &str)> {
    let rest = uri.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    (!bucket.is_empty() && !bucket.contains(['?', '#'])).then_some((bucket, prefix))
}

fn invalid_path() -> ApiError {
    ApiError(Error::invalid(INVALID_PATH_MESSAGE))
}

fn bad_location(uri: &str) -> ApiError {
    ApiError(Error::invalid(format!(
        "The artifact location '{uri}' is not a valid artifact path"
    )))
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
async fn send(location: Location, path: &ArtifactPath) -> ApiResult<Response> {
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

/// The `Content-Type` a previewed file is served with: MLflow's choice, except that documents a
/// browser would render as a page are plain text (the UI shows them in a sandboxed frame), and
/// text carries its charset as MLflow's server adds it.
fn preview_content_type(name: &str) -> HeaderValue {
    let content_type = match content_type_for(name) {
        "text/html" | "application/xhtml+xml" => "text/plain",
        other => other,
    };
    if content_type.starts_with("text/") || content_type.ends_with("+xml") {
        let with_charset = format!("{content_type}; charset=utf-8");
        if let Ok(value) = HeaderValue::from_str(&with_charset) {
            return value;
        }
    }
    HeaderValue::from_static(content_type)
}

/// The location a model version's download URI names. Besides plain locations, a version may
/// point at a run's artifacts (`runs:/<run id>/<path>`) or a logged model (`models:/<model id>`).
async fn locate_source(s: &AppState, uri: &str) -> ApiResult<Location> {
    if let Some(rest) = uri.strip_prefix("runs:/") {
        let rest = rest.trim_start_matches('/');
        let (run_id, sub) = rest.split_once('/').unwrap_or((rest, ""));
        let run = s.store.get_run_info(run_id).await?;
        return s
            .artifacts
            .locate(&run.artifact_uri)
            .await?
            .descend(sub, uri);
    }
    if let Some(rest) = uri.strip_prefix("models:/")
        && rest.starts_with("m-")
    {
        let (model_id, sub) = rest.split_once('/').unwrap_or((rest, ""));
        let model = s.store.get_logged_model(model_id).await?;
        return s
            .artifacts
            .locate(&model.info.artifact_uri)
            .await?
            .descend(sub, uri);
    }
    s.artifacts.locate(uri).await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxied_uris_name_a_path_inside_the_proxy() {
        for (uri, path) in [
            ("mlflow-artifacts:/1/abc/artifacts", Some("1/abc/artifacts")),
            ("mlflow-artifacts:", Some("")),
            ("mlflow-artifacts:/", Some("")),
            ("mlflow-artifacts://host:5000/1/abc", Some("1/abc")),
            ("mlflow-artifacts://host", Some("")),
            ("mlflow-artifacts:///1/x?q#f", Some("1/x")),
            (
                "https://h/p/api/2.0/mlflow-artifacts/artifacts/1/abc",
                Some("1/abc"),
            ),
            ("https://h/elsewhere/1/abc", None),
            ("s3://bucket/1/abc", None),
            ("/srv/mlruns/1/abc", None),
            ("file:///srv/mlruns", None),
        ] {
            assert_eq!(proxied_path(uri), path, "{uri}");
        }
    }

    #[test]
    fn s3_uris_split_into_bucket_and_prefix() {
        assert_eq!(
            s3_bucket_and_prefix("s3://b/p/1/abc"),
            Some(("b", "p/1/abc"))
        );
        assert_eq!(s3_bucket_and_prefix("s3://b"), Some(("b", "")));
        assert_eq!(s3_bucket_and_prefix("s3:///x"), None);
        assert_eq!(s3_bucket_and_prefix("mlflow-artifacts:/x"), None);
    }

    #[test]
    fn pages_are_never_served_as_pages() {
        let ty = |name: &str| preview_content_type(name).to_str().unwrap_or("").to_owned();
        assert_eq!(ty("report.html"), "text/plain; charset=utf-8");
        assert_eq!(ty("REPORT.HTM"), "text/plain; charset=utf-8");
        assert_eq!(ty("model/MLmodel"), "text/plain; charset=utf-8");
        assert_eq!(ty("style.css"), "text/css; charset=utf-8");
        assert_eq!(ty("plot.svg"), "image/svg+xml; charset=utf-8");
        assert_eq!(ty("plot.png"), "image/png");
        assert_eq!(ty("model.pkl"), "application/octet-stream");
    }
}
