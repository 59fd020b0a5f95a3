//! Typed errors: [`SqlError`] for callers of this crate, [`RowError`] for a
//! stored row that cannot become a record (a miss, never an error of a batch).

use pricing_record::{GoodsId, InvalidRecord};
use pricing_store::{StoreError, StoreErrorKind};

/// What kind of failure a caller can branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SqlErrorKind {
    /// The input was refused before anything was written.
    Invalid,
    /// The goods, activity or promotion named does not exist.
    NotFound,
    /// A write would move a version backwards.
    Conflict,
    /// The database did not answer in time (acquire or statement timeout).
    Timeout,
    /// The database could not be reached or refused the work.
    Unavailable,
    /// The URL or the schema is not what this crate expects.
    Config,
}

#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("unsupported database url {0:?}: expected mysql://, mariadb:// or sqlite:")]
    UnsupportedUrl(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
    #[error("invalid input: {0}")]
    Invalid(#[from] InvalidRecord),
    #[error("{field} = {value} does not fit the column (ids and counts must be at most i64::MAX)")]
    OutOfRange { field: &'static str, value: u64 },
    #[error("invalid promotion {id}: {reason}")]
    InvalidPromotion { id: u64, reason: String },
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("goods {0} does not exist")]
    UnknownGoods(GoodsId),
    #[error("activity {0} does not exist")]
    UnknownActivity(u64),
    #[error("promotion {0} does not exist")]
    UnknownPromotion(u64),
    #[error("goods {goods_id}: version {given} is not above the stored version {stored}")]
    StaleVersion { goods_id: GoodsId, given: u64, stored: u64 },
    #[error("stored row is corrupt: {0}")]
    Corrupt(#[from] RowError),
}

impl SqlError {
    pub fn kind(&self) -> SqlErrorKind {
        match self {
            SqlError::UnsupportedUrl(_) | SqlError::Migrate(_) | SqlError::Corrupt(_) => SqlErrorKind::Config,
            SqlError::Database(e) => match database_kind(e) {
                StoreErrorKind::Timeout => SqlErrorKind::Timeout,
                _ => SqlErrorKind::Unavailable,
            },
            SqlError::Timeout(_) => SqlErrorKind::Timeout,
            SqlError::Invalid(_)
            | SqlError::OutOfRange { .. }
            | SqlError::InvalidPromotion { .. }
            | SqlError::InvalidInput(_) => SqlErrorKind::Invalid,
            SqlError::UnknownGoods(_) | SqlError::UnknownActivity(_) | SqlError::UnknownPromotion(_) => {
                SqlErrorKind::NotFound
            }
            SqlError::StaleVersion { .. } => SqlErrorKind::Conflict,
        }
    }

    /// The read-path error of store `store`: timeouts stay timeouts, other
    /// database failures make the store unavailable for this batch.
    pub fn into_store_error(self, store: &str) -> StoreError {
        let kind = match &self {
            SqlError::Timeout(_) => StoreErrorKind::Timeout,
            SqlError::Database(e) => database_kind(e),
            SqlError::Corrupt(_) => StoreErrorKind::Protocol,
            _ => StoreErrorKind::Unavailable,
        };
        StoreError::new(store, kind, self)
    }
}

/// MariaDB 1969 (max_statement_time exceeded), MySQL 3024 (max_execution_time
/// exceeded) and 1205 (lock wait timeout) are timeouts, as is a pool that had
/// no connection to give in time.
fn database_kind(error: &sqlx::Error) -> StoreErrorKind {
    match error {
        sqlx::Error::PoolTimedOut => StoreErrorKind::Timeout,
        sqlx::Error::Database(db) if db.code().as_deref() == Some("70100") || is_timeout_message(db.message()) => {
            StoreErrorKind::Timeout
        }
        sqlx::Error::Protocol(_) | sqlx::Error::Decode(_) | sqlx::Error::ColumnDecode { .. } => {
            StoreErrorKind::Protocol
        }
        _ => StoreErrorKind::Unavailable,
    }
}

fn is_timeout_message(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("max_statement_time") || m.contains("max_execution_time") || m.contains("lock wait timeout")
}

/// Why one stored row cannot become (part of) a record. The goods it belongs
/// to is a miss of the SQL store, counted like corrupt bytes in a cache.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    #[error("column {column}: {message}")]
    Column { column: &'static str, message: String },
    #[error("column {column}: {value} is out of range")]
    OutOfRange { column: &'static str, value: i64 },
    #[error("column {column}: unknown value {value:?}")]
    Unknown { column: &'static str, value: String },
    #[error("column {column}: {value:?} is not a comma-separated id list")]
    List { column: &'static str, value: String },
    #[error("invalid record: {0}")]
    Invalid(#[from] InvalidRecord),
}

/// Counts a stored row that cannot be read: the same metric as corrupt
/// bytes in a cache (`pricing_store_corrupt_total{store}`), because it means
/// the same to the read path: a miss of this store.
///
/// A row that cannot become a record: counted by the one corrupt-value
/// metric of every store, with the table it came from in the message.
pub(crate) fn count_corrupt_row(store: &str, what: &'static str, id: i64, error: &RowError) {
    pricing_store::count_corrupt(store, u64::try_from(id).unwrap_or(0), &format_args!("{what}: {error}"));
}
