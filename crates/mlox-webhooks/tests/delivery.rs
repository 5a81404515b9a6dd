//! End-to-end delivery: a real store on SQLite, the real dispatcher, and an HTTP receiver on
//! loopback that checks what arrives — once, signed, in time — and misbehaves on demand.

#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hmac::{KeyInit, Mac};
use mlox_core::entities::KeyValue;
use mlox_core::webhooks::{NewWebhook, WebhookEvent};
use mlox_store::{NewModelVersion, SqlStore, StoreOptions};
use mlox_webhooks::{DispatcherConfig, UrlPolicy, spawn_dispatcher};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "s3cr3t-key";

#[derive(Clone, Debug)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: String,
    at: Instant,
}

#[derive(Clone, Default)]
struct Receiver {
    log: Arc<Mutex<Vec<Received>>>,
    /// How many requests to `/flaky` still get a 503.
    flaky_failures: Arc<Mutex<u32>>,
}

async fn receive(
    State(rx): State<Receiver>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    rx.log.lock().unwrap().push(Received {
        path: path.clone(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Instant::now(),
    });
    match path.as_str() {
        "/redirect" => (StatusCode::TEMPORARY_REDIRECT, [("location", "/target")]).into_response(),
        "/flaky" => {
            let mut left = rx.flaky_failures.lock().unwrap();
            if *left > 0 {
                *left -= 1;
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
            "ok".into_response()
        }
        "/gone" => StatusCode::GONE.into_response(),
        _ => "ok".into_response(),
    }
}

impl Receiver {
    async fn start() -> (Receiver, String) {
        let rx = Receiver::default();
        let app = Router::new().fallback(receive).with_state(rx.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (rx, format!("127.0.0.1:{port}"))
    }

    fn on(&self, path: &str) -> Vec<Received> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    async fn wait_for(&self, path: &str, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.on(path);
            if got.len() >= n || Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// SQLite in a temporary directory, or the PostgreSQL database named by
/// `MLOX_WEBHOOKS_TEST_POSTGRES` (which must start empty; the tests share it).
async fn open_store(dir: &tempfile::TempDir) -> SqlStore {
    let uri = std::env::var("MLOX_WEBHOOKS_TEST_POSTGRES")
        .unwrap_or_else(|_| format!("sqlite:///{}", dir.path().join("x.db").display()));
    SqlStore::open(StoreOptions {
        uri,
        default_artifact_root: "mlflow-artifacts:".into(),
        max_connections: 4,
    })
    .await
    .unwrap()
}

fn lax() -> DispatcherConfig {
    DispatcherConfig {
        allow_private_addresses: true,
        allow_http: true,
        retry_base: Duration::from_millis(50),
        request_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

fn all_events() -> Vec<WebhookEvent> {
    mlox_core::webhooks::WEBHOOK_EVENTS
        .iter()
        .take(6)
        .map(|(e, a)| WebhookEvent::new(e, a).unwrap())
        .collect()
}

async fn webhook(store: &SqlStore, url: String) -> String {
    store
        .create_webhook(NewWebhook {
            name: "receiver".into(),
            url,
            events: all_events(),
            description: None,
            secret: Some(SECRET.into()),
            status: None,
        })
        .await
        .unwrap()
        .webhook_id
}

/// Verifies the signature the way a receiver would, without the crate's own signing code.
fn assert_signed(r: &Received) {
    let header = |name: &str| r.headers.get(name).unwrap().to_str().unwrap().to_string();
    let id = header("x-mlflow-delivery-id");
    let ts = header("x-mlflow-timestamp");
    let sig = header("x-mlflow-signature");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{id}.{ts}.{}", r.body).as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(sig, format!("v1,{expected}"), "bad signature on {}", r.body);
    assert_eq!(header("content-type"), "application/json");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let ts: u64 = ts.parse().unwrap();
    assert!(ts <= now && now - ts < 30, "stale timestamp {ts}");
}

#[tokio::test]
async fn every_event_arrives_once_signed_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    let (rx, addr) = Receiver::start().await;
    let _dispatcher = spawn_dispatcher(store.clone(), lax());
    webhook(&store, format!("http://{addr}/ok")).await;

    let mut expected: Vec<(&str, &str, Value, Instant)> = Vec::new();
    let t = Instant::now();
    store
        .create_registered_model(
            "wh-model",
            &[KeyValue {
                key: "team".into(),
                value: "a".into(),
            }],
            Some("desc"),
        )
        .await
        .unwrap();
    expected.push((
        "registered_model",
        "created",
        serde_json::json!({"name": "wh-model", "tags": {"team": "a"}, "description": "desc"}),
        t,
    ));
    let t = Instant::now();
    store
        .create_model_version(NewModelVersion {
            name: "wh-model".into(),
            source: "s3://bucket/model".into(),
            tags: vec![KeyValue {
                key: "k".into(),
                value: "v".into(),
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    expected.push(("model_version", "created", serde_json::json!({"name": "wh-model", "version": "1", "source": "s3://bucket/model", "tags": {"k": "v"}}), t));
    let t = Instant::now();
    store
        .set_model_version_tag(
            "wh-model",
            "1",
            &KeyValue {
                key: "stage".into(),
                value: "qa".into(),
            },
        )
        .await
        .unwrap();
    expected.push((
        "model_version_tag",
        "set",
        serde_json::json!({"name": "wh-model", "version": "1", "key": "stage", "value": "qa"}),
        t,
    ));
    let t = Instant::now();
    store
        .delete_model_version_tag("wh-model", "1", "stage")
        .await
        .unwrap();
    expected.push((
        "model_version_tag",
        "deleted",
        serde_json::json!({"name": "wh-model", "version": "1", "key": "stage"}),
        t,
    ));
    let t = Instant::now();
    store
        .set_registered_model_alias("wh-model", "champion", "1")
        .await
        .unwrap();
    expected.push((
        "model_version_alias",
        "created",
        serde_json::json!({"name": "wh-model", "alias": "champion", "version": "1"}),
        t,
    ));
    let t = Instant::now();
    store
        .delete_registered_model_alias("wh-model", "champion")
        .await
        .unwrap();
    expected.push((
        "model_version_alias",
        "deleted",
        serde_json::json!({"name": "wh-model", "alias": "champion"}),
        t,
    ));

    rx.wait_for("/ok", expected.len(), Duration::from_secs(5))
        .await;
    // Anything sent twice would show up in this extra wait.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let got = rx.on("/ok");
    assert_eq!(got.len(), expected.len(), "{got:#?}");

    let mut ids = std::collections::HashSet::new();
    for (entity, action, data, changed_at) in &expected {
        let matching: Vec<&Received> = got
            .iter()
            .filter(|r| {
                let v: Value = serde_json::from_str(&r.body).unwrap();
                v["entity"] == *entity && v["action"] == *action
            })
            .collect();
        assert_eq!(
            matching.len(),
            1,
            "{entity}.{action} arrived {} times",
            matching.len()
        );
        let r = matching[0];
        assert_signed(r);
        assert!(ids.insert(r.headers["x-mlflow-delivery-id"].clone()));
        let latency = r.at.duration_since(*changed_at);
        assert!(
            latency < Duration::from_secs(1),
            "{entity}.{action} took {latency:?}"
        );
        let v: Value = serde_json::from_str(&r.body).unwrap();
        for (k, want) in data.as_object().unwrap() {
            assert_eq!(&v["data"][k], want, "{entity}.{action} field {k}");
        }
        let ts = v["timestamp"].as_str().unwrap();
        assert!(ts.ends_with("+00:00") && ts.contains('T'), "{ts}");
    }
}

#[tokio::test]
async fn transient_failures_are_retried_with_the_same_delivery_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    let (rx, addr) = Receiver::start().await;
    *rx.flaky_failures.lock().unwrap() = 2;
    let _dispatcher = spawn_dispatcher(store.clone(), lax());
    let id = webhook(&store, format!("http://{addr}/flaky")).await;

    store
        .create_registered_model("flaky-model", &[], None)
        .await
        .unwrap();
    let got = rx.wait_for("/flaky", 3, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got_after = rx.on("/flaky");
    assert_eq!(got.len(), 3);
    assert_eq!(got_after.len(), 3, "delivered again after success");
    for r in &got {
        assert_signed(r);
        assert_eq!(
            r.headers["x-mlflow-delivery-id"],
            got[0].headers["x-mlflow-delivery-id"]
        );
    }
    assert!(
        got[1].at.duration_since(got[0].at) >= Duration::from_millis(30),
        "no backoff"
    );
    let records = store.list_webhook_deliveries(&id).await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(
        (records[0].state.as_str(), records[0].attempts),
        ("DELIVERED", 3)
    );
}

#[tokio::test]
async fn redirects_and_client_errors_are_not_followed_or_retried() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    let (rx, addr) = Receiver::start().await;
    let _dispatcher = spawn_dispatcher(store.clone(), lax());
    let redirecting = webhook(&store, format!("http://{addr}/redirect")).await;
    let gone = webhook(&store, format!("http://{addr}/gone")).await;

    store
        .create_registered_model("redirect-model", &[], None)
        .await
        .unwrap();
    rx.wait_for("/redirect", 1, Duration::from_secs(3)).await;
    rx.wait_for("/gone", 1, Duration::from_secs(3)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.on("/redirect").len(), 1);
    assert_eq!(rx.on("/gone").len(), 1);
    assert!(rx.on("/target").is_empty(), "redirect was followed");
    for (id, needle) in [(redirecting, "redirect"), (gone, "HTTP 410")] {
        let records = store.list_webhook_deliveries(&id).await.unwrap();
        assert_eq!(records[0].state, "FAILED");
        assert!(
            records[0].last_error.as_deref().unwrap().contains(needle),
            "{records:?}"
        );
    }
}

#[tokio::test]
async fn private_addresses_and_plain_http_are_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    let (rx, addr) = Receiver::start().await;
    let port = addr.rsplit(':').next().unwrap().to_string();

    // Saving: the policy refuses before anything is stored.
    let strict = UrlPolicy::default();
    assert!(strict.validate(&format!("http://{addr}/ok")).await.is_err());
    let https_only = UrlPolicy {
        allow_private_addresses: true,
        allow_http: false,
    };
    let err = https_only
        .validate(&format!("http://{addr}/ok"))
        .await
        .unwrap_err();
    assert!(err.message.contains("scheme"), "{}", err.message);
    let public_only = UrlPolicy {
        allow_private_addresses: false,
        allow_http: true,
    };
    let err = public_only
        .validate(&format!("http://{addr}/ok"))
        .await
        .unwrap_err();
    assert!(err.message.contains("non-public"), "{}", err.message);

    // Delivering: a webhook stored under a laxer policy (or whose name now resolves
    // privately) is refused at connection time, without retries.
    let _dispatcher = spawn_dispatcher(
        store.clone(),
        DispatcherConfig {
            allow_private_addresses: false,
            allow_http: true,
            ..lax()
        },
    );
    let literal = webhook(&store, format!("http://{addr}/ok")).await;
    let by_name = webhook(&store, format!("http://localhost:{port}/ok")).await;
    store
        .create_registered_model("private-model", &[], None)
        .await
        .unwrap();

    for id in [&literal, &by_name] {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let records = store.list_webhook_deliveries(id).await.unwrap();
            if records[0].state == "FAILED" {
                assert_eq!(records[0].attempts, 1);
                assert!(
                    records[0]
                        .last_error
                        .as_deref()
                        .unwrap()
                        .contains("non-public"),
                    "{records:?}"
                );
                break;
            }
            assert!(Instant::now() < deadline, "{records:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert!(rx.on("/ok").is_empty(), "a refused address was contacted");
}

#[tokio::test]
async fn http_urls_are_refused_at_delivery_without_the_allowance() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    let (rx, addr) = Receiver::start().await;
    let _dispatcher = spawn_dispatcher(
        store.clone(),
        DispatcherConfig {
            allow_private_addresses: true,
            allow_http: false,
            ..lax()
        },
    );
    let id = webhook(&store, format!("http://{addr}/ok")).await;
    store
        .create_registered_model("http-model", &[], None)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let records = store.list_webhook_deliveries(&id).await.unwrap();
        if records[0].state == "FAILED" {
            assert!(
                records[0].last_error.as_deref().unwrap().contains("scheme"),
                "{records:?}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{records:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(rx.on("/ok").is_empty());
}

#[tokio::test]
async fn two_dispatchers_on_one_database_deliver_each_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let a = open_store(&dir).await;
    let b = open_store(&dir).await;
    let (rx, addr) = Receiver::start().await;
    let config = DispatcherConfig {
        batch_size: 4,
        ..lax()
    };
    let _da = spawn_dispatcher(a.clone(), config.clone());
    let _db = spawn_dispatcher(b.clone(), config);
    webhook(&a, format!("http://{addr}/ok")).await;

    a.create_registered_model("replicated", &[], None)
        .await
        .unwrap();
    a.create_model_version(NewModelVersion {
        name: "replicated".into(),
        source: "s3://bucket/x".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let n = 30;
    for i in 0..n {
        let store = if i % 2 == 0 { &a } else { &b };
        let tag = KeyValue {
            key: format!("k{i}"),
            value: i.to_string(),
        };
        // Two processes writing one SQLite file can see SQLITE_BUSY on a transaction's
        // first write; a real deployment of replicas uses PostgreSQL. Retry like a client.
        let mut tries = 0;
        loop {
            match store.set_model_version_tag("replicated", "1", &tag).await {
                Ok(()) => break,
                Err(e) if e.message.contains("database is locked") && tries < 20 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("{e:?}"),
            }
        }
    }
    let total = n + 2;
    rx.wait_for("/ok", total, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let got = rx.on("/ok");
    let mut keys: Vec<String> = got
        .iter()
        .map(|r| {
            let v: Value = serde_json::from_str(&r.body).unwrap();
            format!(
                "{}.{}:{}",
                v["entity"].as_str().unwrap(),
                v["action"].as_str().unwrap(),
                v["data"]["key"]
            )
        })
        .collect();
    keys.sort();
    let before = keys.len();
    keys.dedup();
    assert_eq!(before, keys.len(), "duplicate deliveries");
    assert_eq!(got.len(), total);
}
