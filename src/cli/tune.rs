//! `setpoint tune`: search a policy's quantile sizing on a history for an SLO ([`sim::tune`]),
//! and write the policy found.

use super::simulate::load_policy;
use super::{Failure, capacity, progress_bar, unix_now};
use crate::backtest;
use crate::policy;
use crate::prometheus::{PrometheusClient, PrometheusConfig};
use crate::sim::{self, ServiceModel, Trace};
use std::path::{Path, PathBuf};

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

/// `setpoint tune`: the search is [`sim::tune`]; this reads the history, shows progress, and
/// writes the policy after checking that it parses and reproduces the numbers reported.
pub async fn tune(a: &TuneArgs) -> Result<(), Failure> {
    use sim::tune as t;
    let policy = policy::load(&a.policy)?;
    let hpa = load_policy(None, sim::Workload::Diurnal)?;
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
