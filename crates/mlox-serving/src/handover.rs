//! MLServer's MLflow runtime contract for models without a signature: the request is decoded
//! only when a content type names a codec (on the request, an input, or the model's settings),
//! otherwise `predict` receives MLServer's `InferenceRequest` object itself, with the request's
//! headers in `parameters.headers`; whatever it returns is encoded by MLServer's codecs. The
//! worker decodes and encodes with the `mlserver` package itself, so such models see exactly
//! what they see under MLServer; this module only carries a request there and the encoded
//! answer back.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use mlox_core::{Error, Result};
use mlox_runtime::{ProtocolRequest, ProtocolResponse};
use serde_json::{Map, Value, json};

use crate::protocol::{InferRequest, InferTensor, Parameters};
use crate::tensor::{Datatype, TensorData};

/// CloudEvents headers MLServer adds to every request it hands a model (its request
/// middleware), so models that log or route on them see what they would under MLServer.
fn cloud_event_headers(id: &str, model: &str, server: &str) -> [(String, String); 8] {
    [
        ("Ce-Specversion", "0.3".to_string()),
        (
            "Ce-Source",
            format!("io.seldon.serving.deployment.{server}"),
        ),
        ("Ce-Type", "io.seldon.serving.inference.request".to_string()),
        ("Ce-Modelid", model.to_string()),
        ("Ce-Inferenceservicename", server.to_string()),
        ("Ce-Endpoint", model.to_string()),
        ("Ce-Id", id.to_string()),
        ("Ce-Requestid", id.to_string()),
    ]
    .map(|(k, v)| (k.to_string(), v))
}

/// Whether a request goes to the model under this contract. A request naming `pd`, `np` or
/// `dict` is decoded by mlox's own codecs, which give the model the DataFrame, array or dict
/// of arrays MLServer's would, and can merge waiting requests into one call (MLServer's
/// adaptive batching); every other request is decoded by MLServer's codecs in the worker,
/// which alone know that `str` means a list of strings and that no codec means the request
/// object itself.
pub(crate) fn applies_to(request: &InferRequest) -> bool {
    !matches!(
        request
            .parameters
            .get("content_type")
            .and_then(Value::as_str),
        Some("pd" | "np" | "dict")
    )
}

/// The request in the V2 JSON shape MLServer's `InferenceRequest` is validated from.
pub(crate) fn protocol_request(
    request: InferRequest,
    id: &str,
    model: &str,
    server: &str,
    settings: &Value,
) -> ProtocolRequest {
    let mut parameters = request.parameters;
    // MLServer replaces whatever `headers` a client sent with the transport's own.
    let mut headers = Map::new();
    for (name, value) in request.headers {
        headers.insert(name, Value::String(value));
    }
    for (name, value) in cloud_event_headers(id, model, server) {
        headers.insert(name, Value::String(value));
    }
    parameters.insert("headers".into(), Value::Object(headers));
    let mut binary_inputs = Vec::new();
    let inputs: Vec<Value> = request
        .inputs
        .into_iter()
        .enumerate()
        .map(|(index, input)| {
            let binary = request.binary_inputs.contains(&index);
            if binary && matches!(input.data, TensorData::Bytes(_)) {
                binary_inputs.push(index);
            }
            input_json(input, binary)
        })
        .collect();
    let outputs: Vec<Value> = request
        .outputs
        .into_iter()
        .map(|o| json!({"name": o.name, "parameters": o.parameters}))
        .collect();
    let mut body = json!({"id": id, "parameters": parameters, "inputs": inputs});
    if !outputs.is_empty() {
        body["outputs"] = Value::Array(outputs);
    }
    ProtocolRequest {
        body,
        binary_inputs,
        settings: settings.clone(),
    }
}

fn input_json(input: InferTensor, binary: bool) -> Value {
    let data: Vec<Value> = match &input.data {
        TensorData::Bytes(elements) if binary => elements
            .iter()
            .map(|e| Value::String(BASE64.encode(e)))
            .collect(),
        data => (0..data.len()).map(|i| data.json_at(i)).collect(),
    };
    let mut tensor = json!({
        "name": input.name,
        "shape": input.shape,
        "datatype": input.datatype.as_str(),
        "data": data,
    });
    if !input.parameters.is_empty() {
        tensor["parameters"] = Value::Object(input.parameters);
    }
    tensor
}

/// The outputs and response parameters of what MLServer's codecs made of the model's answer.
pub(crate) fn response_outputs(
    response: ProtocolResponse,
) -> Result<(Vec<InferTensor>, Parameters)> {
    let mut outputs = Vec::with_capacity(response.outputs.len());
    for (index, output) in response.outputs.into_iter().enumerate() {
        outputs.push(output_tensor(
            output,
            response.binary_outputs.contains(&index),
        )?);
    }
    Ok((outputs, response.parameters))
}

fn output_tensor(output: Value, binary: bool) -> Result<InferTensor> {
    let bad = |what: &str| Error::internal(format!("the model's encoded answer has {what}"));
    let name = output["name"]
        .as_str()
        .ok_or_else(|| bad("an output without a name"))?
        .to_string();
    let what = format!("output '{name}'");
    let datatype = Datatype::parse(
        output["datatype"]
            .as_str()
            .ok_or_else(|| bad("an output without a datatype"))?,
        &what,
    )
    .map_err(|e| Error::internal(format!("the model's encoded answer: {}", e.message)))?;
    let shape: Vec<i64> = serde_json::from_value(output["shape"].clone())
        .map_err(|_| bad("an output whose shape is not a list of integers"))?;
    let parameters = match &output["parameters"] {
        Value::Object(p) => p.clone(),
        _ => Map::new(),
    };
    let data = if binary {
        let elements = output["data"]
            .as_array()
            .ok_or_else(|| bad("binary output data that is not a list"))?
            .iter()
            .map(|e| {
                e.as_str()
                    .and_then(|s| BASE64.decode(s).ok())
                    .map(Bytes::from)
                    .ok_or_else(|| bad("binary output data that is not base64"))
            })
            .collect::<Result<Vec<_>>>()?;
        TensorData::Bytes(elements)
    } else {
        TensorData::from_json(datatype, &output["data"], &what)
            .map_err(|e| Error::internal(format!("the model's encoded answer: {}", e.message)))?
    };
    Ok(InferTensor {
        name,
        datatype,
        shape,
        parameters,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::RequestedOutput;

    fn seed_request() -> InferRequest {
        InferRequest {
            id: None,
            parameters: Map::new(),
            inputs: vec![InferTensor {
                name: "work_model1".into(),
                datatype: Datatype::Bytes,
                shape: vec![9],
                parameters: Map::new(),
                data: TensorData::Bytes(vec![Bytes::from_static(br#"{"a": 10}"#)]),
            }],
            outputs: vec![],
            headers: vec![("content-type".into(), "application/json".into())],
            binary_inputs: vec![],
        }
    }

    #[test]
    fn the_request_carries_headers_cloud_events_and_json_strings() {
        let handed = protocol_request(
            seed_request(),
            "id-1",
            "work_model1",
            "mlserver",
            &json!({"name": "work_model1"}),
        );
        insta::assert_json_snapshot!(handed.body, @r#"
        {
          "id": "id-1",
          "inputs": [
            {
              "data": [
                "{\"a\": 10}"
              ],
              "datatype": "BYTES",
              "name": "work_model1",
              "shape": [
                9
              ]
            }
          ],
          "parameters": {
            "headers": {
              "Ce-Endpoint": "work_model1",
              "Ce-Id": "id-1",
              "Ce-Inferenceservicename": "mlserver",
              "Ce-Modelid": "work_model1",
              "Ce-Requestid": "id-1",
              "Ce-Source": "io.seldon.serving.deployment.mlserver",
              "Ce-Specversion": "0.3",
              "Ce-Type": "io.seldon.serving.inference.request",
              "content-type": "application/json"
            }
          }
        }
        "#);
        assert!(handed.binary_inputs.is_empty());
    }

    #[test]
    fn binary_bytes_travel_as_base64_and_requested_outputs_are_kept() {
        let mut request = seed_request();
        request.binary_inputs = vec![0];
        request.outputs = vec![RequestedOutput {
            name: "output".into(),
            parameters: Map::new(),
        }];
        request
            .parameters
            .insert("headers".into(), json!({"spoofed": "yes"}));
        let handed = protocol_request(request, "i", "m", "s", &Value::Null);
        assert_eq!(handed.binary_inputs, vec![0]);
        assert_eq!(handed.body["inputs"][0]["data"], json!(["eyJhIjogMTB9"]));
        assert_eq!(
            handed.body["outputs"],
            json!([{"name": "output", "parameters": {}}])
        );
        assert!(
            handed.body["parameters"]["headers"]
                .get("spoofed")
                .is_none()
        );
    }

    #[test]
    fn requests_naming_a_frame_or_array_codec_are_decoded_by_mlox() {
        let mut request = seed_request();
        assert!(applies_to(&request));
        for (content_type, handed_over) in [
            ("pd", false),
            ("np", false),
            ("dict", false),
            ("str", true),
            ("base64", true),
        ] {
            request
                .parameters
                .insert("content_type".into(), json!(content_type));
            assert_eq!(applies_to(&request), handed_over, "{content_type}");
        }
    }

    #[test]
    fn encoded_answers_become_outputs() {
        let response = ProtocolResponse {
            outputs: vec![
                json!({"name": "output", "shape": [1], "datatype": "BYTES",
                       "parameters": {"content_type": "np"}, "data": ["{\"result\": 20}"]}),
                json!({"name": "raw", "shape": [1], "datatype": "BYTES", "data": ["AP8="]}),
                json!({"name": "x", "shape": [2], "datatype": "FP64", "data": [1.5, 2.0]}),
            ],
            parameters: json!({"content_type": "dict"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            binary_outputs: vec![1],
        };
        let (outputs, parameters) = response_outputs(response).unwrap();
        assert_eq!(parameters["content_type"], "dict");
        assert_eq!(
            outputs[0].data,
            TensorData::Bytes(vec![Bytes::from_static(br#"{"result": 20}"#)])
        );
        assert_eq!(outputs[0].parameters["content_type"], "np");
        assert_eq!(
            outputs[1].data,
            TensorData::Bytes(vec![Bytes::from_static(&[0, 255])])
        );
        assert_eq!(outputs[2].data, TensorData::Fp64(vec![1.5, 2.0]));
    }

    #[test]
    fn a_malformed_answer_is_an_internal_error_not_a_panic() {
        for output in [
            json!({"shape": [1], "datatype": "FP64", "data": [1]}),
            json!({"name": "x", "shape": "1", "datatype": "FP64", "data": [1]}),
            json!({"name": "x", "shape": [1], "datatype": "FP99", "data": [1]}),
            json!({"name": "x", "shape": [1], "datatype": "FP64", "data": ["a"]}),
        ] {
            let response = ProtocolResponse {
                outputs: vec![output],
                parameters: Map::new(),
                binary_outputs: vec![],
            };
            assert!(response_outputs(response).is_err());
        }
    }
}
