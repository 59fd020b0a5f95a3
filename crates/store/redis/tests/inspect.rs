//! The Redis store's raw reads ([`Inspect`]) on a real standalone server and
//! a real Redis Cluster of three masters and three replicas.
//! Run through `bash tests/run.sh -p pricing-store-redis --test inspect`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use pricing_record::keys::{REDIS_KEY_PREFIX, redis_key};
use pricing_record::{GoodsId, GoodsRecord, encode};
use pricing_store::conformance::{self, check_inspection, fixture, walk_all};
use pricing_store::{Inspect, RecordWriter, StoreErrorKind, VersionGuard, WalkCursor};
use pricing_store_redis::{RedisConfig, RedisStore};
use pricing_testkit::redis::RedisServer;
use pricing_testkit::redis_cluster::{ClusterOptions, RedisCluster};

const TIMEOUT: Duration = Duration::from_millis(500);

fn record(goods_id: GoodsId, version: u64) -> GoodsRecord {
    conformance::record(goods_id, version, 1_000, Vec::new())
}

/// Puts `ids` at version 5 through the store's writer.
async fn seed(store: &RedisStore, ids: &[GoodsId]) {
    let records: Vec<_> = ids.iter().map(|id| Arc::new(record(*id, 5))).collect();
    assert_eq!(store.put(&records).await.unwrap().written, ids.len());
}

#[tokio::test]
async fn conforms_on_a_standalone_server_and_a_cluster() {
    let server = RedisServer::start();
    let cluster = RedisCluster::start(ClusterOptions::masters_only(3)).await;
    let standalone = RedisStore::new(RedisConfig::standalone("redis-a", server.url())).expect("valid config");
    let clustered = RedisStore::new(RedisConfig::cluster("redis-b", cluster.urls())).expect("valid config");
    for store in [standalone, clustered] {
        let seeded = fixture();
        assert_eq!(store.put(&seeded).await.unwrap().written, seeded.len());
        check_inspection(&store, &seeded).await;
    }
}

#[tokio::test]
async fn standalone_inspection_returns_bytes_as_stored_with_their_guard_and_walks_every_goods() {
    let server = RedisServer::start();
    let store = RedisStore::new(RedisConfig::standalone("redis-a", server.url()).with_timeouts(TIMEOUT, TIMEOUT))
        .expect("valid config");
    let ids: Vec<GoodsId> = (1..=500).collect();
    seed(&store, &ids).await;
    // Goods 2: garbage without a header; goods 3: a header claiming version 90
    // over a broken payload; a key that is not a goods key.
    server.command(&["SET", &redis_key(2), "garbage"]);
    let mut claimed = encode(&record(3, 90)).unwrap().to_vec();
    claimed.truncate(12);
    let mut conn = redis::Client::open(server.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET").arg(redis_key(3)).arg(&claimed).query_async(&mut conn).await.unwrap();
    server.command(&["SET", &format!("{REDIS_KEY_PREFIX}007"), "not ours"]);
    server.command(&["SET", "other:1", "not ours"]);

    let held: HashMap<GoodsId, _> =
        store.inspect(&[1, 2, 3, 3, 9_999]).await.unwrap().into_iter().map(|e| (e.goods_id, e)).collect();
    assert_eq!(held.len(), 3, "absent ids are absent, duplicates asked once: {held:?}");
    assert_eq!(held[&1].bytes, encode(&record(1, 5)).unwrap().to_vec());
    assert_eq!(held[&1].guard, VersionGuard::Header(Some(5)));
    assert_eq!((held[&2].bytes.as_slice(), held[&2].guard), (b"garbage".as_slice(), VersionGuard::Header(None)));
    assert_eq!((&held[&3].bytes, held[&3].guard), (&claimed, VersionGuard::Header(Some(90))));
    assert!(store.inspect(&[]).await.unwrap().is_empty());

    let (found, steps) = walk_all(&store, 50).await;
    assert_eq!(found, ids.iter().copied().collect(), "every goods once, no foreign key");
    assert!(steps > 1, "a walk of 500 keys by 50 takes several steps");

    // A cursor of another kind is refused, not followed.
    let foreign = store.walk(&WalkCursor::at("10.0.0.1:7000 3"), 10).await.unwrap_err();
    assert_eq!(foreign.kind, StoreErrorKind::Protocol);

    // Errors are the store's own kinds: a frozen server times out.
    server.freeze();
    let error = store.inspect(&[1]).await.unwrap_err();
    assert_eq!(error.kind, StoreErrorKind::Timeout, "{error}");
    let error = store.walk(&WalkCursor::start(), 10).await.unwrap_err();
    assert_eq!(error.kind, StoreErrorKind::Timeout, "{error}");
    server.thaw();
}

#[tokio::test]
async fn a_cluster_walk_finds_the_keys_of_every_master() {
    let cluster = RedisCluster::start(ClusterOptions::default()).await;
    assert_eq!((cluster.masters().len(), cluster.node_count()), (3, 6), "three masters, three replicas");
    let store = RedisStore::new(RedisConfig::cluster("redis-b", cluster.urls()).with_timeouts(TIMEOUT, TIMEOUT))
        .expect("valid config");
    let ids: Vec<GoodsId> = (1..=600).collect();
    seed(&store, &ids).await;
    // One corrupt value on each master, written straight to the node that
    // serves it.
    let mut spoiled = HashMap::new();
    for master in cluster.masters() {
        let id = *ids
            .iter()
            .find(|id| {
                let slot = pricing_record::keys::redis_cluster_slot(redis_key(**id).as_bytes());
                cluster.master_of_slot(slot) == master
            })
            .expect("each master serves some of 600 goods");
        cluster.command(master, &["SET", &redis_key(id), "garbage"]);
        spoiled.insert(id, master);
    }
    assert_eq!(spoiled.len(), 3);

    let asked: Vec<GoodsId> = ids.iter().copied().chain([10_001]).collect();
    let held = store.inspect(&asked).await.unwrap();
    assert_eq!(held.len(), ids.len(), "one entry per held goods, over every node");
    for entry in &held {
        if spoiled.contains_key(&entry.goods_id) {
            assert_eq!((entry.bytes.as_slice(), entry.guard), (b"garbage".as_slice(), VersionGuard::Header(None)));
        } else {
            assert_eq!(entry.guard, VersionGuard::Header(Some(5)), "goods {}", entry.goods_id);
        }
    }

    cluster.reset_stats();
    let (found, steps) = walk_all(&store, 100).await;
    assert_eq!(found, ids.iter().copied().collect(), "the walk covers every slot");
    assert!(steps >= 3, "at least one step per master: {steps}");
    for master in cluster.masters() {
        assert!(cluster.node_command_calls(master, &["scan"]) > 0, "master {master} was walked");
    }
    for node in (0..cluster.node_count()).filter(|n| !cluster.masters().contains(n)) {
        assert_eq!(cluster.node_command_calls(node, &["scan"]), 0, "replica {node} was not walked");
    }
}
