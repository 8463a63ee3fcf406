//! The Prometheus client's cost, against a real Prometheus on 127.0.0.1:
//!
//! - added latency: the median of many instant queries through [`PrometheusClient::instant`]
//!   against a bare reqwest GET of the same URL (same connection pool settings, keep-alive);
//! - decoding: a 7-day range at a 60 s step (about ten thousand points) through
//!   [`decode_range`], next to parsing the same body into a generic `serde_json::Value`.
//!
//! `cargo bench --bench prometheus` prints a table of medians. Under `cargo test` (no `--bench`
//! argument) it only decodes a synthetic answer once, to keep the test run short. Without
//! `/usr/bin/prometheus` it says so and stops.

#[path = "../tests/support/mod.rs"]
mod support;

use setpoint::prometheus::{PrometheusClient, PrometheusConfig, decode_range};
use std::time::{Duration, Instant};
use support::prometheus::{self as prom, Options, Prometheus, Series};

/// Instant queries timed per method.
const INSTANT_RUNS: usize = 1000;
/// Range decodes timed.
const DECODE_RUNS: usize = 60;
/// Range queries timed end to end.
const RANGE_RUNS: usize = 20;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        smoke();
        return;
    }
    if !prom::available("benches/prometheus") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench());
}

/// A cheap check that the benchmark's decoding path works, for `cargo test --all-targets`.
fn smoke() {
    let body = synthetic_matrix(10_080);
    let r = decode_range("q", body.as_bytes()).unwrap();
    assert_eq!(r.series[0].points.len(), 10_080);
    println!("benches/prometheus: smoke run only; `cargo bench --bench prometheus` measures");
}

async fn bench() {
    let now = support::unix_now() as i64;
    let end = (now - 3600) / 60 * 60;
    let start = end - 7 * 86_400;
    let points: Vec<(i64, f64)> = (start..=end)
        .step_by(60)
        .map(|t| (t, ((t / 60) % 1440) as f64 * 1.25))
        .collect();
    let setup = Instant::now();
    let server = Prometheus::start(Options {
        backfill: vec![Series {
            name: "setpoint_bench".into(),
            labels: vec![("job".into(), "bench".into())],
            points,
        }],
        ..Options::default()
    });
    println!(
        "Prometheus {} with 7 days backfilled, ready in {:.1?}",
        server.url(),
        setup.elapsed()
    );

    let client = PrometheusClient::new(&PrometheusConfig::new(server.url())).unwrap();
    let raw = reqwest::Client::new();
    let mut rows: Vec<Row> = Vec::new();

    // Instant query: a fixed time in the backfilled history, so every answer is the same.
    let query = "setpoint_bench";
    let at = (start + 3 * 86_400) as f64;
    let mut url = client.query_url().clone();
    url.query_pairs_mut()
        .append_pair("query", query)
        .append_pair("time", &at.to_string());
    let body = raw
        .get(url.clone())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let instant_bytes = body.len();

    // Warm both connection pools, then alternate blocks so that drift hits both alike.
    for _ in 0..50 {
        raw.get(url.clone())
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        client.instant(query, Some(at)).await.unwrap();
    }
    let mut bare = Vec::with_capacity(INSTANT_RUNS);
    let mut ours = Vec::with_capacity(INSTANT_RUNS);
    for _ in 0..INSTANT_RUNS / 50 {
        for _ in 0..50 {
            let t = Instant::now();
            let b = raw
                .get(url.clone())
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            bare.push(t.elapsed());
            std::hint::black_box(b);
        }
        for _ in 0..50 {
            let t = Instant::now();
            let r = client.instant(query, Some(at)).await.unwrap();
            ours.push(t.elapsed());
            std::hint::black_box(r);
        }
    }
    let bare_median = median(&mut bare);
    let ours_median = median(&mut ours);
    rows.push(Row::new(
        "instant: bare reqwest GET + body",
        &mut bare,
        instant_bytes,
    ));
    rows.push(Row::new(
        "instant: PrometheusClient::instant",
        &mut ours,
        instant_bytes,
    ));

    // Range query: 7 days at 60 s.
    let mut range_url = client.range_url().clone();
    range_url
        .query_pairs_mut()
        .append_pair("query", query)
        .append_pair("start", &start.to_string())
        .append_pair("end", &end.to_string())
        .append_pair("step", "60");
    let body = raw
        .get(range_url.clone())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let decoded = decode_range(query, &body).unwrap();
    let n_points = decoded.series[0].points.len();

    let mut decode = timed(DECODE_RUNS, || {
        std::hint::black_box(decode_range(query, &body).unwrap());
    });
    let mut generic = timed(DECODE_RUNS, || {
        std::hint::black_box(serde_json::from_slice::<serde_json::Value>(&body).unwrap());
    });
    let mut bare_range = Vec::new();
    let mut ours_range = Vec::new();
    for _ in 0..RANGE_RUNS {
        let t = Instant::now();
        let b = raw
            .get(range_url.clone())
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        bare_range.push(t.elapsed());
        std::hint::black_box(b);
        let t = Instant::now();
        let r = client
            .range(query, start as f64, end as f64, Duration::from_secs(60))
            .await
            .unwrap();
        ours_range.push(t.elapsed());
        std::hint::black_box(r);
    }
    rows.push(Row::new(
        "range 7d/60s: decode_range (typed)",
        &mut decode,
        body.len(),
    ));
    rows.push(Row::new(
        "range 7d/60s: serde_json::Value (reference)",
        &mut generic,
        body.len(),
    ));
    rows.push(Row::new(
        "range 7d/60s: bare reqwest GET + body",
        &mut bare_range,
        body.len(),
    ));
    rows.push(Row::new(
        "range 7d/60s: PrometheusClient::range",
        &mut ours_range,
        body.len(),
    ));

    println!();
    println!(
        "{:<46} {:>6} {:>12} {:>12} {:>10}",
        "what", "runs", "median", "p90", "body"
    );
    for r in &rows {
        println!(
            "{:<46} {:>6} {:>12} {:>12} {:>9}B",
            r.name,
            r.runs,
            show(r.median),
            show(r.p90),
            r.bytes
        );
    }
    println!();
    println!(
        "client's added latency per instant query (median difference): {}",
        show_signed(ours_median.as_secs_f64() - bare_median.as_secs_f64())
    );
    let per_point = median(&mut decode).as_secs_f64() / n_points as f64;
    println!(
        "range decode: {n_points} points, {} per point, {:.0} MB/s",
        show(Duration::from_secs_f64(per_point)),
        body.len() as f64 / median(&mut decode).as_secs_f64() / 1e6
    );
    drop(server);
}

struct Row {
    name: &'static str,
    runs: usize,
    median: Duration,
    p90: Duration,
    bytes: usize,
}

impl Row {
    fn new(name: &'static str, times: &mut [Duration], bytes: usize) -> Row {
        times.sort();
        Row {
            name,
            runs: times.len(),
            median: median(times),
            p90: times[(times.len() * 9 / 10).min(times.len() - 1)],
            bytes,
        }
    }
}

fn timed(runs: usize, mut f: impl FnMut()) -> Vec<Duration> {
    f();
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect()
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn show(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else if s >= 1e-6 {
        format!("{:.1} µs", s * 1e6)
    } else {
        format!("{:.0} ns", s * 1e9)
    }
}

fn show_signed(s: f64) -> String {
    let sign = if s < 0.0 { "-" } else { "+" };
    format!("{sign}{}", show(Duration::from_secs_f64(s.abs())))
}

/// A `/api/v1/query_range` answer with one series of `n` points, as Prometheus writes it.
fn synthetic_matrix(n: usize) -> String {
    let mut s = String::from(
        r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"job":"x"},"values":["#,
    );
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            "[{},\"{}\"]",
            1_700_000_000 + 60 * i,
            i as f64 * 0.5
        ));
    }
    s.push_str("]}]}}");
    s
}
