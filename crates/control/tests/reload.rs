//! The switch board against real files: reloads, refusals, the live cells,
//! the watcher (on paused time) and a ConfigMap-style symlink swap.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a panic fails the test")]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pricing_control::{ControlConfig, ControlError, PairSwitch, Reload, Switchboard};
use pricing_store::{DualSettings, PairId, ReadMode, WriteMode, live};

const EXAMPLE: &str = include_str!("../examples/control.toml");
const SPLIT_50: &str = "read = { mode = \"split\", a_percent = 50 }";

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn example_in(dir: &tempfile::TempDir) -> PathBuf {
    let path = dir.path().join("control.toml");
    write(&path, EXAMPLE);
    path
}

#[test]
fn a_changed_file_is_applied_and_pushed_into_the_store_cells() {
    let dir = tempfile::tempdir().unwrap();
    let path = example_in(&dir);
    let board = Switchboard::load(&path).unwrap();
    assert_eq!(board.version(), 1);

    let owned = board.pair(PairSwitch::ListRedis);
    // A cell a store built for itself, bound afterwards: it takes the file's values at once.
    let bound = live(pricing_store::DualSettings::default());
    board.bind_pair(PairSwitch::ListRedis, bound.clone());
    let cache = live(pricing_store::CacheSettings::default());
    board.bind_list_cache(cache.clone());
    assert_eq!(cache.load().stale_grace, Duration::from_secs(120));
    let detail = board.pair(PairSwitch::DetailRedis);
    let detail_before = detail.load_full();

    write(
        &path,
        &EXAMPLE
            .replace(SPLIT_50, "read = { mode = \"only_b\" }")
            .replace("stale_grace_ms = 120000", "stale_grace_ms = 5000"),
    );
    let Reload::Applied { version, changes } = board.reload_now().unwrap() else { panic!("not applied") };
    assert_eq!(version, 2);
    assert_eq!(board.version(), 2);
    let switches: Vec<&str> = changes.iter().map(|c| c.switch.as_str()).collect();
    assert_eq!(switches, ["list.cache.stale_grace_ms", "list.redis.read.a_percent", "list.redis.read.mode"]);

    assert_eq!(owned.load().read, ReadMode::OnlyB {});
    assert_eq!(bound.load().read, ReadMode::OnlyB {});
    assert_eq!(cache.load().stale_grace, Duration::from_secs(5));
    assert_eq!(board.snapshot().list.redis.read, pricing_control::ReadSwitch::OnlyB {});
    assert!(Arc::ptr_eq(&detail_before, &detail.load_full()), "an unchanged pair keeps its settings object");
}

#[test]
fn projector_cells_take_the_write_mode_and_keep_their_own_budgets() {
    let dir = tempfile::tempdir().unwrap();
    let path = example_in(&dir);
    let board = Switchboard::load(&path).unwrap();
    // The projector's own settings: a write budget and a write mode of its config file.
    let mut own = DualSettings { write: WriteMode::OnlyA, ..DualSettings::default() };
    own.b.write_timeout = Duration::from_secs(7);
    let cell = live(own);
    board.bind_projector_pair(PairId::Redis, cell.clone());
    assert_eq!(cell.load().write, WriteMode::Both, "the control file's write mode wins at once");
    assert!(!board.projector_paused());

    write(
        &path,
        &EXAMPLE
            .replace("[projector.redis]\nwrite = \"both\"", "[projector.redis]\nwrite = \"only_b\"")
            .replace("paused = false", "paused = true"),
    );
    let Reload::Applied { changes, .. } = board.reload_now().unwrap() else { panic!("not applied") };
    let switches: Vec<&str> = changes.iter().map(|c| c.switch.as_str()).collect();
    assert_eq!(switches, ["projector.paused", "projector.redis.write"]);
    assert_eq!(cell.load().write, WriteMode::OnlyB);
    assert_eq!(cell.load().b.write_timeout, Duration::from_secs(7), "budgets stay the projector's");
    assert!(board.projector_paused());
    // The servers' pairs are not the projector's.
    assert_eq!(board.pair(PairSwitch::ListRedis).load().write, WriteMode::Both);
}

#[test]
fn a_pair_without_a_local_cluster_reads_the_zone_of_this_process_first() {
    use pricing_store::Cluster;
    let dir = tempfile::tempdir().unwrap();
    let path = example_in(&dir);
    let board = Switchboard::load(&path).unwrap();
    // The example maps zone-1 to A and zone-2 to B for the detail pair.
    board.set_zone(Some("zone-2".into()));
    let detail = live(DualSettings::default());
    board.bind_pair(PairSwitch::DetailRedis, detail.clone());
    assert_eq!(detail.load().read, ReadMode::PreferLocal { local: Cluster::B });
    assert_eq!(board.admin_view()["zone"], "zone-2");
    // An explicit local is kept whatever the zone (the example's HBase pair).
    let hbase = live(DualSettings::default());
    board.bind_pair(PairSwitch::ListHbase, hbase.clone());
    assert_eq!(hbase.load().read, ReadMode::PreferLocal { local: Cluster::A });

    // The map changes live: zone-2 now holds A.
    write(&path, &EXAMPLE.replace("zone-2 = \"b\"", "zone-2 = \"a\""));
    let Reload::Applied { changes, .. } = board.reload_now().unwrap() else { panic!("not applied") };
    assert_eq!(changes[0].switch, "detail.redis.zones.zone-2");
    assert_eq!(detail.load().read, ReadMode::PreferLocal { local: Cluster::A });

    // A zone the map does not name, or none at all: split, both clusters in use.
    board.set_zone(Some("zone-9".into()));
    assert_eq!(detail.load().read, ReadMode::Split { a_percent: 50 });
    board.set_zone(None);
    assert_eq!(detail.load().read, ReadMode::Split { a_percent: 50 });
    assert_eq!(hbase.load().read, ReadMode::PreferLocal { local: Cluster::A });
}

#[test]
fn the_same_bytes_or_the_same_values_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = example_in(&dir);
    let board = Switchboard::load(&path).unwrap();
    assert_eq!(board.reload_now().unwrap(), Reload::Unchanged);
    write(&path, &format!("# a comment only\n{EXAMPLE}"));
    assert_eq!(board.reload_now().unwrap(), Reload::Unchanged);
    assert_eq!(board.version(), 1);
}

#[test]
fn a_bad_file_is_refused_and_the_last_good_config_stays() {
    let dir = tempfile::tempdir().unwrap();
    let path = example_in(&dir);
    let board = Switchboard::load(&path).unwrap();
    let cell = board.pair(PairSwitch::ListRedis);
    let before = board.snapshot();

    for (text, expect) in [
        ("version = 1\n[list.redis\n", "malformed"),
        ("version = 1\n[lsit]\n", "malformed"),
        ("version = 2\n", "malformed"),
        (&*EXAMPLE.replace(SPLIT_50, "read = { mode = \"split\", a_percent = 150 }"), "invalid"),
    ] {
        write(&path, text);
        let err = board.reload_now().unwrap_err();
        assert_eq!(err.kind(), expect, "{err}");
        assert_eq!(board.version(), 1);
        assert!(Arc::ptr_eq(&before, &board.snapshot()));
        assert_eq!(cell.load().read, ReadMode::Split { a_percent: 50 });
        // The same broken bytes are not re-parsed (nor re-logged) on the next poll.
        assert_eq!(board.reload_now().unwrap(), Reload::Unchanged);
    }

    std::fs::remove_file(&path).unwrap();
    assert!(matches!(board.reload_now(), Err(ControlError::Read { .. })));
    assert_eq!(board.version(), 1);

    // Fixed again: applied.
    write(&path, &EXAMPLE.replace(SPLIT_50, "read = { mode = \"split\", a_percent = 80 }"));
    assert!(matches!(board.reload_now().unwrap(), Reload::Applied { version: 2, .. }));
    assert_eq!(cell.load().read, ReadMode::Split { a_percent: 80 });
}

#[test]
fn a_bad_file_at_start_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.toml");
    assert!(matches!(Switchboard::load(&path), Err(ControlError::Read { .. })));
    write(&path, "version = 1\nunknown = true\n");
    assert!(matches!(Switchboard::load(&path), Err(ControlError::Parse(_))));
}

#[test]
fn the_admin_view_shows_version_and_values_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let board = Switchboard::load(example_in(&dir)).unwrap();
    let view = board.admin_view();
    assert_eq!(view["version"], 1);
    assert_eq!(view["config"]["limits"]["max_concurrent"], 4096);
    assert_eq!(view["config"]["callers"]["list-web"]["token"], "<redacted>");
    let text = view.to_string();
    assert!(!text.contains("list-web-0123456789abcdef") && !text.contains("2c909029852a35f7"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn the_watcher_applies_a_changed_file_on_its_next_poll() {
    let dir = tempfile::tempdir().unwrap();
    let path = example_in(&dir);
    let board = Switchboard::load(&path).unwrap();
    let cell = board.pair(PairSwitch::ListHbase);
    let watcher = board.spawn_watcher(Duration::from_millis(500));

    write(
        &path,
        &EXAMPLE.replace(
            "read = { mode = \"prefer_local\", local = \"a\" }\nwrite = \"both\"\n\n[list.hbase.a]",
            "read = { mode = \"only_a\" }\nwrite = \"both\"\n\n[list.hbase.a]",
        ),
    );
    // Not before the poll...
    tokio::task::yield_now().await;
    assert_eq!(board.version(), 1);
    // ...but on it.
    for _ in 0..20 {
        if board.version() == 2 {
            break;
        }
        tokio::time::advance(Duration::from_millis(100)).await;
        tokio::task::yield_now().await;
    }
    assert_eq!(board.version(), 2);
    assert_eq!(cell.load().read, ReadMode::OnlyA {});
    assert_eq!(board.snapshot().detail.redis.read, pricing_control::ReadSwitch::PreferLocal { local: None });

    // The task ends once the board is gone.
    drop((board, cell));
    tokio::time::advance(Duration::from_millis(600)).await;
    watcher.await.unwrap();
}

#[cfg(unix)]
#[test]
fn a_configmap_symlink_swap_is_seen() {
    use std::os::unix::fs::symlink;
    // Kubernetes mounts: control.toml -> ..data/control.toml, ..data -> ..<timestamp>/
    // and an update renames a new ..data link over the old one.
    let dir = tempfile::tempdir().unwrap();
    let v1 = dir.path().join("..2024_01");
    std::fs::create_dir(&v1).unwrap();
    write(&v1.join("control.toml"), EXAMPLE);
    symlink("..2024_01", dir.path().join("..data")).unwrap();
    symlink("..data/control.toml", dir.path().join("control.toml")).unwrap();
    let board = Switchboard::load(dir.path().join("control.toml")).unwrap();

    let v2 = dir.path().join("..2024_02");
    std::fs::create_dir(&v2).unwrap();
    write(&v2.join("control.toml"), &EXAMPLE.replace("redis_bypass = false", "redis_bypass = true"));
    symlink("..2024_02", dir.path().join("..data_tmp")).unwrap();
    std::fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();
    std::fs::remove_dir_all(&v1).unwrap();

    assert!(matches!(board.reload_now().unwrap(), Reload::Applied { version: 2, .. }));
    assert!(board.snapshot().detail.redis_bypass);
}

#[test]
fn a_file_the_server_cannot_apply_is_refused_by_its_capability_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = example_in(&dir);
    let board = Switchboard::load(&path).unwrap();
    // A server that can serve no variant reading HBase.
    let no_hbase: pricing_control::Capability = Arc::new(|config: &pricing_control::ControlConfig| {
        match config
            .canary
            .variants
            .iter()
            .find(|(_, v)| v.list_tiers.as_ref().is_some_and(|t| t.contains(&pricing_store::TierId::Hbase)))
        {
            Some((name, _)) => Err(ControlError::Invalid {
                field: format!("canary.variants.{name}.list_tiers"),
                reason: "no hbase tier".into(),
            }),
            None => Ok(()),
        }
    });
    board.require(Arc::clone(&no_hbase)).unwrap();
    let before = board.snapshot();

    let hbase_variant = format!("{EXAMPLE}\n[canary.variants.hb]\nlist_tiers = [\"hbase\"]\n");
    write(&path, &hbase_variant);
    match board.reload_now() {
        Err(ControlError::Invalid { field, .. }) => assert_eq!(field, "canary.variants.hb.list_tiers"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(Arc::ptr_eq(&before, &board.snapshot()), "the last good config stays");
    assert!(board.replace(ControlConfig::parse(&hbase_variant).unwrap()).is_err(), "replace checks it too");

    // What the server can apply passes.
    write(&path, &format!("{EXAMPLE}\n[canary.variants.r]\nlist_tiers = [\"redis\"]\n"));
    assert!(matches!(board.reload_now().unwrap(), Reload::Applied { version: 2, .. }));

    // A check the config in force already fails is an error at once (a server refuses to start).
    let other = Switchboard::from_config(ControlConfig::parse(&hbase_variant).unwrap()).unwrap();
    assert!(other.require(no_hbase).is_err());
}
