//! Which step: rollouts under way, update modes, one resize at a time, and the fallback.

use super::action::VerticalAction;
use super::changes::{changes_for, lowered_memory_limits, restarts};
use super::plan::{PodNeeds, ROLLOUT_GRACE, ago};
use super::settings::{
    ContainerRecommendation, PlanSettings, ResizeFallback, UpdateMode, recommendation,
};
use super::state::PlanState;
use crate::engine::Seconds;
use crate::engine::pod::{Pod, ResizeStatus};
use crate::engine::quantity::Resource;

#[allow(clippy::too_many_arguments)]
pub(super) fn decide(
    s: &PlanSettings,
    recs: &[ContainerRecommendation],
    pods: &[Pod],
    active: &[&Pod],
    needs: &[(&Pod, PodNeeds)],
    state: &PlanState,
    now: Seconds,
    notes: &mut Vec<String>,
) -> VerticalAction {
    let nothing = |reason: String| VerticalAction::Nothing { reason };
    if s.update == UpdateMode::Off {
        let mut reason = "update is off: recommendations only".to_string();
        if !needs.is_empty() {
            reason += &format!(
                " ({} pod(s) would change: {})",
                needs.len(),
                needs[0].1.why.join("; ")
            );
        }
        return nothing(reason);
    }
    if pods.is_empty() {
        return nothing("the target has no pods (at zero replicas): no usage, holding".into());
    }
    if recs.iter().all(|c| c.cpu.is_none() && c.memory.is_none()) {
        return nothing("no usage data yet".into());
    }
    if active.is_empty() {
        return nothing("no running pods".into());
    }
    let mut revisions: Vec<&str> = pods
        .iter()
        .filter(|p| !p.deleting)
        .filter_map(|p| p.revision.as_deref())
        .collect();
    revisions.sort_unstable();
    revisions.dedup();
    if revisions.len() > 1 {
        return nothing(format!(
            "a rollout is in progress: the pods belong to {} template revisions",
            revisions.len()
        ));
    }
    if let Some(t) = state.template_patched_at
        && now - t < ROLLOUT_GRACE
    {
        return nothing(format!(
            "the pod template was patched {:.0}s ago: waiting for its rollout",
            now - t
        ));
    }
    match s.update {
        UpdateMode::Off => unreachable!("handled above"),
        UpdateMode::Rollout => {
            if needs.is_empty() {
                return nothing("every request is within its bounds".into());
            }
            template(s, recs, active, needs, &[], notes, String::new())
        }
        UpdateMode::InPlace => in_place(s, recs, active, needs, state, now, notes),
    }
}

/// The template patch for the containers and resources any pod needs changed (plus `extra`),
/// with the limits of a reference pod.
fn template(
    s: &PlanSettings,
    recs: &[ContainerRecommendation],
    active: &[&Pod],
    needs: &[(&Pod, PodNeeds)],
    extra: &[(String, Resource)],
    notes: &mut Vec<String>,
    prefix: String,
) -> VerticalAction {
    let mut wanted: Vec<(String, Resource)> = extra.to_vec();
    let mut why = Vec::new();
    for (_, n) in needs {
        for w in &n.wanted {
            if !wanted.contains(w) {
                wanted.push(w.clone());
            }
        }
        for y in &n.why {
            if !why.contains(y) {
                why.push(y.clone());
            }
        }
    }
    // The reference: a pod without a resize under way, else the first.
    let Some(reference) = active
        .iter()
        .find(|p| p.resize == ResizeStatus::None)
        .or(active.first())
    else {
        return VerticalAction::Nothing {
            reason: "no running pods".into(),
        };
    };
    let changes = changes_for(s, recs, reference, &wanted, true, notes);
    let mut reason = prefix;
    if !why.is_empty() {
        if !reason.is_empty() {
            reason += "; ";
        }
        reason += &format!("{} pod(s): {}", needs.len(), why.join("; "));
    }
    if changes.is_empty() {
        return VerticalAction::Report {
            reason: format!(
                "{reason}; the limits and QoS rules leave nothing to change in the template \
                 (see the notes)"
            ),
        };
    }
    VerticalAction::PatchTemplate { changes, reason }
}

fn in_place(
    s: &PlanSettings,
    recs: &[ContainerRecommendation],
    active: &[&Pod],
    needs: &[(&Pod, PodNeeds)],
    state: &PlanState,
    now: Seconds,
    notes: &mut Vec<String>,
) -> VerticalAction {
    // Resizes that cannot happen in place, and those in flight.
    let mut stuck: Option<(&Pod, String)> = None;
    let mut in_flight: Option<(&Pod, String)> = None;
    for p in active {
        match &p.resize {
            ResizeStatus::Infeasible { .. } => {
                stuck.get_or_insert((p, format!("pod {}: resize {}", p.name, p.resize)));
            }
            ResizeStatus::Deferred { since, .. }
                if since.is_some_and(|t| now - t >= s.deferred_timeout) =>
            {
                stuck.get_or_insert((
                    p,
                    format!(
                        "pod {}: resize {} {} (resize.deferredTimeout is {})",
                        p.name,
                        p.resize,
                        ago(now, *since),
                        humantime::format_duration(std::time::Duration::from_secs(
                            s.deferred_timeout as u64
                        ))
                    ),
                ));
            }
            ResizeStatus::Deferred { since, .. } | ResizeStatus::InProgress { since, .. } => {
                in_flight.get_or_insert((
                    p,
                    format!("pod {}: resize {} {}", p.name, p.resize, ago(now, *since)),
                ));
            }
            ResizeStatus::None => {
                if p.containers.iter().any(|c| c.differs_from_actual()) {
                    in_flight.get_or_insert((
                        p,
                        format!(
                            "pod {}: its spec resources differ from the status' actual ones \
                             (the kubelet has not applied the resize yet)",
                            p.name
                        ),
                    ));
                }
            }
        }
    }
    if let Some((p, why)) = stuck {
        // The stuck pod's own changes (its spec already holds them, its status does not) go
        // into the template too; all of its resources when the status does not say.
        let extra: Vec<(String, Resource)> = s
            .containers
            .iter()
            .filter_map(|c| p.container(c))
            .flat_map(|c| s.resources.iter().map(move |r| (c, *r)))
            .filter(|(c, r)| recommendation(recs, &c.name, *r).is_some())
            .filter(|(c, r)| c.differs_from_actual_in(*r) != Some(false))
            .map(|(c, r)| (c.name.clone(), r))
            .collect();
        return fallback(s, recs, active, needs, &extra, notes, why);
    }
    if let Some((_, why)) = in_flight {
        return VerticalAction::Nothing {
            reason: format!("one resize at a time: {why}"),
        };
    }
    let Some((pod, n)) = needs.iter().max_by(|(a, x), (b, y)| {
        x.distance
            .partial_cmp(&y.distance)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| b.name.cmp(&a.name))
    }) else {
        return VerticalAction::Nothing {
            reason: "every request is within its bounds".into(),
        };
    };
    let changes = changes_for(s, recs, pod, &n.wanted, false, notes);
    let mut reason = n.why.join("; ");
    if needs.len() > 1 {
        reason += &format!(
            " ({} pods need a change; this one is furthest outside its bounds)",
            needs.len()
        );
    }
    if changes.is_empty() {
        return VerticalAction::Report {
            reason: format!(
                "pod {}: {reason}; the limits and QoS rules leave nothing to change (see the notes)",
                pod.name
            ),
        };
    }
    if let Some(refusal) = &state.memory_limit_decrease_refused {
        let lowered = lowered_memory_limits(pod, &changes);
        if !lowered.is_empty() {
            return fallback(
                s,
                recs,
                active,
                needs,
                &[],
                notes,
                format!(
                    "pod {}: the resize lowers the memory limit of {}, which the API server \
                     refuses in place (it refused {refusal})",
                    pod.name,
                    lowered.join(", ")
                ),
            );
        }
    }
    let restarting = restarts(pod, &changes);
    if !restarting.is_empty() {
        if !s.allow_restart {
            return fallback(
                s,
                recs,
                active,
                needs,
                &[],
                notes,
                format!(
                    "pod {}: resizing would restart {} (resizePolicy RestartContainer) and \
                     resize.allowRestart is false",
                    pod.name,
                    restarting.join(", ")
                ),
            );
        }
        notes.push(format!(
            "the resize restarts {} of pod {} (resizePolicy RestartContainer)",
            restarting.join(", "),
            pod.name
        ));
    }
    VerticalAction::Resize {
        pod: pod.name.clone(),
        changes,
        reason,
    }
}

fn fallback(
    s: &PlanSettings,
    recs: &[ContainerRecommendation],
    active: &[&Pod],
    needs: &[(&Pod, PodNeeds)],
    extra: &[(String, Resource)],
    notes: &mut Vec<String>,
    why: String,
) -> VerticalAction {
    match s.fallback {
        ResizeFallback::Rollout => template(
            s,
            recs,
            active,
            needs,
            extra,
            notes,
            format!("{why}: falling back to a rollout (resize.fallback is rollout)"),
        ),
        ResizeFallback::Report => VerticalAction::Report {
            reason: format!("{why}; resize.fallback is report: nothing patched"),
        },
    }
}
