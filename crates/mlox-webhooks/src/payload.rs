//! What goes on the wire, as MLflow sends it: the `{"entity","action","timestamp","data"}`
//! envelope, the `X-MLflow-*` headers and the `v1,<base64 HMAC-SHA256>` signature over
//! `"{delivery_id}.{timestamp}.{body}"`, plus the example payloads `/test` sends.

use base64::Engine;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

pub const SIGNATURE_HEADER: &str = "X-MLflow-Signature";
pub const TIMESTAMP_HEADER: &str = "X-MLflow-Timestamp";
pub const DELIVERY_ID_HEADER: &str = "X-MLflow-Delivery-Id";
pub const SIGNATURE_VERSION: &str = "v1";

/// `v1,<base64 HMAC-SHA256(secret, "{delivery_id}.{timestamp}.{body}")>`.
pub fn sign(secret: &str, delivery_id: &str, timestamp: &str, body: &str) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(delivery_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let digest = mac.finalize().into_bytes();
    format!(
        "{SIGNATURE_VERSION},{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// The request body. Keys keep MLflow's order; `data` is spliced in as stored.
pub fn envelope(entity: &str, action: &str, timestamp_ms: i64, data_json: &str) -> String {
    format!(
        "{{\"entity\": {}, \"action\": {}, \"timestamp\": {}, \"data\": {}}}",
        Value::from(entity),
        Value::from(action),
        Value::from(iso_timestamp(timestamp_ms)),
        data_json
    )
}

/// An ISO 8601 UTC time the way Python's `datetime.isoformat()` writes it:
/// `2025-07-01T12:34:56.789000+00:00`.
pub fn iso_timestamp(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = mlox_core::trace_info::civil_date(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}000+00:00",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// The example `data` MLflow sends when a webhook is tested with `event`.
pub fn example_payload(entity: &str, action: &str) -> Option<Value> {
    let tags = json!({"example_key": "example_value"});
    Some(match (entity, action) {
        ("registered_model", "created") => json!({
            "name": "example_model", "tags": tags, "description": "An example registered model",
        }),
        ("model_version", "created") => json!({
            "name": "example_model", "version": "1", "source": "models:/123",
            "run_id": "abcd1234abcd5678", "tags": tags, "description": "An example model version",
        }),
        ("model_version_tag", "set") => json!({
            "name": "example_model", "version": "1", "key": "example_key", "value": "example_value",
        }),
        ("model_version_tag", "deleted") => {
            json!({"name": "example_model", "version": "1", "key": "example_key"})
        }
        ("model_version_alias", "created") => {
            json!({"name": "example_model", "alias": "example_alias", "version": "1"})
        }
        ("model_version_alias", "deleted") => {
            json!({"name": "example_model", "alias": "example_alias"})
        }
        ("prompt", "created") => json!({
            "name": "example_prompt", "tags": tags, "description": "An example prompt",
        }),
        ("prompt_version", "created") => json!({
            "name": "example_prompt", "version": "1", "template": "Hello {{name}}!",
            "tags": tags, "description": "An example prompt version",
        }),
        ("prompt_tag", "set") => {
            json!({"name": "example_prompt", "key": "example_key", "value": "example_value"})
        }
        ("prompt_tag", "deleted") => json!({"name": "example_prompt", "key": "example_key"}),
        ("prompt_version_tag", "set") => json!({
            "name": "example_prompt", "version": "1", "key": "example_key", "value": "example_value",
        }),
        ("prompt_version_tag", "deleted") => {
            json!({"name": "example_prompt", "version": "1", "key": "example_key"})
        }
        ("prompt_alias", "created") => {
            json!({"name": "example_prompt", "alias": "example_alias", "version": "1"})
        }
        ("prompt_alias", "deleted") => json!({"name": "example_prompt", "alias": "example_alias"}),
        ("budget_policy", "exceeded") => json!({
            "budget_policy_id": "bp-abc123", "budget_unit": "USD", "budget_amount": 100.0,
            "current_spend": 105.50, "duration_unit": "MONTHS", "duration_value": 1,
            "target_scope": "ENDPOINT", "workspace": "default", "target_value": "ep-abc123",
            "window_start": 1704067200000_i64,
        }),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_match_python_isoformat() {
        assert_eq!(iso_timestamp(0), "1970-01-01T00:00:00.000000+00:00");
        assert_eq!(
            iso_timestamp(1_751_373_296_789),
            "2025-07-01T12:34:56.789000+00:00"
        );
        assert_eq!(
            iso_timestamp(951_782_400_000),
            "2000-02-29T00:00:00.000000+00:00"
        );
    }

    #[test]
    fn signature_matches_a_known_vector() {
        // Computed with Python's hmac/hashlib/base64 over the same inputs.
        assert_eq!(
            sign("secret", "d1", "1700000000", "{}"),
            "v1,G77iR07mhxRhj4uXzCbRdU/9tFV0ULbzSFKOaC7ieFc="
        );
    }

    #[test]
    fn envelope_keeps_mlflow_key_order() {
        let body = envelope("model_version", "created", 0, "{\"name\":\"m\"}");
        assert!(body.starts_with("{\"entity\": \"model_version\", \"action\": \"created\""));
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["data"]["name"], "m");
        assert_eq!(v["timestamp"], "1970-01-01T00:00:00.000000+00:00");
    }

    #[test]
    fn every_event_has_an_example() {
        for (e, a) in mlox_core::webhooks::WEBHOOK_EVENTS {
            assert!(example_payload(e, a).is_some(), "{e}.{a}");
        }
    }
}
