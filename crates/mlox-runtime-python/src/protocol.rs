//! The byte-level exchange with `mlox_worker.py`: message framing, the JSON headers, and the
//! conversion of [`ModelInput`] / [`ModelOutput`] to and from Arrow IPC streams.
//!
//! A message is `u32 LE header length | JSON header | parts`, each part an Arrow IPC stream
//! whose length the header lists. Lengths travel in the header rather than being inferred from
//! the IPC end-of-stream marker so both sides read with plain exact-size reads.

use std::io::Cursor;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{Field, Schema};
use mlox_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use mlox_runtime::{
    ModelInput, ModelOutput, PredictRequest, ProtocolRequest, ProtocolResponse, Tensor,
};

/// Must match `PROTOCOL_VERSION` in `mlox_worker.py`.
pub(crate) const PROTOCOL_VERSION: u32 = 1;

/// A header beyond this is not something our worker writes: the stream is out of step.
const MAX_HEADER_BYTES: u32 = 16 << 20;
/// Same for a single part; one Arrow stream above 4 GiB would not fit Utf8 offsets anyway.
const MAX_PART_BYTES: u64 = 4 << 30;

/// Name of the column holding the values of a tensor part.
const TENSOR_COLUMN: &str = "data";

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PartMeta {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub shape: Option<Vec<usize>>,
    pub nbytes: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    Frame,
    Tensors,
    /// A V2 inference request handed to the model as MLServer's own object: one part, the
    /// request's JSON.
    Request,
    /// MLServer's encoding of what such a model returned: one part, JSON.
    Response,
}

#[derive(Serialize)]
struct RequestHeader<'a> {
    id: u64,
    input: Kind,
    params: &'a Map<String, Value>,
    parts: &'a [PartMeta],
    #[serde(skip_serializing_if = "Option::is_none")]
    settings: Option<&'a Value>,
    #[serde(skip_serializing_if = "<[usize]>::is_empty")]
    binary_inputs: &'a [usize],
}

/// Every message the worker sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub(crate) enum WorkerMessage {
    Ready {
        protocol: u32,
        pid: u32,
        python_version: String,
        mlflow_version: String,
    },
    LoadError {
        error_type: String,
        message: String,
        #[serde(default)]
        location: Option<String>,
    },
    Ok {
        id: u64,
        output: Kind,
        #[serde(default)]
        parts: Vec<PartMeta>,
    },
    Error {
        id: u64,
        error_kind: ErrorKind,
        error_type: String,
        message: String,
        #[serde(default)]
        location: Option<String>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ErrorKind {
    BadInput,
    Internal,
    /// The request's contract needs a package the model's environment lacks.
    MissingPackage,
}

/// A request already turned into bytes, so encoding cost and input errors stay with the caller
/// and a worker only copies bytes into its pipe.
#[derive(Debug)]
pub(crate) struct EncodedRequest {
    kind: Kind,
    params: Map<String, Value>,
    parts: Vec<PartMeta>,
    payload: Vec<Vec<u8>>,
    settings: Option<Value>,
    binary_inputs: Vec<usize>,
}

/// A worker's successful answer.
#[derive(Debug)]
pub(crate) enum Answer {
    Model(ModelOutput),
    Response(ProtocolResponse),
}

impl EncodedRequest {
    pub(crate) fn encode_protocol(request: ProtocolRequest) -> Result<Self> {
        let body = serde_json::to_vec(&request.body)
            .map_err(|e| Error::invalid(format!("cannot encode the inference request: {e}")))?;
        Ok(EncodedRequest {
            kind: Kind::Request,
            params: Map::new(),
            parts: vec![PartMeta {
                nbytes: body.len() as u64,
                ..PartMeta::default()
            }],
            payload: vec![body],
            settings: Some(request.settings),
            binary_inputs: request.binary_inputs,
        })
    }

    pub(crate) fn encode(request: &PredictRequest) -> Result<Self> {
        let (kind, parts) = match &request.input {
            ModelInput::Frame(batch) => {
                (Kind::Frame, vec![(PartMeta::default(), ipc_stream(batch)?)])
            }
            ModelInput::Tensors(tensors) => {
                let mut parts = Vec::with_capacity(tensors.len());
                for tensor in tensors {
                    let elements: usize = tensor.shape.iter().product();
                    if elements != tensor.data.len() {
                        return Err(Error::invalid(format!(
                            "tensor '{}' has shape {:?} ({elements} elements) but holds {} values",
                            tensor.name,
                            tensor.shape,
                            tensor.data.len()
                        )));
                    }
                    let meta = PartMeta {
                        name: Some(tensor.name.clone()),
                        shape: Some(tensor.shape.clone()),
                        nbytes: 0,
                    };
                    parts.push((meta, ipc_stream(&tensor_batch(&tensor.data)?)?));
                }
                (Kind::Tensors, parts)
            }
        };
        let (mut metas, payload): (Vec<_>, Vec<_>) = parts.into_iter().unzip();
        for (meta, bytes) in metas.iter_mut().zip(&payload) {
            meta.nbytes = bytes.len() as u64;
        }
        Ok(EncodedRequest {
            kind,
            params: request.params.clone(),
            parts: metas,
            payload,
            settings: None,
            binary_inputs: Vec::new(),
        })
    }

    pub(crate) async fn write<W: AsyncWrite + Unpin>(
        &self,
        id: u64,
        out: &mut W,
    ) -> std::io::Result<()> {
        let header = serde_json::to_vec(&RequestHeader {
            id,
            input: self.kind,
            params: &self.params,
            parts: &self.parts,
            settings: self.settings.as_ref(),
            binary_inputs: &self.binary_inputs,
        })
        .map_err(std::io::Error::other)?;
        let len = u32::try_from(header.len()).map_err(std::io::Error::other)?;
        out.write_all(&len.to_le_bytes()).await?;
        out.write_all(&header).await?;
        for part in &self.payload {
            out.write_all(part).await?;
        }
        out.flush().await
    }
}

/// Reads one message; `Ok(None)` is a clean end of stream before a message began.
pub(crate) async fn read_message<R: AsyncRead + Unpin>(
    input: &mut R,
) -> std::io::Result<Option<(WorkerMessage, Vec<Vec<u8>>)>> {
    let mut len = [0u8; 4];
    let first = input.read(&mut len).await?;
    if first == 0 {
        return Ok(None);
    }
    input.read_exact(&mut len[first..]).await?;
    let len = u32::from_le_bytes(len);
    if len > MAX_HEADER_BYTES {
        return Err(protocol_error(format!("a {len}-byte header")));
    }
    let mut header = vec![0u8; len as usize];
    input.read_exact(&mut header).await?;
    let message: WorkerMessage = serde_json::from_slice(&header).map_err(|e| {
        protocol_error(format!(
            "an unreadable header ({e}): {}",
            String::from_utf8_lossy(&header[..header.len().min(200)])
        ))
    })?;
    let metas: &[PartMeta] = match &message {
        WorkerMessage::Ok { parts, .. } => parts,
        _ => &[],
    };
    let mut parts = Vec::with_capacity(metas.len());
    for meta in metas {
        if meta.nbytes > MAX_PART_BYTES {
            return Err(protocol_error(format!("a {}-byte part", meta.nbytes)));
        }
        let mut part = vec![0u8; meta.nbytes as usize];
        input.read_exact(&mut part).await?;
        parts.push(part);
    }
    Ok(Some((message, parts)))
}

fn protocol_error(what: String) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("the worker sent {what}, which is not the mlox worker protocol"),
    )
}

/// Turns an `ok` answer into what the caller sees.
pub(crate) fn decode_answer(kind: Kind, metas: &[PartMeta], parts: Vec<Vec<u8>>) -> Result<Answer> {
    match kind {
        Kind::Response => decode_response(parts).map(Answer::Response),
        kind => decode_output(kind, metas, parts).map(Answer::Model),
    }
}

fn decode_response(parts: Vec<Vec<u8>>) -> Result<ProtocolResponse> {
    #[derive(Deserialize)]
    struct Encoded {
        outputs: Vec<Value>,
        #[serde(default)]
        parameters: Map<String, Value>,
        #[serde(default)]
        binary_outputs: Vec<usize>,
    }
    let [part] = <[Vec<u8>; 1]>::try_from(parts).map_err(|parts| {
        Error::internal(format!(
            "the Python worker answered a response in {} parts",
            parts.len()
        ))
    })?;
    let encoded: Encoded = serde_json::from_slice(&part).map_err(|e| {
        Error::internal(format!(
            "the Python worker sent an unreadable response: {e}"
        ))
    })?;
    Ok(ProtocolResponse {
        outputs: encoded.outputs,
        parameters: encoded.parameters,
        binary_outputs: encoded.binary_outputs,
    })
}

/// Turns an `ok` answer of the Arrow kinds into the output the caller sees.
fn decode_output(kind: Kind, metas: &[PartMeta], parts: Vec<Vec<u8>>) -> Result<ModelOutput> {
    match kind {
        Kind::Request | Kind::Response => Err(Error::internal(format!(
            "the Python worker answered a {kind:?} where model output was expected"
        ))),
        Kind::Frame => {
            let [part] = <[Vec<u8>; 1]>::try_from(parts).map_err(|parts| {
                Error::internal(format!(
                    "the Python worker answered a frame in {} parts",
                    parts.len()
                ))
            })?;
            Ok(ModelOutput::Frame(read_single_batch(part)?))
        }
        Kind::Tensors => {
            let mut tensors = Vec::with_capacity(parts.len());
            for (meta, part) in metas.iter().zip(parts) {
                let batch = read_single_batch(part)?;
                let data = batch.columns().first().cloned().ok_or_else(|| {
                    Error::internal("the Python worker sent a tensor without data")
                })?;
                let shape = meta.shape.clone().unwrap_or_else(|| vec![data.len()]);
                if shape.iter().product::<usize>() != data.len() {
                    return Err(Error::internal(format!(
                        "the Python worker sent a tensor of shape {shape:?} holding {} values",
                        data.len()
                    )));
                }
                tensors.push(Tensor {
                    name: meta.name.clone().unwrap_or_default(),
                    shape,
                    data,
                });
            }
            Ok(ModelOutput::Tensors(tensors))
        }
    }
}

fn ipc_stream(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut writer = StreamWriter::try_new(Vec::new(), &batch.schema())
        .map_err(|e| Error::invalid(format!("cannot encode the input as Arrow IPC: {e}")))?;
    writer
        .write(batch)
        .and_then(|()| writer.finish())
        .map_err(|e| Error::invalid(format!("cannot encode the input as Arrow IPC: {e}")))?;
    writer
        .into_inner()
        .map_err(|e| Error::invalid(format!("cannot encode the input as Arrow IPC: {e}")))
}

fn tensor_batch(data: &ArrayRef) -> Result<RecordBatch> {
    let schema = Schema::new(vec![Field::new(
        TENSOR_COLUMN,
        data.data_type().clone(),
        data.null_count() > 0,
    )]);
    RecordBatch::try_new(Arc::new(schema), vec![data.clone()])
        .map_err(|e| Error::invalid(format!("cannot encode a tensor: {e}")))
}

fn read_single_batch(bytes: Vec<u8>) -> Result<RecordBatch> {
    let bad = |e: &dyn std::fmt::Display| {
        Error::internal(format!(
            "the Python worker sent an unreadable Arrow stream: {e}"
        ))
    };
    let reader = StreamReader::try_new(Cursor::new(bytes), None).map_err(|e| bad(&e))?;
    let schema = reader.schema();
    let mut batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(&e))?;
    match batches.len() {
        0 => Ok(RecordBatch::new_empty(schema)),
        1 => Ok(batches.remove(0)),
        n => Err(Error::internal(format!(
            "the Python worker sent {n} record batches where one was expected"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float64Array, Int64Array, StringArray};

    fn frame() -> RecordBatch {
        RecordBatch::try_from_iter([
            (
                "a",
                Arc::new(Float64Array::from(vec![1.5, 2.5])) as ArrayRef,
            ),
            ("s", Arc::new(StringArray::from(vec!["x", "y"])) as ArrayRef),
        ])
        .unwrap()
    }

    #[tokio::test]
    async fn a_request_is_a_length_prefixed_header_then_its_parts() {
        let mut params = Map::new();
        params.insert("k".into(), Value::from(3));
        let encoded = EncodedRequest::encode(&PredictRequest {
            input: ModelInput::Frame(frame()),
            params,
        })
        .unwrap();
        let mut wire = Vec::new();
        encoded.write(7, &mut wire).await.unwrap();

        let len = u32::from_le_bytes(wire[..4].try_into().unwrap()) as usize;
        let header: Value = serde_json::from_slice(&wire[4..4 + len]).unwrap();
        assert_eq!(header["id"], 7);
        assert_eq!(header["input"], "frame");
        assert_eq!(header["params"]["k"], 3);
        let nbytes = header["parts"][0]["nbytes"].as_u64().unwrap() as usize;
        assert_eq!(wire.len(), 4 + len + nbytes);
        let batch = read_single_batch(wire[4 + len..].to_vec()).unwrap();
        assert_eq!(batch, frame());
    }

    #[test]
    fn a_tensor_whose_shape_does_not_match_its_data_is_bad_input() {
        let err = EncodedRequest::encode(&PredictRequest {
            input: ModelInput::Tensors(vec![Tensor {
                name: "x".into(),
                shape: vec![2, 2],
                data: Arc::new(Int64Array::from(vec![1, 2, 3])),
            }]),
            params: Map::new(),
        })
        .unwrap_err();
        assert_eq!(err.code, mlox_core::Code::InvalidParameterValue);
        assert!(err.message.contains("[2, 2]"), "{}", err.message);
    }

    #[tokio::test]
    async fn worker_answers_decode_into_frames_and_tensors() {
        let tensor =
            tensor_batch(&(Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5, 6])) as ArrayRef))
                .unwrap();
        let tensor_bytes = ipc_stream(&tensor).unwrap();
        let header = serde_json::json!({
            "status": "ok", "id": 3, "output": "tensors",
            "parts": [{"name": "predictions", "shape": [2, 3], "nbytes": tensor_bytes.len()}],
        });
        let header = serde_json::to_vec(&header).unwrap();
        let mut wire = (header.len() as u32).to_le_bytes().to_vec();
        wire.extend_from_slice(&header);
        wire.extend_from_slice(&tensor_bytes);

        let (message, parts) = read_message(&mut wire.as_slice()).await.unwrap().unwrap();
        let WorkerMessage::Ok {
            id,
            output,
            parts: metas,
        } = message
        else {
            panic!("{message:?}")
        };
        assert_eq!((id, output), (3, Kind::Tensors));
        let ModelOutput::Tensors(tensors) = decode_output(output, &metas, parts).unwrap() else {
            panic!()
        };
        assert_eq!(tensors[0].name, "predictions");
        assert_eq!(tensors[0].shape, vec![2, 3]);
        assert_eq!(tensors[0].data.len(), 6);

        assert!(read_message(&mut [].as_slice()).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn garbage_on_the_pipe_is_a_protocol_error() {
        let mut wire = 5u32.to_le_bytes().to_vec();
        wire.extend_from_slice(b"hello");
        let err = read_message(&mut wire.as_slice()).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        let huge = u32::MAX.to_le_bytes();
        assert!(read_message(&mut huge.as_slice()).await.is_err());
    }
}
