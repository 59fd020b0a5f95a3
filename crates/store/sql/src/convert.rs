//! Conversions between domain values and column values, both ways. Writing
//! refuses what a column cannot hold exactly ([`SqlError`]); reading refuses
//! what a column should never hold ([`RowError`]).

use pricing_record::{ActivityKind, ActivityStatus, Fen, GoodsStatus, check_money};
use rust_decimal::Decimal;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::{RowError, SqlError};

/// An id or count as the signed BIGINT both backends store.
pub(crate) fn to_db(field: &'static str, value: u64) -> Result<i64, SqlError> {
    i64::try_from(value).map_err(|_| SqlError::OutOfRange { field, value })
}

/// A stored id or count back to `u64`; negative means corrupt.
pub(crate) fn from_db(column: &'static str, value: i64) -> Result<u64, RowError> {
    u64::try_from(value).map_err(|_| RowError::OutOfRange { column, value })
}

/// An amount with at most 2 decimal places to its integer hundredths (fen, or
/// hundredths of a percent). Exact: no float on the way.
/// The conversion is pricing-record's [`Fen`].
pub(crate) fn to_x100(field: &'static str, value: Decimal) -> Result<i64, SqlError> {
    check_money(field, value)?;
    Fen::from_amount(value)
        .and_then(Fen::to_i64)
        .map_err(|_| SqlError::InvalidInput(format!("{field} = {value} is too large")))
}

/// Stored hundredths back to a decimal with 2 places; negative means corrupt.
pub(crate) fn from_x100(column: &'static str, value: i64) -> Result<Decimal, RowError> {
    if value < 0 {
        return Err(RowError::OutOfRange { column, value });
    }
    Fen::from(value).to_decimal().map_err(|_| RowError::OutOfRange { column, value })
}

pub(crate) fn get<T>(row: &AnyRow, column: &'static str) -> Result<T, RowError>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get::<T, _>(column).map_err(|e| RowError::Column { column, message: e.to_string() })
}

pub(crate) fn get_u64(row: &AnyRow, column: &'static str) -> Result<u64, RowError> {
    from_db(column, get::<i64>(row, column)?)
}

pub(crate) fn get_u32(row: &AnyRow, column: &'static str) -> Result<u32, RowError> {
    let value = get::<i64>(row, column)?;
    u32::try_from(value).map_err(|_| RowError::OutOfRange { column, value })
}

pub(crate) fn get_i32(row: &AnyRow, column: &'static str) -> Result<i32, RowError> {
    let value = get::<i64>(row, column)?;
    i32::try_from(value).map_err(|_| RowError::OutOfRange { column, value })
}

pub(crate) fn get_bool(row: &AnyRow, column: &'static str) -> Result<bool, RowError> {
    match get::<i64>(row, column)? {
        0 => Ok(false),
        1 => Ok(true),
        value => Err(RowError::OutOfRange { column, value }),
    }
}

pub(crate) fn goods_status_str(status: GoodsStatus) -> Result<&'static str, SqlError> {
    match status {
        GoodsStatus::OnSale => Ok("on_sale"),
        GoodsStatus::Delisted => Ok("delisted"),
        GoodsStatus::Deleted => {
            Err(SqlError::InvalidInput("status Deleted is written with delete_goods, not upsert_goods".into()))
        }
    }
}

pub(crate) fn goods_status(column: &'static str, value: &str) -> Result<GoodsStatus, RowError> {
    match value {
        "on_sale" => Ok(GoodsStatus::OnSale),
        "delisted" => Ok(GoodsStatus::Delisted),
        other => Err(RowError::Unknown { column, value: other.to_owned() }),
    }
}

pub(crate) fn activity_kind_str(kind: ActivityKind) -> &'static str {
    match kind {
        ActivityKind::FlashSale => "flash_sale",
        ActivityKind::Discount => "discount",
        ActivityKind::AmountOff => "amount_off",
        ActivityKind::Subsidy => "subsidy",
    }
}

pub(crate) fn activity_kind(column: &'static str, value: &str) -> Result<ActivityKind, RowError> {
    match value {
        "flash_sale" => Ok(ActivityKind::FlashSale),
        "discount" => Ok(ActivityKind::Discount),
        "amount_off" => Ok(ActivityKind::AmountOff),
        "subsidy" => Ok(ActivityKind::Subsidy),
        other => Err(RowError::Unknown { column, value: other.to_owned() }),
    }
}

pub(crate) fn activity_status_str(status: ActivityStatus) -> &'static str {
    match status {
        ActivityStatus::Draft => "draft",
        ActivityStatus::Online => "online",
        ActivityStatus::Offline => "offline",
    }
}

pub(crate) fn activity_status(column: &'static str, value: &str) -> Result<ActivityStatus, RowError> {
    match value {
        "draft" => Ok(ActivityStatus::Draft),
        "online" => Ok(ActivityStatus::Online),
        "offline" => Ok(ActivityStatus::Offline),
        other => Err(RowError::Unknown { column, value: other.to_owned() }),
    }
}

/// Ids as the comma-separated list a VARCHAR column holds ("" = none).
pub(crate) fn encode_ids(field: &'static str, ids: &[u64], max_len: usize) -> Result<String, SqlError> {
    let text = ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    if text.len() > max_len {
        return Err(SqlError::InvalidInput(format!("{field}: {} ids do not fit in {max_len} characters", ids.len())));
    }
    Ok(text)
}

pub(crate) fn decode_ids(column: &'static str, text: &str) -> Result<Vec<u64>, RowError> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|part| part.parse::<u64>().map_err(|_| RowError::List { column, value: text.to_owned() }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn hundredths_are_exact_both_ways() {
        for (value, want) in [(dec!(0.01), 1), (dec!(19.9), 1_990), (dec!(85), 8_500), (dec!(1.500), 150)] {
            let x100 = to_x100("v", value).unwrap();
            assert_eq!(x100, want, "{value}");
            assert_eq!(from_x100("v", x100).unwrap(), value);
        }
        assert!(to_x100("v", dec!(0.001)).is_err(), "3 places must be refused");
        assert!(to_x100("v", dec!(-1)).is_err(), "negative must be refused");
        assert!(from_x100("v", -1).is_err(), "negative stored value is corrupt");
    }

    #[test]
    fn id_lists_round_trip_and_reject_garbage() {
        let text = encode_ids("city_ids", &[110_000, 310_000], 100).unwrap();
        assert_eq!(text, "110000,310000");
        assert_eq!(decode_ids("c", &text).unwrap(), vec![110_000, 310_000]);
        assert_eq!(decode_ids("c", "").unwrap(), Vec::<u64>::new());
        assert!(decode_ids("c", "1,,2").is_err());
        assert!(decode_ids("c", "1,x").is_err());
        assert!(encode_ids("c", &[1; 100], 10).is_err());
    }

    #[test]
    fn ids_above_i64_are_refused() {
        assert!(to_db("id", u64::MAX).is_err());
        assert_eq!(to_db("id", 7).unwrap(), 7);
        assert!(from_db("id", -7).is_err());
    }
}
