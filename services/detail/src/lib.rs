//! The detail server: DetailPricing for the detail page, the checkout page
//! and order placement.
//!
//! Layout: [`config`] is the checked config file; [`sources`] reads records
//! and promotions by how fresh the answer must be; [`quote`] signs and reads
//! quote ids; [`service`] checks requests, prices lines with the engine,
//! applies cart promotions and allocates them; [`watch`] counts every
//! answered price and the engine's dropped candidates, and shadow-verifies
//! sampled GetGoodsPrice answers against MySQL; [`serve`] runs the gRPC server
//! with health, reflection and metrics until shutdown, then drains.
#![forbid(unsafe_code)]
#![deny(clippy::float_arithmetic)]

pub mod config;
pub mod quote;
pub mod service;
pub mod sources;
pub mod variants;
pub mod watch;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use pricing_control::{PairSwitch, Switchboard};
use pricing_proto::v1::detail_pricing_server::DetailPricingServer;
use pricing_store_sql::SqlStore;
use tokio::net::TcpListener;

pub use config::DetailConfig;
pub use service::DetailService;
pub use sources::Sources;

/// Opens the configured source and serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    config: DetailConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let board = Switchboard::open(config.server.control_file.as_deref(), config.server.control_poll())?;
    board.set_zone(config.server.zone.clone());
    let sql = Arc::new(pricing_store_sql::source::open(&config.source).await?);
    let sources = build_sources(&config, Arc::clone(&sql), &board)?;
    // Held until the server stops: the push invalidation of changed goods
    // (the stable chain, and every canary variant's chain: the service
    // registers them in the same shared list when it is built below).
    let _subscription = subscribe(&config, &sources.invalidators())?;
    let served = serve_with_sources(listener, config, sources, board, shutdown).await;
    // After the drain: close the pool (on SQLite this checkpoints the log
    // into the database file).
    sql.close().await;
    served
}

/// Serves from an already opened SQL store (shared with a list server in
/// the demo binary, or a test's own).
pub async fn serve_with_store(
    listener: TcpListener,
    config: DetailConfig,
    sql: Arc<SqlStore>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let board = Switchboard::from_config(pricing_control::ControlConfig::default())?;
    let sources = build_sources(&config, sql, &board)?;
    serve_with_sources(listener, config, sources, board, shutdown).await
}

/// The detail path's sources from config: MySQL behind its guard (breaker,
/// metrics, deadline), the Redis pair when configured (its settings
/// following the control file when one governs the board) and the memory
/// cache when `[cache]` configures one.
pub fn build_sources(config: &DetailConfig, sql: Arc<SqlStore>, board: &Switchboard) -> anyhow::Result<Arc<Sources>> {
    let redis = config
        .redis
        .as_ref()
        .map(|r| pricing_store_pairs::redis_pair(pricing_store::PairId::Redis.as_str(), r))
        .transpose()?;
    if let (Some(pair), true) = (&redis, board.has_file()) {
        board.bind_pair(PairSwitch::DetailRedis, pair.settings.clone());
    }
    Ok(Arc::new(Sources::new(
        sql,
        config.mysql_breaker.clone(),
        redis,
        config.cache.clone(),
        Duration::from_millis(config.checkout.promotions_cache_ms),
    )?))
}

/// Subscribes to the projector's announcements on both clusters of the
/// `[redis]` pair (when configured and `[invalidation] enabled`) and drops
/// announced goods from `caches`; lasts as long as the result is held.
pub fn subscribe(
    config: &DetailConfig,
    caches: &pricing_store::Invalidators,
) -> anyhow::Result<Option<pricing_store_pairs::Subscription>> {
    let Some(redis) = &config.redis else { return Ok(None) };
    let sink = Arc::new(caches.clone());
    Ok(pricing_store_pairs::subscribe(pricing_store::PairId::Redis.as_str(), redis, &config.invalidation, sink)?)
}

/// Serves with given sources under a given switch board (tests keep the
/// board to flip switches).
pub async fn serve_with_sources(
    listener: TcpListener,
    config: DetailConfig,
    sources: Arc<Sources>,
    board: Switchboard,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let checkout = &config.checkout;
    let secret = if checkout.quote_secret.is_empty() {
        tracing::warn!("checkout.quote_secret is empty: quote ids are signed with a random per-process secret");
        rand::random::<[u8; 32]>().to_vec()
    } else {
        checkout.quote_secret.as_bytes().to_vec()
    };
    let list = config
        .list_fallback
        .as_ref()
        .map(|l| service::ListFallback::connect_lazy(&l.address, Duration::from_millis(l.timeout_ms)))
        .transpose()?;
    use pricing_traffic::watch::PricePath;
    pricing_traffic::watch::register(&[PricePath::Detail, PricePath::Checkout, PricePath::Order]);
    let service = DetailService::new(
        sources,
        board.clone(),
        quote::QuoteSigner::new(&secret),
        checkout.quote_ttl_ms,
        checkout.remainder_rule.into(),
        list,
    )
    .with_clock(config.clock.clone());
    // A file whose variants this server cannot serve is refused (at start: an error).
    board.require(service.capability())?;
    let service = DetailPricingServer::new(service);
    let descriptors = &[pricing_proto::FILE_DESCRIPTOR_SET];
    pricing_traffic::serve_guarded(listener, &config.server, descriptors, &board, service, shutdown).await
}
