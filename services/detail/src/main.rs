//! pricing-detail: the detail server. With no `--config` it serves the
//! embedded demo catalogue on 127.0.0.1:50052 (metrics on 127.0.0.1:9465).

use std::path::PathBuf;

use clap::Parser;
use pricing_detail::DetailConfig;

// mimalloc: the read path allocates small, short-lived buffers per request
// (decode, reply strings, encode); see loadtest/bench/README.md for the measured
// difference against the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "pricing-detail", version, about = "The detail, checkout and order pricing server")]
struct Args {
    /// Config file (TOML); without it: the embedded default with demo data.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override the gRPC listen address.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Log lines as "text" (coloured only on a terminal) or "json" (one
    /// object per line, for Kubernetes); overrides `[server] log_format`.
    #[arg(long, value_name = "text|json")]
    log_format: Option<pricing_telemetry::LogFormat>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut config = match &args.config {
        Some(path) => DetailConfig::load(path)?,
        None => DetailConfig::default(),
    };
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    if let Some(format) = args.log_format {
        config.server.log_format = format;
    }
    // The only environment variable the server reads, here and once: its
    // zone, which the Helm chart fills from the node's topology label.
    if let Some(zone) = std::env::var(pricing_telemetry::ZONE_ENV).ok().filter(|z| !z.is_empty()) {
        config.server.zone = Some(zone);
    }
    let server = config.server.clone();
    pricing_telemetry::run_server(&server, |listener, shutdown| pricing_detail::serve(listener, config, shutdown))
}
