//! One store call with its timeout, its circuit breaker and its metrics: the
//! decorator every combinator and server puts around a store.
//!
//! Layout: a [`StoreGuard`] belongs to one store, or one cluster of a pair:
//! its name, how its calls are counted ([`Meter`]) and, when it has one, its
//! [`Breaker`]. [`StoreGuard::call`] runs one call under [`Limits`]; the
//! dual store (each cluster's reads), the dual writer (each cluster's
//! writes), the projector's direct writes to one cluster and the detail
//! server's MySQL source all go through it. [`Guarded`] is a [`RecordStore`]
//! whose every fetch goes through a guard, for a store used as a tier.
//!
//! One call, in order:
//! 1. the request is counted ([`StoreCall`], in the meter's family);
//! 2. a caller whose deadline has passed is answered
//!    [`StoreErrorKind::DeadlineExceeded`] without I/O (`kind="deadline"`);
//! 3. the breaker admits it, or refuses it (`kind="breaker_open"`,
//!    [`GuardError::refused`]; nothing is sent) unless [`Admission::Bypass`];
//! 4. it runs within min(the store's own timeout, what the caller's
//!    deadline leaves): half of what it leaves when
//!    [`Limits::leave_for_failover`] (the first cluster of a pair keeps time
//!    for the second);
//! 5. the outcome goes to the breaker and the metrics. A timeout that fired
//!    at the store's own budget is the store's failure. A timeout that fired
//!    because the caller's deadline cut the budget shorter is not held
//!    against the store: the breaker is not told, the metric kind is
//!    `deadline`, and the error is [`StoreErrorKind::DeadlineExceeded`] when
//!    the caller's deadline has passed, `Timeout` when only the failover
//!    share of it has (the pair then asks its other cluster).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pricing_record::GoodsId;
use tokio::time::Instant;

use crate::breaker::{Breaker, BreakerSettings, Outcome};
use crate::observe::{Family, PAIR_READ, PAIR_WRITE, StoreCall, kind_label};
use crate::{Deadline, RecordStore, SharedRecord, StoreError, StoreErrorKind};

/// How a guarded store's calls are counted (observe.rs lists the names).
#[derive(Debug, Clone)]
pub enum Meter {
    /// A store reached on its own: `pricing_store_*{store, op}`.
    Store,
    /// Reads at one cluster of `pair`: `pricing_dual_*{pair, cluster}`.
    PairRead { pair: Arc<str> },
    /// Writes at one cluster of `pair`: `pricing_dual_write_*{pair, cluster}`.
    PairWrite { pair: Arc<str> },
}

/// How the breaker takes part in one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Admitted by the breaker; failures and slow calls count.
    Counted,
    /// Admitted by the breaker; only failures count (a cluster standing
    /// alone carries the whole load and is allowed to be slower).
    FailuresOnly,
    /// Not asked and not told (every breaker of a pair is open: panic).
    Bypass,
}

/// The limits of one call.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The store's own budget; `None` when its client bounds every call
    /// itself (the SQL pool's acquire and statement timeouts).
    pub timeout: Option<Duration>,
    /// When the caller stops waiting.
    pub deadline: Option<Deadline>,
    pub admission: Admission,
    /// Use at most half of what the deadline leaves, so that a second
    /// store (the other cluster of a pair) can still be asked.
    pub leave_for_failover: bool,
}

impl Limits {
    /// Within `timeout`, no caller deadline, breaker counted.
    pub fn timeout(timeout: Duration) -> Limits {
        Limits { timeout: Some(timeout), deadline: None, admission: Admission::Counted, leave_for_failover: false }
    }

    /// The caller's deadline only (the store's client bounds the call).
    pub fn within(deadline: Option<Deadline>) -> Limits {
        Limits { timeout: None, deadline, admission: Admission::Counted, leave_for_failover: false }
    }
}

/// A guarded call that failed, and whether its breaker refused it (nothing
/// was sent) or the store failed.
#[derive(Debug, Clone)]
pub struct GuardError {
    pub error: StoreError,
    pub refused: bool,
}

impl From<GuardError> for StoreError {
    fn from(e: GuardError) -> StoreError {
        e.error
    }
}

/// One store's calls with their timeout, breaker and metrics.
pub struct StoreGuard {
    name: Arc<str>,
    family: &'static Family,
    pair: Option<Arc<str>>,
    breaker: Option<Breaker>,
}

impl StoreGuard {
    /// A guard without a breaker for the store `name`.
    pub fn new(name: &str, meter: Meter) -> StoreGuard {
        let (family, pair) = match meter {
            Meter::Store => (&crate::observe::STORE, None),
            Meter::PairRead { pair } => (&PAIR_READ, Some(pair)),
            Meter::PairWrite { pair } => (&PAIR_WRITE, Some(pair)),
        };
        StoreGuard { name: Arc::from(name), family, pair, breaker: None }
    }

    /// With a breaker named after the store (`pricing_breaker_state{name}`).
    pub fn with_breaker(mut self, settings: BreakerSettings) -> StoreGuard {
        self.breaker = Some(Breaker::new(self.name.to_string(), settings));
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn breaker(&self) -> Option<&Breaker> {
        self.breaker.as_ref()
    }

    fn start(&self, op: &'static str) -> StoreCall {
        match &self.pair {
            Some(pair) => StoreCall::start_at_cluster(self.family, Arc::clone(pair), Arc::clone(&self.name), op),
            None => StoreCall::start(&self.name, op),
        }
    }

    /// Runs `call` (operation `op`: a metric label for a store meter, a log
    /// field for a pair's) under `limits`; see the module doc for the order.
    pub async fn call<T, F>(&self, op: &'static str, limits: Limits, call: F) -> Result<T, GuardError>
    where
        F: Future<Output = Result<T, StoreError>>,
    {
        let metered = self.start(op);
        if limits.deadline.is_some_and(|d| d.is_expired()) {
            metered.refused(kind_label(StoreErrorKind::DeadlineExceeded));
            return Err(GuardError { error: StoreError::deadline(&*self.name), refused: false });
        }
        let permit = match (&self.breaker, limits.admission) {
            (Some(breaker), Admission::Counted | Admission::FailuresOnly) => match breaker.try_acquire() {
                Ok(permit) => Some(permit),
                Err(open) => {
                    metered.refused("breaker_open");
                    return Err(GuardError { error: StoreError::unavailable(&*self.name, open), refused: true });
                }
            },
            _ => None,
        };
        let cap = limits.deadline.map(|d| if limits.leave_for_failover { d.remaining() / 2 } else { d.remaining() });
        let (budget, cut) = match (limits.timeout, cap) {
            (Some(own), Some(cap)) if cap < own => (Some(cap), true),
            (None, Some(cap)) => (Some(cap), true),
            (own, _) => (own, false),
        };
        let started = Instant::now();
        let result = match budget {
            Some(budget) => tokio::time::timeout(budget, call).await.ok(),
            None => Some(call.await),
        };
        let latency = started.elapsed();
        let counted_latency = if limits.admission == Admission::Counted { latency } else { Duration::ZERO };
        match result {
            Some(Ok(value)) => {
                if let Some(permit) = permit {
                    permit.record(Outcome::Success, counted_latency);
                }
                metered.end(None);
                Ok(value)
            }
            Some(Err(error)) => {
                if let Some(permit) = permit {
                    permit.record(Outcome::Failure, counted_latency);
                }
                metered.end(Some((kind_label(error.kind), &error)));
                Err(GuardError { error, refused: false })
            }
            None if cut => {
                // Cut by the caller's deadline: says nothing about the store.
                drop(permit);
                let error = if limits.deadline.is_some_and(|d| d.is_expired()) {
                    StoreError::deadline(&*self.name)
                } else {
                    StoreError::new(&*self.name, StoreErrorKind::Timeout, "the failover share of the deadline ran out")
                };
                metered.end(Some((kind_label(StoreErrorKind::DeadlineExceeded), &error)));
                Err(GuardError { error, refused: false })
            }
            None => {
                if let Some(permit) = permit {
                    permit.record(Outcome::Failure, counted_latency);
                }
                let error = StoreError::timeout(&*self.name);
                metered.end(Some((kind_label(error.kind), &error)));
                Err(GuardError { error, refused: false })
            }
        }
    }
}

/// A [`RecordStore`] whose every fetch goes through a [`StoreGuard`]: the
/// caller's deadline, the store's own timeout (if any), its breaker, its
/// metrics (`op = "fetch"`).
pub struct Guarded<S> {
    store: S,
    guard: StoreGuard,
    timeout: Option<Duration>,
}

impl<S: RecordStore> Guarded<S> {
    /// `store` behind `guard`, each fetch within `timeout` (`None`: the
    /// store's client bounds its calls).
    pub fn new(store: S, guard: StoreGuard, timeout: Option<Duration>) -> Guarded<S> {
        Guarded { store, guard, timeout }
    }

    pub fn inner(&self) -> &S {
        &self.store
    }

    pub fn guard(&self) -> &StoreGuard {
        &self.guard
    }

    /// The limits of one call of this store for a caller with `deadline`.
    pub fn limits(&self, deadline: Option<Deadline>) -> Limits {
        Limits { timeout: self.timeout, deadline, admission: Admission::Counted, leave_for_failover: false }
    }
}

#[async_trait]
impl<S: RecordStore> RecordStore for Guarded<S> {
    fn name(&self) -> &str {
        self.guard.name()
    }

    async fn fetch(&self, ids: &[GoodsId]) -> Result<Vec<SharedRecord>, StoreError> {
        self.fetch_within(ids, None).await
    }

    async fn fetch_within(&self, ids: &[GoodsId], deadline: Option<Deadline>) -> Result<Vec<SharedRecord>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.guard.call("fetch", self.limits(deadline), self.store.fetch(ids)).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BreakerState;
    use crate::conformance::{self, fixture};
    use crate::fault::{Fault, FaultyStore};

    fn guarded(timeout: Option<Duration>) -> (Guarded<Arc<FaultyStore>>, Arc<FaultyStore>) {
        let store = FaultyStore::named("inner", fixture());
        let guard = StoreGuard::new("mysql", Meter::Store).with_breaker(BreakerSettings {
            min_calls: 4,
            consecutive_failures: 4,
            ..BreakerSettings::default()
        });
        (Guarded::new(Arc::clone(&store), guard, timeout), store)
    }

    #[tokio::test]
    async fn conforms() {
        let (store, _) = guarded(Some(Duration::from_secs(1)));
        conformance::check_reads(&store, &fixture()).await;
    }

    #[tokio::test(start_paused = true)]
    async fn own_timeout_fails_the_store_and_opens_its_breaker() {
        let (store, inner) = guarded(Some(Duration::from_millis(50)));
        inner.set_fault(Fault::Delay(Duration::from_secs(1)));
        for _ in 0..4 {
            let started = Instant::now();
            let err = store.fetch(&[101]).await.unwrap_err();
            assert_eq!((err.store.as_str(), err.kind), ("mysql", StoreErrorKind::Timeout));
            assert_eq!(started.elapsed(), Duration::from_millis(50));
        }
        assert_eq!(store.guard().breaker().map(Breaker::state), Some(BreakerState::Open));
        let refused = store.guard().call("fetch", store.limits(None), inner.fetch(&[101])).await.unwrap_err();
        assert!(refused.refused, "an open breaker sends nothing");
        assert_eq!(refused.error.kind, StoreErrorKind::Unavailable);
        assert_eq!(inner.fetch_count(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn the_callers_deadline_cuts_the_budget_and_is_not_held_against_the_store() {
        let (store, inner) = guarded(Some(Duration::from_secs(2)));
        inner.set_fault(Fault::Delay(Duration::from_secs(1)));
        for _ in 0..10 {
            let deadline = Deadline::after(Duration::from_millis(150));
            let started = Instant::now();
            let err = store.fetch_within(&[101], Some(deadline)).await.unwrap_err();
            assert_eq!(err.kind, StoreErrorKind::DeadlineExceeded);
            assert_eq!(started.elapsed(), Duration::from_millis(150), "min(own 2 s, 150 ms left)");
        }
        assert_eq!(
            store.guard().breaker().map(Breaker::state),
            Some(BreakerState::Closed),
            "cut by the caller: the breaker was not told"
        );

        // Already out of time: nothing is sent.
        let before = inner.fetch_count();
        let deadline = Deadline::after(Duration::ZERO);
        let err = store.fetch_within(&[101], Some(deadline)).await.unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::DeadlineExceeded);
        assert_eq!(inner.fetch_count(), before);

        // Without a timeout of its own the deadline alone bounds the call.
        let (store, inner) = guarded(None);
        inner.set_fault(Fault::Delay(Duration::from_secs(1)));
        let started = Instant::now();
        let err = store.fetch_within(&[101], Some(Deadline::after(Duration::from_millis(80)))).await.unwrap_err();
        assert_eq!((err.kind, started.elapsed()), (StoreErrorKind::DeadlineExceeded, Duration::from_millis(80)));
    }

    #[tokio::test(start_paused = true)]
    async fn leaving_time_for_a_failover_takes_half_of_what_is_left() {
        let guard = StoreGuard::new("redis-a", Meter::PairRead { pair: "redis".into() });
        let limits = Limits {
            timeout: Some(Duration::from_secs(2)),
            deadline: Some(Deadline::after(Duration::from_millis(150))),
            admission: Admission::Counted,
            leave_for_failover: true,
        };
        let started = Instant::now();
        let slow = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, StoreError>(())
        };
        let err = guard.call("fetch", limits, slow).await.unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_millis(75));
        assert_eq!(err.error.kind, StoreErrorKind::Timeout, "the caller still has time: not its deadline");
    }

    #[test]
    fn metrics_keep_their_families() {
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        metrics::with_local_recorder(&recorder, || {
            runtime.block_on(async {
                let read = StoreGuard::new("redis-a", Meter::PairRead { pair: "redis".into() });
                let write = StoreGuard::new("redis-b", Meter::PairWrite { pair: "redis".into() });
                let sql = StoreGuard::new("mysql", Meter::Store)
                    .with_breaker(BreakerSettings { consecutive_failures: 1, ..BreakerSettings::default() });
                let fail = || async { Err::<(), _>(StoreError::unavailable("x", "down")) };
                let _ = read.call("fetch", Limits::timeout(Duration::from_secs(1)), fail()).await;
                let _ = write.call("put", Limits::timeout(Duration::from_secs(1)), fail()).await;
                let _ = sql.call("coupons", Limits::within(None), fail()).await;
                let _ = sql.call("coupons", Limits::within(None), fail()).await;
            })
        });
        let errors: Vec<(String, Vec<(String, String)>)> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| key.key().name().contains("errors"))
            .map(|(key, ..)| {
                let mut labels: Vec<_> =
                    key.key().labels().map(|l| (l.key().to_owned(), l.value().to_owned())).collect();
                labels.sort();
                (key.key().name().to_owned(), labels)
            })
            .collect();
        let has = |name: &str, labels: &[(&str, &str)]| {
            errors
                .iter()
                .any(|(n, l)| n == name && labels.iter().all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v)))
        };
        assert!(
            has("pricing_dual_errors_total", &[("pair", "redis"), ("cluster", "redis-a"), ("kind", "unavailable")]),
            "{errors:?}"
        );
        assert!(
            has("pricing_dual_write_errors_total", &[("cluster", "redis-b"), ("kind", "unavailable")]),
            "{errors:?}"
        );
        assert!(
            has("pricing_store_errors_total", &[("store", "mysql"), ("op", "coupons"), ("kind", "unavailable")]),
            "{errors:?}"
        );
        assert!(has("pricing_store_errors_total", &[("store", "mysql"), ("kind", "breaker_open")]), "{errors:?}");
    }
}
