//! Backtest speed, in simulated days per second, over 14 days of history backfilled into a real
//! Prometheus on 127.0.0.1 (the synthetic workload repeated, at 15 s steps): the range queries
//! (fetched in chunks), the replay through the engine and the service model, and both together.
//!
//! `cargo bench --bench backtest` prints a table of medians. Under `cargo test` (no `--bench`
//! argument) it only replays a small recorded range, to keep the test run short. Without
//! `/usr/bin/prometheus` it says so and stops.

#[path = "../tests/support/mod.rs"]
mod support;

use setpoint::backtest::{self, Range, Recorded, Replay};
use setpoint::policy::{self, Policy};
use setpoint::prometheus::{PrometheusClient, PrometheusConfig};
use setpoint::sim::{self, Trace};
use std::path::Path;
use std::time::{Duration, Instant};
use support::prometheus::{self as prom, Options, Prometheus, Series};

/// Days of history.
const DAYS: usize = 14;
/// Timed runs per row.
const RUNS: usize = 5;

fn policy(name: &str, extra: &str) -> Policy {
    let text = format!(
        "apiVersion: setpoint.dev/v1alpha1\nkind: ScalingPolicy\nmetadata: {{name: {name}}}\n\
         spec:\n  target: {{kind: Deployment, name: web}}\n  interval: 15s\n  horizontal:\n    \
         preset: hpa\n    replicas: {{min: 1, max: 500}}\n    metrics:\n      \
         - {{name: rps, prometheus: setpoint_observed_load, targetPerReplica: 4}}\n{extra}"
    );
    policy::parse(&text, Path::new(&format!("{name}.yaml"))).unwrap()
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        smoke();
        return;
    }
    if !prom::available("benches/backtest") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench());
}

/// The load at 15 s steps over `days`: the synthetic two-day workload, repeated.
fn load(days: usize) -> Vec<f64> {
    let synthetic = Trace::synthetic();
    let per_day = synthetic.values.len() / 2;
    (0..days * per_day * 4)
        .map(|k| synthetic.values[(k / 4) % synthetic.values.len()])
        .collect()
}

/// A cheap check that replaying works, for `cargo test --all-targets`.
fn smoke() {
    let values = load(1);
    let grid: Vec<Option<f64>> = values.iter().map(|&v| Some(v)).collect();
    let rec = Recorded {
        range: Range {
            from: 0.0,
            to: (values.len() - 1) as f64 * 15.0,
            step: Duration::from_secs(15),
        },
        load: grid.clone(),
        metrics: vec![Replay::Recorded(grid)],
        load_source: "smoke".into(),
    };
    let r = backtest::replay(&policy("hpa", ""), &rec, None, 60.0).unwrap();
    assert!((r.summary.hours - 24.0).abs() < 1e-9);
    println!("benches/backtest: smoke run only; `cargo bench --bench backtest` measures");
}

async fn bench() {
    let values = load(DAYS);
    let n = values.len();
    let times: Vec<f64> = (0..n).map(|k| k as f64 * 15.0).collect();
    let trace = Trace::new(times.clone(), values.clone());
    let now = support::unix_now() as i64;
    let t0 = (now - (DAYS as i64 + 1) * 86_400) / 60 * 60;
    let setup = Instant::now();
    let server = Prometheus::start(Options {
        backfill: vec![
            Series {
                name: "setpoint_load".into(),
                labels: vec![],
                points: (0..n).map(|k| (t0 + 15 * k as i64, values[k])).collect(),
            },
            Series {
                name: "setpoint_observed_load".into(),
                labels: vec![],
                points: (0..n)
                    .filter_map(|k| {
                        sim::observed_load(&trace, times[k]).map(|v| (t0 + 15 * k as i64, v))
                    })
                    .collect(),
            },
        ],
        ..Options::default()
    });
    println!(
        "Prometheus {} with {DAYS} days at 15 s backfilled ({} points), ready in {:.1?}",
        server.url(),
        2 * n,
        setup.elapsed()
    );
    let client = PrometheusClient::new(&PrometheusConfig::new(server.url())).unwrap();
    let range = Range {
        from: t0 as f64,
        to: (t0 + 15 * (n as i64 - 1)) as f64,
        step: Duration::from_secs(15),
    };
    let policies = [
        ("threshold (hpa preset)", policy("hpa", "")),
        (
            "pid",
            policy(
                "pid",
                "    policy: {pid: {kp: 0.5, ki: 0.06, kd: 10, derivativeFilter: 60s}}\n",
            ),
        ),
        (
            "predictive (7d history)",
            policy(
                "predictive",
                "    policy: {predictive: {history: 7d, quantile: 0.9, targetScale: 1.25}}\n",
            ),
        ),
    ];
    println!();
    println!(
        "{:<26} {:>9} {:>11} {:>11} {:>11} {:>14}",
        "policy", "steps", "fetch", "replay", "total", "sim. days/s"
    );
    for (name, p) in &policies {
        let (mut fetch, mut replay, mut total) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..RUNS {
            let start = Instant::now();
            let rec = backtest::record(p, &client, Some("setpoint_load"), range, &mut |_, _| {})
                .await
                .unwrap();
            let fetched = start.elapsed();
            let r = backtest::replay(p, &rec, None, 60.0).unwrap();
            let all = start.elapsed();
            assert!((r.summary.hours - DAYS as f64 * 24.0).abs() < 1e-6);
            std::hint::black_box(r);
            fetch.push(fetched);
            replay.push(all - fetched);
            total.push(all);
        }
        let (f, r, t) = (median(&mut fetch), median(&mut replay), median(&mut total));
        println!(
            "{name:<26} {n:>9} {:>11} {:>11} {:>11} {:>14.1}",
            show(f),
            show(r),
            show(t),
            DAYS as f64 / t.as_secs_f64()
        );
    }
    println!();
    println!(
        "history held while replaying: {} KiB per query ({n} steps of Option<f64>)",
        n * std::mem::size_of::<Option<f64>>() / 1024
    );
    drop(server);
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn show(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.2} s")
    } else {
        format!("{:.1} ms", s * 1e3)
    }
}
