//! "Now": the one definition of the instant prices are evaluated at and
//! rows are stamped with.
//!
//! Every process reads the time through a [`Clock`]: the list and detail
//! servers (their config's `clock`, the system clock unless a test sets
//! one), the projector ([`Clock`] given to `Projector::with_clock`) and the
//! SQL catalogue's writer. Tests drive time with a [`ManualClock`], so a
//! window that opens at T can be checked at T - 1 ms and at T exactly.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::model::UnixMillis;

/// Where "now" comes from. Cheap to clone (the system clock is a unit, a
/// manual one an `Arc`); the default is the system clock.
#[derive(Clone, Default)]
pub struct Clock(Source);

#[derive(Clone, Default)]
enum Source {
    #[default]
    System,
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// The wall clock of this machine.
    pub const fn system() -> Clock {
        Clock(Source::System)
    }

    /// Milliseconds since the Unix epoch, UTC.
    #[inline]
    pub fn now_ms(&self) -> UnixMillis {
        match &self.0 {
            Source::System => system_now_ms(),
            Source::Manual(cell) => cell.load(Ordering::SeqCst),
        }
    }

    pub fn is_system(&self) -> bool {
        matches!(self.0, Source::System)
    }
}

/// The system clock in Unix milliseconds. A wall clock set before 1970
/// reads 0; one beyond the year 292 million reads `i64::MAX`.
fn system_now_ms() -> UnixMillis {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(elapsed) => UnixMillis::try_from(elapsed.as_millis()).unwrap_or(UnixMillis::MAX),
        Err(_) => 0,
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Source::System => f.write_str("Clock::System"),
            Source::Manual(cell) => write!(f, "Clock::Manual({})", cell.load(Ordering::SeqCst)),
        }
    }
}

/// Two clocks are equal when they read the same source: both the system
/// clock, or the same manual clock.
impl PartialEq for Clock {
    fn eq(&self, other: &Clock) -> bool {
        match (&self.0, &other.0) {
            (Source::System, Source::System) => true,
            (Source::Manual(a), Source::Manual(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for Clock {}

/// A clock that moves only when told (tests, seeding at a fixed instant).
/// Its [`ManualClock::clock`] handles all read the same time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(now_ms: UnixMillis) -> ManualClock {
        ManualClock(Arc::new(AtomicI64::new(now_ms)))
    }

    /// A [`Clock`] reading this manual clock.
    pub fn clock(&self) -> Clock {
        Clock(Source::Manual(Arc::clone(&self.0)))
    }

    pub fn now_ms(&self) -> UnixMillis {
        self.0.load(Ordering::SeqCst)
    }

    pub fn set(&self, now_ms: UnixMillis) {
        self.0.store(now_ms, Ordering::SeqCst);
    }

    /// Moves the clock by `delta_ms` (either way), saturating at the ends
    /// of `i64`.
    pub fn advance(&self, delta_ms: i64) {
        // fetch_update with a closure that always returns Some cannot fail.
        let _ = self.0.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| Some(now.saturating_add(delta_ms)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clocks_move_only_when_told() {
        let manual = ManualClock::new(1_000);
        let clock = manual.clock();
        assert_eq!(clock.now_ms(), 1_000);
        manual.set(5_000);
        assert_eq!(clock.now_ms(), 5_000);
        manual.advance(-1);
        assert_eq!(clock.now_ms(), 4_999);
        assert_eq!(clock, manual.clock(), "handles of one manual clock are equal");
        assert_ne!(clock, ManualClock::new(4_999).clock());
        assert_ne!(clock, Clock::system());
    }

    #[test]
    fn the_system_clock_reads_the_wall_clock() {
        let clock = Clock::default();
        assert!(clock.is_system());
        assert_eq!(clock, Clock::system());
        let before = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        let now = u128::try_from(clock.now_ms()).unwrap_or(0);
        assert!(now >= before && now < before + 60_000, "{now} vs {before}");
    }
}
