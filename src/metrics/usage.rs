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
//!   instant values ([`UsageReader::read`]); `recommend` reads a range ([`UsageReader::history`])
//!   so that one run has history.
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
//! usage, the recommenders, and [`apply_vertical`].

use super::history;
use super::prometheus::{PrometheusClient, PrometheusError};
use crate::cluster::vertical::{VerticalOutcome, apply_vertical};
use crate::cluster::{Cluster, ClusterError, PodInfo};
use crate::engine::vertical::{ContainerRecommender, Resource, VerticalParams};
use crate::engine::vertical_plan::{ContainerRecommendation, PlanState};
use crate::engine::{Sample, Seconds};
use crate::policy::{Policy, VerticalSpec};
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
    /// The Prometheus client could not be built.
    #[error("{0}")]
    Prometheus(#[from] PrometheusError),
    /// The cluster could not be read.
    #[error("{0}")]
    Cluster(#[from] ClusterError),
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
    /// Prometheus when the policy (`spec.prometheus`) or the caller (`default`) names one,
    /// else metrics.k8s.io. A policy with `spec.vertical.usage` needs a Prometheus.
    pub fn for_policy(
        policy: &Policy,
        default: Option<&PrometheusClient>,
    ) -> Result<UsageSource, UsageError> {
        let own = policy
            .prometheus
            .as_ref()
            .map(PrometheusClient::new)
            .transpose()?;
        match own.or_else(|| default.cloned()) {
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
    fn targets<'a>(&'a self, pods: &'a [PodInfo]) -> impl Iterator<Item = (&'a str, &'a str)> {
        pods.iter()
            .filter(|p| p.phase == "Running")
            .flat_map(move |p| {
                self.containers
                    .iter()
                    .filter(|c| p.containers.iter().any(|x| &x.name == *c))
                    .map(move |c| (p.name.as_str(), c.as_str()))
            })
    }

    /// Usage now: instant queries at `now` (Prometheus), or the current metrics.k8s.io
    /// samples of the pods matching `selector`; plus the OOM kills not counted before.
    pub async fn read<C: Cluster>(
        &mut self,
        cluster: &C,
        pods: &[PodInfo],
        selector: &str,
        now: Seconds,
    ) -> UsageRead {
        let mut out = UsageRead::default();
        let mut dropped = 0;
        match &self.source {
            UsageSource::Prometheus(client) => {
                let namespace = cluster.namespace();
                let readings: Vec<(&str, &str, Resource)> = self
                    .targets(pods)
                    .flat_map(|(pod, container)| {
                        self.resources.iter().map(move |&r| (pod, container, r))
                    })
                    .collect();
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

    /// Usage over a past range: range queries from `from` to `to` every `step` (Prometheus);
    /// with metrics.k8s.io, which keeps no history, nothing (read the current sample instead).
    /// Plus the OOM kills not counted before.
    pub async fn history<C: Cluster>(
        &mut self,
        cluster: &C,
        pods: &[PodInfo],
        from: Seconds,
        to: Seconds,
        step: Duration,
    ) -> UsageRead {
        let mut out = UsageRead::default();
        let mut dropped = 0;
        if let UsageSource::Prometheus(client) = &self.source {
            let namespace = cluster.namespace();
            let dt = step.as_secs_f64();
            for (pod, container) in self.targets(pods) {
                for &r in &self.resources {
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
                        Err(e) => out.problem(
                            &mut dropped,
                            format!("pod {pod} container {container} {}: {e}", r.as_str()),
                        ),
                    }
                }
            }
        }
        out.ooms = self.ooms(pods);
        out.finish(dropped);
        out
    }

    /// The OOM kills in the pods' status not counted before.
    pub fn ooms(&mut self, pods: &[PodInfo]) -> Vec<OomKill> {
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

/// One policy's vertical part in the daemon: its usage reader, recommenders and planner state,
/// kept from tick to tick.
#[derive(Debug)]
pub struct VerticalTick {
    reader: UsageReader,
    recommenders: Recommenders,
    state: PlanState,
}

impl VerticalTick {
    /// For a policy with a vertical part (None without one).
    pub fn new(policy: &Policy, source: UsageSource) -> Option<VerticalTick> {
        let spec = policy.vertical.as_ref()?;
        Some(VerticalTick {
            reader: UsageReader::new(spec, source),
            recommenders: Recommenders::new(spec),
            state: PlanState::default(),
        })
    }

    /// The planner's state (to keep across restarts, if wanted).
    pub fn state(&self) -> &PlanState {
        &self.state
    }

    /// The recommenders.
    pub fn recommenders(&self) -> &Recommenders {
        &self.recommenders
    }

    /// One tick at `now` on the target's pods (as the tick read them, with their selector):
    /// their usage and OOM kills into the recommenders, then [`apply_vertical`]. `hold` says why
    /// nothing may be written (dry-run, a standby replica), if so. Problems reading usage go
    /// into the plan's notes.
    pub async fn tick<C: Cluster>(
        &mut self,
        cluster: &C,
        policy: &Policy,
        pods: &[PodInfo],
        selector: &str,
        now: Seconds,
        hold: Option<&str>,
    ) -> VerticalOutcome {
        let read = self.reader.read(cluster, pods, selector, now).await;
        self.recommenders.feed(&read);
        let recs = self.recommenders.recommendations();
        let mut outcome =
            apply_vertical(cluster, policy, &mut self.state, pods, &recs, now, hold).await;
        outcome
            .plan
            .notes
            .extend(read.problems.iter().map(|p| format!("usage: {p}")));
        outcome
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
}
