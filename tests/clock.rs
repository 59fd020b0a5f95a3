//! "Now" is injected: both servers on a manual clock, called over real gRPC.
//! A flash sale (and a cart promotion) whose window opens at T: the regular
//! price at T - 1 ms, the sale price at T exactly, with no re-projection and
//! whatever the servers cached before T (the list server's record cache,
//! the detail server's promotions cache for previews).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

use pricing_proto::v1::{self, BatchGetPricesRequest, GetGoodsPriceRequest, PreviewOrderRequest, PriceOrderRequest};
use pricing_record::{Activity, ActivityKind, GoodsStatus, ManualClock};
use pricing_store_sql::{GoodsRow, PromotionKind, PromotionRow, PromotionStatus, PromotionTier, ScopeKind};
use pricing_tests::{Stack, StackConfig, app, dec, lines};

/// The instant the sale starts: fixed, far from the real clock.
const T: i64 = 1_900_000_000_000;
const HOUR: i64 = 3_600_000;
const GOODS: u64 = 900_001;
/// A store of no demo promotion.
const STORE: u64 = 77;
const SALE: u64 = 900_101;
const PROMOTION: u64 = 900_201;

async fn stack_on(clock: &ManualClock) -> Stack {
    let stack = Stack::embedded_with(StackConfig::on_clock(clock)).await;
    let catalog = stack.sql.catalog();
    let goods = GoodsRow {
        id: GOODS,
        store_id: STORE,
        base_price: dec("100.00"),
        currency: "CNY".into(),
        status: GoodsStatus::OnSale,
    };
    catalog.upsert_goods(&goods).await.unwrap();
    let sale = Activity::open(SALE, GOODS, ActivityKind::FlashSale, dec("60.00"), T, T + HOUR);
    catalog.upsert_activity(&sale).await.unwrap();
    let promotion = PromotionRow {
        id: PROMOTION,
        kind: PromotionKind::ThresholdAmountOff,
        scope: ScopeKind::Store,
        store_id: STORE,
        name: "spend 50 get 5 off".into(),
        tiers: vec![PromotionTier { threshold: dec("50.00"), value: dec("5.00") }],
        goods_ids: Vec::new(),
        start_ms: T,
        end_ms: T + HOUR,
        status: PromotionStatus::Online,
        version: 0,
    };
    catalog.upsert_promotion(&promotion).await.unwrap();
    stack
}

async fn list_price(stack: &Stack) -> v1::GoodsPrice {
    let reply = stack
        .list()
        .await
        .batch_get_prices(BatchGetPricesRequest { goods_ids: vec![GOODS], context: Some(app("user-1")) })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.prices.len(), 1, "{reply:?}");
    reply.prices[0].clone()
}

async fn detail_price(stack: &Stack) -> v1::GetGoodsPriceResponse {
    stack
        .detail()
        .await
        .get_goods_price(GetGoodsPriceRequest { goods_id: GOODS, context: Some(app("user-1")) })
        .await
        .unwrap()
        .into_inner()
}

async fn preview(stack: &Stack) -> v1::OrderPricing {
    stack
        .detail()
        .await
        .preview_order(PreviewOrderRequest {
            context: Some(app("user-1")),
            lines: lines(&[(GOODS, 1)]),
            coupon_ids: vec![],
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn a_flash_sale_starts_at_its_instant_on_both_servers() {
    let clock = ManualClock::new(T - 1);
    let stack = stack_on(&clock).await;

    // T - 1 ms: the regular price everywhere; the sale is listed as not started.
    let before = list_price(&stack).await;
    assert_eq!((before.activity_price.as_str(), before.activity.is_none()), ("100.00", true), "{before:?}");
    let detail = detail_price(&stack).await;
    assert_eq!(detail.price.as_ref().map(|p| p.activity_price.as_str()), Some("100.00"));
    let offer = detail.activities.iter().find(|a| a.id == SALE).expect("the sale is listed");
    assert!(!offer.applicable, "{offer:?}");
    assert_eq!(offer.reason, "window_not_started");
    let order = preview(&stack).await;
    assert_eq!((order.payable_total.as_str(), order.promotions.len()), ("100.00", 0), "{order:?}");

    // T exactly: the sale price, from the record the list server cached at T - 1.
    clock.set(T);
    let at = list_price(&stack).await;
    assert_eq!(at.activity_price, "60.00", "{at:?}");
    assert_eq!(at.activity.as_ref().map(|a| a.id), Some(SALE));
    assert_eq!(at.tier, v1::Tier::Memory as i32, "the record cached before T, priced at T");
    assert_eq!(at.version, before.version, "no re-projection");
    let detail = detail_price(&stack).await;
    assert_eq!(detail.price.as_ref().map(|p| p.activity_price.as_str()), Some("60.00"));
    assert!(detail.activities.iter().any(|a| a.id == SALE && a.applicable));

    // The preview's promotions were cached at T - 1 (for well under their
    // lifetime): the promotion that starts at T applies at T all the same.
    let order = preview(&stack).await;
    assert_eq!(order.lines[0].unit_activity_price, "60.00");
    assert_eq!(order.promotions.iter().map(|p| p.id).collect::<Vec<_>>(), vec![PROMOTION], "{order:?}");
    assert_eq!(order.payable_total, "55.00");
    let placed = stack
        .detail()
        .await
        .price_order(PriceOrderRequest {
            context: Some(app("user-1")),
            lines: lines(&[(GOODS, 1)]),
            coupon_ids: vec![],
            preview_quote_id: order.quote_id.clone(),
            expected_payable_total: "55.00".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(placed.payable_total, "55.00");
    assert!(!placed.payable_changed && placed.lines.iter().all(|l| !l.price_changed));
    assert_eq!(order.quote_expires_unix_ms, T + 15 * 60 * 1000, "quote expiry by the same clock");

    // The window's end is exclusive: T + 1 h is the regular price again.
    clock.set(T + HOUR);
    assert_eq!(list_price(&stack).await.activity_price, "100.00");
    assert_eq!(preview(&stack).await.payable_total, "100.00");
    stack.stop().await;
}
