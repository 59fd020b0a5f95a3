//! The run: connections, workers, pacing, and the bounds that end it.
//!
//! Each server gets `target.connections` HTTP/2 connections (one connection
//! serialises its frames through one socket and one server task; several
//! spread the load over the server's threads, as many upstream clients
//! would). Worker `w` uses connection `w % connections`. Workers record into
//! a few mutex-guarded shards (uncontended on a small machine) that are
//! merged when the run ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use pricing_proto::v1::detail_pricing_client::DetailPricingClient;
use pricing_proto::v1::list_pricing_client::ListPricingClient;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::keys::{GoodsPool, KeysError, ZipfIds};
use crate::progress::{Live, Progress};
use crate::requests::{Request, RequestMaker, Rpc};
use crate::scenario::{Mode, Scenario, ScenarioError};
use crate::schedule;
use crate::stats::Recorder;
use crate::target::Target;

/// Recorder shards workers spread over.
const SHARDS: usize = 8;

/// How late the open-loop driver may send a call before its run is marked
/// unfair: tokio's timer wakes on a millisecond tick, so up to about 1 ms is
/// the instrument's normal resolution; beyond 2 ms the driver itself adds to
/// the tail it reports.
pub const DEFAULT_BEHIND_LIMIT: Duration = Duration::from_millis(2);

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error("goods ids: {0}")]
    Keys(#[from] KeysError),
    #[error("connect to {target}: {source}")]
    Connect { target: String, source: tonic::transport::Error },
    #[error("metadata {name}: the value is not valid ASCII metadata")]
    Metadata { name: &'static str },
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// `max_requests` calls were made.
    Count,
    /// `duration_s` passed.
    Duration,
}

/// Everything a run measured.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub scenario: Scenario,
    pub started_at: SystemTime,
    /// From the first call until the last one returned.
    pub elapsed: Duration,
    pub end_reason: EndReason,
    pub stats: Recorder,
    /// Open loop: how many calls fell due within the bounds.
    pub scheduled: Option<u64>,
    /// Calls sent (every one of them is counted under some status code).
    pub sent: u64,
    /// Open loop: the latest any call was sent after its due time (all
    /// workers busy, a late timer, a starved driver). A large value means
    /// the driver or the server could not keep the rate; the latency
    /// figures include the wait. Per second: `stats.behind_us`.
    pub max_behind: Duration,
    /// A run whose driver was later than this in any second is marked
    /// unfair in the summary (its latency figures measure the driver too).
    pub behind_limit: Duration,
}

impl RunReport {
    /// Calls per second over the whole run.
    pub fn rps(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 { self.stats.count() as f64 / secs } else { 0.0 }
    }
}

struct Metadata {
    caller: Option<MetadataValue<tonic::metadata::Ascii>>,
    token: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl Metadata {
    fn new(scenario: &Scenario) -> Result<Metadata, LoadError> {
        let value = |v: &Option<String>, name| {
            v.as_deref().map(|s| MetadataValue::try_from(s).map_err(|_| LoadError::Metadata { name })).transpose()
        };
        Ok(Metadata {
            caller: value(&scenario.target.caller, "x-caller")?,
            token: value(&scenario.target.caller_token, "x-caller-token")?,
        })
    }

    fn request<T>(&self, message: T, timeout: Duration) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(timeout);
        if let Some(caller) = &self.caller {
            request.metadata_mut().insert("x-caller", caller.clone());
        }
        if let Some(token) = &self.token {
            request.metadata_mut().insert("x-caller-token", token.clone());
        }
        request
    }
}

/// One worker's clients: a clone of the connection it was given.
#[derive(Clone)]
struct Clients {
    list: Option<ListPricingClient<Channel>>,
    detail: Option<DetailPricingClient<Channel>>,
}

async fn connect(target: &Target, count: usize) -> Result<Vec<Channel>, LoadError> {
    let mut channels = Vec::with_capacity(count);
    for _ in 0..count {
        let endpoint = Endpoint::from_shared(target.uri())
            .map_err(|source| LoadError::Connect { target: target.uri(), source })?
            .connect_timeout(Duration::from_secs(3))
            .tcp_nodelay(true);
        // `connect` (not lazy) so that each endpoint is its own TCP connection, opened now.
        let channel = endpoint.connect().await.map_err(|source| LoadError::Connect { target: target.uri(), source })?;
        channels.push(channel);
    }
    Ok(channels)
}

impl Clients {
    /// Makes one call; its answer's canary variant (`x-pricing-variant`, on
    /// success or error) when the server named one.
    async fn call(&mut self, request: Request, meta: &Metadata, timeout: Duration) -> Result<Option<Variant>, Status> {
        let unavailable = |server| Status::unavailable(format!("no connection to the {server} server"));
        match request {
            Request::Batch(r) => {
                let client = self.list.as_mut().ok_or_else(|| unavailable("list"))?;
                client.batch_get_prices(meta.request(r, timeout)).await.map(|r| variant(r.metadata()))
            }
            Request::Goods(r) => {
                let client = self.detail.as_mut().ok_or_else(|| unavailable("detail"))?;
                client.get_goods_price(meta.request(r, timeout)).await.map(|r| variant(r.metadata()))
            }
            Request::Preview(r) => {
                let client = self.detail.as_mut().ok_or_else(|| unavailable("detail"))?;
                client.preview_order(meta.request(r, timeout)).await.map(|r| variant(r.metadata()))
            }
            Request::Order(r) => {
                let client = self.detail.as_mut().ok_or_else(|| unavailable("detail"))?;
                client.price_order(meta.request(r, timeout)).await.map(|r| variant(r.metadata()))
            }
        }
    }
}

/// A canary variant as the server sent it (a cheap clone of the header's bytes).
type Variant = MetadataValue<tonic::metadata::Ascii>;

/// The response header naming the canary variant that answered.
const VARIANT_HEADER: &str = "x-pricing-variant";

fn variant(metadata: &tonic::metadata::MetadataMap) -> Option<Variant> {
    metadata.get(VARIANT_HEADER).cloned()
}

/// State every worker shares.
struct Shared {
    scenario: Scenario,
    maker: RequestMaker,
    meta: Metadata,
    next: AtomicU64,
    /// Largest lag behind schedule seen, in microseconds.
    max_behind_us: AtomicU64,
    shards: Vec<Mutex<Recorder>>,
    live: Arc<Live>,
    start: Instant,
    /// Open loop: calls due within the bounds; closed loop: the count bound.
    limit: Option<u64>,
    /// No call is started at or after this instant.
    end: Option<Instant>,
}

/// Runs `scenario` against its targets with goods ids from `pool` and
/// returns what was measured. Stops by itself at the count or time bound;
/// calls in flight at the end finish (each is bounded by the timeout).
pub async fn run(scenario: &Scenario, pool: &GoodsPool, progress: Progress) -> Result<RunReport, LoadError> {
    scenario.validate()?;
    let exponent = scenario.keys.zipf_exponent;
    let maker = RequestMaker {
        read: ZipfIds::new(Arc::clone(&pool.read), exponent)?,
        order: ZipfIds::new(Arc::clone(&pool.order), exponent)?,
        shape: scenario.shape,
    };
    let meta = Metadata::new(scenario)?;
    let mix = scenario.mix;
    let connections = scenario.target.connections;
    // Connect only to the servers the mix calls.
    let list = match mix.batch_get_prices > 0 {
        true => connect(&scenario.list_target().map_err(ScenarioError::from)?, connections).await?,
        false => Vec::new(),
    };
    let detail = match mix.get_goods_price + mix.preview_order + mix.price_order > 0 {
        true => connect(&scenario.detail_target().map_err(ScenarioError::from)?, connections).await?,
        false => Vec::new(),
    };

    let started_at = SystemTime::now();
    let start = Instant::now();
    let limit = match scenario.load.mode {
        Mode::Open => schedule::scheduled(scenario.load.rate, scenario.duration(), scenario.max_requests()),
        Mode::Closed => scenario.max_requests(),
    };
    let live = Arc::new(Live::default());
    let shared = Arc::new(Shared {
        scenario: scenario.clone(),
        maker,
        meta,
        next: AtomicU64::new(0),
        max_behind_us: AtomicU64::new(0),
        shards: (0..SHARDS).map(|_| Mutex::new(Recorder::default())).collect(),
        live: Arc::clone(&live),
        start,
        limit,
        end: scenario.duration().map(|d| start + d),
    });
    tracing::info!(
        scenario = %scenario.name,
        mode = ?scenario.load.mode,
        rate = scenario.load.rate,
        concurrency = scenario.load.concurrency,
        connections,
        "load run starting"
    );
    let reporter = progress.start(Arc::clone(&live), scenario.clone(), start);

    let mut workers = tokio::task::JoinSet::new();
    for w in 0..scenario.load.concurrency {
        let clients = Clients {
            list: list.get(w % connections.max(1)).cloned().map(ListPricingClient::new),
            detail: detail.get(w % connections.max(1)).cloned().map(DetailPricingClient::new),
        };
        let seed = scenario.keys.seed.wrapping_mul(1_000_003).wrapping_add(w as u64);
        workers.spawn(worker(Arc::clone(&shared), clients, w, seed));
    }
    while let Some(joined) = workers.join_next().await {
        if let Err(e) = joined {
            tracing::error!(error = %e, "load worker failed");
        }
    }
    let elapsed = start.elapsed();
    reporter.finish().await;

    let mut stats = Recorder::default();
    for shard in &shared.shards {
        stats.merge(&shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
    }
    let sent = live.sent.load(Ordering::Relaxed);
    let end_reason = match (scenario.max_requests(), scenario.duration()) {
        (Some(max), _) if sent >= max => EndReason::Count,
        (_, Some(_)) => EndReason::Duration,
        _ => EndReason::Count,
    };
    let report = RunReport {
        scenario: scenario.clone(),
        started_at,
        elapsed,
        end_reason,
        stats,
        scheduled: (scenario.load.mode == Mode::Open).then_some(limit).flatten(),
        sent,
        max_behind: Duration::from_micros(shared.max_behind_us.load(Ordering::Relaxed)),
        behind_limit: DEFAULT_BEHIND_LIMIT,
    };
    tracing::info!(scenario = %scenario.name, calls = report.stats.count(), elapsed_ms = elapsed.as_millis() as u64, "load run done");
    Ok(report)
}

async fn worker(shared: Arc<Shared>, mut clients: Clients, index: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let s = &shared.scenario;
    let total_weight = s.mix.total();
    let timeout = s.timeout();
    let shard = &shared.shards[index % SHARDS];
    loop {
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        if shared.limit.is_some_and(|limit| i >= limit) {
            break;
        }
        let now = Instant::now();
        if shared.end.is_some_and(|end| now >= end) {
            break;
        }
        // Open loop: wait for the call's due time; latency counts from it.
        let measured_from = match s.load.mode {
            Mode::Open => {
                let offset = schedule::due(i, s.load.rate);
                let due = shared.start + offset;
                if due > now {
                    tokio::time::sleep_until(due.into()).await;
                }
                // The driver's own lateness: a busy worker pool, and the
                // timer's wake-up after the sleep, both count.
                let late = Instant::now().saturating_duration_since(due);
                shared.max_behind_us.fetch_max(u64::try_from(late.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
                shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).record_behind(offset, late);
                due
            }
            Mode::Closed => now,
        };
        let rpc = s.mix.pick(rng.random_range(0..total_weight));
        let request = shared.maker.make(rpc, &mut rng);
        shared.live.sent.fetch_add(1, Ordering::Relaxed);
        let sent_at = Instant::now();
        let result = match tokio::time::timeout(timeout, clients.call(request, &shared.meta, timeout)).await {
            Ok(result) => result,
            Err(_) => Err(Status::deadline_exceeded(format!("no answer within {} ms", timeout.as_millis()))),
        };
        let done = Instant::now();
        let (code, message, answered_by) = match &result {
            Ok(answered_by) => (Code::Ok, None, answered_by.clone()),
            Err(status) => (status.code(), Some(status.message()), variant(status.metadata())),
        };
        let variant = answered_by.as_ref().and_then(|v| v.to_str().ok());
        record(shard, rpc, code, (done - measured_from, done - sent_at), done - shared.start, message, variant);
        shared.live.done.fetch_add(1, Ordering::Relaxed);
        if code != Code::Ok {
            shared.live.not_ok.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// `latency`: from the due time (open loop) or the send (closed loop), and from the send.
fn record(
    shard: &Mutex<Recorder>,
    rpc: Rpc,
    code: Code,
    latency: (Duration, Duration),
    at: Duration,
    message: Option<&str>,
    variant: Option<&str>,
) {
    // A poisoned shard still holds good counts: a panic elsewhere cannot corrupt a histogram mid-record.
    let mut guard = shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    guard.record_sent(rpc, code, latency.0, latency.1, at, message);
    guard.record_variant(variant, code, latency.0, latency.1);
}
