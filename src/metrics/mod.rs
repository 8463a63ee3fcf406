//! Metric sources: the **observe** step's adapters, which turn queries into
//! [`engine::Sample`](crate::engine::Sample)s.
//!
//! - [`prometheus`]: the Prometheus HTTP API client (also for Thanos, Mimir and VictoriaMetrics).
//!
//! A source never invents a value: a failed, empty, NaN or infinite reading becomes
//! [`Sample::NoData`](crate::engine::Sample::NoData) with its reason.

pub mod prometheus;

pub use prometheus::{PrometheusClient, PrometheusConfig, PrometheusError};
