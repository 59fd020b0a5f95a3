//! Watching the prices themselves (seed 004, 3.2.2): result monitoring
//! (every answered goods price counted by path, activity kind, channel, tier
//! and discount-depth band, and the discount's distribution) and process
//! monitoring (every candidate activity the engine dropped or beat, by
//! reason).
//!
//! Cheap by construction, since it runs for every goods of every call: the
//! label sets are closed enums, so every series has a fixed slot in a static
//! table of `metrics` handles, registered with the recorder on first use and
//! reused afterwards. A call costs an index computation and an atomic add per
//! handle: no label strings built, no hashing, no allocation. The table is
//! bounded (4 paths x 5 kinds x 4 channels x 6 tiers x 7 bands = 3,360
//! counters at most; only the series that occur are registered, so only those
//! are exported).
//!
//! Metrics (labels and values in docs/OPERATIONS.md):
//! - `pricing_price_answers_total{path,kind,channel,tier,band}`;
//! - `pricing_price_discount_basis_points{path,kind}`, a histogram of the
//!   discount of each answer that an activity set (buckets:
//!   [`pricing_telemetry::DISCOUNT_BUCKETS`]);
//! - `pricing_engine_candidates_total{path,reason}`, from the engine's
//!   [`Drops`].

use std::sync::OnceLock;

use metrics::{Counter, Histogram};
pub use pricing_engine::band::{Band, discount_basis_points};
use pricing_engine::guard::kind_label as engine_kind_label;
use pricing_engine::{DropClass, Drops};
use pricing_proto::v1::Tier;
use pricing_record::{ActivityKind, Channel};
use rust_decimal::Decimal;

/// `pricing_price_answers_total`.
pub const ANSWERS_METRIC: &str = "pricing_price_answers_total";
/// `pricing_engine_candidates_total`.
pub const CANDIDATES_METRIC: &str = "pricing_engine_candidates_total";
/// `pricing_price_discount_basis_points`.
pub const DISCOUNT_METRIC: &str = pricing_telemetry::DISCOUNT_METRIC;

/// Which answer a price was: the `path` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PricePath {
    /// ListPricing.BatchGetPrices.
    List,
    /// DetailPricing.GetGoodsPrice.
    Detail,
    /// DetailPricing.PreviewOrder, per order line.
    Checkout,
    /// DetailPricing.PriceOrder, per order line.
    Order,
}

impl PricePath {
    const COUNT: usize = 4;
    pub const ALL: [PricePath; PricePath::COUNT] =
        [PricePath::List, PricePath::Detail, PricePath::Checkout, PricePath::Order];

    pub const fn as_str(self) -> &'static str {
        match self {
            PricePath::List => "list",
            PricePath::Detail => "detail",
            PricePath::Checkout => "checkout",
            PricePath::Order => "order",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// The `kind` label: the winner's activity kind, or `none`.
const KINDS: usize = 5;

const fn kind_index(kind: Option<ActivityKind>) -> usize {
    match kind {
        None => 0,
        Some(ActivityKind::FlashSale) => 1,
        Some(ActivityKind::Discount) => 2,
        Some(ActivityKind::AmountOff) => 3,
        Some(ActivityKind::Subsidy) => 4,
    }
}

/// The engine's kind names (`pricing_engine::guard::kind_label`, also the
/// guard's and the rehearsal's), and `none`.
const KIND_LABELS: [&str; KINDS] = [
    "none",
    engine_kind_label(ActivityKind::FlashSale),
    engine_kind_label(ActivityKind::Discount),
    engine_kind_label(ActivityKind::AmountOff),
    engine_kind_label(ActivityKind::Subsidy),
];

const CHANNELS: usize = 4;

const fn channel_index(channel: Channel) -> usize {
    match channel {
        Channel::App => 0,
        Channel::MiniProgram => 1,
        Channel::H5 => 2,
        Channel::Pc => 3,
    }
}

const CHANNEL_LABELS: [&str; CHANNELS] = ["app", "mini_program", "h5", "pc"];

/// The `tier` label: where the record came from.
const TIERS: usize = 6;

const fn tier_index(tier: Tier) -> usize {
    match tier {
        Tier::Unspecified => 0,
        Tier::Memory => 1,
        Tier::Redis => 2,
        Tier::Hbase => 3,
        Tier::Database => 4,
        Tier::ListService => 5,
    }
}

/// The database tier is `sql` (the chain's name for it), the list server
/// (the detail path's fallback) `list`.
const TIER_LABELS: [&str; TIERS] = ["unknown", "memory", "redis", "hbase", "sql", "list"];

const ANSWER_SLOTS: usize = PricePath::COUNT * KINDS * CHANNELS * TIERS * Band::COUNT;
const DISCOUNT_SLOTS: usize = PricePath::COUNT * KINDS;
const CANDIDATE_SLOTS: usize = PricePath::COUNT * DropClass::COUNT;

static ANSWERS: [OnceLock<Counter>; ANSWER_SLOTS] = [const { OnceLock::new() }; ANSWER_SLOTS];
static DISCOUNTS: [OnceLock<Histogram>; DISCOUNT_SLOTS] = [const { OnceLock::new() }; DISCOUNT_SLOTS];
static CANDIDATES: [OnceLock<Counter>; CANDIDATE_SLOTS] = [const { OnceLock::new() }; CANDIDATE_SLOTS];

/// One answered goods price, as the result metrics see it.
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    pub path: PricePath,
    /// The winning activity's kind; `None`: the original price.
    pub kind: Option<ActivityKind>,
    pub channel: Channel,
    pub tier: Tier,
    pub original: Decimal,
    pub price: Decimal,
}

impl Answer {
    /// The answer an engine quote gives.
    pub fn of(path: PricePath, quote: &pricing_engine::Quote, channel: Channel, tier: Tier) -> Answer {
        Answer { path, kind: quote.winner.map(|w| w.kind), channel, tier, original: quote.original, price: quote.price }
    }
}

/// Counts one answered price: `pricing_price_answers_total` in its band, and
/// its discount in `pricing_price_discount_basis_points` when an activity
/// set it.
pub fn record_answer(answer: &Answer) {
    let basis_points = if answer.kind.is_some() { discount_basis_points(answer.original, answer.price) } else { 0 };
    record_measured(answer.path, answer.kind, answer.channel, answer.tier, basis_points);
}

/// [`record_answer`] of an answer whose discount is already measured
/// (`basis_points`, 0 without an activity): the list server's memo keeps it
/// with a remembered price.
pub fn record_measured(path: PricePath, kind: Option<ActivityKind>, channel: Channel, tier: Tier, basis_points: u32) {
    let band = Band::of(basis_points);
    let (path_at, kind_at, channel_at, tier_at) =
        (path.index(), kind_index(kind), channel_index(channel), tier_index(tier));
    let slot = (((path_at * KINDS + kind_at) * CHANNELS + channel_at) * TIERS + tier_at) * Band::COUNT + band.index();
    if let Some(cell) = ANSWERS.get(slot) {
        cell.get_or_init(|| {
            metrics::counter!(
                ANSWERS_METRIC,
                "path" => path.as_str(),
                "kind" => KIND_LABELS[kind_at],
                "channel" => CHANNEL_LABELS[channel_at],
                "tier" => TIER_LABELS[tier_at],
                "band" => band.as_str(),
            )
        })
        .increment(1);
    }
    if kind.is_some()
        && let Some(cell) = DISCOUNTS.get(path_at * KINDS + kind_at)
    {
        cell.get_or_init(
            || metrics::histogram!(DISCOUNT_METRIC, "path" => path.as_str(), "kind" => KIND_LABELS[kind_at]),
        )
        .record(f64::from(basis_points));
    }
}

/// Registers, at a server's start, every `pricing_engine_candidates_total`
/// series of `paths` (11 reasons each), so that they are exported at 0
/// before the first drop (rates and dashboards see a series, not a gap).
/// The answer and discount series appear with the first answer of their
/// labels. Installs the process's Prometheus recorder first
/// ([`pricing_telemetry::prometheus`]): a handle taken before it would count
/// nowhere.
pub fn register(paths: &[PricePath]) {
    let _ = pricing_telemetry::prometheus();
    for &path in paths {
        for class in DropClass::ALL {
            let _ = candidates(path, class);
        }
    }
}

fn candidates(path: PricePath, class: DropClass) -> Option<&'static Counter> {
    let cell = CANDIDATES.get(path.index() * DropClass::COUNT + class.index())?;
    Some(cell.get_or_init(|| metrics::counter!(CANDIDATES_METRIC, "path" => path.as_str(), "reason" => class.as_str())))
}

/// Adds one call's (or one batch's) engine counts to
/// `pricing_engine_candidates_total{path,reason}`.
pub fn record_drops(path: PricePath, drops: &Drops) {
    for (class, count) in drops.nonzero() {
        if let Some(counter) = candidates(path, class) {
            counter.increment(u64::from(count));
        }
    }
}

/// The `kind` label of an activity kind (`none` for no winner).
pub const fn kind_label(kind: Option<ActivityKind>) -> &'static str {
    KIND_LABELS[kind_index(kind)]
}

/// The `tier` label of a wire tier.
pub const fn tier_label(tier: Tier) -> &'static str {
    TIER_LABELS[tier_index(tier)]
}

/// The `channel` label of a channel.
pub const fn channel_label(channel: Channel) -> &'static str {
    CHANNEL_LABELS[channel_index(channel)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_cover_every_slot_and_are_snake_case() {
        let bands = Band::ALL.map(Band::as_str);
        let paths = PricePath::ALL.map(PricePath::as_str);
        for label in KIND_LABELS.iter().chain(&CHANNEL_LABELS).chain(&TIER_LABELS).chain(&bands).chain(&paths) {
            assert!(label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'), "{label}");
        }
        for channel in Channel::ALL {
            assert_eq!(channel_label(channel), channel.as_str(), "the record's own channel names");
        }
        assert_eq!(tier_label(Tier::Database), "sql");
        assert_eq!(kind_label(Some(ActivityKind::AmountOff)), "amount_off");
        let last = (((PricePath::Order.index() * KINDS + 4) * CHANNELS + 3) * TIERS + 5) * Band::COUNT + 6;
        assert_eq!(last + 1, ANSWER_SLOTS, "the table is exactly as large as the label sets");
    }
}
