//! Simulation of the vertical part: one container whose usage follows the trace's shape, right-sized
//! by the same recommender the daemon uses.
//!
//! - Usage: the trace's value is one replica's usage shape, rescaled so that its mean is 0.5 CPU
//!   core and 512 MiB of memory (or multiplied by `scale`: cores for CPU, MiB for memory).
//! - The container starts with requests = limits = 1.2 × the highest usage of the first hour (a
//!   plausible hand-set value). Limits keep their ratio to requests unless the policy says
//!   `limits: requestsOnly`.
//! - Every step: CPU above the limit is a throttled minute (its usage is capped at the limit);
//!   memory above the limit is an OOM kill, which the recommender's OOM rule answers at once.
//! - After the first hour, with `update` other than `off`, a request changes when the recommender
//!   says so ([`crate::engine::vertical::should_update`]); CPU and memory changed together count as
//!   one change.
//! - Slack is `max(0, request - usage) / request`, averaged over time.

use super::Trace;
use crate::engine::quantity::{self, MIB, Resource};
use crate::engine::vertical::{ContainerRecommender, should_update};
use crate::policy::{LimitsMode, UpdateMode, VerticalSpec};
use serde::Serialize;

/// One change of the container's requests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestChange {
    /// Seconds from the trace start.
    pub t: f64,
    /// CPU request after the change, e.g. "450m".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Memory request after the change, e.g. "612Mi".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// Why.
    pub reason: String,
}

/// The vertical summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerticalSummary {
    /// Mean slack over the simulated resources, % of request.
    pub slack_pct: f64,
    /// CPU slack, % of request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_slack_pct: Option<f64>,
    /// Memory slack, % of request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_slack_pct: Option<f64>,
    /// OOM kills.
    pub oom_kills: u32,
    /// Minutes with CPU usage above the limit.
    pub throttled_minutes: f64,
    /// Changes of the container's requests.
    pub request_changes: u32,
    /// Changes per day.
    pub request_changes_per_day: f64,
    /// Simulated hours.
    pub hours: f64,
}

/// What a vertical run produces.
#[derive(Debug, Clone, Serialize)]
pub struct VerticalResult {
    /// Every change of requests.
    pub request_changes: Vec<RequestChange>,
    /// The summary.
    pub summary: VerticalSummary,
}

#[derive(Default)]
struct Tracked {
    request: f64,
    limit: f64,
    slack: f64,
    differs_since: Option<f64>,
}

/// Runs the vertical part of a policy against a usage shape.
pub fn run(spec: &VerticalSpec, trace: &Trace, scale: Option<f64>) -> VerticalResult {
    let p = &spec.plan.params;
    let mean = trace.mean().max(1e-12);
    let factor = |r: Resource| match (r, scale) {
        (Resource::Cpu, None) => 0.5 / mean,
        (Resource::Memory, None) => 512.0 * MIB / mean,
        (Resource::Cpu, Some(k)) => k,
        (Resource::Memory, Some(k)) => k * MIB,
    };
    let usage = |r: Resource, i: usize| trace.values[i] * factor(r);
    let first_hour = trace.step_at(3600.0).max(1);
    let mut tracked: Vec<(Resource, Tracked)> = spec
        .plan
        .resources
        .iter()
        .map(|&r| {
            let peak = (0..first_hour).map(|i| usage(r, i)).fold(0.0, f64::max);
            // Set by hand before any policy: the policy's min does not apply to it (the
            // first recommendation does), only a floor of 1 millicore or 1 MiB.
            let request = (1.2 * peak).max(match r {
                Resource::Cpu => 0.001,
                Resource::Memory => MIB,
            });
            (
                r,
                Tracked {
                    request,
                    limit: request,
                    ..Tracked::default()
                },
            )
        })
        .collect();
    let mut rec = ContainerRecommender::new(p);
    let (mut oom_kills, mut throttled, mut changes) = (0u32, 0.0, Vec::new());
    for i in 0..trace.values.len() {
        let (t, dt) = (trace.times[i], trace.step_end(i) - trace.times[i]);
        let mut reason = None;
        for (r, tr) in tracked.iter_mut() {
            let u = usage(*r, i);
            match r {
                Resource::Cpu => {
                    if u > tr.limit {
                        throttled += dt / 60.0;
                    }
                    rec.add_cpu(u, t);
                }
                Resource::Memory => {
                    if u > tr.limit {
                        oom_kills += 1;
                        rec.oom(p, u, t);
                        reason = Some(format!(
                            "OOM kill at {}",
                            quantity::format(Resource::Memory, u)
                        ));
                    }
                    rec.add_memory(p, u, t);
                }
            }
            tr.slack += (tr.request - u.min(tr.request)).max(0.0) / tr.request * dt;
        }
        if spec.plan.update == UpdateMode::Off || (t < 3600.0 && reason.is_none()) {
            continue;
        }
        let mut change = RequestChange {
            t,
            cpu: None,
            memory: None,
            reason: String::new(),
        };
        for (r, tr) in tracked.iter_mut() {
            let Some(target) = rec.recommend(p, *r) else {
                continue;
            };
            let far = (tr.request - target.target).abs() > p.stale_difference * target.target;
            tr.differs_since = if far {
                tr.differs_since.or(Some(t))
            } else {
                None
            };
            let oom = *r == Resource::Memory && reason.is_some();
            if !(oom || should_update(p, tr.request, &target, tr.differs_since, t)) {
                continue;
            }
            let why = if oom {
                reason.clone().unwrap_or_default()
            } else if tr.request < target.lower || tr.request > target.upper {
                format!(
                    "{} request {} outside [{}, {}]",
                    r.as_str(),
                    quantity::format(*r, tr.request),
                    quantity::format(*r, target.lower),
                    quantity::format(*r, target.upper)
                )
            } else {
                format!(
                    "{} request differs from the target by over {:.0} % for long",
                    r.as_str(),
                    p.stale_difference * 100.0
                )
            };
            let ratio = tr.limit / tr.request;
            tr.request = target.target;
            if spec.plan.limits == LimitsMode::Proportional {
                tr.limit = tr.request * ratio;
            }
            tr.differs_since = None;
            let text = quantity::format(*r, tr.request);
            match r {
                Resource::Cpu => change.cpu = Some(text),
                Resource::Memory => change.memory = Some(text),
            }
            change.reason = if change.reason.is_empty() {
                why
            } else {
                format!("{}; {why}", change.reason)
            };
        }
        if change.cpu.is_some() || change.memory.is_some() {
            changes.push(change);
        }
    }
    let pct = |r: Resource| {
        tracked
            .iter()
            .find(|(x, _)| *x == r)
            .map(|(_, tr)| 100.0 * tr.slack / trace.end)
    };
    let (cpu, memory) = (pct(Resource::Cpu), pct(Resource::Memory));
    let both: Vec<f64> = [cpu, memory].into_iter().flatten().collect();
    let hours = trace.end / 3600.0;
    VerticalResult {
        summary: VerticalSummary {
            slack_pct: both.iter().sum::<f64>() / both.len().max(1) as f64,
            cpu_slack_pct: cpu,
            memory_slack_pct: memory,
            oom_kills,
            throttled_minutes: throttled,
            request_changes: changes.len() as u32,
            request_changes_per_day: changes.len() as f64 * 24.0 / hours.max(1e-9),
            hours,
        },
        request_changes: changes,
    }
}

/// The least slack (% of request, averaged over time) that any recommender could reach on a
/// usage shape with perfect foresight, a request never below usage (no OOM kill, no throttled
/// minute) and at most `changes_per_day` request changes in each day of the trace (a change at
/// the start of a day counts). A floor for [`run`]'s `slack_pct`, whatever the policy.
///
/// Exact, by dynamic programming over each day's steps: the best request over a stretch of
/// steps is their peak usage, and a day splits into at most `changes_per_day` stretches.
/// Slack is scale-free, so the trace's own values serve.
pub fn least_slack_pct(trace: &Trace, changes_per_day: usize) -> f64 {
    let k = changes_per_day.max(1);
    let mut total = 0.0;
    let mut start = 0;
    while start < trace.values.len() {
        let day = (trace.times[start] / 86400.0).floor();
        let end = (start..trace.values.len())
            .find(|&i| (trace.times[i] / 86400.0).floor() > day)
            .unwrap_or(trace.values.len());
        let dt: Vec<f64> = (start..end)
            .map(|i| trace.step_end(i) - trace.times[i])
            .collect();
        total += least_day_slack(&trace.values[start..end], &dt, k);
        start = end;
    }
    100.0 * total / trace.end
}

/// One day: the least sum of dt × (1 - usage / request) over at most `k` stretches.
fn least_day_slack(u: &[f64], dt: &[f64], k: usize) -> f64 {
    let n = u.len();
    // best[j + 1]: least slack of steps 0..=j with the stretches used so far.
    let mut best = vec![f64::INFINITY; n + 1];
    best[0] = 0.0;
    for _ in 0..k {
        let mut next = best.clone();
        for (i, &from) in best.iter().enumerate().take(n) {
            if !from.is_finite() {
                continue;
            }
            let (mut peak, mut time, mut used) = (0.0f64, 0.0, 0.0);
            for j in i..n {
                peak = peak.max(u[j]);
                time += dt[j];
                used += dt[j] * u[j];
                let slack = if peak > 0.0 { time - used / peak } else { time };
                let c = from + slack;
                if c < next[j + 1] {
                    next[j + 1] = c;
                }
            }
        }
        best = next;
    }
    best[n]
}
