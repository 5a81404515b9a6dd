//! A deterministic stand-in for upstreams: OpenAI's API (`/v1/...`) and `mlflow models
//! serve`'s `/invocations`, with failure injection (N failures then success, a delay, a
//! stream that breaks off) and a record of what it was sent.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt as _;
use serde_json::{Value, json};

/// What the mock does; change it between calls through [`MockUpstream::behaviour`].
#[derive(Default)]
pub struct Behaviour {
    /// Answer this many calls with `fail_status` before answering normally.
    pub failures: AtomicU32,
    pub fail_status: AtomicU32,
    /// Sent with failures, when set (seconds).
    pub retry_after: Mutex<Option<String>>,
    /// Wait this long before answering.
    pub delay_ms: AtomicU64,
    /// Streams stop with a broken connection after this many chunks (0: never).
    pub break_stream_after: AtomicU32,
    /// Streams pause this long after their first chunk.
    pub stream_gap_ms: AtomicU64,
    /// Streams end without `data: [DONE]`.
    pub omit_done: std::sync::atomic::AtomicBool,
    /// What `/invocations` answers, when set.
    pub invocations_answer: Mutex<Option<Value>>,
}

pub struct MockUpstream {
    pub addr: SocketAddr,
    pub name: String,
    pub behaviour: Arc<Behaviour>,
    pub calls: Arc<AtomicU32>,
    pub requests: Arc<Mutex<Vec<(String, HeaderMap, Value)>>>,
}

#[derive(Clone)]
struct MockState {
    name: String,
    behaviour: Arc<Behaviour>,
    calls: Arc<AtomicU32>,
    requests: Arc<Mutex<Vec<(String, HeaderMap, Value)>>>,
}

impl MockUpstream {
    pub async fn start(name: &str) -> MockUpstream {
        let behaviour = Arc::new(Behaviour::default());
        behaviour.fail_status.store(503, Ordering::SeqCst);
        let calls = Arc::new(AtomicU32::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let state = MockState {
            name: name.to_string(),
            behaviour: behaviour.clone(),
            calls: calls.clone(),
            requests: requests.clone(),
        };
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/completions", post(completions))
            .route("/v1/embeddings", post(embeddings))
            .route("/invocations", post(invocations))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind mock upstream");
        let addr = listener.local_addr().expect("mock address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        MockUpstream {
            addr,
            name: name.to_string(),
            behaviour,
            calls,
            requests,
        }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn fail_next(&self, n: u32, status: u16) {
        self.behaviour
            .fail_status
            .store(u32::from(status), Ordering::SeqCst);
        self.behaviour.failures.store(n, Ordering::SeqCst);
    }

    pub fn last_request(&self) -> Option<(String, HeaderMap, Value)> {
        self.requests.lock().ok()?.last().cloned()
    }
}

/// Records the call and applies the injected delay and failures.
async fn intake(
    state: &MockState,
    path: &str,
    headers: HeaderMap,
    body: &Bytes,
) -> Result<Value, Response> {
    state.calls.fetch_add(1, Ordering::SeqCst);
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if let Ok(mut r) = state.requests.lock() {
        r.push((path.to_string(), headers, value.clone()));
    }
    let delay = state.behaviour.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let left = state.behaviour.failures.load(Ordering::SeqCst);
    if left > 0 {
        state.behaviour.failures.store(left - 1, Ordering::SeqCst);
        let status =
            StatusCode::from_u16(state.behaviour.fail_status.load(Ordering::SeqCst) as u16)
                .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"error": {"message": format!("injected {}", status.as_u16()), "type": "server_error"}}).to_string(),
        )
            .into_response();
        if let Some(after) = state
            .behaviour
            .retry_after
            .lock()
            .ok()
            .and_then(|a| a.clone())
            && let Ok(v) = after.parse()
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Err(response);
    }
    Ok(value)
}

fn last_user_text(body: &Value) -> String {
    body.get("messages")
        .and_then(Value::as_array)
        .and_then(|m| m.last())
        .and_then(|m| m.get("content"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

async fn chat(State(state): State<MockState>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match intake(&state, "/v1/chat/completions", headers, &body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let model = body.get("model").cloned().unwrap_or(Value::Null);
    let reply = format!("{} says: {}", state.name, last_user_text(&body));
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        let words: Vec<String> = reply.split(' ').map(|w| format!("{w} ")).collect();
        let chunks = words
            .iter()
            .enumerate()
            .map(|(i, w)| {
                json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": model,
                    "choices": [{"index": 0, "delta": if i == 0 { json!({"role": "assistant", "content": w}) } else { json!({"content": w}) }, "finish_reason": null}]})
            })
            .chain(std::iter::once(json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": model,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})))
            .collect();
        return sse(&state, chunks);
    }
    axum::Json(json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    }))
    .into_response()
}

async fn completions(State(state): State<MockState>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match intake(&state, "/v1/completions", headers, &body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let model = body.get("model").cloned().unwrap_or(Value::Null);
    let prompt = body
        .get("prompt")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let text = format!("{} completes: {prompt}", state.name);
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        let chunks = text
            .split(' ')
            .map(|w| {
                json!({"id": "cmpl-mock", "object": "text_completion", "created": 1, "model": model,
                "choices": [{"index": 0, "text": format!("{w} "), "finish_reason": null}]})
            })
            .collect();
        return sse(&state, chunks);
    }
    axum::Json(json!({
        "id": "cmpl-mock", "object": "text_completion", "created": 1, "model": model,
        "choices": [{"index": 0, "text": text, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    }))
    .into_response()
}

async fn embeddings(State(state): State<MockState>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match intake(&state, "/v1/embeddings", headers, &body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let inputs = match body.get("input") {
        Some(Value::Array(a)) => a.len(),
        _ => 1,
    };
    let data: Vec<Value> = (0..inputs)
        .map(|i| json!({"object": "embedding", "embedding": [i as f64, 0.5, -1.0], "index": i}))
        .collect();
    axum::Json(json!({"object": "list", "data": data, "model": body.get("model"), "usage": {"prompt_tokens": 1, "total_tokens": 1}}))
        .into_response()
}

/// `mlflow models serve`: echoes the inputs as predictions (texts upper-cased, embeddings as
/// vectors of the text lengths), unless an answer was set.
async fn invocations(State(state): State<MockState>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match intake(&state, "/invocations", headers, &body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Some(answer) = state
        .behaviour
        .invocations_answer
        .lock()
        .ok()
        .and_then(|a| a.clone())
    {
        return axum::Json(answer).into_response();
    }
    let predictions: Vec<Value> = body
        .get("inputs")
        .and_then(Value::as_array)
        .map(|inputs| {
            inputs
                .iter()
                .map(|i| match i.as_str() {
                    Some(s) => json!(s.to_uppercase()),
                    None => json!(i.to_string()),
                })
                .collect()
        })
        .unwrap_or_default();
    axum::Json(json!({"predictions": predictions})).into_response()
}

fn sse(state: &MockState, chunks: Vec<Value>) -> Response {
    let break_after = state.behaviour.break_stream_after.load(Ordering::SeqCst) as usize;
    let omit_done = state.behaviour.omit_done.load(Ordering::SeqCst);
    let mut events: Vec<Result<Bytes, std::io::Error>> = Vec::new();
    for (i, c) in chunks.into_iter().enumerate() {
        if break_after > 0 && i == break_after {
            events.push(Err(std::io::Error::other("injected break")));
            break;
        }
        events.push(Ok(Bytes::from(format!("data: {c}\n\n"))));
    }
    if break_after == 0 && !omit_done {
        events.push(Ok(Bytes::from_static(b"data: [DONE]\n\n")));
    }
    // Chunks arrive one at a time, as a model generates them.
    let gap = Duration::from_millis(state.behaviour.stream_gap_ms.load(Ordering::SeqCst));
    let stream =
        futures::stream::iter(events.into_iter().enumerate()).then(move |(i, e)| async move {
            let pause = if i == 1 {
                gap.max(Duration::from_millis(5))
            } else {
                Duration::from_millis(5)
            };
            tokio::time::sleep(pause).await;
            e
        });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
