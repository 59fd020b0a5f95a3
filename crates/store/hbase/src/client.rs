//! A small pool of synchronous Thrift connections, driven from async code.
//!
//! The generated client blocks on its socket, so every call runs on
//! `spawn_blocking` with one pooled connection. A call is bounded three
//! ways: a permit (at most `pool_size` calls in flight), the socket
//! read/write timeouts (so the blocking thread frees itself), and a tokio
//! deadline over the whole call (so the caller never waits longer than
//! `call_timeout`). A connection that saw a transport or protocol error is
//! dropped, never returned: its stream may hold half a reply. A call that
//! fails on a *reused* connection with a transport error (the server
//! restarted or closed it while idle) is tried once more on a fresh
//! connection; every call here is idempotent (reads, writes at a fixed
//! timestamp, deletes up to a fixed timestamp).
//!
//! Hand-written rather than thrift-pool's r2d2/bb8 managers: those open
//! connections through `TTcpChannel::open`, which sets no connect, read or
//! write timeout, and the r2d2 manager checks each connection out with an
//! extra `getTableNames` round trip.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hbase_thrift::hbase::{HbaseSyncClient, IOError};
use pricing_store::{StoreError, StoreErrorKind};
use thrift::TransportErrorKind;
use thrift::protocol::{TBinaryInputProtocol, TBinaryOutputProtocol};
use thrift::transport::{TBufferedReadTransport, TBufferedWriteTransport, TFramedReadTransport, TFramedWriteTransport};
use tokio::sync::Semaphore;

use crate::{HbaseConfig, Transport};

/// The generated client over boxed transports, so that framed and buffered
/// connections share one type (the choice is configuration, not a type).
pub(crate) type Client =
    HbaseSyncClient<TBinaryInputProtocol<Box<dyn Read + Send>>, TBinaryOutputProtocol<Box<dyn Write + Send>>>;

/// Why a call failed, before it is named for a store.
#[derive(Debug)]
pub(crate) enum CallError {
    /// No address accepted a connection.
    Connect(io::Error),
    Thrift(thrift::Error),
    /// The call's deadline passed.
    TimedOut,
    /// Every connection stayed busy until the deadline.
    PoolExhausted,
    /// The blocking task died (a panic in the client).
    Worker(String),
}

impl CallError {
    pub(crate) fn into_store_error(self, store: &str, method: &str) -> StoreError {
        let (kind, message) = match self {
            CallError::Connect(e) => (StoreErrorKind::Unavailable, format!("{method}: connect: {e}")),
            CallError::TimedOut => (StoreErrorKind::Timeout, format!("{method}: timed out")),
            CallError::PoolExhausted => (StoreErrorKind::Unavailable, format!("{method}: no free connection in time")),
            CallError::Worker(e) => (StoreErrorKind::Unavailable, format!("{method}: worker failed: {e}")),
            CallError::Thrift(e) => (thrift_kind(&e), format!("{method}: {e}")),
        };
        StoreError::new(store, kind, message)
    }
}

/// Store error kind of a Thrift failure.
fn thrift_kind(e: &thrift::Error) -> StoreErrorKind {
    match e {
        thrift::Error::Transport(t) => match t.kind {
            TransportErrorKind::TimedOut => StoreErrorKind::Timeout,
            TransportErrorKind::NegativeSize | TransportErrorKind::SizeLimit => StoreErrorKind::Protocol,
            _ => StoreErrorKind::Unavailable,
        },
        // HBase's IOError: the cluster could not serve the call (region
        // moving, server busy, table missing): the store is unavailable.
        thrift::Error::User(u) if u.is::<IOError>() => StoreErrorKind::Unavailable,
        thrift::Error::User(_) | thrift::Error::Protocol(_) | thrift::Error::Application(_) => StoreErrorKind::Protocol,
    }
}

/// Declared exceptions (IOError, IllegalArgument, AlreadyExists) arrive in
/// a complete reply: the connection is still in step. Anything else may
/// leave bytes of a reply behind.
fn keeps_connection(e: &thrift::Error) -> bool {
    matches!(e, thrift::Error::User(_))
}

fn is_stale_connection(e: &thrift::Error) -> bool {
    matches!(e, thrift::Error::Transport(t) if t.kind != TransportErrorKind::TimedOut)
}

pub(crate) struct Pool {
    config: HbaseConfig,
    idle: Mutex<Vec<Client>>,
    /// One permit per connection: bounds calls in flight (and so connections
    /// and blocking threads) to `pool_size`.
    permits: Arc<Semaphore>,
    next_address: AtomicUsize,
}

impl Pool {
    pub(crate) fn new(config: HbaseConfig) -> Pool {
        Pool {
            permits: Arc::new(Semaphore::new(config.pool_size)),
            idle: Mutex::new(Vec::with_capacity(config.pool_size)),
            next_address: AtomicUsize::new(0),
            config,
        }
    }

    /// Runs `f` with a pooled connection on a blocking thread, within the
    /// call timeout. `f` may run twice (see the module docs), so it clones
    /// what it sends.
    pub(crate) async fn call<T, F>(self: &Arc<Self>, f: F) -> Result<T, CallError>
    where
        T: Send + 'static,
        F: Fn(&mut Client) -> thrift::Result<T> + Send + 'static,
    {
        let deadline = tokio::time::Instant::now() + self.config.call_timeout;
        let permit = match tokio::time::timeout_at(deadline, Arc::clone(&self.permits).acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) | Err(_) => return Err(CallError::PoolExhausted),
        };
        let pool = Arc::clone(self);
        let retry_until = Instant::now() + deadline.saturating_duration_since(tokio::time::Instant::now());
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            pool.run(retry_until, &f)
        });
        match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(CallError::Worker(join.to_string())),
            Err(_) => Err(CallError::TimedOut),
        }
    }

    fn run<T>(&self, retry_until: Instant, f: &dyn Fn(&mut Client) -> thrift::Result<T>) -> Result<T, CallError> {
        // The idle list is whole after every push, pop and clear: a poisoned
        // lock is taken over rather than failing every later call.
        let pooled = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
        let reused = pooled.is_some();
        let client = match pooled {
            Some(c) => c,
            None => self.connect()?,
        };
        match self.attempt(client, f) {
            Err(CallError::Thrift(e)) if reused && is_stale_connection(&e) && Instant::now() < retry_until => {
                // The idle connections are likely as dead as this one.
                self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
                tracing::debug!(store = %self.config.name, error = %e, "hbase pooled connection was stale, reconnecting");
                self.attempt(self.connect()?, f)
            }
            other => other,
        }
    }

    fn attempt<T>(&self, mut client: Client, f: &dyn Fn(&mut Client) -> thrift::Result<T>) -> Result<T, CallError> {
        match f(&mut client) {
            Ok(v) => {
                self.give_back(client);
                Ok(v)
            }
            Err(e) if keeps_connection(&e) => {
                self.give_back(client);
                Err(CallError::Thrift(e))
            }
            Err(e) => {
                metrics::counter!("pricing_store_hbase_connections_discarded_total", "store" => self.config.name.clone())
                    .increment(1);
                tracing::debug!(store = %self.config.name, error = %e, "hbase connection discarded");
                Err(CallError::Thrift(e))
            }
        }
    }

    fn give_back(&self, client: Client) {
        let mut idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() < self.config.pool_size {
            idle.push(client);
        }
    }

    /// Opens a connection, starting at the next address in turn and failing
    /// over to the others.
    fn connect(&self) -> Result<Client, CallError> {
        let addresses = &self.config.addresses;
        let start = self.next_address.fetch_add(1, Ordering::Relaxed);
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for i in 0..addresses.len() {
            let address = &addresses[(start + i) % addresses.len()];
            match self.connect_one(address) {
                Ok(client) => return Ok(client),
                Err(error) => {
                    tracing::debug!(store = %self.config.name, address = %address, %error, "hbase connect failed");
                    last = error;
                }
            }
        }
        Err(CallError::Connect(last))
    }

    fn connect_one(&self, address: &str) -> io::Result<Client> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{address} resolves to nothing"));
        for addr in address.to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, self.config.connect_timeout) {
                Ok(stream) => return self.client(stream),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn client(&self, stream: TcpStream) -> io::Result<Client> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(self.config.call_timeout))?;
        stream.set_write_timeout(Some(self.config.call_timeout))?;
        let read = TimeoutStream(stream.try_clone()?);
        let write = TimeoutStream(stream);
        let (r, w): (Box<dyn Read + Send>, Box<dyn Write + Send>) = match self.config.transport {
            Transport::Framed => {
                (Box::new(TFramedReadTransport::new(read)), Box::new(TFramedWriteTransport::new(write)))
            }
            Transport::Buffered => {
                (Box::new(TBufferedReadTransport::new(read)), Box::new(TBufferedWriteTransport::new(write)))
            }
        };
        Ok(HbaseSyncClient::new(TBinaryInputProtocol::new(r, true), TBinaryOutputProtocol::new(w, true)))
    }
}

/// A socket whose timeouts read as `TimedOut`: on Unix an expired socket
/// timeout is `WouldBlock`, which the thrift crate would file as an unknown
/// transport error instead of a timeout.
struct TimeoutStream(TcpStream);

fn timed_out(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::WouldBlock { io::Error::new(io::ErrorKind::TimedOut, e) } else { e }
}

impl Read for TimeoutStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(timed_out)
    }
}

impl Write for TimeoutStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(timed_out)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(timed_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_store_kinds() {
        let io = |kind| thrift::Error::from(io::Error::new(kind, "x"));
        assert_eq!(thrift_kind(&io(io::ErrorKind::ConnectionReset)), StoreErrorKind::Unavailable);
        assert_eq!(thrift_kind(&io(io::ErrorKind::ConnectionRefused)), StoreErrorKind::Unavailable);
        assert_eq!(thrift_kind(&io(io::ErrorKind::UnexpectedEof)), StoreErrorKind::Unavailable);
        assert_eq!(
            thrift_kind(&thrift::Error::from(timed_out(io::Error::from(io::ErrorKind::WouldBlock)))),
            StoreErrorKind::Timeout
        );
        let protocol =
            thrift::Error::Protocol(thrift::ProtocolError::new(thrift::ProtocolErrorKind::InvalidData, "bad"));
        assert_eq!(thrift_kind(&protocol), StoreErrorKind::Protocol);
        assert!(!keeps_connection(&protocol));
        let user = thrift::Error::User(Box::new(IOError::new("region moved".to_owned(), true)));
        assert_eq!(thrift_kind(&user), StoreErrorKind::Unavailable);
        assert!(keeps_connection(&user));
        let app =
            thrift::Error::Application(thrift::ApplicationError::new(thrift::ApplicationErrorKind::UnknownMethod, "x"));
        assert_eq!(thrift_kind(&app), StoreErrorKind::Protocol);
    }
}
