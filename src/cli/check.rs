//! `setpoint check`: validate policy files.

use super::{Failure, unix_now};
use crate::engine::schedule::Capacity;
use crate::policy::{self, Policy};
use std::path::PathBuf;

/// `setpoint check`: prints one line per good policy and every problem of the bad ones; with
/// `verbose`, each schedule's next three window starts.
pub fn check(paths: &[PathBuf], verbose: bool) -> Result<(), Failure> {
    let (good, bad) = policy::load_all(paths);
    for p in &good {
        println!("ok {} ({})", p.source.display(), p.name);
        if verbose {
            print!("{}", schedule_text(p, unix_now()));
        }
    }
    if good.is_empty() && bad.is_empty() {
        return Err(Failure("no policy files (*.yaml, *.yml) found".into()));
    }
    if bad.is_empty() {
        return Ok(());
    }
    let msgs: Vec<String> = bad.iter().map(|e| e.to_string()).collect();
    Err(Failure(format!(
        "{}\n{} of {} policy files have errors",
        msgs.join("\n"),
        bad.len(),
        good.len() + bad.len()
    )))
}

/// Each schedule of `p` and its next three window starts after `now`, one line each.
pub fn schedule_text(p: &Policy, now: f64) -> String {
    let mut out = String::new();
    for s in p.horizontal.iter().flat_map(|h| &h.governor.schedules) {
        let what = match s.capacity {
            Capacity::Min(n) => format!("min {n}"),
            Capacity::Fixed(n) => format!("replicas {n}"),
        };
        let next: Vec<String> = s
            .next_starts(now, 3)
            .iter()
            .map(|z| z.strftime("%a %Y-%m-%d %H:%M %Z").to_string())
            .collect();
        out += &format!(
            "  schedule {}: \"{}\" in {} for {}, {what}; next: {}\n",
            s.name,
            s.cron,
            s.timezone,
            humantime::format_duration(std::time::Duration::from_secs_f64(s.duration)),
            next.join(", ")
        );
    }
    out
}
