//! Where the detail path reads records and promotions, by how fresh the
//! answer must be (seed 004, 2.2 and 2.3).
//!
//! - Detail and checkout: the store crate's tier chain ([`TieredReader`],
//!   the list server's read path): the Redis pair (the local cluster first,
//!   the other on failure, as its live `DualSettings` say), then MySQL for
//!   what Redis does not hold; what MySQL answered is written back to Redis
//!   in the background with the version guard. No memory cache unless
//!   `[cache]` configures one (then with the list server's rules: fresh
//!   hits, brief negative caching, stale-if-error within the grace).
//!   Promotions for previews come through a short-lived cache, which holds
//!   every promotion live at some instant of its lifetime; the engine checks
//!   each window at the call's own "now", so a promotion that starts while
//!   an entry is cached applies at its start.
//! - Order placement: MySQL only, nothing cached anywhere on the path.
//! - Switches (live, from the control file's `[detail]`): `redis_bypass`
//!   sends every read to MySQL (seed 004: take Redis out and send the
//!   traffic to the database); `fallback_to_list` answers GetGoodsPrice from
//!   the list server.
//!
//! Every MySQL call (records, promotions, coupons) goes through one
//! [`StoreGuard`]: the `mysql_breaker`, the store metrics
//! (`pricing_store_*{store="mysql"}`), and the caller's deadline; the pool's
//! acquire and statement timeouts bound each call too, so a database in
//! trouble turns into UNAVAILABLE quickly instead of a pile-up of waiting
//! calls. Every read takes the caller's [`Deadline`], which cuts each store
//! call's budget (docs/CONTROL.md).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use pricing_engine::Promotion;
use pricing_proto::ApiError;
use pricing_proto::v1::Tier;
use pricing_record::{GoodsId, UnixMillis};
use pricing_store::{
    BreakerSettings, CacheSettings, ChainError, Deadline, Guarded, Meter, RecordStore, SharedRecord, StoreGuard,
    TierId, TieredReader, live,
};
use pricing_store_pairs::Pair;
use pricing_store_sql::promotion::PromotionRow;
use pricing_store_sql::{SqlError, SqlStore};

/// The MySQL source's name: its guard, breaker, metrics and chain tier.
const MYSQL: &str = "mysql";

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
    /// Served from the memory cache past its lifetime because every store
    /// failed (only with a configured cache).
    pub stale: bool,
}

pub struct Sources {
    /// MySQL behind its guard (breaker, metrics, deadline).
    mysql: Arc<Guarded<Arc<SqlStore>>>,
    /// Detail and checkout reads: Redis (when configured), then MySQL.
    chain: TieredReader,
    redis: Option<Pair>,
    /// The chain's memory cache settings (`None`: uncached), for variant chains.
    cache: Option<CacheSettings>,
    /// Promotions by the sorted store ids of a cart, for previews only.
    promotions: moka::future::Cache<Vec<u64>, Arc<CachedPromotions>>,
    /// How long a cached entry lives, and the span it is loaded for.
    promotions_ttl: Duration,
    invalidators: pricing_store::Invalidators,
}

/// The promotions live at some instant of `[from, until]`.
struct CachedPromotions {
    from: UnixMillis,
    until: UnixMillis,
    rows: Vec<PromotionRow>,
}

impl Sources {
    /// `cache`: the memory cache in front of the detail and checkout reads;
    /// `None` (the default) reads the stores on every call.
    pub fn new(
        sql: Arc<SqlStore>,
        sql_breaker: BreakerSettings,
        redis: Option<Pair>,
        cache: Option<CacheSettings>,
        promotions_ttl: Duration,
    ) -> Result<Sources, ChainError> {
        let guard = StoreGuard::new(MYSQL, Meter::Store).with_breaker(sql_breaker);
        let mysql = Arc::new(Guarded::new(sql, guard, None));
        let mut tiers = Vec::with_capacity(2);
        if let Some(pair) = &redis {
            tiers.push(
                pricing_store::Tier::new(TierId::Redis, Arc::clone(&pair.store) as _)
                    .with_write_back(Arc::clone(&pair.writer) as _),
            );
        }
        tiers.push(pricing_store::Tier::new(TierId::Sql, Arc::clone(&mysql) as _));
        let chain = match &cache {
            Some(cache) => TieredReader::new(tiers, live(cache.clone()))?,
            None => TieredReader::uncached(tiers)?,
        };
        let invalidators = pricing_store::Invalidators::new();
        invalidators.add(Arc::new(chain.clone()));
        Ok(Sources {
            mysql,
            chain,
            redis,
            cache,
            promotions: moka::future::Cache::builder().max_capacity(10_000).time_to_live(promotions_ttl).build(),
            promotions_ttl,
            invalidators,
        })
    }

    /// MySQL as a record store behind its guard: the source of truth shadow
    /// verification re-prices from.
    pub fn truth(&self) -> Arc<dyn RecordStore> {
        Arc::clone(&self.mysql) as _
    }

    pub fn redis(&self) -> Option<&Pair> {
        self.redis.as_ref()
    }

    /// The caches push invalidation empties of changed goods: the chain's
    /// memory cache (when `[cache]` configures one) and the canary variants'
    /// own chains ([`crate::variants::RedisViews::new`] registers them). A
    /// cache of computed prices registers here too
    /// (`invalidators().add(cache)`: the list is shared, so it may be added
    /// after the subscription started).
    pub fn invalidators(&self) -> pricing_store::Invalidators {
        self.invalidators.clone()
    }

    /// The detail and checkout read chain (tests wait for its write-backs).
    pub fn chain(&self) -> &TieredReader {
        &self.chain
    }

    /// A detail chain like the stable one whose Redis tier reads through
    /// `redis` (a canary variant's view of the pair: same clusters, its own
    /// read mode), with a cache of its own when the stable chain has one
    /// (push invalidation reaches it through the caller's registration:
    /// [`crate::variants::RedisViews`]).
    pub fn chain_over(&self, redis: Arc<pricing_store::DualStore>) -> Result<TieredReader, ChainError> {
        let mut tiers = Vec::with_capacity(2);
        let mut tier = pricing_store::Tier::new(TierId::Redis, redis as _);
        if let Some(pair) = &self.redis {
            tier = tier.with_write_back(Arc::clone(&pair.writer) as _);
        }
        tiers.push(tier);
        tiers.push(pricing_store::Tier::new(TierId::Sql, Arc::clone(&self.mysql) as _));
        match &self.cache {
            Some(cache) => TieredReader::new(tiers, live(cache.clone())),
            None => TieredReader::uncached(tiers),
        }
    }

    /// Runs one MySQL call other than a record read (promotions, coupons)
    /// through the MySQL guard; failures become the caller's error by the
    /// one rule (`From<StoreError> for ApiError`).
    async fn guarded<T>(
        &self,
        op: &'static str,
        deadline: Option<Deadline>,
        call: impl Future<Output = Result<T, SqlError>>,
    ) -> Result<T, ApiError> {
        let call = async { call.await.map_err(|e| e.into_store_error(MYSQL)) };
        self.mysql.guard().call(op, self.mysql.limits(deadline), call).await.map_err(|e| ApiError::from(e.error))
    }

    /// Records for `ids` as fresh as `freshness` requires, within the
    /// caller's `deadline`; `bypass` (the `redis_bypass` switch for this
    /// call) reads MySQL only. Tombstones and unknown ids are left out.
    pub async fn records(
        &self,
        ids: &[GoodsId],
        freshness: Freshness,
        bypass: bool,
        deadline: Option<Deadline>,
    ) -> Result<Vec<Found>, ApiError> {
        self.records_in(&self.chain, ids, freshness, bypass, deadline).await
    }

    /// As [`Sources::records`], through `chain` for detail and checkout
    /// reads (a canary variant's chain, [`Sources::chain_over`]).
    pub async fn records_in(
        &self,
        chain: &TieredReader,
        ids: &[GoodsId],
        freshness: Freshness,
        bypass: bool,
        deadline: Option<Deadline>,
    ) -> Result<Vec<Found>, ApiError> {
        if freshness == Freshness::Order || bypass {
            let label = if bypass { "mysql_bypass" } else { "mysql" };
            metrics::counter!("pricing_detail_reads_total", "source" => label).increment(1);
            let records = self.mysql.fetch_within(ids, deadline).await?;
            return Ok(records
                .into_iter()
                .filter(|r| !r.is_tombstone())
                .map(|record| Found { record, tier: Tier::Database, stale: false })
                .collect());
        }
        let source = if self.redis.is_some() { "redis" } else { "mysql" };
        metrics::counter!("pricing_detail_reads_total", "source" => source).increment(1);
        let lookups = chain.get_many_within(ids, deadline).await?;
        Ok(lookups
            .into_iter()
            .filter_map(|l| {
                let tier = pricing_proto::convert::tier(&l.source);
                l.record.map(|record| Found { record, tier, stale: l.stale })
            })
            .collect())
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
        deadline: Option<Deadline>,
    ) -> Result<Vec<Promotion>, ApiError> {
        if freshness == Freshness::Order {
            let rows = self.guarded("promotions", deadline, self.mysql.inner().load_promotions(store_ids, now)).await?;
            return Ok(rows.iter().map(PromotionRow::to_engine).collect());
        }
        let span = i64::try_from(self.promotions_ttl.as_millis()).unwrap_or(i64::MAX);
        let load = || async move {
            let until = now.saturating_add(span);
            let rows = self
                .guarded("promotions", deadline, self.mysql.inner().load_promotions_within(store_ids, now, until))
                .await?;
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
    pub async fn coupons(
        &self,
        ids: &[u64],
        deadline: Option<Deadline>,
    ) -> Result<(Vec<Promotion>, Vec<u64>), ApiError> {
        if ids.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let rows = self.guarded("coupons", deadline, self.mysql.inner().load_coupons(ids)).await?;
        let unknown = ids.iter().copied().filter(|id| !rows.iter().any(|r| r.id == *id)).collect();
        // Keep the caller's order: the engine reports duplicates and ranks by it.
        let coupons =
            ids.iter().filter_map(|id| rows.iter().find(|r| r.id == *id)).map(PromotionRow::to_engine).collect();
        Ok((coupons, unknown))
    }
}
