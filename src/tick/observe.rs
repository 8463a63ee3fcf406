//! The observe step of one policy: one [`MetricReading`] per metric, from the policy's own
//! Prometheus (or the default one), from metrics.k8s.io, or by scraping the target's pods.

use super::pods::{self, PodEntry, Scraper};
use crate::cluster::Cluster;
use crate::engine::pod::Pod;
use crate::engine::predictive::{self, PredictiveParams};
use crate::engine::{Observation, Sample, Seconds, State};
use crate::policy::{MetricQuery, Policy};
use crate::prometheus::PrometheusClient;
use serde::Serialize;
use std::time::Duration;

/// Why a policy's metrics cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    /// A Prometheus metric, and no server to ask.
    #[error(
        "metric {metric} is a Prometheus query, and there is no Prometheus: give --prometheus URL \
         or spec.prometheus in the policy"
    )]
    NoPrometheus {
        /// The metric.
        metric: String,
    },
}

/// What the tick knows of the target before its metrics are read.
#[derive(Debug, Clone, Default)]
pub struct TargetState {
    /// Replicas the target should have (its spec).
    pub current: u32,
    /// Ready pods.
    pub ready: u32,
    /// The target's pods, when the cluster was asked.
    pub pods: Option<Vec<Pod>>,
    /// The label selector of the target's pods.
    pub selector: Option<String>,
}

/// One metric's reading.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricReading {
    /// The metric's name.
    pub metric: String,
    /// Where it came from, in words.
    pub source: String,
    /// What the engine is given.
    pub sample: Sample,
    /// For pod metrics: how the pods counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// For pod metrics: each pod.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<PodEntry>,
    /// How long reading it took.
    #[serde(skip)]
    pub took: Duration,
}

impl MetricReading {
    /// Takes a pod metric's sample, note and pods.
    fn take(&mut self, r: pods::PodReading) {
        self.sample = r.sample;
        self.note = Some(r.note).filter(|n| !n.is_empty());
        self.pods = r.pods;
    }
}

enum Source {
    Prometheus { client: PrometheusClient },
    Pods,
}

/// Reads a policy's metrics, tick after tick (it keeps what counters need to become rates).
pub struct Observer {
    sources: Vec<Source>,
    scraper: Scraper,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer")
            .field("metrics", &self.sources.len())
            .finish_non_exhaustive()
    }
}

impl Observer {
    /// An observer for `policy`. Prometheus metrics go to `prometheus`, the policy's Prometheus
    /// ([`super::policy_prometheus`]), with retries for at most one interval of the policy.
    pub fn new(
        policy: &Policy,
        prometheus: Option<&PrometheusClient>,
    ) -> Result<Observer, ObserveError> {
        // A tick's retries end with its interval: the next tick asks again.
        let client =
            prometheus.map(|c| c.with_retry_budget(Duration::from_secs_f64(policy.interval)));
        let mut sources = Vec::new();
        for (m, q) in policy.metrics().iter().zip(&policy.queries) {
            sources.push(match (q, &client) {
                (MetricQuery::Prometheus { .. }, Some(c)) => {
                    Source::Prometheus { client: c.clone() }
                }
                (MetricQuery::Prometheus { .. }, None) => {
                    return Err(ObserveError::NoPrometheus {
                        metric: m.name.clone(),
                    });
                }
                (MetricQuery::Resource { .. } | MetricQuery::Pods(_), _) => Source::Pods,
            });
        }
        Ok(Observer {
            sources,
            scraper: Scraper::new(Duration::from_secs(5)),
        })
    }

    /// The Prometheus client metric `i` reads from, if it is a Prometheus metric.
    pub fn prometheus(&self, i: usize) -> Option<&PrometheusClient> {
        match self.sources.get(i) {
            Some(Source::Prometheus { client }) => Some(client),
            _ => None,
        }
    }

    /// Whether some metric reads the target's pods (and so needs the cluster).
    pub fn reads_pods(&self) -> bool {
        self.sources.iter().any(|s| matches!(s, Source::Pods))
    }

    /// Reads every metric of `policy` once. Prometheus metrics are evaluated at `time` (Unix
    /// seconds; the server's now when None); pod metrics are read now, from `cluster`. A metric
    /// that cannot be read gives [`Sample::NoData`] with the reason.
    pub async fn observe<C: Cluster>(
        &mut self,
        policy: &Policy,
        cluster: Option<&C>,
        target: &TargetState,
        now: Seconds,
        time: Option<f64>,
    ) -> Vec<MetricReading> {
        let mut usage = None;
        let mut out = Vec::new();
        for (i, (m, q)) in policy.metrics().iter().zip(&policy.queries).enumerate() {
            let started = std::time::Instant::now();
            let mut reading = MetricReading {
                metric: m.name.clone(),
                source: q.to_string(),
                sample: Sample::no_data("not read"),
                note: None,
                pods: Vec::new(),
                took: Duration::ZERO,
            };
            let (pods, selector) = match (&target.pods, &target.selector) {
                (Some(p), Some(s)) => (p.as_slice(), s.as_str()),
                _ => (&[][..], ""),
            };
            match (q, &self.sources[i]) {
                (MetricQuery::Prometheus { query, sum }, Source::Prometheus { client }) => {
                    reading.sample = client.sample(query, time, *sum).await;
                }
                (MetricQuery::Resource { .. } | MetricQuery::Pods(_), _)
                    if cluster.is_none() || target.pods.is_none() =>
                {
                    reading.sample = Sample::no_data(
                        "a pod metric needs the cluster: the target's pods were not read",
                    );
                }
                (
                    MetricQuery::Resource {
                        resource,
                        container,
                    },
                    _,
                ) => {
                    if usage.is_none() {
                        let c = cluster.expect("checked above");
                        usage = Some(c.pod_metrics(selector).await.map_err(|e| e.to_string()));
                    }
                    match usage.as_ref().expect("just read") {
                        Err(e) => reading.sample = Sample::no_data(e.clone()),
                        Ok(u) => {
                            let r = pods::resource_reading(
                                *resource,
                                container.as_deref(),
                                m.target,
                                pods,
                                u,
                                target.current,
                                target.ready,
                                now,
                            );
                            reading.take(r);
                        }
                    }
                }
                (MetricQuery::Pods(pq), _) => {
                    let values = self.scraper.scrape(pq, pods, now).await;
                    let r = pods::pods_reading(
                        m.target,
                        pods,
                        &values,
                        target.current,
                        target.ready,
                        now,
                    );
                    reading.take(r);
                }
                (MetricQuery::Prometheus { .. }, Source::Pods) => {
                    unreachable!("sources follow the queries")
                }
            }
            reading.took = started.elapsed();
            out.push(reading);
        }
        out
    }

    /// Scrapes the counters of the pods metrics once, without a reading: the next
    /// [`observe`](Self::observe) then has a rate for every pod that was scraped here.
    pub async fn prime(&mut self, policy: &Policy, target: &TargetState, now: Seconds) {
        let Some(pods) = &target.pods else { return };
        for q in &policy.queries {
            if let MetricQuery::Pods(pq) = q {
                self.scraper.scrape(pq, pods, now).await;
            }
        }
    }

    /// Seeds the predictive policy's history with a range query over its `history` window, one
    /// point each [`PredictiveParams::seed_step`] (a minute, or the interval for quantile
    /// sizing), for each Prometheus metric, and says what was read (one note per metric). A
    /// utilization's load is its value times the ready replicas of now (the replicas of the
    /// past are not known).
    pub async fn seed_history(
        &self,
        policy: &Policy,
        params: &PredictiveParams,
        state: &mut State,
        ready: u32,
        now: Seconds,
    ) -> Vec<String> {
        let mut notes = Vec::new();
        state.predictive.ensure(params, policy.metrics().len());
        let step = params.seed_step(policy.interval);
        let from = ((now - params.history) / step).ceil() * step;
        let to = (now / step).floor() * step - step;
        let as_now = Observation {
            current_replicas: ready,
            ready_replicas: ready,
            samples: vec![],
        };
        for (i, (m, q)) in policy.metrics().iter().zip(&policy.queries).enumerate() {
            let (Some(client), MetricQuery::Prometheus { query, sum }) = (self.prometheus(i), q)
            else {
                notes.push(format!(
                    "metric {}: no history for the forecast (not a Prometheus metric)",
                    m.name
                ));
                continue;
            };
            let grid = crate::prometheus::history::grid(
                client,
                query,
                *sum,
                from,
                to,
                std::time::Duration::from_secs_f64(step),
                &mut |_| {},
            )
            .await;
            match grid {
                Err(e) => notes.push(format!(
                    "metric {}: no history for the forecast: {e}",
                    m.name
                )),
                Ok(grid) => {
                    let mut n = 0;
                    for (k, v) in grid.iter().enumerate() {
                        if let Some(v) = v {
                            let t = from + k as f64 * step;
                            state.predictive.metrics[i]
                                .observe(t, predictive::load_of(m.target, *v, &as_now));
                            n += 1;
                        }
                    }
                    notes.push(format!(
                        "metric {}: forecast history read from Prometheus: {n} points, {} apart, of the last {}",
                        m.name,
                        humantime::format_duration(std::time::Duration::from_secs_f64(step)),
                        humantime::format_duration(std::time::Duration::from_secs_f64(params.history))
                    ));
                }
            }
        }
        notes
    }
}
