//! The manifests in deploy/ and the Grafana dashboard: every YAML parses, the RBAC is namespaced
//! and least-privilege, the Deployment keeps its security settings and agrees with the daemon
//! (admin port, probes, policy folder), the example overlay's policies are the examples, and the
//! dashboard uses exactly the metrics the daemon exports. When `kubectl` is on the PATH the
//! overlays are also rendered with its built-in kustomize.

use serde_json::Value;
use setpoint::daemon::admin::AdminConfig;
use setpoint::daemon::telemetry::{ErrorKind, Source, Telemetry};
use setpoint::engine::vertical::Recommended;
use setpoint::engine::vertical_plan::ContainerRecommendation;
use setpoint::engine::{Decision, Direction, Explanation};
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

    // The policies: the ConfigMap the overlay generates, mounted read-only at --policies.
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
    assert_eq!(k["resources"], serde_json::json!(["../../base"]));
    let generator = &k["configMapGenerator"][0];
    assert_eq!(generator["name"], "setpoint-policies");
    assert_eq!(generator["options"]["disableNameSuffixHash"], true);
    let listed: BTreeSet<String> = generator["files"]
        .as_array()
        .unwrap()
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
                "ConfigMap",
                "Deployment",
                "PodDisruptionBudget",
                "Role",
                "RoleBinding",
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
        let cm = objects.iter().find(|o| o["kind"] == "ConfigMap").unwrap();
        assert_eq!(cm["metadata"]["name"], "setpoint-policies");
        let examples = setpoint::policy::files(&root().join("policies/examples"))
            .unwrap()
            .len();
        assert_eq!(cm["data"].as_object().unwrap().len(), examples);
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

// ----- the Grafana dashboard -----

fn dashboard() -> Value {
    let path = deploy().join("grafana/setpoint-dashboard.json");
    serde_json::from_str(&read(&path)).expect("the dashboard is JSON")
}

/// Every metric family the daemon exports, as Prometheus stores them (counters with `_total`,
/// histograms with `_bucket`, `_sum`, `_count`), read from a registry with every series set.
fn exported_metrics() -> BTreeSet<String> {
    let t = Telemetry::new();
    let d = Decision {
        current_replicas: 1,
        desired_replicas: 2,
        explanation: Explanation {
            ready_replicas: 1,
            proposals: vec![],
            missing: vec![],
            forecasts: vec![],
            proposed_replicas: Some(2),
            activity: None,
            window: None,
            steps: vec![],
        },
    };
    t.record_tick("p");
    t.record_decision("p", &d);
    t.record_scaling_action("p", Direction::Up);
    t.record_query(Source::Prometheus, Duration::from_millis(1));
    t.record_error(ErrorKind::Api);
    t.set_vertical(
        "p",
        &[ContainerRecommendation {
            container: "app".into(),
            cpu: Some(Recommended {
                target: 0.5,
                lower: 0.4,
                upper: 0.7,
            }),
            memory: None,
        }],
    );
    t.encode()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect()
}

/// The `setpoint_*` names in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("setpoint_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

fn panels(d: &Value) -> Vec<&Value> {
    d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| std::iter::once(p).chain(p["panels"].as_array().into_iter().flatten()))
        .collect()
}

#[test]
fn the_dashboard_has_its_variables() {
    let d = dashboard();
    assert!(d["title"].is_string());
    assert!(d["uid"].is_string());
    let vars = d["templating"]["list"].as_array().unwrap();
    let var = |name: &str| {
        vars.iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no ${name}"))
    };
    let ds = var("datasource");
    assert_eq!(ds["type"], "datasource");
    assert_eq!(ds["query"], "prometheus");
    let policy = var("policy");
    assert_eq!(policy["type"], "query");
    assert_eq!(policy["includeAll"], true);
    assert_eq!(policy["multi"], true);
    assert!(
        policy["definition"]
            .as_str()
            .unwrap()
            .contains("label_values(setpoint_ticks_total")
    );
}

#[test]
fn the_dashboard_queries_exactly_the_daemons_metrics() {
    let d = dashboard();
    let exported = exported_metrics();
    let mut used = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for p in panels(&d) {
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "duplicate id"
        );
        for k in ["x", "y", "w", "h"] {
            assert!(p["gridPos"][k].is_u64(), "gridPos.{k} of {}", p["title"]);
        }
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}", p["title"]);
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${datasource}");
            let expr = t["expr"].as_str().unwrap();
            assert_eq!(
                expr.matches('(').count(),
                expr.matches(')').count(),
                "{expr}"
            );
            assert_eq!(
                expr.matches('{').count(),
                expr.matches('}').count(),
                "{expr}"
            );
            for name in metric_names(expr) {
                assert!(
                    exported.contains(&name),
                    "{} queries {name}, which the daemon does not export ({exported:?})",
                    p["title"]
                );
                used.insert(name);
            }
        }
    }
    // Every family the daemon exports is on the dashboard (histograms through _bucket).
    let families: BTreeSet<String> = exported
        .iter()
        .filter(|n| !n.ends_with("_sum") && !n.ends_with("_count"))
        .cloned()
        .collect();
    let missing: Vec<_> = families.difference(&used).collect();
    assert!(missing.is_empty(), "not on the dashboard: {missing:?}");
    // And the names are the documented ones.
    for name in [
        "setpoint_ticks_total",
        "setpoint_decisions_total",
        "setpoint_recommended_replicas",
        "setpoint_current_replicas",
        "setpoint_scaling_actions_total",
        "setpoint_query_duration_seconds_bucket",
        "setpoint_errors_total",
        "setpoint_leader",
        "setpoint_policies",
        "setpoint_policy_reloads_total",
        "setpoint_vertical_recommendation",
    ] {
        assert!(used.contains(name), "{name}");
    }
}

#[test]
fn the_dashboard_filters_by_policy_where_there_is_a_policy_label() {
    let d = dashboard();
    for p in panels(&d) {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap();
            let per_policy = metric_names(expr).iter().any(|n| {
                [
                    "setpoint_ticks_total",
                    "setpoint_decisions_total",
                    "setpoint_recommended_replicas",
                    "setpoint_current_replicas",
                    "setpoint_scaling_actions_total",
                ]
                .contains(&n.as_str())
            });
            if per_policy {
                assert!(expr.contains("policy=~\"$policy\""), "{expr}");
            }
        }
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
