//! A **stand-in** for the Kubernetes API server, for tests: an HTTP server on 127.0.0.1 (axum)
//! that answers the calls setpoint makes the way a real API server does, from an in-memory
//! [`World`] that the test sets up and can change while it runs. It is not a Kubernetes: it
//! knows only the calls below, and no controller acts on what it holds.
//!
//! What it answers, with the status codes, `Status` bodies, content types and resourceVersions
//! of a real (v1.24) API server, as recorded in `shared/k8s-api-answers.json`:
//!
//! - `GET /apis/{group}/{version}` (discovery): an `APIResourceList` naming each scalable kind
//!   of that group and its `/scale` subresource.
//! - `GET …/namespaces/{ns}/{plural}/{name}/scale`: an `autoscaling/v1` `Scale`, or 404
//!   `NotFound` (`deployments/scale.apps "nope" not found`).
//! - `PATCH …/scale` with `application/merge-patch+json`: sets `spec.replicas` and bumps the
//!   resourceVersion; 415 for another content type, 422 `Invalid` for a negative count, 409
//!   `Conflict` for a stale `metadata.resourceVersion` in the patch.
//! - `GET /api/v1/namespaces/{ns}/pods?labelSelector=…`: a `PodList` of the pods whose labels
//!   match (equality-based selectors: `a=b`, `a==b`, `a!=b`, comma-separated).
//! - `GET /apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods?labelSelector=…`: a
//!   `PodMetricsList`, or, when no metrics server is "installed", the plain-text
//!   `404 page not found` of an API group that is not registered.
//! - Anything else: that same plain-text 404.
//! - A bearer token other than [`World::token`]: 401 `Unauthorized`.
//!
//! For the daemon's tests to come, [`World::faults`] injects answers (409, 403, 404, 429 with
//! Retry-After, 500, or a slow answer) for matching requests, and [`KubeStandIn::requests`]
//! records every request received. Events, leases and patches of other objects are to be added
//! here the same way.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// An object with a `/scale` subresource.
#[derive(Debug, Clone)]
pub struct Scalable {
    /// API group (`apps`, or a custom group).
    pub group: String,
    /// API version (`v1`).
    pub version: String,
    /// Kind (`Deployment`).
    pub kind: String,
    /// Plural resource name (`deployments`).
    pub plural: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `spec.replicas`.
    pub replicas: i64,
    /// `status.replicas`.
    pub status_replicas: i64,
    /// `status.selector`.
    pub selector: String,
    /// `metadata.resourceVersion`.
    pub resource_version: u64,
    /// `metadata.uid`.
    pub uid: String,
}

impl Scalable {
    /// An `apps/v1` Deployment with `replicas`, selecting `app={name}`.
    pub fn deployment(namespace: &str, name: &str, replicas: i64) -> Scalable {
        Scalable {
            group: "apps".into(),
            version: "v1".into(),
            kind: "Deployment".into(),
            plural: "deployments".into(),
            namespace: namespace.into(),
            name: name.into(),
            replicas,
            status_replicas: replicas,
            selector: format!("app={name}"),
            resource_version: 0,
            uid: "081abcca-552b-479b-bf3e-ae456c44e0c1".into(),
        }
    }
}

/// An injected answer.
#[derive(Debug, Clone)]
pub struct Fault {
    /// Only requests with this method (None: any).
    pub method: Option<String>,
    /// Only requests whose path contains this.
    pub path_contains: String,
    /// Answer with this status and a matching `Status` body (None: answer normally, after the
    /// delay).
    pub status: Option<u16>,
    /// Wait this long first.
    pub delay: Duration,
    /// For this many requests.
    pub times: u32,
}

/// What the stand-in holds. Change it at any time through [`KubeStandIn::world`].
#[derive(Debug, Default)]
pub struct World {
    /// Objects with a scale subresource.
    pub scalables: Vec<Scalable>,
    /// Pods, as `Pod` JSON objects (see [`pod`]); their namespace is `metadata.namespace`.
    pub pods: Vec<Value>,
    /// `PodMetrics` JSON objects (see [`pod_metrics`]); None: no metrics server installed.
    pub pod_metrics: Option<Vec<Value>>,
    /// The bearer token required (None: any request is let in).
    pub token: Option<String>,
    /// Injected answers, first match first.
    pub faults: VecDeque<Fault>,
    /// The cluster-wide resourceVersion counter.
    pub resource_version: u64,
    // Vertical scaling (in-place resize, pod-template patches): see `vertical_answer` below.
    /// How `PATCH pods/{name}/resize` answers, by pod name (a pod not named: accepted).
    pub resize: BTreeMap<String, ResizeBehaviour>,
    /// Play a server older than Kubernetes 1.33: `pods/resize` is an unknown path (the
    /// recorded 404 `NotFound` Status).
    pub resize_unsupported: bool,
    /// Every `pods/resize` patch received: (pod name, body).
    pub resize_patches: Vec<(String, Value)>,
    /// Workloads whose pod template takes strategic merge patches.
    pub templates: Vec<Template>,
}

impl World {
    fn next_version(&mut self) -> u64 {
        self.resource_version += 1;
        self.resource_version
    }
}

/// A request as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Content-Type, if any.
    pub content_type: Option<String>,
}

#[derive(Default)]
struct Shared {
    world: Mutex<World>,
    requests: Mutex<Vec<Received>>,
}

/// A running stand-in. Stopped on drop.
pub struct KubeStandIn {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl KubeStandIn {
    /// Starts serving `world` on a free port of 127.0.0.1, on a thread of its own.
    pub fn start(mut world: World) -> KubeStandIn {
        world.resource_version = world.resource_version.max(500);
        for i in 0..world.scalables.len() {
            let v = world.next_version();
            world.scalables[i].resource_version = v;
        }
        let shared = Arc::new(Shared {
            world: Mutex::new(world),
            requests: Mutex::new(Vec::new()),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(shared.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        KubeStandIn {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The world, to read or change.
    pub fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.shared.world.lock().unwrap()
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<Received> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Writes a kubeconfig for this stand-in (context `stand-in`, namespace `namespace`, the
    /// world's token if any) and returns its path.
    pub fn kubeconfig(&self, dir: &super::TempDir, namespace: &str) -> PathBuf {
        let token = self
            .world()
            .token
            .clone()
            .unwrap_or_else(|| "no-token-needed".into());
        dir.write(
            "kubeconfig",
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: stand-in\n  cluster:\n    \
                 server: {}\nusers:\n- name: tester\n  user:\n    token: {token}\ncontexts:\n\
                 - name: stand-in\n  context:\n    cluster: stand-in\n    user: tester\n    \
                 namespace: {namespace}\ncurrent-context: stand-in\n",
                self.url()
            ),
        )
    }
}

impl Drop for KubeStandIn {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A JSON answer as the API server sends it.
fn json_answer(status: u16, body: Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_string(&body).unwrap(),
    )
        .into_response()
}

/// The plain-text 404 of a path no API group serves.
fn page_not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "404 page not found\n",
    )
        .into_response()
}

/// A `Status` failure body.
pub fn status(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut s = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(d) = details {
        s["details"] = d;
    }
    s
}

fn fault_answer(code: u16, path: &str) -> Response {
    let (reason, message) = match code {
        403 => (
            "Forbidden",
            format!("forbidden: the stand-in refuses {path}"),
        ),
        404 => (
            "NotFound",
            "the server could not find the requested resource".to_string(),
        ),
        409 => (
            "Conflict",
            "Operation cannot be fulfilled: the object has been modified; please apply your \
             changes to the latest version and try again"
                .to_string(),
        ),
        429 => (
            "TooManyRequests",
            "the server has received too many requests and has asked us to try again later"
                .to_string(),
        ),
        500 => (
            "InternalError",
            "an error on the server (\"injected\") has prevented the request from succeeding"
                .to_string(),
        ),
        _ => ("InternalError", format!("injected {code}")),
    };
    let mut r = json_answer(code, status(code, reason, &message, Some(json!({}))));
    if code == 429 {
        r.headers_mut()
            .insert(header::RETRY_AFTER, "1".parse().unwrap());
    }
    r
}

async fn answer(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    shared.requests.lock().unwrap().push(Received {
        method: method.to_string(),
        uri: uri.to_string(),
        content_type: content_type.clone(),
    });
    let path = uri.path().to_string();
    let query: BTreeMap<String, String> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();

    // Faults first, then authentication, as a front proxy or the server's own filters would.
    let fault = {
        let mut world = shared.world.lock().unwrap();
        let i = world.faults.iter().position(|f| {
            f.times > 0
                && f.method.as_deref().is_none_or(|m| m == method.as_str())
                && path.contains(&f.path_contains)
        });
        i.map(|i| {
            let f = world.faults[i].clone();
            world.faults[i].times -= 1;
            if world.faults[i].times == 0 {
                world.faults.remove(i);
            }
            f
        })
    };
    if let Some(f) = &fault {
        if !f.delay.is_zero() {
            tokio::time::sleep(f.delay).await;
        }
        if let Some(code) = f.status {
            return fault_answer(code, &path);
        }
    }
    let token = shared.world.lock().unwrap().token.clone();
    if let Some(token) = token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if given != Some(&format!("Bearer {token}")) {
            return json_answer(401, status(401, "Unauthorized", "Unauthorized", None));
        }
    }

    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let mut world = shared.world.lock().unwrap();
    if let Some(r) = vertical_answer(
        &mut world,
        method.as_str(),
        &parts,
        &query,
        content_type.as_deref(),
        &body,
    ) {
        return r;
    }
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["api", "v1", "namespaces", ns, "pods"]) => {
            let selector = query.get("labelSelector").map(String::as_str).unwrap_or("");
            let items: Vec<Value> = world
                .pods
                .iter()
                .filter(|p| {
                    p["metadata"]["namespace"] == *ns && matches(selector, &p["metadata"]["labels"])
                })
                .cloned()
                .collect();
            let rv = world.resource_version.to_string();
            json_answer(
                200,
                json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": rv}, "items": items}),
            )
        }
        (
            "GET",
            [
                "apis",
                "metrics.k8s.io",
                "v1beta1",
                "namespaces",
                ns,
                "pods",
            ],
        ) => {
            let Some(metrics) = &world.pod_metrics else {
                return page_not_found();
            };
            let selector = query.get("labelSelector").map(String::as_str).unwrap_or("");
            let items: Vec<Value> = metrics
                .iter()
                .filter(|m| {
                    m["metadata"]["namespace"] == *ns && matches(selector, &m["metadata"]["labels"])
                })
                .cloned()
                .collect();
            json_answer(
                200,
                json!({"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": items}),
            )
        }
        ("GET", ["apis", group, version]) => {
            let resources: Vec<Value> = world
                .scalables
                .iter()
                .filter(|s| s.group == *group && s.version == *version)
                .fold(Vec::<(String, String)>::new(), |mut acc, s| {
                    if !acc.iter().any(|(p, _)| p == &s.plural) {
                        acc.push((s.plural.clone(), s.kind.clone()));
                    }
                    acc
                })
                .into_iter()
                .flat_map(|(plural, kind)| {
                    [
                        json!({"name": plural, "singularName": kind.to_lowercase(), "namespaced": true,
                               "kind": kind, "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}),
                        json!({"name": format!("{plural}/scale"), "singularName": "", "namespaced": true,
                               "group": "autoscaling", "version": "v1", "kind": "Scale",
                               "verbs": ["get", "patch", "update"]}),
                    ]
                })
                .collect();
            if resources.is_empty() {
                return page_not_found();
            }
            json_answer(
                200,
                json!({"kind": "APIResourceList", "apiVersion": "v1",
                       "groupVersion": format!("{group}/{version}"), "resources": resources}),
            )
        }
        (
            m @ ("GET" | "PATCH"),
            [
                "apis",
                group,
                version,
                "namespaces",
                ns,
                plural,
                name,
                "scale",
            ],
        ) => {
            let found = world.scalables.iter().position(|s| {
                s.group == *group
                    && s.version == *version
                    && s.namespace == *ns
                    && s.plural == *plural
                    && s.name == *name
            });
            let Some(i) = found else {
                if !world
                    .scalables
                    .iter()
                    .any(|s| s.group == *group && s.version == *version && s.plural == *plural)
                {
                    return page_not_found();
                }
                return json_answer(
                    404,
                    status(
                        404,
                        "NotFound",
                        &format!("{plural}/scale.{group} \"{name}\" not found"),
                        Some(
                            json!({"name": name, "group": group, "kind": format!("{plural}/scale")}),
                        ),
                    ),
                );
            };
            if m == "PATCH" {
                if content_type.as_deref() != Some("application/merge-patch+json") {
                    return json_answer(
                        415,
                        status(
                            415,
                            "UnsupportedMediaType",
                            "415: Unsupported Media Type",
                            Some(json!({})),
                        ),
                    );
                }
                let patch: Value = match serde_json::from_slice(&body) {
                    Ok(v) => v,
                    Err(e) => {
                        return json_answer(
                            400,
                            status(
                                400,
                                "BadRequest",
                                &format!("error decoding patch: {e}"),
                                Some(json!({})),
                            ),
                        );
                    }
                };
                let s = &world.scalables[i];
                if let Some(rv) = patch["metadata"]["resourceVersion"].as_str()
                    && rv != s.resource_version.to_string()
                {
                    return json_answer(
                        409,
                        status(
                            409,
                            "Conflict",
                            &format!(
                                "Operation cannot be fulfilled on {plural}.{group} \"{name}\": the object has been \
                                 modified; please apply your changes to the latest version and try again"
                            ),
                            Some(json!({"name": name, "group": group, "kind": plural})),
                        ),
                    );
                }
                if let Some(r) = patch["spec"]["replicas"].as_i64() {
                    if r < 0 {
                        let msg = format!("Invalid value: {r}: must be greater than or equal to 0");
                        return json_answer(
                            422,
                            status(
                                422,
                                "Invalid",
                                &format!(
                                    "Scale.autoscaling \"{name}\" is invalid: spec.replicas: {msg}"
                                ),
                                Some(
                                    json!({"name": name, "group": "autoscaling", "kind": "Scale",
                                            "causes": [{"reason": "FieldValueInvalid", "message": msg, "field": "spec.replicas"}]}),
                                ),
                            ),
                        );
                    }
                    let v = world.next_version();
                    let s = &mut world.scalables[i];
                    s.replicas = r;
                    s.resource_version = v;
                }
            }
            json_answer(200, scale_json(&world.scalables[i]))
        }
        _ => page_not_found(),
    }
}

fn scale_json(s: &Scalable) -> Value {
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": s.name,
            "namespace": s.namespace,
            "uid": s.uid,
            "resourceVersion": s.resource_version.to_string(),
            "creationTimestamp": "2026-11-21T22:05:14Z",
        },
        "spec": {"replicas": s.replicas},
        "status": {"replicas": s.status_replicas, "selector": s.selector},
    })
}

/// Whether `labels` match an equality-based selector (`a=b,c!=d`; empty matches everything).
pub fn matches(selector: &str, labels: &Value) -> bool {
    selector
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .all(|req| {
            if let Some((k, v)) = req.split_once("!=") {
                labels[k.trim()].as_str() != Some(v.trim())
            } else if let Some((k, v)) = req.split_once("==").or_else(|| req.split_once('=')) {
                labels[k.trim()].as_str() == Some(v.trim())
            } else {
                labels.get(req).is_some()
            }
        })
}

/// How a test pod is.
#[derive(Debug, Clone)]
pub struct PodSpec {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// `app` label.
    pub app: String,
    /// Phase.
    pub phase: String,
    /// Ready condition: (status, last transition time RFC 3339); None: no Ready condition.
    pub ready: Option<(bool, String)>,
    /// `status.startTime`, RFC 3339.
    pub start_time: Option<String>,
    /// `status.podIP`.
    pub ip: Option<String>,
    /// CPU request of its one container `app`.
    pub cpu_request: Option<String>,
    /// Being deleted.
    pub deleting: bool,
}

/// A `Pod` object as the API server lists it.
pub fn pod(p: &PodSpec) -> Value {
    let mut conditions = vec![json!({"type": "PodScheduled", "status": "True",
        "lastProbeTime": null, "lastTransitionTime": "2026-11-21T22:05:14Z"})];
    if let Some((ready, since)) = &p.ready {
        let s = if *ready { "True" } else { "False" };
        conditions.push(json!({"type": "Ready", "status": s, "lastProbeTime": null, "lastTransitionTime": since}));
        conditions.push(json!({"type": "ContainersReady", "status": s, "lastProbeTime": null, "lastTransitionTime": since}));
    }
    let mut requests = json!({"memory": "64Mi"});
    if let Some(cpu) = &p.cpu_request {
        requests["cpu"] = json!(cpu);
    }
    let mut v = json!({
        "metadata": {
            "name": p.name,
            "generateName": format!("{}-68dddbb85-", p.app),
            "namespace": p.namespace,
            "uid": format!("5c83d196-cc35-40b1-8bac-{:012x}", p.name.len()),
            "resourceVersion": "547",
            "creationTimestamp": "2026-11-21T22:05:14Z",
            "labels": {"app": p.app, "pod-template-hash": "68dddbb85"},
        },
        "spec": {
            "containers": [{"name": "app", "image": "example/web", "resources": {"requests": requests},
                            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                            "imagePullPolicy": "Always"}],
            "restartPolicy": "Always",
            "dnsPolicy": "ClusterFirst",
            "schedulerName": "default-scheduler",
        },
        "status": {"phase": p.phase, "conditions": conditions, "qosClass": "Burstable"},
    });
    if let Some(t) = &p.start_time {
        v["status"]["startTime"] = json!(t);
    }
    if let Some(ip) = &p.ip {
        v["status"]["podIP"] = json!(ip);
        v["status"]["podIPs"] = json!([{"ip": ip}]);
    }
    if p.deleting {
        v["metadata"]["deletionTimestamp"] = json!("2026-11-21T22:06:00Z");
        v["metadata"]["deletionGracePeriodSeconds"] = json!(30);
    }
    v
}

/// A `PodMetrics` object as metrics-server serves it.
pub fn pod_metrics(
    namespace: &str,
    name: &str,
    app: &str,
    timestamp: &str,
    window: &str,
    cpu: &str,
) -> Value {
    json!({
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": timestamp,
                     "labels": {"app": app, "pod-template-hash": "68dddbb85"}},
        "timestamp": timestamp,
        "window": window,
        "containers": [{"name": "app", "usage": {"cpu": cpu, "memory": "40Mi"}}],
    })
}

/// RFC 3339 of Unix seconds (UTC, whole seconds).
pub fn rfc3339(t: f64) -> String {
    let st = std::time::UNIX_EPOCH + Duration::from_secs(t.max(0.0) as u64);
    humantime::format_rfc3339_seconds(st).to_string()
}

// ---------------------------------------------------------------------------------------------
// Vertical scaling: in-place resize (`pods/{name}/resize`) and pod-template patches.
//
// - `PATCH /api/v1/namespaces/{ns}/pods/{name}/resize` with
//   `application/strategic-merge-patch+json` (containers merged by name; only their
//   `resources` may change, only cpu and memory, requests at most limits, and the QoS class may
//   not change: 422 `Invalid` otherwise, as a real server). Then, as [`World::resize`] says for
//   that pod: `Accept` (spec and the status' actual resources both take the new values),
//   `Infeasible` or `Deferred` (the spec takes them; the status gets the condition
//   `PodResizePending` with that reason, and keeps the old actual resources until
//   [`World::accept_resize`]). A JSON merge patch would replace the container list and is
//   refused with the server's 422 for the missing image; other content types 415. With
//   [`World::resize_unsupported`], the recorded 404 of a server before 1.33.
// - `PATCH /apis/{group}/{version}/namespaces/{ns}/{plural}/{name}` with
//   `application/strategic-merge-patch+json` of a workload in [`World::templates`]: the
//   template's containers are merged by name (resources merged key by key), the body and the
//   `fieldManager` recorded, and the workload answered. Other content types fall through to the
//   other routes (server-side apply of annotations).
// ---------------------------------------------------------------------------------------------

/// How the stand-in's kubelet takes an in-place resize of a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResizeBehaviour {
    /// Applied at once: spec and status take the new values.
    #[default]
    Accept,
    /// The node can never fit it: `PodResizePending`, reason `Infeasible`.
    Infeasible,
    /// Not now: `PodResizePending`, reason `Deferred` (a test can accept it later).
    Deferred,
}

/// A workload's pod template, for template patches.
#[derive(Debug, Clone)]
pub struct Template {
    /// API group (`apps`).
    pub group: String,
    /// Version (`v1`).
    pub version: String,
    /// Kind (`Deployment`).
    pub kind: String,
    /// Plural (`deployments`).
    pub plural: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `spec.template.spec.containers`, as JSON.
    pub containers: Value,
    /// Bodies of the patches received.
    pub patches: Vec<Value>,
    /// `fieldManager` of each patch received (empty when none was given).
    pub field_managers: Vec<String>,
    /// `metadata.generation`.
    pub generation: u64,
}

impl Template {
    /// An apps/v1 Deployment's template with `containers`.
    pub fn deployment(namespace: &str, name: &str, containers: Value) -> Template {
        Template {
            group: "apps".into(),
            version: "v1".into(),
            kind: "Deployment".into(),
            plural: "deployments".into(),
            namespace: namespace.into(),
            name: name.into(),
            containers,
            patches: Vec::new(),
            field_managers: Vec::new(),
            generation: 1,
        }
    }

    /// The resources of one container of the template.
    pub fn resources(&self, container: &str) -> Value {
        self.containers
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == container))
            .map(|c| c["resources"].clone())
            .unwrap_or(Value::Null)
    }
}

impl World {
    /// The kubelet gets round to a Deferred (or Infeasible) resize of `pod`: the status takes
    /// the spec's resources, the pending condition goes.
    pub fn accept_resize(&mut self, pod: &str) {
        if let Some(p) = self.pods.iter_mut().find(|p| p["metadata"]["name"] == pod) {
            remove_condition(p, "PodResizePending");
            copy_resources_to_status(p);
        }
    }

    /// A pod by name.
    pub fn pod(&self, name: &str) -> Option<&Value> {
        self.pods.iter().find(|p| p["metadata"]["name"] == name)
    }
}

/// `pod` (as made by [`pod`]) with its container `app` holding these requests and limits (JSON
/// maps such as `{"cpu": "100m"}`), the matching actual resources in its status, and its QoS
/// class computed as the API server does.
pub fn with_resources(mut pod: Value, requests: Value, limits: Value) -> Value {
    let mut resources = json!({});
    if requests.as_object().is_some_and(|m| !m.is_empty()) {
        resources["requests"] = requests;
    }
    if limits.as_object().is_some_and(|m| !m.is_empty()) {
        resources["limits"] = limits;
    }
    pod["spec"]["containers"][0]["resources"] = resources;
    pod["status"]["qosClass"] = json!(qos_class(&pod["spec"]["containers"]));
    copy_resources_to_status(&mut pod);
    pod
}

/// `pod` with its container `app` last OOM-killed at `finished_at` (RFC 3339), restarted once.
pub fn with_oom_kill(mut pod: Value, finished_at: &str) -> Value {
    copy_resources_to_status(&mut pod);
    let st = &mut pod["status"]["containerStatuses"][0];
    st["restartCount"] = json!(1);
    st["lastState"] = json!({"terminated": {"exitCode": 137, "reason": "OOMKilled",
        "startedAt": "2026-11-21T22:00:00Z", "finishedAt": finished_at}});
    pod
}

/// `pod` with the `resizePolicy` of its container `app` set (`[{"resourceName": "memory",
/// "restartPolicy": "RestartContainer"}]`).
pub fn with_resize_policy(mut pod: Value, policy: Value) -> Value {
    pod["spec"]["containers"][0]["resizePolicy"] = policy;
    pod
}

/// The QoS class of pod containers, as the API server computes it (cpu and memory).
fn qos_class(containers: &Value) -> &'static str {
    let list = containers.as_array().cloned().unwrap_or_default();
    let empty = |v: &Value| v.as_object().is_none_or(|m| m.is_empty());
    if list
        .iter()
        .all(|c| empty(&c["resources"]["requests"]) && empty(&c["resources"]["limits"]))
    {
        return "BestEffort";
    }
    let guaranteed = list.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| {
            let lim = &c["resources"]["limits"][*r];
            let req = &c["resources"]["requests"][*r];
            !lim.is_null() && (req.is_null() || quantity(req) == quantity(lim))
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// A quantity's value, for comparisons.
fn quantity(v: &Value) -> Option<f64> {
    v.as_str()
        .and_then(|s| setpoint::cluster::quantity::parse(s).ok())
}

fn remove_condition(pod: &mut Value, kind: &str) {
    if let Some(cs) = pod["status"]["conditions"].as_array_mut() {
        cs.retain(|c| c["type"] != kind);
    }
}

/// The status' containerStatuses take the spec's resources (the kubelet applied them).
fn copy_resources_to_status(pod: &mut Value) {
    let containers = pod["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !pod["status"]["containerStatuses"].is_array() {
        pod["status"]["containerStatuses"] = json!([]);
    }
    let statuses = pod["status"]["containerStatuses"].as_array_mut().unwrap();
    for c in containers {
        let name = c["name"].clone();
        let i = match statuses.iter().position(|s| s["name"] == name) {
            Some(i) => i,
            None => {
                statuses.push(json!({"name": name, "image": c["image"], "imageID": "",
                    "ready": true, "restartCount": 0, "started": true,
                    "state": {"running": {"startedAt": "2026-11-21T22:05:20Z"}}}));
                statuses.len() - 1
            }
        };
        statuses[i]["resources"] = c["resources"].clone();
        statuses[i]["allocatedResources"] = c["resources"]["requests"].clone();
    }
}

/// Merges a patch's resources (`requests` and `limits` maps) into a container's.
fn merge_resources(container: &mut Value, patch: &Value) {
    for kind in ["requests", "limits"] {
        if let Some(m) = patch[kind].as_object() {
            if !container["resources"][kind].is_object() {
                container["resources"][kind] = json!({});
            }
            for (k, v) in m {
                if v.is_null() {
                    container["resources"][kind]
                        .as_object_mut()
                        .unwrap()
                        .remove(k);
                } else {
                    container["resources"][kind][k] = v.clone();
                }
            }
        }
    }
}

fn invalid(kind: &str, name: &str, field: &str, detail: &str) -> Response {
    let msg = format!("{kind} \"{name}\" is invalid: {field}: {detail}");
    json_answer(
        422,
        status(
            422,
            "Invalid",
            &msg,
            Some(json!({"name": name, "kind": kind.to_lowercase() + "s",
                "causes": [{"reason": "FieldValueInvalid", "message": detail, "field": field}]})),
        ),
    )
}

fn unsupported_media_type() -> Response {
    json_answer(
        415,
        status(
            415,
            "UnsupportedMediaType",
            "415: Unsupported Media Type",
            Some(json!({})),
        ),
    )
}

/// The vertical routes; None for a request they do not answer.
fn vertical_answer(
    world: &mut World,
    method: &str,
    parts: &[&str],
    query: &BTreeMap<String, String>,
    content_type: Option<&str>,
    body: &[u8],
) -> Option<Response> {
    match (method, parts) {
        ("PATCH", ["api", "v1", "namespaces", ns, "pods", name, "resize"]) => {
            Some(resize(world, ns, name, content_type, body))
        }
        ("PATCH", ["apis", group, version, "namespaces", ns, plural, name])
            if content_type == Some("application/strategic-merge-patch+json") =>
        {
            let i = world.templates.iter().position(|t| {
                t.group == *group
                    && t.version == *version
                    && t.namespace == *ns
                    && t.plural == *plural
                    && t.name == *name
            })?;
            Some(patch_template(world, i, query, body))
        }
        _ => None,
    }
}

fn resize(
    world: &mut World,
    ns: &str,
    name: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Response {
    if world.resize_unsupported {
        return json_answer(
            404,
            status(
                404,
                "NotFound",
                "the server could not find the requested resource",
                Some(json!({})),
            ),
        );
    }
    let Some(i) = world
        .pods
        .iter()
        .position(|p| p["metadata"]["namespace"] == ns && p["metadata"]["name"] == name)
    else {
        return json_answer(
            404,
            status(
                404,
                "NotFound",
                &format!("pods \"{name}\" not found"),
                Some(json!({"name": name, "kind": "pods"})),
            ),
        );
    };
    let patch: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return json_answer(
                400,
                status(
                    400,
                    "BadRequest",
                    &format!("error decoding patch: {e}"),
                    Some(json!({})),
                ),
            );
        }
    };
    match content_type {
        Some("application/strategic-merge-patch+json") => {}
        Some("application/merge-patch+json") if patch["spec"]["containers"].is_array() => {
            // A JSON merge patch replaces the whole list: the containers lose their images.
            return invalid("Pod", name, "spec.containers[0].image", "Required value");
        }
        Some("application/merge-patch+json") => {}
        _ => return unsupported_media_type(),
    }
    world.resize_patches.push((name.to_string(), patch.clone()));
    let mut pod = world.pods[i].clone();
    let before_qos = qos_class(&pod["spec"]["containers"]);
    for (k, c) in patch["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let keys: Vec<&String> = c
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        if keys.iter().any(|k| *k != "name" && *k != "resources") {
            return invalid(
                "Pod",
                name,
                "spec",
                "Forbidden: only cpu and memory resources are mutable",
            );
        }
        let resources = &c["resources"];
        for kind in ["requests", "limits"] {
            if let Some(m) = resources[kind].as_object()
                && m.keys().any(|r| r != "cpu" && r != "memory")
            {
                return invalid(
                    "Pod",
                    name,
                    &format!("spec.containers[{k}].resources.{kind}"),
                    "Forbidden: only cpu and memory resources are mutable",
                );
            }
        }
        let Some(target) = pod["spec"]["containers"]
            .as_array_mut()
            .and_then(|cs| cs.iter_mut().find(|x| x["name"] == c["name"]))
        else {
            return invalid(
                "Pod",
                name,
                "spec",
                "Forbidden: only cpu and memory resources are mutable",
            );
        };
        merge_resources(target, resources);
        for r in ["cpu", "memory"] {
            let (req, lim) = (
                quantity(&target["resources"]["requests"][r]),
                quantity(&target["resources"]["limits"][r]),
            );
            if let (Some(req), Some(lim)) = (req, lim)
                && req > lim
            {
                return invalid(
                    "Pod",
                    name,
                    &format!("spec.containers[{k}].resources.requests"),
                    &format!("Invalid value: must be less than or equal to {r} limit"),
                );
            }
        }
    }
    if qos_class(&pod["spec"]["containers"]) != before_qos {
        return invalid(
            "Pod",
            name,
            "spec",
            "Forbidden: Pod QOS Class may not change as a result of resizing",
        );
    }
    let behaviour = world.resize.get(name).copied().unwrap_or_default();
    let now = rfc3339(super::unix_now());
    remove_condition(&mut pod, "PodResizePending");
    match behaviour {
        ResizeBehaviour::Accept => copy_resources_to_status(&mut pod),
        ResizeBehaviour::Infeasible | ResizeBehaviour::Deferred => {
            let (reason, message) = if behaviour == ResizeBehaviour::Infeasible {
                (
                    "Infeasible",
                    "Node didn't have enough capacity: cpu, requested: 64000, capacity: 4000",
                )
            } else {
                (
                    "Deferred",
                    "Node didn't have enough resource: cpu, requested: 2000, used: 3500, capacity: 4000",
                )
            };
            if !pod["status"]["conditions"].is_array() {
                pod["status"]["conditions"] = json!([]);
            }
            pod["status"]["conditions"].as_array_mut().unwrap().push(
                json!({"type": "PodResizePending", "status": "True", "reason": reason,
                    "message": message, "lastProbeTime": null, "lastTransitionTime": now}),
            );
        }
    }
    let v = world.next_version();
    pod["metadata"]["resourceVersion"] = json!(v.to_string());
    let generation = pod["metadata"]["generation"].as_u64().unwrap_or(1) + 1;
    pod["metadata"]["generation"] = json!(generation);
    world.pods[i] = pod.clone();
    json_answer(200, pod)
}

fn patch_template(
    world: &mut World,
    i: usize,
    query: &BTreeMap<String, String>,
    body: &[u8],
) -> Response {
    let patch: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return json_answer(
                400,
                status(
                    400,
                    "BadRequest",
                    &format!("error decoding patch: {e}"),
                    Some(json!({})),
                ),
            );
        }
    };
    let v = world.next_version();
    let t = &mut world.templates[i];
    t.patches.push(patch.clone());
    t.field_managers
        .push(query.get("fieldManager").cloned().unwrap_or_default());
    let patched = patch["spec"]["template"]["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for c in &patched {
        let Some(target) = t
            .containers
            .as_array_mut()
            .and_then(|cs| cs.iter_mut().find(|x| x["name"] == c["name"]))
        else {
            return invalid(
                &t.kind,
                &t.name.clone(),
                "spec.template.spec.containers[1].image",
                "Required value",
            );
        };
        merge_resources(target, &c["resources"]);
    }
    t.generation += 1;
    let t = &world.templates[i];
    let replicas = world
        .scalables
        .iter()
        .find(|s| s.plural == t.plural && s.name == t.name && s.namespace == t.namespace)
        .map_or(1, |s| s.replicas);
    json_answer(
        200,
        json!({
            "kind": t.kind,
            "apiVersion": format!("{}/{}", t.group, t.version),
            "metadata": {"name": t.name, "namespace": t.namespace,
                "uid": "081abcca-552b-479b-bf3e-ae456c44e0c1",
                "resourceVersion": v.to_string(), "generation": t.generation,
                "creationTimestamp": "2026-11-21T22:05:14Z"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": t.name}},
                "template": {"metadata": {"labels": {"app": t.name}},
                    "spec": {"containers": t.containers}}},
            "status": {"observedGeneration": t.generation - 1, "replicas": replicas},
        }),
    )
}
