//! Writing container resources: in-place pod resize and pod-template patches, for
//! [`KubeCluster`] (the [`Cluster`] impl in [`super::kube`] forwards here).
//!
//! - **In place**: `PATCH /api/v1/namespaces/{ns}/pods/{pod}/resize` (Kubernetes 1.33 and
//!   later), with a strategic merge patch of `spec.containers[].resources`, keyed by container
//!   name, as `kubectl patch pod --subresource resize` sends it:
//!   `{"spec":{"containers":[{"name":"app","resources":{"requests":{"cpu":"500m"},"limits":{"cpu":"1"}}}]}}`.
//!   Only the containers and resources that change are named; everything else in the pod is
//!   left as it is. The answer is the pod, whose status carries the resize conditions once the
//!   kubelet has looked at it. A server before 1.33 answers 404 NotFound for the subresource:
//!   the error says so. A 1.33 server refuses to lower the memory limit of a container whose
//!   memory resizePolicy is `NotRequired` (422 Invalid; 1.34 allows it):
//!   [`memory_limit_decrease_refused`] tells that refusal from the other 422s, so that the
//!   caller can take the fallback instead.
//! - **Template**: a strategic merge patch of `spec.template.spec.containers[].resources` of the
//!   workload (apps/v1 Deployment, StatefulSet or ReplicaSet), with field manager `setpoint`.
//!   A strategic merge patch (not server-side apply) because it touches exactly the fields
//!   named and nothing else: server-side apply would make setpoint the owner of the whole
//!   applied configuration and, on a later apply without a field (a limit no longer set),
//!   remove it, and it conflicts with the manager of the manifest (a `kubectl apply` or a
//!   GitOps tool) unless forced. The workload controller rolls the change out. Custom
//!   resources have no strategic merge patch; their templates are not patched.
//!
//! Quantities are written exactly: whole millicores as `250m` (whole cores as `2`), memory as
//! `512Mi` / `2Gi` / `1536Ki` when it divides evenly, else in bytes.

use super::kube::{KubeCluster, api_error, needs, patch_params, pods_resource};
use super::{Cluster, ClusterError};
use crate::engine::pod::{Amounts, ContainerResources};
use crate::engine::quantity::Resource;
use crate::engine::vertical_plan::ContainerChange;
use crate::policy::TargetRef;
use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::{Api, Patch};
use serde_json::{Map, Value, json};

/// The workload kinds whose pod template can be patched.
pub const TEMPLATE_KINDS: [&str; 3] = ["Deployment", "StatefulSet", "ReplicaSet"];

/// A quantity as written to the API: `250m`, `2`, `512Mi`, `2Gi`, `1536Ki`, bytes, or the
/// decimal value when it is not a whole millicore or byte.
pub fn quantity_text(r: Resource, v: f64) -> String {
    match r {
        Resource::Cpu => {
            let m = v * 1000.0;
            if (m - m.round()).abs() < 1e-6 {
                let m = m.round() as i64;
                if m % 1000 == 0 {
                    format!("{}", m / 1000)
                } else {
                    format!("{m}m")
                }
            } else {
                format!("{v}")
            }
        }
        Resource::Memory => {
            if (v - v.round()).abs() > 1e-6 {
                return format!("{v}");
            }
            let b = v.round() as i64;
            for (unit, size) in [("Gi", 1i64 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
                if b != 0 && b % size == 0 {
                    return format!("{}{unit}", b / size);
                }
            }
            format!("{b}")
        }
    }
}

fn quantities(a: &Amounts) -> Map<String, Value> {
    let mut m = Map::new();
    for r in [Resource::Cpu, Resource::Memory] {
        if let Some(v) = a.get(r) {
            m.insert(r.as_str().into(), Value::String(quantity_text(r, v)));
        }
    }
    m
}

/// `[{"name": "app", "resources": {"requests": {...}, "limits": {...}}}]`: only what changes.
pub fn containers_patch(changes: &[ContainerChange]) -> Value {
    let list: Vec<Value> = changes
        .iter()
        .map(|c| {
            let mut resources = Map::new();
            let requests = quantities(&c.requests);
            if !requests.is_empty() {
                resources.insert("requests".into(), Value::Object(requests));
            }
            let limits = quantities(&c.limits);
            if !limits.is_empty() {
                resources.insert("limits".into(), Value::Object(limits));
            }
            json!({"name": c.container, "resources": resources})
        })
        .collect();
    Value::Array(list)
}

/// The body of a `pods/resize` patch.
pub fn resize_patch(changes: &[ContainerChange]) -> Value {
    json!({"spec": {"containers": containers_patch(changes)}})
}

/// The body of a pod-template patch.
pub fn template_patch(changes: &[ContainerChange]) -> Value {
    json!({"spec": {"template": {"spec": {"containers": containers_patch(changes)}}}})
}

/// What a pre-1.33 server answers for `pods/resize`: the generic 404 of an unknown path, whose
/// Status names no object (a missing pod's names it: `pods "web-1" not found`).
fn predates_resize(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => {
            s.code == 404 && s.details.as_ref().is_none_or(|d| d.name.is_empty())
        }
        _ => false,
    }
}

/// How a Kubernetes 1.33 API server words the field error of an in-place resize that lowers a
/// memory limit (pkg/apis/core/validation, `validateContainerResize`), after the container's
/// index: the whole error is `spec.containers[0].resources.limits[memory]: Forbidden: memory
/// limits cannot be decreased unless resizePolicy is RestartContainer`.
const MEMORY_LIMIT_DECREASE: &str =
    "].resources.limits[memory]: Forbidden: memory limits cannot be decreased";

/// Whether `e` is a Kubernetes 1.33 server refusing a `pods/resize` because it lowers a memory
/// limit in place: a 422 Invalid whose message (`Pod "web-a" is invalid: ...`, one field error
/// per container) names `spec.containers[i].resources.limits[memory]` with "memory limits
/// cannot be decreased". 1.33 refuses that for a container whose memory resizePolicy is
/// `NotRequired` (the default); 1.34 allows it. Returns the indexes `i` (in the pod's
/// `spec.containers`) and the server's message; None for every other error, other 422s
/// included.
pub fn memory_limit_decrease_refused(e: &ClusterError) -> Option<(Vec<usize>, &str)> {
    let ClusterError::Api {
        code: 422,
        reason,
        message,
        ..
    } = e
    else {
        return None;
    };
    if reason != "Invalid" {
        return None;
    }
    let prefix = "spec.containers[";
    let containers: Vec<usize> = message
        .match_indices(MEMORY_LIMIT_DECREASE)
        .filter_map(|(at, _)| {
            let head = &message[..at];
            let open = head.rfind(prefix)? + prefix.len();
            head[open..].parse().ok()
        })
        .collect();
    (!containers.is_empty()).then_some((containers, message.as_str()))
}

impl KubeCluster {
    /// `PATCH pods/{pod}/resize`: see [`Cluster::resize_pod`].
    pub(super) async fn resize_pod_in_place(
        &self,
        pod: &str,
        changes: &[ContainerChange],
    ) -> Result<crate::engine::pod::Pod, ClusterError> {
        let namespace = self.namespace().to_string();
        let what = format!("PATCH pods/resize of pod {pod} in namespace {namespace}");
        let api: Api<Pod> = Api::namespaced(self.client().clone(), &namespace);
        let answer = api
            .patch_subresource(
                "resize",
                pod,
                &patch_params(),
                &Patch::Strategic(resize_patch(changes)),
            )
            .await;
        match answer {
            Ok(p) => {
                super::pods::from_pod(&p).map_err(|message| ClusterError::Invalid { what, message })
            }
            Err(e) if predates_resize(&e) => Err(match api_error(what, &e) {
                ClusterError::Api {
                    what,
                    code,
                    reason,
                    message,
                } => ClusterError::Api {
                    what,
                    code,
                    reason,
                    message: format!(
                        "{message}: the API server predates in-place pod resize (the pods/resize \
                         subresource needs Kubernetes 1.33 or later); use `update: rollout`"
                    ),
                },
                other => other,
            }),
            Err(e) => Err(needs(
                api_error(what, &e),
                "patch",
                &pods_resource(),
                "/resize",
            )),
        }
    }

    /// `PATCH` of the workload's pod template: see [`Cluster::patch_template`].
    pub(super) async fn patch_pod_template(
        &self,
        target: &TargetRef,
        changes: &[ContainerChange],
    ) -> Result<Vec<ContainerResources>, ClusterError> {
        let namespace = self.namespace().to_string();
        let what = format!(
            "PATCH pod template of {} {} in namespace {namespace}",
            target.kind, target.name
        );
        let group = target.api_version.split_once('/').map_or("", |(g, _)| g);
        if group != "apps" || !TEMPLATE_KINDS.contains(&target.kind.as_str()) {
            return Err(ClusterError::Unsupported {
                what,
                message: format!(
                    "setpoint patches the pod template of apps/v1 {} only; {} {} has no strategic \
                     merge patch (use `update: inPlace`, or change its resources by hand)",
                    TEMPLATE_KINDS.join(", "),
                    target.api_version,
                    target.kind
                ),
            });
        }
        let (api, resource) = self.api(target).await?;
        let answer = api
            .patch(
                &target.name,
                &patch_params(),
                &Patch::Strategic(template_patch(changes)),
            )
            .await
            .map_err(|e| needs(api_error(what.clone(), &e), "patch", &resource, ""))?;
        let containers = answer.data["spec"]["template"]["spec"]["containers"].clone();
        let containers: Vec<Container> =
            serde_json::from_value(containers).map_err(|e| ClusterError::Invalid {
                what: what.clone(),
                message: format!("the answer's spec.template.spec.containers: {e}"),
            })?;
        containers
            .iter()
            .map(|c| {
                let (requests, limits) = super::pods::requirements(
                    c.resources.as_ref(),
                    &format!("template container {}", c.name),
                )?;
                Ok(ContainerResources {
                    name: c.name.clone(),
                    requests,
                    limits,
                    ..ContainerResources::default()
                })
            })
            .collect::<Result<_, String>>()
            .map_err(|message| ClusterError::Invalid { what, message })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::quantity::MIB;

    #[test]
    fn quantities_are_written_exactly() {
        assert_eq!(quantity_text(Resource::Cpu, 0.25), "250m");
        assert_eq!(quantity_text(Resource::Cpu, 2.0), "2");
        assert_eq!(quantity_text(Resource::Cpu, 0.001), "1m");
        assert_eq!(quantity_text(Resource::Cpu, 0.0255), "0.0255");
        assert_eq!(quantity_text(Resource::Memory, 512.0 * MIB), "512Mi");
        assert_eq!(quantity_text(Resource::Memory, 2048.0 * MIB), "2Gi");
        assert_eq!(quantity_text(Resource::Memory, 1536.0 * 1024.0), "1536Ki");
        assert_eq!(quantity_text(Resource::Memory, 100e6), "100000000");
        for (r, v) in [
            (Resource::Cpu, 0.123),
            (Resource::Cpu, 3.0),
            (Resource::Memory, 96.0 * MIB),
        ] {
            let back = crate::engine::quantity::parse(&quantity_text(r, v)).unwrap();
            assert!((back - v).abs() <= 1e-12 * v, "{v} → {back}");
        }
    }

    #[test]
    fn a_refused_memory_limit_decrease_is_told_from_other_422s() {
        let api = |code: u16, reason: &str, message: &str| ClusterError::Api {
            what: "PATCH pods/resize of pod web-a in namespace demo".into(),
            code,
            reason: reason.into(),
            message: message.into(),
        };
        let one = "Pod \"web-a\" is invalid: spec.containers[0].resources.limits[memory]: \
                   Forbidden: memory limits cannot be decreased unless resizePolicy is \
                   RestartContainer";
        assert_eq!(
            memory_limit_decrease_refused(&api(422, "Invalid", one)),
            Some((vec![0], one))
        );
        // Several field errors are listed in brackets; init containers are not ours.
        let several = "Pod \"web-a\" is invalid: [spec.initContainers[0].resources.limits[memory]: \
                       Forbidden: memory limits cannot be decreased unless resizePolicy is \
                       RestartContainer, spec.containers[1].resources.limits[memory]: Forbidden: \
                       memory limits cannot be decreased unless resizePolicy is RestartContainer, \
                       spec.containers[12].resources.limits[memory]: Forbidden: memory limits \
                       cannot be decreased unless resizePolicy is RestartContainer]";
        assert_eq!(
            memory_limit_decrease_refused(&api(422, "Invalid", several)).map(|(c, _)| c),
            Some(vec![1, 12])
        );
        for other in [
            api(
                422,
                "Invalid",
                "Pod \"web-a\" is invalid: spec.containers[0].resources.requests: Invalid value: \
                 \"1\": must be less than or equal to cpu limit of 500m",
            ),
            api(
                422,
                "Invalid",
                "Pod \"web-a\" is invalid: spec: Forbidden: Pod QOS Class may not change as a \
                 result of resizing",
            ),
            api(403, "Forbidden", one),
            ClusterError::Invalid {
                what: "x".into(),
                message: one.into(),
            },
        ] {
            assert_eq!(memory_limit_decrease_refused(&other), None, "{other}");
        }
    }

    #[test]
    fn patches_name_only_what_changes() {
        let changes = [ContainerChange {
            container: "app".into(),
            requests: Amounts {
                cpu: Some(0.5),
                memory: None,
            },
            limits: Amounts {
                cpu: Some(1.0),
                memory: None,
            },
        }];
        assert_eq!(
            resize_patch(&changes),
            json!({"spec": {"containers": [{"name": "app",
                "resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": "1"}}}]}})
        );
        assert_eq!(
            template_patch(&changes)["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"],
            json!({"cpu": "500m"})
        );
    }
}
