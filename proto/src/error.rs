//! Every failure a handler can return, and its gRPC status, in one place.
//!
//! A store failure becomes an [`ApiError`] here too (`From<StoreError>`), so
//! that no handler maps store errors by hand. The rule:
//! - the caller's own deadline ran out before the stores answered
//!   ([`StoreErrorKind::DeadlineExceeded`]): DEADLINE_EXCEEDED. The caller
//!   chose the budget; retrying with the same one is the caller's call;
//! - a store's own timeout fired, a store could not be reached or refused
//!   (breaker open, pool exhausted), or answered garbage at the protocol
//!   level (`Timeout`, `Unavailable`, `Protocol`): UNAVAILABLE. A dependency
//!   failed while the caller still had time: transient, retryable with
//!   backoff, and what the alerts on UNAVAILABLE count.
//!
//! The conversion lives in this crate (the orphan rule allows it here or in
//! pricing-store): pricing-proto depends on pricing-store, which stays free of
//! gRPC, so no store crate ever builds tonic.

use std::time::Duration;

use pricing_store::{StoreError, StoreErrorKind};

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
    /// The caller's deadline (`grpc-timeout`) passed before the answer was ready.
    #[error("{0}")]
    DeadlineExceeded(String),
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
            ApiError::DeadlineExceeded(_) => Code::DeadlineExceeded,
            ApiError::Internal(_) => Code::Internal,
        }
    }
}

/// See the module doc for the rule.
impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error.kind {
            StoreErrorKind::DeadlineExceeded => {
                ApiError::DeadlineExceeded(format!("the call's deadline passed before the stores answered: {error}"))
            }
            StoreErrorKind::Timeout | StoreErrorKind::Unavailable | StoreErrorKind::Protocol => {
                ApiError::Unavailable(format!("no store could answer: {error}"))
            }
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
    fn store_errors_map_by_the_documented_rule() {
        let code = |kind| Status::from(ApiError::from(StoreError::new("redis", kind, "x"))).code();
        assert_eq!(code(StoreErrorKind::DeadlineExceeded), Code::DeadlineExceeded);
        for kind in [StoreErrorKind::Timeout, StoreErrorKind::Unavailable, StoreErrorKind::Protocol] {
            assert_eq!(code(kind), Code::Unavailable, "{kind:?}");
        }
        let status = Status::from(ApiError::from(StoreError::timeout("mysql")));
        assert!(status.message().contains("no store could answer") && status.message().contains("mysql"), "{status}");
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
