//! Applying the vertical part against the Kubernetes API stand-in (tests/support/kube.rs):
//! `apply_vertical` resizes one pod through `pods/resize`, falls back to a pod-template patch
//! when a resize is Infeasible or Deferred too long (or reports, when the policy says so),
//! keeps the QoS class, says when the server predates in-place resize, and takes the fallback
//! (once tried, never again in place) when a 1.33 server refuses to lower a memory limit in
//! place; the usage reader and
//! `VerticalTick` read metrics.k8s.io and OOM kills; `recommend` shows the vertical part.
//! Everything listens on 127.0.0.1 and is bounded in time.

mod support;

use serde_json::{Value, json};
use setpoint::cluster::{Cluster, ClusterError, KubeCluster};
use setpoint::engine::pod::Pod;
use setpoint::engine::pod::{QosClass, ResizeStatus};
use setpoint::engine::quantity::MIB;
use setpoint::engine::vertical::Recommended;
use setpoint::engine::vertical_plan::{
    ContainerChange, ContainerRecommendation, PlanState, VerticalAction,
};
use setpoint::policy::{self, Policy, TargetRef};
use setpoint::tick::usage::{
    HISTORY_RETRY, HistorySeed, Recommenders, UsageReader, UsageSource, VerticalTick,
};
use setpoint::tick::vertical::{Applied, VerticalOutcome, apply_vertical};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use support::TempDir;
use support::http::{HttpServer, Response};
use support::kube::{self as k, KubeStandIn, PodSpec, ResizeBehaviour, Scalable, Template, World};

const TEST_LIMIT: Duration = Duration::from_secs(60);
const NS: &str = "demo";

const POLICY: &str = "\
apiVersion: setpoint.dev/v1alpha1
kind: ScalingPolicy
metadata: {name: web, namespace: demo}
spec:
  target: {kind: Deployment, name: web}
  vertical:
    containers: [app]
    min: {cpu: 50m, memory: 64Mi}
    max: {cpu: \"2\", memory: 2Gi}
    update: inPlace
    resize: {deferredTimeout: 5m, fallback: rollout}
";

fn policy(text: &str) -> Policy {
    policy::parse(text, Path::new("web.yaml")).unwrap()
}

/// CPU: target 500m in [400m, 700m]; memory: target 128Mi in [100Mi, 200Mi].
fn recs() -> Vec<ContainerRecommendation> {
    vec![ContainerRecommendation {
        container: "app".into(),
        cpu: Some(Recommended {
            target: 0.5,
            lower: 0.4,
            upper: 0.7,
        }),
        memory: Some(Recommended {
            target: 128.0 * MIB,
            lower: 100.0 * MIB,
            upper: 200.0 * MIB,
        }),
    }]
}

fn running(name: &str) -> PodSpec {
    let t = k::rfc3339(support::unix_now() - 3600.0);
    PodSpec {
        name: name.into(),
        namespace: NS.into(),
        app: "web".into(),
        phase: "Running".into(),
        ready: Some((true, t.clone())),
        start_time: Some(t),
        ip: Some("10.0.0.1".into()),
        cpu_request: None,
        deleting: false,
    }
}

/// A running pod of `web` with these requests and limits on its container `app`.
fn pod(name: &str, requests: Value, limits: Value) -> Value {
    k::with_resources(k::pod(&running(name)), requests, limits)
}

/// `web` at 2 replicas: web-a far below the CPU bounds, web-b within them; the template holds
/// the app container as web-a has it, and a sidecar.
fn world() -> World {
    World {
        scalables: vec![Scalable::deployment(NS, "web", 2)],
        pods: vec![
            pod(
                "web-a",
                json!({"cpu": "100m", "memory": "128Mi"}),
                json!({"cpu": "200m", "memory": "256Mi"}),
            ),
            pod(
                "web-b",
                json!({"cpu": "450m", "memory": "128Mi"}),
                json!({"cpu": "900m", "memory": "256Mi"}),
            ),
        ],
        templates: vec![Template::deployment(
            NS,
            "web",
            json!([
                {"name": "app", "image": "example/web",
                 "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                               "limits": {"cpu": "200m", "memory": "256Mi"}}},
                {"name": "proxy", "image": "example/proxy",
                 "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}}},
            ]),
        )],
        pod_metrics: None,
        ..World::default()
    }
}

/// One tick: the pods as they are now, then apply_vertical.
async fn tick(
    c: &KubeCluster,
    p: &Policy,
    state: &mut PlanState,
    now: f64,
) -> (VerticalOutcome, Vec<Pod>) {
    let pods = c.pods("app=web").await.unwrap();
    let out = apply_vertical(c, p, state, &pods, &recs(), now, None).await;
    (out, pods)
}

fn patches_to(api: &KubeStandIn, path: &str) -> Vec<k::Received> {
    api.requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.uri.starts_with(path))
        .collect()
}

#[tokio::test]
async fn a_resize_is_accepted() {
    support::bounded(TEST_LIMIT, async {
        let api = KubeStandIn::start(world());
        let dir = TempDir::new("vertical");
        let c = api.cluster(&dir, NS).await;
        let p = policy(POLICY);
        let mut state = PlanState::default();
        let now = support::unix_now();

        let (out, _) = tick(&c, &p, &mut state, now).await;
        assert_eq!(
            out.applied,
            Applied::Resized {
                pod: "web-a".into(),
                resize: ResizeStatus::None
            },
            "{out}"
        );
        assert!(
            out.to_string().starts_with(
                "resize pod web-a in place: app cpu request 500m limit 1; app cpu request 100m is below [400m, 700m]"
            ),
            "{out}"
        );
        // The patch: strategic merge, field manager setpoint, only app's CPU.
        let sent = patches_to(&api, "/api/v1/namespaces/demo/pods/web-a/resize");
        assert_eq!(sent.len(), 1);
        assert_eq!(
            sent[0].content_type.as_deref(),
            Some("application/strategic-merge-patch+json")
        );
        assert!(sent[0].uri.contains("fieldManager=setpoint"), "{}", sent[0].uri);
        assert_eq!(
            api.world().resize_patches[0].1,
            json!({"spec": {"containers": [{"name": "app",
                "resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": "1"}}}]}})
        );
        let a = api.world().pod("web-a").unwrap().clone();
        assert_eq!(
            a["spec"]["containers"][0]["resources"],
            json!({"requests": {"cpu": "500m", "memory": "128Mi"},
                   "limits": {"cpu": "1", "memory": "256Mi"}})
        );
        assert_eq!(
            a["status"]["containerStatuses"][0]["resources"]["requests"]["cpu"],
            "500m"
        );

        // Next tick: both pods within their bounds.
        let (out, pods) = tick(&c, &p, &mut state, now + 15.0).await;
        assert_eq!(
            out.plan.action,
            VerticalAction::Nothing {
                reason: "every request is within its bounds".into()
            }
        );
        assert_eq!(pods[0].containers[0].requests.cpu, Some(0.5));
        assert_eq!(patches_to(&api, "/api/v1").len(), 1, "one resize only");
    })
    .await;
}

#[tokio::test]
async fn infeasible_falls_back_to_a_template_patch() {
    support::bounded(TEST_LIMIT, async {
        let mut w = world();
        w.resize.insert("web-a".into(), ResizeBehaviour::Infeasible);
        let api = KubeStandIn::start(w);
        let dir = TempDir::new("vertical");
        let c = api.cluster(&dir, NS).await;
        let p = policy(POLICY);
        let mut state = PlanState::default();
        let now = support::unix_now();

        let (out, _) = tick(&c, &p, &mut state, now).await;
        match &out.applied {
            Applied::Resized {
                resize: ResizeStatus::Infeasible { message, .. },
                ..
            } => assert!(message.as_deref().unwrap().contains("enough capacity")),
            other => panic!("{other:?}"),
        }
        // Next tick: the pod says Infeasible; the template is patched instead.
        let (out, pods) = tick(&c, &p, &mut state, now + 15.0).await;
        assert!(matches!(pods[0].resize, ResizeStatus::Infeasible { .. }));
        match &out.plan.action {
            VerticalAction::PatchTemplate { reason, .. } => assert!(
                reason.starts_with("pod web-a: resize infeasible (Node didn't have enough capacity"),
                "{reason}"
            ),
            other => panic!("{other:?}"),
        }
        let Applied::TemplatePatched { containers } = &out.applied else {
            panic!("{out}");
        };
        assert_eq!(containers[0].requests.cpu, Some(0.5));
        assert_eq!(state.template_patched_at, Some(now + 15.0));

        // Only the app container's resources, with field manager setpoint.
        {
        let w = api.world();
        let t = &w.templates[0];
        assert_eq!(t.field_managers, ["setpoint"]);
        assert_eq!(
            t.patches[0],
            json!({"spec": {"template": {"spec": {"containers": [{"name": "app",
                "resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": "1"}}}]}}}})
        );
        assert_eq!(
            t.resources("app"),
            json!({"requests": {"cpu": "500m", "memory": "128Mi"},
                   "limits": {"cpu": "1", "memory": "256Mi"}})
        );
        assert_eq!(
            t.resources("proxy"),
            json!({"requests": {"cpu": "10m", "memory": "32Mi"}}),
            "the other container is untouched"
        );
        }
        let sent = patches_to(&api, "/apis/apps/v1/namespaces/demo/deployments/web");
        assert_eq!(
            sent[0].content_type.as_deref(),
            Some("application/strategic-merge-patch+json")
        );
        assert!(sent[0].uri.contains("fieldManager=setpoint"));

        // Right after: wait for the rollout.
        let (out, _) = tick(&c, &p, &mut state, now + 30.0).await;
        assert!(
            matches!(&out.plan.action, VerticalAction::Nothing { reason } if reason.contains("waiting for its rollout")),
            "{out}"
        );
    })
    .await;
}

#[tokio::test]
async fn deferred_past_the_timeout_falls_back() {
    support::bounded(TEST_LIMIT, async {
        let mut w = world();
        w.resize.insert("web-a".into(), ResizeBehaviour::Deferred);
        let api = KubeStandIn::start(w);
        let dir = TempDir::new("vertical");
        let c = api.cluster(&dir, NS).await;
        let p = policy(POLICY);
        let mut state = PlanState::default();
        let now = support::unix_now();

        let (out, _) = tick(&c, &p, &mut state, now).await;
        assert!(
            matches!(&out.applied, Applied::Resized { resize: ResizeStatus::Deferred { .. }, .. }),
            "{out}"
        );
        // Within the timeout: one resize in flight, nothing else happens.
        let (out, _) = tick(&c, &p, &mut state, now + 60.0).await;
        assert!(
            matches!(&out.plan.action, VerticalAction::Nothing { reason } if reason.starts_with("one resize at a time: pod web-a: resize deferred")),
            "{out}"
        );
        assert_eq!(out.applied, Applied::Nothing);
        // Past it (5 minutes): the template.
        let (out, _) = tick(&c, &p, &mut state, now + 301.0).await;
        match &out.plan.action {
            VerticalAction::PatchTemplate { reason, .. } => {
                assert!(reason.contains("(resize.deferredTimeout is 5m)"), "{reason}");
                assert!(reason.contains("falling back to a rollout"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(out.applied, Applied::TemplatePatched { .. }), "{out}");
    })
    .await;
}

#[tokio::test]
async fn a_deferred_resize_accepted_later_lets_the_next_pod_go() {
    support::bounded(TEST_LIMIT, async {
        let mut w = world();
        w.resize.insert("web-a".into(), ResizeBehaviour::Deferred);
        // web-b also below its bounds now, but less far than web-a.
        w.pods[1] = pod(
            "web-b",
            json!({"cpu": "300m", "memory": "128Mi"}),
            json!({"cpu": "600m", "memory": "256Mi"}),
        );
        let api = KubeStandIn::start(w);
        let dir = TempDir::new("vertical");
        let c = api.cluster(&dir, NS).await;
        let p = policy(POLICY);
        let mut state = PlanState::default();
        let now = support::unix_now();

        let (out, _) = tick(&c, &p, &mut state, now).await;
        assert!(
            matches!(&out.applied, Applied::Resized { pod, .. } if pod == "web-a"),
            "the pod furthest outside first: {out}"
        );
        let (out, _) = tick(&c, &p, &mut state, now + 15.0).await;
        assert!(!out.plan.action.writes(), "{out}");
        api.world().accept_resize("web-a");
        let (out, _) = tick(&c, &p, &mut state, now + 30.0).await;
        assert!(
            matches!(&out.applied, Applied::Resized { pod, resize: ResizeStatus::None } if pod == "web-b"),
            "{out}"
        );
        assert!(api.world().templates[0].patches.is_empty());
    })
    .await;
}

#[tokio::test]
async fn without_the_rollout_fallback_it_is_reported_and_nothing_patched() {
    support::bounded(TEST_LIMIT, async {
        let mut w = world();
        w.resize.insert("web-a".into(), ResizeBehaviour::Infeasible);
        let api = KubeStandIn::start(w);
        let dir = TempDir::new("vertical");
        let c = api.cluster(&dir, NS).await;
        let p = policy(&POLICY.replace("fallback: rollout", "fallback: report"));
        let mut state = PlanState::default();
        let now = support::unix_now();

        tick(&c, &p, &mut state, now).await;
        let before = api.requests().len();
        let (out, _) = tick(&c, &p, &mut state, now + 15.0).await;
        match &out.plan.action {
            VerticalAction::Report { reason } => {
                assert!(
                    reason.starts_with("pod web-a: resize infeasible"),
                    "{reason}"
                );
                assert!(
                    reason.ends_with("resize.fallback is report: nothing patched"),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(out.applied, Applied::Nothing);
        let after: Vec<_> = api.requests()[before..]
            .iter()
            .map(|r| r.method.clone())
            .collect();
        assert!(after.iter().all(|m| m == "GET"), "{after:?}");
        assert!(api.world().templates[0].patches.is_empty());
    })
    .await;
}

#[tokio::test]
async fn the_qos_class_is_kept_end_to_end() {
    support::bounded(TEST_LIMIT, async {
        let mut w = world();
        w.pods = vec![
            // Guaranteed: requests == limits stays so.
            pod(
                "web-g",
                json!({"cpu": "100m", "memory": "128Mi"}),
                json!({"cpu": "100m", "memory": "128Mi"}),
            ),
            // BestEffort: never given requests.
            pod("web-e", json!({}), json!({})),
        ];
        let api = KubeStandIn::start(w);
        let dir = TempDir::new("vertical");
        let c = api.cluster(&dir, NS).await;
        let p = policy(POLICY);
        let mut state = PlanState::default();
        let now = support::unix_now();
        let pods = c.pods("app=web").await.unwrap();
        assert_eq!(pods[0].qos_class, Some(QosClass::Guaranteed));
        assert_eq!(pods[1].qos_class, Some(QosClass::BestEffort));

        let (out, _) = tick(&c, &p, &mut state, now).await;
        assert!(
            matches!(&out.applied, Applied::Resized { pod, .. } if pod == "web-g"),
            "{out}"
        );
        let g = api.world().pod("web-g").unwrap().clone();
        assert_eq!(
            g["spec"]["containers"][0]["resources"],
            json!({"requests": {"cpu": "500m", "memory": "128Mi"},
                   "limits": {"cpu": "500m", "memory": "128Mi"}})
        );
        assert_eq!(g["status"]["qosClass"], "Guaranteed");
        let (out, _) = tick(&c, &p, &mut state, now + 15.0).await;
        assert!(!out.plan.action.writes(), "{out}");
        let e = api.world().pod("web-e").unwrap().clone();
        assert_eq!(e["spec"]["containers"][0]["resources"], json!({}));
        assert_eq!(api.world().resize_patches.len(), 1);

        // Burstable with requests only: the CPU request clamped at its limit would make the pod
        // Guaranteed; it stays one millicore below, and the server (which refuses a QoS change)
        // takes it.
        api.world().pods = vec![pod(
            "web-b",
            json!({"cpu": "100m", "memory": "128Mi"}),
            json!({"cpu": "300m", "memory": "128Mi"}),
        )];
        let p = policy(&POLICY.replace(
            "    update: inPlace\n",
            "    update: inPlace\n    limits: requestsOnly\n",
        ));
        let (out, _) = tick(&c, &p, &mut state, now + 30.0).await;
        assert!(
            matches!(&out.applied, Applied::Resized { pod, .. } if pod == "web-b"),
            "{out}"
        );
        assert!(
            out.plan.notes.iter().any(|n| n.contains("stays Burstable")),
            "{:?}",
            out.plan.notes
        );
        let b = api.world().pod("web-b").unwrap().clone();
        assert_eq!(
            b["spec"]["containers"][0]["resources"]["requests"]["cpu"],
            "299m"
        );
        assert_eq!(
            b["spec"]["containers"][0]["resources"]["limits"]["cpu"],
            "300m"
        );
        assert_eq!(b["status"]["qosClass"], "Burstable");
    })
    .await;
}

#[tokio::test]
async fn the_stand_in_refuses_what_a_real_server_refuses() {
    support::bounded(TEST_LIMIT, async {
        let api = KubeStandIn::start(world());
        let dir = TempDir::new("vertical");
        let c = api.cluster(&dir, NS).await;
        let change = |cpu: f64, limit: f64| ContainerChange {
            container: "app".into(),
            requests: setpoint::engine::pod::Amounts {
                cpu: Some(cpu),
                memory: None,
            },
            limits: setpoint::engine::pod::Amounts {
                cpu: Some(limit),
                memory: None,
            },
        };
        // A request above its limit.
        let e = c
            .resize_pod("web-a", &[change(0.5, 0.2)])
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some(422), "{e}");
        assert!(
            e.to_string()
                .starts_with("PATCH pods/resize of pod web-a in namespace demo: HTTP 422 Invalid"),
            "{e}"
        );
        // A QoS change (Burstable to Guaranteed).
        let both = ContainerChange {
            container: "app".into(),
            requests: setpoint::engine::pod::Amounts {
                cpu: Some(0.2),
                memory: Some(256.0 * MIB),
            },
            limits: Default::default(),
        };
        let e = c.resize_pod("web-a", &[both]).await.unwrap_err();
        assert!(
            e.to_string().contains("Pod QOS Class may not change"),
            "{e}"
        );
        // A pod that is not there: its own 404, not the old-server one.
        let e = c.resize_pod("nope", &[change(0.5, 1.0)]).await.unwrap_err();
        assert_eq!(e.code(), Some(404));
        assert!(e.to_string().ends_with("pods \"nope\" not found"), "{e}");
        // A custom kind's template.
        let widget = TargetRef {
            api_version: "example.com/v1".into(),
            kind: "Widget".into(),
            name: "w".into(),
        };
        let e = c
            .patch_template(&widget, &[change(0.5, 1.0)])
            .await
            .unwrap_err();
        assert!(matches!(e, ClusterError::Unsupported { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("apps/v1 Deployment, StatefulSet, ReplicaSet only"),
            "{e}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_server_before_1_33_is_named() {
    support::bounded(TEST_LIMIT, async {
        let mut w = world();
        w.resize_unsupported = true;
        let api = KubeStandIn::start(w);
        let dir = TempDir::new("vertical");
        let c = api.cluster(&dir, NS).await;
        let p = policy(POLICY);
        let (out, _) = tick(&c, &p, &mut PlanState::default(), support::unix_now()).await;
        let Applied::Failed { error } = &out.applied else {
            panic!("{out}");
        };
        assert!(
            error.starts_with(
                "PATCH pods/resize of pod web-a in namespace demo: HTTP 404 NotFound: the server \
                 could not find the requested resource: the API server predates in-place pod \
                 resize (the pods/resize subresource needs Kubernetes 1.33 or later)"
            ),
            "{error}"
        );
    })
    .await;
}

/// The stand-in's pre-1.33 answer against the recorded one, where shared/ has it.
#[tokio::test]
async fn the_pre_1_33_answer_is_the_recorded_one() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/k8s-api-answers.json");
    let Ok(text) = std::fs::read_to_string(&file) else {
        eprintln!(
            "SKIPPED the_pre_1_33_answer_is_the_recorded_one: {} not found",
            file.display()
        );
        return;
    };
    support::bounded(TEST_LIMIT, async move {
        let recorded: Value = serde_json::from_str(&text).unwrap();
        let call = recorded["calls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["request"]["path"].as_str().unwrap().ends_with("/resize"))
            .expect("a recorded pods/resize call")
            .clone();
        let mut w = world();
        w.resize_unsupported = true;
        let api = KubeStandIn::start(w);
        let req = &call["request"];
        let answer = reqwest::Client::new()
            .patch(format!("{}{}", api.url(), req["path"].as_str().unwrap()))
            .header("content-type", req["content_type"].as_str().unwrap())
            .body(req["body"].to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(
            answer.status().as_u16() as u64,
            call["status"].as_u64().unwrap()
        );
        assert_eq!(answer.headers()["content-type"], "application/json");
        let got: Value = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
        assert_eq!(got, call["response"]);
    })
    .await;
}

#[tokio::test]
async fn usage_from_metrics_k8s_io_and_each_oom_kill_counted_once() {
    support::bounded(TEST_LIMIT, async {
        let now = support::unix_now();
        let mut w = world();
        w.pods[0] = k::with_oom_kill(w.pods[0].clone(), &k::rfc3339(now - 120.0));
        w.pod_metrics = Some(vec![
            k::pod_metrics(NS, "web-a", "web", &k::rfc3339(now - 5.0), "30s", "450m"),
            k::pod_metrics(NS, "web-b", "web", &k::rfc3339(now - 5.0), "30s", "460m"),
        ]);
        let api = KubeStandIn::start(w);
        let dir = TempDir::new("vertical");
        let c = api.cluster(&dir, NS).await;
        let p = policy(POLICY);
        let spec = p.vertical.as_ref().unwrap();
        let mut reader = UsageReader::new(spec, UsageSource::MetricsApi);
        let pods = c.pods("app=web").await.unwrap();
        let read = reader.read(&c, &pods, "app=web", now).await;
        assert_eq!(read.samples.len(), 4, "{read:?}");
        assert_eq!(read.ooms.len(), 1);
        assert_eq!(read.ooms[0].pod, "web-a");
        assert_eq!(
            read.ooms[0].memory,
            Some(256.0 * MIB),
            "killed at its limit"
        );
        let again = reader.read(&c, &pods, "app=web", now + 15.0).await;
        assert!(again.ooms.is_empty(), "counted once");
        let mut r = Recommenders::new(spec);
        r.feed(&read);
        r.feed(&again);
        let recs = r.recommendations();
        let mem = recs[0].memory.unwrap();
        assert!(
            mem.target >= 356.0 * MIB,
            "the OOM kill bumps memory to 256Mi + 100Mi: {}",
            mem.target / MIB
        );
        assert!(recs[0].cpu.is_some());
        assert_eq!((r.samples(), r.ooms()), (8, 1));

        // The daemon's tick: the pods by the scale's selector, usage, plan, apply.
        let selector = c.scale(&p.target).await.unwrap().selector.unwrap();
        let pods = c.pods(&selector).await.unwrap();
        let mut vt = VerticalTick::new(&p, UsageSource::MetricsApi).unwrap();
        let out = vt.tick(&c, &p, &pods, &selector, now, None).await;
        // Memory 128Mi of web-a is far below its bumped bounds: web-a is resized.
        assert!(
            matches!(&out.applied, Applied::Resized { pod, .. } if pod == "web-a"),
            "{out}"
        );
        let a = api.world().pod("web-a").unwrap().clone();
        let mem: f64 = setpoint::engine::quantity::parse(
            a["spec"]["containers"][0]["resources"]["requests"]["memory"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert!(mem >= 356.0 * MIB, "{}", mem / MIB);
    })
    .await;
}

/// A Prometheus stand-in answering every usage query: CPU 0.45 cores, memory 300 MiB, a
/// range of one point a minute.
fn fake_prometheus() -> HttpServer {
    fake_prometheus_while(Arc::new(AtomicBool::new(true)))
}

/// [`fake_prometheus`] while `up` holds; a 503 otherwise.
fn fake_prometheus_while(up: Arc<AtomicBool>) -> HttpServer {
    HttpServer::start(move |req| {
        if !up.load(Ordering::SeqCst) {
            return Response::json(
                503,
                json!({"status": "error", "errorType": "unavailable", "error": "down"}).to_string(),
            );
        }
        let params: Vec<(String, String)> = url::form_urlencoded::parse(
            req.target
                .split_once('?')
                .map(|(_, q)| q)
                .unwrap_or("")
                .as_bytes(),
        )
        .into_owned()
        .chain(url::form_urlencoded::parse(&req.body).into_owned())
        .collect();
        let get = |k: &str| {
            params
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let query = get("query");
        let value = if query.contains("cpu") {
            "0.45"
        } else {
            "314572800"
        };
        if req.path().ends_with("/query_range") {
            let (start, end): (f64, f64) =
                (get("start").parse().unwrap(), get("end").parse().unwrap());
            let step: f64 = get("step").parse().unwrap();
            let mut points = Vec::new();
            let mut t = start;
            while t <= end {
                points.push(json!([t, value]));
                t += step;
            }
            Response::json(
                200,
                json!({"status": "success", "data": {"resultType": "matrix",
                    "result": [{"metric": {}, "values": points}]}})
                .to_string(),
            )
        } else {
            let t: f64 = get("time").parse().unwrap_or(0.0);
            Response::json(
                200,
                json!({"status": "success", "data": {"resultType": "vector",
                    "result": [{"metric": {}, "value": [t, value]}]}})
                .to_string(),
            )
        }
    })
}

#[tokio::test]
async fn usage_from_prometheus_per_pod_and_container() {
    support::bounded(TEST_LIMIT, async {
        let prom = fake_prometheus();
        let api = KubeStandIn::start(world());
        let dir = TempDir::new("vertical");
        let c = api.cluster(&dir, NS).await;
        let text = POLICY.replace(
            "    update: inPlace\n",
            "    update: inPlace\n    usage:\n      memory: max(container_memory_rss{namespace=\"$namespace\", pod=\"$pod\", container=\"$container\"})\n",
        );
        let p = policy(&text);
        let client = setpoint::prometheus::PrometheusClient::new(
            &setpoint::prometheus::PrometheusConfig::new(prom.url()),
        )
        .unwrap();
        let mut reader = UsageReader::new(p.vertical.as_ref().unwrap(), UsageSource::Prometheus(client));
        let pods = c.pods("app=web").await.unwrap();
        let now = support::unix_now().floor();
        let read = reader.read(&c, &pods, "app=web", now).await;
        assert_eq!(read.samples.len(), 4, "{read:?}");
        assert!(read.samples.iter().all(|s| s.t == now));
        let queries: Vec<String> = prom
            .requests()
            .iter()
            .map(|r| {
                url::form_urlencoded::parse(r.target.split_once('?').unwrap().1.as_bytes())
                    .find(|(k, _)| k == "query")
                    .unwrap()
                    .1
                    .into_owned()
            })
            .collect();
        assert!(queries.contains(&r#"sum(rate(container_cpu_usage_seconds_total{namespace="demo",pod="web-a",container="app"}[5m]))"#.to_string()), "{queries:?}");
        assert!(queries.contains(&r#"max(container_memory_rss{namespace="demo", pod="web-b", container="app"})"#.to_string()), "{queries:?}");
        let history = reader
            .history(&c, &pods, now - 3600.0, now, Duration::from_secs(60))
            .await;
        assert_eq!(history.samples.len(), 4 * 61);
        assert!(history.samples.windows(2).all(|w| w[0].t <= w[1].t), "in time order");
    })
    .await;
}

#[tokio::test]
async fn the_first_tick_seeds_from_history_again_after_prometheus_was_down() {
    support::bounded(TEST_LIMIT, async {
        let up = Arc::new(AtomicBool::new(false));
        let prom = fake_prometheus_while(up.clone());
        let api = KubeStandIn::start(world());
        let dir = TempDir::new("vertical");
        let c = api.cluster(&dir, NS).await;
        let p = policy(&POLICY.replace("update: inPlace", "update: off"));
        let client = setpoint::prometheus::PrometheusClient::new(
            &setpoint::prometheus::PrometheusConfig::new(prom.url()),
        )
        .unwrap()
        .with_retry_budget(Duration::from_millis(300));
        let mut vt = VerticalTick::new(&p, UsageSource::Prometheus(client)).unwrap();
        let selector = c.scale(&p.target).await.unwrap().selector.unwrap();
        let pods = c.pods(&selector).await.unwrap();
        let ranges = |prom: &HttpServer| {
            prom.requests()
                .iter()
                .filter(|r| r.target.contains("query_range"))
                .count()
        };
        let now = support::unix_now().floor();

        // Prometheus is down: the tick goes on, says so, and the history read stopped at its
        // first query.
        let out = vt.tick(&c, &p, &pods, &selector, now, None).await;
        let notes = out.plan.notes.join("\n");
        assert!(
            notes.contains("usage history: cannot be read from Prometheus"),
            "{notes}"
        );
        assert!(notes.contains("trying again in 5m"), "{notes}");
        assert!(notes.contains("3 more readings not tried"), "{notes}");
        assert!(matches!(
            vt.take_history(),
            Some(HistorySeed::Failed { .. })
        ));
        assert_eq!(vt.recommenders().samples(), 0);
        let tried = ranges(&prom);
        assert!(tried >= 1);

        // Up again a minute later: live samples, but no history read before five minutes.
        up.store(true, Ordering::SeqCst);
        let out = vt.tick(&c, &p, &pods, &selector, now + 60.0, None).await;
        assert_eq!(ranges(&prom), tried, "{:?}", out.plan.notes);
        assert_eq!(vt.take_history(), None);
        assert_eq!(vt.recommenders().samples(), 4);

        // Five minutes after the failure: the history replaces the live samples (no sample
        // counts twice), then this tick's live samples are added.
        let later = now + HISTORY_RETRY;
        vt.tick(&c, &p, &pods, &selector, later, None).await;
        let Some(HistorySeed::Seeded { samples, note }) = vt.take_history() else {
            panic!("seeded");
        };
        assert!(
            note.contains("in place of the 4 samples read live before"),
            "{note}"
        );
        assert_eq!(vt.recommenders().samples(), samples as u64 + 4);
        // Two days, one point a minute, for 2 pods and 2 resources.
        assert_eq!(samples, 4 * 2881);
        // Once is enough.
        vt.tick(&c, &p, &pods, &selector, later + 3600.0, None)
            .await;
        assert_eq!(vt.take_history(), None);
    })
    .await;
}

fn setpoint(args: &[&str], kubeconfig: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_setpoint"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .expect("run setpoint")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recommend_shows_the_vertical_part_from_prometheus_history() {
    support::bounded(TEST_LIMIT, async {
        let prom = fake_prometheus();
        let api = KubeStandIn::start(world());
        let dir = TempDir::new("recommend");
        let kubeconfig = api.kubeconfig(&dir, NS);
        let file = dir.write("p.yaml", POLICY);
        let run = |format: &'static str| {
            let (f, k, url) = (file.clone(), kubeconfig.clone(), prom.url());
            tokio::task::spawn_blocking(move || {
                setpoint(
                    &[
                        "recommend",
                        "--policy",
                        f.to_str().unwrap(),
                        "--prometheus",
                        &url,
                        "--output",
                        format,
                    ],
                    &k,
                )
            })
        };
        let out = run("json").await.unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(v.get("decision").is_none(), "no horizontal part: {v:#}");
        let vert = &v["vertical"];
        assert_eq!(vert["source"], "prometheus");
        assert!(vert["samples"].as_u64().unwrap() > 1000, "{vert:#}");
        let rows = vert["plan"]["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["container"], "app");
        assert_eq!(rows[0]["resource"], "cpu");
        assert_eq!(rows[0]["currentMin"], 0.1);
        assert_eq!(rows[0]["currentMax"], 0.45);
        let target = rows[0]["recommended"]["target"].as_f64().unwrap();
        assert!(
            (0.45..0.6).contains(&target),
            "0.45 cores and the margin: {target}"
        );
        assert_eq!(vert["plan"]["action"]["kind"], "resize");
        assert_eq!(vert["plan"]["action"]["pod"], "web-a");
        assert!(
            v["summary"]
                .as_str()
                .unwrap()
                .starts_with("resize pod web-a in place"),
            "{v:#}"
        );

        let out = run("text").await.unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let s = text(&out.stdout);
        for want in [
            "policy web: Deployment web in namespace demo",
            "vertical (usage from prometheus:",
            "  app cpu: request 100m-450m, target ",
            "  app memory: request 128Mi, target ",
            "decision: resize pod web-a in place: app cpu request ",
        ] {
            assert!(s.contains(want), "{want:?} missing in\n{s}");
        }
        assert!(!s.contains("proposals:"), "no horizontal part:\n{s}");
        // Read-only.
        assert!(api.requests().iter().all(|r| r.method == "GET"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recommend_with_one_metrics_k8s_io_sample_says_it_is_thin() {
    support::bounded(TEST_LIMIT, async {
        let now = support::unix_now();
        let mut w = world();
        w.pod_metrics = Some(vec![
            k::pod_metrics(NS, "web-a", "web", &k::rfc3339(now - 5.0), "30s", "450m"),
            k::pod_metrics(NS, "web-b", "web", &k::rfc3339(now - 5.0), "30s", "460m"),
        ]);
        let api = KubeStandIn::start(w);
        let dir = TempDir::new("recommend");
        let kubeconfig = api.kubeconfig(&dir, NS);
        let file = dir.write("p.yaml", POLICY);
        let out = tokio::task::spawn_blocking(move || {
            setpoint(
                &[
                    "recommend",
                    "--policy",
                    file.to_str().unwrap(),
                    "--output",
                    "json",
                ],
                &kubeconfig,
            )
        })
        .await
        .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let vert = &v["vertical"];
        assert_eq!(vert["source"], "metrics.k8s.io");
        assert_eq!(vert["samples"], 4);
        let notes: Vec<&str> = v["notes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        assert!(
            notes
                .iter()
                .any(|n| n.contains("one metrics.k8s.io sample per container: a thin history")),
            "{notes:?}"
        );
        assert!(
            vert["plan"]["rows"][0]["recommended"]["target"]
                .as_f64()
                .is_some()
        );
    })
    .await;
}

// Memory-limit decreases in place: Kubernetes 1.33 refuses them (422 Invalid) for a container
// whose memory resizePolicy is NotRequired; 1.34 takes them.

/// `world()` with web-a's memory (512Mi, limit 1Gi) far above its bounds and its CPU within
/// them: the plan lowers its memory request to 128Mi and its limit to 256Mi.
fn memory_world(forbid: bool) -> World {
    let mut w = world();
    w.pods[0] = pod(
        "web-a",
        json!({"cpu": "500m", "memory": "512Mi"}),
        json!({"cpu": "1", "memory": "1Gi"}),
    );
    w.resize_forbids_memory_limit_decrease = forbid;
    w
}

const REFUSAL: &str = "Pod \"web-a\" is invalid: spec.containers[0].resources.limits[memory]: \
                       Forbidden: memory limits cannot be decreased unless resizePolicy is \
                       RestartContainer";

fn resize_requests(api: &KubeStandIn) -> usize {
    api.requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.uri.contains("/resize"))
        .count()
}

#[tokio::test]
async fn a_1_33_server_answers_a_memory_limit_decrease_as_the_real_one() {
    support::bounded(TEST_LIMIT, async {
        let mut w = memory_world(true);
        // web-b restarts its container to resize memory: the server takes a decrease there.
        w.pods[1] = k::with_resize_policy(
            w.pods[1].clone(),
            json!([{"resourceName": "memory", "restartPolicy": "RestartContainer"}]),
        );
        // web-c has no memory limit: adding one is refused too.
        w.pods.push(pod(
            "web-c",
            json!({"cpu": "500m", "memory": "128Mi"}),
            json!({"cpu": "1"}),
        ));
        let api = KubeStandIn::start(w);
        let patch = |pod: &str, limits: Value| {
            let url = format!("{}/api/v1/namespaces/demo/pods/{pod}/resize", api.url());
            async move {
                let answer = reqwest::Client::new()
                    .patch(url)
                    .header("content-type", "application/strategic-merge-patch+json")
                    .body(
                        json!({"spec": {"containers": [{"name": "app",
                            "resources": {"limits": limits}}]}})
                        .to_string(),
                    )
                    .send()
                    .await
                    .unwrap();
                let code = answer.status().as_u16();
                let body: Value = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
                (code, body)
            }
        };
        let (code, body) = patch("web-a", json!({"memory": "768Mi"})).await;
        assert_eq!(code, 422);
        assert_eq!(
            body,
            json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": REFUSAL,
                "reason": "Invalid",
                "details": {"name": "web-a", "kind": "Pod", "causes": [{
                    "reason": "FieldValueForbidden",
                    "message": "Forbidden: memory limits cannot be decreased unless resizePolicy \
                                is RestartContainer",
                    "field": "spec.containers[0].resources.limits[memory]"}]},
                "code": 422,
            })
        );
        let a = api.world().pod("web-a").unwrap().clone();
        assert_eq!(
            a["spec"]["containers"][0]["resources"]["limits"]["memory"],
            "1Gi"
        );
        // A raise, and a decrease with RestartContainer, are taken.
        assert_eq!(patch("web-a", json!({"memory": "2Gi"})).await.0, 200);
        assert_eq!(patch("web-b", json!({"memory": "200Mi"})).await.0, 200);
        let (code, body) = patch("web-c", json!({"memory": "1Gi"})).await;
        assert_eq!(code, 422);
        assert!(
            body["message"].as_str().unwrap().ends_with(
                "Forbidden: memory limits cannot be added unless resizePolicy is RestartContainer"
            ),
            "{body}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_1_34_server_lowers_a_memory_limit_in_place() {
    support::bounded(TEST_LIMIT, async {
        let api = KubeStandIn::start(memory_world(false));
        let dir = TempDir::new("vertical");
        let c = api.cluster(&dir, NS).await;
        let mut state = PlanState::default();
        let (out, _) = tick(&c, &policy(POLICY), &mut state, support::unix_now()).await;
        assert!(
            matches!(&out.applied, Applied::Resized { pod, .. } if pod == "web-a"),
            "{out}"
        );
        let a = api.world().pod("web-a").unwrap().clone();
        assert_eq!(
            a["spec"]["containers"][0]["resources"]["limits"]["memory"],
            "256Mi"
        );
        assert_eq!(state.memory_limit_decrease_refused, None);
    })
    .await;
}

#[tokio::test]
async fn a_refused_memory_limit_decrease_falls_back_to_the_template_and_is_not_tried_again() {
    support::bounded(TEST_LIMIT, async {
        let api = KubeStandIn::start(memory_world(true));
        let dir = TempDir::new("vertical");
        let c = api.cluster(&dir, NS).await;
        let p = policy(POLICY);
        let mut state = PlanState::default();
        let now = support::unix_now();

        // The resize is refused; the same tick patches the template instead.
        let (out, _) = tick(&c, &p, &mut state, now).await;
        match &out.plan.action {
            VerticalAction::PatchTemplate { reason, .. } => {
                assert!(
                    reason.starts_with(&format!(
                        "pod web-a: the resize lowers the memory limit of app (1Gi to 256Mi), \
                         which the API server refuses in place (it refused pod web-a container \
                         app: {REFUSAL})"
                    )),
                    "{reason}"
                );
                assert!(
                    reason.contains("falling back to a rollout (resize.fallback is rollout)"),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(
            out.plan.notes[0].starts_with(
                "the API server refused to lower a memory limit of pod web-a in place"
            ),
            "{:?}",
            out.plan.notes
        );
        let Applied::TemplatePatched { containers } = &out.applied else {
            panic!("{out}");
        };
        assert_eq!(containers[0].requests.memory, Some(128.0 * MIB));
        assert_eq!(containers[0].limits.memory, Some(256.0 * MIB));
        assert_eq!(
            api.world().templates[0].patches,
            [
                json!({"spec": {"template": {"spec": {"containers": [{"name": "app",
                "resources": {"requests": {"memory": "128Mi"},
                              "limits": {"memory": "256Mi"}}}]}}}})
            ]
        );
        assert_eq!(resize_requests(&api), 1, "one attempt in place");
        let a = api.world().pod("web-a").unwrap().clone();
        assert_eq!(
            a["spec"]["containers"][0]["resources"]["limits"]["memory"], "1Gi",
            "the refused resize changed nothing"
        );
        let refusal = state.memory_limit_decrease_refused.clone().unwrap();
        assert_eq!(
            (
                refusal.pod.as_str(),
                &refusal.containers[..],
                refusal.message.as_str()
            ),
            ("web-a", &["app".to_string()][..], REFUSAL)
        );
        assert_eq!(state.template_patched_at, Some(now));

        // Later, another pod's memory limit should come down: straight to the template.
        api.world().pods = vec![pod(
            "web-c",
            json!({"cpu": "500m", "memory": "512Mi"}),
            json!({"cpu": "1", "memory": "1Gi"}),
        )];
        let (out, _) = tick(&c, &p, &mut state, now + 120.0).await;
        match &out.plan.action {
            VerticalAction::PatchTemplate { reason, .. } => assert!(
                reason.starts_with(
                    "pod web-c: the resize lowers the memory limit of app (1Gi to 256Mi), which \
                     the API server refuses in place (it refused pod web-a container app: "
                ),
                "{reason}"
            ),
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(out.applied, Applied::TemplatePatched { .. }),
            "{out}"
        );
        assert_eq!(resize_requests(&api), 1, "not tried in place again");

        // A CPU change still goes in place.
        api.world().pods = vec![pod(
            "web-d",
            json!({"cpu": "100m", "memory": "128Mi"}),
            json!({"cpu": "200m", "memory": "256Mi"}),
        )];
        let (out, _) = tick(&c, &p, &mut state, now + 240.0).await;
        assert!(
            matches!(&out.applied, Applied::Resized { pod, .. } if pod == "web-d"),
            "{out}"
        );
        assert_eq!(resize_requests(&api), 2);
    })
    .await;
}

#[tokio::test]
async fn with_fallback_report_a_refused_memory_limit_decrease_is_reported_once_tried() {
    support::bounded(TEST_LIMIT, async {
        let api = KubeStandIn::start(memory_world(true));
        let dir = TempDir::new("vertical");
        let c = api.cluster(&dir, NS).await;
        let p = policy(&POLICY.replace("fallback: rollout", "fallback: report"));
        let mut state = PlanState::default();
        let now = support::unix_now();

        for (k, t) in [now, now + 15.0, now + 30.0].into_iter().enumerate() {
            let (out, _) = tick(&c, &p, &mut state, t).await;
            match &out.plan.action {
                VerticalAction::Report { reason } => {
                    assert!(
                        reason.starts_with(&format!(
                            "pod web-a: the resize lowers the memory limit of app (1Gi to \
                             256Mi), which the API server refuses in place (it refused pod \
                             web-a container app: {REFUSAL})"
                        )),
                        "{reason}"
                    );
                    assert!(
                        reason.ends_with("resize.fallback is report: nothing patched"),
                        "{reason}"
                    );
                }
                other => panic!("tick {k}: {other:?}"),
            }
            assert_eq!(out.applied, Applied::Nothing, "tick {k}");
        }
        assert_eq!(resize_requests(&api), 1, "tried in place once");
        assert_eq!(
            api.requests().iter().filter(|r| r.method != "GET").count(),
            1,
            "nothing else written"
        );
        assert!(api.world().templates[0].patches.is_empty());
    })
    .await;
}

#[tokio::test]
async fn another_422_stays_an_error_and_is_not_remembered() {
    support::bounded(TEST_LIMIT, async {
        let mut w = memory_world(false);
        w.faults.push_back(k::Fault {
            method: Some("PATCH".into()),
            path_contains: "/resize".into(),
            status: Some(422),
            delay: Duration::ZERO,
            times: 1,
        });
        let api = KubeStandIn::start(w);
        let dir = TempDir::new("vertical");
        let c = api.cluster(&dir, NS).await;
        let p = policy(POLICY);
        let mut state = PlanState::default();
        let now = support::unix_now();

        let (out, _) = tick(&c, &p, &mut state, now).await;
        let Applied::Failed { error } = &out.applied else {
            panic!("{out}");
        };
        assert!(
            error.starts_with("PATCH pods/resize of pod web-a in namespace demo: HTTP 422"),
            "{error}"
        );
        assert!(matches!(out.plan.action, VerticalAction::Resize { .. }));
        assert_eq!(state.memory_limit_decrease_refused, None);
        assert!(api.world().templates[0].patches.is_empty());
        // The next tick tries in place again, and the server takes it.
        let (out, _) = tick(&c, &p, &mut state, now + 15.0).await;
        assert!(
            matches!(&out.applied, Applied::Resized { pod, .. } if pod == "web-a"),
            "{out}"
        );
    })
    .await;
}
