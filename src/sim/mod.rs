//! The simulator: the daemon's own [`engine::tick`] on a virtual clock against a trace-driven
//! service.
//!
//! The service model:
//! - each ready replica serves `capacity` requests/s; load above the ready capacity is unserved;
//! - replicas added by a decision become ready `startup` later; a scale-down removes replicas
//!   that are not ready yet first, and takes effect at once;
//! - the policy sees what Prometheus would show: the load averaged over the last 60 s, sampled
//!   every 15 s. A `targetPerReplica` metric reads that total; a `utilization` metric reads it
//!   divided by (ready replicas × capacity);
//! - the policy ticks at its own interval, the first tick one interval after the start;
//! - the run starts with `ceil(load / capacity)` replicas (within [min, max]), all ready;
//! - the engine's clock is the trace's wall clock ([`Trace::start`] + t), so schedules open at
//!   their dates; at zero, woken replicas become ready `startup` later like any other, and the
//!   load offered meanwhile is unserved (`unserved_waking_pct`).
//!
//! Time advances from event to event (ticks, trace steps, replicas becoming ready), and the
//! summary integrates exactly between events.

pub mod report;
pub mod trace;
pub mod tune;
pub mod vertical;

use crate::engine::{self, Observation, Sample, State, Target};
use crate::policy::Policy;
use serde::Serialize;
use std::collections::VecDeque;
pub use trace::{Trace, TraceError, Workload};

/// How often the simulated Prometheus samples the load.
pub const SCRAPE_INTERVAL: f64 = 15.0;
/// The window the simulated Prometheus averages over.
pub const RATE_WINDOW: f64 = 60.0;

/// Service model settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServiceModel {
    /// Requests/s one ready replica serves.
    pub capacity: f64,
    /// Seconds from a scale-up to the new replicas being ready.
    pub startup: f64,
}

impl ServiceModel {
    /// The defaults for a trace: capacity = mean / 20, start-up 60 s.
    pub fn for_trace(trace: &Trace) -> ServiceModel {
        ServiceModel {
            capacity: trace.mean() / 20.0,
            startup: 60.0,
        }
    }
}

/// One change of desired replicas.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionPoint {
    /// Seconds from the trace start.
    pub t: f64,
    /// Desired replicas from then on.
    pub replicas: u32,
    /// The decision's explanation, in one line.
    pub reason: String,
}

/// The run's summary: the contract `simulate` and `backtest` share.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Load above the ready capacity, as a % of all load.
    pub unserved_pct: f64,
    /// % of time with load above the ready capacity.
    pub under_time_pct: f64,
    /// Replica-seconds (ready plus starting) over the oracle's Σ ceil(load / capacity) · dt.
    pub cost_vs_oracle: f64,
    /// Changes of desired replicas.
    pub actions: u32,
    /// Replica-hours, ready plus starting.
    pub replica_hours: f64,
    /// Simulated hours.
    pub hours: f64,
    /// Capacity per replica used (requests/s).
    pub capacity: f64,
    /// Start-up delay used (seconds).
    pub startup_s: f64,
    /// Policy ticks.
    pub ticks: u64,
    /// Highest desired replica count.
    pub max_replicas: u32,
    /// Wake-ups from zero replicas.
    pub cold_starts: u32,
    /// % of time at zero desired replicas.
    pub zero_time_pct: f64,
    /// Load offered while no replica was ready (at zero, or woken and starting), as a % of all
    /// load: the cost of the cold starts.
    pub unserved_waking_pct: f64,
    /// Predictive policies: MASE of the load forecast against seasonal naive over the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast_mase: Option<f64>,
}

/// A point of the plotted series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeriesPoint {
    /// Seconds from the start.
    pub t: f64,
    /// Offered load (requests/s).
    pub load: f64,
    /// Ready capacity (requests/s).
    pub ready_capacity: f64,
    /// Desired replicas.
    pub replicas: u32,
}

/// What a run produces.
#[derive(Debug, Clone, Serialize)]
pub struct SimResult {
    /// t = 0, then every change of desired replicas.
    pub decisions: Vec<DecisionPoint>,
    /// The summary.
    pub summary: Summary,
    /// The series for the plot (one point per trace step).
    #[serde(skip)]
    pub series: Vec<SeriesPoint>,
}

/// The simulated replica set.
struct Replicas {
    ready: u32,
    /// Times at which starting replicas become ready, earliest first.
    starting: VecDeque<f64>,
}

impl Replicas {
    fn desired(&self) -> u32 {
        self.ready + self.starting.len() as u32
    }

    fn promote(&mut self, now: f64) {
        while self.starting.front().is_some_and(|&r| r <= now) {
            self.starting.pop_front();
            self.ready += 1;
        }
    }

    fn scale_to(&mut self, n: u32, ready_at: f64) {
        let d = self.desired();
        if n > d {
            self.starting
                .extend(std::iter::repeat_n(ready_at, (n - d) as usize));
        } else {
            let mut remove = d - n;
            while remove > 0 && self.starting.pop_back().is_some() {
                remove -= 1;
            }
            self.ready -= remove;
        }
    }
}

/// The policy's horizontal part. The drivers check that there is one before running it.
fn horizontal(policy: &Policy) -> &engine::Horizontal {
    policy
        .horizontal
        .as_ref()
        .expect("callers check that the policy has a horizontal part")
}

/// What the simulated Prometheus shows at time `t`: the load averaged over the 60 s before the
/// latest scrape (None before the first scrape has a window).
pub fn observed_load(trace: &Trace, t: f64) -> Option<f64> {
    let s = (t / SCRAPE_INTERVAL).floor() * SCRAPE_INTERVAL;
    trace.mean_between(s - RATE_WINDOW, s)
}

/// The samples a policy's metrics read, given the observed total load.
pub fn samples(policy: &Policy, load: Option<f64>, ready: u32, capacity: f64) -> Vec<Sample> {
    horizontal(policy)
        .metrics
        .iter()
        .map(|m| match (load, m.target) {
            (None, _) => Sample::no_data("no samples in the rate window yet"),
            (Some(l), Target::PerReplica(_)) => Sample::from_f64(l),
            (Some(_), Target::Utilization(_)) if ready == 0 => Sample::no_data("no ready replicas"),
            (Some(l), Target::Utilization(_)) => Sample::from_f64(l / (ready as f64 * capacity)),
        })
        .collect()
}

/// Runs `policy` against `trace` with the given service model.
pub fn run(policy: &Policy, trace: &Trace, model: ServiceModel) -> SimResult {
    run_with(policy, trace, model, |t, ready| {
        samples(policy, observed_load(trace, t), ready, model.capacity)
    })
}

/// Runs `policy` against `trace`, with the policy's samples at each tick given by
/// `observe(t, ready_replicas)`. `simulate` observes the trace itself; `backtest` observes what
/// Prometheus recorded.
pub fn run_with(
    policy: &Policy,
    trace: &Trace,
    model: ServiceModel,
    observe: impl FnMut(f64, u32) -> Vec<Sample>,
) -> SimResult {
    run_scored(policy, trace, model, 0.0, observe)
}

/// Runs `policy` against the whole of `trace` as [`run`] does, with the summary counting only
/// the part from `score_from` seconds on (the policy still learns from all of it): how
/// out-of-sample scores are taken.
pub fn run_from(policy: &Policy, trace: &Trace, model: ServiceModel, score_from: f64) -> SimResult {
    run_scored(policy, trace, model, score_from, |t, ready| {
        samples(policy, observed_load(trace, t), ready, model.capacity)
    })
}

fn run_scored(
    policy: &Policy,
    trace: &Trace,
    model: ServiceModel,
    score_from: f64,
    mut observe: impl FnMut(f64, u32) -> Vec<Sample>,
) -> SimResult {
    let h = horizontal(policy);
    let g = &h.governor;
    let cap = model.capacity;
    let initial = ((trace.values[0] / cap).ceil() as u32).clamp(g.min, g.max);
    let mut reps = Replicas {
        ready: initial,
        starting: VecDeque::new(),
    };
    let mut state = State::conservative(initial, trace.start);
    let mut decisions = vec![DecisionPoint {
        t: 0.0,
        replicas: initial,
        reason: format!(
            "initial: ceil(load {} / capacity {}) within [{}, {}]",
            engine::fmt_num(trace.values[0]),
            engine::fmt_num(cap),
            g.min,
            g.max
        ),
    }];
    let mut series = Vec::with_capacity(trace.values.len());
    let (mut load_total, mut unserved, mut under_time, mut replica_s) = (0.0, 0.0, 0.0, 0.0);
    let (mut ticks, mut max_replicas, mut actions) = (0u64, initial, 0u32);
    let (mut cold_starts, mut zero_time, mut unserved_waking) = (0u32, 0.0, 0.0);
    let mut t = 0.0;
    let mut step = 0;
    let mut next_tick = policy.interval;
    while t < trace.end {
        let step_end = trace.step_end(step);
        let next = next_tick
            .min(step_end)
            .min(reps.starting.front().copied().unwrap_or(f64::INFINITY))
            .min(trace.end);
        let (dt, load) = (next - t, trace.values[step]);
        let ready_cap = reps.ready as f64 * cap;
        // Only the scored part counts (a slice straddling its start, in part).
        let dt = (next - t.max(score_from)).max(0.0).min(dt);
        load_total += load * dt;
        if load > ready_cap {
            unserved += (load - ready_cap) * dt;
            under_time += dt;
        }
        replica_s += reps.desired() as f64 * dt;
        if reps.desired() == 0 {
            zero_time += dt;
        }
        if reps.ready == 0 {
            unserved_waking += load * dt;
        }
        if series
            .last()
            .is_none_or(|p: &SeriesPoint| p.t < trace.times[step])
        {
            series.push(SeriesPoint {
                t: trace.times[step],
                load,
                ready_capacity: ready_cap,
                replicas: reps.desired(),
            });
        }
        t = next;
        if t >= step_end && step + 1 < trace.values.len() {
            step += 1;
        }
        reps.promote(t);
        if t >= next_tick && t < trace.end {
            next_tick += policy.interval;
            ticks += 1;
            let obs = Observation {
                current_replicas: reps.desired(),
                ready_replicas: reps.ready,
                samples: observe(t, reps.ready),
            };
            let d = engine::tick(h, &mut state, &obs, trace.start + t);
            if d.current_replicas == 0 && d.desired_replicas > 0 && t >= score_from {
                cold_starts += 1;
            }
            if d.desired_replicas != d.current_replicas {
                reps.scale_to(d.desired_replicas, t + model.startup);
                reps.promote(t);
                if t >= score_from {
                    actions += 1;
                }
                max_replicas = max_replicas.max(d.desired_replicas);
                decisions.push(DecisionPoint {
                    t,
                    replicas: d.desired_replicas,
                    reason: d.to_string(),
                });
            }
        }
    }
    let oracle: f64 = (0..trace.values.len())
        .map(|i| {
            let span = trace.step_end(i) - trace.times[i].max(score_from);
            (trace.values[i] / cap).ceil() * span.max(0.0)
        })
        .sum();
    let pct = |a: f64, b: f64| if b > 0.0 { 100.0 * a / b } else { 0.0 };
    SimResult {
        summary: Summary {
            unserved_pct: pct(unserved, load_total),
            under_time_pct: pct(under_time, trace.end - score_from.max(0.0)),
            cost_vs_oracle: if oracle > 0.0 {
                replica_s / oracle
            } else {
                0.0
            },
            actions,
            replica_hours: replica_s / 3600.0,
            hours: (trace.end - score_from.max(0.0)).max(0.0) / 3600.0,
            capacity: cap,
            startup_s: model.startup,
            ticks,
            max_replicas,
            cold_starts,
            zero_time_pct: pct(zero_time, trace.end - score_from.max(0.0)),
            unserved_waking_pct: pct(unserved_waking, load_total),
            forecast_mase: state
                .predictive
                .metrics
                .first()
                .and_then(|m| m.forecaster().mase()),
        },
        decisions,
        series,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn policy(extra: &str) -> Policy {
        let text = format!(
            "apiVersion: setpoint.dev/v1alpha1\nkind: ScalingPolicy\nmetadata: {{name: t}}\n\
             spec:\n  target: {{kind: Deployment, name: t}}\n  interval: 15s\n  horizontal:\n    \
             replicas: {{min: 1, max: 50}}\n    metrics: [{{prometheus: q, targetPerReplica: 10}}]\n{extra}"
        );
        crate::policy::parse(&text, Path::new("t.yaml")).unwrap()
    }

    fn flat(values: &[(f64, f64)]) -> Trace {
        Trace::new(
            values.iter().map(|v| v.0).collect(),
            values.iter().map(|v| v.1).collect(),
        )
    }

    #[test]
    fn steady_load_at_oracle_cost_is_calm() {
        // 100 req/s, capacity 10: the oracle needs exactly 10 and so does the policy.
        let tr = flat(&[(0.0, 100.0), (3600.0, 100.0)]);
        let r = run(
            &policy(""),
            &tr,
            ServiceModel {
                capacity: 10.0,
                startup: 60.0,
            },
        );
        assert_eq!(r.summary.actions, 0);
        assert_eq!(r.decisions[0].replicas, 10);
        assert!((r.summary.cost_vs_oracle - 1.0).abs() < 1e-9);
        assert_eq!(r.summary.unserved_pct, 0.0);
        assert_eq!(r.summary.ticks, 2 * 3600 / 15 - 1);
    }

    #[test]
    fn a_load_step_is_followed_after_startup() {
        // Load doubles at t=600; scale-up happens at the first tick whose 60 s window shows it
        // beyond tolerance, and the new replicas are ready 60 s later.
        let tr = flat(&[(0.0, 100.0), (600.0, 200.0), (1200.0, 200.0)]);
        let r = run(
            &policy("    preset: none\n"),
            &tr,
            ServiceModel {
                capacity: 10.0,
                startup: 60.0,
            },
        );
        let up = &r.decisions[1];
        assert!(up.t > 600.0 && up.t <= 630.0, "{up:?}");
        assert!(up.replicas > 10);
        assert_eq!(r.decisions.last().unwrap().replicas, 20);
        // Unserved: between the step and the last new replicas becoming ready.
        assert!(r.summary.unserved_pct > 0.0 && r.summary.unserved_pct < 5.0);
        assert!(r.summary.under_time_pct > 0.0);
    }

    #[test]
    fn an_idle_stretch_goes_to_zero_and_the_wake_up_costs_the_start_up() {
        // Busy for an hour, idle for two, busy for an hour: min 0, idle 5m.
        let p = {
            let text = "apiVersion: setpoint.dev/v1alpha1\nkind: ScalingPolicy\nmetadata: {name: q}\n\
                 spec:\n  target: {kind: Deployment, name: q}\n  horizontal:\n    \
                 replicas: {min: 0, max: 50}\n    idle: 5m\n    \
                 metrics: [{prometheus: q, targetPerReplica: 10}]\n";
            crate::policy::parse(text, std::path::Path::new("q.yaml")).unwrap()
        };
        let tr = flat(&[
            (0.0, 100.0),
            (3600.0, 0.0),
            (3.0 * 3600.0, 100.0),
            (4.0 * 3600.0, 100.0),
        ]);
        let model = ServiceModel {
            capacity: 12.5,
            startup: 60.0,
        };
        let r = run(&p, &tr, model);
        assert_eq!(r.summary.cold_starts, 1, "{:?}", r.decisions);
        let zero = r.decisions.iter().find(|d| d.replicas == 0).unwrap();
        // The 60 s rate window, the 300 s stabilization to 1, then 5 idle minutes.
        assert!(
            zero.t > 3600.0 + 300.0 && zero.t < 3600.0 + 900.0,
            "{zero:?}"
        );
        let wake = r
            .decisions
            .iter()
            .find(|d| d.t > zero.t && d.replicas > 0)
            .unwrap();
        assert!(
            wake.t > 3.0 * 3600.0 && wake.t <= 3.0 * 3600.0 + 30.0,
            "{wake:?}"
        );
        assert!(wake.reason.contains("wakes from zero"), "{wake:?}");
        // At zero from ~1:10 to 3:00 of 5 hours.
        assert!(
            (30.0..40.0).contains(&r.summary.zero_time_pct),
            "{:?}",
            r.summary
        );
        // While waking (under 30 s of rate window plus 60 s of start-up) the load is unserved.
        let waking = r.summary.unserved_waking_pct;
        assert!(waking > 0.2 && waking < 1.0, "{waking}");
    }

    #[test]
    fn scale_down_removes_starting_replicas_first() {
        let mut reps = Replicas {
            ready: 3,
            starting: VecDeque::from(vec![10.0, 20.0]),
        };
        reps.scale_to(4, 0.0);
        assert_eq!((reps.ready, reps.starting.len()), (3, 1));
        assert_eq!(reps.starting[0], 10.0, "the latest-starting one went first");
        reps.scale_to(2, 0.0);
        assert_eq!((reps.ready, reps.starting.len()), (2, 0));
        reps.scale_to(5, 30.0);
        reps.promote(29.0);
        assert_eq!(reps.ready, 2);
        reps.promote(30.0);
        assert_eq!(reps.ready, 5);
    }

    #[test]
    fn observed_load_lags_like_prometheus() {
        let tr = flat(&[(0.0, 0.0), (100.0, 60.0), (1000.0, 60.0)]);
        assert_eq!(observed_load(&tr, 10.0), None, "no scrape window yet");
        // At t=119 the last scrape is at 105: window [45, 105] has 5 s of 60 req/s.
        assert!((observed_load(&tr, 119.0).unwrap() - 5.0).abs() < 1e-9);
        assert!((observed_load(&tr, 175.0).unwrap() - 60.0).abs() < 1e-9);
    }

    #[test]
    fn utilization_reads_load_over_ready_capacity() {
        let p = {
            let mut p = policy("");
            p.horizontal.as_mut().unwrap().metrics[0].target = Target::Utilization(0.5);
            p
        };
        let s = samples(&p, Some(50.0), 4, 25.0);
        assert_eq!(s[0].value(), Some(0.5));
        assert!(samples(&p, Some(50.0), 0, 25.0)[0].value().is_none());
    }
}
