//! The threshold policy: size the target so that each metric sits at its target.
//!
//! - Utilization targets (`utilization: 0.7`): `desired = ceil(ready × value / target)`, the HPA's
//!   formula over ready pods (the current replica count when no pod is ready yet).
//! - Per-replica targets (`targetPerReplica: 80`): the metric is a total, and
//!   `desired = ceil(value / target)`.
//!
//! With several metrics, the governor takes the largest proposal.

use super::{Missing, Observation, Proposal, Recommendation, Sample, fmt_num};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a metric's value is held to.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Target {
    /// The metric is a total (requests/s of the whole service); each replica should carry this much.
    PerReplica(f64),
    /// The metric is a utilization ratio per replica (0.7 = 70 %); hold it at this value.
    Utilization(f64),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::PerReplica(t) => write!(f, "{}/replica", fmt_num(*t)),
            Target::Utilization(t) => write!(f, "{}", fmt_num(*t)),
        }
    }
}

/// One metric of a policy and its target.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricTarget {
    /// Name shown in explanations.
    pub name: String,
    /// The target.
    pub target: Target,
}

/// Replicas from a fractional desire: ceil, saturating at u32::MAX, never below zero.
fn ceil_replicas(x: f64) -> u32 {
    // Guard against float noise such as 10.000000000000002 rounding up to 11.
    let c = (x - 1e-9).ceil();
    if c <= 0.0 {
        0
    } else if c >= u32::MAX as f64 {
        u32::MAX
    } else {
        c as u32
    }
}

/// One proposal per metric with data; the rest are listed as missing.
pub fn recommend(metrics: &[MetricTarget], obs: &Observation) -> Recommendation {
    let mut rec = Recommendation::default();
    for (i, m) in metrics.iter().enumerate() {
        let sample = obs
            .samples
            .get(i)
            .cloned()
            .unwrap_or_else(|| Sample::no_data("not observed"));
        match sample {
            Sample::NoData { reason } => rec.missing.push(Missing {
                metric: m.name.clone(),
                reason,
            }),
            Sample::Value { value } => rec.proposals.push(propose(m, value, obs)),
        }
    }
    rec.reference = rec.proposals.iter().map(|p| p.replicas).max();
    rec
}

fn propose(m: &MetricTarget, value: f64, obs: &Observation) -> Proposal {
    let current = obs.current_replicas.max(1) as f64;
    let (ratio, desired) = match m.target {
        Target::Utilization(t) => {
            let ratio = value / t;
            let base = if obs.ready_replicas > 0 {
                obs.ready_replicas as f64
            } else {
                current
            };
            (ratio, ratio * base)
        }
        Target::PerReplica(t) => (value / (t * current), value / t),
    };
    Proposal {
        metric: m.name.clone(),
        value,
        target: m.target,
        ratio,
        replicas: ceil_replicas(desired),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(current: u32, ready: u32, samples: Vec<Sample>) -> Observation {
        Observation {
            current_replicas: current,
            ready_replicas: ready,
            samples,
        }
    }

    fn metric(name: &str, target: Target) -> MetricTarget {
        MetricTarget {
            name: name.into(),
            target,
        }
    }

    #[test]
    fn utilization_scales_with_ready_pods() {
        // 4 ready pods at 90 % against a 60 % target: ceil(4 × 0.9 / 0.6) = 6.
        let r = recommend(
            &[metric("cpu", Target::Utilization(0.6))],
            &obs(4, 4, vec![Sample::from_f64(0.9)]),
        );
        assert_eq!(r.proposals[0].replicas, 6);
        assert!((r.proposals[0].ratio - 1.5).abs() < 1e-12);
    }

    #[test]
    fn utilization_uses_ready_not_spec_replicas() {
        // 10 desired but only 5 ready at 100 % vs 50 %: the 5 ready carry the load, so 10.
        let r = recommend(
            &[metric("cpu", Target::Utilization(0.5))],
            &obs(10, 5, vec![Sample::from_f64(1.0)]),
        );
        assert_eq!(r.proposals[0].replicas, 10);
    }

    #[test]
    fn per_replica_divides_the_total() {
        // 1000 req/s at 80 per replica: ceil(12.5) = 13; ratio at 10 replicas = 1.25.
        let r = recommend(
            &[metric("rps", Target::PerReplica(80.0))],
            &obs(10, 10, vec![Sample::from_f64(1000.0)]),
        );
        assert_eq!(r.proposals[0].replicas, 13);
        assert!((r.proposals[0].ratio - 1.25).abs() < 1e-12);
    }

    #[test]
    fn exact_multiples_do_not_round_up_on_float_noise() {
        // 0.7 / 0.7 × 10 may compute as 10.000000000000002; that is 10, not 11.
        let r = recommend(
            &[metric("u", Target::Utilization(0.1 + 0.2))],
            &obs(10, 10, vec![Sample::from_f64(0.3)]),
        );
        assert_eq!(r.proposals[0].replicas, 10);
    }

    #[test]
    fn no_data_is_listed_not_zero() {
        let r = recommend(
            &[
                metric("a", Target::PerReplica(10.0)),
                metric("b", Target::PerReplica(10.0)),
                metric("c", Target::PerReplica(10.0)),
            ],
            &obs(
                3,
                3,
                vec![Sample::from_f64(f64::NAN), Sample::from_f64(50.0)],
            ),
        );
        assert_eq!(r.proposals.len(), 1);
        assert_eq!(r.proposals[0].metric, "b");
        assert_eq!(r.missing.len(), 2);
        assert_eq!(r.missing[0].reason, "value is NaN");
        assert_eq!(r.missing[1].reason, "not observed");
    }
}
