//! The cluster adapter (kube-rs) and `recommend` against the Kubernetes API stand-in of
//! tests/support/kube.rs: scale subresource (with discovery of a custom kind), pods with
//! readiness and start times, metrics.k8s.io, the API server's own errors, and pod metrics
//! scraped from pods on loopback addresses; and the stand-in itself: its Leases (field
//! ownership, apply conflicts), Events, scalable objects and injected errors, and its answers
//! against those of a real API server (lists, watches, the ScalingPolicy CRD, Tables and RBAC
//! included; tests/stand_in_watch.rs drives those through kube-rs). Everything listens on
//! 127.0.0.1 (and 127.0.0.2-3 for the scraped pods), is bounded in time, and stops with the
//! test.

mod support;

use serde_json::{Value, json};
use setpoint::cluster::{Cluster, ClusterError};
use setpoint::policy::TargetRef;
use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use support::TempDir;
use support::http::{HttpServer, Response};
use support::kube::{self as k, KubeStandIn, PodSpec, Scalable, World};

const TEST_LIMIT: Duration = Duration::from_secs(60);
const NS: &str = "demo";

fn ago(seconds: f64) -> String {
    k::rfc3339(support::unix_now() - seconds)
}

fn pod(name: &str, age: f64, ready: Option<(bool, f64)>, ip: &str) -> PodSpec {
    PodSpec {
        name: name.into(),
        namespace: NS.into(),
        app: "web".into(),
        phase: "Running".into(),
        ready: ready.map(|(r, since)| (r, ago(since))),
        start_time: Some(ago(age)),
        ip: Some(ip.into()),
        cpu_request: Some("500m".into()),
        deleting: false,
    }
}

/// A deployment `web` at 3 replicas with two ready pods, one starting, one of another app,
/// their metrics.k8s.io usage, and a token.
fn world() -> World {
    let mut other = pod("db-0", 3600.0, Some((true, 3500.0)), "10.0.0.9");
    other.app = "db".into();
    World {
        scalables: vec![Scalable::deployment(NS, "web", 3)],
        pods: vec![
            k::pod(&pod("web-a", 3600.0, Some((true, 3500.0)), "10.0.0.1")),
            k::pod(&pod("web-b", 3600.0, Some((true, 3500.0)), "10.0.0.2")),
            k::pod(&pod("web-c", 20.0, Some((false, 19.0)), "10.0.0.3")),
            k::pod(&other),
        ],
        pod_metrics: Some(vec![
            k::pod_metrics(NS, "web-a", "web", &ago(5.0), "30s", "500m"),
            k::pod_metrics(NS, "web-b", "web", &ago(5.0), "30.021s", "500000000n"),
            k::pod_metrics(NS, "web-c", "web", &ago(5.0), "30s", "490m"),
            k::pod_metrics(NS, "db-0", "db", &ago(5.0), "30s", "2"),
        ]),
        token: Some("s3cr3t-token".into()),
        ..World::default()
    }
}

fn target(api_version: &str, kind: &str, name: &str) -> TargetRef {
    TargetRef {
        api_version: api_version.into(),
        kind: kind.into(),
        name: name.into(),
    }
}

#[tokio::test]
async fn scale_of_a_deployment_and_of_a_discovered_custom_kind() {
    support::bounded(TEST_LIMIT, async {
        let mut w = world();
        // A custom kind whose plural cannot be guessed: found through discovery.
        w.scalables.push(Scalable {
            group: "example.com".into(),
            kind: "Widget".into(),
            plural: "widgetz".into(),
            selector: "app=widget".into(),
            ..Scalable::deployment(NS, "w1", 7)
        });
        let api = KubeStandIn::start(w);
        let dir = TempDir::new("kube");
        let c = api.cluster(&dir, NS).await;
        assert_eq!(c.namespace(), NS);

        let s = c
            .scale(&target("apps/v1", "Deployment", "web"))
            .await
            .unwrap();
        assert_eq!((s.spec_replicas, s.status_replicas), (3, 3));
        assert_eq!(s.selector.as_deref(), Some("app=web"));
        assert_eq!(s.resource_version.as_deref(), Some("501"));

        let s = c
            .scale(&target("example.com/v1", "Widget", "w1"))
            .await
            .unwrap();
        assert_eq!(s.spec_replicas, 7);
        let paths: Vec<String> = api.requests().iter().map(|r| r.uri.clone()).collect();
        assert!(
            paths.contains(&"/apis/example.com/v1".to_string()),
            "{paths:?}"
        );
        assert!(
            paths.contains(&"/apis/example.com/v1/namespaces/demo/widgetz/w1/scale".to_string()),
            "{paths:?}"
        );
        // The built-in kinds need no discovery.
        assert!(!paths.contains(&"/apis/apps/v1".to_string()), "{paths:?}");
    })
    .await;
}

#[tokio::test]
async fn errors_are_the_api_servers_own() {
    support::bounded(TEST_LIMIT, async {
        let mut w = world();
        w.pod_metrics = None;
        let api = KubeStandIn::start(w);
        let dir = TempDir::new("kube");
        let c = api.cluster(&dir, NS).await;

        let e = c
            .scale(&target("apps/v1", "Deployment", "nope"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some(404));
        assert_eq!(
            e.to_string(),
            "GET scale of Deployment nope in namespace demo: HTTP 404 NotFound: \
             deployments/scale.apps \"nope\" not found"
        );

        let e = c.pod_metrics("app=web").await.unwrap_err();
        assert_eq!(e.code(), Some(404));
        assert!(
            e.to_string()
                .contains("is metrics-server, or another metrics.k8s.io provider, installed?"),
            "{e}"
        );

        api.world().token = Some("another".into());
        let e = c
            .scale(&target("apps/v1", "Deployment", "web"))
            .await
            .unwrap_err();
        assert!(matches!(e, ClusterError::Api { code: 401, .. }), "{e}");
        assert!(e.to_string().contains("Unauthorized"), "{e}");
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
    })
    .await;
}

#[tokio::test]
async fn pods_with_readiness_start_times_and_requests() {
    support::bounded(TEST_LIMIT, async {
        let mut w = world();
        let mut pending = pod("web-d", 2.0, None, "");
        pending.phase = "Pending".into();
        pending.ip = None;
        pending.start_time = None;
        w.pods.push(k::pod(&pending));
        let mut leaving = pod("web-e", 900.0, Some((true, 800.0)), "10.0.0.5");
        leaving.deleting = true;
        w.pods.push(k::pod(&leaving));
        let api = KubeStandIn::start(w);
        let dir = TempDir::new("kube");
        let c = api.cluster(&dir, NS).await;
        let pods = c.pods("app=web").await.unwrap();
        let names: Vec<&str> = pods.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["web-a", "web-b", "web-c", "web-d", "web-e"]);
        let ready: Vec<bool> = pods.iter().map(|p| p.is_ready()).collect();
        assert_eq!(ready, [true, true, false, false, false]);
        let now = support::unix_now();
        assert!((now - pods[2].start_time.unwrap() - 20.0).abs() < 3.0);
        assert!(!pods[2].ready.unwrap().ready);
        assert_eq!(pods[3].phase, "Pending");
        assert_eq!(pods[3].start_time, None);
        assert!(pods[4].deleting);
        assert_eq!(pods[0].containers[0].requests.cpu, Some(0.5));
        assert_eq!(pods[0].ip.as_deref(), Some("10.0.0.1"));
        let q: Vec<String> = api
            .requests()
            .iter()
            .filter(|r| r.uri.starts_with("/api/v1/namespaces/demo/pods"))
            .map(|r| r.uri.clone())
            .collect();
        assert_eq!(q, ["/api/v1/namespaces/demo/pods?&labelSelector=app%3Dweb"]);
    })
    .await;
}

#[tokio::test]
async fn pod_usage_from_metrics_k8s_io() {
    support::bounded(TEST_LIMIT, async {
        let api = KubeStandIn::start(world());
        let dir = TempDir::new("kube");
        let c = api.cluster(&dir, NS).await;
        let usage = c.pod_metrics("app=web").await.unwrap();
        assert_eq!(usage.len(), 3);
        assert_eq!(usage[0].pod, "web-a");
        assert_eq!(usage[0].containers[0].cpu, Some(0.5));
        assert_eq!(usage[1].containers[0].cpu, Some(0.5));
        assert!((usage[1].window - 30.021).abs() < 1e-9);
        assert_eq!(usage[0].containers[0].memory, Some(40.0 * 1024.0 * 1024.0));
    })
    .await;
}

#[tokio::test]
async fn injected_faults_reach_the_adapter() {
    support::bounded(TEST_LIMIT, async {
        let api = KubeStandIn::start(world());
        let dir = TempDir::new("kube");
        let c = api.cluster(&dir, NS).await;
        let web = target("apps/v1", "Deployment", "web");
        let fault = |status: Option<u16>, delay_ms: u64| k::Fault {
            method: Some("GET".into()),
            path_contains: "/scale".into(),
            status,
            delay: Duration::from_millis(delay_ms),
            times: 1,
        };

        api.world().faults.push_back(fault(Some(403), 0));
        let e = c.scale(&web).await.unwrap_err();
        assert_eq!(e.code(), Some(403));
        assert!(
            e.to_string().contains(
                "the Role needs verb \"get\" on resource \"deployments/scale\" in API group \"apps\""
            ),
            "{e}"
        );

        api.world().faults.push_back(fault(Some(500), 0));
        assert_eq!(c.scale(&web).await.unwrap_err().code(), Some(500));

        // kube-rs retries a 429 after the server's Retry-After (1 s).
        api.world().faults.push_back(fault(Some(429), 0));
        let start = Instant::now();
        assert_eq!(c.scale(&web).await.unwrap().spec_replicas, 3);
        assert!(start.elapsed() >= Duration::from_millis(900));

        // A slow answer is still an answer.
        api.world().faults.push_back(fault(None, 300));
        let start = Instant::now();
        assert_eq!(c.scale(&web).await.unwrap().spec_replicas, 3);
        assert!(start.elapsed() >= Duration::from_millis(300));
        assert!(api.world().faults.is_empty(), "each fault used once");
    })
    .await;
}

/// Whether `name` is `prefix` and the API server's 5 generated characters.
fn generated(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix).is_some_and(|s| {
        s.len() == 5
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

/// Takes `metadata.{key}` out of `got` and `want` (values that differ between servers) and
/// returns got's.
fn take_meta(got: &mut Value, want: &mut Value, key: &str) -> Value {
    want["metadata"][key].take();
    got["metadata"][key].take()
}

/// Recorded calls that the replay sets aside, each with its reason; every other call in
/// shared/k8s-api-answers.json is checked.
const SET_ASIDE: &[(&str, &str)] = &[(
    "quiet watch of pods with allowWatchBookmarks=true and timeoutSeconds=60 (nothing changes)",
    "it lasts 60 s; its one bookmark 2 s before the timeout, at a resourceVersion that \
         writes elsewhere moved, is what the 10 s watch of a non-matching pod checks too",
)];

/// Recorded resourceVersions against the stand-in's: they differ between servers, but their
/// order must be the same.
#[derive(Default)]
struct Versions {
    /// Recorded resourceVersion of an object -> the stand-in's.
    objects: BTreeMap<u64, u64>,
}

fn rv_of(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no resourceVersion in {v}"))
}

impl Versions {
    /// An object's: one recorded resourceVersion is always the same one of the stand-in's, and
    /// a later (earlier) recorded one is a later (earlier) one of the stand-in's.
    fn object(&mut self, name: &str, got: &Value, want: &Value) {
        let (g, r) = (rv_of(got), rv_of(want));
        assert!(g > 500, "{name}: resourceVersion {g}");
        for (&r2, &g2) in &self.objects {
            let ok = match r2.cmp(&r) {
                std::cmp::Ordering::Less => g2 < g,
                std::cmp::Ordering::Equal => g2 == g,
                std::cmp::Ordering::Greater => g2 > g,
            };
            assert!(
                ok,
                "{name}: resourceVersion {g} for the recorded {r}, {g2} for {r2}"
            );
        }
        self.objects.insert(r, g);
    }

    /// A list's, a bookmark's or a Table row's (writes the stand-in does not make, in other
    /// namespaces or by controllers, move those on a real server): at least the stand-in's
    /// for every recorded object write up to it.
    fn at_least(&self, name: &str, got: &Value, want: &Value) {
        let (g, r) = (rv_of(got), rv_of(want));
        assert!(g > 500, "{name}: resourceVersion {g}");
        for (_, &g2) in self.objects.range(..=r) {
            assert!(
                g >= g2,
                "{name}: resourceVersion {g} for the recorded {r}, before {g2}"
            );
        }
    }
}

fn assert_time(name: &str, t: &Value) {
    let t = t.as_str().unwrap_or_else(|| panic!("{name}: no time: {t}"));
    assert!(humantime::parse_rfc3339(t).is_ok(), "{name}: {t}");
}

/// Sets aside, in `got` and `want`, what differs between two servers or what the stand-in does
/// not model (each named below), checking what it can of it.
fn set_aside(name: &str, got: &mut Value, want: &mut Value, rvs: &mut Versions, oldest: u64) {
    let kind = got["kind"].as_str().unwrap_or("").to_string();
    if kind == "Status" {
        if got["reason"] == "Invalid" && got["details"]["kind"] == "Event" {
            // The name was generated for this request.
            let n = got["details"]["name"].as_str().unwrap().to_string();
            assert!(generated(&n, "web-"), "{name}: {n}");
            want["details"]["name"] = json!(n);
            want["message"] = json!(format!(
                "Event \"{n}\" is invalid: eventTime: Required value"
            ));
        }
        if got["reason"] == "Expired" {
            // The oldest resourceVersion the watch cache holds is the server's own.
            let m = want["message"].as_str().unwrap();
            let asked = m.split(" (").next().unwrap();
            want["message"] = json!(format!("{asked} ({oldest})"));
        }
        return;
    }
    if let Some(item_kind) = kind.strip_suffix("List")
        && got["items"].is_array()
    {
        rvs.at_least(name, got, want);
        if let Some(token) = want["metadata"]["continue"]
            .as_str()
            .filter(|t| !t.is_empty())
        {
            // A page's token names the next item and the list's resourceVersion.
            let got_token = got["metadata"]["continue"]
                .as_str()
                .expect("a continue token");
            let (got_rv, got_start) = k::watch::read_continue_token(got_token).unwrap();
            let (_, want_start) = k::watch::read_continue_token(token).unwrap();
            assert_eq!(got_start, want_start, "{name}");
            assert_eq!(
                got_rv.to_string(),
                got["metadata"]["resourceVersion"],
                "{name}"
            );
            take_meta(got, want, "continue");
        }
        take_meta(got, want, "resourceVersion");
        let (gi, wi) = (
            got["items"].as_array_mut().unwrap(),
            want["items"].as_array_mut().unwrap(),
        );
        assert_eq!(gi.len(), wi.len(), "{name}: items");
        for (g, w) in gi.iter_mut().zip(wi.iter_mut()) {
            // A built-in list's items carry no kind.
            let bare = g.get("kind").is_none();
            if bare {
                g["kind"] = json!(item_kind);
                w["kind"] = json!(item_kind);
            }
            set_aside(name, g, w, rvs, oldest);
            if bare {
                g.as_object_mut().unwrap().remove("kind");
                w.as_object_mut().unwrap().remove("kind");
            }
        }
        return;
    }
    if kind == "Table" {
        rvs.at_least(name, got, want);
        take_meta(got, want, "resourceVersion");
        let columns: Vec<String> = want["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect();
        let (gr, wr) = (
            got["rows"].as_array_mut().unwrap(),
            want["rows"].as_array_mut().unwrap(),
        );
        assert_eq!(gr.len(), wr.len(), "{name}: rows");
        for (g, w) in gr.iter_mut().zip(wr.iter_mut()) {
            let created = g["object"]["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            for (i, column) in columns.iter().enumerate() {
                let cell = &mut g["cells"][i];
                match column.as_str() {
                    // An age, from the server's clock: the object's, as the server prints it.
                    "AGE" | "Age" => {
                        let created = humantime::parse_rfc3339(&created).unwrap();
                        let age = created.elapsed().unwrap().as_secs() as i64;
                        assert!(
                            (age - 2..=age).any(|a| json!(k::table::human_duration(a)) == *cell),
                            "{name}: age {cell} for {age} s"
                        );
                    }
                    // Counts from a Deployment's status, which no controller writes here.
                    "Up-to-date" | "Available" => assert!(cell.is_u64(), "{name}: {cell}"),
                    _ => continue,
                }
                cell.take();
                w["cells"][i].take();
            }
            let (go, wo) = (&mut g["object"], &mut w["object"]);
            rvs.at_least(name, go, wo);
            take_meta(go, wo, "resourceVersion");
            meta_set_aside(name, go, wo, &kind_of_row(name));
        }
        return;
    }
    if kind == "Deployment"
        || kind == "Pod"
        || kind == "ScalingPolicy"
        || kind == "CustomResourceDefinition"
        || kind == "Event"
        || kind == "Lease"
        || kind == "Scale"
    {
        rvs.object(name, got, want);
        take_meta(got, want, "resourceVersion");
    }
    meta_set_aside(name, got, want, &kind);
    match kind.as_str() {
        "Deployment" => {
            // Status is the controllers' work: no controller runs here.
            got["status"].take();
            want["status"].take();
        }
        "CustomResourceDefinition" => {
            for c in want["status"]["conditions"]
                .as_array_mut()
                .into_iter()
                .flatten()
                .chain(
                    got["status"]["conditions"]
                        .as_array_mut()
                        .into_iter()
                        .flatten(),
                )
            {
                assert_time(name, &c["lastTransitionTime"].take());
            }
        }
        _ => {}
    }
}

/// The kind of a Table's rows, from the call's name.
fn kind_of_row(name: &str) -> String {
    if name.contains("deployments") {
        "Deployment".into()
    } else {
        "ScalingPolicy".into()
    }
}

/// The metadata a server makes up (names, uids, times) and what the stand-in keeps no record
/// of (managedFields, generation of built-in kinds).
fn meta_set_aside(name: &str, got: &mut Value, want: &mut Value, kind: &str) {
    let timed_managed_fields = |got: &mut Value, want: &mut Value| {
        for entry in want["metadata"]["managedFields"]
            .as_array_mut()
            .into_iter()
            .flatten()
            .chain(
                got["metadata"]["managedFields"]
                    .as_array_mut()
                    .into_iter()
                    .flatten(),
            )
        {
            assert!(entry["time"].take().is_string(), "{name}");
        }
    };
    match kind {
        "Event" => {
            let n = take_meta(got, want, "name");
            assert!(generated(n.as_str().unwrap(), "web-"), "{name}: {n}");
            let uid = take_meta(got, want, "uid");
            assert_eq!(uid.as_str().unwrap().len(), 36, "{name}: {uid}");
            assert_time(name, &take_meta(got, want, "creationTimestamp"));
            // The stand-in keeps no managedFields for Events.
            take_meta(got, want, "managedFields");
        }
        "Lease" => {
            take_meta(got, want, "uid");
            take_meta(got, want, "creationTimestamp");
            timed_managed_fields(got, want);
        }
        "Deployment" => {
            // Nor for Deployments, and no generation (no controller observes it).
            for key in ["managedFields", "generation"] {
                take_meta(got, want, key);
            }
        }
        "Pod" => {
            // Nor for Pods; a deletion's time is the server's.
            take_meta(got, want, "managedFields");
            if !want["metadata"]["deletionTimestamp"].is_null() {
                assert_time(name, &take_meta(got, want, "deletionTimestamp"));
            }
        }
        "ScalingPolicy" => {
            let uid = take_meta(got, want, "uid");
            assert_eq!(uid.as_str().unwrap().len(), 36, "{name}: {uid}");
            assert_time(name, &take_meta(got, want, "creationTimestamp"));
            timed_managed_fields(got, want);
            // Entries are ordered by their times (to the second) before manager and
            // subresource: with the times set aside, so is that part of the order.
            for entries in [got, want]
                .into_iter()
                .filter_map(|o| o["metadata"]["managedFields"].as_array_mut())
            {
                entries.sort_by_key(|e| {
                    ["operation", "manager", "subresource"].map(|k| e[k].to_string())
                });
            }
        }
        "CustomResourceDefinition" => {
            let uid = take_meta(got, want, "uid");
            assert_eq!(uid.as_str().unwrap().len(), 36, "{name}: {uid}");
            assert_time(name, &take_meta(got, want, "creationTimestamp"));
            // The stand-in keeps no managedFields for CRDs.
            take_meta(got, want, "managedFields");
        }
        _ => {}
    }
}

/// A watch stream as sent against the recorded one: the same events in order (for a
/// Deployment, without the recorded writes of its controllers, which change only its status),
/// and one bookmark where the recording has one or two.
fn compare_stream(name: &str, body: &str, want: &Value, rvs: &mut Versions, oldest: u64) {
    assert!(body.is_empty() || body.ends_with('\n'), "{name}: {body}");
    let got: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: {e}: {l}")))
        .collect();
    let is_bookmark = |e: &&Value| e["type"] == "BOOKMARK";
    let mut want_events: Vec<Value> = Vec::new();
    for e in want["stream"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !is_bookmark(e))
    {
        let status_only = e["object"]["kind"] == "Deployment"
            && want_events.last().is_some_and(|prev| {
                prev["object"]["spec"] == e["object"]["spec"]
                    && prev["object"]["metadata"]["annotations"]
                        == e["object"]["metadata"]["annotations"]
            });
        if !status_only {
            want_events.push(e.clone());
        }
    }
    let want_bookmarks: Vec<&Value> = want["stream"]
        .as_array()
        .unwrap()
        .iter()
        .filter(is_bookmark)
        .collect();
    let got_events: Vec<&Value> = got.iter().filter(|e| !is_bookmark(e)).collect();
    let got_bookmarks: Vec<&Value> = got.iter().filter(is_bookmark).collect();
    assert_eq!(
        got_events.len(),
        want_events.len(),
        "{name}: {got_events:#?}"
    );
    for (g, w) in got_events.into_iter().zip(want_events) {
        assert_eq!(g["type"], w["type"], "{name}");
        let (mut g, mut w) = (g["object"].clone(), w["object"].clone());
        set_aside(name, &mut g, &mut w, rvs, oldest);
        assert_eq!(g, w, "{name}");
    }
    assert!(
        got_bookmarks.len() <= want_bookmarks.len()
            && (got_bookmarks.is_empty() == want_bookmarks.is_empty()),
        "{name}: {} bookmarks where the recording has {}",
        got_bookmarks.len(),
        want_bookmarks.len()
    );
    for g in got_bookmarks {
        let (mut g, mut w) = (g["object"].clone(), want_bookmarks[0]["object"].clone());
        rvs.at_least(name, &g, &w);
        take_meta(&mut g, &mut w, "resourceVersion");
        assert_eq!(g, w, "{name}");
    }
}

/// What the recording script did while a watch ran, done to the stand-in at the same moments:
/// pods through the World (the stand-in serves no pod writes), the rest through its API.
async fn during(api: &KubeStandIn, call: &Value) {
    let start = tokio::time::Instant::now();
    let at = |ms: u64| tokio::time::sleep_until(start + Duration::from_millis(ms));
    let name = call["call"].as_str().unwrap();
    let patch = |path: &str, body: Value| {
        reqwest::Client::new()
            .patch(format!("{}{path}", api.url()))
            .bearer_auth("t")
            .header("user-agent", "Python-urllib/3.12")
            .header("content-type", "application/merge-patch+json")
            .body(body.to_string())
            .send()
    };
    const G: &str = "golden2";
    if name.starts_with("watch pods by selector from the list's resourceVersion") {
        let mut pod = call["response"]["stream"][0]["object"].clone();
        pod["metadata"]["resourceVersion"].take();
        at(310).await;
        api.world().create_pod(pod);
        at(630).await;
        api.world().patch_pod(
            G,
            "gp-4",
            &json!({"metadata": {"labels": {"tier": "watched"}}}),
        );
        at(930).await;
        api.world().delete_pod(G, "gp-4");
    } else if name.starts_with("watch of pods by selector while only a non-matching pod") {
        let mut other = pod("other-1", 1.0, None, "10.0.0.8");
        (other.namespace, other.app) = (G.into(), "other".into());
        at(520).await;
        api.world().create_pod(k::pod(&other));
    } else if name.starts_with("watch deployments while replicas change through /scale") {
        let scale = "/apis/apps/v1/namespaces/golden2/deployments/web/scale?fieldManager=setpoint";
        at(520).await;
        assert!(
            patch(scale, json!({"spec": {"replicas": 4}}))
                .await
                .unwrap()
                .status()
                .is_success()
        );
        at(3530).await;
        assert!(
            patch(scale, json!({"spec": {"replicas": 1}}))
                .await
                .unwrap()
                .status()
                .is_success()
        );
    } else if name.starts_with("watch scalingpolicies during a spec change") {
        let web = "/apis/setpoint.dev/v1alpha1/namespaces/golden2/scalingpolicies/web";
        at(310).await;
        assert!(
            patch(web, json!({"spec": {"mode": "recommend"}}))
                .await
                .unwrap()
                .status()
                .is_success()
        );
        at(620).await;
        let status = format!("{web}/status");
        assert!(
            patch(&status, json!({"status": {"desiredReplicas": 6}}))
                .await
                .unwrap()
                .status()
                .is_success()
        );
    }
}

/// The stand-in against the recorded answers of a real API server, where shared/ has them.
/// Only what differs between two servers is set aside: generated names, uids, times and
/// resourceVersions (which must be there and in the recorded order), and the parts that the
/// stand-in does not model (managedFields of built-in kinds, a Deployment's generation and
/// status, the controllers' writes in a watch). A watch's `resourceVersion` is the stand-in's
/// current one where the recording used the one its last list or watch ended at.
#[tokio::test]
async fn the_stand_in_answers_as_the_recorded_server() {
    let file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/k8s-api-answers.json");
    let Ok(text) = std::fs::read_to_string(&file) else {
        eprintln!(
            "SKIPPED the_stand_in_answers_as_the_recorded_server: {} not found",
            file.display()
        );
        return;
    };
    // The watches take their recorded timeoutSeconds: 30 s in all.
    support::bounded(Duration::from_secs(120), async move {
        let recorded: Value = serde_json::from_str(&text).unwrap();
        let calls = recorded["calls"].as_array().unwrap();
        for (set_aside, _) in SET_ASIDE {
            assert!(calls.iter().any(|c| c["call"] == *set_aside), "{set_aside}");
        }
        let mut deployment = Scalable::deployment(NS, "web", 2);
        deployment.status_replicas = 0;
        let api = KubeStandIn::start(World {
            scalables: vec![deployment],
            pod_metrics: None,
            token: Some("t".into()),
            // The recorded server is v1.24: no pods/resize.
            resize_unsupported: true,
            service_accounts: vec![k::rbac::ServiceAccount {
                namespace: "golden2".into(),
                name: "setpoint".into(),
                token: "sa-token".into(),
                rules: vec![k::rbac::Rule::new(
                    &["setpoint.dev"],
                    &["scalingpolicies"],
                    &["get", "list", "watch"],
                )],
            }],
            ..World::default()
        });
        let oldest = api.world().watch.oldest;
        let http = reqwest::Client::new();
        let mut checked = Vec::new();
        let mut rvs = Versions::default();
        for call in calls {
            let name = call["call"].as_str().unwrap();
            if let Some((_, why)) = SET_ASIDE.iter().find(|(n, _)| *n == name) {
                eprintln!("set aside: {name}: {why}");
                continue;
            }
            if name == "list pods by selector (no kubelet here: pods stay Pending)" {
                // The recorded pod, and the Deployment's second one, past the page's limit.
                let first = &call["response"]["items"][0];
                let mut second = first.clone();
                second["metadata"]["name"] = json!("web-68dddbb85-tx4vd");
                api.world().create_pod(first.clone());
                api.world().create_pod(second);
            }
            if name.starts_with("list pods by selector, first page") {
                // gp-1, gp-2 and gp-3, one on each recorded page.
                for page in calls.iter().filter(|c| {
                    c["call"]
                        .as_str()
                        .is_some_and(|n| n.starts_with("list pods by selector, "))
                }) {
                    api.world().create_pod(page["response"]["items"][0].clone());
                }
            }
            if name == "list deployments" {
                // Created by the recording script 4 s before, as the stand-in's World does.
                let mut web = Scalable::deployment("golden2", "web", 2);
                web.uid = "8bb7d380-6ba5-4496-a179-5f075f5990d9".into();
                web.created = "2026-12-01T13:58:04Z".into();
                web.containers =
                    call["response"]["items"][0]["spec"]["template"]["spec"]["containers"].clone();
                api.world().add_scalable(web);
            }
            let req = &call["request"];
            let mut path = req["path"].as_str().unwrap().to_string();
            if let Some((head, tail)) = path.split_once("resourceVersion=")
                && !tail.starts_with("1&")
            {
                let rest = tail.split_once('&').map_or("", |(_, r)| r);
                let now = api.world().resource_version;
                path = format!("{head}resourceVersion={now}&{rest}");
            }
            let method =
                reqwest::Method::from_bytes(req["method"].as_str().unwrap().as_bytes()).unwrap();
            let token = if name == "a wrong bearer token" {
                "wrong"
            } else if name.contains("as the ServiceAccount") {
                "sa-token"
            } else {
                "t"
            };
            // The recording was made with Python's urllib: the same User-Agent gives the same
            // default field manager.
            let mut r = http
                .request(method, format!("{}{path}", api.url()))
                .bearer_auth(token)
                .header("user-agent", "Python-urllib/3.12");
            if name.contains("as a Table") {
                r = r.header(
                    "accept",
                    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
                );
            }
            if let Some(ct) = req["content_type"].as_str() {
                let body = match &req["body"] {
                    Value::String(raw) => raw.clone(),
                    other => other.to_string(),
                };
                r = r.header("content-type", ct).body(body);
            }
            let ((status, content_type, body), ()) = tokio::join!(
                async {
                    let answer = r.send().await.unwrap();
                    let status = answer.status().as_u16();
                    let content_type = answer.headers()["content-type"]
                        .to_str()
                        .unwrap()
                        .to_string();
                    (status, content_type, answer.text().await.unwrap())
                },
                during(&api, call),
            );
            assert_eq!(
                status,
                call["status"].as_u64().unwrap() as u16,
                "{name}: {body}"
            );
            let want = &call["response"];
            if let Some(raw) = want["raw"].as_str() {
                assert_eq!(body, raw, "{name}");
                assert!(
                    content_type.starts_with("text/plain"),
                    "{name}: {content_type}"
                );
                checked.push(name);
                continue;
            }
            assert_eq!(content_type, "application/json", "{name}");
            if want["stream"].is_array() {
                compare_stream(name, &body, want, &mut rvs, oldest);
                checked.push(name);
                continue;
            }
            let mut got: Value = serde_json::from_str(&body).unwrap();
            let mut want = want.clone();
            set_aside(name, &mut got, &mut want, &mut rvs, oldest);
            assert_eq!(got, want, "{name}");
            checked.push(name);
        }
        assert_eq!(
            checked.len(),
            calls.len() - SET_ASIDE.len(),
            "every recorded call but those set aside: {checked:?}"
        );
        // What took.
        let w = api.world();
        assert_eq!(w.scalables[0].replicas, 5);
        assert_eq!(
            w.scalables[0].annotations["setpoint.dev/last-scale"],
            "2026-11-21T00:00:00Z"
        );
        assert_eq!(w.events.len(), 1);
        assert_eq!(w.events[0]["note"], "2 -> 5");
        assert_eq!(w.lease_holder(NS, "setpoint").as_deref(), Some("a"));
        assert_eq!(w.scalables[1].replicas, 1);
        assert_eq!(w.custom_objects.len(), 3);
    })
    .await;
}

/// One raw call to the stand-in: (status, body as JSON).
async fn call(
    api: &KubeStandIn,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let mut r = reqwest::Client::new()
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{path}", api.url()),
        )
        .bearer_auth("s3cr3t-token");
    if let Some(ct) = content_type {
        r = r.header("content-type", ct).body(body.to_string());
    }
    let answer = r.send().await.unwrap();
    let status = answer.status().as_u16();
    let text = answer.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| json!(text)),
    )
}

const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/demo/leases";
const APPLY: Option<&str> = Some("application/apply-patch+yaml");
const MERGE: Option<&str> = Some("application/merge-patch+json");

#[tokio::test]
async fn leases_answer_as_a_real_server_does() {
    support::bounded(TEST_LIMIT, async {
        let api = KubeStandIn::start(world());
        let one = format!("{LEASES}/setpoint");
        let (s, b) = call(&api, "GET", &one, None, "").await;
        assert_eq!(s, 404);
        assert_eq!(
            b["message"],
            "leases.coordination.k8s.io \"setpoint\" not found"
        );
        assert_eq!(
            b["details"],
            json!({"name": "setpoint", "group": "coordination.k8s.io", "kind": "leases"})
        );

        let lease = r#"{"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "setpoint"}}"#;
        let (s, b) = call(&api, "POST", LEASES, Some("application/json"), lease).await;
        assert_eq!(s, 201, "{b}");
        assert_eq!(b["spec"], json!({}), "a Lease always has a spec");
        let created_rv = b["metadata"]["resourceVersion"].as_str().unwrap().to_string();
        let (s, b) = call(&api, "POST", LEASES, Some("application/json"), lease).await;
        assert_eq!((s, b["reason"].as_str()), (409, Some("AlreadyExists")));
        assert_eq!(
            b["message"],
            "leases.coordination.k8s.io \"setpoint\" already exists"
        );

        // Leases allow no unconditional update.
        let (s, b) = call(&api, "PUT", &one, Some("application/json"), lease).await;
        assert_eq!(s, 422, "{b}");
        assert_eq!(
            b["message"],
            "leases.coordination.k8s.io \"setpoint\" is invalid: metadata.resourceVersion: \
             Invalid value: 0x0: must be specified for an update"
        );
        let current = format!(
            r#"{{"metadata": {{"name": "setpoint", "resourceVersion": "{created_rv}"}}, "spec": {{"leaseDurationSeconds": 15}}}}"#
        );
        let (s, b) = call(&api, "PUT", &one, Some("application/json"), &current).await;
        assert_eq!(s, 200, "{b}");
        assert_ne!(b["metadata"]["resourceVersion"], created_rv.as_str());
        let (s, _) = call(&api, "PUT", &one, Some("application/json"), &current).await;
        assert_eq!(s, 409, "the resourceVersion is stale now");

        // Server-side apply: one holder at a time, unless forced.
        let apply = |holder: &str| {
            format!(r#"{{"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "spec": {{"holderIdentity": "{holder}", "leaseDurationSeconds": 15}}}}"#)
        };
        let (s, b) = call(&api, "PATCH", &one, APPLY, &apply("a")).await;
        assert_eq!(s, 422, "no fieldManager: {b}");
        let (s, b) = call(&api, "PATCH", &format!("{one}?fieldManager=a"), APPLY, &apply("a")).await;
        assert_eq!(s, 200, "{b}");
        let (s, b) = call(&api, "PATCH", &format!("{one}?fieldManager=b"), APPLY, &apply("b")).await;
        assert_eq!(s, 409, "{b}");
        assert_eq!(b["reason"], "Conflict");
        assert_eq!(
            b["message"],
            "Apply failed with 1 conflict: conflict with \"a\": .spec.holderIdentity"
        );
        assert_eq!(
            b["details"]["causes"],
            json!([{"reason": "FieldManagerConflict", "message": "conflict with \"a\"", "field": ".spec.holderIdentity"}])
        );
        // A merge patch is an update: it takes the field over, and a null removes it.
        let release = r#"{"spec": {"holderIdentity": null}}"#;
        let (s, b) = call(&api, "PATCH", &format!("{one}?fieldManager=a"), MERGE, release).await;
        assert_eq!(s, 200, "{b}");
        assert!(b["spec"].get("holderIdentity").is_none(), "{b}");
        let (s, b) = call(&api, "PATCH", &format!("{one}?fieldManager=b"), APPLY, &apply("b")).await;
        assert_eq!(s, 200, "a released field is free: {b}");
        assert_eq!(api.world().lease_holder(NS, "setpoint").as_deref(), Some("b"));
        let (s, b) = call(&api, "PATCH", &format!("{one}?fieldManager=c&force=true"), APPLY, &apply("c")).await;
        assert_eq!((s, &b["spec"]["holderIdentity"]), (200, &json!("c")), "{b}");
        let managers: Vec<&str> = b["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert!(managers.contains(&"c"), "{managers:?}");
        let (s, _) = call(&api, "PATCH", &format!("{one}?fieldManager=c&force=true"), MERGE, "{}").await;
        assert_eq!(s, 422, "force only goes with an apply");

        // Another client takes it; a no-op patch writes nothing.
        let before = api.world().resource_version;
        assert!(api.world().take_lease(NS, "setpoint", "intruder", 30));
        assert_eq!(api.world().resource_version, before + 1);
        let (s, b) = call(&api, "PATCH", &format!("{one}?fieldManager=x"), MERGE, r#"{"spec": {"leaseDurationSeconds": 30}}"#).await;
        assert_eq!(s, 200);
        assert_eq!(b["spec"]["holderIdentity"], "intruder");
        assert_eq!(api.world().resource_version, before + 1, "nothing changed");

        let (s, b) = call(&api, "DELETE", &one, None, "").await;
        assert_eq!((s, &b["status"]), (200, &json!("Success")), "{b}");
        assert_eq!(b["details"]["kind"], "leases");
        assert_eq!(call(&api, "DELETE", &one, None, "").await.0, 404);
        assert!(api.world().leases.is_empty());
        // An apply creates what is missing.
        let (s, _) = call(&api, "PATCH", &format!("{one}?fieldManager=a"), APPLY, &apply("a")).await;
        assert_eq!(s, 201);
        let (s, b) = call(&api, "GET", LEASES, None, "").await;
        assert_eq!((s, b["kind"].as_str()), (200, Some("LeaseList")));
        assert_eq!(b["items"][0]["spec"]["holderIdentity"], "a");
    })
    .await;
}

#[tokio::test]
async fn events_objects_and_what_was_sent() {
    support::bounded(TEST_LIMIT, async {
        let api = KubeStandIn::start(world());
        let events = "/apis/events.k8s.io/v1/namespaces/demo/events";
        let event = r#"{"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"generateName": "web-"},
            "eventTime": "2026-11-21T00:00:00.000000Z", "reportingController": "setpoint.dev/setpoint",
            "reportingInstance": "setpoint-0", "action": "Scale", "reason": "ScaledUp", "type": "Normal",
            "regarding": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": "demo"},
            "note": "3 -> 4"}"#;
        let (s, b) = call(&api, "POST", events, Some("application/json"), event).await;
        assert_eq!(s, 201, "{b}");
        let name = b["metadata"]["name"].as_str().unwrap().to_string();
        assert!(generated(&name, "web-"), "{name}");
        let (s, b) = call(&api, "GET", events, None, "").await;
        assert_eq!((s, b["kind"].as_str()), (200, Some("EventList")));
        assert_eq!(b["items"][0]["metadata"]["name"], name.as_str());
        assert_eq!(b["items"][0]["note"], "3 -> 4");
        assert_eq!(api.world().events.len(), 1);

        // The object and its scale share a resourceVersion.
        let web = "/apis/apps/v1/namespaces/demo/deployments/web";
        let (s, b) = call(&api, "GET", web, None, "").await;
        assert_eq!(s, 200);
        assert_eq!(b["kind"], "Deployment");
        assert_eq!(b["spec"]["selector"]["matchLabels"], json!({"app": "web"}));
        assert_eq!(b["spec"]["template"]["spec"]["containers"][0]["name"], "app");
        let rv0 = b["metadata"]["resourceVersion"].clone();
        let (s, b) = call(&api, "PATCH", &format!("{web}/scale"), MERGE, r#"{"spec": {"replicas": 4}}"#).await;
        assert_eq!(s, 200);
        let rv1 = b["metadata"]["resourceVersion"].clone();
        assert_ne!(rv0, rv1);
        let (_, b) = call(&api, "GET", web, None, "").await;
        assert_eq!((b["spec"]["replicas"].as_i64(), &b["metadata"]["resourceVersion"]), (Some(4), &rv1));

        let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  annotations:\n    setpoint.dev/state: '{\"a\":1}'\n";
        let (s, b) = call(&api, "PATCH", web, APPLY, yaml).await;
        assert_eq!(s, 422);
        assert_eq!(
            b["message"],
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
        );
        let (s, b) = call(&api, "PATCH", &format!("{web}?fieldManager=setpoint&force=true"), APPLY, yaml).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["metadata"]["annotations"]["setpoint.dev/state"], "{\"a\":1}");
        let rv2 = b["metadata"]["resourceVersion"].clone();
        assert_ne!(rv1, rv2);
        let (_, b) = call(&api, "GET", &format!("{web}/scale"), None, "").await;
        assert_eq!(b["metadata"]["resourceVersion"], rv2);

        let (s, b) = call(&api, "PATCH", web, MERGE, r#"{"metadata": {"annotations": {"setpoint.dev/state": null}}}"#).await;
        assert_eq!(s, 200);
        assert!(b["metadata"]["annotations"].get("setpoint.dev/state").is_none(), "{b}");
        assert_eq!(
            b["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "1",
            "the other annotations stay"
        );
        let (s, _) = call(&api, "PATCH", web, MERGE, r#"{"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 9}}"#).await;
        assert_eq!(s, 409);
        assert_eq!(call(&api, "GET", "/apis/apps/v1/namespaces/demo/deployments/nope", None, "").await.0, 404);

        // What was sent is recorded.
        let sent = api.requests();
        let apply = sent
            .iter()
            .find(|r| r.uri.contains("force=true"))
            .unwrap();
        assert_eq!(apply.content_type.as_deref(), APPLY);
        assert_eq!(apply.body, yaml);
        assert!(apply.uri.contains("fieldManager=setpoint"));
    })
    .await;
}

#[tokio::test]
async fn an_injected_403_reads_as_rbac_s() {
    support::bounded(TEST_LIMIT, async {
        let api = KubeStandIn::start(world());
        api.world().faults.push_back(k::Fault {
            method: None,
            path_contains: "/leases".into(),
            status: Some(403),
            delay: Duration::ZERO,
            times: 2,
        });
        let (s, b) = call(&api, "PATCH", &format!("{LEASES}/setpoint"), MERGE, "{}").await;
        assert_eq!(s, 403);
        assert_eq!(
            b["message"],
            "leases.coordination.k8s.io \"setpoint\" is forbidden: User \
             \"system:serviceaccount:demo:setpoint\" cannot patch resource \"leases\" in API \
             group \"coordination.k8s.io\" in the namespace \"demo\""
        );
        let (_, b) = call(&api, "GET", LEASES, None, "").await;
        assert!(
            b["message"]
                .as_str()
                .unwrap()
                .starts_with("leases.coordination.k8s.io is forbidden: User")
        );
        assert!(
            b["message"]
                .as_str()
                .unwrap()
                .contains("cannot list resource \"leases\"")
        );
    })
    .await;
}

fn setpoint(args: &[&str], kubeconfig: &std::path::Path) -> Output {
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

const POLICY_HEAD: &str = "\
apiVersion: setpoint.dev/v1alpha1
kind: ScalingPolicy
metadata: {name: web, namespace: demo}
spec:
  target: {kind: Deployment, name: web}
  interval: 1s
  horizontal:
    replicas: {min: 1, max: 20}
    metrics:
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recommend_reads_the_cluster_and_metrics_k8s_io() {
    support::bounded(TEST_LIMIT, async {
        let api = KubeStandIn::start(world());
        let dir = TempDir::new("recommend");
        let kubeconfig = api.kubeconfig(&dir, "elsewhere");
        let policy = dir.write(
            "p.yaml",
            format!(
                "{POLICY_HEAD}      - {{name: cpu, resource: {{name: cpu}}, utilization: 0.6}}\n"
            ),
        );
        let run = |format: &'static str| {
            let (p, k) = (policy.clone(), kubeconfig.clone());
            tokio::task::spawn_blocking(move || {
                setpoint(
                    &[
                        "recommend",
                        "--policy",
                        p.to_str().unwrap(),
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
        // Two ready pods at 100 % of their request, one starting (its CPU is start-up work):
        // ratio 1.67 recomputed with the starting pod at 0 is 1.11 over 3 pods → 4.
        assert_eq!(v["replicasFrom"], "cluster");
        assert_eq!(
            v["namespace"], "demo",
            "the policy's namespace wins over the context's"
        );
        assert_eq!(v["decision"]["currentReplicas"], 3);
        assert_eq!(v["decision"]["explanation"]["readyReplicas"], 2);
        assert_eq!(v["decision"]["desiredReplicas"], 4, "{v:#}");
        let m = &v["metrics"][0];
        assert_eq!(m["source"], "metrics.k8s.io cpu");
        let note = m["note"].as_str().unwrap();
        assert!(
            note.starts_with("3 pods: 2 with a metric, 1 unready"),
            "{note}"
        );
        assert!(
            note.contains("unready counted at 0 on a scale-up"),
            "{note}"
        );
        assert_eq!(m["pods"][2]["group"], "unready");
        assert_eq!(m["pods"][2]["reason"], "initializing: not ready");

        let out = run("text").await.unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let s = text(&out.stdout);
        for want in [
            "policy web: Deployment web in namespace demo",
            "replicas: 3 current, 2 ready (from the cluster)",
            "cpu = 1\n    from metrics.k8s.io cpu\n    3 pods: 2 with a metric, 1 unready",
            "decision: scale up 3→4: cpu 1 vs 0.600 → 4",
        ] {
            assert!(s.contains(want), "{want:?} missing in\n{s}");
        }
        // Read-only: no PATCH was sent.
        assert!(api.requests().iter().all(|r| r.method == "GET"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recommend_turns_scraped_counters_into_rates() {
    support::bounded(TEST_LIMIT, async {
        // Two pods on two loopback addresses with the same port, each counting 50 requests/s.
        let started = Instant::now();
        let counter = move |_: &support::http::Request| {
            let n = 1000.0 + 50.0 * started.elapsed().as_secs_f64();
            Response::text(
                200,
                format!(
                    "# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\n\
                     http_requests_total{{code=\"200\"}} {n}\nhttp_requests_total{{code=\"500\"}} 3\n"
                ),
            )
        };
        let a = HttpServer::start_on("127.0.0.2:0", counter);
        let port = a.addr().port();
        let b = HttpServer::start_on(&format!("127.0.0.3:{port}"), counter);
        let mut w = world();
        w.pod_metrics = None;
        w.scalables[0].replicas = 2;
        w.pods = vec![
            k::pod(&pod("web-a", 3600.0, Some((true, 3500.0)), "127.0.0.2")),
            k::pod(&pod("web-b", 3600.0, Some((true, 3500.0)), "127.0.0.3")),
        ];
        let api = KubeStandIn::start(w);
        let dir = TempDir::new("scrape");
        let kubeconfig = api.kubeconfig(&dir, NS);
        let policy = dir.write(
            "p.yaml",
            format!(
                "{POLICY_HEAD}      - name: rps\n        pods: {{metric: http_requests_total, port: {port}, labels: {{code: \"200\"}}}}\n        targetPerReplica: 40\n"
            ),
        );
        let out = tokio::task::spawn_blocking(move || {
            setpoint(&["recommend", "--policy", policy.to_str().unwrap(), "--output", "json"], &kubeconfig)
        })
        .await
        .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let rate = v["metrics"][0]["sample"]["value"].as_f64().unwrap_or(f64::NAN);
        assert!((rate - 100.0).abs() < 10.0, "two pods at 50/s: {v:#}");
        assert_eq!(v["decision"]["desiredReplicas"], 3, "{v:#}");
        assert!(a.requests().len() >= 2 && b.requests().len() >= 2, "two scrapes each");
    })
    .await;
}
