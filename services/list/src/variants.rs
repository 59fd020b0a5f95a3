//! Canary variants on the list read path: each variant whose overrides
//! change the read path (`list_tiers`, `list_redis_read`, `list_hbase_read`,
//! `list_cache_*_ms`) is answered by its own *view* of the read path; every
//! other variant, the default one included, by the stable chain.
//!
//! A view is a [`TieredReader`] of its own: its own tier list, its own memory
//! cache with the variant's lifetimes, and per pair a [`DualStore::view`]
//! handle that shares the stable pair's clients and breakers but reads by its
//! own live `DualSettings` (the variant's read mode over the rest of the
//! file's section, resolved for this pod's zone). Views follow the control
//! file: the first call after an accepted change compares the config by
//! pointer and rebuilds the set; a view whose tier list did not change is
//! kept (its cache stays warm) and only its live cells get the new settings.
//!
//! What this server cannot apply is refused when the file is loaded, never
//! ignored: [`Variants::capability`] is registered with the switch board
//! ([`Switchboard::require`]), so a variant naming a tier this server did not
//! build (`hbase` without an `[hbase]` section) or a pair it does not have
//! keeps the last good file in force, with the reason logged and counted.
//!
//! The answering tier of every answered id is counted per variant in
//! `pricing_list_tier_answers_total{variant, tier}`: counter handles
//! registered once per variant and tier, so the hot path does no string
//! work. Variant values are the configured variants, the default one, and
//! `other` for a name a config change removed between the canary's choice
//! and the lookup.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;
use metrics::Counter;
use pricing_control::{Capability, ControlConfig, ControlError, PairSwitch, Switchboard, VariantOverrides};
use pricing_proto::v1::Tier as AnswerTier;
use pricing_store::{
    CacheSettings, DualSettings, DualStore, DualWriter, Live, RecordStore, Tier, TierId, TieredReader, live,
};

/// The `variant` label of an answer whose variant is no longer configured.
const OTHER: &str = "other";

/// What a view may read through: the stores this server built.
#[derive(Clone, Default)]
pub struct Parts {
    /// The server's own `[read] tiers`: a view's tiers when it does not set `list_tiers`.
    pub tiers: Vec<TierId>,
    pub sql: Option<Arc<dyn RecordStore>>,
    pub redis: Option<(Arc<DualStore>, Arc<DualWriter>)>,
    pub hbase: Option<Arc<DualStore>>,
}

impl Parts {
    fn has(&self, tier: TierId) -> bool {
        match tier {
            TierId::Sql => self.sql.is_some(),
            TierId::Redis => self.redis.is_some(),
            TierId::Hbase => self.hbase.is_some(),
        }
    }
}

/// One variant as the list handler serves it.
pub struct View {
    /// The variant's own chain; `None`: the stable chain answers.
    pub reader: Option<TieredReader>,
    cells: Cells,
    tiers: TierCounters,
}

#[derive(Default)]
struct Cells {
    tiers: Vec<TierId>,
    redis: Option<Live<DualSettings>>,
    hbase: Option<Live<DualSettings>>,
    cache: Option<Live<CacheSettings>>,
}

impl View {
    /// Counts the answering tier of each answered id under this view's variant.
    pub fn count_tiers(&self, tiers: impl Iterator<Item = AnswerTier>) {
        let mut counts = [0u64; TIERS];
        for tier in tiers {
            if let Some(slot) = counts.get_mut(tier as usize) {
                *slot += 1;
            }
        }
        for (i, n) in counts.iter().enumerate().filter(|(_, n)| **n > 0) {
            self.tiers.get(i).increment(*n);
        }
    }
}

/// Number of answer tiers (the proto enum's values).
const TIERS: usize = 6;

/// `pricing_list_tier_answers_total{variant, tier}` of one variant, each
/// tier's handle registered on first use.
struct TierCounters {
    variant: Arc<str>,
    counters: [OnceLock<Counter>; TIERS],
}

impl TierCounters {
    fn new(variant: Arc<str>) -> TierCounters {
        TierCounters { variant, counters: Default::default() }
    }

    fn get(&self, index: usize) -> &Counter {
        let label = match index {
            1 => "memory",
            2 => "redis",
            3 => "hbase",
            4 => "database",
            5 => "list",
            _ => "unspecified",
        };
        let slot = &self.counters[index.min(TIERS - 1)];
        slot.get_or_init(|| {
            metrics::counter!("pricing_list_tier_answers_total", "variant" => self.variant.to_string(), "tier" => label)
        })
    }
}

struct Views {
    /// The config these views were built from (compared by pointer).
    source: Arc<ControlConfig>,
    by_name: HashMap<Arc<str>, Arc<View>>,
    other: Arc<View>,
}

/// The variant views of one list server.
pub struct Variants {
    board: Switchboard,
    parts: Option<Parts>,
    current: ArcSwap<Views>,
    /// One rebuild at a time (the calls that see a new config meanwhile
    /// read the old views).
    rebuild: Mutex<()>,
}

impl std::fmt::Debug for Variants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Variants").field("views", &self.current.load().by_name.len()).finish()
    }
}

impl Variants {
    /// Views over `parts`; `None` (a server given a ready-made reader) can
    /// serve no read-path override.
    pub fn new(board: &Switchboard, parts: Option<Parts>) -> Variants {
        let config = board.snapshot();
        let views = build(&config, parts.as_ref(), None, board.zone().as_deref());
        Variants { board: board.clone(), parts, current: ArcSwap::from_pointee(views), rebuild: Mutex::new(()) }
    }

    /// What this server can apply, to register with its switch board.
    pub fn capability(&self) -> Capability {
        let parts = self.parts.clone();
        Arc::new(move |config: &ControlConfig| check(config, parts.as_ref()))
    }

    /// The view of a variant (the stable chain's for variants that do not
    /// change the read path).
    pub fn view(&self, variant: &str) -> Arc<View> {
        let config = self.board.load_config();
        let views = self.current.load();
        if Arc::ptr_eq(&views.source, &config) {
            return lookup(&views, variant);
        }
        drop(views);
        let fresh = self.refresh(Arc::clone(&config));
        lookup(&fresh, variant)
    }

    fn refresh(&self, config: Arc<ControlConfig>) -> Arc<Views> {
        let _one = self.rebuild.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.current.load_full();
        if Arc::ptr_eq(&old.source, &config) {
            return old;
        }
        let fresh = Arc::new(build(&config, self.parts.as_ref(), Some(&old), self.board.zone().as_deref()));
        self.current.store(Arc::clone(&fresh));
        fresh
    }
}

/// Push invalidation reaches every variant's own chain (the stable chain is
/// told by the server's read path).
#[async_trait::async_trait]
impl pricing_store::Invalidate for Variants {
    async fn invalidate(&self, ids: &[pricing_record::GoodsId]) {
        let views = self.current.load_full();
        for reader in views.by_name.values().filter_map(|v| v.reader.as_ref()) {
            reader.invalidate(ids).await;
        }
    }

    async fn invalidate_all(&self) {
        let views = self.current.load_full();
        for reader in views.by_name.values().filter_map(|v| v.reader.as_ref()) {
            reader.invalidate_all().await;
        }
    }
}

fn lookup(views: &Views, variant: &str) -> Arc<View> {
    views.by_name.get(variant).map_or_else(|| Arc::clone(&views.other), Arc::clone)
}

fn build(config: &Arc<ControlConfig>, parts: Option<&Parts>, old: Option<&Views>, zone: Option<&str>) -> Views {
    let canary = &config.canary;
    let names = canary
        .variants
        .iter()
        .map(|(name, overrides)| (name.as_str(), Some(overrides)))
        .chain(std::iter::once((canary.default_variant.as_str(), None)));
    let mut by_name = HashMap::new();
    for (name, overrides) in names {
        let name: Arc<str> = Arc::from(name);
        let previous = old.and_then(|v| v.by_name.get(&name));
        let view = match (overrides.filter(|o| o.changes_list_read_path()), parts) {
            (Some(overrides), Some(parts)) => read_view(config, parts, &name, overrides, previous, zone),
            _ => match previous.filter(|p| p.reader.is_none()) {
                Some(previous) => Arc::clone(previous),
                None => Arc::new(View {
                    reader: None,
                    cells: Cells::default(),
                    tiers: TierCounters::new(Arc::clone(&name)),
                }),
            },
        };
        by_name.insert(name, view);
    }
    let other = old.map_or_else(
        || Arc::new(View { reader: None, cells: Cells::default(), tiers: TierCounters::new(Arc::from(OTHER)) }),
        |v| Arc::clone(&v.other),
    );
    Views { source: Arc::clone(config), by_name, other }
}

/// The settings a variant's view of a pair reads by.
fn pair_settings(
    config: &ControlConfig,
    overrides: &VariantOverrides,
    pair: PairSwitch,
    zone: Option<&str>,
) -> DualSettings {
    let base = match pair {
        PairSwitch::ListRedis => &config.list.redis,
        PairSwitch::ListHbase => &config.list.hbase,
        PairSwitch::DetailRedis => &config.detail.redis,
    };
    overrides.pair_section(pair, base).resolve(zone).0
}

/// A variant's own view, or the previous one with its cells updated when
/// its tier list is the same (the cache stays warm).
fn read_view(
    config: &ControlConfig,
    parts: &Parts,
    name: &Arc<str>,
    overrides: &VariantOverrides,
    previous: Option<&Arc<View>>,
    zone: Option<&str>,
) -> Arc<View> {
    let tiers = overrides.list_tiers.clone().unwrap_or_else(|| parts.tiers.clone());
    let redis = pair_settings(config, overrides, PairSwitch::ListRedis, zone);
    let hbase = pair_settings(config, overrides, PairSwitch::ListHbase, zone);
    let cache = overrides.list_cache(&config.list.cache);
    if let Some(previous) = previous.filter(|p| p.reader.is_some() && p.cells.tiers == tiers) {
        store_if_changed(previous.cells.redis.as_ref(), redis);
        store_if_changed(previous.cells.hbase.as_ref(), hbase);
        store_if_changed(previous.cells.cache.as_ref(), cache);
        return Arc::clone(previous);
    }
    let mut cells = Cells { tiers: tiers.clone(), ..Cells::default() };
    let mut chain = Vec::with_capacity(tiers.len());
    for &id in &tiers {
        // The capability check refused any tier this server did not build.
        match id {
            TierId::Sql => {
                if let Some(sql) = &parts.sql {
                    chain.push(Tier::new(TierId::Sql, Arc::clone(sql)));
                }
            }
            TierId::Redis => {
                if let Some((store, writer)) = &parts.redis {
                    let cell = live(redis.clone());
                    let view = store.view(cell.clone(), Arc::clone(name));
                    chain.push(Tier::new(TierId::Redis, Arc::new(view)).with_write_back(Arc::clone(writer) as _));
                    cells.redis = Some(cell);
                }
            }
            TierId::Hbase => {
                if let Some(store) = &parts.hbase {
                    let cell = live(hbase.clone());
                    chain.push(Tier::new(TierId::Hbase, Arc::new(store.view(cell.clone(), Arc::clone(name)))));
                    cells.hbase = Some(cell);
                }
            }
        }
    }
    let cache_cell = live(cache);
    cells.cache = Some(cache_cell.clone());
    let reader = match TieredReader::new(chain, cache_cell) {
        Ok(reader) => Some(reader),
        Err(error) => {
            // Unreachable after the capability check; serve stable rather than fail calls.
            tracing::error!(variant = %name, %error, "canary view cannot be built: the variant reads the stable path");
            None
        }
    };
    if reader.is_some() {
        tracing::info!(variant = %name, tiers = ?tiers, "canary variant reads its own view of the list read path");
    }
    Arc::new(View { reader, cells, tiers: TierCounters::new(Arc::clone(name)) })
}

fn store_if_changed<T: PartialEq>(cell: Option<&Live<T>>, value: T) {
    if let Some(cell) = cell
        && **cell.load() != value
    {
        cell.store(Arc::new(value));
    }
}

/// Whether this server can apply every list override of `config`.
fn check(config: &ControlConfig, parts: Option<&Parts>) -> Result<(), ControlError> {
    for (name, overrides) in &config.canary.variants {
        let refuse = |key: &str, reason: String| {
            Err(ControlError::Invalid { field: format!("canary.variants.{name}.{key}"), reason })
        };
        let Some(parts) = parts else {
            if overrides.changes_list_read_path() {
                return refuse(
                    "list_*",
                    "this list server was given a fixed read chain and cannot serve a variant's own read path".into(),
                );
            }
            continue;
        };
        if let Some(tiers) = &overrides.list_tiers
            && let Some(missing) = tiers.iter().find(|t| !parts.has(**t))
        {
            return refuse(
                "list_tiers",
                format!(
                    "this list server has no {} tier (its config has no {} source); it has {:?}",
                    missing.as_str(),
                    missing.as_str(),
                    TierId::ALL.iter().filter(|t| parts.has(**t)).map(|t| t.as_str()).collect::<Vec<_>>()
                ),
            );
        }
        if overrides.list_redis_read.is_some() && parts.redis.is_none() {
            return refuse("list_redis_read", "this list server has no redis pair".into());
        }
        if overrides.list_hbase_read.is_some() && parts.hbase.is_none() {
            return refuse("list_hbase_read", "this list server has no hbase pair".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use pricing_control::{CanaryRule, ControlError};
    use pricing_record::GoodsId;
    use pricing_store::{SharedRecord, StoreError};

    use super::*;

    /// A source of truth that holds nothing.
    struct Empty;

    #[async_trait::async_trait]
    impl RecordStore for Empty {
        fn name(&self) -> &str {
            "sql"
        }

        async fn fetch(&self, _ids: &[GoodsId]) -> Result<Vec<SharedRecord>, StoreError> {
            Ok(Vec::new())
        }
    }

    fn with_variant(name: &str, overrides: VariantOverrides) -> ControlConfig {
        let mut config = ControlConfig::default();
        config.canary.variants.insert(name.into(), overrides);
        config.canary.rules = vec![CanaryRule {
            variant: name.into(),
            pins: vec!["p".into()],
            stores: vec![],
            cities: vec![],
            percent: 0,
            salt: None,
        }];
        config
    }

    fn sql_only() -> Parts {
        Parts { tiers: vec![TierId::Sql], sql: Some(Arc::new(Empty)), ..Parts::default() }
    }

    fn tiers(overrides: &[TierId]) -> VariantOverrides {
        VariantOverrides { list_tiers: Some(overrides.to_vec()), ..VariantOverrides::default() }
    }

    fn refused_field(board: &Switchboard, config: ControlConfig) -> String {
        match board.replace(config) {
            Err(ControlError::Invalid { field, .. }) => field,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn overrides_the_server_cannot_apply_are_refused_by_the_board() {
        let board = Switchboard::from_config(ControlConfig::default()).unwrap();
        let variants = Variants::new(&board, Some(sql_only()));
        board.require(variants.capability()).unwrap();
        assert_eq!(refused_field(&board, with_variant("b", tiers(&[TierId::Hbase]))), "canary.variants.b.list_tiers");
        let redis_read =
            VariantOverrides { list_redis_read: Some(pricing_control::ReadSwitch::OnlyA {}), ..Default::default() };
        assert_eq!(refused_field(&board, with_variant("b", redis_read)), "canary.variants.b.list_redis_read");
        // What it has is accepted.
        board.replace(with_variant("b", tiers(&[TierId::Sql]))).unwrap();

        // A server given a fixed reader refuses every read-path override, and only those.
        let fixed = Switchboard::from_config(ControlConfig::default()).unwrap();
        let none = Variants::new(&fixed, None);
        fixed.require(none.capability()).unwrap();
        assert_eq!(refused_field(&fixed, with_variant("c", tiers(&[TierId::Sql]))), "canary.variants.c.list_*");
        let bypass = VariantOverrides { detail_redis_bypass: Some(true), ..Default::default() };
        fixed.replace(with_variant("c", bypass)).unwrap();
    }

    #[test]
    fn read_path_variants_get_their_own_view_and_keep_it_across_unrelated_changes() {
        let board = Switchboard::from_config(ControlConfig::default()).unwrap();
        let variants = Variants::new(&board, Some(sql_only()));
        assert!(variants.view("stable").reader.is_none(), "the default variant reads the stable chain");
        let fast =
            VariantOverrides { list_cache_ttl: Some(std::time::Duration::from_millis(5)), ..tiers(&[TierId::Sql]) };
        board.replace(with_variant("own", fast.clone())).unwrap();
        let view = variants.view("own");
        assert!(view.reader.is_some(), "a read-path variant has its own chain");
        assert_eq!(view.cells.cache.as_ref().unwrap().load().ttl, std::time::Duration::from_millis(5));
        assert!(variants.view("stable").reader.is_none());
        assert!(variants.view("gone").reader.is_none(), "an unknown name reads stable");

        // A change of the cache lifetime only: the same view, its cell updated.
        let slower = VariantOverrides { list_cache_ttl: Some(std::time::Duration::from_millis(9)), ..fast };
        board.replace(with_variant("own", slower)).unwrap();
        let again = variants.view("own");
        assert!(Arc::ptr_eq(&view, &again), "same tiers: the view (and its cache) is kept");
        assert_eq!(again.cells.cache.as_ref().unwrap().load().ttl, std::time::Duration::from_millis(9));

        // The variant no longer changes the read path: back on the stable chain.
        let plain = VariantOverrides { shadow_basis_points: Some(5), ..Default::default() };
        board.replace(with_variant("own", plain)).unwrap();
        assert!(variants.view("own").reader.is_none());
    }
}
