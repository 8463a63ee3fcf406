//! The Prometheus client against a real Prometheus server (Debian's `prometheus` package) and,
//! for failures a real server does not produce on demand, against scripted HTTP servers.
//!
//! Everything listens on 127.0.0.1 only. Every test is bounded in time, and every server it starts
//! is stopped when the test ends, pass or fail. Without `/usr/bin/prometheus` the tests that need
//! it print why they are skipped, except under `CI=true`, where they fail.

mod support;

use setpoint::engine::Sample;
use setpoint::prometheus::{InstantData, PrometheusClient, PrometheusConfig, QueryFailure};
use std::time::{Duration, Instant};
use support::http::{HttpServer, Response, ScrapeTarget};
use support::prometheus::{self as prom, Options, Prometheus, Series};
use support::{TempDir, unix_now};

/// Longest time any one test may take.
const TEST_LIMIT: Duration = Duration::from_secs(90);

/// Runs a test body with a time limit.
fn config(url: &str) -> PrometheusConfig {
    let mut c = PrometheusConfig::new(url);
    c.timeout = Duration::from_secs(5);
    c.retry.budget = Duration::from_secs(5);
    c.retry.initial_backoff = Duration::from_millis(50);
    c.retry.max_backoff = Duration::from_millis(500);
    c
}

fn client(url: &str) -> PrometheusClient {
    PrometheusClient::new(&config(url)).expect("client")
}

/// Queries until the sample passes `check` (scrapes take a moment to show up); panics with the
/// last sample after 30 s.
async fn wait_for(
    client: &PrometheusClient,
    query: &str,
    check: impl Fn(&Sample) -> bool,
) -> Sample {
    let start = Instant::now();
    loop {
        let sample = client.sample(query, None, true).await;
        if check(&sample) {
            return sample;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "`{query}` never passed the check; last: {sample:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn live(target: &ScrapeTarget) -> Prometheus {
    Prometheus::start(Options {
        scrape_target: Some(target.address()),
        scrape_interval: Duration::from_millis(500),
        ..Options::default()
    })
}

fn reason(sample: &Sample) -> &str {
    match sample {
        Sample::NoData { reason } => reason,
        Sample::Value { value } => panic!("expected no data, got the value {value}"),
    }
}

#[tokio::test]
async fn instant_query_reads_a_live_target() {
    if !prom::available("instant_query_reads_a_live_target") {
        return;
    }
    support::bounded(TEST_LIMIT, async {
        let target =
            ScrapeTarget::start("# TYPE setpoint_queue_depth gauge\nsetpoint_queue_depth 42\n");
        let server = live(&target);
        let c = client(server.url());

        wait_for(&c, "setpoint_queue_depth", |s| s.value() == Some(42.0)).await;
        let answer = c.instant("setpoint_queue_depth", None).await.unwrap();
        let InstantData::Vector(series) = &answer.data else {
            panic!("{answer:?}")
        };
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].labels["job"], "live");
        assert_eq!(series[0].labels["instance"], target.address());
        assert_eq!(answer.sample(false).unwrap(), Sample::Value { value: 42.0 });

        // The test changes what the target serves; the next scrapes show it.
        target.set("setpoint_queue_depth 7.5\n");
        wait_for(&c, "setpoint_queue_depth", |s| s.value() == Some(7.5)).await;

        // An explicit evaluation time comes back on a scalar result.
        let t = (unix_now() - 10.0).floor();
        let answer = c.instant("1 + 1", Some(t)).await.unwrap();
        assert_eq!(
            answer.data,
            InstantData::Scalar {
                time: t,
                value: 2.0
            }
        );
        assert!(target.scrapes() >= 2);
    })
    .await;
}

#[tokio::test]
async fn a_path_prefix_is_kept() {
    if !prom::available("a_path_prefix_is_kept") {
        return;
    }
    support::bounded(TEST_LIMIT, async {
        let server = Prometheus::start(Options {
            route_prefix: Some("/tenant-a".into()),
            ..Options::default()
        });
        assert!(server.url().ends_with("/tenant-a"));
        for url in [server.url().to_string(), format!("{}/", server.url())] {
            let c = client(&url);
            assert!(c.query_url().as_str().ends_with("/tenant-a/api/v1/query"));
            let answer = c.instant("vector(3)", None).await.unwrap();
            assert_eq!(answer.sample(false).unwrap(), Sample::Value { value: 3.0 });
        }
    })
    .await;
}

/// Minute of the day: a value that a test can check at any time stamp.
fn minute_of_day(t: i64) -> f64 {
    ((t / 60) % 1440) as f64
}

#[tokio::test]
async fn range_query_over_backfilled_days() {
    if !prom::available("range_query_over_backfilled_days") {
        return;
    }
    support::bounded(TEST_LIMIT, async {
        // Seven days at one sample a minute, ending an hour ago, written with promtool before
        // the server starts.
        let now = unix_now() as i64;
        let end = (now - 3600) / 60 * 60;
        let start = end - 7 * 86_400;
        let points: Vec<(i64, f64)> = (start..=end)
            .step_by(60)
            .map(|t| (t, minute_of_day(t)))
            .collect();
        let server = Prometheus::start(Options {
            backfill: vec![Series {
                name: "setpoint_backfill".into(),
                labels: vec![("job".into(), "history".into())],
                points: points.clone(),
            }],
            ..Options::default()
        });
        let c = client(server.url());

        let answer = c
            .range(
                "setpoint_backfill",
                start as f64,
                end as f64,
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        assert_eq!(answer.series.len(), 1);
        let series = &answer.series[0];
        assert_eq!(series.labels["job"], "history");
        assert_eq!(series.points.len(), points.len(), "one point per minute");
        for ((t, v), (want_t, want_v)) in series.points.iter().zip(&points) {
            assert_eq!(*t, *want_t as f64);
            assert_eq!(*v, *want_v, "at {t}");
        }

        // A coarser step over part of the range, and an instant query in the past.
        let day = c
            .range(
                "setpoint_backfill",
                (end - 86_400) as f64,
                end as f64,
                Duration::from_secs(3600),
            )
            .await
            .unwrap();
        assert_eq!(day.series[0].points.len(), 25);
        let t = start + 3 * 86_400 + 17 * 60;
        let past = c
            .instant("setpoint_backfill", Some(t as f64))
            .await
            .unwrap();
        assert_eq!(
            past.sample(false).unwrap(),
            Sample::Value {
                value: minute_of_day(t)
            }
        );
    })
    .await;
}

#[tokio::test]
async fn basic_auth_through_web_config() {
    if !prom::available("basic_auth_through_web_config") {
        return;
    }
    support::bounded(TEST_LIMIT, async {
        let password = "correct-horse-battery-staple";
        let wrong = "Tr0ub4dor-and-3-wrong";
        let server = Prometheus::start(Options {
            basic_auth: Some(("setpoint".into(), password.into())),
            ..Options::default()
        });
        let files = TempDir::new("auth");
        let with_password = |p: &str, file: &str| {
            let mut c = config(server.url());
            c.basic_auth = Some(setpoint::prometheus::BasicAuth {
                username: "setpoint".into(),
                password_file: files.write(file, format!("{p}\n")),
            });
            PrometheusClient::new(&c).unwrap()
        };

        let right = with_password(password, "right");
        let answer = right.instant("vector(1)", None).await.unwrap();
        assert_eq!(answer.sample(false).unwrap(), Sample::Value { value: 1.0 });

        for (name, c) in [
            ("wrong password", with_password(wrong, "wrong")),
            ("no credentials", client(server.url())),
        ] {
            let e = c.instant("vector(1)", None).await.unwrap_err();
            let text = e.to_string();
            assert!(
                matches!(e.failure(), Some(QueryFailure::Http { status: 401, .. })),
                "{name}: {e:?}"
            );
            assert_eq!(
                e.attempts(),
                1,
                "{name}: a refused credential is not retried"
            );
            assert!(text.contains("HTTP 401"), "{name}: {text}");
            assert!(text.contains("`vector(1)`"), "{name}: {text}");
            for secret in [password, wrong] {
                assert!(!text.contains(secret), "{name}: {text}");
                assert!(!format!("{e:?}").contains(secret), "{name}: {e:?}");
                assert!(!format!("{c:?}").contains(secret), "{name}: {c:?}");
            }
        }
    })
    .await;
}

#[tokio::test]
async fn tls_with_a_private_ca_and_a_client_certificate() {
    let what = "tls_with_a_private_ca_and_a_client_certificate";
    if !prom::available(what) || !prom::openssl_available(what) {
        return;
    }
    support::bounded(TEST_LIMIT, async {
        let certs_dir = TempDir::new("certs");
        let certs = prom::make_certificates(&certs_dir);
        let server = Prometheus::start(Options {
            tls: Some(certs.clone()),
            ..Options::default()
        });
        assert!(server.url().starts_with("https://127.0.0.1:"));

        let mut cfg = config(server.url());
        cfg.tls.ca_file = Some(certs.ca_cert.clone());
        cfg.tls.cert_file = Some(certs.client_cert.clone());
        cfg.tls.key_file = Some(certs.client_key.clone());
        let c = PrometheusClient::new(&cfg).unwrap();
        let answer = c.instant("vector(2)", None).await.unwrap();
        assert_eq!(answer.sample(false).unwrap(), Sample::Value { value: 2.0 });

        // Without a client certificate the server ends the handshake; without the CA the
        // server's certificate is not trusted. Both are connection failures, retried within the
        // (short) budget, and neither message shows the key.
        let key = std::fs::read_to_string(&certs.client_key).unwrap();
        let key_body = key.lines().nth(1).unwrap();
        let mut no_client_cert = cfg.clone();
        no_client_cert.tls.cert_file = None;
        no_client_cert.tls.key_file = None;
        let mut no_ca = cfg.clone();
        no_ca.tls.ca_file = None;
        for (name, mut cfg) in [("no client certificate", no_client_cert), ("no CA", no_ca)] {
            cfg.retry.budget = Duration::from_millis(500);
            let e = PrometheusClient::new(&cfg)
                .unwrap()
                .instant("vector(2)", None)
                .await
                .unwrap_err();
            let text = e.to_string();
            assert!(
                matches!(
                    e.failure(),
                    Some(QueryFailure::Connect { .. } | QueryFailure::Transport { .. })
                ),
                "{name}: {e:?}"
            );
            assert!(!text.contains(key_body), "{name}: {text}");
            if name == "no CA" {
                assert!(text.contains("certificate"), "{name}: {text}");
            }
        }
    })
    .await;
}

#[tokio::test]
async fn a_broken_query_is_a_permanent_bad_data_error() {
    if !prom::available("a_broken_query_is_a_permanent_bad_data_error") {
        return;
    }
    support::bounded(TEST_LIMIT, async {
        let server = Prometheus::start(Options::default());
        let c = client(server.url());
        let query = "rate(http_requests_total[5m]";
        let e = c.instant(query, None).await.unwrap_err();
        let Some(QueryFailure::Api {
            status,
            error_type,
            error,
        }) = e.failure()
        else {
            panic!("{e:?}")
        };
        assert_eq!(*status, 400);
        assert_eq!(error_type, "bad_data");
        assert!(error.contains("parse error"), "{error}");
        assert_eq!(e.attempts(), 1, "bad_data is not retried");
        let text = e.to_string();
        assert!(text.contains(query), "{text}");
        assert!(text.contains("HTTP 400 bad_data"), "{text}");
        assert!(text.contains("parse error"), "{text}");

        // The same through a range query.
        let e = c
            .range(
                query,
                unix_now() - 60.0,
                unix_now(),
                Duration::from_secs(15),
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("bad_data"), "{e}");
    })
    .await;
}

#[tokio::test]
async fn an_empty_result_is_no_data() {
    if !prom::available("an_empty_result_is_no_data") {
        return;
    }
    support::bounded(TEST_LIMIT, async {
        let server = Prometheus::start(Options::default());
        let c = client(server.url());
        let answer = c.instant("setpoint_never_exported", None).await.unwrap();
        assert_eq!(answer.data, InstantData::Vector(vec![]));
        let sample = answer.sample(false).unwrap();
        assert!(reason(&sample).contains("empty result"), "{sample:?}");
        let sample = c.sample("setpoint_never_exported", None, true).await;
        assert!(reason(&sample).contains("empty result"), "{sample:?}");
    })
    .await;
}

#[tokio::test]
async fn nan_and_infinite_values_are_no_data() {
    if !prom::available("nan_and_infinite_values_are_no_data") {
        return;
    }
    support::bounded(TEST_LIMIT, async {
        let target = ScrapeTarget::start("setpoint_ratio NaN\nsetpoint_limit +Inf\n");
        let server = live(&target);
        let c = client(server.url());
        wait_for(&c, "count(setpoint_ratio) + count(setpoint_limit)", |s| {
            s.value() == Some(2.0)
        })
        .await;

        for (query, shown) in [
            ("setpoint_ratio", "NaN"),
            ("setpoint_limit", "+Inf"),
            ("0 / 0", "NaN"),
            ("-1 / 0", "-Inf"),
            ("vector(1 / 0)", "+Inf"),
        ] {
            let sample = c.sample(query, None, false).await;
            let why = reason(&sample);
            assert!(why.contains(&format!("value is {shown}")), "{query}: {why}");
        }
    })
    .await;
}

#[tokio::test]
async fn several_series_are_an_error_unless_summed() {
    if !prom::available("several_series_are_an_error_unless_summed") {
        return;
    }
    support::bounded(TEST_LIMIT, async {
        let target = ScrapeTarget::start(
            "setpoint_requests{pod=\"a\"} 1\nsetpoint_requests{pod=\"b\"} 2\nsetpoint_requests{pod=\"c\"} 4.5\n",
        );
        let server = live(&target);
        let c = client(server.url());
        wait_for(&c, "count(setpoint_requests)", |s| s.value() == Some(3.0)).await;

        let answer = c.instant("setpoint_requests", None).await.unwrap();
        let e = answer.sample(false).unwrap_err();
        let QueryFailure::SeveralSeries { labels } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(labels.len(), 3);
        let text = e.to_string();
        for pod in ["a", "b", "c"] {
            assert!(text.contains(&format!("pod=\"{pod}\"")), "{text}");
        }
        assert!(text.contains("setpoint_requests{"), "{text}");
        assert!(text.starts_with("3 series"), "{text}");

        assert_eq!(answer.sample(true).unwrap(), Sample::Value { value: 7.5 });
        assert_eq!(
            c.sample("setpoint_requests", None, true).await,
            Sample::Value { value: 7.5 }
        );
        let sample = c.sample("setpoint_requests", None, false).await;
        assert!(reason(&sample).contains("3 series"), "{sample:?}");
    })
    .await;
}

/// A query whose GET URL would pass [`MAX_GET_URL`](setpoint::prometheus::MAX_GET_URL).
fn long_query() -> String {
    format!("vector(1){}", " + vector(0)".repeat(150))
}

#[tokio::test]
async fn long_queries_are_posted() {
    // What goes on the wire, seen by a scripted server.
    let body = r#"{"status":"success","data":{"resultType":"scalar","result":[1,"1"]}}"#;
    let fake = HttpServer::start(move |_| Response::json(200, body));
    let c = client(&fake.url());
    c.instant("up", Some(10.0)).await.unwrap();
    c.instant(&long_query(), Some(10.0)).await.unwrap();
    let requests = fake.requests();
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].target, "/api/v1/query?query=up&time=10");
    assert_eq!(requests[1].method, "POST");
    assert_eq!(requests[1].target, "/api/v1/query");
    assert_eq!(
        requests[1].header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let form = String::from_utf8(requests[1].body.clone()).unwrap();
    assert!(
        form.starts_with("query=vector%281%29+%2B+vector%280%29"),
        "{form}"
    );
    assert!(form.ends_with("&time=10"), "{form}");

    // And a real server answers it.
    if !prom::available("long_queries_are_posted (real server part)") {
        return;
    }
    support::bounded(TEST_LIMIT, async {
        let server = Prometheus::start(Options::default());
        let c = client(server.url());
        let answer = c.instant(&long_query(), None).await.unwrap();
        assert_eq!(answer.sample(false).unwrap(), Sample::Value { value: 1.0 });
        let answer = c
            .range(
                &long_query(),
                unix_now() - 60.0,
                unix_now(),
                Duration::from_secs(30),
            )
            .await
            .unwrap();
        assert_eq!(answer.series.len(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_server_that_is_down_is_retried_within_the_budget() {
    support::bounded(TEST_LIMIT, async {
        // A port that nothing listens on: bound, then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cfg = config(&format!("http://127.0.0.1:{port}"));
        cfg.retry.budget = Duration::from_millis(1500);
        let c = PrometheusClient::new(&cfg).unwrap();

        let start = Instant::now();
        let e = c.instant("up", None).await.unwrap_err();
        let took = start.elapsed();
        assert!(
            matches!(e.failure(), Some(QueryFailure::Connect { .. })),
            "{e:?}"
        );
        assert!(e.attempts() >= 3, "retried: {e:?}");
        assert!(
            took <= Duration::from_millis(1600),
            "within the budget: {took:?}"
        );
        assert!(
            took >= Duration::from_millis(500),
            "backed off instead of giving up at once: {took:?}"
        );
        let text = e.to_string();
        assert!(text.contains("`up` failed after"), "{text}");
        assert!(
            text.contains(&format!(
                "cannot connect to http://127.0.0.1:{port}/api/v1/query"
            )),
            "{text}"
        );

        // The engine gets no data, with the reason, never zero.
        let sample = c.sample("up", None, false).await;
        assert!(reason(&sample).contains("cannot connect"), "{sample:?}");
    })
    .await;
}

#[tokio::test]
async fn a_slow_server_meets_the_timeout() {
    support::bounded(TEST_LIMIT, async {
        let body = r#"{"status":"success","data":{"resultType":"scalar","result":[1,"1"]}}"#;
        let slow =
            HttpServer::start(move |_| Response::json(200, body).after(Duration::from_secs(5)));
        let mut cfg = config(&slow.url());
        cfg.timeout = Duration::from_millis(300);
        cfg.retry.budget = Duration::from_secs(1);
        let c = PrometheusClient::new(&cfg).unwrap();

        let start = Instant::now();
        let e = c.instant("up", None).await.unwrap_err();
        let took = start.elapsed();
        assert!(
            matches!(e.failure(), Some(QueryFailure::Timeout { .. })),
            "{e:?}"
        );
        assert!(e.attempts() >= 2, "timeouts are retried: {e:?}");
        assert!(
            took < Duration::from_millis(1500),
            "within the 1s budget: {took:?}"
        );
        assert!(e.to_string().contains("no answer from"), "{e}");
        assert_eq!(slow.requests().len() as u32, e.attempts());

        // A budget shorter than the timeout cuts the attempt short.
        cfg.timeout = Duration::from_secs(10);
        cfg.retry.budget = Duration::from_millis(400);
        let start = Instant::now();
        let e = PrometheusClient::new(&cfg)
            .unwrap()
            .instant("up", None)
            .await
            .unwrap_err();
        assert!(start.elapsed() < Duration::from_millis(1000), "{e}");
        assert!(
            matches!(e.failure(), Some(QueryFailure::Timeout { .. })),
            "{e:?}"
        );

        // A zero budget: one attempt with the full timeout.
        cfg.timeout = Duration::from_millis(200);
        cfg.retry.budget = Duration::ZERO;
        let e = PrometheusClient::new(&cfg)
            .unwrap()
            .instant("up", None)
            .await
            .unwrap_err();
        assert_eq!(e.attempts(), 1, "{e}");
    })
    .await;
}

#[tokio::test]
async fn transient_errors_are_retried_until_an_answer() {
    support::bounded(TEST_LIMIT, async {
        let ok = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"5"]}]}}"#;
        let busy = r#"{"status":"error","errorType":"unavailable","error":"too many queries"}"#;
        let calls = std::sync::atomic::AtomicU32::new(0);
        let flaky = HttpServer::start(move |_| {
            match calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0 => Response::json(503, busy),
                1 => Response::text(429, "slow down").header("Retry-After", "0"),
                2 => Response::text(502, "<html>bad gateway</html>"),
                _ => Response::json(200, ok),
            }
        });
        let c = client(&flaky.url());
        let answer = c.instant("up", None).await.unwrap();
        assert_eq!(answer.sample(false).unwrap(), Sample::Value { value: 5.0 });
        assert_eq!(flaky.requests().len(), 4);
    })
    .await;
}

#[tokio::test]
async fn permanent_errors_are_not_retried() {
    support::bounded(TEST_LIMIT, async {
        for (response, want) in [
            (
                Response::json(
                    422,
                    r#"{"status":"error","errorType":"execution","error":"query processing would load too many samples into memory in query execution"}"#,
                ),
                "HTTP 422 execution: query processing would load too many samples",
            ),
            (Response::text(403, "Forbidden\n"), "HTTP 403: Forbidden"),
            (Response::text(401, "Unauthorized\n"), "HTTP 401: Unauthorized"),
            (
                Response::text(200, "<html>a login page</html>"),
                "cannot decode the answer",
            ),
        ] {
            let fake = HttpServer::start(move |_| response.clone());
            let e = client(&fake.url())
                .instant("sum(rate(x[5m]))", None)
                .await
                .unwrap_err();
            let text = e.to_string();
            assert!(text.contains(want), "{text}");
            assert!(text.contains("`sum(rate(x[5m]))`"), "{text}");
            assert_eq!(fake.requests().len(), 1, "{text}");
        }
    })
    .await;
}

#[tokio::test]
async fn secrets_never_appear_in_debug_output_or_errors() {
    support::bounded(TEST_LIMIT, async {
        let token = "tok-SECRET-0b1c2d3e";
        let password = "pw-SECRET-4f5a6b7c";
        let key = "key-SECRET-8d9e0f1a";
        let files = TempDir::new("secrets");
        let token_file = files.write("token", format!("{token}\n"));
        let password_file = files.write("password", password);
        let key_file = files.write(
            "key.pem",
            format!("-----BEGIN PRIVATE KEY-----\n{key}\n-----END PRIVATE KEY-----\n"),
        );
        let cert_file = files.write("cert.pem", "not a certificate\n");
        let secrets = [token, password, key];
        let check = |what: &str, text: &str| {
            for s in secrets {
                assert!(!text.contains(s), "{what} shows a secret: {text}");
            }
        };

        let denied = HttpServer::start(|_| Response::text(403, "Forbidden"));
        let mut bearer = config(&denied.url());
        bearer.bearer_token_file = Some(token_file.clone());
        bearer.headers.insert("X-Api-Key".into(), password.into());
        let mut basic = config(&denied.url());
        basic.basic_auth = Some(setpoint::prometheus::BasicAuth {
            username: "setpoint".into(),
            password_file: password_file.clone(),
        });

        for cfg in [&bearer, &basic] {
            check("config Debug", &format!("{cfg:?}"));
            let c = PrometheusClient::new(cfg).unwrap();
            check("client Debug", &format!("{c:?}"));
            let e = c.instant("up", None).await.unwrap_err();
            check("error Display", &e.to_string());
            check("error Debug", &format!("{e:?}"));
            let sample = c.sample("up", None, false).await;
            check("sample Debug", &format!("{sample:?}"));
        }
        // The credentials did go out, in headers.
        let requests = denied.requests();
        assert_eq!(
            requests[0].header("authorization"),
            Some(format!("Bearer {token}").as_str())
        );
        assert_eq!(requests[0].header("x-api-key"), Some(password));
        let basic_header = format!(
            "Basic {}",
            support::base64(format!("setpoint:{password}").as_bytes())
        );
        assert_eq!(
            requests.last().unwrap().header("authorization"),
            Some(basic_header.as_str())
        );

        // Invalid key or certificate files: errors name the files, never their content.
        let mut tls = config("https://127.0.0.1:1");
        tls.tls.cert_file = Some(cert_file);
        tls.tls.key_file = Some(key_file.clone());
        let e = PrometheusClient::new(&tls).unwrap_err();
        check("TLS error", &format!("{e} {e:?}"));
        assert!(e.to_string().contains("cert.pem"), "{e}");

        let mut ca = config("https://127.0.0.1:1");
        ca.tls.ca_file = Some(key_file);
        let e = PrometheusClient::new(&ca).unwrap_err();
        check("CA error", &format!("{e} {e:?}"));
        assert!(e.to_string().contains("key.pem"), "{e}");

        // A missing or empty credential file is named, without content.
        let mut missing = config("http://127.0.0.1:1");
        missing.bearer_token_file = Some(files.path().join("absent"));
        let e = PrometheusClient::new(&missing).unwrap_err();
        assert!(e.to_string().starts_with("bearer token file"), "{e}");
        let mut empty = config("http://127.0.0.1:1");
        empty.bearer_token_file = Some(files.write("empty", "\n"));
        let e = PrometheusClient::new(&empty).unwrap_err();
        assert!(e.to_string().contains("the file is empty"), "{e}");
    })
    .await;
}

#[test]
fn missing_prometheus_is_a_skip_or_a_ci_failure() {
    // The rule itself, for the machine the test runs on.
    let installed = std::path::Path::new(prom::PROMETHEUS).exists()
        && std::path::Path::new(prom::PROMTOOL).exists();
    let ci = std::env::var("CI").as_deref() == Ok("true");
    let result = std::panic::catch_unwind(|| prom::available("missing_prometheus_is_a_skip"));
    match (installed, ci) {
        (true, _) => assert!(result.unwrap()),
        (false, false) => assert!(!result.unwrap()),
        (false, true) => assert!(result.is_err(), "CI=true must fail without Prometheus"),
    }
}

#[test]
fn openmetrics_for_promtool() {
    let text = prom::openmetrics(&[
        Series {
            name: "b".into(),
            labels: vec![("x".into(), "1".into())],
            points: vec![(60, 1.5), (120, f64::NAN)],
        },
        Series {
            name: "a".into(),
            labels: vec![],
            points: vec![(60, f64::INFINITY)],
        },
    ]);
    assert_eq!(
        text,
        "# TYPE a gauge\na +Inf 60\n# TYPE b gauge\nb{x=\"1\"} 1.5 60\nb{x=\"1\"} NaN 120\n# EOF\n"
    );
}
