//! The cluster seam: what setpoint reads from (and, in the daemon, writes to) Kubernetes.
//!
//! - [`Cluster`]: the trait the drivers use: a target's scale (spec replicas and pod selector)
//!   through its `/scale` subresource, the target's pods, and their metrics.k8s.io usage.
//! - [`kube`]: [`KubeCluster`], the real implementation with kube-rs (kubeconfig or in-cluster).
//! - [`cache`]: the daemon's watch cache (one watch per kind in the namespace: pods,
//!   Deployments, StatefulSets, ReplicaSets; compact records of what setpoint reads, the pods
//!   already decoded), which [`KubeCluster`] reads
//!   from when it has one ([`KubeCluster::with_cache`]); until a watch has synced, and while it
//!   is broken, its reads answer [`ClusterError::NotSynced`].
//! - [`pods`]: [`pods::from_pod`]: the engine's [`Pod`] (phase, readiness and its times,
//!   requests, limits, resize status, IP), taken from a `Pod` object.
//! - [`metrics_api`]: the metrics.k8s.io `PodMetrics` model (k8s-openapi has none).
//! - [`resize`]: writing container resources: `pods/resize` (in place) and pod-template
//!   patches.
//! - ScalingPolicy status: [`Cluster::apply_status`] writes a [`PolicyStatus`] to the object's
//!   `/status` subresource.
//! - [`policies`]: the watch of the namespace's ScalingPolicy objects ([`policies::watch`]),
//!   each change as a validated policy or its error.
//! - [`lease`]: leader election on a `coordination.k8s.io` Lease ([`lease::elect`]): a flag that
//!   is true while this replica may act, an error when the election fails for good, and a
//!   release on shutdown.
//!
//! Every kube-rs error becomes a [`ClusterError`] in one place (`kube::api_error`), whose
//! message carries the one RBAC hint; the Lease's errors go through it too.
//!
//! Nothing outside this module names a kube-rs type: a test can stand in for the cluster by
//! implementing [`Cluster`]. The adapter reads and writes; what to write, and whether this tick
//! may, is decided in [`crate::tick`].

pub mod cache;
pub mod kube;
pub mod lease;
pub mod metrics_api;
pub mod pods;
pub mod policies;
pub mod resize;

use crate::engine::Seconds;
use crate::engine::pod::{ContainerResources, Pod};
use crate::engine::vertical_plan::ContainerChange;
use crate::policy::status::PolicyStatus;
use crate::policy::{ObjectRef, TargetRef};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::SystemTime;

pub use self::kube::{ClusterConfig, KubeCluster};
pub use metrics_api::{ContainerUsage, PodUsage};

/// What the `/scale` subresource of a target says.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleState {
    /// `spec.replicas`: the replicas the target should have.
    pub spec_replicas: u32,
    /// `status.replicas`: the pods it has (ready or not).
    pub status_replicas: u32,
    /// `status.selector`: the label selector of its pods, in its string form.
    pub selector: Option<String>,
    /// `metadata.resourceVersion` of the target.
    pub resource_version: Option<String>,
}

/// Errors from the cluster, each naming what was asked and of which object.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No usable kubeconfig or in-cluster configuration.
    #[error("Kubernetes configuration: {0}")]
    Config(String),
    /// The API server answered with an error status.
    #[error("{what}: HTTP {code} {reason}: {message}{}", hint(*code, what, message))]
    Api {
        /// What was asked, such as `GET scale of Deployment web in namespace demo`.
        what: String,
        /// The HTTP status code.
        code: u16,
        /// The Status `reason` (`NotFound`, `Forbidden`, ...).
        reason: String,
        /// The Status `message`.
        message: String,
    },
    /// No answer, or one that could not be read.
    #[error("{what}: {message}")]
    Transport {
        /// What was asked.
        what: String,
        /// What went wrong.
        message: String,
    },
    /// An answer that does not make sense (a negative count, a bad quantity, ...).
    #[error("{what}: {message}")]
    Invalid {
        /// What was asked.
        what: String,
        /// What is wrong with the answer.
        message: String,
    },
    /// The watch cache cannot answer yet: the watch of that kind has not synced, or is broken
    /// and relisting. The tick holds (no data): it never decides on state it has not seen.
    #[error("{what}: {reason}")]
    NotSynced {
        /// What was asked (`Deployment web in namespace demo (watch cache)`).
        what: String,
        /// Which watch is waited for, and why (its last error).
        reason: String,
    },
    /// Something setpoint does not do for this object (a template patch of a custom kind).
    #[error("{what}: {message}")]
    Unsupported {
        /// What was asked.
        what: String,
        /// Why not, and what to do instead.
        message: String,
    },
}

impl ClusterError {
    /// The HTTP status code of an API error.
    pub fn code(&self) -> Option<u16> {
        match self {
            ClusterError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether trying again may help: 429, 5xx, or no answer.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClusterError::Api { code, .. } => *code == 429 || *code >= 500,
            ClusterError::Transport { .. } => true,
            ClusterError::Config(_)
            | ClusterError::Invalid { .. }
            | ClusterError::NotSynced { .. }
            | ClusterError::Unsupported { .. } => false,
        }
    }
}

/// What to check after an API error about `what`: the one place that words the RBAC hint (the
/// Lease's errors use it too, with `what` starting with `Lease `).
pub(crate) fn hint(code: u16, what: &str, message: &str) -> &'static str {
    match code {
        404 if what.contains("metrics.k8s.io") => {
            " (is metrics-server, or another metrics.k8s.io provider, installed?)"
        }
        401 if what.starts_with("Lease ") => " (check the credentials)",
        401 => " (check the kubeconfig's credentials)",
        403 if message.contains("the Role needs") => "",
        403 if what.starts_with("Lease ") => {
            " (the Role bound to this identity needs get, create and patch on leases in \
             coordination.k8s.io)"
        }
        403 => " (check the Role bound to this identity)",
        _ => "",
    }
}

/// The cluster, as a tick sees it. Implemented by [`KubeCluster`] and by test stand-ins.
#[allow(async_fn_in_trait)]
pub trait Cluster {
    /// The namespace the cluster adapter works in.
    fn namespace(&self) -> &str;

    /// The target's `/scale` subresource (from the watch cache, where there is one).
    async fn scale(&self, target: &TargetRef) -> Result<ScaleState, ClusterError>;

    /// The target's `/scale` read from the API server itself, never from a cache: the re-read
    /// after a 409 Conflict, when a cached read was stale.
    async fn scale_fresh(&self, target: &TargetRef) -> Result<ScaleState, ClusterError> {
        self.scale(target).await
    }

    /// The pods matching a label selector (in its string form, `app=web,tier!=db`).
    async fn pods(&self, selector: &str) -> Result<Vec<Pod>, ClusterError>;

    /// The metrics.k8s.io usage of the pods matching a label selector.
    async fn pod_metrics(&self, selector: &str) -> Result<Vec<PodUsage>, ClusterError>;

    /// Sets the target's `spec.replicas` through a merge patch of its `/scale` subresource
    /// (field manager `setpoint`). With `resource_version`, the API server refuses the patch
    /// with 409 Conflict when the target changed since it was read.
    async fn patch_scale(
        &self,
        target: &TargetRef,
        replicas: u32,
        resource_version: Option<&str>,
    ) -> Result<ScaleState, ClusterError>;

    /// The target object's `metadata.annotations` (from the watch cache, where there is one,
    /// which keeps only setpoint's own: [`cache::KEPT_ANNOTATIONS`]).
    async fn annotations(
        &self,
        target: &TargetRef,
    ) -> Result<BTreeMap<String, String>, ClusterError>;

    /// Sets annotations on the target by server-side apply with field manager `manager`: the
    /// annotations that manager applied before and left out of `annotations` are removed.
    async fn apply_annotations(
        &self,
        target: &TargetRef,
        manager: &str,
        annotations: &BTreeMap<String, String>,
    ) -> Result<(), ClusterError>;

    /// Creates an `events.k8s.io/v1` Event about the target.
    async fn create_event(&self, event: &EventNote) -> Result<(), ClusterError>;

    /// Writes the `status` of a ScalingPolicy object: a server-side apply of its `/status`
    /// subresource, field manager `setpoint`, forced. The fields of the status that setpoint
    /// applied before and left out of `status` are removed; the spec and `metadata.generation`
    /// stay as they are.
    async fn apply_status(
        &self,
        object: &ObjectRef,
        status: &PolicyStatus,
    ) -> Result<(), ClusterError>;

    // Vertical: in-place resize and pod-template patches ([`resize`]).

    /// Resizes one pod in place through its `pods/resize` subresource (Kubernetes 1.33+): a
    /// strategic merge patch of the named containers' requests and limits. Returns the pod as
    /// the API server answered; its [`Pod::resize`] is the resize status (none yet, until
    /// the kubelet has looked at it). A server before 1.33 gives a 404 whose message says so.
    async fn resize_pod(&self, pod: &str, changes: &[ContainerChange])
    -> Result<Pod, ClusterError>;

    /// Patches the target's pod template (`spec.template.spec.containers[].resources` of an
    /// apps/v1 Deployment, StatefulSet or ReplicaSet) with a strategic merge patch keyed by
    /// container name, field manager `setpoint`. Returns the template's containers after it.
    async fn patch_template(
        &self,
        target: &TargetRef,
        changes: &[ContainerChange],
    ) -> Result<Vec<ContainerResources>, ClusterError>;
}

/// A Kubernetes Event to publish about a target.
#[derive(Debug, Clone, PartialEq)]
pub struct EventNote {
    /// The object the Event is about.
    pub regarding: TargetRef,
    /// `Warning` rather than `Normal`.
    pub warning: bool,
    /// The reason, in UpperCamelCase (`ScaledUp`, `Recommendation`, `PolicyInvalid`).
    pub reason: String,
    /// What was done or would be done (`Scale`, `Recommend`, `Reload`).
    pub action: String,
    /// The explanation, for people (cut to the API's 1 kB limit).
    pub note: String,
    /// When it happened.
    pub time: SystemTime,
}

impl EventNote {
    /// A `Normal` Event about `regarding`.
    pub fn new(
        regarding: &TargetRef,
        reason: &str,
        action: &str,
        note: String,
        time: SystemTime,
    ) -> EventNote {
        EventNote {
            regarding: regarding.clone(),
            warning: false,
            reason: reason.into(),
            action: action.into(),
            note,
            time,
        }
    }

    /// The same Event as a `Warning`.
    pub fn warning(self) -> EventNote {
        EventNote {
            warning: true,
            ..self
        }
    }
}

/// Parses a Go duration as metrics.k8s.io writes a window (`30s`, `15.024s`, `1m0s`) into seconds.
pub fn go_duration(text: &str) -> Option<Seconds> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    if rest == "0" {
        return Some(0.0);
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let (unit, len) = [
            ("ns", 1e-9),
            ("us", 1e-6),
            ("µs", 1e-6),
            ("ms", 1e-3),
            ("s", 1.0),
            ("m", 60.0),
            ("h", 3600.0),
        ]
        .into_iter()
        .find(|(u, _)| rest.starts_with(u))
        .map(|(u, f)| (f, u.len()))?;
        total += value * unit;
        rest = &rest[len..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::go_duration;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration("30s"), Some(30.0));
        assert_eq!(go_duration("1m0s"), Some(60.0));
        assert_eq!(go_duration("1h2m3s"), Some(3723.0));
        assert!((go_duration("15.024s").unwrap() - 15.024).abs() < 1e-12);
        assert!((go_duration("500ms").unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(go_duration("0"), Some(0.0));
        assert_eq!(go_duration(""), None);
        assert_eq!(go_duration("12"), None);
        assert_eq!(go_duration("3x"), None);
    }
}
