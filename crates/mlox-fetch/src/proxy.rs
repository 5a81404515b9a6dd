//! A tracking server's artifact proxy (`mlflow-artifacts:/…`) as a read-only
//! [`ArtifactRepository`], so downloads share one code path with S3 and local files.

use futures::StreamExt;
use mlox_artifacts::{
    ArtifactPath, ArtifactRepository, ByteStream, Download, FileInfo, async_trait,
};
use mlox_core::{Error, Result};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use crate::tracking::TrackingClient;

const ARTIFACTS: &str = "/api/2.0/mlflow-artifacts/artifacts";

/// Path segments keep `/` between them; everything else unusual is escaped.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub struct ProxyArtifactRepo {
    tracking: TrackingClient,
    /// The directory under the proxy's root this repository starts at.
    root: String,
}

impl ProxyArtifactRepo {
    pub fn new(tracking: TrackingClient, root: &str) -> Self {
        ProxyArtifactRepo {
            tracking,
            root: root.trim_matches('/').to_string(),
        }
    }

    fn full(&self, path: &ArtifactPath) -> String {
        match (self.root.is_empty(), path.as_str().is_empty()) {
            (true, _) => path.as_str().to_string(),
            (false, true) => self.root.clone(),
            (false, false) => format!("{}/{}", self.root, path.as_str()),
        }
    }

    fn encoded(&self, path: &ArtifactPath) -> String {
        self.full(path)
            .split('/')
            .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
            .collect::<Vec<_>>()
            .join("/")
    }
}

fn read_only() -> Error {
    Error::not_implemented("the tracking server's artifact proxy is read here, never written")
}

#[async_trait]
impl ArtifactRepository for ProxyArtifactRepo {
    async fn put(&self, _path: &ArtifactPath, _body: ByteStream) -> Result<u64> {
        Err(read_only())
    }

    async fn get(&self, path: &ArtifactPath) -> Result<Download> {
        let response = self
            .tracking
            .request(
                reqwest::Method::GET,
                &format!("{ARTIFACTS}/{}", self.encoded(path)),
            )
            .send()
            .await
            .map_err(|e| unreachable(&self.tracking, e))?;
        if !response.status().is_success() {
            let status = response.status();
            return Err(if status.as_u16() == 404 {
                Error::not_found(format!(
                    "artifact {} not found on the tracking server",
                    self.full(path)
                ))
            } else {
                Error::unavailable(format!(
                    "the tracking server answered {status} for artifact {}",
                    self.full(path)
                ))
            });
        }
        let size = response.content_length().unwrap_or(0);
        let stream = response
            .bytes_stream()
            .map(|chunk| chunk.map_err(std::io::Error::other))
            .boxed();
        Ok(Download { size, stream })
    }

    async fn list(&self, path: &ArtifactPath) -> Result<Vec<FileInfo>> {
        let full = self.full(path);
        let query = utf8_percent_encode(&full, NON_ALPHANUMERIC);
        let response = self
            .tracking
            .request(reqwest::Method::GET, &format!("{ARTIFACTS}?path={query}"))
            .send()
            .await
            .map_err(|e| unreachable(&self.tracking, e))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| unreachable(&self.tracking, e))?;
        if !status.is_success() {
            return Err(Error::unavailable(format!(
                "the tracking server answered {status} listing {full}: {}",
                text.chars().take(200).collect::<String>()
            )));
        }
        let body: Value = serde_json::from_str(&text)
            .map_err(|e| Error::internal(format!("malformed artifact listing for {full}: {e}")))?;
        let mut files: Vec<FileInfo> = body["files"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| {
                let name = f["path"].as_str()?;
                // Servers answer bare names; older ones full paths. Keep the last segment.
                let name = name.rsplit('/').next().unwrap_or(name).to_string();
                Some(FileInfo {
                    path: name,
                    is_dir: f["is_dir"].as_bool().unwrap_or(false),
                    file_size: f["file_size"]
                        .as_u64()
                        .or_else(|| f["file_size"].as_str().and_then(|s| s.parse().ok())),
                })
            })
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    async fn delete(&self, _path: &ArtifactPath) -> Result<()> {
        Err(read_only())
    }
}

fn unreachable(tracking: &TrackingClient, e: reqwest::Error) -> Error {
    Error::unavailable(format!(
        "cannot reach the tracking server at {}: {e}",
        tracking.base()
    ))
}
