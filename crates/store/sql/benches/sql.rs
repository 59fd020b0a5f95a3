//! SQLite figures for the embedded default: seeding the demo catalogue and
//! fetching listing-sized batches. `cargo bench -p pricing-store-sql`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use pricing_store::RecordStore;
use pricing_store_sql::SqlStore;
use pricing_store_sql::demo::{self, DemoOptions};

fn options() -> DemoOptions {
    DemoOptions { goods: 10_000, now_ms: 1_731_000_000_000, rng_seed: 1 }
}

fn seed(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut group = c.benchmark_group("sqlite");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    group.bench_function("seed_demo_10k", |b| {
        b.iter_batched(
            || tempfile::tempdir().unwrap(),
            |dir| {
                rt.block_on(async {
                    let store = SqlStore::open_embedded(dir.path().join("bench.db")).await.unwrap();
                    let report = demo::seed(&store, options()).await.unwrap();
                    assert!(report.seeded);
                    store.close().await;
                });
                dir
            },
            criterion::BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn fetch(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = rt.block_on(async {
        let store = SqlStore::open_embedded(dir.path().join("bench.db")).await.unwrap();
        demo::seed(&store, options()).await.unwrap();
        store
    });
    let mut group = c.benchmark_group("sqlite");
    for batch in [1u64, 20, 100] {
        let ids: Vec<u64> = (1..=batch).map(|i| i * 97 % 10_000 + 1).collect();
        group.bench_function(format!("fetch_{batch}"), |b| {
            b.iter(|| rt.block_on(async { black_box(store.fetch(&ids).await.unwrap()) }))
        });
    }
    group.bench_function("load_promotions_2_stores", |b| {
        b.iter(|| rt.block_on(async { black_box(store.load_promotions(&[1, 2], options().now_ms).await.unwrap()) }))
    });
    group.finish();
}

criterion_group!(benches, seed, fetch);
criterion_main!(benches);
