//! The `setpoint` command line: `check`, `simulate`, `recommend`, `backtest` and `tune`.
//!
//! Exit codes: 0 success, 1 invalid input (a policy or trace that does not validate, a file that
//! cannot be written), 2 usage errors (from clap).

use crate::backtest;
use crate::cluster::{Cluster, ClusterConfig, KubeCluster};
use crate::daemon::admin::{self, AdminConfig, AdminState};
use crate::daemon::lease::{self, LeaseConfig};
use crate::daemon::telemetry::Telemetry;
use crate::daemon::{self, DaemonConfig};
use crate::engine::{self, Algorithm, Decision, Observation, State};
use crate::metrics::prometheus::{PrometheusClient, PrometheusConfig};
use crate::metrics::usage::{Recommenders, UsageReader, UsageSource};
use crate::metrics::{MetricReading, Observer, TargetState};
use crate::policy::{self, MetricQuery, Policy, VerticalSpec};
use crate::sim::{self, ServiceModel, Trace, report};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tokio::sync::watch;

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
    /// One tick now, read-only: what the policy would do and why.
    Recommend(RecommendArgs),
    /// Replay a policy over a past range of Prometheus history through the simulator's service
    /// model.
    Backtest(BacktestArgs),
    /// The daemon: run every policy of a folder against the cluster, in one namespace.
    Run(DaemonArgs),
    /// Search a policy's quantile sizing for the cheapest setting that meets an SLO on a
    /// history (a trace, or Prometheus), and write it as a policy file.
    Tune(TuneArgs),
}

/// Arguments of `tune` (see [`sim::tune`]).
#[derive(Debug, clap::Args)]
pub struct TuneArgs {
    /// The policy file to tune.
    #[arg(long)]
    pub policy: PathBuf,
    /// Load history: CSV `timestamp_s,value` in requests/s.
    #[arg(
        long,
        required_unless_present = "prometheus",
        conflicts_with = "prometheus"
    )]
    pub trace: Option<PathBuf>,
    /// Or Prometheus base URL, with --from, --to and --load (as `backtest`), read at 1m steps.
    #[arg(long, requires = "from")]
    pub prometheus: Option<String>,
    /// Start of the Prometheus history (as `backtest`).
    #[arg(long)]
    pub from: Option<String>,
    /// End of the Prometheus history.
    #[arg(long, default_value = "now")]
    pub to: String,
    /// PromQL of the offered load (default: the policy's first targetPerReplica metric).
    #[arg(long)]
    pub load: Option<String>,
    /// Load one ready replica serves (default: the load's mean / 20).
    #[arg(long)]
    pub capacity: Option<f64>,
    /// Time from scale-up to ready.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub startup: std::time::Duration,
    /// Unserved load allowed, % of all load (e.g. 0.1).
    #[arg(long)]
    pub max_unserved: f64,
    /// Write the tuned policy here (default: standard output, the table then goes to stderr).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Write an SVG of the cost/unserved frontier.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

/// Log line format of `run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for a person.
    Text,
    /// One JSON object per line.
    Json,
}

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct DaemonArgs {
    /// The folder of policy files (in a pod: the ConfigMap mount). Changed files are reloaded.
    #[arg(long)]
    pub policies: PathBuf,
    /// Namespace to serve (default: the service account's in a pod, else the context's).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Prometheus base URL, for policies without `spec.prometheus`.
    #[arg(long)]
    pub prometheus: Option<String>,
    /// Patch nothing: every policy only recommends (on /recommendations, /metrics and Events).
    #[arg(long)]
    pub dry_run: bool,
    /// Address of the admin HTTP server (/healthz, /readyz, /metrics, /recommendations).
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub listen: std::net::SocketAddr,
    /// Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current one).
    #[arg(long)]
    pub context: Option<String>,
    /// How often the policy folder is looked at for changes.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub reload_every: std::time::Duration,
    /// Name of the coordination.k8s.io Lease that elects the replica that acts.
    #[arg(long, default_value = "setpoint")]
    pub lease: String,
    /// Lease duration: a replica that holds the Lease and stops renewing it loses it after this.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub lease_duration: std::time::Duration,
    /// Act without a Lease (one replica only, e.g. on a laptop).
    #[arg(long)]
    pub no_leader_election: bool,
    /// text or json.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// error, warn, info, debug or trace.
    #[arg(long, default_value = "info")]
    pub log_level: tracing::Level,
}

/// Output format of `recommend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Lines for a person.
    Text,
    /// One JSON document.
    Json,
}

/// Arguments of `recommend`.
#[derive(Debug, clap::Args)]
pub struct RecommendArgs {
    /// The policy file.
    #[arg(long)]
    pub policy: PathBuf,
    /// Prometheus base URL, for a policy without `spec.prometheus`.
    #[arg(long)]
    pub prometheus: Option<String>,
    /// The target's current replicas; without it they are read from the cluster (kubeconfig).
    #[arg(long)]
    pub replicas: Option<u32>,
    /// Ready replicas (default: with --replicas, all of them; otherwise the ready pods).
    #[arg(long)]
    pub ready: Option<u32>,
    /// text or json.
    #[arg(long, value_enum, default_value = "text")]
    pub output: Format,
    /// Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current one).
    #[arg(long)]
    pub context: Option<String>,
    /// Namespace of the target (default: the policy's metadata.namespace, then the context's).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
}

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
    /// Start-up, output and plot.
    #[command(flatten)]
    pub run: RunArgs,
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
        Command::Recommend(a) => runtime().and_then(|rt| rt.block_on(recommend(&a))),
        Command::Backtest(a) => runtime().and_then(|rt| rt.block_on(backtest(&a))),
        Command::Run(a) => runtime().and_then(|rt| rt.block_on(daemon(&a))),
        Command::Tune(a) => runtime().and_then(|rt| rt.block_on(tune(&a))),
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
        .unwrap_or_else(|| "built-in synthetic workload".into());
    write_run(
        horizontal.as_ref(),
        vertical.as_ref(),
        &format!("policy {} on {trace_name}", policy.name),
        a.run.output.as_deref(),
        a.run.plot.as_deref(),
    )
}

/// `setpoint tune`: the search is [`sim::tune`]; this reads the history, shows progress, and
/// writes the policy after checking that it parses and reproduces the numbers reported.
pub async fn tune(a: &TuneArgs) -> Result<(), Failure> {
    use sim::tune as t;
    let policy = policy::load(&a.policy)?;
    let hpa = load_policy(None)?;
    if !(a.max_unserved.is_finite() && a.max_unserved >= 0.0) {
        return Err(Failure(format!(
            "--max-unserved {}: expected a percentage, 0 or more",
            a.max_unserved
        )));
    }
    let (trace, on, source) = match (&a.trace, &a.prometheus) {
        (Some(p), _) => (
            Trace::load(p)?,
            p.display().to_string(),
            format!("simulate --trace {}", p.display()),
        ),
        (None, url) => {
            let url = url.clone().unwrap_or_default();
            let client = PrometheusClient::new(&PrometheusConfig::new(url.clone()))?;
            let now = unix_now();
            let from = backtest::parse_time(a.from.as_deref().unwrap_or_default(), now)
                .map_err(|e| Failure(format!("--from: {e}")))?;
            let to = backtest::parse_time(&a.to, now).map_err(|e| Failure(format!("--to: {e}")))?;
            let step = std::time::Duration::from_secs(60);
            let rec = backtest::record(
                &policy,
                &client,
                a.load.as_deref(),
                backtest::Range { from, to, step },
                &mut |_, _| {},
            )
            .await?;
            let on = format!(
                "{url} from {} to {} ({})",
                backtest::show_time(from),
                backtest::show_time(to),
                rec.load_source
            );
            (
                backtest::load_trace(&rec)?.0,
                on,
                format!("backtest --prometheus {url} --from {from} --to {to} --step 1m"),
            )
        }
    };
    let mut model = ServiceModel::for_trace(&trace);
    model.capacity = capacity(a.capacity)?.unwrap_or(model.capacity);
    model.startup = a.startup.as_secs_f64();
    if model.capacity <= 0.0 {
        return Err(Failure("the load's mean is 0: give --capacity".into()));
    }
    let space = t::Space::standard();
    let bar = progress_bar(t::max_runs(&space) as u64, "simulating settings");
    let done = |n: usize| bar.iter().for_each(|b| b.set_position(n as u64));
    let o = t::tune(&policy, &hpa, &trace, model, a.max_unserved, &space, &done)?;
    bar.iter().for_each(|b| b.finish_and_clear());
    let table = t::table(&o);
    match a.output {
        Some(_) => print!("{table}"),
        None => eprint!("{table}"),
    }
    if let Some(svg) = &a.plot {
        t::plot(&o, &format!("tune {} on {on}", policy.name), svg).map_err(Failure)?;
    }
    let best = o.best.as_ref().ok_or_else(|| {
        Failure(format!(
            "no setting searched meets unserved <= {} % within {} actions",
            a.max_unserved,
            o.hpa.budget()
        ))
    })?;
    let out = a
        .output
        .as_ref()
        .map_or("TUNED.yaml".into(), |p| p.display().to_string());
    let reproduce = format!(
        "setpoint {source} --policy {out} --capacity {} --startup {}",
        model.capacity,
        humantime::format_duration(a.startup)
    );
    let text = std::fs::read_to_string(&a.policy)
        .map_err(|e| Failure(format!("{}: cannot read: {e}", a.policy.display())))?;
    let written = t::write_policy(
        &text,
        &policy,
        &best.setting,
        model,
        &t::comment(&o, best, &on, &reproduce),
    )
    .map_err(|e| Failure(format!("{}: {e}", a.policy.display())))?;
    let again = sim::run(&policy::parse(&written, Path::new(&out))?, &trace, model).summary;
    if again != best.summary {
        return Err(Failure(format!(
            "the written policy does not reproduce the tuned numbers ({again:?} vs {:?})",
            best.summary
        )));
    }
    match &a.output {
        Some(p) => std::fs::write(p, written)
            .map_err(|e| Failure(format!("{}: cannot write: {e}", p.display()))),
        None => {
            print!("{written}");
            Ok(())
        }
    }
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

/// A progress bar on standard error, when it is a terminal.
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

/// What `recommend` prints as JSON.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecommendReport {
    /// The policy's name.
    pub policy: String,
    /// The scale target.
    pub target: crate::policy::TargetRef,
    /// The namespace, when the cluster was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// When, RFC 3339.
    pub time: String,
    /// Where the replica counts came from: `cluster` or `flags`.
    pub replicas_from: &'static str,
    /// Each metric's reading.
    pub metrics: Vec<MetricReading>,
    /// The horizontal decision and its explanation (None for a vertical-only policy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// The decision in one line (the vertical one for a vertical-only policy).
    pub summary: String,
    /// The vertical part: per container and resource the current request, the recommendation
    /// and what the planner would do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vertical: Option<VerticalReport>,
    /// Caveats of a single read-only tick.
    pub notes: Vec<String>,
}

/// What `recommend` shows of the vertical part.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerticalReport {
    /// Where usage came from: `prometheus` or `metrics.k8s.io`.
    pub source: &'static str,
    /// Usage samples fed to the recommenders.
    pub samples: u64,
    /// OOM kills fed to them.
    pub oom_kills: u64,
    /// The history read from Prometheus, seconds (None: one metrics.k8s.io sample).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_s: Option<f64>,
    /// The planner's decision, its rows (current request, target, bounds, verdict) and notes.
    pub plan: crate::engine::vertical_plan::VerticalPlan,
    /// Readings that gave no data.
    pub problems: Vec<String>,
}

/// `setpoint recommend`.
pub async fn recommend(a: &RecommendArgs) -> Result<(), Failure> {
    let report = recommendation(a).await?;
    match a.output {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("a report serializes")
        ),
        Format::Text => print!("{}", recommend_text(&report)),
    }
    Ok(())
}

/// One read-only tick of the policy named by `a`.
pub async fn recommendation(a: &RecommendArgs) -> Result<RecommendReport, Failure> {
    let policy = policy::load(&a.policy)?;
    let default = default_prometheus(a.prometheus.as_deref())?;
    let prometheus = crate::metrics::policy_prometheus(&policy, default.as_ref())?;
    let mut observer = Observer::new(&policy, prometheus.as_ref())?;
    let needs_cluster = a.replicas.is_none() || observer.reads_pods() || policy.vertical.is_some();
    let cluster = if needs_cluster {
        let namespace = a.namespace.clone().or_else(|| policy.namespace.clone());
        Some(
            KubeCluster::connect(&ClusterConfig {
                kubeconfig: a.kubeconfig.clone(),
                context: a.context.clone(),
                namespace,
            })
            .await?,
        )
    } else {
        None
    };
    let mut target = TargetState::default();
    let mut notes = Vec::new();
    let needs_pods = observer.reads_pods() || policy.vertical.is_some();
    if let Some(c) = &cluster {
        let scale = c.scale(&policy.target).await?;
        target.current = scale.spec_replicas;
        target.ready = scale.status_replicas;
        match &scale.selector {
            Some(sel) => {
                let pods = c.pods(sel).await?;
                target.ready = pods.iter().filter(|p| p.is_ready()).count() as u32;
                target.pods = Some(pods);
                target.selector = Some(sel.clone());
            }
            None if needs_pods => {
                return Err(Failure(format!(
                    "the scale subresource of {} {} reports no pod selector: {} need one",
                    policy.target.kind,
                    policy.target.name,
                    if observer.reads_pods() {
                        "pod metrics"
                    } else {
                        "vertical recommendations"
                    }
                )));
            }
            None => notes.push(
                "the scale subresource reports no pod selector: ready replicas are its \
                 status.replicas"
                    .to_string(),
            ),
        }
    }
    if let Some(n) = a.replicas {
        target.current = n;
        target.ready = n;
    }
    if let Some(r) = a.ready {
        target.ready = r;
    }
    let (metrics, decision) = match &policy.horizontal {
        None => (Vec::new(), None),
        Some(horizontal) => {
            if observer.reads_pods()
                && policy
                    .queries
                    .iter()
                    .any(|q| matches!(q, MetricQuery::Pods(_)))
            {
                // Counters need two scrapes: one now, the reading one an interval later.
                observer.prime(&policy, &target, unix_now()).await;
                tokio::time::sleep(std::time::Duration::from_secs_f64(policy.interval)).await;
            }
            let now = unix_now();
            let mut state = State::default();
            if let Algorithm::Predictive(params) = &horizontal.algorithm {
                notes.extend(
                    observer
                        .seed_history(&policy, params, &mut state, target.ready, now)
                        .await,
                );
            }
            let readings = observer
                .observe(&policy, cluster.as_ref(), &target, now, None)
                .await;
            let obs = Observation {
                current_replicas: target.current,
                ready_replicas: target.ready,
                samples: readings.iter().map(|r| r.sample.clone()).collect(),
            };
            let decision = engine::tick(horizontal, &mut state, &obs, now);
            notes.push(
                "one read-only tick without the daemon's memory: stabilization windows, cooldowns \
                 and rate limits see no earlier recommendation or action"
                    .to_string(),
            );
            (readings, Some(decision))
        }
    };
    let now = unix_now();
    let vertical = match (&policy.vertical, &cluster) {
        (Some(spec), Some(c)) => Some(
            vertical_report(
                &policy,
                spec,
                c,
                target.pods.as_deref().unwrap_or(&[]),
                target.selector.as_deref().unwrap_or(""),
                prometheus.clone(),
                now,
                &mut notes,
            )
            .await?,
        ),
        _ => None,
    };
    let summary = match (&decision, &vertical) {
        (Some(d), _) => d.to_string(),
        (None, Some(v)) => v.plan.action.to_string(),
        (None, None) => String::new(),
    };
    Ok(RecommendReport {
        policy: policy.name.clone(),
        target: policy.target.clone(),
        namespace: cluster.as_ref().map(|c| c.namespace().to_string()),
        time: backtest::show_time(now),
        replicas_from: if a.replicas.is_some() {
            "flags"
        } else {
            "cluster"
        },
        metrics,
        summary,
        decision,
        vertical,
        notes,
    })
}

/// `setpoint run`: the daemon, until SIGTERM or SIGINT.
pub async fn daemon(a: &DaemonArgs) -> Result<(), Failure> {
    {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        // setpoint's own lines at the level asked; the libraries' warnings and errors only.
        let filter = tracing_subscriber::filter::Targets::new()
            .with_target("setpoint", a.log_level)
            .with_default(tracing::Level::WARN);
        let logs = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
        let registry = tracing_subscriber::registry().with(filter);
        match a.log_format {
            LogFormat::Text => registry.with(logs).init(),
            LogFormat::Json => registry.with(logs.json().flatten_event(true)).init(),
        }
    }
    let cluster = KubeCluster::connect(&ClusterConfig {
        kubeconfig: a.kubeconfig.clone(),
        context: a.context.clone(),
        namespace: a.namespace.clone(),
    })
    .await?;
    let admin = AdminState::new(Telemetry::new(), AdminConfig::default());
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .map_err(|e| Failure(format!("cannot listen on {}: {e}", a.listen)))?;
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        signalled().await;
        tracing::info!("shutdown signal received");
        let _ = stop.send(true);
    });
    let until_stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let server = tokio::spawn(admin::serve(
        listener,
        admin.clone(),
        until_stopped(stopped.clone()),
    ));
    tracing::info!(
        namespace = cluster.namespace(),
        policies = %a.policies.display(),
        dry_run = a.dry_run,
        "setpoint starts"
    );
    // The Lease: only its holder acts. Without election this replica always may.
    let (_always, mut leader) = watch::channel(true);
    let mut leadership = None;
    if !a.no_leader_election {
        let mut config = LeaseConfig::new(cluster.namespace());
        config.name = a.lease.clone();
        config.lease_duration = a.lease_duration;
        config.renew_period = (a.lease_duration / 3).max(std::time::Duration::from_secs(1));
        let l = lease::elect(cluster.client().clone(), config)
            .await
            .map_err(|e| Failure(e.to_string()))?;
        leader = l.subscribe();
        leadership = Some(l);
    }
    let telemetry = admin.telemetry().clone();
    let mut watched = leader.clone();
    tokio::spawn(async move {
        loop {
            let now = *watched.borrow_and_update();
            telemetry.set_leader(now);
            tracing::info!(leader = now, "leadership");
            if watched.changed().await.is_err() {
                break;
            }
        }
    });
    let config = DaemonConfig {
        policies: a.policies.clone(),
        prometheus: default_prometheus(a.prometheus.as_deref())?,
        dry_run: a.dry_run,
        reload_every: a.reload_every,
    };
    let lost = async {
        match leadership.as_mut() {
            Some(l) => l.failed().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = daemon::run(config, cluster, admin, leader, until_stopped(stopped)) => {
            r.map_err(|e| Failure(e.to_string()))?
        }
        // If the election cannot go on, the process exits (and is restarted): acting without
        // knowing who leads is not an option.
        e = lost => return Err(Failure(format!("leader election ended: {e}"))),
    }
    if let Some(l) = leadership
        && let Err(e) = l.release().await
    {
        tracing::warn!(error = %e, "cannot release the Lease: the other replica takes over when it expires");
    }
    match server.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Failure(format!("the admin server failed: {e}"))),
        Err(e) => Err(Failure(format!("the admin server failed: {e}"))),
    }
}

/// The vertical part of one read-only look: the pods' usage (a range of Prometheus history, or
/// one metrics.k8s.io sample) into the recommenders, then the planner with a fresh state.
#[allow(clippy::too_many_arguments)]
async fn vertical_report(
    policy: &Policy,
    spec: &VerticalSpec,
    cluster: &KubeCluster,
    pods: &[crate::cluster::PodInfo],
    selector: &str,
    prometheus: Option<PrometheusClient>,
    now: f64,
    notes: &mut Vec<String>,
) -> Result<VerticalReport, Failure> {
    let source = UsageSource::for_policy(policy, prometheus)?;
    let name = source.name();
    let mut reader = UsageReader::new(spec, source);
    let (read, history_s) = match reader.source() {
        UsageSource::Prometheus(_) => {
            let history = reader.history_window();
            let read = reader.recent_history(cluster, pods, now).await;
            notes.push(format!(
                "vertical: usage history read from Prometheus over the last {}, one point a \
                 minute, for the pods running now",
                humantime::format_duration(std::time::Duration::from_secs_f64(history))
            ));
            (read, Some(history))
        }
        UsageSource::MetricsApi => {
            let read = reader.read(cluster, pods, selector, now).await;
            notes.push(
                "vertical: one metrics.k8s.io sample per container: a thin history (the daemon \
                 builds it tick by tick; with --prometheus, recommend reads a range of history)"
                    .to_string(),
            );
            (read, None)
        }
    };
    let mut recommenders = Recommenders::new(spec);
    recommenders.feed(&read);
    let plan_pods: Vec<_> = pods.iter().map(|p| p.plan_pod()).collect();
    let plan = crate::engine::vertical_plan::plan(
        &spec.plan,
        &recommenders.recommendations(),
        &plan_pods,
        &mut crate::engine::vertical_plan::PlanState::default(),
        now,
    );
    notes.push(
        "vertical: one read-only look without the daemon's memory: a request inside its bounds \
         is not yet \"off the target for long\" (minChange.after)"
            .to_string(),
    );
    Ok(VerticalReport {
        source: name,
        samples: recommenders.samples(),
        oom_kills: recommenders.ooms(),
        history_s,
        plan,
        problems: read.problems,
    })
}

/// The client of `--prometheus`, shared by every policy that names no Prometheus of its own.
fn default_prometheus(url: Option<&str>) -> Result<Option<PrometheusClient>, Failure> {
    url.map(|u| PrometheusClient::new(&PrometheusConfig::new(u)))
        .transpose()
        .map_err(|e| Failure(e.to_string()))
}

/// Resolves at SIGTERM (what the kubelet sends) or SIGINT.
async fn signalled() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            tracing::error!("cannot install signal handlers: stop with SIGKILL");
            std::future::pending::<()>().await
        }
    }
}

/// `recommend`'s text form.
pub fn recommend_text(r: &RecommendReport) -> String {
    let mut out = String::new();
    let ns = r
        .namespace
        .as_ref()
        .map(|n| format!(" in namespace {n}"))
        .unwrap_or_default();
    out.push_str(&format!(
        "policy {}: {} {}{ns}, at {}\n",
        r.policy, r.target.kind, r.target.name, r.time
    ));
    if let Some(d) = &r.decision {
        horizontal_text(r, d, &mut out);
    }
    if let Some(v) = &r.vertical {
        vertical_text(v, &mut out);
        let label = if r.decision.is_some() {
            "vertical decision"
        } else {
            "decision"
        };
        out.push_str(&format!("{label}: {}\n", v.plan.action));
    }
    for n in &r.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}

fn vertical_text(v: &VerticalReport, out: &mut String) {
    use crate::engine::vertical_plan::show;
    out.push_str(&format!(
        "vertical (usage from {}: {} samples, {} OOM kills):\n",
        v.source, v.samples, v.oom_kills
    ));
    for row in &v.plan.rows {
        let r = row.resource;
        let current = match (row.current_min, row.current_max) {
            (Some(lo), Some(hi)) if show(r, lo) == show(r, hi) => show(r, lo),
            (Some(lo), Some(hi)) => format!("{}-{}", show(r, lo), show(r, hi)),
            _ => "none".to_string(),
        };
        let rec = match &row.recommended {
            Some(x) => format!(
                "target {}, bounds [{}, {}]",
                show(r, x.target),
                show(r, x.lower),
                show(r, x.upper)
            ),
            None => "no recommendation".to_string(),
        };
        let planned = row
            .planned
            .map(|p| format!(" → {}", show(r, p)))
            .unwrap_or_default();
        out.push_str(&format!(
            "  {} {}: request {current}, {rec}: {}{planned}\n",
            row.container,
            r.as_str(),
            row.verdict
        ));
    }
    for n in &v.plan.notes {
        out.push_str(&format!("  note: {n}\n"));
    }
    for p in &v.problems {
        out.push_str(&format!("  no data: {p}\n"));
    }
}

fn horizontal_text(r: &RecommendReport, d: &Decision, out: &mut String) {
    let e = &d.explanation;
    out.push_str(&format!(
        "replicas: {} current, {} ready (from the {})\n",
        d.current_replicas,
        e.ready_replicas,
        if r.replicas_from == "flags" {
            "command line"
        } else {
            "cluster"
        }
    ));
    out.push_str("metrics:\n");
    for m in &r.metrics {
        let value = match &m.sample {
            crate::engine::Sample::Value { value } => engine::fmt_num(*value),
            crate::engine::Sample::NoData { reason } => format!("no data ({reason})"),
        };
        out.push_str(&format!(
            "  {} = {value}\n    from {}\n",
            m.metric, m.source
        ));
        if let Some(note) = &m.note {
            out.push_str(&format!("    {note}\n"));
        }
    }
    out.push_str("proposals:\n");
    if e.proposals.is_empty() {
        out.push_str("  none: no metric had data\n");
    }
    for p in &e.proposals {
        out.push_str(&format!(
            "  {}: {} vs {} → {} replicas (ratio {})\n",
            p.metric,
            engine::fmt_num(p.value),
            p.target,
            p.replicas,
            engine::fmt_num(p.ratio)
        ));
    }
    if !e.forecasts.is_empty() {
        out.push_str("forecasts:\n");
        for f in &e.forecasts {
            match (&f.fallback, f.expected, f.upper) {
                (Some(why), _, _) => out.push_str(&format!(
                    "  {}: now {}; {why}\n",
                    f.metric,
                    engine::fmt_num(f.current)
                )),
                (None, Some(exp), Some(up)) => out.push_str(&format!(
                    "  {}: now {}, over the next {}s expected {}, p{} {}{}\n",
                    f.metric,
                    engine::fmt_num(f.current),
                    f.horizon_s,
                    engine::fmt_num(exp),
                    (f.quantile * 100.0).round(),
                    engine::fmt_num(up),
                    f.season_s
                        .map(|s| format!(
                            " (season {})",
                            humantime::format_duration(std::time::Duration::from_secs_f64(s))
                        ))
                        .unwrap_or_default()
                )),
                _ => {}
            }
        }
    }
    out.push_str("governor:\n");
    if e.steps.is_empty() {
        out.push_str("  no rule changed the proposal\n");
    }
    for s in &e.steps {
        out.push_str(&format!(
            "  {}: {} → {}: {}\n",
            s.rule.as_str(),
            s.from,
            s.to,
            s.detail
        ));
    }
    out.push_str(&format!("decision: {}\n", r.summary));
}
