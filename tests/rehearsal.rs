//! The sale-day rehearsal (`pricing-projector rehearse`) on the embedded demo
//! and on MariaDB: its distribution, its breaches and its price changes
//! agree with pricing each goods one by one (over gRPC from a list server
//! whose clock stands at the instant, and through the engine record by record).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use pricing_engine::CallerContext;
use pricing_engine::guard::{GuardRules, best_price_guarded, kind_label};
use pricing_projector::Progress;
use pricing_projector::rehearse::{band, rehearse, winner_kind};
use pricing_proto::v1::{self, BatchGetPricesRequest};
use pricing_record::{Activity, ActivityKind, Channel, Clock, ManualClock};
use pricing_store_sql::demo::well_known::PLAIN_GOODS;
use pricing_store_sql::{DemoOptions, SqlStore};
use pricing_tests::{Stack, StackConfig, app};
use rust_decimal::Decimal;

const DAY_MS: i64 = 86_400_000;
/// A sale activity the test adds: it starts exactly at the rehearsed instant.
const SALE_ACTIVITY: u64 = 990_001;
const FAIR_ACTIVITY: u64 = 990_002;
const GUARD: &str = "[guard]\nmode = 'block'\n[guard.rules.flash_sale]\nfloor_share_basis_points = 1000\n";

fn rules() -> GuardRules {
    pricing_control::ControlConfig::parse(&format!("version = 1\n{GUARD}")).unwrap().guard_rules().clone()
}

/// Two flash sales on the plain goods (25.00) from `at` for an hour: one at
/// 1.00, which breaks the 10% floor (blocked), and one at 20.00, the price
/// served from `at`.
async fn add_sale(sql: &SqlStore, at: i64) {
    for (id, price) in [(SALE_ACTIVITY, Decimal::ONE), (FAIR_ACTIVITY, Decimal::from(20))] {
        let sale = Activity::open(id, PLAIN_GOODS, ActivityKind::FlashSale, price, at, at + 3_600_000);
        sql.catalog().upsert_activity(&sale).await.unwrap();
    }
}

/// The rehearsed instant: tomorrow, on a whole second.
fn instant() -> i64 {
    (Clock::system().now_ms() + DAY_MS) / 1000 * 1000
}

type Distribution = BTreeMap<(&'static str, &'static str), u64>;

fn kind_of(kind: i32) -> &'static str {
    match v1::ActivityKind::try_from(kind).unwrap() {
        v1::ActivityKind::FlashSale => "flash_sale",
        v1::ActivityKind::Discount => "discount",
        v1::ActivityKind::AmountOff => "amount_off",
        v1::ActivityKind::Subsidy => "subsidy",
        other => panic!("unexpected kind {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rehearsal_on_the_embedded_demo_agrees_with_the_list_server_goods_by_goods() {
    let at = instant();
    let clock = ManualClock::new(at);
    let mut config = StackConfig {
        control: Some(pricing_control::ControlConfig::parse(&format!("version = 1\n{GUARD}")).unwrap()),
        ..StackConfig::default()
    };
    config.list.clock = clock.clock();
    let stack = Stack::embedded_with(config).await;
    add_sale(&stack.sql, at).await;

    let ctx = CallerContext::anonymous(Channel::App);
    let report = rehearse(&stack.sql, &ctx, &rules(), at, 500, &Progress::logs_only()).await.unwrap();
    print!("{}", report.table());
    assert!(report.priced > 100, "{report:?}");
    let plain = report.changes.iter().find(|c| c.goods_id == PLAIN_GOODS).expect("the added sales change the price");
    assert_eq!(
        (plain.before, plain.after),
        (Decimal::from(25), Decimal::from(20)),
        "the blocked 1.00 is never the price"
    );
    assert!(report.breaches.iter().any(|b| b.activity_id == SALE_ACTIVITY), "the 1.00 sale breaks the floor");

    // Every goods id, one call each, at the instant and 1 ms before.
    let ids: Vec<u64> = (1..=report.priced + report.deleted + report.unpriceable.len() as u64 + 10).collect();
    let ask = |ids: Vec<u64>| {
        let stack = &stack;
        async move {
            let client = stack.list().await;
            futures::stream::iter(ids)
                .map(|id| {
                    let mut client = client.clone();
                    async move {
                        let reply = client
                            .batch_get_prices(BatchGetPricesRequest {
                                goods_ids: vec![id],
                                context: Some(app("rehearsal")),
                            })
                            .await
                            .unwrap()
                            .into_inner();
                        reply.prices.into_iter().next()
                    }
                })
                .buffer_unordered(16)
                .filter_map(|p| async move { p })
                .collect::<Vec<_>>()
                .await
        }
    };
    let at_instant = ask(ids.clone()).await;
    let mut distribution = Distribution::new();
    for p in &at_instant {
        let original: Decimal = p.original_price.parse().unwrap();
        let price: Decimal = p.activity_price.parse().unwrap();
        let kind = p.activity.as_ref().map_or("none", |a| kind_of(a.kind));
        *distribution.entry((kind, band(original, price))).or_default() += 1;
    }
    assert_eq!(at_instant.len() as u64, report.priced, "goods priced");
    assert_eq!(distribution, report.by_kind_band, "distribution by kind and band");

    clock.set(at - 1);
    let before = ask(ids).await;
    let before: BTreeMap<u64, String> = before.into_iter().map(|p| (p.goods_id, p.activity_price)).collect();
    let changed: BTreeSet<u64> =
        at_instant.iter().filter(|p| before.get(&p.goods_id) != Some(&p.activity_price)).map(|p| p.goods_id).collect();
    let rehearsed: BTreeSet<u64> = report.changes.iter().map(|c| c.goods_id).collect();
    assert_eq!(changed, rehearsed, "goods whose price changes at the instant");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rehearsal_on_mariadb_agrees_with_pricing_each_record() {
    let url = pricing_testkit::mysql::fresh_database("rehearsal").await;
    let sql = SqlStore::connect(&url).await.unwrap();
    pricing_store_sql::demo::seed(&sql, DemoOptions { goods: 600, ..DemoOptions::default() }).await.unwrap();
    let at = instant();
    add_sale(&sql, at).await;
    let ctx = CallerContext::anonymous(Channel::App);
    let rules = rules();
    let report = rehearse(&sql, &ctx, &rules, at, 97, &Progress::logs_only()).await.unwrap();

    let mut distribution = Distribution::new();
    let (mut priced, mut deleted, mut changes, mut breaches) = (0, 0, BTreeSet::new(), Vec::new());
    for id in 1..=610u64 {
        let Some(record) = sql.load(&[id]).await.unwrap().pop() else { continue };
        if record.is_tombstone() {
            deleted += 1;
            continue;
        }
        let (now, _) = best_price_guarded(&record, &ctx, at, false, &rules).unwrap();
        let (then, _) = best_price_guarded(&record, &ctx, at - 1, false, &rules).unwrap();
        priced += 1;
        *distribution.entry((winner_kind(&now), band(now.original, now.price))).or_default() += 1;
        if now.price != then.price {
            changes.insert(id);
        }
        breaches.extend(
            pricing_engine::guard::breaches(&record, &rules, at).into_iter().map(|b| (b.goods_id, b.activity_id)),
        );
    }
    assert_eq!((report.priced, report.deleted), (priced, deleted));
    assert_eq!(report.by_kind_band, distribution);
    assert_eq!(report.changes.iter().map(|c| c.goods_id).collect::<BTreeSet<_>>(), changes);
    assert!(changes.contains(&PLAIN_GOODS));
    assert_eq!(report.breaches.iter().map(|b| (b.goods_id, b.activity_id)).collect::<Vec<_>>(), breaches);
    assert!(breaches.contains(&(PLAIN_GOODS, SALE_ACTIVITY)));
    assert!(report.by_kind_band.keys().all(|(k, _)| {
        *k == "none"
            || [ActivityKind::FlashSale, ActivityKind::Discount, ActivityKind::AmountOff, ActivityKind::Subsidy]
                .iter()
                .any(|x| kind_label(*x) == *k)
    }));
    sql.close().await;
}
