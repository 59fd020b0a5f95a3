//! The four clusters the projector writes (two per pair), built from config.

use std::sync::Arc;

use pricing_store::{Cluster, DualSettings, Inspect, PairId, RecordWriter};
use pricing_store_hbase::HbaseStore;
use pricing_store_pairs::{Pair, hbase_pair, redis_pair};

use crate::config::ProjectorConfig;
use crate::error::{ConfigError, ProjectorError};

/// Pair names; clusters are `<pair>-a` and `<pair>-b` (`redis-b`, `hbase-a`).
pub const REDIS: &str = PairId::Redis.as_str();
pub const HBASE: &str = PairId::Hbase.as_str();

/// One cluster of a pair.
pub struct ClusterTarget {
    /// Store name, also the retry queue's target: "redis-a".
    pub name: String,
    pub cluster: Cluster,
    pub writer: Arc<dyn RecordWriter>,
    /// Raw reads of the same cluster through the same store (the reconciler).
    pub inspect: Arc<dyn Inspect>,
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
            let clusters = [cluster(&pair, Cluster::A), cluster(&pair, Cluster::B)];
            pairs.push(PairTarget { pair, clusters });
        }
        if let Some(hbase) = &config.hbase {
            let pair = hbase_pair(HBASE, hbase).map_err(pair_error)?;
            for (side, c) in [(Cluster::A, &hbase.a), (Cluster::B, &hbase.b)] {
                let name = PairId::Hbase.cluster_name(side);
                let store = HbaseStore::new(c.to_store_config(name)).map_err(pair_error)?;
                if let Err(error) = store.ensure_table().await {
                    tracing::error!(store = name, %error, "hbase table not ensured; writes will fail into the retry queue");
                }
            }
            let clusters = [cluster(&pair, Cluster::A), cluster(&pair, Cluster::B)];
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

fn cluster(pair: &Pair, side: Cluster) -> ClusterTarget {
    let i = match side {
        Cluster::A => 0,
        Cluster::B => 1,
    };
    let writer = Arc::clone(&pair.clusters[i]);
    let inspect = Arc::clone(&pair.inspectors[i]);
    ClusterTarget { name: writer.name().to_owned(), cluster: side, writer, inspect }
}
