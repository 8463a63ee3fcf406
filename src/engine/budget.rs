//! The action budget of the scale-down side (`scaleDown.adaptive`): keep the policy's scaling
//! actions at or below a share of what the HPA would make on the same load, by raising the
//! scale-down stabilization window and `tolerance.down` along a ladder while over budget and
//! lowering them again while well under it.
//!
//! - The shadow HPA: each tick the recommendation's [`reference`] (the HPA's formula at the
//!   metrics' targets: the threshold policy's largest proposal) goes through the HPA's own rules
//!   on a replica count of the shadow's own: a 10 % tolerance around that count, scale-up by at
//!   most max(+100 %, +4 pods) a tick, scale-down to the highest recommendation of the last 5
//!   minutes. A change of the shadow's count is one shadow action.
//! - The policy's own actions are the ones the caller applied ([`super::GovernorState::commit`]).
//! - The ladder: rung 0 is the policy's own stabilization window and `tolerance.down`; the rungs
//!   above take the windows of [`WINDOWS`] beyond it, with the tolerance rising evenly to
//!   [`TOP_TOLERANCE`] (or the policy's own, if higher).
//! - The balance: both counts with an exponential decay (half-life [`HALF_LIFE`]), so that a
//!   busy day spends its own budget, not a quiet one's; the excess is the own count less
//!   `share` × the shadow's.
//! - The rung is judged on what it spends: once the shadow has made [`EVIDENCE`] actions since
//!   the last judgement (or the policy that many more than its share of them), the own actions
//!   of that stretch over `share` × the shadow's is the rung's rate. With an excess and a rate
//!   of 1 or more (the rung does not pay the excess back), it goes up one; with no excess and a
//!   rate below [`DOWN_AT`], down one.
//!
//! Scale-up is never slowed: the budget is spent where it pays, on capacity that comes when the
//! load does. The state is part of the governor's memory, so it survives a restart.
//!
//! [`reference`]: super::Recommendation::reference

use super::{Seconds, hpa};
use serde::{Deserialize, Serialize};

/// Half-life of the action counts, seconds.
pub const HALF_LIFE: Seconds = 6.0 * 3600.0;
/// Shadow actions (or own actions over the share) that make a stretch worth judging.
pub const EVIDENCE: f64 = 10.0;
/// The rung goes down when its rate is below this.
pub const DOWN_AT: f64 = 0.8;
/// Stabilization windows of the rungs above the policy's own, seconds.
pub const WINDOWS: [Seconds; 6] = [120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0];
/// `tolerance.down` of the top rung (unless the policy's own is higher).
pub const TOP_TOLERANCE: f64 = 0.3;

/// The budget's setting: the share of the shadow HPA's actions the policy may make.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ActionBudget {
    /// Share of the shadow HPA's actions (0.95: at most 95 % of them).
    pub share: f64,
}

/// One rung: the scale-down window and tolerance in force.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rung {
    /// Its index (0: the policy's own setting).
    pub index: usize,
    /// Rungs in all.
    pub of: usize,
    /// Scale-down stabilization window, seconds.
    pub window: Seconds,
    /// `tolerance.down`.
    pub tolerance: f64,
}

/// The ladder of a policy whose own setting is `window` and `tolerance`: its rung `index`
/// (clamped to the top one).
pub fn rung(window: Seconds, tolerance: f64, index: usize) -> Rung {
    let mut above = WINDOWS.iter().copied().filter(|&w| w > window);
    let of = above.clone().count() + 1;
    let index = index.min(of - 1);
    let top = tolerance.max(TOP_TOLERANCE);
    Rung {
        index,
        of,
        window: match index {
            0 => window,
            i => above.nth(i - 1).unwrap_or(window),
        },
        tolerance: match of {
            1 => top,
            _ => tolerance + (top - tolerance) * index as f64 / (of - 1) as f64,
        },
    }
}

/// The action counts at one tick, and the share allowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Counts {
    /// The policy's own actions (decayed).
    pub own: f64,
    /// The shadow HPA's (decayed).
    pub shadow: f64,
    /// The share allowed.
    pub share: f64,
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "action budget: {:.1} actions against a shadow HPA's {:.1} (half-life {}), at most {}×",
            self.own,
            self.shadow,
            humantime::format_duration(std::time::Duration::from_secs_f64(HALF_LIFE)),
            self.share
        )
    }
}

/// What the budget remembers between ticks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetState {
    /// The rung in force.
    pub rung: usize,
    /// The policy's own actions since the rung was last judged.
    pub own_here: f64,
    /// The shadow HPA's actions since then.
    pub shadow_here: f64,
    /// The policy's own actions, decayed to `at`.
    pub own: f64,
    /// The shadow HPA's actions, decayed to `at`.
    pub shadow: f64,
    /// When the counts were last decayed.
    pub at: Seconds,
    /// The shadow HPA's replica count (0: not started).
    pub replicas: u32,
    /// The shadow HPA's recommendations within its scale-down window: (when, replicas).
    pub recommendations: Vec<(Seconds, u32)>,
}

impl BudgetState {
    fn decay(&mut self, now: Seconds) {
        if now > self.at {
            let f = (-(now - self.at) * std::f64::consts::LN_2 / HALF_LIFE).exp();
            self.own *= f;
            self.shadow *= f;
            self.at = now;
        }
    }

    /// Counts one action of the policy's own, applied at `now`.
    pub fn own_action(&mut self, now: Seconds) {
        self.decay(now);
        self.own += 1.0;
        self.own_here += 1.0;
    }

    /// One tick of the shadow HPA on `reference` (None: no metric had data, so it holds), with
    /// the target at `current` replicas when the shadow starts.
    fn shadow_tick(&mut self, reference: Option<u32>, current: u32, now: Seconds) {
        if self.replicas == 0 {
            self.replicas = current.max(1);
        }
        let Some(raw) = reference else { return };
        let at = self.replicas;
        let rec = match (raw as f64 / at as f64 - 1.0).abs() <= hpa::TOLERANCE + 1e-9 {
            true => at,
            false => raw.max(1),
        };
        self.recommendations
            .retain(|&(t, _)| t > now - hpa::SCALE_DOWN_WINDOW);
        self.recommendations.push((now, rec));
        let to = match rec > at {
            // The HPA's scale-up limit, applied per tick.
            true => {
                let by_percent = (at as f64 * (1.0 + hpa::SCALE_UP_PERCENT / 100.0)) as u32;
                rec.min(by_percent.max(at + hpa::SCALE_UP_PODS))
            }
            false => {
                let high = self.recommendations.iter().map(|&(_, r)| r).max();
                high.unwrap_or(rec).min(at)
            }
        };
        if to != at {
            self.shadow += 1.0;
            self.shadow_here += 1.0;
            self.replicas = to;
        }
    }

    /// Advances the shadow HPA and moves the rung for this tick, on the ladder of a policy whose
    /// own setting is `window` and `tolerance` ([`rung`]); returns the rung in force.
    pub fn tick(
        &mut self,
        budget: &ActionBudget,
        (window, tolerance): (Seconds, f64),
        reference: Option<u32>,
        current: u32,
        now: Seconds,
    ) -> Rung {
        self.decay(now);
        self.shadow_tick(reference, current, now);
        let top = rung(window, tolerance, usize::MAX).index;
        let share = budget.share;
        let judged =
            self.shadow_here >= EVIDENCE || self.own_here >= share * self.shadow_here + EVIDENCE;
        if judged {
            let rate = self.own_here / (share * self.shadow_here.max(1.0));
            let excess = self.own - share * self.shadow;
            if excess > 0.0 && rate >= 1.0 && self.rung < top {
                self.rung += 1;
            } else if rate < DOWN_AT && excess < 0.0 && self.rung > 0 {
                self.rung -= 1;
            }
            self.own_here = 0.0;
            self.shadow_here = 0.0;
        }
        self.rung = self.rung.min(top);
        rung(window, tolerance, self.rung)
    }

    /// The counts, for the explanation ([`Counts`]'s words).
    pub fn counts(&self, budget: &ActionBudget) -> Counts {
        Counts {
            own: self.own,
            shadow: self.shadow,
            share: budget.share,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ladder_starts_at_the_policy_setting_and_ends_at_an_hour() {
        let ladder = |w, t| -> Vec<Rung> {
            let n = rung(w, t, usize::MAX).of;
            (0..n).map(|i| rung(w, t, i)).collect()
        };
        let l = ladder(300.0, 0.0);
        assert_eq!(l.len(), 5);
        assert_eq!((l[0].window, l[0].tolerance), (300.0, 0.0));
        assert_eq!(l[4].window, 3600.0);
        assert!((l[4].tolerance - TOP_TOLERANCE).abs() < 1e-12);
        assert!(l.windows(2).all(|w| w[0].window < w[1].window));
        assert!(l.windows(2).all(|w| w[0].tolerance <= w[1].tolerance));
        // A policy already at the top keeps its own setting.
        let top = ladder(3600.0, 0.5);
        assert_eq!(top.len(), 1);
        assert_eq!((top[0].window, top[0].tolerance), (3600.0, 0.5));
    }

    #[test]
    fn the_shadow_follows_the_hpa_rules() {
        let mut st = BudgetState::default();
        let b = ActionBudget { share: 1.0 };
        let l = (120.0, 0.0);
        // Within 10 %: no action.
        st.tick(&b, l, Some(10), 10, 0.0);
        st.tick(&b, l, Some(11), 10, 15.0);
        assert_eq!((st.replicas, st.shadow), (10, 0.0));
        // Up at once, by at most max(+100 %, +4) a tick.
        st.tick(&b, l, Some(20), 10, 30.0);
        assert_eq!(st.replicas, 20);
        st.tick(&b, l, Some(50), 10, 35.0);
        assert_eq!(st.replicas, 40);
        assert!((st.shadow - 2.0).abs() < 1e-3, "{}", st.shadow);
        st.tick(&b, l, Some(20), 10, 40.0);
        assert_eq!(st.replicas, 40);
        // Down only to the highest of the last 5 minutes.
        st.tick(&b, l, Some(5), 10, 45.0);
        assert_eq!(st.replicas, 40);
        st.tick(&b, l, Some(5), 10, 40.0 + 301.0);
        assert_eq!(st.replicas, 5);
        // No data: holds, and the counts only decay.
        let before = st.shadow;
        st.tick(&b, l, None, 10, 400.0);
        assert!(st.shadow <= before);
        assert_eq!(st.replicas, 5);
    }

    #[test]
    fn the_rung_rises_while_over_budget_and_falls_back_when_under() {
        let mut st = BudgetState::default();
        let b = ActionBudget { share: 0.95 };
        let l = (120.0, 0.0);
        // The shadow makes one action an hour (a slow swing); the policy four.
        let mut t = 0.0;
        let mut highest = 0;
        while t < 12.0 * 3600.0 {
            let hour = (t / 3600.0) as u32;
            let reference = if hour.is_multiple_of(2) { 10 } else { 20 };
            let r = st.tick(&b, l, Some(reference), 10, t);
            highest = highest.max(r.index);
            if (t as u64).is_multiple_of(900) {
                st.own_action(t);
            }
            t += 15.0;
        }
        assert!(highest >= 2, "rose to rung {highest}");
        assert!(st.rung > 0);
        // Then the policy stops acting: the rung comes back down to its own setting.
        while t < 96.0 * 3600.0 {
            let hour = (t / 3600.0) as u32;
            let reference = if hour.is_multiple_of(2) { 10 } else { 20 };
            st.tick(&b, l, Some(reference), 10, t);
            t += 15.0;
        }
        assert_eq!(st.rung, 0, "{st:?}");
        let words = st.counts(&b).to_string();
        assert!(words.contains("shadow HPA"), "{words}");
    }
}
