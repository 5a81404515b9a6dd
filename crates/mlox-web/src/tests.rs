use super::*;
use axum::http::{Method, Request};
use http_body_util::BodyExt;
use tower::ServiceExt;

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(&name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_default()
    }
}

async fn request(method: Method, uri: &str, headers: &[(header::HeaderName, &str)]) -> Answer {
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(name, *value);
    }
    let response = router()
        .oneshot(builder.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: body.to_vec(),
    }
}

async fn get(uri: &str) -> Answer {
    request(Method::GET, uri, &[]).await
}

/// A real file under `static-files/`: a hashed one when the UI was built (what these tests are
/// about); the placeholder build has none, and the asset tests then have nothing to check.
fn static_asset() -> Option<&'static Asset> {
    assets::ASSETS
        .iter()
        .find(|a| a.path.starts_with(ASSETS_PREFIX) && a.hashed)
}

#[test]
fn table_is_sorted_and_has_an_index() {
    assert!(
        assets::ASSETS
            .windows(2)
            .all(|pair| pair[0].path < pair[1].path)
    );
    assert!(lookup(INDEX).is_some());
    if ui_built() {
        assert!(static_asset().is_some(), "a built UI has hashed assets");
    }
}

#[tokio::test]
async fn index_is_html_and_revalidated() {
    for uri in ["/", "/index.html"] {
        let answer = get(uri).await;
        assert_eq!(answer.status, StatusCode::OK, "{uri}");
        assert_eq!(
            answer.header(header::CONTENT_TYPE),
            "text/html; charset=utf-8"
        );
        assert_eq!(answer.header(header::CACHE_CONTROL), "no-cache");
        assert!(answer.header(header::ETAG).starts_with('"'));
        let page = String::from_utf8(answer.body).unwrap();
        assert!(page.contains("<html"), "{page}");
        if !ui_built() {
            assert!(page.contains("not built"), "{page}");
        }
    }
}

#[tokio::test]
async fn hashed_asset_is_immutable_with_its_content_type() {
    let Some(asset) = static_asset() else { return };
    let uri = format!("/{}", asset.path);
    let answer = get(&uri).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header(header::CONTENT_TYPE), asset.content_type);
    assert_eq!(
        answer.header(header::CACHE_CONTROL),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(answer.header(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    assert_eq!(answer.header(header::CONTENT_ENCODING), "");
    assert_eq!(answer.body, asset.identity.body);
    if asset.path.ends_with(".js") {
        assert_eq!(
            answer.header(header::CONTENT_TYPE),
            "text/javascript; charset=utf-8"
        );
    }
}

#[tokio::test]
async fn gzip_only_when_accepted() {
    let Some(asset) = assets::ASSETS.iter().find(|a| a.gzip.is_some()) else {
        return;
    };
    let gzip = asset.gzip.as_ref().unwrap();
    let uri = format!("/{}", asset.path);
    let answer = request(
        Method::GET,
        &uri,
        &[(header::ACCEPT_ENCODING, "br, gzip;q=0.8")],
    )
    .await;
    assert_eq!(answer.header(header::CONTENT_ENCODING), "gzip");
    assert_eq!(answer.header(header::VARY), "accept-encoding");
    assert_eq!(answer.header(header::ETAG), gzip.etag);
    assert_eq!(answer.body, gzip.body);
    assert!(answer.body.starts_with(&[0x1f, 0x8b]));

    for refused in ["gzip;q=0", "br", "*;q=0", ""] {
        let answer = request(Method::GET, &uri, &[(header::ACCEPT_ENCODING, refused)]).await;
        assert_eq!(answer.header(header::CONTENT_ENCODING), "", "{refused}");
        assert_eq!(answer.body, asset.identity.body, "{refused}");
    }
}

#[tokio::test]
async fn matching_if_none_match_is_not_modified() {
    let mut uris = vec!["/".to_string()];
    uris.extend(static_asset().map(|a| format!("/{}", a.path)));
    for uri in uris {
        let etag = get(&uri).await.header(header::ETAG).to_string();
        for candidate in [
            etag.clone(),
            format!("W/{etag}"),
            format!("\"other\", {etag}"),
            "*".to_string(),
        ] {
            let answer = request(
                Method::GET,
                &uri,
                &[(header::IF_NONE_MATCH, candidate.as_str())],
            )
            .await;
            assert_eq!(answer.status, StatusCode::NOT_MODIFIED, "{uri} {candidate}");
            assert!(answer.body.is_empty());
            assert_eq!(answer.header(header::ETAG), etag);
        }
        let stale = request(Method::GET, &uri, &[(header::IF_NONE_MATCH, "\"stale\"")]).await;
        assert_eq!(stale.status, StatusCode::OK, "{uri}");
        assert!(!stale.body.is_empty());
    }
}

#[tokio::test]
async fn unknown_and_escaping_paths_are_not_found() {
    for uri in [
        "/static-files/no-such-file.js",
        "/static-files/../Cargo.toml",
        "/static-files/../../Cargo.toml",
        "/static-files/%2e%2e/Cargo.toml",
        "/static-files/%2e%2e%2f%2e%2e%2fCargo.toml",
        "/static-files/..%2f..%2fCargo.toml",
        "/static-files/%2fetc%2fpasswd",
        "/static-files//etc/passwd",
        "/static-files/%ff",
        "/static-files/index.html",
    ] {
        let answer = get(uri).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(
            answer.header(header::CONTENT_TYPE),
            "text/plain; charset=utf-8",
            "{uri}"
        );
        assert_eq!(answer.body, b"Not found\n", "{uri}");
    }
}

#[tokio::test]
async fn head_has_the_headers_and_no_body() {
    let mut uris = vec!["/".to_string()];
    uris.extend(static_asset().map(|a| format!("/{}", a.path)));
    for uri in uris {
        let full = get(&uri).await;
        let head = request(Method::HEAD, &uri, &[]).await;
        assert_eq!(head.status, StatusCode::OK, "{uri}");
        assert!(head.body.is_empty(), "{uri}");
        for name in [
            header::CONTENT_TYPE,
            header::CACHE_CONTROL,
            header::ETAG,
            header::CONTENT_LENGTH,
        ] {
            assert_eq!(head.header(name.clone()), full.header(name), "{uri}");
        }
        assert_eq!(
            head.header(header::CONTENT_LENGTH),
            full.body.len().to_string()
        );
    }
    let missing = request(Method::HEAD, "/static-files/missing.css", &[]).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn other_methods_are_refused() {
    let answer = request(Method::POST, "/", &[]).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn swagger_ui_files_are_served_revalidated_and_only_from_their_directory() {
    if !ui_built() {
        assert!(!swagger_ui_built());
        return;
    }
    assert!(swagger_ui_built(), "a built UI carries Swagger UI");
    let answer = |uri: &'static str| async move {
        let response = swagger_ui_router()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, body)
    };
    let (status, headers, body) = answer("/swagger-ui-bundle.js").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    // Not content-hashed: an upgrade must reach browsers that cached the old file.
    assert_eq!(headers[header::CACHE_CONTROL], REVALIDATE);
    assert!(body.windows(13).any(|w| w == b"SwaggerUIBund"));
    let (status, headers, _) = answer("/swagger-ui.css").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    for outside in ["/index.html", "/..%2Findex.html", "/missing.js"] {
        assert_eq!(answer(outside).await.0, StatusCode::NOT_FOUND, "{outside}");
    }
}

#[test]
fn platform_links_are_name_equals_an_http_url_or_a_port() {
    assert_eq!(
        PlatformLink::parse("Notebooks=:8888/hub/"),
        Ok(PlatformLink {
            name: "Notebooks".into(),
            url: ":8888/hub/".into()
        })
    );
    assert!(PlatformLink::parse("Docs = https://docs.example.com/mlox").is_ok());
    for bad in [
        "Notebooks",
        "=http://x",
        "Notebooks=",
        "Notebooks=javascript:alert(1)",
        "Notebooks=//evil.example",
        "Notebooks=:0/x",
        "Notebooks=:http",
        "Notebooks=http://",
    ] {
        assert!(PlatformLink::parse(bad).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn platform_links_are_served_as_json_and_empty_without_any() {
    let answer = |links: Vec<PlatformLink>| async move {
        let response = platform_links_router(links)
            .oneshot(
                Request::get("/platform-links.json")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    };
    assert_eq!(answer(vec![]).await, r#"{"links":[]}"#);
    let link = PlatformLink::parse("Notebooks=:8888/lab").unwrap();
    assert_eq!(
        answer(vec![link]).await,
        r#"{"links":[{"name":"Notebooks","url":":8888/lab"}]}"#
    );
}

#[test]
fn api_docs_pages_escape_nothing_they_are_not_given_and_point_at_the_document() {
    assert_eq!(html_text("<x & \"y\">"), "&lt;x &amp; &quot;y&quot;&gt;");
    let page = api_docs_page("gateway", "docs/swagger-ui", "openapi.json");
    assert!(page.contains("<title>gateway</title>"));
    assert!(page.contains("openapi.json"));
}

#[test]
fn a_development_directory_serves_only_plain_names_inside_it() {
    let root = std::env::temp_dir().join(format!("mlox-web-dev-{}", std::process::id()));
    let dir = root.join("dist");
    std::fs::create_dir_all(dir.join("static-files")).unwrap();
    std::fs::write(dir.join("static-files/app.js"), "console.log(1)").unwrap();
    std::fs::write(root.join("secret.txt"), "outside").unwrap();

    let served = serve_dev_file(&dir, "static-files/app.js");
    assert_eq!(served.status(), StatusCode::OK);
    assert_eq!(
        served.headers()[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    for escape in [
        "../secret.txt",
        "static-files/../../secret.txt",
        "/etc/passwd",
        "static-files\\..\\..\\secret.txt",
        "static-files//app.js",
        "",
    ] {
        assert_eq!(
            serve_dev_file(&dir, escape).status(),
            StatusCode::NOT_FOUND,
            "{escape}"
        );
    }
    std::fs::remove_dir_all(root).unwrap();
}
