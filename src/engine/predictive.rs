//! The predictive policy: forecast each metric's load over the horizon that matters (replica
//! start-up plus one interval plus a margin) and size for a quantile of that forecast, on top of
//! the threshold policy's reactive proposal. The governor takes the larger, so a forecast can add
//! capacity early but never withholds what the current load needs.
//!
//! The load forecast is the metric's own value for a `targetPerReplica` metric (a total), and
//! `value × ready replicas` for a `utilization` metric (busy replica-equivalents), so that the
//! forecast does not depend on how many replicas there were. Samples are averaged per minute
//! into a bounded history ([`crate::forecast::Forecaster`]), which detects the season, fits
//! Holt-Winters, and tracks its own errors. With too little history, no season, or a large recent
//! error, the policy says so in the explanation and proposes reactively only.
//!
//! With `capacityPerReplica` set (`sizing`), the policy sizes for an SLO instead: a quantile of
//! the largest load over the horizon, learned online by [`crate::forecast::quantile`] (centre,
//! heteroscedastic spread, short-period profiles chosen by recent pinball loss), divided by the
//! load one replica serves at saturation. Its two proposals per metric are that quantile and the
//! reactive floor (the load seen now, at saturation), so a forecast never withholds what the
//! current load needs. With too little history it proposes reactively at the metric's target,
//! as above, and says so. The model lives in [`PredictiveState`]; a restart loses it, and the
//! daemon re-seeds it from Prometheus over `history`, one point per `interval`
//! ([`PredictiveParams::seed_step`]), so that it learns what it would have learned live.

use super::{Observation, Proposal, Recommendation, Sample, Seconds, Target, threshold};
use crate::forecast::quantile::{
    CONDITIONERS, QuantileConfig, QuantileModel, Sized, TooLittleHistory,
};
use crate::forecast::{ForecastConfig, Forecaster};
use serde::{Deserialize, Serialize};

/// Seconds per history step.
pub const STEP: Seconds = 60.0;
/// Seconds between refits (season detection and parameter search); the model is updated with
/// every step in between.
pub const REFIT: Seconds = 6.0 * 3600.0;
/// Longest gap, in steps, filled by carrying the last value forward; a longer one restarts the
/// history.
const MAX_GAP: i64 = 30;

/// The predictive policy's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PredictiveParams {
    /// History kept and fitted, seconds.
    pub history: Seconds,
    /// Season length in seconds; None detects it.
    pub season: Option<Seconds>,
    /// Quantile of the forecast to size for.
    pub quantile: f64,
    /// Forecast horizon: start-up + interval + margin, seconds.
    pub horizon: Seconds,
    /// The forecast proposal holds each metric at this multiple of its target: the quantile
    /// already covers the forecast's uncertainty, so it may size closer to capacity than the
    /// reactive proposal does (1.0: at the target).
    pub target_scale: f64,
    /// Quantile sizing (`capacityPerReplica` set); None: the Holt-Winters forecast above the
    /// reactive proposal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sizing: Option<Sizing>,
}

/// Settings of quantile sizing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sizing {
    /// Load one replica serves at saturation, in the metric's unit (1 for a utilization).
    pub capacity: f64,
    /// EWMA weight of each new sample in the centre (1: the last sample).
    pub smoothing: f64,
    /// Calibration step of the quantile in force (0: the quantile stays as configured).
    pub calibration: f64,
}

impl PredictiveParams {
    /// The step of the history the daemon seeds this policy with at start: the policy's
    /// `interval` for quantile sizing (its model learns from every tick's window mean, and from
    /// each phase of the minute), one point a minute for the Holt-Winters forecast (which
    /// averages per minute anyway).
    pub fn seed_step(&self, interval: Seconds) -> Seconds {
        match self.sizing {
            Some(_) => interval,
            None => STEP,
        }
    }

    fn quantile_config(&self) -> Option<QuantileConfig> {
        self.sizing.map(|s| QuantileConfig {
            quantile: self.quantile,
            horizon: self.horizon,
            smoothing: s.smoothing,
            capacity: s.capacity,
            calibration: s.calibration,
        })
    }

    fn config(&self) -> ForecastConfig {
        let steps = |s: Seconds| (s / STEP).round().max(1.0) as usize;
        let history = steps(self.history);
        ForecastConfig {
            step_s: STEP,
            history,
            season: self.season.map(steps),
            min_season: steps(900.0),
            max_season: steps(7.0 * 86400.0).min(history / 3),
            refit_every: steps(REFIT),
            // From the end of the last completed minute: the open minute, then the horizon.
            horizon: (self.horizon / STEP).ceil().max(1.0) as usize + 1,
            quantile: self.quantile,
        }
    }
}

/// What the explanation shows of one metric's forecast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForecastNote {
    /// The metric.
    pub metric: String,
    /// The load now (the metric, or busy replica-equivalents for a utilization).
    pub current: f64,
    /// Highest expected load over the horizon.
    pub expected: Option<f64>,
    /// Highest load at the quantile over the horizon.
    pub upper: Option<f64>,
    /// The quantile.
    pub quantile: f64,
    /// Horizon, seconds.
    pub horizon_s: Seconds,
    /// Season found, seconds.
    pub season_s: Option<Seconds>,
    /// Why the policy fell back to reactive only.
    pub fallback: Option<String>,
    /// Quantile sizing: which model gave the quantile (`expected` is then its centre).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Quantile sizing: the quantile in force, when calibration has moved it from `quantile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibrated: Option<f64>,
}

/// One metric's history.
#[derive(Debug, Clone)]
pub struct MetricHistory {
    forecaster: Forecaster,
    /// Minute index, sum and count of the step being filled.
    bucket: Option<(i64, f64, u32)>,
    last: Option<f64>,
    /// Quantile sizing's model (then the forecaster is not fed), and its last answer.
    sizer: Option<(QuantileModel, Result<Sized, TooLittleHistory>)>,
}

impl MetricHistory {
    fn new(cfg: ForecastConfig, sizing: Option<QuantileConfig>) -> MetricHistory {
        MetricHistory {
            forecaster: Forecaster::new(cfg),
            bucket: None,
            last: None,
            sizer: sizing.map(|c| {
                let need = TooLittleHistory {
                    have: 0,
                    need: c.needed(),
                };
                (QuantileModel::new(c), Err(need))
            }),
        }
    }

    /// Adds a load sample taken at `t`. Samples within a minute are averaged; a completed minute
    /// goes to the forecaster; missing minutes (up to half an hour) carry the last value. With
    /// quantile sizing, every sample goes to its model instead.
    pub fn observe(&mut self, t: Seconds, x: f64) {
        if let Some((m, last)) = &mut self.sizer {
            *last = m.observe(t, x);
            return;
        }
        let minute = (t / STEP).floor() as i64;
        match self.bucket {
            Some((m, sum, n)) if m == minute => self.bucket = Some((m, sum + x, n + 1)),
            Some((m, _, _)) if minute < m => {} // out of order: ignore
            Some((m, sum, n)) => {
                let mean = sum / n as f64;
                self.forecaster.push(mean);
                self.last = Some(mean);
                let gap = minute - m - 1;
                if gap > MAX_GAP {
                    self.forecaster = Forecaster::new(*self.forecaster.config());
                } else {
                    for _ in 0..gap {
                        self.forecaster.push(mean);
                    }
                }
                self.bucket = Some((minute, x, 1));
            }
            None => self.bucket = Some((minute, x, 1)),
        }
    }

    /// The forecaster.
    pub fn forecaster(&self) -> &Forecaster {
        &self.forecaster
    }
}

/// The predictive policy's memory: one history per metric. Not kept across restarts: the daemon
/// re-reads history from Prometheus.
#[derive(Debug, Clone, Default)]
pub struct PredictiveState {
    /// One per metric.
    pub metrics: Vec<MetricHistory>,
}

impl PredictiveState {
    /// Makes sure there is one history per metric.
    pub fn ensure(&mut self, params: &PredictiveParams, n: usize) {
        while self.metrics.len() < n {
            self.metrics.push(MetricHistory::new(
                params.config(),
                params.quantile_config(),
            ));
        }
    }

    /// Approximate bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.metrics
            .iter()
            .map(|m| {
                m.forecaster.memory_bytes() + m.sizer.as_ref().map_or(0, |s| s.0.memory_bytes())
            })
            .sum()
    }
}

/// The load a metric's sample stands for: the value for a total, busy replica-equivalents for a
/// utilization.
pub fn load_of(target: Target, value: f64, obs: &Observation) -> f64 {
    match target {
        Target::PerReplica(_) => value,
        Target::Utilization(_) => value * obs.ready_replicas.max(1) as f64,
    }
}

/// Replicas for a load: the inverse of [`load_of`] at `scale` times the target.
fn replicas_for(target: Target, load: f64, scale: f64) -> f64 {
    match target {
        Target::PerReplica(t) | Target::Utilization(t) => load / (t * scale),
    }
}

/// A quantile as a percentile label: 0.99 → "99", 0.995 → "99.5", 0.9999 → "99.99".
pub fn fmt_quantile(q: f64) -> String {
    // In thousandths of a percent, without float formatting: the simulator labels every tick.
    let m = (q * 100_000.0).round() as i64;
    let (whole, frac) = (m / 1000, m % 1000);
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:03}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

/// The proposal that sizes `load` at `capacity` per replica.
fn saturation_proposal(
    metric: &str,
    label: &str,
    load: f64,
    capacity: f64,
    obs: &Observation,
) -> Proposal {
    let want = load / capacity;
    Proposal {
        metric: format!("{metric} ({label})"),
        value: load,
        target: Target::PerReplica(capacity),
        ratio: want / obs.current_replicas.max(1) as f64,
        replicas: (want - 1e-9).ceil().clamp(0.0, u32::MAX as f64) as u32,
    }
}

/// The reactive proposals plus one forecast proposal per metric with data and a forecast.
pub fn recommend(
    params: &PredictiveParams,
    metrics: &[super::MetricTarget],
    state: &mut PredictiveState,
    obs: &Observation,
    now: Seconds,
) -> Recommendation {
    state.ensure(params, metrics.len());
    let mut rec = threshold::recommend(metrics, obs);
    for (i, m) in metrics.iter().enumerate() {
        let Some(Sample::Value { value }) = obs.samples.get(i) else {
            continue; // no data: no forecast proposal either
        };
        let x = load_of(m.target, *value, obs);
        let hist = &mut state.metrics[i];
        hist.observe(now, x);
        let mut note = ForecastNote {
            metric: m.name.clone(),
            current: x,
            expected: None,
            upper: None,
            quantile: params.quantile,
            horizon_s: params.horizon,
            season_s: None,
            fallback: None,
            model: None,
            calibrated: None,
        };
        if let Some((_, last)) = &hist.sizer {
            let cap = params.sizing.map_or(1.0, |s| s.capacity);
            match last {
                Err(why) => note.fallback = Some(format!("reactive only: {why}")),
                Ok(sized) => {
                    note.expected = Some(sized.centre);
                    note.upper = Some(sized.upper);
                    note.model = Some(CONDITIONERS[sized.conditioner].to_string());
                    // (Moved by at least what a percentile label shows.)
                    note.calibrated = ((sized.quantile - params.quantile).abs() >= 5e-6)
                        .then_some(sized.quantile);
                    // The reactive proposal at the metric's target gives way to the floor at
                    // saturation and the quantile.
                    rec.proposals.retain(|p| p.metric != m.name);
                    let q = format!("p{}", fmt_quantile(params.quantile));
                    for (label, v) in [("now, at saturation".to_string(), x), (q, sized.upper)] {
                        rec.proposals
                            .push(saturation_proposal(&m.name, &label, v, cap, obs));
                    }
                }
            }
            rec.forecasts.push(note);
            continue;
        }
        match hist.forecaster.forecast() {
            Err(why) => note.fallback = Some(format!("reactive only: {why}")),
            Ok(fc) => {
                note.expected = Some(fc.expected);
                note.upper = Some(fc.upper);
                note.season_s = Some(fc.period as f64 * STEP);
                let want = replicas_for(m.target, fc.upper, params.target_scale);
                let current = obs.current_replicas.max(1) as f64;
                rec.proposals.push(Proposal {
                    metric: format!(
                        "{} (forecast p{})",
                        m.name,
                        (params.quantile * 100.0).round()
                    ),
                    value: fc.upper,
                    target: m.target,
                    ratio: want / current,
                    replicas: (want - 1e-9).ceil().clamp(0.0, u32::MAX as f64) as u32,
                });
            }
        }
        rec.forecasts.push(note);
    }
    rec
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::MetricTarget;

    fn params() -> PredictiveParams {
        PredictiveParams {
            history: 7.0 * 86400.0,
            season: None,
            quantile: 0.9,
            horizon: 120.0,
            target_scale: 1.0,
            sizing: None,
        }
    }

    /// Quantile sizing at p99, 10 per replica.
    fn sizing_params() -> PredictiveParams {
        PredictiveParams {
            sizing: Some(Sizing {
                capacity: 10.0,
                smoothing: 1.0,
                calibration: crate::forecast::quantile::CALIBRATION,
            }),
            quantile: 0.99,
            ..params()
        }
    }

    fn obs(current: u32, value: f64) -> Observation {
        Observation {
            current_replicas: current,
            ready_replicas: current,
            samples: vec![Sample::from_f64(value)],
        }
    }

    fn metrics() -> Vec<MetricTarget> {
        vec![MetricTarget {
            name: "rps".into(),
            target: Target::PerReplica(10.0),
        }]
    }

    #[test]
    fn minutes_are_averaged_and_gaps_carried() {
        let mut h = MetricHistory::new(params().config(), None);
        h.observe(0.0, 10.0);
        h.observe(30.0, 20.0);
        assert_eq!(h.forecaster.len(), 0, "the first minute is still open");
        h.observe(60.0, 5.0);
        assert_eq!(h.forecaster.len(), 1);
        // Minutes 2-4 missing: carried.
        h.observe(300.0, 5.0);
        assert_eq!(h.forecaster.len(), 5);
        // A gap of over half an hour restarts the history.
        h.observe(300.0 + 3600.0, 5.0);
        assert_eq!(h.forecaster.len(), 0);
    }

    #[test]
    fn without_history_it_is_reactive_and_says_so() {
        let mut st = PredictiveState::default();
        let r = recommend(&params(), &metrics(), &mut st, &obs(5, 80.0), 0.0);
        assert_eq!(r.proposals.len(), 1, "only the reactive proposal");
        assert_eq!(r.proposals[0].replicas, 8);
        let f = &r.forecasts[0];
        assert!(
            f.fallback
                .as_deref()
                .unwrap()
                .starts_with("reactive only: not enough history"),
            "{f:?}"
        );
    }

    #[test]
    fn a_daily_rise_is_met_before_it_arrives() {
        // Three days of a daily cycle at 15 s ticks; on day four, just before the morning rise,
        // the forecast proposal is above the reactive one.
        let load = |t: f64| {
            let day = (t % 86400.0) / 3600.0;
            if (8.0..20.0).contains(&day) {
                400.0
            } else {
                100.0
            }
        };
        let mut st = PredictiveState::default();
        let mut t = 0.0;
        while t < 3.0 * 86400.0 + 8.0 * 3600.0 - 90.0 {
            recommend(&params(), &metrics(), &mut st, &obs(10, load(t)), t);
            t += 15.0;
        }
        let r = recommend(&params(), &metrics(), &mut st, &obs(10, load(t)), t);
        let f = &r.forecasts[0];
        assert_eq!(f.fallback, None, "{f:?}");
        assert_eq!(f.season_s, Some(86400.0));
        assert_eq!(r.proposals[0].replicas, 10, "reactive: 100 req/s now");
        assert!(
            r.proposals[1].replicas >= 35,
            "forecast: {:?}",
            r.proposals[1]
        );
        assert!(r.proposals[1].metric.contains("forecast p90"));
        assert!(st.memory_bytes() < 1 << 20, "{}", st.memory_bytes());
    }

    #[test]
    fn quantiles_read_as_percentiles() {
        assert_eq!(fmt_quantile(0.99), "99");
        assert_eq!(fmt_quantile(0.995), "99.5");
        assert_eq!(fmt_quantile(0.9999), "99.99");
        assert_eq!(fmt_quantile(0.5), "50");
        assert_eq!(fmt_quantile(0.99995), "99.995");
        assert_eq!(fmt_quantile(0.0001), "0.01");
    }

    #[test]
    fn quantile_sizing_proposes_the_quantile_and_the_floor_at_saturation() {
        let p = sizing_params();
        let mut st = PredictiveState::default();
        let mut r = Recommendation::default();
        for i in 0..=400 {
            let x = 100.0 + if i % 7 == 0 { 30.0 } else { 0.0 };
            r = recommend(&p, &metrics(), &mut st, &obs(10, x), 15.0 * i as f64);
            if i < 200 {
                assert_eq!(r.proposals.len(), 1, "reactive while history is short");
                assert!(r.forecasts[0].fallback.is_some());
            }
        }
        let f = &r.forecasts[0];
        assert_eq!(f.fallback, None, "{f:?}");
        assert!(f.model.is_some());
        assert_eq!(r.proposals.len(), 2);
        assert!(r.proposals[0].metric.contains("at saturation"));
        assert_eq!(r.proposals[0].replicas, 10, "{:?}", r.proposals);
        assert!(r.proposals[1].metric.contains("p99"));
        assert!(r.proposals[1].replicas >= 13, "{:?}", r.proposals);
    }

    #[test]
    fn a_history_seeded_at_the_seed_step_sizes_at_every_phase_of_the_minute() {
        // The daemon seeds from Prometheus one point each `seed_step` up to now, then ticks.
        // Quantile sizing files residuals by the tick's phase in the minute: seeded one point a
        // minute, only one phase would have a quantile after a restart; at the interval, all do.
        let p = sizing_params();
        assert_eq!(p.seed_step(15.0), 15.0);
        assert_eq!(
            params().seed_step(15.0),
            STEP,
            "Holt-Winters averages per minute"
        );
        let load = |t: f64| {
            100.0 + 20.0 * (t / 700.0).sin() + if (t as i64 / 15) % 5 == 0 { 15.0 } else { 0.0 }
        };
        let seeded = |step: f64| {
            let mut st = PredictiveState::default();
            st.ensure(&p, 1);
            let mut t = 0.0;
            while t < 2.0 * 3600.0 {
                st.metrics[0].observe(t, load(t));
                t += step;
            }
            st
        };
        let sized_at = |mut st: PredictiveState| -> Vec<bool> {
            (0..4)
                .map(|k| {
                    let t = 2.0 * 3600.0 + 15.0 * k as f64;
                    let r = recommend(&p, &metrics(), &mut st, &obs(10, load(t)), t);
                    r.forecasts[0].fallback.is_none()
                })
                .collect()
        };
        assert_eq!(sized_at(seeded(p.seed_step(15.0))), vec![true; 4]);
        let by_minute = sized_at(seeded(STEP));
        assert!(
            by_minute.iter().filter(|&&s| !s).count() >= 3,
            "{by_minute:?}"
        );
    }

    #[test]
    fn missing_samples_give_no_forecast_proposal() {
        let mut st = PredictiveState::default();
        let o = Observation {
            current_replicas: 4,
            ready_replicas: 4,
            samples: vec![Sample::no_data("down")],
        };
        let r = recommend(&params(), &metrics(), &mut st, &o, 0.0);
        assert!(r.proposals.is_empty());
        assert_eq!(r.missing.len(), 1);
        assert!(r.forecasts.is_empty());
    }
}
