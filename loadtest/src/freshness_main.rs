//! pricing-freshness: times committed price changes to the first list and
//! detail answer that shows them, while a read load runs (see
//! `pricing_loadtest::freshness`). Loopback servers only.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use pricing_loadtest::freshness::{self, ProbeOptions};
use pricing_loadtest::scenario::parse_duration;

#[derive(Parser, Debug)]
#[command(name = "pricing-freshness", version, about = "Freshness probe: commit-to-answer time of price changes")]
struct Args {
    /// The catalogue database the projector follows (mysql://...).
    #[arg(long, env = "PRICING_DATABASE_URL")]
    database_url: String,
    /// List server address (loopback only).
    #[arg(long, default_value = "127.0.0.1:50051")]
    list: String,
    /// Detail server address (loopback only).
    #[arg(long, default_value = "127.0.0.1:50052")]
    detail: String,
    /// Price changes per second.
    #[arg(long, default_value_t = 5)]
    rate: u64,
    /// How long to change prices: 60s, 2m.
    #[arg(long, default_value = "60s")]
    duration: String,
    /// Goods changed in turn.
    #[arg(long, default_value_t = 50)]
    goods: usize,
    /// First goods id to consider.
    #[arg(long, default_value_t = 1)]
    first_id: u64,
    /// Pause between polls of one change, milliseconds.
    #[arg(long, default_value_t = 2)]
    poll_ms: u64,
    /// A change not seen within this many milliseconds is missed.
    #[arg(long, default_value_t = 10_000)]
    give_up_ms: u64,
    /// Where to write the JSON report.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Instead of probing: migrate the database and write the demo
    /// catalogue of this many goods into it (a database without goods), then exit.
    #[arg(long, value_name = "GOODS")]
    seed_demo: Option<u64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(goods) = args.seed_demo {
        let store = pricing_store_sql::SqlStore::connect(&args.database_url).await?;
        let options = pricing_store_sql::demo::DemoOptions { goods, ..Default::default() };
        let report = pricing_store_sql::demo::seed(&store, options).await?;
        println!("seeded {} goods, {} activities", report.goods, report.activities);
        return Ok(());
    }
    let options = ProbeOptions {
        rate: args.rate.max(1),
        duration: parse_duration(&args.duration)?,
        goods: args.goods.max(1),
        first_id: args.first_id,
        poll: Duration::from_millis(args.poll_ms),
        give_up: Duration::from_millis(args.give_up_ms),
    };
    let report = freshness::run(&args.database_url, &args.list, &args.detail, &options).await?;
    print!("{}", freshness::table(&report, &options));
    if let Some(out) = args.out {
        std::fs::write(&out, serde_json::to_string_pretty(&report)?)?;
    }
    if report.wrong > 0 {
        anyhow::bail!("{} wrong prices served", report.wrong);
    }
    Ok(())
}
