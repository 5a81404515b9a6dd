//! The gateway in-process against mock upstreams: MLflow's and OpenAI's routes, routing and
//! traffic split, retries, timeouts, rate limits, streaming and error shapes.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::MockUpstream;
use mlox_gateway::Gateway;
use mlox_gateway::config::{self, Environment};
use serde_json::{Value, json};

struct NoEnv;

impl Environment for NoEnv {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
    fn read_file(&self, _: &std::path::Path) -> Option<String> {
        None
    }
}

struct Served {
    base: String,
    http: reqwest::Client,
}

async fn serve(yaml: &str) -> Served {
    let config = config::parse(yaml, &NoEnv).unwrap_or_else(|e| panic!("config: {e}\n{yaml}"));
    let gateway = Gateway::new(config)
        .expect("gateway")
        .with_metrics(std::sync::Arc::new(
            mlox_gateway::metrics::GatewayMetrics::default(),
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the gateway");
    let addr = listener.local_addr().expect("gateway address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, mlox_gateway::http::router(gateway)).await;
    });
    Served {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
    }
}

/// An answer's status, Retry-After and body (JSON, or the text when it is not JSON).
struct Reply {
    status: u16,
    retry_after: Option<String>,
    content_type: String,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|_| panic!("not JSON: {}", self.text))
    }
}

impl Served {
    async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("gateway answers");
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let retry_after = header(reqwest::header::RETRY_AFTER);
        let content_type = header(reqwest::header::CONTENT_TYPE).unwrap_or_default();
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        Reply {
            status,
            retry_after,
            content_type,
            text,
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&body))
            .await
    }
}

fn openai_endpoint(name: &str, kind: &str, upstream: &MockUpstream, extra: &str) -> String {
    format!(
        "  - name: {name}
    endpoint_type: llm/v1/{kind}
    model:
      provider: openai
      name: up-{name}
      config:
        openai_api_key: sk-test
        openai_api_base: {base}/v1
{extra}",
        base = upstream.base()
    )
}

fn serving_endpoint(name: &str, kind: &str, upstream: &MockUpstream, extra: &str) -> String {
    format!(
        "  - name: {name}
    endpoint_type: llm/v1/{kind}
    model:
      provider: mlflow-model-serving
      name: served-{name}
      config:
        model_server_url: {base}
{extra}",
        base = upstream.base()
    )
}

fn chat_body(text: &str) -> Value {
    json!({"messages": [{"role": "user", "content": text}]})
}

/// Server-sent events' data lines.
fn events(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn mlflow_metadata_routes_are_byte_compatible() {
    let up = MockUpstream::start("up").await;
    let gw = serve(&format!(
        "endpoints:\n{}{}routes:\n  - name: split\n    task_type: llm/v1/chat\n    destinations:\n      - {{name: chat, traffic_percentage: 100}}\n",
        openai_endpoint("chat", "chat", &up, "    limit: {calls: 10, renewal_period: minute}\n"),
        serving_endpoint("fillmask", "completions", &up, ""),
    ))
    .await;

    let list = gw.get("/api/2.0/endpoints/").await;
    assert_eq!(list.status, 200);
    assert_eq!(
        list.text,
        r#"{"endpoints":[{"name":"chat","endpoint_type":"llm/v1/chat","model":{"name":"up-chat","provider":"openai"},"endpoint_url":"/gateway/chat/invocations","limit":{"calls":10,"key":null,"renewal_period":"minute"}},{"name":"fillmask","endpoint_type":"llm/v1/completions","model":{"name":"served-fillmask","provider":"mlflow-model-serving"},"endpoint_url":"/gateway/fillmask/invocations","limit":null}],"next_page_token":null}"#
    );
    let one = gw.get("/api/2.0/endpoints/fillmask").await;
    assert_eq!(
        one.text,
        r#"{"name":"fillmask","endpoint_type":"llm/v1/completions","model":{"name":"served-fillmask","provider":"mlflow-model-serving"},"endpoint_url":"/gateway/fillmask/invocations","limit":null}"#
    );
    assert_eq!(
        gw.get("/api/3.0/gateway/endpoint/fillmask").await.text,
        one.text
    );
    let route = gw.get("/api/3.0/gateway/route/split").await;
    assert_eq!(
        route.text,
        r#"{"name":"split","task_type":"llm/v1/chat","destinations":[{"name":"chat","traffic_percentage":100}],"routing_strategy":"TRAFFIC_SPLIT"}"#
    );
    insta::assert_json_snapshot!(gw.get("/api/2.0/endpoints/nope").await.json(), @r#"
    {
      "detail": "The endpoint 'nope' is not present or active on the server. Please verify the endpoint name."
    }
    "#);
    insta::assert_json_snapshot!(gw.get("/api/3.0/gateway/route/chat").await.json(), @r#"
    {
      "detail": "The route 'chat' is not present or active on the server. Please verify the route name."
    }
    "#);
    assert_eq!(
        gw.get("/api/2.0/endpoints/?page_token=eyJpbmRleCI6IDF9")
            .await
            .json()["endpoints"][0]["name"],
        "fillmask"
    );
    assert_eq!(
        gw.get("/api/2.0/endpoints/?page_token=%%%").await.status,
        400
    );
    assert_eq!(gw.get("/health").await.text, r#"{"status":"OK"}"#);
    let unknown = gw.post("/endpoints/nope/invocations", json!({})).await;
    assert_eq!(
        (unknown.status, unknown.text.as_str()),
        (404, r#"{"detail":"Not Found"}"#)
    );
    assert_eq!(gw.get("/endpoints/chat/invocations").await.status, 405);

    let models = gw.get("/v1/models").await.json();
    insta::assert_json_snapshot!(models, @r#"
    {
      "data": [
        {
          "created": 0,
          "id": "chat",
          "object": "model",
          "owned_by": "openai"
        },
        {
          "created": 0,
          "id": "fillmask",
          "object": "model",
          "owned_by": "mlflow-model-serving"
        },
        {
          "created": 0,
          "id": "split",
          "object": "model",
          "owned_by": "route"
        }
      ],
      "object": "list"
    }
    "#);
}

#[tokio::test]
async fn model_serving_follows_mlflows_mapping() {
    let up = MockUpstream::start("served").await;
    let gw = serve(&format!(
        "endpoints:\n{}{}{}{}",
        serving_endpoint("fillmask", "completions", &up, ""),
        serving_endpoint("chat", "chat", &up, ""),
        serving_endpoint("embeddings", "embeddings", &up, ""),
        serving_endpoint("conversation", "chat", &up, "").replace(
            "model_server_url",
            "mlox_chat_messages: true\n        model_server_url"
        ),
    ))
    .await;

    let answer = gw
        .post(
            "/endpoints/fillmask/invocations",
            json!({"prompt": "the [MASK] sat", "temperature": 0.1, "max_tokens": 20}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    insta::assert_json_snapshot!(answer.json(), {".created" => "[created]"}, @r#"
    {
      "choices": [
        {
          "finish_reason": null,
          "index": 0,
          "text": "THE [MASK] SAT"
        }
      ],
      "created": "[created]",
      "id": null,
      "model": "served-fillmask",
      "object": "text_completion",
      "usage": {
        "completion_tokens": null,
        "prompt_tokens": null,
        "total_tokens": null
      }
    }
    "#);
    let (_, _, sent) = up.last_request().unwrap();
    assert_eq!(
        sent,
        json!({"inputs": ["the [MASK] sat"], "params": {"n": 1, "temperature": 0.1, "max_tokens": 20}})
    );

    let chat = gw
        .post("/gateway/chat/invocations", chat_body("hello"))
        .await;
    assert_eq!(chat.json()["choices"][0]["message"]["content"], "HELLO");
    assert_eq!(chat.json()["provider"], "mlflow-model-serving");
    let two =
        json!({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]});
    let refused = gw.post("/endpoints/chat/invocations", two.clone()).await;
    assert_eq!(refused.status, 422);
    assert!(
        refused.json()["detail"]
            .as_str()
            .unwrap()
            .contains("2 queries")
    );

    // With mlox_chat_messages the whole conversation goes upstream.
    up.behaviour.invocations_answer.lock().unwrap().replace(
        json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "two seen"}}]}),
    );
    let conversation = gw
        .post("/endpoints/conversation/invocations", two.clone())
        .await;
    assert_eq!(conversation.status, 200, "{}", conversation.text);
    assert_eq!(
        conversation.json()["choices"][0]["message"]["content"],
        "two seen"
    );
    let (_, _, sent) = up.last_request().unwrap();
    assert_eq!(sent["messages"], two["messages"]);

    up.behaviour
        .invocations_answer
        .lock()
        .unwrap()
        .replace(json!({"predictions": [[0.1, 0.2], [0.3, 0.4]]}));
    let embedded = gw
        .post(
            "/v1/embeddings",
            json!({"model": "embeddings", "input": ["a", "b"]}),
        )
        .await;
    assert_eq!(embedded.status, 200, "{}", embedded.text);
    assert_eq!(embedded.json()["data"][1]["embedding"], json!([0.3, 0.4]));

    // An answer that does not fit the endpoint type is a 502, as in MLflow.
    up.behaviour
        .invocations_answer
        .lock()
        .unwrap()
        .replace(json!({"predictions": [{"embedding": [0.1]}]}));
    let bad = gw
        .post("/endpoints/embeddings/invocations", json!({"input": "a"}))
        .await;
    assert_eq!(bad.status, 502);

    // No streams in the model-serving protocol: the whole answer comes as one chunk.
    up.behaviour.invocations_answer.lock().unwrap().take();
    let streamed = gw
        .post("/v1/chat/completions", json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": true}))
        .await;
    assert!(streamed.content_type.starts_with("text/event-stream"));
    let data = events(&streamed.text);
    assert_eq!(data.len(), 2, "{}", streamed.text);
    let chunk: Value = serde_json::from_str(&data[0]).unwrap();
    assert_eq!(chunk["choices"][0]["delta"]["content"], "HI");
    assert_eq!(data[1], "[DONE]");
}

#[tokio::test]
async fn openai_api_routes_by_model_name() {
    let up = MockUpstream::start("up").await;
    let gw = serve(&format!(
        "endpoints:\n{}{}{}",
        openai_endpoint("chat", "chat", &up, ""),
        openai_endpoint("complete", "completions", &up, ""),
        openai_endpoint("embed", "embeddings", &up, ""),
    ))
    .await;
    let chat = gw
        .post("/v1/chat/completions", json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.2}))
        .await;
    assert_eq!(chat.status, 200, "{}", chat.text);
    assert_eq!(
        chat.json()["choices"][0]["message"]["content"],
        "up says: hi"
    );
    let (path, headers, sent) = up.last_request().unwrap();
    assert_eq!(path, "/v1/chat/completions");
    assert_eq!(sent["model"], "up-chat");
    assert_eq!(sent["temperature"], 0.2);
    assert_eq!(headers.get("authorization").unwrap(), "Bearer sk-test");

    let completion = gw
        .post(
            "/v1/completions",
            json!({"model": "complete", "prompt": "p"}),
        )
        .await;
    assert_eq!(completion.json()["choices"][0]["text"], "up completes: p");
    let embedding = gw
        .post(
            "/v1/embeddings",
            json!({"model": "embed", "input": ["a", "b"]}),
        )
        .await;
    assert_eq!(embedding.json()["data"].as_array().unwrap().len(), 2);
    // MLflow's route to the same endpoint.
    let via_mlflow = gw
        .post("/endpoints/chat/invocations", chat_body("yo"))
        .await;
    assert_eq!(
        via_mlflow.json()["choices"][0]["message"]["content"],
        "up says: yo"
    );
}

#[tokio::test]
async fn openai_errors_have_openais_shape_and_never_500() {
    let up = MockUpstream::start("up").await;
    let gw = serve(&format!(
        "endpoints:\n{}",
        openai_endpoint("chat", "chat", &up, "")
    ))
    .await;
    let unknown = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "gpt-nope", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(unknown.status, 404);
    insta::assert_json_snapshot!(unknown.json(), @r#"
    {
      "error": {
        "code": "model_not_found",
        "message": "The model `gpt-nope` does not exist: it is not an endpoint or route of this gateway (GET /v1/models lists them).",
        "param": null,
        "type": "invalid_request_error"
      }
    }
    "#);
    let wrong_kind = gw
        .post("/v1/embeddings", json!({"model": "chat", "input": "x"}))
        .await;
    assert_eq!(wrong_kind.status, 400);
    insta::assert_json_snapshot!(wrong_kind.json(), @r#"
    {
      "error": {
        "code": null,
        "message": "Endpoint 'chat' is not an embeddings endpoint.",
        "param": null,
        "type": "invalid_request_error"
      }
    }
    "#);
    let no_model = gw
        .post("/v1/chat/completions", json!({"messages": []}))
        .await;
    assert_eq!(no_model.status, 400);
    let invalid = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "chat", "messages": []}),
        )
        .await;
    assert_eq!(invalid.status, 422);
    assert_eq!(invalid.json()["error"]["type"], "invalid_request_error");
    let not_json = gw
        .send(
            gw.http
                .post(format!("{}/v1/chat/completions", gw.base))
                .body("{oops"),
        )
        .await;
    assert_eq!(not_json.status, 400);
    assert!(
        not_json.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
    let huge = "x".repeat(mlox_gateway::http::MAX_REQUEST_BYTES + 10);
    let too_big = gw
        .send(
            gw.http
                .post(format!("{}/v1/chat/completions", gw.base))
                .body(huge),
        )
        .await;
    assert_eq!(too_big.status, 413);
    assert_eq!(too_big.json()["error"]["code"], "request_too_large");

    // Upstream client errors keep their status and message.
    up.fail_next(1, 401);
    let denied = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "chat", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(denied.status, 401);
    assert_eq!(denied.json()["error"]["message"], "injected 401");
    assert_eq!(up.calls(), 1, "a 401 is not retried");
    up.fail_next(1, 400);
    let mlflow_shape = gw.post("/endpoints/chat/invocations", chat_body("x")).await;
    assert_eq!(
        (mlflow_shape.status, mlflow_shape.text.as_str()),
        (400, r#"{"detail":"injected 400"}"#)
    );
}

#[tokio::test]
async fn retries_ride_out_transient_failures() {
    let up = MockUpstream::start("up").await;
    let gw = serve(&format!(
        "retries: {{backoff_ms: 1}}\nendpoints:\n{}{}",
        openai_endpoint("chat", "chat", &up, ""),
        openai_endpoint("once", "chat", &up, "    retries: false\n"),
    ))
    .await;
    up.fail_next(2, 503);
    let answer = gw
        .post("/endpoints/chat/invocations", chat_body("hi"))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(up.calls(), 3);

    // Three attempts by default: the third failure is the answer.
    up.fail_next(5, 502);
    let exhausted = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "chat", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(exhausted.status, 502);
    assert_eq!(up.calls(), 6);
    up.fail_next(0, 503);

    up.fail_next(1, 503);
    let no_retry = gw
        .post("/endpoints/once/invocations", chat_body("hi"))
        .await;
    assert_eq!(no_retry.status, 503);
    assert_eq!(up.calls(), 7);

    // Retry-After is honoured.
    up.behaviour.retry_after.lock().unwrap().replace("1".into());
    up.fail_next(1, 429);
    let started = Instant::now();
    let waited = gw
        .post("/endpoints/chat/invocations", chat_body("hi"))
        .await;
    assert_eq!(waited.status, 200);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );

    // More patience than the policy allows: the 429 and its Retry-After go to the client.
    up.behaviour
        .retry_after
        .lock()
        .unwrap()
        .replace("60".into());
    up.fail_next(1, 429);
    let passed_on = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "chat", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(passed_on.status, 429);
    assert_eq!(passed_on.retry_after.as_deref(), Some("60"));
}

#[tokio::test]
async fn unreachable_and_slow_upstreams() {
    let up = MockUpstream::start("slow").await;
    // A port nobody listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);
    let gw = serve(&format!(
        "retries: {{backoff_ms: 1}}\nendpoints:\n{}  - name: gone\n    endpoint_type: llm/v1/completions\n    model: {{provider: mlflow-model-serving, config: {{model_server_url: 'http://{closed_addr}'}}}}\n",
        openai_endpoint("slow", "chat", &up, "    timeout: 0.3\n    retries: {max_attempts: 2, backoff_ms: 1}\n"),
    ))
    .await;
    let gone = gw
        .post("/endpoints/gone/invocations", json!({"prompt": "x"}))
        .await;
    assert_eq!(gone.status, 502);
    assert!(
        gone.json()["detail"]
            .as_str()
            .unwrap()
            .contains("cannot reach the upstream")
    );

    up.behaviour.delay_ms.store(1000, Ordering::SeqCst);
    let started = Instant::now();
    let slow = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "slow", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(slow.status, 504);
    assert_eq!(slow.json()["error"]["code"], "upstream_timeout");
    assert_eq!(up.calls(), 2, "timeouts are retried");
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn rate_limits_hold_per_endpoint_on_every_route() {
    let up = MockUpstream::start("up").await;
    let gw = serve(&format!(
        "endpoints:\n{}",
        openai_endpoint(
            "chat",
            "chat",
            &up,
            "    limit: {calls: 2, renewal_period: minute}\n"
        ),
    ))
    .await;
    assert_eq!(
        gw.post("/endpoints/chat/invocations", chat_body("1"))
            .await
            .status,
        200
    );
    assert_eq!(
        gw.post(
            "/v1/chat/completions",
            json!({"model": "chat", "messages": [{"role": "user", "content": "2"}]})
        )
        .await
        .status,
        200
    );
    let mlflow = gw.post("/gateway/chat/invocations", chat_body("3")).await;
    assert_eq!(mlflow.status, 429);
    assert_eq!(
        mlflow.text,
        r#"{"error":"Rate limit exceeded: 2 per 1 minute"}"#
    );
    let seconds: u64 = mlflow.retry_after.as_deref().unwrap().parse().unwrap();
    assert!((1..=60).contains(&seconds));
    let openai = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "chat", "messages": [{"role": "user", "content": "4"}]}),
        )
        .await;
    assert_eq!(openai.status, 429);
    assert!(openai.retry_after.is_some());
    insta::assert_json_snapshot!(openai.json(), @r#"
    {
      "error": {
        "code": "rate_limit_exceeded",
        "message": "Rate limit exceeded: 2 per 1 minute",
        "param": null,
        "type": "requests"
      }
    }
    "#);
    assert_eq!(up.calls(), 2);
}

#[tokio::test]
async fn streams_pass_through_and_always_end_with_done() {
    let up = MockUpstream::start("up").await;
    let gw = serve(&format!(
        "retries: {{backoff_ms: 1}}\nendpoints:\n{}{}",
        openai_endpoint("chat", "chat", &up, ""),
        openai_endpoint("complete", "completions", &up, ""),
    ))
    .await;
    let body = json!({"model": "chat", "messages": [{"role": "user", "content": "a b c"}], "stream": true});
    let streamed = gw.post("/v1/chat/completions", body.clone()).await;
    assert_eq!(streamed.status, 200);
    assert!(streamed.content_type.starts_with("text/event-stream"));
    let data = events(&streamed.text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let text: String = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(text, "up says: a b c ");
    assert_eq!(data.iter().filter(|d| *d == "[DONE]").count(), 1);

    // An upstream that ends without [DONE] still gives the client one.
    up.behaviour.omit_done.store(true, Ordering::SeqCst);
    let completed = gw
        .post(
            "/v1/completions",
            json!({"model": "complete", "prompt": "x", "stream": true}),
        )
        .await;
    let data = events(&completed.text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    up.behaviour.omit_done.store(false, Ordering::SeqCst);

    // Retries happen before the first byte only.
    up.fail_next(1, 503);
    let retried = gw.post("/endpoints/chat/invocations", body.clone()).await;
    assert_eq!(retried.status, 200);
    assert_eq!(
        events(&retried.text).last().map(String::as_str),
        Some("[DONE]")
    );

    // A stream broken mid-way ends with an error event and [DONE]; it is not retried.
    let calls = up.calls();
    up.behaviour.break_stream_after.store(2, Ordering::SeqCst);
    let broken = gw.post("/v1/chat/completions", body).await;
    assert_eq!(broken.status, 200);
    let data = events(&broken.text);
    assert_eq!(data.len(), 4, "{}", broken.text);
    let error: Value = serde_json::from_str(&data[2]).unwrap();
    assert_eq!(error["error"]["code"], "upstream_error");
    assert_eq!(data[3], "[DONE]");
    assert_eq!(up.calls(), calls + 1);
}

#[tokio::test]
async fn routes_split_traffic_by_percentage() {
    let first = MockUpstream::start("first").await;
    let second = MockUpstream::start("second").await;
    let gw = serve(&format!(
        "endpoints:\n{}{}routes:\n  - name: all-first\n    task_type: llm/v1/chat\n    destinations: [{{name: a, traffic_percentage: 100}}, {{name: b, traffic_percentage: 0}}]\n  - name: half\n    task_type: llm/v1/chat\n    destinations: [{{name: a, traffic_percentage: 50}}, {{name: b, traffic_percentage: 50}}]\n",
        openai_endpoint("a", "chat", &first, ""),
        openai_endpoint("b", "chat", &second, ""),
    ))
    .await;
    for _ in 0..20 {
        let answer = gw
            .post("/endpoints/all-first/invocations", chat_body("x"))
            .await;
        assert_eq!(
            answer.json()["choices"][0]["message"]["content"],
            "first says: x"
        );
    }
    assert_eq!(second.calls(), 0);
    for _ in 0..100 {
        let answer = gw
            .post(
                "/v1/chat/completions",
                json!({"model": "half", "messages": [{"role": "user", "content": "x"}]}),
            )
            .await;
        assert_eq!(answer.status, 200);
    }
    let (a, b) = (first.calls() - 20, second.calls());
    assert_eq!(a + b, 100);
    // 50/50 over 100 draws: outside 20..80 has odds below 1e-9.
    assert!((20..=80).contains(&a), "{a} / {b}");
}

#[tokio::test]
async fn stream_events_reach_the_client_as_they_arrive() {
    use futures::StreamExt as _;

    let up = MockUpstream::start("up").await;
    let gw = serve(&format!(
        "endpoints:\n{}{}",
        openai_endpoint("chat", "chat", &up, ""),
        openai_endpoint("hung", "chat", &up, "    timeout: 0.3\n"),
    ))
    .await;
    up.behaviour.stream_gap_ms.store(800, Ordering::SeqCst);
    let body =
        json!({"model": "chat", "messages": [{"role": "user", "content": "a b"}], "stream": true});
    let started = Instant::now();
    let response = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    let mut chunks = response.bytes_stream();
    let first = chunks.next().await.unwrap().unwrap();
    // The first event arrives while the upstream is still pausing: nothing is buffered.
    assert!(
        started.elapsed() < Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );
    assert!(first.starts_with(b"data: {"), "{first:?}");
    let mut rest = Vec::new();
    while let Some(chunk) = chunks.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    assert!(started.elapsed() >= Duration::from_millis(800));
    assert!(rest.ends_with(b"data: [DONE]\n\n"));

    // An upstream silent for longer than the endpoint's timeout ends the stream with an error.
    let hung = gw
        .post("/v1/chat/completions", json!({"model": "hung", "messages": [{"role": "user", "content": "a b"}], "stream": true}))
        .await;
    let data = events(&hung.text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let error: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(error["error"]["code"], "upstream_timeout");
}

#[tokio::test]
async fn fallbacks_answer_when_an_endpoint_cannot() {
    let primary = MockUpstream::start("primary").await;
    let backup = MockUpstream::start("backup").await;
    let gw = serve(&format!(
        "endpoints:\n{}{}{}",
        openai_endpoint(
            "chat",
            "chat",
            &primary,
            "    retries: false\n    fallbacks: [backup, limited]\n    limit: {calls: 2, renewal_period: minute}\n"
        ),
        openai_endpoint("backup", "chat", &backup, "    retries: false\n"),
        openai_endpoint("limited", "chat", &backup, "    retries: false\n"),
    ))
    .await;
    // An upstream that is down: the first fallback answers the same request.
    primary.fail_next(1, 503);
    let answer = gw
        .post("/endpoints/chat/invocations", chat_body("hi"))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!((primary.calls(), backup.calls()), (1, 1));
    let (_, _, sent) = backup.last_request().expect("the fallback was called");
    assert_eq!(sent["model"], "up-backup");
    // A client error is the client's: no fallback.
    primary.fail_next(1, 400);
    let refused = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "chat", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(refused.status, 400);
    assert_eq!(backup.calls(), 1);
    // Its own rate limit used up (two calls a minute): the fallback takes the call.
    let limited = gw.post("/endpoints/chat/invocations", chat_body("3")).await;
    assert_eq!(limited.status, 200, "{}", limited.text);
    assert_eq!((primary.calls(), backup.calls()), (2, 2));
}

#[test]
fn fallbacks_must_name_other_endpoints_of_the_same_type() {
    let base = "endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    fallbacks: [FALLBACK]
    model: {provider: openai, name: m, config: {openai_api_key: k}}
  - name: other
    endpoint_type: llm/v1/chat
    model: {provider: openai, name: m, config: {openai_api_key: k}}
  - name: embed
    endpoint_type: llm/v1/embeddings
    model: {provider: openai, name: m, config: {openai_api_key: k}}
";
    assert!(config::parse(&base.replace("FALLBACK", "other"), &NoEnv).is_ok());
    for (fallback, message) in [
        ("nope", "is not an endpoint name"),
        ("chat", "is the endpoint itself"),
        ("embed", "has endpoint type 'llm/v1/embeddings'"),
    ] {
        let e = config::parse(&base.replace("FALLBACK", fallback), &NoEnv).unwrap_err();
        assert_eq!(e.field, "endpoints[0].fallbacks[0]");
        assert_eq!(e.line, Some(4), "{e}");
        assert!(e.message.contains(message), "{fallback}: {e}");
    }
}

#[tokio::test]
async fn calls_are_counted_in_prometheus_metrics() {
    let up = MockUpstream::start("up").await;
    let gw = serve(&format!(
        "endpoints:\n{}",
        openai_endpoint("chat", "chat", &up, "    retries: false\n")
    ))
    .await;
    assert_eq!(
        gw.post("/endpoints/chat/invocations", chat_body("a"))
            .await
            .status,
        200
    );
    up.fail_next(1, 503);
    assert_eq!(
        gw.post(
            "/v1/chat/completions",
            json!({"model": "chat", "messages": [{"role": "user", "content": "b"}]})
        )
        .await
        .status,
        503
    );
    let metrics = gw.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.content_type.starts_with("text/plain"),
        "{}",
        metrics.content_type
    );
    for line in [
        r#"mlox_gateway_calls_total{endpoint="chat",status="200"} 1"#,
        r#"mlox_gateway_calls_total{endpoint="chat",status="503"} 1"#,
        r#"mlox_gateway_call_duration_seconds_count{endpoint="chat"} 2"#,
        r#"mlox_gateway_upstream_duration_seconds_count{endpoint="chat"} 2"#,
    ] {
        assert!(metrics.text.contains(line), "{line}\n{}", metrics.text);
    }
    assert!(
        metrics
            .text
            .contains("mlox_gateway_tokens_total{endpoint=\"chat\",kind=\"prompt\"}"),
        "{}",
        metrics.text
    );
}
