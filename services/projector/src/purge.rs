//! Seed 001's purge ("结转"): rows soft-deleted more than N days ago are
//! deleted physically, but a goods only after its removal has reached every
//! store.
//!
//! For each page of old soft-deleted goods: write their tombstones to every
//! cluster of every pair (versioned, so a cluster already holding them is
//! unchanged); only if every cluster holds the page is the page deleted from
//! the source (each row only if still deleted at the same version), and then
//! the store entries are removed (a failed removal is queued: the drain finds
//! the goods gone and removes it). A page that a cluster could not take, or
//! that the write mode keeps from a cluster, stays for the next purge.
//! Soft-deleted activities and promotions are deleted directly: records
//! leave them out already, and promotions are never projected.

use pricing_record::GoodsId;

use crate::Projector;
use crate::error::ProjectorError;
use crate::writer::{Scope, shared};

/// What a purge did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Goods rows soft-deleted before the cutoff that were found.
    pub goods_found: u64,
    pub goods_purged: u64,
    /// Goods kept because a cluster does not hold their tombstone yet.
    pub goods_kept: u64,
    pub activities_purged: u64,
    pub promotions_purged: u64,
    /// The cutoff: rows deleted before this unix ms were eligible.
    pub cutoff_ms: i64,
}

const DAY_MS: i64 = 86_400_000;

impl Projector {
    /// Purges rows soft-deleted more than `days` days ago.
    pub async fn purge(&self, days: u32) -> Result<PurgeReport, ProjectorError> {
        if days == 0 {
            return Err(ProjectorError::Invalid("purge days must be at least 1".into()));
        }
        let cutoff = self.now_ms().saturating_sub(i64::from(days).saturating_mul(DAY_MS));
        self.purge_before(cutoff).await
    }

    /// Purges rows soft-deleted before `cutoff_ms` (unix ms).
    pub async fn purge_before(&self, cutoff_ms: i64) -> Result<PurgeReport, ProjectorError> {
        let mut report = PurgeReport { cutoff_ms, ..PurgeReport::default() };
        let mut after: GoodsId = 0;
        loop {
            let page = self.source.purgeable_goods(cutoff_ms, after, self.config.sync.page_size).await?;
            let Some(&(last, _)) = page.last() else { break };
            after = last;
            report.goods_found += page.len() as u64;
            let ids: Vec<GoodsId> = page.iter().map(|(id, _)| *id).collect();
            // The current records: tombstones, unless a goods came back meanwhile.
            let records = shared(self.source.load(&ids).await?);
            let tombstones: Vec<_> = records.into_iter().filter(|r| r.is_tombstone()).collect();
            let outcome = self.put(&tombstones, &Scope::All).await?;
            if !outcome.everywhere() {
                report.goods_kept += tombstones.len() as u64;
                tracing::warn!(goods = tombstones.len(), "tombstones not in every cluster yet; their purge waits");
                continue;
            }
            let confirmed: Vec<(GoodsId, u64)> = tombstones.iter().map(|r| (r.goods_id, r.version)).collect();
            let purged = self.source.purge_goods(&confirmed, cutoff_ms).await?;
            report.goods_kept += (confirmed.len() - purged.len()) as u64;
            report.goods_purged += purged.len() as u64;
            self.remove(&purged, &Scope::All).await?;
        }
        report.activities_purged = self.source.purge_activities(cutoff_ms).await?;
        report.promotions_purged = self.source.purge_promotions(cutoff_ms).await?;
        metrics::counter!("pricing_projector_purged_total", "table" => "goods").increment(report.goods_purged);
        metrics::counter!("pricing_projector_purged_total", "table" => "activity").increment(report.activities_purged);
        metrics::counter!("pricing_projector_purged_total", "table" => "promotion").increment(report.promotions_purged);
        tracing::info!(
            cutoff_ms,
            goods = report.goods_purged,
            kept = report.goods_kept,
            activities = report.activities_purged,
            promotions = report.promotions_purged,
            "purge done"
        );
        Ok(report)
    }
}
