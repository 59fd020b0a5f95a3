//! How an [`HbaseStore`](crate::HbaseStore) reaches one HBase cluster's Thrift servers.

use std::time::Duration;

use crate::Transport;

/// One HBase cluster ("hbase-a"). Validated by [`HbaseConfig::validate`]
/// when the store is built; no I/O happens until the first call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HbaseConfig {
    /// Store name for metrics, logs and errors ("hbase-a").
    pub name: String,
    /// `host:port` of the cluster's Thrift servers (HBase's default port is
    /// 9090). New connections go round-robin over them and fail over to the
    /// next one when a server refuses.
    pub addresses: Vec<String>,
    /// Must match the Thrift servers' `hbase.regionserver.thrift.framed`.
    pub transport: Transport,
    /// Connections kept and calls in flight at most: the Thrift client is
    /// synchronous, so each call holds one connection and one blocking thread.
    pub pool_size: usize,
    /// Bound on opening one TCP connection.
    pub connect_timeout: Duration,
    /// Bound on one whole call: waiting for a connection, connecting, and the
    /// round trips. Also the socket read/write timeout, so a blocking thread
    /// stuck on a silent server frees itself about when the caller gives up.
    pub call_timeout: Duration,
    /// Table holding the records; `keys::HBASE_TABLE` unless a test or a
    /// migration says otherwise.
    pub table: String,
}

/// A config that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("hbase store {0}: no thrift server address")]
    NoAddress(String),
    #[error("hbase store {0}: pool size must be at least 1")]
    ZeroPool(String),
    #[error("hbase store {0}: timeouts must be above zero")]
    ZeroTimeout(String),
    #[error("hbase store {0}: table name is empty")]
    NoTable(String),
    #[error("hbase store {name}: address {address:?} is not host:port")]
    BadAddress { name: String, address: String },
}

impl HbaseConfig {
    /// Defaults: buffered transport (HBase's default), 8 connections,
    /// 200 ms to connect, 500 ms per call, table `pricing_goods`.
    pub fn new(name: impl Into<String>, addresses: impl IntoIterator<Item = impl Into<String>>) -> HbaseConfig {
        HbaseConfig {
            name: name.into(),
            addresses: addresses.into_iter().map(Into::into).collect(),
            transport: Transport::Buffered,
            pool_size: 8,
            connect_timeout: Duration::from_millis(200),
            call_timeout: Duration::from_millis(500),
            table: pricing_record::keys::HBASE_TABLE.to_owned(),
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let name = || self.name.clone();
        if self.addresses.is_empty() {
            return Err(ConfigError::NoAddress(name()));
        }
        for address in &self.addresses {
            let ok =
                address.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !ok {
                return Err(ConfigError::BadAddress { name: name(), address: address.clone() });
            }
        }
        if self.pool_size == 0 {
            return Err(ConfigError::ZeroPool(name()));
        }
        if self.connect_timeout.is_zero() || self.call_timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout(name()));
        }
        if self.table.is_empty() {
            return Err(ConfigError::NoTable(name()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_fault() {
        assert_eq!(HbaseConfig::new("h", ["127.0.0.1:9090"]).validate(), Ok(()));
        assert_eq!(HbaseConfig::new("h", Vec::<String>::new()).validate(), Err(ConfigError::NoAddress("h".into())));
        assert!(matches!(HbaseConfig::new("h", ["localhost"]).validate(), Err(ConfigError::BadAddress { .. })));
        let mut c = HbaseConfig::new("h", ["localhost:9090"]);
        c.pool_size = 0;
        assert_eq!(c.validate(), Err(ConfigError::ZeroPool("h".into())));
        let mut c = HbaseConfig::new("h", ["localhost:9090"]);
        c.call_timeout = Duration::ZERO;
        assert_eq!(c.validate(), Err(ConfigError::ZeroTimeout("h".into())));
    }
}
