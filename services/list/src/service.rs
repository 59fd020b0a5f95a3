//! ListPricing.BatchGetPrices: check, read the batch once, price each goods.

use std::sync::{Arc, OnceLock};

use pricing_engine::Drops;
use pricing_engine::guard::best_price_guarded_counted;
use pricing_proto::list_server::list_pricing_server::ListPricing;
use pricing_proto::splice::{BatchReply, EncodedPrice};
use pricing_proto::v1::{BatchGetPricesRequest, Tier};
use pricing_proto::{ApiError, convert, validate};
use tonic::{Request, Response, Status};

use crate::guards::{Guards, ShadowSample};
use crate::memo::{PriceMemo, Watched};
use crate::reader::PriceReader;
use pricing_record::{Clock, GoodsId};
use pricing_traffic::watch::{self, PricePath};
use pricing_traffic::{HotKey, Key, VARIANT_HEADER};

pub struct ListService {
    reader: Arc<dyn PriceReader>,
    guards: Guards,
    /// "Now" for every price: each call prices its records at this clock's
    /// now (a remembered price only within the span of instants in which no
    /// activity of its record starts or ends, see [`crate::memo`]).
    clock: Clock,
    /// Prices already computed, in front of the reader (see [`crate::memo`]).
    memo: Arc<PriceMemo>,
}

impl ListService {
    pub fn new(reader: Arc<dyn PriceReader>, guards: Guards) -> ListService {
        let memo = Arc::new(PriceMemo::default());
        reader.on_invalidate(Arc::clone(&memo) as _);
        ListService { reader, guards, clock: Clock::system(), memo }
    }

    /// The price memo in front of the reader: `invalidate(ids)` drops goods
    /// from it (the reader's own invalidation already does).
    pub fn memo(&self) -> &Arc<PriceMemo> {
        &self.memo
    }

    /// The same service reading "now" from `clock` (tests drive time).
    pub fn with_clock(mut self, clock: Clock) -> ListService {
        self.clock = clock;
        self
    }
}

#[tonic::async_trait]
impl ListPricing for ListService {
    async fn batch_get_prices(&self, request: Request<BatchGetPricesRequest>) -> Result<Response<BatchReply>, Status> {
        let control = self.guards.board.snapshot();
        let deadline = pricing_traffic::call_deadline(&request, control.limits.min_deadline);
        let request = request.into_inner();
        let ctx = validate::context("context", request.context.as_ref())?;
        let ids = validate::goods_ids("goods_ids", &request.goods_ids)?;
        // Lazy: nothing is built while hot-key limits are off.
        let pin = std::iter::once(&ctx.pin).filter(|p| !p.is_empty()).map(|p| Key::Pin(Arc::from(p.as_str())));
        let hot = self
            .guards
            .hot_keys
            .check_batch(ids.iter().map(|&id| Key::Goods(id)).chain(pin))
            .map_err(ApiError::from)?;
        let (ids, limited) = leave_out(ids, &hot);
        let variant = self.guards.canary.variant(&ctx.pin, ctx.store_id.unwrap_or(0), ctx.city_id.unwrap_or(0));
        let view = self.guards.variants.view(&variant);
        let caller = convert::caller(&ctx);
        let now = self.clock.now_ms();
        // The memo holds prices of the stable read path: a variant with its
        // own read path (tiers, cache, read modes) goes to its own chain.
        let mut recalled = match view.reader {
            None => self.memo.recall(&control, &ids, &caller, now, tokio::time::Instant::now(), ctx.explain),
            Some(_) => self.memo.recall_nothing(&ids),
        };
        let hits = match (&view.reader, recalled.missing.is_empty()) {
            (_, true) => Ok(Vec::new()),
            (Some(own), false) => own.read(&recalled.missing, deadline).await,
            (None, false) => self.reader.read(&recalled.missing, deadline).await,
        };
        let hits = hits.map_err(|e| {
            pricing_store::throttled!(
                |suppressed| tracing::warn!(error = %e, batch = ids.len(), suppressed, "list read failed")
            );
            with_variant(ApiError::from(e).into(), &variant)
        })?;
        let mut reply = BatchReply {
            prices: Vec::with_capacity(ids.len()),
            not_found: Vec::new(),
            limited_retry_after_ms: hot
                .iter()
                .map(|h| h.retry_after.as_millis().max(1))
                .max()
                .unwrap_or(0)
                .try_into()
                .unwrap_or(u32::MAX),
            limited,
        };
        let mut drops = Drops::default();
        // Answers from the memo count in the watch metrics as the engine's
        // answer they repeat did.
        for watched in &recalled.watched {
            watch::record_measured(PricePath::List, watched.kind, caller.channel, Tier::Memory, watched.basis_points);
            drops.merge(&watched.drops);
        }
        // An id the reader left unanswered is not found, never dropped.
        let mut hits = hits.into_iter().chain(std::iter::repeat_with(|| None));
        for (id, remembered) in ids.into_iter().zip(std::mem::take(&mut recalled.prices)) {
            if let Some(price) = remembered {
                reply.prices.push(price);
                continue;
            }
            let Some(hit) = hits.next().flatten().filter(|h| h.record.goods_id == id && !h.record.is_tombstone())
            else {
                reply.not_found.push(id);
                continue;
            };
            // The price guard (`[guard]`): nothing is screened while it has no rules.
            let mut own = Drops::default();
            match best_price_guarded_counted(&hit.record, &caller, now, ctx.explain, control.guard_rules(), &mut own) {
                Ok((quote, breach)) => {
                    let kind = quote.winner.map(|w| w.kind);
                    let basis_points =
                        if kind.is_some() { watch::discount_basis_points(quote.original, quote.price) } else { 0 };
                    watch::record_measured(PricePath::List, kind, caller.channel, hit.tier, basis_points);
                    drops.merge(&own);
                    let price = convert::goods_price(&quote, hit.record.version, hit.tier, hit.stale);
                    // A price a guard rule touched is never remembered: each
                    // answer of it is screened and counted again.
                    match breach {
                        Some(breach) => pricing_control::guard::count_breach("list", &breach),
                        None if !ctx.explain && view.reader.is_none() => {
                            let watched = Watched { kind, basis_points, drops: own };
                            self.memo.remember(&recalled, &hit, &caller, now, &price, watched);
                        }
                        None => {}
                    }
                    reply.prices.push(Arc::new(EncodedPrice::new(price)));
                }
                Err(error) => {
                    // A record the engine cannot price (bad base price) is never
                    // answered with a made-up price: it is not found, and counted.
                    metrics::counter!("pricing_unpriceable_total", "path" => "list").increment(1);
                    pricing_store::throttled!(
                        |suppressed| tracing::warn!(goods_id = id, %error, suppressed, "record cannot be priced")
                    );
                    reply.not_found.push(id);
                }
            }
        }
        view.count_tiers(reply.prices.iter().map(|p| p.price().tier()));
        watch::record_drops(PricePath::List, &drops);
        let goods = goods_counters();
        goods.found.increment(reply.prices.len() as u64);
        goods.not_found.increment(reply.not_found.len() as u64);
        if !reply.limited.is_empty() {
            goods.limited.increment(reply.limited.len() as u64);
        }
        if let Some(shadow) = self.guards.shadow.as_ref().filter(|_| self.guards.sampler.sample(&variant)) {
            let answered = reply
                .prices
                .iter()
                .map(|p| (p.price().goods_id, p.price().activity_price.parse().ok()))
                .chain(reply.not_found.iter().map(|&id| (id, None)))
                .collect();
            shadow.offer(
                Arc::clone(&variant),
                ShadowSample { ctx: caller, now, answered, control: Arc::clone(&control) },
            );
        }
        let mut response = Response::new(reply);
        if let Ok(value) = variant.parse() {
            response.metadata_mut().insert(VARIANT_HEADER, value);
        }
        Ok(response)
    }
}

/// `pricing_list_goods_total{result}`: handles registered on the first call
/// (after the server installed its recorder), not looked up per call.
struct GoodsCounters {
    found: metrics::Counter,
    not_found: metrics::Counter,
    limited: metrics::Counter,
}

fn goods_counters() -> &'static GoodsCounters {
    static COUNTERS: OnceLock<GoodsCounters> = OnceLock::new();
    COUNTERS.get_or_init(|| GoodsCounters {
        found: metrics::counter!("pricing_list_goods_total", "result" => "found"),
        not_found: metrics::counter!("pricing_list_goods_total", "result" => "not_found"),
        limited: metrics::counter!("pricing_list_goods_total", "result" => "limited"),
    })
}

/// An error of a call whose variant is known carries it, as a success does
/// in its header: the request metrics count it under its variant.
fn with_variant(mut status: Status, variant: &str) -> Status {
    if let Ok(value) = variant.parse() {
        status.metadata_mut().insert(VARIANT_HEADER, value);
    }
    status
}

/// Splits the batch into the ids to answer and the hot ones left out, both in
/// request order. No hot ids (the usual case): the batch as it came.
fn leave_out(ids: Vec<GoodsId>, hot: &[HotKey]) -> (Vec<GoodsId>, Vec<GoodsId>) {
    if hot.is_empty() {
        return (ids, Vec::new());
    }
    ids.into_iter().partition(|id| !hot.iter().any(|h| h.key == Key::Goods(*id)))
}
