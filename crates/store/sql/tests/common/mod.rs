//! Scenarios every backend runs; tests/sqlite.rs and tests/mariadb.rs call
//! them with their own store.
#![allow(dead_code)]

use pricing_record::{Activity, ActivityKind, ActivityStatus, Channel, GoodsRecord, GoodsStatus, ManualClock};
use pricing_store::conformance::{check_reads, fixture};
use pricing_store::{RecordStore, SharedRecord};
use pricing_store_sql::demo::{self, DemoOptions, well_known};
use pricing_store_sql::{
    Catalog, GoodsRow, PromotionKind, PromotionRow, PromotionStatus, PromotionTier, ScopeKind, SqlErrorKind, SqlStore,
};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

pub const NOW: i64 = 1_731_000_000_000;
const HOUR: i64 = 3_600_000;

/// A writer whose clock is a manual one the test moves.
pub fn pinned(store: &SqlStore, now: i64) -> (Catalog, ManualClock) {
    let clock = ManualClock::new(now);
    (store.catalog().with_clock(clock.clock()), clock)
}

pub fn goods(id: u64, store_id: u64, price: Decimal) -> GoodsRow {
    GoodsRow { id, store_id, base_price: price, currency: "CNY".into(), status: GoodsStatus::OnSale }
}

pub fn activity(id: u64, goods_id: u64, kind: ActivityKind, value: Decimal) -> Activity {
    Activity::open(id, goods_id, kind, value, NOW - HOUR, NOW + HOUR)
}

pub async fn one(store: &SqlStore, id: u64) -> Option<GoodsRecord> {
    let got = store.fetch(&[id]).await.expect("fetch");
    assert!(got.len() <= 1);
    got.first().map(|r| (**r).clone())
}

/// The conformance suite, seeded through `insert_record` with the fixture's own versions.
pub async fn conformance(store: &SqlStore) {
    let seeded = fixture();
    let catalog = store.catalog();
    for record in &seeded {
        catalog.insert_record(record).await.expect("insert fixture record");
    }
    check_reads(store, &seeded).await;
    // Writes after the fixture take versions above every fixture version.
    let v = catalog.upsert_goods(&goods(102, 1, dec!(41))).await.unwrap();
    assert!(v > 9, "counter was not raised to the fixture's versions: {v}");
    let err = catalog.insert_record(&seeded[0]).await.expect_err("an old version must be refused");
    assert_eq!(err.kind(), SqlErrorKind::Conflict);
}

/// A fixed script of writes touching every writer method; returns every
/// record it leaves, sorted by id.
pub async fn scripted_writes(store: &SqlStore) -> Vec<SharedRecord> {
    let (catalog, clock) = pinned(store, NOW);
    catalog.upsert_goods(&goods(1, 10, dec!(59.90))).await.unwrap();
    catalog.upsert_goods(&goods(2, 10, dec!(100))).await.unwrap();
    catalog.upsert_goods(&goods(3, 11, dec!(0.01))).await.unwrap();
    let mut flash = activity(100, 1, ActivityKind::FlashSale, dec!(39.90));
    flash.channels = [Channel::App, Channel::H5].into_iter().collect();
    flash.city_ids = vec![110_000, 310_000];
    flash.store_ids = vec![7];
    flash.stock_left = Some(0);
    flash.per_user_limit = 2;
    flash.priority = -3;
    flash.new_user_only = true;
    flash.min_member_level = 4;
    catalog.upsert_activity(&flash).await.unwrap();
    catalog.upsert_activity(&activity(101, 1, ActivityKind::Discount, dec!(85.5))).await.unwrap();
    clock.advance(5);
    catalog.upsert_activity(&activity(200, 2, ActivityKind::AmountOff, dec!(5))).await.unwrap();
    let mut draft = activity(201, 2, ActivityKind::Subsidy, dec!(80));
    draft.status = ActivityStatus::Draft;
    catalog.upsert_activity(&draft).await.unwrap();
    catalog.delete_activity(101).await.unwrap();
    catalog.upsert_goods(&GoodsRow { status: GoodsStatus::Delisted, ..goods(2, 10, dec!(99.99)) }).await.unwrap();
    catalog.delete_goods(3).await.unwrap();
    let mut got = store.fetch(&[1, 2, 3]).await.unwrap();
    got.sort_by_key(|r| r.goods_id);
    assert_eq!(got.len(), 3);
    got
}

/// Checks what [`scripted_writes`] left, field by field.
pub fn check_scripted(records: &[SharedRecord]) {
    let one = &records[0];
    assert_eq!(one.base_price, dec!(59.90));
    assert_eq!(one.activities.len(), 1, "the soft-deleted discount must be left out");
    let flash = &one.activities[0];
    assert_eq!((flash.id, flash.kind, flash.value), (100, ActivityKind::FlashSale, dec!(39.90)));
    assert_eq!(flash.channels, [Channel::App, Channel::H5].into_iter().collect());
    assert_eq!(flash.city_ids, vec![110_000, 310_000]);
    assert_eq!(flash.store_ids, vec![7]);
    assert_eq!((flash.stock_left, flash.per_user_limit, flash.priority), (Some(0), 2, -3));
    assert!(flash.new_user_only);
    assert_eq!(flash.min_member_level, 4);
    let two = &records[1];
    assert_eq!((two.status, two.base_price, two.store_id), (GoodsStatus::Delisted, dec!(99.99), 10));
    assert_eq!(two.activities.iter().map(|a| a.id).collect::<Vec<_>>(), vec![200, 201]);
    assert_eq!(two.activities[1].status, ActivityStatus::Draft);
    assert!(records[2].is_tombstone(), "deleted goods must be a tombstone");
    assert!(records[2].version > two.version, "the delete was the last write");
}

/// Every write to a goods or its activities moves its version forward.
pub async fn versions_strictly_increase(store: &SqlStore) {
    let (catalog, _) = pinned(store, NOW);
    let id = 500;
    let mut last = 0;
    fn step(last: &mut u64, what: &str, v: u64, record: Option<GoodsRecord>) -> GoodsRecord {
        let record = record.unwrap_or_else(|| panic!("{what}: goods missing"));
        assert_eq!(record.version, v, "{what}: record version is the version the writer returned");
        assert!(v > *last, "{what}: version {v} did not move past {last}");
        *last = v;
        record
    }
    let v = catalog.upsert_goods(&goods(id, 1, dec!(10))).await.unwrap();
    step(&mut last, "create", v, one(store, id).await);
    let v = catalog.upsert_goods(&goods(id, 1, dec!(12))).await.unwrap();
    step(&mut last, "reprice", v, one(store, id).await);
    let v = catalog.upsert_activity(&activity(5_000, id, ActivityKind::FlashSale, dec!(9))).await.unwrap();
    let r = step(&mut last, "add activity", v, one(store, id).await);
    assert_eq!(r.activities.len(), 1);
    let v = catalog.upsert_activity(&activity(5_000, id, ActivityKind::FlashSale, dec!(8))).await.unwrap();
    let r = step(&mut last, "change activity", v, one(store, id).await);
    assert_eq!(r.activities[0].value, dec!(8));
    let v = catalog.upsert_goods(&goods(id + 1, 1, dec!(20))).await.unwrap();
    assert!(v > last, "another goods also takes a new version");
    let v = catalog.upsert_activity(&activity(5_000, id + 1, ActivityKind::FlashSale, dec!(8))).await.unwrap();
    let r = step(&mut last, "activity moved away", v, one(store, id).await);
    assert!(r.activities.is_empty(), "the activity moved to the other goods");
    assert_eq!(one(store, id + 1).await.unwrap().activities.len(), 1);
    let v = catalog.upsert_activity(&activity(5_001, id, ActivityKind::Discount, dec!(90))).await.unwrap();
    step(&mut last, "second activity", v, one(store, id).await);
    let v = catalog.delete_activity(5_001).await.unwrap();
    let r = step(&mut last, "delete activity", v, one(store, id).await);
    assert!(r.activities.is_empty());
    let again = catalog.delete_activity(5_001).await.unwrap();
    assert_eq!(again, last, "deleting twice is not a change");
    let v = catalog.delete_goods(id).await.unwrap();
    let r = step(&mut last, "delete goods", v, one(store, id).await);
    assert!(r.is_tombstone());
    assert_eq!(catalog.delete_goods(id).await.unwrap(), last, "deleting twice is not a change");
    let v = catalog.upsert_goods(&goods(id, 1, dec!(13))).await.unwrap();
    let r = step(&mut last, "restore", v, one(store, id).await);
    assert!(!r.is_tombstone());
    assert_eq!(r.base_price, dec!(13));

    // Refused writes change nothing.
    assert_eq!(catalog.delete_goods(9_999_999).await.unwrap_err().kind(), SqlErrorKind::NotFound);
    let orphan = activity(6_000, 9_999_999, ActivityKind::FlashSale, dec!(1));
    assert_eq!(catalog.upsert_activity(&orphan).await.unwrap_err().kind(), SqlErrorKind::NotFound);
    let bad = activity(6_001, id, ActivityKind::Discount, dec!(100));
    assert_eq!(catalog.upsert_activity(&bad).await.unwrap_err().kind(), SqlErrorKind::Invalid);
    let bad = goods(id, 1, dec!(1.001));
    assert_eq!(catalog.upsert_goods(&bad).await.unwrap_err().kind(), SqlErrorKind::Invalid);
    assert_eq!(catalog.upsert_goods(&goods(u64::MAX, 1, dec!(1))).await.unwrap_err().kind(), SqlErrorKind::Invalid);
    assert_eq!(one(store, id).await.unwrap().version, last, "refused writes must not touch the goods");
}

/// The feeds list every goods once, in order, tombstones included.
pub async fn change_feeds(store: &SqlStore) {
    let (catalog, clock) = pinned(store, NOW);
    for id in [7, 3, 9, 1, 5] {
        catalog.upsert_goods(&goods(id, 1, dec!(1))).await.unwrap();
        clock.advance(10);
    }
    catalog.delete_goods(3).await.unwrap();

    let mut walked = Vec::new();
    let mut after = 0;
    loop {
        let page = store.goods_page(after, 2).await.unwrap();
        assert!(page.len() <= 2);
        match page.last() {
            Some(&last) => after = last,
            None => break,
        }
        walked.extend(page);
    }
    assert_eq!(walked, vec![1, 3, 5, 7, 9], "a full walk lists every goods once, deleted included");

    let all = store.changed_since(0, 0, 100).await.unwrap();
    let ids: Vec<u64> = all.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, vec![7, 9, 1, 5, 3], "ordered by updated_at: 7 is the oldest, 3 changed last");
    assert!(all.windows(2).all(|w| w[0].1 < w[1].1), "every commit gets a later stamp");
    let (id, at) = all[1];
    let rest = store.changed_since(at, id, 100).await.unwrap();
    assert_eq!(rest, all[2..].to_vec(), "resuming after a pair returns what follows it");
    let page = store.changed_since(0, 0, 2).await.unwrap();
    assert_eq!(page, all[..2].to_vec(), "limit holds");
    let (last_id, last_at) = *all.last().unwrap();
    assert!(store.changed_since(last_at, last_id, 100).await.unwrap().is_empty());

    // A write whose clock stepped backwards, to a smaller id, still follows
    // the watermark: stamps strictly increase in commit order.
    clock.set(NOW - 1_000_000);
    catalog.upsert_goods(&goods(2, 1, dec!(1))).await.unwrap();
    let newest = store.changed_since(last_at, last_id, 100).await.unwrap();
    assert_eq!(newest, vec![(2, last_at + 1)], "a clock step backwards must not hide a change");
}

fn promotion(id: u64, kind: PromotionKind, scope: ScopeKind, store_id: u64) -> PromotionRow {
    PromotionRow {
        id,
        kind,
        scope,
        store_id,
        name: format!("promotion {id}"),
        tiers: vec![
            PromotionTier { threshold: dec!(99), value: dec!(9) },
            PromotionTier { threshold: dec!(199), value: dec!(25) },
        ],
        goods_ids: vec![],
        start_ms: NOW - HOUR,
        end_ms: NOW + HOUR,
        status: PromotionStatus::Online,
        version: 0,
    }
}

/// load_promotions keeps online, in-window, undeleted promotions of the
/// asked stores plus platform ones, never coupons.
pub async fn promotions_filter(store: &SqlStore) {
    use PromotionKind::*;
    use ScopeKind::*;
    let (catalog, _) = pinned(store, NOW);
    let mut rows = vec![
        promotion(1, ThresholdAmountOff, Store, 2),
        promotion(2, ThresholdAmountOff, Store, 3),
        promotion(3, ThresholdAmountOff, Platform, 0),
        promotion(4, ThresholdAmountOff, Store, 2),
        promotion(5, ThresholdAmountOff, Store, 2),
        promotion(6, ThresholdAmountOff, Store, 2),
        promotion(7, ThresholdAmountOff, Store, 2),
        promotion(8, Coupon, Platform, 0),
        promotion(9, Coupon, Store, 2),
        promotion(10, ThresholdPercentOff, Platform, 0),
    ];
    rows[3].end_ms = NOW; // ended exactly now (end is exclusive)
    rows[4].start_ms = NOW + 1; // not started
    rows[5].status = PromotionStatus::Offline;
    rows[9].tiers = vec![PromotionTier { threshold: dec!(299), value: dec!(95) }];
    rows[9].goods_ids = vec![50, 30, 40];
    for p in &rows {
        catalog.upsert_promotion(p).await.unwrap_or_else(|e| panic!("promotion {}: {e}", p.id));
    }
    catalog.delete_promotion(7).await.unwrap();
    let again = catalog.delete_promotion(7).await.unwrap();
    assert!(again > 0);

    let ids = |v: Vec<PromotionRow>| v.into_iter().map(|p| p.id).collect::<Vec<_>>();
    assert_eq!(ids(store.load_promotions(&[2], NOW).await.unwrap()), vec![1, 3, 10]);
    assert_eq!(ids(store.load_promotions(&[2, 3, 2], NOW).await.unwrap()), vec![1, 2, 3, 10]);
    assert_eq!(ids(store.load_promotions(&[], NOW).await.unwrap()), vec![3, 10], "platform only");
    assert_eq!(ids(store.load_promotions(&[2], NOW + 1).await.unwrap()), vec![1, 3, 5, 10]);
    assert_eq!(ids(store.load_promotions(&[2], NOW - 1).await.unwrap()), vec![1, 3, 4, 10]);
    // Over a span: live at some instant of [from, until], both ends included.
    assert_eq!(ids(store.load_promotions_within(&[2], NOW - 1, NOW + 1).await.unwrap()), vec![1, 3, 4, 5, 10]);
    assert_eq!(ids(store.load_promotions_within(&[2], NOW, NOW).await.unwrap()), vec![1, 3, 10]);
    assert_eq!(ids(store.load_promotions_within(&[2], NOW, NOW + 1).await.unwrap()), vec![1, 3, 5, 10]);

    // The one conversion into the engine's terms.
    let engine = store.load_promotions(&[2], NOW).await.unwrap()[0].to_engine();
    assert_eq!((engine.id, engine.kind, engine.scope), (1, ThresholdAmountOff, pricing_engine::Scope::Store(2)));
    assert_eq!((engine.tiers, engine.eligible_goods), (rows[0].tiers.clone(), None));
    assert_eq!((engine.start_ms, engine.end_ms, engine.description.as_str()), (NOW - HOUR, NOW + HOUR, "promotion 1"));

    let loaded = store.load_promotions(&[2], NOW).await.unwrap();
    let first = &loaded[0];
    assert_eq!(first.tiers, rows[0].tiers, "tiers come back exactly, ascending");
    assert_eq!((first.scope, first.store_id, first.name.as_str()), (Store, 2, "promotion 1"));
    assert!(first.version > 0);
    let percent = loaded.iter().find(|p| p.id == 10).unwrap();
    assert_eq!(percent.goods_ids, vec![30, 40, 50]);
    assert_eq!(percent.tiers[0].value, dec!(95));

    // Coupons by id: any status and window, never deleted, never a non-coupon.
    let mut offline_coupon = promotion(11, Coupon, Platform, 0);
    offline_coupon.status = PromotionStatus::Offline;
    catalog.upsert_promotion(&offline_coupon).await.unwrap();
    catalog.upsert_promotion(&promotion(12, Coupon, Platform, 0)).await.unwrap();
    catalog.delete_promotion(12).await.unwrap();
    assert_eq!(ids(store.load_coupons(&[9, 8, 1, 11, 12, 404, 9]).await.unwrap()), vec![8, 9, 11]);
    assert!(store.load_coupons(&[]).await.unwrap().is_empty());

    // Replacing a promotion replaces its tiers and goods.
    let mut changed = rows[0].clone();
    changed.tiers = vec![PromotionTier { threshold: dec!(50), value: dec!(5) }];
    changed.goods_ids = vec![30];
    catalog.upsert_promotion(&changed).await.unwrap();
    let reloaded = store.load_promotions(&[2], NOW).await.unwrap();
    assert_eq!(reloaded[0].tiers, changed.tiers);
    assert_eq!(reloaded[0].goods_ids, vec![30]);
    assert!(reloaded[0].version > first.version);

    // The writer refuses promotions that break the rules.
    let mut bad = promotion(20, ThresholdAmountOff, Store, 0);
    assert_eq!(catalog.upsert_promotion(&bad).await.unwrap_err().kind(), SqlErrorKind::Invalid);
    bad.store_id = 2;
    bad.tiers.reverse();
    assert_eq!(catalog.upsert_promotion(&bad).await.unwrap_err().kind(), SqlErrorKind::Invalid);
}

pub fn demo_options(goods: u64) -> DemoOptions {
    DemoOptions { goods, now_ms: NOW, rng_seed: 42 }
}

/// Seeds the demo catalogue and checks the well-known ids.
pub async fn demo_well_known(store: &SqlStore, goods: u64) {
    let report = demo::seed(store, demo_options(goods)).await.unwrap();
    assert!(report.seeded);
    assert_eq!(report.goods, goods);
    assert!(report.activities > 0 && report.promotions >= 10);
    let again = demo::seed(store, demo_options(goods)).await.unwrap();
    assert!(!again.seeded, "a second seed must leave a non-empty database alone");

    let flash = one(store, well_known::FLASH_SALE_GOODS).await.unwrap();
    assert_eq!(flash.base_price, dec!(59.90));
    let a = &flash.activities[0];
    assert_eq!((a.kind, a.value), (ActivityKind::FlashSale, dec!(39.90)));
    assert!(a.start_ms <= NOW && NOW < a.end_ms, "the flash sale runs now");
    let discount = one(store, well_known::DISCOUNT_GOODS).await.unwrap();
    assert_eq!(discount.base_price, dec!(100));
    assert_eq!((discount.activities[0].kind, discount.activities[0].value), (ActivityKind::Discount, dec!(85)));
    let plain = one(store, well_known::PLAIN_GOODS).await.unwrap();
    assert_eq!((plain.base_price, plain.activities.len()), (dec!(25), 0));
    assert!(one(store, well_known::DELETED_GOODS).await.unwrap().is_tombstone());
    let cart = store.fetch(&well_known::CART_GOODS).await.unwrap();
    let mut prices: Vec<(u64, Decimal, u64, usize)> =
        cart.iter().map(|r| (r.goods_id, r.base_price, r.store_id, r.activities.len())).collect();
    prices.sort_unstable();
    let store_id = well_known::CART_STORE;
    assert_eq!(prices, vec![(30, dec!(30), store_id, 0), (40, dec!(40), store_id, 0), (50, dec!(50), store_id, 0)]);

    let promos = store.load_promotions(&[store_id], NOW).await.unwrap();
    let spend_99 = promos.iter().find(|p| p.id == well_known::STORE_PROMOTION).expect("store promotion live");
    assert_eq!(spend_99.tiers[0], PromotionTier { threshold: dec!(99), value: dec!(9) });
    assert!(promos.iter().any(|p| p.id == well_known::PLATFORM_PROMOTION));
    assert!(!promos.iter().any(|p| p.id == well_known::EXPIRED_PROMOTION));
    let coupons = store.load_coupons(&[well_known::COUPON, well_known::EXPIRED_COUPON]).await.unwrap();
    assert_eq!(coupons.len(), 2);
    assert!(coupons[0].is_live(NOW) && !coupons[1].is_live(NOW));
}

/// Every record of the store, by walking the goods pages.
pub async fn all_records(store: &SqlStore) -> Vec<SharedRecord> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = store.goods_page(after, 700).await.unwrap();
        let Some(&last) = page.last() else { break };
        after = last;
        let mut records = store.fetch(&page).await.unwrap();
        assert_eq!(records.len(), page.len(), "every listed goods builds a record");
        records.sort_by_key(|r| r.goods_id);
        out.extend(records);
    }
    out
}

/// Corrupt rows written by hand (`statements`) make their goods a miss, and
/// only that goods: the rest of the batch still comes back.
pub async fn corrupt_rows_are_misses(store: &SqlStore, statements: &[&str]) {
    let (catalog, _) = pinned(store, NOW);
    let last = 1 + statements.len() as u64;
    for id in 1..=last {
        catalog.upsert_goods(&goods(id, 1, dec!(10))).await.unwrap();
        catalog.upsert_activity(&activity(id * 10, id, ActivityKind::FlashSale, dec!(5))).await.unwrap();
    }
    for sql in statements {
        sqlx::query(sql).execute(store.pool()).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let all: Vec<u64> = (1..=last).collect();
    let got = store.fetch(&all).await.expect("corrupt rows are not an error of the batch");
    let ids: Vec<u64> = got.iter().map(|r| r.goods_id).collect();
    assert_eq!(ids, vec![1], "goods 2..={last} have corrupt rows and must be misses");
    assert_eq!(got[0].base_price, dec!(10));
}

/// Statements that corrupt goods 2..=9 (one each) on either backend.
pub const CORRUPT_ANY_BACKEND: [&str; 8] = [
    "UPDATE goods SET base_price_fen = 0 WHERE id = 2",
    "UPDATE goods SET base_price_fen = -990 WHERE id = 3",
    "UPDATE activity SET kind = 'mystery' WHERE goods_id = 4",
    "UPDATE activity SET channels = 99 WHERE goods_id = 5",
    "UPDATE activity SET city_ids = '1,,x' WHERE goods_id = 6",
    "UPDATE goods SET currency = 'cny' WHERE id = 7",
    "UPDATE goods SET status = 'gone' WHERE id = 8",
    "UPDATE activity SET new_user_only = 2 WHERE goods_id = 9",
];

/// Writers racing on one goods each get their own version, and the record
/// ends at the highest one with every activity present.
pub async fn concurrent_writes_get_distinct_versions(store: &SqlStore) {
    let (catalog, _) = pinned(store, NOW);
    let first = catalog.upsert_goods(&goods(800, 1, dec!(10))).await.unwrap();
    let writers: Vec<_> = (0..16u64)
        .map(|i| {
            let catalog = catalog.clone();
            tokio::spawn(async move {
                catalog.upsert_activity(&activity(80_000 + i, 800, ActivityKind::AmountOff, dec!(1))).await
            })
        })
        .collect();
    let mut versions = Vec::new();
    for w in writers {
        versions.push(w.await.unwrap().expect("concurrent write"));
    }
    versions.sort_unstable();
    versions.dedup();
    assert_eq!(versions.len(), 16, "two writers got the same version");
    assert!(versions[0] > first);
    let record = one(store, 800).await.unwrap();
    assert_eq!(record.version, *versions.last().unwrap());
    assert_eq!(record.activities.len(), 16);
}
