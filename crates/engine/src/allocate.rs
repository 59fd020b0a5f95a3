//! Proportional allocation of one discount over order lines, exact to the fen.
//!
//! Layout: [`allocate`] is the public, decimal face; `allocate_fen` does the
//! work in integer fen for the cart. Each line's share is
//! `discount * amount / total`; the shares are made whole fen by the chosen
//! [`RemainderRule`] so that they sum to the discount exactly (seed 002,
//! 2.1.3: "the error goes to the line with the largest amount").
//!
//! Why no line can go negative: the discount never exceeds the total (that is
//! refused), so every exact share is at most its line's amount; rounding can
//! push a share one fen past it only by rounding up, and both rules keep
//! every share within `[0, amount]` (see each rule).

use rust_decimal::Decimal;

use crate::error::AllocationError;
use crate::money::{self, div_round_half_up};

/// How the fen left over by rounding the proportional shares are placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RemainderRule {
    /// Seed 002: round each share to the fen (half-up), then add the
    /// difference to the discount (positive or negative) to the line with the
    /// largest amount, the first such line on ties. If that would push its
    /// share above its amount or below zero, it takes what fits and the rest
    /// goes on to the next largest line, and so on.
    #[default]
    LargestLine,
    /// Hamilton's method: floor each share to the fen, then give the leftover
    /// fen one each to the lines with the largest fractional remainders, ties
    /// by line order. A floored share plus one fen never exceeds its amount.
    LargestRemainder,
}

/// Shares `discount` over `amounts` in proportion to them. The shares sum to
/// `discount` exactly, each lies in `[0, amount]`, each has 2 places, and the
/// same input always gives the same output.
///
/// Errors: `discount` or an amount is negative or has more than 2 places
/// (an amount also above [`crate::MAX_AMOUNT`]); `discount` is above the sum
/// of `amounts` ([`AllocationError::DiscountAboveTotal`]: a discount is
/// never silently shrunk here; [`crate::price_cart`] caps a promotion at its
/// eligible total before it allocates).
pub fn allocate(discount: Decimal, amounts: &[Decimal], rule: RemainderRule) -> Result<Vec<Decimal>, AllocationError> {
    let discount = money::fen(discount).map_err(AllocationError::Discount)?;
    let amounts = amounts
        .iter()
        .enumerate()
        .map(|(index, &amount)| {
            money::fen_bounded(amount).map_err(|problem| AllocationError::Amount { index, problem })
        })
        .collect::<Result<Vec<i128>, _>>()?;
    let mut shares = Vec::with_capacity(amounts.len());
    allocate_fen(discount, &amounts, rule, &mut shares)?;
    shares.into_iter().map(|share| money::decimal(share).ok_or(AllocationError::Overflow)).collect()
}

/// [`allocate`] in fen, into `shares` (cleared first, so that the cart can
/// reuse one buffer for every step). `discount` and `amounts` must be
/// non-negative.
pub(crate) fn allocate_fen(
    discount: i128,
    amounts: &[i128],
    rule: RemainderRule,
    shares: &mut Vec<i128>,
) -> Result<(), AllocationError> {
    shares.clear();
    let total = amounts.iter().try_fold(0i128, |sum, &a| sum.checked_add(a)).ok_or(AllocationError::Overflow)?;
    if discount > total {
        let to_decimal = |fen| money::decimal(fen).ok_or(AllocationError::Overflow);
        return Err(AllocationError::DiscountAboveTotal { discount: to_decimal(discount)?, total: to_decimal(total)? });
    }
    if discount == 0 {
        shares.resize(amounts.len(), 0);
        return Ok(());
    }
    // discount > 0 and discount <= total, so total > 0 below.
    match rule {
        RemainderRule::LargestLine => largest_line(discount, total, amounts, shares),
        RemainderRule::LargestRemainder => largest_remainder(discount, total, amounts, shares),
    }
}

fn largest_line(discount: i128, total: i128, amounts: &[i128], shares: &mut Vec<i128>) -> Result<(), AllocationError> {
    let mut placed: i128 = 0;
    for &amount in amounts {
        let exact = discount.checked_mul(amount).ok_or(AllocationError::Overflow)?;
        // exact / total <= amount, and amount is whole fen, so the rounded
        // share is at most amount.
        let share = div_round_half_up(exact, total);
        placed += share;
        shares.push(share);
    }
    let mut remainder = discount - placed;
    if remainder == 0 {
        return Ok(());
    }
    // The largest line (the first on ties) takes the remainder if it can.
    let mut largest = 0;
    for (index, &amount) in amounts.iter().enumerate() {
        if amount > amounts[largest] {
            largest = index;
        }
    }
    let adjustment = remainder.min(amounts[largest] - shares[largest]).max(-shares[largest]);
    shares[largest] += adjustment;
    remainder -= adjustment;
    if remainder == 0 {
        return Ok(());
    }
    // The rare path: it could not; the rest goes on down the lines by amount
    // (largest first, line order on ties). `largest` comes first in that
    // order and has nothing left to give or take, so starting over is exact.
    let mut order: Vec<usize> = (0..amounts.len()).collect();
    order.sort_by(|&a, &b| amounts[b].cmp(&amounts[a]).then(a.cmp(&b)));
    for index in order {
        let share = &mut shares[index];
        let adjustment = remainder.min(amounts[index] - *share).max(-*share);
        *share += adjustment;
        remainder -= adjustment;
        if remainder == 0 {
            break;
        }
    }
    // Always reached: the lines can hold between 0 and total >= discount.
    debug_assert_eq!(remainder, 0);
    Ok(())
}

fn largest_remainder(
    discount: i128,
    total: i128,
    amounts: &[i128],
    shares: &mut Vec<i128>,
) -> Result<(), AllocationError> {
    let mut remainders = Vec::with_capacity(amounts.len());
    let mut placed: i128 = 0;
    for (index, &amount) in amounts.iter().enumerate() {
        let exact = discount.checked_mul(amount).ok_or(AllocationError::Overflow)?;
        let share = exact / total;
        placed += share;
        shares.push(share);
        // Integer remainders compare exactly: equal fractions tie for real.
        remainders.push((exact % total, index));
    }
    // 0 <= leftover < number of lines with a non-zero remainder.
    let leftover = usize::try_from(discount - placed).map_err(|_| AllocationError::Overflow)?;
    if leftover > 0 {
        remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for &(_, index) in &remainders[..leftover] {
            shares[index] += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;
    use crate::money::MoneyError;

    fn both(discount: Decimal, amounts: &[Decimal]) -> [Vec<Decimal>; 2] {
        [
            allocate(discount, amounts, RemainderRule::LargestLine).unwrap(),
            allocate(discount, amounts, RemainderRule::LargestRemainder).unwrap(),
        ]
    }

    #[test]
    fn seed_002_example_spend_99_get_9_off() {
        // Lines 30 + 40 + 50 = 120, 9 off: 9/120 of each line, payable 111.
        for shares in both(dec!(9), &[dec!(30), dec!(40), dec!(50)]) {
            assert_eq!(shares, [dec!(2.25), dec!(3.00), dec!(3.75)]);
            let payable: Decimal = [dec!(30), dec!(40), dec!(50)].iter().zip(&shares).map(|(a, s)| a - s).sum();
            assert_eq!(payable, dec!(111));
        }
    }

    #[test]
    fn shares_have_two_places() {
        for shares in both(dec!(9), &[dec!(30), dec!(40), dec!(50)]) {
            assert!(shares.iter().all(|s| s.scale() == 2), "{shares:?}");
        }
    }

    #[test]
    fn largest_line_takes_a_positive_remainder_first_on_ties() {
        // 0.10 over three equal lines: 0.0333 each rounds to 0.03; 0.01 left.
        let shares = allocate(dec!(0.10), &[dec!(10), dec!(10), dec!(10)], RemainderRule::LargestLine).unwrap();
        assert_eq!(shares, [dec!(0.04), dec!(0.03), dec!(0.03)]);
        // The largest line, not the first.
        let shares = allocate(dec!(0.10), &[dec!(10), dec!(10), dec!(10.01)], RemainderRule::LargestLine).unwrap();
        assert_eq!(shares, [dec!(0.03), dec!(0.03), dec!(0.04)]);
    }

    #[test]
    fn the_two_rules_differ_where_rounding_differs() {
        // Exact shares 0.015, 0.015, 0.02.
        let amounts = [dec!(0.03), dec!(0.03), dec!(0.04)];
        let shares = allocate(dec!(0.05), &amounts, RemainderRule::LargestLine).unwrap();
        // Rounded 0.02 + 0.02 + 0.02 = 0.06; -0.01 to the largest line.
        assert_eq!(shares, [dec!(0.02), dec!(0.02), dec!(0.01)]);
        let shares = allocate(dec!(0.05), &amounts, RemainderRule::LargestRemainder).unwrap();
        // Floors 0.01 + 0.01 + 0.02; one fen to the first of the tied 0.5 remainders.
        assert_eq!(shares, [dec!(0.02), dec!(0.01), dec!(0.02)]);
    }

    #[test]
    fn largest_line_respreads_a_remainder_it_cannot_hold() {
        // Five 0.01 lines share 0.03: each rounds 0.006 up to 0.01 (0.05 in
        // all); -0.02 cannot all come off the first line (it holds 0.01).
        let amounts = [dec!(0.01); 5];
        let shares = allocate(dec!(0.03), &amounts, RemainderRule::LargestLine).unwrap();
        assert_eq!(shares, [dec!(0), dec!(0), dec!(0.01), dec!(0.01), dec!(0.01)]);
        assert!(shares.iter().all(|s| *s >= Decimal::ZERO));
    }

    #[test]
    fn hamilton_gives_leftover_to_largest_remainders() {
        // Exact 1/7 of 1.00 over 1,2,4 (sevenths): 0.142857, 0.285714, 0.571428.
        let shares = allocate(dec!(1), &[dec!(1), dec!(2), dec!(4)], RemainderRule::LargestRemainder).unwrap();
        // Floors 0.14 + 0.28 + 0.57 = 0.99; remainders .2857, .5714, .1428 -> line 1.
        assert_eq!(shares, [dec!(0.14), dec!(0.29), dec!(0.57)]);
    }

    #[test]
    fn zero_amount_lines_get_nothing() {
        for shares in both(dec!(1), &[dec!(0), dec!(3), dec!(0)]) {
            assert_eq!(shares, [dec!(0), dec!(1), dec!(0)]);
        }
    }

    #[test]
    fn discount_equal_to_total_leaves_nothing_to_pay() {
        for shares in both(dec!(12.34), &[dec!(2.34), dec!(10)]) {
            assert_eq!(shares, [dec!(2.34), dec!(10)]);
        }
    }

    #[test]
    fn zero_discount_and_empty_lines() {
        for shares in both(dec!(0), &[dec!(1), dec!(2)]) {
            assert_eq!(shares, [dec!(0), dec!(0)]);
        }
        for shares in both(dec!(0), &[]) {
            assert!(shares.is_empty());
        }
    }

    #[test]
    fn discount_above_total_is_refused() {
        let err = allocate(dec!(10.01), &[dec!(4), dec!(6)], RemainderRule::LargestLine).unwrap_err();
        assert_eq!(err, AllocationError::DiscountAboveTotal { discount: dec!(10.01), total: dec!(10) });
        let err = allocate(dec!(1), &[], RemainderRule::LargestRemainder).unwrap_err();
        assert_eq!(err, AllocationError::DiscountAboveTotal { discount: dec!(1), total: dec!(0) });
    }

    #[test]
    fn bad_money_is_a_typed_error() {
        let rule = RemainderRule::default();
        assert_eq!(
            allocate(dec!(-1), &[dec!(5)], rule),
            Err(AllocationError::Discount(MoneyError::Negative(dec!(-1))))
        );
        assert_eq!(
            allocate(dec!(0.001), &[dec!(5)], rule),
            Err(AllocationError::Discount(MoneyError::Scale(dec!(0.001))))
        );
        assert_eq!(
            allocate(dec!(1), &[dec!(5), dec!(-5)], rule),
            Err(AllocationError::Amount { index: 1, problem: MoneyError::Negative(dec!(-5)) })
        );
        assert_eq!(
            allocate(dec!(1), &[dec!(5.555)], rule),
            Err(AllocationError::Amount { index: 0, problem: MoneyError::Scale(dec!(5.555)) })
        );
        assert!(matches!(
            allocate(dec!(1), &[Decimal::MAX], rule),
            Err(AllocationError::Amount { index: 0, problem: MoneyError::TooLarge(_) })
        ));
    }

    #[test]
    fn default_rule_is_largest_line() {
        assert_eq!(RemainderRule::default(), RemainderRule::LargestLine);
    }
}
