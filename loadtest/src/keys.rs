//! Which goods ids a load asks for: the live ids of the demo catalogue,
//! ranked by heat, drawn with a zipf skew.
//!
//! On a sale day a few goods take most of the traffic; a uniform draw would
//! hide what hot keys do to a cache and a store shard. The ranking is a
//! seeded shuffle of the live ids, so the hottest goods are spread over the
//! id range (and over stores), and the same seed gives the same hot set.

use std::collections::HashSet;
use std::sync::Arc;

use pricing_record::GoodsStatus;
use pricing_store_sql::demo::{DemoOptions, catalogue};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};

/// Why a pool or sampler cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KeysError {
    #[error("the goods pool is empty")]
    Empty,
    #[error("zipf exponent {0} is not usable (0 to 5)")]
    Exponent(f64),
}

/// The ids a run draws from, hottest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoodsPool {
    /// Live ids (not soft-deleted): listing and detail reads.
    pub read: Arc<[u64]>,
    /// Live ids on sale: carts (an order line with a delisted goods is
    /// refused with FAILED_PRECONDITION, which is not what a load test measures).
    pub order: Arc<[u64]>,
}

impl GoodsPool {
    /// The demo catalogue of `goods` ids (as `pricing-demo` seeds it),
    /// ranked by a shuffle seeded with `seed`.
    pub fn demo(goods: u64, seed: u64) -> GoodsPool {
        let options = DemoOptions { goods, ..DemoOptions::default() };
        let (all, _) = catalogue(&options);
        let mut ranked: Vec<(u64, bool)> = all
            .iter()
            .filter(|g| !g.deleted)
            .map(|g| (g.record.goods_id, g.record.status == GoodsStatus::OnSale))
            .collect();
        ranked.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
        GoodsPool {
            read: ranked.iter().map(|&(id, _)| id).collect(),
            order: ranked.iter().filter(|&&(_, on_sale)| on_sale).map(|&(id, _)| id).collect(),
        }
    }

    /// A pool of given ids, hottest first, every id usable for both reads and orders.
    pub fn from_ids(ids: Vec<u64>) -> GoodsPool {
        let ids: Arc<[u64]> = ids.into();
        GoodsPool { read: Arc::clone(&ids), order: ids }
    }
}

/// Draws ids from a ranked list with a zipf skew: rank `k` (1-based) is
/// drawn with probability proportional to `1 / k^s`.
#[derive(Debug, Clone)]
pub struct ZipfIds {
    ids: Arc<[u64]>,
    zipf: Zipf<f64>,
}

impl ZipfIds {
    pub fn new(ids: Arc<[u64]>, exponent: f64) -> Result<ZipfIds, KeysError> {
        if ids.is_empty() {
            return Err(KeysError::Empty);
        }
        if !exponent.is_finite() || !(0.0..=5.0).contains(&exponent) {
            return Err(KeysError::Exponent(exponent));
        }
        let zipf = Zipf::new(ids.len() as f64, exponent).map_err(|_| KeysError::Exponent(exponent))?;
        Ok(ZipfIds { ids, zipf })
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The 1-based heat rank of one draw, always within `1..=len()`.
    pub fn rank<R: Rng + ?Sized>(&self, rng: &mut R) -> usize {
        // The distribution yields whole numbers in [1, n] as floats; the
        // clamp keeps a rounding edge from ever indexing out of bounds.
        (self.zipf.sample(rng) as usize).clamp(1, self.ids.len())
    }

    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        self.ids[self.rank(rng) - 1]
    }

    /// `k` distinct ids (a listing page or a cart names a goods once),
    /// appended to `out`. Drawn with the skew; when the skew is so steep
    /// that distinct draws run dry, the rest are taken uniformly from the
    /// ids not yet chosen. `k` is capped at `len()`.
    pub fn sample_distinct<R: Rng + ?Sized>(&self, rng: &mut R, k: usize, out: &mut Vec<u64>) {
        let k = k.min(self.ids.len());
        let mut seen = HashSet::with_capacity(k);
        let mut tries = 0;
        while seen.len() < k && tries < 8 * k {
            tries += 1;
            let id = self.sample(rng);
            if seen.insert(id) {
                out.push(id);
            }
        }
        while seen.len() < k {
            let id = self.ids[rng.random_range(0..self.ids.len())];
            if seen.insert(id) {
                out.push(id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;

    #[test]
    fn draws_stay_within_the_pool() {
        let ids: Arc<[u64]> = (101..=150).collect();
        let mut rng = StdRng::seed_from_u64(9);
        for exponent in [0.0, 0.8, 1.0, 1.3, 3.0] {
            let z = ZipfIds::new(Arc::clone(&ids), exponent).unwrap();
            for _ in 0..5_000 {
                let r = z.rank(&mut rng);
                assert!((1..=50).contains(&r), "rank {r} out of bounds at s={exponent}");
                assert!((101..=150).contains(&z.sample(&mut rng)));
            }
        }
        let one = ZipfIds::new(vec![7].into(), 1.0).unwrap();
        assert!((0..100).all(|_| one.sample(&mut rng) == 7));
    }

    #[test]
    fn a_steeper_exponent_concentrates_on_the_hottest() {
        let ids: Arc<[u64]> = (1..=10_000).collect();
        let mut rng = StdRng::seed_from_u64(1);
        let share_of_top_10 = |s: f64, rng: &mut StdRng| {
            let z = ZipfIds::new(Arc::clone(&ids), s).unwrap();
            (0..20_000).filter(|_| z.rank(rng) <= 10).count()
        };
        let uniform = share_of_top_10(0.0, &mut rng);
        let normal = share_of_top_10(0.8, &mut rng);
        let sale = share_of_top_10(1.3, &mut rng);
        assert!(uniform < 200, "uniform: top 10 of 10,000 got {uniform} of 20,000");
        assert!(normal > uniform * 5, "s=0.8 should favour the top: {normal} vs {uniform}");
        assert!(sale > normal * 2, "s=1.3 should be steeper: {sale} vs {normal}");
    }

    #[test]
    fn distinct_samples_are_distinct_even_when_the_skew_is_steep() {
        let ids: Arc<[u64]> = (1..=300).collect();
        let z = ZipfIds::new(ids, 4.0).unwrap();
        let mut rng = StdRng::seed_from_u64(3);
        let mut out = Vec::new();
        z.sample_distinct(&mut rng, 200, &mut out);
        assert_eq!(out.len(), 200);
        assert_eq!(out.iter().collect::<HashSet<_>>().len(), 200);
        out.clear();
        z.sample_distinct(&mut rng, 1_000, &mut out);
        assert_eq!(out.len(), 300, "capped at the pool size");
    }

    #[test]
    fn bad_pools_are_refused() {
        assert_eq!(ZipfIds::new(Vec::new().into(), 1.0).unwrap_err(), KeysError::Empty);
        assert!(matches!(ZipfIds::new(vec![1].into(), -1.0), Err(KeysError::Exponent(_))));
        assert!(matches!(ZipfIds::new(vec![1].into(), f64::INFINITY), Err(KeysError::Exponent(_))));
    }

    #[test]
    fn the_demo_pool_holds_only_live_goods() {
        let pool = GoodsPool::demo(10_000, 1);
        let (all, _) = catalogue(&DemoOptions::default());
        let deleted: HashSet<u64> = all.iter().filter(|g| g.deleted).map(|g| g.record.goods_id).collect();
        assert!(deleted.contains(&pricing_store_sql::demo::well_known::DELETED_GOODS));
        assert!(!deleted.is_empty());
        assert_eq!(pool.read.len() + deleted.len(), 10_000);
        assert!(pool.read.iter().all(|id| !deleted.contains(id)));
        assert!(pool.order.len() < pool.read.len(), "delisted goods are kept out of carts");
        assert_eq!(GoodsPool::demo(10_000, 1), pool, "same seed, same ranking");
        assert_ne!(GoodsPool::demo(10_000, 2).read, pool.read, "the seed must matter");
    }
}
