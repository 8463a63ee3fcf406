//! A real Prometheus server for tests (Debian's `prometheus` package: `/usr/bin/prometheus` and
//! `/usr/bin/promtool`).
//!
//! [`Prometheus::start`] picks a free port on 127.0.0.1, makes a temporary data folder,
//! optionally backfills history with `promtool tsdb create-blocks-from openmetrics` (before the
//! server starts: Prometheus loads blocks only at start-up), optionally protects the server with
//! basic auth through `--web.config.file`, optionally scrapes a live target every
//! `scrape_interval`, and waits (bounded) until `/-/ready` answers 200. Dropping the handle kills
//! the server, waits for it and removes the folder.
//!
//! Without the binaries, [`available`] prints why the test is skipped and returns false, except
//! under `CI=true`, where a missing Prometheus fails the test.

use super::TempDir;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server binary.
pub const PROMETHEUS: &str = "/usr/bin/prometheus";
/// The tool that backfills history.
pub const PROMTOOL: &str = "/usr/bin/promtool";

/// Longest wait for a started server to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether the Prometheus binaries are installed. When they are not: prints a skip reason naming
/// `what` and returns false; under `CI=true`, panics instead.
pub fn available(what: &str) -> bool {
    let missing: Vec<&str> = [PROMETHEUS, PROMTOOL]
        .into_iter()
        .filter(|p| !std::path::Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!(
        "{} not found: install Debian's `prometheus` package (scripts/test does)",
        missing.join(" and ")
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true and {why}");
    }
    // Straight to stderr: the test harness captures `eprintln!` of passing tests, and a skip
    // should be seen.
    let _ = writeln!(std::io::stderr(), "SKIPPED {what}: {why}");
    false
}

/// One series of backfilled history.
#[derive(Debug, Clone)]
pub struct Series {
    /// Metric name.
    pub name: String,
    /// Labels, in order.
    pub labels: Vec<(String, String)>,
    /// `(unix seconds, value)`, in time order.
    pub points: Vec<(i64, f64)>,
}

/// How to start the server.
#[derive(Debug, Clone)]
pub struct Options {
    /// History written into the data folder before start.
    pub backfill: Vec<Series>,
    /// Basic auth required on every endpoint: (user, password).
    pub basic_auth: Option<(String, String)>,
    /// `host:port` of a target scraped as job `live`.
    pub scrape_target: Option<String>,
    /// Scrape and evaluation interval.
    pub scrape_interval: Duration,
    /// Serve the API under this prefix (`--web.route-prefix`), such as `/tenant-a`.
    pub route_prefix: Option<String>,
    /// Serve HTTPS with these certificates and require a client certificate signed by their CA.
    pub tls: Option<Certificates>,
    /// `--web.max-connections` (None: Prometheus's default, 512).
    pub max_connections: Option<u32>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            backfill: vec![],
            basic_auth: None,
            scrape_target: None,
            scrape_interval: Duration::from_secs(1),
            route_prefix: None,
            tls: None,
            max_connections: None,
        }
    }
}

/// A running Prometheus. Killed, waited for and cleaned up on drop.
pub struct Prometheus {
    // Fields drop in order: the server is killed and waited for before its folder is removed.
    child: Running,
    url: String,
    dir: TempDir,
    auth_header: Option<String>,
    /// The command line, to start the server again ([`Prometheus::start_again`]).
    args: Vec<std::ffi::OsString>,
    log: PathBuf,
    port: u16,
}

impl Prometheus {
    /// Starts a server and waits until it is ready. Panics, with the server's log, if it does
    /// not become ready within a minute.
    pub fn start(options: Options) -> Prometheus {
        let dir = TempDir::new("prometheus");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        if !options.backfill.is_empty() {
            backfill(&dir, &options.backfill);
        }
        let config = dir.write("prometheus.yml", config_file(&options));
        let mut web = String::new();
        if let Some((user, password)) = &options.basic_auth {
            // Cost 4, the lowest: Prometheus checks the hash on requests, and tests make many.
            let hash = bcrypt::hash(password, 4).expect("bcrypt hash");
            writeln!(web, "basic_auth_users:\n  {user:?}: {hash:?}").unwrap();
        }
        if let Some(tls) = &options.tls {
            writeln!(
                web,
                "tls_server_config:\n  cert_file: {:?}\n  key_file: {:?}\n  \
                 client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {:?}",
                tls.server_cert, tls.server_key, tls.ca_cert
            )
            .unwrap();
        }
        let web_config = (!web.is_empty()).then(|| dir.write("web.yml", web));
        let scheme = if options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let auth_header = options
            .basic_auth
            .as_ref()
            .map(|(u, p)| format!("Basic {}", super::base64(format!("{u}:{p}").as_bytes())));
        let prefix = options
            .route_prefix
            .as_deref()
            .unwrap_or("")
            .trim_end_matches('/')
            .to_string();

        // The port is free when picked but could be taken before Prometheus binds it: try again
        // with another port then.
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = free_port();
            let log = dir.path().join(format!("prometheus-{port}.log"));
            let mut cmd = Command::new(PROMETHEUS);
            cmd.arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", data.display()))
                // Backfilled history is days old: keep it.
                .arg("--storage.tsdb.retention.time=3650d")
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap());
            if let Some(n) = options.max_connections {
                cmd.arg(format!("--web.max-connections={n}"));
            }
            if let Some(web) = &web_config {
                cmd.arg(format!("--web.config.file={}", web.display()));
            }
            if !prefix.is_empty() {
                cmd.arg(format!("--web.route-prefix={prefix}"));
                cmd.arg(format!(
                    "--web.external-url=http://127.0.0.1:{port}{prefix}"
                ));
            }
            let args: Vec<std::ffi::OsString> = cmd.get_args().map(|a| a.to_owned()).collect();
            let mut child = Running(
                cmd.spawn()
                    .unwrap_or_else(|e| panic!("cannot start {PROMETHEUS}: {e}")),
            );
            let ready = if options.tls.is_some() {
                // The check below speaks plain HTTP: over TLS, wait for the port only, and let
                // the test's client retry the 503s of a server that is not ready yet.
                wait_listening(&mut child.0, port)
            } else {
                wait_ready(
                    &mut child.0,
                    port,
                    &format!("{prefix}/-/ready"),
                    auth_header.as_deref(),
                )
            };
            match ready {
                Ok(()) => {
                    return Prometheus {
                        child,
                        url: format!("{scheme}://127.0.0.1:{port}{prefix}"),
                        dir,
                        auth_header,
                        args,
                        log,
                        port,
                    };
                }
                Err(why) => {
                    drop(child);
                    last_log = std::fs::read_to_string(&log).unwrap_or_default();
                    if !last_log.contains("address already in use") {
                        panic!("Prometheus did not become ready: {why}\n--- log ---\n{last_log}");
                    }
                }
            }
        }
        panic!("Prometheus did not start\n--- log ---\n{last_log}")
    }

    /// Base URL of the HTTP API (with the route prefix, if any).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The value of the `Authorization` header that the server wants, if it wants one.
    pub fn auth_header(&self) -> Option<&str> {
        self.auth_header.as_deref()
    }

    /// Kills the server (SIGKILL, as an OOM kill or a lost node does), keeping its data: its
    /// port refuses connections until [`Prometheus::start_again`].
    pub fn kill(&mut self) {
        let _ = self.child.0.kill();
        let _ = self.child.0.wait();
    }

    /// Starts the server again on the same port with the same data (what it had written to its
    /// WAL before it was killed), and waits until it is ready. Scrapes missed meanwhile are
    /// missing: a `rate()` over a window reaching into the gap is computed from the samples
    /// after it only, divided by the whole window, so its first readings are low.
    pub fn start_again(&mut self) {
        self.kill();
        let stderr = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut child = Running(
            Command::new(PROMETHEUS)
                .args(&self.args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {PROMETHEUS}: {e}")),
        );
        let auth = self.auth_header.clone();
        if let Err(why) = wait_ready(&mut child.0, self.port, "/-/ready", auth.as_deref()) {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            panic!("Prometheus did not start again: {why}\n--- log ---\n{log}");
        }
        self.child = child;
    }

    /// The server's data and configuration folder.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

/// A child process that is killed and waited for on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `/-/ready` until it answers 200, the server exits, or [`READY_TIMEOUT`] passes.
fn wait_ready(child: &mut Child, port: u16, path: &str, auth: Option<&str>) -> Result<(), String> {
    let start = Instant::now();
    let mut last = String::from("no answer yet");
    while start.elapsed() < READY_TIMEOUT {
        if let Some(status) = child.try_wait().unwrap() {
            return Err(format!("the server exited with {status}"));
        }
        match get_status(port, path, auth) {
            Ok(200) => return Ok(()),
            Ok(code) => last = format!("{path} answered {code}"),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("not ready after {READY_TIMEOUT:?}: {last}"))
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().unwrap().port()
}

/// Waits until the server accepts connections on `port`, exits, or [`READY_TIMEOUT`] passes.
fn wait_listening(child: &mut Child, port: u16) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < READY_TIMEOUT {
        if let Some(status) = child.try_wait().unwrap() {
            return Err(format!("the server exited with {status}"));
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("not listening after {READY_TIMEOUT:?}"))
}

/// `GET path` on 127.0.0.1:port over plain HTTP/1.0; returns the status code.
fn get_status(port: u16, path: &str, auth: Option<&str>) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n");
    if let Some(a) = auth {
        request.push_str(&format!("Authorization: {a}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {text:?}")))
}

fn config_file(options: &Options) -> String {
    let interval = format!("{}ms", options.scrape_interval.as_millis());
    let mut s = format!(
        "global:\n  scrape_interval: {interval}\n  evaluation_interval: {interval}\n  scrape_timeout: {interval}\n"
    );
    if let Some(target) = &options.scrape_target {
        writeln!(
            s,
            "scrape_configs:\n  - job_name: live\n    static_configs:\n      - targets: [{target:?}]"
        )
        .unwrap();
    }
    s
}

/// Writes the history as OpenMetrics and turns it into blocks in `dir/data`.
fn backfill(dir: &TempDir, series: &[Series]) {
    let file = dir.write("backfill.om", openmetrics(series));
    let data = dir.path().join("data");
    let out = Command::new(PROMTOOL)
        .args(["tsdb", "create-blocks-from", "openmetrics", "--quiet"])
        .arg(&file)
        .arg(&data)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {PROMTOOL}: {e}"));
    assert!(
        out.status.success(),
        "promtool failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The OpenMetrics text of `series`: families grouped by name, a gauge TYPE line each,
/// timestamps in seconds, and the `# EOF` that promtool requires.
pub fn openmetrics(series: &[Series]) -> String {
    let mut names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
    names.sort();
    names.dedup();
    let mut out = String::new();
    for name in names {
        writeln!(out, "# TYPE {name} gauge").unwrap();
        for s in series.iter().filter(|s| s.name == name) {
            let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
            let labels = if labels.is_empty() {
                String::new()
            } else {
                format!("{{{}}}", labels.join(","))
            };
            for (t, v) in &s.points {
                writeln!(out, "{name}{labels} {} {t}", value_text(*v)).unwrap();
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

fn value_text(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// The tool that makes test certificates.
pub const OPENSSL: &str = "openssl";

/// A private CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files.
#[derive(Debug, Clone)]
pub struct Certificates {
    /// The CA's certificate.
    pub ca_cert: PathBuf,
    /// The server's certificate (subjectAltName IP:127.0.0.1).
    pub server_cert: PathBuf,
    /// The server's key.
    pub server_key: PathBuf,
    /// The client's certificate.
    pub client_cert: PathBuf,
    /// The client's key (PKCS#8).
    pub client_key: PathBuf,
}

/// Whether the `openssl` command is there to make certificates; like [`available`], a skip
/// outside CI and a failure under `CI=true`.
pub fn openssl_available(what: &str) -> bool {
    let found = Command::new(OPENSSL)
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return true;
    }
    let why =
        "the openssl command is missing: install Debian's `openssl` package (scripts/test does)";
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true and {why}");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED {what}: {why}");
    false
}

/// Makes a CA valid for two days and two certificates it signs (P-256 keys), in `dir`.
pub fn make_certificates(dir: &TempDir) -> Certificates {
    let p = |name: &str| dir.path().join(name);
    let run = |args: &[&str]| {
        let out = Command::new(OPENSSL)
            .args(args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {OPENSSL}: {e}"));
        assert!(
            out.status.success(),
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509", "-new"][..],
        &ec,
        &[
            "-days",
            "2",
            "-subj",
            "/CN=setpoint-test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    ]
    .concat());
    for (name, cn, extensions, serial) in [
        (
            "server",
            "127.0.0.1",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
            "2",
        ),
        ("client", "setpoint", "extendedKeyUsage=clientAuth\n", "3"),
    ] {
        let ext = format!("{name}.ext");
        dir.write(&ext, format!("basicConstraints=CA:FALSE\n{extensions}"));
        let (key, csr, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        let subj = format!("/CN={cn}");
        run(&[
            &["req", "-new"][..],
            &ec,
            &["-subj", &subj, "-keyout", &key, "-out", &csr],
        ]
        .concat());
        run(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-set_serial",
            serial,
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &crt,
        ]);
    }
    Certificates {
        ca_cert: p("ca.crt"),
        server_cert: p("server.crt"),
        server_key: p("server.key"),
        client_cert: p("client.crt"),
        client_key: p("client.key"),
    }
}
