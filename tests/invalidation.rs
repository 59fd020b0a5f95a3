#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]
//! Push invalidation end to end: MariaDB (a fresh database with a small demo
//! catalogue), the projector's incremental loop, two redis-server processes,
//! and the list and detail servers through their production `serve`, both
//! with a memory cache whose lifetime (10 minutes) is far longer than the
//! test: a changed price served within the test's deadline can only have
//! come through the projector's announcement.
//!
//! One test in this file (so the process-wide counters it reads through the
//! servers' own /metrics move only for it): a change reaches both servers;
//! then every subscription is killed on both Redis servers (`CLIENT KILL
//! TYPE pubsub`), the servers count the loss, re-subscribe, and a second
//! change reaches them again.

use std::net::SocketAddr;
use std::time::Duration;

use pricing_detail::DetailConfig;
use pricing_list::ListConfig;
use pricing_projector::{Progress, Projector, ProjectorConfig, Scope};
use pricing_proto::v1::detail_pricing_client::DetailPricingClient;
use pricing_proto::v1::list_pricing_client::ListPricingClient;
use pricing_proto::v1::{BatchGetPricesRequest, GetGoodsPriceRequest};
use pricing_record::GoodsStatus;
use pricing_store::{CacheSettings, RecordStore};
use pricing_store_sql::SqlStore;
use pricing_store_sql::catalog::GoodsRow;
use pricing_testkit::net::{Shutdown, eventually, free_port};
use pricing_testkit::redis::RedisServer;
use rust_decimal::Decimal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const GOODS: u64 = 30;
const WAIT: Duration = Duration::from_secs(20);
/// Far beyond the test: only invalidation can explain a fresh answer.
const LONG: Duration = Duration::from_secs(600);

fn long_cache() -> CacheSettings {
    CacheSettings { ttl: LONG, negative_ttl: LONG, ..CacheSettings::default() }
}

fn projector_config(url: &str, redis: &[RedisServer; 2]) -> ProjectorConfig {
    let text = format!(
        r#"
        version = 1
        [source]
        database_url = "{url}"
        [redis]
        a = {{ urls = ["{a}"], connect_timeout_ms = 500, response_timeout_ms = 2000, replica_ack_timeout_ms = 0 }}
        b = {{ urls = ["{b}"], connect_timeout_ms = 500, response_timeout_ms = 2000, replica_ack_timeout_ms = 0 }}
        [redis.settings]
        a = {{ write_timeout_ms = 2000 }}
        b = {{ write_timeout_ms = 2000 }}
        [sync]
        page_size = 100
        poll_interval_ms = 50
        overlap_ms = 0
        "#,
        a = redis[0].url(),
        b = redis[1].url(),
    );
    ProjectorConfig::parse(&text).expect("projector config")
}

/// The metrics text a server serves on its own /metrics (empty while it
/// does not listen yet).
async fn scrape(addr: SocketAddr) -> String {
    let Ok(mut stream) = TcpStream::connect(addr).await else { return String::new() };
    let request = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let mut body = String::new();
    if stream.write_all(request).await.is_err() || stream.read_to_string(&mut body).await.is_err() {
        return String::new();
    }
    body
}

/// The sum of a counter's series carrying `label` in a metrics text.
fn sum(text: &str, name: &str, label: &str) -> u64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| series.split('{').next() == Some(name) && series.contains(label))
        .filter_map(|(_, value)| value.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

async fn list_price(list: &mut ListPricingClient<tonic::transport::Channel>, id: u64) -> (String, u64) {
    let request = BatchGetPricesRequest { goods_ids: vec![id], context: Some(pricing_tests::app("p-1")) };
    let reply = list.batch_get_prices(request).await.expect("list answers").into_inner();
    let price = reply.prices.into_iter().next().expect("the goods is known");
    (price.original_price, price.version)
}

async fn detail_price(detail: &mut DetailPricingClient<tonic::transport::Channel>, id: u64) -> (String, u64) {
    let request = GetGoodsPriceRequest { goods_id: id, context: Some(pricing_tests::app("p-1")) };
    let reply = detail.get_goods_price(request).await.expect("detail answers").into_inner();
    let price = reply.price.expect("a price");
    (price.original_price, price.version)
}

/// Sets the goods' base price through the catalogue writer; its new version.
/// Polls each server until it answers `id` at `want` (price, version).
async fn both_serve(
    list: &ListPricingClient<tonic::transport::Channel>,
    detail: &DetailPricingClient<tonic::transport::Channel>,
    id: u64,
    want: (&str, u64),
    what: &str,
) {
    let want = (want.0.to_owned(), want.1);
    eventually(&format!("the list server serves {what}"), WAIT, || {
        let (mut list, want) = (list.clone(), want.clone());
        async move { (list_price(&mut list, id).await == want).then_some(()) }
    })
    .await;
    eventually(&format!("the detail server serves {what}"), WAIT, || {
        let (mut detail, want) = (detail.clone(), want.clone());
        async move { (detail_price(&mut detail, id).await == want).then_some(()) }
    })
    .await;
}

async fn change_price(truth: &SqlStore, id: u64, price: &str) -> u64 {
    let record = truth.fetch(&[id]).await.expect("read the goods").pop().expect("the goods exists");
    let row = GoodsRow {
        id,
        store_id: record.store_id,
        base_price: price.parse::<Decimal>().expect("a price"),
        currency: record.currency.clone(),
        status: GoodsStatus::OnSale,
    };
    truth.catalog().upsert_goods(&row).await.expect("write the goods")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn changes_reach_running_servers_and_a_lost_subscription_recovers() {
    let _ = pricing_telemetry::prometheus();
    let url = pricing_testkit::mysql::fresh_database("invalidation").await;
    let truth = SqlStore::connect(&url).await.expect("connect to the test database");
    let demo = pricing_store_sql::demo::DemoOptions { goods: GOODS, ..Default::default() };
    pricing_store_sql::demo::seed(&truth, demo).await.expect("seed the demo catalogue");
    let redis = [RedisServer::start(), RedisServer::start()];

    let projector = Projector::connect(projector_config(&url, &redis)).await.expect("projector");
    projector.full(&Scope::All, false, &Progress::logs_only()).await.expect("first full sync");
    projector.incremental_pass().await.expect("catch-up pass");
    let stop = Shutdown::new();
    let shutdown = stop.signal();
    let looping = tokio::spawn(async move { projector.run_incremental(false, shutdown).await });

    let pair = pricing_tests::fault_stack::redis_pair_config(
        &[redis[0].url(), redis[1].url()],
        pricing_tests::fault_stack::wide_dual(),
    );
    let list_metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut list_config = ListConfig::default();
    list_config.server.metrics_listen = Some(list_metrics);
    list_config.read.tiers = vec![pricing_store::TierId::Redis];
    list_config.cache = long_cache();
    list_config.redis = Some(pair.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let list_addr = listener.local_addr().unwrap();
    let list_task = tokio::spawn(pricing_list::serve(listener, list_config, stop.signal()));

    let detail_metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut detail_config = DetailConfig::default();
    detail_config.server.metrics_listen = Some(detail_metrics);
    detail_config.source.database_url = Some(url.clone());
    detail_config.checkout.quote_secret = "invalidation".into();
    detail_config.cache = Some(long_cache());
    detail_config.redis = Some(pair);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let detail_addr = listener.local_addr().unwrap();
    let detail_task = tokio::spawn(pricing_detail::serve(listener, detail_config, stop.signal()));

    let mut list = ListPricingClient::new(pricing_tests::channel(list_addr).await);
    let mut detail = DetailPricingClient::new(pricing_tests::channel(detail_addr).await);
    // Both servers subscribed on both clusters (their own /metrics say so).
    for addr in [list_metrics, detail_metrics] {
        eventually("both subscriptions up", WAIT, || async move {
            let text = scrape(addr).await;
            (sum(&text, "pricing_invalidation_subscribed", "cluster=\"redis-a\"") >= 1
                && sum(&text, "pricing_invalidation_subscribed", "cluster=\"redis-b\"") >= 1)
                .then_some(())
        })
        .await;
    }

    // Cached in both servers' memory: a goods on sale.
    let (goods, _) = pricing_store_sql::demo::catalogue(&pricing_store_sql::demo::DemoOptions {
        goods: GOODS,
        ..Default::default()
    });
    let id = goods
        .iter()
        .find(|g| !g.deleted && g.record.status == GoodsStatus::OnSale)
        .expect("a goods on sale")
        .record
        .goods_id;
    let before_list = list_price(&mut list, id).await;
    let before_detail = detail_price(&mut detail, id).await;
    assert_eq!(before_list, before_detail, "both servers read the same record");

    // 1. A change reaches both servers long before the cache lifetime ends.
    let version = change_price(&truth, id, "123.45").await;
    both_serve(&list, &detail, id, ("123.45", version), "the change").await;
    let received = sum(&scrape(list_metrics).await, "pricing_invalidation_received_total", "cluster=\"redis-a\"");
    assert!(received >= 1, "the list server counted the announcement: {received}");

    // 2. Every subscription dropped on both Redis servers: counted as lost
    // by each server, then re-made.
    let lost_before = sum(&scrape(list_metrics).await, "pricing_invalidation_subscription_lost_total", "cluster=");
    for server in &redis {
        let killed = server.command(&["CLIENT", "KILL", "TYPE", "pubsub"]);
        let count = killed.trim().trim_start_matches(':').parse::<u64>().unwrap_or(0);
        assert!(count >= 2, "both servers were subscribed: {killed:?}");
    }
    eventually("the loss is counted, the subscriptions are back", WAIT, || async move {
        let text = scrape(list_metrics).await;
        let lost = sum(&text, "pricing_invalidation_subscription_lost_total", "cluster=");
        (lost >= lost_before + 2
            && sum(&text, "pricing_invalidation_subscribed", "cluster=\"redis-a\"") >= 1
            && sum(&text, "pricing_invalidation_subscribed", "cluster=\"redis-b\"") >= 1)
            .then_some(())
    })
    .await;
    // Both servers subscribed again (each process counts its own pubsub clients).
    eventually("both servers re-subscribed on both clusters", WAIT, || async {
        redis
            .iter()
            .all(|s| {
                s.command(&["PUBSUB", "NUMSUB", pricing_store_redis::invalidate::DEFAULT_CHANNEL]).ends_with(":2\r\n")
            })
            .then_some(())
    })
    .await;

    // 3. Invalidation works again after the reconnect.
    let version = change_price(&truth, id, "99.10").await;
    both_serve(&list, &detail, id, ("99.10", version), "the second change").await;

    stop.stop();
    for task in [list_task, detail_task] {
        tokio::time::timeout(WAIT, task).await.expect("server stops").expect("no panic").expect("clean exit");
    }
    tokio::time::timeout(WAIT, looping).await.expect("projector stops").expect("no panic").expect("clean exit");
}
