//! The metrics.k8s.io/v1beta1 `PodMetrics` API (served by metrics-server), modelled here because
//! k8s-openapi does not include it.
//!
//! `GET /apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods?labelSelector=...` answers a
//! `PodMetricsList`:
//!
//! ```json
//! {"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {},
//!  "items": [{"metadata": {"name": "web-1", "namespace": "demo"},
//!             "timestamp": "2026-11-21T22:05:00Z", "window": "15.021s",
//!             "containers": [{"name": "app", "usage": {"cpu": "250m", "memory": "64Mi"}}]}]}
//! ```
//!
//! [`PodUsage`] is the decoded form: times in Unix seconds, CPU in cores, memory in bytes.

use crate::engine::Seconds;
use crate::engine::quantity;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `PodMetricsList` as served.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodMetricsList {
    /// `metrics.k8s.io/v1beta1`.
    #[serde(default)]
    pub api_version: String,
    /// `PodMetricsList`.
    #[serde(default)]
    pub kind: String,
    /// One entry per pod that metrics-server has a sample of.
    #[serde(default)]
    pub items: Vec<PodMetrics>,
}

/// `PodMetrics` as served.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodMetrics {
    /// Name and namespace of the pod.
    pub metadata: Metadata,
    /// When the usage was measured (the end of the window), RFC 3339.
    pub timestamp: String,
    /// Over how long the usage was averaged, as a Go duration (`15.021s`).
    pub window: String,
    /// Per container usage.
    #[serde(default)]
    pub containers: Vec<ContainerMetrics>,
}

/// The part of `metadata` used here.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// The pod's name.
    pub name: String,
    /// Its namespace.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// One container's usage as served: quantities by resource name.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ContainerMetrics {
    /// The container's name.
    pub name: String,
    /// `cpu` and `memory` quantities.
    #[serde(default)]
    pub usage: BTreeMap<String, String>,
}

/// One pod's usage, decoded.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodUsage {
    /// The pod's name.
    pub pod: String,
    /// End of the measurement window, Unix seconds.
    pub timestamp: Seconds,
    /// Length of the window, seconds.
    pub window: Seconds,
    /// Per container.
    pub containers: Vec<ContainerUsage>,
}

/// One container's usage, decoded.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerUsage {
    /// The container's name.
    pub name: String,
    /// CPU in cores.
    pub cpu: Option<f64>,
    /// Memory in bytes.
    pub memory: Option<f64>,
}

/// Unix seconds of an RFC 3339 time.
pub fn unix_seconds(text: &str) -> Result<Seconds, String> {
    let t: k8s_openapi::jiff::Timestamp = text
        .trim()
        .parse()
        .map_err(|e| format!("invalid time {text:?}: {e}"))?;
    Ok(t.as_millisecond() as f64 / 1000.0)
}

impl PodMetrics {
    /// Decodes times, the window and the quantities.
    pub fn decode(&self) -> Result<PodUsage, String> {
        let pod = &self.metadata.name;
        let timestamp = unix_seconds(&self.timestamp).map_err(|e| format!("pod {pod}: {e}"))?;
        let window = super::go_duration(&self.window)
            .ok_or_else(|| format!("pod {pod}: invalid window {:?}", self.window))?;
        let containers = self
            .containers
            .iter()
            .map(|c| {
                let q = |name: &str| {
                    c.usage
                        .get(name)
                        .map(|v| quantity::parse(v))
                        .transpose()
                        .map_err(|e| {
                            format!(
                                "pod {pod} container {}: {name}: invalid quantity: {e}",
                                c.name
                            )
                        })
                };
                Ok(ContainerUsage {
                    name: c.name.clone(),
                    cpu: q("cpu")?,
                    memory: q("memory")?,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(PodUsage {
            pod: pod.clone(),
            timestamp,
            window,
            containers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_metrics_server_serves() {
        let body = r#"{"kind":"PodMetricsList","apiVersion":"metrics.k8s.io/v1beta1","metadata":{},
            "items":[{"metadata":{"name":"web-1","namespace":"demo","creationTimestamp":"2026-11-21T22:05:10Z",
            "labels":{"app":"web"}},"timestamp":"2026-11-21T22:05:00Z","window":"15.021s",
            "containers":[{"name":"app","usage":{"cpu":"250m","memory":"64Mi"}},
                          {"name":"sidecar","usage":{"cpu":"1052848n","memory":"10Mi"}}]}]}"#;
        let list: PodMetricsList = serde_json::from_str(body).unwrap();
        let u = list.items[0].decode().unwrap();
        assert_eq!(u.pod, "web-1");
        assert_eq!(u.timestamp, 1795298700.0);
        assert!((u.window - 15.021).abs() < 1e-9);
        assert_eq!(u.containers[0].cpu, Some(0.25));
        assert_eq!(u.containers[0].memory, Some(64.0 * 1024.0 * 1024.0));
        assert!((u.containers[1].cpu.unwrap() - 0.001052848).abs() < 1e-12);
    }

    #[test]
    fn bad_quantities_name_the_pod_and_container() {
        let m = PodMetrics {
            metadata: Metadata {
                name: "p".into(),
                namespace: None,
            },
            timestamp: "2026-11-21T22:05:00Z".into(),
            window: "30s".into(),
            containers: vec![ContainerMetrics {
                name: "c".into(),
                usage: [("cpu".to_string(), "lots".to_string())].into(),
            }],
        };
        let e = m.decode().unwrap_err();
        assert!(
            e.starts_with("pod p container c: cpu: invalid quantity"),
            "{e}"
        );
    }
}
