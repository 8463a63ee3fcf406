//! The in-cluster daemon (`setpoint run`): control loop, leader election, actuators, the admin
//! HTTP server, reload and shutdown.
//!
//! - [`telemetry`]: the daemon's own metrics on one prometheus-client registry, with bounded
//!   label values.
//! - [`admin`]: the admin HTTP server (`/healthz`, `/readyz`, `/metrics`, `/recommendations`) and
//!   the [`admin::AdminState`] handle that the control loop updates.

pub mod admin;
pub mod telemetry;
