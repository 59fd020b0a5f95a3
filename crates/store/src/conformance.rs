//! The conformance suite every [`RecordStore`] (and [`RecordWriter`]) must
//! pass. A store's test seeds the store with [`fixture`] in its own native
//! way (SQL rows, Redis values, HBase cells, or through its writer), then
//! calls [`check_reads`]; a writable store also runs [`check_versioned_writes`],
//! and a store with raw reads [`check_inspection`] ([`walk_all`] walks one
//! whole). The functions panic with a message naming the store and the rule broken.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test tooling: a panic fails the test")]

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use pricing_record::{Activity, ActivityKind, GoodsId, GoodsRecord, GoodsStatus, decode_for};
use rust_decimal::Decimal;

use crate::{Inspect, RecordStore, RecordWriter, SharedRecord, WalkCursor};

/// Ids the fixture holds: live goods, one with many activities (compressed
/// when encoded), and a tombstone.
pub const FIXTURE_IDS: [GoodsId; 5] = [101, 102, 103, 104, 105];
/// The fixture's tombstone.
pub const FIXTURE_TOMBSTONE: GoodsId = 105;
/// Ids the fixture does not hold.
pub const ABSENT_IDS: [GoodsId; 3] = [9_001, 9_002, 9_003];

/// A sample activity for `goods_id` with the given id, kind and value.
pub fn activity(goods_id: GoodsId, id: u64, kind: ActivityKind, value: Decimal) -> Activity {
    Activity::open(id, goods_id, kind, value, 1_700_000_000_000, 4_100_000_000_000)
}

/// A live record with a base price in fen and the given activities.
pub fn record(goods_id: GoodsId, version: u64, base_fen: i64, activities: Vec<Activity>) -> GoodsRecord {
    GoodsRecord {
        goods_id,
        version,
        store_id: 1,
        base_price: Decimal::new(base_fen, 2),
        currency: "CNY".into(),
        status: GoodsStatus::OnSale,
        activities,
    }
}

/// The records a store under test is seeded with.
pub fn fixture() -> Vec<SharedRecord> {
    let many = (0..60u64)
        .map(|i| activity(104, 10_400 + i, ActivityKind::Discount, Decimal::new(80 + (i as i64 % 15), 0)))
        .collect();
    vec![
        record(101, 5, 3_000, vec![activity(101, 1_001, ActivityKind::FlashSale, Decimal::new(1_990, 2))]),
        record(102, 6, 4_000, vec![]),
        record(103, 7, 5_000, vec![activity(103, 1_003, ActivityKind::AmountOff, Decimal::new(500, 2))]),
        record(104, 8, 12_345, many),
        GoodsRecord::tombstone(FIXTURE_TOMBSTONE, 9),
    ]
    .into_iter()
    .map(Arc::new)
    .collect()
}

/// Read rules: found records equal what was seeded, absent ids are absent,
/// duplicates come back once, an empty batch is empty, tombstones come back.
pub async fn check_reads(store: &dyn RecordStore, seeded: &[SharedRecord]) {
    let name = store.name().to_owned();
    let ids: Vec<GoodsId> = seeded.iter().map(|r| r.goods_id).collect();

    let got = store.fetch(&[]).await.unwrap_or_else(|e| panic!("{name}: empty batch failed: {e}"));
    assert!(got.is_empty(), "{name}: empty batch returned records");

    let got = store.fetch(&ids).await.unwrap_or_else(|e| panic!("{name}: fetch failed: {e}"));
    assert_same(&name, &got, seeded);

    let mut mixed: Vec<GoodsId> = ABSENT_IDS.to_vec();
    mixed.extend(ids.iter().rev());
    mixed.extend(&ids);
    let got = store.fetch(&mixed).await.unwrap_or_else(|e| panic!("{name}: mixed fetch failed: {e}"));
    assert_same(&name, &got, seeded);

    let got = store.fetch(&ABSENT_IDS).await.unwrap_or_else(|e| panic!("{name}: absent fetch failed: {e}"));
    assert!(got.is_empty(), "{name}: absent ids returned records");

    if seeded.iter().any(|r| r.is_tombstone()) {
        let tomb = seeded.iter().find(|r| r.is_tombstone()).unwrap();
        let got = store.fetch(&[tomb.goods_id]).await.unwrap();
        assert_eq!(got.len(), 1, "{name}: tombstone must be returned, not hidden");
        assert!(got[0].is_tombstone(), "{name}: tombstone came back live");
    }
}

fn assert_same(name: &str, got: &[SharedRecord], want: &[SharedRecord]) {
    let mut seen = HashSet::new();
    for r in got {
        assert!(seen.insert(r.goods_id), "{name}: goods {} returned twice", r.goods_id);
    }
    assert_eq!(got.len(), want.len(), "{name}: expected {} records, got {}", want.len(), got.len());
    for w in want {
        let g = got
            .iter()
            .find(|g| g.goods_id == w.goods_id)
            .unwrap_or_else(|| panic!("{name}: goods {} missing", w.goods_id));
        assert_eq!(**g, **w, "{name}: goods {} differs from what was stored", w.goods_id);
    }
}

/// Write rules: a newer version replaces, an equal or older one is skipped
/// and does not hide the newer record; a tombstone with a newer version
/// replaces a live record; remove deletes physically.
pub async fn check_versioned_writes(writer: &dyn RecordWriter, reader: &dyn RecordStore) {
    let name = writer.name().to_owned();
    let id = 7_777;
    let v5: SharedRecord = Arc::new(record(id, 5, 1_000, vec![]));
    let v4: SharedRecord = Arc::new(record(id, 4, 900, vec![]));
    let v6: SharedRecord = Arc::new(record(id, 6, 1_100, vec![]));
    let tomb: SharedRecord = Arc::new(GoodsRecord::tombstone(id, 7));
    let stale_after_tomb: SharedRecord = Arc::new(record(id, 6, 1_200, vec![]));

    let r = writer.put(&[Arc::clone(&v5)]).await.unwrap();
    assert_eq!(r.written, 1, "{name}: first write not stored");
    let r = writer.put(&[Arc::clone(&v4)]).await.unwrap();
    assert_eq!((r.written, r.skipped_older), (0, 1), "{name}: older version was not skipped");
    let r = writer.put(&[Arc::clone(&v5)]).await.unwrap();
    assert_eq!(r.skipped_older, 1, "{name}: equal version must be skipped");
    assert_eq!(*reader.fetch(&[id]).await.unwrap()[0], *v5, "{name}: older write replaced newer");

    let r = writer.put(&[Arc::clone(&v6)]).await.unwrap();
    assert_eq!(r.written, 1, "{name}: newer version was skipped");
    assert_eq!(*reader.fetch(&[id]).await.unwrap()[0], *v6);

    writer.put(&[Arc::clone(&tomb)]).await.unwrap();
    let r = writer.put(&[stale_after_tomb]).await.unwrap();
    assert_eq!(r.skipped_older, 1, "{name}: stale copy came back over a tombstone");
    assert!(reader.fetch(&[id]).await.unwrap()[0].is_tombstone());

    // A batch mixing new and old writes reports each.
    let other: SharedRecord = Arc::new(record(id + 1, 1, 500, vec![]));
    let r = writer.put(&[Arc::clone(&v4), other]).await.unwrap();
    assert_eq!((r.written, r.skipped_older), (1, 1), "{name}: mixed batch misreported");

    writer.remove(&[id, id + 1]).await.unwrap();
    assert!(reader.fetch(&[id, id + 1]).await.unwrap().is_empty(), "{name}: remove left records");
}

/// Every goods id a whole walk of `store` finds (about `count` asked per
/// step), and the number of steps. Panics on an error, or when the walk
/// does not end within 100,000 steps.
pub async fn walk_all(store: &dyn Inspect, count: u32) -> (BTreeSet<GoodsId>, usize) {
    let name = store.name().to_owned();
    let mut found = BTreeSet::new();
    let mut cursor = WalkCursor::start();
    for steps in 1..=100_000 {
        let page = store.walk(&cursor, count).await.unwrap_or_else(|e| panic!("{name}: walk step {steps}: {e}"));
        found.extend(page.ids);
        match page.next {
            Some(next) => cursor = next,
            None => return (found, steps),
        }
    }
    panic!("{name}: the walk did not end");
}

/// [`Inspect`] on a store seeded with `seeded` through its writer: each
/// entry's bytes decode to the seeded record, its guard blocks writes up to
/// the record's version, ids the store does not hold are absent, and a walk
/// finds every seeded id.
pub async fn check_inspection(store: &dyn Inspect, seeded: &[SharedRecord]) {
    let name = store.name().to_owned();
    let mut ids: Vec<GoodsId> = seeded.iter().map(|r| r.goods_id).collect();
    ids.extend(ABSENT_IDS);
    let held = store.inspect(&ids).await.unwrap_or_else(|e| panic!("{name}: inspect: {e}"));
    assert_eq!(held.len(), seeded.len(), "{name}: one entry per seeded goods, none for an absent one");
    for record in seeded {
        let id = record.goods_id;
        let entry =
            held.iter().find(|e| e.goods_id == id).unwrap_or_else(|| panic!("{name}: goods {id} not inspected"));
        let decoded = decode_for(id, &entry.bytes).unwrap_or_else(|e| panic!("{name}: goods {id}: bytes: {e}"));
        assert_eq!(decoded, **record, "{name}: goods {id}: the bytes are the record written");
        assert_eq!(entry.guard.blocking_version(), Some(record.version), "{name}: goods {id}: guard");
    }
    let (walked, _) = walk_all(store, 2).await;
    for record in seeded {
        assert!(walked.contains(&record.goods_id), "{name}: the walk missed goods {}", record.goods_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;

    #[tokio::test]
    async fn memory_store_conforms() {
        let seeded = fixture();
        let store = MemoryStore::with_records("memory", seeded.clone());
        check_reads(&store, &seeded).await;
        check_versioned_writes(&store, &store).await;
    }
}
