//! Scale to and from zero: the governor's activation and idle rules for a policy with
//! `replicas.min: 0`.
//!
//! - **Activation** (0 → N): at zero, a metric with data strictly above its activation threshold
//!   (KEDA's `activationThreshold`; default 0) wakes the target at once to the larger of 1 and the
//!   policy's proposal: no stabilization window, cooldown or rate limit holds a wake-up (a
//!   scale-down cooldown that is still running after the target went to zero does not either).
//!   An open schedule window with a floor wakes it the same way. Bounds still apply.
//! - **At zero**, every other case stays at zero: metrics at or below their thresholds, and no
//!   data (which holds, as everywhere; `onMetricError.fallback` may still raise the target after
//!   its failed ticks). Only a metric with data can wake it, and missing data of another metric
//!   does not stop that.
//! - **Idle clock**: it runs while every metric of the policy has data at or below its
//!   threshold, and stops at the first tick where one is above or has no data.
//! - **Deactivation** (1 → 0): the normal rules (tolerance, stabilization, cooldown, rate limits)
//!   bring the target down to 1, never lower; at 1, once the idle clock has run for
//!   `horizontal.idle` (default 5m), the next tick goes to 0, unless a scale-down cooldown is
//!   still running, scale-down is disabled, or a schedule window is open.
//!
//! The idle clock lives in [`GovernorState::idle_since`], which the restart annotation carries;
//! a restarted daemon starts it again (it cannot know what happened while it was away), so a
//! restart can delay a scale to zero, never hasten it. A target at zero stays there across
//! restarts and leader changes until a metric activates it: nothing but activation leaves zero.

use super::governor::{Governor, GovernorState, Rule, Select, Steps, TimedReplicas};
use super::schedule::Window;
use super::{Proposal, Recommendation, Seconds, fmt_num};
use crate::text::secs;
use serde::{Deserialize, Serialize};

/// The default of `horizontal.idle`: five minutes.
pub const DEFAULT_IDLE: Seconds = 300.0;

/// The scale-to-zero settings of a policy (used only when `min` is 0).
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleToZero {
    /// Activation thresholds by metric name (a metric not listed has 0).
    pub thresholds: Vec<(String, f64)>,
    /// How long every metric must be at or below its threshold before 1 → 0 (seconds).
    pub idle: Seconds,
}

impl Default for ScaleToZero {
    fn default() -> Self {
        ScaleToZero {
            thresholds: Vec::new(),
            idle: DEFAULT_IDLE,
        }
    }
}

impl ScaleToZero {
    /// The activation threshold of `metric`.
    pub fn threshold(&self, metric: &str) -> f64 {
        self.thresholds
            .iter()
            .find(|(m, _)| m == metric)
            .map_or(0.0, |(_, t)| *t)
    }

    /// The proposals whose value is strictly above their metric's threshold, with it.
    fn above<'a>(&'a self, rec: &'a Recommendation) -> impl Iterator<Item = (&'a Proposal, f64)> {
        rec.proposals
            .iter()
            .map(|p| (p, self.threshold(&p.metric)))
            .filter(|(p, t)| p.value > *t)
    }

    /// Whether every metric had data at or below its threshold.
    pub fn quiet(&self, rec: &Recommendation) -> bool {
        rec.missing.is_empty() && !rec.proposals.is_empty() && self.above(rec).next().is_none()
    }
}

/// Where a scale-to-zero policy stands after a decision (in its [`super::Explanation`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    /// Whether the decision leaves the target running (above zero replicas).
    pub active: bool,
    /// The metrics with data above their activation threshold this tick: what keeps the target
    /// awake, or woke it.
    pub above_threshold: Vec<String>,
    /// Since when every metric has been at or below its threshold, with data (None: not idle).
    pub idle_since: Option<Seconds>,
    /// How long that must last before the target goes from 1 to 0 (seconds).
    pub idle_s: Seconds,
}

impl Governor {
    /// Whether the scale-to-zero rules apply.
    pub(super) fn scales_to_zero(&self) -> bool {
        self.min == 0
    }

    /// The decision at zero replicas: wake (a metric above its threshold, an open schedule
    /// window), fall back after failed ticks, or stay at zero.
    pub(super) fn wake(
        &self,
        st: &mut GovernorState,
        rec: &Recommendation,
        proposed: Option<u32>,
        window: Option<&Window>,
        steps: &mut Steps,
        now: Seconds,
    ) -> u32 {
        let z = &self.scale_to_zero;
        let woke = |st: &mut GovernorState, to: u32| {
            st.recommendations.push(TimedReplicas {
                t: now,
                replicas: to as i64,
            });
            st.idle_since = None;
        };
        if let Some((p, threshold)) = z.above(rec).next() {
            let to = self.clamp(proposed.unwrap_or(1).max(1) as i64);
            woke(st, to);
            return steps.apply(Rule::Activation, 0, to, || {
                format!(
                    "{} {} > activation threshold {}: wakes from zero to {to} at once",
                    p.metric,
                    fmt_num(p.value),
                    fmt_num(threshold)
                )
            });
        }
        if let (Some(w), Some(p)) = (window, proposed)
            && p > 0
        {
            let to = self.clamp(p as i64);
            woke(st, to);
            return steps.apply(Rule::Activation, 0, to, || {
                format!("{w} is open: wakes from zero to {to}")
            });
        }
        if rec.proposals.is_empty() {
            return self.on_missing(st, 0, steps);
        }
        let quiet: Vec<String> = rec
            .proposals
            .iter()
            .map(|p| {
                format!(
                    "{} {} <= {}",
                    p.metric,
                    fmt_num(p.value),
                    fmt_num(z.threshold(&p.metric))
                )
            })
            .collect();
        let mut detail = format!(
            "at zero: no metric above its activation threshold ({})",
            quiet.join(", ")
        );
        if !rec.missing.is_empty() {
            let names: Vec<&str> = rec.missing.iter().map(|m| m.metric.as_str()).collect();
            detail += &format!("; no data for {}: stays at zero", names.join(", "));
        }
        steps.note(Rule::Idle, 0, detail)
    }

    /// The idle clock, and 1 → 0 once it has run for `idle`. `desired` is what the other rules
    /// decided.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn idle(
        &self,
        st: &mut GovernorState,
        current: u32,
        desired: u32,
        rec: &Recommendation,
        window: Option<&Window>,
        steps: &mut Steps,
        now: Seconds,
    ) -> u32 {
        let z = &self.scale_to_zero;
        if !self.scales_to_zero() {
            return desired;
        }
        if current == 0 || !z.quiet(rec) {
            st.idle_since = None;
            return desired;
        }
        let since = *st.idle_since.get_or_insert(now);
        if current != 1 || desired != 1 {
            return desired;
        }
        let idle_for = now - since;
        if idle_for < z.idle {
            return steps.note(
                Rule::Idle,
                1,
                format!(
                    "every metric at or below its activation threshold for {} of {}",
                    secs(idle_for),
                    secs(z.idle)
                ),
            );
        }
        if let Some(w) = window {
            return steps.note(Rule::Schedule, 1, format!("{w} is open: not to zero"));
        }
        if self.scale_down.select == Select::Disabled {
            return steps.note(Rule::RateLimit, 1, "scale-down disabled".into());
        }
        if let Some((t, last)) = st.last_action
            && now - t < self.scale_down.cooldown
        {
            return steps.note(
                Rule::Cooldown,
                1,
                format!(
                    "scale-down cooldown {}: last action (scale {last}) {} ago",
                    secs(self.scale_down.cooldown),
                    secs(now - t)
                ),
            );
        }
        let names: Vec<&str> = rec.proposals.iter().map(|p| p.metric.as_str()).collect();
        steps.apply(Rule::Deactivation, 1, 0, || {
            format!(
                "{} at or below the activation threshold for {}: to zero",
                names.join(", "),
                secs(idle_for)
            )
        })
    }

    /// The explanation's [`Activity`] (None unless the policy scales to zero).
    pub(super) fn activity(
        &self,
        st: &GovernorState,
        rec: &Recommendation,
        desired: u32,
    ) -> Option<Activity> {
        let z = &self.scale_to_zero;
        self.scales_to_zero().then(|| Activity {
            active: desired > 0,
            above_threshold: z.above(rec).map(|(p, _)| p.metric.clone()).collect(),
            idle_since: st.idle_since,
            idle_s: z.idle,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::governor::{OnMissing, ScalingRules};
    use crate::engine::pause::Controls;
    use crate::engine::schedule::{Capacity, Schedule};
    use crate::engine::{Direction, Missing, Observation, Target};

    /// min 0, max 20, the HPA's defaults, queue `q` at 10 per replica (threshold 0), idle 60 s.
    fn zero() -> Governor {
        Governor {
            min: 0,
            max: 20,
            tolerance_up: 0.1,
            tolerance_down: 0.1,
            scale_up: ScalingRules::hpa_up(),
            scale_down: ScalingRules::hpa_down(),
            on_missing: OnMissing::Hold,
            scale_to_zero: ScaleToZero {
                thresholds: vec![("q".into(), 0.0)],
                idle: 60.0,
            },
            schedules: Vec::new(),
            budget: None,
        }
    }

    /// `q` at `value` (10 per replica), and `others` more metrics at their values.
    fn rec(current: u32, value: f64) -> Recommendation {
        let p = |metric: &str, value: f64| Proposal {
            metric: metric.into(),
            value,
            target: Target::PerReplica(10.0),
            ratio: value / (10.0 * current.max(1) as f64),
            replicas: (value / 10.0).ceil() as u32,
        };
        Recommendation {
            proposals: vec![p("q", value)],
            ..Recommendation::default()
        }
    }

    fn no_data() -> Recommendation {
        Recommendation {
            missing: vec![Missing {
                metric: "q".into(),
                reason: "connection refused".into(),
            }],
            ..Recommendation::default()
        }
    }

    fn step(
        g: &Governor,
        st: &mut GovernorState,
        current: u32,
        r: Recommendation,
        now: Seconds,
    ) -> (u32, Option<Rule>) {
        let obs = Observation {
            current_replicas: current,
            ready_replicas: current,
            samples: vec![],
        };
        let d = g.govern(st, &obs, r, &Controls::default(), now);
        // Applied, as the daemon's tick commits what it patched.
        st.commit(&d, now);
        (d.desired_replicas, d.explanation.limited_by())
    }

    #[test]
    fn a_new_leader_at_zero_does_not_wake_the_target() {
        let g = zero();
        // A standby's memory: restored at zero, then ticks whose decisions it never applied.
        let mut st = GovernorState::conservative(0, 0.0);
        let obs = Observation {
            current_replicas: 0,
            ready_replicas: 0,
            samples: vec![],
        };
        for i in 1..=20 {
            let d = g.govern(
                &mut st,
                &obs,
                rec(0, 0.0),
                &Controls::default(),
                i as f64 * 15.0,
            );
            assert_eq!(d.desired_replicas, 0, "tick {i}");
        }
        // It takes the Lease: a quiet metric, or none, keeps the target at zero.
        assert_eq!(step(&g, &mut st, 0, rec(0, 0.0), 315.0).0, 0);
        assert_eq!(step(&g, &mut st, 0, no_data(), 330.0).0, 0);
        // Only a metric above its threshold wakes it.
        assert_eq!(step(&g, &mut st, 0, rec(0, 5.0), 345.0).0, 1);
    }

    #[test]
    fn a_metric_above_its_threshold_wakes_at_once_to_the_proposal() {
        let g = zero();
        let mut st = GovernorState::conservative(0, 0.0);
        assert_eq!(
            step(&g, &mut st, 0, rec(0, 0.0), 15.0),
            (0, Some(Rule::Idle))
        );
        // 75 messages at 10 per replica: 8 at once, past the HPA's +4 pods per 15 s.
        let obs = Observation {
            current_replicas: 0,
            ready_replicas: 0,
            samples: vec![],
        };
        let d = g.govern(&mut st, &obs, rec(0, 75.0), &Controls::default(), 30.0);
        assert_eq!(d.desired_replicas, 8);
        assert_eq!(d.explanation.limited_by(), Some(Rule::Activation));
        assert!(
            d.to_string()
                .contains("q 75 > activation threshold 0: wakes from zero to 8 at once"),
            "{d}"
        );
        let a = d.explanation.activity.unwrap();
        assert!(a.active);
        assert_eq!(a.above_threshold, ["q"]);
        // A single message wakes it to 1.
        let mut st = GovernorState::default();
        assert_eq!(
            step(&g, &mut st, 0, rec(0, 1.0), 0.0),
            (1, Some(Rule::Activation))
        );
    }

    #[test]
    fn the_activation_threshold_is_strict_and_per_metric() {
        let mut g = zero();
        g.scale_to_zero.thresholds = vec![("q".into(), 5.0)];
        let mut st = GovernorState::default();
        assert_eq!(
            step(&g, &mut st, 0, rec(0, 5.0), 0.0),
            (0, Some(Rule::Idle))
        );
        assert_eq!(
            step(&g, &mut st, 0, rec(0, 5.5), 15.0),
            (1, Some(Rule::Activation))
        );
    }

    #[test]
    fn a_wake_up_is_not_held_by_a_cooldown_or_stabilization() {
        let mut g = zero();
        g.scale_up.cooldown = 600.0;
        g.scale_up.stabilization = 300.0;
        // Just went to zero.
        let mut st = GovernorState {
            last_action: Some((100.0, Direction::Down)),
            ..GovernorState::default()
        };
        assert_eq!(
            step(&g, &mut st, 0, rec(0, 30.0), 115.0),
            (3, Some(Rule::Activation))
        );
    }

    #[test]
    fn the_idle_clock_takes_the_target_to_one_then_zero() {
        let g = zero();
        let mut st = GovernorState::conservative(3, 0.0);
        // The queue empties at t=15: the normal rules hold 3 for the 300 s stabilization window.
        assert_eq!(
            step(&g, &mut st, 3, rec(3, 0.0), 15.0),
            (3, Some(Rule::Stabilization))
        );
        assert_eq!(st.idle_since, Some(15.0));
        // At 300 s the window has passed: down to 1, never lower by the normal rules.
        let (n, _) = step(&g, &mut st, 3, rec(3, 0.0), 300.0);
        assert_eq!(n, 1);
        // At 1, idle since 15 s: 300 - 15 >= 60 → but the 1 → 0 step waits for the next tick.
        assert_eq!(
            step(&g, &mut st, 1, rec(1, 0.0), 315.0),
            (0, Some(Rule::Deactivation))
        );
        // At zero it stays.
        assert_eq!(
            step(&g, &mut st, 0, rec(0, 0.0), 330.0),
            (0, Some(Rule::Idle))
        );
        assert_eq!(st.idle_since, None);
    }

    #[test]
    fn the_idle_clock_restarts_when_a_metric_rises_or_has_no_data() {
        let g = zero();
        let mut st = GovernorState::default();
        assert_eq!(
            step(&g, &mut st, 1, rec(1, 0.0), 0.0),
            (1, Some(Rule::Idle))
        );
        assert_eq!(
            step(&g, &mut st, 1, rec(1, 0.0), 45.0),
            (1, Some(Rule::Idle))
        );
        // A message at 50 s: the clock stops.
        step(&g, &mut st, 1, rec(1, 2.0), 50.0);
        assert_eq!(st.idle_since, None);
        assert_eq!(
            step(&g, &mut st, 1, rec(1, 0.0), 65.0),
            (1, Some(Rule::Idle))
        );
        // No data at 100 s: the clock stops too, and the count holds.
        assert_eq!(
            step(&g, &mut st, 1, no_data(), 100.0),
            (1, Some(Rule::MissingData))
        );
        assert_eq!(st.idle_since, None);
        assert_eq!(
            step(&g, &mut st, 1, rec(1, 0.0), 115.0),
            (1, Some(Rule::Idle))
        );
        assert_eq!(
            step(&g, &mut st, 1, rec(1, 0.0), 175.0),
            (0, Some(Rule::Deactivation))
        );
    }

    #[test]
    fn missing_data_at_zero_holds_and_a_fallback_may_raise() {
        let mut g = zero();
        let mut st = GovernorState::default();
        assert_eq!(
            step(&g, &mut st, 0, no_data(), 0.0),
            (0, Some(Rule::MissingData))
        );
        g.on_missing = OnMissing::Fallback {
            replicas: 2,
            after: 2,
        };
        let mut st = GovernorState::default();
        assert_eq!(
            step(&g, &mut st, 0, no_data(), 0.0),
            (0, Some(Rule::MissingData))
        );
        assert_eq!(
            step(&g, &mut st, 0, no_data(), 15.0),
            (2, Some(Rule::Fallback))
        );
    }

    #[test]
    fn partial_data_wakes_on_the_metric_with_data_and_never_idles() {
        let mut g = zero();
        g.scale_to_zero.thresholds.push(("lag".into(), 0.0));
        let missing_lag = |current, value| {
            let mut r = rec(current, value);
            r.missing = vec![Missing {
                metric: "lag".into(),
                reason: "empty result".into(),
            }];
            r
        };
        let mut st = GovernorState::default();
        // q quiet, lag unknown: stays at zero, and says why.
        let obs = Observation {
            current_replicas: 0,
            ready_replicas: 0,
            samples: vec![],
        };
        let d = g.govern(
            &mut st,
            &obs,
            missing_lag(0, 0.0),
            &Controls::default(),
            0.0,
        );
        assert_eq!(d.desired_replicas, 0);
        assert!(
            d.to_string().contains("no data for lag: stays at zero"),
            "{d}"
        );
        // q above: wakes although lag has no data.
        assert_eq!(
            step(&g, &mut st, 0, missing_lag(0, 12.0), 15.0),
            (2, Some(Rule::Activation))
        );
        // At 1 with lag missing, however long: never to zero.
        let mut st = GovernorState::default();
        for i in 0..40 {
            let (n, _) = step(&g, &mut st, 1, missing_lag(1, 0.0), i as f64 * 15.0);
            assert_eq!(n, 1);
        }
    }

    #[test]
    fn a_cooldown_or_an_open_window_keeps_the_last_replica() {
        let mut g = zero();
        g.scale_down.cooldown = 120.0;
        let mut st = GovernorState {
            last_action: Some((0.0, Direction::Down)),
            ..GovernorState::default()
        };
        step(&g, &mut st, 1, rec(1, 0.0), 15.0);
        assert_eq!(
            step(&g, &mut st, 1, rec(1, 0.0), 90.0),
            (1, Some(Rule::Cooldown))
        );
        assert_eq!(
            step(&g, &mut st, 1, rec(1, 0.0), 120.0),
            (0, Some(Rule::Deactivation))
        );
        // A window with floor 1 open all day.
        let mut g = zero();
        g.schedules =
            vec![Schedule::new("day", "0 0 * * *", 86400.0, "UTC", Capacity::Min(1)).unwrap()];
        let mut st = GovernorState::default();
        step(&g, &mut st, 1, rec(1, 0.0), 0.0);
        assert_eq!(
            step(&g, &mut st, 1, rec(1, 0.0), 100.0),
            (1, Some(Rule::Schedule))
        );
    }

    #[test]
    fn a_schedule_wakes_the_target_from_zero() {
        let mut g = zero();
        // 08:00 UTC daily for an hour, floor 4; t = 0 is 1970-01-01T00:00Z.
        g.schedules =
            vec![Schedule::new("morning", "0 8 * * *", 3600.0, "UTC", Capacity::Min(4)).unwrap()];
        let mut st = GovernorState::default();
        assert_eq!(
            step(&g, &mut st, 0, rec(0, 0.0), 7.0 * 3600.0),
            (0, Some(Rule::Idle))
        );
        // With no data as well: a window raises, it is not data that scales.
        let obs = Observation {
            current_replicas: 0,
            ready_replicas: 0,
            samples: vec![],
        };
        let d = g.govern(&mut st, &obs, no_data(), &Controls::default(), 8.0 * 3600.0);
        assert_eq!(d.desired_replicas, 4);
        let w = d.explanation.window.as_ref().unwrap();
        assert_eq!(w.schedule, "morning");
        assert!(w.started);
        assert!(d.to_string().contains("schedule morning floor 4"), "{d}");
        let d = g.govern(
            &mut st,
            &obs,
            no_data(),
            &Controls::default(),
            8.0 * 3600.0 + 15.0,
        );
        assert!(!d.explanation.window.unwrap().started, "announced once");
    }
}
