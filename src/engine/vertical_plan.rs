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

use super::Seconds;
use super::vertical::{MIB, Recommended, Resource, VerticalParams, should_update};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// After a template patch, nothing more is done for this long: the workload controller needs a
/// moment to start the rollout (after that, the pods' template revisions show it).
pub const ROLLOUT_GRACE: Seconds = 60.0;

/// How recommendations are applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum UpdateMode {
    /// Recommend only.
    #[default]
    Off,
    /// The pods/resize subresource, one pod at a time.
    InPlace,
    /// Patch the workload's pod template (a rolling update applies it).
    Rollout,
}

/// Whether limits follow requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum LimitsMode {
    /// Limits keep their ratio to requests.
    #[default]
    Proportional,
    /// Only requests change.
    RequestsOnly,
}

/// Fallback for a resize that cannot happen in place.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ResizeFallback {
    /// Patch the pod template instead.
    Rollout,
    /// Only report it.
    #[default]
    Report,
}

/// CPU (cores) and memory (bytes) amounts; None where not set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Amounts {
    /// Cores.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    /// Bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<f64>,
}

impl Amounts {
    /// The amount of one resource.
    pub fn get(&self, r: Resource) -> Option<f64> {
        match r {
            Resource::Cpu => self.cpu,
            Resource::Memory => self.memory,
        }
    }

    /// Sets the amount of one resource.
    pub fn set(&mut self, r: Resource, v: Option<f64>) {
        match r {
            Resource::Cpu => self.cpu = v,
            Resource::Memory => self.memory = v,
        }
    }

    /// True when neither is set.
    pub fn is_empty(&self) -> bool {
        self.cpu.is_none() && self.memory.is_none()
    }
}

/// A container's `resizePolicy` for one resource.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartPolicy {
    /// Resized without a restart (the default).
    #[default]
    NotRequired,
    /// The container restarts to apply a resize of this resource.
    RestartContainer,
}

/// A container's `resizePolicy`, per resource.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResizePolicy {
    /// For CPU.
    pub cpu: RestartPolicy,
    /// For memory.
    pub memory: RestartPolicy,
}

impl ResizePolicy {
    /// The policy of one resource.
    pub fn get(&self, r: Resource) -> RestartPolicy {
        match r {
            Resource::Cpu => self.cpu,
            Resource::Memory => self.memory,
        }
    }
}

/// How a container last ended (`status.containerStatuses[].lastState.terminated`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Termination {
    /// `reason`, such as `OOMKilled`, `Error` or `Completed`.
    pub reason: String,
    /// `finishedAt`, Unix seconds.
    pub finished_at: Option<Seconds>,
    /// `exitCode`.
    pub exit_code: i32,
}

/// One container's resources as a pod has them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerResources {
    /// The container's name.
    pub name: String,
    /// `spec.containers[].resources.requests`: the desired requests.
    pub requests: Amounts,
    /// `spec.containers[].resources.limits`: the desired limits.
    pub limits: Amounts,
    /// `status.containerStatuses[].resources.requests`: what the kubelet has applied (None when
    /// the status does not say).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual_requests: Option<Amounts>,
    /// `status.containerStatuses[].resources.limits`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual_limits: Option<Amounts>,
    /// `spec.containers[].resizePolicy`.
    pub resize_policy: ResizePolicy,
    /// `status.containerStatuses[].lastState.terminated`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_termination: Option<Termination>,
    /// `status.containerStatuses[].restartCount`.
    pub restart_count: u32,
}

impl ContainerResources {
    /// Whether the spec's request or limit of `r` differs from the actual one the status
    /// reports (None when the status reports none).
    pub fn differs_from_actual_in(&self, r: Resource) -> Option<bool> {
        if self.actual_requests.is_none() && self.actual_limits.is_none() {
            return None;
        }
        let differ = |x: Option<f64>, actual: Option<Amounts>| match (x, actual.map(|a| a.get(r))) {
            (_, None) => false,
            (Some(x), Some(Some(y))) => (x - y).abs() > 0.01 * x.abs().max(y.abs()) + 1e-9,
            (None, Some(None)) => false,
            _ => true,
        };
        Some(
            differ(self.requests.get(r), self.actual_requests)
                || differ(self.limits.get(r), self.actual_limits),
        )
    }

    /// Whether the spec differs from the actual resources the status reports (false when the
    /// status reports none).
    pub fn differs_from_actual(&self) -> bool {
        [Resource::Cpu, Resource::Memory]
            .into_iter()
            .any(|r| self.differs_from_actual_in(r) == Some(true))
    }
}

/// A pod's QoS class (`status.qosClass`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QosClass {
    /// Every container has CPU and memory limits, and requests equal to them.
    Guaranteed,
    /// Anything between.
    Burstable,
    /// No container has a request or a limit.
    BestEffort,
}

impl QosClass {
    /// The class by its name in `status.qosClass`.
    pub fn parse(text: &str) -> Option<QosClass> {
        match text {
            "Guaranteed" => Some(QosClass::Guaranteed),
            "Burstable" => Some(QosClass::Burstable),
            "BestEffort" => Some(QosClass::BestEffort),
            _ => None,
        }
    }

    /// The class Kubernetes gives a pod with these containers' CPU and memory requests and
    /// limits (a request left out defaults to its limit, as the API server does).
    pub fn of(containers: &[ContainerResources]) -> QosClass {
        let none = containers
            .iter()
            .all(|c| c.requests.is_empty() && c.limits.is_empty());
        if none {
            return QosClass::BestEffort;
        }
        let guaranteed = containers.iter().all(|c| {
            [Resource::Cpu, Resource::Memory].into_iter().all(|r| {
                match (c.requests.get(r), c.limits.get(r)) {
                    (Some(req), Some(lim)) => req == lim,
                    (None, Some(_)) => true,
                    _ => false,
                }
            })
        });
        if guaranteed {
            QosClass::Guaranteed
        } else {
            QosClass::Burstable
        }
    }
}

impl fmt::Display for QosClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        })
    }
}

/// Where a pod's in-place resize stands, from its conditions `PodResizePending` (reason
/// Infeasible or Deferred) and `PodResizeInProgress`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum ResizeStatus {
    /// No resize under way.
    #[default]
    None,
    /// The kubelet is applying it.
    InProgress {
        /// Since when, Unix seconds.
        since: Option<Seconds>,
        /// The condition's message.
        message: Option<String>,
    },
    /// The node cannot fit it now, and may later. A pending resize with another reason is
    /// taken as deferred.
    Deferred {
        /// Since when, Unix seconds.
        since: Option<Seconds>,
        /// The condition's message.
        message: Option<String>,
    },
    /// The node can never fit it.
    Infeasible {
        /// Since when, Unix seconds.
        since: Option<Seconds>,
        /// The condition's message.
        message: Option<String>,
    },
}

impl fmt::Display for ResizeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, message) = match self {
            ResizeStatus::None => return f.write_str("no resize under way"),
            ResizeStatus::InProgress { message, .. } => ("in progress", message),
            ResizeStatus::Deferred { message, .. } => ("deferred", message),
            ResizeStatus::Infeasible { message, .. } => ("infeasible", message),
        };
        f.write_str(what)?;
        match message {
            Some(m) if !m.is_empty() => write!(f, " ({m})"),
            _ => Ok(()),
        }
    }
}

/// One pod as the planner sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanPod {
    /// The pod's name.
    pub name: String,
    /// Running and not shutting down: a pod that can be resized.
    pub active: bool,
    /// Shutting down (deletion timestamp set).
    pub deleting: bool,
    /// `status.qosClass` (None: computed from the containers).
    pub qos_class: Option<QosClass>,
    /// The template revision it was made from (`pod-template-hash` or
    /// `controller-revision-hash` label).
    pub revision: Option<String>,
    /// Its in-place resize, if any.
    pub resize: ResizeStatus,
    /// Its regular containers.
    pub containers: Vec<ContainerResources>,
}

impl PlanPod {
    fn qos(&self) -> QosClass {
        self.qos_class
            .unwrap_or_else(|| QosClass::of(&self.containers))
    }

    fn container(&self, name: &str) -> Option<&ContainerResources> {
        self.containers.iter().find(|c| c.name == name)
    }
}

/// What the planner needs of the policy's vertical part.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanSettings {
    /// Containers to right-size.
    pub containers: Vec<String>,
    /// Resources to right-size.
    pub resources: Vec<Resource>,
    /// The recommender's settings (min, max and the update rule come from here).
    pub params: VerticalParams,
    /// How recommendations are applied.
    pub update: UpdateMode,
    /// Whether limits follow requests.
    pub limits: LimitsMode,
    /// How long a resize may stay Deferred, seconds.
    pub deferred_timeout: Seconds,
    /// What to do when a resize cannot happen in place.
    pub fallback: ResizeFallback,
    /// Whether an in-place resize may restart a container (resizePolicy RestartContainer).
    pub allow_restart: bool,
}

/// The recommendation for one container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRecommendation {
    /// The container's name.
    pub container: String,
    /// For CPU (None: no data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Recommended>,
    /// For memory (None: no data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<Recommended>,
}

impl ContainerRecommendation {
    /// The recommendation of one resource.
    pub fn get(&self, r: Resource) -> Option<&Recommended> {
        match r {
            Resource::Cpu => self.cpu.as_ref(),
            Resource::Memory => self.memory.as_ref(),
        }
    }
}

fn recommendation<'a>(
    recs: &'a [ContainerRecommendation],
    container: &str,
    r: Resource,
) -> Option<&'a Recommended> {
    recs.iter()
        .find(|c| c.container == container)
        .and_then(|c| c.get(r))
}

/// An in-place resize the API server refused because it lowered a memory limit (Kubernetes
/// 1.33 refuses that for a container whose memory resizePolicy is `NotRequired`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResizeRefusal {
    /// The pod.
    pub pod: String,
    /// The containers whose memory limit the server would not lower.
    pub containers: Vec<String>,
    /// The server's message.
    pub message: String,
    /// When, Unix seconds.
    pub at: Seconds,
}

impl fmt::Display for ResizeRefusal {
    /// `pod web-a container app: Pod "web-a" is invalid: ...`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = if self.containers.len() == 1 { "" } else { "s" };
        write!(
            f,
            "pod {} container{s} {}: {}",
            self.pod,
            self.containers.join(", "),
            self.message
        )
    }
}

/// What the planner remembers between ticks. Serializable, so that a driver can keep it across
/// restarts; losing it restarts the `minChange.after` clocks and forgets a refused memory-limit
/// decrease (the next one is tried in place once more).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanState {
    /// Since when a request (key `pod/container/resource`) has differed from its target by more
    /// than `minChange.difference`.
    pub differs_since: BTreeMap<String, Seconds>,
    /// When the pod template was last patched.
    pub template_patched_at: Option<Seconds>,
    /// The last in-place resize the API server refused because it lowered a memory limit: from
    /// then on, a resize that lowers a memory limit (of a container whose memory resizePolicy is
    /// `NotRequired`) takes the fallback without trying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit_decrease_refused: Option<ResizeRefusal>,
}

impl PlanState {
    /// Records a successful template patch at `now`.
    pub fn template_patched(&mut self, now: Seconds) {
        self.template_patched_at = Some(now);
    }

    /// Records that the API server refused an in-place resize because it lowered a memory
    /// limit.
    pub fn resize_refused(&mut self, refusal: ResizeRefusal) {
        self.memory_limit_decrease_refused = Some(refusal);
    }
}

/// New requests and limits for one container: only the resources that change are set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerChange {
    /// The container's name.
    pub container: String,
    /// New requests.
    pub requests: Amounts,
    /// New limits.
    pub limits: Amounts,
}

/// The planner's next step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum VerticalAction {
    /// Nothing to do.
    Nothing {
        /// Why.
        reason: String,
    },
    /// Resize one pod in place.
    Resize {
        /// The pod.
        pod: String,
        /// The new values.
        changes: Vec<ContainerChange>,
        /// Why, in words.
        reason: String,
    },
    /// Patch the workload's pod template.
    PatchTemplate {
        /// The new values.
        changes: Vec<ContainerChange>,
        /// Why, in words.
        reason: String,
    },
    /// Something a person has to look at; nothing is changed.
    Report {
        /// What.
        reason: String,
    },
}

impl VerticalAction {
    /// Whether the action writes to the cluster.
    pub fn writes(&self) -> bool {
        matches!(
            self,
            VerticalAction::Resize { .. } | VerticalAction::PatchTemplate { .. }
        )
    }
}

impl fmt::Display for VerticalAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerticalAction::Nothing { reason } => write!(f, "nothing: {reason}"),
            VerticalAction::Resize {
                pod,
                changes,
                reason,
            } => write!(
                f,
                "resize pod {pod} in place: {}; {reason}",
                describe(changes)
            ),
            VerticalAction::PatchTemplate { changes, reason } => {
                write!(f, "patch the pod template: {}; {reason}", describe(changes))
            }
            VerticalAction::Report { reason } => write!(f, "report: {reason}"),
        }
    }
}

/// The changes in words: `app cpu request 250m limit 500m, app memory request 512Mi`.
pub fn describe(changes: &[ContainerChange]) -> String {
    let mut parts = Vec::new();
    for c in changes {
        for r in [Resource::Cpu, Resource::Memory] {
            let (req, lim) = (c.requests.get(r), c.limits.get(r));
            if req.is_none() && lim.is_none() {
                continue;
            }
            let mut s = format!("{} {}", c.container, r.as_str());
            if let Some(v) = req {
                s += &format!(" request {}", show(r, v));
            }
            if let Some(v) = lim {
                s += &format!(" limit {}", show(r, v));
            }
            parts.push(s);
        }
    }
    parts.join(", ")
}

/// A quantity for messages, rounded for reading: `250m`, `2`, `0.5m`, `512Mi`, `2Gi`, `900Ki`.
pub fn show(r: Resource, v: f64) -> String {
    match r {
        Resource::Cpu => {
            let m = v * 1000.0;
            if m >= 1.0 || m == 0.0 {
                let m = m.round();
                if m % 1000.0 == 0.0 {
                    format!("{}", m / 1000.0)
                } else {
                    format!("{m}m")
                }
            } else {
                format!("{:.2}m", m)
            }
        }
        Resource::Memory => {
            let mi = v / MIB;
            if mi >= 1024.0 && (mi / 1024.0 - (mi / 1024.0).round()).abs() < 0.5 / 1024.0 {
                format!("{}Gi", (mi / 1024.0).round())
            } else if mi >= 1.0 || v == 0.0 {
                format!("{}Mi", mi.round())
            } else {
                format!("{}Ki", (v / 1024.0).round())
            }
        }
    }
}

/// One container and resource, for explanations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanRow {
    /// The container.
    pub container: String,
    /// The resource.
    pub resource: Resource,
    /// The lowest current request among the running pods (None: none has one).
    pub current_min: Option<f64>,
    /// The highest.
    pub current_max: Option<f64>,
    /// The recommendation (None: no usage data yet).
    pub recommended: Option<Recommended>,
    /// Pods whose request should change.
    pub pods_to_change: u32,
    /// In words: within the bounds, below or above them, off target for long, no data.
    pub verdict: String,
    /// The request the action sets, when it changes this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planned: Option<f64>,
}

/// What the planner decided, with the numbers behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerticalPlan {
    /// The next step.
    pub action: VerticalAction,
    /// One row per container and resource.
    pub rows: Vec<PlanRow>,
    /// Everything else worth saying (a clamp, a restart, a skipped container, ...).
    pub notes: Vec<String>,
}

/// A value in steps of the resource (millicores, or MiB).
fn units(r: Resource, v: f64) -> f64 {
    match r {
        Resource::Cpu => v * 1000.0,
        Resource::Memory => v / MIB,
    }
}

/// A whole number of steps as a value (cores, or bytes).
fn on_step(r: Resource, n: f64) -> f64 {
    match r {
        Resource::Cpu => n / 1000.0,
        Resource::Memory => n * MIB,
    }
}

/// `v` on the resource's step (a millicore, a MiB), within [min, max]: the nearest step if it
/// is within, else the first step above min or the last below max; when no step is within,
/// `v` clamped.
pub fn representable(r: Resource, v: f64, min: f64, max: f64) -> f64 {
    let within = |x: f64| x >= min && x <= max;
    let candidates = [
        on_step(r, units(r, v).round()),
        on_step(r, (units(r, min) - 1e-9).ceil()),
        on_step(r, (units(r, max) + 1e-9).floor()),
    ];
    candidates
        .into_iter()
        .find(|x| within(*x))
        .unwrap_or_else(|| v.clamp(min, max))
}

fn bounds(p: &VerticalParams, r: Resource) -> (f64, f64) {
    match r {
        Resource::Cpu => (p.cpu.min, p.cpu.max),
        Resource::Memory => (p.memory.min, p.memory.max),
    }
}

fn key(pod: &str, container: &str, r: Resource) -> String {
    format!("{pod}/{container}/{}", r.as_str())
}

/// How far a request is from what it should be.
#[derive(Debug, Clone, Copy, Default, PartialEq, PartialOrd)]
struct Distance {
    /// Relative distance outside [lower, upper] (0 inside).
    outside: f64,
    /// Relative distance from the target.
    off_target: f64,
}

fn distance(current: f64, rec: &Recommended) -> Distance {
    let outside = if current < rec.lower {
        (rec.lower - current) / rec.lower.max(f64::MIN_POSITIVE)
    } else if current > rec.upper {
        (current - rec.upper) / rec.upper.max(f64::MIN_POSITIVE)
    } else {
        0.0
    };
    Distance {
        outside,
        off_target: (current - rec.target).abs() / rec.target.max(f64::MIN_POSITIVE),
    }
}

/// Why a request should change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// The container was OOM-killed lately and its memory request is below the target.
    Oom,
    /// Below the lower bound.
    Below,
    /// Above the upper bound.
    Above,
    /// Off the target for `minChange.after`.
    Stale,
}

/// The containers and resources of one pod that should change.
#[derive(Debug, Clone, Default)]
struct PodNeeds {
    wanted: Vec<(String, Resource)>,
    kinds: Vec<Need>,
    distance: Distance,
    why: Vec<String>,
}

/// Whether a container was OOM-killed within `window` of `now` (a kill without a time counts).
fn oom_killed(c: &ContainerResources, window: Seconds, now: Seconds) -> Option<Option<Seconds>> {
    c.last_termination
        .as_ref()
        .filter(|t| t.reason == "OOMKilled")
        .filter(|t| t.finished_at.is_none_or(|f| now - f < window))
        .map(|t| t.finished_at)
}

fn needs(
    s: &PlanSettings,
    recs: &[ContainerRecommendation],
    pod: &PlanPod,
    state: &PlanState,
    now: Seconds,
) -> PodNeeds {
    let mut out = PodNeeds::default();
    for c in &s.containers {
        let Some(container) = pod.container(c) else {
            continue;
        };
        for &r in &s.resources {
            let (Some(rec), Some(current)) =
                (recommendation(recs, c, r), container.requests.get(r))
            else {
                continue;
            };
            let since = state.differs_since.get(&key(&pod.name, c, r)).copied();
            let oom = if r == Resource::Memory && current < rec.target - MIB {
                oom_killed(container, s.params.memory_peak_window, now)
            } else {
                None
            };
            if let Some(at) = oom {
                out.why.push(format!(
                    "{c} was OOM-killed {} ago with a memory request of {}, below the target {}",
                    match at {
                        Some(t) => humantime::format_duration(std::time::Duration::from_secs(
                            (now - t).max(0.0) as u64,
                        ))
                        .to_string(),
                        None => "a while".into(),
                    },
                    show(r, current),
                    show(r, rec.target)
                ));
                out.wanted.push((c.clone(), r));
                out.kinds.push(Need::Oom);
                // Before anything else: an OOM kill is an outage.
                let d = Distance {
                    outside: 1.0 + distance(current, rec).off_target,
                    off_target: distance(current, rec).off_target,
                };
                if d > out.distance {
                    out.distance = d;
                }
                continue;
            }
            if !should_update(&s.params, current, rec, since, now) {
                continue;
            }
            let d = distance(current, rec);
            out.kinds.push(if current < rec.lower {
                Need::Below
            } else if current > rec.upper {
                Need::Above
            } else {
                Need::Stale
            });
            out.why.push(if d.outside > 0.0 {
                format!(
                    "{c} {} request {} is {} [{}, {}]",
                    r.as_str(),
                    show(r, current),
                    if current < rec.lower {
                        "below"
                    } else {
                        "above"
                    },
                    show(r, rec.lower),
                    show(r, rec.upper)
                )
            } else {
                format!(
                    "{c} {} request {} has been over {:.0} % off the target {} for {}",
                    r.as_str(),
                    show(r, current),
                    s.params.stale_difference * 100.0,
                    show(r, rec.target),
                    humantime::format_duration(std::time::Duration::from_secs(
                        (now - since.unwrap_or(now)).max(0.0) as u64
                    ))
                )
            });
            out.wanted.push((c.clone(), r));
            if d > out.distance {
                out.distance = d;
            }
        }
    }
    out
}

/// New values for the `wanted` containers and resources of `pod`, under the limits and QoS
/// rules. Notes say what was clamped, nudged or left alone. With `whole`, a wanted resource is
/// written even when the pod already has that value (for a template, which may not), with its
/// limit.
fn changes_for(
    s: &PlanSettings,
    recs: &[ContainerRecommendation],
    pod: &PlanPod,
    wanted: &[(String, Resource)],
    whole: bool,
    notes: &mut Vec<String>,
) -> Vec<ContainerChange> {
    let qos = pod.qos();
    if qos == QosClass::BestEffort {
        notes.push(format!(
            "pod {} is BestEffort: it is never given requests",
            pod.name
        ));
        return Vec::new();
    }
    // The pod's containers after the change, to check the QoS class.
    let mut after: Vec<ContainerResources> = pod.containers.clone();
    let mut changed: Vec<(usize, Resource)> = Vec::new();
    for (c, r) in wanted {
        let r = *r;
        let Some(i) = after.iter().position(|x| &x.name == c) else {
            continue;
        };
        let (Some(rec), Some(current)) = (recommendation(recs, c, r), after[i].requests.get(r))
        else {
            continue;
        };
        if current <= 0.0 {
            notes.push(format!(
                "pod {}: {c} has a zero {} request: left alone",
                pod.name,
                r.as_str()
            ));
            continue;
        }
        let (min, max) = bounds(&s.params, r);
        let mut request = representable(r, rec.target, min, max);
        let old_limit = after[i].limits.get(r);
        let limit = match (s.limits, old_limit) {
            (_, None) => None,
            (LimitsMode::Proportional, Some(l)) if (l - current).abs() <= f64::EPSILON * l => {
                // requests == limits: keep them equal.
                Some(request)
            }
            (LimitsMode::Proportional, Some(l)) => {
                Some(on_step(r, units(r, request * l / current).round()).max(request))
            }
            (LimitsMode::RequestsOnly, Some(l)) => {
                if qos == QosClass::Guaranteed {
                    notes.push(format!(
                        "pod {} is Guaranteed and limits are requestsOnly: its {c} {} request \
                         cannot change without its limit (the QoS class would change): left alone",
                        pod.name,
                        r.as_str()
                    ));
                    continue;
                }
                if request > l {
                    if l < min {
                        notes.push(format!(
                            "{c} {} limit {} is below the policy's min {}: with limits \
                             requestsOnly the request cannot rise to the target {}: left alone",
                            r.as_str(),
                            show(r, l),
                            show(r, min),
                            show(r, rec.target)
                        ));
                        continue;
                    }
                    notes.push(format!(
                        "{c} {} request clamped to its limit {} (target {}; limits are requestsOnly)",
                        r.as_str(),
                        show(r, l),
                        show(r, request)
                    ));
                    request = l;
                }
                Some(l)
            }
        };
        if !whole && request == current && limit == old_limit {
            continue;
        }
        after[i].requests.set(r, Some(request));
        after[i].limits.set(r, limit);
        changed.push((i, r));
    }
    // Burstable must not become Guaranteed by accident.
    if qos != QosClass::Guaranteed
        && QosClass::of(&pod.containers) != QosClass::Guaranteed
        && QosClass::of(&after) == QosClass::Guaranteed
    {
        let mut dropped = Vec::new();
        for &(i, r) in &changed {
            let (Some(req), Some(lim)) = (after[i].requests.get(r), after[i].limits.get(r)) else {
                continue;
            };
            if req != lim {
                continue;
            }
            let name = after[i].name.clone();
            match s.limits {
                LimitsMode::Proportional => {
                    let higher = on_step(r, units(r, lim).round() + 1.0);
                    after[i].limits.set(r, Some(higher));
                    notes.push(format!(
                        "{name} {} limit set one step above the request ({}) so that pod {} stays {qos}",
                        r.as_str(),
                        show(r, higher),
                        pod.name
                    ));
                }
                LimitsMode::RequestsOnly => {
                    let (min, _) = bounds(&s.params, r);
                    let lower = on_step(r, units(r, req).round() - 1.0);
                    if lower >= min && lower > 0.0 {
                        after[i].requests.set(r, Some(lower));
                        notes.push(format!(
                            "{name} {} request set one step below its limit ({}) so that pod {} stays {qos}",
                            r.as_str(),
                            show(r, lower),
                            pod.name
                        ));
                    } else {
                        dropped.push((i, r));
                        notes.push(format!(
                            "{name} {} request left alone: at its limit the pod {} would become \
                             Guaranteed, and one step below is under the policy's min",
                            r.as_str(),
                            pod.name
                        ));
                    }
                }
            }
        }
        for (i, r) in &dropped {
            after[*i]
                .requests
                .set(*r, pod.containers[*i].requests.get(*r));
            after[*i].limits.set(*r, pod.containers[*i].limits.get(*r));
        }
        changed.retain(|x| !dropped.contains(x));
    }
    let mut out: Vec<ContainerChange> = Vec::new();
    for (i, r) in changed {
        let name = &after[i].name;
        let at = match out.iter().position(|c| &c.container == name) {
            Some(k) => k,
            None => {
                out.push(ContainerChange {
                    container: name.clone(),
                    requests: Amounts::default(),
                    limits: Amounts::default(),
                });
                out.len() - 1
            }
        };
        out[at].requests.set(r, after[i].requests.get(r));
        if whole || after[i].limits.get(r) != pod.containers[i].limits.get(r) {
            out[at].limits.set(r, after[i].limits.get(r));
        }
    }
    out
}

/// The memory limits a change lowers in containers whose memory resizePolicy is `NotRequired`
/// (what Kubernetes 1.33 refuses in place), in words: `app (256Mi to 160Mi)`.
fn lowered_memory_limits(pod: &PlanPod, changes: &[ContainerChange]) -> Vec<String> {
    let r = Resource::Memory;
    changes
        .iter()
        .filter_map(|ch| {
            let c = pod.container(&ch.container)?;
            let (old, new) = (c.limits.get(r)?, ch.limits.get(r)?);
            (new < old && c.resize_policy.get(r) == RestartPolicy::NotRequired)
                .then(|| format!("{} ({} to {})", ch.container, show(r, old), show(r, new)))
        })
        .collect()
}

/// The resources of a change that restart their container (resizePolicy RestartContainer).
fn restarts(pod: &PlanPod, changes: &[ContainerChange]) -> Vec<String> {
    let mut out = Vec::new();
    for ch in changes {
        let Some(c) = pod.container(&ch.container) else {
            continue;
        };
        for r in [Resource::Cpu, Resource::Memory] {
            let touched = ch.requests.get(r).is_some() || ch.limits.get(r).is_some();
            if touched && c.resize_policy.get(r) == RestartPolicy::RestartContainer {
                out.push(format!("{} ({})", ch.container, r.as_str()));
            }
        }
    }
    out
}

fn ago(now: Seconds, since: Option<Seconds>) -> String {
    match since {
        Some(s) => format!(
            "for {}",
            humantime::format_duration(std::time::Duration::from_secs((now - s).max(0.0) as u64))
        ),
        None => "since an unknown time".into(),
    }
}

/// The next step for the policy's containers. Updates `state` (the `minChange.after` clocks of
/// the pods seen; pods gone are forgotten; a clock of a resource without a recommendation yet is
/// kept as it is).
pub fn plan(
    s: &PlanSettings,
    recs: &[ContainerRecommendation],
    pods: &[PlanPod],
    state: &mut PlanState,
    now: Seconds,
) -> VerticalPlan {
    let active: Vec<&PlanPod> = pods.iter().filter(|p| p.active).collect();
    // The minChange clocks.
    let mut seen = BTreeMap::new();
    for p in &active {
        for c in &s.containers {
            let Some(container) = p.container(c) else {
                continue;
            };
            for &r in &s.resources {
                let Some(current) = container.requests.get(r) else {
                    continue;
                };
                let k = key(&p.name, c, r);
                let Some(rec) = recommendation(recs, c, r) else {
                    // No data yet (a restarted daemon whose first reads failed): a clock kept
                    // from before goes on, it is not restarted.
                    if let Some(&since) = state.differs_since.get(&k) {
                        seen.insert(k, since);
                    }
                    continue;
                };
                let far = (current - rec.target).abs() > s.params.stale_difference * rec.target;
                if far {
                    let since = state.differs_since.get(&k).copied().unwrap_or(now);
                    seen.insert(k, since);
                }
            }
        }
    }
    state.differs_since = seen;

    let needs: Vec<(&PlanPod, PodNeeds)> = active
        .iter()
        .map(|p| (*p, needs(s, recs, p, state, now)))
        .filter(|(_, n)| !n.wanted.is_empty())
        .collect();

    let mut rows = rows(s, recs, &active, &needs);
    let mut notes = Vec::new();
    for c in &s.containers {
        if !active.is_empty() && active.iter().all(|p| p.container(c).is_none()) {
            notes.push(format!("no running pod has a container {c}"));
        }
        for &r in &s.resources {
            let has = active
                .iter()
                .any(|p| p.container(c).and_then(|x| x.requests.get(r)).is_some());
            let any = active.iter().any(|p| p.container(c).is_some());
            if any && !has {
                notes.push(format!(
                    "container {c} has no {} request: left alone",
                    r.as_str()
                ));
            }
        }
    }

    let action = decide(s, recs, pods, &active, &needs, state, now, &mut notes);
    let planned: Option<&Vec<ContainerChange>> = match &action {
        VerticalAction::Resize { changes, .. } | VerticalAction::PatchTemplate { changes, .. } => {
            Some(changes)
        }
        _ => None,
    };
    if let Some(changes) = planned {
        for row in &mut rows {
            row.planned = changes
                .iter()
                .find(|c| c.container == row.container)
                .and_then(|c| c.requests.get(row.resource));
        }
    }
    VerticalPlan {
        action,
        rows,
        notes,
    }
}

fn rows(
    s: &PlanSettings,
    recs: &[ContainerRecommendation],
    active: &[&PlanPod],
    needs: &[(&PlanPod, PodNeeds)],
) -> Vec<PlanRow> {
    let mut rows = Vec::new();
    for c in &s.containers {
        for &r in &s.resources {
            let currents: Vec<f64> = active
                .iter()
                .filter_map(|p| p.container(c).and_then(|x| x.requests.get(r)))
                .collect();
            let current_min = currents.iter().copied().reduce(f64::min);
            let current_max = currents.iter().copied().reduce(f64::max);
            let rec = recommendation(recs, c, r).copied();
            let kinds: Vec<Need> = needs
                .iter()
                .filter_map(|(_, n)| {
                    n.wanted
                        .iter()
                        .zip(&n.kinds)
                        .find(|((x, y), _)| x == c && *y == r)
                        .map(|(_, k)| *k)
                })
                .collect();
            let to_change = kinds.len() as u32;
            let count = |k: Need| kinds.iter().filter(|x| **x == k).count();
            let verdict = match (rec, current_min) {
                (None, _) => "no usage data yet".to_string(),
                (Some(_), None) => "no request to right-size".to_string(),
                (Some(_), Some(_)) if to_change == 0 => "within the bounds".to_string(),
                (Some(_), Some(_)) => {
                    let parts: Vec<String> = [
                        (Need::Oom, "OOM-killed below the target"),
                        (Need::Below, "below the lower bound"),
                        (Need::Above, "above the upper bound"),
                        (Need::Stale, "off the target for long"),
                    ]
                    .into_iter()
                    .filter(|(k, _)| count(*k) > 0)
                    .map(|(k, text)| format!("{} pod(s) {text}", count(k)))
                    .collect();
                    parts.join(", ")
                }
            };
            rows.push(PlanRow {
                container: c.clone(),
                resource: r,
                current_min,
                current_max,
                recommended: rec,
                pods_to_change: to_change,
                verdict,
                planned: None,
            });
        }
    }
    rows
}

#[allow(clippy::too_many_arguments)]
fn decide(
    s: &PlanSettings,
    recs: &[ContainerRecommendation],
    pods: &[PlanPod],
    active: &[&PlanPod],
    needs: &[(&PlanPod, PodNeeds)],
    state: &PlanState,
    now: Seconds,
    notes: &mut Vec<String>,
) -> VerticalAction {
    let nothing = |reason: String| VerticalAction::Nothing { reason };
    if s.update == UpdateMode::Off {
        let mut reason = "update is off: recommendations only".to_string();
        if !needs.is_empty() {
            reason += &format!(
                " ({} pod(s) would change: {})",
                needs.len(),
                needs[0].1.why.join("; ")
            );
        }
        return nothing(reason);
    }
    if pods.is_empty() {
        return nothing("the target has no pods (at zero replicas): no usage, holding".into());
    }
    if recs.iter().all(|c| c.cpu.is_none() && c.memory.is_none()) {
        return nothing("no usage data yet".into());
    }
    if active.is_empty() {
        return nothing("no running pods".into());
    }
    let mut revisions: Vec<&str> = pods
        .iter()
        .filter(|p| !p.deleting)
        .filter_map(|p| p.revision.as_deref())
        .collect();
    revisions.sort_unstable();
    revisions.dedup();
    if revisions.len() > 1 {
        return nothing(format!(
            "a rollout is in progress: the pods belong to {} template revisions",
            revisions.len()
        ));
    }
    if let Some(t) = state.template_patched_at
        && now - t < ROLLOUT_GRACE
    {
        return nothing(format!(
            "the pod template was patched {:.0}s ago: waiting for its rollout",
            now - t
        ));
    }
    match s.update {
        UpdateMode::Off => unreachable!("handled above"),
        UpdateMode::Rollout => {
            if needs.is_empty() {
                return nothing("every request is within its bounds".into());
            }
            template(s, recs, active, needs, &[], notes, String::new())
        }
        UpdateMode::InPlace => in_place(s, recs, active, needs, state, now, notes),
    }
}

/// The template patch for the containers and resources any pod needs changed (plus `extra`),
/// with the limits of a reference pod.
fn template(
    s: &PlanSettings,
    recs: &[ContainerRecommendation],
    active: &[&PlanPod],
    needs: &[(&PlanPod, PodNeeds)],
    extra: &[(String, Resource)],
    notes: &mut Vec<String>,
    prefix: String,
) -> VerticalAction {
    let mut wanted: Vec<(String, Resource)> = extra.to_vec();
    let mut why = Vec::new();
    for (_, n) in needs {
        for w in &n.wanted {
            if !wanted.contains(w) {
                wanted.push(w.clone());
            }
        }
        for y in &n.why {
            if !why.contains(y) {
                why.push(y.clone());
            }
        }
    }
    // The reference: a pod without a resize under way, else the first.
    let Some(reference) = active
        .iter()
        .find(|p| p.resize == ResizeStatus::None)
        .or(active.first())
    else {
        return VerticalAction::Nothing {
            reason: "no running pods".into(),
        };
    };
    let changes = changes_for(s, recs, reference, &wanted, true, notes);
    let mut reason = prefix;
    if !why.is_empty() {
        if !reason.is_empty() {
            reason += "; ";
        }
        reason += &format!("{} pod(s): {}", needs.len(), why.join("; "));
    }
    if changes.is_empty() {
        return VerticalAction::Report {
            reason: format!(
                "{reason}; the limits and QoS rules leave nothing to change in the template \
                 (see the notes)"
            ),
        };
    }
    VerticalAction::PatchTemplate { changes, reason }
}

fn in_place(
    s: &PlanSettings,
    recs: &[ContainerRecommendation],
    active: &[&PlanPod],
    needs: &[(&PlanPod, PodNeeds)],
    state: &PlanState,
    now: Seconds,
    notes: &mut Vec<String>,
) -> VerticalAction {
    // Resizes that cannot happen in place, and those in flight.
    let mut stuck: Option<(&PlanPod, String)> = None;
    let mut in_flight: Option<(&PlanPod, String)> = None;
    for p in active {
        match &p.resize {
            ResizeStatus::Infeasible { .. } => {
                stuck.get_or_insert((p, format!("pod {}: resize {}", p.name, p.resize)));
            }
            ResizeStatus::Deferred { since, .. }
                if since.is_some_and(|t| now - t >= s.deferred_timeout) =>
            {
                stuck.get_or_insert((
                    p,
                    format!(
                        "pod {}: resize {} {} (resize.deferredTimeout is {})",
                        p.name,
                        p.resize,
                        ago(now, *since),
                        humantime::format_duration(std::time::Duration::from_secs(
                            s.deferred_timeout as u64
                        ))
                    ),
                ));
            }
            ResizeStatus::Deferred { since, .. } | ResizeStatus::InProgress { since, .. } => {
                in_flight.get_or_insert((
                    p,
                    format!("pod {}: resize {} {}", p.name, p.resize, ago(now, *since)),
                ));
            }
            ResizeStatus::None => {
                if p.containers.iter().any(|c| c.differs_from_actual()) {
                    in_flight.get_or_insert((
                        p,
                        format!(
                            "pod {}: its spec resources differ from the status' actual ones \
                             (the kubelet has not applied the resize yet)",
                            p.name
                        ),
                    ));
                }
            }
        }
    }
    if let Some((p, why)) = stuck {
        // The stuck pod's own changes (its spec already holds them, its status does not) go
        // into the template too; all of its resources when the status does not say.
        let extra: Vec<(String, Resource)> = s
            .containers
            .iter()
            .filter_map(|c| p.container(c))
            .flat_map(|c| s.resources.iter().map(move |r| (c, *r)))
            .filter(|(c, r)| recommendation(recs, &c.name, *r).is_some())
            .filter(|(c, r)| c.differs_from_actual_in(*r) != Some(false))
            .map(|(c, r)| (c.name.clone(), r))
            .collect();
        return fallback(s, recs, active, needs, &extra, notes, why);
    }
    if let Some((_, why)) = in_flight {
        return VerticalAction::Nothing {
            reason: format!("one resize at a time: {why}"),
        };
    }
    let Some((pod, n)) = needs.iter().max_by(|(a, x), (b, y)| {
        x.distance
            .partial_cmp(&y.distance)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| b.name.cmp(&a.name))
    }) else {
        return VerticalAction::Nothing {
            reason: "every request is within its bounds".into(),
        };
    };
    let changes = changes_for(s, recs, pod, &n.wanted, false, notes);
    let mut reason = n.why.join("; ");
    if needs.len() > 1 {
        reason += &format!(
            " ({} pods need a change; this one is furthest outside its bounds)",
            needs.len()
        );
    }
    if changes.is_empty() {
        return VerticalAction::Report {
            reason: format!(
                "pod {}: {reason}; the limits and QoS rules leave nothing to change (see the notes)",
                pod.name
            ),
        };
    }
    if let Some(refusal) = &state.memory_limit_decrease_refused {
        let lowered = lowered_memory_limits(pod, &changes);
        if !lowered.is_empty() {
            return fallback(
                s,
                recs,
                active,
                needs,
                &[],
                notes,
                format!(
                    "pod {}: the resize lowers the memory limit of {}, which the API server \
                     refuses in place (it refused {refusal})",
                    pod.name,
                    lowered.join(", ")
                ),
            );
        }
    }
    let restarting = restarts(pod, &changes);
    if !restarting.is_empty() {
        if !s.allow_restart {
            return fallback(
                s,
                recs,
                active,
                needs,
                &[],
                notes,
                format!(
                    "pod {}: resizing would restart {} (resizePolicy RestartContainer) and \
                     resize.allowRestart is false",
                    pod.name,
                    restarting.join(", ")
                ),
            );
        }
        notes.push(format!(
            "the resize restarts {} of pod {} (resizePolicy RestartContainer)",
            restarting.join(", "),
            pod.name
        ));
    }
    VerticalAction::Resize {
        pod: pod.name.clone(),
        changes,
        reason,
    }
}

fn fallback(
    s: &PlanSettings,
    recs: &[ContainerRecommendation],
    active: &[&PlanPod],
    needs: &[(&PlanPod, PodNeeds)],
    extra: &[(String, Resource)],
    notes: &mut Vec<String>,
    why: String,
) -> VerticalAction {
    match s.fallback {
        ResizeFallback::Rollout => template(
            s,
            recs,
            active,
            needs,
            extra,
            notes,
            format!("{why}: falling back to a rollout (resize.fallback is rollout)"),
        ),
        ResizeFallback::Report => VerticalAction::Report {
            reason: format!("{why}; resize.fallback is report: nothing patched"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::vertical::ResourceParams;

    fn settings(update: UpdateMode) -> PlanSettings {
        let rp = |min, max| ResourceParams {
            target_percentile: 0.9,
            lower_percentile: 0.5,
            upper_percentile: 0.95,
            margin: 0.15,
            min,
            max,
        };
        PlanSettings {
            containers: vec!["app".into()],
            resources: vec![Resource::Cpu, Resource::Memory],
            params: VerticalParams {
                half_life: 86400.0,
                memory_peak_window: 86400.0,
                cpu: rp(0.05, 4.0),
                memory: rp(64.0 * MIB, 8192.0 * MIB),
                stale_difference: 0.1,
                stale_after: 12.0 * 3600.0,
            },
            update,
            limits: LimitsMode::Proportional,
            deferred_timeout: 300.0,
            fallback: ResizeFallback::Rollout,
            allow_restart: true,
        }
    }

    fn rec(target: f64, lower: f64, upper: f64) -> Recommended {
        Recommended {
            target,
            lower,
            upper,
        }
    }

    /// CPU: target 500m in [400m, 700m]; memory: target 512Mi in [400Mi, 700Mi].
    fn recs() -> Vec<ContainerRecommendation> {
        vec![ContainerRecommendation {
            container: "app".into(),
            cpu: Some(rec(0.5, 0.4, 0.7)),
            memory: Some(rec(512.0 * MIB, 400.0 * MIB, 700.0 * MIB)),
        }]
    }

    fn amounts(cpu: Option<f64>, mem_mi: Option<f64>) -> Amounts {
        Amounts {
            cpu,
            memory: mem_mi.map(|m| m * MIB),
        }
    }

    /// A running pod with one container `app`.
    fn pod(name: &str, requests: Amounts, limits: Amounts) -> PlanPod {
        PlanPod {
            name: name.into(),
            active: true,
            deleting: false,
            qos_class: None,
            revision: Some("68dddbb85".into()),
            resize: ResizeStatus::None,
            containers: vec![ContainerResources {
                name: "app".into(),
                requests,
                limits,
                ..ContainerResources::default()
            }],
        }
    }

    fn in_bounds(name: &str) -> PlanPod {
        pod(name, amounts(Some(0.5), Some(512.0)), Amounts::default())
    }

    fn run(s: &PlanSettings, pods: &[PlanPod]) -> VerticalPlan {
        plan(s, &recs(), pods, &mut PlanState::default(), 1000.0)
    }

    #[track_caller]
    fn resized(p: &VerticalPlan) -> (&str, &[ContainerChange]) {
        match &p.action {
            VerticalAction::Resize { pod, changes, .. } => (pod, changes),
            other => panic!("expected a resize, got {other:?}\n{:?}", p.notes),
        }
    }

    #[test]
    fn within_bounds_nothing_changes() {
        let p = run(
            &settings(UpdateMode::InPlace),
            &[in_bounds("a"), in_bounds("b")],
        );
        assert_eq!(
            p.action,
            VerticalAction::Nothing {
                reason: "every request is within its bounds".into()
            }
        );
        assert_eq!(p.rows.len(), 2);
        assert_eq!(p.rows[0].verdict, "within the bounds");
    }

    #[test]
    fn outside_bounds_resizes_the_pod_furthest_outside() {
        let s = settings(UpdateMode::InPlace);
        let slightly = pod("a", amounts(Some(0.38), Some(512.0)), Amounts::default());
        let far = pod("b", amounts(Some(0.1), Some(512.0)), Amounts::default());
        let p = run(&s, &[slightly, far, in_bounds("c")]);
        let (name, changes) = resized(&p);
        assert_eq!(name, "b");
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].requests.cpu, Some(0.5));
        assert_eq!(changes[0].requests.memory, None, "memory is within bounds");
        assert_eq!(
            changes[0].limits,
            Amounts::default(),
            "no limit, none given"
        );
        assert!(
            p.action.to_string().contains("2 pods need a change"),
            "{}",
            p.action
        );
        assert_eq!(p.rows[0].planned, Some(0.5));
        assert_eq!(p.rows[0].pods_to_change, 2);
    }

    #[test]
    fn a_long_difference_inside_the_bounds_changes_only_after_min_change_after() {
        let s = settings(UpdateMode::InPlace);
        // 650m is inside [400m, 700m] but 30 % off 500m.
        let pods = [pod(
            "a",
            amounts(Some(0.65), Some(512.0)),
            Amounts::default(),
        )];
        let mut state = PlanState::default();
        let first = plan(&s, &recs(), &pods, &mut state, 0.0);
        assert!(matches!(first.action, VerticalAction::Nothing { .. }));
        assert_eq!(state.differs_since.get("a/app/cpu"), Some(&0.0));
        let later = plan(&s, &recs(), &pods, &mut state, 11.0 * 3600.0);
        assert!(matches!(later.action, VerticalAction::Nothing { .. }));
        let stale = plan(&s, &recs(), &pods, &mut state, 12.0 * 3600.0);
        let (_, changes) = resized(&stale);
        assert_eq!(changes[0].requests.cpu, Some(0.5));
        assert!(
            stale
                .action
                .to_string()
                .contains("off the target 500m for 12h")
        );
        // A pod that is gone is forgotten.
        plan(&s, &recs(), &[], &mut state, 13.0 * 3600.0);
        assert!(state.differs_since.is_empty());
    }

    #[test]
    fn a_clock_kept_from_before_survives_ticks_without_data() {
        let s = settings(UpdateMode::InPlace);
        let pods = [pod(
            "a",
            amounts(Some(0.65), Some(512.0)),
            Amounts::default(),
        )];
        // Restored after a restart: cpu has differed since t=0.
        let mut state = PlanState {
            differs_since: BTreeMap::from([("a/app/cpu".to_string(), 0.0)]),
            ..PlanState::default()
        };
        let none = vec![ContainerRecommendation {
            container: "app".into(),
            cpu: None,
            memory: None,
        }];
        let p = plan(&s, &none, &pods, &mut state, 3600.0);
        assert!(
            p.action.to_string().contains("no usage data yet"),
            "{}",
            p.action
        );
        assert_eq!(state.differs_since.get("a/app/cpu"), Some(&0.0));
        // With data again, the clock runs from its start: 12 h after t=0, not after the restart.
        let stale = plan(&s, &recs(), &pods, &mut state, 12.0 * 3600.0);
        let (_, changes) = resized(&stale);
        assert_eq!(changes[0].requests.cpu, Some(0.5));
    }

    #[test]
    fn a_recent_oom_kill_changes_memory_at_once_even_inside_the_bounds() {
        let s = settings(UpdateMode::InPlace);
        // 450Mi is inside [400Mi, 700Mi], below the 512Mi target.
        let mut killed = pod("a", amounts(Some(0.5), Some(450.0)), Amounts::default());
        killed.containers[0].last_termination = Some(Termination {
            reason: "OOMKilled".into(),
            finished_at: Some(1000.0 - 60.0),
            exit_code: 137,
        });
        let p = run(&s, &[in_bounds("b"), killed.clone()]);
        let (name, changes) = resized(&p);
        assert_eq!(name, "a");
        assert_eq!(changes[0].requests.memory, Some(512.0 * MIB));
        assert!(
            p.action.to_string().contains("app was OOM-killed 1m ago"),
            "{}",
            p.action
        );
        assert_eq!(p.rows[1].verdict, "1 pod(s) OOM-killed below the target");
        // A kill older than the memory peak window is history: the bounds rule again.
        killed.containers[0]
            .last_termination
            .as_mut()
            .unwrap()
            .finished_at = Some(1000.0 - 2.0 * 86400.0);
        let p = run(&s, &[killed]);
        assert!(!p.action.writes(), "{:?}", p.action);
    }

    #[test]
    fn limits_follow_requests_proportionally() {
        let s = settings(UpdateMode::InPlace);
        let p = run(
            &s,
            &[pod(
                "a",
                amounts(Some(0.2), Some(256.0)),
                amounts(Some(0.4), Some(1024.0)),
            )],
        );
        let (_, changes) = resized(&p);
        assert_eq!(changes[0].requests, amounts(Some(0.5), Some(512.0)));
        assert_eq!(changes[0].limits, amounts(Some(1.0), Some(2048.0)));
    }

    #[test]
    fn requests_only_clamps_to_the_limit_and_says_so() {
        let mut s = settings(UpdateMode::InPlace);
        s.limits = LimitsMode::RequestsOnly;
        let p = run(
            &s,
            &[pod(
                "a",
                amounts(Some(0.2), Some(512.0)),
                amounts(Some(0.3), Some(1024.0)),
            )],
        );
        let (_, changes) = resized(&p);
        assert_eq!(changes[0].requests.cpu, Some(0.3), "clamped to the limit");
        assert_eq!(changes[0].limits, Amounts::default(), "limits stay");
        assert!(
            p.notes
                .iter()
                .any(|n| n.contains("clamped to its limit 300m")),
            "{:?}",
            p.notes
        );
        // A limit below the policy's min: nothing can be done for it.
        let p = run(
            &s,
            &[pod(
                "a",
                amounts(Some(0.01), Some(512.0)),
                amounts(Some(0.02), Some(1024.0)),
            )],
        );
        assert!(
            matches!(p.action, VerticalAction::Report { .. }),
            "{:?}",
            p.action
        );
        assert!(
            p.notes
                .iter()
                .any(|n| n.contains("below the policy's min 50m"))
        );
    }

    #[test]
    fn guaranteed_stays_guaranteed() {
        let s = settings(UpdateMode::InPlace);
        let mut g = pod(
            "a",
            amounts(Some(0.2), Some(256.0)),
            amounts(Some(0.2), Some(256.0)),
        );
        g.qos_class = Some(QosClass::Guaranteed);
        let p = run(&s, std::slice::from_ref(&g));
        let (_, changes) = resized(&p);
        assert_eq!(changes[0].requests, changes[0].limits);
        assert_eq!(changes[0].requests, amounts(Some(0.5), Some(512.0)));
        // With requests only, a Guaranteed pod cannot change: reported.
        let mut s = s;
        s.limits = LimitsMode::RequestsOnly;
        let p = run(&s, &[g]);
        assert!(
            matches!(p.action, VerticalAction::Report { .. }),
            "{:?}",
            p.action
        );
        assert!(
            p.notes
                .iter()
                .any(|n| n.contains("is Guaranteed and limits are requestsOnly"))
        );
    }

    #[test]
    fn best_effort_pods_are_never_given_requests() {
        let s = settings(UpdateMode::InPlace);
        let mut b = pod("a", Amounts::default(), Amounts::default());
        b.qos_class = Some(QosClass::BestEffort);
        let p = run(&s, &[b]);
        assert!(!p.action.writes(), "{:?}", p.action);
        assert!(
            p.notes.iter().any(|n| n.contains("no cpu request")),
            "{:?}",
            p.notes
        );
        // Even when a recommendation would apply to a request it had: nothing is given.
        let mut odd = pod("a", amounts(Some(0.1), None), Amounts::default());
        odd.qos_class = Some(QosClass::BestEffort);
        let p = run(&s, &[odd]);
        assert!(!p.action.writes(), "{:?}", p.action);
        assert!(
            p.notes.iter().any(|n| n.contains("BestEffort")),
            "{:?}",
            p.notes
        );
    }

    #[test]
    fn burstable_does_not_become_guaranteed_by_accident() {
        // Memory already request == limit; CPU request clamped to its limit would make the pod
        // Guaranteed: one step below instead.
        let mut s = settings(UpdateMode::InPlace);
        s.limits = LimitsMode::RequestsOnly;
        let mut b = pod(
            "a",
            amounts(Some(0.2), Some(512.0)),
            amounts(Some(0.3), Some(512.0)),
        );
        b.qos_class = Some(QosClass::Burstable);
        let p = run(&s, std::slice::from_ref(&b));
        let (_, changes) = resized(&p);
        assert_eq!(changes[0].requests.cpu, Some(0.299));
        assert!(
            p.notes.iter().any(|n| n.contains("stays Burstable")),
            "{:?}",
            p.notes
        );
        // Proportional with a limit that rounds onto the request: the limit goes one step up.
        let mut s = settings(UpdateMode::InPlace);
        s.limits = LimitsMode::Proportional;
        let b = pod(
            "a",
            amounts(Some(0.2), Some(512.0)),
            amounts(Some(0.2001), Some(512.0)),
        );
        let p = run(&s, &[b]);
        let (_, changes) = resized(&p);
        assert_eq!(changes[0].requests.cpu, Some(0.5));
        assert_eq!(changes[0].limits.cpu, Some(0.501));
    }

    #[test]
    fn one_resize_in_flight_at_a_time() {
        let s = settings(UpdateMode::InPlace);
        let mut busy = in_bounds("a");
        busy.resize = ResizeStatus::InProgress {
            since: Some(990.0),
            message: None,
        };
        let low = pod("b", amounts(Some(0.1), Some(512.0)), Amounts::default());
        let p = run(&s, &[busy, low.clone()]);
        assert!(
            matches!(&p.action, VerticalAction::Nothing { reason } if reason.contains("one resize at a time: pod a: resize in progress")),
            "{:?}",
            p.action
        );
        // Spec ahead of the status with no condition yet: in flight too.
        let mut unseen = in_bounds("a");
        unseen.containers[0].actual_requests = Some(amounts(Some(0.1), Some(512.0)));
        let p = run(&s, &[unseen, low.clone()]);
        assert!(
            matches!(&p.action, VerticalAction::Nothing { reason } if reason.contains("kubelet has not applied")),
            "{:?}",
            p.action
        );
        // Deferred within the timeout: wait.
        let mut deferred = in_bounds("a");
        deferred.resize = ResizeStatus::Deferred {
            since: Some(900.0),
            message: Some("Node didn't have enough resource: cpu".into()),
        };
        let p = run(&s, &[deferred, low]);
        assert!(!p.action.writes(), "{:?}", p.action);
    }

    #[test]
    fn infeasible_falls_back_to_the_template_or_is_reported() {
        let mut s = settings(UpdateMode::InPlace);
        let mut stuck = pod("a", amounts(Some(0.5), Some(512.0)), Amounts::default());
        stuck.resize = ResizeStatus::Infeasible {
            since: Some(990.0),
            message: Some("Node didn't have enough capacity: cpu".into()),
        };
        let old = pod("b", amounts(Some(0.1), Some(512.0)), Amounts::default());
        let p = run(&s, &[stuck.clone(), old.clone()]);
        match &p.action {
            VerticalAction::PatchTemplate { changes, reason } => {
                assert!(reason.contains("pod a: resize infeasible"), "{reason}");
                // The template gets every resource of the stuck resize, at the target.
                assert_eq!(changes[0].requests, amounts(Some(0.5), Some(512.0)));
                assert_eq!(changes[0].limits, Amounts::default());
            }
            other => panic!("{other:?}"),
        }
        // Only the stuck pod, already holding the new values in its spec: still patched.
        let p = run(&s, std::slice::from_ref(&stuck));
        assert!(
            matches!(p.action, VerticalAction::PatchTemplate { .. }),
            "{:?}",
            p.action
        );
        s.fallback = ResizeFallback::Report;
        let p = run(&s, &[stuck, old]);
        match &p.action {
            VerticalAction::Report { reason } => {
                assert!(
                    reason.contains("resize.fallback is report: nothing patched"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn deferred_past_the_timeout_falls_back() {
        let s = settings(UpdateMode::InPlace);
        let mut d = pod("a", amounts(Some(0.1), Some(512.0)), Amounts::default());
        d.resize = ResizeStatus::Deferred {
            since: Some(1000.0 - 301.0),
            message: None,
        };
        let p = run(&s, &[d]);
        match &p.action {
            VerticalAction::PatchTemplate { reason, .. } => {
                assert!(reason.contains("deferred for 5m 1s"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn after_a_refused_memory_limit_decrease_such_resizes_take_the_fallback() {
        let mut s = settings(UpdateMode::InPlace);
        // Memory 1Gi (limit 2Gi) above [400Mi, 700Mi]: to 512Mi, limit 1Gi.
        let high = pod(
            "a",
            amounts(Some(0.5), Some(1024.0)),
            amounts(None, Some(2048.0)),
        );
        let refused = PlanState {
            memory_limit_decrease_refused: Some(ResizeRefusal {
                pod: "z".into(),
                containers: vec!["app".into()],
                message: "Pod \"z\" is invalid: spec.containers[0].resources.limits[memory]: \
                          Forbidden: memory limits cannot be decreased unless resizePolicy is \
                          RestartContainer"
                    .into(),
                at: 900.0,
            }),
            ..PlanState::default()
        };
        let with = |s: &PlanSettings, pods: &[PlanPod]| {
            plan(s, &recs(), pods, &mut refused.clone(), 1000.0)
        };
        // Before any refusal: in place.
        let p = run(&s, std::slice::from_ref(&high));
        assert_eq!(resized(&p).1[0].limits, amounts(None, Some(1024.0)));
        // After one: the template, saying why.
        let p = with(&s, std::slice::from_ref(&high));
        match &p.action {
            VerticalAction::PatchTemplate { changes, reason } => {
                assert!(
                    reason.starts_with(
                        "pod a: the resize lowers the memory limit of app (2Gi to 1Gi), which \
                         the API server refuses in place (it refused pod z container app: Pod \
                         \"z\" is invalid: spec.containers[0].resources.limits[memory]: \
                         Forbidden: memory limits cannot be decreased"
                    ),
                    "{reason}"
                );
                assert!(reason.contains("falling back to a rollout"), "{reason}");
                assert_eq!(changes[0].requests, amounts(None, Some(512.0)));
                assert_eq!(changes[0].limits, amounts(None, Some(1024.0)));
            }
            other => panic!("{other:?}"),
        }
        s.fallback = ResizeFallback::Report;
        assert!(matches!(&with(&s, std::slice::from_ref(&high)).action,
                VerticalAction::Report { reason } if reason.contains("which the API server refuses in place")
                    && reason.ends_with("resize.fallback is report: nothing patched")),);
        // Still in place: a memory limit raised, a CPU-only change, a container that restarts
        // for memory (the server takes that), a container without a memory limit.
        let low = pod(
            "a",
            amounts(Some(0.5), Some(128.0)),
            amounts(None, Some(256.0)),
        );
        let cpu_only = pod(
            "a",
            amounts(Some(0.1), Some(512.0)),
            amounts(Some(0.2), Some(2048.0)),
        );
        let mut restarts = high.clone();
        restarts.containers[0].resize_policy.memory = RestartPolicy::RestartContainer;
        let unlimited = pod("a", amounts(Some(0.5), Some(1024.0)), Amounts::default());
        for p0 in [low, cpu_only, restarts, unlimited] {
            resized(&with(&s, std::slice::from_ref(&p0)));
        }
    }

    #[test]
    fn plan_state_keeps_a_refusal_and_reads_without_one() {
        let mut state = PlanState::default();
        state.resize_refused(ResizeRefusal {
            pod: "a".into(),
            containers: vec!["app".into(), "proxy".into()],
            message: "refused".into(),
            at: 1.0,
        });
        let text = serde_json::to_string(&state).unwrap();
        assert_eq!(serde_json::from_str::<PlanState>(&text).unwrap(), state);
        assert_eq!(
            state.memory_limit_decrease_refused.unwrap().to_string(),
            "pod a containers app, proxy: refused"
        );
        let old: PlanState =
            serde_json::from_str(r#"{"differsSince": {}, "templatePatchedAt": null}"#).unwrap();
        assert_eq!(old, PlanState::default());
        assert!(!serde_json::to_string(&old).unwrap().contains("memoryLimit"));
    }

    #[test]
    fn restart_policy_is_noted_or_avoided() {
        let mut s = settings(UpdateMode::InPlace);
        let mut p0 = pod("a", amounts(Some(0.1), Some(512.0)), Amounts::default());
        p0.containers[0].resize_policy.cpu = RestartPolicy::RestartContainer;
        let p = run(&s, std::slice::from_ref(&p0));
        resized(&p);
        assert!(
            p.notes
                .iter()
                .any(|n| n.contains("restarts app (cpu) of pod a")),
            "{:?}",
            p.notes
        );
        s.allow_restart = false;
        let p = run(&s, std::slice::from_ref(&p0));
        assert!(
            matches!(&p.action, VerticalAction::PatchTemplate { reason, .. } if reason.contains("resize.allowRestart is false")),
            "{:?}",
            p.action
        );
        s.fallback = ResizeFallback::Report;
        let p = run(&s, &[p0]);
        assert!(
            matches!(p.action, VerticalAction::Report { .. }),
            "{:?}",
            p.action
        );
    }

    #[test]
    fn rollout_mode_patches_the_template_and_then_waits_for_the_rollout() {
        let s = settings(UpdateMode::Rollout);
        let low = pod(
            "a",
            amounts(Some(0.1), Some(1024.0)),
            amounts(Some(0.2), Some(1024.0)),
        );
        let mut state = PlanState::default();
        let p = plan(&s, &recs(), std::slice::from_ref(&low), &mut state, 0.0);
        match &p.action {
            VerticalAction::PatchTemplate { changes, .. } => {
                assert_eq!(changes[0].requests, amounts(Some(0.5), Some(512.0)));
                assert_eq!(changes[0].limits, amounts(Some(1.0), Some(512.0)));
            }
            other => panic!("{other:?}"),
        }
        state.template_patched(0.0);
        let p = plan(&s, &recs(), std::slice::from_ref(&low), &mut state, 30.0);
        assert!(
            matches!(&p.action, VerticalAction::Nothing { reason } if reason.contains("waiting for its rollout"))
        );
        let mut new = in_bounds("b");
        new.revision = Some("7c9f".into());
        let p = plan(&s, &recs(), &[low, new], &mut state, 90.0);
        assert!(
            matches!(&p.action, VerticalAction::Nothing { reason } if reason.contains("2 template revisions")),
            "{:?}",
            p.action
        );
    }

    #[test]
    fn update_off_only_recommends() {
        let p = run(
            &settings(UpdateMode::Off),
            &[pod(
                "a",
                amounts(Some(0.1), Some(512.0)),
                Amounts::default(),
            )],
        );
        assert!(
            matches!(&p.action, VerticalAction::Nothing { reason } if reason.contains("update is off") && reason.contains("1 pod(s) would change")),
            "{:?}",
            p.action
        );
    }

    #[test]
    fn no_data_no_request_and_missing_containers() {
        let s = settings(UpdateMode::InPlace);
        let p = plan(
            &s,
            &[ContainerRecommendation {
                container: "app".into(),
                cpu: None,
                memory: None,
            }],
            &[in_bounds("a")],
            &mut PlanState::default(),
            0.0,
        );
        assert_eq!(
            p.action,
            VerticalAction::Nothing {
                reason: "no usage data yet".into()
            }
        );
        assert_eq!(p.rows[0].verdict, "no usage data yet");
        let mut other = in_bounds("a");
        other.containers[0].name = "sidecar".into();
        let p = run(&s, &[other]);
        assert!(
            p.notes
                .iter()
                .any(|n| n.contains("no running pod has a container app"))
        );
    }

    #[test]
    fn planned_requests_are_whole_steps_within_min_and_max() {
        assert_eq!(representable(Resource::Cpu, 0.12345, 0.05, 4.0), 0.123);
        assert_eq!(representable(Resource::Cpu, 0.0255, 0.0255, 0.0255), 0.0255);
        assert_eq!(
            representable(Resource::Memory, 100e6, 100e6, 1e9),
            96.0 * MIB,
            "the first whole MiB above min"
        );
        assert_eq!(show(Resource::Cpu, 0.25), "250m");
        assert_eq!(show(Resource::Cpu, 2.0), "2");
        assert_eq!(show(Resource::Memory, 2048.0 * MIB), "2Gi");
        assert_eq!(show(Resource::Memory, 100e6), "95Mi");
        assert_eq!(show(Resource::Memory, 900.0 * 1024.0), "900Ki");
        assert_eq!(show(Resource::Cpu, 0.5428), "543m");
        assert_eq!(show(Resource::Cpu, 0.0005), "0.50m");
    }

    #[test]
    fn qos_classes() {
        let c = |req: Amounts, lim: Amounts| ContainerResources {
            name: "x".into(),
            requests: req,
            limits: lim,
            ..ContainerResources::default()
        };
        let both = amounts(Some(1.0), Some(64.0));
        assert_eq!(QosClass::of(&[c(both, both)]), QosClass::Guaranteed);
        assert_eq!(
            QosClass::of(&[c(Amounts::default(), both)]),
            QosClass::Guaranteed
        );
        assert_eq!(
            QosClass::of(&[c(both, both), c(Amounts::default(), Amounts::default())]),
            QosClass::Burstable
        );
        assert_eq!(
            QosClass::of(&[c(Amounts::default(), Amounts::default())]),
            QosClass::BestEffort
        );
    }
}
