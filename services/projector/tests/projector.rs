//! The projector against real processes: a throwaway MariaDB database (run
//! through `bash tests/run.sh -p pricing-projector`), two redis-server
//! processes and two in-process HBase Thrift test servers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

mod common;

use std::sync::Arc;

use common::{DAY_MS, World, world};
use pricing_engine::{CallerContext, best_price};
use pricing_projector::{Difference, Progress, ReconcileOptions, Scope};
use pricing_record::keys::{HBASE_COLUMN, HBASE_TABLE, hbase_row_key, redis_key};
use pricing_record::{Activity, Channel, Clock, GoodsId, GoodsStatus, encode};
use pricing_store::{DualSettings, WriteMode};
use pricing_store_hbase::server::tables::Change;
use pricing_store_sql::GoodsRow;
use pricing_store_sql::projector::Cursor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

const STORES: [&str; 4] = ["redis-a", "redis-b", "hbase-a", "hbase-b"];

async fn full(w: &World) -> pricing_projector::SyncReport {
    w.projector.full(&Scope::All, false, &Progress::logs_only()).await.expect("full sync")
}

async fn reconcile(w: &World, repair: bool) -> pricing_projector::ReconcileReport {
    w.projector.reconcile(&ReconcileOptions { repair, ..ReconcileOptions::default() }).await.expect("reconcile")
}

fn assert_clean(report: &pricing_projector::ReconcileReport) {
    assert_eq!(report.differences(), 0, "{}", report.table());
    assert_eq!(report.stores.len(), 4, "{}", report.table());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sync_gives_every_store_the_source_records_and_prices() {
    let w = world("proj_full", 200).await;
    let report = full(&w).await;
    let ids = w.all_ids().await;
    assert_eq!(report.goods, ids.len() as u64);
    for store in STORES {
        assert_eq!(report.targets[store].written, ids.len() as u64, "{store}");
        assert_eq!(report.targets[store].queued, 0, "{store}");
    }
    w.assert_stores_match(&ids).await;

    // The engine prices what the stores hold exactly as what MySQL holds.
    let now = Clock::system().now_ms();
    let ctx = CallerContext::anonymous(Channel::App);
    let source = w.source_records(&[1, 2, 3, 30]).await;
    assert_eq!(source.len(), 4);
    for store in STORES {
        let held = w.store_records(store, &[1, 2, 3, 30]).await;
        for (h, s) in held.iter().zip(&source) {
            assert_eq!(best_price(h, &ctx, now, false).unwrap(), best_price(s, &ctx, now, false).unwrap());
        }
        assert_eq!(best_price(&held[0], &ctx, now, false).unwrap().price, dec!(39.90), "{store}: demo goods 1");
        assert_eq!(best_price(&held[1], &ctx, now, false).unwrap().price, dec!(85.00), "{store}: demo goods 2");
    }
    // The soft-deleted demo goods 4 is a tombstone everywhere.
    for store in STORES {
        assert!(w.store_records(store, &[4]).await[0].is_tombstone(), "{store}");
    }
    // Finished: the cursor is gone, the incremental watermark is set.
    assert_eq!(w.source.cursor("full").await.unwrap(), None);
    assert!(w.source.cursor(pricing_projector::sync::INCREMENTAL).await.unwrap().is_some());
    assert_clean(&reconcile(&w, false).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sync_resumes_after_its_saved_cursor() {
    let w = world("proj_resume", 120).await;
    let ids = w.all_ids().await;
    // As if a run had written every goods up to the 80th and then died.
    let cut = ids[79];
    w.source.save_cursor("full", Cursor { position_ms: 0, after_id: cut }, Clock::system().now_ms()).await.unwrap();
    let report = full(&w).await;
    assert_eq!(report.resumed_after, Some(cut));
    assert_eq!(report.goods, (ids.len() - 80) as u64);
    assert!(w.store_records("redis-a", &ids[..80]).await.is_empty(), "nothing before the cursor was written");
    w.assert_stores_match(&ids[80..]).await;
    // A restart ignores no cursor (there is none left) and writes everything.
    let again = w.projector.full(&Scope::All, true, &Progress::logs_only()).await.unwrap();
    assert_eq!(again.resumed_after, None);
    w.assert_stores_match(&ids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activity_change_reaches_all_four_stores_through_incremental() {
    let w = world("proj_incr", 100).await;
    full(&w).await;
    let before = w.source_records(&[1]).await.remove(0);
    let mut activity: Activity = before.activities[0].clone();
    activity.value = dec!(29.90);
    let version = w.source.catalog().upsert_activity(&activity).await.unwrap();
    let new_goods = GoodsRow {
        id: 5_000,
        store_id: 1,
        base_price: dec!(12.30),
        currency: "CNY".into(),
        status: GoodsStatus::OnSale,
    };
    w.source.catalog().upsert_goods(&new_goods).await.unwrap();

    let pass = w.projector.incremental_pass().await.unwrap();
    assert!(pass.goods >= 2, "{pass:?}");
    w.assert_stores_match(&[1, 5_000]).await;
    let ctx = CallerContext::anonymous(Channel::App);
    for store in STORES {
        let held = w.store_records(store, &[1]).await.remove(0);
        assert_eq!(held.version, version, "{store}");
        assert_eq!(best_price(&held, &ctx, Clock::system().now_ms(), false).unwrap().price, dec!(29.90), "{store}");
    }
    // Nothing changed since: a second pass writes nothing new.
    let idle = w.projector.incremental_pass().await.unwrap();
    for store in STORES {
        assert_eq!(idle.targets.get(store).map_or(0, |c| c.written), 0, "{store}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_writes_never_move_a_version_back() {
    let w = world("proj_order", 30).await;
    full(&w).await;
    let old = w.source_records(&[3]).await.remove(0);
    let row =
        GoodsRow { id: 3, store_id: old.store_id, base_price: dec!(26.00), currency: "CNY".into(), status: old.status };
    let newer = w.source.catalog().upsert_goods(&row).await.unwrap();
    w.projector.sync_goods(&[3], &Scope::All).await.unwrap();
    // A late writer (an older projector, a retry) brings the old record.
    let outcome = w.projector.put(&[Arc::new(old.clone())], &Scope::All).await.unwrap();
    for store in STORES {
        let (_, counts) = &outcome.targets[store];
        assert_eq!((counts.written, counts.skipped_older), (0, 1), "{store}");
        let held = w.store_records(store, &[3]).await.remove(0);
        assert_eq!(held.version, newer, "{store}");
        assert_eq!(held.base_price, dec!(26.00), "{store}");
    }
    // The same in a recovery straight to one cluster.
    w.projector.put(&[Arc::new(old)], &Scope::Only(vec!["hbase-b".into()])).await.unwrap();
    assert_eq!(w.store_records("hbase-b", &[3]).await[0].version, newer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_down_during_full_sync_leaves_its_writes_queued_until_it_is_back() {
    let mut w = world("proj_queue", 150).await;
    w.redis[1].kill();
    let report = full(&w).await;
    let ids = w.all_ids().await;
    let n = ids.len() as u64;
    assert_eq!(report.targets["redis-b"].queued, n);
    assert_eq!(report.targets["redis-a"].written, n);
    assert_eq!(w.queue_depth().await, n);
    let queued = w.source.due_retries(i64::MAX, 10).await.unwrap();
    assert!(queued.iter().all(|e| e.target == "redis-b" && e.attempts == 2 && !e.last_error.is_empty()), "{queued:?}");

    // While it is down a drain fails again and keeps everything.
    let drain = w.projector.drain_retries().await.unwrap();
    assert_eq!((drain.due, drain.failed, drain.depth), (n, n, n));

    // A change made meanwhile: the drain must write the CURRENT record.
    let row =
        GoodsRow { id: 3, store_id: 1, base_price: dec!(21.00), currency: "CNY".into(), status: GoodsStatus::OnSale };
    let v = w.source.catalog().upsert_goods(&row).await.unwrap();

    w.redis[1].restart();
    let pass = w.projector.incremental_pass().await.unwrap();
    assert_eq!(pass.drain.done, n, "{:?}", pass.drain);
    assert_eq!(w.queue_depth().await, 0);
    assert_eq!(w.store_records("redis-b", &[3]).await[0].version, v);
    w.assert_stores_match(&ids).await;
    assert_clean(&reconcile(&w, false).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_finds_and_repairs_hand_corrupted_entries() {
    let w = world("proj_repair", 60).await;
    full(&w).await;
    let records = w.source_records(&[1, 2, 3, 5, 6]).await;
    let (r2, r3, r5, r6) = (&records[1], &records[2], &records[3], &records[4]);

    let client = redis::Client::open(w.redis[0].url()).unwrap();
    let mut redis_a = client.get_multiplexed_async_connection().await.unwrap();
    let client = redis::Client::open(w.redis[1].url()).unwrap();
    let mut redis_b = client.get_multiplexed_async_connection().await.unwrap();
    // redis-a: garbage without a header (corrupt), an older version (stale),
    // a goods the source does not have (extra).
    let _: () = redis::cmd("SET").arg(redis_key(1)).arg(b"garbage".as_slice()).query_async(&mut redis_a).await.unwrap();
    let mut older = r2.clone();
    older.version -= 1;
    let _: () = redis::cmd("SET")
        .arg(redis_key(2))
        .arg(encode(&older).unwrap().as_ref())
        .query_async(&mut redis_a)
        .await
        .unwrap();
    let mut foreign = r3.clone();
    foreign.goods_id = 999_999;
    let _: () = redis::cmd("SET")
        .arg(redis_key(999_999))
        .arg(encode(&foreign).unwrap().as_ref())
        .query_async(&mut redis_a)
        .await
        .unwrap();
    // redis-b: a valid header claiming a newer version over a broken payload
    // (the Lua guard would keep it against a versioned write), and a
    // different price at the same version (diverged).
    let mut bytes = encode(r3).unwrap().to_vec();
    bytes[1..9].copy_from_slice(&(r3.version + 5).to_be_bytes());
    bytes.truncate(bytes.len() - 2);
    let _: () = redis::cmd("SET").arg(redis_key(3)).arg(bytes).query_async(&mut redis_b).await.unwrap();
    let mut cheaper = r5.clone();
    cheaper.base_price = dec!(0.01);
    cheaper.activities.clear();
    let _: () = redis::cmd("SET")
        .arg(redis_key(5))
        .arg(encode(&cheaper).unwrap().as_ref())
        .query_async(&mut redis_b)
        .await
        .unwrap();
    // hbase-a: garbage at the record's own timestamp (a versioned write
    // cannot replace it); hbase-b: the row removed (missing).
    let table = HBASE_TABLE.as_bytes();
    let put = |value: Vec<u8>| vec![Change::Put { column: HBASE_COLUMN.as_bytes().to_vec(), value }];
    w.hbase[0]
        .tables()
        .mutate_rows(table, &[(hbase_row_key(6), put(b"\xffgarbage".to_vec()))], r6.version as i64)
        .unwrap();
    // hbase-b: a goods the source does not have (extra), found by walking
    // the table (HBase was not walked before the store crates' inspection API).
    let mut stray = r3.clone();
    stray.goods_id = 888_888;
    w.hbase[1]
        .tables()
        .mutate_rows(table, &[(hbase_row_key(888_888), put(encode(&stray).unwrap().to_vec()))], 3)
        .unwrap();
    assert_eq!(w.store_records("hbase-b", &[888_888]).await.len(), 1, "the stray record reads back");
    let row = GoodsRow {
        id: 5_000,
        store_id: 1,
        base_price: dec!(12.30),
        currency: "CNY".into(),
        status: GoodsStatus::OnSale,
    };
    w.source.catalog().upsert_goods(&row).await.unwrap();
    let new = w.source_records(&[5_000]).await;
    let three = Scope::Only(vec!["redis-a".into(), "redis-b".into(), "hbase-a".into()]);
    w.projector.put(&pricing_projector::writer::shared_records(new), &three).await.unwrap();

    let found = reconcile(&w, false).await;
    let a = found.stores["redis-a"];
    assert_eq!((a.corrupt, a.stale, a.extra, a.missing, a.diverged), (1, 1, 1, 0, 0), "{}", found.table());
    let b = found.stores["redis-b"];
    assert_eq!((b.corrupt, b.diverged, b.total()), (1, 1, 2), "{}", found.table());
    let ha = found.stores["hbase-a"];
    assert_eq!((ha.corrupt, ha.total()), (1, 1), "{}", found.table());
    assert!(found.samples.contains(&("hbase-a".into(), Difference::Corrupt, 6)), "{}", found.table());
    let hb = found.stores["hbase-b"];
    assert_eq!((hb.missing, hb.extra, hb.total()), (1, 1, 2), "{}", found.table());
    assert!(found.samples.contains(&("hbase-b".into(), Difference::Extra, 888_888)), "{}", found.table());
    assert_eq!(found.walked, STORES, "every cluster is walked for extras");
    assert_eq!(found.stores["redis-a"].repaired, 0, "no repair without --repair");

    let repaired = reconcile(&w, true).await;
    for store in STORES {
        let d = repaired.stores[store];
        assert_eq!(d.repaired, d.total(), "{store}: {}", repaired.table());
        assert_eq!(d.unrepaired, 0, "{store}");
    }
    assert_clean(&reconcile(&w, false).await);
    w.assert_stores_match(&[1, 2, 3, 5, 6, 5_000]).await;
    let gone: Option<Vec<u8>> = redis::cmd("GET").arg(redis_key(999_999)).query_async(&mut redis_a).await.unwrap();
    assert_eq!(gone, None);
    assert!(w.store_records("hbase-b", &[888_888]).await.is_empty(), "the hbase extra is removed");
    // Redis values were replaced in place; the HBase cell at the record's
    // own timestamp needed a new version above it.
    assert_eq!(w.source_records(&[3]).await[0].version, r3.version);
    assert!(w.source_records(&[6]).await[0].version > r6.version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_removes_only_rows_deleted_longer_ago_than_the_limit() {
    let w = world("proj_purge", 40).await;
    let catalog = w.source.catalog();
    catalog.delete_goods(10).await.unwrap();
    catalog.delete_goods(11).await.unwrap();
    let activity = w.source_records(&[1]).await[0].activities[0].id;
    catalog.delete_activity(activity).await.unwrap();
    full(&w).await;
    // Age the deletions by hand: goods 10 and the activity 20 days ago, goods 11 one day ago.
    let pool = w.source.pool();
    let now = Clock::system().now_ms();
    for (sql, id, age) in [
        ("UPDATE goods SET deleted_at = ? WHERE id = ?", 10_i64, 20 * DAY_MS),
        ("UPDATE goods SET deleted_at = ? WHERE id = ?", 11, DAY_MS),
        ("UPDATE activity SET deleted_at = ? WHERE id = ?", activity as i64, 20 * DAY_MS),
    ] {
        sqlx::query(sql).bind(now - age).bind(id).execute(pool).await.unwrap();
    }
    // The demo's own soft-deleted goods 4 was deleted now: it stays too.
    let report = w.projector.purge(15).await.unwrap();
    assert_eq!((report.goods_found, report.goods_purged, report.goods_kept), (1, 1, 0), "{report:?}");
    assert_eq!(report.activities_purged, 1);
    assert!(w.source.existing_goods(&[4, 10, 11]).await.unwrap() == vec![4, 11]);
    for store in STORES {
        assert!(w.store_records(store, &[10]).await.is_empty(), "{store}: purged goods removed");
        let kept = w.store_records(store, &[4, 11]).await;
        assert!(kept.len() == 2 && kept.iter().all(|r| r.is_tombstone()), "{store}");
    }
    assert_clean(&reconcile(&w, false).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_waits_while_a_cluster_lacks_the_tombstone() {
    let mut w = world("proj_purge_wait", 20).await;
    w.source.catalog().delete_goods(7).await.unwrap();
    sqlx::query("UPDATE goods SET deleted_at = ? WHERE id = 7")
        .bind(Clock::system().now_ms() - 30 * DAY_MS)
        .execute(w.source.pool())
        .await
        .unwrap();
    w.hbase[1].stop();
    let report = w.projector.purge(15).await.unwrap();
    assert_eq!((report.goods_found, report.goods_purged, report.goods_kept), (1, 0, 1));
    assert_eq!(w.source.existing_goods(&[7]).await.unwrap(), vec![7]);
    w.hbase[1].restart().unwrap();
    w.projector.drain_retries().await.unwrap();
    let report = w.projector.purge(15).await.unwrap();
    assert_eq!(report.goods_purged, 1);
    assert!(w.source.existing_goods(&[7]).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_file_sets_the_write_mode_and_pauses_the_incremental_loop() {
    let dir = tempfile::tempdir().unwrap();
    let control = dir.path().join("control.toml");
    let set_control = |text: &str| std::fs::write(&control, format!("version = 1\n{text}")).unwrap();
    set_control("[projector.redis]\nwrite = \"both\"\n");
    let w = common::world_with_control("proj_control", 60, &control).await;
    let w = &w;
    let board = w.projector.control().expect("the control file steers the projector").clone();
    let redis = &w.projector.targets().pairs[0];
    full(w).await;
    w.assert_stores_match(&[1, 2, 3]).await;
    let price = |id: GoodsId, cents: i64| async move {
        let old = w.source_records(&[id]).await.remove(0);
        let base_price = Decimal::new(cents, 2);
        let row = GoodsRow { id, store_id: old.store_id, base_price, currency: "CNY".into(), status: old.status };
        w.source.catalog().upsert_goods(&row).await.unwrap()
    };

    // Single write, live: redis-b is skipped, not queued; HBase is not touched by the switch.
    set_control("[projector.redis]\nwrite = \"only_a\"\n");
    assert!(matches!(board.reload_now().unwrap(), pricing_control::Reload::Applied { .. }));
    assert_eq!(redis.settings().write, WriteMode::OnlyA);
    let v1 = price(1, 1_111).await;
    let pass = w.projector.incremental_pass().await.unwrap();
    assert!(!pass.paused);
    assert_eq!(pass.targets["redis-b"].written, 0, "{pass:?}");
    assert!(pass.targets["redis-a"].written >= 1 && pass.targets["hbase-b"].written >= 1, "{pass:?}");
    assert_eq!(w.store_records("redis-a", &[1]).await[0].version, v1);
    assert!(w.store_records("redis-b", &[1]).await[0].version < v1);
    assert_eq!(w.queue_depth().await, 0, "a cluster left out by the write mode is not queued");

    // Paused: the next pass writes nothing and leaves the watermark where it was.
    set_control("[projector]\npaused = true\n[projector.redis]\nwrite = \"only_a\"\n");
    board.reload_now().unwrap();
    let watermark = || async {
        let cursor = w.source.cursor(pricing_projector::sync::INCREMENTAL).await.unwrap().expect("a watermark");
        (cursor.position_ms, cursor.after_id)
    };
    let mark = watermark().await;
    let v2 = price(2, 2_222).await;
    let held = w.projector.incremental_pass().await.unwrap();
    assert!(held.paused && w.projector.paused());
    assert_eq!((held.goods, held.pages), (0, 0), "{held:?}");
    assert_eq!(watermark().await, mark, "the watermark is held");
    for store in STORES {
        assert!(w.store_records(store, &[2]).await[0].version < v2, "{store} was written while paused");
    }

    // Resumed, dual write again: the held change reaches every cluster.
    set_control("[projector]\npaused = false\n");
    board.reload_now().unwrap();
    assert_eq!(redis.settings().write, WriteMode::Both);
    let pass = w.projector.incremental_pass().await.unwrap();
    assert!(!pass.paused && pass.goods >= 1, "{pass:?}");
    for store in STORES {
        assert_eq!(w.store_records(store, &[2]).await[0].version, v2, "{store}");
    }
    assert!(watermark().await > mark, "the watermark moved on");
    // redis-b missed goods 1 under only_a; its rebuild is the full sync of that side.
    let scope = w.projector.scope(vec!["redis-b".into()]).unwrap();
    w.projector.full(&scope, false, &Progress::logs_only()).await.unwrap();
    assert_clean(&reconcile(w, false).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_cluster_is_rebuilt_after_it_ran_behind_in_single_write_mode() {
    let w = world("proj_recover", 80).await;
    full(&w).await;
    // Seed 001: redis-b is down for long; writes go to redis-a only.
    let redis = &w.projector.targets().pairs[0];
    redis.pair.settings.store(Arc::new(DualSettings { write: WriteMode::OnlyA, ..DualSettings::default() }));
    for id in [1_u64, 2, 3] {
        let old = w.source_records(&[id]).await.remove(0);
        let row =
            GoodsRow { id, store_id: old.store_id, base_price: dec!(9.99), currency: "CNY".into(), status: old.status };
        w.source.catalog().upsert_goods(&row).await.unwrap();
    }
    let pass = w.projector.incremental_pass().await.unwrap();
    assert_eq!(pass.targets["redis-b"].written, 0);
    assert_eq!(w.queue_depth().await, 0, "a skipped cluster is caught up by a full sync, not the queue");
    let behind = reconcile(&w, false).await;
    assert_eq!(behind.stores["redis-b"].stale, 3, "{}", behind.table());
    // Recovered: back to dual writes, then a full sync of the recovered side only.
    redis.pair.settings.store(Arc::new(DualSettings::default()));
    let scope = w.projector.scope(vec!["redis-b".into()]).unwrap();
    let rebuilt = w.projector.full(&scope, false, &Progress::logs_only()).await.unwrap();
    assert_eq!(rebuilt.targets.get("redis-a").map_or(0, |c| c.written + c.skipped_older), 0);
    assert_eq!(rebuilt.targets["redis-b"].written, 3);
    assert_clean(&reconcile(&w, false).await);
    assert!(w.projector.scope(vec!["redis-c".into()]).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_random_updates_then_one_incremental_pass_leaves_no_difference() {
    let w = world("proj_burst", 200).await;
    full(&w).await;
    let catalog = w.source.catalog();
    let mut rng = StdRng::seed_from_u64(7);
    let mut next_goods: GoodsId = 10_000;
    for _ in 0..150 {
        let id: GoodsId = rng.random_range(1..=200);
        let Some(record) = w.source_records(&[id]).await.pop() else { continue };
        match rng.random_range(0..5) {
            0 if !record.is_tombstone() => {
                let price = Decimal::new(rng.random_range(100..100_000), 2);
                let row = GoodsRow {
                    id,
                    store_id: record.store_id,
                    base_price: price,
                    currency: "CNY".into(),
                    status: record.status,
                };
                catalog.upsert_goods(&row).await.unwrap();
            }
            1 if !record.activities.is_empty() => {
                let mut activity = record.activities[0].clone();
                activity.priority = rng.random_range(0..10);
                catalog.upsert_activity(&activity).await.unwrap();
            }
            2 if !record.activities.is_empty() => {
                catalog.delete_activity(record.activities[0].id).await.unwrap();
            }
            3 => {
                catalog.delete_goods(id).await.unwrap();
            }
            _ => {
                next_goods += 1;
                let row = GoodsRow {
                    id: next_goods,
                    store_id: 3,
                    base_price: dec!(10.00),
                    currency: "CNY".into(),
                    status: GoodsStatus::OnSale,
                };
                catalog.upsert_goods(&row).await.unwrap();
            }
        }
    }
    let stale = reconcile(&w, false).await;
    assert!(stale.differences() > 0, "the burst changed something");
    w.projector.incremental_pass().await.unwrap();
    assert_clean(&reconcile(&w, false).await);
    // An incremental reconcile over the same window agrees.
    let since =
        w.projector.reconcile(&ReconcileOptions { since_ms: Some(0), ..ReconcileOptions::default() }).await.unwrap();
    assert_eq!(since.differences(), 0, "{}", since.table());
}

async fn run_binary(config: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_pricing-projector"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("run pricing-projector");
    (output.status.code(), String::from_utf8_lossy(&output.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_syncs_and_reconcile_exit_codes_say_whether_anything_differs() {
    let w = world("proj_cli", 30).await;
    let dir = tempfile::tempdir().unwrap();
    let url = w.projector.config().source.database_url.clone();
    let path = dir.path().join("projector.toml");
    std::fs::write(&path, common::config_text(&url, &w.redis, &w.hbase)).unwrap();

    let (code, out) = run_binary(&path, &["full"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("redis-b"), "{out}");
    let (code, out) = run_binary(&path, &["reconcile"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("0 differences"), "{out}");

    w.redis[0].command(&["SET", &redis_key(2), "garbage"]);
    let (code, out) = run_binary(&path, &["reconcile"]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("goods 2 corrupt"), "{out}");
    let (code, out) = run_binary(&path, &["reconcile", "--repair", "--only", "redis-a"]).await;
    assert_eq!(code, Some(0), "{out}");
    let (code, _) = run_binary(&path, &["full", "--only", "redis-z"]).await;
    assert_eq!(code, Some(2), "an unknown cluster is an error");
    assert_clean(&reconcile(&w, false).await);
}
