//! The vertical planner: from the recommendations and the pods as they are, the one next step.
//!
//! [`plan`] is a pure function of ([`PlanSettings`], the recommendation per container,
//! the pods, a small [`PlanState`], now). It returns a [`VerticalPlan`]: one
//! [`VerticalAction`] (nothing, with the reason; resize one pod in place; patch the pod
//! template; or report a problem that needs a person), plus a row per container and resource
//! for explanations.
//!
//! # Rules
//!
//! - **When.** A request changes only when [`should_update`] says so: it is outside
//!   [lower, upper], or it has been `minChange.difference` off the target for
//!   `minChange.after` (the time since it first differed is kept in [`PlanState`], per pod,
//!   container and resource). A container OOM-killed within the memory peak window whose memory
//!   request is below the target (which the recommender's OOM bump raised) changes at once, even
//!   inside the bounds, and before any other pod.
//! - **To what.** The target, rounded to whole millicores (CPU) or MiB (memory) while staying
//!   within the policy's [min, max]: no planned request ever leaves [min, max].
//! - **Limits.** `limits: proportional`: a limit keeps its ratio to the request
//!   (new limit = new request × old limit / old request); a container without a limit gets none.
//!   `limits: requestsOnly`: limits stay; a request is clamped to its limit (a request above its
//!   limit is invalid), and said so; when the limit is below the policy's min, nothing changes.
//! - **QoS class never changes.** BestEffort pods are never given requests. Guaranteed pods keep
//!   requests equal to limits (proportional limits do this by themselves; with `requestsOnly` a
//!   Guaranteed pod cannot change and is left alone). A Burstable pod that would become
//!   Guaranteed (every container's requests equal to its limits) is kept Burstable by one step:
//!   its limit one step above the request (proportional) or the request one step below the
//!   limit (requestsOnly).
//! - **Only what has a request.** A container without a request for a resource is left alone
//!   for that resource (in place, adding a request is not a resize; in the template, it would
//!   change what the policy was asked to right-size).
//! - **One at a time (inPlace).** While any pod has a resize in flight (condition
//!   `PodResizeInProgress`, `PodResizePending` with reason Deferred for less than
//!   `resize.deferredTimeout`, or spec resources that differ from the status' actual resources
//!   without a condition yet), nothing else is resized. Otherwise the pod furthest outside its
//!   bounds (relative distance, then distance from the target, then name) is resized.
//! - **Fallback (inPlace).** A resize that is Infeasible, Deferred for `deferredTimeout` or more,
//!   or that would restart a container (resizePolicy `RestartContainer`) while
//!   `resize.allowRestart` is false: with `resize.fallback: rollout`, the pod template is
//!   patched instead; with `report`, it is reported and nothing is patched. A resize that
//!   restarts a container with `allowRestart` true (the default) goes ahead, noted.
//! - **Memory limits the server will not lower (inPlace).** Kubernetes 1.33 refuses an in-place
//!   resize that lowers the memory limit of a container whose memory resizePolicy is
//!   `NotRequired` (1.34 allows it). Once the API server has refused one (the act step records
//!   it in [`PlanState::memory_limit_decrease_refused`] and plans again), every resize that
//!   lowers such a limit takes the fallback at once, like an Infeasible one, for as long as the
//!   state lives: no tick repeats the doomed attempt. Other resizes still go in place.
//! - **Rollouts.** While the pods belong to more than one template revision
//!   (`pod-template-hash` or `controller-revision-hash`), or within [`ROLLOUT_GRACE`] of the last
//!   template patch, nothing is done: the rollout is under way.
//! - **Rollout mode** patches the template with the target of every container and resource
//!   that any running pod needs changed.
//!
//! # Files
//!
//! - `settings.rs`: [`PlanSettings`] and the recommendation per container.
//! - `state.rs`: [`PlanState`], what the planner remembers between ticks.
//! - `action.rs`: [`VerticalPlan`] and [`VerticalAction`], and their rendering in words.
//! - `plan.rs`: [`plan`]: the `minChange.after` clocks, what each pod needs, the rows.
//! - `step.rs`: which step: rollouts under way, update modes, one resize at a time, fallbacks.
//! - `changes.rs`: to what: new requests and limits under the limits and QoS rules.
//!
//! The pods come as [`crate::engine::pod`] models.

mod action;
mod changes;
mod plan;
mod settings;
mod state;
mod step;
#[cfg(test)]
mod tests;

pub use action::{ContainerChange, PlanRow, VerticalAction, VerticalPlan, describe, show};
pub use changes::representable;
pub use plan::{ROLLOUT_GRACE, plan};
pub use settings::{ContainerRecommendation, LimitsMode, PlanSettings, ResizeFallback, UpdateMode};
pub use state::{PlanState, ResizeRefusal};
