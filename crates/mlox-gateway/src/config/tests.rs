use std::collections::HashMap;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;

/// A fixed environment: variables and files the config may name.
#[derive(Default)]
struct FakeEnv {
    vars: HashMap<String, String>,
    files: HashMap<PathBuf, String>,
}

impl Environment for FakeEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }

    fn read_file(&self, path: &Path) -> Option<String> {
        self.files.get(path).cloned()
    }
}

fn env() -> FakeEnv {
    let mut env = FakeEnv::default();
    env.vars
        .insert("OPENAI_API_KEY".into(), "sk-from-env".into());
    env.vars.insert("EMPTY".into(), String::new());
    env.files
        .insert(PathBuf::from("/secrets/key"), "sk-from-file\n".into());
    env
}

const SEED_004: &str = "
endpoints:
  - name: embeddings
    endpoint_type: llm/v1/embeddings
    model:
      provider: mlflow-model-serving
      name: sentence-transformer
      config:
        model_server_url: http://127.0.0.1:9020
  - name: fillmask
    endpoint_type: llm/v1/completions
    model:
      provider: mlflow-model-serving
      name: fill-mask
      config:
        model_server_url: http://127.0.0.1:9010/
";

#[test]
fn seed_004_config_reads() {
    let config = parse(SEED_004, &env()).expect("seed 004's config is valid");
    assert_eq!(config.endpoints.len(), 2);
    let e = &config.endpoints[1];
    assert_eq!(e.name, "fillmask");
    assert_eq!(e.endpoint_type, EndpointType::Completions);
    assert_eq!(e.model_name.as_deref(), Some("fill-mask"));
    assert_eq!(
        e.provider,
        ProviderConfig::ModelServing {
            model_server_url: "http://127.0.0.1:9010".into(),
            chat_messages: false,
            token: None,
        }
    );
    assert_eq!(e.retries, RetryPolicy::default());
    assert_eq!(e.timeout, DEFAULT_TIMEOUT);
}

fn openai_endpoint(name: &str, endpoint_type: &str, extra: &str) -> String {
    format!(
        "  - name: {name}
    endpoint_type: {endpoint_type}
    model:
      provider: openai
      name: gpt-4o-mini
      config:
        openai_api_key: $OPENAI_API_KEY
{extra}"
    )
}

#[test]
fn secrets_resolve_like_mlflow() {
    let key = |value: &str| {
        let text = format!(
            "endpoints:\n  - name: a\n    endpoint_type: llm/v1/chat\n    model:\n      provider: groq\n      config:\n        api_key: '{value}'\n"
        );
        parse(&text, &env()).map(|c| match &c.endpoints[0].provider {
            ProviderConfig::OpenAiCompatible { api_key, .. } => api_key.clone(),
            _ => None,
        })
    };
    assert_eq!(key("$OPENAI_API_KEY"), Ok(Some("sk-from-env".into())));
    // File contents are not stripped, as in MLflow.
    assert_eq!(key("/secrets/key"), Ok(Some("sk-from-file\n".into())));
    assert_eq!(key("sk-literal"), Ok(Some("sk-literal".into())));
    let unset = key("$NOPE").unwrap_err();
    assert_eq!(unset.field, "endpoints[0].model.config.api_key");
    assert!(unset.message.contains("'NOPE' is not set"), "{unset}");
    assert!(key("$EMPTY").is_err());
}

#[test]
fn mlox_extensions() {
    let text = format!(
        "retries: {{max_attempts: 5, backoff_ms: 10}}\ntimeout: 30\nendpoints:\n{}{}",
        openai_endpoint("a", "llm/v1/chat", "    retries: false\n    timeout: 2.5\n"),
        openai_endpoint("b", "llm/v1/chat", ""),
    );
    let config = parse(&text, &env()).expect("valid");
    assert_eq!(config.endpoints[0].retries, RetryPolicy::disabled());
    assert_eq!(config.endpoints[0].timeout, Duration::from_millis(2500));
    assert_eq!(config.endpoints[1].retries.max_attempts, 5);
    assert_eq!(
        config.endpoints[1].retries.backoff,
        Duration::from_millis(10)
    );
    assert_eq!(config.endpoints[1].timeout, Duration::from_secs(30));

    let mut with_env = env();
    with_env
        .vars
        .insert("MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS".into(), "7".into());
    let config = parse(
        &format!("endpoints:\n{}", openai_endpoint("a", "llm/v1/chat", "")),
        &with_env,
    )
    .expect("valid");
    assert_eq!(config.endpoints[0].timeout, Duration::from_secs(7));

    let chat = "endpoints:\n  - name: c\n    endpoint_type: llm/v1/chat\n    model:\n      provider: mlflow-model-serving\n      config: {model_server_url: 'http://h:1', mlox_chat_messages: true}\n";
    let config = parse(chat, &env()).expect("valid");
    assert!(matches!(
        config.endpoints[0].provider,
        ProviderConfig::ModelServing {
            chat_messages: true,
            ..
        }
    ));
}

#[test]
fn a_model_servers_token_resolves_like_a_key_and_stays_out_of_debug_output() {
    let mut with_token = env();
    with_token
        .vars
        .insert("MLFLOW_TRACKING_TOKEN".into(), "mlox_secret".into());
    let text = "endpoints:\n  - name: c\n    endpoint_type: llm/v1/completions\n    model:\n      provider: mlflow-model-serving\n      config: {model_server_url: 'http://h:1', mlox_model_server_token: $MLFLOW_TRACKING_TOKEN}\n";
    let config = parse(text, &with_token).expect("valid");
    let provider = &config.endpoints[0].provider;
    assert!(matches!(
        provider,
        ProviderConfig::ModelServing { token: Some(t), .. } if t == "mlox_secret"
    ));
    assert!(!format!("{provider:?}").contains("mlox_secret"));
    let unset = parse(text, &env()).unwrap_err();
    assert!(
        unset.to_string().contains("mlox_model_server_token"),
        "{unset}"
    );
}

#[test]
fn routes_and_limits() {
    let text = format!(
        "endpoints:\n{}{}routes:\n  - name: split\n    task_type: llm/v1/chat\n    destinations:\n      - {{name: a, traffic_percentage: 80}}\n      - {{name: b, traffic_percentage: 20}}\n    routing_strategy: TRAFFIC_SPLIT\n",
        openai_endpoint(
            "a",
            "llm/v1/chat",
            "    limit: {calls: 10, renewal_period: minute}\n"
        ),
        openai_endpoint(
            "b",
            "llm/v1/chat",
            "    limit: {calls: 2, renewal_period: 5 minutes, key: user}\n"
        ),
    );
    let config = parse(&text, &env()).expect("valid");
    assert_eq!(config.routes.len(), 1);
    assert_eq!(config.routes[0].destinations[1].traffic_percentage, 20);
    let limit = config.endpoints[1].limit.clone().expect("limit");
    assert_eq!(limit.calls, 2);
    assert_eq!(limit.window, Duration::from_secs(300));
    assert_eq!(limit.key.as_deref(), Some("user"));
}

/// Configs MLflow refuses, with the field the error must name and a part of its message.
#[test]
fn refused_configs_name_the_field() {
    let chat = |extra: &str| format!("endpoints:\n{}", openai_endpoint("a", "llm/v1/chat", extra));
    let two = |route: &str| {
        format!(
            "endpoints:\n{}{}{}routes:\n{route}",
            openai_endpoint("a", "llm/v1/chat", ""),
            openai_endpoint("b", "llm/v1/chat", ""),
            openai_endpoint("e", "llm/v1/embeddings", ""),
        )
    };
    let cases: Vec<(String, &str, &str)> = vec![
        ("".into(), "endpoints", "required"),
        ("routes: []\n".into(), "endpoints", "required"),
        ("endpoints: 3\n".into(), "", "not a valid gateway config"),
        (
            format!("endpoints:\n{}", openai_endpoint("bad name", "llm/v1/chat", "")),
            "endpoints[0].name",
            "invalid",
        ),
        (
            format!("endpoints:\n{}", openai_endpoint("a/b", "llm/v1/chat", "")),
            "endpoints[0].name",
            "invalid",
        ),
        (
            format!(
                "endpoints:\n{}{}",
                openai_endpoint("a", "llm/v1/chat", ""),
                openai_endpoint("a", "llm/v1/chat", "")
            ),
            "endpoints[1].name",
            "duplicate",
        ),
        (
            two("  - name: a\n    task_type: llm/v1/chat\n    destinations: [{name: b, traffic_percentage: 100}]\n"),
            "routes[0].name",
            "duplicate",
        ),
        (
            format!("endpoints:\n{}", openai_endpoint("a", "llm/v1/nope", "")),
            "endpoints[0].endpoint_type",
            "not supported",
        ),
        (chat("    route_type: llm/v1/chat\n"), "endpoints[0].route_type", "endpoint_type"),
        (
            "endpoints:\n  - name: a\n    endpoint_type: llm/v1/chat\n    model: {provider: gemini, config: {gemini_api_key: k}}\n".into(),
            "endpoints[0].model.provider",
            "not implemented in mlox yet",
        ),
        (
            "endpoints:\n  - name: a\n    endpoint_type: llm/v1/completions\n    model: {provider: anthropic, config: {anthropic_api_key: k}}\n".into(),
            "endpoints[0].endpoint_type",
            "serves llm/v1/chat only",
        ),
        (
            "endpoints:\n  - name: a\n    endpoint_type: llm/v1/chat\n    model: {provider: azure, config: {openai_api_type: azure, openai_api_key: k, openai_api_base: https://x.openai.azure.com}}\n".into(),
            "endpoints[0].model.config.openai_deployment_name",
            "are required when openai_api_type is 'azure'",
        ),
        (
            "endpoints:\n  - name: a\n    endpoint_type: llm/v1/chat\n    model: {provider: openai, config: {openai_api_type: azuread, openai_api_key: k, openai_api_base: b, openai_deployment_name: d, openai_api_version: v, openai_organization: o}}\n".into(),
            "endpoints[0].model.config.openai_organization",
            "only valid with openai_api_type 'openai'",
        ),
        (
            "endpoints:\n  - name: a\n    endpoint_type: llm/v1/chat\n    model: {provider: huggingface-text-generation-inference, config: {hf_server_url: http://tgi}}\n".into(),
            "endpoints[0].endpoint_type",
            "serves llm/v1/completions only",
        ),
        (
            "endpoints:\n  - name: a\n    endpoint_type: llm/v1/completions\n    model: {provider: huggingface-text-generation-inference, config: {}}\n".into(),
            "endpoints[0].model.config.hf_server_url",
            "is required",
        ),
        (
            "endpoints:\n  - name: a\n    endpoint_type: llm/v1/chat\n    model: {provider: made-up, config: {}}\n".into(),
            "endpoints[0].model.provider",
            "'made-up' is not supported",
        ),
        (
            "endpoints:\n  - name: a\n    endpoint_type: llm/v1/chat\n    model: {provider: openai}\n".into(),
            "endpoints[0].model.config",
            "config must be supplied",
        ),
        (
            "endpoints:\n  - name: a\n    endpoint_type: llm/v1/chat\n    model: {provider: openai, config: {openai_api_key: k, openai_api_type: cloud}}\n".into(),
            "endpoints[0].model.config.openai_api_type",
            "not one of openai, azure, azuread",
        ),
        (
            "endpoints:\n  - name: a\n    endpoint_type: llm/v1/chat\n    model: {provider: openai, config: {}}\n".into(),
            "endpoints[0].model.config.openai_api_key",
            "required",
        ),
        (
            "endpoints:\n  - name: a\n    endpoint_type: llm/v1/chat\n    model: {provider: mlflow-model-serving, config: {}}\n".into(),
            "endpoints[0].model.config.model_server_url",
            "required",
        ),
        (chat("    limit: {calls: 0, renewal_period: minute}\n"), "endpoints[0].limit.calls", "positive"),
        (chat("    limit: {calls: 3, renewal_period: fortnight}\n"), "endpoints[0].limit.renewal_period", "not a period"),
        (chat("    limit: {calls: 3}\n"), "endpoints[0].limit.renewal_period", "required"),
        (chat("    retries: {max_attempts: 0}\n"), "endpoints[0].retries.max_attempts", "between 1"),
        (chat("    timeout: -1\n"), "endpoints[0].timeout", "seconds"),
        (
            two("  - name: r\n    task_type: llm/v1/chat\n    destinations: [{name: a, traffic_percentage: 50}, {name: b, traffic_percentage: 40}]\n"),
            "routes[0].destinations",
            "sum to 100, not 90",
        ),
        (
            two("  - name: r\n    task_type: llm/v1/chat\n    destinations: [{name: a, traffic_percentage: 150}, {name: b, traffic_percentage: -50}]\n"),
            "routes[0].destinations[0].traffic_percentage",
            "between 0 and 100",
        ),
        (
            two("  - name: r\n    task_type: llm/v1/chat\n    destinations: [{name: zz, traffic_percentage: 100}]\n"),
            "routes[0].destinations[0].name",
            "not an endpoint",
        ),
        (
            two("  - name: r\n    task_type: llm/v1/chat\n    destinations: [{name: a, traffic_percentage: 50}, {name: e, traffic_percentage: 50}]\n"),
            "routes[0].destinations[1].name",
            "llm/v1/embeddings",
        ),
        (
            two("  - name: r\n    task_type: llm/v1/chat\n    routing_strategy: ROUND_ROBIN\n    destinations: [{name: a, traffic_percentage: 100}]\n"),
            "routes[0].routing_strategy",
            "TRAFFIC_SPLIT",
        ),
        (
            two("  - name: r\n    destinations: [{name: a, traffic_percentage: 100}]\n"),
            "routes[0].task_type",
            "required",
        ),
    ];
    for (text, field, message) in cases {
        let error = match parse(&text, &env()) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e,
        };
        assert_eq!(error.field, field, "{error}\n---\n{text}");
        assert!(
            error.message.contains(message),
            "{error:?} lacks {message:?}\n---\n{text}"
        );
    }
}

#[test]
fn errors_carry_the_line() {
    let text = format!(
        "endpoints:\n{}{}",
        openai_endpoint("a", "llm/v1/chat", ""),
        openai_endpoint(
            "b",
            "llm/v1/chat",
            "    limit: {calls: -1, renewal_period: minute}\n"
        ),
    );
    let error = parse(&text, &env()).unwrap_err();
    assert_eq!(error.field, "endpoints[1].limit.calls");
    assert_eq!(error.line, Some(16), "{error}");
    assert!(
        error
            .to_string()
            .starts_with("line 16, endpoints[1].limit.calls:"),
        "{error}"
    );
}

#[test]
fn provider_names_match_mlflows_spelling_rules() {
    for spelling in [
        "mlflow-model-serving",
        "MLFLOW_MODEL_SERVING",
        "Mlflow-Model_Serving",
    ] {
        let text = format!(
            "endpoints:\n  - name: a\n    endpoint_type: llm/v1/completions\n    model: {{provider: {spelling}, config: {{model_server_url: 'http://h'}}}}\n"
        );
        let config = parse(&text, &env()).expect(spelling);
        assert_eq!(config.endpoints[0].provider.name(), "mlflow-model-serving");
    }
}

#[test]
fn renewal_periods() {
    assert_eq!(
        parse_renewal_period("minute"),
        Some(Duration::from_secs(60))
    );
    assert_eq!(
        parse_renewal_period("minutes"),
        Some(Duration::from_secs(60))
    );
    assert_eq!(
        parse_renewal_period("2 hours"),
        Some(Duration::from_secs(7200))
    );
    assert_eq!(
        parse_renewal_period("day"),
        Some(Duration::from_secs(86_400))
    );
    assert_eq!(parse_renewal_period("0 minutes"), None);
    assert_eq!(parse_renewal_period("fortnight"), None);
    assert_eq!(parse_renewal_period(""), None);
}

#[test]
fn names() {
    for ok in ["a", "chat-1", "my_model.v2", "A.B-C_D"] {
        assert!(is_valid_name(ok), "{ok}");
    }
    for bad in ["", "a b", "a/b", "a?b", "é", "a%20"] {
        assert!(!is_valid_name(bad), "{bad}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the file holds, reading it answers Ok or Err, never panics.
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = parse(&text, &env());
    }

    /// YAML-shaped noise built from the schema's own words reaches the validation rules.
    #[test]
    fn schema_shaped_yaml_never_panics(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("endpoints:\n".to_string()),
                Just("routes:\n".to_string()),
                Just("  - name: a\n".to_string()),
                Just("    endpoint_type: llm/v1/chat\n".to_string()),
                Just("    task_type: llm/v1/chat\n".to_string()),
                Just("    model: {provider: openai, config: {openai_api_key: k}}\n".to_string()),
                Just("    model: {provider: mlflow-model-serving, config: {model_server_url: u}}\n".to_string()),
                Just("    limit: {calls: 1, renewal_period: minute}\n".to_string()),
                Just("    destinations: [{name: a, traffic_percentage: 100}]\n".to_string()),
                Just("    retries: {max_attempts: 2}\n".to_string()),
                Just("    timeout: 1e308\n".to_string()),
                Just("&x [*x]\n".to_string()),
                "[a-z_:{}\\[\\], \\n-]{0,20}",
            ],
            0..12,
        )
    ) {
        let _ = parse(&parts.concat(), &env());
    }
}
