//! Lists and watches of the stand-in, as a v1.24 API server's watch cache answers them.
//!
//! - Every write the stand-in makes to a watched kind (pods through [`World::create_pod`],
//!   [`World::patch_pod`] and [`World::delete_pod`]; scalable objects through their `/scale` or
//!   a patch; custom objects through any of their writes) is kept in [`World::watch`] as a
//!   [`Change`] at its resourceVersion. A test that edits a `World` vector directly changes the
//!   object behind every watcher's back (no event), as before.
//! - `GET /api/v1/namespaces/{ns}/pods/{name}`: the pod, or 404 `NotFound`.
//! - A pod list with `limit` (and then `continue`) is paged as a server pages it: by name,
//!   every page at the first page's resourceVersion, a `continue` token while items remain,
//!   no `remainingItemCount` (as with a label selector). Pages are cut from the current pods,
//!   not from a snapshot at that resourceVersion.
//! - `GET …/namespaces/{ns}/{plural}` of a scalable kind (`deployments`, ...): its `…List`, at
//!   the current resourceVersion, in one page, or for Deployments a `Table` (see `table`; the
//!   Table of another kind is a 500 that says the stand-in lacks it).
//! - `?watch=1` (or `true`) on a list of pods, of a scalable kind or of a custom kind: HTTP 200,
//!   `Content-Type: application/json`, a chunked body of newline-terminated JSON events
//!   (`{"type": …, "object": …}`):
//!   - from `resourceVersion` (exclusive); without one (or `0`), first one `ADDED` per current
//!     object;
//!   - a `resourceVersion` older than the oldest the cache holds (the one at which the
//!     stand-in started, [`WatchLog::oldest`]) gets one `ERROR` event whose object is a
//!     `Status` 410 `Expired` (`too old resource version: 1 (500)`), and the stream ends;
//!   - `labelSelector` filters events as the server does (`fieldSelector` is ignored, and
//!     `sendInitialEvents` streaming lists are not served): an object that stops matching is
//!     sent as `DELETED`, one that starts matching as `ADDED`, a non-matching one not at all;
//!   - deleting a pod gives `MODIFIED` (with `deletionTimestamp` and
//!     `deletionGracePeriodSeconds: 0`, as for an unscheduled pod) and then `DELETED` at the
//!     next resourceVersion;
//!   - with `allowWatchBookmarks=true`, a `BOOKMARK` carrying the cluster-wide
//!     resourceVersion (which moves with writes to other namespaces and kinds too), sent only
//!     when that is newer than the watch's own: 2 s before `timeoutSeconds` or
//!     [`WatchLog::bookmark_every`] (60 s, as v1.24) after the start, whichever is sooner, and
//!     then every `bookmark_every`. Its object is the zero value of the kind with only
//!     `metadata.resourceVersion` set, as recorded for Pods and Deployments (other built-in
//!     kinds get the Deployment's shape without its Deployment-only fields), and `apiVersion`,
//!     `kind` and `metadata.resourceVersion` for a custom kind. A real v1.24 server sends one
//!     or two in such a window; the stand-in sends one;
//!   - the stream ends cleanly at `timeoutSeconds` (no closing event), when the test calls
//!     [`World::end_watches`], or when the stand-in stops.

use super::*;
use axum::body::Body;
use futures_util::StreamExt;
use std::collections::VecDeque;
use std::time::Instant;

/// One write to a watched object, as the watch cache keeps it.
#[derive(Debug, Clone)]
pub struct Change {
    /// The resourceVersion of the write.
    pub rv: u64,
    /// API group (`""` for the core group).
    pub group: String,
    /// Plural resource name (`pods`).
    pub resource: String,
    /// Namespace.
    pub namespace: String,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub kind: &'static str,
    /// The object after the write, as a watch sends it (with `kind` and `apiVersion`).
    pub object: Value,
    /// The object before the write (for label selectors), if the stand-in knew it.
    pub previous: Option<Value>,
}

/// The watch cache: every change since the stand-in started.
#[derive(Debug)]
pub struct WatchLog {
    /// Changes, in resourceVersion order.
    pub changes: Vec<Change>,
    /// The oldest resourceVersion a watch may start from (the one at which the stand-in
    /// started); older gets the 410 `Expired` ERROR event.
    pub oldest: u64,
    /// How often a watch with `allowWatchBookmarks=true` gets a bookmark (v1.24: every
    /// minute; tests may shorten it).
    pub bookmark_every: Duration,
    /// How many times [`World::end_watches`] was called: a watch opened before the last call
    /// has ended.
    pub ended: u64,
}

impl Default for WatchLog {
    fn default() -> WatchLog {
        WatchLog {
            changes: Vec::new(),
            oldest: 0,
            bookmark_every: Duration::from_secs(60),
            ended: 0,
        }
    }
}

fn key_of(o: &Value) -> (&str, &str) {
    (
        o["metadata"]["namespace"].as_str().unwrap_or(""),
        o["metadata"]["name"].as_str().unwrap_or(""),
    )
}

fn with_kind(mut o: Value, kind: &str, api_version: &str) -> Value {
    o["kind"] = json!(kind);
    o["apiVersion"] = json!(api_version);
    o
}

impl World {
    /// Ends every open watch cleanly, as a server ends one at its `timeoutSeconds` (the events
    /// already due are sent, then the body ends, with no closing event): its client watches
    /// again from the last resourceVersion it saw. With [`WatchLog::oldest`] moved past that
    /// resourceVersion first (as after a kube-apiserver restart, whose watch cache reaches
    /// back only to about its own start), that watch gets the 410 `Expired` ERROR event.
    pub fn end_watches(&mut self) {
        self.watch.ended += 1;
    }

    /// Keeps a change for the watches (the object's resourceVersion is `rv`).
    pub(super) fn record(
        &mut self,
        group: &str,
        resource: &str,
        kind: &'static str,
        object: Value,
        previous: Option<Value>,
    ) {
        let rv = object["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or(self.resource_version);
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        self.watch.changes.push(Change {
            rv,
            group: group.into(),
            resource: resource.into(),
            namespace,
            kind,
            object,
            previous,
        });
    }

    /// The scalable object at `i` was written (its resourceVersion bumped): a `MODIFIED`.
    pub(super) fn record_scalable(&mut self, i: usize) {
        let s = &self.scalables[i];
        let (group, plural) = (s.group.clone(), s.plural.clone());
        let object = object_json(s);
        let previous = self
            .watch
            .changes
            .iter()
            .rev()
            .find(|c| {
                c.group == group && c.resource == plural && key_of(&c.object) == key_of(&object)
            })
            .map(|c| c.object.clone());
        self.record(&group, &plural, "MODIFIED", object, previous);
    }

    /// Changes the scalable object `namespace/name` as a client's (or a controller's) write
    /// would: `change` applied, a new resourceVersion, a `MODIFIED` for the watches. False if
    /// there is no such object.
    pub fn update_scalable(
        &mut self,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&mut Scalable),
    ) -> bool {
        let Some(i) = self
            .scalables
            .iter()
            .position(|s| s.namespace == namespace && s.name == name)
        else {
            return false;
        };
        let v = self.next_version();
        let s = &mut self.scalables[i];
        change(s);
        s.resource_version = v;
        self.record_scalable(i);
        true
    }

    /// Creates a scalable object as a client's POST would: a new resourceVersion and an
    /// `ADDED` for the watches.
    pub fn add_scalable(&mut self, mut s: Scalable) {
        s.resource_version = self.next_version();
        let object = object_json(&s);
        self.scalables.push(s);
        let s = self.scalables.last().unwrap();
        let (group, plural) = (s.group.clone(), s.plural.clone());
        self.record(&group, &plural, "ADDED", object, None);
    }

    /// Creates a pod as a client's POST would: stored at a new resourceVersion (without `kind`
    /// and `apiVersion`, as [`pod`] makes them), and an `ADDED` for the watches. Returns it.
    pub fn create_pod(&mut self, mut pod: Value) -> Value {
        let rv = self.next_version();
        if let Some(o) = pod.as_object_mut() {
            o.remove("kind");
            o.remove("apiVersion");
        }
        pod["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.pods.push(pod.clone());
        self.record(
            "",
            "pods",
            "ADDED",
            with_kind(pod.clone(), "Pod", "v1"),
            None,
        );
        pod
    }

    /// Applies a JSON merge patch to the pod `namespace/name` as a client's PATCH would (a
    /// new resourceVersion, a `MODIFIED`). False if there is no such pod.
    pub fn patch_pod(&mut self, namespace: &str, name: &str, patch: &Value) -> bool {
        let Some(i) = self
            .pods
            .iter()
            .position(|p| key_of(p) == (namespace, name))
        else {
            return false;
        };
        let before = with_kind(self.pods[i].clone(), "Pod", "v1");
        let rv = self.next_version();
        let pod = &mut self.pods[i];
        merge_patch(pod, patch);
        pod["metadata"]["resourceVersion"] = json!(rv.to_string());
        let after = with_kind(pod.clone(), "Pod", "v1");
        self.record("", "pods", "MODIFIED", after, Some(before));
        true
    }

    /// Deletes the pod `namespace/name` as a client's DELETE of an unscheduled pod does: a
    /// `MODIFIED` with `deletionTimestamp` (now) and `deletionGracePeriodSeconds: 0`, then a
    /// `DELETED` of the same object at the next resourceVersion. False if there is no such pod.
    pub fn delete_pod(&mut self, namespace: &str, name: &str) -> bool {
        let deletion = json!({"metadata": {"deletionTimestamp": now_rfc3339(),
                                           "deletionGracePeriodSeconds": 0}});
        if !self.patch_pod(namespace, name, &deletion) {
            return false;
        }
        let i = self
            .pods
            .iter()
            .position(|p| key_of(p) == (namespace, name))
            .unwrap();
        let mut gone = with_kind(self.pods.remove(i), "Pod", "v1");
        let rv = self.next_version();
        gone["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.record("", "pods", "DELETED", gone, None);
        true
    }
}

/// What a list or watch path names: a namespaced collection of a kind the stand-in serves.
pub(super) struct Collection {
    pub group: String,
    pub version: String,
    pub resource: String,
    pub namespace: String,
}

impl Collection {
    pub(super) fn of(parts: &[&str]) -> Option<Collection> {
        let (group, version, ns, resource) = match parts {
            ["api", v, "namespaces", ns, r] => ("", *v, *ns, *r),
            ["apis", g, v, "namespaces", ns, r] => (*g, *v, *ns, *r),
            _ => return None,
        };
        Some(Collection {
            group: group.into(),
            version: version.into(),
            resource: resource.into(),
            namespace: ns.into(),
        })
    }

    fn is_pods(&self) -> bool {
        self.group.is_empty() && self.version == "v1" && self.resource == "pods"
    }

    /// A scalable kind served here: the built-in apps/v1 ones, or one the world holds.
    fn scalable_kind(&self, world: &World) -> Option<String> {
        let builtin = match (
            self.group.as_str(),
            self.version.as_str(),
            self.resource.as_str(),
        ) {
            ("apps", "v1", "deployments") => Some("Deployment"),
            ("apps", "v1", "statefulsets") => Some("StatefulSet"),
            ("apps", "v1", "replicasets") => Some("ReplicaSet"),
            _ => None,
        };
        builtin.map(str::to_string).or_else(|| {
            world
                .scalables
                .iter()
                .find(|s| {
                    s.group == self.group && s.version == self.version && s.plural == self.resource
                })
                .map(|s| s.kind.clone())
        })
    }

    /// The kind of the collection's objects, if the stand-in serves it.
    fn kind(&self, world: &World) -> Option<String> {
        if self.is_pods() {
            return Some("Pod".into());
        }
        if let Some(crd) = crd::served(world, &self.group, &self.version, &self.resource) {
            return crd["spec"]["names"]["kind"].as_str().map(str::to_string);
        }
        self.scalable_kind(world)
    }

    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The current objects of the collection, as a watch sends them.
    fn objects(&self, world: &World) -> Vec<Value> {
        if self.is_pods() {
            return world
                .pods
                .iter()
                .filter(|p| p["metadata"]["namespace"] == self.namespace.as_str())
                .map(|p| with_kind(p.clone(), "Pod", "v1"))
                .collect();
        }
        if crd::served(world, &self.group, &self.version, &self.resource).is_some() {
            return crd::objects(world, &self.group, &self.resource, &self.namespace);
        }
        world
            .scalables
            .iter()
            .filter(|s| {
                s.group == self.group
                    && s.version == self.version
                    && s.plural == self.resource
                    && s.namespace == self.namespace
            })
            .map(object_json)
            .collect()
    }

    /// The object of a BOOKMARK at `rv`.
    fn bookmark(&self, kind: &str, rv: u64, custom: bool) -> Value {
        let rv = rv.to_string();
        let api_version = self.api_version();
        if custom {
            return json!({"apiVersion": api_version, "kind": kind,
                          "metadata": {"resourceVersion": rv}});
        }
        let metadata = json!({"resourceVersion": rv, "creationTimestamp": null});
        if kind == "Pod" {
            return json!({"kind": kind, "apiVersion": api_version, "metadata": metadata,
                          "spec": {"containers": null}, "status": {}});
        }
        let mut spec = json!({"selector": null,
            "template": {"metadata": {"creationTimestamp": null}, "spec": {"containers": null}}});
        if kind == "Deployment" {
            spec["replicas"] = json!(0);
            spec["strategy"] = json!({});
        }
        json!({"kind": kind, "apiVersion": api_version, "metadata": metadata, "spec": spec,
               "status": {}})
    }
}

/// `GET` of one pod, or of a scalable kind's collection (its list, or Table). None for other
/// requests.
pub(super) fn reads(world: &World, req: &Req<'_>, parts: &[&str]) -> Option<Response> {
    if req.method != "GET" {
        return None;
    }
    if let ["api", "v1", "namespaces", ns, "pods", name] = parts {
        return Some(
            match world.pods.iter().find(|p| key_of(p) == (*ns, *name)) {
                Some(p) => json_answer(200, with_kind(p.clone(), "Pod", "v1")),
                None => not_found("", "pods", name),
            },
        );
    }
    let c = Collection::of(parts)?;
    if c.is_pods() {
        return None;
    }
    let kind = c.scalable_kind(world)?;
    let items = c.objects(world);
    if req.table && kind == "Deployment" {
        return Some(table::deployments(world, &items));
    }
    if req.table {
        return Some(not_implemented("GET (as Table)", req.path, None));
    }
    let items: Vec<&Value> = items.iter().collect();
    Some(list(&format!("{kind}List"), &c.api_version(), world, items))
}

/// The continue token of a page that ended at `last`, listing at `rv`: unpadded URL-safe
/// base64 of `{"v":"meta.k8s.io/v1","rv":…,"start":"<last>\u0000"}`, as the server makes it.
pub fn continue_token(rv: u64, last: &str) -> String {
    let start = serde_json::to_string(&format!("{last}\u{0}")).unwrap();
    let json = format!(r#"{{"v":"meta.k8s.io/v1","rv":{rv},"start":{start}}}"#);
    super::super::base64(json.as_bytes())
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

/// A continue token's (resourceVersion, start).
pub fn read_continue_token(token: &str) -> Option<(u64, String)> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    Some((v["rv"].as_u64()?, v["start"].as_str()?.to_string()))
}

/// One page of a list (`limit`, `continue`), by name, as etcd orders it: the items and the
/// list's metadata (the first page's resourceVersion on every page, and a `continue` token
/// while items remain). Without `limit` or `continue`, everything in the world's order.
pub(super) fn page(
    world: &World,
    mut items: Vec<Value>,
    query: &BTreeMap<String, String>,
) -> Result<(Vec<Value>, Value), Refusal> {
    let limit = query.get("limit").and_then(|l| l.parse::<usize>().ok());
    let token = query.get("continue").filter(|c| !c.is_empty());
    if limit.is_none() && token.is_none() {
        let rv = world.resource_version.to_string();
        return Ok((items, json!({"resourceVersion": rv})));
    }
    let name = |o: &Value| o["metadata"]["name"].as_str().unwrap_or("").to_string();
    items.sort_by_key(name);
    let (rv, start) = match token {
        Some(t) => read_continue_token(t).ok_or_else(|| {
            Box::new(bad_request(
                "continue key is not valid: illegal base64 data",
            ))
        })?,
        None => (world.resource_version, String::new()),
    };
    items.retain(|o| name(o) >= start);
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if let Some(limit) = limit.filter(|l| *l > 0 && items.len() > *l) {
        items.truncate(limit);
        metadata["continue"] = json!(continue_token(rv, &name(items.last().unwrap())));
    }
    Ok((items, metadata))
}

fn is_watch(req: &Req<'_>) -> bool {
    req.query
        .get("watch")
        .is_some_and(|w| w == "1" || w == "true")
}

/// Whether the request is a watch (then [`answer`] streams it).
pub(super) fn wanted(req: &Req<'_>) -> bool {
    req.method == "GET" && is_watch(req)
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut s = serde_json::to_string(&json!({"type": kind, "object": object})).unwrap();
    s.push('\n');
    Bytes::from(s)
}

struct Stream {
    shared: Arc<Shared>,
    c: Collection,
    kind: String,
    custom: bool,
    selector: String,
    /// The watch's own resourceVersion (bookmarks only when the cluster's is newer).
    start_rv: u64,
    /// Changes up to here were looked at.
    cursor: u64,
    deadline: Option<Instant>,
    next_bookmark: Option<Instant>,
    pending: VecDeque<Bytes>,
    done: bool,
    /// [`WatchLog::ended`] when the watch was opened.
    opened: u64,
}

impl Stream {
    /// Looks at the changes since the cursor and at the bookmark clock; fills `pending`.
    fn poll_world(&mut self) {
        let world = self.shared.world.lock().unwrap();
        for ch in world.watch.changes.iter().filter(|ch| ch.rv > self.cursor) {
            if ch.group != self.c.group
                || ch.resource != self.c.resource
                || ch.namespace != self.c.namespace
            {
                continue;
            }
            let now = matches(&self.selector, &ch.object["metadata"]["labels"]);
            let before = ch
                .previous
                .as_ref()
                .map_or(now, |p| matches(&self.selector, &p["metadata"]["labels"]));
            let kind = match (ch.kind, before, now) {
                ("MODIFIED", true, true) => "MODIFIED",
                ("MODIFIED", false, true) => "ADDED",
                ("MODIFIED", true, false) => "DELETED",
                (k, _, true) if k != "MODIFIED" => k,
                _ => continue,
            };
            self.pending.push_back(line(kind, &ch.object));
        }
        self.cursor = self.cursor.max(world.resource_version);
        if world.watch.ended > self.opened {
            self.done = true;
            return;
        }
        if let Some(at) = self.next_bookmark
            && Instant::now() >= at
        {
            if world.resource_version > self.start_rv {
                let b = self
                    .c
                    .bookmark(&self.kind, world.resource_version, self.custom);
                self.pending.push_back(line("BOOKMARK", &b));
            }
            self.next_bookmark = Some(at + world.watch.bookmark_every);
        }
    }

    async fn next(mut self) -> Option<(Bytes, Stream)> {
        loop {
            if let Some(b) = self.pending.pop_front() {
                return Some((b, self));
            }
            if self.done || self.shared.stopping.load(Ordering::Relaxed) {
                return None;
            }
            let now = Instant::now();
            if self.deadline.is_some_and(|d| now >= d) {
                return None;
            }
            self.poll_world();
            if self.pending.is_empty() {
                let mut wait = Duration::from_millis(10);
                for t in [self.deadline, self.next_bookmark].into_iter().flatten() {
                    wait = wait.min(t.saturating_duration_since(now));
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// A watch of a collection (see the module docs); None when `parts` names no collection the
/// stand-in can watch.
pub(super) fn answer(shared: &Arc<Shared>, req: &Req<'_>, parts: &[&str]) -> Option<Response> {
    let c = Collection::of(parts)?;
    let world = shared.world.lock().unwrap();
    let Some(kind) = c.kind(&world) else {
        return Some(page_not_found());
    };
    let custom = crd::served(&world, &c.group, &c.version, &c.resource).is_some();
    let selector = req.query.get("labelSelector").cloned().unwrap_or_default();
    let mut pending = VecDeque::new();
    let mut done = false;
    let start_rv = match req.query.get("resourceVersion").map(String::as_str) {
        None | Some("") | Some("0") => {
            for o in c.objects(&world) {
                if matches(&selector, &o["metadata"]["labels"]) {
                    pending.push_back(line("ADDED", &o));
                }
            }
            world.resource_version
        }
        Some(rv) => match rv.parse::<u64>() {
            Ok(rv) if rv < world.watch.oldest => {
                let message = format!("too old resource version: {rv} ({})", world.watch.oldest);
                pending.push_back(line("ERROR", &status(410, "Expired", &message, None)));
                done = true;
                rv
            }
            Ok(rv) => rv,
            Err(_) => {
                return Some(invalid(
                    "meta.k8s.io",
                    "ListOptions",
                    "",
                    &[(
                        "FieldValueInvalid",
                        "resourceVersion",
                        format!("Invalid value: \"{rv}\": must be a valid resourceVersion"),
                    )],
                ));
            }
        },
    };
    let start = Instant::now();
    let deadline = req
        .query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(|t| start + Duration::from_secs(t));
    let next_bookmark = req
        .query
        .get("allowWatchBookmarks")
        .is_some_and(|b| b == "true")
        .then(|| {
            let every = start + world.watch.bookmark_every;
            match deadline {
                Some(d) => every.min(d.checked_sub(Duration::from_secs(2)).unwrap_or(start)),
                None => every,
            }
        });
    let stream = Stream {
        opened: world.watch.ended,
        shared: shared.clone(),
        cursor: start_rv,
        c,
        kind,
        custom,
        selector,
        start_rv,
        deadline,
        next_bookmark,
        pending,
        done,
    };
    drop(world);
    let body = futures_util::stream::unfold(stream, Stream::next)
        .map(Ok::<Bytes, std::convert::Infallible>);
    Some(
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            Body::from_stream(body),
        )
            .into_response(),
    )
}
