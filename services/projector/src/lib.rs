//! The projector and reconciler: goods records from MySQL into the dual Redis and dual HBase clusters, kept right.
//!
//! Layout: [`config`] is the TOML file (source, `[redis]` / `[hbase]` pairs,
//! paging, retry, purge), validated in one place. [`targets`] builds the
//! four clusters (two per pair) from it. [`writer`] is seed 001's write
//! control: both clusters of a pair through its `DualWriter` and live write
//! mode (or one named cluster for a recovery), in-process retries with
//! backoff, then the durable retry queue in the source database, a failure
//! metric and an error log line. [`sync`] holds the three loads of seed 001
//! (full and resumable, incremental behind a watermark with an overlap
//! window, named goods) and the drain of the retry queue. [`purge`] deletes
//! old soft-deleted rows once their tombstones are everywhere. [`reconcile`]
//! compares the source with each cluster (seed 004 section 3.1) using the
//! raw reads of [`raw`], and repairs. [`progress`] reports a full sync.
//! The cursors, queue and purge statements live in
//! `pricing_store_sql::projector`, next to the schema they touch.
//!
//! Every write carries the record's version: Redis keeps only newer ones
//! (a Lua guard on the server), HBase uses the version as the cell
//! timestamp, and deleted goods are written as tombstones with theirs. So
//! re-running any part of a sync, in any order, never moves a store back.
#![forbid(unsafe_code)]

pub mod config;
pub mod error;
pub mod progress;
pub mod purge;
pub mod raw;
pub mod reconcile;
pub mod sync;
pub mod targets;
pub mod writer;

use std::time::Duration;

use pricing_store_sql::{SqlOptions, SqlStore};

pub use config::ProjectorConfig;
pub use error::{ConfigError, ErrorKind, ProjectorError};
pub use progress::Progress;
pub use purge::PurgeReport;
pub use reconcile::{Difference, ReconcileOptions, ReconcileReport, StoreDifferences};
pub use sync::{DrainReport, SyncReport};
pub use targets::Targets;
pub use writer::{BatchOutcome, Landing, Scope, TargetCounts};

/// The source, the clusters and the settings: every subcommand is a method.
pub struct Projector {
    source: SqlStore,
    targets: Targets,
    config: ProjectorConfig,
}

impl Projector {
    /// Opens the source database (applying migrations) and builds the pairs.
    pub async fn connect(config: ProjectorConfig) -> Result<Projector, ProjectorError> {
        config.validate()?;
        let options = SqlOptions {
            name: "sql".into(),
            max_connections: config.source.max_connections,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_millis(config.source.statement_timeout_ms),
        };
        let source = SqlStore::connect_with(&config.source.database_url, options).await?;
        let targets = Targets::connect(&config).await?;
        Ok(Projector::new(source, targets, config))
    }

    pub fn new(source: SqlStore, targets: Targets, config: ProjectorConfig) -> Projector {
        Projector { source, targets, config }
    }

    pub fn source(&self) -> &SqlStore {
        &self.source
    }

    pub fn targets(&self) -> &Targets {
        &self.targets
    }

    pub fn config(&self) -> &ProjectorConfig {
        &self.config
    }

    /// A scope from `--only` names, checked against the configured clusters.
    pub fn scope(&self, only: Vec<String>) -> Result<Scope, ProjectorError> {
        self.targets.check_names(&only)?;
        Ok(Scope::from_names(only))
    }
}
