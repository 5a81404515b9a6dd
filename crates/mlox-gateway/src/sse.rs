//! Server-sent events to the client. Every stream the gateway sends ends with `data: [DONE]`
//! (MLflow's never does, OpenAI's always does), and a failure after the stream began becomes
//! an error event in OpenAI's shape, since the status line has already been sent.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use eventsource_stream::Eventsource as _;
use futures::stream::{self, BoxStream, StreamExt};

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
    let events = response.bytes_stream().eventsource();
    stream::unfold(Some(events), move |state| async move {
        let mut events = state?;
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
                        return Some((Ok(error_event(&error)), Some(events)));
                    }
                    return Some((Ok(data_event(data.as_bytes())), Some(events)));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_events_keep_every_line_in_a_data_field() {
        assert_eq!(&data_event(b"{\"a\":1}")[..], b"data: {\"a\":1}\n\n");
        assert_eq!(
            &data_event(b"{\n\"a\": 1\r\n}")[..],
            b"data: {\ndata: \"a\": 1\ndata: }\n\n"
        );
    }
}
