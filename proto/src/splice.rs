//! The list reply written by concatenation: a `BatchGetPricesResponse` is
//! encoded with each `GoodsPrice` taken, already encoded, from a memo of the
//! last encoding of each goods' price, when the price is equal to the one
//! encoded (compared field by field: the bytes are then exactly prost's
//! encoding of this very price). Otherwise the price is encoded with prost
//! and remembered. A list server answers the same few hundred thousand goods
//! over and over, mostly unchanged between calls, and prost's field-by-field
//! encoding into the response buffer was a quarter of its instructions.
//!
//! The bytes written are prost's: `encode_batch_reply` and
//! `prost::Message::encode` give the same bytes for every reply (tested).
//! Bounded: 16 shards of at most [`SHARD_CAPACITY`] goods, 4 encodings a
//! goods (callers in other channels, cities or stores may see other prices);
//! a full shard is emptied.

use std::sync::{Mutex, OnceLock};

use prost::Message;
use prost::bytes::BufMut;
use prost::encoding::{WireType, encode_key, encode_varint, uint32, uint64};

use pricing_record::idmap::IdMap;

use crate::v1::{BatchGetPricesResponse, GoodsPrice};

const SHARDS: usize = 16;
/// Goods per shard: 16 x 4,096 = 65,536 goods (about 350 bytes an encoding).
pub const SHARD_CAPACITY: usize = 4_096;

struct Encoded {
    price: GoodsPrice,
    bytes: Box<[u8]>,
}

type Shard = Mutex<IdMap<Vec<Encoded>>>;

/// Encodings kept per goods: callers in other channels, cities or stores
/// may see other prices of the same goods; the oldest goes.
const PER_GOODS: usize = 4;

fn shards() -> &'static [Shard] {
    static SHARDS_: OnceLock<Box<[Shard]>> = OnceLock::new();
    SHARDS_.get_or_init(|| (0..SHARDS).map(|_| Mutex::new(IdMap::default())).collect())
}

fn shard(goods_id: u64) -> &'static Shard {
    // Fibonacci hashing: the top 4 bits of id x 2^64/phi.
    let index = usize::try_from(goods_id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60).unwrap_or(0) % SHARDS;
    &shards()[index]
}

/// Writes `price` as field 1 (`prices`) of the reply: key, length, message.
fn put_price(price: &GoodsPrice, buf: &mut impl BufMut) {
    // Explain answers carry a trace: rarely repeated, not worth keeping.
    if !price.trace.is_empty() {
        prost::encoding::message::encode(1, price, buf);
        return;
    }
    let mut shard = shard(price.goods_id).lock().unwrap_or_else(|p| p.into_inner());
    if let Some(encoded) = shard.get(&price.goods_id).and_then(|kept| kept.iter().find(|e| e.price == *price)) {
        put_bytes(&encoded.bytes, buf);
        return;
    }
    let bytes = price.encode_to_vec().into_boxed_slice();
    put_bytes(&bytes, buf);
    if shard.len() >= SHARD_CAPACITY && !shard.contains_key(&price.goods_id) {
        shard.clear();
    }
    let kept = shard.entry(price.goods_id).or_default();
    if kept.len() >= PER_GOODS {
        kept.remove(0);
    }
    kept.push(Encoded { price: price.clone(), bytes });
}

fn put_bytes(bytes: &[u8], buf: &mut impl BufMut) {
    encode_key(1, WireType::LengthDelimited, buf);
    encode_varint(bytes.len() as u64, buf);
    buf.put_slice(bytes);
}

/// `reply` encoded as prost encodes it (fields in tag order, packed repeated
/// integers, defaults left out), its prices spliced from the memo.
pub fn encode_batch_reply(reply: &BatchGetPricesResponse, buf: &mut impl BufMut) {
    for price in &reply.prices {
        put_price(price, buf);
    }
    uint64::encode_packed(2, &reply.not_found, buf);
    uint64::encode_packed(3, &reply.limited, buf);
    if reply.limited_retry_after_ms != 0 {
        uint32::encode(4, &reply.limited_retry_after_ms, buf);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

    use proptest::prelude::*;

    use super::*;
    use crate::v1::{TraceEntry, WinningActivity};

    fn price() -> impl Strategy<Value = GoodsPrice> {
        (
            (1..6u64, 0..3usize, 0..3usize, any::<bool>(), 0..4i32, 0..3u64, any::<bool>()),
            (prop::option::of((1..3u64, 0..4i32, 0..100i64, prop::option::of(0..5u64))), 0..3u32, 0..2usize),
        )
            .prop_map(
                |((goods_id, original, activity, stale, tier, version, delisted), (winner, limit, trace))| {
                    let money = ["", "19.90", "0.01", "123456.78"];
                    GoodsPrice {
                        goods_id,
                        currency: if goods_id % 2 == 0 { "CNY".into() } else { String::new() },
                        original_price: money[original + 1].into(),
                        activity_price: money[activity].into(),
                        activity: winner.map(|(id, kind, start, stock_left)| WinningActivity {
                            id,
                            kind,
                            window_start_unix_ms: start,
                            window_end_unix_ms: start + 10,
                            per_user_limit: limit,
                            stock_left,
                        }),
                        per_user_limit: limit,
                        price_beyond_limit: money[activity + 1].into(),
                        stale,
                        tier,
                        version,
                        delisted,
                        trace: (0..trace)
                            .map(|i| TraceEntry {
                                activity_id: i as u64,
                                outcome: "won".into(),
                                ..TraceEntry::default()
                            })
                            .collect(),
                    }
                },
            )
    }

    proptest! {
        /// Replies over a handful of goods whose prices change from reply to
        /// reply: every reply's bytes are prost's, whatever the memo held.
        #[test]
        fn spliced_replies_are_prosts_bytes(
            replies in prop::collection::vec(
                (prop::collection::vec(price(), 0..6), prop::collection::vec(0..1_000u64, 0..3),
                 prop::collection::vec(0..1_000u64, 0..3), 0..3u32),
                1..20,
            ),
        ) {
            for (prices, not_found, limited, retry) in replies {
                let reply = BatchGetPricesResponse { prices, not_found, limited, limited_retry_after_ms: retry };
                let mut spliced = Vec::new();
                encode_batch_reply(&reply, &mut spliced);
                prop_assert_eq!(&spliced, &reply.encode_to_vec());
                prop_assert_eq!(BatchGetPricesResponse::decode(spliced.as_slice()).unwrap(), reply);
            }
        }
    }
}
