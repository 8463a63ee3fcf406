//! What a tick needs to know about one pod, taken from a `Pod` object: [`PodInfo`].

use super::metrics_api::unix_seconds;
use super::quantity;
use crate::engine::Seconds;
use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;

/// The `Ready` condition of a pod.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Readiness {
    /// Whether the condition is `True`.
    pub ready: bool,
    /// When it last changed, Unix seconds (None when the API gave no time).
    pub since: Option<Seconds>,
}

/// One container's resource requests.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRequests {
    /// The container's name.
    pub name: String,
    /// CPU request in cores.
    pub cpu: Option<f64>,
    /// Memory request in bytes.
    pub memory: Option<f64>,
}

/// One pod, as a tick sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodInfo {
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
    /// The regular containers' requests.
    pub requests: Vec<ContainerRequests>,
}

impl PodInfo {
    /// Whether the pod serves: running, not shutting down, and its `Ready` condition true.
    pub fn is_ready(&self) -> bool {
        self.phase == "Running" && !self.deleting && self.ready.is_some_and(|r| r.ready)
    }

    /// Decodes a `Pod`.
    pub fn from_pod(pod: &Pod) -> Result<PodInfo, String> {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let time = |t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time| {
            t.0.as_millisecond() as f64 / 1000.0
        };
        let status = pod.status.as_ref();
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .map(|c| Readiness {
                ready: c.status == "True",
                since: c.last_transition_time.as_ref().map(time),
            });
        let mut requests = Vec::new();
        for c in pod.spec.iter().flat_map(|s| &s.containers) {
            let q = |resource: &str| -> Result<Option<f64>, String> {
                c.resources
                    .as_ref()
                    .and_then(|r| r.requests.as_ref())
                    .and_then(|r| r.get(resource))
                    .map(|v| quantity::parse(&v.0))
                    .transpose()
                    .map_err(|e| {
                        format!("pod {name} container {}: {resource} request: {e}", c.name)
                    })
            };
            requests.push(ContainerRequests {
                name: c.name.clone(),
                cpu: q("cpu")?,
                memory: q("memory")?,
            });
        }
        Ok(PodInfo {
            name: name.clone(),
            phase: status
                .and_then(|s| s.phase.clone())
                .unwrap_or_else(|| "Unknown".into()),
            deleting: pod.metadata.deletion_timestamp.is_some(),
            start_time: status.and_then(|s| s.start_time.as_ref()).map(time),
            ready,
            ip: status.and_then(|s| s.pod_ip.clone()),
            requests,
        })
    }
}

/// Unix seconds of an RFC 3339 time, for callers that build [`PodInfo`]s by hand.
pub fn at(text: &str) -> Seconds {
    unix_seconds(text).unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_pod_as_a_real_server_lists_it() {
        // From a recorded answer of a v1.24 API server without a kubelet.
        let pod: Pod = serde_json::from_str(
            r#"{"metadata":{"name":"web-68dddbb85-6s97j","namespace":"demo",
              "creationTimestamp":"2026-11-21T22:05:14Z","labels":{"app":"web"}},
              "spec":{"containers":[{"name":"app","image":"example/web",
                "resources":{"requests":{"cpu":"100m","memory":"64Mi"}}}]},
              "status":{"phase":"Pending","conditions":[{"type":"PodScheduled","status":"False",
                "lastProbeTime":null,"lastTransitionTime":"2026-11-21T22:05:14Z",
                "reason":"Unschedulable"}],"qosClass":"Burstable"}}"#,
        )
        .unwrap();
        let p = PodInfo::from_pod(&pod).unwrap();
        assert_eq!(p.phase, "Pending");
        assert_eq!(p.ready, None);
        assert_eq!(p.start_time, None);
        assert!(!p.is_ready());
        assert_eq!(p.requests[0].cpu, Some(0.1));
        assert_eq!(p.requests[0].memory, Some(64.0 * 1024.0 * 1024.0));
    }

    #[test]
    fn a_running_ready_pod() {
        let pod: Pod = serde_json::from_str(
            r#"{"metadata":{"name":"web-1"},
              "spec":{"containers":[{"name":"app","image":"x"}]},
              "status":{"phase":"Running","podIP":"10.0.0.7","startTime":"2026-11-21T22:00:00Z",
                "conditions":[{"type":"Ready","status":"True","lastTransitionTime":"2026-11-21T22:00:20Z"}]}}"#,
        )
        .unwrap();
        let p = PodInfo::from_pod(&pod).unwrap();
        assert!(p.is_ready());
        assert_eq!(p.ip.as_deref(), Some("10.0.0.7"));
        assert_eq!(p.start_time, Some(at("2026-11-21T22:00:00Z")));
        assert_eq!(p.ready.unwrap().since, Some(at("2026-11-21T22:00:20Z")));
        assert_eq!(p.requests[0].cpu, None);
    }
}
