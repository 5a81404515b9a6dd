//! OpenTelemetry's trace export over HTTP (`POST /v1/traces`, OTLP/HTTP): the request in
//! protobuf or in OTLP's JSON encoding, optionally gzip- or deflate-compressed, decoded into
//! the domain's spans and stored under the experiment the `x-mlflow-experiment-id` header
//! names. The answer is OTLP's own (an empty `ExportTraceServiceResponse` in protobuf);
//! failures answer in MLflow's error shape with the statuses MLflow's endpoint uses (400 for
//! an unreadable body, 422 for spans that cannot be converted or a missing header).

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use mlox_core::spans::{KNOWN_SERVICE_NAMES, OtelEvent, OtelSpan, SpanStatusCode, StoredSpan};
use mlox_core::{Code, Error};
use serde_json::{Map, Value};
use std::io::Read;

pub const EXPERIMENT_ID_HEADER: &str = "x-mlflow-experiment-id";

/// Largest export accepted once decompressed, so a small compressed body cannot expand into
/// an unbounded one.
const MAX_DECOMPRESSED_BODY: u64 = 64 * 1024 * 1024;

use mlox_core::otlp_proto as proto;

/// The spans of one export, each with the service name of its resource when that name is
/// one MLflow records.
struct Export {
    spans: Vec<(OtelSpan, Option<&'static str>)>,
}

fn unreadable() -> Error {
    Error::bad_request("Invalid OpenTelemetry format")
}

fn decompress(body: &[u8], encoding: &str) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let read = |reader: &mut dyn Read, out: &mut Vec<u8>| {
        out.clear();
        reader.take(MAX_DECOMPRESSED_BODY + 1).read_to_end(out)
    };
    let ok = match encoding {
        "gzip" => read(&mut flate2::read::GzDecoder::new(body), &mut out).is_ok(),
        // RFC 1950 (zlib-wrapped) deflate, or the raw stream some clients send instead.
        "deflate" => {
            read(&mut flate2::read::ZlibDecoder::new(body), &mut out).is_ok()
                || read(&mut flate2::read::DeflateDecoder::new(body), &mut out).is_ok()
        }
        "identity" | "" => return Ok(body.to_vec()),
        other => {
            return Err(Error::bad_request(format!(
                "Unsupported Content-Encoding: {other}. Expected gzip or deflate"
            )));
        }
    };
    if !ok {
        return Err(Error::bad_request(format!(
            "Failed to decompress {encoding} payload"
        )));
    }
    if out.len() as u64 > MAX_DECOMPRESSED_BODY {
        return Err(Error::new(
            Code::PayloadTooLarge,
            format!("The decompressed export exceeds {MAX_DECOMPRESSED_BODY} bytes"),
        ));
    }
    Ok(out)
}

fn known_service(name: Option<Value>) -> Option<&'static str> {
    let name = name?;
    let name = name.as_str()?;
    KNOWN_SERVICE_NAMES.into_iter().find(|known| *known == name)
}

// ---- protobuf ----

fn any_value(value: Option<proto::AnyValue>) -> Value {
    use proto::any_value::Value as V;
    match value.and_then(|v| v.value) {
        None => Value::Null,
        Some(V::Text(s)) => Value::String(s),
        Some(V::Bool(b)) => Value::Bool(b),
        Some(V::Int(i)) => Value::from(i),
        Some(V::Double(f)) => serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Some(V::Array(array)) => Value::Array(
            array
                .values
                .into_iter()
                .map(|v| any_value(Some(v)))
                .collect(),
        ),
        Some(V::Kvlist(list)) => Value::Object(Map::from_iter(
            list.values
                .into_iter()
                .map(|kv| (kv.key, any_value(kv.value))),
        )),
        Some(V::Bytes(bytes)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
    }
}

fn key_values(attributes: Vec<proto::KeyValue>) -> Vec<(String, Value)> {
    attributes
        .into_iter()
        .map(|kv| (kv.key, any_value(kv.value)))
        .collect()
}

fn status_code(code: i64) -> SpanStatusCode {
    match code {
        1 => SpanStatusCode::Ok,
        2 => SpanStatusCode::Error,
        _ => SpanStatusCode::Unset,
    }
}

fn decode_protobuf(body: &[u8]) -> Result<Export, Error> {
    let request = <proto::ExportTraceServiceRequest as prost::Message>::decode(body)
        .map_err(|_| unreadable())?;
    let mut spans = Vec::new();
    for resource_spans in request.resource_spans {
        let service = resource_spans.resource.and_then(|resource| {
            let attribute = resource
                .attributes
                .into_iter()
                .find(|kv| kv.key == "service.name")?;
            known_service(Some(any_value(attribute.value)))
        });
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                let status = span
                    .status
                    .map(|s| (status_code(i64::from(s.code)), s.message));
                spans.push((
                    OtelSpan {
                        trace_id: span.trace_id,
                        span_id: span.span_id,
                        parent_span_id: span.parent_span_id,
                        name: span.name,
                        start_time_unix_nano: span.start_time_unix_nano,
                        end_time_unix_nano: span.end_time_unix_nano,
                        attributes: key_values(span.attributes),
                        events: span
                            .events
                            .into_iter()
                            .map(|event| OtelEvent {
                                name: event.name,
                                time_unix_nano: event.time_unix_nano,
                                attributes: key_values(event.attributes),
                            })
                            .collect(),
                        status,
                    },
                    service,
                ));
            }
        }
    }
    Ok(Export { spans })
}

// ---- OTLP/JSON ----
// Field names in lowerCamelCase (the declared snake_case names are accepted too), trace and
// span ids in hex, 64-bit integers as numbers or decimal strings, enums as numbers or names.

fn field<'a>(object: &'a Value, camel: &str, snake: &str) -> Option<&'a Value> {
    object.get(camel).or_else(|| object.get(snake))
}

fn list<'a>(object: &'a Value, camel: &str, snake: &str) -> Result<&'a [Value], Error> {
    match field(object, camel, snake) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(unreadable()),
    }
}

fn json_u64(value: Option<&Value>) -> Result<u64, Error> {
    match value {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n.as_u64().ok_or_else(unreadable),
        Some(Value::String(s)) => s.parse().map_err(|_| unreadable()),
        Some(_) => Err(unreadable()),
    }
}

fn json_id(value: Option<&Value>) -> Result<Vec<u8>, Error> {
    let text = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(text)) => text,
        Some(_) => return Err(unreadable()),
    };
    if text.len() % 2 != 0 {
        return Err(unreadable());
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(unreadable)
        })
        .collect()
}

fn json_any_value(value: &Value) -> Result<Value, Error> {
    if !value.is_object() {
        return Ok(Value::Null);
    }
    if let Some(text) = field(value, "stringValue", "string_value") {
        return Ok(text.clone());
    }
    if let Some(flag) = field(value, "boolValue", "bool_value") {
        return Ok(flag.clone());
    }
    if let Some(number) = field(value, "intValue", "int_value") {
        return match number {
            Value::Number(_) => Ok(number.clone()),
            Value::String(s) => s.parse::<i64>().map(Value::from).map_err(|_| unreadable()),
            _ => Err(unreadable()),
        };
    }
    if let Some(number) = field(value, "doubleValue", "double_value") {
        return match number {
            Value::Number(_) => Ok(number.clone()),
            Value::String(s) => Ok(s
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .unwrap_or(Value::Null)),
            _ => Err(unreadable()),
        };
    }
    if let Some(array) = field(value, "arrayValue", "array_value") {
        return list(array, "values", "values")?
            .iter()
            .map(json_any_value)
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array);
    }
    if let Some(kvlist) = field(value, "kvlistValue", "kvlist_value") {
        return json_key_values(list(kvlist, "values", "values")?)
            .map(|pairs| Value::Object(Map::from_iter(pairs)));
    }
    if let Some(bytes) = field(value, "bytesValue", "bytes_value") {
        return Ok(bytes.clone());
    }
    Ok(Value::Null)
}

fn json_key_values(attributes: &[Value]) -> Result<Vec<(String, Value)>, Error> {
    attributes
        .iter()
        .map(|kv| {
            let key = kv
                .get("key")
                .and_then(Value::as_str)
                .ok_or_else(unreadable)?;
            let value = match kv.get("value") {
                Some(value) => json_any_value(value)?,
                None => Value::Null,
            };
            Ok((key.to_string(), value))
        })
        .collect()
}

fn json_status(status: &Value) -> (SpanStatusCode, String) {
    let code = match status.get("code") {
        Some(Value::Number(n)) => status_code(n.as_i64().unwrap_or(0)),
        Some(Value::String(name)) => match name.as_str() {
            "STATUS_CODE_OK" => SpanStatusCode::Ok,
            "STATUS_CODE_ERROR" => SpanStatusCode::Error,
            _ => SpanStatusCode::Unset,
        },
        _ => SpanStatusCode::Unset,
    };
    let message = status
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    (code, message)
}

fn decode_json(body: &[u8]) -> Result<Export, Error> {
    let request: Value = serde_json::from_slice(body).map_err(|_| unreadable())?;
    if !request.is_object() {
        return Err(unreadable());
    }
    let mut spans = Vec::new();
    for resource_spans in list(&request, "resourceSpans", "resource_spans")? {
        let service = match resource_spans.get("resource") {
            Some(resource) => json_key_values(list(resource, "attributes", "attributes")?)?
                .into_iter()
                .find(|(key, _)| key == "service.name")
                .and_then(|(_, value)| known_service(Some(value))),
            None => None,
        };
        for scope in list(resource_spans, "scopeSpans", "scope_spans")? {
            for span in list(scope, "spans", "spans")? {
                let events = list(span, "events", "events")?
                    .iter()
                    .map(|event| {
                        Ok(OtelEvent {
                            name: event
                                .get("name")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_string(),
                            time_unix_nano: json_u64(field(
                                event,
                                "timeUnixNano",
                                "time_unix_nano",
                            ))?,
                            attributes: json_key_values(list(event, "attributes", "attributes")?)?,
                        })
                    })
                    .collect::<Result<Vec<_>, Error>>()?;
                spans.push((
                    OtelSpan {
                        trace_id: json_id(field(span, "traceId", "trace_id"))?,
                        span_id: json_id(field(span, "spanId", "span_id"))?,
                        parent_span_id: json_id(field(span, "parentSpanId", "parent_span_id"))?,
                        name: span
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        start_time_unix_nano: json_u64(field(
                            span,
                            "startTimeUnixNano",
                            "start_time_unix_nano",
                        ))?,
                        end_time_unix_nano: json_u64(field(
                            span,
                            "endTimeUnixNano",
                            "end_time_unix_nano",
                        ))?,
                        attributes: json_key_values(list(span, "attributes", "attributes")?)?,
                        events,
                        status: span.get("status").map(json_status),
                    },
                    service,
                ));
            }
        }
    }
    Ok(Export { spans })
}

/// The spans of an export request, checked and converted for the store.
fn read_export(headers: &HeaderMap, body: &[u8]) -> Result<Vec<StoredSpan>, Error> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media_type != "application/x-protobuf" && media_type != "application/json" {
        return Err(Error::bad_request(format!(
            "Invalid Content-Type: {content_type}. Expected: application/x-protobuf or \
             application/json"
        )));
    }
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let body = decompress(body, &encoding)?;
    let export = if media_type == "application/json" {
        decode_json(&body)?
    } else {
        decode_protobuf(&body)?
    };
    stored_spans(export)
}

/// The spans of an OTLP/JSON export, for exports made inside this server (the gateway's
/// records of its calls).
pub fn read_json_export(body: &[u8]) -> Result<Vec<StoredSpan>, Error> {
    stored_spans(decode_json(body)?)
}

fn stored_spans(export: Export) -> Result<Vec<StoredSpan>, Error> {
    if export.spans.is_empty() {
        return Err(Error::bad_request(
            "Invalid OpenTelemetry format - no spans found",
        ));
    }
    export
        .spans
        .into_iter()
        .map(|(span, service)| {
            span.into_stored(service).map_err(|err| {
                Error::new(
                    Code::UnprocessableContent,
                    format!(
                        "Cannot convert OpenTelemetry span to MLflow span: {}",
                        err.message
                    ),
                )
            })
        })
        .collect()
}

/// `POST /v1/traces`.
pub async fn export_traces(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let experiment_id = headers
        .get(EXPERIMENT_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                Code::UnprocessableContent,
                format!("Missing required header '{EXPERIMENT_ID_HEADER}' naming the experiment"),
            )
        })?
        .to_string();
    let mut spans = read_export(&headers, &body)?;
    match crate::gateway::model_catalog() {
        Ok(catalog) => crate::pricing::price_spans(&catalog, &mut spans).await,
        Err(e) => tracing::warn!("spans are not priced: {e}"),
    }
    state.store.log_spans(&experiment_id, spans).await?;
    let answer = prost::Message::encode_to_vec(&proto::ExportTraceServiceResponse {});
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        answer,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn headers(content_type: &str, encoding: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, content_type.parse().unwrap());
        if let Some(encoding) = encoding {
            headers.insert(header::CONTENT_ENCODING, encoding.parse().unwrap());
        }
        headers
    }

    fn request() -> proto::ExportTraceServiceRequest {
        use proto::any_value::Value as V;
        let kv = |key: &str, value: V| proto::KeyValue {
            key: key.into(),
            value: Some(proto::AnyValue { value: Some(value) }),
        };
        proto::ExportTraceServiceRequest {
            resource_spans: vec![proto::ResourceSpans {
                resource: Some(proto::Resource {
                    attributes: vec![kv("service.name", V::Text("qwen-code".into()))],
                }),
                scope_spans: vec![proto::ScopeSpans {
                    scope: None,
                    spans: vec![proto::Span {
                        trace_id: vec![0x11; 16],
                        span_id: vec![0x22; 8],
                        parent_span_id: Vec::new(),
                        name: "root".into(),
                        kind: 1,
                        start_time_unix_nano: 1_000_000_000,
                        end_time_unix_nano: 2_000_000_000,
                        attributes: vec![
                            kv("n", V::Int(7)),
                            kv(
                                "list",
                                V::Array(proto::ArrayValue {
                                    values: vec![proto::AnyValue {
                                        value: Some(V::Bool(true)),
                                    }],
                                }),
                            ),
                        ],
                        events: vec![proto::Event {
                            time_unix_nano: 5,
                            name: "e".into(),
                            attributes: vec![kv("k", V::Text("v".into()))],
                        }],
                        status: Some(proto::Status {
                            message: "boom".into(),
                            code: 2,
                        }),
                    }],
                }],
            }],
        }
    }

    #[test]
    fn protobuf_json_and_compressed_exports_read_the_same() {
        let protobuf = request().encode_to_vec();
        let from_protobuf =
            read_export(&headers("application/x-protobuf", None), &protobuf).unwrap();
        let json = serde_json::json!({"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "qwen-code"}}]},
            "scopeSpans": [{"scope": {"name": "s"}, "spans": [{
                "traceId": "11111111111111111111111111111111",
                "spanId": "2222222222222222",
                "name": "root",
                "startTimeUnixNano": "1000000000",
                "endTimeUnixNano": 2000000000u64,
                "attributes": [
                    {"key": "n", "value": {"intValue": "7"}},
                    {"key": "list", "value": {"arrayValue": {"values": [{"boolValue": true}]}}}
                ],
                "events": [{"timeUnixNano": "5", "name": "e",
                            "attributes": [{"key": "k", "value": {"stringValue": "v"}}]}],
                "status": {"code": 2, "message": "boom"}
            }]}]
        }]});
        let from_json = read_export(
            &headers("application/json; charset=utf-8", None),
            json.to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!(from_protobuf, from_json);
        let span = &from_protobuf[0];
        assert_eq!(span.trace_id, format!("tr-{}", "11".repeat(16)));
        assert_eq!(span.status, SpanStatusCode::Error);
        assert_eq!(
            span.attributes().unwrap()["service.name"],
            Value::String("\"qwen-code\"".into())
        );

        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gzip, &protobuf).unwrap();
        let gzipped = gzip.finish().unwrap();
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut zlib, &protobuf).unwrap();
        let deflated = zlib.finish().unwrap();
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut raw, &protobuf).unwrap();
        let raw_deflated = raw.finish().unwrap();
        for (encoding, body) in [
            ("gzip", gzipped),
            ("deflate", deflated),
            ("deflate", raw_deflated),
        ] {
            let decoded =
                read_export(&headers("application/x-protobuf", Some(encoding)), &body).unwrap();
            assert_eq!(decoded, from_protobuf, "{encoding}");
        }
    }

    #[test]
    fn unreadable_exports_are_refused_with_mlflows_statuses() {
        let status = |content_type: &str, body: &[u8]| {
            read_export(&headers(content_type, None), body)
                .unwrap_err()
                .code
                .http_status()
        };
        assert_eq!(
            status(
                "application/x-protobuf",
                b"this is not valid protobuf data at all"
            ),
            400
        );
        assert_eq!(status("application/json", b"{not json"), 400);
        assert_eq!(status("text/plain", &request().encode_to_vec()), 400);
        assert_eq!(status("application/x-protobuf", b""), 400);
        let mut no_span_id = request();
        no_span_id.resource_spans[0].scope_spans[0].spans[0].span_id = Vec::new();
        assert_eq!(
            status("application/x-protobuf", &no_span_id.encode_to_vec()),
            422
        );
        let err = read_export(
            &headers("application/x-protobuf", Some("gzip")),
            b"not gzip at all",
        )
        .unwrap_err();
        assert_eq!(err.message, "Failed to decompress gzip payload");
    }

    #[test]
    fn a_compressed_bomb_is_cut_off() {
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1024 * 1024];
        for _ in 0..(MAX_DECOMPRESSED_BODY / zeros.len() as u64 + 1) {
            std::io::Write::write_all(&mut gzip, &zeros).unwrap();
        }
        let body = gzip.finish().unwrap();
        let err = decompress(&body, "gzip").unwrap_err();
        assert_eq!(err.code, Code::PayloadTooLarge);
    }
}
