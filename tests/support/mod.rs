//! Launchers and stand-ins shared by the integration tests (and the benchmarks, which include
//! this folder by path).
//!
//! - [`prometheus`]: a real Prometheus server on 127.0.0.1, with optional backfilled history,
//!   basic auth and a live scrape target; stopped on drop.
//! - [`kube`]: a stand-in for the Kubernetes API server (scale subresource and the scalable
//!   objects, pods, metrics.k8s.io, events.k8s.io Events, coordination.k8s.io Leases,
//!   discovery; lists and watches, CRDs and their objects with a status subresource, kubectl's
//!   Table format, RBAC for ServiceAccount tokens), answering as a real one does.
//! - [`daemon`]: a running `setpoint run` (the binary) and its admin server, for the end-to-end
//!   tests and the daemon benchmark.
//! - [`http`]: a tiny HTTP/1.1 server on 127.0.0.1 whose answers a test scripts: a scrape target
//!   or a misbehaving API (slow, failing).
//! - [`TempDir`]: a temporary folder removed on drop.

// Each test crate uses a different part of the support code.
#![allow(dead_code)]

pub mod daemon;
pub mod http;
pub mod kube;
pub mod prometheus;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Runs a test's body, failing it when it takes longer than `limit`.
pub async fn bounded<F: std::future::Future<Output = ()>>(limit: std::time::Duration, body: F) {
    tokio::time::timeout(limit, body)
        .await
        .expect("test took too long");
}

/// A fresh folder under the system's temporary folder, removed (with its content) on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `setpoint-<prefix>-<pid>-<n>-<nanos>` under the temporary folder.
    pub fn new(prefix: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let path = std::env::temp_dir().join(format!(
            "setpoint-{prefix}-{}-{n}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir { path }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `contents` to `name` in the folder and returns the file's path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path.join(name);
        std::fs::write(&path, contents)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Now, in Unix seconds.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Standard base64 (with padding), for `Authorization: Basic` headers.
pub fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn base64_matches_rfc_4648_vectors() {
    for (plain, encoded) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64(plain.as_bytes()), encoded);
    }
}
