//! The daemon's watch cache (`KubeCluster::with_cache`) against the Kubernetes API stand-in,
//! through `tick::run` as the daemon's worker calls it: a policy holds until its watches have
//! synced; in steady state a tick makes no API request but the metrics.k8s.io read (counted
//! from the stand-in's request log); a pod created through the API reaches the next decision
//! through the watch; a watch broken mid-run (an API server restart, then pod lists that fail)
//! holds the policy with no scale-down, and it goes on after the relist; so does a watch
//! answered with 410 Gone (a resourceVersion the server's watch cache no longer holds), whose
//! relist shows what no event announced. Everything listens on 127.0.0.1 and is bounded in
//! time.

mod support;

use setpoint::cluster::{Cluster, ClusterError, KubeCluster};
use setpoint::policy::{self, Policy};
use setpoint::tick::{self, Hold, TickOutcome, TickState};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use support::TempDir;
use support::kube::{self as k, KubeStandIn, Scalable, World};
use tokio::sync::watch;

const NS: &str = "demo";
const TEST_LIMIT: Duration = Duration::from_secs(60);

/// CPU utilization of requests (500m each), target 50 %, 1 to 10 replicas, scale-down
/// without stabilization (so that a wrong scale-down would show at once).
fn policy() -> Policy {
    let text = "apiVersion: setpoint.dev/v1alpha1\nkind: ScalingPolicy\nmetadata: {name: web}\n\
         spec:\n  target: {kind: Deployment, name: web}\n  interval: 15s\n  \
         horizontal:\n    replicas: {min: 1, max: 10}\n    metrics:\n      \
         - {name: cpu, resource: {name: cpu}, utilization: 0.5}\n    \
         scaleDown: {stabilization: 0s}\n";
    policy::parse(text, Path::new("web.yaml")).unwrap()
}

/// metrics.k8s.io usage of pod `name`: `cpu` now.
fn usage(name: &str, cpu: &str) -> serde_json::Value {
    let at = k::rfc3339(support::unix_now() - 5.0);
    k::pod_metrics(NS, name, "web", &at, "30s", cpu)
}

/// Deployment `web` at 2 replicas, its two pods at 250m of 500m (on target: no change).
fn world() -> World {
    World {
        scalables: vec![Scalable::deployment(NS, "web", 2)],
        pods: vec![
            k::ready_pod(NS, "web-0", "web"),
            k::ready_pod(NS, "web-1", "web"),
        ],
        pod_metrics: Some(vec![usage("web-0", "250m"), usage("web-1", "250m")]),
        ..World::default()
    }
}

/// The stand-in, and a cluster adapter reading from a watch cache of it (stopped by dropping
/// the returned sender).
async fn cached(dir: &TempDir) -> (Arc<KubeStandIn>, KubeCluster, watch::Sender<bool>) {
    let api = Arc::new(KubeStandIn::start(world()));
    let (stop, stopped) = watch::channel(false);
    let cluster = api.cluster(dir, NS).await.with_cache(stopped);
    (api, cluster, stop)
}

async fn tick(c: &KubeCluster, p: &Policy, st: &mut TickState) -> TickOutcome {
    tick::run(Some(c), p, st, Hold::Leading, SystemTime::now()).await
}

/// Waits until `ok` holds (every 20 ms, bounded).
async fn until(what: &str, mut ok: impl AsyncFnMut() -> bool) {
    let start = std::time::Instant::now();
    while !ok().await {
        assert!(start.elapsed() < Duration::from_secs(20), "not {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the pods and the target's kind have synced; a daemon's tick state.
async fn synced(c: &KubeCluster, p: &Policy) -> TickState {
    until("synced", async || {
        c.pods("app=web").await.is_ok() && c.scale(&p.target).await.is_ok()
    })
    .await;
    TickState::daemon(p, None, None).unwrap()
}

fn scale_patches(api: &KubeStandIn) -> usize {
    api.requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.uri.contains("/scale"))
        .count()
}

/// Requests since `from` (an index of the log) other than metrics.k8s.io reads.
fn api_requests_since(api: &KubeStandIn, from: usize) -> Vec<String> {
    api.requests()[from..]
        .iter()
        .filter(|r| !r.uri.contains("/apis/metrics.k8s.io/"))
        .map(|r| format!("{} {}", r.method, r.uri))
        .collect()
}

fn not_synced(out: &TickOutcome) -> Option<String> {
    match &out.error {
        Some(e @ ClusterError::NotSynced { .. }) => Some(e.to_string()),
        _ => None,
    }
}

/// A synced cache on [`world`] whose first tick decided: the stand-in, the cache (its watches
/// stop with the sender), the policy and its tick state.
async fn running(
    dir: &TempDir,
) -> (
    Arc<KubeStandIn>,
    KubeCluster,
    watch::Sender<bool>,
    Policy,
    TickState,
) {
    let (api, c, stop) = cached(dir).await;
    let p = policy();
    let mut st = synced(&c, &p).await;
    let out = tick(&c, &p, &mut st).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    (api, c, stop, p, st)
}

/// Waits until the pod watch is broken; then `ticks` ticks, `pause` apart, each holding on
/// [`ClusterError::NotSynced`] (its reason saying all of `says`) with no decision and no
/// patch.
async fn holds(
    api: &KubeStandIn,
    c: &KubeCluster,
    p: &Policy,
    st: &mut TickState,
    ticks: usize,
    pause: Duration,
    says: &[&str],
) {
    until("the pod watch broken", async || {
        c.pods("app=web")
            .await
            .is_err_and(|e| matches!(e, ClusterError::NotSynced { .. }))
    })
    .await;
    let patches = scale_patches(api);
    for _ in 0..ticks {
        let out = tick(c, p, st).await;
        let why = not_synced(&out).unwrap_or_else(|| panic!("{:?}", out.error));
        assert!(says.iter().all(|s| why.contains(s)), "{why}");
        assert!(out.decision.is_none() && out.patched.is_none());
        tokio::time::sleep(pause).await;
    }
    assert_eq!(scale_patches(api), patches, "no scale-down while broken");
    assert_eq!(api.world().scalables[0].replicas, 2);
}

/// After the relist: the next tick scales down to 1 on the low usage (seeing `ready` pods).
async fn goes_on(c: &KubeCluster, p: &Policy, st: &mut TickState, ready: u32) {
    synced(c, p).await;
    let out = tick(c, p, st).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.target.ready, ready);
    let d = out.decision.unwrap();
    assert_eq!((d.current_replicas, d.desired_replicas), (2, 1), "{d}");
}

#[tokio::test]
async fn a_policy_holds_until_its_watches_synced_then_a_tick_reads_no_api_but_metrics() {
    support::bounded(TEST_LIMIT, async {
        let dir = TempDir::new("watch-cache");
        let (api, c, _stop) = cached(&dir).await;
        let p = policy();
        let mut st = TickState::daemon(&p, None, None).unwrap();
        // The reflectors have not run yet: the tick holds, and says why.
        let out = tick(&c, &p, &mut st).await;
        let why = not_synced(&out).unwrap_or_else(|| panic!("{:?}", out.error));
        assert!(
            why.contains("waiting for the watch of deployments.apps in namespace demo to sync"),
            "{why}"
        );
        assert!(out.decision.is_none() && out.patched.is_none());
        synced(&c, &p).await;

        // Steady state: ten ticks, no request but metrics.k8s.io's.
        let from = api.requests().len();
        for _ in 0..10 {
            let out = tick(&c, &p, &mut st).await;
            assert!(out.error.is_none(), "{:?}", out.error);
            let d = out.decision.as_ref().unwrap();
            assert_eq!((d.current_replicas, d.desired_replicas), (2, 2), "{d}");
            assert_eq!(out.target.ready, 2);
        }
        assert_eq!(api_requests_since(&api, from), Vec::<String>::new());
        let metrics = api.requests().len() - from;
        assert_eq!(metrics, 10, "one metrics.k8s.io read per tick");
        // The scale read from the cache is the /scale's: spec, status, selector, version.
        let scale = c.scale(&p.target).await.unwrap();
        assert_eq!(scale.spec_replicas, 2);
        assert_eq!(scale.status_replicas, 2);
        assert_eq!(scale.selector.as_deref(), Some("app=web"));
        let version = api.world().scalables[0].resource_version.to_string();
        assert_eq!(scale.resource_version, Some(version));
    })
    .await;
}

#[tokio::test]
async fn a_pod_change_seen_through_the_watch_changes_the_next_decision() {
    support::bounded(TEST_LIMIT, async {
        let dir = TempDir::new("watch-cache");
        let (api, c, _stop) = cached(&dir).await;
        let p = policy();
        let mut st = synced(&c, &p).await;
        let out = tick(&c, &p, &mut st).await;
        let d = out.decision.unwrap();
        assert_eq!((d.current_replicas, d.desired_replicas), (2, 2), "{d}");

        // A third pod, busy (1 core of 500m): (250 + 250 + 1000) / 3 = 500m, 100 % of the
        // request, twice the target: 3 pods × 2 → 6.
        {
            let mut w = api.world();
            w.create_pod(k::ready_pod(NS, "web-2", "web"));
            w.pod_metrics.as_mut().unwrap().push(usage("web-2", "1"));
        }
        until("the new pod in the cache", async || {
            c.pods("app=web").await.is_ok_and(|p| p.len() == 3)
        })
        .await;
        let out = tick(&c, &p, &mut st).await;
        assert!(out.error.is_none(), "{:?}", out.error);
        assert_eq!(out.target.ready, 3);
        let d = out.decision.unwrap();
        assert_eq!((d.current_replicas, d.desired_replicas), (2, 6), "{d}");
        assert_eq!(out.patched.map(|s| s.spec_replicas), Some(6));
        // Another app's pod is not the target's.
        api.world().create_pod(k::ready_pod(NS, "db-0", "db"));
        let from = api.requests().len();
        until("the scale-up in the cache", async || {
            c.scale(&p.target).await.is_ok_and(|s| s.spec_replicas == 6)
        })
        .await;
        assert_eq!(c.pods("app=web").await.unwrap().len(), 3);
        assert_eq!(c.pods("app in (web,db)").await.unwrap().len(), 4);
        assert_eq!(api_requests_since(&api, from), Vec::<String>::new());
    })
    .await;
}

#[tokio::test]
async fn a_broken_watch_holds_without_scaling_down_and_the_policy_goes_on_after_the_relist() {
    support::bounded(TEST_LIMIT, async {
        let dir = TempDir::new("watch-cache");
        let (api, c, _stop, p, mut st) = running(&dir).await;

        // The API server restarts; when it is back, pod lists fail (a watch that cannot
        // relist), while the pods' usage drops to almost nothing (1 replica's worth).
        {
            let mut w = api.world();
            w.faults.push_back(k::Fault {
                method: Some("GET".into()),
                path_contains: format!("/api/v1/namespaces/{NS}/pods"),
                status: Some(500),
                delay: Duration::ZERO,
                times: 100_000,
            });
            w.pod_metrics = Some(vec![usage("web-0", "10m"), usage("web-1", "10m")]);
        }
        let restarting = api.clone();
        tokio::task::spawn_blocking(move || {
            restarting.restart(Duration::from_millis(500), Duration::ZERO)
        })
        .await
        .unwrap();
        let says = ["to sync again (it failed at", "relisting"];
        holds(&api, &c, &p, &mut st, 5, Duration::from_millis(200), &says).await;

        // The lists work again: the watch relists, and the policy goes on from what it sees.
        api.world().faults.clear();
        goes_on(&c, &p, &mut st, 2).await;
    })
    .await;
}

#[tokio::test]
async fn a_watch_answered_410_gone_relists_holding_without_scaling_down_until_it_has() {
    support::bounded(TEST_LIMIT, async {
        let dir = TempDir::new("watch-cache");
        let (api, c, _stop, p, mut st) = running(&dir).await;

        // A write to the Deployment moves the cluster's resourceVersion past the one the pod
        // watch has seen (its list's); the Deployment's watch sees the write.
        let version = {
            let mut w = api.world();
            w.update_scalable(NS, "web", |_| {});
            w.resource_version
        };
        until("the Deployment's write in the cache", async || {
            c.scale(&p.target)
                .await
                .is_ok_and(|s| s.resource_version == Some(version.to_string()))
        })
        .await;
        // The server's watch cache now reaches back only to that write (as after a restart),
        // and its watches end: the pod watch is made again from its older resourceVersion and
        // answered with the 410 `Expired` ERROR event. That watch and the relist after it take
        // 2 s each to be answered; meanwhile a pod appears that no event announces (only a
        // list shows it), and the usage drops to almost nothing (1 replica's worth).
        let slow = Duration::from_secs(2);
        {
            let mut w = api.world();
            w.faults.push_back(k::Fault {
                method: Some("GET".into()),
                path_contains: format!("/api/v1/namespaces/{NS}/pods"),
                status: None,
                delay: slow,
                times: 2,
            });
            w.watch.oldest = w.resource_version;
            w.end_watches();
            w.pods.push(k::ready_pod(NS, "web-2", "web"));
            w.pod_metrics = Some(vec![
                usage("web-0", "10m"),
                usage("web-1", "10m"),
                usage("web-2", "10m"),
            ]);
        }
        let says = [
            "waiting for the watch of pods in namespace demo to sync again",
            "too old resource version",
            "relisting",
        ];
        holds(&api, &c, &p, &mut st, 3, Duration::from_millis(100), &says).await;

        // The relist is complete: the reads answer from it, the unannounced pod included.
        goes_on(&c, &p, &mut st, 3).await;
        let mut names: Vec<String> = (c.pods("app=web").await.unwrap().into_iter())
            .map(|p| p.name)
            .collect();
        names.sort();
        assert_eq!(names, ["web-0", "web-1", "web-2"]);
        let lists = api
            .requests()
            .iter()
            .filter(|r| {
                r.uri.starts_with(&format!("/api/v1/namespaces/{NS}/pods?"))
                    && !r.uri.contains("watch=")
            })
            .count();
        assert_eq!(lists, 2, "the first list, and one relist");
    })
    .await;
}
