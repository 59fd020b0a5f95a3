//! What the projector keeps in (and does to) the source database: run
//! cursors, the durable retry queue, the purge of old soft-deleted rows, and
//! re-versioning a goods so that a repair can overwrite a store entry.
//!
//! The tables are in `migrations/*/0002_projector.sql`. Every statement is
//! plain SQL both backends accept, except the retry queue's upsert, which
//! has one spelling per backend.

use pricing_record::{GoodsId, UnixMillis};
use sqlx::Row;

use crate::catalog::tick;
use crate::convert::{from_db, to_db};
use crate::db::Backend;
use crate::error::SqlError;
use crate::store::SqlStore;

/// Longest `last_error` kept (the column size).
const MAX_ERROR_CHARS: usize = 1_000;

/// Where a projector run stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    /// Incremental: `updated_at` of the last goods projected; full: 0.
    pub position_ms: UnixMillis,
    /// The last goods id projected at that position.
    pub after_id: GoodsId,
}

/// A write that failed at one cluster, as queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryEntry {
    /// The cluster store name ("redis-b").
    pub target: String,
    pub goods_id: GoodsId,
    /// The highest version whose write failed (for logs and alerts; the
    /// drain writes the current record, whatever its version).
    pub version: u64,
    pub attempts: u32,
    pub last_error: String,
    pub next_attempt_at: UnixMillis,
}

fn clip(error: &str) -> &str {
    match error.char_indices().nth(MAX_ERROR_CHARS) {
        Some((end, _)) => &error[..end],
        None => error,
    }
}

impl SqlStore {
    /// The cursor called `name`, if a run saved one.
    pub async fn cursor(&self, name: &str) -> Result<Option<Cursor>, SqlError> {
        let row = sqlx::query("SELECT position_ms, after_id FROM projector_cursor WHERE name = ?")
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| {
            Ok(Cursor {
                position_ms: r.try_get("position_ms")?,
                after_id: from_db("after_id", r.try_get("after_id")?)?,
            })
        })
        .transpose()
    }

    /// Saves (creates or moves) the cursor called `name`.
    pub async fn save_cursor(&self, name: &str, cursor: Cursor, now: UnixMillis) -> Result<(), SqlError> {
        let after = to_db("after_id", cursor.after_id)?;
        let updated =
            sqlx::query("UPDATE projector_cursor SET position_ms = ?, after_id = ?, updated_at = ? WHERE name = ?")
                .bind(cursor.position_ms)
                .bind(after)
                .bind(now)
                .bind(name)
                .execute(self.pool())
                .await?;
        if updated.rows_affected() == 0 {
            // MySQL reports 0 affected rows for an UPDATE that changes
            // nothing, so the insert may meet an existing row: ignore that.
            let sql = match self.backend() {
                Backend::MySql => {
                    "INSERT IGNORE INTO projector_cursor (name, position_ms, after_id, updated_at) VALUES (?, ?, ?, ?)"
                }
                Backend::Sqlite => {
                    "INSERT OR IGNORE INTO projector_cursor (name, position_ms, after_id, updated_at) VALUES (?, ?, ?, ?)"
                }
            };
            sqlx::query(sql).bind(name).bind(cursor.position_ms).bind(after).bind(now).execute(self.pool()).await?;
        }
        Ok(())
    }

    /// Forgets the cursor called `name` (a full sync that finished).
    pub async fn clear_cursor(&self, name: &str) -> Result<(), SqlError> {
        sqlx::query("DELETE FROM projector_cursor WHERE name = ?").bind(name).execute(self.pool()).await?;
        Ok(())
    }

    /// Queues a failed write, or updates the queued one of the same cluster
    /// and goods: the higher version, `attempts` added, the newest error
    /// and next attempt time.
    pub async fn enqueue_retry(&self, entry: &RetryEntry, now: UnixMillis) -> Result<(), SqlError> {
        let sql = match self.backend() {
            Backend::MySql => {
                "INSERT INTO projector_retry (target, goods_id, version, attempts, last_error, next_attempt_at, \
                 created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE \
                 version = GREATEST(version, VALUES(version)), attempts = attempts + VALUES(attempts), \
                 last_error = VALUES(last_error), next_attempt_at = VALUES(next_attempt_at), \
                 updated_at = VALUES(updated_at)"
            }
            Backend::Sqlite => {
                "INSERT INTO projector_retry (target, goods_id, version, attempts, last_error, next_attempt_at, \
                 created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (target, goods_id) DO UPDATE SET \
                 version = MAX(version, excluded.version), attempts = attempts + excluded.attempts, \
                 last_error = excluded.last_error, next_attempt_at = excluded.next_attempt_at, \
                 updated_at = excluded.updated_at"
            }
        };
        sqlx::query(sql)
            .bind(entry.target.as_str())
            .bind(to_db("goods_id", entry.goods_id)?)
            .bind(to_db("version", entry.version)?)
            .bind(i64::from(entry.attempts))
            .bind(clip(&entry.last_error))
            .bind(entry.next_attempt_at)
            .bind(now)
            .bind(now)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Up to `limit` queued writes due at `now`, the longest waiting first.
    pub async fn due_retries(&self, now: UnixMillis, limit: u32) -> Result<Vec<RetryEntry>, SqlError> {
        let rows = sqlx::query(
            "SELECT target, goods_id, version, attempts, last_error, next_attempt_at FROM projector_retry \
             WHERE next_attempt_at <= ? ORDER BY next_attempt_at, target, goods_id LIMIT ?",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RetryEntry {
                    target: r.try_get("target")?,
                    goods_id: from_db("goods_id", r.try_get("goods_id")?)?,
                    version: from_db("version", r.try_get("version")?)?,
                    attempts: u32::try_from(r.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
                    last_error: r.try_get("last_error")?,
                    next_attempt_at: r.try_get("next_attempt_at")?,
                })
            })
            .collect()
    }

    /// Drops the queued write of `target` / `goods_id` once a record of
    /// `written_version` is in place, unless a newer failure was queued
    /// meanwhile. Returns whether a row went.
    pub async fn retry_succeeded(
        &self,
        target: &str,
        goods_id: GoodsId,
        written_version: u64,
    ) -> Result<bool, SqlError> {
        let done = sqlx::query("DELETE FROM projector_retry WHERE target = ? AND goods_id = ? AND version <= ?")
            .bind(target)
            .bind(to_db("goods_id", goods_id)?)
            .bind(i64::try_from(written_version).unwrap_or(i64::MAX))
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records one more failed attempt of a queued write.
    pub async fn retry_failed(
        &self,
        target: &str,
        goods_id: GoodsId,
        error: &str,
        next_attempt_at: UnixMillis,
        now: UnixMillis,
    ) -> Result<(), SqlError> {
        sqlx::query(
            "UPDATE projector_retry SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, updated_at = ? \
             WHERE target = ? AND goods_id = ?",
        )
        .bind(clip(error))
        .bind(next_attempt_at)
        .bind(now)
        .bind(target)
        .bind(to_db("goods_id", goods_id)?)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Queued writes, due or not.
    pub async fn retry_depth(&self) -> Result<u64, SqlError> {
        let n: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM projector_retry").fetch_one(self.pool()).await?.try_get("n")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Goods rows in the catalogue (soft-deleted ones included): the total
    /// of a full sync's progress.
    pub async fn goods_count(&self) -> Result<u64, SqlError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM goods").fetch_one(self.pool()).await?.try_get("n")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Which of `ids` have a goods row (soft-deleted or not), whether or not
    /// the row can become a record: a store entry of any other id is extra.
    pub async fn existing_goods(&self, ids: &[GoodsId]) -> Result<Vec<GoodsId>, SqlError> {
        let wanted: Vec<i64> = ids.iter().filter_map(|id| i64::try_from(*id).ok()).collect();
        let mut out = Vec::with_capacity(wanted.len());
        for chunk in wanted.chunks(crate::db::MAX_IN) {
            let values = crate::db::padded(chunk);
            let sql = format!("SELECT id FROM goods WHERE id IN ({})", crate::db::placeholders(values.len()));
            let mut query = sqlx::query(&sql);
            for v in &values {
                query = query.bind(*v);
            }
            for row in query.fetch_all(self.pool()).await? {
                out.push(from_db("goods.id", row.try_get("id")?)?);
            }
        }
        Ok(out)
    }

    /// Up to `limit` goods soft-deleted before `deleted_before`, with ids
    /// above `after_id`, ascending, each with its (tombstone) version.
    pub async fn purgeable_goods(
        &self,
        deleted_before: UnixMillis,
        after_id: GoodsId,
        limit: u32,
    ) -> Result<Vec<(GoodsId, u64)>, SqlError> {
        let rows = sqlx::query(
            "SELECT id, version FROM goods WHERE deleted_at IS NOT NULL AND deleted_at < ? AND id > ? \
             ORDER BY id LIMIT ?",
        )
        .bind(deleted_before)
        .bind(i64::try_from(after_id).unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((from_db("goods.id", r.try_get("id")?)?, from_db("goods.version", r.try_get("version")?)?)))
            .collect()
    }

    /// Physically deletes the given goods (each only if it is still
    /// soft-deleted before `deleted_before` at exactly the given version, so
    /// a goods brought back or touched since is kept), with all its
    /// activity rows and promotion eligibility rows, in one transaction.
    /// Returns the ids deleted.
    pub async fn purge_goods(
        &self,
        goods: &[(GoodsId, u64)],
        deleted_before: UnixMillis,
    ) -> Result<Vec<GoodsId>, SqlError> {
        let mut tx = self.pool().begin().await?;
        let mut purged = Vec::with_capacity(goods.len());
        for &(id, version) in goods {
            let db_id = to_db("goods.id", id)?;
            let gone = sqlx::query(
                "DELETE FROM goods WHERE id = ? AND version = ? AND deleted_at IS NOT NULL AND deleted_at < ?",
            )
            .bind(db_id)
            .bind(to_db("goods.version", version)?)
            .bind(deleted_before)
            .execute(&mut *tx)
            .await?;
            if gone.rows_affected() == 0 {
                continue;
            }
            sqlx::query("DELETE FROM activity WHERE goods_id = ?").bind(db_id).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM promotion_goods WHERE goods_id = ?").bind(db_id).execute(&mut *tx).await?;
            purged.push(id);
        }
        tx.commit().await?;
        Ok(purged)
    }

    /// Physically deletes activity rows soft-deleted before `deleted_before`.
    /// Records leave soft-deleted activities out already, so this changes
    /// no record and needs no projection. Returns the rows deleted.
    pub async fn purge_activities(&self, deleted_before: UnixMillis) -> Result<u64, SqlError> {
        let done = sqlx::query("DELETE FROM activity WHERE deleted_at IS NOT NULL AND deleted_at < ?")
            .bind(deleted_before)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }

    /// Physically deletes promotions and coupons soft-deleted before
    /// `deleted_before`, with their tiers and eligible goods (promotions
    /// are read from the database by the checkout, never projected).
    /// Returns the promotions deleted.
    pub async fn purge_promotions(&self, deleted_before: UnixMillis) -> Result<u64, SqlError> {
        let mut tx = self.pool().begin().await?;
        let ids: Vec<i64> = sqlx::query("SELECT id FROM promotion WHERE deleted_at IS NOT NULL AND deleted_at < ?")
            .bind(deleted_before)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, _>>()?;
        for id in &ids {
            sqlx::query("DELETE FROM promotion_tier WHERE promotion_id = ?").bind(id).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM promotion_goods WHERE promotion_id = ?").bind(id).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM promotion WHERE id = ?").bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(ids.len() as u64)
    }

    /// Gives goods `id` a new version above `above` (and a new `updated_at`)
    /// without changing its content: a repair whose store holds an entry at
    /// or above the true version (a corrupt or foreign value, which a
    /// versioned write cannot replace) re-projects the goods at this new
    /// version. The global counter is raised past `above` if needed.
    /// Returns the new version.
    pub async fn reversion_goods(&self, id: GoodsId, above: u64) -> Result<u64, SqlError> {
        let db_id = to_db("goods.id", id)?;
        let floor =
            to_db("version", above)?.checked_add(1).ok_or(SqlError::OutOfRange { field: "version", value: above })?;
        let now = self.catalog().now();
        let mut tx = self.pool().begin().await?;
        let stamp = tick(&mut tx, now, 1).await?;
        let version = stamp.version.max(floor);
        if version > stamp.version {
            sqlx::query("UPDATE catalog_clock SET version = ? WHERE id = 1 AND version < ?")
                .bind(version)
                .bind(version)
                .execute(&mut *tx)
                .await?;
        }
        let updated = sqlx::query("UPDATE goods SET version = ?, updated_at = ? WHERE id = ?")
            .bind(version)
            .bind(stamp.updated_at)
            .bind(db_id)
            .execute(&mut *tx)
            .await?;
        if updated.rows_affected() == 0 {
            return Err(SqlError::UnknownGoods(id));
        }
        tx.commit().await?;
        Ok(version as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_errors_are_clipped_on_a_char_boundary() {
        let long = "错".repeat(1_500);
        assert_eq!(clip(&long).chars().count(), MAX_ERROR_CHARS);
        assert_eq!(clip("short"), "short");
    }
}
