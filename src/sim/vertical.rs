//! Simulation of the vertical part: one container whose usage follows the trace's shape, right-sized
//! by the same recommender and the same planner ([`crate::engine::vertical_plan::plan`]) the
//! daemon uses.
//!
//! - Usage: the trace's value is one replica's usage shape, rescaled so that its mean is 0.5 CPU
//!   core and 512 MiB of memory (or multiplied by `scale`: cores for CPU, MiB for memory).
//! - One running pod with one container (the policy's first): it starts with requests = limits
//!   = 1.2 × the highest usage of the first hour (a plausible hand-set value) for the policy's
//!   resources, so it is Guaranteed when both are right-sized, Burstable otherwise.
//! - Every step: CPU above the limit is a throttled minute (its usage is capped at the limit);
//!   memory above the limit is an OOM kill: the recommender's OOM rule raises the memory
//!   recommendation, and the container's last termination says `OOMKilled`, which the planner
//!   answers at once.
//! - After the first hour (or at once after an OOM kill), with `update` other than `off`, the
//!   planner decides as in the daemon, with its own state across steps (the `minChange.after`
//!   clocks, the last template patch): its rules on when, to what (whole millicores and MiB
//!   within [min, max]), limits and QoS class. Its resize or template patch is applied at once
//!   (the kubelet or the rollout does not lag; a rollout gives a new pod, without the last
//!   termination). CPU and memory changed together count as one change.
//! - Slack is `max(0, request - usage) / request`, averaged over time.

use super::Trace;
use crate::engine::pod::{Amounts, ContainerResources, Pod, ResizeStatus, Termination};
use crate::engine::quantity::{self, MIB, Resource};
use crate::engine::vertical::ContainerRecommender;
use crate::engine::vertical_plan::{
    self, ContainerChange, ContainerRecommendation, PlanState, VerticalAction,
};
use crate::policy::{UpdateMode, VerticalSpec};
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

/// The simulated pod, with one container.
fn pod(container: ContainerResources) -> Pod {
    Pod {
        name: "sim-0".into(),
        phase: "Running".into(),
        deleting: false,
        qos_class: None,
        revision: Some("1".into()),
        resize: ResizeStatus::None,
        containers: vec![container],
        ..Pod::default()
    }
}

/// A change's new values into the container.
fn apply(c: &mut ContainerResources, changes: &[ContainerChange]) {
    for ch in changes.iter().filter(|ch| ch.container == c.name) {
        for r in [Resource::Cpu, Resource::Memory] {
            if let Some(v) = ch.requests.get(r) {
                c.requests.set(r, Some(v));
            }
            if let Some(v) = ch.limits.get(r) {
                c.limits.set(r, Some(v));
            }
        }
    }
}

/// Runs the vertical part of a policy against a usage shape.
pub fn run(spec: &VerticalSpec, trace: &Trace, scale: Option<f64>) -> VerticalResult {
    let p = &spec.plan.params;
    let mut settings = spec.plan.clone();
    settings.containers.truncate(1);
    let name = settings.containers.first().cloned().unwrap_or_default();
    let mean = trace.mean().max(1e-12);
    let factor = |r: Resource| match (r, scale) {
        (Resource::Cpu, None) => 0.5 / mean,
        (Resource::Memory, None) => 512.0 * MIB / mean,
        (Resource::Cpu, Some(k)) => k,
        (Resource::Memory, Some(k)) => k * MIB,
    };
    let usage = |r: Resource, i: usize| trace.values[i] * factor(r);
    let first_hour = trace.step_at(3600.0).max(1);
    let mut container = ContainerResources {
        name: name.clone(),
        ..ContainerResources::default()
    };
    for &r in &settings.resources {
        let peak = (0..first_hour).map(|i| usage(r, i)).fold(0.0, f64::max);
        // Set by hand before any policy: the policy's min does not apply to it (the first
        // recommendation does), only a floor of 1 millicore or 1 MiB.
        let request = (1.2 * peak).max(match r {
            Resource::Cpu => 0.001,
            Resource::Memory => MIB,
        });
        container.requests.set(r, Some(request));
        container.limits.set(r, Some(request));
    }
    let mut pods = vec![pod(container)];
    let mut state = PlanState::default();
    let mut slack = Amounts::default();
    let mut rec = ContainerRecommender::new(p);
    let (mut oom_kills, mut throttled, mut changes) = (0u32, 0.0, Vec::new());
    for i in 0..trace.values.len() {
        let (t, dt) = (trace.times[i], trace.step_end(i) - trace.times[i]);
        let mut oom = None;
        let c = &mut pods[0].containers[0];
        for &r in &settings.resources {
            let u = usage(r, i);
            let (request, limit) = (
                c.requests.get(r).unwrap_or(0.0),
                c.limits.get(r).unwrap_or(f64::INFINITY),
            );
            match r {
                Resource::Cpu => {
                    if u > limit {
                        throttled += dt / 60.0;
                    }
                    rec.add_cpu(u, t);
                }
                Resource::Memory => {
                    if u > limit {
                        oom_kills += 1;
                        rec.oom(p, u, t);
                        c.last_termination = Some(Termination {
                            reason: "OOMKilled".into(),
                            finished_at: Some(t),
                            exit_code: 137,
                        });
                        c.restart_count += 1;
                        oom = Some(format!(
                            "OOM kill at {}",
                            quantity::format(Resource::Memory, u)
                        ));
                    }
                    rec.add_memory(p, u, t);
                }
            }
            let s = slack.get(r).unwrap_or(0.0);
            slack.set(
                r,
                Some(s + (request - u.min(request)).max(0.0) / request * dt),
            );
        }
        if settings.update == UpdateMode::Off || (t < 3600.0 && oom.is_none()) {
            continue;
        }
        let recommendation = ContainerRecommendation {
            container: name.clone(),
            cpu: settings
                .resources
                .contains(&Resource::Cpu)
                .then(|| rec.recommend(p, Resource::Cpu))
                .flatten(),
            memory: settings
                .resources
                .contains(&Resource::Memory)
                .then(|| rec.recommend(p, Resource::Memory))
                .flatten(),
        };
        let plan = vertical_plan::plan(&settings, &[recommendation], &pods, &mut state, t);
        let (planned, why) = match &plan.action {
            VerticalAction::Resize {
                changes, reason, ..
            } => (changes, reason),
            VerticalAction::PatchTemplate { changes, reason } => {
                state.template_patched(t);
                // The rollout's new pod has not been OOM-killed.
                pods[0].containers[0].last_termination = None;
                (changes, reason)
            }
            VerticalAction::Nothing { .. } | VerticalAction::Report { .. } => continue,
        };
        let c = &mut pods[0].containers[0];
        apply(c, planned);
        let text = |r: Resource| {
            planned
                .iter()
                .find_map(|ch| ch.requests.get(r))
                .map(|v| quantity::format(r, v))
        };
        changes.push(RequestChange {
            t,
            cpu: text(Resource::Cpu),
            memory: text(Resource::Memory),
            reason: match oom {
                Some(kill) => format!("{kill}; {why}"),
                None => why.clone(),
            },
        });
    }
    let pct = |r: Resource| {
        settings
            .resources
            .contains(&r)
            .then(|| 100.0 * slack.get(r).unwrap_or(0.0) / trace.end)
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
