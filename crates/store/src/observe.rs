//! What every store call reports, and logging that stays quiet under load.
//!
//! Layout: [`StoreCall`] records one store call's metrics when it ends, and
//! also when its caller drops it first (the pair's budget, the caller's
//! deadline, a cancelled RPC): such calls used to vanish from every
//! store-level metric. [`LogThrottle`] bounds a hot path's log lines: one
//! line per interval per call site, carrying the count of the lines it held
//! back, so a failing store costs a few lines a minute, not one per call,
//! while its metrics still count every call.
//!
//! Metrics, by the family a call belongs to ([`Family`]; labels from fixed
//! sets, `kind` = timeout | unavailable | protocol | deadline | breaker_open |
//! cancelled):
//! - a store client's own call (`store` = the store's name, `op` its command):
//!   `pricing_store_requests_total{store,op}`,
//!   `pricing_store_errors_total{store,op,kind}`,
//!   `pricing_store_latency_seconds{store,op}`;
//! - a read at one cluster of a pair (`pair`, `cluster` = the cluster store's
//!   name): `pricing_dual_requests_total`, `pricing_dual_errors_total{kind}`,
//!   `pricing_dual_latency_seconds`;
//! - a write at one cluster of a pair: `pricing_dual_write_requests_total`,
//!   `pricing_dual_write_errors_total{kind}`, `pricing_dual_write_latency_seconds`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use crate::{StoreError, StoreErrorKind};

/// The metric label of an error kind.
pub fn kind_label(kind: StoreErrorKind) -> &'static str {
    match kind {
        StoreErrorKind::Timeout => "timeout",
        StoreErrorKind::Unavailable => "unavailable",
        StoreErrorKind::Protocol => "protocol",
        StoreErrorKind::DeadlineExceeded => "deadline",
    }
}

/// The metric names of one kind of store call.
#[derive(Debug)]
pub struct Family {
    requests: &'static str,
    errors: &'static str,
    latency: &'static str,
}

/// A store client's own call: labels `store`, `op`.
pub static STORE: Family = Family {
    requests: "pricing_store_requests_total",
    errors: "pricing_store_errors_total",
    latency: "pricing_store_latency_seconds",
};

/// A read at one cluster of a pair: labels `pair`, `cluster`.
pub static PAIR_READ: Family = Family {
    requests: "pricing_dual_requests_total",
    errors: "pricing_dual_errors_total",
    latency: "pricing_dual_latency_seconds",
};

/// A write at one cluster of a pair: labels `pair`, `cluster`.
pub static PAIR_WRITE: Family = Family {
    requests: "pricing_dual_write_requests_total",
    errors: "pricing_dual_write_errors_total",
    latency: "pricing_dual_write_latency_seconds",
};

/// Who a call's metrics are labelled with.
#[derive(Debug, Clone)]
enum Labels {
    Store { store: Arc<str>, op: &'static str },
    Pair { pair: Arc<str>, cluster: Arc<str> },
}

impl Labels {
    fn pairs(&self) -> [(&'static str, String); 2] {
        match self {
            Labels::Store { store, op } => [("store", store.to_string()), ("op", (*op).to_owned())],
            Labels::Pair { pair, cluster } => [("pair", pair.to_string()), ("cluster", cluster.to_string())],
        }
    }

    fn store(&self) -> &str {
        match self {
            Labels::Store { store, .. } => store,
            Labels::Pair { cluster, .. } => cluster,
        }
    }
}

fn labels(pairs: [(&'static str, String); 2]) -> Vec<metrics::Label> {
    pairs.into_iter().map(|(k, v)| metrics::Label::new(k, v)).collect()
}

/// One store call in flight. [`StoreCall::finish`] records its outcome;
/// dropped unfinished, it is counted as `kind = "cancelled"` with the time it
/// ran, so a call cut off by a timeout above the store still shows up at the
/// store.
#[must_use = "finish the call with its result"]
pub struct StoreCall {
    family: &'static Family,
    labels: Labels,
    op: &'static str,
    started: Instant,
    finished: bool,
}

impl StoreCall {
    /// Counts the request of a store client's own call and starts its clock.
    pub fn start(store: &str, op: &'static str) -> StoreCall {
        StoreCall::begin(&STORE, Labels::Store { store: Arc::from(store), op }, op)
    }

    /// Counts a call at `cluster` of `pair` in `family` ([`PAIR_READ`] or
    /// [`PAIR_WRITE`]) and starts its clock.
    pub fn start_at_cluster(family: &'static Family, pair: Arc<str>, cluster: Arc<str>, op: &'static str) -> StoreCall {
        StoreCall::begin(family, Labels::Pair { pair, cluster }, op)
    }

    fn begin(family: &'static Family, labels: Labels, op: &'static str) -> StoreCall {
        metrics::counter!(family.requests, self::labels(labels.pairs())).increment(1);
        StoreCall { family, labels, op, started: Instant::now(), finished: false }
    }

    /// Records latency and, on error, the error's kind; returns the elapsed time.
    pub fn finish<T>(self, result: &Result<T, StoreError>) -> Duration {
        match result {
            Ok(_) => self.end(None),
            Err(error) => self.end(Some((kind_label(error.kind), error))),
        }
    }

    /// Records the call's latency and, on error, `kind` (a label of the
    /// fixed set in the module doc); failures are logged at a bounded rate.
    pub fn end(mut self, error: Option<(&'static str, &StoreError)>) -> Duration {
        self.finished = true;
        let elapsed = self.record(error.map(|(kind, _)| kind), true);
        if let Some((kind, error)) = error {
            STORE_FAILURES.note(|suppressed| {
                tracing::warn!(store = self.labels.store(), op = self.op, kind,
                    elapsed_ms = elapsed.as_millis() as u64, suppressed, message = %error.message, "store call failed");
            });
        }
        elapsed
    }

    /// Counts a call that was never sent (a breaker refused it, the
    /// caller's deadline had passed): the error kind, no latency, no log
    /// line (the refusal is the breaker's, logged when it opened).
    pub fn refused(mut self, kind: &'static str) {
        self.finished = true;
        self.record(Some(kind), false);
    }

    fn record(&self, error: Option<&'static str>, timed: bool) -> Duration {
        let elapsed = self.started.elapsed();
        if timed {
            metrics::histogram!(self.family.latency, labels(self.labels.pairs())).record(elapsed.as_secs_f64());
        }
        if let Some(kind) = error {
            let mut labels = labels(self.labels.pairs());
            labels.push(metrics::Label::new("kind", kind));
            metrics::counter!(self.family.errors, labels).increment(1);
        }
        elapsed
    }
}

impl Drop for StoreCall {
    fn drop(&mut self) {
        if !self.finished {
            self.record(Some("cancelled"), true);
        }
    }
}

/// Logs through a [`LogThrottle`] of its own call site (one line per
/// [`LogThrottle::DEFAULT_INTERVAL`]): give it a closure that takes the
/// count of lines held back and writes the line.
///
/// ```
/// pricing_store::throttled!(|suppressed| tracing::warn!(suppressed, "tier failed"));
/// ```
#[macro_export]
macro_rules! throttled {
    ($log:expr) => {{
        static THROTTLE: ::std::sync::LazyLock<$crate::LogThrottle> =
            ::std::sync::LazyLock::new(|| $crate::LogThrottle::new($crate::LogThrottle::DEFAULT_INTERVAL));
        THROTTLE.note($log);
    }};
}

/// Failed store calls, every store: one line per interval.
static STORE_FAILURES: LazyLock<LogThrottle> = LazyLock::new(|| LogThrottle::new(LogThrottle::DEFAULT_INTERVAL));

/// Lets one log line through per interval and counts the rest; the next line
/// let through carries that count (`suppressed`), which makes it the
/// periodic summary. Lock-free: two atomics.
pub struct LogThrottle {
    interval_ms: u64,
    origin: Instant,
    /// Milliseconds since `origin` of the last line let through, plus one (0: never).
    last: AtomicU64,
    suppressed: AtomicU64,
}

impl LogThrottle {
    /// Five seconds: a failing store is reported a dozen times a minute.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

    pub fn new(interval: Duration) -> LogThrottle {
        LogThrottle {
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            origin: Instant::now(),
            last: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Calls `log` with the number of events held back since the last line
    /// if a line is due, otherwise counts this event as held back.
    pub fn note(&self, log: impl FnOnce(u64)) {
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1;
        let last = self.last.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= self.interval_ms;
        if due && self.last.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            log(self.suppressed.swap(0, Ordering::Relaxed));
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_lets_one_line_through_per_interval_and_counts_the_rest() {
        let throttle = LogThrottle::new(Duration::from_secs(3600));
        let mut lines = Vec::new();
        for _ in 0..100 {
            throttle.note(|suppressed| lines.push(suppressed));
        }
        assert_eq!(lines, vec![0], "the first event logs, the next 99 are held back");
        assert_eq!(throttle.suppressed.load(Ordering::Relaxed), 99);

        let every_time = LogThrottle::new(Duration::ZERO);
        let mut count = 0;
        for _ in 0..5 {
            every_time.note(|_| count += 1);
        }
        assert_eq!(count, 5, "a zero interval logs every event");
    }

    #[test]
    fn a_dropped_call_is_counted_as_cancelled() {
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            let call = StoreCall::start("test-store", "fetch");
            drop(call);
            let done = StoreCall::start("test-store", "fetch");
            done.finish(&Err::<(), _>(StoreError::timeout("test-store")));
        });
        let kinds: Vec<String> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| key.key().name() == "pricing_store_errors_total")
            .filter_map(|(key, ..)| key.key().labels().find(|l| l.key() == "kind").map(|l| l.value().to_owned()))
            .collect();
        assert!(kinds.contains(&"cancelled".to_owned()), "{kinds:?}");
        assert!(kinds.contains(&"timeout".to_owned()), "{kinds:?}");
    }
}
