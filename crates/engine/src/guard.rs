//! The price guard: activities whose price breaks an operator's rule.
//!
//! Seed 004 3.2: a wrong price is hard to notice and does lasting harm; the
//! classic incident is a fat-fingered activity selling a 599.00 goods for
//! 5.99. The rules (from the control file's `[guard]` section) are per
//! activity kind: a floor on the activity price as a share of the original
//! ([`GuardRule::FloorShare`]), a largest amount off ([`GuardRule::MaxOff`])
//! and a lowest price ([`GuardRule::MinPrice`]); an allow-list exempts named
//! activity ids. A rule's [`GuardMode`] says what the servers do with a
//! breach: `alert` serves the price and counts it, `block` prices the record
//! without the breaching activities (the next best price, or the original)
//! and marks them [`Outcome::Blocked`] in the explanation trace.
//!
//! Layout: [`breaches`] judges a record (the projector's report, the
//! rehearsal); [`screen`] gives the record the servers price (borrowed and
//! unchanged unless a `block` rule removes an activity); [`best_price_guarded`]
//! and [`price_units_guarded`] are [`best_price`] and [`price_units`] under
//! the rules, returning the breach that set (alert) or would have set (block)
//! the price, for the servers to count. The judgement uses the activity's own
//! price ([`crate::activity`]'s one price rule, clamped to [0.01, original])
//! and does not depend on the caller, so a record's breaches are the same for
//! every call. With no rules nothing is judged and nothing allocated.

use std::borrow::Cow;

use pricing_record::{Activity, ActivityKind, ActivityStatus, GoodsRecord, UnixMillis};
use rust_decimal::Decimal;

use crate::activity::{
    LineQuote, Quote, activity_price, best_price, best_price_counted, price_units, price_units_counted,
};
use crate::context::CallerContext;
use crate::drops::Drops;
use crate::error::PricingError;
use crate::money::{self, Fen};
use crate::trace::{Outcome, TraceEntry};

/// Every activity kind, in the order of [`kind_label`]'s labels.
pub const KINDS: [ActivityKind; 4] =
    [ActivityKind::FlashSale, ActivityKind::Discount, ActivityKind::AmountOff, ActivityKind::Subsidy];

/// The snake_case name of a kind, as the control file's `[guard.rules.<kind>]`
/// and the `kind` metric label spell it.
pub const fn kind_label(kind: ActivityKind) -> &'static str {
    match kind {
        ActivityKind::FlashSale => "flash_sale",
        ActivityKind::Discount => "discount",
        ActivityKind::AmountOff => "amount_off",
        ActivityKind::Subsidy => "subsidy",
    }
}

fn kind_index(kind: ActivityKind) -> usize {
    match kind {
        ActivityKind::FlashSale => 0,
        ActivityKind::Discount => 1,
        ActivityKind::AmountOff => 2,
        ActivityKind::Subsidy => 3,
    }
}

/// What the servers do with a breach.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum GuardMode {
    /// Serve the price, count it (`pricing_guard_breaches_total`).
    #[default]
    Alert,
    /// Price without the breaching activity, count it, say so in the trace.
    Block,
}

impl GuardMode {
    /// `"alert"` or `"block"`: the `mode` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            GuardMode::Alert => "alert",
            GuardMode::Block => "block",
        }
    }
}

/// Which rule an activity breaks. Checked in this order; the first is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GuardRule {
    /// The activity price is below `floor_share_basis_points` of the original.
    FloorShare,
    /// More than `max_off` is taken off the original.
    MaxOff,
    /// The activity price is below `min_price`.
    MinPrice,
}

impl GuardRule {
    /// Every label [`GuardRule::as_str`] can return.
    pub const LABELS: [&'static str; 3] = ["floor_share", "max_off", "min_price"];

    /// Stable snake_case label: the `rule` metric label and the trace's wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            GuardRule::FloorShare => "floor_share",
            GuardRule::MaxOff => "max_off",
            GuardRule::MinPrice => "min_price",
        }
    }
}

/// The rules for one activity kind; an absent limit is not checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindRule {
    /// Lowest activity price as a share of the original, in basis points
    /// (2000: the price must be at least 20% of the original).
    pub floor_share_basis_points: Option<u32>,
    /// Largest amount an activity may take off the original.
    pub max_off: Option<Fen>,
    /// Lowest activity price.
    pub min_price: Option<Fen>,
    pub mode: GuardMode,
}

impl KindRule {
    /// The first rule an activity price breaks, if any.
    fn broken(&self, price: i128, original: i128) -> Option<GuardRule> {
        if let Some(bp) = self.floor_share_basis_points
            && price.saturating_mul(10_000) < original.saturating_mul(i128::from(bp))
        {
            return Some(GuardRule::FloorShare);
        }
        if let Some(max_off) = self.max_off
            && original.saturating_sub(price) > max_off.get()
        {
            return Some(GuardRule::MaxOff);
        }
        if let Some(min_price) = self.min_price
            && price < min_price.get()
        {
            return Some(GuardRule::MinPrice);
        }
        None
    }
}

/// Every guard rule in force, by kind, with the allow-list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuardRules {
    by_kind: [Option<KindRule>; 4],
    /// Sorted: exempt activity ids.
    allow: Vec<u64>,
}

impl GuardRules {
    /// Rules for the kinds given (a kind named twice: the last wins) and
    /// the exempt activity ids.
    pub fn new(
        rules: impl IntoIterator<Item = (ActivityKind, KindRule)>,
        allow: impl IntoIterator<Item = u64>,
    ) -> GuardRules {
        let mut by_kind = [None; 4];
        for (kind, rule) in rules {
            if let Some(slot) = by_kind.get_mut(kind_index(kind)) {
                *slot = Some(rule);
            }
        }
        let mut allow: Vec<u64> = allow.into_iter().collect();
        allow.sort_unstable();
        allow.dedup();
        GuardRules { by_kind, allow }
    }

    /// No kind has a rule: nothing is ever judged.
    pub fn is_empty(&self) -> bool {
        self.by_kind.iter().all(Option::is_none)
    }

    /// The rule of a kind, if it has one.
    pub fn rule(&self, kind: ActivityKind) -> Option<&KindRule> {
        self.by_kind.get(kind_index(kind)).and_then(Option::as_ref)
    }

    /// The activity is on the allow-list.
    pub fn is_allowed(&self, activity_id: u64) -> bool {
        self.allow.binary_search(&activity_id).is_ok()
    }
}

/// One activity that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breach {
    pub goods_id: u64,
    pub activity_id: u64,
    pub kind: ActivityKind,
    pub rule: GuardRule,
    pub mode: GuardMode,
    /// The goods' original price, 2 places.
    pub original: Decimal,
    /// The activity's price, 2 places.
    pub price: Decimal,
    pub start_ms: UnixMillis,
    pub end_ms: UnixMillis,
}

/// Whether an activity can still set a price at or after `now`: not
/// deleted, online, valid and its window not over. Only these are judged.
fn judged(activity: &Activity, record: &GoodsRecord, now: UnixMillis) -> bool {
    !activity.deleted
        && activity.status == ActivityStatus::Online
        && activity.end_ms > now
        && activity.validate(record.goods_id).is_ok()
}

/// The breach of one activity of a record whose original price is `original` (fen).
fn judge(
    activity: &Activity,
    record: &GoodsRecord,
    original: i128,
    rules: &GuardRules,
    now: UnixMillis,
) -> Option<Breach> {
    let rule = rules.rule(activity.kind)?;
    if !judged(activity, record, now) || rules.is_allowed(activity.id) {
        return None;
    }
    let value = money::fen(activity.value).ok()?;
    let price = activity_price(activity.kind, value, original);
    let broken = rule.broken(price, original)?;
    Some(Breach {
        goods_id: record.goods_id,
        activity_id: activity.id,
        kind: activity.kind,
        rule: broken,
        mode: rule.mode,
        original: money::decimal(original)?,
        price: money::decimal(price)?,
        start_ms: activity.start_ms,
        end_ms: activity.end_ms,
    })
}

/// Every activity of `record` that breaks a rule, in record order: those
/// online, valid, not on the allow-list and whose window is not over at
/// `now` (future windows included: a fat finger is caught before the sale
/// starts). A tombstone or a record the engine cannot price has none.
pub fn breaches(record: &GoodsRecord, rules: &GuardRules, now: UnixMillis) -> Vec<Breach> {
    if rules.is_empty() || record.is_tombstone() {
        return Vec::new();
    }
    let Ok(original) = money::fen_bounded(record.base_price) else {
        return Vec::new();
    };
    record.activities.iter().filter_map(|a| judge(a, record, original, rules, now)).collect()
}

/// A record as the servers price it under the rules.
#[derive(Debug)]
pub struct Screened<'a> {
    record: Cow<'a, GoodsRecord>,
    /// Every breach of the record (alert and block).
    pub breaches: Vec<Breach>,
}

impl Screened<'_> {
    /// The record to price: the one given, less the activities a `block`
    /// rule removes.
    pub fn record(&self) -> &GoodsRecord {
        &self.record
    }

    /// Whether a `block` rule removed an activity.
    pub fn blocks(&self) -> bool {
        matches!(self.record, Cow::Owned(_))
    }

    fn blocked(&self, activity_id: u64) -> Option<&Breach> {
        self.breaches.iter().find(|b| b.mode == GuardMode::Block && b.activity_id == activity_id)
    }

    /// The trace of the original record from the trace of [`Screened::record`]:
    /// every blocked activity back in its place, as [`Outcome::Blocked`]
    /// with no price (the guarded price is never answered).
    fn restore_trace(&self, original: &GoodsRecord, trace: Vec<TraceEntry>) -> Vec<TraceEntry> {
        if !self.blocks() {
            return trace;
        }
        let mut kept = trace.into_iter();
        let mut out = Vec::with_capacity(original.activities.len());
        for activity in &original.activities {
            match self.blocked(activity.id) {
                Some(breach) => out.push(TraceEntry {
                    activity_id: activity.id,
                    kind: activity.kind,
                    outcome: Outcome::Blocked(breach.rule),
                    price: None,
                }),
                None => out.extend(kept.next()),
            }
        }
        out
    }
}

/// The record the servers price: unchanged (borrowed, nothing allocated)
/// without rules or breaches; without its `block`-mode breaching activities
/// otherwise.
pub fn screen<'a>(record: &'a GoodsRecord, rules: &GuardRules, now: UnixMillis) -> Screened<'a> {
    let breaches = breaches(record, rules, now);
    let record = if breaches.iter().any(|b| b.mode == GuardMode::Block) {
        let mut kept = record.clone();
        kept.activities.retain(|a| !breaches.iter().any(|b| b.mode == GuardMode::Block && b.activity_id == a.id));
        Cow::Owned(kept)
    } else {
        Cow::Borrowed(record)
    };
    Screened { record, breaches }
}

/// [`best_price`] under the guard. Returns the quote and the breach that
/// mattered to this caller: in `alert` mode the breaching winner (its price
/// was served), in `block` mode the breaching activity that would have won
/// (its price was withheld: the quote is the next best price or the
/// original, and with `explain` its trace marks the blocked activities).
pub fn best_price_guarded(
    record: &GoodsRecord,
    ctx: &CallerContext,
    now: UnixMillis,
    explain: bool,
    rules: &GuardRules,
) -> Result<(Quote, Option<Breach>), PricingError> {
    best_price_guarded_counted(record, ctx, now, explain, rules, &mut Drops::default())
}

/// [`best_price_guarded`], also adding to `drops` the candidates of the
/// served pricing (as [`best_price_counted`] does; a blocked activity is not
/// a candidate of it).
pub fn best_price_guarded_counted(
    record: &GoodsRecord,
    ctx: &CallerContext,
    now: UnixMillis,
    explain: bool,
    rules: &GuardRules,
    drops: &mut Drops,
) -> Result<(Quote, Option<Breach>), PricingError> {
    if rules.is_empty() {
        return Ok((best_price_counted(record, ctx, now, explain, drops)?, None));
    }
    let screened = screen(record, rules, now);
    let mut quote = best_price_counted(screened.record(), ctx, now, explain, drops)?;
    if screened.breaches.is_empty() {
        return Ok((quote, None));
    }
    let winner = |q: &Quote| q.winner.map(|w| w.activity_id);
    let mut hit = winner(&quote)
        .and_then(|id| screened.breaches.iter().find(|b| b.mode == GuardMode::Alert && b.activity_id == id));
    if screened.blocks() {
        // Rare (a record with a blocked activity): price it once more as it
        // stands to learn whether the blocked activity would have won.
        let unguarded = best_price(record, ctx, now, false)?;
        if let Some(blocked) = winner(&unguarded).and_then(|id| screened.blocked(id)) {
            hit = Some(blocked);
        }
        if explain {
            quote.trace = screened.restore_trace(record, std::mem::take(&mut quote.trace));
        }
    }
    let hit = hit.cloned();
    Ok((quote, hit))
}

/// [`price_units`] under the guard. Returns the line and the breaches that
/// mattered: in `alert` mode those whose price some units got, in `block`
/// mode those some units would have got.
pub fn price_units_guarded(
    record: &GoodsRecord,
    ctx: &CallerContext,
    now: UnixMillis,
    quantity: u32,
    rules: &GuardRules,
) -> Result<(LineQuote, Vec<Breach>), PricingError> {
    price_units_guarded_counted(record, ctx, now, quantity, rules, &mut Drops::default())
}

/// [`price_units_guarded`], also adding to `drops` the candidates of the
/// served pricing (as [`price_units_counted`] does).
pub fn price_units_guarded_counted(
    record: &GoodsRecord,
    ctx: &CallerContext,
    now: UnixMillis,
    quantity: u32,
    rules: &GuardRules,
    drops: &mut Drops,
) -> Result<(LineQuote, Vec<Breach>), PricingError> {
    if rules.is_empty() {
        return Ok((price_units_counted(record, ctx, now, quantity, drops)?, Vec::new()));
    }
    let screened = screen(record, rules, now);
    let line = price_units_counted(screened.record(), ctx, now, quantity, drops)?;
    if screened.breaches.is_empty() {
        return Ok((line, Vec::new()));
    }
    let used = |l: &LineQuote, mode: GuardMode| -> Vec<Breach> {
        screened
            .breaches
            .iter()
            .filter(|b| b.mode == mode && l.segments.iter().any(|s| s.activity_id == Some(b.activity_id)))
            .cloned()
            .collect()
    };
    let mut hits = used(&line, GuardMode::Alert);
    if screened.blocks() {
        hits.extend(used(&price_units(record, ctx, now, quantity)?, GuardMode::Block));
    }
    Ok((line, hits))
}

#[cfg(test)]
mod tests {
    use pricing_record::{Channel, GoodsStatus};
    use rust_decimal_macros::dec;

    use super::*;

    const NOW: UnixMillis = 1_700_000_000_000;

    fn activity(id: u64, kind: ActivityKind, value: Decimal) -> Activity {
        Activity::open(id, 1, kind, value, NOW - 1_000, NOW + 1_000)
    }

    fn record(activities: Vec<Activity>) -> GoodsRecord {
        GoodsRecord {
            goods_id: 1,
            version: 1,
            store_id: 9,
            base_price: dec!(599.00),
            currency: "CNY".into(),
            status: GoodsStatus::OnSale,
            activities,
        }
    }

    fn fen(value: Decimal) -> Fen {
        Fen::from_amount(value).expect("money")
    }

    fn floor(bp: u32, mode: GuardMode) -> GuardRules {
        let rule = KindRule { floor_share_basis_points: Some(bp), mode, ..KindRule::default() };
        GuardRules::new(KINDS.map(|k| (k, rule)), [])
    }

    fn ctx() -> CallerContext {
        CallerContext::anonymous(Channel::App)
    }

    #[test]
    fn each_rule_is_judged_on_the_activity_price() {
        // 599.00 sold at 5.99: 1% of the original, 593.01 off.
        let r = record(vec![activity(7, ActivityKind::FlashSale, dec!(5.99))]);
        let b = breaches(&r, &floor(1000, GuardMode::Alert), NOW);
        assert_eq!(b.len(), 1);
        assert_eq!(
            (b[0].activity_id, b[0].rule, b[0].price, b[0].original),
            (7, GuardRule::FloorShare, dec!(5.99), dec!(599))
        );
        let max_off = KindRule { max_off: Some(fen(dec!(500))), ..KindRule::default() };
        assert_eq!(
            breaches(&r, &GuardRules::new([(ActivityKind::FlashSale, max_off)], []), NOW)[0].rule,
            GuardRule::MaxOff
        );
        let min_price = KindRule { min_price: Some(fen(dec!(6))), ..KindRule::default() };
        assert_eq!(
            breaches(&r, &GuardRules::new([(ActivityKind::FlashSale, min_price)], []), NOW)[0].rule,
            GuardRule::MinPrice
        );
        // At the limits exactly: no breach.
        let at = KindRule {
            floor_share_basis_points: Some(100),
            max_off: Some(fen(dec!(593.01))),
            min_price: Some(fen(dec!(5.99))),
            mode: GuardMode::Block,
        };
        assert!(breaches(&r, &GuardRules::new([(ActivityKind::FlashSale, at)], []), NOW).is_empty());
        // A discount of 1% of the original is judged on its computed price (5.99).
        let d = record(vec![activity(8, ActivityKind::Discount, dec!(1))]);
        assert_eq!(breaches(&d, &floor(1000, GuardMode::Alert), NOW)[0].price, dec!(5.99));
        // A rule of another kind does not apply.
        let other = GuardRules::new(
            [(ActivityKind::Subsidy, KindRule { min_price: Some(fen(dec!(100))), ..KindRule::default() })],
            [],
        );
        assert!(breaches(&r, &other, NOW).is_empty());
    }

    #[test]
    fn allow_list_ended_offline_and_deleted_activities_are_not_judged() {
        let rules = GuardRules::new(
            KINDS.map(|k| (k, KindRule { floor_share_basis_points: Some(1000), ..KindRule::default() })),
            [7],
        );
        let mut ended = activity(8, ActivityKind::FlashSale, dec!(1));
        ended.end_ms = NOW;
        let mut offline = activity(9, ActivityKind::FlashSale, dec!(1));
        offline.status = ActivityStatus::Offline;
        let mut deleted = activity(10, ActivityKind::FlashSale, dec!(1));
        deleted.deleted = true;
        let mut future = activity(11, ActivityKind::FlashSale, dec!(1));
        future.start_ms = NOW + 10_000;
        future.end_ms = NOW + 20_000;
        let r = record(vec![activity(7, ActivityKind::FlashSale, dec!(1)), ended, offline, deleted, future]);
        let ids: Vec<u64> = breaches(&r, &rules, NOW).iter().map(|b| b.activity_id).collect();
        assert_eq!(ids, [11], "only the future sale not on the allow-list");
        assert!(breaches(&r, &GuardRules::default(), NOW).is_empty());
    }

    #[test]
    fn block_mode_serves_the_next_best_price_and_says_so_in_the_trace() {
        let r = record(vec![
            activity(1, ActivityKind::AmountOff, dec!(100)),
            activity(2, ActivityKind::FlashSale, dec!(5.99)),
        ]);
        let (q, hit) = best_price_guarded(&r, &ctx(), NOW, true, &floor(1000, GuardMode::Block)).expect("priced");
        assert_eq!(q.price, dec!(499));
        assert_eq!(q.winner.map(|w| w.activity_id), Some(1));
        assert_eq!(hit.map(|b| (b.activity_id, b.mode)), Some((2, GuardMode::Block)));
        assert_eq!(q.trace.len(), 2);
        assert_eq!(q.trace[0].outcome, Outcome::Won);
        assert_eq!(q.trace[1].outcome, Outcome::Blocked(GuardRule::FloorShare));
        assert_eq!(q.trace[1].outcome.to_string(), "guard_blocked:floor_share");
        assert_eq!(q.trace[1].price, None, "the guarded price is never shown");
        // Only the guarded activity: the original.
        let alone = record(vec![activity(2, ActivityKind::FlashSale, dec!(5.99))]);
        let (q, hit) = best_price_guarded(&alone, &ctx(), NOW, false, &floor(1000, GuardMode::Block)).expect("priced");
        assert_eq!((q.price, q.winner), (dec!(599), None));
        assert!(hit.is_some());
        assert!(q.trace.is_empty(), "no trace unless asked");
        let (q, _) = best_price_guarded(&alone, &ctx(), NOW, true, &floor(1000, GuardMode::Block)).expect("priced");
        assert_eq!(q.trace.len(), 1, "asked: the blocked activity is explained");
        assert_eq!(q.trace[0].outcome, Outcome::Blocked(GuardRule::FloorShare));
        // Order lines: no unit gets the guarded price.
        let (line, hits) = price_units_guarded(&r, &ctx(), NOW, 3, &floor(1000, GuardMode::Block)).expect("priced");
        assert_eq!(line.amount, dec!(1497));
        assert_eq!(hits.len(), 1);
    }

    #[test]
    fn alert_mode_serves_the_price_and_reports_the_breach_only_when_it_wins() {
        let r = record(vec![activity(2, ActivityKind::FlashSale, dec!(5.99))]);
        let (q, hit) = best_price_guarded(&r, &ctx(), NOW, true, &floor(1000, GuardMode::Alert)).expect("priced");
        assert_eq!(q.price, dec!(5.99));
        assert_eq!(hit.map(|b| b.mode), Some(GuardMode::Alert));
        assert_eq!(q.trace[0].outcome, Outcome::Won);
        // A breaching activity that does not apply to this caller is not counted.
        let mut scoped = activity(2, ActivityKind::FlashSale, dec!(5.99));
        scoped.city_ids = vec![5];
        let (q, hit) = best_price_guarded(&record(vec![scoped]), &ctx(), NOW, false, &floor(1000, GuardMode::Block))
            .expect("priced");
        assert_eq!((q.price, hit), (dec!(599), None));
        let (line, hits) = price_units_guarded(&r, &ctx(), NOW, 2, &floor(1000, GuardMode::Alert)).expect("priced");
        assert_eq!((line.amount, hits.len()), (dec!(11.98), 1));
    }

    #[test]
    fn without_breaches_the_record_is_borrowed() {
        let r = record(vec![activity(1, ActivityKind::AmountOff, dec!(10))]);
        let s = screen(&r, &floor(1000, GuardMode::Block), NOW);
        assert!(!s.blocks());
        assert!(std::ptr::eq(s.record(), &r));
    }
}
