//! Money as integer fen: the one decimal <-> fen conversion and the one
//! rounding rule of the workspace.
//!
//! Amounts are [`Decimal`] (CNY, 2 places) in the record, the engine's API
//! and the wire; they are integer fen in storage (the codec, SQL columns),
//! in quote ids and inside the engine's arithmetic. [`Fen`] is that integer
//! amount, and every crossing between the two forms goes through it:
//!
//! - [`Fen::from_amount`]: an amount from source data or a caller, exact
//!   (at most 2 decimal places, trailing zeros allowed) and not negative.
//! - [`Fen::round`]: any decimal rounded to the fen by [`div_round_half_up`],
//!   THE rounding rule (halves away from zero: "half-up" for the
//!   non-negative amounts money has).
//! - [`Fen::to_decimal`]: back to a decimal with exactly 2 places.
//! - [`Fen::to_i64`]: the width of storage columns, the codec and quote ids.
//!
//! Nothing saturates: an amount that does not fit where it goes is a
//! [`MoneyError`], which callers turn into a precise error, never a wrong
//! price. `Fen` holds an `i128`, so every decimal (96-bit mantissa) has a
//! fen value, and the engine's products of two amounts fit without a check
//! failing in practice (checked arithmetic still guards them).

use std::fmt;

use rust_decimal::Decimal;

use crate::model::MONEY_SCALE;

/// Fen per yuan: amounts carry 2 decimal places.
pub const FEN_PER_YUAN: i128 = 100;

/// The largest single amount the engine accepts (a unit price or a cart line
/// amount): one trillion yuan. Far above any real goods, and low enough that
/// every product the engine forms fits in `i128`.
// 10^12 = 232 * 2^32 + 3_567_587_328 (from_parts takes 32-bit words).
pub const MAX_AMOUNT: Decimal = Decimal::from_parts(3_567_587_328, 232, 0, false, 0);

/// [`MAX_AMOUNT`] in fen.
pub const MAX_AMOUNT_FEN: Fen = Fen(1_000_000_000_000 * FEN_PER_YUAN);

/// Why an amount cannot be money, or cannot be represented where it goes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("{0} has more than 2 decimal places")]
    Scale(Decimal),
    #[error("{0} is negative")]
    Negative(Decimal),
    #[error("{0} is above the limit of 1000000000000")]
    TooLarge(Decimal),
    /// A fen amount that the target type cannot hold.
    #[error("{fen} fen does not fit in {target}")]
    OutOfRange { fen: i128, target: &'static str },
}

/// An amount in whole fen (0.01 CNY). Signed: differences and the guards of
/// formatting may be negative; amounts read with [`Fen::from_amount`] never are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fen(i128);

impl Fen {
    pub const ZERO: Fen = Fen(0);
    /// One fen, the smallest amount: 0.01.
    pub const ONE: Fen = Fen(1);

    #[inline]
    pub const fn new(fen: i128) -> Fen {
        Fen(fen)
    }

    /// The amount in fen.
    #[inline]
    pub const fn get(self) -> i128 {
        self.0
    }

    /// An amount from source data or a request: not negative, at most 2
    /// decimal places. Trailing zeros beyond 2 places are accepted (`1.2300`
    /// is 123 fen); any other third digit is [`MoneyError::Scale`], never
    /// rounded away. `-0.00` is zero.
    #[inline]
    pub fn from_amount(value: Decimal) -> Result<Fen, MoneyError> {
        let fen = Fen::exact(value)?;
        if fen.0 < 0 {
            return Err(MoneyError::Negative(value));
        }
        Ok(fen)
    }

    /// [`Fen::from_amount`], and at most [`MAX_AMOUNT`].
    pub fn from_amount_bounded(value: Decimal) -> Result<Fen, MoneyError> {
        let fen = Fen::from_amount(value)?;
        if fen > MAX_AMOUNT_FEN {
            return Err(MoneyError::TooLarge(value));
        }
        Ok(fen)
    }

    /// A decimal of either sign with at most 2 places (trailing zeros
    /// aside), exactly.
    #[inline]
    pub fn exact(value: Decimal) -> Result<Fen, MoneyError> {
        let mantissa = value.mantissa();
        // mantissa < 2^96, so mantissa * 100 cannot overflow i128.
        match value.scale() {
            0 => Ok(Fen(mantissa * FEN_PER_YUAN)),
            1 => Ok(Fen(mantissa * 10)),
            2 => Ok(Fen(mantissa)),
            scale => {
                let divisor = 10i128.pow(scale - MONEY_SCALE);
                if mantissa % divisor != 0 {
                    return Err(MoneyError::Scale(value));
                }
                Ok(Fen(mantissa / divisor))
            }
        }
    }

    /// Any decimal rounded to the fen by [`div_round_half_up`]. Total: every
    /// decimal has a fen value.
    #[inline]
    pub fn round(value: Decimal) -> Fen {
        match value.scale() {
            // At most 2 places: exact, nothing to round.
            scale @ 0..=MONEY_SCALE => Fen(value.mantissa() * 10i128.pow(MONEY_SCALE - scale)),
            // scale <= 28: 10^(scale - 2) < 2^94 fits in i128 and is positive.
            scale => Fen(div_round_half_up(value.mantissa(), 10i128.pow(scale - MONEY_SCALE))),
        }
    }

    /// The amount as a decimal with exactly 2 places (`12.30`, not `12.3`),
    /// so that wire strings always show the fen. Fails only beyond the 96
    /// bits of a decimal's mantissa, which bounded amounts never reach.
    #[inline]
    pub fn to_decimal(self) -> Result<Decimal, MoneyError> {
        Decimal::try_from_i128_with_scale(self.0, MONEY_SCALE)
            .map_err(|_| MoneyError::OutOfRange { fen: self.0, target: "a decimal" })
    }

    /// The amount as the `i64` of storage columns, the codec and quote ids.
    #[inline]
    pub fn to_i64(self) -> Result<i64, MoneyError> {
        i64::try_from(self.0).map_err(|_| MoneyError::OutOfRange { fen: self.0, target: "64 bits" })
    }
}

impl From<i64> for Fen {
    #[inline]
    fn from(fen: i64) -> Fen {
        Fen(i128::from(fen))
    }
}

impl Fen {
    /// Appends the wire text ("12.30", "-0.50", "0.00": exactly 2 places) to
    /// `out`. The list server writes three amounts per goods: integers go
    /// through `itoa` (no formatting machinery, u64 arithmetic whenever the
    /// amount fits, which every price does), the cents as two digits.
    pub fn push_text(self, out: &mut String) {
        let magnitude = self.0.unsigned_abs();
        if self.0 < 0 {
            out.push('-');
        }
        let mut digits = itoa::Buffer::new();
        let cents = match u64::try_from(magnitude) {
            Ok(fen) => {
                out.push_str(digits.format(fen / 100));
                fen % 100
            }
            Err(_) => {
                out.push_str(digits.format(magnitude / 100));
                // The remainder of a division by 100 is below 100.
                u64::try_from(magnitude % 100).unwrap_or(0)
            }
        };
        out.push('.');
        let at = usize::try_from(cents).unwrap_or(0) * 2;
        out.push_str(CENTS.get(at..at + 2).unwrap_or("00"));
    }
}

/// "00" to "99" one after the other: the cents of [`Fen::push_text`].
const CENTS: &str = "0001020304050607080910111213141516171819202122232425262728293031323334353637383940414243444546474849\
    5051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899";

/// "12.30", "-0.50", "0.00": the amount with exactly 2 places, the text of
/// money on the wire ([`Fen::push_text`]).
impl fmt::Display for Fen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::with_capacity(24);
        self.push_text(&mut text);
        f.write_str(&text)
    }
}

/// THE rounding rule: `numerator / denominator` rounded to the nearest
/// integer, halves away from zero ("half-up" for the non-negative amounts
/// money has; `RoundingStrategy::MidpointAwayFromZero` in rust_decimal
/// terms). With amounts in fen this is rounding to the fen. Every rounded
/// amount of the workspace goes through it: [`Fen::round`], the engine's
/// discount prices, percent-off promotions and proportional shares.
/// `denominator` must be positive; callers guarantee it.
#[inline]
pub fn div_round_half_up(numerator: i128, denominator: i128) -> i128 {
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rust_decimal::RoundingStrategy;
    use rust_decimal_macros::dec;

    use super::*;

    #[test]
    fn from_amount_accepts_two_places_and_trailing_zeros() {
        assert_eq!(Fen::from_amount(dec!(12.34)), Ok(Fen(1234)));
        assert_eq!(Fen::from_amount(dec!(12)), Ok(Fen(1200)));
        assert_eq!(Fen::from_amount(dec!(12.3)), Ok(Fen(1230)));
        assert_eq!(Fen::from_amount(dec!(1.2300)), Ok(Fen(123)));
        assert_eq!(Fen::from_amount(dec!(0)), Ok(Fen(0)));
        assert_eq!(Fen::from_amount(dec!(-0.00)), Ok(Fen(0)));
    }

    #[test]
    fn from_amount_rejects_third_place_and_negative() {
        assert_eq!(Fen::from_amount(dec!(1.234)), Err(MoneyError::Scale(dec!(1.234))));
        assert_eq!(Fen::from_amount(dec!(-0.01)), Err(MoneyError::Negative(dec!(-0.01))));
        assert!(Fen::from_amount(Decimal::MAX).is_ok(), "the largest decimal fits in i128 fen");
    }

    #[test]
    fn bounded_rejects_above_max_amount() {
        assert_eq!(MAX_AMOUNT, dec!(1000000000000));
        assert_eq!(Fen::from_amount_bounded(MAX_AMOUNT), Ok(MAX_AMOUNT_FEN));
        let above = MAX_AMOUNT + dec!(0.01);
        assert_eq!(Fen::from_amount_bounded(above), Err(MoneyError::TooLarge(above)));
    }

    #[test]
    fn to_decimal_keeps_two_places() {
        assert_eq!(Fen(1230).to_decimal().map(|d| d.to_string()), Ok("12.30".to_owned()));
        assert_eq!(Fen(0).to_decimal().map(|d| d.to_string()), Ok("0.00".to_owned()));
        assert_eq!(Fen(i128::MAX).to_decimal(), Err(MoneyError::OutOfRange { fen: i128::MAX, target: "a decimal" }));
    }

    #[test]
    fn to_i64_refuses_what_does_not_fit() {
        assert_eq!(Fen(-5).to_i64(), Ok(-5));
        assert_eq!(Fen::from(i64::MAX).to_i64(), Ok(i64::MAX));
        let beyond = i128::from(i64::MAX) + 1;
        assert_eq!(Fen(beyond).to_i64(), Err(MoneyError::OutOfRange { fen: beyond, target: "64 bits" }));
    }

    #[test]
    fn rounds_half_away_from_zero() {
        assert_eq!(div_round_half_up(5, 10), 1);
        assert_eq!(div_round_half_up(4, 10), 0);
        assert_eq!(div_round_half_up(15, 10), 2);
        assert_eq!(div_round_half_up(25, 10), 3, "not banker's rounding");
        assert_eq!(div_round_half_up(-5, 10), -1);
        assert_eq!(div_round_half_up(-4, 10), 0);
        assert_eq!(div_round_half_up(0, 7), 0);
        assert_eq!(Fen::round(dec!(0.005)), Fen(1), "half-up");
        assert_eq!(Fen::round(dec!(0.025)), Fen(3), "not half-even");
        assert_eq!(Fen::round(dec!(-0.005)), Fen(-1));
        assert_eq!(Fen::round(dec!(12.3)), Fen(1230));
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
    fn displays_two_places() {
        assert_eq!(Fen(1230).to_string(), "12.30");
        assert_eq!(Fen(5).to_string(), "0.05");
        assert_eq!(Fen(-50).to_string(), "-0.50");
        assert_eq!(Fen(0).to_string(), "0.00");
        assert_eq!(Fen(i128::MAX).to_string(), "1701411834604692317316873037158841057.27");
    }

    proptest! {
        /// Fen -> decimal -> fen is the identity, and the decimal has 2 places.
        #[test]
        fn fen_round_trips_through_decimal(fen in any::<i64>()) {
            let decimal = Fen::from(fen).to_decimal().unwrap();
            prop_assert_eq!(decimal.scale(), MONEY_SCALE);
            prop_assert_eq!(Fen::exact(decimal), Ok(Fen::from(fen)));
            prop_assert_eq!(Fen::round(decimal), Fen::from(fen));
            prop_assert_eq!(Fen::from(fen).to_i64(), Ok(fen));
        }

        /// Rounding is rust_decimal's MidpointAwayFromZero at 2 places, and
        /// exact conversion accepts a decimal exactly when rounding does not change it.
        #[test]
        fn round_matches_rust_decimal(mantissa in any::<i64>(), scale in 0u32..=12) {
            let value = Decimal::new(mantissa, scale);
            let expected = value.round_dp_with_strategy(MONEY_SCALE, RoundingStrategy::MidpointAwayFromZero);
            let rounded = Fen::round(value);
            prop_assert_eq!(rounded.to_decimal().unwrap(), expected);
            match Fen::exact(value) {
                Ok(fen) => prop_assert_eq!(fen, rounded),
                Err(error) => {
                    prop_assert_eq!(error, MoneyError::Scale(value));
                    prop_assert_ne!(expected, value);
                }
            }
        }

        /// The text is rust_decimal's own at 2 places.
        #[test]
        fn display_matches_decimal(fen in any::<i64>()) {
            let expected = Decimal::new(fen, MONEY_SCALE).to_string();
            prop_assert_eq!(Fen::from(fen).to_string(), expected);
        }
    }
}
