//! What a canary variant changes: `[canary.variants.<name>]`.
//!
//! Every key is optional; absent means "as the rest of the file says". The
//! keys cover every switch of the read paths: the list server's tier chain,
//! the read mode (split ratio, forced cluster, local cluster) of each store
//! pair, the list cache's lifetimes and stale grace, the detail switches,
//! the shadow sample rate, and the checkout remainder rule. The only price
//! option that is configuration is the remainder rule (the detail server's
//! `[checkout] remainder_rule`); everything else about a price is data.
//!
//! Values are checked here ([`VariantOverrides::validate`]); whether the
//! running server can apply them (a tier it has not built, a pair it does
//! not have) is checked by the server itself through the capability checks
//! it registers with the switch board ([`crate::Switchboard::require`]).

use std::time::Duration;

use pricing_store::{CacheSettings, SettingsError, TierId};
use serde::{Deserialize, Serialize};

use crate::pair::{PairSwitches, ReadSwitch};
use crate::switchboard::PairSwitch;

/// Who takes the rounding remainder of an allocation, as the control file
/// spells it (the detail server's `[checkout] remainder_rule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemainderRuleSwitch {
    /// The line with the largest amount takes the remainder.
    LargestLine,
    /// Leftover fen go to the largest fractional remainders.
    LargestRemainder,
}

/// What a canary variant does differently. Every field is optional: absent
/// means "as the rest of the file says".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VariantOverrides {
    /// Shadow verification sample rate for this variant, in basis points.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow_basis_points: Option<u16>,
    /// `detail.redis_bypass` for this variant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail_redis_bypass: Option<bool>,
    /// `detail.fallback_to_list` for this variant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail_fallback_to_list: Option<bool>,
    /// `[detail.redis] read` for this variant (split ratio, forced cluster,
    /// local cluster); the rest of the section stays.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail_redis_read: Option<ReadSwitch>,
    /// The list server's tier chain for this variant (the server's
    /// `[read] tiers`), e.g. `["hbase"]`; every tier must be one the server
    /// built.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list_tiers: Option<Vec<TierId>>,
    /// `[list.redis] read` for this variant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list_redis_read: Option<ReadSwitch>,
    /// `[list.hbase] read` for this variant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list_hbase_read: Option<ReadSwitch>,
    /// `[list.cache] ttl_ms` for this variant.
    #[serde(rename = "list_cache_ttl_ms", with = "opt_millis", skip_serializing_if = "Option::is_none")]
    pub list_cache_ttl: Option<Duration>,
    /// `[list.cache] negative_ttl_ms` for this variant.
    #[serde(rename = "list_cache_negative_ttl_ms", with = "opt_millis", skip_serializing_if = "Option::is_none")]
    pub list_cache_negative_ttl: Option<Duration>,
    /// `[list.cache] stale_grace_ms` for this variant.
    #[serde(rename = "list_cache_stale_grace_ms", with = "opt_millis", skip_serializing_if = "Option::is_none")]
    pub list_cache_stale_grace: Option<Duration>,
    /// The checkout remainder rule for this variant (the detail server's
    /// `[checkout] remainder_rule` otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkout_remainder_rule: Option<RemainderRuleSwitch>,
}

impl VariantOverrides {
    /// Every key a variant accepts, as the file spells it (the doc test
    /// compares docs/OPERATIONS.md's table with this list).
    pub fn keys() -> Vec<String> {
        let full = VariantOverrides {
            shadow_basis_points: Some(0),
            detail_redis_bypass: Some(false),
            detail_fallback_to_list: Some(false),
            detail_redis_read: Some(ReadSwitch::default()),
            list_tiers: Some(Vec::new()),
            list_redis_read: Some(ReadSwitch::default()),
            list_hbase_read: Some(ReadSwitch::default()),
            list_cache_ttl: Some(Duration::ZERO),
            list_cache_negative_ttl: Some(Duration::ZERO),
            list_cache_stale_grace: Some(Duration::ZERO),
            checkout_remainder_rule: Some(RemainderRuleSwitch::LargestLine),
        };
        match serde_json::to_value(full) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// Whether the variant changes the list server's read path (tiers,
    /// a list pair's read mode, the cache): such a variant is served by its
    /// own view of the read path.
    pub fn changes_list_read_path(&self) -> bool {
        self.list_tiers.is_some()
            || self.list_redis_read.is_some()
            || self.list_hbase_read.is_some()
            || self.changes_list_cache()
    }

    /// Whether the variant changes a list cache lifetime.
    pub fn changes_list_cache(&self) -> bool {
        self.list_cache_ttl.is_some() || self.list_cache_negative_ttl.is_some() || self.list_cache_stale_grace.is_some()
    }

    /// The read override of a pair, if the variant sets one.
    pub fn pair_read(&self, pair: PairSwitch) -> Option<&ReadSwitch> {
        match pair {
            PairSwitch::ListRedis => self.list_redis_read.as_ref(),
            PairSwitch::ListHbase => self.list_hbase_read.as_ref(),
            PairSwitch::DetailRedis => self.detail_redis_read.as_ref(),
        }
    }

    /// A pair's section as it applies to this variant.
    pub fn pair_section(&self, pair: PairSwitch, base: &PairSwitches) -> PairSwitches {
        match self.pair_read(pair) {
            Some(read) => PairSwitches { read: read.clone(), ..base.clone() },
            None => base.clone(),
        }
    }

    /// The list cache settings as they apply to this variant.
    pub fn list_cache(&self, base: &CacheSettings) -> CacheSettings {
        CacheSettings {
            ttl: self.list_cache_ttl.unwrap_or(base.ttl),
            negative_ttl: self.list_cache_negative_ttl.unwrap_or(base.negative_ttl),
            stale_grace: self.list_cache_stale_grace.unwrap_or(base.stale_grace),
            max_bytes: base.max_bytes,
        }
    }

    /// Values and cross-field rules; the error's field is relative to the
    /// variant's table.
    pub fn validate(
        &self,
        base_pairs: impl Fn(PairSwitch) -> PairSwitches,
        base_cache: &CacheSettings,
    ) -> Result<(), SettingsError> {
        if let Some(bp) = self.shadow_basis_points
            && bp > 10_000
        {
            return Err(SettingsError { field: "shadow_basis_points", reason: ("at most 10000").to_string() });
        }
        if let Some(tiers) = &self.list_tiers {
            if tiers.is_empty() {
                return Err(SettingsError { field: "list_tiers", reason: ("list at least one tier").to_string() });
            }
            for (i, tier) in tiers.iter().enumerate() {
                if tiers[..i].contains(tier) {
                    return Err(SettingsError {
                        field: "list_tiers",
                        reason: (format!("{} is listed twice", tier.as_str())).to_string(),
                    });
                }
            }
        }
        for pair in PairSwitch::ALL {
            if self.pair_read(pair).is_some() {
                self.pair_section(pair, &base_pairs(pair)).validate().map_err(|e| SettingsError {
                    field: pair_read_key(pair),
                    reason: format!("{}: {}", e.field, e.reason),
                })?;
            }
        }
        self.list_cache(base_cache)
            .validate()
            .map_err(|e| SettingsError { field: "list_cache", reason: format!("{}: {}", e.field, e.reason) })?;
        Ok(())
    }
}

/// The variant key that overrides a pair's read mode.
pub fn pair_read_key(pair: PairSwitch) -> &'static str {
    match pair {
        PairSwitch::ListRedis => "list_redis_read",
        PairSwitch::ListHbase => "list_hbase_read",
        PairSwitch::DetailRedis => "detail_redis_read",
    }
}

/// `Option<Duration>` as optional whole milliseconds.
mod opt_millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::invalid_field;
    use crate::{ControlConfig, ControlError};

    #[test]
    fn every_override_key_parses_and_applies() {
        let c = ControlConfig::parse(
            "version = 1\n[list.cache]\nttl_ms = 3000\n[canary.variants.beta]\n\
             list_tiers = ['hbase']\nlist_redis_read = { mode = 'only_b' }\n\
             list_hbase_read = { mode = 'split', a_percent = 10 }\n\
             detail_redis_read = { mode = 'only_a' }\nlist_cache_ttl_ms = 500\n\
             list_cache_negative_ttl_ms = 100\nlist_cache_stale_grace_ms = 0\n\
             shadow_basis_points = 10000\ndetail_redis_bypass = true\ndetail_fallback_to_list = true\n\
             checkout_remainder_rule = 'largest_remainder'\n",
        )
        .unwrap();
        let beta = &c.canary.variants["beta"];
        assert_eq!(beta.list_tiers.as_deref(), Some(&[TierId::Hbase][..]));
        assert!(beta.changes_list_read_path());
        let cache = beta.list_cache(&c.list.cache);
        assert_eq!(
            (cache.ttl, cache.negative_ttl, cache.stale_grace),
            (Duration::from_millis(500), Duration::from_millis(100), Duration::ZERO)
        );
        let section = beta.pair_section(PairSwitch::ListHbase, &c.list.hbase);
        assert_eq!(section.read, ReadSwitch::Split { a_percent: 10 });
        assert_eq!(section.a, c.list.hbase.a, "the rest of the section is the file's");
        assert_eq!(beta.checkout_remainder_rule, Some(RemainderRuleSwitch::LargestRemainder));
        assert_eq!(VariantOverrides::keys().len(), 11);
        // A variant without read-path keys is served by the stable path.
        assert!(!VariantOverrides { detail_redis_bypass: Some(true), ..Default::default() }.changes_list_read_path());
    }

    #[test]
    fn bad_overrides_are_refused_with_their_field() {
        let field = |body: &str| invalid_field(&format!("version = 1\n[canary.variants.x]\n{body}"));
        assert_eq!(field("list_tiers = []"), "canary.variants.x.list_tiers");
        assert_eq!(field("list_tiers = ['redis', 'redis']"), "canary.variants.x.list_tiers");
        assert_eq!(field("list_redis_read = { mode = 'split', a_percent = 101 }"), "canary.variants.x.list_redis_read");
        assert_eq!(field("list_cache_ttl_ms = 0"), "canary.variants.x.list_cache");
        assert_eq!(field("shadow_basis_points = 10001"), "canary.variants.x.shadow_basis_points");
        for text in [
            "list_tiers = ['memory']",
            "list_redis_read = { mode = 'only_c' }",
            "checkout_remainder_rule = 'random'",
            "list_cache_max_bytes = 5",
            "list_redis = { read = { mode = 'only_a' } }",
        ] {
            let text = format!("version = 1\n[canary.variants.x]\n{text}");
            assert!(matches!(ControlConfig::parse(&text), Err(ControlError::Parse(_))), "accepted: {text}");
        }
    }
}
