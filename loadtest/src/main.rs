//! pricing-load: the status-aware load driver. Loads a scenario (or the
//! built-in normal day), applies the command line's overrides, refuses any
//! target off this machine, runs until the count or time bound, then prints
//! a table, and writes the ghz-layout JSON report and two SVG plots.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use pricing_loadtest::progress::Progress;
use pricing_loadtest::scenario::{Mix, Mode, Scenario, parse_duration};
use pricing_loadtest::{GoodsPool, ghz_data, plot, report};

#[derive(Parser, Debug)]
#[command(name = "pricing-load", version, about = "Load driver for the pricing servers (loopback targets only)")]
struct Args {
    /// Scenario file (TOML); without it, the built-in normal day.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// List server address (loopback only).
    #[arg(long)]
    list: Option<String>,
    /// Detail server address (loopback only).
    #[arg(long)]
    detail: Option<String>,
    /// "open" (fixed rate) or "closed" (N workers back to back).
    #[arg(long)]
    mode: Option<String>,
    /// Calls per second (open loop).
    #[arg(long)]
    rate: Option<u64>,
    /// Workers (closed loop) or most calls in flight (open loop).
    #[arg(long, short = 'c')]
    concurrency: Option<usize>,
    /// HTTP/2 connections per server.
    #[arg(long)]
    connections: Option<usize>,
    /// Time bound: 15s, 500ms, 2m (0 for none).
    #[arg(long, short = 'z')]
    duration: Option<String>,
    /// Count bound (0 for none).
    #[arg(long, short = 'n')]
    requests: Option<u64>,
    /// RPC weights: list=80,detail=15,preview=3,order=2.
    #[arg(long)]
    mix: Option<String>,
    /// Zipf exponent of the goods ids (0 uniform; higher is hotter).
    #[arg(long)]
    zipf: Option<f64>,
    /// Goods ids per BatchGetPrices.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Lines per cart.
    #[arg(long)]
    cart_lines: Option<usize>,
    /// Per-call deadline: 1s, 250ms.
    #[arg(long)]
    timeout: Option<String>,
    #[arg(long)]
    seed: Option<u64>,
    /// Metadata x-caller.
    #[arg(long, env = "PRICING_CALLER")]
    caller: Option<String>,
    /// Metadata x-caller-token (better from the environment than the command line).
    #[arg(long, env = "PRICING_CALLER_TOKEN", hide_env_values = true)]
    caller_token: Option<String>,
    /// Folder for report.json, summary.txt and the SVG plots.
    #[arg(long, default_value = "target/loadtest")]
    out: PathBuf,
    /// Also report the calls completed between these offsets, in whole
    /// seconds since the start: `10,20` gives 0-10, 10-20 and 20-end (a
    /// drill's before, during and after).
    #[arg(long, value_delimiter = ',', value_name = "S,S,...")]
    windows: Vec<u64>,
    /// Open loop: mark the run unfair when the driver sends some call more
    /// than this many milliseconds after its due time in any second.
    #[arg(long, value_name = "MS")]
    behind_limit_ms: Option<u64>,
    /// Print the JSON report on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Write the ghz data files into this folder and exit (no load is sent).
    #[arg(long, value_name = "DIR")]
    write_ghz_data: Option<PathBuf>,
    /// Write one BatchGetPrices request (--batch-size ids drawn from the
    /// scenario's pool, gRPC-framed) for `h2load -d FILE` and exit.
    #[arg(long, value_name = "FILE")]
    write_h2load_body: Option<PathBuf>,
    #[arg(long, default_value = "info")]
    log: String,
}

fn apply(args: &Args, mut s: Scenario) -> anyhow::Result<Scenario> {
    if let Some(v) = &args.list {
        s.target.list = v.clone();
    }
    if let Some(v) = &args.detail {
        s.target.detail = v.clone();
    }
    if let Some(v) = &args.mode {
        s.load.mode = match v.as_str() {
            "open" => Mode::Open,
            "closed" => Mode::Closed,
            other => anyhow::bail!("--mode {other:?}: use open or closed"),
        };
        if s.load.mode == Mode::Closed && args.rate.is_none() {
            s.load.rate = 0;
        }
    }
    if let Some(v) = args.rate {
        s.load.rate = v;
    }
    if let Some(v) = args.concurrency {
        s.load.concurrency = v;
    }
    if let Some(v) = args.connections {
        s.target.connections = v;
    }
    if let Some(v) = &args.duration {
        s.load.duration_s = parse_duration(v)?.as_secs();
    }
    if let Some(v) = args.requests {
        s.load.max_requests = v;
    }
    if let Some(v) = &args.mix {
        s.mix = Mix::parse(v)?;
    }
    if let Some(v) = args.zipf {
        s.keys.zipf_exponent = v;
    }
    if let Some(v) = args.batch_size {
        s.shape.batch_size = v;
    }
    if let Some(v) = args.cart_lines {
        s.shape.cart_lines = v;
    }
    if let Some(v) = &args.timeout {
        s.target.timeout_ms = u64::try_from(parse_duration(v)?.as_millis()).unwrap_or(u64::MAX);
    }
    if let Some(v) = args.seed {
        s.keys.seed = v;
    }
    if let Some(v) = &args.caller {
        s.target.caller = Some(v.clone());
    }
    if let Some(v) = &args.caller_token {
        s.target.caller_token = Some(v.clone());
    }
    s.validate()?;
    Ok(s)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    pricing_telemetry::init_tracing(&args.log);
    let base = match &args.scenario {
        Some(path) => Scenario::load(path).with_context(|| format!("scenario {}", path.display()))?,
        None => Scenario::normal_day(),
    };
    let scenario = apply(&args, base)?;
    let pool = GoodsPool::demo(scenario.keys.goods, scenario.keys.seed);

    if let Some(dir) = &args.write_ghz_data {
        // The data files are ranked with a fixed seed so that they do not
        // change with the scenario's.
        let pool = GoodsPool::demo(scenario.keys.goods, 1);
        for path in ghz_data::write(dir, &pool)? {
            eprintln!("wrote {}", path.display());
        }
        return Ok(());
    }

    if let Some(file) = &args.write_h2load_body {
        let request = pricing_loadtest::requests::h2load_batch(&scenario, &pool)?;
        std::fs::write(file, pricing_loadtest::requests::grpc_frame(&request))
            .with_context(|| format!("write {}", file.display()))?;
        eprintln!("wrote {} ({} goods ids)", file.display(), request.goods_ids.len());
        return Ok(());
    }

    let mut result = pricing_loadtest::run(&scenario, &pool, Progress::auto()).await?;
    if let Some(ms) = args.behind_limit_ms {
        result.behind_limit = std::time::Duration::from_millis(ms);
    }
    let mut ghz = report::GhzReport::new(&result);
    ghz.windows = report::windows(&result, &args.windows);
    let json = serde_json::to_string_pretty(&ghz)?;
    let table = report::table(&result) + &report::windows_table(&ghz.windows);
    std::fs::create_dir_all(&args.out).with_context(|| format!("create {}", args.out.display()))?;
    std::fs::write(args.out.join("report.json"), format!("{json}\n"))?;
    std::fs::write(args.out.join("summary.txt"), &table)?;
    let plots = plot::write_all(&result, &args.out)?;
    if args.json {
        println!("{json}");
    } else {
        print!("{table}");
    }
    eprintln!(
        "wrote {}, {} and {}",
        args.out.join("report.json").display(),
        args.out.join("summary.txt").display(),
        plots.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    );
    Ok(())
}
