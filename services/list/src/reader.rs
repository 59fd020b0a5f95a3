//! What the list path needs from its read chain: records for a batch of ids,
//! each with the tier that answered and whether it is stale.

use async_trait::async_trait;
use pricing_proto::v1::Tier;
use pricing_record::GoodsId;
use std::sync::Arc;

use pricing_store::{Deadline, Invalidate, SharedRecord, StoreError};
use tokio::time::Instant;

/// One found record. Ids that no tier holds are simply absent.
#[derive(Debug, Clone)]
pub struct Hit {
    pub record: SharedRecord,
    pub tier: Tier,
    /// Served from memory past its expiry because every store failed.
    pub stale: bool,
    /// Until when the reader's memory would answer this record fresh again
    /// (see [`pricing_store::Lookup::fresh_until`]); `None`: not known, so
    /// nothing in front of the reader may keep it.
    pub fresh_until: Option<Instant>,
}

#[async_trait]
pub trait PriceReader: Send + Sync + 'static {
    /// One answer per id of `ids` (which holds no duplicates), in the same
    /// order: `None` where no tier holds the id or it is a tombstone. Every
    /// store call is bounded by `deadline` (the caller's, when it set one).
    async fn read(&self, ids: &[GoodsId], deadline: Option<Deadline>) -> Result<Vec<Option<Hit>>, StoreError>;

    /// Registers `follower` to be told of what the reader is told to
    /// forget (see [`pricing_store::TieredReader::invalidate`]). A reader
    /// that never answers with `fresh_until` need not keep it.
    fn on_invalidate(&self, follower: Arc<dyn Invalidate>) {
        let _ = follower;
    }
}

#[async_trait]
impl PriceReader for pricing_store::chain::TieredReader {
    async fn read(&self, ids: &[GoodsId], deadline: Option<Deadline>) -> Result<Vec<Option<Hit>>, StoreError> {
        // `get_many` answers each distinct id once, in first-occurrence order:
        // with distinct ids, one answer per id in order.
        let lookups = self.get_many_within(ids, deadline).await?;
        debug_assert_eq!(lookups.len(), ids.len(), "ids must be distinct");
        Ok(lookups
            .into_iter()
            .map(|l| {
                let tier = pricing_proto::convert::tier(&l.source);
                l.record.map(|record| Hit { record, tier, stale: l.stale, fresh_until: l.fresh_until })
            })
            .collect())
    }

    fn on_invalidate(&self, follower: Arc<dyn Invalidate>) {
        pricing_store::chain::TieredReader::on_invalidate(self, follower);
    }
}
