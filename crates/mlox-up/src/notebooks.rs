//! The notebooks part. JupyterLab for one user: its kernels start with the tracking server's
//! address (and the platform's access token when auth is on), so `mlflow.start_run()` in a
//! notebook needs no set-up. JupyterHub for a team: users sign in with their mlox credentials
//! (the authenticator in `python/mlox-jupyterhub`, shipped inside this binary) and each user's
//! notebook server is signed in to the tracking server as that user. Without a configured
//! Python, JupyterLab (and JupyterHub) and the MLflow client are installed once into a venv of
//! the platform's own, and the hub's proxy with npm.

use crate::config::{NotebookKind, NotebooksConfig};
use crate::supervisor::{PartSpec, console};
use std::path::{Path, PathBuf};
use tokio::process::Command;

/// The MLflow client release the suite tests mlox with; notebooks get the same.
const MLFLOW_CLIENT: &str = "mlflow==3.17.2";
const JUPYTERLAB: &str = "jupyterlab>=4,<5";
const JUPYTERHUB: &str = "jupyterhub>=5,<7";
const PROXY_PACKAGE: &str = "configurable-http-proxy@4";
const AUTHENTICATOR: &str =
    include_str!("../../../python/mlox-jupyterhub/mlox_jupyterhub/__init__.py");

pub(crate) fn lab_part(
    config: &NotebooksConfig,
    host: &str,
    local_host: &str,
    python: PathBuf,
    client_env: &[(String, String)],
) -> anyhow::Result<PartSpec> {
    // One token per run of the platform, in the address printed for the person who started it.
    let token = uuid::Uuid::new_v4().simple().to_string();
    let root = config.root_dir.clone().unwrap_or_else(|| ".".into());
    std::fs::create_dir_all(&root)?;
    let url = format!("http://{local_host}:{}", config.port);
    let mut args = vec![
        "-m".into(),
        "jupyterlab".into(),
        "--no-browser".into(),
        format!("--ServerApp.ip={host}"),
        format!("--ServerApp.port={}", config.port),
        "--ServerApp.port_retries=0".into(),
        format!("--IdentityProvider.token={token}"),
        format!("--ServerApp.root_dir={root}"),
    ];
    // Jupyter refuses root unless told; containers commonly run as root.
    if rustix::process::geteuid().is_root() {
        args.push("--allow-root".into());
    }
    Ok(PartSpec {
        name: "notebooks".into(),
        program: python,
        args,
        env: client_env.to_vec(),
        ready_url: format!("{url}/api/status?token={token}"),
        address: format!("{url}/lab?token={token}"),
        what: "JupyterLab; kernels log to the tracking server".into(),
        working_dir: Some(root.into()),
    })
}

/// `<dir>/.mlox/notebooks/bin/python`, made (and JupyterLab, for the hub JupyterHub too,
/// installed into it, with pip's own progress) the first time.
pub(crate) async fn managed_python(dir: &Path, kind: NotebookKind) -> anyhow::Result<PathBuf> {
    let venv = dir.join(".mlox").join("notebooks");
    let python = venv.join("bin").join("python");
    let installed = venv.join(".installed");
    let mut packages = vec![JUPYTERLAB, MLFLOW_CLIENT];
    if kind == NotebookKind::Hub {
        packages.push(JUPYTERHUB);
    }
    let wanted = packages.join("\n");
    let have = std::fs::read_to_string(&installed).unwrap_or_default();
    if python.exists() && packages.iter().all(|p| have.lines().any(|l| l == *p)) {
        return Ok(python);
    }
    console(&format!(
        "mlox up: installing {} into {} (first time only)",
        packages.join(", "),
        venv.display()
    ));
    if !python.exists() {
        let base = std::env::var("MLOX_NOTEBOOKS_BASE_PYTHON").unwrap_or_else(|_| "python3".into());
        run(
            Command::new(&base).arg("-m").arg("venv").arg(&venv),
            "python3 -m venv",
        )
        .await?;
    }
    run(
        Command::new(&python)
            .args(["-m", "pip", "install", "--disable-pip-version-check"])
            .args(&packages),
        "pip install",
    )
    .await?;
    std::fs::write(&installed, wanted)?;
    Ok(python)
}

/// JupyterHub with mlox's authenticator, its state under `<dir>/.mlox/hub`.
pub(crate) async fn hub_part(
    config: &NotebooksConfig,
    dir: &Path,
    host: &str,
    local_host: &str,
    python: PathBuf,
    tracking_url: &str,
) -> anyhow::Result<PartSpec> {
    let state = dir.join(".mlox").join("hub");
    let package = state.join("python").join("mlox_jupyterhub");
    std::fs::create_dir_all(&package)?;
    std::fs::write(package.join("__init__.py"), AUTHENTICATOR)?;
    let proxy = match &config.proxy {
        Some(proxy) => PathBuf::from(proxy),
        None => managed_proxy(&state).await?,
    };
    let key_file = state.join("crypt_key");
    if !key_file.exists() {
        let key = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        write_private(&key_file, &key)?;
    }
    let crypt_key = std::fs::read_to_string(&key_file)?.trim().to_string();
    let root = config.root_dir.clone().unwrap_or_else(|| ".".into());
    std::fs::create_dir_all(&root)?;
    let quote = |value: &str| serde_json::Value::String(value.to_string()).to_string();
    let python_text = python.display().to_string();
    let mut spawner_args = vec![];
    if rustix::process::geteuid().is_root() {
        spawner_args.push(quote("--allow-root"));
    }
    let settings = [
        format!("c.JupyterHub.ip = {}", quote(host)),
        format!("c.JupyterHub.port = {}", config.port),
        "c.JupyterHub.hub_ip = '127.0.0.1'".to_string(),
        format!("c.JupyterHub.hub_port = {}", config.hub_api_port()),
        format!(
            "c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{}'",
            config.proxy_api_port()
        ),
        format!(
            "c.ConfigurableHTTPProxy.command = [{}]",
            quote(&proxy.display().to_string())
        ),
        format!(
            "c.ConfigurableHTTPProxy.pid_file = {}",
            quote(&state.join("proxy.pid").display().to_string())
        ),
        format!(
            "c.JupyterHub.db_url = {}",
            quote(&format!(
                "sqlite:///{}",
                state.join("jupyterhub.sqlite").display()
            ))
        ),
        format!(
            "c.JupyterHub.cookie_secret_file = {}",
            quote(&state.join("cookie_secret").display().to_string())
        ),
        "c.JupyterHub.authenticator_class = 'mlox_jupyterhub.MloxAuthenticator'".into(),
        format!("c.MloxAuthenticator.tracking_uri = {}", quote(tracking_url)),
        "c.Authenticator.enable_auth_state = True".into(),
        "c.Authenticator.allow_all = True".into(),
        "c.JupyterHub.spawner_class = 'jupyterhub.spawner.SimpleLocalProcessSpawner'".into(),
        format!(
            "c.SimpleLocalProcessSpawner.home_dir_template = {}",
            quote(&format!("{root}/{{username}}"))
        ),
        format!(
            "c.Spawner.cmd = [{}, '-m', 'jupyterhub.singleuser']",
            quote(&python_text)
        ),
        format!("c.Spawner.args = [{}]", spawner_args.join(", ")),
        "c.Spawner.default_url = '/lab'".into(),
    ];
    let config_file = state.join("jupyterhub_config.py");
    std::fs::write(
        &config_file,
        format!(
            "# Written by mlox up on every start; edit mlox.yaml instead.\nc = get_config()  # noqa: F821\n{}\n",
            settings.join("\n")
        ),
    )?;
    let url = format!("http://{local_host}:{}", config.port);
    Ok(PartSpec {
        name: "notebooks".into(),
        program: python,
        args: vec![
            "-m".into(),
            "jupyterhub".into(),
            "-f".into(),
            config_file.display().to_string(),
        ],
        env: vec![
            (
                "PYTHONPATH".into(),
                state.join("python").display().to_string(),
            ),
            ("JUPYTERHUB_CRYPT_KEY".into(), crypt_key),
        ],
        ready_url: format!("{url}/hub/health"),
        address: format!("{url}/hub/"),
        what: "JupyterHub: sign in as an mlox user; notebooks log as that user".into(),
        working_dir: Some(root.into()),
    })
}

/// `configurable-http-proxy`, installed with npm under the hub's state the first time.
async fn managed_proxy(state: &Path) -> anyhow::Result<PathBuf> {
    let prefix = state.join("node");
    let proxy = prefix
        .join("node_modules")
        .join(".bin")
        .join("configurable-http-proxy");
    if proxy.exists() {
        return Ok(proxy);
    }
    console(&format!(
        "mlox up: installing JupyterHub's proxy ({PROXY_PACKAGE}) into {} (first time only)",
        prefix.display()
    ));
    run(
        Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&prefix)
            .arg(PROXY_PACKAGE),
        "npm install configurable-http-proxy (JupyterHub needs Node.js and npm)",
    )
    .await?;
    Ok(proxy)
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

async fn run(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let status = command
        .status()
        .await
        .map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    if !status.success() {
        anyhow::bail!("{what} failed ({status}); the notebooks need it");
    }
    Ok(())
}
