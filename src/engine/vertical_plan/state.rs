//! What the planner remembers between ticks.

use crate::engine::Seconds;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// An in-place resize the API server refused because it lowered a memory limit (Kubernetes
/// 1.33 refuses that for a container whose memory resizePolicy is `NotRequired`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResizeRefusal {
    /// The pod.
    pub pod: String,
    /// The containers whose memory limit the server would not lower.
    pub containers: Vec<String>,
    /// The server's message.
    pub message: String,
    /// When, Unix seconds.
    pub at: Seconds,
}

impl fmt::Display for ResizeRefusal {
    /// `pod web-a container app: Pod "web-a" is invalid: ...`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = if self.containers.len() == 1 { "" } else { "s" };
        write!(
            f,
            "pod {} container{s} {}: {}",
            self.pod,
            self.containers.join(", "),
            self.message
        )
    }
}

/// What the planner remembers between ticks. Serializable, so that a driver can keep it across
/// restarts; losing it restarts the `minChange.after` clocks and forgets a refused memory-limit
/// decrease (the next one is tried in place once more).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanState {
    /// Since when a request (key `pod/container/resource`) has differed from its target by more
    /// than `minChange.difference`.
    pub differs_since: BTreeMap<String, Seconds>,
    /// When the pod template was last patched.
    pub template_patched_at: Option<Seconds>,
    /// The last in-place resize the API server refused because it lowered a memory limit: from
    /// then on, a resize that lowers a memory limit (of a container whose memory resizePolicy is
    /// `NotRequired`) takes the fallback without trying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit_decrease_refused: Option<ResizeRefusal>,
}

impl PlanState {
    /// Records a successful template patch at `now`.
    pub fn template_patched(&mut self, now: Seconds) {
        self.template_patched_at = Some(now);
    }

    /// Records that the API server refused an in-place resize because it lowered a memory
    /// limit.
    pub fn resize_refused(&mut self, refusal: ResizeRefusal) {
        self.memory_limit_decrease_refused = Some(refusal);
    }
}
