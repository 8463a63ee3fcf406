//! The vertical part: policy validation (including the CPU feedback-loop rule), the simulator,
//! and a property test that no recommendation leaves [min, max].

use proptest::prelude::*;
use setpoint::engine::quantity::{MIB, Resource};
use setpoint::engine::vertical::ContainerRecommender;
use setpoint::policy::{self, PolicyError, UpdateMode};
use setpoint::sim::{Trace, vertical};
use std::path::Path;

const VERTICAL: &str = "\
apiVersion: setpoint.dev/v1alpha1
kind: ScalingPolicy
metadata: {name: web}
spec:
  target: {kind: Deployment, name: web}
  vertical:
    containers: [web]
    min: {cpu: 50m, memory: 64Mi}
    max: {cpu: 2, memory: 4Gi}
    update: inPlace
";

fn problems(text: &str) -> Vec<String> {
    match policy::parse(text, Path::new("v.yaml")) {
        Err(PolicyError::Invalid { problems, .. }) => problems
            .iter()
            .map(|p| format!("{}:{}: {}: {}", p.line, p.column, p.field, p.message))
            .collect(),
        other => panic!("expected problems, got {other:?}"),
    }
}

#[test]
fn a_vertical_only_policy_parses_with_vpa_defaults() {
    let p = policy::parse(VERTICAL, Path::new("v.yaml")).unwrap();
    assert!(p.horizontal.is_none());
    let v = p.vertical.unwrap();
    assert_eq!(v.plan.containers, vec!["web"]);
    assert_eq!(v.plan.update, UpdateMode::InPlace);
    assert_eq!(
        (
            v.plan.params.cpu.target_percentile,
            v.plan.params.cpu.margin
        ),
        (0.9, 0.15)
    );
    assert_eq!((v.plan.params.cpu.min, v.plan.params.cpu.max), (0.05, 2.0));
    assert_eq!(v.plan.params.memory.max, 4096.0 * MIB);
    assert_eq!(v.plan.params.half_life, 86400.0);
}

#[test]
fn bad_vertical_settings_name_their_field() {
    let t = VERTICAL.replace("memory: 64Mi", "memory: 64Qi");
    assert!(
        problems(&t)[0].contains("spec.vertical.min.memory: unknown unit \"Qi\""),
        "{:?}",
        problems(&t)
    );
    let t = VERTICAL.replace("cpu: 2,", "cpu: 10m,");
    assert!(
        problems(&t)
            .iter()
            .any(|p| p.contains("spec.vertical.max.cpu: max (10m) is below min (50m)")),
        "{:?}",
        problems(&t)
    );
    let t = VERTICAL.replace("containers: [web]", "containers: []");
    assert!(
        problems(&t)[0].contains("7:17: spec.vertical.containers: expected one or more"),
        "{:?}",
        problems(&t)
    );
    let t = VERTICAL.replace(
        "    update: inPlace\n",
        "    update: inPlace\n    bounds: {lower: 0.95, upper: 0.5}\n",
    );
    assert!(
        problems(&t)[0].contains("spec.vertical.bounds: expected 0 < lower"),
        "{:?}",
        problems(&t)
    );
    let t = VERTICAL.replace("update: inPlace", "update: evict");
    assert!(
        problems(&t)[0].contains("unknown variant `evict`, expected one of off, inPlace, rollout"),
        "{:?}",
        problems(&t)
    );
    let t = VERTICAL.replace("  vertical:\n    containers: [web]\n    min: {cpu: 50m, memory: 64Mi}\n    max: {cpu: 2, memory: 4Gi}\n    update: inPlace\n", "");
    assert!(
        problems(&t)[0].contains("nothing to scale"),
        "{:?}",
        problems(&t)
    );
}

#[test]
fn cpu_utilization_of_requests_with_vertical_cpu_is_a_feedback_loop() {
    let both = VERTICAL.replace(
        "  vertical:",
        "  horizontal:\n    replicas: {min: 1, max: 10}\n    metrics:\n      - prometheus: sum(rate(container_cpu_usage_seconds_total[1m])) / sum(kube_pod_container_resource_requests{resource=\"cpu\"})\n        utilization: 0.7\n  vertical:",
    );
    let p = problems(&both);
    assert!(
        p[0].contains(
            "spec.horizontal.metrics[0]: scales on CPU utilization relative to the request"
        ),
        "{p:?}"
    );
    assert!(p[0].contains("targetPerReplica"), "says what to do instead");
    // Memory only on the vertical side, or absolute usage per replica: fine.
    let mem_only = both.replace(
        "    containers: [web]\n",
        "    containers: [web]\n    resources: [memory]\n",
    );
    policy::parse(&mem_only, Path::new("v.yaml")).unwrap();
    let absolute = both
        .replace(
            " / sum(kube_pod_container_resource_requests{resource=\"cpu\"})",
            "",
        )
        .replace("utilization: 0.7", "targetPerReplica: 0.5");
    policy::parse(&absolute, Path::new("v.yaml")).unwrap();
}

#[test]
fn usage_queries_and_allow_restart() {
    let p = policy::parse(VERTICAL, Path::new("v.yaml")).unwrap();
    let v = p.vertical.unwrap();
    assert_eq!(v.usage, policy::UsageQueries::default());
    assert!(v.plan.allow_restart, "restarts are allowed by default");
    let with = VERTICAL.replace(
        "    update: inPlace\n",
        "    update: inPlace\n    resize: {allowRestart: false}\n    usage:\n      memory: max(container_memory_rss{pod=\"$pod\", container=\"$container\"})\n",
    );
    let v = policy::parse(&with, Path::new("v.yaml"))
        .unwrap()
        .vertical
        .unwrap();
    assert!(!v.plan.allow_restart);
    assert_eq!(v.usage.cpu, None);
    assert_eq!(
        v.usage.memory.as_deref(),
        Some("max(container_memory_rss{pod=\"$pod\", container=\"$container\"})")
    );
    assert_eq!(v.plan.update, UpdateMode::InPlace);
    let unknown = with.replace("$pod", "$podname");
    let p = problems(&unknown);
    assert!(
        p.iter().any(|p| p.contains(
            "spec.vertical.usage.memory: unknown placeholder $podname: expected $namespace, $pod or $container"
        )),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|p| p.contains("spec.vertical.usage.memory: the query has no $pod")),
        "{p:?}"
    );
    let empty = VERTICAL.replace(
        "    update: inPlace\n",
        "    update: inPlace\n    usage: {cpu: \" \"}\n",
    );
    assert!(
        problems(&empty)[0].contains("spec.vertical.usage.cpu: empty query"),
        "{:?}",
        problems(&empty)
    );
}

/// Two days of a usage shape that doubles every afternoon.
fn shape() -> Trace {
    let n = 2 * 1440;
    let v = (0..n)
        .map(|i| if (i % 1440) > 720 { 2.0 } else { 1.0 })
        .collect();
    Trace::new((0..n).map(|i| i as f64 * 60.0).collect(), v)
}

#[test]
fn simulation_counts_ooms_and_answers_them_at_once() {
    let p = policy::parse(VERTICAL, Path::new("v.yaml")).unwrap();
    let r = vertical::run(p.vertical.as_ref().unwrap(), &shape(), None);
    // The first afternoon doubles memory past the hand-set limit: one OOM kill, answered at once
    // with a larger request, and no second kill at the same level.
    assert_eq!(r.summary.oom_kills, 1, "{:#?}", r.request_changes);
    let oom = r
        .request_changes
        .iter()
        .find(|c| c.reason.starts_with("OOM kill"))
        .unwrap();
    assert_eq!(oom.t, 721.0 * 60.0);
    assert!(r.summary.slack_pct > 0.0 && r.summary.slack_pct < 100.0);
    assert!(
        r.summary.request_changes_per_day <= 4.0,
        "{:#?}",
        r.request_changes
    );
}

#[test]
fn update_off_only_recommends() {
    let t = VERTICAL.replace("update: inPlace", "update: off");
    let p = policy::parse(&t, Path::new("v.yaml")).unwrap();
    let r = vertical::run(p.vertical.as_ref().unwrap(), &shape(), None);
    assert_eq!(r.summary.request_changes, 0);
    assert!(
        r.summary.oom_kills >= 2,
        "the hand-set limit stays and keeps failing"
    );
}

#[test]
fn least_slack_is_the_best_schedule_with_foresight() {
    // Every afternoon doubles: one request a day must hold the peak all day, slack 25 %
    // (half the day at half the request); two a day follow the step exactly.
    let t = shape();
    assert!((vertical::least_slack_pct(&t, 1) - 25.0 * 719.0 / 720.0).abs() < 0.1);
    assert!(vertical::least_slack_pct(&t, 2) < 1e-9);
    // And no policy does better than the floor on the same shape.
    let p = policy::parse(VERTICAL, Path::new("v.yaml")).unwrap();
    let r = vertical::run(p.vertical.as_ref().unwrap(), &t, None);
    let floor = vertical::least_slack_pct(&t, r.summary.request_changes_per_day.ceil() as usize);
    assert!(
        r.summary.slack_pct >= floor,
        "{} < {floor}",
        r.summary.slack_pct
    );
}

proptest! {
    #[test]
    fn recommendations_never_leave_min_and_max(
        samples in prop::collection::vec((0.0..50.0f64, 0.0..(20.0f64 * 1024.0)), 1..300),
        ooms in prop::collection::vec(0.0..(30.0 * 1024.0f64), 0..3),
        half_life in 60.0..200_000.0f64,
    ) {
        let p = policy::parse(VERTICAL, Path::new("v.yaml")).unwrap();
        let mut params = p.vertical.unwrap().plan.params;
        params.half_life = half_life;
        let mut r = ContainerRecommender::new(&params);
        for (i, (cpu, mem)) in samples.iter().enumerate() {
            let t = i as f64 * 600.0;
            r.add_cpu(*cpu, t);
            r.add_memory(&params, mem * MIB, t);
            if let Some(o) = ooms.get(i) {
                r.oom(&params, o * MIB, t);
            }
            for (res, rp) in [(Resource::Cpu, params.cpu), (Resource::Memory, params.memory)] {
                let rec = r.recommend(&params, res).unwrap();
                for v in [rec.lower, rec.target, rec.upper] {
                    prop_assert!(v >= rp.min && v <= rp.max, "{res:?} {v} outside [{}, {}]", rp.min, rp.max);
                }
                prop_assert!(rec.lower <= rec.target && rec.target <= rec.upper);
            }
        }
    }

    #[test]
    fn least_slack_matches_every_split(
        values in prop::collection::vec(0.0..10.0f64, 1..9),
        k in 1usize..4,
    ) {
        // Brute force: every way to cut the steps into at most k stretches, each at its peak.
        let n = values.len();
        let mut best = f64::INFINITY;
        for cuts in 0u32..(1 << (n - 1)) {
            if cuts.count_ones() as usize + 1 > k {
                continue;
            }
            let (mut slack, mut from) = (0.0, 0);
            for j in 0..n {
                if j == n - 1 || cuts & (1 << j) != 0 {
                    let part = &values[from..=j];
                    let peak = part.iter().cloned().fold(0.0, f64::max);
                    slack += part.iter().map(|u| if peak > 0.0 { 1.0 - u / peak } else { 1.0 }).sum::<f64>();
                    from = j + 1;
                }
            }
            best = best.min(slack);
        }
        let t = Trace::new((0..n).map(|i| i as f64 * 60.0).collect(), values);
        let got = vertical::least_slack_pct(&t, k);
        prop_assert!((got - 100.0 * best / n as f64).abs() < 1e-6, "{got} vs {}", 100.0 * best / n as f64);
    }
}

mod planner {
    use proptest::prelude::*;
    use setpoint::engine::pod::{
        Amounts, ContainerResources, Pod, QosClass, ResizePolicy, ResizeStatus, RestartPolicy,
        Termination,
    };
    use setpoint::engine::quantity::{MIB, Resource};
    use setpoint::engine::vertical::{Recommended, ResourceParams, VerticalParams};
    use setpoint::engine::vertical_plan::{
        ContainerRecommendation, LimitsMode, PlanSettings, PlanState, ResizeFallback, UpdateMode,
        VerticalAction, plan,
    };

    /// A request and limit: none, request only, request == limit, or limit above the request.
    fn pair(lo: f64, hi: f64) -> impl Strategy<Value = (Option<f64>, Option<f64>)> {
        prop_oneof![
            Just((None, None)),
            (lo..hi).prop_map(|r| (Some(r), None)),
            (lo..hi).prop_map(|r| (Some(r), Some(r))),
            (lo..hi, 1.0..4.0f64).prop_map(|(r, k)| (Some(r), Some(r * k))),
        ]
    }

    fn container(name: &'static str) -> impl Strategy<Value = ContainerResources> {
        (
            pair(0.0, 8.0),
            pair(0.0, 8192.0 * MIB),
            any::<bool>(),
            any::<bool>(),
            prop::option::of(0.0..200_000.0f64),
        )
            .prop_map(move |(cpu, mem, restart_cpu, restart_mem, oom)| {
                let policy = |b: bool| {
                    if b {
                        RestartPolicy::RestartContainer
                    } else {
                        RestartPolicy::NotRequired
                    }
                };
                ContainerResources {
                    name: name.into(),
                    requests: Amounts {
                        cpu: cpu.0,
                        memory: mem.0,
                    },
                    limits: Amounts {
                        cpu: cpu.1,
                        memory: mem.1,
                    },
                    resize_policy: ResizePolicy {
                        cpu: policy(restart_cpu),
                        memory: policy(restart_mem),
                    },
                    last_termination: oom.map(|ago| Termination {
                        reason: "OOMKilled".into(),
                        finished_at: Some(1e6 - ago),
                        exit_code: 137,
                    }),
                    ..ContainerResources::default()
                }
            })
    }

    fn resize() -> impl Strategy<Value = ResizeStatus> {
        prop_oneof![
            4 => Just(ResizeStatus::None),
            1 => (0.0..1000.0f64).prop_map(|a| ResizeStatus::Deferred { since: Some(1e6 - a), message: None }),
            1 => Just(ResizeStatus::Infeasible { since: None, message: None }),
            1 => Just(ResizeStatus::InProgress { since: None, message: None }),
        ]
    }

    fn pods() -> impl Strategy<Value = Vec<Pod>> {
        prop::collection::vec(
            (
                container("app"),
                prop::option::of(container("side")),
                resize(),
            ),
            1..5,
        )
        .prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (app, side, resize))| {
                    let containers: Vec<_> = std::iter::once(app).chain(side).collect();
                    Pod {
                        name: format!("web-{i}"),
                        phase: "Running".into(),
                        deleting: false,
                        qos_class: Some(QosClass::of(&containers)),
                        revision: Some("1".into()),
                        resize,
                        containers,
                        ..Pod::default()
                    }
                })
                .collect()
        })
    }

    /// [min, max] and a recommendation within them, as the recommender gives.
    fn bounded(lo: f64, hi: f64) -> impl Strategy<Value = (f64, f64, Recommended)> {
        (lo..hi, 1.0..100.0f64, 0.0..1.0f64, 0.0..1.0f64, 0.0..1.0f64).prop_map(
            |(min, k, t, l, u)| {
                let max = min * k;
                let target = min + (max - min) * t;
                let rec = Recommended {
                    target,
                    lower: min + (target - min) * l,
                    upper: target + (max - target) * u,
                };
                (min, max, rec)
            },
        )
    }

    fn settings() -> impl Strategy<Value = (PlanSettings, ContainerRecommendation)> {
        (
            bounded(0.001, 2.0),
            bounded(10.0 * MIB, 2048.0 * MIB),
            prop_oneof![Just(UpdateMode::InPlace), Just(UpdateMode::Rollout)],
            prop_oneof![
                Just(LimitsMode::Proportional),
                Just(LimitsMode::RequestsOnly)
            ],
            prop_oneof![Just(ResizeFallback::Rollout), Just(ResizeFallback::Report)],
            any::<bool>(),
        )
            .prop_map(|(cpu, mem, update, limits, fallback, allow_restart)| {
                let rp = |min, max| ResourceParams {
                    target_percentile: 0.9,
                    lower_percentile: 0.5,
                    upper_percentile: 0.95,
                    margin: 0.15,
                    min,
                    max,
                };
                (
                    PlanSettings {
                        containers: vec!["app".into()],
                        resources: vec![Resource::Cpu, Resource::Memory],
                        params: VerticalParams {
                            half_life: 86400.0,
                            memory_peak_window: 86400.0,
                            cpu: rp(cpu.0, cpu.1),
                            memory: rp(mem.0, mem.1),
                            stale_difference: 0.1,
                            stale_after: 3600.0,
                        },
                        update,
                        limits,
                        deferred_timeout: 300.0,
                        fallback,
                        allow_restart,
                    },
                    ContainerRecommendation {
                        container: "app".into(),
                        cpu: Some(cpu.2),
                        memory: Some(mem.2),
                    },
                )
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever the pods and settings: no planned request leaves [min, max], no request
        /// exceeds its limit, and a resize never changes a pod's QoS class.
        #[test]
        fn planned_requests_stay_within_min_and_max((s, rec) in settings(), pods in pods(), stale_for in 0.0..7200.0f64) {
            let mut state = PlanState::default();
            let now = 1e6;
            plan(&s, std::slice::from_ref(&rec), &pods, &mut state, now - stale_for);
            let p = plan(&s, std::slice::from_ref(&rec), &pods, &mut state, now);
            let (changes, pod) = match &p.action {
                VerticalAction::Resize { pod, changes, .. } => {
                    (changes, pods.iter().find(|x| &x.name == pod))
                }
                VerticalAction::PatchTemplate { changes, .. } => (changes, None),
                _ => return Ok(()),
            };
            prop_assert!(!changes.is_empty());
            for ch in changes {
                prop_assert_eq!(&ch.container, "app");
                for (r, rp) in [(Resource::Cpu, s.params.cpu), (Resource::Memory, s.params.memory)] {
                    if let Some(v) = ch.requests.get(r) {
                        prop_assert!(v >= rp.min && v <= rp.max, "{:?} request {} outside [{}, {}]: {}", r, v, rp.min, rp.max, p.action);
                    }
                }
            }
            if let Some(pod) = pod {
                prop_assert!(pod.qos_class != Some(QosClass::BestEffort));
                let mut after = pod.containers.clone();
                for ch in changes {
                    let c = after.iter_mut().find(|c| c.name == ch.container).unwrap();
                    for r in [Resource::Cpu, Resource::Memory] {
                        if let Some(v) = ch.requests.get(r) { c.requests.set(r, Some(v)); }
                        if let Some(v) = ch.limits.get(r) { c.limits.set(r, Some(v)); }
                    }
                }
                prop_assert_eq!(QosClass::of(&after), QosClass::of(&pod.containers), "{}", p.action);
                for c in &after {
                    for r in [Resource::Cpu, Resource::Memory] {
                        if let (Some(req), Some(lim)) = (c.requests.get(r), c.limits.get(r)) {
                            prop_assert!(req <= lim, "{:?} request {} above limit {}", r, req, lim);
                        }
                    }
                }
                if !s.allow_restart {
                    let no_restart = changes.iter().all(|ch| {
                        let c = pod.containers.iter().find(|c| c.name == ch.container).unwrap();
                        [Resource::Cpu, Resource::Memory].iter().all(|r| {
                            (ch.requests.get(*r).is_none() && ch.limits.get(*r).is_none())
                                || c.resize_policy.get(*r) == RestartPolicy::NotRequired
                        })
                    });
                    prop_assert!(no_restart, "a restarting resize with allowRestart false");
                }
            }
        }
    }
}
