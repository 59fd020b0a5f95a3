//! Seed 001's three loads: full (completeness), incremental (timeliness),
//! named goods (an emergency rewrite), and the drain of the retry queue.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;

use futures::TryStreamExt;
use pricing_engine::guard::Breach;
use pricing_record::GoodsId;
use pricing_store_sql::projector::{Cursor, RetryEntry};

use crate::Projector;
use crate::error::ProjectorError;
use crate::progress::Progress;
use crate::writer::{Op, Scope, TargetCounts, shared};

/// The incremental feed's cursor.
pub const INCREMENTAL: &str = "incremental";

/// What a full sync, an incremental pass or a named rewrite did.
#[derive(Debug, Clone, Default)]
pub struct SyncReport {
    /// Goods records read from the source and written.
    pub goods: u64,
    pub pages: u64,
    /// A full sync that continued after this goods id (a saved cursor).
    pub resumed_after: Option<GoodsId>,
    /// Named goods that do not exist in the source (removed from the stores).
    pub absent: Vec<GoodsId>,
    pub targets: BTreeMap<String, TargetCounts>,
    /// The retry drain run at the end of an incremental pass.
    pub drain: DrainReport,
    /// The control file paused the projector: the pass stopped before a
    /// batch (the watermark stays after the last batch written) and did not
    /// drain the retry queue.
    pub paused: bool,
    /// Every guard breach (`[guard]` of the control file) of the records
    /// written, each also counted and logged (`crate::rehearse::report_breach`).
    pub guard_breaches: Vec<Breach>,
}

/// What one drain of the retry queue did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// Queued writes that were due.
    pub due: u64,
    /// Written (or removed) and dropped from the queue.
    pub done: u64,
    /// Failed again; their next attempt moved later.
    pub failed: u64,
    /// Not tried: their cluster is excluded by the write mode, unknown to
    /// this config, or the goods row cannot be read.
    pub left: u64,
    /// Queue depth after the drain.
    pub depth: u64,
}

/// The cursor of a full sync over `scope`: one per set of clusters, so
/// that the recovery of `redis-b` does not resume a sync of everything.
pub fn full_cursor_name(scope: &Scope) -> String {
    match scope {
        Scope::All => "full".to_owned(),
        Scope::Only(names) => {
            let mut names = names.clone();
            names.sort();
            names.dedup();
            format!("full:{}", names.join(","))
        }
    }
}

impl Projector {
    /// Streams every goods (soft-deleted ones as tombstones) from the source
    /// in pages and writes each page to `scope`. Resumable: the cursor is
    /// saved after each page (in page order, also with several pages in
    /// flight), and a later run continues after it unless `restart`.
    pub async fn full(&self, scope: &Scope, restart: bool, progress: &Progress) -> Result<SyncReport, ProjectorError> {
        let name = full_cursor_name(scope);
        let started = self.now_ms();
        let saved = if restart { None } else { self.source.cursor(&name).await? };
        if saved.is_none() && scope == &Scope::All && self.source.cursor(INCREMENTAL).await?.is_none() {
            // Changes committed after this moment are the incremental feed's;
            // the overlap covers clocks that disagree a little.
            let from = started.saturating_sub(self.config.sync.overlap_ms as i64).max(0);
            self.source.save_cursor(INCREMENTAL, Cursor { position_ms: from, after_id: 0 }, started).await?;
        }
        let mut report = SyncReport { resumed_after: saved.map(|c| c.after_id), ..SyncReport::default() };
        progress.set_total(self.source.goods_count().await?);
        let page_size = self.config.sync.page_size;
        let source = &self.source;
        let pages = futures::stream::try_unfold(Some(saved.map_or(0, |c| c.after_id)), move |after| async move {
            let Some(after) = after else { return Ok(None) };
            let ids = source.goods_page(after, page_size).await?;
            let Some(&last) = ids.last() else { return Ok(None) };
            let next = (ids.len() as u32 >= page_size).then_some(last);
            Ok::<_, ProjectorError>(Some((ids, next)))
        });
        let written = pages
            .map_ok(|ids| async move {
                let records = shared(self.source.load(&ids).await?);
                let outcome = self.put(&records, scope).await?;
                let breaches = self.report_guard(&records);
                Ok::<_, ProjectorError>((
                    ids.len() as u64,
                    *ids.last().unwrap_or(&0),
                    records.len() as u64,
                    outcome,
                    breaches,
                ))
            })
            .try_buffered(self.config.sync.concurrency);
        let mut written = std::pin::pin!(written);
        while let Some((page_len, last, goods, outcome, breaches)) = written.try_next().await? {
            report.guard_breaches.extend(breaches);
            self.source.save_cursor(&name, Cursor { position_ms: 0, after_id: last }, self.now_ms()).await?;
            report.pages += 1;
            report.goods += goods;
            outcome.add_to(&mut report.targets);
            progress.advance(page_len, last);
        }
        progress.finish();
        self.source.clear_cursor(&name).await?;
        tracing::info!(cursor = %name, goods = report.goods, pages = report.pages, "full sync done");
        Ok(report)
    }

    /// One incremental pass: every goods changed since the watermark (less
    /// the overlap), written everywhere, the watermark moved; then one drain
    /// of the retry queue. Before each batch the pass asks the control file
    /// whether the projector is paused, and if so stops there.
    pub async fn incremental_pass(&self) -> Result<SyncReport, ProjectorError> {
        let stored = self.source.cursor(INCREMENTAL).await?.unwrap_or_default();
        let overlap = self.config.sync.overlap_ms as i64;
        let (mut at_ms, mut after) = if overlap > 0 {
            (stored.position_ms.saturating_sub(overlap).max(0), 0)
        } else {
            (stored.position_ms, stored.after_id)
        };
        let mut mark = (stored.position_ms, stored.after_id);
        let mut report = SyncReport::default();
        let page_size = self.config.sync.page_size;
        let mut lag_ms: Option<i64> = None;
        loop {
            if self.paused() {
                report.paused = true;
                break;
            }
            let page = self.source.changed_since(at_ms, after, page_size).await?;
            let Some(&(last_id, last_ms)) = page.last() else { break };
            let ids: Vec<GoodsId> = page.iter().map(|(id, _)| *id).collect();
            // The oldest change of this batch not written before (the
            // overlap re-reads older ones): the projector's lag.
            let oldest_new = page
                .iter()
                .filter(|(id, ms)| (*ms, *id) > (stored.position_ms, stored.after_id))
                .map(|(_, ms)| *ms)
                .min();
            let records = shared(self.source.load(&ids).await?);
            let outcome = self.put(&records, &Scope::All).await?;
            if let Some(oldest) = oldest_new {
                lag_ms = Some(self.now_ms().saturating_sub(oldest).max(0));
            }
            report.guard_breaches.extend(self.report_guard(&records));
            outcome.add_to(&mut report.targets);
            report.goods += records.len() as u64;
            report.pages += 1;
            (at_ms, after) = (last_ms, last_id);
            if (last_ms, last_id) > mark {
                mark = (last_ms, last_id);
                self.source
                    .save_cursor(INCREMENTAL, Cursor { position_ms: last_ms, after_id: last_id }, self.now_ms())
                    .await?;
            }
            if (page.len() as u32) < page_size {
                break;
            }
        }
        if !report.paused {
            // Seconds from a change's commit to its write into the read
            // stores, for the last batch's oldest new change; 0 once a pass
            // finds nothing new (caught up).
            metrics::gauge!("pricing_projector_lag_seconds").set(lag_ms.unwrap_or(0) as f64 / 1000.0);
            report.drain = self.drain_retries().await?;
        }
        // A pass that found nothing is the common case at a short poll
        // interval: logged at debug, not ten lines a second.
        let level_info = report.goods > 0 || report.paused || report.drain.due > 0;
        macro_rules! pass_done {
            ($level:ident) => {
                tracing::$level!(
                    paused = report.paused,
                    goods = report.goods,
                    watermark_ms = mark.0,
                    watermark_id = mark.1,
                    drained = report.drain.done,
                    queued = report.drain.depth,
                    "incremental pass done"
                )
            };
        }
        if level_info {
            pass_done!(info);
        } else {
            pass_done!(debug);
        }
        Ok(report)
    }

    /// Incremental passes every poll interval until `shutdown` resolves (or
    /// one pass when `once`). A failed pass is logged and tried again at
    /// the next interval; with `once` it is the result.
    pub async fn run_incremental(&self, once: bool, shutdown: impl Future<Output = ()>) -> Result<(), ProjectorError> {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let started = std::time::Instant::now();
            let pass = self.incremental_pass().await;
            metrics::histogram!("pricing_projector_pass_seconds").record(started.elapsed().as_secs_f64());
            match pass {
                Ok(_) => {}
                Err(error) if once => return Err(error),
                Err(error) => tracing::error!(%error, "incremental pass failed; trying again at the next interval"),
            }
            if once {
                return Ok(());
            }
            let pause = std::time::Duration::from_millis(self.config.sync.poll_interval_ms);
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = &mut shutdown => return Ok(()),
            }
        }
    }

    /// Rewrites the named goods now (seed 001's "指定数据": lost or wrong
    /// entries fixed at once). A goods the source does not have is removed
    /// from the stores.
    pub async fn sync_goods(&self, ids: &[GoodsId], scope: &Scope) -> Result<SyncReport, ProjectorError> {
        let mut report = SyncReport::default();
        for chunk in ids.chunks(self.config.sync.page_size as usize) {
            let records = shared(self.source.load(chunk).await?);
            let found: HashSet<GoodsId> = records.iter().map(|r| r.goods_id).collect();
            let outcome = self.put(&records, scope).await?;
            report.guard_breaches.extend(self.report_guard(&records));
            outcome.add_to(&mut report.targets);
            report.goods += records.len() as u64;
            report.pages += 1;
            let missing: Vec<GoodsId> = chunk.iter().copied().filter(|id| !found.contains(id)).collect();
            if missing.is_empty() {
                continue;
            }
            let existing: HashSet<GoodsId> = self.source.existing_goods(&missing).await?.into_iter().collect();
            let absent: Vec<GoodsId> = missing.into_iter().filter(|id| !existing.contains(id)).collect();
            for id in existing {
                tracing::warn!(goods_id = id, "goods row cannot be read as a record; left alone");
            }
            let outcome = self.remove(&absent, scope).await?;
            outcome.add_to(&mut report.targets);
            report.absent.extend(absent);
        }
        Ok(report)
    }

    /// Tries every due queued write once: the CURRENT record is read from the
    /// source and written to the queued cluster (or removed there when the
    /// goods no longer exists). Success drops the entry; failure moves its
    /// next attempt later (doubling), counts and logs it.
    pub async fn drain_retries(&self) -> Result<DrainReport, ProjectorError> {
        let now = self.now_ms();
        let due = self.source.due_retries(now, self.config.retry.drain_limit).await?;
        let mut report = DrainReport { due: due.len() as u64, ..DrainReport::default() };
        let mut by_target: BTreeMap<String, Vec<RetryEntry>> = BTreeMap::new();
        for entry in due {
            by_target.entry(entry.target.clone()).or_default().push(entry);
        }
        for (target, entries) in by_target {
            let Some((pair, cluster, included)) = self.target(&target) else {
                tracing::warn!(store = %target, entries = entries.len(), "queued writes for a cluster this config does not have");
                report.left += entries.len() as u64;
                continue;
            };
            if !included {
                report.left += entries.len() as u64;
                continue;
            }
            for chunk in entries.chunks(self.config.sync.page_size as usize) {
                let ids: Vec<GoodsId> = chunk.iter().map(|e| e.goods_id).collect();
                let records = shared(self.source.load(&ids).await?);
                let found: HashSet<GoodsId> = records.iter().map(|r| r.goods_id).collect();
                let missing: Vec<GoodsId> = ids.iter().copied().filter(|id| !found.contains(id)).collect();
                let existing: HashSet<GoodsId> = self.source.existing_goods(&missing).await?.into_iter().collect();
                let absent: Vec<GoodsId> = missing.iter().copied().filter(|id| !existing.contains(id)).collect();
                report.left += existing.len() as u64;

                let put = self.write_one(pair, cluster, Op::Put(&records)).await;
                let removed = self.write_one(pair, cluster, Op::Remove(&absent)).await;
                for (result, items) in [
                    (put, records.iter().map(|r| (r.goods_id, r.version)).collect::<Vec<_>>()),
                    (removed.map(|_| TargetCounts::default()), absent.iter().map(|id| (*id, u64::MAX)).collect()),
                ] {
                    if items.is_empty() {
                        continue;
                    }
                    match result {
                        Ok(_) => {
                            for (goods_id, version) in &items {
                                self.source.retry_succeeded(&target, *goods_id, *version).await?;
                            }
                            report.done += items.len() as u64;
                            metrics::counter!("pricing_projector_retry_drained_total", "store" => target.clone(), "outcome" => "done")
                                .increment(items.len() as u64);
                        }
                        Err(error) => {
                            metrics::counter!("pricing_projector_write_failures_total", "store" => target.clone())
                                .increment(items.len() as u64);
                            metrics::counter!("pricing_projector_retry_drained_total", "store" => target.clone(), "outcome" => "failed")
                                .increment(items.len() as u64);
                            tracing::error!(store = %target, records = items.len(), %error, "queued write failed again");
                            for (goods_id, _) in &items {
                                let attempts = chunk.iter().find(|e| e.goods_id == *goods_id).map_or(1, |e| e.attempts);
                                let tries_in_queue = attempts.saturating_sub(self.config.retry.attempts) + 1;
                                let next = now
                                    .saturating_add(self.config.retry.queue_backoff(tries_in_queue).as_millis() as i64);
                                self.source
                                    .retry_failed(&target, *goods_id, &error.to_string(), next, self.now_ms())
                                    .await?;
                            }
                            report.failed += items.len() as u64;
                        }
                    }
                }
            }
        }
        report.depth = self.report_queue_depth().await.unwrap_or(0);
        if report.due > 0 {
            tracing::info!(
                due = report.due,
                done = report.done,
                failed = report.failed,
                left = report.left,
                depth = report.depth,
                "retry queue drained"
            );
        }
        Ok(report)
    }
}
