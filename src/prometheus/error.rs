//! Errors of the Prometheus client: [`PrometheusError`] and the cause of a failed query,
//! [`QueryFailure`].
//!
//! Messages name the query, the HTTP status and Prometheus's own `errorType` and `error`. They
//! never contain a credential: the client's URLs carry none (credentials in the base URL are
//! refused), and file contents are never quoted.

use std::path::PathBuf;
use std::time::Duration;

/// Longest part of a query shown in a message; the full text stays in the error's field.
const QUERY_SHOWN: usize = 400;

/// Errors from building the client or from one query.
#[derive(Debug, thiserror::Error)]
pub enum PrometheusError {
    /// The base URL is unusable.
    #[error("invalid Prometheus URL {url:?}: {reason}")]
    Url {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A credential or certificate file could not be read or is invalid.
    #[error("{what} file {}: {reason}", path.display())]
    File {
        /// Which file: "bearer token", "basic auth password", "CA", "client certificate", ...
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// What went wrong (never the file's content).
        reason: String,
    },
    /// Another configuration problem.
    #[error("invalid Prometheus client configuration: {0}")]
    Config(String),
    /// A query failed.
    #[error(
        "Prometheus query `{}` failed{}: {cause}",
        shorten(query),
        retried(*attempts, *elapsed)
    )]
    Query {
        /// The PromQL expression.
        query: String,
        /// HTTP attempts made (0 when the answer arrived but could not be used).
        attempts: u32,
        /// Time spent on all attempts and waits.
        elapsed: Duration,
        /// The last failure.
        cause: QueryFailure,
    },
}

/// Why a query failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryFailure {
    /// No connection could be made (refused, unreachable, DNS, TLS handshake).
    #[error("cannot connect to {url}: {message}")]
    Connect {
        /// The endpoint, without query parameters.
        url: String,
        /// The transport's explanation.
        message: String,
    },
    /// The attempt's timeout fired before a full answer arrived.
    #[error("no answer from {url} within {}", humantime::format_duration(*timeout))]
    Timeout {
        /// The endpoint, without query parameters.
        url: String,
        /// The timeout of that attempt.
        timeout: Duration,
    },
    /// The connection failed after it was made (reset, truncated body, ...).
    #[error("transport error talking to {url}: {message}")]
    Transport {
        /// The endpoint, without query parameters.
        url: String,
        /// The transport's explanation.
        message: String,
    },
    /// Prometheus refused or failed the query, with its own explanation.
    #[error("HTTP {status} {error_type}: {error}")]
    Api {
        /// The HTTP status code.
        status: u16,
        /// Prometheus's `errorType`: `bad_data`, `execution`, `timeout`, `canceled`, `internal`, ...
        error_type: String,
        /// Prometheus's `error` text.
        error: String,
    },
    /// An HTTP error without a Prometheus error body (a proxy, an authentication layer, ...).
    #[error("HTTP {status}: {body}")]
    Http {
        /// The HTTP status code.
        status: u16,
        /// The start of the body, on one line.
        body: String,
    },
    /// The answer is not a Prometheus API answer of the expected shape.
    #[error("cannot decode the answer: {message}")]
    Decode {
        /// What did not fit.
        message: String,
    },
    /// The query gave a result of another type than the caller can use.
    #[error("expected {expected}, got a {got} result")]
    ResultType {
        /// What the caller can use.
        expected: &'static str,
        /// The `resultType` received.
        got: &'static str,
    },
    /// An instant vector with several series where one value was wanted.
    #[error(
        "{} series returned where one was expected (aggregate them in the query, or ask to sum them): {}",
        labels.len(),
        list(labels)
    )]
    SeveralSeries {
        /// Each series' label set, as `name{label="value", ...}`.
        labels: Vec<String>,
    },
    /// A credential file could not be re-read.
    #[error("{what} file {}: {reason}", path.display())]
    Credentials {
        /// Which credential.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// What went wrong (never the file's content).
        reason: String,
    },
}

impl QueryFailure {
    /// Whether trying again may help: connection failures, timeouts, HTTP 5xx and 429.
    pub fn is_transient(&self) -> bool {
        match self {
            QueryFailure::Connect { .. }
            | QueryFailure::Timeout { .. }
            | QueryFailure::Transport { .. } => true,
            QueryFailure::Api { status, .. } | QueryFailure::Http { status, .. } => {
                *status == 429 || *status >= 500
            }
            QueryFailure::Decode { .. }
            | QueryFailure::ResultType { .. }
            | QueryFailure::SeveralSeries { .. }
            | QueryFailure::Credentials { .. } => false,
        }
    }
}

impl PrometheusError {
    /// The cause of a failed query (None for configuration errors).
    pub fn failure(&self) -> Option<&QueryFailure> {
        match self {
            PrometheusError::Query { cause, .. } => Some(cause),
            _ => None,
        }
    }

    /// HTTP attempts a failed query made (0 for configuration errors).
    pub fn attempts(&self) -> u32 {
        match self {
            PrometheusError::Query { attempts, .. } => *attempts,
            _ => 0,
        }
    }
}

fn shorten(query: &str) -> String {
    let one_line = query.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.len() <= QUERY_SHOWN {
        return one_line;
    }
    let mut end = QUERY_SHOWN;
    while !one_line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &one_line[..end], query.len())
}

fn retried(attempts: u32, elapsed: Duration) -> String {
    if attempts > 1 {
        let ms = Duration::from_millis(elapsed.as_millis() as u64);
        format!(
            " after {attempts} attempts in {}",
            humantime::format_duration(ms)
        )
    } else {
        String::new()
    }
}

fn list(labels: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut s = labels
        .iter()
        .take(SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if labels.len() > SHOWN {
        s.push_str(&format!(", and {} more", labels.len() - SHOWN));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_query_status_and_prometheus_text() {
        let e = PrometheusError::Query {
            query: "rate(x[5m]".into(),
            attempts: 1,
            elapsed: Duration::from_millis(3),
            cause: QueryFailure::Api {
                status: 400,
                error_type: "bad_data".into(),
                error: "1:11: parse error: unclosed left parenthesis".into(),
            },
        };
        assert_eq!(
            e.to_string(),
            "Prometheus query `rate(x[5m]` failed: HTTP 400 bad_data: \
             1:11: parse error: unclosed left parenthesis"
        );
        let e = PrometheusError::Query {
            query: "up".into(),
            attempts: 4,
            elapsed: Duration::from_millis(1234),
            cause: QueryFailure::Http {
                status: 503,
                body: "busy".into(),
            },
        };
        assert_eq!(
            e.to_string(),
            "Prometheus query `up` failed after 4 attempts in 1s 234ms: HTTP 503: busy"
        );
    }

    #[test]
    fn long_queries_are_shortened_in_messages_only() {
        let q = format!("sum({})", "x + ".repeat(500));
        let e = PrometheusError::Query {
            query: q.clone(),
            attempts: 1,
            elapsed: Duration::ZERO,
            cause: QueryFailure::Decode {
                message: "m".into(),
            },
        };
        let s = e.to_string();
        assert!(s.len() < 600, "{s}");
        assert!(s.contains(&format!("({} bytes)", q.len())), "{s}");
    }

    #[test]
    fn transient_failures() {
        let api = |status| QueryFailure::Api {
            status,
            error_type: "t".into(),
            error: "e".into(),
        };
        assert!(api(503).is_transient());
        assert!(api(500).is_transient());
        assert!(api(429).is_transient());
        assert!(!api(400).is_transient());
        assert!(!api(422).is_transient());
        let http = |status| QueryFailure::Http {
            status,
            body: String::new(),
        };
        assert!(!http(401).is_transient());
        assert!(!http(403).is_transient());
        assert!(http(502).is_transient());
    }
}
