//! The HPA's arithmetic over a metric's pods, once each pod is grouped (ready, unready,
//! missing, ignored: the grouping of pods as read is [`crate::tick::pods`]): the usage ratio,
//! the conservative recount, and the value the engine is given. Pure: no clock, no I/O.
//!
//! # What the engine sees
//!
//! The engine's threshold policy proposes `ceil(value / target)` for a `targetPerReplica` metric
//! and `ceil(ready × value / target)` for a `utilization`. A pod metric gives it the value for
//! which that formula yields the HPA's `ceil(ratio × pods counted)`:
//!
//! - `targetPerReplica`: the sum over the counted pods (missing and unready ones at the value
//!   the rules gave them), for example the total requests/s or cores;
//! - `utilization`: that adjusted usage spread over the ready pods, `ratio × target × counted /
//!   ready`; with no adjustment it is the plain average over the pods with a metric.
//!
//! When the rules hold the count (a reversed direction), the value is the one that proposes the
//! current count. The [`PodReading::note`] says which pods counted how.
//!
//! The HPA's default tolerance and rate limits ([`TOLERANCE`], [`SCALE_UP_PERCENT`], ...) live
//! here too: the hpa preset ([`super::governor::ScalingRules::hpa_up`]) and the action budget's
//! shadow HPA ([`super::budget`]) both read them.

use super::{Sample, Seconds, Target, fmt_num};
use serde::Serialize;

/// The HPA's default tolerance (kube-controller-manager's
/// `--horizontal-pod-autoscaler-tolerance`): ratios within 10 % of 1 change nothing.
pub const TOLERANCE: f64 = 0.1;
/// The period of the HPA v2 default rate limits, seconds.
pub const LIMIT_PERIOD: Seconds = 15.0;
/// The HPA v2 default scale-up limit: +100 % or +4 pods per [`LIMIT_PERIOD`], whichever is more.
pub const SCALE_UP_PERCENT: f64 = 100.0;
/// See [`SCALE_UP_PERCENT`].
pub const SCALE_UP_PODS: u32 = 4;
/// The HPA v2 default scale-down stabilization window, seconds (then up to 100 % per
/// [`LIMIT_PERIOD`]).
pub const SCALE_DOWN_WINDOW: Seconds = 300.0;

/// How one pod counts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "group", content = "reason")]
pub enum PodGroup {
    /// Its metric counts as measured.
    Ready,
    /// Pending or still initializing: set aside, counted at 0 on a scale-up.
    Unready(String),
    /// No metric: set aside, counted conservatively.
    Missing(String),
    /// Shutting down or failed: not counted.
    Ignored(String),
}

/// One pod's metric: a value, and for CPU the time and window of the sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PodSample {
    /// The value (cores, bytes, or the scraped metric).
    pub value: f64,
    /// End of the measurement window, Unix seconds.
    pub timestamp: Seconds,
    /// Length of the measurement window, seconds.
    pub window: Seconds,
}

/// One pod in a reading.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodEntry {
    /// The pod.
    pub pod: String,
    /// How it counts.
    #[serde(flatten)]
    pub group: PodGroup,
    /// Its measured value, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
}

/// A pod metric's value for the engine, with how each pod counted.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodReading {
    /// The value for the engine (see the module docs), or no data.
    pub sample: Sample,
    /// Pods with the group each fell in.
    pub pods: Vec<PodEntry>,
    /// One line on the pods and the rules that applied.
    pub note: String,
}

/// Applies the HPA's rules to grouped pods. `weights[i]` belongs to `entries[i]`: the pod's
/// request for a utilization of requests (`requests` true), 1 otherwise. `target` is the
/// metric's target, `current` the target's replica count and `ready` the ready pods the engine
/// sees.
pub fn reading(
    entries: Vec<PodEntry>,
    weights: &[f64],
    target: Target,
    requests: bool,
    current: u32,
    ready: u32,
) -> PodReading {
    let t = match target {
        Target::PerReplica(t) | Target::Utilization(t) => t,
    };
    let count = |f: fn(&PodGroup) -> bool| entries.iter().filter(|e| f(&e.group)).count();
    let n_ready = count(|g| matches!(g, PodGroup::Ready));
    let n_unready = count(|g| matches!(g, PodGroup::Unready(_)));
    let n_missing = count(|g| matches!(g, PodGroup::Missing(_)));
    let n_ignored = count(|g| matches!(g, PodGroup::Ignored(_)));
    let mut note = format!("{} pods: {n_ready} with a metric", entries.len());
    for (n, what) in [
        (n_unready, "unready"),
        (n_missing, "missing"),
        (n_ignored, "ignored"),
    ] {
        if n > 0 {
            note.push_str(&format!(", {n} {what}"));
        }
    }
    if entries.is_empty() {
        return PodReading {
            sample: Sample::no_data("no pods match the target's selector"),
            pods: entries,
            note,
        };
    }
    if n_ready == 0 {
        return PodReading {
            sample: Sample::no_data(format!("{note}: no ready pod has a metric")),
            pods: entries,
            note,
        };
    }
    if matches!(target, Target::Utilization(_)) && ready == 0 {
        return PodReading {
            sample: Sample::no_data("no ready replicas"),
            pods: entries,
            note,
        };
    }
    // Sums of value and weight, and the pods counted, with `count` giving each pod's value.
    let sum = |count: &dyn Fn(&PodEntry, f64) -> Option<f64>| {
        let (mut u, mut w, mut n) = (0.0, 0.0, 0usize);
        for (e, &weight) in entries.iter().zip(weights) {
            if let Some(v) = count(e, weight) {
                u += v;
                w += weight;
                n += 1;
            }
        }
        (u, w, n)
    };
    let (u, w, n) = sum(&|e, _| match e.group {
        PodGroup::Ready => e.value,
        _ => None,
    });
    let ratio = u / w / t;
    let scale_up_with_unready = n_unready > 0 && ratio > 1.0;
    let to_engine = |ratio: f64, counted: usize| match target {
        Target::PerReplica(t) => ratio * counted as f64 * t,
        Target::Utilization(t) => ratio * counted as f64 * t / ready as f64,
    };
    if !scale_up_with_unready && n_missing == 0 {
        return PodReading {
            sample: Sample::from_f64(to_engine(ratio, n)),
            pods: entries,
            note,
        };
    }
    // The conservative recount.
    let missing_at = if requests { t.max(1.0) } else { t };
    let (u2, w2, n2) = sum(&|e, weight| match e.group {
        PodGroup::Ready => e.value,
        PodGroup::Missing(_) if ratio < 1.0 => Some(missing_at * weight),
        PodGroup::Missing(_) if ratio > 1.0 => Some(0.0),
        PodGroup::Unready(_) if scale_up_with_unready => Some(0.0),
        _ => None,
    });
    let new_ratio = u2 / w2 / t;
    let mut rules = Vec::new();
    if n_missing > 0 && ratio < 1.0 {
        rules.push(if requests {
            "missing counted at their request (or the target if higher) on a scale-down"
        } else {
            "missing counted at the target on a scale-down"
        });
    } else if n_missing > 0 && ratio > 1.0 {
        rules.push("missing counted at 0 on a scale-up");
    }
    if scale_up_with_unready {
        rules.push("unready counted at 0 on a scale-up");
    }
    let rules = if rules.is_empty() {
        String::new()
    } else {
        format!("; {}", rules.join(", "))
    };
    let reversed = (ratio < 1.0 && new_ratio > 1.0) || (ratio > 1.0 && new_ratio < 1.0);
    if reversed {
        let hold = match target {
            Target::PerReplica(t) => t * current as f64,
            Target::Utilization(t) => t * current as f64 / ready as f64,
        };
        return PodReading {
            sample: Sample::from_f64(hold),
            pods: entries,
            note: format!(
                "{note}{rules}: ratio {} becomes {}, a reversal: holding at {current} (HPA rule)",
                fmt_num(ratio),
                fmt_num(new_ratio)
            ),
        };
    }
    PodReading {
        sample: Sample::from_f64(to_engine(new_ratio, n2)),
        pods: entries,
        note: format!(
            "{note}{rules}: ratio {} becomes {} over {n2} pods",
            fmt_num(ratio),
            fmt_num(new_ratio)
        ),
    }
}
