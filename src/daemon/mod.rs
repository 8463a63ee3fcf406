//! The in-cluster daemon (`setpoint run`): control loop, leader election, actuators, the admin
//! HTTP server, reload and shutdown.
//!
//! - [`telemetry`]: the daemon's own metrics on one prometheus-client registry, with bounded
//!   label values.
//! - [`admin`]: the admin HTTP server (`/healthz`, `/readyz`, `/metrics`, `/recommendations`) and
//!   the [`admin::AdminState`] handle that the control loop updates.
//! - [`lease`]: leader election on a `coordination.k8s.io` Lease ([`lease::elect`]): a flag that
//!   is true while this replica may act, an error when the election fails for good, and a
//!   release on shutdown.

pub mod admin;
pub mod lease;
pub mod telemetry;
