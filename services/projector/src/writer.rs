//! Writing a batch to the clusters: seed 001's dual write, retry and alert.
//!
//! A batch goes to both clusters of every pair through the pair's
//! `DualWriter` (which honours the live write mode: `only_a` / `only_b`
//! skip the other cluster), or, for a recovery (`--only redis-b`), straight
//! to the named clusters. A cluster that fails is tried again in process
//! with a doubling pause (`[retry] attempts`, `backoff_ms`); what still
//! fails is counted (`pricing_projector_write_failures_total{store}`),
//! logged at error level (the alert) and queued durably in the source
//! database (`projector_retry`), which the incremental loop drains. Only
//! when the queue cannot be written does the call fail, so a caller never
//! moves a cursor past a write that was neither done nor queued.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::join_all;
use pricing_record::GoodsId;
use pricing_store::dual::SideWrite;
use pricing_store::{Limits, Meter, RecordWriter, SharedRecord, StoreError, StoreGuard, WriteReport};
use pricing_store_sql::projector::RetryEntry;

use crate::Projector;
use crate::error::ProjectorError;
use crate::targets::{ClusterTarget, PairTarget};

/// Which clusters a write goes to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Scope {
    /// Every pair, each through its dual writer and live write mode.
    #[default]
    All,
    /// Only these clusters ("redis-b"), directly, whatever the write mode
    /// says: seed 001's full sync of a recovered cluster.
    Only(Vec<String>),
}

impl Scope {
    pub fn from_names(names: Vec<String>) -> Scope {
        if names.is_empty() { Scope::All } else { Scope::Only(names) }
    }

    fn names(&self, cluster: &ClusterTarget) -> bool {
        match self {
            Scope::All => true,
            Scope::Only(names) => names.contains(&cluster.name),
        }
    }
}

/// What happened to a batch at one cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Landing {
    /// The cluster holds the batch (written, or already as new or newer).
    Done,
    /// Failed after the retries; queued.
    Queued,
    /// Not written: the write mode or the scope leaves this cluster out.
    Skipped,
}

/// Per-cluster counts of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetCounts {
    pub written: u64,
    pub skipped_older: u64,
    pub removed: u64,
    /// Records (or removals) that failed after the retries and were queued.
    pub queued: u64,
}

impl TargetCounts {
    /// Whether the cluster now holds something it did not before.
    pub fn changed(&self) -> bool {
        self.written > 0 || self.removed > 0
    }

    pub fn add(&mut self, other: &TargetCounts) {
        self.written += other.written;
        self.skipped_older += other.skipped_older;
        self.removed += other.removed;
        self.queued += other.queued;
    }
}

/// Per-cluster outcome of one batch.
#[derive(Debug, Clone, Default)]
pub struct BatchOutcome {
    pub targets: BTreeMap<String, (Landing, TargetCounts)>,
}

impl BatchOutcome {
    /// True when every cluster of every pair holds the batch.
    pub fn everywhere(&self) -> bool {
        self.targets.values().all(|(landing, _)| *landing == Landing::Done)
    }

    pub fn add_to(&self, totals: &mut BTreeMap<String, TargetCounts>) {
        for (name, (_, counts)) in &self.targets {
            totals.entry(name.clone()).or_default().add(counts);
        }
    }
}

/// A write to one cluster.
#[derive(Clone, Copy)]
pub(crate) enum Op<'a> {
    Put(&'a [SharedRecord]),
    Remove(&'a [GoodsId]),
}

impl Op<'_> {
    async fn apply(self, writer: &dyn RecordWriter) -> Result<WriteReport, StoreError> {
        match self {
            Op::Put(records) => writer.put(records).await,
            Op::Remove(ids) => writer.remove(ids).await.map(|()| WriteReport::default()),
        }
    }

    fn len(self) -> usize {
        match self {
            Op::Put(records) => records.len(),
            Op::Remove(ids) => ids.len(),
        }
    }

    /// (goods id, version) of each item, for the queue.
    fn items(self) -> Vec<(GoodsId, u64)> {
        match self {
            Op::Put(records) => records.iter().map(|r| (r.goods_id, r.version)).collect(),
            Op::Remove(ids) => ids.iter().map(|id| (*id, 0)).collect(),
        }
    }

    fn counts(self, report: WriteReport) -> TargetCounts {
        match self {
            Op::Put(_) => TargetCounts {
                written: report.written as u64,
                skipped_older: report.skipped_older as u64,
                ..TargetCounts::default()
            },
            Op::Remove(ids) => TargetCounts { removed: ids.len() as u64, ..TargetCounts::default() },
        }
    }
}

impl Projector {
    /// Versioned put of `records` to the clusters of `scope`.
    pub async fn put(&self, records: &[SharedRecord], scope: &Scope) -> Result<BatchOutcome, ProjectorError> {
        self.write(Op::Put(records), scope).await
    }

    /// Physical removal of `ids` at the clusters of `scope`.
    pub async fn remove(&self, ids: &[GoodsId], scope: &Scope) -> Result<BatchOutcome, ProjectorError> {
        self.write(Op::Remove(ids), scope).await
    }

    pub(crate) async fn write(&self, op: Op<'_>, scope: &Scope) -> Result<BatchOutcome, ProjectorError> {
        let mut outcome = BatchOutcome::default();
        if op.len() == 0 {
            return Ok(outcome);
        }
        let per_pair = join_all(self.targets.pairs.iter().map(|pair| self.write_pair(pair, op, scope))).await;
        for results in per_pair {
            for (name, landing) in results? {
                outcome.targets.insert(name, landing);
            }
        }
        if outcome.targets.values().any(|(_, counts)| counts.changed()) {
            self.announce(op).await;
        }
        Ok(outcome)
    }

    /// Tells the servers' caches that these goods changed (push
    /// invalidation), after every cluster of the batch was written: a
    /// server that drops an id then reads the new record. Only batches that
    /// changed something are announced (the incremental pass re-reads its
    /// overlap window, whose records are skipped as not newer).
    async fn announce(&self, op: Op<'_>) {
        let Some(announcer) = &self.announcer else { return };
        let ids: Vec<GoodsId> = match op {
            Op::Put(records) => records.iter().map(|r| r.goods_id).collect(),
            Op::Remove(ids) => ids.to_vec(),
        };
        announcer.announce(&ids).await;
    }

    async fn write_pair(
        &self,
        pair: &PairTarget,
        op: Op<'_>,
        scope: &Scope,
    ) -> Result<Vec<(String, (Landing, TargetCounts))>, ProjectorError> {
        // First attempt: through the dual writer for a normal write, straight
        // to the named clusters for a recovery.
        let first: [SideWrite<WriteReport>; 2] = match scope {
            Scope::All => {
                let report = match op {
                    Op::Put(records) => pair.pair.writer.put_each(records).await,
                    Op::Remove(ids) => {
                        let r = pair.pair.writer.remove_each(ids).await;
                        let map = |s: SideWrite<()>| match s {
                            SideWrite::Done(()) => SideWrite::Done(WriteReport::default()),
                            SideWrite::Failed(e) => SideWrite::Failed(e),
                            SideWrite::Skipped => SideWrite::Skipped,
                        };
                        pricing_store::dual::DualWriteReport { a: map(r.a), b: map(r.b) }
                    }
                };
                [report.a, report.b]
            }
            Scope::Only(_) => {
                let [a, b] = &pair.clusters;
                let (a, b) = futures::join!(self.direct(pair, a, op, scope), self.direct(pair, b, op, scope));
                [a, b]
            }
        };
        let results = join_all(pair.clusters.iter().zip(first).map(|(cluster, first)| async move {
            let landing = match first {
                SideWrite::Done(report) => (Landing::Done, op.counts(report)),
                SideWrite::Skipped => (Landing::Skipped, TargetCounts::default()),
                SideWrite::Failed(error) => self.retry(pair, cluster, op, error).await?,
            };
            Ok::<_, ProjectorError>((cluster.name.clone(), landing))
        }))
        .await;
        let mut out = Vec::with_capacity(2);
        for (name, (landing, counts)) in results.into_iter().collect::<Result<Vec<_>, _>>()? {
            record_metrics(&name, &counts);
            out.push((name, (landing, counts)));
        }
        Ok(out)
    }

    /// One write straight to a cluster, under that cluster's write timeout.
    async fn direct(
        &self,
        pair: &PairTarget,
        cluster: &ClusterTarget,
        op: Op<'_>,
        scope: &Scope,
    ) -> SideWrite<WriteReport> {
        if !scope.names(cluster) {
            return SideWrite::Skipped;
        }
        match self.attempt(pair, cluster, op).await {
            Ok(report) => SideWrite::Done(report),
            Err(error) => SideWrite::Failed(error),
        }
    }

    /// One write at one cluster through the store guard, as the pair's own
    /// writes go: the cluster's write timeout and the pair's write metrics
    /// (`pricing_dual_write_*{pair, cluster}`).
    async fn attempt(&self, pair: &PairTarget, cluster: &ClusterTarget, op: Op<'_>) -> Result<WriteReport, StoreError> {
        let limits = Limits::timeout(pair.settings().cluster(cluster.cluster).write_timeout);
        let guard = StoreGuard::new(&cluster.name, Meter::PairWrite { pair: Arc::from(pair.pair.name.as_str()) });
        let name = match op {
            Op::Put(_) => "put",
            Op::Remove(_) => "remove",
        };
        Ok(guard.call(name, limits, op.apply(&*cluster.writer)).await?)
    }

    /// In-process retries with a doubling pause, then the queue.
    async fn retry(
        &self,
        pair: &PairTarget,
        cluster: &ClusterTarget,
        op: Op<'_>,
        mut error: StoreError,
    ) -> Result<(Landing, TargetCounts), ProjectorError> {
        let retry = &self.config.retry;
        for attempt in 1..=retry.attempts {
            tokio::time::sleep(retry.backoff(attempt)).await;
            match self.attempt(pair, cluster, op).await {
                Ok(report) => {
                    tracing::info!(store = %cluster.name, attempt, "write succeeded on retry");
                    return Ok((Landing::Done, op.counts(report)));
                }
                Err(e) => error = e,
            }
        }
        let items = op.items();
        self.queue(&cluster.name, &items, retry.attempts + 1, &error).await?;
        Ok((Landing::Queued, TargetCounts { queued: items.len() as u64, ..TargetCounts::default() }))
    }

    /// Counts, logs (the alert) and queues writes that failed at `target`.
    pub(crate) async fn queue(
        &self,
        target: &str,
        items: &[(GoodsId, u64)],
        attempts: u32,
        error: &StoreError,
    ) -> Result<(), ProjectorError> {
        metrics::counter!("pricing_projector_write_failures_total", "store" => target.to_owned())
            .increment(items.len() as u64);
        tracing::error!(store = %target, records = items.len(), attempts, %error, "write failed; queued for the retry drain");
        let now = self.now_ms();
        let next = now.saturating_add(self.config.retry.queue_backoff(1).as_millis() as i64);
        for (goods_id, version) in items {
            let entry = RetryEntry {
                target: target.to_owned(),
                goods_id: *goods_id,
                version: *version,
                attempts,
                last_error: error.to_string(),
                next_attempt_at: next,
            };
            self.source.enqueue_retry(&entry, now).await?;
        }
        self.report_queue_depth().await;
        Ok(())
    }

    /// Sets `pricing_projector_retry_queue_depth` from the queue table.
    pub async fn report_queue_depth(&self) -> Option<u64> {
        match self.source.retry_depth().await {
            Ok(depth) => {
                metrics::gauge!("pricing_projector_retry_queue_depth").set(depth as f64);
                Some(depth)
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read the retry queue depth");
                None
            }
        }
    }

    /// The writer of the cluster named `target`, and whether the live write
    /// mode currently includes it.
    pub(crate) fn target(&self, target: &str) -> Option<(&PairTarget, &ClusterTarget, bool)> {
        let (pair, cluster) = self.targets.cluster(target)?;
        let settings = pair.settings();
        let included = matches!(
            (settings.write, cluster.cluster),
            (pricing_store::WriteMode::Both, _)
                | (pricing_store::WriteMode::OnlyA, pricing_store::Cluster::A)
                | (pricing_store::WriteMode::OnlyB, pricing_store::Cluster::B)
        );
        Some((pair, cluster, included))
    }

    /// One attempt at one cluster (the drain's and the repair's writes).
    pub(crate) async fn write_one(
        &self,
        pair: &PairTarget,
        cluster: &ClusterTarget,
        op: Op<'_>,
    ) -> Result<TargetCounts, StoreError> {
        if op.len() == 0 {
            return Ok(TargetCounts::default());
        }
        let report = self.attempt(pair, cluster, op).await?;
        let counts = op.counts(report);
        record_metrics(&cluster.name, &counts);
        if counts.changed() {
            self.announce(op).await;
        }
        Ok(counts)
    }
}

fn record_metrics(store: &str, counts: &TargetCounts) {
    for (outcome, n) in
        [("written", counts.written), ("skipped_older", counts.skipped_older), ("removed", counts.removed)]
    {
        if n > 0 {
            metrics::counter!("pricing_projector_records_total", "store" => store.to_owned(), "outcome" => outcome)
                .increment(n);
        }
    }
}

/// Shared records from loaded ones.
pub fn shared_records(records: Vec<pricing_record::GoodsRecord>) -> Vec<SharedRecord> {
    shared(records)
}

pub(crate) fn shared(records: Vec<pricing_record::GoodsRecord>) -> Vec<SharedRecord> {
    records.into_iter().map(Arc::new).collect()
}
