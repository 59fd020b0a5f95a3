//! The Redis store over a real three-node Redis Cluster (three redis-server
//! processes with `--cluster-enabled yes`, slots assigned with CLUSTER
//! ADDSLOTSRANGE and joined with CLUSTER MEET: what `redis-cli --cluster
//! create` does, without needing redis-cli).
//! Run through `bash tests/run.sh -p pricing-store-redis`.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use pricing_record::GoodsId;
use pricing_record::keys::redis_key;
use pricing_store::conformance::{check_reads, check_versioned_writes, fixture, record};
use pricing_store::{RecordStore, RecordWriter, SharedRecord};
use pricing_store_redis::{RedisConfig, RedisStore};
use pricing_testkit::net::{eventually_blocking, free_port};
use redis::cluster_routing::Slot;

const SLOTS: u16 = 16_384;

struct Node {
    port: u16,
    bus_port: u16,
    child: Child,
}

/// Three masters, no replicas; killed when dropped.
struct Cluster {
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

fn binary() -> String {
    std::env::var("PRICING_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned())
}

fn connection(port: u16) -> redis::RedisResult<redis::Connection> {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))?.get_connection_with_timeout(Duration::from_secs(1))
}

fn query(port: u16, cmd: &redis::Cmd) -> String {
    let mut con = connection(port).unwrap_or_else(|e| panic!("connect to node {port}: {e}"));
    match cmd.query::<redis::Value>(&mut con).unwrap_or_else(|e| panic!("node {port}: {e}")) {
        redis::Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
        redis::Value::SimpleString(s) => s,
        redis::Value::VerbatimString { text, .. } => text,
        redis::Value::Okay => "OK".to_owned(),
        other => format!("{other:?}"),
    }
}

impl Cluster {
    fn start() -> Cluster {
        Cluster::start_on(free_port())
    }

    /// Starts the cluster with its first node on `first_port`.
    fn start_on(first_port: u16) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut nodes = Vec::new();
        for i in 0..3 {
            // The bus port is set explicitly: port + 10000 may not exist.
            let port = if i == 0 { first_port } else { free_port() };
            let bus_port = free_port();
            let child = Command::new(binary())
                .args(["--port", &port.to_string(), "--cluster-port", &bus_port.to_string()])
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--cluster-enabled", "yes"])
                .args(["--cluster-config-file", &format!("nodes-{i}.conf")])
                .args(["--cluster-node-timeout", "5000"])
                .args(["--dir", dir.path().to_str().expect("utf-8 temp path")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {} ({e}); run the tests through tests/run.sh", binary()));
            nodes.push(Node { port, bus_port, child });
        }
        let cluster = Cluster { nodes, _dir: dir };
        for node in &cluster.nodes {
            eventually_blocking("cluster node to accept connections", Duration::from_secs(10), || {
                connection(node.port).ok().map(drop)
            });
        }
        let per_node = SLOTS / 3;
        for (i, node) in cluster.nodes.iter().enumerate() {
            let first = per_node * i as u16;
            let last = if i == 2 { SLOTS - 1 } else { first + per_node - 1 };
            query(node.port, redis::cmd("CLUSTER").arg("ADDSLOTSRANGE").arg(first).arg(last));
        }
        let seed = cluster.nodes[0].port;
        for node in &cluster.nodes[1..] {
            query(seed, redis::cmd("CLUSTER").arg("MEET").arg("127.0.0.1").arg(node.port).arg(node.bus_port));
        }
        for node in &cluster.nodes {
            eventually_blocking("cluster_state:ok on every node", Duration::from_secs(30), || {
                let info = query(node.port, redis::cmd("CLUSTER").arg("INFO"));
                (info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:3")).then_some(())
            });
        }
        cluster
    }

    fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| format!("redis://127.0.0.1:{}/", n.port)).collect()
    }

    /// Sum over the nodes of one command's calls since CONFIG RESETSTAT.
    fn command_calls(&self, command: &str) -> u64 {
        let prefix = format!("cmdstat_{command}:calls=");
        self.nodes
            .iter()
            .map(|n| {
                query(n.port, redis::cmd("INFO").arg("commandstats"))
                    .lines()
                    .find_map(|l| l.strip_prefix(&prefix))
                    .map_or(0, |rest| rest.split(',').next().unwrap().parse::<u64>().unwrap())
            })
            .sum()
    }

    fn reset_stats(&self) {
        for n in &self.nodes {
            query(n.port, redis::cmd("CONFIG").arg("RESETSTAT"));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let _ = node.child.kill();
            let _ = node.child.wait();
        }
    }
}

fn store(cluster: &Cluster) -> RedisStore {
    let config = RedisConfig::cluster("redis-cluster", cluster.urls())
        .with_timeouts(Duration::from_millis(500), Duration::from_millis(1_000));
    RedisStore::new(config).expect("valid config")
}

#[tokio::test]
async fn conforms_over_a_cluster() {
    let cluster = Cluster::start();
    let store = store(&cluster);
    let seeded = fixture();
    let report = store.put(&seeded).await.unwrap();
    assert_eq!(report.written, seeded.len());
    check_reads(&store, &seeded).await;
    check_versioned_writes(&store, &store).await;
}

#[tokio::test]
async fn a_batch_is_one_mget_per_slot_spread_over_the_nodes() {
    let cluster = Cluster::start();
    let store = store(&cluster);
    let seeded: Vec<SharedRecord> = (1..=120).map(|id| Arc::new(record(id, 1, 1_000, vec![]))).collect();
    cluster.reset_stats();
    let report = store.put(&seeded).await.unwrap();
    assert_eq!(report.written, 120);

    let ids: Vec<GoodsId> = (1..=200).collect();
    let slots: HashSet<Slot> = ids.iter().map(|id| Slot::for_key(redis_key(*id))).collect();
    let put_slots: HashSet<Slot> = (1..=120).map(|id| Slot::for_key(redis_key(id))).collect();
    assert!(
        cluster.command_calls("evalsha") >= put_slots.len() as u64,
        "one script call per slot (plus NOSCRIPT retries on first use)"
    );

    cluster.reset_stats();
    let got = store.fetch(&ids).await.unwrap();
    assert_eq!(got.len(), 120);
    assert_eq!(cluster.command_calls("mget"), slots.len() as u64, "the client sends one MGET per hash slot");
    assert_eq!(cluster.command_calls("get"), 0);
    // The keys really are spread: every node answered part of the batch.
    for node in &cluster.nodes {
        let stats = query(node.port, redis::cmd("INFO").arg("commandstats"));
        assert!(stats.contains("cmdstat_mget:"), "node {} got no MGET", node.port);
    }

    store.remove(&ids).await.unwrap();
    assert!(store.fetch(&ids).await.unwrap().is_empty(), "UNLINK over every slot");
}

#[tokio::test]
async fn cluster_store_comes_up_while_the_cluster_is_down_and_recovers() {
    let port = free_port();
    let config = RedisConfig::cluster("redis-cluster", [format!("redis://127.0.0.1:{port}/")])
        .with_timeouts(Duration::from_millis(300), Duration::from_millis(300));
    let store = RedisStore::new(config).expect("building does not touch the network");
    let bound = store.config().call_deadline() * 5;
    let started = std::time::Instant::now();
    let err = store.fetch(&[101]).await.expect_err("nothing listens");
    assert!(started.elapsed() < bound, "took {:?}", started.elapsed());
    assert_eq!(err.kind, pricing_store::StoreErrorKind::Unavailable, "{err}");

    // The seed node comes up (with the rest of the cluster): the same store
    // discovers the slots and works.
    let _cluster = Cluster::start_on(port);
    pricing_testkit::net::eventually("the cluster store to answer", Duration::from_secs(20), || async {
        store.fetch(&[101]).await.ok().map(drop)
    })
    .await;
    let seeded = fixture();
    store.put(&seeded).await.unwrap();
    check_reads(&store, &seeded).await;
}
