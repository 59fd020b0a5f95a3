//! No panel or alert points at a metric that does not exist: the chart is
//! rendered by real Helm (dashboard ConfigMap and PrometheusRule on), every
//! `pricing_*` metric name is taken from the dashboard's queries and the
//! alert rules, and each must be in the /metrics output of a running list
//! server and detail server.
//!
//! Most metrics appear only once their event happened (a counter is
//! registered by its first increment), so the test makes each happen, in one
//! process: both servers on the embedded demo (a guard in alert mode, shadow
//! verification of every answer and a record changed under the cache: a
//! mismatch), a list server over two Redis and two HBase behind a control
//! file (a corrupt record, a switch flip, load shedding, a Redis killed:
//! failover and an open breaker, then every store down: stale answers), and
//! a projector over MariaDB and the same stores (a full sync, an incremental
//! pass: lag and queue depth, a write to the dead Redis: a write failure).
//! The recorder is process-wide, so the servers' /metrics shows them all.
//! Names not from the service (Prometheus' `up`, kube-state-metrics) are not
//! `pricing_*` and not checked.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use pricing_projector::{Progress, Projector, ProjectorConfig, Scope};
use pricing_proto::v1::{BatchGetPricesRequest, GetGoodsPriceRequest, PreviewOrderRequest};
use pricing_record::Fen;
use pricing_store::Cluster;
use pricing_store_sql::GoodsRow;
use pricing_store_sql::demo::well_known::{FLASH_SALE_GOODS, PLAIN_GOODS};
use pricing_testkit::net::{eventually, free_port};
use pricing_tests::fault_stack::{ListFaultStack, signed};
use pricing_tests::load::goods;
use pricing_tests::real_stack::counter;
use pricing_tests::{Stack, StackConfig, app, lines};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(30);

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Every `pricing_*` name in the rendered dashboard and alert rules.
fn chart_metric_names() -> BTreeSet<String> {
    let chart = workspace().join("helm/pricing");
    let output = Command::new("python3")
        .arg(workspace().join("helm/tools/helm_chart.py"))
        .args(["render", &chart.display().to_string()])
        .args(["--set-json", "metrics.dashboard.enabled=true", "--set-json", "metrics.prometheusRule.enabled=true"])
        .output()
        .expect("run python3 helm/tools/helm_chart.py");
    assert_ne!(output.status.code(), Some(2), "helm-python-sdk is not installed (tests/run.sh installs it)");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    let mut names = BTreeSet::new();
    let (mut dashboard, mut rules) = (false, false);
    for line in text.lines() {
        let object = line.split('\t').next().unwrap_or_default();
        let is_dashboard = object.starts_with("ConfigMap/") && object.ends_with("-dashboard");
        let is_rules = object.starts_with("PrometheusRule/");
        dashboard |= is_dashboard;
        rules |= is_rules;
        if !(is_dashboard || is_rules) {
            continue;
        }
        let bytes = line.as_bytes();
        let mut i = 0;
        while let Some(at) = line[i..].find("pricing_") {
            let start = i + at;
            let end = start
                + line[start..]
                    .bytes()
                    .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
                    .count();
            let before = start.checked_sub(1).map(|j| bytes[j]);
            if !before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_') {
                names.insert(line[start..end].to_owned());
            }
            i = end;
        }
    }
    assert!(dashboard && rules, "the dashboard ConfigMap and the PrometheusRule are rendered");
    names
}

/// GET /metrics over plain HTTP/1.1.
async fn scrape(addr: SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect to /metrics");
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).await.unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{}", body.lines().next().unwrap_or_default());
    body
}

/// The metric names of samples in an exposition.
fn exposed(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| l.starts_with("pricing_"))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

async fn wait_for(name: &str, labels: &[(&str, &str)]) {
    eventually(name, WAIT, || async { (counter(name, labels) > 0).then_some(()) }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_of_the_dashboard_and_alerts_is_served() {
    let wanted = chart_metric_names();
    assert!(wanted.contains("pricing_guard_breaches_total") && wanted.contains("pricing_projector_lag_seconds"));
    pricing_telemetry::prometheus();

    // 1. Both servers on the embedded demo, each with its own /metrics.
    let control = pricing_control::ControlConfig::parse(
        "version = 1\n[shadow]\nsample_basis_points = 10000\n[guard]\nmode = 'alert'\n[guard.rules.flash_sale]\nmin_price = '50.00'\n",
    )
    .unwrap();
    let mut config = StackConfig { control: Some(control), shadow_truth: true, ..StackConfig::default() };
    let (list_metrics, detail_metrics) =
        (SocketAddr::from(([127, 0, 0, 1], free_port())), SocketAddr::from(([127, 0, 0, 1], free_port())));
    config.list.server.metrics_listen = Some(list_metrics);
    config.detail.server.metrics_listen = Some(detail_metrics);
    let stack = Stack::embedded_with(config).await;
    let mut list = stack.list().await;
    let ids = vec![FLASH_SALE_GOODS, PLAIN_GOODS];
    list.batch_get_prices(BatchGetPricesRequest { goods_ids: ids.clone(), context: Some(app("catalogue")) })
        .await
        .unwrap();
    let mut detail = stack.detail().await;
    detail
        .get_goods_price(GetGoodsPriceRequest { goods_id: FLASH_SALE_GOODS, context: Some(app("catalogue")) })
        .await
        .unwrap();
    detail
        .preview_order(PreviewOrderRequest {
            lines: lines(&[(FLASH_SALE_GOODS, 1)]),
            context: Some(app("catalogue")),
            ..Default::default()
        })
        .await
        .unwrap();
    // A price changed under the list server's cache: its next answer is the
    // cached one, which the shadow check finds wrong.
    let plain = stack.sql.load(&[PLAIN_GOODS]).await.unwrap().remove(0);
    let changed = GoodsRow {
        id: PLAIN_GOODS,
        store_id: plain.store_id,
        base_price: plain.base_price + Fen::ONE.to_decimal().unwrap(),
        currency: plain.currency.clone(),
        status: plain.status,
    };
    stack.sql.catalog().upsert_goods(&changed).await.unwrap();
    list.batch_get_prices(BatchGetPricesRequest { goods_ids: ids, context: Some(app("catalogue")) }).await.unwrap();
    wait_for("pricing_shadow_mismatch_total", &[]).await;

    // 2. The list server over real stores, behind a control file.
    let mut faults = ListFaultStack::start(|c| c.list.cache.stale_grace = Duration::from_secs(60)).await;
    let records = goods(1..=20);
    faults.seed(&records).await;
    let mut fault_list = faults.list().await;
    let ask = |ids: Vec<u64>| signed(BatchGetPricesRequest { goods_ids: ids, context: Some(app("catalogue")) });
    fault_list.batch_get_prices(ask((1..=10).collect())).await.unwrap();
    for cluster in [Cluster::A, Cluster::B] {
        faults.redis(cluster).command(&["SET", &pricing_record::keys::redis_key(15), "not a record"]);
    }
    let _ = fault_list.batch_get_prices(ask(vec![15])).await;
    wait_for("pricing_store_corrupt_total", &[]).await;
    faults.rewrite_control(|c| c.list.cache.negative_ttl = Duration::from_millis(2));
    wait_for("pricing_switch_changes_total", &[]).await;
    faults.rewrite_control(|c| {
        c.limits.rate_per_second = Some(1);
        c.limits.burst = Some(1);
    });
    eventually("calls shed", WAIT, || {
        let mut client = fault_list.clone();
        async move {
            let _ = client.batch_get_prices(ask(vec![1])).await;
            (counter("pricing_shed_total", &[]) > 0).then_some(())
        }
    })
    .await;
    faults.rewrite_control(|c| {
        c.limits.rate_per_second = None;
        c.limits.burst = None;
    });

    // 3. The projector over MariaDB and the same stores, before any goes down.
    let url = pricing_testkit::mysql::fresh_database("metrics_catalogue").await;
    let text = format!(
        "version = 1\n[source]\ndatabase_url = \"{url}\"\n[redis]\na = {{ urls = [\"{ra}\"] }}\nb = {{ urls = [\"{rb}\"] }}\n[hbase]\na = {{ addresses = [\"{ha}\"] }}\nb = {{ addresses = [\"{hb}\"] }}\n[retry]\nattempts = 1\nbackoff_ms = 1\nmax_backoff_ms = 1\n",
        ra = faults.redis(Cluster::A).url(),
        rb = faults.redis(Cluster::B).url(),
        ha = faults.hbase(Cluster::A).address(),
        hb = faults.hbase(Cluster::B).address(),
    );
    let projector = Projector::connect(ProjectorConfig::parse(&text).unwrap()).await.unwrap();
    pricing_store_sql::demo::seed(
        projector.source(),
        pricing_store_sql::DemoOptions { goods: 30, ..Default::default() },
    )
    .await
    .unwrap();
    projector.full(&Scope::All, true, &Progress::logs_only()).await.unwrap();
    projector.incremental_pass().await.unwrap();

    // 4. Redis A dies: failover, its breaker opens, the projector's write fails.
    tokio::task::block_in_place(|| faults.redis_mut(Cluster::A).kill());
    eventually("a failover and an open breaker", WAIT, || {
        let mut client = fault_list.clone();
        async move {
            let _ = client.batch_get_prices(ask((1..=10).collect())).await;
            (counter("pricing_dual_failover_total", &[]) > 0
                && pricing_telemetry::prometheus().render().contains("pricing_breaker_state{"))
            .then_some(())
        }
    })
    .await;
    projector.sync_goods(&[1], &Scope::All).await.unwrap();
    wait_for("pricing_projector_write_failures_total", &[]).await;

    // 5. Every store down: the cached records are served stale.
    tokio::task::block_in_place(|| faults.redis_mut(Cluster::B).kill());
    faults.stop_hbase(Cluster::A);
    faults.stop_hbase(Cluster::B);
    eventually("stale answers", WAIT, || {
        let mut client = fault_list.clone();
        async move {
            let _ = client.batch_get_prices(ask((1..=10).collect())).await;
            (counter("pricing_chain_stale_served_total", &[]) > 0).then_some(())
        }
    })
    .await;

    // The servers' own /metrics.
    let mut served = exposed(&scrape(list_metrics).await);
    served.extend(exposed(&scrape(detail_metrics).await));
    let missing: Vec<&String> = wanted.iter().filter(|name| !served.contains(*name)).collect();
    for name in &missing {
        println!("metric used by the dashboard or an alert but not served: {name}");
    }
    assert!(missing.is_empty(), "the dashboard or the alerts use metrics no server serves: {missing:?}");

    projector.source().close().await;
    faults.stop().await;
    stack.stop().await;
}
