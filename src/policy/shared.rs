//! One horizontal policy per target: two would fight over its replica count, as two HPAs on
//! one target would (the HPA refuses that with `AmbiguousSelector`). A horizontal policy and a
//! vertical-only one on the same target are fine.

use super::{Policy, PolicyError};

/// The error for `policy` when one of `others` (another file or object) already scales the same
/// target horizontally; None when none does. A policy that names no namespace is in the one
/// served (as a ScalingPolicy object always is), so it meets a policy of any namespace.
pub fn shared_target<'a>(
    policy: &Policy,
    others: impl IntoIterator<Item = &'a Policy>,
) -> Option<PolicyError> {
    policy.horizontal.as_ref()?;
    let first = others.into_iter().find(|o| {
        o.source != policy.source
            && o.horizontal.is_some()
            && o.target == policy.target
            && (o.namespace == policy.namespace
                || o.namespace.is_none()
                || policy.namespace.is_none())
    })?;
    Some(PolicyError::SharedTarget {
        path: policy.source.clone(),
        name: policy.name.clone(),
        target: format!("{} {}", policy.target.kind, policy.target.name),
        other: first.name.clone(),
        first: first.source.clone(),
    })
}
