//! Secrets at rest: webhook signing secrets and the AI gateway's provider credentials. A secret is sealed before it is stored, with envelope
//! encryption as MLflow keeps its gateway secrets: a fresh data key per secret encrypts it
//! (AES-256-GCM), and the key-encryption key, derived from `MLFLOW_CRYPTO_KEK_PASSPHRASE` with
//! PBKDF2-HMAC-SHA256 (600,000 rounds), wraps the data key. A copy of the database therefore
//! holds no usable secret without the passphrase. Values stored before sealing existed (no
//! prefix) are read as they are.

use base64::Engine;
use mlox_core::{Error, Result};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use std::num::NonZeroU32;
use std::sync::OnceLock;

const PASSPHRASE_VAR: &str = "MLFLOW_CRYPTO_KEK_PASSPHRASE";
/// What MLflow falls back to, with a warning, when no passphrase is set: development only.
const DEVELOPMENT_PASSPHRASE: &str = "mlflow-default-kek-passphrase-for-development-only";
const PBKDF2_ROUNDS: u32 = 600_000;
/// Folded into the key derivation, so another purpose's key never equals this one.
const KEK_SALT: &[u8] = b"mlox-webhook-secrets-kek-v1";
const SEALED_PREFIX: &str = "mlox-sealed:v1:";
/// What a secret is for. Each ciphertext is bound to its purpose: a sealed webhook secret
/// opens as nothing else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    WebhookSecret,
    GatewaySecret,
}

impl Purpose {
    fn aad(self) -> &'static [u8] {
        match self {
            Purpose::WebhookSecret => b"mlox webhook secret",
            Purpose::GatewaySecret => b"mlox gateway secret",
        }
    }
}

/// Seals and opens secrets with the process's key-encryption key.
pub struct SecretBox {
    passphrase: String,
    development: bool,
    kek: OnceLock<[u8; 32]>,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox { .. }")
    }
}

/// The box every part of the process uses, keyed by `MLFLOW_CRYPTO_KEK_PASSPHRASE`.
pub fn secrets() -> &'static SecretBox {
    static BOX: OnceLock<SecretBox> = OnceLock::new();
    BOX.get_or_init(|| match std::env::var(PASSPHRASE_VAR) {
        Ok(passphrase) if !passphrase.is_empty() => SecretBox::new(&passphrase),
        _ => {
            tracing::warn!(
                "{PASSPHRASE_VAR} is not set: webhook and gateway secrets are sealed with \
                 MLflow's development passphrase. Set it to a long random value in production \
                 (the same on every replica)."
            );
            SecretBox {
                development: true,
                ..SecretBox::new(DEVELOPMENT_PASSPHRASE)
            }
        }
    })
}

impl SecretBox {
    pub fn new(passphrase: &str) -> SecretBox {
        SecretBox {
            passphrase: passphrase.to_string(),
            development: false,
            kek: OnceLock::new(),
        }
    }

    /// Whether no passphrase was set and MLflow's development one is in use.
    pub fn uses_development_passphrase(&self) -> bool {
        self.development
    }

    /// A webhook secret sealed (see [`SecretBox::seal_as`]).
    pub fn seal(&self, secret: &str) -> Result<String> {
        self.seal_as(Purpose::WebhookSecret, secret)
    }

    /// A stored webhook secret opened (see [`SecretBox::open_as`]).
    pub fn open(&self, stored: &str) -> Result<String> {
        self.open_as(Purpose::WebhookSecret, stored)
    }

    /// Derived on first use: 600,000 rounds are felt once, by the first webhook with a secret.
    fn kek(&self) -> &[u8; 32] {
        self.kek.get_or_init(|| {
            let mut kek = [0u8; 32];
            let rounds = NonZeroU32::new(PBKDF2_ROUNDS).unwrap_or(NonZeroU32::MIN);
            ring::pbkdf2::derive(
                ring::pbkdf2::PBKDF2_HMAC_SHA256,
                rounds,
                KEK_SALT,
                self.passphrase.as_bytes(),
                &mut kek,
            );
            kek
        })
    }

    /// `mlox-sealed:v1:<wrapped data key>:<sealed secret>`, each part nonce ‖ ciphertext ‖ tag
    /// in URL-safe base64.
    pub fn seal_as(&self, purpose: Purpose, secret: &str) -> Result<String> {
        let rng = SystemRandom::new();
        let mut data_key = [0u8; 32];
        rng.fill(&mut data_key)
            .map_err(|_| Error::internal("no randomness for a data key"))?;
        let wrapped = encrypt(self.kek(), &data_key, purpose, &rng)?;
        let sealed = encrypt(&data_key, secret.as_bytes(), purpose, &rng)?;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        Ok(format!(
            "{SEALED_PREFIX}{}:{}",
            b64.encode(wrapped),
            b64.encode(sealed)
        ))
    }

    /// The secret a stored value holds; unsealed values (stored before sealing) as they are.
    pub fn open_as(&self, purpose: Purpose, stored: &str) -> Result<String> {
        let Some(rest) = stored.strip_prefix(SEALED_PREFIX) else {
            return Ok(stored.to_string());
        };
        let unreadable = || {
            Error::invalid_state(
                "A stored secret cannot be opened: MLFLOW_CRYPTO_KEK_PASSPHRASE differs from \
                 the one it was sealed with.",
            )
        };
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (wrapped, sealed) = rest.split_once(':').ok_or_else(unreadable)?;
        let wrapped = b64.decode(wrapped).map_err(|_| unreadable())?;
        let sealed = b64.decode(sealed).map_err(|_| unreadable())?;
        let data_key = decrypt(self.kek(), &wrapped, purpose).ok_or_else(unreadable)?;
        let key: [u8; 32] = data_key.try_into().map_err(|_| unreadable())?;
        let secret = decrypt(&key, &sealed, purpose).ok_or_else(unreadable)?;
        String::from_utf8(secret).map_err(|_| unreadable())
    }
}

fn cipher(key: &[u8; 32]) -> Result<LessSafeKey> {
    UnboundKey::new(&AES_256_GCM, key)
        .map(LessSafeKey::new)
        .map_err(|_| Error::internal("cannot make an AES-256-GCM key"))
}

fn encrypt(
    key: &[u8; 32],
    plaintext: &[u8],
    purpose: Purpose,
    rng: &SystemRandom,
) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce)
        .map_err(|_| Error::internal("no randomness for a nonce"))?;
    let mut buffer = plaintext.to_vec();
    cipher(key)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(purpose.aad()),
            &mut buffer,
        )
        .map_err(|_| Error::internal("encryption failed"))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buffer);
    Ok(out)
}

fn decrypt(key: &[u8; 32], data: &[u8], purpose: Purpose) -> Option<Vec<u8>> {
    if data.len() < NONCE_LEN {
        return None;
    }
    let (nonce, sealed) = data.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut buffer = sealed.to_vec();
    let plain = cipher(key)
        .ok()?
        .open_in_place(nonce, Aad::from(purpose.aad()), &mut buffer)
        .ok()?;
    Some(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_passphrase() {
        let sealer = SecretBox::new("correct horse battery staple");
        let sealed = sealer.seal("whsec-123").unwrap_or_default();
        assert!(sealed.starts_with(SEALED_PREFIX));
        assert!(!sealed.contains("whsec-123"));
        assert_eq!(sealer.open(&sealed).ok().as_deref(), Some("whsec-123"));
        // Two seals of one secret differ (fresh data key and nonces).
        assert_ne!(sealer.seal("whsec-123").unwrap_or_default(), sealed);
        let stranger = SecretBox::new("another passphrase");
        assert!(stranger.open(&sealed).is_err());
        // A webhook secret is not a gateway secret, even under the right passphrase.
        assert!(sealer.open_as(Purpose::GatewaySecret, &sealed).is_err());
        let gateway = sealer
            .seal_as(Purpose::GatewaySecret, "sk-1")
            .unwrap_or_default();
        assert_eq!(
            sealer
                .open_as(Purpose::GatewaySecret, &gateway)
                .ok()
                .as_deref(),
            Some("sk-1")
        );
    }

    #[test]
    fn values_stored_before_sealing_read_as_they_are() {
        let sealer = SecretBox::new("p");
        assert_eq!(
            sealer.open("plain-secret").ok().as_deref(),
            Some("plain-secret")
        );
        assert!(sealer.open("mlox-sealed:v1:garbage").is_err());
        assert!(sealer.open("mlox-sealed:v1:AAAA:BBBB").is_err());
    }
}
