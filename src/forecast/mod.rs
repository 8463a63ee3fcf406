//! Pure time-series code for the predictive policy: seasonality detection, an additive
//! Holt-Winters model, and the [`Forecaster`] that keeps a bounded history, refits periodically
//! and gives a quantile of the load over a horizon.
//!
//! Everything works on a series at a fixed step (one value per minute in the policy). Nothing
//! here reads a clock or does I/O.

pub mod quantile;

use std::collections::VecDeque;

/// Autocorrelation of `x` at lags `0..=max_lag` (1.0 at lag 0; 0.0 for a constant series).
pub fn acf(x: &[f64], max_lag: usize) -> Vec<f64> {
    let n = x.len();
    let mean = x.iter().sum::<f64>() / n.max(1) as f64;
    let d: Vec<f64> = x.iter().map(|v| v - mean).collect();
    let var: f64 = d.iter().map(|v| v * v).sum();
    (0..=max_lag.min(n.saturating_sub(1)))
        .map(|lag| {
            if var <= 0.0 {
                return if lag == 0 { 1.0 } else { 0.0 };
            }
            d[..n - lag]
                .iter()
                .zip(&d[lag..])
                .map(|(a, b)| a * b)
                .sum::<f64>()
                / var
        })
        .collect()
}

fn mean(q: &VecDeque<f64>) -> f64 {
    if q.is_empty() {
        0.0
    } else {
        q.iter().sum::<f64>() / q.len() as f64
    }
}

/// Means of consecutive blocks of `k` values (the last partial block dropped).
fn block_means(x: &[f64], k: usize) -> Vec<f64> {
    x.chunks_exact(k)
        .map(|c| c.iter().sum::<f64>() / k as f64)
        .collect()
}

/// Detects the dominant seasonal period of `x` (in steps), between `min` and `max` steps and at
/// most a third of the history (so that at least three cycles are seen). Returns the period and
/// its autocorrelation, or None when no period stands out (autocorrelation below 0.3).
///
/// The series is averaged into blocks of about 1/120 of the longest candidate (smoothing noise
/// and keeping the cost linear), a linear trend is removed, and the autocorrelation's local
/// maxima are compared; the shortest period whose peak is within 10 % of the highest wins (so a
/// daily cycle is not reported as two days). The period is then refined at full resolution.
pub fn detect_period(x: &[f64], min: usize, max: usize) -> Option<(usize, f64)> {
    let max = max.min(x.len() / 3);
    if max < min.max(2) {
        return None;
    }
    let k = (max / 120).max(1);
    let mut y = block_means(x, k);
    detrend(&mut y);
    let acf = acf(&y, max / k);
    let lo = min.div_ceil(k).max(1);
    // A peak counts when it stands at least 0.3 above the lowest autocorrelation before it: a
    // slowly varying series has high autocorrelation at every short lag, which is no season.
    let mut low = f64::INFINITY;
    let mut peaks: Vec<(usize, f64)> = Vec::new();
    for l in 1..acf.len().saturating_sub(1) {
        low = low.min(acf[l]);
        if l >= lo
            && acf[l] >= acf[l - 1]
            && acf[l] >= acf[l + 1]
            && acf[l] > 0.3
            && acf[l] - low >= 0.3
        {
            peaks.push((l, acf[l]));
        }
    }
    let best = peaks.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let (lag, _) = *peaks.iter().find(|p| p.1 >= best - 0.1)?;
    // Refine around lag × k at full resolution.
    let mut z = x.to_vec();
    detrend(&mut z);
    let span = k;
    let (a, b) = (
        (lag * k).saturating_sub(span).max(min),
        (lag * k + span).min(max),
    );
    let full = acf_range(&z, a, b);
    full.into_iter().max_by(|p, q| p.1.total_cmp(&q.1))
}

/// Autocorrelation at lags a..=b only.
fn acf_range(x: &[f64], a: usize, b: usize) -> Vec<(usize, f64)> {
    let n = x.len();
    let mean = x.iter().sum::<f64>() / n as f64;
    let var: f64 = x.iter().map(|v| (v - mean).powi(2)).sum();
    (a..=b.min(n - 1))
        .map(|lag| {
            let c: f64 = (0..n - lag)
                .map(|i| (x[i] - mean) * (x[i + lag] - mean))
                .sum();
            (lag, if var > 0.0 { c / var } else { 0.0 })
        })
        .collect()
}

/// Removes the least-squares line.
fn detrend(y: &mut [f64]) {
    let n = y.len() as f64;
    if n < 2.0 {
        return;
    }
    let mx = (n - 1.0) / 2.0;
    let my = y.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (i, v) in y.iter().enumerate() {
        let dx = i as f64 - mx;
        sxy += dx * (v - my);
        sxx += dx * dx;
    }
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    for (i, v) in y.iter_mut().enumerate() {
        *v -= my + slope * (i as f64 - mx);
    }
}

/// The `q` quantile (0..=1) of `v` by linear interpolation; None when empty. Linear time.
pub fn quantile(v: &[f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    let pos = q.clamp(0.0, 1.0) * (s.len() - 1) as f64;
    let (i, f) = (pos.floor() as usize, pos.fract());
    let (_, &mut a, rest) = s.select_nth_unstable_by(i, f64::total_cmp);
    let b = rest.iter().copied().min_by(f64::total_cmp).unwrap_or(a);
    Some(a * (1.0 - f) + b * f)
}

/// Smoothing parameters of Holt-Winters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Smoothing {
    /// Level.
    pub alpha: f64,
    /// Trend.
    pub beta: f64,
    /// Season.
    pub gamma: f64,
}

/// Additive Holt-Winters with a damped trend: `x̂(t+h) = level + φ_h·trend + season(t+h)`.
#[derive(Debug, Clone, PartialEq)]
pub struct HoltWinters {
    /// Smoothing parameters.
    pub smoothing: Smoothing,
    /// Season length in steps.
    pub period: usize,
    level: f64,
    trend: f64,
    season: Vec<f64>,
    /// Index into `season` of the next step.
    pos: usize,
}

/// Trend damping per step: a trend fades over a few hours instead of running away.
const PHI: f64 = 0.995;

impl HoltWinters {
    /// Initial state from the first two periods of `x` (needs at least two).
    fn init(x: &[f64], period: usize, smoothing: Smoothing) -> HoltWinters {
        let m1 = x[..period].iter().sum::<f64>() / period as f64;
        let m2 = x[period..2 * period].iter().sum::<f64>() / period as f64;
        HoltWinters {
            smoothing,
            period,
            level: m1,
            trend: (m2 - m1) / period as f64,
            season: x[..period].iter().map(|v| v - m1).collect(),
            pos: 0,
        }
    }

    /// Forecast `h` steps ahead (h ≥ 1), never below zero.
    pub fn forecast(&self, h: usize) -> f64 {
        let damp: f64 = (1..=h).map(|i| PHI.powi(i as i32)).sum();
        let s = self.season[(self.pos + h - 1) % self.period];
        (self.level + damp * self.trend + s).max(0.0)
    }

    /// Takes the next observed value.
    pub fn update(&mut self, x: f64) {
        let Smoothing { alpha, beta, gamma } = self.smoothing;
        let s = self.season[self.pos];
        let prev = self.level;
        self.level = alpha * (x - s) + (1.0 - alpha) * (prev + PHI * self.trend);
        self.trend = beta * (self.level - prev) + (1.0 - beta) * PHI * self.trend;
        self.season[self.pos] = gamma * (x - self.level) + (1.0 - gamma) * s;
        self.pos = (self.pos + 1) % self.period;
    }

    /// Runs a model over `x` from its start; returns the model after the last value, the sum of
    /// squared one-step errors, and the `h`-step errors (actual - forecast made h steps before),
    /// both counted after the two initial periods.
    pub fn run(
        x: &[f64],
        period: usize,
        smoothing: Smoothing,
        h: usize,
    ) -> (HoltWinters, f64, Vec<f64>) {
        let mut m = HoltWinters::init(x, period, smoothing);
        let (mut sse, mut errs) = (0.0, Vec::new());
        let mut ahead: VecDeque<f64> = VecDeque::with_capacity(h + 1);
        for (t, &v) in x.iter().enumerate() {
            if t >= 2 * period {
                let e = v - m.forecast(1);
                sse += e * e;
                if ahead.len() == h {
                    errs.push(v - ahead.pop_front().unwrap_or(v));
                }
            }
            m.update(v);
            if t + 1 >= 2 * period {
                ahead.push_back(m.forecast(h));
            }
        }
        (m, sse, errs)
    }

    /// Fits the smoothing parameters by grid search on the one-step error.
    pub fn fit(x: &[f64], period: usize, h: usize) -> Option<(HoltWinters, Vec<f64>)> {
        if period < 2 || x.len() < 3 * period {
            return None;
        }
        let mut best: Option<(f64, HoltWinters, Vec<f64>)> = None;
        for alpha in [0.05, 0.1, 0.2, 0.35, 0.5, 0.7] {
            for beta in [0.0, 0.005, 0.02] {
                for gamma in [0.05, 0.1, 0.2, 0.4] {
                    let (m, sse, errs) =
                        HoltWinters::run(x, period, Smoothing { alpha, beta, gamma }, h);
                    if best.as_ref().is_none_or(|b| sse < b.0) {
                        best = Some((sse, m, errs));
                    }
                }
            }
        }
        best.map(|(_, m, e)| (m, e))
    }
}

/// Seasons people's schedules make, in seconds: a detected period within 3 % of one of these is
/// taken to be it (the autocorrelation of a noisy, smooth cycle peaks broadly, and a season that
/// is off by a few minutes drifts out of phase within days).
pub const CALENDAR_SEASONS: [f64; 12] = [
    900.0,
    1800.0,
    3600.0,
    7200.0,
    10800.0,
    14400.0,
    21600.0,
    28800.0,
    43200.0,
    86400.0,
    2.0 * 86400.0,
    7.0 * 86400.0,
];

/// `period` steps of `step_s` seconds, snapped to a calendar season within 3 %.
pub fn snap_to_calendar(period: usize, step_s: f64) -> usize {
    let secs = period as f64 * step_s;
    CALENDAR_SEASONS
        .iter()
        .find(|c| (secs - *c).abs() <= 0.03 * *c)
        .map_or(period, |c| (c / step_s).round() as usize)
}

/// Forecaster settings, in steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForecastConfig {
    /// Seconds per step.
    pub step_s: f64,
    /// History kept, in steps (older steps are dropped).
    pub history: usize,
    /// Fixed season length in steps; None detects it.
    pub season: Option<usize>,
    /// Shortest season considered when detecting.
    pub min_season: usize,
    /// Longest season considered when detecting.
    pub max_season: usize,
    /// Steps between refits.
    pub refit_every: usize,
    /// Forecast horizon in steps (≥ 1).
    pub horizon: usize,
    /// Quantile of the forecast to size for.
    pub quantile: f64,
}

/// A forecast over the horizon.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecast {
    /// Highest expected value over the horizon.
    pub expected: f64,
    /// Highest value of the quantile over the horizon.
    pub upper: f64,
    /// The season used, in steps.
    pub period: usize,
}

/// Why no forecast is given.
#[derive(Debug, Clone, PartialEq)]
pub enum NoForecast {
    /// Not enough history yet.
    ShortHistory {
        /// Steps of history.
        have: usize,
        /// Steps needed.
        need: usize,
    },
    /// No seasonal period stands out in the history.
    NoSeason,
    /// The recent forecast error is too large to trust: worse than seasonal naive (MASE), or
    /// large against the load itself.
    LargeError {
        /// Recent MASE against seasonal naive.
        mase: f64,
        /// Recent mean absolute error over the mean load.
        relative: f64,
    },
}

impl std::fmt::Display for NoForecast {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoForecast::ShortHistory { have, need } => {
                write!(f, "not enough history ({have} of {need} steps)")
            }
            NoForecast::NoSeason => f.write_str("no seasonal period found in the history"),
            NoForecast::LargeError { mase, relative } => write!(
                f,
                "recent forecast error is large (MASE {mase:.2} against seasonal naive, \
                 mean error {:.0} % of the load)",
                relative * 100.0
            ),
        }
    }
}

/// Recent errors kept for the quantile and the MASE check.
const ERRORS_KEPT: usize = 2 * 1440;
/// Recent errors over which MASE is judged.
const MASE_WINDOW: usize = 360;
/// MASE above this (worse than seasonal naive by half) means: do not trust the forecast.
const MASE_LIMIT: f64 = 1.5;
/// A mean absolute error above this share of the mean load means: do not trust the forecast.
const RELATIVE_LIMIT: f64 = 0.5;

/// Keeps a bounded history, refits periodically, tracks its own errors, and forecasts.
#[derive(Debug, Clone)]
pub struct Forecaster {
    cfg: ForecastConfig,
    history: VecDeque<f64>,
    model: Option<HoltWinters>,
    /// Why the last fit gave no model.
    unfit: Option<NoForecast>,
    since_fit: usize,
    /// h-step errors, in-sample from the last fit then online.
    errors: VecDeque<f64>,
    /// The configured quantile of `errors`, kept up to date.
    error_quantile: f64,
    /// Online |h-step error| of the model and of seasonal naive, and the values, for MASE and
    /// the relative error.
    abs_model: VecDeque<f64>,
    abs_naive: VecDeque<f64>,
    actual: VecDeque<f64>,
    /// Sums of |h-step error| of the model and of seasonal naive over the whole run, for MASE.
    total_abs: (f64, f64),
    /// h-step forecasts made, oldest first: front is for the next step once h are queued.
    ahead: VecDeque<f64>,
}

impl Forecaster {
    /// An empty forecaster.
    pub fn new(cfg: ForecastConfig) -> Forecaster {
        Forecaster {
            cfg,
            history: VecDeque::with_capacity(cfg.history),
            model: None,
            unfit: None,
            since_fit: 0,
            errors: VecDeque::new(),
            error_quantile: 0.0,
            abs_model: VecDeque::new(),
            abs_naive: VecDeque::new(),
            actual: VecDeque::new(),
            total_abs: (0.0, 0.0),
            ahead: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ForecastConfig {
        &self.cfg
    }

    /// Steps of history held.
    pub fn len(&self) -> usize {
        self.history.len()
    }

    /// True when no history is held.
    pub fn is_empty(&self) -> bool {
        self.history.is_empty()
    }

    /// Steps of history needed before a forecast.
    pub fn needed(&self) -> usize {
        3 * self.cfg.season.unwrap_or(self.cfg.min_season)
    }

    /// Approximate bytes held (history, errors and the model's season).
    pub fn memory_bytes(&self) -> usize {
        let floats = self.history.capacity()
            + self.errors.capacity()
            + self.abs_model.capacity()
            + self.abs_naive.capacity()
            + self.actual.capacity()
            + self.ahead.capacity()
            + self.model.as_ref().map_or(0, |m| m.season.capacity());
        std::mem::size_of::<Self>() + 8 * floats
    }

    fn push_bounded(q: &mut VecDeque<f64>, v: f64, cap: usize) {
        if q.len() == cap {
            q.pop_front();
        }
        q.push_back(v);
    }

    /// Takes the next completed step's value.
    pub fn push(&mut self, x: f64) {
        let h = self.cfg.horizon;
        if let Some(m) = &mut self.model {
            if self.ahead.len() == h
                && let Some(f) = self.ahead.pop_front()
            {
                Self::push_bounded(&mut self.errors, x - f, ERRORS_KEPT);
                Self::push_bounded(&mut self.abs_model, (x - f).abs(), MASE_WINDOW);
                Self::push_bounded(&mut self.actual, x, MASE_WINDOW);
                let n = self.history.len();
                if n >= m.period {
                    let naive = self.history[n - m.period];
                    Self::push_bounded(&mut self.abs_naive, (x - naive).abs(), MASE_WINDOW);
                    self.total_abs.0 += (x - f).abs();
                    self.total_abs.1 += (x - naive).abs();
                }
            }
            m.update(x);
            self.ahead.push_back(m.forecast(h));
            self.update_quantile();
        }
        Self::push_bounded(&mut self.history, x, self.cfg.history);
        self.since_fit += 1;
        let due = self.since_fit >= self.cfg.refit_every;
        if (self.model.is_none()
            && self.history.len() >= self.needed()
            && (due || self.unfit.is_none()))
            || (self.model.is_some() && due)
        {
            self.refit();
        }
    }

    /// Detects the season (unless fixed) and fits the model on the history held.
    pub fn refit(&mut self) {
        self.since_fit = 0;
        let x: Vec<f64> = self.history.iter().copied().collect();
        let period = match self.cfg.season {
            Some(p) => Some(p),
            None => detect_period(&x, self.cfg.min_season, self.cfg.max_season)
                .map(|p| snap_to_calendar(p.0, self.cfg.step_s)),
        };
        let Some(period) = period else {
            self.model = None;
            // Until three of the longest seasons fit in the history, no season may just mean
            // "not yet".
            let need = 3 * self.cfg.max_season.min(self.cfg.history / 3);
            self.unfit = Some(if x.len() < need {
                NoForecast::ShortHistory {
                    have: x.len(),
                    need,
                }
            } else {
                NoForecast::NoSeason
            });
            return;
        };
        match HoltWinters::fit(&x, period, self.cfg.horizon) {
            Some((m, errs)) => {
                let keep = errs.len().saturating_sub(ERRORS_KEPT);
                self.errors = errs[keep..].iter().copied().collect();
                self.update_quantile();
                self.ahead.clear();
                self.ahead.push_back(m.forecast(self.cfg.horizon));
                self.model = Some(m);
                self.unfit = None;
            }
            None => {
                self.model = None;
                self.unfit = Some(NoForecast::ShortHistory {
                    have: x.len(),
                    need: 3 * period,
                });
            }
        }
    }

    fn update_quantile(&mut self) {
        let (a, b) = self.errors.as_slices();
        let all = [a, b].concat();
        self.error_quantile = quantile(&all, self.cfg.quantile).unwrap_or(0.0).max(0.0);
    }

    /// Recent MASE against seasonal naive (None until enough online errors).
    pub fn recent_mase(&self) -> Option<f64> {
        if self.abs_model.len() < 60 || self.abs_naive.len() < 60 {
            return None;
        }
        let n = mean(&self.abs_naive);
        (n > 0.0).then(|| mean(&self.abs_model) / n)
    }

    /// MASE of the h-step forecasts over everything seen since the start, against a seasonal
    /// naive forecast with the same season (None before any forecast).
    pub fn mase(&self) -> Option<f64> {
        (self.total_abs.1 > 0.0).then(|| self.total_abs.0 / self.total_abs.1)
    }

    /// Recent mean absolute error over the mean value (None until enough online errors).
    pub fn recent_relative_error(&self) -> Option<f64> {
        let level = mean(&self.actual);
        (self.abs_model.len() >= 60 && level > 0.0).then(|| mean(&self.abs_model) / level)
    }

    /// The forecast over the horizon, or why there is none.
    pub fn forecast(&self) -> Result<Forecast, NoForecast> {
        let Some(m) = &self.model else {
            return Err(self.unfit.clone().unwrap_or(NoForecast::ShortHistory {
                have: self.history.len(),
                need: self.needed(),
            }));
        };
        let (mase, relative) = (self.recent_mase(), self.recent_relative_error());
        if mase.is_some_and(|m| m > MASE_LIMIT) || relative.is_some_and(|r| r > RELATIVE_LIMIT) {
            return Err(NoForecast::LargeError {
                mase: mase.unwrap_or(f64::NAN),
                relative: relative.unwrap_or(f64::NAN),
            });
        }
        let q = self.error_quantile;
        let expected = (1..=self.cfg.horizon)
            .map(|k| m.forecast(k))
            .fold(0.0, f64::max);
        Ok(Forecast {
            expected,
            upper: expected + q,
            period: m.period,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic noise in [-1, 1].
    fn noise(i: usize) -> f64 {
        let z = (i as u64)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(17)
            ^ 0x5bd1_e995;
        (z % 2001) as f64 / 1000.0 - 1.0
    }

    fn seasonal(n: usize, period: usize, amp: f64, noise_amp: f64) -> Vec<f64> {
        (0..n)
            .map(|i| {
                100.0
                    + amp * (2.0 * std::f64::consts::PI * i as f64 / period as f64).sin()
                    + noise_amp * noise(i)
            })
            .collect()
    }

    #[test]
    fn acf_of_a_sine_peaks_at_its_period() {
        let x = seasonal(600, 50, 10.0, 0.0);
        let a = acf(&x, 100);
        assert!((a[0] - 1.0).abs() < 1e-12);
        assert!(a[50] > 0.9 && a[25] < -0.9);
        assert_eq!(acf(&[3.0; 10], 3), vec![1.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn detects_daily_and_two_hour_seasons_and_none_in_noise() {
        // Seven days at one-minute steps.
        let daily = seasonal(7 * 1440, 1440, 40.0, 10.0);
        let (p, r) = detect_period(&daily, 30, 7 * 1440).unwrap();
        assert!((1430..=1450).contains(&p), "daily detected as {p} ({r})");
        // A job every two hours on a flat noisy load.
        let jobs: Vec<f64> = (0..3 * 1440)
            .map(|i| 50.0 + 5.0 * noise(i) + if i % 120 < 8 { 80.0 } else { 0.0 })
            .collect();
        let (p, _) = detect_period(&jobs, 30, 3 * 1440).unwrap();
        assert_eq!(p, 120, "two-hour job detected as {p}");
        let flat: Vec<f64> = (0..3 * 1440).map(|i| 50.0 + 5.0 * noise(i)).collect();
        assert_eq!(detect_period(&flat, 30, 3 * 1440), None);
        // Too short to see three cycles.
        assert_eq!(detect_period(&daily[..2 * 1440], 1000, 7 * 1440), None);
    }

    #[test]
    fn holt_winters_learns_a_clean_season() {
        let x = seasonal(10 * 96, 96, 30.0, 0.0);
        let (m, errs) = HoltWinters::fit(&x, 96, 3).unwrap();
        let next = seasonal(10 * 96 + 3, 96, 30.0, 0.0);
        for h in 1..=3 {
            assert!((m.forecast(h) - next[10 * 96 + h - 1]).abs() < 1.0, "h={h}");
        }
        assert!(errs.iter().all(|e| e.abs() < 2.0));
    }

    #[test]
    fn periods_snap_to_calendar_seasons() {
        assert_eq!(snap_to_calendar(1406, 60.0), 1440);
        assert_eq!(snap_to_calendar(118, 60.0), 120);
        assert_eq!(snap_to_calendar(100, 60.0), 100);
        assert_eq!(snap_to_calendar(290, 300.0), 288);
    }

    #[test]
    fn quantiles_interpolate() {
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[3.0, 1.0, 2.0], 0.5), Some(2.0));
        assert_eq!(quantile(&[1.0, 2.0], 0.25), Some(1.25));
        assert_eq!(quantile(&[1.0, 2.0], 1.0), Some(2.0));
    }

    fn config(horizon: usize) -> ForecastConfig {
        ForecastConfig {
            step_s: 60.0,
            history: 7 * 1440,
            season: None,
            min_season: 30,
            max_season: 7 * 1440,
            refit_every: 360,
            horizon,
            quantile: 0.9,
        }
    }

    #[test]
    fn forecaster_needs_history_then_covers_its_quantile() {
        let x = seasonal(6 * 1440, 1440, 40.0, 8.0);
        let mut f = Forecaster::new(config(3));
        for v in &x[..1000] {
            f.push(*v);
        }
        assert!(matches!(f.forecast(), Err(NoForecast::ShortHistory { .. })));
        let (mut inside, mut n) = (0, 0);
        for (i, v) in x.iter().enumerate().skip(1000) {
            if let Ok(fc) = f.forecast() {
                // The value 1..=3 steps ahead is at most `upper` about 90 % of the time.
                if i + 2 < x.len() {
                    n += 1;
                    if x[i..i + 3].iter().cloned().fold(0.0, f64::max) <= fc.upper {
                        inside += 1;
                    }
                }
                assert_eq!(fc.period, 1440, "period {} at step {i}", fc.period);
            }
            f.push(*v);
        }
        assert!(n > 2000, "forecasts given: {n}");
        let coverage = inside as f64 / n as f64;
        assert!((0.8..=0.99).contains(&coverage), "coverage {coverage}");
        assert!(f.recent_mase().unwrap() < 1.2, "mase {:?}", f.recent_mase());
        assert!(f.memory_bytes() < 400_000, "{}", f.memory_bytes());
    }

    #[test]
    fn a_broken_pattern_makes_it_step_back() {
        // Three clean days, then the load jumps between 0 and 300 at random: the forecast error is
        // as large as the load, and the forecaster says so.
        let mut x = seasonal(3 * 1440 + 60, 1440, 40.0, 1.0);
        x.extend((0..600).map(|i| if noise(i * 7 + 3) > 0.0 { 300.0 } else { 0.0 }));
        let mut cfg = config(2);
        cfg.season = Some(1440);
        cfg.refit_every = 100_000;
        let mut f = Forecaster::new(cfg);
        let mut saw = false;
        for v in x {
            f.push(v);
            saw |= matches!(f.forecast(), Err(NoForecast::LargeError { .. }));
        }
        assert!(
            saw,
            "mase {:?}, relative {:?}",
            f.recent_mase(),
            f.recent_relative_error()
        );
    }
}
