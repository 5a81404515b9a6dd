//! `mlox up`: the whole platform of seed 000 from one command. This crate owns the platform's
//! description (`mlox.yaml`, see [`config`]), how each part becomes a process (the tracking
//! server and web UI, model servers, the gateway, notebooks), the order they start in and how
//! they are wired together (tracking address, one access token when auth is on), and their
//! supervision: merged output, restarts, a clean stop. Every part except the notebooks is this
//! same binary, started as a child process, so a part behaves under `mlox up` exactly as it
//! does started by hand.

pub mod config;
mod notebooks;
mod supervisor;

pub use supervisor::SUPERVISOR_PID_VAR;

use crate::config::{NotebookKind, PlatformConfig, ServingConfig};
use crate::supervisor::{PartSpec, Supervisor, console};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct UpOptions {
    /// The platform's directory: `mlox.yaml`, the default database and artifacts, notebooks.
    pub dir: PathBuf,
    pub print_config: bool,
    /// This binary, which every part but the notebooks runs as.
    pub mlox: PathBuf,
    /// How long a part may take to answer before `mlox up` says so (it keeps waiting).
    pub ready_timeout: Duration,
}

/// The name of the administrator's access token `mlox up` hands its parts.
const PLATFORM_TOKEN_NAME: &str = "mlox-up";

/// Where `mlox up` writes the parts and their addresses for tools (and tests) to read.
pub const STATE_FILE: &str = ".mlox/up.json";

pub async fn run(options: UpOptions) -> anyhow::Result<()> {
    std::fs::create_dir_all(&options.dir)?;
    let dir = std::fs::canonicalize(&options.dir)?;
    let config = PlatformConfig::load(&dir)?.effective(&dir);
    if options.print_config {
        use std::io::Write;
        std::io::stdout()
            .lock()
            .write_all(config.to_yaml()?.as_bytes())?;
        return Ok(());
    }
    // Taken over before the first part starts, so that a Ctrl-C during start-up stops the
    // parts already running instead of leaving them behind.
    let mut stop = StopSignals::new()?;
    let width = 10usize.max(
        config
            .serving
            .iter()
            .map(|s| s.name.len())
            .max()
            .unwrap_or(0),
    );
    let supervisor = Supervisor::new(width);
    let outcome = tokio::select! {
        started = start_platform(&config, &dir, &options, &supervisor) => started,
        _ = stop.next() => Ok(false),
    };
    match outcome {
        Ok(true) => stop.next().await,
        Ok(false) => {}
        Err(e) => {
            supervisor.stop().await;
            return Err(e);
        }
    }
    console("mlox up: stopping");
    supervisor.stop().await;
    let _ = std::fs::remove_file(dir.join(STATE_FILE));
    console("mlox up: stopped");
    Ok(())
}

/// Starts the parts in order, waits for them, and prints where they are; `Ok(true)` once the
/// platform runs.
async fn start_platform(
    config: &PlatformConfig,
    dir: &Path,
    options: &UpOptions,
    supervisor: &Supervisor,
) -> anyhow::Result<bool> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let started = Instant::now();
    let tracking = &config.tracking;
    let local_host = reachable_host(&tracking.host);
    let tracking_url = format!("http://{local_host}:{}", tracking.port);

    let tracking_part = tracking_part(config, &options.mlox, &tracking_url);
    supervisor.start(tracking_part.clone());
    let mut parts = vec![tracking_part];
    if !wait_ready(&http, &parts[0], options.ready_timeout).await {
        anyhow::bail!(
            "the tracking server did not answer at {tracking_url} within {} s; see its output above",
            options.ready_timeout.as_secs()
        );
    }

    // With auth on, the parts that call the tracking server do so as the administrator,
    // through one access token made for this run of the platform.
    // The registry too: a registry address inherited from the shell must not send a notebook's
    // models to another server than its runs.
    let mut client_env = vec![
        ("MLFLOW_TRACKING_URI".to_string(), tracking_url.clone()),
        ("MLFLOW_REGISTRY_URI".to_string(), tracking_url.clone()),
    ];
    if tracking.auth {
        let token = platform_token(&http, &tracking_url).await?;
        client_env.push(("MLFLOW_TRACKING_TOKEN".into(), token));
    }

    for serving in &config.serving {
        parts.push(serving_part(
            serving,
            &local_host,
            &options.mlox,
            &client_env,
            tracking.auth.then_some(tracking_url.as_str()),
        ));
    }
    if let Some(gateway) = &config.gateway {
        let mut args = vec![
            "gateway".into(),
            "start".into(),
            "--config-path".into(),
            gateway.config_path.clone(),
            "--host".into(),
            tracking.host.clone(),
            "--port".into(),
            gateway.port.to_string(),
        ];
        if tracking.auth {
            args.extend(["--auth-tracking-uri".into(), tracking_url.clone()]);
        }
        if let Some(experiment) = &gateway.trace_experiment {
            args.extend(["--trace-experiment".into(), experiment.clone()]);
        }
        let url = format!("http://{local_host}:{}", gateway.port);
        parts.push(PartSpec {
            name: "gateway".into(),
            program: options.mlox.clone(),
            args,
            env: client_env.clone(),
            ready_url: format!("{url}/health"),
            address: url,
            what: "LLM gateway: MLflow's deployments API and OpenAI's /v1".into(),
            working_dir: None,
        });
    }
    if let Some(notebooks) = &config.notebooks {
        let python = match &notebooks.python {
            Some(python) => PathBuf::from(python),
            None => notebooks::managed_python(dir, notebooks.kind).await?,
        };
        parts.push(match notebooks.kind {
            NotebookKind::Lab => {
                notebooks::lab_part(notebooks, &tracking.host, &local_host, python, &client_env)?
            }
            NotebookKind::Hub => {
                notebooks::hub_part(
                    notebooks,
                    dir,
                    &tracking.host,
                    &local_host,
                    python,
                    &tracking_url,
                )
                .await?
            }
        });
    }
    for part in &parts[1..] {
        supervisor.start(part.clone());
    }
    let mut checks = tokio::task::JoinSet::new();
    for part in &parts[1..] {
        let (http, part, timeout) = (http.clone(), part.clone(), options.ready_timeout);
        checks.spawn(async move { (wait_ready(&http, &part, timeout).await, part.name) });
    }
    let mut waiting = Vec::new();
    while let Some(Ok((ready, name))) = checks.join_next().await {
        if !ready {
            waiting.push(name);
        }
    }
    waiting.sort();
    write_state(dir, &parts)?;
    print_table(&parts, &waiting, started.elapsed());
    Ok(true)
}

/// The address the parts use to reach one another: a server listening on every interface is
/// reached on the loopback.
fn reachable_host(host: &str) -> String {
    match host {
        "0.0.0.0" | "::" | "[::]" => "127.0.0.1".into(),
        host => host.into(),
    }
}

fn tracking_part(config: &PlatformConfig, mlox: &Path, url: &str) -> PartSpec {
    let tracking = &config.tracking;
    let mut args = vec![
        "server".to_string(),
        "--host".into(),
        tracking.host.clone(),
        "--port".into(),
        tracking.port.to_string(),
        "--backend-store-uri".into(),
        tracking.backend_store_uri.clone().unwrap_or_default(),
        "--artifacts-destination".into(),
        tracking.artifacts_destination.clone().unwrap_or_default(),
    ];
    if tracking.auth {
        args.extend(["--app-name".into(), "basic-auth".into()]);
    }
    // The web UI links to the notebooks on whatever host the browser reaches it by; the lab's
    // token is not in the link, since everyone who can open the UI would get it.
    if let Some(notebooks) = &config.notebooks {
        let path = match notebooks.kind {
            NotebookKind::Lab => "/lab",
            NotebookKind::Hub => "/hub/",
        };
        args.extend([
            "--platform-link".into(),
            format!("Notebooks=:{}{path}", notebooks.port),
        ]);
    }
    args.extend(tracking.args.iter().cloned());
    PartSpec {
        name: "tracking".into(),
        program: mlox.to_path_buf(),
        args,
        env: Vec::new(),
        ready_url: format!("{url}/health"),
        address: url.to_string(),
        what: "web UI, tracking server, model registry, artifacts".into(),
        working_dir: None,
    }
}

fn serving_part(
    serving: &ServingConfig,
    host: &str,
    mlox: &Path,
    client_env: &[(String, String)],
    auth_tracking_uri: Option<&str>,
) -> PartSpec {
    let mut args = vec!["serve".to_string()];
    match (&serving.model_uri, &serving.repository) {
        (Some(uri), _) => args.extend(["--model-uri".into(), uri.clone()]),
        (None, Some(repository)) => args.push(repository.clone()),
        (None, None) => {}
    }
    args.extend([
        "--host".into(),
        host.to_string(),
        "--port".into(),
        serving.port.to_string(),
    ]);
    if let Some(grpc) = serving.grpc_port {
        args.extend(["--grpc-port".into(), grpc.to_string()]);
    }
    if let Some(uri) = auth_tracking_uri {
        args.extend(["--auth-tracking-uri".into(), uri.to_string()]);
    }
    args.extend(serving.args.iter().cloned());
    let url = format!("http://{host}:{}", serving.port);
    PartSpec {
        name: serving.name.clone(),
        program: mlox.to_path_buf(),
        args,
        env: client_env.to_vec(),
        ready_url: format!("{url}/v2/health/live"),
        address: url,
        what: match (&serving.model_uri, serving.grpc_port) {
            (Some(uri), Some(grpc)) => {
                format!("serves {uri} (V2 REST, gRPC on {grpc}, /invocations)")
            }
            (Some(uri), None) => format!("serves {uri} (V2 REST, /invocations)"),
            (None, _) => "model repository (V2, /invocations)".into(),
        },
        working_dir: None,
    }
}

/// A personal access token of the administrator named by MLflow's auth variables, made for
/// the parts of this run.
async fn platform_token(http: &reqwest::Client, tracking_url: &str) -> anyhow::Result<String> {
    let username =
        std::env::var("MLFLOW_AUTH_ADMIN_USERNAME").unwrap_or_else(|_| "admin".to_string());
    let password = std::env::var("MLFLOW_AUTH_ADMIN_PASSWORD").map_err(|_| {
        anyhow::anyhow!(
            "tracking.auth is on: set MLFLOW_AUTH_ADMIN_PASSWORD (and MLFLOW_AUTH_ADMIN_USERNAME \
             unless it is 'admin') so that mlox up can sign its parts in"
        )
    })?;
    let tokens = format!("{tracking_url}/api/2.0/mlflow/users/tokens");
    // The token of the previous start is replaced, so restarts do not pile tokens up.
    let listed: serde_json::Value = http
        .get(format!("{tokens}/list"))
        .basic_auth(&username, Some(&password))
        .send()
        .await?
        .json()
        .await
        .unwrap_or_default();
    let previous = listed["tokens"].as_array().into_iter().flatten();
    for token in previous.filter(|t| t["name"] == PLATFORM_TOKEN_NAME) {
        http.delete(format!("{tokens}/delete"))
            .basic_auth(&username, Some(&password))
            .json(&json!({"id": token["id"]}))
            .send()
            .await?;
    }
    let answer = http
        .post(format!("{tokens}/create"))
        .basic_auth(&username, Some(&password))
        .json(&json!({"name": PLATFORM_TOKEN_NAME, "expires_in_days": 30}))
        .send()
        .await?;
    let status = answer.status();
    let body: serde_json::Value = answer.json().await.unwrap_or_default();
    match body["token"].as_str() {
        Some(token) if status.is_success() => Ok(token.to_string()),
        _ => anyhow::bail!(
            "the tracking server refused an access token for '{username}' ({status}): {body}"
        ),
    }
}

async fn wait_ready(http: &reqwest::Client, part: &PartSpec, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(answer) = http.get(&part.ready_url).send().await
            && answer.status().is_success()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

fn write_state(dir: &Path, parts: &[PartSpec]) -> anyhow::Result<()> {
    let path = dir.join(STATE_FILE);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let state = json!({
        "pid": std::process::id(),
        "parts": parts.iter().map(|p| json!({"name": p.name, "address": p.address, "what": p.what})).collect::<Vec<_>>(),
    });
    std::fs::write(path, serde_json::to_vec_pretty(&state)?)?;
    Ok(())
}

fn print_table(parts: &[PartSpec], waiting: &[String], elapsed: Duration) {
    let width = parts.iter().map(|p| p.name.len()).max().unwrap_or(0).max(4);
    let address_width = parts.iter().map(|p| p.address.len()).max().unwrap_or(0);
    if waiting.is_empty() {
        console(&format!(
            "mlox up: the platform is ready ({:.1} s)",
            elapsed.as_secs_f64()
        ));
    } else {
        console(&format!(
            "mlox up: started; still waiting for {} ({:.1} s)",
            waiting.join(", "),
            elapsed.as_secs_f64()
        ));
    }
    for part in parts {
        console(&format!(
            "  {:<width$}  {:<address_width$}  {}",
            part.name, part.address, part.what
        ));
    }
    console("Ctrl-C stops every part.");
}

/// SIGINT (Ctrl-C) and SIGTERM, both taken over from the start.
struct StopSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn new() -> anyhow::Result<StopSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(StopSignals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}
