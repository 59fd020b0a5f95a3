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
//! A detail server without a Redis pair cannot apply `detail_redis_read`:
//! [`RedisViews::capability`] is registered with the switch board, which
//! then refuses such a file and keeps the last good one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use pricing_control::{Capability, ControlConfig, ControlError, PairSwitch, Switchboard};
use pricing_store::{DualSettings, Live, TieredReader, live};

use crate::sources::Sources;

struct Views {
    source: Arc<ControlConfig>,
    by_name: HashMap<String, (Live<DualSettings>, TieredReader)>,
}

/// The variant chains of one detail server.
pub struct RedisViews {
    board: Switchboard,
    sources: Arc<Sources>,
    current: ArcSwap<Views>,
    rebuild: Mutex<()>,
}

impl RedisViews {
    pub fn new(board: &Switchboard, sources: Arc<Sources>) -> RedisViews {
        let views = RedisViews {
            board: board.clone(),
            sources,
            current: ArcSwap::from_pointee(Views {
                source: Arc::new(ControlConfig::default()),
                by_name: HashMap::new(),
            }),
            rebuild: Mutex::new(()),
        };
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
        let views = self.current.load();
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
        let old = self.current.load_full();
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
        self.current.store(Arc::clone(&fresh));
        fresh
    }
}
