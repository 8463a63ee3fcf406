//! End-to-end tests of `setpoint run` through the faults of a real control plane (issue 14): a
//! kube-apiserver restart (connections refused, then RBAC's 403 for a second), a Role that
//! really lacks a right, a Prometheus that goes away and comes back with a partly empty
//! `rate()`, two horizontal policies on one target, a deleted target, no identity in the
//! environment. The binary runs against the API stand-in of tests/support/kube.rs and a real
//! Prometheus (Debian's package); without `/usr/bin/prometheus` the tests that need it say why
//! they are skipped, except under `CI=true`, where they fail.
//!
//! The two `#[ignore]`d tests are measurements (docs/reliability.md quotes them):
//! `cargo test --test control_plane -- --ignored --nocapture --test-threads=1`.

mod support;

use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::TempDir;
use support::daemon::Daemon;
use support::http::{HttpServer, Response};
use support::kube::{self as k, KubeStandIn, Scalable, World};
use support::prometheus::{self as prom, Options, Prometheus};

const NS: &str = "demo";
const BIN: &str = env!("CARGO_BIN_EXE_setpoint");

/// Deployment `web` at `replicas`, all ready.
fn world(replicas: i64) -> World {
    World {
        scalables: vec![Scalable::deployment(NS, "web", replicas)],
        pods: (0..replicas)
            .map(|i| k::ready_pod(NS, &format!("web-{i}"), "web"))
            .collect(),
        ..World::default()
    }
}

/// A load whose request counter grows at `rate()` per second (settable), scraped every 500 ms
/// by a real Prometheus as `setpoint_requests_total`.
struct Load {
    rate: Arc<std::sync::Mutex<(f64, f64, Instant)>>,
    _target: HttpServer,
    server: Prometheus,
}

impl Load {
    fn start(per_second: f64) -> Load {
        // (rate, count at `since`, since)
        let rate = Arc::new(std::sync::Mutex::new((per_second, 0.0, Instant::now())));
        let served = rate.clone();
        let target = HttpServer::start(move |req| {
            if req.path() != "/metrics" {
                return Response::text(404, "not found");
            }
            let (r, base, since) = *served.lock().unwrap();
            let count = base + r * since.elapsed().as_secs_f64();
            let mut a = Response::text(
                200,
                format!(
                    "# TYPE setpoint_requests_total counter\nsetpoint_requests_total {count}\n\
                     # TYPE setpoint_demand gauge\nsetpoint_demand {r}\n"
                ),
            );
            a.content_type = "text/plain; version=0.0.4; charset=utf-8".into();
            a
        });
        let server = Prometheus::start(Options {
            scrape_target: Some(target.addr().to_string()),
            scrape_interval: Duration::from_millis(500),
            ..Options::default()
        });
        Load {
            rate,
            _target: target,
            server,
        }
    }

    fn set(&self, per_second: f64) {
        let mut r = self.rate.lock().unwrap();
        let count = r.1 + r.0 * r.2.elapsed().as_secs_f64();
        *r = (per_second, count, Instant::now());
    }

    fn url(&self) -> &str {
        self.server.url()
    }
}

/// A policy `name` on Deployment `target` reading `query` at 80 per replica every `interval`.
fn policy(name: &str, target: &str, interval: &str, query: &str, down: &str) -> String {
    format!(
        "apiVersion: setpoint.dev/v1alpha1\nkind: ScalingPolicy\nmetadata: {{name: {name}}}\n\
         spec:\n  target: {{kind: Deployment, name: {target}}}\n  interval: {interval}\n  \
         horizontal:\n    replicas: {{min: 1, max: 50}}\n    metrics:\n      \
         - {{name: rps, prometheus: '{query}', targetPerReplica: 80}}\n    \
         scaleDown: {{stabilization: {down}}}\n"
    )
}

/// The API stand-in holding `world`, a folder with policy `file`, and a kubeconfig for both.
fn setup(world: World, file: &str, policy: &str) -> (KubeStandIn, TempDir, std::path::PathBuf) {
    let api = KubeStandIn::start(world);
    let dir = TempDir::new("control-plane");
    let kubeconfig = api.kubeconfig(&dir, NS);
    write_policy(&dir, file, policy);
    (api, dir, kubeconfig)
}

fn write_policy(dir: &TempDir, file: &str, text: &str) {
    let folder = dir.path().join("policies");
    std::fs::create_dir_all(&folder).unwrap();
    support::daemon::write_policy(&folder, file, text);
}

fn start(dir: &TempDir, kubeconfig: &Path, prometheus: &str, extra: &[&str]) -> Daemon {
    let policies = dir.path().join("policies");
    let policies = policies.to_str().unwrap();
    let mut args = vec!["--policies", policies, "--prometheus", prometheus];
    args.extend_from_slice(extra);
    Daemon::start(BIN, dir, "setpoint-0", kubeconfig, &args)
}

fn recommendations(d: &Daemon) -> Value {
    let (code, body) = d.get("/recommendations").expect("/recommendations");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn failing(d: &Daemon, policy: &str) -> Option<String> {
    recommendations(d)["failing"]
        .as_array()?
        .iter()
        .find(|f| f["policy"] == policy)
        .and_then(|f| f["error"].as_str().map(str::to_string))
}

/// `PATCH …/scale` requests received after `after`: (when, replicas).
fn scale_patches(api: &KubeStandIn, after: Instant) -> Vec<(Instant, i64)> {
    api.requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.uri.contains("/scale") && r.received_at >= after)
        .map(|r| {
            let body: Value = serde_json::from_str(&r.body).unwrap_or_default();
            (
                r.received_at,
                body["spec"]["replicas"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

fn events(api: &KubeStandIn, reason: &str) -> Vec<Value> {
    api.world()
        .events
        .iter()
        .filter(|e| e["reason"] == reason)
        .cloned()
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Restarts the API server `times` times (connections refused for `down`, then 403 for 1 s)
/// under a leader-elected daemon (2 s interval, 3 s Lease), changing the load during each
/// outage; returns the seconds from the server being ready again to the first scale patch
/// after it, and the daemon (still running).
fn restarts(
    name: &str,
    times: usize,
    down: Duration,
) -> Option<(Vec<f64>, Daemon, KubeStandIn, TempDir)> {
    if !prom::available(name) {
        return None;
    }
    let load = Load::start(320.0);
    let (api, dir, kubeconfig) = setup(
        world(4),
        "web.yaml",
        &policy("web", "web", "2s", "setpoint_demand", "0s"),
    );
    let mut d = start(&dir, &kubeconfig, load.url(), &["--lease-duration", "3s"]);
    d.wait_for("the first tick", Duration::from_secs(20), |d| {
        api.world().lease_holder(NS, "setpoint").as_deref() == Some("setpoint-0")
            && recommendations(d)["recommendations"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
    });
    let mut took = Vec::new();
    for i in 0..times {
        let per_second = if i % 2 == 0 { 640.0 } else { 320.0 };
        let expected = (per_second / 80.0) as i64;
        let ready = std::thread::scope(|s| {
            let restart = s.spawn(|| api.restart(down, Duration::from_secs(1)));
            std::thread::sleep(Duration::from_millis(300));
            load.set(per_second);
            restart.join().unwrap()
        });
        let limit = Duration::from_secs(15);
        d.wait_for("a scale patch after the restart", limit, |_| {
            scale_patches(&api, ready)
                .iter()
                .any(|(_, r)| *r == expected)
        });
        let (at, _) = scale_patches(&api, ready)
            .into_iter()
            .find(|(_, r)| *r == expected)
            .unwrap();
        took.push((at - ready).as_secs_f64());
        assert!(
            d.wait_exit(Duration::ZERO).is_none(),
            "exited; log:\n{}",
            d.log_tail()
        );
    }
    drop(load);
    Some((took, d, api, dir))
}

#[test]
fn the_daemon_survives_api_server_restarts_and_acts_within_one_interval() {
    let Some((took, mut d, api, _dir)) = restarts(
        "the_daemon_survives_api_server_restarts",
        3,
        Duration::from_secs(4),
    ) else {
        return;
    };
    println!("seconds from ready to the next scale patch: {took:?}");
    // The Lease expired during the outage (3 s, renewed every second): taken again within a
    // renew period, then the next tick within one interval (2 s); 0.5 s for the calls.
    for t in &took {
        assert!(*t <= 3.5, "{took:?}; log:\n{}", d.log_tail());
    }
    let log = d.log();
    assert!(!log.contains("leader election ended"), "{log}");
    // The target is read from the watch cache: the policy held until the watches relisted.
    assert!(
        log.contains("the watch has synced: the policy goes on"),
        "{log}"
    );
    // Events name the Deployment by uid, so that `kubectl describe` shows them.
    let scaled = events(&api, "ScaledUp");
    assert!(!scaled.is_empty());
    let uid = api.world().scalables[0].uid.clone();
    for e in scaled.iter().chain(&events(&api, "ScaledDown")) {
        assert_eq!(e["regarding"]["uid"], uid.as_str(), "{e}");
        assert!(e["regarding"]["resourceVersion"].is_string(), "{e}");
    }
    assert_eq!(api.world().flagged, Vec::<String>::new());
    d.stop_within(Duration::from_secs(10));
}

#[test]
fn a_403_that_lasts_ends_the_daemon_with_an_error_naming_the_right_after_the_grace() {
    let (api, dir, kubeconfig) = setup(
        world(2),
        "web.yaml",
        &policy("web", "web", "2s", "setpoint_demand", "0s"),
    );
    let mut d = start(
        &dir,
        &kubeconfig,
        "http://127.0.0.1:9",
        &["--lease-duration", "3s", "--forbidden-grace", "4s"],
    );
    d.wait_for("leading", Duration::from_secs(20), |_| {
        api.world().lease_holder(NS, "setpoint").as_deref() == Some("setpoint-0")
    });
    // The Role loses its rights on Leases for good.
    let forbidden_at = Instant::now();
    api.world().faults.push_back(k::Fault {
        method: None,
        path_contains: "/leases".into(),
        status: Some(403),
        delay: Duration::ZERO,
        times: 100_000,
    });
    let status = d
        .wait_exit(Duration::from_secs(20))
        .expect("the daemon exits");
    let after = forbidden_at.elapsed();
    let log = d.log();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        after >= Duration::from_secs(4),
        "{after:?}: before the grace"
    );
    assert!(after < Duration::from_secs(12), "{after:?}");
    assert!(
        log.contains("resource \"leases\" in API group \"coordination.k8s.io\""),
        "{log}"
    );
    assert!(
        log.contains("needs get, create and patch on leases"),
        "{log}"
    );
    assert!(log.contains("in a row)"), "{log}");
}

#[test]
fn a_prometheus_outage_is_seen_once_and_its_low_first_reading_does_not_scale_down() {
    if !prom::available("a_prometheus_outage_is_seen_once") {
        return;
    }
    // 800 requests/s: 10 replicas at 80 each.
    let mut load = Load::start(800.0);
    let api = KubeStandIn::start(world(10));
    let dir = TempDir::new("control-plane");
    let kubeconfig = api.kubeconfig(&dir, NS);
    // rate() over 6 s; an 8 s scale-down window.
    write_policy(
        &dir,
        "web.yaml",
        &policy(
            "web",
            "web",
            "1s",
            "sum(rate(setpoint_requests_total[6s]))",
            "8s",
        ),
    );
    let d = start(&dir, &kubeconfig, load.url(), &["--no-leader-election"]);
    d.wait_for("a full rate window", Duration::from_secs(30), |d| {
        recommendations(d)["recommendations"][0]["explanation"]["proposals"][0]["value"]
            .as_f64()
            .is_some_and(|v| (v - 800.0).abs() < 80.0)
    });
    let start_at = Instant::now();
    let log_before = d.log().len();
    let warned_before = events(&api, "MetricsUnavailable").len();

    // Prometheus goes away for 12 s: longer than the rate() window and the scale-down window.
    load.server.kill();
    d.wait_for("the failing entry", Duration::from_secs(10), |d| {
        failing(d, "web").is_some()
    });
    let entry = failing(&d, "web").unwrap();
    assert!(
        entry.contains("no data for rps") && entry.contains("(since "),
        "{entry}"
    );
    let (_, metrics) = d.get("/metrics").unwrap();
    assert!(
        metrics.contains("setpoint_blind_since_seconds{policy=\"web\"}"),
        "{metrics}"
    );
    std::thread::sleep(Duration::from_secs(11));
    load.server.start_again();
    // The readings of the first seconds after the gap: rate() over a window still mostly empty.
    let back = Instant::now();
    let mut lowest = f64::INFINITY;
    while back.elapsed() < Duration::from_secs(16) {
        let r = recommendations(&d);
        let value = r["recommendations"][0]["explanation"]["proposals"][0]["value"].as_f64();
        if let Some(v) = value {
            lowest = lowest.min(v);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(lowest < 600.0, "no low reading after the gap: {lowest}");
    assert_eq!(failing(&d, "web"), None);

    let low: Vec<_> = scale_patches(&api, start_at)
        .into_iter()
        .filter(|(_, r)| *r < 9)
        .collect();
    assert!(low.is_empty(), "scaled down after the gap: {low:?}");
    assert_eq!(api.world().scalables[0].replicas, 10);
    let log = d.log()[log_before..].to_string();
    assert_eq!(log.matches("metrics unavailable").count(), 1, "{log}");
    assert_eq!(log.matches("metrics available again").count(), 1, "{log}");
    let warned = events(&api, "MetricsUnavailable");
    assert_eq!(warned.len(), warned_before + 1, "{warned:?}");
    let warned = warned.last().unwrap();
    assert_eq!(warned["type"], "Warning");
    assert_eq!(
        warned["regarding"]["uid"],
        api.world().scalables[0].uid.as_str()
    );
    let note = warned["note"].as_str().unwrap();
    assert!(
        note.starts_with("no data for rps: ") && note.contains("(since "),
        "{note}"
    );
    let (_, metrics) = d.get("/metrics").unwrap();
    assert!(
        !metrics.contains("setpoint_blind_since_seconds{"),
        "{metrics}"
    );
    println!("lowest reading after the gap: {lowest:.0} of 800");
}

#[test]
fn two_horizontal_policies_on_one_target_are_refused_naming_both_files() {
    let dir = TempDir::new("control-plane");
    let q = "setpoint_demand";
    write_policy(&dir, "a.yaml", &policy("web-a", "web", "2s", q, "0s"));
    write_policy(&dir, "b.yaml", &policy("web-b", "web", "2s", q, "0s"));
    let folder = dir.path().join("policies");
    let out = std::process::Command::new(BIN)
        .arg("check")
        .arg(&folder)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("b.yaml: policy \"web-b\" scales Deployment web horizontally, and so does policy \"web-a\" of "), "{text}");
    assert!(text.contains("a.yaml"), "{text}");

    // The daemon runs the first and refuses the second.
    let api = KubeStandIn::start(world(2));
    let kubeconfig = api.kubeconfig(&dir, NS);
    let d = start(
        &dir,
        &kubeconfig,
        "http://127.0.0.1:9",
        &["--no-leader-election"],
    );
    d.wait_for("b.yaml refused", Duration::from_secs(20), |d| {
        recommendations(d)["invalid"]
            .as_array()
            .is_some_and(|i| !i.is_empty())
    });
    let r = recommendations(&d);
    let invalid = r["invalid"].as_array().unwrap();
    assert_eq!(invalid.len(), 1, "{r}");
    assert!(
        invalid[0]["error"].as_str().unwrap().contains("web-a"),
        "{r}"
    );
}

#[test]
fn a_deleted_target_leaves_failing_with_its_policy() {
    let (_api, dir, kubeconfig) = setup(
        World::default(),
        "gone.yaml",
        &policy("gone", "gone", "1s", "setpoint_demand", "0s"),
    );
    let d = start(
        &dir,
        &kubeconfig,
        "http://127.0.0.1:9",
        &["--no-leader-election", "--reload-every", "200ms"],
    );
    d.wait_for("failing", Duration::from_secs(20), |d| {
        failing(d, "gone").is_some()
    });
    std::fs::remove_file(dir.path().join("policies/gone.yaml")).unwrap();
    d.wait_for("no longer failing", Duration::from_secs(10), |d| {
        failing(d, "gone").is_none()
    });
    // And it stays gone (no tick in flight lists it again).
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(failing(&d, "gone"), None);
    assert!(
        recommendations(&d)["recommendations"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn without_pod_name_or_hostname_the_machine_host_name_names_the_replica() {
    let (api, dir, kubeconfig) = setup(
        world(2),
        "web.yaml",
        &policy("web", "web", "2s", "setpoint_demand", "0s"),
    );
    let policies = dir.path().join("policies");
    let args = [
        "--policies",
        policies.to_str().unwrap(),
        "--prometheus",
        "http://127.0.0.1:9",
    ];
    let d = Daemon::start_as(BIN, &dir, "no-identity", None, &kubeconfig, &args);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    d.wait_for("leading as the host name", Duration::from_secs(20), |_| {
        api.world().lease_holder(NS, "setpoint").as_deref() == Some(host.as_str())
    });
    assert!(d.log().contains("the machine's host name"), "{}", d.log());
}

/// Counts the log lines a daemon prints at the default level (info) during a `secs`-long API
/// server outage and a `secs`-long Prometheus outage (`SETPOINT_OUTAGE_SECS`, default 60), with
/// a 1 s interval (a 60 s outage has as many ticks as a 15-minute one at a 15 s interval).
#[test]
#[ignore = "a measurement: cargo test --test control_plane -- --ignored --nocapture --test-threads=1"]
fn log_lines_per_minute_during_outages() {
    if !prom::available("log_lines_per_minute_during_outages") {
        return;
    }
    let secs: u64 = std::env::var("SETPOINT_OUTAGE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let mut load = Load::start(320.0);
    let api = KubeStandIn::start(world(4));
    let dir = TempDir::new("control-plane");
    let kubeconfig = api.kubeconfig(&dir, NS);
    for i in 0..3 {
        let name = format!("web-{i}");
        let mut w = api.world();
        w.scalables.push(Scalable::deployment(NS, &name, 4));
        drop(w);
        write_policy(
            &dir,
            &format!("{name}.yaml"),
            &policy(&name, &name, "1s", "setpoint_demand", "0s"),
        );
    }
    let policies = dir.path().join("policies");
    let args = [
        "--policies",
        policies.to_str().unwrap(),
        "--prometheus",
        load.url(),
        "--lease-duration",
        "3s",
    ];
    let d = Daemon::start(BIN, &dir, "setpoint-0", &kubeconfig, &args);
    std::thread::sleep(Duration::from_secs(5));
    let lines = |d: &Daemon| d.log().lines().count();

    let before = lines(&d);
    api.restart(Duration::from_secs(secs), Duration::from_secs(1));
    std::thread::sleep(Duration::from_secs(5));
    let api_lines = lines(&d) - before;

    let before = lines(&d);
    load.server.kill();
    std::thread::sleep(Duration::from_secs(secs));
    load.server.start_again();
    std::thread::sleep(Duration::from_secs(5));
    let prom_lines = lines(&d) - before;
    let minutes = secs as f64 / 60.0;
    println!(
        "| outage | length | policies | log lines (start to 5 s after the end) | per minute |\n\
         |---|---|---|---|---|\n\
         | API server (refused, then 1 s of 403) | {secs} s | 3 | {api_lines} | {:.1} |\n\
         | Prometheus (killed, started again) | {secs} s | 3 | {prom_lines} | {:.1} |",
        api_lines as f64 / minutes,
        prom_lines as f64 / minutes
    );
    println!("--- log ---\n{}", d.log());
}

/// The median time from the API server being ready again (after refusing connections for 4 s
/// and answering 403 for 1 s) to the next scale patch, over 7 restarts.
#[test]
#[ignore = "a measurement: cargo test --test control_plane -- --ignored --nocapture --test-threads=1"]
fn time_from_api_server_ready_to_the_next_tick() {
    let Some((took, mut d, _api, _dir)) =
        restarts("time_from_api_server_ready", 7, Duration::from_secs(4))
    else {
        return;
    };
    println!(
        "ready -> next scale patch over {} restarts: median {:.2} s, max {:.2} s: {took:?}",
        took.len(),
        median(took.clone()),
        took.iter().copied().fold(0.0, f64::max)
    );
    d.stop_within(Duration::from_secs(10));
}
