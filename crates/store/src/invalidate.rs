//! Push invalidation: the seam between whoever learns that goods changed
//! (the Redis subscriber of `pricing_store_redis::invalidate`, fed by the
//! projector's announcements) and every in-process cache holding answers
//! for them.
//!
//! A cache implements [`Invalidate`]; a server registers each of its caches
//! in one [`Invalidators`] list (the [`crate::TieredReader`] memory cache,
//! and any cache of computed prices) and hands that list to the subscriber.
//! `invalidate_all` is for a gap: when every subscription of a pair was lost
//! for a while, announcements may have been missed, so whatever was cached
//! before the gap is dropped once a subscription is back.

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use pricing_record::GoodsId;

/// Something holding answers per goods id that must drop them when told.
#[async_trait]
pub trait Invalidate: Send + Sync + 'static {
    /// Drops what is held for `ids`. A read already in flight for one of
    /// them must not put its (possibly older) answer back afterwards.
    async fn invalidate(&self, ids: &[GoodsId]);

    /// Drops everything held (announcements were missed).
    async fn invalidate_all(&self);
}

/// The caches one server drops changed goods from: cheap to clone, shared
/// with the subscriber; caches may be added after it started.
#[derive(Clone, Default)]
pub struct Invalidators {
    list: Arc<RwLock<Vec<Arc<dyn Invalidate>>>>,
}

impl Invalidators {
    pub fn new() -> Invalidators {
        Invalidators::default()
    }

    /// Registers a cache; every later announcement reaches it.
    pub fn add(&self, cache: Arc<dyn Invalidate>) {
        self.list.write().unwrap_or_else(|p| p.into_inner()).push(cache);
    }

    /// How many caches are registered.
    pub fn len(&self) -> usize {
        self.list.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn snapshot(&self) -> Vec<Arc<dyn Invalidate>> {
        self.list.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait]
impl Invalidate for Invalidators {
    async fn invalidate(&self, ids: &[GoodsId]) {
        for cache in self.snapshot() {
            cache.invalidate(ids).await;
        }
    }

    async fn invalidate_all(&self) {
        for cache in self.snapshot() {
            cache.invalidate_all().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Seen(Mutex<Vec<GoodsId>>, Mutex<u32>);

    #[async_trait]
    impl Invalidate for Seen {
        async fn invalidate(&self, ids: &[GoodsId]) {
            self.0.lock().unwrap().extend_from_slice(ids);
        }
        async fn invalidate_all(&self) {
            *self.1.lock().unwrap() += 1;
        }
    }

    #[tokio::test]
    async fn every_registered_cache_is_told_including_ones_added_later() {
        let list = Invalidators::new();
        let first = Arc::new(Seen::default());
        list.add(first.clone());
        let shared = list.clone();
        shared.invalidate(&[1, 2]).await;
        let second = Arc::new(Seen::default());
        list.add(second.clone());
        shared.invalidate(&[3]).await;
        shared.invalidate_all().await;
        assert_eq!(*first.0.lock().unwrap(), vec![1, 2, 3]);
        assert_eq!(*second.0.lock().unwrap(), vec![3]);
        assert_eq!((*first.1.lock().unwrap(), *second.1.lock().unwrap()), (1, 1));
        assert_eq!(shared.len(), 2);
    }
}
