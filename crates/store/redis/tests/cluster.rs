//! The Redis store over a real three-node Redis Cluster (three masters, no
//! replicas: pricing_testkit::redis_cluster, which assigns the slots with
//! CLUSTER ADDSLOTSRANGE and joins the nodes with CLUSTER MEET, as
//! `redis-cli --cluster create` does).
//! Run through `bash tests/run.sh -p pricing-store-redis`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use pricing_record::GoodsId;
use pricing_record::keys::redis_key;
use pricing_store::conformance::{check_reads, check_versioned_writes, fixture, record};
use pricing_store::{RecordStore, RecordWriter, SharedRecord};
use pricing_store_redis::{RedisConfig, RedisStore};
use pricing_testkit::net::free_port;
use pricing_testkit::redis_cluster::{ClusterOptions, RedisCluster};
use redis::cluster_routing::Slot;

/// Three masters, no replicas, the 5 s node timeout this file always used.
async fn three_masters(first_port: Option<u16>) -> RedisCluster {
    let mut options = ClusterOptions::masters_only(3).node_timeout(Duration::from_secs(5));
    options.first_port = first_port;
    RedisCluster::start(options).await
}

fn store(cluster: &RedisCluster) -> RedisStore {
    let config = RedisConfig::cluster("redis-cluster", cluster.urls())
        .with_timeouts(Duration::from_millis(500), Duration::from_millis(1_000));
    RedisStore::new(config).expect("valid config")
}

#[tokio::test]
async fn conforms_over_a_cluster() {
    let cluster = three_masters(None).await;
    let store = store(&cluster);
    let seeded = fixture();
    let report = store.put(&seeded).await.unwrap();
    assert_eq!(report.written, seeded.len());
    check_reads(&store, &seeded).await;
    check_versioned_writes(&store, &store).await;
}

#[tokio::test]
async fn a_batch_is_one_mget_per_slot_spread_over_the_nodes() {
    let cluster = three_masters(None).await;
    let store = store(&cluster);
    let seeded: Vec<SharedRecord> = (1..=120).map(|id| Arc::new(record(id, 1, 1_000, vec![]))).collect();
    cluster.reset_stats();
    let report = store.put(&seeded).await.unwrap();
    assert_eq!(report.written, 120);

    let ids: Vec<GoodsId> = (1..=200).collect();
    let slots: HashSet<Slot> = ids.iter().map(|id| Slot::for_key(redis_key(*id))).collect();
    let put_slots: HashSet<Slot> = (1..=120).map(|id| Slot::for_key(redis_key(id))).collect();
    assert!(
        cluster.command_calls(&["evalsha"]) >= put_slots.len() as u64,
        "one script call per slot (plus NOSCRIPT retries on first use)"
    );

    cluster.reset_stats();
    let got = store.fetch(&ids).await.unwrap();
    assert_eq!(got.len(), 120);
    assert_eq!(cluster.command_calls(&["mget"]), slots.len() as u64, "the client sends one MGET per hash slot");
    assert_eq!(cluster.command_calls(&["get"]), 0);
    // The keys really are spread: every node answered part of the batch.
    for node in 0..cluster.node_count() {
        assert!(cluster.node_command_calls(node, &["mget"]) > 0, "node {node} got no MGET");
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
    let _cluster = three_masters(Some(port)).await;
    pricing_testkit::net::eventually("the cluster store to answer", Duration::from_secs(20), || async {
        store.fetch(&[101]).await.ok().map(drop)
    })
    .await;
    let seeded = fixture();
    store.put(&seeded).await.unwrap();
    check_reads(&store, &seeded).await;
}
