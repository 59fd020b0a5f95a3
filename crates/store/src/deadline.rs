//! When the caller stops waiting: carried from the gRPC handler down to every
//! store call, so that a store's own timeout is cut to what the caller has
//! left (docs/CONTROL.md: "the call's own deadline may cut it shorter").
//!
//! `pricing-traffic` turns `grpc-timeout` into a [`Deadline`]; the tier chain,
//! the dual store and the store guard read it. A [`tokio::time::Instant`], so
//! that paused-time tests move it.

use std::time::Duration;

use tokio::time::Instant;

/// The instant the caller gives up on a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline {
    at: Instant,
}

impl Deadline {
    pub fn at(at: Instant) -> Deadline {
        Deadline { at }
    }

    /// `timeout` from now. A timeout too large to add to the clock (a
    /// `grpc-timeout` of thousands of hours) is as good as none: a year.
    pub fn after(timeout: Duration) -> Deadline {
        const FAR: Duration = Duration::from_secs(365 * 24 * 3600);
        let now = Instant::now();
        let at = now.checked_add(timeout).or_else(|| now.checked_add(FAR)).unwrap_or(now);
        Deadline { at }
    }

    pub fn instant(&self) -> Instant {
        self.at
    }

    /// Time left; zero once passed.
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    pub fn is_expired(&self) -> bool {
        self.remaining().is_zero()
    }

    /// The budget of a call whose own timeout is `own`: min(own, remaining).
    pub fn budget(&self, own: Duration) -> Duration {
        own.min(self.remaining())
    }

    /// The same deadline `reserve` earlier: the time a server keeps to
    /// answer after its stores gave up (never before now).
    pub fn earlier_by(&self, reserve: Duration) -> Deadline {
        let now = Instant::now();
        let at = self.at.checked_sub(reserve).unwrap_or(now).max(now.min(self.at));
        Deadline { at }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn remaining_budget_and_reserve() {
        let deadline = Deadline::after(Duration::from_millis(80));
        assert_eq!(deadline.remaining(), Duration::from_millis(80));
        assert_eq!(deadline.budget(Duration::from_millis(50)), Duration::from_millis(50));
        assert_eq!(deadline.earlier_by(Duration::from_millis(5)).remaining(), Duration::from_millis(75));
        assert_eq!(deadline.earlier_by(Duration::from_secs(1)).remaining(), Duration::ZERO, "never before now");
        tokio::time::advance(Duration::from_millis(60)).await;
        assert_eq!(deadline.budget(Duration::from_millis(50)), Duration::from_millis(20));
        tokio::time::advance(Duration::from_millis(30)).await;
        assert!(deadline.is_expired());
        assert!(!Deadline::after(Duration::MAX).is_expired(), "a huge timeout is no deadline");
    }
}
