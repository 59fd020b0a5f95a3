//! The price guard over real gRPC on the embedded demo: in `block` mode the
//! servers never answer the guarded price (list, detail page, checkout
//! preview), in `alert` mode they answer it and count it. The projector's
//! report of the same breach is tested in services/projector/tests/guard.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

use pricing_proto::v1::{BatchGetPricesRequest, CallerContext, GetGoodsPriceRequest, PreviewOrderRequest};
use pricing_store_sql::demo::well_known::{FLASH_SALE_ACTIVITY, FLASH_SALE_GOODS};
use pricing_tests::real_stack::counter;
use pricing_tests::{Stack, StackConfig, app, lines};

/// The demo's flash sale: 59.90 sold at 39.90.
const ORIGINAL: &str = "59.90";
const GUARDED: &str = "39.90";

/// Both servers on the embedded demo, steered by a control file holding `guard`.
async fn stack_with_guard(guard: &str) -> Stack {
    pricing_telemetry::prometheus();
    let config = StackConfig {
        control: Some(pricing_control::ControlConfig::parse(&format!("version = 1\n{guard}")).unwrap()),
        ..StackConfig::default()
    };
    Stack::embedded_with(config).await
}

fn breaches(source: &str, rule: &str, mode: &str) -> u64 {
    counter(
        "pricing_guard_breaches_total",
        &[("source", source), ("kind", "flash_sale"), ("rule", rule), ("mode", mode)],
    )
}

#[tokio::test]
async fn block_mode_never_answers_the_guarded_price() {
    let stack =
        stack_with_guard("[guard]\nmode = 'block'\n[guard.rules.flash_sale]\nfloor_share_basis_points = 8000\n").await;
    let (list_before, detail_before) =
        (breaches("list", "floor_share", "block"), breaches("detail", "floor_share", "block"));

    let mut list = stack.list().await;
    let explained = CallerContext { explain: true, ..app("guard-block") };
    let reply = list
        .batch_get_prices(BatchGetPricesRequest { goods_ids: vec![FLASH_SALE_GOODS], context: Some(explained.clone()) })
        .await
        .unwrap()
        .into_inner();
    let price = &reply.prices[0];
    assert_eq!(price.activity_price, ORIGINAL, "the original: the flash sale is the only activity");
    assert!(price.activity.is_none(), "{price:?}");
    assert_eq!(price.trace.len(), 1);
    let entry = &price.trace[0];
    assert_eq!(
        (entry.activity_id, entry.outcome.as_str(), entry.reason.as_str(), entry.price.as_str()),
        (FLASH_SALE_ACTIVITY, "blocked", "guard_blocked:floor_share", ""),
        "the explain trace says the guard took the activity out"
    );
    assert!(!format!("{reply:?}").contains(GUARDED), "the guarded price is never answered: {reply:?}");

    let mut detail = stack.detail().await;
    let page = detail
        .get_goods_price(GetGoodsPriceRequest { goods_id: FLASH_SALE_GOODS, context: Some(explained.clone()) })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.price.as_ref().unwrap().activity_price, ORIGINAL);
    let offer = page.activities.iter().find(|a| a.id == FLASH_SALE_ACTIVITY).expect("the activity is listed");
    assert!(!offer.applicable);
    assert_eq!(offer.reason, "guard_blocked:floor_share");
    assert!(!format!("{page:?}").contains(GUARDED), "{page:?}");

    let preview = detail
        .preview_order(PreviewOrderRequest {
            lines: lines(&[(FLASH_SALE_GOODS, 2)]),
            context: Some(explained),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!format!("{preview:?}").contains(GUARDED), "{preview:?}");
    assert!(format!("{preview:?}").contains("119.80"), "two units at the original: {preview:?}");

    assert!(breaches("list", "floor_share", "block") > list_before, "the list server counts the block");
    assert!(
        breaches("detail", "floor_share", "block") >= detail_before + 2,
        "the detail page and the preview count it"
    );
    stack.stop().await;
}

#[tokio::test]
async fn alert_mode_answers_the_price_and_counts_it() {
    // A different rule from the block test's, so that its counts are this test's own.
    let stack = stack_with_guard("[guard]\nmode = 'alert'\n[guard.rules.flash_sale]\nmin_price = '40.00'\n").await;
    let (list_before, detail_before) =
        (breaches("list", "min_price", "alert"), breaches("detail", "min_price", "alert"));

    let mut list = stack.list().await;
    let reply = list
        .batch_get_prices(BatchGetPricesRequest {
            goods_ids: vec![FLASH_SALE_GOODS],
            context: Some(app("guard-alert")),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.prices[0].activity_price, GUARDED);
    assert_eq!(reply.prices[0].activity.as_ref().map(|a| a.id), Some(FLASH_SALE_ACTIVITY));
    assert_eq!(breaches("list", "min_price", "alert"), list_before + 1);

    let mut detail = stack.detail().await;
    let page = detail
        .get_goods_price(GetGoodsPriceRequest { goods_id: FLASH_SALE_GOODS, context: Some(app("guard-alert")) })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.price.unwrap().activity_price, GUARDED);
    assert_eq!(breaches("detail", "min_price", "alert"), detail_before + 1);
    stack.stop().await;
}
