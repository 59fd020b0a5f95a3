//! The stack seed 001's long-outage drill runs against: MariaDB (the source
//! of truth, a fresh database seeded with the demo catalogue), two
//! redis-server processes (clusters A and B), the projector (its incremental
//! loop running in the background), the list server and the detail server,
//! all three steered by ONE control file, as in production.
//!
//! Layout: [`DrillStack::start`] seeds the database, writes the control file
//! ([`drill_control`]), projects the catalogue into both clusters with a full
//! sync, starts the projector's incremental loop and serves both servers
//! through their production `serve` (the binaries' own entry points: the
//! control file steers the pairs exactly as in a pod). [`DrillStack::rewrite_control`]
//! replaces the control file the way a ConfigMap update does, and
//! [`DrillStack::wait_applied`] waits until the three readers of the file
//! (list, detail, projector) have each applied a switch. The Redis servers are
//! reached directly (no proxy): the drill loses a whole cluster by killing
//! its process and brings it back empty with a restart.
//!
//! The two clusters are either standalone redis-server processes
//! ([`Backing::Standalone`]) or real Redis Clusters of three masters and
//! three replicas each ([`Backing::Clusters`], `pricing_testkit::redis_cluster`).
//! Losing "cluster A" whole kills every process of A; its recovery starts
//! them again, empty (a cluster's nodes keep their `nodes.conf`, so the
//! cluster reforms with the same slots and no data).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pricing_control::ControlConfig;
use pricing_detail::DetailConfig;
use pricing_projector::{Progress, Projector, ProjectorConfig, Scope};
use pricing_proto::v1::detail_pricing_client::DetailPricingClient;
use pricing_proto::v1::list_pricing_client::ListPricingClient;
use pricing_record::GoodsId;
use pricing_store::{Cluster, SharedRecord};
use pricing_store_sql::SqlStore;
use pricing_testkit::net::{Shutdown, eventually};
use pricing_testkit::redis::RedisServer;
use pricing_testkit::redis_cluster::{ClusterOptions, RedisCluster};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::fault_stack::{WIDE_BUDGET, base_control, cluster_settings, redis_pair_config, wide_dual, write_control};
use crate::real_stack::{command_calls, counter};

/// What stands for the two Redis clusters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    /// One redis-server process per cluster.
    Standalone,
    /// Two Redis Clusters of 3 masters + 3 replicas.
    Clusters,
}

enum Stores {
    Standalone([RedisServer; 2]),
    Clusters([RedisCluster; 2]),
}

/// Wait on a condition at most this long.
const WAIT: Duration = Duration::from_secs(30);

/// The control file the drill starts from: the fault tests' base (caller
/// account, wide budgets, quick breakers, the list cache out of the way),
/// the detail pair with wide budgets and the zone map `zone-1` -> A,
/// `zone-2` -> B (its read mode left at the default: local zone first), and
/// the projector writing both clusters.
pub fn drill_control() -> ControlConfig {
    let mut control = base_control();
    control.detail.redis.a = cluster_settings(WIDE_BUDGET);
    control.detail.redis.b = cluster_settings(WIDE_BUDGET);
    control.detail.redis.zones = [("zone-1".to_owned(), Cluster::A), ("zone-2".to_owned(), Cluster::B)].into();
    control
}

fn index(cluster: Cluster) -> usize {
    match cluster {
        Cluster::A => 0,
        Cluster::B => 1,
    }
}

/// See the module doc.
pub struct DrillStack {
    pub list_addr: SocketAddr,
    pub detail_addr: SocketAddr,
    /// A direct connection to the database: what the records really are.
    pub truth: Arc<SqlStore>,
    pub projector: Arc<Projector>,
    stores: Stores,
    control_path: PathBuf,
    control: Mutex<ControlConfig>,
    stop: Shutdown,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl DrillStack {
    /// A database of `goods` demo goods projected into both clusters, and
    /// the three readers of the control file running; the detail server
    /// runs in `detail_zone`.
    pub async fn start(goods: u64, detail_zone: Option<&str>) -> DrillStack {
        DrillStack::start_on(Backing::Standalone, goods, detail_zone).await
    }

    /// As [`DrillStack::start`], on the given stand-ins for the clusters.
    pub async fn start_on(backing: Backing, goods: u64, detail_zone: Option<&str>) -> DrillStack {
        // The process-wide recorder first: the readers of the control file
        // count and gauge from their first moment, before any server serves.
        let _ = pricing_telemetry::prometheus();
        let url = pricing_testkit::mysql::fresh_database("drill").await;
        let truth = Arc::new(SqlStore::connect(&url).await.expect("connect to the test database"));
        let demo = pricing_store_sql::demo::DemoOptions { goods, ..Default::default() };
        pricing_store_sql::demo::seed(&truth, demo).await.expect("seed the demo catalogue");
        let stores = match backing {
            Backing::Standalone => Stores::Standalone([RedisServer::start(), RedisServer::start()]),
            Backing::Clusters => Stores::Clusters([
                RedisCluster::start(ClusterOptions::default()).await,
                RedisCluster::start(ClusterOptions::default()).await,
            ]),
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let control_path = dir.path().join("control.toml");
        let control = drill_control();
        write_control(&control_path, &control);

        let projector = Projector::connect(projector_config(&url, &stores, &control_path)).await.expect("projector");
        assert!(projector.control().is_some(), "the control file steers the projector");
        let full = projector.full(&Scope::All, false, &Progress::logs_only()).await.expect("first full sync");
        for name in ["redis-a", "redis-b"] {
            assert_eq!(full.targets[name].written, goods, "first full sync into {name}");
        }
        // Caught up before the drill: the loop then only sees the drill's own changes.
        projector.incremental_pass().await.expect("catch-up pass");
        let projector = Arc::new(projector);

        let stop = Shutdown::new();
        let mut tasks: Vec<JoinHandle<anyhow::Result<()>>> = Vec::new();
        let looping = Arc::clone(&projector);
        let shutdown = stop.signal();
        tasks.push(tokio::spawn(
            async move { looping.run_incremental(false, shutdown).await.map_err(anyhow::Error::from) },
        ));

        let pair = pair_config(&stores);
        let mut list = pricing_list::ListConfig::default();
        list.server.metrics_listen = None;
        list.server.control_file = Some(control_path.clone());
        list.server.control_poll_ms = 50;
        list.read.tiers = vec![pricing_store::TierId::Redis];
        list.cache = control.list.cache.clone();
        list.redis = Some(pair.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let list_addr = listener.local_addr().expect("bound address");
        tasks.push(tokio::spawn(pricing_list::serve(listener, list, stop.signal())));

        let mut detail = DetailConfig::default();
        detail.server.metrics_listen = None;
        detail.server.control_file = Some(control_path.clone());
        detail.server.control_poll_ms = 50;
        detail.server.zone = detail_zone.map(str::to_owned);
        detail.source.database_url = Some(url.clone());
        detail.checkout.quote_secret = "drill".into();
        detail.redis = Some(pair);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let detail_addr = listener.local_addr().expect("bound address");
        tasks.push(tokio::spawn(pricing_detail::serve(listener, detail, stop.signal())));

        DrillStack {
            list_addr,
            detail_addr,
            truth,
            projector,
            stores,
            control_path,
            control: Mutex::new(control),
            stop,
            tasks,
            _dir: dir,
        }
    }

    pub async fn list(&self) -> ListPricingClient<Channel> {
        ListPricingClient::new(crate::channel(self.list_addr).await)
    }

    pub async fn detail(&self) -> DetailPricingClient<Channel> {
        DetailPricingClient::new(crate::channel(self.detail_addr).await)
    }

    /// The records of `ids` as MySQL holds them.
    pub async fn records(&self, ids: &[GoodsId]) -> Vec<SharedRecord> {
        use pricing_store::RecordStore;
        self.truth.fetch(ids).await.expect("read the catalogue")
    }

    /// Loses a whole cluster: every one of its processes killed.
    pub fn lose(&mut self, cluster: Cluster) {
        tokio::task::block_in_place(|| match &mut self.stores {
            Stores::Standalone(servers) => servers[index(cluster)].kill(),
            Stores::Clusters(clusters) => {
                let lost = &mut clusters[index(cluster)];
                for node in 0..lost.node_count() {
                    lost.kill(node);
                }
            }
        });
    }

    /// Starts a lost cluster again, empty, and waits until it serves.
    pub async fn recover_empty(&mut self, cluster: Cluster) {
        match &mut self.stores {
            Stores::Standalone(servers) => tokio::task::block_in_place(|| servers[index(cluster)].restart()),
            Stores::Clusters(clusters) => {
                let lost = &mut clusters[index(cluster)];
                for node in 0..lost.node_count() {
                    lost.restart(node).await;
                }
                lost.wait_healthy().await;
            }
        }
    }

    /// MGET commands a cluster has executed since its processes started.
    pub fn mget_calls(&self, cluster: Cluster) -> u64 {
        match &self.stores {
            Stores::Standalone(servers) => {
                command_calls(&servers[index(cluster)].command(&["INFO", "commandstats"]), "mget")
            }
            Stores::Clusters(clusters) => clusters[index(cluster)].command_calls(&["mget"]),
        }
    }

    /// Keys a cluster holds (its masters' keys, for a Redis Cluster).
    pub fn keys(&self, cluster: Cluster) -> u64 {
        let dbsize = |reply: String| -> u64 {
            reply.trim().trim_start_matches(':').parse().unwrap_or_else(|_| panic!("DBSIZE reply {reply:?}"))
        };
        match &self.stores {
            Stores::Standalone(servers) => dbsize(servers[index(cluster)].command(&["DBSIZE"])),
            Stores::Clusters(clusters) => {
                let c = &clusters[index(cluster)];
                c.masters().into_iter().map(|m| dbsize(c.command(m, &["DBSIZE"]))).sum()
            }
        }
    }

    /// A store reading one cluster directly.
    pub fn redis_store(&self, cluster: Cluster) -> pricing_store_redis::RedisStore {
        let name = format!("drill-check-{}", cluster.as_str());
        let config = match &self.stores {
            Stores::Standalone(servers) => {
                pricing_store_redis::RedisConfig::standalone(name, servers[index(cluster)].url())
            }
            Stores::Clusters(clusters) => {
                pricing_store_redis::RedisConfig::cluster(name, clusters[index(cluster)].urls())
            }
        };
        pricing_store_redis::RedisStore::new(config).expect("redis store")
    }

    /// The control file in force (as last written).
    pub fn control(&self) -> ControlConfig {
        self.control.lock().expect("control lock").clone()
    }

    /// Replaces the control file as a ConfigMap update does (written aside,
    /// renamed over the watched path).
    pub fn rewrite_control(&self, change: impl FnOnce(&mut ControlConfig)) {
        let mut control = self.control.lock().expect("control lock");
        change(&mut control);
        write_control(&self.control_path, &control);
    }

    /// Waits until each of the three readers of the control file (list
    /// server, detail server, projector) has applied a change of `switch`
    /// since `before` (read with [`switch_changes`] before the rewrite): each
    /// counts every changed switch of the file once.
    pub async fn wait_applied(&self, switch: &str, before: u64) {
        eventually(&format!("list, detail and projector to apply {switch}"), WAIT, || async {
            (switch_changes(switch) >= before + 3).then_some(())
        })
        .await;
    }

    /// Stops the servers and the projector's loop and waits for them.
    pub async fn stop(mut self) {
        self.stop.stop();
        for task in std::mem::take(&mut self.tasks) {
            tokio::time::timeout(WAIT, task)
                .await
                .expect("stops within the wait")
                .expect("task did not panic")
                .expect("exits cleanly");
        }
    }
}

impl Drop for DrillStack {
    fn drop(&mut self) {
        self.stop.stop();
    }
}

/// How often a switch was changed, counted over every reader of a control
/// file in this process.
pub fn switch_changes(switch: &str) -> u64 {
    counter("pricing_switch_changes_total", &[("switch", switch)])
}

/// Each cluster's seed URLs and whether it is a Redis Cluster.
fn endpoints(stores: &Stores) -> [(Vec<String>, bool); 2] {
    match stores {
        Stores::Standalone(servers) => servers.each_ref().map(|s| (vec![s.url()], false)),
        Stores::Clusters(clusters) => clusters.each_ref().map(|c| (c.urls(), true)),
    }
}

fn pair_config(stores: &Stores) -> pricing_store_pairs::RedisPairConfig {
    let [a, b] = endpoints(stores);
    let mut pair = redis_pair_config(&[a.0[0].clone(), b.0[0].clone()], wide_dual());
    for (cluster, (urls, is_cluster)) in [(&mut pair.a, a), (&mut pair.b, b)] {
        cluster.urls = urls;
        cluster.cluster = is_cluster;
    }
    pair
}

fn projector_config(url: &str, stores: &Stores, control: &std::path::Path) -> ProjectorConfig {
    let [a, b] = endpoints(stores);
    let urls = |urls: &[String]| urls.iter().map(|u| format!("{u:?}")).collect::<Vec<_>>().join(", ");
    let text = format!(
        r#"
        version = 1
        [source]
        database_url = "{url}"
        [redis]
        a = {{ urls = [{a}], cluster = {ca}, connect_timeout_ms = 500, response_timeout_ms = 2000 }}
        b = {{ urls = [{b}], cluster = {cb}, connect_timeout_ms = 500, response_timeout_ms = 2000 }}
        [redis.settings]
        a = {{ write_timeout_ms = 2000 }}
        b = {{ write_timeout_ms = 2000 }}
        [sync]
        page_size = 100
        poll_interval_ms = 100
        overlap_ms = 0
        [retry]
        attempts = 0
        backoff_ms = 0
        max_backoff_ms = 0
        queue_backoff_ms = 0
        queue_max_backoff_ms = 0
        [control]
        file = {control:?}
        poll_ms = 50
        "#,
        a = urls(&a.0),
        b = urls(&b.0),
        ca = a.1,
        cb = b.1,
        control = control.display().to_string(),
    );
    ProjectorConfig::parse(&text).expect("projector config")
}
