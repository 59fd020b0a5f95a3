//! Open-loop arithmetic: when call `i` is due, and how many calls a bounded
//! run schedules. Integer nanoseconds, so call 1,000,000 at 3,000/s is due
//! at exactly 333.333333 s, with no drift from adding up float intervals.

use std::time::Duration;

/// The offset from the start at which call `i` (0-based) is due at `rate` calls/s.
pub fn due(i: u64, rate: u64) -> Duration {
    assert!(rate > 0, "scenario validation keeps the rate above 0");
    let nanos = u128::from(i) * 1_000_000_000 / u128::from(rate);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// How many calls fall due within `duration` (those with `due(i) < duration`),
/// capped by `max_requests` when given.
pub fn scheduled(rate: u64, duration: Option<Duration>, max_requests: Option<u64>) -> Option<u64> {
    // due(n) = floor(n * 1e9 / rate) >= d exactly when n * 1e9 / rate >= d
    // (d is whole nanoseconds), so the count below d is ceil(d * rate / 1e9).
    let by_time =
        duration.map(|d| u64::try_from((d.as_nanos() * u128::from(rate)).div_ceil(1_000_000_000)).unwrap_or(u64::MAX));
    match (by_time, max_requests) {
        (Some(t), Some(m)) => Some(t.min(m)),
        (t, m) => t.or(m),
    }
}

/// How late call `i` is at `elapsed` since the start (zero when early).
pub fn lag(i: u64, rate: u64, elapsed: Duration) -> Duration {
    elapsed.saturating_sub(due(i, rate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_evenly_spaced() {
        assert_eq!(due(0, 1_000), Duration::ZERO);
        assert_eq!(due(1, 1_000), Duration::from_millis(1));
        assert_eq!(due(1_500, 1_000), Duration::from_millis(1_500));
        assert_eq!(due(1, 3), Duration::from_nanos(333_333_333));
        assert_eq!(due(3, 3), Duration::from_secs(1));
        // No drift over a long run.
        assert_eq!(due(3_000_000, 3_000), Duration::from_secs(1_000));
        assert_eq!(due(1_000_000, 3_000), Duration::from_nanos(333_333_333_333));
    }

    #[test]
    fn a_bounded_run_schedules_rate_times_duration() {
        assert_eq!(scheduled(1_000, Some(Duration::from_secs(15)), None), Some(15_000));
        assert_eq!(scheduled(3, Some(Duration::from_secs(1)), None), Some(3));
        assert_eq!(scheduled(7, Some(Duration::from_millis(1_000)), None), Some(7));
        assert_eq!(scheduled(4_500, Some(Duration::from_millis(10)), None), Some(45));
        assert_eq!(scheduled(1_000, Some(Duration::from_secs(15)), Some(100)), Some(100));
        assert_eq!(scheduled(1_000, None, Some(100)), Some(100));
        assert_eq!(scheduled(1_000, None, None), None);
        // Agrees with `due` at the edge for awkward rates.
        for rate in [1, 3, 7, 999, 1_001, 4_500] {
            let d = Duration::from_millis(1_234);
            let n = scheduled(rate, Some(d), None).unwrap();
            assert!(n == 0 || due(n - 1, rate) < d, "rate {rate}: call {} is past the end", n - 1);
            assert!(due(n, rate) >= d, "rate {rate}: call {n} still falls inside");
        }
    }

    #[test]
    fn lag_counts_only_lateness() {
        assert_eq!(lag(10, 1_000, Duration::from_millis(5)), Duration::ZERO);
        assert_eq!(lag(10, 1_000, Duration::from_millis(25)), Duration::from_millis(15));
    }
}
