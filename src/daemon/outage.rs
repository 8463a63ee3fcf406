//! Outages a policy lives through, seen once each: when it starts, and when it ends.
//!
//! A tick that fails (the API server not answering, a 403) or a tick whose metrics give no data
//! (Prometheus unreachable, metrics.k8s.io absent) is one tick of an [`Outage`]. The worker logs
//! the outage's start once (with its time) and its end once (with how long it lasted), shows it
//! under `failing` on `/recommendations` while it lasts (with since when), sets the
//! `setpoint_blind_since_seconds` gauge for an outage of the metrics, and sends one Warning
//! Event `MetricsUnavailable` on the target per outage of the metrics. The retries of the
//! libraries below stay at debug level.

use crate::engine::Missing;
use std::time::{Duration, SystemTime};

/// One outage: since when, and what was last seen failing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outage {
    /// When the first failing tick ran.
    pub since: SystemTime,
    /// The last failure, in words.
    pub what: String,
}

impl Outage {
    /// `since` as `12:03:04 UTC` (and the date), for log lines, Events and `/recommendations`.
    pub fn since_text(&self) -> String {
        utc(self.since)
    }

    /// How long it has lasted at `now`, whole seconds.
    pub fn lasted(&self, now: SystemTime) -> Duration {
        let d = now.duration_since(self.since).unwrap_or_default();
        Duration::from_secs(d.as_secs())
    }
}

/// What a tick changed about an outage.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Change {
    /// None before, none now; or one going on.
    Same,
    /// This tick started one.
    Started(Outage),
    /// This tick ended one (how long it lasted).
    Ended(Outage, Duration),
}

/// Tracks one kind of outage of one policy.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    current: Option<Outage>,
}

impl Tracker {
    /// The outage going on, if any.
    pub fn current(&self) -> Option<&Outage> {
        self.current.as_ref()
    }

    /// A tick at `now` failed with `what` (None: it did not fail).
    pub fn tick(&mut self, what: Option<String>, now: SystemTime) -> Change {
        match (what, self.current.take()) {
            (Some(what), None) => {
                let o = Outage { since: now, what };
                self.current = Some(o.clone());
                Change::Started(o)
            }
            (Some(what), Some(mut o)) => {
                o.what = what;
                self.current = Some(o);
                Change::Same
            }
            (None, Some(o)) => {
                let lasted = o.lasted(now);
                Change::Ended(o, lasted)
            }
            (None, None) => Change::Same,
        }
    }
}

/// The metrics without data of a tick, in words (None when every metric had data).
pub(crate) fn missing_text(missing: &[Missing]) -> Option<String> {
    if missing.is_empty() {
        return None;
    }
    let parts: Vec<String> = missing
        .iter()
        .map(|m| format!("{}: {}", m.metric, m.reason))
        .collect();
    Some(format!("no data for {}", parts.join("; ")))
}

/// Unix seconds of `t`.
pub(crate) fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `2026-12-01 12:03:04 UTC`.
fn utc(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    match jiff::Timestamp::from_second(secs) {
        Ok(ts) => ts.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        Err(_) => format!("{secs} (Unix seconds)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_starts_once_and_ends_once_with_its_length() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_590_584);
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut t = Tracker::default();
        assert_eq!(t.tick(None, at(0)), Change::Same);
        let Change::Started(o) = t.tick(Some("down".into()), at(2)) else {
            panic!("not started")
        };
        assert_eq!(o.since_text(), "2025-12-01 12:03:06 UTC");
        for s in 3..90 {
            assert_eq!(t.tick(Some(format!("down {s}")), at(s)), Change::Same);
        }
        assert_eq!(t.current().unwrap().what, "down 89");
        let Change::Ended(o, lasted) = t.tick(None, at(92)) else {
            panic!("not ended")
        };
        assert_eq!(o.since, at(2));
        assert_eq!(lasted, Duration::from_secs(90));
        assert!(t.current().is_none());
        assert_eq!(t.tick(None, at(94)), Change::Same);
    }

    #[test]
    fn missing_metrics_in_words() {
        assert_eq!(missing_text(&[]), None);
        let m = |metric: &str, reason: &str| Missing {
            metric: metric.into(),
            reason: reason.into(),
        };
        assert_eq!(
            missing_text(&[m("rps", "connection refused"), m("cpu", "404")]).unwrap(),
            "no data for rps: connection refused; cpu: 404"
        );
    }
}
