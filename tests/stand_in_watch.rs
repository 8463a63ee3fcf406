//! The Kubernetes API stand-in's lists, watches, custom resources and RBAC, through a kube-rs
//! client (kube's `client` feature only: the relist after a 410 is done here, as a reflector
//! would): a pod watch with a label selector, a bookmark and a too-old resourceVersion; the
//! ScalingPolicy CRD with its schema, status subresource, server-side apply and conflicts;
//! and a ServiceAccount whose Role grants less than setpoint needs. Everything listens on
//! 127.0.0.1, is bounded in time, and stops with the test.

mod support;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
    WatchEvent, WatchParams,
};
use serde_json::{Value, json};
use std::time::Duration;
use support::TempDir;
use support::kube::{self as k, KubeStandIn, World};

const TEST_LIMIT: Duration = Duration::from_secs(60);
const NS: &str = "demo";

/// A kube-rs client of the stand-in, with `token`.
async fn client(api: &KubeStandIn, dir: &TempDir, token: &str) -> kube::Client {
    let path = dir.write(
        &format!("kubeconfig-{token}"),
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: s\n  cluster:\n    server: {}\n\
             users:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: s\n  context:\n\
             \x20   cluster: s\n    user: u\n    namespace: {NS}\ncurrent-context: s\n",
            api.url()
        ),
    );
    let kubeconfig = kube::config::Kubeconfig::read_from(path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// A world with pods `web-a` (app web) and `db-0` (app db), a token, and a bookmark every
/// second.
fn world() -> World {
    World {
        pods: vec![
            k::ready_pod(NS, "web-a", "web"),
            k::ready_pod(NS, "db-0", "db"),
        ],
        token: Some("t".into()),
        watch: k::watch::WatchLog {
            bookmark_every: Duration::from_secs(1),
            ..Default::default()
        },
        ..World::default()
    }
}

fn name_of(p: &Pod) -> String {
    p.metadata.name.clone().unwrap_or_default()
}

/// What a watch sent: `Added web-b`, `Deleted web-b`, `Bookmark 512`, `Error 410`.
fn summary(events: &[kube::Result<WatchEvent<Pod>>]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e.as_ref().expect("a watch event") {
            WatchEvent::Added(p) => format!("Added {}", name_of(p)),
            WatchEvent::Modified(p) => format!("Modified {}", name_of(p)),
            WatchEvent::Deleted(p) => format!("Deleted {}", name_of(p)),
            WatchEvent::Bookmark(b) => format!("Bookmark {}", b.metadata.resource_version),
            WatchEvent::Error(s) => format!("Error {}", s.code),
        })
        .collect()
}

#[tokio::test]
async fn a_pod_watch_sends_what_matches_its_selector_a_bookmark_and_410_for_a_too_old_version() {
    support::bounded(TEST_LIMIT, async {
        let api = KubeStandIn::start(world());
        let dir = TempDir::new("watch");
        let pods: Api<Pod> = Api::namespaced(client(&api, &dir, "t").await, NS);

        let list = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap();
        let names: Vec<String> = list.items.iter().map(name_of).collect();
        assert_eq!(names, ["web-a"]);
        let rv = list.metadata.resource_version.unwrap();

        // A 3 s watch with a bookmark every second: bookmarks at 1 s and 2 s.
        let wp = WatchParams::default().labels("app=web").timeout(3);
        let stream = pods.watch(&wp, &rv).await.unwrap();
        let (events, ()) = tokio::join!(stream.collect::<Vec<_>>(), async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            api.world().create_pod(k::ready_pod(NS, "web-b", "web"));
            // Another app's pod: no event.
            api.world().create_pod(k::ready_pod(NS, "db-1", "db"));
            tokio::time::sleep(Duration::from_millis(200)).await;
            // web-b leaves the selector: DELETED.
            let relabel = json!({"metadata": {"labels": {"app": "retired"}}});
            assert!(api.world().patch_pod(NS, "web-b", &relabel));
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert!(api.world().delete_pod(NS, "web-a"));
        });
        let now = api.world().resource_version;
        let sent = summary(&events);
        assert_eq!(
            sent[..4],
            [
                "Added web-b",
                "Deleted web-b",
                "Modified web-a",
                "Deleted web-a"
            ],
            "{sent:?}"
        );
        // The bookmarks carry the cluster's resourceVersion.
        assert!(!sent[4..].is_empty(), "{sent:?}");
        for b in &sent[4..] {
            assert_eq!(*b, format!("Bookmark {now}"));
        }
        // The deletion of an unscheduled pod: MODIFIED with the deletion's marks first.
        let Ok(WatchEvent::Modified(deleting)) = &events[2] else {
            panic!("{sent:?}")
        };
        assert!(deleting.metadata.deletion_timestamp.is_some());
        assert_eq!(deleting.metadata.deletion_grace_period_seconds, Some(0));
        let Ok(WatchEvent::Deleted(gone)) = &events[3] else {
            panic!("{sent:?}")
        };
        let version = |p: &Pod| p.metadata.resource_version.clone().unwrap();
        let (v2, v3): (u64, u64) = (
            version(deleting).parse().unwrap(),
            version(gone).parse().unwrap(),
        );
        assert_eq!(v3, v2 + 1);

        // Too old: one ERROR event, a Status 410 Expired, and the end of the stream.
        let events: Vec<_> = pods.watch(&wp, "1").await.unwrap().collect().await;
        assert_eq!(summary(&events), ["Error 410"]);
        let Ok(WatchEvent::Error(s)) = &events[0] else {
            unreachable!()
        };
        assert_eq!(s.reason, "Expired");
        let oldest = api.world().watch.oldest;
        assert_eq!(s.message, format!("too old resource version: 1 ({oldest})"));

        // What a reflector does then: relist, and watch from the list's resourceVersion.
        let list = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap();
        assert!(list.items.is_empty());
        let rv = list.metadata.resource_version.unwrap();
        assert_eq!(rv, now.to_string());
        let wp = WatchParams::default()
            .labels("app=web")
            .timeout(1)
            .disable_bookmarks();
        let stream = pods.watch(&wp, &rv).await.unwrap();
        let (events, ()) = tokio::join!(stream.collect::<Vec<_>>(), async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            api.world().create_pod(k::ready_pod(NS, "web-c", "web"));
        });
        assert_eq!(summary(&events), ["Added web-c"]);

        // Without a resourceVersion, a watch starts with the current objects.
        let events: Vec<_> = pods.watch(&wp, "0").await.unwrap().collect().await;
        assert_eq!(summary(&events), ["Added web-c"]);
    })
    .await;
}

/// The ScalingPolicy CRD, a part of its schema: spec.mode an enum, spec.horizontal and status
/// open; printer columns.
fn scalingpolicy_crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "scalingpolicies.setpoint.dev"},
        "spec": {"group": "setpoint.dev", "scope": "Namespaced",
            "names": {"plural": "scalingpolicies", "kind": "ScalingPolicy", "shortNames": ["sp"]},
            "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "MODE", "type": "string", "jsonPath": ".spec.mode"},
                    {"name": "DESIRED", "type": "integer", "jsonPath": ".status.desiredReplicas"}],
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {
                        "mode": {"type": "string", "enum": ["apply", "recommend"]},
                        "interval": {"type": "string"},
                        "horizontal": {"type": "object",
                                       "x-kubernetes-preserve-unknown-fields": true}}},
                    "status": {"type": "object",
                               "x-kubernetes-preserve-unknown-fields": true}}}}}]}
    }))
    .unwrap()
}

fn policy(name: &str, mode: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "setpoint.dev/v1alpha1", "kind": "ScalingPolicy",
        "metadata": {"name": name},
        "spec": {"mode": mode, "interval": "30s", "replicaz": 3,
                 "horizontal": {"minReplicas": 1, "maxReplicas": 10}},
        "status": {"desiredReplicas": 99},
    }))
    .unwrap()
}

fn generation(o: &DynamicObject) -> i64 {
    o.metadata.generation.unwrap()
}

fn api_error(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.message),
        other => panic!("not an API error: {other}"),
    }
}

#[tokio::test]
async fn scalingpolicy_objects_follow_their_crd_s_schema_and_status_subresource() {
    support::bounded(TEST_LIMIT, async {
        let api = KubeStandIn::start(world());
        let dir = TempDir::new("watch");
        let client = client(&api, &dir, "t").await;
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        crds.create(&PostParams::default(), &scalingpolicy_crd())
            .await
            .unwrap();
        let crd = crds.get("scalingpolicies.setpoint.dev").await.unwrap();
        let established = crd.status.unwrap().conditions.unwrap();
        assert!(
            established
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        );

        // Found through discovery, as setpoint finds a kind.
        let gvk = GroupVersionKind::gvk("setpoint.dev", "v1alpha1", "ScalingPolicy");
        let (resource, caps) = kube::discovery::pinned_kind(&client, &gvk).await.unwrap();
        assert_eq!(resource.plural, "scalingpolicies");
        assert!(caps.subresources.iter().any(|(r, _)| r.plural == "status"));
        let ar = ApiResource::from_gvk_with_plural(&gvk, "scalingpolicies");
        let policies: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &ar);

        // Unknown fields are pruned, status is dropped on create, and a bad enum is a 422.
        let web = policies
            .create(&PostParams::default(), &policy("web", json!("apply")))
            .await
            .unwrap();
        assert_eq!(generation(&web), 1);
        assert!(web.data["spec"].get("replicaz").is_none());
        assert_eq!(web.data["spec"]["horizontal"]["maxReplicas"], 10);
        assert!(web.data.get("status").is_none());
        let (code, message) = api_error(
            policies
                .create(&PostParams::default(), &policy("bad", json!("auto")))
                .await
                .unwrap_err(),
        );
        assert_eq!(code, 422);
        assert_eq!(
            message,
            "ScalingPolicy.setpoint.dev \"bad\" is invalid: spec.mode: Unsupported value: \
             \"auto\": supported values: \"apply\", \"recommend\""
        );

        let list = policies.list(&ListParams::default()).await.unwrap();
        let rv = list.metadata.resource_version.unwrap();
        let wp = WatchParams::default().timeout(2).disable_bookmarks();
        let stream = policies.watch(&wp, &rv).await.unwrap();
        let (events, ()) = tokio::join!(stream.collect::<Vec<_>>(), async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            // A status write: status only, generation kept.
            let status = json!({"spec": {"mode": "recommend"}, "status": {"desiredReplicas": 3}});
            let p = policies
                .patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
                .await
                .unwrap();
            assert_eq!(generation(&p), 1);
            assert_eq!(p.data["spec"]["mode"], "apply");
            assert_eq!(p.data["status"]["desiredReplicas"], 3);
            // A spec write: spec only, generation bumped.
            let spec = json!({"spec": {"interval": "1m"}, "status": {"desiredReplicas": 99}});
            let p = policies
                .patch("web", &PatchParams::default(), &Patch::Merge(&spec))
                .await
                .unwrap();
            assert_eq!(generation(&p), 2);
            assert_eq!(p.data["status"]["desiredReplicas"], 3);
            // The daemon's status write: server-side apply by the field manager setpoint.
            let applied = json!({"apiVersion": "setpoint.dev/v1alpha1", "kind": "ScalingPolicy",
                                 "status": {"desiredReplicas": 5}});
            let pp = PatchParams::apply("setpoint").force();
            let p = policies
                .patch_status("web", &pp, &Patch::Apply(&applied))
                .await
                .unwrap();
            assert_eq!(
                (generation(&p), &p.data["status"]["desiredReplicas"]),
                (2, &json!(5))
            );
            let managers = p.metadata.managed_fields.unwrap();
            assert!(
                managers
                    .iter()
                    .any(|m| m.manager.as_deref() == Some("setpoint")
                        && m.operation.as_deref() == Some("Apply")
                        && m.subresource.as_deref() == Some("status"))
            );
        });
        let generations: Vec<String> = events
            .iter()
            .map(|e| match e.as_ref().unwrap() {
                WatchEvent::Modified(o) => format!("Modified {}", generation(o)),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(generations, ["Modified 1", "Modified 2", "Modified 2"]);

        // A replace carrying the resourceVersion read before those writes: 409.
        let mut stale = web.clone();
        stale.data["spec"]["interval"] = json!("2m");
        let (code, message) = api_error(
            policies
                .replace("web", &PostParams::default(), &stale)
                .await
                .unwrap_err(),
        );
        assert_eq!(code, 409);
        assert!(
            message.starts_with(
                "Operation cannot be fulfilled on scalingpolicies.setpoint.dev \"web\""
            )
        );
    })
    .await;
}

#[tokio::test]
async fn a_service_account_gets_what_its_role_grants_and_403_for_the_rest() {
    support::bounded(TEST_LIMIT, async {
        let mut w = world();
        w.service_accounts.push(k::rbac::ServiceAccount {
            namespace: NS.into(),
            name: "setpoint".into(),
            token: "sa".into(),
            rules: vec![k::rbac::Rule::new(&[""], &["pods"], &["get", "list"])],
        });
        let api = KubeStandIn::start(w);
        let dir = TempDir::new("watch");
        let pods: Api<Pod> = Api::namespaced(client(&api, &dir, "sa").await, NS);
        assert_eq!(
            pods.list(&ListParams::default()).await.unwrap().items.len(),
            2
        );
        pods.get("web-a").await.unwrap();
        // A watch is its own verb, refused before any stream starts.
        let (code, message) = api_error(
            pods.watch(&WatchParams::default(), "0")
                .await
                .err()
                .expect("a 403"),
        );
        assert_eq!(code, 403);
        assert_eq!(
            message,
            "pods is forbidden: User \"system:serviceaccount:demo:setpoint\" cannot watch \
             resource \"pods\" in API group \"\" in the namespace \"demo\""
        );
        // The world's own token may do anything.
        let admin: Api<Pod> = Api::namespaced(client(&api, &dir, "t").await, NS);
        let events: Vec<_> = admin
            .watch(&WatchParams::default().timeout(1).disable_bookmarks(), "0")
            .await
            .unwrap()
            .collect()
            .await;
        assert_eq!(events.len(), 2);
    })
    .await;
}
