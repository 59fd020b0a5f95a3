//! Issue 12's "Done when" on two real Redis Clusters (A and B, three
//! masters and three replicas each, `cluster-node-timeout` 2000 ms) behind
//! the list server (`tiers = ["redis"]`, `cluster = true`, the memory cache
//! out of the way so that every batch reads Redis; see
//! tests/support/cluster_stack.rs), with a steady load of
//! BatchGetPrices(20) and every answer checked against the engine
//! (tests/support/load.rs):
//!
//! - a master of A killed, then a master of B: no failed call, and reads
//!   reach each promoted node within 10 s of its promotion (counted at the
//!   nodes);
//! - 1,000 slots resharded under load: no failed call;
//! - the projector writing while a master is killed: no write lost, no
//!   version moving back;
//! - latency, then a black hole, on every node of one cluster (proxies the
//!   nodes announce): reads move to the other cluster and come back;
//! - commands per batch, counted at the nodes, at most one per slot;
//! - reconcile over both clusters: one `SCAN` walk per master finds the
//!   goods only a cluster holds, and corrupt, missing, extra and diverged
//!   entries on every master are repaired.
//!
//! Each test prints what it measured (`cargo test ... -- --nocapture`):
//! seconds from a kill to the promotion and from the promotion to reads
//! returning, the reshard's duration, commands per batch. Observation is at
//! the nodes (INFO commandstats), not in the code under test. The tests
//! take turns (one lock): two loads at once on two cores would make the
//! budgets, not the faults, fail calls.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pricing_projector::{Difference, Progress, Projector, ProjectorConfig, ReconcileOptions, Scope};
use pricing_record::keys::redis_key;
use pricing_record::{GoodsId, GoodsRecord};
use pricing_store::{BreakerSettings, Cluster, RecordStore, RecordWriter};
use pricing_store_redis::{RedisConfig, RedisStore};
use pricing_store_sql::{GoodsRow, SqlStore};
use pricing_testkit::net::{eventually, poll_until};
use pricing_testkit::proxy::Mode;
use pricing_testkit::redis_cluster::{ClusterOptions, RedisCluster, key_slot};
use pricing_tests::cluster_stack::{ClusterListStack, READ_COMMANDS, redis_pair_toml};
use pricing_tests::fault_stack::{WIDE_BUDGET, cluster_settings, quick_breaker, signed};
use pricing_tests::load::{Load, Stale, Truth, WAIT, goods, list_load, rotating};
use rust_decimal::Decimal;

/// One test at a time (see the module doc).
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Goods seeded in both clusters; the load asks batches of 20 of them.
const GOODS: u64 = 1_000;
/// Concurrent callers of the load.
const CLIENTS: usize = 4;
/// Reads must reach the promoted node within this long of its promotion.
const READS_BACK: Duration = Duration::from_secs(10);
/// Bound on the projector's progress after a promotion, and on its drain.
const PASSES_AFTER: Duration = Duration::from_secs(30);
/// Bound on the projector's pass in flight when the test stops it.
const PASS_END: Duration = Duration::from_secs(10);

fn all_ids() -> Vec<GoodsId> {
    (1..=GOODS).collect()
}

/// A started stack with [`GOODS`] records in both clusters and a load on it.
async fn loaded_stack(
    options: ClusterOptions,
    tune: impl FnOnce(&mut pricing_control::ControlConfig),
) -> (ClusterListStack, Load) {
    let stack = ClusterListStack::start(options, tune).await;
    let records = goods(all_ids());
    stack.seed(&records).await;
    let load =
        list_load(stack.list_addr, CLIENTS, None, Truth::new(&records), Stale::Refused, rotating(all_ids(), 20)).await;
    load.advance(200, "load before the fault").await;
    assert!(stack.reads(Cluster::A) > 0 && stack.reads(Cluster::B) > 0, "both clusters serve reads");
    (stack, load)
}

/// What one master kill did, as seen at the nodes.
struct Recovery {
    cluster: &'static str,
    promoted_after_kill: Duration,
    /// From the promotion to the first read counted at the promoted node.
    reads_back: Option<Duration>,
    failed_calls: u64,
}

/// Kills a master of `cluster` under the load, waits for the promotion and
/// for reads to reach the promoted node (at most [`READS_BACK`]).
async fn kill_a_master(stack: &mut ClusterListStack, load: &Load, cluster: Cluster) -> Recovery {
    let failed0 = load.failed();
    let victim = stack.cluster(cluster).masters()[0];
    stack.cluster_mut(cluster).kill(victim);
    let promotion = stack.cluster(cluster).wait_for_promotion(victim).await;
    let promoted = promotion.new_master;
    // The promoted node was a replica: it served no read before.
    let before = stack.cluster(cluster).node_command_calls(promoted, READ_COMMANDS);
    let reads_back = poll_until(promotion.at + READS_BACK, || async {
        let reads = stack.cluster(cluster).node_command_calls(promoted, READ_COMMANDS);
        (reads > before).then(|| promotion.at.elapsed())
    })
    .await;
    let recovery = Recovery {
        cluster: cluster.as_str(),
        promoted_after_kill: promotion.after_kill,
        reads_back,
        failed_calls: load.failed() - failed0,
    };
    println!(
        "cluster {}: node {victim} killed; node {promoted} promoted {:.1} s later; reads at the promoted node {}; {} calls failed so far in this phase (first: {:?})",
        recovery.cluster,
        recovery.promoted_after_kill.as_secs_f64(),
        recovery.reads_back.map_or("never within 10 s of the promotion".to_owned(), |d| format!(
            "{:.2} s after the promotion",
            d.as_secs_f64()
        )),
        recovery.failed_calls,
        load.first_failures(1),
    );
    recovery
}

/// Whether every cluster of `clusters` executes reads again within one
/// window of 100 calls, trying windows until [`READS_BACK`] is over. Not
/// one fixed window: a cluster's breaker that saw the failover's errors may
/// keep it out for a half-open cycle or two (`open_for` 500 ms each) while
/// the other cluster answers, which is the pair working as designed.
async fn serve_again(stack: &ClusterListStack, load: &Load, clusters: &[Cluster]) -> bool {
    poll_until(Instant::now() + READS_BACK, || async {
        let before: Vec<u64> = clusters.iter().map(|&c| stack.reads(c)).collect();
        load.advance(100, "a window of load after a failover").await;
        clusters.iter().zip(&before).all(|(&c, &b)| stack.reads(c) > b).then_some(())
    })
    .await
    .is_some()
}

// 1. A master of A killed, then one of B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_in_each_cluster_fails_no_call_and_reads_reach_the_promoted_node_within_10_s() {
    let _turn = TURN.lock().await;
    let (mut stack, load) = loaded_stack(ClusterOptions::default(), |_| {}).await;

    let a = kill_a_master(&mut stack, &load, Cluster::A).await;
    load.advance(200, "load after cluster a's failover").await;
    let a_serves = serve_again(&stack, &load, &[Cluster::A]).await;

    let b = kill_a_master(&mut stack, &load, Cluster::B).await;
    load.advance(200, "load after cluster b's failover").await;
    let both_serve = serve_again(&stack, &load, &[Cluster::A, Cluster::B]).await;

    let summary = load.finish().await;
    println!(
        "failover: {} calls answered, {} failed; A read again after its failover: {a_serves}; both read after both: {both_serve}",
        summary.answered,
        summary.failures.len()
    );
    for recovery in [&a, &b] {
        let back = recovery.reads_back.unwrap_or_else(|| {
            panic!(
                "cluster {}: no read reached the promoted node within {READS_BACK:?} of its promotion",
                recovery.cluster
            )
        });
        assert!(back <= READS_BACK);
    }
    assert!(a_serves, "cluster A serves reads after its failover");
    assert!(both_serve, "both clusters serve reads after both failovers");
    if !summary.failures.is_empty() {
        // Seen once (2026-12-02): "not found" for the killed master's ids.
        // Tell a key the cluster lost from one the client misread.
        for cluster in [Cluster::A, Cluster::B] {
            let nodes = stack.cluster(cluster);
            let absent: Vec<GoodsId> = all_ids()
                .into_iter()
                .filter(|id| {
                    let key = redis_key(*id);
                    let node = nodes.master_of_slot(key_slot(key.as_bytes()));
                    !nodes.command(node, &["EXISTS", &key]).starts_with(":1")
                })
                .take(10)
                .collect();
            println!("cluster {}: ids absent at their master after the load (first 10): {absent:?}", cluster.as_str());
        }
    }
    summary.assert_clean();
    stack.stop().await;
}

// 2. 1,000 slots moved from one master of A to another under load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resharding_1000_slots_under_load_fails_no_call() {
    let _turn = TURN.lock().await;
    let (stack, load) = loaded_stack(ClusterOptions::default(), |_| {}).await;
    let cluster = stack.cluster(Cluster::A);
    let masters = cluster.masters();
    let (from, to) = (masters[0], masters[1]);
    let moved_key = (1..=GOODS)
        .map(redis_key)
        .find(|key| cluster.master_of_slot(key_slot(key.as_bytes())) == from && key_slot(key.as_bytes()) < 1_000)
        .expect("a seeded key among the first slots of the first master");

    let at_start = load.calls();
    let took = cluster.reshard(from, to, 1_000).await;
    let during = load.calls() - at_start;
    assert_eq!(cluster.master_of_slot(key_slot(moved_key.as_bytes())), to, "{moved_key} moved with its slot");
    println!("reshard: 1,000 slots moved in {:.1} s while {during} calls were made", took.as_secs_f64());

    // The client follows the new owner: reads reach the target and A as a whole.
    let (a_reads, to_reads) = (stack.reads(Cluster::A), cluster.node_command_calls(to, READ_COMMANDS));
    eventually("reads to reach cluster a after the reshard", WAIT, || async {
        load.advance(50, "load after the reshard").await;
        (stack.reads(Cluster::A) > a_reads && cluster.node_command_calls(to, READ_COMMANDS) > to_reads).then_some(())
    })
    .await;
    let summary = load.finish().await;
    println!("reshard: {} calls answered, {} failed", summary.answered, summary.failures.len());
    summary.assert_clean();
    assert!(during > 0, "the reshard ran under load");
    stack.stop().await;
}

// 3. Latency, then a black hole, on every node of A (through the proxies).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_then_a_black_hole_on_one_cluster_move_reads_to_the_other_and_back() {
    let _turn = TURN.lock().await;
    // A call above 100 ms is slow; 500 ms is the budget. The proxies hold
    // every chunk 75 ms each way: a round trip of at least 150 ms.
    let settings = || {
        let mut settings = cluster_settings(Duration::from_millis(500));
        settings.breaker = BreakerSettings { slow_call: Duration::from_millis(100), ..quick_breaker() };
        settings
    };
    let (stack, load) = loaded_stack(ClusterOptions::default().proxied(), |c| {
        c.list.redis.a = settings();
        c.list.redis.b = settings();
    })
    .await;
    let share_before = share_of_a(&stack, &load).await;

    stack.cluster(Cluster::A).set_proxy_mode(Mode::Delay(Duration::from_millis(75)));
    let share_slow = eventually("reads to leave the slow cluster", WAIT, || async {
        let share = share_of_a(&stack, &load).await;
        (share < 0.15).then_some(share)
    })
    .await;
    stack.cluster(Cluster::A).set_proxy_mode(Mode::Blackhole);
    let share_hole = eventually("reads to stay off the black-holed cluster", WAIT, || async {
        let share = share_of_a(&stack, &load).await;
        (share < 0.15).then_some(share)
    })
    .await;
    stack.cluster(Cluster::A).set_proxy_mode(Mode::Pass);
    let share_after = eventually("reads to come back to cluster a", WAIT, || async {
        let share = share_of_a(&stack, &load).await;
        (share > 0.25).then_some(share)
    })
    .await;
    let summary = load.finish().await;
    println!(
        "network fault: A's share of reads {share_before:.2} before, {share_slow:.2} with latency, {share_hole:.2} black-holed, {share_after:.2} after; {} calls answered, {} failed",
        summary.answered,
        summary.failures.len()
    );
    assert!(share_before > 0.25, "the split reads A before the fault: {share_before:.2}");
    summary.assert_clean();
    stack.stop().await;
}

/// A's share of the reads counted at both clusters' nodes over the next 100 calls.
async fn share_of_a(stack: &ClusterListStack, load: &Load) -> f64 {
    let (a, b) = (stack.reads(Cluster::A), stack.reads(Cluster::B));
    load.advance(100, "a window of load").await;
    let (da, db) = (stack.reads(Cluster::A) - a, stack.reads(Cluster::B) - b);
    da as f64 / (da + db).max(1) as f64
}

// 4. Commands per batch in cluster mode, counted at the nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_batch_costs_at_most_one_command_per_slot() {
    let _turn = TURN.lock().await;
    const BATCHES: u64 = 50;
    const BATCH: u64 = 20;
    let stack = ClusterListStack::start(ClusterOptions::default(), |_| {}).await;
    let records = goods(1..=(BATCHES + 1) * BATCH);
    stack.seed(&records).await;
    let truth = Truth::new(&records);
    let list = stack.list().await;
    let ask = |ids: Vec<GoodsId>| {
        let truth = Arc::clone(&truth);
        let request = pricing_proto::v1::BatchGetPricesRequest {
            goods_ids: ids.clone(),
            context: Some(pricing_tests::app("user-1")),
        };
        let mut list = list.clone();
        async move {
            let reply = list.batch_get_prices(signed(request)).await.expect("a batch is answered").into_inner();
            assert_eq!(reply.prices.len(), ids.len(), "every goods priced");
            for price in &reply.prices {
                truth.check(price).expect("priced right");
            }
        }
    };
    // Warm: connections and slot maps in place before counting.
    ask((1..=BATCH).collect()).await;
    for cluster in [Cluster::A, Cluster::B] {
        stack.cluster(cluster).reset_stats();
    }
    let mut slots = 0;
    for n in 1..=BATCHES {
        let ids: Vec<GoodsId> = (n * BATCH + 1..=(n + 1) * BATCH).collect();
        slots += ids.iter().map(|&id| key_slot(redis_key(id).as_bytes())).collect::<HashSet<_>>().len() as u64;
        ask(ids).await;
    }
    let reads = stack.reads(Cluster::A) + stack.reads(Cluster::B);
    let data = |c: Cluster| stack.cluster(c).command_calls(&["mget", "get", "evalsha", "eval"]);
    let per_node: Vec<(String, u64)> = [Cluster::A, Cluster::B]
        .into_iter()
        .flat_map(|c| {
            let cluster = stack.cluster(c);
            (0..cluster.node_count())
                .map(move |i| (format!("{}{i}", c.as_str()), cluster.node_command_calls(i, READ_COMMANDS)))
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    println!(
        "commands per batch of {BATCH}: {:.2} reads (bound: {:.2} distinct slots per batch); data commands {}; per node {per_node:?}",
        reads as f64 / BATCHES as f64,
        slots as f64 / BATCHES as f64,
        data(Cluster::A) + data(Cluster::B),
    );
    assert!(reads >= BATCHES, "every batch reached a node: {reads} reads for {BATCHES} batches");
    assert!(reads <= slots, "{reads} read commands for {BATCHES} batches over {slots} slots");
    stack.stop().await;
}

// 5. The projector writes while a master of A is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projector_writes_during_a_failover_are_neither_lost_nor_moved_back() {
    let _turn = TURN.lock().await;
    const CATALOGUE: u64 = 300;
    let (url, source, mut clusters) = source_and_clusters("cluster_proj", CATALOGUE).await;
    let config = format!(
        "version = 1\n[source]\ndatabase_url = {url:?}\n[redis]\n{}\n[sync]\npage_size = 50\nconcurrency = 2\noverlap_ms = 1000\n\
         [retry]\nattempts = 2\nbackoff_ms = 50\nmax_backoff_ms = 200\nqueue_backoff_ms = 0\nqueue_max_backoff_ms = 0\n",
        redis_pair_toml(&clusters)
    );
    let projector = Arc::new(
        Projector::connect(ProjectorConfig::parse(&config).expect("projector config")).await.expect("projector"),
    );
    let full = projector.full(&Scope::All, true, &Progress::logs_only()).await.expect("full sync");
    let ids: Vec<GoodsId> = (1..=CATALOGUE).collect();
    assert!(full.goods > 0, "{full:?}");

    // MySQL changes, the projector's passes and a version watcher, all at once.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let changes = tokio::spawn(change_prices(source.clone(), ids.clone(), Arc::clone(&stop)));
    let passes = Arc::new(AtomicU64::new(0));
    let queued: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let pass_errors = Arc::new(AtomicU64::new(0));
    let mut projecting = {
        let (projector, stop, passes, queued, errors) = (
            Arc::clone(&projector),
            Arc::clone(&stop),
            Arc::clone(&passes),
            Arc::clone(&queued),
            Arc::clone(&pass_errors),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                match projector.incremental_pass().await {
                    Ok(report) => {
                        let mut queued = queued.lock().unwrap();
                        for (target, counts) in &report.targets {
                            *queued.entry(target.clone()).or_default() += counts.queued;
                        }
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::SeqCst);
                    }
                }
                passes.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let watchers: Vec<_> = clusters
        .iter()
        .zip(["a", "b"])
        .map(|(cluster, name)| tokio::spawn(watch_versions(reader(cluster, name), ids.clone(), Arc::clone(&stop))))
        .collect();
    let passes_after = |n: u64, within: Duration| {
        let passes = Arc::clone(&passes);
        async move {
            let target = passes.load(Ordering::SeqCst) + n;
            poll_until(Instant::now() + within, || async { (passes.load(Ordering::SeqCst) >= target).then_some(()) })
                .await
                .is_some()
        }
    };
    assert!(passes_after(3, WAIT).await, "projector passes before the kill");
    let victim = clusters[0].masters()[0];
    clusters[0].kill(victim);
    let promotion = clusters[0].wait_for_promotion(victim).await;
    println!(
        "projector: node {victim} of A killed, node {} promoted {:.1} s later",
        promotion.new_master,
        promotion.after_kill.as_secs_f64()
    );
    // Bounded: a pass stuck on a cluster that moved is the failure this test looks for.
    let progressed = passes_after(3, PASSES_AFTER).await;
    stop.store(true, Ordering::SeqCst);
    let changed = changes.await.expect("the change task");
    let pass_stuck = tokio::time::timeout(PASS_END, &mut projecting).await.is_err();
    projecting.abort();
    let regressions: Vec<String> =
        futures::future::join_all(watchers).await.into_iter().flat_map(|r| r.expect("a watcher")).collect();

    // Drain: passes until the retry queue is empty (it retries at once).
    let drained = poll_until(Instant::now() + PASSES_AFTER, || async {
        let pass = tokio::time::timeout(PASSES_AFTER, projector.incremental_pass()).await.ok()?.ok()?;
        let depth = source.retry_depth().await.ok()?;
        (depth == 0 && pass.drain.failed == 0).then_some(pass.drain)
    })
    .await;
    let depth = source.retry_depth().await.expect("retry queue depth");
    println!(
        "projector: {changed} price changes, {} passes ({} failed), queued during the failover {:?}, last drain {drained:?}, queue depth {depth}",
        passes.load(Ordering::SeqCst),
        pass_errors.load(Ordering::SeqCst),
        queued.lock().unwrap()
    );

    // None lost: a client started now finds MySQL's latest record of every goods.
    let mut expected = source.load(&ids).await.expect("source records");
    expected.sort_by_key(|r| r.goods_id);
    let mut lost = Vec::new();
    for (cluster, name) in clusters.iter().zip(["a", "b"]) {
        let held = match reader(cluster, &format!("final-{name}")).fetch(&ids).await {
            Ok(held) => held,
            Err(error) => {
                lost.push(format!("cluster {name}: a fresh client cannot read it: {error}"));
                continue;
            }
        };
        let held: HashMap<GoodsId, GoodsRecord> = held.into_iter().map(|r| (r.goods_id, (*r).clone())).collect();
        let wrong: Vec<GoodsId> =
            expected.iter().filter(|e| held.get(&e.goods_id) != Some(*e)).map(|e| e.goods_id).collect();
        if !wrong.is_empty() {
            lost.push(format!(
                "cluster {name}: {} goods lack MySQL's latest record: {:?}",
                wrong.len(),
                &wrong[..wrong.len().min(10)]
            ));
        }
    }
    println!("projector: 3 passes after the promotion: {progressed}; a pass stuck after the stop: {pass_stuck}");
    println!("projector: lost {lost:?}; versions moved back {:?}", &regressions[..regressions.len().min(5)]);
    assert!(progressed, "the projector made 3 passes within {PASSES_AFTER:?} of the promotion");
    assert!(!pass_stuck, "the projector's last pass ended within {PASS_END:?} of the stop");
    assert!(drained.is_some(), "the retry queue did not drain within {PASSES_AFTER:?}: {depth} writes still queued");
    assert!(lost.is_empty(), "{lost:?}");
    assert!(regressions.is_empty(), "versions moved back: {:?}", &regressions[..regressions.len().min(5)]);
    assert!(changed > 0);
}

// 6. Reconcile over two clusters: every master walked, every difference repaired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_walks_every_master_and_repairs_what_each_holds_wrong() {
    let _turn = TURN.lock().await;
    const CATALOGUE: u64 = 120;
    let (url, source, clusters) = source_and_clusters("cluster_reconcile", CATALOGUE).await;
    let config = format!(
        "version = 1\n[source]\ndatabase_url = {url:?}\n[redis]\n{}\n[sync]\npage_size = 50\n",
        redis_pair_toml(&clusters)
    );
    let projector =
        Projector::connect(ProjectorConfig::parse(&config).expect("projector config")).await.expect("projector");
    projector.full(&Scope::All, false, &Progress::logs_only()).await.expect("full sync");
    let clean = projector.reconcile(&ReconcileOptions::default()).await.expect("reconcile");
    assert_eq!(clean.differences(), 0, "{}", clean.table());
    assert_eq!(clean.walked, ["redis-a", "redis-b"], "a Redis Cluster is walked");

    let ids: Vec<GoodsId> = (1..=CATALOGUE).collect();
    let master_of = |cluster: &RedisCluster, id: GoodsId| cluster.master_of_slot(key_slot(redis_key(id).as_bytes()));
    // On every master of A: one value corrupt, one missing, one goods the
    // source does not have.
    let store_a = reader(&clusters[0], "a");
    let template = source.load(&[1]).await.expect("load")[0].clone();
    let mut spoiled = Vec::new();
    for master in clusters[0].masters() {
        let mut own = ids.iter().copied().filter(|id| master_of(&clusters[0], *id) == master);
        let (corrupt, missing) = (own.next().expect("a goods on this master"), own.next().expect("two"));
        clusters[0].command(master, &["SET", &redis_key(corrupt), "garbage"]);
        store_a.remove(&[missing]).await.expect("remove");
        let extra = (1_000_000..).find(|id| master_of(&clusters[0], *id) == master).expect("an id on this master");
        let stray = GoodsRecord { goods_id: extra, ..template.clone() };
        store_a.put(&[Arc::new(stray)]).await.expect("put the extra");
        spoiled.push((corrupt, missing, extra));
    }
    assert_eq!(spoiled.len(), 3, "three masters");
    // On B: a different price at a newer version than the source's (the
    // version guard keeps it against a repair's write).
    let store_b = reader(&clusters[1], "b");
    let mut newer = source.load(&[2]).await.expect("load")[0].clone();
    newer.version += 10;
    newer.base_price = Decimal::new(1, 2);
    store_b.put(&[Arc::new(newer)]).await.expect("put the diverged record");

    let found = projector.reconcile(&ReconcileOptions::default()).await.expect("reconcile");
    let da = found.stores["redis-a"];
    assert_eq!((da.corrupt, da.missing, da.extra, da.total()), (3, 3, 3, 9), "{}", found.table());
    let db = found.stores["redis-b"];
    assert_eq!((db.diverged, db.total()), (1, 1), "{}", found.table());
    for (corrupt, missing, extra) in &spoiled {
        for (kind, id) in [(Difference::Corrupt, corrupt), (Difference::Missing, missing), (Difference::Extra, extra)] {
            assert!(found.samples.contains(&("redis-a".to_owned(), kind, *id)), "{kind:?} {id}: {}", found.table());
        }
    }

    let repaired = projector
        .reconcile(&ReconcileOptions { repair: true, ..ReconcileOptions::default() })
        .await
        .expect("reconcile --repair");
    for store in ["redis-a", "redis-b"] {
        let d = repaired.stores[store];
        assert_eq!((d.repaired, d.unrepaired), (d.total(), 0), "{store}: {}", repaired.table());
    }
    let after = projector.reconcile(&ReconcileOptions::default()).await.expect("reconcile");
    assert_eq!(after.differences(), 0, "{}", after.table());
    // What the clusters hold is the source, read back through clients of their own.
    let mut truth = source.load(&ids).await.expect("load");
    truth.sort_by_key(|r| r.goods_id);
    for (name, store) in [("A", &store_a), ("B", &store_b)] {
        let mut held: Vec<GoodsRecord> =
            store.fetch(&ids).await.expect("fetch").iter().map(|r| (**r).clone()).collect();
        held.sort_by_key(|r| r.goods_id);
        assert_eq!(held, truth, "cluster {name}");
    }
    let extras: Vec<GoodsId> = spoiled.iter().map(|(_, _, extra)| *extra).collect();
    assert!(store_a.fetch(&extras).await.expect("fetch").is_empty(), "the extras are removed");
}

/// A fresh MariaDB database (its URL) holding a demo catalogue of `goods`,
/// and two empty 3+3 clusters for the projector to fill.
async fn source_and_clusters(prefix: &str, goods: u64) -> (String, SqlStore, [RedisCluster; 2]) {
    let url = pricing_testkit::mysql::fresh_database(prefix).await;
    let source = SqlStore::connect(&url).await.expect("connect to the test database");
    let demo = pricing_store_sql::demo::DemoOptions { goods, ..Default::default() };
    pricing_store_sql::demo::seed(&source, demo).await.expect("seed the demo catalogue");
    let (a, b) =
        tokio::join!(RedisCluster::start(ClusterOptions::default()), RedisCluster::start(ClusterOptions::default()));
    (url, source, [a, b])
}

/// A store reading one cluster (its own client).
fn reader(cluster: &RedisCluster, name: &str) -> RedisStore {
    let config = RedisConfig::cluster(format!("check-{name}"), cluster.urls())
        .with_timeouts(Duration::from_millis(500), WIDE_BUDGET);
    RedisStore::new(config).expect("redis store")
}

/// Changes goods prices in MySQL (a new version each) until `stop`; returns how many.
async fn change_prices(source: SqlStore, ids: Vec<GoodsId>, stop: Arc<std::sync::atomic::AtomicBool>) -> u64 {
    let catalog = source.catalog();
    let mut changed = 0;
    for round in 0u64.. {
        for chunk in ids.chunks(10) {
            if stop.load(Ordering::SeqCst) {
                return changed;
            }
            for record in source.load(chunk).await.expect("load").into_iter().filter(|r| !r.is_tombstone()) {
                let cents = 1_000 + ((round * 37 + record.goods_id) % 5_000) as i64;
                let row = GoodsRow {
                    id: record.goods_id,
                    store_id: record.store_id,
                    base_price: Decimal::new(cents, 2),
                    currency: "CNY".into(),
                    status: record.status,
                };
                catalog.upsert_goods(&row).await.expect("upsert goods");
                changed += 1;
            }
        }
    }
    changed
}

/// Reads every goods from one cluster until `stop`, noting each version that
/// is lower than one seen before (failed reads are skipped).
async fn watch_versions(store: RedisStore, ids: Vec<GoodsId>, stop: Arc<std::sync::atomic::AtomicBool>) -> Vec<String> {
    let mut seen: HashMap<GoodsId, u64> = HashMap::new();
    let mut regressions = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        if let Ok(records) = store.fetch(&ids).await {
            for record in records {
                let highest = seen.entry(record.goods_id).or_default();
                if record.version < *highest {
                    regressions.push(format!(
                        "{}: goods {} at {} after {}",
                        RecordStore::name(&store),
                        record.goods_id,
                        record.version,
                        highest
                    ));
                }
                *highest = (*highest).max(record.version);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    regressions
}
