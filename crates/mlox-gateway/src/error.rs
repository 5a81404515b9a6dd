//! Why a gateway call failed, independent of the API it came through: the MLflow skin renders
//! it as `{"detail": …}`, the OpenAI skin as `{"error": {message, type, param, code}}`.

use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// No endpoint or route by that name (404).
    #[error("{0}")]
    NotFound(String),
    /// A request the gateway cannot read (400).
    #[error("{0}")]
    BadRequest(String),
    /// A readable request with invalid fields (422, as MLflow's validation answers).
    #[error("{0}")]
    Invalid(String),
    /// A body over the size limit (413).
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The endpoint's rate limit is used up (429).
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after: Duration,
    },
    /// The upstream answered with an error status, which is passed on with its message.
    #[error("{message}")]
    Upstream {
        status: u16,
        message: String,
        retry_after: Option<Duration>,
    },
    /// The upstream could not be reached or answered something unusable (502).
    #[error("{0}")]
    BadGateway(String),
    /// The upstream did not answer in time (504).
    #[error("{0}")]
    Timeout(String),
    /// The operation does not exist for this endpoint's provider (501).
    #[error("{0}")]
    NotImplemented(String),
}

impl GatewayError {
    pub fn status(&self) -> u16 {
        match self {
            GatewayError::NotFound(_) => 404,
            GatewayError::BadRequest(_) => 400,
            GatewayError::Invalid(_) => 422,
            GatewayError::PayloadTooLarge(_) => 413,
            GatewayError::RateLimited { .. } => 429,
            // Only error statuses are passed on; anything else from an upstream is a bad gateway.
            GatewayError::Upstream { status, .. } if (400..=599).contains(status) => *status,
            GatewayError::Upstream { .. } | GatewayError::BadGateway(_) => 502,
            GatewayError::Timeout(_) => 504,
            GatewayError::NotImplemented(_) => 501,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            GatewayError::RateLimited { retry_after, .. } => Some(*retry_after),
            GatewayError::Upstream { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// OpenAI's `error.type` and `error.code` for this failure.
    pub fn openai_type_and_code(&self) -> (&'static str, Option<&'static str>) {
        match self {
            GatewayError::NotFound(_) => ("invalid_request_error", Some("model_not_found")),
            GatewayError::BadRequest(_) | GatewayError::Invalid(_) => {
                ("invalid_request_error", None)
            }
            GatewayError::PayloadTooLarge(_) => {
                ("invalid_request_error", Some("request_too_large"))
            }
            GatewayError::RateLimited { .. } => ("requests", Some("rate_limit_exceeded")),
            GatewayError::Upstream { status, .. } if *status < 500 && *status != 429 => {
                ("invalid_request_error", Some("upstream_error"))
            }
            GatewayError::Upstream { status: 429, .. } => ("requests", Some("rate_limit_exceeded")),
            GatewayError::Upstream { .. } | GatewayError::BadGateway(_) => {
                ("api_error", Some("upstream_error"))
            }
            GatewayError::Timeout(_) => ("api_error", Some("upstream_timeout")),
            GatewayError::NotImplemented(_) => ("invalid_request_error", Some("not_implemented")),
        }
    }

    /// The body OpenAI's clients read errors from.
    pub fn openai_body(&self) -> serde_json::Value {
        let (kind, code) = self.openai_type_and_code();
        serde_json::json!({
            "error": {
                "message": self.to_string(),
                "type": kind,
                "param": serde_json::Value::Null,
                "code": code,
            }
        })
    }
}
