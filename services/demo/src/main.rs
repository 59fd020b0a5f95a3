//! pricing-demo: the list server (127.0.0.1:50051) and the detail server
//! (127.0.0.1:50052) in one process, on the embedded SQLite database seeded
//! with the demo catalogue on first start. Metrics on 9464 and 9465.
//!
//! Query it with `cargo run -p pricectl -- prices 1 2 3`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use pricing_detail::DetailConfig;
use pricing_list::ListConfig;
use pricing_store_sql::source::SourceSettings;

// mimalloc: the read path allocates small, short-lived buffers per request
// (decode, reply strings, encode); see loadtest/bench/README.md for the measured
// difference against the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "pricing-demo", version, about = "Both pricing servers on the embedded demo database")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:50051")]
    list: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:50052")]
    detail: SocketAddr,
    /// The embedded database file (created and seeded when missing).
    #[arg(long, default_value = ".pricing-data/pricing.db")]
    data: PathBuf,
    #[arg(long, default_value = "info")]
    log: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    pricing_telemetry::init_tracing(&args.log);
    let source = SourceSettings { embedded_path: args.data.clone(), ..SourceSettings::default() };
    let sql = Arc::new(pricing_store_sql::source::open(&source).await.context("open the embedded database")?);

    let mut list_config = ListConfig::default();
    list_config.server.listen = args.list;
    let mut detail_config = DetailConfig::default();
    detail_config.server.listen = args.detail;

    let list_listener =
        tokio::net::TcpListener::bind(args.list).await.with_context(|| format!("bind {}", args.list))?;
    let detail_listener =
        tokio::net::TcpListener::bind(args.detail).await.with_context(|| format!("bind {}", args.detail))?;
    let reader = pricing_list::build_reader(&list_config, Some(Arc::clone(&sql) as _)).await?;

    let shutdown = futures::future::FutureExt::shared(pricing_telemetry::shutdown_signal());
    let list = pricing_list::serve_with_reader(list_listener, list_config, reader, shutdown.clone());
    let detail = pricing_detail::serve_with_store(detail_listener, detail_config, sql, shutdown);
    eprintln!(
        "pricing-demo: list on {}, detail on {}; try: cargo run -p pricectl -- prices 1 2 3",
        args.list, args.detail
    );
    tokio::try_join!(list, detail)?;
    Ok(())
}
