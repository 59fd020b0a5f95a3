//! Push invalidation over Redis pub/sub: the projector announces the goods
//! ids it just wrote ([`Announcer`]), every list and detail server listens
//! ([`subscribe`]) and drops those ids from its in-process caches (an
//! [`Invalidate`], usually a server's [`pricing_store::Invalidators`]).
//!
//! - One channel ([`DEFAULT_CHANNEL`]) on EACH cluster of the Redis pair:
//!   the projector publishes on both after writing all four clusters, a
//!   server subscribes to both, so one cluster down loses nothing. On a
//!   Redis Cluster a plain `PUBLISH` reaches every node's subscribers (the
//!   bus forwards it), so the subscriber connects to any one node and the
//!   announcer publishes through any one node. Sharded pub/sub (`SPUBLISH`,
//!   Redis 7) would keep a message on its slot's shard, but needs a
//!   subscription per shard and re-subscription on every slot move; the
//!   traffic here (a few hundred bytes per projector batch) does not pay
//!   for that.
//! - The payload is the ids in decimal, comma-separated, at most
//!   [`MAX_IDS_PER_MESSAGE`] per message; duplicates between the two
//!   clusters are harmless (dropping an id twice).
//! - A subscription that fails (connection closed, `CLIENT KILL`, a ping
//!   unanswered within the ping interval plus the response timeout) is counted, logged at a bounded
//!   rate, and re-made with a doubling pause (`reconnect_min` up to
//!   `reconnect_max`, with jitter), trying the cluster's urls in turn.
//!   While no subscription of the pair is up, the caches fall back to their
//!   own lifetime; when one is back after such a gap, everything cached is
//!   dropped (`invalidate_all`: the announcements of the gap are lost).
//!
//! Metrics (label `cluster` = the store name, `redis-a` / `redis-b`):
//! `pricing_invalidation_published_total{cluster}` (ids announced),
//! `pricing_invalidation_publish_errors_total{cluster}` (messages that
//! could not be published), `pricing_invalidation_received_total{cluster}`
//! (ids received), `pricing_invalidation_subscription_lost_total{cluster}`,
//! `pricing_invalidation_connect_failures_total{cluster}`,
//! `pricing_invalidation_malformed_total{cluster}`,
//! `pricing_invalidation_subscribed{cluster}` (gauge, 1 while subscribed)
//! and `pricing_invalidation_flushes_total` (caches emptied after a gap).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use pricing_record::GoodsId;
use pricing_store::Invalidate;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, RedisResult};
use tokio::task::JoinHandle;

use crate::config::{ConfigError, RedisConfig};

/// The channel announcements go to unless configured otherwise.
pub const DEFAULT_CHANNEL: &str = "pricing:goods-changed";

/// Ids per published message: about 10 KB at most.
pub const MAX_IDS_PER_MESSAGE: usize = 1_000;

/// The payload of one message: `ids` in decimal, comma-separated.
pub fn encode_ids(ids: &[GoodsId]) -> String {
    let mut out = String::with_capacity(ids.len() * 8);
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&id.to_string());
    }
    out
}

/// The ids of a payload; `None` when any part is not a goods id.
pub fn decode_ids(payload: &[u8]) -> Option<Vec<GoodsId>> {
    let text = std::str::from_utf8(payload).ok()?;
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(',').map(|part| part.trim().parse::<GoodsId>().ok()).collect()
}

/// Publishes announcements on every cluster of a pair.
pub struct Announcer {
    channel: Arc<str>,
    clusters: Vec<Publisher>,
}

/// One cluster: a lazily connected, reconnecting connection per url, tried
/// in order until one takes the message.
struct Publisher {
    name: Arc<str>,
    conns: Vec<ConnectionManager>,
    deadline: Duration,
}

impl Announcer {
    /// An announcer over these clusters (their names, urls and timeouts);
    /// no I/O here. Needs a Tokio runtime.
    pub fn new(clusters: &[RedisConfig], channel: &str) -> Result<Announcer, ConfigError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ConfigError::NoRuntime);
        }
        let mut publishers = Vec::with_capacity(clusters.len());
        for config in clusters {
            config.validate()?;
            let manager_config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(config.connect_timeout))
                .set_response_timeout(Some(config.response_timeout))
                .set_number_of_retries(0);
            let mut conns = Vec::with_capacity(config.urls.len());
            for url in &config.urls {
                let invalid = |e: RedisError| ConfigError::InvalidUrl { url: url.clone(), message: e.to_string() };
                let client = redis::Client::open(url.as_str()).map_err(invalid)?;
                conns.push(ConnectionManager::new_lazy_with_config(client, manager_config.clone()).map_err(invalid)?);
            }
            publishers.push(Publisher {
                name: Arc::from(config.name.as_str()),
                conns,
                deadline: config.call_deadline(),
            });
        }
        Ok(Announcer { channel: Arc::from(channel), clusters: publishers })
    }

    /// Announces `ids` on every cluster at once. Failures are counted and
    /// logged, never returned: a lost announcement costs freshness (the
    /// caches' lifetime still bounds it), not correctness. Returns how many
    /// clusters took every message.
    pub async fn announce(&self, ids: &[GoodsId]) -> usize {
        if ids.is_empty() {
            return 0;
        }
        let payloads: Vec<String> = ids.chunks(MAX_IDS_PER_MESSAGE).map(encode_ids).collect();
        let sends = self.clusters.iter().map(|cluster| async {
            let mut all = true;
            for (payload, chunk) in payloads.iter().zip(ids.chunks(MAX_IDS_PER_MESSAGE)) {
                match cluster.publish(&self.channel, payload).await {
                    Ok(()) => {
                        metrics::counter!("pricing_invalidation_published_total", "cluster" => cluster.name.to_string())
                            .increment(chunk.len() as u64);
                    }
                    Err(error) => {
                        all = false;
                        metrics::counter!("pricing_invalidation_publish_errors_total", "cluster" => cluster.name.to_string())
                            .increment(1);
                        pricing_store::throttled!(|suppressed| tracing::warn!(
                            cluster = %cluster.name, ids = chunk.len(), %error, suppressed,
                            "invalidation not announced; servers fall back to their cache lifetime"
                        ));
                    }
                }
            }
            all
        });
        futures::future::join_all(sends).await.into_iter().filter(|ok| *ok).count()
    }
}

impl Publisher {
    async fn publish(&self, channel: &str, payload: &str) -> RedisResult<()> {
        let mut last = None;
        for conn in &self.conns {
            let mut conn = conn.clone();
            let mut cmd = redis::cmd("PUBLISH");
            cmd.arg(channel).arg(payload);
            let publish = cmd.query_async::<i64>(&mut conn);
            match tokio::time::timeout(self.deadline, publish).await {
                Ok(Ok(_receivers)) => return Ok(()),
                Ok(Err(error)) => last = Some(error),
                Err(_) => last = Some(RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))),
            }
        }
        Err(last.unwrap_or_else(|| RedisError::from(std::io::Error::other("no url configured"))))
    }
}

/// How a server follows the announcements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeSettings {
    pub channel: String,
    /// First pause before re-subscribing after a loss; doubles per failed
    /// attempt up to `reconnect_max`.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// How often a subscribed connection is pinged: a connection that went
    /// silent (a frozen server, a dropped network path) is found within
    /// about twice this plus the response timeout (a ping may take its
    /// interval plus the response timeout to answer).
    pub ping_interval: Duration,
}

impl Default for SubscribeSettings {
    fn default() -> Self {
        SubscribeSettings {
            channel: DEFAULT_CHANNEL.to_owned(),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            ping_interval: Duration::from_secs(1),
        }
    }
}

/// The running subscriptions of one pair; dropping it stops them.
pub struct Subscription {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Whether any subscription of the pair is up, and whether one was lost
/// with none left up (a gap: announcements may have been missed).
struct PairState {
    live: AtomicUsize,
    gap: AtomicBool,
}

impl PairState {
    /// A subscription is up; true when the caches must be emptied first.
    fn up(&self) -> bool {
        self.live.fetch_add(1, Ordering::SeqCst);
        self.gap.swap(false, Ordering::SeqCst)
    }

    fn down(&self) {
        if self.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.gap.store(true, Ordering::SeqCst);
        }
    }
}

/// Subscribes to the announcements on each of `clusters` (one task each)
/// and drops every announced id from `sink`. Needs a Tokio runtime; no
/// I/O before it returns (a cluster that is down is retried with backoff).
pub fn subscribe(clusters: &[RedisConfig], settings: SubscribeSettings, sink: Arc<dyn Invalidate>) -> Subscription {
    // Before the first subscription nothing was announced to us: count it
    // as a gap, so whatever was cached before it is dropped.
    let state = Arc::new(PairState { live: AtomicUsize::new(0), gap: AtomicBool::new(true) });
    let settings = Arc::new(settings);
    let tasks = clusters
        .iter()
        .map(|config| {
            let follow = Follow {
                name: Arc::from(config.name.as_str()),
                urls: config.urls.clone(),
                connect_timeout: config.connect_timeout,
                response_timeout: config.response_timeout,
                settings: Arc::clone(&settings),
                sink: Arc::clone(&sink),
                state: Arc::clone(&state),
            };
            tokio::spawn(follow.run())
        })
        .collect();
    Subscription { tasks }
}

struct Follow {
    name: Arc<str>,
    urls: Vec<String>,
    connect_timeout: Duration,
    response_timeout: Duration,
    settings: Arc<SubscribeSettings>,
    sink: Arc<dyn Invalidate>,
    state: Arc<PairState>,
}

impl Follow {
    async fn run(self) {
        let cluster = self.name.to_string();
        metrics::gauge!("pricing_invalidation_subscribed", "cluster" => cluster.clone()).set(0.0);
        let mut pause = self.settings.reconnect_min;
        let mut attempt = 0usize;
        loop {
            let url = &self.urls[attempt % self.urls.len().max(1)];
            attempt = attempt.wrapping_add(1);
            match self.connect(url).await {
                Ok(pubsub) => {
                    pause = self.settings.reconnect_min;
                    metrics::gauge!("pricing_invalidation_subscribed", "cluster" => cluster.clone()).set(1.0);
                    if self.state.up() {
                        metrics::counter!("pricing_invalidation_flushes_total").increment(1);
                        self.sink.invalidate_all().await;
                    }
                    tracing::info!(cluster = %self.name, url, channel = %self.settings.channel, "invalidation subscribed");
                    let why = self.listen(pubsub).await;
                    self.state.down();
                    metrics::gauge!("pricing_invalidation_subscribed", "cluster" => cluster.clone()).set(0.0);
                    metrics::counter!("pricing_invalidation_subscription_lost_total", "cluster" => cluster.clone())
                        .increment(1);
                    pricing_store::throttled!(|suppressed| tracing::warn!(
                        cluster = %self.name, reason = %why, suppressed,
                        "invalidation subscription lost; caches fall back to their lifetime until it is back"
                    ));
                }
                Err(error) => {
                    metrics::counter!("pricing_invalidation_connect_failures_total", "cluster" => cluster.clone())
                        .increment(1);
                    pricing_store::throttled!(|suppressed| tracing::warn!(
                        cluster = %self.name, url, %error, suppressed, "invalidation subscription failed; retrying"
                    ));
                }
            }
            let jitter = rand::random_range(0..=pause.as_millis() as u64 / 4);
            tokio::time::sleep(pause + Duration::from_millis(jitter)).await;
            pause = (pause * 2).min(self.settings.reconnect_max);
        }
    }

    /// One connection, subscribed, within the connect and response timeouts.
    async fn connect(&self, url: &str) -> RedisResult<redis::aio::PubSub> {
        let timed_out = || RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        let client = redis::Client::open(url)?;
        let mut pubsub =
            tokio::time::timeout(self.connect_timeout, client.get_async_pubsub()).await.map_err(|_| timed_out())??;
        tokio::time::timeout(self.response_timeout, pubsub.subscribe(self.settings.channel.as_str()))
            .await
            .map_err(|_| timed_out())??;
        Ok(pubsub)
    }

    /// Drops announced ids until the subscription fails; says why.
    async fn listen(&self, pubsub: redis::aio::PubSub) -> String {
        let cluster = self.name.to_string();
        let (mut sink, mut stream) = pubsub.split();
        let mut ping = tokio::time::interval(self.settings.ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        loop {
            tokio::select! {
                message = stream.next() => {
                    let Some(message) = message else { return "connection closed".to_owned() };
                    match decode_ids(message.get_payload_bytes()) {
                        Some(ids) => {
                            metrics::counter!("pricing_invalidation_received_total", "cluster" => cluster.clone())
                                .increment(ids.len() as u64);
                            self.sink.invalidate(&ids).await;
                        }
                        None => {
                            metrics::counter!("pricing_invalidation_malformed_total", "cluster" => cluster.clone())
                                .increment(1);
                            pricing_store::throttled!(|suppressed| tracing::warn!(
                                cluster = %self.name, bytes = message.get_payload_bytes().len(), suppressed,
                                "invalidation message is not a list of goods ids; ignored"
                            ));
                        }
                    }
                }
                _ = ping.tick() => {
                    // A ping may wait its whole interval on top of the
                    // response timeout: a busy process (or Redis) is not a
                    // lost subscription; a silent one is found within about
                    // two intervals.
                    let patience = self.response_timeout + self.settings.ping_interval;
                    match tokio::time::timeout(patience, sink.ping::<redis::Value>()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(error)) => return format!("ping failed: {error}"),
                        Err(_) => return "ping unanswered".to_owned(),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_garbage_is_refused() {
        assert_eq!(encode_ids(&[1, 22, 333]), "1,22,333");
        assert_eq!(decode_ids(b"1,22,333"), Some(vec![1, 22, 333]));
        assert_eq!(decode_ids(b""), Some(vec![]));
        assert_eq!(decode_ids(b"1,x"), None);
        assert_eq!(decode_ids(b"-1"), None);
        assert_eq!(decode_ids(&[0xff, 0x31]), None);
    }
}
