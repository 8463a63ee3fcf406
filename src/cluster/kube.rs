//! [`KubeCluster`]: the [`Cluster`] seam over kube-rs.
//!
//! - The target's scale goes through its `/scale` subresource, so a Deployment, a StatefulSet, a
//!   ReplicaSet or any custom resource with a scale subresource works the same way. The plural
//!   of the built-in kinds is known; for other kinds it is found through API discovery of the
//!   target's group and version.
//! - Pods are listed by the selector that the scale subresource reports.
//! - With a watch cache ([`KubeCluster::with_cache`], `setpoint run`), the scale of an apps/v1
//!   Deployment, StatefulSet or ReplicaSet, its annotations and the pods come from the cache
//!   ([`super::cache`]) instead: no request per tick. Custom kinds keep `GET /scale`; writes,
//!   and the re-read after a 409 ([`Cluster::scale_fresh`]), go to the API server. Without one
//!   (`recommend`, one tick) every read is a request.
//! - Pod usage comes from `metrics.k8s.io/v1beta1` (decoded by [`super::metrics_api`]).
//!
//! The client uses rustls with the aws-lc-rs provider, the same one reqwest uses: a second
//! provider in the build would make rustls refuse to pick one at start-up.

use super::cache::{Cache, CachedTarget};
use super::metrics_api::PodMetricsList;
use super::{Cluster, ClusterError, EventNote, PodUsage, ScaleState};
use crate::engine::pod::{self, ContainerResources};
use crate::engine::vertical_plan::ContainerChange;
use crate::policy::status::PolicyStatus;
use crate::policy::{ObjectRef, TargetRef};
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use std::collections::BTreeMap;
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

/// The field manager of every change setpoint makes.
pub const FIELD_MANAGER: &str = "setpoint";

/// The `reportingController` of setpoint's Events.
pub const REPORTING_CONTROLLER: &str = "setpoint.dev/setpoint";

/// The cluster through kube-rs, in one namespace.
#[derive(Clone)]
pub struct KubeCluster {
    client: kube::Client,
    namespace: String,
    identity: String,
    /// The uid and resourceVersion of each target as its `/scale` last showed them, for the
    /// `regarding` of its Events.
    seen: std::sync::Arc<std::sync::Mutex<BTreeMap<TargetKey, ObjectIds>>>,
    /// The watch cache, in the daemon.
    cache: Option<Cache>,
}

/// A target by API version, kind and name.
type TargetKey = (String, String, String);

/// What `kubectl describe` needs of an Event's `regarding`: the object's uid (it selects Events
/// by it) and the resourceVersion it had.
#[derive(Debug, Clone, PartialEq)]
struct ObjectIds {
    uid: Option<String>,
    resource_version: Option<String>,
}

fn target_key(t: &TargetRef) -> TargetKey {
    (t.api_version.clone(), t.kind.clone(), t.name.clone())
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
        Ok(KubeCluster::new(client, namespace))
    }

    /// A cluster adapter over an existing client.
    pub fn new(client: kube::Client, namespace: impl Into<String>) -> KubeCluster {
        KubeCluster {
            client,
            namespace: namespace.into(),
            identity: identity_from_env().unwrap_or_else(|| "setpoint".into()),
            seen: Default::default(),
            cache: None,
        }
    }

    /// The same adapter reading from a watch cache of its namespace ([`super::cache`]), whose
    /// reflectors start now (on the current tokio runtime) and stop when `stop` turns true or
    /// its sender is dropped.
    pub fn with_cache(mut self, stop: tokio::sync::watch::Receiver<bool>) -> KubeCluster {
        self.cache = Some(Cache::start(&self.client, &self.namespace, stop));
        self
    }

    /// Names this instance in its Events' `reportingInstance` (default: `$POD_NAME`, then
    /// `$HOSTNAME`, then `setpoint`).
    pub fn with_identity(mut self, identity: impl Into<String>) -> KubeCluster {
        self.identity = identity.into();
        self
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
            .map_err(|e| api_error(what, &e))
    }

    fn what(&self, verb: &str, sub: &str, target: &TargetRef) -> String {
        format!(
            "{verb} {sub}{} {} in namespace {}",
            target.kind, target.name, self.namespace
        )
    }

    /// The uid and resourceVersion of the object an Event is about: as the target's `/scale`
    /// last showed them, else read now (a pod, or a target not read yet). None when the read
    /// fails: the Event goes out without them rather than not at all.
    async fn regarding_ids(&self, target: &TargetRef) -> Option<ObjectIds> {
        let key = target_key(target);
        if let Some(ids) = self.seen.lock().ok()?.get(&key) {
            return Some(ids.clone());
        }
        let meta = if target.kind == "Pod" && target.api_version == "v1" {
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
            api.get(&target.name).await.ok()?.metadata
        } else {
            let (api, _) = self.api(target).await.ok()?;
            api.get(&target.name).await.ok()?.metadata
        };
        Some(ObjectIds {
            uid: meta.uid,
            resource_version: meta.resource_version,
        })
    }

    /// Remembers what a `/scale` read showed of its target.
    fn saw(&self, target: &TargetRef, scale: &Scale) {
        self.saw_ids(
            target,
            ObjectIds {
                uid: scale.metadata.uid.clone(),
                resource_version: scale.metadata.resource_version.clone(),
            },
        );
    }

    fn saw_ids(&self, target: &TargetRef, ids: ObjectIds) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.insert(target_key(target), ids);
        }
    }

    pub(super) async fn api(
        &self,
        target: &TargetRef,
    ) -> Result<(Api<DynamicObject>, ApiResource), ClusterError> {
        let resource = self.resource(target).await?;
        let api = Api::namespaced_with(self.client.clone(), &self.namespace, &resource);
        Ok((api, resource))
    }
}

/// Adds to a 403 the RBAC right that was missing: `verb` on `resource` (with `/sub` for a
/// subresource).
pub(super) fn needs(
    e: ClusterError,
    verb: &str,
    resource: &ApiResource,
    sub: &str,
) -> ClusterError {
    match e {
        ClusterError::Api {
            what,
            code: 403,
            reason,
            message,
        } => ClusterError::Api {
            what,
            code: 403,
            reason,
            message: format!(
                "{message} (the Role needs verb {verb:?} on resource \"{}{sub}\" in API group \"{}\")",
                resource.plural, resource.group
            ),
        },
        other => other,
    }
}

/// A (non-apply) patch by field manager `setpoint`.
pub(super) fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    }
}

/// The ScalingPolicy kind, `scalingpolicies.setpoint.dev`.
fn scalingpolicies() -> ApiResource {
    let (group, version) = crate::policy::API_VERSION
        .split_once('/')
        .expect("a group and a version");
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: crate::policy::API_VERSION.into(),
        kind: crate::policy::KIND.into(),
        plural: "scalingpolicies".into(),
    }
}

pub(super) fn pods_resource() -> ApiResource {
    ApiResource::erase::<Pod>(&())
}

/// This instance's identity from the environment: `POD_NAME` (set from the downward API by
/// deploy/), else `HOSTNAME` (a pod's name by default), else the machine's host name (outside a
/// pod, where shells rarely export `HOSTNAME`; see [`identity_note`]), else None. It names the
/// Lease holder and the Events' `reportingInstance`.
pub fn identity_from_env() -> Option<String> {
    identity_from(
        std::env::var("POD_NAME").ok(),
        std::env::var("HOSTNAME").ok(),
    )
    .or_else(machine_hostname)
}

/// When the identity is the machine's host name (neither `POD_NAME` nor `HOSTNAME` set), a line
/// saying so, for the log.
pub fn identity_note() -> Option<String> {
    let from_env = identity_from(
        std::env::var("POD_NAME").ok(),
        std::env::var("HOSTNAME").ok(),
    );
    match (from_env, machine_hostname()) {
        (None, Some(host)) => Some(format!(
            "neither POD_NAME nor HOSTNAME is set: this replica is named by the machine's host \
             name {host:?} (set POD_NAME to choose)"
        )),
        _ => None,
    }
}

/// The machine's host name, as the kernel has it (`/proc/sys/kernel/hostname`, else
/// `/etc/hostname`).
fn machine_hostname() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .into_iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
}

fn identity_from(pod_name: Option<String>, hostname: Option<String>) -> Option<String> {
    [pod_name, hostname]
        .into_iter()
        .flatten()
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
}

/// A `Scale` as a [`ScaleState`].
fn scale_state(what: &str, scale: Scale) -> Result<ScaleState, ClusterError> {
    let count = |v: i32, field: &str| {
        u32::try_from(v).map_err(|_| ClusterError::Invalid {
            what: what.to_string(),
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

/// A cached target as a [`ScaleState`], as its `/scale` would show it.
fn cached_scale(what: &str, t: CachedTarget) -> Result<ScaleState, ClusterError> {
    let status = k8s_openapi::api::autoscaling::v1::ScaleStatus {
        replicas: t.status_replicas,
        selector: Some(t.selector),
    };
    let scale = Scale {
        metadata: ObjectMeta {
            resource_version: t.resource_version,
            ..ObjectMeta::default()
        },
        spec: Some(k8s_openapi::api::autoscaling::v1::ScaleSpec {
            replicas: Some(t.spec_replicas),
        }),
        status: Some(status),
    };
    scale_state(what, scale)
}

/// The longest `note` the API server takes (events.k8s.io/v1 validation: 1 kB).
const NOTE_LIMIT: usize = 1024;

fn cut(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let mut end = limit - 3;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// A kube-rs error as a [`ClusterError`] about `what`: the one mapping of kube-rs errors (the
/// Lease's too, [`super::lease`]); its message carries the RBAC hint ([`ClusterError::Api`]).
pub(super) fn api_error(what: String, e: &kube::Error) -> ClusterError {
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
            message: crate::text::error_chain(other),
        },
    }
}

impl Cluster for KubeCluster {
    fn namespace(&self) -> &str {
        &self.namespace
    }

    async fn scale(&self, target: &TargetRef) -> Result<ScaleState, ClusterError> {
        match self.cache.as_ref().and_then(|c| c.target(target)) {
            Some(cached) => {
                let cached = cached?;
                self.saw_ids(
                    target,
                    ObjectIds {
                        uid: cached.uid.clone(),
                        resource_version: cached.resource_version.clone(),
                    },
                );
                cached_scale(&self.what("read", "scale of ", target), cached)
            }
            None => self.scale_fresh(target).await,
        }
    }

    async fn scale_fresh(&self, target: &TargetRef) -> Result<ScaleState, ClusterError> {
        let (api, resource) = self.api(target).await?;
        let what = self.what("GET", "scale of ", target);
        let scale = api
            .get_scale(&target.name)
            .await
            .map_err(|e| needs(api_error(what.clone(), &e), "get", &resource, "/scale"))?;
        self.saw(target, &scale);
        scale_state(&what, scale)
    }

    async fn pods(&self, selector: &str) -> Result<Vec<pod::Pod>, ClusterError> {
        let what = format!(
            "GET pods with selector {selector:?} in namespace {}",
            self.namespace
        );
        let decoded = match &self.cache {
            Some(cache) => cache
                .pods(selector)?
                .iter()
                .map(|p| p.pod.clone())
                .collect::<Result<_, _>>(),
            None => {
                let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
                let list = api
                    .list(&ListParams::default().labels(selector))
                    .await
                    .map_err(|e| {
                        needs(api_error(what.clone(), &e), "list", &pods_resource(), "")
                    })?;
                list.items.iter().map(super::pods::from_pod).collect()
            }
        };
        decoded.map_err(|message| ClusterError::Invalid { what, message })
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
        let list: PodMetricsList = self.client.request(request).await.map_err(|e| {
            let resource = ApiResource {
                group: "metrics.k8s.io".into(),
                version: "v1beta1".into(),
                api_version: "metrics.k8s.io/v1beta1".into(),
                kind: "PodMetrics".into(),
                plural: "pods".into(),
            };
            needs(api_error(what.clone(), &e), "list", &resource, "")
        })?;
        list.items
            .iter()
            .map(|m| m.decode())
            .collect::<Result<_, _>>()
            .map_err(|message| ClusterError::Invalid { what, message })
    }

    async fn patch_scale(
        &self,
        target: &TargetRef,
        replicas: u32,
        resource_version: Option<&str>,
    ) -> Result<ScaleState, ClusterError> {
        let (api, resource) = self.api(target).await?;
        let what = self.what("PATCH", "scale of ", target);
        let mut body = serde_json::json!({"spec": {"replicas": replicas}});
        if let Some(v) = resource_version {
            body["metadata"] = serde_json::json!({"resourceVersion": v});
        }
        let params = patch_params();
        let scale = api
            .patch_scale(&target.name, &params, &Patch::Merge(&body))
            .await
            .map_err(|e| needs(api_error(what.clone(), &e), "patch", &resource, "/scale"))?;
        self.saw(target, &scale);
        scale_state(&what, scale)
    }

    async fn annotations(
        &self,
        target: &TargetRef,
    ) -> Result<BTreeMap<String, String>, ClusterError> {
        if let Some(cached) = self.cache.as_ref().and_then(|c| c.target(target)) {
            return cached.map(|t| t.annotations);
        }
        let (api, resource) = self.api(target).await?;
        let what = self.what("GET", "", target);
        let object = api
            .get(&target.name)
            .await
            .map_err(|e| needs(api_error(what, &e), "get", &resource, ""))?;
        Ok(object.metadata.annotations.unwrap_or_default())
    }

    async fn apply_annotations(
        &self,
        target: &TargetRef,
        manager: &str,
        annotations: &BTreeMap<String, String>,
    ) -> Result<(), ClusterError> {
        let (api, resource) = self.api(target).await?;
        let what = self.what("PATCH (apply) annotations of", "", target);
        let body = serde_json::json!({
            "apiVersion": target.api_version,
            "kind": target.kind,
            "metadata": {"name": target.name, "annotations": annotations},
        });
        api.patch(
            &target.name,
            &PatchParams::apply(manager).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(|e| needs(api_error(what, &e), "patch", &resource, ""))?;
        Ok(())
    }

    async fn create_event(&self, event: &EventNote) -> Result<(), ClusterError> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), &self.namespace);
        let target = &event.regarding;
        let what = format!(
            "POST events.k8s.io Event about {} {} in namespace {}",
            target.kind, target.name, self.namespace
        );
        let time = k8s_openapi::jiff::Timestamp::try_from(event.time).map_err(|e| {
            ClusterError::Invalid {
                what: what.clone(),
                message: format!("event time: {e}"),
            }
        })?;
        let ids = self.regarding_ids(target).await;
        let body = Event {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}-", target.name)),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(time)),
            reporting_controller: Some(REPORTING_CONTROLLER.into()),
            reporting_instance: Some(cut(&self.identity, 128)),
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            type_: Some(if event.warning { "Warning" } else { "Normal" }.into()),
            note: Some(cut(&event.note, NOTE_LIMIT)),
            regarding: Some(ObjectReference {
                api_version: Some(target.api_version.clone()),
                kind: Some(target.kind.clone()),
                name: Some(target.name.clone()),
                namespace: Some(self.namespace.clone()),
                // `kubectl describe` selects Events by the object's uid.
                uid: ids.as_ref().and_then(|i| i.uid.clone()),
                resource_version: ids.and_then(|i| i.resource_version),
                ..ObjectReference::default()
            }),
            ..Event::default()
        };
        let events = ApiResource::erase::<Event>(&());
        api.create(&PostParams::default(), &body)
            .await
            .map_err(|e| needs(api_error(what, &e), "create", &events, ""))?;
        Ok(())
    }

    async fn apply_status(
        &self,
        object: &ObjectRef,
        status: &PolicyStatus,
    ) -> Result<(), ClusterError> {
        let resource = scalingpolicies();
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &self.namespace, &resource);
        let what = format!(
            "PATCH (apply) status of {} {} in namespace {}",
            crate::policy::KIND,
            object.name,
            self.namespace
        );
        let body = serde_json::json!({
            "apiVersion": crate::policy::API_VERSION,
            "kind": crate::policy::KIND,
            "metadata": {"name": object.name},
            "status": status,
        });
        api.patch_status(
            &object.name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(|e| needs(api_error(what, &e), "patch", &resource, "/status"))?;
        Ok(())
    }

    // Vertical: in-place resize and pod-template patches (src/cluster/resize.rs).

    async fn resize_pod(
        &self,
        pod: &str,
        changes: &[ContainerChange],
    ) -> Result<pod::Pod, ClusterError> {
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

#[cfg(test)]
mod tests {
    use super::identity_from;

    #[test]
    fn identity_is_the_pod_name_then_the_host_name() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(identity_from(s("pod-a"), s("host")), s("pod-a"));
        assert_eq!(identity_from(s(" "), s("host")), s("host"));
        assert_eq!(identity_from(None, s("host")), s("host"));
        assert_eq!(identity_from(None, s("")), None);
    }

    #[test]
    fn the_machine_host_name_is_the_last_fallback() {
        let host = super::machine_hostname().expect("a host name");
        assert!(!host.is_empty() && !host.contains('\n'), "{host:?}");
    }
}
