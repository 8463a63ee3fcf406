//! The ScalingPolicy file as written (serde model). Unknown fields are errors; the values that
//! validation checks are [`Spanned`] so that an error can point at them.

use schemars::JsonSchema;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyFile {
    /// Must be `setpoint.dev/v1alpha1`.
    pub api_version: Spanned<String>,
    /// Must be `ScalingPolicy`.
    pub kind: Spanned<String>,
    /// Name and labels.
    pub metadata: Metadata,
    /// What to scale and how.
    pub spec: Spanned<Spec>,
}

/// Object metadata, as on any Kubernetes object.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    /// The policy's name: unique within the folder.
    pub name: Spanned<String>,
    /// Namespace (informational: the daemon serves its own namespace).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Free-form labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Free-form annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// The policy's spec.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Spec {
    /// The scale target.
    #[schemars(with = "TargetRef")]
    pub target: Spanned<TargetRef>,
    /// apply (default) or recommend.
    #[serde(default)]
    pub mode: Mode,
    /// How often the policy ticks (default 15s).
    #[serde(default)]
    #[schemars(with = "Option<Dur>")]
    pub interval: Option<Spanned<Dur>>,
    /// The Prometheus server this policy's `prometheus` metrics query (default: the one given to
    /// the daemon or the command with `--prometheus`).
    #[serde(default)]
    #[schemars(with = "Option<crate::prometheus::PrometheusConfig>")]
    pub prometheus: Option<Spanned<crate::prometheus::PrometheusConfig>>,
    /// Horizontal scaling.
    #[serde(default)]
    pub horizontal: Option<Horizontal>,
    /// Vertical scaling (container requests).
    #[serde(default)]
    #[schemars(with = "Option<Vertical>")]
    pub vertical: Option<Spanned<Vertical>>,
}

/// The vertical part: right-size container requests.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Vertical {
    /// Defaults for the fields left out (default `vpa`: the VPA recommender's defaults).
    #[serde(default)]
    pub preset: VerticalPreset,
    /// Containers to right-size.
    #[schemars(with = "Vec<String>")]
    pub containers: Spanned<Vec<String>>,
    /// Resources to right-size (default both).
    #[serde(default)]
    #[schemars(with = "Option<Vec<Resource>>")]
    pub resources: Option<Spanned<Vec<Resource>>>,
    /// Percentile of CPU usage for the target.
    #[serde(default)]
    #[schemars(with = "Option<f64>")]
    pub cpu_percentile: Option<Spanned<f64>>,
    /// Percentile of memory peaks for the target.
    #[serde(default)]
    #[schemars(with = "Option<f64>")]
    pub memory_percentile: Option<Spanned<f64>>,
    /// Percentiles of the lower and upper bounds.
    #[serde(default)]
    #[schemars(with = "Option<Bounds>")]
    pub bounds: Option<Spanned<Bounds>>,
    /// Safety margin added to every percentile.
    #[serde(default)]
    #[schemars(with = "Option<f64>")]
    pub margin: Option<Spanned<f64>>,
    /// Half-life of usage samples.
    #[serde(default)]
    #[schemars(with = "Option<Dur>")]
    pub half_life: Option<Spanned<Dur>>,
    /// Memory peaks are taken per window of this length.
    #[serde(default)]
    #[schemars(with = "Option<Dur>")]
    pub memory_peak_window: Option<Spanned<Dur>>,
    /// Smallest requests.
    #[serde(default)]
    #[schemars(with = "Option<Quantities>")]
    pub min: Option<Spanned<Quantities>>,
    /// Largest requests.
    #[serde(default)]
    #[schemars(with = "Option<Quantities>")]
    pub max: Option<Spanned<Quantities>>,
    /// How recommendations are applied (default off).
    #[serde(default)]
    pub update: UpdateMode,
    /// Whether limits follow requests (default proportional).
    #[serde(default)]
    pub limits: LimitsMode,
    /// Change a request inside the bounds only when it is this far from the target for this long.
    #[serde(default)]
    #[schemars(with = "Option<MinChange>")]
    pub min_change: Option<Spanned<MinChange>>,
    /// In-place resize settings.
    #[serde(default)]
    #[schemars(with = "Option<Resize>")]
    pub resize: Option<Spanned<Resize>>,
    /// PromQL for each container's usage (default: cAdvisor's metrics; see [`Usage`]).
    #[serde(default)]
    #[schemars(with = "Option<Usage>")]
    pub usage: Option<Spanned<Usage>>,
}

/// The PromQL giving one container's usage, with the placeholders `$namespace`, `$pod` and
/// `$container` (replaced by the values, escaped for a PromQL string, before each query; write
/// them inside quotes: `container="$container"`). Each must give one series: CPU in cores,
/// memory in bytes.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Usage {
    /// CPU usage in cores.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub cpu: Option<Spanned<String>>,
    /// Memory working set in bytes.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub memory: Option<Spanned<String>>,
}

/// Defaults of the vertical part.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum VerticalPreset {
    /// The VPA recommender's and updater's defaults.
    #[default]
    Vpa,
}

/// Bound percentiles.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Bounds {
    /// Lower bound percentile.
    pub lower: f64,
    /// Upper bound percentile.
    pub upper: f64,
}

/// Quantities per resource.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Quantities {
    /// CPU ("100m", "2").
    #[serde(default)]
    pub cpu: Option<Quantity>,
    /// Memory ("128Mi", "8Gi").
    #[serde(default)]
    pub memory: Option<Quantity>,
}

/// A Kubernetes quantity written as a string ("100m", "512Mi") or a plain number.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantity(pub String);

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Quantity;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a quantity such as \"500m\", \"2\" or \"512Mi\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Quantity, E> {
                crate::engine::quantity::parse(s).map_err(E::custom)?;
                Ok(Quantity(s.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Quantity, E> {
                Ok(Quantity(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Quantity, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Quantity, E> {
                self.visit_str(&v.to_string())
            }
        }
        d.deserialize_any(V)
    }
}

impl Quantity {
    /// The value (cores or bytes); validated when parsed.
    pub fn value(&self) -> f64 {
        crate::engine::quantity::parse(&self.0).unwrap_or(0.0)
    }
}

use crate::engine::quantity::Resource;
pub use crate::engine::vertical_plan::{LimitsMode, UpdateMode};

/// When a request inside the bounds still changes.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MinChange {
    /// Relative difference from the target (0.1 = 10 %).
    pub difference: f64,
    /// For at least this long.
    pub after: Dur,
}

/// In-place resize settings.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Resize {
    /// How long a resize may stay Deferred before the fallback.
    #[serde(default)]
    pub deferred_timeout: Option<Dur>,
    /// What to do when a resize is Infeasible or Deferred too long.
    #[serde(default)]
    pub fallback: ResizeFallback,
    /// Whether an in-place resize may restart a container whose resizePolicy says
    /// RestartContainer (default true); when false, such a resize takes the fallback.
    #[serde(default)]
    pub allow_restart: Option<bool>,
}

pub use crate::engine::vertical_plan::ResizeFallback;

/// Reference to the workload to scale.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TargetRef {
    /// apiVersion of the target (default `apps/v1`).
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// Kind: Deployment, StatefulSet, ReplicaSet or any kind with a scale subresource.
    pub kind: String,
    /// Name of the object.
    pub name: String,
}

fn default_api_version() -> String {
    "apps/v1".into()
}

/// Whether the policy acts or only recommends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Mode {
    /// Patch the target.
    #[default]
    Apply,
    /// Only publish what would be done.
    Recommend,
}

/// Which defaults fill the fields a policy leaves out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Preset {
    /// The Kubernetes HPA v2 defaults.
    #[default]
    Hpa,
    /// Nothing: no tolerance, no stabilization, no rate limits.
    None,
}

/// The horizontal part.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Horizontal {
    /// Defaults for the fields left out (default `hpa`).
    #[serde(default)]
    pub preset: Preset,
    /// Bounds.
    #[schemars(with = "Replicas")]
    pub replicas: Spanned<Replicas>,
    /// Metrics and their targets.
    #[schemars(with = "Vec<Metric>")]
    pub metrics: Spanned<Vec<Spanned<Metric>>>,
    /// The scaling policy (default threshold).
    #[serde(default)]
    pub policy: Option<PolicyKind>,
    /// Tolerance band: a number for both directions, or `{up, down}`.
    #[serde(default)]
    #[schemars(with = "Option<Tolerance>")]
    pub tolerance: Option<Spanned<Tolerance>>,
    /// Scale-up rules.
    #[serde(default)]
    pub scale_up: Option<Rules>,
    /// Scale-down rules.
    #[serde(default)]
    pub scale_down: Option<Rules>,
    /// What to do when metrics give no data.
    #[serde(default)]
    #[schemars(with = "Option<OnMetricError>")]
    pub on_metric_error: Option<Spanned<OnMetricError>>,
    /// With `replicas.min: 0`: how long every metric must be at or below its activation
    /// threshold before the target goes from 1 to 0 (default 5m).
    #[serde(default)]
    #[schemars(with = "Option<Dur>")]
    pub idle: Option<Spanned<Dur>>,
    /// Scheduled capacity: windows with a floor or a fixed count.
    #[serde(default)]
    #[schemars(with = "Option<Vec<ScheduleModel>>")]
    pub schedules: Option<Spanned<Vec<Spanned<ScheduleModel>>>>,
}

/// Replica bounds.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Replicas {
    /// Lowest count: at least 1, or 0 to scale to zero (every metric a Prometheus total).
    pub min: u32,
    /// Highest count.
    pub max: u32,
}

/// One metric: exactly one source (`prometheus`, `resource` or `pods`) and one target.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metric {
    /// Name for explanations (default `metric-N`).
    #[serde(default)]
    pub name: Option<String>,
    /// PromQL expression giving one value.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub prometheus: Option<Spanned<String>>,
    /// With `prometheus`: add up the series of a vector result instead of refusing several.
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub sum: Option<Spanned<bool>>,
    /// CPU or memory of the target's pods from the metrics.k8s.io API.
    #[serde(default)]
    #[schemars(with = "Option<ResourceMetric>")]
    pub resource: Option<Spanned<ResourceMetric>>,
    /// A metric scraped from the `/metrics` endpoint of each of the target's pods.
    #[serde(default)]
    #[schemars(with = "Option<PodsMetric>")]
    pub pods: Option<Spanned<PodsMetric>>,
    /// The value is a total; each replica should carry this much.
    #[serde(default)]
    pub target_per_replica: Option<f64>,
    /// The value is a per-replica utilization ratio; hold it at this value.
    #[serde(default)]
    pub utilization: Option<f64>,
    /// With `replicas.min: 0`: at zero, a value strictly above this threshold wakes the target.
    #[serde(default)]
    #[schemars(with = "Option<ActivationModel>")]
    pub activation: Option<Spanned<ActivationModel>>,
}

/// `resource: {name: cpu, container: app}`: usage from metrics.k8s.io, as a ratio of the pods'
/// requests (with `utilization`) or per pod in cores or bytes (with `targetPerReplica`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResourceMetric {
    /// `cpu` or `memory`.
    pub name: Resource,
    /// Only this container of each pod (default: all containers).
    #[serde(default)]
    pub container: Option<String>,
}

/// `pods: {metric: http_requests_total, port: 8080, path: /metrics}`: one metric family scraped
/// from every pod of the target.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodsMetric {
    /// The metric's name in the exposition text (all its series are added up per pod, or those
    /// matching `labels`).
    pub metric: String,
    /// The port the pods serve metrics on.
    pub port: u16,
    /// The path (default `/metrics`).
    #[serde(default)]
    pub path: Option<String>,
    /// Only series with these label values.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `counter` (turned into a per-second rate) or `gauge` (taken as it is). Default: from the
    /// exposition's `# TYPE` line, and a counter for untyped names ending in `_total`, `_count`
    /// or `_sum`.
    #[serde(default)]
    pub kind: Option<PodsMetricKind>,
}

/// How a scraped metric is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PodsMetricKind {
    /// A counter: the rate between two scrapes.
    Counter,
    /// A gauge: the value as it is.
    Gauge,
}

/// The scaling policy kind.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum PolicyKind {
    /// Size so that each metric sits at its target.
    Threshold(ThresholdParams),
    /// Hold each metric at its target with a PID controller.
    Pid(#[schemars(with = "PidModel")] Box<Spanned<PidModel>>),
    /// The threshold proposal, raised to a quantile of the forecast load.
    Predictive(#[schemars(with = "PredictiveModel")] Box<Spanned<PredictiveModel>>),
}

/// Predictive settings: `{history: 7d, season: auto, quantile: 0.9, startup: 60s, margin: 30s}`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PredictiveModel {
    /// History kept and fitted (default 7d).
    #[serde(default)]
    #[schemars(with = "Option<Dur>")]
    pub history: Option<Spanned<Dur>>,
    /// Season length, or `auto` to detect it (default auto).
    #[serde(default)]
    #[schemars(with = "Option<Season>")]
    pub season: Option<Spanned<Season>>,
    /// Quantile of the forecast to size for (default 0.9).
    #[serde(default)]
    #[schemars(with = "Option<f64>")]
    pub quantile: Option<Spanned<f64>>,
    /// Replica start-up time (default 60s).
    #[serde(default)]
    #[schemars(with = "Option<Dur>")]
    pub startup: Option<Spanned<Dur>>,
    /// Extra horizon beyond start-up and one interval (default 30s).
    #[serde(default)]
    #[schemars(with = "Option<Dur>")]
    pub margin: Option<Spanned<Dur>>,
    /// The forecast proposal holds each metric at this multiple of its target (default 1).
    #[serde(default)]
    #[schemars(with = "Option<f64>")]
    pub target_scale: Option<Spanned<f64>>,
    /// Quantile sizing: the load one replica serves at saturation, in the metrics' unit (1 for
    /// utilization metrics). Setting it sizes for `quantile` of the largest load over the
    /// horizon instead of forecasting with Holt-Winters.
    #[serde(default)]
    #[schemars(with = "Option<f64>")]
    pub capacity_per_replica: Option<Spanned<f64>>,
    /// Quantile sizing: EWMA weight of each new sample in the centre (default 1, the last one).
    #[serde(default)]
    #[schemars(with = "Option<f64>")]
    pub smoothing: Option<Spanned<f64>>,
    /// Quantile sizing: how far the quantile in force moves after each horizon, up after a miss
    /// and down after a hit, so that misses come at 1 - quantile of the time (default 0.005; 0
    /// keeps the quantile fixed).
    #[serde(default)]
    #[schemars(with = "Option<f64>")]
    pub calibration: Option<Spanned<f64>>,
}

/// A season: `auto` or a duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Season {
    /// Detect it from the history.
    Auto,
    /// This long.
    Fixed(Duration),
}

impl<'de> Deserialize<'de> for Season {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim() == "auto" {
            return Ok(Season::Auto);
        }
        let dur: Result<Dur, D::Error> =
            Dur::deserialize(de::value::StrDeserializer::<D::Error>::new(&s));
        dur.map(|d| Season::Fixed(d.0))
            .map_err(|e| de::Error::custom(format!("{e} (or \"auto\" to detect the season)")))
    }
}

/// PID gains: `{kp: 0.5, ki: 0.02, kd: 5, derivativeFilter: 30s}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PidModel {
    /// Proportional gain, per unit of relative error (default 0).
    #[serde(default)]
    pub kp: f64,
    /// Integral gain, per unit of relative error per second.
    pub ki: f64,
    /// Derivative gain in seconds (default 0).
    #[serde(default)]
    pub kd: f64,
    /// Time constant of the derivative's low-pass filter (default 30s).
    #[serde(default)]
    #[schemars(with = "Option<Dur>")]
    pub derivative_filter: Option<Spanned<Dur>>,
}

/// The threshold policy has no parameters of its own yet.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThresholdParams {}

/// Tolerance band.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// Band above the target.
    pub up: f64,
    /// Band below the target.
    pub down: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToleranceBands {
    up: f64,
    down: f64,
}

impl<'de> Deserialize<'de> for Tolerance {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Tolerance;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number such as 0.1, or a map {up: 0.1, down: 0.2}")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Tolerance, E> {
                Ok(Tolerance { up: v, down: v })
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Tolerance, E> {
                self.visit_f64(v as f64)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Tolerance, E> {
                self.visit_f64(v as f64)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Tolerance, A::Error> {
                let b = ToleranceBands::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Tolerance {
                    up: b.up,
                    down: b.down,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// How several limits combine.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SelectModel {
    /// The limit allowing the largest change.
    Max,
    /// The limit allowing the smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// The rules of one direction.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rules {
    /// Stabilization window.
    #[serde(default)]
    #[schemars(with = "Option<Dur>")]
    pub stabilization: Option<Spanned<Dur>>,
    /// Cooldown after the last scaling action.
    #[serde(default)]
    #[schemars(with = "Option<Dur>")]
    pub cooldown: Option<Spanned<Dur>>,
    /// How the limits combine (default max).
    #[serde(default)]
    pub select: Option<SelectModel>,
    /// Rate limits. An empty list means unlimited.
    #[serde(default)]
    #[schemars(with = "Option<Vec<Limit>>")]
    pub limits: Option<Vec<Spanned<Limit>>>,
    /// Scale-down only: raise the stabilization window and `tolerance.down` while the actions
    /// exceed a share of a shadow HPA's.
    #[serde(default)]
    #[schemars(with = "Option<Adaptive>")]
    pub adaptive: Option<Spanned<Adaptive>>,
}

/// `scaleDown.adaptive`: `{actionsVsHpa: 0.95}`.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Adaptive {
    /// Share of a shadow HPA's scaling actions the policy may make (0 < share <= 1).
    pub actions_vs_hpa: f64,
}

/// One rate limit: `{pods: 4, per: 15s}` or `{percent: 100, per: 15s}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// At most this many pods per period.
    #[serde(default)]
    pub pods: Option<u32>,
    /// At most this percent of the count at the period's start.
    #[serde(default)]
    pub percent: Option<f64>,
    /// The period.
    pub per: Dur,
}

/// What to do when no metric gives data.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum OnMetricError {
    /// Keep the current count.
    Hold,
    /// After `after` failed ticks, go up to `replicas` (never down).
    Fallback {
        /// Replicas.
        replicas: u32,
        /// Failed ticks first (default 3).
        #[serde(default = "default_after")]
        after: u32,
    },
}

fn default_after() -> u32 {
    3
}

// The schemas of the values that are one of two shapes. A structural schema (a CRD's) gives
// every node one type, so these take any value there and validation says what is wrong.

/// Any value: the one structural schema for a field of two shapes.
fn any_value(description: &str) -> schemars::Schema {
    schemars::json_schema!({
        "description": description,
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

impl JsonSchema for OnMetricError {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "OnMetricError".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        any_value("`hold`, or `{fallback: {replicas: N, after: ticks}}`")
    }
}

impl JsonSchema for Tolerance {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Tolerance".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        any_value("a number for both directions, such as 0.1, or `{up: 0.1, down: 0.2}`")
    }
}

impl JsonSchema for Quantity {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Quantity".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"x-kubernetes-int-or-string": true})
    }
}

impl JsonSchema for Season {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Season".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "description": "`auto`, or a duration"})
    }
}

pub use crate::text::Dur;

/// `activation: {threshold: 5}`: at zero replicas, the metric wakes the target when its value is
/// strictly above the threshold (default 0).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivationModel {
    /// The threshold.
    #[schemars(with = "f64")]
    pub threshold: Spanned<f64>,
}

/// One schedule: `{name: office, cron: "0 8 * * 1-5", duration: 10h, timezone: Europe/Berlin,
/// min: 10}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleModel {
    /// Name for explanations and Events.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// When windows open: a 5-field cron expression on the zone's wall clock.
    #[schemars(with = "String")]
    pub cron: Spanned<String>,
    /// How long each window stays open.
    #[schemars(with = "Dur")]
    pub duration: Spanned<Dur>,
    /// The IANA zone the expression is read in.
    #[schemars(with = "String")]
    pub timezone: Spanned<String>,
    /// A floor while the window is open.
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub min: Option<Spanned<u32>>,
    /// A fixed count while the window is open.
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub replicas: Option<Spanned<u32>>,
}
