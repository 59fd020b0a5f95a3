//! Records projected per second by a full sync into two Redis servers and two
//! HBase Thrift test servers, and the peak memory of the projecting process.
//!
//! ```sh
//! cargo build --release -p pricing-store-hbase --features testsuite --bin hbase-thrift-test-server
//! cargo bench -p pricing-projector --bench full_sync -- --goods 100000
//! ```
//!
//! The source is an SQLite file (the same `SqlStore` code path as MariaDB)
//! holding `--goods` goods with 3 activities each, inserted directly in
//! large batches; with `--mysql URL` (an empty database on a MariaDB or
//! MySQL server) it is that database instead:
//!
//! ```sh
//! cargo bench -p pricing-projector --bench full_sync -- --goods 1000000 --mysql mysql://root@127.0.0.1:PORT/bench
//! ```
//! The HBase test servers run as child processes when the
//! test server binary is built (so their data does not count in this
//! process's memory), in process otherwise; the output says which.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pricing_projector::{Progress, Projector, ProjectorConfig, Scope};
use pricing_store_hbase::{HbaseTestServer, Transport};
use pricing_store_sql::SqlStore;
use pricing_testkit::net::{accepts, eventually_blocking, free_port};
use pricing_testkit::redis::RedisServer;

struct Args {
    /// `--seed-into PATH`: only seed that file and exit (run as a child, so
    /// that the syncing process never holds the seeding's memory).
    seed_into: Option<String>,
    /// `--mysql URL`: the source is this (empty) MySQL/MariaDB database.
    mysql: Option<String>,
    goods: u64,
    page_size: u32,
    concurrency: usize,
}

fn args() -> Args {
    let mut out = Args { seed_into: None, mysql: None, goods: 100_000, page_size: 1_000, concurrency: 4 };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().and_then(|v| v.parse::<u64>().ok()).expect("a number after the flag");
        match arg.as_str() {
            "--goods" => out.goods = value(),
            "--page-size" => out.page_size = value() as u32,
            "--concurrency" => out.concurrency = value() as usize,
            "--seed-into" => out.seed_into = it.next(),
            "--mysql" => out.mysql = it.next(),
            _ => {} // cargo bench passes --bench
        }
    }
    out
}

/// Peak resident memory of this process (VmHWM), in MiB.
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

enum Hbase {
    Child(Child, String),
    InProcess(HbaseTestServer),
}

impl Hbase {
    fn start() -> Hbase {
        let binary = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent()?.parent().map(|dir| dir.join("hbase-thrift-test-server")))
            .filter(|path| path.exists());
        match binary {
            Some(binary) => {
                let port = free_port();
                let address = format!("127.0.0.1:{port}");
                let child = Command::new(binary)
                    .args(["--listen", &address, "--table", pricing_record::keys::HBASE_TABLE])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start hbase-thrift-test-server");
                let addr = address.parse().expect("address");
                eventually_blocking("hbase test server to listen", Duration::from_secs(10), || {
                    accepts(addr).then_some(())
                });
                Hbase::Child(child, address)
            }
            None => Hbase::InProcess(HbaseTestServer::start_local(Transport::Buffered).expect("hbase test server")),
        }
    }

    fn address(&self) -> String {
        match self {
            Hbase::Child(_, address) => address.clone(),
            Hbase::InProcess(server) => server.address(),
        }
    }
}

impl Drop for Hbase {
    fn drop(&mut self) {
        if let Hbase::Child(child, _) = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Goods 1..=n at 12.34 .. with 3 activities each (a running flash sale, an
/// upcoming discount, an app-only amount off), in batches of 500 rows.
async fn seed(store: &SqlStore, n: u64) {
    let now = pricing_record::Clock::system().now_ms();
    let pool = store.pool();
    let mut tx = pool.begin().await.expect("begin");
    for start in (1..=n).step_by(500) {
        let end = (start + 499).min(n);
        let goods: Vec<String> = (start..=end)
            .map(|id| {
                format!("({id}, {}, {}, 'CNY', 'on_sale', {id}, {now}, {now}, NULL)", id % 50 + 1, 1_000 + id % 9_000)
            })
            .collect();
        let sql = format!(
            "INSERT INTO goods (id, store_id, base_price_fen, currency, status, version, created_at, updated_at, deleted_at) VALUES {}",
            goods.join(", ")
        );
        sqlx::query(&sql).execute(&mut *tx).await.expect("goods");
        let mut activities = Vec::with_capacity(1_500);
        for id in start..=end {
            let price = 1_000 + id % 9_000;
            let rows = [
                (1, "flash_sale", price / 2, now - 3_600_000, now + 86_400_000, 15, ""),
                (2, "discount", 8_500, now + 86_400_000, now + 2 * 86_400_000, 15, ""),
                (3, "amount_off", 100, now - 3_600_000, now + 86_400_000, 1, "1,2,3"),
            ];
            for (k, kind, value, start_ms, end_ms, channels, cities) in rows {
                activities.push(format!(
                    "({}, {id}, '{kind}', {value}, {start_ms}, {end_ms}, {channels}, '{cities}', '', 0, 0, NULL, 2, {k}, 'online', {id}, {now}, {now}, NULL)",
                    id * 3 + k
                ));
            }
        }
        let sql = format!(
            "INSERT INTO activity (id, goods_id, kind, value_x100, start_ms, end_ms, channels, city_ids, store_ids, \
             new_user_only, min_member_level, stock_left, per_user_limit, priority, status, version, created_at, \
             updated_at, deleted_at) VALUES {}",
            activities.join(", ")
        );
        sqlx::query(&sql).execute(&mut *tx).await.expect("activities");
    }
    sqlx::query("UPDATE catalog_clock SET version = ?, updated_at = ? WHERE id = 1")
        .bind(n as i64)
        .bind(now)
        .execute(&mut *tx)
        .await
        .expect("clock");
    tx.commit().await.expect("commit");
}

fn main() {
    let args = args();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    if let Some(url) = &args.seed_into {
        runtime.block_on(async {
            let store = SqlStore::connect(url).await.expect("source database");
            seed(&store, args.goods).await;
            store.close().await;
        });
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let url = match &args.mysql {
        Some(url) => url.clone(),
        None => format!("sqlite://{}?mode=rwc", dir.path().join("source.db").display()),
    };
    let seeding = Instant::now();
    let status = Command::new(std::env::current_exe().expect("own path"))
        .args(["--seed-into", &url, "--goods", &args.goods.to_string()])
        .status()
        .expect("seed child");
    assert!(status.success(), "seeding failed");
    let seeded_in = seeding.elapsed();
    let redis = [RedisServer::start(), RedisServer::start()];
    let hbase = [Hbase::start(), Hbase::start()];
    let hbase_where = match hbase[0] {
        Hbase::Child(..) => "child processes",
        Hbase::InProcess(_) => "in process (build hbase-thrift-test-server --release to move them out)",
    };
    runtime.block_on(async {
        let config = format!(
            r#"
            version = 1
            [source]
            database_url = "{url}"
            [redis]
            a = {{ urls = ["{ra}"] }}
            b = {{ urls = ["{rb}"] }}
            [hbase]
            a = {{ addresses = ["{ha}"], call_timeout_ms = 5000 }}
            b = {{ addresses = ["{hb}"], call_timeout_ms = 5000 }}
            [hbase.settings.a]
            write_timeout_ms = 5000
            [hbase.settings.b]
            write_timeout_ms = 5000
            [redis.settings.a]
            write_timeout_ms = 5000
            [redis.settings.b]
            write_timeout_ms = 5000
            [sync]
            page_size = {page}
            concurrency = {conc}
            "#,
            ra = redis[0].url(),
            rb = redis[1].url(),
            ha = hbase[0].address(),
            hb = hbase[1].address(),
            page = args.page_size,
            conc = args.concurrency,
        );
        let projector = Projector::connect(ProjectorConfig::parse(&config).expect("config")).await.expect("projector");
        let before = peak_rss_mib();
        let started = Instant::now();
        let report = projector.full(&Scope::All, true, &Progress::logs_only()).await.expect("full sync");
        let elapsed = started.elapsed();
        let queued: u64 = report.targets.values().map(|c| c.queued).sum();
        println!(
            "full sync: {} goods (3 activities each) into 4 clusters in {:.2} s = {:.0} goods/s ({:.0} cluster writes/s); \
             page {} x {} in flight; queued {}; peak RSS {} MiB (before the sync {} MiB); seeding took {:.1} s; source {}; hbase servers {}",
            report.goods,
            elapsed.as_secs_f64(),
            report.goods as f64 / elapsed.as_secs_f64(),
            4.0 * report.goods as f64 / elapsed.as_secs_f64(),
            args.page_size,
            args.concurrency,
            queued,
            peak_rss_mib(),
            before,
            seeded_in.as_secs_f64(),
            if args.mysql.is_some() { "MySQL/MariaDB server" } else { "SQLite file" },
            hbase_where,
        );
    });
}
