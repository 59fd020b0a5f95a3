//! Single-item activities: which apply to a caller now, what each costs, which wins.
//!
//! Layout: `evaluate` is the one rule for a candidate (filters in the
//! order documented on [`DropReason`], then `activity_price`); [`best_price`]
//! runs it over a record in one pass keeping the best two (the list path:
//! no allocation unless `explain`); [`price_units`] runs it, sorts the
//! eligible candidates and fills a quantity from the best down.

use std::cmp::Ordering;

use pricing_record::{
    Activity, ActivityKind, ActivityStatus, GoodsId, GoodsRecord, GoodsStatus, InvalidRecord, UnixMillis,
};
use rust_decimal::Decimal;

use crate::context::CallerContext;
use crate::drops::{DropClass, Drops};
use crate::error::PricingError;
use crate::money::{self, MIN_PRICE_FEN, MoneyError};
use crate::trace::{DropReason, Outcome, TraceEntry};

/// The activity that sets a quote's price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Winner {
    pub activity_id: u64,
    pub kind: ActivityKind,
    pub start_ms: UnixMillis,
    /// Exclusive: the price changes back at this instant.
    pub end_ms: UnixMillis,
    /// Units one user may buy at this price; 0 means no limit.
    pub per_user_limit: u32,
    /// `None` means unlimited.
    pub stock_left: Option<u64>,
}

/// The price of one unit of one goods for one caller at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    pub goods_id: GoodsId,
    pub currency: String,
    /// The base price, with 2 places.
    pub original: Decimal,
    /// What one unit costs now: the winner's price, or `original`.
    pub price: Decimal,
    pub winner: Option<Winner>,
    /// The unit price once the winner's per-user limit or stock is used up:
    /// the next best activity's price, or `original`. Equals `price` when the
    /// winner has neither limit (or there is no winner).
    pub price_beyond_limit: Decimal,
    /// The goods is off the shelf; prices are informational.
    pub delisted: bool,
    /// Every activity of the record in record order, with its outcome; empty
    /// (and not allocated) unless `explain` was asked.
    pub trace: Vec<TraceEntry>,
}

/// Units of one order line bought at one unit price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub quantity: u32,
    pub unit_price: Decimal,
    /// `None` for the original price (no activity, or beyond every limit).
    pub activity_id: Option<u64>,
}

/// The price of `quantity` units of one goods: which units got which price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineQuote {
    pub goods_id: GoodsId,
    /// The store selling the goods: store-scoped promotions match on it.
    pub store_id: u64,
    pub quantity: u32,
    pub unit_original: Decimal,
    /// Best price first; the quantities sum to `quantity`.
    pub segments: Vec<Segment>,
    /// Sum of quantity x unit price over the segments: the line's amount
    /// before cart promotions ([`crate::CartLine::amount`]).
    pub amount: Decimal,
    pub delisted: bool,
}

/// What [`evaluate`] says about one candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Evaluated {
    /// Eligible; its unit price in fen is below the original.
    Eligible(i128),
    /// Dropped; with its price when it was priced (`NotADiscount`).
    Dropped(DropReason, Option<i128>),
}

/// An eligible candidate with its price; ordered best first by [`Priced::order`].
#[derive(Debug, Clone, Copy)]
struct Priced<'a> {
    activity: &'a Activity,
    /// Position in the record: the last tie-break, so that duplicate ids
    /// still give one deterministic answer.
    index: usize,
    price: i128,
}

impl Priced<'_> {
    /// Lowest price first; on equal prices higher priority, then lower id.
    fn order(&self, other: &Self) -> Ordering {
        self.price
            .cmp(&other.price)
            .then_with(|| other.activity.priority.cmp(&self.activity.priority))
            .then_with(|| self.activity.id.cmp(&other.activity.id))
            .then_with(|| self.index.cmp(&other.index))
    }

    /// Units that may be bought at this price: the smaller of the per-user
    /// limit and the stock left; `None` when neither limits it.
    fn cap(&self) -> Option<u64> {
        let per_user = (self.activity.per_user_limit > 0).then_some(u64::from(self.activity.per_user_limit));
        match (per_user, self.activity.stock_left) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn winner(&self) -> Winner {
        let a = self.activity;
        Winner {
            activity_id: a.id,
            kind: a.kind,
            start_ms: a.start_ms,
            end_ms: a.end_ms,
            per_user_limit: a.per_user_limit,
            stock_left: a.stock_left,
        }
    }
}

/// Checks the record as a whole and returns its base price in fen.
fn original_fen(record: &GoodsRecord) -> Result<i128, PricingError> {
    if record.is_tombstone() {
        return Err(PricingError::Deleted { goods_id: record.goods_id });
    }
    record.validate().map_err(|source| PricingError::InvalidRecord { goods_id: record.goods_id, source })?;
    money::fen_bounded(record.base_price).map_err(|problem| match problem {
        MoneyError::TooLarge(value) => PricingError::BasePriceTooLarge { goods_id: record.goods_id, value },
        // validate() already rejected the others; kept typed rather than unreachable!().
        problem => PricingError::InvalidRecord {
            goods_id: record.goods_id,
            source: InvalidRecord::money("base_price", problem),
        },
    })
}

/// Whether `activity` applies to `ctx` at `now`; the first failing filter in
/// the order documented on [`DropReason`].
#[inline(always)]
fn check(activity: &Activity, goods_id: GoodsId, ctx: &CallerContext, now: UnixMillis) -> Result<(), DropReason> {
    if activity.deleted {
        return Err(DropReason::Deleted);
    }
    if activity.status != ActivityStatus::Online {
        return Err(DropReason::NotOnline(activity.status));
    }
    activity.validate(goods_id).map_err(DropReason::Invalid)?;
    if now < activity.start_ms {
        return Err(DropReason::WindowNotStarted);
    }
    if now >= activity.end_ms {
        return Err(DropReason::WindowEnded);
    }
    if !activity.channels.contains(ctx.channel) {
        return Err(DropReason::Channel);
    }
    if !in_scope(&activity.city_ids, ctx.city_id) {
        return Err(DropReason::City);
    }
    if !in_scope(&activity.store_ids, ctx.store_id) {
        return Err(DropReason::Store);
    }
    if activity.new_user_only && !ctx.new_user {
        return Err(DropReason::NewUserOnly);
    }
    if ctx.member_level < activity.min_member_level {
        return Err(DropReason::MemberLevel);
    }
    if activity.stock_left == Some(0) {
        return Err(DropReason::OutOfStock);
    }
    Ok(())
}

/// An empty scope list means everywhere; otherwise the caller's value must
/// be known and listed.
fn in_scope(scope: &[u64], caller: Option<u64>) -> bool {
    scope.is_empty() || caller.is_some_and(|value| scope.contains(&value))
}

/// The unit price (fen) an activity gives on `original` (fen): FlashSale and
/// Subsidy their fixed price, Discount `original * value / 100` rounded to
/// the fen half-up (the one rounding, in [`money::percent_of`]), AmountOff
/// `original - value`; then clamped to [0.01, original].
pub(crate) fn activity_price(kind: ActivityKind, value_fen: i128, original: i128) -> i128 {
    let raw = match kind {
        ActivityKind::FlashSale | ActivityKind::Subsidy => value_fen,
        // original <= MAX_AMOUNT and value < 100 (validated): cannot overflow.
        ActivityKind::Discount => money::percent_of(original, value_fen).unwrap_or(original),
        ActivityKind::AmountOff => original.saturating_sub(value_fen),
    };
    // min/max rather than clamp: clamp panics if the bounds cross.
    raw.min(original).max(MIN_PRICE_FEN)
}

/// The whole rule for one candidate: filters, price, "is it a discount".
#[inline(always)]
fn evaluate(activity: &Activity, goods_id: GoodsId, ctx: &CallerContext, now: UnixMillis, original: i128) -> Evaluated {
    if let Err(reason) = check(activity, goods_id, ctx, now) {
        return Evaluated::Dropped(reason, None);
    }
    let value_fen = match money::fen(activity.value) {
        Ok(fen) => fen,
        // Activity::validate checks scale and sign; kept typed all the same.
        Err(_) => {
            let problem = InvalidRecord::Scale { field: "activity.value", value: activity.value };
            return Evaluated::Dropped(DropReason::Invalid(problem), None);
        }
    };
    let price = activity_price(activity.kind, value_fen, original);
    if price >= original {
        return Evaluated::Dropped(DropReason::NotADiscount, Some(price));
    }
    Evaluated::Eligible(price)
}

fn to_decimal(fen: i128) -> Result<Decimal, PricingError> {
    money::decimal(fen).ok_or(PricingError::Overflow)
}

/// The best unit price of `record` for `ctx` at `now`: the hot path of the
/// list page. One pass over the activities, no allocation unless `explain`
/// (then the quote's trace holds every activity with its outcome).
///
/// Errors: the record is a tombstone ([`PricingError::Deleted`]) or not
/// valid ([`PricingError::InvalidRecord`], [`PricingError::BasePriceTooLarge`]).
/// A delisted goods is priced and flagged.
pub fn best_price(
    record: &GoodsRecord,
    ctx: &CallerContext,
    now: UnixMillis,
    explain: bool,
) -> Result<Quote, PricingError> {
    best_price_counted(record, ctx, now, explain, &mut Drops::default())
}

/// [`best_price`], also adding to `drops` every candidate that did not set
/// the price, by class (the price-process metrics; nothing is allocated for
/// them). On an error nothing is counted.
pub fn best_price_counted(
    record: &GoodsRecord,
    ctx: &CallerContext,
    now: UnixMillis,
    explain: bool,
    drops: &mut Drops,
) -> Result<Quote, PricingError> {
    let original = original_fen(record)?;
    let mut best: Option<Priced<'_>> = None;
    let mut second: Option<Priced<'_>> = None;
    let mut eligible: u32 = 0;
    let mut trace = Vec::new();
    if explain {
        trace.reserve_exact(record.activities.len());
    }
    for (index, activity) in record.activities.iter().enumerate() {
        let evaluated = evaluate(activity, record.goods_id, ctx, now, original);
        if let Evaluated::Dropped(reason, _) = &evaluated {
            drops.add(DropClass::of(reason));
        }
        if let Evaluated::Eligible(price) = evaluated {
            eligible = eligible.saturating_add(1);
            let candidate = Priced { activity, index, price };
            if best.is_none_or(|b| candidate.order(&b).is_lt()) {
                second = best;
                best = Some(candidate);
            } else if second.is_none_or(|s| candidate.order(&s).is_lt()) {
                second = Some(candidate);
            }
        }
        if explain {
            let (outcome, price) = match evaluated {
                // Provisional: settled below once the winner is known.
                Evaluated::Eligible(price) => (Outcome::Won, Some(price)),
                Evaluated::Dropped(reason, price) => (Outcome::Dropped(reason), price),
            };
            trace.push(TraceEntry {
                activity_id: activity.id,
                kind: activity.kind,
                outcome,
                price: price.and_then(money::decimal),
            });
        }
    }
    if let Some(best) = best {
        for (index, entry) in trace.iter_mut().enumerate() {
            if entry.outcome == Outcome::Won && index != best.index {
                entry.outcome = Outcome::Lost { beaten_by: best.activity.id };
            }
        }
    }
    // Every eligible candidate but the winner lost to it.
    drops.add_n(DropClass::Beaten, eligible.saturating_sub(1));
    let price = best.map_or(original, |b| b.price);
    let beyond = match best {
        Some(b) if b.cap().is_some() => second.map_or(original, |s| s.price),
        _ => price,
    };
    Ok(Quote {
        goods_id: record.goods_id,
        currency: record.currency.clone(),
        original: to_decimal(original)?,
        price: to_decimal(price)?,
        winner: best.map(|b| b.winner()),
        price_beyond_limit: to_decimal(beyond)?,
        delisted: record.status == GoodsStatus::Delisted,
        trace,
    })
}

/// The price of `quantity` units: filled greedily from the best eligible
/// activity (up to its per-user limit and stock left), then the next best,
/// and so on, then the original price. The same candidates and order as
/// [`best_price`]; its trace explains this line too.
///
/// Errors: those of [`best_price`], and [`PricingError::ZeroQuantity`].
pub fn price_units(
    record: &GoodsRecord,
    ctx: &CallerContext,
    now: UnixMillis,
    quantity: u32,
) -> Result<LineQuote, PricingError> {
    price_units_counted(record, ctx, now, quantity, &mut Drops::default())
}

/// [`price_units`], also adding to `drops` every candidate dropped by a
/// filter, and as `beaten` every eligible candidate but the best (which may
/// still fill units beyond the best one's limit). On an error nothing is
/// counted.
pub fn price_units_counted(
    record: &GoodsRecord,
    ctx: &CallerContext,
    now: UnixMillis,
    quantity: u32,
    drops: &mut Drops,
) -> Result<LineQuote, PricingError> {
    if quantity == 0 {
        return Err(PricingError::ZeroQuantity);
    }
    let original = original_fen(record)?;
    let mut candidates: Vec<Priced<'_>> = record
        .activities
        .iter()
        .enumerate()
        .filter_map(|(index, activity)| match evaluate(activity, record.goods_id, ctx, now, original) {
            Evaluated::Eligible(price) => Some(Priced { activity, index, price }),
            Evaluated::Dropped(reason, _) => {
                drops.add(DropClass::of(&reason));
                None
            }
        })
        .collect();
    candidates.sort_unstable_by(Priced::order);
    drops.add_n(DropClass::Beaten, u32::try_from(candidates.len().saturating_sub(1)).unwrap_or(u32::MAX));

    let mut segments = Vec::new();
    let mut amount: i128 = 0;
    let mut remaining = quantity;
    for candidate in &candidates {
        if remaining == 0 {
            break;
        }
        let take = match candidate.cap() {
            // cap < remaining <= u32::MAX whenever it is the minimum.
            Some(cap) => u32::try_from(cap.min(u64::from(remaining))).unwrap_or(remaining),
            None => remaining,
        };
        segments.push(Segment {
            quantity: take,
            unit_price: to_decimal(candidate.price)?,
            activity_id: Some(candidate.activity.id),
        });
        amount += i128::from(take) * candidate.price;
        remaining -= take;
    }
    if remaining > 0 {
        segments.push(Segment { quantity: remaining, unit_price: to_decimal(original)?, activity_id: None });
        amount += i128::from(remaining) * original;
    }
    Ok(LineQuote {
        goods_id: record.goods_id,
        store_id: record.store_id,
        quantity,
        unit_original: to_decimal(original)?,
        segments,
        amount: to_decimal(amount)?,
        delisted: record.status == GoodsStatus::Delisted,
    })
}

#[cfg(test)]
mod tests {
    use pricing_record::{Channel, Channels};
    use rust_decimal_macros::dec;

    use super::*;

    const NOW: UnixMillis = 1_700_000_000_000;
    const GOODS: GoodsId = 42;

    fn activity(id: u64, kind: ActivityKind, value: Decimal) -> Activity {
        Activity::open(id, GOODS, kind, value, NOW - 1_000, NOW + 1_000)
    }

    fn record(base_price: Decimal, activities: Vec<Activity>) -> GoodsRecord {
        GoodsRecord {
            goods_id: GOODS,
            version: 7,
            store_id: 9,
            base_price,
            currency: "CNY".into(),
            status: GoodsStatus::OnSale,
            activities,
        }
    }

    fn ctx() -> CallerContext {
        CallerContext {
            pin: "u1".into(),
            store_id: Some(9),
            city_id: Some(1),
            channel: Channel::App,
            new_user: false,
            member_level: 0,
        }
    }

    fn quote(r: &GoodsRecord) -> Quote {
        best_price(r, &ctx(), NOW, true).expect("priced")
    }

    fn dropped(r: &GoodsRecord) -> DropReason {
        match &quote(r).trace[0].outcome {
            Outcome::Dropped(reason) => reason.clone(),
            other => panic!("expected a drop, got {other:?}"),
        }
    }

    #[test]
    fn no_activity_gives_the_original_price() {
        let q = quote(&record(dec!(10), vec![]));
        assert_eq!(q.price, dec!(10.00));
        assert_eq!(q.original.to_string(), "10.00");
        assert_eq!(q.price_beyond_limit, dec!(10));
        assert_eq!(q.winner, None);
        assert!(q.trace.is_empty());
        assert_eq!(q.currency, "CNY");
        assert!(!q.delisted);
    }

    #[test]
    fn each_kind_is_priced() {
        let cases = [
            (ActivityKind::FlashSale, dec!(6.5), dec!(6.50)),
            (ActivityKind::Subsidy, dec!(7), dec!(7.00)),
            (ActivityKind::Discount, dec!(85), dec!(16.99)), // 19.99 * 0.85 = 16.9915
            (ActivityKind::AmountOff, dec!(3), dec!(16.99)),
        ];
        for (kind, value, expected) in cases {
            let q = quote(&record(dec!(19.99), vec![activity(1, kind, value)]));
            assert_eq!(q.price, expected, "{kind:?}");
            assert_eq!(q.price.scale(), 2);
            assert_eq!(q.winner.map(|w| w.activity_id), Some(1));
            assert_eq!(q.trace[0].outcome, Outcome::Won);
            assert_eq!(q.trace[0].price, Some(expected));
        }
    }

    #[test]
    fn discount_rounds_half_up_to_the_fen() {
        // 0.05 * 50% = 0.025 -> 0.03 (banker's rounding would give 0.02)
        let q = quote(&record(dec!(0.05), vec![activity(1, ActivityKind::Discount, dec!(50))]));
        assert_eq!(q.price, dec!(0.03));
        // 0.15 * 10% = 0.015 -> 0.02
        let q = quote(&record(dec!(0.15), vec![activity(1, ActivityKind::Discount, dec!(10))]));
        assert_eq!(q.price, dec!(0.02));
        // 10.01 * 33.33% = 3.336333 -> 3.34
        let q = quote(&record(dec!(10.01), vec![activity(1, ActivityKind::Discount, dec!(33.33))]));
        assert_eq!(q.price, dec!(3.34));
    }

    #[test]
    fn price_is_never_below_one_fen() {
        let q = quote(&record(dec!(5), vec![activity(1, ActivityKind::AmountOff, dec!(50))]));
        assert_eq!(q.price, dec!(0.01));
        let q = quote(&record(dec!(0.01), vec![activity(1, ActivityKind::Discount, dec!(1))]));
        // 0.01 * 1% rounds to 0.00, clamped to 0.01 = original: not a discount.
        assert_eq!(q.price, dec!(0.01));
        assert_eq!(q.winner, None);
    }

    #[test]
    fn price_not_below_original_is_not_a_discount() {
        let r = record(dec!(10), vec![activity(1, ActivityKind::FlashSale, dec!(12))]);
        let q = quote(&r);
        assert_eq!(q.price, dec!(10));
        assert_eq!(q.winner, None);
        assert_eq!(q.trace[0].outcome, Outcome::Dropped(DropReason::NotADiscount));
        assert_eq!(q.trace[0].price, Some(dec!(10.00)), "clamped to the original");
        let r = record(dec!(10), vec![activity(1, ActivityKind::FlashSale, dec!(10))]);
        assert_eq!(dropped(&r), DropReason::NotADiscount);
    }

    #[test]
    fn lowest_price_wins_and_others_lose_to_it() {
        let r = record(
            dec!(100),
            vec![
                activity(1, ActivityKind::Discount, dec!(90)),
                activity(2, ActivityKind::FlashSale, dec!(79)),
                activity(3, ActivityKind::AmountOff, dec!(15)),
            ],
        );
        let q = quote(&r);
        assert_eq!(q.price, dec!(79));
        assert_eq!(q.winner.unwrap().activity_id, 2);
        let outcomes: Vec<_> = q.trace.iter().map(|e| e.outcome.clone()).collect();
        assert_eq!(outcomes, [Outcome::Lost { beaten_by: 2 }, Outcome::Won, Outcome::Lost { beaten_by: 2 }]);
        assert_eq!(q.trace[0].price, Some(dec!(90.00)));
        assert_eq!(q.trace[2].price, Some(dec!(85.00)));
    }

    #[test]
    fn tie_on_price_goes_to_higher_priority_then_lower_id() {
        let mut a = activity(5, ActivityKind::FlashSale, dec!(8));
        let mut b = activity(3, ActivityKind::FlashSale, dec!(8));
        let c = activity(4, ActivityKind::FlashSale, dec!(8));
        a.priority = 2;
        b.priority = 1;
        let q = quote(&record(dec!(10), vec![b.clone(), a.clone(), c.clone()]));
        assert_eq!(q.winner.unwrap().activity_id, 5, "higher priority");
        a.priority = 1;
        let q = quote(&record(dec!(10), vec![a, c, b]));
        assert_eq!(q.winner.unwrap().activity_id, 3, "same priority: lower id");
    }

    #[test]
    fn every_drop_reason_is_reported() {
        let base = || activity(1, ActivityKind::FlashSale, dec!(5));
        let cases: Vec<(Activity, DropReason)> = vec![
            (Activity { deleted: true, ..base() }, DropReason::Deleted),
            (Activity { status: ActivityStatus::Draft, ..base() }, DropReason::NotOnline(ActivityStatus::Draft)),
            (Activity { status: ActivityStatus::Offline, ..base() }, DropReason::NotOnline(ActivityStatus::Offline)),
            (
                Activity { start_ms: NOW, end_ms: NOW, ..base() },
                DropReason::Invalid(InvalidRecord::EmptyWindow { activity_id: 1 }),
            ),
            (
                Activity { value: dec!(5.001), ..base() },
                DropReason::Invalid(InvalidRecord::Scale { field: "activity.value", value: dec!(5.001) }),
            ),
            (
                Activity { goods_id: 43, ..base() },
                DropReason::Invalid(InvalidRecord::ForeignActivity { activity_id: 1, goods_id: 43 }),
            ),
            (Activity { start_ms: NOW + 1, ..base() }, DropReason::WindowNotStarted),
            (Activity { end_ms: NOW, ..base() }, DropReason::WindowEnded),
            (Activity { channels: Channels::NONE.with(Channel::Pc), ..base() }, DropReason::Channel),
            (Activity { city_ids: vec![2, 3], ..base() }, DropReason::City),
            (Activity { store_ids: vec![8], ..base() }, DropReason::Store),
            (Activity { new_user_only: true, ..base() }, DropReason::NewUserOnly),
            (Activity { min_member_level: 1, ..base() }, DropReason::MemberLevel),
            (Activity { stock_left: Some(0), ..base() }, DropReason::OutOfStock),
            (Activity { value: dec!(11), ..base() }, DropReason::NotADiscount),
        ];
        for (candidate, expected) in cases {
            let r = record(dec!(10), vec![candidate.clone()]);
            assert_eq!(dropped(&r), expected, "{candidate:?}");
            assert_eq!(quote(&r).price, dec!(10), "a dropped activity never sets the price");
            assert_eq!(best_price(&r, &ctx(), NOW, false).unwrap().price, dec!(10));
        }
    }

    #[test]
    fn every_candidate_that_does_not_set_the_price_is_counted_by_class() {
        let r = record(
            dec!(10),
            vec![
                activity(1, ActivityKind::FlashSale, dec!(5)),
                activity(2, ActivityKind::Discount, dec!(90)),
                activity(3, ActivityKind::AmountOff, dec!(1)),
                Activity { start_ms: NOW + 1, ..activity(4, ActivityKind::FlashSale, dec!(1)) },
                Activity { end_ms: NOW, ..activity(5, ActivityKind::FlashSale, dec!(1)) },
                Activity { city_ids: vec![2], ..activity(6, ActivityKind::FlashSale, dec!(1)) },
                Activity { city_ids: vec![3], ..activity(7, ActivityKind::FlashSale, dec!(1)) },
                Activity { new_user_only: true, ..activity(8, ActivityKind::FlashSale, dec!(1)) },
                Activity { min_member_level: 5, ..activity(9, ActivityKind::FlashSale, dec!(1)) },
                Activity { status: ActivityStatus::Offline, ..activity(10, ActivityKind::FlashSale, dec!(1)) },
                Activity { stock_left: Some(0), ..activity(11, ActivityKind::FlashSale, dec!(1)) },
                activity(12, ActivityKind::FlashSale, dec!(11)),
            ],
        );
        let mut drops = Drops::default();
        let q = best_price_counted(&r, &ctx(), NOW, false, &mut drops).unwrap();
        assert_eq!(q.price, dec!(5));
        let expected = [
            (DropClass::NotStarted, 1),
            (DropClass::Ended, 1),
            (DropClass::City, 2),
            (DropClass::Eligibility, 2),
            (DropClass::Stock, 1),
            (DropClass::Status, 1),
            (DropClass::Beaten, 2),
            (DropClass::NotADiscount, 1),
        ];
        assert_eq!(drops.nonzero().collect::<Vec<_>>(), expected);
        assert_eq!(drops.total(), 11, "all but the winner");
        // The same counts with explain, and from an order line; they add up.
        best_price_counted(&r, &ctx(), NOW, true, &mut drops).unwrap();
        price_units_counted(&r, &ctx(), NOW, 3, &mut drops).unwrap();
        assert_eq!(drops.get(DropClass::City), 6);
        assert_eq!(drops.get(DropClass::Beaten), 6);
        // No winner: nothing is beaten.
        let mut drops = Drops::default();
        let lone = record(
            dec!(10),
            vec![Activity {
                channels: Channels::NONE.with(Channel::Pc),
                ..activity(1, ActivityKind::FlashSale, dec!(5))
            }],
        );
        best_price_counted(&lone, &ctx(), NOW, false, &mut drops).unwrap();
        assert_eq!(drops.nonzero().collect::<Vec<_>>(), [(DropClass::Channel, 1)]);
    }

    #[test]
    fn window_is_start_inclusive_end_exclusive() {
        let r = record(dec!(10), vec![activity(1, ActivityKind::FlashSale, dec!(5))]);
        let a = &r.activities[0];
        assert_eq!(best_price(&r, &ctx(), a.start_ms, false).unwrap().price, dec!(5));
        assert_eq!(best_price(&r, &ctx(), a.end_ms - 1, false).unwrap().price, dec!(5));
        assert_eq!(best_price(&r, &ctx(), a.end_ms, false).unwrap().price, dec!(10));
        assert_eq!(best_price(&r, &ctx(), a.start_ms - 1, false).unwrap().price, dec!(10));
    }

    #[test]
    fn scopes_and_conditions_that_match_keep_the_activity() {
        let a = Activity {
            city_ids: vec![1, 2],
            store_ids: vec![9],
            new_user_only: true,
            min_member_level: 3,
            channels: Channels::NONE.with(Channel::App),
            stock_left: Some(1),
            ..activity(1, ActivityKind::FlashSale, dec!(5))
        };
        let r = record(dec!(10), vec![a]);
        let caller = CallerContext { new_user: true, member_level: 3, ..ctx() };
        assert_eq!(best_price(&r, &caller, NOW, false).unwrap().price, dec!(5));
        let unknown = CallerContext { city_id: None, ..caller.clone() };
        assert_eq!(best_price(&r, &unknown, NOW, false).unwrap().price, dec!(10), "unknown city: scoped out");
        let no_store = CallerContext { store_id: None, ..caller };
        assert_eq!(best_price(&r, &no_store, NOW, false).unwrap().price, dec!(10), "unknown store: scoped out");
    }

    #[test]
    fn a_dropped_invalid_activity_does_not_hide_a_valid_one() {
        let bad = Activity { value: dec!(-1), ..activity(1, ActivityKind::FlashSale, dec!(0)) };
        let good = activity(2, ActivityKind::Discount, dec!(80));
        let q = quote(&record(dec!(10), vec![bad, good]));
        assert_eq!(q.price, dec!(8));
        assert!(matches!(q.trace[0].outcome, Outcome::Dropped(DropReason::Invalid(_))));
    }

    #[test]
    fn tombstone_and_invalid_records_are_typed_errors() {
        let tomb = GoodsRecord::tombstone(GOODS, 3);
        assert_eq!(best_price(&tomb, &ctx(), NOW, false), Err(PricingError::Deleted { goods_id: GOODS }));
        assert_eq!(price_units(&tomb, &ctx(), NOW, 1), Err(PricingError::Deleted { goods_id: GOODS }));
        for base in [dec!(0), dec!(-1), dec!(1.005)] {
            let err = best_price(&record(base, vec![]), &ctx(), NOW, false).unwrap_err();
            assert!(matches!(err, PricingError::InvalidRecord { goods_id: GOODS, .. }), "{base}: {err:?}");
        }
        let mut bad_currency = record(dec!(1), vec![]);
        bad_currency.currency = "yuan".into();
        assert!(matches!(
            best_price(&bad_currency, &ctx(), NOW, false),
            Err(PricingError::InvalidRecord { source: InvalidRecord::Currency(_), .. })
        ));
        let huge = record(Decimal::MAX, vec![activity(1, ActivityKind::Discount, dec!(50))]);
        assert!(matches!(best_price(&huge, &ctx(), NOW, false), Err(PricingError::BasePriceTooLarge { .. })));
    }

    #[test]
    fn delisted_goods_is_priced_and_flagged() {
        let mut r = record(dec!(10), vec![activity(1, ActivityKind::FlashSale, dec!(5))]);
        r.status = GoodsStatus::Delisted;
        let q = quote(&r);
        assert!(q.delisted);
        assert_eq!(q.price, dec!(5));
        assert!(price_units(&r, &ctx(), NOW, 1).unwrap().delisted);
    }

    #[test]
    fn trace_is_empty_unless_asked() {
        let r = record(dec!(10), vec![activity(1, ActivityKind::FlashSale, dec!(5))]);
        let q = best_price(&r, &ctx(), NOW, false).unwrap();
        assert!(q.trace.is_empty());
        assert_eq!(q.trace.capacity(), 0, "no allocation on the hot path");
        assert_eq!(quote(&r).trace.len(), 1);
    }

    #[test]
    fn price_beyond_limit_is_the_next_best_or_the_original() {
        let limited = Activity { per_user_limit: 2, ..activity(1, ActivityKind::FlashSale, dec!(5)) };
        let next = activity(2, ActivityKind::Discount, dec!(90));
        let q = quote(&record(dec!(10), vec![limited.clone(), next]));
        assert_eq!((q.price, q.price_beyond_limit), (dec!(5), dec!(9)));
        let q = quote(&record(dec!(10), vec![limited]));
        assert_eq!((q.price, q.price_beyond_limit), (dec!(5), dec!(10)));
        let stocked = Activity { stock_left: Some(3), ..activity(1, ActivityKind::FlashSale, dec!(5)) };
        assert_eq!(quote(&record(dec!(10), vec![stocked])).price_beyond_limit, dec!(10));
        let unlimited = activity(1, ActivityKind::FlashSale, dec!(5));
        assert_eq!(quote(&record(dec!(10), vec![unlimited])).price_beyond_limit, dec!(5));
    }

    #[test]
    fn winner_carries_window_and_limits() {
        let a = Activity { per_user_limit: 2, stock_left: Some(100), ..activity(7, ActivityKind::Subsidy, dec!(5)) };
        let w = quote(&record(dec!(10), vec![a.clone()])).winner.unwrap();
        assert_eq!(
            w,
            Winner {
                activity_id: 7,
                kind: ActivityKind::Subsidy,
                start_ms: a.start_ms,
                end_ms: a.end_ms,
                per_user_limit: 2,
                stock_left: Some(100),
            }
        );
    }

    fn segments(q: &LineQuote) -> Vec<(u32, Decimal, Option<u64>)> {
        q.segments.iter().map(|s| (s.quantity, s.unit_price, s.activity_id)).collect()
    }

    #[test]
    fn units_spill_from_limit_to_next_best_to_original() {
        let flash = Activity { per_user_limit: 2, ..activity(1, ActivityKind::FlashSale, dec!(5)) };
        let discount = Activity { stock_left: Some(3), ..activity(2, ActivityKind::Discount, dec!(80)) };
        let r = record(dec!(10), vec![discount, flash]);
        let q = price_units(&r, &ctx(), NOW, 7).unwrap();
        assert_eq!(segments(&q), [(2, dec!(5), Some(1)), (3, dec!(8), Some(2)), (2, dec!(10), None)]);
        assert_eq!(q.amount, dec!(54.00)); // 10 + 24 + 20
        assert_eq!(q.amount.scale(), 2);
        assert_eq!((q.goods_id, q.store_id, q.quantity, q.unit_original), (GOODS, 9, 7, dec!(10)));

        let q = price_units(&r, &ctx(), NOW, 2).unwrap();
        assert_eq!(segments(&q), [(2, dec!(5), Some(1))]);
        let q = price_units(&r, &ctx(), NOW, 4).unwrap();
        assert_eq!(segments(&q), [(2, dec!(5), Some(1)), (2, dec!(8), Some(2))]);
    }

    #[test]
    fn units_cap_is_the_smaller_of_limit_and_stock() {
        let a = Activity { per_user_limit: 5, stock_left: Some(1), ..activity(1, ActivityKind::FlashSale, dec!(5)) };
        let q = price_units(&record(dec!(10), vec![a]), &ctx(), NOW, 3).unwrap();
        assert_eq!(segments(&q), [(1, dec!(5), Some(1)), (2, dec!(10), None)]);
    }

    #[test]
    fn units_without_activity_or_limits() {
        let q = price_units(&record(dec!(2.5), vec![]), &ctx(), NOW, 3).unwrap();
        assert_eq!(segments(&q), [(3, dec!(2.5), None)]);
        assert_eq!(q.amount, dec!(7.5));
        let a = activity(1, ActivityKind::AmountOff, dec!(0.5));
        let q = price_units(&record(dec!(2.5), vec![a]), &ctx(), NOW, u32::MAX).unwrap();
        assert_eq!(segments(&q), [(u32::MAX, dec!(2), Some(1))]);
        assert_eq!(q.amount, Decimal::from(u32::MAX) * dec!(2));
    }

    #[test]
    fn zero_quantity_is_a_typed_error() {
        assert_eq!(price_units(&record(dec!(1), vec![]), &ctx(), NOW, 0), Err(PricingError::ZeroQuantity));
    }

    #[test]
    fn units_first_segment_matches_best_price() {
        let r = record(
            dec!(50),
            vec![
                activity(1, ActivityKind::Discount, dec!(70)),
                Activity { priority: 9, ..activity(2, ActivityKind::FlashSale, dec!(35)) },
                activity(3, ActivityKind::FlashSale, dec!(35)),
            ],
        );
        let q = best_price(&r, &ctx(), NOW, false).unwrap();
        let line = price_units(&r, &ctx(), NOW, 1).unwrap();
        assert_eq!(line.segments[0].unit_price, q.price);
        assert_eq!(line.segments[0].activity_id, q.winner.map(|w| w.activity_id));
        assert_eq!(q.winner.unwrap().activity_id, 2);
    }
}
