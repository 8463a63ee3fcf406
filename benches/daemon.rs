//! What `setpoint run` costs and how fast it reacts, end to end: the release binary against a
//! real Prometheus (Debian's package) scraping a live target, and the Kubernetes API stand-in of
//! tests/support/kube.rs, all on 127.0.0.1.
//!
//! 1. **Footprint**: 1,000 policies at 15 s intervals, each on its own Deployment (3 ready pods)
//!    and its own series `setpoint_demand{svc="p0042"}` at 240 (3 replicas at 80 per replica).
//!    Apply mode with a steady load: every tick reads the scale and the pods (from the daemon's
//!    watch cache: one list and one watch per kind, not a request per tick), queries Prometheus
//!    and decides, and nothing needs a patch. API requests per policy per tick are the stand-in's
//!    requests in the window over policies × ticks (watches, which stay open, count once when
//!    they are made). Once every
//!    policy has made a decision and one more interval has passed, the daemon's CPU time
//!    (utime + stime of /proc/PID/stat) and VmRSS are sampled every 10 s over the window; peak
//!    RSS is VmHWM at the end. Requests per second are counted by the stand-in and by Prometheus
//!    (`prometheus_http_requests_total` of `/api/v1/query`) over the same window.
//! 2. **Reaction**: with those policies still running, one policy's series steps between 240 and
//!    480 (3 and 6 replicas), each step at a random point of the policy's interval, and the time
//!    from Prometheus answering the new value to the stand-in receiving the `/scale` PATCH is
//!    taken; first for a policy at 15 s (one of the 1,000), then for one at 2 s (a file added to
//!    the folder after the footprint window). Scale-down stabilization and both cooldowns are 0;
//!    the `hpa` preset's rate limits (up: max(+100 %, +4 pods), down: -100 % per 15 s) allow
//!    3 → 6 and 6 → 3, so every step makes exactly one patch.
//!
//! `cargo bench --bench daemon` prints a Markdown table. Environment variables change the
//! defaults: `SETPOINT_BENCH_POLICIES` (1000), `SETPOINT_BENCH_PODS` (pods per Deployment, 3),
//! `SETPOINT_BENCH_WINDOW` (seconds of the footprint window, 180) and `SETPOINT_BENCH_STEPS`
//! (load steps per interval, 30). About 13 minutes with the defaults; a quick run:
//! `SETPOINT_BENCH_WINDOW=30 SETPOINT_BENCH_STEPS=4 cargo bench --bench daemon`.
//!
//! Under `cargo test` (no `--bench` argument) it only checks the generated policy: it loads, and
//! the engine makes one change per load step. Without `/usr/bin/prometheus` it says so and stops.

#[path = "../tests/support/mod.rs"]
mod support;

use setpoint::daemon::admin::Recommendations;
use setpoint::engine::{self, Observation, Sample, State};
use setpoint::policy::MetricQuery;
use setpoint::prometheus::{PrometheusClient, PrometheusConfig};
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::TempDir;
use support::daemon::{Daemon, http_get};
use support::http::ScrapeTarget;
use support::kube::{self as k, KubeStandIn, Scalable, World};
use support::prometheus::{self as prom, Options, Prometheus};

const NS: &str = "bench";
/// Demand one replica serves, in every policy.
const PER_REPLICA: f64 = 80.0;
/// The steady demand: 3 replicas.
const LOW: f64 = 240.0;
/// The stepped-up demand: 6 replicas.
const HIGH: f64 = 480.0;
/// Replicas at [`LOW`].
const REPLICAS: i64 = 3;
/// CPU and RSS are sampled this often.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// Interval of the 1,000 policies.
const INTERVAL: Duration = Duration::from_secs(15);
/// Interval of the fast policy of the second reaction run.
const FAST_INTERVAL: Duration = Duration::from_secs(2);
/// The fast policy's name (and its Deployment's and series').
const FAST: &str = "fast";
/// Prometheus scrapes the live target this often.
const SCRAPE_EVERY: Duration = Duration::from_millis(500);

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        smoke();
        return;
    }
    if !prom::available("benches/daemon") {
        return;
    }
    bench(&Settings::from_env());
}

struct Settings {
    policies: usize,
    pods: usize,
    window: Duration,
    steps: usize,
}

impl Settings {
    fn from_env() -> Settings {
        let var = |name: &str, default: u64| -> u64 {
            match std::env::var(name) {
                Ok(v) => v
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}={v:?}: expected a whole number")),
                Err(_) => default,
            }
        };
        Settings {
            policies: var("SETPOINT_BENCH_POLICIES", 1000).max(1) as usize,
            pods: var("SETPOINT_BENCH_PODS", REPLICAS as u64) as usize,
            window: Duration::from_secs(var("SETPOINT_BENCH_WINDOW", 180).max(10)),
            steps: var("SETPOINT_BENCH_STEPS", 30).max(1) as usize,
        }
    }
}

/// The name of policy `i`, of its Deployment and of its series' `svc` label.
fn name(i: usize) -> String {
    format!("p{i:04}")
}

/// A policy on Deployment `name` reading `setpoint_demand{svc="name"}` at 80 per replica: the
/// `hpa` preset with scale-down stabilization and both cooldowns at 0.
fn policy_text(name: &str, interval: Duration) -> String {
    format!(
        "apiVersion: setpoint.dev/v1alpha1\nkind: ScalingPolicy\nmetadata: {{name: {name}}}\n\
         spec:\n  target: {{kind: Deployment, name: {name}}}\n  interval: {}s\n  \
         horizontal:\n    preset: hpa\n    replicas: {{min: 1, max: 50}}\n    metrics:\n      \
         - {{name: demand, prometheus: 'setpoint_demand{{svc=\"{name}\"}}', targetPerReplica: {PER_REPLICA}}}\n    \
         scaleUp: {{cooldown: 0s}}\n    scaleDown: {{stabilization: 0s, cooldown: 0s}}\n",
        interval.as_secs()
    )
}

/// The live target's exposition: one `setpoint_demand` gauge per series.
fn exposition(series: &[(String, f64)]) -> String {
    let mut s = String::from("# TYPE setpoint_demand gauge\n");
    for (svc, v) in series {
        writeln!(s, "setpoint_demand{{svc=\"{svc}\"}} {v}").unwrap();
    }
    s
}

/// For `cargo test --all-targets`: the generated policy loads as meant, and under the engine
/// each load step makes one change, in both directions.
fn smoke() {
    let dir = TempDir::new("bench-daemon");
    let path = dir.write("p0007.yaml", policy_text(&name(7), INTERVAL));
    let p = setpoint::policy::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.name, "p0007");
    assert_eq!(p.target.name, "p0007");
    assert_eq!(p.interval, 15.0);
    assert!(
        matches!(&p.queries[..], [MetricQuery::Prometheus { query, .. }] if query == "setpoint_demand{svc=\"p0007\"}"),
        "{:?}",
        p.queries
    );
    let h = p.horizontal.as_ref().unwrap();
    let mut state = State::conservative(REPLICAS as u32, 0.0);
    let mut current = REPLICAS as u32;
    for (i, (demand, want)) in [(LOW, 3), (HIGH, 6), (LOW, 3), (HIGH, 6), (LOW, 3)]
        .into_iter()
        .enumerate()
    {
        let obs = Observation {
            current_replicas: current,
            ready_replicas: REPLICAS as u32,
            samples: vec![Sample::Value { value: demand }],
        };
        // Steps 5 s apart: closer than any interval the benchmark uses.
        let d = engine::tick(h, &mut state, &obs, 5.0 * (i + 1) as f64);
        assert_eq!(d.desired_replicas, want, "step {i}: {d:?}");
        current = d.desired_replicas;
    }
    let body = exposition(&[("p0000".into(), LOW), ("p0001".into(), HIGH)]);
    assert_eq!(body.lines().count(), 3);
    println!("benches/daemon: smoke run only; `cargo bench --bench daemon` measures");
}

fn bench(s: &Settings) {
    let setup = Instant::now();
    let names: Vec<String> = (0..s.policies).map(name).collect();
    let mut series: Vec<(String, f64)> = names.iter().map(|n| (n.clone(), LOW)).collect();
    series.push((FAST.into(), LOW));
    let target = ScrapeTarget::start(&exposition(&series));
    let server = Prometheus::start(Options {
        scrape_target: Some(target.address()),
        scrape_interval: SCRAPE_EVERY,
        // The daemon keeps a connection per policy (each policy has its own HTTP client), and
        // past Prometheus's default of 512 the rest wait, unanswered: room for all of them.
        max_connections: Some(s.policies as u32 + 512),
        ..Options::default()
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = PrometheusClient::new(&PrometheusConfig::new(server.url())).unwrap();
    let mut demand = Demand {
        target,
        server: &server,
        client,
        rt,
        series,
    };
    demand.wait_visible(FAST, LOW);

    let mut scalables = Vec::new();
    let mut pods = Vec::new();
    for n in names.iter().map(String::as_str).chain([FAST]) {
        scalables.push(Scalable::deployment(NS, n, REPLICAS));
        for j in 0..s.pods {
            pods.push(k::ready_pod(NS, &format!("{n}-{j}"), n));
        }
    }
    let api = KubeStandIn::start(World {
        scalables,
        pods,
        ..World::default()
    });
    let dir = TempDir::new("bench-daemon");
    let kubeconfig = api.kubeconfig(&dir, NS);
    let folder = dir.path().join("policies");
    std::fs::create_dir_all(&folder).unwrap();
    for n in &names {
        std::fs::write(folder.join(format!("{n}.yaml")), policy_text(n, INTERVAL)).unwrap();
    }
    println!(
        "set up in {:.1?}: Prometheus {} scraping {} series every {:?}, stand-in with {} \
         Deployments and {} pods, {} policy files",
        setup.elapsed(),
        server.url(),
        demand.series.len(),
        SCRAPE_EVERY,
        s.policies + 1,
        (s.policies + 1) * s.pods,
        s.policies
    );

    // 1. Footprint.
    let mut daemon = start(&dir, &kubeconfig, &folder, server.url());
    let started = Instant::now();
    let limit = INTERVAL * 4 + Duration::from_secs(30);
    let mut r = recommendations(&daemon);
    while r
        .as_ref()
        .is_none_or(|r| r.recommendations.len() < s.policies)
    {
        assert!(
            started.elapsed() < limit,
            "not every policy decided within {limit:?}: {} of {}; log:\n{}",
            r.map_or(0, |r| r.recommendations.len()),
            s.policies,
            daemon.log_tail()
        );
        std::thread::sleep(Duration::from_secs(1));
        r = recommendations(&daemon);
    }
    let all_decided = started.elapsed();
    let r = r.unwrap();
    let failing = r.failing.len();
    let changes = r
        .recommendations
        .iter()
        .filter(|r| {
            r.decision
                .as_ref()
                .is_some_and(|d| d.desired_replicas != d.current_replicas)
        })
        .count();
    println!(
        "every policy decided {all_decided:.1?} after start ({failing} failing, {changes} \
         wanting a change, {} without data); settling for one interval",
        without_data(&r)
    );
    std::thread::sleep(INTERVAL);

    let pid = daemon.pid();
    let clk_tck = clock_ticks_per_second();
    let samples = (s.window.as_secs_f64() / SAMPLE_EVERY.as_secs_f64()).round() as u32;
    let queries0 = prometheus_queries(&server);
    let mut cores = Vec::new();
    let mut rss = Vec::new();
    let t0 = Instant::now();
    let (cpu0, _) = cpu_ticks(pid);
    let mut last = (t0, cpu0);
    for i in 1..=samples {
        sleep_until(t0 + SAMPLE_EVERY * i);
        let now = Instant::now();
        let (cpu, _) = cpu_ticks(pid);
        let dt = (now - last.0).as_secs_f64();
        cores.push((cpu - last.1) as f64 / clk_tck / dt);
        rss.push(status_field(pid, "VmRSS") as f64);
        last = (now, cpu);
    }
    let t1 = Instant::now();
    let window = (t1 - t0).as_secs_f64();
    let (cpu1, (utime, stime)) = cpu_ticks(pid);
    let queries1 = prometheus_queries(&server);
    let hwm = status_field(pid, "VmHWM");
    let threads = status_field(pid, "Threads");
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    let to_prometheus = established_to(port_of(server.url()));
    let to_api = established_to(port_of(&api.url()));
    let no_data = recommendations(&daemon).map(|r| without_data(&r));
    let requests: Vec<k::Received> = api
        .requests()
        .into_iter()
        .filter(|r| r.received_at >= t0 && r.received_at <= t1)
        .collect();
    let count = |f: &dyn Fn(&k::Received) -> bool| requests.iter().filter(|r| f(r)).count();
    let is_get_scale = |r: &k::Received| r.method == "GET" && r.uri.contains("/scale");
    let is_get_pods = |r: &k::Received| r.method == "GET" && r.uri.contains("/pods");
    let is_patch = |r: &k::Received| r.method == "PATCH" && r.uri.contains("/scale");
    let get_scale = count(&is_get_scale);
    let get_pods = count(&is_get_pods);
    let patches = count(&is_patch);
    let other = requests.len() - get_scale - get_pods - patches;
    // The other requests by method and path, most made first.
    let mut others = std::collections::BTreeMap::<String, usize>::new();
    for r in &requests {
        let path = r.uri.split('?').next().unwrap_or_default();
        if !(is_get_scale(r) || is_get_pods(r) || is_patch(r)) {
            *others.entry(format!("{} {path}", r.method)).or_default() += 1;
        }
    }
    let mut others: Vec<(String, usize)> = others.into_iter().collect();
    others.sort_by_key(|o| std::cmp::Reverse(o.1));
    let watches = count(&|r| r.uri.contains("watch=1") || r.uri.contains("watch=true"));
    let rate = |n: usize| n as f64 / window;
    let ticks = samples as f64 * SAMPLE_EVERY.as_secs_f64() / INTERVAL.as_secs_f64();
    println!(
        "window {window:.0} s ({samples} samples, about {ticks:.0} ticks per policy): CPU {} \
         ticks (user {utime}, system {stime} since start) at {clk_tck} per second; {threads} \
         threads, {fds} open file descriptors, {to_prometheus} connections to Prometheus and \
         {to_api} to the stand-in; {} policies without data at the end",
        cpu1 - cpu0,
        no_data.map_or("?".into(), |n| n.to_string())
    );

    // 2. Reaction, at 15 s (policy p0000, among the others) and at 2 s (a file added now).
    let mut rng = Rng::seeded();
    let slow = reaction(&mut demand, &api, &names[0], INTERVAL, s.steps, &mut rng);
    support::daemon::write_policy(&folder, "fast.yaml", &policy_text(FAST, FAST_INTERVAL));
    let loaded = Instant::now();
    while recommendations(&daemon)
        .is_none_or(|r| !r.recommendations.iter().any(|d| d.policy == FAST))
    {
        assert!(
            loaded.elapsed() < Duration::from_secs(30),
            "the fast policy was not loaded; log:\n{}",
            daemon.log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let fast = reaction(&mut demand, &api, FAST, FAST_INTERVAL, s.steps, &mut rng);
    let took = daemon.stop_within(Duration::from_secs(20));
    let log = daemon.log();
    let warnings = log.lines().filter(|l| l.contains("WARN")).count();
    let errors = log.lines().filter(|l| l.contains("ERROR")).count();

    println!();
    println!(
        "`setpoint run`, {} policies at {} s, {} ready pods per Deployment, apply mode with a \
         steady load (nothing to patch), {window:.0} s window:",
        s.policies,
        INTERVAL.as_secs(),
        s.pods
    );
    println!();
    println!("| measure | value | aim |");
    println!("|---|---:|---|");
    println!(
        "| CPU, median of {samples} 10 s samples | {} of one core | under 5 % |",
        percent(median(&cores))
    );
    println!(
        "| CPU, highest 10 s sample | {} of one core | |",
        percent(max(&cores))
    );
    println!(
        "| RSS (VmRSS), median of the samples | {} | |",
        mib(median(&rss))
    );
    println!(
        "| peak RSS (VmHWM, since start) | {} | under 50 MiB |",
        mib(hwm as f64)
    );
    println!(
        "| requests/s to the API stand-in | {:.1} ({:.1} GET scale, {:.1} list pods, {:.1} \
         PATCH scale, {:.1} other) | |",
        rate(requests.len()),
        rate(get_scale),
        rate(get_pods),
        rate(patches),
        rate(other)
    );
    println!(
        "| API requests per policy per tick | {:.4} ({} requests in {ticks:.0} ticks of {} \
         policies; {watches} watches made) | at most 0.05 |",
        requests.len() as f64 / (ticks * s.policies as f64),
        requests.len(),
        s.policies
    );
    println!(
        "| queries/s to Prometheus | {} | |",
        match (queries0, queries1) {
            (Some(a), Some(b)) => format!("{:.1}", (b - a) / window),
            _ => "unknown".into(),
        }
    );
    for (interval, times) in [(INTERVAL, &slow), (FAST_INTERVAL, &fast)] {
        println!(
            "| reaction, {} s interval: median / p99 of {} steps{} | {} / {} | |",
            interval.as_secs(),
            times.reacted.len(),
            if times.missed > 0 {
                format!(" ({} missed)", times.missed)
            } else {
                String::new()
            },
            seconds(median(&times.reacted)),
            seconds(p99(&times.reacted))
        );
    }
    println!();
    println!(
        "p99 is the nearest rank: with fewer than 100 steps it is the slowest step. All \
         policies decided {:.1} s after start; SIGTERM took {took:.1?}; the log (warn and \
         up) has {warnings} warnings and {errors} errors.",
        all_decided.as_secs_f64()
    );
    if !others.is_empty() {
        let list: Vec<String> = others.iter().map(|(r, n)| format!("{n} × {r}")).collect();
        println!("The other requests in the window: {}.", list.join(", "));
    }
    drop(api);
    drop(demand);
    drop(server);
}

/// Policies whose last decision lacked a metric.
fn without_data(r: &Recommendations) -> usize {
    r.recommendations
        .iter()
        .filter(|r| {
            r.decision
                .as_ref()
                .is_some_and(|d| !d.explanation.missing.is_empty())
        })
        .count()
}

/// The series Prometheus scrapes, and a client that asks it.
struct Demand<'a> {
    target: ScrapeTarget,
    server: &'a Prometheus,
    client: PrometheusClient,
    rt: tokio::runtime::Runtime,
    series: Vec<(String, f64)>,
}

impl Demand<'_> {
    /// Sets series `svc` to `value` and returns when Prometheus answers it.
    fn set(&mut self, svc: &str, value: f64) -> Instant {
        let s = self
            .series
            .iter_mut()
            .find(|(n, _)| n == svc)
            .expect("a known series");
        s.1 = value;
        self.target.set(&exposition(&self.series));
        self.wait_visible(svc, value)
    }

    /// Polls the instant query every 20 ms until it answers `value`; returns that moment.
    fn wait_visible(&self, svc: &str, value: f64) -> Instant {
        let query = format!("setpoint_demand{{svc=\"{svc}\"}}");
        let start = Instant::now();
        self.rt.block_on(async {
            loop {
                if let Sample::Value { value: v } = self.client.sample(&query, None, false).await
                    && v == value
                {
                    return Instant::now();
                }
                if start.elapsed() > Duration::from_secs(30) {
                    let mut why = String::new();
                    for q in [
                        query.as_str(),
                        "up",
                        "scrape_duration_seconds",
                        "scrape_samples_scraped",
                    ] {
                        let s = self.client.sample(q, None, false).await;
                        write!(why, "\n  {q} = {s:?}").unwrap();
                    }
                    panic!(
                        "{query} = {value} not visible in {} within 30 s; {} scrapes:{why}",
                        self.server.url(),
                        self.target.scrapes()
                    );
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    }
}

/// Reaction times in seconds, and the steps that got no patch in time.
struct Reactions {
    reacted: Vec<f64>,
    missed: usize,
}

/// `steps` load steps of `svc` between [`LOW`] and [`HIGH`], each at a random point of
/// `interval` after the previous patch: the time from the step being visible in Prometheus to
/// the stand-in receiving the PATCH of Deployment `svc`'s scale.
fn reaction(
    demand: &mut Demand,
    api: &KubeStandIn,
    svc: &str,
    interval: Duration,
    steps: usize,
    rng: &mut Rng,
) -> Reactions {
    let index = api
        .world()
        .scalables
        .iter()
        .position(|s| s.name == svc)
        .expect("a Deployment per series");
    let path = format!("/deployments/{svc}/scale");
    let mut out = Reactions {
        reacted: Vec::new(),
        missed: 0,
    };
    let mut level = LOW;
    let run = Instant::now();
    for step in 0..steps {
        std::thread::sleep(interval.mul_f64(rng.unit()));
        level = if level == LOW { HIGH } else { LOW };
        let want = (level / PER_REPLICA) as i64;
        let visible = demand.set(svc, level);
        let limit = interval * 2 + Duration::from_secs(10);
        let mut patched = false;
        while visible.elapsed() < limit {
            if api.world().scalables[index].replicas == want {
                patched = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if !patched {
            println!("step {step} to {level}: no patch to {want} within {limit:?}");
            out.missed += 1;
            // Put the count where the next step expects it.
            let name = api.world().scalables[index].name.clone();
            api.world()
                .update_scalable(NS, &name, |s| s.replicas = want);
            continue;
        }
        let at = api
            .requests()
            .into_iter()
            .rev()
            .find(|r| r.method == "PATCH" && r.uri.contains(&path))
            .expect("the PATCH that changed the count")
            .received_at;
        out.reacted.push(if at >= visible {
            (at - visible).as_secs_f64()
        } else {
            -(visible - at).as_secs_f64()
        });
    }
    println!(
        "{svc} at {interval:?}: {} steps in {:.0?}, reaction median {}",
        steps,
        run.elapsed(),
        seconds(median(&out.reacted))
    );
    out
}

/// `setpoint run` (the release binary) on the policies of `policies`, at warn level.
fn start(dir: &TempDir, kubeconfig: &Path, policies: &Path, prometheus: &str) -> Daemon {
    let args = [
        "--policies",
        policies.to_str().unwrap(),
        "--prometheus",
        prometheus,
        "--no-leader-election",
        "--log-level",
        "warn",
    ];
    Daemon::start(
        env!("CARGO_BIN_EXE_setpoint"),
        dir,
        "setpoint-bench",
        kubeconfig,
        &args,
    )
}

/// `/recommendations`, when it answers.
fn recommendations(d: &Daemon) -> Option<Recommendations> {
    let (code, body) = d.get("/recommendations")?;
    (code == 200).then(|| serde_json::from_str(&body).expect("/recommendations as JSON"))
}

/// The port of `http://127.0.0.1:PORT`.
fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("http://127.0.0.1:PORT")
}

/// Established TCP connections to 127.0.0.1:`port` from this machine (/proc/net/tcp).
fn established_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let remote = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[2] == remote && f[3] == "01"
        })
        .count()
}

/// Instant queries Prometheus has answered so far (from its own `/metrics`).
fn prometheus_queries(server: &Prometheus) -> Option<f64> {
    let (_, body) = http_get(port_of(server.url()), "/metrics")?;
    body.lines()
        .filter(|l| {
            l.starts_with("prometheus_http_requests_total{")
                && l.contains("handler=\"/api/v1/query\"")
        })
        .map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// utime + stime of `pid` in clock ticks, and the two apart.
fn cpu_ticks(pid: u32) -> (u64, (u64, u64)) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // Fields after the command name (which may hold spaces and parentheses): state is field 3,
    // utime 14, stime 15.
    let rest = &stat[stat.rfind(')').expect("(comm)") + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields[11].parse().unwrap();
    let stime: u64 = fields[12].parse().unwrap();
    (utime + stime, (utime, stime))
}

/// The number of a field of /proc/PID/status (kB for the memory fields).
fn status_field(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

/// `getconf CLK_TCK` (100 on Linux).
fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

fn sleep_until(t: Instant) {
    if let Some(d) = t.checked_duration_since(Instant::now()) {
        std::thread::sleep(d);
    }
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

fn median(v: &[f64]) -> f64 {
    let v = sorted(v);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Nearest rank.
fn p99(v: &[f64]) -> f64 {
    let v = sorted(v);
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = (0.99 * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::max)
}

fn percent(cores: f64) -> String {
    format!("{:.1} %", cores * 100.0)
}

fn mib(kib: f64) -> String {
    format!("{:.1} MiB", kib / 1024.0)
}

fn seconds(s: f64) -> String {
    format!("{s:.2} s")
}

/// xorshift64*, seeded from the clock: where in the interval each step lands.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Rng(nanos | 1)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}
