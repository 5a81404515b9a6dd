//! Opening the webhook secrets an MLflow server stored: MLflow encrypts them with Fernet under
//! the key in `MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY`. Only opening is needed; the import seals
//! each secret again with mlox's own key before it is written.
//!
//! A Fernet key is 32 bytes in URL-safe base64: an HMAC-SHA256 signing key, then an AES-128
//! key. A token is, in URL-safe base64, `0x80 ‖ timestamp (8) ‖ IV (16) ‖ AES-128-CBC
//! ciphertext with PKCS#7 padding ‖ HMAC-SHA256 (32)` over everything before the HMAC.

use aes::cipher::{BlockDecryptMut, KeyIvInit, block_padding::Pkcs7};
use base64::Engine as _;
use hmac::{KeyInit, Mac};

const VERSION: u8 = 0x80;
const HEADER: usize = 1 + 8 + 16;
const TAG: usize = 32;

/// Why a secret could not be opened; the import reports it instead of writing the webhook.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FernetError {
    #[error("not a Fernet key: 32 bytes in URL-safe base64 are expected")]
    BadKey,
    #[error("not a Fernet token")]
    Malformed,
    #[error("the token was not made with this key")]
    WrongKey,
}

pub struct FernetKey {
    signing: [u8; 16],
    encryption: [u8; 16],
}

impl std::fmt::Debug for FernetKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FernetKey { .. }")
    }
}

fn decode(text: &str) -> Option<Vec<u8>> {
    // Python's Fernet writes padded URL-safe base64; keys pasted by hand may lose the padding.
    let trimmed = text.trim().trim_end_matches('=');
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(trimmed)
        .ok()
}

impl FernetKey {
    pub fn parse(text: &str) -> Result<FernetKey, FernetError> {
        let bytes = decode(text).ok_or(FernetError::BadKey)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| FernetError::BadKey)?;
        let (signing, encryption) = bytes.split_at(16);
        Ok(FernetKey {
            signing: signing.try_into().map_err(|_| FernetError::BadKey)?,
            encryption: encryption.try_into().map_err(|_| FernetError::BadKey)?,
        })
    }

    /// The plaintext of `token`; its age is not checked, since stored secrets never expire.
    pub fn open(&self, token: &str) -> Result<Vec<u8>, FernetError> {
        let data = decode(token).ok_or(FernetError::Malformed)?;
        if data.len() < HEADER + TAG || data[0] != VERSION {
            return Err(FernetError::Malformed);
        }
        let (signed, tag) = data.split_at(data.len() - TAG);
        let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&self.signing)
            .map_err(|_| FernetError::BadKey)?;
        mac.update(signed);
        mac.verify_slice(tag).map_err(|_| FernetError::WrongKey)?;
        let iv = &signed[9..HEADER];
        let ciphertext = &signed[HEADER..];
        cbc::Decryptor::<aes::Aes128>::new_from_slices(&self.encryption, iv)
            .map_err(|_| FernetError::Malformed)?
            .decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
            .map_err(|_| FernetError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";

    fn token_for(key: &FernetKey, plaintext: &[u8], iv: [u8; 16]) -> String {
        use aes::cipher::BlockEncryptMut;
        let mut data = vec![VERSION];
        data.extend_from_slice(&1_700_000_000u64.to_be_bytes());
        data.extend_from_slice(&iv);
        let ciphertext = cbc::Encryptor::<aes::Aes128>::new_from_slices(&key.encryption, &iv)
            .unwrap()
            .encrypt_padded_vec_mut::<Pkcs7>(plaintext);
        data.extend_from_slice(&ciphertext);
        let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&key.signing).unwrap();
        mac.update(&data);
        data.extend_from_slice(&mac.finalize().into_bytes());
        base64::engine::general_purpose::URL_SAFE.encode(data)
    }

    #[test]
    fn a_token_opens_with_its_key_only() {
        let key = FernetKey::parse(KEY).unwrap();
        let token = token_for(&key, b"whsec-import-test", [7; 16]);
        assert_eq!(key.open(&token).unwrap(), b"whsec-import-test");
        let other = FernetKey::parse("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
        assert_eq!(other.open(&token), Err(FernetError::WrongKey));
    }

    #[test]
    fn a_token_from_pythons_cryptography_opens() {
        // Made by Python's `cryptography` (the library MLflow uses), so this pins the format
        // rather than this file's reading of it:
        // Fernet(KEY)._encrypt_from_parts(b"s3cret!", 1700000000, bytes(range(16)))
        let token = "gAAAAABlU_EAAAECAwQFBgcICQoLDA0OD0HOl09LZ2hE37iIdxN_jd75Qo8-1FLW_WLZAmy9CDWffJ944pIP3djK5qYhaJ-Iwg==";
        let key = FernetKey::parse(KEY).unwrap();
        assert_eq!(key.open(token).unwrap(), b"s3cret!");
    }

    #[test]
    fn tampering_and_garbage_are_refused() {
        let key = FernetKey::parse(KEY).unwrap();
        let token = token_for(&key, b"secret", [1; 16]);
        let mut bytes = decode(&token).unwrap();
        bytes[30] ^= 1;
        let tampered = base64::engine::general_purpose::URL_SAFE.encode(bytes);
        assert_eq!(key.open(&tampered), Err(FernetError::WrongKey));
        assert_eq!(key.open("not base64 !"), Err(FernetError::Malformed));
        assert_eq!(key.open("gAAA"), Err(FernetError::Malformed));
        assert_eq!(FernetKey::parse("short").unwrap_err(), FernetError::BadKey);
    }
}
