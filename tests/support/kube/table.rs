//! kubectl's Table format: a list asked for with `Accept: application/json;as=Table;v=v1;
//! g=meta.k8s.io,application/json` (what `kubectl get` sends) is answered as a
//! `meta.k8s.io/v1` `Table` with `Content-Type: application/json`, as a v1.24 server does:
//!
//! - a custom kind: the `Name` column, then the CRD's `additionalPrinterColumns` (each
//!   described as `Custom resource definition column (in JSONPath format): <path>`), the
//!   cells read with the column's JSONPath (`integer` and `number` cells a JSON number,
//!   `string` a string, `date` an age such as `5s`, null where the path finds nothing);
//! - Deployments: `Name`, `Ready`, `Up-to-date`, `Available`, `Age`, and at priority 1
//!   `Containers`, `Images`, `Selector`. No controller runs here, so `Ready` and `Available`
//!   count the world's ready pods that the selector matches, and `Up-to-date` is
//!   `status.replicas`.
//!
//! Each row's object is a `PartialObjectMetadata` with the object's whole metadata. The
//! column descriptions are the Kubernetes API's own, as a v1.24 server sent them
//! (shared/k8s-api-answers.json).

use super::*;
use jsonpath_rust::JsonPath;

const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when \
creating resources, although some resources may allow a client to request the generation of \
an appropriate name automatically. Name is primarily intended for creation idempotence and \
configuration definition. Cannot be updated. More info: \
http://kubernetes.io/docs/user-guide/identifiers#names";

const AGE_DESCRIPTION: &str = "CreationTimestamp is a timestamp representing the server time \
when this object was created. It is not guaranteed to be set in happens-before order across \
separate operations. Clients may not set this value. It is represented in RFC3339 form and is \
in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: \
https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

fn column(name: &str, kind: &str, format: &str, description: &str, priority: i64) -> Value {
    json!({"name": name, "type": kind, "format": format, "description": description,
           "priority": priority})
}

fn row(cells: Vec<Value>, object: &Value) -> Value {
    json!({"cells": cells, "object": {"kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1", "metadata": object["metadata"]}})
}

fn table(world: &World, columns: Vec<Value>, rows: Vec<Value>) -> Response {
    json_answer(
        200,
        json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1",
               "metadata": {"resourceVersion": world.resource_version.to_string()},
               "columnDefinitions": columns, "rows": rows}),
    )
}

/// An age as the server prints it (`HumanDuration` of k8s.io/apimachinery: `5s`, `3m20s`,
/// `2d4h`, ...).
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    let s = seconds.max(0);
    let (m, h) = (s / 60, s / 3600);
    let (d, y) = (h / 24, h / (24 * 365));
    let pair = |a: i64, ua: &str, b: i64, ub: &str| {
        if b == 0 {
            format!("{a}{ua}")
        } else {
            format!("{a}{ua}{b}{ub}")
        }
    };
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        pair(m, "m", s % 60, "s")
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        pair(h, "h", m % 60, "m")
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        pair(d, "d", h % 24, "h")
    } else if h < 24 * 365 * 2 {
        format!("{d}d")
    } else if h < 24 * 365 * 8 {
        pair(y, "y", d % 365, "d")
    } else {
        format!("{y}y")
    }
}

fn age(object: &Value) -> Value {
    let created = object["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|t| humantime::parse_rfc3339(t).ok());
    match created {
        Some(t) => {
            let secs = match std::time::SystemTime::now().duration_since(t) {
                Ok(d) => d.as_secs() as i64,
                Err(e) => -(e.duration().as_secs() as i64),
            };
            json!(human_duration(secs))
        }
        None => json!("<unknown>"),
    }
}

/// A custom kind's Table, from its CRD's printer columns.
pub(super) fn custom(world: &World, crd: &Value, version: &str, items: &[Value]) -> Response {
    let printer: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == version)
        .and_then(|v| v["additionalPrinterColumns"].as_array().cloned())
        .unwrap_or_default();
    let mut columns = vec![column("Name", "string", "name", NAME_DESCRIPTION, 0)];
    for c in &printer {
        let path = c["jsonPath"].as_str().unwrap_or("");
        columns.push(column(
            c["name"].as_str().unwrap_or(""),
            c["type"].as_str().unwrap_or("string"),
            c["format"].as_str().unwrap_or(""),
            &format!("Custom resource definition column (in JSONPath format): {path}"),
            c["priority"].as_i64().unwrap_or(0),
        ));
    }
    let rows = items
        .iter()
        .map(|o| {
            let mut cells = vec![o["metadata"]["name"].clone()];
            for c in &printer {
                let path = format!("${}", c["jsonPath"].as_str().unwrap_or(""));
                let found = o
                    .query(&path)
                    .ok()
                    .and_then(|v| v.first().copied().cloned());
                cells.push(match (c["type"].as_str(), found) {
                    (_, None) => Value::Null,
                    (Some("date"), Some(_)) => age(o),
                    (Some("integer" | "number" | "boolean"), Some(v)) => v,
                    (_, Some(Value::String(s))) => json!(s),
                    (_, Some(v)) => json!(v.to_string()),
                });
            }
            row(cells, o)
        })
        .collect();
    table(world, columns, rows)
}

/// The Deployments' Table.
pub(super) fn deployments(world: &World, items: &[Value]) -> Response {
    let columns = vec![
        column("Name", "string", "name", NAME_DESCRIPTION, 0),
        column(
            "Ready",
            "string",
            "",
            "Number of the pod with ready state",
            0,
        ),
        column(
            "Up-to-date",
            "string",
            "",
            "Total number of non-terminated pods targeted by this deployment that have the \
             desired template spec.",
            0,
        ),
        column(
            "Available",
            "string",
            "",
            "Total number of available pods (ready for at least minReadySeconds) targeted by \
             this deployment.",
            0,
        ),
        column("Age", "string", "", AGE_DESCRIPTION, 0),
        column(
            "Containers",
            "string",
            "",
            "Names of each container in the template.",
            1,
        ),
        column(
            "Images",
            "string",
            "",
            "Images referenced by each container in the template.",
            1,
        ),
        column(
            "Selector",
            "string",
            "",
            "Label selector for pods. Existing ReplicaSets whose pods are selected by this \
             will be the ones affected by this deployment.",
            1,
        ),
    ];
    let rows = items
        .iter()
        .map(|d| {
            let ns = d["metadata"]["namespace"].as_str().unwrap_or("");
            let labels = d["spec"]["selector"]["matchLabels"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let selector: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect();
            let selector = selector.join(",");
            let ready = world
                .pods
                .iter()
                .filter(|p| p["metadata"]["namespace"] == ns)
                .filter(|p| matches(&selector, &p["metadata"]["labels"]))
                .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
                .filter(|p| {
                    p["status"]["conditions"].as_array().is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
                })
                .count();
            let containers = d["spec"]["template"]["spec"]["containers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let joined = |key: &str| {
                containers
                    .iter()
                    .map(|c| c[key].as_str().unwrap_or("").to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let cells = vec![
                d["metadata"]["name"].clone(),
                json!(format!(
                    "{ready}/{}",
                    d["spec"]["replicas"].as_i64().unwrap_or(0)
                )),
                json!(d["status"]["replicas"].as_i64().unwrap_or(0)),
                json!(ready),
                age(d),
                json!(joined("name")),
                json!(joined("image")),
                json!(selector),
            ];
            row(cells, d)
        })
        .collect();
    table(world, columns, rows)
}
