//! The control file: every switch and limit the read paths obey, as data.
//!
//! One TOML file, `version = 1`, every table `deny_unknown_fields`, every
//! section optional with the defaults documented in docs/CONTROL.md. Parsing
//! is [`ControlConfig::parse`]: the format version first (so that a file of
//! another version says so rather than failing on a key), then the typed
//! parse, then the `[breakers]` defaults filled into every store cluster that
//! does not set its own breaker, then token digests, then [`ControlConfig::validate`],
//! the one place where values and cross-field rules are checked.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use pricing_store::settings::millis;
use pricing_store::{BreakerSettings, CacheSettings, Cluster, PairId, WriteMode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::guard::GuardSettings;
use crate::pair::{PairSwitches, ReadSwitch};
use crate::switchboard::PairSwitch;
pub use crate::variant::VariantOverrides;
use pricing_engine::guard::GuardRules;

/// The only format version this build reads.
pub const FORMAT_VERSION: u32 = 1;

/// A control file that cannot be used. The switch board keeps the last good
/// config when a reload fails with one of these.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("not a valid control file: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("control file version {found} is not supported (this build reads version {FORMAT_VERSION})")]
    Version { found: u32 },
    #[error("invalid control setting {field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("this switch board has no file to reload")]
    NoFile,
}

impl ControlError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl ToString) -> ControlError {
        ControlError::Invalid { field: field.into(), reason: reason.to_string() }
    }

    /// Short label for the `result` of `pricing_control_reload_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            ControlError::Read { .. } | ControlError::NoFile => "unreadable",
            ControlError::Parse(_) | ControlError::Version { .. } => "malformed",
            ControlError::Invalid { .. } => "invalid",
        }
    }
}

/// The whole control file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    /// Format version of the file; only 1 exists.
    pub version: u32,
    #[serde(default)]
    pub list: ListSwitches,
    #[serde(default)]
    pub detail: DetailSwitches,
    /// Caller accounts by caller name (the `x-caller` metadata). A BTreeMap
    /// so that the admin view and diffs list callers in a stable order.
    #[serde(default)]
    pub callers: BTreeMap<String, CallerAccount>,
    #[serde(default)]
    pub limits: GlobalLimits,
    #[serde(default)]
    pub hot_keys: HotKeySettings,
    /// The breaker of every store cluster whose section does not set its own.
    #[serde(default)]
    pub breakers: BreakerSettings,
    #[serde(default)]
    pub canary: CanarySettings,
    #[serde(default)]
    pub shadow: ShadowSettings,
    /// The projector's write switches: write mode per pair and a pause.
    #[serde(default)]
    pub projector: ProjectorSwitches,
    /// The price guard: rules per activity kind, allow-list, mode.
    #[serde(default)]
    pub guard: GuardSettings,
    /// `guard` compiled for the engine ([`ControlConfig::guard_rules`]):
    /// filled by `parse`, `Switchboard::from_config` and
    /// `Switchboard::replace` (public only so that a struct literal with
    /// `..Default::default()` builds in other crates; set `guard`, not this).
    #[serde(skip)]
    #[doc(hidden)]
    pub compiled_guard: GuardRules,
}

impl Default for ControlConfig {
    /// What a server runs with when it is given no control file: default
    /// store switches, no caller accounts (so an auth layer refuses all).
    fn default() -> Self {
        ControlConfig {
            version: FORMAT_VERSION,
            list: ListSwitches::default(),
            detail: DetailSwitches::default(),
            callers: BTreeMap::new(),
            limits: GlobalLimits::default(),
            hot_keys: HotKeySettings::default(),
            breakers: BreakerSettings::default(),
            canary: CanarySettings::default(),
            shadow: ShadowSettings::default(),
            projector: ProjectorSwitches::default(),
            guard: GuardSettings::default(),
            compiled_guard: GuardRules::default(),
        }
    }
}

/// The list server's read path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListSwitches {
    /// The Redis pair: split ratio, forced cluster, write mode, timeouts,
    /// breakers, zones.
    pub redis: PairSwitches,
    /// The HBase pair, same switches.
    pub hbase: PairSwitches,
    /// The in-process cache: lifetimes, stale-if-error grace, size.
    pub cache: CacheSettings,
}

/// The detail server's read path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetailSwitches {
    /// Read MySQL only, skipping Redis (Redis broken or known stale).
    pub redis_bypass: bool,
    /// Emergency: answer detail reads by asking the list server.
    pub fallback_to_list: bool,
    /// The detail path's Redis pair. Default: the pod's own zone first
    /// (DESIGN.md: "Redis (local cluster first)"), split while the zone is
    /// unknown.
    pub redis: PairSwitches,
}

impl Default for DetailSwitches {
    fn default() -> Self {
        DetailSwitches {
            redis_bypass: false,
            fallback_to_list: false,
            redis: PairSwitches { read: ReadSwitch::PreferLocal { local: None }, ..PairSwitches::default() },
        }
    }
}

/// The projector's switches (seed 001: the data sync side has its own
/// manual control, "强制指定为单写", next to the read side's). The
/// projector's running loop reads them at every batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProjectorSwitches {
    /// Hold every write: the incremental loop stops at its next batch and
    /// leaves the watermark (and the retry queue) where they are.
    pub paused: bool,
    /// Where the projector writes the Redis pair.
    pub redis: ProjectorPairSwitches,
    /// Where the projector writes the HBase pair.
    pub hbase: ProjectorPairSwitches,
}

impl ProjectorSwitches {
    /// The section of one pair (`[projector.redis]`, `[projector.hbase]`).
    pub fn pair(&self, pair: PairId) -> &ProjectorPairSwitches {
        match pair {
            PairId::Redis => &self.redis,
            PairId::Hbase => &self.hbase,
        }
    }
}

/// The projector's switches for one pair.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProjectorPairSwitches {
    /// `both`, `only_a`, `only_b`: a cluster left out is skipped, not queued.
    pub write: WriteMode,
}

/// One caller's account: how it proves who it is and what it may use.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallerAccount {
    /// The token in clear. Prefer `token_sha256` so the secret need not sit
    /// in the ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Lowercase or uppercase hex of SHA-256 of the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_sha256: Option<String>,
    /// Sustained calls per second.
    pub rate_per_second: u32,
    /// Calls allowed at once above the sustained rate; absent: one second's worth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// Calls of this caller in flight at once.
    pub max_concurrent: u32,
    /// SHA-256 of the token, filled in by `parse`: the auth layer compares
    /// digests, so clear and hashed tokens are checked the same way and the
    /// comparison takes the same time whatever the token's length.
    #[serde(skip)]
    digest: [u8; 32],
}

impl fmt::Debug for CallerAccount {
    // By hand: the token must never reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallerAccount")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_sha256", &self.token_sha256.as_ref().map(|_| "<redacted>"))
            .field("rate_per_second", &self.rate_per_second)
            .field("burst", &self.burst)
            .field("max_concurrent", &self.max_concurrent)
            .finish()
    }
}

impl CallerAccount {
    /// An account with a clear token, for tests and tools.
    pub fn with_token(token: &str, rate_per_second: u32, burst: Option<u32>, max_concurrent: u32) -> CallerAccount {
        CallerAccount {
            token: Some(token.to_owned()),
            token_sha256: None,
            rate_per_second,
            burst,
            max_concurrent,
            digest: Sha256::digest(token.as_bytes()).into(),
        }
    }

    /// SHA-256 of the account's token.
    pub fn token_digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// The burst in effect: `burst`, or one second's worth of calls.
    pub fn effective_burst(&self) -> u32 {
        self.burst.unwrap_or(self.rate_per_second)
    }

    fn fill_digest(&mut self, name: &str) -> Result<(), ControlError> {
        let field = || format!("callers.{name}");
        match (&self.token, &self.token_sha256) {
            (Some(token), None) => {
                if token.len() < MIN_TOKEN_LEN {
                    return Err(ControlError::invalid(
                        format!("{}.token", field()),
                        format!("must be at least {MIN_TOKEN_LEN} characters"),
                    ));
                }
                self.digest = Sha256::digest(token.as_bytes()).into();
            }
            (None, Some(hexed)) => {
                let mut digest = [0u8; 32];
                hex::decode_to_slice(hexed, &mut digest)
                    .map_err(|_| ControlError::invalid(format!("{}.token_sha256", field()), "must be 64 hex digits"))?;
                self.digest = digest;
            }
            _ => return Err(ControlError::invalid(field(), "set exactly one of token and token_sha256")),
        }
        Ok(())
    }
}

const MIN_TOKEN_LEN: usize = 16;

/// Limits over all callers together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GlobalLimits {
    /// Calls in flight at once over all callers; beyond it calls are refused
    /// at once (load shedding), never queued.
    pub max_concurrent: u32,
    /// Global sustained calls per second; absent: no global rate limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_per_second: Option<u32>,
    /// Burst of the global rate limit; absent: one second's worth.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// Retry hint sent with refusals that have no computed wait (shed,
    /// per-caller concurrency).
    #[serde(rename = "retry_after_ms", with = "millis")]
    pub retry_after: Duration,
    /// The time a server keeps to send its answer: store calls end this
    /// long before the caller's `grpc-timeout` runs out. A call whose
    /// `grpc-timeout` leaves this little or less is refused at once; 0
    /// refuses only calls already out of time.
    #[serde(rename = "min_deadline_ms", with = "millis")]
    pub min_deadline: Duration,
}

impl Default for GlobalLimits {
    fn default() -> Self {
        GlobalLimits {
            max_concurrent: 1024,
            rate_per_second: None,
            burst: None,
            retry_after: Duration::from_millis(50),
            min_deadline: Duration::ZERO,
        }
    }
}

/// Hot-key limits (seed 003: brushing traffic hammering one member id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HotKeySettings {
    /// Requests naming one goods id allowed per window; 0 turns the goods
    /// rule off. High by default: a flash-sale item is legitimately hot and
    /// the cache absorbs it; this catches a loop, not popularity.
    pub goods_threshold: u32,
    /// Requests naming one pin (user) allowed per window; 0 turns it off.
    pub pin_threshold: u32,
    /// Length of the counting window.
    #[serde(rename = "window_ms", with = "millis")]
    pub window: Duration,
    /// Keys tracked at most; the least useful are evicted beyond it, which
    /// bounds memory whatever the key space.
    pub max_tracked: u64,
}

impl Default for HotKeySettings {
    fn default() -> Self {
        HotKeySettings { goods_threshold: 0, pin_threshold: 0, window: Duration::from_secs(1), max_tracked: 100_000 }
    }
}

/// Canary rules (seed 000: by pin, by store, by city, then by percentage).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CanarySettings {
    /// The variant of a call that no rule matches.
    pub default_variant: String,
    /// Tried in order; the first rule that matches picks the variant.
    pub rules: Vec<CanaryRule>,
    /// What each variant changes; a rule may only name a variant listed here.
    pub variants: BTreeMap<String, VariantOverrides>,
}

impl Default for CanarySettings {
    fn default() -> Self {
        CanarySettings { default_variant: "stable".into(), rules: Vec::new(), variants: BTreeMap::new() }
    }
}

/// One canary rule. It matches a call whose pin, store or city is listed,
/// or whose pin falls in the first `percent` of the pin hash space (a stable
/// hash: the same pin always lands in the same place, on every replica and
/// after restarts, and raising the percentage only adds pins).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryRule {
    pub variant: String,
    #[serde(default)]
    pub pins: Vec<String>,
    #[serde(default)]
    pub stores: Vec<u64>,
    #[serde(default)]
    pub cities: Vec<u64>,
    /// Share of all pins, 0 to 100.
    #[serde(default)]
    pub percent: u8,
    /// Mixed into the pin hash; absent: the variant name, so that two
    /// variants at 5% pick different pins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
}

/// Shadow verification (seed 004 3.2.2): a sample of answers re-checked in
/// the background against the source of truth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShadowSettings {
    /// Share of answers verified, in basis points (1 = 0.01%, 10000 = all);
    /// 0 turns verification off.
    pub sample_basis_points: u16,
    /// Samples waiting for the verifier at most; beyond it samples are
    /// dropped (and counted), never waited for.
    pub queue_capacity: usize,
}

impl Default for ShadowSettings {
    fn default() -> Self {
        ShadowSettings { sample_basis_points: 0, queue_capacity: 1024 }
    }
}

impl ControlConfig {
    /// Parses and checks a control file.
    pub fn parse(text: &str) -> Result<ControlConfig, ControlError> {
        #[derive(Deserialize)]
        struct VersionOnly {
            version: Option<u32>,
        }
        // The version first, leniently: a version-2 file may hold keys this
        // build does not know, and should be refused for its version.
        if let Ok(VersionOnly { version: Some(found) }) = toml::from_str::<VersionOnly>(text)
            && found != FORMAT_VERSION
        {
            return Err(ControlError::Version { found });
        }
        let mut config: ControlConfig = toml::from_str(text)?;
        let raw: toml::Table = toml::from_str(text)?;
        // Every pair section's cluster breaker inherits `[breakers]` unless
        // the file sets its own.
        for switch in PairSwitch::ALL {
            for cluster in [Cluster::A, Cluster::B] {
                let set = raw
                    .get(switch.server())
                    .and_then(|v| v.get(switch.pair().as_str()))
                    .and_then(|v| v.get(cluster.as_str()))
                    .is_some_and(|v| v.get("breaker").is_some());
                if !set {
                    let breaker = config.breakers.clone();
                    let dual = config.pair_mut(switch);
                    match cluster {
                        Cluster::A => dual.a.breaker = breaker,
                        Cluster::B => dual.b.breaker = breaker,
                    }
                }
            }
        }
        for (name, account) in config.callers.iter_mut() {
            account.fill_digest(name)?;
        }
        config.validate()?;
        config.compiled_guard = config.guard.compile()?;
        Ok(config)
    }

    /// The section of one pair switch (`[list.redis]`, ...).
    pub(crate) fn pair(&self, switch: PairSwitch) -> &PairSwitches {
        match switch {
            PairSwitch::ListRedis => &self.list.redis,
            PairSwitch::ListHbase => &self.list.hbase,
            PairSwitch::DetailRedis => &self.detail.redis,
        }
    }

    fn pair_mut(&mut self, switch: PairSwitch) -> &mut PairSwitches {
        match switch {
            PairSwitch::ListRedis => &mut self.list.redis,
            PairSwitch::ListHbase => &mut self.list.hbase,
            PairSwitch::DetailRedis => &mut self.detail.redis,
        }
    }

    /// Every value and cross-field rule, in one place.
    pub fn validate(&self) -> Result<(), ControlError> {
        if self.version != FORMAT_VERSION {
            return Err(ControlError::Version { found: self.version });
        }
        let settings = |prefix: &str, e: pricing_store::SettingsError| {
            ControlError::invalid(format!("{prefix}.{}", e.field), e.reason)
        };
        self.breakers.validate().map_err(|e| settings("breakers", e))?;
        for switch in PairSwitch::ALL {
            let dual = self.pair(switch);
            let section = switch.section();
            // Breakers per cluster first, so that the error names the cluster.
            for (cluster, side) in [(Cluster::A, &dual.a), (Cluster::B, &dual.b)] {
                let field = format!("{section}.{}.breaker", cluster.as_str());
                side.breaker.validate().map_err(|e| settings(&field, e))?;
            }
            dual.validate().map_err(|e| settings(section, e))?;
        }
        self.list.cache.validate().map_err(|e| settings("list.cache", e))?;

        let mut digests = BTreeMap::new();
        for (name, account) in &self.callers {
            let field = |key: &str| format!("callers.{name}.{key}");
            if !is_label(name) {
                return Err(ControlError::invalid(
                    format!("callers.{name}"),
                    "a caller name is 1 to 64 of a-z, A-Z, 0-9, '-', '_', '.'",
                ));
            }
            if account.rate_per_second == 0 {
                return Err(ControlError::invalid(field("rate_per_second"), "must be at least 1"));
            }
            if account.burst == Some(0) {
                return Err(ControlError::invalid(field("burst"), "must be at least 1"));
            }
            if account.max_concurrent == 0 {
                return Err(ControlError::invalid(field("max_concurrent"), "must be at least 1"));
            }
            if account.max_concurrent > self.limits.max_concurrent {
                return Err(ControlError::invalid(
                    field("max_concurrent"),
                    format!(
                        "{} is above limits.max_concurrent ({})",
                        account.max_concurrent, self.limits.max_concurrent
                    ),
                ));
            }
            // A token names one caller: a shared token hides who calls
            // (seed 003's pain with reused accounts).
            if let Some(other) = digests.insert(*account.token_digest(), name) {
                return Err(ControlError::invalid(format!("callers.{name}"), format!("same token as callers.{other}")));
            }
        }

        let limits = &self.limits;
        if limits.max_concurrent == 0 {
            return Err(ControlError::invalid("limits.max_concurrent", "must be at least 1"));
        }
        if limits.rate_per_second == Some(0) {
            return Err(ControlError::invalid(
                "limits.rate_per_second",
                "must be at least 1 (leave it out for no limit)",
            ));
        }
        if limits.burst.is_some() && limits.rate_per_second.is_none() {
            return Err(ControlError::invalid("limits.burst", "needs limits.rate_per_second"));
        }
        if limits.burst == Some(0) {
            return Err(ControlError::invalid("limits.burst", "must be at least 1"));
        }

        let hot = &self.hot_keys;
        if hot.window.is_zero() {
            return Err(ControlError::invalid("hot_keys.window_ms", "must be above zero"));
        }
        if hot.max_tracked == 0 {
            return Err(ControlError::invalid("hot_keys.max_tracked", "must be at least 1"));
        }

        let canary = &self.canary;
        if !is_label(&canary.default_variant) {
            return Err(ControlError::invalid("canary.default_variant", VARIANT_NAME_RULE));
        }
        for (name, overrides) in &canary.variants {
            let field = |key: &str| format!("canary.variants.{name}.{key}");
            if !is_label(name) {
                return Err(ControlError::invalid(format!("canary.variants.{name}"), VARIANT_NAME_RULE));
            }
            overrides
                .validate(|pair| self.pair(pair).clone(), &self.list.cache)
                .map_err(|e| ControlError::invalid(field(e.field), e.reason))?;
        }
        for (i, rule) in canary.rules.iter().enumerate() {
            let field = |key: &str| format!("canary.rules[{i}].{key}");
            if rule.variant == canary.default_variant {
                return Err(ControlError::invalid(
                    field("variant"),
                    "is the default variant; a rule would change nothing",
                ));
            }
            if !canary.variants.contains_key(&rule.variant) {
                return Err(ControlError::invalid(
                    field("variant"),
                    format!("{:?} is not defined under [canary.variants]", rule.variant),
                ));
            }
            if rule.percent > 100 {
                return Err(ControlError::invalid(field("percent"), format!("{} is above 100", rule.percent)));
            }
            if rule.pins.is_empty() && rule.stores.is_empty() && rule.cities.is_empty() && rule.percent == 0 {
                return Err(ControlError::invalid(
                    format!("canary.rules[{i}]"),
                    "matches nothing: list pins, stores or cities, or set percent",
                ));
            }
        }

        if self.shadow.sample_basis_points > 10_000 {
            return Err(ControlError::invalid("shadow.sample_basis_points", "at most 10000"));
        }
        if self.shadow.queue_capacity == 0 {
            return Err(ControlError::invalid("shadow.queue_capacity", "must be at least 1"));
        }
        self.guard.compile()?;
        Ok(())
    }

    /// The price guard's rules as the engine reads them (empty: no guard).
    pub fn guard_rules(&self) -> &GuardRules {
        &self.compiled_guard
    }

    /// The overrides of a canary variant, if it has any.
    pub fn variant(&self, name: &str) -> Option<&VariantOverrides> {
        self.canary.variants.get(name)
    }

    /// Shadow sample rate for a variant, in basis points.
    pub fn shadow_basis_points(&self, variant: &str) -> u16 {
        self.variant(variant).and_then(|v| v.shadow_basis_points).unwrap_or(self.shadow.sample_basis_points)
    }

    /// `detail.redis_bypass` as it applies to a variant.
    pub fn detail_redis_bypass(&self, variant: &str) -> bool {
        self.variant(variant).and_then(|v| v.detail_redis_bypass).unwrap_or(self.detail.redis_bypass)
    }

    /// `detail.fallback_to_list` as it applies to a variant.
    pub fn detail_fallback_to_list(&self, variant: &str) -> bool {
        self.variant(variant).and_then(|v| v.detail_fallback_to_list).unwrap_or(self.detail.fallback_to_list)
    }
}

const VARIANT_NAME_RULE: &str = "a variant name is 1 to 64 of a-z, A-Z, 0-9, '-', '_', '.'";

/// Names that go into metric labels and response headers.
fn is_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../examples/control.toml");

    #[test]
    fn minimal_file_takes_defaults() {
        assert_eq!(ControlConfig::parse("version = 1").unwrap(), ControlConfig::default());
    }

    #[test]
    fn example_file_parses_with_every_section() {
        let c = ControlConfig::parse(EXAMPLE).unwrap();
        assert_eq!(c.list.redis.read, ReadSwitch::Split { a_percent: 50 });
        assert_eq!(c.list.hbase.read, ReadSwitch::PreferLocal { local: Some(pricing_store::Cluster::A) });
        assert_eq!(c.detail.redis.read, ReadSwitch::PreferLocal { local: None });
        assert_eq!(c.detail.redis.zones["zone-2"], pricing_store::Cluster::B);
        assert_eq!(c.list.cache.stale_grace, Duration::from_secs(120));
        assert!(!c.detail.redis_bypass);
        assert!(c.detail.fallback_to_list);
        assert_eq!(c.callers.len(), 3);
        let web = &c.callers["list-web"];
        assert_eq!(web.rate_per_second, 20_000);
        assert_eq!(web.effective_burst(), 40_000);
        assert_eq!(web.token_digest(), &<[u8; 32]>::from(Sha256::digest(b"list-web-0123456789abcdef")));
        let checkout = &c.callers["checkout"];
        assert_eq!(checkout.token_digest(), &<[u8; 32]>::from(Sha256::digest(b"checkout-secret-token")));
        assert_eq!(c.limits.max_concurrent, 4096);
        assert_eq!(c.hot_keys.pin_threshold, 200);
        assert_eq!(c.canary.rules.len(), 4);
        assert_eq!(c.shadow.sample_basis_points, 10);
        assert_eq!(c.shadow_basis_points("mysql-direct"), 10_000);
        assert_eq!(c.shadow_basis_points("stable"), 10);
        assert!(c.detail_redis_bypass("mysql-direct"));
        assert!(!c.detail_redis_bypass("stable"));
        assert!(!c.projector.paused);
        assert_eq!(c.projector.redis.write, pricing_store::WriteMode::Both);
        let flash = c.guard_rules().rule(pricing_record::ActivityKind::FlashSale).unwrap();
        assert_eq!(flash.floor_share_basis_points, Some(1000));
        assert_eq!(flash.mode, pricing_engine::guard::GuardMode::Alert);
        let subsidy = c.guard_rules().rule(pricing_record::ActivityKind::Subsidy).unwrap();
        assert_eq!(subsidy.mode, pricing_engine::guard::GuardMode::Block);
    }

    #[test]
    fn the_detail_pair_reads_the_local_zone_first_by_default() {
        let c = ControlConfig::default();
        assert_eq!(c.detail.redis.read, ReadSwitch::PreferLocal { local: None });
        assert_eq!(c.list.redis.read, ReadSwitch::Split { a_percent: 50 }, "the list pair keeps both clusters warm");
        assert_eq!(invalid_field("version = 1\n[detail.redis]\nzones = { 'zone 1' = 'a' }"), "detail.redis.zones");
    }

    #[test]
    fn breakers_section_is_the_default_of_every_cluster_without_its_own() {
        let c = ControlConfig::parse(
            "version = 1\n[breakers]\nerror_percent = 30\n[list.redis.b.breaker]\nerror_percent = 70\n",
        )
        .unwrap();
        assert_eq!(c.list.redis.a.breaker.error_percent, 30);
        assert_eq!(c.list.redis.b.breaker.error_percent, 70);
        assert_eq!(c.list.hbase.a.breaker.error_percent, 30);
        assert_eq!(c.detail.redis.b.breaker.error_percent, 30);
        // The rest of the cluster's own breaker keeps the built-in defaults.
        assert_eq!(c.list.redis.b.breaker.min_calls, BreakerSettings::default().min_calls);
    }

    #[test]
    fn wrong_keys_are_refused_everywhere() {
        for text in [
            "version = 1\nlsit = 1",
            "version = 1\n[list]\nredis_bypass = true",
            "version = 1\n[list.redis]\nmode = 'split'",
            "version = 1\n[list.redis.read]\nmode = 'split'\na_percnt = 5",
            "version = 1\n[detail]\nbypass = true",
            "version = 1\n[callers.x]\ntoken = '0123456789abcdefg'\nrate_per_second = 1\nmax_concurrent = 1\nqps = 3",
            "version = 1\n[limits]\nmax_inflight = 3",
            "version = 1\n[hot_keys]\nthreshold = 3",
            "version = 1\n[breakers]\nerror_ratio = 3",
            "version = 1\n[canary]\ndefault = 'x'",
            "version = 1\n[shadow]\nrate = 3",
            "version = 1\n[projector]\npause = true",
            "version = 1\n[projector.redis]\nwrite = 'both'\nread = 'split'",
            "version = 1\n[projector.redis]\nwrite = 'only_c'",
            "version = 1\n[guard]\nmodes = 'block'",
        ] {
            assert!(matches!(ControlConfig::parse(text), Err(ControlError::Parse(_))), "accepted: {text}");
        }
        assert!(matches!(ControlConfig::parse(""), Err(ControlError::Parse(_))), "version is required");
    }

    #[test]
    fn wrong_version_is_named_as_such() {
        assert!(matches!(ControlConfig::parse("version = 2"), Err(ControlError::Version { found: 2 })));
        // Even when the file holds keys this build does not know.
        assert!(matches!(
            ControlConfig::parse("version = 3\n[new_section]\nx = 1"),
            Err(ControlError::Version { found: 3 })
        ));
    }

    /// The field an invalid control file is refused for (the control
    /// crate's tests share it).
    pub(crate) fn invalid_field(text: &str) -> String {
        match ControlConfig::parse(text) {
            Err(ControlError::Invalid { field, .. }) => field,
            other => panic!("expected an invalid setting, got {other:?}"),
        }
    }

    const CALLER: &str = "rate_per_second = 10\nmax_concurrent = 5\n";

    #[test]
    fn cross_field_errors_name_the_field() {
        assert_eq!(invalid_field(&format!("version = 1\n[callers.a]\n{CALLER}")), "callers.a");
        assert_eq!(
            invalid_field(&format!(
                "version = 1\n[callers.a]\ntoken = 'x'\ntoken_sha256 = '{}'\n{CALLER}",
                "0".repeat(64)
            )),
            "callers.a"
        );
        assert_eq!(invalid_field(&format!("version = 1\n[callers.a]\ntoken = 'short'\n{CALLER}")), "callers.a.token");
        assert_eq!(
            invalid_field(&format!("version = 1\n[callers.a]\ntoken_sha256 = 'abc'\n{CALLER}")),
            "callers.a.token_sha256"
        );
        assert_eq!(
            invalid_field(&format!(
                "version = 1\n[callers.a]\ntoken = '0123456789abcdef'\n{CALLER}[callers.b]\ntoken = '0123456789abcdef'\n{CALLER}"
            )),
            "callers.b"
        );
        assert_eq!(
            invalid_field(
                "version = 1\n[limits]\nmax_concurrent = 4\n[callers.a]\ntoken = '0123456789abcdef'\nrate_per_second = 1\nmax_concurrent = 5"
            ),
            "callers.a.max_concurrent"
        );
        assert_eq!(
            invalid_field(
                "version = 1\n[callers.a]\ntoken = '0123456789abcdef'\nrate_per_second = 0\nmax_concurrent = 5"
            ),
            "callers.a.rate_per_second"
        );
        assert_eq!(invalid_field("version = 1\n[limits]\nburst = 5"), "limits.burst");
        assert_eq!(invalid_field("version = 1\n[limits]\nmax_concurrent = 0"), "limits.max_concurrent");
        assert_eq!(invalid_field("version = 1\n[hot_keys]\nwindow_ms = 0"), "hot_keys.window_ms");
        assert_eq!(
            invalid_field("version = 1\n[list.redis.read]\nmode = 'split'\na_percent = 101"),
            "list.redis.read.a_percent"
        );
        assert_eq!(invalid_field("version = 1\n[list.cache]\nttl_ms = 0"), "list.cache.ttl_ms");
        assert_eq!(invalid_field("version = 1\n[breakers]\nbuckets = 0"), "breakers.buckets");
        assert_eq!(
            invalid_field("version = 1\n[list.hbase.b.breaker]\nhalf_open_probes = 0"),
            "list.hbase.b.breaker.half_open_probes"
        );
        assert_eq!(invalid_field("version = 1\n[shadow]\nsample_basis_points = 10001"), "shadow.sample_basis_points");
        assert_eq!(
            invalid_field("version = 1\n[[canary.rules]]\nvariant = 'beta'\npercent = 5"),
            "canary.rules[0].variant",
            "a rule must name a defined variant"
        );
        assert_eq!(
            invalid_field("version = 1\n[canary.variants.beta]\n[[canary.rules]]\nvariant = 'beta'"),
            "canary.rules[0]",
            "a rule that matches nothing"
        );
        assert_eq!(
            invalid_field("version = 1\n[canary.variants.beta]\n[[canary.rules]]\nvariant = 'beta'\npercent = 101"),
            "canary.rules[0].percent"
        );
        assert_eq!(
            invalid_field("version = 1\n[canary.variants.stable]\n[[canary.rules]]\nvariant = 'stable'\npercent = 1"),
            "canary.rules[0].variant"
        );
        assert_eq!(invalid_field("version = 1\n[canary.variants.'bad name']\n"), "canary.variants.bad name");
        assert_eq!(
            invalid_field("version = 1\n[canary.variants.x]\nshadow_basis_points = 10001"),
            "canary.variants.x.shadow_basis_points"
        );
    }

    #[test]
    fn debug_output_never_shows_a_token() {
        let c = ControlConfig::parse(EXAMPLE).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("list-web-0123456789abcdef"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }
}
