//! The in-memory HBase Thrift (v1) test server, for local development:
//! point an `HbaseStore` (or any HBase Thrift v1 client) at it. Data lives
//! in memory and is gone when it stops.

use std::io::IsTerminal as _;
use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use pricing_store_hbase::{HbaseTestServer, ServerConfig, Transport};

#[derive(Debug, Parser)]
#[command(
    name = "hbase-thrift-test-server",
    about = "In-memory HBase Thrift (v1) server for tests and local development"
)]
struct Args {
    /// Address to listen on (HBase's Thrift server uses port 9090).
    #[arg(long, default_value = "127.0.0.1:9090")]
    listen: SocketAddr,
    /// Use the framed transport (HBase's hbase.regionserver.thrift.framed); buffered otherwise.
    #[arg(long)]
    framed: bool,
    /// Create this table (family "r", as the pricing store uses) at start; may repeat.
    #[arg(long = "table", value_name = "NAME")]
    tables: Vec<String>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    // Logs on stderr, coloured only when it is a terminal (a file or a pipe
    // gets no escape codes).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let args = Args::parse();
    let transport = if args.framed { Transport::Framed } else { Transport::Buffered };
    let mut server = HbaseTestServer::start(ServerConfig { listen: args.listen, transport })
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    for table in &args.tables {
        server
            .tables()
            .create_table(table.as_bytes(), &[(b"r".to_vec(), 1)])
            .with_context(|| format!("create table {table}"))?;
    }
    tokio::signal::ctrl_c().await.context("waiting for ctrl-c")?;
    server.stop();
    Ok(())
}
