//! What the planner is given: the policy's settings and the recommendation per container.

use crate::engine::Seconds;
use crate::engine::quantity::Resource;
use crate::engine::vertical::{Recommended, VerticalParams};
use serde::{Deserialize, Serialize};

/// How recommendations are applied.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum UpdateMode {
    /// Recommend only.
    #[default]
    Off,
    /// The pods/resize subresource, one pod at a time.
    InPlace,
    /// Patch the workload's pod template (a rolling update applies it).
    Rollout,
}

/// Whether limits follow requests.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum LimitsMode {
    /// Limits keep their ratio to requests.
    #[default]
    Proportional,
    /// Only requests change.
    RequestsOnly,
}

/// Fallback for a resize that cannot happen in place.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum ResizeFallback {
    /// Patch the pod template instead.
    Rollout,
    /// Only report it.
    #[default]
    Report,
}

/// What the planner needs of the policy's vertical part.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanSettings {
    /// Containers to right-size.
    pub containers: Vec<String>,
    /// Resources to right-size.
    pub resources: Vec<Resource>,
    /// The recommender's settings (min, max and the update rule come from here).
    pub params: VerticalParams,
    /// How recommendations are applied.
    pub update: UpdateMode,
    /// Whether limits follow requests.
    pub limits: LimitsMode,
    /// How long a resize may stay Deferred, seconds.
    pub deferred_timeout: Seconds,
    /// What to do when a resize cannot happen in place.
    pub fallback: ResizeFallback,
    /// Whether an in-place resize may restart a container (resizePolicy RestartContainer).
    pub allow_restart: bool,
}

/// The recommendation for one container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRecommendation {
    /// The container's name.
    pub container: String,
    /// For CPU (None: no data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Recommended>,
    /// For memory (None: no data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<Recommended>,
}

impl ContainerRecommendation {
    /// The recommendation of one resource.
    pub fn get(&self, r: Resource) -> Option<&Recommended> {
        match r {
            Resource::Cpu => self.cpu.as_ref(),
            Resource::Memory => self.memory.as_ref(),
        }
    }
}

pub(super) fn recommendation<'a>(
    recs: &'a [ContainerRecommendation],
    container: &str,
    r: Resource,
) -> Option<&'a Recommended> {
    recs.iter()
        .find(|c| c.container == container)
        .and_then(|c| c.get(r))
}
