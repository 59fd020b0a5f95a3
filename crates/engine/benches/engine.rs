//! Engine hot paths: the list path's best price among 8 candidates, an order
//! line, and the checkout's 10-line cart with 3 stacked promotions.
//!
//! Run: `cargo bench -p pricing-engine --bench engine -- --quick`
//! Targets (task): best price <= 300 ns, 10-line cart <= 2 us.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use pricing_engine::{
    CallerContext, CartLine, Drops, Promotion, PromotionKind, PromotionTier, RemainderRule, Scope, allocate,
    best_price, best_price_counted, price_cart, price_units,
};
use pricing_record::{Activity, ActivityKind, ActivityStatus, Channel, Channels, GoodsRecord, GoodsStatus};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

const NOW: i64 = 1_700_000_000_000;

/// A goods with 8 activities as a busy record looks: 5 eligible of every
/// kind (one with a per-user limit), 3 dropped (ended, wrong channel, city).
fn record() -> GoodsRecord {
    let base = |id: u64, kind: ActivityKind, value: Decimal| Activity {
        id,
        goods_id: 1001,
        kind,
        value,
        start_ms: NOW - 86_400_000,
        end_ms: NOW + 86_400_000,
        channels: Channels::ALL,
        city_ids: vec![],
        store_ids: vec![],
        new_user_only: false,
        min_member_level: 0,
        stock_left: Some(500),
        per_user_limit: 0,
        priority: 0,
        status: ActivityStatus::Online,
        deleted: false,
    };
    let activities = vec![
        base(1, ActivityKind::Discount, dec!(85)),
        base(2, ActivityKind::AmountOff, dec!(20)),
        Activity { per_user_limit: 2, ..base(3, ActivityKind::FlashSale, dec!(79.9)) },
        base(4, ActivityKind::Subsidy, dec!(89)),
        Activity { end_ms: NOW - 1, ..base(5, ActivityKind::FlashSale, dec!(59)) },
        Activity { channels: Channels::NONE.with(Channel::Pc), ..base(6, ActivityKind::Discount, dec!(70)) },
        Activity { city_ids: vec![5, 6, 7], ..base(7, ActivityKind::AmountOff, dec!(30)) },
        Activity { priority: 3, ..base(8, ActivityKind::Discount, dec!(88)) },
    ];
    GoodsRecord {
        goods_id: 1001,
        version: 1,
        store_id: 10,
        base_price: dec!(99.90),
        currency: "CNY".into(),
        status: GoodsStatus::OnSale,
        activities,
    }
}

fn ctx() -> CallerContext {
    CallerContext {
        pin: "jd_user".into(),
        store_id: Some(10),
        city_id: Some(1),
        channel: Channel::App,
        new_user: false,
        member_level: 2,
    }
}

fn cart() -> (Vec<CartLine>, Vec<Promotion>, Vec<Promotion>) {
    let lines = (0..10u64)
        .map(|i| CartLine { goods_id: 100 + i, store_id: 10 + i % 2, amount: Decimal::new(1999 + 1337 * i as i64, 2) })
        .collect();
    let promotion = |id, kind, scope, tiers: &[(Decimal, Decimal)]| Promotion {
        id,
        kind,
        scope,
        tiers: tiers.iter().map(|&(threshold, value)| PromotionTier { threshold, value }).collect(),
        eligible_goods: None,
        start_ms: NOW - 1,
        end_ms: NOW + 1,
        description: String::new(),
    };
    let promotions = vec![
        promotion(
            1,
            PromotionKind::ThresholdAmountOff,
            Scope::Store(10),
            &[(dec!(99), dec!(9)), (dec!(199), dec!(25))],
        ),
        promotion(
            2,
            PromotionKind::ThresholdPercentOff,
            Scope::Platform,
            &[(dec!(300), dec!(95)), (dec!(500), dec!(90))],
        ),
    ];
    let coupons = vec![promotion(3, PromotionKind::Coupon, Scope::Platform, &[(dec!(100), dec!(10))])];
    (lines, promotions, coupons)
}

fn benches(c: &mut Criterion) {
    let record = record();
    let ctx = ctx();
    c.bench_function("best_price/8_candidates", |b| {
        b.iter(|| best_price(black_box(&record), black_box(&ctx), black_box(NOW), false))
    });
    c.bench_function("best_price_counted/8_candidates", |b| {
        let mut drops = Drops::default();
        b.iter(|| best_price_counted(black_box(&record), black_box(&ctx), black_box(NOW), false, black_box(&mut drops)))
    });
    c.bench_function("best_price/8_candidates_explain", |b| {
        b.iter(|| best_price(black_box(&record), black_box(&ctx), black_box(NOW), true))
    });
    c.bench_function("price_units/8_candidates_qty_5", |b| {
        b.iter(|| price_units(black_box(&record), black_box(&ctx), black_box(NOW), black_box(5)))
    });

    let (lines, promotions, coupons) = cart();
    let amounts: Vec<Decimal> = lines.iter().map(|l| l.amount).collect();
    c.bench_function("allocate/10_lines", |b| {
        b.iter(|| allocate(black_box(dec!(37.77)), black_box(&amounts), RemainderRule::LargestLine))
    });
    // The cart really stacks all three, or the figure would flatter.
    let priced = price_cart(&lines, &promotions, &coupons, NOW, RemainderRule::LargestLine).expect("cart prices");
    assert_eq!(priced.applied.len(), 3, "{:?}", priced.unused);
    c.bench_function("price_cart/10_lines_3_promotions", |b| {
        b.iter(|| {
            price_cart(black_box(&lines), black_box(&promotions), black_box(&coupons), NOW, RemainderRule::LargestLine)
        })
    });
}

criterion_group!(engine, benches);
criterion_main!(engine);
