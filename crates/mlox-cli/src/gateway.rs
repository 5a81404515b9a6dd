//! `mlox gateway start` (MLflow's `mlflow gateway start`) and its older name
//! `mlox deployments start-server`: the LLM gateway from MLflow's gateway `config.yaml`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum GatewayCommand {
    /// Start the gateway: MLflow's deployments API and OpenAI's /v1 API over the endpoints
    /// and routes of a gateway config.yaml.
    Start(StartArgs),
}

#[derive(Subcommand)]
pub enum DeploymentsCommand {
    /// The same as `mlox gateway start` (MLflow 2's `mlflow deployments start-server`).
    StartServer(StartArgs),
}

#[derive(Args)]
pub struct StartArgs {
    /// The gateway configuration file (MLflow's schema: `endpoints`, `routes`).
    #[arg(long, env = "MLFLOW_GATEWAY_CONFIG")]
    config_path: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on.
    #[arg(long, default_value_t = 5000)]
    port: u16,
    /// Accepted for compatibility with `mlflow gateway start`; mlox serves every request from
    /// one process with all cores.
    #[arg(long)]
    workers: Option<u32>,
    /// Admit only callers the tracking server at this address (running with
    /// `--app-name basic-auth`) accepts, with USE on the endpoint they call.
    #[arg(long, env = "MLOX_AUTH_TRACKING_URI", value_name = "URL")]
    auth_tracking_uri: Option<String>,
    /// Record every call as a trace in this experiment of the tracking server
    /// (`--tracking-uri`, else MLFLOW_TRACKING_URI), made if missing; it signs in with
    /// MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD.
    #[arg(long, env = "MLOX_GATEWAY_TRACE_EXPERIMENT", value_name = "NAME")]
    trace_experiment: Option<String>,
    /// The tracking server traces are recorded to.
    #[arg(long, env = "MLFLOW_TRACKING_URI", value_name = "URL")]
    tracking_uri: Option<String>,
    /// Count the endpoints' rate limits in this database (postgresql://…, or sqlite:///… for
    /// replicas on one host) so that they hold across every replica given the same store;
    /// without it each process counts its own calls.
    #[arg(long, env = "MLOX_GATEWAY_LIMITS_STORE", value_name = "URI")]
    limits_store: Option<String>,
}

/// Rate-limit windows kept in an mlox store shared by the replicas.
struct StoreCounter(mlox_store::SqlStore);

impl mlox_gateway::limit::SharedCounter for StoreCounter {
    fn count(
        &self,
        endpoint: &str,
        window_start_ms: i64,
        forget_before_ms: i64,
    ) -> mlox_gateway::limit::BoxFuture<'_, Result<u64, String>> {
        let endpoint = endpoint.to_string();
        Box::pin(async move {
            self.0
                .count_gateway_call(&endpoint, window_start_ms, forget_before_ms)
                .await
                .map_err(|e| e.message)
        })
    }
}

impl GatewayCommand {
    pub fn into_args(self) -> StartArgs {
        match self {
            GatewayCommand::Start(args) => args,
        }
    }
}

impl DeploymentsCommand {
    pub fn into_args(self) -> StartArgs {
        match self {
            DeploymentsCommand::StartServer(args) => args,
        }
    }
}

pub async fn run(args: StartArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.config_path)
        .with_context(|| format!("cannot read {}", args.config_path.display()))?;
    let config = parse_config(&text).map_err(|e| {
        anyhow::anyhow!(
            "invalid gateway configuration {}: {e}",
            args.config_path.display()
        )
    })?;
    let endpoints = config.endpoints.len();
    let routes = config.routes.len();
    let recorder = match &args.trace_experiment {
        Some(experiment) => {
            let tracking_uri = args.tracking_uri.as_deref().ok_or_else(|| {
                anyhow::anyhow!(
                    "--trace-experiment needs a tracking server: give --tracking-uri or set \
                     MLFLOW_TRACKING_URI"
                )
            })?;
            Some(Arc::new(
                mlox_gateway::traces::TraceRecorder::new(
                    tracking_uri,
                    experiment,
                    tracking_credentials(),
                )
                .map_err(|e| anyhow::anyhow!(e))?,
            ))
        }
        None => None,
    };
    let metrics = Arc::new(mlox_gateway::metrics::GatewayMetrics::default());
    let limits: Option<Arc<dyn mlox_gateway::limit::SharedCounter>> = match &args.limits_store {
        Some(uri) => {
            let store = mlox_store::SqlStore::open(mlox_store::StoreOptions {
                uri: uri.clone(),
                default_artifact_root: "mlflow-artifacts:".into(),
                max_connections: 8,
            })
            .await
            .map_err(|e| anyhow::anyhow!(e.message))
            .with_context(|| format!("opening the limits store {}", mlox_store::redact_uri(uri)))?;
            Some(Arc::new(StoreCounter(store)))
        }
        None => None,
    };
    let parts = Shared {
        recorder,
        metrics,
        limits,
    };
    let gateway = build_gateway(config, &parts).map_err(|e| anyhow::anyhow!(e))?;
    let addr = crate::serve::socket_addr(&args.host, args.port)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let live = mlox_gateway::http::LiveGateway::new(gateway);
    let recorder = parts.recorder.clone();
    tokio::spawn(watch_config(
        args.config_path.clone(),
        text,
        live.clone(),
        parts,
    ));
    // FastAPI's docs page, as MLflow's gateway has it, over the document the router serves.
    let docs = axum::Router::new()
        .route(
            "/docs",
            axum::routing::get(|| async {
                (
                    [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
                    mlox_web::api_docs_page("mlox gateway", "docs/swagger-ui", "openapi.json"),
                )
            }),
        )
        .nest_service("/docs/swagger-ui", mlox_web::swagger_ui_router());
    let mut app = docs.merge(mlox_gateway::http::live_router(live.clone()));
    if let Some(uri) = &args.auth_tracking_uri {
        let gate =
            mlox_auth::remote::RemoteGate::new(uri, mlox_core::auth::ResourceType::GatewayEndpoint)
                .map_err(|e| anyhow::anyhow!(e.message))?;
        app = app.layer(axum::middleware::from_fn_with_state(
            Arc::new(gate),
            mlox_auth::remote::guard_gateway,
        ));
    }
    let app = app
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(axum::middleware::from_fn(
            mlox_tracking::access_log::log_request,
        ));
    tracing::info!(
        %addr,
        config = %args.config_path.display(),
        endpoints,
        routes,
        auth = args.auth_tracking_uri.is_some(),
        traces = args.trace_experiment.as_deref().unwrap_or("off"),
        limits = if args.limits_store.is_some() { "shared" } else { "in-process" },
        "mlox gateway listening"
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(crate::shutdown_signal())
        .await?;
    if let Some(recorder) = &recorder {
        recorder.flush(std::time::Duration::from_secs(10)).await;
    }
    tracing::info!("mlox gateway stopped");
    Ok(())
}

fn parse_config(
    text: &str,
) -> Result<mlox_gateway::GatewayConfig, mlox_gateway::config::ConfigError> {
    mlox_gateway::config::parse(text, &mlox_gateway::config::ProcessEnvironment)
}

/// What every gateway the process builds shares, across reloads of the config.
struct Shared {
    recorder: Option<Arc<mlox_gateway::traces::TraceRecorder>>,
    metrics: Arc<mlox_gateway::metrics::GatewayMetrics>,
    limits: Option<Arc<dyn mlox_gateway::limit::SharedCounter>>,
}

fn build_gateway(
    config: mlox_gateway::GatewayConfig,
    shared: &Shared,
) -> Result<mlox_gateway::Gateway, String> {
    let mut gateway = mlox_gateway::Gateway::new(config)?.with_metrics(shared.metrics.clone());
    if let Some(limits) = &shared.limits {
        gateway = gateway.with_shared_limits(limits.clone());
    }
    Ok(match &shared.recorder {
        Some(recorder) => gateway.with_shared_traces(recorder.clone()),
        None => gateway,
    })
}

/// How often the config file is read again for changes.
const RELOAD_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// Reloads the config when its text changes. The path is read anew each time, so an edit in
/// place, a file replaced by rename and a Kubernetes ConfigMap's symlink swap (`..data`) are all
/// seen. A config that does not pass the checks is refused and the running one kept; a valid
/// one is swapped in while requests under way finish on the old one.
async fn watch_config(
    path: std::path::PathBuf,
    mut served: String,
    live: Arc<mlox_gateway::http::LiveGateway>,
    shared: Shared,
) {
    let mut refused: Option<String> = None;
    loop {
        tokio::time::sleep(RELOAD_POLL).await;
        let Ok(text) = tokio::fs::read_to_string(&path).await else {
            continue;
        };
        if text == served || refused.as_deref() == Some(text.as_str()) {
            continue;
        }
        match parse_config(&text)
            .map_err(|e| e.to_string())
            .and_then(|config| {
                let counts = (config.endpoints.len(), config.routes.len());
                build_gateway(config, &shared).map(|g| (g, counts))
            }) {
            Ok((gateway, (endpoints, routes))) => {
                live.replace(gateway);
                served = text;
                refused = None;
                tracing::info!(config = %path.display(), endpoints, routes, "gateway config reloaded");
            }
            Err(e) => {
                tracing::warn!(
                    config = %path.display(),
                    error = %e,
                    "gateway config change refused; still serving the previous config"
                );
                refused = Some(text);
            }
        }
    }
}

/// The tracking server's credentials, read from the environment as the model fetcher reads
/// them (MLflow's variables).
fn tracking_credentials() -> mlox_gateway::traces::TrackingCredentials {
    use mlox_gateway::traces::TrackingCredentials;
    let config = mlox_fetch::FetchConfig::from_env(|name| std::env::var(name).ok());
    match (config.token, config.basic_auth) {
        (Some(token), _) => TrackingCredentials::Token(token),
        (None, Some((username, password))) => TrackingCredentials::Basic { username, password },
        (None, None) => TrackingCredentials::None,
    }
}
