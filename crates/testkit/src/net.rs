//! Free ports and deadline polling.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

/// A port on 127.0.0.1 that was free a moment ago, below the kernel's
/// ephemeral range when it can: a client that keeps dialling a server's port
/// while the server is down (a Redis client reconnecting, the Cluster
/// client's topology refresh) is otherwise handed that very port as its own
/// source port by Linux now and then, connects to itself, and holds the port
/// the server is about to be restarted on.
pub fn free_port() -> u16 {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let first = low.saturating_sub(16_384).max(1_024);
    let span = low.saturating_sub(first);
    if span > 0 {
        // Handed out in turn from a random start, so that no two calls in one
        // test process (several clusters of a dozen ports starting at once)
        // get the same port between its check and its use.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(u32::MAX);
        let _ = NEXT.compare_exchange(
            u32::MAX,
            rand::random_range(0..u32::from(span)),
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
        );
        for _ in 0..span.min(1_000) {
            let offset = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % u32::from(span);
            let port = first + u16::try_from(offset).expect("below span");
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("bind 127.0.0.1:0").port()
}

/// The shutdown of servers under test: hand [`Shutdown::signal`] to each
/// server's `serve(listener, config, shutdown)`, and [`Shutdown::stop`]
/// drains them all (a signal taken after the stop resolves at once).
pub struct Shutdown(tokio::sync::watch::Sender<bool>);

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown(tokio::sync::watch::channel(false).0)
    }

    /// Resolves once [`Shutdown::stop`] has been called.
    pub fn signal(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stopped = self.0.subscribe();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    }

    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

impl Default for Shutdown {
    fn default() -> Shutdown {
        Shutdown::new()
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` once
/// `timeout` has passed. The pause between polls is short and grows.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    match poll_until(Instant::now() + timeout, check).await {
        Some(v) => v,
        None => panic!("timed out after {timeout:?} waiting for {what}"),
    }
}

/// Polls `check` until it returns `Some`, or returns None at `deadline`
/// (for a test that reports a bound that was missed rather than stopping).
pub async fn poll_until<T, F, Fut>(deadline: Instant, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Blocking variant of [`eventually`] for code outside a runtime.
pub fn eventually_blocking<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// True when something accepts TCP connections at `addr`.
pub fn accepts(addr: SocketAddr) -> bool {
    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}
