//! V2 REST handlers and their JSON shapes, including Triton's binary tensor extension: a body
//! may be JSON followed by raw tensors (`Inference-Header-Content-Length` says where the JSON
//! ends, `binary_data_size` how many bytes each input takes), and outputs flagged
//! `binary_data` (or all, with `binary_data_output`) are answered the same way. This is what
//! `tritonclient.http` sends and expects by default.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use mlox_core::Error;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{RestState, V2Error, probe_status, read_body};
use crate::protocol::{InferRequest, InferResponse, InferTensor, Parameters, RequestedOutput};
use crate::tensor::{Datatype, TensorData};

const HEADER_LENGTH: &str = "inference-header-content-length";

pub(super) async fn live(State(s): State<RestState>) -> Response {
    let live = s.dataplane.live();
    (probe_status(live), Json(json!({ "live": live }))).into_response()
}

pub(super) async fn ready(State(s): State<RestState>) -> Response {
    let ready = s.dataplane.ready();
    (probe_status(ready), Json(json!({ "ready": ready }))).into_response()
}

pub(super) async fn server_metadata(State(s): State<RestState>) -> Response {
    let m = s.dataplane.server_metadata();
    Json(json!({ "name": m.name, "version": m.version, "extensions": m.extensions }))
        .into_response()
}

pub(super) async fn model_metadata(
    State(s): State<RestState>,
    Path(model): Path<String>,
) -> Response {
    metadata(&s, &model, None)
}

pub(super) async fn model_metadata_version(
    State(s): State<RestState>,
    Path((model, version)): Path<(String, String)>,
) -> Response {
    metadata(&s, &model, Some(&version))
}

#[derive(Serialize)]
struct JsonModelMetadata<'a> {
    name: &'a str,
    versions: &'a [String],
    platform: &'a str,
    inputs: Vec<JsonMetadataTensor<'a>>,
    outputs: Vec<JsonMetadataTensor<'a>>,
    parameters: &'a Parameters,
}

#[derive(Serialize)]
struct JsonMetadataTensor<'a> {
    name: &'a str,
    datatype: &'a str,
    shape: &'a [i64],
    parameters: &'a Parameters,
}

fn metadata_tensors(ts: &[crate::MetadataTensor]) -> Vec<JsonMetadataTensor<'_>> {
    ts.iter()
        .map(|t| JsonMetadataTensor {
            name: &t.name,
            datatype: &t.datatype,
            shape: &t.shape,
            parameters: &t.parameters,
        })
        .collect()
}

fn metadata(s: &RestState, model: &str, version: Option<&str>) -> Response {
    match s.dataplane.model_metadata(model, version) {
        Ok(m) => Json(JsonModelMetadata {
            name: &m.name,
            versions: &m.versions,
            platform: &m.platform,
            inputs: metadata_tensors(&m.inputs),
            outputs: metadata_tensors(&m.outputs),
            parameters: &m.parameters,
        })
        .into_response(),
        Err(e) => V2Error::from(e).into_response(),
    }
}

pub(super) async fn model_ready(State(s): State<RestState>, Path(model): Path<String>) -> Response {
    readiness(&s, &model, None)
}

pub(super) async fn model_ready_version(
    State(s): State<RestState>,
    Path((model, version)): Path<(String, String)>,
) -> Response {
    readiness(&s, &model, Some(&version))
}

fn readiness(s: &RestState, model: &str, version: Option<&str>) -> Response {
    match s.dataplane.model_ready(model, version) {
        Ok(ready) => (
            probe_status(ready),
            Json(json!({ "name": model, "ready": ready })),
        )
            .into_response(),
        Err(e) => V2Error::from(e).into_response(),
    }
}

#[derive(Deserialize)]
struct IndexRequest {
    #[serde(default)]
    ready: Option<bool>,
}

pub(super) async fn repository_index(State(s): State<RestState>, body: Body) -> Response {
    let body = match read_body(body, s.config.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return V2Error::from(e).into_response(),
    };
    let ready_only = if body.iter().all(u8::is_ascii_whitespace) {
        false
    } else {
        match serde_json::from_slice::<IndexRequest>(&body) {
            Ok(r) => r.ready.unwrap_or(false),
            Err(e) => {
                return V2Error::from(Error::bad_request(format!("malformed JSON: {e}")))
                    .into_response();
            }
        }
    };
    let entries: Vec<Value> = s
        .dataplane
        .repository_index(ready_only)
        .into_iter()
        .map(|e| {
            json!({
                "name": e.name,
                "version": e.version.unwrap_or_default(),
                "state": e.state.as_str(),
                "reason": e.reason,
            })
        })
        .collect();
    Json(entries).into_response()
}

/// The body of a load or unload: Triton's `{"parameters": {…}}`, or nothing. Parameters are
/// accepted and ignored: models come from their configured URI, never from the request.
#[derive(Deserialize)]
struct RepositoryRequest {
    #[serde(default)]
    #[allow(dead_code)]
    parameters: Option<Parameters>,
}

/// Checks the body, then runs `action` (lazily: nothing happens for a malformed request).
async fn repository_action(
    s: &RestState,
    body: Body,
    action: impl Future<Output = mlox_core::Result<()>>,
) -> Response {
    let body = match read_body(body, s.config.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return V2Error::from(e).into_response(),
    };
    if !body.iter().all(u8::is_ascii_whitespace)
        && let Err(e) = serde_json::from_slice::<RepositoryRequest>(&body)
    {
        return V2Error::from(Error::bad_request(format!("malformed JSON: {e}"))).into_response();
    }
    match action.await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => V2Error::from(e).into_response(),
    }
}

pub(super) async fn load_model(
    State(s): State<RestState>,
    Path(model): Path<String>,
    body: Body,
) -> Response {
    repository_action(&s, body, s.dataplane.load_model(&model)).await
}

pub(super) async fn unload_model(
    State(s): State<RestState>,
    Path(model): Path<String>,
    body: Body,
) -> Response {
    repository_action(&s, body, async { s.dataplane.unload_model(&model) }).await
}

/// The body (a webhook's event, say) only has to fit the size limit: any call means "look".
pub(super) async fn refresh(State(s): State<RestState>, body: Body) -> Response {
    if let Err(e) = read_body(body, s.config.max_body_bytes).await {
        return V2Error::from(e).into_response();
    }
    match s.dataplane.refresh().await {
        Ok(swapped) => Json(json!({ "swapped": swapped })).into_response(),
        Err(e) => V2Error::from(e).into_response(),
    }
}

#[derive(Deserialize)]
struct JsonRequest {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    parameters: Option<Parameters>,
    inputs: Vec<JsonInput>,
    #[serde(default)]
    outputs: Option<Vec<JsonRequestedOutput>>,
}

#[derive(Deserialize)]
struct JsonInput {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Option<Parameters>,
    #[serde(default)]
    data: Option<Value>,
}

#[derive(Deserialize)]
struct JsonRequestedOutput {
    name: String,
    #[serde(default)]
    parameters: Option<Parameters>,
}

pub(super) async fn infer(
    State(s): State<RestState>,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    run_infer(s, model, None, headers, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

pub(super) async fn infer_version(
    State(s): State<RestState>,
    Path((model, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    run_infer(s, model, Some(version), headers, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn run_infer(
    s: RestState,
    model: String,
    version: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, V2Error> {
    let body = read_body(body, s.config.max_body_bytes).await?;
    let (request, binary_outputs) = parse_request(&headers, body)?;
    let response = s
        .dataplane
        .infer(&model, version.as_deref(), request)
        .await?;
    Ok(render_response(response, &binary_outputs))
}

/// Which outputs go back raw: per requested output `binary_data`, else the request's
/// `binary_data_output`.
struct BinaryOutputs {
    all: bool,
    named: Vec<(String, bool)>,
}

impl BinaryOutputs {
    fn wants(&self, name: &str) -> bool {
        self.named
            .iter()
            .find(|(n, _)| n == name)
            .map_or(self.all, |(_, b)| *b)
    }
}

fn parse_request(
    headers: &HeaderMap,
    body: Bytes,
) -> Result<(InferRequest, BinaryOutputs), V2Error> {
    let bad = |m: String| V2Error::from(Error::bad_request(m));
    let (json_part, mut binary) = match headers.get(HEADER_LENGTH) {
        None => (body, Bytes::new()),
        Some(v) => {
            let n: usize = v
                .to_str()
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| bad(format!("{HEADER_LENGTH} must be a byte count")))?;
            if n > body.len() {
                return Err(bad(format!(
                    "{HEADER_LENGTH} is {n} but the body has only {} bytes",
                    body.len()
                )));
            }
            let mut json_part = body;
            let binary = json_part.split_off(n);
            (json_part, binary)
        }
    };
    let parsed: JsonRequest = serde_json::from_slice(&json_part)
        .map_err(|e| bad(format!("malformed inference request: {e}")))?;
    let mut inputs = Vec::with_capacity(parsed.inputs.len());
    let mut binary_inputs = Vec::new();
    for (index, input) in parsed.inputs.into_iter().enumerate() {
        let what = format!("input '{}'", input.name);
        let datatype = Datatype::parse(&input.datatype, &what)?;
        let parameters = input.parameters.unwrap_or_default();
        let data = match (binary_size(&parameters, &what)?, input.data) {
            (Some(size), _) => {
                if size > binary.len() {
                    return Err(bad(format!(
                        "{what} claims {size} bytes of binary data but only {} remain",
                        binary.len()
                    )));
                }
                binary_inputs.push(index);
                TensorData::from_raw(datatype, &binary.split_to(size), &what)?
            }
            (None, Some(data)) => TensorData::from_json(datatype, &data, &what)?,
            (None, None) => return Err(bad(format!("{what} has no data"))),
        };
        inputs.push(InferTensor {
            name: input.name,
            datatype,
            shape: input.shape,
            parameters,
            data,
        });
    }
    if !binary.is_empty() {
        return Err(bad(format!(
            "{} bytes of binary data follow the inputs but no input claims them",
            binary.len()
        )));
    }
    // Without an id in the body, a caller's X-Request-Id names the response (MLServer
    // ignores it and answers a fresh UUID, which breaks tracing across services).
    let id = parsed.id.or_else(|| {
        headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    });
    let (mut request, binary_outputs) = finish(
        parsed.outputs,
        parsed.parameters.unwrap_or_default(),
        id,
        inputs,
    )?;
    request.binary_inputs = binary_inputs;
    request.headers = headers
        .iter()
        .filter_map(|(name, value)| {
            value
                .to_str()
                .ok()
                .map(|v| (name.as_str().to_string(), v.to_string()))
        })
        .collect();
    Ok((request, binary_outputs))
}

fn finish(
    outputs: Option<Vec<JsonRequestedOutput>>,
    parameters: Parameters,
    id: Option<String>,
    inputs: Vec<InferTensor>,
) -> Result<(InferRequest, BinaryOutputs), V2Error> {
    let all = parameters
        .get("binary_data_output")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let outputs: Vec<RequestedOutput> = outputs
        .unwrap_or_default()
        .into_iter()
        .map(|o| RequestedOutput {
            name: o.name,
            parameters: o.parameters.unwrap_or_default(),
        })
        .collect();
    let named = outputs
        .iter()
        .filter_map(|o| {
            o.parameters
                .get("binary_data")
                .and_then(Value::as_bool)
                .map(|b| (o.name.clone(), b))
        })
        .collect();
    let request = InferRequest {
        id,
        parameters,
        inputs,
        outputs,
        ..InferRequest::default()
    };
    Ok((request, BinaryOutputs { all, named }))
}

fn binary_size(parameters: &Parameters, what: &str) -> Result<Option<usize>, V2Error> {
    match parameters.get("binary_data_size") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                V2Error::from(Error::bad_request(format!(
                    "{what}: binary_data_size must be a byte count, not {v}"
                )))
            }),
    }
}

#[derive(Serialize)]
struct JsonResponse<'a> {
    model_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_version: Option<&'a str>,
    id: &'a str,
    parameters: &'a Parameters,
    outputs: Vec<JsonOutput<'a>>,
}

#[derive(Serialize)]
struct JsonOutput<'a> {
    name: &'a str,
    shape: &'a [i64],
    datatype: &'static str,
    parameters: Parameters,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a TensorData>,
}

fn render_response(response: InferResponse, binary: &BinaryOutputs) -> Response {
    let mut raw: Vec<u8> = Vec::new();
    let outputs = response
        .outputs
        .iter()
        .map(|o| {
            let mut parameters = o.parameters.clone();
            let data = if binary.wants(&o.name) {
                let bytes = o.data.to_raw();
                parameters.insert("binary_data_size".into(), json!(bytes.len()));
                raw.extend_from_slice(&bytes);
                None
            } else {
                Some(&o.data)
            };
            JsonOutput {
                name: &o.name,
                shape: &o.shape,
                datatype: o.datatype.as_str(),
                parameters,
                data,
            }
        })
        .collect();
    let body = JsonResponse {
        model_name: &response.model_name,
        model_version: response.model_version.as_deref(),
        id: &response.id,
        parameters: &response.parameters,
        outputs,
    };
    let json = match serde_json::to_vec(&body) {
        Ok(j) => j,
        Err(e) => {
            return V2Error::from(Error::internal(format!("cannot encode the response: {e}")))
                .into_response();
        }
    };
    if raw.is_empty() && !binary.all && binary.named.iter().all(|(_, b)| !b) {
        return (
            [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            json,
        )
            .into_response();
    }
    let length = HeaderValue::from(json.len());
    let mut full = json;
    full.extend_from_slice(&raw);
    (
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (axum::http::HeaderName::from_static(HEADER_LENGTH), length),
        ],
        full,
    )
        .into_response()
}

#[cfg(test)]
mod fuzz {
    //! Whatever bytes arrive, decoding an inference request answers `Ok` or a 4xx; it never
    //! panics. Documents are drawn near the V2 shape (real keys, wrong types, lying sizes), where
    //! decoding bugs live, rather than as uniform noise that fails at the first byte.
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            "[a-zA-Z0-9_ ]{0,8}".prop_map(Value::from),
            prop_oneof![
                Just("FP32"),
                Just("INT64"),
                Just("BYTES"),
                Just("BOOL"),
                Just("FP16"),
                Just("UINT8"),
                Just("bogus"),
            ]
            .prop_map(Value::from),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        scalar().prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                prop::collection::vec(("[a-z_]{1,6}", inner), 0..4)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn input() -> impl Strategy<Value = Value> {
        (
            value(),
            prop::collection::vec(-2i64..6, 0..4),
            scalar(),
            value(),
            prop::option::of(-4i64..64),
        )
            .prop_map(|(name, shape, datatype, data, binary_size)| {
                let mut input = json!({"name": name, "shape": shape, "datatype": datatype});
                if let Some(size) = binary_size {
                    input["parameters"] = json!({"binary_data_size": size});
                } else {
                    input["data"] = data;
                }
                input
            })
    }

    fn document() -> impl Strategy<Value = Value> {
        (
            prop::collection::vec(input(), 0..4),
            value(),
            prop::option::of(value()),
        )
            .prop_map(|(inputs, outputs, parameters)| {
                let mut doc = json!({"inputs": inputs, "outputs": outputs});
                if let Some(parameters) = parameters {
                    doc["parameters"] = parameters;
                }
                doc
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn near_v2_documents_never_panic(
            doc in document(),
            tail in prop::collection::vec(any::<u8>(), 0..64),
            claim_length in any::<bool>(),
            skew in -3i64..3,
        ) {
            let json = serde_json::to_vec(&doc).unwrap_or_default();
            let mut headers = HeaderMap::new();
            if claim_length {
                let claimed = (json.len() as i64 + skew).max(0).to_string();
                if let Ok(value) = claimed.parse() {
                    headers.insert(HEADER_LENGTH, value);
                }
            }
            let mut body = json.clone();
            body.extend_from_slice(&tail);
            let _ = parse_request(&headers, Bytes::from(body));
        }

        #[test]
        fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_request(&HeaderMap::new(), Bytes::from(body));
        }
    }
}
