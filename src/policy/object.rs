//! A ScalingPolicy object (as the API server returns it, in JSON) to a [`Policy`]: the same
//! validation as a file's. [`from_object`] builds the file-shaped document (`apiVersion`,
//! `kind`, `metadata` with the name, namespace, labels and annotations, and `spec`) and
//! validates it with [`super::parse`]; its errors name the object (`ScalingPolicy
//! <namespace>/<name>`) and the field path instead of a line and column.

use super::{ObjectRef, Policy, PolicyError, Problem, parse};
use serde_json::{Value, json};
use std::path::PathBuf;

/// How an object is named in errors and logs: `ScalingPolicy <namespace>/<name>`.
pub fn object_name(namespace: &str, name: &str) -> String {
    format!("{} {namespace}/{name}", super::KIND)
}

/// The policy of a ScalingPolicy object, with [`Policy::object`] set (name, uid, generation)
/// and [`Policy::source`] its [`object_name`].
pub fn from_object(object: &Value) -> Result<Policy, PolicyError> {
    let meta = &object["metadata"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let (name, namespace) = (text(&meta["name"]), text(&meta["namespace"]));
    let shown = object_name(&namespace, &name);
    let mut metadata = json!({"name": name});
    if !namespace.is_empty() {
        metadata["namespace"] = json!(namespace);
    }
    for key in ["labels", "annotations"] {
        if meta[key].is_object() {
            metadata[key] = meta[key].clone();
        }
    }
    let mut document = json!({
        "apiVersion": object["apiVersion"],
        "kind": object["kind"],
        "metadata": metadata,
    });
    if !object["spec"].is_null() {
        document["spec"] = object["spec"].clone();
    }
    let reference = ObjectRef {
        name: name.clone(),
        uid: text(&meta["uid"]),
        generation: meta["generation"].as_i64().unwrap_or(0),
    };
    let invalid = |problems: Vec<Problem>| PolicyError::InvalidObject {
        object: shown.clone(),
        reference: reference.clone(),
        problems: problems
            .into_iter()
            .map(|p| Problem {
                line: 0,
                column: 0,
                ..p
            })
            .collect(),
    };
    let yaml = serde_saphyr::to_string(&document).map_err(|e| {
        invalid(vec![Problem {
            line: 0,
            column: 0,
            field: String::new(),
            message: format!("cannot be read: {e}"),
        }])
    })?;
    let mut policy = match parse(&yaml, &PathBuf::from(&shown)) {
        Ok(p) => p,
        Err(PolicyError::Invalid { problems, .. }) => return Err(invalid(problems)),
        Err(other) => return Err(other),
    };
    policy.object = Some(reference);
    Ok(policy)
}

/// How a policy's source is named in messages: `file <path>` or `ScalingPolicy <ns>/<name>`.
pub fn source_name(policy: &Policy) -> String {
    match policy.object {
        Some(_) => policy.source.display().to_string(),
        None => format!("file {}", policy.source.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(spec: Value) -> Value {
        json!({
            "apiVersion": "setpoint.dev/v1alpha1", "kind": "ScalingPolicy",
            "metadata": {"name": "web", "namespace": "demo", "uid": "u-1", "generation": 3,
                         "resourceVersion": "77", "creationTimestamp": "2026-12-01T10:00:00Z",
                         "annotations": {"setpoint.dev/paused": "true"},
                         "managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
            "spec": spec,
            "status": {"desiredReplicas": 3},
        })
    }

    fn spec() -> Value {
        json!({"target": {"kind": "Deployment", "name": "web"}, "interval": "30s",
               "horizontal": {"replicas": {"min": 1, "max": 10}, "tolerance": {"up": 0.1, "down": 0.2},
                   "metrics": [{"prometheus": "sum(rate(x[1m]))", "targetPerReplica": 80}]}})
    }

    #[test]
    fn an_object_is_a_policy_with_its_reference_and_annotations() {
        let p = from_object(&object(spec())).unwrap();
        assert_eq!(p.name, "web");
        assert_eq!(p.namespace.as_deref(), Some("demo"));
        assert_eq!(p.interval, 30.0);
        assert_eq!(
            p.object,
            Some(ObjectRef {
                name: "web".into(),
                uid: "u-1".into(),
                generation: 3
            })
        );
        assert_eq!(p.annotations["setpoint.dev/paused"], "true");
        assert_eq!(p.source, PathBuf::from("ScalingPolicy demo/web"));
        assert_eq!(source_name(&p), "ScalingPolicy demo/web");
    }

    #[test]
    fn an_object_and_a_file_on_one_target_are_two_horizontal_policies() {
        let file = parse(
            "apiVersion: setpoint.dev/v1alpha1\nkind: ScalingPolicy\nmetadata: {name: web-file}\n\
             spec:\n  target: {kind: Deployment, name: web}\n  horizontal:\n    \
             replicas: {min: 1, max: 5}\n    metrics: [{prometheus: up, targetPerReplica: 1}]\n",
            std::path::Path::new("policies/web.yaml"),
        )
        .unwrap();
        let object = from_object(&object(spec())).unwrap();
        let e = crate::policy::shared_target(&object, [&file]).expect("refused");
        assert!(
            e.to_string().starts_with(
                "ScalingPolicy demo/web: policy \"web\" scales Deployment web horizontally, \
                 and so does policy \"web-file\" of policies/web.yaml"
            ),
            "{e}"
        );
    }

    #[test]
    fn errors_name_the_object_and_the_field() {
        let mut s = spec();
        s["horizontal"]["replicas"]["min"] = json!(20);
        s["interval"] = json!("soon");
        let e = from_object(&object(s)).unwrap_err().to_string();
        assert!(
            e.starts_with("ScalingPolicy demo/web: spec.interval: invalid duration \"soon\""),
            "{e}"
        );
        let mut s = spec();
        s["horizontal"]["replicas"]["min"] = json!(20);
        let e = from_object(&object(s)).unwrap_err().to_string();
        assert!(
            e.starts_with("ScalingPolicy demo/web: spec.horizontal.replicas"),
            "{e}"
        );
        assert!(!e.contains(":0:0"), "{e}");
        let mut o = object(spec());
        o["spec"]["horizontal"]["replicaz"] = json!(3);
        let e = from_object(&o).unwrap_err().to_string();
        assert!(
            e.contains("spec.horizontal.replicaz: unknown field `replicaz`"),
            "{e}"
        );
    }
}
