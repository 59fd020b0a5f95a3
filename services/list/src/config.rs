//! The list server's config file (TOML). Every key is checked: unknown keys
//! are errors, and `version` must be 1.

use std::path::PathBuf;

use pricing_record::Clock;
use pricing_store::{CacheSettings, TierId};
use pricing_store_pairs::{HbasePairConfig, InvalidationConfig, RedisPairConfig};
use pricing_store_sql::source::SourceSettings;
use pricing_telemetry::ServerSettings;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListConfig {
    /// Format version of this file; only 1 exists.
    pub version: u32,
    #[serde(default)]
    pub server: ServerSettings,
    #[serde(default)]
    pub source: SourceSettings,
    /// The in-process cache in front of every tier.
    #[serde(default)]
    pub cache: CacheSettings,
    #[serde(default)]
    pub read: ReadSettings,
    /// The Redis pair, when the chain lists "redis".
    #[serde(default)]
    pub redis: Option<RedisPairConfig>,
    /// The HBase pair, when the chain lists "hbase".
    #[serde(default)]
    pub hbase: Option<HbasePairConfig>,
    /// Push invalidation: with a `[redis]` pair, the server subscribes to
    /// the projector's announcements on both clusters and drops changed
    /// goods from memory (on unless `enabled = false`).
    #[serde(default)]
    pub invalidation: InvalidationConfig,
    /// "Now" for every price: not in the file; the system clock unless the
    /// embedding code (a test) sets another.
    #[serde(skip)]
    pub clock: Clock,
}

/// Which tiers answer a miss of the in-process cache, in order.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReadSettings {
    /// In the file, tier names: "redis", "hbase", "sql" (anything else is
    /// refused as the file is parsed). The embedded default is ["sql"];
    /// production is ["redis", "hbase"].
    pub tiers: Vec<TierId>,
}

impl Default for ReadSettings {
    fn default() -> Self {
        ReadSettings { tiers: vec![TierId::Sql] }
    }
}

impl Default for ListConfig {
    fn default() -> Self {
        ListConfig {
            version: 1,
            server: ServerSettings::default(),
            source: SourceSettings::default(),
            cache: CacheSettings::default(),
            read: ReadSettings::default(),
            redis: None,
            hbase: None,
            invalidation: InvalidationConfig::default(),
            clock: Clock::system(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{path}: version {found} is not supported (expected 1)")]
    Version { path: PathBuf, found: u32 },
}

impl ListConfig {
    /// Reads and checks a config file.
    pub fn load(path: &std::path::Path) -> Result<ListConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        ListConfig::parse(&text).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse { path: path.into(), source },
            ConfigError::Version { found, .. } => ConfigError::Version { path: path.into(), found },
            ConfigError::Invalid { message, .. } => ConfigError::Invalid { path: path.into(), message },
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<ListConfig, ConfigError> {
        let config: ListConfig =
            toml::from_str(text).map_err(|source| ConfigError::Parse { path: PathBuf::new(), source })?;
        if config.version != 1 {
            return Err(ConfigError::Version { path: PathBuf::new(), found: config.version });
        }
        config.cache.validate().map_err(|e| ConfigError::Invalid { path: PathBuf::new(), message: e.to_string() })?;
        let invalid = |message: String| ConfigError::Invalid { path: PathBuf::new(), message };
        config.invalidation.validate().map_err(invalid)?;
        if config.read.tiers.is_empty() {
            return Err(invalid("read.tiers must name at least one tier".into()));
        }
        for (i, &tier) in config.read.tiers.iter().enumerate() {
            if config.read.tiers[..i].contains(&tier) {
                return Err(invalid(format!("read.tiers lists \"{tier}\" twice")));
            }
            let section = match tier {
                TierId::Sql => true,
                TierId::Redis => config.redis.is_some(),
                TierId::Hbase => config.hbase.is_some(),
            };
            if !section {
                return Err(invalid(format!("read.tiers names \"{tier}\" but there is no [{tier}] section")));
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_file_takes_defaults() {
        let c = ListConfig::parse("version = 1").unwrap();
        assert_eq!(c, ListConfig::default());
    }

    #[test]
    fn wrong_keys_and_versions_are_refused() {
        assert!(matches!(ListConfig::parse("version = 2"), Err(ConfigError::Version { found: 2, .. })));
        assert!(matches!(ListConfig::parse("version = 1\nlisten = 'x'"), Err(ConfigError::Parse { .. })));
        assert!(matches!(
            ListConfig::parse("version = 1\n[server]\nlisen = '1.2.3.4:5'"),
            Err(ConfigError::Parse { .. })
        ));
        assert!(ListConfig::parse("").is_err(), "version is required");
        assert!(matches!(ListConfig::parse("version = 1\n[read]\ntiers = []"), Err(ConfigError::Invalid { .. })));
        assert!(matches!(
            ListConfig::parse("version = 1\n[read]\ntiers = ['redis']"),
            Err(ConfigError::Invalid { .. })
        ));
        // An unknown tier name is refused where the file is parsed, with
        // the line (the key) and what is accepted.
        let err = ListConfig::parse("version = 1\n[read]\ntiers = ['redis', 'memcached']").unwrap_err();
        assert!(matches!(err, ConfigError::Parse { .. }), "{err:?}");
        let message = err.to_string();
        for part in ["line 3", "tiers = ['redis', 'memcached']", r#"unknown tier "memcached""#, "redis, hbase, sql"] {
            assert!(message.contains(part), "{part:?} missing from: {message}");
        }
    }

    #[test]
    fn tiers_are_parsed_once_in_order() {
        let c = ListConfig::parse(
            "version = 1\n[read]\ntiers = ['redis', 'sql']\n[redis]\na = { urls = [] }\nb = { urls = [] }",
        )
        .unwrap();
        assert_eq!(c.read.tiers, vec![TierId::Redis, TierId::Sql]);
        let err = ListConfig::parse("version = 1\n[read]\ntiers = ['sql', 'sql']").unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { message, .. } if message == r#"read.tiers lists "sql" twice"#),
            "{err:?}"
        );
        let err = ListConfig::parse("version = 1\n[read]\ntiers = ['hbase']").unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { message, .. }
            if message == r#"read.tiers names "hbase" but there is no [hbase] section"#),
            "{err:?}"
        );
    }

    #[test]
    fn full_file_parses() {
        let c = ListConfig::parse(
            r#"
            version = 1
            [server]
            listen = "0.0.0.0:6000"
            metrics_listen = "0.0.0.0:9500"
            drain_grace_ms = 5000
            log = "debug"
            worker_threads = 4
            [source]
            database_url = "mysql://u:p@db:3306/pricing"
            [cache]
            ttl_ms = 5000
            negative_ttl_ms = 500
            stale_grace_ms = 30000
            max_bytes = 1000000
            [read]
            tiers = ["redis", "hbase"]
            [redis]
            a = { urls = ["redis://10.0.0.1:6379/"] }
            b = { urls = ["redis://10.0.1.1:6379/"] }
            [redis.settings]
            read = { mode = "prefer_local", local = "b" }
            [hbase]
            a = { addresses = ["10.0.0.5:9090"] }
            b = { addresses = ["10.0.1.5:9090"], framed = true }
            "#,
        )
        .unwrap();
        assert_eq!(c.server.listen.port(), 6000);
        assert_eq!(c.source.database_url.as_deref(), Some("mysql://u:p@db:3306/pricing"));
    }
}
