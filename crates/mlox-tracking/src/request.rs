//! Reading MLflow requests: GET endpoints carry their message in the query string (repeated
//! keys for lists), everything else in a JSON body, DELETE included. Both become the same
//! typed message, and any decoding problem is a 400 in MLflow's shape.

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::Method;
use mlox_core::Error;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// A request message decoded from the query string (GET) or the JSON body (other methods).
pub struct Msg<T>(pub T);

/// Upper bound on a JSON request body; artifact uploads stream and are not subject to it.
pub const MAX_JSON_BODY: usize = 16 * 1024 * 1024;

pub fn query_to_json(query: &str) -> Value {
    let mut map: Map<String, Value> = Map::new();
    for (k, v) in form_urlencoded(query) {
        match map.get_mut(&k) {
            Some(Value::Array(items)) => items.push(Value::String(v)),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, Value::String(v)]);
            }
            None => {
                map.insert(k, Value::String(v));
            }
        }
    }
    Value::Object(map)
}

fn form_urlencoded(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(k), decode(v))
        })
        .collect()
}

fn decode_error(err: serde_json::Error) -> ApiError {
    ApiError(Error::invalid(format!("Invalid request: {err}")))
}

pub fn decode_value<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_json::from_value(value).map_err(decode_error)
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Msg<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if req.method() == Method::GET {
            let value = query_to_json(req.uri().query().unwrap_or(""));
            return decode_value(value).map(Msg);
        }
        let query = req.uri().query().unwrap_or("").to_string();
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            ApiError(Error::new(
                mlox_core::Code::InvalidParameterValue,
                format!("Could not read the request body: {e}"),
            ))
        })?;
        let Some(first) = bytes.iter().find(|b| !b.is_ascii_whitespace()) else {
            // Some clients send DELETE/POST parameters in the query string only.
            return decode_value(query_to_json(&query)).map(Msg);
        };
        if *first != b'{' {
            // A JSON array or scalar is a client error, never a server one.
            return Err(ApiError(Error::invalid(
                "The request body must be a JSON object.",
            )));
        }
        // Straight into the typed message: a 1000-metric batch never becomes a JSON tree.
        serde_json::from_slice(&bytes)
            .map(Msg)
            .map_err(|e| match e.classify() {
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                    ApiError(Error::invalid(format!("Malformed JSON request body: {e}")))
                }
                _ => decode_error(e),
            })
    }
}

/// Lists arrive as repeated query keys, a single key, or a JSON array.
pub fn de_string_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    use serde::Deserialize;
    let v = Option::<Value>::deserialize(d)?;
    let as_string = |v: Value| match v {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a string, got {other}"
        ))),
    };
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items.into_iter().map(as_string).collect(),
        Some(single) => Ok(vec![as_string(single)?]),
    }
}

/// Booleans arrive as JSON booleans or as query strings such as `True`/`false`.
pub fn de_opt_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    use serde::Deserialize;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(Some(true)),
            "false" | "0" => Ok(Some(false)),
            _ => Err(serde::de::Error::custom(format!(
                "expected a boolean, got '{s}'"
            ))),
        },
        Some(other) => Err(serde::de::Error::custom(format!(
            "expected a boolean, got {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_query_keys_become_lists() {
        let v = query_to_json("trace_ids=a&trace_ids=b&x=1&name=a%20b+c");
        assert_eq!(v["trace_ids"], serde_json::json!(["a", "b"]));
        assert_eq!(v["x"], "1");
        assert_eq!(v["name"], "a b c");
    }
}
