//! The HBase store's raw reads ([`Inspect`]) against the in-memory HBase
//! Thrift test server (Apache HBase cannot be installed here): cells with
//! their timestamps, and a walk over the table with one scanner per step.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use pricing_record::keys::{HBASE_COLUMN, HBASE_TABLE, hbase_row_key};
use pricing_record::{GoodsId, GoodsRecord, encode};
use pricing_store::conformance::{self, check_inspection, fixture, walk_all};
use pricing_store::{Inspect, RecordWriter, StoreErrorKind, VersionGuard, WalkCursor};
use pricing_store_hbase::server::tables::Change;
use pricing_store_hbase::{HbaseConfig, HbaseStore, HbaseTestServer, Transport};

fn record(goods_id: GoodsId, version: u64) -> GoodsRecord {
    conformance::record(goods_id, version, 1_000, Vec::new())
}

fn config(server: &HbaseTestServer, call_timeout: Duration) -> HbaseConfig {
    let mut config = HbaseConfig::new("hbase-a", [server.address()]);
    config.transport = server.transport();
    config.call_timeout = call_timeout;
    config.connect_timeout = Duration::from_secs(1);
    config
}

/// A store over a table holding `ids` at version 5 (written through the store).
async fn seeded(server: &HbaseTestServer, ids: &[GoodsId]) -> HbaseStore {
    let store = HbaseStore::new(config(server, Duration::from_secs(2))).unwrap();
    store.ensure_table().await.unwrap();
    let records: Vec<_> = ids.iter().map(|id| Arc::new(record(*id, 5))).collect();
    assert_eq!(store.put(&records).await.unwrap().written, ids.len());
    store
}

fn put(value: &[u8]) -> Vec<Change> {
    vec![Change::Put { column: HBASE_COLUMN.as_bytes().to_vec(), value: value.to_vec() }]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conforms_over_both_transports() {
    for transport in [Transport::Buffered, Transport::Framed] {
        let server = HbaseTestServer::start_local(transport).unwrap();
        let store = seeded(&server, &[]).await;
        let records = fixture();
        assert_eq!(store.put(&records).await.unwrap().written, records.len());
        check_inspection(&store, &records).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspection_returns_cells_as_stored_with_their_timestamps() {
    let server = HbaseTestServer::start_local(Transport::Buffered).unwrap();
    let store = seeded(&server, &[1, 2, 3]).await;
    // Goods 2: garbage at timestamp 40; goods 3: goods 1's bytes at 7.
    let table = HBASE_TABLE.as_bytes();
    server.tables().mutate_rows(table, &[(hbase_row_key(2), put(b"\xffgarbage"))], 40).unwrap();
    let foreign = encode(&record(1, 7)).unwrap().to_vec();
    server.tables().mutate_rows(table, &[(hbase_row_key(3), put(&foreign))], 7).unwrap();

    let before = server.calls("getRowsWithColumns");
    let held: HashMap<GoodsId, _> =
        store.inspect(&[1, 2, 3, 3, 404]).await.unwrap().into_iter().map(|e| (e.goods_id, e)).collect();
    assert_eq!(server.calls("getRowsWithColumns") - before, 1, "one round trip for the batch");
    assert_eq!(held.len(), 3, "absent ids are absent: {held:?}");
    assert_eq!(held[&1].bytes, encode(&record(1, 5)).unwrap().to_vec());
    assert_eq!(held[&1].guard, VersionGuard::CellTimestamp(5));
    assert_eq!(
        (held[&2].bytes.as_slice(), held[&2].guard),
        (b"\xffgarbage".as_slice(), VersionGuard::CellTimestamp(40))
    );
    assert_eq!((&held[&3].bytes, held[&3].guard), (&foreign, VersionGuard::CellTimestamp(7)));
    assert!(store.inspect(&[]).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_walk_finds_every_goods_row_and_leaves_no_scanner_open() {
    for transport in [Transport::Buffered, Transport::Framed] {
        let server = HbaseTestServer::start_local(transport).unwrap();
        let ids: Vec<GoodsId> = (1..=250).collect();
        let store = seeded(&server, &ids).await;
        // A row that is not a goods row is walked over, not reported.
        server.tables().mutate_rows(HBASE_TABLE.as_bytes(), &[(b"zz-not-goods".to_vec(), put(b"x"))], 1).unwrap();
        let (found, steps) = walk_all(&store, 40).await;
        assert_eq!(found, ids.iter().copied().collect(), "{transport:?}");
        assert_eq!(steps, 7, "{transport:?}: 251 rows by 40");
        assert_eq!(server.calls("scannerOpen"), 7, "{transport:?}: one scanner per step");
        assert_eq!(server.calls("scannerClose"), server.calls("scannerOpen"), "{transport:?}: every scanner closed");
        // Removed goods are gone from the walk.
        store.remove(&[1, 2, 3]).await.unwrap();
        let (found, _) = walk_all(&store, 1_000).await;
        assert_eq!(found.len(), 247, "{transport:?}");
        assert!(!found.contains(&1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspection_errors_are_the_stores_own_kinds() {
    let mut server = HbaseTestServer::start_local(Transport::Buffered).unwrap();
    seeded(&server, &[1]).await;
    let store = HbaseStore::new(config(&server, Duration::from_millis(150))).unwrap();
    server.pause();
    let error = store.inspect(&[1]).await.unwrap_err();
    assert_eq!(error.kind, StoreErrorKind::Timeout, "{error}");
    let error = store.walk(&WalkCursor::start(), 10).await.unwrap_err();
    assert_eq!(error.kind, StoreErrorKind::Timeout, "{error}");
    server.resume();
    assert_eq!(store.inspect(&[1]).await.unwrap().len(), 1);
    server.stop();
    let error = store.walk(&WalkCursor::start(), 10).await.unwrap_err();
    assert_eq!(error.kind, StoreErrorKind::Unavailable, "{error}");
}
