//! Canary variants that change the list read path, over real gRPC and real
//! stores: two redis-server processes and two HBase Thrift test servers
//! (tests/support/real_stack.rs), a list server started through the
//! production `pricing_list::serve` with a watched control file.
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
use pricing_list::ListConfig;
use pricing_proto::v1::list_pricing_client::ListPricingClient;
use pricing_proto::v1::{self, BatchGetPricesRequest, CallerContext};
use pricing_record::GoodsId;
use pricing_store::conformance::record;
use pricing_store::{BreakerSettings, Cluster, SharedRecord, TierId};
use pricing_testkit::net::{Shutdown, eventually};
use pricing_tests::real_stack::{RealStack, counter, test_dual_settings};
use pricing_tests::{app, channel, signed_as};
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
