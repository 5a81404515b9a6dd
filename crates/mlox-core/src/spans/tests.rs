use super::*;
use serde_json::json;

fn span(attributes: Vec<(&str, Value)>) -> OtelSpan {
    OtelSpan {
        trace_id: (1..=16).collect(),
        span_id: vec![0xab; 8],
        parent_span_id: Vec::new(),
        name: "root".into(),
        start_time_unix_nano: 1_700_000_000_123_000_000,
        end_time_unix_nano: 1_700_000_000_456_000_000,
        attributes: attributes
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        events: Vec::new(),
        status: Some((SpanStatusCode::Ok, "ignored on success".into())),
    }
}

fn attr(stored: &StoredSpan, key: &str) -> Option<String> {
    stored.attributes()?.get(key)?.as_str().map(str::to_string)
}

#[test]
fn a_span_is_stored_as_mlflow_writes_it() {
    let stored = span(vec![
        ("test.string", json!("string-value")),
        ("test.number", json!(42)),
        ("test.flag", json!(true)),
    ])
    .into_stored(None)
    .unwrap();
    assert_eq!(stored.trace_id, "tr-0102030405060708090a0b0c0d0e0f10");
    assert_eq!(stored.span_id, "abababababababab");
    assert_eq!(stored.parent_span_id, None);
    assert_eq!(stored.status, SpanStatusCode::Ok);
    assert_eq!(stored.end_time_unix_nano, Some(1_700_000_000_456_000_000));
    insta::assert_json_snapshot!(stored.content, @r#"
    {
      "attributes": {
        "mlflow.traceRequestId": "\"tr-0102030405060708090a0b0c0d0e0f10\"",
        "test.flag": "true",
        "test.number": "42",
        "test.string": "\"string-value\""
      },
      "end_time_unix_nano": 1700000000456000000,
      "events": [],
      "name": "root",
      "parent_span_id": null,
      "span_id": "q6urq6urq6s=",
      "start_time_unix_nano": 1700000000123000000,
      "status": {
        "code": "STATUS_CODE_OK",
        "message": ""
      },
      "trace_id": "AQIDBAUGBwgJCgsMDQ4PEA=="
    }
    "#);
}

#[test]
fn short_ids_are_left_padded_and_long_or_missing_ones_refused() {
    let mut short = span(vec![]);
    short.trace_id = vec![0x12];
    short.span_id = vec![0x34];
    let stored = short.into_stored(None).unwrap();
    assert_eq!(stored.trace_id, format!("tr-{}12", "0".repeat(30)));
    assert_eq!(stored.span_id, "0000000000000034");

    for broken in [
        OtelSpan {
            trace_id: Vec::new(),
            ..span(vec![])
        },
        OtelSpan {
            span_id: Vec::new(),
            ..span(vec![])
        },
        OtelSpan {
            trace_id: vec![1; 17],
            ..span(vec![])
        },
        OtelSpan {
            parent_span_id: vec![1; 9],
            ..span(vec![])
        },
    ] {
        assert_eq!(
            broken.into_stored(None).unwrap_err().code,
            crate::Code::InvalidParameterValue
        );
    }
}

#[test]
fn error_status_keeps_its_message_and_other_statuses_drop_it() {
    let mut failed = span(vec![]);
    failed.status = Some((SpanStatusCode::Error, "Something went wrong".into()));
    let stored = failed.into_stored(None).unwrap();
    assert_eq!(stored.status, SpanStatusCode::Error);
    assert_eq!(
        stored.content["status"],
        json!({"code": "STATUS_CODE_ERROR", "message": "Something went wrong"})
    );
    assert_eq!(TraceSummary::of(&[stored]).root_state, Some("ERROR"));
}

#[test]
fn json_text_sent_as_a_string_attribute_is_not_encoded_twice() {
    let stored = span(vec![
        ("mlflow.spanInputs", json!("{\"query\": \"hi\"}")),
        ("mlflow.spanOutputs", json!("\"Bye!\"")),
        ("plain", json!("1")),
    ])
    .into_stored(None)
    .unwrap();
    assert_eq!(
        attr(&stored, "mlflow.spanInputs").unwrap(),
        "{\"query\": \"hi\"}"
    );
    assert_eq!(attr(&stored, "mlflow.spanOutputs").unwrap(), "\"Bye!\"");
    // A number written as text stays text.
    assert_eq!(attr(&stored, "plain").unwrap(), "\"1\"");
}

#[test]
fn known_service_names_go_on_root_spans_only() {
    let root = span(vec![]).into_stored(Some("gemini-cli")).unwrap();
    assert_eq!(attr(&root, "service.name").unwrap(), "\"gemini-cli\"");
    let mut child = span(vec![]);
    child.parent_span_id = vec![7; 8];
    let child = child.into_stored(Some("gemini-cli")).unwrap();
    assert_eq!(attr(&child, "service.name"), None);
    assert_eq!(child.parent_span_id.as_deref(), Some("0707070707070707"));
}

#[test]
fn conventions_give_the_span_type() {
    for (key, kind, expected) in [
        ("openinference.span.kind", "RETRIEVER", "RETRIEVER"),
        ("gen_ai.operation.name", "chat", "CHAT_MODEL"),
        ("gen_ai.operation.name", "execute_tool", "TOOL"),
        ("traceloop.span.kind", "workflow", "WORKFLOW"),
    ] {
        let stored = span(vec![(key, json!(kind))]).into_stored(None).unwrap();
        assert_eq!(stored.span_type.as_deref(), Some(expected), "{key}={kind}");
    }
    let unknown = span(vec![("traceloop.span.kind", json!("nothing"))])
        .into_stored(None)
        .unwrap();
    assert_eq!(unknown.span_type, None);
    // A type the span already has is kept.
    let typed = span(vec![
        ("mlflow.spanType", json!("LLM")),
        ("openinference.span.kind", json!("TOOL")),
    ])
    .into_stored(None)
    .unwrap();
    assert_eq!(typed.span_type.as_deref(), Some("LLM"));
}

#[test]
fn conventions_give_inputs_outputs_and_token_usage() {
    let stored = span(vec![
        ("input.value", json!("Hello, world!")),
        ("output.value", json!("Bye!")),
        ("llm.token_count.prompt", json!(100)),
        ("llm.token_count.completion", json!(50)),
        ("llm.model_name", json!("gpt-x")),
    ])
    .into_stored(None)
    .unwrap();
    assert_eq!(
        attr(&stored, "mlflow.spanInputs").unwrap(),
        "\"Hello, world!\""
    );
    assert_eq!(attr(&stored, "mlflow.spanOutputs").unwrap(), "\"Bye!\"");
    assert_eq!(
        attr(&stored, "mlflow.chat.tokenUsage").unwrap(),
        r#"{"input_tokens": 100, "output_tokens": 50, "total_tokens": 150}"#
    );
    assert_eq!(attr(&stored, "mlflow.llm.model").unwrap(), "\"gpt-x\"");

    let traceloop = span(vec![
        ("gen_ai.prompt.0.content", json!("question")),
        ("gen_ai.completion.0.content", json!("answer")),
        ("gen_ai.usage.prompt_tokens", json!("7")),
        ("gen_ai.usage.completion_tokens", json!(3)),
        ("llm.usage.total_tokens", json!(11)),
        ("gen_ai.system", json!("openai")),
    ])
    .into_stored(None)
    .unwrap();
    assert_eq!(
        attr(&traceloop, "mlflow.spanInputs").unwrap(),
        "\"question\""
    );
    assert_eq!(
        attr(&traceloop, "mlflow.spanOutputs").unwrap(),
        "\"answer\""
    );
    assert_eq!(
        attr(&traceloop, "mlflow.chat.tokenUsage").unwrap(),
        r#"{"input_tokens": 7, "output_tokens": 3, "total_tokens": 11}"#
    );
    assert_eq!(
        attr(&traceloop, "mlflow.llm.provider").unwrap(),
        "\"openai\""
    );
}

#[test]
fn gen_ai_message_events_become_inputs_and_outputs() {
    let mut with_events = span(vec![]);
    with_events.events = vec![
        OtelEvent {
            name: "gen_ai.user.message".into(),
            time_unix_nano: 1,
            attributes: vec![("content".into(), json!("hi"))],
        },
        OtelEvent {
            name: "gen_ai.choice".into(),
            time_unix_nano: 2,
            attributes: vec![("content".into(), json!("hello"))],
        },
    ];
    let stored = with_events.into_stored(None).unwrap();
    assert_eq!(
        attr(&stored, "mlflow.spanInputs").unwrap(),
        r#"[{"content": "hi", "role": "user"}]"#
    );
    assert_eq!(
        attr(&stored, "mlflow.spanOutputs").unwrap(),
        r#"[{"content": "hello", "role": "assistant"}]"#
    );
}

#[test]
fn a_trace_summary_adds_token_usage_and_reads_the_root() {
    let mut root = span(vec![
        (
            "mlflow.spanInputs",
            json!({"messages": [{"role": "user", "content": "Q?"}]}),
        ),
        ("mlflow.spanOutputs", json!("A.")),
        ("session.id", json!("s-1")),
    ]);
    root.start_time_unix_nano = 5_000_000;
    root.end_time_unix_nano = 9_000_000;
    let mut child = span(vec![
        ("gen_ai.usage.input_tokens", json!(150)),
        ("gen_ai.usage.output_tokens", json!(75)),
    ]);
    child.span_id = vec![7; 8];
    child.parent_span_id = root.span_id.clone();
    child.start_time_unix_nano = 6_000_000;
    child.end_time_unix_nano = 12_000_000;
    let mut other = child.clone();
    other.span_id = vec![9; 8];
    other.attributes = vec![
        ("gen_ai.usage.input_tokens".into(), json!(300)),
        ("gen_ai.usage.output_tokens".into(), json!(150)),
    ];
    let spans: Vec<StoredSpan> = [root, child, other]
        .into_iter()
        .map(|s| s.into_stored(None).unwrap())
        .collect();
    let summary = TraceSummary::of(&spans);
    assert_eq!(summary.start_ms, 5);
    assert_eq!(summary.end_ms, Some(12));
    assert_eq!(summary.root_state, Some("OK"));
    assert_eq!(
        Value::Object(summary.token_usage),
        json!({"input_tokens": 450, "output_tokens": 225, "total_tokens": 675})
    );
    assert_eq!(summary.session_id.as_deref(), Some("s-1"));
    assert_eq!(summary.request_preview.as_deref(), Some("Q?"));
    assert_eq!(summary.response_preview.as_deref(), Some("\"A.\""));
}

#[test]
fn a_figure_held_by_an_ancestor_is_not_counted_again() {
    let cost = |total: f64| json!({"input_cost": total / 2.0, "output_cost": total / 2.0, "total_cost": total});
    // An agent that rolls up its model call's usage and cost, a second model call, and a
    // span of another trace batch whose parent is not here.
    let mut agent = span(vec![
        (
            "mlflow.chat.tokenUsage",
            json!({"input_tokens": 10, "output_tokens": 4, "total_tokens": 14}),
        ),
        ("mlflow.llm.cost", cost(3.0)),
    ]);
    agent.span_id = vec![1; 8];
    let mut rolled_up = span(vec![
        (
            "mlflow.chat.tokenUsage",
            json!({"input_tokens": 10, "output_tokens": 4, "total_tokens": 14}),
        ),
        ("mlflow.llm.cost", cost(3.0)),
    ]);
    rolled_up.span_id = vec![2; 8];
    rolled_up.parent_span_id = agent.span_id.clone();
    let mut grandchild = span(vec![("mlflow.llm.cost", cost(9.0))]);
    grandchild.span_id = vec![3; 8];
    grandchild.parent_span_id = rolled_up.span_id.clone();
    let mut orphan = span(vec![
        (
            "mlflow.chat.tokenUsage",
            json!({"input_tokens": 1, "output_tokens": 1, "total_tokens": 2}),
        ),
        ("mlflow.llm.cost", cost(0.5)),
    ]);
    orphan.span_id = vec![4; 8];
    orphan.parent_span_id = vec![5; 8];
    let spans: Vec<StoredSpan> = [agent, rolled_up, grandchild, orphan]
        .into_iter()
        .map(|s| s.into_stored(None).unwrap())
        .collect();
    let summary = TraceSummary::of(&spans);
    assert_eq!(
        Value::Object(summary.token_usage),
        json!({"input_tokens": 11, "output_tokens": 5, "total_tokens": 16})
    );
    assert_eq!(
        Value::Object(summary.cost),
        json!({"input_cost": 1.75, "output_cost": 1.75, "total_cost": 3.5})
    );
}

#[test]
fn a_root_spans_trace_tag_attributes_are_the_traces_tags() {
    let root = span(vec![
        ("mlflow.traceTag.team", json!("search")),
        ("mlflow.traceTag.mlflow.traceName", json!("ignored")),
        ("mlflow.traceTag.", json!("no key")),
        ("other", json!("x")),
    ]);
    let mut child = span(vec![("mlflow.traceTag.child", json!("not a root"))]);
    child.span_id = vec![2; 8];
    child.parent_span_id = root.span_id.clone();
    let spans: Vec<StoredSpan> = [root, child]
        .into_iter()
        .map(|s| s.into_stored(None).unwrap())
        .collect();
    assert_eq!(
        TraceSummary::of(&spans).tags,
        vec![("team".to_string(), "search".to_string())]
    );
}

#[test]
fn previews_are_cut_to_a_thousand_characters() {
    let long = format!("\"{}\"", "é".repeat(2000));
    let cut = preview(&long, "user");
    assert_eq!(cut.chars().count(), 1000);
    assert!(cut.ends_with("..."));
    assert_eq!(
        preview(
            r#"{"choices": [{"message": {"role": "assistant", "content": [{"type": "text", "text": "hey"}]}}]}"#,
            "assistant"
        ),
        "hey"
    );
}

#[test]
fn a_stored_span_renders_as_the_otel_message_with_decoded_values() {
    let mut child = span(vec![
        ("n", json!(42)),
        ("x", json!(1.5)),
        ("flag", json!(false)),
        ("list", json!([1, "a"])),
        ("obj", json!({"k": null})),
    ]);
    child.parent_span_id = vec![1; 8];
    child.events = vec![OtelEvent {
        name: "test_event".into(),
        time_unix_nano: 3,
        attributes: vec![("event.type".into(), json!("processing"))],
    }];
    let stored = child.into_stored(None).unwrap();
    let rendered = otel_span_json(&stored.content);
    insta::assert_json_snapshot!(rendered, @r#"
    {
      "attributes": [
        {
          "key": "flag",
          "value": {
            "bool_value": false
          }
        },
        {
          "key": "list",
          "value": {
            "array_value": {
              "values": [
                {
                  "int_value": 1
                },
                {
                  "string_value": "a"
                }
              ]
            }
          }
        },
        {
          "key": "mlflow.traceRequestId",
          "value": {
            "string_value": "tr-0102030405060708090a0b0c0d0e0f10"
          }
        },
        {
          "key": "n",
          "value": {
            "int_value": 42
          }
        },
        {
          "key": "obj",
          "value": {
            "kvlist_value": {
              "values": [
                {
                  "key": "k",
                  "value": {}
                }
              ]
            }
          }
        },
        {
          "key": "x",
          "value": {
            "double_value": 1.5
          }
        }
      ],
      "end_time_unix_nano": 1700000000456000000,
      "events": [
        {
          "attributes": [
            {
              "key": "event.type",
              "value": {
                "string_value": "processing"
              }
            }
          ],
          "name": "test_event",
          "time_unix_nano": 3
        }
      ],
      "name": "root",
      "parent_span_id": "AQEBAQEBAQE=",
      "span_id": "q6urq6urq6s=",
      "start_time_unix_nano": 1700000000123000000,
      "status": {
        "code": "STATUS_CODE_OK",
        "message": ""
      },
      "trace_id": "AQIDBAUGBwgJCgsMDQ4PEA=="
    }
    "#);
}
