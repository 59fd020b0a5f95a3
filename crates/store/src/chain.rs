//! The read chain: memory, then each configured tier in order, one round
//! trip per tier for the whole batch, concurrent misses coalesced.
//!
//! A call first answers what the memory cache holds fresh. The ids left are
//! matched against the in-flight map: an id another call is already fetching
//! waits for that fetch (counted in `pricing_chain_coalesced_total`); the rest
//! are registered as in flight and fetched as ONE batch, in a task of their
//! own so that a caller giving up does not abandon the other waiters. That
//! batch walks the tiers (for example `[redis pair, hbase pair]`, or `[sql]`
//! for the embedded default): each tier gets one fetch with the ids no
//! earlier tier answered; a tombstone answers "not found" and ends the search
//! for its id; a tier that fails passes its ids on to the next one. Records a
//! later tier found are written back to the earlier tiers that have a writer
//! and did not fail in this batch, in the background (versioned puts, so an
//! older copy never wins). Every answer is cached; ids that no tier holds
//! are cached as not-found briefly.
//! When the tiers fail for an id the cache still holds within its stale
//! grace, that record is served with `stale = true`; otherwise the call fails
//! with the store error.
//!
//! A chain may run without a memory cache ([`TieredReader::uncached`]: the
//! detail server by default): then every call reaches the tiers (still
//! coalesced), nothing is negatively cached and nothing can be served stale.
//!
//! The caller's [`Deadline`] ([`TieredReader::get_many_within`]) bounds the
//! batch a call starts (each tier is asked within what is left, through
//! [`RecordStore::fetch_within`]) and each caller's wait for a batch it
//! joined: a caller out of time gets its stale records, or the error
//! [`StoreErrorKind::DeadlineExceeded`](crate::StoreErrorKind). A batch
//! runs under the deadline of the call that started it; a caller that joined
//! it with more time left and sees it end on that deadline gets a `Timeout`.
//!
//! A small window remains where a caller checks the cache just before a batch
//! completes and registers after it left the in-flight map: it fetches again.
//! That costs one extra fetch, never a wrong answer.
//!
//! Metrics: `pricing_chain_hits_total{tier}` and `pricing_chain_misses_total{tier}`
//! (tier `memory` for the cache), `pricing_chain_tier_errors_total{tier, kind}`,
//! `pricing_chain_coalesced_total`, `pricing_chain_stale_served_total`,
//! `pricing_chain_write_back_total{tier, result}`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use pricing_record::GoodsId;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::cache::{CacheSettings, MemoryCache};
use crate::ids::TierId;
use crate::settings::Live;
use crate::{Deadline, RecordStore, RecordWriter, SharedRecord, StoreError, StoreErrorKind};

/// One step of the chain.
#[derive(Clone)]
pub struct Tier {
    /// Which tier this is: what the chain's config lists and answers carry;
    /// its spelling is the `tier` metric label.
    pub id: TierId,
    pub store: Arc<dyn RecordStore>,
    /// Where records found by a later tier are written back; `None` = never.
    pub write_back: Option<Arc<dyn RecordWriter>>,
}

impl Tier {
    /// A read-only tier.
    pub fn new(id: TierId, store: Arc<dyn RecordStore>) -> Tier {
        Tier { id, store, write_back: None }
    }

    pub fn with_write_back(mut self, writer: Arc<dyn RecordWriter>) -> Tier {
        self.write_back = Some(writer);
        self
    }
}

/// Who answered for an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The in-process cache.
    Memory,
    /// This tier, in this call (or in the fetch this call joined).
    Tier(TierId),
}

/// The answer for one goods id.
#[derive(Debug, Clone)]
pub struct Lookup {
    pub goods_id: GoodsId,
    /// The live record; `None` when no tier holds the id or it is a tombstone.
    pub record: Option<SharedRecord>,
    pub source: Source,
    /// Served from memory past its ttl because every tier failed.
    pub stale: bool,
    /// Until when the memory cache holds this answer fresh (a lower bound
    /// for an answer a tier gave in this call); `None` when it is stale or
    /// the chain has no cache. A layer in front of the chain may answer the
    /// id itself until then, as the cache would.
    pub fresh_until: Option<Instant>,
}

/// The chain cannot be built from its configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("the chain has no tiers")]
    NoTiers,
    #[error("tier {0} is configured but no such store was built")]
    UnknownTier(TierId),
    #[error("tier {0} is listed twice")]
    DuplicateTier(TierId),
}

/// What one batch fetch produced: an answer per id it resolved; the ids it
/// could not resolve failed with `error`.
struct BatchResult {
    resolved: HashMap<GoodsId, (Option<SharedRecord>, TierId)>,
    error: Option<StoreError>,
}

impl BatchResult {
    fn get(&self, id: GoodsId) -> Result<&(Option<SharedRecord>, TierId), StoreError> {
        self.resolved.get(&id).ok_or_else(|| {
            self.error.clone().unwrap_or_else(|| StoreError::unavailable("chain", "fetch ended without an answer"))
        })
    }
}

type Batch = Shared<BoxFuture<'static, Arc<BatchResult>>>;

/// The list server's read path: memory cache, then tiers. Cheap to clone.
#[derive(Clone)]
pub struct TieredReader {
    inner: Arc<Inner>,
}

struct Inner {
    tiers: Vec<Tier>,
    /// `None`: no memory cache (every call reaches the tiers).
    cache: Option<MemoryCache>,
    inflight: Mutex<HashMap<GoodsId, Batch>>,
    write_backs_pending: AtomicUsize,
    write_backs_idle: Notify,
    /// Layers in front of the chain (the list server's price memo), told
    /// after the cache of every invalidation.
    followers: crate::Invalidators,
}

impl TieredReader {
    /// A chain over `tiers`, asked in order.
    pub fn new(tiers: Vec<Tier>, cache: Live<CacheSettings>) -> Result<TieredReader, ChainError> {
        TieredReader::build(tiers, Some(cache))
    }

    /// A chain over `tiers` without a memory cache: no fresh hits, no
    /// negative caching, no stale answers; coalescing and write-back stay.
    pub fn uncached(tiers: Vec<Tier>) -> Result<TieredReader, ChainError> {
        TieredReader::build(tiers, None)
    }

    fn build(tiers: Vec<Tier>, cache: Option<Live<CacheSettings>>) -> Result<TieredReader, ChainError> {
        if tiers.is_empty() {
            return Err(ChainError::NoTiers);
        }
        let mut seen = HashSet::new();
        if let Some(dup) = tiers.iter().find(|t| !seen.insert(t.id)) {
            return Err(ChainError::DuplicateTier(dup.id));
        }
        Ok(TieredReader {
            inner: Arc::new(Inner {
                tiers,
                cache: cache.map(MemoryCache::new),
                inflight: Mutex::new(HashMap::new()),
                write_backs_pending: AtomicUsize::new(0),
                write_backs_idle: Notify::new(),
                followers: crate::Invalidators::new(),
            }),
        })
    }

    /// The chain as configuration lists it (`tiers = ["redis", "hbase"]`),
    /// picked from the tiers the server built.
    pub fn from_ids(
        ids: &[TierId],
        available: impl IntoIterator<Item = Tier>,
        cache: Live<CacheSettings>,
    ) -> Result<TieredReader, ChainError> {
        let mut available: HashMap<TierId, Tier> = available.into_iter().map(|t| (t.id, t)).collect();
        let mut tiers = Vec::with_capacity(ids.len());
        for &id in ids {
            match available.remove(&id) {
                Some(tier) => tiers.push(tier),
                None if tiers.iter().any(|t: &Tier| t.id == id) => return Err(ChainError::DuplicateTier(id)),
                None => return Err(ChainError::UnknownTier(id)),
            }
        }
        TieredReader::new(tiers, cache)
    }

    pub fn tiers(&self) -> impl Iterator<Item = TierId> + '_ {
        self.inner.tiers.iter().map(|t| t.id)
    }

    /// The live cache settings (`None` without a cache); `store` a new
    /// value to change lifetimes.
    pub fn cache_settings(&self) -> Option<&Live<CacheSettings>> {
        self.inner.cache.as_ref().map(MemoryCache::settings)
    }

    /// Entries in the memory cache (approximate: moka updates it lazily).
    pub fn cache_entries(&self) -> u64 {
        self.inner.cache.as_ref().map_or(0, MemoryCache::entry_count)
    }

    /// Estimated bytes held by the memory cache (approximate, as above).
    pub fn cache_bytes(&self) -> u64 {
        self.inner.cache.as_ref().map_or(0, MemoryCache::weighted_size)
    }

    /// Drops cached answers, e.g. after an operator repaired records.
    /// The followers of [`TieredReader::on_invalidate`] are told after the
    /// cache dropped the ids: a layer in front that read the old copy just
    /// before is still told.
    pub async fn invalidate(&self, ids: &[GoodsId]) {
        if let Some(cache) = &self.inner.cache {
            for &id in ids {
                cache.invalidate(id).await;
            }
        }
        crate::Invalidate::invalidate(&self.inner.followers, ids).await;
    }

    /// Tells `follower` of every later invalidation, after this chain's own
    /// cache (one mechanism for every cache: [`crate::Invalidate`]).
    pub fn on_invalidate(&self, follower: Arc<dyn crate::Invalidate>) {
        self.inner.followers.add(follower);
    }

    /// Drops every cached answer, then the followers' (see
    /// [`crate::Invalidate::invalidate_all`]).
    pub async fn invalidate_all(&self) {
        if let Some(cache) = &self.inner.cache {
            cache.invalidate_all();
        }
        crate::Invalidate::invalidate_all(&self.inner.followers).await;
    }

    /// Resolves once no write-back is running (shutdown, tests).
    pub async fn write_backs_settled(&self) {
        loop {
            let idle = self.inner.write_backs_idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.inner.write_backs_pending.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }

    /// One answer per distinct id, in the order of first appearance;
    /// tombstones come back as `record: None`. Fails only when some id could
    /// be answered neither by a tier nor, stale, by memory.
    pub async fn get_many(&self, ids: &[GoodsId]) -> Result<Vec<Lookup>, StoreError> {
        self.get_many_within(ids, None).await
    }

    /// As [`TieredReader::get_many`], for a caller who stops waiting at
    /// `deadline` (see the module doc).
    pub async fn get_many_within(
        &self,
        ids: &[GoodsId],
        deadline: Option<Deadline>,
    ) -> Result<Vec<Lookup>, StoreError> {
        let mut lookups = self.get_many_raw(ids, deadline).await?;
        for l in &mut lookups {
            if l.record.as_ref().is_some_and(|r| r.is_tombstone()) {
                l.record = None;
            }
        }
        Ok(lookups)
    }

    /// As [`TieredReader::get_many`], with tombstones left in `record`.
    async fn get_many_raw(&self, ids: &[GoodsId], deadline: Option<Deadline>) -> Result<Vec<Lookup>, StoreError> {
        let ids = distinct(ids);
        let inner = &self.inner;
        let now = Instant::now();
        let mut answers: Vec<Option<Lookup>> = vec![None; ids.len()];
        let mut stale = HashMap::new();
        let mut missing = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            let cached = match &inner.cache {
                Some(cache) => cache.get(id, now).await,
                None => None,
            };
            match cached {
                Some(entry) if entry.is_fresh(now) => {
                    answers[i] = Some(lookup(id, entry.record, Source::Memory, false, Some(entry.fresh_until)));
                }
                Some(entry) => {
                    stale.insert(id, entry);
                    missing.push(i);
                }
                None => missing.push(i),
            }
        }
        let hits = (ids.len() - missing.len()) as u64;
        if hits > 0 {
            metrics::counter!("pricing_chain_hits_total", "tier" => "memory").increment(hits);
        }
        if missing.is_empty() {
            return Ok(answers.into_iter().flatten().collect());
        }
        metrics::counter!("pricing_chain_misses_total", "tier" => "memory").increment(missing.len() as u64);

        // Join fetches already in flight; register the rest as one new batch.
        let mut waits: Vec<(usize, Batch)> = Vec::with_capacity(missing.len());
        {
            let mut inflight = inner.inflight.lock().unwrap_or_else(|p| p.into_inner());
            let mut mine = Vec::new();
            for &i in &missing {
                match inflight.get(&ids[i]) {
                    Some(batch) => waits.push((i, batch.clone())),
                    None => mine.push(i),
                }
            }
            let coalesced = waits.len() as u64;
            if coalesced > 0 {
                metrics::counter!("pricing_chain_coalesced_total").increment(coalesced);
            }
            if !mine.is_empty() {
                let batch_ids: Vec<GoodsId> = mine.iter().map(|&i| ids[i]).collect();
                let batch = Arc::clone(inner).start_batch(batch_ids.clone(), deadline);
                for (&i, id) in mine.iter().zip(batch_ids) {
                    inflight.insert(id, batch.clone());
                    waits.push((i, batch.clone()));
                }
            }
        }

        // A tier's answer was cached after this call missed memory: fresh at
        // least until `now + ttl`.
        let cached_until = inner.cache.as_ref().map(|c| now + c.settings().load().ttl);
        let mut done: Vec<(Batch, Arc<BatchResult>)> = Vec::new();
        for (i, batch) in waits {
            let result = match done.iter().find(|(b, _)| b.ptr_eq(&batch)) {
                Some((_, result)) => Arc::clone(result),
                None => {
                    let result = wait(batch.clone(), deadline).await;
                    done.push((batch, Arc::clone(&result)));
                    result
                }
            };
            let id = ids[i];
            answers[i] = Some(match result.get(id) {
                Ok((record, tier)) => lookup(id, record.clone(), Source::Tier(*tier), false, cached_until),
                Err(error) => match stale.remove(&id).filter(|e| e.is_usable_stale(Instant::now())) {
                    Some(entry) => {
                        metrics::counter!("pricing_chain_stale_served_total").increment(1);
                        crate::throttled!(
                            |suppressed| tracing::warn!(goods_id = id, tier = %entry.tier, %error, suppressed, "serving a stale record")
                        );
                        lookup(id, entry.record, Source::Memory, true, None)
                    }
                    None => return Err(error),
                },
            });
        }
        Ok(answers.into_iter().flatten().collect())
    }
}

/// Waits for `batch`, at most until `deadline`: a caller out of time stops
/// waiting (the batch goes on for the others and fills the cache). A batch
/// that ended on an earlier caller's deadline is a timeout for a caller who
/// still has time.
async fn wait(batch: Batch, deadline: Option<Deadline>) -> Arc<BatchResult> {
    let result = match deadline {
        None => batch.await,
        Some(deadline) => match tokio::time::timeout_at(deadline.instant(), batch).await {
            Ok(result) => result,
            Err(_) => {
                let error = StoreError::deadline("chain");
                return Arc::new(BatchResult { resolved: HashMap::new(), error: Some(error) });
            }
        },
    };
    let ended_on_another_deadline = result.error.as_ref().is_some_and(|e| e.kind == StoreErrorKind::DeadlineExceeded)
        && !deadline.is_some_and(|d| d.is_expired());
    if !ended_on_another_deadline {
        return result;
    }
    let mut error = result.error.clone().unwrap_or_else(|| StoreError::deadline("chain"));
    error.kind = StoreErrorKind::Timeout;
    Arc::new(BatchResult { resolved: result.resolved.clone(), error: Some(error) })
}

/// `ids` without repeats, in first-occurrence order. Batches are small (at
/// most a few hundred ids) and usually already distinct: a pairwise check
/// costs less there than hashing every id.
fn distinct(ids: &[GoodsId]) -> Vec<GoodsId> {
    if ids.len() <= 64 && ids.iter().enumerate().all(|(i, id)| !ids[..i].contains(id)) {
        return ids.to_vec();
    }
    let mut seen = HashSet::with_capacity(ids.len());
    ids.iter().copied().filter(|id| seen.insert(*id)).collect()
}

fn lookup(
    goods_id: GoodsId,
    record: Option<SharedRecord>,
    source: Source,
    stale: bool,
    fresh_until: Option<Instant>,
) -> Lookup {
    Lookup { goods_id, record, source, stale, fresh_until }
}

/// Takes the batch's ids out of the in-flight map however its task ends.
struct InflightGuard {
    inner: Arc<Inner>,
    ids: Vec<GoodsId>,
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        let mut inflight = self.inner.inflight.lock().unwrap_or_else(|p| p.into_inner());
        for id in &self.ids {
            inflight.remove(id);
        }
    }
}

impl Inner {
    fn start_batch(self: Arc<Inner>, ids: Vec<GoodsId>, deadline: Option<Deadline>) -> Batch {
        let task = tokio::spawn(async move {
            let guard = InflightGuard { inner: Arc::clone(&self), ids };
            let result = self.resolve(&guard.ids, deadline).await;
            drop(guard); // after the cache holds the answers
            Arc::new(result)
        });
        task.map(|joined| {
            joined.unwrap_or_else(|e| {
                Arc::new(BatchResult {
                    resolved: HashMap::new(),
                    error: Some(StoreError::unavailable("chain", format!("fetch task ended: {e}"))),
                })
            })
        })
        .boxed()
        .shared()
    }

    async fn resolve(self: &Arc<Inner>, ids: &[GoodsId], deadline: Option<Deadline>) -> BatchResult {
        let mut remaining: Vec<GoodsId> = ids.to_vec();
        let mut resolved = HashMap::with_capacity(ids.len());
        let mut last_error = None;
        // Tiers that failed in this batch get no write-back: no extra load
        // on a store that is struggling.
        let mut failed = vec![false; self.tiers.len()];
        let generation = self.cache.as_ref().map_or(0, MemoryCache::generation);
        for (t, tier) in self.tiers.iter().enumerate() {
            if remaining.is_empty() {
                break;
            }
            if deadline.is_some_and(|d| d.is_expired()) {
                // The caller is gone: no further tier is asked for it.
                last_error = Some(StoreError::deadline(tier.id.as_str()));
                break;
            }
            let records = match tier.store.fetch_within(&remaining, deadline).await {
                Ok(records) => records,
                Err(error) => {
                    metrics::counter!("pricing_chain_tier_errors_total", "tier" => tier.id.as_str(), "kind" => format!("{:?}", error.kind))
                        .increment(1);
                    crate::throttled!(
                        |suppressed| tracing::warn!(tier = %tier.id, ids = remaining.len(), %error, suppressed, "tier failed, asking the next one")
                    );
                    last_error = Some(error);
                    failed[t] = true;
                    continue;
                }
            };
            last_error = None;
            let wanted: HashSet<GoodsId> = remaining.iter().copied().collect();
            let records: Vec<SharedRecord> = records.into_iter().filter(|r| wanted.contains(&r.goods_id)).collect();
            metrics::counter!("pricing_chain_hits_total", "tier" => tier.id.as_str()).increment(records.len() as u64);
            metrics::counter!("pricing_chain_misses_total", "tier" => tier.id.as_str())
                .increment((remaining.len() - records.len()) as u64);
            if t > 0 && !records.is_empty() {
                self.write_back(
                    self.tiers[..t].iter().zip(&failed).filter(|(_, f)| !**f).map(|(tier, _)| tier),
                    &records,
                );
            }
            for record in records {
                if let Some(cache) = &self.cache {
                    cache.insert_since(record.goods_id, Some(Arc::clone(&record)), tier.id, generation).await;
                }
                resolved.insert(record.goods_id, (Some(record), tier.id));
            }
            remaining.retain(|id| !resolved.contains_key(id));
        }
        // A chain has at least one tier (`TieredReader::new` refuses none).
        if let (None, false, Some(last)) = (&last_error, remaining.is_empty(), self.tiers.last()) {
            for id in remaining {
                if let Some(cache) = &self.cache {
                    cache.insert_since(id, None, last.id, generation).await;
                }
                resolved.insert(id, (None, last.id));
            }
        }
        BatchResult { resolved, error: last_error }
    }

    /// Writes `records` to every earlier tier that takes write-backs, in a
    /// task of its own: the caller does not wait for it.
    fn write_back<'a>(self: &Arc<Inner>, earlier: impl Iterator<Item = &'a Tier>, records: &[SharedRecord]) {
        for tier in earlier {
            let Some(writer) = tier.write_back.clone() else { continue };
            let records = records.to_vec();
            let name = tier.id;
            let inner = Arc::clone(self);
            inner.write_backs_pending.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let result = match writer.put(&records).await {
                    Ok(report) => {
                        tracing::debug!(tier = %name, written = report.written, skipped = report.skipped_older, "write-back");
                        "ok"
                    }
                    Err(error) => {
                        crate::throttled!(
                            |suppressed| tracing::warn!(tier = %name, records = records.len(), %error, suppressed, "write-back failed")
                        );
                        "error"
                    }
                };
                metrics::counter!("pricing_chain_write_back_total", "tier" => name.as_str(), "result" => result)
                    .increment(records.len() as u64);
                if inner.write_backs_pending.fetch_sub(1, Ordering::SeqCst) == 1 {
                    inner.write_backs_idle.notify_waiters();
                }
            });
        }
    }
}

/// The chain as a plain store: found records, tombstones included (as the
/// [`RecordStore`] contract asks), without the per-id detail.
#[async_trait]
impl RecordStore for TieredReader {
    fn name(&self) -> &str {
        "chain"
    }

    async fn fetch(&self, ids: &[GoodsId]) -> Result<Vec<SharedRecord>, StoreError> {
        self.fetch_within(ids, None).await
    }

    async fn fetch_within(&self, ids: &[GoodsId], deadline: Option<Deadline>) -> Result<Vec<SharedRecord>, StoreError> {
        Ok(self.get_many_raw(ids, deadline).await?.into_iter().filter_map(|l| l.record).collect())
    }
}

/// Push invalidation drops the ids from the memory cache; a fetch in flight
/// when it comes does not put its answers back (see `MemoryCache::insert_since`).
#[async_trait]
impl crate::Invalidate for TieredReader {
    async fn invalidate(&self, ids: &[GoodsId]) {
        TieredReader::invalidate(self, ids).await;
    }

    async fn invalidate_all(&self) {
        TieredReader::invalidate_all(self).await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use pricing_record::GoodsRecord;

    use super::*;
    use crate::StoreErrorKind;
    use crate::conformance::{self, fixture, record};
    use crate::fault::{Fault, FaultyStore};
    use crate::settings::live;

    fn settings() -> CacheSettings {
        CacheSettings {
            ttl: Duration::from_secs(1),
            negative_ttl: Duration::from_millis(200),
            stale_grace: Duration::from_secs(10),
            ..CacheSettings::default()
        }
    }

    fn rec(id: GoodsId, version: u64) -> SharedRecord {
        Arc::new(record(id, version, 1_000, vec![]))
    }

    /// redis (empty unless given, takes write-backs) -> hbase.
    fn chain(redis: Vec<SharedRecord>, hbase: Vec<SharedRecord>) -> (TieredReader, Arc<FaultyStore>, Arc<FaultyStore>) {
        let r = FaultyStore::named("redis", redis);
        let h = FaultyStore::named("hbase", hbase);
        let tiers =
            vec![Tier::new(TierId::Redis, r.clone()).with_write_back(r.clone()), Tier::new(TierId::Hbase, h.clone())];
        (TieredReader::new(tiers, live(settings())).unwrap(), r, h)
    }

    /// Yields until `cond` holds; panics after many rounds (no wall clock).
    async fn until(what: &str, mut cond: impl FnMut() -> bool) {
        for _ in 0..10_000 {
            if cond() {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("never happened: {what}");
    }

    fn found(l: &Lookup) -> Option<u64> {
        l.record.as_ref().map(|r| r.version)
    }

    #[test]
    fn distinct_keeps_the_first_occurrence_of_each_id() {
        assert_eq!(distinct(&[3, 1, 2]), vec![3, 1, 2]);
        assert_eq!(distinct(&[3, 1, 3, 2, 1]), vec![3, 1, 2]);
        let long: Vec<GoodsId> = (0..100).chain(0..100).rev().collect();
        assert_eq!(distinct(&long), (0..100).rev().collect::<Vec<_>>(), "the hashed path for long batches");
    }

    #[tokio::test]
    async fn conforms_as_a_record_store() {
        let (reader, _, _) = chain(vec![], fixture());
        conformance::check_reads(&reader, &fixture()).await;
    }

    #[tokio::test(start_paused = true)]
    async fn answers_from_each_tier_then_from_memory() {
        let (reader, r, h) = chain(vec![rec(1, 1)], vec![rec(2, 1)]);
        let got = reader.get_many(&[1, 2, 1]).await.unwrap();
        assert_eq!(got.len(), 2, "duplicates answered once");
        assert_eq!((got[0].goods_id, got[0].source.clone(), found(&got[0])), (1, Source::Tier(TierId::Redis), Some(1)));
        assert_eq!((got[1].goods_id, got[1].source.clone(), found(&got[1])), (2, Source::Tier(TierId::Hbase), Some(1)));
        assert_eq!(r.batches(), vec![vec![1, 2]], "one fetch for the batch at tier 1");
        assert_eq!(h.batches(), vec![vec![2]], "tier 2 only gets what tier 1 lacked");

        let again = reader.get_many(&[1, 2]).await.unwrap();
        assert!(again.iter().all(|l| l.source == Source::Memory && !l.stale && l.record.is_some()));
        assert_eq!((r.fetch_count(), h.fetch_count()), (1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn found_in_a_later_tier_is_written_back_to_the_first() {
        let (reader, r, _h) = chain(vec![], vec![rec(2, 7), Arc::new(GoodsRecord::tombstone(3, 9))]);
        reader.get_many(&[2, 3]).await.unwrap();
        reader.write_backs_settled().await;
        assert_eq!(r.inner().get(2).map(|x| x.version), Some(7));
        assert!(r.inner().get(3).is_some_and(|x| x.is_tombstone()), "tombstones are written back too");

        // Versioned: a write-back never replaces a newer copy.
        let (reader, r2, _) = chain(vec![], vec![rec(4, 10)]);
        r2.inner().put(&[rec(4, 20)]).await.unwrap();
        r2.set_fault(Fault::Fail(StoreErrorKind::Unavailable));
        let got = reader.get_many(&[4]).await.unwrap();
        assert_eq!(found(&got[0]), Some(10));
        reader.write_backs_settled().await;
        assert_eq!(r2.inner().get(4).map(|x| x.version), Some(20));
    }

    #[tokio::test(start_paused = true)]
    async fn not_found_is_cached_briefly() {
        let (reader, r, h) = chain(vec![], vec![]);
        let got = reader.get_many(&[9_001]).await.unwrap();
        assert_eq!((got[0].record.is_none(), got[0].source.clone()), (true, Source::Tier(TierId::Hbase)));
        let got = reader.get_many(&[9_001]).await.unwrap();
        assert_eq!((got[0].record.is_none(), got[0].source.clone()), (true, Source::Memory));
        assert_eq!((r.fetch_count(), h.fetch_count()), (1, 1), "the second call reached no store");

        tokio::time::advance(Duration::from_millis(200)).await;
        reader.get_many(&[9_001]).await.unwrap();
        assert_eq!(r.fetch_count(), 2, "after negative_ttl the stores are asked again");
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_fetch() {
        let (reader, r, h) = chain(vec![rec(1, 1)], vec![rec(2, 1)]);
        r.hold();
        let callers = (0..20).map(|_| reader.get_many(&[1, 2]));
        let (results, ()) = tokio::join!(futures::future::join_all(callers), async {
            until("the first fetch reaches redis", || r.fetch_count() == 1).await;
            r.release();
        });
        for got in results {
            let got = got.unwrap();
            assert_eq!(got.iter().map(found).collect::<Vec<_>>(), vec![Some(1), Some(1)]);
        }
        assert_eq!((r.fetch_count(), h.fetch_count()), (1, 1), "20 callers, one fetch per tier");
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_joins_a_fetch_in_flight_and_fetches_only_the_rest() {
        let (reader, r, _h) = chain(vec![rec(1, 1), rec(2, 1), rec(3, 1)], vec![]);
        r.hold();
        let first = tokio::spawn({
            let reader = reader.clone();
            async move { reader.get_many(&[1, 2]).await }
        });
        until("the first fetch reaches redis", || r.fetch_count() == 1).await;
        let second = tokio::spawn({
            let reader = reader.clone();
            async move { reader.get_many(&[2, 3]).await }
        });
        until("the second fetch reaches redis", || r.fetch_count() == 2).await;
        r.release();
        assert_eq!(first.await.unwrap().unwrap().len(), 2);
        assert_eq!(second.await.unwrap().unwrap().len(), 2);
        assert_eq!(r.batches(), vec![vec![1, 2], vec![3]], "id 2 was joined, not fetched twice");
    }

    #[tokio::test(start_paused = true)]
    async fn cached_ids_are_not_fetched_again() {
        let (reader, r, _h) = chain(vec![rec(1, 1), rec(2, 1), rec(3, 1)], vec![]);
        reader.get_many(&[1]).await.unwrap();
        let got = reader.get_many(&[1, 2, 3]).await.unwrap();
        assert_eq!(got.iter().map(|l| l.source == Source::Memory).collect::<Vec<_>>(), vec![true, false, false]);
        assert_eq!(r.batches(), vec![vec![1], vec![2, 3]], "one fetch for the rest");
    }

    #[tokio::test(start_paused = true)]
    async fn tombstone_is_not_found_and_stops_the_search() {
        let (reader, r, h) = chain(vec![Arc::new(GoodsRecord::tombstone(5, 9))], vec![rec(5, 3)]);
        let got = reader.get_many(&[5]).await.unwrap();
        assert!(got[0].record.is_none());
        assert_eq!(got[0].source, Source::Tier(TierId::Redis));
        assert_eq!((r.fetch_count(), h.fetch_count()), (1, 0), "hbase's older live copy is never asked");
        let got = reader.get_many(&[5]).await.unwrap();
        assert!(got[0].record.is_none() && got[0].source == Source::Memory);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_tier_passes_its_ids_to_the_next() {
        let (reader, r, h) = chain(vec![rec(1, 1)], vec![rec(1, 1), rec(2, 1)]);
        r.set_fault(Fault::Fail(StoreErrorKind::Timeout));
        let got = reader.get_many(&[1, 2, 9_001]).await.unwrap();
        assert_eq!(got.iter().map(|l| l.source.clone()).collect::<Vec<_>>(), vec![Source::Tier(TierId::Hbase); 3]);
        assert_eq!(got.iter().map(found).collect::<Vec<_>>(), vec![Some(1), Some(1), None]);
        assert_eq!(h.batches(), vec![vec![1, 2, 9_001]]);
        reader.write_backs_settled().await;
        assert_eq!(r.put_count(), 0, "no write-back to the tier that just failed");
    }

    #[tokio::test(start_paused = true)]
    async fn stale_is_served_within_grace_when_every_tier_fails() {
        let (reader, r, h) = chain(vec![rec(1, 1)], vec![]);
        reader.get_many(&[1]).await.unwrap();
        r.set_fault(Fault::Fail(StoreErrorKind::Unavailable));
        h.set_fault(Fault::Fail(StoreErrorKind::Timeout));

        let got = reader.get_many(&[1]).await.unwrap();
        assert!(!got[0].stale, "still fresh: no store is asked");
        assert_eq!(r.fetch_count(), 1);

        tokio::time::advance(Duration::from_secs(5)).await;
        let got = reader.get_many(&[1]).await.unwrap();
        assert_eq!((got[0].stale, got[0].source.clone(), found(&got[0])), (true, Source::Memory, Some(1)));
        assert_eq!((r.fetch_count(), h.fetch_count()), (2, 1), "the tiers were tried first");

        tokio::time::advance(Duration::from_secs(6)).await;
        let err = reader.get_many(&[1]).await.unwrap_err();
        assert_eq!((err.store.as_str(), err.kind), ("hbase", StoreErrorKind::Timeout), "the last tier's error");

        let err = reader.get_many(&[2]).await.unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::Timeout, "nothing cached: the call fails");
    }

    #[tokio::test(start_paused = true)]
    async fn a_pair_refused_by_both_breakers_is_still_tried_and_stale_served_within_grace() {
        let a = FaultyStore::named("redis-a", vec![rec(1, 1)]);
        let b = FaultyStore::named("redis-b", vec![rec(1, 1)]);
        let pair = Arc::new(crate::DualStore::new("redis", a.clone(), b.clone(), live(crate::DualSettings::default())));
        let reader = TieredReader::new(vec![Tier::new(TierId::Redis, pair.clone())], live(settings())).unwrap();
        reader.get_many(&[1]).await.unwrap();

        a.set_fault(Fault::Fail(StoreErrorKind::Unavailable));
        b.set_fault(Fault::Fail(StoreErrorKind::Unavailable));
        tokio::time::advance(Duration::from_secs(2)).await;
        for _ in 0..40 {
            let got = reader.get_many(&[1]).await.unwrap();
            assert_eq!((got[0].stale, found(&got[0])), (true, Some(1)), "stale within grace, never an error");
        }
        assert_eq!(pair.breaker(crate::Cluster::A).state(), crate::BreakerState::Open);
        assert_eq!(pair.breaker(crate::Cluster::B).state(), crate::BreakerState::Open);

        let before = a.fetch_count() + b.fetch_count();
        let got = reader.get_many(&[1]).await.unwrap();
        assert!(got[0].stale);
        assert!(a.fetch_count() + b.fetch_count() > before, "with both breakers open the clusters are still asked");

        // A cluster answering again ends the stale answers at the next call.
        a.set_fault(Fault::None);
        let got = reader.get_many(&[1]).await.unwrap();
        assert_eq!((got[0].stale, found(&got[0])), (false, Some(1)));
    }

    #[tokio::test(start_paused = true)]
    async fn the_callers_deadline_bounds_the_tiers_and_stale_is_served_at_it() {
        let (reader, r, h) = chain(vec![rec(1, 1)], vec![rec(1, 1), rec(2, 1)]);
        reader.get_many(&[1]).await.unwrap();
        tokio::time::advance(Duration::from_secs(2)).await;
        r.set_fault(Fault::Delay(Duration::from_secs(10)));
        let started = Instant::now();
        let got = reader.get_many_within(&[1], Some(Deadline::after(Duration::from_millis(100)))).await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_millis(100), "no waiting past the caller's deadline");
        assert_eq!((got[0].stale, found(&got[0])), (true, Some(1)), "stale within grace at the deadline");
        assert_eq!(h.fetch_count(), 0, "the next tier is not asked for a caller out of time");

        let err = reader.get_many_within(&[2], Some(Deadline::after(Duration::from_millis(100)))).await.unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::DeadlineExceeded, "nothing cached: the caller's deadline is the error");
        assert_eq!(h.fetch_count(), 0);

        // Without a deadline the slow tier is waited for (its own budget is
        // its guard's), once the batch cut by the last deadline has left.
        r.set_fault(Fault::None);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        let got = reader.get_many(&[2]).await.unwrap();
        assert_eq!(got[0].source, Source::Tier(TierId::Hbase));
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_cache_every_call_reaches_the_tiers() {
        let r = FaultyStore::named("redis", vec![rec(1, 1)]);
        let h = FaultyStore::named("sql", vec![rec(2, 1)]);
        let tiers = vec![Tier::new(TierId::Redis, r.clone()), Tier::new(TierId::Sql, h.clone())];
        let reader = TieredReader::uncached(tiers).unwrap();
        assert!(reader.cache_settings().is_none());
        for _ in 0..3 {
            let got = reader.get_many(&[1, 2, 9_001]).await.unwrap();
            assert_eq!(got.iter().map(found).collect::<Vec<_>>(), vec![Some(1), Some(1), None]);
            assert_eq!(got[1].source, Source::Tier(TierId::Sql));
        }
        assert_eq!((r.fetch_count(), h.fetch_count()), (3, 3), "no fresh hits, no negative caching");
        h.set_fault(Fault::Fail(StoreErrorKind::Unavailable));
        r.set_fault(Fault::Fail(StoreErrorKind::Unavailable));
        assert!(reader.get_many(&[1]).await.is_err(), "nothing to serve stale");
    }

    #[tokio::test(start_paused = true)]
    async fn cache_settings_are_live() {
        let (reader, r, _h) = chain(vec![rec(1, 1)], vec![]);
        reader.cache_settings().unwrap().store(Arc::new(CacheSettings { ttl: Duration::from_secs(60), ..settings() }));
        reader.get_many(&[1]).await.unwrap();
        tokio::time::advance(Duration::from_secs(30)).await;
        reader.get_many(&[1]).await.unwrap();
        assert_eq!(r.fetch_count(), 1, "the new ttl applied to the entry stored after the change");
        reader.invalidate(&[1]).await;
        reader.get_many(&[1]).await.unwrap();
        assert_eq!(r.fetch_count(), 2);
    }

    #[test]
    fn built_from_the_configured_ids() {
        let sql = Tier::new(TierId::Sql, FaultyStore::named("sql", []));
        let redis = Tier::new(TierId::Redis, FaultyStore::named("redis", []));
        let reader =
            TieredReader::from_ids(&[TierId::Redis, TierId::Sql], [sql.clone(), redis.clone()], live(settings()))
                .unwrap();
        assert_eq!(reader.tiers().collect::<Vec<_>>(), vec![TierId::Redis, TierId::Sql]);
        let err =
            TieredReader::from_ids(&[TierId::Redis, TierId::Hbase], [sql.clone(), redis.clone()], live(settings()));
        assert_eq!(err.err(), Some(ChainError::UnknownTier(TierId::Hbase)));
        let err = TieredReader::from_ids(&[TierId::Sql, TierId::Sql], [sql.clone(), redis], live(settings()));
        assert_eq!(err.err(), Some(ChainError::DuplicateTier(TierId::Sql)));
        let err = TieredReader::new(vec![sql.clone(), sql], live(settings()));
        assert_eq!(err.err(), Some(ChainError::DuplicateTier(TierId::Sql)));
        assert_eq!(TieredReader::from_ids(&[], [], live(settings())).err(), Some(ChainError::NoTiers));
    }
}
