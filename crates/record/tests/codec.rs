#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]
use pricing_record::*;
use proptest::prelude::*;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

fn sample(activities: usize) -> GoodsRecord {
    GoodsRecord {
        goods_id: 7,
        version: 3,
        store_id: 11,
        base_price: dec!(99.90),
        currency: "CNY".into(),
        status: GoodsStatus::OnSale,
        activities: (0..activities as u64)
            .map(|i| Activity {
                id: 100 + i,
                goods_id: 7,
                kind: ActivityKind::Discount,
                value: dec!(85),
                start_ms: 1_700_000_000_000,
                end_ms: 1_800_000_000_000,
                channels: Channels::ALL,
                city_ids: vec![1, 2, 3],
                store_ids: vec![],
                new_user_only: i % 2 == 0,
                min_member_level: 0,
                stock_left: if i % 3 == 0 { None } else { Some(i) },
                per_user_limit: 2,
                priority: i as i32,
                status: ActivityStatus::Online,
                deleted: false,
            })
            .collect(),
    }
}

#[test]
fn small_record_round_trips_uncompressed() {
    let r = sample(3);
    let bytes = encode(&r).unwrap();
    assert_eq!(bytes[0], 0x01);
    assert_eq!(decode(&bytes).unwrap(), r);
    assert_eq!(decode_for(7, &bytes).unwrap(), r);
    assert!(matches!(decode_for(8, &bytes), Err(DecodeError::WrongGoods { expected: 8, found: 7 })));
}

#[test]
fn large_record_is_compressed_and_round_trips() {
    let r = sample(200);
    let bytes = encode(&r).unwrap();
    assert_eq!(bytes[0], 0x02);
    assert_eq!(decode(&bytes).unwrap(), r);
}

#[test]
fn tombstone_round_trips() {
    let t = GoodsRecord::tombstone(5, 9);
    let back = decode(&encode(&t).unwrap()).unwrap();
    assert!(back.is_tombstone());
    assert_eq!(back.version, 9);
}

#[test]
fn amounts_that_cannot_be_stored_exactly_are_refused() {
    let mut r = sample(1);
    r.base_price = dec!(1.001);
    assert!(matches!(encode(&r), Err(InvalidRecord::Scale { field: "base_price", .. })));
    let mut r = sample(1);
    r.activities[0].value = dec!(-1);
    assert!(matches!(encode(&r), Err(InvalidRecord::Negative { .. })));
}

#[test]
fn corrupt_bytes_are_typed_errors() {
    assert_eq!(decode(&[]), Err(DecodeError::Empty));
    assert_eq!(decode(&[0x09, 1, 2]), Err(DecodeError::UnknownFormat(0x09)));
    let bytes = encode(&sample(3)).unwrap();
    assert!(matches!(decode(&bytes[..bytes.len() / 2]), Err(DecodeError::Protobuf(_))));
    assert!(matches!(
        decode(&[0x02, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0x7f, 0]),
        Err(DecodeError::TooLarge(_))
    ));
    assert_eq!(decode(&[0x01, 0, 0]), Err(DecodeError::Truncated));
    // The header's version must match the payload's.
    let mut tampered = bytes.to_vec();
    tampered[8] ^= 1;
    assert!(matches!(decode(&tampered), Err(DecodeError::HeaderMismatch { .. })));
    assert_eq!(codec::peek_version(&bytes), Ok(3));
    // A valid protobuf whose record fails validation (goods id 0).
    let mut zero = sample(0);
    zero.goods_id = 0;
    assert!(matches!(decode(&encode(&zero).unwrap()), Err(DecodeError::Invalid(InvalidRecord::ZeroGoodsId))));
}

fn arb_money() -> impl Strategy<Value = Decimal> {
    (0i64..10_000_000).prop_map(|fen| Decimal::new(fen, 2))
}

prop_compose! {
    fn arb_activity(goods_id: u64)(
        id in 1u64..1_000_000, kind in 0usize..4, value in arb_money(),
        start in 0i64..2_000_000_000_000, len in 1i64..1_000_000_000,
        channels in 0u8..16, cities in proptest::collection::vec(1u64..400, 0..4),
        stock in proptest::option::of(0u64..100_000), limit in 0u32..10, priority in -5i32..5,
        status in 0usize..3, deleted in any::<bool>(), new_user in any::<bool>(), level in 0u32..8,
    ) -> Activity {
        Activity {
            id, goods_id,
            kind: [ActivityKind::FlashSale, ActivityKind::Discount, ActivityKind::AmountOff, ActivityKind::Subsidy][kind],
            value, start_ms: start, end_ms: start + len,
            channels: Channels::from_bits(channels).unwrap(),
            city_ids: cities, store_ids: vec![], new_user_only: new_user, min_member_level: level,
            stock_left: stock, per_user_limit: limit, priority,
            status: [ActivityStatus::Draft, ActivityStatus::Online, ActivityStatus::Offline][status],
            deleted,
        }
    }
}

prop_compose! {
    fn arb_record()(goods_id in 1u64..u64::MAX, version in 1u64..u64::MAX, price in 1i64..100_000_000,
                    n in 0usize..40)
                   (activities in proptest::collection::vec(arb_activity(goods_id), n),
                    goods_id in Just(goods_id), version in Just(version), price in Just(price)) -> GoodsRecord {
        GoodsRecord {
            goods_id, version, store_id: 3, base_price: Decimal::new(price, 2), currency: "CNY".into(),
            status: GoodsStatus::OnSale, activities,
        }
    }
}

proptest! {
    #[test]
    fn encode_decode_round_trip(record in arb_record()) {
        let bytes = encode(&record).unwrap();
        prop_assert_eq!(decode(&bytes).unwrap(), record);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn flipped_bytes_never_panic(record in arb_record(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut bytes = encode(&record).unwrap().to_vec();
        let i = at.index(bytes.len());
        bytes[i] ^= 1 << bit;
        let _ = decode(&bytes);
    }
}
