//! The four clusters the projector writes (two per pair), built from config.

use std::sync::Arc;

use pricing_store::{Cluster, DualSettings, PairId, RecordWriter};
use pricing_store_hbase::HbaseStore;
use pricing_store_pairs::{Pair, hbase_pair, redis_pair};

use crate::config::ProjectorConfig;
use crate::error::{ConfigError, ProjectorError};
use crate::raw::{HbaseRaw, RawReader, RedisRaw};

/// Pair names; clusters are `<pair>-a` and `<pair>-b` (`redis-b`, `hbase-a`).
pub const REDIS: &str = PairId::Redis.as_str();
pub const HBASE: &str = PairId::Hbase.as_str();

/// One cluster of a pair.
pub struct ClusterTarget {
    /// Store name, also the retry queue's target: "redis-a".
    pub name: String,
    pub cluster: Cluster,
    pub writer: Arc<dyn RecordWriter>,
    pub raw: Arc<dyn RawReader>,
}

/// A pair: its dual writer (write mode, per-cluster timeouts) and both clusters.
pub struct PairTarget {
    pub pair: Pair,
    pub clusters: [ClusterTarget; 2],
}

impl PairTarget {
    pub fn settings(&self) -> Arc<DualSettings> {
        self.pair.settings.load_full()
    }
}

/// Every configured pair.
pub struct Targets {
    pub pairs: Vec<PairTarget>,
}

fn pair_error(e: impl std::fmt::Display) -> ProjectorError {
    ProjectorError::Config(ConfigError::Invalid { field: "store pair", reason: e.to_string() })
}

impl Targets {
    /// Builds the pairs of `config` (needs a Tokio runtime; connects lazily)
    /// and makes sure each HBase cluster has the table: a cluster that is
    /// down now is only logged, its writes fail into the retry queue.
    pub async fn connect(config: &ProjectorConfig) -> Result<Targets, ProjectorError> {
        let mut pairs = Vec::new();
        if let Some(redis) = &config.redis {
            let pair = redis_pair(REDIS, redis).map_err(pair_error)?;
            let raw = |c: &pricing_store_pairs::RedisClusterConfig, name: &str| -> Arc<dyn RawReader> {
                Arc::new(RedisRaw::new(c.to_store_config(name)))
            };
            let clusters = [
                cluster(&pair, Cluster::A, raw(&redis.a, &format!("{REDIS}-a"))),
                cluster(&pair, Cluster::B, raw(&redis.b, &format!("{REDIS}-b"))),
            ];
            pairs.push(PairTarget { pair, clusters });
        }
        if let Some(hbase) = &config.hbase {
            let pair = hbase_pair(HBASE, hbase).map_err(pair_error)?;
            for (side, c) in [("a", &hbase.a), ("b", &hbase.b)] {
                let store = HbaseStore::new(c.to_store_config(&format!("{HBASE}-{side}"))).map_err(pair_error)?;
                if let Err(error) = store.ensure_table().await {
                    tracing::error!(store = %format!("{HBASE}-{side}"), %error, "hbase table not ensured; writes will fail into the retry queue");
                }
            }
            let raw = |c: &pricing_store_pairs::HbaseClusterConfig, name: &str| -> Arc<dyn RawReader> {
                Arc::new(HbaseRaw::new(c.to_store_config(name)))
            };
            let clusters = [
                cluster(&pair, Cluster::A, raw(&hbase.a, &format!("{HBASE}-a"))),
                cluster(&pair, Cluster::B, raw(&hbase.b, &format!("{HBASE}-b"))),
            ];
            pairs.push(PairTarget { pair, clusters });
        }
        Ok(Targets { pairs })
    }

    /// Every cluster, in config order.
    pub fn clusters(&self) -> impl Iterator<Item = (&PairTarget, &ClusterTarget)> {
        self.pairs.iter().flat_map(|p| p.clusters.iter().map(move |c| (p, c)))
    }

    /// The cluster called `name` ("redis-b").
    pub fn cluster(&self, name: &str) -> Option<(&PairTarget, &ClusterTarget)> {
        self.clusters().find(|(_, c)| c.name == name)
    }

    pub fn names(&self) -> Vec<String> {
        self.clusters().map(|(_, c)| c.name.clone()).collect()
    }

    /// Checks `--only` names against the configured clusters.
    pub fn check_names(&self, names: &[String]) -> Result<(), ProjectorError> {
        for name in names {
            if self.cluster(name).is_none() {
                return Err(ProjectorError::Invalid(format!(
                    "unknown cluster {name:?}; configured: {}",
                    self.names().join(", ")
                )));
            }
        }
        Ok(())
    }
}

fn cluster(pair: &Pair, side: Cluster, raw: Arc<dyn RawReader>) -> ClusterTarget {
    let writer = Arc::clone(
        &pair.clusters[match side {
            Cluster::A => 0,
            Cluster::B => 1,
        }],
    );
    ClusterTarget { name: writer.name().to_owned(), cluster: side, writer, raw }
}
