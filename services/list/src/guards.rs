//! The request-level protections of the list path, which need the decoded
//! request: hot keys, the canary variant, and shadow verification of a
//! sample of answers against the source of truth (seed 004, 3.2.2).

use std::sync::Arc;

use pricing_control::{ControlError, Switchboard};
use pricing_store::RecordStore;
use pricing_traffic::watch::PricePath;
use pricing_traffic::{Canary, HotKeyLimiter, Sampler, ShadowQueue};

/// One answered batch to re-check (the verifier is
/// [`pricing_traffic::shadow::reprice`], shared with the detail server).
pub use pricing_traffic::PriceSample as ShadowSample;

use crate::variants::{Parts, Variants};

pub struct Guards {
    /// The switch board (the deadline reserve, `limits.min_deadline_ms`).
    pub board: Switchboard,
    pub hot_keys: HotKeyLimiter,
    pub canary: Canary,
    pub sampler: Sampler,
    pub shadow: Option<ShadowQueue<ShadowSample>>,
    /// Each canary variant's view of the read path (crate::variants).
    pub variants: Arc<Variants>,
}

impl Guards {
    /// Guards over the board; `truth` (the SQL source) enables shadow
    /// verification.
    pub fn new(board: &Switchboard, truth: Option<Arc<dyn RecordStore>>) -> Guards {
        let shadow = truth.map(|truth| {
            let capacity = board.load_config().shadow.queue_capacity;
            let (queue, _worker) = ShadowQueue::spawn(PricePath::List, capacity, move |sample: ShadowSample| {
                let truth = Arc::clone(&truth);
                async move { pricing_traffic::shadow::reprice(&*truth, sample).await }
            });
            queue
        });
        Guards {
            board: board.clone(),
            hot_keys: HotKeyLimiter::new(board.clone()),
            canary: Canary::new(board.clone()),
            sampler: Sampler::new(board.clone()),
            shadow,
            variants: Arc::new(Variants::new(board, None)),
        }
    }

    /// The variant views over `parts` (`None`: a fixed read chain, which
    /// serves no read-path override), registered with the board so that a
    /// file whose variants this server cannot serve is refused.
    pub fn with_variants(mut self, board: &Switchboard, parts: Option<Parts>) -> Result<Guards, ControlError> {
        self.variants = Arc::new(Variants::new(board, parts));
        board.require(self.variants.capability())?;
        Ok(self)
    }
}
