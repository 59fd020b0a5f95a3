//! A steady load of concurrent callers with every answer checked: the
//! fault tests' yardstick (tests/faults.rs, tests/redis_cluster.rs).
//!
//! Layout: [`goods`] makes records with a mix of activities; [`Truth`]
//! holds what each goods really is and checks an answered price against
//! the engine's own evaluation of it; [`Load`] runs callers in a loop (each
//! call bounded by [`CALL_LIMIT`]) and tallies answers, tiers, stale
//! answers and failures; [`list_load`] is a load of BatchGetPrices on a
//! list server (signed with the fault stacks' caller account); [`rotating`]
//! spreads batches of a set of ids over the callers.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pricing_engine::best_price;
use pricing_proto::v1::list_pricing_client::ListPricingClient;
use pricing_proto::v1::{self, BatchGetPricesRequest};
use pricing_record::{ActivityKind, Channel as SalesChannel, GoodsId};
use pricing_store::SharedRecord;
use pricing_store::conformance::{activity, record};
use pricing_testkit::net::eventually;
use rust_decimal::Decimal;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::app;
use crate::fault_stack::signed;

/// Deadline of every wait on a condition.
pub const WAIT: Duration = Duration::from_secs(20);
/// A call with no answer after this long counts as failed (a hang).
pub const CALL_LIMIT: Duration = Duration::from_secs(10);

/// `app("user-1")` as the engine sees it, built here rather than by the
/// service's own conversion.
pub fn engine_context() -> pricing_engine::CallerContext {
    pricing_engine::CallerContext {
        pin: "user-1".into(),
        store_id: None,
        city_id: None,
        channel: SalesChannel::App,
        new_user: false,
        member_level: 0,
    }
}

/// "Now" as the servers under test read it (their default, the system clock).
pub fn now_ms() -> i64 {
    pricing_record::Clock::system().now_ms()
}

/// Goods with a mix of activities (none, a discount, an amount off beaten
/// by a flash sale, a subsidy), versions 3..=7, base prices 20.00..=24.99.
pub fn goods(ids: impl IntoIterator<Item = GoodsId>) -> Vec<SharedRecord> {
    ids.into_iter()
        .map(|id| {
            let base = 2_000 + (id % 500) as i64;
            let activities = match id % 4 {
                0 => vec![],
                1 => vec![activity(id, id * 10 + 1, ActivityKind::Discount, Decimal::new(85, 0))],
                2 => vec![
                    activity(id, id * 10 + 1, ActivityKind::AmountOff, Decimal::new(500, 2)),
                    activity(id, id * 10 + 2, ActivityKind::FlashSale, Decimal::new(990, 2)),
                ],
                _ => vec![activity(id, id * 10 + 1, ActivityKind::Subsidy, Decimal::new(1_250, 2))],
            };
            Arc::new(record(id, 3 + id % 5, base, activities))
        })
        .collect()
}

/// What each goods really is: every answered price is checked against it.
pub struct Truth {
    records: HashMap<GoodsId, SharedRecord>,
}

impl Truth {
    pub fn new(records: &[SharedRecord]) -> Arc<Truth> {
        Arc::new(Truth { records: records.iter().map(|r| (r.goods_id, Arc::clone(r))).collect() })
    }

    /// Ok when the answer is what the engine makes of the true record now.
    pub fn check(&self, price: &v1::GoodsPrice) -> Result<(), String> {
        let id = price.goods_id;
        let record = self.records.get(&id).ok_or_else(|| format!("goods {id} was never seeded"))?;
        let quote = best_price(record, &engine_context(), now_ms(), false).map_err(|e| format!("goods {id}: {e}"))?;
        let decimal = |s: &str| s.parse::<Decimal>().ok();
        let expected = (
            record.version,
            Some(quote.original),
            Some(quote.price),
            Some(quote.price_beyond_limit),
            quote.winner.as_ref().map(|w| w.activity_id),
        );
        let answered = (
            price.version,
            decimal(&price.original_price),
            decimal(&price.activity_price),
            decimal(&price.price_beyond_limit),
            price.activity.as_ref().map(|a| a.id),
        );
        if answered != expected {
            return Err(format!("wrong price for goods {id}: answered {answered:?}, expected {expected:?}"));
        }
        Ok(())
    }
}

/// Counts kept by a load while it runs.
#[derive(Default)]
pub struct Tally {
    answered: AtomicU64,
    stale: AtomicU64,
    /// Prices by `v1::Tier` value.
    tiers: [AtomicU64; 6],
    failures: Mutex<Vec<String>>,
}

/// Concurrent callers, each in a loop until the load is finished (or its
/// own bound is reached), each call checked by the test's `call`.
pub struct Load {
    tally: Arc<Tally>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// What a finished load did.
pub struct Summary {
    pub answered: u64,
    pub failures: Vec<String>,
    /// Prices by `v1::Tier` value.
    pub tiers: [u64; 6],
    pub stale: u64,
}

impl Summary {
    pub fn prices(&self) -> u64 {
        self.tiers.iter().sum()
    }

    pub fn assert_clean(&self) {
        assert!(
            self.failures.is_empty(),
            "{} of {} calls failed or were wrong; first: {:?}",
            self.failures.len(),
            self.answered + self.failures.len() as u64,
            &self.failures[..self.failures.len().min(3)]
        );
    }
}

impl Load {
    /// One task per client; client `c` makes calls `call(client, c, i)` for
    /// i = 0, 1, ... up to `per_client` calls (unbounded: `None`).
    pub fn start<C, F, Fut>(clients: Vec<C>, per_client: Option<u64>, call: F) -> Load
    where
        C: Clone + Send + 'static,
        F: Fn(C, u64, u64) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<v1::GoodsPrice>, String>> + Send + 'static,
    {
        let tally = Arc::new(Tally::default());
        let call = Arc::new(call);
        let (stop, stopped) = watch::channel(false);
        let tasks = clients
            .into_iter()
            .zip(0u64..)
            .map(|(client, c)| {
                let (tally, call, stopped) = (Arc::clone(&tally), Arc::clone(&call), stopped.clone());
                tokio::spawn(async move {
                    let mut i = 0;
                    while !*stopped.borrow() && per_client.is_none_or(|n| i < n) {
                        match tokio::time::timeout(CALL_LIMIT, call(client.clone(), c, i)).await {
                            Ok(Ok(prices)) => {
                                for price in &prices {
                                    tally.tiers[price.tier.clamp(0, 5) as usize].fetch_add(1, Ordering::SeqCst);
                                    tally.stale.fetch_add(u64::from(price.stale), Ordering::SeqCst);
                                }
                                tally.answered.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok(Err(failure)) => tally.failures.lock().unwrap().push(failure),
                            Err(_) => tally.failures.lock().unwrap().push(format!("no answer in {CALL_LIMIT:?}")),
                        }
                        i += 1;
                    }
                })
            })
            .collect();
        Load { tally, stop, tasks }
    }

    /// Calls made so far (answered or failed).
    pub fn calls(&self) -> u64 {
        self.tally.answered.load(Ordering::SeqCst) + self.tally.failures.lock().unwrap().len() as u64
    }

    /// Calls failed so far (an error, a wrong answer or no answer in time).
    pub fn failed(&self) -> u64 {
        self.tally.failures.lock().unwrap().len() as u64
    }

    /// The first `n` failures so far, as messages.
    pub fn first_failures(&self, n: usize) -> Vec<String> {
        self.tally.failures.lock().unwrap().iter().take(n).cloned().collect()
    }

    pub fn tier(&self, tier: v1::Tier) -> u64 {
        self.tally.tiers[tier as usize].load(Ordering::SeqCst)
    }

    pub fn stale(&self) -> u64 {
        self.tally.stale.load(Ordering::SeqCst)
    }

    /// Waits until `more` further calls have been made.
    pub async fn advance(&self, more: u64, what: &str) {
        let target = self.calls() + more;
        eventually(what, WAIT, || async { (self.calls() >= target).then_some(()) }).await;
    }

    /// Stops the callers and waits for their last calls.
    pub async fn finish(self) -> Summary {
        let Load { tally, stop, tasks } = self;
        let _ = stop.send(true);
        for task in tasks {
            tokio::time::timeout(WAIT, task).await.expect("the load ends").expect("a load task panicked");
        }
        let failures = std::mem::take(&mut *tally.failures.lock().unwrap());
        let tiers = std::array::from_fn(|t| tally.tiers[t].load(Ordering::SeqCst));
        let (answered, stale) = (tally.answered.load(Ordering::SeqCst), tally.stale.load(Ordering::SeqCst));
        Summary { answered, failures, tiers, stale }
    }
}

/// Whether stale answers are a failure for a load.
#[derive(Clone, Copy)]
pub enum Stale {
    Refused,
    Allowed,
}

/// A list load: `clients` connections, each call a batch from `batch`,
/// every goods answered and priced right.
pub async fn list_load(
    list_addr: SocketAddr,
    clients: usize,
    per_client: Option<u64>,
    truth: Arc<Truth>,
    stale: Stale,
    batch: impl Fn(u64, u64) -> Vec<GoodsId> + Send + Sync + 'static,
) -> Load {
    let mut connections = Vec::new();
    for _ in 0..clients {
        connections.push(ListPricingClient::new(crate::channel(list_addr).await));
    }
    list_load_on(connections, per_client, truth, stale, batch)
}

/// [`list_load`] over connections of any list server (several servers, or
/// connections a test made itself).
pub fn list_load_on(
    connections: Vec<ListPricingClient<Channel>>,
    per_client: Option<u64>,
    truth: Arc<Truth>,
    stale: Stale,
    batch: impl Fn(u64, u64) -> Vec<GoodsId> + Send + Sync + 'static,
) -> Load {
    let batch = Arc::new(batch);
    Load::start(connections, per_client, move |mut list, c, i| {
        let (truth, ids) = (Arc::clone(&truth), batch(c, i));
        async move {
            let request = BatchGetPricesRequest { goods_ids: ids.clone(), context: Some(app("user-1")) };
            let reply = list.batch_get_prices(signed(request)).await.map_err(|s| format!("{ids:?}: {s}"))?;
            let reply = reply.into_inner();
            let answered: Vec<GoodsId> = reply.prices.iter().map(|p| p.goods_id).collect();
            if answered != ids || !reply.not_found.is_empty() {
                return Err(format!("asked {ids:?}, priced {answered:?}, not found {:?}", reply.not_found));
            }
            for price in &reply.prices {
                truth.check(price)?;
                if price.stale && matches!(stale, Stale::Refused) {
                    return Err(format!("goods {} answered stale", price.goods_id));
                }
            }
            Ok(reply.prices)
        }
    })
}

/// Batches of `size` consecutive ids of `ids` (whose length `size`
/// divides), spread over the clients.
pub fn rotating(ids: Vec<GoodsId>, size: usize) -> impl Fn(u64, u64) -> Vec<GoodsId> + Send + Sync + 'static {
    move |c, i| {
        let start = ((c * 7 + i) as usize * size) % ids.len();
        ids[start..start + size].to_vec()
    }
}
