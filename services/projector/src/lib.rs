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
//! store crates' raw reads (`pricing_store::Inspect`), and repairs.
//! [`progress`] reports a full sync. [`rehearse`] holds the price guard's
//! report over the source and the sale-day rehearsal (the whole catalogue
//! priced at a future instant). The cursors, queue and purge statements live in
//! `pricing_store_sql::projector`, next to the schema they touch.
//!
//! With `[control] file`, the servers' live control file steers the
//! projector too ([`Projector::follow`]): `[projector.redis] write` and
//! `[projector.hbase] write` set each pair's write mode (pushed into the
//! pair's live settings, read by every batch's dual write), and
//! `[projector] paused` stops the incremental loop at its next batch with
//! the watermark held.
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
pub mod reconcile;
pub mod rehearse;
pub mod sync;
pub mod targets;
pub mod writer;

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use pricing_control::Switchboard;
use pricing_record::{Clock, UnixMillis};
use pricing_store_sql::{SqlOptions, SqlStore};

pub use config::ProjectorConfig;
pub use error::{ConfigError, ErrorKind, ProjectorError};
pub use progress::Progress;
pub use purge::PurgeReport;
pub use reconcile::{Difference, ReconcileOptions, ReconcileReport, StoreDifferences};
pub use rehearse::{PriceChange, Rehearsal};
pub use sync::{DrainReport, SyncReport};
pub use targets::Targets;
pub use writer::{BatchOutcome, Landing, Scope, TargetCounts};

/// The push-invalidation announcer the config asks for (a config that
/// passed validation only fails here outside a runtime: logged, and the
/// servers fall back to their cache lifetime).
fn announcer(config: &ProjectorConfig) -> Option<pricing_store_pairs::Announcer> {
    let redis = config.redis.as_ref()?;
    match pricing_store_pairs::announcer(targets::REDIS, redis, &config.invalidation) {
        Ok(announcer) => announcer,
        Err(error) => {
            tracing::error!(%error, "no push invalidation: servers see changes after their cache lifetime");
            None
        }
    }
}

/// The source, the clusters and the settings: every subcommand is a method.
pub struct Projector {
    source: SqlStore,
    targets: Targets,
    config: ProjectorConfig,
    /// The live control file, when one steers this projector.
    control: Option<Switchboard>,
    /// The pause state last reported: 0 none yet, 1 running, 2 paused.
    paused_seen: AtomicU8,
    /// "Now": queue times, cursors, purge cutoffs, and the source's stamps.
    clock: Clock,
    /// Announces written goods to the servers' caches (push invalidation),
    /// on both clusters of the Redis pair; `None` without one or when off.
    announcer: Option<pricing_store_pairs::Announcer>,
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
        // The control file first: a bad one stops the projector before it
        // writes anything, as it stops a server from starting.
        let board = match &config.control.file {
            Some(path) => Some(
                Switchboard::open(Some(path.as_path()), Duration::from_millis(config.control.poll_ms))
                    .map_err(ConfigError::from)?,
            ),
            None => None,
        };
        let source = SqlStore::connect_with(&config.source.database_url, options).await?;
        let targets = Targets::connect(&config).await?;
        let projector = Projector::new(source, targets, config);
        Ok(match board {
            Some(board) => projector.follow(board),
            None => projector,
        })
    }

    pub fn new(source: SqlStore, targets: Targets, config: ProjectorConfig) -> Projector {
        let announcer = announcer(&config);
        Projector {
            source,
            targets,
            config,
            control: None,
            paused_seen: AtomicU8::new(0),
            clock: Clock::system(),
            announcer,
        }
    }

    /// The same projector reading "now" from `clock` (its source database's
    /// writer too). The default is the system clock.
    pub fn with_clock(mut self, clock: Clock) -> Projector {
        self.source = self.source.with_clock(clock.clone());
        self.clock = clock;
        self
    }

    /// Milliseconds since the Unix epoch, by this projector's clock.
    pub fn now_ms(&self) -> UnixMillis {
        self.clock.now_ms()
    }

    /// Makes the pairs' write modes and the pause follow a switch board
    /// (`[projector]` of the control file). The pairs keep their own
    /// timeouts and breakers.
    pub fn follow(mut self, board: Switchboard) -> Projector {
        for target in &self.targets.pairs {
            board.bind_projector_pair(target.pair.id, target.pair.settings.clone());
        }
        self.control = Some(board);
        self
    }

    /// The switch board steering this projector, if any.
    pub fn control(&self) -> Option<&Switchboard> {
        self.control.as_ref()
    }

    /// Whether the control file pauses the projector now. Each change seen
    /// is logged once and sets the gauge `pricing_projector_paused` (1 paused).
    pub fn paused(&self) -> bool {
        let paused = self.control.as_ref().is_some_and(Switchboard::projector_paused);
        let state = if paused { 2 } else { 1 };
        let before = self.paused_seen.swap(state, Ordering::Relaxed);
        if before != state {
            metrics::gauge!("pricing_projector_paused").set(if paused { 1.0 } else { 0.0 });
            if paused {
                tracing::warn!("projector paused by the control file: no writes, watermark and retry queue held");
            } else if before == 2 {
                tracing::info!("projector resumed by the control file");
            }
        }
        paused
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
