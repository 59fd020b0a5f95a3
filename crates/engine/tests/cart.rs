//! Cart pricing through the public API: stacking, tiers, coupons, caps, refunds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

use pricing_engine::{
    CartLine, CartPricing, MoneyError, PricingError, Promotion, PromotionKind, PromotionProblem, PromotionTier,
    RemainderRule, STACKING_ORDER, Scope, ScopeKind, UnusedPromotion, UnusedReason, price_cart, refund_line,
};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

const NOW: i64 = 1_700_000_000_000;

fn line(goods_id: u64, store_id: u64, amount: Decimal) -> CartLine {
    CartLine { goods_id, store_id, amount }
}

fn promo(id: u64, kind: PromotionKind, scope: Scope, tiers: &[(Decimal, Decimal)]) -> Promotion {
    Promotion {
        id,
        kind,
        scope,
        tiers: tiers.iter().map(|&(threshold, value)| PromotionTier { threshold, value }).collect(),
        eligible_goods: None,
        start_ms: NOW - 1,
        end_ms: NOW + 1,
        description: format!("promotion {id}"),
    }
}

fn amount_off(id: u64, scope: Scope, tiers: &[(Decimal, Decimal)]) -> Promotion {
    promo(id, PromotionKind::ThresholdAmountOff, scope, tiers)
}

fn percent_off(id: u64, scope: Scope, tiers: &[(Decimal, Decimal)]) -> Promotion {
    promo(id, PromotionKind::ThresholdPercentOff, scope, tiers)
}

fn coupon(id: u64, scope: Scope, threshold: Decimal, value: Decimal) -> Promotion {
    promo(id, PromotionKind::Coupon, scope, &[(threshold, value)])
}

fn price(lines: &[CartLine], promotions: &[Promotion], coupons: &[Promotion]) -> CartPricing {
    price_cart(lines, promotions, coupons, NOW, RemainderRule::LargestLine).expect("cart prices")
}

fn applied(p: &CartPricing) -> Vec<(u64, Decimal)> {
    p.applied.iter().map(|a| (a.id, a.discount)).collect()
}

fn unused(p: &CartPricing) -> Vec<(u64, UnusedReason)> {
    p.unused.iter().map(|u| (u.id, u.reason.clone())).collect()
}

fn payables(p: &CartPricing) -> Vec<Decimal> {
    p.lines.iter().map(|l| l.payable).collect()
}

/// The money promises every priced cart keeps.
fn assert_balanced(p: &CartPricing) {
    assert_eq!(p.amount_total - p.discount_total, p.payable_total);
    assert_eq!(p.applied.iter().map(|a| a.discount).sum::<Decimal>(), p.discount_total);
    for a in &p.applied {
        let allocated: Decimal =
            p.lines.iter().flat_map(|l| &l.allocations).filter(|x| x.promotion_id == a.id).map(|x| x.amount).sum();
        assert_eq!(allocated, a.discount, "promotion {} allocations sum to its discount", a.id);
    }
    for l in &p.lines {
        assert!(l.payable >= Decimal::ZERO);
        assert_eq!(l.amount - l.allocations.iter().map(|a| a.amount).sum::<Decimal>(), l.payable);
    }
}

#[test]
fn seed_002_spend_99_get_9_off() {
    let lines = [line(1, 7, dec!(30)), line(2, 7, dec!(40)), line(3, 7, dec!(50))];
    for rule in [RemainderRule::LargestLine, RemainderRule::LargestRemainder] {
        let p = price_cart(&lines, &[amount_off(10, Scope::Store(7), &[(dec!(99), dec!(9))])], &[], NOW, rule).unwrap();
        let shares: Vec<Decimal> = p.lines.iter().map(|l| l.allocations[0].amount).collect();
        assert_eq!(shares, [dec!(2.25), dec!(3.00), dec!(3.75)]);
        assert_eq!(p.payable_total, dec!(111));
        assert_eq!(p.payable_total.to_string(), "111.00");
        assert_eq!(p.discount_total, dec!(9));
        assert_eq!(p.rule, rule);
        assert_balanced(&p);
    }
}

#[test]
fn highest_satisfied_tier_applies() {
    let lines = [line(1, 7, dec!(25))];
    let tiers = [(dec!(10), dec!(3)), (dec!(20), dec!(5)), (dec!(30), dec!(8))];
    let p = price(&lines, &[amount_off(1, Scope::Store(7), &tiers)], &[]);
    assert_eq!(applied(&p), [(1, dec!(5))]);
    assert_eq!(p.applied[0].threshold, dec!(20));
    let p = price(&[line(1, 7, dec!(9.99))], &[amount_off(1, Scope::Store(7), &tiers)], &[]);
    assert_eq!(applied(&p), []);
    assert_eq!(unused(&p), [(1, UnusedReason::NotSatisfied)]);
}

#[test]
fn a_tier_giving_more_wins_even_if_listed_oddly() {
    // Badly ordered source data: the higher threshold gives less.
    let tiers = [(dec!(20), dec!(2)), (dec!(10), dec!(4))];
    let p = price(&[line(1, 7, dec!(25))], &[amount_off(1, Scope::Store(7), &tiers)], &[]);
    assert_eq!(applied(&p), [(1, dec!(4))]);
    assert_eq!(p.applied[0].threshold, dec!(10));
}

#[test]
fn only_the_best_promotion_of_a_type_and_scope_applies() {
    let lines = [line(1, 7, dec!(100))];
    let promotions = [
        amount_off(3, Scope::Store(7), &[(dec!(50), dec!(5))]),
        amount_off(2, Scope::Store(7), &[(dec!(100), dec!(12))]),
        amount_off(1, Scope::Store(7), &[(dec!(200), dec!(30))]),
    ];
    let p = price(&lines, &promotions, &[]);
    assert_eq!(applied(&p), [(2, dec!(12))]);
    assert_eq!(unused(&p), [(3, UnusedReason::Outranked { by: 2 }), (1, UnusedReason::NotSatisfied)]);
}

#[test]
fn equal_discounts_go_to_the_lower_id() {
    let lines = [line(1, 7, dec!(100))];
    let promotions =
        [amount_off(9, Scope::Store(7), &[(dec!(0), dec!(5))]), amount_off(4, Scope::Store(7), &[(dec!(50), dec!(5))])];
    let p = price(&lines, &promotions, &[]);
    assert_eq!(applied(&p), [(4, dec!(5))]);
    assert_eq!(unused(&p), [(9, UnusedReason::Outranked { by: 4 })]);
}

#[test]
fn store_promotions_reach_only_their_store_and_each_store_gets_its_own() {
    let lines = [line(1, 7, dec!(60)), line(2, 8, dec!(60)), line(3, 7, dec!(40))];
    let promotions = [
        amount_off(1, Scope::Store(8), &[(dec!(50), dec!(6))]),
        amount_off(2, Scope::Store(7), &[(dec!(100), dec!(10))]),
        amount_off(3, Scope::Store(9), &[(dec!(0), dec!(1))]),
    ];
    let p = price(&lines, &promotions, &[]);
    // Stores in id order within the step.
    assert_eq!(applied(&p), [(2, dec!(10)), (1, dec!(6))]);
    assert_eq!(payables(&p), [dec!(54), dec!(54), dec!(36)]);
    assert_eq!(unused(&p), [(3, UnusedReason::NoEligibleLines)]);
    assert_balanced(&p);
}

#[test]
fn eligible_goods_narrow_a_promotion() {
    let lines = [line(1, 7, dec!(60)), line(2, 7, dec!(60))];
    let mut promotion = amount_off(1, Scope::Platform, &[(dec!(100), dec!(10))]);
    promotion.eligible_goods = Some(vec![2]);
    let p = price(&lines, std::slice::from_ref(&promotion), &[]);
    assert_eq!(unused(&p), [(1, UnusedReason::NotSatisfied)], "only 60 is eligible");
    promotion.tiers[0].threshold = dec!(60);
    let p = price(&lines, std::slice::from_ref(&promotion), &[]);
    assert_eq!(payables(&p), [dec!(60), dec!(50)]);
    promotion.eligible_goods = Some(vec![]);
    assert_eq!(unused(&price(&lines, &[promotion], &[])), [(1, UnusedReason::NoEligibleLines)]);
}

#[test]
fn percent_off_is_rounded_to_the_fen_half_up_once() {
    // 33.33 paying 85%: discount 4.9995 -> 5.00
    let p = price(&[line(1, 7, dec!(33.33))], &[percent_off(1, Scope::Store(7), &[(dec!(0), dec!(85))])], &[]);
    assert_eq!(applied(&p), [(1, dec!(5.00))]);
    // 10.01 paying 90%: discount 1.001 -> 1.00
    let p = price(&[line(1, 7, dec!(10.01))], &[percent_off(1, Scope::Store(7), &[(dec!(0), dec!(90))])], &[]);
    assert_eq!(applied(&p), [(1, dec!(1.00))]);
    assert_eq!(p.payable_total, dec!(9.01));
}

#[test]
fn percent_off_that_rounds_to_nothing_is_unused() {
    let p = price(&[line(1, 7, dec!(0.01))], &[percent_off(1, Scope::Store(7), &[(dec!(0), dec!(99))])], &[]);
    assert_eq!(unused(&p), [(1, UnusedReason::ZeroDiscount)]);
    assert_eq!(p.payable_total, dec!(0.01));
}

#[test]
fn stacking_order_is_fixed_and_thresholds_see_current_amounts() {
    assert_eq!(
        STACKING_ORDER,
        [
            (PromotionKind::ThresholdAmountOff, ScopeKind::Store),
            (PromotionKind::ThresholdPercentOff, ScopeKind::Store),
            (PromotionKind::ThresholdAmountOff, ScopeKind::Platform),
            (PromotionKind::ThresholdPercentOff, ScopeKind::Platform),
            (PromotionKind::Coupon, ScopeKind::Store),
            (PromotionKind::Coupon, ScopeKind::Platform),
        ]
    );
    let lines = [line(1, 7, dec!(100)), line(2, 7, dec!(100))];
    // Passed in reverse order on purpose.
    let promotions = [
        percent_off(4, Scope::Platform, &[(dec!(0), dec!(90))]),
        amount_off(3, Scope::Platform, &[(dec!(150), dec!(20))]),
        percent_off(2, Scope::Store(7), &[(dec!(0), dec!(90))]),
        amount_off(1, Scope::Store(7), &[(dec!(200), dec!(20))]),
    ];
    let coupons = [coupon(6, Scope::Platform, dec!(100), dec!(10)), coupon(5, Scope::Store(7), dec!(100), dec!(10))];
    let p = price(&lines, &promotions, &coupons);
    // 200 -20 = 180; 10% -> 162; -20 (162 >= 150) = 142; 10% (14.2) -> 127.80;
    // store coupon -10 = 117.80; platform coupon -10 = 107.80.
    assert_eq!(
        applied(&p),
        [(1, dec!(20)), (2, dec!(18)), (3, dec!(20)), (4, dec!(14.20)), (5, dec!(10)), (6, dec!(10))]
    );
    assert_eq!(p.payable_total, dec!(107.80));
    assert!(p.unused.is_empty());
    assert_balanced(&p);
    let kinds: Vec<(PromotionKind, ScopeKind)> = p.applied.iter().map(|a| (a.kind, a.scope.kind())).collect();
    assert_eq!(kinds, STACKING_ORDER);
    assert_eq!(p.applied[0].description, "promotion 1");
}

#[test]
fn a_later_threshold_fails_on_amounts_lowered_by_an_earlier_step() {
    let lines = [line(1, 7, dec!(100))];
    let promotions = [
        amount_off(1, Scope::Store(7), &[(dec!(100), dec!(10))]),
        amount_off(2, Scope::Platform, &[(dec!(100), dec!(10))]),
    ];
    let p = price(&lines, &promotions, &[]);
    assert_eq!(applied(&p), [(1, dec!(10))]);
    assert_eq!(unused(&p), [(2, UnusedReason::NotSatisfied)], "90 left is below 100");
}

#[test]
fn coupon_reasons() {
    let lines = [line(1, 7, dec!(100))];
    let mut expired = coupon(1, Scope::Platform, dec!(0), dec!(5));
    expired.end_ms = NOW;
    let mut early = coupon(2, Scope::Platform, dec!(0), dec!(5));
    early.start_ms = NOW + 1;
    early.end_ms = NOW + 2;
    let unreachable = coupon(3, Scope::Platform, dec!(500), dec!(50));
    let best_store = coupon(4, Scope::Store(7), dec!(50), dec!(8));
    let again = coupon(4, Scope::Store(7), dec!(50), dec!(8));
    let lesser_store = coupon(5, Scope::Store(7), dec!(0), dec!(3));
    let platform = coupon(6, Scope::Platform, dec!(0), dec!(2));
    let other_store = coupon(7, Scope::Store(99), dec!(0), dec!(2));
    let coupons = [expired, early, unreachable, best_store, again, lesser_store, platform, other_store];
    let p = price(&lines, &[], &coupons);
    assert_eq!(applied(&p), [(4, dec!(8)), (6, dec!(2))]);
    let mut reasons = unused(&p);
    reasons.sort_by_key(|(id, _)| *id);
    assert_eq!(
        reasons,
        [
            (1, UnusedReason::Expired),
            (2, UnusedReason::NotStarted),
            (3, UnusedReason::NotSatisfied),
            (4, UnusedReason::Duplicate),
            (5, UnusedReason::Outranked { by: 4 }),
            (7, UnusedReason::NoEligibleLines),
        ]
    );
    assert_eq!(p.unused_coupons().count(), 6);
    let labels: Vec<&str> = p.unused.iter().map(|u| u.reason.as_str()).collect();
    for label in ["expired", "not_started", "not_satisfied", "duplicate", "outranked", "no_eligible_lines"] {
        assert!(labels.contains(&label), "{label} in {labels:?}");
    }
}

#[test]
fn invalid_promotions_are_unused_not_errors() {
    let lines = [line(1, 7, dec!(100))];
    let mut empty_window = amount_off(1, Scope::Platform, &[(dec!(0), dec!(1))]);
    empty_window.end_ms = empty_window.start_ms;
    let cases: Vec<(Promotion, PromotionProblem)> = vec![
        (empty_window, PromotionProblem::EmptyWindow),
        (amount_off(2, Scope::Platform, &[]), PromotionProblem::NoTiers),
        (percent_off(3, Scope::Platform, &[(dec!(0), dec!(100))]), PromotionProblem::PercentOutOfRange(dec!(100))),
        (percent_off(4, Scope::Platform, &[(dec!(0), dec!(0))]), PromotionProblem::PercentOutOfRange(dec!(0))),
        (amount_off(5, Scope::Platform, &[(dec!(0), dec!(0))]), PromotionProblem::NonPositiveValue(dec!(0))),
        (
            amount_off(6, Scope::Platform, &[(dec!(0), dec!(-1))]),
            PromotionProblem::Money { field: "tier.value", problem: MoneyError::Negative(dec!(-1)) },
        ),
        (
            amount_off(7, Scope::Platform, &[(dec!(9.999), dec!(1))]),
            PromotionProblem::Money { field: "tier.threshold", problem: MoneyError::Scale(dec!(9.999)) },
        ),
        (coupon(8, Scope::Platform, dec!(0), dec!(1)), PromotionProblem::WrongList),
    ];
    for (promotion, problem) in cases {
        let p = price(&lines, std::slice::from_ref(&promotion), &[]);
        assert_eq!(unused(&p), [(promotion.id, UnusedReason::Invalid(problem))]);
        assert_eq!(p.payable_total, dec!(100));
    }
    let two_tiers = promo(9, PromotionKind::Coupon, Scope::Platform, &[(dec!(0), dec!(1)), (dec!(5), dec!(2))]);
    assert_eq!(
        unused(&price(&lines, &[], &[two_tiers])),
        [(9, UnusedReason::Invalid(PromotionProblem::CouponTiers(2)))]
    );
    let threshold_as_coupon = amount_off(10, Scope::Platform, &[(dec!(0), dec!(1))]);
    assert_eq!(
        unused(&price(&lines, &[], &[threshold_as_coupon])),
        [(10, UnusedReason::Invalid(PromotionProblem::WrongList))]
    );
}

#[test]
fn a_discount_above_the_eligible_amount_is_capped_payable_zero() {
    let lines = [line(1, 7, dec!(20)), line(2, 7, dec!(10))];
    let p = price(&lines, &[], &[coupon(1, Scope::Platform, dec!(0), dec!(50))]);
    assert_eq!(applied(&p), [(1, dec!(30))]);
    assert_eq!(payables(&p), [dec!(0), dec!(0)]);
    assert_eq!(p.payable_total, Decimal::ZERO);
    assert_balanced(&p);
    // A further step then has nothing to take.
    let p = price(
        &lines,
        &[amount_off(2, Scope::Store(7), &[(dec!(0), dec!(40))])],
        &[coupon(1, Scope::Platform, dec!(0), dec!(5))],
    );
    assert_eq!(applied(&p), [(2, dec!(30))]);
    assert_eq!(unused(&p), [(1, UnusedReason::ZeroDiscount)]);
}

#[test]
fn zero_amount_lines_are_fine() {
    let lines = [line(1, 7, dec!(0)), line(2, 7, dec!(10))];
    let p = price(&lines, &[amount_off(1, Scope::Store(7), &[(dec!(5), dec!(1))])], &[]);
    assert_eq!(payables(&p), [dec!(0), dec!(9)]);
    assert!(p.lines[0].allocations.is_empty(), "zero shares are left out");
}

#[test]
fn empty_cart_prices_to_zero() {
    let p = price(&[], &[amount_off(1, Scope::Platform, &[(dec!(0), dec!(1))])], &[]);
    assert_eq!((p.amount_total, p.discount_total, p.payable_total), (dec!(0), dec!(0), dec!(0)));
    assert_eq!(unused(&p), [(1, UnusedReason::NoEligibleLines)]);
}

#[test]
fn bad_line_amounts_are_typed_errors() {
    let rule = RemainderRule::default();
    for (amount, problem) in [
        (dec!(-1), MoneyError::Negative(dec!(-1))),
        (dec!(1.001), MoneyError::Scale(dec!(1.001))),
        (Decimal::MAX, MoneyError::TooLarge(Decimal::MAX)),
    ] {
        let lines = [line(1, 7, dec!(1)), line(2, 7, amount)];
        assert_eq!(price_cart(&lines, &[], &[], NOW, rule), Err(PricingError::InvalidLineAmount { index: 1, problem }));
    }
}

#[test]
fn the_remainder_rule_is_honoured() {
    // Exact shares 0.015, 0.015, 0.02: the rules place the rounding differently.
    let lines = [line(1, 7, dec!(0.03)), line(2, 7, dec!(0.03)), line(3, 7, dec!(0.04))];
    let coupons = [coupon(1, Scope::Platform, dec!(0), dec!(0.05))];
    let largest_line = price_cart(&lines, &[], &coupons, NOW, RemainderRule::LargestLine).unwrap();
    assert_eq!(payables(&largest_line), [dec!(0.01), dec!(0.01), dec!(0.03)]);
    let hamilton = price_cart(&lines, &[], &coupons, NOW, RemainderRule::LargestRemainder).unwrap();
    assert_eq!(payables(&hamilton), [dec!(0.01), dec!(0.02), dec!(0.02)]);
}

#[test]
fn refund_returns_what_each_line_paid() {
    let lines = [line(1, 7, dec!(30)), line(2, 7, dec!(40)), line(3, 8, dec!(50))];
    let p = price(
        &lines,
        &[
            amount_off(1, Scope::Platform, &[(dec!(99), dec!(9))]),
            percent_off(2, Scope::Store(7), &[(dec!(0), dec!(95))]),
        ],
        &[coupon(3, Scope::Store(8), dec!(0), dec!(1))],
    );
    assert_balanced(&p);
    let mut refunded = Decimal::ZERO;
    for (index, priced) in p.lines.iter().enumerate() {
        let refund = refund_line(&p, index).unwrap();
        assert_eq!(refund.line_index, index);
        assert_eq!(refund.amount_paid, priced.payable);
        let carried: Decimal = refund.per_promotion.iter().map(|(_, amount)| amount).sum();
        assert_eq!(refund.amount_paid + carried, priced.amount);
        refunded += refund.amount_paid;
    }
    assert_eq!(refunded, p.payable_total);
    let first = refund_line(&p, 0).unwrap();
    let ids: Vec<u64> = first.per_promotion.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [2, 1], "store percent-off before platform amount-off");
    assert_eq!(refund_line(&p, 3), Err(PricingError::NoSuchLine { index: 3, len: 3 }));
}

#[test]
fn same_input_same_output() {
    let lines = [line(1, 7, dec!(33.33)), line(2, 7, dec!(33.33)), line(3, 7, dec!(33.34))];
    let promotions = [amount_off(1, Scope::Store(7), &[(dec!(0), dec!(10))])];
    let first = price(&lines, &promotions, &[]);
    for _ in 0..10 {
        assert_eq!(price(&lines, &promotions, &[]), first);
    }
    let unused_none: Vec<UnusedPromotion> = Vec::new();
    assert_eq!(first.unused, unused_none);
}
