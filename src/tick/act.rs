//! The act step: [`Actuator::Apply`] patches the target's `/scale`; [`Actuator::Recommend`]
//! only says what it would do. Dry-run, `mode: recommend` and a replica that does not hold the
//! Lease all choose [`Actuator::Recommend`]; nothing else in the daemon asks which mode it is in.

use crate::cluster::{Cluster, ClusterError, ScaleState};
use crate::engine::Decision;
use crate::policy::{Mode, TargetRef};

/// Applies a decision, or only publishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actuator {
    /// Patch the target.
    Apply,
    /// Patch nothing.
    Recommend,
}

/// Why the actuator is what it is, for the explanation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The policy applies and this replica leads.
    Applying,
    /// The policy says `mode: recommend`.
    PolicyRecommends,
    /// The daemon runs with `--dry-run`.
    DryRun,
    /// Another replica holds the Lease.
    Standby,
}

impl Actuator {
    /// The actuator for a policy in `mode`, under `--dry-run` or not, on a replica that holds the
    /// Lease or not.
    pub fn choose(mode: Mode, dry_run: bool, leader: bool) -> (Actuator, Why) {
        match (mode, dry_run, leader) {
            (_, true, _) => (Actuator::Recommend, Why::DryRun),
            (Mode::Recommend, _, _) => (Actuator::Recommend, Why::PolicyRecommends),
            (Mode::Apply, false, false) => (Actuator::Recommend, Why::Standby),
            (Mode::Apply, false, true) => (Actuator::Apply, Why::Applying),
        }
    }

    /// The mode a decision is published in.
    pub fn mode(self) -> Mode {
        match self {
            Actuator::Apply => Mode::Apply,
            Actuator::Recommend => Mode::Recommend,
        }
    }

    /// Acts on `decision` for `target`, whose `/scale` was read as `scale`. Returns the new
    /// scale when a patch was made. The patch carries the resourceVersion read, so a target
    /// changed since then gives 409 Conflict rather than a change decided on stale numbers.
    pub async fn act<C: Cluster>(
        self,
        cluster: &C,
        target: &TargetRef,
        scale: &ScaleState,
        decision: &Decision,
    ) -> Result<Option<ScaleState>, ClusterError> {
        if self == Actuator::Recommend || decision.desired_replicas == scale.spec_replicas {
            return Ok(None);
        }
        cluster
            .patch_scale(
                target,
                decision.desired_replicas,
                scale.resource_version.as_deref(),
            )
            .await
            .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_leading_applying_replica_applies() {
        assert_eq!(
            Actuator::choose(Mode::Apply, false, true),
            (Actuator::Apply, Why::Applying)
        );
        assert_eq!(
            Actuator::choose(Mode::Apply, false, false),
            (Actuator::Recommend, Why::Standby)
        );
        assert_eq!(
            Actuator::choose(Mode::Apply, true, true),
            (Actuator::Recommend, Why::DryRun)
        );
        assert_eq!(
            Actuator::choose(Mode::Recommend, false, true),
            (Actuator::Recommend, Why::PolicyRecommends)
        );
    }
}
