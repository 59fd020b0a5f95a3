//! The test server's data: tables -> rows -> columns -> timestamped cells,
//! with HBase's rules for timestamps and delete markers.
//!
//! Rules kept from HBase (the ones a client can observe):
//! - a read returns, per column, the cell with the highest timestamp; a put
//!   with an older timestamp is kept as an older version and never hides a
//!   newer cell; a put with the same timestamp replaces that cell's value;
//! - each family keeps at most `max_versions` cells per column (the oldest go);
//! - a delete (of a row or a column) is a marker at a timestamp: it hides
//!   every cell at or below it, including cells put later with such a
//!   timestamp (HBase drops them at the next major compaction; here they are
//!   dropped at once, which reads the same);
//! - rows without a visible cell do not exist for reads.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::RwLock;

/// Why a table operation failed; the handler turns it into the exception
/// HBase's Thrift server throws for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error("org.apache.hadoop.hbase.TableNotFoundException: {0}")]
    NoSuchTable(String),
    #[error("org.apache.hadoop.hbase.TableNotEnabledException: {0}")]
    Disabled(String),
    #[error("org.apache.hadoop.hbase.TableNotDisabledException: {0}")]
    NotDisabled(String),
    #[error(
        "org.apache.hadoop.hbase.regionserver.NoSuchColumnFamilyException: column family {family} does not exist in table {table}"
    )]
    NoSuchFamily { table: String, family: String },
    #[error("table {0} already exists")]
    AlreadyExists(String),
    #[error("{0}")]
    IllegalArgument(String),
}

/// One change to a row, as the Thrift `Mutation` carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Put {
        column: Vec<u8>,
        value: Vec<u8>,
    },
    /// Deletes all versions of a column (or of every column of a family when
    /// `column` names only a family) at or below the timestamp.
    Delete {
        column: Vec<u8>,
    },
}

/// The newest visible cell of one column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    pub timestamp: i64,
    pub value: Vec<u8>,
}

/// What a scanner selects: rows below `stop` with keys starting with
/// `prefix`, the `columns` (all when empty), cells older than `before`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanRange {
    pub stop: Option<Vec<u8>>,
    pub prefix: Vec<u8>,
    pub columns: Vec<Vec<u8>>,
    pub before: Option<i64>,
}

/// One row of a scan: its key and the newest visible cell of each column.
pub type ScannedRow = (Vec<u8>, BTreeMap<Vec<u8>, Cell>);

/// All tables of one server, behind one lock: a test server favours simple
/// and obviously atomic (a `mutateRows` batch is applied under one write
/// lock) over concurrency.
#[derive(Debug, Default)]
pub struct Tables {
    inner: RwLock<BTreeMap<Vec<u8>, Table>>,
}

#[derive(Debug)]
struct Table {
    enabled: bool,
    /// Family name (without the colon) -> versions kept per column.
    families: BTreeMap<Vec<u8>, usize>,
    rows: BTreeMap<Vec<u8>, Row>,
}

#[derive(Debug, Default)]
struct Row {
    /// Row delete marker: cells at or below it are gone.
    deleted_upto: Option<i64>,
    columns: BTreeMap<Vec<u8>, Column>,
}

#[derive(Debug, Default)]
struct Column {
    deleted_upto: Option<i64>,
    /// Timestamp -> value; a BTreeMap so the newest is the last entry.
    cells: BTreeMap<i64, Vec<u8>>,
}

/// HBase's default for a family created without `maxVersions`.
pub const DEFAULT_MAX_VERSIONS: usize = 3;

/// Splits "family:qualifier" into the family and the full column name
/// ("family" alone becomes "family:", an empty qualifier, as in HBase).
fn split_column(column: &[u8]) -> (Vec<u8>, Vec<u8>) {
    match column.iter().position(|b| *b == b':') {
        Some(i) => (column[..i].to_vec(), column.to_vec()),
        None => {
            let mut full = column.to_vec();
            full.push(b':');
            (column.to_vec(), full)
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl Table {
    fn check_family(&self, table: &[u8], column: &[u8]) -> Result<(), TableError> {
        let (family, _) = split_column(column);
        if self.families.contains_key(&family) {
            Ok(())
        } else {
            Err(TableError::NoSuchFamily { table: text(table), family: text(&family) })
        }
    }
}

impl Row {
    /// The newest cell of each selected column (every column when the filter
    /// is empty), among cells older than `before` when given.
    fn visible(&self, column_filter: &[Vec<u8>], before: Option<i64>) -> BTreeMap<Vec<u8>, Cell> {
        let wanted = |name: &[u8]| {
            column_filter.is_empty()
                || column_filter.iter().any(|c| {
                    if c.contains(&b':') && !c.ends_with(b":") {
                        c.as_slice() == name
                    } else {
                        // A family ("r" or "r:") selects all its columns.
                        let family = c.strip_suffix(b":").unwrap_or(c);
                        name.len() > family.len() && name.starts_with(family) && name[family.len()] == b':'
                    }
                })
        };
        self.columns
            .iter()
            .filter(|(name, _)| wanted(name))
            .filter_map(|(name, col)| {
                let newest = match before {
                    Some(before) => col.cells.range(..before).next_back(),
                    None => col.cells.last_key_value(),
                };
                newest.map(|(ts, v)| (name.clone(), Cell { timestamp: *ts, value: v.clone() }))
            })
            .collect()
    }
}

impl Tables {
    pub fn new() -> Tables {
        Tables::default()
    }

    /// Creates a table with the given families (`"r"` or `"r:"`) and their
    /// versions kept.
    pub fn create_table(&self, name: &[u8], families: &[(Vec<u8>, usize)]) -> Result<(), TableError> {
        if name.is_empty() {
            return Err(TableError::IllegalArgument("table name is empty".into()));
        }
        if families.is_empty() {
            return Err(TableError::IllegalArgument("a table needs at least one column family".into()));
        }
        let mut fams = BTreeMap::new();
        for (family, versions) in families {
            let family = family.strip_suffix(b":").unwrap_or(family);
            if family.is_empty() || family.contains(&b':') {
                return Err(TableError::IllegalArgument(format!("bad column family name {:?}", text(family))));
            }
            fams.insert(family.to_vec(), (*versions).max(1));
        }
        let mut tables = self.inner.write().expect("tables lock");
        if tables.contains_key(name) {
            return Err(TableError::AlreadyExists(text(name)));
        }
        tables.insert(name.to_vec(), Table { enabled: true, families: fams, rows: BTreeMap::new() });
        Ok(())
    }

    pub fn table_names(&self) -> Vec<Vec<u8>> {
        self.inner.read().expect("tables lock").keys().cloned().collect()
    }

    pub fn is_enabled(&self, name: &[u8]) -> Result<bool, TableError> {
        let tables = self.inner.read().expect("tables lock");
        tables.get(name).map(|t| t.enabled).ok_or_else(|| TableError::NoSuchTable(text(name)))
    }

    pub fn set_enabled(&self, name: &[u8], enabled: bool) -> Result<(), TableError> {
        let mut tables = self.inner.write().expect("tables lock");
        let table = tables.get_mut(name).ok_or_else(|| TableError::NoSuchTable(text(name)))?;
        table.enabled = enabled;
        Ok(())
    }

    /// Deletes a table; like HBase, only a disabled one.
    pub fn delete_table(&self, name: &[u8]) -> Result<(), TableError> {
        let mut tables = self.inner.write().expect("tables lock");
        match tables.get(name) {
            None => Err(TableError::NoSuchTable(text(name))),
            Some(t) if t.enabled => Err(TableError::NotDisabled(text(name))),
            Some(_) => {
                tables.remove(name);
                Ok(())
            }
        }
    }

    /// Family name (with the trailing colon, as HBase reports it) -> versions kept.
    pub fn families(&self, name: &[u8]) -> Result<Vec<(Vec<u8>, usize)>, TableError> {
        let tables = self.inner.read().expect("tables lock");
        let table = tables.get(name).ok_or_else(|| TableError::NoSuchTable(text(name)))?;
        Ok(table
            .families
            .iter()
            .map(|(f, v)| {
                let mut name = f.clone();
                name.push(b':');
                (name, *v)
            })
            .collect())
    }

    /// The newest visible cell of each selected column of `row` (all columns
    /// when `columns` is empty); `None` when the row has no visible cell.
    pub fn get_row(
        &self,
        table: &[u8],
        row: &[u8],
        columns: &[Vec<u8>],
    ) -> Result<Option<BTreeMap<Vec<u8>, Cell>>, TableError> {
        let tables = self.inner.read().expect("tables lock");
        let t = readable(&tables, table)?;
        for c in columns {
            t.check_family(table, c)?;
        }
        Ok(t.rows.get(row).map(|r| r.visible(columns, None)).filter(|cells| !cells.is_empty()))
    }

    /// Up to `limit` rows of a scan in row key order: from `from`, below
    /// `stop` (exclusive; `None`: to the end), with keys starting with
    /// `prefix`, each with the newest visible cell of each selected column
    /// (all when `columns` is empty) older than `before` when given. Rows
    /// without such a cell are skipped, as HBase skips them.
    pub fn scan(
        &self,
        table: &[u8],
        range: &ScanRange,
        from: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<ScannedRow>, TableError> {
        let tables = self.inner.read().expect("tables lock");
        let t = readable(&tables, table)?;
        for c in &range.columns {
            t.check_family(table, c)?;
        }
        let mut out = Vec::new();
        for (key, row) in t.rows.range::<[u8], _>((from, Bound::Unbounded)) {
            if out.len() >= limit || range.stop.as_deref().is_some_and(|stop| key.as_slice() >= stop) {
                break;
            }
            if !key.starts_with(&range.prefix) {
                if key.as_slice() > range.prefix.as_slice() {
                    break; // past every key with the prefix
                }
                continue;
            }
            let cells = row.visible(&range.columns, range.before);
            if !cells.is_empty() {
                out.push((key.clone(), cells));
            }
        }
        Ok(out)
    }

    /// Applies the changes of several rows at one timestamp, all or nothing:
    /// every column is checked before anything is applied.
    pub fn mutate_rows(
        &self,
        table: &[u8],
        batches: &[(Vec<u8>, Vec<Change>)],
        timestamp: i64,
    ) -> Result<(), TableError> {
        let mut tables = self.inner.write().expect("tables lock");
        let t = writable(&mut tables, table)?;
        for (row, changes) in batches {
            if row.is_empty() {
                return Err(TableError::IllegalArgument("row key is empty".into()));
            }
            for change in changes {
                let (Change::Put { column, .. } | Change::Delete { column }) = change;
                t.check_family(table, column)?;
            }
        }
        for (row, changes) in batches {
            for change in changes {
                apply(t, row, change, timestamp);
            }
        }
        Ok(())
    }

    /// Puts a marker deleting every cell of `row` at or below `upto`.
    pub fn delete_row(&self, table: &[u8], row: &[u8], upto: i64) -> Result<(), TableError> {
        let mut tables = self.inner.write().expect("tables lock");
        let t = writable(&mut tables, table)?;
        let r = t.rows.entry(row.to_vec()).or_default();
        r.deleted_upto = r.deleted_upto.max(Some(upto));
        for col in r.columns.values_mut() {
            col.cells.retain(|ts, _| *ts > upto);
        }
        Ok(())
    }
}

fn readable<'a>(tables: &'a BTreeMap<Vec<u8>, Table>, name: &[u8]) -> Result<&'a Table, TableError> {
    let t = tables.get(name).ok_or_else(|| TableError::NoSuchTable(text(name)))?;
    if !t.enabled {
        return Err(TableError::Disabled(text(name)));
    }
    Ok(t)
}

fn writable<'a>(tables: &'a mut BTreeMap<Vec<u8>, Table>, name: &[u8]) -> Result<&'a mut Table, TableError> {
    let t = tables.get_mut(name).ok_or_else(|| TableError::NoSuchTable(text(name)))?;
    if !t.enabled {
        return Err(TableError::Disabled(text(name)));
    }
    Ok(t)
}

fn apply(table: &mut Table, row: &[u8], change: &Change, timestamp: i64) {
    let r = table.rows.entry(row.to_vec()).or_default();
    match change {
        Change::Put { column, value } => {
            let (family, column) = split_column(column);
            let keep = table.families.get(&family).copied().unwrap_or(DEFAULT_MAX_VERSIONS);
            let row_mask = r.deleted_upto;
            let col = r.columns.entry(column).or_default();
            if row_mask.max(col.deleted_upto).is_some_and(|m| timestamp <= m) {
                return; // hidden by a delete marker, as in HBase
            }
            col.cells.insert(timestamp, value.clone());
            while col.cells.len() > keep {
                col.cells.pop_first();
            }
        }
        Change::Delete { column } => {
            let targets: Vec<Vec<u8>> = if column.contains(&b':') {
                vec![split_column(column).1]
            } else {
                let family = column.clone();
                r.columns
                    .keys()
                    .filter(|c| c.starts_with(&family) && c.get(family.len()) == Some(&b':'))
                    .cloned()
                    .collect()
            };
            for target in targets {
                let col = r.columns.entry(target).or_default();
                col.deleted_upto = col.deleted_upto.max(Some(timestamp));
                col.cells.retain(|ts, _| *ts > timestamp);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(column: &str, value: &str) -> Change {
        Change::Put { column: column.into(), value: value.into() }
    }

    fn tables() -> Tables {
        let t = Tables::new();
        t.create_table(b"t", &[(b"r:".to_vec(), 3)]).unwrap();
        t
    }

    fn value(t: &Tables, row: &str) -> Option<(i64, String)> {
        t.get_row(b"t", row.as_bytes(), &[b"r:v".to_vec()]).unwrap().and_then(|cells| {
            cells.get(b"r:v".as_slice()).map(|c| (c.timestamp, String::from_utf8(c.value.clone()).unwrap()))
        })
    }

    #[test]
    fn newest_timestamp_wins_whatever_the_write_order() {
        let t = tables();
        t.mutate_rows(b"t", &[(b"a".to_vec(), vec![put("r:v", "six")])], 6).unwrap();
        t.mutate_rows(b"t", &[(b"a".to_vec(), vec![put("r:v", "five")])], 5).unwrap();
        assert_eq!(value(&t, "a"), Some((6, "six".into())));
        t.mutate_rows(b"t", &[(b"a".to_vec(), vec![put("r:v", "seven")])], 7).unwrap();
        assert_eq!(value(&t, "a"), Some((7, "seven".into())));
        t.mutate_rows(b"t", &[(b"a".to_vec(), vec![put("r:v", "seven again")])], 7).unwrap();
        assert_eq!(value(&t, "a"), Some((7, "seven again".into())), "same timestamp replaces the value");
    }

    #[test]
    fn delete_marker_hides_cells_at_or_below_it_even_when_put_later() {
        let t = tables();
        t.mutate_rows(b"t", &[(b"a".to_vec(), vec![put("r:v", "five")])], 5).unwrap();
        t.delete_row(b"t", b"a", 5).unwrap();
        assert_eq!(value(&t, "a"), None);
        t.mutate_rows(b"t", &[(b"a".to_vec(), vec![put("r:v", "four")])], 4).unwrap();
        assert_eq!(value(&t, "a"), None, "a put below the marker stays hidden");
        t.mutate_rows(b"t", &[(b"a".to_vec(), vec![put("r:v", "six")])], 6).unwrap();
        assert_eq!(value(&t, "a"), Some((6, "six".into())));
        t.mutate_rows(b"t", &[(b"a".to_vec(), vec![Change::Delete { column: b"r:v".to_vec() }])], 6).unwrap();
        assert_eq!(value(&t, "a"), None);
    }

    #[test]
    fn a_batch_with_an_unknown_family_changes_nothing() {
        let t = tables();
        let err = t
            .mutate_rows(b"t", &[(b"a".to_vec(), vec![put("r:v", "x")]), (b"b".to_vec(), vec![put("nope:v", "y")])], 1)
            .unwrap_err();
        assert!(matches!(err, TableError::NoSuchFamily { .. }), "{err:?}");
        assert_eq!(value(&t, "a"), None);
    }

    #[test]
    fn versions_beyond_the_family_limit_are_dropped() {
        let t = tables();
        for ts in 1..=5 {
            t.mutate_rows(b"t", &[(b"a".to_vec(), vec![put("r:v", &ts.to_string())])], ts).unwrap();
        }
        let tables = t.inner.read().unwrap();
        let cells = &tables[b"t".as_slice()].rows[b"a".as_slice()].columns[b"r:v".as_slice()].cells;
        assert_eq!(cells.keys().copied().collect::<Vec<_>>(), vec![3, 4, 5]);
    }

    #[test]
    fn family_selects_its_columns_and_disabled_tables_refuse_reads() {
        let t = tables();
        t.mutate_rows(b"t", &[(b"a".to_vec(), vec![put("r:v", "1"), put("r:w", "2")])], 1).unwrap();
        let cells = t.get_row(b"t", b"a", &[b"r".to_vec()]).unwrap().unwrap();
        assert_eq!(cells.len(), 2);
        assert!(t.get_row(b"t", b"a", &[b"x:v".to_vec()]).is_err());
        t.set_enabled(b"t", false).unwrap();
        assert_eq!(t.get_row(b"t", b"a", &[]).unwrap_err(), TableError::Disabled("t".into()));
        t.delete_table(b"t").unwrap();
        assert!(t.table_names().is_empty());
    }
}
