//! When and which: the `minChange.after` clocks, what each pod needs, and [`plan`].

use super::action::{ContainerChange, PlanRow, VerticalAction, VerticalPlan, show};
use super::settings::{ContainerRecommendation, PlanSettings, recommendation};
use super::state::PlanState;
use super::step::decide;
use crate::engine::Seconds;
use crate::engine::pod::{ContainerResources, Pod};
use crate::engine::quantity::{MIB, Resource};
use crate::engine::vertical::{Recommended, should_update};
use std::collections::BTreeMap;

/// After a template patch, nothing more is done for this long: the workload controller needs a
/// moment to start the rollout (after that, the pods' template revisions show it).
pub const ROLLOUT_GRACE: Seconds = 60.0;

fn key(pod: &str, container: &str, r: Resource) -> String {
    format!("{pod}/{container}/{}", r.as_str())
}

/// How far a request is from what it should be.
#[derive(Debug, Clone, Copy, Default, PartialEq, PartialOrd)]
pub(super) struct Distance {
    /// Relative distance outside [lower, upper] (0 inside).
    outside: f64,
    /// Relative distance from the target.
    off_target: f64,
}

fn distance(current: f64, rec: &Recommended) -> Distance {
    let outside = if current < rec.lower {
        (rec.lower - current) / rec.lower.max(f64::MIN_POSITIVE)
    } else if current > rec.upper {
        (current - rec.upper) / rec.upper.max(f64::MIN_POSITIVE)
    } else {
        0.0
    };
    Distance {
        outside,
        off_target: (current - rec.target).abs() / rec.target.max(f64::MIN_POSITIVE),
    }
}

/// Why a request should change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Need {
    /// The container was OOM-killed lately and its memory request is below the target.
    Oom,
    /// Below the lower bound.
    Below,
    /// Above the upper bound.
    Above,
    /// Off the target for `minChange.after`.
    Stale,
}

/// The containers and resources of one pod that should change.
#[derive(Debug, Clone, Default)]
pub(super) struct PodNeeds {
    pub(super) wanted: Vec<(String, Resource)>,
    kinds: Vec<Need>,
    pub(super) distance: Distance,
    pub(super) why: Vec<String>,
}

/// Whether a container was OOM-killed within `window` of `now` (a kill without a time counts).
fn oom_killed(c: &ContainerResources, window: Seconds, now: Seconds) -> Option<Option<Seconds>> {
    c.last_termination
        .as_ref()
        .filter(|t| t.reason == "OOMKilled")
        .filter(|t| t.finished_at.is_none_or(|f| now - f < window))
        .map(|t| t.finished_at)
}

fn needs(
    s: &PlanSettings,
    recs: &[ContainerRecommendation],
    pod: &Pod,
    state: &PlanState,
    now: Seconds,
) -> PodNeeds {
    let mut out = PodNeeds::default();
    for c in &s.containers {
        let Some(container) = pod.container(c) else {
            continue;
        };
        for &r in &s.resources {
            let (Some(rec), Some(current)) =
                (recommendation(recs, c, r), container.requests.get(r))
            else {
                continue;
            };
            let since = state.differs_since.get(&key(&pod.name, c, r)).copied();
            let oom = if r == Resource::Memory && current < rec.target - MIB {
                oom_killed(container, s.params.memory_peak_window, now)
            } else {
                None
            };
            if let Some(at) = oom {
                out.why.push(format!(
                    "{c} was OOM-killed {} ago with a memory request of {}, below the target {}",
                    match at {
                        Some(t) => humantime::format_duration(std::time::Duration::from_secs(
                            (now - t).max(0.0) as u64,
                        ))
                        .to_string(),
                        None => "a while".into(),
                    },
                    show(r, current),
                    show(r, rec.target)
                ));
                out.wanted.push((c.clone(), r));
                out.kinds.push(Need::Oom);
                // Before anything else: an OOM kill is an outage.
                let d = Distance {
                    outside: 1.0 + distance(current, rec).off_target,
                    off_target: distance(current, rec).off_target,
                };
                if d > out.distance {
                    out.distance = d;
                }
                continue;
            }
            if !should_update(&s.params, current, rec, since, now) {
                continue;
            }
            let d = distance(current, rec);
            out.kinds.push(if current < rec.lower {
                Need::Below
            } else if current > rec.upper {
                Need::Above
            } else {
                Need::Stale
            });
            out.why.push(if d.outside > 0.0 {
                format!(
                    "{c} {} request {} is {} [{}, {}]",
                    r.as_str(),
                    show(r, current),
                    if current < rec.lower {
                        "below"
                    } else {
                        "above"
                    },
                    show(r, rec.lower),
                    show(r, rec.upper)
                )
            } else {
                format!(
                    "{c} {} request {} has been over {:.0} % off the target {} for {}",
                    r.as_str(),
                    show(r, current),
                    s.params.stale_difference * 100.0,
                    show(r, rec.target),
                    humantime::format_duration(std::time::Duration::from_secs(
                        (now - since.unwrap_or(now)).max(0.0) as u64
                    ))
                )
            });
            out.wanted.push((c.clone(), r));
            if d > out.distance {
                out.distance = d;
            }
        }
    }
    out
}

pub(super) fn ago(now: Seconds, since: Option<Seconds>) -> String {
    match since {
        Some(s) => format!(
            "for {}",
            humantime::format_duration(std::time::Duration::from_secs((now - s).max(0.0) as u64))
        ),
        None => "since an unknown time".into(),
    }
}

/// The next step for the policy's containers. Updates `state` (the `minChange.after` clocks of
/// the pods seen; pods gone are forgotten; a clock of a resource without a recommendation yet is
/// kept as it is).
pub fn plan(
    s: &PlanSettings,
    recs: &[ContainerRecommendation],
    pods: &[Pod],
    state: &mut PlanState,
    now: Seconds,
) -> VerticalPlan {
    let active: Vec<&Pod> = pods.iter().filter(|p| p.is_active()).collect();
    // The minChange clocks.
    let mut seen = BTreeMap::new();
    for p in &active {
        for c in &s.containers {
            let Some(container) = p.container(c) else {
                continue;
            };
            for &r in &s.resources {
                let Some(current) = container.requests.get(r) else {
                    continue;
                };
                let k = key(&p.name, c, r);
                let Some(rec) = recommendation(recs, c, r) else {
                    // No data yet (a restarted daemon whose first reads failed): a clock kept
                    // from before goes on, it is not restarted.
                    if let Some(&since) = state.differs_since.get(&k) {
                        seen.insert(k, since);
                    }
                    continue;
                };
                let far = (current - rec.target).abs() > s.params.stale_difference * rec.target;
                if far {
                    let since = state.differs_since.get(&k).copied().unwrap_or(now);
                    seen.insert(k, since);
                }
            }
        }
    }
    state.differs_since = seen;

    let needs: Vec<(&Pod, PodNeeds)> = active
        .iter()
        .map(|p| (*p, needs(s, recs, p, state, now)))
        .filter(|(_, n)| !n.wanted.is_empty())
        .collect();

    let mut rows = rows(s, recs, &active, &needs);
    let mut notes = Vec::new();
    for c in &s.containers {
        if !active.is_empty() && active.iter().all(|p| p.container(c).is_none()) {
            notes.push(format!("no running pod has a container {c}"));
        }
        for &r in &s.resources {
            let has = active
                .iter()
                .any(|p| p.container(c).and_then(|x| x.requests.get(r)).is_some());
            let any = active.iter().any(|p| p.container(c).is_some());
            if any && !has {
                notes.push(format!(
                    "container {c} has no {} request: left alone",
                    r.as_str()
                ));
            }
        }
    }

    let action = decide(s, recs, pods, &active, &needs, state, now, &mut notes);
    let planned: Option<&Vec<ContainerChange>> = match &action {
        VerticalAction::Resize { changes, .. } | VerticalAction::PatchTemplate { changes, .. } => {
            Some(changes)
        }
        _ => None,
    };
    if let Some(changes) = planned {
        for row in &mut rows {
            row.planned = changes
                .iter()
                .find(|c| c.container == row.container)
                .and_then(|c| c.requests.get(row.resource));
        }
    }
    VerticalPlan {
        action,
        rows,
        notes,
    }
}

fn rows(
    s: &PlanSettings,
    recs: &[ContainerRecommendation],
    active: &[&Pod],
    needs: &[(&Pod, PodNeeds)],
) -> Vec<PlanRow> {
    let mut rows = Vec::new();
    for c in &s.containers {
        for &r in &s.resources {
            let currents: Vec<f64> = active
                .iter()
                .filter_map(|p| p.container(c).and_then(|x| x.requests.get(r)))
                .collect();
            let current_min = currents.iter().copied().reduce(f64::min);
            let current_max = currents.iter().copied().reduce(f64::max);
            let rec = recommendation(recs, c, r).copied();
            let kinds: Vec<Need> = needs
                .iter()
                .filter_map(|(_, n)| {
                    n.wanted
                        .iter()
                        .zip(&n.kinds)
                        .find(|((x, y), _)| x == c && *y == r)
                        .map(|(_, k)| *k)
                })
                .collect();
            let to_change = kinds.len() as u32;
            let count = |k: Need| kinds.iter().filter(|x| **x == k).count();
            let verdict = match (rec, current_min) {
                (None, _) => "no usage data yet".to_string(),
                (Some(_), None) => "no request to right-size".to_string(),
                (Some(_), Some(_)) if to_change == 0 => "within the bounds".to_string(),
                (Some(_), Some(_)) => {
                    let parts: Vec<String> = [
                        (Need::Oom, "OOM-killed below the target"),
                        (Need::Below, "below the lower bound"),
                        (Need::Above, "above the upper bound"),
                        (Need::Stale, "off the target for long"),
                    ]
                    .into_iter()
                    .filter(|(k, _)| count(*k) > 0)
                    .map(|(k, text)| format!("{} pod(s) {text}", count(k)))
                    .collect();
                    parts.join(", ")
                }
            };
            rows.push(PlanRow {
                container: c.clone(),
                resource: r,
                current_min,
                current_max,
                recommended: rec,
                pods_to_change: to_change,
                verdict,
                planned: None,
            });
        }
    }
    rows
}
