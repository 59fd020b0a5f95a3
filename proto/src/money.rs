//! Money on the wire: decimal strings with exactly 2 places ("12.30"), never floats.

use rust_decimal::{Decimal, RoundingStrategy};

/// Places of CNY on the wire.
pub const WIRE_SCALE: u32 = 2;

/// Formats an amount with exactly 2 decimal places. Amounts reaching the wire
/// are already rounded to the fen by the engine; rounding here (half-up) only
/// pads or guards and never changes a correctly rounded amount.
pub fn to_wire(amount: Decimal) -> String {
    let mut d = amount.round_dp_with_strategy(WIRE_SCALE, RoundingStrategy::MidpointAwayFromZero);
    d.rescale(WIRE_SCALE);
    d.to_string()
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
mod tests {
    use super::*;

    #[test]
    fn formats_with_two_places() {
        assert_eq!(to_wire(Decimal::new(123, 1)), "12.30");
        assert_eq!(to_wire(Decimal::new(5, 0)), "5.00");
        assert_eq!(to_wire(Decimal::new(1, 2)), "0.01");
        assert_eq!(to_wire(Decimal::new(2_25, 2)), "2.25");
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
