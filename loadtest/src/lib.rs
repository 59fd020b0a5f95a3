//! pricing-loadtest: drive the pricing servers with realistic traffic and count what comes back.
//!
//! Layout: [`scenario`] is the checked TOML scenario (mode, rate, mix, key
//! skew, bounds) with the overrides the command line applies; [`target`]
//! refuses any address off this machine; [`keys`] draws goods ids from the
//! demo catalogue with a zipf skew (hot goods, as on a sale day); [`requests`]
//! builds one request of each RPC; [`schedule`] is the open-loop arithmetic
//! (when call `i` was meant to be sent); [`stats`] counts gRPC status codes
//! and keeps hdrhistogram latencies overall, per RPC and per second;
//! [`driver`] runs the workers over several HTTP/2 connections until the
//! count or the duration is reached; [`report`] writes the summary in ghz's
//! JSON layout and as a table; [`plot`] draws the SVGs; [`ghz_data`] writes
//! the request data files the ghz configs use; [`freshness`] is the probe
//! that times a committed price change to the first list and detail answer
//! showing it (binary `pricing-freshness`).
#![forbid(unsafe_code)]

pub mod driver;
pub mod freshness;
pub mod ghz_data;
pub mod keys;
pub mod plot;
pub mod progress;
pub mod report;
pub mod requests;
pub mod scenario;
pub mod schedule;
pub mod stats;
pub mod target;

pub use driver::{LoadError, RunReport, run};
pub use keys::GoodsPool;
pub use scenario::{Mode, Scenario, ScenarioError};
