//! The gRPC skin: `inference.GRPCInferenceService` from our own `proto/grpc_service.proto`,
//! translating messages to the [`Dataplane`]'s types and errors to the gRPC status their
//! `Code` carries in mlox-core's error table (INVALID_ARGUMENT, NOT_FOUND, UNAVAILABLE, …). A request sent with
//! `raw_input_contents` is answered with `raw_output_contents`, which is what
//! `tritonclient.grpc` reads.

use std::collections::HashMap;
use std::sync::Arc;

use mlox_core::{Error, Result};
use serde_json::{Number, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::protocol::{InferRequest, InferTensor, Parameters, RequestedOutput};
use crate::tensor::{Datatype, TensorData};
use crate::{Dataplane, MetadataTensor};

/// Code generated from `proto/grpc_service.proto`, server and client.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod pb {
    tonic::include_proto!("inference");
}

use pb::grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer};
use pb::infer_parameter::ParameterChoice;

/// Limits of the gRPC server.
#[derive(Clone, Debug)]
pub struct GrpcConfig {
    /// Largest message accepted or sent (tonic's default is 4 MiB, too small for batches).
    pub max_message_bytes: usize,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig {
            max_message_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The service implementation; obtain a server for it with [`service`].
pub struct GrpcSkin {
    dataplane: Arc<Dataplane>,
}

/// The tonic service over `dataplane`, ready for `tonic::transport::Server::add_service`.
pub fn service(
    dataplane: Arc<Dataplane>,
    config: &GrpcConfig,
) -> GrpcInferenceServiceServer<GrpcSkin> {
    GrpcInferenceServiceServer::new(GrpcSkin { dataplane })
        .max_decoding_message_size(config.max_message_bytes)
        .max_encoding_message_size(config.max_message_bytes)
}

/// Serves [`service`] on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    dataplane: Arc<Dataplane>,
    config: GrpcConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .add_service(service(dataplane, &config))
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
        .await
        .map_err(std::io::Error::other)
}

fn status(err: Error) -> Status {
    let code = tonic::Code::from_i32(err.code.grpc_status() as i32);
    if code == tonic::Code::Internal {
        tracing::error!(code = %err.code, message = %err.message, "gRPC request failed");
    }
    Status::new(code, err.message)
}

impl GrpcSkin {
    /// The gate of `mlox serve --auth-tracking-uri`, with the `authorization` metadata the
    /// client sent: UNAUTHENTICATED or PERMISSION_DENIED when it refuses.
    async fn admit<T>(&self, request: &Request<T>, model: Option<&str>) -> Result<(), Status> {
        if !self.dataplane.gated() {
            return Ok(());
        }
        let authorization = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        match self.dataplane.admit(authorization, model).await {
            Ok(()) => Ok(()),
            Err(mlox_core::auth::Refusal::Unauthenticated) => Err(Status::unauthenticated(
                "send a personal access token (authorization: Bearer …) or basic credentials",
            )),
            Err(mlox_core::auth::Refusal::Denied) => Err(Status::permission_denied(
                "using this model needs USE on it",
            )),
            Err(mlox_core::auth::Refusal::Unavailable(why)) => Err(Status::unavailable(format!(
                "credentials cannot be checked now: {why}"
            ))),
        }
    }
}

fn version(v: &str) -> Option<&str> {
    (!v.is_empty()).then_some(v)
}

#[tonic::async_trait]
impl GrpcInferenceService for GrpcSkin {
    async fn server_live(
        &self,
        _: Request<pb::ServerLiveRequest>,
    ) -> Result<Response<pb::ServerLiveResponse>, Status> {
        Ok(Response::new(pb::ServerLiveResponse {
            live: self.dataplane.live(),
        }))
    }

    async fn server_ready(
        &self,
        _: Request<pb::ServerReadyRequest>,
    ) -> Result<Response<pb::ServerReadyResponse>, Status> {
        Ok(Response::new(pb::ServerReadyResponse {
            ready: self.dataplane.ready(),
        }))
    }

    async fn model_ready(
        &self,
        request: Request<pb::ModelReadyRequest>,
    ) -> Result<Response<pb::ModelReadyResponse>, Status> {
        self.admit(&request, Some(&request.get_ref().name)).await?;
        let r = request.into_inner();
        let ready = self
            .dataplane
            .model_ready(&r.name, version(&r.version))
            .map_err(status)?;
        Ok(Response::new(pb::ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _: Request<pb::ServerMetadataRequest>,
    ) -> Result<Response<pb::ServerMetadataResponse>, Status> {
        let m = self.dataplane.server_metadata();
        Ok(Response::new(pb::ServerMetadataResponse {
            name: m.name,
            version: m.version,
            extensions: m.extensions,
        }))
    }

    async fn model_metadata(
        &self,
        request: Request<pb::ModelMetadataRequest>,
    ) -> Result<Response<pb::ModelMetadataResponse>, Status> {
        self.admit(&request, Some(&request.get_ref().name)).await?;
        let r = request.into_inner();
        let m = self
            .dataplane
            .model_metadata(&r.name, version(&r.version))
            .map_err(status)?;
        let tensors = |ts: Vec<MetadataTensor>| {
            ts.into_iter()
                .map(|t| pb::model_metadata_response::TensorMetadata {
                    name: t.name,
                    datatype: t.datatype,
                    shape: t.shape,
                    parameters: params_to_pb(&t.parameters),
                })
                .collect()
        };
        Ok(Response::new(pb::ModelMetadataResponse {
            name: m.name,
            versions: m.versions,
            platform: m.platform,
            inputs: tensors(m.inputs),
            outputs: tensors(m.outputs),
            parameters: params_to_pb(&m.parameters),
        }))
    }

    async fn repository_index(
        &self,
        request: Request<pb::RepositoryIndexRequest>,
    ) -> Result<Response<pb::RepositoryIndexResponse>, Status> {
        self.admit(&request, None).await?;
        let ready_only = request.into_inner().ready;
        let models = self
            .dataplane
            .repository_index(ready_only)
            .into_iter()
            .map(|e| pb::repository_index_response::ModelIndex {
                name: e.name,
                version: e.version.unwrap_or_default(),
                state: e.state.as_str().into(),
                reason: e.reason,
            })
            .collect();
        Ok(Response::new(pb::RepositoryIndexResponse { models }))
    }

    async fn repository_model_load(
        &self,
        request: Request<pb::RepositoryModelLoadRequest>,
    ) -> Result<Response<pb::RepositoryModelLoadResponse>, Status> {
        self.admit(&request, Some(&request.get_ref().model_name))
            .await?;
        let name = request.into_inner().model_name;
        self.dataplane.load_model(&name).await.map_err(status)?;
        Ok(Response::new(pb::RepositoryModelLoadResponse {}))
    }

    async fn repository_model_unload(
        &self,
        request: Request<pb::RepositoryModelUnloadRequest>,
    ) -> Result<Response<pb::RepositoryModelUnloadResponse>, Status> {
        self.admit(&request, Some(&request.get_ref().model_name))
            .await?;
        let name = request.into_inner().model_name;
        self.dataplane.unload_model(&name).map_err(status)?;
        Ok(Response::new(pb::RepositoryModelUnloadResponse {}))
    }

    async fn model_infer(
        &self,
        request: Request<pb::ModelInferRequest>,
    ) -> Result<Response<pb::ModelInferResponse>, Status> {
        self.admit(&request, Some(&request.get_ref().model_name))
            .await?;
        // As over REST: without an id in the message, the caller's x-request-id names it.
        let request_id = request
            .metadata()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let headers: Vec<(String, String)> = request
            .metadata()
            .iter()
            .filter_map(|entry| match entry {
                tonic::metadata::KeyAndValueRef::Ascii(key, value) => value
                    .to_str()
                    .ok()
                    .map(|v| (key.as_str().to_string(), v.to_string())),
                tonic::metadata::KeyAndValueRef::Binary(..) => None,
            })
            .collect();
        let r = request.into_inner();
        let raw = !r.raw_input_contents.is_empty();
        let model = r.model_name.clone();
        let model_version = r.model_version.clone();
        let mut request = infer_request(r).map_err(status)?;
        request.headers = headers;
        if request.id.as_deref().is_none_or(str::is_empty) {
            request.id = request_id;
        }
        let response = self
            .dataplane
            .infer(&model, version(&model_version), request)
            .await
            .map_err(status)?;
        // FP16 has no typed field, so a response holding one must be raw throughout.
        let raw = raw
            || response
                .outputs
                .iter()
                .any(|o| o.datatype == Datatype::Fp16);
        let mut raw_output_contents = Vec::new();
        let outputs = response
            .outputs
            .into_iter()
            .map(|o| {
                let contents = if raw {
                    raw_output_contents.push(bytes::Bytes::from(o.data.to_raw()));
                    None
                } else {
                    Some(contents_of(o.data))
                };
                pb::model_infer_response::InferOutputTensor {
                    name: o.name,
                    datatype: o.datatype.as_str().into(),
                    shape: o.shape,
                    parameters: params_to_pb(&o.parameters),
                    contents,
                }
            })
            .collect();
        Ok(Response::new(pb::ModelInferResponse {
            model_name: response.model_name,
            model_version: response.model_version.unwrap_or_default(),
            id: response.id,
            parameters: params_to_pb(&response.parameters),
            outputs,
            raw_output_contents,
        }))
    }
}

fn infer_request(r: pb::ModelInferRequest) -> Result<InferRequest> {
    let raw = !r.raw_input_contents.is_empty();
    if raw && r.raw_input_contents.len() != r.inputs.len() {
        return Err(Error::invalid(format!(
            "raw_input_contents has {} entries but the request has {} inputs",
            r.raw_input_contents.len(),
            r.inputs.len()
        )));
    }
    let mut raw_contents = r.raw_input_contents.into_iter();
    let mut inputs = Vec::with_capacity(r.inputs.len());
    for input in r.inputs {
        let what = format!("input '{}'", input.name);
        let datatype = Datatype::parse(&input.datatype, &what)?;
        let data = match (raw_contents.next(), input.contents) {
            (Some(bytes), None) => TensorData::from_raw(datatype, &bytes, &what)?,
            (Some(_), Some(_)) => {
                return Err(Error::invalid(format!(
                    "{what} has contents although the request uses raw_input_contents; send \
                     every input one way"
                )));
            }
            (None, contents) => from_contents(datatype, contents.unwrap_or_default(), &what)?,
        };
        inputs.push(InferTensor {
            name: input.name,
            datatype,
            shape: input.shape,
            parameters: params_from_pb(input.parameters),
            data,
        });
    }
    // Every gRPC input arrives as binary: BYTES contents are raw bytes, never JSON strings.
    let binary_inputs = (0..inputs.len()).collect();
    Ok(InferRequest {
        id: (!r.id.is_empty()).then_some(r.id),
        parameters: params_from_pb(r.parameters),
        binary_inputs,
        headers: Vec::new(),
        inputs,
        outputs: r
            .outputs
            .into_iter()
            .map(|o| RequestedOutput {
                name: o.name,
                parameters: params_from_pb(o.parameters),
            })
            .collect(),
    })
}

/// Reads the typed list that carries `datatype`; the narrower integer types travel widened
/// to 32 bits and must fit back.
fn from_contents(datatype: Datatype, c: pb::InferTensorContents, what: &str) -> Result<TensorData> {
    let narrow = |data: TensorData| {
        data.cast(datatype)
            .map_err(|why| Error::invalid(format!("{what}: {why}")))
    };
    Ok(match datatype {
        Datatype::Bool => TensorData::Bool(c.bool_contents),
        Datatype::Int8 | Datatype::Int16 => narrow(TensorData::Int32(c.int_contents))?,
        Datatype::Int32 => TensorData::Int32(c.int_contents),
        Datatype::Int64 => TensorData::Int64(c.int64_contents),
        Datatype::Uint8 | Datatype::Uint16 => narrow(TensorData::Uint32(c.uint_contents))?,
        Datatype::Uint32 => TensorData::Uint32(c.uint_contents),
        Datatype::Uint64 => TensorData::Uint64(c.uint64_contents),
        Datatype::Fp32 => TensorData::Fp32(c.fp32_contents),
        Datatype::Fp64 => TensorData::Fp64(c.fp64_contents),
        Datatype::Bytes => TensorData::Bytes(c.bytes_contents),
        Datatype::Fp16 => {
            return Err(Error::invalid(format!(
                "{what}: FP16 tensors have no typed contents field; send them in raw_input_contents"
            )));
        }
    })
}

fn contents_of(data: TensorData) -> pb::InferTensorContents {
    let mut c = pb::InferTensorContents::default();
    match data {
        TensorData::Bool(v) => c.bool_contents = v,
        TensorData::Int8(v) => c.int_contents = v.into_iter().map(i32::from).collect(),
        TensorData::Int16(v) => c.int_contents = v.into_iter().map(i32::from).collect(),
        TensorData::Int32(v) => c.int_contents = v,
        TensorData::Int64(v) => c.int64_contents = v,
        TensorData::Uint8(v) => c.uint_contents = v.into_iter().map(u32::from).collect(),
        TensorData::Uint16(v) => c.uint_contents = v.into_iter().map(u32::from).collect(),
        TensorData::Uint32(v) => c.uint_contents = v,
        TensorData::Uint64(v) => c.uint64_contents = v,
        TensorData::Fp32(v) => c.fp32_contents = v,
        TensorData::Fp64(v) => c.fp64_contents = v,
        TensorData::Bytes(v) => c.bytes_contents = v,
        // Callers send FP16 raw; widening keeps the values if one ever gets here.
        TensorData::Fp16(v) => c.fp32_contents = v.into_iter().map(|x| x.to_f32()).collect(),
    }
    c
}

fn params_from_pb(map: HashMap<String, pb::InferParameter>) -> Parameters {
    map.into_iter()
        .filter_map(|(k, p)| {
            let v = match p.parameter_choice? {
                ParameterChoice::BoolParam(b) => Value::Bool(b),
                ParameterChoice::Int64Param(n) => Value::from(n),
                ParameterChoice::Uint64Param(n) => Value::from(n),
                ParameterChoice::DoubleParam(x) => Value::from(x),
                ParameterChoice::StringParam(s) => Value::String(s),
            };
            Some((k, v))
        })
        .collect()
}

/// JSON parameters as gRPC ones; lists and objects (MLServer's `headers`) travel as JSON text.
fn params_to_pb(params: &Parameters) -> HashMap<String, pb::InferParameter> {
    params
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| {
            let choice = match v {
                Value::Bool(b) => ParameterChoice::BoolParam(*b),
                Value::Number(n) => number_param(n),
                Value::String(s) => ParameterChoice::StringParam(s.clone()),
                other => ParameterChoice::StringParam(other.to_string()),
            };
            (
                k.clone(),
                pb::InferParameter {
                    parameter_choice: Some(choice),
                },
            )
        })
        .collect()
}

fn number_param(n: &Number) -> ParameterChoice {
    if let Some(i) = n.as_i64() {
        ParameterChoice::Int64Param(i)
    } else if let Some(u) = n.as_u64() {
        ParameterChoice::Uint64Param(u)
    } else {
        ParameterChoice::DoubleParam(n.as_f64().unwrap_or(f64::NAN))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn parameters_round_trip_through_protobuf() {
        let p = json!({"a": true, "b": -3, "c": 1.5, "d": "x", "e": 18446744073709551615u64});
        let p = p.as_object().unwrap().clone();
        assert_eq!(params_from_pb(params_to_pb(&p)), p);
    }

    #[test]
    fn narrow_integers_must_fit_their_datatype() {
        let c = pb::InferTensorContents {
            int_contents: vec![1, 300],
            ..Default::default()
        };
        let e = from_contents(Datatype::Int8, c, "input 'x'").unwrap_err();
        assert_eq!(e.message, "input 'x': element 1 (300) does not fit in INT8");
    }

    #[test]
    fn mixing_raw_and_typed_contents_is_refused() {
        let r = pb::ModelInferRequest {
            inputs: vec![pb::model_infer_request::InferInputTensor {
                name: "x".into(),
                datatype: "FP64".into(),
                shape: vec![1],
                contents: Some(pb::InferTensorContents::default()),
                ..Default::default()
            }],
            raw_input_contents: vec![bytes::Bytes::from_static(&[0; 8])],
            ..Default::default()
        };
        assert!(
            infer_request(r)
                .unwrap_err()
                .message
                .contains("send every input one way")
        );
    }
}
