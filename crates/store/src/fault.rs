//! A fault-injecting wrapper around [`MemoryStore`], for tests of the
//! combinators here and of the servers: fail with a chosen kind, answer late,
//! hold every fetch until released, and count what reached it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pricing_record::GoodsId;
use tokio::sync::watch;

use crate::memory::MemoryStore;
use crate::{RecordStore, RecordWriter, SharedRecord, StoreError, StoreErrorKind, WriteReport};

/// What a fetch does before (or instead of) reading the inner store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Fails every fetch with this kind.
    Fail(StoreErrorKind),
    /// Answers after this long (use paused time in tests).
    Delay(Duration),
}

pub struct FaultyStore {
    name: String,
    inner: Arc<MemoryStore>,
    fault: Mutex<Fault>,
    fail_writes: AtomicBool,
    /// True while fetches are held; a watch so that waiters wake on release.
    held: watch::Sender<bool>,
    fetches: AtomicU64,
    puts: AtomicU64,
    batches: Mutex<Vec<Vec<GoodsId>>>,
}

impl FaultyStore {
    /// Wraps `inner`, under the inner store's name.
    pub fn new(inner: Arc<MemoryStore>) -> FaultyStore {
        FaultyStore {
            name: RecordStore::name(&*inner).to_owned(),
            inner,
            fault: Mutex::new(Fault::None),
            fail_writes: AtomicBool::new(false),
            held: watch::channel(false).0,
            fetches: AtomicU64::new(0),
            puts: AtomicU64::new(0),
            batches: Mutex::new(Vec::new()),
        }
    }

    /// A wrapped empty memory store, shared as an `Arc`.
    pub fn named(name: &str, records: impl IntoIterator<Item = SharedRecord>) -> Arc<FaultyStore> {
        Arc::new(FaultyStore::new(Arc::new(MemoryStore::with_records(name, records))))
    }

    pub fn inner(&self) -> &Arc<MemoryStore> {
        &self.inner
    }

    pub fn set_fault(&self, fault: Fault) {
        *self.fault.lock().unwrap_or_else(|p| p.into_inner()) = fault;
    }

    pub fn set_fail_writes(&self, fail: bool) {
        self.fail_writes.store(fail, Ordering::SeqCst);
    }

    /// Holds every fetch (after it is counted) until [`FaultyStore::release`].
    pub fn hold(&self) {
        self.held.send_replace(true);
    }

    pub fn release(&self) {
        self.held.send_replace(false);
    }

    /// Non-empty fetches that reached this store, failed ones included.
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Put calls that reached this store, failed ones included.
    pub fn put_count(&self) -> u64 {
        self.puts.load(Ordering::SeqCst)
    }

    /// The id lists of every non-empty fetch, in arrival order.
    pub fn batches(&self) -> Vec<Vec<GoodsId>> {
        self.batches.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait]
impl RecordStore for FaultyStore {
    fn name(&self) -> &str {
        &self.name
    }

    async fn fetch(&self, ids: &[GoodsId]) -> Result<Vec<SharedRecord>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.fetches.fetch_add(1, Ordering::SeqCst);
        self.batches.lock().unwrap_or_else(|p| p.into_inner()).push(ids.to_vec());
        let mut held = self.held.subscribe();
        // The sender lives in self, so the channel cannot close while we wait.
        let _ = held.wait_for(|h| !*h).await;
        let fault = *self.fault.lock().unwrap_or_else(|p| p.into_inner());
        match fault {
            Fault::None => self.inner.fetch(ids).await,
            Fault::Fail(kind) => Err(StoreError::new(self.name.clone(), kind, "injected fault")),
            Fault::Delay(d) => {
                tokio::time::sleep(d).await;
                self.inner.fetch(ids).await
            }
        }
    }
}

#[async_trait]
impl RecordWriter for FaultyStore {
    fn name(&self) -> &str {
        &self.name
    }

    async fn put(&self, records: &[SharedRecord]) -> Result<WriteReport, StoreError> {
        self.puts.fetch_add(1, Ordering::SeqCst);
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable(self.name.clone(), "injected write fault"));
        }
        self.inner.put(records).await
    }

    async fn remove(&self, ids: &[GoodsId]) -> Result<(), StoreError> {
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable(self.name.clone(), "injected write fault"));
        }
        self.inner.remove(ids).await
    }
}
