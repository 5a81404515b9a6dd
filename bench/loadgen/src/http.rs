//! The HTTP side of the load generator: a target (one base URL of a server) and a
//! single keep-alive HTTP/1.1 connection per worker, reconnected after any failure. Each worker
//! owning its connection means no pool bookkeeping sits inside the measured latency, and a
//! request never waits behind another worker's request on the client side.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode, Uri, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Where one server listens, parsed once from `http://[user:password@]host:port[/prefix]`;
/// credentials in the URL are sent as HTTP basic auth with every request.
#[derive(Debug, Clone)]
pub struct Target {
    authority: String,
    prefix: String,
    authorization: Option<String>,
}

impl Target {
    pub fn parse(url: &str) -> Result<Self> {
        let uri: Uri = url.parse().with_context(|| format!("bad url {url:?}"))?;
        if uri.scheme_str() != Some("http") {
            bail!("only plain http:// targets are supported, got {url:?}");
        }
        let authority = uri
            .authority()
            .ok_or_else(|| anyhow!("url {url:?} has no host"))?;
        let authorization = authority
            .as_str()
            .rsplit_once('@')
            .map(|(userinfo, _)| format!("Basic {}", base64(userinfo.as_bytes())));
        let host_port = match authority.port_u16() {
            Some(port) => format!("{}:{port}", authority.host()),
            None => format!("{}:80", authority.host()),
        };
        Ok(Self {
            authority: host_port,
            prefix: uri.path().trim_end_matches('/').to_owned(),
            authorization,
        })
    }
}

const JSON: &str = "application/json";

/// A worker's own connection to one target.
pub struct Conn {
    target: Target,
    sender: Option<SendRequest<Full<Bytes>>>,
    timeout: Duration,
}

/// Status and full body of one exchange.
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "status {} with a body that is not JSON: {}",
                self.status,
                snippet(&self.body)
            )
        })
    }

    /// The JSON body of a 2xx answer, or an error that carries the server's message.
    pub fn ok_json(&self) -> Result<serde_json::Value> {
        if !self.status.is_success() {
            bail!("status {}: {}", self.status, snippet(&self.body));
        }
        self.json()
    }
}

/// Standard base64 with padding, for the one header that needs it.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let bytes = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(bytes[0]) << 16) | (u32::from(bytes[1]) << 8) | u32::from(bytes[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The first few hundred bytes of a body, for error messages.
pub fn snippet(body: &[u8]) -> String {
    let cut = body.len().min(300);
    String::from_utf8_lossy(&body[..cut]).into_owned()
}

impl Conn {
    pub fn new(target: Target, timeout: Duration) -> Self {
        Self {
            target,
            sender: None,
            timeout,
        }
    }

    async fn connect(&mut self) -> Result<&mut SendRequest<Full<Bytes>>> {
        let stream = TcpStream::connect(&self.target.authority)
            .await
            .with_context(|| format!("connect {}", self.target.authority))?;
        // Small JSON requests must not sit in Nagle's buffer waiting for an ACK.
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // The connection's own error resurfaces on the next send; nothing to do with it here.
            let _ = connection.await;
        });
        Ok(self.sender.insert(sender))
    }

    /// One request/response exchange. `path` is relative to the target's prefix and may carry a
    /// query string; `body`, if any, is sent as JSON.
    pub async fn send(&mut self, method: Method, path: &str, body: Option<Bytes>) -> Result<Reply> {
        self.send_with(method, path, body, JSON, None).await
    }

    /// [`Conn::send`] with a body of any `content_type` and one extra header (OTLP exports name
    /// their experiment in one).
    pub async fn send_with(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        content_type: &str,
        extra_header: Option<(&str, &str)>,
    ) -> Result<Reply> {
        let timeout = self.timeout;
        let exchange = self.exchange(method, path, body, content_type, extra_header);
        let outcome = tokio::time::timeout(timeout, exchange).await;
        let result = match outcome {
            Ok(result) => result,
            Err(_) => Err(anyhow!("no answer within {:?}", self.timeout)),
        };
        if result.is_err() {
            // Whatever state the connection is in now, it cannot be trusted for the next request.
            self.sender = None;
        }
        result
    }

    async fn exchange(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        content_type: &str,
        extra_header: Option<(&str, &str)>,
    ) -> Result<Reply> {
        let uri = format!("{}{}", self.target.prefix, path);
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, self.target.authority.as_str())
            .header(header::USER_AGENT, "mlox-bench");
        if let Some(authorization) = &self.target.authorization {
            builder = builder.header(header::AUTHORIZATION, authorization.as_str());
        }
        if body.is_some() {
            builder = builder.header(header::CONTENT_TYPE, content_type);
        }
        if let Some((name, value)) = extra_header {
            builder = builder.header(name, value);
        }
        let request = builder.body(Full::new(body.unwrap_or_default()))?;

        let sender = match self.sender.as_mut() {
            Some(sender) if !sender.is_closed() => sender,
            _ => self.connect().await?,
        };
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Reply { status, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        let t = Target::parse("http://127.0.0.1:5000").unwrap();
        assert_eq!(t.authority, "127.0.0.1:5000");
        assert_eq!(t.prefix, "");
        let t = Target::parse("http://localhost/mlflow/").unwrap();
        assert_eq!(t.authority, "localhost:80");
        assert_eq!(t.prefix, "/mlflow");
        assert!(Target::parse("https://x:1").is_err());
        assert_eq!(t.authorization, None);
    }

    #[test]
    fn credentials_in_the_url_become_basic_auth() {
        let t = Target::parse("http://alice:open%20sesame@127.0.0.1:5000").unwrap();
        assert_eq!(t.authority, "127.0.0.1:5000");
        // RFC 7617's example pair, percent-encoding kept as written in the URL.
        assert_eq!(
            t.authorization.as_deref(),
            Some("Basic YWxpY2U6b3BlbiUyMHNlc2FtZQ==")
        );
        assert_eq!(
            base64(b"Aladdin:open sesame"),
            "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }
}
