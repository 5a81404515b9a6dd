//! One signed POST to a webhook endpoint. The client speaks HTTP/1.1 over rustls (ring, the
//! webpki root set), follows no redirects, reads no proxy settings from the environment, and
//! checks the peer address of every new connection against the [`UrlPolicy`] before the TLS
//! handshake or any request byte, which is what defeats DNS rebinding.

use crate::payload::{DELIVERY_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
use crate::policy::UrlPolicy;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// At most this much of a response body is kept (for `/test` and error reports).
const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// A connection refused by the address policy; never retried.
#[derive(Debug)]
struct Blocked(String);

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Blocked {}

/// A TCP connector that refuses to hand over a connection to a non-public peer.
#[derive(Clone)]
struct GuardedConnector {
    inner: HttpConnector,
    policy: UrlPolicy,
}

impl tower_service::Service<Uri> for GuardedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let mut inner = self.inner.clone();
        let policy = self.policy;
        Box::pin(async move {
            let host = uri.host().unwrap_or_default().to_string();
            let io = inner.call(uri).await?;
            let peer = io.inner().peer_addr()?;
            if let Err(e) = policy.check_ip(&host, peer.ip()) {
                return Err(Box::new(Blocked(format!(
                    "Webhook connection blocked: {e} This may indicate a DNS rebinding attempt.",
                    e = e.message
                ))) as BoxError);
            }
            Ok(io)
        })
    }
}

/// The result of one request.
#[derive(Clone, Debug)]
pub enum Attempt {
    /// The endpoint answered (any status; redirects are reported, not followed).
    Response {
        status: u16,
        body: String,
        location: Option<String>,
        retry_after: Option<Duration>,
    },
    /// No answer. `retryable` is false when the address policy refused the connection.
    Failed { message: String, retryable: bool },
}

/// A reusable HTTP client bound to one address policy.
#[derive(Clone)]
pub struct Sender {
    client: Client<hyper_rustls::HttpsConnector<GuardedConnector>, Full<Bytes>>,
    policy: UrlPolicy,
    timeout: Duration,
}

impl Sender {
    pub fn new(policy: UrlPolicy, timeout: Duration) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup failed: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        http.set_nodelay(true);
        let guarded = GuardedConnector {
            inner: http,
            policy,
        };
        let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls);
        let connector = if policy.allow_http {
            builder
                .https_or_http()
                .enable_http1()
                .wrap_connector(guarded)
        } else {
            builder.https_only().enable_http1().wrap_connector(guarded)
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(4)
            .build(connector);
        Ok(Sender {
            client,
            policy,
            timeout,
        })
    }

    pub fn policy(&self) -> UrlPolicy {
        self.policy
    }

    /// POSTs `body` to `url` with MLflow's headers; signs it when there is a secret.
    pub async fn post(
        &self,
        url: &str,
        delivery_id: &str,
        secret: Option<&str>,
        body: String,
    ) -> Attempt {
        let checked = match self.policy.check_static(url) {
            Ok(c) => c,
            Err(e) => {
                return Attempt::Failed {
                    message: e.message,
                    retryable: false,
                };
            }
        };
        let timestamp = unix_seconds().to_string();
        let mut request = hyper::Request::post(checked.url.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(
                hyper::header::USER_AGENT,
                concat!("mlox-webhooks/", env!("CARGO_PKG_VERSION")),
            )
            .header(DELIVERY_ID_HEADER, delivery_id)
            .header(TIMESTAMP_HEADER, &timestamp);
        if let Some(secret) = secret.filter(|s| !s.is_empty()) {
            request = request.header(
                SIGNATURE_HEADER,
                sign(secret, delivery_id, &timestamp, &body),
            );
        }
        let request = match request.body(Full::new(Bytes::from(body))) {
            Ok(r) => r,
            Err(e) => {
                return Attempt::Failed {
                    message: format!("Invalid request: {e}"),
                    retryable: false,
                };
            }
        };
        let exchange = async {
            let response = self.client.request(request).await.map_err(describe)?;
            let status = response.status().as_u16();
            let header = |name: hyper::header::HeaderName| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let location = header(hyper::header::LOCATION);
            let retry_after = header(hyper::header::RETRY_AFTER)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let mut body = response.into_body();
            let mut kept: Vec<u8> = Vec::new();
            while kept.len() < MAX_RESPONSE_BODY {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            let room = MAX_RESPONSE_BODY - kept.len();
                            kept.extend_from_slice(&data[..data.len().min(room)]);
                        }
                    }
                    // The status is what counts; a body cut short does not change it.
                    Some(Err(_)) | None => break,
                }
            }
            Ok::<_, (String, bool)>(Attempt::Response {
                status,
                body: String::from_utf8_lossy(&kept).into_owned(),
                location,
                retry_after,
            })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(attempt)) => attempt,
            Ok(Err((message, retryable))) => Attempt::Failed { message, retryable },
            Err(_) => Attempt::Failed {
                message: format!("Request timed out after {:?}", self.timeout),
                retryable: true,
            },
        }
    }
}

/// Flattens a client error into a message, and decides whether trying again could help.
fn describe(err: hyper_util::client::legacy::Error) -> (String, bool) {
    let mut message = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        if let Some(blocked) = s.downcast_ref::<Blocked>() {
            return (blocked.0.clone(), false);
        }
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    (message, true)
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
