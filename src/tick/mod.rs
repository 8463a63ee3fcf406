//! Metric sources: the **observe** step's adapters, which turn queries into
//! [`engine::Sample`](crate::engine::Sample)s.
//!
//! - [`prometheus`]: the Prometheus HTTP API client (also for Thanos, Mimir and VictoriaMetrics).
//! - [`history`]: range queries over long periods, fetched in chunks.
//! - [`pods`]: metrics.k8s.io usage and scraped pod metrics, with the HPA's rules for pods that
//!   are not ready, still starting or without a metric.
//! - [`observer`]: [`Observer`], which reads every metric of one policy for a tick.
//! - [`usage`]: per-container CPU and memory usage and OOM kills for the vertical part, its
//!   recommenders, and [`usage::VerticalTick`], one daemon tick of the vertical part.
//!
//! A source never invents a value: a failed, empty, NaN or infinite reading becomes
//! [`Sample::NoData`](crate::engine::Sample::NoData) with its reason.

pub mod history;
pub mod observer;
pub mod pods;
pub mod prometheus;
pub mod usage;

pub use observer::{MetricReading, ObserveError, Observer, TargetState};
pub use prometheus::{PrometheusClient, PrometheusConfig, PrometheusError};

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
