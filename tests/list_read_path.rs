//! The list read path against real stores: two redis-server processes, two
//! HBase Thrift test servers, the list server over real gRPC. What each
//! store did is read at the store (INFO commandstats, the HBase server's call
//! counters), not from the code under test.
//!
//! Every wait polls with a deadline; every load is bounded by a count.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pricing_proto::v1::list_pricing_client::ListPricingClient;
use pricing_proto::v1::{self, BatchGetPricesRequest, BatchGetPricesResponse};
use pricing_record::GoodsId;
use pricing_record::keys::redis_key;
use pricing_store::conformance::record;
use pricing_store::{CacheSettings, Cluster, DualSettings, ReadMode, RecordStore, SharedRecord};
use pricing_testkit::net::eventually;
use pricing_tests::app;
use pricing_tests::real_stack::{RealStack, counter, test_dual_settings};
use tonic::Code;
use tonic::transport::Channel;

const WAIT: Duration = Duration::from_secs(20);

/// A goods at `fen` fen with no activity, at `version`.
fn rec(id: GoodsId, version: u64, fen: i64) -> SharedRecord {
    Arc::new(record(id, version, fen, vec![]))
}

fn recs(ids: impl IntoIterator<Item = GoodsId>) -> Vec<SharedRecord> {
    ids.into_iter().map(|id| rec(id, 3, 1_000 + id as i64)).collect()
}

async fn ask(list: &mut ListPricingClient<Channel>, ids: &[GoodsId]) -> BatchGetPricesResponse {
    list.batch_get_prices(BatchGetPricesRequest { goods_ids: ids.to_vec(), context: Some(app("user-1")) })
        .await
        .unwrap_or_else(|status| panic!("batch {ids:?} failed: {status}"))
        .into_inner()
}

fn tiers(reply: &BatchGetPricesResponse) -> Vec<(GoodsId, v1::Tier)> {
    reply.prices.iter().map(|p| (p.goods_id, p.tier())).collect()
}

/// The cache out of the way: every call reaches the stores.
fn cache_off() -> CacheSettings {
    CacheSettings {
        ttl: Duration::ZERO,
        negative_ttl: Duration::ZERO,
        stale_grace: Duration::ZERO,
        ..CacheSettings::default()
    }
}

fn mgets(stack: &RealStack) -> [u64; 2] {
    [stack.mget_calls(Cluster::A), stack.mget_calls(Cluster::B)]
}

fn hbase_reads(stack: &RealStack) -> u64 {
    stack.hbase_reads(Cluster::A) + stack.hbase_reads(Cluster::B)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tier_answers_and_says_so() {
    let stack = RealStack::start().await;
    stack.seed(&[rec(11, 4, 1_990)]).await;
    stack.seed_hbase(&[rec(12, 6, 2_500)]).await;
    let (mget0, hbase0) = (mgets(&stack), hbase_reads(&stack));
    let mut list = stack.list().await;

    let first = ask(&mut list, &[11, 12, 13]).await;
    assert_eq!(tiers(&first), vec![(11, v1::Tier::Redis), (12, v1::Tier::Hbase)]);
    assert_eq!(first.not_found, vec![13]);
    assert_eq!(first.prices.iter().map(|p| p.version).collect::<Vec<_>>(), vec![4, 6]);
    assert_eq!(first.prices.iter().map(|p| p.activity_price.as_str()).collect::<Vec<_>>(), vec!["19.90", "25.00"]);
    assert!(first.prices.iter().all(|p| !p.stale));
    let [a, b] = mgets(&stack);
    assert_eq!(a + b - mget0[0] - mget0[1], 1, "one MGET for the batch");
    assert_eq!(hbase_reads(&stack) - hbase0, 1, "one HBase read for what Redis lacked");

    let second = ask(&mut list, &[11, 12, 13]).await;
    assert_eq!(tiers(&second), vec![(11, v1::Tier::Memory), (12, v1::Tier::Memory)]);
    assert_eq!(second.not_found, vec![13], "not-found is remembered too");
    assert_eq!(mgets(&stack), [a, b], "memory answered without Redis");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_only_hbase_holds_is_written_back_to_redis() {
    let stack = RealStack::start().await;
    stack.seed_hbase(&[rec(21, 7, 3_000)]).await;
    let mut list = stack.list().await;
    assert_eq!(tiers(&ask(&mut list, &[21]).await), vec![(21, v1::Tier::Hbase)]);

    for cluster in [Cluster::A, Cluster::B] {
        let store = stack.redis_pair().store.store(cluster);
        let version = eventually("the write-back to reach redis", WAIT, || async {
            store.fetch(&[21]).await.ok()?.first().map(|r| r.version)
        })
        .await;
        assert_eq!(version, 7, "{} holds the version HBase had", store.name());
    }
    stack.reader().invalidate(&[21]).await;
    let hbase_before = hbase_reads(&stack);
    let reply = ask(&mut list, &[21]).await;
    assert_eq!(tiers(&reply), vec![(21, v1::Tier::Redis)]);
    assert_eq!((reply.prices[0].version, reply.prices[0].activity_price.as_str()), (7, "30.00"));
    assert_eq!(hbase_reads(&stack), hbase_before, "HBase is not asked any more");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_id_reaches_the_stores_once() {
    // A long negative ttl, so that a slow machine cannot expire it between the asks.
    let stack = RealStack::start_with(|c| c.cache.negative_ttl = Duration::from_secs(60)).await;
    let (mget0, hbase0) = (mgets(&stack), hbase_reads(&stack));
    let mut list = stack.list().await;
    for _ in 0..2 {
        let reply = ask(&mut list, &[9_000_001]).await;
        assert!(reply.prices.is_empty());
        assert_eq!(reply.not_found, vec![9_000_001]);
    }
    assert_eq!(hbase_reads(&stack) - hbase0, 1, "the second ask was answered from the negative cache");
    let [a, b] = mgets(&stack);
    assert_eq!(a + b - mget0[0] - mget0[1], 1);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_share_one_hbase_read() {
    const CALLERS: u64 = 16;
    let ids = [31, 32, 33];
    // HBase is held below; its budgets must outlast the wait for the callers.
    let stack = RealStack::start_with(|c| {
        let hbase = c.hbase.as_mut().unwrap();
        let mut patient = test_dual_settings();
        patient.a.timeout = Duration::from_secs(60);
        patient.b.timeout = Duration::from_secs(60);
        hbase.settings = patient;
        hbase.a.call_timeout_ms = 60_000;
        hbase.b.call_timeout_ms = 60_000;
    })
    .await;
    stack.seed_hbase(&recs(ids)).await;
    let (mget0, hbase0, entered0) = (mgets(&stack), hbase_reads(&stack), stack.reads_entered());
    let coalesced0 = counter("pricing_chain_coalesced_total", &[]);
    stack.hbase(Cluster::A).pause();
    stack.hbase(Cluster::B).pause();

    let list = stack.list().await;
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let mut list = list.clone();
            tokio::spawn(async move { ask(&mut list, &ids).await })
        })
        .collect();
    eventually("every caller inside the chain, one HBase read held", WAIT, || async {
        let joined = counter("pricing_chain_coalesced_total", &[]) - coalesced0;
        (stack.reads_entered() - entered0 == CALLERS
            && hbase_reads(&stack) - hbase0 == 1
            && joined >= (CALLERS - 1) * ids.len() as u64)
            .then_some(())
    })
    .await;
    stack.hbase(Cluster::A).resume();
    stack.hbase(Cluster::B).resume();

    for caller in callers {
        let reply = caller.await.expect("caller task");
        assert_eq!(tiers(&reply), ids.iter().map(|&id| (id, v1::Tier::Hbase)).collect::<Vec<_>>());
    }
    assert_eq!(hbase_reads(&stack) - hbase0, 1, "{CALLERS} callers, one getRowsWithColumns");
    let [a, b] = mgets(&stack);
    assert_eq!(a + b - mget0[0] - mget0[1], 1, "and one MGET");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_reads_spread_over_both_redis_one_mget_per_batch() {
    const BATCHES: u64 = 400;
    let stack = RealStack::start_with(|c| c.cache = cache_off()).await;
    let ids: Vec<GoodsId> = (41..61).collect();
    stack.seed_redis(&recs(ids.iter().copied())).await;
    let (mget0, hbase0) = (mgets(&stack), hbase_reads(&stack));
    let mut list = stack.list().await;
    for _ in 0..BATCHES {
        let reply = ask(&mut list, &ids).await;
        assert_eq!(reply.prices.len(), 20);
        assert!(reply.prices.iter().all(|p| p.tier() == v1::Tier::Redis), "{:?}", tiers(&reply));
    }
    let [a, b] = mgets(&stack);
    let (at_a, at_b) = (a - mget0[0], b - mget0[1]);
    assert_eq!(at_a + at_b, BATCHES, "one MGET per batch, at one cluster");
    // Binomial(400, 1/2): sd 10; 60 either side is 6 sd.
    assert!((140..=260).contains(&at_a), "about half at A: {at_a} of {BATCHES}");
    assert!((140..=260).contains(&at_b), "about half at B: {at_b} of {BATCHES}");
    assert_eq!(hbase_reads(&stack), hbase0, "Redis held everything");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_cluster_takes_every_read_and_flips_live() {
    const BATCHES: u64 = 50;
    let stack = RealStack::start_with(|c| c.cache = cache_off()).await;
    let ids: Vec<GoodsId> = (61..81).collect();
    stack.seed_redis(&recs(ids.iter().copied())).await;
    stack.set_dual(stack.redis_pair(), DualSettings { read: ReadMode::OnlyA {}, ..test_dual_settings() });
    let mget0 = mgets(&stack);
    let mut list = stack.list().await;
    for _ in 0..BATCHES {
        assert_eq!(ask(&mut list, &ids).await.prices.len(), 20);
    }
    let after_a = mgets(&stack);
    assert_eq!([after_a[0] - mget0[0], after_a[1] - mget0[1]], [BATCHES, 0], "only_a: every MGET at A");

    stack.set_dual(stack.redis_pair(), DualSettings { read: ReadMode::OnlyB {}, ..test_dual_settings() });
    let reply = ask(&mut list, &ids).await;
    assert!(reply.prices.iter().all(|p| p.tier() == v1::Tier::Redis));
    let after_b = mgets(&stack);
    assert_eq!([after_b[0] - after_a[0], after_b[1] - after_a[1]], [0, 1], "the very next call went to B");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_redis_under_load_fails_no_call() {
    const CLIENTS: u64 = 8;
    const PER_CLIENT: u64 = 500;
    const KILL_AFTER: u64 = 1_000;
    let mut stack = RealStack::start_with(|c| c.cache = cache_off()).await;
    let ids: Vec<GoodsId> = (1_001..1_201).collect();
    stack.seed(&recs(ids.iter().copied())).await;
    let failovers0 = counter("pricing_dual_failover_total", &[("pair", "redis"), ("from", "redis-a")]);

    let done = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let mut list = stack.list().await;
        let (done, ids) = (Arc::clone(&done), ids.clone());
        clients.push(tokio::spawn(async move {
            let mut failed = Vec::new();
            for i in 0..PER_CLIENT {
                let start = ((client * 7 + i) * 20 % ids.len() as u64) as usize;
                let batch = &ids[start..start + 20];
                let call = list.batch_get_prices(BatchGetPricesRequest {
                    goods_ids: batch.to_vec(),
                    context: Some(app("user-1")),
                });
                match tokio::time::timeout(Duration::from_secs(10), call).await {
                    Ok(Ok(reply)) => {
                        let reply = reply.into_inner();
                        // Memory answers too when a concurrent batch stored the id
                        // after this call began; HBase would mean the pair failed.
                        let from_pair = |p: &v1::GoodsPrice| matches!(p.tier(), v1::Tier::Redis | v1::Tier::Memory);
                        if reply.prices.len() != 20 || !reply.prices.iter().all(|p| from_pair(p) && !p.stale) {
                            failed.push(format!("incomplete or not from the redis pair: {:?}", tiers(&reply)));
                        }
                    }
                    Ok(Err(status)) => failed.push(status.to_string()),
                    Err(_) => failed.push("no answer in 10 s".into()),
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
            failed
        }));
    }
    eventually("the load to be under way", Duration::from_secs(60), || async {
        (done.load(Ordering::SeqCst) >= KILL_AFTER).then_some(())
    })
    .await;
    let b_at_kill = stack.mget_calls(Cluster::B);
    stack.redis_mut(Cluster::A).kill();
    let done_at_kill = done.load(Ordering::SeqCst);

    let mut failed = Vec::new();
    for client in clients {
        failed
            .extend(tokio::time::timeout(Duration::from_secs(120), client).await.expect("load ends").expect("client"));
    }
    let total = CLIENTS * PER_CLIENT;
    assert!(done_at_kill < total * 3 / 4, "the kill came mid-run ({done_at_kill} of {total} done)");
    assert!(failed.is_empty(), "{} of {total} calls failed, first: {:?}", failed.len(), failed.first());
    let failovers = counter("pricing_dual_failover_total", &[("pair", "redis"), ("from", "redis-a")]) - failovers0;
    assert!(failovers >= 1, "failover is visible in the metrics");
    assert!(stack.mget_calls(Cluster::B) > b_at_kill, "B kept answering after the kill");
    // Now one caller at a time (nothing to coalesce): every batch is one MGET at B.
    let b_before = stack.mget_calls(Cluster::B);
    let mut list = stack.list().await;
    for _ in 0..20 {
        assert!(ask(&mut list, &ids[..20]).await.prices.iter().all(|p| p.tier() == v1::Tier::Redis));
    }
    assert_eq!(stack.mget_calls(Cluster::B) - b_before, 20, "B takes every batch while A is down");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_one_hbase_fails_no_call() {
    let mut stack = RealStack::start().await;
    let ids: Vec<GoodsId> = (2_001..2_081).collect();
    stack.seed_hbase(&recs(ids.iter().copied())).await;
    let failovers0 = counter("pricing_dual_failover_total", &[("pair", "hbase"), ("from", "hbase-a")]);
    stack.hbase_mut(Cluster::A).stop();
    let reads_at_b = stack.hbase_reads(Cluster::B);

    let mut list = stack.list().await;
    // Fresh ids every call: each one misses memory and Redis and reaches HBase.
    for batch in ids.chunks(2) {
        let reply = ask(&mut list, batch).await;
        assert_eq!(tiers(&reply), batch.iter().map(|&id| (id, v1::Tier::Hbase)).collect::<Vec<_>>());
    }
    assert_eq!(stack.hbase_reads(Cluster::B) - reads_at_b, 40, "B answered every batch");
    let failovers = counter("pricing_dual_failover_total", &[("pair", "hbase"), ("from", "hbase-a")]) - failovers0;
    assert!(failovers >= 1, "40 split reads picked A at least once and failed over (odds 2^-40 otherwise)");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_store_down_serves_stale_within_grace_then_unavailable() {
    let ids = [3_001, 3_002];
    let mut stack = RealStack::start_with(|c| {
        c.cache.ttl = Duration::from_millis(300);
        c.cache.stale_grace = Duration::from_secs(3);
    })
    .await;
    stack.seed(&recs(ids)).await;
    let mut list = stack.list().await;
    let fresh = ask(&mut list, &ids).await;
    assert!(fresh.prices.iter().all(|p| !p.stale && p.tier() == v1::Tier::Redis));

    for cluster in [Cluster::A, Cluster::B] {
        stack.redis_mut(cluster).kill();
        stack.hbase_mut(cluster).stop();
    }
    let stale = eventually("a stale answer once the ttl has passed", WAIT, || {
        let mut list = list.clone();
        async move {
            let reply = list
                .batch_get_prices(BatchGetPricesRequest { goods_ids: ids.to_vec(), context: Some(app("user-1")) })
                .await
                .ok()?
                .into_inner();
            reply.prices.iter().all(|p| p.stale).then_some(reply)
        }
    })
    .await;
    assert_eq!(tiers(&stale), vec![(3_001, v1::Tier::Memory), (3_002, v1::Tier::Memory)]);
    for (old, now) in fresh.prices.iter().zip(&stale.prices) {
        assert_eq!((old.version, &old.activity_price), (now.version, &now.activity_price), "the same record");
    }

    let status = eventually("UNAVAILABLE once the grace has passed", WAIT, || {
        let mut list = list.clone();
        async move {
            list.batch_get_prices(BatchGetPricesRequest { goods_ids: ids.to_vec(), context: Some(app("user-1")) })
                .await
                .err()
        }
    })
    .await;
    assert_eq!(status.code(), Code::Unavailable, "{status}");
    assert!(status.message().contains("no store could answer"), "{}", status.message());
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_bytes_in_redis_are_a_miss_answered_by_hbase() {
    let stack = RealStack::start().await;
    stack.seed_hbase(&[rec(4_001, 5, 4_200)]).await;
    let key = redis_key(4_001);
    for cluster in [Cluster::A, Cluster::B] {
        assert!(stack.redis(cluster).command(&["SET", &key, "not-a-record"]).contains("OK"));
    }
    let corrupt = || {
        counter("pricing_store_corrupt_total", &[("store", "redis-a")])
            + counter("pricing_store_corrupt_total", &[("store", "redis-b")])
    };
    let corrupt0 = corrupt();
    let mut list = stack.list().await;

    let reply = ask(&mut list, &[4_001]).await;
    assert_eq!(tiers(&reply), vec![(4_001, v1::Tier::Hbase)]);
    assert_eq!((reply.prices[0].version, reply.prices[0].activity_price.as_str()), (5, "42.00"));
    assert!(corrupt() > corrupt0, "the corrupt value is counted");
    // The write-back's version guard treats bytes it cannot read as older: repaired.
    for cluster in [Cluster::A, Cluster::B] {
        let store = stack.redis_pair().store.store(cluster);
        let version = eventually("the write-back to repair redis", WAIT, || async {
            store.fetch(&[4_001]).await.ok()?.first().map(|r| r.version)
        })
        .await;
        assert_eq!(version, 5);
    }
    stack.stop().await;
}
