//! The planner's answer and its rendering in words.

use crate::engine::pod::Amounts;
use crate::engine::quantity::{MIB, Resource};
use crate::engine::vertical::Recommended;
use serde::{Deserialize, Serialize};
use std::fmt;

/// New requests and limits for one container: only the resources that change are set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerChange {
    /// The container's name.
    pub container: String,
    /// New requests.
    pub requests: Amounts,
    /// New limits.
    pub limits: Amounts,
}

/// The planner's next step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum VerticalAction {
    /// Nothing to do.
    Nothing {
        /// Why.
        reason: String,
    },
    /// Resize one pod in place.
    Resize {
        /// The pod.
        pod: String,
        /// The new values.
        changes: Vec<ContainerChange>,
        /// Why, in words.
        reason: String,
    },
    /// Patch the workload's pod template.
    PatchTemplate {
        /// The new values.
        changes: Vec<ContainerChange>,
        /// Why, in words.
        reason: String,
    },
    /// Something a person has to look at; nothing is changed.
    Report {
        /// What.
        reason: String,
    },
}

impl VerticalAction {
    /// Whether the action writes to the cluster.
    pub fn writes(&self) -> bool {
        matches!(
            self,
            VerticalAction::Resize { .. } | VerticalAction::PatchTemplate { .. }
        )
    }
}

impl fmt::Display for VerticalAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerticalAction::Nothing { reason } => write!(f, "nothing: {reason}"),
            VerticalAction::Resize {
                pod,
                changes,
                reason,
            } => write!(
                f,
                "resize pod {pod} in place: {}; {reason}",
                describe(changes)
            ),
            VerticalAction::PatchTemplate { changes, reason } => {
                write!(f, "patch the pod template: {}; {reason}", describe(changes))
            }
            VerticalAction::Report { reason } => write!(f, "report: {reason}"),
        }
    }
}

/// The changes in words: `app cpu request 250m limit 500m, app memory request 512Mi`.
pub fn describe(changes: &[ContainerChange]) -> String {
    let mut parts = Vec::new();
    for c in changes {
        for r in [Resource::Cpu, Resource::Memory] {
            let (req, lim) = (c.requests.get(r), c.limits.get(r));
            if req.is_none() && lim.is_none() {
                continue;
            }
            let mut s = format!("{} {}", c.container, r.as_str());
            if let Some(v) = req {
                s += &format!(" request {}", show(r, v));
            }
            if let Some(v) = lim {
                s += &format!(" limit {}", show(r, v));
            }
            parts.push(s);
        }
    }
    parts.join(", ")
}

/// A quantity for messages, rounded for reading: `250m`, `2`, `0.5m`, `512Mi`, `2Gi`, `900Ki`.
pub fn show(r: Resource, v: f64) -> String {
    match r {
        Resource::Cpu => {
            let m = v * 1000.0;
            if m >= 1.0 || m == 0.0 {
                let m = m.round();
                if m % 1000.0 == 0.0 {
                    format!("{}", m / 1000.0)
                } else {
                    format!("{m}m")
                }
            } else {
                format!("{:.2}m", m)
            }
        }
        Resource::Memory => {
            let mi = v / MIB;
            if mi >= 1024.0 && (mi / 1024.0 - (mi / 1024.0).round()).abs() < 0.5 / 1024.0 {
                format!("{}Gi", (mi / 1024.0).round())
            } else if mi >= 1.0 || v == 0.0 {
                format!("{}Mi", mi.round())
            } else {
                format!("{}Ki", (v / 1024.0).round())
            }
        }
    }
}

/// One container and resource, for explanations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanRow {
    /// The container.
    pub container: String,
    /// The resource.
    pub resource: Resource,
    /// The lowest current request among the running pods (None: none has one).
    pub current_min: Option<f64>,
    /// The highest.
    pub current_max: Option<f64>,
    /// The recommendation (None: no usage data yet).
    pub recommended: Option<Recommended>,
    /// Pods whose request should change.
    pub pods_to_change: u32,
    /// In words: within the bounds, below or above them, off target for long, no data.
    pub verdict: String,
    /// The request the action sets, when it changes this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planned: Option<f64>,
}

/// What the planner decided, with the numbers behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerticalPlan {
    /// The next step.
    pub action: VerticalAction,
    /// One row per container and resource.
    pub rows: Vec<PlanRow>,
    /// Everything else worth saying (a clamp, a restart, a skipped container, ...).
    pub notes: Vec<String>,
}
