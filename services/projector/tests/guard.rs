//! The projector reports every record that breaks a `[guard]` rule of the
//! control file: in the sync's report (also counted and logged), and through
//! the `guard-report` and `rehearse` commands of the binary, run here on
//! MariaDB as an operator would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

mod common;

use std::process::Command;

use common::{config_text, world_with_control};
use pricing_engine::guard::{GuardMode, GuardRule};
use pricing_projector::Progress;
use pricing_record::Clock;
use pricing_store_sql::demo::well_known::{FLASH_SALE_ACTIVITY, FLASH_SALE_GOODS};

/// The demo's flash sale sells 59.90 at 39.90: below an 80% floor.
const GUARD: &str = "version = 1\n[guard]\nmode = 'block'\n[guard.rules.flash_sale]\nfloor_share_basis_points = 8000\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_below_the_floor_is_reported_by_the_projector() {
    let dir = tempfile::tempdir().unwrap();
    let control = dir.path().join("control.toml");
    std::fs::write(&control, GUARD).unwrap();
    let w = world_with_control("proj_guard", 50, &control).await;

    let report = w.projector.full(&pricing_projector::Scope::All, true, &Progress::logs_only()).await.unwrap();
    let breach = report
        .guard_breaches
        .iter()
        .find(|b| b.activity_id == FLASH_SALE_ACTIVITY)
        .unwrap_or_else(|| panic!("the flash sale is reported: {:?}", report.guard_breaches));
    assert_eq!(breach.goods_id, FLASH_SALE_GOODS);
    assert_eq!((breach.rule, breach.mode), (GuardRule::FloorShare, GuardMode::Block));
    assert_eq!(breach.price.to_string(), "39.90");
    // Every breach reported is a real one: at or above the floor is never reported.
    assert!(
        report
            .guard_breaches
            .iter()
            .all(|b| b.price * rust_decimal::Decimal::from(10) < b.original * rust_decimal::Decimal::from(8))
    );

    // The commands over the same source.
    let config = dir.path().join("projector.toml");
    let url = w.projector.config().source.database_url.clone();
    std::fs::write(
        &config,
        format!("{}\n[control]\nfile = {:?}\n", config_text(&url, &w.redis, &w.hbase), control.display().to_string()),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_pricing-projector"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .expect("run pricing-projector");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (code, out) = run(&["guard-report"]);
    assert_eq!(code, Some(1), "a breach exits 1: {out}");
    let line = out.lines().find(|l| l.contains(&format!(" {FLASH_SALE_ACTIVITY} "))).unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("floor_share") && line.contains("39.90") && line.contains("59.90"), "{line}");

    let at = Clock::system().now_ms().to_string();
    let (code, out) = run(&["rehearse", "--at", &at]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("rehearsal at {at} ms")), "{out}");
    assert!(out.contains("guard breaches:") && out.contains("floor_share"), "{out}");
    // Blocked: the flash sale's price is not served, so no answer counts as a flash sale.
    assert!(!out.lines().any(|l| l.starts_with("flash_sale")), "{out}");
}
