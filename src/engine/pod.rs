//! The pod model: one [`Pod`] and its containers' resources, as the engine sees them (the HPA's
//! pod rules and the vertical planner both read it; the cluster adapter builds it from `Pod`
//! objects).

use super::Seconds;
use super::quantity::Resource;
use serde::{Deserialize, Serialize};
use std::fmt;

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

/// The `Ready` condition of a pod.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Readiness {
    /// Whether the condition is `True`.
    pub ready: bool,
    /// When it last changed, Unix seconds (None when the API gave no time).
    pub since: Option<Seconds>,
}

/// One pod, as a tick sees it: for the HPA's pod rules (phase, readiness and its times, IP,
/// requests) and for the vertical planner (resources, QoS class, resize, revision).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pod {
    /// The pod's name.
    pub name: String,
    /// `status.phase`: Pending, Running, Succeeded, Failed or Unknown.
    pub phase: String,
    /// Whether `metadata.deletionTimestamp` is set (the pod is shutting down).
    pub deleting: bool,
    /// `status.startTime`, Unix seconds: when the kubelet accepted the pod.
    pub start_time: Option<Seconds>,
    /// The `Ready` condition, if the pod has one yet.
    pub ready: Option<Readiness>,
    /// `status.podIP`.
    pub ip: Option<String>,
    /// The regular containers' resources (requests and limits of the spec and of the status),
    /// resizePolicy, last termination and restarts.
    pub containers: Vec<ContainerResources>,
    /// `status.qosClass` (None: computed from the containers).
    pub qos_class: Option<QosClass>,
    /// Its in-place resize, from the `PodResizePending` and `PodResizeInProgress` conditions
    /// (or the older `status.resize`).
    pub resize: ResizeStatus,
    /// The template revision it was made from: its `pod-template-hash` (Deployment, ReplicaSet)
    /// or `controller-revision-hash` (StatefulSet) label.
    pub revision: Option<String>,
}

impl Pod {
    /// Whether the pod serves: running, not shutting down, and its `Ready` condition true.
    pub fn is_ready(&self) -> bool {
        self.is_active() && self.ready.is_some_and(|r| r.ready)
    }

    /// Running and not shutting down: a pod the planner may resize.
    pub fn is_active(&self) -> bool {
        self.phase == "Running" && !self.deleting
    }

    /// Its QoS class: `status.qosClass`, else computed from the containers.
    pub fn qos(&self) -> QosClass {
        self.qos_class
            .unwrap_or_else(|| QosClass::of(&self.containers))
    }

    /// Its container of this name.
    pub fn container(&self, name: &str) -> Option<&ContainerResources> {
        self.containers.iter().find(|c| c.name == name)
    }

    /// A container's last termination when it was an OOM kill: (the container, finishedAt).
    pub fn oom_kills(&self) -> impl Iterator<Item = (&ContainerResources, Option<Seconds>)> {
        self.containers.iter().filter_map(|c| {
            c.last_termination
                .as_ref()
                .filter(|t| t.reason == "OOMKilled")
                .map(|t| (c, t.finished_at))
        })
    }
}
