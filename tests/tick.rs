//! The tick's rules, in-process: an in-memory [`Cluster`] (target state, pods, and
//! metrics.k8s.io usage, scripted per call: the metrics source of these tests) and tokio's
//! paused clock. No server, no HTTP.
//!
//! - a 409 Conflict reads the target again and decides again, and the governor counts one
//!   action;
//! - missing data never scales;
//! - mode and Lease hold the tick, and a held decision leaves no action in the governor's memory;
//! - the vertical act step falls back to a template patch after a refused in-place resize;
//! - `recommend`'s path and the daemon's path give the same explanation for the same observation;
//! - a file policy reads the pause annotations on its target at every tick, an object policy its
//!   own, and a target switched off at zero stays there.

use setpoint::cluster::{Cluster, ClusterError, ContainerUsage, EventNote, PodUsage, ScaleState};
use setpoint::engine::pod::{Amounts, ContainerResources, Pod, Readiness};
use setpoint::engine::quantity::MIB;
use setpoint::engine::vertical::Recommended;
use setpoint::engine::vertical_plan::{
    ContainerChange, ContainerRecommendation, PlanState, VerticalAction,
};
use setpoint::policy::{self, Policy, TargetRef};
use setpoint::tick::vertical::{Applied, apply_vertical};
use setpoint::tick::{self, Hold, TickOutcome, TickState, Why};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The tick's wall clock: fixed, so that pod ages and decision times are the same every run.
const NOW: f64 = 1_800_000_000.0;

fn wall() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs_f64(NOW)
}

/// A Deployment `web` with two ready pods and a scripted metrics.k8s.io.
struct MemoryCluster {
    scale: RefCell<ScaleState>,
    pods: RefCell<Vec<Pod>>,
    /// Each `pod_metrics` call takes the next answer; the last one stays.
    usage: RefCell<VecDeque<Result<Vec<PodUsage>, u16>>>,
    /// `patch_scale` answers 409 this many more times, and each time the target "changes":
    /// someone else sets its replicas to `conflict_replicas`.
    conflicts: Cell<u32>,
    conflict_replicas: u32,
    /// `resize_pod` answers with this 422 message, when set.
    refuse_resize: Option<String>,
    /// What was asked: `scale`, `pods`, `patch_scale 4 rv=7`, `resize web-a`, `patch_template`.
    calls: RefCell<Vec<String>>,
    annotations: RefCell<BTreeMap<String, String>>,
}

impl MemoryCluster {
    fn new(replicas: u32, cores_per_pod: f64) -> MemoryCluster {
        let pods = vec![pod("web-a"), pod("web-b")];
        let usage = pods.iter().map(|p| usage(&p.name, cores_per_pod)).collect();
        MemoryCluster {
            scale: RefCell::new(ScaleState {
                spec_replicas: replicas,
                status_replicas: replicas,
                selector: Some("app=web".into()),
                resource_version: Some("1".into()),
            }),
            pods: RefCell::new(pods),
            usage: RefCell::new(VecDeque::from([Ok(usage)])),
            conflicts: Cell::new(0),
            conflict_replicas: replicas,
            refuse_resize: None,
            calls: RefCell::new(Vec::new()),
            annotations: RefCell::new(BTreeMap::new()),
        }
    }

    fn calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }

    fn patches(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|c| c.starts_with("patch"))
            .collect()
    }

    fn call(&self, c: String) {
        self.calls.borrow_mut().push(c);
    }
}

/// A running, ready pod (ready for 10 minutes) with one container `app` requesting 1 core.
fn pod(name: &str) -> Pod {
    Pod {
        name: name.into(),
        phase: "Running".into(),
        start_time: Some(NOW - 700.0),
        ready: Some(Readiness {
            ready: true,
            since: Some(NOW - 600.0),
        }),
        ip: Some("10.0.0.1".into()),
        containers: vec![ContainerResources {
            name: "app".into(),
            requests: Amounts {
                cpu: Some(1.0),
                memory: Some(64.0 * MIB),
            },
            ..ContainerResources::default()
        }],
        ..Pod::default()
    }
}

fn usage(pod: &str, cores: f64) -> PodUsage {
    PodUsage {
        pod: pod.into(),
        timestamp: NOW - 10.0,
        window: 30.0,
        containers: vec![ContainerUsage {
            name: "app".into(),
            cpu: Some(cores),
            memory: Some(50.0 * MIB),
        }],
    }
}

fn api(what: &str, code: u16, reason: &str, message: &str) -> ClusterError {
    ClusterError::Api {
        what: what.into(),
        code,
        reason: reason.into(),
        message: message.into(),
    }
}

impl Cluster for MemoryCluster {
    fn namespace(&self) -> &str {
        "demo"
    }

    async fn scale(&self, _target: &TargetRef) -> Result<ScaleState, ClusterError> {
        self.call("scale".into());
        Ok(self.scale.borrow().clone())
    }

    async fn pods(&self, _selector: &str) -> Result<Vec<Pod>, ClusterError> {
        self.call("pods".into());
        Ok(self.pods.borrow().clone())
    }

    async fn pod_metrics(&self, _selector: &str) -> Result<Vec<PodUsage>, ClusterError> {
        self.call("pod_metrics".into());
        let mut script = self.usage.borrow_mut();
        let answer = if script.len() > 1 {
            script.pop_front().expect("not empty")
        } else {
            script.front().cloned().expect("a scripted answer")
        };
        answer.map_err(|code| {
            api(
                "GET metrics.k8s.io pods",
                code,
                "ServiceUnavailable",
                "down",
            )
        })
    }

    async fn patch_scale(
        &self,
        _target: &TargetRef,
        replicas: u32,
        resource_version: Option<&str>,
    ) -> Result<ScaleState, ClusterError> {
        self.call(format!(
            "patch_scale {replicas} rv={}",
            resource_version.unwrap_or("-")
        ));
        let mut scale = self.scale.borrow_mut();
        if self.conflicts.get() > 0 {
            self.conflicts.set(self.conflicts.get() - 1);
            // Someone else changed the target since it was read.
            scale.spec_replicas = self.conflict_replicas;
            let rv: u32 = scale
                .resource_version
                .as_deref()
                .unwrap_or("0")
                .parse()
                .unwrap();
            scale.resource_version = Some((rv + 1).to_string());
            return Err(api(
                "PATCH scale",
                409,
                "Conflict",
                "the object has been modified",
            ));
        }
        scale.spec_replicas = replicas;
        Ok(scale.clone())
    }

    async fn annotations(
        &self,
        _target: &TargetRef,
    ) -> Result<BTreeMap<String, String>, ClusterError> {
        self.call("annotations".into());
        Ok(self.annotations.borrow().clone())
    }

    async fn apply_annotations(
        &self,
        _target: &TargetRef,
        _manager: &str,
        annotations: &BTreeMap<String, String>,
    ) -> Result<(), ClusterError> {
        // Each policy applies its own annotation with its own field manager: the others stay.
        self.annotations.borrow_mut().extend(annotations.clone());
        Ok(())
    }

    async fn create_event(&self, _event: &EventNote) -> Result<(), ClusterError> {
        Ok(())
    }

    async fn apply_status(
        &self,
        object: &policy::ObjectRef,
        _status: &policy::status::PolicyStatus,
    ) -> Result<(), ClusterError> {
        self.call(format!("apply_status {}", object.name));
        Ok(())
    }

    async fn resize_pod(
        &self,
        pod: &str,
        changes: &[ContainerChange],
    ) -> Result<Pod, ClusterError> {
        self.call(format!("resize {pod}"));
        if let Some(message) = &self.refuse_resize {
            return Err(api("PATCH pods/resize", 422, "Invalid", message));
        }
        let mut p = self
            .pods
            .borrow()
            .iter()
            .find(|p| p.name == pod)
            .cloned()
            .expect("a pod the tick read");
        for (c, change) in p.containers.iter_mut().zip(changes) {
            c.requests = change.requests;
            c.limits = change.limits;
        }
        Ok(p)
    }

    async fn patch_template(
        &self,
        _target: &TargetRef,
        changes: &[ContainerChange],
    ) -> Result<Vec<ContainerResources>, ClusterError> {
        self.call("patch_template".into());
        Ok(changes
            .iter()
            .map(|c| ContainerResources {
                name: c.container.clone(),
                requests: c.requests,
                limits: c.limits,
                ..ContainerResources::default()
            })
            .collect())
    }
}

/// CPU utilization of requests, target 50 %, 1 to 10 replicas; `mode` apply or recommend.
fn horizontal(mode: &str) -> Policy {
    let text = format!(
        "apiVersion: setpoint.dev/v1alpha1\nkind: ScalingPolicy\nmetadata: {{name: web}}\n\
         spec:\n  target: {{kind: Deployment, name: web}}\n  mode: {mode}\n  interval: 15s\n  \
         horizontal:\n    replicas: {{min: 1, max: 10}}\n    metrics:\n      \
         - {{name: cpu, resource: {{name: cpu}}, utilization: 0.5}}\n"
    );
    policy::parse(&text, Path::new("web.yaml")).unwrap()
}

async fn daemon_tick(c: &MemoryCluster, p: &Policy, hold: Hold) -> (TickOutcome, TickState) {
    let mut st = TickState::daemon(p, None, None).unwrap();
    let out = tick::run(Some(c), p, &mut st, hold, wall()).await;
    (out, st)
}

#[tokio::test(start_paused = true)]
async fn a_conflict_reads_the_target_again_and_decides_again() {
    // Two pods at 90 % of their request: 2 × 0.9 / 0.5 → 4 replicas.
    let mut c = MemoryCluster::new(2, 0.9);
    c.conflicts.set(1);
    c.conflict_replicas = 3;
    let p = horizontal("apply");
    let (out, st) = daemon_tick(&c, &p, Hold::Leading).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.conflicts, 1);
    // The second patch carries the resourceVersion of the second read, and the decision was
    // taken again from the count read then.
    assert_eq!(c.patches(), ["patch_scale 4 rv=1", "patch_scale 4 rv=2"]);
    let d = out.decision.as_ref().unwrap();
    assert_eq!((d.current_replicas, d.desired_replicas), (3, 4));
    assert_eq!(out.patched.as_ref().map(|s| s.spec_replicas), Some(4));
    assert_eq!(
        c.calls().iter().filter(|x| *x == "scale").count(),
        2,
        "{:?}",
        c.calls()
    );
    // One action committed: the one that was applied.
    let governor = &st.memory().unwrap().governor;
    assert_eq!(governor.events.len(), 1, "{governor:?}");
    assert_eq!(governor.events[0].replicas, 1);
}

#[tokio::test(start_paused = true)]
async fn conflicts_that_last_fail_the_tick_and_leave_no_action() {
    let c = MemoryCluster::new(2, 0.9);
    c.conflicts.set(10);
    let p = horizontal("apply");
    let (out, st) = daemon_tick(&c, &p, Hold::Leading).await;
    assert_eq!(out.error.as_ref().and_then(|e| e.code()), Some(409));
    assert_eq!(out.conflicts, tick::CONFLICT_ATTEMPTS - 1);
    assert!(!out.patch_failed, "a 409 is no failed patch");
    assert!(out.patched.is_none());
    let governor = &st.memory().unwrap().governor;
    assert!(governor.events.is_empty() && governor.last_action.is_none());
}

#[tokio::test(start_paused = true)]
async fn missing_data_never_scales() {
    let c = MemoryCluster::new(4, 0.1);
    *c.usage.borrow_mut() = VecDeque::from([Err(503)]);
    let p = horizontal("apply");
    let (out, st) = daemon_tick(&c, &p, Hold::Leading).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    let reading = &out.readings[0];
    assert!(
        matches!(&reading.sample, setpoint::engine::Sample::NoData { reason } if reason.contains("503")),
        "{reading:?}"
    );
    let d = out.decision.as_ref().unwrap();
    assert_eq!((d.current_replicas, d.desired_replicas), (4, 4), "{d}");
    assert!(c.patches().is_empty(), "{:?}", c.calls());
    assert!(st.memory().unwrap().governor.events.is_empty());

    // No pod has usage: no data either (never zero), and still no scale-down.
    *c.usage.borrow_mut() = VecDeque::from([Ok(vec![])]);
    let (out, _) = daemon_tick(&c, &p, Hold::Leading).await;
    let d = out.decision.as_ref().unwrap();
    assert_eq!(d.desired_replicas, 4, "{d}");
    assert!(c.patches().is_empty());
}

#[tokio::test(start_paused = true)]
async fn mode_and_lease_hold_the_tick_and_a_held_decision_is_no_action() {
    let held = [
        ("apply", Hold::Standby, Why::Standby),
        ("apply", Hold::DryRun, Why::DryRun),
        ("apply", Hold::ReadOnly, Why::ReadOnly),
        ("recommend", Hold::Leading, Why::PolicyRecommends),
    ];
    for (mode, hold, why) in held {
        let c = MemoryCluster::new(2, 0.9);
        let p = horizontal(mode);
        let (out, st) = daemon_tick(&c, &p, hold).await;
        assert_eq!(out.why, why);
        assert_eq!(out.actuator, tick::Actuator::Recommend);
        assert_eq!(out.decision.as_ref().unwrap().desired_replicas, 4);
        assert!(out.patched.is_none());
        assert!(c.patches().is_empty(), "{mode} {hold:?}: {:?}", c.calls());
        let governor = &st.memory().unwrap().governor;
        assert!(
            governor.events.is_empty() && governor.last_action.is_none(),
            "{mode} {hold:?}: the governor must not count an action that was not taken"
        );
    }
    let c = MemoryCluster::new(2, 0.9);
    let (out, st) = daemon_tick(&c, &horizontal("apply"), Hold::Leading).await;
    assert_eq!(
        (out.actuator, out.why),
        (tick::Actuator::Apply, Why::Applying)
    );
    assert_eq!(c.patches(), ["patch_scale 4 rv=1"]);
    assert!(st.memory().unwrap().governor.last_action.is_some());
}

#[tokio::test(start_paused = true)]
async fn recommend_and_the_daemon_explain_the_same_observation_alike() {
    let p = horizontal("apply");
    let c = MemoryCluster::new(2, 0.9);
    let (daemon, _) = daemon_tick(&c, &p, Hold::Leading).await;
    // recommend's path: one look, read-only, on the same observation.
    let c = MemoryCluster::new(2, 0.9);
    let mut look = TickState::look(&p, None, None, None).unwrap();
    let recommend = tick::run(Some(&c), &p, &mut look, Hold::ReadOnly, wall()).await;
    assert!(c.patches().is_empty());
    let (d, r) = (
        daemon.decision.as_ref().unwrap(),
        recommend.decision.as_ref().unwrap(),
    );
    assert_eq!(d.explanation, r.explanation);
    assert_eq!(d.to_string(), r.to_string());
    // As published (the time each read took aside).
    let json = |o: &TickOutcome| serde_json::to_value(&o.readings).unwrap();
    assert_eq!(json(&daemon), json(&recommend));
}

const VERTICAL: &str = "\
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

const REFUSAL: &str = "Pod \"web-a\" is invalid: spec.containers[0].resources.limits[memory]: \
                       Forbidden: memory limits cannot be decreased unless resizePolicy is \
                       RestartContainer";

#[tokio::test(start_paused = true)]
async fn a_refused_resize_falls_back_to_the_template_in_the_same_tick() {
    let mut c = MemoryCluster::new(1, 0.5);
    c.refuse_resize = Some(REFUSAL.into());
    {
        let mut pods = c.pods.borrow_mut();
        pods.truncate(1);
        pods[0].containers[0].requests = Amounts {
            cpu: Some(0.5),
            memory: Some(512.0 * MIB),
        };
        pods[0].containers[0].limits = Amounts {
            cpu: Some(1.0),
            memory: Some(1024.0 * MIB),
        };
    }
    let p = policy::parse(VERTICAL, Path::new("web.yaml")).unwrap();
    let recs = vec![ContainerRecommendation {
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
    }];
    let pods = c.pods.borrow().clone();
    let mut state = PlanState::default();
    let out = apply_vertical(&c, &p, &mut state, &pods, &recs, NOW, None).await;
    assert!(
        matches!(out.plan.action, VerticalAction::PatchTemplate { .. }),
        "{:?}",
        out.plan.action
    );
    assert!(
        matches!(out.applied, Applied::TemplatePatched { .. }),
        "{out}"
    );
    assert_eq!(c.calls(), ["resize web-a", "patch_template"]);
    assert!(state.memory_limit_decrease_refused.is_some());

    // The refusal is remembered: the next decrease goes to the fallback without trying.
    c.calls.borrow_mut().clear();
    let mut again = state.clone();
    again.template_patched_at = None;
    let out = apply_vertical(&c, &p, &mut again, &pods, &recs, NOW + 3600.0, None).await;
    assert!(
        !c.calls().iter().any(|x| x.starts_with("resize")),
        "{:?}",
        c.calls()
    );
    assert!(
        matches!(out.applied, Applied::TemplatePatched { .. }),
        "{out}"
    );

    // Held (here: a standby replica), the same plan writes nothing.
    c.calls.borrow_mut().clear();
    let mut held = PlanState::default();
    let hold = Why::Standby.hold();
    let out = apply_vertical(&c, &p, &mut held, &pods, &recs, NOW, hold).await;
    assert!(matches!(out.applied, Applied::NotApplied { .. }), "{out}");
    assert!(c.calls().is_empty(), "{:?}", c.calls());
}

/// Sets (Some) or removes (None) an annotation on the in-memory target.
fn annotate(c: &MemoryCluster, key: &str, value: Option<&str>) {
    let mut a = c.annotations.borrow_mut();
    match value {
        Some(v) => a.insert(key.into(), v.into()),
        None => a.remove(key),
    };
}

#[tokio::test(start_paused = true)]
async fn a_file_policy_is_paused_by_its_target_s_annotations_at_every_tick() {
    use setpoint::engine::pause::{PAUSED, PAUSED_REPLICAS, Pause};
    // Two pods at 90 %: the policy wants 4.
    let c = MemoryCluster::new(2, 0.9);
    annotate(&c, PAUSED, Some("true"));
    let p = horizontal("apply");
    let mut st = TickState::daemon(&p, None, None).unwrap();
    for i in 0..3 {
        let out = tick::run(Some(&c), &p, &mut st, Hold::Leading, wall()).await;
        let d = out.decision.as_ref().unwrap();
        assert_eq!(d.desired_replicas, 2, "{d}");
        let note = out.pause.as_ref().expect("paused");
        assert_eq!((&note.pause, note.started), (&Pause::Frozen, i == 0));
        assert_eq!(note.annotation.as_deref(), Some(PAUSED));
    }
    assert!(c.patches().is_empty(), "{:?}", c.calls());
    // One GET of the annotations per tick (the first one also restores the memory).
    let reads = c.calls().iter().filter(|x| *x == "annotations").count();
    assert_eq!(reads, 3);
    // Removed: the next tick acts, and says the pause ended.
    annotate(&c, PAUSED, None);
    let out = tick::run(Some(&c), &p, &mut st, Hold::Leading, wall()).await;
    assert_eq!(out.resumed, Some(Pause::Frozen));
    assert!(out.pause.is_none());
    assert_eq!(c.patches(), ["patch_scale 4 rv=1"]);
    // paused-replicas: to 3, an action the governor counts, then frozen there.
    annotate(&c, PAUSED_REPLICAS, Some("3"));
    let out = tick::run(Some(&c), &p, &mut st, Hold::Leading, wall()).await;
    assert_eq!(out.patched.as_ref().map(|s| s.spec_replicas), Some(3));
    let governor = &st.memory().unwrap().governor;
    assert_eq!(governor.events.len(), 2, "{governor:?}");
    assert_eq!(governor.paused, Some(Pause::Replicas { requested: 3 }));
    // A paused-replicas in the file itself works too, and the target's value wins.
    let mut in_file = horizontal("apply");
    in_file
        .annotations
        .insert(PAUSED_REPLICAS.into(), "5".into());
    let out = tick::run(Some(&c), &in_file, &mut st, Hold::Leading, wall()).await;
    assert_eq!(out.decision.unwrap().desired_replicas, 3);
    annotate(&c, PAUSED_REPLICAS, None);
    let out = tick::run(Some(&c), &in_file, &mut st, Hold::Leading, wall()).await;
    assert_eq!(out.decision.unwrap().desired_replicas, 5);
}

#[tokio::test(start_paused = true)]
async fn an_object_policy_is_paused_by_its_own_annotations_without_reading_the_target_s() {
    use setpoint::engine::pause::PAUSED;
    use setpoint::policy::ObjectRef;
    let c = MemoryCluster::new(2, 0.9);
    // On the target: not the object policy's control.
    annotate(&c, PAUSED, Some("true"));
    let mut p = horizontal("apply");
    p.object = Some(ObjectRef {
        name: "web".into(),
        uid: "u-1".into(),
        generation: 1,
    });
    let mut st = TickState::daemon(&p, None, None).unwrap();
    tick::run(Some(&c), &p, &mut st, Hold::Leading, wall()).await;
    assert_eq!(c.patches(), ["patch_scale 4 rv=1"]);
    p.annotations.insert(PAUSED.into(), "true".into());
    c.usage.borrow_mut()[0] = Ok(vec![usage("web-a", 2.0), usage("web-b", 2.0)]);
    let out = tick::run(Some(&c), &p, &mut st, Hold::Leading, wall()).await;
    assert!(
        out.pause.is_some() && out.patched.is_none(),
        "{:?}",
        out.decision
    );
    // Read once, at the first tick, for the kept memory.
    let reads = c.calls().iter().filter(|x| *x == "annotations").count();
    assert_eq!(reads, 1);
}

#[tokio::test(start_paused = true)]
async fn a_target_scaled_to_zero_by_hand_is_left_there() {
    use setpoint::engine::pause::Pause;
    let c = MemoryCluster::new(0, 0.9);
    let p = horizontal("apply");
    let mut st = TickState::daemon(&p, None, None).unwrap();
    for _ in 0..3 {
        let out = tick::run(Some(&c), &p, &mut st, Hold::Leading, wall()).await;
        let d = out.decision.as_ref().unwrap();
        assert_eq!(d.desired_replicas, 0, "{d}");
        assert_eq!(out.pause.as_ref().unwrap().pause, Pause::ScaledToZero);
    }
    assert!(
        c.patches().is_empty(),
        "min is 1, but it stays off: {:?}",
        c.calls()
    );
    // Scaled up by hand: the policy resumes.
    c.scale.borrow_mut().spec_replicas = 2;
    let out = tick::run(Some(&c), &p, &mut st, Hold::Leading, wall()).await;
    assert_eq!(out.resumed, Some(Pause::ScaledToZero));
    assert_eq!(c.patches(), ["patch_scale 4 rv=1"]);
}

#[tokio::test(start_paused = true)]
async fn a_pause_freezes_a_vertical_only_policy() {
    use setpoint::engine::pause::{PAUSED, PAUSED_SCALE_DOWN, Pause};
    // Two pods requesting 1 core and using 0.05: far above what they use.
    let c = MemoryCluster::new(2, 0.05);
    annotate(&c, PAUSED, Some("true"));
    let p = policy::parse(VERTICAL, Path::new("web.yaml")).unwrap();
    let mut st = TickState::daemon(&p, None, None).unwrap();
    let out = tick::run(Some(&c), &p, &mut st, Hold::Leading, wall()).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    let note = out.pause.as_ref().expect("paused");
    assert_eq!((&note.pause, note.started), (&Pause::Frozen, true));
    let v = out.vertical.as_ref().unwrap();
    assert!(
        !c.calls()
            .iter()
            .any(|x| x.starts_with("resize") || x.starts_with("patch")),
        "{v}: {:?}",
        c.calls()
    );
    // (One tick of usage leaves the bounds wide: this plan writes nothing anyway. A plan that
    // would write is held by the same `hold` as a standby's: see the test above.)
    // A one-direction pause is about replicas: not a pause of the vertical part.
    annotate(&c, PAUSED, None);
    annotate(&c, PAUSED_SCALE_DOWN, Some("true"));
    let out = tick::run(Some(&c), &p, &mut st, Hold::Leading, wall()).await;
    assert!(out.pause.is_none());
    assert_eq!(out.resumed, Some(Pause::Frozen));
}
