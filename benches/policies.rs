//! Policy quality on real traces: every example policy on every trace in ../shared/traces
//! (capacity = trace mean / 20, start-up 60 s): unserved load, time under capacity, cost against
//! the oracle, scaling actions per day, and for predictive policies the forecast's MASE against a
//! seasonal-naive forecast with the same season (below 1: better than naive). The vertical
//! table adds, per trace, the least slack any recommender could reach with perfect foresight,
//! no OOM kill and no throttling at 1 and 4 request changes a day. `cargo bench --bench policies` prints the table;
//! skips with a message when the traces folder is absent. Under `cargo test` it runs the same
//! table on the shortest trace only, as a smoke test.

use setpoint::sim::{self, ServiceModel, Trace};
use std::path::Path;

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("../shared/traces");
    let Ok(mut traces) = sim::trace::csv_files(&dir) else {
        println!("skipped: {} is absent", dir.display());
        return;
    };
    if !bench {
        traces.retain(|p| p.to_string_lossy().contains("azure"));
    }
    let (policies, errors) = setpoint::policy::load_all(&[root.join("policies/examples")]);
    assert!(errors.is_empty(), "{errors:?}");
    println!(
        "| trace | policy | unserved % | under-capacity time % | cost vs oracle | actions/day | forecast MASE |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for t in &traces {
        let trace = Trace::load(t).unwrap();
        let name = t.file_stem().unwrap().to_string_lossy();
        for p in policies.iter().filter(|p| p.horizontal.is_some()) {
            let r = sim::run(p, &trace, ServiceModel::for_trace(&trace));
            let s = &r.summary;
            let mase = s
                .forecast_mase
                .map_or("-".to_string(), |m| format!("{m:.2}"));
            println!(
                "| {name} | {} | {:.3} | {:.2} | {:.3} | {:.1} | {mase} |",
                p.name,
                s.unserved_pct,
                s.under_time_pct,
                s.cost_vs_oracle,
                s.actions as f64 * 24.0 / s.hours
            );
        }
    }

    // The vertical examples: the trace as one container's usage shape (mean 0.5 core, 512 MiB).
    println!();
    println!(
        "| trace | policy | slack % (cpu / memory) | OOM kills | throttled minutes | request changes/day |"
    );
    println!("|---|---|---:|---:|---:|---:|");
    for t in &traces {
        let trace = Trace::load(t).unwrap();
        let name = t.file_stem().unwrap().to_string_lossy();
        for p in &policies {
            let Some(v) = &p.vertical else { continue };
            let s = sim::vertical::run(v, &trace, None).summary;
            println!(
                "| {name} | {} | {:.1} ({:.1} / {:.1}) | {} | {:.0} | {:.1} |",
                p.name,
                s.slack_pct,
                s.cpu_slack_pct.unwrap_or(f64::NAN),
                s.memory_slack_pct.unwrap_or(f64::NAN),
                s.oom_kills,
                s.throttled_minutes,
                s.request_changes_per_day
            );
        }
        // The floor: no recommender, however good its foresight, does better without an OOM
        // kill or a throttled minute at this many changes a day.
        for k in [1, 4] {
            let least = sim::vertical::least_slack_pct(&trace, k);
            println!(
                "| {name} | least possible, {k}/day | {least:.1} ({least:.1} / {least:.1}) | 0 | 0 | {k} |"
            );
        }
    }
}
