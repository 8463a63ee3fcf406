//! `backtest` against a real Prometheus with two days of backfilled history: it reports the same
//! as `simulate` over the same load. And its errors, which need no server.
//!
//! The load is the built-in synthetic workload at 15 s steps, written twice: as a CSV trace for
//! `simulate`, and backfilled as `setpoint_load` for `backtest --load setpoint_load`. The policy
//! reads `setpoint_observed_load`, backfilled with what the simulator shows a policy at each
//! 15 s scrape (the load averaged over the last 60 s: `sim::observed_load`), so that the
//! policy's query returns in the backtest exactly what the simulator shows it.

mod support;

use serde_json::Value;
use setpoint::sim::{self, Trace};
use std::process::{Command, Output};
use support::TempDir;
use support::prometheus::{self as prom, Options, Prometheus, Series};

fn setpoint(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_setpoint"))
        .args(args)
        .output()
        .expect("run setpoint")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json(out: &Output) -> Value {
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

const POLICIES: [(&str, &str); 2] = [
    (
        "threshold",
        "    preset: hpa\n    replicas: {min: 1, max: 200}\n    metrics:\n      \
         - {name: rps, prometheus: setpoint_observed_load, targetPerReplica: 4}\n    \
         scaleDown: {stabilization: 5m, cooldown: 1m}\n",
    ),
    (
        "pid",
        "    preset: hpa\n    replicas: {min: 1, max: 200}\n    metrics:\n      \
         - {name: rps, prometheus: setpoint_observed_load, targetPerReplica: 4}\n    \
         policy: {pid: {kp: 0.5, ki: 0.06, kd: 10, derivativeFilter: 60s}}\n",
    ),
];

fn policy(dir: &TempDir, name: &str, horizontal: &str) -> String {
    dir.write(
        &format!("{name}.yaml"),
        format!(
            "apiVersion: setpoint.dev/v1alpha1\nkind: ScalingPolicy\nmetadata: {{name: {name}}}\n\
             spec:\n  target: {{kind: Deployment, name: web}}\n  interval: 15s\n  horizontal:\n{horizontal}"
        ),
    )
    .to_str()
    .unwrap()
    .to_string()
}

#[test]
fn backtest_over_two_days_reports_what_simulate_reports() {
    if !prom::available("backtest_over_two_days_reports_what_simulate_reports") {
        return;
    }
    // The synthetic workload (60 s steps) at 15 s steps.
    let synthetic = Trace::synthetic();
    let values: Vec<f64> = synthetic.values.iter().flat_map(|&v| [v; 4]).collect();
    let n = values.len();
    let times: Vec<f64> = (0..n).map(|k| k as f64 * 15.0).collect();
    let trace = Trace::new(times.clone(), values.clone());

    let now = support::unix_now() as i64;
    let t0 = (now - 3 * 86_400) / 60 * 60;
    let load: Vec<(i64, f64)> = (0..n).map(|k| (t0 + 15 * k as i64, values[k])).collect();
    let observed: Vec<(i64, f64)> = (0..n)
        .filter_map(|k| sim::observed_load(&trace, times[k]).map(|v| (t0 + 15 * k as i64, v)))
        .collect();
    let server = Prometheus::start(Options {
        backfill: vec![
            Series {
                name: "setpoint_load".into(),
                labels: vec![],
                points: load,
            },
            Series {
                name: "setpoint_observed_load".into(),
                labels: vec![],
                points: observed,
            },
        ],
        ..Options::default()
    });

    let dir = TempDir::new("backtest");
    let mut csv = String::from("timestamp_s,value\n");
    for (t, v) in times.iter().zip(&values) {
        csv.push_str(&format!("{t},{v}\n"));
    }
    let csv = dir.write("load.csv", csv);
    let from = t0.to_string();
    let to = (t0 + 15 * (n as i64 - 1)).to_string();
    for (name, horizontal) in POLICIES {
        let p = policy(&dir, name, horizontal);
        let simulated = json(&setpoint(&[
            "simulate",
            "--policy",
            &p,
            "--trace",
            csv.to_str().unwrap(),
            "--output",
            "-",
        ]));
        let backtested = json(&setpoint(&[
            "backtest",
            "--policy",
            &p,
            "--prometheus",
            server.url(),
            "--from",
            &from,
            "--to",
            &to,
            "--load",
            "setpoint_load",
            "--output",
            "-",
        ]));
        let s = &simulated["summary"];
        assert_eq!(s["hours"], 48.0, "{name}");
        assert!(s["actions"].as_u64().unwrap() > 20, "{name}: {s}");
        assert_eq!(backtested["summary"], simulated["summary"], "{name}");
        assert_eq!(backtested["decisions"], simulated["decisions"], "{name}");
    }

    // The table form names the range and the load's source.
    let p = policy(&dir, "threshold", POLICIES[0].1);
    let out = setpoint(&[
        "backtest",
        "--policy",
        &p,
        "--prometheus",
        server.url(),
        "--from",
        &from,
        "--to",
        &to,
        "--load",
        "setpoint_load",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.contains("policy threshold from "), "{table}");
    assert!(table.contains("(load: --load `setpoint_load`)"), "{table}");
    assert!(table.contains("simulated         48.0 h"), "{table}");

    // Without --load, the targetPerReplica metric is the load: a valid run, on the lagged load.
    let v = json(&setpoint(&[
        "backtest",
        "--policy",
        &p,
        "--prometheus",
        server.url(),
        "--from",
        &from,
        "--to",
        &to,
        "--output",
        "-",
    ]));
    assert!(v["summary"]["ticks"].as_u64().unwrap() > 10_000);
    drop(server);
}

#[test]
fn backtest_errors_name_what_is_missing() {
    let dir = TempDir::new("backtest-errors");
    let only_utilization = policy(
        &dir,
        "u",
        "    replicas: {min: 1, max: 10}\n    metrics:\n      - {prometheus: q, utilization: 0.5}\n",
    );
    // No network needed: nothing is fetched before these are found.
    let out = setpoint(&[
        "backtest",
        "--policy",
        &only_utilization,
        "--prometheus",
        "http://127.0.0.1:9",
        "--from",
        "now-1h",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("Give --load QUERY"),
        "{}",
        text(&out.stderr)
    );

    let out = setpoint(&[
        "backtest",
        "--policy",
        &only_utilization,
        "--from",
        "now-1h",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("give --prometheus URL"),
        "{}",
        text(&out.stderr)
    );

    let out = setpoint(&[
        "backtest",
        "--policy",
        &only_utilization,
        "--prometheus",
        "http://127.0.0.1:9",
        "--from",
        "last tuesday",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("--from: invalid time"),
        "{}",
        text(&out.stderr)
    );

    let out = setpoint(&[
        "backtest",
        "--policy",
        &only_utilization,
        "--prometheus",
        "http://127.0.0.1:9",
        "--from",
        "now",
        "--to",
        "now-1d",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("the range is empty"),
        "{}",
        text(&out.stderr)
    );
}
