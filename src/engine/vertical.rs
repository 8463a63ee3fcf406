//! The vertical recommender: right-size one container's CPU and memory requests from observed
//! usage.
//!
//! - Usage goes into a [`DecayingHistogram`] per resource: exponential buckets, sample weights
//!   that halve every `half_life` (older usage counts less).
//! - CPU: every usage sample is added. Memory: the peak of each `memory_peak_window` is added
//!   (the VPA's peak-based approach: a container must fit its peaks, not its average), and the
//!   running peak of the current window counts too.
//! - target = the `target_percentile` (CPU) or `memory_percentile` (memory) of the histogram, plus
//!   the safety margin; lower and upper bounds are the `lower_percentile` and `upper_percentile`
//!   plus the margin, widened by `1 + 1/days` of history while history is short; everything is
//!   clamped to [min, max].
//! - OOM: an OOM-killed container bumps the memory recommendation at once to
//!   max(used + 100 MiB, 1.2 × used): the bumped size becomes the current window's peak (as the
//!   VPA does), so it holds the recommendation up for the rest of the window and then ages out
//!   with the other peaks.
//! - [`should_update`] decides when a running request is changed: when it is outside the bounds,
//!   or when it has differed from the target by more than `stale_difference` for `stale_after`.

use super::Seconds;
use super::quantity::{MIB, Resource};
use serde::{Deserialize, Serialize};

impl Resource {
    /// Smallest bucket: 0.01 core or 10 MiB (as the VPA).
    fn first_bucket(&self) -> f64 {
        match self {
            Resource::Cpu => 0.01,
            Resource::Memory => 10.0 * MIB,
        }
    }

    /// Largest value bucketed: 1000 cores or 1 TiB.
    fn top(&self) -> f64 {
        match self {
            Resource::Cpu => 1000.0,
            Resource::Memory => 1024.0 * 1024.0 * MIB,
        }
    }
}

/// Ratio between consecutive bucket bounds (5 %, as the VPA).
const GROWTH: f64 = 1.05;

/// A histogram with exponentially growing buckets whose sample weights halve every `half_life`.
///
/// Weights are stored relative to a reference time and grow as `2^((t - ref) / half_life)` for
/// newer samples (instead of shrinking every old bucket); when they grow large, everything is
/// rescaled to a newer reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecayingHistogram {
    first: f64,
    weights: Vec<f64>,
    half_life: Seconds,
    reference: Seconds,
    total: f64,
}

impl DecayingHistogram {
    /// An empty histogram for a resource.
    pub fn new(resource: Resource, half_life: Seconds) -> DecayingHistogram {
        let first = resource.first_bucket();
        let n = ((resource.top() / first).ln() / GROWTH.ln()).ceil() as usize + 1;
        DecayingHistogram {
            first,
            weights: vec![0.0; n],
            half_life,
            reference: 0.0,
            total: 0.0,
        }
    }

    /// Bucket index of a value: bucket i holds [first·g^(i-1), first·g^i), bucket 0 below first.
    fn bucket(&self, v: f64) -> usize {
        if v < self.first {
            return 0;
        }
        let i = ((v / self.first).ln() / GROWTH.ln()).floor() as usize + 1;
        i.min(self.weights.len() - 1)
    }

    /// Upper bound of bucket i.
    fn upper(&self, i: usize) -> f64 {
        self.first * GROWTH.powi(i as i32)
    }

    /// Adds a sample taken at `t` with a weight (1.0 for an ordinary sample).
    pub fn add(&mut self, v: f64, weight: f64, t: Seconds) {
        if !(v.is_finite() && v >= 0.0 && weight > 0.0) {
            return;
        }
        if self.total == 0.0 {
            self.reference = t;
        }
        let mut exp = (t - self.reference) / self.half_life;
        if exp > 50.0 {
            // Move the reference forward so the weights stay in range.
            let scale = 2f64.powf(-exp);
            self.weights.iter_mut().for_each(|w| *w *= scale);
            self.total *= scale;
            self.reference = t;
            exp = 0.0;
        }
        let w = weight * 2f64.powf(exp);
        let b = self.bucket(v);
        self.weights[b] += w;
        self.total += w;
    }

    /// True when nothing was added.
    pub fn is_empty(&self) -> bool {
        self.total <= 0.0
    }

    /// The `p` percentile (0..=1): the upper bound of the bucket where the cumulative weight
    /// reaches p (as the VPA, so a recommendation errs on the high side by at most one bucket).
    pub fn percentile(&self, p: f64) -> Option<f64> {
        if self.is_empty() {
            return None;
        }
        let goal = p.clamp(0.0, 1.0) * self.total;
        let mut acc = 0.0;
        for (i, w) in self.weights.iter().enumerate() {
            acc += w;
            if acc >= goal && *w > 0.0 {
                return Some(self.upper(i));
            }
        }
        let last = self.weights.iter().rposition(|w| *w > 0.0)?;
        Some(self.upper(last))
    }
}

/// The recommender's settings for one resource.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceParams {
    /// Percentile for the target.
    pub target_percentile: f64,
    /// Percentile for the lower bound.
    pub lower_percentile: f64,
    /// Percentile for the upper bound.
    pub upper_percentile: f64,
    /// Safety margin added to every percentile (0.15 = 15 %).
    pub margin: f64,
    /// Smallest recommendation.
    pub min: f64,
    /// Largest recommendation.
    pub max: f64,
}

/// The recommender's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerticalParams {
    /// Half-life of sample weights.
    pub half_life: Seconds,
    /// Memory peaks are taken per window of this length.
    pub memory_peak_window: Seconds,
    /// CPU settings.
    pub cpu: ResourceParams,
    /// Memory settings.
    pub memory: ResourceParams,
    /// A request that differs from the target by more than this share...
    pub stale_difference: f64,
    /// ...for this long is updated even inside the bounds.
    pub stale_after: Seconds,
}

/// One resource's recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recommended {
    /// Request to set.
    pub target: f64,
    /// Below this, the request is too small.
    pub lower: f64,
    /// Above this, the request is too large.
    pub upper: f64,
}

/// Memory of one container's recommender.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRecommender {
    cpu: DecayingHistogram,
    memory: DecayingHistogram,
    /// Start of the current memory peak window and its peak so far.
    window: Option<(Seconds, f64)>,
    first_sample: Option<Seconds>,
    last_sample: Seconds,
}

impl ContainerRecommender {
    /// An empty recommender.
    pub fn new(p: &VerticalParams) -> ContainerRecommender {
        ContainerRecommender {
            cpu: DecayingHistogram::new(Resource::Cpu, p.half_life),
            memory: DecayingHistogram::new(Resource::Memory, p.half_life),
            window: None,
            first_sample: None,
            last_sample: 0.0,
        }
    }

    fn seen(&mut self, t: Seconds) {
        self.first_sample.get_or_insert(t);
        self.last_sample = self.last_sample.max(t);
    }

    /// Adds a CPU usage sample (cores).
    pub fn add_cpu(&mut self, cores: f64, t: Seconds) {
        self.seen(t);
        self.cpu.add(cores, 1.0, t);
    }

    /// Adds a memory working-set sample (bytes): it raises the current window's peak; a finished
    /// window's peak goes into the histogram.
    pub fn add_memory(&mut self, p: &VerticalParams, bytes: f64, t: Seconds) {
        self.seen(t);
        match self.window {
            Some((start, peak)) if t < start + p.memory_peak_window => {
                self.window = Some((start, peak.max(bytes)));
            }
            Some((start, peak)) => {
                self.memory.add(peak, 1.0, start + p.memory_peak_window);
                self.window = Some((t, bytes));
            }
            None => self.window = Some((t, bytes)),
        }
    }

    /// An OOM kill at `used` bytes: the memory recommendation rises at once to
    /// max(used + 100 MiB, 1.2 × used), the new peak of the current window.
    pub fn oom(&mut self, p: &VerticalParams, used: f64, t: Seconds) {
        let bumped = (used + 100.0 * MIB).max(1.2 * used);
        self.add_memory(p, bumped, t);
    }

    /// Days of history seen.
    pub fn days(&self) -> f64 {
        self.first_sample
            .map_or(0.0, |f| (self.last_sample - f) / 86400.0)
    }

    /// The recommendation for a resource, or None without data.
    pub fn recommend(&self, p: &VerticalParams, r: Resource) -> Option<Recommended> {
        let (h, rp) = match r {
            Resource::Cpu => (&self.cpu, &p.cpu),
            Resource::Memory => (&self.memory, &p.memory),
        };
        // The running memory peak counts as a sample of the current window.
        let with_window;
        let h = match (r, self.window) {
            (Resource::Memory, Some((_, peak))) => {
                let mut c = h.clone();
                c.add(peak, 1.0, self.last_sample);
                with_window = c;
                &with_window
            }
            _ => h,
        };
        let m = 1.0 + rp.margin;
        let mut target = h.percentile(rp.target_percentile)? * m;
        if let (Resource::Memory, Some((_, peak))) = (r, self.window) {
            // Never below the current window's peak (which an OOM kill raises) plus the margin.
            target = target.max(peak * m);
        }
        // Short history widens the bounds: by (1 + 1/days) up, and down by the same factor.
        let widen = 1.0 + 1.0 / self.days().max(1.0 / 24.0);
        let rec = Recommended {
            target,
            lower: h.percentile(rp.lower_percentile)? * m / widen,
            upper: h.percentile(rp.upper_percentile)? * m * widen,
        };
        let clamp = |v: f64| v.clamp(rp.min, rp.max);
        Some(Recommended {
            target: clamp(rec.target),
            lower: clamp(rec.lower.min(rec.target)),
            upper: clamp(rec.upper.max(rec.target)),
        })
    }
}

/// Whether a running request should change: it is outside [lower, upper], or it has differed
/// from the target by more than `stale_difference` since `differs_since` for `stale_after`.
pub fn should_update(
    p: &VerticalParams,
    current: f64,
    rec: &Recommended,
    differs_since: Option<Seconds>,
    now: Seconds,
) -> bool {
    if current < rec.lower || current > rec.upper {
        return true;
    }
    let far = (current - rec.target).abs() > p.stale_difference * rec.target;
    far && differs_since.is_some_and(|s| now - s >= p.stale_after)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> VerticalParams {
        let rp = |min, max| ResourceParams {
            target_percentile: 0.9,
            lower_percentile: 0.5,
            upper_percentile: 0.95,
            margin: 0.15,
            min,
            max,
        };
        VerticalParams {
            half_life: 86400.0,
            memory_peak_window: 86400.0,
            cpu: rp(0.01, 8.0),
            memory: rp(16.0 * MIB, 64.0 * 1024.0 * MIB),
            stale_difference: 0.3,
            stale_after: 12.0 * 3600.0,
        }
    }

    #[test]
    fn percentiles_are_bucket_upper_bounds() {
        let mut h = DecayingHistogram::new(Resource::Cpu, 3600.0);
        assert_eq!(h.percentile(0.5), None);
        for i in 1..=100 {
            h.add(i as f64 / 100.0, 1.0, 0.0);
        }
        let p50 = h.percentile(0.5).unwrap();
        let p90 = h.percentile(0.9).unwrap();
        assert!((0.5..0.5 * 1.05 + 1e-9).contains(&p50), "{p50}");
        assert!((0.9..0.9 * 1.05 + 1e-9).contains(&p90), "{p90}");
        assert!(h.percentile(1.0).unwrap() >= 1.0);
    }

    #[test]
    fn weights_halve_every_half_life() {
        let mut h = DecayingHistogram::new(Resource::Cpu, 3600.0);
        // 1.0 core an hour ago weighs half of 0.1 core now: with one sample each the median is
        // the low one only if the newer weighs more.
        h.add(1.0, 1.0, 0.0);
        h.add(0.1, 1.0, 3600.0);
        assert!(
            h.percentile(0.5).unwrap() < 0.2,
            "the newer sample weighs 2x"
        );
        assert!(
            h.percentile(0.7).unwrap() > 0.9,
            "the older still has a third"
        );
        // Far in the future old samples no longer matter, and weights stay finite.
        for k in 0..100 {
            h.add(0.5, 1.0, 3600.0 * (100 + k) as f64);
        }
        assert!((0.5..0.53).contains(&h.percentile(0.99).unwrap()));
        assert!(h.weights.iter().all(|w| w.is_finite()));
    }

    #[test]
    fn bounds_widen_with_short_history_and_narrow_with_more() {
        let p = params();
        let mut r = ContainerRecommender::new(&p);
        for m in 0..60 {
            r.add_cpu(0.5 + 0.1 * ((m % 10) as f64 / 10.0), m as f64 * 60.0);
        }
        let short = r.recommend(&p, Resource::Cpu).unwrap();
        for m in 60..(3 * 1440) {
            r.add_cpu(0.5 + 0.1 * ((m % 10) as f64 / 10.0), m as f64 * 60.0);
        }
        let long = r.recommend(&p, Resource::Cpu).unwrap();
        assert!(short.upper / short.target > long.upper / long.target);
        assert!(short.lower / short.target < long.lower / long.target);
        // Target: p90 of 0.5..0.59 is about 0.59 (+ one bucket), plus 15 %.
        assert!((0.67..0.72).contains(&long.target), "{long:?}");
        assert!(long.lower <= long.target && long.target <= long.upper);
    }

    #[test]
    fn memory_uses_window_peaks() {
        let p = params();
        let mut r = ContainerRecommender::new(&p);
        // Two days mostly at 200 MiB with a 600 MiB spike once a day: sized for the peak.
        for m in 0..(2 * 1440) {
            let v = if m % 1440 == 700 { 600.0 } else { 200.0 } * MIB;
            r.add_memory(&p, v, m as f64 * 60.0);
        }
        let rec = r.recommend(&p, Resource::Memory).unwrap();
        assert!(rec.target >= 600.0 * MIB * 1.15, "{}", rec.target / MIB);
    }

    #[test]
    fn oom_bumps_memory_at_once() {
        let p = params();
        let mut r = ContainerRecommender::new(&p);
        r.add_memory(&p, 200.0 * MIB, 0.0);
        // Small usage: +100 MiB wins; large usage: +20 % wins.
        r.oom(&p, 300.0 * MIB, 60.0);
        let rec = r.recommend(&p, Resource::Memory).unwrap();
        assert!(rec.target >= 400.0 * MIB, "{}", rec.target / MIB);
        let mut r = ContainerRecommender::new(&p);
        r.oom(&p, 2000.0 * MIB, 0.0);
        let rec = r.recommend(&p, Resource::Memory).unwrap();
        assert!(rec.target >= 2400.0 * MIB, "{}", rec.target / MIB);
    }

    #[test]
    fn recommendations_stay_within_min_and_max() {
        let p = params();
        let mut r = ContainerRecommender::new(&p);
        r.add_cpu(100.0, 0.0);
        r.add_memory(&p, 1.0, 0.0);
        let c = r.recommend(&p, Resource::Cpu).unwrap();
        assert_eq!((c.target, c.upper), (8.0, 8.0));
        let m = r.recommend(&p, Resource::Memory).unwrap();
        assert_eq!((m.target, m.lower), (16.0 * MIB, 16.0 * MIB));
    }

    #[test]
    fn updates_only_outside_bounds_or_when_stale() {
        let p = params();
        let rec = Recommended {
            target: 1.0,
            lower: 0.8,
            upper: 1.3,
        };
        assert!(should_update(&p, 0.7, &rec, None, 0.0));
        assert!(should_update(&p, 1.4, &rec, None, 0.0));
        assert!(!should_update(&p, 1.25, &rec, None, 0.0));
        // Inside wide bounds: 50 % off the target for 12 h is stale; 20 % off never is.
        let wide = Recommended {
            target: 1.0,
            lower: 0.5,
            upper: 2.0,
        };
        assert!(!should_update(&p, 1.5, &wide, Some(0.0), 11.0 * 3600.0));
        assert!(should_update(&p, 1.5, &wide, Some(0.0), 12.0 * 3600.0));
        assert!(!should_update(&p, 1.2, &wide, Some(0.0), 48.0 * 3600.0));
    }
}
