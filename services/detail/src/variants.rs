//! Canary variants on the detail path's Redis pair: a variant that sets
//! `detail_redis_read` reads detail and checkout records through a chain of
//! its own ([`Sources::chain_over`]) whose Redis tier is a
//! [`DualStore::view`](pricing_store::DualStore::view) of the pair: the same
//! clients and breakers, the variant's read mode (the rest of
//! `[detail.redis]` as the file says, resolved for this pod's zone). Other
//! variants read the stable chain. Chains follow the control file: the first
//! call after an accepted change rebuilds the map, keeping a variant's chain
//! (and its live cell, updated) when it already had one.
//!
//! Push invalidation reaches every variant's chain: [`RedisViews::new`]
//! registers the chains with the server's
//! [`Invalidators`](pricing_store::Invalidators) (`Sources::invalidators`,
//! the list the subscription drops announced goods from), as the stable
//! chain is. An invalidation tells the chains of the map in force when it
//! runs. A rebuild racing it cannot hide a change: a kept chain is the same
//! `TieredReader` (the same cache) in the old map and the new one, so it is
//! told whichever map the invalidation loaded; a chain the rebuild creates
//! starts empty and answers no call before its map is stored, so when the
//! invalidation loaded the old map (and missed it), every read of the new
//! chain starts after the announcement arrived, hence after the projector
//! wrote the change to Redis, and fetches the new version. A read in flight
//! on a chain that is told does not put its older answer back (the cache's
//! generation check).
//!
//! A detail server without a Redis pair cannot apply `detail_redis_read`:
//! [`RedisViews::capability`] is registered with the switch board, which
//! then refuses such a file and keeps the last good one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use pricing_control::{Capability, ControlConfig, ControlError, PairSwitch, Switchboard};
use pricing_record::GoodsId;
use pricing_store::{DualSettings, Live, TieredReader, live};

use crate::sources::Sources;

struct Views {
    source: Arc<ControlConfig>,
    by_name: HashMap<String, (Live<DualSettings>, TieredReader)>,
}

/// The variant chains in force, as push invalidation reaches them. Apart
/// from [`RedisViews`] (which holds the [`Sources`]) so that the sources'
/// invalidation list can hold it without a reference cycle.
struct Chains {
    current: ArcSwap<Views>,
}

/// Push invalidation reaches every variant's own chain (the stable chain
/// is registered by [`Sources::new`]).
#[async_trait::async_trait]
impl pricing_store::Invalidate for Chains {
    async fn invalidate(&self, ids: &[GoodsId]) {
        let views = self.current.load_full();
        for (_, chain) in views.by_name.values() {
            chain.invalidate(ids).await;
        }
    }

    async fn invalidate_all(&self) {
        let views = self.current.load_full();
        for (_, chain) in views.by_name.values() {
            chain.invalidate_all().await;
        }
    }
}

/// The variant chains of one detail server.
pub struct RedisViews {
    board: Switchboard,
    sources: Arc<Sources>,
    chains: Arc<Chains>,
    rebuild: Mutex<()>,
}

impl RedisViews {
    /// The variant chains over `sources`, registered with its
    /// invalidators (`Sources::invalidators`): every announcement the
    /// server's subscription receives reaches them.
    pub fn new(board: &Switchboard, sources: Arc<Sources>) -> RedisViews {
        let chains = Arc::new(Chains {
            current: ArcSwap::from_pointee(Views {
                source: Arc::new(ControlConfig::default()),
                by_name: HashMap::new(),
            }),
        });
        sources.invalidators().add(Arc::clone(&chains) as _);
        let views = RedisViews { board: board.clone(), sources, chains, rebuild: Mutex::new(()) };
        views.refresh(board.snapshot());
        views
    }

    /// What this server can apply, to register with its switch board.
    pub fn capability(&self) -> Capability {
        let has_redis = self.sources.redis().is_some();
        Arc::new(move |config: &ControlConfig| {
            match config.canary.variants.iter().find(|(_, o)| o.detail_redis_read.is_some()) {
                Some((name, _)) if !has_redis => Err(ControlError::Invalid {
                    field: format!("canary.variants.{name}.detail_redis_read"),
                    reason: "this detail server has no redis pair".into(),
                }),
                _ => Ok(()),
            }
        })
    }

    /// The chain of a variant that sets `detail_redis_read`; `None`: the stable chain.
    pub fn chain(&self, variant: &str) -> Option<TieredReader> {
        let config = self.board.load_config();
        let views = self.chains.current.load();
        if Arc::ptr_eq(&views.source, &config) {
            if views.by_name.is_empty() {
                return None;
            }
            return views.by_name.get(variant).map(|(_, chain)| chain.clone());
        }
        drop(views);
        self.refresh(Arc::clone(&config)).by_name.get(variant).map(|(_, chain)| chain.clone())
    }

    fn refresh(&self, config: Arc<ControlConfig>) -> Arc<Views> {
        let _one = self.rebuild.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.chains.current.load_full();
        if Arc::ptr_eq(&old.source, &config) {
            return old;
        }
        let zone = self.board.zone();
        let mut by_name = HashMap::new();
        if let Some(pair) = self.sources.redis() {
            for (name, overrides) in &config.canary.variants {
                if overrides.detail_redis_read.is_none() {
                    continue;
                }
                let settings =
                    overrides.pair_section(PairSwitch::DetailRedis, &config.detail.redis).resolve(zone.as_deref()).0;
                if let Some((cell, chain)) = old.by_name.get(name) {
                    if **cell.load() != settings {
                        cell.store(Arc::new(settings));
                    }
                    by_name.insert(name.clone(), (cell.clone(), chain.clone()));
                    continue;
                }
                let cell = live(settings);
                let view = Arc::new(pair.store.view(cell.clone(), Arc::from(name.as_str())));
                match self.sources.chain_over(view) {
                    Ok(chain) => {
                        tracing::info!(variant = %name, "canary variant reads the detail redis pair by its own read mode");
                        by_name.insert(name.clone(), (cell, chain));
                    }
                    Err(error) => tracing::error!(variant = %name, %error, "canary detail chain cannot be built"),
                }
            }
        }
        let fresh = Arc::new(Views { source: config, by_name });
        // The chains built above have served nothing yet: they are empty
        // until this store makes them reachable (see the module doc).
        self.chains.current.store(Arc::clone(&fresh));
        fresh
    }
}
