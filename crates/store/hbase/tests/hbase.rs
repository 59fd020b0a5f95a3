//! HbaseStore against the in-memory HBase Thrift test server, started
//! in-process on a free port (Apache HBase cannot be installed here).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hbase_thrift::hbase::{
    BatchMutation, ColumnDescriptor, HbaseSyncClient, IOError, IllegalArgument, Mutation, THbaseSyncClient, TRowResult,
    TScan,
};
use pricing_record::keys::{HBASE_COLUMN, HBASE_TABLE, hbase_row_key};
use pricing_record::{GoodsRecord, encode};
use pricing_store::conformance::{check_reads, check_versioned_writes, fixture, record};
use pricing_store::{RecordStore, RecordWriter, SharedRecord, StoreErrorKind};
use pricing_store_hbase::server::tables::Change;
use pricing_store_hbase::{HbaseConfig, HbaseStore, HbaseTestServer, Transport};
use thrift::protocol::{
    TBinaryInputProtocol, TBinaryOutputProtocol, TFieldIdentifier, TInputProtocol, TMessageIdentifier, TMessageType,
    TOutputProtocol, TStructIdentifier, TType,
};
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

    let err = c.get_ver(b"t".to_vec(), b"row1".to_vec(), b"cf:q".to_vec(), 2, BTreeMap::new()).unwrap_err();
    assert!(
        matches!(&err, thrift::Error::User(e) if e.downcast_ref::<IOError>().is_some_and(|e| e.message.as_deref().unwrap_or("").contains("not supported"))),
        "{err:?}"
    );
    let err = c.get_rows(b"nope".to_vec(), vec![b"r".to_vec()], BTreeMap::new()).unwrap_err();
    assert!(matches!(&err, thrift::Error::User(e) if e.is::<IOError>()), "{err:?}");
    // The connection is still usable after declared exceptions.
    assert_eq!(c.get_table_names().unwrap(), vec![b"t".to_vec()]);
    assert_eq!(server.calls("mutateRowTs"), 1);
    assert_eq!(server.calls("getVer"), 1);
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

/// A table "t" (family "cf") with rows row00..row24, each with cf:a and
/// cf:b, cf:a written at timestamps 10 and 20 ("old", "new").
fn browsable(server: &HbaseTestServer) -> RawClient {
    let mut c = raw_client(server);
    let family = ColumnDescriptor::new(b"cf:".to_vec(), 3, None, None, None, None, None, None, None);
    c.create_table(b"t".to_vec(), vec![family]).unwrap();
    let put = |column: &str, v: &str| Mutation::new(false, column.as_bytes().to_vec(), v.as_bytes().to_vec(), true);
    let rows = |value: &str| -> Vec<BatchMutation> {
        (0..25)
            .map(|i| BatchMutation::new(format!("row{i:02}").into_bytes(), vec![put("cf:a", value), put("cf:b", "b")]))
            .collect()
    };
    c.mutate_rows_ts(b"t".to_vec(), rows("old"), 10, BTreeMap::new()).unwrap();
    c.mutate_rows_ts(b"t".to_vec(), rows("new"), 20, BTreeMap::new()).unwrap();
    c
}

/// A TScan with every field unset (`TScan::default()` sets them all, and a
/// timestamp of 0 would select nothing, in HBase as here).
fn unset_scan() -> TScan {
    TScan {
        start_row: None,
        stop_row: None,
        timestamp: None,
        columns: None,
        caching: None,
        filter_string: None,
        batch_size: None,
        sort_columns: None,
        reversed: None,
        cache_blocks: None,
    }
}

fn keys(rows: &[TRowResult]) -> Vec<String> {
    rows.iter().map(|r| String::from_utf8(r.row.clone().unwrap()).unwrap()).collect()
}

fn is_illegal_argument(err: &thrift::Error) -> bool {
    matches!(err, thrift::Error::User(e) if e.is::<IllegalArgument>())
}

fn scanners_walk_rows_in_key_order(transport: Transport) {
    let server = HbaseTestServer::start_local(transport).unwrap();
    let mut c = browsable(&server);

    // scannerOpenWithScan: start inclusive, stop exclusive, pages of 4.
    let scan = TScan {
        start_row: Some(b"row03".to_vec()),
        stop_row: Some(b"row13".to_vec()),
        columns: Some(vec![b"cf:a".to_vec()]),
        caching: Some(4),
        ..unset_scan()
    };
    let id = c.scanner_open_with_scan(b"t".to_vec(), scan, BTreeMap::new()).unwrap();
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = c.scanner_get_list(id, 4).unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 4);
        for row in &page {
            let columns = row.columns.as_ref().unwrap();
            assert_eq!(columns.keys().cloned().collect::<Vec<_>>(), vec![b"cf:a".to_vec()], "only the asked column");
            assert_eq!(columns[b"cf:a".as_slice()].value.as_deref(), Some(b"new".as_slice()), "the newest cell");
        }
        seen.extend(keys(&page));
        pages += 1;
    }
    let expected: Vec<String> = (3..13).map(|i| format!("row{i:02}")).collect();
    assert_eq!(seen, expected);
    assert_eq!(pages, 3);
    assert!(c.scanner_get_list(id, 4).unwrap().is_empty(), "an exhausted scanner stays empty");
    c.scanner_close(id).unwrap();
    let err = c.scanner_get_list(id, 4).unwrap_err();
    assert!(is_illegal_argument(&err), "a closed scanner is gone: {err:?}");
    assert!(is_illegal_argument(&c.scanner_close(id).unwrap_err()));

    // scannerOpen with no columns: every column, to the end of the table.
    let id = c.scanner_open(b"t".to_vec(), b"row20".to_vec(), Vec::new(), BTreeMap::new()).unwrap();
    let rows = c.scanner_get_list(id, 100).unwrap();
    assert_eq!(keys(&rows), ["row20", "row21", "row22", "row23", "row24"]);
    assert_eq!(rows[0].columns.as_ref().unwrap().len(), 2, "cf:a and cf:b");
    c.scanner_close(id).unwrap();

    // A scan with a timestamp sees only older cells; sortColumns gives a list.
    let scan =
        TScan { stop_row: Some(b"row02".to_vec()), timestamp: Some(15), sort_columns: Some(true), ..unset_scan() };
    let id = c.scanner_open_with_scan(b"t".to_vec(), scan, BTreeMap::new()).unwrap();
    let rows = c.scanner_get(id).unwrap();
    assert_eq!(keys(&rows), ["row00"]);
    let sorted = rows[0].sorted_columns.as_ref().unwrap();
    assert_eq!(sorted[0].column_name.as_deref(), Some(b"cf:a".as_slice()));
    assert_eq!(sorted[0].cell.as_ref().unwrap().value.as_deref(), Some(b"old".as_slice()));
    assert_eq!(keys(&c.scanner_get(id).unwrap()), ["row01"]);
    assert!(c.scanner_get(id).unwrap().is_empty());
    c.scanner_close(id).unwrap();

    // Prefix and stop-row variants; a deleted row is skipped.
    c.delete_all_row(b"t".to_vec(), b"row11".to_vec(), BTreeMap::new()).unwrap();
    let id = c.scanner_open_with_prefix(b"t".to_vec(), b"row1".to_vec(), Vec::new(), BTreeMap::new()).unwrap();
    let rows = c.scanner_get_list(id, 100).unwrap();
    assert_eq!(keys(&rows).len(), 9, "row10..row19 without row11: {:?}", keys(&rows));
    assert!(!keys(&rows).contains(&"row11".to_owned()));
    let id = c
        .scanner_open_with_stop(b"t".to_vec(), b"row22".to_vec(), b"row24".to_vec(), Vec::new(), BTreeMap::new())
        .unwrap();
    assert_eq!(keys(&c.scanner_get_list(id, 100).unwrap()), ["row22", "row23"]);

    // Unknown tables and families fail at open, as in HBase.
    let err = c.scanner_open(b"nope".to_vec(), Vec::new(), Vec::new(), BTreeMap::new()).unwrap_err();
    assert!(matches!(&err, thrift::Error::User(e) if e.is::<IOError>()), "{err:?}");
    let err = c.scanner_open(b"t".to_vec(), Vec::new(), vec![b"zz:q".to_vec()], BTreeMap::new()).unwrap_err();
    assert!(matches!(&err, thrift::Error::User(e) if e.is::<IOError>()), "{err:?}");
    assert!(server.calls("scannerGetList") >= 5);
}

#[test]
fn scanners_walk_rows_in_key_order_buffered() {
    scanners_walk_rows_in_key_order(Transport::Buffered);
}

#[test]
fn scanners_walk_rows_in_key_order_framed() {
    scanners_walk_rows_in_key_order(Transport::Framed);
}

/// Sends `method` with only the given string arguments (field id, bytes),
/// as a client does that leaves the others null (the Python HBase clients
/// send no column list and no attributes), and returns the reply protocol
/// positioned at the result struct.
fn call_with_only(server: &HbaseTestServer, method: &str, args: &[(i16, &[u8])]) -> Box<dyn TInputProtocol> {
    let mut channel = TTcpChannel::new();
    channel.open(server.address()).unwrap();
    let (i_chan, o_chan) = channel.split().unwrap();
    let mut o = TBinaryOutputProtocol::new(TBufferedWriteTransport::new(o_chan), true);
    o.write_message_begin(&TMessageIdentifier::new(method, TMessageType::Call, 7)).unwrap();
    o.write_struct_begin(&TStructIdentifier::new(format!("{method}_args"))).unwrap();
    for (id, value) in args {
        o.write_field_begin(&TFieldIdentifier::new("arg", TType::String, *id)).unwrap();
        o.write_bytes(value).unwrap();
        o.write_field_end().unwrap();
    }
    o.write_field_stop().unwrap();
    o.write_struct_end().unwrap();
    o.write_message_end().unwrap();
    o.flush().unwrap();
    let mut i: Box<dyn TInputProtocol> = Box::new(TBinaryInputProtocol::new(TBufferedReadTransport::new(i_chan), true));
    let reply = i.read_message_begin().unwrap();
    assert_eq!((reply.name.as_str(), reply.message_type, reply.sequence_number), (method, TMessageType::Reply, 7));
    i.read_struct_begin().unwrap();
    i
}

/// Reads the `success` field (id 0) of a reply that returns a row list.
fn read_rows(mut i: Box<dyn TInputProtocol>) -> Vec<TRowResult> {
    let field = i.read_field_begin().unwrap();
    assert_eq!((field.id, field.field_type), (Some(0), TType::List), "a result, not an exception");
    let list = i.read_list_begin().unwrap();
    let rows = (0..list.size).map(|_| TRowResult::read_from_in_protocol(&mut *i).unwrap()).collect();
    i.read_list_end().unwrap();
    rows
}

#[test]
fn absent_column_lists_and_attributes_are_read_as_hbase_reads_them() {
    let server = HbaseTestServer::start_local(Transport::Buffered).unwrap();
    let _c = browsable(&server);

    // getRowWithColumns(table, row) with no column list: every column.
    let rows = read_rows(call_with_only(&server, "getRowWithColumns", &[(1, b"t"), (2, b"row05")]));
    assert_eq!(keys(&rows), ["row05"]);
    let columns: Vec<Vec<u8>> = rows[0].columns.as_ref().unwrap().keys().cloned().collect();
    assert_eq!(columns, vec![b"cf:a".to_vec(), b"cf:b".to_vec()]);

    // getRow without attributes.
    let rows = read_rows(call_with_only(&server, "getRow", &[(1, b"t"), (2, b"row06")]));
    assert_eq!(keys(&rows), ["row06"]);

    // scannerOpen(table, startRow) with neither columns nor attributes,
    // then the scanner is read with the generated client.
    let mut i = call_with_only(&server, "scannerOpen", &[(1, b"t"), (2, b"row23")]);
    let field = i.read_field_begin().unwrap();
    assert_eq!((field.id, field.field_type), (Some(0), TType::I32));
    let id = i.read_i32().unwrap();
    let mut c = raw_client(&server);
    let rows = c.scanner_get_list(id, 10).unwrap();
    assert_eq!(keys(&rows), ["row23", "row24"]);
    assert_eq!(rows[0].columns.as_ref().unwrap().len(), 2);
    c.scanner_close(id).unwrap();
    assert_eq!(server.calls("getRowWithColumns"), 1);
}
