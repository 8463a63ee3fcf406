//! `setpoint simulate`: a policy against a simulated service on a virtual clock.

use super::{Failure, RunArgs, capacity, unix_now, write_run};
use crate::backtest;
use crate::policy::{self, Policy};
use crate::sim::{self, ServiceModel, Trace};
use std::path::{Path, PathBuf};

/// The policy `simulate` runs when none is given: policies/examples/hpa.yaml, built in.
pub const DEFAULT_POLICY: &str = include_str!("../../policies/examples/hpa.yaml");

/// The policy `simulate --workload idle-nights` runs when none is given:
/// policies/examples/queue-worker.yaml, built in.
pub const ZERO_POLICY: &str = include_str!("../../policies/examples/queue-worker.yaml");

/// Arguments of `simulate`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The policy file (default: the built-in copy of policies/examples/hpa.yaml).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Load trace: CSV `timestamp_s,value` in requests/s (default: the built-in two-day
    /// synthetic workload).
    #[arg(long, conflicts_with = "workload")]
    pub trace: Option<PathBuf>,
    /// The built-in workload: `diurnal` (default) or `idle-nights` (idle stretches; its default
    /// policy is policies/examples/queue-worker.yaml, which scales to zero).
    #[arg(long, value_enum)]
    pub workload: Option<sim::Workload>,
    /// The wall-clock time of the trace's t = 0, RFC 3339 (or Unix seconds), for schedules
    /// (default: the trace's first timestamp as Unix time; 1970-01-01T00:00:00Z for the built-in
    /// workloads).
    #[arg(long)]
    pub start: Option<String>,
    /// Requests/s one ready replica serves (default: the trace's mean / 20).
    #[arg(long)]
    pub capacity: Option<f64>,
    /// Start-up, output and plot.
    #[command(flatten)]
    pub run: RunArgs,
    /// Vertical part: usage = trace value × SCALE (cores for CPU, MiB for memory) instead of the
    /// trace rescaled to a mean of 0.5 core and 512 MiB.
    #[arg(long)]
    pub scale: Option<f64>,
}

pub(super) fn load_policy(path: Option<&Path>, workload: sim::Workload) -> Result<Policy, Failure> {
    Ok(match (path, workload) {
        (Some(p), _) => policy::load(p)?,
        (None, sim::Workload::IdleNights) => policy::parse(
            ZERO_POLICY,
            Path::new("(built-in) policies/examples/queue-worker.yaml"),
        )?,
        (None, sim::Workload::Diurnal) => policy::parse(
            DEFAULT_POLICY,
            Path::new("(built-in) policies/examples/hpa.yaml"),
        )?,
    })
}

/// `setpoint simulate`: the horizontal part against the trace as load, the vertical part against
/// the trace as one replica's usage shape.
pub fn simulate(a: &SimulateArgs) -> Result<(), Failure> {
    let workload = a.workload.unwrap_or_default();
    let policy = load_policy(a.policy.as_deref(), workload)?;
    let mut trace = match &a.trace {
        Some(p) => Trace::load(p)?,
        None => workload.trace(),
    };
    if let Some(s) = &a.start {
        trace.start =
            backtest::parse_time(s, unix_now()).map_err(|e| Failure(format!("--start: {e}")))?;
    }
    if let Some(k) = a.scale
        && !(k.is_finite() && k > 0.0)
    {
        return Err(Failure(format!("--scale {k}: expected a positive number")));
    }
    let horizontal = match &policy.horizontal {
        None => None,
        Some(_) => {
            let mut model = ServiceModel::for_trace(&trace);
            if let Some(c) = capacity(a.capacity)? {
                model.capacity = c;
            }
            model.startup = a.run.startup.as_secs_f64();
            if model.capacity <= 0.0 {
                return Err(Failure(
                    "the trace's mean load is 0: give --capacity".into(),
                ));
            }
            Some(sim::run(&policy, &trace, model))
        }
    };
    let vertical = policy
        .vertical
        .as_ref()
        .map(|v| sim::vertical::run(v, &trace, a.scale));
    let trace_name = a
        .trace
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| workload.title().into());
    write_run(
        horizontal.as_ref(),
        vertical.as_ref(),
        &format!("policy {} on {trace_name}", policy.name),
        a.run.output.as_deref(),
        a.run.plot.as_deref(),
    )
}
