//! Sizing for an SLO, out of sample: for every trace in ../shared/traces (capacity = trace mean /
//! 20, start-up 60 s), `tune` the predictive example on the first half for unserved load <= 0.1 %,
//! then simulate the whole trace and score the second half only; the same for the hpa example
//! with its target lowered on the first half until it meets the SLO there. Prints, per trace, the
//! tuned policy's and the HPA's cost (vs oracle), unserved load and actions on the second half,
//! the cost ratio, and the geometric mean of the ratios, with the goal checked.
//!
//! `cargo bench --bench slo` prints the table; it skips with a message when the traces folder is
//! absent. `SLO_TRACES=nasa,twitter cargo bench --bench slo` runs only the traces whose file
//! names contain one of those words. Under `cargo test` it runs on the shortest trace with a
//! small search space, as a smoke test.

use setpoint::sim::tune::{self, Space};
use setpoint::sim::{self, ServiceModel, Trace};
use std::path::Path;
use std::time::Instant;

const SLO_PCT: f64 = 0.1;

fn half(t: &Trace) -> (Trace, f64) {
    let n = t.values.len() / 2;
    (
        Trace::new(t.times[..n].to_vec(), t.values[..n].to_vec()),
        t.times[n],
    )
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("../shared/traces");
    let Ok(mut traces) = sim::trace::csv_files(&dir) else {
        println!("skipped: {} is absent", dir.display());
        return;
    };
    if let Ok(only) = std::env::var("SLO_TRACES") {
        let words: Vec<&str> = only.split(',').map(str::trim).collect();
        traces.retain(|p| words.iter().any(|w| p.to_string_lossy().contains(w)));
    }
    let space = if bench {
        Space::standard()
    } else {
        traces.retain(|p| p.to_string_lossy().contains("azure"));
        Space {
            quantiles: vec![0.99, 0.9999],
            margins: vec![0.0],
            smoothings: vec![1.0],
            windows: vec![600.0],
            tolerances: vec![0.0],
            down_percents: vec![100.0],
            tolerance_ups: vec![0.0],
            calibrations: vec![setpoint::forecast::quantile::CALIBRATION, 0.0],
            adaptive: Some(0.95),
        }
    };
    let load =
        |name: &str| setpoint::policy::load(&root.join("policies/examples").join(name)).unwrap();
    let (policy, hpa) = (load("predictive.yaml"), load("hpa.yaml"));
    println!(
        "| trace | tuned setting (first half) | tuned: cost | unserved % | actions | hpa target | hpa: cost | unserved % | actions | cost ratio | tune time |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let (mut log_sum, mut n, mut worst, mut all_ok) = (0.0, 0, 0.0f64, true);
    for path in &traces {
        let name = path.file_stem().unwrap().to_string_lossy();
        let full = Trace::load(path).unwrap();
        let model = ServiceModel::for_trace(&full);
        let (first, split) = half(&full);
        let started = Instant::now();
        let o = tune::tune(&policy, &hpa, &first, model, SLO_PCT, &space, &|_| {}).unwrap();
        let took = started.elapsed().as_secs_f64();
        let hpa_target = o.hpa.lowered.as_ref().map(|(t, _)| *t);
        let h = hpa_target.map(|t| {
            sim::run_from(&tune::hpa_at(&hpa, t, model.capacity), &full, model, split).summary
        });
        let Some(best) = &o.best else {
            println!(
                "| {name} | no setting met {SLO_PCT} % on the first half | | | | | | | | | {took:.1} s |"
            );
            all_ok = false;
            continue;
        };
        let tuned = tune::apply(&policy, &best.setting, model).unwrap();
        let r = sim::run_from(&tuned, &full, model, split).summary;
        let s = &best.setting;
        let setting = s.summary();
        let (hs, ratio) = match &h {
            Some(h) => (
                format!(
                    "{} | {:.3} | {:.3} | {}",
                    hpa_target.unwrap_or(f64::NAN),
                    h.cost_vs_oracle,
                    h.unserved_pct,
                    h.actions
                ),
                r.cost_vs_oracle / h.cost_vs_oracle,
            ),
            None => ("none met the SLO | | | ".to_string(), f64::NAN),
        };
        if ratio.is_finite() {
            log_sum += ratio.ln();
            n += 1;
            worst = worst.max(ratio);
        }
        let ok = ratio <= 1.0
            && r.unserved_pct <= 0.15
            && h.as_ref().is_some_and(|h| r.actions <= h.actions);
        all_ok &= ok;
        println!(
            "| {name} | {setting} | {:.3} | {:.3} | {} | {hs} | {ratio:.3} | {took:.1} s |",
            r.cost_vs_oracle, r.unserved_pct, r.actions
        );
    }
    if n > 0 {
        let geo = (log_sum / n as f64).exp();
        println!();
        println!(
            "geometric mean cost ratio {geo:.3} over {n} traces (goal <= 0.75), worst {worst:.3} (goal <= 1.0); \
             every trace within 0.15 % unserved, 1.0x cost and the HPA's actions: {all_ok}"
        );
    }
}
