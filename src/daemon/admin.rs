//! The admin HTTP server: health, readiness, the daemon's metrics and its current
//! recommendations.
//!
//! | route | answer |
//! |---|---|
//! | `GET /healthz` | 200 `ok` while the process serves HTTP |
//! | `GET /readyz` | 200 when at least one policy is loaded and the API server was reached within [`AdminConfig::api_fresh_for`]; else 503. JSON [`Readiness`] either way, with the reasons |
//! | `GET /metrics` | the [`Telemetry`] registry as OpenMetrics text ([`METRICS_CONTENT_TYPE`]) |
//! | `GET /recommendations` | JSON [`Recommendations`]: the last decision of every policy as a [`PolicyRecommendation`], and the error of every invalid policy file |
//!
//! The control loop owns an [`AdminState`] (a cheap handle; clones share it) and updates it as it
//! goes; [`serve`] answers from it. Nothing secret is ever in an answer: the state holds no
//! credentials, and every string of `/recommendations` passes through [`redact`] (URL user info,
//! `Bearer`/`Basic` credentials, `token=`-style parameters) in case an error message quoted one.

use super::telemetry::Telemetry;
use crate::engine::Decision;
use crate::policy::{Mode, Policy, TargetRef};
use crate::tick::vertical::VerticalOutcome;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::{Future, IntoFuture};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};
use tokio::net::TcpListener;

/// Content type of `/metrics`.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What replaces a credential in an answer.
pub const REDACTED: &str = "[redacted]";

/// Settings of the admin server.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminConfig {
    /// `/readyz` fails when the API server was last reached longer ago than this.
    pub api_fresh_for: Duration,
    /// After the shutdown signal, open connections get this long to finish before [`serve`]
    /// returns anyway (keep it below the pod's `terminationGracePeriodSeconds`).
    pub drain_timeout: Duration,
}

impl Default for AdminConfig {
    /// API freshness 60 s (four 15 s ticks), drain 5 s.
    fn default() -> Self {
        AdminConfig {
            api_fresh_for: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(5),
        }
    }
}

/// The last decision of one policy: the serde form of [`Decision`] (`currentReplicas`,
/// `desiredReplicas`, `explanation`) with the policy's name, target and mode and the time of the
/// decision, and for a policy with a vertical part its plan and what became of it
/// (`vertical`). `setpoint recommend --output json` prints the same shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRecommendation {
    /// metadata.name of the policy.
    pub policy: String,
    /// The scale target.
    pub target: TargetRef,
    /// The mode the decision was made in: `recommend` when the policy says so or the daemon runs
    /// with `--dry-run`.
    pub mode: Mode,
    /// When the decision was made (RFC 3339, UTC, milliseconds).
    #[serde(with = "rfc3339")]
    pub time: SystemTime,
    /// The horizontal decision and its explanation (None for a vertical-only policy).
    #[serde(flatten)]
    pub decision: Option<Decision>,
    /// The vertical part's recommendations per container, its plan, and what was written.
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub vertical: Option<VerticalOutcome>,
    /// When the daemon last changed the target's replica count (RFC 3339, whole seconds; the
    /// status's `lastScaleTime`). None in `recommend`'s output and before any change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<String>,
}

impl PolicyRecommendation {
    /// The recommendation of `policy` in its own mode. Set [`PolicyRecommendation::mode`] to
    /// [`Mode::Recommend`] under `--dry-run`.
    pub fn new(policy: &Policy, decision: Decision, time: SystemTime) -> PolicyRecommendation {
        PolicyRecommendation {
            policy: policy.name.clone(),
            target: policy.target.clone(),
            mode: policy.mode,
            time,
            decision: Some(decision),
            vertical: None,
            last_scale_time: None,
        }
    }

    /// The recommendation of a policy without a horizontal part.
    pub fn vertical_only(
        policy: &Policy,
        vertical: VerticalOutcome,
        time: SystemTime,
    ) -> PolicyRecommendation {
        PolicyRecommendation {
            policy: policy.name.clone(),
            target: policy.target.clone(),
            mode: policy.mode,
            time,
            decision: None,
            vertical: Some(vertical),
            last_scale_time: None,
        }
    }
}

/// A policy file that failed to load, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvalidPolicy {
    /// The policy's name, or the file's path when no name could be read.
    pub policy: String,
    /// The error, as `setpoint check` prints it (redacted).
    pub error: String,
}

/// A running policy whose last tick failed, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailingPolicy {
    /// The policy's name.
    pub policy: String,
    /// The error of its last tick (redacted).
    pub error: String,
}

/// The body of `/recommendations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recommendations {
    /// The last decision of every policy that has made one, sorted by policy name.
    pub recommendations: Vec<PolicyRecommendation>,
    /// Every policy file with an error, sorted by name. A policy can be in both lists: a broken
    /// new version of a file leaves the previous version running.
    pub invalid: Vec<InvalidPolicy>,
    /// Every running policy whose last tick failed (the target is gone, a missing RBAC right,
    /// the API server not answering), sorted by name. Its last decision, if any, stays in
    /// `recommendations`.
    #[serde(default)]
    pub failing: Vec<FailingPolicy>,
}

/// The body of `/readyz`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Readiness {
    /// Whether the daemon is ready.
    pub ready: bool,
    /// Why not (empty when ready).
    pub reasons: Vec<String>,
    /// Policies running.
    pub policies_loaded: usize,
    /// Policy files with errors.
    pub policies_invalid: usize,
    /// Seconds since the API server was last reached, if ever.
    pub api_last_ok_seconds_ago: Option<f64>,
}

#[derive(Default)]
struct View {
    recommendations: BTreeMap<String, PolicyRecommendation>,
    invalid: BTreeMap<String, String>,
    failing: BTreeMap<String, String>,
    loaded: usize,
    api_ok: Option<Instant>,
}

struct Shared {
    telemetry: Telemetry,
    config: AdminConfig,
    view: Mutex<View>,
}

/// What the admin server shows, updated by the control loop. A cheap handle: clones share one
/// state.
#[derive(Clone)]
pub struct AdminState {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl AdminState {
    /// An empty state: no policy loaded, the API server not reached yet (so not ready).
    pub fn new(telemetry: Telemetry, config: AdminConfig) -> AdminState {
        AdminState {
            shared: Arc::new(Shared {
                telemetry,
                config,
                view: Mutex::new(View::default()),
            }),
        }
    }

    /// The metrics served on `/metrics`.
    pub fn telemetry(&self) -> &Telemetry {
        &self.shared.telemetry
    }

    /// The settings.
    pub fn config(&self) -> &AdminConfig {
        &self.shared.config
    }

    fn view(&self) -> MutexGuard<'_, View> {
        // A panic while holding the lock leaves a consistent view (every update is one insert
        // or remove), so a poisoned lock is still usable.
        self.shared
            .view
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Shows `rec` as the latest decision of its policy, replacing the previous one.
    pub fn publish(&self, rec: PolicyRecommendation) {
        self.view().recommendations.insert(rec.policy.clone(), rec);
    }

    /// Forgets a policy that is gone (its file was deleted or renamed): its recommendation, its
    /// error and its series on `/metrics`. Call [`AdminState::set_loaded`] with the new count too.
    pub fn remove(&self, policy: &str) {
        let counts = {
            let mut view = self.view();
            view.recommendations.remove(policy);
            view.invalid.remove(policy);
            view.failing.remove(policy);
            (view.loaded, view.invalid.len())
        };
        self.shared.telemetry.forget_policy(policy);
        self.shared.telemetry.set_policies(counts.0, counts.1);
    }

    /// Records that a policy file has an error. `policy` is the policy's name, or the file's
    /// path when no name could be read; `error` is shown redacted.
    pub fn set_invalid(&self, policy: &str, error: &str) {
        let counts = {
            let mut view = self.view();
            view.invalid.insert(policy.to_owned(), redact(error));
            (view.loaded, view.invalid.len())
        };
        self.shared.telemetry.set_policies(counts.0, counts.1);
    }

    /// Records the error of a policy's last tick, or (None) that its last tick worked.
    pub fn set_error(&self, policy: &str, error: Option<&str>) {
        let mut view = self.view();
        match error {
            Some(e) => {
                view.failing.insert(policy.to_owned(), redact(e));
            }
            None => {
                view.failing.remove(policy);
            }
        }
    }

    /// Records that a policy file no longer has an error.
    pub fn clear_invalid(&self, policy: &str) {
        let counts = {
            let mut view = self.view();
            view.invalid.remove(policy);
            (view.loaded, view.invalid.len())
        };
        self.shared.telemetry.set_policies(counts.0, counts.1);
    }

    /// Sets the number of policies running (including those whose newer file is invalid and
    /// whose previous version still runs). Also sets `setpoint_policies`.
    pub fn set_loaded(&self, loaded: usize) {
        let invalid = {
            let mut view = self.view();
            view.loaded = loaded;
            view.invalid.len()
        };
        self.shared.telemetry.set_policies(loaded, invalid);
    }

    /// Records that a call to the API server succeeded at `now`.
    pub fn mark_api_ok(&self, now: Instant) {
        let mut view = self.view();
        if view.api_ok.is_none_or(|t| t < now) {
            view.api_ok = Some(now);
        }
    }

    /// Whether the daemon is ready at `now`, and why not.
    pub fn readiness(&self, now: Instant) -> Readiness {
        let view = self.view();
        let mut reasons = Vec::new();
        if view.loaded == 0 {
            if view.invalid.is_empty() {
                reasons.push("no policy loaded".to_owned());
            } else {
                let names: Vec<&str> = view.invalid.keys().map(String::as_str).collect();
                reasons.push(format!(
                    "no policy loaded: {} invalid ({})",
                    names.len(),
                    names.join(", ")
                ));
            }
        }
        let fresh = self.shared.config.api_fresh_for;
        let ago = view.api_ok.map(|t| now.saturating_duration_since(t));
        match ago {
            None => reasons.push("the API server has not been reached yet".to_owned()),
            Some(ago) if ago > fresh => reasons.push(format!(
                "the API server was last reached {:.0}s ago (limit {}s)",
                ago.as_secs_f64(),
                fresh.as_secs_f64()
            )),
            Some(_) => {}
        }
        Readiness {
            ready: reasons.is_empty(),
            reasons,
            policies_loaded: view.loaded,
            policies_invalid: view.invalid.len(),
            api_last_ok_seconds_ago: ago.map(|d| d.as_secs_f64()),
        }
    }

    /// What `/recommendations` shows (not yet redacted; the server redacts every string).
    pub fn recommendations(&self) -> Recommendations {
        let view = self.view();
        Recommendations {
            recommendations: view.recommendations.values().cloned().collect(),
            invalid: view
                .invalid
                .iter()
                .map(|(policy, error)| InvalidPolicy {
                    policy: policy.clone(),
                    error: error.clone(),
                })
                .collect(),
            failing: view
                .failing
                .iter()
                .map(|(policy, error)| FailingPolicy {
                    policy: policy.clone(),
                    error: error.clone(),
                })
                .collect(),
        }
    }
}

/// The routes, for embedding or for tests that drive them without a socket.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/recommendations", get(recommendations))
        .fallback(not_found)
        .with_state(state)
}

/// Serves the admin routes on `listener` until `shutdown` completes, then stops accepting, lets
/// open requests finish (idle keep-alive connections are closed at once) and returns, at the
/// latest [`AdminConfig::drain_timeout`] after the signal: connections still open then are left
/// to end with the runtime.
pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let drain = state.config().drain_timeout;
    let (signalled, on_signal) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        let _ = signalled.send(());
    };
    let server = axum::serve(listener, router(state))
        .with_graceful_shutdown(signal)
        .into_future();
    let deadline = async move {
        match on_signal.await {
            Ok(()) => tokio::time::sleep(drain).await,
            // The server ended before any signal: let its result win.
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        result = server => result,
        () = deadline => Ok(()),
    }
}

async fn healthz() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "ok\n",
    )
        .into_response()
}

async fn readyz(State(state): State<AdminState>) -> Response {
    let readiness = state.readiness(Instant::now());
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(readiness)).into_response()
}

async fn metrics(State(state): State<AdminState>) -> Response {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        state.telemetry().encode(),
    )
        .into_response()
}

async fn recommendations(State(state): State<AdminState>) -> Response {
    match serde_json::to_value(state.recommendations()) {
        Ok(mut value) => {
            redact_json(&mut value);
            axum::Json(value).into_response()
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the recommendations: {e}\n"),
        )
            .into_response(),
    }
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        "not found; routes: /healthz /readyz /metrics /recommendations\n",
    )
        .into_response()
}

/// Replaces every string in a JSON value with its [`redact`]ed form.
fn redact_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) => {
            let r = redact(s);
            if r != *s {
                *s = r;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_json),
        serde_json::Value::Object(map) => map.values_mut().for_each(redact_json),
        _ => {}
    }
}

/// Hides credentials that an error message might quote: the user info of URLs
/// (`https://user:pass@host` → `https://[redacted]@host`), `Bearer` and `Basic` credentials, and
/// the values of `token=`, `access_token=`, `password=`, `secret=`, `api_key=` and `apikey=`
/// parameters. Defence in depth: the sources already keep credentials out of their messages.
pub fn redact(text: &str) -> String {
    let mut out = redact_userinfo(text);
    for scheme in ["bearer ", "basic "] {
        out = mask_after(&out, scheme, |v| {
            v.len() >= 8
                && v.bytes().all(|b| {
                    b.is_ascii_alphanumeric()
                        || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
                })
        });
    }
    for key in [
        "access_token=",
        "token=",
        "password=",
        "passwd=",
        "secret=",
        "api_key=",
        "apikey=",
    ] {
        out = mask_after(&out, key, |v| !v.is_empty());
    }
    out
}

/// Where a URL's authority, or a credential value, ends.
fn ends_value(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '/' | '?' | '#' | '"' | '\'' | '<' | '>' | '`' | ',' | ';' | '&' | ')'
        )
}

fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail.find(ends_value).unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) if at > 0 => {
                out.push_str(REDACTED);
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Replaces the value after each case-insensitive occurrence of `key` with [`REDACTED`] when
/// `secret_like` says it looks like a credential.
fn mask_after(text: &str, key: &str, secret_like: impl Fn(&str) -> bool) -> String {
    // ASCII lower-casing keeps byte offsets, so offsets found in `lower` index `text`.
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    while let Some(found) = lower[pos..].find(key) {
        let start = pos + found;
        // Only at a word start: `mytoken=` is not `token=`, but `?token=` and ` token=` are.
        let at_word_start = text[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_');
        let value_start = start + key.len();
        let value_len = text[value_start..]
            .find(ends_value)
            .unwrap_or(text.len() - value_start);
        let value = &text[value_start..value_start + value_len];
        out.push_str(&text[pos..value_start]);
        if at_word_start && value != REDACTED && secret_like(value) {
            out.push_str(REDACTED);
        } else {
            out.push_str(value);
        }
        pos = value_start + value_len;
    }
    out.push_str(&text[pos..]);
    out
}

/// RFC 3339 timestamps (UTC, milliseconds) for [`PolicyRecommendation::time`].
mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};
    use std::time::SystemTime;

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_millis(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_rfc3339(&text).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_url_user_info() {
        assert_eq!(
            redact("cannot connect to https://admin:hunter2@prom:9090/api/v1/query: refused"),
            "cannot connect to https://[redacted]@prom:9090/api/v1/query: refused"
        );
        assert_eq!(
            redact("see http://prom:9090/graph and http://u@h"),
            "see http://prom:9090/graph and http://[redacted]@h"
        );
    }

    #[test]
    fn redacts_bearer_and_basic_credentials_but_not_prose() {
        assert_eq!(
            redact("Authorization: Bearer eyJhbGciOi.J9xyz, then"),
            "Authorization: Bearer [redacted], then"
        );
        assert_eq!(
            redact("header basic dXNlcjpwYXNz"),
            "header basic [redacted]"
        );
        let prose = "basic auth password file /etc/p: not found; bearer token file missing";
        assert_eq!(redact(prose), prose);
    }

    #[test]
    fn redacts_credential_parameters() {
        assert_eq!(
            redact("GET /q?query=up&token=abc123&x=1 and password=p4ss; access_token=zz"),
            "GET /q?query=up&token=[redacted]&x=1 and password=[redacted]; access_token=[redacted]"
        );
        assert_eq!(redact("mytoken=abc"), "mytoken=abc");
        assert_eq!(redact("token="), "token=");
    }

    #[test]
    fn redaction_is_idempotent_and_keeps_plain_text() {
        let plain = "Deployment web not found (404); rate(http_requests_total[1m]) ≥ 3";
        assert_eq!(redact(plain), plain);
        let once = redact("https://a:b@h/ token=x Bearer abcdefgh12");
        assert_eq!(redact(&once), once);
    }

    #[test]
    fn readiness_needs_policies_and_a_recent_api_call() {
        let state = AdminState::new(
            Telemetry::new(),
            AdminConfig {
                api_fresh_for: Duration::from_secs(60),
                ..AdminConfig::default()
            },
        );
        let t0 = Instant::now();
        let r = state.readiness(t0);
        assert!(!r.ready);
        assert_eq!(r.reasons.len(), 2, "{:?}", r.reasons);

        state.set_invalid("broken", "broken.yaml:3:1: spec: missing field `target`");
        state.mark_api_ok(t0);
        let r = state.readiness(t0 + Duration::from_secs(1));
        assert_eq!(r.reasons, ["no policy loaded: 1 invalid (broken)"]);

        state.set_loaded(1);
        assert!(state.readiness(t0 + Duration::from_secs(60)).ready);
        let r = state.readiness(t0 + Duration::from_secs(61));
        assert!(!r.ready);
        assert_eq!(
            r.reasons,
            ["the API server was last reached 61s ago (limit 60s)"]
        );

        // An older report does not move the last success back.
        state.mark_api_ok(t0 + Duration::from_secs(30));
        state.mark_api_ok(t0);
        assert!(state.readiness(t0 + Duration::from_secs(61)).ready);
    }

    #[test]
    fn the_policy_gauge_follows_loaded_and_invalid() {
        let state = AdminState::new(Telemetry::new(), AdminConfig::default());
        state.set_loaded(2);
        state.set_invalid("a", "bad");
        state.set_invalid("b", "bad");
        state.clear_invalid("b");
        let text = state.telemetry().encode();
        assert!(text.contains("setpoint_policies{state=\"loaded\"} 2"));
        assert!(text.contains("setpoint_policies{state=\"invalid\"} 1"));
        state.remove("a");
        assert!(
            state
                .telemetry()
                .encode()
                .contains("setpoint_policies{state=\"invalid\"} 0")
        );
    }
}
