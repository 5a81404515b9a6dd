//! `mlox serve`: MLServer's `mlserver start <dir>` and `mlflow models serve -m <uri>` in one
//! command, over the V2 inference protocol (REST and gRPC) and MLflow's scoring protocol.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use mlox_fetch::{FetchConfig, ModelFetcher};
use mlox_serving::deployment::{self, Deployer, ModelLoader, ModelSpec};
#[cfg(feature = "python")]
use mlox_serving::deployment::{EnvManager, PythonOptions};
use mlox_serving::{Dataplane, ModelRepository, ServeConfig, ServerInfo};
use tokio_util::sync::CancellationToken;

/// MLServer's default ports; `mlox serve -m` takes `mlflow models serve`'s 5000 instead.
const MLSERVER_HTTP_PORT: u16 = 8080;
const MLSERVER_GRPC_PORT: u16 = 8081;
const MLFLOW_SERVE_PORT: u16 = 5000;
const MLSERVER_METRICS_PORT: u16 = 8082;
const MLSERVER_METRICS_ENDPOINT: &str = "/metrics";

#[derive(Args)]
#[command(disable_help_flag = true)]
pub struct ServeArgs {
    /// Print help (`-h` is the host, as with `mlflow models serve`).
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// An MLServer model repository: `settings.json` and one `model-settings.json` per model
    /// below it. Default: the current directory, when no `--model-uri` is given.
    #[arg(conflicts_with = "model_uri")]
    repository: Option<PathBuf>,
    /// Serve this one model, like `mlflow models serve -m`: a local path, runs:/<run>/<path>,
    /// models:/<name>/<version>, models:/<name>@<alias>, models:/<name>/<stage>, s3://…
    #[arg(long, short = 'm')]
    model_uri: Option<String>,
    /// The model's name in V2 routes (`/v2/models/<name>/infer`) when serving one URI.
    /// Default: the registered model's name, else the URI's last path segment.
    #[arg(long, requires = "model_uri")]
    name: Option<String>,
    /// Address to listen on. Default: settings.json's `host`, else 0.0.0.0 for a repository
    /// (MLServer's default) and 127.0.0.1 for one URI (MLflow's).
    #[arg(long, short = 'h')]
    host: Option<String>,
    /// HTTP port (V2 REST and /invocations). Default: settings.json's `http_port`, else 8080
    /// for a repository and 5000 for one URI.
    #[arg(long, short = 'p', visible_alias = "http-port")]
    port: Option<u16>,
    /// gRPC port (`inference.GRPCInferenceService`); 0 turns gRPC off. Default:
    /// settings.json's `grpc_port`, else 8081 for a repository; off for one URI.
    #[arg(long)]
    grpc_port: Option<u16>,
    /// Port serving only the Prometheus metrics (MLServer's `metrics_port`); 0 turns it off.
    /// Default: settings.json's `metrics_port`, else 8082 for a repository; off for one URI.
    /// The HTTP port answers `/metrics` either way.
    #[arg(long)]
    metrics_port: Option<u16>,
    /// Python worker processes per model. Default: settings.json's `parallel_workers`, else 1.
    #[arg(long, short = 'w')]
    workers: Option<usize>,
    /// Python models: at most this many requests that queue up behind busy workers are
    /// merged into one predict call (rows concatenated, each answer cut back to its own
    /// rows; a call that cannot be cut runs each request alone). 1 sends each request on its
    /// own; a model's `max_batch_size` in model-settings.json overrides it.
    #[arg(long, default_value_t = deployment::DEFAULT_MERGE_WAITING, value_name = "REQUESTS")]
    merge_waiting: usize,
    /// Seconds one prediction may run before its worker is restarted and the request fails.
    #[arg(long, short = 't', default_value_t = 60)]
    #[cfg_attr(not(feature = "python"), allow(dead_code))]
    timeout: u64,
    /// The Python environment of pyfunc models: `local` (this interpreter, the default) or
    /// `virtualenv` (a cached venv built from the model's python_env.yaml).
    #[cfg(feature = "python")]
    #[arg(long, default_value = "local", value_parser = parse_env_manager)]
    env_manager: EnvManager,
    /// Same as `--env-manager local` (MLflow's older flag).
    #[arg(long)]
    #[cfg_attr(not(feature = "python"), allow(dead_code))]
    no_conda: bool,
    /// Accepted for `mlflow models serve` scripts: mlox always speaks the V2 protocol.
    #[arg(long)]
    enable_mlserver: bool,
    /// The interpreter Python workers run on. Default: $MLOX_PYTHON, else `python3`.
    #[cfg(feature = "python")]
    #[arg(long, env = "MLOX_PYTHON")]
    python: Option<PathBuf>,
    /// Seconds between looks at the registry for models served by alias, stage or `latest`
    /// (`models:/name@champion`): a moved alias is loaded beside the serving version and
    /// swapped in once ready. 0 turns polling off; `POST /mlox/refresh` (a registry webhook)
    /// looks at once either way.
    #[arg(long, default_value_t = 30, visible_alias = "repository-poll-secs")]
    poll_interval: u64,
    /// Language models (`--features llm`): hold the decoder's weights as `q8_0` (8-bit, a
    /// quarter of f32's memory traffic) or `q4k` (4-bit), quantized while loading; `none`
    /// keeps f32.
    #[cfg(feature = "llm")]
    #[arg(long, env = "MLOX_LLM_QUANTIZE", default_value = "none", value_parser = parse_quantization)]
    quantize: mlox_serving::llm::Quantization,
    /// Admit only callers the tracking server at this address (running with
    /// `--app-name basic-auth`) accepts, with USE on the registered model of the model's name
    /// (V2 and gRPC; health, metrics and docs stay open).
    #[arg(long, env = "MLOX_AUTH_TRACKING_URI", value_name = "URL")]
    auth_tracking_uri: Option<String>,
}

#[cfg(feature = "llm")]
fn parse_quantization(value: &str) -> Result<mlox_serving::llm::Quantization, String> {
    mlox_serving::llm::Quantization::parse(value)
        .ok_or_else(|| format!("{value:?} is not one of none, q8_0, q4k"))
}

#[cfg(feature = "python")]
fn parse_env_manager(value: &str) -> Result<EnvManager, String> {
    value.parse().map_err(|e: mlox_core::Error| e.message)
}

/// Where and what to serve, settled from flags, settings.json and the defaults.
struct Plan {
    http: SocketAddr,
    grpc: Option<SocketAddr>,
    metrics: Option<MetricsPlan>,
    server_name: String,
    workers: usize,
    specs: Vec<ModelSpec>,
    /// The repository directory, re-read when a model is loaded on request.
    root: Option<PathBuf>,
    /// One model (`-m`): a failed load ends the command, as with `mlflow models serve`.
    single: bool,
}

/// Where the metrics-only listener goes.
#[derive(Debug, PartialEq)]
struct MetricsPlan {
    addr: SocketAddr,
    path: String,
    /// Asked for by a flag or settings.json, rather than MLServer's default port: only then
    /// is a port in use an error.
    explicit: bool,
}

fn plan(args: &ServeArgs) -> anyhow::Result<Plan> {
    let (settings, specs, root, single) = match &args.model_uri {
        Some(uri) => {
            let name = args
                .name
                .clone()
                .unwrap_or_else(|| deployment::default_model_name(uri));
            let spec = ModelSpec {
                name,
                version: None,
                uri: uri.clone(),
                origin: "--model-uri".into(),
                max_batch_size: None,
                max_batch_time: None,
                mlserver: None,
            };
            (Default::default(), vec![spec], None, true)
        }
        None => {
            let root = args
                .repository
                .clone()
                .unwrap_or_else(|| PathBuf::from("."));
            let (settings, specs) =
                deployment::specs_from_repository(&root).map_err(|e| anyhow::anyhow!(e.message))?;
            if specs.is_empty() {
                bail!(
                    "no model-settings.json below {}; write one per model, or serve one model \
                     with `mlox serve -m <uri>`",
                    root.display()
                );
            }
            (settings, specs, Some(root), false)
        }
    };
    let settings: mlox_mlmodel::ServerSettings = settings;
    let host = args
        .host
        .clone()
        .or(settings.host.clone())
        .unwrap_or_else(|| if single { "127.0.0.1" } else { "0.0.0.0" }.to_string());
    let http_port = args.port.or(settings.http_port).unwrap_or(if single {
        MLFLOW_SERVE_PORT
    } else {
        MLSERVER_HTTP_PORT
    });
    let grpc_port = args
        .grpc_port
        .or(settings.grpc_port)
        .or((!single).then_some(MLSERVER_GRPC_PORT))
        .filter(|p| *p != 0);
    // MLServer turns the metrics server off with `"metrics_endpoint": null`.
    let metrics_path = match settings.other.get("metrics_endpoint") {
        None => Some(MLSERVER_METRICS_ENDPOINT.to_owned()),
        Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(path)) if !path.trim().is_empty() => {
            Some(path.trim().to_owned())
        }
        Some(other) => bail!("settings.json: metrics_endpoint must be a path or null, not {other}"),
    };
    let explicit_metrics_port = args.metrics_port.or(settings.metrics_port);
    let metrics = match (metrics_path, explicit_metrics_port) {
        (None, _) | (_, Some(0)) => None,
        (Some(path), Some(port)) => Some(MetricsPlan {
            addr: socket_addr(&host, port)?,
            path,
            explicit: true,
        }),
        (Some(_), None) if single => None,
        (Some(path), None) => Some(MetricsPlan {
            addr: socket_addr(&host, MLSERVER_METRICS_PORT)?,
            path,
            explicit: false,
        }),
    };
    Ok(Plan {
        http: socket_addr(&host, http_port)?,
        grpc: grpc_port.map(|p| socket_addr(&host, p)).transpose()?,
        metrics,
        server_name: settings
            .server_name
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "mlox".into()),
        workers: args
            .workers
            .or(settings.parallel_workers.map(|w| w as usize))
            .unwrap_or(1)
            .max(1),
        specs,
        root,
        single,
    })
}

pub fn socket_addr(host: &str, port: u16) -> anyhow::Result<SocketAddr> {
    format!("{host}:{port}")
        .parse()
        .or_else(|_| format!("[{host}]:{port}").parse())
        .or_else(|_| {
            use std::net::ToSocketAddrs;
            (host, port)
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .ok_or(())
        })
        .map_err(|()| anyhow::anyhow!("invalid listen address {host}:{port}"))
}

/// How Python models' workers run, from the flags.
#[cfg(feature = "python")]
fn python_options(args: &ServeArgs, workers: usize) -> PythonOptions {
    let env_manager = if args.no_conda {
        EnvManager::Local
    } else {
        args.env_manager
    };
    let mut python = PythonOptions {
        workers,
        request_timeout: Duration::from_secs(args.timeout.max(1)),
        env_manager,
        ..PythonOptions::default()
    };
    if let Some(interpreter) = &args.python {
        python.python = interpreter.clone();
    }
    python
}

pub async fn run(args: ServeArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    #[cfg(feature = "llm")]
    mlox_serving::llm::set_quantization(args.quantize);
    let plan = plan(&args)?;
    let fetcher = ModelFetcher::new(FetchConfig::from_env(|name| std::env::var(name).ok()))
        .map_err(|e| anyhow::anyhow!(e.message))?;
    #[cfg(feature = "python")]
    let loader = ModelLoader::new(fetcher, python_options(&args, plan.workers));
    #[cfg(not(feature = "python"))]
    let loader = ModelLoader::new(fetcher, plan.workers);
    let loader = loader.merge_waiting(args.merge_waiting);

    let http = tokio::net::TcpListener::bind(plan.http)
        .await
        .with_context(|| format!("cannot listen on {} (HTTP)", plan.http))?;
    let grpc = match plan.grpc {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (gRPC)"))?,
        ),
        None => None,
    };
    let metrics = match &plan.metrics {
        Some(metrics) => match tokio::net::TcpListener::bind(metrics.addr).await {
            Ok(listener) => Some((listener, metrics.path.clone())),
            Err(e) if !metrics.explicit => {
                tracing::warn!(
                    addr = %metrics.addr, error = %e,
                    "metrics port unavailable; metrics stay on the HTTP port's /metrics \
                     (set metrics_port in settings.json or --metrics-port, 0 for none)"
                );
                None
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot listen on {} (metrics)", metrics.addr));
            }
        },
        None => None,
    };
    let follows_the_registry = plan
        .specs
        .iter()
        .any(|s| deployment::follows_the_registry(&s.uri));
    let total = plan.specs.len();
    let deployer = Deployer::new(ModelRepository::new(), loader, plan.specs, plan.root);
    let dataplane = Dataplane::with_deployer(
        deployer.clone(),
        ServerInfo {
            name: plan.server_name.clone(),
            ..ServerInfo::default()
        },
    );
    tracing::info!(
        http = %plan.http,
        grpc = %plan.grpc.map(|a| a.to_string()).unwrap_or_else(|| "off".into()),
        metrics = %plan.metrics.as_ref().map(|m| format!("{}{}", m.addr, m.path)).unwrap_or_else(|| "off".into()),
        models = total,
        startup_ms = started.elapsed().as_millis() as u64,
        "mlox serve listening; loading models"
    );

    if let Some(uri) = &args.auth_tracking_uri {
        let gate =
            mlox_auth::remote::RemoteGate::new(uri, mlox_core::auth::ResourceType::RegisteredModel)
                .map_err(|e| anyhow::anyhow!(e.message))?;
        dataplane.require(std::sync::Arc::new(gate));
    }
    deployer.announce_all();
    let stop = shutdown.child_token();
    if let Some((listener, path)) = metrics {
        let dataplane = dataplane.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            if let Err(e) =
                mlox_serving::rest::serve_metrics(listener, dataplane, &path, stop).await
            {
                tracing::error!(error = %e, "the metrics server stopped");
            }
        });
    }
    let server = tokio::spawn(mlox_serving::serve(
        dataplane,
        http,
        grpc,
        ServeConfig::default(),
        stop.clone(),
    ));
    let loaded = tokio::select! {
        loaded = deployer.deploy_all() => loaded,
        _ = stop.cancelled() => 0,
    };
    if !stop.is_cancelled() {
        if loaded == 0 || (plan.single && loaded < total) {
            stop.cancel();
            let _ = server.await;
            bail!("no model could be loaded; see the errors above");
        }
        tracing::info!(
            loaded,
            failed = total - loaded,
            ms = started.elapsed().as_millis() as u64,
            "mlox serve ready"
        );
        if follows_the_registry && args.poll_interval > 0 {
            tracing::info!(
                every_s = args.poll_interval,
                "following registry aliases, stages and latest versions"
            );
            deployer.follow(Duration::from_secs(args.poll_interval), stop.clone());
        }
    }
    server.await.context("the server task failed")??;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn parse(args: &[&str]) -> ServeArgs {
        Cli::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))
            .map(|c| c.serve)
            .unwrap()
    }

    #[test]
    fn one_uri_listens_like_mlflow_models_serve() {
        let plan = plan(&parse(&["-m", "models:/CancerModel/1", "-p", "9020"])).unwrap();
        assert_eq!(plan.http, "127.0.0.1:9020".parse().unwrap());
        assert_eq!(plan.grpc, None);
        assert!(plan.single);
        assert_eq!(plan.specs[0].name, "CancerModel");
        let plan = plan_of(&[
            "-m",
            "runs:/abc/model",
            "-h",
            "0.0.0.0",
            "--grpc-port",
            "9021",
        ]);
        assert_eq!(plan.http, "0.0.0.0:5000".parse().unwrap());
        assert_eq!(plan.grpc, Some("0.0.0.0:9021".parse().unwrap()));
    }

    fn plan_of(args: &[&str]) -> Plan {
        plan(&parse(args)).unwrap()
    }

    #[test]
    fn a_repository_takes_its_ports_from_settings_json_unless_flags_say_otherwise() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(
            root.path().join("settings.json"),
            r#"{"debug": "true", "http_port": "8000", "grpc_port": "8001", "server_name": " mlserver", "parallel_workers": "3"}"#,
        )
        .unwrap();
        std::fs::write(
            root.path().join("model-settings.json"),
            r#"{"name": "m", "implementation": "mlserver_mlflow.MLflowRuntime", "parameters": {"uri": "models:/m/1"}}"#,
        )
        .unwrap();
        let dir = root.path().to_str().unwrap();
        let plan = plan_of(&[dir]);
        assert_eq!(plan.http, "0.0.0.0:8000".parse().unwrap());
        assert_eq!(plan.grpc, Some("0.0.0.0:8001".parse().unwrap()));
        assert_eq!(plan.server_name, "mlserver");
        assert_eq!(plan.workers, 3);
        assert!(!plan.single);
        let plan = plan_of(&[
            dir,
            "-h",
            "127.0.0.1",
            "-p",
            "9000",
            "--grpc-port",
            "0",
            "-w",
            "2",
        ]);
        assert_eq!(plan.http, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(plan.grpc, None);
        assert_eq!(plan.workers, 2);
    }

    #[test]
    fn metrics_get_mlservers_port_for_a_repository_and_none_for_one_uri() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().to_str().unwrap();
        std::fs::write(
            root.path().join("model-settings.json"),
            r#"{"name": "m", "implementation": "mlserver_mlflow.MLflowRuntime", "parameters": {"uri": "models:/m/1"}}"#,
        )
        .unwrap();
        let settings =
            |json: &str| std::fs::write(root.path().join("settings.json"), json).unwrap();
        let metrics = |args: &[&str]| plan_of(args).metrics;

        assert_eq!(
            metrics(&[dir]),
            Some(MetricsPlan {
                addr: "0.0.0.0:8082".parse().unwrap(),
                path: "/metrics".into(),
                explicit: false
            })
        );
        assert_eq!(metrics(&["-m", "models:/m/1"]), None);
        let one_uri = metrics(&["-m", "models:/m/1", "--metrics-port", "9100"]).unwrap();
        assert_eq!(one_uri.addr, "127.0.0.1:9100".parse().unwrap());
        assert!(one_uri.explicit);

        settings(r#"{"metrics_port": "9200", "metrics_endpoint": "/prometheus"}"#);
        let from_settings = metrics(&[dir]).unwrap();
        assert_eq!(from_settings.addr, "0.0.0.0:9200".parse().unwrap());
        assert_eq!(from_settings.path, "/prometheus");
        assert!(from_settings.explicit);
        assert_eq!(metrics(&[dir, "--metrics-port", "0"]), None);

        settings(r#"{"metrics_endpoint": null}"#);
        assert_eq!(metrics(&[dir]), None);
        settings(r#"{"metrics_endpoint": 5}"#);
        let err = plan(&parse(&[dir])).err().unwrap().to_string();
        assert!(err.contains("metrics_endpoint"), "{err}");
    }

    #[test]
    fn a_repository_without_models_is_an_error_that_says_what_to_write() {
        let root = tempfile::tempdir().unwrap();
        let err = plan(&parse(&[root.path().to_str().unwrap()]))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("no model-settings.json"), "{err}");
    }

    #[test]
    fn unknown_environment_managers_are_refused_at_parse_time() {
        let err = Cli::try_parse_from(["serve", "-m", "x", "--env-manager", "conda"])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("not supported"), "{err}");
    }
}
