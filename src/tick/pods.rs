//! Pod metrics: CPU and memory from metrics.k8s.io, and metrics scraped from each pod's
//! `/metrics`, turned into one value for the engine with the HPA's rules for pods that are not
//! ready, still starting, or have no metric.
//!
//! # The HPA's rules, as applied here
//!
//! These follow the Kubernetes HPA's documented algorithm (and its replica calculator):
//!
//! 1. **Ignored**: pods shutting down (deletion timestamp set) and failed pods count for nothing.
//! 2. **Unready**: pending pods. For CPU only, also pods still initializing: within the CPU
//!    initialization period (5 minutes from the pod's start), a pod whose `Ready` condition is
//!    false, or whose metric sample was taken before one full metric window after it became
//!    ready, is unready (its CPU is start-up work, not load). After that period, a pod is unready
//!    only if it is not ready and has never been ready (its condition turned false within the
//!    initial readiness delay, 30 seconds, of its start).
//! 3. **Missing**: pods without a metric (no usage yet, a failed scrape, no rate yet).
//! 4. The usage ratio (average value over its target) is computed over the remaining pods. If no
//!    pod has a metric, there is no data (never zero).
//! 5. If there are missing pods, or unready pods while the ratio asks for a scale-up, the ratio is
//!    recomputed conservatively: missing pods count at 100 % of the target on a scale-down (for
//!    a utilization of requests: at 100 % of their request, or at the target if it is higher),
//!    and at 0 on a scale-up; unready pods count at 0 on a scale-up. If the new ratio reverses
//!    the direction, the metric holds the current count.
//!
//! The arithmetic of rules 4 and 5, and what the engine is given, is pure:
//! [`crate::engine::hpa`]. Scraping the pods' `/metrics` ([`Scraper`]) is here, with the tick,
//! since it needs the cluster's pods and the policy's queries.

use crate::cluster::PodUsage;
pub use crate::engine::hpa::{PodEntry, PodGroup, PodReading, PodSample, reading};
use crate::engine::pod::Pod;
use crate::engine::quantity::Resource;
use crate::engine::{Sample, Seconds, Target};
use crate::policy::{PodsMetricKind, PodsQuery};
use std::collections::HashMap;
use std::time::Duration;

/// The HPA's `--horizontal-pod-autoscaler-cpu-initialization-period` default.
pub const CPU_INITIALIZATION_PERIOD: Seconds = 300.0;
/// The HPA's `--horizontal-pod-autoscaler-initial-readiness-delay` default.
pub const INITIAL_READINESS_DELAY: Seconds = 30.0;

/// Groups a pod as the HPA does. `cpu` turns on the CPU initialization rules.
pub fn group(pod: &Pod, sample: Result<&PodSample, &str>, cpu: bool, now: Seconds) -> PodGroup {
    if pod.deleting {
        return PodGroup::Ignored("shutting down".into());
    }
    if pod.phase == "Failed" {
        return PodGroup::Ignored("failed".into());
    }
    if pod.phase == "Pending" {
        return PodGroup::Unready("pending".into());
    }
    let sample = match sample {
        Ok(s) => s,
        Err(why) => return PodGroup::Missing(why.to_string()),
    };
    if cpu {
        let (Some(ready), Some(start)) = (pod.ready, pod.start_time) else {
            return PodGroup::Unready("no Ready condition or start time yet".into());
        };
        let since = ready.since.unwrap_or(start);
        if start + CPU_INITIALIZATION_PERIOD > now {
            if !ready.ready {
                return PodGroup::Unready("initializing: not ready".into());
            }
            if sample.timestamp < since + sample.window {
                return PodGroup::Unready(
                    "initializing: its CPU sample started before it was ready".into(),
                );
            }
        } else if !ready.ready && start + INITIAL_READINESS_DELAY > since {
            return PodGroup::Unready("never ready".into());
        }
    }
    PodGroup::Ready
}

/// A resource metric from metrics.k8s.io usage and the pods' requests.
#[allow(clippy::too_many_arguments)]
pub fn resource_reading(
    resource: Resource,
    container: Option<&str>,
    target: Target,
    pods: &[Pod],
    usage: &[PodUsage],
    current: u32,
    ready: u32,
    now: Seconds,
) -> PodReading {
    let requests = matches!(target, Target::Utilization(_));
    let by_pod: HashMap<&str, &PodUsage> = usage.iter().map(|u| (u.pod.as_str(), u)).collect();
    let mut entries = Vec::new();
    let mut weights = Vec::new();
    for pod in pods {
        let weight = if requests {
            match request_of(resource, container, pod) {
                Ok(w) => w,
                Err(why) => {
                    // As the HPA: without every pod's request there is no utilization.
                    return PodReading {
                        sample: Sample::no_data(why),
                        pods: vec![],
                        note: String::new(),
                    };
                }
            }
        } else {
            1.0
        };
        let sample = usage_of(resource, container, by_pod.get(pod.name.as_str()).copied());
        let g = group(
            pod,
            sample.as_ref().map_err(String::as_str),
            resource == Resource::Cpu,
            now,
        );
        entries.push(PodEntry {
            pod: pod.name.clone(),
            value: sample.ok().map(|s| s.value),
            group: g,
        });
        weights.push(weight);
    }
    reading(entries, &weights, target, requests, current, ready)
}

/// The sum of a pod's requests of `resource` (over `container` only, if given).
fn request_of(resource: Resource, container: Option<&str>, pod: &Pod) -> Result<f64, String> {
    let mut total = 0.0;
    let mut found = false;
    for c in pod
        .containers
        .iter()
        .filter(|c| container.is_none_or(|n| n == c.name))
    {
        let r = match resource {
            Resource::Cpu => c.requests.cpu,
            Resource::Memory => c.requests.memory,
        };
        match r {
            Some(r) if r > 0.0 => total += r,
            _ => {
                return Err(format!(
                    "container {} of pod {} has no {resource} request: a utilization of \
                     requests needs one",
                    c.name, pod.name
                ));
            }
        }
        found = true;
    }
    if !found {
        return Err(format!(
            "pod {} has no container {}",
            pod.name,
            container.unwrap_or("")
        ));
    }
    Ok(total)
}

/// A pod's usage of `resource` (over `container` only, if given), or why there is none.
fn usage_of(
    resource: Resource,
    container: Option<&str>,
    usage: Option<&PodUsage>,
) -> Result<PodSample, String> {
    let Some(u) = usage else {
        return Err("no metrics.k8s.io usage".into());
    };
    let mut value = 0.0;
    let mut found = false;
    for c in u
        .containers
        .iter()
        .filter(|c| container.is_none_or(|n| n == c.name))
    {
        let v = match resource {
            Resource::Cpu => c.cpu,
            Resource::Memory => c.memory,
        };
        if let Some(v) = v {
            value += v;
            found = true;
        }
    }
    if !found {
        return Err(format!("no {resource} usage"));
    }
    Ok(PodSample {
        value,
        timestamp: u.timestamp,
        window: u.window,
    })
}

/// A scraped metric's value from one pod's exposition text: the sum of the matching series, and
/// whether it is a counter.
pub fn pick(text: &str, q: &PodsQuery) -> Result<(f64, bool), String> {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines)
        .map_err(|e| format!("cannot parse the exposition: {e}"))?;
    let mut total = 0.0;
    let mut found = 0;
    let mut typed: Option<bool> = None;
    for s in &scrape.samples {
        if s.metric != q.metric || !q.labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)) {
            continue;
        }
        let (v, counter) = match &s.value {
            prometheus_parse::Value::Counter(v) => (*v, Some(true)),
            prometheus_parse::Value::Gauge(v) => (*v, Some(false)),
            prometheus_parse::Value::Untyped(v) => (*v, None),
            prometheus_parse::Value::Histogram(_) | prometheus_parse::Value::Summary(_) => {
                return Err(format!(
                    "{} is a histogram or summary: name its _count or _sum series",
                    q.metric
                ));
            }
        };
        typed = typed.or(counter);
        total += v;
        found += 1;
    }
    if found == 0 {
        return Err(format!("no series {} in the exposition", shown(q)));
    }
    let counter = match q.kind {
        Some(PodsMetricKind::Counter) => true,
        Some(PodsMetricKind::Gauge) => false,
        None => typed.unwrap_or_else(|| {
            ["_total", "_count", "_sum", "_bucket"]
                .iter()
                .any(|s| q.metric.ends_with(s))
        }),
    };
    if !total.is_finite() {
        return Err(format!("{} is {total}", shown(q)));
    }
    Ok((total, counter))
}

fn shown(q: &PodsQuery) -> String {
    if q.labels.is_empty() {
        q.metric.clone()
    } else {
        let l: Vec<String> = q.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        format!("{}{{{}}}", q.metric, l.join(", "))
    }
}

/// The per-second rate of a counter between two scrapes; a lower value than before is a reset
/// (the process restarted), after which the new value is the increase.
pub fn rate(previous: Option<(Seconds, f64)>, now: Seconds, value: f64) -> Result<f64, String> {
    let Some((t0, v0)) = previous else {
        return Err("first scrape of this pod: no rate yet".into());
    };
    let dt = now - t0;
    if dt <= 0.0 {
        return Err("two scrapes at the same time: no rate".into());
    }
    let increase = if value >= v0 { value - v0 } else { value };
    Ok(increase / dt)
}

/// Scrapes pods' metrics endpoints and keeps each pod's last counter value, so that counters
/// become rates from one tick to the next.
#[derive(Debug)]
pub struct Scraper {
    timeout: Duration,
    /// Built at the first scrape: a policy that never scrapes holds no HTTP client.
    http: Option<reqwest::Client>,
    previous: HashMap<String, (Seconds, f64)>,
}

impl Scraper {
    /// A scraper whose requests give up after `timeout`.
    pub fn new(timeout: Duration) -> Scraper {
        Scraper {
            timeout,
            http: None,
            previous: HashMap::new(),
        }
    }

    fn http(&mut self) -> reqwest::Client {
        let timeout = self.timeout;
        self.http
            .get_or_insert_with(|| {
                reqwest::Client::builder()
                    .timeout(timeout)
                    .connect_timeout(timeout)
                    .user_agent(concat!("setpoint/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .expect("a plain HTTP client builds")
            })
            .clone()
    }

    /// Scrapes every running pod with an IP, concurrently. Returns per pod the value (a rate for
    /// a counter) or why there is none. Counter values are remembered for the next call.
    pub async fn scrape(
        &mut self,
        q: &PodsQuery,
        pods: &[Pod],
        now: Seconds,
    ) -> HashMap<String, Result<f64, String>> {
        let mut set = tokio::task::JoinSet::new();
        let mut out = HashMap::new();
        // A counter's rate is timed by when each pod's answer arrived, not by when the tick
        // began: the first scrape also opens the connection, so timing both by `now` would
        // count that set-up against the interval.
        let started = std::time::Instant::now();
        for pod in pods {
            if pod.deleting || pod.phase != "Running" {
                continue;
            }
            let Some(ip) = pod.ip.clone() else {
                out.insert(pod.name.clone(), Err("no pod IP yet".to_string()));
                continue;
            };
            let host = if ip.contains(':') {
                format!("[{ip}]")
            } else {
                ip
            };
            let url = format!("http://{host}:{}{}", q.port, q.path);
            let http = self.http();
            let name = pod.name.clone();
            set.spawn(async move {
                let mut answered = started.elapsed();
                let body = async {
                    let r = http.get(&url).send().await.map_err(|e| e.without_url())?;
                    answered = started.elapsed();
                    let r = r.error_for_status().map_err(|e| e.without_url())?;
                    r.text().await.map_err(|e| e.without_url())
                }
                .await
                .map_err(|e| format!("scraping {url}: {e}"));
                (name, body, answered)
            });
        }
        let mut bodies = Vec::new();
        while let Some(joined) = set.join_next().await {
            if let Ok(b) = joined {
                bodies.push(b);
            }
        }
        for (name, body, answered) in bodies {
            let value = body
                .and_then(|text| pick(&text, q))
                .and_then(|(v, counter)| {
                    if counter {
                        let at = now + answered.as_secs_f64();
                        let r = rate(self.previous.get(&name).copied(), at, v);
                        self.previous.insert(name.clone(), (at, v));
                        r
                    } else {
                        Ok(v)
                    }
                });
            out.insert(name, value);
        }
        // Forget pods that are gone.
        self.previous
            .retain(|name, _| pods.iter().any(|p| &p.name == name));
        out
    }
}

/// A scraped metric's reading: the HPA's rules over the scraped values.
pub fn pods_reading(
    target: Target,
    pods: &[Pod],
    values: &HashMap<String, Result<f64, String>>,
    current: u32,
    ready: u32,
    now: Seconds,
) -> PodReading {
    let mut entries = Vec::new();
    for pod in pods {
        let sample = match values.get(&pod.name) {
            Some(Ok(v)) => Ok(PodSample {
                value: *v,
                timestamp: now,
                window: 0.0,
            }),
            Some(Err(e)) => Err(e.clone()),
            None => Err("not scraped".to_string()),
        };
        entries.push(PodEntry {
            pod: pod.name.clone(),
            group: group(pod, sample.as_ref().map_err(String::as_str), false, now),
            value: sample.ok().map(|s| s.value),
        });
    }
    let weights = vec![1.0; entries.len()];
    reading(entries, &weights, target, false, current, ready)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ContainerUsage;
    use crate::engine::pod::Readiness;
    use crate::engine::pod::{Amounts, ContainerResources};
    use std::collections::BTreeMap;

    const NOW: Seconds = 1_000_000.0;

    /// A running pod started `age` seconds ago, ready since `ready_for` seconds ago (None: not
    /// ready since then), with a 500m CPU request.
    fn pod(name: &str, age: f64, ready: Option<f64>) -> Pod {
        Pod {
            name: name.into(),
            phase: "Running".into(),
            deleting: false,
            start_time: Some(NOW - age),
            ready: Some(match ready {
                Some(r) => Readiness {
                    ready: true,
                    since: Some(NOW - r),
                },
                None => Readiness {
                    ready: false,
                    since: Some(NOW - age + 1.0),
                },
            }),
            ip: Some("127.0.0.1".into()),
            containers: vec![ContainerResources {
                name: "app".into(),
                requests: Amounts {
                    cpu: Some(0.5),
                    memory: Some(1e9),
                },
                ..ContainerResources::default()
            }],
            ..Pod::default()
        }
    }

    fn usage(name: &str, cpu: f64) -> PodUsage {
        PodUsage {
            pod: name.into(),
            timestamp: NOW - 5.0,
            window: 30.0,
            containers: vec![ContainerUsage {
                name: "app".into(),
                cpu: Some(cpu),
                memory: Some(5e8),
            }],
        }
    }

    fn cpu(pods: &[Pod], usage: &[PodUsage], current: u32, ready: u32) -> PodReading {
        resource_reading(
            Resource::Cpu,
            None,
            Target::Utilization(0.5),
            pods,
            usage,
            current,
            ready,
            NOW,
        )
    }

    /// What the engine's threshold formula proposes from a utilization reading.
    fn proposes(r: &PodReading, ready: u32, target: f64) -> u32 {
        (ready as f64 * r.sample.value().expect("a value") / target - 1e-9).ceil() as u32
    }

    #[test]
    fn all_ready_is_the_plain_average() {
        let pods = [
            pod("a", 3600.0, Some(3000.0)),
            pod("b", 3600.0, Some(3000.0)),
        ];
        let r = cpu(&pods, &[usage("a", 0.4), usage("b", 0.6)], 2, 2);
        // (0.4 + 0.6) / (0.5 + 0.5) = 100 % of requests against a 50 % target: 4 replicas.
        assert_eq!(r.sample.value(), Some(1.0));
        assert_eq!(proposes(&r, 2, 0.5), 4);
        assert_eq!(r.note, "2 pods: 2 with a metric");
    }

    #[test]
    fn unready_pods_count_at_zero_on_a_scale_up() {
        // Two ready pods at 100 % (ratio 2 against 50 %), one pod still starting.
        let pods = [
            pod("a", 3600.0, Some(3000.0)),
            pod("b", 3600.0, Some(3000.0)),
            pod("c", 20.0, None),
        ];
        let u = [usage("a", 0.5), usage("b", 0.5), usage("c", 0.5)];
        let r = cpu(&pods, &u, 3, 2);
        assert_eq!(
            r.pods[2].group,
            PodGroup::Unready("initializing: not ready".into())
        );
        // Recount: (0.5 + 0.5 + 0) / 1.5 = 0.667 / 0.5 = ratio 1.33 over 3 pods: ceil(4) = 4,
        // not the 6 that counting the start-up CPU would give.
        assert_eq!(proposes(&r, 2, 0.5), 4);
        assert!(
            r.note.contains("unready counted at 0 on a scale-up"),
            "{}",
            r.note
        );
    }

    #[test]
    fn unready_pods_are_left_out_on_a_scale_down() {
        let pods = [
            pod("a", 3600.0, Some(3000.0)),
            pod("b", 3600.0, Some(3000.0)),
            pod("c", 20.0, None),
        ];
        let u = [usage("a", 0.1), usage("b", 0.1), usage("c", 0.5)];
        let r = cpu(&pods, &u, 3, 2);
        // Ratio over the ready pods: 0.2 / 1.0 / 0.5 = 0.4 → ceil(0.4 × 2) = 1.
        assert_eq!(proposes(&r, 2, 0.5), 1);
    }

    #[test]
    fn cpu_sampled_before_readiness_is_unready_within_the_initialization_period() {
        // Ready for 10 s, sample window 30 s ending 5 s ago: the sample covers start-up.
        let p = pod("a", 60.0, Some(10.0));
        let s = PodSample {
            value: 1.0,
            timestamp: NOW - 5.0,
            window: 30.0,
        };
        assert_eq!(
            group(&p, Ok(&s), true, NOW),
            PodGroup::Unready("initializing: its CPU sample started before it was ready".into())
        );
        // The same pod for a non-CPU metric counts.
        assert_eq!(group(&p, Ok(&s), false, NOW), PodGroup::Ready);
        // After the initialization period, a pod that was ready once and is not now counts;
        // one that never became ready (its condition last changed within 30 s of its start)
        // does not.
        let mut flapped = pod("b", 3600.0, None);
        flapped.ready = Some(Readiness {
            ready: false,
            since: Some(NOW - 100.0),
        });
        assert_eq!(group(&flapped, Ok(&s), true, NOW), PodGroup::Ready);
        let never = pod("c", 3600.0, None);
        assert_eq!(
            group(&never, Ok(&s), true, NOW),
            PodGroup::Unready("never ready".into())
        );
    }

    #[test]
    fn pending_deleting_and_failed_pods() {
        let mut pending = pod("p", 5.0, None);
        pending.phase = "Pending".into();
        let mut deleting = pod("d", 3600.0, Some(3000.0));
        deleting.deleting = true;
        let mut failed = pod("f", 3600.0, Some(3000.0));
        failed.phase = "Failed".into();
        let s = PodSample {
            value: 1.0,
            timestamp: NOW,
            window: 30.0,
        };
        assert_eq!(
            group(&pending, Ok(&s), false, NOW),
            PodGroup::Unready("pending".into())
        );
        assert!(matches!(
            group(&deleting, Ok(&s), false, NOW),
            PodGroup::Ignored(_)
        ));
        assert!(matches!(
            group(&failed, Ok(&s), false, NOW),
            PodGroup::Ignored(_)
        ));
    }

    #[test]
    fn missing_pods_at_100_percent_on_a_scale_down_and_0_on_a_scale_up() {
        let pods = [
            pod("a", 3600.0, Some(3000.0)),
            pod("b", 3600.0, Some(3000.0)),
            pod("c", 3600.0, Some(3000.0)),
            pod("d", 3600.0, Some(3000.0)),
        ];
        // Scale-down: two pods at 10 % of requests, two without metrics. Without the rule:
        // ratio 0.2 → ceil(0.2 × 2) = 1. With it: (0.05 + 0.05 + 0.5 + 0.5) / 2 = 0.55 of
        // requests, ratio 1.1 > 1: a reversal, so the count holds at 4.
        let r = cpu(&pods, &[usage("a", 0.05), usage("b", 0.05)], 4, 4);
        assert_eq!(proposes(&r, 4, 0.5), 4);
        assert!(r.note.contains("a reversal: holding at 4"), "{}", r.note);
        assert!(matches!(r.pods[3].group, PodGroup::Missing(_)));
        // Milder: three pods at 20 %, one missing: (0.3 + 0.5) / 2 = 0.4 of requests, ratio 0.8
        // over 4 pods → ceil(3.2) = 4 instead of ceil(0.4 × 3) = 2.
        let r = cpu(
            &pods,
            &[usage("a", 0.1), usage("b", 0.1), usage("c", 0.1)],
            4,
            4,
        );
        assert_eq!(proposes(&r, 4, 0.5), 4);
        // Scale-up: three pods at 100 %, one missing counted at 0: 1.5 / 2 = 0.75, ratio 1.5
        // over 4 pods → 6 (not 8).
        let r = cpu(
            &pods,
            &[usage("a", 0.5), usage("b", 0.5), usage("c", 0.5)],
            4,
            4,
        );
        assert_eq!(proposes(&r, 4, 0.5), 6);
        assert!(
            r.note.contains("missing counted at 0 on a scale-up"),
            "{}",
            r.note
        );
    }

    #[test]
    fn no_metric_at_all_is_no_data_and_a_missing_request_too() {
        let pods = [pod("a", 3600.0, Some(3000.0))];
        let r = cpu(&pods, &[], 1, 1);
        assert!(r.sample.value().is_none());
        let mut no_request = pod("b", 3600.0, Some(3000.0));
        no_request.containers[0].requests.cpu = None;
        let r = cpu(&[no_request], &[usage("b", 0.1)], 1, 1);
        match &r.sample {
            Sample::NoData { reason } => assert!(reason.contains("has no cpu request"), "{reason}"),
            other => panic!("{other:?}"),
        }
        let r = cpu(&[], &[], 1, 1);
        assert!(r.sample.value().is_none());
    }

    fn query(kind: Option<PodsMetricKind>) -> PodsQuery {
        PodsQuery {
            metric: "http_requests_total".into(),
            port: 8080,
            path: "/metrics".into(),
            labels: BTreeMap::new(),
            kind,
        }
    }

    const EXPOSITION: &str = "\
# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{code=\"200\"} 1000
http_requests_total{code=\"500\"} 10
# TYPE queue_depth gauge
queue_depth 7
process_cpu_seconds_total 12.5
";

    #[test]
    fn picking_sums_series_and_knows_counters() {
        assert_eq!(pick(EXPOSITION, &query(None)), Ok((1010.0, true)));
        let mut q = query(None);
        q.labels.insert("code".into(), "500".into());
        assert_eq!(pick(EXPOSITION, &q), Ok((10.0, true)));
        q.metric = "queue_depth".into();
        q.labels.clear();
        assert_eq!(pick(EXPOSITION, &q), Ok((7.0, false)));
        // Untyped, but named like a counter.
        q.metric = "process_cpu_seconds_total".into();
        assert_eq!(pick(EXPOSITION, &q), Ok((12.5, true)));
        q.kind = Some(PodsMetricKind::Gauge);
        assert_eq!(pick(EXPOSITION, &q), Ok((12.5, false)));
        q.metric = "absent".into();
        assert_eq!(
            pick(EXPOSITION, &q),
            Err("no series absent in the exposition".into())
        );
    }

    #[test]
    fn counters_become_rates_and_resets_are_increases() {
        assert!(rate(None, 10.0, 5.0).unwrap_err().contains("first scrape"));
        assert_eq!(rate(Some((0.0, 100.0)), 10.0, 150.0), Ok(5.0));
        // A restart: the counter fell from 150 to 20, so 20 requests in the interval.
        assert_eq!(rate(Some((10.0, 150.0)), 20.0, 20.0), Ok(2.0));
        assert!(rate(Some((10.0, 1.0)), 10.0, 2.0).is_err());
    }

    #[test]
    fn scraped_rates_with_a_missing_pod() {
        // Three pods at 40 requests/s per pod against 50 per replica; c not scraped yet (its
        // first scrape), d pending.
        let mut d = pod("d", 5.0, None);
        d.phase = "Pending".into();
        let pods = [
            pod("a", 3600.0, Some(3000.0)),
            pod("b", 3600.0, Some(3000.0)),
            pod("c", 30.0, Some(10.0)),
            d,
        ];
        let values: HashMap<String, Result<f64, String>> = [
            ("a".to_string(), Ok(40.0)),
            ("b".to_string(), Ok(40.0)),
            (
                "c".to_string(),
                Err("first scrape of this pod: no rate yet".to_string()),
            ),
        ]
        .into();
        let r = pods_reading(Target::PerReplica(50.0), &pods, &values, 4, 3, NOW);
        // Ratio 0.8 < 1: c counts at the target (50), d is left out: 130 in total over 3 pods.
        assert_eq!(r.sample.value(), Some(130.0));
        assert_eq!(r.pods[3].group, PodGroup::Unready("pending".into()));
        assert!(
            r.note
                .starts_with("4 pods: 2 with a metric, 1 unready, 1 missing"),
            "{}",
            r.note
        );
    }
}
