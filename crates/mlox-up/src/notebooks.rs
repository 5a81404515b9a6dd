//! The notebooks part: JupyterLab, its kernels started with the tracking server's address (and
//! the platform's access token when auth is on), so `mlflow.start_run()` in a notebook needs no
//! set-up. Without a configured Python, JupyterLab and the MLflow client are installed once
//! into a venv of the platform's own.

use crate::config::NotebooksConfig;
use crate::supervisor::{PartSpec, console};
use std::path::{Path, PathBuf};
use tokio::process::Command;

/// The MLflow client release the suite tests mlox with; notebooks get the same.
const MLFLOW_CLIENT: &str = "mlflow==3.17.2";
const JUPYTERLAB: &str = "jupyterlab>=4,<5";

pub(crate) fn lab_part(
    config: &NotebooksConfig,
    host: &str,
    local_host: &str,
    python: PathBuf,
    client_env: &[(String, String)],
) -> PartSpec {
    // One token per run of the platform, in the address printed for the person who started it.
    let token = uuid::Uuid::new_v4().simple().to_string();
    let root = config.root_dir.clone().unwrap_or_else(|| ".".into());
    let _ = std::fs::create_dir_all(&root);
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
    PartSpec {
        name: "notebooks".into(),
        program: python,
        args,
        env: client_env.to_vec(),
        ready_url: format!("{url}/api/status?token={token}"),
        address: format!("{url}/lab?token={token}"),
        what: "JupyterLab; kernels log to the tracking server".into(),
    }
}

/// `<dir>/.mlox/notebooks/bin/python`, made (and JupyterLab installed into it, with pip's own
/// progress) the first time.
pub(crate) async fn managed_python(dir: &Path) -> anyhow::Result<PathBuf> {
    let venv = dir.join(".mlox").join("notebooks");
    let python = venv.join("bin").join("python");
    let installed = venv.join(".installed");
    if installed.exists() && python.exists() {
        return Ok(python);
    }
    console(&format!(
        "mlox up: installing JupyterLab and the MLflow client into {} (first time only)",
        venv.display()
    ));
    let base = std::env::var("MLOX_NOTEBOOKS_BASE_PYTHON").unwrap_or_else(|_| "python3".into());
    run(
        Command::new(&base).arg("-m").arg("venv").arg(&venv),
        "python3 -m venv",
    )
    .await?;
    run(
        Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            JUPYTERLAB,
            MLFLOW_CLIENT,
        ]),
        "pip install",
    )
    .await?;
    std::fs::write(&installed, format!("{JUPYTERLAB}\n{MLFLOW_CLIENT}\n"))?;
    Ok(python)
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
