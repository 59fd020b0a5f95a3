//! Money on the wire: decimal strings with exactly 2 places ("12.30"), never floats.

use pricing_record::Fen;
use rust_decimal::Decimal;

/// Places of CNY on the wire.
pub const WIRE_SCALE: u32 = 2;

/// Formats an amount with exactly 2 decimal places. Amounts reaching the wire
/// are already whole fen (the engine's); rounding here (pricing-record's one
/// rule, half-up, through [`Fen::round`]) only pads or guards and never
/// changes a correctly rounded amount. Every decimal has a text: `Fen` holds
/// an `i128`, wider than any decimal in fen.
///
/// Written from the amount in fen rather than through `Decimal`'s `Display`:
/// the list server formats three amounts per goods, and `Display` was 8% of
/// its CPU at peak. The text is the same, except that a negative zero is "0.00".
pub fn to_wire(amount: Decimal) -> String {
    let mut text = String::with_capacity(24);
    Fen::round(amount).push_text(&mut text);
    text
}

/// Why a decimal string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("is not a decimal number")]
    Malformed,
    #[error("has more than 2 decimal places")]
    Scale,
    #[error("is negative")]
    Negative,
}

/// Parses a decimal string from a request: plain digits with an optional
/// point and at most 2 places; no sign, exponent, spaces or thousands separators.
pub fn from_wire(s: &str) -> Result<Decimal, MoneyError> {
    if s.starts_with('-') {
        return Err(MoneyError::Negative);
    }
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || int.len() > 15 || !digits(int) || !digits(frac) || (s.contains('.') && frac.is_empty()) {
        return Err(MoneyError::Malformed);
    }
    if frac.len() > WIRE_SCALE as usize {
        return Err(MoneyError::Scale);
    }
    s.parse::<Decimal>().map_err(|_| MoneyError::Malformed)
}

#[cfg(test)]
#[allow(clippy::inconsistent_digit_grouping, reason = "amounts in fen are written yuan_fen: 1_234_56 is 1234.56")]
mod tests {
    use rust_decimal::RoundingStrategy;

    use super::*;

    #[test]
    fn formats_with_two_places() {
        assert_eq!(to_wire(Decimal::new(123, 1)), "12.30");
        assert_eq!(to_wire(Decimal::new(5, 0)), "5.00");
        assert_eq!(to_wire(Decimal::new(1, 2)), "0.01");
        assert_eq!(to_wire(Decimal::new(2_25, 2)), "2.25");
    }

    #[test]
    fn formats_signs_and_large_amounts() {
        assert_eq!(to_wire(Decimal::new(-5, 1)), "-0.50");
        assert_eq!(to_wire(Decimal::new(-1_234_56, 2)), "-1234.56");
        assert_eq!(to_wire(Decimal::new(-1, 3)), "0.00", "rounds to a negative zero, written without a sign");
        assert_eq!(to_wire(Decimal::new(5, 3)), "0.01", "half-up");
        assert_eq!(to_wire(Decimal::MAX), format!("{}.00", Decimal::MAX), "whole amounts of any size");
        let no_room = Decimal::from_i128_with_scale(Decimal::MAX.mantissa(), 1) + Decimal::new(1, 3);
        assert_eq!(to_wire(no_room), "7922816251426433759354395033.50", "29 digits with 2 places: still exact");
        let beyond_u64 = Decimal::from_i128_with_scale(123_456_789_012_345_678_901_234_567, 2);
        assert_eq!(to_wire(beyond_u64), "1234567890123456789012345.67");
    }

    proptest::proptest! {
        /// The same text as `Decimal`'s own formatting at 2 places.
        #[test]
        fn matches_decimal_display(mantissa in proptest::num::i64::ANY, scale in 0u32..=8) {
            let amount = Decimal::new(mantissa, scale);
            let mut expected = amount.round_dp_with_strategy(WIRE_SCALE, RoundingStrategy::MidpointAwayFromZero);
            expected.rescale(WIRE_SCALE);
            let expected = if expected.is_zero() { "0.00".to_owned() } else { expected.to_string() };
            proptest::prop_assert_eq!(to_wire(amount), expected);
        }
    }

    #[test]
    fn parses_only_plain_decimals() {
        assert_eq!(from_wire("111.00"), Ok(Decimal::new(111_00, 2)));
        assert_eq!(from_wire("7"), Ok(Decimal::new(7, 0)));
        assert_eq!(from_wire("1.5"), Ok(Decimal::new(15, 1)));
        for bad in ["", "abc", "1e3", " 1", "1.", ".5", "1,000.00", "NaN", "+1", "1.2.3"] {
            assert_eq!(from_wire(bad), Err(MoneyError::Malformed), "{bad:?}");
        }
        assert_eq!(from_wire("1.001"), Err(MoneyError::Scale));
        assert_eq!(from_wire("-1.00"), Err(MoneyError::Negative));
    }
}
