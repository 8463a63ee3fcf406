//! Restart safety: what the governor must not forget, kept in an annotation on the target.
//!
//! After each scaling action the daemon writes [`ANNOTATION`] on the target (server-side
//! apply, field manager `setpoint`): the policy's name and the governor's memory (the time and
//! direction of the last action, the actions inside the rate-limit periods, the recommendations
//! inside the stabilization windows). A restarted daemon reads it back with [`restore`], so a
//! cooldown that was running goes on running.
//!
//! Recommendations made after the last action are not written (that would be a write per tick):
//! instead [`restore`] adds the target's current replica count as a recommendation made at the
//! restart, exactly as [`State::conservative`] does for a target seen for the first time. The
//! scale-down stabilization window then starts again at the restart, so a restarted daemon can
//! scale down later than the old one would have, never earlier.

use crate::engine::governor::{GovernorState, TimedReplicas};
use crate::engine::{Seconds, State};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The annotation that holds the governor's memory.
pub const ANNOTATION: &str = "setpoint.dev/state";

/// What the annotation holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Saved {
    /// The policy that wrote it (another policy's memory is not used).
    policy: String,
    /// When it was written (Unix seconds).
    saved_at: Seconds,
    /// The governor's memory.
    governor: GovernorState,
}

/// The annotations to apply on the target after an action at `now`.
pub fn annotations(policy: &str, state: &State, now: Seconds) -> BTreeMap<String, String> {
    let saved = Saved {
        policy: policy.to_string(),
        saved_at: now,
        governor: GovernorState {
            failures: 0,
            ..state.governor.clone()
        },
    };
    let json = serde_json::to_string(&saved).expect("the governor's memory serializes");
    BTreeMap::from([(ANNOTATION.to_string(), json)])
}

/// The state to start `policy` with, from the target's annotations at `now`, and a note on what
/// was found. `current` is the target's replica count now.
pub fn restore(
    policy: &str,
    annotations: &BTreeMap<String, String>,
    current: u32,
    now: Seconds,
) -> (State, String) {
    let mut state = State::conservative(current, now);
    let Some(text) = annotations.get(ANNOTATION) else {
        return (
            state,
            format!("no {ANNOTATION} annotation: starting conservatively"),
        );
    };
    let saved: Saved = match serde_json::from_str(text) {
        Ok(s) => s,
        Err(e) => {
            return (
                state,
                format!(
                    "the {ANNOTATION} annotation cannot be read ({e}): starting conservatively"
                ),
            );
        }
    };
    if saved.policy != policy {
        return (
            state,
            format!(
                "the {ANNOTATION} annotation was written by policy {:?}: starting conservatively",
                saved.policy
            ),
        );
    }
    // Times from the future (a clock step back) would stretch a cooldown forever: cap them.
    let cap = |t: Seconds| t.min(now);
    let mut governor = saved.governor;
    governor.last_action = governor.last_action.map(|(t, d)| (cap(t), d));
    for r in governor
        .recommendations
        .iter_mut()
        .chain(governor.events.iter_mut())
    {
        r.t = cap(r.t);
    }
    governor.recommendations.push(TimedReplicas {
        t: now,
        replicas: current as i64,
    });
    governor.failures = 0;
    let note = match governor.last_action {
        Some((t, d)) => format!(
            "restored from the {ANNOTATION} annotation: last action {d:?} {:.0}s ago",
            now - t
        ),
        None => format!("restored from the {ANNOTATION} annotation: no action yet"),
    };
    state.governor = governor;
    (state, note)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::governor::Direction;

    fn acted(t: Seconds) -> State {
        let mut s = State::conservative(3, t - 100.0);
        s.governor.last_action = Some((t, Direction::Up));
        s.governor.events.push(TimedReplicas { t, replicas: 2 });
        s.governor
            .recommendations
            .push(TimedReplicas { t, replicas: 5 });
        s.governor.failures = 4;
        s
    }

    #[test]
    fn a_saved_state_comes_back_with_the_current_count_added() {
        let a = annotations("web", &acted(1000.0), 1000.0);
        let (s, note) = restore("web", &a, 5, 1030.0);
        assert_eq!(s.governor.last_action, Some((1000.0, Direction::Up)));
        assert_eq!(
            s.governor.events,
            vec![TimedReplicas {
                t: 1000.0,
                replicas: 2
            }]
        );
        assert_eq!(
            s.governor.recommendations.last(),
            Some(&TimedReplicas {
                t: 1030.0,
                replicas: 5
            })
        );
        assert_eq!(s.governor.failures, 0);
        assert!(note.contains("last action Up 30s ago"), "{note}");
    }

    #[test]
    fn missing_foreign_or_broken_annotations_start_conservatively() {
        let conservative = State::conservative(4, 50.0);
        let (s, note) = restore("web", &BTreeMap::new(), 4, 50.0);
        assert_eq!(s.governor, conservative.governor);
        assert!(note.contains("no setpoint.dev/state"));
        let other = annotations("api", &acted(10.0), 10.0);
        let (s, note) = restore("web", &other, 4, 50.0);
        assert_eq!(s.governor, conservative.governor);
        assert!(note.contains("\"api\""), "{note}");
        let broken = BTreeMap::from([(ANNOTATION.to_string(), "{".to_string())]);
        let (s, note) = restore("web", &broken, 4, 50.0);
        assert_eq!(s.governor, conservative.governor);
        assert!(note.contains("cannot be read"), "{note}");
    }

    #[test]
    fn times_after_now_are_capped() {
        let a = annotations("web", &acted(5000.0), 5000.0);
        let (s, _) = restore("web", &a, 5, 1000.0);
        assert_eq!(s.governor.last_action, Some((1000.0, Direction::Up)));
        assert!(s.governor.events.iter().all(|e| e.t <= 1000.0));
    }
}
