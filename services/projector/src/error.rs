//! Typed errors: a bad config file, and what stops a projector run.
//!
//! A write that fails at one cluster is NOT an error of the run: it is
//! retried, then queued (see `writer`). A run fails when the source of truth
//! (or the queue in it) cannot be read or written, so that no cursor moves
//! past work that was neither done nor queued.

use pricing_store::StoreError;
use pricing_store_sql::SqlError;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("config: {0}")]
    Parse(String),
    #[error("config: {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("control file: {0}")]
    Control(#[from] pricing_control::ControlError),
}

/// What kind of failure a caller (the binary, a test) can branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Config,
    /// The source database (or the queue and cursors in it) failed.
    Source,
    /// A store failed where no queue can take over (reconcile reads).
    Store,
    /// A named cluster or goods id that does not exist.
    Invalid,
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("source database: {0}")]
    Source(#[from] SqlError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Invalid(String),
}

impl ProjectorError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ProjectorError::Config(_) => ErrorKind::Config,
            ProjectorError::Source(_) => ErrorKind::Source,
            ProjectorError::Store(_) => ErrorKind::Store,
            ProjectorError::Invalid(_) => ErrorKind::Invalid,
        }
    }
}
