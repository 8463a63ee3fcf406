//! A client for the Prometheus HTTP API (`/api/v1/query`, `/api/v1/query_range`), shared by
//! Prometheus, Thanos, Mimir and VictoriaMetrics.
//!
//! - [`config`]: [`PrometheusConfig`], what a policy file or CLI flags say about the server.
//! - this module: [`PrometheusClient`], which sends queries and retries transient failures
//!   within a time budget.
//! - [`response`]: decoding of the answers and [`InstantResult::sample`], which turns an instant
//!   result into an [`engine::Sample`](crate::engine::Sample) (missing data is never zero).
//! - [`error`]: [`PrometheusError`] and [`QueryFailure`].
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use setpoint::prometheus::{PrometheusClient, PrometheusConfig};
//! let client = PrometheusClient::new(&PrometheusConfig::new("http://prometheus:9090"))?;
//! let answer = client.instant("sum(rate(http_requests_total[1m]))", None).await?;
//! let sample = answer.sample(false)?;
//! # Ok(()) }
//! ```

pub mod config;
pub mod error;
pub mod history;
pub mod response;

pub use config::{BasicAuth, PrometheusConfig, RetryConfig, TlsConfig};
pub use error::{PrometheusError, QueryFailure};
pub use response::{
    InstantData, InstantResult, InstantSeries, Labels, RangeResult, RangeSeries, decode_instant,
    decode_range, labels_text,
};

use crate::engine::Sample;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{Certificate, Identity, Method, StatusCode};
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use url::Url;

/// Queries whose GET URL would be longer than this many bytes are sent as a form-encoded POST,
/// which proxies and servers do not truncate.
pub const MAX_GET_URL: usize = 1500;

/// How long a credential read from a file is used before the file is read again.
const CREDENTIAL_REFRESH: Duration = Duration::from_secs(60);

/// A Prometheus HTTP API client. Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct PrometheusClient {
    inner: Arc<Inner>,
    retry: RetryConfig,
}

struct Inner {
    http: reqwest::Client,
    query_url: Url,
    range_url: Url,
    timeout: Duration,
    auth: Auth,
}

enum Auth {
    None,
    Bearer(SecretFile),
    Basic {
        username: String,
        password: SecretFile,
    },
}

impl PrometheusClient {
    /// The same client, sharing its connections, with retries that end after at most
    /// `budget` (a tick's retries end with its interval).
    pub fn with_retry_budget(&self, budget: Duration) -> PrometheusClient {
        let mut c = self.clone();
        c.retry.budget = c.retry.budget.min(budget);
        c
    }

    /// A client for `config`. Reads the credential and certificate files now, so that a missing
    /// or invalid file is reported at start-up.
    pub fn new(config: &PrometheusConfig) -> Result<PrometheusClient, PrometheusError> {
        let base = base_url(&config.url)?;
        let endpoint = |path: &str| {
            base.join(path).map_err(|e| PrometheusError::Url {
                url: config.url.clone(),
                reason: e.to_string(),
            })
        };
        let query_url = endpoint("api/v1/query")?;
        let range_url = endpoint("api/v1/query_range")?;
        if config.timeout.is_zero() {
            return Err(PrometheusError::Config(
                "timeout must be more than zero".into(),
            ));
        }

        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("setpoint/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers(config)?)
            .timeout(config.timeout)
            .connect_timeout(config.timeout);
        if let Some(ca) = &config.tls.ca_file {
            let pem = read_file("CA", ca)?;
            let certs = Certificate::from_pem_bundle(&pem).map_err(|e| file_error("CA", ca, e))?;
            if certs.is_empty() {
                return Err(file_error("CA", ca, "no PEM certificate found"));
            }
            builder = builder.tls_certs_only(certs);
        }
        match (&config.tls.cert_file, &config.tls.key_file) {
            (Some(cert), Some(key)) => {
                let mut pem = read_file("client certificate", cert)?;
                pem.push(b'\n');
                pem.extend_from_slice(&read_file("client key", key)?);
                // reqwest's messages name no key material; still, show only its own kind.
                let identity = Identity::from_pem(&pem).map_err(|e| {
                    PrometheusError::Config(format!(
                        "client certificate {} with key {}: {}",
                        cert.display(),
                        key.display(),
                        crate::text::error_chain(&e)
                    ))
                })?;
                builder = builder.identity(identity);
            }
            (None, None) => {}
            _ => {
                return Err(PrometheusError::Config(
                    "tls.certFile and tls.keyFile go together: give both or neither".into(),
                ));
            }
        }
        let http = builder.build().map_err(|e| {
            PrometheusError::Config(format!(
                "cannot build the HTTP client: {}",
                crate::text::error_chain(&e)
            ))
        })?;

        let auth = match (&config.bearer_token_file, &config.basic_auth) {
            (Some(_), Some(_)) => {
                return Err(PrometheusError::Config(
                    "bearerTokenFile and basicAuth exclude each other: give one".into(),
                ));
            }
            (Some(path), None) => Auth::Bearer(SecretFile::open("bearer token", path)?),
            (None, Some(basic)) => Auth::Basic {
                username: basic.username.clone(),
                password: SecretFile::open("basic auth password", &basic.password_file)?,
            },
            (None, None) => Auth::None,
        };

        Ok(PrometheusClient {
            inner: Arc::new(Inner {
                http,
                query_url,
                range_url,
                timeout: config.timeout,
                auth,
            }),
            retry: config.retry,
        })
    }

    /// The same client (same connections) with other retry settings, for example a budget that
    /// ends with the caller's tick.
    pub fn with_retry(&self, retry: RetryConfig) -> PrometheusClient {
        PrometheusClient {
            inner: self.inner.clone(),
            retry,
        }
    }

    /// The `/api/v1/query` URL that instant queries go to.
    pub fn query_url(&self) -> &Url {
        &self.inner.query_url
    }

    /// The `/api/v1/query_range` URL that range queries go to.
    pub fn range_url(&self) -> &Url {
        &self.inner.range_url
    }

    /// Evaluates `query` at `time` (Unix seconds; the server's "now" when None).
    pub async fn instant(
        &self,
        query: &str,
        time: Option<f64>,
    ) -> Result<InstantResult, PrometheusError> {
        let mut params = vec![("query", query.to_string())];
        if let Some(t) = time {
            params.push(("time", seconds(t)));
        }
        let (body, attempts, elapsed) = self.send(&self.inner.query_url, query, &params).await?;
        decode_instant(query, &body).map_err(|cause| PrometheusError::Query {
            query: query.to_string(),
            attempts,
            elapsed,
            cause,
        })
    }

    /// Evaluates `query` from `start` to `end` (Unix seconds, inclusive) every `step`.
    pub async fn range(
        &self,
        query: &str,
        start: f64,
        end: f64,
        step: Duration,
    ) -> Result<RangeResult, PrometheusError> {
        let params = [
            ("query", query.to_string()),
            ("start", seconds(start)),
            ("end", seconds(end)),
            ("step", seconds(step.as_secs_f64())),
        ];
        let (body, attempts, elapsed) = self.send(&self.inner.range_url, query, &params).await?;
        decode_range(query, &body).map_err(|cause| PrometheusError::Query {
            query: query.to_string(),
            attempts,
            elapsed,
            cause,
        })
    }

    /// One value for the engine: [`instant`](Self::instant) then
    /// [`InstantResult::sample`]. Any failure becomes [`Sample::NoData`] with the error's
    /// message as the reason, never zero.
    pub async fn sample(&self, query: &str, time: Option<f64>, sum: bool) -> Sample {
        let result = match self.instant(query, time).await {
            Ok(r) => r,
            Err(e) => return Sample::no_data(e.to_string()),
        };
        match result.sample(sum) {
            Ok(s) => s,
            Err(cause) => Sample::no_data(
                PrometheusError::Query {
                    query: query.to_string(),
                    attempts: 0,
                    elapsed: Duration::ZERO,
                    cause,
                }
                .to_string(),
            ),
        }
    }

    /// Sends one API request, retrying transient failures within the retry budget. Returns the
    /// body of the successful answer, the attempts made and the time spent.
    async fn send(
        &self,
        endpoint: &Url,
        query: &str,
        params: &[(&str, String)],
    ) -> Result<(bytes::Bytes, u32, Duration), PrometheusError> {
        let encoded = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        let request = if endpoint.as_str().len() + 1 + encoded.len() > MAX_GET_URL {
            Prepared {
                method: Method::POST,
                url: endpoint.clone(),
                body: Some(encoded),
            }
        } else {
            let mut url = endpoint.clone();
            url.set_query(Some(&encoded));
            Prepared {
                method: Method::GET,
                url,
                body: None,
            }
        };

        let start = Instant::now();
        let deadline = start + self.retry.budget;
        let mut backoff = self.retry.initial_backoff;
        let mut attempts = 0;
        loop {
            attempts += 1;
            // Each attempt's timeout is cut to what is left of the budget. A zero budget means
            // one attempt with the full timeout.
            let timeout = if self.retry.budget.is_zero() {
                self.inner.timeout
            } else {
                self.inner
                    .timeout
                    .min(deadline.saturating_duration_since(Instant::now()))
                    .max(MIN_ATTEMPT)
            };
            let failure = match self.attempt(&request, endpoint, timeout).await {
                Ok(body) => return Ok((body, attempts, start.elapsed())),
                Err(failure) => failure,
            };
            let fail = |cause| PrometheusError::Query {
                query: query.to_string(),
                attempts,
                elapsed: start.elapsed(),
                cause,
            };
            if !failure.cause.is_transient() {
                return Err(fail(failure.cause));
            }
            let wait = jitter(backoff).max(failure.retry_after.unwrap_or_default());
            // Give up when, after the wait, too little would be left for a useful attempt.
            let left = deadline.saturating_duration_since(Instant::now());
            if wait + MIN_ATTEMPT > left {
                return Err(fail(failure.cause));
            }
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(self.retry.max_backoff);
        }
    }

    async fn attempt(
        &self,
        request: &Prepared,
        endpoint: &Url,
        timeout: Duration,
    ) -> Result<bytes::Bytes, Failure> {
        let transport = |e: reqwest::Error| Failure::from_transport(e, endpoint, timeout);
        let mut builder = self
            .inner
            .http
            .request(request.method.clone(), request.url.clone())
            .timeout(timeout);
        if let Some(body) = &request.body {
            builder = builder
                .header(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                )
                .body(body.clone());
        }
        builder = match &self.inner.auth {
            Auth::None => builder,
            Auth::Bearer(token) => builder.bearer_auth(token.get().map_err(Failure::permanent)?),
            Auth::Basic { username, password } => {
                builder.basic_auth(username, Some(password.get().map_err(Failure::permanent)?))
            }
        };
        let response = builder.send().await.map_err(transport)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response.bytes().await.map_err(transport)?;
        if status == StatusCode::OK {
            return Ok(body);
        }
        let cause = match response::decode_error(&body) {
            Some((error_type, error)) => QueryFailure::Api {
                status: status.as_u16(),
                error_type,
                error,
            },
            None => QueryFailure::Http {
                status: status.as_u16(),
                body: response::snippet(&body),
            },
        };
        Err(Failure { cause, retry_after })
    }
}

/// Shortest time worth starting another attempt in.
const MIN_ATTEMPT: Duration = Duration::from_millis(10);

/// A request ready to send (again).
struct Prepared {
    method: Method,
    url: Url,
    body: Option<String>,
}

/// One failed attempt.
struct Failure {
    cause: QueryFailure,
    retry_after: Option<Duration>,
}

impl Failure {
    fn permanent(cause: QueryFailure) -> Failure {
        Failure {
            cause,
            retry_after: None,
        }
    }

    fn from_transport(e: reqwest::Error, endpoint: &Url, timeout: Duration) -> Failure {
        let url = endpoint.to_string();
        let cause = if e.is_timeout() {
            QueryFailure::Timeout { url, timeout }
        } else if e.is_connect() {
            QueryFailure::Connect {
                url,
                message: crate::text::error_chain(&e.without_url()),
            }
        } else {
            QueryFailure::Transport {
                url,
                message: crate::text::error_chain(&e.without_url()),
            }
        };
        Failure::permanent(cause)
    }
}

/// A random wait between half of `backoff` and all of it ("equal jitter"), so that clients that
/// failed together do not retry together.
fn jitter(backoff: Duration) -> Duration {
    // A fresh RandomState is randomly keyed: hashing anything with it gives a random number.
    let random = RandomState::new().hash_one(Instant::now());
    let fraction = (random >> 11) as f64 / (1u64 << 53) as f64;
    backoff.mul_f64(0.5 + 0.5 * fraction)
}

/// Unix seconds (or a step) as the API takes them: plain decimal, no exponent.
fn seconds(t: f64) -> String {
    format!("{t}")
}

pub(crate) fn base_url(raw: &str) -> Result<Url, PrometheusError> {
    let bad = |reason: &str| PrometheusError::Url {
        // Never echo credentials, even the refused ones.
        url: redacted(raw),
        reason: reason.to_string(),
    };
    let mut url = Url::parse(raw.trim()).map_err(|e| bad(&e.to_string()))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(bad("expected an http:// or https:// URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "credentials in the URL are not accepted: use basicAuth with a passwordFile",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("expected no query string or fragment in the base URL"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// `raw` with any `user:password@` part replaced.
fn redacted(raw: &str) -> String {
    match (raw.find("://"), raw.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}<redacted>@{}", &raw[..scheme_end + 3], &raw[at + 1..])
        }
        _ => raw.to_string(),
    }
}

pub(crate) fn headers(config: &PrometheusConfig) -> Result<HeaderMap, PrometheusError> {
    let mut map = HeaderMap::new();
    for (name, value) in &config.headers {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            PrometheusError::Config(format!(
                "header name {name:?} is not a valid HTTP header name"
            ))
        })?;
        // The value may be a credential: name the header only.
        let mut value = HeaderValue::from_str(value).map_err(|_| {
            PrometheusError::Config(format!(
                "the value of header {name:?} is not a valid HTTP header value"
            ))
        })?;
        value.set_sensitive(true);
        map.insert(header, value);
    }
    Ok(map)
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, PrometheusError> {
    std::fs::read(path).map_err(|e| file_error(what, path, e))
}

fn file_error(what: &'static str, path: &Path, e: impl fmt::Display) -> PrometheusError {
    PrometheusError::File {
        what,
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// A credential kept in a file, re-read every [`CREDENTIAL_REFRESH`]. `Debug` shows the path only.
struct SecretFile {
    what: &'static str,
    path: PathBuf,
    cached: Mutex<(Instant, Arc<str>)>,
}

impl SecretFile {
    fn open(what: &'static str, path: &Path) -> Result<SecretFile, PrometheusError> {
        let value = read_secret(what, path).map_err(|reason| PrometheusError::File {
            what,
            path: path.to_path_buf(),
            reason,
        })?;
        Ok(SecretFile {
            what,
            path: path.to_path_buf(),
            cached: Mutex::new((Instant::now(), value)),
        })
    }

    fn get(&self) -> Result<Arc<str>, QueryFailure> {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if cached.0.elapsed() >= CREDENTIAL_REFRESH {
            let value =
                read_secret(self.what, &self.path).map_err(|reason| QueryFailure::Credentials {
                    what: self.what,
                    path: self.path.clone(),
                    reason,
                })?;
            *cached = (Instant::now(), value);
        }
        Ok(cached.1.clone())
    }
}

/// Reads a credential: UTF-8, surrounding whitespace (a trailing newline) removed, not empty.
/// The error says what is wrong, never what the file holds.
fn read_secret(what: &str, path: &Path) -> Result<Arc<str>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let text = String::from_utf8(bytes).map_err(|_| format!("the {what} is not UTF-8 text"))?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(format!("the file is empty: expected a {what}"));
    }
    Ok(Arc::from(trimmed))
}

impl fmt::Debug for SecretFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretFile")
            .field("what", &self.what)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for PrometheusClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth: &dyn fmt::Debug = match &self.inner.auth {
            Auth::None => &"none",
            Auth::Bearer(token) => token,
            Auth::Basic { password, .. } => password,
        };
        f.debug_struct("PrometheusClient")
            .field("query_url", &self.inner.query_url.as_str())
            .field("range_url", &self.inner.range_url.as_str())
            .field("timeout", &self.inner.timeout)
            .field("auth", auth)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_keep_the_path_prefix() {
        for (base, want) in [
            ("http://prom:9090", "http://prom:9090/api/v1/query"),
            ("http://prom:9090/", "http://prom:9090/api/v1/query"),
            (
                "http://thanos/tenant-a",
                "http://thanos/tenant-a/api/v1/query",
            ),
            (
                "http://thanos/tenant-a/",
                "http://thanos/tenant-a/api/v1/query",
            ),
            (
                "https://mimir.example/prometheus/x/",
                "https://mimir.example/prometheus/x/api/v1/query",
            ),
        ] {
            let c = PrometheusClient::new(&PrometheusConfig::new(base)).unwrap();
            assert_eq!(c.query_url().as_str(), want, "{base}");
            assert!(c.range_url().as_str().ends_with("/api/v1/query_range"));
        }
    }

    #[test]
    fn bad_base_urls() {
        for (base, why) in [
            ("prom:9090", "expected an http"),
            ("ftp://prom", "expected an http"),
            ("http://prom/?x=1", "no query string"),
            ("not a url", "relative URL"),
        ] {
            let e = PrometheusClient::new(&PrometheusConfig::new(base)).unwrap_err();
            assert!(e.to_string().contains(why), "{base}: {e}");
        }
    }

    #[test]
    fn credentials_in_the_url_are_refused_and_not_echoed() {
        let e = PrometheusClient::new(&PrometheusConfig::new("http://admin:s3cr3t@prom:9090"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("use basicAuth"), "{e}");
        assert!(!e.contains("s3cr3t"), "{e}");
        assert!(!e.contains("admin"), "{e}");
    }

    #[test]
    fn jitter_stays_within_half_and_full_backoff() {
        let b = Duration::from_millis(100);
        let waits: Vec<Duration> = (0..200).map(|_| jitter(b)).collect();
        assert!(waits.iter().all(|w| *w >= b / 2 && *w <= b));
        assert!(waits.iter().any(|w| *w != waits[0]), "no randomness");
    }

    #[test]
    fn seconds_are_plain_decimals() {
        assert_eq!(seconds(1_700_000_000.0), "1700000000");
        assert_eq!(seconds(1_700_000_000.25), "1700000000.25");
        assert_eq!(seconds(60.0), "60");
        assert_eq!(seconds(0.5), "0.5");
    }

    #[test]
    fn invalid_headers_are_named_without_their_value() {
        let mut c = PrometheusConfig::new("http://p");
        c.headers.insert("X-Token".into(), "abc\nsecret".into());
        let e = PrometheusClient::new(&c).unwrap_err().to_string();
        assert!(e.contains("X-Token"), "{e}");
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn credential_files_are_re_read_after_a_minute() {
        let dir = std::env::temp_dir().join(format!("setpoint-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "first-SECRET\n").unwrap();
        let file = SecretFile::open("bearer token", &path).unwrap();
        assert!(!format!("{file:?}").contains("SECRET"));
        std::fs::write(&path, "second-SECRET\n").unwrap();
        assert_eq!(&*file.get().unwrap(), "first-SECRET", "cached");
        // A monotonic clock may start at boot: without a minute of it, stop here.
        let Some(past) = Instant::now().checked_sub(CREDENTIAL_REFRESH) else {
            return;
        };
        let age = |f: &SecretFile| f.cached.lock().unwrap().0 = past;
        age(&file);
        assert_eq!(&*file.get().unwrap(), "second-SECRET", "re-read");
        std::fs::remove_file(&path).unwrap();
        age(&file);
        let e = file.get().unwrap_err().to_string();
        assert!(e.starts_with("bearer token file"), "{e}");
        assert!(!e.contains("SECRET"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn cert_and_key_go_together() {
        let mut c = PrometheusConfig::new("https://p");
        c.tls.cert_file = Some("/nonexistent/cert.pem".into());
        let e = PrometheusClient::new(&c).unwrap_err().to_string();
        assert!(e.contains("give both or neither"), "{e}");
    }
}
