//! A real Redis Cluster of throwaway `redis-server` processes: by default
//! three masters and three replicas, `cluster-node-timeout` 2000 ms.
//!
//! Layout: [`ClusterOptions`] says how many masters and replicas, the node
//! timeout and whether a [`TcpProxy`] stands in front of every node.
//! [`RedisCluster::start`] does what `redis-cli --cluster create` does,
//! without redis-cli: every node on free ports with an explicit bus port
//! (`--cluster-port`; port + 10000 may not exist), its own directory, no
//! persistence; slots split evenly over the masters with CLUSTER
//! ADDSLOTSRANGE, the nodes joined with CLUSTER MEET, each replica attached
//! with CLUSTER REPLICATE; then it polls until every node says
//! `cluster_state:ok`, every replica `master_link_status:up`, and every
//! node's CLUSTER NODES shows the same replicas. Every
//! process is killed when the cluster is dropped.
//!
//! Faults and observation: [`RedisCluster::kill`] (SIGKILL, by index or by
//! the slot of a key), [`RedisCluster::wait_for_promotion`] (the instant a
//! survivor first shows the dead master's slots served by another master),
//! [`RedisCluster::restart`], [`RedisCluster::reshard`] (`redis-cli
//! --cluster reshard`, which needs the `redis-cli` of Debian's redis-tools),
//! and per-node command counters from `INFO commandstats`
//! ([`RedisCluster::command_calls`], reset with CONFIG RESETSTAT). The
//! harness's own commands go to each node's real port, never through a
//! proxy, so a black-holed proxy never blocks the test.
//!
//! Proxied clusters ([`ClusterOptions::proxied`]): each node announces its
//! proxy (`cluster-announce-ip 127.0.0.1`, `cluster-announce-port`), so
//! clients that follow CLUSTER SLOTS / MOVED go through the proxies and a
//! test can delay or black-hole one whole cluster's client traffic. The
//! cluster bus keeps its real port (no `cluster-announce-bus-port`), so
//! failure detection and failover are never affected by the proxies.
//! Replication is: a replica connects to its master's announced address,
//! i.e. through the master's proxy. Latency on the proxies delays the
//! replication stream too; a black hole stalls it (the replica's link only
//! drops after `repl-timeout`, 60 s), and when the proxies pass again the
//! held bytes flow on. A node killed under a proxy makes the proxy accept
//! and close at once, like a refused connection.
//!
//! A restarted node keeps its `nodes.conf` (node id, epoch) but no data.
//! A master killed and failed over rejoins as a replica of the node
//! promoted in its place and full-syncs from it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::net::{eventually, free_port};
use crate::proxy::{Mode, TcpProxy};
use crate::redis::{binary, command_calls, raw_command};

/// Hash slots of a Redis Cluster.
pub const SLOTS: u16 = 16_384;

/// How to build a cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub masters: usize,
    pub replicas_per_master: usize,
    /// `cluster-node-timeout`: how long a node may be unreachable before it
    /// is failed (and its replica promoted).
    pub node_timeout: Duration,
    /// A [`TcpProxy`] in front of every node, announced to clients.
    pub proxied: bool,
    /// The client port of the first node (otherwise a free port).
    pub first_port: Option<u16>,
}

impl Default for ClusterOptions {
    /// Three masters, one replica each, 2000 ms node timeout, no proxies.
    fn default() -> Self {
        ClusterOptions {
            masters: 3,
            replicas_per_master: 1,
            node_timeout: Duration::from_millis(2_000),
            proxied: false,
            first_port: None,
        }
    }
}

impl ClusterOptions {
    /// `masters` masters without replicas.
    pub fn masters_only(masters: usize) -> ClusterOptions {
        ClusterOptions { masters, replicas_per_master: 0, ..ClusterOptions::default() }
    }

    pub fn proxied(self) -> ClusterOptions {
        ClusterOptions { proxied: true, ..self }
    }

    pub fn node_timeout(self, node_timeout: Duration) -> ClusterOptions {
        ClusterOptions { node_timeout, ..self }
    }

    pub fn first_port(self, port: u16) -> ClusterOptions {
        ClusterOptions { first_port: Some(port), ..self }
    }
}

struct Node {
    port: u16,
    bus_port: u16,
    dir: PathBuf,
    id: String,
    child: Option<Child>,
    proxy: Option<TcpProxy>,
    /// The slots this node served when it was killed.
    slots_when_killed: Vec<(u16, u16)>,
}

/// One node as a survivor's CLUSTER NODES shows it.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub id: String,
    /// The harness's index of the node (None for a node it did not start).
    pub index: Option<usize>,
    pub master: bool,
    /// Flagged `fail` or `fail?`.
    pub failing: bool,
    /// The master's id, for a replica.
    pub master_id: Option<String>,
    /// Slot ranges served (inclusive).
    pub slots: Vec<(u16, u16)>,
}

/// What [`RedisCluster::wait_for_promotion`] saw.
#[derive(Debug, Clone)]
pub struct Promotion {
    /// The killed master.
    pub dead: usize,
    /// The node now serving its slots.
    pub new_master: usize,
    /// When the poll first saw it.
    pub at: Instant,
    /// From the kill to `at`.
    pub after_kill: Duration,
}

/// A running cluster; every node is killed on drop.
pub struct RedisCluster {
    nodes: Vec<Node>,
    options: ClusterOptions,
    killed_at: Vec<Option<Instant>>,
    _dir: tempfile::TempDir,
}

/// Deadline of the harness's own waits (start, health, promotion).
const SETUP: Duration = Duration::from_secs(30);

impl RedisCluster {
    /// Starts and joins the nodes, attaches the replicas and waits until
    /// the cluster is healthy (see the module doc). Needs a tokio runtime
    /// (the proxies and the waits run on it).
    pub async fn start(options: ClusterOptions) -> RedisCluster {
        assert!(options.masters >= 1, "a cluster needs a master");
        let dir = tempfile::tempdir().expect("temp dir");
        let count = options.masters * (1 + options.replicas_per_master);
        let mut nodes = Vec::with_capacity(count);
        for i in 0..count {
            let port = match (i, options.first_port) {
                (0, Some(port)) => port,
                _ => free_port(),
            };
            let node_dir = dir.path().join(format!("node-{i}"));
            std::fs::create_dir(&node_dir).expect("node dir");
            let proxy = if options.proxied {
                Some(TcpProxy::start(SocketAddr::from(([127, 0, 0, 1], port))).await)
            } else {
                None
            };
            let mut node = Node {
                port,
                bus_port: free_port(),
                dir: node_dir,
                id: String::new(),
                child: None,
                proxy,
                slots_when_killed: Vec::new(),
            };
            node.spawn(&options);
            nodes.push(node);
        }
        let mut cluster = RedisCluster { nodes, options, killed_at: vec![None; count], _dir: dir };
        for i in 0..count {
            cluster.wait_answering(i).await;
            let id = bulk(&cluster.command(i, &["CLUSTER", "MYID"]));
            assert_eq!(id.len(), 40, "node {i}: CLUSTER MYID gave {id:?}");
            cluster.nodes[i].id = id;
        }

        let masters = cluster.options.masters;
        let per_master = SLOTS as usize / masters;
        for m in 0..masters {
            let first = (per_master * m) as u16;
            let last = if m + 1 == masters { SLOTS - 1 } else { (per_master * (m + 1) - 1) as u16 };
            let reply = cluster.command(m, &["CLUSTER", "ADDSLOTSRANGE", &first.to_string(), &last.to_string()]);
            assert!(reply.starts_with("+OK"), "node {m}: ADDSLOTSRANGE {first} {last}: {reply}");
        }
        for i in 1..count {
            let (port, bus) = (cluster.nodes[i].port.to_string(), cluster.nodes[i].bus_port.to_string());
            let reply = cluster.command(0, &["CLUSTER", "MEET", "127.0.0.1", &port, &bus]);
            assert!(reply.starts_with("+OK"), "CLUSTER MEET node {i}: {reply}");
        }
        let known = format!("cluster_known_nodes:{count}");
        eventually("every node to know every other", SETUP, || async {
            (0..count)
                .all(|i| cluster.try_command(i, &["CLUSTER", "INFO"]).is_some_and(|r| r.contains(&known)))
                .then_some(())
        })
        .await;
        for m in 0..masters {
            for r in 0..cluster.options.replicas_per_master {
                let replica = masters + m * cluster.options.replicas_per_master + r;
                let master_id = cluster.nodes[m].id.clone();
                let reply = cluster.command(replica, &["CLUSTER", "REPLICATE", &master_id]);
                assert!(reply.starts_with("+OK"), "node {replica}: CLUSTER REPLICATE {master_id}: {reply}");
            }
        }
        cluster.wait_healthy().await;
        cluster
    }

    pub fn options(&self) -> &ClusterOptions {
        &self.options
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The node's real client port (the harness's own commands go here).
    pub fn port(&self, node: usize) -> u16 {
        self.nodes[node].port
    }

    /// The address clients are told about: the proxy's, or the real port.
    pub fn client_addr(&self, node: usize) -> SocketAddr {
        match &self.nodes[node].proxy {
            Some(proxy) => proxy.addr(),
            None => SocketAddr::from(([127, 0, 0, 1], self.nodes[node].port)),
        }
    }

    /// Seed URLs for a cluster client: every node's client address.
    pub fn urls(&self) -> Vec<String> {
        (0..self.nodes.len()).map(|i| format!("redis://{}/", self.client_addr(i))).collect()
    }

    pub fn id(&self, node: usize) -> &str {
        &self.nodes[node].id
    }

    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    pub fn is_running(&self, node: usize) -> bool {
        self.nodes[node].child.is_some()
    }

    /// The proxy in front of a node (a proxied cluster only).
    pub fn proxy(&self, node: usize) -> &TcpProxy {
        self.nodes[node].proxy.as_ref().expect("a proxied cluster (ClusterOptions::proxied)")
    }

    /// Sets the mode of every node's proxy: a fault on the whole cluster's client traffic.
    pub fn set_proxy_mode(&self, mode: Mode) {
        for node in 0..self.nodes.len() {
            self.proxy(node).set_mode(mode);
        }
    }

    /// Runs one command on a node's real port; panics when it cannot.
    pub fn command(&self, node: usize, args: &[&str]) -> String {
        raw_command(self.nodes[node].port, args).unwrap_or_else(|e| panic!("node {node}: {args:?}: {e}"))
    }

    /// Runs one command on a running node; None when it is down or does not answer.
    pub fn try_command(&self, node: usize, args: &[&str]) -> Option<String> {
        if !self.is_running(node) {
            return None;
        }
        raw_command(self.nodes[node].port, args).ok()
    }

    /// The cluster as the first running node that answers sees it.
    pub fn topology(&self) -> Option<Vec<NodeView>> {
        (0..self.nodes.len()).find_map(|i| self.topology_seen_by(i))
    }

    /// The cluster as one node sees it (CLUSTER NODES).
    pub fn topology_seen_by(&self, node: usize) -> Option<Vec<NodeView>> {
        let reply = self.try_command(node, &["CLUSTER", "NODES"])?;
        let text = bulk(&reply);
        let views: Vec<NodeView> = text.lines().filter_map(|line| self.parse_node_line(line)).collect();
        (!views.is_empty()).then_some(views)
    }

    fn parse_node_line(&self, line: &str) -> Option<NodeView> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 8 {
            return None;
        }
        let flags: Vec<&str> = fields[2].split(',').collect();
        let slots = fields[8..]
            .iter()
            .filter(|s| !s.starts_with('['))
            .filter_map(|s| match s.split_once('-') {
                Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                None => s.parse().ok().map(|n| (n, n)),
            })
            .collect();
        Some(NodeView {
            id: fields[0].to_owned(),
            index: self.index_of(fields[0]),
            master: flags.contains(&"master"),
            failing: flags.iter().any(|f| *f == "fail" || *f == "fail?"),
            master_id: (fields[3] != "-").then(|| fields[3].to_owned()),
            slots,
        })
    }

    /// Masters serving slots, not failing, by index (ascending).
    pub fn masters(&self) -> Vec<usize> {
        let views = self.topology().expect("a node answers CLUSTER NODES");
        let mut masters: Vec<usize> =
            views.iter().filter(|v| v.master && !v.failing && !v.slots.is_empty()).filter_map(|v| v.index).collect();
        masters.sort_unstable();
        masters
    }

    /// The master serving `slot`.
    pub fn master_of_slot(&self, slot: u16) -> usize {
        let views = self.topology().expect("a node answers CLUSTER NODES");
        views
            .iter()
            .filter(|v| v.master && !v.failing)
            .find(|v| v.slots.iter().any(|&(a, b)| a <= slot && slot <= b))
            .and_then(|v| v.index)
            .unwrap_or_else(|| panic!("no healthy master serves slot {slot}"))
    }

    /// Running replicas of a master.
    pub fn replicas_of(&self, master: usize) -> Vec<usize> {
        let views = self.topology().expect("a node answers CLUSTER NODES");
        let id = &self.nodes[master].id;
        views.iter().filter(|v| v.master_id.as_ref() == Some(id)).filter_map(|v| v.index).collect()
    }

    /// SIGKILL to a node (its slots are remembered for [`RedisCluster::wait_for_promotion`]).
    pub fn kill(&mut self, node: usize) {
        let served = self
            .topology()
            .and_then(|views| views.into_iter().find(|v| v.index == Some(node)))
            .map(|v| v.slots)
            .unwrap_or_default();
        self.nodes[node].slots_when_killed = served;
        if let Some(mut child) = self.nodes[node].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.killed_at[node] = Some(Instant::now());
    }

    /// Kills the master serving `key`'s slot; returns its index.
    pub fn kill_master_of_key(&mut self, key: &[u8]) -> usize {
        let master = self.master_of_slot(key_slot(key));
        self.kill(master);
        master
    }

    /// Polls the survivors until one shows the slots the killed master
    /// `dead` served as served by another, healthy master; the instant is
    /// when the poll first saw it. Panics after 30 s.
    pub async fn wait_for_promotion(&self, dead: usize) -> Promotion {
        let first = self.nodes[dead].slots_when_killed.first().map(|&(a, _)| a);
        let slot = first.unwrap_or_else(|| panic!("node {dead} served no slot when it was killed"));
        let killed = self.killed_at[dead].expect("the node was killed");
        let dead_id = self.nodes[dead].id.clone();
        let new_master = eventually("a replica to be promoted", SETUP, || async {
            (0..self.nodes.len()).find_map(|i| {
                let views = self.topology_seen_by(i)?;
                views
                    .iter()
                    .find(|v| {
                        v.master
                            && !v.failing
                            && v.id != dead_id
                            && v.slots.iter().any(|&(a, b)| a <= slot && slot <= b)
                    })
                    .and_then(|v| v.index)
            })
        })
        .await;
        let at = Instant::now();
        Promotion { dead, new_master, at, after_kill: at - killed }
    }

    /// Starts a killed node again: same ports, same `nodes.conf`, no data.
    /// Waits until it answers, not until the cluster is healthy.
    pub async fn restart(&mut self, node: usize) {
        if self.nodes[node].child.is_none() {
            let options = self.options.clone();
            self.nodes[node].spawn(&options);
        }
        self.killed_at[node] = None;
        self.wait_answering(node).await;
    }

    /// Waits until every running node says `cluster_state:ok`, sees no
    /// running node as failing, the masters serving slots are as many as
    /// configured, every running replica's link to its master is up, and
    /// every node's view lists as replicas exactly the running nodes that
    /// say they are replicas (gossip has carried every REPLICATE, so
    /// [`RedisCluster::replicas_of`] asked of any node gives the same answer).
    pub async fn wait_healthy(&self) {
        eventually("the cluster to be healthy", SETUP, || async { self.healthy().then_some(()) }).await;
    }

    fn healthy(&self) -> bool {
        let running: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.is_running(i)).collect();
        let mut replicas = Vec::new();
        for &i in &running {
            let replication = self.try_command(i, &["INFO", "replication"]).unwrap_or_default();
            if replication.contains("role:slave") {
                if !replication.contains("master_link_status:up") {
                    return false;
                }
                replicas.push(i);
            }
        }
        running.iter().all(|&i| {
            let ok = self.try_command(i, &["CLUSTER", "INFO"]).is_some_and(|r| r.contains("cluster_state:ok"));
            let view = self.topology_seen_by(i).unwrap_or_default();
            let failing = view.iter().any(|v| v.failing && v.index.is_some_and(|n| self.is_running(n)));
            let masters = view.iter().filter(|v| v.master && !v.failing && !v.slots.is_empty()).count();
            let mut seen_replicas: Vec<usize> = view
                .iter()
                .filter(|v| v.master_id.is_some())
                .filter_map(|v| v.index)
                .filter(|&n| self.is_running(n))
                .collect();
            seen_replicas.sort_unstable();
            ok && !failing && masters == self.options.masters && seen_replicas == replicas
        })
    }

    /// Moves `slots` slots from master `from` to master `to` with `redis-cli
    /// --cluster reshard` (keys migrated with MIGRATE, clients redirected
    /// with ASK and MOVED meanwhile). Returns how long it took.
    pub async fn reshard(&self, from: usize, to: usize, slots: u32) -> Duration {
        let entry = self.client_addr(from).to_string();
        let (from_id, to_id) = (self.nodes[from].id.clone(), self.nodes[to].id.clone());
        let started = Instant::now();
        let output = tokio::task::spawn_blocking(move || {
            Command::new(redis_cli())
                .args(["--cluster", "reshard", &entry, "--cluster-from", &from_id, "--cluster-to", &to_id])
                .args(["--cluster-slots", &slots.to_string(), "--cluster-yes"])
                .stdin(Stdio::null())
                .output()
        })
        .await
        .expect("the reshard thread")
        .unwrap_or_else(|e| panic!("cannot run {} ({e}); install redis-tools or run tests/run.sh", redis_cli()));
        let took = started.elapsed();
        let text = String::from_utf8_lossy(&output.stdout);
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        assert!(
            output.status.success(),
            "redis-cli --cluster reshard failed ({}): {}\n{:?}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            tail
        );
        took
    }

    /// Sum over the running nodes of the calls of `commands` (lower-case
    /// names as in INFO commandstats: "mget", "get", "evalsha", "eval").
    pub fn command_calls(&self, commands: &[&str]) -> u64 {
        (0..self.nodes.len()).map(|i| self.node_command_calls(i, commands)).sum()
    }

    /// One node's calls of `commands` since its start or last reset; 0 when it is down.
    pub fn node_command_calls(&self, node: usize, commands: &[&str]) -> u64 {
        let Some(info) = self.try_command(node, &["INFO", "commandstats"]) else { return 0 };
        commands.iter().map(|c| command_calls(&info, c)).sum()
    }

    /// CONFIG RESETSTAT on every running node.
    pub fn reset_stats(&self) {
        for i in 0..self.nodes.len() {
            if self.is_running(i) {
                let reply = self.command(i, &["CONFIG", "RESETSTAT"]);
                assert!(reply.starts_with("+OK"), "node {i}: CONFIG RESETSTAT: {reply}");
            }
        }
    }

    async fn wait_answering(&self, node: usize) {
        eventually("a cluster node to answer PING", SETUP, || async {
            self.try_command(node, &["PING"]).filter(|r| r.contains("PONG")).map(drop)
        })
        .await;
    }
}

impl Node {
    fn spawn(&mut self, options: &ClusterOptions) {
        let mut command = Command::new(binary());
        command
            .args(["--port", &self.port.to_string(), "--cluster-port", &self.bus_port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--cluster-enabled", "yes"])
            .args(["--cluster-config-file", "nodes.conf"])
            .args(["--cluster-node-timeout", &options.node_timeout.as_millis().to_string()])
            // A replica's first sync at once, not after the default 5 s wait for more replicas.
            .args(["--repl-diskless-sync-delay", "0"])
            .args(["--dir", self.dir.to_str().expect("utf-8 temp path")]);
        if let Some(proxy) = &self.proxy {
            command.args(["--cluster-announce-ip", "127.0.0.1"]);
            command.args(["--cluster-announce-port", &proxy.addr().port().to_string()]);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} ({e}); run the tests through tests/run.sh", binary()));
        self.child = Some(child);
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// `redis-cli`: from PRICING_TEST_REDIS_CLI, else the one on the PATH.
fn redis_cli() -> String {
    std::env::var("PRICING_TEST_REDIS_CLI").unwrap_or_else(|_| "redis-cli".to_owned())
}

/// The payload of a bulk-string reply (the reply itself for other kinds).
fn bulk(reply: &str) -> String {
    match reply.strip_prefix('$').and_then(|rest| rest.split_once("\r\n")) {
        Some((_, body)) => body.trim_end_matches("\r\n").to_owned(),
        None => reply.trim_end().to_owned(),
    }
}

/// The hash slot of a key, as the server computes it (checked against
/// CLUSTER KEYSLOT in this crate's cluster test).
pub use pricing_record::keys::redis_cluster_slot as key_slot;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_replies_are_unwrapped() {
        assert_eq!(bulk("$5\r\nhello\r\n"), "hello");
        assert_eq!(bulk("+OK\r\n"), "+OK");
    }
}
