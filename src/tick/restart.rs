//! Restart safety: what the governor and the vertical planner must not forget, kept in an
//! annotation on the target.
//!
//! The daemon writes [`annotation`] on the target (server-side apply, field manager
//! `setpoint`): the policy's name, the governor's memory (the time and direction of the last
//! action, the actions inside the rate-limit periods, the recommendations inside the
//! stabilization windows) and the vertical planner's [`PlanState`] (since when each request has
//! been `minChange.difference` off its target, keyed `pod/container/resource`, and when the pod
//! template was last patched). A restarted daemon reads it back with [`restore`] and
//! [`restore_vertical`], so a cooldown that was running goes on running, and so does a
//! `minChange.after` clock.
//!
//! It is written after each scaling action, and when the planner's state changed in a way that
//! matters ([`plan_write_due`]): a template patch, or a server's refusal to lower a memory limit
//! in place, at once; a clock started or stopped at most once per [`PLAN_WRITE_EVERY`].
//! Recommendations made after the last action are not written on
//! their own (that would be a write per tick): instead [`restore`] adds the target's current
//! replica count as a recommendation made at the restart, exactly as [`State::conservative`]
//! does for a target seen for the first time. The scale-down stabilization window then starts
//! again at the restart, so a restarted daemon can scale down later than the old one would
//! have, never earlier.
//!
//! Each policy keeps its own annotation, [`annotation`] (`state.setpoint.dev/<policy>`), applied
//! with its own field manager ([`field_manager`]): a horizontal policy and a separate
//! vertical-only policy on one target then neither overwrite nor (server-side apply removes
//! what a manager applied before and leaves out) remove each other's state. The annotation of
//! the previous version, [`ANNOTATION`] (`setpoint.dev/state`, one policy per target), is still
//! read when a policy has no annotation of its own yet, so an upgrade keeps cooldowns; it is
//! left in place (the new annotation wins from the first write on).
//! A target at zero stays at zero across a restart: only a metric above its activation
//! threshold wakes it ([`crate::engine::activation`]), and the idle clock starts again. A pause
//! the governor was under is kept too (written when it starts and ends), so that a restarted
//! daemon does not announce it again.
//!
//! The format only grows: an annotation written before the vertical part was kept (no
//! `vertical` field) restores the governor as before and the planner from nothing; an older
//! daemon reading a newer annotation ignores the `vertical` field.

use crate::engine::governor::{GovernorState, TimedReplicas};
use crate::engine::vertical_plan::PlanState;
use crate::engine::{Seconds, State};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The annotation of the previous version (one for all policies of a target): read when a
/// policy has no [`annotation`] of its own yet.
pub const ANNOTATION: &str = "setpoint.dev/state";

/// The annotation that holds `policy`'s governor memory and vertical planner state. A policy
/// name is a DNS label (at most 63 characters), which is what an annotation's name part takes.
pub fn annotation(policy: &str) -> String {
    format!("state.setpoint.dev/{policy}")
}

/// The field manager of `policy`'s [`annotation`]: one per policy, so that one policy's apply
/// does not remove another's annotation.
pub fn field_manager(policy: &str) -> String {
    format!("setpoint-state-{policy}")
}

/// Least time between two writes of the annotation for a change of the `minChange.after`
/// clocks alone (seconds): a restart loses at most this much of a clock that had just started,
/// and 1,000 policies write at most a few annotations a second.
pub const PLAN_WRITE_EVERY: Seconds = 300.0;

/// What the annotation holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Saved {
    /// The policy that wrote it (another policy's memory is not used).
    policy: String,
    /// When it was written (Unix seconds).
    saved_at: Seconds,
    /// The governor's memory (empty for a policy without a horizontal part: always written, so
    /// that a daemon of the previous version reads the annotation).
    #[serde(default)]
    governor: GovernorState,
    /// The vertical planner's state (absent without a vertical part, and in annotations written
    /// before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vertical: Option<PlanState>,
}

/// The annotations to apply on the target at `now`: the governor's memory (`state`, None for a
/// policy without a horizontal part) and the vertical planner's state (None without a vertical
/// part).
pub fn annotations(
    policy: &str,
    state: Option<&State>,
    vertical: Option<&PlanState>,
    now: Seconds,
) -> BTreeMap<String, String> {
    let saved = Saved {
        policy: policy.to_string(),
        saved_at: now,
        governor: state
            .map(|s| GovernorState {
                failures: 0,
                ..s.governor.clone()
            })
            .unwrap_or_default(),
        vertical: vertical.cloned(),
    };
    let json = serde_json::to_string(&saved).expect("the governor's memory serializes");
    BTreeMap::from([(annotation(policy), json)])
}

/// What `policy` saved in `annotations` (its own annotation, else the previous version's), and
/// the annotation's name; or why nothing can be used.
fn saved(policy: &str, annotations: &BTreeMap<String, String>) -> Result<(Saved, String), String> {
    let own = annotation(policy);
    let (key, text) = match (annotations.get(&own), annotations.get(ANNOTATION)) {
        (Some(text), _) => (own.clone(), text),
        (None, Some(text)) => (ANNOTATION.to_string(), text),
        (None, None) => return Err(format!("no {own} annotation")),
    };
    let saved: Saved = serde_json::from_str(text)
        .map_err(|e| format!("the {key} annotation cannot be read ({e})"))?;
    if saved.policy != policy {
        return Err(format!(
            "no {own} annotation, and the {key} annotation was written by policy {:?}",
            saved.policy
        ));
    }
    Ok((saved, key))
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
    let (saved, key) = match saved(policy, annotations) {
        Ok(s) => s,
        Err(why) => return (state, format!("{why}: starting conservatively")),
    };
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
    if let Some(b) = &mut governor.budget {
        b.at = cap(b.at);
        for (t, _) in &mut b.recommendations {
            *t = cap(*t);
        }
    }
    governor.recommendations.push(TimedReplicas {
        t: now,
        replicas: current as i64,
    });
    governor.failures = 0;
    // The idle clock starts again: what the metrics did while no daemon watched is unknown, so
    // a restart may delay a scale to zero, never hasten it.
    governor.idle_since = None;
    let note = match governor.last_action {
        Some((t, d)) => format!(
            "restored from the {key} annotation: last action {d:?} {:.0}s ago",
            now - t
        ),
        None => format!("restored from the {key} annotation: no action yet"),
    };
    state.governor = governor;
    (state, note)
}

/// The pod of a [`PlanState`] key (`pod/container/resource`).
fn pod_of(key: &str) -> &str {
    key.split('/').next().unwrap_or(key)
}

/// The vertical planner's state to start `policy` with, from the target's annotations at `now`,
/// and a note on what was found. Clocks of pods not in `pods` (the target's pods now) are
/// dropped; times after `now` are capped at `now`.
pub fn restore_vertical<'a>(
    policy: &str,
    annotations: &BTreeMap<String, String>,
    pods: impl IntoIterator<Item = &'a str>,
    now: Seconds,
) -> (PlanState, String) {
    let (saved, key) = match saved(policy, annotations) {
        Ok(s) => s,
        Err(why) => return (PlanState::default(), format!("{why}: no minChange clocks")),
    };
    let Some(kept) = saved.vertical else {
        return (
            PlanState::default(),
            format!("the {key} annotation holds no vertical state: no minChange clocks"),
        );
    };
    let pods: std::collections::BTreeSet<&str> = pods.into_iter().collect();
    let before = kept.differs_since.len();
    let state = PlanState {
        differs_since: kept
            .differs_since
            .into_iter()
            .filter(|(k, _)| pods.contains(pod_of(k)))
            .map(|(k, t)| (k, t.min(now)))
            .collect(),
        template_patched_at: kept.template_patched_at.map(|t| t.min(now)),
        // The server refused a memory-limit decrease in place: it still will after a restart.
        memory_limit_decrease_refused: kept.memory_limit_decrease_refused.map(|mut r| {
            r.at = r.at.min(now);
            r
        }),
    };
    let gone = before - state.differs_since.len();
    let mut note = format!(
        "restored from the {key} annotation: {} minChange clock(s)",
        state.differs_since.len()
    );
    if let Some(oldest) = state.differs_since.values().copied().reduce(f64::min) {
        note += &format!(", the oldest started {:.0}s ago", now - oldest);
    }
    if gone > 0 {
        note += &format!(" ({gone} of pods that are gone dropped)");
    }
    (state, note)
}

/// Whether `current` differs from `written` in what is written at once: the time of the last
/// template patch, or a server's refusal to lower a memory limit in place.
fn urgent_change(written: &PlanState, current: &PlanState) -> bool {
    current.template_patched_at != written.template_patched_at
        || current.memory_limit_decrease_refused.is_some()
            != written.memory_limit_decrease_refused.is_some()
}

/// Whether the planner's state `current` differs from `written` (what the annotation holds) in
/// a way that matters after a restart: an [`urgent_change`], a clock started, or a clock stopped
/// for a pod still there (`alive`). A clock dropped because its pod is gone does not matter:
/// [`restore_vertical`] drops it too.
pub fn plan_changed(
    written: &PlanState,
    current: &PlanState,
    alive: &dyn Fn(&str) -> bool,
) -> bool {
    urgent_change(written, current)
        || current
            .differs_since
            .iter()
            .any(|(k, t)| written.differs_since.get(k) != Some(t))
        || written
            .differs_since
            .keys()
            .any(|k| !current.differs_since.contains_key(k) && alive(pod_of(k)))
}

/// Whether to write the planner's state `current` at `now`, when the annotation holds `written`
/// (written by this process at `last_write`, or restored: None): when it [`plan_changed`], at
/// once for an [`urgent_change`], else not sooner than [`PLAN_WRITE_EVERY`] after the last
/// write.
pub fn plan_write_due(
    written: &PlanState,
    last_write: Option<Seconds>,
    current: &PlanState,
    alive: &dyn Fn(&str) -> bool,
    now: Seconds,
) -> bool {
    if !plan_changed(written, current, alive) {
        return false;
    }
    urgent_change(written, current) || last_write.is_none_or(|t| now - t >= PLAN_WRITE_EVERY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::governor::Direction;
    use crate::engine::vertical_plan::ResizeRefusal;

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
        let a = annotations("web", Some(&acted(1000.0)), None, 1000.0);
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
    fn the_action_budget_survives_a_restart() {
        use crate::engine::budget::BudgetState;
        let mut st = acted(1000.0);
        st.governor.budget = Some(Box::new(BudgetState {
            rung: 3,
            own_here: 2.0,
            shadow_here: 1.0,
            own: 12.5,
            shadow: 11.0,
            at: 1000.0,
            replicas: 7,
            recommendations: vec![(990.0, 7)],
        }));
        let a = annotations("web", Some(&st), None, 1000.0);
        let (s, _) = restore("web", &a, 5, 1030.0);
        assert_eq!(s.governor.budget, st.governor.budget);
        // A clock stepped back: the budget's times are capped like the rest.
        let (s, _) = restore("web", &a, 5, 950.0);
        let b = s.governor.budget.unwrap();
        assert_eq!(b.at, 950.0);
        assert!(b.recommendations.iter().all(|&(t, _)| t <= 950.0));
    }

    #[test]
    fn a_pause_is_kept_so_that_a_restart_does_not_announce_it_again() {
        use crate::engine::pause::Pause;
        let mut paused = acted(1000.0);
        paused.governor.paused = Some(Pause::Replicas { requested: 3 });
        let a = annotations("web", Some(&paused), None, 1000.0);
        let (s, _) = restore("web", &a, 3, 1030.0);
        assert_eq!(s.governor.paused, Some(Pause::Replicas { requested: 3 }));
        // Not paused: nothing written for it (an older daemon reads the annotation as before).
        let a = annotations("web", Some(&acted(1000.0)), None, 1000.0);
        assert!(!a[&annotation("web")].contains("paused"), "{a:?}");
    }

    #[test]
    fn missing_foreign_or_broken_annotations_start_conservatively() {
        let conservative = State::conservative(4, 50.0);
        let (s, note) = restore("web", &BTreeMap::new(), 4, 50.0);
        assert_eq!(s.governor, conservative.governor);
        assert!(
            note.contains("no state.setpoint.dev/web annotation"),
            "{note}"
        );
        // The previous version's annotation, written by another policy.
        let other = annotations("api", Some(&acted(10.0)), None, 10.0);
        let other = BTreeMap::from([(ANNOTATION.to_string(), other[&annotation("api")].clone())]);
        let (s, note) = restore("web", &other, 4, 50.0);
        assert_eq!(s.governor, conservative.governor);
        assert!(note.contains("\"api\""), "{note}");
        let broken = BTreeMap::from([(ANNOTATION.to_string(), "{".to_string())]);
        let (s, note) = restore("web", &broken, 4, 50.0);
        assert_eq!(s.governor, conservative.governor);
        assert!(note.contains("cannot be read"), "{note}");
    }

    #[test]
    fn each_policy_keeps_its_own_annotation_and_the_old_one_still_restores() {
        let h = annotations("web-h", Some(&acted(1000.0)), None, 1000.0);
        let v = annotations(
            "web-v",
            None,
            Some(&clocks(&[("web-1/app/cpu", 900.0)])),
            1000.0,
        );
        assert_eq!(h.keys().collect::<Vec<_>>(), ["state.setpoint.dev/web-h"]);
        assert_eq!(field_manager("web-h"), "setpoint-state-web-h");
        // Both on one target, with the previous version's annotation of web-h beside them.
        let mut target: BTreeMap<String, String> = h.into_iter().chain(v).collect();
        let older = annotations("web-h", Some(&acted(500.0)), None, 500.0);
        let older = older[&annotation("web-h")].clone();
        target.insert(ANNOTATION.to_string(), older.clone());
        let (s, note) = restore("web-h", &target, 5, 1030.0);
        assert_eq!(
            s.governor.last_action,
            Some((1000.0, Direction::Up)),
            "its own wins"
        );
        assert!(
            note.starts_with("restored from the state.setpoint.dev/web-h"),
            "{note}"
        );
        let (p, _) = restore_vertical("web-v", &target, ["web-1"], 1030.0);
        assert_eq!(p.differs_since.len(), 1);
        // After an upgrade: only the previous version's annotation.
        let upgraded = BTreeMap::from([(ANNOTATION.to_string(), older)]);
        let (s, note) = restore("web-h", &upgraded, 5, 1030.0);
        assert_eq!(s.governor.last_action, Some((500.0, Direction::Up)));
        assert!(
            note.starts_with("restored from the setpoint.dev/state"),
            "{note}"
        );
    }

    #[test]
    fn times_after_now_are_capped() {
        let a = annotations("web", Some(&acted(5000.0)), None, 5000.0);
        let (s, _) = restore("web", &a, 5, 1000.0);
        assert_eq!(s.governor.last_action, Some((1000.0, Direction::Up)));
        assert!(s.governor.events.iter().all(|e| e.t <= 1000.0));
    }

    /// An annotation as the previous version wrote it (no `vertical`).
    const PREVIOUS: &str = r#"{"policy":"web","savedAt":1000.0,"governor":{"recommendations":[{"t":1000.0,"replicas":5}],"events":[{"t":1000.0,"replicas":2}],"lastAction":[1000.0,"up"],"failures":0}}"#;

    fn clocks(pairs: &[(&str, Seconds)]) -> PlanState {
        PlanState {
            differs_since: pairs.iter().map(|(k, t)| (k.to_string(), *t)).collect(),
            ..PlanState::default()
        }
    }

    #[test]
    fn an_annotation_of_the_previous_version_still_restores() {
        let a = BTreeMap::from([(ANNOTATION.to_string(), PREVIOUS.to_string())]);
        let (s, note) = restore("web", &a, 5, 1030.0);
        assert_eq!(s.governor.last_action, Some((1000.0, Direction::Up)));
        assert!(note.contains("last action Up 30s ago"), "{note}");
        let (v, note) = restore_vertical("web", &a, ["web-1"], 1030.0);
        assert_eq!(v, PlanState::default());
        assert!(note.contains("holds no vertical state"), "{note}");
    }

    #[test]
    fn the_previous_version_reads_a_new_annotation() {
        // The previous version's struct, without the vertical part.
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        #[allow(dead_code)]
        struct Previous {
            policy: String,
            saved_at: Seconds,
            governor: GovernorState,
        }
        let v = clocks(&[("web-1/app/cpu", 900.0)]);
        for state in [Some(acted(1000.0)), None] {
            let a = annotations("web", state.as_ref(), Some(&v), 1000.0);
            let old: Previous = serde_json::from_str(&a[&annotation("web")]).unwrap();
            assert_eq!(old.policy, "web");
        }
    }

    #[test]
    fn vertical_clocks_come_back_without_gone_pods_and_capped_at_now() {
        let v = PlanState {
            differs_since: BTreeMap::from([
                ("web-1/app/cpu".to_string(), 100.0),
                ("web-1/app/memory".to_string(), 5000.0),
                ("web-2/app/cpu".to_string(), 200.0),
            ]),
            template_patched_at: Some(9000.0),
            memory_limit_decrease_refused: Some(ResizeRefusal {
                pod: "web-2".into(),
                containers: vec!["app".into()],
                message: "memory limits cannot be decreased".into(),
                at: 9500.0,
            }),
        };
        // A vertical-only policy: the governor is written empty.
        let a = annotations("web", None, Some(&v), 900.0);
        let (s, note) = restore("web", &a, 3, 1000.0);
        assert_eq!(s.governor.last_action, None);
        assert!(note.contains("no action yet"), "{note}");
        let (r, note) = restore_vertical("web", &a, ["web-1", "web-3"], 1000.0);
        assert_eq!(
            r.differs_since,
            BTreeMap::from([
                ("web-1/app/cpu".to_string(), 100.0),
                ("web-1/app/memory".to_string(), 1000.0),
            ])
        );
        assert_eq!(r.template_patched_at, Some(1000.0));
        // The server's refusal holds whatever pods it was about: the server has not changed.
        let refused = r.memory_limit_decrease_refused.as_ref().unwrap();
        assert_eq!((refused.pod.as_str(), refused.at), ("web-2", 1000.0));
        assert!(note.contains("2 minChange clock(s)"), "{note}");
        assert!(note.contains("oldest started 900s ago"), "{note}");
        assert!(note.contains("1 of pods that are gone dropped"), "{note}");
        let (r, note) = restore_vertical("api", &a, ["web-1"], 1000.0);
        assert_eq!(r, PlanState::default());
        assert!(
            note.contains("no state.setpoint.dev/api annotation"),
            "{note}"
        );
    }

    #[test]
    fn only_changes_that_matter_are_written_and_clock_changes_at_most_every_five_minutes() {
        let alive = |p: &str| p != "gone";
        let written = clocks(&[("a/app/cpu", 100.0), ("gone/app/cpu", 50.0)]);
        // The same clocks, or one dropped with its pod: nothing to write.
        assert!(!plan_changed(&written, &written, &alive));
        let same = clocks(&[("a/app/cpu", 100.0)]);
        assert!(!plan_changed(&written, &same, &alive));
        assert!(!plan_write_due(&written, None, &same, &alive, 1000.0));
        // A clock started, or stopped for a pod still there: written, at most every 5 minutes.
        let started = clocks(&[("a/app/cpu", 100.0), ("b/app/cpu", 900.0)]);
        let stopped = clocks(&[]);
        for current in [&started, &stopped] {
            assert!(plan_changed(&written, current, &alive));
            assert!(plan_write_due(&written, None, current, &alive, 1000.0));
            assert!(!plan_write_due(
                &written,
                Some(800.0),
                current,
                &alive,
                1000.0
            ));
            assert!(plan_write_due(
                &written,
                Some(700.0),
                current,
                &alive,
                1000.0
            ));
        }
        // A template patch: at once.
        let patched = PlanState {
            template_patched_at: Some(1000.0),
            ..written.clone()
        };
        assert!(plan_write_due(
            &written,
            Some(990.0),
            &patched,
            &alive,
            1000.0
        ));
    }
}
