//! End-to-end tests of `setpoint run`: the binary against a real Prometheus (Debian's package,
//! scraping a live target whose value the test sets) and the Kubernetes API stand-in of
//! tests/support/kube.rs. Without `/usr/bin/prometheus` they say why they are skipped, except
//! under `CI=true`, where they fail.

mod support;

use serde_json::Value;
use setpoint::engine::Sample;
use setpoint::prometheus::{PrometheusClient, PrometheusConfig};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::TempDir;
use support::daemon::Daemon;
use support::http::ScrapeTarget;
use support::kube::{self as k, KubeStandIn, Scalable, World};
use support::prometheus::{self as prom, Options, Prometheus};

const NS: &str = "demo";

/// Starts `setpoint run` as pod `name` with `args` (after `--kubeconfig` and `--listen`), at
/// debug level.
fn start(dir: &TempDir, name: &str, kubeconfig: &Path, args: &[&str]) -> Daemon {
    let mut all = vec!["--log-level", "debug"];
    all.extend_from_slice(args);
    Daemon::start(env!("CARGO_BIN_EXE_setpoint"), dir, name, kubeconfig, &all)
}

/// What the tests read of a daemon's admin server.
trait Admin {
    /// `/recommendations` as JSON.
    fn recommendations(&self) -> Value;
    /// The last decision of `policy`, if any.
    fn decision(&self, policy: &str) -> Option<Value>;
    /// SIGTERM; the time it took to exit (at most 10 s).
    fn stop(&mut self) -> Duration;
}

impl Admin for Daemon {
    fn recommendations(&self) -> Value {
        let (code, body) = self.get("/recommendations").expect("/recommendations");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    fn decision(&self, policy: &str) -> Option<Value> {
        self.recommendations()["recommendations"]
            .as_array()?
            .iter()
            .find(|r| r["policy"] == policy)
            .cloned()
    }

    fn stop(&mut self) -> Duration {
        self.stop_within(Duration::from_secs(10))
    }
}

/// A live `setpoint_demand` gauge scraped every 500 ms by a real Prometheus.
struct Demand {
    target: ScrapeTarget,
    server: Prometheus,
}

impl Demand {
    fn start(value: f64) -> Demand {
        let target = ScrapeTarget::start(&body(value));
        let server = Prometheus::start(Options {
            scrape_target: Some(target.address()),
            scrape_interval: Duration::from_millis(500),
            ..Options::default()
        });
        let d = Demand { target, server };
        d.wait_visible(value);
        d
    }

    /// Sets the value and returns when Prometheus answers it.
    fn set(&self, value: f64) -> Instant {
        self.target.set(&body(value));
        self.wait_visible(value)
    }

    fn wait_visible(&self, value: f64) -> Instant {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = PrometheusClient::new(&PrometheusConfig::new(self.server.url())).unwrap();
        let start = Instant::now();
        rt.block_on(async {
            loop {
                if let Sample::Value { value: v } =
                    client.sample("setpoint_demand", None, false).await
                    && v == value
                {
                    return Instant::now();
                }
                assert!(start.elapsed() < Duration::from_secs(30), "never scraped");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    }

    fn url(&self) -> &str {
        self.server.url()
    }
}

fn body(value: f64) -> String {
    format!("# TYPE setpoint_demand gauge\nsetpoint_demand {value}\n")
}

/// A policy `name` on Deployment `target`: `setpoint_demand` at 80 per replica, 2 s interval,
/// scale-down without stabilization (so that a wrong scale-down would show at once).
fn policy(name: &str, target: &str, extra: &str) -> String {
    format!(
        "apiVersion: setpoint.dev/v1alpha1\nkind: ScalingPolicy\nmetadata: {{name: {name}}}\n\
         spec:\n  target: {{kind: Deployment, name: {target}}}\n  interval: 2s\n{extra}  \
         horizontal:\n    replicas: {{min: 1, max: 50}}\n    metrics:\n      \
         - {{name: rps, prometheus: setpoint_demand, targetPerReplica: 80}}\n    \
         scaleDown: {{stabilization: 0s}}\n"
    )
}

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

fn replicas(api: &KubeStandIn) -> i64 {
    api.world().scalables[0].replicas
}

fn scale_patches(api: &KubeStandIn) -> Vec<k::Received> {
    api.requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.uri.contains("/scale"))
        .collect()
}

/// One daemon (`setpoint-0`, no Lease) on the policies of `dir`, with `prometheus` and `extra`
/// flags.
fn single(dir: &TempDir, kubeconfig: &Path, prometheus: &str, extra: &[&str]) -> Daemon {
    let policies = policies(dir);
    let mut args = vec![
        "--policies",
        &policies,
        "--prometheus",
        prometheus,
        "--no-leader-election",
    ];
    args.extend_from_slice(extra);
    start(dir, "setpoint-0", kubeconfig, &args)
}

/// The Events with `reason` the stand-in has received.
fn events(api: &KubeStandIn, reason: &str) -> Vec<Value> {
    api.world()
        .events
        .iter()
        .filter(|e| e["reason"] == reason)
        .cloned()
        .collect()
}

fn setup(name: &str, replicas: i64) -> Option<(Demand, KubeStandIn, TempDir, PathBuf)> {
    if !prom::available(name) {
        return None;
    }
    let demand = Demand::start(80.0 * replicas as f64);
    let api = KubeStandIn::start(world(replicas));
    let dir = TempDir::new("daemon");
    let kubeconfig = api.kubeconfig(&dir, NS);
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    Some((demand, api, dir, kubeconfig))
}

fn policies(dir: &TempDir) -> String {
    dir.path().join("policies").to_str().unwrap().to_string()
}

fn write_policy(dir: &TempDir, file: &str, text: &str) {
    support::daemon::write_policy(&dir.path().join("policies"), file, text);
}

#[test]
fn a_load_step_is_patched_within_one_interval() {
    let Some((demand, api, dir, kubeconfig)) =
        setup("a_load_step_is_patched_within_one_interval", 2)
    else {
        return;
    };
    write_policy(&dir, "web.yaml", &policy("web", "web", ""));
    let mut d = single(&dir, &kubeconfig, demand.url(), &[]);
    d.wait_for("a first decision", Duration::from_secs(20), |d| {
        d.decision("web").is_some()
    });
    assert!(scale_patches(&api).is_empty(), "no change needed at 160/s");
    let visible = demand.set(400.0);
    let start = Instant::now();
    while replicas(&api) != 5 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "not patched; log:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let reaction = visible.elapsed();
    // One interval (2 s) plus the query and the API calls.
    assert!(reaction < Duration::from_secs(4), "{reaction:?}");
    let patches = scale_patches(&api);
    assert_eq!(patches.len(), 1, "{patches:?}");
    let p = &patches[0];
    assert!(p.uri.contains("fieldManager=setpoint"), "{}", p.uri);
    assert_eq!(
        p.content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    d.wait_for(
        "the decision on /recommendations",
        Duration::from_secs(10),
        |d| {
            d.decision("web")
                .is_some_and(|r| r["desiredReplicas"] == 5 && r["mode"] == "apply")
        },
    );
    let (_, metrics) = d.get("/metrics").unwrap();
    assert!(
        metrics.contains("setpoint_scaling_actions_total{policy=\"web\",direction=\"up\"} 1"),
        "{metrics}"
    );
    // The Event follows the published decision.
    d.wait_for("the ScaledUp Event", Duration::from_secs(5), |_| {
        !events(&api, "ScaledUp").is_empty()
    });
    let events = events(&api, "ScaledUp");
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e["regarding"]["kind"], "Deployment");
    assert_eq!(e["regarding"]["name"], "web");
    assert_eq!(e["reportingController"], "setpoint.dev/setpoint");
    assert_eq!(e["reportingInstance"], "setpoint-0");
    assert_eq!(e["type"], "Normal");
    assert!(e["note"].as_str().unwrap().contains("scale up 2→5"), "{e}");
    // The governor's memory is on the target, for a restart (written after the Event).
    d.wait_for("the state annotation", Duration::from_secs(5), |_| {
        api.world().scalables[0]
            .annotations
            .contains_key("state.setpoint.dev/web")
    });
    let took = d.stop();
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");
}

#[test]
fn dry_run_patches_nothing_and_shows_the_decision() {
    let Some((demand, api, dir, kubeconfig)) =
        setup("dry_run_patches_nothing_and_shows_the_decision", 2)
    else {
        return;
    };
    demand.set(400.0);
    write_policy(&dir, "web.yaml", &policy("web", "web", ""));
    let mut d = single(&dir, &kubeconfig, demand.url(), &["--dry-run"]);
    d.wait_for("a recommendation", Duration::from_secs(20), |d| {
        d.decision("web").is_some()
    });
    // Three more ticks.
    d.wait_ticks("web", 3, Duration::from_secs(20));
    let r = d.decision("web").unwrap();
    assert_eq!(r["mode"], "recommend");
    assert_eq!(r["currentReplicas"], 2);
    assert_eq!(r["desiredReplicas"], 5);
    assert_eq!(r["explanation"]["proposals"][0]["replicas"], 5, "{r}");
    assert_eq!(replicas(&api), 2);
    assert!(scale_patches(&api).is_empty());
    let writes: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET" && !r.uri.contains("/events"))
        .collect();
    assert!(writes.is_empty(), "dry-run wrote: {writes:?}");
    let (_, metrics) = d.get("/metrics").unwrap();
    assert!(
        metrics.contains("setpoint_recommended_replicas{policy=\"web\"} 5"),
        "{metrics}"
    );
    // One Event for the one change of the recommendation.
    let events = events(&api, "Recommendation");
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        events[0]["note"]
            .as_str()
            .unwrap()
            .starts_with("recommends 5 replicas"),
        "{events:?}"
    );
    d.stop();
}

/// Waits until policy `web` has decided on a tick without data.
fn wait_no_data(d: &Daemon) {
    d.wait_for("a tick without data", Duration::from_secs(20), |d| {
        d.decision("web").is_some_and(|r| {
            r["explanation"]["missing"]
                .as_array()
                .is_some_and(|m| !m.is_empty())
        })
    });
}

#[test]
fn prometheus_going_down_never_scales_down() {
    let Some((demand, api, dir, kubeconfig)) = setup("prometheus_going_down_never_scales_down", 8)
    else {
        return;
    };
    write_policy(&dir, "web.yaml", &policy("web", "web", ""));
    let mut d = single(&dir, &kubeconfig, demand.url(), &[]);
    d.wait_for("a decision with data", Duration::from_secs(20), |d| {
        d.decision("web")
            .is_some_and(|r| r["explanation"]["proposals"][0]["replicas"] == 8)
    });
    drop(demand);
    wait_no_data(&d);
    d.wait_ticks("web", 3, Duration::from_secs(20));
    assert_eq!(replicas(&api), 8);
    assert!(scale_patches(&api).is_empty());
    let r = d.decision("web").unwrap();
    assert_eq!(r["desiredReplicas"], 8, "{r}");
    d.stop();
}

#[test]
fn a_broken_policy_reload_keeps_the_previous_version_and_others_run_on() {
    let Some((demand, api, dir, kubeconfig)) =
        setup("a_broken_policy_reload_keeps_the_previous_version", 2)
    else {
        return;
    };
    write_policy(&dir, "web.yaml", &policy("web", "web", ""));
    // A second policy whose target does not exist: its error is its own.
    write_policy(&dir, "nope.yaml", &policy("nope", "nope", ""));
    let mut d = single(
        &dir,
        &kubeconfig,
        demand.url(),
        &["--reload-every", "300ms"],
    );
    d.wait_for("web decides, nope fails", Duration::from_secs(20), |d| {
        let r = d.recommendations();
        d.decision("web").is_some()
            && r["failing"]
                .as_array()
                .is_some_and(|f| f.iter().any(|f| f["policy"] == "nope"))
    });
    let r = d.recommendations();
    let nope = r["failing"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["policy"] == "nope")
        .unwrap();
    let e = nope["error"].as_str().unwrap();
    assert!(e.contains("404") && e.contains("Deployment nope"), "{e}");

    // A broken new version: the previous one keeps running.
    let broken = policy("web", "web", "").replace("targetPerReplica: 80", "targetPerReplica: lots");
    write_policy(&dir, "web.yaml", &broken);
    d.wait_for(
        "the error on /recommendations",
        Duration::from_secs(10),
        |d| {
            d.recommendations()["invalid"]
                .as_array()
                .is_some_and(|i| i.iter().any(|i| i["policy"] == "web"))
        },
    );
    let r = d.recommendations();
    let invalid = &r["invalid"][0]["error"];
    assert!(
        invalid.as_str().unwrap().contains("web.yaml:"),
        "file:line:column: {invalid}"
    );
    d.wait_for("a PolicyInvalid Event", Duration::from_secs(10), |_| {
        !events(&api, "PolicyInvalid").is_empty()
    });
    assert_eq!(events(&api, "PolicyInvalid")[0]["type"], "Warning");
    let before = d.decision("web").unwrap()["time"].clone();
    demand.set(400.0);
    d.wait_for(
        "the previous version scales",
        Duration::from_secs(10),
        |_| replicas(&api) == 5,
    );
    // The decision is published right after the patch.
    d.wait_for(
        "the previous version's new decision",
        Duration::from_secs(5),
        |d| {
            d.decision("web")
                .is_some_and(|r| r["time"] != before && r["desiredReplicas"] == 5)
        },
    );
    let (_, metrics) = d.get("/metrics").unwrap();
    assert!(
        metrics.contains("setpoint_policies{state=\"invalid\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("setpoint_policy_reloads_total{result=\"error\"} 1"),
        "{metrics}"
    );

    // Fixed: 70 per replica now, so 400/s needs 6 (within the HPA preset's rate limit).
    write_policy(
        &dir,
        "web.yaml",
        &policy("web", "web", "").replace("targetPerReplica: 80", "targetPerReplica: 70"),
    );
    d.wait_for("the fixed version scales", Duration::from_secs(10), |_| {
        replicas(&api) == 6
    });
    assert!(
        d.recommendations()["invalid"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // Removed: gone from /recommendations.
    std::fs::remove_file(dir.path().join("policies").join("nope.yaml")).unwrap();
    d.wait_for("nope is gone", Duration::from_secs(10), |d| {
        let r = d.recommendations();
        r["failing"].as_array().unwrap().is_empty()
    });
    d.stop();
}

#[test]
fn a_forbidden_patch_names_the_missing_right_and_backs_off() {
    let Some((demand, api, dir, kubeconfig)) =
        setup("a_forbidden_patch_names_the_missing_right", 2)
    else {
        return;
    };
    api.world().faults.push_back(k::Fault {
        method: Some("PATCH".into()),
        path_contains: "/scale".into(),
        status: Some(403),
        delay: Duration::ZERO,
        times: 1000,
    });
    demand.set(400.0);
    write_policy(&dir, "web.yaml", &policy("web", "web", ""));
    let mut d = single(&dir, &kubeconfig, demand.url(), &[]);
    d.wait_for(
        "the error on /recommendations",
        Duration::from_secs(20),
        |d| {
            d.recommendations()["failing"]
                .as_array()
                .is_some_and(|f| !f.is_empty())
        },
    );
    let r = d.recommendations();
    let e = r["failing"][0]["error"].as_str().unwrap();
    assert!(
        e.contains("the Role needs verb \"patch\" on resource \"deployments/scale\""),
        "{e}"
    );
    let (_, metrics) = d.get("/metrics").unwrap();
    assert!(
        metrics.contains("setpoint_errors_total{kind=\"forbidden\"}"),
        "{metrics}"
    );
    // Logged once, not once a tick.
    d.wait_ticks("web", 2, Duration::from_secs(20));
    let log = d.log();
    assert_eq!(
        log.matches("tick failed").count() - log.matches("tick failed again").count(),
        1,
        "{log}"
    );
    assert!(!log.contains("s3cr3t"), "{log}");
    d.stop();
}

#[test]
fn pid_and_predictive_policies_run_in_the_daemon_with_history_from_prometheus() {
    if !prom::available("pid_and_predictive_policies_run_in_the_daemon") {
        return;
    }
    // Four days of a daily cycle (400 req/s from 08:00 to 20:00 UTC, 100 otherwise), one point a
    // minute up to two minutes ago.
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
    let server = Prometheus::start(Options {
        backfill: vec![prom::Series {
            name: "setpoint_history".into(),
            labels: vec![],
            points: (end - 4 * 86_400..=end)
                .step_by(60)
                .map(|t| (t, level(t)))
                .collect(),
        }],
        ..Options::default()
    });
    // Two targets: one horizontal policy per target.
    let mut w = world(4);
    w.scalables.push(Scalable::deployment(NS, "api", 4));
    w.pods
        .extend((0..4).map(|i| k::ready_pod(NS, &format!("api-{i}"), "api")));
    let api = KubeStandIn::start(w);
    let dir = TempDir::new("daemon-algorithms");
    let kubeconfig = api.kubeconfig(&dir, NS);
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    let with = |name: &str, algorithm: &str| {
        let target = if name == "pid" { "api" } else { "web" };
        policy(name, target, "")
            .replace("setpoint_demand", "setpoint_history")
            .replace("targetPerReplica: 80", "targetPerReplica: 50")
            + &format!("    policy: {algorithm}\n")
    };
    write_policy(
        &dir,
        "predictive.yaml",
        &with(
            "predictive",
            "{predictive: {history: 4d, season: 1d, quantile: 0.9}}",
        ),
    );
    write_policy(
        &dir,
        "pid.yaml",
        &with("pid", "{pid: {kp: 0.5, ki: 0.1, kd: 0}}"),
    );
    let mut d = single(&dir, &kubeconfig, server.url(), &["--dry-run"]);
    d.wait_for("both decide", Duration::from_secs(30), |d| {
        d.decision("predictive").is_some() && d.decision("pid").is_some()
    });
    let r = d.decision("predictive").unwrap();
    let f = &r["explanation"]["forecasts"][0];
    assert_eq!(f["metric"], "rps", "{r:#}");
    assert_eq!(f["fallback"], Value::Null, "{f:#}");
    assert_eq!(f["seasonS"], 86_400.0, "{f:#}");
    assert!(
        d.log()
            .contains("metric rps: forecast history read from Prometheus"),
        "{}",
        d.log()
    );
    let pid = d.decision("pid").unwrap();
    assert_eq!(
        pid["explanation"]["proposals"][0]["metric"], "rps",
        "{pid:#}"
    );
    assert!(
        d.recommendations()["failing"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(scale_patches(&api).is_empty());
    d.stop();
}

#[test]
fn a_restart_inside_a_cooldown_does_not_act() {
    let Some((demand, api, dir, kubeconfig)) = setup("a_restart_inside_a_cooldown_does_not_act", 2)
    else {
        return;
    };
    let text = policy("web", "web", "").replace(
        "    scaleDown: {stabilization: 0s}\n",
        "    scaleDown: {stabilization: 0s}\n    scaleUp: {cooldown: 10m}\n",
    );
    write_policy(&dir, "web.yaml", &text);
    let args = [
        "--policies",
        &policies(&dir),
        "--prometheus",
        demand.url(),
        "--no-leader-election",
    ];
    let mut first = start(&dir, "setpoint-0", &kubeconfig, &args);
    demand.set(400.0);
    first.wait_for("the scale-up", Duration::from_secs(10), |_| {
        replicas(&api) == 5
    });
    first.wait_for("the state annotation", Duration::from_secs(5), |_| {
        api.world().scalables[0]
            .annotations
            .keys()
            .any(|k| k.starts_with("state.setpoint.dev/"))
    });
    first.stop();

    // More load, inside the 10-minute cooldown: the restarted daemon holds.
    demand.set(800.0);
    let second = start(&dir, "setpoint-1", &kubeconfig, &args);
    second.wait_for("a decision", Duration::from_secs(20), |d| {
        d.decision("web").is_some()
    });
    second.wait_ticks("web", 3, Duration::from_secs(20));
    assert_eq!(replicas(&api), 5, "log:\n{}", second.log());
    assert_eq!(scale_patches(&api).len(), 1);
    let r = second.decision("web").unwrap();
    assert_eq!(r["desiredReplicas"], 5, "{r:#}");
    let steps = r["explanation"]["steps"].as_array().unwrap();
    assert!(steps.iter().any(|s| s["rule"] == "cooldown"), "{r:#}");
    assert!(
        second
            .log()
            .contains("restored from the state.setpoint.dev/web annotation"),
        "{}",
        second.log()
    );
}

/// `setpoint_leader` on a daemon's /metrics.
fn leads(d: &Daemon) -> Option<bool> {
    let (_, m) = d.get("/metrics")?;
    let line = m.lines().find(|l| l.starts_with("setpoint_leader "))?;
    Some(line.ends_with(" 1"))
}

#[test]
fn two_daemons_with_one_lease_never_both_act() {
    let Some((demand, api, dir, kubeconfig)) =
        setup("two_daemons_with_one_lease_never_both_act", 2)
    else {
        return;
    };
    write_policy(&dir, "web.yaml", &policy("web", "web", ""));
    let args = [
        "--policies",
        &policies(&dir),
        "--prometheus",
        demand.url(),
        "--lease-duration",
        "2s",
    ];
    let mut a = start(&dir, "setpoint-a", &kubeconfig, &args);
    let mut b = start(&dir, "setpoint-b", &kubeconfig, &args);
    let both = |a: &Daemon, b: &Daemon| (leads(a), leads(b));
    let start = Instant::now();
    loop {
        match both(&a, &b) {
            (Some(true), Some(false)) | (Some(false), Some(true)) => break,
            (Some(true), Some(true)) => panic!("both lead"),
            _ => {}
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no leader");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (leader, follower) = if leads(&a) == Some(true) {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    let leader_name = api.world().lease_holder(NS, "setpoint").unwrap();
    demand.set(400.0);
    let start = Instant::now();
    while replicas(&api) != 5 {
        assert_ne!(
            both(leader, follower),
            (Some(true), Some(true)),
            "both lead"
        );
        assert!(start.elapsed() < Duration::from_secs(15), "no scale-up");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Both saw the load; the follower only recommends, and says nothing.
    follower.wait_for(
        "the follower's recommendation",
        Duration::from_secs(10),
        |d| d.decision("web").is_some_and(|r| r["mode"] == "recommend"),
    );
    leader.wait_ticks("web", 2, Duration::from_secs(20));
    follower.wait_ticks("web", 2, Duration::from_secs(20));
    let ups = events(&api, "ScaledUp");
    assert_eq!(ups.len(), 1, "{ups:?}");
    assert_eq!(ups[0]["reportingInstance"], leader_name);
    assert!(events(&api, "Recommendation").is_empty());
    assert_eq!(scale_patches(&api).len(), 1);

    // The leader stops (and releases the Lease): the other takes over and acts.
    leader.stop();
    follower.wait_for("the follower leads", Duration::from_secs(10), |d| {
        leads(d) == Some(true)
    });
    demand.set(800.0);
    follower.wait_for("the new leader scales", Duration::from_secs(15), |_| {
        replicas(&api) > 5
    });
    // Its Event follows the patch.
    follower.wait_for("the new leader's Event", Duration::from_secs(10), |_| {
        events(&api, "ScaledUp").len() > 1
    });
    let ups = events(&api, "ScaledUp");
    assert_eq!(ups.len(), 2, "{ups:?}");
    assert_ne!(ups[1]["reportingInstance"], leader_name);
    follower.stop();
}

/// A ready pod `name` of Deployment web whose container `app` has these requests and limits.
fn sized_pod(name: &str, requests: Value, limits: Value) -> Value {
    k::with_resources(k::ready_pod(NS, name, "web"), requests, limits)
}

/// metrics.k8s.io usage of pod `name` of Deployment web: `cpu` in its container `app`.
fn cpu_usage(name: &str, cpu: &str) -> Value {
    let at = k::rfc3339(support::unix_now() - 5.0);
    k::pod_metrics(NS, name, "web", &at, "30s", cpu)
}

/// For the vertical part without Prometheus: a stand-in with Deployment web of `pods` and
/// their metrics.k8s.io `usage`, and a folder whose policies/web.yaml ticks every second with
/// `vertical` (the lines of spec.vertical, each indented by four spaces). The kubeconfig too.
fn vertical_setup(
    pods: Vec<Value>,
    usage: Vec<Value>,
    vertical: &str,
    name: &str,
) -> (KubeStandIn, TempDir, PathBuf) {
    let api = KubeStandIn::start(World {
        scalables: vec![Scalable::deployment(NS, "web", pods.len() as i64)],
        pods,
        pod_metrics: Some(usage),
        ..World::default()
    });
    let dir = TempDir::new(name);
    let kubeconfig = api.kubeconfig(&dir, NS);
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    let policy = format!(
        "apiVersion: setpoint.dev/v1alpha1\nkind: ScalingPolicy\nmetadata: {{name: web}}\n\
         spec:\n  target: {{kind: Deployment, name: web}}\n  interval: 1s\n  vertical:\n{vertical}"
    );
    write_policy(&dir, "web.yaml", &policy);
    (api, dir, kubeconfig)
}

#[test]
fn the_vertical_part_resizes_one_pod_in_place_and_only_recommends_in_dry_run() {
    // No Prometheus needed: usage from metrics.k8s.io.
    let pod = |name: &str| {
        sized_pod(
            name,
            serde_json::json!({"cpu": "100m", "memory": "128Mi"}),
            serde_json::json!({"cpu": "200m", "memory": "256Mi"}),
        )
    };
    // web-a was OOM-killed a minute ago: memory goes up at once, before any history.
    let killed = k::with_oom_kill(pod("web-a"), &k::rfc3339(support::unix_now() - 60.0));
    let (api, dir, kubeconfig) = vertical_setup(
        vec![killed, pod("web-b")],
        vec![cpu_usage("web-a", "600m"), cpu_usage("web-b", "600m")],
        "    containers: [app]\n    resources: [memory]\n    min: {memory: 64Mi}\n    \
         max: {memory: 2Gi}\n    update: inPlace\n",
        "daemon-vertical",
    );
    let args = ["--policies", &policies(&dir), "--no-leader-election"];
    let resizes = |api: &KubeStandIn| {
        api.requests()
            .into_iter()
            .filter(|r| r.uri.contains("/resize"))
            .count()
    };

    let mut dry = start(
        &dir,
        "setpoint-0",
        &kubeconfig,
        &[&args[..], &["--dry-run"]].concat(),
    );
    dry.wait_for(
        "a vertical plan that writes",
        Duration::from_secs(20),
        |d| {
            d.decision("web")
                .is_some_and(|r| r["vertical"]["applied"]["kind"] == "notApplied")
        },
    );
    let r = dry.decision("web").unwrap();
    assert_eq!(r["mode"], "recommend");
    assert!(r.get("desiredReplicas").is_none(), "vertical only: {r:#}");
    let reason = &r["vertical"]["applied"]["reason"];
    assert_eq!(reason, "the daemon runs with --dry-run", "{r:#}");
    assert_eq!(resizes(&api), 0);
    let (_, metrics) = dry.get("/metrics").unwrap();
    assert!(
        metrics.contains(
            "setpoint_vertical_recommendation{policy=\"web\",container=\"app\",resource=\"memory\",bound=\"target\"}"
        ),
        "{metrics}"
    );
    dry.stop();

    let applying = start(&dir, "setpoint-0", &kubeconfig, &args);
    applying.wait_for("a resize", Duration::from_secs(20), |_| resizes(&api) > 0);
    applying.wait_for("the Resized Event", Duration::from_secs(10), |_| {
        !events(&api, "Resized").is_empty()
    });
    let e = &events(&api, "Resized")[0];
    assert_eq!(e["regarding"]["kind"], "Pod");
    // The OOM-killed pod first, and one pod at a time.
    let first = api.world().resize_patches[0].clone();
    assert_eq!(first.0, "web-a", "{first:?}");
    assert!(
        api.requests()
            .iter()
            .all(|r| !r.uri.contains("/scale") || r.method == "GET"),
        "a vertical-only policy never patches /scale"
    );
}

#[test]
fn a_conflict_is_read_again_and_server_errors_are_retried_inside_the_tick() {
    let Some((demand, api, dir, kubeconfig)) =
        setup("a_conflict_is_read_again_and_server_errors_are_retried", 2)
    else {
        return;
    };
    write_policy(&dir, "web.yaml", &policy("web", "web", ""));
    let mut d = single(&dir, &kubeconfig, demand.url(), &[]);
    d.wait_for("a first decision", Duration::from_secs(20), |d| {
        d.decision("web").is_some()
    });
    {
        let mut w = api.world();
        // The next PATCH of /scale meets a 409, and the next two reads of it a 500.
        w.faults.push_back(k::Fault {
            method: Some("PATCH".into()),
            path_contains: "/scale".into(),
            status: Some(409),
            delay: Duration::ZERO,
            times: 1,
        });
    }
    demand.set(400.0);
    d.wait_for(
        "the patch after the conflict",
        Duration::from_secs(15),
        |_| replicas(&api) == 5,
    );
    let patches = scale_patches(&api);
    assert_eq!(patches.len(), 2, "{patches:?}");
    // The second patch carries the resourceVersion read again after the conflict.
    assert!(
        patches[1].body.contains("resourceVersion"),
        "{}",
        patches[1].body
    );
    let (_, metrics) = d.get("/metrics").unwrap();
    assert!(
        metrics.contains("setpoint_errors_total{kind=\"conflict\"} 1"),
        "{metrics}"
    );

    // A 409 again, and two 500s on the re-read of the scale (from the API server: the tick
    // reads the target from the watch cache, but a re-read after a conflict is fresh):
    // retried inside the tick, which then works.
    {
        let mut w = api.world();
        w.faults.push_back(k::Fault {
            method: Some("PATCH".into()),
            path_contains: "/scale".into(),
            status: Some(409),
            delay: Duration::ZERO,
            times: 1,
        });
        w.faults.push_back(k::Fault {
            method: Some("GET".into()),
            path_contains: "/scale".into(),
            status: Some(500),
            delay: Duration::ZERO,
            times: 2,
        });
    }
    demand.set(160.0);
    d.wait_for(
        "the scale-down after the 500s",
        Duration::from_secs(15),
        |_| replicas(&api) == 2,
    );
    assert!(api.world().faults.is_empty(), "both 500s were used");
    assert!(
        d.recommendations()["failing"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    d.stop();
}

/// The server-side applies of the target's annotations the stand-in has received.
fn annotation_writes(api: &KubeStandIn) -> Vec<k::Received> {
    api.requests()
        .into_iter()
        .filter(|r| {
            r.method == "PATCH"
                && r.uri.contains("/deployments/web")
                && !r.uri.contains("/scale")
                && r.content_type
                    .as_deref()
                    .is_some_and(|c| c.contains("apply-patch"))
        })
        .collect()
}

/// The vertical state kept in the target's `state.setpoint.dev/<policy>` annotation, if any.
fn kept_vertical_state(api: &KubeStandIn) -> Option<Value> {
    let w = api.world();
    let (_, text) = w.scalables[0]
        .annotations
        .iter()
        .find(|(k, _)| k.starts_with("state.setpoint.dev/"))?;
    let v: Value = serde_json::from_str(text).unwrap();
    v.get("vertical").cloned()
}

#[test]
fn a_min_change_clock_survives_a_restart() {
    // No Prometheus needed: usage from metrics.k8s.io. Requests of 1 core where 0.4 is used:
    // inside the (wide, short-history) bounds but far off the target, so the pods wait for
    // minChange.after (30 s), counted from when the first daemon saw it, not from the restart.
    let pod = |name: &str| {
        sized_pod(
            name,
            serde_json::json!({"cpu": "1", "memory": "128Mi"}),
            serde_json::json!({"cpu": "2", "memory": "256Mi"}),
        )
    };
    let (api, dir, kubeconfig) = vertical_setup(
        vec![pod("web-a"), pod("web-b")],
        vec![cpu_usage("web-a", "400m"), cpu_usage("web-b", "400m")],
        "    containers: [app]\n    resources: [cpu]\n    min: {cpu: 50m}\n    max: {cpu: \"4\"}\n    \
         minChange: {difference: 0.1, after: 30s}\n    update: inPlace\n",
        "daemon-clock",
    );
    let args = ["--policies", &policies(&dir), "--no-leader-election"];
    let resizes = |api: &KubeStandIn| {
        api.requests()
            .into_iter()
            .filter(|r| r.uri.contains("/resize"))
            .collect::<Vec<_>>()
    };

    let mut first = start(&dir, "setpoint-0", &kubeconfig, &args);
    first.wait_for("the clocks on the target", Duration::from_secs(20), |_| {
        kept_vertical_state(&api).is_some_and(|v| v["differsSince"].as_object().unwrap().len() == 2)
    });
    let kept = kept_vertical_state(&api).unwrap();
    let started = kept["differsSince"]["web-a/app/cpu"].as_f64().unwrap();
    // Ten seconds of ticks (one a second) that change nothing that matters: one write.
    while support::unix_now() < started + 10.0 {
        std::thread::sleep(Duration::from_millis(100));
    }
    first.stop();
    assert!(resizes(&api).is_empty(), "not before minChange.after");
    assert_eq!(annotation_writes(&api).len(), 1, "{}", first.log());

    let (t_ref, i_ref) = (support::unix_now(), Instant::now());
    let unix_of = |i: Instant| {
        t_ref + (i.saturating_duration_since(i_ref)).as_secs_f64()
            - (i_ref.saturating_duration_since(i)).as_secs_f64()
    };
    let restarted = support::unix_now();
    let second = start(&dir, "setpoint-1", &kubeconfig, &args);
    second.wait_for("a resize", Duration::from_secs(40), |_| {
        !resizes(&api).is_empty()
    });
    let at = unix_of(resizes(&api)[0].received_at);
    assert!(
        second.log().contains("annotation: 2 minChange clock(s)"),
        "{}",
        second.log()
    );
    // The clock of the first daemon: 30 s after it started, well before 30 s after the restart.
    assert!(
        at >= started + 29.0,
        "resized {:.1}s after the clock started",
        at - started
    );
    assert!(
        at < restarted + 25.0,
        "resized {:.1}s after the restart, {:.1}s after the clock started: the clock restarted",
        at - restarted,
        at - started
    );
    let r = second.decision("web").unwrap();
    assert!(r["vertical"].is_object(), "{r:#}");
}

#[test]
fn a_change_the_policy_will_not_make_is_reported_by_one_warning_event() {
    // A Guaranteed pod (requests = limits) and `limits: requestsOnly`: its request cannot move
    // without changing its QoS class, so the planner reports, tick after tick; the Event goes
    // out once, not every second.
    let guaranteed = serde_json::json!({"cpu": "1", "memory": "128Mi"});
    let (api, dir, kubeconfig) = vertical_setup(
        vec![sized_pod("web-a", guaranteed.clone(), guaranteed)],
        vec![cpu_usage("web-a", "100m")],
        "    containers: [app]\n    resources: [cpu]\n    min: {cpu: 50m}\n    max: {cpu: \"4\"}\n    \
         minChange: {difference: 0.1, after: 1s}\n    update: inPlace\n    limits: requestsOnly\n",
        "daemon-report",
    );
    let args = ["--policies", &policies(&dir), "--no-leader-election"];
    let daemon = start(&dir, "setpoint-0", &kubeconfig, &args);
    daemon.wait_for("the report", Duration::from_secs(20), |_| {
        !events(&api, "ResizeNotApplied").is_empty()
    });
    // Six more ticks that report the same: no second Event, and nothing written to the pod.
    daemon.wait_ticks("web", 6, Duration::from_secs(30));
    let reported = events(&api, "ResizeNotApplied");
    assert_eq!(reported.len(), 1, "{reported:#?}");
    assert_eq!(reported[0]["type"], "Warning");
    let note = reported[0]["note"].as_str().unwrap();
    assert!(note.contains("web-a"), "{note}");
    assert!(
        api.requests().iter().all(|r| !r.uri.contains("/resize")),
        "nothing resized"
    );
    let r = daemon.decision("web").unwrap();
    assert!(
        r["vertical"]["plan"]["action"]
            .to_string()
            .contains("report")
            || r.to_string().contains("report"),
        "{r:#}"
    );
}

/// `n` minutes of per-pod CPU usage ending at `end`: 0.8 core every fifth minute, else 0.2.
fn cpu_history(pod: &str, end: i64, minutes: i64) -> prom::Series {
    prom::Series {
        name: "setpoint_container_cpu".into(),
        labels: vec![
            ("namespace".into(), NS.into()),
            ("pod".into(), pod.into()),
            ("container".into(), "app".into()),
        ],
        points: (0..=minutes)
            .map(|k| {
                let t = end - (minutes - k) * 60;
                let v = if k % 5 == 2 { 0.8 } else { 0.2 };
                (t, v)
            })
            .collect(),
    }
}

#[test]
fn a_restarted_daemon_s_vertical_part_starts_from_the_history_in_prometheus() {
    if !prom::available("a_restarted_daemon_s_vertical_part_starts_from_the_history") {
        return;
    }
    // A day of usage per pod, one point a minute up to two minutes ago: 0.2 core, 0.8 one
    // minute in five. The last point (what one live sample reads) is 0.2.
    let end = (support::unix_now() as i64 - 120) / 60 * 60;
    let server = Prometheus::start(Options {
        backfill: vec![
            cpu_history("web-0", end, 1440),
            cpu_history("web-1", end, 1440),
        ],
        ..Options::default()
    });
    let api = KubeStandIn::start(world(2));
    let dir = TempDir::new("daemon-vertical-history");
    let kubeconfig = api.kubeconfig(&dir, NS);
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    write_policy(
        &dir,
        "web.yaml",
        "apiVersion: setpoint.dev/v1alpha1\nkind: ScalingPolicy\nmetadata: {name: web}\n\
         spec:\n  target: {kind: Deployment, name: web}\n  interval: 3s\n  vertical:\n    \
         containers: [app]\n    resources: [cpu]\n    halfLife: 12h\n    memoryPeakWindow: 24h\n    \
         min: {cpu: 10m}\n    max: {cpu: \"8\"}\n    update: off\n    usage:\n      \
         cpu: 'setpoint_container_cpu{namespace=\"$namespace\",pod=\"$pod\",container=\"$container\"}'\n",
    );
    for name in ["setpoint-0", "setpoint-1"] {
        let mut d = single(&dir, &kubeconfig, server.url(), &[]);
        // The first decision published: the first tick's (a tick every 3 s, polled every 0.1 s).
        d.wait_for("a vertical decision", Duration::from_secs(20), |d| {
            d.decision("web").is_some()
        });
        let r = d.decision("web").unwrap();
        let plan = &r["vertical"]["plan"];
        let notes: Vec<&str> = plan["notes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        let seeded = notes
            .iter()
            .find(|n| n.contains("samples read from Prometheus over the 1day before this tick"))
            .unwrap_or_else(|| panic!("{name}: {r:#}"));
        let samples: usize = seeded
            .trim_start_matches("usage history: ")
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(samples > 2 * 1400, "{name}: {seeded}");
        // The 90th percentile of the history (0.8 core, plus the margin), with bounds of a
        // day's history; one live sample (0.2) would give about 0.23 with bounds 25 times wider.
        let rec = &plan["rows"][0]["recommended"];
        let (target, upper) = (
            rec["target"].as_f64().unwrap(),
            rec["upper"].as_f64().unwrap(),
        );
        assert!(target > 0.8 && target < 1.1, "{name}: {rec}");
        assert!(upper / target < 3.0, "{name}: {rec}");
        // The seed came before the first plan.
        let log = d.log();
        let seed_at = log.find("vertical usage history").expect("logged");
        let plan_at = log.find(": vertical: ").expect("the plan at debug level");
        assert!(seed_at < plan_at, "{name}:\n{log}");
        assert!(!log.contains("cannot be read from Prometheus"), "{log}");
        d.stop();
    }
}

// ----- scale to and from zero -----

/// A queue worker on `kind` `web`: `setpoint_demand` (the queue) at 80 per replica, min 0,
/// activation above 0, 1 s interval, `idle` before 1 → 0.
fn zero_policy(kind: &str, idle: &str) -> String {
    format!(
        "apiVersion: setpoint.dev/v1alpha1\nkind: ScalingPolicy\nmetadata: {{name: web}}\n\
         spec:\n  target: {{kind: {kind}, name: web}}\n  interval: 1s\n  horizontal:\n    \
         replicas: {{min: 0, max: 50}}\n    idle: {idle}\n    metrics:\n      \
         - {{name: queue, prometheus: setpoint_demand, targetPerReplica: 80, activation: {{threshold: 0}}}}\n    \
         scaleDown: {{stabilization: 0s}}\n"
    )
}

/// What the stand-in's missing controller would do: the target's pods follow its replicas.
/// Written as the API server would (events for the daemon's watches).
fn follow_replicas(api: &KubeStandIn) {
    let mut w = api.world();
    let n = w.scalables[0].replicas;
    let name = w.scalables[0].name.clone();
    w.update_scalable(NS, &name, |s| s.status_replicas = n);
    let have = w.pods.len() as i64;
    for i in n..have {
        assert!(w.delete_pod(NS, &format!("web-{i}")));
    }
    for i in have..n {
        w.create_pod(k::ready_pod(NS, &format!("web-{i}"), "web"));
    }
}

fn active_gauge(d: &Daemon) -> Option<String> {
    let (_, m) = d.get("/metrics")?;
    m.lines()
        .find(|l| l.starts_with("setpoint_active{policy=\"web\"}"))
        .map(|l| l.rsplit(' ').next().unwrap_or("").to_string())
}

/// Waits until the stand-in's target has `n` replicas; returns how long that took.
fn wait_replicas(api: &KubeStandIn, d: &Daemon, n: i64, limit: Duration) -> Duration {
    let start = Instant::now();
    while replicas(api) != n {
        assert!(
            start.elapsed() < limit,
            "not at {n} within {limit:?}; log:\n{}",
            d.log_tail()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    start.elapsed()
}

#[test]
fn an_idle_queue_takes_a_statefulset_to_zero_and_a_message_wakes_it() {
    let Some((demand, api, dir, kubeconfig)) =
        setup("an_idle_queue_takes_a_statefulset_to_zero", 2)
    else {
        return;
    };
    {
        let mut w = api.world();
        let s = &mut w.scalables[0];
        s.kind = "StatefulSet".into();
        s.plural = "statefulsets".into();
    }
    write_policy(&dir, "web.yaml", &zero_policy("StatefulSet", "3s"));
    let mut d = single(&dir, &kubeconfig, demand.url(), &[]);
    d.wait_for("a first decision", Duration::from_secs(20), |d| {
        d.decision("web").is_some()
    });
    // The queue empties: the normal rules to 1, then 3 s idle, then 0.
    demand.set(0.0);
    wait_replicas(&api, &d, 1, Duration::from_secs(10));
    follow_replicas(&api);
    wait_replicas(&api, &d, 0, Duration::from_secs(10));
    follow_replicas(&api);
    let patches = scale_patches(&api);
    assert!(
        patches
            .iter()
            .all(|p| p.uri.contains("/statefulsets/web/scale")),
        "{patches:?}"
    );
    d.wait_for("the Deactivated Event", Duration::from_secs(5), |_| {
        !events(&api, "Deactivated").is_empty()
    });
    let note = events(&api, "Deactivated")[0]["note"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        note.contains("scale down 1→0")
            && note.contains("queue at or below the activation threshold"),
        "{note}"
    );
    d.wait_for("setpoint_active 0", Duration::from_secs(5), |d| {
        active_gauge(d).as_deref() == Some("0")
    });
    let r = d.decision("web").unwrap();
    assert_eq!(r["explanation"]["activity"]["active"], false, "{r:#}");
    // At zero it stays while the queue is empty.
    let before = scale_patches(&api).len();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(scale_patches(&api).len(), before);

    // A message: awake within one interval (1 s) plus the query and the API calls.
    let visible = demand.set(1.0);
    wait_replicas(&api, &d, 1, Duration::from_secs(10));
    let took = visible.elapsed();
    assert!(took < Duration::from_secs(3), "{took:?}");
    follow_replicas(&api);
    d.wait_for("the Activated Event", Duration::from_secs(5), |_| {
        !events(&api, "Activated").is_empty()
    });
    let note = events(&api, "Activated")[0]["note"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        note.contains("queue 1 > activation threshold 0: wakes from zero"),
        "{note}"
    );
    d.wait_for("setpoint_active 1", Duration::from_secs(5), |d| {
        active_gauge(d).as_deref() == Some("1")
    });

    // A burst, then Prometheus goes away at N: N holds.
    demand.set(400.0);
    wait_replicas(&api, &d, 5, Duration::from_secs(10));
    follow_replicas(&api);
    let before = scale_patches(&api).len();
    drop(demand);
    wait_no_data(&d);
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(replicas(&api), 5);
    assert_eq!(scale_patches(&api).len(), before);
    d.stop();
}

#[test]
fn at_zero_a_restart_and_a_prometheus_outage_keep_it_at_zero() {
    let Some((demand, api, dir, kubeconfig)) = setup("at_zero_a_restart_and_an_outage", 0) else {
        return;
    };
    demand.set(0.0);
    write_policy(&dir, "web.yaml", &zero_policy("Deployment", "2s"));
    let args = [
        "--policies",
        &policies(&dir),
        "--prometheus",
        demand.url(),
        "--no-leader-election",
    ];
    let mut first = start(&dir, "setpoint-0", &kubeconfig, &args);
    first.wait_for("a decision at zero", Duration::from_secs(20), |d| {
        d.decision("web").is_some_and(|r| r["desiredReplicas"] == 0)
    });
    first.stop();
    // A restarted daemon at zero does not wake it.
    let mut second = start(&dir, "setpoint-1", &kubeconfig, &args);
    second.wait_for("a decision", Duration::from_secs(20), |d| {
        d.decision("web").is_some()
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(scale_patches(&api).is_empty(), "{:?}", scale_patches(&api));
    let r = second.decision("web").unwrap();
    assert_eq!(r["desiredReplicas"], 0, "{r:#}");
    assert!(
        r.to_string()
            .contains("at zero: no metric above its activation threshold"),
        "{r:#}"
    );
    // Prometheus goes away at zero: no data holds at zero.
    drop(demand);
    wait_no_data(&second);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(replicas(&api), 0);
    assert!(scale_patches(&api).is_empty());
    second.stop();
}

/// The time from a queue metric crossing its activation threshold (as Prometheus answers it) to
/// the /scale patch that wakes the target, over several wake-ups.
#[test]
#[ignore = "measurement: cargo test --test daemon_run wake_up_latency -- --ignored --nocapture"]
fn wake_up_latency() {
    let Some((demand, api, dir, kubeconfig)) = setup("wake_up_latency", 1) else {
        return;
    };
    demand.set(40.0);
    write_policy(&dir, "web.yaml", &zero_policy("Deployment", "1s"));
    let mut d = single(&dir, &kubeconfig, demand.url(), &[]);
    d.wait_for("a first decision", Duration::from_secs(20), |d| {
        d.decision("web").is_some()
    });
    let mut took = Vec::new();
    for _ in 0..15 {
        demand.set(0.0);
        wait_replicas(&api, &d, 0, Duration::from_secs(15));
        follow_replicas(&api);
        // A random point inside the 1 s interval.
        std::thread::sleep(Duration::from_millis(700 + 37 * took.len() as u64 % 1000));
        let visible = demand.set(40.0);
        wait_replicas(&api, &d, 1, Duration::from_secs(10));
        took.push(visible.elapsed());
        follow_replicas(&api);
    }
    took.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "wake-up: metric above threshold (visible in Prometheus) to /scale patch, interval 1s, {} wake-ups: median {:.0} ms, fastest {:.0} ms, slowest {:.0} ms",
        took.len(),
        ms(took[took.len() / 2]),
        ms(took[0]),
        ms(took[took.len() - 1])
    );
    d.stop();
}

/// Sets (Some) or removes (None) an annotation on the stand-in's target, as `kubectl annotate`.
/// (Written through a watch event, as the API server would: the daemon reads the target from
/// its watch cache.)
fn annotate(api: &KubeStandIn, key: &str, value: Option<&str>) {
    let mut w = api.world();
    let name = w.scalables[0].name.clone();
    w.update_scalable(NS, &name, |s| {
        match value {
            Some(v) => s.annotations.insert(key.into(), v.into()),
            None => s.annotations.remove(key),
        };
    });
}

/// `kubectl scale --replicas=n`, with the pods following.
fn scale_by_hand(api: &KubeStandIn, n: i64) {
    {
        let mut w = api.world();
        let name = w.scalables[0].name.clone();
        w.update_scalable(NS, &name, |s| s.replicas = n);
    }
    follow_replicas(api);
}

fn paused_gauge(d: &Daemon) -> Option<String> {
    let (_, m) = d.get("/metrics")?;
    m.lines()
        .find(|l| l.starts_with("setpoint_paused{policy=\"web\"}"))
        .map(|l| l.rsplit(' ').next().unwrap_or("").to_string())
}

/// The kind of the pause of `web`'s last decision ("" when not paused).
fn pause_kind(d: &Daemon) -> String {
    d.decision("web")
        .and_then(|r| r["explanation"]["pause"]["kind"].as_str().map(String::from))
        .unwrap_or_default()
}

#[test]
fn pause_annotations_freeze_the_target_and_resume_with_the_governor_s_memory() {
    let Some((demand, api, dir, kubeconfig)) = setup("pause_annotations_freeze_the_target", 2)
    else {
        return;
    };
    // A 1 s interval, and a 6 s scale-up window: a policy that forgot its memory at the end of
    // the pause would wait 6 s before scaling up.
    let text = policy("web", "web", "")
        .replace("interval: 2s", "interval: 1s")
        .replace(
            "scaleDown: {stabilization: 0s}",
            "scaleDown: {stabilization: 0s}\n    scaleUp: {stabilization: 6s}",
        );
    write_policy(&dir, "web.yaml", &text);
    let mut d = single(&dir, &kubeconfig, demand.url(), &[]);
    d.wait_for("a first decision", Duration::from_secs(20), |d| {
        d.decision("web").is_some()
    });
    assert_eq!(paused_gauge(&d).as_deref(), Some("0"));

    // Paused on the target, then the load rises: frozen at 2.
    annotate(&api, "setpoint.dev/paused", Some("true"));
    d.wait_for("the pause", Duration::from_secs(10), |d| {
        pause_kind(d) == "frozen"
    });
    demand.set(400.0);
    d.wait_for(
        "a paused decision wanting 5",
        Duration::from_secs(10),
        |d| {
            d.decision("web").is_some_and(|r| {
                r["explanation"]["proposals"][0]["replicas"] == 5 && r["desiredReplicas"] == 2
            })
        },
    );
    // Longer than the scale-up window.
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(replicas(&api), 2);
    assert!(scale_patches(&api).is_empty(), "{:?}", scale_patches(&api));
    assert_eq!(paused_gauge(&d).as_deref(), Some("1"));
    let r = d.decision("web").unwrap();
    assert_eq!(
        r["explanation"]["pause"]["annotation"],
        "setpoint.dev/paused"
    );
    let paused = events(&api, "Paused");
    assert_eq!(paused.len(), 1, "once per pause: {paused:?}");
    let note = paused[0]["note"].as_str().unwrap();
    assert!(
        note.starts_with("paused (setpoint.dev/paused): hold at 2"),
        "{note}"
    );

    // Removed: scaled at once (the scale-up window was fed while paused), and one Resumed.
    annotate(&api, "setpoint.dev/paused", None);
    let removed = Instant::now();
    wait_replicas(&api, &d, 5, Duration::from_secs(10));
    let took = removed.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "waited {took:?}: the memory was lost"
    );
    follow_replicas(&api);
    d.wait_for("the Resumed Event", Duration::from_secs(5), |_| {
        !events(&api, "Resumed").is_empty()
    });
    d.wait_for("setpoint_paused 0", Duration::from_secs(5), |d| {
        paused_gauge(d).as_deref() == Some("0")
    });

    // paused-replicas: to 3 (an action), then frozen there under the same load.
    annotate(&api, "setpoint.dev/paused-replicas", Some("3"));
    wait_replicas(&api, &d, 3, Duration::from_secs(10));
    follow_replicas(&api);
    d.wait_ticks("web", 3, Duration::from_secs(10));
    assert_eq!(replicas(&api), 3);
    assert_eq!(pause_kind(&d), "replicas");
    assert_eq!(events(&api, "Paused").len(), 2);
    annotate(&api, "setpoint.dev/paused-replicas", None);
    wait_replicas(&api, &d, 5, Duration::from_secs(10));
    follow_replicas(&api);

    // `kubectl scale --replicas=0`: switched off, and left at 0 though min is 1.
    scale_by_hand(&api, 0);
    d.wait_for("the target switched off", Duration::from_secs(10), |d| {
        pause_kind(d) == "scaledToZero"
    });
    let before = scale_patches(&api).len();
    d.wait_ticks("web", 3, Duration::from_secs(10));
    assert_eq!(replicas(&api), 0);
    assert_eq!(scale_patches(&api).len(), before);
    let r = d.decision("web").unwrap();
    assert!(
        r["explanation"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["detail"]
                .as_str()
                .unwrap()
                .contains("switched off by someone else")),
        "{r:#}"
    );
    assert_eq!(paused_gauge(&d).as_deref(), Some("1"));
    // Scaled up by hand: it resumes and meets the load.
    scale_by_hand(&api, 2);
    wait_replicas(&api, &d, 5, Duration::from_secs(15));
    d.wait_for("three Resumed Events", Duration::from_secs(5), |_| {
        events(&api, "Resumed").len() == 3
    });
    d.stop();
}

// ScalingPolicy objects: the same policies, from the API server instead of a folder.

/// Runs `f` on the namespace's ScalingPolicy objects (the CRD installed first if it is not),
/// as `kubectl` would, on a runtime of its own.
fn kubectl<T>(
    api: &KubeStandIn,
    dir: &TempDir,
    f: impl AsyncFnOnce(kube::Api<kube::api::DynamicObject>) -> T,
) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let objects = api.scalingpolicies(dir, NS).await;
        f(objects).await
    })
}

/// Creates the object of policy `text`, or replaces the one of its name (`kubectl apply`).
fn apply_object(api: &KubeStandIn, dir: &TempDir, text: &str) {
    kubectl(api, dir, async |objects| {
        let mut o: kube::api::DynamicObject = serde_saphyr::from_str(text).unwrap();
        let name = o.metadata.name.clone().unwrap();
        let pp = kube::api::PostParams::default();
        match objects.get_opt(&name).await.unwrap() {
            None => drop(objects.create(&pp, &o).await.unwrap()),
            Some(live) => {
                o.metadata.resource_version = live.metadata.resource_version;
                drop(objects.replace(&name, &pp, &o).await.unwrap());
            }
        }
    });
}

/// The object `web`'s generation and status, as `kubectl get sp web -o json` shows them.
fn web_status(api: &KubeStandIn, dir: &TempDir) -> (i64, Value) {
    kubectl(api, dir, async |objects| {
        let o = objects.get("web").await.unwrap();
        (o.metadata.generation.unwrap(), o.data["status"].clone())
    })
}

/// The `type` condition of a status: (status, reason, message).
fn condition(status: &Value, type_: &str) -> (String, String, String) {
    let c = status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .cloned()
        .unwrap_or_default();
    let text = |k: &str| c[k].as_str().unwrap_or_default().to_string();
    (text("status"), text("reason"), text("message"))
}

/// Waits until the object `web`'s status says Ready `ready` with `reason` at its generation.
fn wait_ready(d: &Daemon, api: &KubeStandIn, dir: &TempDir, ready: &str, reason: &str) -> Value {
    let what = format!("web's status Ready {ready} {reason}");
    d.wait_for(&what, Duration::from_secs(15), |_| {
        let (generation, s) = web_status(api, dir);
        let (status, r, _) = condition(&s, "Ready");
        status == ready && r == reason && s["observedGeneration"] == generation
    });
    web_status(api, dir).1
}

/// One daemon, the only replica, on the namespace's objects (no --policies).
fn start_on_objects(dir: &TempDir, kubeconfig: &Path, demand: &Demand) -> Daemon {
    let args = ["--prometheus", demand.url(), "--no-leader-election"];
    start(dir, "setpoint-0", kubeconfig, &args)
}

fn invalid_entries(d: &Daemon) -> Vec<Value> {
    d.recommendations()["invalid"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_scalingpolicy_object_is_applied_changed_made_invalid_fixed_and_deleted() {
    let Some((demand, api, dir, kubeconfig)) = setup("a_scalingpolicy_object_is_applied", 2) else {
        return;
    };
    // A long scale-down cooldown: the governor's memory shows as a hold after a change.
    let web = policy("web", "web", "").replace(
        "scaleDown: {stabilization: 0s}",
        "scaleDown: {stabilization: 0s, cooldown: 10m}",
    );
    apply_object(&api, &dir, &web);
    // Objects only: no --policies.
    let mut d = start_on_objects(&dir, &kubeconfig, &demand);
    d.wait_for("a first decision", Duration::from_secs(20), |d| {
        d.decision("web").is_some()
    });
    assert!(
        d.log().contains("ScalingPolicy demo/web"),
        "{}",
        d.log_tail()
    );
    demand.set(400.0);
    d.wait_for(
        "the object's policy scales",
        Duration::from_secs(10),
        |_| replicas(&api) == 5,
    );
    // Its status: Ready, and the counts kubectl shows.
    let status = wait_ready(&d, &api, &dir, "True", "Reconciled");
    d.wait_for("the status shows 5", Duration::from_secs(10), |_| {
        web_status(&api, &dir).1["desiredReplicas"] == 5
    });
    assert_eq!(condition(&status, "AbleToScale").0, "True", "{status:#}");

    // Changed (a label and the interval): reloaded with its memory, so the cooldown holds a
    // scale-down the new version would otherwise make at once.
    let changed = web
        .replace(
            "metadata: {name: web}",
            "metadata: {name: web, labels: {team: shop}}",
        )
        .replace("interval: 2s", "interval: 1s");
    let written = Instant::now();
    apply_object(&api, &dir, &changed);
    d.wait_for("the reload", Duration::from_secs(10), |d| {
        d.log().contains("policy reloaded")
    });
    // Watched, not polled: the change arrives at once (a file waits for --reload-every).
    let took = written.elapsed();
    eprintln!("object change to reload: {took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    demand.set(80.0);
    d.wait_ticks("web", 4, Duration::from_secs(20));
    assert_eq!(replicas(&api), 5, "the cooldown survived the change");
    let why = d.decision("web").unwrap().to_string();
    assert!(why.contains("cooldown"), "{why}");

    // Made invalid (min above max: the schema takes it, setpoint's validation does not): the
    // previous version keeps running, the error names the object and the field.
    let broken = changed.replace(
        "replicas: {min: 1, max: 50}",
        "replicas: {min: 60, max: 50}",
    );
    apply_object(&api, &dir, &broken);
    d.wait_for("web listed invalid", Duration::from_secs(10), |d| {
        invalid_entries(d).iter().any(|i| i["policy"] == "web")
    });
    let error = invalid_entries(&d)[0]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        error.starts_with("ScalingPolicy demo/web: spec.horizontal.replicas"),
        "{error}"
    );
    d.wait_for("a PolicyInvalid Event", Duration::from_secs(10), |_| {
        !events(&api, "PolicyInvalid").is_empty()
    });
    assert_eq!(events(&api, "PolicyInvalid")[0]["type"], "Warning");
    // The status says so, at the object's new generation, with the field and the message; the
    // rest is what the running version says.
    let status = wait_ready(&d, &api, &dir, "False", "InvalidSpec");
    let (_, _, message) = condition(&status, "Ready");
    assert!(message.contains("spec.horizontal.replicas"), "{message}");
    assert_eq!(status["desiredReplicas"], 5, "{status:#}");
    d.wait_ticks("web", 2, Duration::from_secs(10));
    let (_, still) = web_status(&api, &dir);
    assert_eq!(condition(&still, "Ready").1, "InvalidSpec", "{still:#}");

    // Fixed: runs again (40 per replica: 400/s needs 10).
    demand.set(400.0);
    apply_object(
        &api,
        &dir,
        &changed.replace("targetPerReplica: 80", "targetPerReplica: 40"),
    );
    d.wait_for("the fixed version scales", Duration::from_secs(15), |_| {
        replicas(&api) == 10
    });
    assert!(invalid_entries(&d).is_empty());
    wait_ready(&d, &api, &dir, "True", "Reconciled");

    // Deleted: stopped, gone from /recommendations.
    kubectl(&api, &dir, async |objects| {
        drop(objects.delete("web", &Default::default()).await.unwrap());
    });
    d.wait_for("web stopped", Duration::from_secs(10), |d| {
        d.decision("web").is_none()
    });
    let ticks = d.ticks("web");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(d.ticks("web"), ticks, "no tick after the delete");
    let writes = api
        .requests()
        .into_iter()
        .filter(|r| r.uri.contains("/scalingpolicies") && r.method != "GET")
        .filter(|r| !r.uri.split('?').next().unwrap().ends_with("/status"))
        .count();
    // The test's own writes only (a create, three replaces and a delete): the daemon writes no
    // spec or metadata of an object, at most its status.
    assert_eq!(writes, 5);
    d.stop();
}

#[test]
fn a_name_used_by_a_file_and_an_object_is_refused_naming_both_until_the_file_goes() {
    let Some((demand, api, dir, kubeconfig)) = setup("a_name_used_by_a_file_and_an_object", 2)
    else {
        return;
    };
    write_policy(&dir, "web.yaml", &policy("web", "web", ""));
    apply_object(&api, &dir, &policy("web", "web", ""));
    let mut d = single(
        &dir,
        &kubeconfig,
        demand.url(),
        &["--reload-every", "300ms"],
    );
    d.wait_for("the object refused", Duration::from_secs(20), |d| {
        !invalid_entries(d).is_empty() && d.decision("web").is_some()
    });
    let error = invalid_entries(&d)[0]["error"]
        .as_str()
        .unwrap()
        .to_string();
    let file = dir.path().join("policies/web.yaml");
    assert_eq!(
        error,
        format!(
            "policy web is defined by file {} and by ScalingPolicy demo/web: a name is one \
             policy (rename or remove one of them)",
            file.display()
        )
    );
    assert!(d.log().contains("policy loaded policy=web source=file"));
    // The file removed (the policy moved to the object): the object's policy takes over.
    std::fs::remove_file(&file).unwrap();
    d.wait_for("the object's policy runs", Duration::from_secs(10), |d| {
        d.log()
            .contains("policy loaded policy=web source=ScalingPolicy demo/web")
    });
    assert!(invalid_entries(&d).is_empty());
    demand.set(400.0);
    d.wait_for(
        "the object's policy scales",
        Duration::from_secs(10),
        |_| replicas(&api) == 5,
    );
    d.stop();
}

#[test]
fn without_the_crd_file_policies_run_and_one_warning_says_so() {
    let Some((demand, api, dir, kubeconfig)) = setup("without_the_crd_file_policies_run", 2) else {
        return;
    };
    write_policy(&dir, "web.yaml", &policy("web", "web", ""));
    let mut d = single(&dir, &kubeconfig, demand.url(), &[]);
    d.wait_for("a first decision", Duration::from_secs(20), |d| {
        d.decision("web").is_some()
    });
    demand.set(400.0);
    d.wait_for("the file policy scales", Duration::from_secs(10), |_| {
        replicas(&api) == 5
    });
    // The watch retried meanwhile (backoff from 0.8 s): one WARN for all of it.
    d.wait_for("a retried list", Duration::from_secs(10), |_| {
        api.requests()
            .iter()
            .filter(|r| r.uri.contains("scalingpolicies"))
            .count()
            >= 3
    });
    let log = d.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("CRD is not installed"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    d.stop();
}

#[test]
fn a_broken_policy_watch_relists_after_410_gone_and_restarts_nothing_unchanged() {
    let Some((demand, api, dir, kubeconfig)) = setup("a_broken_policy_watch_relists", 2) else {
        return;
    };
    apply_object(&api, &dir, &policy("web", "web", ""));
    apply_object(&api, &dir, &policy("gone", "web-b", ""));
    let mut d = start_on_objects(&dir, &kubeconfig, &demand);
    d.wait_for("both policies tick", Duration::from_secs(20), |d| {
        d.ticks("web") > 0 && d.ticks("gone") > 0
    });
    // Behind the watch's back (no event), `gone` is deleted and the watch cache moves past what
    // the daemon saw; then the API server restarts: the watch comes back to a 410 Gone and
    // relists.
    {
        let mut w = api.world();
        w.custom_objects
            .retain(|o| o.object["metadata"]["name"] != "gone");
        w.watch.oldest = w.resource_version + 1;
    }
    api.restart(Duration::from_millis(200), Duration::from_millis(300));
    d.wait_for(
        "gone stopped after the relist",
        Duration::from_secs(20),
        |d| d.log().contains("policy removed: stopping it policy=gone"),
    );
    let lists = api
        .requests()
        .iter()
        .filter(|r| r.uri.contains("/scalingpolicies?") && !r.uri.contains("watch=true"))
        .count();
    assert!(lists >= 2, "a relist after the 410: {lists} lists");
    d.wait_ticks("web", 2, Duration::from_secs(10));
    let log = d.log();
    assert!(!log.contains("policy reloaded"), "{log}");
    assert_eq!(log.matches("policy loaded policy=web").count(), 1, "{log}");
    demand.set(400.0);
    d.wait_for("web still scales", Duration::from_secs(10), |_| {
        replicas(&api) == 5
    });
    d.stop();
}

#[test]
fn an_object_invalid_from_the_start_says_why_in_its_status() {
    let Some((demand, api, dir, kubeconfig)) = setup("an_object_invalid_from_the_start", 2) else {
        return;
    };
    let broken = policy("web", "web", "").replace(
        "replicas: {min: 1, max: 50}",
        "replicas: {min: 60, max: 50}",
    );
    apply_object(&api, &dir, &broken);
    let mut d = start_on_objects(&dir, &kubeconfig, &demand);
    let status = wait_ready(&d, &api, &dir, "False", "InvalidSpec");
    let (_, _, message) = condition(&status, "Ready");
    assert!(message.contains("spec.horizontal.replicas"), "{message}");
    assert_eq!(replicas(&api), 2, "nothing scaled");
    d.stop();
}

#[test]
fn an_object_s_pause_annotation_freezes_it_and_its_status_says_so() {
    let Some((demand, api, dir, kubeconfig)) = setup("an_object_s_pause_annotation", 2) else {
        return;
    };
    let web = policy("web", "web", "");
    apply_object(&api, &dir, &web);
    let mut d = start_on_objects(&dir, &kubeconfig, &demand);
    demand.set(400.0);
    d.wait_for("web scales to 5", Duration::from_secs(15), |_| {
        replicas(&api) == 5
    });
    let status = wait_ready(&d, &api, &dir, "True", "Reconciled");
    assert_eq!(condition(&status, "Paused").0, "False", "{status:#}");

    // `kubectl annotate sp web setpoint.dev/paused=true`: frozen under a rising load.
    let paused = web.replace(
        "metadata: {name: web}",
        "metadata: {name: web, annotations: {setpoint.dev/paused: \"true\"}}",
    );
    apply_object(&api, &dir, &paused);
    d.wait_for("the Paused condition", Duration::from_secs(15), |_| {
        let (_, s) = web_status(&api, &dir);
        condition(&s, "Paused").0 == "True" && s["paused"] == "true"
    });
    demand.set(800.0);
    d.wait_ticks("web", 3, Duration::from_secs(15));
    assert_eq!(replicas(&api), 5, "frozen while paused");
    let (_, s) = web_status(&api, &dir);
    let (_, reason, message) = condition(&s, "Paused");
    assert_eq!(reason, "Paused", "{s:#}");
    assert!(message.contains("setpoint.dev/paused"), "{message}");

    // The annotation removed: it goes on, and the status says it is no longer paused.
    apply_object(&api, &dir, &web);
    d.wait_for("web scales to 10", Duration::from_secs(15), |_| {
        replicas(&api) == 10
    });
    d.wait_for("Paused False", Duration::from_secs(15), |_| {
        let (_, s) = web_status(&api, &dir);
        condition(&s, "Paused").0 == "False" && s["paused"] == ""
    });
    d.stop();
}
