//! The domain of mlox, free of any transport or storage: the entities MLflow clients exchange
//! (experiments, runs, metrics, params, tags, datasets, logged models, registered models and
//! versions), the validation rules MLflow applies to them, the search-filter grammar, and the one
//! error type whose [`Code`] fixes the `error_code` string and HTTP status every transport answers
//! with. Nothing here performs I/O; stores and transports depend on this crate, never the reverse.

pub mod entities;
pub mod error;
pub mod ids;
pub mod page_token;
pub mod search;
pub mod validation;
pub mod wire;

pub use error::{Code, Error, ErrorCode, Result};
