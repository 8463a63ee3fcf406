//! The pure decision core: observe → **decide → govern** → act.
//!
//! Nothing in this module reads a clock, touches the network or uses a global: every function is a
//! function of (configuration, state, observation, now). The daemon, `simulate` and `backtest` all
//! call [`tick`], so a result shown by the simulator is a result of the daemon's own code.
//!
//! - [`Observation`]: what was seen this tick (replicas and one [`Sample`] per metric).
//! - [`vertical`]: the container right-sizing recommender; [`vertical_plan`]: from its
//!   recommendations and the pods as they are, the one next step (resize a pod, patch the
//!   template, or nothing, and why).
//! - [`pod`]: the pod model the HPA's pod rules and the planner read; [`quantity`]: Kubernetes
//!   quantities (the API server's grammar) and [`quantity::Resource`], CPU or memory.
//! - [`threshold`], [`pid`], [`predictive`]: the policies turn an observation into a [`Recommendation`].
//! - [`governor`]: bounds, tolerance, stabilization, cooldowns and rate limits turn the
//!   recommendation into a [`Decision`] that carries its [`Explanation`]; [`schedule`] adds
//!   scheduled capacity, [`activation`] scale to and from zero, [`pause`] the pause
//!   annotations and the HPA's rule for a target switched off at zero, and [`budget`] the
//!   action budget (`scaleDown.adaptive`) that holds the actions to a share of a shadow HPA's.

pub mod activation;
pub mod budget;
pub mod governor;
pub mod hpa;
pub mod pause;
pub mod pid;
pub mod pod;
pub mod predictive;
pub mod quantity;
pub mod schedule;
pub mod threshold;
pub mod vertical;
pub mod vertical_plan;

use serde::{Deserialize, Serialize};
use std::fmt;

pub use governor::{
    Direction, Governor, GovernorState, Rule, RuleStep, ScalingRules, Select, StepLimit,
};
pub use threshold::{MetricTarget, Target};

/// Seconds on the driver's clock: Unix time in the daemon, seconds from the trace start in the
/// simulator. Passed in, never read.
pub type Seconds = f64;

/// One metric reading. A failed, empty, NaN or infinite reading is [`Sample::NoData`], never zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Sample {
    /// A finite value.
    Value {
        /// The value.
        value: f64,
    },
    /// No usable value, and why.
    NoData {
        /// What went wrong (an error message, "empty result", "NaN", ...).
        reason: String,
    },
}

impl Sample {
    /// A sample from a raw number: NaN and infinities become [`Sample::NoData`].
    pub fn from_f64(value: f64) -> Sample {
        if value.is_finite() {
            Sample::Value { value }
        } else {
            Sample::NoData {
                reason: format!("value is {value}"),
            }
        }
    }

    /// A "no data" sample with a reason.
    pub fn no_data(reason: impl Into<String>) -> Sample {
        Sample::NoData {
            reason: reason.into(),
        }
    }

    /// The value, when there is one.
    pub fn value(&self) -> Option<f64> {
        match self {
            Sample::Value { value } => Some(*value),
            Sample::NoData { .. } => None,
        }
    }
}

/// What one tick of one policy saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Observation {
    /// The target's desired (spec) replicas.
    pub current_replicas: u32,
    /// Pods that are ready and serving.
    pub ready_replicas: u32,
    /// One sample per metric of the policy, in the policy's order.
    pub samples: Vec<Sample>,
}

/// One metric's proposal, before the governor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Proposal {
    /// The metric's name.
    pub metric: String,
    /// The value observed.
    pub value: f64,
    /// What the value is held to.
    pub target: Target,
    /// Observed value over its target at the current replica count: 1.0 is on target. The
    /// governor's tolerance band applies to this ratio.
    pub ratio: f64,
    /// Replicas this metric asks for, before any bound or rule.
    pub replicas: u32,
}

/// A metric that gave no data this tick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Missing {
    /// The metric's name.
    pub metric: String,
    /// Why there was no data.
    pub reason: String,
}

/// What a policy proposes from one observation: one proposal per metric that had data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    /// Proposals of the metrics that had data.
    pub proposals: Vec<Proposal>,
    /// Metrics that had none.
    pub missing: Vec<Missing>,
    /// What the predictive policy forecast, per metric with data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forecasts: Vec<predictive::ForecastNote>,
    /// What the HPA's formula proposes at the metrics' targets (the threshold policy's largest
    /// proposal; None from the PID policy or with no data): what the action budget's shadow HPA
    /// ([`budget`]) follows.
    #[serde(skip)]
    pub reference: Option<u32>,
}

/// The governed outcome of one tick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// Replicas before the decision.
    pub current_replicas: u32,
    /// Replicas the target should have: always within [min, max].
    pub desired_replicas: u32,
    /// Why.
    pub explanation: Explanation,
}

impl Decision {
    /// Direction of the change this decision makes.
    pub fn direction(&self) -> Option<Direction> {
        Direction::of(self.current_replicas, self.desired_replicas)
    }
}

/// The numbers behind a decision: every input, each proposal and every rule that moved the result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// Ready replicas seen.
    pub ready_replicas: u32,
    /// The policy's proposals, one per metric with data.
    pub proposals: Vec<Proposal>,
    /// Metrics without data.
    pub missing: Vec<Missing>,
    /// The predictive policy's forecasts (empty for other policies).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forecasts: Vec<predictive::ForecastNote>,
    /// The largest proposal, after the tolerance band (None when no metric had data).
    pub proposed_replicas: Option<u32>,
    /// Each rule of the governor that changed the number, in the order applied.
    pub steps: Vec<RuleStep>,
    /// Scale to zero: whether the target runs, which metrics keep it awake, the idle clock
    /// (None unless the policy has `min: 0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<activation::Activity>,
    /// The schedule window open at the decision, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<schedule::Window>,
    /// The pause this decision is under, and the annotation that asked for it (None: not
    /// paused). What kubectl's `Paused` condition and column show.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<pause::PauseNote>,
    /// The pause that ended at this decision (the annotation was removed, or the target was
    /// scaled up by hand from zero).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed: Option<pause::Pause>,
}

impl Explanation {
    /// The last rule that changed the result, if any.
    pub fn limited_by(&self) -> Option<Rule> {
        self.steps.last().map(|s| s.rule)
    }
}

impl fmt::Display for Decision {
    /// One line: the change, the metrics behind it, and the rules that limited it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.explanation;
        match self.direction() {
            Some(d) => write!(
                f,
                "scale {d} {}→{}",
                self.current_replicas, self.desired_replicas
            )?,
            None => write!(f, "hold at {}", self.current_replicas)?,
        }
        let mut sep = ": ";
        for p in &e.proposals {
            write!(
                f,
                "{sep}{} {} vs {} → {}",
                p.metric,
                fmt_num(p.value),
                p.target,
                p.replicas
            )?;
            sep = ", ";
        }
        for m in &e.missing {
            write!(f, "{sep}{} no data ({})", m.metric, m.reason)?;
            sep = ", ";
        }
        for n in &e.forecasts {
            match (&n.fallback, n.expected, n.upper) {
                (Some(why), _, _) => write!(f, "; forecast {}: {why}", n.metric)?,
                (None, Some(c), Some(up)) if n.model.is_some() => write!(
                    f,
                    "; forecast {} over {}s: now {}, centre {}, p{} {} ({}{})",
                    n.metric,
                    n.horizon_s,
                    fmt_num(n.current),
                    fmt_num(c),
                    predictive::fmt_quantile(n.quantile),
                    fmt_num(up),
                    n.model.as_deref().unwrap_or_default(),
                    n.calibrated
                        .map(|q| format!(", calibrated to p{}", predictive::fmt_quantile(q)))
                        .unwrap_or_default()
                )?,
                (None, Some(exp), Some(up)) => write!(
                    f,
                    "; forecast {} over {}s: now {}, expected {}, p{} {}",
                    n.metric,
                    n.horizon_s,
                    fmt_num(n.current),
                    fmt_num(exp),
                    (n.quantile * 100.0).round(),
                    fmt_num(up)
                )?,
                _ => {}
            }
        }
        for s in &e.steps {
            write!(f, "; {}", s.detail)?;
        }
        match &e.pause {
            // A one-direction pause that blocked nothing has no step: say it is there.
            Some(p) if !e.steps.iter().any(|s| s.rule == Rule::Pause) => write!(f, "; {p}")?,
            _ => {}
        }
        if let Some(p) = &e.resumed {
            write!(f, "; resumed: no longer {p}")?;
        }
        Ok(())
    }
}

/// Formats a metric value compactly: three significant decimals at most.
pub fn fmt_num(v: f64) -> String {
    if v.abs() >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// Which policy turns observations into proposals.
#[derive(Debug, Clone, PartialEq)]
pub enum Algorithm {
    /// [`threshold`]: size so that each metric sits at its target.
    Threshold,
    /// [`pid`]: a PID controller per metric.
    Pid(pid::PidParams),
    /// [`predictive`]: the threshold proposal, raised to a quantile of the forecast load.
    Predictive(predictive::PredictiveParams),
}

/// A horizontal policy: what to measure, which policy proposes, and how to govern it.
#[derive(Debug, Clone, PartialEq)]
pub struct Horizontal {
    /// The metrics and their targets.
    pub metrics: Vec<MetricTarget>,
    /// The policy.
    pub algorithm: Algorithm,
    /// Bounds, tolerance, stabilization, cooldowns, rate limits and the missing-data rule.
    pub governor: Governor,
}

/// Everything a horizontal policy remembers between ticks. Serializable so that the daemon can
/// keep it on the target across restarts (all but the predictive history, which the daemon
/// re-reads from Prometheus).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// The governor's memory.
    pub governor: GovernorState,
    /// The PID controllers, one per metric (empty for other policies).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pid: Vec<Option<pid::PidState>>,
    /// The predictive policy's histories.
    #[serde(skip)]
    pub predictive: predictive::PredictiveState,
}

impl State {
    /// State for a policy seen for the first time (or after a restart with nothing kept): the
    /// current replica count counts as a recommendation made now, so no scale-down happens before
    /// a full scale-down stabilization window has passed (as the HPA does).
    pub fn conservative(current_replicas: u32, now: Seconds) -> State {
        State {
            governor: GovernorState::conservative(current_replicas, now),
            ..State::default()
        }
    }
}

/// One tick where what is decided is done (the simulator, backtests, benchmarks): [`decide`]
/// with no pause annotation, then commit the action to the governor's memory. The daemon's
/// tick commits only what it applied ([`crate::tick::run`]).
pub fn tick(policy: &Horizontal, state: &mut State, obs: &Observation, now: Seconds) -> Decision {
    let decision = decide(policy, state, obs, &pause::Controls::default(), now);
    state.governor.commit(&decision, now);
    decision
}

/// Decide with the policy, then govern under the pause `controls`. The decided action is not
/// yet in the governor's memory: [`GovernorState::commit`] puts it there once it was applied.
pub fn decide(
    policy: &Horizontal,
    state: &mut State,
    obs: &Observation,
    controls: &pause::Controls,
    now: Seconds,
) -> Decision {
    let rec = match &policy.algorithm {
        Algorithm::Threshold => threshold::recommend(&policy.metrics, obs),
        Algorithm::Pid(p) => pid::recommend(p, &policy.metrics, &mut state.pid, obs, now),
        Algorithm::Predictive(p) => {
            predictive::recommend(p, &policy.metrics, &mut state.predictive, obs, now)
        }
    };
    policy
        .governor
        .govern(&mut state.governor, obs, rec, controls, now)
}
