//! `mlox.yaml`: which parts the platform has and how each is reached. Every key is optional; a
//! missing file means the defaults (tracking and web UI on embedded SQLite and local files).
//! Unknown keys are refused with their path, so a typo never silently turns a part off.

use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = "mlox.yaml";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlatformConfig {
    pub tracking: TrackingConfig,
    /// Model servers (`mlox serve`), each on its own port.
    pub serving: Vec<ServingConfig>,
    pub gateway: Option<GatewayConfig>,
    pub notebooks: Option<NotebooksConfig>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrackingConfig {
    pub host: String,
    pub port: u16,
    /// `sqlite:///<dir>/mlruns.db` unless given.
    pub backend_store_uri: Option<String>,
    /// `<dir>/mlartifacts` unless given (a path, `s3://…`, …).
    pub artifacts_destination: Option<String>,
    /// MLflow's basic-auth app: users from `MLFLOW_AUTH_ADMIN_USERNAME` /
    /// `MLFLOW_AUTH_ADMIN_PASSWORD` (or the ini `MLFLOW_AUTH_CONFIG_PATH` names).
    pub auth: bool,
    /// More `mlox server` flags, passed as they are.
    pub args: Vec<String>,
}

impl Default for TrackingConfig {
    fn default() -> Self {
        TrackingConfig {
            host: "127.0.0.1".into(),
            port: 5000,
            backend_store_uri: None,
            artifacts_destination: None,
            auth: false,
            args: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServingConfig {
    pub name: String,
    pub port: u16,
    #[serde(default)]
    pub grpc_port: Option<u16>,
    /// One model (`models:/name@alias`, `runs:/…`, a path), followed as its alias moves.
    #[serde(default)]
    pub model_uri: Option<String>,
    /// Or an MLServer model repository directory.
    #[serde(default)]
    pub repository: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// MLflow's gateway `config.yaml`.
    pub config_path: String,
    #[serde(default = "default_gateway_port")]
    pub port: u16,
    /// The experiment every call is recorded in as a trace; `null` records none.
    #[serde(default = "default_trace_experiment")]
    pub trace_experiment: Option<String>,
}

fn default_gateway_port() -> u16 {
    5001
}

fn default_trace_experiment() -> Option<String> {
    Some("gateway".into())
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotebookKind {
    /// JupyterLab for one user.
    #[default]
    Lab,
    /// JupyterHub: every mlox user signs in and gets a notebook server signed in as them.
    Hub,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotebooksConfig {
    pub kind: NotebookKind,
    pub port: u16,
    /// A Python that has JupyterLab; unless given, `mlox up` makes a venv for it under
    /// `<dir>/.mlox/notebooks` the first time.
    pub python: Option<String>,
    /// Where notebooks are kept (one directory per user for the hub): `<dir>/notebooks`
    /// unless given.
    pub root_dir: Option<String>,
    /// The hub's internal API port (hub only): the port after `port` unless given.
    pub hub_api_port: Option<u16>,
    /// The hub proxy's API port (hub only): two after `port` unless given.
    pub proxy_api_port: Option<u16>,
    /// `configurable-http-proxy` (hub only); unless given, installed with npm the first time.
    pub proxy: Option<String>,
}

impl Default for NotebooksConfig {
    fn default() -> Self {
        NotebooksConfig {
            kind: NotebookKind::Lab,
            port: 8888,
            python: None,
            root_dir: None,
            hub_api_port: None,
            proxy_api_port: None,
            proxy: None,
        }
    }
}

impl NotebooksConfig {
    pub fn hub_api_port(&self) -> u16 {
        self.hub_api_port.unwrap_or(self.port.wrapping_add(1))
    }

    pub fn proxy_api_port(&self) -> u16 {
        self.proxy_api_port.unwrap_or(self.port.wrapping_add(2))
    }
}

impl PlatformConfig {
    /// `<dir>/mlox.yaml` if it exists, else the defaults.
    pub fn load(dir: &Path) -> anyhow::Result<PlatformConfig> {
        let path = dir.join(CONFIG_FILE);
        if !path.exists() {
            return Ok(PlatformConfig::default());
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        PlatformConfig::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<PlatformConfig> {
        if text.trim().is_empty() {
            return Ok(PlatformConfig::default());
        }
        let config: PlatformConfig =
            serde_saphyr::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> anyhow::Result<()> {
        let mut ports = vec![("tracking", self.tracking.port)];
        let mut names = HashSet::new();
        for serving in &self.serving {
            if !names.insert(serving.name.as_str()) {
                anyhow::bail!("two model servers are named '{}'", serving.name);
            }
            match (&serving.model_uri, &serving.repository) {
                (Some(_), None) | (None, Some(_)) => {}
                _ => anyhow::bail!(
                    "model server '{}' needs exactly one of model_uri and repository",
                    serving.name
                ),
            }
            ports.push(("serving", serving.port));
            if let Some(grpc) = serving.grpc_port {
                ports.push(("serving gRPC", grpc));
            }
        }
        if let Some(gateway) = &self.gateway {
            ports.push(("gateway", gateway.port));
        }
        if let Some(notebooks) = &self.notebooks {
            ports.push(("notebooks", notebooks.port));
            if notebooks.kind == NotebookKind::Hub {
                if !self.tracking.auth {
                    anyhow::bail!(
                        "notebooks.kind hub signs users in with mlox's users: set tracking.auth: true"
                    );
                }
                ports.push(("hub API", notebooks.hub_api_port()));
                ports.push(("hub proxy API", notebooks.proxy_api_port()));
            }
        }
        let mut seen = HashSet::new();
        for (part, port) in ports {
            if !seen.insert(port) {
                anyhow::bail!("port {port} is given to more than one part ({part} and another)");
            }
        }
        Ok(())
    }

    /// The configuration with every default written out and every path absolute, as
    /// `mlox up --print-config` shows it.
    pub fn effective(mut self, dir: &Path) -> PlatformConfig {
        let absolute = |p: &str| -> String {
            let path = PathBuf::from(p);
            if path.is_absolute() || p.contains("://") {
                p.to_string()
            } else {
                dir.join(path).display().to_string()
            }
        };
        let tracking = &mut self.tracking;
        tracking.backend_store_uri = Some(match tracking.backend_store_uri.take() {
            Some(uri) => match uri.strip_prefix("sqlite:///") {
                Some(path) if !path.starts_with('/') => {
                    format!("sqlite:///{}", absolute(path))
                }
                _ => uri,
            },
            None => format!("sqlite:///{}", dir.join("mlruns.db").display()),
        });
        tracking.artifacts_destination = Some(match tracking.artifacts_destination.take() {
            Some(dest) => absolute(&dest),
            None => dir.join("mlartifacts").display().to_string(),
        });
        for serving in &mut self.serving {
            serving.repository = serving.repository.as_deref().map(absolute);
        }
        if let Some(gateway) = &mut self.gateway {
            gateway.config_path = absolute(&gateway.config_path);
        }
        if let Some(notebooks) = &mut self.notebooks {
            notebooks.root_dir = Some(match notebooks.root_dir.take() {
                Some(root) => absolute(&root),
                None => dir.join("notebooks").display().to_string(),
            });
            if notebooks.kind == NotebookKind::Hub {
                notebooks.hub_api_port = Some(notebooks.hub_api_port());
                notebooks.proxy_api_port = Some(notebooks.proxy_api_port());
            }
            // A bare command name is looked up on PATH; a path is taken from `dir`.
            let program = |p: &str| {
                if p.contains('/') {
                    absolute(p)
                } else {
                    p.to_string()
                }
            };
            notebooks.python = notebooks.python.as_deref().map(program);
            notebooks.proxy = notebooks.proxy.as_deref().map(program);
        }
        self
    }

    pub fn to_yaml(&self) -> anyhow::Result<String> {
        serde_saphyr::to_string(self).map_err(|e| anyhow::anyhow!("{e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_or_missing_file_is_the_defaults() {
        assert_eq!(
            PlatformConfig::parse("").unwrap(),
            PlatformConfig::default()
        );
        let dir = tempfile::tempdir().unwrap();
        let config = PlatformConfig::load(dir.path()).unwrap();
        assert_eq!(config.tracking.port, 5000);
        assert!(config.serving.is_empty() && config.gateway.is_none());
    }

    #[test]
    fn defaults_are_written_out_with_absolute_paths() {
        let config = PlatformConfig::parse(
            "tracking:\n  backend_store_uri: sqlite:///db/mlox.db\nnotebooks: {}\n\
             gateway:\n  config_path: gateway.yaml\n",
        )
        .unwrap()
        .effective(Path::new("/srv/platform"));
        assert_eq!(
            config.tracking.backend_store_uri.as_deref(),
            Some("sqlite:////srv/platform/db/mlox.db")
        );
        assert_eq!(
            config.tracking.artifacts_destination.as_deref(),
            Some("/srv/platform/mlartifacts")
        );
        assert_eq!(
            config.gateway.unwrap().config_path,
            "/srv/platform/gateway.yaml"
        );
        let notebooks = config.notebooks.unwrap();
        assert_eq!(
            (notebooks.port, notebooks.root_dir.as_deref()),
            (8888, Some("/srv/platform/notebooks"))
        );
    }

    #[test]
    fn remote_stores_are_kept_as_written() {
        let config = PlatformConfig::parse(
            "tracking:\n  backend_store_uri: postgresql://mlox@db:5432/mlox\n  \
             artifacts_destination: s3://bucket/artifacts\n",
        )
        .unwrap()
        .effective(Path::new("/srv"));
        assert_eq!(
            config.tracking.backend_store_uri.as_deref(),
            Some("postgresql://mlox@db:5432/mlox")
        );
        assert_eq!(
            config.tracking.artifacts_destination.as_deref(),
            Some("s3://bucket/artifacts")
        );
    }

    #[test]
    fn mistakes_are_refused_with_what_is_wrong() {
        let typo = PlatformConfig::parse("trackng:\n  port: 1\n").unwrap_err();
        assert!(typo.to_string().contains("trackng"), "{typo}");
        let clash =
            PlatformConfig::parse("gateway:\n  config_path: g.yaml\n  port: 5000\n").unwrap_err();
        assert!(clash.to_string().contains("port 5000"), "{clash}");
        let neither = PlatformConfig::parse("serving:\n  - name: m\n    port: 8080\n").unwrap_err();
        assert!(neither.to_string().contains("exactly one"), "{neither}");
        let twice = PlatformConfig::parse(
            "serving:\n  - {name: m, port: 8080, model_uri: 'models:/a/1'}\n  \
             - {name: m, port: 8081, model_uri: 'models:/b/1'}\n",
        )
        .unwrap_err();
        assert!(twice.to_string().contains("named 'm'"), "{twice}");
        let open_hub = PlatformConfig::parse("notebooks:\n  kind: hub\n").unwrap_err();
        assert!(open_hub.to_string().contains("tracking.auth"), "{open_hub}");
        let hub_clash = PlatformConfig::parse(
            "tracking: {auth: true, port: 8889}\nnotebooks: {kind: hub, port: 8888}\n",
        )
        .unwrap_err();
        assert!(hub_clash.to_string().contains("port 8889"), "{hub_clash}");
    }

    #[test]
    fn the_effective_config_reads_back_as_itself() {
        let config = PlatformConfig::parse(
            "serving:\n  - {name: wine, port: 8080, grpc_port: 8081, model_uri: 'models:/wine@champion'}\n",
        )
        .unwrap()
        .effective(Path::new("/srv"));
        let yaml = config.to_yaml().unwrap();
        assert_eq!(PlatformConfig::parse(&yaml).unwrap(), config);
    }
}
