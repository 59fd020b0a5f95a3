//! The request-level protections of the list path, which need the decoded
//! request: hot keys, the canary variant, and shadow verification of a
//! sample of answers against the source of truth (seed 004, 3.2.2).

use std::collections::HashMap;
use std::sync::Arc;

use pricing_control::{ControlError, Switchboard};
use pricing_engine::{CallerContext, best_price};
use pricing_record::{GoodsId, UnixMillis};
use pricing_store::RecordStore;
use pricing_traffic::shadow::{Mismatch, Verdict, VerifyError};
use pricing_traffic::{Canary, HotKeyLimiter, Sampler, ShadowQueue};
use rust_decimal::Decimal;

use crate::variants::{Parts, Variants};

/// One answered batch to re-check: what was answered for whom, when.
pub struct ShadowSample {
    pub ctx: CallerContext,
    pub now: UnixMillis,
    /// Every asked id with the price answered (`None`: not found).
    pub answered: Vec<(GoodsId, Option<Decimal>)>,
}

pub struct Guards {
    /// The switch board (the deadline reserve, `limits.min_deadline_ms`).
    pub board: Switchboard,
    pub hot_keys: HotKeyLimiter,
    pub canary: Canary,
    pub sampler: Sampler,
    pub shadow: Option<ShadowQueue<ShadowSample>>,
    /// Each canary variant's view of the read path (crate::variants).
    pub variants: Variants,
}

impl Guards {
    /// Guards over the board; `truth` (the SQL source) enables shadow
    /// verification.
    pub fn new(board: &Switchboard, truth: Option<Arc<dyn RecordStore>>) -> Guards {
        let shadow = truth.map(|truth| {
            let capacity = board.load_config().shadow.queue_capacity;
            let (queue, _worker) = ShadowQueue::spawn(capacity, move |sample: ShadowSample| {
                let truth = Arc::clone(&truth);
                async move { verify(&*truth, sample).await }
            });
            queue
        });
        Guards {
            board: board.clone(),
            hot_keys: HotKeyLimiter::new(board.clone()),
            canary: Canary::new(board.clone()),
            sampler: Sampler::new(board.clone()),
            shadow,
            variants: Variants::new(board, None),
        }
    }

    /// The variant views over `parts` (`None`: a fixed read chain, which
    /// serves no read-path override), registered with the board so that a
    /// file whose variants this server cannot serve is refused.
    pub fn with_variants(mut self, board: &Switchboard, parts: Option<Parts>) -> Result<Guards, ControlError> {
        self.variants = Variants::new(board, parts);
        board.require(self.variants.capability())?;
        Ok(self)
    }
}

/// Recomputes a sample's prices from the source of truth.
async fn verify(truth: &dyn RecordStore, sample: ShadowSample) -> Result<Verdict, VerifyError> {
    let ids: Vec<GoodsId> = sample.answered.iter().map(|(id, _)| *id).collect();
    let records = truth.fetch(&ids).await?;
    let expected: HashMap<GoodsId, Option<Decimal>> = records
        .iter()
        .filter(|r| !r.is_tombstone())
        .map(|r| (r.goods_id, best_price(r, &sample.ctx, sample.now, false).ok().map(|q| q.price)))
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
