//! setpoint: a metrics-driven autoscaler for Kubernetes.
//!
//! # Layout
//!
//! The architecture lives here, once. Each top-level module is a room; a room may import only
//! the rooms its row names (`tests/layout.rs` holds every `crate::` path of `src/` to these
//! rules, and fails on a break):
//!
//! | room | what it is | may import |
//! |---|---|---|
//! | `text` | a leaf: an error chain on one line, durations written as text | nothing |
//! | `forecast` | pure time-series code for the predictive policy (seasonality, Holt-Winters) | `text` |
//! | `engine` | the pure core: observation, policies, governor, HPA pod arithmetic, vertical recommender and planner. No clock, no I/O | `forecast`, `text` |
//! | `policy` | the ScalingPolicy model, validation with `file:line:column` (or the object and field), loading, the CRD generated from the model | `engine`, `forecast`, `text`, and of `prometheus` only its config type ([`prometheus::PrometheusConfig`]) |
//! | `prometheus` | adapter: the Prometheus HTTP API client, its config, range history | `engine`, `text` |
//! | `cluster` | adapter: kube-rs: the watch cache (pods, apps targets), `/scale`, pods, metrics.k8s.io, resize, template patch, Events, annotations, status, the Lease, the watch of ScalingPolicy objects; the one mapping of kube-rs errors | `engine`, `policy`, `text` |
//! | `tick` | one tick of one policy: observe, decide, govern, plan, act ([`tick::run`]) | `engine`, `forecast`, `policy`, `prometheus`, `cluster`, `text` |
//! | `sim` | the simulator: virtual clock, service model, reports | `engine`, `forecast`, `policy`, `text` |
//! | `backtest` | a policy replayed over Prometheus history through the simulator | `engine`, `forecast`, `policy`, `prometheus`, `sim`, `text` |
//! | `daemon` | `setpoint run`: scheduling, restart state, reload, admin server, telemetry | all below but `sim`, `backtest`: `engine`, `forecast`, `policy`, `prometheus`, `cluster`, `tick`, `text` |
//! | `cli` | one thin file per command | all below |
//!
//! So: `engine` and `forecast` import nothing above them; the two adapters (`prometheus`,
//! `cluster`) never import each other, nor `tick`; only `cluster` names kube-rs types, so a
//! test or the simulator stands in for Kubernetes by implementing [`cluster::Cluster`];
//! `sim` never imports `cluster`, `tick` or `daemon`; `daemon` and `cli` are on top.
//!
//! Where the pod metrics live: reading metrics.k8s.io is a [`cluster::Cluster`] call; scraping
//! the pods' `/metrics` over HTTP and applying the HPA's rules to the pods as read is
//! [`tick::pods`], since it needs the cluster's pods and the policy's queries together; the
//! arithmetic of those rules is pure ([`engine::hpa`]).
//!
//! # Data flow of one tick
//!
//! ```text
//! ScalingPolicy objects (watched) ─┐
//! policies/*.yaml (files)  ────────┴─load+validate──► Policy
//!                                                       │
//!  observe ──► decide ──► govern ──► plan ──► act ──► record
//!  (read)      (pure)     (pure)     (pure)   (write)  (publish)
//!  └──────────────── tick::run (one call) ────────────┘
//! ```
//!
//! [`tick::run`] is that one call: the daemon's worker calls it on a schedule, with a
//! [`tick::Hold`] from its Lease and `--dry-run`, and then records (`/recommendations`, its
//! `/metrics`, Events, the restart state on the target, the status of a ScalingPolicy object);
//! `recommend` calls it once with [`tick::Hold::ReadOnly`] and prints. [`tick::TickState`]
//! owns what a policy remembers between ticks. The governor commits an action only once the tick applied it. `simulate` and
//! `backtest` drive the same engine ([`engine::tick`]) on a virtual clock.
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
