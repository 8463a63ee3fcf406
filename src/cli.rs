//! The `setpoint` command line: `check` and `simulate`.
//!
//! Exit codes: 0 success, 1 invalid input (a policy or trace that does not validate, a file that
//! cannot be written), 2 usage errors (from clap).

use crate::policy::{self, Policy};
use crate::sim::{self, ServiceModel, Trace, report};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The policy `simulate` runs when none is given: policies/examples/hpa.yaml, built in.
pub const DEFAULT_POLICY: &str = include_str!("../policies/examples/hpa.yaml");

/// setpoint: a metrics-driven autoscaler for Kubernetes.
#[derive(Debug, Parser)]
#[command(name = "setpoint", version, about)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate policy files (files or folders); exits 1 on any error.
    Check {
        /// Policy files or folders of them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Run a policy against a simulated service on a virtual clock.
    Simulate(SimulateArgs),
}

/// Arguments of `simulate`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The policy file (default: the built-in copy of policies/examples/hpa.yaml).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Load trace: CSV `timestamp_s,value` in requests/s (default: the built-in two-day
    /// synthetic workload).
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Requests/s one ready replica serves (default: the trace's mean / 20).
    #[arg(long)]
    pub capacity: Option<f64>,
    /// Time from scale-up to ready, e.g. 60s.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub startup: std::time::Duration,
    /// Write the JSON result here (`-` for standard output) instead of printing the table.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Write an SVG plot of load, ready capacity and replicas.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Vertical part: usage = trace value × SCALE (cores for CPU, MiB for memory) instead of the
    /// trace rescaled to a mean of 0.5 core and 512 MiB.
    #[arg(long)]
    pub scale: Option<f64>,
}

/// An error for the user, already worded; exit code 1.
#[derive(Debug)]
pub struct Failure(pub String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}

/// Parses the command line, runs it and returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { paths } => check(&paths),
        Command::Simulate(a) => simulate(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(msg)) => {
            eprintln!("{msg}");
            ExitCode::from(1)
        }
    }
}

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

fn load_policy(path: Option<&Path>) -> Result<Policy, Failure> {
    Ok(match path {
        Some(p) => policy::load(p)?,
        None => policy::parse(
            DEFAULT_POLICY,
            Path::new("(built-in) policies/examples/hpa.yaml"),
        )?,
    })
}

/// `setpoint simulate`: the horizontal part against the trace as load, the vertical part against
/// the trace as one replica's usage shape.
pub fn simulate(a: &SimulateArgs) -> Result<(), Failure> {
    let policy = load_policy(a.policy.as_deref())?;
    let trace = match &a.trace {
        Some(p) => Trace::load(p)?,
        None => Trace::synthetic(),
    };
    if let Some(k) = a.scale
        && !(k.is_finite() && k > 0.0)
    {
        return Err(Failure(format!("--scale {k}: expected a positive number")));
    }
    let trace_name = a
        .trace
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "built-in synthetic workload".into());
    let mut doc = serde_json::Map::new();
    let mut summary = serde_json::Map::new();
    let mut table = format!("policy {} on {trace_name}\n", policy.name);
    if policy.horizontal.is_some() {
        let mut model = ServiceModel::for_trace(&trace);
        if let Some(c) = a.capacity {
            if !(c.is_finite() && c > 0.0) {
                return Err(Failure(format!(
                    "--capacity {c}: expected a positive number"
                )));
            }
            model.capacity = c;
        }
        model.startup = a.startup.as_secs_f64();
        if model.capacity <= 0.0 {
            return Err(Failure(
                "the trace's mean load is 0: give --capacity".into(),
            ));
        }
        let result = sim::run(&policy, &trace, model);
        if let Some(svg) = &a.plot {
            report::plot(&result, &format!("{} on {trace_name}", policy.name), svg)
                .map_err(Failure)?;
        }
        table += &report::table(&result);
        doc.insert("decisions".into(), serde_json::to_value(&result.decisions)?);
        merge(&mut summary, serde_json::to_value(&result.summary)?);
    }
    if let Some(v) = &policy.vertical {
        let result = sim::vertical::run(v, &trace, a.scale);
        table += &report::vertical_table(&result);
        doc.insert(
            "requestChanges".into(),
            serde_json::to_value(&result.request_changes)?,
        );
        merge(&mut summary, serde_json::to_value(&result.summary)?);
    }
    doc.insert("summary".into(), serde_json::Value::Object(summary));
    let json = serde_json::to_string_pretty(&doc)?;
    match a.output.as_deref() {
        Some(p) if p == Path::new("-") => println!("{json}"),
        Some(p) => std::fs::write(p, json)
            .map_err(|e| Failure(format!("{}: cannot write: {e}", p.display())))?,
        None => print!("{table}"),
    }
    Ok(())
}

fn merge(into: &mut serde_json::Map<String, serde_json::Value>, v: serde_json::Value) {
    if let serde_json::Value::Object(m) = v {
        into.extend(m);
    }
}
