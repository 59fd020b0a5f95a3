//! SVG plots of a run: latency over time (p50 and p99 of each second) and
//! the latency distribution by percentile (the HdrHistogram plot: the x axis
//! counts nines, so the tail gets as much room as the median).
//!
//! plotters with only its SVG backend: text is written as SVG `<text>` and
//! sized by estimate, so no system font or C library is needed.

use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use plotters::prelude::*;

use crate::driver::RunReport;
use crate::requests::Rpc;

#[derive(Debug, thiserror::Error)]
#[error("plot {path}: {message}")]
pub struct PlotError {
    pub path: String,
    pub message: String,
}

const SIZE: (u32, u32) = (960, 480);
const COLOURS: [RGBColor; 5] =
    [RGBColor(31, 119, 180), RGBColor(255, 127, 14), RGBColor(44, 160, 44), RGBColor(214, 39, 40), BLACK];

/// File names written by [`write_all`].
pub const OVER_TIME: &str = "latency-over-time.svg";
pub const DISTRIBUTION: &str = "latency-distribution.svg";

/// Writes both plots into `dir` and returns their paths.
pub fn write_all(report: &RunReport, dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
    let over_time = dir.join(OVER_TIME);
    let distribution = dir.join(DISTRIBUTION);
    latency_over_time(report, &over_time)?;
    latency_distribution(report, &distribution)?;
    Ok(vec![over_time, distribution])
}

fn ms(us: u64) -> f64 {
    us as f64 / 1_000.0
}

/// p50 and p99 of the calls completed in each second, in milliseconds.
pub fn per_second(report: &RunReport) -> Vec<(f64, f64, f64)> {
    report
        .stats
        .timeline
        .iter()
        .enumerate()
        .filter(|(_, h)| !h.is_empty())
        .map(|(second, h)| (second as f64 + 0.5, ms(h.value_at_quantile(0.50)), ms(h.value_at_quantile(0.99))))
        .collect()
}

pub fn latency_over_time(report: &RunReport, path: &Path) -> Result<(), PlotError> {
    let fail = |e: &dyn std::fmt::Display| PlotError { path: path.display().to_string(), message: e.to_string() };
    let points = per_second(report);
    let x_max = (points.last().map_or(1.0, |p| p.0 + 0.5)).max(1.0);
    let y_max = points.iter().map(|p| p.2).fold(0.1_f64, f64::max) * 1.1;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let title = format!("{}: latency over time (every call, by second of completion)", report.scenario.name);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(|e| fail(&e))?;
    chart.configure_mesh().x_desc("seconds since start").y_desc("latency (ms)").draw().map_err(|e| fail(&e))?;
    for (i, (label, pick)) in [("p50", 1usize), ("p99", 2)].into_iter().enumerate() {
        let colour = COLOURS[i];
        let series = points.iter().map(|p| (p.0, if pick == 1 { p.1 } else { p.2 }));
        chart
            .draw_series(LineSeries::new(series, colour.stroke_width(2)))
            .map_err(|e| fail(&e))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

/// (nines, latency in ms) points: nines = -log10(1 - q), from q = 0 to 99.99%.
pub fn percentile_curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    (0..=400)
        .map(|step| {
            let nines = f64::from(step) / 100.0;
            let q = 1.0 - 10f64.powf(-nines);
            (nines, ms(h.value_at_quantile(q)))
        })
        .collect()
}

fn nines_label(x: &f64) -> String {
    let q = 100.0 * (1.0 - 10f64.powf(-x));
    match x.round() as i64 {
        _ if (x - x.round()).abs() > 1e-9 => format!("{q:.2}%"),
        0 => "0%".into(),
        n => format!("{:.*}%", usize::try_from(n - 2).unwrap_or(0), q),
    }
}

pub fn latency_distribution(report: &RunReport, path: &Path) -> Result<(), PlotError> {
    let fail = |e: &dyn std::fmt::Display| PlotError { path: path.display().to_string(), message: e.to_string() };
    let mut curves: Vec<(String, Vec<(f64, f64)>)> = Rpc::ALL
        .iter()
        .map(|&rpc| (rpc.name().to_owned(), percentile_curve(&report.stats.rpcs[rpc as usize].ok)))
        .filter(|(_, c)| !c.is_empty())
        .collect();
    curves.push(("all".into(), percentile_curve(&report.stats.overall().ok)));
    let y_max = curves.iter().flat_map(|(_, c)| c.iter().map(|p| p.1)).fold(0.1_f64, f64::max) * 1.1;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let title = format!("{}: latency by percentile (OK calls)", report.scenario.name);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..4f64, 0f64..y_max)
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_labels(5)
        .x_label_formatter(&nines_label)
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .draw()
        .map_err(|e| fail(&e))?;
    for (i, (label, curve)) in curves.into_iter().enumerate() {
        let colour = if label == "all" { BLACK } else { COLOURS[i % 4] };
        chart
            .draw_series(LineSeries::new(curve, colour.stroke_width(2)))
            .map_err(|e| fail(&e))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use tonic::Code;

    use super::*;
    use crate::driver::EndReason;
    use crate::scenario::Scenario;
    use crate::stats::Recorder;

    #[test]
    fn nines_are_labelled_as_percentiles() {
        assert_eq!(nines_label(&0.0), "0%");
        assert_eq!(nines_label(&1.0), "90%");
        assert_eq!(nines_label(&2.0), "99%");
        assert_eq!(nines_label(&3.0), "99.9%");
        assert_eq!(nines_label(&4.0), "99.99%");
    }

    #[test]
    fn both_svgs_are_written() {
        let mut stats = Recorder::default();
        for i in 0..3_000u64 {
            let rpc = Rpc::ALL[(i % 4) as usize];
            stats.record(rpc, Code::Ok, Duration::from_micros(500 + i % 700), Duration::from_millis(i), None);
        }
        let report = RunReport {
            scenario: Scenario::normal_day(),
            started_at: SystemTime::now(),
            elapsed: Duration::from_secs(3),
            end_reason: EndReason::Count,
            stats,
            scheduled: None,
            sent: 3_000,
            max_behind: Duration::ZERO,
            behind_limit: crate::driver::DEFAULT_BEHIND_LIMIT,
        };
        assert_eq!(per_second(&report).len(), 3);
        let dir = tempfile::tempdir().unwrap();
        let paths = write_all(&report, dir.path()).unwrap();
        for path in paths {
            let svg = std::fs::read_to_string(&path).unwrap();
            assert!(svg.starts_with("<svg"), "{}", path.display());
            assert!(svg.contains("<polyline"), "{} has no line", path.display());
            assert!(svg.contains("normal-day"), "{} has no title", path.display());
        }
        let dist = std::fs::read_to_string(dir.path().join(DISTRIBUTION)).unwrap();
        assert!(dist.contains("99.9%") && dist.contains("BatchGetPrices"));
    }
}
