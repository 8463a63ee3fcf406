//! ScalingPolicy files and objects: parsing, validation with `file:line:column` errors (or the
//! object and field, for an object), loading folders, and the CRD.
//!
//! [`parse`] turns the text of one file into a validated [`Policy`] or a [`PolicyError`] listing
//! every problem found, each with its line, column and field path. It never panics, whatever the
//! input.
//!
//! # Where things live
//!
//! - [`model`]: the file as written (serde types, `deny_unknown_fields`, [`serde_saphyr::Spanned`]
//!   values for the fields validation points at). A new field of the file goes here first.
//! - `validate/`: the checks and defaults that turn the model into a [`Policy`]: `mod.rs` the
//!   top of the spec (apiVersion, kind, name, target, interval, prometheus, the
//!   horizontal/vertical feedback loop), `horizontal.rs` (replicas, metrics, tolerance,
//!   scaleUp/scaleDown, onMetricError, the algorithm), `vertical.rs` (spec.vertical).
//! - `validated.rs`: the validated [`Policy`] the engine and the drivers use.
//! - `load.rs`: [`parse`], [`load`], [`files`] and [`load_all`]: text and folders in, policies
//!   or errors out.
//! - `object.rs`: [`from_object`]: a ScalingPolicy object (JSON, as the API server returns it)
//!   validated as a file is, its errors naming the object and the field.
//! - [`crd`]: the ScalingPolicy CustomResourceDefinition, its spec schema generated from
//!   [`model`] (`setpoint crd`).
//! - `error.rs`: [`Problem`] and [`PolicyError`], rendered as `file:line:column: field: message`
//!   (for an object, `ScalingPolicy <namespace>/<name>: field: message`).
//! - [`status`]: the `status` of a ScalingPolicy object (conditions, counts, last decision,
//!   forecast, vertical recommendation), its schema and its size bounds.

pub mod crd;
mod error;
mod load;
pub mod model;
mod object;
mod shared;
pub mod status;
mod validate;
mod validated;

pub use error::{PolicyError, Problem};
pub use load::{files, load, load_all, parse};
pub use model::{LimitsMode, Mode, PodsMetricKind, ResizeFallback, TargetRef, UpdateMode};
pub use object::{from_object, object_name, source_name};
pub use shared::shared_target;
pub use validated::{
    MetricQuery, ObjectRef, PodsQuery, Policy, USAGE_PLACEHOLDERS, UsageQueries, VerticalSpec,
    placeholders,
};

/// The only apiVersion understood.
pub const API_VERSION: &str = "setpoint.dev/v1alpha1";
/// The only kind understood.
pub const KIND: &str = "ScalingPolicy";
/// Largest replica count accepted for `max`.
pub const MAX_REPLICAS: u32 = 100_000;
