//! Step and ramp responses of the PID example (policies/examples/pid.yaml) on the simulated
//! service: it settles inside its tolerance band without sustained oscillation, overshoot stays
//! within 30 % of the ideal count (load / (capacity × target utilization)), and a period at `max`
//! does not wind the controller up.

use setpoint::policy;
use setpoint::sim::{self, ServiceModel, SimResult, Trace};
use std::path::Path;

fn pid_policy() -> policy::Policy {
    policy::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/examples/pid.yaml")).unwrap()
}

/// A trace at 60 s steps from a function of the minute.
fn trace(minutes: usize, f: impl Fn(usize) -> f64) -> Trace {
    Trace::new(
        (0..minutes).map(|m| m as f64 * 60.0).collect(),
        (0..minutes).map(f).collect(),
    )
}

const MODEL: ServiceModel = ServiceModel {
    capacity: 10.0,
    startup: 60.0,
};

/// Desired replicas at time t.
fn replicas_at(r: &SimResult, t: f64) -> u32 {
    r.decisions
        .iter()
        .take_while(|d| d.t <= t)
        .last()
        .unwrap()
        .replicas
}

/// (lowest, highest) replica counts inside the tolerance band for a load, and the ideal count.
fn band(p: &policy::Policy, load: f64) -> (u32, u32, f64) {
    let setpoint::engine::Target::Utilization(u) = p.horizontal.as_ref().unwrap().metrics[0].target
    else {
        panic!()
    };
    let g = &p.horizontal.as_ref().unwrap().governor;
    let per = |ratio: f64| load / (MODEL.capacity * u * ratio);
    (
        per(1.0 + g.tolerance_up).ceil() as u32,
        per(1.0 - g.tolerance_down).floor() as u32,
        per(1.0),
    )
}

fn changes_between(r: &SimResult, a: f64, b: f64) -> usize {
    r.decisions.iter().filter(|d| d.t > a && d.t <= b).count()
}

fn peak_after(r: &SimResult, t: f64) -> u32 {
    r.decisions
        .iter()
        .filter(|d| d.t >= t)
        .map(|d| d.replicas)
        .max()
        .unwrap_or(0)
        .max(replicas_at(r, t))
}

/// Settled inside [lo, hi] at the end, with no change after `quiet_from` seconds.
fn assert_settles(r: &SimResult, lo: u32, hi: u32, quiet_from: f64) -> u32 {
    let settled = replicas_at(r, 240.0 * 60.0 - 1.0);
    assert!(
        (lo..=hi).contains(&settled),
        "settled at {settled}, band [{lo}, {hi}]: {:#?}",
        r.decisions
    );
    assert_eq!(
        changes_between(r, quiet_from, 240.0 * 60.0),
        0,
        "no sustained oscillation: {:#?}",
        r.decisions
    );
    settled
}

#[test]
fn step_response_settles_with_bounded_overshoot() {
    // 100 → 200 req/s at minute 60.
    let p = pid_policy();
    let (lo, hi, ideal) = band(&p, 200.0);
    let r = sim::run(
        &p,
        &trace(240, |m| if m < 60 { 100.0 } else { 200.0 }),
        MODEL,
    );
    // Nothing moves in the last two hours.
    assert_settles(&r, lo, hi, 120.0 * 60.0);
    // Inside the band within 5 minutes of the step.
    assert!(replicas_at(&r, 65.0 * 60.0) >= lo, "{:#?}", r.decisions);
    let peak = peak_after(&r, 60.0 * 60.0);
    assert!(peak as f64 <= ideal * 1.3, "peak {peak} vs ideal {ideal}");
    assert!(r.summary.unserved_pct < 1.0, "{}", r.summary.unserved_pct);
}

#[test]
fn step_down_settles_without_undershoot() {
    let p = pid_policy();
    let (lo, hi, _) = band(&p, 100.0);
    let r = sim::run(
        &p,
        &trace(240, |m| if m < 60 { 200.0 } else { 100.0 }),
        MODEL,
    );
    assert_settles(&r, lo, hi, 120.0 * 60.0);
    let low = r
        .decisions
        .iter()
        .filter(|d| d.t >= 3600.0)
        .map(|d| d.replicas)
        .min()
        .unwrap();
    assert!(low >= lo, "undershoot to {low}");
    assert_eq!(r.summary.unserved_pct, 0.0);
}

#[test]
fn ramp_response_tracks_and_settles() {
    // 100 → 300 req/s over an hour, then flat for two.
    let p = pid_policy();
    let (lo, hi, ideal) = band(&p, 300.0);
    let r = sim::run(
        &p,
        &trace(240, |m| {
            100.0 + 200.0 * ((m as f64 - 60.0) / 60.0).clamp(0.0, 1.0)
        }),
        MODEL,
    );
    assert_settles(&r, lo, hi, 150.0 * 60.0);
    let peak = peak_after(&r, 60.0 * 60.0);
    assert!(peak as f64 <= ideal * 1.3, "peak {peak} vs ideal {ideal}");
    assert!(r.summary.unserved_pct < 1.0, "{}", r.summary.unserved_pct);
}

#[test]
fn a_period_at_max_does_not_wind_up() {
    // Far above what max = 12 can carry for two hours, then back to 50 req/s.
    let mut p = pid_policy();
    let (_, hi, _) = band(&p, 50.0);
    p.horizontal.as_mut().unwrap().governor.max = 12;
    let r = sim::run(
        &p,
        &trace(240, |m| if m < 120 { 500.0 } else { 50.0 }),
        MODEL,
    );
    assert_eq!(replicas_at(&r, 119.0 * 60.0), 12);
    assert!(r.decisions.iter().all(|d| (2..=12).contains(&d.replicas)));
    // Down within the 5-minute stabilization window plus a few ticks and limit steps, not held
    // up by an integral accumulated at max.
    assert!(replicas_at(&r, 132.0 * 60.0) <= hi, "{:#?}", r.decisions);
}
