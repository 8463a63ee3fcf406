//! Engine and simulator throughput. `cargo bench --bench engine` prints a table of medians;
//! under `cargo test` it runs one short round as a smoke test.
//!
//! - engine: decisions per second of the threshold policy under the `hpa` preset (5-minute
//!   scale-down stabilization window, rate limits), ticking every 15 s on a noisy load.
//! - simulate: simulated hours per second for the hpa example on a 14-day trace
//!   (../shared/traces/nasa_http_1995jul_14d.csv when present, else the synthetic workload
//!   repeated seven times).
//! - predictive: the time to fit the model (season detection + Holt-Winters grid search) on 7 days
//!   of 1-minute history, the time per tick afterwards, and the memory held per policy.

use setpoint::engine::predictive::{self, PredictiveParams, PredictiveState};
use setpoint::engine::{self, MetricTarget, Observation, Sample, State, Target};
use setpoint::sim::{self, ServiceModel, Trace};
use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (rounds, ticks) = if bench { (15, 200_000) } else { (1, 2_000) };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let policy = setpoint::policy::load(&root.join("policies/examples/hpa.yaml")).unwrap();

    // Engine: decisions per second.
    let mut rates = Vec::new();
    for _ in 0..rounds {
        let mut state = State::conservative(10, 0.0);
        let mut current = 10u32;
        let start = Instant::now();
        for i in 0..ticks {
            let u =
                0.7 + 0.3 * ((i as f64) * 0.01).sin() + 0.05 * ((i * 7919 % 101) as f64 / 101.0);
            let obs = Observation {
                current_replicas: current,
                ready_replicas: current,
                samples: vec![Sample::from_f64(u)],
            };
            let d = engine::tick(
                policy.horizontal.as_ref().unwrap(),
                &mut state,
                &obs,
                i as f64 * 15.0,
            );
            current = black_box(d).desired_replicas;
        }
        rates.push(ticks as f64 / start.elapsed().as_secs_f64());
    }
    let decisions = median(rates);

    // Simulate: simulated hours per second.
    let nasa = root.join("../shared/traces/nasa_http_1995jul_14d.csv");
    let (trace, name) = match Trace::load(&nasa) {
        Ok(t) => (t, "nasa_http_1995jul_14d.csv"),
        Err(_) => {
            let s = Trace::synthetic();
            let step = s.times[1];
            let n = s.values.len() * 7;
            let times = (0..n).map(|i| i as f64 * step).collect();
            let values = (0..n).map(|i| s.values[i % s.values.len()]).collect();
            (Trace::new(times, values), "synthetic x7 (14 d)")
        }
    };
    let model = ServiceModel::for_trace(&trace);
    let mut rates = Vec::new();
    let mut secs = Vec::new();
    for _ in 0..rounds.min(9) {
        let start = Instant::now();
        let r = black_box(sim::run(&policy, &trace, model));
        let dt = start.elapsed().as_secs_f64();
        secs.push(dt);
        rates.push(r.summary.hours / dt);
    }
    // Predictive: fit on 7 days of 1-minute history, then ticks.
    let params = PredictiveParams {
        history: 7.0 * 86400.0,
        season: None,
        quantile: 0.9,
        horizon: 105.0,
        target_scale: 1.0,
        sizing: None,
    };
    let metrics = vec![MetricTarget {
        name: "load".into(),
        target: Target::PerReplica(trace.mean() / 20.0),
    }];
    let obs_at = |t: f64| Observation {
        current_replicas: 20,
        ready_replicas: 20,
        samples: vec![Sample::from_f64(trace.values[trace.step_at(t)])],
    };
    let mut st = PredictiveState::default();
    let week = 7.0 * 86400.0;
    let mut t = 0.0;
    while t < week {
        predictive::recommend(&params, &metrics, &mut st, &obs_at(t), t);
        t += 60.0;
    }
    let mut fits = Vec::new();
    for _ in 0..rounds.min(5) {
        let mut f = st.metrics[0].forecaster().clone();
        let start = Instant::now();
        f.refit();
        fits.push(start.elapsed().as_secs_f64());
        black_box(f);
    }
    let n_ticks = if bench { 20_000 } else { 200 };
    let mut per_tick = Vec::new();
    for _ in 0..rounds.min(5) {
        let mut s2 = st.clone();
        let start = Instant::now();
        for k in 0..n_ticks {
            let tt = week + k as f64 * 15.0;
            black_box(predictive::recommend(
                &params,
                &metrics,
                &mut s2,
                &obs_at(tt),
                tt,
            ));
        }
        per_tick.push(start.elapsed().as_secs_f64() / n_ticks as f64);
    }
    let memory = st.memory_bytes();

    println!("| benchmark | median |");
    println!("|---|---|");
    println!("| engine: threshold + hpa governor (5 min window), decisions/s | {decisions:.3e} |");
    println!(
        "| simulate: hpa example on {name}, simulated hours/s | {:.3e} |",
        median(rates)
    );
    println!(
        "| simulate: one 14-day run, ms | {:.1} |",
        median(secs) * 1e3
    );
    println!(
        "| predictive: fit on 7 d of 1-min history ({name}), ms | {:.1} |",
        median(fits) * 1e3
    );
    println!(
        "| predictive: one tick after the fit (incl. refits every 6 h), µs | {:.2} |",
        median(per_tick) * 1e6
    );
    println!(
        "| predictive: memory held per policy (one metric), KiB | {:.0} |",
        memory as f64 / 1024.0
    );
    if !bench {
        println!("(smoke run: use `cargo bench --bench engine` for figures)");
    }
}
