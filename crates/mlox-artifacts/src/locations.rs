//! [`ArtifactLocations`]: which repository serves a stored artifact location (a run's, a logged
//! model's or a model version's), for a server that reads artifacts by the entity that owns
//! them. An `mlflow-artifacts:` URI (or an `http(s)` URL of the proxy's route) is a place under
//! this server's own artifact proxy; a bucket gets one cached client, with the location's key
//! prefix as a path inside it; a directory is opened without creating anything.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mlox_core::location::{Location, LocationError};
use mlox_core::{Error, Result};

use crate::{
    ArtifactPath, ArtifactRepository, INVALID_PATH_MESSAGE, LocalArtifactRepo,
    open_artifact_repository_for_reading,
};

/// Buckets whose clients are kept for reuse; past this the cache starts over, so locations
/// chosen by clients cannot grow it without bound.
const MAX_CACHED_BUCKETS: usize = 32;

/// Finds the repository behind a stored artifact location.
#[derive(Clone, Default)]
pub struct ArtifactLocations {
    proxy: Option<Arc<dyn ArtifactRepository>>,
    buckets: Arc<Mutex<HashMap<String, Arc<dyn ArtifactRepository>>>>,
}

/// An artifact location resolved: a directory `base` inside `repo`.
pub struct ArtifactLocation {
    pub repo: Arc<dyn ArtifactRepository>,
    pub base: ArtifactPath,
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

    /// The repository and directory a stored artifact URI names.
    pub async fn locate(&self, uri: &str) -> Result<ArtifactLocation> {
        let location = match Location::parse(uri) {
            Ok(location) => location,
            Err(LocationError::UnsafePath) => return Err(bad_location(uri)),
            // Refused by the factory below, in its words.
            Err(_) => return self.open_root(uri).await,
        };
        if let Some(path) = location.proxied_path() {
            let Some(proxy) = &self.proxy else {
                return Err(Error::invalid_state(format!(
                    "The artifacts at '{uri}' are stored through the artifact proxy, which this \
                     server does not run: it was started with `--no-serve-artifacts`. Restart it \
                     with `--serve-artifacts` and the same `--artifacts-destination` to browse them."
                )));
            };
            return Ok(ArtifactLocation {
                repo: proxy.clone(),
                base: path.map_err(|_| bad_location(uri))?,
            });
        }
        match location {
            // One client per bucket, with the location's key prefix as a path inside it: runs
            // are many, buckets few.
            Location::S3 { bucket, key } => Ok(ArtifactLocation {
                repo: self.bucket(&bucket).await?,
                base: key,
            }),
            Location::Local(path) => Ok(ArtifactLocation {
                repo: Arc::new(LocalArtifactRepo::new(path)),
                base: ArtifactPath::root(),
            }),
            _ => self.open_root(uri).await,
        }
    }

    async fn open_root(&self, uri: &str) -> Result<ArtifactLocation> {
        Ok(ArtifactLocation {
            repo: open_artifact_repository_for_reading(uri).await?,
            base: ArtifactPath::root(),
        })
    }

    async fn bucket(&self, bucket: &str) -> Result<Arc<dyn ArtifactRepository>> {
        let cached = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(bucket)
            .cloned();
        if let Some(repo) = cached {
            return Ok(repo);
        }
        let root = Location::S3 {
            bucket: bucket.to_owned(),
            key: ArtifactPath::root(),
        };
        let repo = open_artifact_repository_for_reading(&root.to_string()).await?;
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

impl ArtifactLocation {
    /// A client's path, relative to this location, as a path inside the repository.
    pub fn join(&self, path: &ArtifactPath) -> Result<ArtifactPath> {
        if self.base.is_root() {
            return Ok(path.clone());
        }
        if path.is_root() {
            return Ok(self.base.clone());
        }
        // Both halves are valid already; parsing again only re-checks the combined length.
        ArtifactPath::parse(&format!("{}/{}", self.base, path))
            .map_err(|_| Error::invalid(INVALID_PATH_MESSAGE))
    }

    /// The location `sub` (a path from a stored URI, such as `runs:/<id>/model`) below this
    /// one.
    pub fn descend(self, sub: &ArtifactPath) -> Result<ArtifactLocation> {
        let base = self.join(sub)?;
        Ok(ArtifactLocation {
            repo: self.repo,
            base,
        })
    }
}

/// A stored location that names no place a client may read.
pub fn bad_location(uri: &str) -> Error {
    Error::invalid(format!(
        "The artifact location '{uri}' is not a valid artifact path"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn locations_resolve_to_the_proxy_a_bucket_or_a_directory() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let proxy: Arc<dyn ArtifactRepository> = Arc::new(LocalArtifactRepo::new(tmp.path()));
        let locations = ArtifactLocations::new(Some(proxy));
        let base = |uri: &str| {
            let locations = locations.clone();
            let uri = uri.to_owned();
            async move { locations.locate(&uri).await.map(|l| l.base.to_string()) }
        };
        assert_eq!(
            base("mlflow-artifacts:/1/abc/artifacts")
                .await
                .expect("proxied"),
            "1/abc/artifacts"
        );
        assert_eq!(
            base("https://h/api/2.0/mlflow-artifacts/artifacts/1/x")
                .await
                .expect("proxied url"),
            "1/x"
        );
        assert_eq!(base("/srv/none").await.expect("directory"), "");
        let refused = base("mlflow-artifacts:/1/%2e%2e/x")
            .await
            .expect_err("traversal");
        assert!(
            refused.message.contains("is not a valid artifact path"),
            "{refused}"
        );
        let unsupported = base("gs://b/p").await.expect_err("gs");
        assert!(
            unsupported.message.contains("Unsupported artifact root"),
            "{unsupported}"
        );
        let without_proxy = ArtifactLocations::new(None)
            .locate("mlflow-artifacts:/1")
            .await
            .err()
            .expect("no proxy");
        assert_eq!(without_proxy.code, mlox_core::Code::InvalidState);
    }
}
