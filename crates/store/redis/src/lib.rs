//! Redis record store: one MGET per batch, versioned writes checked on the server.
//!
//! Layout: [`RedisStore`] (in `store`) implements [`pricing_store::RecordStore`]
//! and [`pricing_store::RecordWriter`] over either one standalone server (a
//! reconnecting multiplexed connection) or a Redis Cluster (`cluster`: slot
//! routing of our own over one multiplexed connection per node, a topology
//! refreshed in the background, one pipeline per node per batch, writes
//! retried through failovers), chosen by [`RedisConfig::cluster`]; [`config`] holds the settings
//! and their validation; [`script`] holds the Lua version guard that makes
//! versions only move forward, atomically on the server. The store also
//! implements [`pricing_store::Inspect`] (`inspect`: values as stored with
//! their header's version; a `SCAN` walk, on a Cluster one per master) for
//! the reconciler.
//!
//! Keys are [`pricing_record::keys::redis_key`]; values are the record codec's
//! bytes ([`pricing_record::encode`]). A value that does not decode for its
//! goods id is a miss counted by [`pricing_store::count_corrupt`], never an
//! error. Every call is bounded by [`RedisConfig::call_deadline`]: a frozen
//! server becomes `Timeout`, a refused or dropped connection `Unavailable`.
//!
//! Metrics (label `store` = the configured name, `op` = fetch | put | remove | inspect | walk):
//! `pricing_store_requests_total{store,op}`,
//! `pricing_store_errors_total{store,op,kind}` (kind = timeout | unavailable | protocol | cancelled),
//! `pricing_store_latency_seconds{store,op}` (histogram),
//! `pricing_store_keys_requested_total{store}`, `pricing_store_keys_found_total{store}`,
//! `pricing_store_writes_total{store,outcome}` (outcome = written | skipped_older),
//! and `pricing_store_corrupt_total{store}` from `pricing-store`; on a Cluster
//! also `pricing_redis_topology_refresh_total{store,outcome}`,
//! `pricing_redis_topology_changes_total{store}`,
//! `pricing_redis_redirects_total{store,kind}` (kind = redirect | tryagain) and
//! `pricing_redis_write_retries_total{store}`.
#![forbid(unsafe_code)]

mod cluster;
pub mod config;
mod inspect;
pub mod invalidate;
pub mod script;
mod store;

pub use config::{ConfigError, RedisConfig};
pub use invalidate::{Announcer, SubscribeSettings, Subscription, subscribe};
pub use store::RedisStore;
