//! The admin HTTP server over real sockets on 127.0.0.1: every route, readiness transitions,
//! redaction, a removed policy, label bounds and graceful shutdown. Every test is bounded in time
//! and stops its server.

use serde_json::Value;
use setpoint::daemon::admin::{
    self, AdminConfig, AdminState, METRICS_CONTENT_TYPE, PolicyRecommendation, Recommendations,
};
use setpoint::daemon::telemetry::{self, ErrorKind, Source, Telemetry};
use setpoint::engine::{self, Decision, Observation, Sample};
use setpoint::policy::{self, Mode, Policy};
use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Longest time any one test may take.
const TEST_LIMIT: Duration = Duration::from_secs(30);

async fn bounded<F: Future<Output = ()>>(body: F) {
    tokio::time::timeout(TEST_LIMIT, body)
        .await
        .expect("test took too long");
}

/// A running admin server.
struct Server {
    addr: SocketAddr,
    state: AdminState,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
    http: reqwest::Client,
}

impl Server {
    async fn start(config: AdminConfig) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let state = AdminState::new(Telemetry::new(), config);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(admin::serve(listener, state.clone(), async move {
            let _ = stopped.await;
        }));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        Server {
            addr,
            state,
            stop: Some(stop),
            task,
            http,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn get(&self, path: &str) -> (u16, String, String) {
        let resp = self.http.get(self.url(path)).send().await.expect("request");
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, ctype, resp.text().await.expect("body"))
    }

    async fn json(&self, path: &str) -> (u16, Value) {
        let (status, ctype, body) = self.get(path).await;
        assert_eq!(ctype, "application/json", "{path}");
        (status, serde_json::from_str(&body).expect("JSON"))
    }

    /// Signals shutdown and waits (bounded) for `serve` to return; returns how long it took.
    async fn shutdown(mut self) -> Duration {
        let t = Instant::now();
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("serve did not return after shutdown")
            .expect("serve panicked")
            .expect("serve failed");
        t.elapsed()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn example_policy() -> Policy {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/examples/hpa.yaml");
    policy::load(&path).expect("the hpa example loads")
}

fn renamed(mut p: Policy, name: &str) -> Policy {
    p.name = name.to_owned();
    p
}

/// One real decision of `policy`: utilization `u` at `current` replicas, all ready.
fn decide(policy: &Policy, current: u32, u: Option<f64>) -> Decision {
    let now = 1_800_000_000.0;
    let mut state = engine::State::default();
    let obs = Observation {
        current_replicas: current,
        ready_replicas: current,
        samples: vec![match u {
            Some(v) => Sample::from_f64(v),
            None => Sample::no_data(
                "cannot connect to https://admin:hunter2@prom:9090: Bearer abcdefgh12345 refused",
            ),
        }],
    };
    engine::tick(policy.horizontal.as_ref().unwrap(), &mut state, &obs, now)
}

fn at(unix_ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(unix_ms)
}

#[tokio::test]
async fn healthz_answers_while_the_process_serves() {
    bounded(async {
        let s = Server::start(AdminConfig::default()).await;
        let (status, ctype, body) = s.get("/healthz").await;
        assert_eq!((status, body.as_str()), (200, "ok\n"));
        assert!(ctype.starts_with("text/plain"));
        s.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn unknown_routes_and_methods_are_refused() {
    bounded(async {
        let s = Server::start(AdminConfig::default()).await;
        let (status, _, body) = s.get("/nope").await;
        assert_eq!(status, 404);
        assert!(body.contains("/recommendations"));
        let resp = s.http.post(s.url("/metrics")).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 405);
        s.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn readyz_follows_policies_and_api_reachability() {
    bounded(async {
        let s = Server::start(AdminConfig {
            api_fresh_for: Duration::from_millis(300),
            ..AdminConfig::default()
        })
        .await;

        // Nothing yet: 503 with both reasons.
        let (status, body) = s.json("/readyz").await;
        assert_eq!(status, 503);
        assert_eq!(body["ready"], false);
        let reasons = body["reasons"].as_array().unwrap();
        assert_eq!(reasons.len(), 2, "{body}");
        assert_eq!(reasons[0], "no policy loaded");
        assert_eq!(reasons[1], "the API server has not been reached yet");

        // Only invalid policies: still 503, and it says which.
        s.state.set_invalid(
            "broken",
            "broken.yaml:4:3: spec.target: missing field `name`",
        );
        s.state.mark_api_ok(Instant::now());
        let (status, body) = s.json("/readyz").await;
        assert_eq!(status, 503);
        assert_eq!(body["reasons"][0], "no policy loaded: 1 invalid (broken)");
        assert_eq!(body["policiesInvalid"], 1);

        // Loaded and reached: 200.
        s.state.set_loaded(1);
        s.state.mark_api_ok(Instant::now());
        let (status, body) = s.json("/readyz").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["ready"], true);
        assert_eq!(body["reasons"].as_array().unwrap().len(), 0);
        assert_eq!(body["policiesLoaded"], 1);
        assert!(body["apiLastOkSecondsAgo"].as_f64().unwrap() < 0.3);

        // The API server not reached for longer than the limit: 503 again.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let (status, body) = s.json("/readyz").await;
        assert_eq!(status, 503);
        assert!(
            body["reasons"][0]
                .as_str()
                .unwrap()
                .starts_with("the API server was last reached"),
            "{body}"
        );

        // Reached again: ready again.
        s.state.mark_api_ok(Instant::now());
        assert_eq!(s.json("/readyz").await.0, 200);

        // Every policy removed: not ready.
        s.state.set_loaded(0);
        assert_eq!(s.json("/readyz").await.0, 503);
        s.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn metrics_serves_the_registry_as_openmetrics() {
    bounded(async {
        let s = Server::start(AdminConfig::default()).await;
        let p = example_policy();
        let t = s.state.telemetry();
        t.record_tick("hpa");
        t.record_decision("hpa", &decide(&p, 4, Some(1.4)));
        t.record_scaling_action("hpa", engine::Direction::Up);
        t.record_query(Source::Prometheus, Duration::from_millis(12));
        t.record_error(ErrorKind::Throttled);
        t.set_leader(true);
        t.record_reload(false);

        let (status, ctype, body) = s.get("/metrics").await;
        assert_eq!(status, 200);
        assert_eq!(ctype, METRICS_CONTENT_TYPE);
        assert!(body.ends_with("# EOF\n"));
        for line in [
            "setpoint_ticks_total{policy=\"hpa\"} 1",
            "setpoint_decisions_total{policy=\"hpa\",direction=\"up\",reason=\"none\"} 1",
            "setpoint_recommended_replicas{policy=\"hpa\"} 8",
            "setpoint_current_replicas{policy=\"hpa\"} 4",
            "setpoint_scaling_actions_total{policy=\"hpa\",direction=\"up\"} 1",
            "setpoint_query_duration_seconds_count{source=\"prometheus\"} 1",
            "setpoint_errors_total{kind=\"throttled\"} 1",
            "setpoint_errors_total{kind=\"query\"} 0",
            "setpoint_leader 1",
            "setpoint_policies{state=\"loaded\"} 0",
            "setpoint_policy_reloads_total{result=\"error\"} 1",
        ] {
            assert!(body.lines().any(|l| l == line), "no {line:?} in\n{body}");
        }
        s.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn recommendations_show_each_decision_with_its_explanation() {
    bounded(async {
        let s = Server::start(AdminConfig::default()).await;
        let p = example_policy();
        let up = decide(&p, 4, Some(1.4));
        let hold = decide(&p, 3, Some(0.7));
        let mut dry = PolicyRecommendation::new(&renamed(p.clone(), "b-hold"), hold, at(1_000));
        dry.mode = Mode::Recommend;
        let rec = PolicyRecommendation::new(&renamed(p.clone(), "a-up"), up.clone(), at(1_500));
        s.state.publish(dry.clone());
        s.state.publish(rec.clone());
        s.state.set_invalid(
            "c-broken",
            "policies/c.yaml:7:5: spec.horizontal.replicas.min: expected an integer",
        );

        let (status, body) = s.json("/recommendations").await;
        assert_eq!(status, 200);

        // The shape: the serde form of the Decision plus policy, target, mode and time.
        let first = &body["recommendations"][0];
        assert_eq!(first["policy"], "a-up");
        assert_eq!(first["target"]["kind"], "Deployment");
        assert_eq!(first["target"]["name"], "web");
        assert_eq!(first["target"]["apiVersion"], "apps/v1");
        assert_eq!(first["mode"], "recommend");
        assert_eq!(first["time"], "1970-01-01T00:00:01.500Z");
        let decision = serde_json::to_value(&up).unwrap();
        for (key, value) in decision.as_object().unwrap() {
            assert_eq!(&first[key], value, "field {key}");
        }
        let keys: BTreeSet<&str> = first
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from([
                "policy",
                "target",
                "mode",
                "time",
                "currentReplicas",
                "desiredReplicas",
                "explanation"
            ])
        );
        assert_eq!(first["currentReplicas"], 4);
        assert_eq!(first["desiredReplicas"], 8);
        assert_eq!(
            first["explanation"]["proposals"][0]["metric"],
            "utilization"
        );
        assert_eq!(body["recommendations"][1]["policy"], "b-hold");

        // Invalid policies with their error text.
        assert_eq!(body["invalid"][0]["policy"], "c-broken");
        assert!(
            body["invalid"][0]["error"]
                .as_str()
                .unwrap()
                .contains("replicas.min: expected an integer")
        );

        // And it reads back as what was published.
        let back: Recommendations = serde_json::from_value(body).unwrap();
        assert_eq!(back.recommendations, vec![rec, dry]);
        s.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn no_answer_contains_a_credential() {
    bounded(async {
        let s = Server::start(AdminConfig::default()).await;
        let p = example_policy();
        let missing = decide(&p, 3, None);
        assert_eq!(missing.explanation.missing.len(), 1);
        s.state
            .publish(PolicyRecommendation::new(&p, missing, SystemTime::now()));
        s.state.set_invalid(
            "leaky",
            "query failed: GET https://svc:s3cr3tpass@thanos/api?token=tok-9f8e7d&x=1 \
             Authorization: Basic c3ZjOnMzY3IzdA==",
        );
        s.state.set_loaded(1);
        s.state.mark_api_ok(Instant::now());
        for path in ["/recommendations", "/readyz", "/metrics", "/healthz"] {
            let (_, _, body) = s.get(path).await;
            for secret in [
                "hunter2",
                "abcdefgh12345",
                "s3cr3tpass",
                "tok-9f8e7d",
                "c3ZjOnMzY3IzdA",
            ] {
                assert!(!body.contains(secret), "{path} shows {secret}: {body}");
            }
        }
        let (_, body) = s.json("/recommendations").await;
        let reason = body["recommendations"][0]["explanation"]["missing"][0]["reason"]
            .as_str()
            .unwrap();
        assert!(reason.contains("https://[redacted]@prom:9090"), "{reason}");
        s.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_removed_policy_is_gone_from_every_route() {
    bounded(async {
        let s = Server::start(AdminConfig::default()).await;
        let p = example_policy();
        for name in ["keep", "gone"] {
            let d = decide(&p, 4, Some(1.4));
            s.state.telemetry().record_tick(name);
            s.state.telemetry().record_decision(name, &d);
            s.state
                .telemetry()
                .record_scaling_action(name, engine::Direction::Up);
            s.state.publish(PolicyRecommendation::new(
                &renamed(p.clone(), name),
                d,
                SystemTime::now(),
            ));
        }
        s.state.set_invalid("gone", "a newer gone.yaml is broken");
        s.state.set_loaded(2);
        let (_, _, before) = s.get("/metrics").await;
        assert!(before.contains("policy=\"gone\""));

        s.state.remove("gone");
        s.state.set_loaded(1);
        let (_, _, metrics) = s.get("/metrics").await;
        assert!(!metrics.contains("policy=\"gone\""), "{metrics}");
        assert!(metrics.contains("setpoint_ticks_total{policy=\"keep\"} 1"));
        assert!(metrics.contains("setpoint_policies{state=\"invalid\"} 0"));
        let (_, body) = s.json("/recommendations").await;
        let names: Vec<&str> = body["recommendations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["policy"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["keep"]);
        assert_eq!(body["invalid"].as_array().unwrap().len(), 0);
        s.shutdown().await;
    })
    .await;
}

/// Parses `name{k="v",...} value` lines of one metric into label maps.
fn series(text: &str, name: &str) -> Vec<Vec<(String, String)>> {
    text.lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix('{'))
        .map(|rest| {
            let labels = &rest[..rest.find('}').unwrap()];
            labels
                .split(',')
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap();
                    (k.to_owned(), v.trim_matches('"').to_owned())
                })
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn label_values_stay_within_their_sets() {
    bounded(async {
        let s = Server::start(AdminConfig::default()).await;
        let p = example_policy();
        let policies = ["a", "b", "c"];
        // Real decisions over many observations: every direction, several rules.
        let mut state = engine::State::default();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut now = 1_800_000_000.0;
        let mut current = 4u32;
        for i in 0..600 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let sample = match x % 10 {
                // The last 40 ticks: a low load with data. A tick without data counts as
                // "stay" in the scale-down window, so the random run alone may never go down.
                _ if i >= 560 => Sample::from_f64(0.05),
                0 => Sample::no_data("empty result"),
                1 => Sample::from_f64(f64::NAN),
                _ => Sample::from_f64((x % 3000) as f64 / 1000.0),
            };
            let obs = Observation {
                current_replicas: current,
                ready_replicas: current.saturating_sub((x % 2) as u32),
                samples: vec![sample],
            };
            let d = engine::tick(p.horizontal.as_ref().unwrap(), &mut state, &obs, now);
            let name = policies[i % 3];
            s.state.telemetry().record_tick(name);
            s.state.telemetry().record_decision(name, &d);
            if let Some(dir) = d.direction() {
                s.state.telemetry().record_scaling_action(name, dir);
            }
            s.state
                .telemetry()
                .record_query(Source::ALL[i % 3], Duration::from_micros(x % 2_000_000));
            s.state.telemetry().record_error(ErrorKind::ALL[i % 8]);
            current = d.desired_replicas.max(1);
            now += 15.0;
        }

        let (_, _, text) = s.get("/metrics").await;
        let reasons: BTreeSet<String> = telemetry::reasons().map(str::to_owned).collect();
        let decisions = series(&text, "setpoint_decisions_total");
        assert!(decisions.len() <= policies.len() * 3 * reasons.len());
        let mut directions_seen = BTreeSet::new();
        for labels in &decisions {
            for (k, v) in labels {
                match k.as_str() {
                    "policy" => assert!(policies.contains(&v.as_str()), "{v}"),
                    "direction" => {
                        assert!(["up", "down", "none"].contains(&v.as_str()), "{v}");
                        directions_seen.insert(v.clone());
                    }
                    "reason" => assert!(reasons.contains(v), "{v}"),
                    _ => panic!("unexpected label {k}"),
                }
            }
        }
        assert_eq!(
            directions_seen.len(),
            3,
            "the run should cover every direction"
        );
        for labels in series(&text, "setpoint_scaling_actions_total") {
            assert!(["up", "down"].contains(&labels[1].1.as_str()));
        }
        let sources: BTreeSet<String> = series(&text, "setpoint_query_duration_seconds_count")
            .into_iter()
            .map(|l| l[0].1.clone())
            .collect();
        assert_eq!(
            sources,
            BTreeSet::from([
                "metrics_api".into(),
                "pod_scrape".into(),
                "prometheus".into()
            ])
        );
        let kinds = series(&text, "setpoint_errors_total");
        assert_eq!(kinds.len(), ErrorKind::ALL.len());
        s.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn shutdown_closes_idle_connections_at_once() {
    bounded(async {
        let s = Server::start(AdminConfig {
            drain_timeout: Duration::from_secs(8),
            ..AdminConfig::default()
        })
        .await;
        let addr = s.addr;
        // The client keeps its connection open (keep-alive) after this answer.
        assert_eq!(s.get("/healthz").await.0, 200);
        let took = s.shutdown().await;
        assert!(took < Duration::from_secs(2), "took {took:?}");
        assert!(TcpStream::connect(addr).await.is_err(), "still listening");
    })
    .await;
}

#[tokio::test]
async fn shutdown_waits_for_a_stuck_connection_at_most_the_drain_timeout() {
    bounded(async {
        let s = Server::start(AdminConfig {
            drain_timeout: Duration::from_millis(500),
            ..AdminConfig::default()
        })
        .await;
        // Half a request, never finished.
        let mut stuck = TcpStream::connect(s.addr).await.unwrap();
        stuck
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let took = s.shutdown().await;
        // It waited for the request to finish (graceful), but not past the drain timeout.
        assert!(took >= Duration::from_millis(450), "took {took:?}");
        assert!(took < Duration::from_secs(3), "took {took:?}");
        drop(stuck);
    })
    .await;
}

#[tokio::test]
async fn serve_ends_on_shutdown_with_requests_before_it_answered() {
    bounded(async {
        let s = Server::start(AdminConfig::default()).await;
        let mut handles = Vec::new();
        for _ in 0..20 {
            let http = s.http.clone();
            let url = s.url("/metrics");
            handles.push(tokio::spawn(async move {
                http.get(url).send().await.map(|r| r.status().as_u16())
            }));
        }
        for h in handles {
            assert_eq!(h.await.unwrap().unwrap(), 200);
        }
        s.shutdown().await;
    })
    .await;
}
