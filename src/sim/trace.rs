//! Workload traces: CSV files with the header `timestamp_s,value` (offered load in requests/s, held
//! constant over each step), and the built-in synthetic workload.

use std::path::{Path, PathBuf};

/// A load trace: `values[i]` holds from `times[i]` until `times[i + 1]` (the last value for one
/// more step of the same length as the one before it).
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// Step start times in seconds from the trace start (the first is 0 after loading).
    pub times: Vec<f64>,
    /// Load in requests/s over each step.
    pub values: Vec<f64>,
    /// End of the last step.
    pub end: f64,
    /// The wall-clock time of t = 0, Unix seconds, for schedules: the first timestamp as
    /// written (so a trace of Unix timestamps replays at its own dates; one that starts at 0
    /// starts at 1970-01-01T00:00:00Z, a Thursday). `--start` sets it.
    pub start: f64,
    /// Load integral (requests) up to each step start, plus one entry for `end`.
    prefix: Vec<f64>,
}

/// A bad trace file, with the line it was found at.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line is wrong.
    #[error("{}:{line}: {message}", path.display())]
    Line {
        /// The path.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// The header every trace starts with.
pub const HEADER: &str = "timestamp_s,value";

/// The `*.csv` files of `dir`, sorted by name: a folder of load traces, such as the public ones
/// the benchmarks run on.
pub fn csv_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "csv") {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

impl Trace {
    /// Builds a trace from step start times and values. Times must be strictly increasing and
    /// values finite and non-negative (checked by [`Trace::parse`]; callers of this constructor
    /// guarantee it). Times are shifted so that the trace starts at 0.
    pub fn new(times: Vec<f64>, values: Vec<f64>) -> Trace {
        assert!(!times.is_empty() && times.len() == values.len());
        let t0 = times[0];
        let times: Vec<f64> = times.iter().map(|t| t - t0).collect();
        let n = times.len();
        let last_step = if n > 1 {
            times[n - 1] - times[n - 2]
        } else {
            60.0
        };
        let end = times[n - 1] + last_step;
        let mut prefix = Vec::with_capacity(n + 1);
        let mut acc = 0.0;
        for i in 0..n {
            prefix.push(acc);
            let next = if i + 1 < n { times[i + 1] } else { end };
            acc += values[i] * (next - times[i]);
        }
        prefix.push(acc);
        Trace {
            times,
            values,
            end,
            start: t0,
            prefix,
        }
    }

    /// Reads a CSV trace file.
    pub fn load(path: &Path) -> Result<Trace, TraceError> {
        let text = std::fs::read_to_string(path).map_err(|source| TraceError::Io {
            path: path.to_owned(),
            source,
        })?;
        Trace::parse(&text, path)
    }

    /// Parses CSV text; `path` is used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Trace, TraceError> {
        let err = |line: usize, message: String| TraceError::Line {
            path: path.to_owned(),
            line,
            message,
        };
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, h)) if h.trim().trim_start_matches('\u{feff}') == HEADER => {}
            Some((_, h)) => {
                return Err(err(
                    1,
                    format!("expected the header \"{HEADER}\", found \"{}\"", h.trim()),
                ));
            }
            None => {
                return Err(err(
                    1,
                    format!("empty file: expected the header \"{HEADER}\""),
                ));
            }
        }
        let (mut times, mut values) = (Vec::new(), Vec::new());
        for (i, line) in lines {
            let n = i + 1;
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let Some((t, v)) = line.split_once(',') else {
                return Err(err(
                    n,
                    format!("expected two fields \"timestamp_s,value\", found \"{line}\""),
                ));
            };
            let t: f64 = t
                .trim()
                .parse()
                .ok()
                .filter(|t: &f64| t.is_finite())
                .ok_or_else(|| err(n, format!("timestamp \"{}\" is not a number", t.trim())))?;
            let v: f64 = v
                .trim()
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite())
                .ok_or_else(|| err(n, format!("value \"{}\" is not a number", v.trim())))?;
            if v < 0.0 {
                return Err(err(
                    n,
                    format!("negative load {v}: load is requests/s, zero or more"),
                ));
            }
            if let Some(&prev) = times.last()
                && t <= prev
            {
                return Err(err(
                    n,
                    format!("timestamp {t} is not after the previous one ({prev})"),
                ));
            }
            times.push(t);
            values.push(v);
        }
        if times.is_empty() {
            return Err(err(2, "no data rows after the header".into()));
        }
        Ok(Trace::new(times, values))
    }

    /// Time-weighted mean load.
    pub fn mean(&self) -> f64 {
        self.prefix[self.prefix.len() - 1] / self.end
    }

    /// Index of the step holding time `t` (clamped to the trace).
    pub fn step_at(&self, t: f64) -> usize {
        self.times.partition_point(|&s| s <= t).saturating_sub(1)
    }

    /// Requests offered between 0 and `t`.
    fn cumulative(&self, t: f64) -> f64 {
        let t = t.clamp(0.0, self.end);
        let i = self.step_at(t);
        self.prefix[i] + self.values[i] * (t - self.times[i])
    }

    /// Mean load over [a, b] (None when the interval is empty).
    pub fn mean_between(&self, a: f64, b: f64) -> Option<f64> {
        let (a, b) = (a.max(0.0), b.min(self.end));
        (b > a).then(|| (self.cumulative(b) - self.cumulative(a)) / (b - a))
    }

    /// End of step `i`.
    pub fn step_end(&self, i: usize) -> f64 {
        self.times.get(i + 1).copied().unwrap_or(self.end)
    }

    /// The built-in workload: two days at 60 s steps of a daily cycle (night trough at 25 % of
    /// the peak, busiest in the afternoon) with ±8 % noise and four bursts of 2-3× lasting 6 to 20
    /// minutes. Deterministic: the same every run. Mean about 100 requests/s.
    pub fn synthetic() -> Trace {
        const DAY: f64 = 86_400.0;
        let bursts = [
            (0.4 * DAY, 600.0, 2.5),
            (0.9 * DAY, 360.0, 3.0),
            (1.3 * DAY, 1200.0, 2.0),
            (1.6 * DAY, 480.0, 2.8),
        ];
        let mut rng = SplitMix64(0x5e7_901e7);
        let (mut times, mut values) = (Vec::new(), Vec::new());
        for i in 0..(2 * 1440) {
            let t = i as f64 * 60.0;
            // Daily cycle: trough at 04:00, peak at 16:00.
            let phase = 2.0 * std::f64::consts::PI * (t - 4.0 * 3600.0) / DAY;
            let daily = 100.0 * (1.0 - 0.6 * phase.cos());
            let noise = 1.0 + 0.08 * (2.0 * rng.next_f64() - 1.0);
            let burst = bursts
                .iter()
                .filter(|(start, len, _)| t >= *start && t < start + len)
                .map(|b| b.2)
                .fold(1.0, f64::max);
            times.push(t);
            values.push(daily * noise * burst);
        }
        Trace::new(times, values)
    }
}

/// The built-in workloads (`simulate --workload`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Workload {
    /// [`Trace::synthetic`]: a daily cycle that never stops, with bursts.
    #[default]
    Diurnal,
    /// [`Trace::idle_nights`]: busy days, idle nights with a nightly batch and stray jobs.
    IdleNights,
}

impl Workload {
    /// The trace.
    pub fn trace(self) -> Trace {
        match self {
            Workload::Diurnal => Trace::synthetic(),
            Workload::IdleNights => Trace::idle_nights(),
        }
    }

    /// What tables and plots call it.
    pub fn title(self) -> &'static str {
        match self {
            Workload::Diurnal => "built-in synthetic workload",
            Workload::IdleNights => "built-in idle-nights workload",
        }
    }
}

impl Trace {
    /// The built-in workload with idle stretches: two days at 60 s steps of a queue worker's
    /// load (jobs/s). From 07:00 to 21:00 a daily cycle peaking at 14:00 at about 700 with ±8 %
    /// noise; no load at all at night but a 15-minute batch at 02:00 (300 jobs/s), a few stray
    /// jobs (23:40 on the first night, 04:30 on the second) and, on the second day, a 40-minute
    /// lull from 12:30. The times are UTC from t = 0 (1970-01-01T00:00Z unless `--start` says
    /// otherwise). Deterministic: the same every run. Mean about 250 jobs/s.
    pub fn idle_nights() -> Trace {
        const DAY: f64 = 86_400.0;
        const H: f64 = 3600.0;
        // (start, length, jobs/s) of the night's load.
        let night = [
            (2.0 * H, 900.0, 300.0),
            (23.0 * H + 2400.0, 120.0, 4.0),
            (DAY + 2.0 * H, 900.0, 300.0),
            (DAY + 4.5 * H, 60.0, 2.0),
        ];
        let lull = (DAY + 12.5 * H, 2400.0);
        let mut rng = SplitMix64(0x1d1e_5eed);
        let (mut times, mut values) = (Vec::new(), Vec::new());
        for i in 0..(2 * 1440) {
            let t = i as f64 * 60.0;
            let hour = (t % DAY) / H;
            let noise = 1.0 + 0.08 * (2.0 * rng.next_f64() - 1.0);
            let day = if (7.0..21.0).contains(&hour) && !(t >= lull.0 && t < lull.0 + lull.1) {
                let phase = std::f64::consts::PI * (hour - 7.0) / 14.0;
                20.0 + 680.0 * phase.sin().powf(1.5)
            } else {
                0.0
            };
            let batch = night
                .iter()
                .filter(|(start, len, _)| t >= *start && t < start + len)
                .map(|b| b.2)
                .fold(0.0, f64::max);
            times.push(t);
            values.push((day * noise).max(batch));
        }
        Trace::new(times, values)
    }
}

/// A tiny deterministic generator for the synthetic workload's noise. Hand-written on purpose:
/// the workload must be the same in every version, which a general-purpose RNG crate does not
/// promise for its seeded generators.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Trace, TraceError> {
        Trace::parse(s, Path::new("t.csv"))
    }

    fn line_of(e: TraceError) -> (usize, String) {
        match e {
            TraceError::Line { line, message, .. } => (line, message),
            e => panic!("unexpected {e}"),
        }
    }

    #[test]
    fn parses_and_integrates() {
        let t = parse("timestamp_s,value\n0,10\n60,20\n120,30\n").unwrap();
        assert_eq!(t.end, 180.0);
        assert!((t.mean() - 20.0).abs() < 1e-9);
        assert_eq!(t.mean_between(30.0, 90.0), Some(15.0));
        assert_eq!(t.mean_between(-60.0, 0.0), None);
        assert_eq!(t.step_at(59.9), 0);
        assert_eq!(t.step_at(60.0), 1);
        assert_eq!(t.step_at(1e9), 2);
    }

    #[test]
    fn shifts_to_zero_and_accepts_crlf() {
        let t = parse("timestamp_s,value\r\n1000,1\r\n1060,3\r\n").unwrap();
        assert_eq!(t.times, vec![0.0, 60.0]);
    }

    #[test]
    fn bad_files_name_the_line() {
        let cases = [
            ("", 1, "empty file"),
            ("time,value\n0,1\n", 1, "expected the header"),
            ("timestamp_s,value\n", 2, "no data rows"),
            (
                "timestamp_s,value\n0,1\n60,abc\n",
                3,
                "value \"abc\" is not a number",
            ),
            ("timestamp_s,value\n0,1\n60,NaN\n", 3, "is not a number"),
            ("timestamp_s,value\n0,1\n60,-2\n", 3, "negative load"),
            (
                "timestamp_s,value\n0,1\n60,1\n60,1\n",
                4,
                "not after the previous",
            ),
            ("timestamp_s,value\n0,1\n60 1\n", 3, "two fields"),
        ];
        for (text, line, msg) in cases {
            let (l, m) = line_of(parse(text).unwrap_err());
            assert_eq!(l, line, "{text:?}: {m}");
            assert!(m.contains(msg), "{text:?}: {m}");
        }
    }

    #[test]
    fn idle_nights_has_idle_stretches_and_a_nightly_batch() {
        let a = Trace::idle_nights();
        assert_eq!(a, Trace::idle_nights());
        assert_eq!(a.end, 2.0 * 86_400.0);
        assert!((200.0..300.0).contains(&a.mean()), "mean {}", a.mean());
        // 01:00 and 03:00 are idle, 02:05 is the batch, 14:00 is busy.
        assert_eq!(a.values[a.step_at(3600.0)], 0.0);
        assert_eq!(a.values[a.step_at(3.0 * 3600.0)], 0.0);
        assert_eq!(a.values[a.step_at(2.0 * 3600.0 + 300.0)], 300.0);
        assert!(a.values[a.step_at(14.0 * 3600.0)] > 600.0);
        let idle = a.values.iter().filter(|v| **v == 0.0).count();
        assert!(idle > 1000, "{idle} idle minutes");
    }

    #[test]
    fn synthetic_is_two_days_and_deterministic() {
        let a = Trace::synthetic();
        assert_eq!(a, Trace::synthetic());
        assert_eq!(a.end, 2.0 * 86_400.0);
        assert!((80.0..120.0).contains(&a.mean()), "mean {}", a.mean());
        let peak = a.values.iter().cloned().fold(0.0, f64::max);
        assert!(peak > 2.5 * a.mean(), "bursts present");
    }
}
