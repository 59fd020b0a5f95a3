//! The Redis store over a real three-node Redis Cluster (three masters, no
//! replicas: pricing_testkit::redis_cluster, which assigns the slots with
//! CLUSTER ADDSLOTSRANGE and joins the nodes with CLUSTER MEET, as
//! `redis-cli --cluster create` does).
//! Run through `bash tests/run.sh -p pricing-store-redis`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

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

/// A store over a 3+3 cluster with the defaults a server uses.
fn production_store(cluster: &RedisCluster, name: &str) -> RedisStore {
    RedisStore::new(RedisConfig::cluster(name, cluster.urls())).expect("valid config")
}

/// What a loop of reads saw: calls, failures, and the instant of the last
/// failure (reads are back after it).
#[derive(Default)]
struct ReadLog {
    ok: u64,
    failed: u64,
    last_failure: Option<std::time::Instant>,
}

/// Reads `ids` in batches of 20 until `stop`, as fast as the store answers.
fn read_loop(
    store: RedisStore,
    ids: Vec<GoodsId>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<ReadLog> {
    tokio::spawn(async move {
        let mut log = ReadLog::default();
        let mut at = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let batch: Vec<GoodsId> = (0..20).map(|k| ids[(at + k) % ids.len()]).collect();
            at += 20;
            match store.fetch(&batch).await {
                Ok(found) if found.len() == batch.len() => log.ok += 1,
                _ => {
                    log.failed += 1;
                    log.last_failure = Some(std::time::Instant::now());
                }
            }
            tokio::task::yield_now().await;
        }
        log
    })
}

#[tokio::test]
async fn reads_and_writes_follow_a_failover_without_a_restart() {
    let mut cluster = RedisCluster::start(ClusterOptions::default()).await;
    let store = production_store(&cluster, "redis-failover");
    let ids: Vec<GoodsId> = (1..=300).collect();
    let seeded: Vec<SharedRecord> = ids.iter().map(|id| Arc::new(record(*id, 1, 1_000, vec![]))).collect();
    assert_eq!(store.put(&seeded).await.unwrap().written, ids.len());

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reads = read_loop(store.clone(), ids.clone(), Arc::clone(&stop));
    // A writer moving every goods to a higher version, batch after batch;
    // each acknowledged batch must survive the failover.
    let writer = {
        let (store, ids, stop) = (store.clone(), ids.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut acknowledged: std::collections::HashMap<GoodsId, u64> = Default::default();
            let mut version = 1;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                version += 1;
                for chunk in ids.chunks(50) {
                    let batch: Vec<SharedRecord> =
                        chunk.iter().map(|id| Arc::new(record(*id, version, 1_000, vec![]))).collect();
                    if store.put(&batch).await.is_ok() {
                        for id in chunk {
                            acknowledged.insert(*id, version);
                        }
                    }
                }
            }
            acknowledged
        })
    };

    let dead = cluster.kill_master_of_key(redis_key(7).as_bytes());
    let promotion = cluster.wait_for_promotion(dead).await;
    // Reads come back: a whole batch answered after the promotion.
    let back =
        pricing_testkit::net::eventually("reads to succeed after the promotion", Duration::from_secs(30), || {
            let store = store.clone();
            let ids = ids.clone();
            async move {
                let all = store.fetch(&ids).await.ok()?;
                (all.len() == ids.len()).then(std::time::Instant::now)
            }
        })
        .await;
    let reads_back = back.saturating_duration_since(promotion.at);
    println!(
        "failover: promoted {:?} after the kill, whole batches read {:?} after the promotion",
        promotion.after_kill, reads_back
    );
    assert!(reads_back < Duration::from_secs(10), "reads took {reads_back:?} to come back");

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let log = reads.await.unwrap();
    let acknowledged = writer.await.unwrap();
    assert!(log.ok > 0, "the read loop ran");
    if let Some(last) = log.last_failure {
        assert!(
            last.saturating_duration_since(promotion.at) < Duration::from_secs(10),
            "reads still failed {:?} after the promotion",
            last.saturating_duration_since(promotion.at)
        );
    }

    // No acknowledged write was lost, no version went back.
    let held = store.fetch(&ids).await.unwrap();
    assert_eq!(held.len(), ids.len());
    for record in held {
        let acked = acknowledged.get(&record.goods_id).copied().unwrap_or(1);
        assert!(
            record.version >= acked,
            "goods {} holds version {} below the acknowledged {acked}",
            record.goods_id,
            record.version
        );
    }
}

#[tokio::test]
async fn reads_follow_a_reshard_under_load_with_no_failed_call() {
    let cluster = RedisCluster::start(ClusterOptions::default()).await;
    let store = production_store(&cluster, "redis-reshard");
    let ids: Vec<GoodsId> = (1..=2_000).collect();
    let seeded: Vec<SharedRecord> = ids.iter().map(|id| Arc::new(record(*id, 1, 1_000, vec![]))).collect();
    for chunk in seeded.chunks(200) {
        store.put(chunk).await.unwrap();
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reads = read_loop(store.clone(), ids.clone(), Arc::clone(&stop));
    let masters = cluster.masters();
    let took = cluster.reshard(masters[0], masters[1], 1_000).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let log = reads.await.unwrap();
    println!("reshard of 1,000 slots took {took:?}: {} batches read, {} failed", log.ok, log.failed);
    assert!(log.ok > 0);
    assert_eq!(log.failed, 0, "a batch failed during the reshard");
    // And after it, a whole batch reads from the new owners.
    assert_eq!(store.fetch(&ids[..200]).await.unwrap().len(), 200);
}
