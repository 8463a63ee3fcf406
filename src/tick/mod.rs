//! One tick of one policy: observe, decide, govern, plan, act.
//!
//! - [`observe`]: [`Observer`], which reads every metric of a policy for one tick.
//! - [`pods`]: metrics.k8s.io usage and scraped pod metrics, with the HPA's rules for pods that
//!   are not ready, still starting or without a metric.
//! - [`usage`]: per-container CPU and memory usage and OOM kills for the vertical part, its
//!   recommenders, and [`usage::VerticalTick`], one tick of the vertical part.
//! - [`vertical`]: [`vertical::apply_vertical`], the vertical part's act step.
//! - [`act`]: [`act::Actuator`], the horizontal act step.
//! - [`restart`]: what the governor and the planner keep on the target's annotation.
//!
//! A source never invents a value: a failed, empty, NaN or infinite reading becomes
//! [`Sample::NoData`](crate::engine::Sample::NoData) with its reason.

pub mod act;
pub mod observe;
pub mod pods;
pub mod restart;
pub mod usage;
pub mod vertical;

pub use observe::{MetricReading, ObserveError, Observer, TargetState};

use crate::prometheus::{PrometheusClient, PrometheusError};

/// The Prometheus of `policy`: a client of its own for `spec.prometheus`, else `default` (the
/// command's `--prometheus`, whose connections every such policy shares), else None. Built once
/// per policy and handed to its [`Observer`] and its [`usage::UsageSource`].
pub fn policy_prometheus(
    policy: &crate::policy::Policy,
    default: Option<&PrometheusClient>,
) -> Result<Option<PrometheusClient>, PrometheusError> {
    match &policy.prometheus {
        Some(config) => PrometheusClient::new(config).map(Some),
        None => Ok(default.cloned()),
    }
}
