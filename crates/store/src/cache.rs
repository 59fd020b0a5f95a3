//! The in-process cache in front of the tier chain: moka, bounded by an
//! estimate of bytes, each entry with its own lifetime.
//!
//! An entry is a record (live or tombstone) or "not found". Freshness is
//! decided here with `tokio::time::Instant` stamps held in the entry (fresh
//! until `ttl` for records, `negative_ttl` for not-found), so paused-time
//! tests see it, and so that a record can outlive its freshness by
//! `stale_grace` to be served marked stale when every store fails. Moka's own
//! per-entry expiry (the [`Expiry`] impl, on moka's clock) only reclaims the
//! memory once an entry is of no use any more.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moka::Expiry;
use pricing_record::{Activity, GoodsId, GoodsRecord};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::SharedRecord;
use crate::ids::TierId;
use crate::settings::{Live, SettingsError, millis, positive};

/// Cache lifetimes and size. `ttl`, `negative_ttl` and `stale_grace` are
/// read live for every entry stored; `max_bytes` is read when the cache is
/// built (moka cannot resize in place).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSettings {
    /// How long a found record (or tombstone) is served from memory.
    #[serde(rename = "ttl_ms", with = "millis")]
    pub ttl: Duration,
    /// How long "not found" is served from memory: short, it only has to
    /// keep a flood of unknown ids off the stores.
    #[serde(rename = "negative_ttl_ms", with = "millis")]
    pub negative_ttl: Duration,
    /// How long after `ttl` a record may still be served, marked stale,
    /// when every tier fails. Zero turns stale-if-error off.
    #[serde(rename = "stale_grace_ms", with = "millis")]
    pub stale_grace: Duration,
    /// Bound on the estimated bytes held (see [`estimated_bytes`]).
    pub max_bytes: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            ttl: Duration::from_secs(3),
            negative_ttl: Duration::from_secs(1),
            stale_grace: Duration::from_secs(60),
            max_bytes: 256 * 1024 * 1024,
        }
    }
}

impl CacheSettings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        positive("ttl_ms", self.ttl)?;
        positive("negative_ttl_ms", self.negative_ttl)?;
        if self.max_bytes == 0 {
            return Err(SettingsError::new("max_bytes", "must be above zero"));
        }
        Ok(())
    }
}

/// One cached answer for a goods id.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The record as the tier returned it (tombstones included); `None` =
    /// no tier holds the id.
    pub record: Option<SharedRecord>,
    /// The tier that answered, for logs and the per-id answer.
    pub tier: TierId,
    pub fresh_until: Instant,
    pub stale_until: Instant,
    /// How long moka keeps the entry, on its own clock.
    keep: Duration,
}

impl Entry {
    pub fn is_fresh(&self, now: Instant) -> bool {
        now < self.fresh_until
    }

    pub fn is_usable_stale(&self, now: Instant) -> bool {
        now < self.stale_until
    }
}

struct KeepFor;

impl Expiry<GoodsId, Entry> for KeepFor {
    fn expire_after_create(&self, _: &GoodsId, entry: &Entry, _: std::time::Instant) -> Option<Duration> {
        Some(entry.keep)
    }

    fn expire_after_update(
        &self,
        _: &GoodsId,
        entry: &Entry,
        _: std::time::Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.keep)
    }
}

/// An estimate of the memory one cached record holds, in bytes: the record
/// and its activities with their city and store lists. Cheap (no encoding)
/// and proportional to what matters: the activity count.
pub fn estimated_bytes(record: &GoodsRecord) -> u64 {
    let activities: usize = record
        .activities
        .iter()
        .map(|a| size_of::<Activity>() + (a.city_ids.len() + a.store_ids.len()) * size_of::<u64>())
        .sum();
    (size_of::<GoodsRecord>() + record.currency.len() + activities) as u64
}

/// Fixed overhead counted per entry (key, stamps, moka's bookkeeping).
const ENTRY_OVERHEAD: u64 = 96;

pub(crate) struct MemoryCache {
    cache: moka::future::Cache<GoodsId, Entry>,
    settings: Live<CacheSettings>,
    /// Bumped by every invalidation, before it removes anything: a fetch
    /// that began under an older generation may have read what the
    /// invalidation announced as replaced, so its answers are not kept
    /// (see [`MemoryCache::insert_since`]).
    generation: AtomicU64,
}

impl MemoryCache {
    pub fn new(settings: Live<CacheSettings>) -> MemoryCache {
        let max_bytes = settings.load().max_bytes;
        let cache = moka::future::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_: &GoodsId, e: &Entry| {
                let bytes = ENTRY_OVERHEAD + e.record.as_deref().map_or(0, estimated_bytes);
                u32::try_from(bytes).unwrap_or(u32::MAX)
            })
            .expire_after(KeepFor)
            .build();
        MemoryCache { cache, settings, generation: AtomicU64::new(0) }
    }

    /// The invalidation generation now: taken by a fetch before it asks the
    /// tiers, passed back to [`MemoryCache::insert_since`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    pub fn settings(&self) -> &Live<CacheSettings> {
        &self.settings
    }

    /// The entry for `id` while it is fresh or may still be served stale.
    pub async fn get(&self, id: GoodsId, now: Instant) -> Option<Entry> {
        self.cache.get(&id).await.filter(|e| e.is_usable_stale(now))
    }

    /// Stores what a tier answered: a record (fresh for `ttl`, usable stale
    /// for `stale_grace` more) or not-found (fresh for `negative_ttl`, never
    /// served stale: that would keep unknown ids around for the whole grace).
    /// As [`MemoryCache::insert`] for an answer fetched since `generation`:
    /// when an invalidation came in between, the answer is not kept (it may
    /// predate the change the invalidation announced). Inserting first and
    /// checking after closes the race with an invalidation that runs
    /// between the check and the insert: it bumps before it removes, so
    /// either this check sees its bump, or its removal comes after the insert.
    pub async fn insert_since(&self, id: GoodsId, record: Option<SharedRecord>, tier: TierId, generation: u64) {
        if self.generation() != generation {
            return;
        }
        self.insert(id, record, tier).await;
        if self.generation() != generation {
            self.cache.invalidate(&id).await;
        }
    }

    pub async fn insert(&self, id: GoodsId, record: Option<SharedRecord>, tier: TierId) {
        let settings = self.settings.load();
        let now = Instant::now();
        let (fresh, grace) = match record {
            Some(_) => (settings.ttl, settings.stale_grace),
            None => (settings.negative_ttl, Duration::ZERO),
        };
        let entry =
            Entry { record, tier, fresh_until: now + fresh, stale_until: now + fresh + grace, keep: fresh + grace };
        drop(settings);
        self.cache.insert(id, entry).await;
    }

    pub async fn invalidate(&self, id: GoodsId) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.cache.invalidate(&id).await;
    }

    /// Drops every entry (moka removes them lazily but never returns them
    /// after this call).
    pub fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.cache.invalidate_all();
    }

    /// Entries held (after moka's pending maintenance; approximate).
    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }

    #[cfg(test)]
    pub async fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks().await;
    }

    pub fn weighted_size(&self) -> u64 {
        self.cache.weighted_size()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::conformance::fixture;
    use crate::settings::live;

    #[tokio::test(start_paused = true)]
    async fn entries_are_fresh_then_stale_then_gone() {
        let settings = CacheSettings {
            ttl: Duration::from_secs(1),
            negative_ttl: Duration::from_millis(200),
            stale_grace: Duration::from_secs(5),
            ..CacheSettings::default()
        };
        let cache = MemoryCache::new(live(settings));
        let record = fixture()[0].clone();
        cache.insert(101, Some(record), TierId::Sql).await;
        cache.insert(9_001, None, TierId::Sql).await;
        let now = Instant::now();
        assert!(cache.get(101, now).await.unwrap().is_fresh(now));
        assert!(cache.get(9_001, now).await.unwrap().is_fresh(now));

        tokio::time::advance(Duration::from_secs(2)).await;
        let now = Instant::now();
        let stale = cache.get(101, now).await.expect("kept for the grace");
        assert!(!stale.is_fresh(now));
        assert!(cache.get(9_001, now).await.is_none(), "not-found has no grace");

        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(cache.get(101, Instant::now()).await.is_none(), "past the grace");
    }

    #[tokio::test]
    async fn an_answer_fetched_before_an_invalidation_is_not_kept() {
        let cache = MemoryCache::new(live(CacheSettings::default()));
        let record = fixture()[0].clone();
        let before = cache.generation();
        cache.invalidate(101).await;
        cache.insert_since(101, Some(record.clone()), TierId::Redis, before).await;
        assert!(cache.get(101, Instant::now()).await.is_none(), "fetched before the invalidation");
        let after = cache.generation();
        cache.insert_since(101, Some(record), TierId::Redis, after).await;
        assert!(cache.get(101, Instant::now()).await.is_some(), "fetched after it: kept");
        cache.invalidate_all();
        assert!(cache.get(101, Instant::now()).await.is_none(), "all dropped");
    }

    #[tokio::test]
    async fn weight_follows_the_activity_count_and_is_bounded() {
        let records = fixture();
        let small = estimated_bytes(&records[1]);
        let big = estimated_bytes(&records[3]);
        assert!(big > small * 20, "60 activities weigh far more than none: {big} vs {small}");

        let cache = MemoryCache::new(live(CacheSettings { max_bytes: 4 * big, ..CacheSettings::default() }));
        for id in 0..100 {
            let mut r = (*records[3]).clone();
            r.goods_id = id;
            cache.insert(id, Some(Arc::new(r)), TierId::Sql).await;
        }
        cache.run_pending_tasks().await;
        assert!(cache.weighted_size() <= 4 * big, "size {} above bound {}", cache.weighted_size(), 4 * big);
        assert!(cache.entry_count() <= 4);
    }

    #[test]
    fn settings_reject_unknown_keys_and_zero_ttl() {
        let s: CacheSettings = serde_json::from_str(r#"{"ttl_ms": 500, "stale_grace_ms": 0}"#).unwrap();
        assert_eq!((s.ttl, s.stale_grace), (Duration::from_millis(500), Duration::ZERO));
        s.validate().unwrap();
        assert!(serde_json::from_str::<CacheSettings>(r#"{"ttl": 500}"#).is_err());
        let zero = CacheSettings { ttl: Duration::ZERO, ..CacheSettings::default() };
        assert_eq!(zero.validate().unwrap_err().field, "ttl_ms");
    }
}
