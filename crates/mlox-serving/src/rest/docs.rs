//! The REST API described for people and tools: an OpenAPI 3 document of every route at
//! `GET /v2/docs/dataplane.json`, the same narrowed to one model (its name fixed, an example
//! request built from its inputs) at `GET /v2/models/{m}/docs/dataplane.json`, and a page
//! rendering either at `…/docs`: Swagger UI, where requests can be tried, from files embedded in
//! the binary (`/v2/docs/swagger-ui/*`, nothing fetched from elsewhere, so it works on machines
//! without internet access). A binary built without the web UI has no Swagger UI; its page
//! lists the operations with a few lines of script instead.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{RestState, V2Error};
use crate::MetadataTensor;

pub(super) async fn document(State(s): State<RestState>) -> Response {
    Json(dataplane(&s.dataplane.server_metadata().version, None)).into_response()
}

pub(super) async fn page() -> Response {
    html("mlox inference API", "docs/swagger-ui")
}

pub(super) async fn model_document(
    State(s): State<RestState>,
    Path(model): Path<String>,
) -> Response {
    match s.dataplane.model_metadata(&model, None) {
        Ok(metadata) => Json(dataplane(
            &s.dataplane.server_metadata().version,
            Some((&model, &metadata.inputs)),
        ))
        .into_response(),
        Err(e) => V2Error::from(e).into_response(),
    }
}

pub(super) async fn model_page(State(s): State<RestState>, Path(model): Path<String>) -> Response {
    if let Err(e) = s.dataplane.model_metadata(&model, None) {
        return V2Error::from(e).into_response();
    }
    // The page is at /v2/models/{m}/docs; the files at /v2/docs/swagger-ui.
    html(
        &format!("mlox inference API: {}", mlox_web::html_text(&model)),
        "../../docs/swagger-ui",
    )
}

/// The OpenAPI document; with a model, its name is the only one the paths accept and the
/// inference example is a request it would answer.
pub fn dataplane(server_version: &str, model: Option<(&str, &[MetadataTensor])>) -> Value {
    let model_name = match model {
        Some((name, _)) => json!({"name": "model_name", "in": "path", "required": true,
                                  "schema": {"type": "string", "enum": [name]}}),
        None => json!({"name": "model_name", "in": "path", "required": true,
                       "schema": {"type": "string"}}),
    };
    let model_version = json!({"name": "model_version", "in": "path", "required": true,
                               "schema": {"type": "string"}});
    let example = match model {
        Some((_, inputs)) => example_request(inputs),
        None => json!({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64",
                                   "data": [1.0, 2.0]}]}),
    };
    let err = |why: &str| {
        json!({"description": why, "content": {"application/json":
        {"schema": {"$ref": "#/components/schemas/Error"}}}})
    };
    let ok = |schema: &str| {
        json!({"description": "OK", "content": {"application/json":
        {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
    };
    let mlflow_err = |why: &str| {
        json!({"description": why, "content": {"application/json":
        {"schema": {"$ref": "#/components/schemas/MlflowError"}}}})
    };
    let infer = |params: Vec<&Value>| {
        json!({"post": {
            "summary": "Run inference",
            "tags": ["inference"],
            "parameters": params,
            "requestBody": {"required": true, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/InferenceRequest"},
                "example": example}}},
            "responses": {"200": ok("InferenceResponse"), "400": err("Malformed request or inputs"),
                          "404": err("Unknown model or version"), "413": err("Body too large"),
                          "503": err("Model not ready or its runtime unavailable")}}})
    };
    let metadata = |params: Vec<&Value>| {
        json!({"get": {"summary": "Model metadata", "tags": ["metadata"], "parameters": params,
            "responses": {"200": ok("MetadataModelResponse"), "404": err("Unknown model or version"),
                          "503": err("Model not ready")}}})
    };
    let ready = |params: Vec<&Value>| {
        json!({"get": {"summary": "Model readiness", "tags": ["health"], "parameters": params,
            "responses": {"200": ok("ModelReadyResponse"), "503": ok("ModelReadyResponse"),
                          "404": err("Unknown model or version")}}})
    };
    let invocations = |params: Vec<&Value>| {
        json!({"post": {
            "summary": "MLflow scoring protocol",
            "tags": ["mlflow"],
            "parameters": params,
            "requestBody": {"required": true, "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/InvocationsRequest"}},
                "text/csv": {"schema": {"type": "string"}}}},
            "responses": {"200": {"description": "OK", "content": {"application/json": {"schema":
                              {"type": "object", "required": ["predictions"],
                               "properties": {"predictions": {}}}}}},
                          "400": mlflow_err("Malformed input"), "404": mlflow_err("Unknown model"),
                          "413": mlflow_err("Body too large"),
                          "415": mlflow_err("Unsupported content type"),
                          "503": mlflow_err("Model not ready")}}})
    };
    let repository_call = |summary: &str| {
        json!({"post": {"summary": summary, "tags": ["repository"], "parameters": [model_name],
            "requestBody": {"required": false, "content": {"application/json": {"schema":
                {"type": "object", "properties": {"parameters": {"type": "object"}}}}}},
            "responses": {"200": {"description": "Done"}, "400": err("Malformed request"),
                          "404": err("Unknown model"),
                          "501": err("Started with a fixed set of models"),
                          "503": err("The model could not be loaded")}}})
    };
    let text = |summary: &str, tag: &str| {
        json!({"get": {"summary": summary, "tags": [tag], "responses": {"200": {
            "description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}}}})
    };
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "mlox inference API",
            "version": server_version,
            "description": "The V2 Open Inference Protocol (with Triton's binary tensor \
                extension and model repository extension) and MLflow's scoring protocol.",
        },
        "paths": {
            "/v2/health/live": {"get": {"summary": "Server liveness", "tags": ["health"],
                "responses": {"200": ok("LiveResponse")}}},
            "/v2/health/ready": {"get": {"summary": "Server readiness: every model ready",
                "tags": ["health"], "responses": {"200": ok("ReadyResponse"),
                                                  "503": ok("ReadyResponse")}}},
            "/v2": {"get": {"summary": "Server metadata", "tags": ["metadata"],
                "responses": {"200": ok("MetadataServerResponse")}}},
            "/v2/models/{model_name}": metadata(vec![&model_name]),
            "/v2/models/{model_name}/versions/{model_version}":
                metadata(vec![&model_name, &model_version]),
            "/v2/models/{model_name}/ready": ready(vec![&model_name]),
            "/v2/models/{model_name}/versions/{model_version}/ready":
                ready(vec![&model_name, &model_version]),
            "/v2/models/{model_name}/infer": infer(vec![&model_name]),
            "/v2/models/{model_name}/versions/{model_version}/infer":
                infer(vec![&model_name, &model_version]),
            "/v2/repository/index": {"post": {"summary": "Models and their states",
                "tags": ["repository"],
                "requestBody": {"required": false, "content": {"application/json": {"schema":
                    {"$ref": "#/components/schemas/RepositoryIndexRequest"}}}},
                "responses": {"200": ok("RepositoryIndexResponse"),
                              "400": err("Malformed request")}}},
            "/v2/repository/models/{model_name}/load": repository_call("Load or reload a model"),
            "/v2/repository/models/{model_name}/unload": repository_call("Stop serving a model"),
            "/invocations": invocations(vec![]),
            "/models/{model_name}/invocations": invocations(vec![&model_name]),
            "/models/{model_name}/versions/{model_version}/invocations":
                invocations(vec![&model_name, &model_version]),
            "/ping": {"get": {"summary": "MLflow health check", "tags": ["mlflow"],
                "responses": {"200": {"description": "Ready"},
                              "503": {"description": "Not ready"}}}},
            "/version": text("MLflow scoring protocol version", "mlflow"),
            "/metrics": {"get": {"summary": "Prometheus metrics", "tags": ["operations"],
                "responses": {"200": {"description": "OK", "content": {
                    "text/plain; version=0.0.4; charset=utf-8": {"schema": {"type": "string"}}}}}}},
        },
        "components": {"schemas": schemas()},
    })
}

fn schemas() -> Value {
    let datatype = json!({"type": "string", "enum": ["BOOL", "UINT8", "UINT16", "UINT32",
        "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"]});
    let tensor = |required: Value, extra: Value| {
        let mut properties = json!({
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "datatype": datatype,
            "parameters": {"type": "object"},
        });
        if let (Some(p), Some(e)) = (properties.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        json!({"type": "object", "required": required, "properties": properties})
    };
    json!({
        "Error": {"type": "object", "required": ["error"],
                  "properties": {"error": {"type": "string"}}},
        "MlflowError": {"type": "object", "required": ["error_code", "message"],
                        "properties": {"error_code": {"type": "string"},
                                       "message": {"type": "string"}}},
        "LiveResponse": {"type": "object", "required": ["live"],
                         "properties": {"live": {"type": "boolean"}}},
        "ReadyResponse": {"type": "object", "required": ["ready"],
                          "properties": {"ready": {"type": "boolean"}}},
        "ModelReadyResponse": {"type": "object", "required": ["name", "ready"],
                               "properties": {"name": {"type": "string"},
                                              "ready": {"type": "boolean"}}},
        "MetadataServerResponse": {"type": "object", "required": ["name", "version", "extensions"],
            "properties": {"name": {"type": "string"}, "version": {"type": "string"},
                           "extensions": {"type": "array", "items": {"type": "string"}}}},
        "MetadataTensor": tensor(json!(["name", "datatype", "shape"]), json!({})),
        "MetadataModelResponse": {"type": "object",
            "required": ["name", "platform", "inputs", "outputs"],
            "properties": {"name": {"type": "string"},
                           "versions": {"type": "array", "items": {"type": "string"}},
                           "platform": {"type": "string"},
                           "inputs": {"type": "array",
                                      "items": {"$ref": "#/components/schemas/MetadataTensor"}},
                           "outputs": {"type": "array",
                                       "items": {"$ref": "#/components/schemas/MetadataTensor"}},
                           "parameters": {"type": "object"}}},
        "RequestInput": tensor(json!(["name", "shape", "datatype", "data"]), json!({"data": {}})),
        "RequestOutput": {"type": "object", "required": ["name"],
                          "properties": {"name": {"type": "string"},
                                         "parameters": {"type": "object"}}},
        "InferenceRequest": {"type": "object", "required": ["inputs"],
            "properties": {"id": {"type": "string"}, "parameters": {"type": "object"},
                           "inputs": {"type": "array",
                                      "items": {"$ref": "#/components/schemas/RequestInput"}},
                           "outputs": {"type": "array",
                                       "items": {"$ref": "#/components/schemas/RequestOutput"}}}},
        "ResponseOutput": tensor(json!(["name", "shape", "datatype"]), json!({"data": {}})),
        "InferenceResponse": {"type": "object", "required": ["model_name", "id", "outputs"],
            "properties": {"model_name": {"type": "string"},
                           "model_version": {"type": "string"},
                           "id": {"type": "string"}, "parameters": {"type": "object"},
                           "outputs": {"type": "array",
                                       "items": {"$ref": "#/components/schemas/ResponseOutput"}}}},
        "RepositoryIndexRequest": {"type": "object",
                                   "properties": {"ready": {"type": "boolean"}}},
        "RepositoryIndexResponse": {"type": "array", "items": {"type": "object",
            "required": ["name", "state", "reason"],
            "properties": {"name": {"type": "string"}, "version": {"type": "string"},
                           "state": {"type": "string",
                                     "enum": ["READY", "LOADING", "UNAVAILABLE"]},
                           "reason": {"type": "string"}}}},
        "InvocationsRequest": {"type": "object", "description": "One of dataframe_split, \
            dataframe_records, instances or inputs, and optionally params.",
            "properties": {"dataframe_split": {"type": "object"},
                           "dataframe_records": {"type": "array"},
                           "instances": {}, "inputs": {}, "params": {"type": "object"}}},
    })
}

/// A request the model accepts: each input with one row of zeros (or empty strings).
fn example_request(inputs: &[MetadataTensor]) -> Value {
    let inputs: Vec<Value> = inputs
        .iter()
        .map(|t| {
            let shape: Vec<i64> = t
                .shape
                .iter()
                .map(|d| if *d < 0 { 1 } else { *d })
                .collect();
            let count = shape.iter().product::<i64>().max(0) as usize;
            let zero = match t.datatype.as_str() {
                "BYTES" => json!(""),
                "BOOL" => json!(false),
                "FP16" | "FP32" | "FP64" => json!(0.0),
                _ => json!(0),
            };
            json!({"name": t.name, "shape": shape, "datatype": t.datatype,
                   "data": vec![zero; count]})
        })
        .collect();
    json!({ "inputs": inputs })
}

/// Both pages sit at `…/docs` beside their `…/docs/dataplane.json`, so one relative link
/// serves either, whatever characters a model name holds.
/// The page for the document at `docs/dataplane.json` (relative to the page), with Swagger UI's
/// files at `swagger_ui` (relative too, so the pages work behind a path prefix).
fn html(title: &str, swagger_ui: &str) -> Response {
    let page = mlox_web::api_docs_page(title, swagger_ui, "docs/dataplane.json");
    ([(CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_of_the_router_is_documented() {
        let doc = dataplane("1", None);
        let paths = doc["paths"].as_object().unwrap();
        for path in [
            "/v2/health/live",
            "/v2/health/ready",
            "/v2",
            "/v2/models/{model_name}/infer",
            "/v2/models/{model_name}/versions/{model_version}/infer",
            "/v2/repository/index",
            "/v2/repository/models/{model_name}/load",
            "/v2/repository/models/{model_name}/unload",
            "/invocations",
            "/metrics",
        ] {
            assert!(paths.contains_key(path), "{path} is not documented");
        }
        // Every reference resolves.
        let text = doc.to_string();
        for piece in text.split("#/components/schemas/").skip(1) {
            let name: String = piece.chars().take_while(|c| c.is_alphanumeric()).collect();
            assert!(doc["components"]["schemas"].get(&name).is_some(), "{name}");
        }
    }

    #[test]
    fn a_model_document_fixes_the_name_and_shows_a_request_it_accepts() {
        let inputs = [
            MetadataTensor {
                name: "alcohol".into(),
                datatype: "FP64".into(),
                shape: vec![-1],
                parameters: Default::default(),
            },
            MetadataTensor {
                name: "colour".into(),
                datatype: "BYTES".into(),
                shape: vec![-1, 2],
                parameters: Default::default(),
            },
        ];
        let doc = dataplane("1", Some(("wine", &inputs)));
        let infer = &doc["paths"]["/v2/models/{model_name}/infer"]["post"];
        assert_eq!(infer["parameters"][0]["schema"]["enum"], json!(["wine"]));
        assert_eq!(
            infer["requestBody"]["content"]["application/json"]["example"],
            json!({"inputs": [
                {"name": "alcohol", "shape": [1], "datatype": "FP64", "data": [0.0]},
                {"name": "colour", "shape": [1, 2], "datatype": "BYTES", "data": ["", ""]},
            ]})
        );
    }
}
