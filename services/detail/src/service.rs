//! DetailPricing: the detail page, the checkout preview and order pricing.

use std::collections::HashMap;
use std::sync::Arc;

use pricing_engine::guard::{best_price_guarded, best_price_guarded_counted, price_units_guarded_counted};
use pricing_engine::{CallerContext, CartLine, CartPricing, Drops, LineQuote, RemainderRule, price_cart};
use pricing_proto::v1::detail_pricing_server::DetailPricing;
use pricing_proto::v1::list_pricing_client::ListPricingClient;
use pricing_proto::v1::{
    self, GetGoodsPriceRequest, GetGoodsPriceResponse, OrderPricing, PreviewOrderRequest, PriceOrderRequest,
};
use pricing_proto::validate::{self, Context, Line};
use pricing_proto::{ApiError, convert};
use pricing_record::{Clock, GoodsStatus};
use std::time::Duration;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::quote::{Quote, QuoteSigner, QuotedLine};
use crate::sources::{Freshness, Sources};
use crate::variants::RedisViews;
use pricing_control::Switchboard;
use pricing_store::Deadline;
use pricing_traffic::watch::{Answer, PricePath};
use pricing_traffic::{Canary, HotKeyLimiter, Key, VARIANT_HEADER};

pub struct DetailService {
    sources: Arc<Sources>,
    board: Switchboard,
    hot_keys: HotKeyLimiter,
    canary: Canary,
    /// Chains of the variants that set `detail_redis_read`.
    views: RedisViews,
    signer: QuoteSigner,
    quote_ttl_ms: i64,
    rule: RemainderRule,
    list: Option<ListFallback>,
    /// Shadow verification of GetGoodsPrice answers against MySQL.
    shadow: crate::watch::Shadow,
    /// "Now" for every price and quote expiry.
    clock: Clock,
}

/// The list server, the detail page's emergency dependency (seed 004).
#[derive(Clone)]
pub struct ListFallback {
    pub client: ListPricingClient<Channel>,
    pub timeout: Duration,
}

impl ListFallback {
    /// A lazily connected client: a list server that is down at start is only
    /// an error of the calls that need it.
    pub fn connect_lazy(
        address: &str,
        timeout: Duration,
    ) -> Result<ListFallback, tonic::codegen::http::uri::InvalidUri> {
        let channel =
            Channel::from_shared(address.to_owned())?.connect_timeout(timeout).timeout(timeout).connect_lazy();
        Ok(ListFallback { client: ListPricingClient::new(channel), timeout })
    }
}

impl DetailService {
    pub fn new(
        sources: Arc<Sources>,
        board: Switchboard,
        signer: QuoteSigner,
        quote_ttl_ms: u64,
        rule: RemainderRule,
        list: Option<ListFallback>,
    ) -> DetailService {
        DetailService {
            views: RedisViews::new(&board, Arc::clone(&sources)),
            shadow: crate::watch::Shadow::new(&board, sources.truth()),
            sources,
            hot_keys: HotKeyLimiter::new(board.clone()),
            canary: Canary::new(board.clone()),
            board,
            signer,
            quote_ttl_ms: i64::try_from(quote_ttl_ms).unwrap_or(i64::MAX),
            rule,
            list,
            clock: Clock::system(),
        }
    }

    /// The same service reading "now" from `clock` (tests drive time).
    pub fn with_clock(mut self, clock: Clock) -> DetailService {
        self.clock = clock;
        self
    }

    /// What this server can apply of a control file's variants, to
    /// register with its switch board.
    pub fn capability(&self) -> pricing_control::Capability {
        self.views.capability()
    }

    /// Hot-key check and the call's route: its canary variant and the
    /// detail switches in force for it (the variant may override them).
    fn admit(&self, ctx: &Context, goods: impl Iterator<Item = u64>) -> Result<Route, ApiError> {
        // Lazy: nothing is built while hot-key limits are off.
        let pin = std::iter::once(&ctx.pin).filter(|p| !p.is_empty()).map(|p| Key::Pin(Arc::from(p.as_str())));
        self.hot_keys.check(goods.map(Key::Goods).chain(pin))?;
        let variant = self.canary.variant(&ctx.pin, ctx.store_id.unwrap_or(0), ctx.city_id.unwrap_or(0));
        let control = self.board.load_config();
        let overrides = control.canary.variants.get(&*variant);
        Ok(Route {
            rule: overrides.and_then(|o| o.checkout_remainder_rule).map_or(self.rule, remainder_rule),
            bypass: overrides.and_then(|o| o.detail_redis_bypass).unwrap_or(control.detail.redis_bypass),
            fallback: overrides.and_then(|o| o.detail_fallback_to_list).unwrap_or(control.detail.fallback_to_list),
            chain: overrides.filter(|o| o.detail_redis_read.is_some()).and_then(|_| self.views.chain(&variant)),
            variant,
        })
    }

    /// The caller's deadline for this call's store reads, less the time
    /// kept to answer (`limits.min_deadline_ms`).
    fn deadline<T>(&self, request: &Request<T>) -> Option<Deadline> {
        pricing_traffic::call_deadline(request, self.board.load_config().limits.min_deadline)
    }

    /// GetGoodsPrice answered by the list server (the `fallback_to_list` switch).
    async fn ask_list(
        &self,
        goods_id: u64,
        context: v1::CallerContext,
        deadline: Option<Deadline>,
    ) -> Result<GetGoodsPriceResponse, ApiError> {
        metrics::counter!("pricing_detail_fallback_total", "from" => "detail", "to" => "list").increment(1);
        let Some(list) = &self.list else {
            return Err(ApiError::Unavailable("fallback_to_list is on but no list server is configured".into()));
        };
        let mut request = Request::new(v1::BatchGetPricesRequest { goods_ids: vec![goods_id], context: Some(context) });
        // The list server gets what the caller has left, as its grpc-timeout.
        request.set_timeout(pricing_traffic::deadline::budget(deadline.as_ref(), list.timeout));
        let reply = list.client.clone().batch_get_prices(request).await.map_err(|status| {
            pricing_store::throttled!(
                |suppressed| tracing::warn!(goods_id, %status, suppressed, "list fallback failed")
            );
            ApiError::Unavailable(format!("list fallback: {}", status.message()))
        })?;
        let price = reply.into_inner().prices.into_iter().find(|p| p.goods_id == goods_id);
        match price {
            Some(price) => {
                Ok(GetGoodsPriceResponse { price: Some(price), activities: Vec::new(), from_list_fallback: true })
            }
            None => Err(ApiError::not_found("goods_id", format!("goods {goods_id} not found"))),
        }
    }
}

fn internal(what: &str, error: impl std::fmt::Display) -> ApiError {
    metrics::counter!("pricing_unpriceable_total", "path" => "detail").increment(1);
    pricing_store::throttled!(|suppressed| tracing::error!(%error, what, suppressed, "cannot price"));
    ApiError::Internal(format!("{what}: cannot be priced"))
}

/// How one call is served.
struct Route {
    variant: Arc<str>,
    bypass: bool,
    fallback: bool,
    /// The checkout remainder rule (the variant's `checkout_remainder_rule`).
    rule: RemainderRule,
    /// The variant's own detail chain (`detail_redis_read`); `None`: the stable one.
    chain: Option<pricing_store::TieredReader>,
}

impl Route {
    /// The call's records through its variant's chain.
    async fn records(
        &self,
        sources: &Sources,
        ids: &[u64],
        freshness: Freshness,
        deadline: Option<Deadline>,
    ) -> Result<Vec<crate::sources::Found>, ApiError> {
        let chain = self.chain.as_ref().unwrap_or_else(|| sources.chain());
        sources.records_in(chain, ids, freshness, self.bypass, deadline).await
    }
}

/// The engine's rule for the control file's spelling.
fn remainder_rule(rule: pricing_control::RemainderRuleSwitch) -> RemainderRule {
    match rule {
        pricing_control::RemainderRuleSwitch::LargestLine => RemainderRule::LargestLine,
        pricing_control::RemainderRuleSwitch::LargestRemainder => RemainderRule::LargestRemainder,
    }
}

impl Route {
    /// An error of a call whose variant is known carries it in its metadata,
    /// as a success does in its header (the request metrics read it).
    fn fail(&self, error: ApiError) -> Status {
        let mut status = Status::from(error);
        if let Ok(value) = self.variant.parse() {
            status.metadata_mut().insert(VARIANT_HEADER, value);
        }
        status
    }

    fn tag<T>(&self, mut response: Response<T>) -> Response<T> {
        if let Ok(value) = self.variant.parse() {
            response.metadata_mut().insert(VARIANT_HEADER, value);
        }
        response
    }
}

/// What an order computation produced, before it becomes a reply.
struct OrderResult {
    lines: Vec<(Line, LineQuote)>,
    cart: CartPricing,
    unknown_coupons: Vec<u64>,
    trace: Vec<v1::TraceEntry>,
}

impl DetailService {
    async fn compute_order(
        &self,
        ctx: &Context,
        lines: &[Line],
        coupon_ids: &[u64],
        freshness: Freshness,
        route: &Route,
        deadline: Option<Deadline>,
    ) -> Result<OrderResult, ApiError> {
        let caller = convert::caller(ctx);
        let path = if freshness == Freshness::Order { PricePath::Order } else { PricePath::Checkout };
        let mut drops = Drops::default();
        let ids: Vec<u64> = lines.iter().map(|l| l.goods_id).collect();
        let records = route.records(&self.sources, &ids, freshness, deadline).await?;
        let by_id: HashMap<u64, _> = records.into_iter().map(|r| (r.record.goods_id, r)).collect();
        let now = self.clock.now_ms();
        let control = self.board.snapshot();
        let guard = control.guard_rules();
        let mut priced = Vec::with_capacity(lines.len());
        let mut trace = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            // The field's name is built only for an error.
            let field = || format!("lines[{i}].goods_id");
            let record = match by_id.get(&line.goods_id) {
                Some(found) => &found.record,
                _ => return Err(ApiError::not_found(field(), format!("goods {} not found", line.goods_id))),
            };
            if record.status == GoodsStatus::Delisted {
                return Err(ApiError::FailedPrecondition {
                    field: field(),
                    description: format!("goods {} is off the shelf", line.goods_id),
                });
            }
            let (quote, breaches) = price_units_guarded_counted(record, &caller, now, line.quantity, guard, &mut drops)
                .map_err(|e| internal(&format!("goods {}", line.goods_id), e))?;
            breaches.iter().for_each(|b| pricing_control::guard::count_breach("detail", b));
            if ctx.explain
                && let Ok((q, _)) = best_price_guarded(record, &caller, now, true, guard)
            {
                trace.extend(q.trace.iter().map(convert::trace_entry));
            }
            priced.push((*line, quote));
        }
        // Counted once every line is priced (a call refused for one line counts none).
        for (line, quote) in &priced {
            if let Some(found) = by_id.get(&line.goods_id) {
                crate::watch::order_line(path, &found.record, quote, caller.channel, found.tier);
            }
        }
        crate::watch::drops(path, &drops);
        let mut store_ids: Vec<u64> = priced.iter().map(|(_, q)| q.store_id).collect();
        store_ids.sort_unstable();
        store_ids.dedup();
        let promotions = self.sources.promotions(&store_ids, now, freshness, deadline).await?;
        let (coupons, unknown_coupons) = self.sources.coupons(coupon_ids, deadline).await?;
        let cart_lines: Vec<CartLine> = priced
            .iter()
            .map(|(_, q)| CartLine { goods_id: q.goods_id, store_id: q.store_id, amount: q.amount })
            .collect();
        let cart = price_cart(&cart_lines, &promotions, &coupons, now, route.rule).map_err(|e| internal("cart", e))?;
        Ok(OrderResult { lines: priced, cart, unknown_coupons, trace })
    }

    /// The wire reply and the quote it signs.
    fn reply(&self, result: OrderResult, now: i64) -> Result<(OrderPricing, Quote), ApiError> {
        let OrderResult { lines, cart, unknown_coupons, trace } = result;
        let mut reply =
            convert::order_pricing(&lines, &cart, &unknown_coupons, trace).map_err(|e| internal("order", e))?;
        let quoted = lines
            .iter()
            .zip(&cart.lines)
            .map(|((line, q), priced)| QuotedLine::new(line.goods_id, line.quantity, q.amount, priced.payable))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| internal("quote", e))?;
        let quote = Quote { expires_ms: now.saturating_add(self.quote_ttl_ms), lines: quoted };
        reply.quote_id = self.signer.sign(&quote);
        reply.quote_expires_unix_ms = quote.expires_ms;
        Ok((reply, quote))
    }
}

#[tonic::async_trait]
impl DetailPricing for DetailService {
    async fn get_goods_price(
        &self,
        request: Request<GetGoodsPriceRequest>,
    ) -> Result<Response<GetGoodsPriceResponse>, Status> {
        let deadline = self.deadline(&request);
        let request = request.into_inner();
        let ctx = validate::context("context", request.context.as_ref())?;
        let id = validate::goods_id("goods_id", request.goods_id)?;
        let route = self.admit(&ctx, std::iter::once(id))?;
        if route.fallback {
            let reply =
                self.ask_list(id, request.context.unwrap_or_default(), deadline).await.map_err(|e| route.fail(e))?;
            if let Some(price) = &reply.price {
                crate::watch::fallback_answer(price, ctx.channel);
            }
            return Ok(route.tag(Response::new(reply)));
        }
        let found =
            route.records(&self.sources, &[id], Freshness::Detail, deadline).await.map_err(|e| route.fail(e))?;
        let Some(found) = found.into_iter().find(|f| f.record.goods_id == id) else {
            return Err(route.fail(ApiError::not_found("goods_id", format!("goods {id} not found"))));
        };
        let caller: CallerContext = convert::caller(&ctx);
        // The detail page lists every activity with why it does or does not
        // apply, so the trace is always built here; it is returned only when asked.
        let now = self.clock.now_ms();
        let control = self.board.load_config();
        let mut drops = Drops::default();
        let (mut quote, breach) =
            best_price_guarded_counted(&found.record, &caller, now, true, control.guard_rules(), &mut drops)
                .map_err(|e| internal(&format!("goods {id}"), e))?;
        if let Some(breach) = breach {
            pricing_control::guard::count_breach("detail", &breach);
        }
        crate::watch::drops(PricePath::Detail, &drops);
        pricing_traffic::watch::record_answer(&Answer::of(PricePath::Detail, &quote, caller.channel, found.tier));
        self.shadow.check(&route.variant, &control, (&caller, now), (id, quote.price));
        let activities = convert::activity_offers(&found.record, &quote.trace);
        if !ctx.explain {
            quote.trace.clear();
        }
        Ok(route.tag(Response::new(GetGoodsPriceResponse {
            price: Some(convert::goods_price(&quote, found.record.version, found.tier, found.stale)),
            activities,
            from_list_fallback: false,
        })))
    }

    async fn preview_order(&self, request: Request<PreviewOrderRequest>) -> Result<Response<OrderPricing>, Status> {
        let deadline = self.deadline(&request);
        let request = request.into_inner();
        let ctx = validate::context("context", request.context.as_ref())?;
        let lines = validate::order_lines("lines", &request.lines)?;
        let coupons = validate::coupon_ids("coupon_ids", &request.coupon_ids)?;
        let route = self.admit(&ctx, lines.iter().map(|l| l.goods_id))?;
        let result = self
            .compute_order(&ctx, &lines, &coupons, Freshness::Preview, &route, deadline)
            .await
            .and_then(|result| self.reply(result, self.clock.now_ms()))
            .map_err(|e| route.fail(e))?;
        let (reply, _) = result;
        Ok(route.tag(Response::new(reply)))
    }

    async fn price_order(&self, request: Request<PriceOrderRequest>) -> Result<Response<OrderPricing>, Status> {
        let deadline = self.deadline(&request);
        let request = request.into_inner();
        let ctx = validate::context("context", request.context.as_ref())?;
        let lines = validate::order_lines("lines", &request.lines)?;
        let coupons = validate::coupon_ids("coupon_ids", &request.coupon_ids)?;
        let expected = validate::optional_money("expected_payable_total", &request.expected_payable_total)?;
        let now = self.clock.now_ms();
        let previous = match request.preview_quote_id.as_str() {
            "" => None,
            id => {
                let quote = self.signer.verify(id).map_err(|e| ApiError::invalid("preview_quote_id", e.to_string()))?;
                // A preview is a promise for its lifetime only: past it the
                // buyer must look at the prices again, not be charged silently.
                if quote.expires_ms < now {
                    return Err(ApiError::FailedPrecondition {
                        field: "preview_quote_id".into(),
                        description: format!(
                            "the preview quote expired {} ms ago; preview the order again",
                            now - quote.expires_ms
                        ),
                    }
                    .into());
                }
                Some(quote)
            }
        };
        let route = self.admit(&ctx, lines.iter().map(|l| l.goods_id))?;
        let result = self
            .compute_order(&ctx, &lines, &coupons, Freshness::Order, &route, deadline)
            .await
            .map_err(|e| route.fail(e))?;
        let payable_total = result.cart.payable_total;
        let (mut reply, quote) = self.reply(result, now).map_err(|e| route.fail(e))?;
        if let Some(previous) = previous {
            for (line, now_quoted) in reply.lines.iter_mut().zip(&quote.lines) {
                line.price_changed =
                    previous.lines.iter().find(|p| p.goods_id == now_quoted.goods_id) != Some(now_quoted);
            }
        }
        if let Some(expected) = expected {
            reply.payable_changed = expected != payable_total;
        }
        if reply.lines.iter().any(|l| l.price_changed) || reply.payable_changed {
            metrics::counter!("pricing_order_price_changed_total").increment(1);
        }
        Ok(route.tag(Response::new(reply)))
    }
}
