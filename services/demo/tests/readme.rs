//! The first hour, as a newcomer meets it: the README's demo and CLI
//! commands run as the built binaries (`pricing-demo`, `pricectl`; not
//! `cargo run`, which would build inside a test) from a fresh directory, and
//! print what the README shows; a server's error is one line whatever
//! RUST_BACKTRACE says; a log written to a file carries no colour codes; a
//! clean stop (SIGINT) leaves a database file that holds the whole
//! catalogue alone.
//!
//! `cargo test` builds a package's binaries for its own integration tests:
//! pricing-demo's for this one, pricectl's for services/pricectl/tests, so
//! both sit in target/<profile>/ when the two packages are tested together
//! (`cargo test --workspace`, as tests/run.sh runs it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use pricing_store_sql::{SqlOptions, SqlStore};
use pricing_testkit::net::{accepts, eventually_blocking, free_port};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).expect("services/demo is two levels down").to_path_buf()
}

fn demo_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pricing-demo"))
}

/// pricectl, built beside pricing-demo when both packages are tested.
fn pricectl_binary() -> PathBuf {
    let path = demo_binary().with_file_name(format!("pricectl{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is not built: test pricing-demo together with pricectl (cargo test -p pricing-demo -p pricectl; \
         tests/run.sh tests the whole workspace)",
        path.display()
    );
    path
}

/// The README's pricectl commands (`cargo run --release -p pricectl -- ARGS`),
/// as argument lists, comments cut off.
fn readme_cli_commands(readme: &str) -> Vec<Vec<String>> {
    const PREFIX: &str = "cargo run --release -p pricectl -- ";
    readme
        .lines()
        .filter_map(|line| line.trim().strip_prefix(PREFIX))
        .map(|args| args.split(" #").next().unwrap_or("").split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// The table the README shows under its commands (the first ``` block).
fn readme_table(readme: &str) -> Vec<String> {
    let mut lines = readme.lines().skip_while(|l| l.trim() != "```").skip(1);
    let table: Vec<String> =
        lines.by_ref().take_while(|l| l.trim() != "```").map(|l| l.trim_end().to_owned()).collect();
    assert!(table.len() > 1, "the README shows a table of prices");
    table
}

struct Demo {
    child: Child,
    dir: tempfile::TempDir,
    list: String,
    detail: String,
    list_metrics: String,
}

impl Demo {
    /// `pricing-demo` on free ports, run from a fresh directory so that its
    /// default data path (.pricing-data/pricing.db) lands there.
    fn start() -> Demo {
        Demo::start_in(tempfile::tempdir().expect("temp dir"), &[])
    }

    /// As [`start`](Self::start), in `dir` (a previous run's data stays),
    /// with `extra` flags.
    fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Demo {
        let addr = |port: u16| format!("127.0.0.1:{port}");
        let (list, detail) = (addr(free_port()), addr(free_port()));
        let (list_metrics, detail_metrics) = (addr(free_port()), addr(free_port()));
        let log = std::fs::File::create(dir.path().join("demo.log")).expect("log file");
        let child = Command::new(demo_binary())
            .current_dir(dir.path())
            .args(["--list", &list, "--detail", &detail])
            .args(["--list-metrics", &list_metrics, "--detail-metrics", &detail_metrics])
            .args(extra)
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start pricing-demo");
        let demo = Demo { child, dir, list, detail, list_metrics };
        for address in [&demo.list, &demo.detail] {
            let socket = address.parse().expect("socket address");
            eventually_blocking(&format!("pricing-demo to listen on {address}"), Duration::from_secs(120), || {
                accepts(socket).then_some(())
            });
        }
        demo
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("demo.log")).expect("demo log")
    }

    /// pricectl pointed at this demo, with `args` after the global flags.
    fn pricectl(&self, args: &[&str]) -> Output {
        Command::new(pricectl_binary())
            .args(["--list", &format!("http://{}", self.list), "--detail", &format!("http://{}", self.detail)])
            .args(args)
            .env("RUST_BACKTRACE", "1")
            .output()
            .expect("run pricectl")
    }

    /// SIGINT, as Ctrl-C in the terminal, then waits for a clean exit.
    fn interrupt(&mut self) {
        let status = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status().expect("run kill -INT");
        assert!(status.success());
        let exit = eventually_blocking("pricing-demo to stop after SIGINT", Duration::from_secs(60), || {
            self.child.try_wait().expect("wait for pricing-demo")
        });
        assert!(exit.success(), "pricing-demo exited with {exit}:\n{}", self.log());
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Opens a copy of `db` alone (no -wal, no -shm beside it) and counts the
/// goods among ids 1..=`goods`.
async fn goods_in_copy_of(db: &Path, goods: u64) -> usize {
    let copy_dir = tempfile::tempdir().expect("temp dir");
    let copy = copy_dir.path().join("copy.db");
    std::fs::copy(db, &copy).expect("copy the database file alone");
    let options = SqlOptions { statement_timeout: Duration::from_secs(60), ..SqlOptions::default() };
    let store = SqlStore::open_embedded_with(&copy, options).await.expect("open the copied file");
    let ids: Vec<u64> = (1..=goods).collect();
    let found = store.load(&ids).await.expect("read the copy").len();
    store.close().await;
    found
}

/// No write-ahead log is left beside `db` (absent, or checkpointed to empty).
fn assert_checkpointed(db: &Path) {
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(wal_len, 0, "{} still holds {wal_len} bytes after a clean stop", wal.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_commands_print_what_the_readme_shows() {
    let readme = std::fs::read_to_string(workspace().join("README.md")).expect("README.md");
    assert!(readme.contains("    cargo run --release -p pricing-demo\n"), "the README's run command");
    let commands = readme_cli_commands(&readme);
    assert!(commands.len() >= 4, "the README's pricectl commands: {commands:?}");

    let mut demo = Demo::start();

    // The demo names the exact next command, in the demo's release profile;
    // on the default ports it is the README's first pricectl command.
    let printed = eventually_blocking("pricing-demo to print the next command", Duration::from_secs(30), || {
        demo.log().lines().find(|l| l.contains("-p pricectl")).map(str::to_owned)
    });
    let on_default_ports = printed
        .trim()
        .replace(&format!(" --list http://{}", demo.list), "")
        .replace(&format!(" --detail http://{}", demo.detail), "");
    assert_eq!(
        format!("{on_default_ports} "),
        format!("cargo run --release -p pricectl -- {} ", commands[0].join(" "))
    );

    for args in &commands {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = demo.pricectl(&args);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "pricectl {args:?} failed: {}{stdout}", text(&out.stderr));
        match args.as_slice() {
            ["prices", ..] => {
                let shown: Vec<String> = stdout.lines().map(|l| l.trim_end().to_owned()).collect();
                assert_eq!(shown, readme_table(&readme), "pricectl {args:?} prints the README's table");
            }
            ["preview", "30:1", "40:1", "50:1"] => {
                assert!(stdout.contains("payable 111.00 CNY"), "seed 002's cart pays 111.00:\n{stdout}");
            }
            ["--json", ..] => {
                let json: serde_json::Value = serde_json::from_str(&stdout).expect("--json prints JSON");
                assert!(json["payableTotal"].is_string(), "{json}");
            }
            ["--explain", "goods", id] => {
                assert!(stdout.starts_with(&format!("goods {id}: original ")), "{stdout}");
                assert!(stdout.contains("    activity "), "the trace is shown:\n{stdout}");
            }
            other => panic!("the README shows a command this test does not check: {other:?}"),
        }
    }

    // A server's refusal is one line (code, field, message) and exit 1, with
    // RUST_BACKTRACE=1 set (Demo::pricectl sets it).
    let out = demo.pricectl(&["prices", "0"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line, no backtrace:\n{stderr}");
    assert!(stderr.starts_with("pricectl: INVALID_ARGUMENT goods_ids[0]: "), "{stderr}");
    assert!(out.stdout.is_empty());
    // No server at all: one line too, exit 2.
    let out = Command::new(pricectl_binary())
        .args(["--list", &format!("http://127.0.0.1:{}", free_port()), "prices", "1"])
        .env("RUST_BACKTRACE", "full")
        .output()
        .expect("run pricectl");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(text(&out.stderr).lines().count(), 1, "{}", text(&out.stderr));

    // Health of both servers, and the live control view.
    let out = demo.pricectl(&["health"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let health = text(&out.stdout);
    assert_eq!(health.lines().filter(|l| l.ends_with(" SERVING")).count(), 2, "{health}");
    let out = demo.pricectl(&["config", "--admin", &demo.list_metrics]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let view: serde_json::Value = serde_json::from_slice(&out.stdout).expect("config prints JSON");
    assert!(view["config"].is_object() && view["version"].is_u64(), "{view}");

    // Clean stop: "stopped" logged, no colour codes in a log written to a
    // file, and the database file alone holds the whole catalogue.
    demo.interrupt();
    let log = demo.log();
    assert!(log.contains("stopped"), "{log}");
    assert!(!log.contains('\u{1b}'), "terminal escape codes in a log file:\n{log}");
    let db = demo.dir.path().join(".pricing-data/pricing.db");
    assert_checkpointed(&db);
    assert_eq!(goods_in_copy_of(&db, 10_000).await, 10_000, "the copied file alone has every demo goods");

    // Started again on the same data with --log-format json (as the chart
    // runs every container): every log line is one JSON object.
    let dir = std::mem::replace(&mut demo.dir, tempfile::tempdir().expect("temp dir"));
    let mut again = Demo::start_in(dir, &["--log-format", "json"]);
    let out = again.pricectl(&["prices", "1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    again.interrupt();
    let log = again.log();
    let json_lines: Vec<serde_json::Value> =
        log.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).expect("a JSON log line")).collect();
    assert!(json_lines.iter().any(|l| l["fields"]["message"] == "stopped"), "{log}");
    assert!(json_lines.iter().all(|l| l["level"].is_string() && l["timestamp"].is_string()), "{log}");
    let other: Vec<&str> = log.lines().filter(|l| !l.starts_with('{')).collect();
    assert!(other.iter().all(|l| l.starts_with("pricing-demo: ") || l.starts_with("    cargo run")), "{other:?}");
}
