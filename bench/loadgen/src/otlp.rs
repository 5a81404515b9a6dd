//! OTLP/HTTP trace exports as the trace scenarios send them, in the protobuf messages the
//! tracking server decodes (`mlox_core::otlp_proto`), and the two kinds of export the benchmark needs: batches of
//! single-span traces for the search fixture, and one 20-span trace per ingest request.
//!
//! Trace ids are `stamp` (the setup's clock, so two runs against one server never collide) in
//! the high eight bytes and a number in the low eight, which lets the checks tell from an id
//! alone which fixture trace a server returned.

use std::fmt::Write as _;

use bytes::Bytes;
use prost::Message as _;

use mlox_core::otlp_proto::{
    AnyValue, ExportTraceServiceRequest, InstrumentationScope, KeyValue, Resource, ResourceSpans,
    ScopeSpans, Span, Status, any_value,
};

const STATUS_OK: i32 = 1;
const KIND_INTERNAL: i32 = 1;
/// Marks the low half of ingest-spans trace ids, so they can never equal a fixture trace's.
const INGEST_ID_BIT: u64 = 1 << 63;
pub const SPANS_PER_INGEST_TRACE: u64 = 20;

fn text(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::Text(value.into())),
        }),
    }
}

pub fn trace_id_bytes(stamp: u64, low: u64) -> Vec<u8> {
    let mut id = Vec::with_capacity(16);
    id.extend_from_slice(&stamp.to_be_bytes());
    id.extend_from_slice(&low.to_be_bytes());
    id
}

/// The id both servers give the trace of an OTLP trace id: `tr-` and the id in hex.
pub fn mlflow_trace_id(stamp: u64, low: u64) -> String {
    let mut id = String::with_capacity(35);
    id.push_str("tr-");
    for b in trace_id_bytes(stamp, low) {
        let _ = write!(id, "{b:02x}");
    }
    id
}

/// The low half of a trace id written by [`mlflow_trace_id`] with this `stamp`, or `None` for
/// a trace this run did not write.
pub fn parse_trace_id(id: &str, stamp: u64) -> Option<u64> {
    let hex = id.strip_prefix("tr-")?;
    if hex.len() != 32 || u64::from_str_radix(&hex[..16], 16).ok()? != stamp {
        return None;
    }
    u64::from_str_radix(&hex[16..], 16).ok()
}

fn export(spans: Vec<Span>) -> Bytes {
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![text("service.name", "mlox-bench")],
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "mlox-bench".to_owned(),
                }),
                spans,
            }],
        }],
    };
    Bytes::from(request.encode_to_vec())
}

/// Single-span traces `first..first + count` of the search fixture; trace `i` starts at
/// `base_ms + i` so `timestamp_ms DESC` orders them by falling index, without ties.
pub fn fixture_batch(stamp: u64, first: u64, count: u64, base_ms: u64) -> Bytes {
    let spans = (first..first + count)
        .map(|i| {
            let start = (base_ms + i) * 1_000_000;
            Span {
                trace_id: trace_id_bytes(stamp, i),
                span_id: (i + 1).to_be_bytes().to_vec(),
                parent_span_id: Vec::new(),
                name: "predict".to_owned(),
                kind: KIND_INTERNAL,
                start_time_unix_nano: start,
                end_time_unix_nano: start + 250_000,
                attributes: vec![
                    text("mlflow.spanType", "CHAIN"),
                    text("mlflow.spanInputs", format!(r#"{{"question": "q{i}"}}"#)),
                    text("mlflow.spanOutputs", format!(r#"{{"answer": "a{i}"}}"#)),
                ],
                events: Vec::new(),
                status: Some(Status {
                    message: String::new(),
                    code: STATUS_OK,
                }),
            }
        })
        .collect();
    export(spans)
}

/// The low half of the id of ingest trace `iteration` of `worker`.
pub fn ingest_trace_low(worker: usize, iteration: u64) -> u64 {
    INGEST_ID_BIT | ((worker as u64) << 40) | (iteration & ((1 << 40) - 1))
}

/// One agent-like trace of [`SPANS_PER_INGEST_TRACE`] spans: a root and its children (a
/// retriever, then alternating chat-model and tool calls), each with its type and its inputs
/// and outputs as JSON text, the attributes an instrumented application exports.
pub fn ingest_trace(stamp: u64, low: u64, start_ns: u64) -> Bytes {
    let trace_id = trace_id_bytes(stamp, low);
    let span_id = |n: u64| {
        (low.rotate_left(20) ^ (n + 1))
            .max(1)
            .to_be_bytes()
            .to_vec()
    };
    // The worker and iteration, for previews a person can read.
    let label = format!("{}.{}", (low >> 40) & 0x7F_FFFF, low & 0xFF_FFFF_FFFF);
    let children = SPANS_PER_INGEST_TRACE - 1;
    let step_ns = 1_000_000;
    let root_end = start_ns + (children + 1) * step_ns;
    let mut spans = Vec::with_capacity(SPANS_PER_INGEST_TRACE as usize);
    spans.push(Span {
        trace_id: trace_id.clone(),
        span_id: span_id(0),
        parent_span_id: Vec::new(),
        name: "agent".to_owned(),
        kind: KIND_INTERNAL,
        start_time_unix_nano: start_ns,
        end_time_unix_nano: root_end,
        attributes: vec![
            text("mlflow.spanType", "AGENT"),
            text(
                "mlflow.spanInputs",
                format!(r#"{{"messages": [{{"role": "user", "content": "question {label}"}}]}}"#),
            ),
            text(
                "mlflow.spanOutputs",
                r#"{"choices": [{"message": {"role": "assistant", "content": "an answer"}}]}"#,
            ),
        ],
        events: Vec::new(),
        status: Some(Status {
            message: String::new(),
            code: STATUS_OK,
        }),
    });
    for n in 1..=children {
        let (kind, name) = match n {
            1 => ("RETRIEVER", "retrieve"),
            n if n % 2 == 0 => ("CHAT_MODEL", "chat"),
            _ => ("TOOL", "tool"),
        };
        let start = start_ns + n * step_ns;
        let attributes = vec![
            text("mlflow.spanType", kind),
            text(
                "mlflow.spanInputs",
                format!(r#"{{"query": "step {n} of {label}", "k": 4}}"#),
            ),
            text(
                "mlflow.spanOutputs",
                format!(r#"{{"result": "output of step {n}", "documents": ["d1", "d2"]}}"#),
            ),
        ];
        spans.push(Span {
            trace_id: trace_id.clone(),
            span_id: span_id(n),
            parent_span_id: span_id(0),
            name: format!("{name}-{n}"),
            kind: KIND_INTERNAL,
            start_time_unix_nano: start,
            end_time_unix_nano: start + step_ns / 2,
            attributes,
            events: Vec::new(),
            status: Some(Status {
                message: String::new(),
                code: STATUS_OK,
            }),
        });
    }
    export(spans)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_round_trip() {
        let id = mlflow_trace_id(0x0123_4567_89ab_cdef, 42);
        assert_eq!(id, "tr-0123456789abcdef000000000000002a");
        assert_eq!(parse_trace_id(&id, 0x0123_4567_89ab_cdef), Some(42));
        assert_eq!(parse_trace_id(&id, 1), None);
        assert_eq!(parse_trace_id("tr-12", 1), None);
        assert_ne!(ingest_trace_low(0, 42), 42);
    }

    #[test]
    fn ingest_traces_have_one_root_and_distinct_spans() {
        let body = ingest_trace(7, ingest_trace_low(3, 9), 1_000_000_000);
        let request = ExportTraceServiceRequest::decode(body).unwrap();
        let spans = &request.resource_spans[0].scope_spans[0].spans;
        assert_eq!(spans.len() as u64, SPANS_PER_INGEST_TRACE);
        let roots: Vec<_> = spans
            .iter()
            .filter(|s| s.parent_span_id.is_empty())
            .collect();
        assert_eq!(roots.len(), 1);
        let ids: std::collections::HashSet<_> = spans.iter().map(|s| &s.span_id).collect();
        assert_eq!(ids.len(), spans.len());
        assert!(spans.iter().all(|s| s.span_id.iter().any(|&b| b != 0)));
        assert!(
            spans
                .iter()
                .all(|s| s.trace_id == trace_id_bytes(7, ingest_trace_low(3, 9)))
        );
        assert!(
            spans
                .iter()
                .skip(1)
                .all(|s| s.parent_span_id == roots[0].span_id)
        );
    }

    #[test]
    fn fixture_batches_hold_consecutive_traces() {
        let request = ExportTraceServiceRequest::decode(fixture_batch(5, 10, 3, 1000)).unwrap();
        let spans = &request.resource_spans[0].scope_spans[0].spans;
        let starts: Vec<_> = spans.iter().map(|s| s.start_time_unix_nano).collect();
        assert_eq!(
            starts,
            vec![1010 * 1_000_000, 1011 * 1_000_000, 1012 * 1_000_000]
        );
        assert_eq!(spans[2].trace_id, trace_id_bytes(5, 12));
    }
}
