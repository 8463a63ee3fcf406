//! Property tests: the engine never leaves [min, max] (a target someone else scaled to 0 stays
//! there, as the HPA leaves it), a paused policy moves only to its `paused-replicas` count, a
//! metric inside the tolerance band never changes the replica count, and the parsers never
//! panic on any input.

use proptest::prelude::*;
use setpoint::engine::budget::ActionBudget;
use setpoint::engine::governor::OnMissing;
use setpoint::engine::pause::{Controls, Pause};
use setpoint::engine::pid::PidParams;
use setpoint::engine::{
    self, Algorithm, Governor, Horizontal, MetricTarget, Observation, Sample, ScalingRules, Select,
    State, StepLimit, Target,
};
use std::path::Path;

fn select() -> impl Strategy<Value = Select> {
    prop_oneof![Just(Select::Max), Just(Select::Min), Just(Select::Disabled)]
}

fn limit() -> impl Strategy<Value = StepLimit> {
    prop_oneof![
        (1u32..20, 1.0..600.0f64).prop_map(|(value, period)| StepLimit::Pods { value, period }),
        (1.0..300.0f64, 1.0..600.0f64)
            .prop_map(|(value, period)| StepLimit::Percent { value, period }),
    ]
}

fn rules() -> impl Strategy<Value = ScalingRules> {
    (
        0.0..900.0f64,
        0.0..300.0f64,
        select(),
        prop::collection::vec(limit(), 0..3),
    )
        .prop_map(|(stabilization, cooldown, select, limits)| ScalingRules {
            stabilization,
            cooldown,
            select,
            limits,
        })
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        (0.01..1000.0f64).prop_map(Target::PerReplica),
        (0.05..2.0f64).prop_map(Target::Utilization),
    ]
}

fn algorithm() -> impl Strategy<Value = Algorithm> {
    prop_oneof![
        Just(Algorithm::Threshold),
        (
            0.0..5.0f64,
            0.0001..0.2f64,
            0.0..60.0f64,
            0.0..120.0f64,
            5.0..60.0f64
        )
            .prop_map(|(kp, ki, kd, derivative_filter, interval)| Algorithm::Pid(
                PidParams {
                    kp,
                    ki,
                    kd,
                    derivative_filter,
                    interval,
                }
            )),
    ]
}

fn horizontal() -> impl Strategy<Value = Horizontal> {
    (
        algorithm(),
        1u32..50,
        0u32..200,
        0.0..0.9f64,
        0.0..0.9f64,
        rules(),
        rules(),
        prop::collection::vec(target(), 1..4),
        prop::option::of((0u32..300, 1u32..5)),
        prop::option::of(0.05..1.0f64),
    )
        .prop_map(
            |(algorithm, min, span, up, down, scale_up, scale_down, targets, fallback, share)| {
                let max = min + span;
                Horizontal {
                    algorithm,
                    metrics: targets
                        .into_iter()
                        .enumerate()
                        .map(|(i, target)| MetricTarget {
                            name: format!("m{i}"),
                            target,
                        })
                        .collect(),
                    governor: Governor {
                        min,
                        max,
                        tolerance_up: up,
                        tolerance_down: down,
                        scale_up,
                        scale_down,
                        on_missing: match fallback {
                            None => OnMissing::Hold,
                            Some((r, after)) => OnMissing::Fallback {
                                replicas: r.clamp(min, max),
                                after,
                            },
                        },
                        scale_to_zero: Default::default(),
                        schedules: Vec::new(),
                        budget: share.map(|share| ActionBudget { share }),
                    },
                }
            },
        )
}

/// Pause controls: mostly none, else any mix, a bad `paused-replicas` among them.
fn controls() -> impl Strategy<Value = Controls> {
    prop_oneof![
        2 => Just(Controls::default()),
        3 => (
            any::<bool>(),
            prop::option::of(prop_oneof![
                4 => (0u32..300).prop_map(Ok),
                1 => Just(Err("abc".to_string())),
            ]),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(paused, replicas, scale_up, scale_down)| Controls {
                paused,
                replicas,
                scale_up,
                scale_down,
            }),
    ]
}

fn sample() -> impl Strategy<Value = Sample> {
    prop_oneof![
        6 => (0.0..1e4f64).prop_map(Sample::from_f64),
        1 => prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(0.0), Just(1e300), Just(-5.0)]
            .prop_map(Sample::from_f64),
        1 => Just(Sample::no_data("query failed")),
    ]
}

/// One tick's input: a jump of the current count (someone else scaled), ready share, samples,
/// and the time step.
fn tick_input() -> impl Strategy<Value = (Option<u32>, f64, Vec<Sample>, f64)> {
    (
        prop::option::weighted(0.05, 0u32..400),
        0.0..=1.0f64,
        prop::collection::vec(sample(), 0..4),
        prop_oneof![Just(15.0), 0.0..120.0f64],
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn replicas_never_leave_bounds(h in horizontal(), start in 0u32..400,
                                   ticks in prop::collection::vec(tick_input(), 1..120)) {
        let g = &h.governor;
        let mut current = start;
        let mut state = State::conservative(current, 0.0);
        let mut now = 0.0;
        for (jump, ready_share, samples, dt) in ticks {
            if let Some(j) = jump { current = j; }
            now += dt;
            let obs = Observation {
                current_replicas: current,
                ready_replicas: (current as f64 * ready_share) as u32,
                samples,
            };
            let d = engine::tick(&h, &mut state, &obs, now);
            let switched_off = current == 0 && d.desired_replicas == 0;
            prop_assert!(switched_off || (d.desired_replicas >= g.min && d.desired_replicas <= g.max),
                "{} outside [{}, {}]: {}", d.desired_replicas, g.min, g.max, d);
            current = d.desired_replicas;
        }
    }

    #[test]
    fn a_paused_policy_stays_in_bounds_and_moves_only_to_its_paused_replicas(
        h in horizontal(), start in 0u32..400,
        ticks in prop::collection::vec((tick_input(), controls()), 1..120),
    ) {
        let g = &h.governor;
        let mut current = start.clamp(g.min, g.max);
        let mut state = State::conservative(current, 0.0);
        let mut now = 0.0;
        for ((jump, ready_share, samples, dt), controls) in ticks {
            // Someone else scales, within the bounds.
            if let Some(j) = jump { current = j.clamp(g.min, g.max); }
            now += dt;
            let obs = Observation {
                current_replicas: current,
                ready_replicas: (current as f64 * ready_share) as u32,
                samples,
            };
            let d = engine::decide(&h, &mut state, &obs, &controls, now);
            state.governor.commit(&d, now);
            let to = d.desired_replicas;
            prop_assert!(to >= g.min && to <= g.max, "{} outside [{}, {}]: {}", to, g.min, g.max, d);
            let asked = controls.requested().map(|(p, _)| p);
            prop_assert_eq!(d.explanation.pause.as_ref().map(|n| &n.pause), asked.as_ref());
            match asked {
                None => {}
                Some(Pause::Replicas { requested }) => {
                    prop_assert_eq!(to, requested.clamp(g.min, g.max), "{}", d)
                }
                Some(Pause::ScaleUp) => prop_assert!(to <= current, "{}", d),
                Some(Pause::ScaleDown) => prop_assert!(to >= current, "{}", d),
                Some(_) => prop_assert_eq!(to, current, "{}", d),
            }
            current = to;
        }
    }

    #[test]
    fn metrics_inside_the_tolerance_band_never_change_replicas(
        h in horizontal(),
        history in prop::collection::vec(tick_input(), 0..40),
        pos in prop::collection::vec(-1.0..=1.0f64, 4),
        pick in 0u32..1000,
    ) {
        let g = h.governor.clone();
        // Any history first.
        let mut current = g.min;
        let mut state = State::conservative(current, 0.0);
        let mut now = 0.0;
        for (_, ready_share, samples, dt) in history {
            now += dt;
            let obs = Observation { current_replicas: current, ready_replicas: (current as f64 * ready_share) as u32, samples };
            current = engine::tick(&h, &mut state, &obs, now).desired_replicas;
        }
        // Then every metric inside its band, at a count within bounds, with all pods ready.
        let current = g.min + pick % (g.max - g.min + 1);
        let samples = h.metrics.iter().zip(pos).map(|(m, p)| {
            let ratio = if p >= 0.0 { 1.0 + p * g.tolerance_up } else { 1.0 + p * g.tolerance_down };
            Sample::from_f64(match m.target {
                Target::Utilization(t) => t * ratio,
                Target::PerReplica(t) => t * current as f64 * ratio,
            })
        }).collect();
        let obs = Observation { current_replicas: current, ready_replicas: current, samples };
        let d = engine::tick(&h, &mut state, &obs, now + 15.0);
        prop_assert_eq!(d.desired_replicas, current, "{}", d);
    }

    #[test]
    fn policy_parser_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = setpoint::policy::parse(&text, Path::new("fuzz.yaml"));
    }

    #[test]
    fn policy_parser_never_panics_on_yaml(doc in yaml_doc()) {
        let _ = setpoint::policy::parse(&doc, Path::new("fuzz.yaml"));
    }

    #[test]
    fn policy_parser_never_panics_on_mutated_examples(cut in 0usize..2000, insert in "[ -~\n]{0,12}") {
        for example in [include_str!("../policies/examples/hpa.yaml"), include_str!("../policies/examples/threshold.yaml")] {
            let mut s = example.to_string();
            let at = (0..=cut.min(s.len())).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0);
            s.insert_str(at, &insert);
            let _ = setpoint::policy::parse(&s, Path::new("fuzz.yaml"));
        }
    }

    #[test]
    fn trace_parser_never_panics(text in "(timestamp_s,value\n)?([-0-9.eE,a-z ]{0,12}\n){0,20}") {
        let _ = setpoint::sim::Trace::parse(&text, Path::new("fuzz.csv"));
    }
}

/// Arbitrary YAML built from the policy's own vocabulary, so that the parser is driven deep into
/// the model, with scalars of every type in every place.
fn yaml_doc() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("apiVersion"),
        Just("kind"),
        Just("metadata"),
        Just("name"),
        Just("spec"),
        Just("target"),
        Just("horizontal"),
        Just("replicas"),
        Just("min"),
        Just("max"),
        Just("metrics"),
        Just("prometheus"),
        Just("targetPerReplica"),
        Just("utilization"),
        Just("tolerance"),
        Just("up"),
        Just("down"),
        Just("scaleUp"),
        Just("scaleDown"),
        Just("stabilization"),
        Just("cooldown"),
        Just("limits"),
        Just("pods"),
        Just("percent"),
        Just("per"),
        Just("select"),
        Just("onMetricError"),
        Just("fallback"),
        Just("after"),
        Just("interval"),
        Just("mode"),
        Just("preset"),
        Just("policy"),
        Just("threshold"),
        Just("x"),
    ];
    let scalar = prop_oneof![
        Just("setpoint.dev/v1alpha1".to_string()),
        Just("ScalingPolicy".to_string()),
        Just("15s".to_string()),
        Just("-1m".to_string()),
        Just("~".to_string()),
        Just("hold".to_string()),
        Just("hpa".to_string()),
        Just(".nan".to_string()),
        Just("*a".to_string()),
        Just("&a 3".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| v.to_string()),
        "[a-z0-9 :\\-\\[\\]{},'\"]{0,10}",
    ];
    let leaf = scalar.prop_map(|s| s);
    let node = leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec((key.clone(), inner.clone()), 0..6).prop_map(|kvs| {
                let items: Vec<String> = kvs.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                format!("{{{}}}", items.join(", "))
            }),
            prop::collection::vec(inner, 0..4).prop_map(|vs| format!("[{}]", vs.join(", "))),
        ]
    });
    prop::collection::vec(
        (
            prop_oneof![
                Just("apiVersion"),
                Just("kind"),
                Just("metadata"),
                Just("spec"),
                Just("zzz")
            ],
            node,
        ),
        0..5,
    )
    .prop_map(|kvs| kvs.iter().map(|(k, v)| format!("{k}: {v}\n")).collect())
}

/// A scale-to-zero policy: `horizontal()` with min 0, every metric a per-replica total, random
/// activation thresholds and idle time.
fn to_zero() -> impl Strategy<Value = Horizontal> {
    (
        horizontal(),
        prop::collection::vec(0.0..50.0f64, 4),
        0.0..600.0f64,
    )
        .prop_map(|(mut h, thresholds, idle)| {
            h.governor.min = 0;
            for (i, m) in h.metrics.iter_mut().enumerate() {
                if let Target::Utilization(u) = m.target {
                    m.target = Target::PerReplica(u * 100.0);
                }
                h.governor
                    .scale_to_zero
                    .thresholds
                    .push((m.name.clone(), thresholds[i]));
            }
            h.governor.scale_to_zero.idle = idle;
            h
        })
}

/// A queue-like reading: often empty, sometimes small, sometimes no data.
fn quiet_or_busy() -> impl Strategy<Value = Sample> {
    prop_oneof![
        4 => Just(Sample::from_f64(0.0)),
        3 => (0.0..100.0f64).prop_map(Sample::from_f64),
        1 => Just(Sample::no_data("query failed")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn nothing_reaches_zero_while_a_metric_is_above_its_threshold_or_has_no_data(
        h in to_zero(),
        start in 0u32..5,
        ticks in prop::collection::vec(
            (prop::collection::vec(quiet_or_busy(), 4), prop_oneof![Just(15.0), 1.0..400.0f64]),
            1..150,
        ),
    ) {
        let g = &h.governor;
        let mut current = start.min(g.max);
        let mut state = State::conservative(current, 0.0);
        let mut now = 0.0;
        for (samples, dt) in ticks {
            now += dt;
            let samples: Vec<Sample> = samples.into_iter().take(h.metrics.len()).collect();
            let obs = Observation { current_replicas: current, ready_replicas: current, samples: samples.clone() };
            let d = engine::tick(&h, &mut state, &obs, now);
            let quiet = h.metrics.iter().zip(&samples).all(|(m, s)| {
                s.value().is_some_and(|v| v <= g.scale_to_zero.threshold(&m.name))
            });
            prop_assert!(d.desired_replicas <= g.max, "{}", d);
            if d.desired_replicas == 0 {
                prop_assert!(quiet || current == 0, "to zero with a metric busy or missing: {}", d);
                prop_assert!(current <= 1, "to zero from {} in one step: {}", current, d);
            }
            let busy = h.metrics.iter().zip(&samples).any(|(m, s)| {
                s.value().is_some_and(|v| v > g.scale_to_zero.threshold(&m.name))
            });
            if busy {
                prop_assert!(d.desired_replicas > 0, "a busy metric left it at zero: {}", d);
            }
            current = d.desired_replicas;
        }
    }
}
