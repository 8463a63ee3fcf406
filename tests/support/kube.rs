//! A **stand-in** for the Kubernetes API server, for tests: an HTTP server on 127.0.0.1 (axum)
//! that answers the calls setpoint makes the way a real API server does, from an in-memory
//! [`World`] that the test sets up and can change while it runs. It is not a Kubernetes: it
//! knows only the calls below, no controller acts on what it holds, and it validates only what
//! is listed here.
//!
//! What it answers, with the status codes, `Status` bodies, content types and resourceVersions
//! of a real (v1.24) API server, as recorded in `shared/k8s-api-answers.json`:
//!
//! - `GET /apis/{group}/{version}` (discovery): an `APIResourceList` naming each scalable kind
//!   of that group and its `/scale` subresource; `events.k8s.io/v1` and `coordination.k8s.io/v1`
//!   list `events` and `leases`.
//! - `GET …/namespaces/{ns}/{plural}/{name}/scale`: an `autoscaling/v1` `Scale`, or 404
//!   `NotFound` (`deployments/scale.apps "nope" not found`).
//! - `PATCH …/scale` with `application/merge-patch+json`: sets `spec.replicas` and bumps the
//!   resourceVersion (a patch that changes nothing is not written, as in Kubernetes); 415 for
//!   another content type, 422 `Invalid` for a negative count, 409 `Conflict` for a stale
//!   `metadata.resourceVersion` in the patch.
//! - `GET …/namespaces/{ns}/{plural}/{name}`: the scalable object itself (a Deployment with
//!   annotations, `spec.replicas`, `spec.selector.matchLabels` and a one-container template;
//!   other kinds the same without the Deployment-only fields). The object and its `/scale`
//!   share one resourceVersion: a patch of either bumps it.
//! - `PATCH` of that object with `application/apply-patch+yaml` (server-side apply, body YAML
//!   or JSON; 422 without `fieldManager`), `application/merge-patch+json` or
//!   `application/strategic-merge-patch+json`: merges `metadata.annotations` (in a merge patch a
//!   `null` removes a key) and `spec.replicas`; 409 for a stale `metadata.resourceVersion`; 422
//!   for `force` on a non-apply patch. Field ownership is not tracked for these objects: an apply
//!   never conflicts (setpoint applies with `force=true`). An apply does remove the annotations
//!   that its field manager applied before and leaves out, as server-side apply does, so that
//!   two writers of annotations under one manager would see each other's removed.
//! - `events.k8s.io/v1` Events: `POST …/namespaces/{ns}/events` (201, the Event echoed with a
//!   name from `generateName` plus 5 random characters, uid, resourceVersion and
//!   creationTimestamp; 422 `Event "web-qr5jj" is invalid: eventTime: Required value` without
//!   `eventTime`), `GET` of the `EventList` (with `labelSelector`) and of one Event. A real
//!   server takes an Event whose `regarding` has no `uid` (201, as recorded), but `kubectl
//!   describe` selects Events by uid and never shows it: the stand-in takes it too and notes it
//!   in [`World::flagged`], which the tests hold empty; `regarding.uid` and
//!   `regarding.resourceVersion` other than the object's are noted there as well.
//! - `coordination.k8s.io/v1` Leases: `GET` (one, or the `LeaseList`), `POST` (201; 409
//!   `AlreadyExists`), `PUT` (409 `Conflict` for a stale resourceVersion, 422 without one: Leases
//!   do not allow unconditional updates), `PATCH` as merge, strategic merge (the same for a
//!   Lease: it has no lists) or server-side apply, and `DELETE` (a `Status` of `Success`). A
//!   Lease carries `managedFields`, and an apply by one field manager of a field that another
//!   manager owns with a different value is refused with 409 `Conflict` (`Apply failed with 1
//!   conflict: conflict with "…": .spec.holderIdentity`) unless `force=true`: the precondition
//!   that kube-lease-manager relies on to elect one holder. Ownership is tracked for `spec` and
//!   `metadata.labels`/`annotations` only.
//! - `GET /api/v1/namespaces/{ns}/pods?labelSelector=…`: a `PodList` of the pods whose labels
//!   match (equality-based selectors: `a=b`, `a==b`, `a!=b`, comma-separated).
//! - `GET /apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods?labelSelector=…`: a
//!   `PodMetricsList`, or, when no metrics server is "installed", the plain-text
//!   `404 page not found` of an API group that is not registered.
//! - Anything else: that same plain-text 404; a verb that a real server has on a resource above
//!   but the stand-in does not (a JSON patch, an update of an Event, ...) is a 500 that says so.
//! - A bearer token other than [`World::token`]: 401 `Unauthorized`.
//!
//! For the daemon's tests, [`World::faults`] injects answers (409, 403, 404, 429 with
//! Retry-After, 500, or a slow answer) for matching requests; an injected 403 reads as RBAC's
//! (`leases.coordination.k8s.io "setpoint" is forbidden: User "…" cannot patch resource
//! "leases" …`). [`KubeStandIn::requests`] records every request received, with its body.
//! [`World::take_lease`] and [`World::delete_lease`] do to a Lease what another client would.
//!
//! Lists and watches (newline-delimited JSON events, bookmarks, 410 `Expired`), the
//! ScalingPolicy CRD and other custom kinds (structural schema, status subresource,
//! managedFields), kubectl's Table format and RBAC for ServiceAccount tokens are in the
//! submodules [`watch`], [`crd`], [`table`] and [`rbac`], each with what it answers and where
//! it differs from a real server. What the stand-in does not do as a real server does there:
//! no controller runs (a Deployment's status, generation and ReplicaSets do not follow its
//! spec; a CRD is established at once); only a pod list is paged; pods,
//! Deployments and CRDs keep no `managedFields` (custom objects do); `fieldSelector` is
//! ignored; a watch gets one bookmark where
//! v1.24 sends one or two; the oldest resourceVersion a watch may start from is the one at
//! which the stand-in started; only `type` and `enum` of a CRD schema are checked.
//! [`KubeStandIn::restart`] plays a kube-apiserver restart: every connection closes, new ones
//! are refused for a while, then the server listens on the same port again but answers every
//! request with RBAC's 403 (the wording of the recorded 403s) for a while, as a real one does
//! for about a second while its RBAC caches fill (`/readyz` still 500 meanwhile), and then
//! answers as before. What the world holds is kept (a real server's is in etcd).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use setpoint::cluster::{ClusterConfig, KubeCluster};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub mod crd;
pub mod rbac;
pub mod table;
pub mod watch;

pub use crd::CustomObject;

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
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// `metadata.creationTimestamp`.
    pub created: String,
    /// `spec.template.spec.containers`, as JSON.
    pub containers: Value,
}

impl Scalable {
    /// An `apps/v1` Deployment with `replicas`, selecting `app={name}`, annotated
    /// `deployment.kubernetes.io/revision: "1"` as the deployment controller leaves it.
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
            annotations: BTreeMap::from([(
                "deployment.kubernetes.io/revision".to_string(),
                "1".to_string(),
            )]),
            created: "2026-11-21T22:05:14Z".into(),
            containers: json!([{
                "name": "app",
                "image": "example/web",
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "imagePullPolicy": "Always",
            }]),
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
    /// `events.k8s.io/v1` Events as stored (with `kind`, `apiVersion` and the metadata the
    /// server added), in the order they were created.
    pub events: Vec<Value>,
    /// `coordination.k8s.io/v1` Leases as stored (with `kind`, `apiVersion` and metadata,
    /// `managedFields` included). Edit one in place to change it behind every client's back (no
    /// resourceVersion bump), or use [`World::take_lease`] to do what another client would.
    pub leases: Vec<Value>,
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
    /// Play a Kubernetes 1.33 server: a `pods/resize` that lowers (or adds) the memory limit of
    /// a container whose memory resizePolicy is `NotRequired` (the default) is refused with
    /// 422 `Invalid`, as 1.33's `validateContainerResize` does. False (the default) plays
    /// 1.34 and later, which take such a resize.
    pub resize_forbids_memory_limit_decrease: bool,
    /// Every `pods/resize` patch received: (pod name, body).
    pub resize_patches: Vec<(String, Value)>,
    /// Workloads whose pod template takes strategic merge patches.
    pub templates: Vec<Template>,
    // Lists and watches, custom resources, RBAC: see the submodules.
    /// The watch cache: every change to a watched object since the stand-in started.
    pub watch: watch::WatchLog,
    /// CustomResourceDefinitions as stored (established).
    pub crds: Vec<Value>,
    /// Objects of the CRDs' kinds.
    pub custom_objects: Vec<CustomObject>,
    /// ServiceAccount tokens and what their Roles grant; any other accepted token may do
    /// anything.
    pub service_accounts: Vec<rbac::ServiceAccount>,
    /// Requests a real server takes but a client should not make that way (an Event whose
    /// `regarding` has no uid), one line each.
    pub flagged: Vec<String>,
    /// Until then every request gets RBAC's 403 (set by [`KubeStandIn::restart`]).
    pub forbidden_until: Option<std::time::Instant>,
    /// The annotations each field manager applied, by object (`namespace/name`).
    pub applied_annotations: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
}

impl World {
    fn next_version(&mut self) -> u64 {
        self.resource_version += 1;
        self.resource_version
    }

    fn lease_index(&self, namespace: &str, name: &str) -> Option<usize> {
        self.leases
            .iter()
            .position(|l| l["metadata"]["namespace"] == namespace && l["metadata"]["name"] == name)
    }

    /// The Lease `namespace/name`, as stored.
    pub fn lease(&self, namespace: &str, name: &str) -> Option<&Value> {
        self.lease_index(namespace, name).map(|i| &self.leases[i])
    }

    /// The Lease `namespace/name`, to edit in place (no resourceVersion bump, no change of
    /// field ownership).
    pub fn lease_mut(&mut self, namespace: &str, name: &str) -> Option<&mut Value> {
        self.lease_index(namespace, name)
            .map(|i| &mut self.leases[i])
    }

    /// `spec.holderIdentity` of the Lease `namespace/name`, if it exists and has one.
    pub fn lease_holder(&self, namespace: &str, name: &str) -> Option<String> {
        self.lease(namespace, name)
            .and_then(|l| l["spec"]["holderIdentity"].as_str())
            .map(str::to_string)
    }

    /// Takes (or, when `holder` holds it already, renews) the Lease `namespace/name` for `holder`
    /// for `duration_seconds` from now, as another client's update would: `holderIdentity`,
    /// `acquireTime`, `renewTime` and `leaseDurationSeconds` set and `leaseTransitions` counted
    /// up (a renewal sets only `renewTime` and `leaseDurationSeconds`), those fields then owned
    /// by the field manager `holder`, and the resourceVersion bumped. False if there is no such
    /// Lease.
    pub fn take_lease(
        &mut self,
        namespace: &str,
        name: &str,
        holder: &str,
        duration_seconds: i64,
    ) -> bool {
        let Some(i) = self.lease_index(namespace, name) else {
            return false;
        };
        let mut new = self.leases[i].clone();
        let now = micro_time_now();
        let patch = if new["spec"]["holderIdentity"] == holder {
            json!({"spec": {"renewTime": now, "leaseDurationSeconds": duration_seconds}})
        } else {
            let transitions = new["spec"]["leaseTransitions"].as_i64().unwrap_or(0) + 1;
            json!({"spec": {"holderIdentity": holder, "acquireTime": now, "renewTime": now,
                    "leaseDurationSeconds": duration_seconds, "leaseTransitions": transitions}})
        };
        merge_patch(&mut new, &patch);
        write_lease_update(self, Some(i), namespace, name, new, holder);
        true
    }

    /// Deletes the Lease `namespace/name`, as `kubectl delete lease` would. False if there was
    /// none.
    pub fn delete_lease(&mut self, namespace: &str, name: &str) -> bool {
        match self.lease_index(namespace, name) {
            Some(i) => {
                self.leases.remove(i);
                true
            }
            None => false,
        }
    }

    /// The scalable object `namespace/name` (of any kind).
    pub fn scalable(&self, namespace: &str, name: &str) -> Option<&Scalable> {
        self.scalables
            .iter()
            .find(|s| s.namespace == namespace && s.name == name)
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
    /// The body (lossy UTF-8; empty when there was none).
    pub body: String,
    /// When it was received.
    pub received_at: std::time::Instant,
}

#[derive(Default)]
struct Shared {
    world: Mutex<World>,
    requests: Mutex<Vec<Received>>,
    /// Set on drop: watch streams end.
    stopping: std::sync::atomic::AtomicBool,
}
/// What the server thread is asked to do.
enum Command {
    /// Close every connection, refuse new ones for `down`, then listen again and answer 403 for
    /// `forbidden`; send when it answers normally again.
    Restart {
        down: Duration,
        forbidden: Duration,
        ready: std::sync::mpsc::Sender<std::time::Instant>,
    },
}

/// A running stand-in. Stopped on drop.
pub struct KubeStandIn {
    addr: SocketAddr,
    shared: Arc<Shared>,
    commands: Option<tokio::sync::mpsc::UnboundedSender<Command>>,
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
        world.watch.oldest = world.resource_version;
        let shared = Arc::new(Shared {
            world: Mutex::new(world),
            ..Shared::default()
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (commands, mut received) = tokio::sync::mpsc::unbounded_channel::<Command>();
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(shared.clone());
        let world = shared.clone();
        let thread = std::thread::spawn(move || {
            let mut listener = Some(listener);
            // One runtime per run of the server: dropping it closes every connection, as the
            // end of a kube-apiserver process does.
            while let Some(l) = listener.take() {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let command = rt.block_on(async {
                    let l = tokio::net::TcpListener::from_std(l).unwrap();
                    tokio::select! {
                        r = axum::serve(l, app.clone()).into_future() => {
                            r.unwrap();
                            None
                        }
                        c = received.recv() => c,
                    }
                });
                drop(rt);
                let Some(Command::Restart {
                    down,
                    forbidden,
                    ready,
                }) = command
                else {
                    break;
                };
                std::thread::sleep(down);
                let again = loop {
                    match std::net::TcpListener::bind(addr) {
                        Ok(l) => break l,
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                };
                again.set_nonblocking(true).unwrap();
                let until = std::time::Instant::now() + forbidden;
                world.world.lock().unwrap().forbidden_until = Some(until);
                listener = Some(again);
                let _ = ready.send(until);
            }
        });
        KubeStandIn {
            addr,
            shared,
            commands: Some(commands),
            thread: Some(thread),
        }
    }

    /// Plays a kube-apiserver restart: closes every connection, refuses new ones for `down`,
    /// then answers every request with RBAC's 403 for `forbidden`. Returns, once the server
    /// answers normally again, the moment it did.
    pub fn restart(&self, down: Duration, forbidden: Duration) -> std::time::Instant {
        let (ready, is_ready) = std::sync::mpsc::channel();
        self.commands
            .as_ref()
            .expect("running")
            .send(Command::Restart {
                down,
                forbidden,
                ready,
            })
            .unwrap_or_else(|_| panic!("the server thread runs"));
        let at = is_ready.recv().expect("the server listens again");
        std::thread::sleep(at.saturating_duration_since(std::time::Instant::now()));
        at
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

    /// A [`KubeCluster`] on this stand-in, in `namespace` (through a kubeconfig in `dir`).
    pub async fn cluster(&self, dir: &super::TempDir, namespace: &str) -> KubeCluster {
        KubeCluster::connect(&ClusterConfig {
            kubeconfig: Some(self.kubeconfig(dir, namespace)),
            ..ClusterConfig::default()
        })
        .await
        .expect("connect to the stand-in")
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
        self.shared.stopping.store(true, Ordering::Relaxed);
        // The server thread stops when the command channel closes.
        drop(self.commands.take());
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

/// `resource.group`, or `resource` for the core group.
fn qualified(resource: &str, group: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

/// `StatusDetails` without its empty fields, as the server serializes them.
fn details(name: &str, group: &str, kind: &str) -> Value {
    let mut d = Map::new();
    if !name.is_empty() {
        d.insert("name".into(), json!(name));
    }
    if !group.is_empty() {
        d.insert("group".into(), json!(group));
    }
    if !kind.is_empty() {
        d.insert("kind".into(), json!(kind));
    }
    Value::Object(d)
}

fn not_found(group: &str, resource: &str, name: &str) -> Response {
    let message = format!("{} \"{name}\" not found", qualified(resource, group));
    let details = details(name, group, resource);
    json_answer(404, status(404, "NotFound", &message, Some(details)))
}

fn already_exists(group: &str, resource: &str, name: &str) -> Response {
    let message = format!("{} \"{name}\" already exists", qualified(resource, group));
    let details = details(name, group, resource);
    json_answer(409, status(409, "AlreadyExists", &message, Some(details)))
}

fn conflict(group: &str, resource: &str, name: &str) -> Response {
    let message = format!(
        "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please \
         apply your changes to the latest version and try again",
        qualified(resource, group)
    );
    let details = details(name, group, resource);
    json_answer(409, status(409, "Conflict", &message, Some(details)))
}

/// A field error: (cause reason, field, the error's body such as `Required value`).
type FieldError<'a> = (&'a str, &'a str, String);

/// 422 `Invalid`, as `apierrors.NewInvalid(qualifiedKind, name, errs)` words it.
fn invalid(group: &str, kind: &str, name: &str, errors: &[FieldError<'_>]) -> Response {
    let listed: Vec<String> = errors
        .iter()
        .map(|(_, field, body)| format!("{field}: {body}"))
        .collect();
    let all = if listed.len() == 1 {
        listed[0].clone()
    } else {
        format!("[{}]", listed.join(", "))
    };
    let message = format!("{} \"{name}\" is invalid: {all}", qualified(kind, group));
    let mut d = details(name, group, kind);
    d["causes"] = errors
        .iter()
        .map(|(reason, field, body)| json!({"reason": reason, "message": body, "field": field}))
        .collect();
    json_answer(422, status(422, "Invalid", &message, Some(d)))
}

fn bad_request(message: &str) -> Response {
    json_answer(400, status(400, "BadRequest", message, None))
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

/// A call that a real server answers but the stand-in does not: a 500 that says so, so that a
/// test meeting it knows the stand-in needs extending.
fn not_implemented(method: &str, path: &str, content_type: Option<&str>) -> Response {
    let message = format!(
        "the Kubernetes API stand-in does not implement {method} {path} ({})",
        content_type.unwrap_or("no content type")
    );
    json_answer(500, status(500, "InternalError", &message, Some(json!({}))))
}

/// A path as the API server's request-info resolver reads it.
struct Target {
    group: String,
    namespace: Option<String>,
    resource: String,
    name: Option<String>,
    subresource: Option<String>,
}

fn target_of(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        _ => (None, rest),
    };
    let (resource, name, subresource) = match rest {
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some(*name), None),
        [resource, name, sub] => (*resource, Some(*name), Some(*sub)),
        _ => return None,
    };
    Some(Target {
        group: group.to_string(),
        namespace,
        resource: resource.to_string(),
        name: name.map(str::to_string),
        subresource: subresource.map(str::to_string),
    })
}

/// The RBAC verb of a request.
fn verb(method: &str, target: Option<&Target>) -> String {
    let named = target.is_some_and(|t| t.name.is_some());
    match (method, named) {
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        (m, _) => return m.to_lowercase(),
    }
    .to_string()
}

/// The 403 of RBAC for a service account `setpoint` of the request's namespace.
fn forbidden(method: &str, path: &str) -> Response {
    forbidden_as(None, &verb(method, target_of(path).as_ref()), path)
}

/// The 403 of RBAC for `user` (None: the service account `setpoint` of the request's
/// namespace) and `verb`.
fn forbidden_as(user: Option<&str>, verb: &str, path: &str) -> Response {
    let target = target_of(path);
    let Some(t) = target else {
        let user = user.unwrap_or("system:serviceaccount:default:setpoint");
        let message = format!("forbidden: User \"{user}\" cannot {verb} path \"{path}\"");
        return json_answer(403, status(403, "Forbidden", &message, Some(json!({}))));
    };
    let user = user.map(str::to_string).unwrap_or_else(|| {
        format!(
            "system:serviceaccount:{}:setpoint",
            t.namespace.as_deref().unwrap_or("default")
        )
    });
    let resource = match &t.subresource {
        Some(sub) => format!("{}/{sub}", t.resource),
        None => t.resource.clone(),
    };
    let scope = match &t.namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_string(),
    };
    let reason = format!(
        "User \"{user}\" cannot {verb} resource \"{resource}\" in API group \"{}\" {scope}",
        t.group
    );
    let q = qualified(&t.resource, &t.group);
    let message = match &t.name {
        Some(name) => format!("{q} \"{name}\" is forbidden: {reason}"),
        None => format!("{q} is forbidden: {reason}"),
    };
    let d = details(t.name.as_deref().unwrap_or(""), &t.group, &t.resource);
    json_answer(403, status(403, "Forbidden", &message, Some(d)))
}

fn fault_answer(code: u16, method: &str, path: &str) -> Response {
    if code == 403 {
        return forbidden(method, path);
    }
    if code == 409
        && let Some(t) = target_of(path)
        && let Some(name) = &t.name
    {
        return conflict(&t.group, &t.resource, name);
    }
    let (reason, message) = match code {
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

const APPLY: &str = "application/apply-patch+yaml";
const MERGE: &str = "application/merge-patch+json";
const STRATEGIC: &str = "application/strategic-merge-patch+json";
const JSON_PATCH: &str = "application/json-patch+json";

/// An error answer, boxed: an `axum` response is large.
type Refusal = Box<Response>;

/// One request, as the handlers below need it.
struct Req<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a BTreeMap<String, String>,
    content_type: Option<&'a str>,
    user_agent: &'a str,
    body: &'a [u8],
    /// Asked for kubectl's Table format (`Accept: application/json;as=Table;…`).
    table: bool,
}

impl Req<'_> {
    /// The media type, without parameters.
    fn media_type(&self) -> &str {
        self.content_type
            .map(|c| c.split(';').next().unwrap_or("").trim())
            .unwrap_or("")
    }

    /// The field manager: `?fieldManager=`, else the User-Agent up to its first `/`, as the
    /// API server falls back to.
    fn manager(&self) -> String {
        match self.query.get("fieldManager") {
            Some(m) if !m.is_empty() => m.clone(),
            _ => self.user_agent.split('/').next().unwrap_or("").to_string(),
        }
    }

    fn json_body(&self) -> Result<Value, Refusal> {
        serde_json::from_slice(self.body).map_err(|e| {
            Box::new(bad_request(&format!(
                "the body of the request could not be decoded as JSON: {e}"
            )))
        })
    }

    /// A patch body: YAML (or JSON, which is YAML) for an apply, JSON otherwise.
    fn patch_body(&self) -> Result<Value, Refusal> {
        if self.media_type() == APPLY {
            let text = String::from_utf8_lossy(self.body);
            serde_saphyr::from_str::<Value>(&text)
                .map_err(|e| Box::new(bad_request(&format!("error decoding YAML: {e}"))))
        } else {
            self.json_body()
                .map_err(|_| Box::new(bad_request("error decoding patch: invalid JSON")))
        }
    }

    /// The checks of `PatchOptions` that a real server makes before it looks at the object:
    /// 415 for a content type that is no patch, 422 for an apply without a field manager or a
    /// `force` on another patch, and a 500 for a JSON patch, which the stand-in lacks.
    fn check_patch(&self) -> Result<(), Refusal> {
        let media = self.media_type();
        if media == JSON_PATCH {
            return Err(Box::new(not_implemented(
                self.method,
                self.path,
                self.content_type,
            )));
        }
        if ![APPLY, MERGE, STRATEGIC].contains(&media) {
            return Err(Box::new(unsupported_media_type()));
        }
        let options = |field: &str, reason: &str, body: &str| {
            invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                &[(reason, field, body.to_string())],
            )
        };
        if media == APPLY && self.query.get("fieldManager").is_none_or(|m| m.is_empty()) {
            return Err(Box::new(options(
                "fieldManager",
                "FieldValueRequired",
                "Required value: is required for apply patch",
            )));
        }
        if media != APPLY && self.query.contains_key("force") {
            return Err(Box::new(options(
                "force",
                "FieldValueForbidden",
                "Forbidden: may not be specified for non-apply patch",
            )));
        }
        Ok(())
    }

    fn force(&self) -> bool {
        self.query.get("force").is_some_and(|f| f == "true")
    }
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
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    shared.requests.lock().unwrap().push(Received {
        method: method.to_string(),
        uri: uri.to_string(),
        content_type: content_type.clone(),
        body: String::from_utf8_lossy(&body).into_owned(),
        received_at: std::time::Instant::now(),
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

    // A server that has just started: RBAC's caches are not filled yet.
    let starting = shared
        .world
        .lock()
        .unwrap()
        .forbidden_until
        .is_some_and(|t| std::time::Instant::now() < t);
    if starting {
        return forbidden(method.as_str(), &path);
    }
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
            return fault_answer(code, method.as_str(), &path);
        }
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let (token, account) = {
        let world = shared.world.lock().unwrap();
        let account = world
            .service_accounts
            .iter()
            .find(|sa| Some(sa.token.as_str()) == given)
            .cloned();
        (world.token.clone(), account)
    };
    if let Some(token) = token
        && account.is_none()
        && given != Some(token.as_str())
    {
        return json_answer(401, status(401, "Unauthorized", "Unauthorized", None));
    }

    let req = Req {
        method: method.as_str(),
        path: &path,
        query: &query,
        content_type: content_type.as_deref(),
        user_agent: &user_agent,
        body: &body,
        table: headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("as=Table")),
    };
    if let Some(r) = account.and_then(|sa| rbac::refuse(&sa, &req)) {
        return r;
    }
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    if watch::wanted(&req)
        && let Some(r) = watch::answer(&shared, &req, &parts)
    {
        return r;
    }
    let mut world = shared.world.lock().unwrap();
    if let Some(r) = crd::answer(&mut world, &req, &parts) {
        return r;
    }
    if let Some(r) = watch::reads(&world, &req, &parts) {
        return r;
    }
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
            let (items, metadata) = match watch::page(&world, items, &query) {
                Ok(page) => page,
                Err(r) => return *r,
            };
            json_answer(
                200,
                json!({"kind": "PodList", "apiVersion": "v1", "metadata": metadata, "items": items}),
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
        (
            _,
            [
                "apis",
                "events.k8s.io",
                "v1",
                "namespaces",
                ns,
                "events",
                rest @ ..,
            ],
        ) => events(&mut world, &req, ns, rest),
        (
            _,
            [
                "apis",
                "coordination.k8s.io",
                "v1",
                "namespaces",
                ns,
                "leases",
                rest @ ..,
            ],
        ) => leases(&mut world, &req, ns, rest),
        ("GET", ["apis", group, version]) => discovery(&world, group, version),
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
            let Some(i) = find_scalable(&world, group, version, ns, plural, name) else {
                return scalable_missing(&world, group, version, plural, name, true);
            };
            if m == "PATCH" {
                if content_type.as_deref() != Some(MERGE) {
                    return unsupported_media_type();
                }
                let patch = match req.patch_body() {
                    Ok(p) => p,
                    Err(r) => return *r,
                };
                let s = &world.scalables[i];
                if let Some(rv) = patch["metadata"]["resourceVersion"].as_str()
                    && rv != s.resource_version.to_string()
                {
                    return conflict(group, plural, name);
                }
                if let Some(r) = patch["spec"]["replicas"].as_i64() {
                    if r < 0 {
                        return negative_replicas("autoscaling", "Scale", name, r);
                    }
                    if r != world.scalables[i].replicas {
                        let v = world.next_version();
                        let s = &mut world.scalables[i];
                        s.replicas = r;
                        s.resource_version = v;
                        world.record_scalable(i);
                    }
                }
            }
            json_answer(200, scale_json(&world.scalables[i]))
        }
        (m @ ("GET" | "PATCH"), ["apis", group, version, "namespaces", ns, plural, name]) => {
            let Some(i) = find_scalable(&world, group, version, ns, plural, name) else {
                return scalable_missing(&world, group, version, plural, name, false);
            };
            if m == "PATCH" {
                patch_object(&mut world, i, &req)
            } else {
                json_answer(200, object_json(&world.scalables[i]))
            }
        }
        _ => page_not_found(),
    }
}

fn discovery(world: &World, group: &str, version: &str) -> Response {
    let builtin = match (group, version) {
        ("events.k8s.io", "v1") => Some(("events", "event", "Event")),
        ("coordination.k8s.io", "v1") => Some(("leases", "lease", "Lease")),
        _ => None,
    };
    let mut resources: Vec<Value> = builtin
        .map(|(name, singular, kind)| {
            json!({"name": name, "singularName": singular, "namespaced": true, "kind": kind,
                   "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]})
        })
        .into_iter()
        .collect();
    resources.extend(crd::discovery_resources(world, group, version));
    resources.extend(
        world
            .scalables
            .iter()
            .filter(|s| s.group == group && s.version == version)
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
            }),
    );
    if resources.is_empty() {
        return page_not_found();
    }
    json_answer(
        200,
        json!({"kind": "APIResourceList", "apiVersion": "v1",
               "groupVersion": format!("{group}/{version}"), "resources": resources}),
    )
}

fn find_scalable(
    world: &World,
    group: &str,
    version: &str,
    ns: &str,
    plural: &str,
    name: &str,
) -> Option<usize> {
    world.scalables.iter().position(|s| {
        s.group == group
            && s.version == version
            && s.namespace == ns
            && s.plural == plural
            && s.name == name
    })
}

/// 404 for a missing object of a served kind (or its scale), the plain 404 for a kind nobody
/// serves.
fn scalable_missing(
    world: &World,
    group: &str,
    version: &str,
    plural: &str,
    name: &str,
    scale: bool,
) -> Response {
    if !world
        .scalables
        .iter()
        .any(|s| s.group == group && s.version == version && s.plural == plural)
    {
        return page_not_found();
    }
    let resource = if scale {
        format!("{plural}/scale")
    } else {
        plural.to_string()
    };
    not_found(group, &resource, name)
}

fn negative_replicas(group: &str, kind: &str, name: &str, replicas: i64) -> Response {
    invalid(
        group,
        kind,
        name,
        &[(
            "FieldValueInvalid",
            "spec.replicas",
            format!("Invalid value: {replicas}: must be greater than or equal to 0"),
        )],
    )
}

/// A PATCH of a scalable object: annotations and replicas, for apply, merge and strategic
/// merge patches alike.
fn patch_object(world: &mut World, i: usize, req: &Req<'_>) -> Response {
    if let Err(r) = req.check_patch() {
        return *r;
    }
    let patch = match req.patch_body() {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let s = &world.scalables[i];
    let (group, plural, name, kind) = (
        s.group.clone(),
        s.plural.clone(),
        s.name.clone(),
        s.kind.clone(),
    );
    if let Some(rv) = patch["metadata"]["resourceVersion"].as_str()
        && rv != s.resource_version.to_string()
    {
        return conflict(&group, &plural, &name);
    }
    let mut annotations = s.annotations.clone();
    let object = format!("{}/{}", s.namespace, s.name);
    if req.media_type() == APPLY {
        // Server-side apply: what this manager applied before and leaves out now goes, unless
        // another manager applied it too; what it applies now is its own.
        let manager = req.manager();
        let given: BTreeSet<String> = patch["metadata"]["annotations"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        let owners = world.applied_annotations.entry(object).or_default();
        let before = owners.remove(&manager).unwrap_or_default();
        for k in before.difference(&given) {
            if !owners.values().any(|keys| keys.contains(k)) {
                annotations.remove(k);
            }
        }
        for keys in owners.values_mut() {
            keys.retain(|k| !given.contains(k));
        }
        owners.insert(manager, given);
    }
    let s = &world.scalables[i];
    if let Some(given) = patch["metadata"].get("annotations") {
        let Some(given) = given.as_object() else {
            return bad_request("metadata.annotations: expected an object of strings");
        };
        for (k, v) in given {
            match v {
                Value::Null => {
                    annotations.remove(k);
                }
                Value::String(text) => {
                    annotations.insert(k.clone(), text.clone());
                }
                other => {
                    return bad_request(&format!(
                        "metadata.annotations.{k}: expected a string, not {other}"
                    ));
                }
            }
        }
    }
    let mut replicas = s.replicas;
    if let Some(r) = patch["spec"].get("replicas") {
        match r.as_i64() {
            Some(r) if r < 0 => return negative_replicas(&group, &kind, &name, r),
            Some(r) => replicas = r,
            None => return bad_request(&format!("spec.replicas: expected an integer, not {r}")),
        }
    }
    if annotations != s.annotations || replicas != s.replicas {
        let v = world.next_version();
        let s = &mut world.scalables[i];
        s.annotations = annotations;
        s.replicas = replicas;
        s.resource_version = v;
        world.record_scalable(i);
    }
    json_answer(200, object_json(&world.scalables[i]))
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
            "creationTimestamp": s.created,
        },
        "spec": {"replicas": s.replicas},
        "status": {"replicas": s.status_replicas, "selector": s.selector},
    })
}

/// The labels of an equality-based selector (`a=b,c=d`), for `matchLabels`.
fn selector_labels(selector: &str) -> Map<String, Value> {
    selector
        .split(',')
        .filter(|r| !r.contains("!="))
        .filter_map(|r| r.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_string(),
                json!(v.trim_start_matches('=').trim()),
            )
        })
        .collect()
}

/// The scalable object as the API server answers it: a Deployment as recorded (without
/// `managedFields`, `generation` and most of `status`), or another kind with the same metadata,
/// replicas, selector and template.
fn object_json(s: &Scalable) -> Value {
    let labels = Value::Object(selector_labels(&s.selector));
    let mut metadata = json!({
        "name": s.name,
        "namespace": s.namespace,
        "uid": s.uid,
        "resourceVersion": s.resource_version.to_string(),
        "creationTimestamp": s.created,
    });
    if !s.annotations.is_empty() {
        metadata["annotations"] = json!(s.annotations);
    }
    let mut spec = json!({
        "replicas": s.replicas,
        "selector": {"matchLabels": labels},
        "template": {
            "metadata": {"creationTimestamp": null, "labels": labels},
            "spec": {
                "containers": s.containers,
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 30,
                "dnsPolicy": "ClusterFirst",
                "securityContext": {},
                "schedulerName": "default-scheduler",
            },
        },
    });
    if s.kind == "Deployment" {
        spec["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}});
        spec["revisionHistoryLimit"] = json!(10);
        spec["progressDeadlineSeconds"] = json!(600);
    }
    json!({
        "kind": s.kind,
        "apiVersion": format!("{}/{}", s.group, s.version),
        "metadata": metadata,
        "spec": spec,
        "status": {"replicas": s.status_replicas},
    })
}

/// A list answer: items without `kind` and `apiVersion`, as the server lists built-in types.
fn list(kind: &str, api_version: &str, world: &World, items: Vec<&Value>) -> Response {
    let items: Vec<Value> = items
        .into_iter()
        .map(|i| {
            let mut i = i.clone();
            if let Some(o) = i.as_object_mut() {
                o.remove("kind");
                o.remove("apiVersion");
            }
            i
        })
        .collect();
    json_answer(
        200,
        json!({"kind": kind, "apiVersion": api_version,
               "metadata": {"resourceVersion": world.resource_version.to_string()}, "items": items}),
    )
}

/// A create's body must name the request's namespace, if it names one.
fn check_namespace(body: &Value, ns: &str) -> Result<(), Refusal> {
    match body["metadata"]["namespace"].as_str() {
        Some(given) if !given.is_empty() && given != ns => Err(Box::new(bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ))),
        _ => Ok(()),
    }
}

const EVENTS_GROUP: &str = "events.k8s.io";

fn events(world: &mut World, req: &Req<'_>, ns: &str, rest: &[&str]) -> Response {
    match (req.method, rest) {
        ("GET", []) => {
            let selector = req
                .query
                .get("labelSelector")
                .map(String::as_str)
                .unwrap_or("");
            let items = world
                .events
                .iter()
                .filter(|e| {
                    e["metadata"]["namespace"] == ns && matches(selector, &e["metadata"]["labels"])
                })
                .collect();
            list("EventList", "events.k8s.io/v1", world, items)
        }
        ("GET", [name]) => match world
            .events
            .iter()
            .find(|e| e["metadata"]["namespace"] == ns && e["metadata"]["name"] == *name)
        {
            Some(e) => json_answer(200, e.clone()),
            None => not_found(EVENTS_GROUP, "events", name),
        },
        ("POST", []) => create_event(world, req, ns),
        _ => not_implemented(req.method, req.path, req.content_type),
    }
}

fn create_event(world: &mut World, req: &Req<'_>, ns: &str) -> Response {
    let mut event = match req.json_body() {
        Ok(v) if v.is_object() => v,
        Ok(_) => return bad_request("the body of the request is not an object"),
        Err(r) => return *r,
    };
    if let Err(r) = check_namespace(&event, ns) {
        return *r;
    }
    let given = event["metadata"]["name"].as_str().unwrap_or("").to_string();
    let name = if !given.is_empty() {
        given
    } else if let Some(prefix) = event["metadata"]["generateName"].as_str() {
        format!("{prefix}{}", random_suffix())
    } else {
        return invalid(
            "",
            "Event",
            "",
            &[(
                "FieldValueRequired",
                "metadata.name",
                "Required value: name or generateName is required".to_string(),
            )],
        );
    };
    if event["eventTime"].is_null() {
        return invalid(
            "",
            "Event",
            &name,
            &[(
                "FieldValueRequired",
                "eventTime",
                "Required value".to_string(),
            )],
        );
    }
    if world
        .events
        .iter()
        .any(|e| e["metadata"]["namespace"] == ns && e["metadata"]["name"] == name.as_str())
    {
        return already_exists(EVENTS_GROUP, "events", &name);
    }
    let rv = world.next_version();
    let given_meta = event["metadata"].clone();
    let mut metadata = json!({
        "name": name,
        "namespace": ns,
        "uid": new_uid(),
        "resourceVersion": rv.to_string(),
        "creationTimestamp": now_rfc3339(),
    });
    for key in ["generateName", "labels", "annotations"] {
        if let Some(v) = given_meta.get(key) {
            metadata[key] = v.clone();
        }
    }
    event["metadata"] = metadata;
    event["kind"] = json!("Event");
    event["apiVersion"] = json!("events.k8s.io/v1");
    for (key, empty) in [
        ("deprecatedSource", json!({})),
        ("deprecatedFirstTimestamp", Value::Null),
        ("deprecatedLastTimestamp", Value::Null),
    ] {
        if event.get(key).is_none() {
            event[key] = empty;
        }
    }
    flag_regarding(world, &event, &name);
    world.events.push(event.clone());
    json_answer(201, event)
}

/// Notes in [`World::flagged`] an Event whose `regarding` lacks the uid (or names another uid or
/// a resourceVersion from the future) of the object it is about.
fn flag_regarding(world: &mut World, event: &Value, name: &str) {
    let r = &event["regarding"];
    let object = world.scalables.iter().find(|s| {
        Some(s.kind.as_str()) == r["kind"].as_str() && Some(s.name.as_str()) == r["name"].as_str()
    });
    let pod = world
        .pods
        .iter()
        .find(|p| r["kind"] == "Pod" && p["metadata"]["name"] == r["name"]);
    let (uid, version) = match (object, pod) {
        (Some(s), _) => (Some(s.uid.clone()), Some(s.resource_version)),
        (None, Some(p)) => (
            p["metadata"]["uid"].as_str().map(str::to_string),
            p["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|v| v.parse().ok()),
        ),
        (None, None) => (None, None),
    };
    let reason = event["reason"].as_str().unwrap_or("");
    match r["uid"].as_str() {
        None | Some("") => world.flagged.push(format!(
            "Event {name} ({reason}) about {} {}: regarding has no uid, so kubectl describe \
             does not show it",
            r["kind"], r["name"]
        )),
        Some(given) if uid.as_deref().is_some_and(|u| u != given) => world.flagged.push(format!(
            "Event {name} ({reason}): regarding.uid {given} is not the object's"
        )),
        Some(_) => {}
    }
    let given = r["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse::<u64>().ok());
    if let (Some(given), Some(now)) = (given, version)
        && given > now
    {
        world.flagged.push(format!(
            "Event {name} ({reason}): regarding.resourceVersion {given} is newer than the object's"
        ));
    }
}

const LEASES_GROUP: &str = "coordination.k8s.io";
const LEASE_API_VERSION: &str = "coordination.k8s.io/v1";

fn leases(world: &mut World, req: &Req<'_>, ns: &str, rest: &[&str]) -> Response {
    let name = match rest {
        [] => None,
        [name] => Some(*name),
        _ => return page_not_found(),
    };
    let Some(name) = name else {
        return match req.method {
            "GET" => {
                let items = world
                    .leases
                    .iter()
                    .filter(|l| l["metadata"]["namespace"] == ns)
                    .collect();
                list("LeaseList", LEASE_API_VERSION, world, items)
            }
            "POST" => create_lease(world, req, ns),
            _ => not_implemented(req.method, req.path, req.content_type),
        };
    };
    let i = world.lease_index(ns, name);
    match req.method {
        "GET" => match i {
            Some(i) => json_answer(200, world.leases[i].clone()),
            None => not_found(LEASES_GROUP, "leases", name),
        },
        "DELETE" => match i {
            Some(i) => {
                let gone = world.leases.remove(i);
                json_answer(
                    200,
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                           "details": {"name": name, "group": LEASES_GROUP, "kind": "leases",
                                       "uid": gone["metadata"]["uid"]}}),
                )
            }
            None => not_found(LEASES_GROUP, "leases", name),
        },
        "PUT" => replace_lease(world, req, ns, name, i),
        "PATCH" => patch_lease(world, req, ns, name, i),
        _ => not_implemented(req.method, req.path, req.content_type),
    }
}

fn create_lease(world: &mut World, req: &Req<'_>, ns: &str) -> Response {
    let lease = match req.json_body() {
        Ok(v) if v.is_object() => v,
        Ok(_) => return bad_request("the body of the request is not an object"),
        Err(r) => return *r,
    };
    if let Err(r) = check_namespace(&lease, ns) {
        return *r;
    }
    let name = lease["metadata"]["name"].as_str().unwrap_or("").to_string();
    if name.is_empty() {
        return invalid(
            LEASES_GROUP,
            "Lease",
            "",
            &[(
                "FieldValueRequired",
                "metadata.name",
                "Required value: name or generateName is required".to_string(),
            )],
        );
    }
    if world.lease_index(ns, &name).is_some() {
        return already_exists(LEASES_GROUP, "leases", &name);
    }
    let stored = write_lease_update(world, None, ns, &name, lease, &req.manager());
    json_answer(201, stored)
}

/// PUT: Leases do not allow an unconditional update, so a missing resourceVersion is invalid
/// and a stale one a conflict; a PUT of a missing Lease creates it.
fn replace_lease(
    world: &mut World,
    req: &Req<'_>,
    ns: &str,
    name: &str,
    i: Option<usize>,
) -> Response {
    let lease = match req.json_body() {
        Ok(v) if v.is_object() => v,
        Ok(_) => return bad_request("the body of the request is not an object"),
        Err(r) => return *r,
    };
    if let Err(r) = check_namespace(&lease, ns) {
        return *r;
    }
    let given = lease["metadata"]["name"].as_str().unwrap_or("");
    if given != name {
        return bad_request(&format!(
            "the name of the object ({given}) does not match the name on the URL ({name})"
        ));
    }
    let Some(i) = i else {
        let stored = write_lease_update(world, None, ns, name, lease, &req.manager());
        return json_answer(201, stored);
    };
    match lease["metadata"]["resourceVersion"].as_str() {
        None | Some("") => {
            return invalid(
                LEASES_GROUP,
                "leases",
                name,
                &[(
                    "FieldValueInvalid",
                    "metadata.resourceVersion",
                    "Invalid value: 0x0: must be specified for an update".to_string(),
                )],
            );
        }
        Some(rv) if rv != world.leases[i]["metadata"]["resourceVersion"] => {
            return conflict(LEASES_GROUP, "leases", name);
        }
        Some(_) => {}
    }
    let stored = write_lease_update(world, Some(i), ns, name, lease, &req.manager());
    json_answer(200, stored)
}

fn patch_lease(
    world: &mut World,
    req: &Req<'_>,
    ns: &str,
    name: &str,
    i: Option<usize>,
) -> Response {
    if let Err(r) = req.check_patch() {
        return *r;
    }
    let patch = match req.patch_body() {
        Ok(p) if p.is_object() => p,
        Ok(_) => return bad_request("the patch is not an object"),
        Err(r) => return *r,
    };
    if let (Some(i), Some(rv)) = (i, patch["metadata"]["resourceVersion"].as_str())
        && rv != world.leases[i]["metadata"]["resourceVersion"]
    {
        return conflict(LEASES_GROUP, "leases", name);
    }
    if req.media_type() == APPLY {
        return match write_lease_apply(world, i, ns, name, &patch, &req.manager(), req.force()) {
            Ok(stored) => json_answer(if i.is_some() { 200 } else { 201 }, stored),
            Err(r) => *r,
        };
    }
    let Some(i) = i else {
        return not_found(LEASES_GROUP, "leases", name);
    };
    // A strategic merge patch of a Lease is a merge patch: a Lease has no lists.
    let mut new = world.leases[i].clone();
    merge_patch(&mut new, &patch);
    let stored = write_lease_update(world, Some(i), ns, name, new, &req.manager());
    json_answer(200, stored)
}

/// A leaf field of an object, as a path (`["spec", "holderIdentity"]`).
type FieldPath = Vec<String>;

/// The fields that field management tracks here, with their values: every leaf under the
/// top-level keys but `apiVersion`, `kind`, `metadata` and `status`, and the labels and
/// annotations. Lists count as one field.
fn tracked_fields(obj: &Value) -> BTreeMap<FieldPath, Value> {
    fn leaves(v: &Value, path: FieldPath, out: &mut BTreeMap<FieldPath, Value>) {
        match v {
            Value::Null => {}
            Value::Object(m) => {
                for (k, child) in m {
                    let mut p = path.clone();
                    p.push(k.clone());
                    leaves(child, p, out);
                }
            }
            other => {
                out.insert(path, other.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    let Some(map) = obj.as_object() else {
        return out;
    };
    for (k, v) in map {
        match k.as_str() {
            "apiVersion" | "kind" | "status" => {}
            "metadata" => {
                for key in ["labels", "annotations"] {
                    if let Some(m) = v.get(key) {
                        leaves(m, vec!["metadata".into(), key.into()], &mut out);
                    }
                }
            }
            _ => leaves(v, vec![k.clone()], &mut out),
        }
    }
    out
}

/// One `managedFields` entry. `fields` holds leaves, and maps that the manager owns as such
/// (rendered `".": {}`; only custom objects have those).
#[derive(Debug, Clone, PartialEq)]
struct Managed {
    manager: String,
    operation: String,
    api_version: String,
    subresource: Option<String>,
    time: Option<String>,
    fields: BTreeSet<FieldPath>,
}

impl Managed {
    fn same_manager(&self, manager: &str, operation: &str) -> bool {
        self.manager == manager && self.operation == operation
    }

    /// How a conflict names this manager.
    fn display(&self) -> String {
        if self.operation == "Update" {
            format!("\"{}\" using {}", self.manager, self.api_version)
        } else {
            format!("\"{}\"", self.manager)
        }
    }
}

fn read_managed(obj: &Value) -> Vec<Managed> {
    fn walk(v: &Value, path: FieldPath, out: &mut BTreeSet<FieldPath>) {
        let children: Vec<(&String, &Value)> = v
            .as_object()
            .map(|m| m.iter().filter(|(k, _)| k.starts_with("f:")).collect())
            .unwrap_or_default();
        if (children.is_empty() || v.get(".").is_some()) && !path.is_empty() {
            out.insert(path.clone());
        }
        if children.is_empty() {
            return;
        }
        for (k, child) in children {
            let mut p = path.clone();
            p.push(k[2..].to_string());
            walk(child, p, out);
        }
    }
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    let mut fields = BTreeSet::new();
                    walk(&e["fieldsV1"], Vec::new(), &mut fields);
                    Managed {
                        manager: e["manager"].as_str().unwrap_or("").to_string(),
                        operation: e["operation"].as_str().unwrap_or("").to_string(),
                        api_version: e["apiVersion"].as_str().unwrap_or("").to_string(),
                        subresource: e["subresource"].as_str().map(str::to_string),
                        time: e["time"].as_str().map(str::to_string),
                        fields,
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Writes `managedFields`: entries without fields dropped, Apply before Update, then by time,
/// manager and subresource, as the API server orders them.
fn write_managed(obj: &mut Value, mut entries: Vec<Managed>) {
    entries.retain(|e| !e.fields.is_empty());
    entries.sort_by(|a, b| {
        (&a.operation, &a.time, &a.manager, &a.subresource).cmp(&(
            &b.operation,
            &b.time,
            &b.manager,
            &b.subresource,
        ))
    });
    let rendered: Vec<Value> = entries
        .iter()
        .map(|e| {
            let mut fields = json!({});
            for path in &e.fields {
                let mut node = &mut fields;
                for part in path {
                    node = node
                        .as_object_mut()
                        .unwrap()
                        .entry(format!("f:{part}"))
                        .or_insert_with(|| json!({}));
                }
            }
            mark_owned_maps(&mut fields, &e.fields, &mut Vec::new());
            let mut entry = json!({"manager": e.manager, "operation": e.operation,
                                   "apiVersion": e.api_version});
            if let Some(t) = &e.time {
                entry["time"] = json!(t);
            }
            entry["fieldsType"] = json!("FieldsV1");
            entry["fieldsV1"] = fields;
            if let Some(sub) = &e.subresource {
                entry["subresource"] = json!(sub);
            }
            entry
        })
        .collect();
    if rendered.is_empty() {
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("managedFields");
        }
    } else {
        obj["metadata"]["managedFields"] = Value::Array(rendered);
    }
}

/// Marks, under `node` (at `path`), the maps that `owned` names as such and that have owned
/// members: `".": {}`.
fn mark_owned_maps(node: &mut Value, owned: &BTreeSet<FieldPath>, path: &mut FieldPath) {
    let Some(m) = node.as_object_mut() else {
        return;
    };
    if !m.is_empty() && !path.is_empty() && owned.contains(path) {
        m.insert(".".into(), json!({}));
    }
    for (k, child) in m.iter_mut() {
        if let Some(name) = k.strip_prefix("f:") {
            path.push(name.to_string());
            mark_owned_maps(child, owned, path);
            path.pop();
        }
    }
}

/// `new` with the system metadata of `old` (or fresh for a create), its kind and apiVersion,
/// and a `spec` (the API server always shows one).
fn lease_shape(old: Option<&Value>, ns: &str, name: &str, new: &Value) -> Value {
    let mut metadata = match old {
        Some(old) => {
            let mut m = Map::new();
            for key in [
                "name",
                "namespace",
                "uid",
                "resourceVersion",
                "creationTimestamp",
                "managedFields",
            ] {
                if let Some(v) = old["metadata"].get(key) {
                    m.insert(key.into(), v.clone());
                }
            }
            Value::Object(m)
        }
        None => json!({"name": name, "namespace": ns, "uid": new_uid(),
                       "resourceVersion": "0", "creationTimestamp": now_rfc3339()}),
    };
    for key in ["labels", "annotations"] {
        if let Some(v) = new["metadata"].get(key).filter(|v| !v.is_null()) {
            metadata[key] = v.clone();
        }
    }
    let spec = match new.get("spec") {
        Some(s) if s.is_object() => s.clone(),
        _ => json!({}),
    };
    json!({"kind": "Lease", "apiVersion": LEASE_API_VERSION, "metadata": metadata, "spec": spec})
}

/// The object without the times of its `managedFields`, to tell a change from a no-op.
fn without_times(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(entries) = o["metadata"]["managedFields"].as_array_mut() {
        for e in entries {
            if let Some(e) = e.as_object_mut() {
                e.remove("time");
            }
        }
    }
    o
}

/// Stores `new` for the Lease at `i` (or creates it): the system metadata kept, an `Update` by
/// `manager` recorded in `managedFields` (the fields it changed become its own, fields it
/// removed nobody's), and the resourceVersion bumped, unless nothing changed. Returns the
/// stored Lease.
fn write_lease_update(
    world: &mut World,
    i: Option<usize>,
    ns: &str,
    name: &str,
    new: Value,
    manager: &str,
) -> Value {
    let old = i.map(|i| world.leases[i].clone());
    let mut new = lease_shape(old.as_ref(), ns, name, &new);
    let before = old.as_ref().map(tracked_fields).unwrap_or_default();
    let after = tracked_fields(&new);
    let changed: BTreeSet<FieldPath> = after
        .iter()
        .filter(|(p, v)| before.get(*p) != Some(*v))
        .map(|(p, _)| p.clone())
        .collect();
    let removed: BTreeSet<FieldPath> = before
        .keys()
        .filter(|p| !after.contains_key(*p))
        .cloned()
        .collect();
    let mut entries = read_managed(&new);
    for e in entries.iter_mut() {
        e.fields
            .retain(|p| !changed.contains(p) && !removed.contains(p));
    }
    if !changed.is_empty() {
        let now = now_rfc3339();
        match entries
            .iter_mut()
            .find(|e| e.same_manager(manager, "Update"))
        {
            Some(e) => {
                e.fields.extend(changed);
                e.time = Some(now);
            }
            None => entries.push(Managed {
                manager: manager.to_string(),
                operation: "Update".into(),
                api_version: LEASE_API_VERSION.into(),
                subresource: None,
                time: Some(now),
                fields: changed,
            }),
        }
    }
    write_managed(&mut new, entries);
    store_lease(world, i, old, new)
}

/// Stores `new` unless it equals `old` but for managedFields times; returns what is stored.
fn store_lease(world: &mut World, i: Option<usize>, old: Option<Value>, mut new: Value) -> Value {
    if let Some(old) = &old
        && without_times(old) == without_times(&new)
    {
        return old.clone();
    }
    let rv = world.next_version();
    new["metadata"]["resourceVersion"] = json!(rv.to_string());
    match i {
        Some(i) => world.leases[i] = new.clone(),
        None => world.leases.push(new.clone()),
    }
    new
}

/// A server-side apply of `config` by `manager` to the Lease at `i` (or a create): a field that
/// another manager owns with a different value is a conflict, unless `force`; the fields of
/// `config` become the manager's applied set, and a field it applied before but no longer does
/// is removed when nobody else owns it.
fn write_lease_apply(
    world: &mut World,
    i: Option<usize>,
    ns: &str,
    name: &str,
    config: &Value,
    manager: &str,
    force: bool,
) -> Result<Value, Refusal> {
    let old = i.map(|i| world.leases[i].clone());
    let live = old
        .clone()
        .unwrap_or_else(|| lease_shape(None, ns, name, &json!({})));
    let live_fields = tracked_fields(&live);
    let applied = tracked_fields(config);
    let mut entries = read_managed(&live);
    let mut conflicts: Vec<(String, FieldPath)> = Vec::new();
    for (path, value) in &applied {
        if live_fields.get(path).is_some_and(|v| v != value) {
            for e in entries.iter_mut() {
                if !e.same_manager(manager, "Apply") && e.fields.contains(path) {
                    if force {
                        e.fields.remove(path);
                    } else {
                        conflicts.push((e.display(), path.clone()));
                    }
                }
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(Box::new(apply_conflict(conflicts)));
    }
    let mut new = live.clone();
    for (path, value) in &applied {
        set_path(&mut new, path, value.clone());
    }
    let previous: BTreeSet<FieldPath> = entries
        .iter()
        .find(|e| e.same_manager(manager, "Apply"))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    for path in previous.iter().filter(|p| !applied.contains_key(*p)) {
        let owned_by_others = entries
            .iter()
            .any(|e| !e.same_manager(manager, "Apply") && e.fields.contains(path));
        if !owned_by_others {
            remove_path(&mut new, path);
        }
    }
    entries.retain(|e| !e.same_manager(manager, "Apply"));
    entries.push(Managed {
        manager: manager.to_string(),
        operation: "Apply".into(),
        api_version: LEASE_API_VERSION.into(),
        subresource: None,
        time: Some(now_rfc3339()),
        fields: applied.keys().cloned().collect(),
    });
    write_managed(&mut new, entries);
    Ok(store_lease(world, i, old, new))
}

/// 409 `Conflict` of an apply, worded as the API server's field manager words it.
fn apply_conflict(mut conflicts: Vec<(String, FieldPath)>) -> Response {
    conflicts.sort();
    let dotted = |p: &FieldPath| format!(".{}", p.join("."));
    let message = if conflicts.len() == 1 {
        format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            conflicts[0].0,
            dotted(&conflicts[0].1)
        )
    } else {
        let mut lines = Vec::new();
        let mut last: Option<&str> = None;
        for (manager, path) in &conflicts {
            if last != Some(manager.as_str()) {
                lines.push(format!("conflicts with {manager}:"));
                last = Some(manager);
            }
            lines.push(format!("- {}", dotted(path)));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(manager, path)| {
            json!({"reason": "FieldManagerConflict", "message": format!("conflict with {manager}"),
                   "field": dotted(path)})
        })
        .collect();
    json_answer(
        409,
        status(409, "Conflict", &message, Some(json!({"causes": causes}))),
    )
}

fn set_path(obj: &mut Value, path: &[String], value: Value) {
    let mut node = obj;
    for part in &path[..path.len() - 1] {
        if !node[part.as_str()].is_object() {
            node[part.as_str()] = json!({});
        }
        node = &mut node[part.as_str()];
    }
    node[path[path.len() - 1].as_str()] = value;
}

fn remove_path(obj: &mut Value, path: &[String]) {
    let mut node = obj;
    for part in &path[..path.len() - 1] {
        match node.get_mut(part.as_str()) {
            Some(n) => node = n,
            None => return,
        }
    }
    if let Some(m) = node.as_object_mut() {
        m.remove(&path[path.len() - 1]);
    }
}

/// A JSON merge patch (RFC 7386): objects merge, `null` removes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Some(patch) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let map = target.as_object_mut().unwrap();
    for (k, v) in patch {
        if v.is_null() {
            map.remove(k);
        } else {
            merge_patch(map.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// A pseudo-random number (splitmix64 over a counter seeded from the clock).
fn random_u64() -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let seed = *SEED.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    let mut z = seed.wrapping_add(STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The 5 characters that the API server appends to a `generateName` (its alphabet has no
/// vowels, so that no words appear).
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = random_u64();
    (0..5)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
            n /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// A random (version 4) UUID.
fn new_uid() -> String {
    let (a, b) = (random_u64(), random_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        ((b >> 48) & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Now as a `MicroTime` (`2026-11-21T22:05:16.123456Z`).
pub fn micro_time_now() -> String {
    humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string()
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

/// Pod `name` of app `app` in `namespace`: running and ready for ten minutes, with a 500m CPU
/// request.
pub fn ready_pod(namespace: &str, name: &str, app: &str) -> Value {
    pod(&PodSpec {
        name: name.into(),
        namespace: namespace.into(),
        app: app.into(),
        phase: "Running".into(),
        ready: Some((true, rfc3339(super::unix_now() - 600.0))),
        start_time: Some(rfc3339(super::unix_now() - 700.0)),
        ip: Some("10.0.0.1".into()),
        cpu_request: Some("500m".into()),
        deleting: false,
    })
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
//   [`World::resize_unsupported`], the recorded 404 of a server before 1.33. With
//   [`World::resize_forbids_memory_limit_decrease`], 1.33's 422 for a memory limit lowered (or
//   added) in place without resizePolicy `RestartContainer` (pkg/apis/core/validation,
//   `validateContainerResize`):
//   `Pod "web-a" is invalid: spec.containers[0].resources.limits[memory]: Forbidden: memory
//   limits cannot be decreased unless resizePolicy is RestartContainer`, one
//   `FieldValueForbidden` cause per container.
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
        .and_then(|s| setpoint::engine::quantity::parse(s).ok())
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

/// 422 `Invalid` for one field of a Pod or workload (the vertical routes).
fn invalid_field(kind: &str, name: &str, field: &str, detail: &str) -> Response {
    let msg = format!("{kind} \"{name}\" is invalid: {field}: {detail}");
    json_answer(
        422,
        status(
            422,
            "Invalid",
            &msg,
            Some(json!({"name": name, "kind": kind,
                "causes": [{"reason": "FieldValueInvalid", "message": detail, "field": field}]})),
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
            return invalid_field("Pod", name, "spec.containers[0].image", "Required value");
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
            return invalid_field(
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
                return invalid_field(
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
            return invalid_field(
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
                return invalid_field(
                    "Pod",
                    name,
                    &format!("spec.containers[{k}].resources.requests"),
                    &format!("Invalid value: must be less than or equal to {r} limit"),
                );
            }
        }
    }
    if qos_class(&pod["spec"]["containers"]) != before_qos {
        return invalid_field(
            "Pod",
            name,
            "spec",
            "Forbidden: Pod QOS Class may not change as a result of resizing",
        );
    }
    if world.resize_forbids_memory_limit_decrease {
        let refused = memory_limit_refusals(&world.pods[i], &pod);
        if !refused.is_empty() {
            let errors: Vec<FieldError<'_>> = refused
                .iter()
                .map(|(field, body)| ("FieldValueForbidden", field.as_str(), body.clone()))
                .collect();
            return invalid("", "Pod", name, &errors);
        }
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

/// What Kubernetes 1.33 refuses in a resize from `old` to `new`: per container whose memory
/// resizePolicy is `NotRequired` (or unset), a memory limit lowered or added. (field, body).
fn memory_limit_refusals(old: &Value, new: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let containers = new["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (ix, c) in containers.iter().enumerate() {
        let policy = c["resizePolicy"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["resourceName"] == "memory"))
            .and_then(|p| p["restartPolicy"].as_str())
            .unwrap_or("NotRequired");
        if policy != "NotRequired" {
            continue;
        }
        let before = quantity(&old["spec"]["containers"][ix]["resources"]["limits"]["memory"]);
        let after = quantity(&c["resources"]["limits"]["memory"]);
        let verb = match (before, after) {
            (Some(b), Some(a)) if a < b => "decreased",
            (None, Some(_)) => "added",
            _ => continue,
        };
        out.push((
            format!("spec.containers[{ix}].resources.limits[memory]"),
            format!(
                "Forbidden: memory limits cannot be {verb} unless resizePolicy is RestartContainer"
            ),
        ));
    }
    out
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
            return invalid_field(
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
