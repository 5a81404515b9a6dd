//! The gateway described for people and tools, as MLflow's gateway (a FastAPI app) describes
//! itself at `/openapi.json`: an OpenAPI 3 document of every route, built from the config being
//! served, so each invocation path lists the endpoint and route names that exist and each
//! request body has an example one of them would answer.

use serde_json::{Value, json};

use crate::config::EndpointType;
use crate::gateway::Gateway;

fn example(kind: EndpointType) -> Value {
    match kind {
        EndpointType::Chat => {
            json!({"messages": [{"role": "user", "content": "Hello!"}], "temperature": 0.0})
        }
        EndpointType::Completions => json!({"prompt": "Hello", "max_tokens": 16}),
        EndpointType::Embeddings => json!({"input": ["Hello"]}),
    }
}

/// The document for `gateway` (its endpoints and routes, in config order).
pub fn document(gateway: &Gateway, version: &str) -> Value {
    let mut names: Vec<(String, EndpointType)> = gateway
        .endpoints()
        .map(|e| (e.name.clone(), e.endpoint_type))
        .collect();
    names.extend(gateway.routes().map(|r| (r.name.clone(), r.task_type)));
    let all: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
    let of_kind = |kind: EndpointType| -> Vec<&str> {
        names
            .iter()
            .filter(|(_, k)| *k == kind)
            .map(|(n, _)| n.as_str())
            .collect()
    };
    let name_param = |names: &[&str]| {
        json!({"name": "name", "in": "path", "required": true,
               "schema": {"type": "string", "enum": names}})
    };
    let detail = |why: &str| {
        json!({"description": why, "content": {"application/json":
            {"schema": {"$ref": "#/components/schemas/Detail"}}}})
    };
    let openai_error = |why: &str| {
        json!({"description": why, "content": {"application/json":
            {"schema": {"$ref": "#/components/schemas/OpenAIError"}}}})
    };
    let streamed = json!({"description": "The answer; `\"stream\": true` answers server-sent \
        events ending with `data: [DONE]`", "content": {
            "application/json": {"schema": {"type": "object"}},
            "text/event-stream": {"schema": {"type": "string"}}}});
    let invocation_example = names
        .first()
        .map_or_else(|| example(EndpointType::Chat), |(_, k)| example(*k));
    let invoke = json!({"post": {
    "tags": ["MLflow"],
    "summary": "Call an endpoint or route with a body of its type",
    "parameters": [name_param(&all)],
    "requestBody": {"required": true, "content": {"application/json": {
        "schema": {"type": "object"}, "example": invocation_example}}},
    "responses": {
        "200": streamed,
        "400": detail("The body does not fit the endpoint's type"),
        "404": detail("No endpoint or route by that name"),
        "413": detail("The body is over 16 MiB"),
        "429": detail("The endpoint's rate limit is used up (see Retry-After)"),
        "502": detail("The upstream could not be reached or answered something unusable"),
        "504": detail("The upstream did not answer in time"),
    }}});
    let openai = |kind: EndpointType, summary: &str| {
        let models = of_kind(kind);
        let mut body = example(kind);
        if let Some(first) = models.first() {
            body["model"] = json!(first);
        }
        json!({"post": {
        "tags": ["OpenAI"],
        "summary": summary,
        "requestBody": {"required": true, "content": {"application/json": {
            "schema": {"type": "object", "required": ["model"], "properties": {
                "model": {"type": "string", "enum": models,
                          "description": "An endpoint or route of this type"}}},
            "example": body}}},
        "responses": {
            "200": streamed.clone(),
            "400": openai_error("The body is not valid"),
            "404": openai_error("No endpoint or route by that name"),
            "429": openai_error("The endpoint's rate limit is used up (see Retry-After)"),
            "502": openai_error("The upstream failed"),
        }}})
    };
    let describe_one = |summary: &str, params: Value| {
        json!({"get": {
        "tags": ["MLflow"],
        "summary": summary,
        "parameters": params,
        "responses": {
            "200": {"description": "The endpoint as MLflow describes it",
                    "content": {"application/json": {"schema": {"type": "object"}}}},
            "404": detail("No such endpoint or route"),
        }}})
    };
    let plain_get = |tag: &str, summary: &str, content_type: &str| {
        json!({"get": {"tags": [tag], "summary": summary, "responses": {
            "200": {"description": "OK", "content": {content_type: {"schema": {}}}}}}})
    };
    let endpoint_names: Vec<&str> = gateway.endpoints().map(|e| e.name.as_str()).collect();
    let route_names: Vec<&str> = gateway.routes().map(|r| r.name.as_str()).collect();
    let kinds: Vec<Value> = names
        .iter()
        .map(|(n, k)| json!({"name": n, "type": k.as_str()}))
        .collect();
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "mlox gateway",
            "version": version,
            "description": "MLflow's deployments API and OpenAI's API over the endpoints and \
                routes of the gateway's config.yaml.",
        },
        "paths": {
            "/health": plain_get("Health", "Liveness", "application/json"),
            "/metrics": plain_get("Health", "Prometheus metrics of the calls", "text/plain"),
            "/api/2.0/endpoints/": {"get": {
                "tags": ["MLflow"],
                "summary": "List the endpoints (pages of 3000)",
                "parameters": [{"name": "page_token", "in": "query", "required": false,
                                "schema": {"type": "string"}}],
                "responses": {"200": {"description": "`endpoints` and `next_page_token`",
                    "content": {"application/json": {"schema": {"type": "object"}}}}}}},
            "/api/2.0/endpoints/{name}": describe_one("Describe an endpoint",
                json!([name_param(&endpoint_names)])),
            "/api/3.0/gateway/endpoint/{name}": describe_one("Describe an endpoint",
                json!([name_param(&endpoint_names)])),
            "/api/3.0/gateway/route/{name}": describe_one("Describe a route",
                json!([name_param(&route_names)])),
            "/endpoints/{name}/invocations": invoke.clone(),
            "/gateway/{name}/invocations": invoke,
            "/v1/chat/completions": openai(EndpointType::Chat, "OpenAI chat completions"),
            "/v1/completions": openai(EndpointType::Completions, "OpenAI completions"),
            "/v1/embeddings": openai(EndpointType::Embeddings, "OpenAI embeddings"),
            "/v1/models": plain_get("OpenAI", "The endpoints and routes as OpenAI models",
                "application/json"),
        },
        "components": {"schemas": {
            "Detail": {"type": "object", "properties": {"detail": {"type": "string"}}},
            "OpenAIError": {"type": "object", "properties": {"error": {"type": "object",
                "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                               "param": {"type": "string", "nullable": true},
                               "code": {"type": "string", "nullable": true}}}}},
        }},
        "x-mlox-endpoints": kinds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model: {provider: openai, name: gpt-4o-mini, config: {openai_api_key: sk-test}}
  - name: embed
    endpoint_type: llm/v1/embeddings
    model: {provider: openai, name: text-embedding-3-small, config: {openai_api_key: sk-test}}
routes:
  - name: chat-route
    task_type: llm/v1/chat
    destinations:
      - {name: chat, traffic_percentage: 100}
    routing_strategy: TRAFFIC_SPLIT
"#;

    fn gateway() -> Gateway {
        let config =
            crate::config::parse(CONFIG, &crate::config::ProcessEnvironment).expect("config");
        Gateway::new(config).expect("gateway")
    }

    #[test]
    fn every_route_the_gateway_serves_is_documented_with_the_configs_names() {
        let doc = document(&gateway(), "1.0");
        let paths = doc["paths"].as_object().unwrap();
        for path in [
            "/health",
            "/metrics",
            "/api/2.0/endpoints/",
            "/api/2.0/endpoints/{name}",
            "/api/3.0/gateway/endpoint/{name}",
            "/api/3.0/gateway/route/{name}",
            "/endpoints/{name}/invocations",
            "/gateway/{name}/invocations",
            "/v1/chat/completions",
            "/v1/completions",
            "/v1/embeddings",
            "/v1/models",
        ] {
            assert!(paths.contains_key(path), "{path} is not documented");
        }
        let invoke = &doc["paths"]["/endpoints/{name}/invocations"]["post"];
        assert_eq!(
            invoke["parameters"][0]["schema"]["enum"],
            json!(["chat", "embed", "chat-route"])
        );
        let chat = &doc["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"];
        assert_eq!(
            chat["schema"]["properties"]["model"]["enum"],
            json!(["chat", "chat-route"])
        );
        assert_eq!(chat["example"]["model"], "chat");
        assert_eq!(
            doc["paths"]["/api/3.0/gateway/route/{name}"]["get"]["parameters"][0]["schema"]["enum"],
            json!(["chat-route"])
        );
        // Every reference resolves.
        let text = doc.to_string();
        for piece in text.split("#/components/schemas/").skip(1) {
            let name: String = piece.chars().take_while(|c| c.is_alphanumeric()).collect();
            assert!(doc["components"]["schemas"].get(&name).is_some(), "{name}");
        }
    }
}
