//! The generated `HbaseSyncHandler` over [`Tables`]: what each Thrift method
//! of HBase's v1 API does here, plus the knobs tests turn (call counts, row
//! order, pause).

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use hbase_thrift::hbase::{
    AlreadyExists, BatchMutation, Bytes, ColumnDescriptor, HbaseSyncHandler, IOError, IllegalArgument, Mutation,
    ScannerID, TAccessControlEntity, TAppend, TCell, TColumn, TIncrement, TRegionInfo, TRowResult, TScan,
    TThriftServerType, Text,
};

use super::tables::{Change, ScanRange, ScannedRow, TableError, Tables};

/// State shared by every connection of one server, and kept across a
/// restart so that data and counters survive it.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) tables: Arc<Tables>,
    /// Calls per Thrift method name ("getRowsWithColumns").
    calls: Mutex<BTreeMap<&'static str, u64>>,
    /// Answer multi-row reads in reverse request order (HBase gives no
    /// order promise; clients must match rows by key).
    pub(crate) reverse_rows: AtomicBool,
    paused: Mutex<bool>,
    resumed: Condvar,
    /// Open scanners by id; a scanner lives until `scannerClose` (or the
    /// server value is dropped).
    scanners: Mutex<HashMap<ScannerID, Scanner>>,
    last_scanner: AtomicI32,
}

/// An open scanner: what it selects and where it stands. Each
/// `scannerGetList` reads the rows after the last one returned as they are
/// at that moment (HBase reads from a snapshot taken at open).
#[derive(Debug)]
struct Scanner {
    table: Vec<u8>,
    range: ScanRange,
    /// The next row key to return at or after (`Included`), or the last row
    /// returned (`Excluded`).
    next: Bound<Vec<u8>>,
    /// Whether rows carry `sortedColumns` (a list) rather than `columns` (a map).
    sort_columns: bool,
}

impl State {
    pub(crate) fn calls(&self, method: &str) -> u64 {
        self.calls.lock().expect("calls lock").get(method).copied().unwrap_or(0)
    }

    pub(crate) fn all_calls(&self) -> BTreeMap<String, u64> {
        self.calls.lock().expect("calls lock").iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    pub(crate) fn set_paused(&self, paused: bool) {
        *self.paused.lock().expect("pause lock") = paused;
        self.resumed.notify_all();
    }

    /// Counts a call, then holds it while the server is paused.
    fn enter(&self, method: &'static str) {
        *self.calls.lock().expect("calls lock").entry(method).or_default() += 1;
        let mut paused = self.paused.lock().expect("pause lock");
        while *paused {
            paused = self.resumed.wait(paused).expect("pause lock");
        }
    }
}

pub(crate) struct Handler {
    pub(crate) state: Arc<State>,
}

fn io_error(message: impl Into<String>) -> thrift::Error {
    thrift::Error::User(Box::new(IOError::new(message.into(), false)))
}

fn illegal_argument(message: impl Into<String>) -> thrift::Error {
    thrift::Error::User(Box::new(IllegalArgument::new(message.into())))
}

fn row_result(row: ScannedRow, sort_columns: bool) -> TRowResult {
    let (key, cells) = row;
    if sort_columns {
        let sorted =
            cells.into_iter().map(|(name, cell)| TColumn::new(name, TCell::new(cell.value, cell.timestamp))).collect();
        TRowResult::new(key, None, Some(sorted))
    } else {
        let columns = cells.into_iter().map(|(name, cell)| (name, TCell::new(cell.value, cell.timestamp))).collect();
        TRowResult::new(key, Some(columns), None)
    }
}

fn to_thrift(e: TableError) -> thrift::Error {
    match e {
        TableError::AlreadyExists(_) => thrift::Error::User(Box::new(AlreadyExists::new(e.to_string()))),
        TableError::IllegalArgument(_) => thrift::Error::User(Box::new(IllegalArgument::new(e.to_string()))),
        other => io_error(other.to_string()),
    }
}

/// The HBase server's own wall clock in milliseconds: the timestamp of
/// writes that name none (HBase stamps those with its region server's
/// clock). It stands for that server's clock, not the services' "now", so it
/// is the system clock, always.
fn now_ms() -> i64 {
    pricing_record::Clock::system().now_ms()
}

fn changes(mutations: Vec<Mutation>) -> Vec<Change> {
    mutations
        .into_iter()
        .map(|m| {
            let column = m.column.unwrap_or_default();
            if m.is_delete.unwrap_or(false) {
                Change::Delete { column }
            } else {
                Change::Put { column, value: m.value.unwrap_or_default() }
            }
        })
        .collect()
}

fn batches(row_batches: Vec<BatchMutation>) -> Vec<(Vec<u8>, Vec<Change>)> {
    row_batches.into_iter().map(|b| (b.row.unwrap_or_default(), changes(b.mutations.unwrap_or_default()))).collect()
}

impl Handler {
    fn unsupported<T>(&self, method: &'static str) -> thrift::Result<T> {
        self.state.enter(method);
        Err(io_error(format!("{method} is not supported by the pricing HBase test server")))
    }

    fn rows(
        &self,
        method: &'static str,
        table: &[u8],
        rows: Vec<Text>,
        columns: &[Text],
    ) -> thrift::Result<Vec<TRowResult>> {
        self.state.enter(method);
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(cells) = self.state.tables.get_row(table, &row, columns).map_err(to_thrift)? {
                let columns = cells
                    .into_iter()
                    .map(|(name, cell)| (name, TCell::new(cell.value, cell.timestamp)))
                    .collect::<BTreeMap<_, _>>();
                out.push(TRowResult::new(row, columns, None));
            }
        }
        if self.state.reverse_rows.load(Ordering::Relaxed) {
            out.reverse();
        }
        Ok(out)
    }

    fn mutate(
        &self,
        method: &'static str,
        table: &[u8],
        batches: Vec<(Vec<u8>, Vec<Change>)>,
        ts: Option<i64>,
    ) -> thrift::Result<()> {
        self.state.enter(method);
        self.state.tables.mutate_rows(table, &batches, ts.unwrap_or_else(now_ms)).map_err(to_thrift)
    }

    /// Opens a scanner from `start` (empty: the first row), checking the
    /// table and the columns now as HBase does.
    fn open_scanner(
        &self,
        method: &'static str,
        table: Text,
        start: Text,
        range: ScanRange,
        sort_columns: bool,
    ) -> thrift::Result<ScannerID> {
        self.state.enter(method);
        self.state.tables.scan(&table, &range, Bound::Included(start.as_slice()), 0).map_err(to_thrift)?;
        let id = self.state.last_scanner.fetch_add(1, Ordering::Relaxed) + 1;
        let scanner = Scanner { table, range, next: Bound::Included(start), sort_columns };
        self.state.scanners.lock().expect("scanners lock").insert(id, scanner);
        Ok(id)
    }

    /// The next `rows` rows of a scanner; empty once it is exhausted.
    fn scanner_rows(&self, method: &'static str, id: ScannerID, rows: i32) -> thrift::Result<Vec<TRowResult>> {
        self.state.enter(method);
        let mut scanners = self.state.scanners.lock().expect("scanners lock");
        let scanner = scanners.get_mut(&id).ok_or_else(|| illegal_argument("scanner ID is invalid"))?;
        let from = match &scanner.next {
            Bound::Included(key) => Bound::Included(key.as_slice()),
            Bound::Excluded(key) => Bound::Excluded(key.as_slice()),
            Bound::Unbounded => Bound::Unbounded,
        };
        let limit = usize::try_from(rows).unwrap_or(0);
        let found = self.state.tables.scan(&scanner.table, &scanner.range, from, limit).map_err(to_thrift)?;
        if let Some((last, _)) = found.last() {
            scanner.next = Bound::Excluded(last.clone());
        }
        let sort_columns = scanner.sort_columns;
        Ok(found.into_iter().map(|row| row_result(row, sort_columns)).collect())
    }

    fn delete_row(&self, method: &'static str, table: &[u8], row: &[u8], ts: Option<i64>) -> thrift::Result<()> {
        self.state.enter(method);
        self.state.tables.delete_row(table, row, ts.unwrap_or_else(now_ms)).map_err(to_thrift)
    }
}

type Attrs = BTreeMap<Text, Text>;

impl HbaseSyncHandler for Handler {
    fn handle_enable_table(&self, table_name: Bytes) -> thrift::Result<()> {
        self.state.enter("enableTable");
        self.state.tables.set_enabled(&table_name, true).map_err(to_thrift)
    }
    fn handle_disable_table(&self, table_name: Bytes) -> thrift::Result<()> {
        self.state.enter("disableTable");
        self.state.tables.set_enabled(&table_name, false).map_err(to_thrift)
    }
    fn handle_is_table_enabled(&self, table_name: Bytes) -> thrift::Result<bool> {
        self.state.enter("isTableEnabled");
        self.state.tables.is_enabled(&table_name).map_err(to_thrift)
    }
    fn handle_compact(&self, _: Bytes) -> thrift::Result<()> {
        self.unsupported("compact")
    }
    fn handle_major_compact(&self, _: Bytes) -> thrift::Result<()> {
        self.unsupported("majorCompact")
    }
    fn handle_get_table_names(&self) -> thrift::Result<Vec<Text>> {
        self.state.enter("getTableNames");
        Ok(self.state.tables.table_names())
    }
    fn handle_get_table_names_with_is_table_enabled(&self) -> thrift::Result<BTreeMap<Text, bool>> {
        self.state.enter("getTableNamesWithIsTableEnabled");
        let tables = &self.state.tables;
        Ok(tables.table_names().into_iter().filter_map(|t| tables.is_enabled(&t).ok().map(|e| (t, e))).collect())
    }
    fn handle_get_column_descriptors(&self, table_name: Text) -> thrift::Result<BTreeMap<Text, ColumnDescriptor>> {
        self.state.enter("getColumnDescriptors");
        let families = self.state.tables.families(&table_name).map_err(to_thrift)?;
        Ok(families
            .into_iter()
            .map(|(name, versions)| {
                let versions = i32::try_from(versions).unwrap_or(i32::MAX);
                let d = ColumnDescriptor::new(name.clone(), versions, None, None, None, None, None, None, None);
                (name, d)
            })
            .collect())
    }
    fn handle_get_table_regions(&self, _: Text) -> thrift::Result<Vec<TRegionInfo>> {
        self.unsupported("getTableRegions")
    }
    fn handle_create_table(&self, table_name: Text, column_families: Vec<ColumnDescriptor>) -> thrift::Result<()> {
        self.state.enter("createTable");
        let families = column_families
            .into_iter()
            .map(|d| {
                let versions =
                    d.max_versions.filter(|v| *v > 0).map_or(super::tables::DEFAULT_MAX_VERSIONS, |v| v as usize);
                (d.name.unwrap_or_default(), versions)
            })
            .collect::<Vec<_>>();
        self.state.tables.create_table(&table_name, &families).map_err(to_thrift)
    }
    fn handle_delete_table(&self, table_name: Text) -> thrift::Result<()> {
        self.state.enter("deleteTable");
        self.state.tables.delete_table(&table_name).map_err(to_thrift)
    }
    fn handle_get(&self, table_name: Text, row: Text, column: Text, _: Attrs) -> thrift::Result<Vec<TCell>> {
        let found = self.rows("get", &table_name, vec![row], std::slice::from_ref(&column))?;
        Ok(found
            .into_iter()
            .flat_map(|r| r.columns.unwrap_or_default().into_iter())
            .filter(|(name, _)| *name == column)
            .map(|(_, cell)| cell)
            .collect())
    }
    fn handle_get_ver(&self, _: Text, _: Text, _: Text, _: i32, _: Attrs) -> thrift::Result<Vec<TCell>> {
        self.unsupported("getVer")
    }
    fn handle_get_ver_ts(&self, _: Text, _: Text, _: Text, _: i64, _: i32, _: Attrs) -> thrift::Result<Vec<TCell>> {
        self.unsupported("getVerTs")
    }
    fn handle_get_row(&self, table_name: Text, row: Text, _: Attrs) -> thrift::Result<Vec<TRowResult>> {
        self.rows("getRow", &table_name, vec![row], &[])
    }
    fn handle_get_row_with_columns(
        &self,
        table_name: Text,
        row: Text,
        columns: Vec<Text>,
        _: Attrs,
    ) -> thrift::Result<Vec<TRowResult>> {
        self.rows("getRowWithColumns", &table_name, vec![row], &columns)
    }
    fn handle_get_row_ts(&self, _: Text, _: Text, _: i64, _: Attrs) -> thrift::Result<Vec<TRowResult>> {
        self.unsupported("getRowTs")
    }
    fn handle_get_row_with_columns_ts(
        &self,
        _: Text,
        _: Text,
        _: Vec<Text>,
        _: i64,
        _: Attrs,
    ) -> thrift::Result<Vec<TRowResult>> {
        self.unsupported("getRowWithColumnsTs")
    }
    fn handle_get_rows(&self, table_name: Text, rows: Vec<Text>, _: Attrs) -> thrift::Result<Vec<TRowResult>> {
        self.rows("getRows", &table_name, rows, &[])
    }
    fn handle_get_rows_with_columns(
        &self,
        table_name: Text,
        rows: Vec<Text>,
        columns: Vec<Text>,
        _: Attrs,
    ) -> thrift::Result<Vec<TRowResult>> {
        self.rows("getRowsWithColumns", &table_name, rows, &columns)
    }
    fn handle_get_rows_ts(&self, _: Text, _: Vec<Text>, _: i64, _: Attrs) -> thrift::Result<Vec<TRowResult>> {
        self.unsupported("getRowsTs")
    }
    fn handle_get_rows_with_columns_ts(
        &self,
        _: Text,
        _: Vec<Text>,
        _: Vec<Text>,
        _: i64,
        _: Attrs,
    ) -> thrift::Result<Vec<TRowResult>> {
        self.unsupported("getRowsWithColumnsTs")
    }
    fn handle_mutate_row(&self, table_name: Text, row: Text, mutations: Vec<Mutation>, _: Attrs) -> thrift::Result<()> {
        self.mutate("mutateRow", &table_name, vec![(row, changes(mutations))], None)
    }
    fn handle_mutate_row_ts(
        &self,
        table_name: Text,
        row: Text,
        mutations: Vec<Mutation>,
        timestamp: i64,
        _: Attrs,
    ) -> thrift::Result<()> {
        self.mutate("mutateRowTs", &table_name, vec![(row, changes(mutations))], Some(timestamp))
    }
    fn handle_mutate_rows(&self, table_name: Text, row_batches: Vec<BatchMutation>, _: Attrs) -> thrift::Result<()> {
        self.mutate("mutateRows", &table_name, batches(row_batches), None)
    }
    fn handle_mutate_rows_ts(
        &self,
        table_name: Text,
        row_batches: Vec<BatchMutation>,
        timestamp: i64,
        _: Attrs,
    ) -> thrift::Result<()> {
        self.mutate("mutateRowsTs", &table_name, batches(row_batches), Some(timestamp))
    }
    fn handle_atomic_increment(&self, _: Text, _: Text, _: Text, _: i64) -> thrift::Result<i64> {
        self.unsupported("atomicIncrement")
    }
    fn handle_delete_all(&self, table_name: Text, row: Text, column: Text, _: Attrs) -> thrift::Result<()> {
        self.mutate("deleteAll", &table_name, vec![(row, vec![Change::Delete { column }])], None)
    }
    fn handle_delete_all_ts(
        &self,
        table_name: Text,
        row: Text,
        column: Text,
        timestamp: i64,
        _: Attrs,
    ) -> thrift::Result<()> {
        self.mutate("deleteAllTs", &table_name, vec![(row, vec![Change::Delete { column }])], Some(timestamp))
    }
    fn handle_delete_all_row(&self, table_name: Text, row: Text, _: Attrs) -> thrift::Result<()> {
        self.delete_row("deleteAllRow", &table_name, &row, None)
    }
    fn handle_increment(&self, _: TIncrement) -> thrift::Result<()> {
        self.unsupported("increment")
    }
    fn handle_increment_rows(&self, _: Vec<TIncrement>) -> thrift::Result<()> {
        self.unsupported("incrementRows")
    }
    fn handle_delete_all_row_ts(&self, table_name: Text, row: Text, timestamp: i64, _: Attrs) -> thrift::Result<()> {
        self.delete_row("deleteAllRowTs", &table_name, &row, Some(timestamp))
    }
    fn handle_scanner_open_with_scan(&self, table_name: Text, scan: TScan, _: Attrs) -> thrift::Result<ScannerID> {
        if scan.filter_string.as_ref().is_some_and(|f| !f.is_empty()) {
            self.state.enter("scannerOpenWithScan");
            return Err(io_error("filterString is not supported by the pricing HBase test server"));
        }
        if scan.reversed == Some(true) {
            self.state.enter("scannerOpenWithScan");
            return Err(io_error("reversed scans are not supported by the pricing HBase test server"));
        }
        let range = ScanRange {
            stop: scan.stop_row.filter(|s| !s.is_empty()),
            prefix: Vec::new(),
            columns: scan.columns.unwrap_or_default(),
            before: scan.timestamp,
        };
        let start = scan.start_row.unwrap_or_default();
        self.open_scanner("scannerOpenWithScan", table_name, start, range, scan.sort_columns.unwrap_or(false))
    }
    fn handle_scanner_open(
        &self,
        table_name: Text,
        start_row: Text,
        columns: Vec<Text>,
        _: Attrs,
    ) -> thrift::Result<ScannerID> {
        let range = ScanRange { columns, ..ScanRange::default() };
        self.open_scanner("scannerOpen", table_name, start_row, range, false)
    }
    fn handle_scanner_open_with_stop(
        &self,
        table_name: Text,
        start_row: Text,
        stop_row: Text,
        columns: Vec<Text>,
        _: Attrs,
    ) -> thrift::Result<ScannerID> {
        let range = ScanRange { stop: Some(stop_row).filter(|s| !s.is_empty()), columns, ..ScanRange::default() };
        self.open_scanner("scannerOpenWithStop", table_name, start_row, range, false)
    }
    fn handle_scanner_open_with_prefix(
        &self,
        table_name: Text,
        start_and_prefix: Text,
        columns: Vec<Text>,
        _: Attrs,
    ) -> thrift::Result<ScannerID> {
        let range = ScanRange { prefix: start_and_prefix.clone(), columns, ..ScanRange::default() };
        self.open_scanner("scannerOpenWithPrefix", table_name, start_and_prefix, range, false)
    }
    fn handle_scanner_open_ts(
        &self,
        table_name: Text,
        start_row: Text,
        columns: Vec<Text>,
        timestamp: i64,
        _: Attrs,
    ) -> thrift::Result<ScannerID> {
        let range = ScanRange { columns, before: Some(timestamp), ..ScanRange::default() };
        self.open_scanner("scannerOpenTs", table_name, start_row, range, false)
    }
    fn handle_scanner_open_with_stop_ts(
        &self,
        table_name: Text,
        start_row: Text,
        stop_row: Text,
        columns: Vec<Text>,
        timestamp: i64,
        _: Attrs,
    ) -> thrift::Result<ScannerID> {
        let range = ScanRange {
            stop: Some(stop_row).filter(|s| !s.is_empty()),
            columns,
            before: Some(timestamp),
            ..ScanRange::default()
        };
        self.open_scanner("scannerOpenWithStopTs", table_name, start_row, range, false)
    }
    fn handle_scanner_get(&self, id: ScannerID) -> thrift::Result<Vec<TRowResult>> {
        self.scanner_rows("scannerGet", id, 1)
    }
    fn handle_scanner_get_list(&self, id: ScannerID, nb_rows: i32) -> thrift::Result<Vec<TRowResult>> {
        self.scanner_rows("scannerGetList", id, nb_rows)
    }
    fn handle_scanner_close(&self, id: ScannerID) -> thrift::Result<()> {
        self.state.enter("scannerClose");
        match self.state.scanners.lock().expect("scanners lock").remove(&id) {
            Some(_) => Ok(()),
            None => Err(illegal_argument("scanner ID is invalid")),
        }
    }
    fn handle_get_region_info(&self, _: Text) -> thrift::Result<TRegionInfo> {
        self.unsupported("getRegionInfo")
    }
    fn handle_append(&self, _: TAppend) -> thrift::Result<Vec<TCell>> {
        self.unsupported("append")
    }
    fn handle_check_and_put(&self, _: Text, _: Text, _: Text, _: Text, _: Mutation, _: Attrs) -> thrift::Result<bool> {
        self.unsupported("checkAndPut")
    }
    fn handle_get_thrift_server_type(&self) -> thrift::Result<TThriftServerType> {
        self.state.enter("getThriftServerType");
        Ok(TThriftServerType::ONE)
    }
    fn handle_get_cluster_id(&self) -> thrift::Result<String> {
        self.state.enter("getClusterId");
        Ok("pricing-hbase-test-server".to_owned())
    }
    fn handle_grant(&self, _: TAccessControlEntity) -> thrift::Result<bool> {
        self.unsupported("grant")
    }
    fn handle_revoke(&self, _: TAccessControlEntity) -> thrift::Result<bool> {
        self.unsupported("revoke")
    }
}
