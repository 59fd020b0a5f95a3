//! A full sync's progress: a bar when stderr is a terminal, log lines otherwise.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pricing_record::GoodsId;

/// Most often a progress log line is written.
const LOG_EVERY: Duration = Duration::from_secs(10);

pub struct Progress {
    bar: Option<ProgressBar>,
    total: AtomicU64,
    done: AtomicU64,
    started: Instant,
    last_log: Mutex<Instant>,
}

impl Progress {
    /// A bar on stderr if it is a terminal, else a log line every 10 s.
    pub fn for_stderr() -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{elapsed_precise} [{wide_bar}] {pos}/{len} goods, {per_sec}, eta {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        Progress::with_bar(bar)
    }

    /// Log lines only (tests, the benchmark).
    pub fn logs_only() -> Progress {
        Progress::with_bar(None)
    }

    fn with_bar(bar: Option<ProgressBar>) -> Progress {
        let now = Instant::now();
        Progress { bar, total: AtomicU64::new(0), done: AtomicU64::new(0), started: now, last_log: Mutex::new(now) }
    }

    pub fn set_total(&self, total: u64) {
        self.total.store(total, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.set_length(total);
        }
    }

    /// `n` more goods written; `position` is the cursor now saved.
    pub fn advance(&self, n: u64, position: GoodsId) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        if let Some(bar) = &self.bar {
            bar.inc(n);
            bar.set_message(format!("at id {position}"));
            return;
        }
        let mut last = self.last_log.lock().unwrap_or_else(|p| p.into_inner());
        if last.elapsed() >= LOG_EVERY {
            *last = Instant::now();
            let elapsed = self.started.elapsed().as_secs().max(1);
            tracing::info!(
                done,
                total = self.total.load(Ordering::Relaxed),
                at_id = position,
                per_second = done / elapsed,
                "full sync progress"
            );
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }

    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }
}
