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
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use pricing_control::ControlConfig;
use pricing_proto::v1::list_pricing_client::ListPricingClient;
use pricing_store::{Cluster, DualSettings, SharedRecord};
use pricing_store_pairs::{Pair, RedisPairConfig};
use pricing_testkit::redis_cluster::{ClusterOptions, RedisCluster};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::fault_stack::{WIDE_BUDGET, base_control, seed_pair, wide_dual, write_control};

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
    clusters: [RedisCluster; 2],
    seed: Pair,
    control_path: PathBuf,
    control: Mutex<ControlConfig>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl ClusterListStack {
    /// Starts two clusters built with `options`, writes [`base_control`] as
    /// changed by `tune`, and serves the list server over them.
    pub async fn start(options: ClusterOptions, tune: impl FnOnce(&mut ControlConfig)) -> ClusterListStack {
        let (a, b) = tokio::join!(RedisCluster::start(options.clone()), RedisCluster::start(options));
        let clusters = [a, b];
        let dir = tempfile::tempdir().expect("temp dir");
        let control_path = dir.path().join("control.toml");
        let mut control = base_control();
        tune(&mut control);
        write_control(&control_path, &control);

        let mut config = pricing_list::ListConfig::default();
        config.server.metrics_listen = None;
        config.server.control_file = Some(control_path.clone());
        config.server.control_poll_ms = 50;
        config.read.tiers = vec!["redis".into()];
        config.cache = control.list.cache.clone();
        config.redis = Some(redis_pair_config(&clusters, control.list.redis.clone()));
        let seed = pricing_store_pairs::redis_pair("seed-redis", &redis_pair_config(&clusters, wide_dual()))
            .expect("seed redis pair");

        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let list_addr = listener.local_addr().expect("bound address");
        let (stop, stopped) = watch::channel(false);
        let until_stopped = async move {
            let mut rx = stopped;
            let _ = rx.wait_for(|s| *s).await;
        };
        let task = tokio::spawn(pricing_list::serve(listener, config, until_stopped));
        ClusterListStack {
            list_addr,
            clusters,
            seed,
            control_path,
            control: Mutex::new(control),
            stop,
            task: Some(task),
            _dir: dir,
        }
    }

    pub async fn list(&self) -> ListPricingClient<Channel> {
        ListPricingClient::new(crate::channel(self.list_addr).await)
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

    /// Replaces the control file (aside, then renamed over the watched path).
    pub fn rewrite_control(&self, change: impl FnOnce(&mut ControlConfig)) {
        let mut control = self.control.lock().expect("control lock");
        change(&mut control);
        write_control(&self.control_path, &control);
    }

    /// Stops the server and waits for it; the clusters go with `self`.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("list server stops within 30 s")
                .expect("list server task did not panic")
                .expect("list server exits cleanly");
        }
    }
}

impl Drop for ClusterListStack {
    fn drop(&mut self) {
        // On a failed test: stop serving; the fields kill the clusters.
        let _ = self.stop.send(true);
    }
}
