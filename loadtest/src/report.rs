//! The summary: ghz's JSON report layout (so dashboards and scripts made for
//! ghz read it) with the driver's extra figures beside it, and a table for
//! people.
//!
//! Mapping to ghz: durations are integer nanoseconds (Go's time.Duration);
//! `average` is over every call, `fastest`, `slowest`, `latencyDistribution`
//! and `histogram` over the OK calls, as ghz computes them; status codes use
//! Go's names. ghz keeps every call in `details`; this driver keeps
//! histograms instead, so `details` is empty. Extra keys: `rpcs` (the same
//! figures per RPC), `percentiles` (p50/p90/p99/p99.9/max of OK calls and of
//! every call), `latencyByCode` (the same quantiles for the calls of each
//! status code, overall and per RPC), `latencyByCodeFromSend` (the same,
//! measured from each call's actual send: its service time), `timeline` (per second of completion:
//! calls, not OK, p50, p99, max), `scheduled`, `sent`, `maxBehind`, and
//! `windows` when asked for (the calls completed between given offsets: a
//! drill's before, during and after).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::driver::{EndReason, RunReport};
use crate::requests::Rpc;
use crate::scenario::Mode;
use crate::stats::RpcStats;

/// The percentiles ghz reports.
pub const GHZ_PERCENTILES: [u32; 7] = [10, 25, 50, 75, 90, 95, 99];

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GhzReport {
    pub name: String,
    pub end_reason: &'static str,
    pub options: GhzOptions,
    pub date: String,
    pub count: u64,
    pub total: u64,
    pub average: u64,
    pub fastest: u64,
    pub slowest: u64,
    pub rps: f64,
    pub error_distribution: BTreeMap<String, u64>,
    pub status_code_distribution: BTreeMap<&'static str, u64>,
    pub latency_distribution: Vec<LatencyPoint>,
    pub histogram: Vec<Bucket>,
    pub details: Vec<()>,
    pub rpcs: BTreeMap<&'static str, RpcSummary>,
    pub percentiles: Percentiles,
    /// Quantiles of the calls of each status code that occurred, by Go name.
    pub latency_by_code: BTreeMap<&'static str, CodeLatency>,
    /// The same, from each call's actual send instead of its due time.
    pub latency_by_code_from_send: BTreeMap<&'static str, CodeLatency>,
    /// Each second of the run by completion (the latency-over-time plot as numbers).
    pub timeline: Vec<Second>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled: Option<u64>,
    pub sent: u64,
    pub max_behind: u64,
    /// All RPCs by the canary variant that answered (`x-pricing-variant`;
    /// `none` for answers without one); absent when no call was answered.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub variants: BTreeMap<String, VariantSummary>,
    /// Open loop: the latest send after its due time in each second of the
    /// schedule, nanoseconds (the driver's own lateness).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub behind_per_second: Vec<u64>,
    /// The lateness a fair run stays within (nanoseconds).
    pub behind_limit: u64,
    /// Seconds in which the driver was later than `behind_limit`: when
    /// above zero the latency figures measure the driver too and are not
    /// to be quoted.
    pub seconds_behind: usize,
    /// Filled by the caller from [`windows`] (`--windows`); absent when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<Window>,
}

/// The latency of the calls of one status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CodeLatency {
    pub count: u64,
    /// Nanoseconds.
    pub average: u64,
    #[serde(flatten)]
    pub quantiles: Quantiles,
}

fn by_code(histograms: Vec<(&'static str, &Histogram<u64>)>) -> BTreeMap<&'static str, CodeLatency> {
    histograms
        .into_iter()
        .map(|(name, h)| (name, CodeLatency { count: h.len(), average: mean_ns(h), quantiles: Quantiles::of(h) }))
        .collect()
}

/// The calls that completed in one second of the run, every status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Second {
    pub second: u64,
    pub count: u64,
    pub not_ok: u64,
    /// Nanoseconds.
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}

fn timeline(report: &RunReport) -> Vec<Second> {
    let stats = &report.stats;
    stats
        .timeline
        .iter()
        .enumerate()
        .map(|(second, h)| {
            let q = Quantiles::of(h);
            Second {
                second: second as u64,
                count: h.len(),
                not_ok: stats.timeline_not_ok.get(second).copied().unwrap_or(0),
                p50: q.p50,
                p99: q.p99,
                max: q.max,
            }
        })
        .collect()
}

/// The calls that completed in `[from_s, to_s)` seconds since the start
/// (`to_s` absent: until the end), whatever their status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Window {
    pub from_s: u64,
    pub to_s: Option<u64>,
    pub count: u64,
    pub not_ok: u64,
    /// Every call completed in the window, nanoseconds.
    pub latency: Quantiles,
}

/// Windows between the given offsets (seconds since the start, any order,
/// duplicates ignored): `[0, m1)`, `[m1, m2)`, ..., `[mk, end)`. No marks,
/// no windows. Seconds are whole seconds of completion, as in the
/// latency-over-time plot.
pub fn windows(report: &RunReport, marks: &[u64]) -> Vec<Window> {
    if marks.is_empty() {
        return Vec::new();
    }
    let mut edges: Vec<u64> = marks.iter().copied().filter(|&m| m > 0).collect();
    edges.sort_unstable();
    edges.dedup();
    let starts = std::iter::once(0).chain(edges.iter().copied());
    let ends = edges.iter().copied().map(Some).chain(std::iter::once(None));
    starts
        .zip(ends)
        .map(|(from_s, to_s)| {
            let (h, not_ok) = report.stats.window(from_s, to_s);
            Window { from_s, to_s, count: h.len(), not_ok, latency: Quantiles::of(&h) }
        })
        .collect()
}

/// The windows as a table (empty string without windows).
pub fn windows_table(windows: &[Window]) -> String {
    let mut out = String::new();
    if windows.is_empty() {
        return out;
    }
    let _ = writeln!(out, "windows (seconds since the start, by completion; every call, latency in ms):");
    let _ = writeln!(
        out,
        "{:<15} {:>9} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "window", "calls", "not OK", "p50", "p90", "p99", "p99.9", "max"
    );
    for w in windows {
        let span = match w.to_s {
            Some(to) => format!("{}-{} s", w.from_s, to),
            None => format!("{}- s", w.from_s),
        };
        let q = w.latency;
        let _ = writeln!(
            out,
            "{span:<15} {:>9} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8}",
            w.count,
            w.not_ok,
            ms(q.p50),
            ms(q.p90),
            ms(q.p99),
            ms(q.p999),
            ms(q.max)
        );
    }
    out
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GhzOptions {
    pub host: String,
    pub call: String,
    pub insecure: bool,
    pub total: u64,
    pub concurrency: usize,
    pub qps: u64,
    pub connections: usize,
    pub duration: u64,
    pub timeout: u64,
    #[serde(rename = "CPUs")]
    pub cpus: usize,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LatencyPoint {
    pub percentage: u32,
    pub latency: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bucket {
    /// Upper edge of the bucket, in seconds (ghz's unit here).
    pub mark: f64,
    pub count: u64,
    pub frequency: f64,
}

/// p50/p90/p99/p99.9/max in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct Quantiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Quantiles {
    pub fn of(h: &Histogram<u64>) -> Quantiles {
        if h.is_empty() {
            return Quantiles::default();
        }
        let q = |q: f64| h.value_at_quantile(q) * 1_000;
        Quantiles { p50: q(0.50), p90: q(0.90), p99: q(0.99), p999: q(0.999), max: h.max() * 1_000 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Percentiles {
    pub ok: Quantiles,
    pub all: Quantiles,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RpcSummary {
    pub call: &'static str,
    pub count: u64,
    pub rps: f64,
    pub average: u64,
    pub status_code_distribution: BTreeMap<&'static str, u64>,
    pub percentiles: Percentiles,
    pub latency_by_code: BTreeMap<&'static str, CodeLatency>,
    pub latency_by_code_from_send: BTreeMap<&'static str, CodeLatency>,
}

/// One canary variant's calls, all RPCs together.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VariantSummary {
    pub count: u64,
    pub rps: f64,
    pub status_code_distribution: BTreeMap<&'static str, u64>,
    pub percentiles: Percentiles,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn mean_ns(h: &Histogram<u64>) -> u64 {
    if h.is_empty() { 0 } else { (h.mean() * 1_000.0) as u64 }
}

/// ghz's histogram: ten equal steps from the fastest to the slowest OK call
/// and one more at the slowest; each bucket counts the calls up to its mark.
pub fn buckets(ok: &Histogram<u64>) -> Vec<Bucket> {
    if ok.is_empty() {
        return Vec::new();
    }
    let (fastest, slowest) = (ok.min(), ok.max());
    let step = (slowest - fastest) as f64 / 10.0;
    let marks: Vec<f64> = (0..10).map(|i| fastest as f64 + step * i as f64).chain([slowest as f64]).collect();
    let mut counts = vec![0u64; marks.len()];
    for v in ok.iter_recorded() {
        let value = ok.highest_equivalent(v.value_iterated_to()).min(slowest) as f64;
        let i = marks.iter().position(|&m| value <= m).unwrap_or(marks.len() - 1);
        counts[i] += v.count_at_value();
    }
    let total = ok.len() as f64;
    marks
        .into_iter()
        .zip(counts)
        .map(|(mark_us, count)| Bucket { mark: mark_us / 1e6, count, frequency: count as f64 / total })
        .collect()
}

impl GhzReport {
    pub fn new(report: &RunReport) -> GhzReport {
        let s = &report.scenario;
        let overall = report.stats.overall();
        let secs = report.elapsed.as_secs_f64();
        let rpcs = Rpc::ALL
            .iter()
            .map(|&rpc| (rpc, &report.stats.rpcs[rpc as usize]))
            .filter(|(_, st)| st.count() > 0)
            .map(|(rpc, st)| {
                let summary = RpcSummary {
                    call: rpc.call(),
                    count: st.count(),
                    rps: if secs > 0.0 { st.count() as f64 / secs } else { 0.0 },
                    average: mean_ns(&st.all),
                    status_code_distribution: st.code_distribution(),
                    percentiles: Percentiles { ok: Quantiles::of(&st.ok), all: Quantiles::of(&st.all) },
                    latency_by_code: by_code(st.latency_by_code()),
                    latency_by_code_from_send: by_code(st.latency_by_code_from_send()),
                };
                (rpc.name(), summary)
            })
            .collect();
        let used: Vec<&str> = Rpc::ALL.iter().filter(|&&r| s.mix.weight(r) > 0).map(|r| r.call()).collect();
        GhzReport {
            name: s.name.clone(),
            end_reason: match report.end_reason {
                EndReason::Count => "normal",
                EndReason::Duration => "timeout",
            },
            options: GhzOptions {
                host: format!("list={} detail={}", s.target.list, s.target.detail),
                call: used.join(","),
                insecure: true,
                total: s.load.max_requests,
                concurrency: s.load.concurrency,
                qps: if s.load.mode == Mode::Open { s.load.rate } else { 0 },
                connections: s.target.connections,
                duration: nanos(Duration::from_secs(s.load.duration_s)),
                timeout: nanos(s.timeout()),
                cpus: std::thread::available_parallelism().map_or(1, usize::from),
                name: s.name.clone(),
            },
            date: rfc3339(report.started_at),
            count: overall.count(),
            total: nanos(report.elapsed),
            average: mean_ns(&overall.all),
            fastest: if overall.ok.is_empty() { 0 } else { overall.ok.min() * 1_000 },
            slowest: if overall.ok.is_empty() { 0 } else { overall.ok.max() * 1_000 },
            rps: report.rps(),
            error_distribution: report.stats.errors.clone(),
            status_code_distribution: overall.code_distribution(),
            latency_distribution: if overall.ok.is_empty() {
                Vec::new()
            } else {
                GHZ_PERCENTILES
                    .iter()
                    .map(|&p| LatencyPoint {
                        percentage: p,
                        latency: overall.ok.value_at_quantile(f64::from(p) / 100.0) * 1_000,
                    })
                    .collect()
            },
            histogram: buckets(&overall.ok),
            details: Vec::new(),
            rpcs,
            percentiles: Percentiles { ok: Quantiles::of(&overall.ok), all: Quantiles::of(&overall.all) },
            latency_by_code: by_code(overall.latency_by_code()),
            latency_by_code_from_send: by_code(overall.latency_by_code_from_send()),
            timeline: timeline(report),
            scheduled: report.scheduled,
            sent: report.sent,
            max_behind: nanos(report.max_behind),
            variants: report
                .stats
                .variants
                .iter()
                .map(|(name, st)| {
                    let summary = VariantSummary {
                        count: st.count(),
                        rps: if secs > 0.0 { st.count() as f64 / secs } else { 0.0 },
                        status_code_distribution: st.code_distribution(),
                        percentiles: Percentiles { ok: Quantiles::of(&st.ok), all: Quantiles::of(&st.all) },
                    };
                    (name.clone(), summary)
                })
                .collect(),
            behind_per_second: report.stats.behind_us.iter().map(|us| us * 1_000).collect(),
            behind_limit: nanos(report.behind_limit),
            seconds_behind: seconds_behind(report),
            windows: Vec::new(),
        }
    }
}

/// Seconds of an open-loop run in which the driver sent some call later
/// than the run's limit after its due time.
pub fn seconds_behind(report: &RunReport) -> usize {
    let limit = u64::try_from(report.behind_limit.as_micros()).unwrap_or(u64::MAX);
    report.stats.behind_us.iter().filter(|&&us| us > limit).count()
}

/// The driver's lateness, and whether the run is fair: one line.
pub fn lateness_line(report: &RunReport) -> String {
    let per_second = &report.stats.behind_us;
    let mut sorted = per_second.clone();
    sorted.sort_unstable();
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0);
    let worst = sorted.last().copied().unwrap_or(0);
    let behind = seconds_behind(report);
    let limit = report.behind_limit.as_secs_f64() * 1e3;
    let head = format!(
        "driver lateness (latest send after its due time, per second): median {:.2} ms, worst {:.2} ms",
        median as f64 / 1e3,
        worst as f64 / 1e3
    );
    if behind == 0 {
        format!("{head}; within {limit:.1} ms every second: a fair run")
    } else {
        let seconds: Vec<String> = per_second
            .iter()
            .enumerate()
            .filter(|(_, us)| **us > u64::try_from(report.behind_limit.as_micros()).unwrap_or(u64::MAX))
            .take(10)
            .map(|(s, us)| format!("{s}s:{:.1}ms", *us as f64 / 1e3))
            .collect();
        format!(
            "{head}; UNFAIR RUN: the driver fell behind by more than {limit:.1} ms in {behind} of {} seconds ({}): its latency figures include the driver's own delay, do not quote them",
            per_second.len(),
            seconds.join(" ")
        )
    }
}

/// A UTC timestamp like `2024-11-21T04:56:07Z` (no date crate for one line).
pub fn rfc3339(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3_600, rem % 3_600 / 60, rem % 60)
}

fn ms(ns: u64) -> String {
    format!("{:.2}", ns as f64 / 1e6)
}

fn row(out: &mut String, name: &str, st: &RpcStats, secs: f64) {
    let q = Quantiles::of(&st.ok);
    let rps = if secs > 0.0 { st.count() as f64 / secs } else { 0.0 };
    let _ = writeln!(
        out,
        "{name:<15} {:>9} {:>9.1} {:>9} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        st.count(),
        rps,
        st.codes[0],
        st.not_ok(),
        ms(mean_ns(&st.ok)),
        ms(q.p50),
        ms(q.p90),
        ms(q.p99),
        ms(q.p999),
        ms(q.max),
    );
}

/// The table printed at the end of a run.
pub fn table(report: &RunReport) -> String {
    let s = &report.scenario;
    let secs = report.elapsed.as_secs_f64();
    let mut out = String::new();
    let pacing = match s.load.mode {
        Mode::Open => format!("open loop at {}/s, at most {} in flight", s.load.rate, s.load.concurrency),
        Mode::Closed => format!("closed loop, {} workers", s.load.concurrency),
    };
    let _ = writeln!(
        out,
        "scenario {}: {pacing}, {} connections per server, zipf s={}",
        s.name, s.target.connections, s.keys.zipf_exponent
    );
    let _ = write!(out, "{} calls in {:.2} s = {:.1}/s", report.stats.count(), secs, report.rps());
    if let Some(scheduled) = report.scheduled {
        let _ = write!(
            out,
            "; scheduled {scheduled}, sent {}, most behind schedule {} ms",
            report.sent,
            report.max_behind.as_millis()
        );
    }
    let _ = writeln!(out);
    if s.load.mode == Mode::Open {
        let _ = writeln!(out, "{}", lateness_line(report));
    }
    let _ = writeln!(
        out,
        "{:<15} {:>9} {:>9} {:>9} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "rpc", "calls", "calls/s", "OK", "not OK", "mean", "p50", "p90", "p99", "p99.9", "max"
    );
    for rpc in Rpc::ALL {
        let st = &report.stats.rpcs[rpc as usize];
        if st.count() > 0 {
            row(&mut out, rpc.name(), st, secs);
        }
    }
    row(&mut out, "all", &report.stats.overall(), secs);
    // Split by canary variant when the servers named one.
    if report.stats.variants.keys().any(|name| name != "none") {
        let _ = writeln!(out, "by canary variant (x-pricing-variant), all RPCs:");
        for (name, st) in &report.stats.variants {
            row(&mut out, &format!("  {name}"), st, secs);
        }
    }
    let measured = match s.load.mode {
        Mode::Open => "open loop: from each call's due time",
        Mode::Closed => "closed loop: from each call's send",
    };
    let _ = writeln!(out, "(latency in ms, OK calls; {measured})");
    let codes: Vec<String> =
        report.stats.overall().code_distribution().iter().map(|(name, n)| format!("{name} {n}")).collect();
    let _ = writeln!(out, "status codes: {}", if codes.is_empty() { "(no calls)".into() } else { codes.join(", ") });
    let overall = report.stats.overall();
    if overall.not_ok() > 0 {
        // A refusal's latency is a figure of its own (load shedding must be fast).
        let mut sections =
            vec![("latency by status code (ms, every call with that code, all RPCs)", overall.latency_by_code())];
        if s.load.mode == Mode::Open {
            sections
                .push(("the same from each call's actual send (service time)", overall.latency_by_code_from_send()));
        }
        for (title, histograms) in sections {
            let _ = writeln!(out, "{title}:");
            for (name, h) in histograms {
                let q = Quantiles::of(h);
                let _ = writeln!(
                    out,
                    "  {name:<18} {:>9} mean {:>8} p50 {:>8} p90 {:>8} p99 {:>8} p99.9 {:>8} max {:>8}",
                    h.len(),
                    ms(mean_ns(h)),
                    ms(q.p50),
                    ms(q.p90),
                    ms(q.p99),
                    ms(q.p999),
                    ms(q.max)
                );
            }
        }
    }
    let mut errors: Vec<(&String, &u64)> = report.stats.errors.iter().collect();
    errors.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (message, n) in errors.iter().take(10) {
        let _ = writeln!(out, "  {n:>8}  {message}");
    }
    if errors.len() > 10 {
        let _ = writeln!(out, "  ... {} more distinct errors in the JSON report", errors.len() - 10);
    }
    out
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;
    use crate::scenario::Scenario;
    use crate::stats::Recorder;

    fn sample() -> RunReport {
        let mut stats = Recorder::default();
        let ms = Duration::from_millis;
        for i in 1..=100u64 {
            stats.record(Rpc::BatchGetPrices, Code::Ok, ms(i), ms(i * 10), None);
        }
        stats.record(Rpc::GetGoodsPrice, Code::NotFound, ms(1), ms(5), Some("goods 4 not found"));
        stats.record(Rpc::PriceOrder, Code::Unavailable, ms(500), ms(900), Some("no store"));
        RunReport {
            scenario: Scenario::normal_day(),
            started_at: UNIX_EPOCH + Duration::from_secs(1_732_164_967),
            elapsed: Duration::from_secs(2),
            end_reason: EndReason::Duration,
            stats,
            scheduled: Some(102),
            sent: 102,
            max_behind: ms(3),
            behind_limit: crate::driver::DEFAULT_BEHIND_LIMIT,
        }
    }

    #[test]
    fn a_run_whose_driver_fell_behind_is_marked_not_quoted() {
        let mut report = sample();
        let ms = Duration::from_millis;
        report.stats.record_behind(ms(100), Duration::from_micros(900));
        report.stats.record_behind(ms(1_500), Duration::from_micros(1_200));
        assert_eq!(seconds_behind(&report), 0);
        assert!(lateness_line(&report).contains("a fair run"), "{}", lateness_line(&report));
        report.stats.record_behind(ms(2_100), ms(24));
        let line = lateness_line(&report);
        assert_eq!(seconds_behind(&report), 1);
        assert!(line.contains("UNFAIR RUN") && line.contains("2s:24.0ms"), "{line}");
        assert!(table(&report).contains("UNFAIR RUN"));
        let json = serde_json::to_value(GhzReport::new(&report)).unwrap();
        assert_eq!(json["secondsBehind"], 1, "{json}");
        assert_eq!(json["behindPerSecond"][2], 24_000_000);
    }

    #[test]
    fn the_json_has_ghz_keys_and_units() {
        let json = serde_json::to_value(GhzReport::new(&sample())).unwrap();
        for key in [
            "name",
            "endReason",
            "options",
            "date",
            "count",
            "total",
            "average",
            "fastest",
            "slowest",
            "rps",
            "errorDistribution",
            "statusCodeDistribution",
            "latencyDistribution",
            "histogram",
            "details",
        ] {
            assert!(json.get(key).is_some(), "ghz key {key} missing");
        }
        assert_eq!(json["date"], "2024-11-21T04:56:07Z");
        assert_eq!(json["count"], 102);
        assert_eq!(json["total"], 2_000_000_000u64, "durations are nanoseconds");
        assert_eq!(json["rps"], 51.0);
        assert_eq!(json["endReason"], "timeout");
        assert_eq!(json["options"]["qps"], 1_000);
        assert_eq!(json["options"]["CPUs"].as_u64().map(|n| n >= 1), Some(true));
        assert_eq!(json["statusCodeDistribution"], serde_json::json!({"OK": 100, "NotFound": 1, "Unavailable": 1}));
        assert_eq!(json["errorDistribution"]["rpc error: code = NotFound desc = goods 4 not found"], 1);
        // fastest/slowest/percentiles over the 100 OK calls of 1..=100 ms.
        assert_eq!(json["fastest"], 1_000_000);
        let slowest = json["slowest"].as_u64().unwrap();
        assert!((100_000_000..100_100_000).contains(&slowest), "{slowest}");
        let dist = json["latencyDistribution"].as_array().unwrap();
        assert_eq!(
            dist.iter().map(|p| p["percentage"].as_u64().unwrap()).collect::<Vec<_>>(),
            vec![10, 25, 50, 75, 90, 95, 99]
        );
        let p50 = dist[2]["latency"].as_u64().unwrap();
        assert!((50_000_000..50_100_000).contains(&p50), "p50 {p50}");
        // The average is over every call, errors included (as ghz does).
        let avg = json["average"].as_u64().unwrap();
        assert!((54_400_000..54_600_000).contains(&avg), "average {avg}");
        let buckets = json["histogram"].as_array().unwrap();
        assert_eq!(buckets.len(), 11);
        assert_eq!(buckets.iter().map(|b| b["count"].as_u64().unwrap()).sum::<u64>(), 100);
        assert_eq!(buckets[0]["mark"], 0.001, "marks are seconds");
        assert_eq!(json["details"], serde_json::json!([]));
        assert_eq!(json["rpcs"]["PriceOrder"]["statusCodeDistribution"], serde_json::json!({"Unavailable": 1}));
        assert_eq!(json["rpcs"]["BatchGetPrices"]["count"], 100);
        assert!(json["rpcs"].get("PreviewOrder").is_none(), "RPCs without calls are left out");
        assert_eq!(json["percentiles"]["all"]["max"].as_u64().map(|m| m >= 500_000_000), Some(true));
        assert_eq!((json["scheduled"].as_u64(), json["sent"].as_u64()), (Some(102), Some(102)));
        assert_eq!(json["latencyByCode"]["OK"]["count"], 100);
        assert_eq!(json["latencyByCode"]["Unavailable"]["count"], 1);
        let unavailable_max = json["latencyByCode"]["Unavailable"]["max"].as_u64().unwrap();
        assert!((500_000_000..500_500_000).contains(&unavailable_max), "{unavailable_max}");
        assert_eq!(json["latencyByCode"]["NotFound"]["p99"].as_u64().map(|p| p < 1_100_000), Some(true));
        assert_eq!(json["rpcs"]["GetGoodsPrice"]["latencyByCode"]["NotFound"]["count"], 1);
        assert!(json["rpcs"]["GetGoodsPrice"]["latencyByCode"].get("OK").is_none());
        assert_eq!(json["latencyByCodeFromSend"]["Unavailable"]["count"], 1);
        assert_eq!(json["rpcs"]["GetGoodsPrice"]["latencyByCodeFromSend"]["NotFound"]["count"], 1);
        assert!(json.get("windows").is_none(), "no windows unless asked");
        // Completions at 5 ms .. 1 s: seconds 0 (101 calls, 2 not OK) and 1 (the 1000 ms call).
        let seconds = json["timeline"].as_array().unwrap();
        assert_eq!(seconds.iter().map(|s| s["count"].as_u64().unwrap()).collect::<Vec<_>>(), [101, 1]);
        assert_eq!(seconds.iter().map(|s| s["notOk"].as_u64().unwrap()).collect::<Vec<_>>(), [2, 0]);
        assert_eq!(seconds[1]["second"], 1);
        assert!(seconds[1]["p99"].as_u64().unwrap() >= 100_000_000, "the 100 ms call completed in second 1");
    }

    #[test]
    fn windows_split_the_run_at_the_marks() {
        let report = sample();
        // Completions: OK calls at 10..=1000 ms, NotFound at 5 ms, Unavailable at 900 ms.
        let ws = windows(&report, &[1, 0, 1]);
        assert_eq!(ws.len(), 2, "0 and duplicates are not edges");
        assert_eq!((ws[0].from_s, ws[0].to_s, ws[1].from_s, ws[1].to_s), (0, Some(1), 1, None));
        assert_eq!((ws[0].count, ws[0].not_ok), (101, 2));
        assert_eq!((ws[1].count, ws[1].not_ok), (1, 0));
        assert!(windows(&report, &[]).is_empty());
        let text = windows_table(&ws);
        assert!(text.lines().any(|l| l.starts_with("0-1 s") && l.contains("101")), "{text}");
        assert!(text.lines().any(|l| l.starts_with("1- s")), "{text}");
        let mut ghz = GhzReport::new(&report);
        ghz.windows = ws;
        let json = serde_json::to_value(&ghz).unwrap();
        assert_eq!(json["windows"][0]["notOk"], 2);
        assert_eq!(json["windows"][1]["toS"], serde_json::Value::Null);
    }

    #[test]
    fn the_table_has_a_row_per_rpc_and_the_codes() {
        let table = table(&sample());
        assert!(table.contains("scenario normal-day: open loop at 1000/s"), "{table}");
        assert!(table.lines().any(|l| l.starts_with("BatchGetPrices") && l.contains("100")), "{table}");
        assert!(table.lines().any(|l| l.starts_with("all ")), "{table}");
        assert!(!table.contains("PreviewOrder"), "{table}");
        assert!(table.contains("status codes: NotFound 1, OK 100, Unavailable 1"), "{table}");
        assert!(table.contains("rpc error: code = Unavailable desc = no store"), "{table}");
        let unavailable = table.lines().find(|l| l.trim_start().starts_with("Unavailable ")).expect("a latency row");
        assert!(unavailable.contains("max   500."), "{unavailable}");
        assert!(table.lines().any(|l| l.trim_start().starts_with("OK ") && l.contains(" 100 ")), "{table}");
        assert!(table.contains("the same from each call's actual send"), "open loop: both measures, {table}");
        assert_eq!(table.lines().filter(|l| l.trim_start().starts_with("Unavailable ")).count(), 2, "{table}");
    }

    #[test]
    fn the_report_splits_calls_by_canary_variant() {
        let mut report = sample();
        let ms = Duration::from_millis;
        for i in 0..30 {
            let variant = if i % 3 == 0 { "beta" } else { "stable" };
            report.stats.record_variant(Some(variant), Code::Ok, ms(1 + i), ms(1 + i));
        }
        report.stats.record_variant(Some("beta"), Code::Unavailable, ms(2), ms(2));
        report.stats.record_variant(None, Code::Ok, ms(1), ms(1));
        let table = table(&report);
        assert!(table.contains("by canary variant"), "{table}");
        assert!(table.lines().any(|l| l.trim_start().starts_with("beta ") && l.contains(" 11 ")), "{table}");
        assert!(table.lines().any(|l| l.trim_start().starts_with("stable ") && l.contains(" 20 ")), "{table}");
        let json = serde_json::to_value(GhzReport::new(&report)).unwrap();
        assert_eq!(json["variants"]["beta"]["count"], 11);
        assert_eq!(json["variants"]["beta"]["statusCodeDistribution"]["Unavailable"], 1);
        assert_eq!(json["variants"]["none"]["count"], 1);
        // Without variant headers there is no split.
        assert!(!super::table(&sample()).contains("by canary variant"));
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(4_102_444_799)), "2099-12-31T23:59:59Z");
    }
}
