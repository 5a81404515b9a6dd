//! The object types of MLflow's GraphQL schema (the one its web UI queries), each field named
//! as in the proto message its REST answer carries. GraphQL names are those names in camel
//! case, as graphene writes them.

/// What a field holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    String,
    Float,
    Boolean,
    /// An int64 written as a string, so JavaScript does not round it (MLflow's `LongString`).
    Long,
    /// A proto enum: its value names, the first being the default.
    Enum(&'static str, &'static [&'static str]),
    Object(&'static str),
}

impl Kind {
    pub fn type_name(self) -> &'static str {
        match self {
            Kind::String => "String",
            Kind::Float => "Float",
            Kind::Boolean => "Boolean",
            Kind::Long => "LongString",
            Kind::Enum(name, _) | Kind::Object(name) => name,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct FieldType {
    /// The proto field name, the key in the REST answer's JSON.
    pub proto_name: &'static str,
    pub kind: Kind,
    pub list: bool,
    /// Not a field of the proto message (MLflow's `apiError`): absent means null rather than
    /// the proto's default.
    pub outside_proto: bool,
}

const fn one(proto_name: &'static str, kind: Kind) -> FieldType {
    FieldType {
        proto_name,
        kind,
        list: false,
        outside_proto: false,
    }
}

const fn many(proto_name: &'static str, kind: Kind) -> FieldType {
    FieldType {
        proto_name,
        kind,
        list: true,
        outside_proto: false,
    }
}

use Kind::{Boolean, Float, Long, Object, String as Str};

const RUN_STATUS: Kind = Kind::Enum(
    "MlflowRunStatus",
    &["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"],
);
const MODEL_VERSION_STATUS: Kind = Kind::Enum(
    "MlflowModelVersionStatus",
    &["PENDING_REGISTRATION", "FAILED_REGISTRATION", "READY"],
);
const DEPLOYMENT_JOB_CONNECTION_STATE: Kind = Kind::Enum(
    "MlflowDeploymentJobConnectionState",
    &[
        "DEPLOYMENT_JOB_CONNECTION_STATE_UNSPECIFIED",
        "NOT_SET_UP",
        "CONNECTED",
        "NOT_FOUND",
        "REQUIRED_PARAMETERS_CHANGED",
    ],
);
const DEPLOYMENT_JOB_RUN_STATE: Kind = Kind::Enum(
    "MlflowModelVersionDeploymentJobStateDeploymentJobRunState",
    &[
        "DEPLOYMENT_JOB_RUN_STATE_UNSPECIFIED",
        "NO_VALID_DEPLOYMENT_JOB_FOUND",
        "RUNNING",
        "SUCCEEDED",
        "FAILED",
        "PENDING",
        "APPROVAL",
    ],
);

const KEY_VALUE: &[FieldType] = &[one("key", Str), one("value", Str)];

const METRIC: &[FieldType] = &[
    one("key", Str),
    one("value", Float),
    one("timestamp", Long),
    one("step", Long),
    one("dataset_name", Str),
    one("dataset_digest", Str),
    one("model_id", Str),
    one("run_id", Str),
];

const EXPERIMENT: &[FieldType] = &[
    one("experiment_id", Str),
    one("name", Str),
    one("artifact_location", Str),
    one("lifecycle_stage", Str),
    one("last_update_time", Long),
    one("creation_time", Long),
    many("tags", Object("MlflowExperimentTag")),
    one("effective_trace_archival_retention", Str),
    one("workspace", Str),
];

const MODEL_VERSION: &[FieldType] = &[
    one("name", Str),
    one("version", Str),
    one("creation_timestamp", Long),
    one("last_updated_timestamp", Long),
    one("user_id", Str),
    one("current_stage", Str),
    one("description", Str),
    one("source", Str),
    one("run_id", Str),
    one("status", MODEL_VERSION_STATUS),
    one("status_message", Str),
    many("tags", Object("MlflowModelVersionTag")),
    one("run_link", Str),
    many("aliases", Str),
    one("model_id", Str),
    many("model_params", Object("MlflowModelParam")),
    many("model_metrics", Object("MlflowModelMetric")),
    one(
        "deployment_job_state",
        Object("MlflowModelVersionDeploymentJobState"),
    ),
];

const API_ERROR: FieldType = FieldType {
    outside_proto: true,
    ..one("apiError", Object("ApiError"))
};

/// The fields of an object type, `None` for a name that is no object type.
pub fn fields(type_name: &str) -> Option<&'static [FieldType]> {
    Some(match type_name {
        "Query" => {
            const {
                &[
                    one("test", Object("Test")),
                    one(
                        "mlflow_get_experiment",
                        Object("MlflowGetExperimentResponse"),
                    ),
                    one(
                        "mlflow_get_metric_history_bulk_interval",
                        Object("MlflowGetMetricHistoryBulkIntervalResponse"),
                    ),
                    one("mlflow_get_run", Object("MlflowGetRunResponse")),
                    one(
                        "mlflow_list_artifacts",
                        Object("MlflowListArtifactsResponse"),
                    ),
                    one(
                        "mlflow_search_model_versions",
                        Object("MlflowSearchModelVersionsResponse"),
                    ),
                    one("mlflow_search_runs", Object("MlflowSearchRunsResponse")),
                ]
            }
        }
        "Mutation" => {
            const {
                &[
                    one("test_mutation", Object("TestMutation")),
                    one(
                        "mlflow_search_datasets",
                        Object("MlflowSearchDatasetsResponse"),
                    ),
                    one("mlflow_search_runs", Object("MlflowSearchRunsResponse")),
                ]
            }
        }
        "Test" | "TestMutation" => const { &[one("output", Str)] },
        "ApiError" => {
            const {
                &[
                    one("code", Str),
                    one("message", Str),
                    one("help_url", Str),
                    one("trace_id", Str),
                    many("error_details", Object("ErrorDetail")),
                ]
            }
        }
        "ErrorDetail" => const { &[one("field", Str), one("message", Str)] },
        "MlflowGetExperimentResponse" => {
            const { &[one("experiment", Object("MlflowExperiment")), API_ERROR] }
        }
        "MlflowExperiment" => EXPERIMENT,
        "MlflowExperimentTag"
        | "MlflowRunTag"
        | "MlflowParam"
        | "MlflowInputTag"
        | "MlflowModelVersionTag" => KEY_VALUE,
        "MlflowModelParam" => const { &[one("name", Str), one("value", Str)] },
        "MlflowGetRunResponse" => const { &[one("run", Object("MlflowRun")), API_ERROR] },
        "MlflowSearchRunsResponse" => {
            const {
                &[
                    many("runs", Object("MlflowRun")),
                    one("next_page_token", Str),
                    API_ERROR,
                ]
            }
        }
        // MLflow's `MlflowRunExtension`: a run also leads to its experiment and the registry
        // versions made from it.
        "MlflowRun" => {
            const {
                &[
                    one("info", Object("MlflowRunInfo")),
                    one("data", Object("MlflowRunData")),
                    one("inputs", Object("MlflowRunInputs")),
                    one("outputs", Object("MlflowRunOutputs")),
                    one("experiment", Object("MlflowExperiment")),
                    many("model_versions", Object("MlflowModelVersion")),
                ]
            }
        }
        "MlflowRunInfo" => {
            const {
                &[
                    one("run_id", Str),
                    one("run_uuid", Str),
                    one("run_name", Str),
                    one("experiment_id", Str),
                    one("user_id", Str),
                    one("status", RUN_STATUS),
                    one("start_time", Long),
                    one("end_time", Long),
                    one("artifact_uri", Str),
                    one("lifecycle_stage", Str),
                ]
            }
        }
        "MlflowRunData" => {
            const {
                &[
                    many("metrics", Object("MlflowMetric")),
                    many("params", Object("MlflowParam")),
                    many("tags", Object("MlflowRunTag")),
                ]
            }
        }
        "MlflowMetric" | "MlflowModelMetric" => METRIC,
        "MlflowRunInputs" => {
            const {
                &[
                    many("dataset_inputs", Object("MlflowDatasetInput")),
                    many("model_inputs", Object("MlflowModelInput")),
                ]
            }
        }
        "MlflowDatasetInput" => {
            const {
                &[
                    many("tags", Object("MlflowInputTag")),
                    one("dataset", Object("MlflowDataset")),
                ]
            }
        }
        "MlflowDataset" => {
            const {
                &[
                    one("name", Str),
                    one("digest", Str),
                    one("source_type", Str),
                    one("source", Str),
                    one("schema", Str),
                    one("profile", Str),
                ]
            }
        }
        "MlflowModelInput" => const { &[one("model_id", Str)] },
        "MlflowRunOutputs" => const { &[many("model_outputs", Object("MlflowModelOutput"))] },
        "MlflowModelOutput" => const { &[one("model_id", Str), one("step", Long)] },
        "MlflowGetMetricHistoryBulkIntervalResponse" => {
            const { &[many("metrics", Object("MlflowMetricWithRunId")), API_ERROR] }
        }
        "MlflowMetricWithRunId" => {
            const {
                &[
                    one("key", Str),
                    one("value", Float),
                    one("timestamp", Long),
                    one("step", Long),
                    one("run_id", Str),
                ]
            }
        }
        "MlflowListArtifactsResponse" => {
            const {
                &[
                    one("root_uri", Str),
                    many("files", Object("MlflowFileInfo")),
                    one("next_page_token", Str),
                    API_ERROR,
                ]
            }
        }
        "MlflowFileInfo" => {
            const {
                &[
                    one("path", Str),
                    one("is_dir", Boolean),
                    one("file_size", Long),
                ]
            }
        }
        "MlflowSearchModelVersionsResponse" => {
            const {
                &[
                    many("model_versions", Object("MlflowModelVersion")),
                    one("next_page_token", Str),
                    API_ERROR,
                ]
            }
        }
        "MlflowModelVersion" => MODEL_VERSION,
        "MlflowModelVersionDeploymentJobState" => {
            const {
                &[
                    one("job_id", Str),
                    one("run_id", Str),
                    one("job_state", DEPLOYMENT_JOB_CONNECTION_STATE),
                    one("run_state", DEPLOYMENT_JOB_RUN_STATE),
                    one("current_task_name", Str),
                ]
            }
        }
        "MlflowSearchDatasetsResponse" => {
            const {
                &[
                    many("dataset_summaries", Object("MlflowDatasetSummary")),
                    API_ERROR,
                ]
            }
        }
        "MlflowDatasetSummary" => {
            const {
                &[
                    one("experiment_id", Str),
                    one("name", Str),
                    one("digest", Str),
                    one("context", Str),
                ]
            }
        }
        _ => return None,
    })
}

/// A proto name as graphene spells it in GraphQL: `run_id` is `runId`.
pub fn graphql_name(proto_name: &str) -> String {
    let mut out = String::with_capacity(proto_name.len());
    let mut upper = false;
    for c in proto_name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// A GraphQL input field name as the proto (and REST) message spells it: `runIds` is
/// `run_ids`.
pub fn proto_name(graphql_name: &str) -> String {
    let mut out = String::with_capacity(graphql_name.len() + 4);
    for c in graphql_name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The field of `type_name` that GraphQL calls `name`.
pub fn field(type_name: &str, name: &str) -> Option<FieldType> {
    fields(type_name)?
        .iter()
        .copied()
        .find(|f| graphql_name(f.proto_name) == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_graphenes() {
        assert_eq!(graphql_name("mlflow_get_run"), "mlflowGetRun");
        assert_eq!(graphql_name("apiError"), "apiError");
        assert_eq!(proto_name("runIds"), "run_ids");
        assert_eq!(proto_name("experimentId"), "experiment_id");
        assert!(field("MlflowFileInfo", "isDir").is_some());
        assert!(field("MlflowFileInfo", "is_dir").is_none());
    }

    #[test]
    fn every_object_a_field_names_is_defined() {
        let mut pending = vec!["Query", "Mutation"];
        let mut seen = std::collections::HashSet::new();
        while let Some(name) = pending.pop() {
            let fields = fields(name).unwrap_or_else(|| panic!("{name} is not defined"));
            for f in fields {
                if let Kind::Object(child) = f.kind
                    && seen.insert(child)
                {
                    pending.push(child);
                }
            }
        }
    }
}
