//! Hash maps keyed by goods id for per-goods tables on the hot path (the list
//! server's price memo): a multiply and a fold
//! instead of SipHash. Only ids of records found in a store get entries in
//! such tables, so callers cannot fill one with colliding ids.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A goods id's hash (a multiplier other than the one tables use to pick a
/// shard, so that the bits that pick the shard still vary inside it).
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 32)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0xD6E8_FEB8_6659_FD93);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    }
}

/// A map keyed by goods id, hashed by [`IdHasher`].
pub type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;
