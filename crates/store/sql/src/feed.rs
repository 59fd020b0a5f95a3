//! Change feeds for the projector: a full walk over every goods id, and the
//! goods changed since a watermark. Both include soft-deleted goods, so that
//! their tombstones are projected.

use pricing_record::{GoodsId, UnixMillis};
use sqlx::Row;

use crate::convert::{from_db, to_db};
use crate::error::SqlError;
use crate::store::SqlStore;

impl SqlStore {
    /// Up to `limit` goods ids above `after_id`, ascending (a full sync walks
    /// pages, passing the last id of one page as `after_id` of the next).
    pub async fn goods_page(&self, after_id: GoodsId, limit: u32) -> Result<Vec<GoodsId>, SqlError> {
        let after = i64::try_from(after_id).unwrap_or(i64::MAX);
        self.read(async {
            let rows = sqlx::query("SELECT id FROM goods WHERE id > ? ORDER BY id LIMIT ?")
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(self.pool())
                .await?;
            rows.iter().map(|r| Ok(from_db("goods.id", r.try_get("id")?)?)).collect()
        })
        .await
    }

    /// Up to `limit` goods changed after the watermark `(updated_at_ms,
    /// after_id)`, ordered by `(updated_at, id)`, with their `updated_at`.
    /// The next call passes the last pair returned.
    ///
    /// Every catalogue transaction stamps `updated_at = max(now, last stamp +
    /// 1)` under the counter lock, so stamps strictly increase in commit
    /// order and the rows of one transaction share one stamp: a change
    /// committed after a page was read always sorts after that page's last
    /// pair, and no change is skipped by resuming from it.
    pub async fn changed_since(
        &self,
        updated_at_ms: UnixMillis,
        after_id: GoodsId,
        limit: u32,
    ) -> Result<Vec<(GoodsId, UnixMillis)>, SqlError> {
        let after = to_db("after_id", after_id).unwrap_or(i64::MAX);
        self.read(async {
            let rows = sqlx::query(
                "SELECT id, updated_at FROM goods WHERE updated_at >= ? AND (updated_at > ? OR id > ?) \
                 ORDER BY updated_at, id LIMIT ?",
            )
            .bind(updated_at_ms)
            .bind(updated_at_ms)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
            rows.iter()
                .map(|r| Ok((from_db("goods.id", r.try_get("id")?)?, r.try_get::<i64, _>("updated_at")?)))
                .collect()
        })
        .await
    }
}
