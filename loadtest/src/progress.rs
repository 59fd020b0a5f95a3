//! The live progress line: once a second on a terminal (rewritten in place
//! on stderr), or a log line every few seconds when stderr is not a
//! terminal (CI, `tee`), or nothing (tests).

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::scenario::{Mode, Scenario};
use crate::schedule;

/// Counters the workers bump and the progress task reads.
#[derive(Debug, Default)]
pub struct Live {
    pub sent: AtomicU64,
    pub done: AtomicU64,
    pub not_ok: AtomicU64,
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Off,
    /// A line on stderr, rewritten every second.
    Terminal,
    /// A log line (tracing) every [`LOG_EVERY`].
    Log,
}

/// How often the log mode writes a line.
pub const LOG_EVERY: Duration = Duration::from_secs(5);

impl Progress {
    /// Terminal when stderr is one, log lines otherwise.
    pub fn auto() -> Progress {
        if std::io::stderr().is_terminal() { Progress::Terminal } else { Progress::Log }
    }

    pub(crate) fn start(self, live: Arc<Live>, scenario: Scenario, start: Instant) -> Reporter {
        if self == Progress::Off {
            return Reporter { stop: None, task: None };
        }
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let every = if self == Progress::Terminal { Duration::from_secs(1) } else { LOG_EVERY };
            let mut tick = tokio::time::interval_at((start + every).into(), every);
            let mut last = (start, 0u64);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tick.tick() => {}
                }
                let now = Instant::now();
                let snapshot = Snapshot::take(&live, &scenario, start, now, last);
                last = (now, snapshot.done);
                match self {
                    Progress::Terminal => {
                        let mut err = std::io::stderr().lock();
                        let _ = write!(err, "\r\x1b[2K{}", snapshot.line());
                        let _ = err.flush();
                    }
                    _ => tracing::info!(
                        elapsed_s = snapshot.elapsed.as_secs(),
                        done = snapshot.done,
                        rps = snapshot.rps as u64,
                        not_ok = snapshot.not_ok,
                        in_flight = snapshot.in_flight,
                        behind_ms = snapshot.behind.as_millis() as u64,
                        "load progress"
                    ),
                }
            }
            if self == Progress::Terminal {
                let _ = writeln!(std::io::stderr());
            }
        });
        Reporter { stop: Some(stop), task: Some(task) }
    }
}

pub(crate) struct Reporter {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Reporter {
    pub(crate) async fn finish(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// One reading of the counters.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub elapsed: Duration,
    pub done: u64,
    pub not_ok: u64,
    pub in_flight: u64,
    /// Calls per second since the previous reading.
    pub rps: f64,
    /// Open loop: how far the next call to start is behind its due time.
    pub behind: Duration,
    pub planned: Option<Duration>,
}

impl Snapshot {
    fn take(live: &Live, scenario: &Scenario, start: Instant, now: Instant, last: (Instant, u64)) -> Snapshot {
        let sent = live.sent.load(Ordering::Relaxed);
        let done = live.done.load(Ordering::Relaxed);
        let window = now.duration_since(last.0).as_secs_f64();
        let elapsed = now.duration_since(start);
        let behind = match scenario.load.mode {
            Mode::Open => schedule::lag(sent, scenario.load.rate, elapsed),
            Mode::Closed => Duration::ZERO,
        };
        Snapshot {
            elapsed,
            done,
            not_ok: live.not_ok.load(Ordering::Relaxed),
            in_flight: sent.saturating_sub(done),
            rps: if window > 0.0 { done.saturating_sub(last.1) as f64 / window } else { 0.0 },
            behind,
            planned: scenario.duration(),
        }
    }

    /// `[  7s/15s] 10512 calls  1502/s  0 not OK  3 in flight  behind 0 ms`
    pub fn line(&self) -> String {
        let planned = self.planned.map(|p| format!("/{}s", p.as_secs())).unwrap_or_default();
        format!(
            "[{:>3}s{planned}] {} calls  {:.0}/s  {} not OK  {} in flight  behind {} ms",
            self.elapsed.as_secs(),
            self.done,
            self.rps,
            self.not_ok,
            self.in_flight,
            self.behind.as_millis()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_reads_well() {
        let s = Snapshot {
            elapsed: Duration::from_millis(7_400),
            done: 10_512,
            not_ok: 2,
            in_flight: 3,
            rps: 1_502.4,
            behind: Duration::from_millis(12),
            planned: Some(Duration::from_secs(15)),
        };
        assert_eq!(s.line(), "[  7s/15s] 10512 calls  1502/s  2 not OK  3 in flight  behind 12 ms");
    }

    #[test]
    fn a_snapshot_reads_the_counters() {
        let live = Live::default();
        live.sent.store(110, Ordering::Relaxed);
        live.done.store(100, Ordering::Relaxed);
        live.not_ok.store(4, Ordering::Relaxed);
        let scenario = Scenario::normal_day();
        let start = Instant::now();
        let now = start + Duration::from_secs(2);
        let s = Snapshot::take(&live, &scenario, start, now, (start + Duration::from_secs(1), 40));
        assert_eq!((s.done, s.not_ok, s.in_flight), (100, 4, 10));
        assert!((s.rps - 60.0).abs() < 1e-9);
        // 110 calls started at 1000/s were due by 110 ms; at 2 s the next one is far behind.
        assert_eq!(s.behind, Duration::from_secs(2) - schedule::due(110, 1_000));
    }
}
