//! OpenAI's API for the language models a server holds: `GET /v1/models`,
//! `POST /v1/chat/completions`, `/v1/completions` (both with `stream: true` as server-sent
//! events ending in `data: [DONE]`) and `/v1/embeddings`. `model` names a served model; a
//! server with one model also answers requests that leave it out. Errors are OpenAI's
//! `{"error": {"message", "type", "param", "code"}}`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream};
use mlox_core::{Code, Error};
use mlox_runtime::language::{GenerationEvent, LanguageModel};
use serde_json::{Value, json};

use super::{RestState, http_status, is_server_fault, read_body};
use crate::language::{self, OpenAiGeneration, StreamShape};

/// OpenAI's error body with the status of the error's code.
pub(super) fn error(e: Error) -> Response {
    let status = http_status(e.code);
    if is_server_fault(e.code) {
        tracing::error!(%status, message = %e.message, "OpenAI-compatible request failed");
    }
    let (kind, code) = match e.code {
        Code::ResourceDoesNotExist => ("invalid_request_error", Some("model_not_found")),
        Code::TemporarilyUnavailable => ("server_error", Some("overloaded")),
        c if c.http_status() >= 500 => ("server_error", None),
        _ => ("invalid_request_error", None),
    };
    (
        status,
        Json(json!({"error": {"message": e.message, "type": kind, "param": null, "code": code}})),
    )
        .into_response()
}

async fn json_body(s: &RestState, body: Body) -> Result<Value, Error> {
    let bytes = read_body(body, s.config.max_body_bytes).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::invalid(format!("the request body is not valid JSON: {e}")))
}

pub(super) async fn models(State(s): State<RestState>) -> Response {
    let data: Vec<Value> = s
        .dataplane
        .language_models()
        .into_iter()
        .map(|name| json!({"id": name, "object": "model", "created": 0, "owned_by": "mlox"}))
        .collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

pub(super) async fn chat_completions(State(s): State<RestState>, body: Body) -> Response {
    generate(s, body, true).await
}

pub(super) async fn completions(State(s): State<RestState>, body: Body) -> Response {
    generate(s, body, false).await
}

async fn generate(s: RestState, body: Body, chat: bool) -> Response {
    let answer = async {
        let body = json_body(&s, body).await?;
        let request = if chat {
            language::parse_chat(&body)?
        } else {
            language::parse_completion(&body)?
        };
        let (name, model) = s.dataplane.language_model(request.model.as_deref())?;
        if request.stream {
            return stream_answer(model, &name, request, chat).await;
        }
        let value = language::openai_answer(model.as_ref(), &name, request, chat).await?;
        Ok(Json(value).into_response())
    };
    answer.await.unwrap_or_else(error)
}

async fn stream_answer(
    model: Arc<dyn LanguageModel>,
    name: &str,
    mut request: OpenAiGeneration,
    chat: bool,
) -> Result<Response, Error> {
    let Some(generation) = request.generations.pop() else {
        return Err(Error::invalid("no prompt"));
    };
    // Errors found before the first token (too long, queue full) are still a plain HTTP error.
    let events = model.generate(generation).await?;
    let shape = StreamShape::new(name, chat, request.include_usage);
    let first: Vec<Value> = shape.role().into_iter().collect();
    Ok(Sse::new(chunks(events, shape, first))
        .keep_alive(KeepAlive::default())
        .into_response())
}

struct StreamState {
    events: tokio::sync::mpsc::UnboundedReceiver<mlox_core::Result<GenerationEvent>>,
    shape: StreamShape,
    ready: std::collections::VecDeque<String>,
    finished: bool,
}

fn chunks(
    events: tokio::sync::mpsc::UnboundedReceiver<mlox_core::Result<GenerationEvent>>,
    shape: StreamShape,
    first: Vec<Value>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let state = StreamState {
        events,
        shape,
        ready: first.iter().map(Value::to_string).collect(),
        finished: false,
    };
    // Dropping this stream (the client went away) drops the receiver, which cancels the
    // generation in the engine.
    stream::unfold(state, |mut st| async move {
        loop {
            if let Some(data) = st.ready.pop_front() {
                return Some((Ok(Event::default().data(data)), st));
            }
            if st.finished {
                return None;
            }
            match st.events.recv().await {
                Some(Ok(GenerationEvent::Text(piece))) => {
                    st.ready.push_back(st.shape.text(&piece).to_string());
                }
                Some(Ok(GenerationEvent::Done(summary))) => {
                    st.ready
                        .extend(st.shape.end(&summary).iter().map(Value::to_string));
                    st.ready.push_back("[DONE]".into());
                    st.finished = true;
                }
                Some(Err(e)) => {
                    let body = json!({"error": {"message": e.message, "type": "server_error",
                        "param": null, "code": null}});
                    st.ready.push_back(body.to_string());
                    st.ready.push_back("[DONE]".into());
                    st.finished = true;
                }
                None => {
                    st.ready.push_back("[DONE]".into());
                    st.finished = true;
                }
            }
        }
    })
}

pub(super) async fn embeddings(State(s): State<RestState>, body: Body) -> Response {
    let answer = async {
        let body = json_body(&s, body).await?;
        let request = language::parse_embedding(&body)?;
        let (name, model) = s.dataplane.language_model(request.model.as_deref())?;
        let embeddings = model.embed(request.input).await?;
        let value = language::openai_embeddings(embeddings, &name, request.base64)?;
        Ok::<_, Error>(Json(value).into_response())
    };
    answer.await.unwrap_or_else(error)
}
