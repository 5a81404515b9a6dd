//! Authentication and authorization for `mlox server --app-name basic-auth`: who a request
//! comes from (HTTP basic credentials or a personal access token), whether the permission
//! rules of `mlox_core::auth` let them do what they ask, and the REST API MLflow's
//! `AuthServiceClient` speaks to manage users, roles, grants and tokens. Everything is one
//! axum layer around the tracking router ([`protect`]); the tracking handlers know nothing of
//! users except the author recorded on new runs, which this layer writes into the request.
//! Users and grants are kept by mlox-store's `AuthStore`; this crate owns the credentials
//! (argon2id hashes, token digests, the verified-credential cache and the lockout).

pub mod api;
pub mod config;
pub mod credentials;
mod guard;
pub mod remote;
pub mod session;

pub use guard::ViaSession;

pub use config::AuthConfig;

use axum::Router;
use mlox_core::auth::{DEFAULT_WORKSPACE, Grant, Permission, ResourceType, User, fold_grants};
use mlox_core::{Error, Result};
use mlox_store::SqlStore;
use mlox_store::auth::{AuthStore, OwnedBy};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a user's grants are reused between requests. Grants changed through this server
/// take effect at once; through another replica, within this time.
const GRANTS_FOR: Duration = Duration::from_secs(5);
/// Bound on remembered resource owners; the map is cleared when it is reached.
const MAX_OWNERS: usize = 200_000;
/// How long a token lookup is reused; a revocation through another replica takes this long.
const TOKENS_FOR: Duration = Duration::from_secs(30);

/// A user's grants as read at an instant.
type CachedGrants = (Instant, Arc<Vec<Grant>>);
/// A token's user and expiry (epoch milliseconds) as read at an instant.
type CachedToken = (Instant, User, Option<i64>);

/// The signed-in user of a request, for handlers behind the layer.
#[derive(Clone, Debug)]
pub struct Caller(pub User);

/// The auth state every request of a protected server shares.
pub struct Auth {
    pub config: AuthConfig,
    pub users: AuthStore,
    pub tracking: SqlStore,
    pub credentials: credentials::CredentialCache,
    grants: Mutex<HashMap<i64, CachedGrants>>,
    /// Token digests seen recently, with their user and expiry.
    tokens: Mutex<HashMap<String, CachedToken>>,
    /// A hash of no one's password, checked when a username is unknown.
    pub(crate) decoy_hash: String,
    /// Which experiment a run, logged model or trace belongs to never changes.
    owners: Mutex<HashMap<(u8, String), String>>,
}

impl Auth {
    /// Opens the user store (the tracking database unless `database_uri` names another) and
    /// creates the first administrator if there is none.
    pub async fn start(config: AuthConfig, tracking: SqlStore) -> Result<Arc<Auth>> {
        let users = match &config.database_uri {
            Some(uri) => AuthStore::open(uri).await?,
            None => AuthStore::in_tracking_store(&tracking).await?,
        };
        let auth = Arc::new(Auth {
            config,
            users,
            tracking,
            credentials: Default::default(),
            grants: Mutex::default(),
            tokens: Mutex::default(),
            decoy_hash: hash_blocking(uuid::Uuid::new_v4().to_string()).await?,
            owners: Mutex::default(),
        });
        auth.bootstrap_admin().await?;
        Ok(auth)
    }

    async fn bootstrap_admin(&self) -> Result<()> {
        let username = self.config.admin_username.clone();
        if self.users.user(&username).await?.is_some() {
            return Ok(());
        }
        match self.config.checked_admin_password()? {
            Some(password) => {
                let hash = hash_blocking(password.to_string()).await?;
                match self.users.create_user(&username, &hash, true).await {
                    Ok(_) => tracing::info!(username, "created the first administrator"),
                    // Another replica created it first.
                    Err(e) if e.code == mlox_core::Code::ResourceAlreadyExists => {}
                    Err(e) => return Err(e),
                }
                Ok(())
            }
            None if self.users.user_count().await? == 0 => Err(Error::invalid(format!(
                "Auth is on and there is no user yet: set MLFLOW_AUTH_ADMIN_PASSWORD (at least \
                 {} characters) to create the administrator '{username}'. There is no default \
                 password.",
                mlox_core::auth::MIN_PASSWORD_LENGTH
            ))),
            None => Ok(()),
        }
    }

    /// The user's grants in the default workspace, reused for a few seconds.
    /// Prompt grants are folded as the registered-model grants they are about (see
    /// `checked_type`).
    pub async fn grants_of(&self, user_id: i64) -> Result<Arc<Vec<Grant>>> {
        if let Ok(cache) = self.grants.lock()
            && let Some((at, grants)) = cache.get(&user_id)
            && at.elapsed() < GRANTS_FOR
        {
            return Ok(grants.clone());
        }
        let mut grants = self.users.grants(user_id, DEFAULT_WORKSPACE).await?;
        for grant in &mut grants {
            grant.resource_type = checked_type(grant.resource_type);
        }
        let grants = Arc::new(grants);
        if let Ok(mut cache) = self.grants.lock() {
            cache.insert(user_id, (Instant::now(), grants.clone()));
        }
        Ok(grants)
    }

    /// The user a personal access token belongs to, if it is valid and unexpired.
    pub async fn token_user(&self, secret: &str) -> Result<Option<User>> {
        let digest = credentials::token_digest(secret);
        let now = mlox_store::now_ms();
        let cached = self.tokens.lock().ok().and_then(|tokens| {
            tokens
                .get(&digest)
                .filter(|(at, _, _)| at.elapsed() < TOKENS_FOR)
                .map(|(_, user, expires)| (user.clone(), *expires))
        });
        let (user, expires) = match cached {
            Some(found) => found,
            None => match self.users.token(&digest).await? {
                Some((info, user)) => {
                    if let Ok(mut tokens) = self.tokens.lock() {
                        if tokens.len() >= MAX_OWNERS {
                            tokens.clear();
                        }
                        tokens.insert(digest, (Instant::now(), user.clone(), info.expires_at));
                    }
                    (user, info.expires_at)
                }
                None => return Ok(None),
            },
        };
        Ok(expires.is_none_or(|at| at > now).then_some(user))
    }

    /// Forgets what was remembered of a user after a change made through this server: their
    /// verified password, their tokens' owner records, their grants.
    pub fn user_changed(&self, username: &str) {
        self.credentials.forget(username);
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.clear();
        }
        self.grants_changed();
    }

    /// Forgets cached grants after a change made through this server.
    pub fn grants_changed(&self) {
        if let Ok(mut cache) = self.grants.lock() {
            cache.clear();
        }
    }

    /// The user's permission on one resource: their grants folded, else the default.
    pub async fn permission(
        &self,
        user: &User,
        resource_type: ResourceType,
        key: &str,
    ) -> Result<Permission> {
        if user.is_admin {
            return Ok(Permission::Manage);
        }
        let grants = self.grants_of(user.id).await?;
        Ok(fold_grants(grants.iter(), checked_type(resource_type), key)
            .unwrap_or(self.config.default_permission))
    }

    /// The experiment a run, logged model or trace belongs to (`None`: no such resource).
    pub async fn owning_experiment(&self, kind: OwnedBy, id: &str) -> Result<Option<String>> {
        let key = (kind as u8, id.to_string());
        if let Ok(owners) = self.owners.lock()
            && let Some(experiment) = owners.get(&key)
        {
            return Ok(Some(experiment.clone()));
        }
        let found = self.tracking.owning_experiment(kind, id).await?;
        // Names can be reused after a rename; only immutable ownerships are remembered.
        if let Some(experiment) = &found
            && kind != OwnedBy::ExperimentName
            && let Ok(mut owners) = self.owners.lock()
        {
            if owners.len() >= MAX_OWNERS {
                owners.clear();
            }
            owners.insert(key, experiment.clone());
        }
        Ok(found)
    }
}

/// The type a grant or a check is folded under. Prompts are registered models (tagged as
/// prompts) in one namespace of names, so a grant on the prompt and one on the registered model
/// of a name are about one thing.
pub(crate) fn checked_type(resource_type: ResourceType) -> ResourceType {
    match resource_type {
        ResourceType::Prompt => ResourceType::RegisteredModel,
        other => other,
    }
}

pub(crate) async fn hash_blocking(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || credentials::hash_password(&password))
        .await
        .map_err(|e| Error::internal(format!("password hashing stopped: {e}")))?
}

/// The tracking router with the auth API added and every route behind the auth layer.
pub fn protect(tracking: Router, auth: Arc<Auth>) -> Router {
    tracking
        .merge(api::router(auth.clone()))
        .merge(session::router(auth.clone()))
        .layer(axum::middleware::from_fn_with_state(auth, guard::guard))
}
