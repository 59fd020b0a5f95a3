//! Canary variants over real gRPC and real stores.
//!
//! The list read path: two redis-server processes and two HBase Thrift test
//! servers (tests/support/real_stack.rs), a list server started through the
//! production `pricing_list::serve` with a watched control file.
//!
//! The detail server's variants: a fresh MariaDB database with the demo
//! catalogue, two redis-server processes, and the detail server through the
//! production `pricing_detail::serve` with a watched control file (its push
//! invalidation subscribed on both Redis servers): a variant's own chain
//! (`detail_redis_read`) is told of changes the projector announces, and a
//! variant's `checkout_remainder_rule` places the rounding fen of a cart
//! promotion by its own rule.
//!
//! What each store did is read at the store (Redis `INFO commandstats`, the
//! HBase server's call counters). Every call's status is counted; every wait
//! polls with a deadline.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pricing_control::{CallerAccount, CanaryRule, ControlConfig, VariantOverrides};
use pricing_detail::DetailConfig;
use pricing_list::ListConfig;
use pricing_proto::v1::detail_pricing_client::DetailPricingClient;
use pricing_proto::v1::list_pricing_client::ListPricingClient;
use pricing_proto::v1::{
    self, BatchGetPricesRequest, CallerContext, GetGoodsPriceRequest, PreviewOrderRequest, PriceOrderRequest,
};
use pricing_record::{GoodsId, GoodsRecord};
use pricing_store::conformance::record;
use pricing_store::{BreakerSettings, CacheSettings, Cluster, RecordStore, RecordWriter, SharedRecord, TierId};
use pricing_store_redis::invalidate::Announcer;
use pricing_store_redis::{RedisConfig, RedisStore};
use pricing_store_sql::SqlStore;
use pricing_store_sql::demo::{self, DemoOptions, well_known};
use pricing_testkit::net::{Shutdown, eventually};
use pricing_testkit::redis::RedisServer;
use pricing_tests::fault_stack::{redis_pair_config, wide_dual, write_control};
use pricing_tests::real_stack::{RealStack, counter, test_dual_settings};
use pricing_tests::{app, channel, dec, lines, signed_as};
use rust_decimal::Decimal;
use tokio::net::TcpListener;
use tonic::transport::Channel;

const TOKEN: &str = "list-web-0123456789abcdef";
const WAIT: Duration = Duration::from_secs(20);
/// The control file's poll interval in these tests.
const POLL: Duration = Duration::from_millis(200);

fn recs(ids: impl IntoIterator<Item = GoodsId>) -> Vec<SharedRecord> {
    ids.into_iter().map(|id| Arc::new(record(id, 3, 1_000 + id as i64, vec![]))).collect()
}

fn rule(variant: &str) -> CanaryRule {
    CanaryRule { variant: variant.into(), pins: vec![], stores: vec![], cities: vec![], percent: 0, salt: None }
}

/// A control file: one caller, the harness's store budgets, the variants and
/// rules given.
fn control(variants: &[(&str, VariantOverrides)], rules: Vec<CanaryRule>) -> String {
    let mut c = ControlConfig::default();
    c.callers.insert("list-web".into(), CallerAccount::with_token(TOKEN, 1_000_000, None, 1_000));
    c.list.redis = test_dual_settings().into();
    c.list.hbase = test_dual_settings().into();
    c.breakers = BreakerSettings { slow_call: Duration::from_secs(1), ..BreakerSettings::default() };
    for (name, overrides) in variants {
        c.canary.variants.insert((*name).into(), overrides.clone());
    }
    c.canary.rules = rules;
    toml::to_string(&c).unwrap()
}

fn hbase_only() -> VariantOverrides {
    VariantOverrides { list_tiers: Some(vec![TierId::Hbase]), ..VariantOverrides::default() }
}

fn rewrite(path: &Path, text: &str) {
    // Write then rename, as a ConfigMap update swaps the file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A list server through the production `serve`, over the stack's stores,
/// governed by a control file.
struct Governed {
    list: Channel,
    control_path: PathBuf,
    stop: Shutdown,
    _dir: tempfile::TempDir,
}

impl Drop for Governed {
    fn drop(&mut self) {
        self.stop.stop();
    }
}

async fn governed(config: &ListConfig, control_text: &str) -> Governed {
    let dir = tempfile::tempdir().unwrap();
    let control_path = dir.path().join("control.toml");
    std::fs::write(&control_path, control_text).unwrap();
    let mut config = config.clone();
    config.server.control_file = Some(control_path.clone());
    config.server.control_poll_ms = POLL.as_millis() as u64;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let stop = Shutdown::new();
    tokio::spawn(pricing_list::serve(listener, config, stop.signal()));
    Governed { list: channel(addr).await, control_path, stop, _dir: dir }
}

/// One batch: the variant header and each answer's tier.
async fn ask(list: &Channel, ctx: CallerContext, ids: Vec<GoodsId>) -> Result<(String, Vec<v1::Tier>), tonic::Status> {
    let reply = ListPricingClient::new(list.clone())
        .batch_get_prices(signed_as(BatchGetPricesRequest { goods_ids: ids, context: Some(ctx) }, "list-web", TOKEN))
        .await?;
    let variant = reply.metadata().get("x-pricing-variant").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    Ok((variant, reply.into_inner().prices.iter().map(|p| p.tier()).collect()))
}

fn hbase_reads(stack: &RealStack) -> u64 {
    stack.hbase_reads(Cluster::A) + stack.hbase_reads(Cluster::B)
}

fn mgets(stack: &RealStack) -> u64 {
    stack.mget_calls(Cluster::A) + stack.mget_calls(Cluster::B)
}

#[tokio::test]
async fn a_variant_reading_hbase_only_serves_its_pins_stores_and_cities_from_hbase() {
    let stack = RealStack::start().await;
    stack.seed(&recs(1..=200)).await;
    let variant = "hb-only";
    let server = governed(
        &stack.config,
        &control(
            &[(variant, hbase_only())],
            vec![
                CanaryRule { pins: vec!["canary-pin".into()], ..rule(variant) },
                CanaryRule { stores: vec![777], ..rule(variant) },
                CanaryRule { cities: vec![88], ..rule(variant) },
            ],
        ),
    )
    .await;

    let cases = [
        ("pin", CallerContext { ..app("canary-pin") }, CallerContext { ..app("someone") }),
        ("store", CallerContext { store_id: 777, ..app("a") }, CallerContext { store_id: 778, ..app("a") }),
        ("city", CallerContext { city_id: 88, ..app("b") }, CallerContext { city_id: 89, ..app("b") }),
    ];
    let mut next_id = 1;
    let mut ids = |n: u64| {
        let batch: Vec<GoodsId> = (next_id..next_id + n).collect();
        next_id += n;
        batch
    };
    for (by, in_variant, outside) in cases {
        // In the variant: HBase answers, Redis is not asked.
        let (hbase0, mget0) = (hbase_reads(&stack), mgets(&stack));
        let (name, tiers) = ask(&server.list, in_variant, ids(5)).await.unwrap();
        assert_eq!(name, variant, "by {by}");
        assert_eq!(tiers, vec![v1::Tier::Hbase; 5], "by {by}: the variant's chain is HBase only");
        assert!(hbase_reads(&stack) > hbase0, "by {by}: the HBase servers counted the variant's read");
        assert_eq!(mgets(&stack), mget0, "by {by}: the variant never reads Redis");

        // Outside it: Redis answers, HBase is not asked.
        let (hbase0, mget0) = (hbase_reads(&stack), mgets(&stack));
        let (name, tiers) = ask(&server.list, outside, ids(5)).await.unwrap();
        assert_eq!(name, "stable", "by {by}");
        assert_eq!(tiers, vec![v1::Tier::Redis; 5], "by {by}: the stable chain reads Redis first");
        assert_eq!(hbase_reads(&stack), hbase0, "by {by}: the stable calls never reach HBase");
        assert!(mgets(&stack) > mget0, "by {by}: Redis counted the stable read");
    }

    // The request metrics and the tier shares carry the variant.
    let calls = |variant| {
        counter("pricing_grpc_requests_total", &[("method", "BatchGetPrices"), ("code", "OK"), ("variant", variant)])
    };
    assert_eq!(calls(variant), 3);
    assert!(calls("stable") >= 3);
    assert_eq!(counter("pricing_list_tier_answers_total", &[("variant", variant), ("tier", "hbase")]), 15);
    assert_eq!(counter("pricing_list_tier_answers_total", &[("variant", variant), ("tier", "redis")]), 0);
    let latency = pricing_telemetry::prometheus().render();
    assert!(
        latency.lines().any(|l| l.starts_with("pricing_grpc_request_duration_seconds_count")
            && l.contains(&format!("variant=\"{variant}\""))),
        "the latency histogram carries the variant"
    );
    drop(server);
    stack.stop().await;
}

#[tokio::test]
async fn an_override_the_server_cannot_apply_is_refused_at_start_and_on_reload() {
    let stack = RealStack::start().await;
    stack.seed(&recs(1..=50)).await;
    // A list server without an [hbase] section.
    let mut redis_only = stack.config.clone();
    redis_only.hbase = None;
    redis_only.read.tiers = vec![TierId::Redis];
    let variant = "hb-refused";
    let bad = control(&[(variant, hbase_only())], vec![CanaryRule { pins: vec!["p1".into()], ..rule(variant) }]);

    // At start: the server does not start, and says why.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.toml");
    std::fs::write(&path, &bad).unwrap();
    let mut config = redis_only.clone();
    config.server.control_file = Some(path);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = tokio::time::timeout(WAIT, pricing_list::serve(listener, config, std::future::pending()))
        .await
        .expect("a refused file stops the start at once")
        .expect_err("the server refuses a variant it cannot serve");
    let text = format!("{error:#}");
    assert!(text.contains("canary.variants.hb-refused.list_tiers") && text.contains("no hbase tier"), "{text}");

    // On reload: the last good file stays in force.
    let good_variant = "redis-b";
    let good_overrides = VariantOverrides {
        list_redis_read: Some(pricing_control::ReadSwitch::OnlyB {}),
        ..VariantOverrides::default()
    };
    let good = control(
        &[(good_variant, good_overrides.clone())],
        vec![CanaryRule { pins: vec!["p1".into()], ..rule(good_variant) }],
    );
    let server = governed(&redis_only, &good).await;
    assert_eq!(ask(&server.list, app("p1"), vec![1]).await.unwrap().0, good_variant);
    let refused0 = counter("pricing_control_reload_total", &[("result", "invalid")]);
    rewrite(&server.control_path, &bad);
    eventually("the file to be refused", WAIT, || async {
        (counter("pricing_control_reload_total", &[("result", "invalid")]) > refused0).then_some(())
    })
    .await;
    let (name, tiers) = ask(&server.list, app("p1"), vec![2, 3]).await.unwrap();
    assert_eq!(name, good_variant, "the last good file still routes p1");
    assert_eq!(tiers, vec![v1::Tier::Redis; 2]);
    // The variant's forced cluster is applied: only redis-b is read for it.
    let a0 = stack.mget_calls(Cluster::A);
    for id in 10..20 {
        ask(&server.list, app("p1"), vec![id]).await.unwrap();
    }
    assert_eq!(stack.mget_calls(Cluster::A), a0, "the variant reads only cluster b (list_redis_read = only_b)");
    drop(server);
    stack.stop().await;
}

#[tokio::test]
async fn replacing_the_control_file_moves_a_pin_within_a_poll_interval_without_a_failed_call() {
    let stack = RealStack::start().await;
    stack.seed(&recs(1..=300)).await;
    let variant = "hb-moved";
    let before = control(&[(variant, hbase_only())], vec![CanaryRule { pins: vec!["nobody".into()], ..rule(variant) }]);
    let after = control(&[(variant, hbase_only())], vec![CanaryRule { pins: vec!["mover".into()], ..rule(variant) }]);
    let server = governed(&stack.config, &before).await;

    // Callers of the moving pin, each call's start, end, and outcome recorded.
    type Seen = (Instant, Instant, Result<String, tonic::Code>);
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..4u64 {
        let (list, seen, stop) = (server.list.clone(), Arc::clone(&seen), Arc::clone(&stop));
        workers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let started = Instant::now();
                let result = ask(&list, app("mover"), vec![1 + (i * 4 + w) % 300]).await;
                let outcome = result.map(|(name, tiers)| {
                    let want = if name == variant { v1::Tier::Hbase } else { v1::Tier::Redis };
                    // Memory answers repeats; a store answer is the variant's own.
                    assert!(tiers.iter().all(|t| *t == want || *t == v1::Tier::Memory), "{name}: {tiers:?}");
                    name
                });
                seen.lock().unwrap().push((started, Instant::now(), outcome.map_err(|s| s.code())));
                i += 1;
            }
        }));
    }
    eventually("load before the change", WAIT, || {
        let n = seen.lock().unwrap().len();
        async move { (n > 40).then_some(()) }
    })
    .await;
    let swapped = Instant::now();
    rewrite(&server.control_path, &after);
    eventually("the pin in its new variant", WAIT, || {
        let moved = seen.lock().unwrap().iter().any(|(_, _, r)| r.as_deref() == Ok(variant));
        async move { moved.then_some(()) }
    })
    .await;
    let moved_count = || seen.lock().unwrap().iter().filter(|(_, _, r)| r.as_deref() == Ok(variant)).count();
    let at_move = moved_count();
    eventually("load after the change", WAIT, || {
        let n = moved_count();
        async move { (n > at_move + 40).then_some(()) }
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.await.expect("a worker saw a wrong tier");
    }

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let failed: Vec<_> = seen.iter().filter(|(_, _, r)| r.is_err()).collect();
    assert!(failed.is_empty(), "{} of {} calls failed: {failed:?}", failed.len(), seen.len());
    let first_moved =
        seen.iter().filter(|(_, _, r)| r.as_deref() == Ok(variant)).map(|(_, end, _)| *end).min().unwrap();
    // The watcher re-reads the file every POLL; the answer showing the move
    // ends within one interval of the rename, plus one call's time for the
    // answer to come back on this shared two-core machine.
    let took = first_moved.duration_since(swapped);
    assert!(took <= POLL + Duration::from_millis(250), "the pin moved {took:?} after the rename (poll {POLL:?})");
    // Once one call saw the new file, every call started later sees it.
    let late_stable = seen.iter().filter(|(start, _, r)| *start > first_moved && r.as_deref() != Ok(variant)).count();
    assert_eq!(late_stable, 0, "calls started after the move answered by the old variant");
    assert!(seen.iter().any(|(_, _, r)| r.as_deref() == Ok("stable")), "the pin was stable before");
    drop(server);
    stack.stop().await;
}

// --- the detail server's variants ---------------------------------------

const DETAIL_CALLER: &str = "detail-web";
const DETAIL_TOKEN: &str = "detail-web-0123456789abcdef";

/// Far beyond the test: only push invalidation can explain a fresh answer
/// from a memory cache with this lifetime.
const LONG: Duration = Duration::from_secs(600);

/// A detail control file: one caller, wide Redis budgets (a spurious
/// timeout would read MySQL, whose copy these tests do not change), the
/// variants and rules given.
fn detail_control(variants: &[(&str, VariantOverrides)], rules: Vec<CanaryRule>) -> ControlConfig {
    let mut c = ControlConfig::default();
    c.callers.insert(DETAIL_CALLER.into(), CallerAccount::with_token(DETAIL_TOKEN, 1_000_000, None, 1_000));
    c.detail.redis = wide_dual().into();
    c.breakers = BreakerSettings { slow_call: Duration::from_secs(1), ..BreakerSettings::default() };
    for (name, overrides) in variants {
        c.canary.variants.insert((*name).into(), overrides.clone());
    }
    c.canary.rules = rules;
    c
}

/// The detail server through the production `serve` over a fresh demo
/// database (and a Redis pair when `redis`), governed by a control file.
struct GovernedDetail {
    detail: Channel,
    control_path: PathBuf,
    /// What the records really are.
    truth: SqlStore,
    redis: Vec<RedisServer>,
    stop: Shutdown,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl Drop for GovernedDetail {
    fn drop(&mut self) {
        self.stop.stop();
    }
}

impl GovernedDetail {
    async fn start(redis: bool, cache: Option<CacheSettings>, control: &ControlConfig) -> GovernedDetail {
        let url = pricing_testkit::mysql::fresh_database("canary").await;
        let truth = SqlStore::connect(&url).await.unwrap();
        demo::seed(&truth, DemoOptions { goods: 60, ..DemoOptions::default() }).await.unwrap();
        let redis: Vec<RedisServer> = if redis { vec![RedisServer::start(), RedisServer::start()] } else { vec![] };
        let dir = tempfile::tempdir().unwrap();
        let control_path = dir.path().join("control.toml");
        write_control(&control_path, control);
        let mut config = DetailConfig::default();
        config.server.metrics_listen = None;
        config.server.control_file = Some(control_path.clone());
        config.server.control_poll_ms = POLL.as_millis() as u64;
        config.source.database_url = Some(url);
        config.checkout.quote_secret = "canary-test".into();
        config.cache = cache;
        if let [a, b] = redis.as_slice() {
            config.redis = Some(redis_pair_config(&[a.url(), b.url()], wide_dual()));
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Shutdown::new();
        let task = tokio::spawn(pricing_detail::serve(listener, config, stop.signal()));
        GovernedDetail { detail: channel(addr).await, control_path, truth, redis, stop, task: Some(task), _dir: dir }
    }

    fn client(&self) -> DetailPricingClient<Channel> {
        DetailPricingClient::new(self.detail.clone())
    }

    /// Writes `record` to both Redis servers, as the projector does (versioned).
    async fn project(&self, record: &GoodsRecord) {
        for (i, server) in self.redis.iter().enumerate() {
            let store = RedisStore::new(RedisConfig::standalone(format!("project-{i}"), server.url())).unwrap();
            let report = store.put(&[Arc::new(record.clone())]).await.unwrap();
            assert_eq!(report.written, 1, "redis {i} took version {}", record.version);
        }
    }

    /// Stops the server and waits for its clean exit.
    async fn stop(mut self) {
        self.stop.stop();
        let task = self.task.take().unwrap();
        tokio::time::timeout(WAIT, task).await.expect("server stops").expect("no panic").expect("clean exit");
    }
}

/// One detail read: the variant header, the tier, the original price and
/// the version answered.
async fn detail_read(detail: &GovernedDetail, pin: &str, id: GoodsId) -> (String, v1::Tier, String, u64) {
    let request = GetGoodsPriceRequest { goods_id: id, context: Some(app(pin)) };
    let reply =
        detail.client().get_goods_price(signed_as(request, DETAIL_CALLER, DETAIL_TOKEN)).await.expect("detail answers");
    let variant = reply.metadata().get("x-pricing-variant").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let price = reply.into_inner().price.expect("a price");
    (variant, price.tier(), price.original_price, price.version)
}

/// A variant reading its own chain (`detail_redis_read`) with a memory
/// cache living far beyond the test is told of every announced change: the
/// caller pinned to it sees a new price long before the cache lifetime
/// ends, also after a control-file change that kept its chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detail_variant_with_its_own_chain_sees_announced_changes_before_its_cache_expires() {
    let variant = "detail-own-chain";
    let (pinned, stable) = ("own-chain-pin", "stable-pin");
    let overrides = VariantOverrides {
        detail_redis_read: Some(pricing_control::ReadSwitch::OnlyB {}),
        ..VariantOverrides::default()
    };
    let pin_rule = |pins: &[&str]| CanaryRule { pins: pins.iter().map(|p| (*p).into()).collect(), ..rule(variant) };
    let first = detail_control(&[(variant, overrides.clone())], vec![pin_rule(&[pinned])]);
    let cache = CacheSettings { ttl: LONG, negative_ttl: LONG, ..CacheSettings::default() };
    let server = GovernedDetail::start(true, Some(cache), &first).await;
    // The server's subscription is up on both Redis servers.
    eventually("the detail server subscribed on both clusters", WAIT, || async {
        server
            .redis
            .iter()
            .all(|s| {
                s.command(&["PUBSUB", "NUMSUB", pricing_store_redis::invalidate::DEFAULT_CHANNEL]).ends_with(":1\r\n")
            })
            .then_some(())
    })
    .await;
    // Announced on one cluster only: the projector announces on both, and
    // each delivery empties the caches again, so a second delivery arriving
    // after the test's next read would drop the copy that read cached (and
    // the "cached" assertions below would race it). One subscription of the
    // pair is enough to carry a change.
    let announcer = Announcer::new(
        &[RedisConfig::standalone("announce-a", server.redis[0].url())],
        pricing_store_redis::invalidate::DEFAULT_CHANNEL,
    )
    .unwrap();

    // The projected record, read by both callers: each from Redis once,
    // then from its own chain's memory (the variant's cache is not the
    // stable one: its first read reaches Redis).
    let id = well_known::PLAIN_GOODS;
    let truth = server.truth.fetch(&[id]).await.unwrap().pop().expect("the demo holds the goods");
    server.project(&truth).await;
    let old = ("25.00".to_owned(), truth.version);
    for (pin, name) in [(stable, "stable"), (pinned, variant)] {
        let (answered_by, tier, price, version) = detail_read(&server, pin, id).await;
        assert_eq!((answered_by.as_str(), tier, (price, version)), (name, v1::Tier::Redis, old.clone()), "{pin}");
        let (_, tier, price, version) = detail_read(&server, pin, id).await;
        assert_eq!((tier, (price, version)), (v1::Tier::Memory, old.clone()), "{pin}: cached");
    }

    // A change written to Redis: without an announcement both chains keep
    // their copy (for ten minutes); with it, both serve the change.
    let changed =
        |version: u64, price: &str| GoodsRecord { version, base_price: price.parse().unwrap(), ..(*truth).clone() };
    let second = changed(truth.version + 1_000, "31.00");
    server.project(&second).await;
    let (_, tier, price, version) = detail_read(&server, pinned, id).await;
    assert_eq!((tier, (price, version)), (v1::Tier::Memory, old.clone()), "not announced yet: the cached copy");
    assert_eq!(announcer.announce(&[id]).await, 1, "announced on one cluster");
    for (pin, name) in [(pinned, variant), (stable, "stable")] {
        let want = (name.to_owned(), "31.00".to_owned(), second.version);
        eventually(&format!("{pin} sees the announced change"), WAIT, || {
            let want = want.clone();
            let server = &server;
            async move {
                let (answered_by, _, price, version) = detail_read(server, pin, id).await;
                ((answered_by, price, version) == want).then_some(())
            }
        })
        .await;
    }

    // A control-file change that keeps the variant's chain (its overrides
    // are the same; a second pin joins it): the chain stays warm, and is
    // still told of changes.
    let (_, tier, _, _) = detail_read(&server, pinned, id).await;
    assert_eq!(tier, v1::Tier::Memory, "cached in the variant's chain before the file changes");
    let moved = "own-chain-pin-2";
    write_control(&server.control_path, &detail_control(&[(variant, overrides)], vec![pin_rule(&[pinned, moved])]));
    eventually("the new file in force", WAIT, || async {
        (detail_read(&server, moved, id).await.0 == variant).then_some(())
    })
    .await;
    let (answered_by, tier, price, version) = detail_read(&server, pinned, id).await;
    assert_eq!(
        (answered_by.as_str(), tier, price.as_str(), version),
        (variant, v1::Tier::Memory, "31.00", second.version),
        "the variant's chain was kept (its cache is warm)"
    );
    let third = changed(truth.version + 2_000, "37.00");
    server.project(&third).await;
    assert_eq!(announcer.announce(&[id]).await, 1, "announced on one cluster");
    let want = (variant.to_owned(), "37.00".to_owned(), third.version);
    eventually("the pinned caller sees the change after the file changed", WAIT, || {
        let want = want.clone();
        let server = &server;
        async move {
            let (answered_by, _, price, version) = detail_read(server, pinned, id).await;
            ((answered_by, price, version) == want).then_some(())
        }
    })
    .await;
    server.stop().await;
}

/// A variant's `checkout_remainder_rule` places the rounding of a cart
/// promotion by its own rule (PreviewOrder and PriceOrder) while other
/// callers get the server's `[checkout] remainder_rule` (largest_line).
#[tokio::test]
async fn a_detail_variant_allocates_the_remainder_by_its_own_rule() {
    let variant = "hamilton";
    let pinned = "remainder-pin";
    let overrides = VariantOverrides {
        checkout_remainder_rule: Some(pricing_control::RemainderRuleSwitch::LargestRemainder),
        ..VariantOverrides::default()
    };
    let control =
        detail_control(&[(variant, overrides)], vec![CanaryRule { pins: vec![pinned.into()], ..rule(variant) }]);
    let server = GovernedDetail::start(false, None, &control).await;

    // Store 2's cart goods: 2 x 30.00 + 3 x 40.00 + 1 x 50.00 = 230.00, so
    // its promotion's second tier (spend 199 get 25 off) applies. Exact
    // shares 6.5217.., 13.0434.., 5.4347..: rounded half-up they sum to
    // 24.99 and largest_line gives the fen to the largest line (120.00);
    // largest_remainder floors them and gives it to the largest fraction
    // (.47, the 50.00 line).
    let [a, b, c] = well_known::CART_GOODS;
    let cart = lines(&[(a, 2), (b, 3), (c, 1)]);
    let cases = [("someone-else", "stable", ["6.52", "13.05", "5.43"]), (pinned, variant, ["6.52", "13.04", "5.44"])];
    for (pin, name, shares) in cases {
        let preview = PreviewOrderRequest { context: Some(app(pin)), lines: cart.clone(), coupon_ids: vec![] };
        let reply =
            server.client().preview_order(signed_as(preview, DETAIL_CALLER, DETAIL_TOKEN)).await.expect("preview");
        assert_eq!(reply.metadata().get("x-pricing-variant").unwrap(), name, "{pin}");
        let preview = reply.into_inner();
        assert_allocated(&preview, shares, pin);

        // The order, priced against the preview's quote: the same rule, so
        // nothing moved.
        let order = PriceOrderRequest {
            context: Some(app(pin)),
            lines: cart.clone(),
            coupon_ids: vec![],
            preview_quote_id: preview.quote_id.clone(),
            expected_payable_total: preview.payable_total.clone(),
        };
        let reply = server.client().price_order(signed_as(order, DETAIL_CALLER, DETAIL_TOKEN)).await.expect("order");
        assert_eq!(reply.metadata().get("x-pricing-variant").unwrap(), name, "{pin}");
        let order = reply.into_inner();
        assert_allocated(&order, shares, pin);
        assert!(order.lines.iter().all(|l| !l.price_changed) && !order.payable_changed, "{pin}: {order:?}");
    }
    server.stop().await;
}

/// The cart promotion's shares per line are `shares`, and they, the line
/// payables and the totals add up to the fen.
fn assert_allocated(pricing: &v1::OrderPricing, shares: [&str; 3], pin: &str) {
    let allocated: Vec<&str> = pricing
        .lines
        .iter()
        .map(|l| {
            assert_eq!(l.allocations.len(), 1, "{pin}: one promotion per line: {l:?}");
            assert_eq!(l.allocations[0].promotion_id, well_known::STORE_PROMOTION, "{pin}");
            l.allocations[0].amount.as_str()
        })
        .collect();
    assert_eq!(allocated, shares, "{pin}");
    assert_eq!(total(allocated.iter().copied()), dec("25.00"), "{pin}: the shares sum to the discount");
    assert_eq!(pricing.discount_total, "25.00", "{pin}");
    assert_eq!(pricing.payable_total, "205.00", "{pin}");
    assert_eq!(total(pricing.lines.iter().map(|l| l.payable.as_str())), dec("205.00"), "{pin}: payables");
    for line in &pricing.lines {
        assert_eq!(dec(&line.amount) - dec(&line.allocations[0].amount), dec(&line.payable), "{pin}: {line:?}");
    }
}

fn total<'a>(amounts: impl Iterator<Item = &'a str>) -> Decimal {
    amounts.map(dec).sum()
}
