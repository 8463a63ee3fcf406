//! One policy per target and part: two horizontal policies would fight over its replica count,
//! as two HPAs on one target would (the HPA refuses that with `AmbiguousSelector`), and two
//! vertical parts that both write over the requests of a container they both right-size, as two
//! VPAs would. A horizontal policy and a vertical-only one on the same target are fine, and so
//! are two vertical parts on different containers, or beside one that only recommends (`mode:
//! recommend` or `update: off`: a shadow to compare with).

use super::{Mode, Policy, PolicyError};
use crate::engine::vertical_plan::UpdateMode;

/// The error for `policy` when one of `others` (another file or object) already scales the same
/// target horizontally, or right-sizes one of the same containers; None when none does. A
/// policy that names no namespace is in the one served (as a ScalingPolicy object always is),
/// so it meets a policy of any namespace.
pub fn shared_target<'a>(
    policy: &Policy,
    others: impl IntoIterator<Item = &'a Policy>,
) -> Option<PolicyError> {
    let target = || format!("{} {}", policy.target.kind, policy.target.name);
    // The containers whose requests a policy writes.
    let containers = |p: &Policy| -> Vec<String> {
        match &p.vertical {
            Some(v) if p.mode == Mode::Apply && v.plan.update != UpdateMode::Off => {
                v.plan.containers.clone()
            }
            _ => Vec::new(),
        }
    };
    let mine = containers(policy);
    for o in others {
        let same_namespace =
            o.namespace == policy.namespace || o.namespace.is_none() || policy.namespace.is_none();
        if o.source == policy.source || o.target != policy.target || !same_namespace {
            continue;
        }
        if policy.horizontal.is_some() && o.horizontal.is_some() {
            return Some(PolicyError::SharedTarget {
                path: policy.source.clone(),
                name: policy.name.clone(),
                target: target(),
                other: o.name.clone(),
                first: o.source.clone(),
            });
        }
        let theirs = containers(o);
        let both: Vec<&str> = mine
            .iter()
            .filter(|c| theirs.contains(c))
            .map(String::as_str)
            .collect();
        if !both.is_empty() {
            let noun = if both.len() == 1 {
                "container"
            } else {
                "containers"
            };
            return Some(PolicyError::SharedContainers {
                path: policy.source.clone(),
                name: policy.name.clone(),
                what: format!("{noun} {} of {}", both.join(", "), target()),
                other: o.name.clone(),
                first: o.source.clone(),
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// The vpa example as policy `name` in file `file`, with `mode` and `containers`.
    fn vertical(name: &str, file: &str, mode: &str, containers: &str) -> Policy {
        let text = include_str!("../../policies/examples/vpa.yaml")
            .replace("name: vpa", &format!("name: {name}"))
            .replace("mode: recommend", &format!("mode: {mode}"))
            .replace("containers: [web]", &format!("containers: [{containers}]"));
        crate::policy::parse(&text, Path::new(file)).unwrap()
    }

    #[test]
    fn two_vertical_parts_writing_one_container_are_refused() {
        let a = vertical("a", "a.yaml", "apply", "web, sidecar");
        let b = vertical("b", "b.yaml", "apply", "sidecar");
        let e = shared_target(&b, [&a]).expect("refused").to_string();
        assert_eq!(
            e,
            "b.yaml: policy \"b\" right-sizes container sidecar of Deployment web, and so does \
             policy \"a\" of a.yaml: a container takes one vertical policy, as a target takes one \
             VPA (list every container in one policy's spec.vertical.containers)"
        );
    }

    #[test]
    fn other_containers_and_shadows_are_fine() {
        let a = vertical("a", "a.yaml", "apply", "web");
        let other = vertical("b", "b.yaml", "apply", "sidecar");
        let shadow = vertical("c", "c.yaml", "recommend", "web");
        assert!(shared_target(&other, [&a]).is_none());
        assert!(shared_target(&shadow, [&a]).is_none());
        assert!(shared_target(&a, [&shadow]).is_none());
    }
}
