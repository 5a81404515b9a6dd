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
    let config =
        mlox_gateway::config::load(&args.config_path, &mlox_gateway::config::ProcessEnvironment)
            .map_err(|e| {
                anyhow::anyhow!(
                    "invalid gateway configuration {}: {e}",
                    args.config_path.display()
                )
            })?;
    let endpoints = config.endpoints.len();
    let routes = config.routes.len();
    let mut gateway = mlox_gateway::Gateway::new(config).map_err(|e| anyhow::anyhow!(e))?;
    if let Some(experiment) = &args.trace_experiment {
        let tracking_uri = args.tracking_uri.as_deref().ok_or_else(|| {
            anyhow::anyhow!(
                "--trace-experiment needs a tracking server: give --tracking-uri or set \
                 MLFLOW_TRACKING_URI"
            )
        })?;
        let recorder = mlox_gateway::traces::TraceRecorder::new(
            tracking_uri,
            experiment,
            tracking_credentials(),
        )
        .map_err(|e| anyhow::anyhow!(e))?;
        gateway = gateway.with_traces(recorder);
    }
    let addr = crate::serve::socket_addr(&args.host, args.port)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let gateway = Arc::new(gateway);
    let mut app = mlox_gateway::http::router(gateway.clone());
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
        "mlox gateway listening"
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(crate::shutdown_signal())
        .await?;
    gateway
        .flush_traces(std::time::Duration::from_secs(10))
        .await;
    tracing::info!("mlox gateway stopped");
    Ok(())
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
