//! A store pair's section of the control file, and how a pod turns it into
//! the `DualSettings` its pair reads.
//!
//! The section is `pricing_store::DualSettings` as written in a file, with
//! two additions for seed 001's "read the machine room you are in first":
//! `zones` says which cluster sits in which zone (the values of the nodes'
//! `topology.kubernetes.io/zone` label), and `read = { mode = "prefer_local" }`
//! may leave `local` out, meaning "the cluster of this pod's zone". One
//! control file serves every pod of every zone; each pod resolves the
//! section with its own zone ([`PairSwitches::resolve`]) when the switch
//! board pushes it into the pair's live cell, so the read path itself only
//! ever sees the existing `ReadMode::PreferLocal { local }`. A pod whose zone
//! is unknown, or not in the map, reads `split` (50/50): both clusters stay
//! in use rather than one being picked at random for every pod.

use std::collections::BTreeMap;
use std::fmt;

use pricing_store::dual::ClusterSettings;
use pricing_store::{Cluster, DualSettings, ReadMode, SettingsError, WriteMode};
use serde::{Deserialize, Serialize};

/// How reads pick a cluster, as the control file says it: `ReadMode`, with
/// `prefer_local`'s `local` optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum ReadSwitch {
    /// Per request at random: A with `a_percent` percent, B otherwise.
    Split {
        #[serde(default = "half")]
        a_percent: u8,
    },
    /// Only A (the manual switch).
    OnlyA {},
    /// Only B (the manual switch).
    OnlyB {},
    /// The local cluster first, the other on failure. `local` absent: the
    /// cluster the pair's `zones` map gives this pod's zone.
    PreferLocal {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        local: Option<Cluster>,
    },
}

fn half() -> u8 {
    50
}

impl Default for ReadSwitch {
    fn default() -> Self {
        ReadSwitch::Split { a_percent: half() }
    }
}

impl From<ReadMode> for ReadSwitch {
    fn from(mode: ReadMode) -> ReadSwitch {
        match mode {
            ReadMode::Split { a_percent } => ReadSwitch::Split { a_percent },
            ReadMode::OnlyA {} => ReadSwitch::OnlyA {},
            ReadMode::OnlyB {} => ReadSwitch::OnlyB {},
            ReadMode::PreferLocal { local } => ReadSwitch::PreferLocal { local: Some(local) },
        }
    }
}

/// One store pair's switches: `[list.redis]`, `[list.hbase]`, `[detail.redis]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PairSwitches {
    pub read: ReadSwitch,
    pub write: WriteMode,
    /// In `only_a` / `only_b`, ask the other cluster when the forced one fails.
    pub failover_in_forced_mode: bool,
    /// Budget of a read at a cluster standing alone (see `DualSettings`).
    #[serde(rename = "alone_timeout_ms", with = "pricing_store::settings::millis")]
    pub alone_timeout: std::time::Duration,
    pub a: ClusterSettings,
    pub b: ClusterSettings,
    /// Zone name -> the cluster in that zone. A BTreeMap for a stable order
    /// in the admin view and in diffs.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub zones: BTreeMap<String, Cluster>,
}

impl Default for PairSwitches {
    fn default() -> PairSwitches {
        DualSettings::default().into()
    }
}

impl From<DualSettings> for PairSwitches {
    fn from(settings: DualSettings) -> PairSwitches {
        PairSwitches {
            read: settings.read.into(),
            write: settings.write,
            failover_in_forced_mode: settings.failover_in_forced_mode,
            alone_timeout: settings.alone_timeout,
            a: settings.a,
            b: settings.b,
            zones: BTreeMap::new(),
        }
    }
}

/// Where a pod's `prefer_local` read goes first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locality {
    /// Not `prefer_local`, or `prefer_local` with `local` written out.
    NotByZone,
    /// The zone map gives this pod's zone a cluster.
    Zone { zone: String, local: Cluster },
    /// `prefer_local` without `local`, and this pod's zone is unknown or
    /// not in the map: read `split` instead.
    Unknown { zone: Option<String> },
}

impl fmt::Display for Locality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Locality::NotByZone => f.write_str("not by zone"),
            Locality::Zone { zone, local } => write!(f, "zone {zone} reads cluster {} first", local.as_str()),
            Locality::Unknown { zone: None } => f.write_str("this pod's zone is unknown"),
            Locality::Unknown { zone: Some(zone) } => write!(f, "zone {zone} is not in the pair's zones"),
        }
    }
}

impl PairSwitches {
    /// The settings a pod in `zone` reads with, and how its local cluster
    /// was found.
    pub fn resolve(&self, zone: Option<&str>) -> (DualSettings, Locality) {
        let (read, locality) = match &self.read {
            ReadSwitch::Split { a_percent } => (ReadMode::Split { a_percent: *a_percent }, Locality::NotByZone),
            ReadSwitch::OnlyA {} => (ReadMode::OnlyA {}, Locality::NotByZone),
            ReadSwitch::OnlyB {} => (ReadMode::OnlyB {}, Locality::NotByZone),
            ReadSwitch::PreferLocal { local: Some(local) } => {
                (ReadMode::PreferLocal { local: *local }, Locality::NotByZone)
            }
            ReadSwitch::PreferLocal { local: None } => match zone.and_then(|z| self.zones.get(z).map(|c| (z, *c))) {
                Some((zone, local)) => {
                    (ReadMode::PreferLocal { local }, Locality::Zone { zone: zone.to_owned(), local })
                }
                None => (ReadMode::default(), Locality::Unknown { zone: zone.map(str::to_owned) }),
            },
        };
        let settings = DualSettings {
            read,
            write: self.write,
            failover_in_forced_mode: self.failover_in_forced_mode,
            alone_timeout: self.alone_timeout,
            a: self.a.clone(),
            b: self.b.clone(),
        };
        (settings, locality)
    }

    /// Values and cross-field rules; the error's field is relative to the section.
    pub fn validate(&self) -> Result<(), SettingsError> {
        for zone in self.zones.keys() {
            if !is_zone(zone) {
                return Err(SettingsError {
                    field: "zones",
                    reason: format!("{zone:?} is not a zone name (1 to 63 of a-z, A-Z, 0-9, '-', '_', '.')"),
                });
            }
        }
        // Every other rule is DualSettings' own; the zone does not change them.
        self.resolve(None).0.validate()
    }
}

/// A zone as Kubernetes writes it in a label value.
fn is_zone(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> PairSwitches {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn prefer_local_without_local_resolves_the_pods_zone_through_the_map() {
        let pair = parse("read = { mode = 'prefer_local' }\nzones = { zone-1 = 'a', zone-2 = 'b' }");
        let (settings, locality) = pair.resolve(Some("zone-2"));
        assert_eq!(settings.read, ReadMode::PreferLocal { local: Cluster::B });
        assert_eq!(locality, Locality::Zone { zone: "zone-2".into(), local: Cluster::B });
        assert_eq!(pair.resolve(Some("zone-1")).0.read, ReadMode::PreferLocal { local: Cluster::A });
    }

    #[test]
    fn an_unknown_zone_reads_split_and_says_why() {
        let pair = parse("read = { mode = 'prefer_local' }\nzones = { zone-1 = 'a' }");
        let (settings, locality) = pair.resolve(None);
        assert_eq!(settings.read, ReadMode::Split { a_percent: 50 });
        assert_eq!(locality, Locality::Unknown { zone: None });
        let (settings, locality) = pair.resolve(Some("zone-9"));
        assert_eq!(settings.read, ReadMode::Split { a_percent: 50 });
        assert_eq!(locality.to_string(), "zone zone-9 is not in the pair's zones");
    }

    #[test]
    fn an_explicit_local_and_the_other_modes_ignore_the_zone() {
        let pair = parse("read = { mode = 'prefer_local', local = 'a' }\nzones = { zone-2 = 'b' }");
        assert_eq!(
            pair.resolve(Some("zone-2")),
            (
                DualSettings { read: ReadMode::PreferLocal { local: Cluster::A }, ..DualSettings::default() },
                Locality::NotByZone
            )
        );
        let pair = parse("read = { mode = 'only_b' }\nwrite = 'only_b'");
        let (settings, _) = pair.resolve(Some("zone-1"));
        assert_eq!((settings.read, settings.write), (ReadMode::OnlyB {}, WriteMode::OnlyB));
    }

    #[test]
    fn the_section_is_checked_as_strictly_as_dual_settings() {
        for text in [
            "read = { mode = 'prefer_local', locl = 'a' }",
            "read = { mode = 'prefer_local', local = 'c' }",
            "zones = { zone-1 = 'c' }",
            "zone = { zone-1 = 'a' }",
        ] {
            assert!(toml::from_str::<PairSwitches>(text).is_err(), "accepted: {text}");
        }
        assert_eq!(parse("zones = { 'bad zone' = 'a' }").validate().unwrap_err().field, "zones");
        assert_eq!(parse("read = { mode = 'split', a_percent = 101 }").validate().unwrap_err().field, "read.a_percent");
        // The serialized form reads back the same (tests write control files from values).
        let pair = parse("read = { mode = 'prefer_local' }\nzones = { zone-1 = 'a' }");
        assert_eq!(toml::from_str::<PairSwitches>(&toml::to_string(&pair).unwrap()).unwrap(), pair);
        let from: PairSwitches = DualSettings::default().into();
        assert_eq!(from, PairSwitches::default());
    }
}
