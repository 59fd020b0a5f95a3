//! Stored values as they are, for the reconciler and operators.
//!
//! The read path's [`RecordStore::fetch`](crate::RecordStore::fetch) turns
//! bytes that do not decode into a miss, as it must. Checking a store
//! against the source needs more: the bytes held per goods id (to tell
//! missing from corrupt), what stands in the way of a versioned repair
//! ([`VersionGuard`]), and a walk over every goods id the store holds (to
//! find goods the source no longer has). [`Inspect`] gives those, through
//! the same connections, timeouts and error kinds as the store's reads.
//! The Redis and HBase stores implement it; the pairs hand it out per
//! cluster next to each cluster's writer.

use async_trait::async_trait;
use pricing_record::GoodsId;

use crate::StoreError;

/// One stored value of a goods, as held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    pub goods_id: GoodsId,
    /// The bytes as stored (not decoded: they may be corrupt).
    pub bytes: Vec<u8>,
    /// What a versioned write of this goods has to get past.
    pub guard: VersionGuard,
}

/// What stands in the way of a versioned write, as the store itself judges
/// it, and so what a repair has to do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionGuard {
    /// Redis: the version in the value's header, which the server-side guard
    /// compares; `None` when the value has no header the guard can read
    /// (then any write replaces it). Removing the key clears it.
    Header(Option<u64>),
    /// HBase: the cell's timestamp. A put at or below it stays hidden, and
    /// so would a put after a delete (the delete marker covers it too).
    CellTimestamp(i64),
}

impl VersionGuard {
    /// The version a write must exceed to replace the entry, if any.
    pub fn blocking_version(self) -> Option<u64> {
        match self {
            VersionGuard::Header(version) => version,
            VersionGuard::CellTimestamp(timestamp) => u64::try_from(timestamp).ok(),
        }
    }
}

/// Where a walk over a store's goods ids stands. Its position means
/// something only to the store that made it (a Redis `SCAN` cursor, on a
/// Cluster with the node it belongs to; an HBase row key); a walk starts at
/// [`WalkCursor::start`] and ends when a page has no next cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct WalkCursor {
    position: Vec<u8>,
}

impl WalkCursor {
    /// The beginning of a walk.
    pub fn start() -> WalkCursor {
        WalkCursor::default()
    }

    /// A cursor at a store-defined position (for stores only).
    pub fn at(position: impl Into<Vec<u8>>) -> WalkCursor {
        WalkCursor { position: position.into() }
    }

    /// The store-defined position; empty at the start.
    pub fn position(&self) -> &[u8] {
        &self.position
    }

    pub fn is_start(&self) -> bool {
        self.position.is_empty()
    }
}

/// One step of a walk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalkPage {
    /// Goods ids found in this step (possibly none; a walk may return an id
    /// more than once, as Redis `SCAN` may).
    pub ids: Vec<GoodsId>,
    /// Where the next step starts; `None` when the walk is complete.
    pub next: Option<WalkCursor>,
}

/// Raw reads of one store.
#[async_trait]
pub trait Inspect: Send + Sync + 'static {
    /// The store's name ("redis-a").
    fn name(&self) -> &str;

    /// The entries held for `ids`, as stored: absent ids are absent, corrupt
    /// bytes are returned as they are. One round trip per batch (on a
    /// Redis Cluster one per node), bounded like the store's reads.
    async fn inspect(&self, ids: &[GoodsId]) -> Result<Vec<RawEntry>, StoreError>;

    /// One step of a walk over every goods id the store holds, from `from`,
    /// asking for about `count` ids. Keys that are not goods keys are
    /// skipped. A goods present for the whole walk is found at least once;
    /// one written or removed meanwhile may or may not be.
    async fn walk(&self, from: &WalkCursor, count: u32) -> Result<WalkPage, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_name_the_version_a_write_must_exceed() {
        assert_eq!(VersionGuard::Header(Some(7)).blocking_version(), Some(7));
        assert_eq!(VersionGuard::Header(None).blocking_version(), None);
        assert_eq!(VersionGuard::CellTimestamp(9).blocking_version(), Some(9));
        assert_eq!(VersionGuard::CellTimestamp(-1).blocking_version(), None);
    }

    #[test]
    fn cursors_start_empty_and_keep_their_position() {
        assert!(WalkCursor::start().is_start());
        let at = WalkCursor::at(b"node:1 42".to_vec());
        assert!(!at.is_start());
        assert_eq!(at.position(), b"node:1 42");
    }
}
