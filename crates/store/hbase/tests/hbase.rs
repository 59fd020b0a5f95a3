//! HbaseStore against the in-memory HBase Thrift test server, started
//! in-process on a free port (Apache HBase cannot be installed here).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hbase_thrift::hbase::{BatchMutation, ColumnDescriptor, HbaseSyncClient, IOError, Mutation, THbaseSyncClient};
use pricing_record::keys::{HBASE_COLUMN, HBASE_TABLE, hbase_row_key};
use pricing_record::{GoodsRecord, encode};
use pricing_store::conformance::{check_reads, check_versioned_writes, fixture, record};
use pricing_store::{RecordStore, RecordWriter, SharedRecord, StoreErrorKind};
use pricing_store_hbase::server::tables::Change;
use pricing_store_hbase::{HbaseConfig, HbaseStore, HbaseTestServer, Transport};
use thrift::protocol::{TBinaryInputProtocol, TBinaryOutputProtocol, TInputProtocol, TOutputProtocol};
use thrift::transport::{
    TBufferedReadTransport, TBufferedWriteTransport, TFramedReadTransport, TFramedWriteTransport, TIoChannel,
    TTcpChannel,
};

fn config(server: &HbaseTestServer) -> HbaseConfig {
    let mut config = HbaseConfig::new("hbase-test", [server.address()]);
    config.transport = server.transport();
    config.call_timeout = Duration::from_secs(2);
    config.connect_timeout = Duration::from_secs(1);
    config
}

async fn ready_store(server: &HbaseTestServer) -> HbaseStore {
    let store = HbaseStore::new(config(server)).unwrap();
    store.ensure_table().await.unwrap();
    store
}

async fn seeded(server: &HbaseTestServer) -> (HbaseStore, Vec<SharedRecord>) {
    let store = ready_store(server).await;
    let records = fixture();
    let report = store.put(&records).await.unwrap();
    assert_eq!((report.written, report.skipped_older), (records.len(), 0));
    (store, records)
}

fn ids(records: &[SharedRecord]) -> Vec<u64> {
    records.iter().map(|r| r.goods_id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conforms_over_buffered_transport() {
    let server = HbaseTestServer::start_local(Transport::Buffered).unwrap();
    let (store, records) = seeded(&server).await;
    check_reads(&store, &records).await;
    check_versioned_writes(&store, &store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conforms_over_framed_transport() {
    let server = HbaseTestServer::start_local(Transport::Framed).unwrap();
    let (store, records) = seeded(&server).await;
    check_reads(&store, &records).await;
    check_versioned_writes(&store, &store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_get_rows_with_columns_per_batch() {
    let server = HbaseTestServer::start_local(Transport::Buffered).unwrap();
    let (store, records) = seeded(&server).await;
    let before = server.calls("getRowsWithColumns");

    let mut batch = ids(&records);
    batch.extend([9_001, 9_002, 101, 101]);
    let got = store.fetch(&batch).await.unwrap();
    assert_eq!(got.len(), records.len());
    assert_eq!(server.calls("getRowsWithColumns") - before, 1, "one round trip for the whole batch");

    assert!(store.fetch(&[]).await.unwrap().is_empty());
    assert_eq!(server.calls("getRowsWithColumns") - before, 1, "an empty batch makes no call");
    assert_eq!(server.calls("getRowWithColumns"), 0, "never one call per goods");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_are_matched_by_key_not_position() {
    let server = HbaseTestServer::start_local(Transport::Buffered).unwrap();
    let (store, records) = seeded(&server).await;
    server.set_reverse_rows(true);
    // With absent ids among them, positions would be off even without the
    // reversal; check_reads compares every record with what was stored.
    check_reads(&store, &records).await;
    let got = store.fetch(&[9_001, 103, 9_002, 101]).await.unwrap();
    let mut got_ids: Vec<u64> = got.iter().map(|r| r.goods_id).collect();
    got_ids.sort_unstable();
    assert_eq!(got_ids, vec![101, 103]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_cells_are_misses_not_errors() {
    let server = HbaseTestServer::start_local(Transport::Buffered).unwrap();
    let (store, records) = seeded(&server).await;
    let table = HBASE_TABLE.as_bytes();
    let put = |value: Vec<u8>| vec![Change::Put { column: HBASE_COLUMN.into(), value }];
    // Garbage under goods 1; goods 2's key holding goods 101's valid bytes.
    let foreign = encode(&records[0]).unwrap().to_vec();
    server
        .tables()
        .mutate_rows(table, &[(hbase_row_key(1), put(vec![0x01, 0xff, 0x00])), (hbase_row_key(2), put(foreign))], 1)
        .unwrap();

    let got = store.fetch(&[1, 2, 101]).await.unwrap();
    assert_eq!(got.len(), 1, "only the sound record comes back");
    assert_eq!(*got[0], *records[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_server_is_unavailable_and_the_store_recovers_after_restart() {
    let mut server = HbaseTestServer::start_local(Transport::Buffered).unwrap();
    let (store, records) = seeded(&server).await;
    // Concurrent calls leave several pooled connections, all of which the stop kills.
    let (a, b, c) = tokio::join!(store.fetch(&[101, 102]), store.fetch(&[101, 102]), store.fetch(&[101, 102]));
    for got in [a, b, c] {
        assert_eq!(got.unwrap().len(), 2);
    }

    server.stop();
    for _ in 0..3 {
        let err = store.fetch(&[101]).await.unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::Unavailable, "{err}");
    }
    let err = store.put(&records).await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Unavailable, "{err}");

    server.restart().unwrap();
    check_reads(&store, &records).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_does_not_answer_times_out() {
    let server = HbaseTestServer::start_local(Transport::Buffered).unwrap();
    let (_, records) = seeded(&server).await;
    let mut config = config(&server);
    config.call_timeout = Duration::from_millis(150);
    let store = HbaseStore::new(config).unwrap();

    server.pause();
    let err = store.fetch(&ids(&records)).await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Timeout, "{err}");
    server.resume();
    assert_eq!(store.fetch(&ids(&records)).await.unwrap().len(), records.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_write_never_hides_a_newer_one() {
    let server = HbaseTestServer::start_local(Transport::Framed).unwrap();
    let store = ready_store(&server).await;
    let v6: SharedRecord = Arc::new(record(500, 6, 1_100, vec![]));
    let v5: SharedRecord = Arc::new(record(500, 5, 1_000, vec![]));
    store.put(&[Arc::clone(&v6)]).await.unwrap();

    // A late writer that does not check first (another process, an old
    // client): only the cell timestamp protects the newer record.
    let mut client = raw_client(&server);
    let m = Mutation::new(false, HBASE_COLUMN.as_bytes().to_vec(), encode(&v5).unwrap().to_vec(), true);
    client.mutate_row_ts(HBASE_TABLE.into(), hbase_row_key(500), vec![m], 5, BTreeMap::new()).unwrap();
    assert_eq!(*store.fetch(&[500]).await.unwrap()[0], *v6);

    // Within one batch the highest version wins, whatever the order.
    let v7: SharedRecord = Arc::new(record(500, 7, 1_200, vec![]));
    let report = store.put(&[Arc::clone(&v7), Arc::clone(&v5)]).await.unwrap();
    assert_eq!((report.written, report.skipped_older), (1, 1));
    assert_eq!(*store.fetch(&[500]).await.unwrap()[0], *v7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_goods_written_again_after_remove_is_visible() {
    // HBase's deleteAllRow would mark the row deleted at the server clock
    // (milliseconds since 1970), hiding a later write at version 3 until a
    // major compaction. The store deletes up to the held version instead.
    let server = HbaseTestServer::start_local(Transport::Buffered).unwrap();
    let store = ready_store(&server).await;
    store.put(&[Arc::new(GoodsRecord::tombstone(600, 9))]).await.unwrap();
    store.remove(&[600, 601]).await.unwrap();
    assert!(store.fetch(&[600]).await.unwrap().is_empty());

    let again: SharedRecord = Arc::new(record(600, 10, 2_000, vec![]));
    assert_eq!(store.put(&[Arc::clone(&again)]).await.unwrap().written, 1);
    assert_eq!(*store.fetch(&[600]).await.unwrap()[0], *again);
    assert_eq!(server.calls("deleteAllRowTs"), 1, "only the held row is deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensure_table_creates_once_and_new_connections_fail_over() {
    let server = HbaseTestServer::start_local(Transport::Buffered).unwrap();
    let dead = format!("127.0.0.1:{}", pricing_testkit::net::free_port());
    let mut config = config(&server);
    config.addresses = vec![dead, server.address()];
    config.pool_size = 1;
    let store = HbaseStore::new(config).unwrap();
    store.ensure_table().await.unwrap();
    store.ensure_table().await.unwrap();
    assert_eq!(server.calls("createTable"), 1);
    assert_eq!(server.tables().table_names(), vec![HBASE_TABLE.as_bytes().to_vec()]);

    server.tables().set_enabled(HBASE_TABLE.as_bytes(), false).unwrap();
    let err = store.ensure_table().await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Unavailable);
    // An HBase IOError (table disabled) on a read is the store failing, not a miss.
    let err = store.fetch(&[1]).await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Unavailable, "{err}");
}

type RawClient = HbaseSyncClient<Box<dyn TInputProtocol + Send>, Box<dyn TOutputProtocol + Send>>;

/// The plain generated client, as any HBase Thrift v1 user would open it.
fn raw_client(server: &HbaseTestServer) -> RawClient {
    let mut channel = TTcpChannel::new();
    channel.open(server.address()).unwrap();
    let (i_chan, o_chan) = channel.split().unwrap();
    let (i, o): (Box<dyn TInputProtocol + Send>, Box<dyn TOutputProtocol + Send>) = match server.transport() {
        Transport::Buffered => (
            Box::new(TBinaryInputProtocol::new(TBufferedReadTransport::new(i_chan), true)),
            Box::new(TBinaryOutputProtocol::new(TBufferedWriteTransport::new(o_chan), true)),
        ),
        Transport::Framed => (
            Box::new(TBinaryInputProtocol::new(TFramedReadTransport::new(i_chan), true)),
            Box::new(TBinaryOutputProtocol::new(TFramedWriteTransport::new(o_chan), true)),
        ),
    };
    HbaseSyncClient::new(i, o)
}

fn speaks_the_protocol(transport: Transport) {
    let server = HbaseTestServer::start_local(transport).unwrap();
    let mut c = raw_client(&server);
    assert!(c.get_table_names().unwrap().is_empty());
    let family = ColumnDescriptor::new(b"cf:".to_vec(), 2, None, None, None, None, None, None, None);
    c.create_table(b"t".to_vec(), vec![family.clone()]).unwrap();
    let again = c.create_table(b"t".to_vec(), vec![family]).unwrap_err();
    assert!(matches!(&again, thrift::Error::User(e) if e.is::<hbase_thrift::hbase::AlreadyExists>()), "{again:?}");
    assert!(c.is_table_enabled(b"t".to_vec()).unwrap());
    assert_eq!(c.get_column_descriptors(b"t".to_vec()).unwrap()[b"cf:".as_slice()].max_versions, Some(2));

    let put = |v: &str| Mutation::new(false, b"cf:q".to_vec(), v.as_bytes().to_vec(), true);
    c.mutate_row_ts(b"t".to_vec(), b"row1".to_vec(), vec![put("new")], 20, BTreeMap::new()).unwrap();
    c.mutate_rows_ts(
        b"t".to_vec(),
        vec![
            BatchMutation::new(b"row1".to_vec(), vec![put("old")]),
            BatchMutation::new(b"row2".to_vec(), vec![put("two")]),
        ],
        10,
        BTreeMap::new(),
    )
    .unwrap();
    c.mutate_row(b"t".to_vec(), b"row3".to_vec(), vec![put("now")], BTreeMap::new()).unwrap();

    let row1 =
        c.get_row_with_columns(b"t".to_vec(), b"row1".to_vec(), vec![b"cf:q".to_vec()], BTreeMap::new()).unwrap();
    let cell = &row1[0].columns.as_ref().unwrap()[b"cf:q".as_slice()];
    assert_eq!((cell.value.as_deref(), cell.timestamp), (Some(b"new".as_slice()), Some(20)), "highest timestamp wins");

    let rows = c
        .get_rows_with_columns(
            b"t".to_vec(),
            vec![b"row2".to_vec(), b"missing".to_vec(), b"row3".to_vec()],
            vec![b"cf".to_vec()],
            BTreeMap::new(),
        )
        .unwrap();
    let keys: Vec<&[u8]> = rows.iter().map(|r| r.row.as_deref().unwrap()).collect();
    assert_eq!(keys, vec![b"row2".as_slice(), b"row3".as_slice()], "missing rows are omitted");
    let now_ts = rows[1].columns.as_ref().unwrap()[b"cf:q".as_slice()].timestamp.unwrap();
    assert!(now_ts > 1_600_000_000_000, "a write without timestamp gets the server clock in ms");

    c.delete_all_row(b"t".to_vec(), b"row2".to_vec(), BTreeMap::new()).unwrap();
    assert!(c.get_row(b"t".to_vec(), b"row2".to_vec(), BTreeMap::new()).unwrap().is_empty());

    let err = c.scanner_open(b"t".to_vec(), Vec::new(), Vec::new(), BTreeMap::new()).unwrap_err();
    assert!(
        matches!(&err, thrift::Error::User(e) if e.downcast_ref::<IOError>().is_some_and(|e| e.message.as_deref().unwrap_or("").contains("not supported"))),
        "{err:?}"
    );
    let err = c.get_rows(b"nope".to_vec(), vec![b"r".to_vec()], BTreeMap::new()).unwrap_err();
    assert!(matches!(&err, thrift::Error::User(e) if e.is::<IOError>()), "{err:?}");
    // The connection is still usable after declared exceptions.
    assert_eq!(c.get_table_names().unwrap(), vec![b"t".to_vec()]);
    assert_eq!(server.calls("mutateRowTs"), 1);
    assert_eq!(server.calls("scannerOpen"), 1);
}

#[test]
fn the_plain_generated_client_works_against_the_server_buffered() {
    speaks_the_protocol(Transport::Buffered);
}

#[test]
fn the_plain_generated_client_works_against_the_server_framed() {
    speaks_the_protocol(Transport::Framed);
}

#[test]
fn a_stopped_server_refuses_connections_and_drops_open_ones() {
    let mut server = HbaseTestServer::start_local(Transport::Buffered).unwrap();
    let mut c = raw_client(&server);
    c.get_table_names().unwrap();
    server.stop();
    assert!(!pricing_testkit::net::accepts(server.addr()), "listener closed");
    assert!(c.get_table_names().is_err(), "open connection dropped");
    server.restart().unwrap();
    assert!(raw_client(&server).get_table_names().unwrap().is_empty());
}
