//! ScalingPolicy files: parsing, validation with `file:line:column` errors, and loading folders.
//!
//! [`parse`] turns the text of one file into a validated [`Policy`] or a [`PolicyError`] listing
//! every problem found, each with its line, column and field path. It never panics, whatever the
//! input.

pub mod model;
pub mod quantity;

use crate::engine::{
    Algorithm, Governor, Horizontal, MetricTarget, Seconds, Target,
    governor::OnMissing,
    governor::ScalingRules,
    governor::Select,
    governor::StepLimit,
    pid::PidParams,
    predictive::{PredictiveParams, Sizing},
};
use crate::metrics::prometheus::PrometheusConfig;
use model::{Dur, OnMetricError, PolicyFile, PolicyKind, Preset, SelectModel};
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::engine::vertical::{MIB, Resource, ResourceParams, VerticalParams};
use crate::engine::vertical_plan::PlanSettings;
pub use model::{
    LimitsMode, Mode, PodsMetricKind, ResizeFallback, ResourceName, TargetRef, UpdateMode,
};

/// The only apiVersion understood.
pub const API_VERSION: &str = "setpoint.dev/v1alpha1";
/// The only kind understood.
pub const KIND: &str = "ScalingPolicy";
/// Largest replica count accepted for `max`.
pub const MAX_REPLICAS: u32 = 100_000;

/// Where a metric's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricQuery {
    /// A PromQL expression, evaluated by the policy's Prometheus (or the default one).
    Prometheus {
        /// The expression.
        query: String,
        /// Add up the series of a vector result instead of refusing several.
        sum: bool,
    },
    /// CPU or memory usage of the target's pods from the metrics.k8s.io API.
    Resource {
        /// Which resource.
        resource: ResourceName,
        /// Only this container (None: all of each pod's containers).
        container: Option<String>,
    },
    /// A metric scraped from each pod's metrics endpoint.
    Pods(PodsQuery),
}

/// A metric scraped from the `/metrics` endpoint of every pod of the target.
#[derive(Debug, Clone, PartialEq)]
pub struct PodsQuery {
    /// Metric name in the exposition text.
    pub metric: String,
    /// Port.
    pub port: u16,
    /// Path, starting with `/`.
    pub path: String,
    /// Only series with these label values.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Counter or gauge (None: from the exposition).
    pub kind: Option<PodsMetricKind>,
}

impl MetricQuery {
    /// The PromQL expression, for a Prometheus metric.
    pub fn promql(&self) -> Option<&str> {
        match self {
            MetricQuery::Prometheus { query, .. } => Some(query),
            _ => None,
        }
    }

    /// Whether the metric is read from the target's pods (metrics.k8s.io or scraping).
    pub fn reads_pods(&self) -> bool {
        !matches!(self, MetricQuery::Prometheus { .. })
    }
}

impl fmt::Display for MetricQuery {
    /// A short description of the source, for messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricQuery::Prometheus { query, sum } => {
                let one_line = query.split_whitespace().collect::<Vec<_>>().join(" ");
                write!(f, "prometheus `{one_line}`")?;
                if *sum {
                    f.write_str(" (summed)")?;
                }
                Ok(())
            }
            MetricQuery::Resource {
                resource,
                container,
            } => {
                write!(f, "metrics.k8s.io {resource}")?;
                if let Some(c) = container {
                    write!(f, " of container {c}")?;
                }
                Ok(())
            }
            MetricQuery::Pods(q) => write!(f, "pods' {} on :{}{}", q.metric, q.port, q.path),
        }
    }
}

/// A validated policy, ready for the engine and the drivers.
#[derive(Debug, Clone)]
pub struct Policy {
    /// metadata.name.
    pub name: String,
    /// metadata.namespace: the target's namespace, when the file says.
    pub namespace: Option<String>,
    /// The file it came from.
    pub source: PathBuf,
    /// The scale target.
    pub target: TargetRef,
    /// apply or recommend.
    pub mode: Mode,
    /// Seconds between ticks.
    pub interval: Seconds,
    /// `spec.prometheus`: the server this policy's Prometheus metrics query (None: the default
    /// given to the daemon or the command).
    pub prometheus: Option<PrometheusConfig>,
    /// One query per metric, in the order of `horizontal.metrics`.
    pub queries: Vec<MetricQuery>,
    /// The horizontal part (None for a vertical-only policy).
    pub horizontal: Option<Horizontal>,
    /// The vertical part.
    pub vertical: Option<VerticalSpec>,
}

impl Policy {
    /// The horizontal part's metrics (none for a vertical-only policy), in the order of `queries`.
    pub fn metrics(&self) -> &[MetricTarget] {
        self.horizontal.as_ref().map_or(&[], |h| &h.metrics)
    }
}

/// A validated vertical part.
#[derive(Debug, Clone, PartialEq)]
pub struct VerticalSpec {
    /// What the recommender and the planner need: containers, resources, the recommender's
    /// settings, the update mode, limits, and the in-place resize rules.
    pub plan: PlanSettings,
    /// `spec.vertical.usage`: the PromQL of each container's usage (None: the defaults of
    /// [`crate::metrics::usage`]).
    pub usage: UsageQueries,
}

/// `spec.vertical.usage`: PromQL templates with the placeholders `$namespace`, `$pod` and
/// `$container`. None: the default query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageQueries {
    /// CPU usage in cores.
    pub cpu: Option<String>,
    /// Memory working set in bytes.
    pub memory: Option<String>,
}

/// The placeholders a usage query may hold.
pub const USAGE_PLACEHOLDERS: [&str; 3] = ["namespace", "pod", "container"];

/// The placeholders (`$name`) in a usage query, in order.
pub fn placeholders(query: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = query;
    while let Some(i) = rest.find('$') {
        let after = &rest[i + 1..];
        let n = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        out.push(&after[..n]);
        rest = &after[n..];
    }
    out
}

/// One problem in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line (0 when unknown).
    pub line: u32,
    /// 1-based column (0 when unknown).
    pub column: u32,
    /// Field path such as `spec.horizontal.replicas.min` (empty at the top).
    pub field: String,
    /// What is wrong and what was expected.
    pub message: String,
}

/// Errors from reading policies.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file was read but is not a valid policy.
    #[error("{}", render(path, problems))]
    Invalid {
        /// The path.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<Problem>,
    },
    /// Two files define the same policy name.
    #[error("{}: policy name \"{name}\" is already used by {}", path.display(), first.display())]
    Duplicate {
        /// The second file.
        path: PathBuf,
        /// The name.
        name: String,
        /// The first file.
        first: PathBuf,
    },
}

fn render(path: &Path, problems: &[Problem]) -> String {
    let lines: Vec<String> = problems
        .iter()
        .map(|p| {
            let field = if p.field.is_empty() {
                String::new()
            } else {
                format!("{}: ", p.field)
            };
            format!(
                "{}:{}:{}: {field}{}",
                path.display(),
                p.line,
                p.column,
                p.message
            )
        })
        .collect();
    lines.join("\n")
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.line, self.column, self.field, self.message
        )
    }
}

/// Reads and validates one policy file.
pub fn load(path: &Path) -> Result<Policy, PolicyError> {
    let bytes = std::fs::read(path).map_err(|source| PolicyError::Io {
        path: path.to_owned(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    parse(&text, path)
}

/// Policy files in a folder (`*.yaml`, `*.yml`, sorted), or the path itself when it is a file.
pub fn files(path: &Path) -> Result<Vec<PathBuf>, PolicyError> {
    let io = |source| PolicyError::Io {
        path: path.to_owned(),
        source,
    };
    if !path.is_dir() {
        std::fs::metadata(path).map_err(io)?;
        return Ok(vec![path.to_owned()]);
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io)? {
        let p = entry.map_err(io)?.path();
        let yaml = matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
        let hidden = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if yaml && !hidden && p.is_file() {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// Loads every policy under `paths` (files or folders). Returns the good policies and one error
/// per bad file; a bad file never hides the good ones.
pub fn load_all(paths: &[PathBuf]) -> (Vec<Policy>, Vec<PolicyError>) {
    let (mut good, mut bad) = (Vec::<Policy>::new(), Vec::new());
    for p in paths {
        match files(p) {
            Err(e) => bad.push(e),
            Ok(fs) => {
                for f in fs {
                    match load(&f) {
                        Ok(pol) => match good.iter().find(|g| g.name == pol.name) {
                            Some(first) => bad.push(PolicyError::Duplicate {
                                path: f,
                                name: pol.name,
                                first: first.source.clone(),
                            }),
                            None => good.push(pol),
                        },
                        Err(e) => bad.push(e),
                    }
                }
            }
        }
    }
    (good, bad)
}

/// Parses and validates the text of one policy file; `path` is used in errors.
pub fn parse(text: &str, path: &Path) -> Result<Policy, PolicyError> {
    let invalid = |problems| PolicyError::Invalid {
        path: path.to_owned(),
        problems,
    };
    let mut track = serde_path_to_error::Track::new();
    let parsed = serde_saphyr::with_deserializer_from_str(text, |de| {
        PolicyFile::deserialize(serde_path_to_error::Deserializer::new(de, &mut track))
    });
    let file = match parsed {
        Ok(f) => f,
        Err(e) => {
            let (line, column) = e
                .location()
                .map(|l| (l.line() as u32, l.column() as u32))
                .unwrap_or((0, 0));
            let field = field_path(&track.path().to_string());
            return Err(invalid(vec![Problem {
                line,
                column,
                field,
                message: plain_message(&e),
            }]));
        }
    };
    let mut v = Validator::default();
    let policy = v.policy(file, path);
    match policy {
        Some(p) if v.problems.is_empty() => Ok(p),
        _ => Err(invalid(v.problems)),
    }
}

/// serde_path_to_error writes `?` for the root and `[0]` for indexes; keep dots and indexes.
fn field_path(p: &str) -> String {
    let p = p.trim_start_matches('?').trim_start_matches('.');
    // Spanned values show up as an extra `value` segment; it is not a field of the file.
    p.replace(".value.", ".")
        .trim_end_matches(".value")
        .replace(".value[", "[")
        .to_string()
}

/// The parser's message without its "error: line N column M:" prefix, plus a hint where the
/// parser's own words are terse.
fn plain_message(e: &serde_saphyr::Error) -> String {
    let full = e.to_string();
    let first = full.lines().next().unwrap_or("").trim();
    let msg = first.strip_prefix("error:").unwrap_or(first).trim_start();
    let msg = match msg.strip_prefix("line ").and_then(|r| r.split_once(": ")) {
        Some((_, rest)) => rest,
        None => msg,
    };
    match msg.strip_prefix("invalid ") {
        Some(t @ ("u32" | "u64" | "i64")) => format!("invalid {t}: expected a whole number"),
        Some(t @ ("f64" | "f32")) => format!("invalid {t}: expected a number"),
        _ => msg.to_string(),
    }
}

#[derive(Default)]
struct Validator {
    problems: Vec<Problem>,
}

impl Validator {
    fn err<T>(&mut self, at: &Spanned<T>, field: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            line: at.referenced.line() as u32,
            column: at.referenced.column() as u32,
            field: field.into(),
            message: message.into(),
        });
    }

    fn policy(&mut self, f: PolicyFile, path: &Path) -> Option<Policy> {
        if f.api_version.value != API_VERSION {
            self.err(
                &f.api_version,
                "apiVersion",
                format!(
                    "expected \"{API_VERSION}\", found \"{}\"",
                    f.api_version.value
                ),
            );
        }
        if f.kind.value != KIND {
            self.err(
                &f.kind,
                "kind",
                format!("expected \"{KIND}\", found \"{}\"", f.kind.value),
            );
        }
        let name = &f.metadata.name;
        if !is_dns_label(&name.value) {
            self.err(
                name,
                "metadata.name",
                format!(
                    "\"{}\" is not a valid name: expected 1-63 lowercase letters, digits or '-', \
                     starting and ending with a letter or digit",
                    name.value
                ),
            );
        }
        let spec = &f.spec.value;
        let t = &spec.target;
        if t.value.kind.trim().is_empty() || t.value.name.trim().is_empty() {
            self.err(
                t,
                "spec.target",
                "expected a kind and a name, such as {kind: Deployment, name: web}",
            );
        }
        let interval = match &spec.interval {
            None => 15.0,
            Some(i) => self.duration(i, "spec.interval", 1.0, 3600.0),
        };
        if spec.horizontal.is_none() && spec.vertical.is_none() {
            self.err(
                &f.spec,
                "spec",
                "nothing to scale: expected `horizontal`, `vertical` or both",
            );
            return None;
        }
        let (horizontal, queries) = match &spec.horizontal {
            Some(h) => {
                let (h, q) = self.horizontal(h, interval)?;
                (Some(h), q)
            }
            None => (None, Vec::new()),
        };
        let prometheus = spec.prometheus.as_ref().map(|p| {
            if let Err(why) = p.value.check() {
                self.err(p, "spec.prometheus", why);
            }
            p.value.clone()
        });
        let vertical = spec.vertical.as_ref().map(|v| self.vertical(v));
        if let (Some(h), Some(v), Some(hm)) = (&horizontal, &vertical, &spec.horizontal) {
            self.feedback_loop(h, v, &queries, hm);
        }
        Some(Policy {
            name: name.value.clone(),
            namespace: f.metadata.namespace.clone(),
            source: path.to_owned(),
            target: t.value.clone(),
            mode: spec.mode,
            interval,
            prometheus,
            queries,
            horizontal,
            vertical,
        })
    }

    /// Rejects a policy whose horizontal side holds CPU utilization relative to the request
    /// while its vertical side changes that request: each request change would move the
    /// utilization and so the replica count (a feedback loop between the two).
    fn feedback_loop(
        &mut self,
        h: &Horizontal,
        v: &VerticalSpec,
        queries: &[MetricQuery],
        hm: &model::Horizontal,
    ) {
        if !v.plan.resources.contains(&Resource::Cpu) {
            return;
        }
        for (i, (m, q)) in h.metrics.iter().zip(queries).enumerate() {
            // A metrics.k8s.io CPU utilization is relative to the request by definition; a PromQL
            // utilization is when it divides by the CPU requests.
            let relative_to_request = matches!(m.target, Target::Utilization(_))
                && match q {
                    MetricQuery::Resource { resource, .. } => *resource == ResourceName::Cpu,
                    MetricQuery::Prometheus { query, .. } => {
                        let text = query.to_ascii_lowercase();
                        text.contains("cpu") && text.contains("resource_requests")
                    }
                    MetricQuery::Pods(_) => false,
                };
            if relative_to_request {
                self.err(
                    &hm.metrics.value[i],
                    &format!("spec.horizontal.metrics[{i}]"),
                    "scales on CPU utilization relative to the request, which spec.vertical changes: \
                     every request change would move the utilization and the replica count (a feedback \
                     loop). Scale on absolute usage instead, e.g. `prometheus: sum(rate(container_cpu_usage_seconds_total{...}[1m]))` \
                     with `targetPerReplica: 0.5` (cores per replica), or remove cpu from spec.vertical.resources",
                );
            }
        }
    }

    fn vertical(&mut self, v: &Spanned<model::Vertical>) -> VerticalSpec {
        let f = "spec.vertical";
        let m = &v.value;
        if m.containers.value.is_empty() || m.containers.value.iter().any(|c| c.trim().is_empty()) {
            self.err(
                &m.containers,
                &format!("{f}.containers"),
                "expected one or more container names",
            );
        }
        let resources: Vec<Resource> = match &m.resources {
            None => vec![Resource::Cpu, Resource::Memory],
            Some(r) => {
                if r.value.is_empty() {
                    self.err(r, &format!("{f}.resources"), "expected cpu, memory or both");
                }
                let mut out = Vec::new();
                for n in &r.value {
                    let res = match n {
                        model::ResourceName::Cpu => Resource::Cpu,
                        model::ResourceName::Memory => Resource::Memory,
                    };
                    if !out.contains(&res) {
                        out.push(res);
                    }
                }
                out
            }
        };
        let unit =
            |v: &mut Self, x: &Option<Spanned<f64>>, name: &str, default: f64, lo: f64, hi: f64| {
                match x {
                    None => default,
                    Some(s) => {
                        if !(lo..=hi).contains(&s.value) {
                            v.err(
                                s,
                                &format!("{f}.{name}"),
                                format!("{} is out of range: expected {lo} to {hi}", s.value),
                            );
                        }
                        s.value
                    }
                }
            };
        let cpu_p = unit(self, &m.cpu_percentile, "cpuPercentile", 0.9, 0.01, 1.0);
        let mem_p = unit(
            self,
            &m.memory_percentile,
            "memoryPercentile",
            0.9,
            0.01,
            1.0,
        );
        let margin = unit(self, &m.margin, "margin", 0.15, 0.0, 1.0);
        let (lower, upper) = match &m.bounds {
            None => (0.5, 0.95),
            Some(b) => {
                let (l, u) = (b.value.lower, b.value.upper);
                if !(0.0 < l && l <= cpu_p.min(mem_p) && cpu_p.max(mem_p) <= u && u <= 1.0) {
                    self.err(
                        b,
                        &format!("{f}.bounds"),
                        format!(
                            "expected 0 < lower ({l}) <= the target percentiles <= upper ({u}) <= 1"
                        ),
                    );
                }
                (l, u)
            }
        };
        let dur = |v: &mut Self, d: &Option<Spanned<Dur>>, name: &str, default: f64| {
            d.as_ref().map_or(default, |d| {
                v.duration(d, &format!("{f}.{name}"), 60.0, 30.0 * 86400.0)
            })
        };
        let half_life = dur(self, &m.half_life, "halfLife", 86400.0);
        let window = dur(self, &m.memory_peak_window, "memoryPeakWindow", 86400.0);
        let q = |x: &Option<Spanned<model::Quantities>>, cpu: bool| {
            x.as_ref()
                .and_then(|q| {
                    if cpu {
                        q.value.cpu.clone()
                    } else {
                        q.value.memory.clone()
                    }
                })
                .map(|q| q.value())
        };
        // The VPA's minimums per container: 25 millicores and 250 MiB.
        let (min_cpu, min_mem) = (
            q(&m.min, true).unwrap_or(0.025),
            q(&m.min, false).unwrap_or(250.0 * MIB),
        );
        let (max_cpu, max_mem) = (
            q(&m.max, true).unwrap_or(1000.0),
            q(&m.max, false).unwrap_or(1024.0 * 1024.0 * MIB),
        );
        if let Some(mx) = &m.max {
            for (name, lo, hi) in [("cpu", min_cpu, max_cpu), ("memory", min_mem, max_mem)] {
                if lo > hi {
                    self.err(
                        mx,
                        &format!("{f}.max.{name}"),
                        format!(
                            "max ({}) is below min ({})",
                            quantity::format(name == "cpu", hi),
                            quantity::format(name == "cpu", lo)
                        ),
                    );
                }
            }
        }
        let (stale_difference, stale_after) = match &m.min_change {
            None => (0.1, 12.0 * 3600.0),
            Some(c) => {
                if !(0.0..=10.0).contains(&c.value.difference) {
                    self.err(
                        c,
                        &format!("{f}.minChange.difference"),
                        "expected 0 to 10 (a share of the target)",
                    );
                }
                (c.value.difference, c.value.after.0.as_secs_f64())
            }
        };
        let (deferred_timeout, fallback, allow_restart) = match &m.resize {
            None => (300.0, ResizeFallback::Report, true),
            Some(r) => (
                r.value
                    .deferred_timeout
                    .map_or(300.0, |d| d.0.as_secs_f64()),
                r.value.fallback,
                r.value.allow_restart.unwrap_or(true),
            ),
        };
        let mut usage = UsageQueries::default();
        if let Some(u) = &m.usage {
            for (name, q, slot) in [
                ("cpu", &u.value.cpu, &mut usage.cpu),
                ("memory", &u.value.memory, &mut usage.memory),
            ] {
                let Some(q) = q else { continue };
                *slot = Some(q.value.clone());
                let field = format!("{f}.usage.{name}");
                if q.value.trim().is_empty() {
                    self.err(q, &field, "empty query: expected a PromQL expression");
                    continue;
                }
                let found = placeholders(&q.value);
                if let Some(bad) = found.iter().find(|p| !USAGE_PLACEHOLDERS.contains(p)) {
                    self.err(
                        q,
                        &field,
                        format!(
                            "unknown placeholder ${bad}: expected $namespace, $pod or $container"
                        ),
                    );
                }
                for needed in ["pod", "container"] {
                    if !found.contains(&needed) {
                        self.err(
                            q,
                            &field,
                            format!(
                                "the query has no ${needed}: it is evaluated once per pod and \
                                 container, e.g. {{namespace=\"$namespace\", pod=\"$pod\", \
                                 container=\"$container\"}}"
                            ),
                        );
                    }
                }
            }
        }
        let rp = |target_percentile, min, max| ResourceParams {
            target_percentile,
            lower_percentile: lower,
            upper_percentile: upper,
            margin,
            min,
            max,
        };
        VerticalSpec {
            plan: PlanSettings {
                containers: m.containers.value.clone(),
                resources,
                params: VerticalParams {
                    half_life,
                    memory_peak_window: window,
                    cpu: rp(cpu_p, min_cpu, max_cpu),
                    memory: rp(mem_p, min_mem, max_mem),
                    stale_difference,
                    stale_after,
                },
                update: m.update,
                limits: m.limits,
                deferred_timeout,
                fallback,
                allow_restart,
            },
            usage,
        }
    }

    /// A duration in seconds within [lo, hi] (None bound checks when lo = 0).
    fn duration(&mut self, d: &Spanned<Dur>, field: &str, lo: f64, hi: f64) -> Seconds {
        let s = d.value.0.as_secs_f64();
        if s < lo || s > hi {
            self.err(
                d,
                field,
                format!(
                    "{} is out of range: expected between {} and {}",
                    humantime::format_duration(d.value.0),
                    humantime::format_duration(std::time::Duration::from_secs_f64(lo)),
                    humantime::format_duration(std::time::Duration::from_secs_f64(hi)),
                ),
            );
        }
        s
    }

    fn algorithm(&mut self, p: Option<&PolicyKind>, f: &str, interval: Seconds) -> Algorithm {
        match p {
            None | Some(PolicyKind::Threshold(_)) => Algorithm::Threshold,
            Some(PolicyKind::Pid(m)) => {
                let pf = format!("{f}.policy.pid");
                let g = &m.value;
                for (name, v) in [("kp", g.kp), ("ki", g.ki), ("kd", g.kd)] {
                    if !(v.is_finite() && (0.0..=1000.0).contains(&v)) {
                        self.err(
                            m,
                            &format!("{pf}.{name}"),
                            format!("{v} is out of range: expected 0 to 1000"),
                        );
                    }
                }
                if g.ki == 0.0 {
                    self.err(m, &format!("{pf}.ki"), "must be above 0: without an integral term the metric never settles on its target");
                }
                let derivative_filter = match &g.derivative_filter {
                    None => 30.0,
                    Some(d) => self.duration(d, &format!("{pf}.derivativeFilter"), 0.0, 3600.0),
                };
                Algorithm::Pid(PidParams {
                    kp: g.kp,
                    ki: g.ki,
                    kd: g.kd,
                    derivative_filter,
                    interval,
                })
            }
            Some(PolicyKind::Predictive(m)) => {
                let pf = format!("{f}.policy.predictive");
                let p = &m.value;
                let dur = |v: &mut Self,
                           d: &Option<Spanned<Dur>>,
                           name: &str,
                           default: f64,
                           lo: f64,
                           hi: f64| {
                    d.as_ref()
                        .map_or(default, |d| v.duration(d, &format!("{pf}.{name}"), lo, hi))
                };
                let history = dur(
                    self,
                    &p.history,
                    "history",
                    7.0 * 86400.0,
                    3600.0,
                    35.0 * 86400.0,
                );
                let startup = dur(self, &p.startup, "startup", 60.0, 0.0, 3600.0);
                let margin = dur(self, &p.margin, "margin", 30.0, 0.0, 3600.0);
                let season = match &p.season {
                    None
                    | Some(Spanned {
                        value: model::Season::Auto,
                        ..
                    }) => None,
                    Some(
                        s @ Spanned {
                            value: model::Season::Fixed(d),
                            ..
                        },
                    ) => {
                        let secs = d.as_secs_f64();
                        if secs < 900.0 || secs * 3.0 > history {
                            self.err(
                                s,
                                &format!("{pf}.season"),
                                format!(
                                    "{} is out of range: expected from 15m to a third of the history ({})",
                                    humantime::format_duration(*d),
                                    humantime::format_duration(std::time::Duration::from_secs_f64(history / 3.0))
                                ),
                            );
                        }
                        Some(secs)
                    }
                };
                let quantile = match &p.quantile {
                    None => 0.9,
                    Some(q) => {
                        if !(0.5..1.0).contains(&q.value) {
                            self.err(
                                q,
                                &format!("{pf}.quantile"),
                                format!(
                                    "{} is out of range: expected 0.5 <= quantile < 1",
                                    q.value
                                ),
                            );
                        }
                        q.value
                    }
                };
                let target_scale = match &p.target_scale {
                    None => 1.0,
                    Some(t) => {
                        if !(0.5..=2.0).contains(&t.value) {
                            self.err(
                                t,
                                &format!("{pf}.targetScale"),
                                format!("{} is out of range: expected 0.5 to 2", t.value),
                            );
                        }
                        t.value
                    }
                };
                let sizing = self.sizing(p, &pf);
                Algorithm::Predictive(PredictiveParams {
                    history,
                    season,
                    quantile,
                    horizon: startup + interval + margin,
                    target_scale,
                    sizing,
                })
            }
        }
    }

    /// Quantile sizing's settings, checked (None without `capacityPerReplica`).
    fn sizing(&mut self, p: &model::PredictiveModel, pf: &str) -> Option<Sizing> {
        let c = p.capacity_per_replica.as_ref()?;
        if !(c.value.is_finite() && c.value > 0.0) {
            self.err(
                c,
                &format!("{pf}.capacityPerReplica"),
                format!("{} is out of range: expected a positive number", c.value),
            );
        }
        let smoothing = p.smoothing.as_ref().map_or(1.0, |s| {
            if !(s.value > 0.0 && s.value <= 1.0) {
                self.err(
                    s,
                    &format!("{pf}.smoothing"),
                    format!("{} is out of range: expected 0 < smoothing <= 1", s.value),
                );
            }
            s.value
        });
        Some(Sizing {
            capacity: c.value,
            smoothing,
        })
    }

    /// Quantile sizing reads every metric in one unit: all totals, or all utilizations with a
    /// capacity of 1 (a replica at saturation).
    fn sizing_metrics(
        &mut self,
        h: &model::Horizontal,
        algorithm: &Algorithm,
        metrics: &[MetricTarget],
    ) {
        let Algorithm::Predictive(PredictiveParams {
            sizing: Some(s), ..
        }) = algorithm
        else {
            return;
        };
        let f = "spec.horizontal.policy.predictive.capacityPerReplica";
        let util = metrics
            .iter()
            .filter(|m| matches!(m.target, Target::Utilization(_)))
            .count();
        if util > 0 && util < metrics.len() {
            self.err(
                &h.metrics,
                f,
                "quantile sizing needs metrics of one kind: all targetPerReplica or all utilization",
            );
        } else if util > 0 && s.capacity != 1.0 {
            self.err(
                &h.metrics,
                f,
                format!(
                    "{} with utilization metrics: expected 1 (a replica at saturation is a utilization of 1)",
                    s.capacity
                ),
            );
        }
    }

    fn horizontal(
        &mut self,
        h: &model::Horizontal,
        interval: Seconds,
    ) -> Option<(Horizontal, Vec<MetricQuery>)> {
        let f = "spec.horizontal";
        let algorithm = self.algorithm(h.policy.as_ref(), f, interval);
        let r = &h.replicas;
        if r.value.min < 1 {
            self.err(r, &format!("{f}.replicas.min"), "must be at least 1");
        }
        if r.value.max > MAX_REPLICAS {
            self.err(
                r,
                &format!("{f}.replicas.max"),
                format!("must be at most {MAX_REPLICAS}"),
            );
        }
        if r.value.min > r.value.max {
            self.err(
                r,
                &format!("{f}.replicas"),
                format!(
                    "min ({}) is greater than max ({})",
                    r.value.min, r.value.max
                ),
            );
        }
        if h.metrics.value.is_empty() {
            self.err(
                &h.metrics,
                &format!("{f}.metrics"),
                "expected at least one metric",
            );
        }
        let mut metrics = Vec::new();
        let mut queries = Vec::new();
        for (i, m) in h.metrics.value.iter().enumerate() {
            let mf = format!("{f}.metrics[{i}]");
            let name = m
                .value
                .name
                .clone()
                .unwrap_or_else(|| format!("metric-{}", i + 1));
            if metrics.iter().any(|x: &MetricTarget| x.name == name) {
                self.err(
                    m,
                    &format!("{mf}.name"),
                    format!("duplicate metric name \"{name}\""),
                );
            }
            let query = self.metric_source(&m.value, m, &mf);
            let target = match (m.value.target_per_replica, m.value.utilization) {
                (Some(t), None) => Target::PerReplica(t),
                (None, Some(u)) => Target::Utilization(u),
                (Some(_), Some(_)) => {
                    self.err(
                        m,
                        &mf,
                        "give either targetPerReplica or utilization, not both",
                    );
                    continue;
                }
                (None, None) => {
                    self.err(
                        m,
                        &mf,
                        "missing target: expected targetPerReplica or utilization",
                    );
                    continue;
                }
            };
            let (Target::PerReplica(v) | Target::Utilization(v)) = target;
            if !(v.is_finite() && v > 0.0) {
                self.err(
                    m,
                    &mf,
                    format!("target must be a positive number, found {v}"),
                );
            }
            metrics.push(MetricTarget { name, target });
            if let Some(q) = query {
                queries.push(q);
            }
        }
        self.sizing_metrics(h, &algorithm, &metrics);
        let preset = h.preset;
        let (tol_up, tol_down) = match &h.tolerance {
            None if preset == Preset::Hpa => (0.1, 0.1),
            None => (0.0, 0.0),
            Some(t) => {
                for v in [t.value.up, t.value.down] {
                    if !(0.0..1.0).contains(&v) {
                        self.err(
                            t,
                            &format!("{f}.tolerance"),
                            format!("{v} is out of range: expected 0 <= tolerance < 1"),
                        );
                    }
                }
                (t.value.up, t.value.down)
            }
        };
        let scale_up = self.rules(h.scale_up.as_ref(), &format!("{f}.scaleUp"), preset, true);
        let scale_down = self.rules(
            h.scale_down.as_ref(),
            &format!("{f}.scaleDown"),
            preset,
            false,
        );
        let on_missing = match &h.on_metric_error {
            None => OnMissing::Hold,
            Some(s) => match s.value {
                OnMetricError::Hold => OnMissing::Hold,
                OnMetricError::Fallback { replicas, after } => {
                    if replicas < r.value.min || replicas > r.value.max {
                        self.err(
                            s,
                            &format!("{f}.onMetricError.fallback.replicas"),
                            format!(
                                "{replicas} is outside replicas [{}, {}]",
                                r.value.min, r.value.max
                            ),
                        );
                    }
                    if after < 1 {
                        self.err(
                            s,
                            &format!("{f}.onMetricError.fallback.after"),
                            "must be at least 1",
                        );
                    }
                    OnMissing::Fallback { replicas, after }
                }
            },
        };
        Some((
            Horizontal {
                metrics,
                algorithm,
                governor: Governor {
                    min: r.value.min,
                    max: r.value.max,
                    tolerance_up: tol_up,
                    tolerance_down: tol_down,
                    scale_up,
                    scale_down,
                    on_missing,
                },
            },
            queries,
        ))
    }

    /// The source of one metric: exactly one of `prometheus`, `resource` or `pods`.
    fn metric_source(
        &mut self,
        m: &model::Metric,
        at: &Spanned<model::Metric>,
        mf: &str,
    ) -> Option<MetricQuery> {
        let given: Vec<&str> = [
            m.prometheus.is_some().then_some("prometheus"),
            m.resource.is_some().then_some("resource"),
            m.pods.is_some().then_some("pods"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if given.len() > 1 {
            self.err(
                at,
                mf,
                format!(
                    "give one source, not {}: prometheus, resource or pods",
                    given.join(" and ")
                ),
            );
            return None;
        }
        if let Some(s) = &m.sum
            && m.prometheus.is_none()
        {
            self.err(
                s,
                &format!("{mf}.sum"),
                "sum goes with a prometheus query only",
            );
        }
        if let Some(q) = &m.prometheus {
            if q.value.trim().is_empty() {
                self.err(
                    q,
                    &format!("{mf}.prometheus"),
                    "empty query: expected a PromQL expression",
                );
            }
            return Some(MetricQuery::Prometheus {
                query: q.value.clone(),
                sum: m.sum.as_ref().is_some_and(|s| s.value),
            });
        }
        if let Some(r) = &m.resource {
            if let Some(c) = &r.value.container
                && c.trim().is_empty()
            {
                self.err(
                    r,
                    &format!("{mf}.resource.container"),
                    "empty container name",
                );
            }
            return Some(MetricQuery::Resource {
                resource: r.value.name,
                container: r.value.container.clone(),
            });
        }
        if let Some(p) = &m.pods {
            let pf = format!("{mf}.pods");
            let v = &p.value;
            if !is_metric_name(&v.metric) {
                self.err(
                    p,
                    &format!("{pf}.metric"),
                    format!(
                        "\"{}\" is not a metric name: expected letters, digits, '_' or ':', \
                         not starting with a digit",
                        v.metric
                    ),
                );
            }
            if v.port == 0 {
                self.err(p, &format!("{pf}.port"), "expected a port from 1 to 65535");
            }
            let path = v.path.clone().unwrap_or_else(|| "/metrics".into());
            if !path.starts_with('/') {
                self.err(
                    p,
                    &format!("{pf}.path"),
                    format!("\"{path}\" is not an absolute path: expected it to start with '/'"),
                );
            }
            return Some(MetricQuery::Pods(PodsQuery {
                metric: v.metric.clone(),
                port: v.port,
                path,
                labels: v.labels.clone(),
                kind: v.kind,
            }));
        }
        self.err(
            at,
            mf,
            "missing source: expected prometheus, resource or pods",
        );
        None
    }

    fn rules(
        &mut self,
        r: Option<&model::Rules>,
        f: &str,
        preset: Preset,
        up: bool,
    ) -> ScalingRules {
        let mut out = preset_rules(preset, up);
        let Some(r) = r else { return out };
        if let Some(s) = &r.stabilization {
            out.stabilization = self.duration(s, &format!("{f}.stabilization"), 0.0, 3600.0);
        }
        if let Some(c) = &r.cooldown {
            out.cooldown = self.duration(c, &format!("{f}.cooldown"), 0.0, 3600.0);
        }
        if let Some(s) = r.select {
            out.select = match s {
                SelectModel::Max => Select::Max,
                SelectModel::Min => Select::Min,
                SelectModel::Disabled => Select::Disabled,
            };
        }
        if let Some(ls) = &r.limits {
            out.limits.clear();
            for (i, l) in ls.iter().enumerate() {
                let lf = format!("{f}.limits[{i}]");
                let period = l.value.per.0.as_secs_f64();
                if !(1.0..=1800.0).contains(&period) {
                    self.err(
                        l,
                        &format!("{lf}.per"),
                        "expected a period between 1s and 30m",
                    );
                }
                match (l.value.pods, l.value.percent) {
                    (Some(p), None) if p >= 1 => {
                        out.limits.push(StepLimit::Pods { value: p, period })
                    }
                    (None, Some(p)) if p.is_finite() && p > 0.0 => {
                        out.limits.push(StepLimit::Percent { value: p, period })
                    }
                    (Some(_), Some(_)) => self.err(l, &lf, "give either pods or percent, not both"),
                    (None, None) => self.err(l, &lf, "missing limit: expected pods or percent"),
                    _ => self.err(l, &lf, "the limit must be a positive number"),
                }
            }
        }
        out
    }
}

/// The rules a preset gives a direction.
pub fn preset_rules(preset: Preset, up: bool) -> ScalingRules {
    match (preset, up) {
        (Preset::Hpa, true) => ScalingRules::hpa_up(),
        (Preset::Hpa, false) => ScalingRules::hpa_down(),
        (Preset::None, _) => ScalingRules::unlimited(),
    }
}

/// A Prometheus metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}
