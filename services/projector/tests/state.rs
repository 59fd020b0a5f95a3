//! The projector's tables in the source database (`pricing_store_sql::projector`):
//! the same checks on SQLite (no server needed) and MariaDB (through `tests/run.sh`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

use pricing_record::GoodsStatus;
use pricing_store_sql::projector::{Cursor, RetryEntry};
use pricing_store_sql::{GoodsRow, SqlStore};
use rust_decimal_macros::dec;

fn entry(target: &str, goods_id: u64, version: u64, next: i64) -> RetryEntry {
    RetryEntry {
        target: target.into(),
        goods_id,
        version,
        attempts: 2,
        last_error: format!("redis-b: Unavailable: refused {}", "x".repeat(2_000)),
        next_attempt_at: next,
    }
}

async fn check(store: &SqlStore) {
    // Cursors: absent, saved, moved (also to the same value), cleared.
    assert_eq!(store.cursor("full").await.unwrap(), None);
    let c = Cursor { position_ms: 0, after_id: 40 };
    store.save_cursor("full", c, 1).await.unwrap();
    store.save_cursor("full", c, 1).await.unwrap();
    assert_eq!(store.cursor("full").await.unwrap(), Some(c));
    let moved = Cursor { position_ms: 7, after_id: 80 };
    store.save_cursor("full", moved, 2).await.unwrap();
    assert_eq!(store.cursor("full").await.unwrap(), Some(moved));
    store.save_cursor("incremental", Cursor { position_ms: 9, after_id: 1 }, 2).await.unwrap();
    store.clear_cursor("full").await.unwrap();
    assert_eq!(store.cursor("full").await.unwrap(), None);
    assert!(store.cursor("incremental").await.unwrap().is_some());

    // The queue: one row per (cluster, goods); a second failure keeps the
    // higher version and adds the attempts.
    store.enqueue_retry(&entry("redis-b", 5, 10, 100), 1).await.unwrap();
    store.enqueue_retry(&entry("redis-b", 5, 8, 200), 2).await.unwrap();
    store.enqueue_retry(&entry("hbase-a", 5, 10, 100), 2).await.unwrap();
    store.enqueue_retry(&entry("redis-b", 6, 3, 5_000), 2).await.unwrap();
    assert_eq!(store.retry_depth().await.unwrap(), 3);
    let due = store.due_retries(300, 10).await.unwrap();
    assert_eq!(due.len(), 2, "{due:?}");
    let merged = due.iter().find(|e| e.target == "redis-b").unwrap();
    assert_eq!((merged.version, merged.attempts, merged.next_attempt_at), (10, 4, 200));
    assert_eq!(merged.last_error.chars().count(), 1_000, "errors are clipped to the column");
    // Another failure moves the next attempt; an older write does not drop it.
    store.retry_failed("redis-b", 5, "again", 900, 3).await.unwrap();
    assert_eq!(store.due_retries(300, 10).await.unwrap().len(), 1);
    assert!(!store.retry_succeeded("redis-b", 5, 9).await.unwrap());
    assert!(store.retry_succeeded("redis-b", 5, 10).await.unwrap());
    assert!(store.retry_succeeded("hbase-a", 5, u64::MAX).await.unwrap());
    assert_eq!(store.retry_depth().await.unwrap(), 1);

    // Purge: only goods deleted before the cutoff at the version given.
    let catalog = store.catalog();
    for id in [1, 2, 3] {
        let row =
            GoodsRow { id, store_id: 1, base_price: dec!(9.90), currency: "CNY".into(), status: GoodsStatus::OnSale };
        catalog.upsert_goods(&row).await.unwrap();
    }
    let v1 = catalog.delete_goods(1).await.unwrap();
    let v2 = catalog.delete_goods(2).await.unwrap();
    assert_eq!(store.goods_count().await.unwrap(), 3);
    let far_future = i64::MAX;
    assert_eq!(store.purgeable_goods(far_future, 0, 10).await.unwrap(), vec![(1, v1), (2, v2)]);
    assert_eq!(store.purgeable_goods(0, 0, 10).await.unwrap(), vec![]);
    let purged = store.purge_goods(&[(1, v1), (2, v2 - 1)], far_future).await.unwrap();
    assert_eq!(purged, vec![1], "goods 2 changed since: kept");
    assert_eq!(store.existing_goods(&[1, 2, 3, 99]).await.unwrap(), vec![2, 3]);

    // Re-versioning: above the blocking version, content unchanged.
    let before = store.load(&[3]).await.unwrap().remove(0);
    let v = store.reversion_goods(3, before.version + 1_000).await.unwrap();
    assert_eq!(v, before.version + 1_001);
    let after = store.load(&[3]).await.unwrap().remove(0);
    assert_eq!(after, pricing_record::GoodsRecord { version: v, ..before });
    let next = catalog.delete_goods(3).await.unwrap();
    assert!(next > v, "the counter moved past the new version");
    assert!(store.reversion_goods(404, 1).await.is_err());
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::open_embedded(dir.path().join("state.db")).await.unwrap();
    check(&store).await;
}

#[tokio::test]
async fn mariadb() {
    let url = pricing_testkit::mysql::fresh_database("proj_state").await;
    let store = SqlStore::connect(&url).await.unwrap();
    check(&store).await;
}
