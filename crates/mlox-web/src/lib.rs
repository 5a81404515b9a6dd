//! The web UI of `mlox server`. This crate owns the front end built from the repository's
//! `web/` project (by `build.rs`, with npm, at compile time) and embedded in the binary, and
//! the stateless routes that serve it: `/`, `/index.html` and `/static-files/*`. It has no API
//! routes and no fallback, so its router merges into the tracking router, whose fallback keeps
//! answering unknown paths. When npm was missing or the UI failed to build, `/` serves a page
//! that says so and how to build it; the API is unaffected. It also carries Swagger UI's files,
//! which the model server's `/v2/docs` page loads ([`swagger_ui_router`]), and the links to the
//! platform's other parts that the UI shows in its top bar ([`platform_links_router`]).

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// One stored form of an asset's bytes.
struct Encoded {
    body: &'static [u8],
    /// A strong ETag (quotes included) computed from the uncompressed bytes at build time.
    etag: &'static str,
}

struct Asset {
    /// Relative to the build output, `/`-separated: `index.html`, `static-files/…`.
    path: &'static str,
    content_type: &'static str,
    /// The name carries a content hash, so the bytes behind it never change.
    hashed: bool,
    identity: Encoded,
    gzip: Option<Encoded>,
}

mod assets {
    use super::{Asset, Encoded};
    include!(concat!(env!("OUT_DIR"), "/assets.rs"));
}

const INDEX: &str = "index.html";
const SWAGGER_UI_PREFIX: &str = "swagger-ui/";
/// The script whose presence says Swagger UI was built into this binary.
const SWAGGER_UI_BUNDLE: &str = "swagger-ui-bundle.js";
const ASSETS_PREFIX: &str = "static-files/";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
// Revalidate every time (cheaply, by ETag): index.html names the current hashed bundles, so a
// cached copy would pin an old UI after an upgrade.
const REVALIDATE: &str = "no-cache";

/// The UI routes; stateless and fallback-free so they merge into any router.
pub fn router() -> Router {
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/static-files/{*path}", get(static_file))
}

/// A link to another part of the platform (the notebooks, say), shown in the UI's top bar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformLink {
    pub name: String,
    pub url: String,
}

impl PlatformLink {
    /// `NAME=URL`: the URL absolute (`http(s)://…`) or `:port/path`, a port of whatever host
    /// the browser reaches the server by.
    pub fn parse(text: &str) -> Result<PlatformLink, String> {
        let (name, url) = text
            .split_once('=')
            .map(|(n, u)| (n.trim(), u.trim()))
            .filter(|(n, u)| !n.is_empty() && !u.is_empty())
            .ok_or_else(|| format!("'{text}' is not NAME=URL"))?;
        let port_relative = url
            .strip_prefix(':')
            .map(|rest| rest.split('/').next().unwrap_or(""))
            .is_some_and(|port| port.parse::<u16>().is_ok_and(|p| p > 0));
        let absolute = ["http://", "https://"]
            .iter()
            .any(|scheme| url.len() > scheme.len() && url.starts_with(scheme));
        if !(port_relative || absolute) {
            return Err(format!(
                "the link '{name}' goes to '{url}': give an http(s) URL or :port/path"
            ));
        }
        Ok(PlatformLink {
            name: name.to_string(),
            url: url.to_string(),
        })
    }
}

/// `/platform-links.json`: `{"links": [{"name", "url"}]}`, an empty list when there are none,
/// so the UI never meets a 404.
pub fn platform_links_router(links: Vec<PlatformLink>) -> Router {
    let body = serde_json::json!({
        "links": links
            .iter()
            .map(|l| serde_json::json!({"name": l.name, "url": l.url}))
            .collect::<Vec<_>>(),
    })
    .to_string();
    Router::new().route(
        "/platform-links.json",
        get(move || {
            let body = body.clone();
            async move {
                (
                    [
                        (header::CONTENT_TYPE, "application/json"),
                        (header::CACHE_CONTROL, REVALIDATE),
                    ],
                    body,
                )
            }
        }),
    )
}

/// Swagger UI's files (`swagger-ui-bundle.js`, `swagger-ui.css`, its licence), each at
/// `/{file}`: nest this router where a page that renders an OpenAPI document loads them from.
pub fn swagger_ui_router() -> Router {
    Router::new().route("/{file}", get(swagger_ui_file))
}

/// A page rendering the OpenAPI document at `spec` (relative to the page): Swagger UI, with
/// "Try it out" on, loading its files from `swagger_ui` (where [`swagger_ui_router`] is
/// nested); a binary without Swagger UI lists the operations with a few lines of script.
pub fn api_docs_page(title: &str, swagger_ui: &str, spec: &str) -> String {
    let template = if swagger_ui_built() {
        SWAGGER_PAGE
    } else {
        PLAIN_DOCS_PAGE
    };
    template
        .replace("{{title}}", title)
        .replace("{{swagger_ui}}", swagger_ui)
        .replace("{{spec}}", spec)
}

/// Text made safe to put in a page.
pub fn html_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Swagger UI over the document, with "Try it out" on from the start.
const SWAGGER_PAGE: &str = r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{title}}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="{{swagger_ui}}/swagger-ui.css">
</head>
<body><div id="swagger-ui"></div>
<script src="{{swagger_ui}}/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({
  url: "{{spec}}",
  dom_id: "#swagger-ui",
  deepLinking: true,
  tryItOutEnabled: true,
  displayRequestDuration: true,
});
</script></body></html>
"##;

/// Renders the document's operations, schemas and examples with a few lines of inline script.
const PLAIN_DOCS_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{title}}</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h2{margin-top:2rem;border-bottom:1px solid #ddd}
.op{margin:.6rem 0;padding:.5rem .8rem;border:1px solid #e2e2e2;border-radius:6px}
.m{display:inline-block;min-width:3.5rem;font-weight:600}.get{color:#0a6}.post{color:#06c}
code,pre{font:13px ui-monospace,monospace}pre{background:#f6f6f6;padding:.6rem;overflow:auto}
details summary{cursor:pointer}
</style></head>
<body><h1>{{title}}</h1><p>OpenAPI document: <a href="{{spec}}">{{spec}}</a></p><div id="ops">Loading…</div>
<script>
fetch("{{spec}}").then(r => r.json()).then(doc => {
  const ops = document.getElementById("ops"); ops.textContent = "";
  const byTag = {};
  for (const [path, item] of Object.entries(doc.paths))
    for (const [method, op] of Object.entries(item))
      (byTag[(op.tags || ["other"])[0]] ||= []).push([method, path, op]);
  for (const [tag, list] of Object.entries(byTag)) {
    const h = document.createElement("h2"); h.textContent = tag; ops.append(h);
    for (const [method, path, op] of list) {
      const d = document.createElement("div"); d.className = "op";
      const head = document.createElement("div");
      const m = document.createElement("span"); m.className = "m " + method; m.textContent = method.toUpperCase();
      const p = document.createElement("code"); p.textContent = " " + path + "  ";
      head.append(m, p, document.createTextNode(op.summary || "")); d.append(head);
      const body = op.requestBody && op.requestBody.content["application/json"];
      if (body && body.example) {
        const det = document.createElement("details"); const s = document.createElement("summary");
        s.textContent = "example request"; const pre = document.createElement("pre");
        pre.textContent = JSON.stringify(body.example, null, 2); det.append(s, pre); d.append(det);
      }
      const codes = document.createElement("div");
      codes.textContent = "answers: " + Object.entries(op.responses).map(([c, r]) => c + " " + r.description).join(" · ");
      d.append(codes); ops.append(d);
    }
  }
  const h = document.createElement("h2"); h.textContent = "schemas"; ops.append(h);
  const pre = document.createElement("pre"); pre.textContent = JSON.stringify(doc.components.schemas, null, 2); ops.append(pre);
});
</script></body></html>
"#;

/// Whether Swagger UI is in this binary (not when the UI could not be built).
pub fn swagger_ui_built() -> bool {
    lookup(&format!("{SWAGGER_UI_PREFIX}{SWAGGER_UI_BUNDLE}")).is_some()
}

async fn swagger_ui_file(
    file: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let Ok(Path(file)) = file else {
        return not_found();
    };
    match lookup(&format!("{SWAGGER_UI_PREFIX}{file}")) {
        Some(asset) => serve(asset, &headers),
        None => not_found(),
    }
}

/// Whether the real UI was embedded, rather than the page saying it was not built.
pub fn ui_built() -> bool {
    assets::UI_BUILT
}

fn lookup(path: &str) -> Option<&'static Asset> {
    let i = assets::ASSETS
        .binary_search_by(|asset| asset.path.cmp(path))
        .ok()?;
    assets::ASSETS.get(i)
}

/// `MLOX_WEB_DEV_DIR`: the output of `npm run build` served from disk instead of the embedded
/// copy, read on every request, so work on the UI needs a rebuild of `web/` but not of the
/// binary. Unset in production; the embedded copy is what ships.
fn dev_dir() -> Option<&'static std::path::Path> {
    static DIR: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        std::env::var_os("MLOX_WEB_DEV_DIR")
            .filter(|v| !v.is_empty())
            .map(std::path::PathBuf::from)
    })
    .as_deref()
}

/// A file of the development directory; only plain relative names resolve (no `..`, no
/// absolute paths, no backslashes), so nothing outside the directory can be read.
fn serve_dev_file(dir: &std::path::Path, relative: &str) -> Response {
    let plain = !relative.is_empty()
        && !relative.contains('\\')
        && relative
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..");
    if !plain {
        return not_found();
    }
    let Ok(bytes) = std::fs::read(dir.join(relative)) else {
        return not_found();
    };
    let content_type = match relative.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
        ],
        bytes,
    )
        .into_response()
}

async fn index(headers: HeaderMap) -> Response {
    if let Some(dir) = dev_dir() {
        return serve_dev_file(dir, INDEX);
    }
    match lookup(INDEX) {
        Some(asset) => serve(asset, &headers),
        None => not_found(),
    }
}

async fn static_file(path: Result<Path<String>, PathRejection>, headers: HeaderMap) -> Response {
    // Only names in the embedded table resolve, so `..` and friends cannot reach anything else;
    // a capture that does not even decode is just another unknown file.
    let Ok(Path(path)) = path else {
        return not_found();
    };
    if let Some(dir) = dev_dir() {
        return serve_dev_file(dir, &format!("{ASSETS_PREFIX}{path}"));
    }
    match lookup(&format!("{ASSETS_PREFIX}{path}")) {
        Some(asset) => serve(asset, &headers),
        None => not_found(),
    }
}

fn serve(asset: &'static Asset, request: &HeaderMap) -> Response {
    let (encoded, gzipped) = match &asset.gzip {
        Some(gzip) if accepts_gzip(request) => (gzip, true),
        _ => (&asset.identity, false),
    };
    let cache_control = if asset.hashed { IMMUTABLE } else { REVALIDATE };
    let mut headers = HeaderMap::new();
    headers.insert(header::ETAG, HeaderValue::from_static(encoded.etag));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    if asset.gzip.is_some() {
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    // The length a 200 would carry; set explicitly so a 304 or HEAD answer does not claim 0.
    headers.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(encoded.body.len()),
    );
    if etag_matches(request, encoded.etag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if gzipped {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    (StatusCode::OK, headers, Body::from(encoded.body)).into_response()
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, REVALIDATE),
        ],
        "Not found\n",
    )
        .into_response()
}

/// `If-None-Match` uses weak comparison (RFC 9110 §13.1.2): a `W/` prefix does not matter.
fn etag_matches(request: &HeaderMap, etag: &str) -> bool {
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|candidate| {
            candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
        })
}

/// Whether `Accept-Encoding` allows gzip: listed (or covered by `*`) with a non-zero q-value.
fn accepts_gzip(request: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    for coding in request
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
    {
        let mut parts = coding.split(';');
        let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let allowed = parts
            .filter_map(|param| param.trim().strip_prefix("q="))
            .all(|q| q.trim().parse::<f32>().is_ok_and(|q| q > 0.0));
        match name.as_str() {
            "gzip" | "x-gzip" => gzip = Some(allowed),
            "*" => any = Some(allowed),
            _ => {}
        }
    }
    gzip.or(any).unwrap_or(false)
}

#[cfg(test)]
mod tests;
