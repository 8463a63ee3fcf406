//! setpoint: a metrics-driven autoscaler for Kubernetes.
//!
//! # Layout
//!
//! - [`policy`]: the ScalingPolicy file model, validation with `file:line:column` errors, loading.
//! - [`engine`]: the pure core. [`engine::tick`] takes (policy, state, observation, now) and
//!   returns a [`engine::Decision`] with its [`engine::Explanation`]. No clock, no I/O.
//! - [`forecast`]: pure time-series code for the predictive policy (seasonality, Holt-Winters).
//! - [`metrics`]: metric sources for the observe step: the Prometheus HTTP API client, pod
//!   metrics (metrics.k8s.io and scraping pods' `/metrics`, with the HPA's rules for pods that
//!   are not ready or have no metric), and the [`metrics::Observer`] that reads every metric of a
//!   policy for one tick; per-container usage for the vertical part ([`metrics::usage`]).
//! - [`cluster`]: the [`cluster::Cluster`] seam over Kubernetes (kube-rs): a target's `/scale`,
//!   its pods, their metrics.k8s.io usage, in-place resize and pod-template patches; and
//!   [`cluster::vertical::apply_vertical`], the vertical part's act step.
//! - [`daemon`]: the in-cluster daemon: its metrics and its admin HTTP server.
//! - [`sim`]: the simulator: a virtual clock, a trace-driven service model and its report
//!   (JSON, a table, an SVG plot), driving the same [`engine::tick`] as the daemon.
//! - [`backtest`]: replays a policy's queries over a past range of Prometheus history through the
//!   simulator's service model.
//! - [`cli`]: the `setpoint` commands (`check`, `simulate`, `recommend`, `backtest`).
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
//! Dependencies point one way: engine ← policy ← adapters (metrics, cluster) ← sim, backtest ←
//! cli ← main.
#![warn(missing_docs)]

pub mod backtest;
pub mod cli;
pub mod cluster;
pub mod daemon;
pub mod engine;
pub mod forecast;
pub mod policy;
pub mod prometheus;
pub mod sim;
mod text;
pub mod tick;
