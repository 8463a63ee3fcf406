//! The Prometheus Operator component (deploy/components/prometheus-operator) and the Grafana
//! dashboard (deploy/grafana) against the daemon:
//!
//! - the PrometheusRule's groups pass the real `promtool check rules`, and every alert fires when
//!   it should and not when it should not under `promtool test rules` (tests/alerts.test.yaml,
//!   synthetic series); without promtool these tests say why they are skipped, except under
//!   `CI=true`, where they fail;
//! - every alert has a `for`, a severity, a summary and a description, and a runbook section in
//!   docs/operations.md;
//! - the ServiceMonitor scrapes the Service's admin port on the path the admin server serves
//!   /metrics on (and, when `kubectl` is on the PATH, an overlay with the component renders);
//! - every series the rules and the dashboard name is one the daemon exposes, taken from the
//!   /metrics of a real `setpoint run` (against the API stand-in, with a policy whose metrics give
//!   no data, one whose target is gone, one that scales to zero and a broken file) and, for the
//!   series that run does not provoke, from the daemon's registry with them set ([`COMING`]
//!   lists the series other branches add); every series exposed is on the dashboard and in
//!   docs/reference/metrics-and-events.md;
//! - the dashboard's variables and filters.

mod support;

use serde_json::Value;
use setpoint::daemon::telemetry::Telemetry;
use setpoint::engine::vertical::Recommended;
use setpoint::engine::vertical_plan::ContainerRecommendation;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::TempDir;
use support::daemon::Daemon;
use support::http::ScrapeTarget;
use support::kube::{self as k, KubeStandIn, Scalable, World};
use support::prometheus::{self as prom, Options, PROMTOOL, Prometheus};

/// Series that the rules or the dashboard name and that other branches of this round add, with
/// the branch. Remove a line when its branch is merged: the test then looks for the series in the
/// daemon's output (and fails while a merged series is still listed here). A series the run of
/// [`daemon_metrics`] does not provoke (a pause, a status write of a ScalingPolicy object) goes
/// into [`registry_only`], set through its Telemetry setter.
const COMING: [(&str, &str); 0] = [];

/// The path the admin server serves the metrics on, and the ServiceMonitor scrapes.
const METRICS_PATH: &str = "/metrics";

const NS: &str = "demo";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn component() -> PathBuf {
    root().join("deploy/components/prometheus-operator")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(path: &Path) -> Value {
    serde_saphyr::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn prometheus_rule() -> Value {
    yaml(&component().join("prometheusrule.yaml"))
}

/// Every alerting rule of the PrometheusRule.
fn alerts(rule: &Value) -> Vec<&Value> {
    rule["spec"]["groups"]
        .as_array()
        .expect("spec.groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules"))
        .collect()
}

/// The `setpoint_*` names in a PromQL expression or a text.
fn metric_names(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
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

/// The series names of an exposition (counters with `_total`, histograms with `_bucket`,
/// `_sum`, `_count`, as Prometheus stores them).
fn exposition_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect()
}

#[test]
fn the_name_readers_find_every_series() {
    assert_eq!(
        metric_names(
            "sum(rate(setpoint_ticks_total{policy=~\"$policy\"}[5m])) / on (namespace) \
             setpoint_policies{state=\"loaded\"} and ALERTS and setpoint_leader"
        ),
        [
            "setpoint_ticks_total",
            "setpoint_policies",
            "setpoint_leader"
        ]
    );
    assert_eq!(
        exposition_names(
            "# TYPE setpoint_leader gauge\nsetpoint_leader 1\n\
             setpoint_query_duration_seconds_bucket{le=\"0.1\",source=\"prometheus\"} 2\n# EOF\n"
        ),
        BTreeSet::from([
            "setpoint_leader".to_owned(),
            "setpoint_query_duration_seconds_bucket".to_owned()
        ])
    );
}

// ----- the PrometheusRule -----

#[test]
fn every_alert_has_a_for_a_severity_and_says_what_to_look_at() {
    let rule = prometheus_rule();
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["kind"], "PrometheusRule");
    let runbook = read(&root().join("docs/operations.md"));
    let mut names = BTreeSet::new();
    for a in alerts(&rule) {
        let name = a["alert"].as_str().expect("only alerting rules");
        assert!(names.insert(name), "{name} twice");
        let pending = a["for"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no for"));
        let pending = humantime::parse_duration(pending).unwrap();
        assert!(
            pending >= Duration::from_secs(60),
            "{name}: for {pending:?}"
        );
        assert!(
            ["critical", "warning", "info"].contains(&a["labels"]["severity"].as_str().unwrap()),
            "{name}: severity"
        );
        for key in ["summary", "description"] {
            let text = a["annotations"][key].as_str().unwrap_or_default();
            assert!(text.len() > 20, "{name}: {key} {text:?}");
        }
        let description = a["annotations"]["description"].as_str().unwrap();
        assert!(
            description.contains("kubectl") || description.contains("/recommendations"),
            "{name}: the description says where to look"
        );
        assert!(
            runbook.contains(&format!("\n### {name}\n")),
            "docs/operations.md has no runbook section `### {name}`"
        );
    }
    // The alerts issue 12 asks for, and the ones for the new series.
    assert_eq!(
        names,
        BTreeSet::from([
            "SetpointPolicyFailing",
            "SetpointNoLeader",
            "SetpointSeveralLeaders",
            "SetpointMetricsMissing",
            "SetpointPinnedAtMax",
            "SetpointPoliciesInvalid",
            "SetpointPolicyPaused",
        ])
    );
    for (name, pending, severity) in [
        ("SetpointPolicyFailing", "10m", "warning"),
        ("SetpointNoLeader", "5m", "critical"),
        ("SetpointPinnedAtMax", "30m", "warning"),
        ("SetpointPolicyPaused", "24h", "info"),
    ] {
        let a = alerts(&rule)
            .into_iter()
            .find(|a| a["alert"] == name)
            .unwrap();
        assert_eq!(a["for"], pending, "{name}");
        assert_eq!(a["labels"]["severity"], severity, "{name}");
    }
}

/// Writes the PrometheusRule's `spec` (the rule groups, as a Prometheus rule file wants them)
/// into `dir` as setpoint-rules.yaml. JSON is YAML, and promtool reads it as such.
fn rule_file(dir: &TempDir) -> PathBuf {
    let spec = &prometheus_rule()["spec"];
    dir.write(
        "setpoint-rules.yaml",
        serde_json::to_string_pretty(spec).unwrap(),
    )
}

fn promtool(dir: &TempDir, args: &[&str]) -> String {
    let out = Command::new(PROMTOOL)
        .args(args)
        .current_dir(dir.path())
        .output()
        .expect("promtool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {}:\n{text}", args.join(" "));
    text
}

#[test]
fn the_rules_pass_promtool_check_rules() {
    if !prom::available("the_rules_pass_promtool_check_rules") {
        return;
    }
    let dir = TempDir::new("rules");
    rule_file(&dir);
    let out = promtool(&dir, &["check", "rules", "setpoint-rules.yaml"]);
    let n = alerts(&prometheus_rule()).len();
    assert!(out.contains(&format!("SUCCESS: {n} rules found")), "{out}");
}

#[test]
fn each_alert_fires_when_it_should_and_not_when_it_should_not() {
    if !prom::available("each_alert_fires_when_it_should_and_not_when_it_should_not") {
        return;
    }
    // Every alert has a case where it fires and one where it does not.
    let tests_path = root().join("tests/alerts.test.yaml");
    let tests = yaml(&tests_path);
    assert_eq!(
        tests["rule_files"],
        serde_json::json!(["setpoint-rules.yaml"])
    );
    let mut fires = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for case in tests["tests"].as_array().unwrap() {
        for t in case["alert_rule_test"].as_array().unwrap() {
            let name = t["alertname"].as_str().unwrap().to_owned();
            let expected = t["exp_alerts"].as_array().unwrap();
            if expected.is_empty() {
                quiet.insert(name);
            } else {
                for e in expected {
                    assert!(
                        e["exp_annotations"]["description"].is_string(),
                        "{name}: the rendered annotations are checked too"
                    );
                }
                fires.insert(name);
            }
        }
    }
    let all: BTreeSet<String> = alerts(&prometheus_rule())
        .iter()
        .map(|a| a["alert"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fires, all, "alerts with a case where they fire");
    assert_eq!(quiet, all, "alerts with a case where they stay quiet");

    let dir = TempDir::new("rules");
    rule_file(&dir);
    dir.write("alerts.test.yaml", read(&tests_path));
    let out = promtool(&dir, &["test", "rules", "alerts.test.yaml"]);
    // promtool only warns about a rule file it cannot find: make sure it read ours.
    assert!(!out.contains("WARNING"), "{out}");
    assert!(out.contains("SUCCESS"), "{out}");
}

// ----- the ServiceMonitor -----

#[test]
fn the_service_monitor_scrapes_the_admin_port_of_the_service() {
    let k = yaml(&component().join("kustomization.yaml"));
    assert_eq!(k["kind"], "Component");
    assert_eq!(
        k["resources"],
        serde_json::json!(["servicemonitor.yaml", "prometheusrule.yaml"])
    );
    let sm = yaml(&component().join("servicemonitor.yaml"));
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(sm["kind"], "ServiceMonitor");
    let service = yaml(&root().join("deploy/base/service.yaml"));
    let endpoints = sm["spec"]["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0]["port"], service["spec"]["ports"][0]["name"]);
    assert_eq!(endpoints[0]["path"], METRICS_PATH);
    assert_eq!(
        service["metadata"]["annotations"]["prometheus.io/path"],
        METRICS_PATH
    );
    // The Service gets its labels from the base's `labels`.
    let base = yaml(&root().join("deploy/base/kustomization.yaml"));
    let labels = &base["labels"][0]["pairs"];
    for (key, value) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&labels[key], value, "the Service has label {key}");
    }
    assert!(
        sm["spec"]["namespaceSelector"].is_null(),
        "the Service in the ServiceMonitor's own namespace"
    );
}

fn kubectl_available() -> bool {
    Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn an_overlay_with_the_component_renders_with_kustomize() {
    if !kubectl_available() {
        eprintln!("skipped: kubectl (with its built-in kustomize) is not on the PATH");
        return;
    }
    let dir = TempDir::new("overlay");
    // kustomize takes relative paths only: from the temporary folder up to / and down again.
    let up = "../".repeat(dir.path().components().count() - 1);
    let relative = |p: PathBuf| format!("{up}{}", p.strip_prefix("/").unwrap().display());
    dir.write(
        "kustomization.yaml",
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
             namespace: shop\nresources: [{:?}]\ncomponents: [{:?}]\n",
            relative(root().join("deploy/overlays/example")),
            relative(component())
        ),
    );
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir.path())
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl kustomize: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let objects: Vec<Value> =
        serde_saphyr::from_multiple(&String::from_utf8(out.stdout).unwrap()).unwrap();
    let find = |kind: &str| {
        objects
            .iter()
            .find(|o| o["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind}"))
    };
    let (sm, rule, service) = (
        find("ServiceMonitor"),
        find("PrometheusRule"),
        find("Service"),
    );
    for o in &objects {
        assert_eq!(o["metadata"]["namespace"], "shop", "{}", o["kind"]);
    }
    assert_eq!(rule["spec"], prometheus_rule()["spec"]);
    for (key, value) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&service["metadata"]["labels"][key], value, "label {key}");
    }
    assert_eq!(
        sm["spec"]["endpoints"][0]["port"],
        service["spec"]["ports"][0]["name"]
    );
}

// ----- the series the rules and the dashboard name -----

/// A policy `name` on Deployment `target`, with `extra` lines in its spec.
fn policy(name: &str, target: &str, extra: &str, replicas: &str, metric: &str) -> String {
    format!(
        "apiVersion: setpoint.dev/v1alpha1\nkind: ScalingPolicy\nmetadata: {{name: {name}}}\n\
         spec:\n  target: {{kind: Deployment, name: {target}}}\n  interval: 1s\n{extra}  \
         horizontal:\n    replicas: {replicas}\n    metrics:\n      - {metric}\n"
    )
}

/// The /metrics of a real `setpoint run` in which policy `web` has no data (the daemon's
/// Prometheus refuses connections), policy `gone` fails (its target does not exist), `broken.yaml`
/// does not validate, and policy `queue` (which may scale to zero) reads a demand of three
/// replicas from a real Prometheus and scales its Deployment from 1 to 3.
fn daemon_metrics() -> String {
    let target = ScrapeTarget::start("# TYPE setpoint_demand gauge\nsetpoint_demand 240\n");
    let server = Prometheus::start(Options {
        scrape_target: Some(target.address()),
        scrape_interval: Duration::from_millis(500),
        ..Options::default()
    });
    let api = KubeStandIn::start(World {
        scalables: vec![
            Scalable::deployment(NS, "web", 2),
            Scalable::deployment(NS, "queue", 1),
            Scalable::deployment(NS, "spare", 1),
        ],
        pods: vec![
            k::ready_pod(NS, "web-0", "web"),
            k::ready_pod(NS, "web-1", "web"),
            k::ready_pod(NS, "queue-0", "queue"),
        ],
        ..World::default()
    });
    let dir = TempDir::new("daemon");
    let kubeconfig = api.kubeconfig(&dir, NS);
    let folder = dir.path().join("policies");
    std::fs::create_dir_all(&folder).unwrap();
    let rps = "{name: rps, prometheus: setpoint_demand, targetPerReplica: 80}";
    let queue = "{name: queue, prometheus: setpoint_demand, targetPerReplica: 80, \
                 activation: {threshold: 0}}";
    let own = format!("  mode: apply\n  prometheus: {{url: {:?}}}\n", server.url());
    for (file, text) in [
        (
            "web.yaml",
            policy("web", "web", "", "{min: 1, max: 5}", rps),
        ),
        (
            "gone.yaml",
            policy("gone", "gone", "", "{min: 1, max: 3}", rps),
        ),
        (
            "queue.yaml",
            policy("queue", "queue", &own, "{min: 0, max: 4}", queue),
        ),
        (
            "broken.yaml",
            "apiVersion: setpoint.dev/v1alpha1\nkind: ScalingPolicy\nmetadata: {name: broken}\n\
             spec: {target: {kind: Deployment, name: web}, nonsense: 1}\n"
                .to_owned(),
        ),
    ] {
        support::daemon::write_policy(&folder, file, &text);
    }
    // A port nothing listens on: every Prometheus query is refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let prometheus = format!("http://{closed}");
    let mut d = Daemon::start(
        env!("CARGO_BIN_EXE_setpoint"),
        &dir,
        "setpoint-0",
        &kubeconfig,
        &[
            "--policies",
            folder.to_str().unwrap(),
            "--prometheus",
            &prometheus,
            "--no-leader-election",
        ],
    );
    let wanted = [
        "setpoint_blind_since_seconds{policy=\"web\"} ",
        "setpoint_failing_since_seconds{policy=\"gone\"} ",
        "setpoint_max_replicas{policy=\"web\"} 5",
        "setpoint_policies{state=\"invalid\"} 1",
        "setpoint_leader 1",
        "setpoint_active{policy=\"queue\"} 1",
        "setpoint_scaling_actions_total{policy=\"queue\",direction=\"up\"} 1",
    ];
    d.wait_for("the series of every state", Duration::from_secs(30), |d| {
        d.get(METRICS_PATH)
            .is_some_and(|(_, m)| wanted.iter().all(|w| m.lines().any(|l| l.starts_with(w))))
    });
    let (code, text) = d.get(METRICS_PATH).unwrap();
    assert_eq!(code, 200);
    assert_eq!(api.world().scalable(NS, "queue").unwrap().replicas, 3);
    // A new version of the failing policy, on a target that exists: its failing series goes, and
    // it decides (without data, so it is blind).
    let fixed = policy("gone", "spare", "", "{min: 1, max: 3}", rps);
    support::daemon::write_policy(&folder, "gone.yaml", &fixed);
    d.wait_for(
        "the fixed policy's failing series gone",
        Duration::from_secs(30),
        |d| {
            d.get(METRICS_PATH).is_some_and(|(_, m)| {
                m.contains("setpoint_blind_since_seconds{policy=\"gone\"}")
                    && !m.contains("setpoint_failing_since_seconds{policy=\"gone\"}")
            })
        },
    );
    d.stop_within(Duration::from_secs(10));
    // The two "since" gauges hold Unix times of this run.
    for series in [wanted[0], wanted[1]] {
        let value: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix(series))
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (support::unix_now() - value).abs() < 120.0,
            "{series}{value}"
        );
    }
    text
}

/// The series the run above does not provoke (a vertical recommendation needs pod usage), from
/// the daemon's registry with them set.
fn registry_only() -> BTreeSet<String> {
    let t = Telemetry::new();
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
    exposition_names(&t.encode())
}

fn dashboard() -> Value {
    let path = root().join("deploy/grafana/setpoint-dashboard.json");
    serde_json::from_str(&read(&path)).expect("the dashboard is JSON")
}

fn panels(d: &Value) -> Vec<&Value> {
    d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| std::iter::once(p).chain(p["panels"].as_array().into_iter().flatten()))
        .collect()
}

/// Every PromQL expression of the dashboard, with the title of its panel.
fn dashboard_queries(d: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in panels(d) {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().expect("expr").to_owned();
            out.push((p["title"].as_str().unwrap().to_owned(), expr));
        }
    }
    out
}

#[test]
fn every_series_the_rules_and_the_dashboard_name_is_one_the_daemon_exposes() {
    if !prom::available("every_series_the_rules_and_the_dashboard_name_is_one_the_daemon_exposes") {
        return;
    }
    let run = exposition_names(&daemon_metrics());
    let registry = registry_only();
    // What only the registry gave is exactly what the run could not provoke.
    let extra: BTreeSet<&str> = registry
        .difference(&run)
        .map(String::as_str)
        .filter(|n| n.starts_with("setpoint_"))
        .collect();
    assert_eq!(
        extra,
        BTreeSet::from(["setpoint_vertical_recommendation"]),
        "series of the run: {run:?}"
    );
    let exposed: BTreeSet<String> = run.union(&registry).cloned().collect();
    let coming: BTreeMap<&str, &str> = COMING.into_iter().collect();
    for (name, branch) in &coming {
        assert!(
            !exposed.contains(*name),
            "{name} is exposed now that branch {branch} is merged: remove it from COMING"
        );
    }

    let mut named = Vec::new();
    for a in alerts(&prometheus_rule()) {
        let alert = a["alert"].as_str().unwrap();
        for text in [
            &a["expr"],
            &a["annotations"]["summary"],
            &a["annotations"]["description"],
        ] {
            for n in metric_names(text.as_str().unwrap()) {
                named.push((format!("alert {alert}"), n));
            }
        }
    }
    let d = dashboard();
    for (title, expr) in dashboard_queries(&d) {
        for n in metric_names(&expr) {
            named.push((format!("panel {title:?}"), n));
        }
    }
    let mut used = BTreeSet::new();
    for (by, name) in &named {
        assert!(
            exposed.contains(name) || coming.contains_key(name.as_str()),
            "{by} names {name}, which the daemon does not expose ({exposed:?})"
        );
        used.insert(name.clone());
    }
    // Every series the daemon exposes is on the dashboard (histograms through _bucket).
    let missing: Vec<&String> = exposed
        .iter()
        .filter(|n| !n.ends_with("_sum") && !n.ends_with("_count") && !used.contains(*n))
        .collect();
    assert!(missing.is_empty(), "not on the dashboard: {missing:?}");
    // And the series coming from other branches are used where this branch put them.
    for name in coming.keys() {
        assert!(used.contains(*name), "{name} is in COMING but unused");
    }
    // Every series exposed is in the metrics reference, where the alerts' descriptions send
    // people (a histogram under its family's name).
    let reference = read(&root().join("docs/reference/metrics-and-events.md"));
    for name in &exposed {
        let family = name.strip_suffix("_bucket").unwrap_or(name);
        if family.ends_with("_sum") || family.ends_with("_count") {
            continue;
        }
        assert!(
            reference.contains(&format!("| `{family}` |")),
            "{family} is not in docs/reference/metrics-and-events.md"
        );
    }
}

// ----- the Grafana dashboard -----

#[test]
fn the_dashboard_is_well_formed_and_has_its_variables() {
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

    let mut ids = BTreeSet::new();
    let mut cells = BTreeSet::new();
    for p in panels(&d) {
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "duplicate id"
        );
        let pos = |k: &str| {
            p["gridPos"][k]
                .as_u64()
                .unwrap_or_else(|| panic!("gridPos.{k} of {}", p["title"]))
        };
        let (x, y, w, h) = (pos("x"), pos("y"), pos("w"), pos("h"));
        assert!(x + w <= 24, "{} is wider than the grid", p["title"]);
        // No two panels overlap (a repeated panel repeats to its right, into its own row).
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(
                    cells.insert((cx, cy)),
                    "{} overlaps another panel",
                    p["title"]
                );
            }
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
            for (open, close) in [('(', ')'), ('{', '}'), ('[', ']')] {
                assert_eq!(
                    expr.matches(open).count(),
                    expr.matches(close).count(),
                    "{expr}"
                );
            }
        }
    }
}

#[test]
fn the_dashboard_filters_by_namespace_and_policy() {
    let d = dashboard();
    // The series with a policy label, from the daemon's documentation table.
    let doc = read(&root().join("docs/reference/metrics-and-events.md"));
    let per_policy: BTreeSet<String> = doc
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells.len() > 4 && cells[3].contains("`policy`"))
                .then(|| cells[1].trim_matches('`').to_owned())
        })
        // Coming with branch pause (which documents it).
        .chain(["setpoint_paused".to_owned()])
        .collect();
    assert!(
        per_policy.contains("setpoint_failing_since_seconds"),
        "{per_policy:?}"
    );
    for (title, expr) in dashboard_queries(&d) {
        for name in metric_names(&expr) {
            assert!(
                expr.contains(&format!("{name}{{namespace=~\"$namespace\"")),
                "{title}: {name} is not filtered by $namespace in {expr}"
            );
            if per_policy.contains(&name) {
                assert!(
                    expr.contains("policy=~\"$policy\""),
                    "{title}: {name} is not filtered by $policy in {expr}"
                );
            }
        }
    }
}
