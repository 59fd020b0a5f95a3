//! The catalogue writer: every change in one transaction, stamped with the
//! next value of the global version counter.
//!
//! Versioning rule: a write takes `catalog_clock.version + 1` (the counter
//! row is locked until commit, so versions follow commit order), stamps it on
//! the changed row AND on the goods row, and sets both `updated_at` to
//! `max(now, last stamp + 1)`. So the record version is `goods.version`, it
//! strictly increases with every change to a goods or any of its activities
//! (soft deletes included), and `updated_at` strictly increases in commit
//! order: the incremental projector only needs a `goods(updated_at, id)`
//! watermark, and a committed change can never land behind it. (Under more
//! than 1,000 commits a second the stamps run ahead of the wall clock until
//! the rate drops; they are watermarks, not display times.)

use pricing_record::{Activity, Clock, GoodsId, GoodsRecord, GoodsStatus, UnixMillis};
use rust_decimal::Decimal;
use sqlx::{AnyConnection, AnyPool, Row};

use crate::convert::{activity_kind_str, activity_status_str, encode_ids, goods_status_str, to_db, to_x100};
use crate::error::SqlError;
use crate::promotion::{PromotionRow, promotion_scope_str, promotion_status_str};

/// Longest encoded `city_ids` / `store_ids` list (the VARCHAR size).
pub(crate) const MAX_ID_LIST: usize = 2_000;

/// The goods columns a caller writes; the version and times are the writer's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoodsRow {
    pub id: GoodsId,
    pub store_id: u64,
    /// Original price per unit, at most 2 decimal places, above zero.
    pub base_price: Decimal,
    /// ISO 4217 code ("CNY").
    pub currency: String,
    /// `OnSale` or `Delisted`; deletion is [`Catalog::delete_goods`].
    pub status: GoodsStatus,
}

/// Writes the catalogue. Cheap to clone.
#[derive(Clone)]
pub struct Catalog {
    pool: AnyPool,
    clock: Clock,
}

/// What one write took from the counter.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamp {
    /// The last version taken (the only one, for a single write).
    pub version: i64,
    pub updated_at: i64,
}

impl Catalog {
    pub(crate) fn new(pool: AnyPool, clock: Clock) -> Catalog {
        Catalog { pool, clock }
    }

    /// The same writer with another clock (tests, seeding at a fixed instant).
    pub fn with_clock(mut self, clock: Clock) -> Catalog {
        self.clock = clock;
        self
    }

    pub(crate) fn now(&self) -> UnixMillis {
        self.clock.now_ms()
    }

    /// Creates or updates a goods (and brings back a soft-deleted one).
    /// Returns the new record version.
    pub async fn upsert_goods(&self, goods: &GoodsRow) -> Result<u64, SqlError> {
        let probe = GoodsRecord {
            goods_id: goods.id,
            version: 1,
            store_id: goods.store_id,
            base_price: goods.base_price,
            currency: goods.currency.clone(),
            status: goods.status,
            activities: Vec::new(),
        };
        probe.validate()?;
        let id = to_db("goods.id", goods.id)?;
        let store_id = to_db("goods.store_id", goods.store_id)?;
        let price = to_x100("goods.base_price", goods.base_price)?;
        let status = goods_status_str(goods.status)?;

        let mut tx = self.pool.begin().await?;
        let stamp = tick(&mut tx, self.now(), 1).await?;
        write_goods_row(&mut tx, id, store_id, price, &goods.currency, status, stamp).await?;
        tx.commit().await?;
        Ok(stamp.version as u64)
    }

    /// Soft-deletes a goods: its record becomes a tombstone with a new
    /// version. Deleting a deleted goods changes nothing and returns its version.
    pub async fn delete_goods(&self, id: GoodsId) -> Result<u64, SqlError> {
        self.soft_delete("goods", to_db("goods.id", id)?).await?.ok_or(SqlError::UnknownGoods(id))
    }

    /// Creates or updates an activity (and brings back a soft-deleted one);
    /// the goods it belongs to (and the one it left, if it moved) get the new
    /// version. The activity must pass [`Activity::validate`].
    pub async fn upsert_activity(&self, activity: &Activity) -> Result<u64, SqlError> {
        activity.validate(activity.goods_id)?;
        if activity.deleted {
            return Err(SqlError::InvalidInput("a deleted activity is written with delete_activity".into()));
        }
        let row = ActivityValues::new(activity)?;
        let mut tx = self.pool.begin().await?;
        let stamp = tick(&mut tx, self.now(), 1).await?;
        let goods =
            sqlx::query("SELECT id FROM goods WHERE id = ?").bind(row.goods_id).fetch_optional(&mut *tx).await?;
        if goods.is_none() {
            return Err(SqlError::UnknownGoods(activity.goods_id));
        }
        let previous: Option<i64> = sqlx::query("SELECT goods_id FROM activity WHERE id = ?")
            .bind(row.id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get("goods_id"))
            .transpose()?;
        write_activity(&mut tx, &row, stamp, None).await?;
        touch_goods(&mut tx, row.goods_id, stamp).await?;
        if let Some(previous) = previous.filter(|g| *g != row.goods_id) {
            touch_goods(&mut tx, previous, stamp).await?;
        }
        tx.commit().await?;
        Ok(stamp.version as u64)
    }

    /// Soft-deletes an activity; its goods gets the new version and the
    /// built record leaves the activity out. Returns the goods' new version
    /// (or its current one if the activity was already deleted).
    pub async fn delete_activity(&self, id: u64) -> Result<u64, SqlError> {
        let db_id = to_db("activity.id", id)?;
        let mut tx = self.pool.begin().await?;
        let stamp = tick(&mut tx, self.now(), 1).await?;
        let row = sqlx::query("SELECT goods_id, deleted_at FROM activity WHERE id = ?")
            .bind(db_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(SqlError::UnknownActivity(id))?;
        let goods_id: i64 = row.try_get("goods_id")?;
        if row.try_get::<Option<i64>, _>("deleted_at")?.is_some() {
            let version: Option<i64> = sqlx::query("SELECT version FROM goods WHERE id = ?")
                .bind(goods_id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get("version"))
                .transpose()?;
            tx.rollback().await?;
            return Ok(version.unwrap_or(0) as u64);
        }
        sqlx::query("UPDATE activity SET deleted_at = ?, version = ?, updated_at = ? WHERE id = ?")
            .bind(stamp.updated_at)
            .bind(stamp.version)
            .bind(stamp.updated_at)
            .bind(db_id)
            .execute(&mut *tx)
            .await?;
        touch_goods(&mut tx, goods_id, stamp).await?;
        tx.commit().await?;
        Ok(stamp.version as u64)
    }

    /// Writes a whole record at the version it carries (fixtures, tests,
    /// imports): the goods row, each of its activities, and a soft delete of
    /// the goods' stored activities the record no longer has; a tombstone
    /// soft-deletes the goods. The version must be above the stored one
    /// ([`SqlError::StaleVersion`]); the counter is raised to at least it.
    /// Activities only need to be representable (an activity that breaks a
    /// business rule is stored, as the codec would store it).
    pub async fn insert_record(&self, record: &GoodsRecord) -> Result<(), SqlError> {
        record.validate()?;
        let id = to_db("goods.id", record.goods_id)?;
        let version = to_db("goods.version", record.version)?;
        let mut activities = Vec::with_capacity(record.activities.len());
        for activity in &record.activities {
            if activity.goods_id != record.goods_id {
                return Err(pricing_record::InvalidRecord::ForeignActivity {
                    activity_id: activity.id,
                    goods_id: activity.goods_id,
                }
                .into());
            }
            activities.push((ActivityValues::new(activity)?, activity.deleted));
        }
        let mut tx = self.pool.begin().await?;
        let stamp = tick_to(&mut tx, self.now(), version).await?;
        let stored: Option<i64> = sqlx::query("SELECT version FROM goods WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get("version"))
            .transpose()?;
        if let Some(stored) = stored
            && stored >= version
        {
            return Err(SqlError::StaleVersion {
                goods_id: record.goods_id,
                given: record.version,
                stored: stored as u64,
            });
        }
        if record.is_tombstone() {
            if stored.is_some() {
                sqlx::query("UPDATE goods SET deleted_at = ?, version = ?, updated_at = ? WHERE id = ?")
                    .bind(stamp.updated_at)
                    .bind(version)
                    .bind(stamp.updated_at)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            } else {
                insert_goods_row(&mut tx, id, 0, 0, "", "on_sale", stamp, Some(stamp.updated_at)).await?;
            }
            tx.commit().await?;
            return Ok(());
        }
        let store_id = to_db("goods.store_id", record.store_id)?;
        let price = to_x100("goods.base_price", record.base_price)?;
        let status = goods_status_str(record.status)?;
        write_goods_row(&mut tx, id, store_id, price, &record.currency, status, stamp).await?;
        // Activities the record no longer has are soft-deleted at this version.
        sqlx::query(
            "UPDATE activity SET deleted_at = ?, version = ?, updated_at = ? WHERE goods_id = ? AND deleted_at IS NULL",
        )
        .bind(stamp.updated_at)
        .bind(version)
        .bind(stamp.updated_at)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        for (row, deleted) in &activities {
            write_activity(&mut tx, row, stamp, deleted.then_some(stamp.updated_at)).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Creates or replaces a cart promotion or coupon (tiers and eligible
    /// goods included). `promotion.version` is ignored: the writer assigns
    /// the next version and returns it.
    pub async fn upsert_promotion(&self, promotion: &PromotionRow) -> Result<u64, SqlError> {
        promotion.validate()?;
        let id = to_db("promotion.id", promotion.id)?;
        let store_id = to_db("promotion.store_id", promotion.store_id)?;
        let tiers = promotion
            .tiers
            .iter()
            .map(|t| Ok((to_x100("tier.threshold", t.threshold)?, to_x100("tier.value", t.value)?)))
            .collect::<Result<Vec<_>, SqlError>>()?;
        let goods = promotion
            .goods_ids
            .iter()
            .map(|g| to_db("promotion.goods_id", *g))
            .collect::<Result<Vec<_>, SqlError>>()?;

        let mut tx = self.pool.begin().await?;
        let stamp = tick(&mut tx, self.now(), 1).await?;
        let updated = sqlx::query(
            "UPDATE promotion SET kind = ?, scope = ?, store_id = ?, name = ?, start_ms = ?, end_ms = ?, \
             status = ?, version = ?, updated_at = ?, deleted_at = NULL WHERE id = ?",
        )
        .bind(promotion.kind.as_str())
        .bind(promotion_scope_str(promotion.scope))
        .bind(store_id)
        .bind(promotion.name.as_str())
        .bind(promotion.start_ms)
        .bind(promotion.end_ms)
        .bind(promotion_status_str(promotion.status))
        .bind(stamp.version)
        .bind(stamp.updated_at)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            sqlx::query(
                "INSERT INTO promotion (id, kind, scope, store_id, name, start_ms, end_ms, status, version, \
                 created_at, updated_at, deleted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
            )
            .bind(id)
            .bind(promotion.kind.as_str())
            .bind(promotion_scope_str(promotion.scope))
            .bind(store_id)
            .bind(promotion.name.as_str())
            .bind(promotion.start_ms)
            .bind(promotion.end_ms)
            .bind(promotion_status_str(promotion.status))
            .bind(stamp.version)
            .bind(stamp.updated_at)
            .bind(stamp.updated_at)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("DELETE FROM promotion_tier WHERE promotion_id = ?").bind(id).execute(&mut *tx).await?;
        for (threshold, value) in tiers {
            sqlx::query("INSERT INTO promotion_tier (promotion_id, threshold_fen, value_x100) VALUES (?, ?, ?)")
                .bind(id)
                .bind(threshold)
                .bind(value)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM promotion_goods WHERE promotion_id = ?").bind(id).execute(&mut *tx).await?;
        insert_promotion_goods(&mut tx, id, &goods).await?;
        tx.commit().await?;
        Ok(stamp.version as u64)
    }

    /// Soft-deletes a promotion or coupon; loaders stop returning it.
    pub async fn delete_promotion(&self, id: u64) -> Result<u64, SqlError> {
        self.soft_delete("promotion", to_db("promotion.id", id)?).await?.ok_or(SqlError::UnknownPromotion(id))
    }

    /// Soft-deletes the row `db_id` of `table` (one of this crate's table
    /// names, never input) with the next version, in its own transaction.
    /// A row already deleted keeps its version, which is returned; `None`
    /// when there is no such row.
    async fn soft_delete(&self, table: &'static str, db_id: i64) -> Result<Option<u64>, SqlError> {
        let mut tx = self.pool.begin().await?;
        let stamp = tick(&mut tx, self.now(), 1).await?;
        let Some(row) = sqlx::query(&format!("SELECT version, deleted_at FROM {table} WHERE id = ?"))
            .bind(db_id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        if row.try_get::<Option<i64>, _>("deleted_at")?.is_some() {
            let version: i64 = row.try_get("version")?;
            tx.rollback().await?;
            return Ok(Some(version as u64));
        }
        sqlx::query(&format!("UPDATE {table} SET deleted_at = ?, version = ?, updated_at = ? WHERE id = ?"))
            .bind(stamp.updated_at)
            .bind(stamp.version)
            .bind(stamp.updated_at)
            .bind(db_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(stamp.version as u64))
    }
}

/// Takes `n` versions from the counter (the last one is returned) and the
/// write stamp `max(now, last stamp + 1)`. The UPDATE comes first so the
/// counter row is locked (MariaDB) or the write lock taken (SQLite) before
/// anything is read.
pub(crate) async fn tick(conn: &mut AnyConnection, now: i64, n: i64) -> Result<Stamp, SqlError> {
    sqlx::query(
        "UPDATE catalog_clock SET version = version + ?, \
         updated_at = CASE WHEN updated_at >= ? THEN updated_at + 1 ELSE ? END WHERE id = 1",
    )
    .bind(n)
    .bind(now)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    read_clock(conn).await
}

/// Like [`tick`], but raises the counter to at least `version` (writes that
/// carry their own version).
async fn tick_to(conn: &mut AnyConnection, now: i64, version: i64) -> Result<Stamp, SqlError> {
    sqlx::query(
        "UPDATE catalog_clock SET version = CASE WHEN version < ? THEN ? ELSE version END, \
         updated_at = CASE WHEN updated_at >= ? THEN updated_at + 1 ELSE ? END WHERE id = 1",
    )
    .bind(version)
    .bind(version)
    .bind(now)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let stamp = read_clock(conn).await?;
    Ok(Stamp { version, ..stamp })
}

async fn read_clock(conn: &mut AnyConnection) -> Result<Stamp, SqlError> {
    let row = sqlx::query("SELECT version, updated_at FROM catalog_clock WHERE id = 1").fetch_one(&mut *conn).await?;
    Ok(Stamp { version: row.try_get("version")?, updated_at: row.try_get("updated_at")? })
}

/// Updates the goods row (keeping created_at, clearing a soft delete) or inserts it.
#[allow(clippy::too_many_arguments)]
async fn write_goods_row(
    conn: &mut AnyConnection,
    id: i64,
    store_id: i64,
    price: i64,
    currency: &str,
    status: &str,
    stamp: Stamp,
) -> Result<(), SqlError> {
    let updated = sqlx::query(
        "UPDATE goods SET store_id = ?, base_price_fen = ?, currency = ?, status = ?, version = ?, \
         updated_at = ?, deleted_at = NULL WHERE id = ?",
    )
    .bind(store_id)
    .bind(price)
    .bind(currency)
    .bind(status)
    .bind(stamp.version)
    .bind(stamp.updated_at)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() == 0 {
        insert_goods_row(conn, id, store_id, price, currency, status, stamp, None).await?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn insert_goods_row(
    conn: &mut AnyConnection,
    id: i64,
    store_id: i64,
    price: i64,
    currency: &str,
    status: &str,
    stamp: Stamp,
    deleted_at: Option<i64>,
) -> Result<(), SqlError> {
    sqlx::query(
        "INSERT INTO goods (id, store_id, base_price_fen, currency, status, version, created_at, updated_at, \
         deleted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(id)
    .bind(store_id)
    .bind(price)
    .bind(currency)
    .bind(status)
    .bind(stamp.version)
    .bind(stamp.updated_at)
    .bind(stamp.updated_at)
    .bind(deleted_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn touch_goods(conn: &mut AnyConnection, goods_id: i64, stamp: Stamp) -> Result<(), SqlError> {
    sqlx::query("UPDATE goods SET version = ?, updated_at = ? WHERE id = ?")
        .bind(stamp.version)
        .bind(stamp.updated_at)
        .bind(goods_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// An activity as column values, checked to be representable.
#[derive(Debug, Clone)]
pub(crate) struct ActivityValues {
    pub id: i64,
    pub goods_id: i64,
    pub kind: &'static str,
    pub value_x100: i64,
    pub start_ms: i64,
    pub end_ms: i64,
    pub channels: i64,
    pub city_ids: String,
    pub store_ids: String,
    pub new_user_only: i64,
    pub min_member_level: i64,
    pub stock_left: Option<i64>,
    pub per_user_limit: i64,
    pub priority: i64,
    pub status: &'static str,
}

pub(crate) const ACTIVITY_COLUMNS: &str = "id, goods_id, kind, value_x100, start_ms, end_ms, channels, city_ids, \
     store_ids, new_user_only, min_member_level, stock_left, per_user_limit, priority, status, version, \
     created_at, updated_at, deleted_at";
pub(crate) const ACTIVITY_COLUMN_COUNT: usize = 19;

impl ActivityValues {
    pub(crate) fn new(a: &Activity) -> Result<ActivityValues, SqlError> {
        Ok(ActivityValues {
            id: to_db("activity.id", a.id)?,
            goods_id: to_db("activity.goods_id", a.goods_id)?,
            kind: activity_kind_str(a.kind),
            value_x100: to_x100("activity.value", a.value)?,
            start_ms: a.start_ms,
            end_ms: a.end_ms,
            channels: i64::from(a.channels.bits()),
            city_ids: encode_ids("activity.city_ids", &a.city_ids, MAX_ID_LIST)?,
            store_ids: encode_ids("activity.store_ids", &a.store_ids, MAX_ID_LIST)?,
            new_user_only: i64::from(a.new_user_only),
            min_member_level: i64::from(a.min_member_level),
            stock_left: a.stock_left.map(|s| to_db("activity.stock_left", s)).transpose()?,
            per_user_limit: i64::from(a.per_user_limit),
            priority: i64::from(a.priority),
            status: activity_status_str(a.status),
        })
    }

    /// Binds the [`ACTIVITY_COLUMNS`] values, in order.
    pub(crate) fn bind_all<'q>(
        &'q self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
        version: i64,
        updated_at: i64,
        deleted_at: Option<i64>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        query
            .bind(self.id)
            .bind(self.goods_id)
            .bind(self.kind)
            .bind(self.value_x100)
            .bind(self.start_ms)
            .bind(self.end_ms)
            .bind(self.channels)
            .bind(self.city_ids.as_str())
            .bind(self.store_ids.as_str())
            .bind(self.new_user_only)
            .bind(self.min_member_level)
            .bind(self.stock_left)
            .bind(self.per_user_limit)
            .bind(self.priority)
            .bind(self.status)
            .bind(version)
            .bind(updated_at)
            .bind(updated_at)
            .bind(deleted_at)
    }
}

/// Updates the activity row (keeping created_at) or inserts it.
async fn write_activity(
    conn: &mut AnyConnection,
    row: &ActivityValues,
    stamp: Stamp,
    deleted_at: Option<i64>,
) -> Result<(), SqlError> {
    let updated = sqlx::query(
        "UPDATE activity SET goods_id = ?, kind = ?, value_x100 = ?, start_ms = ?, end_ms = ?, channels = ?, \
         city_ids = ?, store_ids = ?, new_user_only = ?, min_member_level = ?, stock_left = ?, \
         per_user_limit = ?, priority = ?, status = ?, version = ?, updated_at = ?, deleted_at = ? WHERE id = ?",
    )
    .bind(row.goods_id)
    .bind(row.kind)
    .bind(row.value_x100)
    .bind(row.start_ms)
    .bind(row.end_ms)
    .bind(row.channels)
    .bind(row.city_ids.as_str())
    .bind(row.store_ids.as_str())
    .bind(row.new_user_only)
    .bind(row.min_member_level)
    .bind(row.stock_left)
    .bind(row.per_user_limit)
    .bind(row.priority)
    .bind(row.status)
    .bind(stamp.version)
    .bind(stamp.updated_at)
    .bind(deleted_at)
    .bind(row.id)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() == 0 {
        let sql = format!(
            "INSERT INTO activity ({ACTIVITY_COLUMNS}) VALUES ({})",
            crate::db::placeholders(ACTIVITY_COLUMN_COUNT)
        );
        row.bind_all(sqlx::query(&sql), stamp.version, stamp.updated_at, deleted_at).execute(&mut *conn).await?;
    }
    Ok(())
}

async fn insert_promotion_goods(conn: &mut AnyConnection, promotion_id: i64, goods: &[i64]) -> Result<(), SqlError> {
    for chunk in goods.chunks(500) {
        let values = vec!["(?, ?)"; chunk.len()].join(", ");
        let sql = format!("INSERT INTO promotion_goods (promotion_id, goods_id) VALUES {values}");
        let mut query = sqlx::query(&sql);
        for g in chunk {
            query = query.bind(promotion_id).bind(*g);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_column_list_matches_its_count() {
        assert_eq!(ACTIVITY_COLUMNS.split(',').count(), ACTIVITY_COLUMN_COUNT);
    }
}
