//! Getting a model onto local disk from wherever its URI says it lives. This crate owns model
//! URI resolution against a tracking server (`runs:/`, `models:/name/version`, `@alias`,
//! stages, `latest`, `models:/m-…`, following MLflow's rules for each), downloads from the
//! artifact proxy (`mlflow-artifacts:`), S3 and local paths, and the local cache: a resolved
//! artifact location is downloaded once, into a directory named by its hash, and published with
//! an atomic rename so a crash mid-download never leaves a half model that looks complete.
//!
//! It takes a parsed [`ModelUri`] and reads the location the tracking server answers once,
//! with `mlox_core::location`. It talks to a tracking server over HTTP only: it must not import
//! mlox-store, mlox-tracking or the serving crates.

mod proxy;
mod tracking;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use mlox_artifacts::{ArtifactPath, ArtifactRepository};
use mlox_core::location::Location;
use mlox_core::{Error, Result};
use mlox_mlmodel::ModelUri;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

pub use proxy::ProxyArtifactRepo;
pub use tracking::TrackingClient;

/// Where models come from and where they are kept.
#[derive(Clone, Debug)]
pub struct FetchConfig {
    /// The tracking server (`MLFLOW_TRACKING_URI`); needed for every URI but storage ones.
    pub tracking_uri: Option<String>,
    /// `MLFLOW_TRACKING_TOKEN`, or `MLFLOW_TRACKING_USERNAME` / `MLFLOW_TRACKING_PASSWORD`.
    pub token: Option<String>,
    pub basic_auth: Option<(String, String)>,
    /// Downloaded models live under `<cache_dir>/models/`.
    pub cache_dir: PathBuf,
}

impl FetchConfig {
    /// MLflow's variables, and `MLOX_CACHE_DIR` (default `~/.cache/mlox`).
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let cache_dir = get("MLOX_CACHE_DIR").map(PathBuf::from).unwrap_or_else(|| {
            get("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| get("HOME").map(|h| Path::new(&h).join(".cache")))
                .unwrap_or_else(std::env::temp_dir)
                .join("mlox")
        });
        let basic_auth = match (
            get("MLFLOW_TRACKING_USERNAME"),
            get("MLFLOW_TRACKING_PASSWORD"),
        ) {
            (Some(user), Some(password)) => Some((user, password)),
            _ => None,
        };
        FetchConfig {
            tracking_uri: get("MLFLOW_TRACKING_URI").map(|u| u.trim_end_matches('/').to_string()),
            token: get("MLFLOW_TRACKING_TOKEN"),
            basic_auth,
            cache_dir,
        }
    }
}

/// A model on local disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedModel {
    /// The directory holding `MLmodel`.
    pub dir: PathBuf,
    /// The storage location the URI resolved to (what was downloaded), for logs.
    pub location: String,
}

pub struct ModelFetcher {
    config: FetchConfig,
    tracking: Option<TrackingClient>,
}

impl ModelFetcher {
    pub fn new(config: FetchConfig) -> Result<Self> {
        let tracking = config
            .tracking_uri
            .as_deref()
            .filter(|u| matches!(Location::parse(u), Ok(Location::Http(_))))
            .map(|u| TrackingClient::new(u, &config))
            .transpose()?;
        Ok(ModelFetcher { config, tracking })
    }

    fn tracking(&self, uri: &ModelUri) -> Result<&TrackingClient> {
        self.tracking.as_ref().ok_or_else(|| {
            Error::invalid(format!(
                "'{uri}' needs a tracking server: set MLFLOW_TRACKING_URI to its http(s) URL"
            ))
        })
    }

    /// The registered model and version a `models:/<name>/…` URI stands for now (an alias,
    /// stage or `latest` is looked up); `None` for every other kind of URI.
    pub async fn registered_version(&self, uri: &ModelUri) -> Result<Option<(String, String)>> {
        let version = match uri {
            ModelUri::RegisteredVersion { name, version } => (name, version.to_string()),
            ModelUri::RegisteredAlias { name, alias } => {
                (name, self.tracking(uri)?.alias_version(name, alias).await?)
            }
            ModelUri::RegisteredStage { name, stage } => (
                name,
                self.tracking(uri)?
                    .latest_version(name, Some(stage))
                    .await?,
            ),
            ModelUri::RegisteredLatest { name } => {
                (name, self.tracking(uri)?.latest_version(name, None).await?)
            }
            _ => return Ok(None),
        };
        Ok(Some((version.0.clone(), version.1)))
    }

    /// The storage location (`mlflow-artifacts:/…`, `s3://…`, a path) a model URI names.
    pub async fn resolve(&self, uri: &ModelUri) -> Result<String> {
        Ok(self.locate(uri).await?.0)
    }

    /// The storage location a model URI names, as the tracking server wrote it and parsed.
    async fn locate(&self, uri: &ModelUri) -> Result<(String, ModelUri)> {
        let location = match uri {
            ModelUri::Local(path) => {
                return Ok((path.to_string_lossy().into_owned(), uri.clone()));
            }
            ModelUri::S3 { .. } | ModelUri::MlflowArtifacts { .. } | ModelUri::Http(_) => {
                return Ok((uri.to_string(), uri.clone()));
            }
            ModelUri::Run { run_id, path } => {
                self.tracking(uri)?.run_location(run_id, path).await?
            }
            ModelUri::LoggedModel { model_id } => {
                self.tracking(uri)?.logged_model_location(model_id).await?
            }
            ModelUri::RegisteredVersion { .. }
            | ModelUri::RegisteredAlias { .. }
            | ModelUri::RegisteredStage { .. }
            | ModelUri::RegisteredLatest { .. } => {
                let (name, version) = self
                    .registered_version(uri)
                    .await?
                    .ok_or_else(|| Error::internal("a registry URI without a version"))?;
                self.tracking(uri)?
                    .version_location(&name, &version)
                    .await?
            }
        };
        // A version's source may itself be a runs:/ or models:/m- URI (MLflow 3 registers
        // `models:/m-…`); resolve once more, but never loop.
        match ModelUri::parse(&location)? {
            nested @ (ModelUri::Run { .. } | ModelUri::LoggedModel { .. }) => {
                Box::pin(self.locate(&nested)).await
            }
            storage => Ok((location, storage)),
        }
    }

    /// Resolves `uri` and makes the model available locally: a local directory is used where
    /// it is, anything else is downloaded into the cache once.
    pub async fn fetch(&self, uri: &ModelUri) -> Result<FetchedModel> {
        let (location, storage) = self.locate(uri).await?;
        if let ModelUri::Local(path) = &storage {
            if !path.join("MLmodel").is_file() {
                return Err(Error::not_found(format!(
                    "No MLmodel file in {} (resolved from '{uri}')",
                    path.display()
                )));
            }
            return Ok(FetchedModel {
                dir: path.clone(),
                location,
            });
        }
        let target = self.cache_path(&location);
        if target.join("MLmodel").is_file() {
            tracing::info!(%uri, %location, dir = %target.display(), "model found in cache");
            return Ok(FetchedModel {
                dir: target,
                location,
            });
        }
        let repo: Arc<dyn ArtifactRepository> = match &storage {
            ModelUri::MlflowArtifacts { path, .. } => {
                let tracking = self.tracking(uri)?;
                Arc::new(ProxyArtifactRepo::new(tracking.clone(), path))
            }
            ModelUri::S3 { .. } => mlox_artifacts::open_artifact_repository(&location).await?,
            other => {
                return Err(Error::invalid(format!(
                    "cannot download a model from '{other}' (resolved from '{uri}')"
                )));
            }
        };
        let started = std::time::Instant::now();
        let bytes = download_into(repo.as_ref(), &target).await?;
        if !target.join("MLmodel").is_file() {
            return Err(Error::not_found(format!(
                "'{uri}' resolved to {location}, which holds no MLmodel file"
            )));
        }
        tracing::info!(
            %uri, %location, bytes, ms = started.elapsed().as_millis() as u64,
            dir = %target.display(), "model downloaded"
        );
        Ok(FetchedModel {
            dir: target,
            location,
        })
    }

    fn cache_path(&self, location: &str) -> PathBuf {
        let digest = Sha256::digest(location.as_bytes());
        let name: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        self.config.cache_dir.join("models").join(name)
    }
}

/// Copies everything under the repository's root into `target`, through a sibling staging
/// directory that is renamed into place only when complete. Returns the bytes copied.
pub async fn download_into(repo: &dyn ArtifactRepository, target: &Path) -> Result<u64> {
    let parent = target
        .parent()
        .ok_or_else(|| Error::internal("the model cache has no parent directory"))?;
    tokio::fs::create_dir_all(parent)
        .await
        .map_err(|e| io_error("create the model cache", parent, e))?;
    let staging = parent.join(format!(".partial-{}", uuid::Uuid::new_v4().simple()));
    let result = copy_tree(repo, &staging).await;
    match result {
        Ok(bytes) => {
            match tokio::fs::rename(&staging, target).await {
                Ok(()) => Ok(bytes),
                // Another process published the same model first; theirs is as good as ours.
                Err(_) if target.join("MLmodel").is_file() => {
                    let _ = tokio::fs::remove_dir_all(&staging).await;
                    Ok(bytes)
                }
                Err(e) => {
                    let _ = tokio::fs::remove_dir_all(&staging).await;
                    Err(io_error("publish the downloaded model", target, e))
                }
            }
        }
        Err(e) => {
            let _ = tokio::fs::remove_dir_all(&staging).await;
            Err(e)
        }
    }
}

async fn copy_tree(repo: &dyn ArtifactRepository, into: &Path) -> Result<u64> {
    tokio::fs::create_dir_all(into)
        .await
        .map_err(|e| io_error("create", into, e))?;
    let mut pending = vec![ArtifactPath::root()];
    let mut bytes = 0;
    while let Some(dir) = pending.pop() {
        for entry in repo.list(&dir).await? {
            let path = dir.join_name(&entry.path)?;
            let local = into.join(path.as_str());
            if entry.is_dir {
                tokio::fs::create_dir_all(&local)
                    .await
                    .map_err(|e| io_error("create", &local, e))?;
                pending.push(path);
                continue;
            }
            let mut download = repo.get(&path).await?;
            let mut file = tokio::fs::File::create(&local)
                .await
                .map_err(|e| io_error("create", &local, e))?;
            while let Some(chunk) = download.stream.next().await {
                let chunk = chunk.map_err(|e| {
                    Error::unavailable(format!("download of {} broke off: {e}", path.as_str()))
                })?;
                bytes += chunk.len() as u64;
                file.write_all(&chunk)
                    .await
                    .map_err(|e| io_error("write", &local, e))?;
            }
            file.flush()
                .await
                .map_err(|e| io_error("write", &local, e))?;
        }
    }
    Ok(bytes)
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::internal(format!("cannot {what} {}: {e}", path.display()))
}
