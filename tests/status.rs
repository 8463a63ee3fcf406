//! The ScalingPolicy status, end to end against the Kubernetes API stand-in: the CRD with its
//! status subresource and the printer columns of the coordination decisions, an object, and a
//! policy whose `object` the test sets (objects are loaded by the CRD watch, not here), ticked
//! by [`tick::run`] and recorded by the daemon's [`StatusWriter`] as the worker does. The write
//! lands on `/status` by server-side apply, leaves `metadata.generation` alone, shows in
//! `kubectl get`'s Table; a standby replica and a file policy write nothing; a steady load
//! writes once in an hour of ticks.

mod support;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};
use setpoint::cluster::{Cluster, ClusterConfig, KubeCluster};
use setpoint::daemon::status::{Due, StatusWriter};
use setpoint::daemon::telemetry::Telemetry;
use setpoint::policy::{self, ObjectRef, Policy};
use setpoint::tick::{self, Hold, TickState};
use std::path::Path;
use std::time::{Duration, SystemTime};
use support::TempDir;
use support::kube::{self as k, KubeStandIn, Scalable, World};

const TEST_LIMIT: Duration = Duration::from_secs(120);
const NS: &str = "demo";

/// The ScalingPolicy CRD as deploy/crd holds it (generated: `setpoint crd`), whose status
/// schema prunes what it does not declare.
fn crd() -> CustomResourceDefinition {
    serde_json::from_value(setpoint::policy::crd::definition()).unwrap()
}

/// The policy `web`: CPU utilization of requests held at 50 %, 1 to 10 replicas, as a file
/// and as an object's spec.
const POLICY: &str = "apiVersion: setpoint.dev/v1alpha1\nkind: ScalingPolicy\n\
    metadata: {name: web}\nspec:\n  target: {apiVersion: apps/v1, kind: Deployment, name: web}\n  \
    mode: apply\n  interval: 15s\n  horizontal:\n    replicas: {min: 1, max: 10}\n    metrics:\n      \
    - {name: cpu, resource: {name: cpu}, utilization: 0.5}\n";

/// Deployment `web` at 3 replicas, three ready pods at `cpu` each (of a 500m request).
fn world(cpu: &str) -> World {
    let names = ["web-a", "web-b", "web-c"];
    let ago = k::rfc3339(support::unix_now() - 5.0);
    World {
        scalables: vec![Scalable::deployment(NS, "web", 3)],
        pods: names.iter().map(|n| k::ready_pod(NS, n, "web")).collect(),
        pod_metrics: Some(
            names
                .iter()
                .map(|n| k::pod_metrics(NS, n, "web", &ago, "30s", cpu))
                .collect(),
        ),
        token: Some("t".into()),
        ..World::default()
    }
}

/// Status writes the stand-in received, and the last one.
fn status_writes(api: &KubeStandIn) -> Vec<k::Received> {
    api.requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.uri.contains("/scalingpolicies/web/status"))
        .collect()
}

/// One policy ticked as the daemon's worker ticks it, on a virtual wall clock.
struct Ticking {
    policy: Policy,
    tick: TickState,
    status: StatusWriter,
    telemetry: Telemetry,
}

impl Ticking {
    fn new(policy: Policy) -> Ticking {
        Ticking {
            tick: TickState::daemon(&policy, None, None).unwrap(),
            policy,
            status: StatusWriter::default(),
            telemetry: Telemetry::new(),
        }
    }

    async fn tick(&mut self, c: &KubeCluster, leading: bool, wall: SystemTime) -> Option<Due> {
        let hold = Hold::of(false, leading);
        let out = tick::run(Some(c), &self.policy, &mut self.tick, hold, wall).await;
        assert!(out.error.is_none(), "{:?}", out.error);
        let memory = self.tick.memory();
        (self.status)
            .after_tick(c, &self.telemetry, &self.policy, &out, memory, leading)
            .await
    }
}

#[tokio::test]
async fn the_status_lands_on_the_status_subresource_and_only_when_it_changes() {
    support::bounded(TEST_LIMIT, async {
        let api = KubeStandIn::start(world("250m"));
        let dir = TempDir::new("status");
        let (cluster, objects, p) = setup(&api, &dir).await;

        // The first tick of the leader writes the status, by server-side apply of /status.
        let t0 = SystemTime::now();
        let mut leader = Ticking::new(p.clone());
        assert_eq!(leader.tick(&cluster, true, t0).await, Some(Due::First));
        let writes = status_writes(&api);
        assert_eq!(writes.len(), 1);
        let w = &writes[0];
        let (path, query) = w.uri.split_once('?').expect("a query");
        assert_eq!(
            path,
            "/apis/setpoint.dev/v1alpha1/namespaces/demo/scalingpolicies/web/status"
        );
        // (kube-rs writes `?&force=true&…`: an empty first parameter, which servers skip.)
        let mut query: Vec<&str> = query.split('&').filter(|q| !q.is_empty()).collect();
        query.sort();
        assert_eq!(query, ["fieldManager=setpoint", "force=true"]);
        assert_eq!(
            w.content_type.as_deref(),
            Some("application/apply-patch+yaml")
        );
        let o = objects.get("web").await.unwrap();
        assert_eq!(
            o.metadata.generation,
            Some(1),
            "a status write keeps the generation"
        );
        let s = &o.data["status"];
        assert_eq!(
            (
                &s["observedGeneration"],
                &s["currentReplicas"],
                &s["desiredReplicas"],
                &s["readyReplicas"]
            ),
            (&json!(1), &json!(3), &json!(3), &json!(3)),
            "{s:#}"
        );
        let ready = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(
            (&ready["status"], &ready["reason"]),
            (&json!("True"), &json!("Reconciled"))
        );
        assert_eq!(s["conditions"].as_array().unwrap().len(), 6);
        assert_eq!(s["lastDecision"]["metrics"][0]["name"], "cpu");
        let managers = o.metadata.managed_fields.unwrap();
        assert!(
            managers
                .iter()
                .any(|m| m.manager.as_deref() == Some("setpoint")
                    && m.operation.as_deref() == Some("Apply")
                    && m.subresource.as_deref() == Some("status"))
        );

        // kubectl get sp: the printer columns' cells (their names are checked in tests/crd.rs:
        // Name, Target, Mode, Min, Max, Current, Desired, Ready, Paused, Last Action, Age).
        let table = get_table(&api).await;
        let cells = &table["rows"][0]["cells"];
        assert_eq!(
            cells.as_array().unwrap()[..9],
            [
                json!("web"),
                json!("web"),
                json!("apply"),
                json!(1),
                json!(10),
                json!(3),
                json!(3),
                json!("True"),
                json!("")
            ]
        );
        assert_eq!(cells[9], Value::Null, "no scaling action yet");

        // A steady load: nothing more in an hour of ticks.
        for i in 1..240 {
            let wall = t0 + Duration::from_secs(15 * i);
            assert_eq!(leader.tick(&cluster, true, wall).await, None, "tick {i}");
        }
        assert_eq!(
            status_writes(&api).len(),
            1,
            "one write in an hour of a steady load"
        );
        let metrics = leader.telemetry.encode();
        assert!(
            metrics.contains("setpoint_status_writes_total{result=\"ok\"} 1"),
            "{metrics}"
        );

        // A standby replica, and a policy from a file, write nothing.
        let mut standby = Ticking::new(p.clone());
        let mut file = Ticking::new(policy::parse(POLICY, Path::new("web.yaml")).unwrap());
        for i in 0..5 {
            let wall = t0 + Duration::from_secs(15 * i);
            assert_eq!(standby.tick(&cluster, false, wall).await, None);
            assert_eq!(file.tick(&cluster, true, wall).await, None);
        }
        assert_eq!(status_writes(&api).len(), 1);

        // The load doubles: the next tick scales to 6 and writes at once.
        for m in api.world().pod_metrics.as_mut().unwrap() {
            m["containers"][0]["usage"]["cpu"] = json!("500m");
        }
        let wall = t0 + Duration::from_secs(3600);
        assert_eq!(leader.tick(&cluster, true, wall).await, Some(Due::Changed));
        let o = objects.get("web").await.unwrap();
        let s = &o.data["status"];
        assert_eq!(
            (&s["currentReplicas"], &s["desiredReplicas"]),
            (&json!(3), &json!(6))
        );
        assert!(s["lastScaleTime"].is_string(), "{s:#}");
        assert_eq!(o.metadata.generation, Some(1));
        let table = get_table(&api).await;
        assert_eq!(table["rows"][0]["cells"][6], json!(6));
        assert!(
            table["rows"][0]["cells"][9].is_string(),
            "LAST ACTION is an age now"
        );
    })
    .await;
}

#[test]
fn the_status_schema_is_structural() {
    // The CRD's status schema: OpenAPI 3, subschemas inlined, made structural.
    let schema = setpoint::policy::crd::status_schema();
    let text = schema.to_string();
    for not_structural in ["anyOf", "oneOf", "$ref", "const"] {
        assert!(
            !text.contains(not_structural),
            "{not_structural} in {schema:#}"
        );
    }
    let conditions = &schema["properties"]["conditions"];
    assert_eq!(conditions["x-kubernetes-list-type"], "map");
    assert_eq!(conditions["x-kubernetes-list-map-keys"], json!(["type"]));
    let condition = &conditions["items"]["properties"];
    assert_eq!(
        condition["type"]["enum"],
        json!([
            "Ready",
            "AbleToScale",
            "ScalingActive",
            "ScalingLimited",
            "Paused",
            "Fallback"
        ])
    );
    assert_eq!(
        condition["status"]["enum"],
        json!(["True", "False", "Unknown"])
    );
    assert_eq!(schema["properties"]["lastDecision"]["type"], "object");
}

/// The CRD and the object `web` in the stand-in; a cluster adapter; the policy `web` as a
/// file policy with `object` set to that object.
async fn setup(api: &KubeStandIn, dir: &TempDir) -> (KubeCluster, Api<DynamicObject>, Policy) {
    let config = ClusterConfig {
        kubeconfig: Some(api.kubeconfig(dir, NS)),
        ..ClusterConfig::default()
    };
    let cluster = KubeCluster::connect(&config).await.unwrap();
    let client = cluster.client().clone();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &crd()).await.unwrap();
    let gvk = GroupVersionKind::gvk("setpoint.dev", "v1alpha1", "ScalingPolicy");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "scalingpolicies");
    let objects: Api<DynamicObject> = Api::namespaced_with(client, NS, &ar);
    let manifest: DynamicObject = serde_json::from_value(yaml(POLICY)).unwrap();
    let created = objects
        .create(&PostParams::default(), &manifest)
        .await
        .unwrap();
    let mut p = policy::parse(POLICY, Path::new("web.yaml")).unwrap();
    p.object = Some(ObjectRef {
        name: "web".into(),
        uid: created.metadata.uid.clone().unwrap(),
        generation: created.metadata.generation.unwrap(),
    });
    (cluster, objects, p)
}

#[tokio::test]
async fn a_failed_write_names_the_object_and_is_tried_again_at_the_next_tick() {
    support::bounded(TEST_LIMIT, async {
        let api = KubeStandIn::start(world("250m"));
        let dir = TempDir::new("status");
        let (cluster, objects, p) = setup(&api, &dir).await;
        api.world().faults.push_back(k::Fault {
            method: Some("PATCH".into()),
            path_contains: "/scalingpolicies/web/status".into(),
            status: Some(403),
            delay: Duration::ZERO,
            times: 2,
        });
        let status = setpoint::policy::status::PolicyStatus::default();
        let object = p.object.clone().unwrap();
        let e = cluster.apply_status(&object, &status).await.unwrap_err();
        assert_eq!(e.code(), Some(403));
        let text = e.to_string();
        assert!(
            text.starts_with("PATCH (apply) status of ScalingPolicy web in namespace demo: HTTP 403"),
            "{text}"
        );
        assert!(
            text.contains(
                "(the Role needs verb \"patch\" on resource \"scalingpolicies/status\" in API group \"setpoint.dev\")"
            ),
            "{text}"
        );

        let t0 = SystemTime::now();
        let mut leader = Ticking::new(p);
        assert_eq!(leader.tick(&cluster, true, t0).await, None, "refused");
        assert!(objects.get("web").await.unwrap().data.get("status").is_none());
        let wall = t0 + Duration::from_secs(15);
        assert_eq!(leader.tick(&cluster, true, wall).await, Some(Due::First));
        let metrics = leader.telemetry.encode();
        for line in [
            "setpoint_status_writes_total{result=\"ok\"} 1",
            "setpoint_status_writes_total{result=\"error\"} 1",
            "setpoint_errors_total{kind=\"forbidden\"} 1",
        ] {
            assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
        }
        assert_eq!(
            objects.get("web").await.unwrap().data["status"]["desiredReplicas"],
            3
        );
    })
    .await;
}

#[tokio::test]
async fn an_invalid_object_gets_ready_false_with_the_field_and_its_message() {
    support::bounded(TEST_LIMIT, async {
        let api = KubeStandIn::start(world("250m"));
        let dir = TempDir::new("status");
        let (cluster, objects, p) = setup(&api, &dir).await;
        let object = p.object.clone().unwrap();
        let problems = [policy::Problem {
            line: 0,
            column: 0,
            field: "spec.horizontal.replicas.min".into(),
            message: "must be at most max (10), got 12".into(),
        }];
        let mut writer = StatusWriter::default();
        let telemetry = Telemetry::new();
        let now = SystemTime::now();
        let wrote = writer
            .after_invalid(&cluster, &telemetry, &object, &problems, true, now)
            .await;
        assert_eq!(wrote, Some(Due::First));
        // Again, unchanged: nothing.
        let again = writer
            .after_invalid(&cluster, &telemetry, &object, &problems, true, now)
            .await;
        assert_eq!(again, None);
        assert_eq!(status_writes(&api).len(), 1);
        let o = objects.get("web").await.unwrap();
        assert_eq!(o.metadata.generation, Some(1));
        let ready = &o.data["status"]["conditions"][0];
        assert_eq!(
            (&ready["type"], &ready["status"], &ready["reason"]),
            (&json!("Ready"), &json!("False"), &json!("InvalidSpec"))
        );
        assert_eq!(
            ready["message"],
            "the spec is invalid: spec.horizontal.replicas.min: must be at most max (10), got 12"
        );
        let table = get_table(&api).await;
        assert_eq!(table["rows"][0]["cells"][7], json!("False"), "READY");
    })
    .await;
}

/// A manifest's YAML as JSON.
fn yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).unwrap()
}

/// `kubectl get scalingpolicies` in the namespace, as a Table.
async fn get_table(api: &KubeStandIn) -> Value {
    let url = format!(
        "{}/apis/setpoint.dev/v1alpha1/namespaces/{NS}/scalingpolicies",
        api.url()
    );
    let answer = reqwest::Client::new()
        .get(url)
        .bearer_auth("t")
        .header(
            "accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    serde_json::from_str(&answer.text().await.unwrap()).unwrap()
}
