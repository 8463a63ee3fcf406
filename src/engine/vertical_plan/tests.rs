//! The planner's rules, one test each.

use super::*;
use crate::engine::pod::*;
use crate::engine::quantity::{MIB, Resource};
use crate::engine::vertical::{Recommended, ResourceParams, VerticalParams};
use std::collections::BTreeMap;

fn settings(update: UpdateMode) -> PlanSettings {
    let rp = |min, max| ResourceParams {
        target_percentile: 0.9,
        lower_percentile: 0.5,
        upper_percentile: 0.95,
        margin: 0.15,
        min,
        max,
    };
    PlanSettings {
        containers: vec!["app".into()],
        resources: vec![Resource::Cpu, Resource::Memory],
        params: VerticalParams {
            half_life: 86400.0,
            memory_peak_window: 86400.0,
            cpu: rp(0.05, 4.0),
            memory: rp(64.0 * MIB, 8192.0 * MIB),
            stale_difference: 0.1,
            stale_after: 12.0 * 3600.0,
        },
        update,
        limits: LimitsMode::Proportional,
        deferred_timeout: 300.0,
        fallback: ResizeFallback::Rollout,
        allow_restart: true,
    }
}

fn rec(target: f64, lower: f64, upper: f64) -> Recommended {
    Recommended {
        target,
        lower,
        upper,
    }
}

/// CPU: target 500m in [400m, 700m]; memory: target 512Mi in [400Mi, 700Mi].
fn recs() -> Vec<ContainerRecommendation> {
    vec![ContainerRecommendation {
        container: "app".into(),
        cpu: Some(rec(0.5, 0.4, 0.7)),
        memory: Some(rec(512.0 * MIB, 400.0 * MIB, 700.0 * MIB)),
    }]
}

fn amounts(cpu: Option<f64>, mem_mi: Option<f64>) -> Amounts {
    Amounts {
        cpu,
        memory: mem_mi.map(|m| m * MIB),
    }
}

/// A running pod with one container `app`.
fn pod(name: &str, requests: Amounts, limits: Amounts) -> Pod {
    Pod {
        name: name.into(),
        phase: "Running".into(),
        deleting: false,
        qos_class: None,
        revision: Some("68dddbb85".into()),
        resize: ResizeStatus::None,
        containers: vec![ContainerResources {
            name: "app".into(),
            requests,
            limits,
            ..ContainerResources::default()
        }],
        ..Pod::default()
    }
}

fn in_bounds(name: &str) -> Pod {
    pod(name, amounts(Some(0.5), Some(512.0)), Amounts::default())
}

fn run(s: &PlanSettings, pods: &[Pod]) -> VerticalPlan {
    plan(s, &recs(), pods, &mut PlanState::default(), 1000.0)
}

#[track_caller]
fn resized(p: &VerticalPlan) -> (&str, &[ContainerChange]) {
    match &p.action {
        VerticalAction::Resize { pod, changes, .. } => (pod, changes),
        other => panic!("expected a resize, got {other:?}\n{:?}", p.notes),
    }
}

#[test]
fn within_bounds_nothing_changes() {
    let p = run(
        &settings(UpdateMode::InPlace),
        &[in_bounds("a"), in_bounds("b")],
    );
    assert_eq!(
        p.action,
        VerticalAction::Nothing {
            reason: "every request is within its bounds".into()
        }
    );
    assert_eq!(p.rows.len(), 2);
    assert_eq!(p.rows[0].verdict, "within the bounds");
}

#[test]
fn outside_bounds_resizes_the_pod_furthest_outside() {
    let s = settings(UpdateMode::InPlace);
    let slightly = pod("a", amounts(Some(0.38), Some(512.0)), Amounts::default());
    let far = pod("b", amounts(Some(0.1), Some(512.0)), Amounts::default());
    let p = run(&s, &[slightly, far, in_bounds("c")]);
    let (name, changes) = resized(&p);
    assert_eq!(name, "b");
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].requests.cpu, Some(0.5));
    assert_eq!(changes[0].requests.memory, None, "memory is within bounds");
    assert_eq!(
        changes[0].limits,
        Amounts::default(),
        "no limit, none given"
    );
    assert!(
        p.action.to_string().contains("2 pods need a change"),
        "{}",
        p.action
    );
    assert_eq!(p.rows[0].planned, Some(0.5));
    assert_eq!(p.rows[0].pods_to_change, 2);
}

#[test]
fn a_long_difference_inside_the_bounds_changes_only_after_min_change_after() {
    let s = settings(UpdateMode::InPlace);
    // 650m is inside [400m, 700m] but 30 % off 500m.
    let pods = [pod(
        "a",
        amounts(Some(0.65), Some(512.0)),
        Amounts::default(),
    )];
    let mut state = PlanState::default();
    let first = plan(&s, &recs(), &pods, &mut state, 0.0);
    assert!(matches!(first.action, VerticalAction::Nothing { .. }));
    assert_eq!(state.differs_since.get("a/app/cpu"), Some(&0.0));
    let later = plan(&s, &recs(), &pods, &mut state, 11.0 * 3600.0);
    assert!(matches!(later.action, VerticalAction::Nothing { .. }));
    let stale = plan(&s, &recs(), &pods, &mut state, 12.0 * 3600.0);
    let (_, changes) = resized(&stale);
    assert_eq!(changes[0].requests.cpu, Some(0.5));
    assert!(
        stale
            .action
            .to_string()
            .contains("off the target 500m for 12h")
    );
    // A pod that is gone is forgotten.
    plan(&s, &recs(), &[], &mut state, 13.0 * 3600.0);
    assert!(state.differs_since.is_empty());
}

#[test]
fn a_clock_kept_from_before_survives_ticks_without_data() {
    let s = settings(UpdateMode::InPlace);
    let pods = [pod(
        "a",
        amounts(Some(0.65), Some(512.0)),
        Amounts::default(),
    )];
    // Restored after a restart: cpu has differed since t=0.
    let mut state = PlanState {
        differs_since: BTreeMap::from([("a/app/cpu".to_string(), 0.0)]),
        ..PlanState::default()
    };
    let none = vec![ContainerRecommendation {
        container: "app".into(),
        cpu: None,
        memory: None,
    }];
    let p = plan(&s, &none, &pods, &mut state, 3600.0);
    assert!(
        p.action.to_string().contains("no usage data yet"),
        "{}",
        p.action
    );
    assert_eq!(state.differs_since.get("a/app/cpu"), Some(&0.0));
    // With data again, the clock runs from its start: 12 h after t=0, not after the restart.
    let stale = plan(&s, &recs(), &pods, &mut state, 12.0 * 3600.0);
    let (_, changes) = resized(&stale);
    assert_eq!(changes[0].requests.cpu, Some(0.5));
}

#[test]
fn a_recent_oom_kill_changes_memory_at_once_even_inside_the_bounds() {
    let s = settings(UpdateMode::InPlace);
    // 450Mi is inside [400Mi, 700Mi], below the 512Mi target.
    let mut killed = pod("a", amounts(Some(0.5), Some(450.0)), Amounts::default());
    killed.containers[0].last_termination = Some(Termination {
        reason: "OOMKilled".into(),
        finished_at: Some(1000.0 - 60.0),
        exit_code: 137,
    });
    let p = run(&s, &[in_bounds("b"), killed.clone()]);
    let (name, changes) = resized(&p);
    assert_eq!(name, "a");
    assert_eq!(changes[0].requests.memory, Some(512.0 * MIB));
    assert!(
        p.action.to_string().contains("app was OOM-killed 1m ago"),
        "{}",
        p.action
    );
    assert_eq!(p.rows[1].verdict, "1 pod(s) OOM-killed below the target");
    // A kill older than the memory peak window is history: the bounds rule again.
    killed.containers[0]
        .last_termination
        .as_mut()
        .unwrap()
        .finished_at = Some(1000.0 - 2.0 * 86400.0);
    let p = run(&s, &[killed]);
    assert!(!p.action.writes(), "{:?}", p.action);
}

#[test]
fn limits_follow_requests_proportionally() {
    let s = settings(UpdateMode::InPlace);
    let p = run(
        &s,
        &[pod(
            "a",
            amounts(Some(0.2), Some(256.0)),
            amounts(Some(0.4), Some(1024.0)),
        )],
    );
    let (_, changes) = resized(&p);
    assert_eq!(changes[0].requests, amounts(Some(0.5), Some(512.0)));
    assert_eq!(changes[0].limits, amounts(Some(1.0), Some(2048.0)));
}

#[test]
fn requests_only_clamps_to_the_limit_and_says_so() {
    let mut s = settings(UpdateMode::InPlace);
    s.limits = LimitsMode::RequestsOnly;
    let p = run(
        &s,
        &[pod(
            "a",
            amounts(Some(0.2), Some(512.0)),
            amounts(Some(0.3), Some(1024.0)),
        )],
    );
    let (_, changes) = resized(&p);
    assert_eq!(changes[0].requests.cpu, Some(0.3), "clamped to the limit");
    assert_eq!(changes[0].limits, Amounts::default(), "limits stay");
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("clamped to its limit 300m")),
        "{:?}",
        p.notes
    );
    // A limit below the policy's min: nothing can be done for it.
    let p = run(
        &s,
        &[pod(
            "a",
            amounts(Some(0.01), Some(512.0)),
            amounts(Some(0.02), Some(1024.0)),
        )],
    );
    assert!(
        matches!(p.action, VerticalAction::Report { .. }),
        "{:?}",
        p.action
    );
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("below the policy's min 50m"))
    );
}

#[test]
fn guaranteed_stays_guaranteed() {
    let s = settings(UpdateMode::InPlace);
    let mut g = pod(
        "a",
        amounts(Some(0.2), Some(256.0)),
        amounts(Some(0.2), Some(256.0)),
    );
    g.qos_class = Some(QosClass::Guaranteed);
    let p = run(&s, std::slice::from_ref(&g));
    let (_, changes) = resized(&p);
    assert_eq!(changes[0].requests, changes[0].limits);
    assert_eq!(changes[0].requests, amounts(Some(0.5), Some(512.0)));
    // With requests only, a Guaranteed pod cannot change: reported.
    let mut s = s;
    s.limits = LimitsMode::RequestsOnly;
    let p = run(&s, &[g]);
    assert!(
        matches!(p.action, VerticalAction::Report { .. }),
        "{:?}",
        p.action
    );
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("is Guaranteed and limits are requestsOnly"))
    );
}

#[test]
fn best_effort_pods_are_never_given_requests() {
    let s = settings(UpdateMode::InPlace);
    let mut b = pod("a", Amounts::default(), Amounts::default());
    b.qos_class = Some(QosClass::BestEffort);
    let p = run(&s, &[b]);
    assert!(!p.action.writes(), "{:?}", p.action);
    assert!(
        p.notes.iter().any(|n| n.contains("no cpu request")),
        "{:?}",
        p.notes
    );
    // Even when a recommendation would apply to a request it had: nothing is given.
    let mut odd = pod("a", amounts(Some(0.1), None), Amounts::default());
    odd.qos_class = Some(QosClass::BestEffort);
    let p = run(&s, &[odd]);
    assert!(!p.action.writes(), "{:?}", p.action);
    assert!(
        p.notes.iter().any(|n| n.contains("BestEffort")),
        "{:?}",
        p.notes
    );
}

#[test]
fn burstable_does_not_become_guaranteed_by_accident() {
    // Memory already request == limit; CPU request clamped to its limit would make the pod
    // Guaranteed: one step below instead.
    let mut s = settings(UpdateMode::InPlace);
    s.limits = LimitsMode::RequestsOnly;
    let mut b = pod(
        "a",
        amounts(Some(0.2), Some(512.0)),
        amounts(Some(0.3), Some(512.0)),
    );
    b.qos_class = Some(QosClass::Burstable);
    let p = run(&s, std::slice::from_ref(&b));
    let (_, changes) = resized(&p);
    assert_eq!(changes[0].requests.cpu, Some(0.299));
    assert!(
        p.notes.iter().any(|n| n.contains("stays Burstable")),
        "{:?}",
        p.notes
    );
    // Proportional with a limit that rounds onto the request: the limit goes one step up.
    let mut s = settings(UpdateMode::InPlace);
    s.limits = LimitsMode::Proportional;
    let b = pod(
        "a",
        amounts(Some(0.2), Some(512.0)),
        amounts(Some(0.2001), Some(512.0)),
    );
    let p = run(&s, &[b]);
    let (_, changes) = resized(&p);
    assert_eq!(changes[0].requests.cpu, Some(0.5));
    assert_eq!(changes[0].limits.cpu, Some(0.501));
}

#[test]
fn one_resize_in_flight_at_a_time() {
    let s = settings(UpdateMode::InPlace);
    let mut busy = in_bounds("a");
    busy.resize = ResizeStatus::InProgress {
        since: Some(990.0),
        message: None,
    };
    let low = pod("b", amounts(Some(0.1), Some(512.0)), Amounts::default());
    let p = run(&s, &[busy, low.clone()]);
    assert!(
        matches!(&p.action, VerticalAction::Nothing { reason } if reason.contains("one resize at a time: pod a: resize in progress")),
        "{:?}",
        p.action
    );
    // Spec ahead of the status with no condition yet: in flight too.
    let mut unseen = in_bounds("a");
    unseen.containers[0].actual_requests = Some(amounts(Some(0.1), Some(512.0)));
    let p = run(&s, &[unseen, low.clone()]);
    assert!(
        matches!(&p.action, VerticalAction::Nothing { reason } if reason.contains("kubelet has not applied")),
        "{:?}",
        p.action
    );
    // Deferred within the timeout: wait.
    let mut deferred = in_bounds("a");
    deferred.resize = ResizeStatus::Deferred {
        since: Some(900.0),
        message: Some("Node didn't have enough resource: cpu".into()),
    };
    let p = run(&s, &[deferred, low]);
    assert!(!p.action.writes(), "{:?}", p.action);
}

#[test]
fn infeasible_falls_back_to_the_template_or_is_reported() {
    let mut s = settings(UpdateMode::InPlace);
    let mut stuck = pod("a", amounts(Some(0.5), Some(512.0)), Amounts::default());
    stuck.resize = ResizeStatus::Infeasible {
        since: Some(990.0),
        message: Some("Node didn't have enough capacity: cpu".into()),
    };
    let old = pod("b", amounts(Some(0.1), Some(512.0)), Amounts::default());
    let p = run(&s, &[stuck.clone(), old.clone()]);
    match &p.action {
        VerticalAction::PatchTemplate { changes, reason } => {
            assert!(reason.contains("pod a: resize infeasible"), "{reason}");
            // The template gets every resource of the stuck resize, at the target.
            assert_eq!(changes[0].requests, amounts(Some(0.5), Some(512.0)));
            assert_eq!(changes[0].limits, Amounts::default());
        }
        other => panic!("{other:?}"),
    }
    // Only the stuck pod, already holding the new values in its spec: still patched.
    let p = run(&s, std::slice::from_ref(&stuck));
    assert!(
        matches!(p.action, VerticalAction::PatchTemplate { .. }),
        "{:?}",
        p.action
    );
    s.fallback = ResizeFallback::Report;
    let p = run(&s, &[stuck, old]);
    match &p.action {
        VerticalAction::Report { reason } => {
            assert!(
                reason.contains("resize.fallback is report: nothing patched"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn deferred_past_the_timeout_falls_back() {
    let s = settings(UpdateMode::InPlace);
    let mut d = pod("a", amounts(Some(0.1), Some(512.0)), Amounts::default());
    d.resize = ResizeStatus::Deferred {
        since: Some(1000.0 - 301.0),
        message: None,
    };
    let p = run(&s, &[d]);
    match &p.action {
        VerticalAction::PatchTemplate { reason, .. } => {
            assert!(reason.contains("deferred for 5m 1s"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn after_a_refused_memory_limit_decrease_such_resizes_take_the_fallback() {
    let mut s = settings(UpdateMode::InPlace);
    // Memory 1Gi (limit 2Gi) above [400Mi, 700Mi]: to 512Mi, limit 1Gi.
    let high = pod(
        "a",
        amounts(Some(0.5), Some(1024.0)),
        amounts(None, Some(2048.0)),
    );
    let refused = PlanState {
        memory_limit_decrease_refused: Some(ResizeRefusal {
            pod: "z".into(),
            containers: vec!["app".into()],
            message: "Pod \"z\" is invalid: spec.containers[0].resources.limits[memory]: \
                      Forbidden: memory limits cannot be decreased unless resizePolicy is \
                      RestartContainer"
                .into(),
            at: 900.0,
        }),
        ..PlanState::default()
    };
    let with =
        |s: &PlanSettings, pods: &[Pod]| plan(s, &recs(), pods, &mut refused.clone(), 1000.0);
    // Before any refusal: in place.
    let p = run(&s, std::slice::from_ref(&high));
    assert_eq!(resized(&p).1[0].limits, amounts(None, Some(1024.0)));
    // After one: the template, saying why.
    let p = with(&s, std::slice::from_ref(&high));
    match &p.action {
        VerticalAction::PatchTemplate { changes, reason } => {
            assert!(
                reason.starts_with(
                    "pod a: the resize lowers the memory limit of app (2Gi to 1Gi), which \
                     the API server refuses in place (it refused pod z container app: Pod \
                     \"z\" is invalid: spec.containers[0].resources.limits[memory]: \
                     Forbidden: memory limits cannot be decreased"
                ),
                "{reason}"
            );
            assert!(reason.contains("falling back to a rollout"), "{reason}");
            assert_eq!(changes[0].requests, amounts(None, Some(512.0)));
            assert_eq!(changes[0].limits, amounts(None, Some(1024.0)));
        }
        other => panic!("{other:?}"),
    }
    s.fallback = ResizeFallback::Report;
    assert!(matches!(&with(&s, std::slice::from_ref(&high)).action,
            VerticalAction::Report { reason } if reason.contains("which the API server refuses in place")
                && reason.ends_with("resize.fallback is report: nothing patched")),);
    // Still in place: a memory limit raised, a CPU-only change, a container that restarts
    // for memory (the server takes that), a container without a memory limit.
    let low = pod(
        "a",
        amounts(Some(0.5), Some(128.0)),
        amounts(None, Some(256.0)),
    );
    let cpu_only = pod(
        "a",
        amounts(Some(0.1), Some(512.0)),
        amounts(Some(0.2), Some(2048.0)),
    );
    let mut restarts = high.clone();
    restarts.containers[0].resize_policy.memory = RestartPolicy::RestartContainer;
    let unlimited = pod("a", amounts(Some(0.5), Some(1024.0)), Amounts::default());
    for p0 in [low, cpu_only, restarts, unlimited] {
        resized(&with(&s, std::slice::from_ref(&p0)));
    }
}

#[test]
fn plan_state_keeps_a_refusal_and_reads_without_one() {
    let mut state = PlanState::default();
    state.resize_refused(ResizeRefusal {
        pod: "a".into(),
        containers: vec!["app".into(), "proxy".into()],
        message: "refused".into(),
        at: 1.0,
    });
    let text = serde_json::to_string(&state).unwrap();
    assert_eq!(serde_json::from_str::<PlanState>(&text).unwrap(), state);
    assert_eq!(
        state.memory_limit_decrease_refused.unwrap().to_string(),
        "pod a containers app, proxy: refused"
    );
    let old: PlanState =
        serde_json::from_str(r#"{"differsSince": {}, "templatePatchedAt": null}"#).unwrap();
    assert_eq!(old, PlanState::default());
    assert!(!serde_json::to_string(&old).unwrap().contains("memoryLimit"));
}

#[test]
fn restart_policy_is_noted_or_avoided() {
    let mut s = settings(UpdateMode::InPlace);
    let mut p0 = pod("a", amounts(Some(0.1), Some(512.0)), Amounts::default());
    p0.containers[0].resize_policy.cpu = RestartPolicy::RestartContainer;
    let p = run(&s, std::slice::from_ref(&p0));
    resized(&p);
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("restarts app (cpu) of pod a")),
        "{:?}",
        p.notes
    );
    s.allow_restart = false;
    let p = run(&s, std::slice::from_ref(&p0));
    assert!(
        matches!(&p.action, VerticalAction::PatchTemplate { reason, .. } if reason.contains("resize.allowRestart is false")),
        "{:?}",
        p.action
    );
    s.fallback = ResizeFallback::Report;
    let p = run(&s, &[p0]);
    assert!(
        matches!(p.action, VerticalAction::Report { .. }),
        "{:?}",
        p.action
    );
}

#[test]
fn rollout_mode_patches_the_template_and_then_waits_for_the_rollout() {
    let s = settings(UpdateMode::Rollout);
    let low = pod(
        "a",
        amounts(Some(0.1), Some(1024.0)),
        amounts(Some(0.2), Some(1024.0)),
    );
    let mut state = PlanState::default();
    let p = plan(&s, &recs(), std::slice::from_ref(&low), &mut state, 0.0);
    match &p.action {
        VerticalAction::PatchTemplate { changes, .. } => {
            assert_eq!(changes[0].requests, amounts(Some(0.5), Some(512.0)));
            assert_eq!(changes[0].limits, amounts(Some(1.0), Some(512.0)));
        }
        other => panic!("{other:?}"),
    }
    state.template_patched(0.0);
    let p = plan(&s, &recs(), std::slice::from_ref(&low), &mut state, 30.0);
    assert!(
        matches!(&p.action, VerticalAction::Nothing { reason } if reason.contains("waiting for its rollout"))
    );
    let mut new = in_bounds("b");
    new.revision = Some("7c9f".into());
    let p = plan(&s, &recs(), &[low, new], &mut state, 90.0);
    assert!(
        matches!(&p.action, VerticalAction::Nothing { reason } if reason.contains("2 template revisions")),
        "{:?}",
        p.action
    );
}

#[test]
fn update_off_only_recommends() {
    let p = run(
        &settings(UpdateMode::Off),
        &[pod(
            "a",
            amounts(Some(0.1), Some(512.0)),
            Amounts::default(),
        )],
    );
    assert!(
        matches!(&p.action, VerticalAction::Nothing { reason } if reason.contains("update is off") && reason.contains("1 pod(s) would change")),
        "{:?}",
        p.action
    );
}

#[test]
fn no_data_no_request_and_missing_containers() {
    let s = settings(UpdateMode::InPlace);
    let p = plan(
        &s,
        &[ContainerRecommendation {
            container: "app".into(),
            cpu: None,
            memory: None,
        }],
        &[in_bounds("a")],
        &mut PlanState::default(),
        0.0,
    );
    assert_eq!(
        p.action,
        VerticalAction::Nothing {
            reason: "no usage data yet".into()
        }
    );
    assert_eq!(p.rows[0].verdict, "no usage data yet");
    let mut other = in_bounds("a");
    other.containers[0].name = "sidecar".into();
    let p = run(&s, &[other]);
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("no running pod has a container app"))
    );
}

#[test]
fn planned_requests_are_whole_steps_within_min_and_max() {
    assert_eq!(representable(Resource::Cpu, 0.12345, 0.05, 4.0), 0.123);
    assert_eq!(representable(Resource::Cpu, 0.0255, 0.0255, 0.0255), 0.0255);
    assert_eq!(
        representable(Resource::Memory, 100e6, 100e6, 1e9),
        96.0 * MIB,
        "the first whole MiB above min"
    );
    assert_eq!(show(Resource::Cpu, 0.25), "250m");
    assert_eq!(show(Resource::Cpu, 2.0), "2");
    assert_eq!(show(Resource::Memory, 2048.0 * MIB), "2Gi");
    assert_eq!(show(Resource::Memory, 100e6), "95Mi");
    assert_eq!(show(Resource::Memory, 900.0 * 1024.0), "900Ki");
    assert_eq!(show(Resource::Cpu, 0.5428), "543m");
    assert_eq!(show(Resource::Cpu, 0.0005), "0.50m");
}

#[test]
fn qos_classes() {
    let c = |req: Amounts, lim: Amounts| ContainerResources {
        name: "x".into(),
        requests: req,
        limits: lim,
        ..ContainerResources::default()
    };
    let both = amounts(Some(1.0), Some(64.0));
    assert_eq!(QosClass::of(&[c(both, both)]), QosClass::Guaranteed);
    assert_eq!(
        QosClass::of(&[c(Amounts::default(), both)]),
        QosClass::Guaranteed
    );
    assert_eq!(
        QosClass::of(&[c(both, both), c(Amounts::default(), Amounts::default())]),
        QosClass::Burstable
    );
    assert_eq!(
        QosClass::of(&[c(Amounts::default(), Amounts::default())]),
        QosClass::BestEffort
    );
}

#[test]
fn a_target_at_zero_pods_holds_and_says_why() {
    // Scaled to zero: no pod, so no usage and nothing to resize or patch, whatever the
    // recommendation says.
    for update in [UpdateMode::InPlace, UpdateMode::Rollout] {
        let s = settings(update);
        let p = plan(&s, &recs(), &[], &mut PlanState::default(), 0.0);
        assert_eq!(
            p.action,
            VerticalAction::Nothing {
                reason: "the target has no pods (at zero replicas): no usage, holding".into()
            },
            "{update:?}"
        );
        assert!(!p.action.writes());
    }
}
