//! A pair of store clusters (Redis A/B, HBase A/B) read and written as one.
//!
//! Reads ([`DualStore`]): each call picks a cluster by the live [`ReadMode`]:
//! `split` draws per request (50/50 by default, so both clusters stay warm),
//! `prefer_local` reads the same machine room first (seed 001), `only_a` /
//! `only_b` is the manual switch of an emergency. The call to the chosen
//! cluster runs under that cluster's timeout and circuit breaker; on an error,
//! a timeout or an open breaker the same batch goes to the other cluster
//! within the same call. In a forced `only_*` mode the other cluster is NOT
//! asked unless `failover_in_forced_mode` is set: seed 001's manual switch
//! exists because the other cluster is known bad (broken, being rebuilt,
//! holding stale data), and quietly reading it anyway would undo the switch.
//! When both fail the call fails with one [`StoreError`] naming both.
//!
//! The caller's deadline ([`DualStore::fetch_from_within`], or
//! [`RecordStore::fetch_within`]) cuts every cluster's budget: a cluster
//! that may still fail over is given at most half of what the deadline
//! leaves, so that the other cluster can still answer in time; the last
//! cluster asked gets the rest. Once the deadline has passed the pair stops
//! (no failover: the caller is gone) and fails with
//! [`StoreErrorKind::DeadlineExceeded`]. A call cut by the caller's deadline
//! is not held against the cluster's breaker.
//!
//! The pair never fails closed (issue 12: one cluster lost, the survivor
//! slowed by double load, its breaker opened on slow calls, and every call
//! failed). Two rules, in the manner of Envoy's panic threshold:
//! - a cluster that stands alone (the other's breaker is open, or a forced
//!   mode leaves it out) is read with the longer `alone_timeout` and its slow
//!   calls do not count toward its breaker: only failures can open it;
//! - when every cluster the call may ask is refused by its breaker, the
//!   call is still tried (panic), breakers bypassed, each cluster within
//!   `alone_timeout`, the whole bounded by the caller's deadline; what fails
//!   then is left to the tier chain (next tier, or stale-if-error).
//!
//! Writes ([`DualWriter`]): both clusters, concurrently, or only one when the
//! live [`WriteMode`] says so; the report says per cluster what happened so
//! that the projector can queue what failed. Retries are the projector's.
//!
//! Every call at one cluster, read or write, goes through that cluster's
//! [`StoreGuard`] (crate::guard): its timeout, its breaker (reads), its metrics.
//!
//! Settings are read from a [`Live`] snapshot on every call, so the control
//! config flips a mode, a timeout or breaker settings without a restart.
//! Metrics (labels `pair`, `cluster` = the cluster store's name):
//! `pricing_dual_requests_total`, `pricing_dual_errors_total{kind}` (kind:
//! timeout, unavailable, protocol, deadline, breaker_open, cancelled),
//! `pricing_dual_latency_seconds`, `pricing_dual_failover_total{pair, from, to, variant}`,
//! `pricing_dual_write_requests_total`, `pricing_dual_write_errors_total{kind}`,
//! `pricing_dual_write_latency_seconds`, `pricing_dual_panic_total{pair}`, and
//! each cluster's `pricing_breaker_state{name}`. Failovers and failures are
//! logged at most once per [`crate::LogThrottle::DEFAULT_INTERVAL`] per kind, each
//! line with the count held back since the last; breaker state changes are
//! logged each time.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pricing_record::GoodsId;
use serde::{Deserialize, Serialize};

use crate::breaker::{Breaker, BreakerSettings, BreakerState};
use crate::guard::{Admission, GuardError, Limits, Meter, StoreGuard};
use crate::settings::{Live, SettingsError, millis, percent, positive};
use crate::{Deadline, RecordStore, RecordWriter, SharedRecord, StoreError, StoreErrorKind, WriteReport};

/// One side of a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cluster {
    A,
    B,
}

impl Cluster {
    pub fn other(self) -> Cluster {
        match self {
            Cluster::A => Cluster::B,
            Cluster::B => Cluster::A,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Cluster::A => "a",
            Cluster::B => "b",
        }
    }

    fn index(self) -> usize {
        match self {
            Cluster::A => 0,
            Cluster::B => 1,
        }
    }
}

/// How reads pick a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum ReadMode {
    /// Per request at random: A with `a_percent` percent, B otherwise.
    Split {
        #[serde(default = "half")]
        a_percent: u8,
    },
    /// Only A (the manual switch); B only if `failover_in_forced_mode`.
    /// (Braces so that serde rejects stray keys next to the mode.)
    OnlyA {},
    /// Only B (the manual switch); A only if `failover_in_forced_mode`.
    OnlyB {},
    /// The cluster in this machine room first, the other on failure.
    PreferLocal { local: Cluster },
}

fn half() -> u8 {
    50
}

impl Default for ReadMode {
    fn default() -> Self {
        ReadMode::Split { a_percent: half() }
    }
}

/// Which clusters writes go to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteMode {
    #[default]
    Both,
    OnlyA,
    OnlyB,
}

impl WriteMode {
    fn writes(self, cluster: Cluster) -> bool {
        matches!(
            (self, cluster),
            (WriteMode::Both, _) | (WriteMode::OnlyA, Cluster::A) | (WriteMode::OnlyB, Cluster::B)
        )
    }
}

/// Per-cluster protection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSettings {
    /// Budget for one read batch at this cluster.
    #[serde(rename = "timeout_ms", with = "millis")]
    pub timeout: Duration,
    /// Budget for one write batch at this cluster.
    #[serde(rename = "write_timeout_ms", with = "millis")]
    pub write_timeout: Duration,
    pub breaker: BreakerSettings,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            timeout: Duration::from_millis(50),
            write_timeout: Duration::from_millis(500),
            breaker: BreakerSettings::default(),
        }
    }
}

/// Everything a pair reads live. `Default` is 50/50 split, write both, no
/// failover in forced modes, 50 ms read timeouts, 250 ms alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DualSettings {
    pub read: ReadMode,
    pub write: WriteMode,
    /// In `only_a` / `only_b`, ask the other cluster when the forced one
    /// fails. Off by default: a forced mode means "only".
    pub failover_in_forced_mode: bool,
    /// Budget of a read at a cluster that stands alone: the other one's
    /// breaker is open (or a forced mode leaves it out), or both are open
    /// (panic). A cluster carrying the pair's whole load is slower; failing
    /// its calls at the usual budget would fail them for good. Slow calls
    /// of a cluster standing alone do not count toward its breaker either:
    /// only its failures do. Never below a cluster's own `timeout_ms`.
    #[serde(rename = "alone_timeout_ms", with = "millis")]
    pub alone_timeout: Duration,
    pub a: ClusterSettings,
    pub b: ClusterSettings,
}

impl Default for DualSettings {
    fn default() -> Self {
        DualSettings {
            read: ReadMode::default(),
            write: WriteMode::default(),
            failover_in_forced_mode: false,
            alone_timeout: Duration::from_millis(250),
            a: ClusterSettings::default(),
            b: ClusterSettings::default(),
        }
    }
}

impl DualSettings {
    pub fn cluster(&self, cluster: Cluster) -> &ClusterSettings {
        match cluster {
            Cluster::A => &self.a,
            Cluster::B => &self.b,
        }
    }

    pub fn validate(&self) -> Result<(), SettingsError> {
        if let ReadMode::Split { a_percent } = self.read {
            percent("read.a_percent", a_percent)?;
        }
        positive("alone_timeout_ms", self.alone_timeout)?;
        for c in [&self.a, &self.b] {
            positive("timeout_ms", c.timeout)?;
            positive("write_timeout_ms", c.write_timeout)?;
            c.breaker.validate()?;
        }
        Ok(())
    }

    /// The first cluster to read and whether the other may be asked after it.
    fn pick(&self) -> (Cluster, bool) {
        match self.read {
            ReadMode::Split { a_percent } => {
                let a = a_percent >= 100 || (a_percent > 0 && rand::random_range(0..100u8) < a_percent);
                (if a { Cluster::A } else { Cluster::B }, true)
            }
            ReadMode::OnlyA {} => (Cluster::A, self.failover_in_forced_mode),
            ReadMode::OnlyB {} => (Cluster::B, self.failover_in_forced_mode),
            ReadMode::PreferLocal { local } => (local, true),
        }
    }
}

/// What a dual read returned and who served it.
#[derive(Debug, Clone)]
pub struct Served {
    pub records: Vec<SharedRecord>,
    pub cluster: Cluster,
    /// True when the first cluster chosen failed and the other answered.
    pub failed_over: bool,
}

struct Side {
    store: Arc<dyn RecordStore>,
    guard: StoreGuard,
}

/// Reads a pair of clusters as one [`RecordStore`] named after the pair.
pub struct DualStore {
    pair: String,
    /// Shared with the pair's views ([`DualStore::view`]): one client and
    /// one breaker per cluster whatever reads through it.
    sides: Arc<[Side; 2]>,
    settings: Live<DualSettings>,
    /// The canary variant reading through this handle: the `variant` label
    /// of `pricing_dual_failover_total`.
    variant: Arc<str>,
}

/// The `variant` label of a pair read outside any variant view.
pub const STABLE_VARIANT: &str = "stable";

impl DualStore {
    /// `pair` names the pair in metrics and errors ("redis"); each cluster's
    /// breaker is named after its store ("redis-a").
    pub fn new(
        pair: impl Into<String>,
        a: Arc<dyn RecordStore>,
        b: Arc<dyn RecordStore>,
        settings: Live<DualSettings>,
    ) -> DualStore {
        let pair: String = pair.into();
        let current = settings.load();
        let side = |store: Arc<dyn RecordStore>, c: Cluster| Side {
            guard: StoreGuard::new(store.name(), Meter::PairRead { pair: Arc::from(pair.as_str()) })
                .with_breaker(current.cluster(c).breaker.clone()),
            store,
        };
        let sides = Arc::new([side(a, Cluster::A), side(b, Cluster::B)]);
        drop(current);
        DualStore { pair, sides, settings, variant: Arc::from(STABLE_VARIANT) }
    }

    /// Another handle on the same two clusters (same clients, same breakers,
    /// same metrics) reading by its own live `settings`: a canary variant's
    /// read mode. Its failovers are counted under `variant`.
    pub fn view(&self, settings: Live<DualSettings>, variant: Arc<str>) -> DualStore {
        DualStore { pair: self.pair.clone(), sides: Arc::clone(&self.sides), settings, variant }
    }

    /// The live settings; `store` a new value to switch.
    pub fn settings(&self) -> &Live<DualSettings> {
        &self.settings
    }

    #[expect(clippy::expect_used, reason = "`new` builds every side's guard with a breaker")]
    pub fn breaker(&self, cluster: Cluster) -> &Breaker {
        let guard = &self.sides[cluster.index()].guard;
        guard.breaker().expect("every side's guard is built with a breaker (DualStore::new)")
    }

    pub fn store(&self, cluster: Cluster) -> &Arc<dyn RecordStore> {
        &self.sides[cluster.index()].store
    }

    /// Fetches from the cluster the mode picks, failing over when allowed;
    /// with every allowed cluster's breaker open, tries them anyway (panic).
    pub async fn fetch_from(&self, ids: &[GoodsId]) -> Result<Served, StoreError> {
        self.fetch_from_within(ids, None).await
    }

    /// As [`DualStore::fetch_from`], for a caller who stops waiting at
    /// `deadline` (see the module doc).
    pub async fn fetch_from_within(&self, ids: &[GoodsId], deadline: Option<Deadline>) -> Result<Served, StoreError> {
        // A full Arc (not a guard) because it is held across awaits.
        let settings = self.settings.load_full();
        let (first, may_fail_over) = settings.pick();
        if ids.is_empty() {
            return Ok(Served { records: Vec::new(), cluster: first, failed_over: false });
        }
        let second = first.other();
        let first_attempt = if !may_fail_over || self.is_open(second) { Attempt::Alone } else { Attempt::Guarded };
        // Time for the other cluster is kept only when it may be asked.
        let keep = may_fail_over && first_attempt == Attempt::Guarded;
        let ask = |cluster, attempt, keep| Ask { ids, settings: &settings, deadline, cluster, attempt, keep };
        let first_error = match self.fetch_at(ask(first, first_attempt, keep)).await {
            Ok(records) => return Ok(Served { records, cluster: first, failed_over: false }),
            Err(e) => e,
        };
        if first_error.error.kind == StoreErrorKind::DeadlineExceeded {
            // The caller is gone: asking the other cluster helps nobody.
            return Err(self.pair_error(StoreErrorKind::DeadlineExceeded, &first_error.error));
        }
        if !may_fail_over {
            if first_error.refused {
                // The only cluster allowed is refused by its breaker: try it anyway.
                return self.panic(&[first], ids, &settings, deadline).await.map_err(|e| self.pair_error(e.kind, &e));
            }
            return Err(self.pair_error(first_error.error.kind, &first_error.error));
        }
        let (from, to) = (self.sides[first.index()].store.name(), self.sides[second.index()].store.name());
        metrics::counter!(
            "pricing_dual_failover_total",
            "pair" => self.pair.clone(), "from" => from.to_owned(), "to" => to.to_owned(), "variant" => self.variant.to_string()
        )
        .increment(1);
        crate::throttled!(|suppressed| {
            tracing::warn!(pair = %self.pair, from, to, error = %first_error.error, suppressed, "dual store fails over");
        });
        let second_attempt = if self.is_open(first) { Attempt::Alone } else { Attempt::Guarded };
        // The last cluster asked gets what is left (a refusal takes no time,
        // so the panic below still has it).
        let second_error = match self.fetch_at(ask(second, second_attempt, false)).await {
            Ok(records) => return Ok(Served { records, cluster: second, failed_over: true }),
            Err(e) => e,
        };
        if first_error.refused && second_error.refused {
            return self
                .panic(&[first, second], ids, &settings, deadline)
                .await
                .map_err(|e| self.pair_error(e.kind, &e));
        }
        let (first_error, second_error) = (first_error.error, second_error.error);
        let kind = combined_kind(first_error.kind, second_error.kind);
        crate::throttled!(|suppressed| {
            tracing::error!(pair = %self.pair, first = %first_error, second = %second_error, suppressed, "both clusters failed");
        });
        Err(self.pair_error(kind, format!("both clusters failed: {first_error}; {second_error}")))
    }

    fn pair_error(&self, kind: StoreErrorKind, message: impl ToString) -> StoreError {
        StoreError::new(self.pair.clone(), kind, message)
    }

    fn is_open(&self, cluster: Cluster) -> bool {
        self.breaker(cluster).state() == BreakerState::Open
    }

    /// Every allowed cluster's breaker refused the call: ask them in order
    /// regardless, each within the alone budget; the first answer wins.
    async fn panic(
        &self,
        clusters: &[Cluster],
        ids: &[GoodsId],
        settings: &DualSettings,
        deadline: Option<Deadline>,
    ) -> Result<Served, StoreError> {
        metrics::counter!("pricing_dual_panic_total", "pair" => self.pair.clone()).increment(1);
        crate::throttled!(|suppressed| {
            tracing::warn!(pair = %self.pair, suppressed, "every breaker of the pair is open: trying the clusters anyway");
        });
        let mut last = None;
        for (i, cluster) in clusters.iter().enumerate() {
            let keep = i + 1 < clusters.len();
            let ask = Ask { ids, settings, deadline, cluster: *cluster, attempt: Attempt::Panic, keep };
            match self.fetch_at(ask).await {
                Ok(records) => return Ok(Served { records, cluster: *cluster, failed_over: i > 0 }),
                Err(e) if e.error.kind == StoreErrorKind::DeadlineExceeded => return Err(e.error),
                Err(e) => last = Some(e.error),
            }
        }
        Err(last.unwrap_or_else(|| StoreError::unavailable(self.pair.clone(), "no cluster to read")))
    }

    /// One cluster's read through its guard: the budget of the attempt, its
    /// breaker's admission, the caller's deadline.
    async fn fetch_at(&self, ask: Ask<'_>) -> Result<Vec<SharedRecord>, GuardError> {
        let side = &self.sides[ask.cluster.index()];
        let limits = ask.settings.cluster(ask.cluster);
        if let Some(breaker) = side.guard.breaker() {
            breaker.ensure_settings(&limits.breaker);
        }
        let (timeout, admission) = match ask.attempt {
            Attempt::Guarded => (limits.timeout, Admission::Counted),
            // Standing alone, slowness is not held against a cluster: only failures are.
            Attempt::Alone => (limits.timeout.max(ask.settings.alone_timeout), Admission::FailuresOnly),
            Attempt::Panic => (limits.timeout.max(ask.settings.alone_timeout), Admission::Bypass),
        };
        let limits = Limits { timeout: Some(timeout), deadline: ask.deadline, admission, leave_for_failover: ask.keep };
        side.guard.call("fetch", limits, side.store.fetch(ask.ids)).await
    }
}

/// The kind of a failure of both clusters: the caller's deadline when it
/// ended either attempt, the common kind, else unavailable.
fn combined_kind(first: StoreErrorKind, second: StoreErrorKind) -> StoreErrorKind {
    if first == StoreErrorKind::DeadlineExceeded || second == StoreErrorKind::DeadlineExceeded {
        StoreErrorKind::DeadlineExceeded
    } else if first == second {
        first
    } else {
        StoreErrorKind::Unavailable
    }
}

/// One cluster's part of a read.
struct Ask<'a> {
    ids: &'a [GoodsId],
    settings: &'a DualSettings,
    deadline: Option<Deadline>,
    cluster: Cluster,
    attempt: Attempt,
    /// Keep half of what the deadline leaves for a cluster asked after this one.
    keep: bool,
}

/// How one cluster is asked within a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    /// The usual: its breaker, its timeout, slow calls counted.
    Guarded,
    /// The other cluster is out: its breaker, the alone budget, slow calls not counted.
    Alone,
    /// Every breaker is open: no breaker, the alone budget.
    Panic,
}

#[async_trait]
impl RecordStore for DualStore {
    fn name(&self) -> &str {
        &self.pair
    }

    async fn fetch(&self, ids: &[GoodsId]) -> Result<Vec<SharedRecord>, StoreError> {
        self.fetch_from(ids).await.map(|served| served.records)
    }

    async fn fetch_within(&self, ids: &[GoodsId], deadline: Option<Deadline>) -> Result<Vec<SharedRecord>, StoreError> {
        self.fetch_from_within(ids, deadline).await.map(|served| served.records)
    }
}

/// What one cluster did with a dual write.
#[derive(Debug, Clone)]
pub enum SideWrite<T> {
    Done(T),
    Failed(StoreError),
    /// Not written: the write mode excludes this cluster. The projector
    /// catches it up later (seed 001: full sync before dual writes resume).
    Skipped,
}

impl<T> SideWrite<T> {
    pub fn is_failed(&self) -> bool {
        matches!(self, SideWrite::Failed(_))
    }
}

/// Per-cluster result of a dual write.
#[derive(Debug, Clone)]
pub struct DualWriteReport<T> {
    pub a: SideWrite<T>,
    pub b: SideWrite<T>,
}

impl<T> DualWriteReport<T> {
    pub fn get(&self, cluster: Cluster) -> &SideWrite<T> {
        match cluster {
            Cluster::A => &self.a,
            Cluster::B => &self.b,
        }
    }

    /// The clusters whose write failed, with the error: what to queue.
    pub fn failed(&self) -> impl Iterator<Item = (Cluster, &StoreError)> {
        [(Cluster::A, &self.a), (Cluster::B, &self.b)].into_iter().filter_map(|(c, w)| match w {
            SideWrite::Failed(e) => Some((c, e)),
            _ => None,
        })
    }
}

/// Writes a pair of clusters.
pub struct DualWriter {
    pair: String,
    sides: [(Arc<dyn RecordWriter>, StoreGuard); 2],
    settings: Live<DualSettings>,
}

impl DualWriter {
    pub fn new(
        pair: impl Into<String>,
        a: Arc<dyn RecordWriter>,
        b: Arc<dyn RecordWriter>,
        settings: Live<DualSettings>,
    ) -> DualWriter {
        let pair: String = pair.into();
        let side = |writer: Arc<dyn RecordWriter>| {
            let guard = StoreGuard::new(writer.name(), Meter::PairWrite { pair: Arc::from(pair.as_str()) });
            (writer, guard)
        };
        let sides = [side(a), side(b)];
        DualWriter { pair, sides, settings }
    }

    /// Versioned put to every cluster the write mode names, concurrently.
    pub async fn put_each(&self, records: &[SharedRecord]) -> DualWriteReport<WriteReport> {
        let settings = self.settings.load_full();
        let (a, b) = futures::join!(
            self.write_at(Cluster::A, &settings, "put", |w| async move { w.put(records).await }),
            self.write_at(Cluster::B, &settings, "put", |w| async move { w.put(records).await }),
        );
        DualWriteReport { a, b }
    }

    /// Physical removal at every cluster the write mode names.
    pub async fn remove_each(&self, ids: &[GoodsId]) -> DualWriteReport<()> {
        let settings = self.settings.load_full();
        let (a, b) = futures::join!(
            self.write_at(Cluster::A, &settings, "remove", |w| async move { w.remove(ids).await }),
            self.write_at(Cluster::B, &settings, "remove", |w| async move { w.remove(ids).await }),
        );
        DualWriteReport { a, b }
    }

    /// One cluster's write through its guard, within its write timeout (the
    /// guard counts and logs a failure).
    async fn write_at<'a, T, F, Fut>(
        &'a self,
        cluster: Cluster,
        settings: &DualSettings,
        op_name: &'static str,
        op: F,
    ) -> SideWrite<T>
    where
        F: FnOnce(&'a dyn RecordWriter) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        if !settings.write.writes(cluster) {
            return SideWrite::Skipped;
        }
        let (writer, guard) = &self.sides[cluster.index()];
        let limits = Limits::timeout(settings.cluster(cluster).write_timeout);
        match guard.call(op_name, limits, op(&**writer)).await {
            Ok(v) => SideWrite::Done(v),
            Err(e) => SideWrite::Failed(e.error),
        }
    }

    fn merge<T>(&self, report: DualWriteReport<T>) -> Result<T, StoreError> {
        match (report.a, report.b) {
            (SideWrite::Done(v), _) | (_, SideWrite::Done(v)) => Ok(v),
            (SideWrite::Failed(a), SideWrite::Failed(b)) => {
                let kind = if a.kind == b.kind { a.kind } else { StoreErrorKind::Unavailable };
                Err(StoreError::new(self.pair.clone(), kind, format!("both clusters failed: {a}; {b}")))
            }
            (SideWrite::Failed(e), SideWrite::Skipped) | (SideWrite::Skipped, SideWrite::Failed(e)) => {
                Err(StoreError::new(self.pair.clone(), e.kind, &e))
            }
            (SideWrite::Skipped, SideWrite::Skipped) => {
                Err(StoreError::unavailable(self.pair.clone(), "no cluster to write"))
            }
        }
    }
}

/// As one writer (the tier chain's write-back): succeeds when at least one
/// cluster took the write and reports that cluster's counts (A's when both
/// did). A failure at one cluster is only logged and counted here; callers
/// that must queue per cluster use [`DualWriter::put_each`].
#[async_trait]
impl RecordWriter for DualWriter {
    fn name(&self) -> &str {
        &self.pair
    }

    async fn put(&self, records: &[SharedRecord]) -> Result<WriteReport, StoreError> {
        let report = self.put_each(records).await;
        self.merge(report)
    }

    async fn remove(&self, ids: &[GoodsId]) -> Result<(), StoreError> {
        let report = self.remove_each(ids).await;
        self.merge(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::BreakerState;
    use crate::conformance::{self, fixture};
    use crate::fault::{Fault, FaultyStore};
    use crate::settings::live;
    use tokio::time::Instant;

    fn pair(settings: DualSettings) -> (DualStore, Arc<FaultyStore>, Arc<FaultyStore>) {
        let a = FaultyStore::named("redis-a", fixture());
        let b = FaultyStore::named("redis-b", fixture());
        let store = DualStore::new("redis", a.clone(), b.clone(), live(settings));
        (store, a, b)
    }

    fn mode(read: ReadMode) -> DualSettings {
        DualSettings { read, ..DualSettings::default() }
    }

    #[tokio::test]
    async fn conforms() {
        let (store, _, _) = pair(DualSettings::default());
        conformance::check_reads(&store, &fixture()).await;
    }

    #[tokio::test]
    async fn split_sends_about_half_to_each() {
        let (store, a, b) = pair(DualSettings::default());
        for _ in 0..2_000 {
            store.fetch(&[101]).await.unwrap();
        }
        let (na, nb) = (a.fetch_count(), b.fetch_count());
        assert_eq!(na + nb, 2_000);
        // 50/50 over 2000 draws: the standard deviation is about 22.
        assert!((850..=1_150).contains(&na), "a got {na}, b got {nb}");
    }

    #[tokio::test]
    async fn split_ratio_follows_the_setting() {
        let (store, a, b) = pair(mode(ReadMode::Split { a_percent: 100 }));
        for _ in 0..50 {
            store.fetch(&[101]).await.unwrap();
        }
        assert_eq!((a.fetch_count(), b.fetch_count()), (50, 0));
        store.settings().store(Arc::new(mode(ReadMode::Split { a_percent: 0 })));
        for _ in 0..50 {
            store.fetch(&[101]).await.unwrap();
        }
        assert_eq!((a.fetch_count(), b.fetch_count()), (50, 50));
    }

    #[tokio::test]
    async fn forced_modes_read_one_cluster_and_do_not_fail_over_by_default() {
        let (store, a, b) = pair(mode(ReadMode::OnlyA {}));
        for _ in 0..10 {
            assert_eq!(store.fetch_from(&[101]).await.unwrap().cluster, Cluster::A);
        }
        assert_eq!((a.fetch_count(), b.fetch_count()), (10, 0));

        store.settings().store(Arc::new(mode(ReadMode::OnlyB {})));
        assert_eq!(store.fetch_from(&[101]).await.unwrap().cluster, Cluster::B);
        b.set_fault(Fault::Fail(StoreErrorKind::Unavailable));
        let err = store.fetch_from(&[101]).await.unwrap_err();
        assert_eq!((err.store.as_str(), err.kind), ("redis", StoreErrorKind::Unavailable));
        assert_eq!(a.fetch_count(), 10, "forced mode must not read the other cluster");

        store.settings().store(Arc::new(DualSettings { failover_in_forced_mode: true, ..mode(ReadMode::OnlyB {}) }));
        let served = store.fetch_from(&[101]).await.unwrap();
        assert_eq!((served.cluster, served.failed_over), (Cluster::A, true));
    }

    #[tokio::test]
    async fn prefer_local_reads_the_local_cluster_and_fails_over() {
        let (store, a, b) = pair(mode(ReadMode::PreferLocal { local: Cluster::B }));
        for _ in 0..10 {
            assert_eq!(store.fetch_from(&[101]).await.unwrap().cluster, Cluster::B);
        }
        assert_eq!((a.fetch_count(), b.fetch_count()), (0, 10));
        b.set_fault(Fault::Fail(StoreErrorKind::Protocol));
        let served = store.fetch_from(&[101, 102]).await.unwrap();
        assert_eq!((served.cluster, served.failed_over, served.records.len()), (Cluster::A, true, 2));
        assert_eq!(a.batches(), vec![vec![101, 102]], "the same batch goes to the other cluster");
    }

    #[tokio::test(start_paused = true)]
    async fn fails_over_on_timeout() {
        let (store, a, _b) = pair(mode(ReadMode::PreferLocal { local: Cluster::A }));
        a.set_fault(Fault::Delay(Duration::from_secs(1)));
        let started = Instant::now();
        let served = store.fetch_from(&[101]).await.unwrap();
        assert_eq!((served.cluster, served.failed_over), (Cluster::B, true));
        assert_eq!(started.elapsed(), Duration::from_millis(50), "waited exactly A's timeout");
    }

    #[tokio::test(start_paused = true)]
    async fn open_breaker_keeps_traffic_off_a_failing_cluster() {
        let (store, a, b) = pair(DualSettings::default());
        a.set_fault(Fault::Fail(StoreErrorKind::Unavailable));
        let mut failed_calls = 0;
        for _ in 0..400 {
            if store.fetch(&[101]).await.is_err() {
                failed_calls += 1;
            }
        }
        assert_eq!(failed_calls, 0, "every call that hit A failed over to B");
        assert_eq!(store.breaker(Cluster::A).state(), BreakerState::Open);
        assert_eq!(store.breaker(Cluster::B).state(), BreakerState::Closed);
        let reached_a = a.fetch_count();
        assert_eq!(reached_a, 20, "the breaker opened at min_calls (20) failures");
        for _ in 0..100 {
            store.fetch(&[101]).await.unwrap();
        }
        assert_eq!(a.fetch_count(), reached_a, "an open breaker sends nothing to A");
        assert!(b.fetch_count() >= 480);

        // After open_for, probes reach A again; once A is healthy it closes.
        a.set_fault(Fault::None);
        tokio::time::advance(Duration::from_secs(5)).await;
        for _ in 0..100 {
            store.fetch(&[101]).await.unwrap();
        }
        assert_eq!(store.breaker(Cluster::A).state(), BreakerState::Closed);
        assert!(a.fetch_count() > reached_a);
    }

    #[tokio::test(start_paused = true)]
    async fn both_down_is_an_error_of_the_pair() {
        let (store, a, b) = pair(DualSettings::default());
        a.set_fault(Fault::Delay(Duration::from_secs(1)));
        b.set_fault(Fault::Delay(Duration::from_secs(1)));
        let err = store.fetch(&[101]).await.unwrap_err();
        assert_eq!((err.store.as_str(), err.kind), ("redis", StoreErrorKind::Timeout));
        b.set_fault(Fault::Fail(StoreErrorKind::Unavailable));
        let err = store.fetch(&[101]).await.unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::Unavailable, "mixed kinds report unavailable");
        assert!(err.message.contains("redis-a") && err.message.contains("redis-b"), "{}", err.message);
    }

    /// Opens both breakers: every call fails at both clusters until each
    /// has seen `consecutive_failures` failures in a row.
    async fn open_both(store: &DualStore) {
        for _ in 0..100 {
            let _ = store.fetch(&[101]).await;
            if store.is_open(Cluster::A) && store.is_open(Cluster::B) {
                return;
            }
        }
        panic!("breakers did not open");
    }

    #[tokio::test(start_paused = true)]
    async fn with_every_breaker_open_calls_are_still_tried() {
        let (store, a, b) = pair(DualSettings::default());
        a.set_fault(Fault::Fail(StoreErrorKind::Unavailable));
        b.set_fault(Fault::Fail(StoreErrorKind::Unavailable));
        open_both(&store).await;
        let (na, nb) = (a.fetch_count(), b.fetch_count());
        let err = store.fetch(&[101]).await.unwrap_err();
        assert_eq!((err.store.as_str(), err.kind), ("redis", StoreErrorKind::Unavailable));
        assert_eq!(a.fetch_count() + b.fetch_count(), na + nb + 2, "panic asks both clusters, breakers bypassed");

        // One cluster comes back while both breakers are still open: the
        // very next call is answered, not refused for the open period.
        b.set_fault(Fault::None);
        assert!(store.is_open(Cluster::A) && store.is_open(Cluster::B));
        for _ in 0..20 {
            let served = store.fetch_from(&[101, 102]).await.unwrap();
            assert_eq!((served.cluster, served.records.len()), (Cluster::B, 2));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_forced_cluster_with_an_open_breaker_is_still_tried() {
        let (store, a, b) = pair(mode(ReadMode::OnlyA {}));
        a.set_fault(Fault::Fail(StoreErrorKind::Unavailable));
        for _ in 0..30 {
            let _ = store.fetch(&[101]).await;
        }
        assert_eq!(store.breaker(Cluster::A).state(), BreakerState::Open);
        a.set_fault(Fault::None);
        let served = store.fetch_from(&[101]).await.unwrap();
        assert_eq!(served.cluster, Cluster::A, "the only allowed cluster is asked despite its breaker");
        assert_eq!(b.fetch_count(), 0, "a forced mode still never reads the other cluster");
    }

    #[tokio::test(start_paused = true)]
    async fn the_cluster_left_standing_is_not_cut_off_for_being_slow() {
        let settings = DualSettings::default();
        assert!(settings.alone_timeout > Duration::from_millis(150));
        let (store, a, b) = pair(settings);
        a.set_fault(Fault::Fail(StoreErrorKind::Unavailable));
        for _ in 0..200 {
            store.fetch(&[101]).await.unwrap();
            if store.is_open(Cluster::A) {
                break;
            }
        }
        assert_eq!(store.breaker(Cluster::A).state(), BreakerState::Open);
        // B now carries the whole load and is slower than its own timeout
        // (50 ms) and the slow-call threshold (100 ms), but still answers.
        b.set_fault(Fault::Delay(Duration::from_millis(150)));
        for _ in 0..200 {
            let served = store.fetch_from(&[101]).await.expect("the survivor answers every call");
            assert_eq!(served.cluster, Cluster::B);
        }
        assert_eq!(store.breaker(Cluster::B).state(), BreakerState::Closed, "the twin's breaker stays closed");

        // With both clusters healthy again, the usual budget applies to B.
        a.set_fault(Fault::None);
        tokio::time::advance(Duration::from_secs(6)).await;
        for _ in 0..20 {
            store.fetch(&[101]).await.unwrap();
        }
        assert_eq!(store.breaker(Cluster::A).state(), BreakerState::Closed);
        store.settings().store(Arc::new(DualSettings { failover_in_forced_mode: true, ..mode(ReadMode::OnlyB {}) }));
        let served = store.fetch_from(&[101]).await.unwrap();
        assert_eq!(
            (served.cluster, served.failed_over),
            (Cluster::A, true),
            "B at 150 ms is too slow when A can answer"
        );
    }

    /// Every budget 2 s: only the caller's deadline can cut a call short.
    fn slow_budgets(read: ReadMode) -> DualSettings {
        let cluster = ClusterSettings { timeout: Duration::from_secs(2), ..ClusterSettings::default() };
        DualSettings {
            read,
            alone_timeout: Duration::from_secs(2),
            a: cluster.clone(),
            b: cluster,
            ..DualSettings::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_callers_deadline_leaves_time_for_the_other_cluster() {
        let (store, a, b) = pair(slow_budgets(ReadMode::PreferLocal { local: Cluster::A }));
        a.set_fault(Fault::Delay(Duration::from_secs(10)));
        for _ in 0..30 {
            let started = Instant::now();
            let deadline = Deadline::after(Duration::from_millis(150));
            let served = store.fetch_from_within(&[101], Some(deadline)).await.unwrap();
            assert_eq!((served.cluster, served.failed_over), (Cluster::B, true));
            assert_eq!(started.elapsed(), Duration::from_millis(75), "A got half of the 150 ms, B answered at once");
        }
        assert_eq!(
            store.breaker(Cluster::A).state(),
            BreakerState::Closed,
            "calls cut by the caller's deadline are not held against A"
        );

        // Both frozen: the pair answers DeadlineExceeded at the deadline.
        b.set_fault(Fault::Delay(Duration::from_secs(10)));
        let started = Instant::now();
        let err = store.fetch_within(&[101], Some(Deadline::after(Duration::from_millis(150)))).await.unwrap_err();
        assert_eq!((err.store.as_str(), err.kind), ("redis", StoreErrorKind::DeadlineExceeded));
        assert_eq!(started.elapsed(), Duration::from_millis(150));

        // A forced mode has no failover to keep time for: the whole deadline.
        store.settings().store(Arc::new(slow_budgets(ReadMode::OnlyA {})));
        let started = Instant::now();
        let err = store.fetch_within(&[101], Some(Deadline::after(Duration::from_millis(150)))).await.unwrap_err();
        assert_eq!((err.kind, started.elapsed()), (StoreErrorKind::DeadlineExceeded, Duration::from_millis(150)));

        // Without a deadline the clusters' own budgets apply.
        a.set_fault(Fault::None);
        b.set_fault(Fault::None);
        assert_eq!(store.fetch_from_within(&[101], None).await.unwrap().cluster, Cluster::A);
    }

    #[tokio::test]
    async fn live_flip_takes_effect_on_the_next_call() {
        let (store, a, b) = pair(mode(ReadMode::OnlyA {}));
        store.fetch(&[101]).await.unwrap();
        store.settings().store(Arc::new(mode(ReadMode::OnlyB {})));
        store.fetch(&[101]).await.unwrap();
        assert_eq!((a.fetch_count(), b.fetch_count()), (1, 1));
    }

    #[tokio::test]
    async fn empty_batch_does_no_io() {
        let (store, a, b) = pair(DualSettings::default());
        assert!(store.fetch(&[]).await.unwrap().is_empty());
        assert_eq!((a.fetch_count(), b.fetch_count()), (0, 0));
    }

    #[tokio::test]
    async fn writer_reports_each_cluster_and_follows_write_mode() {
        let a = FaultyStore::named("redis-a", []);
        let b = FaultyStore::named("redis-b", []);
        let settings = live(DualSettings::default());
        let writer = DualWriter::new("redis", a.clone(), b.clone(), settings.clone());
        let records = fixture();

        let report = writer.put_each(&records).await;
        assert!(matches!(report.a, SideWrite::Done(WriteReport { written: 5, .. })), "{report:?}");
        assert!(matches!(report.b, SideWrite::Done(WriteReport { written: 5, .. })), "{report:?}");
        assert_eq!(report.failed().count(), 0);

        b.set_fail_writes(true);
        let newer: Vec<SharedRecord> = vec![Arc::new(conformance::record(101, 50, 100, vec![]))];
        let report = writer.put_each(&newer).await;
        assert!(matches!(report.a, SideWrite::Done(WriteReport { written: 1, .. })));
        assert_eq!(report.failed().map(|(c, _)| c).collect::<Vec<_>>(), vec![Cluster::B], "what to queue");
        assert_eq!(writer.put(&newer).await.unwrap().skipped_older, 1, "one cluster taking it is success");

        settings.store(Arc::new(DualSettings { write: WriteMode::OnlyA, ..DualSettings::default() }));
        let puts_at_b = b.put_count();
        let report = writer.put_each(&newer).await;
        assert!(matches!(report.b, SideWrite::Skipped));
        assert_eq!(b.put_count(), puts_at_b, "a skipped cluster is not called");

        settings.store(Arc::new(DualSettings { write: WriteMode::OnlyB, ..DualSettings::default() }));
        let err = writer.put(&newer).await.unwrap_err();
        assert_eq!(err.store, "redis");

        settings.store(Arc::new(DualSettings::default()));
        b.set_fail_writes(false);
        let report = writer.remove_each(&[101]).await;
        assert!(matches!((report.a, report.b), (SideWrite::Done(()), SideWrite::Done(()))));
        assert!(a.inner().get(101).is_none() && b.inner().get(101).is_none());
    }

    #[test]
    fn settings_parse_validate_and_reject_unknown_keys() {
        let s: DualSettings = serde_json::from_str(
            r#"{"read": {"mode": "prefer_local", "local": "b"}, "write": "only_a",
                "a": {"timeout_ms": 20, "breaker": {"min_calls": 5}}}"#,
        )
        .unwrap();
        assert_eq!(s.read, ReadMode::PreferLocal { local: Cluster::B });
        assert_eq!(s.write, WriteMode::OnlyA);
        assert_eq!(s.a.timeout, Duration::from_millis(20));
        assert_eq!(s.a.breaker.min_calls, 5);
        assert_eq!(s.b, ClusterSettings::default());
        assert!(!s.failover_in_forced_mode);
        assert_eq!(s.alone_timeout, Duration::from_millis(250));
        s.validate().unwrap();
        let alone: DualSettings = serde_json::from_str(r#"{"alone_timeout_ms": 0}"#).unwrap();
        assert_eq!(alone.validate().unwrap_err().field, "alone_timeout_ms");

        let split: DualSettings = serde_json::from_str(r#"{"read": {"mode": "split"}}"#).unwrap();
        assert_eq!(split.read, ReadMode::Split { a_percent: 50 });
        let bad: DualSettings = serde_json::from_str(r#"{"read": {"mode": "split", "a_percent": 120}}"#).unwrap();
        assert_eq!(bad.validate().unwrap_err().field, "read.a_percent");

        for wrong in [
            r#"{"reads": {"mode": "only_a"}}"#,
            r#"{"read": {"mode": "only_a", "local": "a"}}"#,
            r#"{"read": {"mode": "split", "a_percent": 50, "local": "a"}}"#,
            r#"{"a": {"timeout": 5}}"#,
        ] {
            assert!(serde_json::from_str::<DualSettings>(wrong).is_err(), "accepted {wrong}");
        }
    }
}
