//! Server-sent events to the client. Every stream the gateway sends ends with `data: [DONE]`
//! (MLflow's never does, OpenAI's always does), and a failure after the stream began becomes
//! an error event in OpenAI's shape, since the status line has already been sent.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use eventsource_stream::Eventsource as _;
use futures::Stream;
use futures::stream::{self, BoxStream, StreamExt};

use crate::catalog::{Usage, usage_of};
use crate::error::GatewayError;

pub type SseStream = BoxStream<'static, Result<Bytes, Infallible>>;

pub const DONE: &[u8] = b"data: [DONE]\n\n";

/// One `data:` event. Serialized JSON is one line; data of several lines (from an upstream
/// that pretty-prints) gets one `data:` field per line, which clients join back.
pub fn data_event(data: &[u8]) -> Bytes {
    let mut event = Vec::with_capacity(data.len() + 8);
    for (i, line) in data.split(|b| *b == b'\n').enumerate() {
        if i > 0 {
            event.push(b'\n');
        }
        event.extend_from_slice(b"data: ");
        event.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
    }
    event.extend_from_slice(b"\n\n");
    Bytes::from(event)
}

pub fn error_event(error: &GatewayError) -> Bytes {
    data_event(error.openai_body().to_string().as_bytes())
}

/// A whole answer as a stream: its chunks, then `[DONE]`.
pub fn from_chunks(chunks: Vec<Vec<u8>>) -> SseStream {
    let events = chunks
        .into_iter()
        .map(|c| Ok(data_event(&c)))
        .chain(std::iter::once(Ok(Bytes::from_static(DONE))));
    stream::iter(events).boxed()
}

/// Passes an upstream's event stream on event by event, as it arrives. The upstream's own
/// `[DONE]` ends the stream; one is added when the upstream closes without it. An upstream
/// silent for `idle` ends the stream with an error event, so a hung upstream cannot hold a
/// client forever.
pub fn relay(response: reqwest::Response, idle: Duration) -> SseStream {
    relay_mapped(response, idle, |data| vec![data.as_bytes().to_vec()])
}

/// [`relay`], each upstream event's data turned into the data of zero or more events by `map`
/// (for upstreams that stream in a shape of their own).
pub fn relay_mapped(
    response: reqwest::Response,
    idle: Duration,
    map: impl FnMut(&str) -> Vec<Vec<u8>> + Send + 'static,
) -> SseStream {
    let events = response.bytes_stream().eventsource();
    stream::unfold(Some((events, map)), move |state| async move {
        let (mut events, mut map) = state?;
        loop {
            let Ok(next) = tokio::time::timeout(idle, events.next()).await else {
                let error = GatewayError::Timeout(format!(
                    "the upstream sent nothing for {} s mid-stream",
                    idle.as_secs_f64()
                ));
                let tail = Bytes::from([&error_event(&error)[..], DONE].concat());
                return Some((Ok(tail), None));
            };
            match next {
                None => return Some((Ok(Bytes::from_static(DONE)), None)),
                Some(Ok(event)) => {
                    let data = event.data.trim();
                    if data.is_empty() {
                        continue;
                    }
                    if data == "[DONE]" {
                        return Some((Ok(Bytes::from_static(DONE)), None));
                    }
                    if event.event == "error" {
                        // Some upstreams name error events; clients of OpenAI's API read
                        // only `data:` lines, so the error travels there.
                        let error = GatewayError::BadGateway(format!(
                            "the upstream reported an error mid-stream: {data}"
                        ));
                        return Some((Ok(error_event(&error)), Some((events, map))));
                    }
                    let mapped = map(data);
                    if mapped.is_empty() {
                        continue;
                    }
                    let out: Vec<u8> = mapped.iter().flat_map(|d| data_event(d)).collect();
                    return Some((Ok(Bytes::from(out)), Some((events, map))));
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "upstream stream broke off");
                    let error =
                        GatewayError::BadGateway(format!("the upstream stream broke off: {e}"));
                    let tail = Bytes::from([&error_event(&error)[..], DONE].concat());
                    return Some((Ok(tail), None));
                }
            }
        }
    })
    .boxed()
}

/// Whether a chat request asked for the usage chunk itself (`stream_options.include_usage`);
/// the gateway asks upstreams for it always, and keeps it from clients that did not.
pub fn client_wants_usage(body: &serde_json::Map<String, serde_json::Value>) -> bool {
    body.get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(serde_json::Value::as_bool)
        == Some(true)
}

/// Passes `stream` on, noting the last `usage` its events carry (OpenAI sends it in a final
/// chunk without choices when asked with `stream_options.include_usage`), and hands it to
/// `on_end` once the stream ends or is dropped (a client that goes away still pays for what
/// it got). Unless `pass_usage_chunk`, that usage-only chunk is kept from the client, which
/// did not ask for it.
pub fn tap_usage(
    stream: SseStream,
    pass_usage_chunk: bool,
    on_end: impl FnOnce(Option<Usage>) + Send + 'static,
) -> SseStream {
    UsageTap {
        inner: stream,
        usage: None,
        pass_usage_chunk,
        on_end: Some(Box::new(on_end)),
    }
    .boxed()
}

type UsageCallback = Box<dyn FnOnce(Option<Usage>) + Send>;

struct UsageTap {
    inner: SseStream,
    usage: Option<Usage>,
    pass_usage_chunk: bool,
    on_end: Option<UsageCallback>,
}

impl UsageTap {
    /// Notes the event's usage; returns whether the event is only that (no choices).
    fn note(&mut self, event: &[u8]) -> bool {
        // Our streams carry whole events per item; their data lines joined are the JSON.
        let Ok(text) = std::str::from_utf8(event) else {
            return false;
        };
        if !text.contains("usage") {
            return false;
        }
        // An item may hold several events (a translated upstream event can become more).
        let mut only_usage = false;
        for event in text.split("\n\n").filter(|e| !e.trim().is_empty()) {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            let Ok(value) = serde_json::from_str::<serde_json::Value>(&data.join("\n")) else {
                continue;
            };
            let Some(usage) = usage_of(&value) else {
                continue;
            };
            self.usage = Some(usage);
            only_usage = value
                .get("choices")
                .and_then(serde_json::Value::as_array)
                .is_some_and(Vec::is_empty);
        }
        only_usage
    }

    fn finish(&mut self) {
        if let Some(on_end) = self.on_end.take() {
            on_end(self.usage);
        }
    }
}

impl Stream for UsageTap {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let polled = self.inner.poll_next_unpin(cx);
            match &polled {
                Poll::Ready(Some(Ok(event))) => {
                    let event = event.clone();
                    if self.note(&event) && !self.pass_usage_chunk {
                        continue;
                    }
                }
                Poll::Ready(None) => self.finish(),
                _ => {}
            }
            return polled;
        }
    }
}

impl Drop for UsageTap {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_last_usage_of_a_stream_is_reported_once_it_ends() {
        let (tx, rx) = std::sync::mpsc::channel();
        let chunks = vec![
            br#"{"choices":[{"delta":{"content":"hi"}}],"usage":null}"#.to_vec(),
            br#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3}}"#.to_vec(),
        ];
        for pass_usage_chunk in [true, false] {
            let tx = tx.clone();
            let tapped = tap_usage(
                from_chunks(chunks.clone()),
                pass_usage_chunk,
                move |usage| {
                    tx.send(usage).unwrap();
                },
            );
            let passed: Vec<Bytes> = tapped.map(|e| e.unwrap()).collect().await;
            // The usage-only chunk reaches only clients that asked for it.
            assert_eq!(passed.len(), if pass_usage_chunk { 3 } else { 2 });
            assert_eq!(&passed[passed.len() - 1][..], DONE);
            let usage = rx.recv().unwrap().unwrap();
            assert_eq!((usage.input_tokens, usage.output_tokens), (7, 3));
            assert!(rx.try_recv().is_err(), "reported once");
        }
    }

    #[tokio::test]
    async fn a_stream_dropped_early_reports_what_it_saw() {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut tapped = tap_usage(from_chunks(vec![b"{}".to_vec()]), true, move |usage| {
            tx.send(usage).unwrap();
        });
        let _ = tapped.next().await;
        drop(tapped);
        assert_eq!(rx.recv().unwrap(), None);
    }

    #[test]
    fn data_events_keep_every_line_in_a_data_field() {
        assert_eq!(&data_event(b"{\"a\":1}")[..], b"data: {\"a\":1}\n\n");
        assert_eq!(
            &data_event(b"{\n\"a\": 1\r\n}")[..],
            b"data: {\ndata: \"a\": 1\ndata: }\n\n"
        );
    }
}
