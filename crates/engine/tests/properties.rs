//! Property tests for the money promises (DESIGN.md "Promises / Money"):
//! allocations sum exactly, payable never negative, activity prices within
//! [0.01, original], same input same output, refunds return what was paid,
//! and bad input is a typed error or a trace reason, never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

use pricing_engine::{
    AllocationError, CallerContext, CartLine, Outcome, PricingError, Promotion, PromotionKind, PromotionTier,
    RemainderRule, Scope, allocate, best_price, price_cart, price_units, refund_line,
};
use pricing_record::{Activity, ActivityKind, ActivityStatus, Channel, Channels, GoodsRecord, GoodsStatus};
use proptest::prelude::*;
use rust_decimal::Decimal;

const NOW: i64 = 1_700_000_000_000;
const GOODS: u64 = 42;

fn fen(max: i64) -> impl Strategy<Value = Decimal> {
    (0..=max).prop_map(|f| Decimal::new(f, 2))
}

/// Any decimal at all: negative, many places, huge. For bad-input tests.
fn wild_decimal() -> impl Strategy<Value = Decimal> {
    prop_oneof![
        3 => fen(100_000),
        1 => (any::<i64>(), 0u32..=8).prop_map(|(m, s)| Decimal::new(m, s)),
        1 => Just(Decimal::MAX),
        1 => Just(Decimal::MIN),
    ]
}

fn rule() -> impl Strategy<Value = RemainderRule> {
    prop_oneof![Just(RemainderRule::LargestLine), Just(RemainderRule::LargestRemainder)]
}

fn kind() -> impl Strategy<Value = ActivityKind> {
    prop_oneof![
        Just(ActivityKind::FlashSale),
        Just(ActivityKind::Discount),
        Just(ActivityKind::AmountOff),
        Just(ActivityKind::Subsidy),
    ]
}

fn status() -> impl Strategy<Value = ActivityStatus> {
    prop_oneof![8 => Just(ActivityStatus::Online), 1 => Just(ActivityStatus::Draft), 1 => Just(ActivityStatus::Offline)]
}

fn activity() -> impl Strategy<Value = Activity> {
    let what = (1u64..8, prop_oneof![9 => Just(GOODS), 1 => Just(GOODS + 1)], kind(), wild_decimal());
    let when = (-3_000i64..3_000, -1_000i64..6_000, 0u8..16);
    let who =
        (proptest::collection::vec(1u64..4, 0..3), proptest::collection::vec(1u64..4, 0..3), any::<bool>(), 0u32..3);
    let how = (proptest::option::of(0u64..5), 0u32..4, -2i32..3, status(), proptest::bool::weighted(0.1));
    (what, when, who, how).prop_map(
        |(
            (id, goods_id, kind, value),
            (start, length, channel_bits),
            (city_ids, store_ids, new_user_only, min_member_level),
            (stock_left, per_user_limit, priority, status, deleted),
        )| Activity {
            id,
            goods_id,
            kind,
            value,
            start_ms: NOW + start,
            end_ms: NOW + start + length,
            channels: Channels::from_bits(channel_bits).unwrap_or(Channels::ALL),
            city_ids,
            store_ids,
            new_user_only,
            min_member_level,
            stock_left,
            per_user_limit,
            priority,
            status,
            deleted,
        },
    )
}

fn record() -> impl Strategy<Value = GoodsRecord> {
    let base = prop_oneof![9 => fen(1_000_000).prop_map(|p| p.max(Decimal::new(1, 2))), 1 => wild_decimal()];
    let status =
        prop_oneof![8 => Just(GoodsStatus::OnSale), 1 => Just(GoodsStatus::Delisted), 1 => Just(GoodsStatus::Deleted)];
    (base, status, proptest::collection::vec(activity(), 0..10)).prop_map(|(base_price, status, activities)| {
        GoodsRecord { goods_id: GOODS, version: 1, store_id: 1, base_price, currency: "CNY".into(), status, activities }
    })
}

fn context() -> impl Strategy<Value = CallerContext> {
    let channel = prop_oneof![Just(Channel::App), Just(Channel::MiniProgram), Just(Channel::H5), Just(Channel::Pc)];
    (proptest::option::of(1u64..4), proptest::option::of(1u64..4), channel, any::<bool>(), 0u32..3).prop_map(
        |(store_id, city_id, channel, new_user, member_level)| CallerContext {
            pin: "p".into(),
            store_id,
            city_id,
            channel,
            new_user,
            member_level,
        },
    )
}

fn cart_line() -> impl Strategy<Value = CartLine> {
    (1u64..6, 1u64..3, fen(50_000)).prop_map(|(goods_id, store_id, amount)| CartLine { goods_id, store_id, amount })
}

fn promotion(coupon: bool) -> impl Strategy<Value = Promotion> {
    let kind = if coupon {
        Just(PromotionKind::Coupon).boxed()
    } else {
        prop_oneof![
            4 => Just(PromotionKind::ThresholdAmountOff),
            4 => Just(PromotionKind::ThresholdPercentOff),
            1 => Just(PromotionKind::Coupon),
        ]
        .boxed()
    };
    let scope = prop_oneof![(1u64..3).prop_map(Scope::Store), Just(Scope::Platform)];
    let tier = (fen(60_000), prop_oneof![9 => fen(10_000), 1 => wild_decimal()])
        .prop_map(|(threshold, value)| PromotionTier { threshold, value });
    let tiers = proptest::collection::vec(tier, if coupon { 1..2 } else { 0..4 });
    let goods = proptest::option::of(proptest::collection::vec(1u64..6, 0..3));
    (1u64..6, kind, scope, tiers, goods, -10i64..10, 0i64..20).prop_map(
        |(id, kind, scope, tiers, eligible_goods, start, length)| Promotion {
            id,
            kind,
            scope,
            tiers,
            eligible_goods,
            start_ms: NOW + start,
            end_ms: NOW + start + length,
            description: String::new(),
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn allocations_sum_exactly_and_stay_within_each_line(
        amounts in proptest::collection::vec(fen(10_000_000), 0..20),
        share in 0u32..=1000,
        rule in rule(),
    ) {
        let total: Decimal = amounts.iter().sum();
        // A discount between 0 and the total, on the fen.
        let discount = (total * Decimal::from(share) / Decimal::from(1000)).trunc_with_scale(2);
        let shares = allocate(discount, &amounts, rule).unwrap();
        prop_assert_eq!(shares.len(), amounts.len());
        prop_assert_eq!(shares.iter().sum::<Decimal>(), discount);
        for (s, a) in shares.iter().zip(&amounts) {
            prop_assert!(*s >= Decimal::ZERO && s <= a, "share {} of line {}", s, a);
            prop_assert_eq!(s.scale(), 2);
        }
        prop_assert_eq!(allocate(discount, &amounts, rule).unwrap(), shares, "deterministic");
    }

    #[test]
    fn hamilton_shares_are_within_one_fen_of_exact(
        amounts in proptest::collection::vec(fen(1_000_000), 1..20),
        share in 0u32..=1000,
    ) {
        let total: Decimal = amounts.iter().sum();
        let discount = (total * Decimal::from(share) / Decimal::from(1000)).trunc_with_scale(2);
        let shares = allocate(discount, &amounts, RemainderRule::LargestRemainder).unwrap();
        if !total.is_zero() {
            for (s, a) in shares.iter().zip(&amounts) {
                let exact = discount * a / total;
                prop_assert!((*s - exact).abs() < Decimal::new(1, 2), "{} vs exact {}", s, exact);
            }
        }
    }

    #[test]
    fn a_discount_above_the_total_is_refused(
        amounts in proptest::collection::vec(fen(10_000), 0..10),
        extra in 1i64..10_000,
        rule in rule(),
    ) {
        let total: Decimal = amounts.iter().sum();
        let result = allocate(total + Decimal::new(extra, 2), &amounts, rule);
        let refused = matches!(result, Err(AllocationError::DiscountAboveTotal { .. }));
        prop_assert!(refused);
    }

    #[test]
    fn allocate_never_panics_on_wild_input(
        discount in wild_decimal(),
        amounts in proptest::collection::vec(wild_decimal(), 0..6),
        rule in rule(),
    ) {
        if let Ok(shares) = allocate(discount, &amounts, rule) {
            prop_assert_eq!(shares.iter().sum::<Decimal>(), discount);
        }
    }

    #[test]
    fn activity_price_is_within_one_fen_and_the_original(
        record in record(),
        ctx in context(),
        at in -4_000i64..8_000,
        quantity in 0u32..12,
    ) {
        let now = NOW + at;
        let quote = best_price(&record, &ctx, now, false);
        let explained = best_price(&record, &ctx, now, true);
        match (&quote, &explained) {
            (Ok(q), Ok(e)) => {
                prop_assert!(q.price <= q.original, "{} above {}", q.price, q.original);
                prop_assert!(q.price >= Decimal::new(1, 2));
                prop_assert!(q.price_beyond_limit >= q.price && q.price_beyond_limit <= q.original);
                prop_assert_eq!(q.price.scale(), 2);
                prop_assert_eq!(q.winner.is_some(), q.price < q.original);
                prop_assert!(q.trace.is_empty());
                // Explaining changes nothing but the trace.
                prop_assert_eq!(&e.price, &q.price);
                prop_assert_eq!(&e.winner, &q.winner);
                prop_assert_eq!(e.trace.len(), record.activities.len());
                let winners = e.trace.iter().filter(|t| t.outcome == Outcome::Won).count();
                prop_assert_eq!(winners, usize::from(q.winner.is_some()));
                for entry in &e.trace {
                    if let Some(p) = entry.price {
                        prop_assert!(p >= Decimal::new(1, 2) && p <= q.original);
                        if matches!(entry.outcome, Outcome::Lost { .. }) {
                            prop_assert!(p >= q.price, "a loser is never cheaper than the winner");
                        }
                    }
                }
            }
            (Err(a), Err(b)) => {
                prop_assert_eq!(a, b);
                let typed = matches!(a, PricingError::Deleted { .. } | PricingError::InvalidRecord { .. } | PricingError::BasePriceTooLarge { .. });
                prop_assert!(typed, "{:?}", a);
            }
            _ => prop_assert!(false, "explain changed the result"),
        }
        prop_assert_eq!(best_price(&record, &ctx, now, false), quote, "deterministic");

        match price_units(&record, &ctx, now, quantity) {
            Ok(line) => {
                let q = best_price(&record, &ctx, now, false).unwrap();
                prop_assert_eq!(line.segments.iter().map(|s| s.quantity).sum::<u32>(), quantity);
                let sum: Decimal = line.segments.iter().map(|s| s.unit_price * Decimal::from(s.quantity)).sum();
                prop_assert_eq!(line.amount, sum);
                prop_assert_eq!(line.segments[0].unit_price, q.price);
                prop_assert!(line.segments.windows(2).all(|w| w[0].unit_price <= w[1].unit_price), "best first");
                prop_assert!(line.segments.iter().all(|s| s.quantity > 0 && s.unit_price <= line.unit_original));
            }
            Err(PricingError::ZeroQuantity) => prop_assert_eq!(quantity, 0),
            Err(e) => prop_assert!(best_price(&record, &ctx, now, false) == Err(e)),
        }
    }

    #[test]
    fn cart_balances_and_refunds_return_what_was_paid(
        lines in proptest::collection::vec(cart_line(), 0..10),
        promotions in proptest::collection::vec(promotion(false), 0..5),
        coupons in proptest::collection::vec(promotion(true), 0..4),
        rule in rule(),
    ) {
        let pricing = price_cart(&lines, &promotions, &coupons, NOW, rule).unwrap();
        prop_assert_eq!(pricing.amount_total - pricing.discount_total, pricing.payable_total);
        prop_assert_eq!(pricing.applied.iter().map(|a| a.discount).sum::<Decimal>(), pricing.discount_total);
        for applied in &pricing.applied {
            let allocated: Decimal = pricing.lines.iter().flat_map(|l| &l.allocations)
                .filter(|a| a.promotion_id == applied.id && a.kind == applied.kind).map(|a| a.amount).sum();
            prop_assert_eq!(allocated, applied.discount);
            prop_assert!(applied.discount > Decimal::ZERO);
        }
        // Every passed promotion is either applied or unused, once.
        prop_assert_eq!(pricing.applied.len() + pricing.unused.len(), promotions.len() + coupons.len());
        let mut refunded = Decimal::ZERO;
        for (index, line) in pricing.lines.iter().enumerate() {
            prop_assert!(line.payable >= Decimal::ZERO);
            let refund = refund_line(&pricing, index).unwrap();
            prop_assert_eq!(refund.amount_paid, line.payable);
            let carried: Decimal = refund.per_promotion.iter().map(|(_, a)| a).sum();
            prop_assert_eq!(refund.amount_paid + carried, line.amount);
            refunded += refund.amount_paid;
        }
        prop_assert_eq!(refunded, pricing.payable_total);
        prop_assert_eq!(price_cart(&lines, &promotions, &coupons, NOW, rule).unwrap(), pricing, "deterministic");
    }

    #[test]
    fn cart_never_panics_on_wild_amounts(
        amounts in proptest::collection::vec(wild_decimal(), 0..6),
        promotions in proptest::collection::vec(promotion(false), 0..3),
    ) {
        let lines: Vec<CartLine> = amounts.into_iter().map(|amount| CartLine { goods_id: 1, store_id: 1, amount }).collect();
        match price_cart(&lines, &promotions, &[], NOW, RemainderRule::default()) {
            Ok(p) => prop_assert_eq!(p.amount_total - p.discount_total, p.payable_total),
            Err(e) => {
                let typed = matches!(e, PricingError::InvalidLineAmount { .. });
                prop_assert!(typed, "{:?}", e);
            }
        }
    }
}
