//! A token bucket (GCRA, from governor) on tokio's clock, so that rates are
//! tested with paused time and share the clock of the rest of the server.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

/// Elapsed tokio time since the limiter was built.
#[derive(Debug, Clone)]
pub(crate) struct TokioClock {
    origin: tokio::time::Instant,
}

impl Clock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// `rate_per_second` sustained, `burst` at once.
pub(crate) struct RateLimit {
    limiter: RateLimiter<NotKeyed, InMemoryState, TokioClock, governor::middleware::NoOpMiddleware<Duration>>,
    clock: TokioClock,
}

impl RateLimit {
    /// Zero values are raised to 1: validation refuses them, this keeps the
    /// limiter total anyway.
    pub(crate) fn new(rate_per_second: u32, burst: u32) -> RateLimit {
        let one = NonZeroU32::MIN;
        let rate = NonZeroU32::new(rate_per_second).unwrap_or(one);
        let burst = NonZeroU32::new(burst).unwrap_or(one);
        let clock = TokioClock { origin: tokio::time::Instant::now() };
        let quota = Quota::per_second(rate).allow_burst(burst);
        RateLimit { limiter: RateLimiter::direct_with_clock(quota, clock.clone()), clock }
    }

    /// Takes one token, or says how long until one is there.
    pub(crate) fn check(&self) -> Result<(), Duration> {
        self.limiter.check().map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_then_the_sustained_rate() {
        let limit = RateLimit::new(10, 3);
        for _ in 0..3 {
            assert!(limit.check().is_ok());
        }
        let wait = limit.check().unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(limit.check().is_ok());
        assert!(limit.check().is_err());
    }
}
