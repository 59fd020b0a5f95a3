//! Discount depth: how much of the original price an answer takes off, in
//! basis points and in the bands the result metrics, the alerts and the
//! sale-day rehearsal count by (none, <10%, 10-30%, 30-50%, 50-70%, 70-90%,
//! >=90% off). The one definition of both.

use pricing_record::money::Fen;
use rust_decimal::Decimal;

/// How deep the discount of an answer is, in percent off the original: the
/// `band` label. Lower bounds inclusive: exactly 10% off is `10_30`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Band {
    /// The original price.
    None,
    Lt10,
    From10To30,
    From30To50,
    From50To70,
    From70To90,
    /// 90% off or more: the fat-finger zone.
    Ge90,
}

impl Band {
    pub const COUNT: usize = 7;
    pub const ALL: [Band; Band::COUNT] =
        [Band::None, Band::Lt10, Band::From10To30, Band::From30To50, Band::From50To70, Band::From70To90, Band::Ge90];

    pub const fn as_str(self) -> &'static str {
        match self {
            Band::None => "none",
            Band::Lt10 => "lt10",
            Band::From10To30 => "10_30",
            Band::From30To50 => "30_50",
            Band::From50To70 => "50_70",
            Band::From70To90 => "70_90",
            Band::Ge90 => "ge90",
        }
    }

    /// The band of a discount of `basis_points` of the original (0 is none).
    pub const fn of(basis_points: u32) -> Band {
        match basis_points {
            0 => Band::None,
            1..1_000 => Band::Lt10,
            1_000..3_000 => Band::From10To30,
            3_000..5_000 => Band::From30To50,
            5_000..7_000 => Band::From50To70,
            7_000..9_000 => Band::From70To90,
            _ => Band::Ge90,
        }
    }

    /// The band's place in [`Band::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl Band {
    /// The band of `price` on `original` (see [`discount_basis_points`]).
    pub fn between(original: Decimal, price: Decimal) -> Band {
        Band::of(discount_basis_points(original, price))
    }
}

/// The discount of `price` on `original` in basis points of `original`,
/// rounded down, within 0..=10000 (0 when either is not a valid amount or
/// the price is not below the original).
pub fn discount_basis_points(original: Decimal, price: Decimal) -> u32 {
    let (Ok(original), Ok(price)) = (Fen::from_amount(original), Fen::from_amount(price)) else {
        return 0;
    };
    let (original, price) = (original.get(), price.get());
    if original <= 0 || price >= original {
        return 0;
    }
    let off = (original - price.max(0)).saturating_mul(10_000) / original;
    u32::try_from(off.clamp(0, 10_000)).unwrap_or(10_000)
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;

    #[test]
    fn bands_have_inclusive_lower_edges() {
        let cases = [
            (0, Band::None),
            (1, Band::Lt10),
            (999, Band::Lt10),
            (1_000, Band::From10To30),
            (2_999, Band::From10To30),
            (3_000, Band::From30To50),
            (5_000, Band::From50To70),
            (7_000, Band::From70To90),
            (8_999, Band::From70To90),
            (9_000, Band::Ge90),
            (10_000, Band::Ge90),
        ];
        for (bp, band) in cases {
            assert_eq!(Band::of(bp), band, "{bp}");
        }
    }

    #[test]
    fn discount_is_basis_points_of_the_original_rounded_down() {
        assert_eq!(discount_basis_points(dec!(100.00), dec!(60.00)), 4_000);
        assert_eq!(discount_basis_points(dec!(599.00), dec!(5.99)), 9_900);
        assert_eq!(discount_basis_points(dec!(3.00), dec!(2.00)), 3_333);
        assert_eq!(discount_basis_points(dec!(10), dec!(10)), 0);
        assert_eq!(discount_basis_points(dec!(10), dec!(12)), 0, "not a discount");
        assert_eq!(discount_basis_points(dec!(0), dec!(0)), 0);
        assert_eq!(discount_basis_points(dec!(10.001), dec!(1)), 0, "not an amount");
    }

    #[test]
    fn bands_by_share_off() {
        assert_eq!(Band::between(dec!(100), dec!(100)), Band::None);
        assert_eq!(Band::between(dec!(100), dec!(90.01)), Band::Lt10);
        assert_eq!(Band::between(dec!(100), dec!(90)), Band::From10To30);
        assert_eq!(Band::between(dec!(100), dec!(50.01)), Band::From30To50);
        assert_eq!(Band::between(dec!(100), dec!(50)), Band::From50To70);
        assert_eq!(Band::between(dec!(100), dec!(10.01)), Band::From70To90);
        assert_eq!(Band::between(dec!(599), dec!(5.99)), Band::Ge90);
    }
}
