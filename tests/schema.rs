//! The editors' JSON Schema (policies/scalingpolicy.schema.json) knows every field the parser
//! accepts, and the examples use only fields it knows.

use serde_json::Value;
use std::path::Path;

/// Every field, set.
const KITCHEN_SINK: &str = "\
apiVersion: setpoint.dev/v1alpha1
kind: ScalingPolicy
metadata:
  name: all-fields
  namespace: shop
  labels: {team: a}
  annotations: {note: b}
spec:
  target: {apiVersion: apps/v1, kind: StatefulSet, name: db}
  mode: recommend
  interval: 30s
  prometheus:
    url: https://thanos.monitoring:9090/tenant-a
    bearerTokenFile: /var/run/secrets/token
    tls: {caFile: /ca.crt, certFile: /c.crt, keyFile: /c.key}
    headers: {X-Scope-OrgID: tenant-a}
    timeout: 5s
    retry: {budget: 20s, initialBackoff: 50ms, maxBackoff: 2s}
  horizontal:
    preset: none
    replicas: {min: 2, max: 10}
    metrics:
      - {name: rps, prometheus: q1, targetPerReplica: 80, activation: {threshold: 5}}
      - {name: cpu, prometheus: q2, utilization: 0.6, sum: true}
      - {name: pod-cpu, resource: {name: cpu, container: app}, utilization: 0.7}
      - {name: pod-rps, pods: {metric: http_requests_total, port: 8080, path: /metrics, labels: {code: \"200\"}, kind: counter}, targetPerReplica: 50}
    policy: {threshold: {}}
    tolerance: {up: 0.05, down: 0.2}
    scaleUp: {stabilization: 0s, cooldown: 30s, select: max, limits: [{pods: 4, per: 15s}, {percent: 100, per: 15s}]}
    scaleDown: {stabilization: 5m, cooldown: 1m, select: min, limits: [{percent: 10, per: 1m}]}
    onMetricError: {fallback: {replicas: 4, after: 3}}
    idle: 10m
    schedules:
      - {name: office, cron: \"0 8 * * 1-5\", duration: 10h, timezone: Europe/Berlin, min: 4}
      - {name: launch, cron: \"0 9 1 6 *\", duration: 2h, timezone: America/New_York, replicas: 8}
  vertical:
    preset: vpa
    containers: [db]
    resources: [memory]
    cpuPercentile: 0.9
    memoryPercentile: 0.95
    bounds: {lower: 0.5, upper: 0.98}
    margin: 0.15
    halfLife: 3h
    memoryPeakWindow: 24h
    min: {cpu: 25m, memory: 64Mi}
    max: {cpu: \"8\", memory: 16Gi}
    update: inPlace
    limits: requestsOnly
    minChange: {difference: 0.25, after: 3h}
    resize: {deferredTimeout: 5m, fallback: rollout, allowRestart: false}
    usage:
      cpu: sum(rate(container_cpu_usage_seconds_total{namespace=\"$namespace\", pod=\"$pod\", container=\"$container\"}[2m]))
      memory: max(container_memory_rss{pod=\"$pod\", container=\"$container\"})
";

fn schema() -> Value {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/scalingpolicy.schema.json"),
    )
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn resolve<'a>(root: &'a Value, mut s: &'a Value) -> &'a Value {
    while let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let name = r.strip_prefix("#/$defs/").expect("local refs only");
        s = &root["$defs"][name];
    }
    s
}

/// Paths of instance keys the schema does not declare.
fn unknown_keys(root: &Value, schema: &Value, v: &Value, path: &str, out: &mut Vec<String>) {
    let s = resolve(root, schema);
    match v {
        Value::Object(map) => {
            let branches: Vec<&Value> = match s.get("oneOf").and_then(Value::as_array) {
                Some(b) if s.get("properties").is_none() => b
                    .iter()
                    .map(|b| resolve(root, b))
                    .filter(|b| b.get("properties").is_some())
                    .collect(),
                _ => vec![s],
            };
            let Some(s) = branches.first() else {
                out.push(format!("{path}: an object where the schema has none"));
                return;
            };
            let props = s.get("properties").and_then(Value::as_object);
            for (k, child) in map {
                match props.and_then(|p| p.get(k)) {
                    Some(cs) => unknown_keys(root, cs, child, &format!("{path}.{k}"), out),
                    None => match s.get("additionalProperties") {
                        Some(Value::Bool(false)) | None => out.push(format!("{path}.{k}")),
                        Some(extra) => {
                            unknown_keys(root, extra, child, &format!("{path}.{k}"), out)
                        }
                    },
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                unknown_keys(root, &s["items"], item, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn check(text: &str) -> Vec<String> {
    let root = schema();
    let v: Value = serde_saphyr::from_str(text).unwrap();
    let mut out = Vec::new();
    unknown_keys(&root, &root, &v, "", &mut out);
    out
}

#[test]
fn the_kitchen_sink_parses_and_the_schema_knows_every_field() {
    setpoint::policy::parse(KITCHEN_SINK, Path::new("sink.yaml")).unwrap();
    assert_eq!(check(KITCHEN_SINK), Vec::<String>::new());
}

#[test]
fn the_walker_does_catch_unknown_fields() {
    let t = KITCHEN_SINK.replace("cooldown: 1m,", "cooldown: 1m, jitter: 2s,");
    assert_eq!(
        check(&t),
        vec![".spec.horizontal.scaleDown.jitter".to_string()]
    );
}

#[test]
fn the_examples_use_only_known_fields() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/examples");
    for f in setpoint::policy::files(&dir).unwrap() {
        let text = std::fs::read_to_string(&f).unwrap();
        assert_eq!(check(&text), Vec::<String>::new(), "{}", f.display());
    }
}
