//! Stored bytes as they are, for the reconciler.
//!
//! The read path's `RecordStore::fetch` turns corrupt bytes into a miss (as
//! it must); the reconciler has to tell "missing" from "corrupt", and needs
//! what stands in the way of a versioned repair (the version in a Redis
//! value's header, an HBase cell's timestamp). So it reads the raw values
//! with its own small clients, built from the same cluster configs.
//! Keys and row keys come from `pricing_record::keys`, never spelled here.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use hbase_thrift::hbase::{HbaseSyncClient, THbaseSyncClient, TRowResult};
use pricing_record::GoodsId;
use pricing_record::keys::{HBASE_COLUMN, goods_id_from_row_key, hbase_row_key, redis_key};
use pricing_store::{StoreError, StoreErrorKind};
use pricing_store_hbase::{HbaseConfig, Transport};
use pricing_store_redis::RedisConfig;
use thrift::protocol::{TBinaryInputProtocol, TBinaryOutputProtocol};
use thrift::transport::{TBufferedReadTransport, TBufferedWriteTransport, TFramedReadTransport, TFramedWriteTransport};

/// One stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    pub bytes: Vec<u8>,
    /// HBase: the cell timestamp (the version a put must exceed). Redis: none
    /// (the version guard reads it from the value's header).
    pub cell_timestamp: Option<i64>,
}

/// Raw reads of one cluster.
#[async_trait]
pub trait RawReader: Send + Sync {
    /// The values held for `ids` (absent ids are absent).
    async fn get(&self, ids: &[GoodsId]) -> Result<Vec<(GoodsId, RawEntry)>, StoreError>;

    /// One step of a walk over every goods id the cluster holds: the ids
    /// found and the next cursor (0 = done). `None`: this cluster cannot
    /// be walked (HBase's Thrift test server has no scanners; a Redis
    /// Cluster would need one walk per node).
    async fn scan(&self, cursor: u64, count: u32) -> Option<Result<(u64, Vec<GoodsId>), StoreError>>;
}

/// The goods id of a Redis key, if it is one of ours (checked by rebuilding
/// the key, so the key format lives only in `keys::redis_key`).
pub fn goods_id_from_redis_key(key: &str) -> Option<GoodsId> {
    let digits = key.rsplit(|c: char| !c.is_ascii_digit()).next()?;
    let id: GoodsId = digits.parse().ok()?;
    (redis_key(id) == key).then_some(id)
}

enum RedisConn {
    Standalone(redis::aio::ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

/// Raw reads of one Redis server or Cluster.
pub struct RedisRaw {
    name: String,
    conn: tokio::sync::OnceCell<RedisConn>,
    config: RedisConfig,
}

impl RedisRaw {
    pub fn new(config: RedisConfig) -> RedisRaw {
        RedisRaw { name: config.name.clone(), conn: tokio::sync::OnceCell::new(), config }
    }

    fn error(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::new(&self.name, StoreErrorKind::Unavailable, e)
    }

    async fn conn(&self) -> Result<&RedisConn, StoreError> {
        self.conn
            .get_or_try_init(|| async {
                let deadline = self.config.call_deadline();
                let made = async {
                    if self.config.cluster {
                        let client =
                            redis::cluster::ClusterClientBuilder::new(self.config.urls.iter().map(String::as_str))
                                .connection_timeout(self.config.connect_timeout)
                                .response_timeout(self.config.response_timeout)
                                .build()?;
                        Ok::<_, redis::RedisError>(RedisConn::Cluster(client.get_async_connection().await?))
                    } else {
                        let client =
                            redis::Client::open(self.config.urls.first().map(String::as_str).unwrap_or_default())?;
                        let manager_config = redis::aio::ConnectionManagerConfig::new()
                            .set_connection_timeout(Some(self.config.connect_timeout))
                            .set_response_timeout(Some(self.config.response_timeout))
                            .set_number_of_retries(0);
                        Ok(RedisConn::Standalone(
                            redis::aio::ConnectionManager::new_with_config(client, manager_config).await?,
                        ))
                    }
                };
                match tokio::time::timeout(deadline, made).await {
                    Ok(Ok(conn)) => Ok(conn),
                    Ok(Err(e)) => Err(self.error(e)),
                    Err(_) => Err(StoreError::timeout(&self.name)),
                }
            })
            .await
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, StoreError> {
        let conn = self.conn().await?;
        let work = async {
            match conn {
                RedisConn::Standalone(c) => cmd.query_async(&mut c.clone()).await,
                RedisConn::Cluster(c) => cmd.query_async(&mut c.clone()).await,
            }
        };
        match tokio::time::timeout(self.config.call_deadline(), work).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.error(e)),
            Err(_) => Err(StoreError::timeout(&self.name)),
        }
    }
}

#[async_trait]
impl RawReader for RedisRaw {
    async fn get(&self, ids: &[GoodsId]) -> Result<Vec<(GoodsId, RawEntry)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| redis_key(*id)).collect();
        let mut cmd = redis::cmd("MGET");
        cmd.arg(&keys);
        let values: Vec<Option<Vec<u8>>> = self.query(cmd).await?;
        Ok(ids
            .iter()
            .zip(values)
            .filter_map(|(id, v)| v.map(|bytes| (*id, RawEntry { bytes, cell_timestamp: None })))
            .collect())
    }

    async fn scan(&self, cursor: u64, count: u32) -> Option<Result<(u64, Vec<GoodsId>), StoreError>> {
        if self.config.cluster {
            return None;
        }
        let pattern = redis_key(0).trim_end_matches('0').to_owned() + "*";
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(count);
        Some(
            self.query::<(u64, Vec<String>)>(cmd)
                .await
                .map(|(next, keys)| (next, keys.iter().filter_map(|k| goods_id_from_redis_key(k)).collect())),
        )
    }
}

type Client = HbaseSyncClient<TBinaryInputProtocol<Box<dyn Read + Send>>, TBinaryOutputProtocol<Box<dyn Write + Send>>>;

/// Raw reads of one HBase cluster over Thrift: one connection, kept between
/// calls and dropped after any error. The reconciler reads in pages, one
/// call at a time, so a pool would buy nothing.
pub struct HbaseRaw {
    config: HbaseConfig,
    client: Arc<Mutex<Option<Client>>>,
}

impl HbaseRaw {
    pub fn new(config: HbaseConfig) -> HbaseRaw {
        HbaseRaw { config, client: Arc::new(Mutex::new(None)) }
    }
}

fn connect(config: &HbaseConfig) -> std::io::Result<Client> {
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for address in &config.addresses {
        for addr in address.to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, config.connect_timeout) {
                Ok(stream) => {
                    stream.set_read_timeout(Some(config.call_timeout))?;
                    stream.set_write_timeout(Some(config.call_timeout))?;
                    stream.set_nodelay(true)?;
                    let read = stream.try_clone()?;
                    let (input, output): (Box<dyn Read + Send>, Box<dyn Write + Send>) = match config.transport {
                        Transport::Buffered => (
                            Box::new(TBufferedReadTransport::new(read)),
                            Box::new(TBufferedWriteTransport::new(stream)),
                        ),
                        Transport::Framed => {
                            (Box::new(TFramedReadTransport::new(read)), Box::new(TFramedWriteTransport::new(stream)))
                        }
                    };
                    return Ok(HbaseSyncClient::new(
                        TBinaryInputProtocol::new(input, true),
                        TBinaryOutputProtocol::new(output, true),
                    ));
                }
                Err(e) => last = e,
            }
        }
    }
    Err(last)
}

/// The record cell of a returned row: (timestamp, value).
fn record_cell(row: TRowResult, column: &[u8]) -> Option<(i64, Vec<u8>)> {
    if let Some(mut columns) = row.columns
        && let Some(cell) = columns.remove(column)
    {
        return Some((cell.timestamp.unwrap_or(0), cell.value?));
    }
    row.sorted_columns?
        .into_iter()
        .find(|c| c.column_name.as_deref() == Some(column))
        .and_then(|c| c.cell)
        .and_then(|cell| Some((cell.timestamp.unwrap_or(0), cell.value?)))
}

#[async_trait]
impl RawReader for HbaseRaw {
    async fn get(&self, ids: &[GoodsId]) -> Result<Vec<(GoodsId, RawEntry)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<Vec<u8>> = ids.iter().map(|id| hbase_row_key(*id)).collect();
        let (config, slot) = (self.config.clone(), Arc::clone(&self.client));
        let name = self.config.name.clone();
        let work = tokio::task::spawn_blocking(move || -> Result<Vec<TRowResult>, String> {
            let mut guard = slot.lock().map_err(|_| "client lock poisoned".to_owned())?;
            if guard.is_none() {
                *guard = Some(connect(&config).map_err(|e| format!("connect: {e}"))?);
            }
            let client = guard.as_mut().ok_or_else(|| "no client after connect".to_owned())?;
            let result = client.get_rows_with_columns(
                config.table.clone().into_bytes(),
                rows,
                vec![HBASE_COLUMN.as_bytes().to_vec()],
                BTreeMap::new(),
            );
            result.map_err(|e| {
                *guard = None;
                e.to_string()
            })
        });
        let deadline = self.config.call_timeout + self.config.connect_timeout + Duration::from_millis(100);
        let rows = match tokio::time::timeout(deadline, work).await {
            Ok(Ok(Ok(rows))) => rows,
            Ok(Ok(Err(message))) => return Err(StoreError::unavailable(&name, message)),
            Ok(Err(join)) => return Err(StoreError::unavailable(&name, join)),
            Err(_) => return Err(StoreError::timeout(&name)),
        };
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let Some(id) = row.row.as_deref().and_then(goods_id_from_row_key) else { continue };
            if let Some((timestamp, bytes)) = record_cell(row, HBASE_COLUMN.as_bytes()) {
                out.push((id, RawEntry { bytes, cell_timestamp: Some(timestamp) }));
            }
        }
        Ok(out)
    }

    async fn scan(&self, _cursor: u64, _count: u32) -> Option<Result<(u64, Vec<GoodsId>), StoreError>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_keys_parse_back_to_their_goods_only() {
        assert_eq!(goods_id_from_redis_key(&redis_key(12345)), Some(12345));
        assert_eq!(goods_id_from_redis_key(&redis_key(0)), Some(0));
        assert_eq!(goods_id_from_redis_key("other:12345"), None);
        assert_eq!(goods_id_from_redis_key(&format!("{}x", redis_key(7))), None);
        assert_eq!(goods_id_from_redis_key(""), None);
    }
}
