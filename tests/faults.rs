//! Fault tests: the list and detail servers over real redis-server
//! processes, HBase Thrift test servers and MariaDB, with a fault staged in
//! the middle of a load of concurrent callers: a Redis killed and restarted,
//! a Redis frozen with SIGSTOP, both Redis down, one HBase down, every store
//! down, MySQL gone under the detail path, latency on one Redis, and the
//! control file replaced.
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

use std::sync::Arc;
use std::time::{Duration, Instant};

use pricing_proto::v1::{self, BatchGetPricesRequest, GetGoodsPriceRequest, OrderLineInput, PriceOrderRequest};
use pricing_record::GoodsId;
use pricing_store::{Cluster, ReadMode, RecordStore, SharedRecord};
use pricing_testkit::net::eventually;
use pricing_testkit::proxy::Mode;
use pricing_tests::app;
use pricing_tests::fault_stack::{DetailFaultStack, ListFaultStack, cluster_settings, signed};
use pricing_tests::load::{Load, Stale, Truth, WAIT, goods, list_load, rotating};
use pricing_tests::real_stack::counter;
use tonic::Code;

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
    stack.rewrite_control(|c| c.list.redis.read = ReadMode::OnlyB {});
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
    stack.rewrite_control(|c| c.list.redis.read = ReadMode::default());
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
