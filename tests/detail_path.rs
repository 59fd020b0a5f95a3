//! The detail, checkout and order path against real MariaDB and two real
//! Redis servers: Redis first, MySQL behind it with write-back, the live
//! switches, the list fallback, and MySQL failing fast instead of hanging.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use pricing_control::{ControlConfig, Switchboard};
use pricing_detail::DetailConfig;
use pricing_detail::sources::Sources;
use pricing_list::ListConfig;
use pricing_proto::v1::detail_pricing_client::DetailPricingClient;
use pricing_proto::v1::{self, GetGoodsPriceRequest, PreviewOrderRequest, PriceOrderRequest};
use pricing_record::{Activity, ActivityKind};
use pricing_store::{CacheSettings, RecordStore};
use pricing_store_pairs::{RedisClusterConfig, RedisPairConfig};
use pricing_store_redis::{RedisConfig, RedisStore};
use pricing_store_sql::demo::{self, DemoOptions, well_known};
use pricing_store_sql::source::SourceSettings;
use pricing_store_sql::{SqlOptions, SqlStore};
use pricing_testkit::net::{Shutdown, eventually};
use pricing_testkit::proxy::{Mode, TcpProxy};
use pricing_testkit::redis::RedisServer;
use pricing_tests::{app, channel, lines};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::Code;

/// MariaDB (behind a proxy the test can break), two Redis servers, the
/// detail server, and a list server for the fallback.
struct DetailStack {
    detail_addr: std::net::SocketAddr,
    board: Switchboard,
    _sources: Arc<Sources>,
    sql: Arc<SqlStore>,
    mysql_proxy: TcpProxy,
    redis: [RedisServer; 2],
    stop: Shutdown,
}

fn mysql_addr(url: &str) -> (std::net::SocketAddr, String) {
    // mysql://root@127.0.0.1:PORT/db
    let rest = url.split('@').nth(1).unwrap();
    let (host_port, db) = rest.split_once('/').unwrap();
    (host_port.parse().unwrap(), db.to_owned())
}

impl DetailStack {
    async fn start() -> DetailStack {
        DetailStack::start_with(|_| {}).await
    }

    /// As [`DetailStack::start`], the detail config changed by `tune` first.
    async fn start_with(tune: impl FnOnce(&mut DetailConfig)) -> DetailStack {
        let url = pricing_testkit::mysql::fresh_database("detail").await;
        let seeded = SqlStore::connect(&url).await.unwrap();
        demo::seed(&seeded, DemoOptions { goods: 120, ..DemoOptions::default() }).await.unwrap();
        seeded.close().await;

        let (db_addr, db) = mysql_addr(&url);
        let mysql_proxy = TcpProxy::start(db_addr).await;
        let proxied = format!("mysql://root@{}/{}", mysql_proxy.addr(), db);
        let options = SqlOptions {
            acquire_timeout: Duration::from_millis(300),
            statement_timeout: Duration::from_millis(300),
            ..SqlOptions::default()
        };
        let sql = Arc::new(SqlStore::connect_with(&proxied, options).await.unwrap());

        let redis = [RedisServer::start(), RedisServer::start()];
        let stop = Shutdown::new();

        // The list server the detail path falls back to, over the same database.
        let list_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let list_addr = list_listener.local_addr().unwrap();
        let mut list_config = ListConfig::default();
        list_config.server.metrics_listen = None;
        list_config.source = SourceSettings { database_url: Some(proxied.clone()), ..SourceSettings::default() };
        let reader = pricing_list::build_reader(&list_config, Some(Arc::clone(&sql) as _)).await.unwrap();
        tokio::spawn(pricing_list::serve_with_reader(list_listener, list_config, reader, stop.signal()));

        let mut config = DetailConfig::default();
        config.server.metrics_listen = None;
        config.checkout.quote_secret = "detail-test".into();
        let cluster = |r: &RedisServer| RedisClusterConfig {
            urls: vec![r.url()],
            cluster: false,
            connect_timeout_ms: 200,
            response_timeout_ms: 200,
            key_ttl_ms: None,
            topology_refresh_ms: 1_000,
            replica_ack_timeout_ms: 0,
        };
        config.redis =
            Some(RedisPairConfig { a: cluster(&redis[0]), b: cluster(&redis[1]), settings: Default::default() });
        config.list_fallback = Some(pricing_detail::config::ListFallbackSettings {
            address: format!("http://{list_addr}"),
            timeout_ms: 2_000,
        });
        tune(&mut config);
        let board = Switchboard::from_config(ControlConfig::default()).unwrap();
        let sources = pricing_detail::build_sources(&config, Arc::clone(&sql), &board).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let detail_addr = listener.local_addr().unwrap();
        tokio::spawn(pricing_detail::serve_with_sources(
            listener,
            config,
            Arc::clone(&sources),
            board.clone(),
            stop.signal(),
        ));
        DetailStack { detail_addr, board, _sources: sources, sql, mysql_proxy, redis, stop }
    }

    async fn client(&self) -> DetailPricingClient<tonic::transport::Channel> {
        DetailPricingClient::new(channel(self.detail_addr).await)
    }

    /// Flips detail switches the way a control-file reload does.
    fn switch(&self, f: impl FnOnce(&mut pricing_control::DetailSwitches)) {
        let mut config = (*self.board.snapshot()).clone();
        f(&mut config.detail);
        self.board.replace(config).unwrap();
    }

    fn redis_store(&self, i: usize) -> RedisStore {
        RedisStore::new(RedisConfig::standalone(format!("check-{i}"), self.redis[i].url())).unwrap()
    }
}

impl Drop for DetailStack {
    fn drop(&mut self) {
        self.stop.stop();
    }
}

async fn goods_price(
    client: &mut DetailPricingClient<tonic::transport::Channel>,
    id: u64,
) -> Result<v1::GetGoodsPriceResponse, tonic::Status> {
    client
        .get_goods_price(GetGoodsPriceRequest { goods_id: id, context: Some(app("user-1")) })
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn a_miss_in_redis_is_read_from_mysql_and_written_back() {
    let stack = DetailStack::start().await;
    let mut client = stack.client().await;
    let first = goods_price(&mut client, well_known::FLASH_SALE_GOODS).await.unwrap();
    let price = first.price.unwrap();
    assert_eq!(price.tier, v1::Tier::Database as i32);
    assert_eq!(price.activity_price, "39.90");

    // Written back to both Redis clusters with its version.
    for i in 0..2 {
        let store = stack.redis_store(i);
        let record = eventually("write-back to redis", Duration::from_secs(10), || {
            let store = store.clone();
            async move { store.fetch(&[well_known::FLASH_SALE_GOODS]).await.ok()?.into_iter().next() }
        })
        .await;
        assert_eq!(record.version, price.version);
    }
    let second = goods_price(&mut client, well_known::FLASH_SALE_GOODS).await.unwrap().price.unwrap();
    assert_eq!(second.tier, v1::Tier::Redis as i32);
    assert_eq!(second.activity_price, "39.90");
}

#[tokio::test]
async fn the_bypass_switch_flipped_under_load_sends_reads_to_mysql_without_a_failed_call() {
    let stack = DetailStack::start().await;
    let mut warm = stack.client().await;
    for id in [1, 2, 3] {
        goods_price(&mut warm, id).await.unwrap();
    }
    let (done_tx, done_rx) = watch::channel(false);
    let answered = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut workers = Vec::new();
    for w in 0..4u64 {
        let mut client = stack.client().await;
        let done = done_rx.clone();
        let answered = Arc::clone(&answered);
        workers.push(tokio::spawn(async move {
            let mut calls = 0u64;
            while !*done.borrow() || calls < 50 {
                let id = 1 + (calls + w) % 3;
                goods_price(&mut client, id).await.expect("no call fails while the switch flips");
                calls += 1;
                answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            calls
        }));
    }
    // Let the load run, flip the switch, let it run on.
    eventually("some load before the flip", Duration::from_secs(10), || {
        let n = answered.load(std::sync::atomic::Ordering::Relaxed);
        async move { (n > 40).then_some(()) }
    })
    .await;
    stack.switch(|s| s.redis_bypass = true);
    let mut client = stack.client().await;
    let after = goods_price(&mut client, 2).await.unwrap().price.unwrap();
    assert_eq!(after.tier, v1::Tier::Database as i32, "bypass reads MySQL from the next call on");
    done_tx.send(true).unwrap();
    let total: u64 = futures_total(workers).await;
    assert!(total >= 200, "load ran: {total} calls");

    stack.switch(|s| s.redis_bypass = false);
    let back = goods_price(&mut client, 2).await.unwrap().price.unwrap();
    assert_eq!(back.tier, v1::Tier::Redis as i32, "switching back reads Redis again");
}

async fn futures_total(workers: Vec<tokio::task::JoinHandle<u64>>) -> u64 {
    let mut total = 0;
    for w in workers {
        total += w.await.unwrap();
    }
    total
}

#[tokio::test]
async fn with_both_redis_down_mysql_answers() {
    let mut stack = DetailStack::start().await;
    let mut client = stack.client().await;
    for r in &mut stack.redis {
        r.kill();
    }
    for id in [1, 2, 3] {
        let price = goods_price(&mut client, id).await.expect("mysql answers").price.unwrap();
        assert_eq!(price.tier, v1::Tier::Database as i32);
    }
    let order = client
        .preview_order(PreviewOrderRequest {
            context: Some(app("user-1")),
            lines: lines(&[(30, 1), (40, 1), (50, 1)]),
            coupon_ids: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(order.payable_total, "111.00");
}

#[tokio::test]
async fn fallback_to_list_answers_from_the_list_server() {
    let stack = DetailStack::start().await;
    stack.switch(|s| s.fallback_to_list = true);
    let mut client = stack.client().await;
    let reply = goods_price(&mut client, well_known::DISCOUNT_GOODS).await.unwrap();
    assert!(reply.from_list_fallback);
    assert_eq!(reply.price.unwrap().activity_price, "85.00");
    let missing = goods_price(&mut client, 999_999).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

#[tokio::test]
async fn checkout_and_order_on_mariadb_flag_a_price_change() {
    let stack = DetailStack::start().await;
    let mut client = stack.client().await;
    let cart = lines(&[(30, 1), (40, 1), (50, 1)]);
    let preview = client
        .preview_order(PreviewOrderRequest { context: Some(app("user-1")), lines: cart.clone(), coupon_ids: vec![] })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(preview.payable_total, "111.00");
    let allocations: Vec<&str> = preview.lines.iter().map(|l| l.allocations[0].amount.as_str()).collect();
    assert_eq!(allocations, ["2.25", "3.00", "3.75"]);

    // The preview wrote the records back to Redis; the price then changes in MySQL.
    let now = pricing_record::Clock::system().now_ms();
    stack
        .sql
        .catalog()
        .upsert_activity(&Activity::open(
            880_001,
            50,
            ActivityKind::AmountOff,
            "10.00".parse().unwrap(),
            now - 1_000,
            now + 3_600_000,
        ))
        .await
        .unwrap();
    let order = client
        .price_order(PriceOrderRequest {
            context: Some(app("user-1")),
            lines: cart,
            coupon_ids: vec![],
            preview_quote_id: preview.quote_id,
            expected_payable_total: "111.00".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(order.lines[2].price_changed, "the order reads MySQL, not the older Redis copy");
    assert_eq!(order.lines[2].unit_activity_price, "40.00");
    assert!(order.payable_changed);
    assert_eq!(order.payable_total, "101.00", "110.00 after the activity, 9 off");
}

#[tokio::test]
async fn a_configured_memory_cache_answers_detail_reads_but_never_orders() {
    let stack = DetailStack::start_with(|c| {
        c.cache = Some(CacheSettings { ttl: Duration::from_secs(600), ..CacheSettings::default() });
    })
    .await;
    let mut client = stack.client().await;
    let first = goods_price(&mut client, 50).await.unwrap().price.unwrap();
    assert_eq!(first.tier, v1::Tier::Database as i32, "Redis is empty: MySQL answers");
    let second = goods_price(&mut client, 50).await.unwrap().price.unwrap();
    assert_eq!((second.tier, second.stale), (v1::Tier::Memory as i32, false), "then the memory cache");

    // MySQL changes: the cached detail read keeps its copy for its ttl, an
    // order reads MySQL (never the cache).
    let now = pricing_record::Clock::system().now_ms();
    let activity =
        Activity::open(880_002, 50, ActivityKind::AmountOff, "10.00".parse().unwrap(), now - 1_000, now + 3_600_000);
    stack.sql.catalog().upsert_activity(&activity).await.unwrap();
    let cached = goods_price(&mut client, 50).await.unwrap().price.unwrap();
    assert_eq!((cached.tier, cached.activity_price.as_str()), (v1::Tier::Memory as i32, first.activity_price.as_str()));
    assert_ne!(first.activity_price, "40.00");
    let order = client
        .price_order(PriceOrderRequest {
            context: Some(app("user-1")),
            lines: lines(&[(50, 1)]),
            coupon_ids: vec![],
            preview_quote_id: String::new(),
            expected_payable_total: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(order.lines[0].unit_activity_price, "40.00", "the order read MySQL");
}

#[tokio::test]
async fn a_hanging_or_refusing_mysql_gives_unavailable_fast() {
    let stack = DetailStack::start().await;
    let mut client = stack.client().await;
    let order = |id: u64| PriceOrderRequest {
        context: Some(app("user-1")),
        lines: lines(&[(id, 1)]),
        coupon_ids: vec![],
        preview_quote_id: String::new(),
        expected_payable_total: String::new(),
    };
    client.price_order(order(1)).await.expect("healthy first");

    stack.mysql_proxy.set_mode(Mode::Blackhole);
    for _ in 0..3 {
        let started = Instant::now();
        let err = client.price_order(order(2)).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{err:?}");
        // Configured: 300 ms acquire and 300 ms statement timeouts. A generous
        // bound proves "no hang" without timing the machine.
        assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    }
    stack.mysql_proxy.set_mode(Mode::Refuse);
    let err = client.price_order(order(3)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);

    // Back: after the breaker's open time, orders are priced again.
    stack.mysql_proxy.set_mode(Mode::Pass);
    eventually("orders priced again after mysql returns", Duration::from_secs(30), || {
        let mut client = client.clone();
        async move { client.price_order(order(1)).await.ok().map(|_| ()) }
    })
    .await;
}

/// A canary variant's `detail_redis_read` reads the detail Redis pair by its
/// own read mode (here only cluster b) while the stable calls keep theirs
/// (split); its answers name the variant.
#[tokio::test]
async fn a_variant_reads_the_redis_pair_by_its_own_read_mode() {
    let stack = DetailStack::start().await;
    let mut client = stack.client().await;
    let goods = well_known::FLASH_SALE_GOODS;
    // Warm both clusters through the write-back.
    goods_price(&mut client, goods).await.unwrap();
    for i in 0..2 {
        let store = stack.redis_store(i);
        eventually("write-back to redis", Duration::from_secs(10), || {
            let store = store.clone();
            async move { store.fetch(&[goods]).await.ok()?.into_iter().next() }
        })
        .await;
    }
    let mut config = (*stack.board.snapshot()).clone();
    let overrides = pricing_control::VariantOverrides {
        detail_redis_read: Some(pricing_control::ReadSwitch::OnlyB {}),
        ..Default::default()
    };
    config.canary.variants.insert("redis-b".into(), overrides);
    config.canary.rules = vec![pricing_control::CanaryRule {
        variant: "redis-b".into(),
        pins: vec!["vb".into()],
        stores: vec![],
        cities: vec![],
        percent: 0,
        salt: None,
    }];
    stack.board.replace(config).unwrap();

    let mgets =
        |i: usize| pricing_testkit::redis::command_calls(&stack.redis[i].command(&["INFO", "commandstats"]), "mget");
    let (a0, b0) = (mgets(0), mgets(1));
    for _ in 0..10 {
        let reply =
            client.get_goods_price(GetGoodsPriceRequest { goods_id: goods, context: Some(app("vb")) }).await.unwrap();
        assert_eq!(reply.metadata().get("x-pricing-variant").unwrap(), "redis-b");
        assert_eq!(reply.into_inner().price.unwrap().tier, v1::Tier::Redis as i32);
    }
    assert_eq!(mgets(0), a0, "the variant never reads cluster a");
    assert!(mgets(1) >= b0 + 10, "the variant reads cluster b: {} -> {}", b0, mgets(1));

    // The stable calls still split over both clusters (20 calls all on b: 1 in a million).
    for _ in 0..20 {
        goods_price(&mut client, goods).await.unwrap();
    }
    assert!(mgets(0) > a0, "stable calls still read cluster a");
}

/// The log lines written on this thread, captured (the test runtime is
/// single-threaded: the servers' tasks and the shadow workers run here).
#[derive(Clone, Default)]
struct CapturedLogs(Arc<std::sync::Mutex<Vec<u8>>>);

impl CapturedLogs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Shadow verification with the real verifier (re-pricing from MariaDB) on
/// both paths: a record made wrong directly in Redis (a higher version, a
/// base price of 1.00) is answered by the detail and the list servers, and
/// each path's verifier counts and logs the mismatch. The sample rate comes
/// from a control file's text (parsed by the production parser) giving a
/// variant of this test's own a rate of 100%, so no other test can move these
/// series.
#[tokio::test]
async fn shadow_verification_catches_a_record_made_wrong_in_redis() {
    use pricing_record::GoodsRecord;
    use pricing_store::RecordWriter as _;
    use pricing_tests::real_stack::counter;

    const VARIANT: &str = "watch-shadow";
    const PIN: &str = "watch-shadow-pin";
    let logs = CapturedLogs::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);

    let stack = DetailStack::start().await;
    let control = format!(
        "version = 1\n\n[[canary.rules]]\nvariant = \"{VARIANT}\"\npins = [\"{PIN}\"]\n\n\
         [canary.variants.{VARIANT}]\nshadow_basis_points = 10000\n"
    );
    stack.board.replace(ControlConfig::parse(&control).unwrap()).unwrap();

    // A list server over the same Redis pair and MariaDB (Redis first), under
    // the same control config, with MariaDB as its verifier's truth.
    let mut list_config = ListConfig::default();
    list_config.server.metrics_listen = None;
    list_config.read.tiers = vec![pricing_store::TierId::Redis, pricing_store::TierId::Sql];
    let detail_redis = |r: &RedisServer| RedisClusterConfig {
        urls: vec![r.url()],
        cluster: false,
        connect_timeout_ms: 200,
        response_timeout_ms: 2_000,
        key_ttl_ms: None,
        topology_refresh_ms: 1_000,
        replica_ack_timeout_ms: 0,
    };
    list_config.redis = Some(RedisPairConfig {
        a: detail_redis(&stack.redis[0]),
        b: detail_redis(&stack.redis[1]),
        settings: Default::default(),
    });
    let path = pricing_list::build_read_path(&list_config, Some(Arc::clone(&stack.sql) as _)).await.unwrap();
    let list_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let list_addr = list_listener.local_addr().unwrap();
    tokio::spawn(pricing_list::serve_with(
        list_listener,
        list_config,
        path.reader.clone(),
        stack.board.clone(),
        path.truth.clone(),
        stack.stop.signal(),
    ));

    // The truth, and the same record made wrong in both Redis servers.
    let id = well_known::PLAIN_GOODS;
    let truth = stack.sql.fetch(&[id]).await.unwrap().into_iter().next().expect("the demo holds the goods");
    let wrong =
        GoodsRecord { version: truth.version + 1_000, base_price: rust_decimal::Decimal::ONE, ..(*truth).clone() };
    assert_ne!(truth.base_price, wrong.base_price);
    for i in 0..2 {
        stack.redis_store(i).put(&[Arc::new(wrong.clone())]).await.unwrap();
    }

    fn series(path: &str) -> [(&str, &str); 2] {
        [("variant", VARIANT), ("path", path)]
    }
    let context = Some(app(PIN));
    let answered = stack
        .client()
        .await
        .get_goods_price(GetGoodsPriceRequest { goods_id: id, context: context.clone() })
        .await
        .unwrap()
        .into_inner()
        .price
        .unwrap();
    assert_eq!((answered.activity_price.as_str(), answered.tier), ("1.00", v1::Tier::Redis as i32));
    let mut list = pricing_proto::v1::list_pricing_client::ListPricingClient::new(channel(list_addr).await);
    let listed =
        list.batch_get_prices(v1::BatchGetPricesRequest { goods_ids: vec![id], context }).await.unwrap().into_inner();
    assert_eq!(listed.prices.iter().map(|p| p.activity_price.as_str()).collect::<Vec<_>>(), ["1.00"]);

    for path in ["detail", "list"] {
        eventually(&format!("{path} shadow mismatch counted"), Duration::from_secs(10), || async {
            (counter("pricing_shadow_mismatch_total", &series(path)) == 1).then_some(())
        })
        .await;
        assert_eq!(counter("pricing_shadow_checks_total", &series(path)), 1, "{path}");
        assert_eq!(counter("pricing_shadow_errors_total", &series(path)), 0, "{path}");
    }
    let expected = best_price_of(&truth);
    let lines: Vec<String> =
        logs.text().lines().filter(|l| l.contains("shadow verification mismatch")).map(str::to_owned).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for path in ["detail", "list"] {
        let line =
            lines.iter().find(|l| l.contains(&format!("path=\"{path}\"")) || l.contains(&format!("path={path}")));
        let line = line.unwrap_or_else(|| panic!("no mismatch logged for {path}: {lines:?}"));
        for part in
            [format!("goods_id={id}"), "answered=1.00".to_owned(), format!("expected={expected}"), VARIANT.to_owned()]
        {
            assert!(line.contains(&part), "{part} in {line}");
        }
    }
}

/// The price the engine gives a record for an anonymous app caller now.
fn best_price_of(record: &pricing_record::GoodsRecord) -> rust_decimal::Decimal {
    let ctx = pricing_engine::CallerContext {
        pin: "watch-shadow-pin".into(),
        ..pricing_engine::CallerContext::anonymous(pricing_record::Channel::App)
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    pricing_engine::best_price(record, &ctx, now, false).unwrap().price
}
