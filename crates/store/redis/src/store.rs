//! [`RedisStore`]: the record store over one Redis server or a Redis Cluster.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use pricing_record::keys::redis_key;
use pricing_record::{GoodsId, decode_for, encode};
use pricing_store::{
    RecordStore, RecordWriter, SharedRecord, StoreCall, StoreError, StoreErrorKind, WriteReport, count_corrupt,
};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError, RedisResult, ServerErrorKind};

use crate::cluster::Router;
use crate::config::{ConfigError, RedisConfig};
use crate::script::VERSION_GUARD;

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

/// The connection behind the store, chosen by [`RedisConfig::cluster`].
#[derive(Clone)]
pub(crate) enum Conn {
    /// A multiplexed connection (clones share one TCP connection; concurrent
    /// calls are pipelined on it) that reconnects by itself: a call that
    /// finds the connection broken fails, and starts a new connection in the
    /// background for the next calls.
    Standalone(ConnectionManager),
    /// Our own slot routing over one multiplexed connection per node (see
    /// [`crate::cluster`] for why not redis-rs' cluster client).
    Cluster(Arc<Router>),
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
            for url in &config.urls {
                redis::Client::open(url.as_str())
                    .map_err(|e| ConfigError::InvalidUrl { url: url.clone(), message: e.to_string() })?;
            }
            Conn::Cluster(Router::start(&config))
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

    pub(crate) fn store_name(&self) -> &str {
        &self.name
    }

    pub(crate) fn conn(&self) -> &Conn {
        &self.conn
    }

    /// The values of `keys` in order (`None` for a missing key): one MGET;
    /// on a Cluster one pipeline per node (one MGET per hash slot), all
    /// nodes at once, the answers put back in key order. Unbounded: callers
    /// run it through [`RedisStore::call`].
    pub(crate) async fn mget(&self, keys: &[String]) -> RedisResult<Vec<Option<Vec<u8>>>> {
        let values: Vec<Option<Vec<u8>>> = match &self.conn {
            Conn::Standalone(conn) => redis::cmd("MGET").arg(keys).query_async(&mut conn.clone()).await?,
            Conn::Cluster(router) => router.mget(keys).await?,
        };
        if values.len() != keys.len() {
            return Err(unexpected("MGET answered a different number of values than keys asked", values.len()));
        }
        Ok(values)
    }

    /// Runs one store call: bounded by the call deadline, errors classified,
    /// metrics recorded (requests, errors by kind, latency; a call its caller
    /// drops is counted as cancelled).
    pub(crate) async fn call<T>(
        &self,
        op: &'static str,
        work: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, StoreError> {
        let call = StoreCall::start(&self.name, op);
        let result = match tokio::time::timeout(self.config.call_deadline(), work).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(StoreError::new(self.name.to_string(), classify(&error), error)),
            Err(_) => Err(StoreError::timeout(self.name.to_string())),
        };
        call.finish(&result);
        result
    }
}

#[async_trait]
impl RecordStore for RedisStore {
    fn name(&self) -> &str {
        &self.name
    }

    /// One MGET for the whole batch (duplicates asked once). On a Cluster
    /// one pipeline per node (one MGET per hash slot), all nodes at once, the
    /// answers put back in key order.
    async fn fetch(&self, ids: &[GoodsId]) -> Result<Vec<SharedRecord>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let (unique, keys) = unique_keys(ids);
        let values = self.call("fetch", self.mget(&keys)).await?;
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
        let ttl_ms = self.config.ttl_millis();
        let flags = self
            .call("put", async {
                let flags: Vec<i64> = match &self.conn {
                    Conn::Standalone(conn) => {
                        let mut invocation = VERSION_GUARD.prepare_invoke();
                        invocation.arg(ttl_ms);
                        for (key, value) in keys.iter().zip(&values) {
                            invocation.key(key).arg(value.as_ref());
                        }
                        invocation.invoke_async(&mut conn.clone()).await?
                    }
                    Conn::Cluster(router) => {
                        // Retries of a failover stop a little before the call's deadline.
                        let deadline = tokio::time::Instant::now() + self.config.call_deadline().mul_f32(0.9);
                        let values: Vec<&[u8]> = values.iter().map(|v| v.as_ref()).collect();
                        router.put(&keys, &values, ttl_ms, deadline).await?
                    }
                };
                if flags.len() != keys.len() || flags.iter().any(|f| !matches!(f, 0 | 1)) {
                    return Err(unexpected("version guard answered an unexpected reply", flags.len()));
                }
                Ok(flags)
            })
            .await?;
        let written = flags.iter().filter(|f| **f == 1).count();
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
            match &self.conn {
                Conn::Standalone(conn) => {
                    redis::cmd("UNLINK").arg(&keys).query_async::<i64>(&mut conn.clone()).await.map(drop)
                }
                Conn::Cluster(router) => router.unlink(&keys).await,
            }
        })
        .await
    }
}

/// `ids` without repeats (first occurrence kept) and their keys, in that order.
pub(crate) fn unique_keys(ids: &[GoodsId]) -> (Vec<GoodsId>, Vec<String>) {
    let mut seen = HashSet::with_capacity(ids.len());
    let unique: Vec<GoodsId> = ids.iter().copied().filter(|id| seen.insert(*id)).collect();
    let keys = unique.iter().map(|id| redis_key(*id)).collect();
    (unique, keys)
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
