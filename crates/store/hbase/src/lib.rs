//! HBase record store over the Thrift (v1) API, and the in-memory HBase Thrift test server.
//!
//! Layout: [`HbaseStore`] (in `store`) is the read-path tier and projector
//! writer: one `getRowsWithColumns` per batch, cell timestamp = record
//! version; it also implements [`pricing_store::Inspect`] for the
//! reconciler (cells with their timestamps, a walk over the table with a
//! scanner per step). `client` is its pool of synchronous Thrift connections run on
//! `spawn_blocking`, with timeouts and error mapping to `StoreError` kinds.
//! [`HbaseConfig`] says how to reach one cluster. `server`, behind the
//! `testsuite` feature (test support, off in production builds), is the test
//! server speaking HBase's Thrift wire protocol over data in memory: Apache
//! HBase cannot be installed on the project's machines, so every HBase path
//! is tested against it (also as the `hbase-thrift-test-server` binary).
#![forbid(unsafe_code)]

mod client;
mod config;
mod inspect;
#[cfg(feature = "testsuite")]
pub mod server;
mod store;

pub use config::{ConfigError, HbaseConfig};
#[cfg(feature = "testsuite")]
pub use server::{HbaseTestServer, ServerConfig};
pub use store::HbaseStore;

/// The Thrift transport under the binary protocol. Server and client must
/// agree, as with HBase (`hbase.regionserver.thrift.framed`, off by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Transport {
    /// Unframed, buffered: HBase's default.
    #[default]
    Buffered,
    /// Each message prefixed by its length (TFramedTransport).
    Framed,
}
