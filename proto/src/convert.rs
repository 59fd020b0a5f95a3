//! Engine values to wire messages, in one place for every server: the list
//! price ([`goods_price`]), the detail page's activities ([`activity_offers`])
//! and an order's pricing ([`order_pricing`]), with the one mapping of each
//! engine enum to its `pricing.v1` twin.

use pricing_engine::{
    AppliedPromotion, CartPricing, LineQuote, Outcome, PricedLine, PromotionKind, Quote, Scope, TraceEntry, Winner,
};
use pricing_record::{ActivityKind, Channel, Fen, GoodsRecord, MoneyError};

use crate::money::to_wire;
use crate::v1;
use crate::validate::{Context, Line};

/// The engine's caller context for a checked request context.
pub fn caller(ctx: &Context) -> pricing_engine::CallerContext {
    pricing_engine::CallerContext {
        pin: ctx.pin.clone(),
        store_id: ctx.store_id,
        city_id: ctx.city_id,
        channel: ctx.channel,
        new_user: ctx.new_user,
        member_level: ctx.member_level,
    }
}

pub fn activity_kind(kind: ActivityKind) -> v1::ActivityKind {
    match kind {
        ActivityKind::FlashSale => v1::ActivityKind::FlashSale,
        ActivityKind::Discount => v1::ActivityKind::Discount,
        ActivityKind::AmountOff => v1::ActivityKind::AmountOff,
        ActivityKind::Subsidy => v1::ActivityKind::Subsidy,
    }
}

pub fn channel(channel: Channel) -> v1::Channel {
    match channel {
        Channel::App => v1::Channel::App,
        Channel::MiniProgram => v1::Channel::MiniProgram,
        Channel::H5 => v1::Channel::H5,
        Channel::Pc => v1::Channel::Pc,
    }
}

pub fn winner(w: &Winner) -> v1::WinningActivity {
    v1::WinningActivity {
        id: w.activity_id,
        kind: activity_kind(w.kind) as i32,
        window_start_unix_ms: w.start_ms,
        window_end_unix_ms: w.end_ms,
        per_user_limit: w.per_user_limit,
        stock_left: w.stock_left,
    }
}

pub fn trace_entry(t: &TraceEntry) -> v1::TraceEntry {
    v1::TraceEntry {
        activity_id: t.activity_id,
        kind: activity_kind(t.kind) as i32,
        outcome: t.outcome.as_str().to_owned(),
        reason: match &t.outcome {
            Outcome::Won => String::new(),
            other => other.to_string(),
        },
        price: t.price.map(to_wire).unwrap_or_default(),
    }
}

/// A goods' price as the wire carries it.
pub fn goods_price(quote: &Quote, version: u64, tier: v1::Tier, stale: bool) -> v1::GoodsPrice {
    v1::GoodsPrice {
        goods_id: quote.goods_id,
        currency: quote.currency.clone(),
        original_price: to_wire(quote.original),
        activity_price: to_wire(quote.price),
        activity: quote.winner.as_ref().map(winner),
        per_user_limit: quote.winner.as_ref().map_or(0, |w| w.per_user_limit),
        price_beyond_limit: to_wire(quote.price_beyond_limit),
        stale,
        tier: tier as i32,
        version,
        delisted: quote.delisted,
        trace: quote.trace.iter().map(trace_entry).collect(),
    }
}

/// The wire tier of a chain answer (the SQL source is the database). Both
/// servers use it.
pub fn tier(source: &pricing_store::Source) -> v1::Tier {
    use pricing_store::{Source, TierId};
    match source {
        Source::Memory => v1::Tier::Memory,
        Source::Tier(TierId::Redis) => v1::Tier::Redis,
        Source::Tier(TierId::Hbase) => v1::Tier::Hbase,
        Source::Tier(TierId::Sql) => v1::Tier::Database,
    }
}
/// The detail page's list of every activity of `record`, from the engine's
/// trace of it: whether it applies to this caller now, and why not.
pub fn activity_offers(record: &GoodsRecord, trace: &[TraceEntry]) -> Vec<v1::ActivityOffer> {
    trace
        .iter()
        .filter_map(|t| {
            let a = record.activities.iter().find(|a| a.id == t.activity_id)?;
            Some(v1::ActivityOffer {
                id: a.id,
                kind: activity_kind(a.kind) as i32,
                price: t.price.map(to_wire).unwrap_or_default(),
                window_start_unix_ms: a.start_ms,
                window_end_unix_ms: a.end_ms,
                per_user_limit: a.per_user_limit,
                stock_left: a.stock_left,
                applicable: matches!(t.outcome, Outcome::Won | Outcome::Lost { .. }),
                reason: match &t.outcome {
                    Outcome::Won => String::new(),
                    other => other.to_string(),
                },
            })
        })
        .collect()
}

pub fn promotion_kind(kind: PromotionKind) -> v1::PromotionKind {
    match kind {
        PromotionKind::ThresholdAmountOff => v1::PromotionKind::ThresholdAmountOff,
        PromotionKind::ThresholdPercentOff => v1::PromotionKind::ThresholdPercentOff,
        PromotionKind::Coupon => v1::PromotionKind::Coupon,
    }
}

/// A promotion's scope and its store id (0 for the platform).
pub fn promotion_scope(scope: Scope) -> (v1::PromotionScope, u64) {
    match scope {
        Scope::Store(id) => (v1::PromotionScope::Store, id),
        Scope::Platform => (v1::PromotionScope::Platform, 0),
    }
}

pub fn applied_promotion(p: &AppliedPromotion) -> v1::AppliedPromotion {
    let (scope, store_id) = promotion_scope(p.scope);
    v1::AppliedPromotion {
        id: p.id,
        kind: promotion_kind(p.kind) as i32,
        scope: scope as i32,
        store_id,
        discount: to_wire(p.discount),
        description: p.description.clone(),
    }
}

/// One order line: its units' prices and what cart promotions took off it.
pub fn order_line(line: &Line, quote: &LineQuote, priced: &PricedLine) -> v1::OrderLine {
    v1::OrderLine {
        goods_id: line.goods_id,
        quantity: line.quantity,
        unit_original_price: to_wire(quote.unit_original),
        unit_activity_price: to_wire(quote.segments.first().map_or(quote.unit_original, |s| s.unit_price)),
        segments: quote
            .segments
            .iter()
            .map(|s| v1::PriceSegment {
                quantity: s.quantity,
                unit_price: to_wire(s.unit_price),
                activity_id: s.activity_id.unwrap_or(0),
            })
            .collect(),
        amount: to_wire(quote.amount),
        allocations: priced
            .allocations
            .iter()
            .map(|a| v1::Allocation {
                promotion_id: a.promotion_id,
                kind: promotion_kind(a.kind) as i32,
                amount: to_wire(a.amount),
            })
            .collect(),
        payable: to_wire(priced.payable),
        price_changed: false,
        store_id: quote.store_id,
    }
}

/// An order's pricing as the wire carries it: each line (`lines` and
/// `cart.lines` in the same order), the applied promotions, the totals, and
/// the coupons not applied (`unknown_coupons` first, as "not_found"). The
/// quote id and its expiry, and PriceOrder's change flags, are the caller's
/// to fill. Fails only when the original total (quantity x unit price,
/// summed) is beyond any amount, which validated orders never reach.
pub fn order_pricing(
    lines: &[(Line, LineQuote)],
    cart: &CartPricing,
    unknown_coupons: &[u64],
    trace: Vec<v1::TraceEntry>,
) -> Result<v1::OrderPricing, MoneyError> {
    let mut original_total = Fen::ZERO;
    for (_, quote) in lines {
        let unit = Fen::from_amount(quote.unit_original)?;
        let line_total = unit.get().checked_mul(i128::from(quote.quantity));
        original_total = line_total
            .and_then(|t| original_total.get().checked_add(t))
            .map(Fen::new)
            .ok_or(MoneyError::OutOfRange { fen: unit.get(), target: "an order's original total" })?;
    }
    let mut unused_coupon_ids = Vec::new();
    let mut coupon_reasons = Vec::new();
    for id in unknown_coupons {
        unused_coupon_ids.push(*id);
        coupon_reasons.push("not_found".to_owned());
    }
    for unused in cart.unused_coupons() {
        unused_coupon_ids.push(unused.id);
        coupon_reasons.push(unused.reason.as_str().to_owned());
    }
    Ok(v1::OrderPricing {
        lines: lines.iter().zip(&cart.lines).map(|((line, quote), priced)| order_line(line, quote, priced)).collect(),
        promotions: cart.applied.iter().map(applied_promotion).collect(),
        currency: "CNY".into(),
        original_total: original_total.to_string(),
        amount_total: to_wire(cart.amount_total),
        discount_total: to_wire(cart.discount_total),
        payable_total: to_wire(cart.payable_total),
        quote_id: String::new(),
        quote_expires_unix_ms: 0,
        unused_coupon_ids,
        coupon_reasons,
        trace,
        payable_changed: false,
    })
}
