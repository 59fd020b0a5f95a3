use rust_decimal::Decimal;

use crate::model::ActivityKind;
use crate::money::MoneyError;

/// Why a record (or one of its activities) is not valid source data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRecord {
    #[error("goods id is 0")]
    ZeroGoodsId,
    #[error("version is 0")]
    ZeroVersion,
    #[error("{field} = {value} has more than 2 decimal places")]
    Scale { field: &'static str, value: Decimal },
    #[error("{field} = {value} is negative")]
    Negative { field: &'static str, value: Decimal },
    #[error("{field}: {error}")]
    Money { field: &'static str, error: MoneyError },
    #[error("{field} = {value} must be above zero")]
    NonPositive { field: &'static str, value: Decimal },
    #[error("currency {0:?} is not an ISO 4217 code")]
    Currency(String),
    #[error("activity {activity_id} belongs to goods {goods_id}, not to this record")]
    ForeignActivity { activity_id: u64, goods_id: u64 },
    #[error("activity {activity_id} has an empty window (end <= start)")]
    EmptyWindow { activity_id: u64 },
    #[error("activity {activity_id} has no channel")]
    NoChannel { activity_id: u64 },
    #[error("activity {activity_id}: value {value} is out of range for {kind:?}")]
    ActivityValue { activity_id: u64, kind: ActivityKind, value: Decimal },
    #[error("unknown channel bits {0:#x}")]
    UnknownChannelBits(u8),
}

impl InvalidRecord {
    /// A [`MoneyError`] of `field`: scale and sign keep their own variants.
    pub fn money(field: &'static str, error: MoneyError) -> InvalidRecord {
        match error {
            MoneyError::Scale(value) => InvalidRecord::Scale { field, value },
            MoneyError::Negative(value) => InvalidRecord::Negative { field, value },
            error => InvalidRecord::Money { field, error },
        }
    }
}

/// Why stored bytes could not be decoded into a record. Every variant means
/// the same to a reader: treat it as a miss of that store and count it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty value")]
    Empty,
    #[error("value is shorter than its header")]
    Truncated,
    #[error("header version {header} differs from payload version {payload}")]
    HeaderMismatch { header: u64, payload: u64 },
    #[error("unknown format byte {0:#04x}")]
    UnknownFormat(u8),
    #[error("compressed payload is corrupt: {0}")]
    Decompress(String),
    #[error("declared size {0} is above the limit")]
    TooLarge(usize),
    #[error("protobuf is corrupt or truncated: {0}")]
    Protobuf(String),
    #[error("unknown enum value {value} for {field}")]
    UnknownEnum { field: &'static str, value: i32 },
    #[error("amount {0} is out of range")]
    Amount(i64),
    #[error("record is for goods {found}, key was {expected}")]
    WrongGoods { expected: u64, found: u64 },
    #[error("invalid record: {0}")]
    Invalid(#[from] InvalidRecord),
}
