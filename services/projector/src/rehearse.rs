//! The price guard's report and the sale-day rehearsal, over the source of truth.
//!
//! Both walk every goods of the source in id order, a page at a time, and
//! run the pure engine on each record: [`guard_report`] lists every activity
//! that breaks a `[guard]` rule ([`pricing_engine::guard::breaches`]);
//! [`rehearse`] prices the whole catalogue at a given instant as the
//! servers would (the guard applied), for one caller context, and counts the
//! answers by winning activity kind and discount-depth band, lists every
//! guard breach, and every goods whose price changes at that instant (its
//! price at `at - 1 ms` differs from its price at `at`). Operators run
//! `pricing-projector rehearse --at <ms>` the day before a sale (see
//! docs/OPERATIONS.md).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use pricing_engine::band::Band;
use pricing_engine::guard::{Breach, GuardRules, best_price_guarded, breaches, kind_label};
use pricing_engine::{CallerContext, Quote};
use pricing_record::{GoodsId, GoodsRecord, UnixMillis};
use pricing_store_sql::SqlStore;
use rust_decimal::Decimal;

use crate::error::ProjectorError;
use crate::progress::Progress;

/// The band label of a price on its original (`pricing_engine::band`, the
/// one definition the metrics use too).
pub fn band(original: Decimal, price: Decimal) -> &'static str {
    Band::between(original, price).as_str()
}

/// The kind label of a quote's winner, or `none`.
pub fn winner_kind(quote: &Quote) -> &'static str {
    quote.winner.map_or("none", |w| kind_label(w.kind))
}

/// One goods whose price changes at the rehearsed instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceChange {
    pub goods_id: GoodsId,
    pub before: Decimal,
    pub after: Decimal,
    pub kind_before: &'static str,
    pub kind_after: &'static str,
}

/// What a rehearsal found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rehearsal {
    pub at_ms: UnixMillis,
    /// Goods priced (tombstones aside).
    pub priced: u64,
    /// Deleted goods (tombstones), not priced.
    pub deleted: u64,
    /// Records the engine cannot price (the servers answer them "not found").
    pub unpriceable: Vec<GoodsId>,
    /// Answers by (winning kind or `none`, band).
    pub by_kind_band: BTreeMap<(&'static str, &'static str), u64>,
    /// Every guard breach at the instant, in goods order.
    pub breaches: Vec<Breach>,
    /// Every goods whose price at `at_ms` differs from its price 1 ms before.
    pub changes: Vec<PriceChange>,
}

/// Walks the source in pages, calling `each` with every record.
async fn walk(
    source: &SqlStore,
    page_size: u32,
    progress: &Progress,
    mut each: impl FnMut(&GoodsRecord),
) -> Result<(), ProjectorError> {
    progress.set_total(source.goods_count().await?);
    let mut after = 0;
    loop {
        let ids = source.goods_page(after, page_size).await?;
        let Some(&last) = ids.last() else { break };
        for record in source.load(&ids).await? {
            each(&record);
        }
        progress.advance(ids.len() as u64, last);
        after = last;
        if (ids.len() as u32) < page_size {
            break;
        }
    }
    progress.finish();
    Ok(())
}

/// Every activity of the source that breaks a guard rule at `now` (windows
/// not over yet), each counted in `pricing_guard_breaches_total{source="projector"}`
/// and logged.
pub async fn guard_report(
    source: &SqlStore,
    rules: &GuardRules,
    now: UnixMillis,
    page_size: u32,
    progress: &Progress,
) -> Result<Vec<Breach>, ProjectorError> {
    let mut found = Vec::new();
    if rules.is_empty() {
        return Ok(found);
    }
    walk(source, page_size, progress, |record| found.extend(breaches(record, rules, now))).await?;
    for breach in &found {
        report_breach(breach);
    }
    Ok(found)
}

/// The projector's report of one breach: the counter and one log line (not
/// rate-limited: the projector sees each record once per change).
pub fn report_breach(breach: &Breach) {
    pricing_control::guard::count_breach_only("projector", breach);
    tracing::warn!(
        source = "projector",
        goods_id = breach.goods_id,
        activity_id = breach.activity_id,
        kind = kind_label(breach.kind),
        rule = breach.rule.as_str(),
        mode = breach.mode.as_str(),
        original = %breach.original,
        price = %breach.price,
        start_ms = breach.start_ms,
        end_ms = breach.end_ms,
        "price guard breach"
    );
}

impl crate::Projector {
    /// Judges records just written against the control file's `[guard]`
    /// rules (none without a control file): every breach is counted and
    /// logged, and returned for the sync's report.
    pub(crate) fn report_guard(&self, records: &[pricing_store::SharedRecord]) -> Vec<Breach> {
        let Some(board) = self.control() else { return Vec::new() };
        let config = board.snapshot();
        let rules = config.guard_rules();
        if rules.is_empty() {
            return Vec::new();
        }
        let now = self.now_ms();
        let found: Vec<Breach> = records.iter().flat_map(|r| breaches(r, rules, now)).collect();
        found.iter().for_each(report_breach);
        found
    }
}

/// Prices the whole catalogue at `at_ms` for `ctx`, as the servers would
/// under `rules`.
pub async fn rehearse(
    source: &SqlStore,
    ctx: &CallerContext,
    rules: &GuardRules,
    at_ms: UnixMillis,
    page_size: u32,
    progress: &Progress,
) -> Result<Rehearsal, ProjectorError> {
    let mut r = Rehearsal { at_ms, ..Rehearsal::default() };
    let before_ms = at_ms.saturating_sub(1);
    walk(source, page_size, progress, |record| {
        if record.is_tombstone() {
            r.deleted += 1;
            return;
        }
        let (Ok((after, _)), Ok((before, _))) = (
            best_price_guarded(record, ctx, at_ms, false, rules),
            best_price_guarded(record, ctx, before_ms, false, rules),
        ) else {
            r.unpriceable.push(record.goods_id);
            return;
        };
        r.priced += 1;
        *r.by_kind_band.entry((winner_kind(&after), band(after.original, after.price))).or_default() += 1;
        r.breaches.extend(breaches(record, rules, at_ms));
        if before.price != after.price {
            r.changes.push(PriceChange {
                goods_id: record.goods_id,
                before: before.price,
                after: after.price,
                kind_before: winner_kind(&before),
                kind_after: winner_kind(&after),
            });
        }
    })
    .await?;
    Ok(r)
}

impl Rehearsal {
    /// The breaches, one line each.
    pub fn breaches_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "guard breaches: {}", self.breaches.len());
        if !self.breaches.is_empty() {
            let _ = writeln!(
                out,
                "{:>10} {:>10} {:<11} {:<12} {:<6} {:>12} {:>12} window_ms",
                "goods", "activity", "kind", "rule", "mode", "original", "price"
            );
        }
        for b in &self.breaches {
            let _ = writeln!(
                out,
                "{:>10} {:>10} {:<11} {:<12} {:<6} {:>12} {:>12} {}..{}",
                b.goods_id,
                b.activity_id,
                kind_label(b.kind),
                b.rule.as_str(),
                b.mode.as_str(),
                b.original,
                b.price,
                b.start_ms,
                b.end_ms
            );
        }
        out
    }

    /// Answers counted in one band over every kind.
    pub fn band_total(&self, band: &str) -> u64 {
        self.by_kind_band.iter().filter(|((_, b), _)| *b == band).map(|(_, n)| n).sum()
    }

    /// The printed report: the distribution, the breaches, the changes.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "rehearsal at {} ms: {} goods priced, {} deleted, {} cannot be priced{}",
            self.at_ms,
            self.priced,
            self.deleted,
            self.unpriceable.len(),
            if self.unpriceable.is_empty() { String::new() } else { format!(" ({:?})", self.unpriceable) }
        );
        let _ = write!(out, "\n{:<11}", "kind");
        for band in Band::ALL.map(Band::as_str) {
            let _ = write!(out, " {band:>7}");
        }
        let _ = writeln!(out, " {:>7}", "total");
        let mut kinds: Vec<&str> = self.by_kind_band.keys().map(|(k, _)| *k).collect();
        kinds.dedup();
        for kind in kinds {
            let _ = write!(out, "{kind:<11}");
            let mut total = 0;
            for band in Band::ALL.map(Band::as_str) {
                let n = self.by_kind_band.get(&(kind, band)).copied().unwrap_or(0);
                total += n;
                let _ = write!(out, " {n:>7}");
            }
            let _ = writeln!(out, " {total:>7}");
        }
        let _ = write!(out, "{:<11}", "all");
        for band in Band::ALL.map(Band::as_str) {
            let _ = write!(out, " {:>7}", self.band_total(band));
        }
        let _ = writeln!(out, " {:>7}", self.priced);

        out.push('\n');
        out.push_str(&self.breaches_table());
        let _ = writeln!(out, "\nprices changing at {} ms: {}", self.at_ms, self.changes.len());
        if !self.changes.is_empty() {
            let _ = writeln!(
                out,
                "{:>10} {:>12} {:>12} {:<11} {:<11}",
                "goods", "before", "after", "kind_before", "kind_after"
            );
        }
        for c in &self.changes {
            let _ = writeln!(
                out,
                "{:>10} {:>12} {:>12} {:<11} {:<11}",
                c.goods_id, c.before, c.after, c.kind_before, c.kind_after
            );
        }
        out
    }
}
