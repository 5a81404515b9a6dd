//! Page tokens are opaque to clients: base64 of a small JSON object holding the offset, which
//! is how MLflow encodes them too, so a token is stable across replicas of the server.

use crate::{Error, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

pub fn encode(offset: u64) -> String {
    STANDARD.encode(format!("{{\"offset\": {offset}}}"))
}

/// A token carrying more than an offset (where a keyset page starts, say); the object should
/// keep an `"offset"` so that [`decode`] reads it too.
pub fn encode_object(object: serde_json::Value) -> String {
    STANDARD.encode(object.to_string())
}

/// The object a token holds; `None` for an absent or empty token (the first page).
pub fn decode_object(
    token: Option<&str>,
) -> Result<Option<serde_json::Map<String, serde_json::Value>>> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let invalid = || {
        Error::invalid(format!(
            "Invalid page token, could not base64-decode: '{token}'"
        ))
    };
    let bytes = STANDARD.decode(token.trim()).map_err(|_| invalid())?;
    match serde_json::from_slice(&bytes).map_err(|_| invalid())? {
        serde_json::Value::Object(object) => Ok(Some(object)),
        other => Err(Error::invalid(format!(
            "Invalid page token, decoded value={other}"
        ))),
    }
}

/// An absent or empty token means the first page.
pub fn decode(token: Option<&str>) -> Result<u64> {
    let Some(object) = decode_object(token)? else {
        return Ok(0);
    };
    object
        .get("offset")
        .and_then(|o| o.as_u64())
        .ok_or_else(|| {
            Error::invalid(format!(
                "Invalid page token, decoded value={}",
                serde_json::Value::Object(object)
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        for offset in [0, 1, 1000, u32::MAX as u64] {
            assert_eq!(decode(Some(&encode(offset))).unwrap(), offset);
        }
        assert_eq!(decode(None).unwrap(), 0);
        assert_eq!(decode(Some("")).unwrap(), 0);
    }

    #[test]
    fn garbage_tokens_are_invalid_parameter_values() {
        for bad in ["!!!", "e30=", "bm90IGpzb24="] {
            let err = decode(Some(bad)).unwrap_err();
            assert_eq!(err.code, crate::Code::InvalidParameterValue, "{bad}");
        }
    }
}
