//! [`Inspect`] for [`HbaseStore`]: cells as stored with their timestamps,
//! and a walk over every row, through the store's own connection pool,
//! timeouts, metrics (`op` = inspect | walk) and error kinds.
//!
//! - `inspect` is the read path's `getRowsWithColumns` without the
//!   decoding: each record cell comes back with its timestamp, the version a
//!   put must exceed.
//! - `walk` is one pooled call per step: `scannerOpen` at the cursor's row
//!   (the table's first row at the start), `scannerGetList` of `count`
//!   rows, `scannerClose`. The cursor is the row key after the last one
//!   returned, so no scanner stays open between steps and a step that
//!   fails can simply be asked again.

use std::collections::BTreeMap;

use async_trait::async_trait;
use hbase_thrift::hbase::THbaseSyncClient;
use pricing_record::GoodsId;
use pricing_record::keys::goods_id_from_row_key;
use pricing_store::{Inspect, RawEntry, StoreError, VersionGuard, WalkCursor, WalkPage};

use crate::HbaseStore;

/// The first row key after `row` in HBase's (byte-wise) order.
fn row_after(row: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(row.len() + 1);
    next.extend_from_slice(row);
    next.push(0);
    next
}

#[async_trait]
impl Inspect for HbaseStore {
    fn name(&self) -> &str {
        self.store_name()
    }

    async fn inspect(&self, ids: &[GoodsId]) -> Result<Vec<RawEntry>, StoreError> {
        let cells = self.record_cells("inspect", ids).await?;
        // A cell without a value still holds its timestamp against writes.
        Ok(cells
            .into_iter()
            .map(|(goods_id, timestamp, value)| RawEntry {
                goods_id,
                bytes: value.unwrap_or_default(),
                guard: VersionGuard::CellTimestamp(timestamp),
            })
            .collect())
    }

    async fn walk(&self, from: &WalkCursor, count: u32) -> Result<WalkPage, StoreError> {
        let rows = i32::try_from(count).unwrap_or(i32::MAX).max(1);
        let (table, column, start) = (self.table().to_vec(), self.column().to_vec(), from.position().to_vec());
        let found = self
            .call("walk", move |c| {
                let scanner = c.scanner_open(table.clone(), start.clone(), vec![column.clone()], BTreeMap::new())?;
                let rows = c.scanner_get_list(scanner, rows);
                // Closed whatever the read did. A failed close fails the step
                // (and drops a connection that may be out of step); the
                // scanner left behind expires with its lease on the server.
                let closed = c.scanner_close(scanner);
                let rows = rows?;
                closed?;
                Ok(rows)
            })
            .await?;
        let last = found.iter().filter_map(|r| r.row.as_deref()).max().map(row_after);
        let ids = found.iter().filter_map(|r| r.row.as_deref().and_then(goods_id_from_row_key)).collect();
        // A short page is the end; a full one may be too (one more step says so).
        let full = usize::try_from(rows).is_ok_and(|rows| found.len() >= rows);
        let next = if full { last.map(WalkCursor::at) } else { None };
        Ok(WalkPage { ids, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pricing_record::keys::hbase_row_key;

    #[test]
    fn the_next_row_sorts_right_after() {
        let row = hbase_row_key(42);
        let next = row_after(&row);
        assert!(next.as_slice() > row.as_slice());
        // Nothing sorts between a row and its successor.
        let mut above = row.clone();
        above.push(1);
        assert!(next < above);
        assert!(next < row_after(&next));
    }
}
