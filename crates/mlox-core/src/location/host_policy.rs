//! [`HostPolicy`]: which hosts a client may name in a location it asks the server to store.
//!
//! MLflow's artifact repositories for `http(s)`, `mlflow-artifacts://host`, `ftp`, `sftp`,
//! `hdfs`, `viewfs`, `r2`, `b2` and `abfss` connect to the host the URI names, so a stored
//! source or artifact location could make a server (or every client that later downloads it)
//! connect to a cloud metadata service or an internal host (CVE-2023-6974,
//! GHSA-mr9f-g8qf-4w4j). MLflow 3.17 therefore refuses such URIs unless they target the host of
//! the server's own artifact root or destination, or the operator allows the scheme with
//! `MLFLOW_ALLOWED_HOST_ADDRESSED_ARTIFACT_SCHEMES`; mlox applies the same rule where a client
//! hands the server a location: a model version's `source` and an experiment's
//! `artifact_location`.

use crate::{Error, Result};

/// The environment variable that allows host-addressed schemes, comma-separated (MLflow's).
pub const ALLOWED_SCHEMES_ENV: &str = "MLFLOW_ALLOWED_HOST_ADDRESSED_ARTIFACT_SCHEMES";

/// Schemes whose repositories connect to the host in the URI.
const HOST_ADDRESSED_SCHEMES: [&str; 10] = [
    "ftp",
    "sftp",
    "hdfs",
    "viewfs",
    "http",
    "https",
    "mlflow-artifacts",
    "r2",
    "b2",
    "abfss",
];

/// What a URI connects to: scheme family, lower-case host name, port (`None` when only the
/// client's configuration knows it).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    family: &'static str,
    host: String,
    port: Option<u16>,
}

/// The rule, built once from the server's configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostPolicy {
    trusted: Vec<Target>,
    allowed_schemes: Vec<String>,
}

/// `Some(targets)` for a host-addressed URI (one per port it may use), `Err(())` for one whose
/// authority cannot be read the way a client would read it, `None` for any other URI.
fn targets(uri: &str) -> Option<std::result::Result<Vec<Target>, ()>> {
    let (scheme, rest) = uri.split_once(':')?;
    let scheme = scheme.to_ascii_lowercase();
    let scheme = HOST_ADDRESSED_SCHEMES.iter().find(|s| **s == scheme)?;
    let authority = match rest.strip_prefix("//") {
        Some(after) => after.split(['/', '?', '#']).next().unwrap_or_default(),
        None => "",
    };
    if *scheme == "mlflow-artifacts" && authority.is_empty() {
        // `mlflow-artifacts:/path` is this server's own proxy.
        return None;
    }
    // An HTTP client ends the authority at a backslash where a URI parser does not, so the
    // host read here would not be the one contacted: never trusted.
    if authority.contains('\\') || authority.chars().any(char::is_whitespace) {
        return Some(Err(()));
    }
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let (host, port) = match host_port.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((address, "")) => (address, None),
            Some((address, port)) => match port.strip_prefix(':') {
                Some(port) => (address, Some(port)),
                None => return Some(Err(())),
            },
            None => return Some(Err(())),
        },
        None => match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
    };
    let port = match port {
        None | Some("") => None,
        Some(text) => match text.parse::<u16>() {
            Ok(port) => Some(port),
            Err(_) => return Some(Err(())),
        },
    };
    let family = match *scheme {
        "viewfs" => "hdfs",
        "https" | "mlflow-artifacts" => "http",
        other => other,
    };
    let default_ports: &[u16] = match *scheme {
        "ftp" => &[21],
        "sftp" => &[22],
        "http" => &[80],
        "https" | "r2" | "b2" | "abfss" => &[443],
        // A port-less `mlflow-artifacts://host` uses whichever the client's transport uses.
        "mlflow-artifacts" => &[80, 443],
        _ => &[],
    };
    let host = host.to_ascii_lowercase();
    let targets = match (port, default_ports) {
        (Some(port), _) => vec![Some(port)],
        (None, []) => vec![None],
        (None, ports) => ports.iter().copied().map(Some).collect(),
    }
    .into_iter()
    .map(|port| Target {
        family,
        host: host.clone(),
        port,
    })
    .collect();
    Some(Ok(targets))
}

impl HostPolicy {
    /// The policy of a server whose own artifact locations are `server_locations` (default
    /// artifact root, artifacts destination), with `allowed_schemes` (the environment
    /// variable's comma-separated value) let through.
    pub fn new(server_locations: &[&str], allowed_schemes: Option<&str>) -> HostPolicy {
        HostPolicy {
            trusted: server_locations
                .iter()
                .filter_map(|uri| targets(uri)?.ok())
                .flatten()
                .collect(),
            allowed_schemes: allowed_schemes
                .unwrap_or("")
                .split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect(),
        }
    }

    /// Refuses `uri`, given in the request field `field`, when it would make a client of the
    /// stored location connect to a host other than the server's artifact storage.
    pub fn check(&self, field: &str, uri: &str) -> Result<()> {
        let Some(found) = targets(uri) else {
            return Ok(());
        };
        let scheme = uri
            .split_once(':')
            .map(|(s, _)| s.to_ascii_lowercase())
            .unwrap_or_default();
        if self.allowed_schemes.contains(&scheme) {
            return Ok(());
        }
        if let Ok(found) = found
            && found.iter().any(|t| self.trusted.contains(t))
        {
            return Ok(());
        }
        Err(Error::invalid(format!(
            "'{field}' cannot use the '{scheme}' scheme: the '{scheme}' scheme addresses a host \
             other than the tracking server's configured artifact storage, so the server would \
             connect to the host named in the URI. Set the {ALLOWED_SCHEMES_ENV} environment \
             variable on the server to allow it."
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_other_than_the_servers_storage_are_refused() {
        let default = HostPolicy::new(&["mlflow-artifacts:", "/srv/mlartifacts"], None);
        let table = [
            ("http://169.254.169.254/latest/meta-data/", false),
            ("https://internal.example/x", false),
            ("HTTP://169.254.169.254/", false),
            ("mlflow-artifacts://other-host:5000/x", false),
            ("ftp://files.example/x", false),
            ("sftp://u@files.example/x", false),
            ("hdfs://namenode:8020/x", false),
            ("abfss://fs@account.dfs.core.windows.net/x", false),
            ("http://h\\@169.254.169.254/", false),
            ("http://h:notaport/", false),
            ("mlflow-artifacts:/1/abc/artifacts", true),
            ("mlflow-artifacts:///1/abc/artifacts", true),
            ("s3://bucket/key", true),
            ("gs://bucket/key", true),
            ("runs:/abc/model", true),
            ("models:/m-123", true),
            ("/abs/path", true),
            ("file:///abs/path", true),
            ("dummy-source", true),
        ];
        for (uri, accepted) in table {
            assert_eq!(default.check("source", uri).is_ok(), accepted, "{uri}");
        }
        let message = default
            .check("source", "http://169.254.169.254/")
            .unwrap_err()
            .message;
        assert!(
            message.starts_with("'source' cannot use the 'http' scheme:"),
            "{message}"
        );
        assert!(message.contains(ALLOWED_SCHEMES_ENV));
    }

    #[test]
    fn the_servers_own_host_and_allowed_schemes_pass() {
        let own = HostPolicy::new(
            &[
                "http://mlox.internal:5000/api/2.0/mlflow-artifacts/artifacts",
                "./mlartifacts",
            ],
            None,
        );
        let table = [
            (
                "http://mlox.internal:5000/api/2.0/mlflow-artifacts/artifacts/1/r/artifacts",
                true,
            ),
            ("https://MLOX.internal:5000/x", true),
            ("mlflow-artifacts://mlox.internal:5000/x", true),
            ("http://mlox.internal/x", false),
            ("http://mlox.internal:5001/x", false),
            ("http://other:5000/x", false),
        ];
        for (uri, accepted) in table {
            assert_eq!(own.check("source", uri).is_ok(), accepted, "{uri}");
        }
        let allowed = HostPolicy::new(&[], Some(" HTTPS, ftp "));
        assert!(
            allowed
                .check("artifact_location", "https://anywhere.example/x")
                .is_ok()
        );
        assert!(
            allowed
                .check("artifact_location", "ftp://files.example/x")
                .is_ok()
        );
        assert!(
            allowed
                .check("artifact_location", "http://anywhere.example/x")
                .is_err()
        );
    }
}
