//! The vertical part's usage reads from Prometheus (`UsageReader::read`): one instant query per
//! running pod, container and resource, run concurrently with a bound on the queries in flight.
//!
//! - Against a real Prometheus (Debian's `prometheus` package) with backfilled cAdvisor series
//!   for 20 pods × 2 containers: every reading arrives, in the same order as one query after
//!   another would give, and a pod without series gives problems, not samples.
//! - Against a scripted slow server: never more than `USAGE_QUERIES_IN_FLIGHT` queries at once.
//! - `read_timing` (ignored: run it by hand) prints the wall time of one read:
//!   `cargo test --test usage_read -- --ignored --nocapture read_timing`.
//!
//! Everything listens on 127.0.0.1 and is bounded in time; the servers stop when a test ends.
//! Without `/usr/bin/prometheus` the real-server tests print why they are skipped, except under
//! `CI=true`, where they fail.

mod support;

use setpoint::cluster::KubeCluster;
use setpoint::engine::pod::ContainerResources;
use setpoint::engine::pod::Pod;
use setpoint::engine::quantity::Resource;
use setpoint::policy::{self, Policy};
use setpoint::prometheus::{PrometheusClient, PrometheusConfig};
use setpoint::tick::usage::{USAGE_QUERIES_IN_FLIGHT, UsageRead, UsageReader, UsageSource};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::TempDir;
use support::http::{HttpServer, Response};
use support::kube::{KubeStandIn, World};
use support::prometheus::{self as prom, Options, Prometheus, Series};

const TEST_LIMIT: Duration = Duration::from_secs(90);
const NS: &str = "demo";
const PODS: usize = 20;
const CONTAINERS: [&str; 2] = ["app", "proxy"];

const POLICY: &str = "\
apiVersion: setpoint.dev/v1alpha1
kind: ScalingPolicy
metadata: {name: web, namespace: demo}
spec:
  target: {kind: Deployment, name: web}
  vertical:
    containers: [app, proxy]
    resources: [cpu, memory]
    min: {cpu: 10m, memory: 16Mi}
    max: {cpu: \"4\", memory: 8Gi}
";

fn policy() -> Policy {
    policy::parse(POLICY, Path::new("web.yaml")).unwrap()
}

fn pod_name(i: usize) -> String {
    format!("web-{i:02}")
}

/// A running pod with both containers (no requests: the reader does not look at them).
fn running(name: &str) -> Pod {
    Pod {
        name: name.into(),
        phase: "Running".into(),
        containers: CONTAINERS
            .iter()
            .map(|c| ContainerResources {
                name: (*c).into(),
                ..ContainerResources::default()
            })
            .collect(),
        ..Pod::default()
    }
}

/// The CPU (cores) and memory (bytes) pod `i`'s container `c` uses in the backfilled series.
fn usage(i: usize, c: usize) -> (f64, f64) {
    (
        0.05 * (i + 1) as f64 + 0.5 * c as f64,
        ((64 + 8 * i + 256 * c) << 20) as f64,
    )
}

/// cAdvisor's series for `PODS` pods: the CPU counter growing at [`usage`] cores, the memory
/// gauge at its bytes, one point every 15 s for 30 minutes up to `end`.
fn cadvisor(end: i64) -> Vec<Series> {
    let mut out = Vec::new();
    for i in 0..PODS {
        for (c, container) in CONTAINERS.iter().enumerate() {
            let labels = vec![
                ("namespace".to_string(), NS.to_string()),
                ("pod".to_string(), pod_name(i)),
                ("container".to_string(), container.to_string()),
            ];
            let (cpu, memory) = usage(i, c);
            let times: Vec<i64> = (end - 1800..=end).step_by(15).collect();
            out.push(Series {
                name: "container_cpu_usage_seconds_total".into(),
                labels: labels.clone(),
                points: times
                    .iter()
                    .map(|t| (*t, cpu * (t - (end - 1800)) as f64))
                    .collect(),
            });
            out.push(Series {
                name: "container_memory_working_set_bytes".into(),
                labels,
                points: times.iter().map(|t| (*t, memory)).collect(),
            });
        }
    }
    out
}

/// A real Prometheus holding [`cadvisor`] series up to a minute ago; and that time.
fn server() -> (Prometheus, f64) {
    let end = (support::unix_now() as i64 - 60) / 15 * 15;
    let server = Prometheus::start(Options {
        backfill: cadvisor(end),
        ..Options::default()
    });
    (server, end as f64)
}

fn client(url: &str) -> PrometheusClient {
    let mut c = PrometheusConfig::new(url);
    c.timeout = Duration::from_secs(5);
    c.retry.budget = Duration::from_secs(5);
    PrometheusClient::new(&c).expect("client")
}

async fn cluster(dir: &TempDir) -> (KubeStandIn, KubeCluster) {
    let api = KubeStandIn::start(World::default());
    let c = api.cluster(dir, NS).await;
    (api, c)
}

fn reader(url: &str) -> UsageReader {
    UsageReader::new(
        policy().vertical.as_ref().unwrap(),
        UsageSource::Prometheus(client(url)),
    )
}

/// (pod, container, resource) of each sample, in the read's order.
fn keys(read: &UsageRead) -> Vec<(String, String, Resource)> {
    read.samples
        .iter()
        .map(|s| (s.pod.clone(), s.container.clone(), s.resource))
        .collect()
}

#[tokio::test]
async fn every_reading_arrives_in_order_and_missing_series_are_problems() {
    if !prom::available("every_reading_arrives_in_order_and_missing_series_are_problems") {
        return;
    }
    support::bounded(TEST_LIMIT, async {
        let (server, at) = server();
        let dir = TempDir::new("usage-read");
        let (_api, c) = cluster(&dir).await;
        let mut pods: Vec<Pod> = (0..PODS).map(|i| running(&pod_name(i))).collect();
        // A pod without series (started after the last scrape), and one not running.
        pods.insert(3, running("web-new"));
        pods.push(Pod {
            phase: "Pending".into(),
            ..running("web-pending")
        });
        let mut reader = reader(server.url());
        let read = reader.read(&c, &pods, "app=web", at).await;

        assert_eq!(read.samples.len(), PODS * 2 * 2, "{:?}", read.problems);
        let mut expected = Vec::new();
        for i in 0..PODS {
            for c in CONTAINERS {
                for r in [Resource::Cpu, Resource::Memory] {
                    expected.push((pod_name(i), c.to_string(), r));
                }
            }
        }
        assert_eq!(keys(&read), expected, "pod, container, resource order");
        for s in &read.samples {
            let i: usize = s.pod["web-".len()..].parse().unwrap();
            let c = CONTAINERS.iter().position(|x| *x == s.container).unwrap();
            let (cpu, memory) = usage(i, c);
            match s.resource {
                Resource::Cpu => assert!((s.value - cpu).abs() < 1e-6, "{s:?}"),
                Resource::Memory => assert_eq!(s.value, memory, "{s:?}"),
            }
            assert_eq!(s.t, at);
        }
        // No data is no sample: four problems, in order.
        assert_eq!(read.problems.len(), 4, "{:?}", read.problems);
        for (p, want) in read.problems.iter().zip([
            "pod web-new container app cpu: ",
            "pod web-new container app memory: ",
            "pod web-new container proxy cpu: ",
            "pod web-new container proxy memory: ",
        ]) {
            assert!(p.starts_with(want), "{p:?} should start with {want:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn no_more_than_the_bound_of_queries_in_flight() {
    support::bounded(TEST_LIMIT, async {
        let now = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let prom = {
            let (now, most) = (now.clone(), most.clone());
            HttpServer::start(move |req| {
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(n, Ordering::SeqCst);
                // Slow enough for the client to have every query it may send in flight.
                std::thread::sleep(Duration::from_millis(40));
                now.fetch_sub(1, Ordering::SeqCst);
                let memory = req.target.contains("memory") || req.body.windows(6).any(|w| w == b"memory");
                let value = if memory { "1048576" } else { "0.25" };
                Response::json(
                    200,
                    format!(
                        r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1,"{value}"]}}]}}}}"#
                    ),
                )
            })
        };
        let dir = TempDir::new("usage-read");
        let (_api, c) = cluster(&dir).await;
        let pods: Vec<Pod> = (0..PODS).map(|i| running(&pod_name(i))).collect();
        let mut reader = reader(&prom.url());
        let started = Instant::now();
        let read = reader.read(&c, &pods, "app=web", 1.0).await;
        let took = started.elapsed();
        assert_eq!(read.samples.len(), PODS * 4, "{:?}", read.problems);
        assert!(read.problems.is_empty(), "{:?}", read.problems);
        assert!(
            read.samples
                .iter()
                .all(|s| (s.resource == Resource::Memory) == (s.value == 1048576.0)),
            "each answer goes with its own query"
        );
        let most = most.load(Ordering::SeqCst);
        eprintln!(
            "{} queries of 40 ms, at most {most} in flight: {took:?}",
            PODS * 4
        );
        assert!(
            (2..=USAGE_QUERIES_IN_FLIGHT).contains(&most),
            "{most} queries in flight at most (bound {USAGE_QUERIES_IN_FLIGHT})"
        );
    })
    .await;
}

/// The wall time of one read of 20 pods × 2 containers × 2 resources from a real Prometheus on
/// 127.0.0.1: the median (and range) of `SETPOINT_BENCH_RUNS` reads (default 15) after one
/// warm-up read.
#[tokio::test]
#[ignore = "a measurement: cargo test --test usage_read -- --ignored --nocapture read_timing"]
async fn read_timing() {
    if !prom::available("read_timing") {
        return;
    }
    let runs: usize = std::env::var("SETPOINT_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    support::bounded(Duration::from_secs(300), async {
        let (server, at) = server();
        let dir = TempDir::new("usage-read");
        let (_api, c) = cluster(&dir).await;
        let pods: Vec<Pod> = (0..PODS).map(|i| running(&pod_name(i))).collect();
        let mut reader = reader(server.url());
        let warm = reader.read(&c, &pods, "app=web", at).await;
        assert_eq!(warm.samples.len(), PODS * 4, "{:?}", warm.problems);
        let mut times = Vec::new();
        for _ in 0..runs {
            let started = Instant::now();
            let read = reader.read(&c, &pods, "app=web", at).await;
            times.push(started.elapsed());
            assert_eq!(read.samples.len(), PODS * 4);
        }
        times.sort();
        eprintln!(
            "one read of {} queries ({PODS} pods x 2 containers x 2 resources): median {:?}, \
             fastest {:?}, slowest {:?} ({runs} runs)",
            PODS * 4,
            times[times.len() / 2],
            times[0],
            times[times.len() - 1]
        );
    })
    .await;
}
