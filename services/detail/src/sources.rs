//! Where the detail path reads records and promotions, by how fresh the
//! answer must be (seed 004, 2.2 and 2.3).
//!
//! - Detail and checkout: the Redis pair (the local cluster first, the other
//!   on failure, as its live `DualSettings` say), then MySQL for what Redis
//!   does not hold; what MySQL answered is written back to Redis in the
//!   background with the version guard. Promotions for previews come through
//!   a short-lived cache, which holds every promotion live at some instant
//!   of its lifetime; the engine checks each window at the call's own "now",
//!   so a promotion that starts while an entry is cached applies at its start.
//! - Order placement: MySQL only, nothing cached anywhere on the path.
//! - Switches (live, from the control file's `[detail]`): `redis_bypass`
//!   sends every read to MySQL (seed 004: take Redis out and send the
//!   traffic to the database); `fallback_to_list` answers GetGoodsPrice from
//!   the list server.
//!
//! MySQL sits behind its own circuit breaker and the pool's acquire and
//! statement timeouts, so a database in trouble turns into UNAVAILABLE
//! quickly instead of a pile-up of waiting calls.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use pricing_engine::Promotion;
use pricing_proto::ApiError;
use pricing_proto::v1::Tier;
use pricing_record::{GoodsId, UnixMillis};
use pricing_store::breaker::Outcome;
use pricing_store::{Breaker, BreakerSettings, RecordStore, SharedRecord};
use pricing_store_pairs::Pair;
use pricing_store_sql::SqlStore;
use pricing_store_sql::promotion::PromotionRow;

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// The detail page.
    Detail,
    /// The checkout page: cached promotions allowed.
    Preview,
    /// Order placement: nothing cached anywhere on the path.
    Order,
}

/// A record and the tier that answered.
#[derive(Debug, Clone)]
pub struct Found {
    pub record: SharedRecord,
    pub tier: Tier,
}

pub struct Sources {
    sql: Arc<SqlStore>,
    sql_breaker: Breaker,
    redis: Option<Pair>,
    /// Promotions by the sorted store ids of a cart, for previews only.
    promotions: moka::future::Cache<Vec<u64>, Arc<CachedPromotions>>,
    /// How long a cached entry lives, and the span it is loaded for.
    promotions_ttl: Duration,
}

/// The promotions live at some instant of `[from, until]`.
struct CachedPromotions {
    from: UnixMillis,
    until: UnixMillis,
    rows: Vec<PromotionRow>,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> ApiError {
    pricing_store::throttled!(|suppressed| tracing::warn!(error = %e, what, suppressed, "detail source failed"));
    ApiError::Unavailable(format!("{what} is unavailable: {e}"))
}

impl Sources {
    pub fn new(
        sql: Arc<SqlStore>,
        sql_breaker: BreakerSettings,
        redis: Option<Pair>,
        promotions_ttl: Duration,
    ) -> Sources {
        Sources {
            sql,
            sql_breaker: Breaker::new("mysql", sql_breaker),
            redis,
            promotions: moka::future::Cache::builder().max_capacity(10_000).time_to_live(promotions_ttl).build(),
            promotions_ttl,
        }
    }

    pub fn redis(&self) -> Option<&Pair> {
        self.redis.as_ref()
    }

    /// Runs one MySQL call behind the breaker; errors and an open breaker
    /// are UNAVAILABLE.
    async fn guarded<T, E: std::fmt::Display>(
        &self,
        call: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, ApiError> {
        let permit = self.sql_breaker.try_acquire().map_err(|open| {
            metrics::counter!("pricing_detail_mysql_refused_total").increment(1);
            ApiError::Unavailable(format!("mysql: {open}"))
        })?;
        match call.await {
            Ok(v) => {
                permit.finish(Outcome::Success);
                Ok(v)
            }
            Err(e) => {
                permit.finish(Outcome::Failure);
                Err(unavailable("mysql", e))
            }
        }
    }

    /// Records for `ids` as fresh as `freshness` requires; `bypass` (the
    /// `redis_bypass` switch for this call) reads MySQL only.
    pub async fn records(&self, ids: &[GoodsId], freshness: Freshness, bypass: bool) -> Result<Vec<Found>, ApiError> {
        let redis = match (&self.redis, freshness, bypass) {
            (Some(redis), Freshness::Detail | Freshness::Preview, false) => Some(redis),
            _ => None,
        };
        let Some(redis) = redis else {
            let label = if bypass { "mysql_bypass" } else { "mysql" };
            metrics::counter!("pricing_detail_reads_total", "source" => label).increment(1);
            return self.read_mysql(ids).await;
        };
        let mut found: Vec<Found> = match redis.store.fetch(ids).await {
            Ok(records) => records.into_iter().map(|record| Found { record, tier: Tier::Redis }).collect(),
            Err(error) => {
                metrics::counter!("pricing_detail_fallback_total", "from" => "redis", "to" => "mysql").increment(1);
                pricing_store::throttled!(
                    |suppressed| tracing::warn!(%error, ids = ids.len(), suppressed, "redis pair failed: reading mysql")
                );
                Vec::new()
            }
        };
        metrics::counter!("pricing_detail_reads_total", "source" => "redis").increment(1);
        let held: HashSet<GoodsId> = found.iter().map(|f| f.record.goods_id).collect();
        let missing: Vec<GoodsId> = ids.iter().copied().filter(|id| !held.contains(id)).collect();
        if missing.is_empty() {
            return Ok(found);
        }
        let from_mysql = self.read_mysql(&missing).await?;
        if !from_mysql.is_empty() {
            let writer = Arc::clone(&redis.writer);
            let records: Vec<SharedRecord> = from_mysql.iter().map(|f| Arc::clone(&f.record)).collect();
            tokio::spawn(async move {
                let report = writer.put_each(&records).await;
                metrics::counter!("pricing_detail_write_back_total").increment(records.len() as u64);
                for (cluster, error) in report.failed() {
                    pricing_store::throttled!(
                        |suppressed| tracing::warn!(?cluster, %error, suppressed, "redis write-back failed")
                    );
                }
            });
        }
        found.extend(from_mysql);
        Ok(found)
    }

    async fn read_mysql(&self, ids: &[GoodsId]) -> Result<Vec<Found>, ApiError> {
        let records = self.guarded(self.sql.fetch(ids)).await?;
        Ok(records.into_iter().map(|record| Found { record, tier: Tier::Database }).collect())
    }

    /// Live cart promotions for these stores and the platform (engine form).
    /// Orders read them at `now`; previews through the cache, whose entries
    /// hold every promotion live within their lifetime (the engine drops
    /// those not live at `now`, so an entry loaded before a promotion's start
    /// does not hide it after).
    pub async fn promotions(
        &self,
        store_ids: &[u64],
        now: UnixMillis,
        freshness: Freshness,
    ) -> Result<Vec<Promotion>, ApiError> {
        if freshness == Freshness::Order {
            let rows = self.guarded(self.sql.load_promotions(store_ids, now)).await?;
            return Ok(rows.iter().map(PromotionRow::to_engine).collect());
        }
        let span = i64::try_from(self.promotions_ttl.as_millis()).unwrap_or(i64::MAX);
        let load = || async move {
            let until = now.saturating_add(span);
            let rows = self.guarded(self.sql.load_promotions_within(store_ids, now, until)).await?;
            Ok::<_, ApiError>(Arc::new(CachedPromotions { from: now, until, rows }))
        };
        let key = store_ids.to_vec();
        let mut cached = self.promotions.try_get_with(key.clone(), load()).await.map_err(|e| (*e).clone())?;
        if !(cached.from..=cached.until).contains(&now) {
            // Loaded for another span (the clock moved past it before the
            // entry expired): load for this instant.
            self.promotions.invalidate(&key).await;
            cached = self.promotions.try_get_with(key, load()).await.map_err(|e| (*e).clone())?;
        }
        Ok(cached.rows.iter().map(PromotionRow::to_engine).collect())
    }

    /// The coupons with these ids (engine form), and the ids that do not exist.
    pub async fn coupons(&self, ids: &[u64]) -> Result<(Vec<Promotion>, Vec<u64>), ApiError> {
        if ids.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let rows = self.guarded(self.sql.load_coupons(ids)).await?;
        let unknown = ids.iter().copied().filter(|id| !rows.iter().any(|r| r.id == *id)).collect();
        // Keep the caller's order: the engine reports duplicates and ranks by it.
        let coupons =
            ids.iter().filter_map(|id| rows.iter().find(|r| r.id == *id)).map(PromotionRow::to_engine).collect();
        Ok((coupons, unknown))
    }
}
