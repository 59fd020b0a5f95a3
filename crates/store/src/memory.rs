//! An in-memory store: the reference behaviour of [`RecordStore`] and
//! [`RecordWriter`], used by tests and by tools.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;
use pricing_record::GoodsId;

use crate::{RecordStore, RecordWriter, SharedRecord, StoreError, WriteReport};

#[derive(Default)]
pub struct MemoryStore {
    name: String,
    records: RwLock<HashMap<GoodsId, SharedRecord>>,
    fetches: AtomicU64,
}

impl MemoryStore {
    pub fn new(name: impl Into<String>) -> MemoryStore {
        MemoryStore { name: name.into(), ..Default::default() }
    }

    pub fn with_records(name: impl Into<String>, records: impl IntoIterator<Item = SharedRecord>) -> MemoryStore {
        let store = MemoryStore::new(name);
        // The map is whole after every insert and remove: a poisoned lock (a
        // panic elsewhere while holding it) is taken over, not spread.
        store
            .records
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(records.into_iter().map(|r| (r.goods_id, r)));
        store
    }

    /// How many fetch calls reached this store (for coalescing tests).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    pub fn len(&self) -> usize {
        self.records.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, id: GoodsId) -> Option<SharedRecord> {
        self.records.read().unwrap_or_else(PoisonError::into_inner).get(&id).cloned()
    }
}

#[async_trait]
impl RecordStore for MemoryStore {
    fn name(&self) -> &str {
        &self.name
    }

    async fn fetch(&self, ids: &[GoodsId]) -> Result<Vec<SharedRecord>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let map = self.records.read().unwrap_or_else(PoisonError::into_inner);
        let mut seen = std::collections::HashSet::with_capacity(ids.len());
        Ok(ids.iter().filter(|id| seen.insert(**id)).filter_map(|id| map.get(id).cloned()).collect())
    }
}

#[async_trait]
impl RecordWriter for MemoryStore {
    fn name(&self) -> &str {
        &self.name
    }

    async fn put(&self, records: &[SharedRecord]) -> Result<WriteReport, StoreError> {
        let mut map = self.records.write().unwrap_or_else(PoisonError::into_inner);
        let mut report = WriteReport::default();
        for record in records {
            match map.get(&record.goods_id) {
                Some(held) if held.version >= record.version => report.skipped_older += 1,
                _ => {
                    map.insert(record.goods_id, Arc::clone(record));
                    report.written += 1;
                }
            }
        }
        Ok(report)
    }

    async fn remove(&self, ids: &[GoodsId]) -> Result<(), StoreError> {
        let mut map = self.records.write().unwrap_or_else(PoisonError::into_inner);
        for id in ids {
            map.remove(id);
        }
        Ok(())
    }
}
