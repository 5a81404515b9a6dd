//! Checking who a request comes from. Passwords are stored as argon2id hashes, which cost tens
//! of milliseconds to check on purpose; a credential that verified is then remembered for a
//! short while as a keyed digest, so the requests that follow cost a hash table lookup, not an
//! argon2 run. Consecutive failed sign-ins lock one username out for a cool-down, whatever
//! password comes next. Personal access tokens are random and long, so a plain SHA-256 of the
//! token is what is stored and looked up.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine;
use mlox_core::auth::User;
use mlox_core::{Error, Result};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a verified password is trusted without a new argon2 check. Changes made through
/// this server take effect at once; those made through another replica within this time.
const VERIFIED_FOR: Duration = Duration::from_secs(60);
/// Consecutive failures after which a username is locked.
pub const MAX_FAILURES: u32 = 20;
/// How long a locked username stays locked.
pub const LOCKOUT: Duration = Duration::from_secs(60);
/// Bound on the usernames whose failures are counted, so guessing names cannot grow memory.
const MAX_TRACKED: usize = 100_000;

pub fn hash_password(password: &str) -> Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| Error::internal(format!("cannot hash the password: {e}")))
}

pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|hash| {
            Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A new personal access token: its secret (shown once) and the digest that is stored.
pub fn new_token() -> (String, String) {
    let mut bytes = Vec::with_capacity(32);
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    let secret = format!(
        "mlox_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes)
    );
    let digest = token_digest(&secret);
    (secret, digest)
}

pub fn token_digest(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a sign-in attempt may do right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// Locked; retry after this many seconds.
    Locked(u64),
}

struct Verified {
    digest: [u8; 32],
    user: User,
    at: Instant,
}

struct Failures {
    count: u32,
    locked_until: Option<Instant>,
}

/// Remembered verifications and counted failures, per server process.
pub struct CredentialCache {
    /// A per-process key, so remembered digests are worthless outside this process.
    key: [u8; 16],
    verified: Mutex<HashMap<String, Verified>>,
    failures: Mutex<HashMap<String, Failures>>,
}

impl Default for CredentialCache {
    fn default() -> Self {
        CredentialCache {
            key: *uuid::Uuid::new_v4().as_bytes(),
            verified: Mutex::default(),
            failures: Mutex::default(),
        }
    }
}

impl CredentialCache {
    fn digest(&self, username: &str, password: &str) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(self.key);
        hasher.update((username.len() as u64).to_le_bytes());
        hasher.update(username.as_bytes());
        hasher.update(password.as_bytes());
        hasher.finalize().into()
    }

    /// The user, if this exact credential verified recently.
    pub fn remembered(&self, username: &str, password: &str) -> Option<User> {
        let digest = self.digest(username, password);
        let verified = self.verified.lock().ok()?;
        let entry = verified.get(username)?;
        (entry.digest == digest && entry.at.elapsed() < VERIFIED_FOR).then(|| entry.user.clone())
    }

    pub fn remember(&self, username: &str, password: &str, user: User) {
        let digest = self.digest(username, password);
        if let Ok(mut verified) = self.verified.lock() {
            if verified.len() >= MAX_TRACKED {
                verified.retain(|_, v| v.at.elapsed() < VERIFIED_FOR);
            }
            verified.insert(
                username.to_string(),
                Verified {
                    digest,
                    user,
                    at: Instant::now(),
                },
            );
        }
    }

    /// Forgets a user's verified credential (password, admin flag or the user changed).
    pub fn forget(&self, username: &str) {
        if let Ok(mut verified) = self.verified.lock() {
            verified.remove(username);
        }
    }

    pub fn gate(&self, username: &str) -> Gate {
        let Ok(failures) = self.failures.lock() else {
            return Gate::Open;
        };
        match failures.get(username).and_then(|f| f.locked_until) {
            Some(until) if until > Instant::now() => {
                Gate::Locked((until - Instant::now()).as_secs().max(1))
            }
            _ => Gate::Open,
        }
    }

    pub fn record_failure(&self, username: &str) {
        let Ok(mut failures) = self.failures.lock() else {
            return;
        };
        if failures.len() >= MAX_TRACKED && !failures.contains_key(username) {
            let now = Instant::now();
            failures.retain(|_, f| f.locked_until.is_some_and(|until| until > now));
        }
        let entry = failures.entry(username.to_string()).or_insert(Failures {
            count: 0,
            locked_until: None,
        });
        if entry
            .locked_until
            .is_some_and(|until| until <= Instant::now())
        {
            // The cool-down is over: the next failures count afresh.
            entry.count = 0;
            entry.locked_until = None;
        }
        entry.count += 1;
        if entry.count >= MAX_FAILURES {
            entry.locked_until = Some(Instant::now() + LOCKOUT);
        }
    }

    pub fn record_success(&self, username: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(username);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> User {
        User {
            id: 1,
            username: "alice".to_string(),
            is_admin: false,
        }
    }

    #[test]
    fn a_hash_verifies_its_password_only() {
        let hash = hash_password("correct horse battery").unwrap_or_default();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse batterY", &hash));
        assert!(!verify_password("anything", "not a hash"));
    }

    #[test]
    fn a_remembered_credential_is_the_exact_one() {
        let cache = CredentialCache::default();
        cache.remember("alice", "pw-one-123456", alice());
        assert_eq!(cache.remembered("alice", "pw-one-123456"), Some(alice()));
        assert_eq!(cache.remembered("alice", "pw-two-123456"), None);
        assert_eq!(cache.remembered("bob", "pw-one-123456"), None);
        cache.forget("alice");
        assert_eq!(cache.remembered("alice", "pw-one-123456"), None);
    }

    #[test]
    fn twenty_failures_lock_one_username() {
        let cache = CredentialCache::default();
        for _ in 0..MAX_FAILURES - 1 {
            cache.record_failure("alice");
        }
        assert_eq!(cache.gate("alice"), Gate::Open);
        cache.record_failure("alice");
        assert!(matches!(cache.gate("alice"), Gate::Locked(s) if s >= 1 && s <= LOCKOUT.as_secs()));
        assert_eq!(cache.gate("bob"), Gate::Open);
    }

    #[test]
    fn tokens_are_long_random_and_digested() {
        let (a, digest_a) = new_token();
        let (b, _) = new_token();
        assert_ne!(a, b);
        assert!(a.len() > 40);
        assert_eq!(token_digest(&a), digest_a);
        assert_eq!(digest_a.len(), 64);
    }
}
