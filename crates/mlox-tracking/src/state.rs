//! What every handler shares: the store, the server's view of its own configuration and the
//! way to the artifacts that stored locations name.

use crate::error::ApiError;
use mlox_artifacts::ArtifactLocations;
use mlox_core::Error;
use mlox_store::SqlStore;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct ServerSettings {
    /// Whether `/api/2.0/mlflow-artifacts` is served (`--serve-artifacts`).
    pub serve_artifacts: bool,
    /// The version string `/version` answers; the MLflow client only enables some features
    /// (OTLP trace export) for servers that report 3.4 or newer.
    pub api_version: String,
    pub store_type: String,
    /// What webhook URLs may target (`--webhooks-allow-private-addresses`, http allowance).
    pub webhook_policy: mlox_webhooks::UrlPolicy,
    /// Which hosts a model version's source or an experiment's artifact location may name.
    pub artifact_host_policy: mlox_core::location::HostPolicy,
}

#[derive(Clone)]
pub struct AppState {
    pub store: SqlStore,
    pub settings: Arc<ServerSettings>,
    /// Where runs', models' and model versions' artifacts are read from for browsing.
    pub artifacts: ArtifactLocations,
}

/// Artifact locations chosen by clients may not step out of a directory with `..`.
fn validate_artifact_location(location: &str) -> Result<(), ApiError> {
    if location.contains('\0') || location.split(['/', '\\']).any(|seg| seg == "..") {
        return Err(ApiError(Error::invalid(format!(
            "Invalid artifact location '{location}': it may not contain '..' segments."
        ))));
    }
    Ok(())
}

/// A client's experiment artifact location as it is stored: checked, and a relative local path
/// made absolute against the server's working directory, as MLflow does, so the location means
/// the same wherever it is read later.
pub fn resolve_artifact_location(location: &str) -> Result<String, ApiError> {
    validate_artifact_location(location)?;
    let cwd = std::env::current_dir().map_err(|e| {
        ApiError(Error::internal(format!(
            "The server's working directory cannot be read: {e}"
        )))
    })?;
    Ok(mlox_core::location::absolute_local_location(location, &cwd))
}
