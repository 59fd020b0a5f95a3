//! Both servers on the embedded demo database, called through the generated
//! clients over real gRPC: every RPC, every bad input, health, reflection.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

use std::time::Duration;

use pricing_proto::v1::{
    self, BatchGetPricesRequest, CallerContext, GetGoodsPriceRequest, OrderLineInput, PreviewOrderRequest,
    PriceOrderRequest,
};
use pricing_record::{Activity, ActivityKind, GoodsStatus};
use pricing_store_sql::GoodsRow;
use pricing_store_sql::demo::well_known;
use pricing_testkit::net::Shutdown;
use pricing_tests::{Stack, app, channel, dec, lines};
use rust_decimal::Decimal;
use tonic::Code;
use tonic_types::StatusExt;

#[tokio::test]
async fn batch_prices_for_well_known_goods() {
    let stack = Stack::embedded().await;
    let mut list = stack.list().await;
    let reply = list
        .batch_get_prices(BatchGetPricesRequest {
            goods_ids: vec![1, 2, 3, 4, 999_999, 1, 30],
            context: Some(app("user-1")),
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<u64> = reply.prices.iter().map(|p| p.goods_id).collect();
    assert_eq!(ids, vec![1, 2, 3, 30], "found goods in request order, duplicates once");
    assert_eq!(reply.not_found, vec![well_known::DELETED_GOODS, 999_999]);
    let p1 = &reply.prices[0];
    assert_eq!((p1.original_price.as_str(), p1.activity_price.as_str()), ("59.90", "39.90"));
    let winner = p1.activity.as_ref().expect("flash sale wins");
    assert_eq!((winner.id, winner.kind), (well_known::FLASH_SALE_ACTIVITY, v1::ActivityKind::FlashSale as i32));
    assert_eq!((p1.per_user_limit, p1.price_beyond_limit.as_str()), (2, "59.90"));
    assert_eq!(reply.prices[1].activity_price, "85.00");
    assert_eq!((reply.prices[2].activity_price.as_str(), reply.prices[2].activity.is_none()), ("25.00", true));
    assert!(reply.prices.iter().all(|p| !p.stale && p.tier == v1::Tier::Database as i32 && p.currency == "CNY"));
    // The second ask is answered from memory.
    let again = list
        .batch_get_prices(BatchGetPricesRequest { goods_ids: vec![1, 2], context: Some(app("user-1")) })
        .await
        .unwrap()
        .into_inner();
    assert!(again.prices.iter().all(|p| p.tier == v1::Tier::Memory as i32), "{:?}", again.prices);
    assert!(reply.prices.iter().all(|p| p.trace.is_empty()), "no trace unless asked");

    let explained = list
        .batch_get_prices(BatchGetPricesRequest {
            goods_ids: vec![1],
            context: Some(CallerContext { explain: true, ..app("user-1") }),
        })
        .await
        .unwrap()
        .into_inner();
    let trace = &explained.prices[0].trace;
    assert_eq!(trace.len(), 1);
    assert_eq!((trace[0].outcome.as_str(), trace[0].price.as_str()), ("won", "39.90"));
    stack.stop().await;
}

#[tokio::test]
async fn goods_detail_lists_activities_and_refuses_unknown_goods() {
    let stack = Stack::embedded().await;
    let mut detail = stack.detail().await;
    let reply = detail
        .get_goods_price(GetGoodsPriceRequest { goods_id: well_known::DISCOUNT_GOODS, context: Some(app("user-1")) })
        .await
        .unwrap()
        .into_inner();
    let price = reply.price.unwrap();
    assert_eq!(price.activity_price, "85.00");
    assert_eq!(reply.activities.len(), 1);
    assert!(reply.activities[0].applicable);
    assert_eq!(reply.activities[0].price, "85.00");
    assert!(!reply.from_list_fallback);

    let err = detail
        .get_goods_price(GetGoodsPriceRequest { goods_id: 999_999, context: Some(app("user-1")) })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    stack.stop().await;
}

#[tokio::test]
async fn preview_of_seed_002_cart_allocates_exactly() {
    let stack = Stack::embedded().await;
    let mut detail = stack.detail().await;
    let reply = detail
        .preview_order(PreviewOrderRequest {
            context: Some(app("user-1")),
            lines: lines(&[(30, 1), (40, 1), (50, 1)]),
            coupon_ids: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.payable_total, "111.00");
    assert_eq!(reply.discount_total, "9.00");
    let allocations: Vec<&str> = reply.lines.iter().map(|l| l.allocations[0].amount.as_str()).collect();
    assert_eq!(allocations, vec!["2.25", "3.00", "3.75"]);
    let payables: Vec<&str> = reply.lines.iter().map(|l| l.payable.as_str()).collect();
    assert_eq!(payables, vec!["27.75", "37.00", "46.25"]);
    assert_eq!(reply.promotions.len(), 1);
    assert_eq!(reply.promotions[0].id, well_known::STORE_PROMOTION);
    assert!(!reply.quote_id.is_empty());
    assert_sums_exact(&reply);
    stack.stop().await;
}

/// Every promotion's allocations sum to its discount; line payables sum to the total.
fn assert_sums_exact(order: &v1::OrderPricing) {
    for promo in &order.promotions {
        let allocated: Decimal = order
            .lines
            .iter()
            .flat_map(|l| &l.allocations)
            .filter(|a| a.promotion_id == promo.id && a.kind == promo.kind)
            .map(|a| dec(&a.amount))
            .sum();
        assert_eq!(allocated, dec(&promo.discount), "promotion {} allocations", promo.id);
    }
    let payable: Decimal = order.lines.iter().map(|l| dec(&l.payable)).sum();
    assert_eq!(payable, dec(&order.payable_total));
    for l in &order.lines {
        let allocated: Decimal = l.allocations.iter().map(|a| dec(&a.amount)).sum();
        assert_eq!(dec(&l.amount) - allocated, dec(&l.payable), "line {}", l.goods_id);
        assert!(dec(&l.payable) >= Decimal::ZERO);
    }
}

#[tokio::test]
async fn stacked_promotions_and_coupons_sum_exactly() {
    let stack = Stack::embedded().await;
    let mut detail = stack.detail().await;
    let reply = detail
        .preview_order(PreviewOrderRequest {
            context: Some(app("user-1")),
            lines: lines(&[(1, 3), (2, 1), (3, 2), (30, 2), (40, 1), (50, 3)]),
            coupon_ids: vec![well_known::COUPON, well_known::STORE_COUPON, well_known::EXPIRED_COUPON, 424_242],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(reply.promotions.len() >= 2, "several promotions stack: {:?}", reply.promotions);
    assert_sums_exact(&reply);
    // Goods 1 has a limit of 2 per user: the third unit pays the original price.
    let line1 = &reply.lines[0];
    assert_eq!(line1.segments.len(), 2);
    assert_eq!((line1.segments[0].quantity, line1.segments[0].unit_price.as_str()), (2, "39.90"));
    assert_eq!((line1.segments[1].quantity, line1.segments[1].unit_price.as_str()), (1, "59.90"));
    assert_eq!(line1.amount, "139.70");
    // The expired and the unknown coupon come back unused with a reason.
    let unused: Vec<(u64, &str)> =
        reply.unused_coupon_ids.iter().copied().zip(reply.coupon_reasons.iter().map(String::as_str)).collect();
    assert!(unused.contains(&(424_242, "not_found")), "{unused:?}");
    assert!(unused.contains(&(well_known::EXPIRED_COUPON, "expired")), "{unused:?}");
    stack.stop().await;
}

#[tokio::test]
async fn price_order_flags_a_price_changed_since_the_preview() {
    let stack = Stack::embedded().await;
    let mut detail = stack.detail().await;
    let cart = lines(&[(30, 1), (40, 1), (50, 1)]);
    let preview = detail
        .preview_order(PreviewOrderRequest { context: Some(app("user-1")), lines: cart.clone(), coupon_ids: vec![] })
        .await
        .unwrap()
        .into_inner();

    let unchanged = detail
        .price_order(PriceOrderRequest {
            context: Some(app("user-1")),
            lines: cart.clone(),
            coupon_ids: vec![],
            preview_quote_id: preview.quote_id.clone(),
            expected_payable_total: "111.00".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(unchanged.lines.iter().all(|l| !l.price_changed));
    assert!(!unchanged.payable_changed);
    assert!(unchanged.quote_expires_unix_ms > 0);

    // A flash sale on goods 40 starts in the source of truth.
    let now = pricing_record::Clock::system().now_ms();
    stack
        .sql
        .catalog()
        .upsert_activity(&Activity::open(
            990_001,
            40,
            ActivityKind::FlashSale,
            dec("35.00"),
            now - 1_000,
            now + 3_600_000,
        ))
        .await
        .unwrap();
    let changed = detail
        .price_order(PriceOrderRequest {
            context: Some(app("user-1")),
            lines: cart,
            coupon_ids: vec![],
            preview_quote_id: preview.quote_id.clone(),
            expected_payable_total: "111.00".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let flags: Vec<bool> = changed.lines.iter().map(|l| l.price_changed).collect();
    // Goods 40's amount moved; the others' payables moved with the reallocation.
    assert!(flags[1], "{flags:?}");
    assert_eq!(changed.lines[1].unit_activity_price, "35.00");
    assert!(changed.payable_changed);
    assert_eq!(changed.payable_total, "106.00");
    assert_sums_exact(&changed);
    stack.stop().await;
}

#[tokio::test]
async fn price_order_refuses_an_expired_preview_quote() {
    use pricing_detail::quote::{Quote, QuoteSigner, QuotedLine};
    let stack = Stack::embedded().await;
    let mut detail = stack.detail().await;
    let cart = lines(&[(30, 1)]);
    let order = |quote: String| PriceOrderRequest {
        context: Some(app("user-1")),
        lines: cart.clone(),
        coupon_ids: vec![],
        preview_quote_id: quote,
        expected_payable_total: String::new(),
    };
    // Signed with the stack's own secret, so only the expiry is wrong.
    let signer = QuoteSigner::new(b"test-secret");
    let now = pricing_record::Clock::system().now_ms();
    let line = QuotedLine::new(30, 1, dec("30.00"), dec("30.00")).unwrap();
    let expired = signer.sign(&Quote { expires_ms: now - 1_000, lines: vec![line] });
    let status = detail.price_order(order(expired)).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().starts_with("preview_quote_id"), "{}", status.message());
    assert!(status.message().contains("expired"), "{}", status.message());

    let valid = signer.sign(&Quote { expires_ms: now + 60_000, lines: vec![line] });
    let reply = detail.price_order(order(valid)).await.unwrap().into_inner();
    assert!(!reply.lines[0].price_changed, "a live quote for the same price is accepted");
    stack.stop().await;
}

/// Asserts INVALID_ARGUMENT with the field named in the message and the details.
fn assert_invalid(status: tonic::Status, field: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
    assert!(status.message().starts_with(field), "{field}: message {:?}", status.message());
    let details = status.get_error_details();
    let violation = &details.bad_request().expect("bad request details").field_violations[0];
    assert_eq!(violation.field, field);
}

#[tokio::test]
async fn every_bad_input_names_its_field_and_the_servers_keep_serving() {
    let stack = Stack::embedded().await;
    let mut list = stack.list().await;
    let mut detail = stack.detail().await;
    let batch = |ids: Vec<u64>, context: Option<CallerContext>| BatchGetPricesRequest { goods_ids: ids, context };

    let cases: Vec<(BatchGetPricesRequest, &str)> = vec![
        (batch(vec![], Some(app("user-1"))), "goods_ids"),
        (batch((1..=201).collect(), Some(app("user-1"))), "goods_ids"),
        (batch(vec![1, 0], Some(app("user-1"))), "goods_ids[1]"),
        (batch(vec![1], None), "context"),
        (batch(vec![1], Some(CallerContext { channel: 0, ..app("user-1") })), "context.channel"),
        (batch(vec![1], Some(CallerContext { channel: 77, ..app("user-1") })), "context.channel"),
        (batch(vec![1], Some(CallerContext { member_level: 5_000, ..app("user-1") })), "context.member_level"),
    ];
    for (req, field) in cases {
        assert_invalid(list.batch_get_prices(req).await.unwrap_err(), field);
    }

    assert_invalid(
        detail.get_goods_price(GetGoodsPriceRequest { goods_id: 0, context: Some(app("user-1")) }).await.unwrap_err(),
        "goods_id",
    );
    let preview = |l: Vec<OrderLineInput>, coupons: Vec<u64>| PreviewOrderRequest {
        context: Some(app("user-1")),
        lines: l,
        coupon_ids: coupons,
    };
    let order_cases: Vec<(PreviewOrderRequest, &str)> = vec![
        (preview(vec![], vec![]), "lines"),
        (preview(lines(&[(1, 0)]), vec![]), "lines[0].quantity"),
        (preview(lines(&[(1, 1), (2, 1000)]), vec![]), "lines[1].quantity"),
        (preview(lines(&[(1, 1), (0, 1)]), vec![]), "lines[1].goods_id"),
        (preview(lines(&[(1, 1), (1, 2)]), vec![]), "lines[1].goods_id"),
        (preview((1..=101).map(|i| OrderLineInput { goods_id: i, quantity: 1 }).collect(), vec![]), "lines"),
        (preview(lines(&[(1, 1)]), vec![0]), "coupon_ids[0]"),
    ];
    for (req, field) in order_cases {
        assert_invalid(detail.preview_order(req).await.unwrap_err(), field);
    }
    let order = |expected: &str, quote: &str| PriceOrderRequest {
        context: Some(app("user-1")),
        lines: lines(&[(1, 1)]),
        coupon_ids: vec![],
        preview_quote_id: quote.into(),
        expected_payable_total: expected.into(),
    };
    assert_invalid(detail.price_order(order("12,50", "")).await.unwrap_err(), "expected_payable_total");
    assert_invalid(detail.price_order(order("1.005", "")).await.unwrap_err(), "expected_payable_total");
    assert_invalid(detail.price_order(order("", "forged")).await.unwrap_err(), "preview_quote_id");

    // Unknown goods on an order line is NOT_FOUND naming the line.
    let err = detail.preview_order(preview(lines(&[(1, 1), (999_999, 1)]), vec![])).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().starts_with("lines[1].goods_id"), "{}", err.message());

    // Both servers still answer.
    let ok = list.batch_get_prices(batch(vec![1], Some(app("user-1")))).await.unwrap().into_inner();
    assert_eq!(ok.prices.len(), 1);
    detail.preview_order(preview(lines(&[(30, 1)]), vec![])).await.unwrap();
    stack.stop().await;
}

#[tokio::test]
async fn a_delisted_goods_is_refused_on_an_order() {
    let stack = Stack::embedded().await;
    stack
        .sql
        .catalog()
        .upsert_goods(&GoodsRow {
            id: 3,
            store_id: well_known::MAIN_STORE,
            base_price: dec("25.00"),
            currency: "CNY".into(),
            status: GoodsStatus::Delisted,
        })
        .await
        .unwrap();
    let err = stack
        .detail()
        .await
        .preview_order(PreviewOrderRequest {
            context: Some(app("user-1")),
            lines: lines(&[(3, 1)]),
            coupon_ids: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    // The list path still shows it, flagged.
    let reply = stack
        .list()
        .await
        .batch_get_prices(BatchGetPricesRequest { goods_ids: vec![3], context: Some(app("user-1")) })
        .await
        .unwrap()
        .into_inner();
    assert!(reply.prices[0].delisted);
    stack.stop().await;
}

#[tokio::test]
async fn health_reflection_and_drain() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

    let mut config = pricing_tests::StackConfig::default();
    config.list.server.drain_grace_ms = 60_000;
    let stack = Stack::embedded_with(config).await;
    let mut health = HealthClient::new(channel(stack.list_addr).await);
    let status = |s: &str| HealthCheckRequest { service: s.into() };
    let serving = health.check(status("pricing.v1.ListPricing")).await.unwrap().into_inner().status;
    assert_eq!(serving, ServingStatus::Serving as i32);

    // Reflection lists the pricing services.
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut reflection = ServerReflectionClient::new(channel(stack.detail_addr).await);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = reflection.server_reflection_info(tokio_stream::iter(vec![req])).await.unwrap().into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) = stream.message().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"pricing.v1.DetailPricing".to_owned()), "{names:?}");

    // So does v1alpha, the only version the Python grpcio-reflection client,
    // older grpcurl and several GUI clients speak; and it resolves a symbol
    // to the file that defines it.
    {
        use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
        let mut reflection = ServerReflectionClient::new(channel(stack.list_addr).await);
        let reqs = vec![
            ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            },
            ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::FileContainingSymbol("pricing.v1.ListPricing".into())),
            },
        ];
        let mut stream = reflection.server_reflection_info(tokio_stream::iter(reqs)).await.unwrap().into_inner();
        let Some(MessageResponse::ListServicesResponse(list)) =
            stream.message().await.unwrap().unwrap().message_response
        else {
            panic!("expected a v1alpha service list");
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        assert!(names.contains(&"pricing.v1.ListPricing".to_owned()), "{names:?}");
        assert!(names.contains(&"grpc.health.v1.Health".to_owned()), "{names:?}");
        let Some(MessageResponse::FileDescriptorResponse(files)) =
            stream.message().await.unwrap().unwrap().message_response
        else {
            panic!("expected a v1alpha file descriptor");
        };
        assert!(!files.file_descriptor_proto.is_empty());
    }

    // On shutdown the list server reports NOT_SERVING during its drain grace
    // while still answering calls.
    stack.begin_shutdown();
    pricing_testkit::net::eventually("health to turn NOT_SERVING", Duration::from_secs(10), || {
        let mut health = health.clone();
        async move {
            let s = health.check(status("pricing.v1.ListPricing")).await.ok()?.into_inner().status;
            (s == ServingStatus::NotServing as i32).then_some(())
        }
    })
    .await;
    let mut list = stack.list().await;
    let still = list.batch_get_prices(BatchGetPricesRequest { goods_ids: vec![1], context: Some(app("user-1")) }).await;
    assert!(still.is_ok(), "calls are still answered while draining");
    // Metrics saw the calls, by method and code.
    let rendered = pricing_telemetry::prometheus().render();
    assert!(rendered.contains("pricing_grpc_requests_total"), "metrics rendered");
}

/// Whoever copies or backs up the database file alone after a clean stop
/// gets the whole catalogue: each server closes its pool on shutdown, and
/// SQLite checkpoints its write-ahead log into the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_leaves_the_whole_catalogue_in_the_database_file() {
    const GOODS: u64 = 300;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut list = pricing_list::ListConfig::default();
    list.source.embedded_path = dir.path().join("list.db");
    list.source.demo_goods = GOODS;
    list.server.metrics_listen = None;
    let mut detail = pricing_detail::DetailConfig::default();
    detail.source.embedded_path = dir.path().join("detail.db");
    detail.source.demo_goods = GOODS;
    detail.server.metrics_listen = None;
    detail.checkout.quote_secret = "test-secret".into();

    let stop = Shutdown::new();
    let list_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let detail_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let list_addr = list_listener.local_addr().unwrap();
    let list_task = tokio::spawn(pricing_list::serve(list_listener, list, stop.signal()));
    let detail_task = tokio::spawn(pricing_detail::serve(detail_listener, detail, stop.signal()));
    // Serving: the list server answers from its database.
    let client = pricing_proto::v1::list_pricing_client::ListPricingClient::new(channel(list_addr).await);
    let reply = pricing_testkit::net::eventually("the list server to answer", Duration::from_secs(60), || {
        let mut client = client.clone();
        async move {
            let request = BatchGetPricesRequest { goods_ids: vec![1, GOODS], context: Some(app("user-1")) };
            client.batch_get_prices(request).await.ok()
        }
    })
    .await;
    assert_eq!(reply.into_inner().prices.len(), 2);
    drop(client);

    stop.stop();
    list_task.await.unwrap().expect("list server");
    detail_task.await.unwrap().expect("detail server");
    for name in ["list.db", "detail.db"] {
        let db = dir.path().join(name);
        let wal = dir.path().join(format!("{name}-wal"));
        let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        assert_eq!(wal_len, 0, "{name}: the write-ahead log still holds {wal_len} bytes after a clean stop");
        let copy_dir = tempfile::tempdir().expect("temp dir");
        let copy = copy_dir.path().join("copy.db");
        std::fs::copy(&db, &copy).expect("copy the database file alone");
        let options =
            pricing_store_sql::SqlOptions { statement_timeout: Duration::from_secs(60), ..Default::default() };
        let store = pricing_store_sql::SqlStore::open_embedded_with(&copy, options).await.expect("open the copy");
        let ids: Vec<u64> = (1..=GOODS).collect();
        assert_eq!(store.load(&ids).await.unwrap().len(), GOODS as usize, "{name} alone holds every goods");
        store.close().await;
    }
}
