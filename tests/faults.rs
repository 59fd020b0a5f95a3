//! Fault tests: the list and detail servers over real redis-server
//! processes, HBase Thrift test servers and MariaDB, with a fault staged in
//! the middle of a load of concurrent callers: a Redis killed and restarted,
//! a Redis frozen with SIGSTOP, both Redis down, one HBase down, every store
//! down, MySQL gone under the detail path, latency on one Redis, the
//! control file replaced, and seed 001's long-outage runbook as a drill
//! (list, detail and projector steered by one control file), on standalone
//! Redis and on two Redis Clusters of 3 masters + 3 replicas. The last test
//! checks the detail server's zone-aware reads.
//!
//! Every test asserts the same two things about its load: no admitted call
//! failed, and no price was wrong. "Right" is the engine's own evaluation of
//! the record the test seeded (or that MySQL holds): version, original,
//! activity and beyond-limit prices and the winning activity of every
//! answer. Each test also checks that the fault did what it stages (a
//! failover counted, a breaker opened, another store answering), at the
//! stores or in the metrics, not from the code under test.
//!
//! Loads run until the test has seen what it waits for (progress counted in
//! answered calls, polled with deadlines), never for a fixed time. The tests
//! take turns (one lock): the metrics they read are process-wide, and two
//! loads at once on two cores would make the budgets, not the faults, fail
//! calls.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use pricing_control::ReadSwitch;
use pricing_engine::best_price;
use pricing_projector::{Progress, ReconcileOptions, Scope};
use pricing_proto::v1::detail_pricing_client::DetailPricingClient;
use pricing_proto::v1::{self, BatchGetPricesRequest, GetGoodsPriceRequest, OrderLineInput, PriceOrderRequest};
use pricing_record::GoodsId;
use pricing_store::WriteMode;
use pricing_store::{Cluster, ReadMode, RecordStore, SharedRecord};
use pricing_store_sql::GoodsRow;
use pricing_testkit::net::eventually;
use pricing_testkit::proxy::Mode;
use pricing_tests::app;
use pricing_tests::drill_stack::{Backing, DrillStack, switch_changes};
use pricing_tests::fault_stack::{DetailFaultStack, ListFaultStack, cluster_settings, signed};
use pricing_tests::load::{Load, Stale, Truth, WAIT, engine_context, goods, list_load, list_load_on, now_ms, rotating};
use pricing_tests::real_stack::{counter, gauge};
use rust_decimal::Decimal;
use tonic::Code;
use tonic::transport::Channel;

/// One test at a time (see the module doc).
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn failovers(from: &str) -> u64 {
    let pair = from.split('-').next().unwrap_or_default();
    counter("pricing_dual_failover_total", &[("pair", pair), ("from", from)])
}

fn dual_errors(cluster: &str, kind: &str) -> u64 {
    counter("pricing_dual_errors_total", &[("cluster", cluster), ("kind", kind)])
}

// 1. One Redis killed mid-load, then restarted (empty).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_redis_killed_and_restarted_fails_no_call() {
    let _turn = TURN.lock().await;
    let mut stack = ListFaultStack::start(|_| {}).await;
    let records = goods(1..=200);
    stack.seed(&records).await;
    let ids: Vec<GoodsId> = (1..=200).collect();
    let load = list_load(stack.list_addr, 6, None, Truth::new(&records), Stale::Refused, rotating(ids, 20)).await;

    load.advance(300, "load before the kill").await;
    let failovers0 = failovers("redis-a");
    tokio::task::block_in_place(|| stack.redis_mut(Cluster::A).kill());
    let at_kill = load.calls();
    let b_at_kill = stack.mget_calls(Cluster::B);
    load.advance(300, "load with redis a dead").await;
    assert!(failovers("redis-a") > failovers0, "reads that picked A failed over (counted)");
    assert!(stack.mget_calls(Cluster::B) > b_at_kill, "B kept answering");

    // Back, empty: once A's breaker lets reads through again, what A lacks
    // is answered by HBase and written back to A.
    tokio::task::block_in_place(|| stack.redis_mut(Cluster::A).restart());
    let hbase_before = load.tier(v1::Tier::Hbase);
    eventually("redis a serving reads again", WAIT, || async { (stack.mget_calls(Cluster::A) >= 20).then_some(()) })
        .await;
    load.advance(100, "load after the restart").await;
    assert!(load.tier(v1::Tier::Hbase) > hbase_before, "A's misses went to HBase");
    let keys = stack.redis(Cluster::A).command(&["DBSIZE"]);
    assert!(!keys.starts_with(":0\r"), "write-backs refilled A: {keys:?}");

    let summary = load.finish().await;
    summary.assert_clean();
    assert!(at_kill < summary.answered, "the kill came mid-load");
    stack.stop().await;
}

// 2. One Redis frozen (SIGSTOP: connections stay open, nothing answers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_redis_frozen_is_cut_off_by_its_timeout_and_breaker() {
    let _turn = TURN.lock().await;
    // The test is about the read budget: production's shape, a little wider.
    let budget = Duration::from_millis(250);
    let stack = ListFaultStack::start(|c| {
        c.list.redis.a = cluster_settings(budget);
        c.list.redis.b = cluster_settings(budget);
    })
    .await;
    let records = goods(1..=200);
    stack.seed(&records).await;
    let ids: Vec<GoodsId> = (1..=200).collect();
    let load = list_load(stack.list_addr, 6, None, Truth::new(&records), Stale::Refused, rotating(ids, 20)).await;

    load.advance(200, "load before the freeze").await;
    let (timeouts0, open0) = (dual_errors("redis-a", "timeout"), dual_errors("redis-a", "breaker_open"));
    let mget_a0 = stack.mget_calls(Cluster::A);
    stack.redis(Cluster::A).freeze();
    let at_freeze = load.calls();
    load.advance(200, "load with redis a frozen").await;
    eventually("redis a's breaker to open", WAIT, || async {
        (dual_errors("redis-a", "breaker_open") > open0).then_some(())
    })
    .await;
    load.advance(100, "load with redis a's breaker open").await;
    stack.redis(Cluster::A).thaw();
    let timed_out = dual_errors("redis-a", "timeout") - timeouts0;
    assert!(timed_out >= 1, "the frozen cluster's calls were cut by the timeout");

    // Every MGET sent while A was frozen timed out (or, sent just before the
    // thaw, was answered after it: at most one per client). More MGETs than
    // that at A means A serves new reads again.
    let sent_while_frozen = timed_out + 6;
    eventually("redis a serving reads after the thaw", WAIT, || async {
        (stack.mget_calls(Cluster::A) > mget_a0 + sent_while_frozen + 10).then_some(())
    })
    .await;
    let summary = load.finish().await;
    summary.assert_clean();
    assert!(at_freeze < summary.answered, "the freeze came mid-load");
    stack.stop().await;
}

// 3. Both Redis killed: HBase answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_redis_down_hbase_answers() {
    let _turn = TURN.lock().await;
    let mut stack = ListFaultStack::start(|_| {}).await;
    let records = goods(1..=200);
    stack.seed(&records).await;
    let ids: Vec<GoodsId> = (1..=200).collect();
    let load = list_load(stack.list_addr, 6, None, Truth::new(&records), Stale::Refused, rotating(ids, 20)).await;

    load.advance(200, "load before the kill").await;
    assert!(load.tier(v1::Tier::Redis) > 0, "Redis answered while it was up");
    tokio::task::block_in_place(|| {
        stack.redis_mut(Cluster::A).kill();
        stack.redis_mut(Cluster::B).kill();
    });
    let redis_before = load.tier(v1::Tier::Redis);
    let hbase_reads0 = stack.hbase_reads(Cluster::A) + stack.hbase_reads(Cluster::B);
    let (hbase_answers0, at_kill) = (load.tier(v1::Tier::Hbase), load.calls());
    load.advance(300, "load with both redis dead").await;
    let summary_calls = load.calls();
    let hbase_answers = load.tier(v1::Tier::Hbase) - hbase_answers0;
    let redis_after = load.tier(v1::Tier::Redis) - redis_before;
    let summary = load.finish().await;
    summary.assert_clean();
    assert!(at_kill < summary_calls, "the kill came mid-load");
    // A call already past Redis at the kill may still say "redis": one per client at most.
    assert!(hbase_answers >= 20 * 250, "HBase answered the batches after the kill: {hbase_answers} goods");
    assert!(redis_after <= 20 * 6, "Redis answered {redis_after} goods after both were killed");
    assert!(stack.hbase_reads(Cluster::A) + stack.hbase_reads(Cluster::B) > hbase_reads0);
    stack.stop().await;
}

// 4. One HBase server stopped (records only in HBase), then restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hbase_down_the_other_answers() {
    let _turn = TURN.lock().await;
    const CLIENTS: u64 = 6;
    const PER_CLIENT: u64 = 500;
    const BATCH: u64 = 4;
    const FIRST: GoodsId = 100_001;
    let mut stack = ListFaultStack::start(|_| {}).await;
    // Fresh ids on every call: each misses memory and Redis (which only
    // gets them by write-back afterwards) and reaches HBase.
    let records = goods(FIRST..FIRST + CLIENTS * PER_CLIENT * BATCH);
    stack.seed_hbase(&records).await;
    let fresh = |c: u64, i: u64| {
        let start = FIRST + (c * PER_CLIENT + i) * BATCH;
        (start..start + BATCH).collect::<Vec<_>>()
    };
    let load =
        list_load(stack.list_addr, CLIENTS as usize, Some(PER_CLIENT), Truth::new(&records), Stale::Refused, fresh)
            .await;

    load.advance(150, "load before the stop").await;
    let failovers0 = failovers("hbase-a");
    stack.stop_hbase(Cluster::A);
    let (at_stop, b_at_stop) = (load.calls(), stack.hbase_reads(Cluster::B));
    load.advance(250, "load with hbase a down").await;
    assert!(failovers("hbase-a") > failovers0, "reads that picked A failed over (counted)");
    assert!(stack.hbase_reads(Cluster::B) > b_at_stop, "B answered");

    stack.restart_hbase(Cluster::A);
    let a_at_restart = stack.hbase_reads(Cluster::A);
    eventually("hbase a serving reads again", WAIT, || async {
        (stack.hbase_reads(Cluster::A) > a_at_restart).then_some(())
    })
    .await;
    let summary = load.finish().await;
    summary.assert_clean();
    assert!(at_stop < summary.answered, "the stop came mid-load");
    assert!(summary.answered < CLIENTS * PER_CLIENT, "A came back before the load ran out");
    assert_eq!(summary.tiers[v1::Tier::Hbase as usize], summary.prices(), "every goods was answered by HBase");
    stack.stop().await;
}

// 5. Every store down: stale answers within the grace, then UNAVAILABLE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_store_down_serves_stale_within_grace_then_unavailable() {
    let _turn = TURN.lock().await;
    let mut stack = ListFaultStack::start(|c| {
        c.list.cache.ttl = Duration::from_millis(200);
        c.list.cache.negative_ttl = Duration::from_millis(200);
        // Wide enough that the load below sees its stale answers well inside it.
        c.list.cache.stale_grace = Duration::from_secs(4);
    })
    .await;
    let records = goods(1..=40);
    stack.seed(&records).await;
    let ids: Vec<GoodsId> = (1..=40).collect();
    let load =
        list_load(stack.list_addr, 4, None, Truth::new(&records), Stale::Allowed, rotating(ids.clone(), 10)).await;

    // Every id cached (the batches cover all 40 in turn), then every store goes.
    load.advance(200, "load before the stores go").await;
    tokio::task::block_in_place(|| {
        for cluster in [Cluster::A, Cluster::B] {
            stack.redis_mut(cluster).kill();
        }
    });
    stack.stop_hbase(Cluster::A);
    stack.stop_hbase(Cluster::B);
    let (at_outage, stale0) = (load.calls(), load.stale());
    eventually("stale answers once the ttl has passed", WAIT, || async {
        (load.stale() >= stale0 + 100).then_some(())
    })
    .await;
    let summary = load.finish().await;
    summary.assert_clean();
    assert!(at_outage < summary.answered, "the outage came mid-load");
    assert!(summary.stale >= 100, "stale answers were served: {}", summary.stale);

    // After the grace: a clean UNAVAILABLE, not a made-up or ancient price.
    let mut list = stack.list().await;
    let status = eventually("UNAVAILABLE once the grace has passed", WAIT, || {
        let mut list = list.clone();
        let request = BatchGetPricesRequest { goods_ids: ids[..10].to_vec(), context: Some(app("user-1")) };
        async move { list.batch_get_prices(signed(request)).await.err() }
    })
    .await;
    assert_eq!(status.code(), Code::Unavailable, "{status}");
    assert!(status.message().contains("no store could answer"), "{}", status.message());
    let again = list
        .batch_get_prices(signed(BatchGetPricesRequest { goods_ids: vec![1], context: Some(app("user-1")) }))
        .await
        .expect_err("still no store");
    assert_eq!(again.code(), Code::Unavailable);
    stack.stop().await;
}

// 6. MySQL gone under the detail path: Redis answers detail reads, orders
//    get UNAVAILABLE fast.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_stopped_detail_reads_from_redis_and_orders_are_unavailable_fast() {
    let _turn = TURN.lock().await;
    let stack = DetailFaultStack::start(60).await;
    let all: Vec<GoodsId> = (1..=60).collect();
    let records: Vec<SharedRecord> =
        stack.truth.fetch(&all).await.expect("read the catalogue").into_iter().filter(|r| !r.is_tombstone()).collect();
    let ids: Vec<GoodsId> = records.iter().map(|r| r.goods_id).collect();
    assert!(ids.len() >= 40, "the demo catalogue has live goods: {}", ids.len());
    let truth = Truth::new(&records);

    // Warm: each read reaches MySQL once and is written back to both Redis.
    let mut detail = stack.detail().await;
    for &id in &ids {
        let request = GetGoodsPriceRequest { goods_id: id, context: Some(app("user-1")) };
        let price = detail.get_goods_price(request).await.expect("warm read").into_inner().price.expect("a price");
        truth.check(&price).expect("warm read priced right");
    }
    for cluster in [Cluster::A, Cluster::B] {
        let store = stack.redis_store(cluster);
        eventually("every record written back to redis", WAIT, || async {
            (store.fetch(&ids).await.ok()?.len() == ids.len()).then_some(())
        })
        .await;
    }

    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(stack.detail().await);
    }
    let (load_ids, load_truth) = (ids.clone(), Arc::clone(&truth));
    let load = Load::start(clients, None, move |mut detail, c, i| {
        let id = load_ids[((c * 13 + i) as usize) % load_ids.len()];
        let truth = Arc::clone(&load_truth);
        async move {
            let request = GetGoodsPriceRequest { goods_id: id, context: Some(app("user-1")) };
            let reply = detail.get_goods_price(request).await.map_err(|s| format!("goods {id}: {s}"))?;
            let price = reply.into_inner().price.ok_or_else(|| format!("goods {id}: no price"))?;
            truth.check(&price)?;
            if price.tier() != v1::Tier::Redis {
                return Err(format!("goods {id} answered from {:?}", price.tier()));
            }
            Ok(vec![price])
        }
    });
    load.advance(100, "detail load before mysql goes").await;
    let order = |id: GoodsId| PriceOrderRequest {
        context: Some(app("user-1")),
        lines: vec![OrderLineInput { goods_id: id, quantity: 1 }],
        coupon_ids: vec![],
        preview_quote_id: String::new(),
        expected_payable_total: String::new(),
    };
    detail.price_order(order(ids[0])).await.expect("orders are priced while mysql is up");

    // A hang first (accepts, never answers), then a refusal.
    let at_fault = load.calls();
    for mode in [Mode::Blackhole, Mode::Refuse] {
        stack.mysql_proxy.set_mode(mode);
        for &id in &ids[..3] {
            let started = Instant::now();
            let status = detail.price_order(order(id)).await.expect_err("no order priced without mysql");
            assert_eq!(status.code(), Code::Unavailable, "{mode:?}: {status}");
            // 300 ms MySQL budgets: a generous bound proves "no hang" without timing the machine.
            assert!(started.elapsed() < Duration::from_secs(10), "{mode:?}: took {:?}", started.elapsed());
        }
        load.advance(150, "detail load with mysql gone").await;
    }
    let summary = load.finish().await;
    summary.assert_clean();
    assert!(at_fault < summary.answered, "mysql went mid-load");
    assert_eq!(summary.tiers[v1::Tier::Redis as usize], summary.prices(), "Redis answered every detail read");

    // MySQL back: orders are priced again once the breaker lets a call through.
    stack.mysql_proxy.set_mode(Mode::Pass);
    let first = ids[0];
    eventually("orders priced again after mysql returns", WAIT, || {
        let mut detail = detail.clone();
        async move { detail.price_order(order(first)).await.ok().map(|_| ()) }
    })
    .await;
}

// 7. Latency above the cluster's timeout on one Redis (through the proxy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_on_one_redis_fails_over_to_the_other() {
    let _turn = TURN.lock().await;
    let budget = Duration::from_millis(200);
    let stack = ListFaultStack::start(|c| {
        c.list.redis.a = cluster_settings(budget);
        c.list.redis.b = cluster_settings(budget);
    })
    .await;
    let records = goods(1..=200);
    stack.seed(&records).await;
    let ids: Vec<GoodsId> = (1..=200).collect();
    let load = list_load(stack.list_addr, 6, None, Truth::new(&records), Stale::Refused, rotating(ids, 20)).await;

    load.advance(200, "load before the latency").await;
    let (failovers0, timeouts0) = (failovers("redis-a"), dual_errors("redis-a", "timeout"));
    stack.proxy(Cluster::A).set_mode(Mode::Delay(Duration::from_secs(1)));
    let (at_delay, b_at_delay) = (load.calls(), stack.mget_calls(Cluster::B));
    eventually("reads that picked the slow cluster to fail over", WAIT, || async {
        (failovers("redis-a") > failovers0).then_some(())
    })
    .await;
    load.advance(300, "load with redis a slow").await;
    assert!(dual_errors("redis-a", "timeout") > timeouts0, "A's calls were cut by its timeout");
    assert!(stack.mget_calls(Cluster::B) > b_at_delay, "B took over");
    stack.proxy(Cluster::A).set_mode(Mode::Pass);
    load.advance(100, "load after the latency").await;

    let summary = load.finish().await;
    summary.assert_clean();
    assert!(at_delay < summary.answered, "the latency came mid-load");
    stack.stop().await;
}

// 8. The control file replaced mid-load: list Redis reads forced to B, then back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_control_file_moves_reads_without_a_failed_call() {
    let _turn = TURN.lock().await;
    let stack = ListFaultStack::start(|_| {}).await;
    let records = goods(1..=200);
    stack.seed(&records).await;
    let ids: Vec<GoodsId> = (1..=200).collect();
    let load = list_load(stack.list_addr, 4, None, Truth::new(&records), Stale::Refused, rotating(ids, 20)).await;

    load.advance(100, "load before the change").await;
    let changes0 = counter("pricing_switch_changes_total", &[]);
    stack.rewrite_control(|c| c.list.redis.read = ReadMode::OnlyB {}.into());
    let at_change = load.calls();
    // In force once A stays quiet while the load goes on (calls begun
    // before the change may still reach A).
    eventually("reads to stop reaching redis a", WAIT, || async {
        let before = stack.mget_calls(Cluster::A);
        load.advance(40, "load after the change").await;
        (stack.mget_calls(Cluster::A) == before).then_some(())
    })
    .await;
    assert!(counter("pricing_switch_changes_total", &[]) > changes0, "the switch change is counted");
    let (a, b) = (stack.mget_calls(Cluster::A), stack.mget_calls(Cluster::B));
    load.advance(150, "load under only_b").await;
    assert_eq!(stack.mget_calls(Cluster::A), a, "only_b: no read reaches A");
    assert!(stack.mget_calls(Cluster::B) > b, "only_b: B takes the reads");

    // And back to the split: A takes reads again.
    stack.rewrite_control(|c| c.list.redis.read = ReadMode::default().into());
    eventually("reads to reach redis a again", WAIT, || async {
        load.advance(20, "load after the change back").await;
        (stack.mget_calls(Cluster::A) > a).then_some(())
    })
    .await;
    let summary = load.finish().await;
    summary.assert_clean();
    assert!(at_change < summary.answered, "the change came mid-load");
    stack.stop().await;
}

/// Whether the engine prices a record for the load's caller now (live, and
/// an answer the servers give rather than "not found").
fn priceable(record: &SharedRecord) -> bool {
    !record.is_tombstone() && best_price(record, &engine_context(), now_ms(), false).is_ok()
}

/// A detail load: GetGoodsPrice of `ids` in turn, every answer priced
/// right and read from Redis (never MySQL: the Redis pair must answer all).
fn detail_load(connections: Vec<DetailPricingClient<Channel>>, truth: Arc<Truth>, ids: Vec<GoodsId>) -> Load {
    let ids = Arc::new(ids);
    Load::start(connections, None, move |mut detail, c, i| {
        let id = ids[((c * 13 + i) as usize) % ids.len()];
        let truth = Arc::clone(&truth);
        async move {
            let request = GetGoodsPriceRequest { goods_id: id, context: Some(app("user-1")) };
            let reply = detail.get_goods_price(signed(request)).await.map_err(|s| format!("goods {id}: {s}"))?;
            let price = reply.into_inner().price.ok_or_else(|| format!("goods {id}: no price"))?;
            truth.check(&price)?;
            if price.tier() != v1::Tier::Redis {
                return Err(format!("goods {id} answered from {:?}", price.tier()));
            }
            Ok(vec![price])
        }
    })
}

/// Gives goods `id` a new base price in MySQL (a new version).
async fn reprice(stack: &DrillStack, id: GoodsId, cents: i64) -> u64 {
    let old = stack.records(&[id]).await.remove(0);
    let row = GoodsRow {
        id,
        store_id: old.store_id,
        base_price: Decimal::new(cents, 2),
        currency: "CNY".into(),
        status: old.status,
    };
    stack.truth.catalog().upsert_goods(&row).await.expect("reprice goods")
}

/// Waits until `store` holds goods `id` at `version`.
async fn holds(store: &pricing_store_redis::RedisStore, id: GoodsId, version: u64, what: &str) {
    eventually(what, WAIT, || async {
        let held = store.fetch(&[id]).await.ok()?;
        (held.first()?.version == version).then_some(())
    })
    .await;
}

fn only(name: &str) -> Scope {
    Scope::Only(vec![name.to_owned()])
}

// 9. Seed 001's long outage of one cluster, the runbook of
//    docs/OPERATIONS.md ("Long outage of one cluster") step by step, under a
//    list and a detail load: cluster A lost; one control file forces reads
//    and writes to B on both servers and in the projector; A comes back
//    empty; dual write, a full sync of A from MySQL, reconcile of A; dual
//    reads; reconcile of everything. No call fails, every answer is the
//    engine's, nothing differs at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_long_outage_runbook_as_a_drill_fails_no_call_and_leaves_no_difference() {
    let _turn = TURN.lock().await;
    long_outage_drill(Backing::Standalone).await;
}

// 9b. The same drill on two real Redis Clusters (3 masters + 3 replicas
//     each): cluster A lost whole (every node killed) and started again empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_long_outage_runbook_on_redis_clusters_fails_no_call_and_leaves_no_difference() {
    let _turn = TURN.lock().await;
    long_outage_drill(Backing::Clusters).await;
}

async fn long_outage_drill(backing: Backing) {
    const GOODS: u64 = 200;
    // The detail server sits in zone-1, next to cluster A: it reads A first.
    let mut stack = DrillStack::start_on(backing, GOODS, Some("zone-1")).await;
    let all: Vec<GoodsId> = (1..=GOODS).collect();
    let live: Vec<SharedRecord> = stack.records(&all).await.into_iter().filter(priceable).collect();
    // Two goods the drill reprices; the loads ask for the others.
    let (changed, loaded) = live.split_at(2);
    let changed: Vec<GoodsId> = changed.iter().map(|r| r.goods_id).collect();
    let mut ids: Vec<GoodsId> = loaded.iter().map(|r| r.goods_id).collect();
    ids.truncate(ids.len() / 10 * 10);
    assert!(ids.len() >= 100, "the demo catalogue has live goods: {}", ids.len());
    let truth = Truth::new(loaded);
    let mut lists = Vec::new();
    for _ in 0..4 {
        lists.push(stack.list().await);
    }
    let list = list_load_on(lists, None, Arc::clone(&truth), Stale::Refused, rotating(ids.clone(), 10));
    let detail = detail_load(vec![stack.detail().await, stack.detail().await], Arc::clone(&truth), ids.clone());
    list.advance(200, "list load before the outage").await;
    detail.advance(50, "detail load before the outage").await;

    // The outage: cluster A lost whole. Reads that pick A fail over to B.
    let failovers0 = failovers("redis-a");
    stack.lose(Cluster::A);
    let at_loss = list.calls();
    list.advance(200, "list load with cluster a lost").await;
    detail.advance(50, "detail load with cluster a lost").await;
    assert!(failovers("redis-a") > failovers0, "reads that picked A failed over (counted)");

    // Step 1: force single read and single write on B, servers and projector,
    // in the one control file.
    let before = ["list.redis.read.mode", "detail.redis.read.mode", "projector.redis.write"].map(switch_changes);
    stack.rewrite_control(|c| {
        for pair in [&mut c.list.redis, &mut c.detail.redis] {
            pair.read = ReadSwitch::OnlyB {};
            pair.write = WriteMode::OnlyB;
        }
        c.projector.redis.write = WriteMode::OnlyB;
    });
    stack.wait_applied("list.redis.read.mode", before[0]).await;
    stack.wait_applied("detail.redis.read.mode", before[1]).await;
    stack.wait_applied("projector.redis.write", before[2]).await;
    let projector = Arc::clone(&stack.projector);
    let redis_pair = &projector.targets().pairs[0];
    assert_eq!(redis_pair.settings().write, WriteMode::OnlyB, "the running projector writes B only");
    // A change during the outage reaches B through the running incremental
    // loop; A is skipped, not queued.
    let b = stack.redis_store(Cluster::B);
    let v0 = reprice(&stack, changed[0], 4_321).await;
    holds(&b, changed[0], v0, "the loop to write the change to B").await;
    assert_eq!(stack.truth.retry_depth().await.expect("queue depth"), 0, "A is skipped, not queued");

    // Step 2: the cluster is recovered outside the service, empty. Nothing reads it.
    stack.recover_empty(Cluster::A).await;
    list.advance(200, "list load with cluster a back but empty").await;
    detail.advance(50, "detail load with cluster a back but empty").await;
    assert_eq!(stack.mget_calls(Cluster::A), 0, "only_b: no read reaches the empty cluster");
    assert_eq!(stack.keys(Cluster::A), 0, "A came back empty");

    // Step 3: dual write again, reads still on B.
    let before = ["list.redis.write", "detail.redis.write", "projector.redis.write"].map(switch_changes);
    stack.rewrite_control(|c| {
        c.list.redis.write = WriteMode::Both;
        c.detail.redis.write = WriteMode::Both;
        c.projector.redis.write = WriteMode::Both;
    });
    stack.wait_applied("list.redis.write", before[0]).await;
    stack.wait_applied("detail.redis.write", before[1]).await;
    stack.wait_applied("projector.redis.write", before[2]).await;
    assert_eq!(redis_pair.settings().write, WriteMode::Both);
    let a = stack.redis_store(Cluster::A);
    let v1 = reprice(&stack, changed[1], 5_432).await;
    holds(&a, changed[1], v1, "the loop to write a new change to A again").await;

    // Step 4: the full sync of the recovered side from MySQL (`full --only redis-a`).
    let full =
        stack.projector.full(&only("redis-a"), false, &Progress::logs_only()).await.expect("full --only redis-a");
    let refilled = &full.targets["redis-a"];
    assert_eq!(refilled.written + refilled.skipped_older, GOODS, "every goods written to A");
    assert!(full.targets.get("redis-b").is_none_or(|c| c.written + c.skipped_older == 0), "B is left alone");
    assert_eq!(stack.keys(Cluster::A), stack.keys(Cluster::B));

    // Step 5: verify A (`reconcile --only redis-a`).
    let check_a = ReconcileOptions { scope: only("redis-a"), ..ReconcileOptions::default() };
    let report = stack.projector.reconcile(&check_a).await.expect("reconcile redis-a");
    assert_eq!(report.differences(), 0, "{}", report.table());

    // Step 6: dual reads again: split on the list server, the local zone
    // (A) first on the detail server.
    let a_before = stack.mget_calls(Cluster::A);
    let before = ["list.redis.read.mode", "detail.redis.read.mode"].map(switch_changes);
    stack.rewrite_control(|c| {
        c.list.redis.read = ReadSwitch::Split { a_percent: 50 };
        c.detail.redis.read = ReadSwitch::PreferLocal { local: None };
    });
    stack.wait_applied("list.redis.read.mode", before[0]).await;
    stack.wait_applied("detail.redis.read.mode", before[1]).await;
    eventually("reads to reach cluster a again", WAIT, || async {
        list.advance(20, "list load after dual reads").await;
        (stack.mget_calls(Cluster::A) > a_before + 20).then_some(())
    })
    .await;
    detail.advance(50, "detail load after dual reads").await;

    // The whole pair agrees with MySQL.
    let report = stack.projector.reconcile(&ReconcileOptions::default()).await.expect("reconcile");
    assert_eq!(report.differences(), 0, "{}", report.table());
    assert_eq!(report.stores.len(), 2, "{}", report.table());

    let (list, detail) = (list.finish().await, detail.finish().await);
    eprintln!(
        "long-outage drill on {backing:?}: {} list calls, {} detail calls answered, {} and {} failed",
        list.answered,
        detail.answered,
        list.failures.len(),
        detail.failures.len()
    );
    list.assert_clean();
    detail.assert_clean();
    assert!(at_loss < list.answered, "the outage came mid-load");
    assert_eq!(detail.tiers[v1::Tier::Redis as usize], detail.prices(), "Redis answered every detail read");
    stack.stop().await;
}

// 10. Zone-aware reads: the detail server reads the cluster of its own zone
//     first by default (the control file only maps zones to clusters); a
//     server whose zone is unknown reads split and says so in a gauge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_detail_server_reads_the_cluster_of_its_zone_first() {
    let _turn = TURN.lock().await;
    let unknown_zone = || gauge("pricing_prefer_local_zone_unknown", &[("pair", "detail.redis")]);
    for (zone, local) in [(Some("zone-2"), Some(Cluster::B)), (None, None)] {
        let stack = DrillStack::start(40, zone).await;
        assert_eq!(stack.control().detail.redis.read, ReadSwitch::PreferLocal { local: None }, "the default");
        let all: Vec<GoodsId> = (1..=40).collect();
        let live: Vec<SharedRecord> = stack.records(&all).await.into_iter().filter(priceable).collect();
        let truth = Truth::new(&live);
        let ids: Vec<GoodsId> = live.iter().map(|r| r.goods_id).collect();
        let mget0 = [stack.mget_calls(Cluster::A), stack.mget_calls(Cluster::B)];
        let load = detail_load(vec![stack.detail().await], truth, ids);
        load.advance(60, "detail load").await;
        let summary = load.finish().await;
        summary.assert_clean();
        // Set when the detail server bound its pair (before its first call).
        assert_eq!(unknown_zone(), if local.is_none() { 1.0 } else { 0.0 }, "zone {zone:?}");
        let reads = [stack.mget_calls(Cluster::A) - mget0[0], stack.mget_calls(Cluster::B) - mget0[1]];
        match local {
            Some(Cluster::B) => assert_eq!((reads[0], reads[1] >= 60), (0, true), "zone-2 reads B only: {reads:?}"),
            _ => assert!(reads[0] > 0 && reads[1] > 0, "an unknown zone reads split: {reads:?}"),
        }
        stack.stop().await;
    }
}

// 11. The caller's deadline bounds every store call. Store budgets are 2 s
//     and one Redis of the pair (the one read first) is black-holed: a call
//     with grpc-timeout 150 ms is answered by the other cluster in time,
//     because the first is given only half of what the deadline leaves.
//     With both black-holed (and, on the detail server, MySQL black-holed
//     under an order) the answer is DEADLINE_EXCEEDED, still in time: the
//     server keeps `limits.min_deadline_ms` to answer, so the caller never
//     has to give up (it would see CANCELLED then).

const CALLER_TIMEOUT: Duration = Duration::from_millis(150);
/// `limits.min_deadline_ms` in these tests: what the server keeps to answer.
const ANSWER_RESERVE: Duration = Duration::from_millis(30);

fn with_timeout<T>(mut request: tonic::Request<T>) -> tonic::Request<T> {
    request.set_timeout(CALLER_TIMEOUT);
    request
}

/// Runs `call`, asserting that it ended before the caller's timeout.
async fn in_time<T>(what: &str, call: impl std::future::Future<Output = T>) -> T {
    let started = Instant::now();
    let result = call.await;
    assert!(started.elapsed() < CALLER_TIMEOUT, "{what}: answered after {:?}", started.elapsed());
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_deadline_bounds_the_list_servers_store_calls() {
    let _turn = TURN.lock().await;
    let stack = ListFaultStack::start(|c| {
        c.list.redis.read = ReadMode::PreferLocal { local: Cluster::A }.into();
        c.limits.min_deadline = ANSWER_RESERVE;
    })
    .await;
    let records = goods(1..=40);
    stack.seed(&records).await;
    let truth = Truth::new(&records);
    let mut list = stack.list().await;
    let ask =
        |id: GoodsId| with_timeout(signed(BatchGetPricesRequest { goods_ids: vec![id], context: Some(app("user-1")) }));
    list.batch_get_prices(ask(1)).await.expect("answered while every store is up");

    stack.proxy(Cluster::A).set_mode(Mode::Blackhole);
    let (failovers0, cut0, mget_b0) =
        (failovers("redis-a"), dual_errors("redis-a", "deadline"), stack.mget_calls(Cluster::B));
    for id in 2..=11 {
        let reply = in_time("redis a black-holed", list.batch_get_prices(ask(id))).await;
        let reply = reply.unwrap_or_else(|s| panic!("goods {id}: {s}")).into_inner();
        let price = reply.prices.first().unwrap_or_else(|| panic!("goods {id}: no price"));
        truth.check(price).expect("priced right");
        assert_eq!(price.tier(), v1::Tier::Redis, "goods {id}: answered by the other Redis");
    }
    assert!(failovers("redis-a") >= failovers0 + 10, "every read moved from A to B");
    assert!(
        dual_errors("redis-a", "deadline") >= cut0 + 10,
        "A's calls were cut by the caller's deadline, long before A's own 2 s budget"
    );
    assert!(stack.mget_calls(Cluster::B) >= mget_b0 + 10, "B answered");

    stack.proxy(Cluster::B).set_mode(Mode::Blackhole);
    for id in 12..=14 {
        let status = in_time("both redis black-holed", list.batch_get_prices(ask(id)))
            .await
            .expect_err("no store answers in time");
        assert_eq!(status.code(), Code::DeadlineExceeded, "{status}");
    }
    for cluster in [Cluster::A, Cluster::B] {
        stack.proxy(cluster).set_mode(Mode::Pass);
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_deadline_bounds_the_detail_servers_store_calls() {
    let _turn = TURN.lock().await;
    let mut control = pricing_control::ControlConfig::default();
    control.limits.min_deadline = ANSWER_RESERVE;
    let dual = pricing_store::DualSettings {
        read: ReadMode::PreferLocal { local: Cluster::A },
        ..pricing_tests::fault_stack::wide_dual()
    };
    let stack = DetailFaultStack::start_with(40, control, dual).await;
    let all: Vec<GoodsId> = (1..=40).collect();
    let records: Vec<SharedRecord> =
        stack.truth.fetch(&all).await.expect("read the catalogue").into_iter().filter(priceable).collect();
    let ids: Vec<GoodsId> = records.iter().map(|r| r.goods_id).take(10).collect();
    assert_eq!(ids.len(), 10, "the demo catalogue has priceable goods");
    let truth = Truth::new(&records);
    let mut detail = stack.detail().await;
    let ask = |id: GoodsId| {
        with_timeout(tonic::Request::new(GetGoodsPriceRequest { goods_id: id, context: Some(app("user-1")) }))
    };

    // Warm: read from MySQL once, written back to both Redis.
    for &id in &ids {
        detail.get_goods_price(ask(id)).await.expect("warm read");
    }
    for cluster in [Cluster::A, Cluster::B] {
        let store = stack.redis_store(cluster);
        eventually("every record written back to redis", WAIT, || async {
            (store.fetch(&ids).await.ok()?.len() == ids.len()).then_some(())
        })
        .await;
    }

    stack.redis_proxy(Cluster::A).set_mode(Mode::Blackhole);
    let (failovers0, cut0) = (failovers("redis-a"), dual_errors("redis-a", "deadline"));
    for &id in &ids {
        let reply = in_time("redis a black-holed", detail.get_goods_price(ask(id))).await;
        let price = reply.unwrap_or_else(|s| panic!("goods {id}: {s}")).into_inner().price.expect("a price");
        truth.check(&price).expect("priced right");
        assert_eq!(price.tier(), v1::Tier::Redis, "goods {id}: answered by the other Redis, not MySQL");
    }
    assert!(failovers("redis-a") >= failovers0 + 10, "every read moved from A to B");
    assert!(dual_errors("redis-a", "deadline") >= cut0 + 10, "A's calls were cut by the caller's deadline");

    stack.redis_proxy(Cluster::B).set_mode(Mode::Blackhole);
    for &id in &ids[..3] {
        let status =
            in_time("both redis black-holed", detail.get_goods_price(ask(id))).await.expect_err("no answer in time");
        assert_eq!(status.code(), Code::DeadlineExceeded, "{status}");
    }

    // An order reads MySQL only: black-holed, it too ends at the deadline,
    // not at the pool's 300 ms budgets.
    stack.mysql_proxy.set_mode(Mode::Blackhole);
    let order = PriceOrderRequest {
        context: Some(app("user-1")),
        lines: vec![OrderLineInput { goods_id: ids[0], quantity: 1 }],
        coupon_ids: vec![],
        preview_quote_id: String::new(),
        expected_payable_total: String::new(),
    };
    let status = in_time("mysql black-holed", detail.price_order(with_timeout(tonic::Request::new(order))))
        .await
        .expect_err("no order priced");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status}");
    stack.mysql_proxy.set_mode(Mode::Pass);
    for cluster in [Cluster::A, Cluster::B] {
        stack.redis_proxy(cluster).set_mode(Mode::Pass);
    }
}
