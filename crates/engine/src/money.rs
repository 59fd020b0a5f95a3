//! Money inside the engine.
//!
//! Layout: amounts cross the public API as [`Decimal`] (CNY, 2 places) and
//! are turned into integer fen (`i128`) on the way in and back on the way
//! out, through pricing-record's [`Fen`], which owns that conversion and
//! the one rounding rule ([`div_round_half_up`]). Inside, every sum, share
//! and comparison is exact integer arithmetic.
//!
//! Why integer fen: proportional shares and their remainders must compare
//! exactly (Hamilton's method breaks ties by remainder, then by line order);
//! a decimal quotient rounded to 28 digits can make two equal remainders look
//! different. `i128` because a product of a discount and a line amount (both
//! bounded by [`MAX_AMOUNT`]) needs more than 64 bits.

use rust_decimal::Decimal;

pub use pricing_record::money::{FEN_PER_YUAN, Fen, MAX_AMOUNT, MoneyError, div_round_half_up};

/// The lowest price an activity may produce: 0.01 (one fen).
pub const MIN_PRICE_FEN: i128 = Fen::ONE.get();

/// An amount from the API in fen: [`Fen::from_amount`].
#[inline]
pub(crate) fn fen(value: Decimal) -> Result<i128, MoneyError> {
    Fen::from_amount(value).map(Fen::get)
}

/// An amount from the API in fen, at most [`MAX_AMOUNT`]: [`Fen::from_amount_bounded`].
#[inline]
pub(crate) fn fen_bounded(value: Decimal) -> Result<i128, MoneyError> {
    Fen::from_amount_bounded(value).map(Fen::get)
}

/// Fen back to a decimal with 2 places: [`Fen::to_decimal`]. `None` only
/// beyond 96 bits, which bounded inputs never reach.
#[inline]
pub(crate) fn decimal(fen: i128) -> Option<Decimal> {
    Fen::new(fen).to_decimal().ok()
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
    use super::*;

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
