//! The domain of mlox, free of any transport or storage: the entities MLflow clients exchange
//! (experiments, runs, metrics, params, tags, datasets, logged models, registered models and
//! versions), the validation rules MLflow applies to them (the registry's names, aliases,
//! versions and model version sources in [`registry`], webhooks and their events in
//! [`webhooks`]), the one storage-location type every crate parses locations with
//! ([`location`]), the search-filter grammar, and the one error type whose [`Code`] fixes the
//! `error_code` string and HTTP status every transport answers with. It also declares the OTLP
//! protobuf messages ([`otlp_proto`]) the tracking server decodes and the benchmarks encode.
//!
//! Nothing here performs I/O, and this crate imports no mlox crate and no I/O crate (no sqlx,
//! tokio, object_store, HTTP client or server); stores and transports depend on it, never the
//! reverse.

pub mod assessments;
pub mod auth;
pub mod budget;
pub mod correlation;
pub mod entities;
pub mod error;
pub mod evaluation_datasets;
pub mod gateway;
pub mod ids;
pub mod issues;
pub mod location;
pub mod net;
pub mod otlp_proto;
pub mod page_token;
pub mod registry;
pub mod scorers;
pub mod search;
pub mod spans;
pub mod trace_info;
pub mod trace_metrics;
pub mod validation;
pub mod webhooks;
pub mod wire;

pub use error::{Code, Error, GrpcStatus, Result, Wire};
