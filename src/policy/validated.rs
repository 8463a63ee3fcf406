//! The validated policy: what the engine and the drivers use.

use super::{Mode, PodsMetricKind, TargetRef};
use crate::engine::quantity::Resource;
use crate::engine::vertical_plan::PlanSettings;
use crate::engine::{Horizontal, MetricTarget, Seconds};
use crate::prometheus::PrometheusConfig;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// Where a metric's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricQuery {
    /// A PromQL expression, evaluated by the policy's Prometheus (or the default one).
    Prometheus {
        /// The expression.
        query: String,
        /// Add up the series of a vector result instead of refusing several.
        sum: bool,
    },
    /// CPU or memory usage of the target's pods from the metrics.k8s.io API.
    Resource {
        /// Which resource.
        resource: Resource,
        /// Only this container (None: all of each pod's containers).
        container: Option<String>,
    },
    /// A metric scraped from each pod's metrics endpoint.
    Pods(PodsQuery),
}

/// A metric scraped from the `/metrics` endpoint of every pod of the target.
#[derive(Debug, Clone, PartialEq)]
pub struct PodsQuery {
    /// Metric name in the exposition text.
    pub metric: String,
    /// Port.
    pub port: u16,
    /// Path, starting with `/`.
    pub path: String,
    /// Only series with these label values.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Counter or gauge (None: from the exposition).
    pub kind: Option<PodsMetricKind>,
}

impl MetricQuery {
    /// The PromQL expression, for a Prometheus metric.
    pub fn promql(&self) -> Option<&str> {
        match self {
            MetricQuery::Prometheus { query, .. } => Some(query),
            _ => None,
        }
    }

    /// Whether the metric is read from the target's pods (metrics.k8s.io or scraping).
    pub fn reads_pods(&self) -> bool {
        !matches!(self, MetricQuery::Prometheus { .. })
    }
}

impl fmt::Display for MetricQuery {
    /// A short description of the source, for messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricQuery::Prometheus { query, sum } => {
                let one_line = query.split_whitespace().collect::<Vec<_>>().join(" ");
                write!(f, "prometheus `{one_line}`")?;
                if *sum {
                    f.write_str(" (summed)")?;
                }
                Ok(())
            }
            MetricQuery::Resource {
                resource,
                container,
            } => {
                write!(f, "metrics.k8s.io {resource}")?;
                if let Some(c) = container {
                    write!(f, " of container {c}")?;
                }
                Ok(())
            }
            MetricQuery::Pods(q) => write!(f, "pods' {} on :{}{}", q.metric, q.port, q.path),
        }
    }
}

/// A validated policy, ready for the engine and the drivers.
#[derive(Debug, Clone)]
pub struct Policy {
    /// metadata.name.
    pub name: String,
    /// metadata.namespace: the target's namespace, when the file says.
    pub namespace: Option<String>,
    /// The file it came from (for a ScalingPolicy object, the name errors show it under).
    pub source: PathBuf,
    /// The ScalingPolicy object it came from (None: a policy file).
    pub object: Option<ObjectRef>,
    /// `metadata.annotations` as written (the pause controls are read from them).
    pub annotations: BTreeMap<String, String>,
    /// The scale target.
    pub target: TargetRef,
    /// apply or recommend.
    pub mode: Mode,
    /// Seconds between ticks.
    pub interval: Seconds,
    /// `spec.prometheus`: the server this policy's Prometheus metrics query (None: the default
    /// given to the daemon or the command).
    pub prometheus: Option<PrometheusConfig>,
    /// One query per metric, in the order of `horizontal.metrics`.
    pub queries: Vec<MetricQuery>,
    /// The horizontal part (None for a vertical-only policy).
    pub horizontal: Option<Horizontal>,
    /// The vertical part.
    pub vertical: Option<VerticalSpec>,
}

impl Policy {
    /// The horizontal part's metrics (none for a vertical-only policy), in the order of `queries`.
    pub fn metrics(&self) -> &[MetricTarget] {
        self.horizontal.as_ref().map_or(&[], |h| &h.metrics)
    }
}

/// The ScalingPolicy object a policy came from: what its status is written for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.generation`: the spec version the status's `observedGeneration` reports.
    pub generation: i64,
}

/// A validated vertical part.
#[derive(Debug, Clone, PartialEq)]
pub struct VerticalSpec {
    /// What the recommender and the planner need: containers, resources, the recommender's
    /// settings, the update mode, limits, and the in-place resize rules.
    pub plan: PlanSettings,
    /// `spec.vertical.usage`: the PromQL of each container's usage (None: the defaults of
    /// [`crate::tick::usage`]).
    pub usage: UsageQueries,
}

/// `spec.vertical.usage`: PromQL templates with the placeholders `$namespace`, `$pod` and
/// `$container`. None: the default query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageQueries {
    /// CPU usage in cores.
    pub cpu: Option<String>,
    /// Memory working set in bytes.
    pub memory: Option<String>,
}

/// The placeholders a usage query may hold.
pub const USAGE_PLACEHOLDERS: [&str; 3] = ["namespace", "pod", "container"];

/// The placeholders (`$name`) in a usage query, in order.
pub fn placeholders(query: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = query;
    while let Some(i) = rest.find('$') {
        let after = &rest[i + 1..];
        let n = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        out.push(&after[..n]);
        rest = &after[n..];
    }
    out
}
