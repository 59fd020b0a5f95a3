//! One trait for "fetch these goods records by id", and what composes stores.
//!
//! Layout: [`RecordStore`] is the read seam every tier implements (in-memory,
//! SQL, Redis, HBase); [`RecordWriter`] is the versioned write seam of the
//! read stores; [`StoreError`] is the typed failure a combinator branches on;
//! [`TierId`] and [`PairId`] (in [`ids`]) name a chain's tiers and the store
//! pairs. Behind the `testsuite` feature (test support, not in production
//! builds): `memory`, the in-memory store used by tests and as the reference
//! behaviour; `conformance`, the suite every implementation must pass; and
//! `fault`, a fault-injecting store.
//! The read-path combinators compose any stores: [`breaker`] is the
//! per-cluster circuit breaker, [`dual`] reads and writes a pair of clusters
//! (split, forced, same-room first, failover), [`cache`] is the moka cache and
//! [`chain`] the tier chain behind it (coalescing, write-back,
//! stale-if-error); [`settings`] holds the live-settings plumbing they share
//! and [`fault`] a fault-injecting store for tests; [`observe`] holds what
//! every store call reports ([`StoreCall`]) and the log throttle hot paths
//! share ([`LogThrottle`]); [`guard`] is the one decorator of a store call
//! (its timeout, its breaker, its metrics: [`StoreGuard`], and [`Guarded`],
//! a store whose every fetch goes through one); [`deadline`] is the caller's
//! [`Deadline`] that cuts every store call's budget; [`inspect`] is the
//! raw-read seam ([`Inspect`]: stored bytes, the version guarding them, a
//! walk over every goods id) that the reconciler uses.
#![forbid(unsafe_code)]

use std::sync::Arc;

use async_trait::async_trait;
use pricing_record::{GoodsId, GoodsRecord};

pub mod breaker;
pub mod cache;
pub mod chain;
#[cfg(any(test, feature = "testsuite"))]
pub mod conformance;
pub mod deadline;
pub mod dual;
#[cfg(any(test, feature = "testsuite"))]
pub mod fault;
pub mod guard;
pub mod ids;
pub mod inspect;
pub mod invalidate;
#[cfg(any(test, feature = "testsuite"))]
pub mod memory;
pub mod observe;
pub mod settings;

pub use breaker::{Breaker, BreakerSettings, BreakerState};
pub use cache::CacheSettings;
pub use chain::{ChainError, Lookup, Source, Tier, TieredReader};
pub use deadline::Deadline;
pub use dual::{Cluster, DualSettings, DualStore, DualWriter, ReadMode, Served, WriteMode};
pub use guard::{Admission, GuardError, Guarded, Limits, Meter, StoreGuard};
pub use ids::{PairId, TierId, UnknownId};
pub use inspect::{Inspect, RawEntry, VersionGuard, WalkCursor, WalkPage};
pub use invalidate::{Invalidate, Invalidators};
pub use observe::{LogThrottle, StoreCall};
pub use settings::{Live, SettingsError, live};

/// A record as the read path passes it around: shared, never copied per caller.
pub type SharedRecord = Arc<GoodsRecord>;

/// What kind of failure a store had; combinators decide failover and breaker
/// accounting from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreErrorKind {
    /// The store did not answer in time.
    Timeout,
    /// The store refused or could not be reached (connection refused, reset,
    /// pool exhausted, breaker open).
    Unavailable,
    /// The store answered with something the client could not understand at
    /// the protocol level (not a corrupt record: that is a miss).
    Protocol,
    /// The caller's own deadline passed before the store answered: the store
    /// is not to blame (no breaker counts it), and asking another store is
    /// of no use to this caller.
    DeadlineExceeded,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{store}: {kind:?}: {message}")]
pub struct StoreError {
    pub store: String,
    pub kind: StoreErrorKind,
    pub message: String,
}

impl StoreError {
    pub fn new(store: impl Into<String>, kind: StoreErrorKind, message: impl ToString) -> StoreError {
        StoreError { store: store.into(), kind, message: message.to_string() }
    }
    pub fn unavailable(store: impl Into<String>, message: impl ToString) -> StoreError {
        StoreError::new(store, StoreErrorKind::Unavailable, message)
    }
    pub fn timeout(store: impl Into<String>) -> StoreError {
        StoreError::new(store, StoreErrorKind::Timeout, "timed out")
    }
    /// The caller's deadline passed before `store` answered.
    pub fn deadline(store: impl Into<String>) -> StoreError {
        StoreError::new(store, StoreErrorKind::DeadlineExceeded, "the caller's deadline passed")
    }
}

/// Fetch goods records by id, one round trip per call.
///
/// Contract (checked by [`conformance`]):
/// - the result holds the records found, each at most once, in any order;
///   ids the store does not hold are simply absent (not an error);
/// - tombstones (deleted goods) are returned like any record: the caller
///   decides that they mean "not found" but also "do not ask further";
/// - stored bytes that do not decode are a miss, counted in the metric
///   `pricing_store_corrupt_total{store}`, never an error of the whole batch;
/// - `ids` may be empty, which returns an empty result without I/O;
/// - an error means the store as a whole failed for this batch.
#[async_trait]
pub trait RecordStore: Send + Sync + 'static {
    /// A short, stable name for metrics and logs ("redis-a", "hbase-b", "sql").
    fn name(&self) -> &str;

    async fn fetch(&self, ids: &[GoodsId]) -> Result<Vec<SharedRecord>, StoreError>;

    /// [`RecordStore::fetch`] for a caller who stops waiting at `deadline`:
    /// past it the call ends with [`StoreErrorKind::DeadlineExceeded`].
    /// Combinators (the dual store, the tier chain, [`Guarded`]) override it
    /// to cut each inner call's own budget to what the caller has left.
    async fn fetch_within(&self, ids: &[GoodsId], deadline: Option<Deadline>) -> Result<Vec<SharedRecord>, StoreError> {
        match deadline {
            None => self.fetch(ids).await,
            Some(deadline) => match tokio::time::timeout_at(deadline.instant(), self.fetch(ids)).await {
                Ok(result) => result,
                Err(_) => Err(StoreError::deadline(self.name())),
            },
        }
    }
}

/// What a versioned write did to each record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteReport {
    /// Records stored (newer than what was there, or new).
    pub written: usize,
    /// Records not stored because the store already held the same or a newer version.
    pub skipped_older: usize,
}

/// The write side of a read store. Versions only move forward: a record is
/// stored only if its version is above the one held (checked atomically by
/// the store itself, not read-then-write by the client).
#[async_trait]
pub trait RecordWriter: Send + Sync + 'static {
    fn name(&self) -> &str;

    async fn put(&self, records: &[SharedRecord]) -> Result<WriteReport, StoreError>;

    /// Removes entries physically (purge after the tombstone's retention).
    async fn remove(&self, ids: &[GoodsId]) -> Result<(), StoreError>;
}

#[async_trait]
impl<T: RecordStore + ?Sized> RecordStore for Arc<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    async fn fetch(&self, ids: &[GoodsId]) -> Result<Vec<SharedRecord>, StoreError> {
        (**self).fetch(ids).await
    }
    async fn fetch_within(&self, ids: &[GoodsId], deadline: Option<Deadline>) -> Result<Vec<SharedRecord>, StoreError> {
        (**self).fetch_within(ids, deadline).await
    }
}

/// Counts a corrupt stored value (bytes that do not decode, a SQL row that
/// cannot become a record): the caller then treats the id as a miss.
pub fn count_corrupt(store: &str, goods_id: GoodsId, error: &dyn std::fmt::Display) {
    metrics::counter!("pricing_store_corrupt_total", "store" => store.to_owned()).increment(1);
    crate::throttled!(
        |suppressed| tracing::warn!(store, goods_id, %error, suppressed, "corrupt record treated as a miss")
    );
}
