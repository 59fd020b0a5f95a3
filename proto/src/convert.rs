//! Engine values to wire messages, in one place for every server.

use pricing_engine::{Outcome, Quote, TraceEntry, Winner};
use pricing_record::{ActivityKind, Channel};

use crate::money::to_wire;
use crate::v1;
use crate::validate::Context;

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
