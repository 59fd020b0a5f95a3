//! [`HbaseStore`]: goods records in one HBase table, read and written over Thrift.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use hbase_thrift::hbase::{AlreadyExists, BatchMutation, ColumnDescriptor, Mutation, THbaseSyncClient, TRowResult};
use pricing_record::keys::{HBASE_COLUMN, goods_id_from_row_key, hbase_row_key};
use pricing_record::{GoodsId, decode_for, encode};
use pricing_store::{
    RecordStore, RecordWriter, SharedRecord, StoreCall, StoreError, StoreErrorKind, WriteReport, count_corrupt,
};

use crate::client::Pool;
use crate::{ConfigError, HbaseConfig};

/// Versions kept per cell. One is enough: reads want the newest and the
/// timestamp (= record version) already decides which that is.
const MAX_VERSIONS: i32 = 1;

/// The HBase tier of the read path: one `getRowsWithColumns` per batch, cell
/// timestamp = record version.
///
/// Reads match returned rows by their row key, never by position (HBase
/// omits missing rows and promises no order). Writes put each record's
/// bytes at timestamp = its version, so HBase itself keeps the newest when
/// writers race or arrive late; the report comes from reading the held
/// timestamps first in the same call.
pub struct HbaseStore {
    name: String,
    table: Vec<u8>,
    /// "family:qualifier" of the record cell (`keys::HBASE_COLUMN`).
    column: Vec<u8>,
    pool: Arc<Pool>,
}

impl std::fmt::Debug for HbaseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HbaseStore")
            .field("name", &self.name)
            .field("table", &String::from_utf8_lossy(&self.table))
            .finish()
    }
}

impl HbaseStore {
    /// Builds the store; connects lazily on the first call.
    pub fn new(config: HbaseConfig) -> Result<HbaseStore, ConfigError> {
        config.validate()?;
        Ok(HbaseStore {
            name: config.name.clone(),
            table: config.table.clone().into_bytes(),
            column: HBASE_COLUMN.as_bytes().to_vec(),
            pool: Arc::new(Pool::new(config)),
        })
    }

    /// Creates the table with the record's column family if it is missing;
    /// an existing but disabled table is an `Unavailable` error.
    pub async fn ensure_table(&self) -> Result<(), StoreError> {
        let table = self.table.clone();
        let family = {
            let (family, _) = HBASE_COLUMN.split_once(':').unwrap_or((HBASE_COLUMN, ""));
            format!("{family}:").into_bytes()
        };
        let enabled = self
            .call("ensure_table", move |c| {
                if c.get_table_names()?.contains(&table) {
                    return c.is_table_enabled(table.clone());
                }
                let descriptor = ColumnDescriptor::new(
                    family.clone(),
                    MAX_VERSIONS,
                    "NONE".to_owned(),
                    false,
                    "NONE".to_owned(),
                    0,
                    0,
                    true,
                    i32::MAX,
                );
                match c.create_table(table.clone(), vec![descriptor]) {
                    Ok(()) => Ok(true),
                    // Another process created it between our two calls.
                    Err(thrift::Error::User(e)) if e.is::<AlreadyExists>() => c.is_table_enabled(table.clone()),
                    Err(e) => Err(e),
                }
            })
            .await?;
        if !enabled {
            return Err(StoreError::unavailable(
                &self.name,
                format!("table {} is disabled", String::from_utf8_lossy(&self.table)),
            ));
        }
        tracing::info!(store = %self.name, table = %String::from_utf8_lossy(&self.table), "hbase table ready");
        Ok(())
    }

    /// One Thrift call through the pool, with the store-level metrics of
    /// [`StoreCall`] (`op` = the Thrift method; a call dropped by its caller
    /// counts as cancelled) and throttled logging of failures.
    pub(crate) async fn call<T, F>(&self, method: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&mut crate::client::Client) -> thrift::Result<T> + Send + 'static,
    {
        let call = StoreCall::start(&self.name, method);
        let result = self.pool.call(f).await.map_err(|e| e.into_store_error(&self.name, method));
        call.finish(&result);
        if let Err(error) = &result {
            metrics::counter!("pricing_store_hbase_errors_total", "store" => self.name.clone(), "kind" => format!("{:?}", error.kind))
                .increment(1);
        }
        result
    }

    /// The record cell of each goods in `ids` that has one, as (goods id,
    /// cell timestamp, value): one `getRowsWithColumns` for the batch
    /// (duplicates asked once), rows matched by their key, never by position
    /// (HBase omits missing rows and promises no order). No I/O for no ids.
    pub(crate) async fn record_cells(
        &self,
        op: &'static str,
        ids: &[GoodsId],
    ) -> Result<Vec<(GoodsId, i64, Option<Vec<u8>>)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut asked = HashSet::with_capacity(ids.len());
        let rows: Vec<Vec<u8>> = ids.iter().filter(|id| asked.insert(**id)).map(|id| hbase_row_key(*id)).collect();
        let (table, column) = (self.table.clone(), self.column.clone());
        let results = self
            .call(op, move |c| {
                c.get_rows_with_columns(table.clone(), rows.clone(), vec![column.clone()], BTreeMap::new())
            })
            .await?;
        let mut cells = Vec::with_capacity(results.len());
        let mut seen = HashSet::with_capacity(results.len());
        for row in results {
            let key = row.row.clone().unwrap_or_default();
            let Some(id) = goods_id_from_row_key(&key).filter(|id| asked.contains(id)) else {
                tracing::warn!(store = %self.name, row = %String::from_utf8_lossy(&key), "hbase returned a row that was not asked for");
                continue;
            };
            if !seen.insert(id) {
                continue;
            }
            if let Some((timestamp, value)) = cell_of(row, &self.column) {
                cells.push((id, timestamp, value));
            }
        }
        Ok(cells)
    }

    pub(crate) fn store_name(&self) -> &str {
        &self.name
    }

    pub(crate) fn table(&self) -> &[u8] {
        &self.table
    }

    pub(crate) fn column(&self) -> &[u8] {
        &self.column
    }

    fn invalid(&self, message: String) -> StoreError {
        StoreError::new(&self.name, StoreErrorKind::Protocol, message)
    }
}

/// The cell of `column` in a returned row: from `columns`, or from
/// `sorted_columns` when the server sends that form instead.
fn cell_of(row: TRowResult, column: &[u8]) -> Option<(i64, Option<Vec<u8>>)> {
    if let Some(mut columns) = row.columns
        && let Some(cell) = columns.remove(column)
    {
        return Some((cell.timestamp.unwrap_or(0), cell.value));
    }
    row.sorted_columns?
        .into_iter()
        .find(|c| c.column_name.as_deref() == Some(column))
        .and_then(|c| c.cell)
        .map(|cell| (cell.timestamp.unwrap_or(0), cell.value))
}

#[async_trait]
impl RecordStore for HbaseStore {
    fn name(&self) -> &str {
        &self.name
    }

    async fn fetch(&self, ids: &[GoodsId]) -> Result<Vec<SharedRecord>, StoreError> {
        let cells = self.record_cells("getRowsWithColumns", ids).await?;
        let mut found = Vec::with_capacity(cells.len());
        for (id, _, value) in cells {
            let Some(bytes) = value else { continue };
            match decode_for(id, &bytes) {
                Ok(record) => found.push(Arc::new(record)),
                Err(error) => count_corrupt(&self.name, id, &error),
            }
        }
        Ok(found)
    }
}

/// A record ready to send: its row, timestamp and bytes.
struct Prepared {
    row: Vec<u8>,
    timestamp: i64,
    bytes: Vec<u8>,
}

#[async_trait]
impl RecordWriter for HbaseStore {
    fn name(&self) -> &str {
        &self.name
    }

    /// One call: a `getRowsWithColumns` for the held timestamps (for the
    /// report), then one `mutateRowsTs` per distinct version among the
    /// records that are newer (Thrift v1 gives one timestamp per call).
    async fn put(&self, records: &[SharedRecord]) -> Result<WriteReport, StoreError> {
        let mut report = WriteReport::default();
        // Within the batch the highest version of each goods is the candidate.
        let mut newest: HashMap<GoodsId, &SharedRecord> = HashMap::with_capacity(records.len());
        for record in records {
            match newest.get(&record.goods_id) {
                Some(held) if held.version >= record.version => report.skipped_older += 1,
                Some(_) => {
                    report.skipped_older += 1;
                    newest.insert(record.goods_id, record);
                }
                None => {
                    newest.insert(record.goods_id, record);
                }
            }
        }
        if newest.is_empty() {
            return Ok(report);
        }
        let mut prepared = Vec::with_capacity(newest.len());
        for record in newest.values() {
            let timestamp = i64::try_from(record.version).map_err(|_| {
                self.invalid(format!(
                    "goods {}: version {} does not fit an hbase timestamp",
                    record.goods_id, record.version
                ))
            })?;
            let bytes =
                encode(record).map_err(|e| self.invalid(format!("goods {}: cannot encode: {e}", record.goods_id)))?;
            prepared.push(Prepared { row: hbase_row_key(record.goods_id), timestamp, bytes: bytes.to_vec() });
        }
        let prepared = Arc::new(prepared);
        let (table, column) = (self.table.clone(), self.column.clone());
        let (written, skipped) = self
            .call("put", move |c| {
                let rows = prepared.iter().map(|p| p.row.clone()).collect();
                let held: HashMap<Vec<u8>, i64> = c
                    .get_rows_with_columns(table.clone(), rows, vec![column.clone()], BTreeMap::new())?
                    .into_iter()
                    .filter_map(|r| {
                        let row = r.row.clone()?;
                        cell_of(r, &column).map(|(ts, _)| (row, ts))
                    })
                    .collect();
                let mut by_version: BTreeMap<i64, Vec<BatchMutation>> = BTreeMap::new();
                let mut skipped = 0;
                for p in prepared.iter() {
                    if held.get(&p.row).is_some_and(|ts| *ts >= p.timestamp) {
                        skipped += 1;
                        continue;
                    }
                    let put = Mutation::new(false, column.clone(), p.bytes.clone(), true);
                    by_version.entry(p.timestamp).or_default().push(BatchMutation::new(p.row.clone(), vec![put]));
                }
                let written = by_version.values().map(Vec::len).sum::<usize>();
                for (timestamp, batch) in by_version {
                    c.mutate_rows_ts(table.clone(), batch, timestamp, BTreeMap::new())?;
                }
                Ok((written, skipped))
            })
            .await?;
        report.written += written;
        report.skipped_older += skipped;
        Ok(report)
    }

    /// Deletes each row's cells up to the newest timestamp held
    /// (`deleteAllRowTs`), not with `deleteAllRow`: HBase puts that marker
    /// at the server's clock in milliseconds, far above record versions, so
    /// it would hide every later write of the goods until a major compaction.
    async fn remove(&self, ids: &[GoodsId]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut asked = HashSet::with_capacity(ids.len());
        let rows: Vec<Vec<u8>> = ids.iter().filter(|id| asked.insert(**id)).map(|id| hbase_row_key(*id)).collect();
        let table = self.table.clone();
        self.call("remove", move |c| {
            let held = c.get_rows_with_columns(table.clone(), rows.clone(), Vec::new(), BTreeMap::new())?;
            for row in held {
                let newest = row.columns.iter().flatten().filter_map(|(_, cell)| cell.timestamp).max();
                if let (Some(key), Some(newest)) = (row.row, newest) {
                    c.delete_all_row_ts(table.clone(), key, newest, BTreeMap::new())?;
                }
            }
            Ok(())
        })
        .await
    }
}
