//! RBAC for ServiceAccount tokens: [`World::service_accounts`] holds tokens whose requests
//! are authorized by the rules of their Role, as a v1.24 server's RBAC authorizer does.
//! A request that no rule grants is a 403 `Forbidden` in the server's words
//! (`scalingpolicies.setpoint.dev "web" is forbidden: User
//! "system:serviceaccount:golden2:setpoint" cannot patch resource "scalingpolicies/status" in
//! API group "setpoint.dev" in the namespace "golden2"`), before any watch stream starts. A
//! subresource is its own resource (`scalingpolicies/status`); a list with `watch=1` is the
//! verb `watch`. [`World::token`] (or, without one, any token) is granted everything, so tests
//! that set no ServiceAccount see no 403 but the injected ones. Only a namespaced Role is
//! modelled: no ClusterRoles, no `resourceNames`, no non-resource URLs.

use super::*;

/// One rule of a Role: the verbs it grants on the resources of the groups (`*`: any).
#[derive(Debug, Clone)]
pub struct Rule {
    /// API groups (`""` for the core group).
    pub groups: Vec<String>,
    /// Resources (`pods`, `scalingpolicies/status`).
    pub resources: Vec<String>,
    /// Verbs (`get`, `list`, `watch`, `patch`, ...).
    pub verbs: Vec<String>,
}

impl Rule {
    /// A rule granting `verbs` on `resources` of `groups`.
    pub fn new(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Rule {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Rule {
            groups: owned(groups),
            resources: owned(resources),
            verbs: owned(verbs),
        }
    }

    fn grants(&self, verb: &str, group: &str, resource: &str) -> bool {
        let has = |list: &[String], x: &str| list.iter().any(|v| v == "*" || v == x);
        has(&self.verbs, verb) && has(&self.groups, group) && has(&self.resources, resource)
    }
}

/// A ServiceAccount's bearer token and the rules its RoleBinding gives it (in its namespace).
#[derive(Debug, Clone)]
pub struct ServiceAccount {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The bearer token.
    pub token: String,
    /// What its Role grants.
    pub rules: Vec<Rule>,
}

impl ServiceAccount {
    /// `system:serviceaccount:{namespace}:{name}`.
    pub fn user(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.name)
    }
}

/// None if the ServiceAccount may make the request, else the 403.
pub(super) fn refuse(sa: &ServiceAccount, req: &Req<'_>) -> Option<Response> {
    let target = target_of(req.path);
    let verb = if watch::wanted(req) {
        "watch".to_string()
    } else {
        verb(req.method, target.as_ref())
    };
    let granted = target.as_ref().is_some_and(|t| {
        let resource = match &t.subresource {
            Some(sub) => format!("{}/{sub}", t.resource),
            None => t.resource.clone(),
        };
        t.namespace.as_deref() == Some(sa.namespace.as_str())
            && sa
                .rules
                .iter()
                .any(|r| r.grants(&verb, &t.group, &resource))
    });
    (!granted).then(|| forbidden_as(Some(&sa.user()), &verb, req.path))
}
