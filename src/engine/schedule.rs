//! Scheduled capacity: windows that start on a cron expression in an IANA time zone and last a
//! duration, each holding a floor (`min`) or a fixed count (`replicas`) while it is open.
//!
//! Pure: [`Schedule::window_at`] and [`effect`] are functions of the schedules and `now` (Unix
//! seconds). Cron matching and its daylight-saving rules are [croner]'s, the time zones are
//! [jiff]'s (the system's tz database):
//!
//! - the cron expression is read on the zone's wall clock: `0 8 * * 1-5` opens at 08:00 local
//!   time, winter and summer alike;
//! - a start time that a spring-forward change skips (02:30 on the night clocks jump from 02:00
//!   to 03:00) opens at the first instant after the gap (03:00); a start time that a fall-back
//!   change repeats opens once, at its first occurrence (as Vixie cron runs such a job);
//! - the duration is counted on the same wall clock: a window from 22:00 lasting 10h closes at
//!   08:00 local time, so on the night of a change it lasts 9 or 11 hours of real time;
//! - windows that overlap (of one schedule or of several) take the largest value: the floor is
//!   the largest of the open windows, and when one of them fixes the count, the count is that
//!   largest value.

use super::Seconds;
use super::governor::{Governor, GovernorState, Rule, Steps};
use croner::Cron;
use croner::parser::{CronParser, Seconds as CronSeconds, Year};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, Zoned};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a window holds while it is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "replicas")]
pub enum Capacity {
    /// At least this many replicas: the metrics may ask for more.
    Min(u32),
    /// Exactly this many (within the policy's bounds), whatever the metrics say; with no data,
    /// it may raise the count but never lowers it.
    Fixed(u32),
}

impl Capacity {
    /// The replica count.
    pub fn replicas(&self) -> u32 {
        match self {
            Capacity::Min(n) | Capacity::Fixed(n) => *n,
        }
    }
}

/// One schedule of a policy.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Its name, shown in explanations and Events.
    pub name: String,
    /// The cron expression, as written (5 fields).
    pub cron: String,
    /// How long each window lasts, on the zone's wall clock (seconds).
    pub duration: Seconds,
    /// The IANA zone name, as written.
    pub timezone: String,
    /// What an open window holds.
    pub capacity: Capacity,
    pattern: Cron,
    zone: TimeZone,
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Schedule) -> bool {
        (
            &self.name,
            &self.cron,
            self.duration,
            &self.timezone,
            self.capacity,
        ) == (
            &other.name,
            &other.cron,
            other.duration,
            &other.timezone,
            other.capacity,
        )
    }
}

/// Why a cron expression or a zone cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The cron expression does not parse.
    #[error(
        "invalid cron expression \"{cron}\": {why}; expected 5 fields: minute hour day-of-month month day-of-week, such as \"0 8 * * 1-5\""
    )]
    Cron {
        /// The expression.
        cron: String,
        /// What is wrong.
        why: String,
    },
    /// The zone is not in the tz database.
    #[error(
        "unknown time zone \"{zone}\": {why}; expected an IANA zone name such as \"Europe/Berlin\" or \"UTC\""
    )]
    Zone {
        /// The zone name.
        zone: String,
        /// What the tz database said.
        why: String,
    },
}

/// Parses a 5-field cron expression.
pub fn parse_cron(cron: &str) -> Result<Cron, ScheduleError> {
    let err = |why: String| ScheduleError::Cron {
        cron: cron.to_string(),
        why,
    };
    let fields = cron.split_whitespace().count();
    if fields != 5 {
        return Err(err(format!("{fields} field(s)")));
    }
    CronParser::builder()
        .seconds(CronSeconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(cron)
        .map_err(|e| err(e.to_string()))
}

/// Looks an IANA zone name up in the tz database.
pub fn parse_zone(zone: &str) -> Result<TimeZone, ScheduleError> {
    TimeZone::get(zone).map_err(|e| ScheduleError::Zone {
        zone: zone.to_string(),
        why: e.to_string(),
    })
}

/// One open window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Window {
    /// The schedule's name.
    pub schedule: String,
    /// When it opened (Unix seconds).
    pub start: Seconds,
    /// When it closes (Unix seconds).
    pub end: Seconds,
    /// What it holds.
    pub capacity: Capacity,
    /// Whether this is the first decision to see it open (set by the governor).
    #[serde(default)]
    pub started: bool,
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.capacity {
            Capacity::Min(n) => format!("floor {n}"),
            Capacity::Fixed(n) => format!("fixed {n}"),
        };
        write!(
            f,
            "schedule {} {what} (window {} to {})",
            self.schedule,
            show(self.start),
            show(self.end)
        )
    }
}

/// A Unix time as RFC 3339 in UTC, to the second.
fn show(t: Seconds) -> String {
    Timestamp::from_second(t.floor() as i64)
        .map(|ts| ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| format!("{t}"))
}

fn zoned(t: Seconds, zone: &TimeZone) -> Option<Zoned> {
    Timestamp::from_second(t.floor() as i64)
        .ok()
        .map(|ts| ts.to_zoned(zone.clone()))
}

impl Schedule {
    /// A schedule from its parts, checked.
    pub fn new(
        name: &str,
        cron: &str,
        duration: Seconds,
        timezone: &str,
        capacity: Capacity,
    ) -> Result<Schedule, ScheduleError> {
        Ok(Schedule {
            name: name.to_string(),
            cron: cron.to_string(),
            duration,
            timezone: timezone.to_string(),
            capacity,
            pattern: parse_cron(cron)?,
            zone: parse_zone(timezone)?,
        })
    }

    /// When the window opened at `start` closes: `duration` later on the zone's wall clock.
    fn end_of(&self, start: &Zoned) -> Option<Zoned> {
        let civil = start
            .datetime()
            .checked_add(SignedDuration::from_secs_f64(self.duration))
            .ok()?;
        self.zone.to_ambiguous_zoned(civil).compatible().ok()
    }

    /// The window open at `now`, if any: the latest start at or before `now`, when its end is
    /// after `now`.
    pub fn window_at(&self, now: Seconds) -> Option<Window> {
        let at = zoned(now, &self.zone)?;
        let start = self.pattern.find_previous_occurrence(&at, true).ok()?;
        let end = self.end_of(&start)?;
        (end > at).then(|| Window {
            schedule: self.name.clone(),
            start: start.timestamp().as_second() as Seconds,
            end: end.timestamp().as_second() as Seconds,
            capacity: self.capacity,
            started: false,
        })
    }

    /// The next `n` window starts after `now`, in the schedule's zone.
    pub fn next_starts(&self, now: Seconds, n: usize) -> Vec<Zoned> {
        let Some(at) = zoned(now, &self.zone) else {
            return Vec::new();
        };
        let mut out: Vec<Zoned> = Vec::with_capacity(n);
        let mut from = at;
        while out.len() < n {
            match self.pattern.find_next_occurrence(&from, false) {
                Ok(next) => {
                    from = next.clone();
                    out.push(next);
                }
                Err(_) => break,
            }
        }
        out
    }
}

/// What the open windows hold at `now`: the window with the largest count (the first such
/// schedule on a tie), fixed when any open window fixes the count; None when no window is open.
pub fn effect(schedules: &[Schedule], now: Seconds) -> Option<Window> {
    let open: Vec<Window> = schedules.iter().filter_map(|s| s.window_at(now)).collect();
    let fixed = open
        .iter()
        .any(|w| matches!(w.capacity, Capacity::Fixed(_)));
    let mut best = open.into_iter().reduce(|a, b| {
        if b.capacity.replicas() > a.capacity.replicas() {
            b
        } else {
            a
        }
    })?;
    if fixed {
        best.capacity = Capacity::Fixed(best.capacity.replicas());
    }
    Some(best)
}

impl Governor {
    /// The window that the schedules hold open at `now` (see [`effect`]), marked `started` when
    /// the previous decision did not see it open.
    pub(super) fn window(&self, st: &mut GovernorState, now: Seconds) -> Option<Window> {
        if self.schedules.is_empty() {
            return None;
        }
        let mut w = effect(&self.schedules, now);
        let open = w.as_ref().map(|w| (w.schedule.clone(), w.start));
        if let Some(w) = w.as_mut() {
            w.started = st.window != open;
        }
        st.window = open;
        w
    }

    /// The proposal with the open window applied: a floor raises it, a fixed count replaces it.
    /// With no data, a window may raise the count above `current`, never lower it.
    pub(super) fn scheduled(
        &self,
        proposed: Option<u32>,
        current: u32,
        window: Option<&Window>,
        steps: &mut Steps,
    ) -> Option<u32> {
        let Some(w) = window else { return proposed };
        let n = w.capacity.replicas();
        let to = match (proposed, w.capacity) {
            (Some(p), Capacity::Min(_)) => p.max(n),
            (Some(_), Capacity::Fixed(_)) => n,
            (None, _) if n > current => n,
            (None, _) => return None,
        };
        let from = proposed.unwrap_or(current);
        Some(steps.apply(Rule::Schedule, from, to, || w.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unix seconds of an RFC 3339 time.
    fn at(s: &str) -> Seconds {
        s.parse::<Timestamp>().unwrap().as_second() as Seconds
    }

    fn office(min: u32) -> Schedule {
        Schedule::new(
            "office",
            "0 8 * * 1-5",
            10.0 * 3600.0,
            "Europe/Berlin",
            Capacity::Min(min),
        )
        .unwrap()
    }

    #[test]
    fn a_weekday_window_opens_at_local_time_in_winter_and_summer() {
        let s = office(10);
        // Winter (UTC+1): 08:00 Berlin is 07:00 UTC.
        assert!(s.window_at(at("2026-01-13T06:59:59Z")).is_none());
        let w = s.window_at(at("2026-01-13T07:00:00Z")).unwrap();
        assert_eq!(w.start, at("2026-01-13T07:00:00Z"));
        assert_eq!(w.end, at("2026-01-13T17:00:00Z"));
        assert!(s.window_at(at("2026-01-13T17:00:00Z")).is_none());
        // Summer (UTC+2): 08:00 Berlin is 06:00 UTC.
        assert!(s.window_at(at("2026-07-14T05:59:00Z")).is_none());
        assert!(s.window_at(at("2026-07-14T06:00:00Z")).is_some());
        // Saturday: closed.
        assert!(s.window_at(at("2026-07-18T10:00:00Z")).is_none());
    }

    #[test]
    fn windows_are_correct_across_the_spring_forward_change() {
        // Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
        let nightly = Schedule::new(
            "batch",
            "30 2 * * *",
            3600.0,
            "Europe/Berlin",
            Capacity::Min(4),
        )
        .unwrap();
        // 02:30 does not exist that night: the window opens right after the gap, 03:00 CEST.
        let w = nightly.window_at(at("2026-03-29T01:00:00Z")).unwrap();
        assert_eq!(w.start, at("2026-03-29T01:00:00Z"));
        // One hour on the wall clock from 03:00: 04:00 CEST.
        assert_eq!(w.end, at("2026-03-29T02:00:00Z"));
        assert!(nightly.window_at(at("2026-03-29T00:59:59Z")).is_none());
        // The night before (CET) and after (CEST), 02:30 local.
        assert_eq!(
            nightly.window_at(at("2026-03-28T01:45:00Z")).unwrap().start,
            at("2026-03-28T01:30:00Z")
        );
        assert_eq!(
            nightly.window_at(at("2026-03-30T00:45:00Z")).unwrap().start,
            at("2026-03-30T00:30:00Z")
        );
        // A window across the change closes at its wall-clock end: 22:00 + 10h = 08:00 CEST,
        // 9 hours of real time.
        let night = Schedule::new(
            "night",
            "0 22 * * *",
            10.0 * 3600.0,
            "Europe/Berlin",
            Capacity::Min(2),
        )
        .unwrap();
        let w = night.window_at(at("2026-03-29T03:00:00Z")).unwrap();
        assert_eq!(w.start, at("2026-03-28T21:00:00Z"));
        assert_eq!(w.end, at("2026-03-29T06:00:00Z"));
        assert_eq!(w.end - w.start, 9.0 * 3600.0);
    }

    #[test]
    fn windows_are_correct_across_the_fall_back_change() {
        // Berlin, 2026-10-25: 03:00 CEST falls back to 02:00 CET (01:00 UTC); 02:30 happens
        // twice, at 00:30 and 01:30 UTC.
        let nightly = Schedule::new(
            "batch",
            "30 2 * * *",
            1800.0,
            "Europe/Berlin",
            Capacity::Min(4),
        )
        .unwrap();
        let w = nightly.window_at(at("2026-10-25T00:40:00Z")).unwrap();
        assert_eq!(w.start, at("2026-10-25T00:30:00Z"), "the first 02:30");
        // The repeated 02:30 opens no second window.
        let second = nightly.window_at(at("2026-10-25T01:40:00Z"));
        assert!(
            second
                .as_ref()
                .is_none_or(|w| w.start == at("2026-10-25T00:30:00Z")),
            "{second:?}"
        );
        // 22:00 + 10h = 08:00 CET the next morning: 11 hours of real time.
        let night = Schedule::new(
            "night",
            "0 22 * * *",
            10.0 * 3600.0,
            "Europe/Berlin",
            Capacity::Min(2),
        )
        .unwrap();
        let w = night.window_at(at("2026-10-25T03:00:00Z")).unwrap();
        assert_eq!(w.start, at("2026-10-24T20:00:00Z"));
        assert_eq!(w.end, at("2026-10-25T07:00:00Z"));
        assert_eq!(w.end - w.start, 11.0 * 3600.0);
    }

    #[test]
    fn overlapping_windows_take_the_largest_floor() {
        let launch = Schedule::new(
            "launch",
            "0 9 13 1 *",
            7200.0,
            "Europe/Berlin",
            Capacity::Min(30),
        )
        .unwrap();
        let schedules = [office(10), launch];
        // 08:30 Berlin: only the office window.
        let e = effect(&schedules, at("2026-01-13T07:30:00Z")).unwrap();
        assert_eq!(
            (e.schedule.as_str(), e.capacity),
            ("office", Capacity::Min(10))
        );
        // 09:30: both; the launch's 30 wins.
        let e = effect(&schedules, at("2026-01-13T08:30:00Z")).unwrap();
        assert_eq!(
            (e.schedule.as_str(), e.capacity),
            ("launch", Capacity::Min(30))
        );
        // 11:30: the launch is over.
        let e = effect(&schedules, at("2026-01-13T10:30:00Z")).unwrap();
        assert_eq!(e.capacity, Capacity::Min(10));
        assert!(effect(&schedules, at("2026-01-13T20:00:00Z")).is_none());
    }

    #[test]
    fn a_fixed_window_fixes_the_largest_value_of_the_open_windows() {
        let lunch =
            Schedule::new("lunch", "0 12 * * *", 3600.0, "UTC", Capacity::Fixed(4)).unwrap();
        let big = Schedule::new("big", "0 11 * * *", 7200.0, "UTC", Capacity::Min(6)).unwrap();
        let e = effect(&[lunch.clone(), big], at("2026-01-13T12:30:00Z")).unwrap();
        assert_eq!(e.capacity, Capacity::Fixed(6));
        let e = effect(&[lunch], at("2026-01-13T12:30:00Z")).unwrap();
        assert_eq!(e.capacity, Capacity::Fixed(4));
    }

    #[test]
    fn bad_expressions_and_zones_say_what_is_expected() {
        let e = parse_cron("0 8 * *").unwrap_err().to_string();
        assert!(
            e.contains("4 field(s)") && e.contains("expected 5 fields"),
            "{e}"
        );
        assert!(parse_cron("0 0 8 * * 1-5").is_err(), "no seconds field");
        assert!(parse_cron("61 8 * * *").is_err());
        assert!(parse_cron("@daily").is_err());
        let e = parse_zone("Europe/Berlinn").unwrap_err().to_string();
        assert!(e.contains("unknown time zone \"Europe/Berlinn\""), "{e}");
        assert!(parse_zone("America/New_York").is_ok());
    }

    #[test]
    fn next_starts_are_in_the_zone() {
        let s = office(10);
        let next = s.next_starts(at("2026-01-16T12:00:00Z"), 3);
        let shown: Vec<String> = next
            .iter()
            .map(|z| z.strftime("%a %Y-%m-%d %H:%M %:z").to_string())
            .collect();
        assert_eq!(
            shown,
            [
                "Mon 2026-01-19 08:00 +01:00",
                "Tue 2026-01-20 08:00 +01:00",
                "Wed 2026-01-21 08:00 +01:00"
            ]
        );
    }
}
