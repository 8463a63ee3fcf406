//! Presenting a run: the JSON document, a short table, and an SVG plot.

use super::{SeriesPoint, SimResult};
use plotters::prelude::*;
use std::path::Path;

/// A short human table of the summary.
pub fn table(r: &SimResult) -> String {
    let s = &r.summary;
    let rows = [
        ("simulated", format!("{:.1} h", s.hours)),
        ("capacity/replica", format!("{:.4} req/s", s.capacity)),
        ("start-up", format!("{} s", s.startup_s)),
        ("unserved", format!("{:.3} % of load", s.unserved_pct)),
        (
            "under capacity",
            format!("{:.2} % of time", s.under_time_pct),
        ),
        ("cost vs oracle", format!("{:.3}", s.cost_vs_oracle)),
        (
            "scaling actions",
            format!(
                "{} ({:.1}/day)",
                s.actions,
                s.actions as f64 * 24.0 / s.hours.max(1e-9)
            ),
        ),
        ("replica-hours", format!("{:.1}", s.replica_hours)),
        ("peak replicas", s.max_replicas.to_string()),
    ];
    let zero = [
        (
            "cold starts",
            format!(
                "{} ({:.1}/day)",
                s.cold_starts,
                s.cold_starts as f64 * 24.0 / s.hours.max(1e-9)
            ),
        ),
        ("at zero", format!("{:.1} % of time", s.zero_time_pct)),
        (
            "unserved waking",
            format!("{:.3} % of load", s.unserved_waking_pct),
        ),
    ];
    // The scale-to-zero rows only for a run that was ever at zero.
    let ever_zero = s.cold_starts > 0 || s.zero_time_pct > 0.0;
    let rows = rows.iter().chain(zero.iter().filter(|_| ever_zero));
    rows.map(|(k, v)| format!("{k:<18}{v}\n")).collect()
}

/// A short human table of a vertical run.
pub fn vertical_table(r: &super::vertical::VerticalResult) -> String {
    let s = &r.summary;
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} %"));
    let rows = [
        (
            "slack",
            format!(
                "{:.1} % of request (cpu {}, memory {})",
                s.slack_pct,
                opt(s.cpu_slack_pct),
                opt(s.memory_slack_pct)
            ),
        ),
        ("OOM kills", s.oom_kills.to_string()),
        ("throttled", format!("{:.0} minutes", s.throttled_minutes)),
        (
            "request changes",
            format!(
                "{} ({:.1}/day)",
                s.request_changes, s.request_changes_per_day
            ),
        ),
    ];
    rows.iter().map(|(k, v)| format!("{k:<18}{v}\n")).collect()
}

/// Folds the series into at most `n` buckets (mean load, mean ready capacity, max replicas), so a
/// two-week trace still draws as a readable, small SVG.
fn downsample(series: &[SeriesPoint], n: usize) -> Vec<SeriesPoint> {
    let per = series.len().div_ceil(n.max(1)).max(1);
    series
        .chunks(per)
        .map(|c| {
            let k = c.len() as f64;
            SeriesPoint {
                t: c[0].t,
                load: c.iter().map(|p| p.load).sum::<f64>() / k,
                ready_capacity: c.iter().map(|p| p.ready_capacity).sum::<f64>() / k,
                replicas: c.iter().map(|p| p.replicas).max().unwrap_or(0),
            }
        })
        .collect()
}

/// Writes an SVG of load, ready capacity and replicas over time.
pub fn plot(r: &SimResult, title: &str, path: &Path) -> Result<(), String> {
    let pts = downsample(&r.series, 1500);
    let hours = r.summary.hours.max(1e-6);
    let ymax = pts
        .iter()
        .map(|p| p.load.max(p.ready_capacity))
        .fold(1e-9, f64::max)
        * 1.05;
    // The right axis is scaled so that n replicas sit at the height of their capacity: the ready
    // capacity line then also reads as ready replicas, and desired replicas above it are starting.
    let ymax = ymax.max(r.summary.max_replicas as f64 * r.summary.capacity * 1.05);
    let rmax = ymax / r.summary.capacity.max(1e-12);
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::new(path, (1200, 520)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .right_y_label_area_size(60)
            .build_cartesian_2d(0.0..hours, 0.0..ymax)?
            .set_secondary_coord(0.0..hours, 0.0..rmax);
        chart
            .configure_mesh()
            .x_desc("hours")
            .y_desc("requests/s")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| crate::engine::fmt_num(*y))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        chart
            .configure_secondary_axes()
            .y_desc("replicas")
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()?;
        let at = |p: &SeriesPoint| p.t / 3600.0;
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|p| (at(p), p.load)),
                BLUE.stroke_width(1),
            ))?
            .label("offered load")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|p| (at(p), p.ready_capacity)),
                GREEN.stroke_width(2),
            ))?
            .label("ready capacity")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREEN));
        chart
            .draw_secondary_series(LineSeries::new(
                pts.iter().map(|p| (at(p), p.replicas as f64)),
                RED.mix(0.7).stroke_width(1),
            ))?
            .label("desired replicas (right axis)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| format!("{}: cannot write the plot: {e}", path.display()))
}
