//! pricectl: ask the pricing service what a goods or an order costs.
//!
//! Prints a readable table by default, the proto3 JSON of the reply with
//! `--json`, and the engine's reasoning with `--explain`.

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use pricing_proto::v1::{
    self, CallerContext, GetGoodsPriceRequest, OrderLineInput, OrderPricing, PreviewOrderRequest, PriceOrderRequest,
    detail_pricing_client::DetailPricingClient, list_pricing_client::ListPricingClient,
};
use tonic::metadata::MetadataValue;

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

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let ctx = context(&cli);
    match &cli.command {
        Command::Prices { ids } => {
            let mut client =
                ListPricingClient::connect(cli.list.clone()).await.context("connect to the list server")?;
            let req = v1::BatchGetPricesRequest { goods_ids: ids.clone(), context: Some(ctx) };
            let reply = client.batch_get_prices(request(&cli, req)?).await.map_err(status_error)?.into_inner();
            if cli.json {
                return print_json(&reply);
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
            let reply = client.get_goods_price(request(&cli, req)?).await.map_err(status_error)?.into_inner();
            if cli.json {
                return print_json(&reply);
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
            let reply = client.preview_order(request(&cli, req)?).await.map_err(status_error)?.into_inner();
            print_order(&cli, &reply)?;
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
            let reply = client.price_order(request(&cli, req)?).await.map_err(status_error)?.into_inner();
            print_order(&cli, &reply)?;
        }
    }
    Ok(())
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

fn status_error(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", status.code(), status.message())
}
