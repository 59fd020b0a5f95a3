//! What the list path needs from its read chain: records for a batch of ids,
//! each with the tier that answered and whether it is stale.

use async_trait::async_trait;
use pricing_proto::v1::Tier;
use pricing_record::GoodsId;
use pricing_store::{Deadline, SharedRecord, StoreError};

/// One found record. Ids that no tier holds are simply absent.
#[derive(Debug, Clone)]
pub struct Hit {
    pub record: SharedRecord,
    pub tier: Tier,
    /// Served from memory past its expiry because every store failed.
    pub stale: bool,
}

#[async_trait]
pub trait PriceReader: Send + Sync + 'static {
    /// One answer per id of `ids` (which holds no duplicates), in the same
    /// order: `None` where no tier holds the id or it is a tombstone. Every
    /// store call is bounded by `deadline` (the caller's, when it set one).
    async fn read(&self, ids: &[GoodsId], deadline: Option<Deadline>) -> Result<Vec<Option<Hit>>, StoreError>;
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
                l.record.map(|record| Hit { record, tier, stale: l.stale })
            })
            .collect())
    }
}
