//! pricectl: ask the pricing service what a goods or an order costs.
//!
//! Prints a readable table by default, the proto3 JSON of the reply with
//! `--json`, and the engine's reasoning with `--explain`. `health` asks both
//! servers' grpc.health.v1; `config` prints a server's live control view
//! (secrets redacted by the server) from its metrics port.
//!
//! A failed call prints one line, `pricectl: CODE field: message`, and exits
//! 1 (2 for a server that cannot be reached or answers badly), with no
//! backtrace whatever RUST_BACKTRACE says: the server's status is the news.

use std::process::ExitCode;

mod canary;

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use pricing_proto::v1::{
    self, CallerContext, GetGoodsPriceRequest, OrderLineInput, OrderPricing, PreviewOrderRequest, PriceOrderRequest,
    detail_pricing_client::DetailPricingClient, list_pricing_client::ListPricingClient,
};
use tonic::metadata::MetadataValue;
use tonic_types::StatusExt as _;

#[derive(Parser)]
#[command(name = "pricectl", version, about = "Check prices against the pricing service")]
struct Cli {
    /// List server address.
    #[arg(long, default_value = "http://127.0.0.1:50051", global = true)]
    list: String,
    /// Detail server address.
    #[arg(long, default_value = "http://127.0.0.1:50052", global = true)]
    detail: String,
    /// Print the reply as proto3 JSON.
    #[arg(long, global = true)]
    json: bool,
    /// Ask the engine for its trace: every candidate and why it won, lost or was dropped.
    #[arg(long, global = true)]
    explain: bool,
    /// Caller account (metadata x-caller).
    #[arg(long, default_value = "pricectl", global = true)]
    caller: String,
    /// Caller token (metadata x-caller-token).
    #[arg(long, default_value = "", global = true)]
    token: String,
    #[command(flatten)]
    context: ContextArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct ContextArgs {
    #[arg(long, value_enum, default_value = "app", global = true)]
    channel: ChannelArg,
    /// User id.
    #[arg(long, default_value = "", global = true)]
    pin: String,
    #[arg(long, default_value_t = 0, global = true)]
    store: u64,
    #[arg(long, default_value_t = 0, global = true)]
    city: u64,
    #[arg(long, global = true)]
    new_user: bool,
    #[arg(long, default_value_t = 0, global = true)]
    member_level: u32,
}

#[derive(Clone, Copy, ValueEnum)]
enum ChannelArg {
    App,
    MiniProgram,
    H5,
    Pc,
}

#[derive(Clone, Copy, ValueEnum)]
enum ServerArg {
    List,
    Detail,
}

#[derive(Subcommand)]
enum Command {
    /// Listing prices for a batch of goods (ListPricing.BatchGetPrices).
    Prices { ids: Vec<u64> },
    /// One goods with every activity (DetailPricing.GetGoodsPrice).
    Goods { id: u64 },
    /// Checkout preview (DetailPricing.PreviewOrder); lines as GOODS:QTY.
    Preview {
        #[arg(required = true)]
        lines: Vec<String>,
        #[arg(long = "coupon")]
        coupons: Vec<u64>,
    },
    /// Health of both servers (grpc.health.v1); exits 1 unless both serve.
    Health,
    /// A server's live control config as JSON, secrets redacted (GET /config
    /// on its metrics port).
    Config {
        /// Whose view: the list or the detail server.
        #[arg(value_enum, default_value = "list")]
        server: ServerArg,
        /// Its metrics address; default 127.0.0.1:9464 (list), 127.0.0.1:9465 (detail).
        #[arg(long)]
        admin: Option<String>,
    },
    /// Is the canary healthy? Per canary variant, side by side: calls, error
    /// ratio, p50/p99, tier shares and shadow mismatches, summed over the
    /// /metrics of every server given.
    Canary {
        /// A server's metrics address (host:port, or http://host:port/metrics); repeat for each server.
        #[arg(long = "metrics", required = true)]
        metrics: Vec<String>,
        /// Only this gRPC method's calls and latency (e.g. BatchGetPrices).
        #[arg(long)]
        method: Option<String>,
    },
    /// Order pricing (DetailPricing.PriceOrder); lines as GOODS:QTY.
    Order {
        #[arg(required = true)]
        lines: Vec<String>,
        #[arg(long = "coupon")]
        coupons: Vec<u64>,
        /// Quote id from a preview, to flag lines whose price moved.
        #[arg(long, default_value = "")]
        quote: String,
        /// The payable total the user was shown.
        #[arg(long, default_value = "")]
        expect: String,
    },
}

fn context(cli: &Cli) -> CallerContext {
    let c = &cli.context;
    CallerContext {
        pin: c.pin.clone(),
        store_id: c.store,
        city_id: c.city,
        channel: match c.channel {
            ChannelArg::App => v1::Channel::App,
            ChannelArg::MiniProgram => v1::Channel::MiniProgram,
            ChannelArg::H5 => v1::Channel::H5,
            ChannelArg::Pc => v1::Channel::Pc,
        } as i32,
        new_user: c.new_user,
        member_level: c.member_level,
        explain: cli.explain,
    }
}

fn parse_lines(lines: &[String]) -> Result<Vec<OrderLineInput>> {
    lines
        .iter()
        .map(|l| {
            let (g, q) = l.split_once(':').unwrap_or((l, "1"));
            Ok(OrderLineInput {
                goods_id: g.parse().with_context(|| format!("goods id in {l:?}"))?,
                quantity: q.parse().with_context(|| format!("quantity in {l:?}"))?,
            })
        })
        .collect()
}

fn request<T>(cli: &Cli, message: T) -> Result<tonic::Request<T>> {
    let mut req = tonic::Request::new(message);
    req.metadata_mut().insert("x-caller", MetadataValue::try_from(cli.caller.as_str()).context("caller")?);
    if !cli.token.is_empty() {
        req.metadata_mut().insert("x-caller-token", MetadataValue::try_from(cli.token.as_str()).context("token")?);
    }
    Ok(req)
}

/// How a run failed: the server refused the call (its status), or something
/// else (no server, a bad reply).
enum Failure {
    Status(tonic::Status),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Failure {
        Failure::Other(error)
    }
}

impl From<tonic::Status> for Failure {
    fn from(status: tonic::Status) -> Failure {
        Failure::Status(status)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("pricectl: cannot start the runtime: {error}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(&cli)) {
        Ok(code) => code,
        Err(Failure::Status(status)) => {
            eprintln!("pricectl: {}", status_line(&status));
            ExitCode::from(1)
        }
        Err(Failure::Other(error)) => {
            // `{:#}` is the error and its causes on one line; never `{:?}`,
            // which would add a backtrace when RUST_BACKTRACE is set.
            eprintln!("pricectl: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: &Cli) -> Result<ExitCode, Failure> {
    let ctx = context(cli);
    match &cli.command {
        Command::Prices { ids } => {
            let mut client =
                ListPricingClient::connect(cli.list.clone()).await.context("connect to the list server")?;
            let req = v1::BatchGetPricesRequest { goods_ids: ids.clone(), context: Some(ctx) };
            let reply = client.batch_get_prices(request(cli, req)?).await?.into_inner();
            if cli.json {
                print_json(&reply)?;
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:>10}  {:>10}  {:>10}  {:<11}  {:>10}  {:>6}  {:<6}  tier",
                "goods", "original", "price", "activity", "id", "limit", "stale"
            );
            for p in &reply.prices {
                let (kind, id) = p.activity.as_ref().map_or(("-".to_owned(), 0), |a| (kind_name(a.kind), a.id));
                println!(
                    "{:>10}  {:>10}  {:>10}  {:<11}  {:>10}  {:>6}  {:<6}  {}",
                    p.goods_id,
                    p.original_price,
                    p.activity_price,
                    kind,
                    id,
                    p.per_user_limit,
                    p.stale,
                    tier_name(p.tier)
                );
                print_trace(&p.trace);
            }
            if !reply.not_found.is_empty() {
                println!("not found: {:?}", reply.not_found);
            }
            if !reply.limited.is_empty() {
                println!("limited (hot keys, retry after {} ms): {:?}", reply.limited_retry_after_ms, reply.limited);
            }
        }
        Command::Goods { id } => {
            let mut client =
                DetailPricingClient::connect(cli.detail.clone()).await.context("connect to the detail server")?;
            let req = GetGoodsPriceRequest { goods_id: *id, context: Some(ctx) };
            let reply = client.get_goods_price(request(cli, req)?).await?.into_inner();
            if cli.json {
                print_json(&reply)?;
                return Ok(ExitCode::SUCCESS);
            }
            if let Some(p) = &reply.price {
                println!(
                    "goods {}: original {} {}, pays {} (tier {}{})",
                    p.goods_id,
                    p.original_price,
                    p.currency,
                    p.activity_price,
                    tier_name(p.tier),
                    if reply.from_list_fallback { ", from list fallback" } else { "" }
                );
                if p.per_user_limit > 0 {
                    println!("  limit {} per user, beyond it {}", p.per_user_limit, p.price_beyond_limit);
                }
                print_trace(&p.trace);
            }
            println!("{:>10}  {:<11}  {:>10}  {:>6}  {:<10}  reason", "activity", "kind", "price", "limit", "applies");
            for a in &reply.activities {
                println!(
                    "{:>10}  {:<11}  {:>10}  {:>6}  {:<10}  {}",
                    a.id,
                    kind_name(a.kind),
                    a.price,
                    a.per_user_limit,
                    a.applicable,
                    a.reason
                );
            }
        }
        Command::Preview { lines, coupons } => {
            let mut client =
                DetailPricingClient::connect(cli.detail.clone()).await.context("connect to the detail server")?;
            let req =
                PreviewOrderRequest { context: Some(ctx), lines: parse_lines(lines)?, coupon_ids: coupons.clone() };
            let reply = client.preview_order(request(cli, req)?).await?.into_inner();
            print_order(cli, &reply)?;
        }
        Command::Order { lines, coupons, quote, expect } => {
            let mut client =
                DetailPricingClient::connect(cli.detail.clone()).await.context("connect to the detail server")?;
            let req = PriceOrderRequest {
                context: Some(ctx),
                lines: parse_lines(lines)?,
                coupon_ids: coupons.clone(),
                preview_quote_id: quote.clone(),
                expected_payable_total: expect.clone(),
            };
            let reply = client.price_order(request(cli, req)?).await?.into_inner();
            print_order(cli, &reply)?;
        }
        Command::Health => return Ok(health(cli).await),
        Command::Config { server, admin } => {
            let admin = admin.clone().unwrap_or_else(|| {
                match server {
                    ServerArg::List => "127.0.0.1:9464",
                    ServerArg::Detail => "127.0.0.1:9465",
                }
                .to_owned()
            });
            let text = http_get(&admin, "/config").await?;
            let view: serde_json::Value =
                serde_json::from_str(&text).with_context(|| format!("the config view from {admin} is not JSON"))?;
            print_json(&view)?;
        }
        Command::Canary { metrics, method } => {
            let mut scrapes = Vec::with_capacity(metrics.len());
            for url in metrics {
                let address = url.trim_start_matches("http://");
                let (address, path) = match address.split_once('/') {
                    Some((address, path)) => (address, format!("/{path}")),
                    None => (address, "/metrics".to_owned()),
                };
                scrapes.push(http_get(address, &path).await.with_context(|| format!("scrape {url}"))?);
            }
            let report = canary::report(&scrapes, method.as_deref());
            if cli.json {
                let rows: serde_json::Map<String, serde_json::Value> = report
                    .iter()
                    .map(|(name, v)| {
                        let row = serde_json::json!({
                            "calls": v.calls,
                            "errors": v.errors,
                            "error_ratio": v.error_ratio(),
                            "p50_seconds": v.quantile(0.5),
                            "p99_seconds": v.quantile(0.99),
                            "tier_percent": v.tier_shares(),
                            "shadow_checks": v.shadow_checks,
                            "shadow_mismatches": v.shadow_mismatches,
                        });
                        (name.clone(), row)
                    })
                    .collect();
                print_json(&serde_json::Value::Object(rows))?;
            } else {
                print!("{}", canary::render(&report));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Asks each server's health service for its own service name; prints one
/// line per server and succeeds only when both serve.
async fn health(cli: &Cli) -> ExitCode {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    let mut all_serving = true;
    for (name, address, service) in
        [("list", &cli.list, "pricing.v1.ListPricing"), ("detail", &cli.detail, "pricing.v1.DetailPricing")]
    {
        let answer = async {
            let channel = tonic::transport::Endpoint::from_shared(address.clone())
                .context("address")?
                .connect_timeout(std::time::Duration::from_secs(2))
                .connect()
                .await
                .context("cannot connect")?;
            let reply = HealthClient::new(channel)
                .check(HealthCheckRequest { service: service.into() })
                .await
                .map_err(|s| anyhow::anyhow!(status_line(&s)))?;
            let status = ServingStatus::try_from(reply.into_inner().status).unwrap_or(ServingStatus::Unknown);
            Ok::<_, anyhow::Error>(status)
        }
        .await;
        let shown = match answer {
            Ok(ServingStatus::Serving) => "SERVING".to_owned(),
            Ok(other) => {
                all_serving = false;
                other.as_str_name().to_owned()
            }
            Err(error) => {
                all_serving = false;
                format!("UNREACHABLE ({error:#})")
            }
        };
        println!("{name:<7} {address:<24} {service:<25} {shown}");
    }
    if all_serving { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

/// GET `path` from a server's metrics listener (plain HTTP/1.1).
async fn http_get(address: &str, path: &str) -> Result<String> {
    use http_body_util::BodyExt as _;

    let authority = address.trim_start_matches("http://").trim_end_matches('/');
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .with_context(|| format!("cannot connect to the metrics port {authority}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.context("http handshake")?;
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, authority)
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())
        .context("request")?;
    let response = sender.send_request(request).await.with_context(|| format!("GET {path} from {authority}"))?;
    let status = response.status();
    let body = response.into_body().collect().await.context("read the reply")?.to_bytes();
    let text = String::from_utf8_lossy(&body).into_owned();
    anyhow::ensure!(status.is_success(), "GET {path} from {authority}: {status}: {}", text.trim());
    Ok(text)
}

fn print_order(cli: &Cli, o: &OrderPricing) -> Result<()> {
    if cli.json {
        return print_json(o);
    }
    println!(
        "{:>10}  {:>4}  {:>10}  {:>10}  {:>10}  {:>10}  {:>10}  changed",
        "goods", "qty", "original", "unit", "amount", "discount", "payable"
    );
    for l in &o.lines {
        let discount: Vec<String> = l.allocations.iter().map(|a| format!("{}:{}", a.promotion_id, a.amount)).collect();
        println!(
            "{:>10}  {:>4}  {:>10}  {:>10}  {:>10}  {:>10}  {:>10}  {}",
            l.goods_id,
            l.quantity,
            l.unit_original_price,
            l.unit_activity_price,
            l.amount,
            if discount.is_empty() { "-".to_owned() } else { discount.join(",") },
            l.payable,
            l.price_changed
        );
        if l.segments.len() > 1 {
            for s in &l.segments {
                println!("{:>16} x {} at {} (activity {})", "", s.quantity, s.unit_price, s.activity_id);
            }
        }
    }
    for p in &o.promotions {
        println!("promotion {} ({}): -{}  {}", p.id, promotion_kind_name(p.kind), p.discount, p.description);
    }
    for (id, why) in o.unused_coupon_ids.iter().zip(&o.coupon_reasons) {
        println!("coupon {id} not used: {why}");
    }
    println!(
        "original {}  after activities {}  discounts {}  payable {} {}",
        o.original_total, o.amount_total, o.discount_total, o.payable_total, o.currency
    );
    if !o.quote_id.is_empty() {
        println!(
            "quote {} (expires at {} ms){}",
            o.quote_id,
            o.quote_expires_unix_ms,
            if o.payable_changed { "  PAYABLE CHANGED" } else { "" }
        );
    }
    print_trace(&o.trace);
    Ok(())
}

fn print_trace(trace: &[v1::TraceEntry]) {
    for t in trace {
        println!(
            "    activity {:>8} {:<11} {:<8} {:<24} {}",
            t.activity_id,
            kind_name(t.kind),
            t.outcome,
            t.reason,
            t.price
        );
    }
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn kind_name(kind: i32) -> String {
    v1::ActivityKind::try_from(kind)
        .map(|k| k.as_str_name().trim_start_matches("ACTIVITY_KIND_").to_lowercase())
        .unwrap_or_else(|_| kind.to_string())
}

fn promotion_kind_name(kind: i32) -> String {
    v1::PromotionKind::try_from(kind)
        .map(|k| k.as_str_name().trim_start_matches("PROMOTION_KIND_").to_lowercase())
        .unwrap_or_else(|_| kind.to_string())
}

fn tier_name(tier: i32) -> String {
    v1::Tier::try_from(tier).map(|t| t.as_str_name().trim_start_matches("TIER_").to_lowercase()).unwrap_or_default()
}

/// One line for a server's status: the canonical code name, then the field
/// at fault and its description when the status names one (a BadRequest
/// detail), else the message.
fn status_line(status: &tonic::Status) -> String {
    let code = code_name(status.code());
    let details = status.get_error_details();
    match details.bad_request().map(|b| b.field_violations.as_slice()) {
        Some([first, ..]) => format!("{code} {}: {}", first.field, first.description),
        _ if status.message().is_empty() => code,
        _ => format!("{code} {}", status.message()),
    }
}

/// `InvalidArgument` -> `INVALID_ARGUMENT`, the name gRPC tools print.
fn code_name(code: tonic::Code) -> String {
    let mut out = String::new();
    for (i, c) in format!("{code:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}
