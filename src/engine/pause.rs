//! Pause controls: the annotations that stop a policy from changing its target, and the
//! HPA's rule for a target someone else scaled to zero.
//!
//! - `setpoint.dev/paused: "true"`: no change, at the current count ([`Pause::Frozen`]).
//! - `setpoint.dev/paused-replicas: "N"`: go to N, clamped to `[min, max]` (the explanation
//!   says when it was clamped), then no change ([`Pause::Replicas`]).
//! - `setpoint.dev/paused-scale-up: "true"`, `setpoint.dev/paused-scale-down: "true"`: no
//!   change in that direction ([`Pause::ScaleUp`], [`Pause::ScaleDown`]); both at once is
//!   [`Pause::Frozen`].
//! - A target at 0 replicas while the policy's `min` is at least 1 was switched off by someone
//!   else (`kubectl scale --replicas=0`): it is left at 0, as the HPA leaves it
//!   (`ScalingActive=False`, reason `ScalingDisabled`), until it is scaled up by hand
//!   ([`Pause::ScaledToZero`]). A policy with `min: 0` keeps its scale-to-zero rules
//!   ([`super::activation`]): at zero, activation wakes it.
//!
//! Values: a boolean control is set by `"true"` (any case, blanks around ignored); any other
//! value, `"false"` included, leaves it unset. A `paused-replicas` value that is not a whole
//! number from 0 up is an error that holds the count where it is and says so
//! ([`Pause::Invalid`]): a pause that was asked for is never silently dropped.
//!
//! Precedence, when several are set: `paused-replicas` (valid or not), then `paused`, then a
//! target switched off at zero, then the one-direction controls.
//!
//! This module parses and names; the rule itself is the governor's last step
//! ([`super::Governor::govern`]): the other rules run first and keep feeding the
//! stabilization windows and the idle clock, so that lifting a pause resumes with the memory a
//! policy that was never paused would have. A `paused-replicas` move is an action like any
//! other: it is committed once applied, and the cooldowns count from it. Bounds stay absolute:
//! a frozen target outside `[min, max]` still goes to the bound (but a target at 0 is never
//! brought up to `min` by a freeze).
//!
//! Pure: [`Controls::from_annotations`] reads a map of annotations; where the map comes from
//! (the ScalingPolicy object, or a policy file's target) is the tick's business.

use super::Direction;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Freezes the policy at the current count.
pub const PAUSED: &str = "setpoint.dev/paused";
/// Moves the target to this count (within the bounds), then freezes it.
pub const PAUSED_REPLICAS: &str = "setpoint.dev/paused-replicas";
/// Blocks scale-up only.
pub const PAUSED_SCALE_UP: &str = "setpoint.dev/paused-scale-up";
/// Blocks scale-down only.
pub const PAUSED_SCALE_DOWN: &str = "setpoint.dev/paused-scale-down";

/// Every pause annotation.
pub const ANNOTATIONS: [&str; 4] = [PAUSED, PAUSED_REPLICAS, PAUSED_SCALE_UP, PAUSED_SCALE_DOWN];

/// The pause controls of one tick, as read from annotations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Controls {
    /// `setpoint.dev/paused` is "true".
    pub paused: bool,
    /// `setpoint.dev/paused-replicas`: the count, or the value as written when it is not one.
    pub replicas: Option<Result<u32, String>>,
    /// `setpoint.dev/paused-scale-up` is "true".
    pub scale_up: bool,
    /// `setpoint.dev/paused-scale-down` is "true".
    pub scale_down: bool,
}

fn is_true(v: Option<&String>) -> bool {
    v.is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

impl Controls {
    /// The controls in `annotations` (other annotations are ignored).
    pub fn from_annotations(annotations: &BTreeMap<String, String>) -> Controls {
        Controls {
            paused: is_true(annotations.get(PAUSED)),
            replicas: annotations
                .get(PAUSED_REPLICAS)
                .map(|v| v.trim().parse::<u32>().map_err(|_| v.clone())),
            scale_up: is_true(annotations.get(PAUSED_SCALE_UP)),
            scale_down: is_true(annotations.get(PAUSED_SCALE_DOWN)),
        }
    }

    /// What the annotations ask for, by precedence, and the annotation(s) that ask it; None
    /// when no control is set. The target-at-zero rule is the governor's (it needs `min`).
    pub fn requested(&self) -> Option<(Pause, String)> {
        let pause = match (&self.replicas, self.paused, self.scale_up, self.scale_down) {
            (Some(Ok(n)), ..) => (Pause::Replicas { requested: *n }, PAUSED_REPLICAS.into()),
            (Some(Err(v)), ..) => (Pause::Invalid { value: v.clone() }, PAUSED_REPLICAS.into()),
            (None, true, ..) => (Pause::Frozen, PAUSED.into()),
            (None, false, true, true) => (
                Pause::Frozen,
                format!("{PAUSED_SCALE_UP} and {PAUSED_SCALE_DOWN}"),
            ),
            (None, false, true, false) => (Pause::ScaleUp, PAUSED_SCALE_UP.into()),
            (None, false, false, true) => (Pause::ScaleDown, PAUSED_SCALE_DOWN.into()),
            (None, false, false, false) => return None,
        };
        Some(pause)
    }

    /// The pause of a policy without a horizontal part: every control but the one-direction
    /// ones freezes its vertical part (replicas are not the policy's to set).
    pub fn vertical(&self) -> Option<(Pause, String)> {
        self.requested().filter(|(p, _)| p.freezes_vertical())
    }
}

/// What is paused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Pause {
    /// No change at all (`paused: "true"`, or both directions blocked).
    Frozen,
    /// Go to `requested` (clamped to the bounds), then no change.
    #[serde(rename_all = "camelCase")]
    Replicas {
        /// The count the annotation asks for, before the bounds.
        requested: u32,
    },
    /// No scale-up.
    ScaleUp,
    /// No scale-down.
    ScaleDown,
    /// `paused-replicas` holds no count: no change, until it is fixed or removed.
    Invalid {
        /// The value as written.
        value: String,
    },
    /// The target is at 0 replicas and the policy's `min` is at least 1: someone switched it
    /// off, and it stays off until it is scaled up by hand (the HPA's `ScalingDisabled`).
    ScaledToZero,
}

impl Pause {
    /// Whether the vertical part is frozen too: by every pause but the one-direction ones.
    pub fn freezes_vertical(&self) -> bool {
        !matches!(self, Pause::ScaleUp | Pause::ScaleDown)
    }

    /// The direction this pause blocks, for the one-direction ones.
    pub fn blocks(&self) -> Option<Direction> {
        match self {
            Pause::ScaleUp => Some(Direction::Up),
            Pause::ScaleDown => Some(Direction::Down),
            _ => None,
        }
    }

    /// A one-word CamelCase reason, for a status condition (`Paused`, or `ScalingActive`
    /// for [`Pause::ScaledToZero`], whose reason is the HPA's).
    pub fn reason(&self) -> &'static str {
        match self {
            Pause::Frozen => "Paused",
            Pause::Replicas { .. } => "PausedAtReplicas",
            Pause::ScaleUp => "ScaleUpPaused",
            Pause::ScaleDown => "ScaleDownPaused",
            Pause::Invalid { .. } => "InvalidPauseAnnotation",
            Pause::ScaledToZero => "ScalingDisabled",
        }
    }

    /// The short form of `status.paused`: `true`, `replicas=N` (the count the annotation asks
    /// for), `scale-up`, `scale-down`, `invalid`, `scaled-to-zero`.
    pub fn status(&self) -> String {
        match self {
            Pause::Frozen => "true".into(),
            Pause::Replicas { requested } => format!("replicas={requested}"),
            Pause::ScaleUp => "scale-up".into(),
            Pause::ScaleDown => "scale-down".into(),
            Pause::Invalid { .. } => "invalid".into(),
            Pause::ScaledToZero => "scaled-to-zero".into(),
        }
    }
}

impl fmt::Display for Pause {
    /// What is paused, in words.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pause::Frozen => f.write_str("paused"),
            Pause::Replicas { requested } => write!(f, "paused at {requested} replicas"),
            Pause::ScaleUp => f.write_str("scale-up paused"),
            Pause::ScaleDown => f.write_str("scale-down paused"),
            Pause::Invalid { value } => write!(
                f,
                "paused: {PAUSED_REPLICAS} {value:?} is not a replica count"
            ),
            Pause::ScaledToZero => f.write_str("switched off: scaled to 0 by someone else"),
        }
    }
}

/// The pause of one decision, in its explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PauseNote {
    /// What is paused.
    #[serde(flatten)]
    pub pause: Pause,
    /// The annotation that asks for it (None for [`Pause::ScaledToZero`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation: Option<String>,
    /// Whether this is the first decision of this pause (it was not paused, or paused
    /// otherwise, at the previous one): the daemon announces a pause once.
    pub started: bool,
}

impl fmt::Display for PauseNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.annotation {
            Some(a) => write!(f, "{} ({a})", self.pause),
            None => write!(f, "{}", self.pause),
        }
    }
}

/// The controls of these annotations (for the engine's tests).
#[cfg(test)]
pub(crate) fn controls(pairs: &[(&str, &str)]) -> Controls {
    let map = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Controls::from_annotations(&map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_annotation_asks_for_its_pause() {
        assert_eq!(controls(&[]).requested(), None);
        assert_eq!(
            controls(&[(PAUSED, "true")]).requested(),
            Some((Pause::Frozen, PAUSED.into()))
        );
        assert_eq!(
            controls(&[(PAUSED_REPLICAS, " 3 ")]).requested(),
            Some((Pause::Replicas { requested: 3 }, PAUSED_REPLICAS.into()))
        );
        assert_eq!(
            controls(&[(PAUSED_SCALE_UP, "TRUE")]).requested(),
            Some((Pause::ScaleUp, PAUSED_SCALE_UP.into()))
        );
        assert_eq!(
            controls(&[(PAUSED_SCALE_DOWN, "true")]).requested(),
            Some((Pause::ScaleDown, PAUSED_SCALE_DOWN.into()))
        );
        let both = controls(&[(PAUSED_SCALE_UP, "true"), (PAUSED_SCALE_DOWN, "true")]);
        assert_eq!(both.requested().unwrap().0, Pause::Frozen);
    }

    #[test]
    fn anything_but_true_leaves_a_boolean_unset() {
        for v in ["false", "", "yes", "1", "on", "ture"] {
            assert_eq!(controls(&[(PAUSED, v)]).requested(), None, "{v:?}");
            assert_eq!(controls(&[(PAUSED_SCALE_UP, v)]).requested(), None, "{v:?}");
        }
        // Other annotations are not controls.
        assert_eq!(
            controls(&[("setpoint.dev/pause", "true")]).requested(),
            None
        );
    }

    #[test]
    fn a_bad_count_holds_and_says_so() {
        for v in ["abc", "false", "", "-1", "2.5", "99999999999"] {
            let (p, a) = controls(&[(PAUSED_REPLICAS, v)]).requested().unwrap();
            assert_eq!(p, Pause::Invalid { value: v.into() }, "{v:?}");
            assert_eq!(a, PAUSED_REPLICAS);
            assert!(p.freezes_vertical());
        }
        let p = Pause::Invalid {
            value: "abc".into(),
        };
        assert_eq!(
            p.to_string(),
            "paused: setpoint.dev/paused-replicas \"abc\" is not a replica count"
        );
    }

    #[test]
    fn paused_replicas_wins_then_paused_then_one_direction() {
        let all = controls(&[
            (PAUSED, "true"),
            (PAUSED_REPLICAS, "4"),
            (PAUSED_SCALE_UP, "true"),
        ]);
        assert_eq!(all.requested().unwrap().0, Pause::Replicas { requested: 4 });
        let two = controls(&[(PAUSED, "true"), (PAUSED_SCALE_DOWN, "true")]);
        assert_eq!(two.requested().unwrap().0, Pause::Frozen);
    }

    #[test]
    fn only_the_one_direction_controls_leave_the_vertical_part_alone() {
        assert!(controls(&[(PAUSED_SCALE_UP, "true")]).vertical().is_none());
        assert!(controls(&[(PAUSED, "true")]).vertical().is_some());
        assert!(controls(&[(PAUSED_REPLICAS, "2")]).vertical().is_some());
    }

    #[test]
    fn the_note_serializes_flat_and_back() {
        let note = PauseNote {
            pause: Pause::Replicas { requested: 3 },
            annotation: Some(PAUSED_REPLICAS.into()),
            started: true,
        };
        let json = serde_json::to_value(&note).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "replicas", "requested": 3,
                "annotation": "setpoint.dev/paused-replicas", "started": true})
        );
        assert_eq!(serde_json::from_value::<PauseNote>(json).unwrap(), note);
        assert_eq!(
            note.to_string(),
            "paused at 3 replicas (setpoint.dev/paused-replicas)"
        );
        assert_eq!(note.pause.status(), "replicas=3");
        assert_eq!(Pause::ScaledToZero.reason(), "ScalingDisabled");
    }
}
