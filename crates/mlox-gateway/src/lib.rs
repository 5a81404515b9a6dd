//! mlox's LLM gateway: MLflow's deployments server ("AI gateway") read from the user's
//! unchanged `config.yaml`, with OpenAI's API beside MLflow's. This crate owns the config
//! schema and its checks (`config`), the providers' request and answer mappings (`provider`),
//! traffic-split routing and the dispatch of one call (`gateway`), upstream calls with
//! retries and timeouts (`upstream`, `retry`), per-endpoint rate limits (`limit`),
//! Prometheus metrics of the calls (`metrics`), server-sent events (`sse`), what a call cost
//! from MLflow's model catalog (`catalog`), the endpoints
//! kept in the tracking database and their fallbacks (`stored`), and recording each call as a
//! trace in a tracking server (`traces`), and the OpenAPI document of what it serves
//! (`openapi`). Only `http` knows axum: it is the skin that serves MLflow's
//! routes and OpenAI's `/v1` routes over one [`Gateway`]. Starting a server from the command
//! line is mlox-cli's job.

pub mod anthropic;
pub mod catalog;
pub mod config;
pub mod error;
pub mod gateway;
pub mod http;
pub mod limit;
pub mod metrics;
pub mod openapi;
pub mod provider;
pub mod retry;
pub mod sse;
pub mod stored;
pub mod traces;
pub mod upstream;

pub use config::{ConfigError, GatewayConfig};
pub use error::GatewayError;
pub use gateway::{Answer, Gateway};
