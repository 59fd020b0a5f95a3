//! The stacks the fault tests break: the list server through its production
//! `serve` path under a watched control file, over two redis-server
//! processes (each behind a TCP proxy) and two HBase Thrift test servers;
//! and the detail server over MariaDB (behind a proxy) and two Redis.
//!
//! Layout: [`ListFaultStack::start`] starts the four stores, writes a
//! control file (a test tunes it first), points a list config at the
//! proxies and the HBase servers and serves it with `pricing_list::serve`,
//! the binary's own entry point, so the control file steers the pairs and
//! the cache exactly as in production and every call passes the protection
//! layers (hence [`signed`]). Seeding goes to the servers directly, through
//! pairs of the harness's own (named `seed-redis`, `seed-hbase`, so their
//! metrics never mix with the server's). Faults are staged on the real
//! processes ([`ListFaultStack::redis_mut`], [`ListFaultStack::hbase_mut`]),
//! on the proxies ([`ListFaultStack::proxy`]: latency, a hang) or by
//! replacing the control file ([`ListFaultStack::rewrite_control`]).
//! [`DetailFaultStack`] is the detail server over MariaDB behind a proxy
//! and a Redis pair, each Redis behind a proxy too.
//!
//! Budgets: the control file starts with wide store budgets (2 s per store
//! call, 1 s slow-call threshold) so that a loaded two-core machine never
//! times out by accident, and a quick breaker (500 ms open) so that a
//! recovery is seen within a test. A test about timeouts narrows the budget
//! it is about. The cache starts out of the way (1 ms lifetimes, no stale
//! grace: a control file cannot say zero) so that every call reaches the stores.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pricing_control::{CallerAccount, ControlConfig};
use pricing_detail::DetailConfig;
use pricing_proto::v1::detail_pricing_client::DetailPricingClient;
use pricing_proto::v1::list_pricing_client::ListPricingClient;
use pricing_store::dual::{ClusterSettings, SideWrite};
use pricing_store::{BreakerSettings, CacheSettings, Cluster, DualSettings, SharedRecord};
use pricing_store_hbase::{HbaseConfig, HbaseStore, HbaseTestServer, Transport};
use pricing_store_pairs::{HbaseClusterConfig, HbasePairConfig, Pair, RedisClusterConfig, RedisPairConfig};
use pricing_store_sql::{SqlOptions, SqlStore};
use pricing_testkit::net::Shutdown;
use pricing_testkit::proxy::TcpProxy;
use pricing_testkit::redis::RedisServer;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::real_stack::command_calls;

/// The caller account every load uses (the list server checks accounts).
pub const CALLER: &str = "fault-load";
pub const CALLER_TOKEN: &str = "fault-load-0123456789abcdef";

/// Budget of one store call where a test is not about timeouts.
pub const WIDE_BUDGET: Duration = Duration::from_secs(2);

/// A request carrying the load's caller account.
pub fn signed<T>(message: T) -> tonic::Request<T> {
    crate::signed_as(message, CALLER, CALLER_TOKEN)
}

/// A breaker that opens after a handful of failures and tries again after
/// half a second: a fault and its recovery both fit in a test.
pub fn quick_breaker() -> BreakerSettings {
    BreakerSettings {
        window: Duration::from_secs(2),
        min_calls: 10,
        slow_call: Duration::from_secs(1),
        open_for: Duration::from_millis(500),
        ..BreakerSettings::default()
    }
}

/// One cluster with the given read budget and the quick breaker.
pub fn cluster_settings(timeout: Duration) -> ClusterSettings {
    ClusterSettings { timeout, write_timeout: WIDE_BUDGET, breaker: quick_breaker() }
}

/// A pair with wide budgets, split 50/50, write both.
pub fn wide_dual() -> DualSettings {
    DualSettings { a: cluster_settings(WIDE_BUDGET), b: cluster_settings(WIDE_BUDGET), ..DualSettings::default() }
}

/// The control file the list stack starts from (see the module doc).
pub fn base_control() -> ControlConfig {
    let mut control = ControlConfig::default();
    control.callers.insert(CALLER.into(), CallerAccount::with_token(CALLER_TOKEN, 1_000_000, None, 1_000));
    control.list.redis = wide_dual().into();
    control.list.hbase = wide_dual().into();
    control.list.cache = CacheSettings {
        ttl: Duration::from_millis(1),
        negative_ttl: Duration::from_millis(1),
        stale_grace: Duration::ZERO,
        ..CacheSettings::default()
    };
    control.breakers = quick_breaker();
    control
}

fn index(cluster: Cluster) -> usize {
    match cluster {
        Cluster::A => 0,
        Cluster::B => 1,
    }
}

/// The list server under a control file over two proxied Redis and two HBase.
pub struct ListFaultStack {
    pub list_addr: SocketAddr,
    /// First, so that a failed test stops serving before the stores go.
    server: ControlledList,
    redis: [RedisServer; 2],
    /// The list server reaches Redis A and B only through these.
    proxies: [TcpProxy; 2],
    hbase: [HbaseTestServer; 2],
    seed_redis: Pair,
    seed_hbase: Pair,
}

impl ListFaultStack {
    /// Starts the stores, writes [`base_control`] as changed by `tune`, and
    /// serves the list server over them.
    pub async fn start(tune: impl FnOnce(&mut ControlConfig)) -> ListFaultStack {
        let redis = [RedisServer::start(), RedisServer::start()];
        let proxies = [TcpProxy::start(redis[0].addr()).await, TcpProxy::start(redis[1].addr()).await];
        let hbase = [
            HbaseTestServer::start_local(Transport::Buffered).expect("start hbase test server a"),
            HbaseTestServer::start_local(Transport::Buffered).expect("start hbase test server b"),
        ];
        for server in &hbase {
            let admin = HbaseStore::new(HbaseConfig::new("hbase-setup", [server.address()])).expect("hbase config");
            admin.ensure_table().await.expect("create the records table");
        }
        let mut control = base_control();
        tune(&mut control);

        let redis_urls = [format!("redis://{}/", proxies[0].addr()), format!("redis://{}/", proxies[1].addr())];
        let mut config = pricing_list::ListConfig::default();
        config.read.tiers = vec![pricing_store::TierId::Redis, pricing_store::TierId::Hbase];
        config.redis = Some(redis_pair_config(&redis_urls, control.list.redis.resolve(None).0));
        config.hbase = Some(hbase_pair_config(&hbase, control.list.hbase.resolve(None).0));

        let direct = [redis[0].url(), redis[1].url()];
        let seed_redis = pricing_store_pairs::redis_pair("seed-redis", &redis_pair_config(&direct, wide_dual()))
            .expect("seed redis pair");
        let seed_hbase =
            pricing_store_pairs::hbase_pair("seed-hbase", &hbase_pair_config(&hbase, wide_dual())).expect("seed pair");

        let server = ControlledList::serve(config, control).await;
        ListFaultStack { list_addr: server.list_addr, server, redis, proxies, hbase, seed_redis, seed_hbase }
    }

    pub async fn list(&self) -> ListPricingClient<Channel> {
        self.server.list().await
    }

    /// Versioned write to both Redis and both HBase servers.
    pub async fn seed(&self, records: &[SharedRecord]) {
        self.seed_redis(records).await;
        self.seed_hbase(records).await;
    }

    pub async fn seed_redis(&self, records: &[SharedRecord]) {
        seed_pair(&self.seed_redis, records).await;
    }

    pub async fn seed_hbase(&self, records: &[SharedRecord]) {
        seed_pair(&self.seed_hbase, records).await;
    }

    pub fn redis(&self, cluster: Cluster) -> &RedisServer {
        &self.redis[index(cluster)]
    }

    pub fn redis_mut(&mut self, cluster: Cluster) -> &mut RedisServer {
        &mut self.redis[index(cluster)]
    }

    /// The proxy the list server reaches this Redis through.
    pub fn proxy(&self, cluster: Cluster) -> &TcpProxy {
        &self.proxies[index(cluster)]
    }

    pub fn hbase(&self, cluster: Cluster) -> &HbaseTestServer {
        &self.hbase[index(cluster)]
    }

    /// Stops one HBase server (refuses connections, drops open ones). The
    /// stop joins the server's threads: done off the runtime's workers.
    pub fn stop_hbase(&mut self, cluster: Cluster) {
        let server = &mut self.hbase[index(cluster)];
        tokio::task::block_in_place(|| server.stop());
    }

    /// Starts a stopped HBase server again, same address, same data.
    pub fn restart_hbase(&mut self, cluster: Cluster) {
        let server = &mut self.hbase[index(cluster)];
        tokio::task::block_in_place(|| server.restart()).expect("restart hbase test server");
    }

    /// MGET commands one Redis server has executed (asked directly, not
    /// through the proxy). Do not ask a frozen server: it cannot answer.
    pub fn mget_calls(&self, cluster: Cluster) -> u64 {
        command_calls(&self.redis(cluster).command(&["INFO", "commandstats"]), "mget")
    }

    /// `getRowsWithColumns` calls one HBase server has received.
    pub fn hbase_reads(&self, cluster: Cluster) -> u64 {
        self.hbase(cluster).calls("getRowsWithColumns")
    }

    /// The control file in force (as last written).
    pub fn control(&self) -> ControlConfig {
        self.server.control()
    }

    /// Replaces the control file (see [`ControlledList::rewrite_control`]).
    pub fn rewrite_control(&self, change: impl FnOnce(&mut ControlConfig)) {
        self.server.rewrite_control(change);
    }

    /// Stops the server and waits for it; the stores go with `self`.
    pub async fn stop(self) {
        self.server.stop().await;
    }
}

/// The list server through `pricing_list::serve`, the binary's own entry
/// point, under a watched control file that a test can replace: what the
/// list fault stacks serve. Dropping it stops serving.
pub struct ControlledList {
    pub list_addr: SocketAddr,
    control_path: PathBuf,
    /// The control file's current content (what the next rewrite starts from).
    control: Mutex<ControlConfig>,
    stop: Shutdown,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl ControlledList {
    /// Writes `control` to a file of its own, points `config` at it (polled
    /// every 50 ms, the cache starting as the file says, no metrics
    /// listener) and serves on 127.0.0.1:0.
    pub async fn serve(mut config: pricing_list::ListConfig, control: ControlConfig) -> ControlledList {
        let dir = tempfile::tempdir().expect("temp dir");
        let control_path = dir.path().join("control.toml");
        write_control(&control_path, &control);
        config.server.metrics_listen = None;
        config.server.control_file = Some(control_path.clone());
        config.server.control_poll_ms = 50;
        config.cache = control.list.cache.clone();

        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let list_addr = listener.local_addr().expect("bound address");
        let stop = Shutdown::new();
        let task = tokio::spawn(pricing_list::serve(listener, config, stop.signal()));
        ControlledList { list_addr, control_path, control: Mutex::new(control), stop, task: Some(task), _dir: dir }
    }

    pub async fn list(&self) -> ListPricingClient<Channel> {
        ListPricingClient::new(crate::channel(self.list_addr).await)
    }

    /// The control file in force (as last written).
    pub fn control(&self) -> ControlConfig {
        self.control.lock().expect("control lock").clone()
    }

    /// Replaces the control file the way a ConfigMap update does: the new
    /// content is written aside and renamed over the watched path.
    pub fn rewrite_control(&self, change: impl FnOnce(&mut ControlConfig)) {
        let mut control = self.control.lock().expect("control lock");
        change(&mut control);
        write_control(&self.control_path, &control);
    }

    /// Stops the server and waits for it.
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

impl Drop for ControlledList {
    fn drop(&mut self) {
        // On a failed test: stop serving.
        self.stop.stop();
    }
}

/// Writes a control file the way a ConfigMap update lands: aside, then
/// renamed over the watched path.
pub fn write_control(path: &std::path::Path, control: &ControlConfig) {
    control.validate().expect("the test's control file is valid");
    let text = toml::to_string(control).expect("control config as toml");
    let aside = path.with_extension("next");
    std::fs::write(&aside, text).expect("write control file");
    std::fs::rename(&aside, path).expect("swap control file");
}

/// A standalone Redis pair over `urls` with the wide per-call budgets.
pub fn redis_pair_config(urls: &[String; 2], settings: DualSettings) -> RedisPairConfig {
    let cluster = |url: &String| RedisClusterConfig {
        urls: vec![url.clone()],
        cluster: false,
        connect_timeout_ms: 500,
        response_timeout_ms: WIDE_BUDGET.as_millis() as u64,
        key_ttl_ms: None,
        topology_refresh_ms: 1_000,
        replica_ack_timeout_ms: 0,
    };
    RedisPairConfig { a: cluster(&urls[0]), b: cluster(&urls[1]), settings }
}

fn hbase_pair_config(hbase: &[HbaseTestServer; 2], settings: DualSettings) -> HbasePairConfig {
    let cluster = |server: &HbaseTestServer| HbaseClusterConfig {
        addresses: vec![server.address()],
        framed: server.transport() == Transport::Framed,
        pool_size: 8,
        connect_timeout_ms: 500,
        call_timeout_ms: WIDE_BUDGET.as_millis() as u64,
        table: None,
    };
    HbasePairConfig { a: cluster(&hbase[0]), b: cluster(&hbase[1]), settings }
}

/// Versioned write of `records` to both clusters of a pair (500 at a time); every one must land.
pub async fn seed_pair(pair: &Pair, records: &[SharedRecord]) {
    for chunk in records.chunks(500) {
        let report = pair.writer.put_each(chunk).await;
        for cluster in [Cluster::A, Cluster::B] {
            match report.get(cluster) {
                SideWrite::Done(r) => assert_eq!(r.written, chunk.len(), "seed {}-{}", pair.name, cluster.as_str()),
                other => panic!("seed {}-{}: {other:?}", pair.name, cluster.as_str()),
            }
        }
    }
}

/// The detail server over MariaDB (reached through a proxy the test can
/// break) and a Redis pair with wide budgets (a spurious Redis timeout would
/// send a read to MySQL, which the MySQL fault test has taken away), each
/// Redis reached through a proxy as well.
pub struct DetailFaultStack {
    pub detail_addr: SocketAddr,
    /// A direct connection to the database: what the records really are.
    pub truth: Arc<SqlStore>,
    /// Between the detail server and MariaDB.
    pub mysql_proxy: TcpProxy,
    /// Between the detail server and Redis A, B.
    redis_proxies: [TcpProxy; 2],
    redis: [RedisServer; 2],
    stop: Shutdown,
}

impl DetailFaultStack {
    /// A fresh database seeded with `goods` demo goods (ids 1..=goods).
    pub async fn start(goods: u64) -> DetailFaultStack {
        DetailFaultStack::start_with(goods, ControlConfig::default(), wide_dual()).await
    }

    /// As [`DetailFaultStack::start`], the server's switch board holding
    /// `control` (not a watched file: no protection layers) and its Redis
    /// pair starting with `dual`.
    pub async fn start_with(goods: u64, control: ControlConfig, dual: DualSettings) -> DetailFaultStack {
        let url = pricing_testkit::mysql::fresh_database("faults").await;
        let truth = Arc::new(SqlStore::connect(&url).await.expect("connect to the test database"));
        let demo = pricing_store_sql::demo::DemoOptions { goods, ..Default::default() };
        pricing_store_sql::demo::seed(&truth, demo).await.expect("seed the demo catalogue");

        // mysql://root@127.0.0.1:PORT/db
        let (server, db) = url.rsplit_once('/').expect("database in the url");
        let host_port = server.rsplit_once('@').map_or(server, |(_, hp)| hp);
        let mysql_proxy = TcpProxy::start(host_port.parse().expect("host:port")).await;
        let proxied = format!("mysql://root@{}/{db}", mysql_proxy.addr());
        // The fast MySQL budgets of detail_path.rs: a stopped MySQL must give
        // UNAVAILABLE fast rather than a hang.
        let options = SqlOptions {
            acquire_timeout: Duration::from_millis(300),
            statement_timeout: Duration::from_millis(300),
            ..SqlOptions::default()
        };
        let sql = Arc::new(SqlStore::connect_with(&proxied, options).await.expect("connect through the proxy"));

        let redis = [RedisServer::start(), RedisServer::start()];
        let redis_proxies = [TcpProxy::start(redis[0].addr()).await, TcpProxy::start(redis[1].addr()).await];
        let mut config = DetailConfig::default();
        config.server.metrics_listen = None;
        config.checkout.quote_secret = "faults-test".into();
        let urls = [format!("redis://{}/", redis_proxies[0].addr()), format!("redis://{}/", redis_proxies[1].addr())];
        config.redis = Some(redis_pair_config(&urls, dual));
        let stop = Shutdown::new();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let detail_addr = listener.local_addr().expect("bound address");
        let board = pricing_control::Switchboard::from_config(control).expect("a valid control config");
        let sources = pricing_detail::build_sources(&config, sql, &board).expect("detail sources");
        tokio::spawn(pricing_detail::serve_with_sources(listener, config, sources, board, stop.signal()));
        DetailFaultStack { detail_addr, truth, mysql_proxy, redis_proxies, redis, stop }
    }

    /// The proxy the detail server reaches this Redis through.
    pub fn redis_proxy(&self, cluster: Cluster) -> &TcpProxy {
        &self.redis_proxies[index(cluster)]
    }

    pub async fn detail(&self) -> DetailPricingClient<Channel> {
        DetailPricingClient::new(crate::channel(self.detail_addr).await)
    }

    /// A store reading one of the detail server's Redis directly.
    pub fn redis_store(&self, cluster: Cluster) -> pricing_store_redis::RedisStore {
        let server = &self.redis[index(cluster)];
        let config = pricing_store_redis::RedisConfig::standalone(format!("check-{}", cluster.as_str()), server.url());
        pricing_store_redis::RedisStore::new(config).expect("redis store")
    }
}

impl Drop for DetailFaultStack {
    fn drop(&mut self) {
        self.stop.stop();
    }
}
