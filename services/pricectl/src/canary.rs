//! `pricectl canary`: is the canary healthy? Reads the servers' /metrics
//! (Prometheus text) and prints, per canary variant, side by side: calls,
//! error ratio, p50 and p99 latency, the share of answers per tier, and
//! shadow mismatches over checks.
//!
//! Sources, summed over every scraped server:
//! - calls and errors: `pricing_grpc_requests_total{method, code, variant}`
//!   (an error is any code but OK);
//! - latency: `pricing_grpc_request_duration_seconds_bucket{variant, le}`,
//!   quantiles interpolated within a bucket as Prometheus'
//!   `histogram_quantile` does;
//! - tier shares: `pricing_list_tier_answers_total{variant, tier}` (list
//!   servers only);
//! - shadow: `pricing_shadow_mismatch_total{variant}` over
//!   `pricing_shadow_checks_total{variant}`.
//!
//! Counters are totals since each server started: compare variants, or run
//! twice and compare, rather than read them as rates.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What the scrapes say about one variant.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct VariantReport {
    pub calls: u64,
    pub errors: u64,
    /// Cumulative counts by upper bound (seconds; `f64::INFINITY` last).
    buckets: BTreeMap<Bound, f64>,
    pub tiers: BTreeMap<String, u64>,
    pub shadow_checks: u64,
    pub shadow_mismatches: u64,
}

/// A bucket bound, ordered (finite bounds from the exporter are never NaN).
#[derive(Debug, Clone, Copy)]
struct Bound(f64);

impl PartialEq for Bound {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}

impl Eq for Bound {}

impl PartialOrd for Bound {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Bound {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl VariantReport {
    /// Errors over calls; `None` without calls.
    pub fn error_ratio(&self) -> Option<f64> {
        (self.calls > 0).then(|| self.errors as f64 / self.calls as f64)
    }

    /// The `q` quantile of the latency in seconds, interpolated linearly
    /// within its bucket; `None` without observations. A quantile in the
    /// last (+Inf) bucket is the highest finite bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = *self.buckets.get(&Bound(f64::INFINITY))?;
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let (mut lower, mut below) = (0.0, 0.0);
        for (&Bound(upper), &count) in &self.buckets {
            if count >= rank {
                if upper.is_infinite() {
                    return Some(lower);
                }
                let inside = count - below;
                let fraction = if inside > 0.0 { (rank - below) / inside } else { 1.0 };
                return Some(lower + (upper - lower) * fraction);
            }
            (lower, below) = (upper, count);
        }
        Some(lower)
    }

    /// Each tier's share of the answers, in percent.
    pub fn tier_shares(&self) -> BTreeMap<String, f64> {
        let total: u64 = self.tiers.values().sum();
        self.tiers
            .iter()
            .filter(|(_, n)| total > 0 && **n > 0)
            .map(|(tier, n)| (tier.clone(), 100.0 * *n as f64 / total as f64))
            .collect()
    }
}

/// Per variant, from the text of several /metrics scrapes. `method`, when
/// given, keeps only that gRPC method's calls and latency.
pub fn report(scrapes: &[String], method: Option<&str>) -> BTreeMap<String, VariantReport> {
    let mut variants: BTreeMap<String, VariantReport> = BTreeMap::new();
    for text in scrapes {
        for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            let Some((name, labels, value)) = parse_line(line) else { continue };
            let label = |key: &str| labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
            let Some(variant) = label("variant") else { continue };
            let wanted_method = method.is_none_or(|m| label("method") == Some(m));
            let relevant = match name.as_str() {
                "pricing_grpc_requests_total" | "pricing_grpc_request_duration_seconds_bucket" => wanted_method,
                "pricing_list_tier_answers_total" | "pricing_shadow_checks_total" | "pricing_shadow_mismatch_total" => {
                    true
                }
                _ => false,
            };
            if !relevant {
                continue;
            }
            let entry = variants.entry(variant.to_owned()).or_default();
            match name.as_str() {
                "pricing_grpc_requests_total" => {
                    entry.calls += value as u64;
                    if label("code") != Some("OK") {
                        entry.errors += value as u64;
                    }
                }
                "pricing_grpc_request_duration_seconds_bucket" => {
                    let bound = match label("le") {
                        Some("+Inf") => f64::INFINITY,
                        Some(le) => match le.parse() {
                            Ok(le) => le,
                            Err(_) => continue,
                        },
                        None => continue,
                    };
                    *entry.buckets.entry(Bound(bound)).or_default() += value;
                }
                "pricing_list_tier_answers_total" => {
                    let tier = label("tier").unwrap_or("unspecified").to_owned();
                    *entry.tiers.entry(tier).or_default() += value as u64;
                }
                "pricing_shadow_checks_total" => entry.shadow_checks += value as u64,
                _ => entry.shadow_mismatches += value as u64,
            }
        }
    }
    variants
}

/// A series' labels, as (name, value) pairs.
type Labels = Vec<(String, String)>;

/// One sample line: name, labels, value.
fn parse_line(line: &str) -> Option<(String, Labels, f64)> {
    let (series, value) = line.rsplit_once(' ')?;
    let value: f64 = value.trim().parse().ok()?;
    let (name, rest) = match series.split_once('{') {
        Some((name, rest)) => (name, rest.strip_suffix('}')?),
        None => (series, ""),
    };
    let mut labels = Vec::new();
    let mut rest = rest;
    while let Some((key, after)) = rest.split_once("=\"") {
        // Label values from these servers hold no quotes or backslashes, but
        // read escapes anyway.
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(if escaped == 'n' { '\n' } else { escaped });
                    }
                }
                '"' => {
                    end = Some(i);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = end?;
        labels.push((key.trim_start_matches(',').trim().to_owned(), value));
        rest = &after[end + 1..];
    }
    Some((name.trim().to_owned(), labels, value))
}

/// The side-by-side table.
pub fn render(variants: &BTreeMap<String, VariantReport>) -> String {
    let mut tiers: Vec<String> = variants.values().flat_map(|v| v.tiers.keys().cloned()).collect();
    tiers.sort();
    tiers.dedup();
    let mut out = String::new();
    let _ = write!(
        out,
        "{:<20} {:>10} {:>8} {:>9} {:>9} {:>9}",
        "variant", "calls", "errors", "error %", "p50 ms", "p99 ms"
    );
    for tier in &tiers {
        let _ = write!(out, " {:>9}", format!("{tier} %"));
    }
    let _ = writeln!(out, " {:>18}", "shadow mism/checks");
    let ms = |s: Option<f64>| s.map_or_else(|| "-".to_owned(), |s| format!("{:.3}", s * 1000.0));
    for (name, v) in variants {
        let ratio = v.error_ratio().map_or_else(|| "-".to_owned(), |r| format!("{:.3}", r * 100.0));
        let _ = write!(
            out,
            "{:<20} {:>10} {:>8} {:>9} {:>9} {:>9}",
            name,
            v.calls,
            v.errors,
            ratio,
            ms(v.quantile(0.5)),
            ms(v.quantile(0.99))
        );
        let shares = v.tier_shares();
        for tier in &tiers {
            let share = shares.get(tier).map_or_else(|| "-".to_owned(), |s| format!("{s:.1}"));
            let _ = write!(out, " {share:>9}");
        }
        let _ = writeln!(out, " {:>18}", format!("{}/{}", v.shadow_mismatches, v.shadow_checks));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = r#"# TYPE pricing_grpc_requests_total counter
pricing_grpc_requests_total{service="ListPricing",method="BatchGetPrices",code="OK",variant="stable"} 900
pricing_grpc_requests_total{service="ListPricing",method="BatchGetPrices",code="UNAVAILABLE",variant="stable"} 100
pricing_grpc_requests_total{service="ListPricing",method="BatchGetPrices",code="OK",variant="beta"} 50
pricing_grpc_requests_total{service="Health",method="Check",code="OK",variant="none"} 7
pricing_grpc_request_duration_seconds_bucket{service="ListPricing",method="BatchGetPrices",variant="stable",le="0.001"} 500
pricing_grpc_request_duration_seconds_bucket{service="ListPricing",method="BatchGetPrices",variant="stable",le="0.002"} 900
pricing_grpc_request_duration_seconds_bucket{service="ListPricing",method="BatchGetPrices",variant="stable",le="0.01"} 1000
pricing_grpc_request_duration_seconds_bucket{service="ListPricing",method="BatchGetPrices",variant="stable",le="+Inf"} 1000
pricing_grpc_request_duration_seconds_sum{service="ListPricing",method="BatchGetPrices",variant="stable"} 1.5
pricing_list_tier_answers_total{variant="stable",tier="redis"} 300
pricing_list_tier_answers_total{variant="stable",tier="memory"} 700
pricing_list_tier_answers_total{variant="beta",tier="hbase"} 40
pricing_shadow_checks_total{variant="beta",path="list"} 20
pricing_shadow_mismatch_total{variant="beta",path="list"} 1
"#;

    const SECOND: &str = r#"pricing_grpc_requests_total{service="ListPricing",method="BatchGetPrices",code="OK",variant="beta"} 50
pricing_grpc_request_duration_seconds_bucket{service="ListPricing",method="BatchGetPrices",variant="beta",le="0.005"} 100
pricing_grpc_request_duration_seconds_bucket{service="ListPricing",method="BatchGetPrices",variant="beta",le="+Inf"} 100
"#;

    #[test]
    fn variants_are_summed_over_servers_side_by_side() {
        let r = report(&[LIST.to_owned(), SECOND.to_owned()], None);
        let stable = &r["stable"];
        assert_eq!((stable.calls, stable.errors), (1000, 100));
        assert_eq!(stable.error_ratio(), Some(0.1));
        // p50: rank 500 ends exactly at the first bucket's bound.
        assert!((stable.quantile(0.5).unwrap() - 0.001).abs() < 1e-12);
        // p99: rank 990 is 90/100 of the way through the (0.002, 0.01] bucket.
        assert!((stable.quantile(0.99).unwrap() - (0.002 + 0.008 * 0.9)).abs() < 1e-12);
        assert_eq!(stable.tier_shares()["memory"], 70.0);
        let beta = &r["beta"];
        assert_eq!((beta.calls, beta.errors), (100, 0), "both servers' calls");
        assert_eq!((beta.shadow_mismatches, beta.shadow_checks), (1, 20));
        assert_eq!(beta.tier_shares()["hbase"], 100.0);
        assert_eq!(r["none"].calls, 7);
        let table = render(&r);
        assert!(table.lines().next().unwrap().contains("hbase %"), "{table}");
        assert!(table.lines().any(|l| l.starts_with("beta") && l.contains("1/20")), "{table}");
    }

    #[test]
    fn a_method_filter_keeps_its_calls_only() {
        let r = report(&[LIST.to_owned()], Some("Check"));
        assert_eq!(r["none"].calls, 7);
        assert_eq!(r.get("stable").map(|v| v.calls).unwrap_or(0), 0);
    }

    #[test]
    fn a_quantile_in_the_overflow_bucket_is_the_highest_bound() {
        let text = "pricing_grpc_request_duration_seconds_bucket{variant=\"x\",le=\"1\"} 1\n\
                    pricing_grpc_request_duration_seconds_bucket{variant=\"x\",le=\"+Inf\"} 10\n";
        assert_eq!(report(&[text.to_owned()], None)["x"].quantile(0.99), Some(1.0));
        assert_eq!(VariantReport::default().quantile(0.5), None);
    }
}
