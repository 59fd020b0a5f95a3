//! The switch board: the current control config, swapped whole, and the live
//! settings cells of the stores it keeps in step.
//!
//! A reload reads the file, and does nothing when its bytes hash the same as
//! the last ones seen (polling by content hash sees a Kubernetes ConfigMap
//! update, which swaps a `..data` symlink, as reliably as an edit in place,
//! and needs no inotify). New bytes are parsed and validated; a bad file is
//! refused with one warning and `pricing_control_reload_total{result}`, and
//! the last good config stays. A good file whose effective values differ is
//! swapped in: every changed switch is logged and counted in
//! `pricing_switch_changes_total{switch}`, `pricing_control_version` moves
//! up by one, and the store cells bound to the switch board receive their new
//! `DualSettings` / `CacheSettings` so each store sees them on its next call.
//! The projector's pair cells ([`Switchboard::bind_projector_pair`]) take
//! only the write mode of `[projector.<pair>]`: their timeouts and breakers
//! stay the projector's own.
//!
//! A pair section is resolved for this process's zone
//! ([`Switchboard::set_zone`], which the binary reads once at start) before
//! it is pushed: `prefer_local` without `local` becomes the cluster of the
//! zone, or `split` when the zone is unknown. How each bound pair resolved is
//! logged once per change (`prefer_local zone resolved` / `prefer_local
//! without a known zone: reading split`) and shown in the gauge
//! `pricing_prefer_local_zone_unknown{pair}` (1 while such a pair reads split).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::{ArcSwap, Guard};
use pricing_store::{CacheSettings, DualSettings, Live, PairId, WriteMode, live};
use sha2::{Digest, Sha256};

use crate::config::{ControlConfig, ControlError};
use crate::pair::{Locality, PairSwitches};
use crate::view::{self, Change};

/// The store pairs whose settings the control file carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PairSwitch {
    /// `[list.redis]`
    ListRedis,
    /// `[list.hbase]`
    ListHbase,
    /// `[detail.redis]`
    DetailRedis,
}

impl PairSwitch {
    fn settings(self, config: &ControlConfig) -> &PairSwitches {
        config.pair(self)
    }

    pub const ALL: [PairSwitch; 3] = [PairSwitch::ListRedis, PairSwitch::ListHbase, PairSwitch::DetailRedis];

    fn index(self) -> usize {
        self as usize
    }

    /// The server whose table holds the section: `list`, `detail`.
    pub fn server(self) -> &'static str {
        match self {
            PairSwitch::ListRedis | PairSwitch::ListHbase => "list",
            PairSwitch::DetailRedis => "detail",
        }
    }

    /// Which pair the section steers.
    pub fn pair(self) -> PairId {
        match self {
            PairSwitch::ListRedis | PairSwitch::DetailRedis => PairId::Redis,
            PairSwitch::ListHbase => PairId::Hbase,
        }
    }

    /// The section's name: the `pair` label of the zone gauge.
    pub fn section(self) -> &'static str {
        match self {
            PairSwitch::ListRedis => "list.redis",
            PairSwitch::ListHbase => "list.hbase",
            PairSwitch::DetailRedis => "detail.redis",
        }
    }
}

/// The projector's pair cells, one list per [`PairId`].
fn projector_index(pair: PairId) -> usize {
    match pair {
        PairId::Redis => 0,
        PairId::Hbase => 1,
    }
}

fn projector_write(config: &ControlConfig, pair: PairId) -> WriteMode {
    config.projector.pair(pair).write
}

/// A check of what the running server can apply, registered by the server
/// ([`Switchboard::require`]): a config it fails is refused like an invalid
/// file (the last good one stays, with the reason logged and counted).
pub type Capability = Arc<dyn Fn(&ControlConfig) -> Result<(), ControlError> + Send + Sync>;

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// The file holds the same bytes as last time, or new bytes with the
    /// same effective values (a comment, a reordering).
    Unchanged,
    /// A new config is in force.
    Applied { version: u64, changes: Vec<Change> },
}

/// The live control config. Cheap to clone; every clone is the same board.
#[derive(Clone)]
pub struct Switchboard {
    inner: Arc<Inner>,
}

struct Inner {
    path: Option<PathBuf>,
    current: Live<ControlConfig>,
    /// Everything a reload changes, behind one lock so that two reloads
    /// (the watcher and an admin call) cannot interleave their pushes.
    state: Mutex<State>,
}

struct State {
    /// Accepted configs so far; the first is 1.
    version: u64,
    /// What the last reload saw, so an unchanged or still-broken file is
    /// neither re-parsed nor re-logged on every poll.
    last_seen: Option<Seen>,
    pairs: [Vec<Live<DualSettings>>; 3],
    caches: Vec<Live<CacheSettings>>,
    /// The projector's pair cells, by [`PairId`] (`projector_index`).
    projector: [Vec<Live<DualSettings>>; 2],
    /// This process's zone (`topology.kubernetes.io/zone` of its node).
    zone: Option<String>,
    /// How each pair with bound cells last resolved, to log a change once.
    localities: [Option<Locality>; 3],
    /// What the server can apply; every new config must pass them all.
    checks: Vec<Capability>,
}

#[derive(PartialEq, Eq)]
enum Seen {
    Bytes([u8; 32]),
    Unreadable(std::io::ErrorKind),
}

impl std::fmt::Debug for Switchboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Switchboard").field("path", &self.inner.path).field("version", &self.version()).finish()
    }
}

impl Switchboard {
    /// Loads the control file; the server refuses to start when it is bad.
    pub fn load(path: impl AsRef<Path>) -> Result<Switchboard, ControlError> {
        let path = path.as_ref().to_path_buf();
        let bytes = std::fs::read(&path).map_err(|source| ControlError::Read { path: path.clone(), source })?;
        let config = parse_bytes(&bytes)?;
        let board = Switchboard::build(Some(path.clone()), config);
        board.inner.state.lock().unwrap_or_else(|e| e.into_inner()).last_seen = Some(Seen::Bytes(hash(&bytes)));
        tracing::info!(path = %path.display(), version = 1, "control config loaded");
        Ok(board)
    }

    /// What a server starts with: the control file if one is configured,
    /// watched every `poll`; otherwise the defaults, with no file to watch.
    pub fn open(path: Option<&Path>, poll: Duration) -> Result<Switchboard, ControlError> {
        match path {
            Some(path) => {
                let board = Switchboard::load(path)?;
                board.spawn_watcher(poll);
                Ok(board)
            }
            None => Switchboard::from_config(ControlConfig::default()),
        }
    }

    /// Whether a control file governs this board (caller accounts are only
    /// enforced then: the embedded default runs open).
    pub fn has_file(&self) -> bool {
        self.inner.path.is_some()
    }

    /// A board with a fixed starting config and no file (tests, the
    /// embedded default); [`Switchboard::replace`] still changes it.
    pub fn from_config(mut config: ControlConfig) -> Result<Switchboard, ControlError> {
        config.validate()?;
        config.compiled_guard = config.guard.compile()?;
        Ok(Switchboard::build(None, config))
    }

    fn build(path: Option<PathBuf>, config: ControlConfig) -> Switchboard {
        let pairs = PairSwitch::ALL.map(|p| vec![live(p.settings(&config).resolve(None).0)]);
        let caches = vec![live(config.list.cache.clone())];
        metrics::gauge!("pricing_control_version").set(1.0);
        Switchboard {
            inner: Arc::new(Inner {
                path,
                current: Arc::new(ArcSwap::from_pointee(config)),
                state: Mutex::new(State {
                    version: 1,
                    last_seen: None,
                    pairs,
                    caches,
                    projector: [Vec::new(), Vec::new()],
                    zone: None,
                    localities: [None, None, None],
                    checks: Vec::new(),
                }),
            }),
        }
    }

    /// The config in force, for a call to read several values from one
    /// consistent snapshot without an `Arc` clone.
    pub fn load_config(&self) -> Guard<Arc<ControlConfig>> {
        self.inner.current.load()
    }

    /// The config in force, to keep.
    pub fn snapshot(&self) -> Arc<ControlConfig> {
        self.inner.current.load_full()
    }

    /// The cell the config lives in.
    pub fn live(&self) -> Live<ControlConfig> {
        self.inner.current.clone()
    }

    /// How many configs were accepted; 1 is the one loaded at start.
    pub fn version(&self) -> u64 {
        self.lock().version
    }

    /// The live settings of a store pair, owned by the board.
    pub fn pair(&self, pair: PairSwitch) -> Live<DualSettings> {
        self.lock().pairs[pair.index()][0].clone()
    }

    /// The live settings of the list server's in-process cache.
    pub fn list_cache(&self) -> Live<CacheSettings> {
        self.lock().caches[0].clone()
    }

    /// Makes a cell a store already holds follow the control file: it gets
    /// the current settings (resolved for this process's zone) now and
    /// every accepted change after.
    pub fn bind_pair(&self, pair: PairSwitch, cell: Live<DualSettings>) {
        let mut state = self.lock();
        let (settings, locality) = pair.settings(&self.load_config()).resolve(state.zone.as_deref());
        cell.store(Arc::new(settings));
        state.pairs[pair.index()].push(cell);
        report_locality(&mut state, pair, locality);
    }

    /// Sets this process's zone (read once at start by the binary, from the
    /// environment the chart fills) and re-resolves every pair for it.
    pub fn set_zone(&self, zone: Option<String>) {
        let mut state = self.lock();
        let zone = zone.filter(|z| !z.trim().is_empty());
        if state.zone == zone {
            return;
        }
        tracing::info!(zone = zone.as_deref().unwrap_or("(unknown)"), "this process's zone");
        state.zone = zone;
        let config = self.load_config();
        for pair in PairSwitch::ALL {
            push_pair(&mut state, pair, pair.settings(&config));
        }
    }

    /// This process's zone, as given to [`Switchboard::set_zone`].
    pub fn zone(&self) -> Option<String> {
        self.lock().zone.clone()
    }

    /// As [`Switchboard::bind_pair`], for a cache's settings cell.
    pub fn bind_list_cache(&self, cell: Live<CacheSettings>) {
        let mut state = self.lock();
        cell.store(Arc::new(self.load_config().list.cache.clone()));
        state.caches.push(cell);
    }

    /// Makes the write mode of a projector's pair cell follow
    /// `[projector.<pair>] write`: set now and on every accepted change;
    /// the cell's other settings (timeouts, breakers) are left as they are.
    pub fn bind_projector_pair(&self, pair: PairId, cell: Live<DualSettings>) {
        let mut state = self.lock();
        set_write(&cell, projector_write(&self.load_config(), pair));
        state.projector[projector_index(pair)].push(cell);
    }

    /// Whether `[projector] paused` is set in the config in force.
    pub fn projector_paused(&self) -> bool {
        self.load_config().projector.paused
    }

    /// The admin view: `{"version": n, "config": {...}}` with secrets redacted.
    pub fn admin_view(&self) -> serde_json::Value {
        let state = self.lock();
        serde_json::json!({ "version": state.version, "zone": state.zone, "config": view::redacted(&self.load_config()) })
    }

    /// The admin view as a function a metrics endpoint can call for each
    /// request (`/config`).
    pub fn admin_endpoint(&self) -> Arc<dyn Fn() -> String + Send + Sync> {
        let board = self.clone();
        Arc::new(move || board.admin_view().to_string())
    }

    /// Registers what this server can apply: the config in force must pass
    /// `check` now (else the error, and the server should refuse to start),
    /// and every later config must pass it to be accepted.
    pub fn require(&self, check: Capability) -> Result<(), ControlError> {
        let mut state = self.lock();
        check(&self.load_config())?;
        state.checks.push(check);
        Ok(())
    }

    /// Reads the file now and applies it if it is new and good.
    pub fn reload_now(&self) -> Result<Reload, ControlError> {
        let path = self.inner.path.as_deref().ok_or(ControlError::NoFile)?;
        let read = std::fs::read(path);
        self.offer(path, read)
    }

    /// Replaces the config with one built in code, as a reload would.
    pub fn replace(&self, mut config: ControlConfig) -> Result<Reload, ControlError> {
        config.validate()?;
        config.compiled_guard = config.guard.compile()?;
        let mut state = self.lock();
        capable(&state, &config)?;
        Ok(self.apply(&mut state, config))
    }

    /// Starts the watcher: the file is re-read every `every` (a small file,
    /// read synchronously: microseconds, and deterministic under paused test
    /// time). The task ends when every handle to the board is dropped.
    pub fn spawn_watcher(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let board: Weak<Inner> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(inner) = board.upgrade() else { return };
                // Errors are logged and counted inside.
                let _ = Switchboard { inner }.reload_now();
            }
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave State half-written in
        // a way that matters more than refusing all reloads would.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn offer(&self, path: &Path, read: std::io::Result<Vec<u8>>) -> Result<Reload, ControlError> {
        let mut state = self.lock();
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(source) => {
                let seen = Seen::Unreadable(source.kind());
                if state.last_seen.as_ref() != Some(&seen) {
                    tracing::warn!(path = %path.display(), error = %source, "control file unreadable, keeping the last good config");
                    metrics::counter!("pricing_control_reload_total", "result" => "unreadable").increment(1);
                    state.last_seen = Some(seen);
                }
                return Err(ControlError::Read { path: path.to_path_buf(), source });
            }
        };
        let seen = Seen::Bytes(hash(&bytes));
        if state.last_seen.as_ref() == Some(&seen) {
            return Ok(Reload::Unchanged);
        }
        state.last_seen = Some(seen);
        match parse_bytes(&bytes).and_then(|config| capable(&state, &config).map(|()| config)) {
            Ok(config) => Ok(self.apply(&mut state, config)),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "control file refused, keeping the last good config");
                metrics::counter!("pricing_control_reload_total", "result" => error.kind()).increment(1);
                Err(error)
            }
        }
    }

    fn apply(&self, state: &mut State, config: ControlConfig) -> Reload {
        let old = self.inner.current.load_full();
        let changes = view::diff(&old, &config);
        if changes.is_empty() {
            metrics::counter!("pricing_control_reload_total", "result" => "unchanged").increment(1);
            return Reload::Unchanged;
        }
        let config = Arc::new(config);
        // Stores first, then the snapshot: a reader that sees the new
        // snapshot never sees stores still on the old settings for long.
        for pair in PairSwitch::ALL {
            let new = pair.settings(&config);
            if pair.settings(&old) != new {
                push_pair(state, pair, new);
            }
        }
        for pair in PairId::ALL {
            let new = projector_write(&config, pair);
            if projector_write(&old, pair) != new {
                for cell in &state.projector[projector_index(pair)] {
                    set_write(cell, new);
                }
            }
        }
        if old.list.cache != config.list.cache {
            let new = Arc::new(config.list.cache.clone());
            for cell in &state.caches {
                cell.store(new.clone());
            }
        }
        self.inner.current.store(config);
        state.version += 1;
        let version = state.version;
        metrics::gauge!("pricing_control_version").set(version as f64);
        metrics::counter!("pricing_control_reload_total", "result" => "applied").increment(1);
        for change in &changes {
            metrics::counter!("pricing_switch_changes_total", "switch" => change.switch.clone()).increment(1);
            tracing::info!(
                switch = %change.switch,
                old = change.old.as_deref().unwrap_or("(unset)"),
                new = change.new.as_deref().unwrap_or("(unset)"),
                version,
                "control switch changed"
            );
        }
        Reload::Applied { version, changes }
    }
}

/// Resolves a pair's section for this process's zone and stores it in
/// every cell of the pair.
fn push_pair(state: &mut State, pair: PairSwitch, section: &PairSwitches) {
    let (settings, locality) = section.resolve(state.zone.as_deref());
    let settings = Arc::new(settings);
    for cell in &state.pairs[pair.index()] {
        cell.store(settings.clone());
    }
    report_locality(state, pair, locality);
}

/// Logs (once per change) and gauges how a pair that stores follow found
/// its local cluster. The board's own cells alone are not reported: a
/// server without that pair has nothing to say about it.
fn report_locality(state: &mut State, pair: PairSwitch, locality: Locality) {
    if state.pairs[pair.index()].len() < 2 || state.localities[pair.index()].as_ref() == Some(&locality) {
        return;
    }
    let section = pair.section();
    let unknown = matches!(locality, Locality::Unknown { .. });
    metrics::gauge!("pricing_prefer_local_zone_unknown", "pair" => section).set(if unknown { 1.0 } else { 0.0 });
    match &locality {
        Locality::Unknown { .. } => {
            tracing::warn!(pair = section, why = %locality, "prefer_local without a known zone: reading split")
        }
        Locality::Zone { zone, local } => {
            tracing::info!(pair = section, zone = %zone, local = local.as_str(), "prefer_local zone resolved")
        }
        Locality::NotByZone => {}
    }
    state.localities[pair.index()] = Some(locality);
}

/// Replaces the write mode of a pair cell, keeping the rest.
fn set_write(cell: &Live<DualSettings>, write: WriteMode) {
    if cell.load().write != write {
        let mut settings = DualSettings::clone(&cell.load());
        settings.write = write;
        cell.store(Arc::new(settings));
    }
}

/// Whether the server can apply `config` (every registered capability check).
fn capable(state: &State, config: &ControlConfig) -> Result<(), ControlError> {
    state.checks.iter().try_for_each(|check| check(config))
}

fn hash(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn parse_bytes(bytes: &[u8]) -> Result<ControlConfig, ControlError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ControlError::Invalid { field: "(file)".into(), reason: "not UTF-8".into() })?;
    ControlConfig::parse(text)
}
