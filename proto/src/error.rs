//! Every failure a handler can return, and its gRPC status, in one place.

use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// What went wrong with a call, in the terms the caller can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The request is wrong; `field` names the part at fault (`goods_ids[3]`,
    /// `context.channel`, `lines[0].quantity`).
    #[error("{field}: {description}")]
    InvalidArgument { field: String, description: String },
    /// Something the request names does not exist (order lines only; batch
    /// reads answer unknown ids as not-found entries instead).
    #[error("{field}: {description}")]
    NotFound { field: String, description: String },
    /// The request is well formed but the thing it names cannot be priced
    /// now (a goods off the shelf).
    #[error("{field}: {description}")]
    FailedPrecondition { field: String, description: String },
    #[error("{0}")]
    Unauthenticated(String),
    /// Over a quota or a limit; retry after the hint.
    #[error("{message}")]
    ResourceExhausted { message: String, retry_after: Option<Duration> },
    /// Every source that could answer failed, or a dependency is down.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> ApiError {
        ApiError::InvalidArgument { field: field.into(), description: description.into() }
    }

    pub fn not_found(field: impl Into<String>, description: impl Into<String>) -> ApiError {
        ApiError::NotFound { field: field.into(), description: description.into() }
    }

    pub fn code(&self) -> Code {
        match self {
            ApiError::InvalidArgument { .. } => Code::InvalidArgument,
            ApiError::NotFound { .. } => Code::NotFound,
            ApiError::FailedPrecondition { .. } => Code::FailedPrecondition,
            ApiError::Unauthenticated(_) => Code::Unauthenticated,
            ApiError::ResourceExhausted { .. } => Code::ResourceExhausted,
            ApiError::Unavailable(_) => Code::Unavailable,
            ApiError::Internal(_) => Code::Internal,
        }
    }
}

impl From<ApiError> for Status {
    fn from(err: ApiError) -> Status {
        let message = err.to_string();
        match &err {
            ApiError::InvalidArgument { field, description } => Status::with_error_details(
                Code::InvalidArgument,
                message,
                ErrorDetails::with_bad_request_violation(field.clone(), description.clone()),
            ),
            ApiError::ResourceExhausted { retry_after: Some(after), .. } => Status::with_error_details(
                Code::ResourceExhausted,
                message,
                ErrorDetails::with_retry_info(Some(*after)),
            ),
            _ => Status::new(err.code(), message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_names_the_field_in_message_and_details() {
        let status = Status::from(ApiError::invalid("goods_ids[2]", "must not be 0"));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "goods_ids[2]: must not be 0");
        let details = status.get_error_details();
        let violations = &details.bad_request().expect("bad request details").field_violations;
        assert_eq!(violations[0].field, "goods_ids[2]");
    }

    #[test]
    fn exhausted_carries_a_retry_hint() {
        let status = Status::from(ApiError::ResourceExhausted {
            message: "over quota".into(),
            retry_after: Some(Duration::from_millis(250)),
        });
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(status.get_error_details().retry_info().unwrap().retry_delay, Some(Duration::from_millis(250)));
    }
}
