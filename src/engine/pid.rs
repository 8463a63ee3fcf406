//! The PID policy: hold each metric at its target (its setpoint) with a PID controller whose
//! output is a replica count.
//!
//! The controller works on the normalized measurement `y = value / target` (per replica for a
//! `targetPerReplica` metric), so the error `e = y - 1` is relative and the gains do not depend on
//! the metric's unit. It is written in velocity (incremental) form, relative to the replica count
//! the target actually has:
//!
//! ```text
//! Δ = current × [ kp·(e_k - e_{k-1}) + ki·e_k·dt + kd·(D_k - D_{k-1}) ]
//! proposal = round(current + carry + Δ)
//! ```
//!
//! - The integral lives in the replica count itself, so a period at `max` (or any count the
//!   governor held) cannot wind it up: the next tick starts from what is really there.
//!   Only the fraction of a replica that rounding left behind is carried (`carry`, within ±0.5),
//!   and only while the target has the count last proposed, so small corrections add up.
//! - `D` is the derivative of the measurement (not of the error, so a target change gives no
//!   kick), low-pass filtered with time constant `derivativeFilter`.
//! - `dt` is the real time since the last tick, so a varying interval or a skipped tick is
//!   accounted for; after a gap of more than ten intervals the controller restarts.
//! - The first tick, and every restart, is bumpless: it proposes the current count.
//!
//! With `kp = 0, kd = 0, ki = 1/interval` one tick closes the whole error, as the threshold policy
//! does; smaller `ki` closes it over several ticks, and `kp`, `kd` add damping and anticipation.

use super::{MetricTarget, Observation, Proposal, Recommendation, Sample, Seconds, Target};
use serde::{Deserialize, Serialize};

/// The controller's gains.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PidParams {
    /// Proportional gain (per unit of relative error).
    pub kp: f64,
    /// Integral gain (per unit of relative error per second).
    pub ki: f64,
    /// Derivative gain (seconds).
    pub kd: f64,
    /// Time constant of the derivative's low-pass filter, seconds.
    pub derivative_filter: Seconds,
    /// The policy's tick interval (a gap of ten of them restarts the controller).
    pub interval: Seconds,
}

/// One metric's controller memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PidState {
    /// Time of the last tick with data.
    pub t: Seconds,
    /// Last relative error.
    pub error: f64,
    /// Last normalized measurement.
    pub y: f64,
    /// Last filtered derivative of the measurement (per second).
    pub derivative: f64,
    /// Fraction of a replica left by rounding, within ±0.5.
    pub carry: f64,
    /// The last proposal: the carry applies only while the target has this count.
    pub proposed: u32,
}

/// The normalized measurement y (1.0 = on target) at the current replica count. A utilization is
/// measured over ready pods; while new pods start, it is projected onto all of them (as if the
/// starting pods served nothing yet, the HPA's rule for unready pods on scale-up), so that the
/// controller does not keep adding replicas for load that those already starting will take.
fn normalized(target: Target, value: f64, obs: &Observation) -> f64 {
    let current = obs.current_replicas.max(1) as f64;
    match target {
        Target::Utilization(t) if obs.ready_replicas > 0 => {
            value / t * (obs.ready_replicas as f64).min(current) / current
        }
        Target::Utilization(t) => value / t,
        Target::PerReplica(t) => value / (t * current),
    }
}

/// One proposal per metric with data. `states` holds one controller per metric (resized here).
pub fn recommend(
    params: &PidParams,
    metrics: &[MetricTarget],
    states: &mut Vec<Option<PidState>>,
    obs: &Observation,
    now: Seconds,
) -> Recommendation {
    states.resize(metrics.len(), None);
    let current = obs.current_replicas.max(1);
    let c = current as f64;
    let mut rec = Recommendation::default();
    for (i, m) in metrics.iter().enumerate() {
        let value = match obs.samples.get(i) {
            Some(Sample::Value { value }) => *value,
            other => {
                rec.missing.push(super::Missing {
                    metric: m.name.clone(),
                    reason: match other {
                        Some(Sample::NoData { reason }) => reason.clone(),
                        _ => "not observed".into(),
                    },
                });
                continue;
            }
        };
        let y = normalized(m.target, value, obs);
        let e = y - 1.0;
        let fresh = PidState {
            t: now,
            error: e,
            y,
            derivative: 0.0,
            carry: 0.0,
            proposed: current,
        };
        let (next, desired) = match states[i] {
            Some(s) if now > s.t && now - s.t <= 10.0 * params.interval => {
                let dt = now - s.t;
                let raw = (y - s.y) / dt;
                let alpha = dt / (params.derivative_filter + dt);
                let d = s.derivative + alpha * (raw - s.derivative);
                let delta = c
                    * (params.kp * (e - s.error)
                        + params.ki * e * dt
                        + params.kd * (d - s.derivative));
                let carry = if s.proposed == current { s.carry } else { 0.0 };
                let target = (c + carry + delta).max(0.0);
                let proposal = target.round();
                let next = PidState {
                    t: now,
                    error: e,
                    y,
                    derivative: d,
                    carry: (target - proposal).clamp(-0.5, 0.5),
                    proposed: proposal.min(u32::MAX as f64) as u32,
                };
                (next, proposal)
            }
            // First tick, a restart after a long gap, or time that did not move: bumpless.
            _ => (fresh, c),
        };
        states[i] = Some(next);
        rec.proposals.push(Proposal {
            metric: m.name.clone(),
            value,
            target: m.target,
            ratio: y,
            replicas: desired.min(u32::MAX as f64) as u32,
        });
    }
    rec
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(kp: f64, ki: f64, kd: f64) -> PidParams {
        PidParams {
            kp,
            ki,
            kd,
            derivative_filter: 30.0,
            interval: 15.0,
        }
    }

    fn metric() -> Vec<MetricTarget> {
        vec![MetricTarget {
            name: "u".into(),
            target: Target::Utilization(0.5),
        }]
    }

    fn tick(
        p: &PidParams,
        st: &mut Vec<Option<PidState>>,
        current: u32,
        value: f64,
        now: f64,
    ) -> u32 {
        let obs = Observation {
            current_replicas: current,
            ready_replicas: current,
            samples: vec![Sample::from_f64(value)],
        };
        recommend(p, &metric(), st, &obs, now).proposals[0].replicas
    }

    #[test]
    fn first_tick_is_bumpless() {
        let mut st = Vec::new();
        assert_eq!(tick(&params(1.0, 0.05, 10.0), &mut st, 7, 0.9, 0.0), 7);
    }

    #[test]
    fn pure_integral_with_ki_one_per_interval_matches_threshold() {
        // 10 replicas at 0.75 against 0.5: e = 0.5; Δ = 10 × (1/15) × 0.5 × 15 = 5 → 15, which is
        // ceil(10 × 0.75 / 0.5) as the threshold policy gives.
        let p = params(0.0, 1.0 / 15.0, 0.0);
        let mut st = Vec::new();
        tick(&p, &mut st, 10, 0.75, 0.0);
        assert_eq!(tick(&p, &mut st, 10, 0.75, 15.0), 15);
    }

    #[test]
    fn a_skipped_tick_integrates_over_the_real_interval() {
        let p = params(0.0, 0.01, 0.0);
        let mut a = Vec::new();
        tick(&p, &mut a, 10, 0.75, 0.0);
        // 30 s since the last tick: Δ = 10 × 0.01 × 0.5 × 30 = 1.5 → round(11.5) = 12.
        assert_eq!(tick(&p, &mut a, 10, 0.75, 30.0), 12);
        // A gap of more than ten intervals restarts: bumpless again.
        assert_eq!(tick(&p, &mut a, 12, 0.75, 30.0 + 151.0), 12);
    }

    #[test]
    fn no_windup_at_saturation() {
        // Held at 10 (say, max) for an hour at double the target: each tick proposes from 10,
        // never from an accumulated integral.
        let p = params(0.0, 0.005, 0.0);
        let mut st = Vec::new();
        let mut last = 0;
        for k in 0..240 {
            last = tick(&p, &mut st, 10, 1.0, k as f64 * 15.0);
        }
        assert_eq!(
            last, 11,
            "10 + 10 × 0.005 × 1 × 15 = 10.75 → 11, every tick"
        );
        // When the load drops back to target, the proposal is back at once.
        assert_eq!(tick(&p, &mut st, 10, 0.5, 240.0 * 15.0), 10);
    }

    #[test]
    fn proportional_acts_on_change_and_derivative_on_measurement() {
        let p = params(1.0, 0.0, 0.0);
        let mut st = Vec::new();
        tick(&p, &mut st, 10, 0.5, 0.0);
        // Error from 0 to 0.2: Δ = 10 × 1 × 0.2 = 2.
        assert_eq!(tick(&p, &mut st, 10, 0.6, 15.0), 12);
        // Error unchanged: no proportional change.
        assert_eq!(tick(&p, &mut st, 12, 0.6, 30.0), 12);
        let p = params(0.0, 0.0, 15.0);
        let mut st = Vec::new();
        tick(&p, &mut st, 10, 0.5, 0.0);
        // Rising measurement: y from 1.0 to 1.2 over 15 s → raw 0.0133/s, filtered by
        // 15/(30+15) → 0.00444; Δ = 10 × 15 × 0.00444 = 0.67 → 11.
        assert_eq!(tick(&p, &mut st, 10, 0.6, 15.0), 11);
    }

    #[test]
    fn small_corrections_add_up_while_applied() {
        // Δ = 10 × 0.01 × 0.2 × 15 = 0.3 per tick: 10, then 10.3 → 10 (carry .3), 10.6 → 11.
        let p = params(0.0, 0.01, 0.0);
        let mut st = Vec::new();
        tick(&p, &mut st, 10, 0.6, 0.0);
        assert_eq!(tick(&p, &mut st, 10, 0.6, 15.0), 10);
        assert_eq!(tick(&p, &mut st, 10, 0.6, 30.0), 11);
    }
}
