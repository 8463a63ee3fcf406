//! `recommend` against a real Prometheus (Debian's package): with `--replicas` (no cluster), in
//! text and JSON; without it, replicas from the Kubernetes API stand-in; and a predictive policy
//! whose forecast is seeded from backfilled history. Without `/usr/bin/prometheus` the tests say
//! why they are skipped, except under `CI=true`, where they fail.

mod support;

use serde_json::Value;
use setpoint::engine::Sample;
use setpoint::prometheus::{PrometheusClient, PrometheusConfig};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use support::TempDir;
use support::http::ScrapeTarget;
use support::kube::{KubeStandIn, Scalable, World};
use support::prometheus::{self as prom, Options, Prometheus, Series};

fn setpoint(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_setpoint"));
    c.args(args).env_remove("KUBERNETES_SERVICE_HOST");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run setpoint")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json(out: &Output) -> Value {
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// Waits (at most 30 s) until Prometheus has scraped `query` from the live target.
fn wait_for_scrape(url: &str, query: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = PrometheusClient::new(&PrometheusConfig::new(url)).unwrap();
    let start = Instant::now();
    rt.block_on(async {
        loop {
            if let Sample::Value { .. } = client.sample(query, None, false).await {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{query} never scraped"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}

fn policy(dir: &TempDir, name: &str, body: &str) -> String {
    dir.write(
        &format!("{name}.yaml"),
        format!(
            "apiVersion: setpoint.dev/v1alpha1\nkind: ScalingPolicy\nmetadata: {{name: {name}}}\n\
             spec:\n  target: {{kind: Deployment, name: web}}\n  interval: 15s\n  horizontal:\n{body}"
        ),
    )
    .to_str()
    .unwrap()
    .to_string()
}

const DEMAND: &str = "    replicas: {min: 1, max: 50}\n    metrics:\n      \
                      - {name: rps, prometheus: setpoint_demand, targetPerReplica: 80}\n";

#[test]
fn recommend_with_and_without_replicas() {
    if !prom::available("recommend_with_and_without_replicas") {
        return;
    }
    let target = ScrapeTarget::start("# TYPE setpoint_demand gauge\nsetpoint_demand 400\n");
    let server = Prometheus::start(Options {
        scrape_target: Some(target.address()),
        scrape_interval: Duration::from_millis(500),
        ..Options::default()
    });
    wait_for_scrape(server.url(), "setpoint_demand");
    let dir = TempDir::new("recommend");
    let p = policy(&dir, "web", DEMAND);

    // With --replicas: no cluster. 400 req/s at 80 per replica: 5, from 2 (+3 is within the
    // HPA preset's max(+100 %, +4 pods) per 15 s).
    let v = json(&setpoint(
        &[
            "recommend",
            "--policy",
            &p,
            "--prometheus",
            server.url(),
            "--replicas",
            "2",
            "--output",
            "json",
        ],
        &[("KUBECONFIG", "/nonexistent")],
    ));
    assert_eq!(v["replicasFrom"], "flags");
    assert_eq!(v["decision"]["currentReplicas"], 2);
    assert_eq!(v["decision"]["desiredReplicas"], 5);
    assert_eq!(v["metrics"][0]["sample"]["value"], 400.0);
    assert_eq!(v["metrics"][0]["source"], "prometheus `setpoint_demand`");
    let p0 = &v["decision"]["explanation"]["proposals"][0];
    assert_eq!(
        (p0["metric"].as_str(), p0["replicas"].as_u64()),
        (Some("rps"), Some(5))
    );
    assert_eq!(v["summary"], "scale up 2→5: rps 400 vs 80/replica → 5");
    assert!(v.get("namespace").is_none());

    let out = setpoint(
        &[
            "recommend",
            "--policy",
            &p,
            "--prometheus",
            server.url(),
            "--replicas",
            "12",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    for want in [
        "replicas: 12 current, 12 ready (from the command line)",
        "rps = 400\n    from prometheus `setpoint_demand`",
        "rps: 400 vs 80/replica → 5 replicas (ratio 0.417)",
        "decision: scale down 12→5",
        "note: one read-only tick",
    ] {
        assert!(s.contains(want), "{want:?} missing in\n{s}");
    }

    // Without --replicas: the target's scale and ready pods from the cluster (the stand-in has
    // no pods for it: the scale's selector matches none, so none is ready).
    let api = KubeStandIn::start(World {
        scalables: vec![Scalable::deployment("demo", "web", 3)],
        ..World::default()
    });
    let kubeconfig = api.kubeconfig(&dir, "demo");
    let v = json(&setpoint(
        &[
            "recommend",
            "--policy",
            &p,
            "--prometheus",
            server.url(),
            "--output",
            "json",
        ],
        &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
    ));
    assert_eq!(v["replicasFrom"], "cluster");
    assert_eq!(v["namespace"], "demo");
    assert_eq!(v["decision"]["currentReplicas"], 3);
    assert_eq!(v["decision"]["explanation"]["readyReplicas"], 0);
    assert_eq!(v["decision"]["desiredReplicas"], 5);
    let paths: Vec<String> = api.requests().iter().map(|r| r.uri.clone()).collect();
    assert_eq!(
        paths,
        [
            "/apis/apps/v1/namespaces/demo/deployments/web/scale",
            "/api/v1/namespaces/demo/pods?&labelSelector=app%3Dweb",
            // The target itself, for the pause annotations of a policy file.
            "/apis/apps/v1/namespaces/demo/deployments/web"
        ]
    );

    // A target that is not there.
    let missing = policy(&dir, "gone", DEMAND);
    let text_missing = std::fs::read_to_string(&missing)
        .unwrap()
        .replace("name: web}", "name: nope}");
    std::fs::write(&missing, text_missing).unwrap();
    let out = setpoint(
        &[
            "recommend",
            "--policy",
            &missing,
            "--prometheus",
            server.url(),
        ],
        &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("HTTP 404 NotFound: deployments/scale.apps \"nope\" not found"),
        "{}",
        text(&out.stderr)
    );
}

/// A Prometheus holding `setpoint_history` at `points`.
fn history_server(points: Vec<(i64, f64)>) -> Prometheus {
    Prometheus::start(Options {
        backfill: vec![Series {
            name: "setpoint_history".into(),
            labels: vec![],
            points,
        }],
        ..Options::default()
    })
}

/// `recommend --output json` for the policy file `p` at 8 replicas.
fn recommend_json(p: &str, server: &Prometheus) -> Value {
    json(&setpoint(
        &[
            "recommend",
            "--policy",
            p,
            "--prometheus",
            server.url(),
            "--replicas",
            "8",
            "--output",
            "json",
        ],
        &[],
    ))
}

#[test]
fn recommend_seeds_quantile_sizing_at_every_phase_of_the_minute() {
    if !prom::available("recommend_seeds_quantile_sizing_at_every_phase_of_the_minute") {
        return;
    }
    // A day of a noisy load at one point every 15 s, up to a minute ago: read back one point
    // per interval, it gives the quantile model residuals at the phase of whatever second
    // `recommend` runs in (read one point a minute, three phases in four would be reactive).
    let now = support::unix_now() as i64;
    let end = (now - 60) / 15 * 15;
    let points: Vec<(i64, f64)> = (end - 86_400..=end)
        .step_by(15)
        .map(|t| (t, 200.0 + ((t * 7919) % 61) as f64))
        .collect();
    let server = history_server(points);
    let dir = TempDir::new("recommend-quantile");
    let p = policy(
        &dir,
        "quantile",
        "    replicas: {min: 1, max: 50}\n    metrics:\n      \
         - {name: rps, prometheus: setpoint_history, targetPerReplica: 50}\n    \
         policy: {predictive: {history: 1d, quantile: 0.99, capacityPerReplica: 50}}\n",
    );
    let v = recommend_json(&p, &server);
    let f = &v["decision"]["explanation"]["forecasts"][0];
    assert_eq!(f["fallback"], Value::Null, "{f:#}");
    assert!(f["model"].is_string(), "{f:#}");
    assert!(f["upper"].as_f64().unwrap() >= 200.0, "{f:#}");
    let notes = v["notes"].as_array().unwrap();
    assert!(
        notes.iter().any(|n| n
            .as_str()
            .unwrap()
            .contains("forecast history read from Prometheus: ")
            && n.as_str().unwrap().contains(", 15s apart,")),
        "{notes:?}"
    );
}

#[test]
fn recommend_seeds_the_forecast_from_history() {
    if !prom::available("recommend_seeds_the_forecast_from_history") {
        return;
    }
    // Four days of a daily cycle (400 req/s from 08:00 to 20:00 UTC, 100 otherwise) at one point
    // a minute, up to two minutes ago.
    let now = support::unix_now() as i64;
    let end = (now - 120) / 60 * 60;
    let level = |t: i64| {
        let hour = (t % 86_400) as f64 / 3600.0;
        if (8.0..20.0).contains(&hour) {
            400.0
        } else {
            100.0
        }
    };
    let points: Vec<(i64, f64)> = (end - 4 * 86_400..=end)
        .step_by(60)
        .map(|t| (t, level(t)))
        .collect();
    let server = history_server(points);
    let dir = TempDir::new("recommend-predictive");
    let p = policy(
        &dir,
        "predictive",
        "    replicas: {min: 1, max: 50}\n    metrics:\n      \
         - {name: rps, prometheus: setpoint_history, targetPerReplica: 50}\n    \
         policy: {predictive: {history: 4d, season: 1d, quantile: 0.9}}\n",
    );
    let v = recommend_json(&p, &server);
    let f = &v["decision"]["explanation"]["forecasts"][0];
    assert_eq!(f["metric"], "rps");
    assert_eq!(f["current"], level(end));
    assert_eq!(f["fallback"], Value::Null, "{f:#}");
    assert_eq!(f["seasonS"], 86_400.0);
    let expected = f["expected"].as_f64().unwrap();
    assert!((50.0..=500.0).contains(&expected), "{f:#}");
    let notes = v["notes"].as_array().unwrap();
    assert!(
        notes.iter().any(|n| n
            .as_str()
            .unwrap()
            .starts_with("metric rps: forecast history read from Prometheus: ")),
        "{notes:?}"
    );
    let out = setpoint(
        &[
            "recommend",
            "--policy",
            &p,
            "--prometheus",
            server.url(),
            "--replicas",
            "8",
        ],
        &[],
    );
    let s = text(&out.stdout);
    assert!(s.contains("forecasts:\n  rps: now "), "{s}");
    assert!(s.contains("expected"), "{s}");
    assert!(s.contains("(season 1day)"), "{s}");
}
