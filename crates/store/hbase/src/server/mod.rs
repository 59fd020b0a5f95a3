//! The in-memory HBase Thrift (v1) test server: HBase's wire protocol (binary
//! protocol, framed or buffered transport) over data held in memory.
//!
//! Layout: [`tables`] holds the data and HBase's timestamp and delete-marker
//! rules; `handler` implements the generated `HbaseSyncHandler` over it
//! (scanners included); `lenient` lets a call leave out the arguments HBase
//! takes as null (column lists, attributes); this module runs the generated
//! `HbaseSyncProcessor` behind them in its own accept loop, one thread per
//! connection. The thrift crate's `TServer` is not used
//! because it cannot be stopped; tests need to stop a server (listener closed,
//! open connections dropped) and start it again on the same port with the
//! same data.
#![allow(clippy::expect_used, reason = "a test server: a poisoned lock (a panic in another handler) fails the test")]

pub mod tables;

mod handler;
mod lenient;

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use hbase_thrift::hbase::HbaseSyncProcessor;
use thrift::protocol::{TBinaryInputProtocol, TBinaryOutputProtocol};
use thrift::server::TProcessor;
use thrift::transport::{TBufferedReadTransport, TBufferedWriteTransport, TFramedReadTransport, TFramedWriteTransport};

use crate::Transport;
use handler::{Handler, State};
use lenient::Lenient;
pub use tables::Tables;

/// Where and how the test server listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerConfig {
    /// Port 0 picks a free port; [`HbaseTestServer::addr`] tells which.
    pub listen: SocketAddr,
    /// Must match the client's, as with HBase (`hbase.regionserver.thrift.framed`).
    pub transport: Transport,
}

impl ServerConfig {
    /// 127.0.0.1 on a free port.
    pub fn local(transport: Transport) -> ServerConfig {
        ServerConfig { listen: SocketAddr::from(([127, 0, 0, 1], 0)), transport }
    }
}

/// A running (or stopped) test server. Data, call counters and knobs live as
/// long as this value, across [`stop`](Self::stop) and [`restart`](Self::restart).
/// Dropping it stops it.
pub struct HbaseTestServer {
    transport: Transport,
    /// The bound address (the real port when the config asked for port 0):
    /// a restart binds it again.
    addr: SocketAddr,
    state: Arc<State>,
    running: Option<Running>,
}

struct Running {
    stop: Arc<AtomicBool>,
    accept: JoinHandle<()>,
    conns: Arc<Conns>,
}

/// Open connections, so that stop can drop them.
#[derive(Default)]
struct Conns {
    next_id: AtomicU64,
    /// A clone of each open stream: shutting it down ends its thread's read.
    open: Mutex<HashMap<u64, TcpStream>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl HbaseTestServer {
    /// Binds and starts serving on background threads.
    pub fn start(config: ServerConfig) -> io::Result<HbaseTestServer> {
        let mut server = HbaseTestServer {
            transport: config.transport,
            addr: config.listen,
            state: Arc::new(State::default()),
            running: None,
        };
        server.bind_and_run()?;
        Ok(server)
    }

    /// Starts on 127.0.0.1 on a free port.
    pub fn start_local(transport: Transport) -> io::Result<HbaseTestServer> {
        HbaseTestServer::start(ServerConfig::local(transport))
    }

    fn bind_and_run(&mut self) -> io::Result<()> {
        let listener = TcpListener::bind(self.addr)?;
        self.addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Conns::default());
        let processor = Arc::new(Lenient::new(HbaseSyncProcessor::new(Handler { state: Arc::clone(&self.state) })));
        let (transport, stop2, conns2) = (self.transport, Arc::clone(&stop), Arc::clone(&conns));
        let accept = std::thread::Builder::new()
            .name(format!("hbase-test-accept-{}", self.addr.port()))
            .spawn(move || accept_loop(listener, transport, processor, &stop2, &conns2))?;
        tracing::info!(addr = %self.addr, ?transport, "hbase thrift test server listening");
        self.running = Some(Running { stop, accept, conns });
        Ok(())
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `host:port` as a client config wants it.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    pub fn transport(&self) -> Transport {
        self.transport
    }

    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// The tables, for seeding or inspecting cells without a client.
    pub fn tables(&self) -> &Tables {
        &self.state.tables
    }

    /// How many calls of a Thrift method (its wire name, "getRowsWithColumns")
    /// reached the server since it was first started.
    pub fn calls(&self, method: &str) -> u64 {
        self.state.calls(method)
    }

    /// Calls per method name.
    pub fn all_calls(&self) -> BTreeMap<String, u64> {
        self.state.all_calls()
    }

    /// Multi-row reads answer in reverse request order while set.
    pub fn set_reverse_rows(&self, reverse: bool) {
        self.state.reverse_rows.store(reverse, Ordering::Relaxed);
    }

    /// Holds every call (after counting it) until [`resume`](Self::resume) or
    /// [`stop`](Self::stop): a server that accepts but does not answer.
    pub fn pause(&self) {
        self.state.set_paused(true);
    }

    pub fn resume(&self) {
        self.state.set_paused(false);
    }

    /// Closes the listener (new connections are refused), drops open
    /// connections and waits for the server's threads. Idempotent.
    pub fn stop(&mut self) {
        let Some(running) = self.running.take() else { return };
        running.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept; the loop sees the flag and drops the listener.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip([127, 0, 0, 1].into());
        }
        let _ = TcpStream::connect_timeout(&wake, std::time::Duration::from_secs(1));
        let _ = running.accept.join();
        for stream in running.conns.open.lock().expect("conns lock").values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        self.state.set_paused(false);
        let workers = std::mem::take(&mut *running.conns.workers.lock().expect("workers lock"));
        for worker in workers {
            let _ = worker.join();
        }
        tracing::info!(addr = %self.addr, "hbase thrift test server stopped");
    }

    /// Starts again on the same address with the same data and counters.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        self.bind_and_run()
    }
}

impl Drop for HbaseTestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(
    listener: TcpListener,
    transport: Transport,
    processor: Arc<Lenient<HbaseSyncProcessor<Handler>>>,
    stop: &AtomicBool,
    conns: &Arc<Conns>,
) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let stream = match stream {
            Ok(s) => s,
            Err(error) => {
                tracing::warn!(%error, "hbase test server accept failed");
                continue;
            }
        };
        let id = conns.next_id.fetch_add(1, Ordering::Relaxed);
        match stream.try_clone() {
            Ok(clone) => conns.open.lock().expect("conns lock").insert(id, clone),
            Err(error) => {
                tracing::warn!(%error, "hbase test server cannot track a connection");
                continue;
            }
        };
        let (processor, conns2) = (Arc::clone(&processor), Arc::clone(conns));
        let worker = std::thread::Builder::new().name(format!("hbase-test-conn-{id}")).spawn(move || {
            if let Err(error) = serve_connection(stream, transport, &*processor) {
                tracing::debug!(%error, "hbase test connection ended");
            }
            conns2.open.lock().expect("conns lock").remove(&id);
        });
        let mut workers = conns.workers.lock().expect("workers lock");
        workers.retain(|w| !w.is_finished());
        match worker {
            Ok(w) => workers.push(w),
            Err(error) => {
                tracing::warn!(%error, "hbase test server cannot start a connection thread");
                if let Some(s) = conns.open.lock().expect("conns lock").remove(&id) {
                    let _ = s.shutdown(Shutdown::Both);
                }
            }
        }
    }
}

/// Serves calls on one connection until the peer closes it or it breaks.
fn serve_connection(stream: TcpStream, transport: Transport, processor: &dyn TProcessor) -> thrift::Result<()> {
    stream.set_nodelay(true)?;
    let read = stream.try_clone()?;
    let (r, w): (Box<dyn Read + Send>, Box<dyn Write + Send>) = match transport {
        Transport::Framed => (Box::new(TFramedReadTransport::new(read)), Box::new(TFramedWriteTransport::new(stream))),
        Transport::Buffered => {
            (Box::new(TBufferedReadTransport::new(read)), Box::new(TBufferedWriteTransport::new(stream)))
        }
    };
    // Like HBase's TBinaryProtocol.Factory: lenient reads, strict writes.
    let mut i_prot = TBinaryInputProtocol::new(r, false);
    let mut o_prot = TBinaryOutputProtocol::new(w, true);
    loop {
        match processor.process(&mut i_prot, &mut o_prot) {
            Ok(()) => {}
            Err(thrift::Error::Transport(e)) if e.kind == thrift::TransportErrorKind::EndOfFile => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}
