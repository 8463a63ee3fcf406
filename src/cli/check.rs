//! `setpoint check`: validate policy files.

use super::Failure;
use crate::policy;
use std::path::PathBuf;

/// `setpoint check`: prints one line per good policy and every problem of the bad ones.
pub fn check(paths: &[PathBuf]) -> Result<(), Failure> {
    let (good, bad) = policy::load_all(paths);
    for p in &good {
        println!("ok {} ({})", p.source.display(), p.name);
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
