//! pricing-projector: project the catalogue into the Redis and HBase pairs,
//! drain the retry queue, purge, reconcile. See the crate README for the
//! config and the recovery runbook.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use pricing_projector::{Progress, Projector, ProjectorConfig, ReconcileOptions};

#[derive(Parser)]
#[command(
    name = "pricing-projector",
    version,
    about = "Projects goods records from MySQL into Redis and HBase, and keeps them right"
)]
struct Args {
    /// Config file (TOML).
    #[arg(long, short, env = "PRICING_PROJECTOR_CONFIG")]
    config: PathBuf,
    /// Log lines as "text" (coloured only on a terminal) or "json" (one
    /// object per line, for Kubernetes).
    #[arg(long, value_name = "text|json", default_value = "text")]
    log_format: pricing_telemetry::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write every goods to every cluster (or only the named ones); resumes
    /// after the last page written unless --restart.
    Full {
        /// Only these clusters (redis-a, redis-b, hbase-a, hbase-b), whatever
        /// the write mode: the rebuild of a recovered cluster.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Start from the first goods, ignoring a saved cursor.
        #[arg(long)]
        restart: bool,
    },
    /// Follow changes since the stored watermark, then drain the retry queue;
    /// every poll interval until Ctrl-C, or one pass with --once.
    Incremental {
        #[arg(long)]
        once: bool,
    },
    /// Rewrite the named goods now (removed from the stores if the source
    /// does not have them).
    Goods {
        #[arg(required = true, value_name = "ID")]
        ids: Vec<u64>,
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// Drain the retry queue once.
    Retry,
    /// Delete rows soft-deleted more than N days ago, after their removal
    /// reached every cluster.
    Purge {
        /// Default: [purge] days of the config (15).
        #[arg(long)]
        days: Option<u32>,
    },
    /// Compare the source with every cluster; exit code 1 when anything
    /// differs (after repair: when anything is left unrepaired).
    Reconcile {
        /// Only goods changed at or after this unix time in milliseconds.
        #[arg(long)]
        since: Option<i64>,
        /// Rewrite what differs.
        #[arg(long)]
        repair: bool,
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// List every activity in the source that breaks a `[guard]` rule of the
    /// control file (windows not over yet); exit code 1 when there is one.
    /// Reads the source only.
    GuardReport {
        /// The control file holding `[guard]`; default: `[control] file` of the config.
        #[arg(long)]
        control: Option<PathBuf>,
        /// Judge at this unix time in milliseconds; default: now.
        #[arg(long)]
        at: Option<i64>,
    },
    /// Sale-day rehearsal: price the whole catalogue from the source at a
    /// future instant, as the servers would (the guard applied), and print
    /// the distribution by kind and depth band, every guard breach and the
    /// goods whose price changes at that instant. Reads the source only.
    Rehearse {
        /// The instant, unix time in milliseconds (e.g. the sale's start).
        #[arg(long)]
        at: i64,
        /// The control file holding `[guard]`; default: `[control] file` of the config.
        #[arg(long)]
        control: Option<PathBuf>,
        /// The caller's channel: app, mini_program, h5, pc.
        #[arg(long, default_value = "app")]
        channel: String,
        /// The caller's city (city-scoped activities apply only with it).
        #[arg(long)]
        city: Option<u64>,
        /// The caller's store.
        #[arg(long)]
        store: Option<u64>,
    },
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("pricing-projector: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let config = ProjectorConfig::load(&args.config)?;
    pricing_telemetry::init_logs(&config.telemetry.log, args.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if let Command::GuardReport { .. } | Command::Rehearse { .. } = &args.command {
        return runtime.block_on(read_only(args.command, config));
    }
    runtime.block_on(async move {
        if let Some(listen) = config.telemetry.metrics_listen {
            pricing_telemetry::prometheus();
            let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("bind {listen}"))?;
            tokio::spawn(pricing_telemetry::serve_metrics(listener, None, std::future::pending()));
        }
        let default_days = config.purge.days;
        let projector = Projector::connect(config).await?;
        match args.command {
            Command::Full { only, restart } => {
                let scope = projector.scope(only)?;
                let report = projector.full(&scope, restart, &Progress::for_stderr()).await?;
                print_counts(&report.targets);
                println!("{} goods in {} pages", report.goods, report.pages);
            }
            Command::Incremental { once } => {
                projector.run_incremental(once, pricing_telemetry::shutdown_signal()).await?;
            }
            Command::Goods { ids, only } => {
                let scope = projector.scope(only)?;
                let report = projector.sync_goods(&ids, &scope).await?;
                print_counts(&report.targets);
                if !report.absent.is_empty() {
                    println!("not in the source (removed from the stores): {:?}", report.absent);
                }
            }
            Command::Retry => {
                let r = projector.drain_retries().await?;
                println!(
                    "due {}, done {}, failed {}, left {}, queue depth {}",
                    r.due, r.done, r.failed, r.left, r.depth
                );
            }
            Command::Purge { days } => {
                let r = projector.purge(days.unwrap_or(default_days)).await?;
                println!(
                    "goods purged {} (kept {} of {} found), activities {}, promotions {}",
                    r.goods_purged, r.goods_kept, r.goods_found, r.activities_purged, r.promotions_purged
                );
            }
            // Answered by read_only above.
            Command::GuardReport { .. } | Command::Rehearse { .. } => {}
            Command::Reconcile { since, repair, only } => {
                let scope = projector.scope(only)?;
                let report = projector.reconcile(&ReconcileOptions { since_ms: since, repair, scope }).await?;
                print!("{}", report.table());
                let left: u64 =
                    if repair { report.stores.values().map(|d| d.unrepaired).sum() } else { report.differences() };
                if left > 0 {
                    return Ok(ExitCode::from(1));
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn print_counts(targets: &std::collections::BTreeMap<String, pricing_projector::TargetCounts>) {
    println!("{:<10} {:>9} {:>13} {:>8} {:>7}", "store", "written", "skipped_older", "removed", "queued");
    for (name, c) in targets {
        println!("{:<10} {:>9} {:>13} {:>8} {:>7}", name, c.written, c.skipped_older, c.removed, c.queued);
    }
}

/// The commands that read the source only (no store is connected).
async fn read_only(command: Command, config: ProjectorConfig) -> anyhow::Result<ExitCode> {
    let options = pricing_store_sql::SqlOptions {
        name: "sql".into(),
        max_connections: config.source.max_connections,
        acquire_timeout: std::time::Duration::from_secs(5),
        statement_timeout: std::time::Duration::from_millis(config.source.statement_timeout_ms),
    };
    let source = pricing_store_sql::SqlStore::connect_with(&config.source.database_url, options).await?;
    let rules = |control: Option<PathBuf>| -> anyhow::Result<pricing_engine::guard::GuardRules> {
        match control.or_else(|| config.control.file.clone()) {
            Some(path) => Ok(pricing_control::Switchboard::load(&path)
                .with_context(|| format!("control file {}", path.display()))?
                .snapshot()
                .guard_rules()
                .clone()),
            None => Ok(pricing_engine::guard::GuardRules::default()),
        }
    };
    let page = config.sync.page_size;
    let code = match command {
        Command::GuardReport { control, at } => {
            let rules = rules(control)?;
            if rules.is_empty() {
                eprintln!("pricing-projector: the control file has no [guard] rules");
            }
            let now = at.unwrap_or_else(|| pricing_record::Clock::system().now_ms());
            let found =
                pricing_projector::rehearse::guard_report(&source, &rules, now, page, &Progress::for_stderr()).await?;
            let report = pricing_projector::Rehearsal { at_ms: now, breaches: found, ..Default::default() };
            print!("{}", report.breaches_table());
            if report.breaches.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) }
        }
        Command::Rehearse { at, control, channel, city, store } => {
            let rules = rules(control)?;
            let channel = pricing_record::Channel::ALL
                .into_iter()
                .find(|c| c.as_str() == channel)
                .with_context(|| format!("unknown channel {channel:?}: app, mini_program, h5, pc"))?;
            let mut ctx = pricing_engine::CallerContext::anonymous(channel);
            ctx.city_id = city;
            ctx.store_id = store;
            let report =
                pricing_projector::rehearse::rehearse(&source, &ctx, &rules, at, page, &Progress::for_stderr()).await?;
            print!("{}", report.table());
            ExitCode::SUCCESS
        }
        _ => ExitCode::SUCCESS,
    };
    source.close().await;
    Ok(code)
}
