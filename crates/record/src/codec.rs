//! The compact binary form of a [`GoodsRecord`], as stored in Redis and HBase.
//!
//! Layout: one format byte, the record's version as 8 bytes big-endian, then
//! the payload. The version sits at a fixed place so that a store can compare
//! versions without decoding (Redis does it in a Lua script, byte by byte:
//! big-endian bytes order like the numbers they hold).
//! - format `0x01`: the payload is the protobuf message [`RecordPb`];
//! - format `0x02`: the payload is that message compressed with LZ4 (block
//!   format, the uncompressed size prepended as 4 bytes little-endian), used
//!   when the plain form is larger than [`COMPRESS_ABOVE`] bytes.
//!
//! The header's version must equal the version inside the payload; a
//! mismatch is corruption.
//!
//! Amounts travel as integer fen (hundredths), so they are exact; the decoder
//! rejects anything it cannot read (unknown format, truncated or corrupt
//! bytes, unknown enum values, a record that fails validation) with a typed
//! [`DecodeError`] and never panics: readers count that as a miss of the
//! store.

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;
use rust_decimal::Decimal;

use crate::error::{DecodeError, InvalidRecord};
use crate::model::{Activity, ActivityKind, ActivityStatus, Channels, GoodsId, GoodsRecord, GoodsStatus};
use crate::money::Fen;

const FORMAT_PLAIN: u8 = 0x01;
const FORMAT_LZ4: u8 = 0x02;

/// Bytes before the payload: format byte and version.
pub const HEADER_LEN: usize = 9;

/// Plain records above this many bytes are compressed.
pub const COMPRESS_ABOVE: usize = 512;

/// The largest decoded record accepted: a bound against a corrupt or hostile
/// size prefix. A goods with a thousand activities is far below it.
pub const MAX_DECODED: usize = 1 << 20;

#[derive(Clone, PartialEq, Message)]
struct RecordPb {
    #[prost(uint64, tag = "1")]
    goods_id: u64,
    #[prost(uint64, tag = "2")]
    version: u64,
    #[prost(uint64, tag = "3")]
    store_id: u64,
    #[prost(int64, tag = "4")]
    base_price_fen: i64,
    #[prost(string, tag = "5")]
    currency: String,
    #[prost(int32, tag = "6")]
    status: i32,
    #[prost(message, repeated, tag = "7")]
    activities: Vec<ActivityPb>,
}

#[derive(Clone, PartialEq, Message)]
struct ActivityPb {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(int32, tag = "2")]
    kind: i32,
    /// Value in hundredths: fen for prices and amounts, 0.01% for a discount.
    #[prost(int64, tag = "3")]
    value_centi: i64,
    #[prost(int64, tag = "4")]
    start_ms: i64,
    #[prost(int64, tag = "5")]
    end_ms: i64,
    #[prost(uint32, tag = "6")]
    channels: u32,
    #[prost(uint64, repeated, tag = "7")]
    city_ids: Vec<u64>,
    #[prost(uint64, repeated, tag = "8")]
    store_ids: Vec<u64>,
    #[prost(bool, tag = "9")]
    new_user_only: bool,
    #[prost(uint32, tag = "10")]
    min_member_level: u32,
    /// Stock plus one; 0 means unlimited (keeps "unlimited" the compact default).
    #[prost(uint64, tag = "11")]
    stock_left_plus_one: u64,
    #[prost(uint32, tag = "12")]
    per_user_limit: u32,
    #[prost(int32, tag = "13")]
    priority: i32,
    #[prost(int32, tag = "14")]
    status: i32,
    #[prost(bool, tag = "15")]
    deleted: bool,
}

/// Encodes a record. Fails only when an amount cannot be stored exactly (more
/// than 2 decimal places, negative, or beyond the fen range); other activity
/// faults are kept and left for the engine to drop with a trace reason.
pub fn encode(record: &GoodsRecord) -> Result<Bytes, InvalidRecord> {
    let pb = to_pb(record)?;
    let len = pb.encoded_len();
    let mut plain = BytesMut::with_capacity(len + HEADER_LEN);
    plain.put_u8(FORMAT_PLAIN);
    plain.put_u64(record.version);
    #[expect(clippy::expect_used, reason = "encoding fails only on a full buffer, and BytesMut grows as needed")]
    pb.encode(&mut plain).expect("BytesMut grows as needed");
    if len <= COMPRESS_ABOVE {
        return Ok(plain.freeze());
    }
    let compressed = lz4_flex::compress_prepend_size(&plain[HEADER_LEN..]);
    let mut out = BytesMut::with_capacity(compressed.len() + HEADER_LEN);
    out.put_u8(FORMAT_LZ4);
    out.put_u64(record.version);
    out.put_slice(&compressed);
    Ok(out.freeze())
}

/// Decodes stored bytes. Every failure is a typed error, never a panic.
pub fn decode(bytes: &[u8]) -> Result<GoodsRecord, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    let header_version = peek_version(bytes)?;
    let (format, payload) = (bytes[0], &bytes[HEADER_LEN..]);
    let pb = match format {
        FORMAT_PLAIN => RecordPb::decode(payload),
        FORMAT_LZ4 => {
            let declared = payload
                .get(..4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
                .ok_or_else(|| DecodeError::Decompress("missing size prefix".into()))?;
            if declared > MAX_DECODED {
                return Err(DecodeError::TooLarge(declared));
            }
            let plain =
                lz4_flex::decompress_size_prepended(payload).map_err(|e| DecodeError::Decompress(e.to_string()))?;
            RecordPb::decode(plain.as_slice())
        }
        other => return Err(DecodeError::UnknownFormat(other)),
    }
    .map_err(|e| DecodeError::Protobuf(e.to_string()))?;
    let record = from_pb(pb)?;
    if record.version != header_version {
        return Err(DecodeError::HeaderMismatch { header: header_version, payload: record.version });
    }
    record.validate()?;
    Ok(record)
}

/// Decodes bytes stored under `goods_id`'s key and checks that they belong to it.
pub fn decode_for(goods_id: GoodsId, bytes: &[u8]) -> Result<GoodsRecord, DecodeError> {
    let record = decode(bytes)?;
    if record.goods_id != goods_id {
        return Err(DecodeError::WrongGoods { expected: goods_id, found: record.goods_id });
    }
    Ok(record)
}

/// Reads the version from the header of encoded bytes without decoding the
/// payload (a cheap check; [`decode`] verifies it against the payload).
pub fn peek_version(bytes: &[u8]) -> Result<u64, DecodeError> {
    match bytes.first() {
        None => Err(DecodeError::Empty),
        Some(&(FORMAT_PLAIN | FORMAT_LZ4)) => bytes
            .get(1..HEADER_LEN)
            .and_then(|v| <[u8; 8]>::try_from(v).ok())
            .map(u64::from_be_bytes)
            .ok_or(DecodeError::Truncated),
        Some(&other) => Err(DecodeError::UnknownFormat(other)),
    }
}

fn to_centi(field: &'static str, value: Decimal) -> Result<i64, InvalidRecord> {
    Fen::from_amount(value).and_then(Fen::to_i64).map_err(|error| InvalidRecord::money(field, error))
}

fn from_centi(centi: i64) -> Result<Decimal, DecodeError> {
    if centi < 0 {
        return Err(DecodeError::Amount(centi));
    }
    Fen::from(centi).to_decimal().map_err(|_| DecodeError::Amount(centi))
}

fn to_pb(record: &GoodsRecord) -> Result<RecordPb, InvalidRecord> {
    let activities = record
        .activities
        .iter()
        .map(|a| {
            Ok(ActivityPb {
                id: a.id,
                kind: kind_to_i32(a.kind),
                value_centi: to_centi("activity.value", a.value)?,
                start_ms: a.start_ms,
                end_ms: a.end_ms,
                channels: u32::from(a.channels.bits()),
                city_ids: a.city_ids.clone(),
                store_ids: a.store_ids.clone(),
                new_user_only: a.new_user_only,
                min_member_level: a.min_member_level,
                stock_left_plus_one: a.stock_left.map_or(0, |s| s.saturating_add(1)),
                per_user_limit: a.per_user_limit,
                priority: a.priority,
                status: activity_status_to_i32(a.status),
                deleted: a.deleted,
            })
        })
        .collect::<Result<Vec<_>, InvalidRecord>>()?;
    Ok(RecordPb {
        goods_id: record.goods_id,
        version: record.version,
        store_id: record.store_id,
        base_price_fen: to_centi("base_price", record.base_price)?,
        currency: record.currency.clone(),
        status: goods_status_to_i32(record.status),
        activities,
    })
}

fn from_pb(pb: RecordPb) -> Result<GoodsRecord, DecodeError> {
    let goods_id = pb.goods_id;
    let activities = pb
        .activities
        .into_iter()
        .map(|a| {
            let channels = u8::try_from(a.channels)
                .map_err(|_| InvalidRecord::UnknownChannelBits(u8::MAX))
                .and_then(Channels::from_bits)?;
            Ok(Activity {
                id: a.id,
                goods_id,
                kind: kind_from_i32(a.kind)?,
                value: from_centi(a.value_centi)?,
                start_ms: a.start_ms,
                end_ms: a.end_ms,
                channels,
                city_ids: a.city_ids,
                store_ids: a.store_ids,
                new_user_only: a.new_user_only,
                min_member_level: a.min_member_level,
                stock_left: a.stock_left_plus_one.checked_sub(1),
                per_user_limit: a.per_user_limit,
                priority: a.priority,
                status: activity_status_from_i32(a.status)?,
                deleted: a.deleted,
            })
        })
        .collect::<Result<Vec<_>, DecodeError>>()?;
    Ok(GoodsRecord {
        goods_id,
        version: pb.version,
        store_id: pb.store_id,
        base_price: from_centi(pb.base_price_fen)?,
        currency: pb.currency,
        status: goods_status_from_i32(pb.status)?,
        activities,
    })
}

fn kind_to_i32(kind: ActivityKind) -> i32 {
    match kind {
        ActivityKind::FlashSale => 1,
        ActivityKind::Discount => 2,
        ActivityKind::AmountOff => 3,
        ActivityKind::Subsidy => 4,
    }
}

fn kind_from_i32(value: i32) -> Result<ActivityKind, DecodeError> {
    Ok(match value {
        1 => ActivityKind::FlashSale,
        2 => ActivityKind::Discount,
        3 => ActivityKind::AmountOff,
        4 => ActivityKind::Subsidy,
        _ => return Err(DecodeError::UnknownEnum { field: "activity.kind", value }),
    })
}

fn activity_status_to_i32(status: ActivityStatus) -> i32 {
    match status {
        ActivityStatus::Draft => 1,
        ActivityStatus::Online => 2,
        ActivityStatus::Offline => 3,
    }
}

fn activity_status_from_i32(value: i32) -> Result<ActivityStatus, DecodeError> {
    Ok(match value {
        1 => ActivityStatus::Draft,
        2 => ActivityStatus::Online,
        3 => ActivityStatus::Offline,
        _ => return Err(DecodeError::UnknownEnum { field: "activity.status", value }),
    })
}

fn goods_status_to_i32(status: GoodsStatus) -> i32 {
    match status {
        GoodsStatus::OnSale => 1,
        GoodsStatus::Delisted => 2,
        GoodsStatus::Deleted => 3,
    }
}

fn goods_status_from_i32(value: i32) -> Result<GoodsStatus, DecodeError> {
    Ok(match value {
        1 => GoodsStatus::OnSale,
        2 => GoodsStatus::Delisted,
        3 => GoodsStatus::Deleted,
        _ => return Err(DecodeError::UnknownEnum { field: "goods.status", value }),
    })
}
