//! The ScalingPolicy CustomResourceDefinition, generated from the policy file's model: its spec
//! schema is [`Spec`]'s (the policy file's spec), made structural (what a Kubernetes API server requires of a
//! CRD schema, and what lets it prune unknown fields and refuse wrong types and enum values at
//! `kubectl apply`).
//!
//! The schema comes from the model's `schemars` derives ([`schemars::SchemaGenerator`],
//! subschemas inlined: no `$ref`), then [`structural`] rewrites what a structural schema does
//! not allow, as kube-core's `StructuralSchemaRewriter` does for kube's `CustomResource`
//! derive (this room names no kube-rs type, so the rewrite is here): enum variants written as
//! `oneOf`/`const` become one `enum`, the object variants of an externally tagged enum become
//! properties of one object (their `oneOf` keeps only `required`), an optional field's
//! `anyOf [T, null]` becomes `T`, and `additionalProperties: false`, `default`, `format`,
//! `nullable`, `title` and `$schema` are dropped (the server prunes unknown fields without
//! being told, and the daemon fills defaults as it does for files). The fields of two shapes
//! (`tolerance`, `onMetricError`) accept any value there, and `setpoint` validates them.
//!
//! `setpoint crd` prints [`definition`] as YAML ([`yaml`]); deploy/crd/scalingpolicy.yaml is
//! that output, and a test holds it to it.

use super::model::Spec;
use super::status::PolicyStatus;
use super::{API_VERSION, KIND};
use serde_json::{Map, Value, json};

/// The API group.
pub const GROUP: &str = "setpoint.dev";
/// The version served and stored.
pub const VERSION: &str = "v1alpha1";
/// The plural resource name.
pub const PLURAL: &str = "scalingpolicies";

/// `scalingpolicies.setpoint.dev`, as a `CustomResourceDefinition` (apiextensions.k8s.io/v1).
pub fn definition() -> Value {
    debug_assert_eq!(API_VERSION, format!("{GROUP}/{VERSION}"));
    let column = |name: &str, kind: &str, path: &str, description: &str| json!({"name": name, "type": kind, "jsonPath": path, "description": description});
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{PLURAL}.{GROUP}")},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": format!("{KIND}List"),
                "plural": PLURAL,
                "singular": KIND.to_lowercase(),
                "shortNames": ["sp"],
            },
            "scope": "Namespaced",
            "versions": [{
                "name": VERSION,
                "served": true,
                "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    column("Target", "string", ".spec.target.name", "The scale target's name."),
                    column("Mode", "string", ".spec.mode", "apply, or recommend (empty: apply)."),
                    column("Min", "integer", ".spec.horizontal.replicas.min", "Fewest replicas."),
                    column("Max", "integer", ".spec.horizontal.replicas.max", "Most replicas."),
                    column("Current", "integer", ".status.currentReplicas", "Replicas now."),
                    column("Desired", "integer", ".status.desiredReplicas",
                        "Replicas decided (recommended, in recommend mode or a dry run)."),
                    column("Ready", "string", ".status.conditions[?(@.type==\"Ready\")].status",
                        "Whether the policy runs."),
                    column("Paused", "string", ".status.paused", "The pause in force, if any."),
                    column("Last Action", "date", ".status.lastScaleTime",
                        "When the target was last scaled."),
                    column("Age", "date", ".metadata.creationTimestamp", ""),
                ],
                "schema": {"openAPIV3Schema": {
                    "description": "A setpoint scaling policy: what to scale, on which metrics, \
                                    within which bounds. The spec is the policy file's spec.",
                    "type": "object",
                    "required": ["spec"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": spec_schema(),
                        "status": status_schema(),
                    },
                }},
            }],
        },
    })
}

/// The structural schema of `spec`.
pub fn spec_schema() -> Value {
    schema_of::<Spec>()
}

/// The structural schema of `status` ([`PolicyStatus`]: written by the daemon that holds the
/// Lease).
pub fn status_schema() -> Value {
    schema_of::<PolicyStatus>()
}

/// The structural schema of `T`: subschemas inlined (no `$ref`), then [`structural`].
fn schema_of<T: schemars::JsonSchema>() -> Value {
    let mut settings = schemars::generate::SchemaSettings::openapi3();
    settings.inline_subschemas = true;
    let mut value = settings
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value();
    structural(&mut value);
    value
}

/// [`definition`] as YAML, with a header saying where it comes from.
pub fn yaml() -> String {
    let body = serde_saphyr::to_string(&definition()).expect("a JSON value serializes as YAML");
    format!(
        "# The ScalingPolicy CustomResourceDefinition, generated from setpoint's policy model by\n\
         # `setpoint crd`: do not edit (regenerate it). Cluster-scoped: applied once per cluster by\n\
         # an admin (kubectl apply -k deploy/crd).\n{body}"
    )
}

/// Rewrites a schemars schema in place into a structural one (see the module docs).
pub fn structural(schema: &mut Value) {
    let Some(map) = schema.as_object_mut() else {
        return;
    };
    for key in [
        "$schema",
        "title",
        "default",
        "format",
        "nullable",
        "definitions",
        "$defs",
    ] {
        map.remove(key);
    }
    if map.get("additionalProperties") == Some(&Value::Bool(false)) {
        map.remove("additionalProperties");
    }
    if let Some(c) = map.remove("const") {
        map.insert("enum".into(), json!([c]));
    }
    // Option<T>: anyOf [T, {nullable}] or [T, {type: null}].
    if let Some(Value::Array(any)) = map.get("anyOf")
        && any.len() == 2
        && is_null(&any[1])
    {
        let first = any[0].clone();
        map.remove("anyOf");
        if let Value::Object(f) = first {
            for (k, v) in f {
                map.entry(k).or_insert(v);
            }
        }
        return structural(schema);
    }
    if let Some(items) = map.get_mut("items") {
        structural(items);
    }
    if let Some(Value::Object(props)) = map.get_mut("properties") {
        for child in props.values_mut() {
            structural(child);
        }
    }
    if let Some(extra @ Value::Object(_)) = map.get_mut("additionalProperties") {
        structural(extra);
    }
    if let Some(Value::Array(variants)) = map.remove("oneOf") {
        let mut kept = Vec::new();
        for mut v in variants {
            structural(&mut v);
            let Value::Object(mut v) = v else { continue };
            if let Some(Value::Array(values)) = v.remove("enum") {
                // A unit variant: its value joins the enum.
                merge_type(map, v.remove("type"));
                let all = map.entry("enum").or_insert_with(|| json!([]));
                if let Value::Array(all) = all {
                    all.extend(values);
                }
            } else if let Some(Value::Object(props)) = v.remove("properties") {
                // A variant with fields: its properties join the object's, its `required` says
                // which one it is.
                merge_type(map, v.remove("type"));
                let all = map.entry("properties").or_insert_with(|| json!({}));
                if let Value::Object(all) = all {
                    all.extend(props);
                }
                let mut only: Map<String, Value> = Map::new();
                if let Some(r) = v.remove("required") {
                    only.insert("required".into(), r);
                }
                kept.push(Value::Object(only));
            }
        }
        if !kept.is_empty() {
            map.insert("oneOf".into(), Value::Array(kept));
        }
    }
}

fn is_null(v: &Value) -> bool {
    v.get("type") == Some(&json!("null")) || v.get("enum") == Some(&json!([null]))
}

fn merge_type(map: &mut Map<String, Value>, t: Option<Value>) {
    if let Some(t) = t {
        map.entry("type").or_insert(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where a schema breaks the rules of a structural schema (apiextensions' validation, the
    /// part this generator could get wrong), one line each.
    fn not_structural(s: &Value, path: &str, out: &mut Vec<String>) {
        let Some(m) = s.as_object() else {
            out.push(format!("{path}: not an object"));
            return;
        };
        let open = m.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true))
            || m.get("x-kubernetes-int-or-string") == Some(&json!(true));
        if !m.contains_key("type") && !open {
            out.push(format!("{path}: no type"));
        }
        for k in ["$ref", "$schema", "definitions", "$defs", "const", "anyOf"] {
            if m.contains_key(k) {
                out.push(format!("{path}: {k}"));
            }
        }
        if m.get("type").is_some_and(|t| !t.is_string()) {
            out.push(format!("{path}: type is not one string"));
        }
        if m.contains_key("properties") && m.contains_key("additionalProperties") {
            out.push(format!("{path}: properties and additionalProperties"));
        }
        if let Some(Value::Bool(_)) = m.get("additionalProperties") {
            out.push(format!("{path}: additionalProperties is a boolean"));
        }
        for v in m
            .get("oneOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if v.as_object()
                .is_none_or(|o| o.keys().any(|k| k != "required"))
            {
                out.push(format!("{path}: oneOf with more than `required`: {v}"));
            }
        }
        for (k, child) in m
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            not_structural(child, &format!("{path}.{k}"), out);
        }
        for k in ["items", "additionalProperties"] {
            if let Some(child @ Value::Object(_)) = m.get(k) {
                not_structural(child, &format!("{path}.{k}"), out);
            }
        }
    }

    #[test]
    fn the_schema_is_structural() {
        let crd = definition();
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let mut problems = Vec::new();
        not_structural(schema, "", &mut problems);
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn enums_objects_of_variants_and_open_fields() {
        let s = spec_schema();
        assert_eq!(
            s["properties"]["mode"],
            json!({"type": "string", "enum": ["apply", "recommend"],
                   "description": "apply (default) or recommend."})
        );
        let policy = &s["properties"]["horizontal"]["properties"]["policy"];
        assert_eq!(policy["type"], "object");
        let variants: Vec<&String> = policy["properties"].as_object().unwrap().keys().collect();
        assert_eq!(variants, ["pid", "predictive", "threshold"]);
        assert_eq!(
            policy["oneOf"],
            json!([{"required": ["threshold"]}, {"required": ["pid"]}, {"required": ["predictive"]}])
        );
        let h = &s["properties"]["horizontal"]["properties"];
        assert_eq!(h["tolerance"]["x-kubernetes-preserve-unknown-fields"], true);
        assert_eq!(h["replicas"]["required"], json!(["min", "max"]));
        let v = &s["properties"]["vertical"]["properties"];
        assert_eq!(
            v["min"]["properties"]["cpu"]["x-kubernetes-int-or-string"],
            true
        );
        assert_eq!(v["halfLife"]["type"], "string");
    }
}
