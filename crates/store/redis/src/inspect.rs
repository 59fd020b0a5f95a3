//! [`Inspect`] for [`RedisStore`]: values as stored, and a walk over every
//! goods key, through the store's own connections, deadline, metrics
//! (`op` = inspect | walk) and error kinds.
//!
//! - `inspect` is the read path's MGET (on a Cluster one pipeline per node,
//!   redirections followed) without the decoding: each value comes back
//!   with the version in its header as the Lua guard reads it.
//! - `walk` is `SCAN` with `MATCH pr:g:*`. On a standalone server the
//!   cursor is the server's; on a Cluster it is a master's address and that
//!   master's `SCAN` cursor: one `SCAN` walk per master, the masters in
//!   address order, so a walk covers every slot. A failover or reshard
//!   during a walk can make it miss or repeat keys that moved; walk again.

use std::sync::Arc;

use async_trait::async_trait;
use pricing_record::GoodsId;
use pricing_record::codec::peek_version;
use pricing_record::keys::{REDIS_KEY_PREFIX, goods_id_from_redis_key};
use pricing_store::{Inspect, RawEntry, StoreError, StoreErrorKind, VersionGuard, WalkCursor, WalkPage};

use crate::store::{Conn, RedisStore, unique_keys};

/// The guard the Lua script sees in a stored value: the header's version,
/// or nothing when there is no header it reads (then any write replaces it).
pub(crate) fn header_guard(bytes: &[u8]) -> VersionGuard {
    VersionGuard::Header(peek_version(bytes).ok())
}

fn foreign_cursor(store: &str) -> StoreError {
    StoreError::new(store, StoreErrorKind::Protocol, "walk cursor was not made by this store")
}

/// A standalone cursor is the server's `SCAN` cursor in decimal.
fn standalone_cursor(store: &str, cursor: &WalkCursor) -> Result<u64, StoreError> {
    if cursor.is_start() {
        return Ok(0);
    }
    std::str::from_utf8(cursor.position()).ok().and_then(|t| t.parse().ok()).ok_or_else(|| foreign_cursor(store))
}

/// A Cluster cursor is `<master host:port> <that master's SCAN cursor>`;
/// `None` at the start.
fn cluster_cursor(store: &str, cursor: &WalkCursor) -> Result<Option<(Arc<str>, u64)>, StoreError> {
    if cursor.is_start() {
        return Ok(None);
    }
    let text = std::str::from_utf8(cursor.position()).map_err(|_| foreign_cursor(store))?;
    let (addr, scan) = text.rsplit_once(' ').ok_or_else(|| foreign_cursor(store))?;
    let scan = scan.parse().map_err(|_| foreign_cursor(store))?;
    Ok(Some((Arc::from(addr), scan)))
}

fn ids_of(keys: &[Vec<u8>]) -> Vec<GoodsId> {
    keys.iter().filter_map(|k| goods_id_from_redis_key(k)).collect()
}

#[async_trait]
impl Inspect for RedisStore {
    fn name(&self) -> &str {
        self.store_name()
    }

    async fn inspect(&self, ids: &[GoodsId]) -> Result<Vec<RawEntry>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let (unique, keys) = unique_keys(ids);
        let values = self.call("inspect", self.mget(&keys)).await?;
        Ok(unique
            .into_iter()
            .zip(values)
            .filter_map(|(goods_id, value)| {
                value.map(|bytes| RawEntry { goods_id, guard: header_guard(&bytes), bytes })
            })
            .collect())
    }

    async fn walk(&self, from: &WalkCursor, count: u32) -> Result<WalkPage, StoreError> {
        let pattern = format!("{REDIS_KEY_PREFIX}*");
        let count = count.max(1);
        match self.conn() {
            Conn::Standalone(conn) => {
                let cursor = standalone_cursor(self.store_name(), from)?;
                let (next, keys): (u64, Vec<Vec<u8>>) = self
                    .call("walk", async {
                        let mut cmd = redis::cmd("SCAN");
                        cmd.arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(count);
                        cmd.query_async(&mut conn.clone()).await
                    })
                    .await?;
                let next = (next != 0).then(|| WalkCursor::at(next.to_string()));
                Ok(WalkPage { ids: ids_of(&keys), next })
            }
            Conn::Cluster(router) => {
                let at = cluster_cursor(self.store_name(), from)?;
                let (keys, next) = self.call("walk", router.scan_step(at, &pattern, count)).await?;
                let next = next.map(|(addr, cursor)| WalkCursor::at(format!("{addr} {cursor}")));
                Ok(WalkPage { ids: ids_of(&keys), next })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pricing_record::{GoodsRecord, GoodsStatus, encode};
    use rust_decimal::Decimal;

    #[test]
    fn the_guard_is_the_header_the_script_reads() {
        let record = GoodsRecord {
            goods_id: 7,
            version: 42,
            store_id: 1,
            base_price: Decimal::new(1_000, 2),
            currency: "CNY".into(),
            status: GoodsStatus::OnSale,
            activities: Vec::new(),
        };
        let bytes = encode(&record).unwrap();
        assert_eq!(header_guard(&bytes), VersionGuard::Header(Some(42)));
        assert_eq!(header_guard(b"garbage"), VersionGuard::Header(None));
        assert_eq!(header_guard(b""), VersionGuard::Header(None));
        // A header over a broken payload still guards the key.
        assert_eq!(header_guard(&bytes[..12]), VersionGuard::Header(Some(42)));
    }

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        assert_eq!(standalone_cursor("r", &WalkCursor::start()).unwrap(), 0);
        assert_eq!(standalone_cursor("r", &WalkCursor::at("17")).unwrap(), 17);
        assert_eq!(cluster_cursor("r", &WalkCursor::start()).unwrap(), None);
        assert_eq!(
            cluster_cursor("r", &WalkCursor::at("127.0.0.1:7001 9")).unwrap(),
            Some((Arc::from("127.0.0.1:7001"), 9))
        );
        let foreign = standalone_cursor("r", &WalkCursor::at("00ab")).unwrap_err();
        assert_eq!(foreign.kind, StoreErrorKind::Protocol);
        assert!(cluster_cursor("r", &WalkCursor::at("17")).is_err(), "no master in it");
        assert!(standalone_cursor("r", &WalkCursor::at(vec![0xff, 0xfe])).is_err());
    }
}
