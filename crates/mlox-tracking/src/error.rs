//! The one place where a domain [`Error`] becomes an HTTP answer in MLflow's error shape:
//! `{"error_code": …, "message": …}` with the status its [`Code`] fixes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mlox_core::{Code, Error};

use crate::access_log::LoggedError;

/// A handler error; every handler returns `Result<_, ApiError>`.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        ApiError(err)
    }
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError(Error::new(code, message))
    }
}

/// The JSON body MLflow servers answer errors with.
pub fn error_body(err: &Error) -> serde_json::Value {
    serde_json::json!({
        "error_code": err.code.as_str(),
        "message": err.message,
    })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(&self.0)
    }
}

/// The error's answer, carrying what the access log reports of it.
pub fn error_response(err: &Error) -> Response {
    let status = StatusCode::from_u16(err.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = (status, axum::Json(error_body(err))).into_response();
    response.extensions_mut().insert(LoggedError {
        error_code: err.code.as_str(),
        message: err.message.clone(),
    });
    response
}

pub type ApiResult<T> = Result<T, ApiError>;
