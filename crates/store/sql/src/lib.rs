//! The SQL source of truth: the catalogue schema for MariaDB and SQLite, its versioned writer, and goods records read from it.
//!
//! Layout: `migrations/{mysql,sqlite}` hold the schema, one directory per
//! backend with the same meaning, embedded with `sqlx::migrate!` and applied
//! on connect ([`db`]: URL to backend, pool, deadlines). [`catalog`] is the
//! writer: every change in one transaction, stamped with the next value of a
//! global version counter on the changed row and on its goods row, so the
//! record version is `goods.version`. [`SqlStore`] ([`store`]) builds
//! [`pricing_record::GoodsRecord`]s for a batch of ids in one query and
//! implements [`pricing_store::RecordStore`]; rows that cannot become a valid
//! record are a counted miss. [`promotion`] loads cart promotions and
//! coupons for the checkout, [`feed`] gives the projector its full and
//! incremental change feeds, [`demo`] seeds the demo catalogue of the
//! embedded default. [`projector`] holds the projector's cursors, retry
//! queue, purge and re-versioning. [`error`] holds the typed errors.
//!
//! Both backends go through one `sqlx::AnyPool` code path (see [`db`] for why).
#![forbid(unsafe_code)]
#![deny(clippy::float_arithmetic)]

pub mod catalog;
mod convert;
pub mod db;
pub mod demo;
pub mod error;
pub mod feed;
pub mod projector;
pub mod promotion;
pub mod source;
pub mod store;

pub use catalog::{Catalog, GoodsRow};
pub use db::{Backend, SqlOptions};
pub use demo::{DemoOptions, SeedReport};
pub use error::{RowError, SqlError, SqlErrorKind};
pub use promotion::{PromotionKind, PromotionRow, PromotionStatus, PromotionTier, ScopeKind};
pub use store::SqlStore;
