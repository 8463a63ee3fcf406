//! Sizing for an SLO: the quantile proposal against the reactive floor and the bounds (property),
//! `tune` against an exhaustive search of the same space, the written policy through
//! `setpoint check` and `setpoint simulate`, and the `setpoint tune` command on a CSV trace and
//! on the same history in a real Prometheus (backfilled with promtool).

mod support;

use proptest::prelude::*;
use setpoint::engine::{self, Observation, Sample, State};
use setpoint::forecast::quantile::CALIBRATION;
use setpoint::sim::tune::{self, Setting, Space};
use setpoint::sim::{self, ServiceModel, Trace};
use std::path::Path;
use std::process::Command;

fn policy(min: u32, max: u32, capacity: f64, quantile: f64) -> setpoint::policy::Policy {
    let text = format!(
        "apiVersion: setpoint.dev/v1alpha1\nkind: ScalingPolicy\nmetadata: {{name: slo}}\n\
         spec:\n  target: {{kind: Deployment, name: web}}\n  interval: 15s\n  horizontal:\n    \
         preset: hpa\n    replicas: {{min: {min}, max: {max}}}\n    \
         metrics: [{{name: rps, prometheus: q, targetPerReplica: {}}}]\n    \
         policy:\n      predictive: {{quantile: {quantile}, capacityPerReplica: {capacity}}}\n",
        capacity * 0.8
    );
    setpoint::policy::parse(&text, Path::new("slo.yaml")).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever the load, once the model has history the proposals never ask for less than
    /// the load seen now needs at saturation, and the decision stays within [min, max].
    #[test]
    fn the_proposal_keeps_the_floor_and_the_bounds(
        loads in prop::collection::vec(0.0f64..500.0, 20..60),
        min in 1u32..5,
        span in 0u32..40,
        capacity in 1.0f64..50.0,
        quantile in 0.5f64..0.999,
    ) {
        let max = min + span;
        let p = policy(min, max, capacity, quantile);
        let h = p.horizontal.as_ref().unwrap();
        let mut st = State::conservative(min, 0.0);
        let mut current = min;
        // Each generated load holds for 15 ticks: long enough for the model to have history.
        for (i, x) in loads.iter().flat_map(|x| std::iter::repeat_n(*x, 15)).enumerate() {
            let t = 15.0 * (i + 1) as f64;
            let obs = Observation {
                current_replicas: current,
                ready_replicas: current,
                samples: vec![Sample::from_f64(x)],
            };
            let d = engine::tick(h, &mut st, &obs, t);
            let floor = (x / capacity - 1e-9).ceil() as u32;
            let e = &d.explanation;
            let sized = e.forecasts[0].fallback.is_none();
            let most = e.proposals.iter().map(|p| p.replicas).max().unwrap();
            if sized {
                prop_assert!(most >= floor, "t={t}: proposals {:?} below the floor {floor}", e.proposals);
                prop_assert_eq!(e.proposals.len(), 2);
            }
            prop_assert!((min..=max).contains(&d.desired_replicas), "{d:?}");
            current = d.desired_replicas;
        }
    }
}

/// Two days at one-minute steps: a daily cycle, noise like the square root of the level, and a
/// 2x burst of 3 minutes at minute 10 of every hour.
fn synthetic() -> Trace {
    let n = 2 * 1440;
    let noise = |i: u64| {
        let mut z = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5bd1_e995;
        z ^= z >> 29;
        (z % 2001) as f64 / 1000.0 - 1.0
    };
    let values = (0..n)
        .map(|i| {
            let h = i as f64 / 60.0;
            let level = 100.0 + 60.0 * (2.0 * std::f64::consts::PI * h / 24.0).sin();
            let burst = if i % 60 >= 10 && i % 60 < 13 {
                2.0
            } else {
                1.0
            };
            (level + 2.0 * level.sqrt() * noise(i as u64)) * burst
        })
        .collect();
    Trace::new((0..n).map(|i| 60.0 * i as f64).collect(), values)
}

#[test]
fn the_explanation_shows_the_quantile_calibration_holds() {
    let trace = synthetic();
    let model = ServiceModel::for_trace(&trace);
    let calibrated = policy(1, 1000, model.capacity, 0.99);
    let mut fixed = calibrated.clone();
    if let Some(engine::Algorithm::Predictive(p)) =
        fixed.horizontal.as_mut().map(|h| &mut h.algorithm)
    {
        p.sizing.as_mut().unwrap().calibration = 0.0;
    }
    // The quantile in force at each action of day two (when the model has history), if shown.
    let in_force = |p: &setpoint::policy::Policy| -> Vec<Option<f64>> {
        let r = sim::run(p, &trace, model);
        r.decisions
            .iter()
            .filter(|d| d.t >= 86400.0)
            .map(|d| {
                let (_, rest) = d.reason.split_once("calibrated to p")?;
                let pct: f64 = rest.split(')').next()?.parse().ok()?;
                Some(pct / 100.0)
            })
            .collect()
    };
    let (c, f) = (in_force(&calibrated), in_force(&fixed));
    assert!(!f.is_empty() && f.iter().all(Option::is_none), "{f:?}");
    let shown: Vec<f64> = c.iter().flatten().copied().collect();
    assert!(shown.len() * 10 >= c.len() * 9, "{c:?}");
    assert!(shown.iter().all(|q| (0.5..=0.9999).contains(q)), "{c:?}");
    assert!(shown.iter().any(|&q| q > 0.99) && shown.iter().any(|&q| q < 0.99));
}

fn small_space() -> Space {
    Space {
        quantiles: vec![0.9, 0.97, 0.99, 0.999],
        margins: vec![30.0],
        smoothings: vec![1.0],
        windows: vec![120.0, 1200.0],
        tolerances: vec![0.0, 0.2],
        down_percents: vec![100.0],
        tolerance_ups: vec![0.0, 0.1],
        calibrations: vec![CALIBRATION, 0.0],
        adaptive: None,
    }
}

/// Every pair of `a` × `b`.
fn pairs<'a, A, B>(a: &'a [A], b: &'a [B]) -> impl Iterator<Item = (&'a A, &'a B)> {
    a.iter().flat_map(move |x| b.iter().map(move |y| (x, y)))
}

fn examples(name: &str) -> setpoint::policy::Policy {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    setpoint::policy::load(&root.join("policies/examples").join(name)).unwrap()
}

#[test]
fn tune_finds_the_cheapest_setting_an_exhaustive_search_finds() {
    let trace = synthetic();
    let model = ServiceModel::for_trace(&trace);
    let (p, hpa) = (examples("predictive.yaml"), examples("hpa.yaml"));
    let slo = 1.0;
    let space = small_space();
    let o = tune::tune(&p, &hpa, &trace, model, slo, &space, &|_| {}).unwrap();
    let budget = o.hpa.budget();
    // Every point of the space, simulated.
    let mut best: Option<(Setting, sim::Summary)> = None;
    for (&quantile, &calibration) in pairs(&space.quantiles, &space.calibrations) {
        for &window in &space.windows {
            for (&tolerance, &tolerance_up) in pairs(&space.tolerances, &space.tolerance_ups) {
                let s = Setting {
                    quantile,
                    margin: 30.0,
                    smoothing: 1.0,
                    calibration,
                    window,
                    tolerance,
                    down_percent: 100.0,
                    tolerance_up,
                    adaptive: None,
                };
                let r = sim::run(&tune::apply(&p, &s, model).unwrap(), &trace, model).summary;
                if r.unserved_pct <= slo
                    && r.actions <= budget
                    && best
                        .as_ref()
                        .is_none_or(|b| r.cost_vs_oracle < b.1.cost_vs_oracle)
                {
                    best = Some((s, r));
                }
            }
        }
    }
    let (s, r) = best.expect("some setting meets the SLO");
    let found = o.best.clone().expect("tune found a setting");
    assert_eq!(found.setting, s, "{:?} vs exhaustive {r:?}", found.summary);
    assert_eq!(found.summary, r);
    assert!(!o.frontier().is_empty());
    assert!(tune::table(&o).contains("hpa example at target"));
}

#[test]
fn the_written_policy_checks_and_reproduces_in_simulate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("setpoint-slo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let trace = synthetic();
    let csv = dir.join("trace.csv");
    let mut text = String::from("timestamp_s,value\n");
    for (t, v) in trace.times.iter().zip(&trace.values) {
        text += &format!("{t},{v}\n");
    }
    std::fs::write(&csv, text).unwrap();
    let trace = Trace::load(&csv).unwrap();
    let model = ServiceModel::for_trace(&trace);
    let source = root.join("policies/examples/predictive.yaml");
    let p = setpoint::policy::load(&source).unwrap();
    let space = Space {
        windows: vec![1200.0],
        tolerances: vec![0.2],
        ..small_space()
    };
    let o = tune::tune(
        &p,
        &examples("hpa.yaml"),
        &trace,
        model,
        2.0,
        &space,
        &|_| {},
    )
    .unwrap();
    let best = o.best.clone().unwrap();
    let out = dir.join("tuned.yaml");
    let comment = tune::comment(&o, &best, "trace.csv", "setpoint simulate ...");
    let written = tune::write_policy(
        &std::fs::read_to_string(&source).unwrap(),
        &p,
        &best.setting,
        model,
        &comment,
    )
    .unwrap();
    assert!(written.starts_with(tune::COMMENT), "{written}");
    assert!(written.contains("capacityPerReplica: 1"), "{written}");
    assert!(
        written.contains(&format!("calibration: {}", best.setting.calibration)),
        "{written}"
    );
    std::fs::write(&out, &written).unwrap();
    let bin = env!("CARGO_BIN_EXE_setpoint");
    let check = Command::new(bin).arg("check").arg(&out).output().unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let run = Command::new(bin)
        .args(["simulate", "--output", "-", "--capacity"])
        .arg(model.capacity.to_string())
        .arg("--policy")
        .arg(&out)
        .arg("--trace")
        .arg(&csv)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let s = &doc["summary"];
    assert_eq!(
        s["cost_vs_oracle"].as_f64(),
        Some(best.summary.cost_vs_oracle)
    );
    assert_eq!(s["unserved_pct"].as_f64(), Some(best.summary.unserved_pct));
    assert_eq!(s["actions"].as_u64(), Some(best.summary.actions as u64));
    // The comment says what it reached, with the same numbers.
    assert!(
        written.contains(&format!(
            "cost vs oracle {:.4}",
            best.summary.cost_vs_oracle
        )),
        "{written}"
    );
    // With the action budget on and tolerance.up, the written file reads back as the same
    // policy: it checks, and simulates to what the tuner's own run of that setting gives.
    let insured = Setting {
        adaptive: Some(0.95),
        tolerance_up: 0.1,
        ..best.setting
    };
    let written = tune::write_policy(
        &std::fs::read_to_string(&source).unwrap(),
        &p,
        &insured,
        model,
        &comment,
    )
    .unwrap();
    assert!(
        written.contains("adaptive: {actionsVsHpa: 0.95}"),
        "{written}"
    );
    assert!(written.contains("limits: []"), "{written}");
    let read = setpoint::policy::parse(&written, &out).unwrap();
    let expected = sim::run(&tune::apply(&p, &insured, model).unwrap(), &trace, model).summary;
    assert_eq!(sim::run(&read, &trace, model).summary, expected);
    std::fs::remove_dir_all(&dir).ok();
}

/// Four hours at one-minute steps from `t0` (Unix seconds): a noisy level and a 2x burst of 3
/// minutes at minute 10 of every half hour.
fn short(t0: f64) -> Trace {
    let full = synthetic();
    let n = 4 * 60;
    let values = (0..n)
        .map(|i| full.values[i] * if i % 30 == 10 { 1.5 } else { 1.0 })
        .collect();
    let mut t = Trace::new((0..n).map(|i| 60.0 * i as f64).collect(), values);
    t.start = t0;
    t
}

fn csv_of(trace: &Trace) -> String {
    let mut text = String::from("timestamp_s,value\n");
    for (t, v) in trace.times.iter().zip(&trace.values) {
        text += &format!("{},{v}\n", trace.start + t);
    }
    text
}

fn setpoint(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_setpoint"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The numbers of a tuned file's "reached:" comment: unserved %, cost vs oracle, actions.
fn reached(written: &str) -> (String, String, String) {
    let line = written
        .lines()
        .find(|l| l.starts_with(tune::COMMENT) && l.contains("reached:"))
        .unwrap_or_else(|| panic!("no reached: line in {written}"));
    let num = |after: &str| {
        let rest = &line[line.find(after).unwrap() + after.len()..];
        rest.split([' ', ',']).next().unwrap().to_string()
    };
    let actions = line
        .split(", ")
        .find_map(|p| p.split_once(" actions").map(|(n, _)| n))
        .unwrap();
    (
        num("unserved "),
        num("cost vs oracle "),
        actions.to_string(),
    )
}

#[test]
fn the_tune_command_writes_a_policy_that_checks_and_reproduces_in_simulate() {
    let dir = support::TempDir::new("slo-tune");
    let trace = short(1_700_000_040.0);
    let csv = dir.write("load.csv", csv_of(&trace));
    let out = dir.path().join("tuned.yaml");
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/examples/predictive.yaml");
    let table = ok(&setpoint(&[
        "tune",
        "--policy",
        policy.to_str().unwrap(),
        "--trace",
        csv.to_str().unwrap(),
        "--max-unserved",
        "1",
        "--output",
        out.to_str().unwrap(),
    ]));
    assert!(table.contains("| quantile |"), "{table}");
    assert!(table.contains("hpa example"), "{table}");
    let written = std::fs::read_to_string(&out).unwrap();
    ok(&setpoint(&["check", out.to_str().unwrap()]));
    // The comment's reproduce line, run as written.
    let reproduce = written
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{} reproduce: setpoint ", tune::COMMENT)))
        .unwrap_or_else(|| panic!("no reproduce line in {written}"));
    let mut args: Vec<&str> = reproduce.split(' ').collect();
    args.extend(["--output", "-"]);
    let doc: serde_json::Value = serde_json::from_str(&ok(&setpoint(&args))).unwrap();
    let s = &doc["summary"];
    let (unserved, cost, actions) = reached(&written);
    assert_eq!(
        format!("{:.4}", s["unserved_pct"].as_f64().unwrap()),
        unserved
    );
    assert_eq!(
        format!("{:.4}", s["cost_vs_oracle"].as_f64().unwrap()),
        cost
    );
    assert_eq!(s["actions"].as_u64().unwrap().to_string(), actions);
}

#[test]
fn tune_reads_the_same_history_from_prometheus_as_from_a_trace() {
    use support::prometheus::{self as prom, Options, Prometheus, Series};
    if !prom::available("tune_reads_the_same_history_from_prometheus_as_from_a_trace") {
        return;
    }
    let t0 = ((support::unix_now() as i64 - 86_400) / 60 * 60) as f64;
    let trace = short(t0);
    let server = Prometheus::start(Options {
        backfill: vec![Series {
            name: "setpoint_load".into(),
            labels: vec![],
            points: trace
                .times
                .iter()
                .zip(&trace.values)
                .map(|(t, v)| ((t0 + t) as i64, *v))
                .collect(),
        }],
        ..Options::default()
    });
    let dir = support::TempDir::new("slo-tune-prom");
    let csv = dir.write("load.csv", csv_of(&trace));
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/examples/predictive.yaml");
    let capacity = ServiceModel::for_trace(&trace).capacity.to_string();
    let (from_csv, from_prom) = (dir.path().join("csv.yaml"), dir.path().join("prom.yaml"));
    let common = [
        "tune",
        "--policy",
        policy.to_str().unwrap(),
        "--max-unserved",
        "1",
        "--capacity",
        &capacity,
    ];
    let mut a: Vec<&str> = common.to_vec();
    a.extend(["--trace", csv.to_str().unwrap(), "--output"]);
    a.push(from_csv.to_str().unwrap());
    ok(&setpoint(&a));
    let range = format!(
        "--prometheus {} --from {t0} --to {} --load setpoint_load --output",
        server.url(),
        t0 + trace.times.last().unwrap()
    );
    let mut b: Vec<&str> = common.to_vec();
    b.extend(range.split(' '));
    b.push(from_prom.to_str().unwrap());
    ok(&setpoint(&b));
    let (x, y) = (
        std::fs::read_to_string(&from_csv).unwrap(),
        std::fs::read_to_string(&from_prom).unwrap(),
    );
    assert!(y.contains("tuned on http://127.0.0.1"), "{y}");
    assert!(y.contains("--load `setpoint_load`"), "{y}");
    // The same setting and the same numbers: only where it was tuned on differs.
    let body = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !l.starts_with(tune::COMMENT) || l.contains("reached:"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(body(&x), body(&y));
    ok(&setpoint(&["check", from_prom.to_str().unwrap()]));
}
