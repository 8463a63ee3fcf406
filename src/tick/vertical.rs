//! The vertical part's act step for one tick: [`apply_vertical`] runs the planner
//! ([`crate::engine::vertical_plan::plan`]) on the pods as read and the recommendations, then
//! does what it says: resize one pod in place, or patch the pod template, or nothing.
//!
//! It writes only when its caller lets it (no `hold`: see [`super::act::Why::hold`], which also
//! covers `mode: recommend`) and the plan writes (its `update` is not `off`); otherwise the plan
//! is returned with [`Applied::NotApplied`]. A template patch that
//! succeeded is remembered in the [`PlanState`], so that the next ticks wait for its rollout.
//!
//! An in-place resize that the API server refuses because it lowers a memory limit (Kubernetes
//! 1.33; see [`crate::cluster::resize::memory_limit_decrease_refused`]) is treated like an Infeasible
//! one: the refusal goes into the [`PlanState`] and the planner is asked again, which now
//! takes the policy's fallback (a template patch, written in the same tick, or a report). The
//! state keeps the refusal, so later memory-limit decreases go to the fallback without trying.
//! Every other refusal is [`Applied::Failed`].
//!
//! The daemon calls it once per tick of a policy with a vertical part, after reading the
//! target's pods and feeding their usage to the recommenders
//! ([`super::usage::VerticalTick`] does all of it).

use crate::cluster::resize::memory_limit_decrease_refused;
use crate::cluster::{Cluster, ClusterError};
use crate::engine::Seconds;
use crate::engine::pod::{ContainerResources, Pod, ResizeStatus};
use crate::engine::vertical_plan::{
    self, ContainerChange, ContainerRecommendation, PlanSettings, PlanState, ResizeRefusal,
    VerticalAction, VerticalPlan,
};
use crate::policy::Policy;
use serde::Serialize;
use std::fmt;

/// What was written.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Applied {
    /// Nothing to write: the plan does nothing or only reports.
    Nothing,
    /// The plan writes, but the policy only recommends.
    NotApplied {
        /// Why not.
        reason: String,
    },
    /// The pod was resized in place.
    Resized {
        /// The pod.
        pod: String,
        /// Its resize status in the API server's answer.
        resize: ResizeStatus,
    },
    /// The pod template was patched.
    TemplatePatched {
        /// The template's containers after the patch.
        containers: Vec<ContainerResources>,
    },
    /// The API server refused, or could not be reached.
    Failed {
        /// The error, naming the object and the status.
        error: String,
    },
}

/// The plan and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerticalOutcome {
    /// The planner's decision and the numbers behind it.
    pub plan: VerticalPlan,
    /// What was written.
    pub applied: Applied,
}

impl fmt::Display for VerticalOutcome {
    /// One line: the action, then what became of it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.plan.action)?;
        match &self.applied {
            Applied::Nothing => Ok(()),
            Applied::NotApplied { reason } => write!(f, " (not applied: {reason})"),
            Applied::Resized { resize, .. } => write!(f, " (done; resize {resize})"),
            Applied::TemplatePatched { .. } => write!(f, " (done)"),
            Applied::Failed { error } => write!(f, " (failed: {error})"),
        }
    }
}

/// Plans and applies the vertical part of `policy` for one tick, at `now` (Unix seconds).
/// `pods` are the target's pods as read this tick, `recommendations` the recommenders' output
/// per container. Never more than one change per tick (after an in-place resize refused for
/// lowering a memory limit, which changed nothing, the fallback's template patch); none when
/// `hold` gives a reason (the policy's mode is recommend, dry-run, a standby replica, a
/// read-only look).
pub async fn apply_vertical<C: Cluster>(
    cluster: &C,
    policy: &Policy,
    state: &mut PlanState,
    pods: &[Pod],
    recommendations: &[ContainerRecommendation],
    now: Seconds,
    hold: Option<&str>,
) -> VerticalOutcome {
    let Some(v) = &policy.vertical else {
        return VerticalOutcome {
            plan: VerticalPlan {
                action: VerticalAction::Nothing {
                    reason: "the policy has no vertical part".into(),
                },
                rows: Vec::new(),
                notes: Vec::new(),
            },
            applied: Applied::Nothing,
        };
    };
    let plan = vertical_plan::plan(&v.plan, recommendations, pods, state, now);
    if let (true, Some(reason)) = (plan.action.writes(), hold) {
        return VerticalOutcome {
            plan,
            applied: Applied::NotApplied {
                reason: reason.into(),
            },
        };
    }
    let applied = match &plan.action {
        VerticalAction::Nothing { .. } | VerticalAction::Report { .. } => Applied::Nothing,
        VerticalAction::Resize { pod, changes, .. } => {
            match cluster.resize_pod(pod, changes).await {
                Ok(p) => Applied::Resized {
                    pod: pod.clone(),
                    resize: p.resize,
                },
                Err(e) => match memory_limit_decrease_refused(&e) {
                    Some((containers, message)) => {
                        let refusal = ResizeRefusal {
                            pod: pod.clone(),
                            containers: container_names(pods, pod, &containers),
                            message: message.to_string(),
                            at: now,
                        };
                        return after_refusal(
                            cluster,
                            policy,
                            &v.plan,
                            state,
                            pods,
                            recommendations,
                            now,
                            refusal,
                            &e,
                        )
                        .await;
                    }
                    None => Applied::Failed {
                        error: e.to_string(),
                    },
                },
            }
        }
        VerticalAction::PatchTemplate { changes, .. } => {
            patch_template(cluster, policy, state, changes, now).await
        }
    };
    VerticalOutcome { plan, applied }
}

/// The template patch of a plan; a success is remembered in `state`.
async fn patch_template<C: Cluster>(
    cluster: &C,
    policy: &Policy,
    state: &mut PlanState,
    changes: &[ContainerChange],
    now: Seconds,
) -> Applied {
    match cluster.patch_template(&policy.target, changes).await {
        Ok(containers) => {
            state.template_patched(now);
            Applied::TemplatePatched { containers }
        }
        Err(e) => Applied::Failed {
            error: e.to_string(),
        },
    }
}

/// The names of the containers at `indexes` of `pod`'s `spec.containers` (`#i` for one the pod
/// as read does not have).
fn container_names(pods: &[Pod], pod: &str, indexes: &[usize]) -> Vec<String> {
    let containers = pods
        .iter()
        .find(|p| p.name == pod)
        .map_or(&[][..], |p| &p.containers[..]);
    indexes
        .iter()
        .map(|&i| {
            containers
                .get(i)
                .map_or_else(|| format!("#{i}"), |c| c.name.clone())
        })
        .collect()
}

/// After an in-place resize refused for lowering a memory limit: the refusal into `state`, the
/// planner once more (it now takes the policy's fallback), and its template patch if it makes
/// one. Never a second in-place resize in the same tick.
#[allow(clippy::too_many_arguments)]
async fn after_refusal<C: Cluster>(
    cluster: &C,
    policy: &Policy,
    settings: &PlanSettings,
    state: &mut PlanState,
    pods: &[Pod],
    recommendations: &[ContainerRecommendation],
    now: Seconds,
    refusal: ResizeRefusal,
    error: &ClusterError,
) -> VerticalOutcome {
    let note = format!(
        "the API server refused to lower a memory limit of pod {} in place (Kubernetes 1.33 \
         does unless the container's memory resizePolicy is RestartContainer): from now on, \
         resizes that lower such a limit take resize.fallback without trying",
        refusal.pod
    );
    state.resize_refused(refusal);
    let mut plan = vertical_plan::plan(settings, recommendations, pods, state, now);
    plan.notes.insert(0, note);
    let applied = match &plan.action {
        VerticalAction::Nothing { .. } | VerticalAction::Report { .. } => Applied::Nothing,
        VerticalAction::PatchTemplate { changes, .. } => {
            patch_template(cluster, policy, state, changes, now).await
        }
        VerticalAction::Resize { .. } => Applied::Failed {
            error: error.to_string(),
        },
    };
    VerticalOutcome { plan, applied }
}
