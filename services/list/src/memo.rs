//! The price memo: list prices already computed and converted, kept per goods
//! id in front of the read chain, so that a batch whose goods the chain's
//! memory holds fresh is answered without a cache lookup, an engine run or a
//! money conversion per goods.
//!
//! A slot holds one record (the `Arc` the chain answered) with the instant
//! until which the chain's memory holds it fresh ([`Hit::fresh_until`]), and
//! the prices computed from it: each for one caller-context mask
//! ([`pricing_engine::reuse::context_mask`]: which activities the caller's
//! channel, city, store, new-user flag and member level let through) and one
//! span of instants in which no activity starts or ends
//! ([`pricing_engine::reuse::window_around`]). The engine's answer is a
//! function of exactly those, so a price is reused only for a call on the
//! same record, with the same mask, at an instant in the same span: never
//! across a window boundary, never for another version (a new record
//! replaces the slot), never past the chain's own freshness (so the memo
//! never holds a record longer than the cache lifetime would).
//!
//! What the memo answers is what the chain's memory would answer: tier
//! `memory`, not stale. Stale answers (every tier failed), explain calls and
//! records with more than 64 activities always go through the chain and the
//! engine. [`PriceMemo::invalidate`] drops ids; the server registers it with
//! the reader ([`PriceReader::on_invalidate`]), so every
//! `TieredReader::invalidate` reaches it. An answer read before an
//! invalidation is never remembered after it (the invalidation epoch).
//!
//! Bounded: 16 shards of at most `shard_capacity` slots; a full shard first
//! drops what is no longer fresh, then everything. At most 8 prices a slot
//! (the oldest goes). Metric: `pricing_list_memo_hits_total` (goods answered
//! from the memo; the rest went to the chain).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwapOption;
use pricing_control::ControlConfig;
use pricing_engine::reuse::{context_mask, window_around};
use pricing_engine::{CallerContext, Drops};
use pricing_proto::splice::EncodedPrice;
use pricing_proto::v1;
use pricing_record::idmap::IdMap;
use pricing_record::{ActivityKind, GoodsId, UnixMillis};
use pricing_store::SharedRecord;
use tokio::time::Instant;

use crate::reader::Hit;

const SHARDS: usize = 16;
const PRICES_PER_SLOT: usize = 8;
/// Default slots per shard: 16 x 8,192 = 131,072 goods (a few hundred bytes
/// each besides the record, which the chain's cache shares).
pub const DEFAULT_SHARD_CAPACITY: usize = 8_192;

pub struct PriceMemo {
    shards: Box<[Mutex<IdMap<Slot>>]>,
    /// Moves on every invalidation; an answer read under an older epoch is
    /// not remembered.
    epoch: AtomicU64,
    shard_capacity: usize,
    /// The control config the remembered prices were computed under (its
    /// price guard decides them): another config empties the memo.
    control: ArcSwapOption<ControlConfig>,
}

/// What the price-watch metrics (`pricing_traffic::watch`) count for a
/// price, kept with it so that an answer from the memo is counted as the
/// engine's answer was: its activity kind, its discount and the engine's
/// dropped candidates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Watched {
    pub kind: Option<ActivityKind>,
    pub basis_points: u32,
    pub drops: Drops,
}

struct Slot {
    record: SharedRecord,
    fresh_until: Instant,
    prices: Vec<Remembered>,
}

struct Remembered {
    mask: u64,
    /// The span `[from, until)` of instants the price holds for.
    from: UnixMillis,
    until: UnixMillis,
    /// The price with its encoding (tier `memory`, not stale): a reply
    /// takes a reference and copies the bytes.
    price: Arc<EncodedPrice>,
    watched: Watched,
}

/// What [`PriceMemo::recall`] found for a batch.
pub struct Recalled {
    /// One per id, in order: the price when the memo holds it.
    pub prices: Vec<Option<Arc<EncodedPrice>>>,
    /// The ids it does not hold, in order: for the chain.
    pub missing: Vec<GoodsId>,
    /// What the watch metrics count for each price found, in order.
    pub watched: Vec<Watched>,
    epoch: u64,
    /// The address of the control config of the call (held by the caller
    /// for the whole call, so no other config can take its address).
    control: usize,
}

impl Default for PriceMemo {
    fn default() -> Self {
        PriceMemo::new(DEFAULT_SHARD_CAPACITY)
    }
}

impl PriceMemo {
    pub fn new(shard_capacity: usize) -> PriceMemo {
        PriceMemo {
            shards: (0..SHARDS).map(|_| Mutex::new(IdMap::default())).collect(),
            epoch: AtomicU64::new(0),
            shard_capacity: shard_capacity.max(1),
            control: ArcSwapOption::empty(),
        }
    }

    fn shard(&self, id: GoodsId) -> std::sync::MutexGuard<'_, IdMap<Slot>> {
        // Fibonacci hashing: the top bits of id x 2^64/phi.
        let index = (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) as usize % SHARDS;
        self.shards[index].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The remembered prices of `ids` for `ctx` at `now_ms` (the pricing
    /// clock) and `at` (the freshness clock), for a call priced under
    /// `control`; nothing for an explain call. A control config other than
    /// the one the memo holds prices for empties it first.
    pub fn recall(
        &self,
        control: &Arc<ControlConfig>,
        ids: &[GoodsId],
        ctx: &CallerContext,
        now_ms: UnixMillis,
        at: Instant,
        explain: bool,
    ) -> Recalled {
        self.follow(control);
        let epoch = self.epoch.load(Ordering::SeqCst);
        let control = Arc::as_ptr(control) as usize;
        if explain {
            return Recalled {
                prices: vec![None; ids.len()],
                missing: ids.to_vec(),
                watched: Vec::new(),
                epoch,
                control,
            };
        }
        let mut prices = Vec::with_capacity(ids.len());
        let mut missing = Vec::new();
        let mut watched = Vec::with_capacity(ids.len());
        for &id in ids {
            match self.get(id, ctx, now_ms, at) {
                Some((price, watch)) => {
                    prices.push(Some(price));
                    watched.push(watch);
                }
                None => {
                    missing.push(id);
                    prices.push(None);
                }
            }
        }
        let hits = ids.len() - missing.len();
        if hits > 0 {
            static HITS: OnceLock<metrics::Counter> = OnceLock::new();
            HITS.get_or_init(|| metrics::counter!("pricing_list_memo_hits_total")).increment(hits as u64);
        }
        Recalled { prices, missing, watched, epoch, control }
    }

    /// A batch the memo is not asked for (a canary variant reading its own
    /// chain): every id goes to the chain, and nothing read is remembered.
    pub fn recall_nothing(&self, ids: &[GoodsId]) -> Recalled {
        Recalled {
            prices: vec![None; ids.len()],
            missing: ids.to_vec(),
            watched: Vec::new(),
            epoch: self.epoch.load(Ordering::SeqCst),
            control: 0,
        }
    }

    /// Empties the memo when `control` is not the config its prices were
    /// computed under (a control file swap: the price guard may differ).
    fn follow(&self, control: &Arc<ControlConfig>) {
        if self.control.load().as_ref().is_some_and(|held| Arc::ptr_eq(held, control)) {
            return;
        }
        self.control.store(Some(Arc::clone(control)));
        self.clear();
    }

    fn holds_prices_of(&self, control: usize) -> bool {
        self.control.load().as_ref().is_some_and(|held| Arc::as_ptr(held) as usize == control)
    }

    /// The price for `id` if the memo holds one for this mask and instant.
    pub fn get(
        &self,
        id: GoodsId,
        ctx: &CallerContext,
        now_ms: UnixMillis,
        at: Instant,
    ) -> Option<(Arc<EncodedPrice>, Watched)> {
        let mut shard = self.shard(id);
        let slot = shard.get(&id)?;
        if at >= slot.fresh_until {
            shard.remove(&id);
            return None;
        }
        let mask = context_mask(&slot.record, ctx)?;
        slot.prices
            .iter()
            .find(|p| p.mask == mask && p.from <= now_ms && now_ms < p.until)
            .map(|p| (Arc::clone(&p.price), p.watched))
    }

    /// Keeps `price`, computed by the engine from `hit` for `ctx` at `now_ms`
    /// (not explain), for later calls, when the reader says how long its
    /// memory holds the record, nothing was invalidated since `recalled`
    /// was read and the memo still holds prices of the call's control config.
    /// `watched` is what the watch metrics counted for it.
    pub fn remember(
        &self,
        recalled: &Recalled,
        hit: &Hit,
        ctx: &CallerContext,
        now_ms: UnixMillis,
        price: &v1::GoodsPrice,
        watched: Watched,
    ) {
        let Some(fresh_until) = hit.fresh_until.filter(|_| !hit.stale) else { return };
        if Instant::now() >= fresh_until {
            return;
        }
        let Some(mask) = context_mask(&hit.record, ctx) else { return };
        let (from, until) = window_around(&hit.record, now_ms);
        let remembered = Remembered {
            mask,
            from,
            until,
            price: Arc::new(EncodedPrice::new(v1::GoodsPrice {
                tier: v1::Tier::Memory as i32,
                stale: false,
                ..price.clone()
            })),
            watched,
        };
        let id = hit.record.goods_id;
        let mut shard = self.shard(id);
        // Under the shard's lock: an invalidation moves the epoch before it
        // takes this lock, so either it is seen here or it drops this slot.
        if self.epoch.load(Ordering::SeqCst) != recalled.epoch || !self.holds_prices_of(recalled.control) {
            return;
        }
        if let Some(slot) = shard.get_mut(&id) {
            if std::sync::Arc::ptr_eq(&slot.record, &hit.record) {
                slot.fresh_until = slot.fresh_until.max(fresh_until);
                if slot.prices.iter().any(|p| p.mask == mask && p.from == from) {
                    return;
                }
                if slot.prices.len() >= PRICES_PER_SLOT {
                    slot.prices.remove(0);
                }
                slot.prices.push(remembered);
                return;
            }
            // Another record: a newer version replaces the slot; an older one
            // (a call that read before the newer one came) only an expired slot.
            if slot.record.version > hit.record.version && Instant::now() < slot.fresh_until {
                return;
            }
        } else if shard.len() >= self.shard_capacity {
            let now = Instant::now();
            shard.retain(|_, s| now < s.fresh_until);
            if shard.len() >= self.shard_capacity {
                shard.clear();
            }
        }
        shard.insert(id, Slot { record: std::sync::Arc::clone(&hit.record), fresh_until, prices: vec![remembered] });
    }

    /// Forgets `ids`: the next call reads them from the chain.
    pub fn invalidate(&self, ids: &[GoodsId]) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        for &id in ids {
            self.shard(id).remove(&id);
        }
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        for shard in &self.shards {
            shard.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }

    /// Goods held (for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Push invalidation reaches the memo through the chain it fronts
/// ([`crate::reader::PriceReader::on_invalidate`]); a gap in the announcements empties it.
#[async_trait::async_trait]
impl pricing_store::Invalidate for PriceMemo {
    async fn invalidate(&self, ids: &[GoodsId]) {
        PriceMemo::invalidate(self, ids);
    }

    async fn invalidate_all(&self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

    use std::sync::Arc;
    use std::time::Duration;

    use pricing_engine::best_price;
    use pricing_proto::convert;
    use pricing_record::{Activity, ActivityKind, ActivityStatus, Channel, Channels, GoodsRecord, GoodsStatus};
    use proptest::prelude::*;
    use rust_decimal::Decimal;

    use super::*;

    /// The one control config of these tests (another would empty the memo).
    fn control() -> &'static Arc<ControlConfig> {
        static CONTROL: std::sync::OnceLock<Arc<ControlConfig>> = std::sync::OnceLock::new();
        CONTROL.get_or_init(|| Arc::new(ControlConfig::default()))
    }

    const GOODS: GoodsId = 7;

    fn activity() -> impl Strategy<Value = Activity> {
        (
            (0..4usize, 1..120i64, 0..12i64, 1..8i64, 0..16u8),
            (prop::collection::vec(1..4u64, 0..3), prop::collection::vec(1..4u64, 0..3), any::<bool>(), 0..3u32),
            (prop::option::of(0..3u64), 0..3u32, 0..3i32, 0..8u8, 1..4u64),
        )
            .prop_map(|((kind, value, start, len, channels), (cities, stores, new_user_only, level), rest)| {
                let (stock, per_user, priority, state, id) = rest;
                let kind =
                    [ActivityKind::FlashSale, ActivityKind::Discount, ActivityKind::AmountOff, ActivityKind::Subsidy]
                        [kind];
                let value = match kind {
                    ActivityKind::Discount => Decimal::from(value % 99 + 1),
                    _ => Decimal::new(value * 10, 2),
                };
                // Windows on a grid of 10 ms so that instants fall on, before and after edges.
                let mut a = Activity::open(id, GOODS, kind, value, start * 10, (start + len) * 10);
                a.channels = Channels::from_bits(channels).unwrap();
                a.city_ids = cities;
                a.store_ids = stores;
                a.new_user_only = new_user_only;
                a.min_member_level = level;
                a.stock_left = stock;
                a.per_user_limit = per_user;
                a.priority = priority;
                a.status = if state == 0 { ActivityStatus::Offline } else { ActivityStatus::Online };
                a.deleted = state == 1;
                a
            })
    }

    fn record() -> impl Strategy<Value = (i64, bool, Vec<Activity>)> {
        (100..2_000i64, any::<bool>(), prop::collection::vec(activity(), 0..6))
    }

    fn context() -> impl Strategy<Value = CallerContext> {
        (0..4usize, prop::option::of(1..4u64), prop::option::of(1..4u64), any::<bool>(), 0..3u32).prop_map(
            |(channel, city_id, store_id, new_user, member_level)| CallerContext {
                pin: String::new(),
                store_id,
                city_id,
                channel: Channel::ALL[channel],
                new_user,
                member_level,
            },
        )
    }

    #[derive(Debug, Clone)]
    enum Step {
        /// A call at pricing instant `now` (ms), `at` seconds into the test.
        Call { ctx: CallerContext, now: i64, at: u64, explain: bool },
        /// The source gets a new version of the record (the chain sees it
        /// once its cached copy is no longer fresh, or at once if `invalidate`).
        Change { record: (i64, bool, Vec<Activity>), invalidate: bool },
        /// Every tier fails: the chain serves its copy stale (at `at`).
        Outage { ctx: CallerContext, now: i64 },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => (context(), -5..130i64, 0..3u64, prop::bool::weighted(0.1))
                .prop_map(|(ctx, now, at, explain)| Step::Call { ctx, now, at, explain }),
            1 => (record(), any::<bool>()).prop_map(|(record, invalidate)| Step::Change { record, invalidate }),
            1 => (context(), -5..130i64).prop_map(|(ctx, now)| Step::Outage { ctx, now }),
        ]
    }

    fn build(version: u64, (base, delisted, activities): &(i64, bool, Vec<Activity>)) -> SharedRecord {
        Arc::new(GoodsRecord {
            goods_id: GOODS,
            version,
            store_id: 1,
            base_price: Decimal::new(*base, 2),
            currency: "CNY".into(),
            status: if *delisted { GoodsStatus::Delisted } else { GoodsStatus::OnSale },
            activities: activities.clone(),
        })
    }

    /// The engine's answer on `record`, as the wire carries it.
    fn engine(record: &GoodsRecord, ctx: &CallerContext, now: i64, tier: v1::Tier, stale: bool) -> v1::GoodsPrice {
        let quote = best_price(record, ctx, now, false).unwrap();
        convert::goods_price(&quote, record.version, tier, stale)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        /// Driven like the handler drives it, against a model of the chain
        /// (a cached copy fresh for 2 s; a new version reaches it when the
        /// copy expires or is invalidated): every price the memo answers is
        /// the engine's on the record the chain holds fresh at that instant,
        /// for that caller, at that pricing instant: never across a window
        /// boundary, never a replaced version, never past the copy's
        /// freshness, never a stale answer kept; tier `memory`, not stale.
        #[test]
        fn the_memo_answers_what_the_engine_says_on_the_chains_record(
            first in record(),
            steps in prop::collection::vec(step(), 1..60),
        ) {
            let memo = PriceMemo::new(4);
            let base = Instant::now() + Duration::from_secs(3_600);
            let ttl = Duration::from_secs(2);
            let mut version = 1;
            let mut source = build(version, &first);
            // The chain's cached copy and until when it is fresh.
            let mut cached: Option<(SharedRecord, Instant)> = None;
            let mut clock = 0u64;
            for step in steps {
                match step {
                    Step::Change { record, invalidate } => {
                        version += 1;
                        source = build(version, &record);
                        if invalidate {
                            cached = None;
                            memo.invalidate(&[GOODS]);
                        }
                    }
                    Step::Call { ctx, now, at, explain } => {
                        clock += at;
                        let at = base + Duration::from_secs(clock);
                        let recalled = memo.recall(control(), &[GOODS], &ctx, now, at, explain);
                        if explain {
                            prop_assert!(recalled.prices[0].is_none(), "explain calls bypass the memo");
                        }
                        let fresh = cached.as_ref().filter(|(_, until)| at < *until).map(|(r, _)| Arc::clone(r));
                        if let Some(price) = &recalled.prices[0] {
                            let record = fresh.expect("the memo answered a record the chain no longer holds fresh");
                            let expected = engine(&record, &ctx, now, v1::Tier::Memory, false);
                            prop_assert_eq!(price.price(), &expected);
                            // ...and the bytes a reply copies are that price's encoding.
                            let encoded = prost::Message::encode_to_vec(&expected);
                            prop_assert_eq!(price.bytes(), encoded.as_slice());
                            continue;
                        }
                        let (record, tier) = match fresh {
                            Some(record) => (record, v1::Tier::Memory),
                            None => {
                                cached = Some((Arc::clone(&source), at + ttl));
                                (Arc::clone(&source), v1::Tier::Redis)
                            }
                        };
                        let until = cached.as_ref().map(|(_, u)| *u);
                        let hit = Hit { record: Arc::clone(&record), tier, stale: false, fresh_until: until };
                        let price = engine(&record, &ctx, now, tier, false);
                        if !explain {
                            memo.remember(&recalled, &hit, &ctx, now, &price, Watched::default());
                        }
                    }
                    Step::Outage { ctx, now } => {
                        // The copy has expired; the chain serves it stale.
                        clock += 3;
                        let at = base + Duration::from_secs(clock);
                        let recalled = memo.recall(control(), &[GOODS], &ctx, now, at, false);
                        prop_assert!(recalled.prices[0].is_none(), "nothing past the chain's freshness");
                        if let Some((record, _)) = cached.clone() {
                            let hit = Hit { record: Arc::clone(&record), tier: v1::Tier::Memory, stale: true, fresh_until: None };
                            let price = engine(&record, &ctx, now, v1::Tier::Memory, true);
                            memo.remember(&recalled, &hit, &ctx, now, &price, Watched::default());
                            prop_assert!(memo.recall(control(), &[GOODS], &ctx, now, at, false).prices[0].is_none(), "stale answers are not kept");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_read_from_before_an_invalidation_is_not_remembered() {
        let memo = PriceMemo::default();
        let record = build(1, &(1_000, false, Vec::new()));
        let ctx = CallerContext::anonymous(Channel::App);
        let at = Instant::now();
        let recalled = memo.recall(control(), &[GOODS], &ctx, 0, at, false);
        memo.invalidate(&[GOODS]);
        let hit = Hit {
            record: Arc::clone(&record),
            tier: v1::Tier::Redis,
            stale: false,
            fresh_until: Some(at + Duration::from_secs(60)),
        };
        memo.remember(&recalled, &hit, &ctx, 0, &engine(&record, &ctx, 0, v1::Tier::Redis, false), Watched::default());
        assert!(memo.is_empty(), "read before the invalidation");

        let recalled = memo.recall(control(), &[GOODS], &ctx, 0, at, false);
        memo.remember(&recalled, &hit, &ctx, 0, &engine(&record, &ctx, 0, v1::Tier::Redis, false), Watched::default());
        let again = memo.recall(control(), &[GOODS], &ctx, 0, at, false);
        assert_eq!(
            again.prices[0].as_ref().map(|p| (p.price().tier, p.price().version)),
            Some((v1::Tier::Memory as i32, 1))
        );
        assert!(again.missing.is_empty());
        memo.invalidate(&[GOODS]);
        assert_eq!(memo.recall(control(), &[GOODS], &ctx, 0, at, false).missing, vec![GOODS]);
    }

    #[test]
    fn another_control_config_empties_the_memo_and_a_price_of_the_old_one_is_not_kept() {
        let memo = PriceMemo::default();
        let record = build(1, &(1_000, false, Vec::new()));
        let ctx = CallerContext::anonymous(Channel::App);
        let at = Instant::now();
        let hit = Hit {
            record: Arc::clone(&record),
            tier: v1::Tier::Redis,
            stale: false,
            fresh_until: Some(at + Duration::from_secs(60)),
        };
        let price = engine(&record, &ctx, 0, v1::Tier::Redis, false);
        let watched = Watched { kind: None, basis_points: 0, drops: Drops::default() };
        let recalled = memo.recall(control(), &[GOODS], &ctx, 0, at, false);
        memo.remember(&recalled, &hit, &ctx, 0, &price, watched);
        let again = memo.recall(control(), &[GOODS], &ctx, 0, at, false);
        assert!(again.missing.is_empty());
        assert_eq!(again.watched, vec![watched], "what the watch metrics count comes back with the price");

        // A call under a new config (a control file swap) empties the memo...
        let new = Arc::new(ControlConfig::default());
        assert_eq!(memo.recall(&new, &[GOODS], &ctx, 0, at, false).missing, vec![GOODS]);
        // ...and a call still priced under the old one cannot put its price back.
        memo.remember(&recalled, &hit, &ctx, 0, &price, watched);
        let old = memo.recall(control(), &[GOODS], &ctx, 0, at, false);
        assert_eq!(old.missing, vec![GOODS], "the old config's call found the memo emptied again");
        let late = memo.recall(&new, &[GOODS], &ctx, 0, at, false);
        memo.remember(&old, &hit, &ctx, 0, &price, watched);
        assert!(memo.is_empty() || memo.recall(&new, &[GOODS], &ctx, 0, at, false).missing == vec![GOODS]);
        memo.remember(&late, &hit, &ctx, 0, &price, watched);
        assert!(
            memo.recall(&new, &[GOODS], &ctx, 0, at, false).missing.is_empty(),
            "the new config's own call is kept"
        );
    }

    #[test]
    fn a_full_memo_stays_bounded() {
        let memo = PriceMemo::new(2);
        let ctx = CallerContext::anonymous(Channel::App);
        let at = Instant::now();
        for id in 1..1_000 {
            let mut r = (*build(1, &(1_000, false, Vec::new()))).clone();
            r.goods_id = id;
            let record = Arc::new(r);
            let hit = Hit {
                record: Arc::clone(&record),
                tier: v1::Tier::Redis,
                stale: false,
                fresh_until: Some(at + Duration::from_secs(60)),
            };
            let recalled = memo.recall(control(), &[id], &ctx, 0, at, false);
            memo.remember(
                &recalled,
                &hit,
                &ctx,
                0,
                &engine(&record, &ctx, 0, v1::Tier::Redis, false),
                Watched::default(),
            );
        }
        assert!(memo.len() <= 2 * SHARDS, "{} slots", memo.len());
        assert!(!memo.is_empty());
    }
}
