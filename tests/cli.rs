//! The `setpoint` binary: `check` and `simulate` as a user runs them, `crd`, and what `run`
//! refuses before it connects.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn setpoint(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_setpoint"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run setpoint")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("setpoint-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

#[test]
fn check_accepts_the_examples() {
    let out = setpoint(&["check", "policies/examples"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains("ok policies/examples/hpa.yaml (hpa)"), "{s}");
    assert!(
        s.contains("ok policies/examples/threshold.yaml (threshold)"),
        "{s}"
    );
}

#[test]
fn check_reports_every_bad_file_and_keeps_the_good_ones() {
    let d = tempdir("check");
    std::fs::copy("policies/examples/hpa.yaml", d.join("good.yaml")).unwrap();
    let bad = std::fs::read_to_string("policies/examples/hpa.yaml")
        .unwrap()
        .replace("name: hpa", "name: other")
        .replace("{min: 1, max: 1000}", "{min: 9, max: 3}");
    std::fs::write(d.join("bad.yaml"), bad).unwrap();
    std::fs::write(
        d.join("z-dup.yml"),
        std::fs::read("policies/examples/hpa.yaml").unwrap(),
    )
    .unwrap();
    std::fs::write(d.join("notes.txt"), "not a policy").unwrap();
    let out = setpoint(&["check", d.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let (o, e) = (text(&out.stdout), text(&out.stderr));
    assert!(o.contains("good.yaml (hpa)"), "{o}");
    assert!(
        e.contains("bad.yaml:15:15: spec.horizontal.replicas: min (9) is greater than max (3)"),
        "{e}"
    );
    assert!(
        e.contains("z-dup.yml: policy name \"hpa\" is already used by"),
        "{e}"
    );
    assert!(e.contains("2 of 3 policy files have errors"), "{e}");
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn check_on_a_missing_path_fails_clearly() {
    let out = setpoint(&["check", "no/such/dir"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no/such/dir: cannot read"),
        "{}",
        text(&out.stderr)
    );
    let out = setpoint(&["check"]);
    assert_eq!(out.status.code(), Some(2), "usage error");
}

#[test]
fn simulate_with_no_arguments_prints_a_table() {
    let out = setpoint(&["simulate"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    for row in [
        "policy hpa on built-in synthetic workload",
        "unserved",
        "cost vs oracle",
        "scaling actions",
    ] {
        assert!(s.contains(row), "{row} missing in\n{s}");
    }
}

#[test]
fn simulate_json_keeps_the_contract() {
    let v = json(&setpoint(&[
        "simulate",
        "--policy",
        "policies/examples/threshold.yaml",
        "--output",
        "-",
    ]));
    let d = v["decisions"].as_array().unwrap();
    assert_eq!(d[0]["t"], 0.0);
    assert!(d[0]["reason"].as_str().unwrap().starts_with("initial"));
    for w in d.windows(2) {
        assert!(w[1]["t"].as_f64() > w[0]["t"].as_f64());
        assert_ne!(w[1]["replicas"], w[0]["replicas"], "one entry per change");
        let r = w[1]["replicas"].as_u64().unwrap();
        assert!((2..=1000).contains(&r));
    }
    let s = &v["summary"];
    for k in [
        "unserved_pct",
        "under_time_pct",
        "cost_vs_oracle",
        "actions",
        "replica_hours",
    ] {
        assert!(s[k].is_number(), "summary.{k}");
    }
    assert_eq!(s["actions"].as_u64().unwrap() as usize, d.len() - 1);
    assert!(s["cost_vs_oracle"].as_f64().unwrap() > 1.0);
}

#[test]
fn simulate_writes_json_and_plot_files() {
    let d = tempdir("files");
    let trace = d.join("t.csv");
    let mut csv = String::from("timestamp_s,value\n");
    for i in 0..240 {
        csv += &format!(
            "{},{}\n",
            i * 60,
            if (60..120).contains(&i) { 300 } else { 100 }
        );
    }
    std::fs::write(&trace, csv).unwrap();
    let (json_path, svg) = (d.join("r.json"), d.join("r.svg"));
    let out = setpoint(&[
        "simulate",
        "--trace",
        trace.to_str().unwrap(),
        "--capacity",
        "10",
        "--startup",
        "30s",
        "--output",
        json_path.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "no table when --output is a file");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    assert_eq!(v["summary"]["capacity"], 10.0);
    assert_eq!(v["summary"]["startup_s"], 30.0);
    // The step to 300 req/s needs 30 replicas at 10 req/s each, and the HPA example holds 70 %.
    assert!(v["summary"]["max_replicas"].as_u64().unwrap() >= 43);
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("offered load") && svg.contains("ready capacity")
    );
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn simulate_rejects_bad_traces_with_the_line() {
    let d = tempdir("badtrace");
    let cases = [
        ("missing-header.csv", "0,1\n", ":1: expected the header"),
        (
            "word.csv",
            "timestamp_s,value\n0,1\n60,lots\n",
            ":3: value \"lots\" is not a number",
        ),
        (
            "negative.csv",
            "timestamp_s,value\n0,-1\n",
            ":2: negative load",
        ),
        (
            "order.csv",
            "timestamp_s,value\n0,1\n60,1\n30,1\n",
            ":4: timestamp 30 is not after",
        ),
        ("empty.csv", "", ":1: empty file"),
    ];
    for (name, body, msg) in cases {
        let p = d.join(name);
        std::fs::write(&p, body).unwrap();
        let out = setpoint(&["simulate", "--trace", p.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        let e = text(&out.stderr);
        assert!(e.contains(&format!("{name}{msg}")), "{name}: {e}");
    }
    let out = setpoint(&["simulate", "--policy", "nope.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("nope.yaml: cannot read"));
    std::fs::remove_dir_all(d).unwrap();
}

/// The hpa example on the real traces behaves like the HPA: cost around 1.4-1.8 times the
/// oracle, unserved load a few percent at most. Skips when ../shared/traces is absent.
#[test]
fn hpa_example_on_real_traces_behaves_like_the_hpa() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/traces");
    let Ok(traces) = setpoint::sim::trace::csv_files(&dir) else {
        println!(
            "skipped: {} is absent (a user's clone does not have it)",
            dir.display()
        );
        return;
    };
    assert!(!traces.is_empty());
    for t in traces {
        let v = json(&setpoint(&[
            "simulate",
            "--policy",
            "policies/examples/hpa.yaml",
            "--trace",
            t.to_str().unwrap(),
            "--output",
            "-",
        ]));
        let (cost, unserved) = (
            v["summary"]["cost_vs_oracle"].as_f64().unwrap(),
            v["summary"]["unserved_pct"].as_f64().unwrap(),
        );
        assert!((1.3..=1.95).contains(&cost), "{}: cost {cost}", t.display());
        assert!(
            (0.0..=2.0).contains(&unserved),
            "{}: unserved {unserved}",
            t.display()
        );
    }
}

#[test]
fn check_verbose_prints_the_next_three_window_starts() {
    let out = setpoint(&["check", "-v", "policies/examples/business-hours.yaml"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    let line = s
        .lines()
        .find(|l| l.contains("schedule office"))
        .unwrap_or_else(|| panic!("{s}"));
    assert!(
        line.contains("\"0 8 * * 1-5\" in Europe/Berlin for 10h, min 20"),
        "{line}"
    );
    let next = line.split("next: ").nth(1).unwrap();
    assert_eq!(next.split(", ").count(), 3, "{line}");
    assert!(next.split(", ").all(|n| n.contains("08:00 CE")), "{line}");
    // Without -v: one line per policy.
    let out = setpoint(&["check", "policies/examples/business-hours.yaml"]);
    assert!(!text(&out.stdout).contains("schedule"));
}

#[test]
fn check_names_a_bad_cron_and_zone_at_file_line_column() {
    let d = tempdir("cron");
    let bad = std::fs::read_to_string("policies/examples/business-hours.yaml")
        .unwrap()
        .replace("\"0 8 * * 1-5\"", "\"0 8 * 1-5\"")
        .replace("Europe/Berlin, min", "Europe/Berlim, min");
    let f = d.join("bad.yaml");
    std::fs::write(&f, bad).unwrap();
    let out = setpoint(&["check", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let e = text(&out.stderr);
    assert!(
        e.contains("bad.yaml:25:30: spec.horizontal.schedules[0].cron: invalid cron expression"),
        "{e}"
    );
    assert!(
        e.contains("spec.horizontal.schedules[0].timezone: unknown time zone \"Europe/Berlim\""),
        "{e}"
    );
}

#[test]
fn simulate_idle_nights_scales_to_zero_and_reports_cold_starts() {
    let v = json(&setpoint(&[
        "simulate",
        "--workload",
        "idle-nights",
        "--output",
        "-",
    ]));
    let s = &v["summary"];
    assert!(s["cold_starts"].as_u64().unwrap() >= 2, "{s}");
    let zero = s["zero_time_pct"].as_f64().unwrap();
    assert!((20.0..60.0).contains(&zero), "{s}");
    assert!(s["unserved_waking_pct"].as_f64().unwrap() > 0.0, "{s}");
    let d = v["decisions"].as_array().unwrap();
    assert!(
        d.iter()
            .any(|d| d["replicas"] == 0 && d["reason"].as_str().unwrap().contains("to zero")),
        "{d:?}"
    );
    // The same policy with min 1 never reaches zero and costs more.
    let dir = tempdir("min1");
    let p = dir.join("min1.yaml");
    std::fs::write(
        &p,
        std::fs::read_to_string("policies/examples/queue-worker.yaml")
            .unwrap()
            .replace("min: 0", "min: 1"),
    )
    .unwrap();
    let one = json(&setpoint(&[
        "simulate",
        "--workload",
        "idle-nights",
        "--policy",
        p.to_str().unwrap(),
        "--output",
        "-",
    ]));
    assert_eq!(one["summary"]["cold_starts"], 0);
    assert!(
        one["summary"]["replica_hours"].as_f64() > s["replica_hours"].as_f64(),
        "{} vs {}",
        one["summary"],
        s
    );
}

#[test]
fn simulate_start_puts_schedules_at_their_dates() {
    let run = |start: &str| {
        json(&setpoint(&[
            "simulate",
            "--policy",
            "policies/examples/business-hours.yaml",
            "--start",
            start,
            "--output",
            "-",
        ]))
    };
    let opens = |v: &serde_json::Value| -> Vec<f64> {
        v["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| {
                d["reason"]
                    .as_str()
                    .unwrap()
                    .contains("schedule office floor 20")
            })
            .map(|d| d["t"].as_f64().unwrap())
            .collect()
    };
    // Monday and Tuesday: the floor applies from 08:00 Berlin (07:00 UTC in winter).
    let weekdays = opens(&run("2026-03-02T00:00:00Z"));
    assert!(
        weekdays.first().is_some_and(|t| *t == 7.0 * 3600.0),
        "{weekdays:?}"
    );
    // A weekend: no window at all.
    assert!(opens(&run("2026-03-07T00:00:00Z")).is_empty());
}

#[test]
fn run_needs_at_least_one_source_of_policies() {
    let out = setpoint(&["run", "--no-policy-objects"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim(),
        "no source of policies: give --policies DIR, or leave out --no-policy-objects to watch \
         ScalingPolicy objects"
    );
}

#[test]
fn crd_prints_the_committed_definition() {
    let out = setpoint(&["crd"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let committed = std::fs::read_to_string("deploy/crd/scalingpolicy.yaml").unwrap();
    assert_eq!(text(&out.stdout), committed);
}
