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
//! Metrics (label `store` = the store's name, `op` from a fixed set):
//! `pricing_store_requests_total{store,op}`,
//! `pricing_store_errors_total{store,op,kind}` (kind = timeout | unavailable |
//! protocol | cancelled), `pricing_store_latency_seconds{store,op}`.

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
    }
}

/// One store call in flight. [`StoreCall::finish`] records its outcome;
/// dropped unfinished, it is counted as `kind = "cancelled"` with the time it
/// ran, so a call cut off by a timeout above the store still shows up at the
/// store.
#[must_use = "finish the call with its result"]
pub struct StoreCall {
    store: Arc<str>,
    op: &'static str,
    started: Instant,
    finished: bool,
}

impl StoreCall {
    /// Counts the request and starts its clock.
    pub fn start(store: &str, op: &'static str) -> StoreCall {
        metrics::counter!("pricing_store_requests_total", "store" => store.to_owned(), "op" => op).increment(1);
        StoreCall { store: Arc::from(store), op, started: Instant::now(), finished: false }
    }

    /// Records latency and, on error, the error's kind; returns the elapsed time.
    pub fn finish<T>(mut self, result: &Result<T, StoreError>) -> Duration {
        self.finished = true;
        let elapsed = self.record(result.as_ref().err().map(|e| kind_label(e.kind)));
        if let Err(error) = result {
            STORE_FAILURES.note(|suppressed| {
                tracing::warn!(store = %self.store, op = self.op, kind = kind_label(error.kind),
                    elapsed_ms = elapsed.as_millis() as u64, suppressed, message = %error.message, "store call failed");
            });
        }
        elapsed
    }

    fn record(&self, error: Option<&'static str>) -> Duration {
        let elapsed = self.started.elapsed();
        metrics::histogram!("pricing_store_latency_seconds", "store" => self.store.to_string(), "op" => self.op)
            .record(elapsed.as_secs_f64());
        if let Some(kind) = error {
            metrics::counter!("pricing_store_errors_total", "store" => self.store.to_string(), "op" => self.op, "kind" => kind)
                .increment(1);
        }
        elapsed
    }
}

impl Drop for StoreCall {
    fn drop(&mut self) {
        if !self.finished {
            self.record(Some("cancelled"));
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
