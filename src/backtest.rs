//! Backtest: what a policy would have done over a past range, from what Prometheus recorded.
//!
//! [`record`] evaluates the policy's Prometheus queries over the range on a regular grid (range
//! queries, fetched in chunks of at most [`history::MAX_POINTS`] points, kept as one number per
//! step and query). [`replay`] then runs the simulator's service model ([`sim::run_with`]) on the
//! recorded load, with the policy seeing what was recorded, so the result has exactly the shape
//! and the summary of `simulate`.
//!
//! # Where the load comes from
//!
//! The service model needs the offered load (requests/s, or any unit that a replica's
//! `capacity` is given in). It is the query given with `--load` if there is one, and otherwise
//! the first Prometheus metric of the policy with a `targetPerReplica` target: such a metric is
//! a total that does not depend on how many replicas served it, so its value is the load. Each
//! recorded value holds until the next step; steps without data carry the last value, and the
//! run starts at the first step with data.
//!
//! # What the policy sees
//!
//! - A Prometheus metric with `targetPerReplica`: its recorded value at the latest grid step at
//!   or before the tick (no data where nothing was recorded).
//! - A metric with `utilization`: its recorded values measured the replicas of that time, not
//!   the ones the backtest runs, so it is derived from the load as in `simulate`: the load over
//!   (ready replicas × capacity).
//! - A pod metric (`resource`, `pods`): Prometheus has no record of it under a query the policy
//!   names; it is derived from the load as in `simulate` (the load for `targetPerReplica`, the
//!   load over ready capacity for `utilization`).
//!
//! A predictive policy builds its history from what it sees during the replay, as in `simulate`.

use crate::engine::{Sample, Seconds, Target};
use crate::policy::{MetricQuery, Policy};
use crate::prometheus::history;
use crate::prometheus::{PrometheusClient, PrometheusError};
use crate::sim::{self, ServiceModel, SimResult, Trace};
use std::time::Duration;

/// Errors of a backtest.
#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    /// A range query failed.
    #[error("{0}")]
    Prometheus(#[from] PrometheusError),
    /// No query gives the load.
    #[error(
        "no metric of the policy gives the load: the service model needs it. Give --load QUERY \
         (the offered load, such as sum(rate(http_requests_total[1m]))), or use a Prometheus \
         metric with targetPerReplica"
    )]
    NoLoad,
    /// The range or its data cannot be used.
    #[error("{0}")]
    Invalid(String),
}

/// The range replayed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    /// Start, Unix seconds.
    pub from: Seconds,
    /// End (included), Unix seconds.
    pub to: Seconds,
    /// Grid step.
    pub step: Duration,
}

impl Range {
    /// Grid steps in the range.
    pub fn steps(&self) -> usize {
        history::steps(self.from, self.to, self.step.as_secs_f64())
    }
}

/// How a metric is fed during the replay.
#[derive(Debug, Clone, PartialEq)]
pub enum Replay {
    /// Its recorded values, one per grid step.
    Recorded(Vec<Option<f64>>),
    /// Derived from the load through the service model.
    FromLoad,
}

/// What Prometheus recorded over a range, for one policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// The range.
    pub range: Range,
    /// The load, one value per grid step.
    pub load: Vec<Option<f64>>,
    /// Per metric of the policy.
    pub metrics: Vec<Replay>,
    /// The load's source, in words.
    pub load_source: String,
}

/// Which metrics are replayed as recorded: the Prometheus ones with a `targetPerReplica`.
fn replayed(policy: &Policy) -> Vec<Option<(&str, bool)>> {
    policy
        .metrics()
        .iter()
        .zip(&policy.queries)
        .map(|(m, q)| match (q, m.target) {
            (MetricQuery::Prometheus { query, sum }, Target::PerReplica(_)) => {
                Some((query.as_str(), *sum))
            }
            _ => None,
        })
        .collect()
}

/// Fetches the load and the replayed metrics over `range`. `progress(done, total)` counts grid
/// steps fetched over all queries.
pub async fn record(
    policy: &Policy,
    client: &PrometheusClient,
    load: Option<&str>,
    range: Range,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Recorded, BacktestError> {
    if range.from.partial_cmp(&range.to) != Some(std::cmp::Ordering::Less) {
        return Err(BacktestError::Invalid(format!(
            "the range is empty: --from ({}) is not before --to ({})",
            show_time(range.from),
            show_time(range.to)
        )));
    }
    if range.step.is_zero() {
        return Err(BacktestError::Invalid(
            "--step must be more than zero".into(),
        ));
    }
    let plan = replayed(policy);
    let n = range.steps();
    let queries = plan.iter().flatten().count() + usize::from(load.is_some());
    let total = n * queries;
    let mut done_before = 0;
    let mut fetch = async |query: &str, sum: bool| -> Result<Vec<Option<f64>>, BacktestError> {
        let base = done_before;
        let grid = history::grid(
            client,
            query,
            sum,
            range.from,
            range.to,
            range.step,
            &mut |done| progress(base + done, total),
        )
        .await?;
        done_before += n;
        Ok(grid)
    };
    let mut metrics = Vec::new();
    for p in &plan {
        metrics.push(match p {
            Some((query, sum)) => Replay::Recorded(fetch(query, *sum).await?),
            None => Replay::FromLoad,
        });
    }
    let (load, load_source) = match load {
        Some(q) => (fetch(q, true).await?, format!("--load `{q}`")),
        None => {
            let i = plan
                .iter()
                .position(Option::is_some)
                .ok_or(BacktestError::NoLoad)?;
            let Replay::Recorded(grid) = &metrics[i] else {
                unreachable!("a planned metric is recorded")
            };
            (grid.clone(), format!("metric {}", policy.metrics()[i].name))
        }
    };
    Ok(Recorded {
        range,
        load,
        metrics,
        load_source,
    })
}

/// The recorded load as a trace (from its first valid grid step, skipping steps without a
/// valid value), and the index of that first step: what `tune --prometheus` tunes on.
pub fn load_trace(rec: &Recorded) -> Result<(Trace, usize), BacktestError> {
    let dt = rec.range.step.as_secs_f64();
    let first = rec
        .load
        .iter()
        .position(|v| v.is_some_and(|v| v.is_finite() && v >= 0.0))
        .ok_or_else(|| {
            BacktestError::Invalid(format!(
                "no load recorded between {} and {} ({})",
                show_time(rec.range.from),
                show_time(rec.range.to),
                rec.load_source
            ))
        })?;
    let (mut times, mut values) = (Vec::new(), Vec::new());
    for (k, v) in rec.load.iter().enumerate().skip(first) {
        if let Some(v) = v.filter(|v| v.is_finite() && *v >= 0.0) {
            times.push(k as f64 * dt);
            values.push(v);
        }
    }
    if times.len() < 2 {
        // One point: hold it for one step.
        times.push(times[0] + dt);
        values.push(values[0]);
    }
    let mut trace = Trace::new(times, values);
    // Replayed at its own dates, so that schedules open when they did.
    trace.start = rec.range.from + first as f64 * dt;
    Ok((trace, first))
}

/// Replays the policy over what was recorded, with the service model's `capacity` (default:
/// the load's mean / 20, as `simulate`) and `startup` seconds.
pub fn replay(
    policy: &Policy,
    rec: &Recorded,
    capacity: Option<f64>,
    startup: Seconds,
) -> Result<SimResult, BacktestError> {
    let dt = rec.range.step.as_secs_f64();
    let (trace, first) = load_trace(rec)?;
    let mut model = ServiceModel::for_trace(&trace);
    if let Some(c) = capacity {
        model.capacity = c;
    }
    model.startup = startup;
    if !(model.capacity.is_finite() && model.capacity > 0.0) {
        return Err(BacktestError::Invalid(
            "the recorded load's mean is 0: give --capacity".into(),
        ));
    }
    let at = |k: usize| show_time(rec.range.from + k as f64 * dt);
    let result = sim::run_with(policy, &trace, model, |t, ready| {
        // The latest grid step at or before the tick.
        let k = first + ((t + 1e-6) / dt).floor() as usize;
        let load = rec.load.get(k).copied().flatten();
        policy
            .metrics()
            .iter()
            .zip(&rec.metrics)
            .map(|(m, replay)| match replay {
                Replay::Recorded(grid) => match grid.get(k).copied().flatten() {
                    Some(v) => Sample::from_f64(v),
                    None => Sample::no_data(format!("no data recorded at {}", at(k))),
                },
                Replay::FromLoad => match (load, m.target) {
                    (None, _) => Sample::no_data(format!("no load recorded at {}", at(k))),
                    (Some(l), Target::PerReplica(_)) => Sample::from_f64(l),
                    (Some(_), Target::Utilization(_)) if ready == 0 => {
                        Sample::no_data("no ready replicas")
                    }
                    (Some(l), Target::Utilization(_)) => {
                        Sample::from_f64(l / (ready as f64 * model.capacity))
                    }
                },
            })
            .collect()
    });
    Ok(result)
}

/// A time given as RFC 3339 (`2026-11-20T00:00:00Z`), Unix seconds, `now`, or relative to now
/// (`now-7d`, `now-1h30m`, `now+5m`), in Unix seconds.
pub fn parse_time(text: &str, now: Seconds) -> Result<Seconds, String> {
    let t = text.trim();
    if let Some(rest) = t.strip_prefix("now") {
        let rest = rest.trim();
        if rest.is_empty() {
            return Ok(now);
        }
        let (sign, d) = match rest.split_at(1) {
            ("-", d) => (-1.0, d),
            ("+", d) => (1.0, d),
            _ => {
                return Err(format!(
                    "invalid time {text:?}: expected now, now-7d or now+1h"
                ));
            }
        };
        let d = humantime::parse_duration(d.trim())
            .map_err(|e| format!("invalid time {text:?}: {e}"))?;
        return Ok(now + sign * d.as_secs_f64());
    }
    if let Ok(secs) = t.parse::<f64>()
        && secs.is_finite()
    {
        return Ok(secs);
    }
    humantime::parse_rfc3339_weak(t)
        .map(|st| match st.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => d.as_secs_f64(),
            Err(e) => -e.duration().as_secs_f64(),
        })
        .map_err(|e| {
            format!("invalid time {text:?}: {e}; expected RFC 3339, Unix seconds, now or now-7d")
        })
}

/// Unix seconds as RFC 3339 (UTC, to the second).
pub fn show_time(t: Seconds) -> String {
    if !(t.is_finite() && t >= 0.0) {
        return format!("{t}");
    }
    let st = std::time::UNIX_EPOCH + Duration::from_secs(t.round() as u64);
    humantime::format_rfc3339_seconds(st).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let now = 1_800_000_000.0;
        assert_eq!(parse_time("now", now), Ok(now));
        assert_eq!(parse_time("now-7d", now), Ok(now - 7.0 * 86400.0));
        assert_eq!(parse_time("now - 1h 30m", now), Ok(now - 5400.0));
        assert_eq!(parse_time("now+5m", now), Ok(now + 300.0));
        assert_eq!(parse_time("2026-11-21T22:05:00Z", now), Ok(1795298700.0));
        assert_eq!(parse_time("1795298700", now), Ok(1795298700.0));
        assert!(
            parse_time("yesterday", now)
                .unwrap_err()
                .contains("RFC 3339")
        );
        assert!(parse_time("now*2", now).is_err());
        assert_eq!(show_time(1795298700.0), "2026-11-21T22:05:00Z");
    }

    fn policy(metrics: &str) -> Policy {
        let text = format!(
            "apiVersion: setpoint.dev/v1alpha1\nkind: ScalingPolicy\nmetadata: {{name: t}}\n\
             spec:\n  target: {{kind: Deployment, name: t}}\n  horizontal:\n    preset: none\n    \
             replicas: {{min: 1, max: 50}}\n    metrics:\n{metrics}"
        );
        crate::policy::parse(&text, std::path::Path::new("t.yaml")).unwrap()
    }

    #[test]
    fn recorded_totals_drive_the_policy_and_the_load() {
        let p = policy("      - {prometheus: q, targetPerReplica: 10}\n");
        assert_eq!(replayed(&p), vec![Some(("q", false))]);
        // 100 then 200 req/s, a gap (carried), capacity 10: 10 then 20 replicas.
        let grid: Vec<Option<f64>> = (0..240)
            .map(|k| match k {
                0..120 => Some(100.0),
                130..135 => None,
                _ => Some(200.0),
            })
            .collect();
        let rec = Recorded {
            range: Range {
                from: 1e9,
                to: 1e9 + 239.0 * 15.0,
                step: Duration::from_secs(15),
            },
            load: grid.clone(),
            metrics: vec![Replay::Recorded(grid)],
            load_source: "metric metric-1".into(),
        };
        let r = replay(&p, &rec, Some(10.0), 60.0).unwrap();
        assert_eq!(r.decisions[0].replicas, 10);
        assert_eq!(r.decisions.last().unwrap().replicas, 20);
        assert_eq!(r.summary.hours, 1.0);
        let up = &r.decisions[1];
        assert_eq!(up.t, 1800.0, "the first tick that sees 200: {up:?}");
    }

    #[test]
    fn utilization_and_pod_metrics_come_from_the_load() {
        let p = policy(
            "      - {prometheus: q, utilization: 0.5}\n      - {resource: {name: cpu}, targetPerReplica: 2}\n",
        );
        assert_eq!(replayed(&p), vec![None, None]);
        let rec = Recorded {
            range: Range {
                from: 0.0,
                to: 3600.0,
                step: Duration::from_secs(15),
            },
            load: vec![Some(40.0); 241],
            metrics: vec![Replay::FromLoad, Replay::FromLoad],
            load_source: "--load `x`".into(),
        };
        // 40 req/s at 10 per replica at 50 %: 8 replicas; the cpu metric at 2 per replica: 20.
        let r = replay(&p, &rec, Some(10.0), 60.0).unwrap();
        assert_eq!(r.decisions.last().unwrap().replicas, 20);
    }
}
