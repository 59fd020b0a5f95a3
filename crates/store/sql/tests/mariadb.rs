//! Every scenario against a real MariaDB (`bash tests/run.sh -p pricing-store-sql`),
//! plus the promise that both backends build the same records.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

mod common;

use std::time::Duration;

use common::*;
use pricing_store::{RecordStore, StoreErrorKind};
use pricing_store_sql::{Backend, SqlOptions, SqlStore};

async fn fresh() -> SqlStore {
    let url = pricing_testkit::mysql::fresh_database("sqlstore").await;
    let store = SqlStore::connect(&url).await.expect("connect and migrate");
    assert_eq!(store.backend(), Backend::MySql);
    store
}

async fn sqlite() -> (tempfile::TempDir, SqlStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::open_embedded(dir.path().join("twin.db")).await.unwrap();
    (dir, store)
}

#[tokio::test]
async fn conformance_suite_passes() {
    conformance(&fresh().await).await;
}

#[tokio::test]
async fn both_backends_build_the_same_records_for_the_same_writes() {
    let maria = scripted_writes(&fresh().await).await;
    let (_dir, lite) = sqlite().await;
    let lite = scripted_writes(&lite).await;
    check_scripted(&maria);
    assert!(maria == lite, "MariaDB and SQLite disagree:\n{maria:#?}\n{lite:#?}");
}

#[tokio::test]
async fn both_backends_seed_the_same_demo_catalogue() {
    let maria = fresh().await;
    demo_well_known(&maria, 1_200).await;
    let (_dir, lite) = sqlite().await;
    pricing_store_sql::demo::seed(&lite, demo_options(1_200)).await.unwrap();
    let (m, l) = (all_records(&maria).await, all_records(&lite).await);
    assert_eq!(m.len(), 1_200);
    assert!(m == l, "the demo catalogue differs between MariaDB and SQLite");
}

#[tokio::test]
async fn versions_strictly_increase_on_every_write() {
    versions_strictly_increase(&fresh().await).await;
}

#[tokio::test]
async fn change_feeds_walk_and_follow_changes() {
    change_feeds(&fresh().await).await;
}

#[tokio::test]
async fn promotions_are_filtered_by_window_status_scope_and_deletion() {
    promotions_filter(&fresh().await).await;
}

#[tokio::test]
async fn corrupt_rows_are_a_miss_not_an_error() {
    corrupt_rows_are_misses(&fresh().await, &CORRUPT_ANY_BACKEND).await;
}

#[tokio::test]
async fn a_blocked_database_is_a_quick_timeout_not_a_hang() {
    let url = pricing_testkit::mysql::fresh_database("sqltimeout").await;
    let options = SqlOptions {
        statement_timeout: Duration::from_millis(300),
        acquire_timeout: Duration::from_millis(300),
        max_connections: 2,
        ..SqlOptions::default()
    };
    let store = SqlStore::connect_with(&url, options).await.unwrap();
    let (catalog, _) = pinned(&store, NOW);
    catalog.upsert_goods(&goods(1, 1, rust_decimal_macros::dec!(9))).await.unwrap();

    // Another session write-locks the table: reads of it wait.
    use sqlx::Connection;
    let mut locker = sqlx::MySqlConnection::connect(&url).await.unwrap();
    sqlx::query("LOCK TABLES goods WRITE, activity WRITE").execute(&mut locker).await.unwrap();
    let err = store.fetch(&[1]).await.expect_err("a blocked read must fail, not hang");
    assert_eq!(err.kind, StoreErrorKind::Timeout, "{err}");
    let err = store.fetch(&[1]).await.expect_err("still blocked");
    assert_eq!(err.kind, StoreErrorKind::Timeout, "{err}");

    sqlx::query("UNLOCK TABLES").execute(&mut locker).await.unwrap();
    let back = pricing_testkit::net::eventually("reads recover after unlock", Duration::from_secs(10), || async {
        store.fetch(&[1]).await.ok().filter(|r| r.len() == 1)
    })
    .await;
    assert_eq!(back[0].base_price, rust_decimal_macros::dec!(9));
}

#[tokio::test]
async fn an_unreachable_database_fails_connect_with_a_typed_error() {
    let port = pricing_testkit::net::free_port();
    let options = SqlOptions { acquire_timeout: Duration::from_millis(300), ..SqlOptions::default() };
    let err = SqlStore::connect_with(&format!("mysql://root@127.0.0.1:{port}/nope"), options).await.unwrap_err();
    assert!(
        matches!(err.kind(), pricing_store_sql::SqlErrorKind::Unavailable | pricing_store_sql::SqlErrorKind::Timeout),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_get_distinct_versions() {
    let store = fresh().await;
    common::concurrent_writes_get_distinct_versions(&store).await;
}
