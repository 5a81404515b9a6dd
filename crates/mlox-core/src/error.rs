//! One error type for the whole domain. Its [`Code`] decides the wire identity of a failure
//! (MLflow's `error_code` string, the HTTP status and the gRPC status, in one table), so every
//! layer that reports a problem picks a code once and transports only translate it.

use std::fmt;

/// The stable identity of a failure, as MLflow's clients branch on it. Each code carries its
/// whole wire identity in one table ([`Code::wire`]): MLflow's `error_code` string, the HTTP
/// status and the gRPC status, so the tracking server and both serving skins answer the same
/// failure the same way and no transport picks a status of its own.
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
    /// A request body over the server's limit: MLflow's `BAD_REQUEST` with 413.
    PayloadTooLarge,
    /// A request body in a content type the route does not read: `BAD_REQUEST` with 415.
    UnsupportedMediaType,
    /// A well-formed request whose content cannot be used (an OTLP span without an id, a
    /// required header missing): `INVALID_PARAMETER_VALUE` with 422, the status MLflow's
    /// OpenTelemetry endpoint answers such requests with.
    UnprocessableContent,
    /// No route at this path: MLflow's `ENDPOINT_NOT_FOUND`, 404. The client reads this code as
    /// "the server lacks this API" and falls back to an older one where it has one.
    EndpointNotFound,
    /// A route that exists, called with a method it does not answer: `ENDPOINT_NOT_FOUND`, 405.
    MethodNotAllowed,
    /// Temporarily unable to answer (a model still loading, a worker restarting); the
    /// request may succeed if repeated.
    TemporarilyUnavailable,
    InternalError,
}

/// The canonical gRPC status codes a [`Code`] maps to (their numbers are gRPC's own), kept
/// here so the domain needs no gRPC library.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum GrpcStatus {
    InvalidArgument = 3,
    NotFound = 5,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
}

/// How one [`Code`] appears on every wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wire {
    /// The `error_code` string MLflow puts in its error bodies.
    pub error_code: &'static str,
    pub http_status: u16,
    pub grpc_status: GrpcStatus,
}

impl Code {
    /// Every code, for tests and documentation.
    pub const ALL: [Code; 15] = [
        Code::ResourceDoesNotExist,
        Code::ResourceAlreadyExists,
        Code::InvalidParameterValue,
        Code::BadRequest,
        Code::InvalidState,
        Code::PermissionDenied,
        Code::NotImplemented,
        Code::RequestLimitExceeded,
        Code::PayloadTooLarge,
        Code::UnsupportedMediaType,
        Code::UnprocessableContent,
        Code::EndpointNotFound,
        Code::MethodNotAllowed,
        Code::TemporarilyUnavailable,
        Code::InternalError,
    ];

    /// The error table: what this code is called and which statuses it answers with.
    pub const fn wire(self) -> Wire {
        use GrpcStatus as G;
        let (error_code, http_status, grpc_status) = match self {
            Code::ResourceDoesNotExist => ("RESOURCE_DOES_NOT_EXIST", 404, G::NotFound),
            Code::ResourceAlreadyExists => ("RESOURCE_ALREADY_EXISTS", 400, G::InvalidArgument),
            Code::InvalidParameterValue => ("INVALID_PARAMETER_VALUE", 400, G::InvalidArgument),
            Code::BadRequest => ("BAD_REQUEST", 400, G::InvalidArgument),
            Code::InvalidState => ("INVALID_STATE", 400, G::InvalidArgument),
            Code::PermissionDenied => ("PERMISSION_DENIED", 403, G::PermissionDenied),
            Code::NotImplemented => ("NOT_IMPLEMENTED", 501, G::Unimplemented),
            Code::RequestLimitExceeded => ("REQUEST_LIMIT_EXCEEDED", 429, G::ResourceExhausted),
            Code::PayloadTooLarge => ("BAD_REQUEST", 413, G::ResourceExhausted),
            Code::UnsupportedMediaType => ("BAD_REQUEST", 415, G::InvalidArgument),
            Code::UnprocessableContent => ("INVALID_PARAMETER_VALUE", 422, G::InvalidArgument),
            Code::EndpointNotFound => ("ENDPOINT_NOT_FOUND", 404, G::NotFound),
            Code::MethodNotAllowed => ("ENDPOINT_NOT_FOUND", 405, G::Unimplemented),
            Code::TemporarilyUnavailable => ("TEMPORARILY_UNAVAILABLE", 503, G::Unavailable),
            Code::InternalError => ("INTERNAL_ERROR", 500, G::Internal),
        };
        Wire {
            error_code,
            http_status,
            grpc_status,
        }
    }

    /// The `error_code` string MLflow puts in its error bodies.
    pub fn as_str(self) -> &'static str {
        self.wire().error_code
    }

    /// The HTTP status MLflow answers with for this code.
    pub fn http_status(self) -> u16 {
        self.wire().http_status
    }

    /// The gRPC status the serving skin answers with for this code.
    pub fn grpc_status(self) -> GrpcStatus {
        self.wire().grpc_status
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

/// A failure with its wire identity and a message meant for the person who sent the request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Error {
    pub code: Code,
    pub message: String,
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
            Code::PayloadTooLarge,
            Code::UnsupportedMediaType,
            Code::UnprocessableContent,
            Code::EndpointNotFound,
            Code::MethodNotAllowed,
        ] {
            assert!((400..500).contains(&code.http_status()), "{code}");
        }
    }

    #[test]
    fn grpc_statuses_follow_the_http_ones() {
        for code in Code::ALL {
            let expected = match code.http_status() {
                400 | 415 | 422 => GrpcStatus::InvalidArgument,
                403 => GrpcStatus::PermissionDenied,
                404 => GrpcStatus::NotFound,
                413 | 429 => GrpcStatus::ResourceExhausted,
                405 | 501 => GrpcStatus::Unimplemented,
                503 => GrpcStatus::Unavailable,
                _ => GrpcStatus::Internal,
            };
            assert_eq!(code.grpc_status(), expected, "{code:?}");
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
