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
//! Standalone redis-server processes stand in for the two Redis Clusters:
//! losing "cluster A" whole is the same event to the pair (every call to A
//! refused), and the drill is about the runbook's switches, not about a
//! cluster's own failover.

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
use pricing_testkit::net::eventually;
use pricing_testkit::redis::RedisServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::fault_stack::{WIDE_BUDGET, base_control, cluster_settings, redis_pair_config, wide_dual, write_control};
use crate::real_stack::{command_calls, counter};

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
    redis: [RedisServer; 2],
    control_path: PathBuf,
    control: Mutex<ControlConfig>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl DrillStack {
    /// A database of `goods` demo goods projected into both clusters, and
    /// the three readers of the control file running; the detail server
    /// runs in `detail_zone`.
    pub async fn start(goods: u64, detail_zone: Option<&str>) -> DrillStack {
        // The process-wide recorder first: the readers of the control file
        // count and gauge from their first moment, before any server serves.
        let _ = pricing_telemetry::prometheus();
        let url = pricing_testkit::mysql::fresh_database("drill").await;
        let truth = Arc::new(SqlStore::connect(&url).await.expect("connect to the test database"));
        let demo = pricing_store_sql::demo::DemoOptions { goods, ..Default::default() };
        pricing_store_sql::demo::seed(&truth, demo).await.expect("seed the demo catalogue");
        let redis = [RedisServer::start(), RedisServer::start()];
        let dir = tempfile::tempdir().expect("temp dir");
        let control_path = dir.path().join("control.toml");
        let control = drill_control();
        write_control(&control_path, &control);

        let projector = Projector::connect(projector_config(&url, &redis, &control_path)).await.expect("projector");
        assert!(projector.control().is_some(), "the control file steers the projector");
        let full = projector.full(&Scope::All, false, &Progress::logs_only()).await.expect("first full sync");
        for name in ["redis-a", "redis-b"] {
            assert_eq!(full.targets[name].written, goods, "first full sync into {name}");
        }
        // Caught up before the drill: the loop then only sees the drill's own changes.
        projector.incremental_pass().await.expect("catch-up pass");
        let projector = Arc::new(projector);

        let (stop, stopped) = watch::channel(false);
        let until_stopped = move || {
            let mut rx = stopped.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let mut tasks: Vec<JoinHandle<anyhow::Result<()>>> = Vec::new();
        let looping = Arc::clone(&projector);
        let shutdown = until_stopped();
        tasks.push(tokio::spawn(
            async move { looping.run_incremental(false, shutdown).await.map_err(anyhow::Error::from) },
        ));

        let pair = redis_pair_config(&[redis[0].url(), redis[1].url()], wide_dual());
        let mut list = pricing_list::ListConfig::default();
        list.server.metrics_listen = None;
        list.server.control_file = Some(control_path.clone());
        list.server.control_poll_ms = 50;
        list.read.tiers = vec!["redis".into()];
        list.cache = control.list.cache.clone();
        list.redis = Some(pair.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let list_addr = listener.local_addr().expect("bound address");
        tasks.push(tokio::spawn(pricing_list::serve(listener, list, until_stopped())));

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
        tasks.push(tokio::spawn(pricing_detail::serve(listener, detail, until_stopped())));

        DrillStack {
            list_addr,
            detail_addr,
            truth,
            projector,
            redis,
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

    pub fn redis(&self, cluster: Cluster) -> &RedisServer {
        &self.redis[index(cluster)]
    }

    pub fn redis_mut(&mut self, cluster: Cluster) -> &mut RedisServer {
        &mut self.redis[index(cluster)]
    }

    /// MGET commands one Redis server has executed since it (re)started.
    pub fn mget_calls(&self, cluster: Cluster) -> u64 {
        command_calls(&self.redis(cluster).command(&["INFO", "commandstats"]), "mget")
    }

    /// Keys one Redis server holds.
    pub fn keys(&self, cluster: Cluster) -> u64 {
        let reply = self.redis(cluster).command(&["DBSIZE"]);
        reply.trim().trim_start_matches(':').parse().unwrap_or_else(|_| panic!("DBSIZE reply {reply:?}"))
    }

    /// A store reading one cluster directly.
    pub fn redis_store(&self, cluster: Cluster) -> pricing_store_redis::RedisStore {
        let config = pricing_store_redis::RedisConfig::standalone(
            format!("drill-check-{}", cluster.as_str()),
            self.redis(cluster).url(),
        );
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
        let _ = self.stop.send(true);
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
        let _ = self.stop.send(true);
    }
}

/// How often a switch was changed, counted over every reader of a control
/// file in this process.
pub fn switch_changes(switch: &str) -> u64 {
    counter("pricing_switch_changes_total", &[("switch", switch)])
}

fn projector_config(url: &str, redis: &[RedisServer; 2], control: &std::path::Path) -> ProjectorConfig {
    let text = format!(
        r#"
        version = 1
        [source]
        database_url = "{url}"
        [redis]
        a = {{ urls = ["{a}"], connect_timeout_ms = 500, response_timeout_ms = 2000 }}
        b = {{ urls = ["{b}"], connect_timeout_ms = 500, response_timeout_ms = 2000 }}
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
        a = redis[0].url(),
        b = redis[1].url(),
        control = control.display().to_string(),
    );
    ProjectorConfig::parse(&text).expect("projector config")
}
