//! The watch of the namespace's ScalingPolicy objects ([`watch`]): each object applied or
//! deleted, as a [`PolicyChange`] carrying the validated [`Policy`] (or why it is not one).
//!
//! kube-runtime's `watcher` lists, then watches from the list's resourceVersion, and relists
//! (with backoff) after a 410 Gone or a broken stream. A relist is compared with what was
//! seen: an object gone meanwhile is reported deleted. An object is reported again only when
//! what makes its policy changed (spec, labels, annotations, uid): a status write, or a
//! relist of the same objects, restarts nothing.
//!
//! The CRD not installed (404 on the list): one WARN, and the watcher keeps retrying with its
//! backoff, which grows to 30 s (`ResetByTimer`); other failures are logged once when they
//! start and once when the watch works again.

use crate::policy::status::PolicyStatus;
use crate::policy::{self, Policy, PolicyError};
use futures_util::{Stream, StreamExt};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use tracing::{info, warn};

/// A change of one ScalingPolicy object.
#[derive(Debug)]
pub enum PolicyChange {
    /// Created, or changed in what makes its policy: `metadata.name`, the policy (or the
    /// error, naming the object and the field), and the object's status as it is (so that a
    /// new worker keeps its conditions' transition times; None when absent or unreadable).
    Applied(
        String,
        Box<Result<Policy, PolicyError>>,
        Option<Box<PolicyStatus>>,
    ),
    /// Deleted: `metadata.name`.
    Deleted(String),
}

/// The ScalingPolicy objects of `namespace`, watched until the stream is dropped.
pub fn watch(client: kube::Client, namespace: &str) -> impl Stream<Item = PolicyChange> + use<> {
    let gvk = GroupVersionKind::gvk(policy::crd::GROUP, policy::crd::VERSION, policy::KIND);
    let resource = ApiResource::from_gvk_with_plural(&gvk, policy::crd::PLURAL);
    let api: Api<DynamicObject> = Api::namespaced_with(client, namespace, &resource);
    let ns = namespace.to_string();
    let mut seen = Seen::default();
    watcher::watcher(api, watcher::Config::default())
        .backoff(ResetByTimer(watcher::DefaultBackoff::default()))
        .flat_map(move |event| futures_util::stream::iter(seen.event(&ns, event)))
}

/// kube-runtime's default watcher backoff (800 ms, doubling with jitter up to 30 s), started
/// again only by its own timer (two minutes without a retry). `StreamBackoff` resets its
/// backoff on every event that is not an error, and a watcher's `Init` comes before each list:
/// a list that keeps failing (the CRD not installed) was retried about once a second for as
/// long as the daemon ran (docs/benchmarks/daemon.md).
struct ResetByTimer(watcher::DefaultBackoff);

impl Iterator for ResetByTimer {
    type Item = std::time::Duration;
    fn next(&mut self) -> Option<std::time::Duration> {
        self.0.next()
    }
}

impl kube::runtime::utils::Backoff for ResetByTimer {
    fn reset(&mut self) {}
}

/// What the watch has reported, and the state of its failures.
#[derive(Default)]
struct Seen {
    /// By name: the fingerprint of what makes the policy.
    reported: BTreeMap<String, u64>,
    /// Objects of the relist in progress.
    relist: Option<Vec<DynamicObject>>,
    /// The failure logged, until the watch works again.
    failing: Option<String>,
}

impl Seen {
    fn event(
        &mut self,
        ns: &str,
        event: Result<Event<DynamicObject>, watcher::Error>,
    ) -> Vec<PolicyChange> {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                self.failed(ns, &e);
                return Vec::new();
            }
        };
        // Each relist starts with `Init`, before its list is asked for: only an answer shows
        // that the watch works again.
        if !matches!(event, Event::Init)
            && let Some(what) = self.failing.take()
        {
            info!(namespace = ns, failure = %what, "the ScalingPolicy watch works again");
        }
        match event {
            Event::Init => {
                self.relist = Some(Vec::new());
                Vec::new()
            }
            Event::InitApply(o) => {
                self.relist.get_or_insert_with(Vec::new).push(o);
                Vec::new()
            }
            Event::InitDone => {
                let listed = self.relist.take().unwrap_or_default();
                let mut out: Vec<PolicyChange> = Vec::new();
                let names: Vec<String> = listed.iter().map(name).collect();
                let gone: Vec<String> = self
                    .reported
                    .keys()
                    .filter(|n| !names.contains(n))
                    .cloned()
                    .collect();
                for n in gone {
                    self.reported.remove(&n);
                    out.push(PolicyChange::Deleted(n));
                }
                out.extend(listed.into_iter().filter_map(|o| self.applied(o)));
                out
            }
            Event::Apply(o) => self.applied(o).into_iter().collect(),
            Event::Delete(o) => {
                let n = name(&o);
                match self.reported.remove(&n) {
                    Some(_) => vec![PolicyChange::Deleted(n)],
                    None => Vec::new(),
                }
            }
        }
    }

    fn applied(&mut self, o: DynamicObject) -> Option<PolicyChange> {
        let n = name(&o);
        let object = as_json(o);
        let print = fingerprint(&object);
        if self.reported.get(&n) == Some(&print) {
            return None;
        }
        self.reported.insert(n.clone(), print);
        let status = serde_json::from_value(object["status"].clone()).ok();
        Some(PolicyChange::Applied(
            n,
            Box::new(policy::from_object(&object)),
            status.map(Box::new),
        ))
    }

    fn failed(&mut self, ns: &str, e: &watcher::Error) {
        let source = match e {
            watcher::Error::InitialListFailed(k)
            | watcher::Error::WatchStartFailed(k)
            | watcher::Error::WatchFailed(k) => Some(k),
            _ => None,
        };
        let what = format!("LIST/WATCH scalingpolicies.setpoint.dev in namespace {ns}");
        let error = match source {
            Some(k) => super::kube::api_error(what, k),
            None => super::ClusterError::Transport {
                what,
                message: crate::text::error_chain(e),
            },
        };
        let kind = match error.code() {
            Some(404) => "not installed".to_string(),
            Some(code) => format!("HTTP {code}"),
            None => "no answer".to_string(),
        };
        if self.failing.as_deref() == Some(kind.as_str()) {
            tracing::debug!(namespace = ns, %error, "the ScalingPolicy watch still fails");
            return;
        }
        if error.code() == Some(404) {
            warn!(namespace = ns, %error,
                "the ScalingPolicy CRD is not installed (kubectl apply -k deploy/crd): policy \
                 files keep working, and the watch retries with backoff");
        } else {
            warn!(namespace = ns, %error,
                "the ScalingPolicy watch fails: the policies seen keep running, and it retries \
                 with backoff");
        }
        self.failing = Some(kind);
    }
}

fn name(o: &DynamicObject) -> String {
    o.metadata.name.clone().unwrap_or_default()
}

/// The object as JSON: `apiVersion`, `kind`, `metadata` and the data (`spec`, `status`).
fn as_json(o: DynamicObject) -> Value {
    let mut v = match o.data {
        Value::Object(m) => Value::Object(m),
        _ => json!({}),
    };
    if let Some(t) = &o.types {
        v["apiVersion"] = json!(t.api_version);
        v["kind"] = json!(t.kind);
    }
    v["metadata"] = serde_json::to_value(&o.metadata).unwrap_or_default();
    v
}

/// A hash of what the policy of an object depends on (8 bytes kept per object, not its spec).
fn fingerprint(object: &Value) -> u64 {
    use std::hash::{Hash, Hasher};
    let m = &object["metadata"];
    let text = json!([
        object["apiVersion"],
        object["kind"],
        m["uid"],
        m["labels"],
        m["annotations"],
        m["generation"],
        object["spec"]
    ])
    .to_string();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(name: &str, max: u32, status: u32) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "setpoint.dev/v1alpha1", "kind": "ScalingPolicy",
            "metadata": {"name": name, "namespace": "demo", "uid": format!("uid-{name}"),
                         "generation": 1, "resourceVersion": format!("{}", 100 + status)},
            "spec": {"target": {"kind": "Deployment", "name": name},
                     "horizontal": {"replicas": {"min": 1, "max": max},
                                    "metrics": [{"prometheus": "up", "targetPerReplica": 1}]}},
            "status": {"desiredReplicas": status},
        }))
        .unwrap()
    }

    fn summary(changes: Vec<PolicyChange>) -> Vec<String> {
        changes
            .into_iter()
            .map(|c| match c {
                PolicyChange::Applied(n, p, _) => match *p {
                    Ok(p) => format!("applied {n} max {}", p.horizontal.unwrap().governor.max),
                    Err(e) => format!("invalid {n}: {e}"),
                },
                PolicyChange::Deleted(n) => format!("deleted {n}"),
            })
            .collect()
    }

    #[test]
    fn a_relist_reports_what_changed_and_what_went_away_and_status_writes_nothing() {
        let mut seen = Seen::default();
        let mut feed = |events: Vec<Event<DynamicObject>>| {
            let mut out = Vec::new();
            for e in events {
                out.extend(seen.event("demo", Ok(e)));
            }
            summary(out)
        };
        let first = feed(vec![
            Event::Init,
            Event::InitApply(object("a", 5, 0)),
            Event::InitApply(object("b", 5, 0)),
            Event::InitDone,
        ]);
        assert_eq!(first, ["applied a max 5", "applied b max 5"]);
        // A status write, then a spec change.
        assert!(feed(vec![Event::Apply(object("a", 5, 3))]).is_empty());
        assert_eq!(
            feed(vec![Event::Apply(object("a", 6, 3))]),
            ["applied a max 6"]
        );
        // A relist after a 410: b went away meanwhile, a is unchanged, c is new.
        let relist = feed(vec![
            Event::Init,
            Event::InitApply(object("a", 6, 4)),
            Event::InitApply(object("c", 2, 0)),
            Event::InitDone,
        ]);
        assert_eq!(relist, ["deleted b", "applied c max 2"]);
        assert_eq!(feed(vec![Event::Delete(object("c", 2, 0))]), ["deleted c"]);
        assert!(feed(vec![Event::Delete(object("zz", 2, 0))]).is_empty());
    }
}
