//! detail-bench-prep: gets a MariaDB and a detail server ready for the detail
//! benchmark (loadtest/bench/detail/run.sh).
//!
//! Layout: `seed` writes the demo catalogue (`pricing_store_sql::demo::seed`,
//! what the embedded default does on first start) into a MySQL/MariaDB
//! database, running the migrations first; `warm` asks the detail server for
//! every live goods of that catalogue once (GetGoodsPrice: the misses are
//! read from MySQL and written back to both Redis), then asks again until
//! every reply says TIER_REDIS, and fails if that does not happen in time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use pricing_proto::v1::detail_pricing_client::DetailPricingClient;
use pricing_proto::v1::{CallerContext, Channel, GetGoodsPriceRequest, Tier};
use pricing_store_sql::SqlStore;
use pricing_store_sql::demo::{self, DemoOptions};
use tonic::transport::Endpoint;

#[derive(Parser)]
#[command(name = "detail-bench-prep", about = "Seed MariaDB with the demo catalogue; warm the detail server's Redis")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the migrations and write the demo catalogue (only into a database without goods).
    Seed {
        /// mysql://user@host:port/database (the database must exist).
        #[arg(long)]
        database_url: String,
        /// Goods ids 1..=N (pricing-load's `keys.goods` must be the same).
        #[arg(long, default_value_t = 10_000)]
        goods: u64,
    },
    /// Ask for every live goods until every reply comes from Redis.
    Warm {
        /// The detail server, e.g. http://127.0.0.1:50052 (loopback only).
        #[arg(long)]
        detail: String,
        #[arg(long, default_value_t = 10_000)]
        goods: u64,
        /// Calls in flight.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Give up when not every reply says TIER_REDIS after this many seconds.
        #[arg(long, default_value_t = 60)]
        deadline_s: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Seed { database_url, goods } => seed(&database_url, goods).await,
        Command::Warm { detail, goods, concurrency, deadline_s } => {
            warm(&detail, goods, concurrency.max(1), Duration::from_secs(deadline_s)).await
        }
    }
}

async fn seed(url: &str, goods: u64) -> anyhow::Result<()> {
    let store = SqlStore::connect(url).await.context("connect and migrate")?;
    let report = demo::seed(&store, DemoOptions { goods, ..DemoOptions::default() }).await.context("seed")?;
    println!(
        "seeded={} goods={} activities={} promotions={}",
        report.seeded, report.goods, report.activities, report.promotions
    );
    Ok(())
}

/// The ids pricing-load reads: the catalogue's goods that are not soft-deleted.
fn live_ids(goods: u64) -> Vec<u64> {
    let (all, _) = demo::catalogue(&DemoOptions { goods, ..DemoOptions::default() });
    all.iter().filter(|g| !g.deleted).map(|g| g.record.goods_id).collect()
}

async fn warm(detail: &str, goods: u64, concurrency: usize, deadline: Duration) -> anyhow::Result<()> {
    let endpoint = Endpoint::from_shared(detail.to_owned())?;
    let host = endpoint.uri().host().unwrap_or_default().trim_matches(['[', ']']);
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        bail!("{detail}: loopback addresses only");
    }
    let channel = endpoint.connect().await.with_context(|| format!("connect {detail}"))?;
    let client = DetailPricingClient::new(channel);
    let ids: Arc<[u64]> = live_ids(goods).into();
    let started = Instant::now();
    for pass in 1.. {
        let counts = one_pass(&client, &ids, concurrency).await?;
        let line: Vec<String> = counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("pass {pass}: {} ids in {:.1} s: {}", ids.len(), started.elapsed().as_secs_f64(), line.join(" "));
        if counts.get("TIER_REDIS") == Some(&ids.len()) {
            return Ok(());
        }
        if started.elapsed() > deadline {
            bail!("not every goods is answered from Redis after {deadline:?}");
        }
        // The write-back is asynchronous: give it a moment before asking again.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    unreachable!("the loop returns or fails")
}

/// One GetGoodsPrice per id; counts the tier of each reply, or its status code.
async fn one_pass(
    client: &DetailPricingClient<tonic::transport::Channel>,
    ids: &Arc<[u64]>,
    concurrency: usize,
) -> anyhow::Result<BTreeMap<String, usize>> {
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..concurrency {
        let mut client = client.clone();
        let ids = Arc::clone(ids);
        workers.spawn(async move {
            let mut counts = BTreeMap::<String, usize>::new();
            for &goods_id in ids.iter().skip(w).step_by(concurrency) {
                let request = GetGoodsPriceRequest {
                    goods_id,
                    context: Some(CallerContext {
                        pin: "warm".into(),
                        channel: Channel::App as i32,
                        ..CallerContext::default()
                    }),
                };
                let key = match client.get_goods_price(request).await {
                    Ok(reply) => {
                        let tier = reply.into_inner().price.map(|p| p.tier()).unwrap_or(Tier::Unspecified);
                        tier.as_str_name().to_owned()
                    }
                    Err(status) => format!("{:?}", status.code()),
                };
                *counts.entry(key).or_default() += 1;
            }
            counts
        });
    }
    let mut total = BTreeMap::new();
    while let Some(counts) = workers.join_next().await {
        for (k, v) in counts? {
            *total.entry(k).or_default() += v;
        }
    }
    Ok(total)
}
