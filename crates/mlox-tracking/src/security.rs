//! The browser-facing guards of `mlox server`, as MLflow (3.5 and later) sets them up around its
//! app: the `Host` header check against DNS rebinding (`--allowed-hosts`), the refusal of
//! cross-origin writes to the API and the CORS answers for trusted origins
//! (`--cors-allowed-origins`), and the `X-Frame-Options` / `X-Content-Type-Options` headers
//! (`--x-frame-options`); `--disable-security-middleware` leaves them all out. These guards
//! exist because a tracking server usually runs without authentication on a developer's
//! machine or a private network, where any web page the developer opens could otherwise drive
//! it. They are one layer around the whole router, so every route, the artifact proxy and the
//! web UI included, is behind the same rules; the JSON `Content-Type` that MLflow requires of
//! API writes is checked where request messages are decoded (`request::Msg`), as MLflow
//! checks it, because only those routes carry JSON.
//!
//! Host and origin patterns are globs: `*` is any run of characters, `?` any one; everything
//! else, `[` and `]` of IPv6 literals included, is literal (MLflow's escaped spelling `[[]`
//! is read as `[`), compared without regard to case. Two deliberate differences from MLflow:
//! the first refuses an attack MLflow lets through, the second a legitimate request MLflow
//! refuses.
//! - a pattern that starts with an IPv4 prefix (`10.*`, `192.168.*`) admits only IPv4
//!   literals, so `10.*` does not admit the attacker's name `10.attacker.example`; one that
//!   starts with an IPv6 prefix (`fd00:*`) also matches the address inside the brackets of
//!   `[fd00::1]:5000`, the only way a `Host` header carries it.
//! - a write whose `Origin` is the server's own address (the `Host` the request was sent to,
//!   which the host check has already vetted) is not cross-origin, so the web UI works when
//!   opened at `http://10.0.0.5:5000` without listing that origin.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::access_log::LoggedError;

/// The answer to a request whose `Host` is not allowed (MLflow's words).
pub const INVALID_HOST_MESSAGE: &str =
    "Invalid Host header - possible DNS rebinding attack detected";
/// The answer to a cross-origin write from an origin that is not allowed (MLflow's words).
pub const CROSS_ORIGIN_BLOCKED_MESSAGE: &str = "Cross-origin request blocked";

/// Paths a load balancer or orchestrator probes by address, so they answer whatever `Host`.
const HOST_CHECK_EXEMPT_PATHS: [&str; 2] = ["/health", "/version"];

/// The methods a cross-origin page must not use on the API.
const STATE_CHANGING_METHODS: [Method; 4] =
    [Method::POST, Method::PUT, Method::DELETE, Method::PATCH];

const PREFLIGHT_ALLOWED_METHODS: &str = "GET, POST, PUT, DELETE, OPTIONS, PATCH";

/// The loopback names a browser may show as an origin's host.
const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// What `mlox server` was told about its security layer, before defaults are applied.
#[derive(Clone, Debug, Default)]
pub struct SecurityFlags<'a> {
    /// `--allowed-hosts`: comma-separated host patterns; unset or empty means the defaults.
    pub allowed_hosts: Option<&'a str>,
    /// `--cors-allowed-origins`: comma-separated origin patterns; unset or empty means
    /// loopback origins only.
    pub cors_allowed_origins: Option<&'a str>,
    /// `--x-frame-options`: `SAMEORIGIN`, `DENY` or `NONE` (no header).
    pub x_frame_options: Option<&'a str>,
    /// `--disable-security-middleware`.
    pub disable: bool,
    /// `MLFLOW_SERVER_DISABLE_SECURITY_MIDDLEWARE`; only the exact string `true` disables, as
    /// in MLflow, so a stray `1` or `yes` never silently removes the protection.
    pub disable_env: Option<&'a str>,
    /// `--host`: the address the server listens on.
    pub bind_host: &'a str,
}

/// The security layer's configuration with MLflow's defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityConfig {
    pub enabled: bool,
    /// Host patterns a request's `Host` must match; `["*"]` turns the check off.
    pub allowed_hosts: Vec<String>,
    /// Origins (patterns) trusted besides loopback ones; `["*"]` trusts every origin, without
    /// credentials, and blocks none.
    pub cors_allowed_origins: Vec<String>,
    /// The `X-Frame-Options` value; `None` when `NONE` was asked for.
    pub x_frame_options: Option<String>,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            enabled: true,
            allowed_hosts: default_allowed_hosts(),
            cors_allowed_origins: Vec::new(),
            x_frame_options: Some("SAMEORIGIN".to_string()),
        }
    }
}

/// MLflow's default host patterns: loopback and the unspecified address, with and without a
/// port, and the private address ranges (RFC 1918, RFC 4193).
pub fn default_allowed_hosts() -> Vec<String> {
    let local = ["localhost", "127.0.0.1", "[::1]", "0.0.0.0"];
    let mut hosts: Vec<String> = local.iter().map(|h| h.to_string()).collect();
    hosts.extend(local.iter().map(|h| format!("{h}:*")));
    hosts.push("10.*".to_string());
    hosts.push("192.168.*".to_string());
    hosts.extend((16..=31).map(|second| format!("172.{second}.*")));
    hosts.push("fc00:*".to_string());
    hosts.push("fd00:*".to_string());
    hosts
}

fn comma_list(value: Option<&str>) -> Vec<String> {
    value
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_string)
        .collect()
}

/// The spellings of the address the server listens on, as a `Host` header carries it; none
/// for the unspecified addresses, which no client sends.
fn bind_host_patterns(bind_host: &str) -> Vec<String> {
    let bare = bind_host
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']');
    if bare.is_empty() || bare == "0.0.0.0" || bare == "::" {
        return Vec::new();
    }
    let host = if bare.parse::<Ipv6Addr>().is_ok() {
        format!("[{bare}]")
    } else {
        bare.to_string()
    };
    vec![format!("{host}:*"), host]
}

impl SecurityConfig {
    /// The configuration `mlox server`'s flags ask for. Fails only on an `X-Frame-Options`
    /// value that cannot be a header.
    pub fn from_flags(flags: &SecurityFlags<'_>) -> Result<SecurityConfig, String> {
        let enabled = !(flags.disable || flags.disable_env == Some("true"));
        let mut allowed_hosts = comma_list(flags.allowed_hosts);
        if allowed_hosts.is_empty() {
            allowed_hosts = default_allowed_hosts();
        }
        if !allowed_hosts.iter().any(|h| h == "*") {
            // The user must reach the server at the address they told it to listen on.
            for pattern in bind_host_patterns(flags.bind_host) {
                if !allowed_hosts.contains(&pattern) {
                    allowed_hosts.push(pattern);
                }
            }
        }
        let x_frame_options = match flags.x_frame_options.map(str::trim) {
            None | Some("") => Some("SAMEORIGIN".to_string()),
            Some(value) if value.eq_ignore_ascii_case("NONE") => None,
            Some(value) => {
                let value = value.to_ascii_uppercase();
                HeaderValue::from_str(&value)
                    .map_err(|_| format!("--x-frame-options {value:?} is not a header value"))?;
                Some(value)
            }
        };
        Ok(SecurityConfig {
            enabled,
            allowed_hosts,
            cors_allowed_origins: comma_list(flags.cors_allowed_origins),
            x_frame_options,
        })
    }

    /// The router behind this configuration's guards; the router itself when they are off.
    pub fn protect(&self, router: Router) -> Router {
        if !self.enabled {
            tracing::warn!(
                "security middleware disabled: no Host check, no cross-origin write guard, no \
                 X-Frame-Options; any web page a user opens can drive this server"
            );
            return router;
        }
        if self.allowed_hosts.iter().any(|h| h == "*") {
            tracing::warn!("--allowed-hosts '*': the server is open to DNS rebinding");
        }
        if self.cors_allowed_origins.iter().any(|o| o == "*") {
            tracing::warn!("--cors-allowed-origins '*': any web site may write to this server");
        }
        let policy = Arc::new(Policy::new(self));
        router.layer(axum::middleware::from_fn_with_state(policy, enforce))
    }
}

/// A compiled host or origin pattern.
#[derive(Clone, Debug)]
struct Pattern {
    glob: Glob,
    /// Which hosts the pattern may match at all.
    admits: Admits,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Admits {
    Anything,
    /// The pattern starts with an IPv4 prefix: only IPv4 literals.
    Ipv4Literals,
    /// The pattern starts with an IPv6 prefix: also matched against the address inside the
    /// brackets of an IPv6 literal, which is how a `Host` header carries one.
    Ipv6Literals,
}

impl Pattern {
    fn host(text: &str) -> Pattern {
        let glob = Glob::new(text);
        let prefix = glob.literal_prefix();
        let admits = if !glob.has_wildcard() {
            Admits::Anything
        } else if prefix.contains('.') && prefix.chars().all(|c| c.is_ascii_digit() || c == '.') {
            Admits::Ipv4Literals
        } else if prefix.contains(':') && prefix.chars().all(|c| c.is_ascii_hexdigit() || c == ':')
        {
            Admits::Ipv6Literals
        } else {
            Admits::Anything
        };
        Pattern { glob, admits }
    }

    fn matches_host(&self, host: &str) -> bool {
        match self.admits {
            Admits::Anything => self.glob.matches(host),
            Admits::Ipv4Literals => {
                let name = host.rsplit_once(':').map_or(host, |(name, _port)| name);
                name.parse::<Ipv4Addr>().is_ok() && self.glob.matches(host)
            }
            Admits::Ipv6Literals => {
                self.glob.matches(host)
                    || host
                        .strip_prefix('[')
                        .and_then(|rest| rest.split_once(']'))
                        .is_some_and(|(address, _port)| {
                            address.parse::<Ipv6Addr>().is_ok() && self.glob.matches(address)
                        })
            }
        }
    }
}

/// A glob over characters: `*` any run, `?` any one character, the rest literal and
/// compared in lower case.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Glob(Vec<Token>);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    Literal(char),
    AnyOne,
    AnyRun,
}

impl Glob {
    fn new(text: &str) -> Glob {
        // MLflow's patterns escape the bracket of `[::1]` for fnmatch as `[[]`.
        let text = text.replace("[[]", "[").to_lowercase();
        Glob(
            text.chars()
                .map(|c| match c {
                    '*' => Token::AnyRun,
                    '?' => Token::AnyOne,
                    other => Token::Literal(other),
                })
                .collect(),
        )
    }

    fn has_wildcard(&self) -> bool {
        self.0.iter().any(|t| !matches!(t, Token::Literal(_)))
    }

    fn literal_prefix(&self) -> String {
        self.0
            .iter()
            .map_while(|t| match t {
                Token::Literal(c) => Some(*c),
                _ => None,
            })
            .collect()
    }

    /// Wildcard matching that backtracks only to the last `*`, so it is linear in practice
    /// and never exponential, whatever the header an attacker sends.
    fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.to_lowercase().chars().collect();
        let tokens = &self.0;
        let (mut t, mut p) = (0usize, 0usize);
        let mut last_run: Option<(usize, usize)> = None;
        while t < text.len() {
            match tokens.get(p) {
                Some(Token::AnyRun) => {
                    last_run = Some((p, t));
                    p += 1;
                }
                Some(Token::AnyOne) => {
                    p += 1;
                    t += 1;
                }
                Some(Token::Literal(c)) if *c == text[t] => {
                    p += 1;
                    t += 1;
                }
                _ => match last_run {
                    Some((run, start)) => {
                        p = run + 1;
                        t = start + 1;
                        last_run = Some((run, start + 1));
                    }
                    None => return false,
                },
            }
        }
        tokens[p.min(tokens.len())..]
            .iter()
            .all(|token| *token == Token::AnyRun)
    }
}

/// Which origins may write cross-origin and get CORS answers.
#[derive(Debug)]
enum Origins {
    /// `*`: every origin, without credentials; nothing is blocked.
    Any,
    /// Loopback origins and these patterns, with credentials.
    Listed(Vec<Pattern>),
}

/// The configuration compiled for the per-request checks.
#[derive(Debug)]
struct Policy {
    /// `None` when `*` turned the host check off.
    allowed_hosts: Option<Vec<Pattern>>,
    origins: Origins,
    x_frame_options: Option<HeaderValue>,
}

impl Policy {
    fn new(config: &SecurityConfig) -> Policy {
        let allowed_hosts = (!config.allowed_hosts.iter().any(|h| h == "*")).then(|| {
            config
                .allowed_hosts
                .iter()
                .map(|h| Pattern::host(h))
                .collect()
        });
        let origins = if config.cors_allowed_origins.iter().any(|o| o == "*") {
            Origins::Any
        } else {
            Origins::Listed(
                config
                    .cors_allowed_origins
                    .iter()
                    .map(|o| Pattern {
                        glob: Glob::new(o.trim_end_matches('/')),
                        admits: Admits::Anything,
                    })
                    .collect(),
            )
        };
        Policy {
            allowed_hosts,
            origins,
            x_frame_options: config
                .x_frame_options
                .as_deref()
                .and_then(|v| HeaderValue::from_str(v).ok()),
        }
    }

    fn host_allowed(&self, host: Option<&str>) -> bool {
        match (&self.allowed_hosts, host) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(patterns), Some(host)) => patterns.iter().any(|p| p.matches_host(host)),
        }
    }

    /// Whether `origin` is trusted for CORS answers and cross-origin writes.
    fn origin_trusted(&self, origin: &str) -> bool {
        match &self.origins {
            Origins::Any => true,
            Origins::Listed(patterns) => {
                is_loopback_origin(origin) || patterns.iter().any(|p| p.glob.matches(origin))
            }
        }
    }

    fn blocks_cross_origin_write(
        &self,
        method: &Method,
        origin: Option<&str>,
        host: Option<&str>,
    ) -> bool {
        let Some(origin) = origin else {
            // No `Origin`: not a browser's cross-origin request (curl, the MLflow client).
            return false;
        };
        if !STATE_CHANGING_METHODS.contains(method) || self.origin_trusted(origin) {
            return false;
        }
        // The same origin counts only when the host check vetted `Host`: with `*`, a rebound
        // attacker's page would be "same-origin" with its own name.
        let same_origin = self.allowed_hosts.is_some()
            && host.is_some_and(|host| {
                origin_authority(origin).is_some_and(|a| a == authority_with_port(host, &a))
            });
        !same_origin
    }
}

/// `Host` as `host:port`, adding the port the origin's scheme implies when `Host` has none.
fn authority_with_port(host: &str, origin_authority: &str) -> String {
    let host = host.to_ascii_lowercase();
    let has_port = match host.strip_prefix('[') {
        Some(rest) => rest.contains("]:"),
        None => host.contains(':'),
    };
    if has_port {
        return host;
    }
    match origin_authority.rsplit_once(':') {
        Some((_, port)) if port.chars().all(|c| c.is_ascii_digit()) => format!("{host}:{port}"),
        _ => host,
    }
}

/// `scheme://host[:port]` → `host:port` (the scheme's default port filled in), lower case;
/// `None` for anything that is not a plain http(s) origin (`null`, user info, a path).
fn origin_authority(origin: &str) -> Option<String> {
    let origin = origin.to_ascii_lowercase();
    let (scheme, authority) = origin.split_once("://")?;
    let default_port = match scheme {
        "http" => "80",
        "https" => "443",
        _ => return None,
    };
    if authority.is_empty() || authority.contains(['/', '@', '?', '#']) {
        return None;
    }
    let (name, port) = split_host_port(authority)?;
    Some(format!("{name}:{}", port.unwrap_or(default_port)))
}

/// `name[:port]` or `[v6][:port]`; `None` when the port is not a number.
fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    let (name, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (name, rest) = authority.split_at(end + 1);
        match rest {
            "" => (name, None),
            _ => (name, Some(rest.strip_prefix(':')?)),
        }
    } else {
        match authority.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (authority, None),
        }
    };
    match port {
        Some(port) if port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()) => None,
        _ => Some((name, port)),
    }
}

/// An origin on this machine's loopback, on any port and scheme.
fn is_loopback_origin(origin: &str) -> bool {
    origin_authority(origin)
        .and_then(|a| a.rsplit_once(':').map(|(name, _)| name.to_string()))
        .is_some_and(|name| LOOPBACK_HOSTS.contains(&name.as_str()))
}

fn is_api_path(path: &str) -> bool {
    path.starts_with("/api/") || path.starts_with("/ajax-api/")
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A refusal in MLflow's shape for these guards: plain text, with the reason kept for the
/// access log.
fn refusal(message: &'static str, detail: String) -> Response {
    let mut response = (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response();
    response.extensions_mut().insert(LoggedError {
        error_code: "PERMISSION_DENIED",
        message: detail,
    });
    response
}

async fn enforce(State(policy): State<Arc<Policy>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    // HTTP/2 carries the host as the URI's authority instead of a `Host` header.
    let host = header_text(request.headers(), header::HOST)
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()));
    let origin = header_text(request.headers(), header::ORIGIN).map(str::to_owned);

    let mut response = if !HOST_CHECK_EXEMPT_PATHS.contains(&path.as_str())
        && !policy.host_allowed(host.as_deref())
    {
        tracing::warn!(
            host = host.as_deref().unwrap_or(""),
            "refused a request for a host that is not allowed"
        );
        refusal(
            INVALID_HOST_MESSAGE,
            format!(
                "Host {:?} is not an allowed host",
                host.as_deref().unwrap_or("")
            ),
        )
    } else if is_api_path(&path)
        && policy.blocks_cross_origin_write(&method, origin.as_deref(), host.as_deref())
    {
        tracing::warn!(
            origin = origin.as_deref().unwrap_or(""),
            "refused a cross-origin write"
        );
        refusal(
            CROSS_ORIGIN_BLOCKED_MESSAGE,
            format!("{method} from origin {:?}", origin.as_deref().unwrap_or("")),
        )
    } else if method == Method::OPTIONS && is_api_path(&path) {
        // A preflight: the API answers it itself, with no body.
        let mut preflight = StatusCode::NO_CONTENT.into_response();
        if origin.as_deref().is_some_and(|o| policy.origin_trusted(o)) {
            let headers = preflight.headers_mut();
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(PREFLIGHT_ALLOWED_METHODS),
            );
            if let Some(asked) = request
                .headers()
                .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            {
                headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
            }
        }
        preflight
    } else {
        next.run(request).await
    };

    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Some(value) = &policy.x_frame_options {
        headers.insert(header::X_FRAME_OPTIONS, value.clone());
    }
    if let Some(origin) = origin.as_deref().filter(|o| policy.origin_trusted(o)) {
        add_cors_headers(&policy.origins, origin, headers);
    }
    response
}

fn add_cors_headers(origins: &Origins, origin: &str, headers: &mut HeaderMap) {
    match origins {
        Origins::Any => {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        }
        Origins::Listed(_) => {
            let Ok(value) = HeaderValue::from_str(origin) else {
                return;
            };
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
            headers.append(header::VARY, HeaderValue::from_static("Origin"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::{get, post};
    use tower::ServiceExt;

    fn defaults() -> Policy {
        Policy::new(&SecurityConfig::default())
    }

    fn config(flags: SecurityFlags<'_>) -> SecurityConfig {
        SecurityConfig::from_flags(&flags).unwrap()
    }

    #[test]
    fn default_hosts_are_mlflows() {
        let hosts = default_allowed_hosts();
        for expected in [
            "localhost",
            "127.0.0.1",
            "[::1]",
            "0.0.0.0",
            "localhost:*",
            "127.0.0.1:*",
            "[::1]:*",
            "0.0.0.0:*",
            "10.*",
            "192.168.*",
            "172.16.*",
            "172.31.*",
            "fc00:*",
            "fd00:*",
        ] {
            assert!(
                hosts.iter().any(|h| h == expected),
                "{expected} missing from {hosts:?}"
            );
        }
        assert!(!hosts.iter().any(|h| h == "172.15.*" || h == "172.32.*"));
    }

    #[test]
    fn the_host_check_admits_local_and_private_addresses_only() {
        let policy = defaults();
        let table = [
            ("localhost", true),
            ("localhost:5000", true),
            ("LocalHost:5000", true),
            ("127.0.0.1", true),
            ("127.0.0.1:5000", true),
            ("[::1]", true),
            ("[::1]:5000", true),
            ("0.0.0.0:5000", true),
            ("10.0.0.5:5000", true),
            ("192.168.1.20", true),
            ("172.16.0.1:80", true),
            ("172.31.255.254", true),
            ("[fd00::7]:5000", true),
            ("[fc00::1]", true),
            ("172.15.0.1", false),
            ("172.32.0.1", false),
            ("[fe80::1]:5000", false),
            ("attacker.example", false),
            ("attacker.example:5000", false),
            // Names that only look like allowed addresses: the DNS rebinding attacker's.
            ("10.attacker.example", false),
            ("192.168.attacker.example:5000", false),
            ("localhost.attacker.example", false),
            ("127.0.0.1.nip.io", false),
            ("fd00.attacker.example", false),
            ("", false),
        ];
        for (host, allowed) in table {
            assert_eq!(policy.host_allowed(Some(host)), allowed, "Host: {host}");
        }
        assert!(
            !policy.host_allowed(None),
            "a request without Host is refused"
        );
    }

    #[test]
    fn explicit_hosts_replace_the_defaults_and_keep_the_bind_address() {
        let explicit = config(SecurityFlags {
            allowed_hosts: Some("mlflow.example.com, *.corp.example"),
            bind_host: "10.0.0.5",
            ..Default::default()
        });
        let policy = Policy::new(&explicit);
        let table = [
            ("mlflow.example.com", true),
            ("MLFLOW.example.com", true),
            ("mlflow.example.com:5000", false),
            ("ci.corp.example", true),
            ("ci.corp.example:443", false),
            ("10.0.0.5:5000", true),
            ("10.0.0.6:5000", false),
            ("localhost:5000", false),
        ];
        for (host, allowed) in table {
            assert_eq!(policy.host_allowed(Some(host)), allowed, "Host: {host}");
        }
        let named = Policy::new(&config(SecurityFlags {
            bind_host: "mlox.internal",
            ..Default::default()
        }));
        assert!(named.host_allowed(Some("mlox.internal:5000")));
        assert!(
            named.host_allowed(Some("localhost:5000")),
            "defaults are kept"
        );
        let v6 = Policy::new(&config(SecurityFlags {
            bind_host: "2001:db8::5",
            ..Default::default()
        }));
        assert!(v6.host_allowed(Some("[2001:db8::5]:5000")));
        for wildcard in ["0.0.0.0", "::", "[::]"] {
            let cfg = config(SecurityFlags {
                bind_host: wildcard,
                ..Default::default()
            });
            assert_eq!(
                cfg.allowed_hosts,
                default_allowed_hosts(),
                "--host {wildcard}"
            );
        }
    }

    #[test]
    fn a_star_turns_the_host_check_off() {
        let policy = Policy::new(&config(SecurityFlags {
            allowed_hosts: Some("*"),
            bind_host: "10.0.0.5",
            ..Default::default()
        }));
        assert!(policy.host_allowed(Some("attacker.example")));
        assert!(policy.host_allowed(None));
    }

    #[test]
    fn mlflows_escaped_bracket_reads_as_a_bracket() {
        let policy = Policy::new(&config(SecurityFlags {
            allowed_hosts: Some("[[]::1]:*"),
            ..Default::default()
        }));
        assert!(policy.host_allowed(Some("[::1]:5000")));
        assert!(!policy.host_allowed(Some("1:5000")));
    }

    #[test]
    fn origins_trusted_by_default_are_loopback_ones() {
        let policy = defaults();
        let table = [
            ("http://localhost:3000", true),
            ("http://localhost", true),
            ("http://127.0.0.1:5000", true),
            ("http://[::1]:8080", true),
            ("https://localhost:8443", true),
            ("https://evil", false),
            ("http://localhost.evil.example", false),
            ("http://localhost:80@evil.example", false),
            ("http://10.0.0.5:5000", false),
            ("null", false),
            ("", false),
        ];
        for (origin, trusted) in table {
            assert_eq!(policy.origin_trusted(origin), trusted, "Origin: {origin}");
        }
    }

    #[test]
    fn cross_origin_writes_are_blocked_unless_trusted_or_same_origin() {
        let explicit = Policy::new(&config(SecurityFlags {
            cors_allowed_origins: Some("https://app.example.com,https://*.tools.example"),
            ..Default::default()
        }));
        let post = Method::POST;
        let host = Some("10.0.0.5:5000");
        let table: [(Method, Option<&str>, bool); 12] = [
            (Method::POST, Some("https://app.example.com"), false),
            (Method::POST, Some("https://ci.tools.example"), false),
            (Method::POST, Some("https://app.example.com.evil"), true),
            (Method::POST, Some("http://localhost:3000"), false),
            (Method::POST, Some("https://evil"), true),
            (Method::DELETE, Some("https://evil"), true),
            (Method::PATCH, Some("https://evil"), true),
            (Method::PUT, Some("https://evil"), true),
            (Method::GET, Some("https://evil"), false),
            (Method::POST, None, false),
            // The web UI served at the server's own address.
            (Method::POST, Some("http://10.0.0.5:5000"), false),
            (Method::POST, Some("http://10.0.0.5:5001"), true),
        ];
        for (method, origin, blocked) in table {
            assert_eq!(
                explicit.blocks_cross_origin_write(&method, origin, host),
                blocked,
                "{method} Origin: {origin:?}"
            );
        }
        assert!(!explicit.blocks_cross_origin_write(
            &post,
            Some("http://mlox.lan"),
            Some("mlox.lan")
        ));
        assert!(!explicit.blocks_cross_origin_write(
            &post,
            Some("https://mlox.lan"),
            Some("mlox.lan:443")
        ));
        // Without the host check a rebound page is "same-origin" with its own name.
        let open_hosts = Policy::new(&config(SecurityFlags {
            allowed_hosts: Some("*"),
            ..Default::default()
        }));
        assert!(open_hosts.blocks_cross_origin_write(
            &post,
            Some("http://attacker.example:5000"),
            Some("attacker.example:5000")
        ));
        let any = Policy::new(&config(SecurityFlags {
            cors_allowed_origins: Some("*"),
            ..Default::default()
        }));
        assert!(!any.blocks_cross_origin_write(&post, Some("https://evil"), host));
    }

    #[test]
    fn flags_map_to_mlflows_settings() {
        assert_eq!(config(SecurityFlags::default()), SecurityConfig::default());
        for (flag, env, enabled) in [
            (false, None, true),
            (true, None, false),
            (false, Some("true"), false),
            (false, Some("1"), true),
            (false, Some("TRUE"), true),
            (false, Some("false"), true),
        ] {
            let cfg = config(SecurityFlags {
                disable: flag,
                disable_env: env,
                ..Default::default()
            });
            assert_eq!(cfg.enabled, enabled, "flag {flag}, env {env:?}");
        }
        for (asked, header) in [
            (None, Some("SAMEORIGIN")),
            (Some("deny"), Some("DENY")),
            (Some("SAMEORIGIN"), Some("SAMEORIGIN")),
            (Some("none"), None),
            (Some("NONE"), None),
        ] {
            let cfg = config(SecurityFlags {
                x_frame_options: asked,
                ..Default::default()
            });
            assert_eq!(
                cfg.x_frame_options.as_deref(),
                header,
                "--x-frame-options {asked:?}"
            );
        }
        assert!(
            SecurityConfig::from_flags(&SecurityFlags {
                x_frame_options: Some("DENY\nX-Evil: 1"),
                ..Default::default()
            })
            .is_err()
        );
        let empty = config(SecurityFlags {
            allowed_hosts: Some(" , "),
            cors_allowed_origins: Some(""),
            ..Default::default()
        });
        assert_eq!(empty.allowed_hosts, default_allowed_hosts());
        assert!(empty.cors_allowed_origins.is_empty());
    }

    fn app(config: &SecurityConfig) -> Router {
        let router = Router::new()
            .route("/health", get(|| async { "OK" }))
            .route("/", get(|| async { "ui" }))
            .route(
                "/api/2.0/mlflow/experiments/update",
                post(|| async { "{}" }),
            );
        config.protect(router)
    }

    async fn send(app: &Router, method: Method, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut request = axum::http::Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        app.clone()
            .oneshot(request.body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap()
    }

    async fn body_text(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn header<'r>(response: &'r Response, name: &str) -> Option<&'r str> {
        response.headers().get(name).and_then(|v| v.to_str().ok())
    }

    #[tokio::test]
    async fn the_layer_refuses_rebinding_and_cross_origin_writes_and_sets_headers() {
        let app = app(&SecurityConfig::default());
        let local = ("host", "127.0.0.1:5000");

        let rebound = send(&app, Method::GET, "/", &[("host", "attacker.example")]).await;
        assert_eq!(rebound.status(), StatusCode::FORBIDDEN);
        assert!(
            header(&rebound, "content-type")
                .unwrap()
                .starts_with("text/plain")
        );
        assert_eq!(header(&rebound, "x-frame-options"), Some("SAMEORIGIN"));
        assert_eq!(body_text(rebound).await, INVALID_HOST_MESSAGE);

        let health = send(
            &app,
            Method::GET,
            "/health",
            &[("host", "attacker.example")],
        )
        .await;
        assert_eq!(health.status(), StatusCode::OK);

        let update = "/api/2.0/mlflow/experiments/update";
        let evil = send(
            &app,
            Method::POST,
            update,
            &[local, ("origin", "https://evil")],
        )
        .await;
        assert_eq!(evil.status(), StatusCode::FORBIDDEN);
        assert!(header(&evil, "access-control-allow-origin").is_none());
        assert_eq!(body_text(evil).await, CROSS_ORIGIN_BLOCKED_MESSAGE);

        let plain = send(&app, Method::POST, update, &[local]).await;
        assert_eq!(plain.status(), StatusCode::OK);
        assert_eq!(header(&plain, "x-content-type-options"), Some("nosniff"));
        assert_eq!(header(&plain, "x-frame-options"), Some("SAMEORIGIN"));

        let from_dev_ui = send(
            &app,
            Method::POST,
            update,
            &[local, ("origin", "http://localhost:3000")],
        )
        .await;
        assert_eq!(from_dev_ui.status(), StatusCode::OK);
        assert_eq!(
            header(&from_dev_ui, "access-control-allow-origin"),
            Some("http://localhost:3000")
        );
        assert_eq!(
            header(&from_dev_ui, "access-control-allow-credentials"),
            Some("true")
        );

        let preflight = send(
            &app,
            Method::OPTIONS,
            update,
            &[
                local,
                ("origin", "http://localhost:3000"),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "content-type"),
            ],
        )
        .await;
        assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            header(&preflight, "access-control-allow-origin"),
            Some("http://localhost:3000")
        );
        assert!(
            header(&preflight, "access-control-allow-methods")
                .unwrap()
                .contains("POST")
        );
        assert_eq!(
            header(&preflight, "access-control-allow-headers"),
            Some("content-type")
        );
        assert!(body_text(preflight).await.is_empty());

        let untrusted_preflight = send(
            &app,
            Method::OPTIONS,
            update,
            &[
                local,
                ("origin", "https://evil"),
                ("access-control-request-method", "POST"),
            ],
        )
        .await;
        assert_eq!(untrusted_preflight.status(), StatusCode::NO_CONTENT);
        assert!(header(&untrusted_preflight, "access-control-allow-origin").is_none());
        assert!(header(&untrusted_preflight, "access-control-allow-methods").is_none());
    }

    #[tokio::test]
    async fn a_star_origin_answers_without_credentials_and_none_omits_the_frame_header() {
        let app = app(&config(SecurityFlags {
            cors_allowed_origins: Some("*"),
            x_frame_options: Some("NONE"),
            ..Default::default()
        }));
        let response = send(
            &app,
            Method::POST,
            "/api/2.0/mlflow/experiments/update",
            &[
                ("host", "localhost"),
                ("origin", "https://anywhere.example"),
            ],
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "access-control-allow-origin"), Some("*"));
        assert!(header(&response, "access-control-allow-credentials").is_none());
        assert!(header(&response, "x-frame-options").is_none());
        assert_eq!(header(&response, "x-content-type-options"), Some("nosniff"));
    }

    #[tokio::test]
    async fn disabled_means_no_guard_and_no_header() {
        let app = app(&config(SecurityFlags {
            disable: true,
            ..Default::default()
        }));
        let response = send(
            &app,
            Method::POST,
            "/api/2.0/mlflow/experiments/update",
            &[("host", "attacker.example"), ("origin", "https://evil")],
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(header(&response, "x-frame-options").is_none());
        assert!(header(&response, "x-content-type-options").is_none());
    }

    proptest::proptest! {
        #[test]
        fn a_star_in_place_of_any_slice_still_matches(
            text in "[a-z0-9.:-]{0,24}",
            cut in (0usize..=24, 0usize..=24),
        ) {
            let chars: Vec<char> = text.chars().collect();
            let (a, b) = (cut.0.min(chars.len()), cut.1.min(chars.len()));
            let (from, to) = (a.min(b), a.max(b));
            let pattern: String = chars[..from].iter().chain(['*'].iter()).chain(chars[to..].iter()).collect();
            proptest::prop_assert!(Glob::new(&pattern).matches(&text), "{pattern} vs {text}");
            let one_each: String = chars.iter().map(|_| '?').collect();
            proptest::prop_assert!(Glob::new(&one_each).matches(&text));
        }

        #[test]
        fn a_pattern_without_wildcards_matches_only_itself(
            pattern in "[a-z0-9.:-]{0,12}",
            text in "[a-z0-9.:-]{0,12}",
        ) {
            proptest::prop_assert_eq!(Glob::new(&pattern).matches(&text), pattern == text);
            proptest::prop_assert!(Glob::new(&pattern).matches(&pattern.to_uppercase()));
        }

        #[test]
        fn any_host_header_is_judged_without_panicking(host in "\\PC{0,40}") {
            let policy = defaults();
            let _ = policy.host_allowed(Some(&host));
            let _ = policy.blocks_cross_origin_write(&Method::POST, Some(&host), Some(&host));
        }
    }
}
