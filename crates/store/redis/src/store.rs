//! [`RedisStore`]: the record store over one Redis server or a Redis Cluster.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use pricing_record::keys::redis_key;
use pricing_record::{GoodsId, decode_for, encode};
use pricing_store::{RecordStore, RecordWriter, SharedRecord, StoreError, StoreErrorKind, WriteReport, count_corrupt};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::Slot;
use redis::{Cmd, ErrorKind, RedisError, RedisFuture, RedisResult, ServerErrorKind, Value};

use crate::config::{ConfigError, RedisConfig};
use crate::script::VERSION_GUARD;

/// How many times the cluster client retries a request that met a
/// redirection (MOVED/ASK during resharding) or a dropped node connection.
/// Kept low: failing over to the other cluster is the combinator's job, and
/// the call deadline bounds the total anyway.
const CLUSTER_RETRIES: u32 = 3;

/// Goods records in Redis: one key per goods id ([`redis_key`]), the record
/// codec's bytes as the value.
///
/// - `fetch` sends one MGET per batch;
/// - `put` runs the Lua version guard (see [`crate::script`]) so that an older
///   version never replaces a newer one;
/// - `remove` sends one UNLINK per batch.
///
/// Cloning is cheap and shares the connection.
#[derive(Clone)]
pub struct RedisStore {
    /// Shared, because every call labels its metrics with it.
    name: Arc<str>,
    config: Arc<RedisConfig>,
    conn: Conn,
}

/// The connection behind the store, chosen by [`RedisConfig::cluster`]. Both
/// are multiplexed handles: clones share one TCP connection per server, and
/// concurrent calls are pipelined on it.
#[derive(Clone)]
enum Conn {
    /// Reconnects by itself: a call that finds the connection broken fails,
    /// and starts a new connection in the background for the next calls.
    Standalone(ConnectionManager),
    /// Keeps one multiplexed connection per node and the slot map; follows
    /// MOVED/ASK and refreshes the slot map by itself.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Standalone(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Standalone(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Standalone(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

impl RedisStore {
    /// Builds the store without any I/O: connections are made on first use
    /// and remade after failures, so a Redis that is down at start does not
    /// stop the process; calls report `Unavailable` until it is back. Fails
    /// only on invalid configuration, or outside a Tokio runtime.
    pub fn new(config: RedisConfig) -> Result<RedisStore, ConfigError> {
        config.validate()?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ConfigError::NoRuntime);
        }
        let conn = if config.cluster {
            let client = ClusterClientBuilder::new(config.urls.iter().map(String::as_str))
                .connection_timeout(config.connect_timeout)
                .response_timeout(config.response_timeout)
                .overall_response_timeout(Some(config.call_deadline()))
                .retries(CLUSTER_RETRIES)
                .build()
                .map_err(|e| ConfigError::InvalidUrl { url: config.urls.join(","), message: e.to_string() })?;
            let cluster_config = ClusterConfig::new()
                .set_connection_timeout(config.connect_timeout)
                .set_response_timeout(config.response_timeout);
            Conn::Cluster(client.get_pending_async_connection_with_config(cluster_config))
        } else {
            let url = &config.urls[0];
            let invalid = |e: RedisError| ConfigError::InvalidUrl { url: url.clone(), message: e.to_string() };
            let client = redis::Client::open(url.as_str()).map_err(invalid)?;
            // No retry loop inside a call: one connect attempt, bounded by the
            // connect timeout; on failure the manager starts a fresh attempt
            // in the background and the caller gets `Unavailable` at once.
            let manager_config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(config.connect_timeout))
                .set_response_timeout(Some(config.response_timeout))
                .set_number_of_retries(0);
            Conn::Standalone(ConnectionManager::new_lazy_with_config(client, manager_config).map_err(invalid)?)
        };
        Ok(RedisStore { name: Arc::from(config.name.as_str()), config: Arc::new(config), conn })
    }

    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// Runs one store call: bounded by the call deadline, errors classified,
    /// metrics recorded (requests, errors by kind, latency).
    async fn call<T>(&self, op: &'static str, work: impl Future<Output = RedisResult<T>>) -> Result<T, StoreError> {
        let store = self.name.to_string();
        metrics::counter!("pricing_store_requests_total", "store" => store.clone(), "op" => op).increment(1);
        let started = Instant::now();
        let result = match tokio::time::timeout(self.config.call_deadline(), work).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(StoreError::new(store.clone(), classify(&error), error)),
            Err(_) => Err(StoreError::timeout(store.clone())),
        };
        let elapsed = started.elapsed();
        metrics::histogram!("pricing_store_latency_seconds", "store" => store.clone(), "op" => op)
            .record(elapsed.as_secs_f64());
        if let Err(error) = &result {
            let kind = kind_label(error.kind);
            metrics::counter!("pricing_store_errors_total", "store" => store.clone(), "op" => op, "kind" => kind)
                .increment(1);
            tracing::debug!(store, op, kind, elapsed_ms = elapsed.as_millis() as u64, message = %error.message, "redis call failed");
        }
        result
    }

    /// Groups record indices for script calls: all together on a standalone
    /// server; by hash slot on a Cluster, where one script's keys must share
    /// a slot. Keys keep their batch order inside a group.
    fn script_groups(&self, keys: &[String]) -> Vec<Vec<usize>> {
        if !self.config.cluster {
            return vec![(0..keys.len()).collect()];
        }
        let mut slot_index: HashMap<Slot, usize> = HashMap::new();
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let group = *slot_index.entry(Slot::for_key(key)).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[group].push(i);
        }
        groups
    }
}

#[async_trait]
impl RecordStore for RedisStore {
    fn name(&self) -> &str {
        &self.name
    }

    /// One MGET for the whole batch (duplicates asked once). On a Cluster the
    /// client splits that MGET into one MGET per hash slot, sends them all at
    /// once (pipelined on each node's connection) and puts the answers back
    /// in key order.
    async fn fetch(&self, ids: &[GoodsId]) -> Result<Vec<SharedRecord>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut seen = HashSet::with_capacity(ids.len());
        let unique: Vec<GoodsId> = ids.iter().copied().filter(|id| seen.insert(*id)).collect();
        let keys: Vec<String> = unique.iter().map(|id| redis_key(*id)).collect();
        let values = self
            .call("fetch", async {
                let mut conn = self.conn.clone();
                let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
                if values.len() != keys.len() {
                    return Err(unexpected("MGET answered a different number of values than keys asked", values.len()));
                }
                Ok(values)
            })
            .await?;
        let mut records = Vec::with_capacity(values.len());
        for (id, value) in unique.iter().zip(values) {
            let Some(bytes) = value else { continue };
            match decode_for(*id, &bytes) {
                Ok(record) => records.push(Arc::new(record)),
                Err(error) => count_corrupt(&self.name, *id, &error),
            }
        }
        let store = self.name.to_string();
        metrics::counter!("pricing_store_keys_requested_total", "store" => store.clone())
            .increment(unique.len() as u64);
        metrics::counter!("pricing_store_keys_found_total", "store" => store).increment(records.len() as u64);
        Ok(records)
    }
}

#[async_trait]
impl RecordWriter for RedisStore {
    fn name(&self) -> &str {
        &self.name
    }

    /// Versioned write through the Lua guard: one script call for the batch
    /// on a standalone server; on a Cluster one call per hash slot, all sent
    /// at once. Records are encoded before any I/O; a record that cannot be
    /// encoded fails the whole batch (kind `Protocol`) and nothing is sent.
    /// On an error some groups may have been written: the write is
    /// idempotent (versions), so the caller retries the whole batch.
    async fn put(&self, records: &[SharedRecord]) -> Result<WriteReport, StoreError> {
        if records.is_empty() {
            return Ok(WriteReport::default());
        }
        let mut keys = Vec::with_capacity(records.len());
        let mut values = Vec::with_capacity(records.len());
        for record in records {
            let bytes = encode(record).map_err(|e| {
                StoreError::new(
                    self.name.to_string(),
                    StoreErrorKind::Protocol,
                    format!("goods {} cannot be encoded: {e}", record.goods_id),
                )
            })?;
            keys.push(redis_key(record.goods_id));
            values.push(bytes);
        }
        let groups = self.script_groups(&keys);
        let ttl_ms = self.config.ttl_millis();
        let outcomes = self
            .call("put", async {
                let calls = groups.iter().map(|group| {
                    let mut conn = self.conn.clone();
                    let (keys, values) = (&keys, &values);
                    async move {
                        let mut invocation = VERSION_GUARD.prepare_invoke();
                        invocation.arg(ttl_ms);
                        for &i in group {
                            invocation.key(&keys[i]).arg(values[i].as_ref());
                        }
                        let flags: Vec<i64> = invocation.invoke_async(&mut conn).await?;
                        if flags.len() != group.len() || flags.iter().any(|f| !matches!(f, 0 | 1)) {
                            return Err(unexpected("version guard answered an unexpected reply", flags.len()));
                        }
                        Ok(flags)
                    }
                });
                futures::future::try_join_all(calls).await
            })
            .await?;
        let written = outcomes.iter().flatten().filter(|f| **f == 1).count();
        let report = WriteReport { written, skipped_older: records.len() - written };
        let store = self.name.to_string();
        metrics::counter!("pricing_store_writes_total", "store" => store.clone(), "outcome" => "written")
            .increment(report.written as u64);
        metrics::counter!("pricing_store_writes_total", "store" => store, "outcome" => "skipped_older")
            .increment(report.skipped_older as u64);
        Ok(report)
    }

    /// One UNLINK for the batch (the server frees the memory in the
    /// background). On a Cluster the client splits it per hash slot.
    async fn remove(&self, ids: &[GoodsId]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = ids.iter().map(|id| redis_key(*id)).collect();
        self.call("remove", async {
            let mut conn = self.conn.clone();
            redis::cmd("UNLINK").arg(&keys).query_async::<i64>(&mut conn).await.map(drop)
        })
        .await
    }
}

fn unexpected(what: &'static str, got: usize) -> RedisError {
    RedisError::from((ErrorKind::UnexpectedReturnType, what, format!("{got} values")))
}

/// What a redis client error means for a caller choosing between failover
/// (Timeout, Unavailable) and "this store speaks nonsense" (Protocol).
fn classify(error: &RedisError) -> StoreErrorKind {
    if error.is_timeout() {
        return StoreErrorKind::Timeout;
    }
    match error.kind() {
        ErrorKind::Parse | ErrorKind::UnexpectedReturnType | ErrorKind::Extension => StoreErrorKind::Protocol,
        ErrorKind::Server(server) => match server {
            ServerErrorKind::ClusterDown
            | ServerErrorKind::MasterDown
            | ServerErrorKind::TryAgain
            | ServerErrorKind::BusyLoading
            | ServerErrorKind::ReadOnly
            | ServerErrorKind::Moved
            | ServerErrorKind::Ask => StoreErrorKind::Unavailable,
            _ => StoreErrorKind::Protocol,
        },
        // Io (refused, reset, closed), ClusterConnectionNotFound,
        // AuthenticationFailed and client-side faults: the store cannot be used now.
        _ => StoreErrorKind::Unavailable,
    }
}

fn kind_label(kind: StoreErrorKind) -> &'static str {
    match kind {
        StoreErrorKind::Timeout => "timeout",
        StoreErrorKind::Unavailable => "unavailable",
        StoreErrorKind::Protocol => "protocol",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn errors_are_classified_for_failover() {
        let timed_out = RedisError::from(io::Error::from(io::ErrorKind::TimedOut));
        assert_eq!(classify(&timed_out), StoreErrorKind::Timeout);
        let refused = RedisError::from(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(classify(&refused), StoreErrorKind::Unavailable);
        let reset = RedisError::from(io::Error::from(io::ErrorKind::ConnectionReset));
        assert_eq!(classify(&reset), StoreErrorKind::Unavailable);
        assert_eq!(classify(&unexpected("x", 1)), StoreErrorKind::Protocol);
        let parse = RedisError::from((ErrorKind::Parse, "bad reply"));
        assert_eq!(classify(&parse), StoreErrorKind::Protocol);
        let down = RedisError::from((ErrorKind::Server(ServerErrorKind::ClusterDown), "down"));
        assert_eq!(classify(&down), StoreErrorKind::Unavailable);
        let script = RedisError::from((ErrorKind::Server(ServerErrorKind::ResponseError), "ERR script"));
        assert_eq!(classify(&script), StoreErrorKind::Protocol);
    }

    #[tokio::test]
    async fn cluster_scripts_are_grouped_by_slot_and_standalone_in_one_call() {
        let keys: Vec<String> = (1..=40).map(redis_key).collect();
        let standalone = RedisStore::new(RedisConfig::standalone("redis-a", "redis://127.0.0.1:1/")).unwrap();
        assert_eq!(standalone.script_groups(&keys), vec![(0..40).collect::<Vec<_>>()]);

        let cluster = RedisStore::new(RedisConfig::cluster("redis-b", ["redis://127.0.0.1:1/"])).unwrap();
        let groups = cluster.script_groups(&keys);
        let mut all: Vec<usize> = groups.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..40).collect::<Vec<_>>(), "every key in exactly one group");
        for group in &groups {
            let slot = Slot::for_key(&keys[group[0]]);
            assert!(group.iter().all(|i| Slot::for_key(&keys[*i]) == slot), "a group spans slots");
            assert!(group.windows(2).all(|w| w[0] < w[1]), "batch order kept inside a group");
        }
        let slots: HashSet<Slot> = keys.iter().map(Slot::for_key).collect();
        assert_eq!(groups.len(), slots.len());
    }

    #[test]
    fn building_outside_a_runtime_is_an_error_not_a_panic() {
        let result = RedisStore::new(RedisConfig::standalone("redis-a", "redis://127.0.0.1:1/"));
        assert!(matches!(result, Err(ConfigError::NoRuntime)));
    }

    #[tokio::test]
    async fn invalid_urls_are_config_errors() {
        let result = RedisStore::new(RedisConfig::standalone("redis-a", "http://nope"));
        assert!(matches!(result, Err(ConfigError::InvalidUrl { .. })), "{:?}", result.err());
        let result = RedisStore::new(RedisConfig::cluster("redis-b", ["not a url"]));
        assert!(matches!(result, Err(ConfigError::InvalidUrl { .. })), "{:?}", result.err());
    }
}
