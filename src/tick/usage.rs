//! Per-container usage for the vertical part: CPU (cores) and memory working set (bytes) of
//! each container of the target's pods, and their OOM kills, fed to one
//! [`ContainerRecommender`] per container name (the pods of a workload share one history per
//! container, as the VPA does).
//!
//! - **Prometheus** (when the policy or the command names one): one query per running pod,
//!   container and resource (a tick's read sends them concurrently, at most
//!   [`USAGE_QUERIES_IN_FLIGHT`] at once), from `spec.vertical.usage` or the defaults [`DEFAULT_CPU_QUERY`]
//!   and [`DEFAULT_MEMORY_QUERY`] (cAdvisor's metrics, as the kubelet exposes them). In a query,
//!   `$namespace`, `$pod` and `$container` are replaced by the values, escaped for a PromQL
//!   string (write them inside quotes). Each query must give one series. A daemon tick reads
//!   instant values ([`UsageReader::read`]); `recommend`, and the daemon when a policy's
//!   vertical part starts, read a range ([`UsageReader::recent_history`], the
//!   [`vertical_history`] before now, one point a [`HISTORY_STEP`]) so that the recommenders
//!   start from history rather than from one sample.
//! - **metrics.k8s.io** otherwise: one sample per pod and container per read, as metrics-server
//!   has it (a single read is a thin history).
//! - **OOM kills** come from the pods' status: a container whose `lastState.terminated.reason`
//!   is `OOMKilled`, at its `finishedAt`, counted once per pod, container and time. The memory it
//!   was killed at is taken as its memory limit (else its request); the recommender bumps its
//!   memory recommendation from there.
//!
//! A failed or empty reading is no sample (never zero) and is said in
//! [`UsageRead::problems`].
//!
//! [`VerticalTick`] puts one daemon tick of the vertical part together: the target's pods, their
//! usage, the recommenders, and [`apply_vertical`]. Its first tick seeds the recommenders from
//! the history in Prometheus (see [`VerticalTick::tick`]).

use super::vertical::{VerticalOutcome, apply_vertical};
use crate::cluster::Cluster;
use crate::engine::pod::Pod;
use crate::engine::quantity::Resource;
use crate::engine::vertical::{ContainerRecommender, VerticalParams};
use crate::engine::vertical_plan::{ContainerRecommendation, PlanState};
use crate::engine::{Sample, Seconds};
use crate::policy::{Policy, VerticalSpec};
use crate::prometheus::PrometheusClient;
use crate::prometheus::history;
use futures_util::{StreamExt, stream};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// CPU usage in cores of one container of one pod: cAdvisor's counter as a 5-minute rate.
pub const DEFAULT_CPU_QUERY: &str = r#"sum(rate(container_cpu_usage_seconds_total{namespace="$namespace",pod="$pod",container="$container"}[5m]))"#;

/// Memory working set in bytes of one container of one pod (the kubelet's OOM and eviction
/// measure). `max` keeps one series where several jobs scrape cAdvisor.
pub const DEFAULT_MEMORY_QUERY: &str = r#"max(container_memory_working_set_bytes{namespace="$namespace",pod="$pod",container="$container"})"#;

/// Most problems kept per read (the rest are counted).
const MAX_PROBLEMS: usize = 5;

/// Most usage queries of one read in flight at once. A read sends one query per running pod,
/// container and resource (80 for 20 pods of two containers); 8 at a time turn 80 round trips
/// into 10, which takes most of the wait away. More would buy little and cost others: every
/// policy's tick runs on the daemon's one thread against one shared Prometheus client, and
/// Prometheus runs at most `--query.max-concurrency` (default 20) queries at once for all its
/// clients and queues the rest, so a larger burst from one read would only wait in that queue
/// and hold up the other policies' queries (and other users of the same Prometheus) behind it.
pub const USAGE_QUERIES_IN_FLIGHT: usize = 8;

/// Spacing of the points of a usage history read from Prometheus (seconds).
pub const HISTORY_STEP: Seconds = 60.0;

/// How much usage history is read from Prometheus (by `recommend`, and by the daemon when a
/// policy's vertical part starts): two half-lives or one memory peak window, whichever is
/// longer, from 1 hour to 8 days (the VPA's history).
pub fn vertical_history(spec: &VerticalSpec) -> Seconds {
    (2.0 * spec.plan.params.half_life)
        .max(spec.plan.params.memory_peak_window)
        .clamp(3600.0, 8.0 * 86400.0)
}

/// The grid of a history read before `before`: `(from, to)` on whole [`HISTORY_STEP`]s, `to`
/// the last one strictly before `before` (a sample taken at `before` is not in it), `from`
/// `window` earlier.
pub fn history_range(window: Seconds, before: Seconds) -> (Seconds, Seconds) {
    let to = ((before / HISTORY_STEP).ceil() - 1.0) * HISTORY_STEP;
    (to - window, to)
}

/// Why usage cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// `spec.vertical.usage` is PromQL, and there is no Prometheus.
    #[error(
        "policy {policy}: spec.vertical.usage holds PromQL, and there is no Prometheus: give \
         --prometheus URL or spec.prometheus"
    )]
    NoPrometheus {
        /// The policy.
        policy: String,
    },
}

/// `template` with `$namespace`, `$pod` and `$container` replaced by the values, escaped for a
/// PromQL double-quoted string.
pub fn expand(template: &str, namespace: &str, pod: &str, container: &str) -> String {
    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    // Longest names first is not needed: no placeholder is a prefix of another.
    template
        .replace("$namespace", &esc(namespace))
        .replace("$pod", &esc(pod))
        .replace("$container", &esc(container))
}

/// Where usage comes from.
#[derive(Clone)]
pub enum UsageSource {
    /// A Prometheus server, with one query per pod, container and resource.
    Prometheus(PrometheusClient),
    /// The metrics.k8s.io API (metrics-server).
    MetricsApi,
}

impl std::fmt::Debug for UsageSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl UsageSource {
    /// Prometheus when the policy has one (`prometheus`, from [`super::policy_prometheus`]),
    /// else metrics.k8s.io. A policy with `spec.vertical.usage` needs a Prometheus.
    pub fn for_policy(
        policy: &Policy,
        prometheus: Option<PrometheusClient>,
    ) -> Result<UsageSource, UsageError> {
        match prometheus {
            Some(client) => Ok(UsageSource::Prometheus(client)),
            None => {
                let custom = policy
                    .vertical
                    .as_ref()
                    .is_some_and(|v| v.usage.cpu.is_some() || v.usage.memory.is_some());
                if custom {
                    return Err(UsageError::NoPrometheus {
                        policy: policy.name.clone(),
                    });
                }
                Ok(UsageSource::MetricsApi)
            }
        }
    }

    /// `prometheus` or `metrics.k8s.io`.
    pub fn name(&self) -> &'static str {
        match self {
            UsageSource::Prometheus(_) => "prometheus",
            UsageSource::MetricsApi => "metrics.k8s.io",
        }
    }
}

/// One usage sample of one container.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageSample {
    /// The pod.
    pub pod: String,
    /// The container.
    pub container: String,
    /// CPU (cores) or memory (bytes).
    pub resource: Resource,
    /// The value.
    pub value: f64,
    /// When, Unix seconds.
    pub t: Seconds,
}

/// One OOM kill of a container.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OomKill {
    /// The pod.
    pub pod: String,
    /// The container.
    pub container: String,
    /// `finishedAt` of the killed container, Unix seconds (None when the status gives none).
    pub at: Option<Seconds>,
    /// The memory it was killed at, bytes: its limit, else its request (None: neither).
    pub memory: Option<f64>,
}

/// What one read found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageRead {
    /// Usage samples, in time order.
    pub samples: Vec<UsageSample>,
    /// OOM kills not seen before.
    pub ooms: Vec<OomKill>,
    /// Readings that gave nothing, and why (at most a few, then how many more).
    pub problems: Vec<String>,
    /// A history read stopped at a query that Prometheus did not answer (no connection, a
    /// time-out, 5xx or 429 after the client's retries): what it holds is incomplete.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
}

impl UsageRead {
    fn problem(&mut self, dropped: &mut usize, text: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(text);
        } else {
            *dropped += 1;
        }
    }

    fn finish(&mut self, dropped: usize) {
        if dropped > 0 {
            self.problems
                .push(format!("... and {dropped} more readings without data"));
        }
        self.samples.sort_by(|a, b| a.t.total_cmp(&b.t));
    }
}

/// Reads the usage of a policy's containers, tick after tick (it remembers the OOM kills it
/// has counted).
#[derive(Debug)]
pub struct UsageReader {
    source: UsageSource,
    containers: Vec<String>,
    resources: Vec<Resource>,
    cpu_query: String,
    memory_query: String,
    history: Seconds,
    seen_ooms: BTreeSet<String>,
}

impl UsageReader {
    /// A reader for a vertical part, from `source`.
    pub fn new(spec: &VerticalSpec, source: UsageSource) -> UsageReader {
        UsageReader {
            source,
            containers: spec.plan.containers.clone(),
            resources: spec.plan.resources.clone(),
            cpu_query: spec
                .usage
                .cpu
                .clone()
                .unwrap_or_else(|| DEFAULT_CPU_QUERY.into()),
            memory_query: spec
                .usage
                .memory
                .clone()
                .unwrap_or_else(|| DEFAULT_MEMORY_QUERY.into()),
            history: vertical_history(spec),
            seen_ooms: BTreeSet::new(),
        }
    }

    /// Where the usage comes from.
    pub fn source(&self) -> &UsageSource {
        &self.source
    }

    /// The query template of a resource.
    pub fn query(&self, r: Resource) -> &str {
        match r {
            Resource::Cpu => &self.cpu_query,
            Resource::Memory => &self.memory_query,
        }
    }

    /// (pod, container) pairs to read: running pods, the policy's containers they have.
    fn targets<'a>(&'a self, pods: &'a [Pod]) -> impl Iterator<Item = (&'a str, &'a str)> {
        pods.iter()
            .filter(|p| p.phase == "Running")
            .flat_map(move |p| {
                self.containers
                    .iter()
                    .filter(|c| p.containers.iter().any(|x| &x.name == *c))
                    .map(move |c| (p.name.as_str(), c.as_str()))
            })
    }

    /// One reading per running pod, container and resource: what a read queries, in order.
    fn readings<'a>(&'a self, pods: &'a [Pod]) -> Vec<(&'a str, &'a str, Resource)> {
        self.targets(pods)
            .flat_map(|(pod, container)| self.resources.iter().map(move |&r| (pod, container, r)))
            .collect()
    }

    /// Usage now: instant queries at `now` (Prometheus), or the current metrics.k8s.io
    /// samples of the pods matching `selector`; plus the OOM kills not counted before.
    pub async fn read<C: Cluster>(
        &mut self,
        cluster: &C,
        pods: &[Pod],
        selector: &str,
        now: Seconds,
    ) -> UsageRead {
        let mut out = UsageRead::default();
        let mut dropped = 0;
        match &self.source {
            UsageSource::Prometheus(client) => {
                let namespace = cluster.namespace();
                let readings = self.readings(pods);
                // Concurrently, at most USAGE_QUERIES_IN_FLIGHT at once (no Send needed: the
                // futures run here, on the caller's task). The answers come in any order; put
                // back in the order of the readings, the samples and the problems kept read the
                // same as from one query after another.
                let mut answers: Vec<(usize, Sample)> = stream::iter(readings.iter().enumerate())
                    .map(|(k, &(pod, container, r))| {
                        let query = expand(self.query(r), namespace, pod, container);
                        async move { (k, client.sample(&query, Some(now), false).await) }
                    })
                    .buffer_unordered(USAGE_QUERIES_IN_FLIGHT)
                    .collect()
                    .await;
                answers.sort_unstable_by_key(|(k, _)| *k);
                for (k, answer) in answers {
                    let (pod, container, r) = readings[k];
                    match answer {
                        Sample::Value { value } if value >= 0.0 => out.samples.push(UsageSample {
                            pod: pod.into(),
                            container: container.into(),
                            resource: r,
                            value,
                            t: now,
                        }),
                        Sample::Value { value } => out.problem(
                            &mut dropped,
                            format!(
                                "pod {pod} container {container} {}: negative usage {value}",
                                r.as_str()
                            ),
                        ),
                        Sample::NoData { reason } => out.problem(
                            &mut dropped,
                            format!("pod {pod} container {container} {}: {reason}", r.as_str()),
                        ),
                    }
                }
            }
            UsageSource::MetricsApi => match cluster.pod_metrics(selector).await {
                Err(e) => out.problem(&mut dropped, e.to_string()),
                Ok(usage) => {
                    for u in &usage {
                        for c in u
                            .containers
                            .iter()
                            .filter(|c| self.containers.contains(&c.name))
                        {
                            for &r in &self.resources {
                                let v = match r {
                                    Resource::Cpu => c.cpu,
                                    Resource::Memory => c.memory,
                                };
                                match v {
                                    Some(value) => out.samples.push(UsageSample {
                                        pod: u.pod.clone(),
                                        container: c.name.clone(),
                                        resource: r,
                                        value,
                                        t: u.timestamp,
                                    }),
                                    None => out.problem(
                                        &mut dropped,
                                        format!(
                                            "pod {} container {} {}: metrics.k8s.io has no value",
                                            u.pod,
                                            c.name,
                                            r.as_str()
                                        ),
                                    ),
                                }
                            }
                        }
                    }
                    if usage.is_empty() {
                        out.problem(
                            &mut dropped,
                            format!("metrics.k8s.io has no pod matching {selector:?}"),
                        );
                    }
                }
            },
        }
        out.ooms = self.ooms(pods);
        out.finish(dropped);
        out
    }

    /// How much history [`UsageReader::recent_history`] reads ([`vertical_history`]).
    pub fn history_window(&self) -> Seconds {
        self.history
    }

    /// Usage over the [`vertical_history`] before `before` (not including it), one point a
    /// [`HISTORY_STEP`] (see [`history_range`]), for the pods running now: what `recommend`
    /// shows and what the daemon seeds its recommenders with. Plus the OOM kills not counted
    /// before.
    pub async fn recent_history<C: Cluster>(
        &mut self,
        cluster: &C,
        pods: &[Pod],
        before: Seconds,
    ) -> UsageRead {
        let (from, to) = history_range(self.history, before);
        let step = Duration::from_secs_f64(HISTORY_STEP);
        self.history(cluster, pods, from, to, step).await
    }

    /// Usage over a past range: range queries from `from` to `to` every `step` (Prometheus);
    /// with metrics.k8s.io, which keeps no history, nothing (read the current sample instead).
    /// Plus the OOM kills not counted before. A query that Prometheus does not answer (after
    /// the client's retries) ends the read: the rest are not tried, and the read is marked
    /// [`UsageRead::interrupted`].
    pub async fn history<C: Cluster>(
        &mut self,
        cluster: &C,
        pods: &[Pod],
        from: Seconds,
        to: Seconds,
        step: Duration,
    ) -> UsageRead {
        let mut out = UsageRead::default();
        let mut dropped = 0;
        if let UsageSource::Prometheus(client) = &self.source {
            let namespace = cluster.namespace();
            let dt = step.as_secs_f64();
            let queries = self.readings(pods);
            for (i, &(pod, container, r)) in queries.iter().enumerate() {
                let query = expand(self.query(r), namespace, pod, container);
                match history::grid(client, &query, false, from, to, step, &mut |_| {}).await {
                    Ok(grid) => {
                        let before = out.samples.len();
                        for (k, v) in grid.iter().enumerate() {
                            if let Some(v) = v.filter(|v| *v >= 0.0) {
                                out.samples.push(UsageSample {
                                    pod: pod.into(),
                                    container: container.into(),
                                    resource: r,
                                    value: v,
                                    t: from + k as f64 * dt,
                                });
                            }
                        }
                        if out.samples.len() == before {
                            out.problem(
                                &mut dropped,
                                format!(
                                    "pod {pod} container {container} {}: no data in the range",
                                    r.as_str()
                                ),
                            );
                        }
                    }
                    Err(e) => {
                        out.problem(
                            &mut dropped,
                            format!("pod {pod} container {container} {}: {e}", r.as_str()),
                        );
                        if e.failure().is_some_and(|f| f.is_transient()) {
                            out.interrupted = true;
                            let left = queries.len() - i - 1;
                            if left > 0 {
                                out.problem(
                                    &mut dropped,
                                    format!(
                                        "{left} more readings not tried: Prometheus does \
                                             not answer"
                                    ),
                                );
                            }
                            break;
                        }
                    }
                }
            }
        }
        out.ooms = self.ooms(pods);
        out.finish(dropped);
        out
    }

    /// The OOM kills in the pods' status not counted before.
    pub fn ooms(&mut self, pods: &[Pod]) -> Vec<OomKill> {
        let mut out = Vec::new();
        for p in pods {
            for (c, at) in p.oom_kills() {
                if !self.containers.contains(&c.name) {
                    continue;
                }
                let key = match at {
                    Some(t) => format!("{}/{}/{t}", p.name, c.name),
                    None => format!("{}/{}/restart-{}", p.name, c.name, c.restart_count),
                };
                if !self.seen_ooms.insert(key) {
                    continue;
                }
                out.push(OomKill {
                    pod: p.name.clone(),
                    container: c.name.clone(),
                    at,
                    memory: c.limits.memory.or(c.requests.memory),
                });
            }
        }
        out
    }
}

/// One recommender per container of a vertical part.
#[derive(Debug, Clone)]
pub struct Recommenders {
    params: VerticalParams,
    containers: Vec<String>,
    resources: Vec<Resource>,
    by_container: BTreeMap<String, ContainerRecommender>,
    samples: u64,
    ooms: u64,
}

impl Recommenders {
    /// Empty recommenders for a vertical part.
    pub fn new(spec: &VerticalSpec) -> Recommenders {
        Recommenders {
            params: spec.plan.params,
            containers: spec.plan.containers.clone(),
            resources: spec.plan.resources.clone(),
            by_container: spec
                .plan
                .containers
                .iter()
                .map(|c| (c.clone(), ContainerRecommender::new(&spec.plan.params)))
                .collect(),
            samples: 0,
            ooms: 0,
        }
    }

    /// The same recommenders without any data.
    pub fn cleared(&self) -> Recommenders {
        Recommenders {
            by_container: self
                .containers
                .iter()
                .map(|c| (c.clone(), ContainerRecommender::new(&self.params)))
                .collect(),
            samples: 0,
            ooms: 0,
            ..self.clone()
        }
    }

    /// Adds a read: its samples in time order, then its OOM kills (at their time, or the last
    /// sample's when the status gives none).
    pub fn feed(&mut self, read: &UsageRead) {
        let mut last = 0.0f64;
        for s in &read.samples {
            let Some(r) = self.by_container.get_mut(&s.container) else {
                continue;
            };
            match s.resource {
                Resource::Cpu => r.add_cpu(s.value, s.t),
                Resource::Memory => r.add_memory(&self.params, s.value, s.t),
            }
            last = last.max(s.t);
            self.samples += 1;
        }
        for o in &read.ooms {
            let (Some(r), Some(memory)) = (self.by_container.get_mut(&o.container), o.memory)
            else {
                continue;
            };
            r.oom(&self.params, memory, o.at.unwrap_or(last));
            self.ooms += 1;
        }
    }

    /// Samples fed so far.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// OOM kills fed so far.
    pub fn ooms(&self) -> u64 {
        self.ooms
    }

    /// The recommendation per container (a resource without data, or not right-sized, has
    /// none).
    pub fn recommendations(&self) -> Vec<ContainerRecommendation> {
        self.containers
            .iter()
            .map(|c| {
                let rec = |r: Resource| {
                    if !self.resources.contains(&r) {
                        return None;
                    }
                    self.by_container
                        .get(c)
                        .and_then(|x| x.recommend(&self.params, r))
                };
                ContainerRecommendation {
                    container: c.clone(),
                    cpu: rec(Resource::Cpu),
                    memory: rec(Resource::Memory),
                }
            })
            .collect()
    }
}

/// After a failed history read, the next try waits this long (seconds).
pub const HISTORY_RETRY: Seconds = 300.0;

/// Most OOM kills kept, until the history is read, to feed again into the seeded recommenders.
const MAX_EARLY_OOMS: usize = 64;

/// What the history step of a [`VerticalTick`] did (at most once per tick; see
/// [`VerticalTick::take_history`]).
#[derive(Debug, Clone, PartialEq)]
pub enum HistorySeed {
    /// The history was read from Prometheus: the recommenders start from it.
    Seeded {
        /// Samples read.
        samples: usize,
        /// What happened, for the plan's notes and the log.
        note: String,
    },
    /// Prometheus did not answer: the recommenders go on from live samples, and the history is
    /// read again at a later tick.
    Failed {
        /// What happened, for the plan's notes and the log.
        note: String,
    },
    /// The usage source keeps no history (metrics.k8s.io): nothing to seed.
    Unavailable {
        /// What it means, for the plan's notes and the log.
        note: String,
    },
}

impl HistorySeed {
    /// The note.
    pub fn note(&self) -> &str {
        match self {
            HistorySeed::Seeded { note, .. }
            | HistorySeed::Failed { note }
            | HistorySeed::Unavailable { note } => note,
        }
    }
}

/// Where the seeding of the recommenders stands.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Seeding {
    /// To do at the first tick at or after this time.
    Due(Seconds),
    /// Done (or nothing to do): never again.
    Done,
}

/// One policy's vertical part in the daemon: its usage reader, recommenders and planner state,
/// kept from tick to tick.
#[derive(Debug)]
pub struct VerticalTick {
    reader: UsageReader,
    recommenders: Recommenders,
    state: PlanState,
    seeding: Seeding,
    /// OOM kills fed before the history was read (fed again into the seeded recommenders).
    early_ooms: Vec<OomKill>,
    /// What the last tick's history step did.
    history: Option<HistorySeed>,
    /// The last tick's readings without data.
    problems: Vec<String>,
}

impl VerticalTick {
    /// For a policy with a vertical part (None without one).
    pub fn new(policy: &Policy, source: UsageSource) -> Option<VerticalTick> {
        let spec = policy.vertical.as_ref()?;
        Some(VerticalTick {
            reader: UsageReader::new(spec, source),
            recommenders: Recommenders::new(spec),
            state: PlanState::default(),
            seeding: Seeding::Due(f64::NEG_INFINITY),
            early_ooms: Vec::new(),
            history: None,
            problems: Vec::new(),
        })
    }

    /// The planner's state (kept across restarts in the target's annotation by the daemon).
    pub fn state(&self) -> &PlanState {
        &self.state
    }

    /// Starts from a planner state kept from before (a restart).
    pub fn restore(&mut self, state: PlanState) {
        self.state = state;
    }

    /// The recommenders.
    pub fn recommenders(&self) -> &Recommenders {
        &self.recommenders
    }

    /// Where the usage comes from.
    pub fn source(&self) -> &UsageSource {
        self.reader.source()
    }

    /// The readings of the last tick that gave no data (its history read's, then its live
    /// read's), as they are also in that tick's plan notes.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// What the last tick's history step did, if it did anything (taken: the next call
    /// answers None until another tick reads history).
    pub fn take_history(&mut self) -> Option<HistorySeed> {
        self.history.take()
    }

    /// One tick at `now` on the target's pods (as the tick read them, with their selector):
    /// their usage and OOM kills into the recommenders, then [`apply_vertical`]. `hold` says why
    /// nothing may be written (dry-run, a standby replica), if so. Problems reading usage go
    /// into the plan's notes.
    ///
    /// The first tick, before reading usage, seeds the recommenders with the
    /// [`vertical_history`] read from Prometheus ([`UsageReader::recent_history`], up to just
    /// before `now`). If Prometheus does not answer, the tick goes on from live samples, and the
    /// history is read again at the first tick [`HISTORY_RETRY`] later, until it is read once:
    /// then it replaces what the recommenders were fed live (the same series, read from the same
    /// Prometheus, up to just before that tick), so that no sample counts twice and the
    /// recommenders see their samples in time order. With metrics.k8s.io there is no history:
    /// the first tick says so. [`VerticalTick::take_history`] tells what happened.
    pub async fn tick<C: Cluster>(
        &mut self,
        cluster: &C,
        policy: &Policy,
        pods: &[Pod],
        selector: &str,
        now: Seconds,
        hold: Option<&str>,
    ) -> VerticalOutcome {
        let mut notes = Vec::new();
        let mut problems = Vec::new();
        let mut ooms = Vec::new();
        let mut history = None;
        if self.seed_due(now) {
            match self.reader.source() {
                UsageSource::MetricsApi => history = Some(self.no_history()),
                UsageSource::Prometheus(_) if self.reader.targets(pods).next().is_none() => {
                    // No pod to read: the next tick tries (it costs nothing until then).
                }
                UsageSource::Prometheus(_) => {
                    let read = self.reader.recent_history(cluster, pods, now).await;
                    notes.extend(read.problems.iter().map(|p| format!("usage history: {p}")));
                    problems.extend(read.problems.iter().cloned());
                    let (seed, failed_ooms) = self.seed(read, now);
                    ooms = failed_ooms;
                    history = Some(seed);
                }
            }
        }
        if let Some(h) = &history {
            notes.insert(0, h.note().to_string());
        }
        self.history = history;
        let mut read = self.reader.read(cluster, pods, selector, now).await;
        read.ooms.splice(0..0, ooms);
        if self.seeding != Seeding::Done {
            let room = MAX_EARLY_OOMS.saturating_sub(self.early_ooms.len());
            self.early_ooms.extend(read.ooms.iter().take(room).cloned());
        }
        self.recommenders.feed(&read);
        let recs = self.recommenders.recommendations();
        let mut outcome =
            apply_vertical(cluster, policy, &mut self.state, pods, &recs, now, hold).await;
        notes.extend(read.problems.iter().map(|p| format!("usage: {p}")));
        problems.extend(read.problems);
        self.problems = problems;
        outcome.plan.notes.extend(notes);
        outcome
    }

    /// Whether the history is to be read at `now`.
    fn seed_due(&self, now: Seconds) -> bool {
        matches!(self.seeding, Seeding::Due(t) if now >= t)
    }

    /// The source keeps no history: said once.
    fn no_history(&mut self) -> HistorySeed {
        self.seeding = Seeding::Done;
        HistorySeed::Unavailable {
            note: "usage history: metrics.k8s.io keeps none: the recommenders start from this \
                   tick's samples and build up their history tick by tick"
                .into(),
        }
    }

    /// Takes a history read at `now`. When complete, it replaces what the recommenders were fed
    /// so far (with the OOM kills seen so far fed again after it); when interrupted, it is
    /// dropped, the next try is due [`HISTORY_RETRY`] later, and the OOM kills it found are
    /// returned, to be fed with this tick's live samples.
    fn seed(&mut self, mut read: UsageRead, now: Seconds) -> (HistorySeed, Vec<OomKill>) {
        let window = humantime::format_duration(Duration::from_secs_f64(
            self.reader.history_window().max(0.0),
        ));
        if read.interrupted {
            self.seeding = Seeding::Due(now + HISTORY_RETRY);
            let why = read
                .problems
                .first()
                .cloned()
                .unwrap_or_else(|| "no answer".into());
            let retry = humantime::format_duration(Duration::from_secs_f64(HISTORY_RETRY));
            let note = format!(
                "usage history: cannot be read from Prometheus ({why}): the recommenders go on \
                 from live samples; trying again in {retry}"
            );
            return (HistorySeed::Failed { note }, std::mem::take(&mut read.ooms));
        }
        let mut seeded = self.recommenders.cleared();
        read.ooms.splice(0..0, std::mem::take(&mut self.early_ooms));
        seeded.feed(&read);
        let replaced = self.recommenders.samples();
        self.recommenders = seeded;
        self.seeding = Seeding::Done;
        let samples = read.samples.len();
        let mut note = format!(
            "usage history: {samples} samples read from Prometheus over the {window} before this \
             tick (one point a minute, for the pods running now)"
        );
        if replaced > 0 {
            note += &format!(", in place of the {replaced} samples read live before");
        }
        (HistorySeed::Seeded { samples, note }, Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_replaced_and_escaped() {
        assert_eq!(
            expand(DEFAULT_CPU_QUERY, "demo", "web-1", "app"),
            r#"sum(rate(container_cpu_usage_seconds_total{namespace="demo",pod="web-1",container="app"}[5m]))"#
        );
        assert_eq!(
            expand(r#"x{pod="$pod"}"#, "n", r#"a"b\c"#, "c"),
            r#"x{pod="a\"b\\c"}"#
        );
        for q in [DEFAULT_CPU_QUERY, DEFAULT_MEMORY_QUERY] {
            let found = crate::policy::placeholders(q);
            assert!(
                found
                    .iter()
                    .all(|p| crate::policy::USAGE_PLACEHOLDERS.contains(p))
            );
        }
    }

    fn vertical_policy() -> Policy {
        let text = "apiVersion: setpoint.dev/v1alpha1\nkind: ScalingPolicy\nmetadata: {name: web}\n\
                    spec:\n  target: {kind: Deployment, name: web}\n  vertical:\n    \
                    containers: [app]\n    resources: [cpu, memory]\n    halfLife: 24h\n";
        crate::policy::parse(text, std::path::Path::new("t.yaml")).unwrap()
    }

    fn samples(from: Seconds, to: Seconds, cores: f64) -> UsageRead {
        let mut read = UsageRead::default();
        let mut t = from;
        while t <= to {
            read.samples.push(UsageSample {
                pod: "web-1".into(),
                container: "app".into(),
                resource: Resource::Cpu,
                value: cores,
                t,
            });
            t += HISTORY_STEP;
        }
        read
    }

    #[test]
    fn the_history_window_and_its_grid_end_before_the_first_live_sample() {
        let p = vertical_policy();
        assert_eq!(
            vertical_history(p.vertical.as_ref().unwrap()),
            2.0 * 86400.0
        );
        assert_eq!(history_range(3600.0, 7230.0), (3600.0, 7200.0));
        // A live sample exactly on the grid is not read again from the history.
        assert_eq!(history_range(3600.0, 7200.0), (3540.0, 7140.0));
    }

    #[test]
    fn the_first_tick_seeds_from_history_and_a_late_seed_replaces_the_live_samples() {
        let p = vertical_policy();
        let now = 10.0 * 86400.0;
        let mut vt = VerticalTick::new(&p, UsageSource::MetricsApi).unwrap();
        assert!(vt.seed_due(now));
        let history = samples(now - 86400.0, now - 60.0, 0.2);
        let n = history.samples.len();
        let (seed, ooms) = vt.seed(history.clone(), now);
        assert!(ooms.is_empty());
        assert!(matches!(seed, HistorySeed::Seeded { samples, .. } if samples == n));
        assert!(seed.note().contains("1440 samples"), "{}", seed.note());
        assert_eq!(vt.recommenders().samples(), n as u64);
        assert!(!vt.seed_due(now + 86400.0), "once");

        // A history read that Prometheus interrupted: the live samples go on, a retry is due
        // five minutes later, and the OOM kills it found are handed back to be fed.
        let mut vt = VerticalTick::new(&p, UsageSource::MetricsApi).unwrap();
        vt.recommenders.feed(&samples(now, now + 600.0, 0.9));
        let live = vt.recommenders().samples();
        let oom = OomKill {
            pod: "web-1".into(),
            container: "app".into(),
            at: Some(now + 30.0),
            memory: Some(256.0 * crate::engine::quantity::MIB),
        };
        vt.early_ooms.push(oom.clone());
        let broken = UsageRead {
            interrupted: true,
            problems: vec!["pod web-1 container app cpu: connection refused".into()],
            ooms: vec![oom.clone()],
            ..history.clone()
        };
        let (seed, ooms) = vt.seed(broken, now + 600.0);
        assert!(matches!(seed, HistorySeed::Failed { .. }));
        assert!(
            seed.note().contains("connection refused"),
            "{}",
            seed.note()
        );
        assert!(
            seed.note().contains("trying again in 5m"),
            "{}",
            seed.note()
        );
        assert_eq!(ooms, vec![oom.clone()]);
        assert_eq!(vt.recommenders().samples(), live);
        assert!(!vt.seed_due(now + 600.0 + HISTORY_RETRY - 1.0));
        assert!(vt.seed_due(now + 600.0 + HISTORY_RETRY));

        // The retry works: the history up to that tick replaces the live samples (the same
        // series from the same Prometheus), and the OOM kill seen before counts again.
        let later = now + 600.0 + HISTORY_RETRY;
        let full = samples(later - 86400.0, later - 60.0, 0.2);
        let (seed, _) = vt.seed(full.clone(), later);
        assert!(
            seed.note().contains("in place of the 11 samples"),
            "{}",
            seed.note()
        );
        assert_eq!(vt.recommenders().samples(), full.samples.len() as u64);
        assert_eq!(vt.recommenders().ooms(), 1);
        let cpu = vt.recommenders().recommendations()[0].cpu.unwrap();
        assert!(
            cpu.target < 0.3,
            "from the history, not the live 0.9: {cpu:?}"
        );
    }

    #[test]
    fn cleared_recommenders_keep_their_settings_and_lose_their_data() {
        let p = vertical_policy();
        let mut r = Recommenders::new(p.vertical.as_ref().unwrap());
        r.feed(&samples(0.0, 600.0, 0.5));
        assert!(r.recommendations()[0].cpu.is_some());
        let c = r.cleared();
        assert_eq!(c.samples(), 0);
        assert_eq!(c.recommendations()[0].container, "app");
        assert!(c.recommendations()[0].cpu.is_none());
    }
}
