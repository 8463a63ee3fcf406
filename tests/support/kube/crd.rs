//! CustomResourceDefinitions and their objects, as a v1.24 API server serves them.
//!
//! - `POST /apis/apiextensions.k8s.io/v1/customresourcedefinitions`: 201 with the defaults a
//!   server adds (`names.singular`, `names.listKind`, `conversion.strategy: None`) and the
//!   not-yet-established status (`conditions: null`, empty `acceptedNames`, `storedVersions`).
//!   The stand-in then establishes it at once (a real server takes a fraction of a second):
//!   `GET …/customresourcedefinitions/{name}` shows `NamesAccepted` and `Established` True
//!   and `acceptedNames` filled in. The stand-in keeps no `managedFields` for a CRD and does
//!   not validate its schema beyond what it reads.
//! - `GET /apis/{group}/{version}` of a CRD's group version: the kind and its `/status`
//!   subresource, with `shortNames` and the `storageVersionHash` a server computes.
//! - The objects, under `/apis/{group}/{version}/namespaces/{ns}/{plural}`: `POST` (201),
//!   `GET` (one, the `…List` with `continue: ""`, or a Table), `PUT` (409 for a stale
//!   resourceVersion; without one, an unconditional update, which custom resources allow),
//!   `PATCH` (merge patch or server-side apply; a strategic merge patch is 415, as for any
//!   custom resource; an apply of a missing object is a 404 here, where a server creates it), `DELETE` (200 with the object as deleted), and with a `status`
//!   subresource the same `GET`/`PUT`/`PATCH` on `…/{name}/status`. Every write is a watch
//!   event (see `watch`).
//! - The schema is the CRD's `openAPIV3Schema`, read at each request: unknown fields are
//!   pruned silently (except under `x-kubernetes-preserve-unknown-fields`), and `type` and
//!   `enum` are checked, both causes listed for one field, in the server's words
//!   (`spec.mode: Invalid value: "integer": spec.mode in body must be of type string:
//!   "integer"`, `spec.mode: Unsupported value: "auto": supported values: "apply",
//!   "recommend"`). Other keywords (formats, minimum, pattern, required, CEL rules, defaults)
//!   are not checked. `fieldValidation` is read as v1.24 reads it: `""`, `Ignore`, `Strict`
//!   and `Warn` are accepted and change nothing (the feature gate is off in v1.24), anything
//!   else is 422 `CreateOptions.meta.k8s.io "" is invalid`.
//! - With a status subresource, a write of the main resource ignores `status`, a write of
//!   `/status` ignores everything but `status`, and only a change outside `metadata` and
//!   `status` bumps `metadata.generation`. A create drops `status`.
//! - [`KubeStandIn::scalingpolicies`] installs setpoint's own CRD (`setpoint crd`), once, and gives a
//!   client of its objects, as a test's `kubectl`.
//! - `managedFields` as a server keeps them for an unstructured object: an `Update` (per
//!   manager and subresource) owns the leaves it changed and the maps it created (`".": {}`),
//!   lists are atomic, an `Apply` owns the leaves it sent, a field written by one manager is
//!   taken from the others, and an apply of a field another manager owns with a different
//!   value is a 409 `Conflict` unless `force=true`.

use super::*;

const CRD_GROUP: &str = "apiextensions.k8s.io";

/// A custom object as stored.
#[derive(Debug, Clone)]
pub struct CustomObject {
    /// Its CRD's group.
    pub group: String,
    /// Its CRD's plural.
    pub resource: String,
    /// The object, with `apiVersion`, `kind` and full metadata.
    pub object: Value,
}

/// The CRD that serves `group/version` `resource`, if any.
pub(super) fn served<'w>(
    world: &'w World,
    group: &str,
    version: &str,
    resource: &str,
) -> Option<&'w Value> {
    world.crds.iter().find(|c| {
        c["spec"]["group"] == group
            && c["spec"]["names"]["plural"] == resource
            && version_of(c, version).is_some()
    })
}

fn version_of<'c>(crd: &'c Value, version: &str) -> Option<&'c Value> {
    crd["spec"]["versions"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == version && v["served"] == true)
}

/// The objects of a custom kind in `ns`, as stored, by name (etcd's key order).
pub(super) fn objects(world: &World, group: &str, resource: &str, ns: &str) -> Vec<Value> {
    let mut out: Vec<Value> = world
        .custom_objects
        .iter()
        .filter(|o| o.group == group && o.resource == resource)
        .filter(|o| o.object["metadata"]["namespace"] == ns)
        .map(|o| o.object.clone())
        .collect();
    out.sort_by(|a, b| {
        a["metadata"]["name"]
            .as_str()
            .cmp(&b["metadata"]["name"].as_str())
    });
    out
}

/// Discovery entries of the CRDs serving `group/version`.
pub(super) fn discovery_resources(world: &World, group: &str, version: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for crd in world.crds.iter().filter(|c| c["spec"]["group"] == group) {
        let Some(v) = version_of(crd, version) else {
            continue;
        };
        let names = &crd["spec"]["names"];
        let kind = names["kind"].as_str().unwrap_or("");
        let plural = names["plural"].as_str().unwrap_or("");
        let namespaced = crd["spec"]["scope"] == "Namespaced";
        let hash = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            format!("{group}/{version}/{kind}").as_bytes(),
        );
        let mut main = json!({"name": plural, "singularName": names["singular"],
            "namespaced": namespaced, "kind": kind,
            "verbs": ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"],
            "storageVersionHash": super::super::base64(&hash.as_ref()[..8])});
        if names["shortNames"].is_array() {
            main["shortNames"] = names["shortNames"].clone();
        }
        out.push(main);
        if v["subresources"]["status"].is_object() {
            out.push(
                json!({"name": format!("{plural}/status"), "singularName": "",
                "namespaced": namespaced, "kind": kind, "verbs": ["get", "patch", "update"]}),
            );
        }
    }
    out
}

/// The CRD and custom-object routes; None for a request they do not answer.
pub(super) fn answer(world: &mut World, req: &Req<'_>, parts: &[&str]) -> Option<Response> {
    if let [
        "apis",
        CRD_GROUP,
        "v1",
        "customresourcedefinitions",
        rest @ ..,
    ] = parts
    {
        return Some(definitions(world, req, rest));
    }
    let (group, version, ns, resource, rest) = match parts {
        ["apis", g, v, "namespaces", ns, r, rest @ ..] => (*g, *v, *ns, *r, rest),
        _ => return None,
    };
    let crd = served(world, group, version, resource)?.clone();
    let status_sub = version_of(&crd, version).unwrap()["subresources"]["status"].is_object();
    let kinds = Kinds {
        crd: &crd,
        group,
        version,
        resource,
        kind: crd["spec"]["names"]["kind"].as_str().unwrap_or(""),
    };
    Some(match (req.method, rest) {
        ("GET", []) => list_objects(world, req, &kinds, ns),
        ("POST", []) => create_object(world, req, &kinds, ns),
        (_, [name]) => one_object(world, req, &kinds, ns, name, None),
        (_, [name, "status"]) if status_sub => {
            one_object(world, req, &kinds, ns, name, Some("status"))
        }
        _ => page_not_found(),
    })
}

/// What a custom-object request is about.
struct Kinds<'a> {
    crd: &'a Value,
    group: &'a str,
    version: &'a str,
    resource: &'a str,
    kind: &'a str,
}

impl Kinds<'_> {
    fn api_version(&self) -> String {
        format!("{}/{}", self.group, self.version)
    }

    fn schema(&self) -> Value {
        version_of(self.crd, self.version)
            .map(|v| v["schema"]["openAPIV3Schema"].clone())
            .unwrap_or(Value::Null)
    }

    fn status_subresource(&self) -> bool {
        version_of(self.crd, self.version).is_some_and(|v| v["subresources"]["status"].is_object())
    }

    fn index(&self, world: &World, ns: &str, name: &str) -> Option<usize> {
        world.custom_objects.iter().position(|o| {
            o.group == self.group
                && o.resource == self.resource
                && o.object["metadata"]["namespace"] == ns
                && o.object["metadata"]["name"] == name
        })
    }
}

fn definitions(world: &mut World, req: &Req<'_>, rest: &[&str]) -> Response {
    let resource = "customresourcedefinitions";
    match (req.method, rest) {
        ("GET", []) => {
            let items = world.crds.iter().collect();
            list(
                "CustomResourceDefinitionList",
                "apiextensions.k8s.io/v1",
                world,
                items,
            )
        }
        ("GET", [name]) => match world.crds.iter().find(|c| c["metadata"]["name"] == *name) {
            Some(c) => json_answer(200, c.clone()),
            None => not_found(CRD_GROUP, resource, name),
        },
        ("POST", []) => create_definition(world, req),
        ("DELETE", [name]) => {
            let Some(i) = world
                .crds
                .iter()
                .position(|c| c["metadata"]["name"] == *name)
            else {
                return not_found(CRD_GROUP, resource, name);
            };
            let crd = world.crds.remove(i);
            let (group, plural) = (&crd["spec"]["group"], &crd["spec"]["names"]["plural"]);
            world
                .custom_objects
                .retain(|o| o.group != *group || o.resource != *plural);
            json_answer(200, crd)
        }
        _ => not_implemented(req.method, req.path, req.content_type),
    }
}

fn create_definition(world: &mut World, req: &Req<'_>) -> Response {
    let body = match req.json_body() {
        Ok(v) if v.is_object() => v,
        Ok(_) => return bad_request("the body of the request is not an object"),
        Err(r) => return *r,
    };
    let name = body["metadata"]["name"].as_str().unwrap_or("").to_string();
    let mut spec = body["spec"].clone();
    let (plural, group) = (
        spec["names"]["plural"].as_str().unwrap_or("").to_string(),
        spec["group"].as_str().unwrap_or("").to_string(),
    );
    if name != format!("{plural}.{group}") {
        return invalid(
            CRD_GROUP,
            "CustomResourceDefinition",
            &name,
            &[(
                "FieldValueInvalid",
                "metadata.name",
                format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
            )],
        );
    }
    if world
        .crds
        .iter()
        .any(|c| c["metadata"]["name"] == name.as_str())
    {
        return already_exists(CRD_GROUP, "customresourcedefinitions", &name);
    }
    let kind = spec["names"]["kind"].as_str().unwrap_or("").to_string();
    if spec["names"]["singular"].is_null() {
        spec["names"]["singular"] = json!(kind.to_lowercase());
    }
    if spec["names"]["listKind"].is_null() {
        spec["names"]["listKind"] = json!(format!("{kind}List"));
    }
    if spec["conversion"].is_null() {
        spec["conversion"] = json!({"strategy": "None"});
    }
    let stored: Vec<Value> = spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"] == true)
        .map(|v| v["name"].clone())
        .collect();
    let rv = world.next_version();
    let mut crd = json!({
        "kind": "CustomResourceDefinition",
        "apiVersion": "apiextensions.k8s.io/v1",
        "metadata": {"name": name, "uid": new_uid(), "resourceVersion": rv.to_string(),
                     "generation": 1, "creationTimestamp": now_rfc3339()},
        "spec": spec,
        "status": {"conditions": null, "acceptedNames": {"plural": "", "kind": ""},
                   "storedVersions": stored},
    });
    let answer = crd.clone();
    // What the apiextensions controllers do next: accept the names, establish.
    let now = now_rfc3339();
    crd["status"]["conditions"] = json!([
        {"type": "NamesAccepted", "status": "True", "lastTransitionTime": now,
         "reason": "NoConflicts", "message": "no conflicts found"},
        {"type": "Established", "status": "True", "lastTransitionTime": now,
         "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"},
    ]);
    crd["status"]["acceptedNames"] = crd["spec"]["names"].clone();
    crd["metadata"]["resourceVersion"] = json!(world.next_version().to_string());
    world.crds.push(crd);
    json_answer(201, answer)
}

fn list_objects(world: &World, req: &Req<'_>, k: &Kinds<'_>, ns: &str) -> Response {
    let items = objects(world, k.group, k.resource, ns);
    if req.table {
        return table::custom(world, k.crd, k.version, &items);
    }
    let list_kind = k.crd["spec"]["names"]["listKind"].as_str().unwrap_or("");
    json_answer(
        200,
        json!({"apiVersion": k.api_version(), "kind": list_kind, "items": items,
               "metadata": {"continue": "", "resourceVersion": world.resource_version.to_string()}}),
    )
}

/// `fieldValidation` as v1.24 reads it: checked, without effect.
fn check_field_validation(req: &Req<'_>, options: &str) -> Result<(), Refusal> {
    match req.query.get("fieldValidation").map(String::as_str) {
        None | Some("" | "Ignore" | "Strict" | "Warn") => Ok(()),
        Some(other) => Err(Box::new(invalid(
            "meta.k8s.io",
            options,
            "",
            &[(
                "FieldValueNotSupported",
                "fieldValidation",
                format!(
                    "Unsupported value: \"{other}\": supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""
                ),
            )],
        ))),
    }
}

/// The object without unknown fields, or 422 for its type and enum errors.
fn conform(obj: &mut Value, k: &Kinds<'_>, name: &str) -> Result<(), Refusal> {
    let schema = k.schema();
    let Some(map) = obj.as_object_mut() else {
        return Err(Box::new(bad_request("the object is not a JSON object")));
    };
    map.retain(|key, _| {
        matches!(key.as_str(), "apiVersion" | "kind" | "metadata")
            || !schema["properties"][key.as_str()].is_null()
            || schema["x-kubernetes-preserve-unknown-fields"] == true
    });
    let mut errors: Vec<(&'static str, String, String)> = Vec::new();
    for (key, v) in map.iter_mut() {
        if matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        let s = &schema["properties"][key.as_str()];
        prune(v, s);
        validate(v, s, key, &mut errors);
    }
    if errors.is_empty() {
        return Ok(());
    }
    let errors: Vec<FieldError<'_>> = errors
        .iter()
        .map(|(reason, field, body)| (*reason, field.as_str(), body.clone()))
        .collect();
    Err(Box::new(invalid(k.group, k.kind, name, &errors)))
}

/// Drops what a structural schema does not name (unless it preserves unknown fields).
fn prune(v: &mut Value, schema: &Value) {
    let preserve = schema["x-kubernetes-preserve-unknown-fields"] == true;
    match v {
        Value::Object(m) => {
            let props = schema["properties"].as_object();
            let additional = schema["additionalProperties"].is_object();
            if !preserve && !additional {
                m.retain(|key, _| props.is_some_and(|p| p.contains_key(key)));
            }
            for (key, child) in m.iter_mut() {
                match props.and_then(|p| p.get(key)) {
                    Some(s) => prune(child, s),
                    None if additional => prune(child, &schema["additionalProperties"]),
                    None => {}
                }
            }
        }
        Value::Array(items) if schema["items"].is_object() => {
            for item in items {
                prune(item, &schema["items"]);
            }
        }
        _ => {}
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `type` and `enum`, as the server's schema validation words its errors.
fn validate(
    v: &Value,
    schema: &Value,
    path: &str,
    errors: &mut Vec<(&'static str, String, String)>,
) {
    let got = json_type(v);
    let type_ok = match schema["type"].as_str() {
        None => true,
        Some("number") => v.is_number(),
        Some(t) => t == got,
    };
    if !type_ok {
        let t = schema["type"].as_str().unwrap_or("");
        errors.push((
            "FieldValueInvalid",
            path.to_string(),
            format!("Invalid value: \"{got}\": {path} in body must be of type {t}: \"{got}\""),
        ));
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(v)
    {
        let listed: Vec<String> = allowed.iter().map(Value::to_string).collect();
        errors.push((
            "FieldValueNotSupported",
            path.to_string(),
            format!(
                "Unsupported value: {v}: supported values: {}",
                listed.join(", ")
            ),
        ));
    }
    if !type_ok {
        return;
    }
    match v {
        Value::Object(m) => {
            for (key, child) in m {
                let s = schema["properties"]
                    .get(key)
                    .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()));
                if let Some(s) = s {
                    validate(child, s, &format!("{path}.{key}"), errors);
                }
            }
        }
        Value::Array(items) if schema["items"].is_object() => {
            for (i, item) in items.iter().enumerate() {
                validate(item, &schema["items"], &format!("{path}[{i}]"), errors);
            }
        }
        _ => {}
    }
}

fn create_object(world: &mut World, req: &Req<'_>, k: &Kinds<'_>, ns: &str) -> Response {
    if let Err(r) = check_field_validation(req, "CreateOptions") {
        return *r;
    }
    let mut obj = match req.json_body() {
        Ok(v) if v.is_object() => v,
        Ok(_) => return bad_request("the body of the request is not an object"),
        Err(r) => return *r,
    };
    if let Err(r) = check_namespace(&obj, ns) {
        return *r;
    }
    let given = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    let name = match obj["metadata"]["generateName"].as_str() {
        _ if !given.is_empty() => given,
        Some(prefix) => format!("{prefix}{}", random_suffix()),
        None => {
            return invalid(
                k.group,
                k.kind,
                "",
                &[(
                    "FieldValueRequired",
                    "metadata.name",
                    "Required value: name or generateName is required".to_string(),
                )],
            );
        }
    };
    if k.index(world, ns, &name).is_some() {
        return already_exists(k.group, k.resource, &name);
    }
    if k.status_subresource()
        && let Some(m) = obj.as_object_mut()
    {
        m.remove("status");
    }
    if let Err(r) = conform(&mut obj, k, &name) {
        return *r;
    }
    let mut metadata = json!({"name": name, "namespace": ns, "uid": new_uid(),
        "creationTimestamp": now_rfc3339(), "generation": 1});
    for key in ["labels", "annotations", "generateName"] {
        if let Some(v) = obj["metadata"].get(key) {
            metadata[key] = v.clone();
        }
    }
    obj["metadata"] = metadata;
    obj["apiVersion"] = json!(k.api_version());
    obj["kind"] = json!(k.kind);
    let stored = write(world, None, k, obj, &req.manager(), Write::Update, None);
    json_answer(201, stored)
}

fn one_object(
    world: &mut World,
    req: &Req<'_>,
    k: &Kinds<'_>,
    ns: &str,
    name: &str,
    sub: Option<&str>,
) -> Response {
    let Some(i) = k.index(world, ns, name) else {
        let resource = match sub {
            Some(s) => format!("{}/{s}", k.resource),
            None => k.resource.to_string(),
        };
        return not_found(k.group, &resource, name);
    };
    let old = world.custom_objects[i].object.clone();
    let new = match req.method {
        "GET" => return json_answer(200, old),
        "DELETE" if sub.is_none() => {
            let mut gone = world.custom_objects.remove(i).object;
            gone["metadata"]["resourceVersion"] = json!(world.next_version().to_string());
            world.record(k.group, k.resource, "DELETED", gone.clone(), None);
            return json_answer(200, gone);
        }
        "PUT" => match req.json_body() {
            Ok(v) if v.is_object() => {
                if let Some(rv) = v["metadata"]["resourceVersion"].as_str()
                    && rv != old["metadata"]["resourceVersion"]
                {
                    return conflict(k.group, k.resource, name);
                }
                v
            }
            Ok(_) => return bad_request("the body of the request is not an object"),
            Err(r) => return *r,
        },
        "PATCH" => {
            if let Err(r) = req.check_patch() {
                return *r;
            }
            if req.media_type() == STRATEGIC {
                return unsupported_media_type();
            }
            let patch = match req.patch_body() {
                Ok(p) if p.is_object() => p,
                Ok(_) => return bad_request("the patch is not an object"),
                Err(r) => return *r,
            };
            if let Some(rv) = patch["metadata"]["resourceVersion"].as_str()
                && rv != old["metadata"]["resourceVersion"]
            {
                return conflict(k.group, k.resource, name);
            }
            if req.media_type() == APPLY {
                return apply_object(world, i, req, k, &patch, sub);
            }
            let mut new = old.clone();
            merge_patch(&mut new, &patch);
            new
        }
        _ => return not_implemented(req.method, req.path, req.content_type),
    };
    let mut new = scoped(&old, new, k.status_subresource(), sub);
    if let Err(r) = conform(&mut new, k, name) {
        return *r;
    }
    json_answer(
        200,
        write(world, Some(i), k, new, &req.manager(), Write::Update, sub),
    )
}

/// `new` limited to what a write of `sub` may change: the old object's system metadata, and
/// with a status subresource, the old status (main resource) or the old everything but
/// status (`/status`).
fn scoped(old: &Value, new: Value, status_sub: bool, sub: Option<&str>) -> Value {
    let mut out = if sub == Some("status") {
        let mut o = old.clone();
        match new.get("status") {
            Some(s) => o["status"] = s.clone(),
            None => {
                o.as_object_mut().unwrap().remove("status");
            }
        }
        o
    } else {
        let mut o = new;
        if status_sub {
            let m = o.as_object_mut().unwrap();
            m.remove("status");
            if let Some(s) = old.get("status") {
                m.insert("status".into(), s.clone());
            }
        }
        let mut metadata = old["metadata"].clone();
        for key in ["labels", "annotations"] {
            match o["metadata"].get(key).filter(|v| !v.is_null()) {
                Some(v) => metadata[key] = v.clone(),
                None => {
                    if let Some(m) = metadata.as_object_mut() {
                        m.remove(key);
                    }
                }
            }
        }
        o["metadata"] = metadata;
        o
    };
    out["apiVersion"] = old["apiVersion"].clone();
    out["kind"] = old["kind"].clone();
    out
}

/// The fields a write of `sub` manages: leaves (lists count as one) and maps.
fn fields(
    obj: &Value,
    sub: Option<&str>,
    status_sub: bool,
) -> (BTreeMap<FieldPath, Value>, BTreeSet<FieldPath>) {
    fn walk(
        v: &Value,
        path: FieldPath,
        leaves: &mut BTreeMap<FieldPath, Value>,
        maps: &mut BTreeSet<FieldPath>,
    ) {
        match v {
            Value::Null => {}
            Value::Object(m) => {
                maps.insert(path.clone());
                for (k, child) in m {
                    let mut p = path.clone();
                    p.push(k.clone());
                    walk(child, p, leaves, maps);
                }
            }
            other => {
                leaves.insert(path, other.clone());
            }
        }
    }
    let (mut leaves, mut maps) = (BTreeMap::new(), BTreeSet::new());
    for (k, v) in obj.as_object().into_iter().flatten() {
        let in_scope = match (k.as_str(), sub) {
            ("apiVersion" | "kind", _) => false,
            ("status", None) => !status_sub,
            (_, Some("status")) => k == "status",
            _ => true,
        };
        if k == "metadata" && sub.is_none() {
            for key in ["labels", "annotations"] {
                if let Some(m) = v.get(key) {
                    walk(
                        m,
                        vec!["metadata".into(), key.into()],
                        &mut leaves,
                        &mut maps,
                    );
                }
            }
        } else if in_scope && k != "metadata" {
            walk(v, vec![k.clone()], &mut leaves, &mut maps);
        }
    }
    (leaves, maps)
}

/// How a write takes ownership of fields.
enum Write {
    /// An update: of the leaves it changed and the maps it created.
    Update,
    /// An apply: of the leaves it sent.
    Apply(BTreeSet<FieldPath>),
}

/// Stores `new` at `i` (or creates it) as a write by `manager` of `sub`: managedFields
/// updated, generation bumped when something outside metadata and status changed, the
/// resourceVersion bumped and a watch event kept, unless nothing changed. Returns it.
fn write(
    world: &mut World,
    i: Option<usize>,
    k: &Kinds<'_>,
    mut new: Value,
    manager: &str,
    op: Write,
    sub: Option<&str>,
) -> Value {
    let old = i.map(|i| world.custom_objects[i].object.clone());
    let status_sub = k.status_subresource();
    let empty = json!({});
    let (before, before_maps) = fields(old.as_ref().unwrap_or(&empty), sub, status_sub);
    let (after, after_maps) = fields(&new, sub, status_sub);
    let mut entries = read_managed(&new);
    let owned: BTreeSet<FieldPath> = if let Write::Apply(applied) = &op {
        applied.clone()
    } else {
        after
            .iter()
            .filter(|(p, v)| before.get(*p) != Some(*v))
            .map(|(p, _)| p.clone())
            .chain(after_maps.difference(&before_maps).cloned())
            .collect()
    };
    let changed: BTreeSet<FieldPath> = after
        .iter()
        .filter(|(p, v)| before.get(*p) != Some(*v))
        .map(|(p, _)| p.clone())
        .chain(before.keys().filter(|p| !after.contains_key(*p)).cloned())
        .chain(before_maps.difference(&after_maps).cloned())
        .collect();
    let operation = match op {
        Write::Apply(_) => "Apply",
        Write::Update => "Update",
    };
    let sub_name = sub.map(str::to_string);
    for e in entries.iter_mut() {
        if !(e.same_manager(manager, operation) && e.subresource == sub_name) {
            e.fields.retain(|p| !changed.contains(p));
        }
    }
    let now = now_rfc3339();
    let mine = entries
        .iter_mut()
        .find(|e| e.same_manager(manager, operation) && e.subresource == sub_name);
    match (mine, op) {
        (Some(e), Write::Apply(_)) => {
            e.fields = owned;
            e.time = Some(now);
        }
        (Some(e), Write::Update) => {
            if !owned.is_empty() {
                e.fields.extend(owned);
                e.time = Some(now);
            }
        }
        (None, _) => entries.push(Managed {
            manager: manager.to_string(),
            operation: operation.into(),
            api_version: k.api_version(),
            subresource: sub_name,
            time: Some(now),
            fields: owned,
        }),
    }
    write_managed(&mut new, entries);
    if let Some(old) = &old
        && without_times(old) == without_times(&new)
    {
        return old.clone();
    }
    let spec_of = |o: &Value| {
        let mut o = o.clone();
        if let Some(m) = o.as_object_mut() {
            m.remove("metadata");
            m.remove("status");
        }
        o
    };
    if let Some(old) = &old
        && spec_of(old) != spec_of(&new)
    {
        let generation = old["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
        new["metadata"]["generation"] = json!(generation);
    }
    let rv = world.next_version();
    new["metadata"]["resourceVersion"] = json!(rv.to_string());
    let stored = CustomObject {
        group: k.group.to_string(),
        resource: k.resource.to_string(),
        object: new.clone(),
    };
    match i {
        Some(i) => world.custom_objects[i] = stored,
        None => world.custom_objects.push(stored),
    }
    let event = if i.is_some() { "MODIFIED" } else { "ADDED" };
    world.record(k.group, k.resource, event, new.clone(), old);
    new
}

/// A server-side apply of `config` to the object at `i`, of the main resource or `sub`.
fn apply_object(
    world: &mut World,
    i: usize,
    req: &Req<'_>,
    k: &Kinds<'_>,
    config: &Value,
    sub: Option<&str>,
) -> Response {
    let manager = req.manager();
    let live = world.custom_objects[i].object.clone();
    let name = live["metadata"]["name"].as_str().unwrap_or("").to_string();
    let status_sub = k.status_subresource();
    let (live_fields, _) = fields(&live, sub, status_sub);
    let (applied, _) = fields(config, sub, status_sub);
    let mut entries = read_managed(&live);
    let sub_name = sub.map(str::to_string);
    let is_mine = |e: &Managed| e.same_manager(&manager, "Apply") && e.subresource == sub_name;
    let mut conflicts = Vec::new();
    for (path, value) in &applied {
        if live_fields.get(path).is_some_and(|v| v != value) {
            for e in entries.iter_mut().filter(|e| !is_mine(e)) {
                if e.fields.contains(path) {
                    if req.force() {
                        e.fields.remove(path);
                    } else {
                        conflicts.push((e.display(), path.clone()));
                    }
                }
            }
        }
    }
    if !conflicts.is_empty() {
        return apply_conflict(conflicts);
    }
    let mut new = live.clone();
    for (path, value) in &applied {
        set_path(&mut new, path, value.clone());
    }
    let previous = entries
        .iter()
        .find(|e| is_mine(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    for path in previous.iter().filter(|p| !applied.contains_key(*p)) {
        if !entries
            .iter()
            .any(|e| !is_mine(e) && e.fields.contains(path))
        {
            remove_path(&mut new, path);
        }
    }
    write_managed(&mut new, entries);
    if let Err(r) = conform(&mut new, k, &name) {
        return *r;
    }
    json_answer(
        200,
        write(
            world,
            Some(i),
            k,
            new,
            &manager,
            Write::Apply(applied.into_keys().collect()),
            sub,
        ),
    )
}

impl KubeStandIn {
    /// Installs setpoint's ScalingPolicy CRD (`setpoint crd`) as an admin would, unless a CRD
    /// of that name is there, and returns a kube-rs client of the namespace's ScalingPolicy
    /// objects (through a kubeconfig in `dir`), to create, change and delete them as `kubectl`
    /// would.
    pub async fn scalingpolicies(
        &self,
        dir: &crate::support::TempDir,
        namespace: &str,
    ) -> kube::Api<kube::api::DynamicObject> {
        use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
        let client = self.cluster(dir, namespace).await.client().clone();
        let resource = |group: &str, version: &str, kind: &str, plural: &str| {
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
        };
        let crds: kube::Api<DynamicObject> = kube::Api::all_with(
            client.clone(),
            &resource(
                CRD_GROUP,
                "v1",
                "CustomResourceDefinition",
                "customresourcedefinitions",
            ),
        );
        let definition = setpoint::policy::crd::definition();
        let installed = self
            .world()
            .crds
            .iter()
            .any(|c| c["metadata"]["name"] == definition["metadata"]["name"]);
        if !installed {
            let crd = serde_json::from_value(definition).unwrap();
            crds.create(&PostParams::default(), &crd)
                .await
                .expect("the stand-in takes the CRD");
        }
        kube::Api::namespaced_with(
            client,
            namespace,
            &resource(
                "setpoint.dev",
                "v1alpha1",
                "ScalingPolicy",
                "scalingpolicies",
            ),
        )
    }
}
