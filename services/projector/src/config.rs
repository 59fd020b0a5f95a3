//! The projector's config file (TOML): where the source is, the store pairs,
//! and how syncing, retrying and purging behave. Validated in one place.

use std::path::Path;
use std::time::Duration;

use pricing_store_pairs::{HbasePairConfig, RedisPairConfig};
use serde::Deserialize;

use crate::error::ConfigError;

/// Most goods one page may hold: the SQL store's IN-list bound, so that a
/// page is one query.
pub const MAX_PAGE: u32 = 1_000;

/// The whole file. Only `version` and `[source]` are required, plus at
/// least one of `[redis]` and `[hbase]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectorConfig {
    /// File format version; only 1 exists.
    pub version: u32,
    pub source: SourceConfig,
    /// The Redis pair (clusters `redis-a`, `redis-b`); absent: no Redis.
    #[serde(default)]
    pub redis: Option<RedisPairConfig>,
    /// The HBase pair (clusters `hbase-a`, `hbase-b`); absent: no HBase.
    #[serde(default)]
    pub hbase: Option<HbasePairConfig>,
    #[serde(default)]
    pub sync: SyncConfig,
    #[serde(default)]
    pub retry: RetryConfig,
    #[serde(default)]
    pub purge: PurgeConfig,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// The live control file the servers read: its `[projector]` section
    /// sets the write mode per pair and pauses the incremental loop.
    #[serde(default)]
    pub control: ControlFileConfig,
    /// Push invalidation: after writing, announce the changed goods on both
    /// clusters of the `[redis]` pair (on unless `enabled = false`).
    #[serde(default)]
    pub invalidation: pricing_store_pairs::InvalidationConfig,
}

/// Where the live control file is (the servers' ConfigMap, mounted here too).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlFileConfig {
    /// The control file; absent: the write modes of `[redis.settings]` and
    /// `[hbase.settings]` stay, and nothing pauses the projector.
    pub file: Option<std::path::PathBuf>,
    /// How often the file is re-read (by content hash).
    pub poll_ms: u64,
}

impl Default for ControlFileConfig {
    fn default() -> Self {
        ControlFileConfig { file: None, poll_ms: 1_000 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// `mysql://user:password@host:3306/db` (or `sqlite://...` for trying it out).
    pub database_url: String,
    #[serde(default = "default_connections")]
    pub max_connections: u32,
    /// Bound on one read: a full page of records is one statement, and the
    /// projector is not on a user's path, so this is far above the servers' 1 s.
    #[serde(default = "default_statement_ms")]
    pub statement_timeout_ms: u64,
}

fn default_connections() -> u32 {
    8
}
fn default_statement_ms() -> u64 {
    10_000
}

/// Paging and the incremental loop.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// Goods per page (one SQL query, one write batch per cluster), 1..=1000.
    pub page_size: u32,
    /// Pages in flight at once in a full sync (reading the next pages while
    /// earlier ones are written); the cursor still moves in page order.
    pub concurrency: usize,
    /// Pause between incremental passes. 100 ms by default: a pass that
    /// finds nothing is four indexed queries (about a millisecond of the
    /// database's time), and a change waits on average half the interval
    /// before it is seen (issue 16 measured this against following the
    /// binlog: services/projector/README.md).
    pub poll_interval_ms: u64,
    /// Each incremental pass starts this far behind the watermark, so that a
    /// change stamped earlier than one already seen (a writer outside the
    /// catalogue's clock, clock steps) is still picked up. Re-writing is
    /// harmless: writes are versioned.
    pub overlap_ms: u64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig { page_size: 500, concurrency: 4, poll_interval_ms: 100, overlap_ms: 5_000 }
    }
}

/// Seed 001's "retry, then alert": a failed write is tried again in process
/// a few times with a growing pause, then queued durably.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Further tries in process after the first failure (0 = queue at once).
    pub attempts: u32,
    /// Pause before the first retry; doubled each time up to `max_backoff_ms`.
    pub backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// Wait before a queued write is first tried again by the drain; doubled
    /// with each failed drain attempt up to `queue_max_backoff_ms`.
    pub queue_backoff_ms: u64,
    pub queue_max_backoff_ms: u64,
    /// Most queued writes one drain handles (each incremental pass drains once).
    pub drain_limit: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            attempts: 3,
            backoff_ms: 100,
            max_backoff_ms: 2_000,
            queue_backoff_ms: 5_000,
            queue_max_backoff_ms: 600_000,
            drain_limit: 10_000,
        }
    }
}

impl RetryConfig {
    /// Pause before in-process retry number `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        Duration::from_millis(doubled(self.backoff_ms, attempt, self.max_backoff_ms))
    }

    /// Wait before the next drain attempt of a write that failed `attempts` times in the queue.
    pub fn queue_backoff(&self, attempts: u32) -> Duration {
        Duration::from_millis(doubled(self.queue_backoff_ms, attempts, self.queue_max_backoff_ms))
    }
}

/// `base * 2^(n-1)`, at most `max`, without overflow.
fn doubled(base: u64, n: u32, max: u64) -> u64 {
    let shift = n.saturating_sub(1).min(32);
    base.saturating_mul(1u64 << shift).min(max.max(base))
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PurgeConfig {
    /// Rows soft-deleted longer ago than this are deleted physically (seed 001: 15 days).
    pub days: u32,
}

impl Default for PurgeConfig {
    fn default() -> Self {
        PurgeConfig { days: 15 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Log filter (env-filter syntax).
    pub log: String,
    /// Where `GET /metrics` answers while the projector runs; absent: nowhere
    /// (a one-shot CronJob run is better served by its exit code and logs).
    pub metrics_listen: Option<std::net::SocketAddr>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig { log: "info".into(), metrics_listen: None }
    }
}

impl ProjectorConfig {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<ProjectorConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Read { path: path.display().to_string(), message: e.to_string() })?;
        ProjectorConfig::parse(&text)
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<ProjectorConfig, ConfigError> {
        let config: ProjectorConfig = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Every check of the file, in one place.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field: &'static str, reason: String| Err(ConfigError::Invalid { field, reason });
        if self.version != 1 {
            return invalid("version", format!("{} is not a known version (1)", self.version));
        }
        if self.source.database_url.trim().is_empty() {
            return invalid("source.database_url", "is empty".into());
        }
        if self.source.max_connections == 0 {
            return invalid("source.max_connections", "must be at least 1".into());
        }
        if self.source.statement_timeout_ms == 0 {
            return invalid("source.statement_timeout_ms", "must be above zero".into());
        }
        if self.redis.is_none() && self.hbase.is_none() {
            return invalid("redis", "no [redis] and no [hbase] section: nothing to project into".into());
        }
        if let Some(redis) = &self.redis {
            redis
                .settings
                .validate()
                .map_err(|e| ConfigError::Invalid { field: "redis.settings", reason: e.to_string() })?;
        }
        if let Some(hbase) = &self.hbase {
            hbase
                .settings
                .validate()
                .map_err(|e| ConfigError::Invalid { field: "hbase.settings", reason: e.to_string() })?;
        }
        if self.sync.page_size == 0 || self.sync.page_size > MAX_PAGE {
            return invalid("sync.page_size", format!("{} is not within 1..={MAX_PAGE}", self.sync.page_size));
        }
        if self.sync.concurrency == 0 || self.sync.concurrency > 64 {
            return invalid("sync.concurrency", format!("{} is not within 1..=64", self.sync.concurrency));
        }
        if self.sync.poll_interval_ms == 0 {
            return invalid("sync.poll_interval_ms", "must be above zero".into());
        }
        if self.retry.attempts > 20 {
            return invalid("retry.attempts", format!("{} is above 20", self.retry.attempts));
        }
        if self.retry.max_backoff_ms < self.retry.backoff_ms {
            return invalid("retry.max_backoff_ms", "is below retry.backoff_ms".into());
        }
        if self.retry.queue_max_backoff_ms < self.retry.queue_backoff_ms {
            return invalid("retry.queue_max_backoff_ms", "is below retry.queue_backoff_ms".into());
        }
        if self.retry.drain_limit == 0 {
            return invalid("retry.drain_limit", "must be at least 1".into());
        }
        if self.control.poll_ms == 0 {
            return invalid("control.poll_ms", "must be above zero".into());
        }
        self.invalidation.validate().map_err(|reason| ConfigError::Invalid { field: "invalidation", reason })?;
        if self.purge.days == 0 {
            return invalid("purge.days", "must be at least 1: a purge must never race the projection".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        version = 1
        [source]
        database_url = "mysql://root@127.0.0.1:3306/pricing"
        [redis]
        a = { urls = ["redis://127.0.0.1:7001/"] }
        b = { urls = ["redis://127.0.0.1:7002/"] }
    "#;

    #[test]
    fn a_minimal_file_takes_the_defaults() {
        let config = ProjectorConfig::parse(MINIMAL).unwrap();
        assert_eq!(config.sync, SyncConfig::default());
        assert_eq!(config.purge.days, 15);
        assert!(config.hbase.is_none());
        assert_eq!(config.source.max_connections, 8);
        assert_eq!(config.control, ControlFileConfig::default());
    }

    #[test]
    fn a_full_file_parses() {
        let text = r#"
            version = 1
            [source]
            database_url = "mysql://root@127.0.0.1:3306/pricing"
            statement_timeout_ms = 3000
            [redis]
            a = { urls = ["redis://127.0.0.1:7001/"] }
            b = { urls = ["redis://127.0.0.1:7002/"] }
            [redis.settings]
            write = "only_a"
            [hbase]
            a = { addresses = ["127.0.0.1:9090"] }
            b = { addresses = ["127.0.0.1:9091"], framed = true }
            [sync]
            page_size = 1000
            concurrency = 2
            poll_interval_ms = 500
            overlap_ms = 0
            [retry]
            attempts = 0
            backoff_ms = 0
            max_backoff_ms = 0
            queue_backoff_ms = 0
            queue_max_backoff_ms = 0
            [purge]
            days = 30
            [telemetry]
            log = "debug"
            metrics_listen = "127.0.0.1:9465"
            [control]
            file = "/etc/pricing/control/control.toml"
            poll_ms = 500
        "#;
        let config = ProjectorConfig::parse(text).unwrap();
        assert_eq!(config.redis.unwrap().settings.write, pricing_store::WriteMode::OnlyA);
        assert_eq!(config.sync.page_size, 1000);
        assert_eq!(config.purge.days, 30);
        assert!(config.telemetry.metrics_listen.is_some());
        assert_eq!(config.control.poll_ms, 500);
        assert!(config.control.file.is_some());
    }

    #[test]
    fn wrong_keys_and_values_are_refused_with_the_field() {
        let typo = MINIMAL.replace("[redis]", "[sync]\npage_sise = 10\n[redis]");
        assert!(matches!(ProjectorConfig::parse(&typo), Err(ConfigError::Parse(m)) if m.contains("page_sise")));
        let v2 = MINIMAL.replace("version = 1", "version = 2");
        assert!(matches!(ProjectorConfig::parse(&v2), Err(ConfigError::Invalid { field: "version", .. })));
        let big = MINIMAL.replace("[redis]", "[sync]\npage_size = 5000\n[redis]");
        assert!(matches!(ProjectorConfig::parse(&big), Err(ConfigError::Invalid { field: "sync.page_size", .. })));
        let nothing = "version = 1\n[source]\ndatabase_url = \"mysql://h/p\"\n";
        assert!(matches!(ProjectorConfig::parse(nothing), Err(ConfigError::Invalid { field: "redis", .. })));
        let zero_days = MINIMAL.replace("[redis]", "[purge]\ndays = 0\n[redis]");
        assert!(matches!(ProjectorConfig::parse(&zero_days), Err(ConfigError::Invalid { field: "purge.days", .. })));
    }

    #[test]
    fn backoff_doubles_up_to_its_ceiling() {
        let retry = RetryConfig { backoff_ms: 100, max_backoff_ms: 1_000, ..RetryConfig::default() };
        let pauses: Vec<u64> = (1..=6).map(|n| retry.backoff(n).as_millis() as u64).collect();
        assert_eq!(pauses, [100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(retry.queue_backoff(u32::MAX), Duration::from_millis(600_000));
        assert_eq!(doubled(0, 5, 0), 0);
    }
}
