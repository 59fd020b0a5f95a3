//! The names of the read path's parts as types: [`TierId`] for a tier of a
//! read chain (what `[read] tiers` lists), [`PairId`] for a dual-cluster
//! store pair (a config section, a control-file section, the projector's
//! targets). A config string becomes one of these once, where the file is
//! parsed; everything after matches on the enum. [`as_str`](TierId::as_str)
//! gives the config spelling back, which is also the metric label value.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::dual::Cluster;

/// A store tier a read chain can list, in the config's spelling: `redis`,
/// `hbase`, `sql`. The in-process cache in front of every chain is not a
/// tier (`chain::Source::Memory` says that it answered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TierId {
    /// The Redis pair.
    Redis,
    /// The HBase pair.
    Hbase,
    /// The SQL source of truth (MySQL/MariaDB, or the embedded SQLite).
    Sql,
}

/// A dual-cluster store pair, in the config's spelling: `redis`, `hbase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PairId {
    Redis,
    Hbase,
}

/// A name that is not one of the enum's spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {found:?} (expected one of: {expected})")]
pub struct UnknownId {
    /// "tier" or "pair".
    pub what: &'static str,
    pub found: String,
    /// The accepted spellings, comma-separated.
    pub expected: &'static str,
}

impl TierId {
    pub const ALL: [TierId; 3] = [TierId::Redis, TierId::Hbase, TierId::Sql];

    /// The config spelling, also the `tier` metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            TierId::Redis => "redis",
            TierId::Hbase => "hbase",
            TierId::Sql => "sql",
        }
    }

    /// The pair behind this tier; `None` for the SQL source.
    pub const fn pair(self) -> Option<PairId> {
        match self {
            TierId::Redis => Some(PairId::Redis),
            TierId::Hbase => Some(PairId::Hbase),
            TierId::Sql => None,
        }
    }
}

impl PairId {
    pub const ALL: [PairId; 2] = [PairId::Redis, PairId::Hbase];

    /// The config spelling (`[redis]`, `[list.hbase]`), also the pair's
    /// name in metrics and errors.
    pub const fn as_str(self) -> &'static str {
        match self {
            PairId::Redis => "redis",
            PairId::Hbase => "hbase",
        }
    }

    /// The store name of one cluster of the pair: `redis-a`, `hbase-b`.
    pub const fn cluster_name(self, cluster: Cluster) -> &'static str {
        match (self, cluster) {
            (PairId::Redis, Cluster::A) => "redis-a",
            (PairId::Redis, Cluster::B) => "redis-b",
            (PairId::Hbase, Cluster::A) => "hbase-a",
            (PairId::Hbase, Cluster::B) => "hbase-b",
        }
    }
}

impl From<PairId> for TierId {
    fn from(pair: PairId) -> TierId {
        match pair {
            PairId::Redis => TierId::Redis,
            PairId::Hbase => TierId::Hbase,
        }
    }
}

// Parsing, printing and serde through the config spelling. Serde uses
// `UnknownId`'s message (its derive would say "unknown variant"), so that a
// config error names the word "tier" or "pair" and lists what is accepted.
macro_rules! by_name {
    ($ty:ty, $what:literal, $expected:literal) => {
        impl FromStr for $ty {
            type Err = UnknownId;
            fn from_str(s: &str) -> Result<$ty, UnknownId> {
                <$ty>::ALL.into_iter().find(|id| id.as_str() == s).ok_or_else(|| UnknownId {
                    what: $what,
                    found: s.to_owned(),
                    expected: $expected,
                })
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<$ty, D::Error> {
                let name = String::deserialize(deserializer)?;
                name.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

by_name!(TierId, "tier", "redis, hbase, sql");
by_name!(PairId, "pair", "redis, hbase");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip_and_unknown_names_are_named() {
        for tier in TierId::ALL {
            assert_eq!(tier.as_str().parse::<TierId>(), Ok(tier));
            assert_eq!(serde_json::to_string(&tier).unwrap(), format!("\"{tier}\""));
            assert_eq!(serde_json::from_str::<TierId>(&format!("\"{tier}\"")).unwrap(), tier);
        }
        for pair in PairId::ALL {
            assert_eq!(pair.as_str().parse::<PairId>(), Ok(pair));
            assert_eq!(TierId::from(pair).pair(), Some(pair));
            assert_eq!(serde_json::from_str::<PairId>(&format!("\"{pair}\"")).unwrap(), pair);
        }
        assert_eq!(TierId::Sql.pair(), None);
        let err = "memcached".parse::<TierId>().unwrap_err();
        assert_eq!(err.to_string(), r#"unknown tier "memcached" (expected one of: redis, hbase, sql)"#);
        // Case matters, as in every other config value.
        assert!("Redis".parse::<TierId>().is_err());
        assert!("sql".parse::<PairId>().is_err());
        let err = serde_json::from_str::<PairId>("\"mysql\"").unwrap_err();
        assert!(err.to_string().contains(r#"unknown pair "mysql""#), "{err}");
    }

    #[test]
    fn cluster_names_are_pair_dash_side() {
        for pair in PairId::ALL {
            for cluster in [Cluster::A, Cluster::B] {
                assert_eq!(pair.cluster_name(cluster), format!("{pair}-{}", cluster.as_str()));
            }
        }
    }
}
