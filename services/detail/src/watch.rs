//! Watching the detail server's prices (seed 004, 3.2.2): the result and
//! process metrics of every answered price ([`pricing_traffic::watch`]) on
//! the detail, checkout and order paths, and shadow verification of a
//! sample of GetGoodsPrice answers against MySQL.
//!
//! Shadow verification covers GetGoodsPrice only: previews are priced from
//! the same records (Redis first) and would be checked the same way; orders
//! already read MySQL alone, so re-reading it would compare MySQL with
//! itself. A GetGoodsPrice answered by the list server (the
//! `fallback_to_list` switch) is checked by the list server's own shadow.

use std::str::FromStr as _;
use std::sync::Arc;

use pricing_control::{ControlConfig, Switchboard};
use pricing_engine::{CallerContext, Drops, LineQuote};
use pricing_proto::v1;
use pricing_record::{ActivityKind, Channel, GoodsId, GoodsRecord, UnixMillis};
use pricing_store::RecordStore;
use pricing_traffic::watch::{self, Answer, PricePath};
use pricing_traffic::{PriceSample, Sampler, ShadowQueue};
use rust_decimal::Decimal;

/// The shadow verification of GetGoodsPrice answers.
pub struct Shadow {
    sampler: Sampler,
    queue: ShadowQueue<PriceSample>,
}

impl Shadow {
    /// The sampler over `board` (`shadow.sample_basis_points`, or the
    /// variant's `shadow_basis_points`) and the worker re-pricing from
    /// `truth`. Must be called within a tokio runtime.
    pub fn new(board: &Switchboard, truth: Arc<dyn RecordStore>) -> Shadow {
        let capacity = board.load_config().shadow.queue_capacity;
        let (queue, _worker) = ShadowQueue::spawn(PricePath::Detail, capacity, move |sample: PriceSample| {
            let truth = Arc::clone(&truth);
            async move { pricing_traffic::shadow::reprice(&*truth, sample).await }
        });
        Shadow { sampler: Sampler::new(board.clone()), queue }
    }

    /// Offers the answer `price` for `goods_id` to the verifier when this
    /// call of `variant` is sampled; never waits.
    /// `control` is the config the answer was priced under (its guard).
    pub fn check(
        &self,
        variant: &Arc<str>,
        control: &Arc<ControlConfig>,
        call: (&CallerContext, UnixMillis),
        answer: (GoodsId, Decimal),
    ) {
        if self.sampler.sample(variant) {
            let (ctx, now) = call;
            let sample = PriceSample {
                ctx: ctx.clone(),
                now,
                answered: vec![(answer.0, Some(answer.1))],
                control: Arc::clone(control),
            };
            self.queue.offer(Arc::clone(variant), sample);
        }
    }

    pub fn stats(&self) -> &pricing_traffic::ShadowStats {
        self.queue.stats()
    }
}

/// Counts one order line (checkout or order path): its best unit price
/// (the first segment) against the unit original, and the engine's drops.
pub fn order_line(path: PricePath, record: &GoodsRecord, quote: &LineQuote, channel: Channel, tier: v1::Tier) {
    let first = quote.segments.first();
    let kind =
        first.and_then(|s| s.activity_id).and_then(|id| record.activities.iter().find(|a| a.id == id)).map(|a| a.kind);
    watch::record_answer(&Answer {
        path,
        kind,
        channel,
        tier,
        original: quote.unit_original,
        price: first.map_or(quote.unit_original, |s| s.unit_price),
    });
}

/// Counts a GetGoodsPrice answered by the list server (`tier="list"`).
pub fn fallback_answer(price: &v1::GoodsPrice, channel: Channel) {
    let (Ok(original), Ok(answered)) =
        (Decimal::from_str(&price.original_price), Decimal::from_str(&price.activity_price))
    else {
        return;
    };
    let kind = price.activity.as_ref().and_then(|a| match v1::ActivityKind::try_from(a.kind) {
        Ok(v1::ActivityKind::FlashSale) => Some(ActivityKind::FlashSale),
        Ok(v1::ActivityKind::Discount) => Some(ActivityKind::Discount),
        Ok(v1::ActivityKind::AmountOff) => Some(ActivityKind::AmountOff),
        Ok(v1::ActivityKind::Subsidy) => Some(ActivityKind::Subsidy),
        _ => None,
    });
    watch::record_answer(&Answer {
        path: PricePath::Detail,
        kind,
        channel,
        tier: v1::Tier::ListService,
        original,
        price: answered,
    });
}

/// Adds a call's engine counts to `pricing_engine_candidates_total`.
pub fn drops(path: PricePath, drops: &Drops) {
    watch::record_drops(path, drops);
}
