//! Shadow verification (seed 004, 3.2.2: sample requests and answers and
//! verify them with separate code). A [`Sampler`] decides, at the configured
//! rate of the call's variant, which answers to verify; the handler offers
//! the sample to a [`ShadowQueue`], and a background worker runs the
//! provided verifier on it (typically: price the same ids from MySQL with
//! the same context and compare).
//!
//! The request never waits: `offer` is a `try_send` on a bounded queue, and
//! a full queue drops the sample (counted in
//! `pricing_shadow_dropped_total{variant,path}`). The worker verifies one
//! sample at a time, so verification load on the source of truth is bounded
//! too. Each mismatch is logged with the goods id, the variant, the path and
//! both prices and counted in `pricing_shadow_mismatch_total{variant,path}`;
//! checked ids are counted in `pricing_shadow_checks_total{variant,path}`,
//! failed verifications in `pricing_shadow_errors_total{variant,path}`. The
//! `path` is the queue's ([`PricePath`]: `list` or `detail`).
//!
//! The verifier both servers use is [`reprice`]: the sampled ids read again
//! from the source of truth (MySQL, by another code path than the read
//! stores) and priced by the engine with the caller's context at the
//! answer's instant.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use std::collections::HashMap;

use pricing_control::{ControlConfig, Switchboard};
use pricing_engine::CallerContext;
use pricing_engine::guard::best_price_guarded;
use pricing_record::{GoodsId, UnixMillis};
use pricing_store::RecordStore;
use rust_decimal::Decimal;
use tokio::sync::mpsc;

use crate::watch::PricePath;

/// One goods id whose answered price differs from the verifier's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub goods_id: GoodsId,
    /// What the call answered; `None`: not found.
    pub answered: Option<Decimal>,
    /// What the verifier computed; `None`: not found.
    pub expected: Option<Decimal>,
}

/// What the verifier found for one sample.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Goods ids compared.
    pub checked: u64,
    pub mismatches: Vec<Mismatch>,
}

/// Error of a verification that could not run (source down); counted, and
/// the sample is dropped.
pub type VerifyError = Box<dyn std::error::Error + Send + Sync>;

/// Decides which calls are verified: `shadow.sample_basis_points`, or the
/// variant's `shadow_basis_points`.
#[derive(Debug, Clone)]
pub struct Sampler {
    board: Switchboard,
}

impl Sampler {
    pub fn new(board: Switchboard) -> Sampler {
        Sampler { board }
    }

    /// Whether to verify this call of `variant`.
    pub fn sample(&self, variant: &str) -> bool {
        let rate = self.board.load_config().shadow_basis_points(variant);
        rate > 0 && (rate >= 10_000 || rand::random_range(0..10_000u16) < rate)
    }
}

/// Counts of what the queue and its worker did; the same numbers as the
/// metrics, readable without a metrics recorder.
#[derive(Debug, Default)]
pub struct ShadowStats {
    pub offered: AtomicU64,
    pub dropped: AtomicU64,
    pub checked: AtomicU64,
    pub mismatches: AtomicU64,
    pub errors: AtomicU64,
}

/// The sending side of the verification queue; cheap to clone.
pub struct ShadowQueue<T> {
    tx: mpsc::Sender<(Arc<str>, T)>,
    stats: Arc<ShadowStats>,
    path: PricePath,
}

impl<T> Clone for ShadowQueue<T> {
    fn clone(&self) -> Self {
        ShadowQueue { tx: self.tx.clone(), stats: self.stats.clone(), path: self.path }
    }
}

impl<T> std::fmt::Debug for ShadowQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShadowQueue").field("stats", &self.stats).finish()
    }
}

impl<T: Send + 'static> ShadowQueue<T> {
    /// Starts the worker of `path`'s answers with a queue of `capacity`
    /// samples (use `shadow.queue_capacity`). The worker ends when every
    /// queue handle is dropped.
    pub fn spawn<F, Fut>(path: PricePath, capacity: usize, verify: F) -> (ShadowQueue<T>, tokio::task::JoinHandle<()>)
    where
        F: Fn(T) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Verdict, VerifyError>> + Send,
    {
        let (tx, mut rx) = mpsc::channel::<(Arc<str>, T)>(capacity.max(1));
        let stats = Arc::new(ShadowStats::default());
        let worker_stats = stats.clone();
        let worker = tokio::spawn(async move {
            while let Some((variant, sample)) = rx.recv().await {
                run(&worker_stats, &variant, path, verify(sample).await);
            }
        });
        (ShadowQueue { tx, stats, path }, worker)
    }

    /// Hands a sample to the worker without waiting; false when it was
    /// dropped because the queue is full (or the worker is gone).
    pub fn offer(&self, variant: Arc<str>, sample: T) -> bool {
        self.stats.offered.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send((variant, sample)) {
            Ok(()) => true,
            Err(error) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                let variant = match &error {
                    mpsc::error::TrySendError::Full((variant, _)) | mpsc::error::TrySendError::Closed((variant, _)) => {
                        variant.to_string()
                    }
                };
                metrics::counter!("pricing_shadow_dropped_total", "variant" => variant, "path" => self.path.as_str())
                    .increment(1);
                false
            }
        }
    }

    pub fn stats(&self) -> &ShadowStats {
        &self.stats
    }
}

fn run(stats: &ShadowStats, variant: &str, path: PricePath, verdict: Result<Verdict, VerifyError>) {
    let path = path.as_str();
    match verdict {
        Ok(verdict) => {
            stats.checked.fetch_add(verdict.checked, Ordering::Relaxed);
            metrics::counter!("pricing_shadow_checks_total", "variant" => variant.to_owned(), "path" => path)
                .increment(verdict.checked);
            for m in &verdict.mismatches {
                stats.mismatches.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("pricing_shadow_mismatch_total", "variant" => variant.to_owned(), "path" => path)
                    .increment(1);
                let show = |p: Option<Decimal>| p.map_or_else(|| "not_found".to_owned(), |p| p.to_string());
                tracing::warn!(
                    goods_id = m.goods_id,
                    answered = %show(m.answered),
                    expected = %show(m.expected),
                    variant,
                    path,
                    "shadow verification mismatch"
                );
            }
        }
        Err(error) => {
            stats.errors.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("pricing_shadow_errors_total", "variant" => variant.to_owned(), "path" => path)
                .increment(1);
            tracing::warn!(%error, variant, path, "shadow verification failed");
        }
    }
}

/// One answered call to re-check: what was answered for whom, when.
#[derive(Debug, Clone)]
pub struct PriceSample {
    pub ctx: CallerContext,
    pub now: UnixMillis,
    /// Every asked id with the price answered (`None`: not found).
    pub answered: Vec<(GoodsId, Option<Decimal>)>,
    /// The control config the call was answered under: its price guard
    /// (`[guard]`) applies to the re-pricing too, so a price the guard
    /// blocked is not a mismatch.
    pub control: Arc<ControlConfig>,
}

/// The real verifier: re-reads the sample's ids from `truth` (the SQL
/// source) and prices each with the engine for the same caller at the same
/// instant, under the same price guard; every id whose answered price
/// differs is a [`Mismatch`].
pub async fn reprice(truth: &dyn RecordStore, sample: PriceSample) -> Result<Verdict, VerifyError> {
    let ids: Vec<GoodsId> = sample.answered.iter().map(|(id, _)| *id).collect();
    let records = truth.fetch(&ids).await?;
    let expected: HashMap<GoodsId, Option<Decimal>> = records
        .iter()
        .filter(|r| !r.is_tombstone())
        .map(|r| {
            let quote = best_price_guarded(r, &sample.ctx, sample.now, false, sample.control.guard_rules());
            (r.goods_id, quote.ok().map(|(q, _)| q.price))
        })
        .collect();
    let mismatches = sample
        .answered
        .iter()
        .filter_map(|&(goods_id, answered)| {
            let expected = expected.get(&goods_id).copied().flatten();
            (expected != answered).then_some(Mismatch { goods_id, answered, expected })
        })
        .collect();
    Ok(Verdict { checked: ids.len() as u64, mismatches })
}

#[cfg(test)]
mod tests {
    use pricing_control::{ControlConfig, VariantOverrides};
    use rust_decimal_macros::dec;
    use tokio::sync::Semaphore;

    use super::*;

    /// What a list call answered: ids and prices.
    type Answers = Vec<(GoodsId, Option<Decimal>)>;

    /// The truth the verifier prices from: every id costs 9.90, id 3 is unknown.
    fn truth(id: GoodsId) -> Option<Decimal> {
        (id != 3).then_some(dec!(9.90))
    }

    async fn verify(answers: Answers) -> Result<Verdict, VerifyError> {
        let mismatches = answers
            .iter()
            .filter(|(id, answered)| truth(*id) != *answered)
            .map(|(id, answered)| Mismatch { goods_id: *id, answered: *answered, expected: truth(*id) })
            .collect();
        Ok(Verdict { checked: answers.len() as u64, mismatches })
    }

    async fn until(done: impl Fn() -> bool) {
        for _ in 0..1000 {
            if done() {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("condition not reached");
    }

    #[tokio::test(start_paused = true)]
    async fn mismatches_are_counted() {
        let (queue, _worker) = ShadowQueue::spawn(PricePath::List, 16, verify);
        assert!(queue.offer("stable".into(), vec![(1, Some(dec!(9.90))), (2, Some(dec!(8.80))), (3, None)]));
        assert!(queue.offer("stable".into(), vec![(3, Some(dec!(1.00)))]));
        until(|| queue.stats().checked.load(Ordering::Relaxed) == 4).await;
        assert_eq!(queue.stats().mismatches.load(Ordering::Relaxed), 2);
        assert_eq!(queue.stats().dropped.load(Ordering::Relaxed), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_verifier_never_blocks_the_caller_samples_are_dropped() {
        let gate = Arc::new(Semaphore::new(0));
        let verifier_gate = gate.clone();
        let (queue, _worker) = ShadowQueue::spawn(PricePath::List, 2, move |answers: Answers| {
            let gate = verifier_gate.clone();
            async move {
                gate.acquire().await.unwrap().forget();
                verify(answers).await
            }
        });
        // The worker takes the first sample and blocks in the verifier; two
        // more fill the queue; the rest are dropped at once.
        assert!(queue.offer("stable".into(), vec![(1, Some(dec!(9.90)))]));
        until(|| queue.tx.capacity() == 2).await;
        let start = tokio::time::Instant::now();
        let accepted = (0..10).filter(|_| queue.offer("stable".into(), vec![(2, Some(dec!(9.90)))])).count();
        assert_eq!(tokio::time::Instant::now(), start, "offering never waits");
        assert_eq!(accepted, 2);
        assert_eq!(queue.stats().dropped.load(Ordering::Relaxed), 8);
        // Once released, the queued samples are verified.
        gate.add_permits(3);
        until(|| queue.stats().checked.load(Ordering::Relaxed) == 3).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_verification_is_counted_as_an_error() {
        let (queue, _worker) = ShadowQueue::spawn(PricePath::Detail, 4, |_: Answers| async {
            Err::<Verdict, VerifyError>("mysql down".into())
        });
        queue.offer("stable".into(), vec![(1, None)]);
        until(|| queue.stats().errors.load(Ordering::Relaxed) == 1).await;
        assert_eq!(queue.stats().checked.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn reprice_compares_with_the_engine_on_the_truth_at_the_answer_instant() {
        use pricing_record::{Activity, ActivityKind, Channel, GoodsRecord, GoodsStatus};
        let now = 1_700_000_000_000;
        let record = |id: GoodsId, activities: Vec<Activity>| {
            Arc::new(GoodsRecord {
                goods_id: id,
                version: 1,
                store_id: 1,
                base_price: dec!(100),
                currency: "CNY".into(),
                status: GoodsStatus::OnSale,
                activities,
            })
        };
        let sale = Activity::open(9, 2, ActivityKind::FlashSale, dec!(60), now, now + 1_000);
        let truth =
            pricing_store::memory::MemoryStore::with_records("truth", [record(1, vec![]), record(2, vec![sale])]);
        let ctx = CallerContext::anonymous(Channel::App);
        let answered = vec![(1, Some(dec!(100.00))), (2, Some(dec!(100.00))), (3, None), (4, Some(dec!(1)))];
        let verdict =
            reprice(&truth, PriceSample { ctx: ctx.clone(), now, answered: answered.clone(), control: Arc::default() })
                .await
                .unwrap();
        assert_eq!(verdict.checked, 4);
        assert_eq!(
            verdict.mismatches,
            [
                Mismatch { goods_id: 2, answered: Some(dec!(100)), expected: Some(dec!(60)) },
                Mismatch { goods_id: 4, answered: Some(dec!(1)), expected: None },
            ]
        );
        // A millisecond before the sale, the same answers for 1 and 2 are right.
        let verdict =
            reprice(&truth, PriceSample { ctx, now: now - 1, answered, control: Arc::default() }).await.unwrap();
        assert_eq!(verdict.mismatches.iter().map(|m| m.goods_id).collect::<Vec<_>>(), [4]);
    }

    #[test]
    fn the_sample_rate_follows_the_variant() {
        let mut config = ControlConfig::default();
        config.shadow.sample_basis_points = 0;
        config
            .canary
            .variants
            .insert("beta".into(), VariantOverrides { shadow_basis_points: Some(10_000), ..Default::default() });
        let sampler = Sampler::new(Switchboard::from_config(config.clone()).unwrap());
        assert!((0..1000).all(|_| sampler.sample("beta")));
        assert!((0..1000).all(|_| !sampler.sample("stable")));

        config.shadow.sample_basis_points = 1_000;
        let sampler = Sampler::new(Switchboard::from_config(config).unwrap());
        let hits = (0..20_000).filter(|_| sampler.sample("stable")).count();
        assert!((1_600..=2_400).contains(&hits), "{hits} of 20000 at 10%");
    }
}
