//! `setpoint recommend`: one read-only tick ([`crate::tick::run`] with
//! [`Hold::ReadOnly`]) of one policy, printed as text or JSON.

use super::{Failure, default_prometheus};
use crate::backtest;
use crate::cluster::{Cluster, ClusterConfig, KubeCluster};
use crate::engine::{self, Decision};
use crate::policy::{self};
use crate::tick::usage::{UsageSource, vertical_history};
use crate::tick::{self, Hold, MetricReading, TickState};
use std::path::PathBuf;

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

/// One read-only tick of the policy named by `a`: [`tick::run`] once, with [`Hold::ReadOnly`],
/// on the cluster when the counts, pod metrics or the vertical part need it.
pub async fn recommendation(a: &RecommendArgs) -> Result<RecommendReport, Failure> {
    let policy = policy::load(&a.policy)?;
    let default = default_prometheus(a.prometheus.as_deref())?;
    let prometheus = tick::policy_prometheus(&policy, default.as_ref())?;
    let mut state = TickState::look(&policy, prometheus.as_ref(), a.replicas, a.ready)?;
    let needs_pods = state.reads_pods() || policy.vertical.is_some();
    let cluster = if a.replicas.is_none() || needs_pods {
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
    let now = std::time::SystemTime::now();
    let mut outcome = tick::run(cluster.as_ref(), &policy, &mut state, Hold::ReadOnly, now).await;
    let mut notes = Vec::new();
    if let Some(scale) = &outcome.scale
        && scale.selector.is_none()
    {
        if needs_pods {
            return Err(Failure(format!(
                "the scale subresource of {} {} reports no pod selector: {} need one",
                policy.target.kind,
                policy.target.name,
                if state.reads_pods() {
                    "pod metrics"
                } else {
                    "vertical recommendations"
                }
            )));
        }
        notes.push(
            "the scale subresource reports no pod selector: ready replicas are its \
             status.replicas"
                .to_string(),
        );
    }
    if let Some(e) = outcome.error.take() {
        return Err(e.into());
    }
    if outcome.decision.is_some() {
        notes.append(&mut outcome.notes);
        notes.push(
            "one read-only tick without the daemon's memory: stabilization windows, cooldowns \
             and rate limits see no earlier recommendation or action"
                .to_string(),
        );
    }
    let vertical = match (&policy.vertical, outcome.vertical.take(), state.usage()) {
        (Some(spec), Some(v), Some((source, problems))) => {
            let history_s = match source {
                UsageSource::Prometheus(_) => {
                    let history = vertical_history(spec);
                    notes.push(format!(
                        "vertical: usage history read from Prometheus over the last {}, one \
                         point a minute, for the pods running now",
                        humantime::format_duration(std::time::Duration::from_secs_f64(history))
                    ));
                    Some(history)
                }
                UsageSource::MetricsApi => {
                    notes.push(
                        "vertical: one metrics.k8s.io sample per container: a thin history (the \
                         daemon builds it tick by tick; with --prometheus, recommend reads a \
                         range of history)"
                            .to_string(),
                    );
                    None
                }
            };
            notes.push(
                "vertical: one read-only look without the daemon's memory: a request inside its \
                 bounds is not yet \"off the target for long\" (minChange.after)"
                    .to_string(),
            );
            let recommenders = state.recommenders().expect("a vertical part");
            Some(VerticalReport {
                source: source.name(),
                samples: recommenders.samples(),
                oom_kills: recommenders.ooms(),
                history_s,
                plan: v.plan,
                problems: problems.to_vec(),
            })
        }
        _ => None,
    };
    let summary = match (&outcome.decision, &vertical) {
        (Some(d), _) => d.to_string(),
        (None, Some(v)) => v.plan.action.to_string(),
        (None, None) => String::new(),
    };
    Ok(RecommendReport {
        policy: policy.name.clone(),
        target: policy.target.clone(),
        namespace: cluster.as_ref().map(|c| c.namespace().to_string()),
        time: backtest::show_time(outcome.now),
        replicas_from: if a.replicas.is_some() {
            "flags"
        } else {
            "cluster"
        },
        metrics: outcome.readings,
        summary,
        decision: outcome.decision,
        vertical,
        notes,
    })
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
