//! History from range queries over long periods: a query evaluated on a regular grid, fetched in
//! chunks so that no answer holds more than [`MAX_POINTS`] points per series (Prometheus refuses
//! more than 11,000), and kept as one `Option<f64>` per grid step.

use super::{PrometheusClient, PrometheusError, QueryFailure, labels_text};
use crate::engine::Seconds;
use std::time::Duration;

/// Most points per series asked for in one range query.
pub const MAX_POINTS: usize = 10_000;

/// Grid steps from `from` to `to` (both included) at `step`.
pub fn steps(from: Seconds, to: Seconds, step: Seconds) -> usize {
    if to < from {
        0
    } else {
        ((to - from) / step + 1e-9).floor() as usize + 1
    }
}

/// `query` evaluated at `from + k × step` for every grid step up to `to`: one entry per step,
/// None where there was no data (no series, NaN or infinite). Several series are an error naming
/// them, unless `sum` adds them up. `progress` is called with the steps fetched so far after
/// each chunk.
pub async fn grid(
    client: &PrometheusClient,
    query: &str,
    sum: bool,
    from: Seconds,
    to: Seconds,
    step: Duration,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<Option<f64>>, PrometheusError> {
    let dt = step.as_secs_f64();
    let n = steps(from, to, dt);
    let mut out: Vec<Option<f64>> = vec![None; n];
    let mut k0 = 0;
    while k0 < n {
        let k1 = (k0 + MAX_POINTS).min(n) - 1;
        let start = from + k0 as f64 * dt;
        let end = from + k1 as f64 * dt;
        let result = client.range(query, start, end, step).await?;
        if result.series.len() > 1 && !sum {
            return Err(PrometheusError::Query {
                query: query.to_string(),
                attempts: 0,
                elapsed: Duration::ZERO,
                cause: QueryFailure::SeveralSeries {
                    labels: result
                        .series
                        .iter()
                        .map(|s| labels_text(&s.labels))
                        .collect(),
                },
            });
        }
        for series in &result.series {
            for &(t, v) in &series.points {
                let k = ((t - from) / dt).round();
                if k < k0 as f64 || k > k1 as f64 {
                    continue;
                }
                let slot = &mut out[k as usize];
                *slot = match (*slot, v.is_finite()) {
                    (_, false) => *slot,
                    (None, true) => Some(v),
                    (Some(a), true) => Some(a + v),
                };
            }
        }
        // A NaN or infinite value in any summed series makes the step no data.
        if sum && result.series.len() > 1 {
            for series in &result.series {
                for &(t, v) in &series.points {
                    if !v.is_finite() {
                        let k = ((t - from) / dt).round() as usize;
                        if let Some(slot) = out.get_mut(k) {
                            *slot = None;
                        }
                    }
                }
            }
        }
        progress(k1 + 1);
        k0 = k1 + 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::steps;

    #[test]
    fn grid_steps_include_both_ends() {
        assert_eq!(steps(0.0, 60.0, 15.0), 5);
        assert_eq!(steps(0.0, 59.0, 15.0), 4);
        assert_eq!(steps(10.0, 10.0, 15.0), 1);
        assert_eq!(steps(10.0, 9.0, 15.0), 0);
        assert_eq!(steps(0.0, 2.0 * 86400.0, 15.0), 11521);
    }
}
