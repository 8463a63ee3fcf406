//! `setpoint backtest`: a policy replayed over a past range of Prometheus history.

use super::{Failure, RunArgs, capacity, progress_bar, unix_now, write_run};
use crate::backtest;
use crate::policy;
use crate::prometheus::{PrometheusClient, PrometheusConfig};
use std::path::PathBuf;

/// Arguments of `backtest`.
#[derive(Debug, clap::Args)]
pub struct BacktestArgs {
    /// The policy file.
    #[arg(long)]
    pub policy: PathBuf,
    /// Prometheus base URL, for a policy without `spec.prometheus`.
    #[arg(long)]
    pub prometheus: Option<String>,
    /// Start: RFC 3339, Unix seconds, or relative such as now-7d.
    #[arg(long)]
    pub from: String,
    /// End: RFC 3339, Unix seconds, now, or relative such as now-1h.
    #[arg(long, default_value = "now")]
    pub to: String,
    /// Grid step of the replay.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub step: std::time::Duration,
    /// PromQL of the offered load (default: the policy's first targetPerReplica metric).
    #[arg(long)]
    pub load: Option<String>,
    /// Load one ready replica serves (default: the load's mean / 20).
    #[arg(long)]
    pub capacity: Option<f64>,
    /// Start-up, output and plot.
    #[command(flatten)]
    pub run: RunArgs,
}

/// `setpoint backtest`.
pub async fn backtest(a: &BacktestArgs) -> Result<(), Failure> {
    let policy = policy::load(&a.policy)?;
    let config = match (&policy.prometheus, &a.prometheus) {
        (Some(c), _) => c.clone(),
        (None, Some(url)) => PrometheusConfig::new(url.clone()),
        (None, None) => {
            return Err(Failure(format!(
                "{}: the policy names no Prometheus (spec.prometheus): give --prometheus URL",
                policy.source.display()
            )));
        }
    };
    let client = PrometheusClient::new(&config)?;
    let now = unix_now();
    let from = backtest::parse_time(&a.from, now).map_err(|e| Failure(format!("--from: {e}")))?;
    let to = backtest::parse_time(&a.to, now).map_err(|e| Failure(format!("--to: {e}")))?;
    let range = backtest::Range {
        from,
        to,
        step: a.step,
    };
    let capacity = capacity(a.capacity)?;
    let bar = progress_bar(range.steps() as u64, "fetching history");
    let recorded = backtest::record(
        &policy,
        &client,
        a.load.as_deref(),
        range,
        &mut |done, total| {
            if let Some(b) = &bar {
                b.set_length(total as u64);
                b.set_position(done as u64);
            }
        },
    )
    .await;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let recorded = recorded?;
    let result = backtest::replay(&policy, &recorded, capacity, a.run.startup.as_secs_f64())?;
    let title = format!(
        "policy {} from {} to {} (load: {})",
        policy.name,
        backtest::show_time(from),
        backtest::show_time(to),
        recorded.load_source
    );
    write_run(
        Some(&result),
        None,
        &title,
        a.run.output.as_deref(),
        a.run.plot.as_deref(),
    )
}
