//! Latency of one store call against a local redis-server (loopback, one
//! client, calls in sequence): what a listing-page batch costs in this tier.
//! `cargo bench -p pricing-store-redis` (needs `redis-server` on PATH or
//! PRICING_TEST_REDIS_SERVER).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pricing_record::GoodsId;
use pricing_store::conformance::{activity, record};
use pricing_store::{RecordStore, RecordWriter, SharedRecord};
use pricing_store_redis::{RedisConfig, RedisStore};
use pricing_testkit::redis::RedisServer;

/// A goods with three activities, about the size of a typical stored record.
fn sample(id: GoodsId, version: u64) -> SharedRecord {
    use pricing_record::ActivityKind::{AmountOff, Discount, FlashSale};
    let price = |fen| rust_decimal::Decimal::new(fen, 2);
    Arc::new(record(
        id,
        version,
        9_900,
        vec![
            activity(id, id * 10 + 1, FlashSale, price(5_990)),
            activity(id, id * 10 + 2, Discount, price(8_500)),
            activity(id, id * 10 + 3, AmountOff, price(1_000)),
        ],
    ))
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let server = RedisServer::start();
    let store = rt.block_on(async { RedisStore::new(RedisConfig::standalone("redis-bench", server.url())).unwrap() });
    let seeded: Vec<SharedRecord> = (1..=1_000).map(|id| sample(id, 1)).collect();
    rt.block_on(store.put(&seeded)).unwrap();

    let mut group = c.benchmark_group("fetch");
    for batch in [1usize, 20, 100, 500] {
        let ids: Vec<GoodsId> = (1..=batch as u64).collect();
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::from_parameter(batch), &ids, |b, ids| {
            b.iter(|| {
                let got = rt.block_on(store.fetch(black_box(ids))).unwrap();
                assert_eq!(got.len(), ids.len());
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("put");
    let version = AtomicU64::new(2);
    for batch in [1usize, 100] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(BenchmarkId::from_parameter(batch), |b| {
            b.iter(|| {
                // Every call carries a newer version, so every record is written.
                let v = version.fetch_add(1, Ordering::Relaxed);
                let records: Vec<SharedRecord> = (1..=batch as u64).map(|id| sample(id, v)).collect();
                let report = rt.block_on(store.put(&records)).unwrap();
                assert_eq!(report.written, batch);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
