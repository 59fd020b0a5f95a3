//! pricing-demo: the list server (127.0.0.1:50051) and the detail server
//! (127.0.0.1:50052) in one process, on the embedded SQLite database seeded
//! with the demo catalogue on first start. Metrics on 9464 and 9465.
//!
//! On start it prints the exact pricectl command to try next (in the same
//! release profile, so it reuses this build); on SIGINT or SIGTERM both
//! servers drain, then the database pool is closed so that SQLite
//! checkpoints its write-ahead log into the database file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use pricing_detail::DetailConfig;
use pricing_list::ListConfig;
use pricing_store_sql::source::SourceSettings;
use pricing_telemetry::LogFormat;

// mimalloc: the read path allocates small, short-lived buffers per request
// (decode, reply strings, encode); see loadtest/bench/README.md for the measured
// difference against the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const LIST: &str = "127.0.0.1:50051";
const DETAIL: &str = "127.0.0.1:50052";

#[derive(Parser)]
#[command(name = "pricing-demo", version, about = "Both pricing servers on the embedded demo database")]
struct Args {
    /// The list server's gRPC address.
    #[arg(long, default_value = LIST)]
    list: SocketAddr,
    /// The detail server's gRPC address.
    #[arg(long, default_value = DETAIL)]
    detail: SocketAddr,
    /// The list server's metrics and `/config` address.
    #[arg(long, default_value = "127.0.0.1:9464")]
    list_metrics: SocketAddr,
    /// The detail server's metrics and `/config` address.
    #[arg(long, default_value = "127.0.0.1:9465")]
    detail_metrics: SocketAddr,
    /// The embedded database file (created and seeded when missing).
    #[arg(long, default_value = ".pricing-data/pricing.db")]
    data: PathBuf,
    #[arg(long, default_value = "info")]
    log: String,
    /// Log lines as "text" (coloured only on a terminal) or "json".
    #[arg(long, value_name = "text|json", default_value = "text")]
    log_format: LogFormat,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    pricing_telemetry::init_logs(&args.log, args.log_format);
    let source = SourceSettings { embedded_path: args.data.clone(), ..SourceSettings::default() };
    let sql = Arc::new(pricing_store_sql::source::open(&source).await.context("open the embedded database")?);

    let mut list_config = ListConfig::default();
    list_config.server.listen = args.list;
    list_config.server.metrics_listen = Some(args.list_metrics);
    let mut detail_config = DetailConfig::default();
    detail_config.server.listen = args.detail;
    detail_config.server.metrics_listen = Some(args.detail_metrics);

    let list_listener =
        tokio::net::TcpListener::bind(args.list).await.with_context(|| format!("bind {}", args.list))?;
    let detail_listener =
        tokio::net::TcpListener::bind(args.detail).await.with_context(|| format!("bind {}", args.detail))?;
    let reader = pricing_list::build_reader(&list_config, Some(Arc::clone(&sql) as _)).await?;

    let shutdown = futures::future::FutureExt::shared(pricing_telemetry::shutdown_signal());
    let list = pricing_list::serve_with_reader(list_listener, list_config, reader, shutdown.clone());
    let detail = pricing_detail::serve_with_store(detail_listener, detail_config, Arc::clone(&sql), shutdown);
    eprintln!("pricing-demo: list on {}, detail on {}; try:\n    {}", args.list, args.detail, next_command(&args));
    let served = tokio::try_join!(list, detail);
    // Closing the last connection checkpoints the write-ahead log: the
    // database file alone then holds the whole catalogue.
    sql.close().await;
    served?;
    Ok(())
}

/// The pricectl command that asks this demo for prices, in the release
/// profile the README runs the demo in (so it reuses the demo's build).
fn next_command(args: &Args) -> String {
    let mut command = String::from("cargo run --release -p pricectl --");
    if args.list.to_string() != LIST {
        command.push_str(&format!(" --list http://{}", args.list));
    }
    if args.detail.to_string() != DETAIL {
        command.push_str(&format!(" --detail http://{}", args.detail));
    }
    command.push_str(" prices 1 2 3 30");
    command
}
