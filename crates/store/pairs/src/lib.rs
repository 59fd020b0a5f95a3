//! The dual Redis and HBase pairs, built from config, for every server and
//! the projector.
//!
//! Layout: [`RedisPairConfig`] and [`HbasePairConfig`] are the config-file
//! form of a pair (two clusters, each with its connection settings, plus the
//! live [`DualSettings`]: read mode, write mode, timeouts, breakers);
//! [`redis_pair`] and [`hbase_pair`] build the [`Pair`]: a `DualStore` for
//! reads, a `DualWriter` for versioned writes, and the `Live` settings cell
//! the control config swaps, plus each cluster's own writer and raw reads
//! (`Inspect`, for the reconciler). A pair knows which it is ([`PairId`]); its
//! name, in metrics and store names, is the id's spelling in production
//! (`redis`, clusters `redis-a` and `redis-b`), another where tests need
//! a second pair of the same kind that their metrics do not count.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use pricing_store::Invalidate;
use pricing_store::{DualSettings, DualStore, DualWriter, Inspect, Live, PairId, RecordStore, RecordWriter, live};
use pricing_store_hbase::{HbaseConfig, HbaseStore, Transport};
pub use pricing_store_redis::invalidate::{Announcer, SubscribeSettings, Subscription};
use pricing_store_redis::{RedisConfig, RedisStore};
use serde::Deserialize;

/// One Redis cluster (or standalone server) of a pair.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisClusterConfig {
    /// One URL for a standalone server; the seed nodes for a Cluster.
    pub urls: Vec<String>,
    #[serde(default)]
    pub cluster: bool,
    #[serde(default = "default_redis_connect_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default = "default_redis_response_ms")]
    pub response_timeout_ms: u64,
    /// Expiry of written keys; absent: keys do not expire (the projector
    /// keeps them current).
    #[serde(default)]
    pub key_ttl_ms: Option<u64>,
    /// Cluster only: how often the slot map is refreshed when nothing fails
    /// (a failing call refreshes it at once).
    #[serde(default = "default_topology_refresh_ms")]
    pub topology_refresh_ms: u64,
    /// Cluster only: how long a write waits for a replica's acknowledgement
    /// (`WAIT 1`) when its master has one; 0 does not wait.
    #[serde(default = "default_replica_ack_timeout_ms")]
    pub replica_ack_timeout_ms: u64,
}

fn default_topology_refresh_ms() -> u64 {
    RedisConfig::DEFAULT_TOPOLOGY_REFRESH.as_millis() as u64
}

fn default_replica_ack_timeout_ms() -> u64 {
    RedisConfig::DEFAULT_REPLICA_ACK_TIMEOUT.as_millis() as u64
}

fn default_redis_connect_ms() -> u64 {
    RedisConfig::DEFAULT_CONNECT_TIMEOUT.as_millis() as u64
}

fn default_redis_response_ms() -> u64 {
    RedisConfig::DEFAULT_RESPONSE_TIMEOUT.as_millis() as u64
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisPairConfig {
    pub a: RedisClusterConfig,
    pub b: RedisClusterConfig,
    /// Initial read/write modes, timeouts and breakers; the control config
    /// replaces them live.
    #[serde(default)]
    pub settings: DualSettings,
}

/// Push invalidation (`[invalidation]` of the projector's and the servers'
/// config files): the projector announces the goods it wrote on both
/// clusters of the Redis pair, servers subscribe on both and drop those ids
/// from memory. See `pricing_store_redis::invalidate`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InvalidationConfig {
    /// On by default wherever a `[redis]` pair is configured.
    pub enabled: bool,
    pub channel: String,
    /// Pause before re-subscribing after a loss, doubling up to the max.
    pub reconnect_min_ms: u64,
    pub reconnect_max_ms: u64,
    /// How often a subscribed connection is pinged (finds a silent one).
    pub ping_ms: u64,
}

impl Default for InvalidationConfig {
    fn default() -> Self {
        let d = SubscribeSettings::default();
        InvalidationConfig {
            enabled: true,
            channel: d.channel,
            reconnect_min_ms: d.reconnect_min.as_millis() as u64,
            reconnect_max_ms: d.reconnect_max.as_millis() as u64,
            ping_ms: d.ping_interval.as_millis() as u64,
        }
    }
}

impl InvalidationConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.channel.trim().is_empty() {
            return Err("invalidation.channel is empty".into());
        }
        if self.reconnect_min_ms == 0 || self.reconnect_max_ms < self.reconnect_min_ms {
            return Err("invalidation.reconnect_min_ms must be above zero and at most reconnect_max_ms".into());
        }
        if self.ping_ms == 0 {
            return Err("invalidation.ping_ms must be above zero".into());
        }
        Ok(())
    }

    pub fn subscribe_settings(&self) -> SubscribeSettings {
        SubscribeSettings {
            channel: self.channel.clone(),
            reconnect_min: Duration::from_millis(self.reconnect_min_ms),
            reconnect_max: Duration::from_millis(self.reconnect_max_ms),
            ping_interval: Duration::from_millis(self.ping_ms),
        }
    }
}

impl RedisPairConfig {
    /// Both clusters' store settings, named `<name>-a` and `<name>-b`.
    pub fn cluster_configs(&self, name: &str) -> [RedisConfig; 2] {
        [self.a.to_store_config(&format!("{name}-a")), self.b.to_store_config(&format!("{name}-b"))]
    }
}

/// The projector's announcer over both clusters of the Redis pair named
/// `name`; `None` when invalidation is off.
pub fn announcer(
    name: &str,
    redis: &RedisPairConfig,
    invalidation: &InvalidationConfig,
) -> Result<Option<Announcer>, PairError> {
    if !invalidation.enabled {
        return Ok(None);
    }
    invalidation.validate().map_err(|e| config_error(name, e))?;
    Announcer::new(&redis.cluster_configs(name), &invalidation.channel).map(Some).map_err(|e| config_error(name, e))
}

/// A server's subscriptions on both clusters of the Redis pair named
/// `name`, dropping announced ids from `sink`; `None` when invalidation is
/// off. Keep the result for as long as the server runs.
pub fn subscribe(
    name: &str,
    redis: &RedisPairConfig,
    invalidation: &InvalidationConfig,
    sink: Arc<dyn Invalidate>,
) -> Result<Option<Subscription>, PairError> {
    if !invalidation.enabled {
        return Ok(None);
    }
    invalidation.validate().map_err(|e| config_error(name, e))?;
    for config in redis.cluster_configs(name) {
        config.validate().map_err(|e| config_error(name, e))?;
    }
    Ok(Some(pricing_store_redis::invalidate::subscribe(
        &redis.cluster_configs(name),
        invalidation.subscribe_settings(),
        sink,
    )))
}

/// One HBase cluster (its Thrift servers) of a pair.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HbaseClusterConfig {
    /// Thrift servers ("host:9090"); tried in order.
    pub addresses: Vec<String>,
    #[serde(default)]
    pub framed: bool,
    #[serde(default = "default_hbase_pool")]
    pub pool_size: usize,
    #[serde(default = "default_hbase_connect_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default = "default_hbase_call_ms")]
    pub call_timeout_ms: u64,
    #[serde(default)]
    pub table: Option<String>,
}

fn default_hbase_pool() -> usize {
    8
}
fn default_hbase_connect_ms() -> u64 {
    200
}
fn default_hbase_call_ms() -> u64 {
    500
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HbasePairConfig {
    pub a: HbaseClusterConfig,
    pub b: HbaseClusterConfig,
    #[serde(default)]
    pub settings: DualSettings,
}

/// A built pair.
pub struct Pair {
    /// Which pair this is: what servers and the control file match on.
    pub id: PairId,
    /// The name in metrics and errors; clusters are `<name>-a`, `<name>-b`.
    pub name: String,
    pub store: Arc<DualStore>,
    pub writer: Arc<DualWriter>,
    /// The live settings cell both halves read on every call.
    pub settings: Live<DualSettings>,
    /// Each cluster's own writer (full sync of one side after recovery).
    pub clusters: [Arc<dyn RecordWriter>; 2],
    /// Each cluster's raw reads (the reconciler), over the same store as
    /// its writer: same connections, timeouts and metrics.
    pub inspectors: [Arc<dyn Inspect>; 2],
}

#[derive(Debug, thiserror::Error)]
pub enum PairError {
    #[error("{pair}: {message}")]
    Config { pair: String, message: String },
}

fn config_error(pair: &str, e: impl std::fmt::Display) -> PairError {
    PairError::Config { pair: pair.to_owned(), message: e.to_string() }
}

impl RedisClusterConfig {
    pub fn to_store_config(&self, name: &str) -> RedisConfig {
        let base = if self.cluster {
            RedisConfig::cluster(name, self.urls.iter().cloned())
        } else {
            RedisConfig::standalone(name, self.urls.first().cloned().unwrap_or_default())
        };
        RedisConfig {
            urls: self.urls.clone(),
            topology_refresh: Duration::from_millis(self.topology_refresh_ms),
            replica_ack_timeout: Some(Duration::from_millis(self.replica_ack_timeout_ms)).filter(|t| !t.is_zero()),
            ..base
        }
        .with_timeouts(Duration::from_millis(self.connect_timeout_ms), Duration::from_millis(self.response_timeout_ms))
        .with_key_ttl(self.key_ttl_ms.map(Duration::from_millis))
    }
}

impl HbaseClusterConfig {
    pub fn to_store_config(&self, name: &str) -> HbaseConfig {
        let mut config = HbaseConfig::new(name, self.addresses.iter().cloned());
        config.transport = if self.framed { Transport::Framed } else { Transport::Buffered };
        config.pool_size = self.pool_size;
        config.connect_timeout = Duration::from_millis(self.connect_timeout_ms);
        config.call_timeout = Duration::from_millis(self.call_timeout_ms);
        if let Some(table) = &self.table {
            config.table = table.clone();
        }
        config
    }
}

fn assemble<S: RecordStore + RecordWriter + Inspect>(
    id: PairId,
    name: &str,
    a: S,
    b: S,
    settings: DualSettings,
) -> Pair {
    let (a, b) = (Arc::new(a), Arc::new(b));
    let settings = live(settings);
    let store = DualStore::new(name, Arc::clone(&a) as _, Arc::clone(&b) as _, Arc::clone(&settings));
    let writer = DualWriter::new(name, Arc::clone(&a) as _, Arc::clone(&b) as _, Arc::clone(&settings));
    let inspectors: [Arc<dyn Inspect>; 2] = [Arc::clone(&a) as _, Arc::clone(&b) as _];
    Pair {
        id,
        name: name.to_owned(),
        store: Arc::new(store),
        writer: Arc::new(writer),
        settings,
        clusters: [a, b],
        inspectors,
    }
}

/// Builds a Redis pair named `name` (clusters `<name>-a`, `<name>-b`);
/// servers pass `PairId::Redis.as_str()`. Needs
/// a tokio runtime; connects lazily, so a cluster that is down at start is
/// only an error of the calls that reach it.
pub fn redis_pair(name: &str, config: &RedisPairConfig) -> Result<Pair, PairError> {
    config.settings.validate().map_err(|e| config_error(name, e))?;
    let a = RedisStore::new(config.a.to_store_config(&format!("{name}-a"))).map_err(|e| config_error(name, e))?;
    let b = RedisStore::new(config.b.to_store_config(&format!("{name}-b"))).map_err(|e| config_error(name, e))?;
    Ok(assemble(PairId::Redis, name, a, b, config.settings.clone()))
}

/// Builds an HBase pair named `name` (clusters `<name>-a`, `<name>-b`);
/// servers pass `PairId::Hbase.as_str()`.
pub fn hbase_pair(name: &str, config: &HbasePairConfig) -> Result<Pair, PairError> {
    config.settings.validate().map_err(|e| config_error(name, e))?;
    let a = HbaseStore::new(config.a.to_store_config(&format!("{name}-a"))).map_err(|e| config_error(name, e))?;
    let b = HbaseStore::new(config.b.to_store_config(&format!("{name}-b"))).map_err(|e| config_error(name, e))?;
    Ok(assemble(PairId::Hbase, name, a, b, config.settings.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_configs_parse_with_defaults_and_refuse_unknown_keys() {
        let redis: RedisPairConfig = toml::from_str(
            r#"
            a = { urls = ["redis://127.0.0.1:7001/"] }
            b = { urls = ["redis://127.0.0.1:7002/", "redis://127.0.0.1:7003/"], cluster = true, key_ttl_ms = 60000 }
            "#,
        )
        .unwrap();
        assert_eq!(redis.a.response_timeout_ms, 250);
        let b = redis.b.to_store_config("redis-b");
        assert!(b.cluster);
        assert_eq!(b.urls.len(), 2);
        assert_eq!(b.key_ttl, Some(Duration::from_secs(60)));
        assert!(toml::from_str::<RedisPairConfig>("a = { urls = [], clustr = true }\nb = { urls = [] }").is_err());

        let hbase: HbasePairConfig = toml::from_str(
            r#"
            a = { addresses = ["127.0.0.1:9090"] }
            b = { addresses = ["127.0.0.1:9091"], framed = true, table = "t" }
            "#,
        )
        .unwrap();
        let b = hbase.b.to_store_config("hbase-b");
        assert_eq!((b.transport, b.table.as_str(), b.pool_size), (Transport::Framed, "t", 8));
    }

    #[tokio::test]
    async fn pairs_build_without_reaching_their_servers() {
        let redis: RedisPairConfig =
            toml::from_str("a = { urls = [\"redis://127.0.0.1:1/\"] }\nb = { urls = [\"redis://127.0.0.1:2/\"] }")
                .unwrap();
        let pair = redis_pair(PairId::Redis.as_str(), &redis).unwrap();
        assert_eq!((pair.id, pair.clusters[0].name()), (PairId::Redis, "redis-a"));
        assert_eq!(pair.inspectors[1].name(), "redis-b");
        let hbase: HbasePairConfig =
            toml::from_str("a = { addresses = [\"127.0.0.1:1\"] }\nb = { addresses = [\"127.0.0.1:2\"] }").unwrap();
        let pair = hbase_pair("seed-hbase", &hbase).unwrap();
        assert_eq!((pair.id, pair.clusters[1].name()), (PairId::Hbase, "seed-hbase-b"));
        assert_eq!(pair.inspectors[0].name(), "seed-hbase-a");
    }
}
