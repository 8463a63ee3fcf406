//! A running `setpoint run` for the end-to-end tests and the daemon benchmark: the binary on a
//! free port of 127.0.0.1 with a kubeconfig, its log in a file, its admin server read over plain
//! HTTP, stopped with SIGTERM (and SIGKILLed on drop if still running).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::TempDir;

/// Writes policy `file` into `folder` as an editor or a ConfigMap swap does: aside (beside the
/// folder), then renamed into it, so the daemon never reads half a file.
pub fn write_policy(folder: &Path, file: &str, text: &str) {
    let tmp = folder
        .parent()
        .expect("a policy folder inside another")
        .join(format!(".{file}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, folder.join(file)).unwrap();
}

/// A running `setpoint run`.
pub struct Daemon {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` on 127.0.0.1:port over HTTP/1.0 (no chunked answers): (status, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_string();
    Some((code, body))
}

impl Daemon {
    /// Starts `binary run --kubeconfig K --listen 127.0.0.1:PORT` followed by `args`, as pod
    /// `name` (its log in `dir/name.log`), and waits until `/healthz` answers.
    pub fn start(
        binary: &str,
        dir: &TempDir,
        name: &str,
        kubeconfig: &Path,
        args: &[&str],
    ) -> Daemon {
        Daemon::start_as(binary, dir, name, Some(name), kubeconfig, args)
    }

    /// [`Daemon::start`] with `POD_NAME` set to `pod_name`, or (None) without `POD_NAME` and
    /// `HOSTNAME`, as a shell outside a pod runs it; its log in `dir/name.log`.
    pub fn start_as(
        binary: &str,
        dir: &TempDir,
        name: &str,
        pod_name: Option<&str>,
        kubeconfig: &Path,
        args: &[&str],
    ) -> Daemon {
        let port = free_port();
        let log = dir.path().join(format!("{name}.log"));
        let mut command = Command::new(binary);
        command
            .arg("run")
            .args(["--kubeconfig", kubeconfig.to_str().unwrap()])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .env_remove("KUBERNETES_SERVICE_HOST");
        match pod_name {
            Some(n) => command.env("POD_NAME", n),
            None => command.env_remove("POD_NAME").env_remove("HOSTNAME"),
        };
        let child = command
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start setpoint run");
        let d = Daemon {
            child: Some(child),
            port,
            log,
        };
        d.wait_for("/healthz answers", Duration::from_secs(20), |d| {
            d.get("/healthz").is_some_and(|(code, _)| code == 200)
        });
        d
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// `GET path` on the admin server: (status, body).
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.port, path)
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last 40 lines of the log.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Polls `ok` every 100 ms until it holds; panics with the log's end after `limit`.
    pub fn wait_for(&self, what: &str, limit: Duration, ok: impl Fn(&Daemon) -> bool) {
        let start = Instant::now();
        while !ok(self) {
            assert!(
                start.elapsed() < limit,
                "{what}: not within {limit:?}; log:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The policy's `setpoint_ticks_total` on `/metrics` (0 before its first tick).
    pub fn ticks(&self, policy: &str) -> u64 {
        let Some((200, metrics)) = self.get("/metrics") else {
            return 0;
        };
        let series = format!("setpoint_ticks_total{{policy=\"{policy}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&series))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    }

    /// Waits until `n` more ticks of `policy` have run to their end (a tick is counted when it
    /// starts, and a policy's ticks run one after another: so until `n + 1` more have started).
    pub fn wait_ticks(&self, policy: &str, n: u64, limit: Duration) {
        let until = self.ticks(policy) + n + 1;
        self.wait_for(&format!("{n} more ticks of {policy}"), limit, |d| {
            d.ticks(policy) >= until
        });
    }

    /// Waits up to `limit` for the process to exit by itself: its exit status, or None if it
    /// still runs.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        let child = self.child.as_mut()?;
        while start.elapsed() < limit {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// SIGTERM, and the time the process took to exit 0 (SIGKILL and a panic after `limit`).
    pub fn stop_within(&mut self, limit: Duration) -> Duration {
        let Some(mut child) = self.child.take() else {
            return Duration::ZERO;
        };
        let start = Instant::now();
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = child.try_wait() {
                assert!(status.success(), "exit {status}; log:\n{}", self.log_tail());
                return start.elapsed();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("setpoint run did not stop within {limit:?} of SIGTERM");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
