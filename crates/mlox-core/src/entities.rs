//! The tracking entities, shaped exactly like MLflow's JSON so that the REST layer can render
//! them without a second set of types. Optional fields are omitted when absent, as MLflow's
//! proto-to-JSON conversion does.

use crate::wire::{de_f64, de_i64, de_opt_i64, ser_f64};
use serde::{Deserialize, Serialize};

/// A `{key, value}` pair: run tags, params, experiment tags, logged-model tags and params.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

impl KeyValue {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        KeyValue {
            key: key.into(),
            value: value.into(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LifecycleStage {
    Active,
    Deleted,
}

impl LifecycleStage {
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleStage::Active => "active",
            LifecycleStage::Deleted => "deleted",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(LifecycleStage::Active),
            "deleted" => Some(LifecycleStage::Deleted),
            _ => None,
        }
    }
}

/// Which lifecycle stages a search returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ViewType {
    #[default]
    ActiveOnly,
    DeletedOnly,
    All,
}

impl ViewType {
    /// Parses the wire form; MLflow also accepts the enum's numeric values 1..3.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "ACTIVE_ONLY" | "1" => Some(ViewType::ActiveOnly),
            "DELETED_ONLY" | "2" => Some(ViewType::DeletedOnly),
            "ALL" | "3" => Some(ViewType::All),
            _ => None,
        }
    }
    pub fn stages(self) -> &'static [&'static str] {
        match self {
            ViewType::ActiveOnly => &["active"],
            ViewType::DeletedOnly => &["deleted"],
            ViewType::All => &["active", "deleted"],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    Running,
    Scheduled,
    Finished,
    Failed,
    Killed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "RUNNING",
            RunStatus::Scheduled => "SCHEDULED",
            RunStatus::Finished => "FINISHED",
            RunStatus::Failed => "FAILED",
            RunStatus::Killed => "KILLED",
        }
    }
    /// Parses the wire form; the enum's numeric values 1..5 are accepted too.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "RUNNING" | "1" => Some(RunStatus::Running),
            "SCHEDULED" | "2" => Some(RunStatus::Scheduled),
            "FINISHED" | "3" => Some(RunStatus::Finished),
            "FAILED" | "4" => Some(RunStatus::Failed),
            "KILLED" | "5" => Some(RunStatus::Killed),
            _ => None,
        }
    }
    pub fn is_terminated(self) -> bool {
        matches!(
            self,
            RunStatus::Finished | RunStatus::Failed | RunStatus::Killed
        )
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    pub experiment_id: String,
    pub name: String,
    pub artifact_location: String,
    pub lifecycle_stage: String,
    pub last_update_time: i64,
    pub creation_time: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<KeyValue>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub key: String,
    #[serde(serialize_with = "ser_f64", deserialize_with = "de_f64")]
    pub value: f64,
    #[serde(deserialize_with = "de_i64")]
    pub timestamp: i64,
    #[serde(default, deserialize_with = "de_i64")]
    pub step: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub run_uuid: String,
    pub experiment_id: String,
    pub run_name: String,
    pub user_id: String,
    pub status: RunStatus,
    pub start_time: i64,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_i64"
    )]
    pub end_time: Option<i64>,
    pub artifact_uri: String,
    pub lifecycle_stage: String,
    pub run_id: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunData {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<KeyValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<KeyValue>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dataset {
    pub name: String,
    pub digest: String,
    pub source_type: String,
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

/// One dataset as some run of an experiment used it, with the run's `mlflow.data.context` tag
/// (training, evaluation, ...): what the web UI's dataset filter offers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetSummary {
    pub experiment_id: String,
    pub name: String,
    pub digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetInput {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<KeyValue>,
    pub dataset: Dataset,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInput {
    pub model_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelOutput {
    pub model_id: String,
    #[serde(default, deserialize_with = "de_i64")]
    pub step: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInputs {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dataset_inputs: Vec<DatasetInput>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub model_inputs: Vec<ModelInput>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOutputs {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub model_outputs: Vec<ModelOutput>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub info: RunInfo,
    pub data: RunData,
    pub inputs: RunInputs,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<RunOutputs>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoggedModelStatus {
    #[serde(rename = "LOGGED_MODEL_STATUS_UNSPECIFIED")]
    Unspecified,
    #[serde(rename = "LOGGED_MODEL_PENDING")]
    Pending,
    #[serde(rename = "LOGGED_MODEL_READY")]
    Ready,
    #[serde(rename = "LOGGED_MODEL_UPLOAD_FAILED")]
    UploadFailed,
}

impl LoggedModelStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LoggedModelStatus::Unspecified => "LOGGED_MODEL_STATUS_UNSPECIFIED",
            LoggedModelStatus::Pending => "LOGGED_MODEL_PENDING",
            LoggedModelStatus::Ready => "LOGGED_MODEL_READY",
            LoggedModelStatus::UploadFailed => "LOGGED_MODEL_UPLOAD_FAILED",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "LOGGED_MODEL_STATUS_UNSPECIFIED" | "0" => Some(LoggedModelStatus::Unspecified),
            "LOGGED_MODEL_PENDING" | "1" => Some(LoggedModelStatus::Pending),
            "LOGGED_MODEL_READY" | "2" => Some(LoggedModelStatus::Ready),
            "LOGGED_MODEL_UPLOAD_FAILED" | "3" => Some(LoggedModelStatus::UploadFailed),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRegistration {
    pub name: String,
    pub version: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoggedModelInfo {
    pub model_id: String,
    pub experiment_id: String,
    pub name: String,
    pub creation_timestamp_ms: i64,
    pub last_updated_timestamp_ms: i64,
    pub artifact_uri: String,
    pub status: LoggedModelStatus,
    pub model_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<KeyValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registrations: Vec<ModelRegistration>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LoggedModelData {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<KeyValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoggedModel {
    pub info: LoggedModelInfo,
    pub data: LoggedModelData,
}

/// One page of a search: the items and the token for the next page, if any.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: Option<String>,
}

/// Registry stages, in MLflow's spelling; input is matched without regard to case.
pub const STAGES: [&str; 4] = ["None", "Staging", "Production", "Archived"];

pub fn canonical_stage(stage: &str) -> Option<&'static str> {
    STAGES
        .iter()
        .copied()
        .find(|s| s.eq_ignore_ascii_case(stage))
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredModelAlias {
    pub alias: String,
    pub version: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelVersion {
    pub name: String,
    pub version: String,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub current_stage: String,
    pub description: String,
    pub source: String,
    pub run_id: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<KeyValue>,
    pub run_link: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredModel {
    pub name: String,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latest_versions: Vec<ModelVersion>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<KeyValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<RegisteredModelAlias>,
}
