//! How to reach a Prometheus-compatible HTTP API: [`PrometheusConfig`].
//!
//! The configuration holds no secret itself: the bearer token, the basic-auth password and the
//! client key are named by file (a mounted Kubernetes Secret), read by the client, and never shown
//! by `Debug`. Custom header values are not shown by `Debug` either, since they may carry a
//! credential.

use crate::text::Dur;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Where and how to query one Prometheus-compatible server (Prometheus, Thanos, Mimir,
/// VictoriaMetrics).
///
/// Deserializes from the camelCase form that a policy file uses; unknown fields are errors:
///
/// ```yaml
/// url: http://thanos-query.monitoring:9090/tenant-a/
/// bearerTokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token
/// tls: {caFile: /etc/prometheus-ca/ca.crt}
/// headers: {X-Scope-OrgID: tenant-a}
/// timeout: 10s
/// retry: {budget: 30s}
/// ```
///
/// From code (for example from CLI flags), start with [`PrometheusConfig::new`] and set fields.
#[derive(Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PrometheusConfig {
    /// Base URL of the HTTP API, `http` or `https`. A path prefix is kept: with
    /// `http://thanos/tenant-a` instant queries go to `http://thanos/tenant-a/api/v1/query`.
    /// Credentials in the URL are refused: use `basicAuth`.
    pub url: String,
    /// A file holding a bearer token sent as `Authorization: Bearer …`. Re-read every minute so
    /// that rotated (projected service-account) tokens are picked up.
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// HTTP basic authentication.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// TLS settings for `https` URLs.
    #[serde(default)]
    pub tls: TlsConfig,
    /// Extra request headers, such as `X-Scope-OrgID` for multi-tenant stores.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Longest wait for one HTTP attempt, connection included (default 10s).
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    #[schemars(with = "Dur")]
    pub timeout: Duration,
    /// Retries of transient failures.
    #[serde(default)]
    pub retry: RetryConfig,
}

/// HTTP basic authentication: a user name and a file holding the password.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BasicAuth {
    /// The user name.
    pub username: String,
    /// A file holding the password (a trailing newline is ignored). Re-read every minute.
    pub password_file: PathBuf,
}

/// TLS settings. Without `caFile` the platform's trusted roots are used.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsConfig {
    /// PEM file of the certificate authorities to trust instead of the platform's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM file of the client certificate (chain) for mutual TLS; needs `keyFile`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM file of the client certificate's private key (PKCS#8, PKCS#1 or SEC1); needs
    /// `certFile`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

/// How transient failures (connection errors, timeouts, HTTP 5xx and 429) are retried: with
/// exponential backoff and jitter, until the budget is spent. Permanent failures (a bad query,
/// an execution error, a refused credential) are never retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RetryConfig {
    /// Total time for one query, all attempts and waits included (default 30s): the timeout of
    /// an attempt is cut to what is left. Zero means a single attempt with the full timeout.
    #[serde(default = "default_budget", deserialize_with = "duration")]
    #[schemars(with = "Dur")]
    pub budget: Duration,
    /// Wait before the first retry (default 100ms); doubled after each retry.
    #[serde(default = "default_initial_backoff", deserialize_with = "duration")]
    #[schemars(with = "Dur")]
    pub initial_backoff: Duration,
    /// Longest wait between two attempts (default 5s).
    #[serde(default = "default_max_backoff", deserialize_with = "duration")]
    #[schemars(with = "Dur")]
    pub max_backoff: Duration,
}

impl PrometheusConfig {
    /// A configuration for `url` with no credentials and the default timeout and retries.
    pub fn new(url: impl Into<String>) -> PrometheusConfig {
        PrometheusConfig {
            url: url.into(),
            bearer_token_file: None,
            basic_auth: None,
            tls: TlsConfig::default(),
            headers: BTreeMap::new(),
            timeout: default_timeout(),
            retry: RetryConfig::default(),
        }
    }
}

impl PrometheusConfig {
    /// Checks what can be checked without reading files: the URL, the header names and values,
    /// the timeout, and which settings go together. [`PrometheusClient::new`] checks the same
    /// and reads the files.
    ///
    /// [`PrometheusClient::new`]: super::PrometheusClient::new
    pub fn check(&self) -> Result<(), String> {
        super::base_url(&self.url).map_err(|e| e.to_string())?;
        super::headers(self).map_err(|e| e.to_string())?;
        if self.timeout.is_zero() {
            return Err("timeout must be more than zero".into());
        }
        if self.bearer_token_file.is_some() && self.basic_auth.is_some() {
            return Err("bearerTokenFile and basicAuth exclude each other: give one".into());
        }
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            return Err("tls.certFile and tls.keyFile go together: give both or neither".into());
        }
        Ok(())
    }
}

impl Default for RetryConfig {
    fn default() -> RetryConfig {
        RetryConfig {
            budget: default_budget(),
            initial_backoff: default_initial_backoff(),
            max_backoff: default_max_backoff(),
        }
    }
}

impl fmt::Debug for PrometheusConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values may be credentials: show the names only.
        let headers: BTreeMap<&str, &str> = self
            .headers
            .keys()
            .map(|k| (k.as_str(), "<redacted>"))
            .collect();
        f.debug_struct("PrometheusConfig")
            .field("url", &self.url)
            .field("bearer_token_file", &self.bearer_token_file)
            .field("basic_auth", &self.basic_auth)
            .field("tls", &self.tls)
            .field("headers", &headers)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_budget() -> Duration {
    Duration::from_secs(30)
}

fn default_initial_backoff() -> Duration {
    Duration::from_millis(100)
}

fn default_max_backoff() -> Duration {
    Duration::from_secs(5)
}

/// A humantime duration, parsed as the policy file parses its durations.
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    Dur::deserialize(d).map(|d| d.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_from_a_minimal_file() {
        let c: PrometheusConfig = serde_json::from_str(r#"{"url": "http://prom:9090"}"#).unwrap();
        assert_eq!(c, PrometheusConfig::new("http://prom:9090"));
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert_eq!(c.retry.budget, Duration::from_secs(30));
    }

    #[test]
    fn every_field_in_camel_case() {
        let c: PrometheusConfig = serde_json::from_str(
            r#"{
                "url": "https://thanos/tenant-a/",
                "bearerTokenFile": "/t",
                "basicAuth": {"username": "u", "passwordFile": "/p"},
                "tls": {"caFile": "/ca", "certFile": "/c", "keyFile": "/k"},
                "headers": {"X-Scope-OrgID": "a"},
                "timeout": "2s",
                "retry": {"budget": "1m", "initialBackoff": "50ms", "maxBackoff": "1s"}
            }"#,
        )
        .unwrap();
        assert_eq!(c.basic_auth.unwrap().password_file, PathBuf::from("/p"));
        assert_eq!(c.tls.key_file, Some(PathBuf::from("/k")));
        assert_eq!(c.timeout, Duration::from_secs(2));
        assert_eq!(c.retry.budget, Duration::from_secs(60));
        assert_eq!(c.retry.initial_backoff, Duration::from_millis(50));
    }

    #[test]
    fn unknown_fields_and_bad_durations_are_errors() {
        let e = serde_json::from_str::<PrometheusConfig>(r#"{"url": "http://p", "tiemout": "1s"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `tiemout`"), "{e}");
        let e = serde_json::from_str::<PrometheusConfig>(r#"{"url": "http://p", "timeout": 10}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("has no unit"), "{e}");
        let e = serde_json::from_str::<PrometheusConfig>(
            r#"{"url": "http://p", "basicAuth": {"username": "u", "password": "p"}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown field `password`"), "{e}");
    }

    #[test]
    fn debug_hides_header_values() {
        let mut c = PrometheusConfig::new("http://p");
        c.headers
            .insert("Authorization".into(), "Bearer hunter2-header".into());
        let d = format!("{c:?}");
        assert!(d.contains("Authorization"), "{d}");
        assert!(!d.contains("hunter2"), "{d}");
    }
}
