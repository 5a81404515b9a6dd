use std::time::Duration;

use serde_json::json;

use super::*;
use crate::config::{OpenAiFamily, ProviderConfig};
use crate::retry::RetryPolicy;

fn endpoint(kind: EndpointType, provider: ProviderConfig) -> EndpointConfig {
    EndpointConfig {
        name: "e".into(),
        endpoint_type: kind,
        model_name: Some("m".into()),
        provider,
        limit: None,
        retries: RetryPolicy::default(),
        timeout: Duration::from_secs(1),
        fallbacks: Vec::new(),
    }
}

fn serving(chat_messages: bool) -> ProviderConfig {
    ProviderConfig::ModelServing {
        model_server_url: "http://h:1".into(),
        chat_messages,
        token: None,
    }
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[test]
fn model_serving_requests_follow_mlflow() {
    let completions = endpoint(EndpointType::Completions, serving(false));
    let request = build_request(
        &completions,
        EndpointType::Completions,
        object(json!({"prompt": "hi", "temperature": 0.5, "stop": null})),
        false,
    );
    assert_eq!(request.url, "http://h:1/invocations");
    assert_eq!(
        request.body,
        json!({"inputs": ["hi"], "params": {"n": 1, "temperature": 0.5}})
    );

    let chat = endpoint(EndpointType::Chat, serving(false));
    let request = build_request(
        &chat,
        EndpointType::Chat,
        object(json!({"messages": [{"role": "user", "content": "q"}]})),
        true,
    );
    assert_eq!(request.body, json!({"inputs": ["q"], "params": {"n": 1}}));
    assert!(!request.stream);

    let embeddings = endpoint(EndpointType::Embeddings, serving(false));
    let request = build_request(
        &embeddings,
        EndpointType::Embeddings,
        object(json!({"input": ["a", "b"]})),
        false,
    );
    assert_eq!(request.body, json!({"inputs": ["a", "b"]}));
}

#[test]
fn chat_messages_extension_sends_the_conversation() {
    let messages = json!([{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]);
    let body = object(json!({"messages": messages, "max_tokens": 5}));
    let plain = endpoint(EndpointType::Chat, serving(false));
    let refused = check_model_serving_chat(&plain, EndpointType::Chat, &body).unwrap_err();
    assert_eq!(refused.status(), 422);
    let extended = endpoint(EndpointType::Chat, serving(true));
    assert!(check_model_serving_chat(&extended, EndpointType::Chat, &body).is_ok());
    let request = build_request(&extended, EndpointType::Chat, body, false);
    assert_eq!(
        request.body,
        json!({"messages": messages, "max_tokens": 5, "n": 1})
    );
}

#[test]
fn openai_requests_pass_through_with_the_configured_model() {
    let e = endpoint(
        EndpointType::Chat,
        ProviderConfig::OpenAiCompatible {
            provider: OpenAiFamily::Groq,
            api_base: "http://up/v1".into(),
            api_key: Some("k".into()),
            organization: None,
            azure: None,
        },
    );
    let request = build_request(
        &e,
        EndpointType::Chat,
        object(json!({"messages": [{"role": "user", "content": "q"}], "stream": true, "x": 1})),
        true,
    );
    assert_eq!(request.url, "http://up/v1/chat/completions");
    assert_eq!(
        request.body,
        json!({"messages": [{"role": "user", "content": "q"}], "stream": true, "x": 1, "model": "m",
               "stream_options": {"include_usage": true}})
    );
    assert_eq!(request.bearer.as_deref(), Some("k"));
    assert!(request.stream);
    // A client's own choice about usage is kept.
    let own = build_request(
        &e,
        EndpointType::Chat,
        object(json!({"messages": [], "stream": true, "stream_options": {"include_usage": false}})),
        true,
    );
    assert_eq!(own.body["stream_options"], json!({"include_usage": false}));
}

#[test]
fn model_serving_answers_in_mlflows_shape() {
    let texts = read_model_serving_answer(
        EndpointType::Completions,
        &json!({"predictions": ["a", "b"]}),
    )
    .expect("valid");
    let bytes = model_serving_answer(EndpointType::Completions, Some("m"), &texts, 7);
    assert_eq!(
        String::from_utf8_lossy(&bytes),
        r#"{"id":null,"object":"text_completion","created":7,"model":"m","choices":[{"index":0,"text":"a","finish_reason":null},{"index":1,"text":"b","finish_reason":null}],"usage":{"prompt_tokens":null,"completion_tokens":null,"total_tokens":null}}"#
    );
    let chat = read_model_serving_answer(
        EndpointType::Chat,
        &json!({"predictions": {"candidates": ["x"]}}),
    )
    .expect("one-key dict");
    let bytes = model_serving_answer(EndpointType::Chat, Some("m"), &chat, 7);
    assert_eq!(
        String::from_utf8_lossy(&bytes),
        r#"{"id":null,"object":"chat.completion","created":7,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"x","tool_calls":null,"refusal":null},"finish_reason":null}],"usage":{"prompt_tokens":null,"completion_tokens":null,"total_tokens":null},"provider":"mlflow-model-serving"}"#
    );
    let flat =
        read_model_serving_answer(EndpointType::Embeddings, &json!({"predictions": [0.5, 1]}))
            .expect("flat list is one vector");
    let bytes = model_serving_answer(EndpointType::Embeddings, None, &flat, 7);
    assert_eq!(
        String::from_utf8_lossy(&bytes),
        r#"{"object":"list","data":[{"object":"embedding","embedding":[0.5,1.0],"index":0}],"model":null,"usage":{"prompt_tokens":null,"total_tokens":null}}"#
    );
}

#[test]
fn unusable_model_answers_are_bad_gateway() {
    for (kind, answer) in [
        (EndpointType::Completions, json!({"outputs": ["a"]})),
        (EndpointType::Completions, json!({"predictions": []})),
        (EndpointType::Completions, json!({"predictions": [1, 2]})),
        (
            EndpointType::Completions,
            json!({"predictions": {"a": ["x"], "b": ["y"]}}),
        ),
        (EndpointType::Embeddings, json!({"predictions": [[]]})),
        (
            EndpointType::Embeddings,
            json!({"predictions": [{"embedding": [0.1]}]}),
        ),
    ] {
        let error = read_model_serving_answer(kind, &answer).err();
        assert_eq!(error.map(|e| e.status()), Some(502), "{answer}");
    }
}

#[test]
fn request_validation() {
    let cases = [
        (EndpointType::Chat, json!({}), false),
        (EndpointType::Chat, json!({"messages": []}), false),
        (
            EndpointType::Chat,
            json!({"messages": [{"content": "x"}]}),
            false,
        ),
        (
            EndpointType::Chat,
            json!({"messages": [{"role": "user", "content": "x"}], "temperature": 3}),
            false,
        ),
        (
            EndpointType::Chat,
            json!({"messages": [{"role": "user", "content": "x"}], "n": 0}),
            false,
        ),
        (
            EndpointType::Chat,
            json!({"messages": [{"role": "user", "content": "x"}], "stream": "yes"}),
            false,
        ),
        (
            EndpointType::Chat,
            json!({"messages": [{"role": "user", "content": "x"}], "temperature": 0.2}),
            true,
        ),
        (EndpointType::Completions, json!({"prompt": 3}), false),
        (
            EndpointType::Completions,
            json!({"prompt": "p", "max_tokens": 10}),
            true,
        ),
        (EndpointType::Embeddings, json!({"input": [1, 2]}), true),
        (
            EndpointType::Embeddings,
            json!({"input": [[1], [2, 3]]}),
            true,
        ),
        (EndpointType::Embeddings, json!({"input": [1, "a"]}), false),
        (EndpointType::Embeddings, json!({"input": {"a": 1}}), false),
    ];
    for (kind, body, ok) in cases {
        let result = validate_request(kind, &object(body.clone()));
        assert_eq!(result.is_ok(), ok, "{kind} {body}: {result:?}");
        if let Err(e) = result {
            assert_eq!(e.status(), 422);
        }
    }
}

#[test]
fn azure_openai_names_the_deployment_in_the_url_and_sends_its_key_as_api_key() {
    let azure = |entra_id: bool| {
        endpoint(
            EndpointType::Chat,
            ProviderConfig::OpenAiCompatible {
                provider: OpenAiFamily::OpenAi,
                api_base: "https://my.openai.azure.com".into(),
                api_key: Some("az-key".into()),
                organization: None,
                azure: Some(crate::config::AzureDeployment {
                    deployment: "gpt4o prod".into(),
                    api_version: "2024-06-01".into(),
                    entra_id,
                }),
            },
        )
    };
    let body =
        || object(json!({"messages": [{"role": "user", "content": "q"}], "model": "ignored"}));
    let request = build_request(&azure(false), EndpointType::Chat, body(), false);
    assert_eq!(
        request.url,
        "https://my.openai.azure.com/openai/deployments/gpt4o%20prod/chat/completions?api-version=2024-06-01"
    );
    assert_eq!(request.body.get("model"), None);
    assert_eq!(
        (request.headers.clone(), request.bearer.as_deref()),
        (vec![("api-key", "az-key".to_string())], None)
    );
    let entra = build_request(&azure(true), EndpointType::Chat, body(), false);
    assert_eq!(
        (entra.headers.clone(), entra.bearer.as_deref()),
        (Vec::new(), Some("az-key"))
    );
}

fn tgi() -> EndpointConfig {
    endpoint(
        EndpointType::Completions,
        ProviderConfig::TextGenerationInference {
            server_url: "http://tgi:8080".into(),
        },
    )
}

#[test]
fn text_generation_inference_gets_mlflows_generate_request_and_checks() {
    let body = object(json!({"prompt": "Hi", "max_tokens": 5, "temperature": 0.0,
                             "stop": ["."], "n": 1, "top_p": null}));
    let request = build_request(&tgi(), EndpointType::Completions, body, true);
    assert_eq!(request.url, "http://tgi:8080/generate");
    assert!(!request.stream, "TGI is asked for the whole answer");
    assert_eq!(
        request.body,
        json!({"inputs": "Hi", "parameters": {"max_new_tokens": 5, "temperature": 0.001,
               "stop": ["."], "details": true, "decoder_input_details": true}})
    );
    let refused = |body: Value| check_text_generation_request(&tgi(), &object(body)).unwrap_err();
    assert!(
        refused(json!({"prompt": "x", "model": "m"}))
            .to_string()
            .contains("'model' is not permitted")
    );
    assert!(
        refused(json!({"prompt": "x", "max_new_tokens": 3}))
            .to_string()
            .contains("Use max_tokens")
    );
    assert!(
        refused(json!({"prompt": "x", "n": 2}))
            .to_string()
            .contains("'n' must be '1'")
    );
}

#[test]
fn text_generation_answers_become_mlflows_completions_with_usage() {
    let upstream = json!({"generated_text": " there", "details": {"finish_reason": "length",
        "generated_tokens": 2, "prefill": [{"id": 1}, {"id": 2}, {"id": 3}]}});
    let generated = read_text_generation_answer(&upstream).unwrap();
    let answer: Value =
        serde_json::from_slice(&text_generation_answer(Some("falcon"), &generated, 7)).unwrap();
    assert_eq!(
        answer,
        json!({"id": null, "object": "text_completion", "created": 7, "model": "falcon",
               "choices": [{"index": 0, "text": " there", "finish_reason": "length"}],
               "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})
    );
    assert!(read_text_generation_answer(&json!({"error": "x"})).is_err());
}
