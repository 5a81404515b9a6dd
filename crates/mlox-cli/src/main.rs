//! The `mlox` binary: one command line for the whole platform. Subcommands mirror the tools
//! users type today (`mlox server` for `mlflow server`, …) and accept their flags and
//! environment variables, so existing scripts and habits carry over.

mod gateway;
mod gc;
mod logging;
mod serve;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use mlox_store::{SqlStore, StoreOptions};
use mlox_tracking::{AppState, ServerSettings};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// The MLflow API version mlox speaks; the client gates some features on it.
const MLFLOW_API_VERSION: &str = "3.17.2";

#[derive(Parser)]
#[command(
    name = "mlox",
    version,
    about = "One binary for the whole ML platform: tracking, registry, artifacts, serving and the LLM gateway."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the tracking server, model registry, artifact proxy and web UI (like `mlflow server`;
    /// `mlox ui` is the same command, as `mlflow ui` is).
    #[command(visible_alias = "ui")]
    Server(ServerArgs),
    /// Serve models over the V2 inference protocol (REST and gRPC) and MLflow's /invocations:
    /// an MLServer model repository (`mlserver start <dir>`) or one model URI
    /// (`mlflow models serve -m <uri>`).
    Serve(serve::ServeArgs),
    /// Take over an MLflow installation: copy its tracking and registry database into mlox,
    /// keeping every id. Start `mlox server` with the MLflow server's artifact destination.
    Import(ImportArgs),
    /// Permanently delete runs, experiments and logged models in the `deleted` stage, with
    /// their artifacts (like `mlflow gc`); safe while servers run.
    Gc(gc::GcArgs),
    /// The LLM gateway from MLflow's gateway config.yaml (`mlflow gateway start`).
    Gateway {
        #[command(subcommand)]
        command: gateway::GatewayCommand,
    },
    /// `mlflow deployments start-server`, the gateway's older name.
    Deployments {
        #[command(subcommand)]
        command: gateway::DeploymentsCommand,
    },
    /// The whole platform in one command: tracking server and web UI, model servers, the
    /// gateway and notebooks, as `mlox.yaml` in DIR describes them (defaults when absent).
    Up(UpArgs),
    /// Database maintenance.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
}

#[derive(Subcommand)]
enum DbCommand {
    /// Bring a database's schema up to this version of mlox.
    Upgrade {
        /// The database to upgrade, e.g. sqlite:///mlruns.db or postgresql://user@host/db.
        url: String,
    },
    /// Copy a SQLite store into a new file, safely while servers use it (PostgreSQL stores
    /// are backed up with pg_dump).
    Backup {
        /// The store, e.g. sqlite:///mlruns.db.
        url: String,
        /// The backup file to create; an existing file is never overwritten.
        file: PathBuf,
    },
}

#[derive(Args)]
#[command(disable_help_flag = true)]
struct ServerArgs {
    /// Print help (`-h` is the host, as with `mlflow server`).
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Address to listen on.
    #[arg(long, short = 'h', default_value = "127.0.0.1", env = "MLFLOW_HOST")]
    host: String,
    /// Port to listen on.
    #[arg(long, short = 'p', default_value_t = 5000, env = "MLFLOW_PORT")]
    port: u16,
    /// `Host` header patterns the server answers, comma-separated (`*` any run of characters;
    /// `*` alone turns the check off). Guards against DNS rebinding. Default: loopback and
    /// private-network addresses, plus the `--host` address.
    #[arg(long, value_name = "HOSTS", env = "MLFLOW_SERVER_ALLOWED_HOSTS")]
    allowed_hosts: Option<String>,
    /// Browser origins allowed to write to the API and given CORS answers, comma-separated
    /// patterns; `*` allows any. Loopback origins are always allowed.
    #[arg(
        long,
        value_name = "ORIGINS",
        env = "MLFLOW_SERVER_CORS_ALLOWED_ORIGINS"
    )]
    cors_allowed_origins: Option<String>,
    /// The `X-Frame-Options` header: SAMEORIGIN (default), DENY, or NONE to send none.
    #[arg(long, value_name = "VALUE", env = "MLFLOW_SERVER_X_FRAME_OPTIONS")]
    x_frame_options: Option<String>,
    /// Turn off the host check, the cross-origin write guard and the security headers.
    /// `MLFLOW_SERVER_DISABLE_SECURITY_MIDDLEWARE=true` has the same effect.
    #[arg(long)]
    disable_security_middleware: bool,
    /// Where runs, metrics and models are recorded: sqlite:///<path> or postgresql://…
    #[arg(
        long,
        env = "MLFLOW_BACKEND_STORE_URI",
        default_value = DEFAULT_BACKEND_STORE_URI
    )]
    backend_store_uri: String,
    /// Artifact root written into new experiments. Defaults to `mlflow-artifacts:/` when
    /// artifacts are served, else to the artifacts destination.
    #[arg(long, env = "MLFLOW_DEFAULT_ARTIFACT_ROOT")]
    default_artifact_root: Option<String>,
    /// Where the artifact proxy stores files: a local path, file:// URI or s3://bucket/prefix
    /// (with MLFLOW_S3_ENDPOINT_URL and the AWS_* variables, as MLflow reads them).
    #[arg(
        long,
        env = "MLFLOW_ARTIFACTS_DESTINATION",
        default_value = "./mlartifacts"
    )]
    artifacts_destination: String,
    /// Serve artifacts through this server (the default).
    #[arg(long, overrides_with = "no_serve_artifacts")]
    serve_artifacts: bool,
    /// Do not serve artifacts: clients write to the artifact root themselves.
    #[arg(long)]
    no_serve_artifacts: bool,
    /// Accepted for compatibility with `mlflow server`; mlox serves every request from one
    /// process with all cores.
    #[arg(long, short = 'w')]
    workers: Option<u32>,
    /// Deliver webhooks to loopback and private-network addresses (development, tests).
    /// `MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true` has the same effect.
    #[arg(long, env = "MLOX_WEBHOOKS_ALLOW_PRIVATE_ADDRESSES")]
    webhooks_allow_private_addresses: bool,
    /// Deliver webhooks over plain http as well as https. `MLFLOW_WEBHOOK_ALLOWED_SCHEMES`
    /// listing `http` has the same effect.
    #[arg(long, env = "MLOX_WEBHOOKS_ALLOW_HTTP")]
    webhooks_allow_http: bool,
    /// Database connections for reads.
    #[arg(long, default_value_t = 8, env = "MLOX_DB_CONNECTIONS")]
    db_connections: u32,
    /// Serve Prometheus metrics at /metrics (MLflow's flag). MLflow's exporter keeps its
    /// state in this directory; mlox keeps it in memory, so the directory is accepted and
    /// left untouched.
    #[arg(long, value_name = "DIR", env = "PROMETHEUS_MULTIPROC_DIR")]
    expose_prometheus: Option<PathBuf>,
    /// A link to another part of the platform in the web UI's top bar, `NAME=URL` (an http(s)
    /// URL, or `:port/path` on the host the browser uses); repeatable. `mlox up` names the
    /// notebooks this way.
    #[arg(long = "platform-link", value_name = "NAME=URL", env = "MLOX_PLATFORM_LINKS", value_delimiter = ',', value_parser = mlox_web::PlatformLink::parse)]
    platform_links: Vec<mlox_web::PlatformLink>,
    /// `basic-auth` turns on users, permissions and tokens, as MLflow's basic-auth app
    /// (configured by the ini file MLFLOW_AUTH_CONFIG_PATH names and
    /// MLFLOW_AUTH_ADMIN_USERNAME / MLFLOW_AUTH_ADMIN_PASSWORD).
    #[arg(long, value_name = "NAME")]
    app_name: Option<String>,
}

/// A part started by `mlox up` stops as it would on SIGTERM once `mlox up` is gone (killed
/// without the chance to stop its parts), instead of running on unsupervised.
fn leave_with_supervisor() {
    let Some(supervisor) = std::env::var(mlox_up::SUPERVISOR_PID_VAR)
        .ok()
        .and_then(|pid| pid.parse::<i32>().ok())
    else {
        return;
    };
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            let parent = rustix::process::getppid().map(|pid| pid.as_raw_pid());
            if parent != Some(supervisor) {
                tracing::warn!("mlox up is gone; stopping");
                let _ = rustix::process::kill_process(
                    rustix::process::getpid(),
                    rustix::process::Signal::TERM,
                );
                return;
            }
        }
    });
}

#[derive(Args)]
struct UpArgs {
    /// The platform's directory: its `mlox.yaml`, default database, artifacts and notebooks.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Print the effective configuration (defaults filled in, paths absolute) and exit.
    #[arg(long)]
    print_config: bool,
    /// Seconds a part may take to answer before `mlox up` reports it as still starting.
    #[arg(long, default_value_t = 120)]
    ready_timeout: u64,
}

#[derive(Args)]
struct ImportArgs {
    /// The MLflow database, as given to `mlflow server --backend-store-uri`:
    /// sqlite:///<path> or postgresql://<user>@<host>:<port>/<database>.
    #[arg(long)]
    from: String,
    /// The mlox backend store to fill; created if missing.
    #[arg(long, default_value = "sqlite:///mlruns.db")]
    to: String,
    /// Rows written per transaction.
    #[arg(long, default_value_t = mlox_import::DEFAULT_BATCH_SIZE)]
    batch_size: usize,
}

async fn run_import(args: ImportArgs) -> anyhow::Result<()> {
    let report = mlox_import::import(&mlox_import::ImportOptions {
        from: args.from,
        to: args.to,
        batch_size: args.batch_size,
        progress: true,
        webhook_secret_key: std::env::var("MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY").ok(),
    })
    .await?;
    let (read, written) = report
        .tables
        .iter()
        .fold((0, 0), |(r, w), t| (r + t.read, w + t.written));
    eprintln!("imported: {read} rows read, {written} written");
    Ok(())
}

/// A local destination as an absolute path; `None` for object-store URIs.
fn local_destination(destination: &str) -> Option<PathBuf> {
    match mlox_core::location::Location::parse(destination) {
        Ok(mlox_core::location::Location::Local(path)) => {
            Some(std::path::absolute(&path).unwrap_or(path))
        }
        _ => None,
    }
}

async fn run_server(
    args: ServerArgs,
    metrics: Option<Arc<mlox_tracking::metrics::TrackingMetrics>>,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let auth_config = match args.app_name.as_deref() {
        None => None,
        Some("basic-auth") => Some(
            mlox_auth::AuthConfig::from_environment().map_err(|e| anyhow::anyhow!(e.message))?,
        ),
        Some(other) => anyhow::bail!(
            "unknown --app-name '{other}': mlox has one app, basic-auth (users, permissions and tokens)"
        ),
    };
    // The port first: "address in use" must fail fast and leave no database behind.
    let addr: SocketAddr = serve::socket_addr(&args.host, args.port)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let disable_security_env = std::env::var("MLFLOW_SERVER_DISABLE_SECURITY_MIDDLEWARE").ok();
    let security = mlox_tracking::security::SecurityConfig::from_flags(
        &mlox_tracking::security::SecurityFlags {
            allowed_hosts: args.allowed_hosts.as_deref(),
            cors_allowed_origins: args.cors_allowed_origins.as_deref(),
            x_frame_options: args.x_frame_options.as_deref(),
            disable: args.disable_security_middleware,
            disable_env: disable_security_env.as_deref(),
            bind_host: &args.host,
        },
    )
    .map_err(anyhow::Error::msg)?;
    let serve_artifacts = !args.no_serve_artifacts;
    let destination = &args.artifacts_destination;
    let default_root = match (&args.default_artifact_root, serve_artifacts) {
        // A relative local root is taken against the working directory once, as MLflow does,
        // so the locations written into experiments mean the same wherever they are read.
        (Some(root), _) => match std::env::current_dir() {
            Ok(cwd) => mlox_core::location::absolute_local_location(root, &cwd),
            Err(_) => root.clone(),
        },
        (None, true) => "mlflow-artifacts:".to_string(),
        // Without the proxy, clients write to the destination themselves.
        (None, false) => match local_destination(destination) {
            Some(path) => path.to_string_lossy().into_owned(),
            None => destination.clone(),
        },
    };
    let artifact_host_policy = mlox_core::location::HostPolicy::new(
        &[default_root.as_str(), destination.as_str()],
        std::env::var(mlox_core::location::ALLOWED_SCHEMES_ENV)
            .ok()
            .as_deref(),
    );
    let store = SqlStore::open(StoreOptions {
        uri: args.backend_store_uri.clone(),
        default_artifact_root: default_root,
        max_connections: args.db_connections,
    })
    .await
    .map_err(|e| anyhow::anyhow!(e.message))?;
    if args.backend_store_uri == DEFAULT_BACKEND_STORE_URI {
        hint_at_mlflow_database().await;
    }
    let closing = store.clone();
    let auth = match auth_config {
        Some(config) => Some(
            mlox_auth::Auth::start(config, store.clone())
                .await
                .map_err(|e| anyhow::anyhow!(e.message))?,
        ),
        None => None,
    };
    let webhooks = mlox_webhooks::DispatcherConfig {
        allow_private_addresses: args.webhooks_allow_private_addresses
            || env_flag("MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS"),
        allow_http: args.webhooks_allow_http
            || std::env::var("MLFLOW_WEBHOOK_ALLOWED_SCHEMES")
                .is_ok_and(|v| v.split(',').any(|s| s.trim().eq_ignore_ascii_case("http"))),
        ..Default::default()
    };
    if let Some(metrics) = &metrics {
        metrics.watch_store(store.clone());
        metrics.watch_webhooks(webhooks.counters.clone());
    }
    let _dispatcher = mlox_webhooks::spawn_dispatcher(store.clone(), webhooks.clone());
    let settings = ServerSettings {
        webhook_policy: webhooks.policy(),
        artifact_host_policy,
        serve_artifacts,
        api_version: MLFLOW_API_VERSION.to_string(),
        store_type: "SqlStore".to_string(),
    };
    let proxy = if serve_artifacts {
        let repo = mlox_artifacts::open_artifact_repository(destination)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))
            .with_context(|| format!("preparing artifact destination {destination}"))?;
        Some(match &metrics {
            Some(metrics) => metrics.timed_repository(repo),
            None => repo,
        })
    } else {
        None
    };
    let stored_gateway = mlox_tracking::gateway::invocation_routes(store.clone())
        .map_err(|e| anyhow::anyhow!(e))
        .context("preparing the gateway's endpoints")?;
    let mut app = mlox_tracking::router(AppState {
        store,
        settings: Arc::new(settings),
        artifacts: mlox_tracking::ArtifactLocations::new(proxy.clone()),
    });
    app = app.merge(stored_gateway);
    app = app.merge(match proxy {
        Some(repo) => mlox_tracking::artifacts::router(repo),
        None => mlox_tracking::artifacts::disabled_router(),
    });
    // The UI router has no fallback (merging two panics), so the tracking router's JSON 404
    // still answers every path outside `/`, `/index.html` and `/static-files/*`.
    app = app.merge(mlox_web::router());
    app = app.merge(mlox_web::platform_links_router(args.platform_links.clone()));
    if !mlox_web::ui_built() {
        tracing::warn!("this binary was built without the web UI; `/` explains how to build it");
    }
    if let Some(auth) = &auth {
        app = mlox_auth::protect(app, auth.clone());
    }
    if let Some(metrics) = &metrics {
        app = app
            .route(
                "/metrics",
                axum::routing::get(mlox_tracking::metrics::scrape).with_state(metrics.clone()),
            )
            .route_layer(axum::middleware::from_fn(
                mlox_tracking::metrics::mark_route,
            ))
            .layer(axum::middleware::from_fn_with_state(
                metrics.clone(),
                mlox_tracking::metrics::record_request,
            ));
    }
    let app = security
        .protect(app)
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(axum::middleware::from_fn(
            mlox_tracking::access_log::log_request,
        ));
    tracing::info!(
        %addr,
        backend = %mlox_store::redact_uri(&args.backend_store_uri),
        artifacts = %destination,
        serve_artifacts,
        security_middleware = security.enabled,
        prometheus = metrics.is_some(),
        auth = auth.is_some(),
        startup_ms = started.elapsed().as_millis() as u64,
        "mlox server listening"
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    // Every request has been answered: fold the WAL into the database file, so the one file
    // users copy (as they copy MLflow's) is complete.
    closing
        .close()
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    tracing::info!("mlox server stopped");
    Ok(())
}

/// The store `mlox server` opens when none is named (MLflow 3's default is `./mlflow.db`).
pub(crate) const DEFAULT_BACKEND_STORE_URI: &str = "sqlite:///mlruns.db";

/// MLflow users who start mlox where their MLflow server ran find their data through this.
async fn hint_at_mlflow_database() {
    let mlflow_default = "sqlite:///mlflow.db";
    if let Ok(Some(found)) = mlox_store::foreign_schema(mlflow_default).await
        && found.mlflow_revision.is_some()
    {
        tracing::warn!(
            "./mlflow.db here is an MLflow database; mlox serves its own ./mlruns.db. To take \
             the MLflow data over: mlox import --from {mlflow_default} --to {DEFAULT_BACKEND_STORE_URI}"
        );
    }
}

fn env_flag(name: &str) -> bool {
    std::env::var(name)
        .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let metrics = match &cli.command {
        Command::Server(args) if args.expose_prometheus.is_some() => Some(Arc::new(
            mlox_tracking::metrics::TrackingMetrics::new(MLFLOW_API_VERSION),
        )),
        _ => None,
    };
    let _flush_log = logging::init(metrics.clone());
    leave_with_supervisor();
    match cli.command {
        Command::Server(args) => run_server(args, metrics).await,
        Command::Serve(args) => {
            let shutdown = tokio_util::sync::CancellationToken::new();
            let on_signal = shutdown.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                on_signal.cancel();
            });
            serve::run(args, shutdown).await
        }
        Command::Import(args) => run_import(args).await,
        Command::Up(args) => {
            mlox_up::run(mlox_up::UpOptions {
                dir: args.dir,
                print_config: args.print_config,
                mlox: std::env::current_exe()?,
                ready_timeout: std::time::Duration::from_secs(args.ready_timeout),
            })
            .await
        }
        Command::Gc(args) => gc::run(args).await,
        Command::Gateway { command } => gateway::run(command.into_args()).await,
        Command::Deployments { command } => gateway::run(command.into_args()).await,
        Command::Db {
            command: DbCommand::Upgrade { url },
        } => {
            let store = SqlStore::open_and_upgrade(StoreOptions {
                uri: url.clone(),
                default_artifact_root: "mlflow-artifacts:".into(),
                max_connections: 2,
            })
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
            let version = store
                .schema_version()
                .await
                .map_err(|e| anyhow::anyhow!(e.message))?;
            tracing::info!(url = %mlox_store::redact_uri(&url), version, "database schema is current");
            Ok(())
        }
        Command::Db {
            command: DbCommand::Backup { url, file },
        } => {
            let started = std::time::Instant::now();
            let written = mlox_store::backup(&url, &file)
                .await
                .map_err(|e| anyhow::anyhow!(e.message))?;
            tracing::info!(
                url = %mlox_store::redact_uri(&url),
                file = %file.display(),
                bytes = written.bytes,
                ms = started.elapsed().as_millis() as u64,
                "backup written"
            );
            Ok(())
        }
    }
}
