//! Money at the engine's boundary and inside it.
//!
//! Layout: amounts cross the public API as [`Decimal`] (CNY, 2 places) and
//! are turned into integer fen (`i128`) by [`to_fen`] on the way in and back
//! by [`from_fen`] on the way out. Inside, every sum, share and comparison is
//! exact integer arithmetic, and the single rounding rule of the engine lives
//! in `div_round_half_up`.
//!
//! Why integer fen: proportional shares and their remainders must compare
//! exactly (Hamilton's method breaks ties by remainder, then by line order);
//! a decimal quotient rounded to 28 digits can make two equal remainders look
//! different. `i128` because a product of a discount and a line amount (both
//! bounded by [`MAX_AMOUNT`]) needs more than 64 bits.

use rust_decimal::Decimal;

/// Fen per yuan: amounts carry 2 decimal places.
pub const FEN_PER_YUAN: i128 = 100;

/// The lowest price an activity may produce: 0.01 (one fen).
pub const MIN_PRICE_FEN: i128 = 1;

/// The largest single amount the engine accepts (a unit price or a cart line
/// amount): one trillion yuan. Far above any real goods, and low enough that
/// every product the engine forms fits in `i128` without a check failing in
/// practice (checked arithmetic still guards it).
// 10^12 = 232 * 2^32 + 3_567_587_328 (from_parts takes 32-bit words).
pub const MAX_AMOUNT: Decimal = Decimal::from_parts(3_567_587_328, 232, 0, false, 0);

/// One fen, the smallest amount: 0.01.
pub const ONE_FEN: Decimal = Decimal::from_parts(1, 0, 0, false, 2);

const MAX_AMOUNT_FEN: i128 = 1_000_000_000_000 * FEN_PER_YUAN;

/// Why an amount is not acceptable money for the engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("{0} has more than 2 decimal places")]
    Scale(Decimal),
    #[error("{0} is negative")]
    Negative(Decimal),
    #[error("{0} is above the engine's limit of 1000000000000")]
    TooLarge(Decimal),
}

/// Turns a non-negative amount with at most 2 decimal places into fen.
/// Trailing zeros beyond 2 places are accepted (`1.2300` is 123 fen); any
/// other third digit is [`MoneyError::Scale`]. No upper bound: see
/// [`to_fen_bounded`].
#[inline]
pub fn to_fen(value: Decimal) -> Result<i128, MoneyError> {
    let mantissa = value.mantissa();
    if mantissa < 0 {
        return Err(MoneyError::Negative(value));
    }
    // mantissa < 2^96, so mantissa * 100 cannot overflow i128.
    match value.scale() {
        0 => return Ok(mantissa * 100),
        1 => return Ok(mantissa * 10),
        2 => return Ok(mantissa),
        _ => {}
    }
    let divisor = 10i128.pow(value.scale() - 2);
    if mantissa % divisor != 0 {
        return Err(MoneyError::Scale(value));
    }
    Ok(mantissa / divisor)
}

/// [`to_fen`], and at most [`MAX_AMOUNT`].
pub fn to_fen_bounded(value: Decimal) -> Result<i128, MoneyError> {
    let fen = to_fen(value)?;
    if fen > MAX_AMOUNT_FEN {
        return Err(MoneyError::TooLarge(value));
    }
    Ok(fen)
}

/// Fen back to a decimal with exactly 2 places (`12.30`, not `12.3`), so
/// that wire strings always show the fen. `None` only beyond 96 bits, which
/// bounded inputs never reach.
pub fn from_fen(fen: i128) -> Option<Decimal> {
    Decimal::try_from_i128_with_scale(fen, 2).ok()
}

/// THE rounding rule of the engine: `numerator / denominator` rounded to the
/// nearest integer, halves away from zero ("half-up" for the non-negative
/// amounts money has; `RoundingStrategy::MidpointAwayFromZero` in
/// rust_decimal terms). With amounts in fen this is rounding to the fen.
/// Every rounded amount the engine produces (a discount activity's price, a
/// percent-off promotion's discount, a proportional share) goes through this
/// function. `denominator` must be positive; callers guarantee it.
#[inline]
pub(crate) fn div_round_half_up(numerator: i128, denominator: i128) -> i128 {
    debug_assert!(denominator > 0);
    // i128 division is a software routine; nearly every real amount fits in
    // i64, where it is one instruction. Same rule either way.
    let (quotient, remainder) = match (i64::try_from(numerator), i64::try_from(denominator)) {
        (Ok(n), Ok(d)) => (i128::from(n / d), i128::from(n % d)),
        _ => (numerator / denominator, numerator % denominator),
    };
    // |remainder| * 2 >= denominator means at or past the midpoint.
    if remainder.unsigned_abs() * 2 >= denominator.unsigned_abs() { quotient + numerator.signum() } else { quotient }
}

/// `amount * percent / 100` rounded by [`div_round_half_up`], with `percent`
/// given in hundredths of a percent (its fen form: 85.5 % is 8550). The
/// Discount activity and the percent-off promotion share it.
#[inline]
pub(crate) fn percent_of(amount_fen: i128, percent_fen: i128) -> Option<i128> {
    Some(div_round_half_up(amount_fen.checked_mul(percent_fen)?, 100 * FEN_PER_YUAN))
}

#[cfg(test)]
mod tests {
    use rust_decimal::RoundingStrategy;
    use rust_decimal_macros::dec;

    use super::*;

    #[test]
    fn to_fen_accepts_two_places_and_trailing_zeros() {
        assert_eq!(to_fen(dec!(12.34)), Ok(1234));
        assert_eq!(to_fen(dec!(12)), Ok(1200));
        assert_eq!(to_fen(dec!(12.3)), Ok(1230));
        assert_eq!(to_fen(dec!(1.2300)), Ok(123));
        assert_eq!(to_fen(dec!(0)), Ok(0));
        assert_eq!(to_fen(dec!(-0.00)), Ok(0));
    }

    #[test]
    fn to_fen_rejects_third_place_and_negative() {
        assert_eq!(to_fen(dec!(1.234)), Err(MoneyError::Scale(dec!(1.234))));
        assert_eq!(to_fen(dec!(-0.01)), Err(MoneyError::Negative(dec!(-0.01))));
        assert!(to_fen(Decimal::MAX).is_ok(), "the largest decimal fits in i128 fen");
    }

    #[test]
    fn bounded_rejects_above_max_amount() {
        assert_eq!(MAX_AMOUNT, dec!(1000000000000));
        assert_eq!(to_fen_bounded(MAX_AMOUNT), Ok(MAX_AMOUNT_FEN));
        let above = MAX_AMOUNT + ONE_FEN;
        assert_eq!(to_fen_bounded(above), Err(MoneyError::TooLarge(above)));
    }

    #[test]
    fn from_fen_keeps_two_places() {
        assert_eq!(from_fen(1230).unwrap().to_string(), "12.30");
        assert_eq!(from_fen(0).unwrap().to_string(), "0.00");
        assert_eq!(from_fen(i128::MAX), None);
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(div_round_half_up(5, 10), 1);
        assert_eq!(div_round_half_up(4, 10), 0);
        assert_eq!(div_round_half_up(15, 10), 2);
        assert_eq!(div_round_half_up(25, 10), 3, "not banker's rounding");
        assert_eq!(div_round_half_up(-5, 10), -1);
        assert_eq!(div_round_half_up(-4, 10), 0);
        assert_eq!(div_round_half_up(0, 7), 0);
    }

    #[test]
    fn rounding_agrees_with_rust_decimal_midpoint_away_from_zero() {
        for numerator in -1000i128..=1000 {
            for denominator in [1i128, 2, 3, 7, 10, 100, 999] {
                let expected = (Decimal::from(numerator) / Decimal::from(denominator))
                    .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
                assert_eq!(Decimal::from(div_round_half_up(numerator, denominator)), expected);
            }
        }
    }

    #[test]
    fn percent_of_rounds_to_the_fen() {
        // 19.99 * 85% = 16.9915 -> 16.99
        assert_eq!(percent_of(1999, 8500), Some(1699));
        // 0.05 * 50% = 0.025 -> 0.03
        assert_eq!(percent_of(5, 5000), Some(3));
        // 10.00 * 85.5% = 8.55
        assert_eq!(percent_of(1000, 8550), Some(855));
    }
}
