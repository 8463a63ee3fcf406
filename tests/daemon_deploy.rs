//! The manifests in deploy/ and the Dockerfile: every YAML parses, the RBAC is namespaced and
//! least-privilege, the Deployment keeps its security settings and agrees with the daemon (admin
//! port, probes, policy folder), the example overlay's policies are the examples. When `kubectl`
//! is on the PATH the overlays are also rendered with its built-in kustomize. The Prometheus
//! Operator component and the Grafana dashboard are tested in tests/deploy_monitoring.rs.

use serde_json::Value;
use setpoint::daemon::admin::AdminConfig;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn deploy() -> PathBuf {
    root().join("deploy")
}

/// Every file under `dir` whose name ends with `ext`, sorted.
fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(ext) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml_docs(text: &str, what: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .unwrap_or_else(|e| panic!("{what}: {e}"))
        .into_iter()
        .filter(|v| !v.is_null())
        .collect()
}

fn is_policy_file(path: &Path) -> bool {
    path.components().any(|c| c.as_os_str() == "policies")
}

/// The Kubernetes objects of the base (not kustomizations, not policy files), by kind.
fn base_objects() -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for path in files(&deploy().join("base"), ".yaml") {
        if path.file_name().unwrap() == "kustomization.yaml" {
            continue;
        }
        for doc in yaml_docs(&read(&path), &path.display().to_string()) {
            let kind = doc["kind"].as_str().expect("kind").to_owned();
            assert!(out.insert(kind.clone(), doc).is_none(), "two {kind}s");
        }
    }
    out
}

#[test]
fn every_yaml_in_deploy_parses_and_nothing_is_cluster_scoped() {
    let all = files(&deploy(), ".yaml");
    assert!(all.len() >= 10, "{all:?}");
    for path in all {
        let what = path.display().to_string();
        let docs = yaml_docs(&read(&path), &what);
        assert!(!docs.is_empty(), "{what} is empty");
        if is_policy_file(&path) {
            continue;
        }
        for doc in docs {
            let kind = doc["kind"]
                .as_str()
                .unwrap_or_else(|| panic!("{what}: no kind"));
            assert!(
                !matches!(kind, "ClusterRole" | "ClusterRoleBinding" | "Namespace"),
                "{what}: {kind} is cluster-scoped; setpoint gets a namespaced Role only"
            );
            // The one cluster-scoped object, in its own kustomization for an admin.
            assert!(
                kind != "CustomResourceDefinition" || path.starts_with(deploy().join("crd")),
                "{what}: the CRD lives in deploy/crd only"
            );
            assert!(
                doc["metadata"]["namespace"].is_null(),
                "{what}: the namespace comes from the overlay"
            );
        }
    }
}

#[test]
fn the_role_grants_exactly_what_the_daemon_needs() {
    let objects = base_objects();
    let role = &objects["Role"];
    let mut granted = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        assert!(rule["resourceNames"].is_null() || rule["resourceNames"].is_array());
        assert!(rule["nonResourceURLs"].is_null(), "no non-resource URLs");
        for group in rule["apiGroups"].as_array().unwrap() {
            for resource in rule["resources"].as_array().unwrap() {
                for verb in rule["verbs"].as_array().unwrap() {
                    let (g, r, v) = (
                        group.as_str().unwrap(),
                        resource.as_str().unwrap(),
                        verb.as_str().unwrap(),
                    );
                    assert!(g != "*" && r != "*" && v != "*", "wildcard in {rule}");
                    granted.insert(format!("{g}/{r}:{v}"));
                }
            }
        }
    }
    let expected: BTreeSet<String> = [
        "/pods:get",
        "/pods:list",
        "/pods:watch",
        "apps/deployments:get",
        "apps/statefulsets:get",
        "apps/replicasets:get",
        "apps/deployments:list",
        "apps/statefulsets:list",
        "apps/replicasets:list",
        "apps/deployments:watch",
        "apps/statefulsets:watch",
        "apps/replicasets:watch",
        "apps/statefulsets:patch",
        "apps/replicasets:patch",
        "apps/deployments/scale:get",
        "apps/deployments/scale:patch",
        "apps/statefulsets/scale:get",
        "apps/statefulsets/scale:patch",
        "apps/replicasets/scale:get",
        "apps/replicasets/scale:patch",
        "/pods/resize:patch",
        "apps/deployments:patch",
        "events.k8s.io/events:create",
        "events.k8s.io/events:patch",
        "/events:create",
        "/events:patch",
        "coordination.k8s.io/leases:get",
        "coordination.k8s.io/leases:create",
        "coordination.k8s.io/leases:update",
        "coordination.k8s.io/leases:patch",
        "metrics.k8s.io/pods:get",
        "metrics.k8s.io/pods:list",
        "setpoint.dev/scalingpolicies:get",
        "setpoint.dev/scalingpolicies:list",
        "setpoint.dev/scalingpolicies:watch",
        "setpoint.dev/scalingpolicies/status:patch",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(granted, expected);

    let binding = &objects["RoleBinding"];
    assert_eq!(binding["roleRef"]["kind"], "Role");
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    assert_eq!(binding["subjects"][0]["kind"], "ServiceAccount");
    assert_eq!(
        binding["subjects"][0]["name"],
        objects["ServiceAccount"]["metadata"]["name"]
    );
}

#[test]
fn the_deployment_is_locked_down_and_agrees_with_the_daemon() {
    let objects = base_objects();
    let dep = &objects["Deployment"];
    assert_eq!(dep["spec"]["replicas"], 2);
    let pod = &dep["spec"]["template"]["spec"];
    assert_eq!(
        pod["serviceAccountName"],
        objects["ServiceAccount"]["metadata"]["name"]
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        Duration::from_secs(grace) > AdminConfig::default().drain_timeout + Duration::from_secs(15),
        "the grace period must cover the admin drain and a tick in flight"
    );

    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let sc = &c["securityContext"];
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert!(sc["capabilities"]["add"].is_null());
    assert!(sc["privileged"].is_null() || sc["privileged"] == false);
    for kind in ["requests", "limits"] {
        for res in ["cpu", "memory"] {
            assert!(
                c["resources"][kind][res].is_string(),
                "resources.{kind}.{res} missing"
            );
        }
    }

    // Arguments: the documented flags, dry-run first (and last, for components/apply).
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "run");
    let flag = |name: &str| {
        let i = args
            .iter()
            .position(|a| *a == name)
            .unwrap_or_else(|| panic!("no {name}"));
        args[i + 1]
    };
    assert_eq!(flag("--namespace"), "$(POD_NAMESPACE)");
    assert!(flag("--prometheus").starts_with("http"));
    assert_eq!(*args.last().unwrap(), "--dry-run");
    let listen = flag("--listen");
    let port: u64 = listen.rsplit_once(':').unwrap().1.parse().unwrap();

    // The downward API.
    let env: BTreeMap<&str, &str> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap(),
                e["valueFrom"]["fieldRef"]["fieldPath"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(env["POD_NAMESPACE"], "metadata.namespace");
    assert_eq!(env["POD_NAME"], "metadata.name");

    // Probes on the admin port, which is the --listen port.
    let ports = c["ports"].as_array().unwrap();
    let admin = ports
        .iter()
        .find(|p| p["name"] == "admin")
        .expect("admin port");
    assert_eq!(admin["containerPort"].as_u64(), Some(port));
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(c[probe]["httpGet"]["port"], "admin");
    }

    // The policy files: the ConfigMap an overlay may generate (optional: the examples are
    // ScalingPolicy objects), mounted read-only at --policies.
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == flag("--policies"))
        .expect("the --policies folder is mounted");
    assert_eq!(mount["readOnly"], true);
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    assert_eq!(volume["configMap"]["name"], "setpoint-policies");
    assert_eq!(volume["configMap"]["optional"], true);

    // The Service selects these pods and is scraped on the admin port.
    let svc = &objects["Service"];
    let labels = &dep["spec"]["template"]["metadata"]["labels"];
    for (k, v) in svc["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&labels[k], v, "selector {k}");
    }
    assert_eq!(
        dep["spec"]["selector"]["matchLabels"],
        svc["spec"]["selector"]
    );
    let ann = &svc["metadata"]["annotations"];
    assert_eq!(ann["prometheus.io/scrape"], "true");
    assert_eq!(ann["prometheus.io/port"], port.to_string());
    assert_eq!(ann["prometheus.io/path"], "/metrics");
    assert_eq!(svc["spec"]["ports"][0]["port"].as_u64(), Some(port));
}

#[test]
fn the_apply_component_removes_exactly_the_dry_run_flag() {
    let objects = base_objects();
    let args = objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .clone();
    let component = yaml_docs(
        &read(&deploy().join("components/apply/kustomization.yaml")),
        "components/apply",
    );
    assert_eq!(component[0]["kind"], "Component");
    let patch_text = component[0]["patches"][0]["patch"].as_str().unwrap();
    let ops: Vec<Value> = serde_saphyr::from_str(patch_text).unwrap();
    let path = format!("/spec/template/spec/containers/0/args/{}", args.len() - 1);
    assert_eq!(ops.len(), 2);
    assert_eq!(ops[0]["op"], "test");
    assert_eq!(ops[0]["path"], path.as_str());
    assert_eq!(ops[0]["value"], "--dry-run");
    assert_eq!(ops[1]["op"], "remove");
    assert_eq!(ops[1]["path"], path.as_str());
}

#[test]
fn the_example_overlay_ships_the_example_policies_unchanged() {
    let overlay = deploy().join("overlays/example");
    let k = &yaml_docs(&read(&overlay.join("kustomization.yaml")), "overlay")[0];
    assert!(k["namespace"].is_string());
    // The examples as ScalingPolicy objects (`kubectl apply -f policies/` works on them too).
    let resources = k["resources"].as_array().unwrap();
    assert_eq!(resources[0], "../../base");
    let listed: BTreeSet<String> = resources[1..]
        .iter()
        .map(|f| f.as_str().unwrap().to_owned())
        .collect();
    let examples: BTreeSet<String> = files(&root().join("policies/examples"), ".yaml")
        .iter()
        .map(|p| format!("policies/{}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    assert_eq!(listed, examples, "the overlay lists every example policy");
    for file in &listed {
        let copy = overlay.join(file);
        let original = root()
            .join("policies/examples")
            .join(copy.file_name().unwrap());
        assert_eq!(
            read(&copy),
            read(&original),
            "{file} differs from policies/examples: copy it again"
        );
        setpoint::policy::load(&copy).expect("the example loads");
    }
    let apply = &yaml_docs(
        &read(&deploy().join("overlays/example-apply/kustomization.yaml")),
        "example-apply",
    )[0];
    assert_eq!(apply["resources"], serde_json::json!(["../example"]));
    assert_eq!(
        apply["components"],
        serde_json::json!(["../../components/apply"])
    );
}

fn kubectl_available() -> bool {
    Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn kustomize(dir: &str) -> Vec<Value> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(deploy().join(dir))
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl kustomize {dir}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    yaml_docs(&String::from_utf8(out.stdout).unwrap(), dir)
}

#[test]
fn the_overlays_render_with_kustomize() {
    if !kubectl_available() {
        eprintln!("skipped: kubectl (with its built-in kustomize) is not on the PATH");
        return;
    }
    let dry = kustomize("overlays/example");
    let apply = kustomize("overlays/example-apply");
    for (objects, dry_run) in [(&dry, true), (&apply, false)] {
        let kinds: BTreeSet<&str> = objects
            .iter()
            .map(|o| o["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            BTreeSet::from([
                "Deployment",
                "PodDisruptionBudget",
                "Role",
                "RoleBinding",
                "ScalingPolicy",
                "Service",
                "ServiceAccount"
            ])
        );
        let ns = objects[0]["metadata"]["namespace"]
            .as_str()
            .expect("namespace set");
        for o in objects.iter() {
            assert_eq!(o["metadata"]["namespace"], ns, "{}", o["kind"]);
        }
        let binding = objects.iter().find(|o| o["kind"] == "RoleBinding").unwrap();
        assert_eq!(binding["subjects"][0]["namespace"], ns);
        let examples = setpoint::policy::files(&root().join("policies/examples"))
            .unwrap()
            .len();
        let policies = objects.iter().filter(|o| o["kind"] == "ScalingPolicy");
        assert_eq!(policies.count(), examples);
        let dep = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
        let c = &dep["spec"]["template"]["spec"]["containers"][0];
        assert!(c["image"].as_str().unwrap().contains("setpoint:"));
        let has_dry_run = c["args"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "--dry-run");
        assert_eq!(has_dry_run, dry_run);
    }
}

// ----- the Dockerfile -----

#[test]
fn the_image_is_static_non_root_and_exposes_the_admin_port() {
    let text = read(&root().join("Dockerfile"));
    let stages: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(stages.len(), 2, "a build stage and a runtime stage");
    assert!(stages[0].contains("AS build"));
    assert!(stages[1].contains("distroless/static"), "{}", stages[1]);
    let runtime = &text[text.find(stages[1]).unwrap()..];
    let copies: Vec<&str> = runtime.lines().filter(|l| l.starts_with("COPY")).collect();
    assert_eq!(
        copies,
        ["COPY --from=build /setpoint /setpoint"],
        "only the binary"
    );
    assert!(runtime.lines().any(|l| l == "USER 65532:65532"));
    assert!(runtime.lines().any(|l| l == "ENTRYPOINT [\"/setpoint\"]"));
    let dep = &base_objects()["Deployment"];
    let pod = &dep["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    let port = pod["containers"][0]["ports"][0]["containerPort"]
        .as_u64()
        .unwrap();
    assert!(runtime.lines().any(|l| l == format!("EXPOSE {port}")));
    assert!(text.contains("--locked"), "the build uses Cargo.lock");
    let ignore = read(&root().join(".dockerignore"));
    assert!(ignore.lines().any(|l| l == "target/"));
}
