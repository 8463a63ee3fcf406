//! Scale to zero against the same policy with `min: 1`: policies/examples/queue-worker.yaml on
//! the built-in idle-nights workload (capacity = mean / 20, as `setpoint simulate --workload
//! idle-nights`) and on a generated week of a preview environment (sessions of 5-40 minutes at
//! 5-30 requests/s on weekday working hours, nothing otherwise; capacity 12.5/s, the policy's
//! 10 per replica at 80 %), start-up 60 s. Replica-hours, cold starts per day, time at zero,
//! unserved load overall and while waking. `cargo bench --bench scale_to_zero` prints the table
//! (docs/benchmarks/scale-to-zero.md); under `cargo test` it runs the same, a smoke test.

use setpoint::sim::{self, ServiceModel, Trace};
use std::path::Path;

/// A week from Monday 00:00 UTC at 60 s steps: on weekdays from 09:00 to 18:00 each minute
/// starts a session with probability 1/25 (5-40 minutes at 5-30 requests/s, sessions add up);
/// no load at night or at the weekend. Deterministic.
fn preview_week() -> Trace {
    let mut seed: u64 = 0x9e37_79b9;
    let mut next = move || {
        // A 64-bit LCG (Knuth's MMIX constants), the top 53 bits as [0, 1).
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let minutes = 7 * 1440;
    let mut load = vec![0.0; minutes];
    for m in 0..minutes {
        let (day, minute) = (m / 1440, m % 1440);
        if day >= 5 || !(9 * 60..18 * 60).contains(&minute) || next() >= 1.0 / 25.0 {
            continue;
        }
        let len = 5 + (next() * 35.0) as usize;
        let rate = 5.0 + next() * 25.0;
        for l in load.iter_mut().skip(m).take(len) {
            *l += rate;
        }
    }
    // 2026-03-02 is a Monday.
    let monday = 1_772_409_600.0;
    let times = (0..minutes).map(|m| monday + m as f64 * 60.0).collect();
    Trace::new(times, load)
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let zero = setpoint::policy::load(&root.join("policies/examples/queue-worker.yaml")).unwrap();
    let mut one = zero.clone();
    one.horizontal.as_mut().unwrap().governor.min = 1;
    let idle = Trace::idle_nights();
    let preview = preview_week();
    let runs = [
        ("idle-nights (2 d)", &idle, ServiceModel::for_trace(&idle)),
        (
            "preview week (7 d)",
            &preview,
            ServiceModel {
                capacity: 12.5,
                startup: 60.0,
            },
        ),
    ];
    println!(
        "| workload | min | replica-hours | vs min 1 | cold starts/day | at zero % of time | unserved % | unserved while waking % | actions/day |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, trace, model) in runs {
        let base = sim::run(&one, trace, model).summary;
        for (min, p) in [(0, &zero), (1, &one)] {
            let s = sim::run(p, trace, model).summary;
            let days = s.hours / 24.0;
            println!(
                "| {name} | {min} | {:.1} | {:+.1} % | {:.1} | {:.1} | {:.3} | {:.3} | {:.1} |",
                s.replica_hours,
                100.0 * (s.replica_hours / base.replica_hours - 1.0),
                s.cold_starts as f64 / days,
                s.zero_time_pct,
                s.unserved_pct,
                s.unserved_waking_pct,
                s.actions as f64 / days
            );
            if min == 0 {
                assert!(s.cold_starts > 0 && s.replica_hours < base.replica_hours);
            }
        }
    }
}
