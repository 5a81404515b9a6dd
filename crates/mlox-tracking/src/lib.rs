//! The MLflow REST surface of mlox: the tracking, registry and artifact-proxy routes under
//! `/api/2.0/mlflow/…`, `/api/3.0/mlflow/…`, their `/ajax-api/` twins and
//! `/api/2.0/mlflow-artifacts/…`, the routes of MLflow's web UI (`/get-artifact`,
//! `/model-versions/get-artifact`, `/graphql`), and OpenTelemetry's trace export
//! (`/v1/traces`). Handlers only parse requests, call a store or artifact repository and render
//! answers; all rules live in `mlox-core` and the stores, and which repository serves a stored
//! artifact location is mlox-artifacts' `ArtifactLocations`. It must not import the serving,
//! runtime or fetch crates, and speaks no SQL.

pub mod access_log;
pub mod artifacts;
pub mod browse;
pub mod budgets;
pub mod error;
pub mod evaluation_datasets;
pub mod gateway;
pub mod graphql;
pub mod issues;
pub mod metrics;
pub mod otlp;
pub mod pricing;
pub mod promptlab;
pub mod registry;
pub mod request;
pub mod scorers;
pub mod security;
pub mod state;
pub mod traces;
pub mod tracking;
pub mod webhooks;

pub use error::{ApiError, ApiResult};
pub use mlox_artifacts::ArtifactLocations;
pub use state::{AppState, ServerSettings};

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use mlox_core::{Code, Error};
use serde_json::json;

/// Every MLflow API route, under each prefix the client and the web UI use.
pub fn router(state: AppState) -> Router {
    use tracking::*;
    let api: Router<AppState> = Router::new()
        .route("/experiments/create", post(create_experiment))
        .route("/experiments/get", get(get_experiment))
        .route("/experiments/get-by-name", get(get_experiment_by_name))
        .route(
            "/experiments/search",
            get(search_experiments).post(search_experiments),
        )
        .route("/experiments/update", post(update_experiment))
        .route("/experiments/search-datasets", post(search_datasets))
        .route("/experiments/delete", post(delete_experiment))
        .route("/experiments/restore", post(restore_experiment))
        .route("/experiments/set-experiment-tag", post(set_experiment_tag))
        .route(
            "/experiments/delete-experiment-tag",
            post(delete_experiment_tag),
        )
        .route("/runs/create", post(create_run))
        .route("/runs/get", get(get_run))
        .route("/runs/update", post(update_run))
        .route("/runs/delete", post(delete_run))
        .route("/runs/restore", post(restore_run))
        .route("/runs/log-metric", post(log_metric))
        .route("/runs/log-parameter", post(log_param))
        .route("/runs/log-batch", post(log_batch))
        .route("/runs/set-tag", post(set_tag))
        .route("/runs/delete-tag", post(delete_tag))
        .route("/runs/log-inputs", post(log_inputs))
        .route("/runs/outputs", post(log_outputs))
        .route("/runs/log-model", post(log_model_legacy))
        .route("/runs/search", post(search_runs).get(search_runs))
        .route(
            "/runs/create-promptlab-run",
            post(promptlab::create_promptlab_run),
        )
        .route("/metrics/get-history", get(get_metric_history))
        .route("/metrics/get-history-bulk", get(get_metric_history_bulk))
        .route(
            "/metrics/get-history-bulk-interval",
            get(get_metric_history_bulk_interval),
        )
        .route("/logged-models", post(create_logged_model))
        .route("/logged-models/search", post(search_logged_models))
        .route(
            "/logged-models/{model_id}",
            get(get_logged_model)
                .patch(finalize_logged_model)
                .delete(delete_logged_model),
        )
        .route(
            "/logged-models/{model_id}/tags",
            axum::routing::patch(set_logged_model_tags),
        )
        .route(
            "/logged-models/{model_id}/tags/{tag_key}",
            axum::routing::delete(delete_logged_model_tag),
        )
        .route(
            "/logged-models/{model_id}/params",
            post(log_logged_model_params),
        )
        .route("/artifacts/list", get(browse::list_run_artifacts))
        .route("/upload-artifact", post(browse::upload_run_artifact))
        .route(
            "/logged-models/{model_id}/artifacts/directories",
            get(browse::list_logged_model_artifacts),
        )
        .route(
            "/logged-models/{model_id}/artifacts/files",
            get(browse::get_logged_model_artifact),
        )
        .route(
            "/model-versions/get-artifact",
            get(browse::get_model_version_artifact),
        )
        .route("/traces", post(traces::start_trace))
        .route("/traces/get", get(traces::get_trace))
        .route("/traces/batchGet", get(traces::batch_get_traces))
        .route(
            "/traces/search",
            post(traces::search_traces).get(traces::search_traces),
        )
        .route("/traces/delete-traces", post(traces::delete_traces))
        .route(
            "/traces/{trace_id}",
            get(traces::get_trace_info).patch(traces::end_trace_v2),
        )
        .route("/traces/{trace_id}/info", get(traces::get_trace_info_v2))
        .route(
            "/traces/{trace_id}/tags",
            axum::routing::patch(traces::set_trace_tag).delete(traces::delete_trace_tag),
        )
        .route(
            "/traces/{trace_id}/assessments",
            post(traces::create_assessment),
        )
        .route(
            "/traces/{trace_id}/assessments/{assessment_id}",
            get(traces::get_assessment)
                .patch(traces::update_assessment)
                .delete(traces::delete_assessment),
        )
        .route("/traces/link-to-run", post(traces::link_traces_to_run))
        .route("/traces/metrics", post(traces::query_trace_metrics))
        .route(
            "/traces/calculate-filter-correlation",
            post(traces::calculate_filter_correlation),
        )
        .route("/scorers/register", post(scorers::register_scorer))
        .route("/scorers/list", get(scorers::list_scorers))
        .route("/scorers/versions", get(scorers::list_scorer_versions))
        .route("/scorers/get", get(scorers::get_scorer))
        .route(
            "/scorers/delete",
            axum::routing::delete(scorers::delete_scorer),
        )
        .route("/issues", post(issues::create_issue))
        .route("/issues/search", post(issues::search_issues))
        .route(
            "/issues/{issue_id}",
            get(issues::get_issue).patch(issues::update_issue),
        )
        .route("/get-trace-artifact", get(browse::get_trace_artifact))
        .route("/server-info", get(server_info))
        .merge(registry_routes())
        .merge(evaluation_dataset_routes())
        .merge(webhooks::routes())
        .merge(gateway::routes())
        .merge(budgets::routes());

    let mut app: Router<AppState> = Router::new();
    for prefix in mlox_core::wire::API_PREFIXES {
        app = app.nest(prefix, api.clone());
    }
    app.route("/health", get(health))
        .route("/version", get(version))
        .route("/get-artifact", get(browse::get_run_artifact))
        .route("/graphql", get(graphql::graphql).post(graphql::graphql))
        .route(
            "/model-versions/get-artifact",
            get(browse::get_model_version_artifact),
        )
        .route("/v1/traces", post(otlp::export_traces))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(request::MAX_JSON_BODY))
        .with_state(state)
}

fn evaluation_dataset_routes() -> Router<AppState> {
    use axum::routing::{delete, patch};
    use evaluation_datasets::*;
    Router::new()
        .route("/datasets/create", post(create_dataset))
        .route(
            "/datasets/search",
            post(search_datasets).get(search_datasets),
        )
        .route(
            "/datasets/{dataset_id}",
            get(get_dataset).delete(delete_dataset),
        )
        .route(
            "/datasets/{dataset_id}/records",
            get(get_records).post(upsert_records).delete(delete_records),
        )
        .route("/datasets/{dataset_id}/tags", patch(set_dataset_tags))
        .route(
            "/datasets/{dataset_id}/tags/{key}",
            delete(delete_dataset_tag),
        )
        .route(
            "/datasets/{dataset_id}/experiment-ids",
            get(get_experiment_ids),
        )
        .route(
            "/datasets/{dataset_id}/add-experiments",
            post(add_experiments),
        )
        .route(
            "/datasets/{dataset_id}/remove-experiments",
            post(remove_experiments),
        )
}

fn registry_routes() -> Router<AppState> {
    use axum::routing::{delete, patch};
    use registry::*;
    Router::new()
        .route("/registered-models/create", post(create_registered_model))
        .route("/registered-models/get", get(get_registered_model))
        .route("/registered-models/rename", post(rename_registered_model))
        .route("/registered-models/update", patch(update_registered_model))
        .route("/registered-models/delete", delete(delete_registered_model))
        .route(
            "/registered-models/search",
            get(search_registered_models).post(search_registered_models),
        )
        .route(
            "/registered-models/get-latest-versions",
            post(get_latest_versions).get(get_latest_versions),
        )
        .route("/registered-models/set-tag", post(set_registered_model_tag))
        .route(
            "/registered-models/delete-tag",
            delete(delete_registered_model_tag),
        )
        .route(
            "/registered-models/alias",
            post(set_alias).delete(delete_alias).get(get_by_alias),
        )
        .route("/model-versions/create", post(create_model_version))
        .route("/model-versions/get", get(get_model_version))
        .route("/model-versions/update", patch(update_model_version))
        .route("/model-versions/delete", delete(delete_model_version))
        .route(
            "/model-versions/search",
            get(search_model_versions).post(search_model_versions),
        )
        .route("/model-versions/transition-stage", post(transition_stage))
        .route("/model-versions/get-download-uri", get(get_download_uri))
        .route("/model-versions/set-tag", post(set_model_version_tag))
        .route(
            "/model-versions/delete-tag",
            delete(delete_model_version_tag),
        )
}

async fn health() -> &'static str {
    "OK"
}

async fn version(State(s): State<AppState>) -> String {
    s.settings.api_version.clone()
}

async fn server_info(State(s): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({
        "store_type": s.settings.store_type,
        "workspaces_enabled": false,
        "trace_archival_enabled": false,
        "multipart_uploads_enabled": false,
        "multipart_downloads_enabled": false,
        "presigned_upload_run_id_supported": false,
        "presigned_upload_model_id_supported": false,
        "features_enabled": { "gateway": true },
    }))
}

/// No route at this path. A path with repeated slashes (`//model-versions/get-artifact`, as
/// clients that join a base URL ending in `/` send) is redirected to its merged spelling, as
/// MLflow's server (werkzeug's `merge_slashes`) does; anything else is a JSON 404.
async fn not_found(uri: Uri) -> Response {
    let path = uri.path();
    if path.contains("//") {
        let mut merged = String::with_capacity(path.len());
        for c in path.chars() {
            if !(c == '/' && merged.ends_with('/')) {
                merged.push(c);
            }
        }
        if let Some(query) = uri.query() {
            merged.push('?');
            merged.push_str(query);
        }
        return Redirect::permanent(&merged).into_response();
    }
    error::error_response(&Error::new(
        Code::EndpointNotFound,
        format!("No API endpoint at '{path}'."),
    ))
    .into_response()
}

async fn method_not_allowed(method: Method, uri: Uri) -> impl IntoResponse {
    error::error_response(&Error::new(
        Code::MethodNotAllowed,
        format!("The endpoint '{}' does not accept {method}.", uri.path()),
    ))
}
