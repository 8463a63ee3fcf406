//! The engine's [`Pod`] model, taken from a `Pod` object: [`from_pod`].
//!
//! Per container it carries the requests and limits of the spec (desired; the requests are
//! also what a utilization is relative to) and of the status (actual), the resizePolicy, the last termination (an
//! `OOMKilled` one with its time) and the restart count; the pod's QoS class; its in-place resize
//! conditions (`PodResizePending` with reason Infeasible or Deferred, `PodResizeInProgress`);
//! and its template revision.

use super::metrics_api::unix_seconds;
use crate::engine::Seconds;
use crate::engine::pod::{
    Amounts, ContainerResources, Pod, QosClass, Readiness, ResizePolicy, ResizeStatus,
    RestartPolicy, Termination,
};
use crate::engine::quantity;
use k8s_openapi::api::core::v1::{Pod as KubePod, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::BTreeMap;

/// The labels that name the template revision a pod was made from.
pub const REVISION_LABELS: [&str; 2] = ["pod-template-hash", "controller-revision-hash"];

/// The CPU and memory of a `requests` or `limits` map.
fn amounts(map: Option<&BTreeMap<String, Quantity>>, what: &str) -> Result<Amounts, String> {
    let q = |resource: &str| -> Result<Option<f64>, String> {
        map.and_then(|m| m.get(resource))
            .map(|v| quantity::parse(&v.0))
            .transpose()
            .map_err(|e| format!("{what} {resource}: invalid quantity: {e}"))
    };
    Ok(Amounts {
        cpu: q("cpu")?,
        memory: q("memory")?,
    })
}

/// The requests and limits of a `resources` block; `what` names it in errors.
pub(super) fn requirements(
    r: Option<&ResourceRequirements>,
    what: &str,
) -> Result<(Amounts, Amounts), String> {
    Ok((
        amounts(
            r.and_then(|r| r.requests.as_ref()),
            &format!("{what} request"),
        )?,
        amounts(r.and_then(|r| r.limits.as_ref()), &format!("{what} limit"))?,
    ))
}

fn time(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> Seconds {
    t.0.as_millisecond() as f64 / 1000.0
}

/// The resize status of a pod: its conditions first, then the older `status.resize` field.
fn resize_status(pod: &KubePod) -> ResizeStatus {
    let status = pod.status.as_ref();
    let conditions = status.and_then(|s| s.conditions.as_deref()).unwrap_or(&[]);
    let live = |kind: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == kind && c.status == "True")
    };
    if let Some(c) = live("PodResizePending") {
        let since = c.last_transition_time.as_ref().map(time);
        let message = c.message.clone();
        return match c.reason.as_deref() {
            Some("Infeasible") => ResizeStatus::Infeasible { since, message },
            _ => ResizeStatus::Deferred { since, message },
        };
    }
    if let Some(c) = live("PodResizeInProgress") {
        return ResizeStatus::InProgress {
            since: c.last_transition_time.as_ref().map(time),
            message: c.message.clone(),
        };
    }
    match status.and_then(|s| s.resize.as_deref()) {
        Some("Infeasible") => ResizeStatus::Infeasible {
            since: None,
            message: None,
        },
        Some("Deferred") => ResizeStatus::Deferred {
            since: None,
            message: None,
        },
        Some("InProgress" | "Proposed") => ResizeStatus::InProgress {
            since: None,
            message: None,
        },
        _ => ResizeStatus::None,
    }
}

/// Decodes a `Pod` into the engine's pod model.
pub fn from_pod(pod: &KubePod) -> Result<Pod, String> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let status = pod.status.as_ref();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map(|c| Readiness {
            ready: c.status == "True",
            since: c.last_transition_time.as_ref().map(time),
        });
    let statuses = status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or(&[]);
    let mut containers = Vec::new();
    for c in pod.spec.iter().flat_map(|s| &s.containers) {
        let what = format!("pod {name} container {}", c.name);
        let (requests, limits) = requirements(c.resources.as_ref(), &what)?;
        let mut resize_policy = ResizePolicy::default();
        for p in c.resize_policy.iter().flatten() {
            let policy = if p.restart_policy == "RestartContainer" {
                RestartPolicy::RestartContainer
            } else {
                RestartPolicy::NotRequired
            };
            match p.resource_name.as_str() {
                "cpu" => resize_policy.cpu = policy,
                "memory" => resize_policy.memory = policy,
                _ => {}
            }
        }
        let st = statuses.iter().find(|s| s.name == c.name);
        let actual = match st.and_then(|s| s.resources.as_ref()) {
            Some(r) => {
                let (req, lim) = requirements(Some(r), &format!("{what} status"))?;
                (Some(req), Some(lim))
            }
            None => (None, None),
        };
        containers.push(ContainerResources {
            name: c.name.clone(),
            requests,
            limits,
            actual_requests: actual.0,
            actual_limits: actual.1,
            resize_policy,
            last_termination: st
                .and_then(|s| s.last_state.as_ref())
                .and_then(|l| l.terminated.as_ref())
                .map(|t| Termination {
                    reason: t.reason.clone().unwrap_or_default(),
                    finished_at: t.finished_at.as_ref().map(time),
                    exit_code: t.exit_code,
                }),
            restart_count: st.map_or(0, |s| s.restart_count.max(0) as u32),
        });
    }
    Ok(Pod {
        name: name.clone(),
        phase: status
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Unknown".into()),
        deleting: pod.metadata.deletion_timestamp.is_some(),
        start_time: status.and_then(|s| s.start_time.as_ref()).map(time),
        ready,
        ip: status.and_then(|s| s.pod_ip.clone()),
        containers,
        qos_class: status
            .and_then(|s| s.qos_class.as_deref())
            .and_then(QosClass::parse),
        resize: resize_status(pod),
        revision: pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| REVISION_LABELS.iter().find_map(|k| l.get(*k).cloned())),
    })
}

/// Unix seconds of an RFC 3339 time, for callers that build [`Pod`]s by hand.
pub fn at(text: &str) -> Seconds {
    unix_seconds(text).unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_pod_as_a_real_server_lists_it() {
        // From a recorded answer of a v1.24 API server without a kubelet.
        let pod: KubePod = serde_json::from_str(
            r#"{"metadata":{"name":"web-68dddbb85-6s97j","namespace":"demo",
              "creationTimestamp":"2026-11-21T22:05:14Z","labels":{"app":"web"}},
              "spec":{"containers":[{"name":"app","image":"example/web",
                "resources":{"requests":{"cpu":"100m","memory":"64Mi"}}}]},
              "status":{"phase":"Pending","conditions":[{"type":"PodScheduled","status":"False",
                "lastProbeTime":null,"lastTransitionTime":"2026-11-21T22:05:14Z",
                "reason":"Unschedulable"}],"qosClass":"Burstable"}}"#,
        )
        .unwrap();
        let p = from_pod(&pod).unwrap();
        assert_eq!(p.phase, "Pending");
        assert_eq!(p.ready, None);
        assert_eq!(p.start_time, None);
        assert!(!p.is_ready());
        assert_eq!(p.containers[0].requests.cpu, Some(0.1));
        assert_eq!(
            p.containers[0].requests.memory,
            Some(64.0 * 1024.0 * 1024.0)
        );
    }

    #[test]
    fn a_running_ready_pod() {
        let pod: KubePod = serde_json::from_str(
            r#"{"metadata":{"name":"web-1"},
              "spec":{"containers":[{"name":"app","image":"x"}]},
              "status":{"phase":"Running","podIP":"10.0.0.7","startTime":"2026-11-21T22:00:00Z",
                "conditions":[{"type":"Ready","status":"True","lastTransitionTime":"2026-11-21T22:00:20Z"}]}}"#,
        )
        .unwrap();
        let p = from_pod(&pod).unwrap();
        assert!(p.is_ready());
        assert_eq!(p.ip.as_deref(), Some("10.0.0.7"));
        assert_eq!(p.start_time, Some(at("2026-11-21T22:00:00Z")));
        assert_eq!(p.ready.unwrap().since, Some(at("2026-11-21T22:00:20Z")));
        assert_eq!(p.containers[0].requests.cpu, None);
        assert_eq!(p.resize, ResizeStatus::None);
        assert_eq!(p.revision, None);
    }

    #[test]
    fn resources_resize_policy_ooms_and_resize_conditions() {
        let pod: KubePod = serde_json::from_str(
            r#"{"metadata":{"name":"web-1","labels":{"app":"web","pod-template-hash":"68dddbb85"}},
              "spec":{"containers":[{"name":"app","image":"x",
                "resources":{"requests":{"cpu":"250m","memory":"256Mi"},"limits":{"cpu":"500m","memory":"512Mi"}},
                "resizePolicy":[{"resourceName":"cpu","restartPolicy":"NotRequired"},
                                {"resourceName":"memory","restartPolicy":"RestartContainer"}]}]},
              "status":{"phase":"Running","qosClass":"Burstable",
                "conditions":[{"type":"PodResizePending","status":"True","reason":"Deferred",
                  "message":"Node didn't have enough resource: cpu","lastTransitionTime":"2026-11-21T22:10:00Z"}],
                "containerStatuses":[{"name":"app","image":"x","imageID":"","ready":true,"restartCount":2,
                  "resources":{"requests":{"cpu":"100m","memory":"256Mi"},"limits":{"cpu":"200m","memory":"512Mi"}},
                  "lastState":{"terminated":{"exitCode":137,"reason":"OOMKilled",
                    "startedAt":"2026-11-21T22:00:00Z","finishedAt":"2026-11-21T22:09:00Z"}}}]}}"#,
        )
        .unwrap();
        let p = from_pod(&pod).unwrap();
        let c = &p.containers[0];
        assert_eq!(c.requests.cpu, Some(0.25));
        assert_eq!(c.limits.memory, Some(512.0 * 1024.0 * 1024.0));
        assert_eq!(c.actual_requests.unwrap().cpu, Some(0.1));
        assert!(c.differs_from_actual());
        assert_eq!(c.resize_policy.cpu, RestartPolicy::NotRequired);
        assert_eq!(c.resize_policy.memory, RestartPolicy::RestartContainer);
        assert_eq!(c.restart_count, 2);
        let t = c.last_termination.as_ref().unwrap();
        assert_eq!((t.reason.as_str(), t.exit_code), ("OOMKilled", 137));
        assert_eq!(t.finished_at, Some(at("2026-11-21T22:09:00Z")));
        assert_eq!(p.oom_kills().count(), 1);
        assert_eq!(p.qos_class, Some(QosClass::Burstable));
        assert_eq!(p.revision.as_deref(), Some("68dddbb85"));
        assert_eq!(
            p.resize,
            ResizeStatus::Deferred {
                since: Some(at("2026-11-21T22:10:00Z")),
                message: Some("Node didn't have enough resource: cpu".into())
            }
        );
        assert!(p.is_active());
    }

    #[test]
    fn infeasible_in_progress_and_the_older_status_field() {
        let with = |status: &str| -> Pod {
            let pod: KubePod = serde_json::from_str(&format!(
                r#"{{"metadata":{{"name":"p","labels":{{"controller-revision-hash":"db-5d8f"}}}},
                   "spec":{{"containers":[{{"name":"app","image":"x"}}]}},"status":{status}}}"#
            ))
            .unwrap();
            from_pod(&pod).unwrap()
        };
        let p = with(
            r#"{"phase":"Running","conditions":[{"type":"PodResizePending","status":"True","reason":"Infeasible",
               "message":"Node didn't have enough capacity: cpu, requested: 8000, capacity: 4000"}]}"#,
        );
        assert!(matches!(p.resize, ResizeStatus::Infeasible { .. }));
        assert_eq!(p.revision.as_deref(), Some("db-5d8f"));
        let p = with(
            r#"{"phase":"Running","conditions":[{"type":"PodResizeInProgress","status":"True"}]}"#,
        );
        assert!(matches!(p.resize, ResizeStatus::InProgress { .. }));
        let p = with(r#"{"phase":"Running","resize":"Infeasible"}"#);
        assert!(matches!(p.resize, ResizeStatus::Infeasible { .. }));
        let p = with(
            r#"{"phase":"Running","conditions":[{"type":"PodResizePending","status":"False","reason":"Infeasible"}]}"#,
        );
        assert_eq!(p.resize, ResizeStatus::None);
    }
}
