//! The Redis store against real, throwaway redis-server processes.
//! Run through `bash tests/run.sh -p pricing-store-redis`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use pricing_record::keys::redis_key;
use pricing_record::{GoodsId, GoodsRecord};
use pricing_store::conformance::{check_reads, check_versioned_writes, fixture, record};
use pricing_store::{RecordStore, RecordWriter, SharedRecord, StoreErrorKind};
use pricing_store_redis::{RedisConfig, RedisStore};
use pricing_testkit::net::eventually;
use pricing_testkit::redis::RedisServer;

const TIMEOUT: Duration = Duration::from_millis(300);

fn config(server: &RedisServer) -> RedisConfig {
    RedisConfig::standalone("redis-a", server.url()).with_timeouts(TIMEOUT, TIMEOUT)
}

fn store(server: &RedisServer) -> RedisStore {
    RedisStore::new(config(server)).expect("valid config")
}

/// Calls of one command since the last CONFIG RESETSTAT, from INFO commandstats.
fn command_calls(server: &RedisServer, command: &str) -> u64 {
    let stats = server.command(&["INFO", "commandstats"]);
    let prefix = format!("cmdstat_{command}:calls=");
    stats
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(|rest| rest.split(',').next().unwrap().parse().expect("calls is a number"))
        .unwrap_or(0)
}

fn shared(record: GoodsRecord) -> SharedRecord {
    Arc::new(record)
}

async fn stored_version(store: &RedisStore, id: GoodsId) -> Option<u64> {
    store.fetch(&[id]).await.expect("fetch").first().map(|r| r.version)
}

/// Waits until the store answers again (it reconnects in the background).
async fn until_answers(store: &RedisStore) {
    eventually("the store to answer again", Duration::from_secs(10), || async {
        store.fetch(&[1]).await.ok().map(drop)
    })
    .await;
}

#[tokio::test]
async fn conforms_when_seeded_through_its_writer() {
    let server = RedisServer::start();
    let store = store(&server);
    let seeded = fixture();
    let report = store.put(&seeded).await.unwrap();
    assert_eq!(report.written, seeded.len());
    check_reads(&store, &seeded).await;
    check_versioned_writes(&store, &store).await;
}

#[tokio::test]
async fn one_mget_per_batch() {
    let server = RedisServer::start();
    let store = store(&server);
    let seeded: Vec<SharedRecord> = (1..=150).map(|id| shared(record(id, 1, 1_000 + id as i64, vec![]))).collect();
    store.put(&seeded).await.unwrap();

    server.command(&["CONFIG", "RESETSTAT"]);
    // 150 present, 100 absent, and every present id asked twice.
    let mut ids: Vec<GoodsId> = (1..=250).collect();
    ids.extend(1..=150);
    let got = store.fetch(&ids).await.unwrap();
    assert_eq!(got.len(), 150);
    assert_eq!(command_calls(&server, "mget"), 1, "a batch must be one MGET");
    assert_eq!(command_calls(&server, "get"), 0, "no per-id GET");

    store.fetch(&ids[..10]).await.unwrap();
    assert_eq!(command_calls(&server, "mget"), 2);
}

#[tokio::test]
async fn version_guard_is_one_evalsha_per_batch_and_reloads_after_flush() {
    let server = RedisServer::start();
    let store = store(&server);
    let batch =
        |version: u64| -> Vec<SharedRecord> { (1..=50).map(|id| shared(record(id, version, 2_000, vec![]))).collect() };
    store.put(&batch(1)).await.unwrap(); // first use: NOSCRIPT, SCRIPT LOAD, EVALSHA

    server.command(&["CONFIG", "RESETSTAT"]);
    let report = store.put(&batch(2)).await.unwrap();
    assert_eq!((report.written, report.skipped_older), (50, 0));
    assert_eq!(command_calls(&server, "evalsha"), 1, "one script call for the batch");
    assert_eq!(command_calls(&server, "script|load"), 0, "script is loaded once, not per call");
    assert_eq!(command_calls(&server, "eval"), 0, "the source is not resent");

    server.command(&["SCRIPT", "FLUSH"]);
    let report = store.put(&batch(3)).await.unwrap();
    assert_eq!(report.written, 50, "script reloaded on NOSCRIPT");
    assert_eq!(command_calls(&server, "script|load"), 1);
    assert_eq!(stored_version(&store, 7).await, Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_out_of_order_writes_never_regress() {
    let server = RedisServer::start();
    let store = store(&server);
    let id: GoodsId = 4_242;
    const TOP: u64 = 80;
    const WRITERS: u64 = 8;

    // A reader watches the stored version the whole time: it must never go down.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (store, done) = (store.clone(), Arc::clone(&done));
        tokio::spawn(async move {
            let (mut last, mut reads) = (0u64, 0u32);
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(v) = stored_version(&store, id).await {
                    assert!(v >= last, "stored version went back from {last} to {v}");
                    last = v;
                }
                reads += 1;
                tokio::task::yield_now().await;
            }
            reads
        })
    };
    // Each writer walks every version in its own scrambled order.
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut written = 0;
                for step in 0..TOP {
                    let version = (step * 37 + w * 11) % TOP + 1;
                    let rec = shared(record(id, version, 1_000 + version as i64, vec![]));
                    written += store.put(&[rec]).await.unwrap().written;
                }
                written
            })
        })
        .collect();
    let mut total_written = 0;
    for writer in writers {
        total_written += writer.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(reader.await.unwrap() > 0, "the reader ran");

    let top = store.fetch(&[id]).await.unwrap();
    assert_eq!(top[0].version, TOP, "the highest version wins");
    assert_eq!(top[0].base_price, record(id, TOP, 1_000 + TOP as i64, vec![]).base_price);
    // Every accepted write raised the version, so there are at most TOP of them.
    assert!((1..=TOP as usize).contains(&total_written), "written {total_written}");
}

#[tokio::test]
async fn corrupt_values_are_misses_and_are_replaced_by_writes() {
    let server = RedisServer::start();
    let store = store(&server);
    let good = shared(record(101, 3, 3_000, vec![]));
    let foreign = shared(record(556, 3, 3_000, vec![]));
    store.put(&[Arc::clone(&good), foreign]).await.unwrap();

    let garbage_key = redis_key(555);
    server.command(&["SET", &garbage_key, "not a record"]);
    // Valid bytes of goods 556 under the key of goods 557.
    server.command(&["RENAME", &redis_key(556), &redis_key(557)]);
    server.command(&["SET", &redis_key(558), ""]);
    server.command(&["HSET", &redis_key(559), "f", "v"]); // wrong type: MGET answers nil

    let got = store.fetch(&[555, 557, 558, 559, 101]).await.expect("corrupt values are not an error");
    assert_eq!(got.len(), 1);
    assert_eq!(*got[0], *good);

    // A stored value with an unknown format byte or too short counts as older.
    for id in [555, 558, 559] {
        let report = store.put(&[shared(record(id, 1, 100, vec![]))]).await.unwrap();
        assert_eq!(report.written, 1, "goods {id}: corrupt value must be replaced");
        assert_eq!(stored_version(&store, id).await, Some(1));
    }
}

#[tokio::test]
async fn key_ttl_is_set_only_when_configured() {
    let server = RedisServer::start();
    let plain = store(&server);
    let expiring = RedisStore::new(config(&server).with_key_ttl(Some(Duration::from_secs(60)))).unwrap();
    plain.put(&[shared(record(1, 1, 100, vec![]))]).await.unwrap();
    expiring.put(&[shared(record(2, 1, 100, vec![]))]).await.unwrap();

    assert_eq!(server.command(&["PTTL", &redis_key(1)]).trim(), ":-1", "no TTL by default");
    let pttl: i64 = server.command(&["PTTL", &redis_key(2)]).trim().trim_start_matches(':').parse().unwrap();
    assert!((1..=60_000).contains(&pttl), "pttl {pttl}");
}

#[tokio::test]
async fn killed_server_is_unavailable_fast_then_the_same_store_recovers() {
    let mut server = RedisServer::start();
    let store = store(&server);
    store.put(&fixture()).await.unwrap();
    assert_eq!(store.fetch(&[101]).await.unwrap().len(), 1);

    server.kill();
    let bound = store.config().call_deadline() * 5;
    for _ in 0..3 {
        let started = Instant::now();
        let err = store.fetch(&[101]).await.expect_err("server is gone");
        assert_eq!(err.kind, StoreErrorKind::Unavailable, "{err}");
        assert_eq!(err.store, "redis-a");
        assert!(started.elapsed() < bound, "took {:?}", started.elapsed());
    }
    let err = store.put(&fixture()).await.expect_err("server is gone");
    assert_eq!(err.kind, StoreErrorKind::Unavailable, "{err}");

    server.restart(); // same port, empty
    until_answers(&store).await;
    let seeded = fixture();
    store.put(&seeded).await.unwrap();
    check_reads(&store, &seeded).await;
}

#[tokio::test]
async fn store_comes_up_while_redis_is_down() {
    let mut server = RedisServer::start();
    server.kill();
    let store = RedisStore::new(config(&server)).expect("building does not touch the network");
    assert!(store.fetch(&[]).await.unwrap().is_empty(), "an empty batch needs no I/O");
    let err = store.fetch(&[101]).await.expect_err("nothing listens");
    assert_eq!(err.kind, StoreErrorKind::Unavailable, "{err}");

    server.restart();
    until_answers(&store).await;
    let seeded = fixture();
    store.put(&seeded).await.unwrap();
    check_reads(&store, &seeded).await;
}

#[tokio::test]
async fn frozen_server_times_out_then_recovers_when_thawed() {
    let server = RedisServer::start();
    let store = store(&server);
    let seeded = fixture();
    store.put(&seeded).await.unwrap();

    server.freeze();
    let bound = TIMEOUT * 5;
    let started = Instant::now();
    let err = store.fetch(&[101, 102]).await.expect_err("a frozen server answers nothing");
    assert_eq!(err.kind, StoreErrorKind::Timeout, "{err}");
    assert!(started.elapsed() < bound, "took {:?}", started.elapsed());
    let started = Instant::now();
    let err = store.put(&seeded).await.expect_err("a frozen server answers nothing");
    assert_eq!(err.kind, StoreErrorKind::Timeout, "{err}");
    assert!(started.elapsed() < bound, "took {:?}", started.elapsed());

    server.thaw();
    until_answers(&store).await;
    check_reads(&store, &seeded).await;
}

#[tokio::test]
async fn versions_compare_as_big_endian_numbers_across_byte_boundaries() {
    let server = RedisServer::start();
    let store = store(&server);
    let id: GoodsId = 77;
    let put = |version: u64| {
        let store = store.clone();
        async move { store.put(&[shared(record(id, version, 100, vec![]))]).await.unwrap().written }
    };
    // (version, written?) in order: each line differs from the held version
    // in a byte other than the last, or is equal only in its high bytes.
    let steps: [(u64, usize); 9] = [
        (255, 1),
        (256, 1),
        (255, 0),
        (1 << 40, 1),
        ((1 << 40) - 1, 0),
        (1_700_000_000_000_000, 1), // a nanosecond-like timestamp
        (1 << 56, 1),
        (u64::MAX, 1),
        (1 << 63, 0),
    ];
    for (version, written) in steps {
        assert_eq!(put(version).await, written, "put of version {version}");
    }
    assert_eq!(stored_version(&store, id).await, Some(u64::MAX));
}
