//! The built pricectl against a list and a detail server started the way
//! their binaries start them (`serve` with a config, here with a control
//! file that requires caller accounts): a refusal is one line and exit 1
//! whatever RUST_BACKTRACE says, `health` reports both servers and fails
//! when they are gone, `config` shows the live control view with the
//! caller's token redacted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::Duration;

use pricing_testkit::net::{Shutdown, eventually_blocking, free_port};

const TOKEN: &str = "list-web-0123456789abcdef-secret";

fn pricectl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pricectl"))
        .args(args)
        .env("RUST_BACKTRACE", "full")
        .output()
        .expect("run pricectl")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs pricectl off the runtime's threads (it blocks until it exits).
async fn run(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || pricectl(&args.iter().map(String::as_str).collect::<Vec<_>>()))
        .await
        .expect("pricectl thread")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_one_line_and_health_and_config_show_the_live_servers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let control = dir.path().join("control.toml");
    std::fs::write(
        &control,
        format!("version = 1\n\n[callers.list-web]\ntoken = \"{TOKEN}\"\nrate_per_second = 100\nmax_concurrent = 10\n"),
    )
    .expect("write the control file");
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));

    let mut list = pricing_list::ListConfig::default();
    list.source.embedded_path = dir.path().join("pricing.db");
    list.source.demo_goods = 200;
    list.server.metrics_listen = Some(metrics);
    list.server.control_file = Some(control.clone());
    let mut detail = pricing_detail::DetailConfig::default();
    detail.source.embedded_path = dir.path().join("pricing.db");
    detail.source.demo_goods = 200;
    detail.server.metrics_listen = None;
    detail.server.control_file = Some(control);
    detail.checkout.quote_secret = "test-secret".into();

    let stop = Shutdown::new();
    let list_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let detail_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let list_url = format!("http://{}", list_listener.local_addr().expect("addr"));
    let detail_url = format!("http://{}", detail_listener.local_addr().expect("addr"));
    // One after the other: both open (and on first start seed) the same file.
    let list_task = tokio::spawn(pricing_list::serve(list_listener, list, stop.signal()));
    let admin = metrics.to_string();
    let view = {
        let admin = admin.clone();
        tokio::task::spawn_blocking(move || {
            eventually_blocking("the list server's /config", Duration::from_secs(60), || {
                let out = pricectl(&["config", "--admin", &admin]);
                out.status.success().then(|| text(&out.stdout))
            })
        })
        .await
        .expect("pricectl config")
    };
    let detail_task = tokio::spawn(pricing_detail::serve(detail_listener, detail, stop.signal()));

    // The live control view: the caller is there, its token is not.
    let json: serde_json::Value = serde_json::from_str(&view).expect("config prints JSON");
    assert_eq!(json["config"]["callers"]["list-web"]["token"], "<redacted>", "{view}");
    assert!(!view.contains(TOKEN), "the token is shown:\n{view}");

    let targets = |args: &[&str]| -> Vec<String> {
        ["--list", &list_url, "--detail", &detail_url].iter().chain(args).map(|s| (*s).to_owned()).collect()
    };
    let health = tokio::task::spawn_blocking({
        let args = targets(&["health"]);
        move || {
            eventually_blocking("both servers to serve", Duration::from_secs(60), || {
                let out = pricectl(&args.iter().map(String::as_str).collect::<Vec<_>>());
                out.status.success().then(|| text(&out.stdout))
            })
        }
    })
    .await
    .expect("pricectl health");
    assert_eq!(health.lines().count(), 2, "{health}");
    assert!(health.lines().all(|l| l.ends_with(" SERVING")), "{health}");

    // Refusals: one line each, exit 1, no backtrace (RUST_BACKTRACE=full).
    let out = run(targets(&["--caller", "list-web", "--token", TOKEN, "prices", "7", "0"])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "pricectl: INVALID_ARGUMENT goods_ids[1]: must not be 0\n");
    let out = run(targets(&["--caller", "list-web", "--token", "wrong-token-0123456789", "prices", "7"])).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("pricectl: UNAUTHENTICATED ") && stderr.lines().count() == 1, "{stderr}");
    let out = run(targets(&["--caller", "list-web", "--token", TOKEN, "goods", "0"])).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr).lines().count(), 1, "{}", text(&out.stderr));
    let out = run(targets(&["--caller", "list-web", "--token", TOKEN, "prices", "7"])).await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    // `canary` reads the live server's /metrics: the answered call under its
    // variant (the default, stable), the calls refused before the canary
    // choice (validation, auth) under none.
    let args = ["canary", "--metrics", &admin, "--method", "BatchGetPrices", "--json"];
    let out = run(args.iter().map(|s| (*s).to_owned()).collect()).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_str(&text(&out.stdout)).expect("canary --json prints JSON");
    assert!(report["stable"]["calls"].as_u64() >= Some(1), "{report}");
    assert_eq!(report["stable"]["errors"], 0, "{report}");
    assert!(report["stable"]["p99_seconds"].as_f64().is_some(), "{report}");
    assert!(report["stable"]["tier_percent"].as_object().is_some_and(|t| !t.is_empty()), "{report}");
    assert!(report["none"]["errors"].as_u64() >= Some(2), "{report}");
    let out = run(vec!["canary".into(), "--metrics".into(), admin.clone()]).await;
    let table = text(&out.stdout);
    assert!(table.starts_with("variant ") && table.lines().any(|l| l.starts_with("stable ")), "{table}");

    // Gone: health fails, naming both; a call cannot connect (exit 2, one line).
    stop.stop();
    list_task.await.expect("list task").expect("list server");
    detail_task.await.expect("detail task").expect("detail server");
    let out = run(targets(&["health"])).await;
    assert_eq!(out.status.code(), Some(1));
    let health = text(&out.stdout);
    assert_eq!(health.lines().filter(|l| l.contains(" UNREACHABLE ")).count(), 2, "{health}");
    let out = run(targets(&["prices", "7"])).await;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(text(&out.stderr).lines().count(), 1, "{}", text(&out.stderr));
}
