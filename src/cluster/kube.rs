//! [`KubeCluster`]: the [`Cluster`] seam over kube-rs.
//!
//! - The target's scale goes through its `/scale` subresource, so a Deployment, a StatefulSet, a
//!   ReplicaSet or any custom resource with a scale subresource works the same way. The plural
//!   of the built-in kinds is known; for other kinds it is found through API discovery of the
//!   target's group and version.
//! - Pods are listed by the selector that the scale subresource reports.
//! - Pod usage comes from `metrics.k8s.io/v1beta1` (decoded by [`super::metrics_api`]).
//!
//! The client uses rustls with the aws-lc-rs provider, the same one reqwest uses: a second
//! provider in the build would make rustls refuse to pick one at start-up.

use super::metrics_api::PodMetricsList;
use super::{Cluster, ClusterError, PodInfo, PodUsage, ScaleState};
use crate::engine::vertical_plan::{ContainerChange, ContainerResources};
use crate::policy::TargetRef;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use std::path::PathBuf;

/// How to reach the cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterConfig {
    /// A kubeconfig file (default: `$KUBECONFIG`, then `~/.kube/config`, then the in-cluster
    /// service account).
    pub kubeconfig: Option<PathBuf>,
    /// A context of the kubeconfig (default: its current context).
    pub context: Option<String>,
    /// The namespace (default: the context's namespace, or the service account's).
    pub namespace: Option<String>,
}

/// The cluster through kube-rs, in one namespace.
#[derive(Clone)]
pub struct KubeCluster {
    client: kube::Client,
    namespace: String,
}

impl std::fmt::Debug for KubeCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeCluster")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

fn config_error(e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Config(e.to_string())
}

impl KubeCluster {
    /// Connects as `config` says (no request is made yet).
    pub async fn connect(config: &ClusterConfig) -> Result<KubeCluster, ClusterError> {
        let options = KubeConfigOptions {
            context: config.context.clone(),
            ..KubeConfigOptions::default()
        };
        let kube_config = match &config.kubeconfig {
            Some(path) => {
                let file = Kubeconfig::read_from(path)
                    .map_err(|e| config_error(format!("{}: {e}", path.display())))?;
                kube::Config::from_custom_kubeconfig(file, &options)
                    .await
                    .map_err(|e| config_error(format!("{}: {e}", path.display())))?
            }
            None if config.context.is_some() => kube::Config::from_kubeconfig(&options)
                .await
                .map_err(config_error)?,
            None => kube::Config::infer().await.map_err(config_error)?,
        };
        let namespace = config
            .namespace
            .clone()
            .unwrap_or_else(|| kube_config.default_namespace.clone());
        let client = kube::Client::try_from(kube_config).map_err(config_error)?;
        Ok(KubeCluster { client, namespace })
    }

    /// A cluster adapter over an existing client.
    pub fn new(client: kube::Client, namespace: impl Into<String>) -> KubeCluster {
        KubeCluster {
            client,
            namespace: namespace.into(),
        }
    }

    /// The kube-rs client (for the daemon's other adapters).
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// The API resource of a target: known plurals for the built-in kinds, discovery otherwise.
    async fn resource(&self, target: &TargetRef) -> Result<ApiResource, ClusterError> {
        let (group, version) = match target.api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", target.api_version.as_str()),
        };
        let gvk = GroupVersionKind::gvk(group, version, &target.kind);
        let builtin = matches!(
            (group, target.kind.as_str()),
            ("apps", "Deployment" | "StatefulSet" | "ReplicaSet") | ("", "ReplicationController")
        );
        if builtin {
            return Ok(ApiResource::from_gvk(&gvk));
        }
        let what = format!("discovery of {} {}", target.api_version, target.kind);
        kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .map(|(resource, _)| resource)
            .map_err(|e| api_error(what, e))
    }

    fn what_scale(&self, target: &TargetRef) -> String {
        format!(
            "GET scale of {} {} in namespace {}",
            target.kind, target.name, self.namespace
        )
    }
}

/// A kube-rs error as a [`ClusterError`] about `what`.
pub(super) fn api_error(what: String, e: kube::Error) -> ClusterError {
    match e {
        kube::Error::Api(status) => ClusterError::Api {
            what,
            code: status.code,
            reason: status.reason.clone(),
            message: status.message.trim().to_string(),
        },
        kube::Error::SerdeError(e) => ClusterError::Invalid {
            what,
            message: format!("cannot decode the answer: {e}"),
        },
        other => ClusterError::Transport {
            what,
            message: crate::text::error_chain(&other),
        },
    }
}

impl Cluster for KubeCluster {
    fn namespace(&self) -> &str {
        &self.namespace
    }

    async fn scale(&self, target: &TargetRef) -> Result<ScaleState, ClusterError> {
        let resource = self.resource(target).await?;
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &self.namespace, &resource);
        let what = self.what_scale(target);
        let scale = api
            .get_scale(&target.name)
            .await
            .map_err(|e| api_error(what.clone(), e))?;
        let count = |v: i32, field: &str| {
            u32::try_from(v).map_err(|_| ClusterError::Invalid {
                what: what.clone(),
                message: format!("{field} is {v}"),
            })
        };
        let status = scale.status.unwrap_or_default();
        Ok(ScaleState {
            spec_replicas: count(
                scale.spec.and_then(|s| s.replicas).unwrap_or(0),
                "spec.replicas",
            )?,
            status_replicas: count(status.replicas, "status.replicas")?,
            selector: status.selector.filter(|s| !s.is_empty()),
            resource_version: scale.metadata.resource_version,
        })
    }

    async fn pods(&self, selector: &str) -> Result<Vec<PodInfo>, ClusterError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let what = format!(
            "GET pods with selector {selector:?} in namespace {}",
            self.namespace
        );
        let list = api
            .list(&ListParams::default().labels(selector))
            .await
            .map_err(|e| api_error(what.clone(), e))?;
        list.items
            .iter()
            .map(PodInfo::from_pod)
            .collect::<Result<_, _>>()
            .map_err(|message| ClusterError::Invalid { what, message })
    }

    async fn pod_metrics(&self, selector: &str) -> Result<Vec<PodUsage>, ClusterError> {
        let what = format!(
            "GET metrics.k8s.io pods with selector {selector:?} in namespace {}",
            self.namespace
        );
        let request = kube::core::Request::new(format!(
            "/apis/metrics.k8s.io/v1beta1/namespaces/{}/pods",
            self.namespace
        ))
        .list(&ListParams::default().labels(selector))
        .map_err(|e| ClusterError::Invalid {
            what: what.clone(),
            message: e.to_string(),
        })?;
        let list: PodMetricsList = self
            .client
            .request(request)
            .await
            .map_err(|e| api_error(what.clone(), e))?;
        list.items
            .iter()
            .map(|m| m.decode())
            .collect::<Result<_, _>>()
            .map_err(|message| ClusterError::Invalid { what, message })
    }

    // Vertical: in-place resize and pod-template patches (src/cluster/resize.rs).

    async fn resize_pod(
        &self,
        pod: &str,
        changes: &[ContainerChange],
    ) -> Result<PodInfo, ClusterError> {
        self.resize_pod_in_place(pod, changes).await
    }

    async fn patch_template(
        &self,
        target: &TargetRef,
        changes: &[ContainerChange],
    ) -> Result<Vec<ContainerResources>, ClusterError> {
        self.patch_pod_template(target, changes).await
    }
}
