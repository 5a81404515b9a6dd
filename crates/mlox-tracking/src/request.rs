//! Reading MLflow requests: GET endpoints carry their message in the query string (repeated
//! keys for lists), everything else in a JSON body, DELETE included. Both become the same
//! typed message, and any decoding problem is a 400 in MLflow's shape.

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, Method, header};
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

/// A request whose JSON did not fit its message, in MLflow's words: a field of the wrong type
/// is `Invalid value 123 for parameter 'name' supplied: …`, a missing one `Missing value for
/// required parameter 'name'.` Decoding again to find the field costs only failed requests.
fn decode_error<T: DeserializeOwned>(value: &Value) -> ApiError {
    let err = match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(_) => return ApiError(Error::invalid("Invalid request.")),
        Err(err) => err,
    };
    let cause = err.inner().to_string();
    let path = err.path();
    let at = |field: Option<&str>| {
        let mut name = if path.iter().next().is_none() {
            String::new()
        } else {
            path.to_string()
        };
        if let Some(field) = field {
            if !name.is_empty() {
                name.push('.');
            }
            name.push_str(field);
        }
        name
    };
    if let Some(field) = cause
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        return ApiError(Error::invalid(format!(
            "Missing value for required parameter '{}'. See the API docs for more information \
             about request parameters.",
            at(Some(field))
        )));
    }
    // An error at a field is that field's value; one at the top is the request's shape.
    let at_field = path.iter().next().is_some();
    match value_at(value, path).filter(|_| at_field) {
        Some(found) => ApiError(Error::invalid(format!(
            "Invalid value {} for parameter '{}' supplied:  Hint: Value was of type '{}'. See \
             the API docs for more information about request parameters.",
            serde_json::to_string(found).unwrap_or_default(),
            at(None),
            python_type_name(found)
        ))),
        None => ApiError(Error::invalid(format!("Invalid request: {cause}"))),
    }
}

fn value_at<'v>(value: &'v Value, path: &serde_path_to_error::Path) -> Option<&'v Value> {
    use serde_path_to_error::Segment;
    path.iter().try_fold(value, |node, segment| match segment {
        Segment::Seq { index } => node.get(index),
        Segment::Map { key } => node.get(key),
        Segment::Enum { .. } | Segment::Unknown => None,
    })
}

/// What Python calls the type of a JSON value, as MLflow's hint names it.
fn python_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

pub fn decode_value<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    T::deserialize(&value).map_err(|_| decode_error::<T>(&value))
}

/// POST and PUT messages must say they are JSON, as MLflow requires since CVE-2023-43472: a
/// web page may send a cross-origin `text/plain` POST without the browser asking the server
/// first, but not an `application/json` one, so this closes drive-by writes even where the
/// cross-origin guard is off. Parameters after `;` (`charset=utf-8`) are allowed. PATCH and
/// DELETE are never sent that way, and MLflow accepts them with any type.
pub fn require_json_content_type(method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    if method != Method::POST && method != Method::PUT {
        return Ok(());
    }
    let Some(content_type) = headers.get(header::CONTENT_TYPE) else {
        return Err(ApiError(Error::invalid(
            "Bad Request. Content-Type header is missing.",
        )));
    };
    let media_type = content_type
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim();
    if media_type.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        // The message never echoes the header: a reflected type was CVE-2023-6568's XSS.
        Err(ApiError(Error::invalid(
            "Bad Request. Content-Type must be one of ['application/json'].",
        )))
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Msg<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if req.method() == Method::GET {
            let value = query_to_json(req.uri().query().unwrap_or(""));
            return decode_value(value).map(Msg);
        }
        require_json_content_type(req.method(), req.headers())?;
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
                _ => match serde_json::from_slice::<Value>(&bytes) {
                    Ok(value) => decode_error::<T>(&value),
                    Err(e) => ApiError(Error::invalid(format!("Invalid request: {e}"))),
                },
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

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Message {
        name: String,
        #[serde(default)]
        metrics: Vec<Point>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Point {
        key: String,
        value: f64,
    }

    fn message_of(value: Value) -> String {
        decode_value::<Message>(value).unwrap_err().0.message
    }

    #[test]
    fn fields_of_the_wrong_type_are_named_in_mlflows_words() {
        use serde_json::json;
        assert_eq!(
            message_of(json!({"name": 123})),
            "Invalid value 123 for parameter 'name' supplied:  Hint: Value was of type 'int'. \
             See the API docs for more information about request parameters."
        );
        assert!(
            message_of(json!({"name": "x", "metrics": [{"key": "k", "value": "high"}]}))
                .starts_with(
                    "Invalid value \"high\" for parameter 'metrics[0].value' supplied:  \
                              Hint: Value was of type 'str'."
                )
        );
        assert!(
            message_of(json!({"name": {"b": 1, "a": [true]}})).starts_with(
                "Invalid value {\"a\":[true],\"b\":1} for parameter 'name' supplied:  Hint: \
                 Value was of type 'dict'."
            )
        );
        assert!(message_of(json!({})).starts_with("Missing value for required parameter 'name'."));
        assert!(
            message_of(json!({"name": "x", "metrics": [{"value": 1.0}]}))
                .starts_with("Missing value for required parameter 'metrics[0].key'.")
        );
    }

    #[test]
    fn posts_and_puts_must_be_json() {
        let table: [(Method, Option<&str>, Option<&str>); 10] = [
            (Method::POST, Some("application/json"), None),
            (Method::POST, Some("application/json; charset=utf-8"), None),
            (Method::PUT, Some("Application/JSON"), None),
            (
                Method::POST,
                Some("text/plain"),
                Some("Bad Request. Content-Type must be one of ['application/json']."),
            ),
            (
                Method::POST,
                Some("<script>alert(1)</script>"),
                Some("Bad Request. Content-Type must be one of ['application/json']."),
            ),
            (
                Method::PUT,
                Some("application/x-www-form-urlencoded"),
                Some("Bad Request. Content-Type must be one of ['application/json']."),
            ),
            (
                Method::POST,
                None,
                Some("Bad Request. Content-Type header is missing."),
            ),
            (Method::PATCH, Some("text/plain"), None),
            (Method::DELETE, None, None),
            (Method::GET, Some("text/plain"), None),
        ];
        for (method, content_type, refusal) in table {
            let mut headers = HeaderMap::new();
            if let Some(value) = content_type {
                headers.insert(header::CONTENT_TYPE, value.parse().unwrap());
            }
            let answer = require_json_content_type(&method, &headers);
            match refusal {
                None => assert!(answer.is_ok(), "{method} {content_type:?}"),
                Some(message) => {
                    let err = answer.unwrap_err().0;
                    assert_eq!(err.code, mlox_core::Code::InvalidParameterValue);
                    assert_eq!(err.message, message, "{method} {content_type:?}");
                }
            }
        }
    }

    #[test]
    fn repeated_query_keys_become_lists() {
        let v = query_to_json("trace_ids=a&trace_ids=b&x=1&name=a%20b+c");
        assert_eq!(v["trace_ids"], serde_json::json!(["a", "b"]));
        assert_eq!(v["x"], "1");
        assert_eq!(v["name"], "a b c");
    }
}
