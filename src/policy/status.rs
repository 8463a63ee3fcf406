//! The status of a ScalingPolicy object, as its `/status` subresource holds it and the Kubernetes
//! API conventions shape it: `observedGeneration`, `conditions` (a list keyed by `type`, each
//! with `status`, a one-word CamelCase `reason`, a `message`, `lastTransitionTime` and
//! `observedGeneration`), the replica counts, the last decision, and the forecast and the
//! vertical recommendation where the policy has them.
//!
//! [`PolicyStatus`] is the serde form (camelCase, absent fields left out) with a schemars
//! [`JsonSchema`], so that the CRD's `status` schema is generated from the same type. What goes
//! into it is decided in [`crate::daemon`]'s status module; this module holds the shape, its size
//! bounds ([`MAX_LISTED`], [`MAX_SUMMARY`], [`MAX_MESSAGE`]) and the condition bookkeeping
//! ([`PolicyStatus::set_condition`] keeps `lastTransitionTime` while a condition's status stays).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::SystemTime;

/// Longest list the status carries (metrics of the last decision, forecasts, containers); the
/// rest is counted in an `omitted…` field.
pub const MAX_LISTED: usize = 10;
/// Longest `lastDecision.summary`, in bytes; a longer line is cut and ends with `…`.
pub const MAX_SUMMARY: usize = 512;
/// Longest condition `message`, in bytes; a longer one is cut and ends with `…`.
pub const MAX_MESSAGE: usize = 1024;

/// `status` of a ScalingPolicy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {
    /// The `metadata.generation` of the spec this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `AbleToScale`, `ScalingActive`, `ScalingLimited`, `Paused`, `Fallback`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The target's `spec.replicas` as the last tick read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_replicas: Option<u32>,
    /// Replicas the last decision asked for: what was applied, or, in recommend mode and under
    /// `--dry-run`, the recommendation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_replicas: Option<u32>,
    /// The target's ready pods at the last tick.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<u32>,
    /// When setpoint last changed the target's replica count (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<String>,
    /// The last decision: its one-line explanation and the numbers of each metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_decision: Option<LastDecision>,
    /// The predictive policy's forecast, per metric (empty for other policies).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forecast: Vec<ForecastStatus>,
    /// The vertical recommendation, per container (None without a vertical part).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vertical: Option<VerticalStatus>,
    /// The pause in force (`true`, `replicas=3`, `scale-up`, `scale-down`); empty when not
    /// paused.
    #[serde(default)]
    pub paused: String,
}

/// A condition's type.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum ConditionType {
    /// The policy runs: its last tick worked (False: it failed, or the spec is invalid).
    Ready,
    /// The target's scale can be read and written (False: it cannot, a cooldown holds it, or
    /// the policy only recommends).
    AbleToScale,
    /// The metrics give a replica count (False: none gave data).
    ScalingActive,
    /// The desired count was held back by a bound or a governor rule.
    ScalingLimited,
    /// A pause annotation holds the policy.
    Paused,
    /// The policy decides on less than its full input: a metric without data (and the
    /// missing-data rule acting), or a predictive policy proposing reactively only.
    Fallback,
}

impl ConditionType {
    /// Every type, in the order the status lists them.
    pub const ALL: [ConditionType; 6] = [
        ConditionType::Ready,
        ConditionType::AbleToScale,
        ConditionType::ScalingActive,
        ConditionType::ScalingLimited,
        ConditionType::Paused,
        ConditionType::Fallback,
    ];
}

impl fmt::Display for ConditionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A condition's status, as the API conventions spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    /// `"True"`.
    True,
    /// `"False"`.
    False,
    /// `"Unknown"`.
    Unknown,
}

/// One condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The condition's type.
    #[serde(rename = "type")]
    pub type_: ConditionType,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// One word, CamelCase: why the condition is in this status.
    pub reason: String,
    /// What a person needs to know, in words.
    pub message: String,
    /// When the status last changed (RFC 3339): not when the reason or message did.
    pub last_transition_time: String,
    /// The `metadata.generation` this condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// What a condition says, before it has a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The condition's type.
    pub type_: ConditionType,
    /// Its status.
    pub status: ConditionStatus,
    /// One CamelCase word.
    pub reason: &'static str,
    /// In words (cut to [`MAX_MESSAGE`]).
    pub message: String,
}

impl Verdict {
    /// A verdict.
    pub fn new(
        type_: ConditionType,
        status: ConditionStatus,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Verdict {
        Verdict {
            type_,
            status,
            reason,
            message: message.into(),
        }
    }
}

/// The last decision, bounded in size.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastDecision {
    /// When it was made (RFC 3339).
    pub time: String,
    /// The one-line explanation (at most [`MAX_SUMMARY`] bytes, then cut with `…`).
    pub summary: String,
    /// Each metric of the decision (at most [`MAX_LISTED`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricStatus>,
    /// Metrics of the decision left out of `metrics`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted_metrics: u32,
}

/// One metric of the last decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricStatus {
    /// The metric's name.
    pub name: String,
    /// The value observed (three significant digits); None without data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// What the value is held to, in words (`0.6 per replica`, `60% utilization`).
    pub target: String,
    /// Replicas this metric proposed, before the governor; None without data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposal: Option<u32>,
    /// Why there was no data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_data: Option<String>,
}

/// The predictive policy's forecast of one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForecastStatus {
    /// The metric.
    pub metric: String,
    /// The load now (three significant digits).
    pub current: f64,
    /// Highest expected load over the horizon (the quantile model's centre with quantile
    /// sizing); None while the policy is reactive only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<f64>,
    /// Highest load at `quantile` over the horizon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper: Option<f64>,
    /// The quantile sized for (0.9: p90).
    pub quantile: f64,
    /// The horizon, seconds.
    pub horizon_seconds: f64,
    /// The season found, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub season_seconds: Option<f64>,
    /// Which model gave the quantile (quantile sizing), or `holt-winters`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Why the policy proposes reactively only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
}

/// The vertical recommendation, as a VerticalPodAutoscaler's status carries it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerticalStatus {
    /// One entry per container with usage data (at most [`MAX_LISTED`]).
    #[serde(default)]
    pub container_recommendations: Vec<ContainerStatus>,
    /// Containers left out of `containerRecommendations`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted_containers: u32,
}

/// One container's recommendation: quantities as Kubernetes writes them (`250m`, `512Mi`),
/// rounded for reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    /// The container's name.
    pub container_name: String,
    /// The requests to set.
    pub target: Resources,
    /// Below this a request is too small and is changed.
    pub lower_bound: Resources,
    /// Above this a request is too large and is changed.
    pub upper_bound: Resources,
}

/// CPU and memory quantities.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    /// CPU (`250m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Memory (`512Mi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl PolicyStatus {
    /// The condition of `type_`, if set.
    pub fn condition(&self, type_: ConditionType) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// Sets a condition from `verdict` at `now`, for `generation`: its `lastTransitionTime` is
    /// the one in `previous` while the status stays the same, else `now`. The list stays in
    /// [`ConditionType::ALL`]'s order.
    pub fn set_condition(
        &mut self,
        verdict: Verdict,
        previous: Option<&PolicyStatus>,
        generation: Option<i64>,
        now: SystemTime,
    ) {
        let kept = previous
            .and_then(|p| p.condition(verdict.type_))
            .filter(|c| c.status == verdict.status)
            .map(|c| c.last_transition_time.clone());
        let condition = Condition {
            type_: verdict.type_,
            status: verdict.status,
            reason: verdict.reason.to_string(),
            message: cut(&verdict.message, MAX_MESSAGE),
            last_transition_time: kept.unwrap_or_else(|| rfc3339(now)),
            observed_generation: generation,
        };
        self.conditions.retain(|c| c.type_ != verdict.type_);
        self.conditions.push(condition);
        self.conditions.sort_by_key(|c| c.type_);
    }
}

/// A time as the API writes a `metav1.Time`: RFC 3339, UTC, whole seconds.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `text` cut to at most `limit` bytes (on a character boundary), ending with `…` when cut.
pub fn cut(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let mark = "…";
    let mut end = limit.saturating_sub(mark.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{mark}", &text[..end])
}

/// `v` to three significant digits, so that a value that only jitters writes the same number.
pub fn round3(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let scale = 10f64.powi(2 - v.abs().log10().floor() as i32);
    (v * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_780_000_000 + s)
    }

    fn ready(status: ConditionStatus, reason: &'static str) -> Verdict {
        Verdict::new(ConditionType::Ready, status, reason, "m")
    }

    #[test]
    fn the_transition_time_changes_only_with_the_status() {
        let mut first = PolicyStatus::default();
        first.set_condition(
            ready(ConditionStatus::True, "Reconciled"),
            None,
            Some(1),
            at(0),
        );
        let t0 = first.conditions[0].last_transition_time.clone();
        assert_eq!(t0, rfc3339(at(0)));
        // Same status, another reason: the time stays.
        let mut second = PolicyStatus::default();
        let v = Verdict::new(ConditionType::Ready, ConditionStatus::True, "Other", "n");
        second.set_condition(v, Some(&first), Some(2), at(60));
        let c = second.condition(ConditionType::Ready).unwrap();
        assert_eq!(
            (c.last_transition_time.as_str(), c.reason.as_str()),
            (t0.as_str(), "Other")
        );
        assert_eq!(c.observed_generation, Some(2));
        // Another status: now.
        let mut third = PolicyStatus::default();
        third.set_condition(
            ready(ConditionStatus::False, "TickFailed"),
            Some(&second),
            None,
            at(120),
        );
        let c = third.condition(ConditionType::Ready).unwrap();
        assert_eq!(c.last_transition_time, rfc3339(at(120)));
    }

    #[test]
    fn conditions_keep_one_per_type_in_a_fixed_order() {
        let mut s = PolicyStatus::default();
        for t in ConditionType::ALL.iter().rev() {
            s.set_condition(
                Verdict::new(*t, ConditionStatus::False, "R", ""),
                None,
                None,
                at(0),
            );
        }
        s.set_condition(
            ready(ConditionStatus::True, "Reconciled"),
            None,
            None,
            at(0),
        );
        let types: Vec<ConditionType> = s.conditions.iter().map(|c| c.type_).collect();
        assert_eq!(types, ConditionType::ALL);
    }

    #[test]
    fn the_serde_form_is_camel_case_without_absent_fields() {
        let mut s = PolicyStatus {
            observed_generation: Some(3),
            desired_replicas: Some(4),
            ..PolicyStatus::default()
        };
        s.set_condition(
            ready(ConditionStatus::True, "Reconciled"),
            None,
            Some(3),
            at(0),
        );
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"observedGeneration": 3, "desiredReplicas": 4, "paused": "",
                "conditions": [{"type": "Ready", "status": "True", "reason": "Reconciled",
                    "message": "m", "lastTransitionTime": rfc3339(at(0)),
                    "observedGeneration": 3}]})
        );
        let back: PolicyStatus = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn the_schema_keys_conditions_by_type() {
        let schema = serde_json::to_value(schemars::schema_for!(PolicyStatus)).unwrap();
        let conditions = &schema["properties"]["conditions"];
        assert_eq!(conditions["x-kubernetes-list-type"], "map");
        assert_eq!(
            conditions["x-kubernetes-list-map-keys"],
            serde_json::json!(["type"])
        );
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary_and_says_so() {
        assert_eq!(cut("short", 10), "short");
        let long = "é".repeat(400);
        let c = cut(&long, MAX_SUMMARY);
        assert!(c.len() <= MAX_SUMMARY && c.ends_with('…'), "{}", c.len());
    }

    #[test]
    fn values_keep_three_significant_digits() {
        assert_eq!(round3(0.51234), 0.512);
        assert_eq!(round3(1234.5), 1230.0);
        assert_eq!(round3(-2.345_6), -2.35);
        assert_eq!(round3(0.0), 0.0);
    }
}
