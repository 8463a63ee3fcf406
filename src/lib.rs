//! setpoint: a metrics-driven autoscaler for Kubernetes.
//!
//! # Layout
//!
//! - [`policy`]: the ScalingPolicy file model, validation with `file:line:column` errors, loading.
//! - [`engine`]: the pure core. [`engine::tick`] takes (policy, state, observation, now) and
//!   returns a [`engine::Decision`] with its [`engine::Explanation`]. No clock, no I/O.
//! - [`forecast`]: pure time-series code for the predictive policy (seasonality, Holt-Winters).
//! - [`metrics`]: metric sources for the observe step: the Prometheus HTTP API client.
//! - [`daemon`]: the in-cluster daemon: its metrics and its admin HTTP server.
//! - [`sim`]: the simulator: a virtual clock, a trace-driven service model and its report
//!   (JSON, a table, an SVG plot), driving the same [`engine::tick`] as the daemon.
//! - [`cli`]: the `setpoint` commands.
//!
//! # Data flow of one tick
//!
//! ```text
//! policies/*.yaml ──load+validate──► Policy
//!                                      │
//!  observe ──► decide ──► govern ──► act ──► record
//!  (I/O)       (pure)     (pure)     (I/O)   (I/O)
//! ```
//!
//! Dependencies point one way: engine ← policy ← sim ← cli ← main.
#![warn(missing_docs)]

pub mod cli;
pub mod daemon;
pub mod engine;
pub mod forecast;
pub mod metrics;
pub mod policy;
pub mod sim;
