//! The files and names that describe an MLflow model, read without Python: the `MLmodel`
//! document and its signature, `python_env.yaml`, the model URIs clients pass around
//! (`runs:/…`, `models:/name/version`, `models:/name@alias`, `models:/m-…`, `s3://…`, paths),
//! and MLServer's `settings.json` / `model-settings.json` as users already write them. This
//! crate owns parsing and validation only: no I/O beyond reading a given file, no transport.
//! Model URIs add the registry grammar of `models:/…` to the locations `mlox_core::location`
//! reads; no location is parsed here. It must not import mlox-store, mlox-artifacts or any
//! transport crate. The serving and tracking crates build on these types.

pub mod mlmodel;
pub mod mlserver;
pub mod signature;
pub mod uri;

pub use mlmodel::{MlModel, PythonEnv};
pub use mlserver::{ModelSettings, ServerSettings};
pub use signature::{ColSpec, DataType, Schema, Signature, TensorSpec};
pub use uri::ModelUri;
