//! The demo catalogue a server serves when started with no configuration:
//! deterministic (seeded RNG), about 10,000 goods across several stores and
//! cities, with activities of every kind and timing, cart promotions and
//! coupons. The well-known ids in [`well_known`] are fixed; the README lists them.

use pricing_record::{
    Activity, ActivityKind, ActivityStatus, Channel, Channels, Clock, GoodsId, GoodsRecord, GoodsStatus, ManualClock,
    UnixMillis,
};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use sqlx::Row;

use crate::catalog::{ACTIVITY_COLUMN_COUNT, ACTIVITY_COLUMNS, ActivityValues, tick};
use crate::convert::{goods_status_str, to_db, to_x100};
use crate::db::placeholders;
use crate::error::SqlError;
use crate::promotion::{PromotionKind, PromotionRow, PromotionStatus, PromotionTier, ScopeKind};
use crate::store::SqlStore;

/// Ids the README, the tests and the load tests can rely on.
pub mod well_known {
    use pricing_record::GoodsId;

    /// 59.90, with a flash sale at 39.90 running now (window: now - 1 h to
    /// now + 23 h, every channel, 2 per user, 500 in stock).
    pub const FLASH_SALE_GOODS: GoodsId = 1;
    pub const FLASH_SALE_ACTIVITY: u64 = 1;
    /// 100.00, with a discount of 85% ("8.5 折", so 85.00) running now.
    pub const DISCOUNT_GOODS: GoodsId = 2;
    pub const DISCOUNT_ACTIVITY: u64 = 2;
    /// 25.00, no activity.
    pub const PLAIN_GOODS: GoodsId = 3;
    /// Soft-deleted: a tombstone, "not found" on the read path.
    pub const DELETED_GOODS: GoodsId = 4;
    /// Seed 002's example cart: 30.00 + 40.00 + 50.00 = 120.00 in
    /// [`CART_STORE`], no activities; with [`STORE_PROMOTION`] it pays 111.00.
    pub const CART_GOODS: [GoodsId; 3] = [30, 40, 50];
    /// The store of goods 1, 2, 3 and the store coupon.
    pub const MAIN_STORE: u64 = 1;
    /// The store of the cart goods.
    pub const CART_STORE: u64 = 2;
    /// Store promotion of [`CART_STORE`]: "满99减9" (spend 99 get 9 off),
    /// second tier spend 199 get 25 off; running now.
    pub const STORE_PROMOTION: u64 = 1;
    /// Platform promotion: spend 299, pay 95%; running now.
    pub const PLATFORM_PROMOTION: u64 = 2;
    /// An expired store promotion of [`CART_STORE`] (spend 200 get 30 off).
    pub const EXPIRED_PROMOTION: u64 = 4;
    /// Platform coupon: spend 100 get 10 off; valid now.
    pub const COUPON: u64 = 1001;
    /// Store coupon of [`MAIN_STORE`]: 5 off, no threshold; valid now.
    pub const STORE_COUPON: u64 = 1002;
    /// An expired platform coupon (spend 50 get 5 off).
    pub const EXPIRED_COUPON: u64 = 1003;
}

/// Stores goods are spread over.
pub const STORES: [u64; 8] = [1, 2, 3, 4, 5, 6, 7, 8];
/// Cities of city-limited activities (Chinese administrative codes: Beijing,
/// Shanghai, Guangzhou, Shenzhen, Hangzhou, Chengdu, Wuhan, Nanjing).
pub const CITIES: [u64; 8] = [110_000, 310_000, 440_100, 440_300, 330_100, 510_100, 420_100, 320_100];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoOptions {
    /// Goods ids 1..=goods are created.
    pub goods: u64,
    /// Activity windows are placed relative to this instant.
    pub now_ms: UnixMillis,
    pub rng_seed: u64,
}

impl Default for DemoOptions {
    fn default() -> DemoOptions {
        DemoOptions { goods: 10_000, now_ms: Clock::system().now_ms(), rng_seed: 20_231_111 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SeedReport {
    /// False when the database already held goods (nothing was written).
    pub seeded: bool,
    pub goods: u64,
    pub activities: u64,
    pub promotions: u64,
}

/// One demo goods: its record (version 0 until seeded) and whether it is soft-deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoGoods {
    pub record: GoodsRecord,
    pub deleted: bool,
}

/// The demo catalogue, generated without touching a database. Same options,
/// same catalogue.
pub fn catalogue(options: &DemoOptions) -> (Vec<DemoGoods>, Vec<PromotionRow>) {
    let mut rng = StdRng::seed_from_u64(options.rng_seed);
    let now = options.now_ms;
    let mut next_activity = 3;
    let goods = (1..=options.goods)
        .map(|id| match id {
            well_known::FLASH_SALE_GOODS => {
                let mut a = base_activity(id, well_known::FLASH_SALE_ACTIVITY, ActivityKind::FlashSale, fen(3_990));
                (a.start_ms, a.end_ms, a.per_user_limit, a.stock_left, a.priority) =
                    (now - HOUR, now + 23 * HOUR, 2, Some(500), 1);
                known(id, well_known::MAIN_STORE, 5_990, vec![a])
            }
            well_known::DISCOUNT_GOODS => {
                let mut a = base_activity(id, well_known::DISCOUNT_ACTIVITY, ActivityKind::Discount, fen(8_500));
                (a.start_ms, a.end_ms) = (now - DAY, now + 6 * DAY);
                known(id, well_known::MAIN_STORE, 10_000, vec![a])
            }
            well_known::PLAIN_GOODS => known(id, well_known::MAIN_STORE, 2_500, vec![]),
            30 | 40 | 50 => known(id, well_known::CART_STORE, id as i64 * 100, vec![]),
            _ => random_goods(&mut rng, id, now, &mut next_activity),
        })
        .map(|mut g| {
            g.deleted |= g.record.goods_id == well_known::DELETED_GOODS;
            g
        })
        .collect();
    (goods, promotions(now))
}

/// Writes the demo catalogue if the database holds no goods yet, in one
/// transaction with batched inserts; otherwise writes nothing.
pub async fn seed(store: &SqlStore, options: DemoOptions) -> Result<SeedReport, SqlError> {
    let (goods, promotions) = catalogue(&options);
    let mut tx = store.pool().begin().await?;
    let total = i64::try_from(goods.len() + promotions.len())
        .map_err(|_| SqlError::InvalidInput("demo catalogue too large".into()))?;
    // Taking the versions first also serialises two servers seeding at once.
    let stamp = tick(&mut tx, options.now_ms, total.max(1)).await?;
    let existing: i64 = sqlx::query("SELECT COUNT(*) AS n FROM goods").fetch_one(&mut *tx).await?.try_get("n")?;
    if existing > 0 {
        tx.rollback().await?;
        tracing::info!(goods = existing, "demo catalogue not seeded: the database already has goods");
        return Ok(SeedReport::default());
    }
    let first_version = stamp.version - total + 1;
    let at = stamp.updated_at;

    let mut report = SeedReport { seeded: true, ..SeedReport::default() };
    for (chunk_index, chunk) in goods.chunks(GOODS_BATCH).enumerate() {
        let sql = format!(
            "INSERT INTO goods (id, store_id, base_price_fen, currency, status, version, created_at, updated_at, \
             deleted_at) VALUES {}",
            rows_of(9, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for (i, g) in chunk.iter().enumerate() {
            let r = &g.record;
            let version = first_version + (chunk_index * GOODS_BATCH + i) as i64;
            query = query
                .bind(to_db("goods.id", r.goods_id)?)
                .bind(to_db("goods.store_id", r.store_id)?)
                .bind(to_x100("goods.base_price", r.base_price)?)
                .bind(r.currency.clone())
                .bind(goods_status_str(r.status)?)
                .bind(version)
                .bind(at)
                .bind(at)
                .bind(g.deleted.then_some(at));
        }
        query.execute(&mut *tx).await?;
        report.goods += chunk.len() as u64;
    }

    let activities: Vec<(i64, ActivityValues)> = goods
        .iter()
        .enumerate()
        .flat_map(|(i, g)| g.record.activities.iter().map(move |a| (first_version + i as i64, a)))
        .map(|(version, a)| Ok((version, ActivityValues::new(a)?)))
        .collect::<Result<_, SqlError>>()?;
    for chunk in activities.chunks(ACTIVITY_BATCH) {
        let sql =
            format!("INSERT INTO activity ({ACTIVITY_COLUMNS}) VALUES {}", rows_of(ACTIVITY_COLUMN_COUNT, chunk.len()));
        let mut query = sqlx::query(&sql);
        for (version, a) in chunk {
            query = a.bind_all(query, *version, at, None);
        }
        query.execute(&mut *tx).await?;
        report.activities += chunk.len() as u64;
    }
    tx.commit().await?;

    // Promotions are few: the writer's own path (one transaction each).
    let catalog = store.catalog().with_clock(ManualClock::new(at).clock());
    for p in &promotions {
        catalog.upsert_promotion(p).await?;
        report.promotions += 1;
    }
    tracing::info!(
        goods = report.goods,
        activities = report.activities,
        promotions = report.promotions,
        "demo catalogue seeded"
    );
    Ok(report)
}

const GOODS_BATCH: usize = 500;
const ACTIVITY_BATCH: usize = 400;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn rows_of(columns: usize, rows: usize) -> String {
    let row = format!("({})", placeholders(columns));
    vec![row; rows].join(", ")
}

fn fen(x100: i64) -> Decimal {
    Decimal::new(x100, 2)
}

fn known(id: GoodsId, store_id: u64, price_fen: i64, activities: Vec<Activity>) -> DemoGoods {
    DemoGoods {
        record: GoodsRecord {
            goods_id: id,
            version: 0,
            store_id,
            base_price: fen(price_fen),
            currency: "CNY".into(),
            status: GoodsStatus::OnSale,
            activities,
        },
        deleted: false,
    }
}

fn base_activity(goods_id: GoodsId, id: u64, kind: ActivityKind, value: Decimal) -> Activity {
    Activity::open(id, goods_id, kind, value, 0, 1)
}

/// Price bands in yuan by category: snacks, drinks, fresh food, daily
/// necessities, beauty, apparel, appliances, electronics.
const PRICE_BANDS: [(i64, i64); 8] =
    [(3, 40), (2, 30), (5, 120), (9, 200), (39, 600), (49, 900), (199, 4_999), (99, 6_999)];
/// How shop prices end: 29.90, 29.00, 29.99, 29.50, 29.80.
const CENTS: [i64; 5] = [90, 0, 99, 50, 80];
/// "折" values: percent of the original price payable.
const DISCOUNTS: [i64; 9] = [95, 90, 88, 85, 80, 75, 70, 60, 50];
/// Amount-off steps in fen.
const AMOUNTS_OFF: [i64; 7] = [100, 200, 300, 500, 1_000, 2_000, 5_000];

#[expect(clippy::expect_used, reason = "choose() is None only on an empty slice; these are non-empty constant arrays")]
fn random_goods(rng: &mut StdRng, id: GoodsId, now: i64, next_activity: &mut u64) -> DemoGoods {
    let (lo, hi) = *PRICE_BANDS.choose(rng).expect("bands");
    let price_fen = rng.random_range(lo..hi) * 100 + *CENTS.choose(rng).expect("cents");
    let store_id = *STORES.choose(rng).expect("stores");
    let count = match rng.random_range(0..100) {
        0..55 => 0,
        55..85 => 1,
        85..97 => 2,
        _ => 3,
    };
    let activities = (0..count)
        .map(|_| {
            let activity_id = *next_activity;
            *next_activity += 1;
            random_activity(rng, id, activity_id, price_fen, now)
        })
        .collect();
    let status = if rng.random_bool(0.03) { GoodsStatus::Delisted } else { GoodsStatus::OnSale };
    let deleted = rng.random_bool(0.005);
    let mut goods = known(id, store_id, price_fen, activities);
    goods.record.status = status;
    goods.deleted = deleted;
    goods
}

#[expect(clippy::expect_used, reason = "choose() is None only on an empty slice; these are non-empty constant arrays")]
fn random_activity(rng: &mut StdRng, goods_id: GoodsId, id: u64, price_fen: i64, now: i64) -> Activity {
    let kind = match rng.random_range(0..100) {
        0..25 => ActivityKind::FlashSale,
        25..60 => ActivityKind::Discount,
        60..80 => ActivityKind::AmountOff,
        _ => ActivityKind::Subsidy,
    };
    // Fixed prices are rounded down to 10 fen and stay at least 0.01 and below the original.
    let fixed = |pct: i64| ((price_fen * pct / 100) / 10 * 10).clamp(1, price_fen - 1);
    let value_x100 = match kind {
        ActivityKind::FlashSale => fixed(rng.random_range(40..85)),
        ActivityKind::Subsidy => fixed(rng.random_range(70..95)),
        ActivityKind::Discount => DISCOUNTS.choose(rng).expect("discounts") * 100,
        ActivityKind::AmountOff => (*AMOUNTS_OFF.choose(rng).expect("amounts")).min(price_fen / 2).max(1),
    };
    let mut a = base_activity(goods_id, id, kind, fen(value_x100));
    let length =
        if kind == ActivityKind::FlashSale { rng.random_range(2..24) * HOUR } else { rng.random_range(1..14) * DAY };
    (a.start_ms, a.end_ms) = match rng.random_range(0..100) {
        // current
        0..60 => {
            let start = now - rng.random_range(1..72) * HOUR;
            (start, (start + length).max(now + HOUR))
        }
        // ended
        60..80 => {
            let end = now - rng.random_range(1..720) * HOUR;
            (end - length, end)
        }
        // upcoming
        _ => {
            let start = now + rng.random_range(1..168) * HOUR;
            (start, start + length)
        }
    };
    a.channels = match rng.random_range(0..100) {
        0..70 => Channels::ALL,
        70..85 => [Channel::App].into_iter().collect(),
        85..95 => [Channel::App, Channel::MiniProgram].into_iter().collect(),
        _ => [Channel::MiniProgram, Channel::H5].into_iter().collect(),
    };
    if rng.random_bool(0.15) {
        let n = rng.random_range(1..=3);
        let mut cities: Vec<u64> = CITIES.choose_multiple(rng, n).copied().collect();
        cities.sort_unstable();
        a.city_ids = cities;
    }
    if rng.random_bool(0.05) {
        let n = rng.random_range(1..=2);
        let mut stores: Vec<u64> = STORES.choose_multiple(rng, n).copied().collect();
        stores.sort_unstable();
        a.store_ids = stores;
    }
    a.new_user_only = kind == ActivityKind::Subsidy && rng.random_bool(0.2);
    a.min_member_level = if rng.random_bool(0.1) { rng.random_range(1..=3) } else { 0 };
    (a.stock_left, a.per_user_limit) = match kind {
        ActivityKind::FlashSale => {
            let stock = if rng.random_bool(0.05) { 0 } else { rng.random_range(1..500) };
            (Some(stock), rng.random_range(1..=5))
        }
        ActivityKind::Subsidy => (Some(rng.random_range(100..5_000)), rng.random_range(1..=2)),
        _ if rng.random_bool(0.2) => (Some(rng.random_range(100..5_000)), 0),
        _ => (None, if rng.random_bool(0.1) { rng.random_range(1..=10) } else { 0 }),
    };
    a.priority = rng.random_range(0..3);
    a.status = match rng.random_range(0..100) {
        0..90 => ActivityStatus::Online,
        90..95 => ActivityStatus::Draft,
        _ => ActivityStatus::Offline,
    };
    a
}

fn tiers(pairs: &[(i64, i64)]) -> Vec<PromotionTier> {
    pairs
        .iter()
        .map(|&(threshold, value)| PromotionTier { threshold: Decimal::from(threshold), value: Decimal::from(value) })
        .collect()
}

fn promotions(now: i64) -> Vec<PromotionRow> {
    let p =
        |id: u64, kind, scope, store_id: u64, name: &str, t: &[(i64, i64)], window: (i64, i64), status| PromotionRow {
            id,
            kind,
            scope,
            store_id,
            name: name.into(),
            tiers: tiers(t),
            goods_ids: vec![],
            start_ms: window.0,
            end_ms: window.1,
            status,
            version: 0,
        };
    use PromotionKind::{Coupon, ThresholdAmountOff as AmountOff, ThresholdPercentOff as PercentOff};
    use PromotionStatus::{Offline, Online};
    use ScopeKind::{Platform, Store};
    let current = (now - DAY, now + 30 * DAY);
    let mut hot = p(7, AmountOff, Platform, 0, "爆品满150减20", &[(150, 20)], current, Online);
    hot.goods_ids = (1..=20).collect();
    vec![
        p(
            well_known::STORE_PROMOTION,
            AmountOff,
            Store,
            well_known::CART_STORE,
            "满99减9",
            &[(99, 9), (199, 25)],
            current,
            Online,
        ),
        p(well_known::PLATFORM_PROMOTION, PercentOff, Platform, 0, "满299享95折", &[(299, 95)], current, Online),
        p(3, AmountOff, Store, 3, "满59减5", &[(59, 5), (129, 15)], current, Online),
        p(
            well_known::EXPIRED_PROMOTION,
            AmountOff,
            Store,
            well_known::CART_STORE,
            "满200减30",
            &[(200, 30)],
            (now - 10 * DAY, now - 3 * DAY),
            Online,
        ),
        p(5, AmountOff, Store, 4, "满49减10", &[(49, 10)], (now + 2 * DAY, now + 9 * DAY), Online),
        p(6, AmountOff, Store, 5, "满88减8", &[(88, 8)], current, Offline),
        hot,
        p(well_known::COUPON, Coupon, Platform, 0, "满100减10券", &[(100, 10)], current, Online),
        p(well_known::STORE_COUPON, Coupon, Store, well_known::MAIN_STORE, "5元无门槛券", &[(0, 5)], current, Online),
        p(
            well_known::EXPIRED_COUPON,
            Coupon,
            Platform,
            0,
            "满50减5券",
            &[(50, 5)],
            (now - 20 * DAY, now - DAY),
            Online,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(goods: u64) -> DemoOptions {
        DemoOptions { goods, now_ms: 1_731_000_000_000, rng_seed: 7 }
    }

    #[test]
    fn same_options_same_catalogue() {
        assert_eq!(catalogue(&options(2_000)), catalogue(&options(2_000)));
        let other = DemoOptions { rng_seed: 8, ..options(2_000) };
        assert_ne!(catalogue(&options(2_000)).0, catalogue(&other).0, "the seed must matter");
    }

    #[test]
    fn every_generated_row_is_valid() {
        let (goods, promotions) = catalogue(&options(10_000));
        assert_eq!(goods.len(), 10_000);
        let mut activities = 0;
        for g in &goods {
            let r = GoodsRecord { version: 1, ..g.record.clone() };
            r.validate().unwrap_or_else(|e| panic!("goods {}: {e}", r.goods_id));
            for a in &r.activities {
                a.validate(r.goods_id).unwrap_or_else(|e| panic!("activity {}: {e}", a.id));
                assert!(to_x100("v", a.value).is_ok());
                if matches!(a.kind, ActivityKind::FlashSale | ActivityKind::Subsidy) {
                    assert!(a.value < r.base_price, "activity {} price above the original", a.id);
                }
                activities += 1;
            }
        }
        assert!(activities > 4_000, "expected a few thousand activities, got {activities}");
        for p in &promotions {
            p.validate().unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn the_catalogue_has_every_kind_and_timing() {
        let now = options(10_000).now_ms;
        let (goods, _) = catalogue(&options(10_000));
        let all: Vec<&Activity> = goods.iter().flat_map(|g| &g.record.activities).collect();
        for kind in [ActivityKind::FlashSale, ActivityKind::Discount, ActivityKind::AmountOff, ActivityKind::Subsidy] {
            assert!(all.iter().any(|a| a.kind == kind), "{kind:?} missing");
        }
        assert!(all.iter().any(|a| a.end_ms <= now), "no ended activity");
        assert!(all.iter().any(|a| a.start_ms > now), "no upcoming activity");
        assert!(all.iter().any(|a| a.start_ms <= now && now < a.end_ms), "no current activity");
        assert!(all.iter().any(|a| a.channels != Channels::ALL), "no channel-limited activity");
        assert!(all.iter().any(|a| !a.city_ids.is_empty()), "no city-limited activity");
        assert!(all.iter().any(|a| a.per_user_limit > 0), "no per-user limit");
        assert!(all.iter().any(|a| a.stock_left.is_some()), "no limited stock");
        assert!(goods.iter().map(|g| g.record.store_id).collect::<std::collections::HashSet<_>>().len() >= 5);
    }
}
