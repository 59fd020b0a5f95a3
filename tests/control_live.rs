//! Traffic protection and the live switch board through the servers'
//! production `serve` path: a watched control file, caller accounts and
//! quotas, hot keys, canary variants, a switch flipped by rewriting the
//! file under load, and a malformed file that keeps the last good config.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pricing_detail::DetailConfig;
use pricing_list::ListConfig;
use pricing_proto::v1::detail_pricing_client::DetailPricingClient;
use pricing_proto::v1::list_pricing_client::ListPricingClient;
use pricing_proto::v1::{self, BatchGetPricesRequest, CallerContext, GetGoodsPriceRequest};
use pricing_store_sql::source::SourceSettings;
use pricing_testkit::net::{Shutdown, eventually};
use pricing_tests::{app, channel, signed_as};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::Code;
use tonic::transport::Channel;

const WEB_TOKEN: &str = "list-web-0123456789abcdef";
const SLOW_TOKEN: &str = "marketing-abcdef0123456789";

fn control(bypass: bool, extra: &str) -> String {
    format!(
        r#"
version = 1
[detail]
redis_bypass = {bypass}
[callers.list-web]
token = "{WEB_TOKEN}"
rate_per_second = 100000
max_concurrent = 1000
[callers.marketing]
token = "{SLOW_TOKEN}"
rate_per_second = 1
burst = 3
max_concurrent = 10
[hot_keys]
goods_threshold = 40
window_ms = 60000
[canary]
default_variant = "stable"
[[canary.rules]]
variant = "qa"
pins = ["qa-alice"]
[[canary.rules]]
variant = "qa"
cities = [77]
[canary.variants.qa]
detail_redis_bypass = true
{extra}
"#
    )
}

struct Stack {
    list: Channel,
    detail: Channel,
    control_path: PathBuf,
    stop: Shutdown,
    _dir: tempfile::TempDir,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop.stop();
    }
}

async fn start(control_text: &str) -> Stack {
    let dir = tempfile::tempdir().unwrap();
    let control_path = dir.path().join("control.toml");
    std::fs::write(&control_path, control_text).unwrap();
    let source =
        SourceSettings { embedded_path: dir.path().join("pricing.db"), demo_goods: 200, ..SourceSettings::default() };
    // Seed once before both servers open the file.
    pricing_store_sql::source::open(&source).await.unwrap().close().await;

    let stop = Shutdown::new();
    let mut list_config = ListConfig::default();
    list_config.server.metrics_listen = None;
    list_config.server.control_file = Some(control_path.clone());
    list_config.server.control_poll_ms = 100;
    list_config.source = source.clone();
    let mut detail_config = DetailConfig::default();
    detail_config.server.metrics_listen = None;
    detail_config.server.control_file = Some(control_path.clone());
    detail_config.server.control_poll_ms = 100;
    detail_config.source = source;

    let list_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let detail_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (list_addr, detail_addr) = (list_listener.local_addr().unwrap(), detail_listener.local_addr().unwrap());
    tokio::spawn(pricing_list::serve(list_listener, list_config, stop.signal()));
    tokio::spawn(pricing_detail::serve(detail_listener, detail_config, stop.signal()));
    Stack { list: channel(list_addr).await, detail: channel(detail_addr).await, control_path, stop, _dir: dir }
}

async fn batch(
    list: &Channel,
    ids: Vec<u64>,
    caller: &str,
    token: &str,
) -> Result<tonic::Response<v1::BatchGetPricesResponse>, tonic::Status> {
    ListPricingClient::new(list.clone())
        .batch_get_prices(signed_as(BatchGetPricesRequest { goods_ids: ids, context: Some(app("u")) }, caller, token))
        .await
}

#[tokio::test]
async fn callers_are_authenticated_and_held_to_their_own_quota() {
    let stack = start(&control(false, "")).await;
    let unknown = batch(&stack.list, vec![1], "nobody", "x").await.unwrap_err();
    assert_eq!(unknown.code(), Code::Unauthenticated);
    let wrong = batch(&stack.list, vec![1], "list-web", "wrong-token-0000000000").await.unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    let anonymous = ListPricingClient::new(stack.list.clone())
        .batch_get_prices(BatchGetPricesRequest { goods_ids: vec![1], context: Some(app("u")) })
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);

    // marketing: 1/s with a burst of 3; the fourth call in a row is refused.
    let mut refused = None;
    for _ in 0..6 {
        if let Err(status) = batch(&stack.list, vec![2], "marketing", SLOW_TOKEN).await {
            refused = Some(status);
            break;
        }
    }
    let refused = refused.expect("marketing goes over its quota");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    // Another caller is unaffected.
    for _ in 0..20 {
        batch(&stack.list, vec![2], "list-web", WEB_TOKEN).await.expect("list-web has its own quota");
    }
}

#[tokio::test]
async fn a_hot_goods_id_is_limited_while_others_pass() {
    let stack = start(&control(false, "")).await;
    let mut limited = None;
    for _ in 0..60 {
        if let Err(status) = batch(&stack.list, vec![3], "list-web", WEB_TOKEN).await {
            limited = Some(status);
            break;
        }
    }
    assert_eq!(limited.expect("goods 3 becomes hot").code(), Code::ResourceExhausted);
    let other = batch(&stack.list, vec![5, 6], "list-web", WEB_TOKEN).await.expect("other goods pass");
    assert_eq!(other.into_inner().prices.len(), 2);
    // A batch naming the hot id among others: the others are priced, the hot one is named.
    let mixed = batch(&stack.list, vec![5, 3, 6], "list-web", WEB_TOKEN).await.expect("the cold ids are answered");
    let mixed = mixed.into_inner();
    assert_eq!(mixed.prices.iter().map(|p| p.goods_id).collect::<Vec<_>>(), vec![5, 6]);
    assert_eq!(mixed.limited, vec![3]);
    assert!(mixed.not_found.is_empty());
    let retry = mixed.limited_retry_after_ms;
    assert!(retry > 0 && retry <= 60_000, "retry hint {retry} ms within the 60 s window");
}

#[tokio::test]
async fn canary_variants_route_by_pin_and_city_and_are_visible() {
    let stack = start(&control(false, "")).await;
    let mut detail = DetailPricingClient::new(stack.detail.clone());
    let ask =
        |ctx: CallerContext| signed_as(GetGoodsPriceRequest { goods_id: 1, context: Some(ctx) }, "list-web", WEB_TOKEN);
    let variant = |r: &tonic::Response<v1::GetGoodsPriceResponse>| {
        r.metadata().get("x-pricing-variant").and_then(|v| v.to_str().ok()).map(str::to_owned)
    };
    let stable = detail.get_goods_price(ask(app("someone"))).await.unwrap();
    assert_eq!(variant(&stable).as_deref(), Some("stable"));
    let by_pin = detail.get_goods_price(ask(app("qa-alice"))).await.unwrap();
    assert_eq!(variant(&by_pin).as_deref(), Some("qa"));
    let by_city = detail.get_goods_price(ask(CallerContext { city_id: 77, ..app("someone") })).await.unwrap();
    assert_eq!(variant(&by_city).as_deref(), Some("qa"));
    // The qa variant reads MySQL directly (its override of redis_bypass);
    // with no Redis configured both read the database: the price agrees.
    assert_eq!(by_pin.into_inner().price.unwrap().activity_price, stable.into_inner().price.unwrap().activity_price);
}

fn rewrite(path: &Path, text: &str) {
    // Write then rename, as a ConfigMap update swaps the file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test]
async fn a_rewritten_control_file_takes_effect_under_load_without_a_failed_call() {
    let stack = start(&control(false, "")).await;
    let answered = Arc::new(AtomicU64::new(0));
    let (done_tx, done_rx) = watch::channel(false);
    let mut workers = Vec::new();
    for w in 0..3u64 {
        let list = stack.list.clone();
        let done = done_rx.clone();
        let answered = Arc::clone(&answered);
        workers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !*done.borrow() {
                let id = 10 + (i * 3 + w) % 150;
                batch(&list, vec![id], "list-web", WEB_TOKEN).await.expect("no call fails during a reload");
                answered.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    eventually("load before the change", Duration::from_secs(10), || {
        let n = answered.load(Ordering::Relaxed);
        async move { (n > 30).then_some(()) }
    })
    .await;

    // A new caller account appears by rewriting the file: accepted within a
    // second (the watcher re-reads every 100 ms), no restart.
    let added =
        "[callers.newcomer]\ntoken = \"newcomer-0123456789abcdef\"\nrate_per_second = 1000\nmax_concurrent = 10\n";
    rewrite(&stack.control_path, &control(true, added));
    eventually("the new control file in force", Duration::from_secs(1), || {
        let list = stack.list.clone();
        async move { batch(&list, vec![1], "newcomer", "newcomer-0123456789abcdef").await.ok().map(|_| ()) }
    })
    .await;

    // A malformed file is refused (counted); the last good one keeps working.
    rewrite(&stack.control_path, "version = 1\n[callers.broken\n");
    eventually("the malformed file to be refused", Duration::from_secs(10), || async {
        refused_reloads().then_some(())
    })
    .await;
    let before = answered.load(Ordering::Relaxed);
    eventually("calls go on under the last good file", Duration::from_secs(10), || {
        let n = answered.load(Ordering::Relaxed);
        async move { (n > before + 30).then_some(()) }
    })
    .await;
    batch(&stack.list, vec![1], "newcomer", "newcomer-0123456789abcdef").await.expect("last good config kept");

    done_tx.send(true).unwrap();
    for w in workers {
        w.await.expect("no worker saw a failed call");
    }
}

/// Whether the process counted a control reload that was neither applied nor unchanged.
fn refused_reloads() -> bool {
    pricing_telemetry::prometheus().render().lines().any(|l| {
        l.starts_with("pricing_control_reload_total") && !l.contains("\"applied\"") && !l.contains("\"unchanged\"")
    })
}
