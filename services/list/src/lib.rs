//! The list server: ListPricing.BatchGetPrices, 80% of all traffic.
//!
//! Layout: [`config`] is the checked config file; [`reader`] is the seam to
//! the read chain (memory, Redis pair, HBase pair, or the embedded SQL
//! database); [`service`] checks a request, reads the batch once and prices
//! each goods with the engine; [`serve`] runs the gRPC server with health,
//! reflection and metrics until the shutdown future resolves, then drains.
#![forbid(unsafe_code)]
#![deny(clippy::float_arithmetic)]

pub mod config;
pub mod guards;
pub mod memo;
pub mod reader;
pub mod service;
pub mod variants;

use std::future::Future;
use std::sync::Arc;

use pricing_control::{PairSwitch, Switchboard};
use pricing_proto::list_server::list_pricing_server::ListPricingServer;
use pricing_store::{Invalidators, PairId, RecordStore, Tier, TierId, TieredReader, live};
use pricing_store_pairs::Pair;
use pricing_store_pairs::Subscription;
use tokio::net::TcpListener;

pub use config::ListConfig;
pub use guards::Guards;
pub use reader::{Hit, PriceReader};
pub use service::ListService;

/// Opens the configured source and serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    config: ListConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let board = Switchboard::open(config.server.control_file.as_deref(), config.server.control_poll())?;
    board.set_zone(config.server.zone.clone());
    let path = build_read_path(&config, None).await?;
    path.follow(&board);
    let guards = Guards::new(&board, path.truth.clone()).with_variants(&board, Some(path.parts(&config)))?;
    // Held until the server stops: the push invalidation of changed goods
    // (the stable chain, the price memo behind it, and every variant's chain).
    path.invalidators.add(Arc::clone(&guards.variants) as _);
    let _subscription = path.subscribe(&config)?;
    let served = serve_guarded(listener, config, Arc::clone(&path.reader) as _, guards, board, shutdown).await;
    // After the drain: close the pool (on SQLite this checkpoints the log
    // into the database file).
    if let Some(sql) = path.opened {
        sql.close().await;
    }
    served
}

/// The list server's read path: the chain, and the store pairs behind it
/// (whose live settings the control config swaps).
pub struct ReadPath {
    pub reader: Arc<TieredReader>,
    pub pairs: Vec<Pair>,
    /// The SQL source of truth when the chain or `[source] database_url`
    /// names one: shadow verification re-checks answers against it.
    pub truth: Option<Arc<dyn RecordStore>>,
    /// The SQL source when this path opened it (not when the caller passed
    /// its own): whoever serves closes it after shutdown.
    pub opened: Option<Arc<pricing_store_sql::SqlStore>>,
    /// Every in-process cache the push invalidation empties of changed
    /// goods: the chain's memory cache, and any cache of computed prices
    /// the service adds (`path.invalidators.add(cache)`).
    pub invalidators: Invalidators,
}

/// Builds the read chain the config names: the in-process cache in front of
/// the listed tiers. `sql` is an already opened source to share (the demo
/// binary and tests); without it the configured source is opened when the
/// chain lists "sql". Redis, when listed, takes write-backs of what a later
/// tier found.
pub async fn build_read_path(config: &ListConfig, sql: Option<Arc<dyn RecordStore>>) -> anyhow::Result<ReadPath> {
    let ids = &config.read.tiers;
    let mut available = Vec::new();
    let mut pairs = Vec::new();
    let wants_sql = ids.contains(&TierId::Sql) || config.source.database_url.is_some();
    let mut opened = None;
    let truth: Option<Arc<dyn RecordStore>> = match (sql, wants_sql) {
        (Some(sql), _) => Some(sql),
        (None, true) => {
            let sql = Arc::new(pricing_store_sql::source::open(&config.source).await?);
            opened = Some(Arc::clone(&sql));
            Some(sql)
        }
        (None, false) => None,
    };
    if let (true, Some(sql)) = (ids.contains(&TierId::Sql), &truth) {
        available.push(Tier::new(TierId::Sql, Arc::clone(sql)));
    }
    if let (true, Some(redis)) = (ids.contains(&TierId::Redis), &config.redis) {
        let pair = pricing_store_pairs::redis_pair(PairId::Redis.as_str(), redis)?;
        available.push(
            Tier::new(TierId::Redis, Arc::clone(&pair.store) as _).with_write_back(Arc::clone(&pair.writer) as _),
        );
        pairs.push(pair);
    }
    if let (true, Some(hbase)) = (ids.contains(&TierId::Hbase), &config.hbase) {
        let pair = pricing_store_pairs::hbase_pair(PairId::Hbase.as_str(), hbase)?;
        available.push(Tier::new(TierId::Hbase, Arc::clone(&pair.store) as _));
        pairs.push(pair);
    }
    let reader = Arc::new(TieredReader::from_ids(ids, available, live(config.cache.clone()))?);
    tracing::info!(tiers = ?ids, "list read chain built");
    let invalidators = Invalidators::new();
    invalidators.add(Arc::clone(&reader) as _);
    Ok(ReadPath { reader, pairs, truth, opened, invalidators })
}

impl ReadPath {
    /// What canary variant views may read through: this path's stores.
    pub fn parts(&self, config: &ListConfig) -> variants::Parts {
        let pair = |id: PairId| self.pairs.iter().find(|p| p.id == id);
        variants::Parts {
            tiers: config.read.tiers.clone(),
            sql: self.truth.clone(),
            redis: pair(PairId::Redis).map(|p| (Arc::clone(&p.store), Arc::clone(&p.writer))),
            hbase: pair(PairId::Hbase).map(|p| Arc::clone(&p.store)),
        }
    }

    /// Subscribes to the projector's announcements on both clusters of the
    /// `[redis]` pair (when configured and `[invalidation] enabled`); the
    /// subscription lasts as long as the returned value is held.
    pub fn subscribe(&self, config: &ListConfig) -> anyhow::Result<Option<Subscription>> {
        let Some(redis) = &config.redis else { return Ok(None) };
        let sink = Arc::new(self.invalidators.clone());
        Ok(pricing_store_pairs::subscribe(PairId::Redis.as_str(), redis, &config.invalidation, sink)?)
    }

    /// Makes the pairs' and the cache's live settings follow the control
    /// file, when one governs the board (without a file the server config's
    /// own settings stay).
    pub fn follow(&self, board: &Switchboard) {
        if !board.has_file() {
            return;
        }
        for pair in &self.pairs {
            let switch = match pair.id {
                PairId::Redis => PairSwitch::ListRedis,
                PairId::Hbase => PairSwitch::ListHbase,
            };
            board.bind_pair(switch, pair.settings.clone());
        }
        if let Some(cache) = self.reader.cache_settings() {
            board.bind_list_cache(cache.clone());
        }
    }
}

/// The read chain alone, for callers that do not steer the pairs.
pub async fn build_reader(
    config: &ListConfig,
    sql: Option<Arc<dyn RecordStore>>,
) -> anyhow::Result<Arc<dyn PriceReader>> {
    Ok(build_read_path(config, sql).await?.reader)
}

/// Serves with a given read chain (tests pass their own) and the defaults
/// of the control config.
pub async fn serve_with_reader(
    listener: TcpListener,
    config: ListConfig,
    reader: Arc<dyn PriceReader>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let board = Switchboard::from_config(pricing_control::ControlConfig::default())?;
    serve_with(listener, config, reader, board, None, shutdown).await
}

/// Serves with a given read chain under a given switch board. With a
/// control file, every call passes the protection layers (shedding, caller
/// accounts, quotas, deadlines); without one (the embedded default) callers
/// are not checked. Hot keys, canary variants and shadow verification run in
/// the handler either way, as the board says. `truth` enables shadow
/// verification.
pub async fn serve_with(
    listener: TcpListener,
    config: ListConfig,
    reader: Arc<dyn PriceReader>,
    board: Switchboard,
    truth: Option<Arc<dyn RecordStore>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // A fixed reader has no stores to build a variant's own read path from:
    // the board refuses files whose variants would need one.
    let guards = Guards::new(&board, truth).with_variants(&board, None)?;
    serve_guarded(listener, config, reader, guards, board, shutdown).await
}

/// Serves with a given read chain and guards (their variant views built).
async fn serve_guarded(
    listener: TcpListener,
    config: ListConfig,
    reader: Arc<dyn PriceReader>,
    guards: Guards,
    board: Switchboard,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    pricing_traffic::watch::register(&[pricing_traffic::watch::PricePath::List]);
    let service = ListPricingServer::new(ListService::new(reader, guards).with_clock(config.clock.clone()));
    let descriptors = &[pricing_proto::FILE_DESCRIPTOR_SET];
    pricing_traffic::serve_guarded(listener, &config.server, descriptors, &board, service, shutdown).await
}
