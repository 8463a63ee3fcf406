//! The status of a policy that came from a ScalingPolicy object: computed from each tick's
//! outcome ([`of_tick`], pure), or for an object whose spec is invalid ([`invalid`]), and
//! written to the object's `/status` subresource by [`StatusWriter`] when something in it
//! changed: the worker calls [`StatusWriter::after_tick`] after each tick; the loader of
//! ScalingPolicy objects calls [`StatusWriter::after_invalid`] for an object that does not
//! validate.
//!
//! # What the conditions say
//!
//! Reasons follow the HorizontalPodAutoscaler's where it has one:
//!
//! | condition | status, reason |
//! |---|---|
//! | `Ready` | True `Reconciled` (the tick worked); False `TickFailed` (with the error), `WaitingForSync` (a watch has not listed yet, or relists: the policy holds), `InvalidSpec` (the field path and message) |
//! | `AbleToScale` | True `ReadyForNewScale`, `SucceededRescale`, `ScaleUpStabilized`, `ScaleDownStabilized`, `SucceededResize`; False `FailedGetScale`, `FailedUpdateScale`, `BackoffUpscale`, `BackoffDownscale` (a cooldown), `RecommendOnly` (`mode: recommend`), `DryRun` (`--dry-run`), `FailedResize`, `ResizeNotApplied` |
//! | `ScalingActive` | True `ValidMetricFound`; False `FailedGetPrometheusMetric`, `FailedGetResourceMetric`, `FailedGetPodsMetric` (no metric gave data), `NoUsageData` (vertical only, no usage yet) |
//! | `ScalingLimited` | True `TooManyReplicas`, `TooFewReplicas` (a bound), `ScaleUpLimit`, `ScaleDownLimit` (a rate limit), `ScaleUpStabilized`, `ScaleDownStabilized`, `ScaleUpCooldown`, `ScaleDownCooldown`, `PartialData`, `Schedule` (the last governor rule that held the count back); False `DesiredWithinRange` |
//! | `Paused` | True `Paused`, `PausedAtReplicas`, `ScaleUpPaused`, `ScaleDownPaused`, `InvalidPauseAnnotation`, `ScalingDisabled` (the target was scaled to 0 by someone else; `ScalingActive` is then False `ScalingDisabled` too, as the HPA says); False `NotPaused` |
//! | `Fallback` | True `MissingMetrics` (a metric without data; the missing-data rule acts), `FallbackReplicas` (the `onMetricError` fallback count applies), `ReactiveOnly` (a predictive policy without a usable forecast); False `AllMetricsAvailable` |
//!
//! A tick that failed before it decided keeps the previous `ScalingActive`, `ScalingLimited`
//! and `Fallback` conditions and counts: they describe the last decision, which still stands.
//!
//! # When it is written
//!
//! Only for a policy from an object, only while this replica holds the Lease (a standby replica
//! computes the status, to keep the transition times, and writes nothing; after it takes the
//! Lease its first tick writes), and only when the status changed: [`due`] compares it without
//! its times, and values that drift with the load (each metric's value and proposal and the
//! one-line explanation of the last decision, the forecast, the vertical recommendation) rewrite it at
//! most every [`REFRESH_EVERY`]. A failed write is logged once and tried again at the next tick.

use super::admin::redact;
use super::telemetry::Telemetry;
use crate::cluster::{Cluster, ClusterError};
use crate::engine::pause::Pause;
use crate::engine::quantity::Resource;
use crate::engine::vertical_plan::{VerticalAction, show};
use crate::engine::{Decision, Direction, Rule, State};
use crate::policy::status::{
    ConditionStatus::{False, True, Unknown},
    ConditionType::{AbleToScale, Fallback, Paused, Ready, ScalingActive, ScalingLimited},
    ContainerStatus, ForecastStatus, LastDecision, MAX_LISTED, MAX_SUMMARY, MetricStatus,
    PolicyStatus, Resources, Verdict, VerticalStatus, cut, rfc3339, round3,
};
use crate::policy::{MetricQuery, ObjectRef, Policy, Problem};
use crate::tick::vertical::{Applied, VerticalOutcome};
use crate::tick::{Actuator, TickOutcome, Why};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::{debug, info, warn};

/// A status whose only changes are values that drift with the load is rewritten at most this
/// often.
pub const REFRESH_EVERY: Duration = Duration::from_secs(15 * 60);

/// The status of `policy` after a tick's `outcome`, with the governor's `memory` (for
/// `lastScaleTime`) and the `previous` status (for `lastTransitionTime`, and what a failed tick
/// keeps), at `now`.
pub fn of_tick(
    policy: &Policy,
    outcome: &TickOutcome,
    memory: Option<&State>,
    previous: Option<&PolicyStatus>,
    now: SystemTime,
) -> PolicyStatus {
    let generation = policy.object.as_ref().map(|o| o.generation);
    let decision = outcome.decision.as_ref();
    let vertical = outcome.vertical.as_ref();
    let decided = decision.is_some() || vertical.is_some();
    let mut status = match (decided, previous) {
        (false, Some(p)) => PolicyStatus {
            conditions: Vec::new(),
            ..p.clone()
        },
        _ => PolicyStatus::default(),
    };
    status.observed_generation = generation;
    if let Some(scale) = &outcome.scale {
        status.current_replicas = Some(scale.spec_replicas);
        status.ready_replicas = Some(outcome.target.ready);
    }
    if let Some(d) = decision {
        status.current_replicas = Some(d.current_replicas);
        status.desired_replicas = Some(d.desired_replicas);
    }
    if let Some(t) = last_scale_time(memory) {
        status.last_scale_time = Some(t);
    }
    if decided {
        status.last_decision = Some(last_decision(policy, decision, vertical, now));
        status.forecast = decision.map(forecast).unwrap_or_default();
        status.vertical = vertical.map(vertical_status);
    }
    let (pause, paused_text) = paused(policy, outcome);
    status.paused = paused_text;
    let mut verdicts = vec![ready(outcome), able_to_scale(outcome), pause];
    if decided {
        verdicts.extend([
            scaling_active(policy, decision, vertical),
            scaling_limited(decision),
            fallback(decision),
        ]);
    }
    for v in verdicts {
        status.set_condition(v, previous, generation, now);
    }
    // A tick that did not decide keeps what the last decision said.
    for t in [ScalingActive, ScalingLimited, Fallback] {
        if status.condition(t).is_none() {
            match previous.and_then(|p| p.condition(t)) {
                Some(c) => {
                    status.conditions.push(c.clone());
                    status.conditions.sort_by_key(|c| c.type_);
                }
                None => status.set_condition(
                    Verdict::new(t, Unknown, "NoDecision", "no decision yet"),
                    previous,
                    generation,
                    now,
                ),
            }
        }
    }
    status
}

/// The status of an object whose spec is invalid: `Ready` False `InvalidSpec`, with each
/// problem's field path and message; the rest of `previous` (what the last valid version
/// said) is kept.
pub fn invalid(
    generation: i64,
    problems: &[Problem],
    previous: Option<&PolicyStatus>,
    now: SystemTime,
) -> PolicyStatus {
    let status = previous.cloned().unwrap_or_default();
    mark_invalid(status, generation, problems, previous, now)
}

/// A spec that does not validate, of a ScalingPolicy object whose previous version runs on.
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidSpec {
    /// The object, at the generation that does not validate.
    pub object: ObjectRef,
    /// What is wrong with it.
    pub problems: Vec<Problem>,
}

/// `status` with `Ready` False `InvalidSpec` at `generation` (transition times against
/// `previous`).
fn mark_invalid(
    mut status: PolicyStatus,
    generation: i64,
    problems: &[Problem],
    previous: Option<&PolicyStatus>,
    now: SystemTime,
) -> PolicyStatus {
    status.observed_generation = Some(generation);
    let listed: Vec<String> = problems
        .iter()
        .map(|p| match p.field.as_str() {
            "" => p.message.clone(),
            field => format!("{field}: {}", p.message),
        })
        .collect();
    let message = format!("the spec is invalid: {}", listed.join("; "));
    let verdict = Verdict::new(Ready, False, "InvalidSpec", redact(&message));
    status.set_condition(verdict, previous, Some(generation), now);
    status
}

/// The pause in force: the `Paused` condition and `status.paused` (empty when not paused), from
/// the pause the tick was under (the policy's or the target's annotations, or a target scaled
/// to 0 by someone else).
pub fn paused(_policy: &Policy, outcome: &TickOutcome) -> (Verdict, String) {
    match &outcome.pause {
        Some(note) => (
            Verdict::new(Paused, True, note.pause.reason(), note.to_string()),
            note.pause.status(),
        ),
        None => (
            Verdict::new(Paused, False, "NotPaused", "no pause annotation"),
            String::new(),
        ),
    }
}

fn ready(outcome: &TickOutcome) -> Verdict {
    if let Some(e) = &outcome.error {
        // A watch that has not (re)listed yet holds the policy: not a failure.
        let reason = match e {
            ClusterError::NotSynced { .. } => "WaitingForSync",
            _ => "TickFailed",
        };
        return Verdict::new(Ready, False, reason, redact(&e.to_string()));
    }
    let message = match outcome.why {
        Why::Applying => "the policy runs and applies its decisions",
        Why::PolicyRecommends => {
            "the policy runs in recommend mode: desiredReplicas is its recommendation"
        }
        Why::DryRun => "the daemon runs with --dry-run: desiredReplicas is a recommendation",
        Why::Standby | Why::ReadOnly => "the policy runs; this replica does not act",
    };
    Verdict::new(Ready, True, "Reconciled", message)
}

fn able_to_scale(outcome: &TickOutcome) -> Verdict {
    let v = |status, reason, message: String| Verdict::new(AbleToScale, status, reason, message);
    if let Some(e) = &outcome.error {
        let reason = if outcome.patch_failed {
            "FailedUpdateScale"
        } else {
            "FailedGetScale"
        };
        return v(False, reason, redact(&e.to_string()));
    }
    if let Some(d) = &outcome.decision {
        return horizontal_able(outcome, d);
    }
    match outcome.vertical.as_ref().map(|o| &o.applied) {
        Some(Applied::Failed { error }) => v(False, "FailedResize", redact(error)),
        Some(Applied::NotApplied { .. }) => recommending(outcome.why),
        Some(Applied::Resized { pod, .. }) => v(
            True,
            "SucceededResize",
            format!("resized pod {pod} in place"),
        ),
        Some(Applied::TemplatePatched { .. }) => v(
            True,
            "SucceededResize",
            "patched the pod template".to_string(),
        ),
        _ if reported(outcome) => v(
            False,
            "ResizeNotApplied",
            "the vertical plan reports a change it will not make (see lastDecision)".into(),
        ),
        _ if outcome.actuator == Actuator::Recommend => recommending(outcome.why),
        _ => v(True, "ReadyForNewScale", "nothing to change".into()),
    }
}

/// Whether the vertical plan reports a change it will not make.
fn reported(outcome: &TickOutcome) -> bool {
    let action = outcome.vertical.as_ref().map(|o| &o.plan.action);
    matches!(action, Some(VerticalAction::Report { .. }))
}

/// AbleToScale of a horizontal decision.
fn horizontal_able(outcome: &TickOutcome, d: &Decision) -> Verdict {
    let v = |status, reason, message: String| Verdict::new(AbleToScale, status, reason, message);
    if let Some(new) = &outcome.patched {
        return v(
            True,
            "SucceededRescale",
            format!(
                "scaled the target from {} to {}",
                d.current_replicas, new.spec_replicas
            ),
        );
    }
    if outcome.actuator == Actuator::Recommend {
        return recommending(outcome.why);
    }
    match limiting(d) {
        Some((Rule::Cooldown, dir)) => {
            let reason = match dir {
                Direction::Up => "BackoffUpscale",
                Direction::Down => "BackoffDownscale",
            };
            v(
                False,
                reason,
                format!("a scale-{dir} cooldown holds the count since the last action"),
            )
        }
        Some((Rule::Stabilization, Direction::Up)) => v(
            True,
            "ScaleUpStabilized",
            "recent recommendations were lower than the current one: applying the lowest".into(),
        ),
        Some((Rule::Stabilization, Direction::Down)) => v(
            True,
            "ScaleDownStabilized",
            "recent recommendations were higher than the current one: applying the highest".into(),
        ),
        _ => v(
            True,
            "ReadyForNewScale",
            "recommended size matches current size".into(),
        ),
    }
}

fn recommending(why: Why) -> Verdict {
    let (reason, message) = match why {
        Why::DryRun => (
            "DryRun",
            "the daemon runs with --dry-run: nothing is patched",
        ),
        _ => (
            "RecommendOnly",
            "the policy's mode is recommend: nothing is patched",
        ),
    };
    Verdict::new(AbleToScale, False, reason, message)
}

/// The last governor rule that held the count back, and the direction it held.
fn limiting(d: &Decision) -> Option<(Rule, Direction)> {
    d.explanation.steps.iter().rev().find_map(|s| {
        let held = matches!(
            s.rule,
            Rule::Bounds
                | Rule::RateLimit
                | Rule::Stabilization
                | Rule::Cooldown
                | Rule::PartialData
                | Rule::Schedule
        );
        // The direction the proposal wanted to go, which the rule held back.
        let dir = Direction::of(s.to, s.from)?;
        held.then_some((s.rule, dir))
    })
}

fn scaling_active(
    policy: &Policy,
    decision: Option<&Decision>,
    vertical: Option<&VerticalOutcome>,
) -> Verdict {
    let v = |status, reason, message: String| Verdict::new(ScalingActive, status, reason, message);
    let Some(d) = decision else {
        let rows = vertical.map_or(&[][..], |o| &o.plan.rows[..]);
        let with_data: Vec<&str> = rows
            .iter()
            .filter(|r| r.recommended.is_some())
            .map(|r| r.container.as_str())
            .collect();
        return match with_data.first() {
            Some(_) => v(
                True,
                "ValidMetricFound",
                "the vertical recommendation is computed from the containers' usage".into(),
            ),
            None => v(
                False,
                "NoUsageData",
                "no usage data of the containers yet".into(),
            ),
        };
    };
    let e = &d.explanation;
    if let Some(note) = e.pause.as_ref().filter(|n| n.pause == Pause::ScaledToZero) {
        // As the HPA says of a target at 0 replicas.
        return v(False, "ScalingDisabled", note.to_string());
    }
    if e.proposals.is_empty() {
        let first = e.missing.first();
        let query = first.and_then(|m| {
            let i = policy.metrics().iter().position(|t| t.name == m.metric)?;
            policy.queries.get(i)
        });
        let reason = match query {
            Some(MetricQuery::Resource { .. }) => "FailedGetResourceMetric",
            Some(MetricQuery::Pods(_)) => "FailedGetPodsMetric",
            _ => "FailedGetPrometheusMetric",
        };
        let what: Vec<String> = e
            .missing
            .iter()
            .map(|m| format!("{} ({})", m.metric, m.reason))
            .collect();
        return v(
            False,
            reason,
            redact(&format!("no metric gave data: {}", what.join(", "))),
        );
    }
    let names: Vec<&str> = e.proposals.iter().map(|p| p.metric.as_str()).collect();
    v(
        True,
        "ValidMetricFound",
        format!("the replica count is computed from {}", names.join(", ")),
    )
}

fn scaling_limited(decision: Option<&Decision>) -> Verdict {
    let v = |status, reason, message: String| Verdict::new(ScalingLimited, status, reason, message);
    let within = || {
        v(
            False,
            "DesiredWithinRange",
            "the desired count is within the acceptable range".into(),
        )
    };
    let Some(d) = decision else {
        return within();
    };
    let Some((rule, dir)) = limiting(d) else {
        return within();
    };
    // The count it held at, not the proposal it held back (which moves with the load).
    let step = d.explanation.steps.iter().rev().find(|s| s.rule == rule);
    let to = step.map_or(d.desired_replicas, |s| s.to);
    let reason = match (rule, dir) {
        (Rule::Bounds, Direction::Up) => "TooManyReplicas",
        (Rule::Bounds, Direction::Down) => "TooFewReplicas",
        (Rule::RateLimit, Direction::Up) => "ScaleUpLimit",
        (Rule::RateLimit, Direction::Down) => "ScaleDownLimit",
        (Rule::Stabilization, Direction::Up) => "ScaleUpStabilized",
        (Rule::Stabilization, Direction::Down) => "ScaleDownStabilized",
        (Rule::Cooldown, Direction::Up) => "ScaleUpCooldown",
        (Rule::Cooldown, Direction::Down) => "ScaleDownCooldown",
        (Rule::PartialData, _) => "PartialData",
        _ => "Schedule",
    };
    let what = match rule {
        Rule::Bounds => "the replica bounds",
        Rule::RateLimit => "a rate limit",
        Rule::Stabilization => "the stabilization window",
        Rule::Cooldown => "a cooldown",
        Rule::PartialData => "missing data (no scale-down)",
        _ => "a schedule window",
    };
    v(True, reason, format!("{what} held the count at {to}"))
}

fn fallback(decision: Option<&Decision>) -> Verdict {
    let v = |status, reason, message: String| Verdict::new(Fallback, status, reason, message);
    let Some(d) = decision else {
        return v(
            False,
            "AllMetricsAvailable",
            "every metric gives data".into(),
        );
    };
    let e = &d.explanation;
    if !e.missing.is_empty() {
        let names: Vec<&str> = e.missing.iter().map(|m| m.metric.as_str()).collect();
        let names = names.join(", ");
        if let Some(s) = e.steps.iter().find(|s| s.rule == Rule::Fallback) {
            return v(
                True,
                "FallbackReplicas",
                format!(
                    "no data for {names}: onMetricError raised the count to {}",
                    s.to
                ),
            );
        }
        let rule = if e.proposals.is_empty() {
            "holding the count"
        } else {
            "no scale-down"
        };
        return v(
            True,
            "MissingMetrics",
            format!("no data for {names}: {rule}"),
        );
    }
    let reactive: Vec<&str> = e
        .forecasts
        .iter()
        .filter(|n| n.fallback.is_some())
        .map(|n| n.metric.as_str())
        .collect();
    if !reactive.is_empty() {
        return v(
            True,
            "ReactiveOnly",
            format!(
                "no usable forecast of {}: proposing reactively (see forecast[].fallback)",
                reactive.join(", ")
            ),
        );
    }
    v(
        False,
        "AllMetricsAvailable",
        "every metric gives data".into(),
    )
}

fn last_decision(
    policy: &Policy,
    decision: Option<&Decision>,
    vertical: Option<&VerticalOutcome>,
    now: SystemTime,
) -> LastDecision {
    let line = match (decision, vertical) {
        (Some(d), Some(v)) => format!("{d}; vertical: {v}"),
        (Some(d), None) => d.to_string(),
        (None, Some(v)) => v.to_string(),
        (None, None) => String::new(),
    };
    let mut metrics = Vec::new();
    if let Some(d) = decision {
        let e = &d.explanation;
        for m in policy.metrics() {
            let target = m.target.to_string();
            if let Some(p) = e.proposals.iter().find(|p| p.metric == m.name) {
                metrics.push(MetricStatus {
                    name: m.name.clone(),
                    value: Some(round3(p.value)),
                    target,
                    proposal: Some(p.replicas),
                    no_data: None,
                });
            } else if let Some(x) = e.missing.iter().find(|x| x.metric == m.name) {
                metrics.push(MetricStatus {
                    name: m.name.clone(),
                    value: None,
                    target,
                    proposal: None,
                    no_data: Some(redact(&cut(&x.reason, 256))),
                });
            }
        }
    }
    let omitted = metrics.len().saturating_sub(MAX_LISTED) as u32;
    metrics.truncate(MAX_LISTED);
    LastDecision {
        time: rfc3339(now),
        summary: redact(&cut(&line, MAX_SUMMARY)),
        metrics,
        omitted_metrics: omitted,
    }
}

fn forecast(d: &Decision) -> Vec<ForecastStatus> {
    d.explanation
        .forecasts
        .iter()
        .take(MAX_LISTED)
        .map(|n| ForecastStatus {
            metric: n.metric.clone(),
            current: round3(n.current),
            expected: n.expected.map(round3),
            upper: n.upper.map(round3),
            quantile: n.quantile,
            horizon_seconds: n.horizon_s,
            season_seconds: n.season_s,
            model: match (&n.model, &n.fallback) {
                (Some(m), _) => Some(m.clone()),
                (None, None) => Some("holt-winters".into()),
                (None, Some(_)) => None,
            },
            fallback: n.fallback.clone(),
        })
        .collect()
}

fn vertical_status(outcome: &VerticalOutcome) -> VerticalStatus {
    let mut containers: Vec<ContainerStatus> = Vec::new();
    for row in &outcome.plan.rows {
        let Some(rec) = &row.recommended else {
            continue;
        };
        let i = match containers
            .iter()
            .position(|c| c.container_name == row.container)
        {
            Some(i) => i,
            None => {
                containers.push(ContainerStatus {
                    container_name: row.container.clone(),
                    target: Resources::default(),
                    lower_bound: Resources::default(),
                    upper_bound: Resources::default(),
                });
                containers.len() - 1
            }
        };
        let c = &mut containers[i];
        let r = row.resource;
        for (slot, value) in [
            (&mut c.target, rec.target),
            (&mut c.lower_bound, rec.lower),
            (&mut c.upper_bound, rec.upper),
        ] {
            let q = Some(show(r, value));
            match r {
                Resource::Cpu => slot.cpu = q,
                Resource::Memory => slot.memory = q,
            }
        }
    }
    let omitted = containers.len().saturating_sub(MAX_LISTED) as u32;
    containers.truncate(MAX_LISTED);
    VerticalStatus {
        container_recommendations: containers,
        omitted_containers: omitted,
    }
}

/// When the governor's `memory` last saw a scaling action applied (RFC 3339).
pub(super) fn last_scale_time(memory: Option<&State>) -> Option<String> {
    let (t, _) = memory?.governor.last_action?;
    Some(rfc3339(unix_time(t)))
}

fn unix_time(t: f64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs_f64(t.max(0.0))
}

/// `status` without its times (`lastTransitionTime`, `lastDecision.time`).
fn timeless(status: &PolicyStatus) -> PolicyStatus {
    let mut s = status.clone();
    for c in &mut s.conditions {
        c.last_transition_time.clear();
    }
    if let Some(d) = &mut s.last_decision {
        d.time.clear();
    }
    s
}

/// `status` without its times and without the values that drift with the load: each metric's
/// value and proposal and the one-line explanation, the forecast's numbers and reasons, the vertical
/// quantities.
fn settled(status: &PolicyStatus) -> PolicyStatus {
    let mut s = timeless(status);
    if let Some(d) = &mut s.last_decision {
        d.summary.clear();
        for m in &mut d.metrics {
            m.value = m.value.map(|_| 0.0);
            m.proposal = m.proposal.map(|_| 0);
        }
    }
    for f in &mut s.forecast {
        f.current = 0.0;
        f.expected = f.expected.map(|_| 0.0);
        f.upper = f.upper.map(|_| 0.0);
        f.season_seconds = f.season_seconds.map(|_| 0.0);
        f.fallback = f.fallback.as_ref().map(|_| String::new());
    }
    if let Some(v) = &mut s.vertical {
        for c in &mut v.container_recommendations {
            for r in [&mut c.target, &mut c.lower_bound, &mut c.upper_bound] {
                r.cpu = r.cpu.as_ref().map(|_| String::new());
                r.memory = r.memory.as_ref().map(|_| String::new());
            }
        }
    }
    s
}

/// Why a status is written now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Nothing written yet (since this replica took the Lease).
    First,
    /// Something other than a drifting value changed.
    Changed,
    /// Only drifting values changed, and the last write is [`REFRESH_EVERY`] old.
    Refresh,
}

/// Whether `new` is to be written at `now`, after `written` (the last status written, and
/// when); None: not now.
pub fn due(
    written: Option<(&PolicyStatus, SystemTime)>,
    new: &PolicyStatus,
    now: SystemTime,
) -> Option<Due> {
    let Some((old, at)) = written else {
        return Some(Due::First);
    };
    if settled(old) != settled(new) {
        return Some(Due::Changed);
    }
    let old_enough = now.duration_since(at).is_ok_and(|d| d >= REFRESH_EVERY);
    (old_enough && timeless(old) != timeless(new)).then_some(Due::Refresh)
}

/// One policy's status: what was last computed (for the transition times) and written (for
/// [`due`]), and whether the last write failed.
#[derive(Debug, Default)]
pub struct StatusWriter {
    computed: Option<PolicyStatus>,
    /// A newer spec of the object that does not validate.
    invalid: Option<InvalidSpec>,
    written: Option<(PolicyStatus, SystemTime)>,
    failing: bool,
}

impl StatusWriter {
    /// Says that a newer spec of the object does not validate (None: it does): the statuses
    /// [`StatusWriter::after_tick`] writes then say `Ready` False `InvalidSpec`.
    pub fn set_invalid(&mut self, invalid: Option<InvalidSpec>) {
        self.invalid = invalid;
    }

    /// Takes the status the object holds (`live`, as a watch of the object shows it) as the
    /// previous one, before the first tick: its conditions keep their `lastTransitionTime`
    /// across a restart or a change of leader. A status already computed wins.
    pub fn seed(&mut self, live: PolicyStatus) {
        self.computed.get_or_insert(live);
    }

    /// The status last computed.
    pub fn computed(&self) -> Option<&PolicyStatus> {
        self.computed.as_ref()
    }

    /// After a tick of `policy`: computes its status at the tick's time ([`of_tick`]) and, for
    /// a policy from an object, while `leading` (this replica holds the Lease), writes it when
    /// [`due`] says so. Returns why it wrote, if it did and it worked.
    pub async fn after_tick<C: Cluster>(
        &mut self,
        cluster: &C,
        telemetry: &Telemetry,
        policy: &Policy,
        outcome: &TickOutcome,
        memory: Option<&State>,
        leading: bool,
    ) -> Option<Due> {
        let object = policy.object.as_ref()?;
        let now = unix_time(outcome.now);
        let mut status = of_tick(policy, outcome, memory, self.computed.as_ref(), now);
        if let Some(i) = &self.invalid {
            // A newer spec of the object does not validate: this version runs on, and the
            // status says so.
            let previous = self.computed.as_ref();
            status = mark_invalid(status, i.object.generation, &i.problems, previous, now);
        }
        self.write(cluster, telemetry, object, status, leading, now)
            .await
    }

    /// For `object`, whose spec (at `object.generation`) has `problems`: computes its status
    /// ([`invalid`]) and writes it as [`StatusWriter::after_tick`] does. Call it again when
    /// the object changes, or later if a write failed.
    pub async fn after_invalid<C: Cluster>(
        &mut self,
        cluster: &C,
        telemetry: &Telemetry,
        object: &ObjectRef,
        problems: &[Problem],
        leading: bool,
        now: SystemTime,
    ) -> Option<Due> {
        let status = invalid(object.generation, problems, self.computed.as_ref(), now);
        self.write(cluster, telemetry, object, status, leading, now)
            .await
    }

    /// Keeps `status` as computed and, while `leading`, writes it when [`due`]. A write is
    /// counted in `setpoint_status_writes_total`; a failed one is logged once (while it keeps
    /// failing) and tried again at the next call.
    async fn write<C: Cluster>(
        &mut self,
        cluster: &C,
        telemetry: &Telemetry,
        object: &ObjectRef,
        status: PolicyStatus,
        leading: bool,
        now: SystemTime,
    ) -> Option<Due> {
        self.computed = Some(status.clone());
        if !leading {
            // The leader writes; after taking the Lease, this replica writes once first.
            self.written = None;
            return None;
        }
        let why = due(self.written.as_ref().map(|(s, t)| (s, *t)), &status, now)?;
        match cluster.apply_status(object, &status).await {
            Ok(()) => {
                telemetry.record_status_write(true);
                if self.failing {
                    info!("the status is written again");
                }
                debug!(?why, "status written");
                self.failing = false;
                self.written = Some((status, now));
                Some(why)
            }
            Err(e) => {
                telemetry.record_status_write(false);
                telemetry.record_error(super::telemetry::ErrorKind::of(&e));
                if !self.failing {
                    warn!(error = %e, "cannot write the status: trying again at the next tick");
                } else {
                    debug!(error = %e, "cannot write the status, again");
                }
                self.failing = true;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{ClusterError, ScaleState};
    use crate::engine::predictive::ForecastNote;
    use crate::engine::vertical::Recommended;
    use crate::engine::vertical_plan::{PlanRow, VerticalPlan};
    use crate::engine::{Observation, Sample};
    use crate::policy::status::{ConditionStatus, ConditionType};
    use crate::tick::TargetState;
    use std::path::Path;

    const T0: f64 = 1_780_000_000.0;

    fn wall(t: f64) -> SystemTime {
        unix_time(t)
    }

    /// `rps` per replica 100, 1 to 10 replicas, no tolerance or windows unless `extra` (YAML
    /// lines under `horizontal:`) says; from object `web` at generation 4.
    fn policy(mode: &str, extra: &str) -> Policy {
        let text = format!(
            "apiVersion: setpoint.dev/v1alpha1\nkind: ScalingPolicy\nmetadata: {{name: web}}\n\
             spec:\n  target: {{kind: Deployment, name: web}}\n  mode: {mode}\n  interval: 15s\n  \
             horizontal:\n    preset: none\n    replicas: {{min: 1, max: 10}}\n    metrics:\n      \
             - {{name: rps, prometheus: 'sum(rate(x[1m]))', targetPerReplica: 100}}\n{extra}"
        );
        let mut p = crate::policy::parse(&text, Path::new("web.yaml")).unwrap();
        p.object = Some(ObjectRef {
            name: "web".into(),
            uid: "u-1".into(),
            generation: 4,
        });
        p
    }

    /// One tick's outcome: `rps` at `value` (None: no data), the target at `current`, decided
    /// and, with `mode: apply`, applied (committed and patched).
    fn tick(
        p: &Policy,
        state: &mut State,
        value: Option<f64>,
        current: u32,
        t: f64,
    ) -> TickOutcome {
        let (actuator, why) = match p.mode {
            crate::policy::Mode::Apply => (Actuator::Apply, Why::Applying),
            crate::policy::Mode::Recommend => (Actuator::Recommend, Why::PolicyRecommends),
        };
        let sample = value.map_or_else(|| Sample::no_data("empty result"), Sample::from_f64);
        let obs = Observation {
            current_replicas: current,
            ready_replicas: current,
            samples: vec![sample],
        };
        let h = p.horizontal.as_ref().unwrap();
        let decision = crate::engine::decide(h, state, &obs, &Default::default(), t);
        let scale = ScaleState {
            spec_replicas: current,
            status_replicas: current,
            selector: None,
            resource_version: Some("1".into()),
        };
        let patched =
            (actuator == Actuator::Apply && decision.desired_replicas != current).then(|| {
                state.governor.commit(&decision, t);
                ScaleState {
                    spec_replicas: decision.desired_replicas,
                    ..scale.clone()
                }
            });
        TickOutcome {
            scale: Some(scale),
            target: TargetState {
                current,
                ready: current,
                pods: None,
                selector: None,
            },
            decision: Some(decision),
            patched,
            ..TickOutcome::new(t, actuator, why)
        }
    }

    fn reason(s: &PolicyStatus, t: ConditionType) -> (ConditionStatus, String) {
        let c = s.condition(t).expect("the condition is set");
        (c.status, c.reason.clone())
    }

    fn is(s: &PolicyStatus, t: ConditionType, status: ConditionStatus, r: &str) {
        assert_eq!(reason(s, t), (status, r.to_string()), "{t}: {s:#?}");
    }

    fn status_after(p: &Policy, value: Option<f64>, current: u32) -> PolicyStatus {
        let mut state = State::conservative(current, T0 - 3600.0);
        let out = tick(p, &mut state, value, current, T0);
        of_tick(p, &out, Some(&state), None, wall(T0))
    }

    /// The status after one tick under the pause `annotations`, the target at `current`.
    fn paused_status(annotations: &[(&str, &str)], current: u32) -> PolicyStatus {
        let p = policy("apply", "");
        let mut state = State::conservative(current, T0 - 3600.0);
        let obs = Observation {
            current_replicas: current,
            ready_replicas: current,
            samples: vec![Sample::from_f64(900.0)],
        };
        let controls = crate::engine::pause::controls(annotations);
        let h = p.horizontal.as_ref().unwrap();
        let decision = crate::engine::decide(h, &mut state, &obs, &controls, T0);
        assert_eq!(decision.desired_replicas, current, "{decision}");
        let out = TickOutcome {
            pause: decision.explanation.pause.clone(),
            decision: Some(decision),
            ..TickOutcome::new(T0, Actuator::Apply, Why::Applying)
        };
        of_tick(&p, &out, Some(&state), None, wall(T0))
    }

    #[test]
    fn a_watch_not_synced_yet_is_waiting_not_failing() {
        let p = policy("apply", "");
        let out = TickOutcome {
            error: Some(ClusterError::NotSynced {
                what: "Deployment web in namespace demo (watch cache)".into(),
                reason: "waiting for the watch of deployments to list".into(),
            }),
            ..TickOutcome::new(T0, Actuator::Apply, Why::Applying)
        };
        let s = of_tick(&p, &out, None, None, wall(T0));
        is(&s, Ready, False, "WaitingForSync");
    }

    #[test]
    fn a_pause_shows_in_its_condition_and_field() {
        let s = paused_status(&[("setpoint.dev/paused", "true")], 3);
        is(&s, Paused, True, "Paused");
        assert_eq!(s.paused, "true");
        let c = s.condition(Paused).unwrap();
        assert!(c.message.contains("setpoint.dev/paused"), "{}", c.message);
        is(&s, ScalingActive, True, "ValidMetricFound");

        // Switched off by hand, as `kubectl scale --replicas=0` does: the HPA's ScalingDisabled.
        let s = paused_status(&[], 0);
        is(&s, Paused, True, "ScalingDisabled");
        is(&s, ScalingActive, False, "ScalingDisabled");
        assert_eq!(s.paused, "scaled-to-zero");
    }

    #[test]
    fn a_steady_applied_policy_is_ready_and_within_range() {
        let p = policy("apply", "");
        let s = status_after(&p, Some(300.0), 3);
        is(&s, Ready, True, "Reconciled");
        is(&s, AbleToScale, True, "ReadyForNewScale");
        is(&s, ScalingActive, True, "ValidMetricFound");
        is(&s, ScalingLimited, False, "DesiredWithinRange");
        is(&s, Paused, False, "NotPaused");
        is(&s, Fallback, False, "AllMetricsAvailable");
        assert_eq!(s.conditions.len(), 6);
        assert_eq!(s.observed_generation, Some(4));
        assert!(
            s.conditions
                .iter()
                .all(|c| c.observed_generation == Some(4))
        );
        assert_eq!(
            (s.current_replicas, s.desired_replicas, s.ready_replicas),
            (Some(3), Some(3), Some(3))
        );
        assert_eq!(s.paused, "");
        let d = s.last_decision.unwrap();
        assert_eq!(d.summary, "hold at 3: rps 300 vs 100/replica → 3");
        assert_eq!(
            d.metrics,
            [MetricStatus {
                name: "rps".into(),
                value: Some(300.0),
                target: "100/replica".into(),
                proposal: Some(3),
                no_data: None,
            }]
        );
    }

    #[test]
    fn a_scaling_action_is_a_rescale_with_its_time() {
        let p = policy("apply", "");
        let mut state = State::conservative(3, T0 - 3600.0);
        let out = tick(&p, &mut state, Some(500.0), 3, T0);
        let s = of_tick(&p, &out, Some(&state), None, wall(T0));
        is(&s, AbleToScale, True, "SucceededRescale");
        assert_eq!((s.current_replicas, s.desired_replicas), (Some(3), Some(5)));
        assert_eq!(
            s.last_scale_time.as_deref(),
            Some(rfc3339(wall(T0)).as_str())
        );
    }

    #[test]
    fn recommend_mode_and_dry_run_say_desired_is_a_recommendation() {
        let p = policy("recommend", "");
        let s = status_after(&p, Some(500.0), 3);
        is(&s, AbleToScale, False, "RecommendOnly");
        is(&s, Ready, True, "Reconciled");
        assert_eq!((s.current_replicas, s.desired_replicas), (Some(3), Some(5)));
        assert_eq!(s.last_scale_time, None, "nothing was applied");
        let mut state = State::default();
        let mut out = tick(&p, &mut state, Some(500.0), 3, T0);
        out.why = Why::DryRun;
        let s = of_tick(&p, &out, Some(&state), None, wall(T0));
        is(&s, AbleToScale, False, "DryRun");
    }

    #[test]
    fn bounds_rate_limits_and_cooldowns_limit_scaling() {
        let p = policy("apply", "");
        let s = status_after(&p, Some(5000.0), 3);
        is(&s, ScalingLimited, True, "TooManyReplicas");
        assert!(
            s.condition(ScalingLimited)
                .unwrap()
                .message
                .ends_with("at 10")
        );
        let limited = "    scaleUp: {limits: [{pods: 1, per: 1m}]}\n";
        let s = status_after(&policy("apply", limited), Some(900.0), 3);
        is(&s, ScalingLimited, True, "ScaleUpLimit");
        // A cooldown after an action: AbleToScale False, as the HPA's backoff.
        let p = policy("apply", "    scaleUp: {cooldown: 5m}\n");
        let mut state = State::conservative(3, T0 - 3600.0);
        tick(&p, &mut state, Some(500.0), 3, T0);
        let out = tick(&p, &mut state, Some(800.0), 5, T0 + 15.0);
        let s = of_tick(&p, &out, Some(&state), None, wall(T0 + 15.0));
        is(&s, AbleToScale, False, "BackoffUpscale");
        is(&s, ScalingLimited, True, "ScaleUpCooldown");
        // The scale-down window: stabilized.
        let p = policy("apply", "    scaleDown: {stabilization: 5m}\n");
        let mut state = State::conservative(5, T0 - 60.0);
        let out = tick(&p, &mut state, Some(200.0), 5, T0);
        let s = of_tick(&p, &out, Some(&state), None, wall(T0));
        is(&s, AbleToScale, True, "ScaleDownStabilized");
        is(&s, ScalingLimited, True, "ScaleDownStabilized");
    }

    #[test]
    fn no_data_is_inactive_and_a_fallback() {
        let p = policy("apply", "");
        let s = status_after(&p, None, 3);
        is(&s, ScalingActive, False, "FailedGetPrometheusMetric");
        is(&s, Fallback, True, "MissingMetrics");
        let m = &s.last_decision.as_ref().unwrap().metrics[0];
        assert_eq!(
            (m.value, m.no_data.as_deref()),
            (None, Some("empty result"))
        );
        let p = policy(
            "apply",
            "    onMetricError: {fallback: {replicas: 6, after: 1}}\n",
        );
        let s = status_after(&p, None, 3);
        is(&s, Fallback, True, "FallbackReplicas");
        assert!(s.condition(Fallback).unwrap().message.contains("to 6"));
    }

    #[test]
    fn a_predictive_policy_without_a_forecast_is_reactive_only() {
        let p = policy("apply", "");
        let mut state = State::default();
        let mut out = tick(&p, &mut state, Some(300.0), 3, T0);
        let note = |fallback: Option<&str>, model: Option<&str>| ForecastNote {
            metric: "rps".into(),
            current: 300.123,
            expected: fallback.is_none().then_some(350.0),
            upper: fallback.is_none().then_some(420.456),
            quantile: 0.9,
            horizon_s: 240.0,
            season_s: None,
            fallback: fallback.map(str::to_string),
            model: model.map(str::to_string),
            calibrated: None,
        };
        let d = out.decision.as_mut().unwrap();
        d.explanation.forecasts = vec![note(Some("reactive only: 3 of 20 horizons seen"), None)];
        let s = of_tick(&p, &out, None, None, wall(T0));
        is(&s, Fallback, True, "ReactiveOnly");
        assert_eq!(s.forecast[0].model, None);
        let d = out.decision.as_mut().unwrap();
        d.explanation.forecasts = vec![note(None, Some("profile"))];
        let s = of_tick(&p, &out, None, None, wall(T0));
        is(&s, Fallback, False, "AllMetricsAvailable");
        let f = &s.forecast[0];
        assert_eq!(
            (
                f.current,
                f.expected,
                f.upper,
                f.quantile,
                f.model.as_deref()
            ),
            (300.0, Some(350.0), Some(420.0), 0.9, Some("profile"))
        );
    }

    #[test]
    fn a_failed_tick_is_not_ready_and_keeps_what_the_last_decision_said() {
        let p = policy("apply", "");
        let before = status_after(&p, Some(300.0), 3);
        let mut state = State::default();
        let mut out = tick(&p, &mut state, Some(300.0), 3, T0 + 15.0);
        out.decision = None;
        out.scale = None;
        out.error = Some(ClusterError::Api {
            what: "GET scale of Deployment web in namespace demo".into(),
            code: 404,
            reason: "NotFound".into(),
            message: "deployments.apps \"web\" not found".into(),
        });
        let s = of_tick(&p, &out, None, Some(&before), wall(T0 + 15.0));
        is(&s, Ready, False, "TickFailed");
        is(&s, AbleToScale, False, "FailedGetScale");
        assert!(s.condition(Ready).unwrap().message.contains("HTTP 404"));
        assert_eq!(
            s.condition(Ready).unwrap().last_transition_time,
            rfc3339(wall(T0 + 15.0))
        );
        for t in [ScalingActive, ScalingLimited, Fallback] {
            assert_eq!(s.condition(t), before.condition(t));
        }
        assert_eq!(s.desired_replicas, Some(3));
        assert_eq!(s.last_decision, before.last_decision);
        // The first tick fails: Unknown.
        let s = of_tick(&p, &out, None, None, wall(T0));
        is(&s, ScalingActive, ConditionStatus::Unknown, "NoDecision");
    }

    #[test]
    fn an_invalid_spec_is_not_ready_with_its_field_and_message() {
        let p = policy("apply", "");
        let before = status_after(&p, Some(300.0), 3);
        let problems = [Problem {
            line: 0,
            column: 0,
            field: "spec.horizontal.replicas.min".into(),
            message: "must be at most max (10), got 12".into(),
        }];
        let s = invalid(5, &problems, Some(&before), wall(T0 + 60.0));
        is(&s, Ready, False, "InvalidSpec");
        let c = s.condition(Ready).unwrap();
        assert_eq!(
            c.message,
            "the spec is invalid: spec.horizontal.replicas.min: must be at most max (10), got 12"
        );
        assert_eq!(
            (c.observed_generation, s.observed_generation),
            (Some(5), Some(5))
        );
        assert_eq!(c.last_transition_time, rfc3339(wall(T0 + 60.0)));
        // The rest is what the last valid version said.
        assert_eq!(s.condition(ScalingActive), before.condition(ScalingActive));
        assert_eq!(s.desired_replicas, Some(3));
        let fresh = invalid(1, &problems, None, wall(T0));
        assert_eq!(fresh.conditions.len(), 1);
    }

    #[test]
    fn the_vertical_recommendation_is_per_container_like_a_vpa() {
        let p = policy("apply", "");
        let mut state = State::default();
        let mut out = tick(&p, &mut state, Some(300.0), 3, T0);
        let row = |container: &str, resource, target, lower, upper| PlanRow {
            container: container.into(),
            resource,
            current_min: None,
            current_max: None,
            recommended: Some(Recommended {
                target,
                lower,
                upper,
            }),
            pods_to_change: 0,
            verdict: "within the bounds".into(),
            planned: None,
        };
        let mib = crate::engine::quantity::MIB;
        out.vertical = Some(VerticalOutcome {
            plan: VerticalPlan {
                action: VerticalAction::Nothing {
                    reason: "every request is within its bounds".into(),
                },
                rows: vec![
                    row("app", Resource::Cpu, 0.25, 0.2, 0.5),
                    row(
                        "app",
                        Resource::Memory,
                        512.0 * mib,
                        400.0 * mib,
                        1024.0 * mib,
                    ),
                ],
                notes: Vec::new(),
            },
            applied: Applied::Nothing,
        });
        let s = of_tick(&p, &out, None, None, wall(T0));
        let v = s.vertical.unwrap();
        let c = &v.container_recommendations[0];
        assert_eq!(c.container_name, "app");
        assert_eq!(
            (c.target.cpu.as_deref(), c.target.memory.as_deref()),
            (Some("250m"), Some("512Mi"))
        );
        assert_eq!(
            (
                c.lower_bound.cpu.as_deref(),
                c.upper_bound.memory.as_deref()
            ),
            (Some("200m"), Some("1Gi"))
        );
        assert!(
            s.last_decision
                .unwrap()
                .summary
                .contains("; vertical: nothing: every request")
        );
        // Vertical only, with a plan that reports what it will not do.
        out.decision = None;
        let v = out.vertical.as_mut().unwrap();
        v.plan.action = VerticalAction::Report {
            reason: "Guaranteed pod with limits: requestsOnly".into(),
        };
        let s = of_tick(&p, &out, None, None, wall(T0));
        is(&s, AbleToScale, False, "ResizeNotApplied");
        is(&s, ScalingActive, True, "ValidMetricFound");
        assert_eq!(s.desired_replicas, None);
    }

    #[test]
    fn the_last_decision_is_bounded_and_says_so() {
        let mut metrics = String::new();
        for i in 0..15 {
            metrics += &format!(
                "      - {{name: metric-with-a-long-name-{i:02}, prometheus: 'sum(rate(x{i}[1m]))', targetPerReplica: 100}}\n"
            );
        }
        let text = format!(
            "apiVersion: setpoint.dev/v1alpha1\nkind: ScalingPolicy\nmetadata: {{name: web}}\n\
             spec:\n  target: {{kind: Deployment, name: web}}\n  interval: 15s\n  horizontal:\n    \
             replicas: {{min: 1, max: 10}}\n    metrics:\n{metrics}"
        );
        let p = crate::policy::parse(&text, Path::new("web.yaml")).unwrap();
        let h = p.horizontal.as_ref().unwrap();
        let obs = Observation {
            current_replicas: 3,
            ready_replicas: 3,
            samples: (0..15)
                .map(|i| Sample::from_f64(250.0 + i as f64))
                .collect(),
        };
        let mut state = State::default();
        let mut out = tick(&policy("apply", ""), &mut state, Some(1.0), 3, T0);
        out.decision = Some(crate::engine::decide(
            h,
            &mut state,
            &obs,
            &Default::default(),
            T0,
        ));
        let d = of_tick(&p, &out, None, None, wall(T0))
            .last_decision
            .unwrap();
        assert_eq!((d.metrics.len(), d.omitted_metrics), (MAX_LISTED, 5));
        assert!(
            d.summary.len() <= MAX_SUMMARY && d.summary.ends_with('…'),
            "{}",
            d.summary
        );
    }

    /// Ticks `p` every 15 s for an hour from `t0`, the load at `load(k)` (the target follows
    /// what is applied), and counts the status writes [`due`] asks for.
    fn writes_in_an_hour(p: &Policy, load: impl Fn(usize) -> f64) -> usize {
        let mut state = State::conservative(3, T0 - 3600.0);
        let (mut current, mut computed, mut written) = (3, None::<PolicyStatus>, None);
        let mut writes = 0;
        for k in 0..240 {
            let t = T0 + 15.0 * k as f64;
            let out = tick(p, &mut state, Some(load(k)), current, t);
            if let Some(n) = &out.patched {
                current = n.spec_replicas;
            }
            let s = of_tick(p, &out, Some(&state), computed.as_ref(), wall(t));
            if due(written.as_ref().map(|(s, t)| (s, *t)), &s, wall(t)).is_some() {
                writes += 1;
                written = Some((s.clone(), wall(t)));
            }
            computed = Some(s);
        }
        writes
    }

    #[test]
    fn a_steady_load_writes_once_an_hour_and_a_jittering_one_a_handful_of_times() {
        let p = policy("apply", "    tolerance: 0.1\n");
        assert_eq!(writes_in_an_hour(&p, |_| 300.0), 1);
        // ±4 % around 300 (inside the tolerance): the values drift, the rest stays.
        let jitter = |k: usize| 300.0 * (1.0 + 0.04 * ((k * 7919 % 13) as f64 / 6.0 - 1.0));
        // The first write, then a refresh at 15, 30 and 45 minutes (the hour's last tick is at
        // 59:45).
        assert_eq!(writes_in_an_hour(&p, jitter), 4);
    }

    #[test]
    fn a_seeded_status_keeps_its_transition_times() {
        let p = policy("apply", "");
        let live = status_after(&p, Some(300.0), 3);
        let mut w = StatusWriter::default();
        w.seed(live.clone());
        let mut state = State::conservative(3, T0);
        let later = T0 + 3600.0;
        let out = tick(&p, &mut state, Some(300.0), 3, later);
        let s = of_tick(&p, &out, Some(&state), w.computed(), wall(later));
        assert_eq!(s.conditions, live.conditions, "same statuses, same times");
        let fresh = of_tick(&p, &out, Some(&state), None, wall(later));
        assert_ne!(fresh.conditions, live.conditions);
    }

    #[test]
    fn a_change_of_count_or_condition_is_written_at_once_and_times_alone_never() {
        let p = policy("apply", "");
        let a = status_after(&p, Some(300.0), 3);
        let now = wall(T0 + 15.0);
        assert_eq!(due(None, &a, now), Some(Due::First));
        assert_eq!(due(Some((&a, wall(T0))), &a, now), None);
        let mut later = a.clone();
        later.last_decision.as_mut().unwrap().time = rfc3339(now);
        assert_eq!(due(Some((&a, wall(T0))), &later, wall(T0 + 7200.0)), None);
        let b = status_after(&p, Some(500.0), 3);
        assert_eq!(due(Some((&a, wall(T0))), &b, now), Some(Due::Changed));
        let mut drift = a.clone();
        drift.last_decision.as_mut().unwrap().metrics[0].value = Some(301.0);
        assert_eq!(due(Some((&a, wall(T0))), &drift, now), None);
        let refresh = wall(T0) + REFRESH_EVERY;
        assert_eq!(
            due(Some((&a, wall(T0))), &drift, refresh),
            Some(Due::Refresh)
        );
    }
}
