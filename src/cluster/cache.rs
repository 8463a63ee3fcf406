//! The watch cache of `setpoint run`: one reflector per kind in the daemon's namespace, for
//! pods and for the built-in target kinds (apps/v1 Deployment, StatefulSet and ReplicaSet), so
//! that a tick reads its target and its pods from memory and the API server's load does not
//! grow with the number of policies or the tick rate.
//!
//! - Each kind is kept by a kube-runtime [`watcher`] (a list, then a watch from its
//!   resourceVersion; bookmarks; its default backoff capped at [`RETRY_AT_MOST`]; a relist on
//!   410 Gone) whose events go into
//!   a kube-runtime reflector [`Store`] through its [`Writer`], after [`trim_pod`] or
//!   [`trim_target`] dropped everything setpoint does not read (the trimmed k8s-openapi
//!   structs are still large: about 6.5 kB per pod, some 20 MiB for three thousand pods;
//!   docs/benchmarks/daemon.md has the measured peak RSS).
//! - [`Health`]: a kind's reads answer [`ClusterError::NotSynced`] until its first list is
//!   complete (`Event::InitDone`), and again from the first error of its watcher until a
//!   relist is complete: after an error the watcher is started afresh, so the store is
//!   rebuilt from a new list rather than trusted across a gap. The tick holds on that error:
//!   a policy never decides on state the watch has not shown.
//! - [`parse_selector`]: the string form of a label selector, as the API server parses it
//!   (`a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`), into kube-core's
//!   [`Selector`], which matches the cached pods' labels; [`selector_text`]: a `LabelSelector`
//!   in the string form the `/scale` subresource reports (`app=web,tier in (a,b)`).
//!
//! The store is started by [`super::KubeCluster::with_cache`] and runs until the daemon's
//! shutdown. Writes do not go through it: they stay patches with the resourceVersion read, so
//! a stale cache meets a 409, whose re-read goes to the API server
//! ([`super::Cluster::scale_fresh`]).

use super::ClusterError;
use crate::policy::TargetRef;
use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStatus, Pod, PodSpec, PodStatus, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::Api;
use kube::core::{Expression, Selector, SelectorExt};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::watcher::{self, Event};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::sync::watch as signal;
use tracing::{debug, info, warn};

/// The annotation prefixes kept on cached targets: setpoint's own (pause controls, restart
/// state).
pub const KEPT_ANNOTATIONS: [&str; 2] = ["setpoint.dev/", "state.setpoint.dev/"];

/// What a tick reads of a target in the cache (the `/scale` of a built-in kind).
#[derive(Debug, Clone, PartialEq)]
pub struct CachedTarget {
    /// `spec.replicas`.
    pub spec_replicas: i32,
    /// `status.replicas`.
    pub status_replicas: i32,
    /// `spec.selector` in its string form.
    pub selector: String,
    /// `metadata.resourceVersion`.
    pub resource_version: Option<String>,
    /// `metadata.uid`.
    pub uid: Option<String>,
    /// setpoint's annotations ([`KEPT_ANNOTATIONS`]).
    pub annotations: BTreeMap<String, String>,
}

/// Whether a kind's watch can be read.
#[derive(Debug, Clone, PartialEq)]
pub enum Health {
    /// Its first list is not complete yet.
    Starting,
    /// Listed, and watching.
    Synced,
    /// Its watcher failed (since when, with what): reads wait for a relist to complete.
    Broken {
        /// When it failed.
        since: SystemTime,
        /// The watcher's last error.
        error: String,
    },
}

/// One kind's reflector: the store its watcher fills, and its health.
#[derive(Clone)]
struct Kind<K: 'static + kube::Resource<DynamicType = ()>> {
    store: Store<K>,
    /// The store's objects by label, for selectors with an equality.
    index: Arc<Mutex<LabelIndex>>,
    health: Arc<Mutex<Health>>,
    /// `pods`, `deployments.apps`, ... for messages.
    plural: &'static str,
}

impl<K: 'static + kube::Resource<DynamicType = ()> + Clone> Kind<K> {
    /// The store, when it may be read; else why not, about `what`.
    fn ready(&self, what: &str, namespace: &str) -> Result<&Store<K>, ClusterError> {
        let health = self
            .health
            .lock()
            .map(|h| h.clone())
            .unwrap_or(Health::Starting);
        let reason = match health {
            Health::Synced => return Ok(&self.store),
            Health::Starting => format!(
                "waiting for the watch of {} in namespace {namespace} to sync (its first list \
                 is not complete)",
                self.plural
            ),
            Health::Broken { since, error } => format!(
                "waiting for the watch of {} in namespace {namespace} to sync again (it failed \
                 at {}: {error}; relisting)",
                self.plural,
                humantime::format_rfc3339_seconds(since)
            ),
        };
        Err(ClusterError::NotSynced {
            what: what.to_string(),
            reason,
        })
    }
}

/// The watch cache of one namespace: pods and the built-in target kinds.
#[derive(Clone)]
pub struct Cache {
    namespace: String,
    pods: Kind<Pod>,
    deployments: Kind<Deployment>,
    statefulsets: Kind<StatefulSet>,
    replicasets: Kind<ReplicaSet>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("namespace", &self.namespace)
            .field("pods", &self.pods.store.len())
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// Starts the four reflectors of `namespace` (tasks on the current tokio runtime), which
    /// run until `stop` turns true or its sender is dropped.
    pub fn start(client: &kube::Client, namespace: &str, stop: signal::Receiver<bool>) -> Cache {
        Cache {
            namespace: namespace.to_string(),
            pods: spawn(
                Api::namespaced(client.clone(), namespace),
                "pods",
                namespace,
                trim_pod,
                stop.clone(),
            ),
            deployments: spawn(
                Api::namespaced(client.clone(), namespace),
                "deployments.apps",
                namespace,
                trim_target,
                stop.clone(),
            ),
            statefulsets: spawn(
                Api::namespaced(client.clone(), namespace),
                "statefulsets.apps",
                namespace,
                trim_target,
                stop.clone(),
            ),
            replicasets: spawn(
                Api::namespaced(client.clone(), namespace),
                "replicasets.apps",
                namespace,
                trim_target,
                stop,
            ),
        }
    }

    /// Whether the cache keeps `target`'s kind (apps/v1 Deployment, StatefulSet, ReplicaSet).
    pub fn keeps(target: &TargetRef) -> bool {
        target.api_version == "apps/v1"
            && matches!(
                target.kind.as_str(),
                "Deployment" | "StatefulSet" | "ReplicaSet"
            )
    }

    /// The cached target (None when [`Cache::keeps`] is false); a 404 as the API server words
    /// it when the synced store has no such object.
    pub fn target(&self, target: &TargetRef) -> Option<Result<CachedTarget, ClusterError>> {
        if !Cache::keeps(target) {
            return None;
        }
        let what = format!(
            "{} {} in namespace {} (watch cache)",
            target.kind, target.name, self.namespace
        );
        let key = |plural| (plural, &target.name);
        Some(match target.kind.as_str() {
            "Deployment" => lookup(
                &self.deployments,
                &what,
                &self.namespace,
                key("deployments"),
            ),
            "StatefulSet" => lookup(
                &self.statefulsets,
                &what,
                &self.namespace,
                key("statefulsets"),
            ),
            _ => lookup(
                &self.replicasets,
                &what,
                &self.namespace,
                key("replicasets"),
            ),
        })
    }

    /// The cached pods whose labels match `selector` (its string form).
    pub fn pods(&self, selector: &str) -> Result<Vec<Arc<Pod>>, ClusterError> {
        let what = format!(
            "pods with selector {selector:?} in namespace {} (watch cache)",
            self.namespace
        );
        let store = self.pods.ready(&what, &self.namespace)?;
        let expressions = parse_expressions(selector).map_err(|message| ClusterError::Invalid {
            what: what.clone(),
            message,
        })?;
        // The pods with the selector's first `k=v` label, from the index; else all of them.
        let equal = expressions.iter().find_map(|e| match e {
            Expression::Equal(k, v) => Some((k.clone(), v.clone())),
            _ => None,
        });
        let selector: Selector = expressions.into_iter().collect();
        let empty = BTreeMap::new();
        let matches = |p: &Pod| selector.matches(p.metadata.labels.as_ref().unwrap_or(&empty));
        let Some(label) = equal else {
            return Ok(store.state_filter(matches));
        };
        let names = match self.pods.index.lock() {
            Ok(index) => index.by_label.get(&label).cloned().unwrap_or_default(),
            Err(_) => return Ok(store.state_filter(matches)),
        };
        Ok(names
            .iter()
            .filter_map(|name| store.get(&ObjectRef::new(name).within(&self.namespace)))
            .filter(|p| matches(p))
            .collect())
    }
}

/// A target of a synced store, by name.
fn lookup<K>(
    kind: &Kind<K>,
    what: &str,
    namespace: &str,
    (plural, name): (&str, &String),
) -> Result<CachedTarget, ClusterError>
where
    K: 'static + kube::Resource<DynamicType = ()> + Clone + Scalable,
{
    let store = kind.ready(what, namespace)?;
    let object = store
        .get(&ObjectRef::new(name).within(namespace))
        .ok_or_else(|| ClusterError::Api {
            what: what.to_string(),
            code: 404,
            reason: "NotFound".into(),
            message: format!("{plural}.apps {name:?} not found"),
        })?;
    let meta = object.meta();
    Ok(CachedTarget {
        spec_replicas: object.spec_replicas(),
        status_replicas: object.status_replicas(),
        selector: object.selector().map(selector_text).unwrap_or_default(),
        resource_version: meta.resource_version.clone(),
        uid: meta.uid.clone(),
        annotations: meta.annotations.clone().unwrap_or_default(),
    })
}

/// The names of a store's objects by label (`key`, `value`), kept beside it by its reflector:
/// a selector with an equality looks at the few objects with that label, not at all of them
/// (with 1,000 policies on 3,000 pods, matching every pod's labels on every tick was most of
/// the daemon's CPU).
#[derive(Debug, Default)]
struct LabelIndex {
    by_label: HashMap<(String, String), BTreeSet<String>>,
    /// Each object's labels as indexed, to take it out again.
    labels: HashMap<String, BTreeMap<String, String>>,
}

impl LabelIndex {
    fn remove(&mut self, name: Option<&str>) {
        let Some(old) = name.and_then(|n| self.labels.remove(n)) else {
            return;
        };
        let name = name.unwrap_or_default();
        for label in old {
            if let Some(names) = self.by_label.get_mut(&label) {
                names.remove(name);
                if names.is_empty() {
                    self.by_label.remove(&label);
                }
            }
        }
    }

    fn insert(&mut self, meta: &ObjectMeta) {
        let Some(name) = meta.name.clone() else {
            return;
        };
        self.remove(Some(&name));
        let labels = meta.labels.clone().unwrap_or_default();
        for (k, v) in &labels {
            let names = self.by_label.entry((k.clone(), v.clone())).or_default();
            names.insert(name.clone());
        }
        self.labels.insert(name, labels);
    }

    /// After a relist: the store's objects, as they now are.
    fn rebuild<K: kube::Resource>(&mut self, objects: &[Arc<K>]) {
        *self = LabelIndex::default();
        for o in objects {
            self.insert(o.meta());
        }
    }
}

/// A kind the cache watches.
trait Watched:
    'static
    + kube::Resource<DynamicType = ()>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
{
}

impl<K> Watched for K where
    K: 'static
        + kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
{
}

/// Spawns the reflector of one kind.
fn spawn<K: Watched>(
    api: Api<K>,
    plural: &'static str,
    namespace: &str,
    trim: fn(&mut K),
    mut stop: signal::Receiver<bool>,
) -> Kind<K> {
    let (store, writer) = reflector::store::<K>();
    let health = Arc::new(Mutex::new(Health::Starting));
    let index = Arc::new(Mutex::new(LabelIndex::default()));
    let kind = Kind {
        store,
        index: index.clone(),
        health: health.clone(),
        plural,
    };
    let watch = format!("{plural} in namespace {namespace}");
    tokio::spawn(async move {
        tokio::select! {
            () = reflect(api, writer, index, health, trim, &watch) => {}
            _ = stop.wait_for(|s| *s) => debug!(watch = %watch, "the watch stops"),
        }
    });
    kind
}

/// Feeds `writer` from a watcher of `api` for as long as it runs. An error of a synced watch
/// marks it broken and starts a fresh watcher (a relist); errors while it is broken are the
/// fresh watcher's, retried with its default backoff.
async fn reflect<K: Watched>(
    api: Api<K>,
    mut writer: Writer<K>,
    index: Arc<Mutex<LabelIndex>>,
    health: Arc<Mutex<Health>>,
    trim: fn(&mut K),
    watch: &str,
) {
    let set = |h: Health| {
        let mut current = health.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *current, h)
    };
    loop {
        let mut stream = watcher::watcher(api.clone(), watcher::Config::default())
            .backoff(Capped(watcher::DefaultBackoff::default()))
            .boxed();
        while let Some(item) = stream.next().await {
            match item {
                Ok(event) => {
                    let done = matches!(event, Event::InitDone);
                    let event = event.modify(trim);
                    writer.apply_watcher_event(&event);
                    if let Ok(mut index) = index.lock() {
                        match &event {
                            Event::Apply(o) => index.insert(o.meta()),
                            Event::Delete(o) => index.remove(o.meta().name.as_deref()),
                            Event::InitDone => index.rebuild(&writer.as_reader().state()),
                            Event::Init | Event::InitApply(_) => {}
                        }
                    }
                    if done {
                        match set(Health::Synced) {
                            Health::Broken { since, .. } => {
                                let lasted = SystemTime::now()
                                    .duration_since(since)
                                    .unwrap_or_default()
                                    .as_secs();
                                info!(%watch, lasted = %humantime::format_duration(
                                    std::time::Duration::from_secs(lasted)),
                                    "the watch has relisted: reads go on");
                            }
                            Health::Starting => info!(%watch, "the watch has synced"),
                            Health::Synced => {}
                        }
                    }
                }
                Err(e) => {
                    let error = crate::text::error_chain(&e);
                    let was = set(Health::Broken {
                        since: SystemTime::now(),
                        error: error.clone(),
                    });
                    match was {
                        Health::Synced => {
                            warn!(%watch, %error, "the watch failed: the policies that read it \
                                hold until it has relisted");
                            // A fresh watcher: the store is rebuilt from a new list.
                            break;
                        }
                        Health::Broken { since, .. } => {
                            // Still failing: keep the first failure's time.
                            set(Health::Broken { since, error });
                            debug!(%watch, error = %e, "the watch still fails");
                        }
                        Health::Starting => {
                            warn!(%watch, %error, "the watch cannot start: the policies that \
                                read it hold until it has synced");
                        }
                    }
                }
            }
        }
    }
}

/// The longest wait between a broken watcher's attempts.
pub const RETRY_AT_MOST: std::time::Duration = std::time::Duration::from_secs(1);

/// kube-runtime's default watcher backoff (800 ms, doubling with jitter, reset after two
/// minutes without errors), capped at [`RETRY_AT_MOST`] instead of its 30 s: a policy acts
/// again within about one interval of the API server's return, as it did when every tick
/// read the API. A broken watch is four requests a second at most, against the 133 a second
/// that polling made for 1,000 policies.
struct Capped(watcher::DefaultBackoff);

impl Iterator for Capped {
    type Item = std::time::Duration;
    fn next(&mut self) -> Option<std::time::Duration> {
        self.0.next().map(|d| d.min(RETRY_AT_MOST))
    }
}

impl kube::runtime::utils::Backoff for Capped {
    fn reset(&mut self) {
        self.0.reset();
    }
}

/// What the cache reads of a built-in target kind.
trait Scalable {
    fn spec_replicas(&self) -> i32;
    fn status_replicas(&self) -> i32;
    fn selector(&self) -> Option<&LabelSelector>;
    /// Drops the spec and status fields setpoint does not read.
    fn trim_spec(&mut self);
}

macro_rules! scalable {
    ($($kind:ty),*) => {$(
        impl Scalable for $kind {
            fn spec_replicas(&self) -> i32 {
                // The API server defaults a missing spec.replicas to 1.
                self.spec.replicas.unwrap_or(1)
            }
            fn status_replicas(&self) -> i32 {
                // (an `i32`, or for a Deployment an `Option<i32>`)
                self.status.as_ref().and_then(|s| Option::<i32>::from(s.replicas)).unwrap_or(0)
            }
            fn selector(&self) -> Option<&LabelSelector> {
                Some(&self.spec.selector)
            }
            fn trim_spec(&mut self) {
                let spec = &mut self.spec;
                let mut kept = Self::default().spec;
                kept.replicas = spec.replicas;
                kept.selector = std::mem::take(&mut spec.selector);
                *spec = kept;
                if let Some(status) = self.status.as_mut() {
                    status.conditions = None;
                }
            }
        }
    )*};
}
scalable!(Deployment, StatefulSet, ReplicaSet);

/// The metadata setpoint reads of a cached object: name, namespace, uid, resourceVersion,
/// labels, creation and deletion times, owners, and only setpoint's annotations (no
/// managedFields, no last-applied-configuration).
fn trim_meta(meta: &mut ObjectMeta) {
    let annotations = meta.annotations.take().map(|a| {
        a.into_iter()
            .filter(|(k, _)| KEPT_ANNOTATIONS.iter().any(|p| k.starts_with(p)))
            .collect::<BTreeMap<_, _>>()
    });
    *meta = ObjectMeta {
        name: meta.name.take(),
        namespace: meta.namespace.take(),
        uid: meta.uid.take(),
        resource_version: meta.resource_version.take(),
        labels: meta.labels.take(),
        creation_timestamp: meta.creation_timestamp.take(),
        deletion_timestamp: meta.deletion_timestamp.take(),
        owner_references: meta.owner_references.take(),
        annotations: annotations.filter(|a| !a.is_empty()),
        ..ObjectMeta::default()
    };
}

/// A target as the cache keeps it: [`trim_meta`], `spec.replicas`, `spec.selector`, and the
/// status counts (no template: the vertical part patches it and reads the answer).
fn trim_target<K: kube::Resource + Scalable>(object: &mut K) {
    trim_meta(object.meta_mut());
    object.trim_spec();
}

/// A pod as the cache keeps it: what [`super::pods::from_pod`] reads. [`trim_meta`]; per
/// container its name, resources and resizePolicy; the status's phase, conditions, start
/// time, IP, QoS class, resize field, and per container its name, resources, restart count
/// and last termination.
fn trim_pod(pod: &mut Pod) {
    trim_meta(&mut pod.metadata);
    if let Some(spec) = pod.spec.as_mut() {
        let containers = std::mem::take(&mut spec.containers)
            .into_iter()
            .map(|c| Container {
                name: c.name,
                resources: c.resources.map(|r| ResourceRequirements {
                    requests: r.requests,
                    limits: r.limits,
                    ..ResourceRequirements::default()
                }),
                resize_policy: c.resize_policy,
                ..Container::default()
            })
            .collect();
        *spec = PodSpec {
            containers,
            ..PodSpec::default()
        };
    }
    if let Some(status) = pod.status.as_mut() {
        let statuses = status.container_statuses.take().map(|all| {
            all.into_iter()
                .map(|s| ContainerStatus {
                    name: s.name,
                    resources: s.resources,
                    restart_count: s.restart_count,
                    ready: s.ready,
                    last_state: s.last_state.and_then(|l| {
                        l.terminated.map(|t| ContainerState {
                            terminated: Some(t),
                            ..ContainerState::default()
                        })
                    }),
                    ..ContainerStatus::default()
                })
                .collect()
        });
        *status = PodStatus {
            phase: status.phase.take(),
            conditions: status.conditions.take(),
            start_time: status.start_time.take(),
            pod_ip: status.pod_ip.take(),
            qos_class: status.qos_class.take(),
            resize: status.resize.take(),
            container_statuses: statuses,
            ..PodStatus::default()
        };
    }
}

/// A `LabelSelector` in the string form the `/scale` subresource reports, as the API server
/// writes it: requirements sorted by key, `k=v` for matchLabels, `k in (a,b)`,
/// `k notin (a,b)`, `k` and `!k` for matchExpressions (values sorted). An unknown operator is
/// left out.
pub fn selector_text(selector: &LabelSelector) -> String {
    let mut all: Vec<Expression> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| Expression::Equal(k.clone(), v.clone()))
        .collect();
    all.extend(
        selector
            .match_expressions
            .iter()
            .flatten()
            .filter_map(|r| Expression::try_from(r.clone()).ok()),
    );
    all.sort_by(|a, b| key(a).cmp(key(b)));
    all.into_iter().collect::<Selector>().to_string()
}

fn key(e: &Expression) -> &str {
    match e {
        Expression::In(k, _)
        | Expression::NotIn(k, _)
        | Expression::Equal(k, _)
        | Expression::NotEqual(k, _)
        | Expression::Exists(k)
        | Expression::DoesNotExist(k) => k,
    }
}

/// A token of a label selector's string form.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    /// `=` or `==`.
    Equals,
    NotEquals,
    Not,
    Open,
    Close,
    Comma,
    /// `<` or `>`: numeric comparisons, which kube-core's selector cannot hold.
    Compare(char),
}

fn tokens(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let next_is_eq = chars.peek() == Some(&'=');
        match c {
            c if c.is_whitespace() => {}
            '=' => {
                if next_is_eq {
                    chars.next();
                }
                out.push(Token::Equals);
            }
            '!' if next_is_eq => {
                chars.next();
                out.push(Token::NotEquals);
            }
            '!' => out.push(Token::Not),
            '(' => out.push(Token::Open),
            ')' => out.push(Token::Close),
            ',' => out.push(Token::Comma),
            '<' | '>' => out.push(Token::Compare(c)),
            _ => {
                let mut word = c.to_string();
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || "=!(),<>".contains(n) {
                        break;
                    }
                    word.push(n);
                    chars.next();
                }
                out.push(Token::Word(word));
            }
        }
    }
    out
}

/// Parses the string form of a label selector as the API server does (`labels.Parse`):
/// comma-separated requirements, each `k=v`, `k==v`, `k!=v`, `k in (v1,v2)`, `k notin (v1)`,
/// `k` (exists) or `!k` (does not exist); whitespace is allowed around the words; a value may
/// be empty (`k=`, `k in ()`). The empty selector matches every pod. Numeric `<`/`>` are
/// refused with a message.
pub fn parse_selector(text: &str) -> Result<Selector, String> {
    parse_expressions(text).map(|e| e.into_iter().collect())
}

/// The requirements of a label selector's string form ([`parse_selector`]), in order.
fn parse_expressions(text: &str) -> Result<Vec<Expression>, String> {
    let tokens = tokens(text);
    let mut at = tokens.iter().peekable();
    let mut expressions = Vec::new();
    let fail = |what: &str| format!("label selector {text:?}: {what}");
    let word = |t: Option<&Token>| match t {
        Some(Token::Word(w)) => Some(w.clone()),
        _ => None,
    };
    while at.peek().is_some() {
        if at.peek() == Some(&&Token::Not) {
            at.next();
            let k = word(at.next()).ok_or_else(|| fail("a key must follow '!'"))?;
            expressions.push(Expression::DoesNotExist(k));
        } else {
            let k = word(at.next()).ok_or_else(|| fail("a key was expected"))?;
            let value = |at: &mut std::iter::Peekable<std::slice::Iter<'_, Token>>| match at.peek()
            {
                Some(Token::Word(v)) => {
                    let v = v.clone();
                    at.next();
                    v
                }
                _ => String::new(),
            };
            let e = match at.peek() {
                None | Some(Token::Comma) => Expression::Exists(k),
                Some(Token::Equals) => {
                    at.next();
                    Expression::Equal(k, value(&mut at))
                }
                Some(Token::NotEquals) => {
                    at.next();
                    Expression::NotEqual(k, value(&mut at))
                }
                Some(Token::Word(op)) if op == "in" || op == "notin" => {
                    let inclusive = op == "in";
                    at.next();
                    if at.next() != Some(&Token::Open) {
                        return Err(fail(&format!("'(' was expected after {op:?}")));
                    }
                    let mut values = BTreeSet::new();
                    loop {
                        values.insert(value(&mut at));
                        match at.next() {
                            Some(Token::Comma) => {}
                            Some(Token::Close) => break,
                            _ => return Err(fail("',' or ')' was expected in a value set")),
                        }
                    }
                    if inclusive {
                        Expression::In(k, values)
                    } else {
                        Expression::NotIn(k, values)
                    }
                }
                Some(Token::Compare(c)) => {
                    return Err(fail(&format!(
                        "the numeric comparison {c:?} is not supported here"
                    )));
                }
                Some(t) => return Err(fail(&format!("unexpected {t:?} after key {k:?}"))),
            };
            expressions.push(e);
        }
        match at.next() {
            None | Some(Token::Comma) => {}
            Some(t) => return Err(fail(&format!("',' was expected, not {t:?}"))),
        }
    }
    Ok(expressions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_match_as_the_api_server_parses_them() {
        let web = labels(&[("app", "web"), ("tier", "front")]);
        let db = labels(&[("app", "db")]);
        let cases = [
            ("", true, true),
            ("app=web", true, false),
            ("app==web", true, false),
            ("app = web , tier=front", true, false),
            ("app!=web", false, true),
            ("tier", true, false),
            ("!tier", false, true),
            ("app in (web, db)", true, true),
            ("app in (web),tier notin (back)", true, false),
            ("tier notin (front)", false, true),
            ("app in (api)", false, false),
            ("tier=", false, false),
            ("tier!=", true, true),
        ];
        for (text, on_web, on_db) in cases {
            let s = parse_selector(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(s.matches(&web), on_web, "{text:?} on web");
            assert_eq!(s.matches(&db), on_db, "{text:?} on db");
        }
        for bad in ["app in web", "=web", "app in (a", "a b", "x>1", "!"] {
            let e = parse_selector(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn the_label_index_follows_relabels_deletes_and_relists() {
        let meta = |name: &str, app: &str| ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels(&[("app", app), ("tier", "front")])),
            ..ObjectMeta::default()
        };
        let names = |ix: &LabelIndex, app: &str| -> Vec<String> {
            let key = ("app".to_string(), app.to_string());
            ix.by_label
                .get(&key)
                .into_iter()
                .flatten()
                .cloned()
                .collect()
        };
        let mut ix = LabelIndex::default();
        ix.insert(&meta("a", "web"));
        ix.insert(&meta("b", "web"));
        assert_eq!(names(&ix, "web"), ["a", "b"]);
        ix.insert(&meta("b", "db"));
        assert_eq!(names(&ix, "web"), ["a"]);
        assert_eq!(names(&ix, "db"), ["b"]);
        ix.remove(Some("a"));
        assert!(names(&ix, "web").is_empty());
        assert!(!ix.by_label.contains_key(&("app".into(), "web".into())));
        let pod = |name: &str| {
            Arc::new(Pod {
                metadata: meta(name, "api"),
                ..Pod::default()
            })
        };
        ix.rebuild(&[pod("c"), pod("d")]);
        assert_eq!(names(&ix, "api"), ["c", "d"]);
        assert!(names(&ix, "db").is_empty());
        assert_eq!(ix.labels.len(), 2);
    }

    #[test]
    fn a_label_selector_in_the_form_scale_reports() {
        let s = LabelSelector {
            match_labels: Some(labels(&[("tier", "front"), ("app", "web")])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "env".into(),
                    operator: "In".into(),
                    values: Some(vec!["prod".into(), "canary".into()]),
                },
                LabelSelectorRequirement {
                    key: "legacy".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        };
        let text = selector_text(&s);
        assert_eq!(text, "app=web,env in (canary,prod),!legacy,tier=front");
        // And back: the same pods.
        let parsed = parse_selector(&text).unwrap();
        let pod = labels(&[("app", "web"), ("env", "prod"), ("tier", "front")]);
        assert!(parsed.matches(&pod));
    }

    #[test]
    fn trimmed_objects_keep_what_setpoint_reads() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-a", "namespace": "demo", "labels": {"app": "web"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}",
                                "setpoint.dev/paused": "true"},
                "managedFields": [{"manager": "kubectl"}]},
            "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "example/web",
                "env": [{"name": "A", "value": "b"}],
                "resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "1Gi"}},
                "resizePolicy": [{"resourceName": "cpu", "restartPolicy": "NotRequired"}]}]},
            "status": {"phase": "Running", "podIP": "10.0.0.7", "startTime": "2026-12-01T10:00:00Z",
                "qosClass": "Burstable", "hostIP": "10.1.1.1",
                "conditions": [{"type": "Ready", "status": "True",
                                "lastTransitionTime": "2026-12-01T10:00:05Z"}],
                "containerStatuses": [{"name": "app", "image": "example/web", "imageID": "x",
                    "ready": true, "restartCount": 2,
                    "state": {"running": {"startedAt": "2026-12-01T10:00:01Z"}},
                    "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled",
                        "finishedAt": "2026-12-01T09:59:00Z"}}}]}
        }))
        .unwrap();
        let before = super::super::pods::from_pod(&pod).unwrap();
        let mut trimmed = pod.clone();
        trim_pod(&mut trimmed);
        assert_eq!(super::super::pods::from_pod(&trimmed).unwrap(), before);
        let meta = &trimmed.metadata;
        assert!(meta.managed_fields.is_none());
        assert_eq!(
            meta.annotations
                .as_ref()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["setpoint.dev/paused"]
        );
        let c = &trimmed.spec.as_ref().unwrap().containers[0];
        assert!(c.env.is_none() && c.image.is_none());
        assert!(trimmed.spec.as_ref().unwrap().node_name.is_none());
        assert!(trimmed.status.as_ref().unwrap().host_ip.is_none());

        let mut d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "demo", "uid": "u1", "resourceVersion": "7",
                "annotations": {"deployment.kubernetes.io/revision": "1",
                                "state.setpoint.dev/web": "{}"},
                "managedFields": [{"manager": "kubectl"}]},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "app", "image": "example/web"}]}}},
            "status": {"replicas": 2, "readyReplicas": 1,
                "conditions": [{"type": "Available", "status": "True"}]}
        }))
        .unwrap();
        trim_target(&mut d);
        assert_eq!(d.spec_replicas(), 3);
        assert_eq!(d.status_replicas(), 2);
        assert_eq!(selector_text(d.selector().unwrap()), "app=web");
        assert!(d.spec.template.spec.is_none());
        assert!(d.status.as_ref().unwrap().conditions.is_none());
        assert_eq!(d.status.as_ref().unwrap().ready_replicas, Some(1));
        assert_eq!(d.metadata.resource_version.as_deref(), Some("7"));
        assert_eq!(
            d.metadata.annotations.unwrap().keys().collect::<Vec<_>>(),
            ["state.setpoint.dev/web"]
        );
    }
}
