//! The ScalingPolicy CRD: deploy/crd/scalingpolicy.yaml is what `setpoint crd` generates (the
//! stand-in is given the generated one), and the Kubernetes API stand-in (tests/support/kube/crd.rs: a v1.24 server's pruning and its
//! `type` and `enum` checks) takes it, stores every example policy applied as an object
//! unchanged (the schema knows every field: nothing is pruned), and refuses a wrong type or
//! enum value in the server's words. And a ScalingPolicy object read back from the server is
//! the same policy as its file.

mod support;

use kube::api::PostParams;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::TempDir;
use support::kube::{KubeStandIn, World};

const NS: &str = "demo";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_committed_crd_is_what_the_code_generates() {
    let path = root().join("deploy/crd/scalingpolicy.yaml");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == setpoint::policy::crd::yaml(),
        "{} is not what the code generates: regenerate it with\n  \
         cargo run -q -- crd > deploy/crd/scalingpolicy.yaml",
        path.display()
    );
    let k = std::fs::read_to_string(root().join("deploy/crd/kustomization.yaml")).unwrap();
    let k: Value = serde_saphyr::from_str(&k).unwrap();
    assert_eq!(k["resources"], json!(["scalingpolicy.yaml"]));
}

fn examples() -> Vec<PathBuf> {
    setpoint::policy::files(&root().join("policies/examples")).unwrap()
}

fn yaml(path: &Path) -> Value {
    serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn api_error(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.message),
        other => panic!("not an API error: {other}"),
    }
}

#[tokio::test]
async fn the_server_takes_the_crd_stores_every_example_unchanged_and_refuses_wrong_values() {
    support::bounded(Duration::from_secs(60), async {
        let api = KubeStandIn::start(World::default());
        let dir = TempDir::new("crd");
        let policies = api.scalingpolicies(&dir, NS).await;
        let list = examples();
        assert!(list.len() >= 5, "{list:?}");
        for path in &list {
            let file = yaml(path);
            let stored = policies
                .create(
                    &PostParams::default(),
                    &serde_json::from_value(file.clone()).unwrap(),
                )
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(
                stored.data["spec"],
                file["spec"],
                "{}: stored as written (nothing pruned)",
                path.display()
            );
            // Read back, it is the same policy as its file.
            let object = serde_json::to_value(&stored).unwrap();
            let from_object = setpoint::policy::from_object(&object)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let from_file = setpoint::policy::load(path).unwrap();
            assert_eq!(
                format!(
                    "{:?}",
                    (
                        from_object.target,
                        from_object.horizontal,
                        from_object.vertical
                    )
                ),
                format!(
                    "{:?}",
                    (from_file.target, from_file.horizontal, from_file.vertical)
                ),
                "{}",
                path.display()
            );
            let reference = from_object.object.expect("an object reference");
            assert_eq!(reference.generation, 1);
            assert!(!reference.uid.is_empty());
        }

        // What a v1.24 server refuses, in its words.
        let mut bad = yaml(&list[0]);
        bad["metadata"]["name"] = json!("bad");
        bad["spec"]["mode"] = json!("auto");
        bad["spec"]["interval"] = json!(15);
        let refused = async |bad: Value| {
            let o = serde_json::from_value(bad).unwrap();
            api_error(
                policies
                    .create(&PostParams::default(), &o)
                    .await
                    .unwrap_err(),
            )
        };
        let (code, message) = refused(bad).await;
        assert_eq!(code, 422);
        assert!(
            message.starts_with("ScalingPolicy.setpoint.dev \"bad\" is invalid: ["),
            "{message}"
        );
        assert!(
            message.contains(
                "spec.interval: Invalid value: \"integer\": spec.interval in body must be of \
                 type string: \"integer\""
            ),
            "{message}"
        );
        assert!(
            message.contains(
                "spec.mode: Unsupported value: \"auto\": supported values: \"apply\", \"recommend\""
            ),
            "{message}"
        );
        let mut bad = yaml(&list[0]);
        bad["metadata"]["name"] = json!("bad");
        bad["spec"]["horizontal"]["replicas"]["min"] = json!("two");
        let (code, message) = refused(bad).await;
        assert_eq!(
            (code, message.as_str()),
            (
                422,
                "ScalingPolicy.setpoint.dev \"bad\" is invalid: \
            spec.horizontal.replicas.min: Invalid value: \"string\": spec.horizontal.replicas.min \
            in body must be of type integer: \"string\""
            )
        );
        // An unknown field is pruned (setpoint never sees it); `kubectl apply` would warn.
        let mut extra = yaml(&list[0]);
        extra["metadata"]["name"] = json!("extra");
        extra["spec"]["horizontal"]["replicaz"] = json!(3);
        let stored = policies
            .create(
                &PostParams::default(),
                &serde_json::from_value(extra).unwrap(),
            )
            .await
            .unwrap();
        assert!(stored.data["spec"]["horizontal"].get("replicaz").is_none());

        // `kubectl get sp`: the printer columns, from spec and status.
        let status = json!({"status": {"currentReplicas": 3, "desiredReplicas": 4, "paused": "",
            "conditions": [{"type": "Ready", "status": "True", "reason": "Running"}]}});
        let pp = kube::api::PatchParams::default();
        policies
            .patch_status("hpa", &pp, &kube::api::Patch::Merge(&status))
            .await
            .unwrap();
        let table = reqwest::Client::new()
            .get(format!(
                "{}/apis/setpoint.dev/v1alpha1/namespaces/{NS}/scalingpolicies",
                api.url()
            ))
            .header(
                "accept",
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
            )
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let table: Value = serde_json::from_str(&table).unwrap();
        let names: Vec<&str> = table["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "Name",
                "Target",
                "Mode",
                "Min",
                "Max",
                "Current",
                "Desired",
                "Ready",
                "Paused",
                "Last Action",
                "Age"
            ]
        );
        let hpa = table["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["cells"][0] == "hpa")
            .expect("a row for hpa");
        assert_eq!(
            hpa["cells"].as_array().unwrap()[..9],
            [
                json!("hpa"),
                json!("web"),
                json!("recommend"),
                json!(1),
                json!(1000),
                json!(3),
                json!(4),
                json!("True"),
                json!("")
            ]
        );
    })
    .await;
}
