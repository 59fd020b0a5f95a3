//! Store key naming, in one place for every writer and reader.

use crate::model::GoodsId;

/// What every goods record's Redis key starts with (a `SCAN MATCH` pattern
/// is this followed by `*`).
pub const REDIS_KEY_PREFIX: &str = "pr:g:";

/// Redis key of a goods record. Short, because there is one per goods and a
/// catalogue has millions.
pub fn redis_key(goods_id: GoodsId) -> String {
    format!("{REDIS_KEY_PREFIX}{goods_id}")
}

/// The goods id of a Redis key made by [`redis_key`]; `None` for any other
/// key (checked by rebuilding the key, so "pr:g:007" is not goods 7).
pub fn goods_id_from_redis_key(key: &[u8]) -> Option<GoodsId> {
    let digits = key.strip_prefix(REDIS_KEY_PREFIX.as_bytes())?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let id: GoodsId = std::str::from_utf8(digits).ok()?.parse().ok()?;
    (redis_key(id).as_bytes() == key).then_some(id)
}

/// Hash slots of a Redis Cluster.
pub const REDIS_CLUSTER_SLOTS: u16 = 16_384;

/// The Redis Cluster hash slot of a key, as the server computes it: CRC16
/// (XMODEM) of the key, or of its `{hash tag}` when it has a non-empty one,
/// modulo 16,384. Keys from [`redis_key`] carry no hash tag.
pub fn redis_cluster_slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter().position(|&b| b == b'}').filter(|&len| len > 0).map(|len| &rest[..len])
        })
        .unwrap_or(key);
    crc16::State::<crc16::XMODEM>::calculate(hashed) % REDIS_CLUSTER_SLOTS
}

/// HBase table holding the goods records.
pub const HBASE_TABLE: &str = "pricing_goods";
/// The one column that holds the encoded record (family `r`, qualifier `v`).
pub const HBASE_COLUMN: &str = "r:v";

/// HBase row key: a two-hex-digit salt derived from the id, then the id as 20
/// zero-padded decimal digits. The salt spreads consecutive ids over 256
/// key ranges so one region server does not take every new goods; the
/// decimal part keeps keys readable in the HBase shell.
pub fn hbase_row_key(goods_id: GoodsId) -> Vec<u8> {
    let salt = (goods_id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8;
    format!("{salt:02x}{goods_id:020}").into_bytes()
}

/// The goods id inside a row key made by [`hbase_row_key`]; `None` for any
/// other bytes (including a salt that does not match the id).
pub fn goods_id_from_row_key(row: &[u8]) -> Option<GoodsId> {
    if row.len() != 22 {
        return None;
    }
    let digits = std::str::from_utf8(&row[2..]).ok()?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let id: GoodsId = digits.parse().ok()?;
    (hbase_row_key(id) == row).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_cluster_slots_follow_the_cluster_spec() {
        // The spec's CRC16 check value; values from CLUSTER KEYSLOT on a real server.
        assert_eq!(crc16::State::<crc16::XMODEM>::calculate(b"123456789"), 0x31c3);
        assert_eq!(redis_cluster_slot(b"foo"), 12182);
        assert_eq!(redis_cluster_slot(b"bar"), 5061);
        // Hash tags decide; an empty tag is no tag; the first `{` opens.
        assert_eq!(redis_cluster_slot(b"{user1000}.following"), redis_cluster_slot(b"user1000"));
        assert_eq!(redis_cluster_slot(b"foo{}{bar}"), crc16::State::<crc16::XMODEM>::calculate(b"foo{}{bar}") % 16_384);
        assert_eq!(redis_cluster_slot(b"foo{{bar}}zap"), redis_cluster_slot(b"{bar"));
        assert_eq!(redis_cluster_slot(redis_key(7).as_bytes()), redis_cluster_slot(b"pr:g:7"));
    }

    #[test]
    fn row_key_round_trips_and_rejects_foreign_bytes() {
        for id in [1, 42, 10_000, u64::MAX] {
            let key = hbase_row_key(id);
            assert_eq!(key.len(), 22);
            assert_eq!(goods_id_from_row_key(&key), Some(id));
        }
        assert_eq!(goods_id_from_row_key(b"zz00000000000000000001"), None);
        assert_eq!(goods_id_from_row_key(b"short"), None);
        assert_ne!(hbase_row_key(1)[..2], hbase_row_key(2)[..2], "salt spreads neighbours");
    }

    #[test]
    fn redis_key_is_stable() {
        assert_eq!(redis_key(123), "pr:g:123");
    }

    #[test]
    fn redis_keys_parse_back_to_their_goods_only() {
        for id in [0, 7, 12_345, u64::MAX] {
            assert_eq!(goods_id_from_redis_key(redis_key(id).as_bytes()), Some(id));
        }
        assert_eq!(goods_id_from_redis_key(b"other:12345"), None);
        assert_eq!(goods_id_from_redis_key(format!("{}x", redis_key(7)).as_bytes()), None);
        assert_eq!(goods_id_from_redis_key(b"pr:g:007"), None);
        assert_eq!(goods_id_from_redis_key(b"pr:g:"), None);
        assert_eq!(goods_id_from_redis_key(b"pr:g:-1"), None);
        assert_eq!(goods_id_from_redis_key(b"pr:g:18446744073709551616"), None, "above u64");
        assert_eq!(goods_id_from_redis_key(b""), None);
    }
}
