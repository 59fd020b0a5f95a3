//! Cart promotions and coupons for the checkout: rows in the engine's own
//! terms (its [`PromotionKind`], [`ScopeKind`] and [`PromotionTier`]; one
//! promotion model for the catalogue and the engine), and the one
//! conversion of a stored row into the engine's [`Promotion`]
//! ([`PromotionRow::to_engine`]).

use std::collections::HashMap;

pub use pricing_engine::{Promotion, PromotionKind, PromotionTier, Scope, ScopeKind};
use pricing_record::{GoodsId, UnixMillis, check_money};
use rust_decimal::Decimal;
use sqlx::any::AnyRow;

use crate::convert::{from_x100, get, get_u64, to_db};
use crate::db::{self, MAX_IN};
use crate::error::{RowError, SqlError, count_corrupt_row};
use crate::store::SqlStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PromotionStatus {
    Draft,
    Online,
    Offline,
}

/// A cart promotion or coupon as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromotionRow {
    pub id: u64,
    pub kind: PromotionKind,
    /// Store (of `store_id`) or platform.
    pub scope: ScopeKind,
    /// The store of a store-scoped promotion; 0 for platform-wide.
    pub store_id: u64,
    /// Shown to the user ("满99减9").
    pub name: String,
    /// Sorted by threshold, ascending; thresholds are distinct. The value is
    /// the amount off (CNY) for ThresholdAmountOff and Coupon, the percent
    /// payable (90 = pay 90%) for ThresholdPercentOff; at most 2 decimal places.
    pub tiers: Vec<PromotionTier>,
    /// Goods the promotion is limited to, ascending; empty = every goods in scope.
    pub goods_ids: Vec<GoodsId>,
    /// Window start, inclusive.
    pub start_ms: UnixMillis,
    /// Window end, exclusive.
    pub end_ms: UnixMillis,
    pub status: PromotionStatus,
    /// Assigned by the writer; ignored by `upsert_promotion`.
    pub version: u64,
}

impl PromotionRow {
    /// The rules a stored promotion must follow; the writer refuses others
    /// and the loaders skip (and count) stored rows that break them.
    pub fn validate(&self) -> Result<(), SqlError> {
        let fail = |reason: String| Err(SqlError::InvalidPromotion { id: self.id, reason });
        if self.id == 0 {
            return fail("id is 0".into());
        }
        match (self.scope, self.store_id) {
            (ScopeKind::Store, 0) => return fail("a store promotion needs a store id".into()),
            (ScopeKind::Platform, s) if s != 0 => return fail(format!("a platform promotion has store id {s}")),
            _ => {}
        }
        if self.end_ms <= self.start_ms {
            return fail("empty window (end <= start)".into());
        }
        if self.tiers.is_empty() {
            return fail("no tier".into());
        }
        let mut previous: Option<Decimal> = None;
        for tier in &self.tiers {
            check_money("tier.threshold", tier.threshold)?;
            check_money("tier.value", tier.value)?;
            if previous.is_some_and(|p| p >= tier.threshold) {
                return fail("tier thresholds must be distinct and ascending".into());
            }
            previous = Some(tier.threshold);
            if tier.value <= Decimal::ZERO {
                return fail(format!("tier value {} must be above zero", tier.value));
            }
            match self.kind {
                PromotionKind::ThresholdPercentOff if tier.value >= Decimal::ONE_HUNDRED => {
                    return fail(format!("percent payable {} must be below 100", tier.value));
                }
                PromotionKind::ThresholdAmountOff if tier.value >= tier.threshold => {
                    return fail(format!("amount off {} must be below its threshold {}", tier.value, tier.threshold));
                }
                _ => {}
            }
        }
        if self.goods_ids.contains(&0) {
            return fail("goods id 0".into());
        }
        Ok(())
    }

    /// True when the promotion applies at `now` (online, window holds it).
    pub fn is_live(&self, now: UnixMillis) -> bool {
        self.status == PromotionStatus::Online && self.start_ms <= now && now < self.end_ms
    }

    /// The stored promotion in the engine's terms: the one conversion.
    pub fn to_engine(&self) -> Promotion {
        Promotion {
            id: self.id,
            kind: self.kind,
            scope: match self.scope {
                ScopeKind::Store => Scope::Store(self.store_id),
                ScopeKind::Platform => Scope::Platform,
            },
            tiers: self.tiers.clone(),
            eligible_goods: (!self.goods_ids.is_empty()).then(|| self.goods_ids.clone()),
            start_ms: self.start_ms,
            end_ms: self.end_ms,
            description: self.name.clone(),
        }
    }
}

pub(crate) fn promotion_scope_str(scope: ScopeKind) -> &'static str {
    match scope {
        ScopeKind::Store => "store",
        ScopeKind::Platform => "platform",
    }
}

pub(crate) fn promotion_status_str(status: PromotionStatus) -> &'static str {
    match status {
        PromotionStatus::Draft => "draft",
        PromotionStatus::Online => "online",
        PromotionStatus::Offline => "offline",
    }
}

fn parse<T: Copy>(column: &'static str, value: &str, table: &[(&str, T)]) -> Result<T, RowError> {
    table
        .iter()
        .find(|(name, _)| *name == value)
        .map(|(_, v)| *v)
        .ok_or_else(|| RowError::Unknown { column, value: value.to_owned() })
}

/// The kind column holds the engine's names (`PromotionKind::as_str`).
const KINDS: [(&str, PromotionKind); 3] = [
    (PromotionKind::ThresholdAmountOff.as_str(), PromotionKind::ThresholdAmountOff),
    (PromotionKind::ThresholdPercentOff.as_str(), PromotionKind::ThresholdPercentOff),
    (PromotionKind::Coupon.as_str(), PromotionKind::Coupon),
];
const SCOPES: [(&str, ScopeKind); 2] = [("store", ScopeKind::Store), ("platform", ScopeKind::Platform)];
const STATUSES: [(&str, PromotionStatus); 3] =
    [("draft", PromotionStatus::Draft), ("online", PromotionStatus::Online), ("offline", PromotionStatus::Offline)];

const PROMOTION_COLUMNS: &str = "id, kind, scope, store_id, name, start_ms, end_ms, status, version";

fn promotion_from_row(row: &AnyRow) -> Result<PromotionRow, RowError> {
    Ok(PromotionRow {
        id: get_u64(row, "id")?,
        kind: parse("promotion.kind", &get::<String>(row, "kind")?, &KINDS)?,
        scope: parse("promotion.scope", &get::<String>(row, "scope")?, &SCOPES)?,
        store_id: get_u64(row, "store_id")?,
        name: get(row, "name")?,
        tiers: Vec::new(),
        goods_ids: Vec::new(),
        start_ms: get(row, "start_ms")?,
        end_ms: get(row, "end_ms")?,
        status: parse("promotion.status", &get::<String>(row, "status")?, &STATUSES)?,
        version: get_u64(row, "version")?,
    })
}

impl SqlStore {
    /// The cart promotions that apply at `now` to a cart with goods of
    /// `store_ids`: online, in their window, not deleted; the store-scoped
    /// ones of those stores and every platform one; coupons excluded (see
    /// [`SqlStore::load_coupons`]). Sorted by id. Three queries in one read
    /// transaction (promotions, tiers, eligible goods), whatever the count.
    pub async fn load_promotions(&self, store_ids: &[u64], now: UnixMillis) -> Result<Vec<PromotionRow>, SqlError> {
        self.load_promotions_within(store_ids, now, now).await
    }

    /// [`SqlStore::load_promotions`] for every instant of `[from, until]`:
    /// the promotions live at some instant of it (window starting at or
    /// before `until`, ending after `from`). A cache that answers for that
    /// span loads these and lets the engine check each window at the
    /// caller's own `now`, so a promotion that starts within the span is
    /// not missed.
    pub async fn load_promotions_within(
        &self,
        store_ids: &[u64],
        from: UnixMillis,
        until: UnixMillis,
    ) -> Result<Vec<PromotionRow>, SqlError> {
        if store_ids.len() > MAX_IN {
            return Err(SqlError::InvalidInput(format!("{} store ids, at most {MAX_IN}", store_ids.len())));
        }
        let mut stores: Vec<i64> = store_ids.iter().filter_map(|s| i64::try_from(*s).ok()).collect();
        stores.sort_unstable();
        stores.dedup();
        let store_filter = if stores.is_empty() {
            String::new()
        } else {
            format!(" OR (scope = 'store' AND store_id IN ({}))", db::placeholders(db::padded_len(stores.len())))
        };
        let sql = format!(
            "SELECT {PROMOTION_COLUMNS} FROM promotion WHERE deleted_at IS NULL AND status = 'online' \
             AND start_ms <= ? AND end_ms > ? AND kind <> 'coupon' AND (scope = 'platform'{store_filter}) ORDER BY id"
        );
        let padded = db::padded(&stores);
        self.read(async {
            let mut tx = self.pool().begin().await?;
            let mut query = sqlx::query(&sql).bind(until).bind(from);
            for s in &padded {
                query = query.bind(*s);
            }
            let rows = query.fetch_all(&mut *tx).await?;
            let out = self.complete(&mut tx, &rows).await?;
            tx.commit().await?;
            Ok(out)
        })
        .await
    }

    /// The coupons with these ids that exist and are not deleted, whatever
    /// their status and window (the engine says why one does not apply).
    /// Sorted by id; ids that are not coupons are absent.
    pub async fn load_coupons(&self, ids: &[u64]) -> Result<Vec<PromotionRow>, SqlError> {
        if ids.len() > MAX_IN {
            return Err(SqlError::InvalidInput(format!("{} coupon ids, at most {MAX_IN}", ids.len())));
        }
        let mut wanted: Vec<i64> = ids.iter().filter_map(|id| i64::try_from(*id).ok()).collect();
        wanted.sort_unstable();
        wanted.dedup();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let padded = db::padded(&wanted);
        let sql = format!(
            "SELECT {PROMOTION_COLUMNS} FROM promotion WHERE deleted_at IS NULL AND kind = 'coupon' AND id IN ({}) \
             ORDER BY id",
            db::placeholders(padded.len())
        );
        self.read(async {
            let mut tx = self.pool().begin().await?;
            let mut query = sqlx::query(&sql);
            for id in &padded {
                query = query.bind(*id);
            }
            let rows = query.fetch_all(&mut *tx).await?;
            let out = self.complete(&mut tx, &rows).await?;
            tx.commit().await?;
            Ok(out)
        })
        .await
    }

    /// Converts promotion rows and attaches their tiers and eligible goods;
    /// a row that cannot be read or breaks the rules is skipped and counted.
    async fn complete(&self, conn: &mut sqlx::AnyConnection, rows: &[AnyRow]) -> Result<Vec<PromotionRow>, SqlError> {
        let mut promotions = Vec::with_capacity(rows.len());
        for row in rows {
            match promotion_from_row(row) {
                Ok(p) => promotions.push(p),
                Err(error) => {
                    let id = get::<i64>(row, "id").unwrap_or(0);
                    count_corrupt_row(self.store_name(), "promotion", id, &error);
                }
            }
        }
        if promotions.is_empty() {
            return Ok(promotions);
        }
        let ids: Vec<i64> = promotions.iter().map(|p| to_db("promotion.id", p.id)).collect::<Result<_, _>>()?;
        let padded = db::padded(&ids);
        let list = db::placeholders(padded.len());

        let mut broken: HashMap<u64, RowError> = HashMap::new();
        let mut tiers: HashMap<u64, Vec<PromotionTier>> = HashMap::new();
        let sql = format!(
            "SELECT promotion_id, threshold_fen, value_x100 FROM promotion_tier WHERE promotion_id IN ({list}) \
             ORDER BY promotion_id, threshold_fen"
        );
        let mut query = sqlx::query(&sql);
        for id in &padded {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut *conn).await? {
            let Ok(pid) = get_u64(&row, "promotion_id") else { continue };
            let tier = (|| {
                Ok::<_, RowError>(PromotionTier {
                    threshold: from_x100("promotion_tier.threshold_fen", get(&row, "threshold_fen")?)?,
                    value: from_x100("promotion_tier.value_x100", get(&row, "value_x100")?)?,
                })
            })();
            match tier {
                Ok(tier) => tiers.entry(pid).or_default().push(tier),
                Err(error) => {
                    broken.insert(pid, error);
                }
            }
        }

        let mut goods: HashMap<u64, Vec<GoodsId>> = HashMap::new();
        let sql = format!(
            "SELECT promotion_id, goods_id FROM promotion_goods WHERE promotion_id IN ({list}) \
             ORDER BY promotion_id, goods_id"
        );
        let mut query = sqlx::query(&sql);
        for id in &padded {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut *conn).await? {
            let Ok(pid) = get_u64(&row, "promotion_id") else { continue };
            match get_u64(&row, "goods_id") {
                Ok(g) => goods.entry(pid).or_default().push(g),
                Err(error) => {
                    broken.insert(pid, error);
                }
            }
        }

        let mut out = Vec::with_capacity(promotions.len());
        for mut p in promotions {
            if let Some(error) = broken.remove(&p.id) {
                count_corrupt_row(self.store_name(), "promotion", p.id as i64, &error);
                continue;
            }
            p.tiers = tiers.remove(&p.id).unwrap_or_default();
            p.goods_ids = goods.remove(&p.id).unwrap_or_default();
            if let Err(error) = p.validate() {
                let error = RowError::Column { column: "promotion", message: error.to_string() };
                count_corrupt_row(self.store_name(), "promotion", p.id as i64, &error);
                continue;
            }
            out.push(p);
        }
        Ok(out)
    }
}
