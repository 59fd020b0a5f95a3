//! [`SqlStore`]: goods records built from the catalogue tables, behind the
//! same [`RecordStore`] trait as every cache tier.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pricing_record::{Activity, Clock, GoodsId, GoodsRecord};
use pricing_store::{RecordStore, SharedRecord, StoreError};
use sqlx::AnyPool;
use sqlx::any::AnyRow;

use crate::catalog::Catalog;
use crate::convert::{
    activity_kind, activity_status, decode_ids, from_x100, get, get_bool, get_i32, get_u32, get_u64, goods_status,
};
use crate::db::{self, Backend, MAX_IN, SqlOptions};
use crate::error::{RowError, SqlError, count_corrupt_row};

/// The SQL source of truth, read as goods records.
///
/// Cloning is cheap: clones share one pool.
#[derive(Clone)]
pub struct SqlStore {
    name: Arc<str>,
    backend: Backend,
    pool: AnyPool,
    /// Client-side bound on one read, whatever the backend does.
    statement_timeout: Duration,
    /// "Now" of the catalogue writer's stamps (the system clock by default).
    clock: Clock,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore").field("name", &self.name).field("backend", &self.backend).finish_non_exhaustive()
    }
}

/// One goods row joined with its live activities, one output row per
/// activity (or one row with NULL activity columns). A single statement, so
/// the goods version and its activities come from one consistent snapshot:
/// a record can never carry older content than its version says.
const RECORD_SELECT: &str = "SELECT g.id AS g_id, g.store_id AS g_store_id, g.base_price_fen AS g_base_price_fen, \
     g.currency AS g_currency, g.status AS g_status, g.version AS g_version, g.deleted_at AS g_deleted_at, \
     a.id AS a_id, a.kind AS a_kind, a.value_x100 AS a_value_x100, a.start_ms AS a_start_ms, \
     a.end_ms AS a_end_ms, a.channels AS a_channels, a.city_ids AS a_city_ids, a.store_ids AS a_store_ids, \
     a.new_user_only AS a_new_user_only, a.min_member_level AS a_min_member_level, \
     a.stock_left AS a_stock_left, a.per_user_limit AS a_per_user_limit, a.priority AS a_priority, \
     a.status AS a_status \
     FROM goods g LEFT JOIN activity a \
     ON a.goods_id = g.id AND a.deleted_at IS NULL AND g.deleted_at IS NULL \
     WHERE g.id IN (";
const RECORD_ORDER: &str = ") ORDER BY g.id, a.id";

impl SqlStore {
    /// Connects to `url` (`mysql://`, `mariadb://` or `sqlite:`) with default
    /// options and applies the migrations of its backend.
    pub async fn connect(url: &str) -> Result<SqlStore, SqlError> {
        SqlStore::connect_with(url, SqlOptions::default()).await
    }

    pub async fn connect_with(url: &str, options: SqlOptions) -> Result<SqlStore, SqlError> {
        let (backend, pool) = db::open(url, &options).await?;
        Ok(SqlStore {
            name: options.name.into(),
            backend,
            pool,
            statement_timeout: options.statement_timeout,
            clock: Clock::system(),
        })
    }

    /// Opens (creating if missing) the embedded SQLite file at `path`, in WAL
    /// mode, with default options.
    pub async fn open_embedded(path: impl AsRef<Path>) -> Result<SqlStore, SqlError> {
        SqlStore::open_embedded_with(path, SqlOptions::default()).await
    }

    pub async fn open_embedded_with(path: impl AsRef<Path>, options: SqlOptions) -> Result<SqlStore, SqlError> {
        SqlStore::connect_with(&db::sqlite_url(path.as_ref()), options).await
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for tools and tests that need plain SQL.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The same store whose catalogue writer reads "now" from `clock`.
    pub fn with_clock(mut self, clock: Clock) -> SqlStore {
        self.clock = clock;
        self
    }

    /// The writer for this database (shares the pool and the clock).
    pub fn catalog(&self) -> Catalog {
        Catalog::new(self.pool.clone(), self.clock.clone())
    }

    pub(crate) fn store_name(&self) -> &str {
        &self.name
    }

    /// Runs a read under the client-side statement deadline.
    pub(crate) async fn read<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, SqlError>>,
    ) -> Result<T, SqlError> {
        db::deadline(self.statement_timeout, work).await
    }

    /// Closes the pool; later calls fail. Every server calls it on shutdown:
    /// on SQLite the write-ahead log is first checkpointed into the database
    /// file and truncated (closing the last connection would checkpoint too,
    /// but only if nothing else holds the file), so that the file alone,
    /// copied or backed up, holds every committed row.
    pub async fn close(&self) {
        if self.backend == Backend::Sqlite
            && let Err(error) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").fetch_all(&self.pool).await
        {
            tracing::warn!(%error, "sqlite checkpoint before close failed");
        }
        self.pool.close().await;
    }

    /// Builds the records of `ids`: one query per [`MAX_IN`] distinct ids.
    /// Absent ids are absent; rows that cannot become a valid record are a
    /// miss, counted in `pricing_store_corrupt_total{store}`.
    pub async fn load(&self, ids: &[GoodsId]) -> Result<Vec<GoodsRecord>, SqlError> {
        let mut seen = HashSet::with_capacity(ids.len());
        // Ids above i64::MAX cannot be stored, so they are simply absent.
        let wanted: Vec<i64> =
            ids.iter().filter(|id| seen.insert(**id)).filter_map(|id| i64::try_from(*id).ok()).collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        self.read(async {
            let mut out = Vec::with_capacity(wanted.len());
            for chunk in wanted.chunks(MAX_IN) {
                let values = db::padded(chunk);
                let sql = format!("{RECORD_SELECT}{}{RECORD_ORDER}", db::placeholders(values.len()));
                let mut query = sqlx::query(&sql);
                for v in &values {
                    query = query.bind(*v);
                }
                let rows = query.fetch_all(&self.pool).await?;
                assemble(&self.name, &rows, &mut out);
            }
            Ok(out)
        })
        .await
    }
}

#[async_trait]
impl RecordStore for SqlStore {
    fn name(&self) -> &str {
        &self.name
    }

    async fn fetch(&self, ids: &[GoodsId]) -> Result<Vec<SharedRecord>, StoreError> {
        match self.load(ids).await {
            Ok(records) => Ok(records.into_iter().map(Arc::new).collect()),
            Err(error) => {
                pricing_store::throttled!(
                    |suppressed| tracing::warn!(store = %self.name, %error, ids = ids.len(), suppressed, "sql fetch failed")
                );
                Err(error.into_store_error(&self.name))
            }
        }
    }
}

/// Groups joined rows (ordered by goods id, then activity id) into records.
fn assemble(store: &str, rows: &[AnyRow], out: &mut Vec<GoodsRecord>) {
    let mut current: Option<(i64, Result<GoodsRecord, RowError>)> = None;
    for row in rows {
        let goods_id = match get::<i64>(row, "g_id") {
            Ok(id) => id,
            Err(error) => {
                count_corrupt_row(store, "goods", 0, &error);
                continue;
            }
        };
        if current.as_ref().map(|(id, _)| *id) != Some(goods_id) {
            finish(store, current.take(), out);
            current = Some((goods_id, goods_from_row(row)));
        }
        if let Some((_, built)) = current.as_mut()
            && let Ok(record) = built
        {
            match activity_from_row(row, record.goods_id) {
                Ok(Some(activity)) => record.activities.push(activity),
                Ok(None) => {}
                Err(error) => *built = Err(error),
            }
        }
    }
    finish(store, current.take(), out);
}

fn finish(store: &str, built: Option<(i64, Result<GoodsRecord, RowError>)>, out: &mut Vec<GoodsRecord>) {
    let Some((goods_id, built)) = built else { return };
    match built.and_then(|record| record.validate().map(|()| record).map_err(RowError::from)) {
        Ok(record) => out.push(record),
        Err(error) => count_corrupt_row(store, "goods", goods_id, &error),
    }
}

fn goods_from_row(row: &AnyRow) -> Result<GoodsRecord, RowError> {
    let goods_id = get_u64(row, "g_id")?;
    let version = get_u64(row, "g_version")?;
    if get::<Option<i64>>(row, "g_deleted_at")?.is_some() {
        return Ok(GoodsRecord::tombstone(goods_id, version));
    }
    Ok(GoodsRecord {
        goods_id,
        version,
        store_id: get_u64(row, "g_store_id")?,
        base_price: from_x100("base_price_fen", get(row, "g_base_price_fen")?)?,
        currency: get(row, "g_currency")?,
        status: goods_status("goods.status", &get::<String>(row, "g_status")?)?,
        activities: Vec::new(),
    })
}

/// The activity of a joined row, if the row has one. Conversion faults make
/// the goods a miss; an activity that converts but breaks a business rule
/// (empty window, discount of 100%) is kept, exactly as the codec keeps it,
/// and left for the engine to drop with a trace reason.
fn activity_from_row(row: &AnyRow, goods_id: GoodsId) -> Result<Option<Activity>, RowError> {
    let Some(id) = get::<Option<i64>>(row, "a_id")? else { return Ok(None) };
    let id = crate::convert::from_db("activity.id", id)?;
    let channels = get::<i64>(row, "a_channels")?;
    let channels = u8::try_from(channels)
        .map_err(|_| RowError::OutOfRange { column: "activity.channels", value: channels })
        .and_then(|bits| pricing_record::Channels::from_bits(bits).map_err(RowError::from))?;
    let stock_left = match get::<Option<i64>>(row, "a_stock_left")? {
        Some(v) => Some(crate::convert::from_db("activity.stock_left", v)?),
        None => None,
    };
    Ok(Some(Activity {
        id,
        goods_id,
        kind: activity_kind("activity.kind", &get::<String>(row, "a_kind")?)?,
        value: from_x100("activity.value_x100", get(row, "a_value_x100")?)?,
        start_ms: get(row, "a_start_ms")?,
        end_ms: get(row, "a_end_ms")?,
        channels,
        city_ids: decode_ids("activity.city_ids", &get::<String>(row, "a_city_ids")?)?,
        store_ids: decode_ids("activity.store_ids", &get::<String>(row, "a_store_ids")?)?,
        new_user_only: get_bool(row, "a_new_user_only")?,
        min_member_level: get_u32(row, "a_min_member_level")?,
        stock_left,
        per_user_limit: get_u32(row, "a_per_user_limit")?,
        priority: get_i32(row, "a_priority")?,
        status: activity_status("activity.status", &get::<String>(row, "a_status")?)?,
        deleted: false,
    }))
}
