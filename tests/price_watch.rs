//! Watching the prices themselves (issue 15): the result metrics
//! (`pricing_price_answers_total`, `pricing_price_discount_basis_points`) and
//! the process metric (`pricing_engine_candidates_total`) move as they
//! should on every path, over real gRPC, on a manual clock: a flash sale in
//! its window counts in its depth band on the list, detail, checkout and
//! order paths; before its window it is a `not_started` drop and the lesser
//! activity that wins meanwhile is later `beaten`; a city-scoped activity
//! asked from another city is a `city` drop.
//!
//! The only test of its binary: it reads the process-wide recorder and
//! asserts exact increments, which no other test can move.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

use pricing_proto::v1::{self, BatchGetPricesRequest, GetGoodsPriceRequest, PreviewOrderRequest, PriceOrderRequest};
use pricing_record::{Activity, ActivityKind, GoodsStatus, ManualClock};
use pricing_store_sql::GoodsRow;
use pricing_tests::real_stack::{counter, gauge};
use pricing_tests::{Stack, StackConfig, app, dec, lines};

/// The instant the sale starts: fixed, far from the real clock.
const T: i64 = 1_900_000_000_000;
const HOUR: i64 = 3_600_000;
/// 100.00; a flash sale at 60.00 (40% off) from T, 10.00 off all along.
const SALE_GOODS: u64 = 910_001;
/// 50.00; 20% off in city 5 only.
const CITY_GOODS: u64 = 910_002;
const STORE: u64 = 78;
const CITY: u64 = 5;

async fn stack_on(clock: &ManualClock) -> Stack {
    let stack = Stack::embedded_with(StackConfig::on_clock(clock)).await;
    let catalog = stack.sql.catalog();
    for (id, price) in [(SALE_GOODS, "100.00"), (CITY_GOODS, "50.00")] {
        let goods = GoodsRow {
            id,
            store_id: STORE,
            base_price: dec(price),
            currency: "CNY".into(),
            status: GoodsStatus::OnSale,
        };
        catalog.upsert_goods(&goods).await.unwrap();
    }
    let activities = [
        Activity::open(910_101, SALE_GOODS, ActivityKind::FlashSale, dec("60.00"), T, T + HOUR),
        Activity::open(910_102, SALE_GOODS, ActivityKind::AmountOff, dec("10.00"), T - HOUR, T + HOUR),
        Activity {
            city_ids: vec![CITY],
            ..Activity::open(910_103, CITY_GOODS, ActivityKind::Discount, dec("80"), T - HOUR, T + HOUR)
        },
    ];
    for activity in &activities {
        catalog.upsert_activity(activity).await.unwrap();
    }
    stack
}

fn in_city(city_id: u64) -> v1::CallerContext {
    v1::CallerContext { city_id, ..app("watcher") }
}

/// Answers counted for the app channel on `path`, by kind and band (any tier).
fn answers(path: &str, kind: &str, band: &str) -> u64 {
    counter("pricing_price_answers_total", &[("path", path), ("kind", kind), ("channel", "app"), ("band", band)])
}

fn candidates(path: &str, reason: &str) -> u64 {
    counter("pricing_engine_candidates_total", &[("path", path), ("reason", reason)])
}

/// Every series this test reads, to compare before and after a step.
fn snapshot() -> Vec<u64> {
    let mut values = Vec::new();
    for path in ["list", "detail", "checkout", "order"] {
        for (kind, band) in [("none", "none"), ("amount_off", "10_30"), ("flash_sale", "30_50"), ("discount", "10_30")]
        {
            values.push(answers(path, kind, band));
        }
        for reason in ["not_started", "ended", "city", "beaten", "channel", "store"] {
            values.push(candidates(path, reason));
        }
    }
    values
}

/// The position of a series in [`snapshot`].
fn answer_slot(path: &str, kind: &str) -> usize {
    let paths = ["list", "detail", "checkout", "order"];
    let kinds = ["none", "amount_off", "flash_sale", "discount"];
    let p = paths.iter().position(|x| *x == path).unwrap();
    p * 10 + kinds.iter().position(|x| *x == kind).unwrap()
}

fn candidate_slot(path: &str, reason: &str) -> usize {
    let paths = ["list", "detail", "checkout", "order"];
    let reasons = ["not_started", "ended", "city", "beaten", "channel", "store"];
    let p = paths.iter().position(|x| *x == path).unwrap();
    p * 10 + 4 + reasons.iter().position(|x| *x == reason).unwrap()
}

/// The increments since `before`: (slot, increment) of every series that moved.
fn moved_since(before: &[u64]) -> Vec<(usize, u64)> {
    before.iter().zip(snapshot()).enumerate().filter(|(_, (b, a))| a != *b).map(|(i, (b, a))| (i, a - b)).collect()
}

fn expect(mut moved: Vec<(usize, u64)>) -> Vec<(usize, u64)> {
    moved.sort_unstable();
    moved
}

async fn list_price(stack: &Stack, goods_id: u64, context: v1::CallerContext) -> v1::GoodsPrice {
    let reply = stack
        .list()
        .await
        .batch_get_prices(BatchGetPricesRequest { goods_ids: vec![goods_id], context: Some(context) })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.prices.len(), 1, "{reply:?}");
    reply.prices[0].clone()
}

async fn detail_price(stack: &Stack, goods_id: u64, context: v1::CallerContext) -> v1::GoodsPrice {
    let reply = stack
        .detail()
        .await
        .get_goods_price(GetGoodsPriceRequest { goods_id, context: Some(context) })
        .await
        .unwrap()
        .into_inner();
    reply.price.unwrap()
}

#[tokio::test]
async fn price_result_and_process_metrics_move_as_they_should() {
    let clock = ManualClock::new(T - 1);
    let stack = stack_on(&clock).await;

    // Before the sale: 10.00 off wins (10% off: band 10_30, lower edge
    // inclusive); the flash sale is a not_started drop.
    let before = snapshot();
    assert_eq!(list_price(&stack, SALE_GOODS, app("watcher")).await.activity_price, "90.00");
    assert_eq!(detail_price(&stack, SALE_GOODS, app("watcher")).await.activity_price, "90.00");
    assert_eq!(
        moved_since(&before),
        expect(vec![
            (answer_slot("list", "amount_off"), 1),
            (candidate_slot("list", "not_started"), 1),
            (answer_slot("detail", "amount_off"), 1),
            (candidate_slot("detail", "not_started"), 1),
        ])
    );

    // T: the flash sale (40% off: band 30_50) on every path; the amount off
    // is beaten by it.
    clock.set(T);
    let (sum_before, count_before) = discount_histogram("list", "flash_sale");
    let before = snapshot();
    let memory = |path| {
        counter(
            "pricing_price_answers_total",
            &[("path", path), ("kind", "flash_sale"), ("band", "30_50"), ("tier", "memory")],
        )
    };
    let from_memory = memory("list");
    let listed = list_price(&stack, SALE_GOODS, app("watcher")).await;
    assert_eq!((listed.activity_price.as_str(), listed.tier), ("60.00", v1::Tier::Memory as i32));
    assert_eq!(memory("list"), from_memory + 1, "counted under the tier that answered");
    assert_eq!(detail_price(&stack, SALE_GOODS, app("watcher")).await.activity_price, "60.00");
    let preview = stack
        .detail()
        .await
        .preview_order(PreviewOrderRequest {
            context: Some(app("watcher")),
            lines: lines(&[(SALE_GOODS, 2)]),
            coupon_ids: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(preview.lines[0].unit_activity_price, "60.00");
    let placed = stack
        .detail()
        .await
        .price_order(PriceOrderRequest {
            context: Some(app("watcher")),
            lines: lines(&[(SALE_GOODS, 2)]),
            coupon_ids: vec![],
            preview_quote_id: preview.quote_id.clone(),
            expected_payable_total: preview.payable_total.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(placed.lines[0].unit_activity_price, "60.00");
    let mut moved = Vec::new();
    for path in ["list", "detail", "checkout", "order"] {
        moved.push((answer_slot(path, "flash_sale"), 1));
        moved.push((candidate_slot(path, "beaten"), 1));
    }
    assert_eq!(moved_since(&before), expect(moved));
    let (sum, count) = discount_histogram("list", "flash_sale");
    assert_eq!((sum - sum_before, count - count_before), (4000.0, 1.0), "the discount in basis points");

    // The city-scoped 20% off: asked from another city it is a city drop
    // and the original price; from its city it counts in band 10_30.
    let before = snapshot();
    assert_eq!(list_price(&stack, CITY_GOODS, in_city(CITY + 1)).await.activity_price, "50.00");
    assert_eq!(detail_price(&stack, CITY_GOODS, in_city(CITY + 1)).await.activity_price, "50.00");
    assert_eq!(
        moved_since(&before),
        expect(vec![
            (answer_slot("list", "none"), 1),
            (candidate_slot("list", "city"), 1),
            (answer_slot("detail", "none"), 1),
            (candidate_slot("detail", "city"), 1),
        ])
    );
    let before = snapshot();
    assert_eq!(list_price(&stack, CITY_GOODS, in_city(CITY)).await.activity_price, "40.00");
    assert_eq!(moved_since(&before), vec![(answer_slot("list", "discount"), 1)]);

    // The window's end: the sale and the amount off are ended drops.
    clock.set(T + HOUR);
    let before = snapshot();
    assert_eq!(list_price(&stack, SALE_GOODS, app("watcher")).await.activity_price, "100.00");
    assert_eq!(
        moved_since(&before),
        expect(vec![(answer_slot("list", "none"), 1), (candidate_slot("list", "ended"), 2)])
    );
    stack.stop().await;
}

/// The sum and count of the discount histogram of one path and kind.
fn discount_histogram(path: &str, kind: &str) -> (f64, f64) {
    let labels = [("path", path), ("kind", kind)];
    (
        gauge("pricing_price_discount_basis_points_sum", &labels),
        gauge("pricing_price_discount_basis_points_count", &labels),
    )
}
