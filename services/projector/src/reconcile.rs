//! Seed 004 section 3.1: data monitoring, correction and recovery. The
//! reconciler compares the source with every cluster, fully or for the goods
//! changed since a time, reports each difference per cluster, and with
//! `repair` corrects it.
//!
//! Per goods and cluster, against the record the source builds now:
//! - `missing`: the cluster holds nothing;
//! - `stale`: it holds an older version;
//! - `corrupt`: it holds bytes that do not decode (or decode to another goods);
//! - `diverged`: it holds the same or a newer version with other content
//!   (a write that did not come from the source);
//! - `extra` (full runs): it holds a goods the source does not have. Found by
//!   walking every cluster's goods ids (`Inspect::walk`: `SCAN` on a
//!   standalone Redis, one `SCAN` walk per master on a Redis Cluster, a
//!   scanner over the HBase table) and checking every id the source lacks
//!   at all clusters.
//!
//! The held values come from the store crates' raw reads
//! ([`pricing_store::Inspect`]): the bytes as stored and the version that
//! guards them (a Redis value's header, an HBase cell's timestamp), over the
//! same connections and timeouts as the cluster's writer, errors of the
//! same kinds.
//!
//! Repair ([`Fix`]): what a versioned write can replace (missing, stale,
//! anything held below the source's version) is written with the current
//! record. A Redis value whose header claims the source's version or more is
//! removed first, then written. An HBase cell at or above the source's
//! version cannot be removed (a delete marker would hide the new write as
//! well), so the goods is re-versioned in the source (content unchanged, a
//! version above the cell's timestamp) and written to every cluster; the
//! incremental feed sees the new version too. Extras are removed. Failed
//! repair writes go to the retry queue like any write.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use futures::future::join_all;
use pricing_record::{GoodsId, GoodsRecord, UnixMillis, decode_for};
use pricing_store::{RawEntry, SharedRecord, VersionGuard, WalkCursor};

use crate::Projector;
use crate::error::ProjectorError;
use crate::targets::{ClusterTarget, PairTarget};
use crate::writer::{Landing, Op, Scope, shared};

/// One kind of difference between the source and a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Difference {
    Missing,
    Stale,
    Extra,
    Corrupt,
    Diverged,
}

impl Difference {
    pub fn as_str(self) -> &'static str {
        match self {
            Difference::Missing => "missing",
            Difference::Stale => "stale",
            Difference::Extra => "extra",
            Difference::Corrupt => "corrupt",
            Difference::Diverged => "diverged",
        }
    }
}

/// Counts of one cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreDifferences {
    pub checked: u64,
    pub missing: u64,
    pub stale: u64,
    pub extra: u64,
    pub corrupt: u64,
    pub diverged: u64,
    pub repaired: u64,
    /// Differences a repair could not fix now (queued, or the write mode
    /// keeps the cluster out).
    pub unrepaired: u64,
}

impl StoreDifferences {
    pub fn total(&self) -> u64 {
        self.missing + self.stale + self.extra + self.corrupt + self.diverged
    }

    fn count(&mut self, difference: Difference) {
        match difference {
            Difference::Missing => self.missing += 1,
            Difference::Stale => self.stale += 1,
            Difference::Extra => self.extra += 1,
            Difference::Corrupt => self.corrupt += 1,
            Difference::Diverged => self.diverged += 1,
        }
    }
}

/// What to compare and whether to repair.
#[derive(Debug, Clone, Default)]
pub struct ReconcileOptions {
    /// Only goods changed at or after this unix ms (and no extras walk);
    /// absent: every goods.
    pub since_ms: Option<UnixMillis>,
    pub repair: bool,
    /// Which clusters (all by default).
    pub scope: Scope,
}

/// Most differences listed by id in a report.
const SAMPLES: usize = 20;

#[derive(Debug, Clone, Default)]
pub struct ReconcileReport {
    /// Goods records read from the source and compared.
    pub checked: u64,
    pub stores: BTreeMap<String, StoreDifferences>,
    /// The first differences found: (cluster, kind, goods id).
    pub samples: Vec<(String, Difference, GoodsId)>,
    /// Clusters whose keys were walked for extras.
    pub walked: Vec<String>,
}

impl ReconcileReport {
    /// Differences found over every cluster.
    pub fn differences(&self) -> u64 {
        self.stores.values().map(StoreDifferences::total).sum()
    }

    fn found(&mut self, store: &str, difference: Difference, goods_id: GoodsId) {
        self.stores.entry(store.to_owned()).or_default().count(difference);
        metrics::counter!("pricing_projector_reconcile_differences_total", "store" => store.to_owned(), "kind" => difference.as_str())
            .increment(1);
        if self.samples.len() < SAMPLES {
            self.samples.push((store.to_owned(), difference, goods_id));
        }
    }

    /// The summary table printed at the end of a run.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<10} {:>9} {:>8} {:>7} {:>7} {:>8} {:>9} {:>9} {:>11}",
            "store", "checked", "missing", "stale", "extra", "corrupt", "diverged", "repaired", "unrepaired"
        );
        for (store, d) in &self.stores {
            let _ = writeln!(
                out,
                "{:<10} {:>9} {:>8} {:>7} {:>7} {:>8} {:>9} {:>9} {:>11}",
                store, d.checked, d.missing, d.stale, d.extra, d.corrupt, d.diverged, d.repaired, d.unrepaired
            );
        }
        for (store, kind, id) in &self.samples {
            let _ = writeln!(out, "  {store}: goods {id} {}", kind.as_str());
        }
        let _ = writeln!(out, "{} goods checked, {} differences", self.checked, self.differences());
        out
    }
}

/// How a difference is repaired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fix {
    /// A versioned write of the current record replaces what is held.
    Put,
    /// Redis holds a value whose header claims the source's version or a
    /// newer one, which the Lua guard would keep: remove the key, then write.
    Replace,
    /// HBase holds a cell at the source's version or above (timestamp given),
    /// which hides any write at the source's version and a delete marker
    /// would hide it too: re-version the goods above it, then write.
    Reversion(u64),
}

/// How `held` differs from `source`, and how to repair it: the held value's
/// guard says which store's rule stands in the way (a Redis header can be
/// removed; an HBase cell timestamp cannot).
pub fn classify(source: &GoodsRecord, held: Option<&RawEntry>) -> Option<(Difference, Fix)> {
    let Some(held) = held else { return Some((Difference::Missing, Fix::Put)) };
    let difference = match decode_for(source.goods_id, &held.bytes) {
        Err(_) => Difference::Corrupt,
        Ok(record) if record == *source => return None,
        Ok(record) if record.version < source.version => Difference::Stale,
        Ok(_) => Difference::Diverged,
    };
    let blocking = held.guard.blocking_version().filter(|v| *v >= source.version);
    let fix = match (held.guard, blocking) {
        (_, None) => Fix::Put,
        (VersionGuard::Header(_), Some(_)) => Fix::Replace,
        (VersionGuard::CellTimestamp(_), Some(timestamp)) => Fix::Reversion(timestamp),
    };
    Some((difference, fix))
}

impl Projector {
    pub async fn reconcile(&self, options: &ReconcileOptions) -> Result<ReconcileReport, ProjectorError> {
        let clusters: Vec<(&PairTarget, &ClusterTarget)> = self
            .targets
            .clusters()
            .filter(|(_, c)| match &options.scope {
                Scope::All => true,
                Scope::Only(names) => names.contains(&c.name),
            })
            .collect();
        let mut report = ReconcileReport::default();
        for (_, c) in &clusters {
            report.stores.insert(c.name.clone(), StoreDifferences::default());
        }
        let page_size = self.config.sync.page_size;
        let mut position: (UnixMillis, GoodsId) = (options.since_ms.unwrap_or(0), 0);
        loop {
            let ids: Vec<GoodsId> = match options.since_ms {
                None => self.source.goods_page(position.1, page_size).await?,
                Some(_) => {
                    let page = self.source.changed_since(position.0, position.1, page_size).await?;
                    if let Some(&(id, at)) = page.last() {
                        position.0 = at;
                        position.1 = id;
                    }
                    page.into_iter().map(|(id, _)| id).collect()
                }
            };
            let Some(&last) = ids.last() else { break };
            if options.since_ms.is_none() {
                position.1 = last;
            }
            let records = shared(self.source.load(&ids).await?);
            report.checked += records.len() as u64;
            self.compare_page(&clusters, &records, options.repair, &mut report).await?;
            if (ids.len() as u32) < page_size {
                break;
            }
        }
        if options.since_ms.is_none() {
            self.find_extras(&clusters, options.repair, &mut report).await?;
        }
        for (store, d) in &report.stores {
            for (kind, n) in [
                (Difference::Missing, d.missing),
                (Difference::Stale, d.stale),
                (Difference::Extra, d.extra),
                (Difference::Corrupt, d.corrupt),
                (Difference::Diverged, d.diverged),
            ] {
                metrics::gauge!("pricing_projector_reconcile_last_differences", "store" => store.clone(), "kind" => kind.as_str())
                    .set(n as f64);
            }
        }
        tracing::info!(
            checked = report.checked,
            differences = report.differences(),
            repair = options.repair,
            "reconcile done"
        );
        Ok(report)
    }

    async fn compare_page(
        &self,
        clusters: &[(&PairTarget, &ClusterTarget)],
        records: &[SharedRecord],
        repair: bool,
        report: &mut ReconcileReport,
    ) -> Result<(), ProjectorError> {
        let ids: Vec<GoodsId> = records.iter().map(|r| r.goods_id).collect();
        let held = join_all(clusters.iter().map(|(_, c)| c.inspect.inspect(&ids))).await;
        // Per cluster: records a versioned write fixes, and ids to remove
        // first; over all clusters: goods to re-version above the highest
        // cell timestamp in the way.
        let mut puts: Vec<Vec<SharedRecord>> = vec![Vec::new(); clusters.len()];
        let mut replaces: Vec<Vec<GoodsId>> = vec![Vec::new(); clusters.len()];
        let mut reversion: BTreeMap<GoodsId, (u64, Vec<usize>)> = BTreeMap::new();
        for (i, ((_, cluster), held)) in clusters.iter().zip(held).enumerate() {
            let held: HashMap<GoodsId, RawEntry> = held?.into_iter().map(|e| (e.goods_id, e)).collect();
            report.stores.entry(cluster.name.clone()).or_default().checked += records.len() as u64;
            for record in records {
                let Some((difference, fix)) = classify(record, held.get(&record.goods_id)) else { continue };
                report.found(&cluster.name, difference, record.goods_id);
                match fix {
                    Fix::Put => puts[i].push(record.clone()),
                    Fix::Replace => replaces[i].push(record.goods_id),
                    Fix::Reversion(blocking) => {
                        let entry = reversion.entry(record.goods_id).or_insert((blocking, Vec::new()));
                        entry.0 = entry.0.max(blocking);
                        entry.1.push(i);
                    }
                }
            }
        }
        if !repair {
            return Ok(());
        }
        for (i, ids) in replaces.iter().enumerate() {
            let (pair, cluster) = clusters[i];
            if ids.is_empty() {
                continue;
            }
            // Removed first, then the record read again, so that a newer
            // write landing in between is not replaced by an older one.
            match self.write_one(pair, cluster, Op::Remove(ids)).await {
                Ok(_) => {
                    let current = shared(self.source.load(ids).await?);
                    // A goods gone from the source meanwhile is repaired by the removal.
                    let gone = (ids.len() - current.len()) as u64;
                    report.stores.entry(cluster.name.clone()).or_default().repaired += gone;
                    puts[i].extend(current);
                }
                Err(error) => {
                    let items: Vec<(GoodsId, u64)> = ids.iter().map(|id| (*id, 0)).collect();
                    self.queue(&cluster.name, &items, 1, &error).await?;
                    report.stores.entry(cluster.name.clone()).or_default().unrepaired += ids.len() as u64;
                }
            }
        }
        for (i, records) in puts.iter().enumerate() {
            let (pair, cluster) = clusters[i];
            if records.is_empty() {
                continue;
            }
            let fixed = match self.write_one(pair, cluster, Op::Put(records)).await {
                Ok(_) => records.len() as u64,
                Err(error) => {
                    let items: Vec<(GoodsId, u64)> = records.iter().map(|r| (r.goods_id, r.version)).collect();
                    self.queue(&cluster.name, &items, 1, &error).await?;
                    0
                }
            };
            let d = report.stores.entry(cluster.name.clone()).or_default();
            d.repaired += fixed;
            d.unrepaired += records.len() as u64 - fixed;
        }
        if reversion.is_empty() {
            return Ok(());
        }
        let mut ids = Vec::with_capacity(reversion.len());
        for (id, (blocking, _)) in &reversion {
            let version = self.source.reversion_goods(*id, *blocking).await?;
            tracing::warn!(
                goods_id = id,
                blocking,
                version,
                "goods re-versioned to replace an entry a versioned write cannot"
            );
            ids.push(*id);
        }
        let records = shared(self.source.load(&ids).await?);
        let outcome = self.put(&records, &Scope::All).await?;
        for (_, (_, needing)) in reversion {
            for i in needing {
                let name = &clusters[i].1.name;
                let landed = outcome.targets.get(name).is_some_and(|(landing, _)| *landing == Landing::Done);
                let d = report.stores.entry(name.clone()).or_default();
                if landed { d.repaired += 1 } else { d.unrepaired += 1 }
            }
        }
        Ok(())
    }

    /// Walks every cluster for goods ids the source does not have, then
    /// checks every such id at every cluster.
    async fn find_extras(
        &self,
        clusters: &[(&PairTarget, &ClusterTarget)],
        repair: bool,
        report: &mut ReconcileReport,
    ) -> Result<(), ProjectorError> {
        let mut candidates = BTreeSet::new();
        let count = self.config.sync.page_size;
        for (_, cluster) in clusters {
            let mut cursor = WalkCursor::start();
            loop {
                let page = cluster.inspect.walk(&cursor, count).await?;
                if !page.ids.is_empty() {
                    let existing: BTreeSet<GoodsId> =
                        self.source.existing_goods(&page.ids).await?.into_iter().collect();
                    candidates.extend(page.ids.into_iter().filter(|id| !existing.contains(id)));
                }
                let Some(next) = page.next else { break };
                cursor = next;
            }
            report.walked.push(cluster.name.clone());
        }
        let candidates: Vec<GoodsId> = candidates.into_iter().collect();
        for chunk in candidates.chunks(count as usize) {
            let held = join_all(clusters.iter().map(|(_, c)| c.inspect.inspect(chunk))).await;
            for ((pair, cluster), held) in clusters.iter().zip(held) {
                let extra: Vec<GoodsId> = held?.into_iter().map(|e| e.goods_id).collect();
                for id in &extra {
                    report.found(&cluster.name, Difference::Extra, *id);
                }
                if !repair || extra.is_empty() {
                    continue;
                }
                let fixed = match self.write_one(pair, cluster, Op::Remove(&extra)).await {
                    Ok(_) => extra.len() as u64,
                    Err(error) => {
                        let items: Vec<(GoodsId, u64)> = extra.iter().map(|id| (*id, 0)).collect();
                        self.queue(&cluster.name, &items, 1, &error).await?;
                        0
                    }
                };
                let d = report.stores.entry(cluster.name.clone()).or_default();
                d.repaired += fixed;
                d.unrepaired += extra.len() as u64 - fixed;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pricing_record::codec::peek_version;
    use pricing_record::encode;
    use rust_decimal::Decimal;

    fn record(version: u64) -> GoodsRecord {
        GoodsRecord {
            goods_id: 7,
            version,
            store_id: 1,
            base_price: Decimal::new(5990, 2),
            currency: "CNY".into(),
            status: pricing_record::GoodsStatus::OnSale,
            activities: Vec::new(),
        }
    }

    /// `record`'s bytes as an HBase cell at `timestamp`, or (`None`) as a
    /// Redis value guarded by its header.
    fn held(record: &GoodsRecord, timestamp: Option<i64>) -> RawEntry {
        let bytes = encode(record).unwrap().to_vec();
        raw(bytes, timestamp)
    }

    fn raw(bytes: Vec<u8>, timestamp: Option<i64>) -> RawEntry {
        let guard = match timestamp {
            Some(ts) => VersionGuard::CellTimestamp(ts),
            None => VersionGuard::Header(peek_version(&bytes).ok()),
        };
        RawEntry { goods_id: 7, bytes, guard }
    }

    #[test]
    fn every_kind_of_difference_is_told_apart() {
        let source = record(10);
        assert_eq!(classify(&source, Some(&held(&source, Some(10)))), None);
        assert_eq!(classify(&source, Some(&held(&source, None))), None);
        assert_eq!(classify(&source, None), Some((Difference::Missing, Fix::Put)));
        assert_eq!(classify(&source, Some(&held(&record(9), Some(9)))), Some((Difference::Stale, Fix::Put)));
        assert_eq!(classify(&source, Some(&held(&record(9), None))), Some((Difference::Stale, Fix::Put)));
        let mut other = record(10);
        other.base_price = Decimal::new(100, 2);
        assert_eq!(classify(&source, Some(&held(&other, None))), Some((Difference::Diverged, Fix::Replace)));
        assert_eq!(classify(&source, Some(&held(&other, Some(10)))), Some((Difference::Diverged, Fix::Reversion(10))));
        assert_eq!(classify(&source, Some(&held(&record(12), None))), Some((Difference::Diverged, Fix::Replace)));
        let garbage = raw(b"not a record".to_vec(), None);
        assert_eq!(classify(&source, Some(&garbage)), Some((Difference::Corrupt, Fix::Put)));
        // A valid header over a broken payload: Redis's guard would keep it.
        let mut bytes = encode(&source).unwrap().to_vec();
        bytes.truncate(12);
        assert_eq!(classify(&source, Some(&raw(bytes.clone(), None))), Some((Difference::Corrupt, Fix::Replace)));
        // In HBase only the cell timestamp matters, not what the bytes claim.
        assert_eq!(classify(&source, Some(&raw(bytes.clone(), Some(4)))), Some((Difference::Corrupt, Fix::Put)));
        assert_eq!(classify(&source, Some(&raw(bytes, Some(10)))), Some((Difference::Corrupt, Fix::Reversion(10))));
        // A negative timestamp stands in the way of nothing.
        assert_eq!(classify(&source, Some(&held(&record(9), Some(-1)))), Some((Difference::Stale, Fix::Put)));
        // Another goods' bytes under this key are corrupt for this goods.
        let mut foreign = record(3);
        foreign.goods_id = 8;
        assert_eq!(classify(&source, Some(&held(&foreign, None))), Some((Difference::Corrupt, Fix::Put)));
    }

    #[test]
    fn the_table_has_a_row_per_store_and_a_total() {
        let mut report = ReconcileReport { checked: 5, ..ReconcileReport::default() };
        report.found("redis-a", Difference::Missing, 1);
        report.found("hbase-b", Difference::Corrupt, 2);
        let table = report.table();
        assert!(table.contains("redis-a"), "{table}");
        assert!(table.contains("goods 2 corrupt"), "{table}");
        assert!(table.ends_with("5 goods checked, 2 differences\n"), "{table}");
        assert_eq!(report.differences(), 2);
    }
}
