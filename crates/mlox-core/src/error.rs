//! One error type for the whole domain. Its [`Code`] decides the wire identity of a failure
//! (MLflow's `error_code` string and the HTTP status), so every layer that reports a problem
//! picks a code once and transports only translate it.

use std::fmt;

/// The stable identity of a failure, as MLflow's clients branch on it.
///
/// The client's retry policy makes the status part of the contract: 5xx and 429 are retried for
/// minutes, so a user error must never map to a 5xx.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    ResourceDoesNotExist,
    ResourceAlreadyExists,
    InvalidParameterValue,
    BadRequest,
    InvalidState,
    PermissionDenied,
    NotImplemented,
    RequestLimitExceeded,
    /// Temporarily unable to answer (a model still loading, a worker restarting); the
    /// request may succeed if repeated.
    TemporarilyUnavailable,
    InternalError,
}

impl Code {
    /// The `error_code` string MLflow puts in its error bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::ResourceDoesNotExist => "RESOURCE_DOES_NOT_EXIST",
            Code::ResourceAlreadyExists => "RESOURCE_ALREADY_EXISTS",
            Code::InvalidParameterValue => "INVALID_PARAMETER_VALUE",
            Code::BadRequest => "BAD_REQUEST",
            Code::InvalidState => "INVALID_STATE",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::NotImplemented => "NOT_IMPLEMENTED",
            Code::RequestLimitExceeded => "REQUEST_LIMIT_EXCEEDED",
            Code::TemporarilyUnavailable => "TEMPORARILY_UNAVAILABLE",
            Code::InternalError => "INTERNAL_ERROR",
        }
    }

    /// The HTTP status MLflow answers with for this code.
    pub fn http_status(self) -> u16 {
        match self {
            Code::ResourceDoesNotExist => 404,
            Code::ResourceAlreadyExists
            | Code::InvalidParameterValue
            | Code::BadRequest
            | Code::InvalidState => 400,
            Code::PermissionDenied => 403,
            Code::RequestLimitExceeded => 429,
            Code::NotImplemented => 501,
            Code::TemporarilyUnavailable => 503,
            Code::InternalError => 500,
        }
    }

    /// The coarser `error_class` recent MLflow servers add beside `error_code`.
    pub fn error_class(self) -> &'static str {
        match self {
            Code::ResourceDoesNotExist => "RESOURCE_NOT_FOUND",
            other => other.as_str(),
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Anything that can say which [`Code`] it is; lets crate-local errors convert into [`Error`].
pub trait ErrorCode {
    fn error_code(&self) -> Code;
}

/// A failure with its wire identity and a message meant for the person who sent the request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Error {
    pub code: Code,
    pub message: String,
}

impl ErrorCode for Error {
    fn error_code(&self) -> Code {
        self.code
    }
}

impl Error {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Error::new(Code::ResourceDoesNotExist, message)
    }
    pub fn already_exists(message: impl Into<String>) -> Self {
        Error::new(Code::ResourceAlreadyExists, message)
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(Code::InvalidParameterValue, message)
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Error::new(Code::BadRequest, message)
    }
    pub fn invalid_state(message: impl Into<String>) -> Self {
        Error::new(Code::InvalidState, message)
    }
    pub fn not_implemented(message: impl Into<String>) -> Self {
        Error::new(Code::NotImplemented, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Error::new(Code::TemporarilyUnavailable, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(Code::InternalError, message)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_errors_are_never_server_errors() {
        for code in [
            Code::ResourceDoesNotExist,
            Code::ResourceAlreadyExists,
            Code::InvalidParameterValue,
            Code::BadRequest,
            Code::InvalidState,
            Code::PermissionDenied,
        ] {
            assert!((400..500).contains(&code.http_status()), "{code}");
        }
    }

    #[test]
    fn missing_resources_are_404_with_mlflow_class() {
        assert_eq!(Code::ResourceDoesNotExist.http_status(), 404);
        assert_eq!(
            Code::ResourceDoesNotExist.error_class(),
            "RESOURCE_NOT_FOUND"
        );
        assert_eq!(
            Code::ResourceAlreadyExists.as_str(),
            "RESOURCE_ALREADY_EXISTS"
        );
    }
}
