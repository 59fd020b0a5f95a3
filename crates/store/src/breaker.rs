//! A Sentinel-style circuit breaker: error ratio and slow-call ratio over a
//! sliding window, an open period, then half-open probes.
//!
//! Closed: every call is admitted and its outcome counted in the bucket of the
//! current time slice. When the window holds at least `min_calls` calls and
//! either the error ratio reaches `error_percent` or the ratio of calls slower
//! than `slow_call` reaches `slow_percent`, the breaker opens; it also opens
//! after `consecutive_failures` failed calls in a row, whatever the window
//! holds (a cluster that dies after a healthy stretch would otherwise be
//! called until its failures outweigh the window's earlier successes: about
//! 1,800 calls in one measured kill). Open: calls are
//! refused for `open_for`. Then the first `half_open_probes` calls are
//! admitted as probes; when all of them succeed in time the breaker closes with
//! a fresh window, the first failed or slow probe opens it again.
//!
//! A permit that is dropped without a recorded outcome (the caller was
//! cancelled, e.g. its own deadline passed) is neutral: a cancellation says
//! nothing about the store. A dropped probe hands its probe slot back so that
//! the breaker cannot stay half-open forever. Callers that put their own
//! timeout around the call record the timeout as a failure (the dual store
//! does).
//!
//! Cost: the closed path is one atomic load to admit, and a few relaxed atomic
//! additions plus a scan of the buckets to record; a mutex is taken only while
//! open or half-open, and on a transition. Counts are statistics: an addition
//! racing with the reset of a bucket at a slice boundary may be lost, which
//! moves a ratio by one call at most.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::settings::{SettingsError, millis, percent, positive};

/// When a breaker opens and how it recovers. Lives in the control config
/// (per store cluster); percents are whole numbers so that the trip check is
/// exact integer arithmetic on the hot path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSettings {
    /// Length of the sliding window the ratios are computed over.
    #[serde(rename = "window_ms", with = "millis")]
    pub window: Duration,
    /// How many slices the window is cut into; it slides by one slice.
    pub buckets: u16,
    /// Fewer calls than this in the window never open the breaker.
    pub min_calls: u32,
    /// Opens at this share of failed calls, in percent; 0 disables the rule.
    pub error_percent: u8,
    /// Opens at this share of slow calls, in percent; 0 disables the rule.
    pub slow_percent: u8,
    /// A call that takes longer than this is slow.
    #[serde(rename = "slow_call_ms", with = "millis")]
    pub slow_call: Duration,
    /// How long the breaker refuses calls once open.
    #[serde(rename = "open_for_ms", with = "millis")]
    pub open_for: Duration,
    /// Probe calls admitted when half-open; all must succeed in time to close.
    pub half_open_probes: u32,
    /// Opens after this many failed calls in a row (any success resets the
    /// count), without waiting for the window's ratio; 0 disables the rule.
    pub consecutive_failures: u32,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            window: Duration::from_secs(10),
            buckets: 10,
            min_calls: 20,
            error_percent: 50,
            slow_percent: 80,
            slow_call: Duration::from_millis(100),
            open_for: Duration::from_secs(5),
            half_open_probes: 3,
            consecutive_failures: 20,
        }
    }
}

impl BreakerSettings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        positive("window_ms", self.window)?;
        positive("open_for_ms", self.open_for)?;
        if self.buckets == 0 {
            return Err(SettingsError::new("buckets", "must be at least 1"));
        }
        if self.window < Duration::from_millis(u64::from(self.buckets)) {
            return Err(SettingsError::new("buckets", "a bucket must span at least 1 ms of the window"));
        }
        percent("error_percent", self.error_percent)?;
        percent("slow_percent", self.slow_percent)?;
        if self.half_open_probes == 0 {
            return Err(SettingsError::new("half_open_probes", "must be at least 1"));
        }
        Ok(())
    }
}

/// Where a breaker is; the gauge `pricing_breaker_state{name}` holds the
/// numeric value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum BreakerState {
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
}

impl BreakerState {
    fn from_u8(v: u8) -> BreakerState {
        match v {
            0 => BreakerState::Closed,
            1 => BreakerState::Open,
            _ => BreakerState::HalfOpen,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// How a guarded call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

/// The breaker refused the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker open, retry after {retry_after:?}")]
pub struct Open {
    /// Time left until probes are admitted; zero when half-open with every
    /// probe slot taken.
    pub retry_after: Duration,
}

/// One circuit breaker. Share it by reference (it is `Sync`); a permit
/// borrows it for the length of one call.
pub struct Breaker {
    name: String,
    origin: Instant,
    /// The state as the hot path reads it; written only under `control`.
    state: AtomicU8,
    /// End of the open period, in nanoseconds since `origin`.
    open_until: AtomicU64,
    /// Failed calls in a row while closed.
    streak: AtomicU32,
    window: ArcSwap<Window>,
    control: Mutex<Control>,
}

struct Control {
    /// Moves on every transition, so that a probe from an earlier half-open
    /// period is not counted in the current one.
    generation: u64,
    probes_issued: u32,
    probes_ok: u32,
}

struct Window {
    settings: BreakerSettings,
    bucket_nanos: u64,
    buckets: Box<[Bucket]>,
}

#[derive(Default)]
struct Bucket {
    /// Time slice index + 1 the counts belong to; 0 = never used.
    slice: AtomicU64,
    calls: AtomicU32,
    errors: AtomicU32,
    slow: AtomicU32,
}

impl Window {
    fn new(settings: BreakerSettings) -> Window {
        let buckets = settings.buckets.max(1);
        let bucket_nanos = u64::try_from(settings.window.as_nanos() / u128::from(buckets)).unwrap_or(u64::MAX).max(1);
        Window { settings, bucket_nanos, buckets: (0..buckets).map(|_| Bucket::default()).collect() }
    }

    fn add(&self, now_nanos: u64, failed: bool, slow: bool) {
        let slice = now_nanos / self.bucket_nanos + 1;
        let bucket = &self.buckets[(slice % self.buckets.len() as u64) as usize];
        let held = bucket.slice.load(Ordering::Acquire);
        if held != slice {
            if held > slice {
                return; // a late record for a slice already reused: drop it
            }
            if bucket.slice.compare_exchange(held, slice, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                bucket.calls.store(0, Ordering::Relaxed);
                bucket.errors.store(0, Ordering::Relaxed);
                bucket.slow.store(0, Ordering::Relaxed);
            }
        }
        bucket.calls.fetch_add(1, Ordering::Relaxed);
        if failed {
            bucket.errors.fetch_add(1, Ordering::Relaxed);
        }
        if slow {
            bucket.slow.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// (calls, errors, slow) over the buckets still inside the window.
    fn totals(&self, now_nanos: u64) -> (u64, u64, u64) {
        let current = now_nanos / self.bucket_nanos + 1;
        let oldest = current.saturating_sub(self.buckets.len() as u64 - 1);
        let mut sums = (0u64, 0u64, 0u64);
        for b in self.buckets.iter() {
            let slice = b.slice.load(Ordering::Acquire);
            if slice >= oldest && slice <= current && slice != 0 {
                sums.0 += u64::from(b.calls.load(Ordering::Relaxed));
                sums.1 += u64::from(b.errors.load(Ordering::Relaxed));
                sums.2 += u64::from(b.slow.load(Ordering::Relaxed));
            }
        }
        sums
    }

    fn reset(&self) {
        for b in self.buckets.iter() {
            b.slice.store(0, Ordering::Release);
            b.calls.store(0, Ordering::Relaxed);
            b.errors.store(0, Ordering::Relaxed);
            b.slow.store(0, Ordering::Relaxed);
        }
    }

    /// Which rule trips, if any.
    fn trips(&self, (calls, errors, slow): (u64, u64, u64)) -> Option<&'static str> {
        let s = &self.settings;
        if calls == 0 || calls < u64::from(s.min_calls) {
            return None;
        }
        if s.error_percent > 0 && errors * 100 >= u64::from(s.error_percent) * calls {
            return Some("error_ratio");
        }
        if s.slow_percent > 0 && slow * 100 >= u64::from(s.slow_percent) * calls {
            return Some("slow_ratio");
        }
        None
    }
}

impl Breaker {
    /// A closed breaker. `name` labels the gauge and the log lines
    /// ("redis-a"). Settings are taken as given; validate them first.
    pub fn new(name: impl Into<String>, settings: BreakerSettings) -> Breaker {
        let breaker = Breaker {
            name: name.into(),
            origin: Instant::now(),
            state: AtomicU8::new(BreakerState::Closed as u8),
            open_until: AtomicU64::new(0),
            streak: AtomicU32::new(0),
            window: ArcSwap::from_pointee(Window::new(settings)),
            control: Mutex::new(Control { generation: 0, probes_issued: 0, probes_ok: 0 }),
        };
        breaker.publish_state(BreakerState::Closed);
        breaker
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn state(&self) -> BreakerState {
        BreakerState::from_u8(self.state.load(Ordering::Acquire))
    }

    pub fn settings(&self) -> BreakerSettings {
        self.window.load().settings.clone()
    }

    /// Applies new settings with a fresh window when they differ from the
    /// current ones; the state (open, half-open) is kept. Cheap when equal,
    /// so a combinator may call it with its live settings on every call.
    pub fn ensure_settings(&self, settings: &BreakerSettings) {
        if self.window.load().settings != *settings {
            tracing::info!(breaker = %self.name, ?settings, "breaker settings changed");
            self.window.store(std::sync::Arc::new(Window::new(settings.clone())));
        }
    }

    /// Admits a call or refuses it.
    pub fn try_acquire(&self) -> Result<Permit<'_>, Open> {
        let now = Instant::now();
        match self.state.load(Ordering::Acquire) {
            s if s == BreakerState::Closed as u8 => Ok(Permit::new(self, Kind::Normal, now)),
            s if s == BreakerState::Open as u8 => {
                let until = self.open_until.load(Ordering::Acquire);
                let at = self.nanos(now);
                if at < until {
                    Err(Open { retry_after: Duration::from_nanos(until - at) })
                } else {
                    self.acquire_slow(now)
                }
            }
            _ => self.acquire_slow(now),
        }
    }

    fn acquire_slow(&self, now: Instant) -> Result<Permit<'_>, Open> {
        let mut control = self.lock();
        let mut state = self.state();
        if state == BreakerState::Open {
            let until = self.open_until.load(Ordering::Acquire);
            let at = self.nanos(now);
            if at < until {
                return Err(Open { retry_after: Duration::from_nanos(until - at) });
            }
            control.probes_issued = 0;
            control.probes_ok = 0;
            self.transition(&mut control, BreakerState::HalfOpen, "open period over");
            state = BreakerState::HalfOpen;
        }
        match state {
            BreakerState::Closed => Ok(Permit::new(self, Kind::Normal, now)),
            _ => {
                let probes = self.window.load().settings.half_open_probes.max(1);
                if control.probes_issued < probes {
                    control.probes_issued += 1;
                    Ok(Permit::new(self, Kind::Probe(control.generation), now))
                } else {
                    Err(Open { retry_after: Duration::ZERO })
                }
            }
        }
    }

    fn record(&self, kind: Kind, outcome: Outcome, latency: Duration) {
        let window = self.window.load();
        let slow = latency > window.settings.slow_call;
        let failed = outcome == Outcome::Failure;
        match kind {
            Kind::Normal => {
                if self.state.load(Ordering::Acquire) != BreakerState::Closed as u8 {
                    return; // admitted before the breaker opened: not part of any window now
                }
                let at = self.nanos(Instant::now());
                window.add(at, failed, slow);
                let totals = window.totals(at);
                let in_a_row = if failed {
                    self.streak.fetch_add(1, Ordering::Relaxed).saturating_add(1)
                } else {
                    // Only written when there is a streak to end: the healthy
                    // path stays a load.
                    if self.streak.load(Ordering::Relaxed) != 0 {
                        self.streak.store(0, Ordering::Relaxed);
                    }
                    0
                };
                let threshold = window.settings.consecutive_failures;
                let rule = if threshold > 0 && in_a_row >= threshold {
                    Some("consecutive_failures")
                } else {
                    window.trips(totals)
                };
                if let Some(rule) = rule {
                    let mut control = self.lock();
                    if self.state() == BreakerState::Closed {
                        tracing::warn!(
                            breaker = %self.name,
                            rule,
                            calls = totals.0,
                            errors = totals.1,
                            slow = totals.2,
                            in_a_row,
                            "breaker trips"
                        );
                        self.open(&mut control, window.settings.open_for, rule);
                    }
                }
            }
            Kind::Probe(generation) => {
                let mut control = self.lock();
                if control.generation != generation || self.state() != BreakerState::HalfOpen {
                    return;
                }
                if failed || slow {
                    let reason = if failed { "probe failed" } else { "probe slow" };
                    self.open(&mut control, window.settings.open_for, reason);
                } else {
                    control.probes_ok += 1;
                    if control.probes_ok >= window.settings.half_open_probes.max(1) {
                        window.reset();
                        self.transition(&mut control, BreakerState::Closed, "probes succeeded");
                    }
                }
            }
        }
    }

    fn release_probe(&self, generation: u64) {
        let mut control = self.lock();
        if control.generation == generation && self.state() == BreakerState::HalfOpen {
            control.probes_issued = control.probes_issued.saturating_sub(1);
        }
    }

    fn open(&self, control: &mut Control, open_for: Duration, reason: &'static str) {
        let until = self.nanos(Instant::now()).saturating_add(u64::try_from(open_for.as_nanos()).unwrap_or(u64::MAX));
        self.open_until.store(until, Ordering::Release);
        self.transition(control, BreakerState::Open, reason);
    }

    fn transition(&self, control: &mut Control, to: BreakerState, reason: &'static str) {
        let from = self.state();
        control.generation += 1;
        self.streak.store(0, Ordering::Relaxed);
        self.state.store(to as u8, Ordering::Release);
        self.publish_state(to);
        match to {
            BreakerState::Open => {
                tracing::warn!(breaker = %self.name, from = from.as_str(), to = to.as_str(), reason, "breaker state change")
            }
            _ => {
                tracing::info!(breaker = %self.name, from = from.as_str(), to = to.as_str(), reason, "breaker state change")
            }
        }
    }

    fn publish_state(&self, state: BreakerState) {
        metrics::gauge!("pricing_breaker_state", "name" => self.name.clone()).set(f64::from(state as u8));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Control> {
        // The guarded data is a few counters that are valid whatever a
        // panicking holder left, so a poisoned lock is used as is.
        self.control.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }
}

impl std::fmt::Debug for Breaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Breaker").field("name", &self.name).field("state", &self.state()).finish()
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Normal,
    Probe(u64),
}

/// Leave to make one call; report how it went with [`Permit::record`] or
/// [`Permit::finish`]. Dropping it unrecorded is neutral (see the module doc).
#[must_use = "record the outcome of the call, or the call is not counted"]
pub struct Permit<'a> {
    breaker: &'a Breaker,
    kind: Kind,
    started: Instant,
    recorded: bool,
}

impl<'a> Permit<'a> {
    fn new(breaker: &'a Breaker, kind: Kind, started: Instant) -> Permit<'a> {
        Permit { breaker, kind, started, recorded: false }
    }

    /// True when this call is a half-open probe.
    pub fn is_probe(&self) -> bool {
        matches!(self.kind, Kind::Probe(_))
    }

    /// Records the call's outcome with a latency the caller measured.
    pub fn record(mut self, outcome: Outcome, latency: Duration) {
        self.recorded = true;
        self.breaker.record(self.kind, outcome, latency);
    }

    /// Records the call's outcome, with the time since the permit was given
    /// as its latency. Returns that latency.
    pub fn finish(self, outcome: Outcome) -> Duration {
        let latency = self.started.elapsed();
        self.record(outcome, latency);
        latency
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if let (false, Kind::Probe(generation)) = (self.recorded, self.kind) {
            self.breaker.release_probe(generation);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BreakerSettings {
        BreakerSettings {
            window: Duration::from_secs(10),
            buckets: 10,
            min_calls: 10,
            error_percent: 50,
            slow_percent: 50,
            slow_call: Duration::from_millis(100),
            open_for: Duration::from_secs(5),
            half_open_probes: 2,
            consecutive_failures: 0,
        }
    }

    const FAST: Duration = Duration::from_millis(1);
    const SLOW: Duration = Duration::from_millis(500);

    fn calls(b: &Breaker, n: usize, outcome: Outcome, latency: Duration) {
        for _ in 0..n {
            b.try_acquire().expect("admitted").record(outcome, latency);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn opens_on_error_ratio() {
        let b = Breaker::new("t", settings());
        calls(&b, 5, Outcome::Success, FAST);
        calls(&b, 4, Outcome::Failure, FAST);
        assert_eq!(b.state(), BreakerState::Closed, "9 calls are below min_calls");
        calls(&b, 1, Outcome::Failure, FAST);
        assert_eq!(b.state(), BreakerState::Open, "5 of 10 failed = 50%");
        let refused = b.try_acquire().err().expect("open breaker refuses");
        assert_eq!(refused.retry_after, Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn opens_on_failures_in_a_row_after_a_healthy_stretch() {
        let b = Breaker::new("t", BreakerSettings { consecutive_failures: 5, ..settings() });
        calls(&b, 1000, Outcome::Success, FAST);
        calls(&b, 4, Outcome::Failure, FAST);
        calls(&b, 1, Outcome::Success, FAST);
        calls(&b, 4, Outcome::Failure, FAST);
        assert_eq!(b.state(), BreakerState::Closed, "a success ends the streak; 8 of 1009 failed is far below 50%");
        calls(&b, 1, Outcome::Failure, FAST);
        assert_eq!(b.state(), BreakerState::Open, "5 failures in a row");
        // After recovery the count starts again from zero.
        tokio::time::advance(Duration::from_secs(5)).await;
        calls(&b, 2, Outcome::Success, FAST);
        assert_eq!(b.state(), BreakerState::Closed, "probes succeeded");
        calls(&b, 4, Outcome::Failure, FAST);
        assert_eq!(b.state(), BreakerState::Closed, "4 in a row after closing");
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_rule_alone_needs_the_ratio() {
        // The same kill with the rule off: 1,000 healthy calls in the window
        // keep the breaker closed through 999 failures.
        let b = Breaker::new("t", settings());
        calls(&b, 1000, Outcome::Success, FAST);
        calls(&b, 999, Outcome::Failure, FAST);
        assert_eq!(b.state(), BreakerState::Closed);
        calls(&b, 1, Outcome::Failure, FAST);
        assert_eq!(b.state(), BreakerState::Open, "1,000 of 2,000 = 50%");
    }

    #[tokio::test(start_paused = true)]
    async fn opens_on_slow_call_ratio() {
        let b = Breaker::new("t", settings());
        calls(&b, 5, Outcome::Success, FAST);
        calls(&b, 4, Outcome::Success, SLOW);
        calls(&b, 1, Outcome::Success, Duration::from_millis(100));
        assert_eq!(b.state(), BreakerState::Closed, "exactly slow_call is not slow; 4 of 10 slow");
        calls(&b, 2, Outcome::Success, SLOW);
        assert_eq!(b.state(), BreakerState::Open, "6 of 12 slow = 50%");
    }

    #[tokio::test(start_paused = true)]
    async fn does_not_open_below_min_calls() {
        let b = Breaker::new("t", settings());
        calls(&b, 9, Outcome::Failure, SLOW);
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.try_acquire().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn old_buckets_slide_out_of_the_window() {
        let b = Breaker::new("t", settings());
        calls(&b, 9, Outcome::Failure, FAST);
        tokio::time::advance(Duration::from_secs(11)).await;
        calls(&b, 1, Outcome::Failure, FAST);
        assert_eq!(b.state(), BreakerState::Closed, "the 9 earlier failures left the window");
        calls(&b, 8, Outcome::Failure, FAST);
        assert_eq!(b.state(), BreakerState::Closed);
        calls(&b, 1, Outcome::Failure, FAST);
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn recovers_through_half_open() {
        let b = Breaker::new("t", settings());
        calls(&b, 10, Outcome::Failure, FAST);
        assert_eq!(b.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_millis(4_999)).await;
        assert!(b.try_acquire().is_err(), "still open before open_for");
        tokio::time::advance(Duration::from_millis(1)).await;
        let p1 = b.try_acquire().expect("first probe");
        let p2 = b.try_acquire().expect("second probe");
        assert!(p1.is_probe() && p2.is_probe());
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(b.try_acquire().err().map(|o| o.retry_after), Some(Duration::ZERO), "only 2 probes");
        p1.record(Outcome::Success, FAST);
        assert_eq!(b.state(), BreakerState::HalfOpen, "one probe is not enough");
        p2.record(Outcome::Success, FAST);
        assert_eq!(b.state(), BreakerState::Closed);
        // The window starts fresh: the failures before opening are forgotten.
        calls(&b, 4, Outcome::Failure, FAST);
        calls(&b, 6, Outcome::Success, FAST);
        assert_eq!(b.state(), BreakerState::Closed, "4 of 10 failed since closing");
    }

    #[tokio::test(start_paused = true)]
    async fn reopens_on_a_failed_or_slow_probe() {
        let b = Breaker::new("t", settings());
        calls(&b, 10, Outcome::Failure, FAST);
        tokio::time::advance(Duration::from_secs(5)).await;
        let p1 = b.try_acquire().expect("probe");
        let p2 = b.try_acquire().expect("probe");
        p1.record(Outcome::Success, FAST);
        p2.record(Outcome::Failure, FAST);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.try_acquire().err().map(|o| o.retry_after), Some(Duration::from_secs(5)));

        tokio::time::advance(Duration::from_secs(5)).await;
        b.try_acquire().expect("probe").record(Outcome::Success, SLOW);
        assert_eq!(b.state(), BreakerState::Open, "a slow probe reopens");
    }

    #[tokio::test(start_paused = true)]
    async fn dropped_probe_hands_its_slot_back_and_dropped_call_is_neutral() {
        let mut s = settings();
        s.half_open_probes = 1;
        let b = Breaker::new("t", s);
        for _ in 0..20 {
            drop(b.try_acquire().expect("admitted"));
        }
        assert_eq!(b.state(), BreakerState::Closed, "dropped permits count nothing");
        calls(&b, 10, Outcome::Failure, FAST);
        tokio::time::advance(Duration::from_secs(5)).await;
        let probe = b.try_acquire().expect("probe");
        assert!(b.try_acquire().is_err());
        drop(probe);
        b.try_acquire().expect("slot handed back").record(Outcome::Success, FAST);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_record_from_before_opening_is_ignored() {
        let b = Breaker::new("t", settings());
        let late = b.try_acquire().expect("admitted");
        calls(&b, 10, Outcome::Failure, FAST);
        tokio::time::advance(Duration::from_secs(5)).await;
        let probe = b.try_acquire().expect("probe");
        late.record(Outcome::Success, FAST);
        assert_eq!(b.state(), BreakerState::HalfOpen, "a normal call does not count as a probe");
        probe.record(Outcome::Success, FAST);
        b.try_acquire().expect("probe").record(Outcome::Success, FAST);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_percent_disables_a_rule_and_settings_apply_live() {
        let mut s = settings();
        s.slow_percent = 0;
        let b = Breaker::new("t", s.clone());
        calls(&b, 20, Outcome::Success, SLOW);
        assert_eq!(b.state(), BreakerState::Closed, "slow rule disabled");
        s.slow_percent = 50;
        b.ensure_settings(&s);
        assert_eq!(b.settings(), s);
        calls(&b, 10, Outcome::Success, SLOW);
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn settings_parse_with_defaults_and_reject_unknown_keys() {
        let s: BreakerSettings =
            serde_json::from_str(r#"{"window_ms": 2000, "buckets": 4, "error_percent": 30}"#).unwrap();
        assert_eq!(s.window, Duration::from_secs(2));
        assert_eq!(s.buckets, 4);
        assert_eq!(s.error_percent, 30);
        assert_eq!(s.open_for, BreakerSettings::default().open_for);
        s.validate().unwrap();
        let err = serde_json::from_str::<BreakerSettings>(r#"{"window": 2000}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        let bad = BreakerSettings { error_percent: 101, ..BreakerSettings::default() };
        assert_eq!(bad.validate().unwrap_err().field, "error_percent");
        let bad = BreakerSettings { half_open_probes: 0, ..BreakerSettings::default() };
        assert_eq!(bad.validate().unwrap_err().field, "half_open_probes");
    }
}
