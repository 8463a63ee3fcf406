//! The Governor: the rules between a policy's proposal and the replica count that is applied.
//!
//! Applied in this order, each recorded as a [`RuleStep`] when it changes the number:
//!
//! 1. Bounds first when the target is already outside [min, max]: go straight to the bound.
//! 2. Missing data: with no metric at all, hold (or, after N failed ticks, go up to a fallback
//!    count; never down), and count the tick as a recommendation to stay in the stabilization
//!    windows. With some metrics missing, the rest may scale up but never down.
//! 3. Tolerance: a metric whose ratio to its target is inside the band (up or down) proposes the
//!    current count. The largest proposal wins.
//! 4. Stabilization (as the HPA): scale up to at most the lowest recommendation of the scale-up
//!    window, scale down to at least the highest recommendation of the scale-down window.
//! 5. Cooldown: no change in a direction until that direction's cooldown has passed since the
//!    last scaling action (of either direction).
//! 6. Rate limits (as the HPA): per direction, a list of pods-per-period and percent-per-period
//!    limits combined by `select` (max change, min change, or disabled), counted from the replica
//!    count at the start of each period.
//! 7. Bounds: the result is clamped to [min, max].
//! 8. Pause ([`super::pause`]): a pause annotation holds the result at the current count, sets
//!    it to `paused-replicas` (within [min, max]), or blocks one direction; a target someone
//!    else scaled to 0 while `min` is at least 1 stays at 0. The rules above run first and keep
//!    their memory (stabilization windows, idle clock) as if unpaused, so that lifting the
//!    pause resumes where an unpaused policy would be.
//!
//! Schedules ([`super::schedule`]) enter as a floor on the proposal (or a fixed count) before
//! stabilization. A policy with `min: 0` adds the rules of [`super::activation`]: at zero only
//! activation leaves zero, and the normal rules stop at 1; the idle rule alone takes 1 to 0.

use super::activation::ScaleToZero;
use super::budget::{ActionBudget, BudgetState, Counts, Rung};
use super::hpa;
use super::pause::{Controls, Pause, PauseNote};
use super::schedule::Schedule;
use super::{Decision, Explanation, Observation, Recommendation, Seconds};
use crate::text::secs;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Up or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    /// More replicas.
    Up,
    /// Fewer replicas.
    Down,
}

impl Direction {
    /// The direction of a change from `from` to `to`, None when equal.
    pub fn of(from: u32, to: u32) -> Option<Direction> {
        match to.cmp(&from) {
            std::cmp::Ordering::Greater => Some(Direction::Up),
            std::cmp::Ordering::Less => Some(Direction::Down),
            std::cmp::Ordering::Equal => None,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Up => "up",
            Direction::Down => "down",
        })
    }
}

/// How several rate limits of one direction combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Select {
    /// The limit allowing the largest change (the HPA default).
    Max,
    /// The limit allowing the smallest change.
    Min,
    /// No scaling in this direction at all.
    Disabled,
}

/// One rate limit: at most this much change per period.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StepLimit {
    /// At most `value` pods per `period` seconds.
    Pods {
        /// Pods.
        value: u32,
        /// Seconds.
        period: Seconds,
    },
    /// At most `value` percent of the replica count at the start of the period, per `period`.
    Percent {
        /// Percent.
        value: f64,
        /// Seconds.
        period: Seconds,
    },
}

impl StepLimit {
    fn period(&self) -> Seconds {
        match self {
            StepLimit::Pods { period, .. } | StepLimit::Percent { period, .. } => *period,
        }
    }
}

impl fmt::Display for StepLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepLimit::Pods { value, period } => write!(f, "{value} pods per {}", secs(*period)),
            StepLimit::Percent { value, period } => write!(f, "{value}% per {}", secs(*period)),
        }
    }
}

/// The rules of one direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScalingRules {
    /// Stabilization window in seconds.
    pub stabilization: Seconds,
    /// No change in this direction until this long after the last scaling action.
    pub cooldown: Seconds,
    /// How the limits combine.
    pub select: Select,
    /// Rate limits; empty means unlimited.
    pub limits: Vec<StepLimit>,
}

impl ScalingRules {
    /// The HPA v2 default for scale-up: no stabilization, at most max(+100 %, +4 pods) per 15 s.
    pub fn hpa_up() -> ScalingRules {
        ScalingRules {
            stabilization: 0.0,
            cooldown: 0.0,
            select: Select::Max,
            limits: vec![
                StepLimit::Percent {
                    value: hpa::SCALE_UP_PERCENT,
                    period: hpa::LIMIT_PERIOD,
                },
                StepLimit::Pods {
                    value: hpa::SCALE_UP_PODS,
                    period: hpa::LIMIT_PERIOD,
                },
            ],
        }
    }

    /// The HPA v2 default for scale-down: a 300 s stabilization window, then up to 100 % per 15 s.
    pub fn hpa_down() -> ScalingRules {
        ScalingRules {
            stabilization: hpa::SCALE_DOWN_WINDOW,
            cooldown: 0.0,
            select: Select::Max,
            limits: vec![StepLimit::Percent {
                value: 100.0,
                period: hpa::LIMIT_PERIOD,
            }],
        }
    }

    /// No stabilization, cooldown or limit.
    pub fn unlimited() -> ScalingRules {
        ScalingRules {
            stabilization: 0.0,
            cooldown: 0.0,
            select: Select::Max,
            limits: Vec::new(),
        }
    }
}

/// What to do when no metric gave data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OnMissing {
    /// Keep the current replica count.
    Hold,
    /// After `after` consecutive ticks without data, raise the target to `replicas` (never lower
    /// it: missing data never scales down).
    Fallback {
        /// Replicas to go up to.
        replicas: u32,
        /// Consecutive failed ticks before the fallback applies.
        after: u32,
    },
}

/// The governor's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Governor {
    /// Lowest replica count.
    pub min: u32,
    /// Highest replica count.
    pub max: u32,
    /// Tolerance band above the target (0.1: ratios up to 1.1 change nothing).
    pub tolerance_up: f64,
    /// Tolerance band below the target (0.1: ratios down to 0.9 change nothing).
    pub tolerance_down: f64,
    /// Scale-up rules.
    pub scale_up: ScalingRules,
    /// Scale-down rules.
    pub scale_down: ScalingRules,
    /// The missing-data rule.
    pub on_missing: OnMissing,
    /// Activation thresholds and the idle time (used when `min` is 0).
    pub scale_to_zero: ScaleToZero,
    /// Scheduled capacity.
    pub schedules: Vec<Schedule>,
    /// `scaleDown.adaptive`: the scale-down window and `tolerance.down` rise along a ladder
    /// while the actions exceed this share of a shadow HPA's ([`super::budget`]).
    pub budget: Option<ActionBudget>,
}

/// A rule of the governor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Rule {
    /// [min, max].
    Bounds,
    /// No metric had data.
    MissingData,
    /// No data for long enough that the fallback count applied.
    Fallback,
    /// Some metrics had no data, so no scale-down.
    PartialData,
    /// Inside the tolerance band.
    Tolerance,
    /// A stabilization window.
    Stabilization,
    /// A cooldown after the last action.
    Cooldown,
    /// A rate limit.
    RateLimit,
    /// An open schedule window.
    Schedule,
    /// A metric above its activation threshold (or a schedule) woke the target from zero.
    Activation,
    /// At zero with nothing to wake it, or at 1 while the idle clock runs.
    Idle,
    /// Idle for long enough: 1 to 0.
    Deactivation,
    /// A pause annotation, or a target switched off at zero ([`super::pause`]).
    Pause,
}

impl Rule {
    /// Stable lower-case name, for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            Rule::Bounds => "bounds",
            Rule::MissingData => "missing_data",
            Rule::Fallback => "fallback",
            Rule::PartialData => "partial_data",
            Rule::Tolerance => "tolerance",
            Rule::Stabilization => "stabilization",
            Rule::Cooldown => "cooldown",
            Rule::RateLimit => "rate_limit",
            Rule::Schedule => "schedule",
            Rule::Activation => "activation",
            Rule::Idle => "idle",
            Rule::Deactivation => "deactivation",
            Rule::Pause => "pause",
        }
    }
}

/// One rule that changed the number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleStep {
    /// The rule.
    pub rule: Rule,
    /// Replicas before the rule.
    pub from: u32,
    /// Replicas after it.
    pub to: u32,
    /// The numbers, in words.
    pub detail: String,
}

/// A recommendation kept for the stabilization windows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TimedReplicas {
    /// When.
    pub t: Seconds,
    /// Replicas recommended (for recommendations) or the change made (for scale events).
    pub replicas: i64,
}

/// What the governor remembers between ticks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GovernorState {
    /// Recommendations within the longest stabilization window.
    pub recommendations: Vec<TimedReplicas>,
    /// Scaling actions within the longest rate-limit period (signed change).
    pub events: Vec<TimedReplicas>,
    /// Time and direction of the last scaling action.
    pub last_action: Option<(Seconds, Direction)>,
    /// Consecutive ticks without any data.
    pub failures: u32,
    /// Since when every metric has been at or below its activation threshold (scale to zero).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_since: Option<Seconds>,
    /// The schedule window the last decision saw open (name and start), so that a window's
    /// start is announced once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<(String, Seconds)>,
    /// The pause the last decision was under, so that a pause's start and end are announced
    /// once (kept on the restart annotation, carried over a reload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<Pause>,
    /// The action budget's shadow HPA, counts and rung (with `scaleDown.adaptive`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Box<BudgetState>>,
}

impl GovernorState {
    /// See [`super::State::conservative`].
    pub fn conservative(current_replicas: u32, now: Seconds) -> GovernorState {
        GovernorState {
            recommendations: vec![TimedReplicas {
                t: now,
                replicas: current_replicas as i64,
            }],
            ..GovernorState::default()
        }
    }

    /// Remembers `decision`'s action as applied at `now`, for the cooldowns and rate limits.
    /// The caller commits only what it applied: a decision that was only recommended, or whose
    /// patch failed, leaves no action behind. A decision that keeps the count commits nothing.
    pub fn commit(&mut self, decision: &Decision, now: Seconds) {
        let (current, desired) = (decision.current_replicas, decision.desired_replicas);
        if let Some(dir) = Direction::of(current, desired) {
            self.events.push(TimedReplicas {
                t: now,
                replicas: desired as i64 - current as i64,
            });
            self.last_action = Some((now, dir));
            if let Some(b) = &mut self.budget {
                b.own_action(now);
            }
        }
    }

    /// Sum of the changes made in `dir` within the last `period` seconds.
    fn changed_within(&self, now: Seconds, period: Seconds, dir: Direction) -> i64 {
        self.events
            .iter()
            .filter(|e| e.t > now - period)
            .map(|e| match dir {
                Direction::Up => e.replicas.max(0),
                Direction::Down => (-e.replicas).max(0),
            })
            .sum()
    }
}

/// The scale-down window and tolerance in force, and the action budget's rung when it raised
/// them (with the budget's counts in words).
pub(super) struct Down {
    window: Seconds,
    tolerance: f64,
    budget: Option<(Rung, Counts)>,
}

impl Down {
    /// " (raised by the action budget: ...)" when the budget raised them, else nothing.
    fn raised(&self) -> String {
        match &self.budget {
            None => String::new(),
            Some((rung, counts)) => {
                format!(" (rung {} of {} of the {counts})", rung.index + 1, rung.of)
            }
        }
    }
}

/// A share with at most two decimals ("0.1", "0.23").
fn fmt_share(v: f64) -> String {
    let s = format!("{v:.2}");
    match s.trim_end_matches('0').trim_end_matches('.') {
        "" => "0".to_string(),
        t => t.to_string(),
    }
}

pub(super) struct Steps(Vec<RuleStep>);

impl Steps {
    /// Records a rule that held the count where it is.
    pub(super) fn note(&mut self, rule: Rule, at: u32, detail: String) -> u32 {
        self.0.push(RuleStep {
            rule,
            from: at,
            to: at,
            detail,
        });
        at
    }

    pub(super) fn apply(
        &mut self,
        rule: Rule,
        from: u32,
        to: u32,
        detail: impl FnOnce() -> String,
    ) -> u32 {
        if from != to {
            self.0.push(RuleStep {
                rule,
                from,
                to,
                detail: detail(),
            });
        }
        to
    }
}

/// A tick without any data counts in the stabilization windows as a recommendation to stay
/// where the tick left the target (`replicas`: the current count, or the fallback count): so
/// after an outage a scale-down waits a full scale-down window of readings, and a first low
/// reading (a `rate()` over a window that is still partly empty) cannot scale down at once. The
/// HPA records nothing for a tick whose metrics failed, and so does scale down at once then.
fn record_blind_tick(st: &mut GovernorState, replicas: u32, now: Seconds) {
    st.recommendations.push(TimedReplicas {
        t: now,
        replicas: replicas as i64,
    });
}

impl Governor {
    fn rules(&self, dir: Direction) -> &ScalingRules {
        match dir {
            Direction::Up => &self.scale_up,
            Direction::Down => &self.scale_down,
        }
    }

    /// Clamps to the bounds; with `min: 0`, to [1, max]: only the idle rule goes to zero.
    pub(super) fn clamp(&self, n: i64) -> u32 {
        n.clamp(self.min.max(1) as i64, self.max as i64) as u32
    }

    /// The bounds in words.
    fn bounds(&self) -> String {
        match self.min {
            0 => format!("bounds [1, {}] (0 only when idle)", self.max),
            min => format!("bounds [{min}, {}]", self.max),
        }
    }

    /// Whether the target was switched off by someone else: at 0 with `min` at least 1.
    fn switched_off(&self, current: u32) -> bool {
        current == 0 && self.min >= 1
    }

    /// Turns a recommendation into a decision under the pause `controls`, updating the
    /// state's recommendations. The action it decides is not in the state until the caller
    /// says it was applied ([`GovernorState::commit`]).
    pub fn govern(
        &self,
        st: &mut GovernorState,
        obs: &Observation,
        rec: Recommendation,
        controls: &Controls,
        now: Seconds,
    ) -> Decision {
        self.prune(st, now);
        let current = obs.current_replicas;
        if st.paused == Some(Pause::ScaledToZero) && !self.switched_off(current) {
            // Scaled up by hand: that count is a recommendation made now, as for a target seen
            // for the first time, so no scale-down comes before a scale-down window.
            st.recommendations.push(TimedReplicas {
                t: now,
                replicas: current as i64,
            });
        }
        let mut steps = Steps(Vec::new());
        let down = self.scale_down_rung(st, &rec, current, now);
        let proposed = self.propose(st, current, &rec, &down, &mut steps);
        let blind = proposed.is_none();
        let window = self.window(st, now);
        let proposed = self.scheduled(proposed, current, window.as_ref(), &mut steps);
        let desired = match proposed {
            // The pause step says why.
            _ if self.switched_off(current) => current,
            _ if current > self.max || current < self.min => {
                let to = self.clamp(current as i64);
                steps.apply(Rule::Bounds, current, to, || {
                    format!("outside [{}, {}]: back to the bound", self.min, self.max)
                })
            }
            _ if current == 0 => self.wake(st, &rec, proposed, window.as_ref(), &mut steps, now),
            None => self.on_missing(st, current, &mut steps),
            Some(p) => self.normalize(st, current, p, &down, &mut steps, now),
        };
        let desired = self.idle(st, current, desired, &rec, window.as_ref(), &mut steps, now);
        let (desired, pause, resumed) = self.pause(st, controls, current, desired, &mut steps);
        if blind && !self.switched_off(current) {
            record_blind_tick(st, desired, now);
        }
        let activity = self.activity(st, &rec, desired);
        Decision {
            current_replicas: current,
            desired_replicas: desired,
            explanation: Explanation {
                ready_replicas: obs.ready_replicas,
                proposed_replicas: proposed,
                proposals: rec.proposals,
                missing: rec.missing,
                activity,
                window,
                forecasts: rec.forecasts,
                steps: steps.0,
                pause,
                resumed,
            },
        }
    }

    /// The pause step: the count under the pause `controls` ask for (or the target-at-zero
    /// rule), the note for the explanation, and the pause that ended at this decision.
    fn pause(
        &self,
        st: &mut GovernorState,
        controls: &Controls,
        current: u32,
        desired: u32,
        steps: &mut Steps,
    ) -> (u32, Option<PauseNote>, Option<Pause>) {
        let (pause, annotation) = match controls.requested() {
            Some((p, a)) if p.blocks().is_none() => (p, Some(a)),
            _ if self.switched_off(current) => (Pause::ScaledToZero, None),
            Some((p, a)) => (p, Some(a)),
            None => return (desired, None, st.paused.take()),
        };
        let started = st.paused.as_ref() != Some(&pause);
        st.paused = Some(pause.clone());
        let note = PauseNote {
            pause,
            annotation,
            started,
        };
        let (min, max) = (self.min, self.max);
        let others = |to: u32| match desired == to {
            true => String::new(),
            false => format!(" (the other rules say {desired})"),
        };
        let held = current.clamp(min, max);
        let holds = |at: u32| (at, format!("{note}: holds at {at}{}", others(at)));
        let (to, detail) = match &note.pause {
            Pause::ScaledToZero => (
                0,
                format!(
                    "the target is at 0 and min is {min}: switched off by someone else, it \
                     stays at 0 until scaled up by hand (as the HPA: ScalingDisabled)"
                ),
            ),
            Pause::Frozen | Pause::Invalid { .. } if current == 0 => holds(0),
            Pause::Frozen | Pause::Invalid { .. } if held != current => (
                held,
                format!("{note}, but {current} is outside [{min}, {max}]: {held}"),
            ),
            Pause::Frozen | Pause::Invalid { .. } => holds(current),
            Pause::Replicas { requested } => {
                let to = (*requested).clamp(min, max);
                let clamped = match to == *requested {
                    true => String::new(),
                    false => format!(": {requested} is outside [{min}, {max}], so {to}"),
                };
                (to, format!("{note}{clamped}{}", others(to)))
            }
            Pause::ScaleUp if desired > current && current >= min => holds(current),
            Pause::ScaleDown if desired < current && current <= max => holds(current),
            Pause::ScaleUp | Pause::ScaleDown => return (desired, Some(note), None),
        };
        let to = match to == desired {
            true => steps.note(Rule::Pause, to, detail),
            false => steps.apply(Rule::Pause, desired, to, || detail),
        };
        (to, Some(note), None)
    }

    /// The scale-down window and `tolerance.down` in force this tick: the policy's own, or with
    /// `scaleDown.adaptive` the action budget's rung, after its shadow HPA saw `rec`.
    fn scale_down_rung(
        &self,
        st: &mut GovernorState,
        rec: &Recommendation,
        current: u32,
        now: Seconds,
    ) -> Down {
        let own = Down {
            window: self.scale_down.stabilization,
            tolerance: self.tolerance_down,
            budget: None,
        };
        let Some(budget) = &self.budget else {
            return own;
        };
        let state = st.budget.get_or_insert_with(Box::default);
        let rung = state.tick(
            budget,
            (own.window, own.tolerance),
            rec.reference,
            current,
            now,
        );
        Down {
            window: rung.window,
            tolerance: rung.tolerance,
            budget: (rung.index > 0).then(|| (rung, state.counts(budget))),
        }
    }

    /// The largest proposal after tolerance (None when no metric had data).
    fn propose(
        &self,
        st: &mut GovernorState,
        current: u32,
        rec: &Recommendation,
        down: &Down,
        steps: &mut Steps,
    ) -> Option<u32> {
        if rec.proposals.is_empty() {
            st.failures = st.failures.saturating_add(1);
            return None;
        }
        st.failures = 0;
        let raw = rec.proposals.iter().map(|p| p.replicas).max()?;
        let tolerated = rec
            .proposals
            .iter()
            .map(|p| {
                let within = (p.ratio >= 1.0 && p.ratio - 1.0 <= self.tolerance_up + 1e-9)
                    || (p.ratio < 1.0 && 1.0 - p.ratio <= down.tolerance + 1e-9);
                if within { current } else { p.replicas }
            })
            .max()?;
        let mut p = steps.apply(Rule::Tolerance, raw, tolerated, || {
            format!(
                "within tolerance (+{}/-{}) of target{}",
                self.tolerance_up,
                fmt_share(down.tolerance),
                down.raised()
            )
        });
        if !rec.missing.is_empty() && p < current {
            p = steps.apply(Rule::PartialData, p, current, || {
                let names: Vec<&str> = rec.missing.iter().map(|m| m.metric.as_str()).collect();
                format!("no data for {}: no scale-down", names.join(", "))
            });
        }
        Some(p)
    }

    pub(super) fn on_missing(&self, st: &GovernorState, current: u32, steps: &mut Steps) -> u32 {
        match self.on_missing {
            OnMissing::Fallback { replicas, after } if st.failures >= after => {
                let to = self.clamp(replicas.max(current) as i64);
                if to == current {
                    return steps.note(
                        Rule::MissingData,
                        current,
                        format!(
                            "no data for {} ticks: holding (fallback {replicas} is not above current)",
                            st.failures
                        ),
                    );
                }
                steps.apply(Rule::Fallback, current, to, || {
                    format!("no data for {} ticks: fallback to {replicas}", st.failures)
                })
            }
            _ => steps.note(
                Rule::MissingData,
                current,
                format!("no data ({} ticks): holding", st.failures),
            ),
        }
    }

    /// Stabilization, cooldown, rate limits and bounds, as the HPA's normalization.
    fn normalize(
        &self,
        st: &mut GovernorState,
        current: u32,
        proposed: u32,
        down: &Down,
        steps: &mut Steps,
        now: Seconds,
    ) -> u32 {
        // Stabilization over the previous recommendations and this one.
        let (mut up_rec, mut down_rec) = (proposed as i64, proposed as i64);
        for r in &st.recommendations {
            if r.t > now - self.scale_up.stabilization {
                up_rec = up_rec.min(r.replicas);
            }
            if r.t > now - down.window {
                down_rec = down_rec.max(r.replicas);
            }
        }
        st.recommendations.push(TimedReplicas {
            t: now,
            replicas: proposed as i64,
        });
        let stabilized = (current as i64).max(up_rec).min(down_rec).max(0) as u32;
        let mut desired = steps.apply(Rule::Stabilization, proposed, stabilized, || {
            if stabilized < proposed {
                format!(
                    "scale-up stabilization {}: lowest recommendation in window is {up_rec}",
                    secs(self.scale_up.stabilization)
                )
            } else {
                format!(
                    "scale-down stabilization {}: highest recommendation in window is \
                     {down_rec}{}",
                    secs(down.window),
                    down.raised()
                )
            }
        });

        // Cooldown since the last action.
        if let (Some(dir), Some((t, last))) = (Direction::of(current, desired), st.last_action) {
            let cooldown = self.rules(dir).cooldown;
            if now - t < cooldown {
                desired = steps.apply(Rule::Cooldown, desired, current, || {
                    format!(
                        "scale-{dir} cooldown {}: last action (scale {last}) {} ago",
                        secs(cooldown),
                        secs(now - t)
                    )
                });
            }
        }

        // Rate limits, then bounds.
        let Some(dir) = Direction::of(current, desired) else {
            return steps.apply(Rule::Bounds, desired, self.clamp(desired as i64), || {
                self.bounds()
            });
        };
        let rules = self.rules(dir);
        let limit = self.rate_limit(st, current, dir, now);
        let limited = match (dir, limit) {
            (_, None) => desired,
            (Direction::Up, Some(l)) => desired.min(l.max(current as i64) as u32),
            (Direction::Down, Some(l)) => desired.max(l.clamp(0, current as i64) as u32),
        };
        let limited = steps.apply(Rule::RateLimit, desired, limited, || {
            if rules.select == Select::Disabled {
                format!("scale-{dir} disabled")
            } else {
                let ls: Vec<String> = rules.limits.iter().map(|l| l.to_string()).collect();
                format!("scale-{dir} limit {} ({})", limited, ls.join(", "))
            }
        });
        steps.apply(Rule::Bounds, limited, self.clamp(limited as i64), || {
            self.bounds()
        })
    }

    /// The furthest replica count the rate limits allow in `dir` (None: unlimited).
    fn rate_limit(
        &self,
        st: &GovernorState,
        current: u32,
        dir: Direction,
        now: Seconds,
    ) -> Option<i64> {
        let rules = self.rules(dir);
        if rules.select == Select::Disabled {
            return Some(current as i64);
        }
        let proposals = rules.limits.iter().map(|l| {
            let p = l.period();
            let start = current as i64 - st.changed_within(now, p, Direction::Up)
                + st.changed_within(now, p, Direction::Down);
            match (dir, l) {
                (Direction::Up, StepLimit::Pods { value, .. }) => start + *value as i64,
                (Direction::Up, StepLimit::Percent { value, .. }) => {
                    (start as f64 * (1.0 + value / 100.0)).ceil() as i64
                }
                (Direction::Down, StepLimit::Pods { value, .. }) => start - *value as i64,
                (Direction::Down, StepLimit::Percent { value, .. }) => {
                    (start as f64 * (1.0 - value / 100.0)) as i64
                }
            }
        });
        // The largest change is the highest count up, or the lowest count down.
        let largest_change = (rules.select == Select::Max) == (dir == Direction::Up);
        if largest_change {
            proposals.max()
        } else {
            proposals.min()
        }
    }

    /// Drops memory older than any window or period needs.
    fn prune(&self, st: &mut GovernorState, now: Seconds) {
        let top = match self.budget {
            Some(_) => super::budget::WINDOWS[super::budget::WINDOWS.len() - 1],
            None => 0.0,
        };
        let window = self
            .scale_up
            .stabilization
            .max(self.scale_down.stabilization)
            .max(top);
        st.recommendations.retain(|r| r.t > now - window);
        let period = [&self.scale_up, &self.scale_down]
            .iter()
            .flat_map(|r| r.limits.iter().map(StepLimit::period))
            .fold(0.0, f64::max);
        st.events.retain(|e| e.t > now - period);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Proposal, Target};

    /// The HPA v2 defaults, as the `hpa` preset gives them.
    fn hpa(min: u32, max: u32) -> Governor {
        Governor {
            min,
            max,
            tolerance_up: 0.1,
            tolerance_down: 0.1,
            scale_up: ScalingRules::hpa_up(),
            scale_down: ScalingRules::hpa_down(),
            on_missing: OnMissing::Hold,
            scale_to_zero: ScaleToZero::default(),
            schedules: Vec::new(),
            budget: None,
        }
    }

    /// No tolerance, stabilization or limits: only what a test sets.
    fn bare(min: u32, max: u32) -> Governor {
        Governor {
            min,
            max,
            tolerance_up: 0.0,
            tolerance_down: 0.0,
            scale_up: ScalingRules::unlimited(),
            scale_down: ScalingRules::unlimited(),
            on_missing: OnMissing::Hold,
            scale_to_zero: ScaleToZero::default(),
            schedules: Vec::new(),
            budget: None,
        }
    }

    /// A recommendation of `replicas` from one per-replica metric (ratio = replicas / current).
    fn rec(current: u32, replicas: u32) -> Recommendation {
        Recommendation {
            proposals: vec![Proposal {
                metric: "m".into(),
                value: replicas as f64,
                target: Target::PerReplica(1.0),
                ratio: replicas as f64 / current.max(1) as f64,
                replicas,
            }],
            ..Recommendation::default()
        }
    }

    fn missing() -> Recommendation {
        Recommendation {
            proposals: vec![],
            missing: vec![crate::engine::Missing {
                metric: "m".into(),
                reason: "down".into(),
            }],
            ..Recommendation::default()
        }
    }

    fn obs(current: u32) -> Observation {
        Observation {
            current_replicas: current,
            ready_replicas: current,
            samples: vec![],
        }
    }

    /// Runs one tick and returns (desired, rule that limited it).
    fn step(
        g: &Governor,
        st: &mut GovernorState,
        current: u32,
        r: Recommendation,
        now: Seconds,
    ) -> (u32, Option<Rule>) {
        let d = g.govern(st, &obs(current), r, &Controls::default(), now);
        st.commit(&d, now);
        (d.desired_replicas, d.explanation.limited_by())
    }

    #[test]
    fn the_action_budget_raises_the_scale_down_window_of_a_flapping_policy() {
        // A proposal that flips between 10 and 14 every minute, while the HPA's formula (the
        // reference) stays at 10: the shadow HPA never acts, so the policy is over its budget
        // and the ladder lifts the window until the flapping stops.
        let mut g = bare(1, 100);
        g.budget = Some(ActionBudget { share: 0.95 });
        let mut st = GovernorState::default();
        let mut current = 10;
        let mut actions = Vec::new();
        let mut last_detail = String::new();
        for i in 0..(6 * 60 * 4) {
            let now = i as f64 * 15.0;
            let want = if (i / 4) % 2 == 0 { 10 } else { 14 };
            let mut r = rec(current, want);
            r.reference = Some(10);
            let d = g.govern(&mut st, &obs(current), r, &Controls::default(), now);
            st.commit(&d, now);
            if d.desired_replicas != current {
                actions.push(now);
            }
            if let Some(s) = d
                .explanation
                .steps
                .iter()
                .find(|s| s.rule == Rule::Stabilization)
            {
                last_detail = s.detail.clone();
            }
            current = d.desired_replicas;
        }
        let first_hour = actions.iter().filter(|&&t| t < 3600.0).count();
        let last_hour = actions.iter().filter(|&&t| t >= 5.0 * 3600.0).count();
        assert!(first_hour >= 10, "{first_hour} actions in the first hour");
        assert!(last_hour <= 2, "{last_hour} actions in the last hour");
        assert!(
            last_detail.contains("of the action budget"),
            "{last_detail}"
        );
        assert!(st.budget.as_ref().is_some_and(|b| b.rung > 0));
        // Scale-up is never held: the proposal of 14 wins at once when the window holds 10.
        let held = st.budget.clone();
        let mut r = rec(10, 30);
        r.reference = Some(10);
        let d = g.govern(&mut st, &obs(10), r, &Controls::default(), 6.0 * 3600.0);
        assert_eq!(d.desired_replicas, 30);
        assert_eq!(st.budget.as_ref().map(|b| b.rung), held.map(|b| b.rung));
    }

    #[test]
    fn outside_bounds_goes_straight_to_the_bound() {
        let g = hpa(2, 10);
        let mut st = GovernorState::default();
        assert_eq!(
            step(&g, &mut st, 15, rec(15, 15), 0.0),
            (10, Some(Rule::Bounds))
        );
        assert_eq!(
            step(&g, &mut st, 1, rec(1, 1), 15.0),
            (2, Some(Rule::Bounds))
        );
        // At 0 it was switched off by someone else: it stays there (see the pause tests).
        assert_eq!(
            step(&g, &mut st, 0, missing(), 30.0),
            (0, Some(Rule::Pause))
        );
    }

    #[test]
    fn proposals_are_clamped_to_bounds() {
        let g = bare(2, 10);
        let mut st = GovernorState::default();
        assert_eq!(
            step(&g, &mut st, 5, rec(5, 40), 0.0),
            (10, Some(Rule::Bounds))
        );
        assert_eq!(
            step(&g, &mut st, 10, rec(10, 0), 15.0),
            (2, Some(Rule::Bounds))
        );
    }

    #[test]
    fn tolerance_band_holds_and_is_asymmetric() {
        let mut g = bare(1, 100);
        g.tolerance_up = 0.1;
        g.tolerance_down = 0.3;
        let mut st = GovernorState::default();
        // 10 replicas, ratio 1.1 (11): inside +10 % → hold.
        assert_eq!(
            step(&g, &mut st, 10, rec(10, 11), 0.0),
            (10, Some(Rule::Tolerance))
        );
        // ratio 1.2 → 12.
        assert_eq!(step(&g, &mut st, 10, rec(10, 12), 15.0), (12, None));
        // ratio 0.75 (15 of 20): inside -30 % → hold; ratio 0.6 → 12.
        assert_eq!(
            step(&g, &mut st, 20, rec(20, 15), 30.0),
            (20, Some(Rule::Tolerance))
        );
        assert_eq!(step(&g, &mut st, 20, rec(20, 12), 45.0), (12, None));
    }

    #[test]
    fn scale_down_stabilization_takes_the_window_maximum() {
        let mut g = bare(1, 100);
        g.scale_down.stabilization = 300.0;
        let mut st = GovernorState::conservative(10, 0.0);
        // Recommendations drop to 6 at t=60: the window still holds 10 (from t=0).
        assert_eq!(
            step(&g, &mut st, 10, rec(10, 8), 60.0),
            (10, Some(Rule::Stabilization))
        );
        assert_eq!(
            step(&g, &mut st, 10, rec(10, 6), 120.0),
            (10, Some(Rule::Stabilization))
        );
        // t=300: 10 (t=0) has left the window; 8 (t=60) is the highest left.
        assert_eq!(
            step(&g, &mut st, 10, rec(10, 6), 300.0),
            (8, Some(Rule::Stabilization))
        );
        // t=361: only 6s remain.
        assert_eq!(step(&g, &mut st, 8, rec(8, 6), 361.0), (6, None));
    }

    #[test]
    fn scale_up_stabilization_takes_the_window_minimum() {
        let mut g = bare(1, 100);
        g.scale_up.stabilization = 60.0;
        let mut st = GovernorState::default();
        assert_eq!(step(&g, &mut st, 10, rec(10, 10), 0.0), (10, None));
        // A spike to 20 at t=15: the window's lowest is 10 → hold.
        assert_eq!(
            step(&g, &mut st, 10, rec(10, 20), 15.0),
            (10, Some(Rule::Stabilization))
        );
        assert_eq!(
            step(&g, &mut st, 10, rec(10, 16), 30.0),
            (10, Some(Rule::Stabilization))
        );
        // t=61: 10 (t=0) left; lowest of {20, 16, 18} is 16.
        assert_eq!(
            step(&g, &mut st, 10, rec(10, 18), 61.0),
            (16, Some(Rule::Stabilization))
        );
    }

    #[test]
    fn hpa_scale_up_limit_is_max_of_100_percent_and_4_pods_per_15s() {
        let g = hpa(1, 100);
        let mut st = GovernorState::default();
        // From 1: max(2, 5) = 5.
        assert_eq!(
            step(&g, &mut st, 1, rec(1, 50), 0.0),
            (5, Some(Rule::RateLimit))
        );
        // 10 s later the period still counts the +4: start = 1 → limit 5 → hold.
        assert_eq!(
            step(&g, &mut st, 5, rec(5, 50), 10.0),
            (5, Some(Rule::RateLimit))
        );
        // At 15 s the period has passed: max(10, 9) = 10, then 20, then 40, then 50.
        assert_eq!(
            step(&g, &mut st, 5, rec(5, 50), 15.0),
            (10, Some(Rule::RateLimit))
        );
        assert_eq!(
            step(&g, &mut st, 10, rec(10, 50), 30.0),
            (20, Some(Rule::RateLimit))
        );
        assert_eq!(
            step(&g, &mut st, 20, rec(20, 50), 45.0),
            (40, Some(Rule::RateLimit))
        );
        assert_eq!(step(&g, &mut st, 40, rec(40, 50), 60.0), (50, None));
    }

    #[test]
    fn select_min_and_disabled() {
        let mut g = hpa(1, 100);
        g.scale_up.select = Select::Min;
        let mut st = GovernorState::default();
        // From 10: min(20, 14) = 14.
        assert_eq!(
            step(&g, &mut st, 10, rec(10, 50), 0.0),
            (14, Some(Rule::RateLimit))
        );
        g.scale_up.select = Select::Disabled;
        let mut st = GovernorState::default();
        assert_eq!(
            step(&g, &mut st, 10, rec(10, 50), 0.0),
            (10, Some(Rule::RateLimit))
        );
    }

    #[test]
    fn scale_down_limits_count_from_the_period_start() {
        let mut g = bare(1, 100);
        g.scale_down.limits = vec![
            StepLimit::Percent {
                value: 50.0,
                period: 60.0,
            },
            StepLimit::Pods {
                value: 3,
                period: 60.0,
            },
        ];
        let mut st = GovernorState::default();
        // Max change: min(10 × 0.5 = 5, 10 - 3 = 7) = 5.
        assert_eq!(
            step(&g, &mut st, 10, rec(10, 1), 0.0),
            (5, Some(Rule::RateLimit))
        );
        // Within the period the start is still 10: no further step.
        assert_eq!(
            step(&g, &mut st, 5, rec(5, 1), 30.0),
            (5, Some(Rule::RateLimit))
        );
        // After it: from 5, min(2 (2.5 truncated, as the HPA), 2) = 2.
        assert_eq!(
            step(&g, &mut st, 5, rec(5, 1), 60.0),
            (2, Some(Rule::RateLimit))
        );
        g.scale_down.select = Select::Min;
        let mut st = GovernorState::default();
        // Min change: max(5, 7) = 7.
        assert_eq!(
            step(&g, &mut st, 10, rec(10, 1), 0.0),
            (7, Some(Rule::RateLimit))
        );
    }

    #[test]
    fn cooldowns_follow_the_last_action_of_either_direction() {
        let mut g = bare(1, 100);
        g.scale_down.cooldown = 60.0;
        g.scale_up.cooldown = 30.0;
        let mut st = GovernorState::default();
        assert_eq!(step(&g, &mut st, 10, rec(10, 12), 0.0), (12, None));
        // Up within 30 s of it: held; at 30 s: allowed.
        assert_eq!(
            step(&g, &mut st, 12, rec(12, 14), 15.0),
            (12, Some(Rule::Cooldown))
        );
        assert_eq!(step(&g, &mut st, 12, rec(12, 14), 30.0), (14, None));
        // Down within 60 s of that scale-up: held.
        assert_eq!(
            step(&g, &mut st, 14, rec(14, 8), 45.0),
            (14, Some(Rule::Cooldown))
        );
        // Down 60 s after that last action.
        assert_eq!(
            step(&g, &mut st, 14, rec(14, 8), 89.0),
            (14, Some(Rule::Cooldown))
        );
        assert_eq!(step(&g, &mut st, 14, rec(14, 8), 90.0), (8, None));
    }

    #[test]
    fn a_low_reading_after_an_outage_longer_than_the_window_waits_a_full_window() {
        // 300 s scale-down window; data until t=0, then 10 minutes without any.
        let g = hpa(1, 20);
        let mut st = GovernorState::default();
        assert_eq!(step(&g, &mut st, 10, rec(10, 10), 0.0).0, 10);
        for i in 1..=40 {
            let (to, rule) = step(&g, &mut st, 10, missing(), i as f64 * 15.0);
            assert_eq!((to, rule), (10, Some(Rule::MissingData)));
        }
        // Data again at t=615: the first reading is low (2). The blind ticks of the last 300 s
        // said "stay at 10": no scale-down yet.
        let (to, rule) = step(&g, &mut st, 10, rec(10, 2), 615.0);
        assert_eq!((to, rule), (10, Some(Rule::Stabilization)));
        // The true load (10) is read from the next tick on: still 10.
        assert_eq!(step(&g, &mut st, 10, rec(10, 10), 630.0).0, 10);
        // A lasting low load scales down once a window of readings says so.
        for t in (645..=900).step_by(15) {
            assert_eq!(step(&g, &mut st, 10, rec(10, 3), t as f64).0, 10, "t={t}");
        }
        assert_eq!(step(&g, &mut st, 10, rec(10, 3), 945.0).0, 3);
    }

    #[test]
    fn missing_data_holds_then_falls_back_upwards_only() {
        let mut g = bare(1, 100);
        g.on_missing = OnMissing::Fallback {
            replicas: 8,
            after: 3,
        };
        let mut st = GovernorState::default();
        assert_eq!(
            step(&g, &mut st, 5, missing(), 0.0),
            (5, Some(Rule::MissingData))
        );
        assert_eq!(
            step(&g, &mut st, 5, missing(), 15.0),
            (5, Some(Rule::MissingData))
        );
        assert_eq!(
            step(&g, &mut st, 5, missing(), 30.0),
            (8, Some(Rule::Fallback))
        );
        // Above the fallback: never down.
        assert_eq!(
            step(&g, &mut st, 12, missing(), 45.0),
            (12, Some(Rule::MissingData))
        );
        // Data again resets the count.
        assert_eq!(step(&g, &mut st, 12, rec(12, 12), 60.0), (12, None));
        assert_eq!(st.failures, 0);
        assert_eq!(
            step(&g, &mut st, 12, missing(), 75.0),
            (12, Some(Rule::MissingData))
        );
        assert_eq!(st.failures, 1);
    }

    #[test]
    fn partial_data_may_scale_up_but_never_down() {
        let g = bare(1, 100);
        let mut st = GovernorState::default();
        let mut r = rec(10, 4);
        r.missing = missing().missing;
        assert_eq!(step(&g, &mut st, 10, r, 0.0), (10, Some(Rule::PartialData)));
        let mut r = rec(10, 14);
        r.missing = missing().missing;
        assert_eq!(step(&g, &mut st, 10, r, 15.0), (14, None));
    }

    #[test]
    fn largest_proposal_wins() {
        let g = bare(1, 100);
        let mut st = GovernorState::default();
        let mut r = rec(10, 4);
        r.proposals.extend(rec(10, 17).proposals);
        assert_eq!(step(&g, &mut st, 10, r, 0.0), (17, None));
    }

    #[test]
    fn conservative_state_blocks_early_scale_down_after_restart() {
        let g = hpa(1, 100);
        // A restart at t=1000 with 20 replicas and nothing remembered.
        let mut st = GovernorState::conservative(20, 1000.0);
        assert_eq!(
            step(&g, &mut st, 20, rec(20, 5), 1015.0),
            (20, Some(Rule::Stabilization))
        );
        assert_eq!(
            step(&g, &mut st, 20, rec(20, 5), 1299.0),
            (20, Some(Rule::Stabilization))
        );
        assert_eq!(step(&g, &mut st, 20, rec(20, 5), 1300.0), (5, None));
    }

    #[test]
    fn memory_is_pruned_to_the_longest_window() {
        let g = hpa(1, 100);
        let mut st = GovernorState::default();
        for i in 0..1000 {
            step(&g, &mut st, 10, rec(10, 10 + (i % 3)), i as f64 * 15.0);
        }
        assert!(
            st.recommendations.len() <= 21,
            "{}",
            st.recommendations.len()
        );
        assert!(st.events.len() <= 1);
    }

    use crate::engine::pause::controls as ctl;

    /// One tick under `controls`, committed as applied: the decision.
    fn paused(
        g: &Governor,
        st: &mut GovernorState,
        current: u32,
        r: Recommendation,
        controls: &Controls,
        now: Seconds,
    ) -> Decision {
        let d = g.govern(st, &obs(current), r, controls, now);
        st.commit(&d, now);
        d
    }

    use crate::engine::pause::{PAUSED, PAUSED_REPLICAS, PAUSED_SCALE_DOWN, PAUSED_SCALE_UP};

    #[test]
    fn paused_freezes_under_rising_load_and_resumes_with_its_memory() {
        let mut g = hpa(1, 20);
        g.scale_up.stabilization = 60.0;
        let on = ctl(&[(PAUSED, "true")]);
        let mut st = GovernorState::conservative(3, 0.0);
        let mut t = 0.0;
        for load in [6, 9, 12, 15] {
            t += 15.0;
            let d = paused(&g, &mut st, 3, rec(3, load), &on, t);
            assert_eq!(d.desired_replicas, 3, "{d}");
            assert_eq!(d.explanation.limited_by(), Some(Rule::Pause));
            let note = d.explanation.pause.as_ref().unwrap();
            assert_eq!(note.pause, Pause::Frozen);
            assert_eq!(note.annotation.as_deref(), Some(PAUSED));
            assert_eq!(note.started, t == 15.0, "announced once");
        }
        let d = paused(&g, &mut st, 3, rec(3, 16), &on, 75.0);
        assert!(
            d.to_string()
                .ends_with("paused (setpoint.dev/paused): holds at 3 (the other rules say 7)"),
            "{d}"
        );
        // The windows were fed and nothing was committed while paused.
        assert!(st.recommendations.len() >= 5);
        assert!(st.last_action.is_none() && st.events.is_empty());
        // Lifted: the scale-up window (60 s) already holds the paused ticks' proposals, so the
        // policy scales at once, as an unpaused one would have: to its lowest (12 at t=45... 15
        // at t=60, 16 at t=75, 16 now), within the HPA's rate limit (3 → 7).
        let d = paused(&g, &mut st, 3, rec(3, 16), &Controls::default(), 90.0);
        assert_eq!(d.desired_replicas, 7, "{d}");
        assert_eq!(d.explanation.limited_by(), Some(Rule::RateLimit));
        assert_eq!(d.explanation.pause, None);
        assert_eq!(d.explanation.resumed, Some(Pause::Frozen));
        assert!(
            d.to_string().ends_with("; resumed: no longer paused"),
            "{d}"
        );
        assert_eq!(st.paused, None);
        let d = paused(&g, &mut st, 7, rec(7, 16), &Controls::default(), 105.0);
        assert_eq!(d.explanation.resumed, None, "announced once");
    }

    #[test]
    fn paused_replicas_moves_once_clamped_then_freezes_and_the_cooldown_counts_from_it() {
        let mut g = bare(2, 10);
        g.scale_down.cooldown = 120.0;
        let mut st = GovernorState::default();
        let four = ctl(&[(PAUSED_REPLICAS, "4")]);
        let d = paused(&g, &mut st, 8, rec(8, 8), &four, 0.0);
        assert_eq!(
            (d.desired_replicas, d.explanation.limited_by()),
            (4, Some(Rule::Pause))
        );
        assert_eq!(
            d.explanation.pause.as_ref().unwrap().pause,
            Pause::Replicas { requested: 4 }
        );
        assert_eq!(
            st.last_action,
            Some((0.0, Direction::Down)),
            "an action like any other"
        );
        // Then frozen at 4, whatever the load says.
        let d = paused(&g, &mut st, 4, rec(4, 9), &four, 15.0);
        assert_eq!(d.desired_replicas, 4, "{d}");
        assert!(!d.explanation.pause.as_ref().unwrap().started);
        // Outside the bounds: clamped, and said so.
        let far = ctl(&[(PAUSED_REPLICAS, "30")]);
        let d = paused(&g, &mut st, 4, rec(4, 4), &far, 30.0);
        assert_eq!(d.desired_replicas, 10);
        assert!(
            d.to_string().contains("30 is outside [2, 10], so 10"),
            "{d}"
        );
        let d = paused(
            &g,
            &mut st,
            10,
            rec(10, 4),
            &ctl(&[(PAUSED_REPLICAS, "0")]),
            45.0,
        );
        assert_eq!(d.desired_replicas, 2, "{d}");
        // Lifted at 60 s: a scale-down waits for the cooldown from that last move (45 s).
        let d = paused(&g, &mut st, 2, rec(2, 1), &Controls::default(), 60.0);
        assert_eq!(d.desired_replicas, 2);
        let d = paused(&g, &mut st, 2, rec(2, 9), &Controls::default(), 75.0);
        assert_eq!(d.desired_replicas, 9, "up has no cooldown: {d}");
        let d = paused(&g, &mut st, 9, rec(9, 3), &Controls::default(), 90.0);
        assert_eq!(
            (d.desired_replicas, d.explanation.limited_by()),
            (9, Some(Rule::Cooldown))
        );
    }

    #[test]
    fn one_direction_pauses_block_only_their_direction() {
        let g = bare(1, 20);
        let up = ctl(&[(PAUSED_SCALE_UP, "true")]);
        let down = ctl(&[(PAUSED_SCALE_DOWN, "true")]);
        let mut st = GovernorState::default();
        let d = paused(&g, &mut st, 5, rec(5, 9), &up, 0.0);
        assert_eq!(
            (d.desired_replicas, d.explanation.limited_by()),
            (5, Some(Rule::Pause))
        );
        assert!(
            d.to_string().contains(
                "scale-up paused (setpoint.dev/paused-scale-up): holds at 5 (the other rules say 9)"
            ),
            "{d}"
        );
        let d = paused(&g, &mut st, 5, rec(5, 2), &up, 15.0);
        assert_eq!(d.desired_replicas, 2);
        assert_eq!(d.explanation.limited_by(), None);
        // Paused all the same, and the line says so though nothing was blocked.
        assert_eq!(d.explanation.pause.as_ref().unwrap().pause, Pause::ScaleUp);
        assert!(
            d.to_string()
                .ends_with("; scale-up paused (setpoint.dev/paused-scale-up)"),
            "{d}"
        );
        let d = paused(&g, &mut st, 2, rec(2, 1), &down, 30.0);
        assert_eq!(d.desired_replicas, 2);
        let note = d.explanation.pause.as_ref().unwrap();
        assert!(note.started, "a new pause: announced");
        assert_eq!(
            paused(&g, &mut st, 2, rec(2, 6), &down, 45.0).desired_replicas,
            6
        );
        // Both directions: frozen.
        let both = ctl(&[(PAUSED_SCALE_UP, "true"), (PAUSED_SCALE_DOWN, "true")]);
        assert_eq!(
            paused(&g, &mut st, 6, rec(6, 12), &both, 60.0).desired_replicas,
            6
        );
        assert_eq!(
            paused(&g, &mut st, 6, rec(6, 1), &both, 75.0).desired_replicas,
            6
        );
    }

    #[test]
    fn a_bad_paused_replicas_holds_and_says_so_and_a_bad_boolean_is_unset() {
        let g = bare(1, 20);
        let mut st = GovernorState::default();
        let bad = ctl(&[(PAUSED_REPLICAS, "abc")]);
        let d = paused(&g, &mut st, 5, rec(5, 12), &bad, 0.0);
        assert_eq!(d.desired_replicas, 5);
        assert!(
            d.to_string().contains(
                "paused: setpoint.dev/paused-replicas \"abc\" is not a replica count \
                 (setpoint.dev/paused-replicas): holds at 5"
            ),
            "{d}"
        );
        let d = paused(&g, &mut st, 5, rec(5, 12), &ctl(&[(PAUSED, "false")]), 15.0);
        assert_eq!(d.desired_replicas, 12);
        assert_eq!(d.explanation.pause, None);
    }

    #[test]
    fn bounds_stay_absolute_under_a_pause() {
        let g = bare(2, 10);
        let on = ctl(&[(PAUSED, "true")]);
        let mut st = GovernorState::default();
        let d = paused(&g, &mut st, 14, rec(14, 14), &on, 0.0);
        assert_eq!(d.desired_replicas, 10);
        assert!(
            d.to_string().contains("but 14 is outside [2, 10]: 10"),
            "{d}"
        );
        let up = ctl(&[(PAUSED_SCALE_UP, "true")]);
        assert_eq!(
            paused(&g, &mut st, 1, rec(1, 1), &up, 15.0).desired_replicas,
            2
        );
        let down = ctl(&[(PAUSED_SCALE_DOWN, "true")]);
        assert_eq!(
            paused(&g, &mut st, 12, rec(12, 3), &down, 30.0).desired_replicas,
            10
        );
    }

    #[test]
    fn a_target_scaled_to_zero_by_someone_else_stays_there_until_scaled_up_by_hand() {
        let g = hpa(2, 10);
        let mut st = GovernorState::conservative(6, 0.0);
        let none = Controls::default();
        let d = paused(&g, &mut st, 0, rec(0, 8), &none, 15.0);
        assert_eq!(
            (d.desired_replicas, d.explanation.limited_by()),
            (0, Some(Rule::Pause))
        );
        let note = d.explanation.pause.as_ref().unwrap();
        assert_eq!(
            (&note.pause, note.annotation.as_ref(), note.started),
            (&Pause::ScaledToZero, None, true)
        );
        assert!(
            d.to_string().contains("switched off by someone else"),
            "{d}"
        );
        // No data, and any number of ticks: still 0, and nothing fed to the windows.
        let before = st.recommendations.len();
        for i in 2..40 {
            let d = paused(&g, &mut st, 0, missing(), &none, i as f64 * 15.0);
            assert_eq!(d.desired_replicas, 0);
        }
        assert!(st.recommendations.len() <= before);
        // Scaled up by hand to 5: the policy resumes, with 5 as a recommendation made now, so
        // that a low load waits a scale-down window.
        let d = paused(&g, &mut st, 5, rec(5, 1), &none, 600.0);
        assert_eq!(d.explanation.resumed, Some(Pause::ScaledToZero));
        assert_eq!(
            (d.desired_replicas, d.explanation.limited_by()),
            (5, Some(Rule::Stabilization))
        );
        assert_eq!(
            paused(&g, &mut st, 5, rec(5, 1), &none, 900.0).desired_replicas,
            2
        );
        // paused-replicas is an explicit ask: it moves a target at zero.
        let mut st = GovernorState::default();
        let three = ctl(&[(PAUSED_REPLICAS, "3")]);
        assert_eq!(
            paused(&g, &mut st, 0, rec(0, 8), &three, 0.0).desired_replicas,
            3
        );
        // paused holds at zero too.
        let mut st = GovernorState::default();
        let on = ctl(&[(PAUSED, "true")]);
        assert_eq!(
            paused(&g, &mut st, 0, rec(0, 8), &on, 0.0).desired_replicas,
            0
        );
    }

    #[test]
    fn scale_to_zero_policies_keep_their_rules_at_zero_unless_paused() {
        let mut g = hpa(0, 10);
        g.scale_to_zero.thresholds = vec![("m".into(), 0.0)];
        let none = Controls::default();
        let mut st = GovernorState::default();
        let d = paused(&g, &mut st, 0, rec(0, 3), &none, 0.0);
        assert_eq!(
            (d.desired_replicas, d.explanation.limited_by()),
            (3, Some(Rule::Activation))
        );
        assert_eq!(d.explanation.pause, None);
        let mut st = GovernorState::default();
        for c in [ctl(&[(PAUSED, "true")]), ctl(&[(PAUSED_SCALE_UP, "true")])] {
            let d = paused(&g, &mut st, 0, rec(0, 3), &c, 0.0);
            assert_eq!(
                (d.desired_replicas, d.explanation.limited_by()),
                (0, Some(Rule::Pause)),
                "{d}"
            );
            assert!(!d.explanation.activity.unwrap().active);
        }
        // Idle at 1 for longer than the idle time while scale-down is paused: stays at 1; lifted,
        // the idle clock kept running and it goes to zero at once.
        let mut g = bare(0, 10);
        g.scale_to_zero.idle = 60.0;
        let down = ctl(&[(PAUSED_SCALE_DOWN, "true")]);
        let mut st = GovernorState::default();
        for i in 0..10 {
            let d = paused(&g, &mut st, 1, rec(1, 0), &down, i as f64 * 15.0);
            assert_eq!(d.desired_replicas, 1, "{d}");
        }
        let d = paused(&g, &mut st, 1, rec(1, 0), &none, 150.0);
        assert_eq!(
            (d.desired_replicas, d.explanation.limited_by()),
            (0, Some(Rule::Deactivation))
        );
    }

    #[test]
    fn explanation_names_the_numbers() {
        let g = hpa(1, 100);
        let mut st = GovernorState::default();
        let d = g.govern(&mut st, &obs(2), rec(2, 30), &Controls::default(), 0.0);
        let line = d.to_string();
        assert!(
            line.starts_with("scale up 2→6: m 30 vs 1/replica → 30"),
            "{line}"
        );
        assert!(
            line.contains("scale-up limit 6 (100% per 15s, 4 pods per 15s)"),
            "{line}"
        );
    }
}
