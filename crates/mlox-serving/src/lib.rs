//! Model serving for mlox: the V2 Open Inference Protocol (MLServer's and Triton's wire
//! format) and MLflow's scoring protocol, over a repository of loaded models. This crate owns
//! the operations core ([`Dataplane`] over a [`ModelRepository`]), MLServer's codecs that turn
//! V2 tensors into the DataFrames and arrays runtimes predict on, and two thin skins that
//! expose the same operations: REST ([`rest`], axum) and gRPC ([`grpc`], tonic). The `Predictor`
//! interface lives in `mlox-runtime` and each runtime backend in a crate of its own; the
//! private `runtimes` module is the one place that picks a backend for a model (the backends
//! compiled in are this crate's features), and [`deployment`] fetches and loads what a server
//! is asked to serve. This crate must not import mlox-tracking or the store: it reaches the
//! registry only through mlox-fetch, as a client would. The `mlox serve` command wires it all
//! together.

mod arrays;
mod codec;
pub mod dataplane;
pub mod deployment;
pub mod grpc;
mod handover;
pub mod language;
/// The language-model runtime's settings, for the CLI.
#[cfg(feature = "llm")]
pub mod llm {
    pub use mlox_runtime_llm::decoder::Quantization;
    pub use mlox_runtime_llm::set_quantization;
}
pub mod metrics;
pub mod protocol;
pub mod repository;
pub mod rest;
mod runtimes;
mod schema;
pub mod scoring;
pub mod tensor;

pub use dataplane::Dataplane;
pub use protocol::{
    InferRequest, InferResponse, InferTensor, MetadataTensor, ModelMetadata, Parameters,
    RequestedOutput, ServerInfo, ServerMetadata,
};
pub use repository::{ModelRepository, ModelState, RepositoryEntry, RequestContract};
pub use schema::ContentType;
pub use scoring::ScoringFormat;
pub use tensor::{Datatype, TensorData};

/// The `platform` V2 metadata reports for every model: they are all MLflow models.
pub const MLFLOW_PLATFORM: &str = "mlflow";

/// How `mlox serve` runs both skins.
#[derive(Clone, Debug, Default)]
pub struct ServeConfig {
    pub rest: rest::RestConfig,
    pub grpc: grpc::GrpcConfig,
}

/// Serves REST on `http` and, when given, gRPC on `grpc` over one dataplane until `shutdown`
/// is cancelled or either server fails; a failure of one stops the other too.
pub async fn serve(
    dataplane: std::sync::Arc<Dataplane>,
    http: tokio::net::TcpListener,
    grpc: Option<tokio::net::TcpListener>,
    config: ServeConfig,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    let stop_all = shutdown.child_token();
    let rest = rest::serve(http, dataplane.clone(), config.rest, stop_all.clone());
    let grpc = async {
        match grpc {
            Some(listener) => grpc::serve(listener, dataplane, config.grpc, stop_all.clone()).await,
            None => {
                stop_all.cancelled().await;
                Ok(())
            }
        }
    };
    let (rest, grpc) = tokio::join!(
        async {
            let r = rest.await;
            stop_all.cancel();
            r
        },
        async {
            let r = grpc.await;
            stop_all.cancel();
            r
        }
    );
    rest.and(grpc)
}
