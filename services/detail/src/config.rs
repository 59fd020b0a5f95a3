//! The detail server's config file (TOML). Unknown keys are errors and
//! `version` must be 1.

use std::path::{Path, PathBuf};

use pricing_engine::RemainderRule;
use pricing_record::Clock;
use pricing_store::{BreakerSettings, CacheSettings};
use pricing_store_pairs::RedisPairConfig;
use pricing_store_sql::source::SourceSettings;

use pricing_telemetry::ServerSettings;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetailConfig {
    /// Format version of this file; only 1 exists.
    pub version: u32,
    #[serde(default = "default_server")]
    pub server: ServerSettings,
    #[serde(default)]
    pub source: SourceSettings,
    #[serde(default)]
    pub checkout: CheckoutSettings,
    /// The Redis pair read before MySQL; absent: MySQL only.
    #[serde(default)]
    pub redis: Option<RedisPairConfig>,
    /// The breaker in front of MySQL.
    #[serde(default)]
    pub mysql_breaker: BreakerSettings,
    /// A memory cache in front of the detail and checkout reads (the list
    /// server's: lifetimes, negative caching, stale-if-error). Absent (the
    /// default): none, every such read reaches Redis. Order placement never
    /// reads through it.
    #[serde(default)]
    pub cache: Option<CacheSettings>,
    /// The list server GetGoodsPrice falls back to when the switch says so.
    #[serde(default)]
    pub list_fallback: Option<ListFallbackSettings>,
    /// Push invalidation: with a `[redis]` pair, the server subscribes to
    /// the projector's announcements and drops changed goods from its
    /// caches (the `[cache]` memory cache; on unless `enabled = false`).
    #[serde(default)]
    pub invalidation: pricing_store_pairs::InvalidationConfig,
    /// "Now" for every price: not in the file; the system clock unless the
    /// embedding code (a test) sets another.
    #[serde(skip)]
    pub clock: Clock,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListFallbackSettings {
    /// "http://list:50051"
    pub address: String,
    #[serde(default = "default_fallback_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_fallback_timeout_ms() -> u64 {
    200
}

fn default_server() -> ServerSettings {
    ServerSettings::with_ports(50052, 9465)
}

/// How checkout and order pricing behave.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckoutSettings {
    /// How long a quote id stays valid, in milliseconds.
    pub quote_ttl_ms: u64,
    /// Secret that signs quote ids; every instance must share it so that any
    /// of them can read a quote. Empty: a random secret per process (fine
    /// for one instance, wrong for several).
    pub quote_secret: String,
    /// How long PreviewOrder may reuse promotions read from the database, in
    /// milliseconds. PriceOrder never uses this cache.
    pub promotions_cache_ms: u64,
    /// Who takes the rounding remainder of an allocation.
    pub remainder_rule: RemainderRuleSetting,
}

impl Default for CheckoutSettings {
    fn default() -> Self {
        CheckoutSettings {
            quote_ttl_ms: 15 * 60 * 1000,
            quote_secret: String::new(),
            promotions_cache_ms: 2_000,
            remainder_rule: RemainderRuleSetting::LargestLine,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemainderRuleSetting {
    /// The line with the largest amount takes the remainder (seed 002).
    LargestLine,
    /// Hamilton: leftover fen go to the largest fractional remainders.
    LargestRemainder,
}

impl From<RemainderRuleSetting> for RemainderRule {
    fn from(value: RemainderRuleSetting) -> RemainderRule {
        match value {
            RemainderRuleSetting::LargestLine => RemainderRule::LargestLine,
            RemainderRuleSetting::LargestRemainder => RemainderRule::LargestRemainder,
        }
    }
}

impl Default for DetailConfig {
    fn default() -> Self {
        DetailConfig {
            version: 1,
            server: default_server(),
            source: SourceSettings::default(),
            checkout: CheckoutSettings::default(),
            redis: None,
            mysql_breaker: BreakerSettings::default(),
            cache: None,
            list_fallback: None,
            invalidation: pricing_store_pairs::InvalidationConfig::default(),
            clock: Clock::system(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl DetailConfig {
    pub fn load(path: &Path) -> Result<DetailConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        DetailConfig::parse(&text).map_err(|message| ConfigError::Invalid { path: path.into(), message })
    }

    pub fn parse(text: &str) -> Result<DetailConfig, String> {
        let config: DetailConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        if config.version != 1 {
            return Err(format!("version {} is not supported (expected 1)", config.version));
        }
        if config.checkout.quote_ttl_ms == 0 {
            return Err("checkout.quote_ttl_ms must be above 0".into());
        }
        config.mysql_breaker.validate().map_err(|e| format!("mysql_breaker: {e}"))?;
        if let Some(cache) = &config.cache {
            cache.validate().map_err(|e| format!("cache: {e}"))?;
        }
        config.invalidation.validate()?;

        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_file_takes_defaults() {
        assert_eq!(DetailConfig::parse("version = 1").unwrap(), DetailConfig::default());
    }

    #[test]
    fn bad_files_are_refused() {
        assert!(DetailConfig::parse("version = 3").is_err());
        assert!(DetailConfig::parse("version = 1\n[checkout]\nquote_ttl = 5").is_err());
        assert!(DetailConfig::parse("version = 1\n[checkout]\nremainder_rule = 'random'").is_err());
        assert!(DetailConfig::parse("version = 1\n[checkout]\nquote_ttl_ms = 0").is_err());
        assert!(
            DetailConfig::parse("version = 1\n[switches]\nfallback_to_list = true").is_err(),
            "switches live in the control file"
        );
        let full = DetailConfig::parse(
            r#"
            version = 1
            [redis]
            a = { urls = ["redis://127.0.0.1:7001/"] }
            b = { urls = ["redis://127.0.0.1:7002/"] }
            [list_fallback]
            address = "http://127.0.0.1:50051"
            "#,
        )
        .unwrap();
        assert_eq!(full.list_fallback.unwrap().timeout_ms, 200);
        let cached = DetailConfig::parse("version = 1\n[cache]\nttl_ms = 500").unwrap();
        assert_eq!(cached.cache.map(|c| c.ttl), Some(std::time::Duration::from_millis(500)));
        assert!(DetailConfig::parse("version = 1\n[cache]\nttl_ms = 0").is_err());
        let c = DetailConfig::parse("version = 1\n[checkout]\nremainder_rule = 'largest_remainder'").unwrap();
        assert_eq!(RemainderRule::from(c.checkout.remainder_rule), RemainderRule::LargestRemainder);
    }
}
