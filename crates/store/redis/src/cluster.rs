//! The Redis Cluster path of [`crate::RedisStore`]: slot routing of our own
//! over one multiplexed connection per node.
//!
//! Why not redis-rs' `ClusterConnection`: measured on two 3+3 clusters
//! (issue 12), a running process using it never read a cluster again after
//! one of its masters was killed and a replica promoted, and lost a cluster
//! for good when a reshard met load: its multi-slot MGET failed with
//! "Mismatch in the number of multi-slot results" whenever one slot's answer
//! was an error (redis-rs 1.8.1, `combine_and_sort_array_results` counts an
//! error answer as zero values), and its slot refresh could wait forever
//! behind the requests it was meant to repair. A fresh process recovered at
//! once, so the fix is a routing layer whose every step is bounded and
//! restartable:
//!
//! - the topology (which master serves each of the 16,384 slots, and how
//!   many live replicas it has) comes from `CLUSTER SLOTS`, asked of a few
//!   known nodes and seeds at once, each bounded by the response timeout;
//!   it is refreshed every `topology_refresh` and, at most every
//!   [`MIN_REFRESH_GAP`], after any call that met a redirection, a refused
//!   or broken connection, a timeout or `CLUSTERDOWN`. A refresh runs in a
//!   background task that holds no lock a request needs;
//! - each node has two redis-rs `ConnectionManager`s (multiplexed, reconnect
//!   lazily after a failure): one for reads, one for writes, so that a write's
//!   `WAIT` never holds up the reads pipelined behind it;
//! - a read batch is grouped by node, then by slot: one pipeline per node
//!   (one MGET per slot), all nodes at once, so a batch costs one round trip
//!   per node whatever the number of slots. `MOVED` and `ASK` answers are
//!   followed once to the node they name (with `ASKING` for `ASK`),
//!   `TRYAGAIN` (a slot half-migrated) is retried after a short pause;
//! - a write batch goes the same way, one `EVALSHA` of the version guard per
//!   slot (a script's keys must share a slot) in one pipeline per node,
//!   followed by `WAIT 1` when the master has a live replica: a write is
//!   reported only once a replica holds it, so a failover right after cannot
//!   lose it. `READONLY` (the node was demoted), a redirection, a broken
//!   connection or an unacknowledged write is retried against the fresh
//!   topology until the call's deadline; what still fails is an error the
//!   caller queues (the projector's retry queue). The version guard makes
//!   every retry harmless.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, Pipeline, RedisError, RedisResult, ServerErrorKind, Value};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::RedisConfig;
use crate::script::VERSION_GUARD;

/// Number of hash slots in a Redis Cluster.
const SLOTS: usize = 16_384;
/// No slot owner known (a slot no node serves, e.g. mid-failover).
const UNSERVED: u16 = u16::MAX;
/// Error-triggered refreshes are at least this far apart: a burst of failing
/// calls asks `CLUSTER SLOTS` once, not once per call.
pub(crate) const MIN_REFRESH_GAP: Duration = Duration::from_millis(200);
/// How many known nodes a refresh asks at once (the first answer wins).
const REFRESH_FANOUT: usize = 3;
/// Pause before retrying a slot that answered `TRYAGAIN` or a write that
/// met a failover.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// Which master serves each slot, and the replicas each master has.
#[derive(Debug)]
pub(crate) struct Topology {
    /// Index into `masters` for every slot, [`UNSERVED`] when none.
    slots: Box<[u16]>,
    pub(crate) masters: Vec<Master>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Master {
    /// `host:port` as the cluster announces it.
    pub(crate) addr: Arc<str>,
    /// Live replicas listed for it (failed ones are left out by the server).
    pub(crate) replicas: Vec<Arc<str>>,
}

impl Topology {
    #[cfg(test)]
    fn master_of(&self, slot: u16) -> Option<&Master> {
        self.slots.get(usize::from(slot)).and_then(|i| self.masters.get(usize::from(*i)))
    }

    fn index_of(&self, slot: u16) -> Option<u16> {
        self.slots.get(usize::from(slot)).copied().filter(|i| *i != UNSERVED)
    }

    /// Parses a `CLUSTER SLOTS` reply. `asked_host` stands in for an empty
    /// or unknown host in the reply ("the host you asked").
    pub(crate) fn parse(reply: Value, asked_host: &str) -> RedisResult<Topology> {
        let Value::Array(ranges) = reply else {
            return Err(invalid("CLUSTER SLOTS did not answer an array"));
        };
        let mut slots = vec![UNSERVED; SLOTS].into_boxed_slice();
        let mut masters: Vec<Master> = Vec::new();
        for range in ranges {
            let Value::Array(fields) = range else { return Err(invalid("a slot range is not an array")) };
            let mut fields = fields.into_iter();
            let (Some(start), Some(end)) = (fields.next(), fields.next()) else {
                return Err(invalid("a slot range lacks its bounds"));
            };
            let (start, end) = (int(&start)?, int(&end)?);
            if start > end || end >= SLOTS as i64 || start < 0 {
                return Err(invalid("a slot range is out of bounds"));
            }
            let Some(master) = fields.next() else { return Err(invalid("a slot range has no master")) };
            let master = node_addr(&master, asked_host)?;
            let replicas = fields.map(|r| node_addr(&r, asked_host)).collect::<RedisResult<Vec<_>>>()?;
            let index = match masters.iter().position(|m| m.addr == master) {
                Some(i) => i,
                None => {
                    masters.push(Master { addr: master, replicas });
                    masters.len() - 1
                }
            };
            let index = u16::try_from(index).map_err(|_| invalid("more masters than slots"))?;
            for slot in start..=end {
                slots[slot as usize] = index;
            }
        }
        Ok(Topology { slots, masters })
    }

    /// Slots that no master serves.
    pub(crate) fn unserved(&self) -> usize {
        self.slots.iter().filter(|i| **i == UNSERVED).count()
    }

    /// True when both map every slot to the same master address and the
    /// masters list the same replicas.
    fn same_as(&self, other: &Topology) -> bool {
        self.masters == other.masters && self.slots == other.slots
    }
}

fn invalid(what: &'static str) -> RedisError {
    RedisError::from((ErrorKind::UnexpectedReturnType, what))
}

fn int(value: &Value) -> RedisResult<i64> {
    match value {
        Value::Int(i) => Ok(*i),
        _ => Err(invalid("a slot bound is not an integer")),
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

/// `[host, port, id, ...]` to `host:port`.
fn node_addr(value: &Value, asked_host: &str) -> RedisResult<Arc<str>> {
    let Value::Array(fields) = value else { return Err(invalid("a node entry is not an array")) };
    let host = fields.first().and_then(text).unwrap_or_default();
    let port = fields.get(1).map(int).transpose()?.ok_or_else(|| invalid("a node entry has no port"))?;
    let host = if host.is_empty() || host == "?" { asked_host } else { host.as_str() };
    Ok(Arc::from(format!("{host}:{port}")))
}

fn host_of(addr: &str) -> &str {
    addr.rsplit_once(':').map_or(addr, |(host, _)| host)
}

/// A `MOVED`/`ASK` target as `host:port`, with the asked node's host when
/// the server left its own out (":port").
fn redirect_target(error: &RedisError, asked: &str) -> Option<(Arc<str>, bool)> {
    let (addr, _slot) = error.redirect_node()?;
    let ask = matches!(error.kind(), ErrorKind::Server(ServerErrorKind::Ask));
    let addr = match addr.strip_prefix(':') {
        Some(port) => format!("{}:{port}", host_of(asked)),
        None => addr.to_owned(),
    };
    Some((Arc::from(addr), ask))
}

/// Whether an error says the topology may have moved under us.
fn wants_refresh(error: &RedisError) -> bool {
    match error.kind() {
        ErrorKind::Server(kind) => matches!(
            kind,
            ServerErrorKind::Moved
                | ServerErrorKind::Ask
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::ReadOnly
                | ServerErrorKind::MasterDown
                | ServerErrorKind::TryAgain
        ),
        ErrorKind::Parse | ErrorKind::UnexpectedReturnType => false,
        // Refused, reset, timed out, connection lost: the node may be gone.
        _ => true,
    }
}

struct Node {
    read: ConnectionManager,
    write: ConnectionManager,
}

/// The routing state shared by every clone of a cluster store.
pub(crate) struct Router {
    name: Arc<str>,
    seeds: Vec<Arc<str>>,
    manager_config: ConnectionManagerConfig,
    response_timeout: Duration,
    replica_ack_timeout: Option<Duration>,
    topology: ArcSwapOption<Topology>,
    nodes: Mutex<HashMap<Arc<str>, Arc<Node>>>,
    /// Wakes the refresh task.
    wake: Arc<Notify>,
    /// Signalled after every refresh attempt, for calls that wait for one.
    refreshed: Notify,
    /// Milliseconds since `epoch` of the last error-triggered wake.
    last_wake_ms: AtomicU64,
    epoch: Instant,
}

impl Router {
    /// Builds the router and starts its refresh task (which stops when the
    /// last clone of the store is dropped). No I/O here.
    pub(crate) fn start(config: &RedisConfig) -> Arc<Router> {
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.response_timeout))
            .set_number_of_retries(0);
        let seeds = config.urls.iter().map(|u| Arc::from(seed_addr(u))).collect();
        let router = Arc::new(Router {
            name: Arc::from(config.name.as_str()),
            seeds,
            manager_config,
            response_timeout: config.response_timeout,
            replica_ack_timeout: config.replica_ack_timeout,
            topology: ArcSwapOption::empty(),
            nodes: Mutex::new(HashMap::new()),
            wake: Arc::new(Notify::new()),
            refreshed: Notify::new(),
            last_wake_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        });
        tokio::spawn(refresh_loop(Arc::downgrade(&router), Arc::clone(&router.wake), config.topology_refresh));
        router
    }

    /// Asks the refresh task for a new topology soon (rate-limited).
    fn request_refresh(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_wake_ms.load(Ordering::Relaxed);
        let gap = u64::try_from(MIN_REFRESH_GAP.as_millis()).unwrap_or(u64::MAX);
        if (last == 0 || now.saturating_sub(last) >= gap)
            && self.last_wake_ms.compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            self.wake.notify_one();
        }
    }

    /// The current topology, or the first one (asked now, bounded by the
    /// caller's deadline) when none is known yet.
    async fn current(&self) -> RedisResult<Arc<Topology>> {
        if let Some(topology) = self.topology.load_full() {
            return Ok(topology);
        }
        let waiting = self.refreshed.notified();
        self.wake.notify_one();
        // A refresh asks at most a few rounds of nodes, each bounded by the
        // response timeout; the store's call deadline bounds this wait too.
        let _ = tokio::time::timeout(self.response_timeout * 4, waiting).await;
        self.topology.load_full().ok_or_else(|| {
            RedisError::from((
                ErrorKind::Server(ServerErrorKind::ClusterDown),
                "no cluster node answered CLUSTER SLOTS",
            ))
        })
    }

    fn node(&self, addr: &Arc<str>) -> RedisResult<Arc<Node>> {
        let mut nodes = self.nodes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(node) = nodes.get(addr) {
            return Ok(Arc::clone(node));
        }
        let client = redis::Client::open(format!("redis://{addr}/"))?;
        let read = ConnectionManager::new_lazy_with_config(client.clone(), self.manager_config.clone())?;
        let write = ConnectionManager::new_lazy_with_config(client, self.manager_config.clone())?;
        let node = Arc::new(Node { read, write });
        nodes.insert(Arc::clone(addr), Arc::clone(&node));
        Ok(node)
    }

    /// One refresh: asks a few known nodes (then the seeds) for `CLUSTER
    /// SLOTS` at once and takes the first good answer. Logs a line when the
    /// topology changes.
    async fn refresh(&self) -> bool {
        let mut candidates: Vec<Arc<str>> = Vec::new();
        if let Some(current) = self.topology.load_full() {
            for master in &current.masters {
                candidates.push(Arc::clone(&master.addr));
                candidates.extend(master.replicas.iter().cloned());
            }
            // Spread the asking over the cluster; a dead node answers fast (refused).
            let offset = rand::random_range(0..candidates.len().max(1));
            candidates.rotate_left(offset);
        }
        for seed in &self.seeds {
            if !candidates.contains(seed) {
                candidates.push(Arc::clone(seed));
            }
        }
        let mut found = None;
        for chunk in candidates.chunks(REFRESH_FANOUT) {
            let asks = chunk.iter().map(|addr| Box::pin(self.ask_slots(Arc::clone(addr))));
            let mut pending: Vec<_> = asks.collect();
            while !pending.is_empty() {
                let (result, _, rest) = futures::future::select_all(pending).await;
                pending = rest;
                if let Ok(topology) = result {
                    found = Some(topology);
                    break;
                }
            }
            if found.is_some() {
                break;
            }
        }
        let outcome = if found.is_some() { "ok" } else { "failed" };
        metrics::counter!("pricing_redis_topology_refresh_total", "store" => self.name.to_string(), "outcome" => outcome)
            .increment(1);
        let Some(topology) = found else {
            return false;
        };
        let previous = self.topology.load_full();
        if previous.as_deref().is_none_or(|p| !p.same_as(&topology)) {
            let masters: Vec<&str> = topology.masters.iter().map(|m| &*m.addr).collect();
            let replicas: usize = topology.masters.iter().map(|m| m.replicas.len()).sum();
            tracing::info!(
                store = %self.name,
                ?masters,
                replicas,
                unserved_slots = topology.unserved(),
                "redis cluster topology changed"
            );
            metrics::counter!("pricing_redis_topology_changes_total", "store" => self.name.to_string()).increment(1);
            self.prune(&topology);
            self.topology.store(Some(Arc::new(topology)));
        }
        true
    }

    async fn ask_slots(&self, addr: Arc<str>) -> RedisResult<Topology> {
        let node = self.node(&addr)?;
        let mut conn = node.read.clone();
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("SLOTS");
        let ask = cmd.query_async::<Value>(&mut conn);
        let reply = tokio::time::timeout(self.response_timeout, ask)
            .await
            .map_err(|_| RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut)))??;
        let topology = Topology::parse(reply, host_of(&addr))?;
        if topology.masters.is_empty() {
            return Err(invalid("CLUSTER SLOTS listed no master"));
        }
        Ok(topology)
    }

    /// Drops connections to nodes the cluster no longer lists (and that are
    /// not seeds), so a long-lived process does not keep dialling the dead.
    fn prune(&self, topology: &Topology) {
        let mut nodes = self.nodes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        nodes.retain(|addr, _| {
            self.seeds.contains(addr) || topology.masters.iter().any(|m| &m.addr == addr || m.replicas.contains(addr))
        });
    }

    /// Values of `keys` in order (`None` for a missing key): one pipeline per
    /// node, all nodes at once, redirections followed.
    pub(crate) async fn mget(&self, keys: &[String]) -> RedisResult<Vec<Option<Vec<u8>>>> {
        let topology = self.current().await?;
        let mut out: Vec<Option<Vec<u8>>> = vec![None; keys.len()];
        let groups = group_by_node(&topology, keys).inspect_err(|_| self.request_refresh())?;
        let reads = groups.into_iter().map(|(addr, slots)| self.read_node(addr, slots, keys, false, false));
        let answers = futures::future::join_all(reads).await;
        let mut first_error = None;
        for answer in answers {
            match answer {
                Ok(found) => {
                    for (i, value) in found {
                        out[i] = value;
                    }
                }
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        if let Some(error) = first_error {
            if wants_refresh(&error) {
                self.request_refresh();
            }
            return Err(error);
        }
        Ok(out)
    }

    /// Reads the slot groups served by one node in one pipeline (each MGET
    /// after ASKING when `asking`); follows a redirection, or retries a
    /// TRYAGAIN, once per call: `followed` says this is already the second go.
    fn read_node<'a>(
        &'a self,
        addr: Arc<str>,
        slots: Vec<Vec<usize>>,
        keys: &'a [String],
        asking: bool,
        followed: bool,
    ) -> futures::future::BoxFuture<'a, RedisResult<KeyValues>> {
        Box::pin(async move {
            let node = self.node(&addr)?;
            let mut pipe = Pipeline::with_capacity(slots.len() * if asking { 2 } else { 1 });
            pipe.ignore_errors();
            for group in &slots {
                if asking {
                    pipe.cmd("ASKING").ignore();
                }
                let mget = pipe.cmd("MGET");
                for &i in group {
                    mget.arg(&keys[i]);
                }
            }
            let mut conn = node.read.clone();
            let replies: Vec<Value> = pipe.query_async(&mut conn).await?;
            if replies.len() != slots.len() {
                return Err(invalid("a pipeline answered a different number of replies than commands"));
            }
            let mut found = Vec::with_capacity(keys.len());
            let mut redirected: HashMap<(Arc<str>, bool), Vec<Vec<usize>>> = HashMap::new();
            let mut retry_later: Vec<Vec<usize>> = Vec::new();
            for (group, reply) in slots.into_iter().zip(replies) {
                match reply {
                    Value::Array(values) if values.len() == group.len() => {
                        for (i, value) in group.into_iter().zip(values) {
                            found.push((i, bytes(value)?));
                        }
                    }
                    Value::ServerError(error) => {
                        let error = RedisError::from(error);
                        if let Some(target) = redirect_target(&error, &addr) {
                            redirected.entry(target).or_default().push(group);
                        } else if error.kind() == ErrorKind::Server(ServerErrorKind::TryAgain) {
                            retry_later.push(group);
                        } else {
                            return Err(error);
                        }
                    }
                    _ => return Err(invalid("MGET answered an unexpected reply")),
                }
            }
            if !redirected.is_empty() || !retry_later.is_empty() {
                count_redirects(&self.name, redirected.len(), retry_later.len());
                if followed {
                    // A second redirection within one call: the topology is
                    // moving faster than this call; let the pair fail over.
                    return Err(RedisError::from((
                        ErrorKind::Server(ServerErrorKind::TryAgain),
                        "redirected twice within one call",
                    )));
                }
                self.request_refresh();
                let mut follow: Vec<_> = redirected
                    .into_iter()
                    .map(|((target, ask), groups)| self.read_node(target, groups, keys, ask, true))
                    .collect();
                if !retry_later.is_empty() {
                    tokio::time::sleep(RETRY_PAUSE).await;
                    follow.push(self.read_node(Arc::clone(&addr), retry_later, keys, false, true));
                }
                for more in futures::future::try_join_all(follow).await? {
                    found.extend(more);
                }
            }
            Ok(found)
        })
    }

    /// Versioned writes through the Lua guard: per node one pipeline of one
    /// EVALSHA per slot (then `WAIT` when the master has a replica), retried
    /// against a fresh topology until `deadline`. Returns one flag per
    /// record (1 written, 0 skipped as older), in order.
    pub(crate) async fn put(
        &self,
        keys: &[String],
        values: &[&[u8]],
        ttl_ms: u64,
        deadline: Instant,
    ) -> RedisResult<Vec<i64>> {
        let mut flags: Vec<Option<i64>> = vec![None; keys.len()];
        let mut attempt = 0u32;
        loop {
            let topology = self.current().await?;
            let pending: Vec<usize> = (0..keys.len()).filter(|i| flags[*i].is_none()).collect();
            let pending_keys: Vec<String> = pending.iter().map(|i| keys[*i].clone()).collect();
            // A slot no master serves (a failover under way, a cluster being
            // formed) is retried like a failed write: the topology may catch up.
            let groups = match group_by_node(&topology, &pending_keys) {
                Ok(groups) => groups,
                Err(error) => {
                    self.pause_for_refresh(&error, &mut attempt, deadline).await?;
                    continue;
                }
            };
            let writes = groups.into_iter().map(|(addr, slots)| {
                let replicas = topology.masters.iter().find(|m| m.addr == addr).map_or(0, |m| m.replicas.len());
                let slots: Vec<Vec<usize>> =
                    slots.into_iter().map(|g| g.into_iter().map(|j| pending[j]).collect()).collect();
                self.write_node(addr, slots, keys, values, ttl_ms, replicas)
            });
            let results = futures::future::join_all(writes).await;
            let mut last_error = None;
            for result in results {
                match result {
                    Ok(written) => {
                        for (i, flag) in written {
                            flags[i] = Some(flag);
                        }
                    }
                    Err(error) => last_error = Some(error),
                }
            }
            let Some(error) = last_error else {
                return Ok(flags.into_iter().map(|f| f.unwrap_or(0)).collect());
            };
            // An unacknowledged write is MASTERDOWN, which wants a refresh too.
            if !wants_refresh(&error) {
                return Err(error);
            }
            self.pause_for_refresh(&error, &mut attempt, deadline).await?;
        }
    }

    /// Before a write is retried: asks for a refresh and waits for it (or a
    /// growing pause); the error back when no time is left before `deadline`.
    async fn pause_for_refresh(&self, error: &RedisError, attempt: &mut u32, deadline: Instant) -> RedisResult<()> {
        *attempt += 1;
        metrics::counter!("pricing_redis_write_retries_total", "store" => self.name.to_string()).increment(1);
        let pause = RETRY_PAUSE * (*attempt).min(10);
        if Instant::now() + pause >= deadline {
            return Err(error.clone());
        }
        let refreshed = self.refreshed.notified();
        self.request_refresh();
        let _ = tokio::time::timeout(pause.max(MIN_REFRESH_GAP), refreshed).await;
        if Instant::now() >= deadline {
            return Err(error.clone());
        }
        Ok(())
    }

    async fn write_node(
        &self,
        addr: Arc<str>,
        slots: Vec<Vec<usize>>,
        keys: &[String],
        values: &[&[u8]],
        ttl_ms: u64,
        replicas: usize,
    ) -> RedisResult<Vec<(usize, i64)>> {
        let node = self.node(&addr)?;
        let mut conn = node.write.clone();
        let wait = self.replica_ack_timeout.filter(|_| replicas > 0);
        let build = |pipe: &mut Pipeline| {
            pipe.ignore_errors();
            for group in &slots {
                let eval = pipe.cmd("EVALSHA").arg(VERSION_GUARD.get_hash()).arg(group.len());
                for &i in group {
                    eval.arg(&keys[i]);
                }
                eval.arg(ttl_ms);
                for &i in group {
                    eval.arg(values[i]);
                }
            }
            if let Some(timeout) = wait {
                pipe.cmd("WAIT").arg(1).arg(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
            }
        };
        let mut pipe = Pipeline::new();
        build(&mut pipe);
        let mut replies: Vec<Value> = pipe.query_async(&mut conn).await?;
        if replies.iter().any(|r| matches!(r, Value::ServerError(e) if e.kind() == Some(ServerErrorKind::NoScript))) {
            // First use on this node (or it restarted empty): load, send again.
            VERSION_GUARD.load_async(&mut conn).await?;
            let mut pipe = Pipeline::new();
            build(&mut pipe);
            replies = pipe.query_async(&mut conn).await?;
        }
        if replies.len() != slots.len() + usize::from(wait.is_some()) {
            return Err(invalid("a pipeline answered a different number of replies than commands"));
        }
        if wait.is_some() {
            match replies.pop() {
                Some(Value::Int(acked)) if acked >= 1 => {}
                Some(Value::Int(_)) => return Err(unacknowledged()),
                Some(Value::ServerError(error)) => return Err(error.into()),
                _ => return Err(invalid("WAIT answered an unexpected reply")),
            }
        }
        let mut out = Vec::new();
        for (group, reply) in slots.into_iter().zip(replies) {
            match reply {
                Value::Array(flags) if flags.len() == group.len() => {
                    for (i, flag) in group.into_iter().zip(flags) {
                        match flag {
                            Value::Int(f @ (0 | 1)) => out.push((i, f)),
                            _ => return Err(invalid("version guard answered an unexpected reply")),
                        }
                    }
                }
                // MOVED, ASK, READONLY, CLUSTERDOWN...: the caller refreshes and retries
                // what is not written yet.
                Value::ServerError(error) => return Err(error.into()),
                _ => return Err(invalid("version guard answered an unexpected reply")),
            }
        }
        Ok(out)
    }

    /// One `SCAN` step of a walk over the whole cluster: one `SCAN` walk per
    /// master, the masters in address order. `at` is the master and its
    /// `SCAN` cursor (`None`: the first master, from the start); returns the
    /// keys found and where the next step starts (`None`: every master is
    /// done). A master whose walk is under way keeps being asked even if a
    /// failover demoted it (a replica holds the same keys); the next master
    /// is taken from the topology known when its turn comes.
    pub(crate) async fn scan_step(
        &self,
        at: Option<(Arc<str>, u64)>,
        pattern: &str,
        count: u32,
    ) -> RedisResult<(Vec<Vec<u8>>, Option<(Arc<str>, u64)>)> {
        let topology = self.current().await?;
        let mut masters: Vec<&Arc<str>> = topology.masters.iter().map(|m| &m.addr).collect();
        masters.sort();
        let (addr, cursor) = match at {
            Some(at) => at,
            None => match masters.first() {
                Some(first) => (Arc::clone(first), 0),
                None => return Err(invalid("the cluster lists no master")),
            },
        };
        let node = self.node(&addr)?;
        let mut conn = node.read.clone();
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(count);
        let (next, keys): (u64, Vec<Vec<u8>>) = cmd.query_async(&mut conn).await.inspect_err(|error| {
            if wants_refresh(error) {
                self.request_refresh();
            }
        })?;
        let next = if next != 0 {
            Some((addr, next))
        } else {
            masters.into_iter().find(|m| **m > addr).map(|m| (Arc::clone(m), 0))
        };
        Ok((keys, next))
    }

    /// Commands that change no key (`UNLINK` per slot), one pipeline per node.
    pub(crate) async fn unlink(&self, keys: &[String]) -> RedisResult<()> {
        let topology = self.current().await?;
        let groups = group_by_node(&topology, keys).inspect_err(|_| self.request_refresh())?;
        let calls = groups.into_iter().map(|(addr, slots)| async move {
            let node = self.node(&addr)?;
            let mut pipe = Pipeline::new();
            for group in &slots {
                let unlink = pipe.cmd("UNLINK");
                for &i in group {
                    unlink.arg(&keys[i]);
                }
            }
            let mut conn = node.write.clone();
            pipe.query_async::<Vec<i64>>(&mut conn).await.map(drop)
        });
        let result = futures::future::try_join_all(calls).await.map(drop);
        if let Err(error) = &result
            && wants_refresh(error)
        {
            self.request_refresh();
        }
        result
    }
}

fn unacknowledged() -> RedisError {
    RedisError::from((ErrorKind::Server(ServerErrorKind::MasterDown), "write not acknowledged by a replica in time"))
}

fn count_redirects(store: &str, redirected_nodes: usize, retried: usize) {
    if redirected_nodes > 0 {
        metrics::counter!("pricing_redis_redirects_total", "store" => store.to_owned(), "kind" => "redirect")
            .increment(redirected_nodes as u64);
    }
    if retried > 0 {
        metrics::counter!("pricing_redis_redirects_total", "store" => store.to_owned(), "kind" => "tryagain")
            .increment(retried as u64);
    }
}

fn bytes(value: Value) -> RedisResult<Option<Vec<u8>>> {
    match value {
        Value::Nil => Ok(None),
        Value::BulkString(b) => Ok(Some(b)),
        _ => Err(invalid("MGET answered a value that is not a string")),
    }
}

/// Values read, by key index (`None`: no such key).
type KeyValues = Vec<(usize, Option<Vec<u8>>)>;
/// Key indices by slot (batch order kept).
type SlotGroups = Vec<(u16, Vec<usize>)>;
/// Key indices by node address, then by slot.
type NodeGroups = Vec<(Arc<str>, Vec<Vec<usize>>)>;

/// Key indices grouped by the node serving their slot, then by slot (batch
/// order kept inside each group). A slot no node serves is `CLUSTERDOWN`.
fn group_by_node(topology: &Topology, keys: &[String]) -> RedisResult<NodeGroups> {
    let mut by_node: Vec<(u16, SlotGroups)> = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let slot = slot_of(key);
        let Some(node) = topology.index_of(slot) else {
            return Err(RedisError::from((
                ErrorKind::Server(ServerErrorKind::ClusterDown),
                "a slot is served by no node",
                format!("slot {slot}"),
            )));
        };
        let entry = match by_node.iter_mut().position(|(n, _)| *n == node) {
            Some(p) => &mut by_node[p].1,
            None => {
                by_node.push((node, Vec::new()));
                let p = by_node.len() - 1;
                &mut by_node[p].1
            }
        };
        match entry.iter_mut().find(|(s, _)| *s == slot) {
            Some((_, group)) => group.push(i),
            None => entry.push((slot, vec![i])),
        }
    }
    Ok(by_node
        .into_iter()
        .map(|(node, slots)| {
            let addr = Arc::clone(&topology.masters[usize::from(node)].addr);
            (addr, slots.into_iter().map(|(_, g)| g).collect())
        })
        .collect())
}

pub(crate) fn slot_of(key: &str) -> u16 {
    pricing_record::keys::redis_cluster_slot(key.as_bytes())
}

/// `redis://host:port/...` to `host:port`.
fn seed_addr(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

/// Refreshes the topology every `period`, and when woken by a failing call.
/// Ends when the router is dropped.
async fn refresh_loop(router: Weak<Router>, wake: Arc<Notify>, period: Duration) {
    loop {
        let Some(strong) = router.upgrade() else { return };
        strong.refresh().await;
        strong.refreshed.notify_waiters();
        drop(strong);
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(period) => {}
        }
        // Rate limit: a burst of wakes costs one refresh per gap.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::cluster_routing::Slot;

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            Value::Int(port),
            Value::BulkString(b"id".to_vec()),
        ])
    }

    #[test]
    fn slots_match_redis() {
        // Values from CLUSTER KEYSLOT on a real server.
        assert_eq!(slot_of("foo"), 12182);
        assert_eq!(slot_of("bar"), 5061);
        assert_eq!(slot_of("123456789"), 12739);
        for key in ["p:1", "p:2", "p:30", "anything", "{a}b", "foo{}{bar}", "foo{{bar}}zap"] {
            assert_eq!(format!("{:?}", Slot::for_key(key)), format!("Slot({})", slot_of(key)));
        }
    }

    #[test]
    fn cluster_slots_reply_is_parsed() {
        let reply = Value::Array(vec![
            Value::Array(vec![Value::Int(0), Value::Int(8191), node("127.0.0.1", 7000), node("127.0.0.1", 7003)]),
            Value::Array(vec![Value::Int(8192), Value::Int(16383), node("", 7001)]),
        ]);
        let topology = Topology::parse(reply, "10.0.0.9").unwrap();
        assert_eq!(topology.masters.len(), 2);
        assert_eq!(&*topology.master_of(0).unwrap().addr, "127.0.0.1:7000");
        assert_eq!(topology.master_of(0).unwrap().replicas.len(), 1);
        assert_eq!(&*topology.master_of(16383).unwrap().addr, "10.0.0.9:7001");
        assert_eq!(topology.unserved(), 0);
        let partial = Value::Array(vec![Value::Array(vec![Value::Int(0), Value::Int(99), node("127.0.0.1", 7000)])]);
        let topology = Topology::parse(partial, "h").unwrap();
        assert_eq!(topology.unserved(), SLOTS - 100);
        assert!(Topology::parse(Value::Int(3), "h").is_err());
        let out_of_range = Value::Array(vec![Value::Array(vec![Value::Int(0), Value::Int(16384), node("h", 1)])]);
        assert!(Topology::parse(out_of_range, "h").is_err());
    }

    #[test]
    fn keys_are_grouped_by_node_then_slot_in_batch_order() {
        let reply = Value::Array(vec![
            Value::Array(vec![Value::Int(0), Value::Int(8191), node("a", 1)]),
            Value::Array(vec![Value::Int(8192), Value::Int(16383), node("b", 2)]),
        ]);
        let topology = Topology::parse(reply, "h").unwrap();
        let keys: Vec<String> = (1..=40).map(|i| format!("p:{i}")).collect();
        let groups = group_by_node(&topology, &keys).unwrap();
        assert!(groups.len() <= 2);
        let mut all: Vec<usize> = groups.iter().flat_map(|(_, s)| s.iter().flatten().copied()).collect();
        all.sort_unstable();
        assert_eq!(all, (0..40).collect::<Vec<_>>());
        for (addr, slots) in &groups {
            for group in slots {
                let slot = slot_of(&keys[group[0]]);
                assert!(group.iter().all(|i| slot_of(&keys[*i]) == slot));
                assert!(group.windows(2).all(|w| w[0] < w[1]));
                assert_eq!(&topology.master_of(slot).unwrap().addr, addr);
            }
        }
    }

    #[test]
    fn unserved_slots_are_cluster_down() {
        let reply = Value::Array(vec![Value::Array(vec![Value::Int(0), Value::Int(10), node("a", 1)])]);
        let topology = Topology::parse(reply, "h").unwrap();
        let error = group_by_node(&topology, &["foo".to_owned()]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Server(ServerErrorKind::ClusterDown));
    }

    #[test]
    fn redirects_and_seeds_are_read() {
        let moved =
            RedisError::from((ErrorKind::Server(ServerErrorKind::Moved), "moved", "3999 127.0.0.1:6381".to_owned()));
        assert_eq!(redirect_target(&moved, "127.0.0.1:1"), Some((Arc::from("127.0.0.1:6381"), false)));
        let ask = RedisError::from((ErrorKind::Server(ServerErrorKind::Ask), "ask", "3999 :6381".to_owned()));
        assert_eq!(redirect_target(&ask, "10.1.1.1:7000"), Some((Arc::from("10.1.1.1:6381"), true)));
        assert_eq!(seed_addr("redis://127.0.0.1:7000/"), "127.0.0.1:7000");
        assert_eq!(seed_addr("redis://user:pw@host:1/0"), "host:1");
        assert_eq!(seed_addr("host:2"), "host:2");
    }
}
