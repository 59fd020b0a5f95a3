//! Latency of one store call against the in-process HBase Thrift test server
//! (loopback, one client, calls in sequence): the client's cost (pool,
//! spawn_blocking, Thrift encoding) plus the test server's, not HBase's.
//! `cargo bench -p pricing-store-hbase`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pricing_record::GoodsId;
use pricing_store::conformance::{activity, record};
use pricing_store::{RecordStore, RecordWriter, SharedRecord};
use pricing_store_hbase::{HbaseConfig, HbaseStore, HbaseTestServer, Transport};

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
    let server = HbaseTestServer::start_local(Transport::Buffered).unwrap();
    let store = HbaseStore::new(HbaseConfig::new("hbase-bench", [server.address()])).unwrap();
    rt.block_on(store.ensure_table()).unwrap();
    let seeded: Vec<SharedRecord> = (1..=1_000).map(|id| sample(id, 1)).collect();
    rt.block_on(store.put(&seeded)).unwrap();

    let mut group = c.benchmark_group("hbase_fetch");
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

    // Every iteration writes a newer version, so nothing is skipped; all
    // records share the version, so it is one read plus one mutateRowsTs.
    let version = AtomicU64::new(1);
    let mut group = c.benchmark_group("hbase_put");
    group.throughput(Throughput::Elements(100));
    group.bench_function("100", |b| {
        b.iter(|| {
            let v = version.fetch_add(1, Ordering::Relaxed) + 1;
            let batch: Vec<SharedRecord> = (1..=100).map(|id| sample(id, v)).collect();
            let report = rt.block_on(store.put(black_box(&batch))).unwrap();
            assert_eq!(report.written, 100);
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
