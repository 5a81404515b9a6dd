//! The auth configuration MLflow's basic-auth app reads: an ini file (`MLFLOW_AUTH_CONFIG_PATH`)
//! whose `[mlflow]` section names the default permission, the auth database and the first
//! administrator, with `MLFLOW_AUTH_ADMIN_USERNAME` / `MLFLOW_AUTH_ADMIN_PASSWORD` winning over
//! the file.

use mlox_core::auth::{Permission, validate_password};
use mlox_core::{Error, Result};

/// The only authorization function mlox runs: MLflow's own basic-auth check (tokens are
/// accepted besides). A custom Python function cannot run inside mlox, and silently ignoring
/// one would authenticate differently from what the operator configured.
const BASIC_AUTH_FUNCTION: &str = "mlflow.server.auth:authenticate_request_basic_auth";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthConfig {
    /// What a user may do on a resource no grant of theirs names.
    pub default_permission: Permission,
    /// Where users and grants live; `None` keeps them in the tracking database.
    pub database_uri: Option<String>,
    pub admin_username: String,
    /// The first administrator's password; required while the user store is empty.
    pub admin_password: Option<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            default_permission: Permission::Read,
            database_uri: None,
            admin_username: "admin".to_string(),
            admin_password: None,
        }
    }
}

impl AuthConfig {
    /// The configuration from the file `MLFLOW_AUTH_CONFIG_PATH` names (if any) and the
    /// environment.
    pub fn from_environment() -> Result<AuthConfig> {
        let mut config = match std::env::var("MLFLOW_AUTH_CONFIG_PATH") {
            Ok(path) if !path.is_empty() => {
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    Error::invalid(format!("cannot read the auth configuration {path}: {e}"))
                })?;
                AuthConfig::parse_ini(&text)?
            }
            _ => AuthConfig::default(),
        };
        if let Ok(username) = std::env::var("MLFLOW_AUTH_ADMIN_USERNAME") {
            config.admin_username = username;
        }
        if let Ok(password) = std::env::var("MLFLOW_AUTH_ADMIN_PASSWORD") {
            config.admin_password = Some(password);
        }
        Ok(config)
    }

    /// Reads the `[mlflow]` section of an auth ini file.
    pub fn parse_ini(text: &str) -> Result<AuthConfig> {
        let mut config = AuthConfig::default();
        let mut in_section = false;
        for (number, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                in_section = section.trim() == "mlflow";
                continue;
            }
            if !in_section {
                continue;
            }
            let Some((key, value)) = line.split_once(['=', ':']) else {
                return Err(Error::invalid(format!(
                    "auth configuration line {}: expected 'key = value', got '{line}'",
                    number + 1
                )));
            };
            let value = value.trim();
            match key.trim() {
                "default_permission" => {
                    config.default_permission = Permission::parse(value)?;
                }
                "database_uri" => {
                    config.database_uri = (!value.is_empty()).then(|| value.to_string());
                }
                "admin_username" => config.admin_username = value.to_string(),
                "admin_password" => {
                    config.admin_password = (!value.is_empty()).then(|| value.to_string());
                }
                "authorization_function" if value != BASIC_AUTH_FUNCTION => {
                    return Err(Error::invalid(format!(
                        "authorization_function '{value}' is a Python function; mlox \
                         authenticates with basic auth and personal access tokens only \
                         (leave the key out or set it to {BASIC_AUTH_FUNCTION})."
                    )));
                }
                // Keys of features mlox does not have (workspaces, caches tuned for Flask) are
                // accepted so one file serves both servers.
                _ => {}
            }
        }
        Ok(config)
    }

    /// The bootstrap password, checked: empty and short passwords are refused, there is no
    /// default one.
    pub fn checked_admin_password(&self) -> Result<Option<&str>> {
        match self.admin_password.as_deref() {
            None => Ok(None),
            Some(password) => {
                validate_password(password).map_err(|e| {
                    Error::invalid(format!(
                        "MLFLOW_AUTH_ADMIN_PASSWORD / admin_password: {}",
                        e.message
                    ))
                })?;
                Ok(Some(password))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mlflows_ini_keys() {
        let config = AuthConfig::parse_ini(
            "[mlflow]\n\
             default_permission = NO_PERMISSIONS\n\
             database_uri = sqlite:////tmp/x/basic_auth.db\n\
             admin_username = root\n\
             admin_password = a-long-password\n\
             authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n\
             grant_default_workspace_access = false\n",
        );
        assert_eq!(
            config.ok(),
            Some(AuthConfig {
                default_permission: Permission::NoPermissions,
                database_uri: Some("sqlite:////tmp/x/basic_auth.db".to_string()),
                admin_username: "root".to_string(),
                admin_password: Some("a-long-password".to_string()),
            })
        );
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        assert!(AuthConfig::parse_ini("[mlflow]\ndefault_permission = WRITE\n").is_err());
        assert!(
            AuthConfig::parse_ini("[mlflow]\nauthorization_function = my.module:check\n").is_err()
        );
        let short = AuthConfig {
            admin_password: Some("password1234"[..8].to_string()),
            ..AuthConfig::default()
        };
        assert!(short.checked_admin_password().is_err());
    }

    #[test]
    fn other_sections_are_ignored() {
        let config = AuthConfig::parse_ini("[other]\ndefault_permission = BOGUS\n");
        assert_eq!(config.ok(), Some(AuthConfig::default()));
    }
}
