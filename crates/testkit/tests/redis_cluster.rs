//! The Redis Cluster harness itself, on real redis-server processes: three
//! masters and three replicas behind proxies; a killed master's replica is
//! promoted and serves its keys, the killed node rejoins as that replica's
//! replica, slots move with a reshard, and the counters count.
//! Run through `bash tests/run.sh -p pricing-testkit`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

use pricing_testkit::redis_cluster::{ClusterOptions, RedisCluster, key_slot};

fn integer(reply: &str) -> i64 {
    reply.trim().strip_prefix(':').and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("not an integer: {reply:?}"))
}

fn slot_count(cluster: &RedisCluster, node: usize) -> u32 {
    let views = cluster.topology().expect("topology");
    let view = views.iter().find(|v| v.index == Some(node)).expect("node in the topology");
    view.slots.iter().map(|&(a, b)| u32::from(b - a) + 1).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_is_replaced_by_its_replica_which_keeps_its_keys() {
    let mut cluster = RedisCluster::start(ClusterOptions::default().proxied()).await;
    assert_eq!(cluster.node_count(), 6);
    assert_eq!(cluster.masters(), vec![0, 1, 2]);
    for master in 0..3 {
        assert_eq!(cluster.replicas_of(master), vec![3 + master], "one replica per master");
    }
    // Clients are told the proxies' addresses.
    let nodes = cluster.command(0, &["CLUSTER", "NODES"]);
    for node in 0..6 {
        let announced = format!("127.0.0.1:{}@", cluster.client_addr(node).port());
        assert!(nodes.contains(&announced), "node {node} announces its proxy: {nodes}");
    }
    // The harness's slot function agrees with the server.
    for key in ["goods:1", "goods:77", "{user1000}.following", "x"] {
        assert_eq!(integer(&cluster.command(0, &["CLUSTER", "KEYSLOT", key])), i64::from(key_slot(key.as_bytes())));
    }

    // A key written on its master reaches the replica (WAIT counts the acks).
    let key = "harness:failover";
    let master = cluster.master_of_slot(key_slot(key.as_bytes()));
    assert!(cluster.command(master, &["SET", key, "kept"]).starts_with("+OK"));
    assert_eq!(integer(&cluster.command(master, &["WAIT", "1", "5000"])), 1, "the replica acknowledged the write");

    let replica = cluster.replicas_of(master)[0];
    assert_eq!(cluster.kill_master_of_key(key.as_bytes()), master);
    let promotion = cluster.wait_for_promotion(master).await;
    println!("harness: replica promoted {:.1} s after the kill", promotion.after_kill.as_secs_f64());
    assert_eq!(promotion.new_master, replica, "the dead master's replica took its slots");
    assert!(cluster.masters().contains(&replica));
    assert!(cluster.command(replica, &["GET", key]).contains("kept"), "the promoted node serves the key");

    // Counters count per node and reset.
    cluster.reset_stats();
    for _ in 0..3 {
        cluster.command(replica, &["GET", key]);
    }
    assert_eq!(cluster.node_command_calls(replica, &["get"]), 3);
    assert_eq!(cluster.command_calls(&["get", "mget"]), 3, "no other node counted a read");

    // The killed node comes back (empty) as a replica of the promoted one.
    cluster.restart(master).await;
    cluster.wait_healthy().await;
    assert_eq!(cluster.replicas_of(replica), vec![master]);
    assert!(cluster.command(master, &["INFO", "replication"]).contains("role:slave"));

    // A reshard through the proxies moves slots and keeps every key.
    let masters = cluster.masters();
    let (from, to) = (masters[0], masters[1]);
    for i in 0..300 {
        let key = format!("harness:{i}");
        let owner = cluster.master_of_slot(key_slot(key.as_bytes()));
        assert!(cluster.command(owner, &["SET", &key, "v"]).starts_with("+OK"));
    }
    let keys_before: i64 = cluster.masters().iter().map(|&m| integer(&cluster.command(m, &["DBSIZE"]))).sum();
    let (from_slots, to_slots) = (slot_count(&cluster, from), slot_count(&cluster, to));
    let took = cluster.reshard(from, to, 100).await;
    println!("harness: 100 slots moved in {:.1} s", took.as_secs_f64());
    assert_eq!(slot_count(&cluster, from), from_slots - 100);
    assert_eq!(slot_count(&cluster, to), to_slots + 100);
    let keys_after: i64 = cluster.masters().iter().map(|&m| integer(&cluster.command(m, &["DBSIZE"]))).sum();
    assert_eq!(keys_after, keys_before, "no key lost in the move");
    cluster.wait_healthy().await;
}

#[tokio::test]
async fn a_cluster_without_replicas_or_proxies_serves_every_slot() {
    let cluster = RedisCluster::start(ClusterOptions::masters_only(3)).await;
    assert_eq!(cluster.masters(), vec![0, 1, 2]);
    let total: u32 = (0..3).map(|m| slot_count(&cluster, m)).sum();
    assert_eq!(total, 16_384);
    assert_eq!(cluster.urls()[0], format!("redis://127.0.0.1:{}/", cluster.port(0)), "no proxy: the real port");
}
