//! The freshness probe: how long a committed price change takes to show in
//! a list answer and in a detail answer, and whether any answer was wrong.
//!
//! While a read load runs (pricing-load, a separate process), the probe
//! changes the base price of its own goods through the catalogue writer
//! ([`pricing_store_sql::catalog::Catalog::upsert_goods`]) at a steady
//! rate. After each commit returns it polls the list server
//! (BatchGetPrices of that id) and the detail server (GetGoodsPrice) every
//! `poll` until each answers with the committed version or a newer one;
//! the time from the commit to that answer is the change's freshness.
//! Every answer seen on the way (old versions included) is checked against
//! the engine run on the record of the answer's version, as MySQL held it
//! right after the commit that made it, at the call's send and receive
//! instants (an activity window may close in between): an answer matching
//! neither is a wrong price. Only the probe writes its goods, so the record
//! read after each commit is the record of that version.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pricing_proto::v1::detail_pricing_client::DetailPricingClient;
use pricing_proto::v1::list_pricing_client::ListPricingClient;
use pricing_proto::v1::{
    BatchGetPricesRequest, CallerContext, Channel as WireChannel, GetGoodsPriceRequest, GoodsPrice,
};
use pricing_record::{Channel, Clock, GoodsId, GoodsRecord, GoodsStatus};
use pricing_store_sql::SqlStore;
use pricing_store_sql::catalog::GoodsRow;
use rust_decimal::Decimal;
use serde::Serialize;
use tonic::transport::Channel as Conn;

use crate::target::Target;

/// What the probe does.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// Price changes per second.
    pub rate: u64,
    pub duration: Duration,
    /// How many goods the probe changes in turn (the first on-sale ids at
    /// or after `first_id`).
    pub goods: usize,
    pub first_id: GoodsId,
    /// Pause between two polls of one change.
    pub poll: Duration,
    /// A change not seen within this long counts as missed.
    pub give_up: Duration,
}

/// Freshness of one path, in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PathFigures {
    pub seen: usize,
    pub missed: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ProbeReport {
    pub changes: usize,
    pub list: PathFigures,
    pub detail: PathFigures,
    /// Answers checked against the engine.
    pub answers_checked: u64,
    /// Answers matching the engine on the record of their version at
    /// neither instant.
    pub wrong: u64,
    /// Answers whose version the probe never saw committed (cannot be checked).
    pub unknown_version: u64,
    /// A few wrong answers, described.
    pub wrong_samples: Vec<String>,
    /// Commit latency of the catalogue writer (ms): p50 and max.
    pub commit_p50_ms: f64,
    pub commit_max_ms: f64,
}

type Records = Arc<Mutex<HashMap<(GoodsId, u64), Arc<GoodsRecord>>>>;

#[derive(Default)]
struct Checks {
    checked: u64,
    wrong: u64,
    unknown: u64,
    samples: Vec<String>,
}

/// The caller every probe call uses (and the engine check assumes).
fn wire_context() -> CallerContext {
    CallerContext { channel: WireChannel::App as i32, pin: "freshness-probe".into(), ..Default::default() }
}

fn engine_context() -> pricing_engine::CallerContext {
    pricing_engine::CallerContext {
        pin: "freshness-probe".into(),
        store_id: None,
        city_id: None,
        channel: Channel::App,
        new_user: false,
        member_level: 0,
    }
}

/// Runs the probe against running servers and a database the projector follows.
pub async fn run(database_url: &str, list: &str, detail: &str, options: &ProbeOptions) -> anyhow::Result<ProbeReport> {
    let store = SqlStore::connect(database_url).await?;
    let catalog = store.catalog();
    let records: Records = Arc::new(Mutex::new(HashMap::new()));
    let mut ids = Vec::new();
    let mut next = options.first_id;
    while ids.len() < options.goods && next < options.first_id + 100_000 {
        let batch: Vec<GoodsId> = (next..next + 200).collect();
        next += 200;
        let mut found = pricing_store::RecordStore::fetch(&store, &batch).await?;
        found.sort_by_key(|r| r.goods_id);
        for record in found {
            if ids.len() < options.goods && !record.is_tombstone() && record.status == GoodsStatus::OnSale {
                ids.push(record.goods_id);
                lock(&records).insert((record.goods_id, record.version), Arc::new((*record).clone()));
            }
        }
    }
    anyhow::ensure!(!ids.is_empty(), "no goods on sale at or after id {}", options.first_id);

    let list = ListPricingClient::new(Conn::from_shared(Target::parse(list)?.uri())?.connect().await?);
    let detail = DetailPricingClient::new(Conn::from_shared(Target::parse(detail)?.uri())?.connect().await?);
    let checks = Arc::new(Mutex::new(Checks::default()));

    let total = (options.rate as f64 * options.duration.as_secs_f64()).round() as usize;
    let interval = Duration::from_nanos(1_000_000_000 / options.rate.max(1));
    let start = tokio::time::Instant::now();
    let mut watches = Vec::with_capacity(total);
    let mut commits = Vec::with_capacity(total);
    for i in 0..total {
        tokio::time::sleep_until(start + interval * i as u32).await;
        let id = ids[i % ids.len()];
        let latest = lock(&records)
            .iter()
            .filter(|((g, _), _)| *g == id)
            .max_by_key(|((_, v), _)| *v)
            .map(|(_, r)| Arc::clone(r))
            .ok_or_else(|| anyhow::anyhow!("no record of goods {id}"))?;
        // Alternate between two prices a cent apart, plus a step per round,
        // so every change is a different price.
        let cents = Decimal::new(1 + (i / ids.len()) as i64 % 50, 2);
        let base = Decimal::from(10 + (id % 90)) + cents;
        let row = GoodsRow {
            id,
            store_id: latest.store_id,
            base_price: base,
            currency: latest.currency.clone(),
            status: GoodsStatus::OnSale,
        };
        let before = Instant::now();
        let version = catalog.upsert_goods(&row).await?;
        let committed = Instant::now();
        commits.push(committed - before);
        let record = pricing_store::RecordStore::fetch(&store, &[id])
            .await?
            .pop()
            .ok_or_else(|| anyhow::anyhow!("goods {id} vanished"))?;
        anyhow::ensure!(
            record.version == version,
            "goods {id} changed by someone else (version {} after writing {version})",
            record.version
        );
        lock(&records).insert((id, version), Arc::new((*record).clone()));
        let watch = Watch {
            id,
            version,
            committed,
            list: list.clone(),
            detail: detail.clone(),
            records: Arc::clone(&records),
            checks: Arc::clone(&checks),
            poll: options.poll,
            give_up: options.give_up,
        };
        watches.push(tokio::spawn(watch.run()));
    }
    let mut list_ms = Vec::new();
    let mut detail_ms = Vec::new();
    let mut report = ProbeReport { changes: total, ..ProbeReport::default() };
    for watch in watches {
        let (l, d) = watch.await?;
        match l {
            Some(t) => list_ms.push(t),
            None => report.list.missed += 1,
        }
        match d {
            Some(t) => detail_ms.push(t),
            None => report.detail.missed += 1,
        }
    }
    report.list = figures(&mut list_ms, report.list.missed);
    report.detail = figures(&mut detail_ms, report.detail.missed);
    let mut commit_ms: Vec<f64> = commits.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    let c = figures(&mut commit_ms, 0);
    (report.commit_p50_ms, report.commit_max_ms) = (c.p50_ms, c.max_ms);
    let checks = lock(&checks);
    report.answers_checked = checks.checked;
    report.wrong = checks.wrong;
    report.unknown_version = checks.unknown;
    report.wrong_samples = checks.samples.clone();
    Ok(report)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Nearest-rank percentiles of `ms` (sorted here).
fn figures(ms: &mut [f64], missed: usize) -> PathFigures {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| {
        if ms.is_empty() {
            return 0.0;
        }
        let rank = ((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len());
        ms[rank - 1]
    };
    PathFigures {
        seen: ms.len(),
        missed,
        p50_ms: at(0.50),
        p90_ms: at(0.90),
        p99_ms: at(0.99),
        max_ms: ms.last().copied().unwrap_or(0.0),
    }
}

struct Watch {
    id: GoodsId,
    version: u64,
    committed: Instant,
    list: ListPricingClient<Conn>,
    detail: DetailPricingClient<Conn>,
    records: Records,
    checks: Arc<Mutex<Checks>>,
    poll: Duration,
    give_up: Duration,
}

impl Watch {
    /// Milliseconds from the commit to the first list and detail answer of
    /// this version or newer; `None` when not seen within `give_up`.
    async fn run(mut self) -> (Option<f64>, Option<f64>) {
        let (mut list_at, mut detail_at) = (None, None);
        let clock = Clock::system();
        while (list_at.is_none() || detail_at.is_none()) && self.committed.elapsed() < self.give_up {
            if list_at.is_none() {
                let sent = clock.now_ms();
                let request = BatchGetPricesRequest { goods_ids: vec![self.id], context: Some(wire_context()) };
                if let Ok(reply) = self.list.batch_get_prices(request).await {
                    let at = self.committed.elapsed();
                    if let Some(price) = reply.into_inner().prices.into_iter().next() {
                        self.check("list", &price, sent, clock.now_ms());
                        if price.version >= self.version {
                            list_at = Some(at.as_secs_f64() * 1e3);
                        }
                    }
                }
            }
            if detail_at.is_none() {
                let sent = clock.now_ms();
                let request = GetGoodsPriceRequest { goods_id: self.id, context: Some(wire_context()) };
                if let Ok(reply) = self.detail.get_goods_price(request).await {
                    let at = self.committed.elapsed();
                    if let Some(price) = reply.into_inner().price {
                        self.check("detail", &price, sent, clock.now_ms());
                        if price.version >= self.version {
                            detail_at = Some(at.as_secs_f64() * 1e3);
                        }
                    }
                }
            }
            if list_at.is_none() || detail_at.is_none() {
                tokio::time::sleep(self.poll).await;
            }
        }
        (list_at, detail_at)
    }

    /// Checks one answer against the engine on the record of its version.
    fn check(&self, path: &str, price: &GoodsPrice, sent_ms: i64, received_ms: i64) {
        let record = lock(&self.records).get(&(self.id, price.version)).cloned();
        let mut checks = lock(&self.checks);
        let Some(record) = record else {
            checks.unknown += 1;
            return;
        };
        checks.checked += 1;
        let ctx = engine_context();
        let matches = [sent_ms, received_ms].into_iter().any(|now| {
            pricing_engine::best_price(&record, &ctx, now, false).is_ok_and(|quote| {
                let want = pricing_proto::convert::goods_price(&quote, record.version, price.tier(), price.stale);
                want.original_price == price.original_price
                    && want.activity_price == price.activity_price
                    && want.price_beyond_limit == price.price_beyond_limit
                    && want.currency == price.currency
            })
        });
        if !matches {
            checks.wrong += 1;
            if checks.samples.len() < 10 {
                checks.samples.push(format!(
                    "{path} goods {} version {}: original {} activity {} (not what the engine gives on that record)",
                    self.id, price.version, price.original_price, price.activity_price
                ));
            }
        }
    }
}

/// The report as a table.
pub fn table(report: &ProbeReport, options: &ProbeOptions) -> String {
    let mut out = format!(
        "freshness probe: {} changes ({}/s for {:?}, {} goods, poll {:?})\n",
        report.changes, options.rate, options.duration, options.goods, options.poll
    );
    out.push_str("path     seen  missed    p50 ms    p90 ms    p99 ms    max ms\n");
    for (name, f) in [("list", &report.list), ("detail", &report.detail)] {
        out.push_str(&format!(
            "{name:<7}{:>6}{:>8}{:>10.1}{:>10.1}{:>10.1}{:>10.1}\n",
            f.seen, f.missed, f.p50_ms, f.p90_ms, f.p99_ms, f.max_ms
        ));
    }
    out.push_str(&format!(
        "answers checked against the engine: {}, wrong: {}, of unknown version: {}\n",
        report.answers_checked, report.wrong, report.unknown_version
    ));
    out.push_str(&format!(
        "catalogue commit: p50 {:.1} ms, max {:.1} ms\n",
        report.commit_p50_ms, report.commit_max_ms
    ));
    for sample in &report.wrong_samples {
        out.push_str(&format!("  wrong: {sample}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut ms: Vec<f64> = (1..=100).map(f64::from).collect();
        let f = figures(&mut ms, 2);
        assert_eq!((f.p50_ms, f.p99_ms, f.max_ms, f.seen, f.missed), (50.0, 99.0, 100.0, 100, 2));
        assert_eq!(figures(&mut [], 0).p99_ms, 0.0);
    }
}
