//! The act step, and the one place that answers "may this tick write?".
//!
//! The caller says what it knows ([`Hold`]: a leading replica, a standby one, `--dry-run`, or a
//! read-only look such as `recommend`); [`Actuator::choose`] adds the policy's mode and gives
//! the [`Actuator`] and the reason ([`Why`]). [`Actuator::Apply`] patches the target's
//! `/scale` (and lets the vertical part write); [`Actuator::Recommend`] only says what it would
//! do, and [`Why::hold`] is the reason the vertical part gives for not writing. Nothing else
//! asks which mode a tick is in.

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

/// What the caller of a tick knows about whether it may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// A daemon replica that holds the Lease (or runs without election): the policy's mode
    /// decides.
    Leading,
    /// A daemon replica that does not hold the Lease.
    Standby,
    /// The daemon runs with `--dry-run`.
    DryRun,
    /// One read-only look (`recommend`).
    ReadOnly,
}

impl Hold {
    /// The daemon's hold: `--dry-run` or not, on a replica that holds the Lease or not.
    pub fn of(dry_run: bool, leader: bool) -> Hold {
        match (dry_run, leader) {
            (true, _) => Hold::DryRun,
            (false, true) => Hold::Leading,
            (false, false) => Hold::Standby,
        }
    }
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
    /// A read-only look (`recommend`).
    ReadOnly,
}

impl Why {
    /// Why nothing may be written, in words (None when the tick applies).
    pub fn hold(self) -> Option<&'static str> {
        match self {
            Why::Applying => None,
            Why::PolicyRecommends => Some("the policy's mode is recommend"),
            Why::DryRun => Some("the daemon runs with --dry-run"),
            Why::Standby => Some("another replica holds the Lease"),
            Why::ReadOnly => Some("a read-only look (recommend) writes nothing"),
        }
    }
}

impl Actuator {
    /// The actuator for a policy in `mode` under `hold`.
    pub fn choose(mode: Mode, hold: Hold) -> (Actuator, Why) {
        match (mode, hold) {
            (_, Hold::ReadOnly) => (Actuator::Recommend, Why::ReadOnly),
            (_, Hold::DryRun) => (Actuator::Recommend, Why::DryRun),
            (Mode::Recommend, _) => (Actuator::Recommend, Why::PolicyRecommends),
            (Mode::Apply, Hold::Standby) => (Actuator::Recommend, Why::Standby),
            (Mode::Apply, Hold::Leading) => (Actuator::Apply, Why::Applying),
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
            Actuator::choose(Mode::Apply, Hold::of(false, true)),
            (Actuator::Apply, Why::Applying)
        );
        assert_eq!(
            Actuator::choose(Mode::Apply, Hold::of(false, false)),
            (Actuator::Recommend, Why::Standby)
        );
        assert_eq!(
            Actuator::choose(Mode::Apply, Hold::of(true, true)),
            (Actuator::Recommend, Why::DryRun)
        );
        assert_eq!(
            Actuator::choose(Mode::Recommend, Hold::of(false, true)),
            (Actuator::Recommend, Why::PolicyRecommends)
        );
        for mode in [Mode::Apply, Mode::Recommend] {
            assert_eq!(
                Actuator::choose(mode, Hold::ReadOnly),
                (Actuator::Recommend, Why::ReadOnly)
            );
        }
    }
}
