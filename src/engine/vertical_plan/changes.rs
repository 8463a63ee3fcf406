//! To what: the new requests and limits of a pod's containers, under the limits and QoS rules.

use super::action::{ContainerChange, show};
use super::settings::{ContainerRecommendation, LimitsMode, PlanSettings, recommendation};
use crate::engine::pod::{Amounts, ContainerResources, Pod, QosClass, RestartPolicy};
use crate::engine::quantity::{MIB, Resource};
use crate::engine::vertical::VerticalParams;

/// A value in steps of the resource (millicores, or MiB).
fn units(r: Resource, v: f64) -> f64 {
    match r {
        Resource::Cpu => v * 1000.0,
        Resource::Memory => v / MIB,
    }
}

/// A whole number of steps as a value (cores, or bytes).
fn on_step(r: Resource, n: f64) -> f64 {
    match r {
        Resource::Cpu => n / 1000.0,
        Resource::Memory => n * MIB,
    }
}

/// `v` on the resource's step (a millicore, a MiB), within [min, max]: the nearest step if it
/// is within, else the first step above min or the last below max; when no step is within,
/// `v` clamped.
pub fn representable(r: Resource, v: f64, min: f64, max: f64) -> f64 {
    let within = |x: f64| x >= min && x <= max;
    let candidates = [
        on_step(r, units(r, v).round()),
        on_step(r, (units(r, min) - 1e-9).ceil()),
        on_step(r, (units(r, max) + 1e-9).floor()),
    ];
    candidates
        .into_iter()
        .find(|x| within(*x))
        .unwrap_or_else(|| v.clamp(min, max))
}

fn bounds(p: &VerticalParams, r: Resource) -> (f64, f64) {
    match r {
        Resource::Cpu => (p.cpu.min, p.cpu.max),
        Resource::Memory => (p.memory.min, p.memory.max),
    }
}

/// New values for the `wanted` containers and resources of `pod`, under the limits and QoS
/// rules. Notes say what was clamped, nudged or left alone. With `whole`, a wanted resource is
/// written even when the pod already has that value (for a template, which may not), with its
/// limit.
pub(super) fn changes_for(
    s: &PlanSettings,
    recs: &[ContainerRecommendation],
    pod: &Pod,
    wanted: &[(String, Resource)],
    whole: bool,
    notes: &mut Vec<String>,
) -> Vec<ContainerChange> {
    let qos = pod.qos();
    if qos == QosClass::BestEffort {
        notes.push(format!(
            "pod {} is BestEffort: it is never given requests",
            pod.name
        ));
        return Vec::new();
    }
    // The pod's containers after the change, to check the QoS class.
    let mut after: Vec<ContainerResources> = pod.containers.clone();
    let mut changed: Vec<(usize, Resource)> = Vec::new();
    for (c, r) in wanted {
        let r = *r;
        let Some(i) = after.iter().position(|x| &x.name == c) else {
            continue;
        };
        let (Some(rec), Some(current)) = (recommendation(recs, c, r), after[i].requests.get(r))
        else {
            continue;
        };
        if current <= 0.0 {
            notes.push(format!(
                "pod {}: {c} has a zero {} request: left alone",
                pod.name,
                r.as_str()
            ));
            continue;
        }
        let (min, max) = bounds(&s.params, r);
        let mut request = representable(r, rec.target, min, max);
        let old_limit = after[i].limits.get(r);
        let limit = match (s.limits, old_limit) {
            (_, None) => None,
            (LimitsMode::Proportional, Some(l)) if (l - current).abs() <= f64::EPSILON * l => {
                // requests == limits: keep them equal.
                Some(request)
            }
            (LimitsMode::Proportional, Some(l)) => {
                Some(on_step(r, units(r, request * l / current).round()).max(request))
            }
            (LimitsMode::RequestsOnly, Some(l)) => {
                if qos == QosClass::Guaranteed {
                    notes.push(format!(
                        "pod {} is Guaranteed and limits are requestsOnly: its {c} {} request \
                         cannot change without its limit (the QoS class would change): left alone",
                        pod.name,
                        r.as_str()
                    ));
                    continue;
                }
                if request > l {
                    if l < min {
                        notes.push(format!(
                            "{c} {} limit {} is below the policy's min {}: with limits \
                             requestsOnly the request cannot rise to the target {}: left alone",
                            r.as_str(),
                            show(r, l),
                            show(r, min),
                            show(r, rec.target)
                        ));
                        continue;
                    }
                    notes.push(format!(
                        "{c} {} request clamped to its limit {} (target {}; limits are requestsOnly)",
                        r.as_str(),
                        show(r, l),
                        show(r, request)
                    ));
                    request = l;
                }
                Some(l)
            }
        };
        if !whole && request == current && limit == old_limit {
            continue;
        }
        after[i].requests.set(r, Some(request));
        after[i].limits.set(r, limit);
        changed.push((i, r));
    }
    // Burstable must not become Guaranteed by accident.
    if qos != QosClass::Guaranteed
        && QosClass::of(&pod.containers) != QosClass::Guaranteed
        && QosClass::of(&after) == QosClass::Guaranteed
    {
        let mut dropped = Vec::new();
        for &(i, r) in &changed {
            let (Some(req), Some(lim)) = (after[i].requests.get(r), after[i].limits.get(r)) else {
                continue;
            };
            if req != lim {
                continue;
            }
            let name = after[i].name.clone();
            match s.limits {
                LimitsMode::Proportional => {
                    let higher = on_step(r, units(r, lim).round() + 1.0);
                    after[i].limits.set(r, Some(higher));
                    notes.push(format!(
                        "{name} {} limit set one step above the request ({}) so that pod {} stays {qos}",
                        r.as_str(),
                        show(r, higher),
                        pod.name
                    ));
                }
                LimitsMode::RequestsOnly => {
                    let (min, _) = bounds(&s.params, r);
                    let lower = on_step(r, units(r, req).round() - 1.0);
                    if lower >= min && lower > 0.0 {
                        after[i].requests.set(r, Some(lower));
                        notes.push(format!(
                            "{name} {} request set one step below its limit ({}) so that pod {} stays {qos}",
                            r.as_str(),
                            show(r, lower),
                            pod.name
                        ));
                    } else {
                        dropped.push((i, r));
                        notes.push(format!(
                            "{name} {} request left alone: at its limit the pod {} would become \
                             Guaranteed, and one step below is under the policy's min",
                            r.as_str(),
                            pod.name
                        ));
                    }
                }
            }
        }
        for (i, r) in &dropped {
            after[*i]
                .requests
                .set(*r, pod.containers[*i].requests.get(*r));
            after[*i].limits.set(*r, pod.containers[*i].limits.get(*r));
        }
        changed.retain(|x| !dropped.contains(x));
    }
    let mut out: Vec<ContainerChange> = Vec::new();
    for (i, r) in changed {
        let name = &after[i].name;
        let at = match out.iter().position(|c| &c.container == name) {
            Some(k) => k,
            None => {
                out.push(ContainerChange {
                    container: name.clone(),
                    requests: Amounts::default(),
                    limits: Amounts::default(),
                });
                out.len() - 1
            }
        };
        out[at].requests.set(r, after[i].requests.get(r));
        if whole || after[i].limits.get(r) != pod.containers[i].limits.get(r) {
            out[at].limits.set(r, after[i].limits.get(r));
        }
    }
    out
}

/// The memory limits a change lowers in containers whose memory resizePolicy is `NotRequired`
/// (what Kubernetes 1.33 refuses in place), in words: `app (256Mi to 160Mi)`.
pub(super) fn lowered_memory_limits(pod: &Pod, changes: &[ContainerChange]) -> Vec<String> {
    let r = Resource::Memory;
    changes
        .iter()
        .filter_map(|ch| {
            let c = pod.container(&ch.container)?;
            let (old, new) = (c.limits.get(r)?, ch.limits.get(r)?);
            (new < old && c.resize_policy.get(r) == RestartPolicy::NotRequired)
                .then(|| format!("{} ({} to {})", ch.container, show(r, old), show(r, new)))
        })
        .collect()
}

/// The resources of a change that restart their container (resizePolicy RestartContainer).
pub(super) fn restarts(pod: &Pod, changes: &[ContainerChange]) -> Vec<String> {
    let mut out = Vec::new();
    for ch in changes {
        let Some(c) = pod.container(&ch.container) else {
            continue;
        };
        for r in [Resource::Cpu, Resource::Memory] {
            let touched = ch.requests.get(r).is_some() || ch.limits.get(r).is_some();
            if touched && c.resize_policy.get(r) == RestartPolicy::RestartContainer {
                out.push(format!("{} ({})", ch.container, r.as_str()));
            }
        }
    }
    out
}
