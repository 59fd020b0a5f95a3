//! Every scenario against the embedded SQLite backend (a temp file each).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

mod common;

use common::*;
use pricing_store::RecordStore;
use pricing_store_sql::{Backend, SqlStore};

async fn fresh() -> (tempfile::TempDir, SqlStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::open_embedded(dir.path().join("catalog.db")).await.expect("open embedded");
    assert_eq!(store.backend(), Backend::Sqlite);
    (dir, store)
}

#[tokio::test]
async fn conformance_suite_passes() {
    let (_dir, store) = fresh().await;
    conformance(&store).await;
}

#[tokio::test]
async fn scripted_writes_read_back_exactly() {
    let (_dir, store) = fresh().await;
    check_scripted(&scripted_writes(&store).await);
}

#[tokio::test]
async fn versions_strictly_increase_on_every_write() {
    let (_dir, store) = fresh().await;
    versions_strictly_increase(&store).await;
}

#[tokio::test]
async fn change_feeds_walk_and_follow_changes() {
    let (_dir, store) = fresh().await;
    change_feeds(&store).await;
}

#[tokio::test]
async fn promotions_are_filtered_by_window_status_scope_and_deletion() {
    let (_dir, store) = fresh().await;
    promotions_filter(&store).await;
}

#[tokio::test]
async fn corrupt_rows_are_a_miss_not_an_error() {
    let (_dir, store) = fresh().await;
    let mut statements = CORRUPT_ANY_BACKEND.to_vec();
    // SQLite keeps whatever type is written: text or a float in an integer
    // column must be a miss too, never a rounded price.
    statements.extend([
        // ('5' would be stored as the integer 5 by INTEGER affinity: not corrupt.)
        "UPDATE goods SET base_price_fen = 'abc' WHERE id = 10",
        "UPDATE goods SET base_price_fen = 1250.5 WHERE id = 11",
        "UPDATE activity SET value_x100 = 'five' WHERE goods_id = 12",
    ]);
    corrupt_rows_are_misses(&store, &statements).await;
}

#[tokio::test]
async fn embedded_file_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested name?.db");
    let store = SqlStore::open_embedded(&path).await.unwrap();
    let (catalog, _) = pinned(&store, NOW);
    catalog.upsert_goods(&goods(1, 1, rust_decimal_macros::dec!(3.5))).await.unwrap();
    store.close().await;
    let reopened = SqlStore::open_embedded(&path).await.expect("reopen runs migrations again as a no-op");
    assert_eq!(one(&reopened, 1).await.unwrap().base_price, rust_decimal_macros::dec!(3.5));
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(reopened.pool()).await.unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn demo_catalogue_is_deterministic_and_holds_the_well_known_ids() {
    let (_a, first) = fresh().await;
    let (_b, second) = fresh().await;
    demo_well_known(&first, 10_000).await;
    let report = pricing_store_sql::demo::seed(&second, demo_options(10_000)).await.unwrap();
    assert!(report.seeded);
    let (one_side, other_side) = (all_records(&first).await, all_records(&second).await);
    assert_eq!(one_side.len(), 10_000);
    assert!(one_side == other_side, "two seeds with the same options differ");
    assert!(one_side.iter().filter(|r| r.is_tombstone()).count() >= 2, "a few demo goods are soft-deleted");
}

#[tokio::test]
async fn big_batches_are_split_and_duplicates_collapse() {
    let (_dir, store) = fresh().await;
    pricing_store_sql::demo::seed(&store, demo_options(2_500)).await.unwrap();
    let mut ids: Vec<u64> = (1..=2_600).collect();
    ids.extend(1..=100);
    let got = store.fetch(&ids).await.unwrap();
    assert_eq!(got.len(), 2_500, "ids above the catalogue are absent, duplicates come back once");
    assert!(store.fetch(&[u64::MAX, 0]).await.unwrap().is_empty(), "unstorable ids are simply absent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_get_distinct_versions() {
    let (_dir, store) = fresh().await;
    common::concurrent_writes_get_distinct_versions(&store).await;
}
