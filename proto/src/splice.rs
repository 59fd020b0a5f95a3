//! The list reply written by concatenation. A [`BatchReply`] is what the
//! list server's BatchGetPrices answers: its prices are [`EncodedPrice`]s,
//! each a `GoodsPrice` with its own protobuf encoding made once, when the
//! price was computed. The list server's price memo keeps them
//! (`services/list/src/memo.rs`), so a reply of remembered prices is a
//! reference count per goods when it is built and a copy of bytes when it is
//! written: no `GoodsPrice` is cloned, compared or encoded per call (that
//! was a quarter of the list server's instructions).
//!
//! The bytes written are prost's: [`BatchReply::encode`] writes exactly what
//! `prost::Message::encode` writes for [`BatchReply::to_message`] (fields in
//! tag order, packed repeated integers, defaults left out; tested), so every
//! client decodes a `BatchGetPricesResponse`. The list server's gRPC
//! service is generated for this type ([`crate::list_server`], codec
//! [`crate::codec::ReplyCodec`]); the message type and its clients are the
//! ones of pricing.v1.

use std::sync::Arc;

use prost::Message;
use prost::bytes::BufMut;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len, uint32, uint64};

use crate::v1::{BatchGetPricesResponse, GoodsPrice};

/// A price with its protobuf encoding, made once.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedPrice {
    price: GoodsPrice,
    /// The price as field 1 (`prices`) of the reply: key, length, message.
    field: Box<[u8]>,
    /// Where the message starts in `field`.
    message_at: usize,
}

impl EncodedPrice {
    pub fn new(price: GoodsPrice) -> EncodedPrice {
        let len = price.encoded_len();
        let mut field = Vec::with_capacity(key_len(1) + encoded_len_varint(len as u64) + len);
        encode_key(1, WireType::LengthDelimited, &mut field);
        encode_varint(len as u64, &mut field);
        let message_at = field.len();
        price.encode_raw(&mut field);
        EncodedPrice { price, field: field.into_boxed_slice(), message_at }
    }

    pub fn price(&self) -> &GoodsPrice {
        &self.price
    }

    /// prost's encoding of [`EncodedPrice::price`].
    pub fn bytes(&self) -> &[u8] {
        self.field.get(self.message_at..).unwrap_or_default()
    }
}

/// A `BatchGetPricesResponse` whose prices are already encoded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchReply {
    pub prices: Vec<Arc<EncodedPrice>>,
    pub not_found: Vec<u64>,
    pub limited: Vec<u64>,
    pub limited_retry_after_ms: u32,
}

impl BatchReply {
    /// The reply as prost encodes its message: each price's bytes copied.
    pub fn encode(&self, buf: &mut impl BufMut) {
        for price in &self.prices {
            buf.put_slice(&price.field);
        }
        uint64::encode_packed(2, &self.not_found, buf);
        uint64::encode_packed(3, &self.limited, buf);
        if self.limited_retry_after_ms != 0 {
            uint32::encode(4, &self.limited_retry_after_ms, buf);
        }
    }

    /// The length [`BatchReply::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        let prices: usize = self.prices.iter().map(|p| p.field.len()).sum();
        let retry =
            if self.limited_retry_after_ms != 0 { uint32::encoded_len(4, &self.limited_retry_after_ms) } else { 0 };
        prices + uint64::encoded_len_packed(2, &self.not_found) + uint64::encoded_len_packed(3, &self.limited) + retry
    }

    /// The same reply as the generated message (tests, in-process callers).
    pub fn to_message(&self) -> BatchGetPricesResponse {
        BatchGetPricesResponse {
            prices: self.prices.iter().map(|p| p.price.clone()).collect(),
            not_found: self.not_found.clone(),
            limited: self.limited.clone(),
            limited_retry_after_ms: self.limited_retry_after_ms,
        }
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
        /// Every reply's bytes are prost's bytes of the same message.
        #[test]
        fn spliced_replies_are_prosts_bytes(
            replies in prop::collection::vec(
                (prop::collection::vec(price(), 0..6), prop::collection::vec(0..1_000u64, 0..3),
                 prop::collection::vec(0..1_000u64, 0..3), 0..3u32),
                1..20,
            ),
        ) {
            for (prices, not_found, limited, retry) in replies {
                let reply = BatchReply {
                    prices: prices.into_iter().map(|p| Arc::new(EncodedPrice::new(p))).collect(),
                    not_found,
                    limited,
                    limited_retry_after_ms: retry,
                };
                let mut spliced = Vec::new();
                reply.encode(&mut spliced);
                let message = reply.to_message();
                prop_assert_eq!(&spliced, &message.encode_to_vec());
                prop_assert_eq!(spliced.len(), reply.encoded_len());
                for price in &reply.prices {
                    let encoded = price.price().encode_to_vec();
                    prop_assert_eq!(price.bytes(), encoded.as_slice());
                }
                prop_assert_eq!(BatchGetPricesResponse::decode(spliced.as_slice()).unwrap(), message);
            }
        }
    }
}
