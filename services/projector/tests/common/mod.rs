//! A throwaway world for one test: a fresh MariaDB database, two Redis
//! servers, two in-process HBase Thrift test servers, and a projector over them.

#![allow(dead_code)]

use std::sync::Arc;

use pricing_projector::{Projector, ProjectorConfig};
use pricing_record::{GoodsId, GoodsRecord};
use pricing_store::{Cluster, RecordStore};
use pricing_store_hbase::{HbaseTestServer, Transport};
use pricing_store_sql::{DemoOptions, SqlStore};
use pricing_testkit::redis::RedisServer;

pub const DAY_MS: i64 = 86_400_000;

pub struct World {
    pub projector: Projector,
    pub source: SqlStore,
    pub redis: [RedisServer; 2],
    pub hbase: [HbaseTestServer; 2],
}

pub fn config_text(url: &str, redis: &[RedisServer; 2], hbase: &[HbaseTestServer; 2]) -> String {
    format!(
        r#"
        version = 1
        [source]
        database_url = "{url}"
        [redis]
        a = {{ urls = ["{ra}"] }}
        b = {{ urls = ["{rb}"] }}
        [hbase]
        a = {{ addresses = ["{ha}"] }}
        b = {{ addresses = ["{hb}"] }}
        [sync]
        page_size = 40
        concurrency = 3
        [retry]
        attempts = 1
        backoff_ms = 1
        max_backoff_ms = 1
        queue_backoff_ms = 0
        queue_max_backoff_ms = 0
        "#,
        ra = redis[0].url(),
        rb = redis[1].url(),
        ha = hbase[0].address(),
        hb = hbase[1].address(),
    )
}

/// A world whose catalogue holds the demo catalogue of `goods` goods.
pub async fn world(prefix: &str, goods: u64) -> World {
    world_with(prefix, goods, "").await
}

/// As [`world`], the projector steered by the control file at `control`
/// (re-read every 50 ms; a test may also call `reload_now`).
pub async fn world_with_control(prefix: &str, goods: u64, control: &std::path::Path) -> World {
    let section = format!("[control]\nfile = {:?}\npoll_ms = 50\n", control.display().to_string());
    world_with(prefix, goods, &section).await
}

async fn world_with(prefix: &str, goods: u64, extra: &str) -> World {
    let url = pricing_testkit::mysql::fresh_database(prefix).await;
    let redis = [RedisServer::start(), RedisServer::start()];
    let hbase = [
        HbaseTestServer::start_local(Transport::Buffered).expect("hbase a"),
        HbaseTestServer::start_local(Transport::Buffered).expect("hbase b"),
    ];
    let text = format!("{}\n{extra}", config_text(&url, &redis, &hbase));
    let config = ProjectorConfig::parse(&text).expect("config");
    let projector = Projector::connect(config).await.expect("projector");
    let source = projector.source().clone();
    if goods > 0 {
        pricing_store_sql::demo::seed(&source, DemoOptions { goods, ..DemoOptions::default() }).await.expect("seed");
    }
    World { projector, source, redis, hbase }
}

impl World {
    /// The four clusters' read stores, by name.
    pub fn stores(&self) -> Vec<(String, Arc<dyn RecordStore>)> {
        let mut out = Vec::new();
        for pair in &self.projector.targets().pairs {
            for cluster in [Cluster::A, Cluster::B] {
                let store = Arc::clone(pair.pair.store.store(cluster));
                out.push((store.name().to_owned(), store));
            }
        }
        out
    }

    pub fn store(&self, name: &str) -> Arc<dyn RecordStore> {
        self.stores().into_iter().find(|(n, _)| n == name).map(|(_, s)| s).expect("store")
    }

    /// Every goods id in the source, soft-deleted ones included.
    pub async fn all_ids(&self) -> Vec<GoodsId> {
        let mut ids = Vec::new();
        let mut after = 0;
        loop {
            let page = self.source.goods_page(after, 1_000).await.expect("page");
            let Some(&last) = page.last() else { break };
            after = last;
            ids.extend(page);
        }
        ids
    }

    /// The source's records of `ids`, sorted by id.
    pub async fn source_records(&self, ids: &[GoodsId]) -> Vec<GoodsRecord> {
        let mut records = self.source.load(ids).await.expect("load");
        records.sort_by_key(|r| r.goods_id);
        records
    }

    /// A store's records of `ids`, sorted by id.
    pub async fn store_records(&self, name: &str, ids: &[GoodsId]) -> Vec<GoodsRecord> {
        let store = self.store(name);
        let mut out = Vec::new();
        for chunk in ids.chunks(500) {
            out.extend(store.fetch(chunk).await.expect("fetch").into_iter().map(|r| (*r).clone()));
        }
        out.sort_by_key(|r| r.goods_id);
        out
    }

    /// Asserts that every store holds exactly the source's records of `ids`.
    pub async fn assert_stores_match(&self, ids: &[GoodsId]) {
        let expected = self.source_records(ids).await;
        assert!(!expected.is_empty());
        for (name, _) in self.stores() {
            let held = self.store_records(&name, ids).await;
            assert_eq!(held.len(), expected.len(), "{name}: number of records");
            for (h, e) in held.iter().zip(&expected) {
                assert_eq!(h, e, "{name}: goods {}", e.goods_id);
            }
        }
    }

    pub async fn queue_depth(&self) -> u64 {
        self.source.retry_depth().await.expect("depth")
    }
}
