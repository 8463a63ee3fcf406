//! The `setpoint` command line: `check`, `simulate`, `recommend`, `backtest`, `tune`, `run` and `crd`, one
//! thin file per command (each parses its arguments, calls the library once, and prints).
//!
//! Exit codes: 0 success, 1 invalid input (a policy or trace that does not validate, a file that
//! cannot be written), 2 usage errors (from clap).

mod backtest;
mod check;
mod recommend;
mod run;
mod simulate;
mod tune;

pub use backtest::BacktestArgs;
pub use recommend::{Format, RecommendArgs, RecommendReport, VerticalReport};
pub use run::{DaemonArgs, LogFormat};
pub use simulate::{DEFAULT_POLICY, SimulateArgs};
pub use tune::TuneArgs;

use crate::prometheus::{PrometheusClient, PrometheusConfig};
use crate::sim::{self, report};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
        /// Also print each schedule's next three window starts.
        #[arg(long, short = 'v')]
        verbose: bool,
    },
    /// Run a policy against a simulated service on a virtual clock.
    Simulate(SimulateArgs),
    /// One tick now, read-only: what the policy would do and why.
    Recommend(RecommendArgs),
    /// Replay a policy over a past range of Prometheus history through the simulator's service
    /// model.
    Backtest(BacktestArgs),
    /// The daemon: run every policy of a folder and of the namespace's ScalingPolicy objects
    /// against the cluster, in one namespace.
    Run(DaemonArgs),
    /// Search a policy's quantile sizing for the cheapest setting that meets an SLO on a
    /// history (a trace, or Prometheus), and write it as a policy file.
    Tune(TuneArgs),
    /// Print the ScalingPolicy CustomResourceDefinition (YAML), generated from the policy model:
    /// `setpoint crd | kubectl apply -f -` installs it.
    Crd,
}

/// The service model's start-up and the outputs, shared by `simulate` and `backtest`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Time from scale-up to ready, e.g. 60s.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub startup: std::time::Duration,
    /// Write the JSON result here (`-` for standard output) instead of printing the table.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Write an SVG plot of load, ready capacity and replicas.
    #[arg(long)]
    pub plot: Option<PathBuf>,
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
        Command::Check { paths, verbose } => check::check(&paths, verbose),
        Command::Simulate(a) => simulate::simulate(&a),
        Command::Recommend(a) => runtime().and_then(|rt| rt.block_on(recommend::recommend(&a))),
        Command::Backtest(a) => runtime().and_then(|rt| rt.block_on(backtest::backtest(&a))),
        Command::Run(a) => runtime().and_then(|rt| rt.block_on(run::daemon(&a))),
        Command::Tune(a) => runtime().and_then(|rt| rt.block_on(tune::tune(&a))),
        Command::Crd => {
            print!("{}", crate::policy::crd::yaml());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(msg)) => {
            eprintln!("{msg}");
            ExitCode::from(1)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure(format!("cannot start the async runtime: {e}")))
}

/// The capacity given with `--capacity`, checked.
fn capacity(c: Option<f64>) -> Result<Option<f64>, Failure> {
    match c {
        Some(c) if !(c.is_finite() && c > 0.0) => Err(Failure(format!(
            "--capacity {c}: expected a positive number"
        ))),
        c => Ok(c),
    }
}

/// Writes a run as `simulate` does: JSON (`{"decisions", "requestChanges", "summary"}`) to a file
/// or standard output, or the tables; and the plot of the horizontal part.
fn write_run(
    horizontal: Option<&sim::SimResult>,
    vertical: Option<&sim::vertical::VerticalResult>,
    title: &str,
    output: Option<&Path>,
    plot: Option<&Path>,
) -> Result<(), Failure> {
    let mut doc = serde_json::Map::new();
    let mut summary = serde_json::Map::new();
    let mut table = format!("{title}\n");
    if let Some(r) = horizontal {
        if let Some(svg) = plot {
            report::plot(r, title, svg).map_err(Failure)?;
        }
        table += &report::table(r);
        doc.insert("decisions".into(), serde_json::to_value(&r.decisions)?);
        merge(&mut summary, serde_json::to_value(&r.summary)?);
    }
    if let Some(v) = vertical {
        table += &report::vertical_table(v);
        doc.insert(
            "requestChanges".into(),
            serde_json::to_value(&v.request_changes)?,
        );
        merge(&mut summary, serde_json::to_value(&v.summary)?);
    }
    doc.insert("summary".into(), serde_json::Value::Object(summary));
    let json = serde_json::to_string_pretty(&doc)?;
    match output {
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

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The client of `--prometheus`, shared by every policy that names no Prometheus of its own.
fn default_prometheus(url: Option<&str>) -> Result<Option<PrometheusClient>, Failure> {
    url.map(|u| PrometheusClient::new(&PrometheusConfig::new(u)))
        .transpose()
        .map_err(|e| Failure(e.to_string()))
}

/// A progress bar on standard error, when it is a terminal: `what` and the steps done.
fn progress_bar(len: u64, what: &str) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
        "{what} [{{bar:40}}] {{pos}}/{{len}}, {{eta}} left"
    )) {
        bar.set_style(style.progress_chars("=> "));
    }
    Some(bar)
}
