//! Every kind of bad policy file gets an error naming file, line, column and field, and saying
//! what was expected.

use setpoint::policy::{self, PolicyError, Problem};
use std::path::Path;

const GOOD: &str = "\
apiVersion: setpoint.dev/v1alpha1
kind: ScalingPolicy
metadata:
  name: web
spec:
  target: {kind: Deployment, name: web}
  interval: 15s
  horizontal:
    replicas: {min: 2, max: 10}
    metrics:
      - name: rps
        prometheus: sum(rate(http_requests_total[1m]))
        targetPerReplica: 80
    scaleDown:
      stabilization: 5m
";

fn problems(text: &str) -> Vec<Problem> {
    match policy::parse(text, Path::new("p.yaml")) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(PolicyError::Invalid { problems, .. }) => problems,
        Err(e) => panic!("unexpected error {e}"),
    }
}

/// Asserts a single problem at line:column, with the field and a message fragment.
fn expect(text: &str, line: u32, column: u32, field: &str, msg: &str) {
    let p = problems(text);
    assert!(
        p.iter().any(|p| p.line == line
            && p.column == column
            && p.field == field
            && p.message.contains(msg)),
        "expected {line}:{column} {field}: ...{msg}... in {p:#?}"
    );
}

#[test]
fn the_good_file_parses_with_hpa_defaults() {
    let p = policy::parse(GOOD, Path::new("p.yaml")).unwrap();
    assert_eq!(p.name, "web");
    assert_eq!(p.interval, 15.0);
    assert_eq!(p.target.api_version, "apps/v1");
    let g = &p.horizontal.as_ref().unwrap().governor;
    assert_eq!(
        (g.min, g.max, g.tolerance_up, g.tolerance_down),
        (2, 10, 0.1, 0.1)
    );
    assert_eq!(g.scale_down.stabilization, 300.0);
    assert_eq!(g.scale_up.limits.len(), 2);
    assert_eq!(
        p.queries[0].promql(),
        Some("sum(rate(http_requests_total[1m]))")
    );
    assert_eq!(p.prometheus, None);
}

#[test]
fn unknown_field() {
    let t = GOOD.replace(
        "        targetPerReplica: 80\n",
        "        targetPerReplica: 80\n        step: 1m\n",
    );
    expect(
        &t,
        14,
        9,
        "spec.horizontal.metrics[0].step",
        "unknown field `step`, expected one of",
    );
}

#[test]
fn wrong_type() {
    let t = GOOD.replace("min: 2", "min: two");
    expect(
        &t,
        9,
        21,
        "spec.horizontal.replicas.min",
        "expected a whole number",
    );
    let t = GOOD.replace("targetPerReplica: 80", "targetPerReplica: [80]");
    expect(
        &t,
        13,
        27,
        "spec.horizontal.metrics[0].targetPerReplica",
        "",
    );
}

#[test]
fn min_greater_than_max() {
    let t = GOOD.replace("min: 2", "min: 12");
    expect(
        &t,
        9,
        15,
        "spec.horizontal.replicas",
        "min (12) is greater than max (10)",
    );
}

#[test]
fn negative_and_unitless_durations() {
    let t = GOOD.replace("stabilization: 5m", "stabilization: -5m");
    expect(
        &t,
        15,
        22,
        "spec.horizontal.scaleDown.stabilization",
        "negative duration \"-5m\"",
    );
    let t = GOOD.replace("stabilization: 5m", "stabilization: 300");
    expect(
        &t,
        15,
        22,
        "spec.horizontal.scaleDown.stabilization",
        "no unit: expected a duration such as \"300s\"",
    );
    let t = GOOD.replace("interval: 15s", "interval: soon");
    expect(&t, 7, 13, "spec.interval", "invalid duration \"soon\"");
    let t = GOOD.replace("interval: 15s", "interval: 0s");
    expect(&t, 7, 13, "spec.interval", "out of range");
}

#[test]
fn unknown_policy_kind() {
    let t = GOOD.replace("    scaleDown:", "    policy: {magic: {}}\n    scaleDown:");
    expect(
        &t,
        14,
        14,
        "spec.horizontal.policy",
        "unknown variant `magic`, expected one of threshold",
    );
}

#[test]
fn empty_query_and_missing_target() {
    let t = GOOD.replace(
        "prometheus: sum(rate(http_requests_total[1m]))",
        "prometheus: \"  \"",
    );
    expect(
        &t,
        12,
        21,
        "spec.horizontal.metrics[0].prometheus",
        "empty query",
    );
    let t = GOOD.replace("        targetPerReplica: 80\n", "");
    expect(
        &t,
        11,
        9,
        "spec.horizontal.metrics[0]",
        "missing target: expected targetPerReplica or utilization",
    );
    let t = GOOD.replace(
        "targetPerReplica: 80",
        "targetPerReplica: 80\n        utilization: 0.5",
    );
    expect(&t, 11, 9, "spec.horizontal.metrics[0]", "not both");
    let t = GOOD.replace("targetPerReplica: 80", "targetPerReplica: -1");
    expect(&t, 11, 9, "spec.horizontal.metrics[0]", "positive number");
}

#[test]
fn missing_required_fields() {
    let t = GOOD.replace("  name: web\n", "  labels: {team: a}\n");
    let p = problems(&t);
    assert!(p[0].message.contains("missing field `name`"), "{p:?}");
    assert_eq!(p[0].field, "metadata");
    let t = GOOD.replace("    replicas: {min: 2, max: 10}\n", "");
    assert!(problems(&t)[0].message.contains("missing field `replicas`"));
}

#[test]
fn wrong_api_version_kind_and_name() {
    let t = GOOD
        .replace("setpoint.dev/v1alpha1", "autoscaling/v2")
        .replace("kind: ScalingPolicy", "kind: HorizontalPodAutoscaler")
        .replace("name: web\n", "name: Web_1\n");
    let p = problems(&t);
    assert_eq!(
        p.len(),
        3,
        "all problems are reported, not only the first: {p:#?}"
    );
    expect(
        &t,
        1,
        13,
        "apiVersion",
        "expected \"setpoint.dev/v1alpha1\"",
    );
    expect(&t, 2, 7, "kind", "expected \"ScalingPolicy\"");
    expect(&t, 4, 9, "metadata.name", "not a valid name");
}

#[test]
fn the_action_budget_is_read_and_checked() {
    let t = GOOD.replace(
        "      stabilization: 5m\n",
        "      stabilization: 5m\n      adaptive: {actionsVsHpa: 0.9}\n",
    );
    let p = policy::parse(&t, Path::new("p.yaml")).unwrap();
    let g = &p.horizontal.unwrap().governor;
    assert_eq!(g.budget.map(|b| b.share), Some(0.9));
    assert_eq!(g.scale_down.stabilization, 300.0, "the ladder's first rung");
    let t = GOOD.replace(
        "      stabilization: 5m\n",
        "      stabilization: 5m\n      adaptive: {actionsVsHpa: 1.5}\n",
    );
    expect(
        &t,
        16,
        17,
        "spec.horizontal.scaleDown.adaptive.actionsVsHpa",
        "1.5 is out of range",
    );
    let t = GOOD.replace(
        "    scaleDown:",
        "    scaleUp: {adaptive: {actionsVsHpa: 0.9}}\n    scaleDown:",
    );
    expect(
        &t,
        14,
        25,
        "spec.horizontal.scaleUp.adaptive",
        "scaleDown only",
    );
}

#[test]
fn limits_tolerance_and_fallback() {
    let t = GOOD.replace(
        "      stabilization: 5m\n",
        "      stabilization: 5m\n      limits: [{pods: 2, percent: 5, per: 1m}, {per: 1m}, {pods: 1, per: 2h}]\n",
    );
    expect(
        &t,
        16,
        16,
        "spec.horizontal.scaleDown.limits[0]",
        "either pods or percent, not both",
    );
    expect(
        &t,
        16,
        48,
        "spec.horizontal.scaleDown.limits[1]",
        "missing limit",
    );
    expect(
        &t,
        16,
        59,
        "spec.horizontal.scaleDown.limits[2].per",
        "between 1s and 30m",
    );
    let t = GOOD.replace(
        "    scaleDown:",
        "    tolerance: {up: 0.1, down: 1.5}\n    scaleDown:",
    );
    expect(
        &t,
        14,
        16,
        "spec.horizontal.tolerance",
        "1.5 is out of range",
    );
    let t = GOOD.replace(
        "    scaleDown:",
        "    onMetricError: {fallback: {replicas: 50}}\n    scaleDown:",
    );
    expect(
        &t,
        14,
        20,
        "spec.horizontal.onMetricError.fallback.replicas",
        "outside replicas [2, 10]",
    );
    let t = GOOD.replace("    scaleDown:", "    onMetricError: retry\n    scaleDown:");
    expect(
        &t,
        14,
        20,
        "spec.horizontal.onMetricError",
        "unknown variant `retry`",
    );
}

#[test]
fn yaml_syntax_errors_have_a_location() {
    let p = problems("apiVersion: [setpoint\nkind: x\n");
    assert!(p[0].line >= 1 && p[0].column >= 1, "{p:?}");
    let p = problems("");
    assert_eq!(p.len(), 1);
    let p = problems("- just\n- a list\n");
    assert!(p[0].message.contains("expected"), "{p:?}");
}

#[test]
fn rendered_error_is_file_line_column_field_message() {
    let t = GOOD.replace("min: 2", "min: 12");
    let e = policy::parse(&t, Path::new("policies/web.yaml"))
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "policies/web.yaml:9:15: spec.horizontal.replicas: min (12) is greater than max (10)"
    );
}

#[test]
fn pid_gains_are_checked() {
    let t = GOOD.replace(
        "    scaleDown:",
        "    policy: {pid: {kp: 0.5, ki: 0}}\n    scaleDown:",
    );
    expect(
        &t,
        14,
        19,
        "spec.horizontal.policy.pid.ki",
        "must be above 0",
    );
    let t = GOOD.replace(
        "    scaleDown:",
        "    policy: {pid: {kp: -1, ki: 0.1, derivativeFilter: 2h}}\n    scaleDown:",
    );
    expect(
        &t,
        14,
        19,
        "spec.horizontal.policy.pid.kp",
        "-1 is out of range",
    );
    expect(
        &t,
        14,
        55,
        "spec.horizontal.policy.pid.derivativeFilter",
        "out of range",
    );
    let t = GOOD.replace(
        "    scaleDown:",
        "    policy: {pid: {kp: 1, ki: 0.1, gain: 2}}\n    scaleDown:",
    );
    expect(
        &t,
        14,
        36,
        "spec.horizontal.policy.pid.gain",
        "unknown field `gain`",
    );
}

#[test]
fn predictive_settings_are_checked() {
    let t = GOOD.replace(
        "    scaleDown:",
        "    policy: {predictive: {quantile: 1.5, season: weekly, history: 1d}}\n    scaleDown:",
    );
    expect(
        &t,
        14,
        50,
        "spec.horizontal.policy.predictive.season",
        "(or \"auto\" to detect the season)",
    );
    let t = GOOD.replace(
        "    scaleDown:",
        "    policy: {predictive: {quantile: 1.5, season: 1d, history: 2d}}\n    scaleDown:",
    );
    let p = problems(&t);
    assert!(
        p.iter()
            .any(|p| p.field == "spec.horizontal.policy.predictive.quantile"
                && p.message.contains("1.5 is out of range")),
        "{p:#?}"
    );
    assert!(
        p.iter()
            .any(|p| p.field == "spec.horizontal.policy.predictive.season"
                && p.message.contains("a third of the history")),
        "{p:#?}"
    );
    let ok = GOOD.replace(
        "    scaleDown:",
        "    policy: {predictive: {season: auto}}\n    scaleDown:",
    );
    policy::parse(&ok, Path::new("p.yaml")).unwrap();
    // Quantile sizing's calibration step: 0 to 0.1.
    let t = GOOD.replace(
        "    scaleDown:",
        "    policy: {predictive: {capacityPerReplica: 80, calibration: 0.5}}\n    scaleDown:",
    );
    expect(
        &t,
        14,
        64,
        "spec.horizontal.policy.predictive.calibration",
        "0.5 is out of range: expected 0 <= calibration <= 0.1",
    );
    let off = t.replace("calibration: 0.5", "calibration: 0");
    policy::parse(&off, Path::new("p.yaml")).unwrap();
}

#[test]
fn metric_sources_are_one_of_three() {
    let t = GOOD.replace(
        "        targetPerReplica: 80\n",
        "        targetPerReplica: 80\n        resource: {name: cpu}\n",
    );
    expect(
        &t,
        11,
        9,
        "spec.horizontal.metrics[0]",
        "give one source, not prometheus and resource",
    );
    let t = GOOD.replace(
        "        prometheus: sum(rate(http_requests_total[1m]))\n",
        "",
    );
    expect(
        &t,
        11,
        9,
        "spec.horizontal.metrics[0]",
        "missing source: expected prometheus, resource or pods",
    );
    let t = GOOD.replace(
        "        prometheus: sum(rate(http_requests_total[1m]))\n",
        "        resource: {name: cpu}\n        sum: true\n",
    );
    expect(
        &t,
        13,
        14,
        "spec.horizontal.metrics[0].sum",
        "sum goes with a prometheus query only",
    );
    let t = GOOD.replace(
        "        prometheus: sum(rate(http_requests_total[1m]))\n",
        "        resource: {name: disk}\n",
    );
    expect(
        &t,
        12,
        26,
        "spec.horizontal.metrics[0].resource.name",
        "unknown variant `disk`, expected one of cpu, memory",
    );
}

#[test]
fn pods_metrics_are_checked() {
    let with = |pods: &str| {
        GOOD.replace(
            "        prometheus: sum(rate(http_requests_total[1m]))\n",
            &format!("        pods: {pods}\n"),
        )
    };
    let good = with("{metric: http_requests_total, port: 8080}");
    let p = policy::parse(&good, Path::new("p.yaml")).unwrap();
    match &p.queries[0] {
        policy::MetricQuery::Pods(q) => {
            assert_eq!(
                (q.metric.as_str(), q.port, q.path.as_str()),
                ("http_requests_total", 8080, "/metrics")
            );
            assert!(q.labels.is_empty());
        }
        other => panic!("{other:?}"),
    }
    expect(
        &with("{metric: 9lives, port: 8080}"),
        12,
        15,
        "spec.horizontal.metrics[0].pods.metric",
        "\"9lives\" is not a metric name",
    );
    expect(
        &with("{metric: up, port: 0}"),
        12,
        15,
        "spec.horizontal.metrics[0].pods.port",
        "expected a port from 1 to 65535",
    );
    expect(
        &with("{metric: up, port: 70000}"),
        12,
        34,
        "spec.horizontal.metrics[0].pods.port",
        "",
    );
    expect(
        &with("{metric: up, port: 80, path: metrics}"),
        12,
        15,
        "spec.horizontal.metrics[0].pods.path",
        "not an absolute path",
    );
    expect(
        &with("{metric: up, port: 80, kind: histogram}"),
        12,
        44,
        "spec.horizontal.metrics[0].pods.kind",
        "unknown variant `histogram`, expected one of counter, gauge",
    );
}

#[test]
fn a_policy_may_name_its_prometheus() {
    let with = |prom: &str| {
        GOOD.replace(
            "  interval: 15s\n",
            &format!("  interval: 15s\n  prometheus: {prom}\n"),
        )
    };
    let p = policy::parse(
        &with("{url: \"http://thanos:9090/tenant-a\", timeout: 3s, headers: {X-Scope-OrgID: a}}"),
        Path::new("p.yaml"),
    )
    .unwrap();
    let c = p.prometheus.unwrap();
    assert_eq!(c.url, "http://thanos:9090/tenant-a");
    assert_eq!(c.timeout, std::time::Duration::from_secs(3));
    expect(
        &with("{url: \"ftp://x\"}"),
        8,
        15,
        "spec.prometheus",
        "expected an http:// or https:// URL",
    );
    expect(
        &with("{url: \"http://x\", timeout: 3}"),
        8,
        42,
        "spec.prometheus.timeout",
        "no unit",
    );
    expect(
        &with("{url: \"http://x\", tiemout: 3s}"),
        8,
        33,
        "spec.prometheus.tiemout",
        "unknown field `tiemout`",
    );
    expect(
        &with(
            "{url: \"http://x\", bearerTokenFile: /t, basicAuth: {username: u, passwordFile: /p}}",
        ),
        8,
        15,
        "spec.prometheus",
        "exclude each other",
    );
}

#[test]
fn sum_is_read() {
    let t = GOOD.replace(
        "        targetPerReplica: 80\n",
        "        targetPerReplica: 80\n        sum: true\n",
    );
    let p = policy::parse(&t, Path::new("p.yaml")).unwrap();
    assert_eq!(
        p.queries[0],
        policy::MetricQuery::Prometheus {
            query: "sum(rate(http_requests_total[1m]))".into(),
            sum: true
        }
    );
}

/// GOOD with `min: 0` and `extra` lines appended to `horizontal`.
fn zero(metric: &str, extra: &str) -> String {
    format!(
        "apiVersion: setpoint.dev/v1alpha1\nkind: ScalingPolicy\nmetadata:\n  name: q\nspec:\n  \
         target: {{kind: Deployment, name: q}}\n  horizontal:\n    replicas: {{min: 0, max: 10}}\n    \
         metrics:\n      - {metric}\n{extra}"
    )
}

#[test]
fn min_zero_is_allowed_for_prometheus_totals_with_activation_and_idle() {
    let text = zero(
        "{name: queue, prometheus: q, targetPerReplica: 10, activation: {threshold: 2}}",
        "    idle: 10m\n",
    );
    let p = policy::parse(&text, Path::new("q.yaml")).unwrap();
    let g = &p.horizontal.as_ref().unwrap().governor;
    assert_eq!(g.min, 0);
    assert_eq!(g.scale_to_zero.threshold("queue"), 2.0);
    assert_eq!(g.scale_to_zero.idle, 600.0);
    // Defaults: threshold 0, idle 5m.
    let p = policy::parse(
        &zero("{prometheus: q, targetPerReplica: 10}", ""),
        Path::new("q.yaml"),
    )
    .unwrap();
    let g = &p.horizontal.as_ref().unwrap().governor;
    assert_eq!(g.scale_to_zero.threshold("metric-1"), 0.0);
    assert_eq!(g.scale_to_zero.idle, 300.0);
}

#[test]
fn min_zero_refuses_metrics_that_need_pods_and_says_what_to_use() {
    for (metric, why) in [
        ("{prometheus: q, utilization: 0.7}", "utilization per pod"),
        (
            "{resource: {name: cpu}, utilization: 0.7}",
            "metrics.k8s.io",
        ),
        (
            "{pods: {metric: jobs_total, port: 8080}, targetPerReplica: 5}",
            "scraped from the target's pods",
        ),
    ] {
        let text = zero(metric, "");
        expect(&text, 10, 9, "spec.horizontal.metrics[0]", why);
        expect(
            &text,
            10,
            9,
            "spec.horizontal.metrics[0]",
            "use a prometheus query with targetPerReplica",
        );
    }
}

#[test]
fn bad_activation_and_idle_are_pointed_at() {
    let text = zero(
        "{prometheus: q, targetPerReplica: 10, activation: {threshold: -1}}",
        "    idle: 2d\n",
    );
    expect(
        &text,
        10,
        71,
        "spec.horizontal.metrics[0].activation.threshold",
        "expected a number of 0 or more",
    );
    expect(&text, 11, 11, "spec.horizontal.idle", "out of range");
}

/// GOOD with `schedules` (lines indented under `horizontal`).
fn scheduled(schedules: &str) -> String {
    format!("{GOOD}    schedules:\n{schedules}")
}

#[test]
fn schedules_parse_with_their_zone_and_capacity() {
    let text = scheduled(
        "      - {name: office, cron: \"0 8 * * 1-5\", duration: 10h, timezone: Europe/Berlin, min: 4}\n      \
         - {name: launch, cron: \"0 9 1 6 *\", duration: 2h, timezone: UTC, replicas: 8}\n",
    );
    let p = policy::parse(&text, Path::new("p.yaml")).unwrap();
    let s = &p.horizontal.as_ref().unwrap().governor.schedules;
    assert_eq!(s.len(), 2);
    assert_eq!(
        (s[0].name.as_str(), s[0].duration, s[0].timezone.as_str()),
        ("office", 36000.0, "Europe/Berlin")
    );
}

#[test]
fn bad_schedules_name_the_field_at_its_line_and_column() {
    let line = 17;
    let cases = [
        (
            "{name: a, cron: \"0 8 * *\", duration: 1h, timezone: UTC, min: 2}",
            25,
            "spec.horizontal.schedules[0].cron",
            "expected 5 fields",
        ),
        (
            "{name: a, cron: \"0 8 * * 1-9\", duration: 1h, timezone: UTC, min: 2}",
            25,
            "spec.horizontal.schedules[0].cron",
            "invalid cron expression",
        ),
        (
            "{name: a, cron: \"0 8 * * *\", duration: 1h, timezone: Europe/Berlinn, min: 2}",
            62,
            "spec.horizontal.schedules[0].timezone",
            "unknown time zone \"Europe/Berlinn\"",
        ),
        (
            "{name: a, cron: \"0 8 * * *\", duration: 1h, timezone: UTC, min: 20}",
            72,
            "spec.horizontal.schedules[0].min",
            "expected 1 to replicas.max (10)",
        ),
        (
            "{name: a, cron: \"0 8 * * *\", duration: 1h, timezone: UTC, min: 2, replicas: 3}",
            9,
            "spec.horizontal.schedules[0]",
            "not both",
        ),
        (
            "{name: a, cron: \"0 8 * * *\", duration: 1h, timezone: UTC}",
            9,
            "spec.horizontal.schedules[0]",
            "expected min (a floor) or replicas (a fixed count)",
        ),
        (
            "{name: a, cron: \"0 8 * * *\", duration: 10s, timezone: UTC, min: 2}",
            48,
            "spec.horizontal.schedules[0].duration",
            "out of range",
        ),
    ];
    for (s, column, field, msg) in cases {
        expect(
            &scheduled(&format!("      - {s}\n")),
            line,
            column,
            field,
            msg,
        );
    }
}
