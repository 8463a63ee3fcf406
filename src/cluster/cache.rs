//! The watch cache of `setpoint run`: one watch per kind in the daemon's namespace, for pods
//! and for the built-in target kinds (apps/v1 Deployment, StatefulSet and ReplicaSet), so that
//! a tick reads its target and its pods from memory and the API server's load does not grow
//! with the number of policies or the tick rate.
//!
//! - Each kind is kept by a kube-runtime [`watcher`] (a list, in pages of 500 objects, then a
//!   watch from its resourceVersion; bookmarks; its default backoff capped at
//!   [`RETRY_AT_MOST`]; a relist on 410 Gone) whose events go into setpoint's own map of
//!   compact records, built once per event from the object: per pod a [`CachedPod`] (its
//!   labels and the engine's pod model, already decoded by [`super::pods::from_pod`], so a
//!   tick no longer decodes on every read), per target a [`CachedTarget`]. The k8s-openapi
//!   objects are dropped as soon as they are read. Measured with a counting allocator on
//!   3,000 pods and 1,000 Deployments shaped as the API stand-in serves them: kube-runtime's
//!   store of trimmed `Pod`s with the label index took 21.7 MiB (7.6 kB a pod: k8s-openapi's
//!   fields are inline even when empty, a `Pod` is 2,464 bytes and a `Container` 2,336) and
//!   the trimmed Deployments 3.3 MiB; the records with their index take 5.5 MiB (1.9 kB a
//!   pod) and 0.2 MiB. The daemon's RSS at 1,000 policies and 3,000 pods went from 63.7 to
//!   45.6 MiB (`SETPOINT_BENCH_WINDOW=60 SETPOINT_BENCH_STEPS=8 cargo bench --bench daemon`;
//!   docs/benchmarks/daemon.md). A page of 100 instead of 500 made no difference there
//!   (45.3 MiB): the list pages, read one at a time, are not where the memory goes.
//! - A list (the first, or a relist) fills a buffer that replaces the map at once when it is
//!   complete (`Event::InitDone`), as kube-runtime's reflector store does: a read sees the old
//!   list or the new one, never half of one.
//! - [`Health`]: a kind's reads answer [`ClusterError::NotSynced`] until its first list is
//!   complete, and again from the first error of its watcher (a 410 Gone on a watch from a
//!   resourceVersion too old, a failed request, a dropped connection) until a relist is
//!   complete: after an error the watcher is started afresh, so the map is rebuilt from a new
//!   list rather than trusted across a gap. The tick holds on that error: a policy never
//!   decides on state the watch has not shown.
//! - [`parse_selector`]: the string form of a label selector, as the API server parses it
//!   (`a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`), into kube-core's
//!   [`Selector`], which matches the cached pods' labels (through an index by label for a
//!   selector with an equality); [`selector_text`]: a `LabelSelector` in the string form the
//!   `/scale` subresource reports (`app=web,tier in (a,b)`).
//!
//! The cache is started by [`super::KubeCluster::with_cache`] and runs until the daemon's
//! shutdown. Writes do not go through it: they stay patches with the resourceVersion read, so
//! a stale cache meets a 409, whose re-read goes to the API server
//! ([`super::Cluster::scale_fresh`]).

use super::ClusterError;
use crate::engine::pod;
use crate::policy::TargetRef;
use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::Api;
use kube::core::{Expression, Selector, SelectorExt};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
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

impl CachedTarget {
    /// What the cache keeps of a target object.
    fn of<K: kube::Resource + Scalable>(object: K) -> CachedTarget {
        let meta = object.meta();
        CachedTarget {
            spec_replicas: object.spec_replicas(),
            status_replicas: object.status_replicas(),
            selector: object.selector().map(selector_text).unwrap_or_default(),
            resource_version: meta.resource_version.clone(),
            uid: meta.uid.clone(),
            annotations: meta
                .annotations
                .iter()
                .flatten()
                .filter(|(k, _)| KEPT_ANNOTATIONS.iter().any(|p| k.starts_with(p)))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

/// What a tick reads of a pod in the cache, built once when its watch event arrives.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedPod {
    /// `metadata.labels`, which selectors match.
    pub labels: BTreeMap<String, String>,
    /// The engine's pod ([`super::pods::from_pod`], a pure function of the object), or why
    /// the object cannot be read (a tick that selects the pod fails with it, as a list would).
    pub pod: Result<pod::Pod, String>,
}

impl CachedPod {
    /// What the cache keeps of a pod object.
    pub fn of(mut object: Pod) -> CachedPod {
        CachedPod {
            pod: super::pods::from_pod(&object),
            labels: object.metadata.labels.take().unwrap_or_default(),
        }
    }
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

/// A kind's records by name, and for pods the names by label (`key`, `value`): a selector
/// with an equality looks at the few pods with that label, not at all of them (with 1,000
/// policies on 3,000 pods, matching every pod's labels on every tick was most of the daemon's
/// CPU).
struct Objects<R> {
    by_name: BTreeMap<Arc<str>, Arc<R>>,
    by_label: HashMap<(String, String), BTreeSet<Arc<str>>>,
}

impl<R> Default for Objects<R> {
    fn default() -> Objects<R> {
        Objects {
            by_name: BTreeMap::new(),
            by_label: HashMap::new(),
        }
    }
}

/// The labels a kind's records are indexed by (none for targets, which are read by name).
trait Labelled {
    fn labels(&self) -> Option<&BTreeMap<String, String>>;
}

impl Labelled for CachedPod {
    fn labels(&self) -> Option<&BTreeMap<String, String>> {
        Some(&self.labels)
    }
}

impl Labelled for CachedTarget {
    fn labels(&self) -> Option<&BTreeMap<String, String>> {
        None
    }
}

impl<R: Labelled> Objects<R> {
    fn remove(&mut self, name: &str) {
        let Some(old) = self.by_name.remove(name) else {
            return;
        };
        for (k, v) in old.labels().into_iter().flatten() {
            let label = (k.clone(), v.clone());
            if let Some(names) = self.by_label.get_mut(&label) {
                names.remove(name);
                if names.is_empty() {
                    self.by_label.remove(&label);
                }
            }
        }
    }

    fn insert(&mut self, name: &str, record: R) {
        self.remove(name);
        let name: Arc<str> = Arc::from(name);
        for (k, v) in record.labels().into_iter().flatten() {
            let names = self.by_label.entry((k.clone(), v.clone())).or_default();
            names.insert(name.clone());
        }
        self.by_name.insert(name, Arc::new(record));
    }
}

/// One kind's watch: the records its watcher keeps, and its health.
struct Kind<R> {
    objects: Arc<RwLock<Objects<R>>>,
    health: Arc<Mutex<Health>>,
    /// `pods`, `deployments.apps`, ... for messages.
    plural: &'static str,
}

impl<R> Clone for Kind<R> {
    fn clone(&self) -> Kind<R> {
        Kind {
            objects: self.objects.clone(),
            health: self.health.clone(),
            plural: self.plural,
        }
    }
}

impl<R> Kind<R> {
    /// The records, when they may be read; else why not, about `what`.
    fn ready(
        &self,
        what: &str,
        namespace: &str,
    ) -> Result<RwLockReadGuard<'_, Objects<R>>, ClusterError> {
        let health = self
            .health
            .lock()
            .map(|h| h.clone())
            .unwrap_or(Health::Starting);
        let reason = match health {
            Health::Synced => {
                return Ok(self.objects.read().unwrap_or_else(|e| e.into_inner()));
            }
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
    pods: Kind<CachedPod>,
    deployments: Kind<CachedTarget>,
    statefulsets: Kind<CachedTarget>,
    replicasets: Kind<CachedTarget>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pods = self.pods.objects.read().map_or(0, |o| o.by_name.len());
        f.debug_struct("Cache")
            .field("namespace", &self.namespace)
            .field("pods", &pods)
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// Starts the four watches of `namespace` (tasks on the current tokio runtime), which run
    /// until `stop` turns true or its sender is dropped.
    pub fn start(client: &kube::Client, namespace: &str, stop: signal::Receiver<bool>) -> Cache {
        Cache {
            namespace: namespace.to_string(),
            pods: spawn(
                Api::namespaced(client.clone(), namespace),
                "pods",
                namespace,
                CachedPod::of,
                stop.clone(),
            ),
            deployments: spawn(
                Api::<Deployment>::namespaced(client.clone(), namespace),
                "deployments.apps",
                namespace,
                CachedTarget::of,
                stop.clone(),
            ),
            statefulsets: spawn(
                Api::<StatefulSet>::namespaced(client.clone(), namespace),
                "statefulsets.apps",
                namespace,
                CachedTarget::of,
                stop.clone(),
            ),
            replicasets: spawn(
                Api::<ReplicaSet>::namespaced(client.clone(), namespace),
                "replicasets.apps",
                namespace,
                CachedTarget::of,
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
    /// it when the synced map has no such object.
    pub fn target(&self, target: &TargetRef) -> Option<Result<CachedTarget, ClusterError>> {
        if !Cache::keeps(target) {
            return None;
        }
        let what = format!(
            "{} {} in namespace {} (watch cache)",
            target.kind, target.name, self.namespace
        );
        let kind = match target.kind.as_str() {
            "Deployment" => &self.deployments,
            "StatefulSet" => &self.statefulsets,
            _ => &self.replicasets,
        };
        let found = kind.ready(&what, &self.namespace).and_then(|objects| {
            let name = target.name.as_str();
            objects
                .by_name
                .get(name)
                .map(|t| CachedTarget::clone(t))
                .ok_or_else(|| ClusterError::Api {
                    what: what.clone(),
                    code: 404,
                    reason: "NotFound".into(),
                    message: format!("{} {name:?} not found", kind.plural),
                })
        });
        Some(found)
    }

    /// The cached pods whose labels match `selector` (its string form), by name.
    pub fn pods(&self, selector: &str) -> Result<Vec<Arc<CachedPod>>, ClusterError> {
        let what = format!(
            "pods with selector {selector:?} in namespace {} (watch cache)",
            self.namespace
        );
        let objects = self.pods.ready(&what, &self.namespace)?;
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
        let matches = |p: &&Arc<CachedPod>| selector.matches(&p.labels);
        Ok(match equal {
            Some(label) => objects
                .by_label
                .get(&label)
                .into_iter()
                .flatten()
                .filter_map(|name| objects.by_name.get(name))
                .filter(matches)
                .cloned()
                .collect(),
            None => objects.by_name.values().filter(matches).cloned().collect(),
        })
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

/// Spawns the watch of one kind, which keeps `keep` of each object.
fn spawn<K: Watched, R: Labelled + Send + Sync + 'static>(
    api: Api<K>,
    plural: &'static str,
    namespace: &str,
    keep: fn(K) -> R,
    mut stop: signal::Receiver<bool>,
) -> Kind<R> {
    let kind = Kind {
        objects: Arc::new(RwLock::new(Objects::default())),
        health: Arc::new(Mutex::new(Health::Starting)),
        plural,
    };
    let watch = format!("{plural} in namespace {namespace}");
    let task = kind.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = reflect(api, task, keep, &watch) => {}
            _ = stop.wait_for(|s| *s) => debug!(watch = %watch, "the watch stops"),
        }
    });
    kind
}

/// The name an object is kept under.
fn name_of<K: kube::Resource>(object: &K) -> String {
    object.meta().name.clone().unwrap_or_default()
}

/// Keeps `kind`'s records from a watcher of `api` for as long as it runs. An error of a synced
/// watch marks it broken and starts a fresh watcher (a relist); errors while it is broken are
/// the fresh watcher's, retried with its default backoff.
async fn reflect<K: Watched, R: Labelled>(
    api: Api<K>,
    kind: Kind<R>,
    keep: fn(K) -> R,
    watch: &str,
) {
    let set = |h: Health| {
        let mut current = kind.health.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *current, h)
    };
    let write = || kind.objects.write().unwrap_or_else(|e| e.into_inner());
    // The list being read (from `Init` to `InitDone`).
    let mut listing = Objects::default();
    loop {
        let mut stream = watcher::watcher(api.clone(), watcher::Config::default())
            .backoff(Capped(watcher::DefaultBackoff::default()))
            .boxed();
        while let Some(item) = stream.next().await {
            match item {
                Ok(Event::Init) => listing = Objects::default(),
                Ok(Event::InitApply(o)) => listing.insert(&name_of(&o), keep(o)),
                Ok(Event::Apply(o)) => write().insert(&name_of(&o), keep(o)),
                Ok(Event::Delete(o)) => write().remove(&name_of(&o)),
                Ok(Event::InitDone) => {
                    *write() = std::mem::take(&mut listing);
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
                            // A fresh watcher: the map is rebuilt from a new list.
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
        }
    )*};
}
scalable!(Deployment, StatefulSet, ReplicaSet);

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
        let pod = |app: &str| CachedPod {
            labels: labels(&[("app", app), ("tier", "front")]),
            pod: Ok(pod::Pod::default()),
        };
        let names = |o: &Objects<CachedPod>, app: &str| -> Vec<String> {
            let key = ("app".to_string(), app.to_string());
            let names = o.by_label.get(&key).into_iter().flatten();
            names.map(|n| n.to_string()).collect()
        };
        let mut o = Objects::default();
        o.insert("a", pod("web"));
        o.insert("b", pod("web"));
        assert_eq!(names(&o, "web"), ["a", "b"]);
        o.insert("b", pod("db"));
        assert_eq!(names(&o, "web"), ["a"]);
        assert_eq!(names(&o, "db"), ["b"]);
        o.remove("a");
        assert!(names(&o, "web").is_empty());
        assert!(!o.by_label.contains_key(&("app".into(), "web".into())));
        assert_eq!(o.by_name.len(), 1);
        // A relist's buffer replaces the map whole.
        let mut listing = Objects::default();
        listing.insert("c", pod("api"));
        listing.insert("d", pod("api"));
        o = listing;
        assert_eq!(names(&o, "api"), ["c", "d"]);
        assert!(names(&o, "db").is_empty());
        assert_eq!(
            o.by_name.keys().map(|k| &**k).collect::<Vec<_>>(),
            ["c", "d"]
        );
        // Targets are read by name, not indexed.
        let mut t = Objects::default();
        let target = CachedTarget::of(Deployment::default());
        t.insert("web", target);
        assert!(t.by_label.is_empty() && t.by_name.contains_key("web"));
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
    fn the_records_keep_what_setpoint_reads() {
        let object: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-a", "namespace": "demo", "labels": {"app": "web"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
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
        let decoded = super::super::pods::from_pod(&object);
        let kept = CachedPod::of(object.clone());
        assert_eq!(kept.pod, decoded);
        assert_eq!(kept.labels, labels(&[("app", "web")]));
        // A pod the engine cannot read is kept with why, for the tick that selects it.
        let mut bad = object;
        bad.spec.as_mut().unwrap().containers[0].resources =
            serde_json::from_value(serde_json::json!({"requests": {"cpu": "lots"}})).unwrap();
        let e = CachedPod::of(bad).pod.unwrap_err();
        assert!(e.contains("pod web-a container app request cpu"), "{e}");

        let d: Deployment = serde_json::from_value(serde_json::json!({
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
        let t = CachedTarget::of(d);
        assert_eq!(
            t,
            CachedTarget {
                spec_replicas: 3,
                status_replicas: 2,
                selector: "app=web".into(),
                resource_version: Some("7".into()),
                uid: Some("u1".into()),
                annotations: labels(&[("state.setpoint.dev/web", "{}")]),
            }
        );
        // A missing spec.replicas is the API server's default, 1.
        let bare = CachedTarget::of(StatefulSet::default());
        assert_eq!((bare.spec_replicas, bare.status_replicas), (1, 0));
    }
}
