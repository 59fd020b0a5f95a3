//! The list server over real stores: two throwaway redis-server processes,
//! two in-process HBase Thrift test servers, the production chain
//! `tiers = ["redis", "hbase"]` built by `pricing_list::build_read_path`.
//!
//! Layout: [`RealStack::start_with`] starts the four stores (each HBase
//! server gets the records table through `HbaseStore::ensure_table`, as a
//! deployment would), writes a list config pointing at them, lets the test
//! tune it, builds the [`ReadPath`] and serves it in-process on
//! 127.0.0.1:0 through `serve_with_reader`, keeping the path so that a test
//! can flip the pairs' live settings or the cache lifetimes. Seeding goes
//! through the pairs' own writers (versioned, both clusters), to one pair
//! only, or to one cluster only. Observation is at the servers, not in the
//! code under test: MGET calls from `INFO commandstats`, HBase reads from the
//! test server's call counters, calls that entered the read chain from a
//! thin counting wrapper. [`RealStack::stop`] drains the server; dropping
//! the stack kills the redis-server processes and stops the HBase servers.
//!
//! Timeouts are wider than production's (2 s per store call, a 1 s slow-call
//! threshold): the test machine has two shared cores, and a spurious timeout
//! would turn a counting test into a failover test. Tests that want
//! production values set them with [`RealStack::set_dual`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use pricing_list::{Hit, ListConfig, PriceReader, ReadPath};
use pricing_proto::v1::list_pricing_client::ListPricingClient;
use pricing_record::GoodsId;
use pricing_store::dual::{ClusterSettings, SideWrite};
use pricing_store::{
    BreakerSettings, CacheSettings, Cluster, Deadline, DualSettings, SharedRecord, StoreError, TieredReader,
};
use pricing_store_hbase::{HbaseConfig, HbaseStore, HbaseTestServer, Transport};
use pricing_store_pairs::{HbaseClusterConfig, HbasePairConfig, Pair, RedisClusterConfig, RedisPairConfig};
use pricing_testkit::net::Shutdown;
use pricing_testkit::redis::RedisServer;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// Budget of one store call in the harness's settings (see the module doc).
const STORE_CALL: Duration = Duration::from_secs(2);

/// A running list server over two Redis and two HBase servers.
pub struct RealStack {
    pub list_addr: SocketAddr,
    /// The chain and the pairs the server reads through.
    pub path: ReadPath,
    /// The list config the server runs with (pointing at the four stores):
    /// a test can start another server over the same stores from it.
    pub config: ListConfig,
    redis: [RedisServer; 2],
    hbase: [HbaseTestServer; 2],
    /// Calls that entered the read chain (one per BatchGetPrices that passed
    /// validation): lets a test know its callers are inside before it
    /// releases a held store.
    reads_entered: Arc<AtomicU64>,
    stop: Shutdown,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Per-cluster settings the harness uses: production's shape, wider budgets.
pub fn test_cluster_settings() -> ClusterSettings {
    ClusterSettings {
        timeout: STORE_CALL,
        write_timeout: STORE_CALL,
        breaker: BreakerSettings { slow_call: Duration::from_secs(1), ..BreakerSettings::default() },
    }
}

/// Dual settings with the harness's budgets: 50/50 split, write both.
pub fn test_dual_settings() -> DualSettings {
    DualSettings { a: test_cluster_settings(), b: test_cluster_settings(), ..DualSettings::default() }
}

impl RealStack {
    /// The stack with the harness's default config.
    pub async fn start() -> RealStack {
        RealStack::start_with(|_| {}).await
    }

    /// Starts the stores, builds the config, lets `tune` change it, then
    /// builds the read path and starts the list server.
    pub async fn start_with(tune: impl FnOnce(&mut ListConfig)) -> RealStack {
        let redis = [RedisServer::start(), RedisServer::start()];
        let hbase = [
            HbaseTestServer::start_local(Transport::Buffered).expect("start hbase test server a"),
            HbaseTestServer::start_local(Transport::Buffered).expect("start hbase test server b"),
        ];
        for server in &hbase {
            let admin = HbaseStore::new(HbaseConfig::new("hbase-setup", [server.address()])).expect("hbase config");
            admin.ensure_table().await.expect("create the records table");
        }
        let mut config = list_config(&redis, &hbase);
        tune(&mut config);
        let path = pricing_list::build_read_path(&config, None).await.expect("build the read path");
        assert_eq!(path.pairs.len(), 2, "the config names both pairs");

        let reads_entered = Arc::new(AtomicU64::new(0));
        let reader = Arc::new(CountingReader { inner: Arc::clone(&path.reader), entered: Arc::clone(&reads_entered) });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let list_addr = listener.local_addr().expect("bound address");
        let stop = Shutdown::new();
        let task = tokio::spawn(pricing_list::serve_with_reader(listener, config.clone(), reader, stop.signal()));
        RealStack { list_addr, path, config, redis, hbase, reads_entered, stop, task: Some(task) }
    }

    pub async fn list(&self) -> ListPricingClient<Channel> {
        ListPricingClient::new(crate::channel(self.list_addr).await)
    }

    pub fn reader(&self) -> &Arc<TieredReader> {
        &self.path.reader
    }

    pub fn redis_pair(&self) -> &Pair {
        self.pair("redis")
    }

    pub fn hbase_pair(&self) -> &Pair {
        self.pair("hbase")
    }

    fn pair(&self, name: &str) -> &Pair {
        self.path.pairs.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("no {name} pair"))
    }

    /// Switches a pair's live settings (takes effect on its next call).
    pub fn set_dual(&self, pair: &Pair, settings: DualSettings) {
        settings.validate().expect("valid dual settings");
        pair.settings.store(Arc::new(settings));
    }

    /// Switches the cache lifetimes (they apply to entries stored afterwards).
    /// Not validated: tests may turn the cache off with a zero ttl.
    pub fn set_cache(&self, settings: CacheSettings) {
        self.path.reader.cache_settings().expect("the list chain has a cache").store(Arc::new(settings));
    }

    /// Versioned write to both clusters of both pairs.
    pub async fn seed(&self, records: &[SharedRecord]) {
        self.seed_redis(records).await;
        self.seed_hbase(records).await;
    }

    /// Versioned write to both Redis servers only.
    pub async fn seed_redis(&self, records: &[SharedRecord]) {
        seed_pair(self.redis_pair(), records).await;
    }

    /// Versioned write to both HBase servers only.
    pub async fn seed_hbase(&self, records: &[SharedRecord]) {
        seed_pair(self.hbase_pair(), records).await;
    }

    /// Versioned write to one cluster of a pair.
    pub async fn seed_cluster(&self, pair: &Pair, cluster: Cluster, records: &[SharedRecord]) {
        let writer = &pair.clusters[index(cluster)];
        let report = writer.put(records).await.unwrap_or_else(|e| panic!("seed {}: {e}", writer.name()));
        assert_eq!(report.written, records.len(), "seed {}: every record is new", writer.name());
    }

    pub fn redis(&self, cluster: Cluster) -> &RedisServer {
        &self.redis[index(cluster)]
    }

    pub fn redis_mut(&mut self, cluster: Cluster) -> &mut RedisServer {
        &mut self.redis[index(cluster)]
    }

    pub fn hbase(&self, cluster: Cluster) -> &HbaseTestServer {
        &self.hbase[index(cluster)]
    }

    pub fn hbase_mut(&mut self, cluster: Cluster) -> &mut HbaseTestServer {
        &mut self.hbase[index(cluster)]
    }

    /// MGET commands one Redis server has executed (`cmdstat_mget` calls).
    pub fn mget_calls(&self, cluster: Cluster) -> u64 {
        command_calls(&self.redis(cluster).command(&["INFO", "commandstats"]), "mget")
    }

    /// `getRowsWithColumns` calls one HBase server has received.
    pub fn hbase_reads(&self, cluster: Cluster) -> u64 {
        self.hbase(cluster).calls("getRowsWithColumns")
    }

    /// Reads of the chain entered since the start.
    pub fn reads_entered(&self) -> u64 {
        self.reads_entered.load(Ordering::SeqCst)
    }

    /// Stops the server and waits for it; the stores go with `self`.
    pub async fn stop(mut self) {
        self.stop.stop();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("list server stops within 30 s")
                .expect("list server task did not panic")
                .expect("list server exits cleanly");
        }
    }
}

impl Drop for RealStack {
    fn drop(&mut self) {
        // On a failed test: stop serving; the fields kill the stores.
        self.stop.stop();
    }
}

fn index(cluster: Cluster) -> usize {
    match cluster {
        Cluster::A => 0,
        Cluster::B => 1,
    }
}

async fn seed_pair(pair: &Pair, records: &[SharedRecord]) {
    let report = pair.writer.put_each(records).await;
    for cluster in [Cluster::A, Cluster::B] {
        match report.get(cluster) {
            SideWrite::Done(r) => assert_eq!(r.written, records.len(), "seed {}-{}", pair.name, cluster.as_str()),
            other => panic!("seed {}-{}: {other:?}", pair.name, cluster.as_str()),
        }
    }
}

/// The list config of the stack: the production chain over the four servers.
fn list_config(redis: &[RedisServer; 2], hbase: &[HbaseTestServer; 2]) -> ListConfig {
    let budget = STORE_CALL.as_millis() as u64;
    let redis_cluster = |server: &RedisServer| RedisClusterConfig {
        urls: vec![server.url()],
        cluster: false,
        connect_timeout_ms: 500,
        response_timeout_ms: budget,
        key_ttl_ms: None,
        topology_refresh_ms: 1_000,
        replica_ack_timeout_ms: 0,
    };
    let hbase_cluster = |server: &HbaseTestServer| HbaseClusterConfig {
        addresses: vec![server.address()],
        framed: server.transport() == Transport::Framed,
        pool_size: 8,
        connect_timeout_ms: 500,
        call_timeout_ms: budget,
        table: None,
    };
    let mut config = ListConfig::default();
    config.server.metrics_listen = None;
    config.read.tiers = vec![pricing_store::TierId::Redis, pricing_store::TierId::Hbase];
    config.redis = Some(RedisPairConfig {
        a: redis_cluster(&redis[0]),
        b: redis_cluster(&redis[1]),
        settings: test_dual_settings(),
    });
    config.hbase = Some(HbasePairConfig {
        a: hbase_cluster(&hbase[0]),
        b: hbase_cluster(&hbase[1]),
        settings: test_dual_settings(),
    });
    config
}

/// `calls=` of one command in an `INFO commandstats` reply (the testkit's parser).
pub use pricing_testkit::redis::command_calls;

/// The sum of a Prometheus counter over the series carrying every given
/// label, from the process-wide recorder the servers install.
pub fn counter(name: &str, labels: &[(&str, &str)]) -> u64 {
    series_values(name, labels).filter_map(|value| value.parse::<u64>().ok()).sum()
}

/// A gauge's value, summed over the series carrying every given label (0
/// when there is none).
pub fn gauge(name: &str, labels: &[(&str, &str)]) -> f64 {
    series_values(name, labels).filter_map(|value| value.parse::<f64>().ok()).sum()
}

/// The values, as text, of the series of `name` that carry every label.
fn series_values(name: &str, labels: &[(&str, &str)]) -> impl Iterator<Item = String> {
    let text = pricing_telemetry::prometheus().render();
    let wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    let name = name.to_owned();
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            (metric == name && wanted.iter().all(|label| rest.contains(label.as_str()))).then(|| value.to_owned())
        })
        .collect::<Vec<_>>()
        .into_iter()
}

/// The chain as the server sees it, counting the calls that enter it.
struct CountingReader {
    inner: Arc<TieredReader>,
    entered: Arc<AtomicU64>,
}

#[async_trait]
impl PriceReader for CountingReader {
    async fn read(&self, ids: &[GoodsId], deadline: Option<Deadline>) -> Result<Vec<Option<Hit>>, StoreError> {
        self.entered.fetch_add(1, Ordering::SeqCst);
        self.inner.read(ids, deadline).await
    }

    fn on_invalidate(&self, follower: std::sync::Arc<dyn pricing_store::Invalidate>) {
        self.inner.on_invalidate(follower);
    }
}
