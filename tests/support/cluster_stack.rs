//! The list server over two real Redis Clusters: what issue 12 tried as an
//! operator would. Each cluster (A and B) is three masters and three
//! replicas of throwaway redis-server processes
//! (`pricing_testkit::redis_cluster`), optionally with a proxy in front of
//! every node; the list server runs through its production `serve` path
//! under a watched control file, with `tiers = ["redis"]` and a `[redis]`
//! pair whose clusters are `cluster = true` with every node as a seed.
//!
//! Layout: [`ClusterListStack::start`] starts both clusters, writes the
//! fault tests' control file ([`base_control`]: wide store budgets, a quick
//! breaker, the memory cache out of the way so that every batch reads
//! Redis) as changed by the test, and serves. The pair section is written
//! as config text ([`redis_pair_toml`]) and parsed as a deployment's file
//! would be, so a setting the client gains later takes its default here.
//! Seeding goes through a pair of the harness's own (`seed-redis`), built
//! before any fault. Faults are staged on the clusters
//! ([`ClusterListStack::cluster_mut`]: kill, reshard, proxy modes);
//! observation is at the nodes (INFO commandstats).

use std::net::SocketAddr;

use pricing_control::ControlConfig;
use pricing_proto::v1::list_pricing_client::ListPricingClient;
use pricing_store::{Cluster, DualSettings, SharedRecord};
use pricing_store_pairs::{Pair, RedisPairConfig};
use pricing_testkit::redis_cluster::{ClusterOptions, RedisCluster};
use tonic::transport::Channel;

use crate::fault_stack::{ControlledList, WIDE_BUDGET, base_control, seed_pair, wide_dual};

/// Commands that read records (counted at the nodes).
pub const READ_COMMANDS: &[&str] = &["mget", "get"];

/// The `a = {...}` and `b = {...}` lines of a `[redis]` section over two
/// clusters: `cluster = true`, every node a seed, the harness's budgets.
pub fn redis_pair_toml(clusters: &[RedisCluster; 2]) -> String {
    let side = |cluster: &RedisCluster| {
        let urls: Vec<String> = cluster.urls().iter().map(|u| format!("{u:?}")).collect();
        format!(
            "{{ urls = [{}], cluster = true, connect_timeout_ms = 500, response_timeout_ms = {} }}",
            urls.join(", "),
            WIDE_BUDGET.as_millis()
        )
    };
    format!("a = {}\nb = {}\n", side(&clusters[0]), side(&clusters[1]))
}

/// The pair config over two clusters, with `settings`.
pub fn redis_pair_config(clusters: &[RedisCluster; 2], settings: DualSettings) -> RedisPairConfig {
    let mut config: RedisPairConfig = toml::from_str(&redis_pair_toml(clusters)).expect("a valid [redis] section");
    config.settings = settings;
    config
}

fn index(cluster: Cluster) -> usize {
    match cluster {
        Cluster::A => 0,
        Cluster::B => 1,
    }
}

/// The list server under a control file over two Redis Clusters.
pub struct ClusterListStack {
    pub list_addr: SocketAddr,
    /// First, so that a failed test stops serving before the clusters go.
    server: ControlledList,
    clusters: [RedisCluster; 2],
    seed: Pair,
}

impl ClusterListStack {
    /// Starts two clusters built with `options`, writes [`base_control`] as
    /// changed by `tune`, and serves the list server over them.
    pub async fn start(options: ClusterOptions, tune: impl FnOnce(&mut ControlConfig)) -> ClusterListStack {
        let (a, b) = tokio::join!(RedisCluster::start(options.clone()), RedisCluster::start(options));
        let clusters = [a, b];
        let mut control = base_control();
        tune(&mut control);
        let mut config = pricing_list::ListConfig::default();
        config.read.tiers = vec![pricing_store::TierId::Redis];
        config.redis = Some(redis_pair_config(&clusters, control.list.redis.resolve(None).0));
        let seed = pricing_store_pairs::redis_pair("seed-redis", &redis_pair_config(&clusters, wide_dual()))
            .expect("seed redis pair");
        let server = ControlledList::serve(config, control).await;
        ClusterListStack { list_addr: server.list_addr, server, clusters, seed }
    }

    pub async fn list(&self) -> ListPricingClient<Channel> {
        self.server.list().await
    }

    /// Versioned write to both clusters.
    pub async fn seed(&self, records: &[SharedRecord]) {
        seed_pair(&self.seed, records).await;
    }

    pub fn cluster(&self, cluster: Cluster) -> &RedisCluster {
        &self.clusters[index(cluster)]
    }

    pub fn cluster_mut(&mut self, cluster: Cluster) -> &mut RedisCluster {
        &mut self.clusters[index(cluster)]
    }

    /// Record reads (MGET, GET) executed by one cluster's running nodes.
    pub fn reads(&self, cluster: Cluster) -> u64 {
        self.cluster(cluster).command_calls(READ_COMMANDS)
    }

    /// Replaces the control file (see [`ControlledList::rewrite_control`]).
    pub fn rewrite_control(&self, change: impl FnOnce(&mut ControlConfig)) {
        self.server.rewrite_control(change);
    }

    /// Stops the server and waits for it; the clusters go with `self`.
    pub async fn stop(self) {
        self.server.stop().await;
    }
}
