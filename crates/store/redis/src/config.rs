//! What a [`crate::RedisStore`] needs to know, and its validation.

use std::time::Duration;

/// Connection settings of one Redis store (one of the "A" / "B" clusters).
///
/// Plain data: the services map their own config file onto it, then
/// [`crate::RedisStore::new`] validates it with [`RedisConfig::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// Stable name for metrics and logs ("redis-a").
    pub name: String,
    /// Standalone: exactly one `redis://host:port/db` URL. Cluster: seed nodes
    /// (any reachable subset; the rest is discovered from CLUSTER SLOTS).
    pub urls: Vec<String>,
    /// Redis Cluster (slot routing, MOVED/ASK handling) instead of one server.
    pub cluster: bool,
    /// Bound on one TCP connect (plus handshake) attempt.
    pub connect_timeout: Duration,
    /// Bound on waiting for one answer once connected. A frozen server
    /// becomes [`pricing_store::StoreErrorKind::Timeout`] after about this long.
    pub response_timeout: Duration,
    /// Expiry set on every key a `put` writes (`SET ... PX`); `None` keeps keys
    /// until they are replaced or removed. Skipped (older) writes do not
    /// refresh it. Millisecond resolution.
    pub key_ttl: Option<Duration>,
    /// Cluster only: how often the slot map is asked for (`CLUSTER SLOTS`)
    /// when nothing goes wrong; a failing call asks at once (at most every
    /// 200 ms). Bounds how long a running process takes to see a promoted
    /// replica or a moved slot that no call has tripped over.
    pub topology_refresh: Duration,
    /// Cluster only: after a write, wait this long for one replica to
    /// acknowledge it (`WAIT 1`) when the master has a live replica; an
    /// unacknowledged write is retried, then reported failed (the projector
    /// queues it), so a failover right after the write cannot lose it.
    /// `None`: do not wait (a write acknowledged only by the master can be
    /// lost when it dies before its replica has it).
    pub replica_ack_timeout: Option<Duration>,
}

impl RedisConfig {
    /// Default connect timeout: a connect to a live server on the same network
    /// takes well under a millisecond; 500 ms leaves room for a busy host.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
    /// Default response timeout: Redis answers an MGET of a listing page in
    /// about a millisecond; beyond 250 ms the dual-cluster combinator is
    /// better off asking the other cluster.
    pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_millis(250);
    /// Default slot-map refresh: once a second, about a kilobyte per node
    /// asked; a promotion is seen within about a second even with no traffic.
    pub const DEFAULT_TOPOLOGY_REFRESH: Duration = Duration::from_secs(1);
    /// Default replica acknowledgement wait: replication on one network takes
    /// well under a millisecond; 100 ms covers a busy replica.
    pub const DEFAULT_REPLICA_ACK_TIMEOUT: Duration = Duration::from_millis(100);

    /// One standalone server with the default timeouts and no key TTL.
    pub fn standalone(name: impl Into<String>, url: impl Into<String>) -> RedisConfig {
        RedisConfig {
            name: name.into(),
            urls: vec![url.into()],
            cluster: false,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            response_timeout: Self::DEFAULT_RESPONSE_TIMEOUT,
            key_ttl: None,
            topology_refresh: Self::DEFAULT_TOPOLOGY_REFRESH,
            replica_ack_timeout: Some(Self::DEFAULT_REPLICA_ACK_TIMEOUT),
        }
    }

    /// A Redis Cluster reached through the given seed nodes, default timeouts, no key TTL.
    pub fn cluster<S: Into<String>>(name: impl Into<String>, seeds: impl IntoIterator<Item = S>) -> RedisConfig {
        RedisConfig {
            urls: seeds.into_iter().map(Into::into).collect(),
            cluster: true,
            ..RedisConfig::standalone(name, String::new())
        }
    }

    pub fn with_timeouts(mut self, connect: Duration, response: Duration) -> RedisConfig {
        self.connect_timeout = connect;
        self.response_timeout = response;
        self
    }

    pub fn with_key_ttl(mut self, ttl: Option<Duration>) -> RedisConfig {
        self.key_ttl = ttl;
        self
    }

    /// The bound on a whole store call: it may have to connect first and then
    /// wait for the answer. The redis client's own timeouts normally fire
    /// first; this is the backstop that makes every call return.
    pub fn call_deadline(&self) -> Duration {
        self.connect_timeout + self.response_timeout
    }

    /// Checks the settings without any I/O.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.name.trim().is_empty() {
            return Err(ConfigError::EmptyName);
        }
        match (self.cluster, self.urls.len()) {
            (_, 0) => return Err(ConfigError::NoUrl),
            (false, n) if n > 1 => return Err(ConfigError::StandaloneWithSeveralUrls(n)),
            _ => {}
        }
        if let Some(url) = self.urls.iter().find(|u| u.trim().is_empty()) {
            return Err(ConfigError::InvalidUrl { url: url.clone(), message: "empty".into() });
        }
        if self.connect_timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout("connect_timeout"));
        }
        if self.response_timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout("response_timeout"));
        }
        if let Some(ttl) = self.key_ttl
            && ttl < Duration::from_millis(1)
        {
            return Err(ConfigError::TtlBelowOneMillisecond(ttl));
        }
        if self.topology_refresh < Duration::from_millis(10) {
            return Err(ConfigError::ZeroTimeout("topology_refresh (at least 10 ms)"));
        }
        if self.replica_ack_timeout.is_some_and(|t| t < Duration::from_millis(1)) {
            return Err(ConfigError::ZeroTimeout("replica_ack_timeout (at least 1 ms)"));
        }
        Ok(())
    }

    /// The TTL as the script's argument: whole milliseconds, 0 for none.
    pub(crate) fn ttl_millis(&self) -> u64 {
        self.key_ttl.map_or(0, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX))
    }
}

/// Why a [`RedisConfig`] cannot be used. Only configuration faults: a Redis
/// that is down is not one (the store comes up and reports `Unavailable` per call).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("redis store name is empty")]
    EmptyName,
    #[error("no redis url configured")]
    NoUrl,
    #[error("a standalone redis store takes exactly one url, got {0} (set cluster = true for seed nodes)")]
    StandaloneWithSeveralUrls(usize),
    #[error("invalid redis url {url:?}: {message}")]
    InvalidUrl { url: String, message: String },
    #[error("{0} must be above zero")]
    ZeroTimeout(&'static str),
    #[error("key ttl {0:?} is below the one-millisecond resolution")]
    TtlBelowOneMillisecond(Duration),
    #[error("the redis store must be created inside a tokio runtime (it spawns its connection task)")]
    NoRuntime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        RedisConfig::standalone("redis-a", "redis://127.0.0.1:6379/").validate().unwrap();
        RedisConfig::cluster("redis-b", ["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"]).validate().unwrap();
    }

    #[test]
    fn faults_are_named() {
        let ok = RedisConfig::standalone("redis-a", "redis://127.0.0.1:6379/");
        assert_eq!(RedisConfig { name: " ".into(), ..ok.clone() }.validate(), Err(ConfigError::EmptyName));
        assert_eq!(RedisConfig { urls: vec![], ..ok.clone() }.validate(), Err(ConfigError::NoUrl));
        assert_eq!(
            RedisConfig { urls: vec!["redis://a".into(), "redis://b".into()], ..ok.clone() }.validate(),
            Err(ConfigError::StandaloneWithSeveralUrls(2))
        );
        assert!(matches!(
            RedisConfig { urls: vec![String::new()], ..ok.clone() }.validate(),
            Err(ConfigError::InvalidUrl { .. })
        ));
        assert_eq!(
            ok.clone().with_timeouts(Duration::ZERO, Duration::from_millis(1)).validate(),
            Err(ConfigError::ZeroTimeout("connect_timeout"))
        );
        assert_eq!(
            ok.clone().with_timeouts(Duration::from_millis(1), Duration::ZERO).validate(),
            Err(ConfigError::ZeroTimeout("response_timeout"))
        );
        assert_eq!(
            ok.clone().with_key_ttl(Some(Duration::from_micros(10))).validate(),
            Err(ConfigError::TtlBelowOneMillisecond(Duration::from_micros(10)))
        );
    }

    #[test]
    fn ttl_argument_is_whole_milliseconds_or_zero() {
        let ok = RedisConfig::standalone("redis-a", "redis://127.0.0.1:6379/");
        assert_eq!(ok.ttl_millis(), 0);
        assert_eq!(ok.clone().with_key_ttl(Some(Duration::from_secs(90))).ttl_millis(), 90_000);
        assert_eq!(
            ok.clone().with_timeouts(Duration::from_millis(3), Duration::from_millis(4)).call_deadline(),
            Duration::from_millis(7)
        );
    }
}
