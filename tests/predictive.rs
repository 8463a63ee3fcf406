//! The predictive policy in the simulator: reactive with a reason while history is short, then
//! capacity ahead of a daily ramp that the same policy without a forecast only follows.

use setpoint::engine::Algorithm;
use setpoint::policy;
use setpoint::sim::{self, ServiceModel, Trace};
use std::path::Path;

fn example() -> policy::Policy {
    policy::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/examples/predictive.yaml"))
        .unwrap()
}

/// Five days at one-minute steps: a night level of 100 req/s that jumps to 300 at 06:00 (faster
/// than a 60 s start-up can follow) and falls slowly in the evening, with a little deterministic
/// noise.
fn ramps() -> Trace {
    let n = 5 * 1440;
    let values = (0..n)
        .map(|i| {
            let m = i % 1440;
            let base = match m {
                0..360 => 100.0,
                360..1080 => 300.0,
                1080..1260 => 300.0 - 200.0 * (m - 1080) as f64 / 180.0,
                _ => 100.0,
            };
            base * (1.0 + 0.02 * (((i * 7919) % 13) as f64 / 6.0 - 1.0))
        })
        .collect();
    Trace::new((0..n).map(|i| i as f64 * 60.0).collect(), values)
}

#[test]
fn it_explains_falling_back_then_meets_the_ramp_early() {
    let p = example();
    let trace = ramps();
    let model = ServiceModel {
        capacity: 10.0,
        startup: 60.0,
    };
    let with = sim::run(&p, &trace, model);
    let mut reactive = p.clone();
    reactive.horizontal.as_mut().unwrap().algorithm = Algorithm::Threshold;
    let without = sim::run(&reactive, &trace, model);

    // Day one: the explanation says why there is no forecast.
    let first_day: Vec<_> = with
        .decisions
        .iter()
        .filter(|d| d.t > 0.0 && d.t < 86400.0)
        .collect();
    assert!(!first_day.is_empty());
    assert!(
        first_day
            .iter()
            .all(|d| d.reason.contains("reactive only: not enough history")),
        "{:?}",
        first_day[0]
    );

    // Days four and five: the forecast has 300 req/s covered (30 replicas at 100 %) when the
    // jump comes at 06:00; the reactive policy is still at the night level.
    for day in [3.0, 4.0] {
        let six = day * 86400.0 + 6.0 * 3600.0;
        let at_six = |r: &sim::SimResult| {
            r.decisions
                .iter()
                .take_while(|d| d.t <= six)
                .last()
                .unwrap()
                .replicas
        };
        assert!(at_six(&with) >= 30, "day {day}: {}", at_six(&with));
        assert!(at_six(&without) <= 15, "day {day}: {}", at_six(&without));
        let reason = &with.decisions.iter().rfind(|d| d.t <= six).unwrap().reason;
        assert!(
            reason.contains("forecast utilization over 105s"),
            "{reason}"
        );
    }
    assert!(
        with.summary.unserved_pct < without.summary.unserved_pct,
        "{} vs {}",
        with.summary.unserved_pct,
        without.summary.unserved_pct
    );
    let mase = with.summary.forecast_mase.unwrap();
    assert!(mase < 1.0, "forecast better than seasonal naive: {mase}");
}
