//! One tick of one policy: observe, decide, govern, plan, act. [`run`] is the one call that
//! the daemon's worker (on a schedule, [`Hold`] from its Lease and `--dry-run`) and
//! `recommend` (once, [`Hold::ReadOnly`]) make; [`TickState`] is the one owner of what a
//! policy remembers from tick to tick (the governor's and the policies' memory, the counters
//! that become rates, the vertical recommenders and the planner's state).
//!
//! One tick:
//!
//! 1. **observe** the target: its `/scale` and its pods (API calls that fail with 429, 5xx or no
//!    answer are tried again while half the interval lasts); at the first tick, the memory a
//!    previous daemon kept on the target's annotation ([`restart`]); the pause annotations
//!    ([`crate::engine::pause`]: a ScalingPolicy object's own; for a policy file, its target's
//!    read on every tick, over the file's own); then every metric ([`Observer`]);
//! 2. **decide and govern** ([`crate::engine::decide`]), under the pause controls;
//! 3. **act** ([`act`]): patch `/scale` when [`act::Actuator::choose`] allows it. A 409
//!    Conflict (the target changed since it was read) reads the target again and decides again,
//!    up to [`CONFLICT_ATTEMPTS`] times. The governor commits the action only once the patch was
//!    made;
//! 4. **plan and act vertically** ([`usage::VerticalTick`], [`vertical::apply_vertical`]),
//!    writing nothing while a pause freezes the policy;
//! 5. return everything the caller publishes ([`TickOutcome`]).
//!
//! Rooms of this one:
//!
//! - [`observe`]: [`Observer`], which reads every metric of a policy for one tick.
//! - [`pods`]: metrics.k8s.io usage and scraped pod metrics (the HTTP scrape of the pods'
//!   `/metrics`), with the HPA's rules for pods that are not ready, still starting or without a
//!   metric. It lives here, not in an adapter, because it needs both the cluster's pods and the
//!   policy's queries; the pure ratio arithmetic is [`crate::engine::hpa`].
//! - [`usage`]: per-container CPU and memory usage and OOM kills for the vertical part (from
//!   Prometheus or metrics.k8s.io), its recommenders, and [`usage::VerticalTick`].
//! - [`vertical`]: [`vertical::apply_vertical`], the vertical part's act step.
//! - [`act`]: [`act::Actuator`] and [`Hold`]: the one place that answers "may this tick
//!   write?".
//! - [`restart`]: what the governor and the planner keep on the target's annotation.
//!
//! A source never invents a value: a failed, empty, NaN or infinite reading becomes
//! [`Sample::NoData`](crate::engine::Sample::NoData) with its reason.

pub mod act;
pub mod observe;
pub mod pods;
pub mod restart;
pub mod usage;
pub mod vertical;

pub use act::{Actuator, Hold, Why};
pub use observe::{MetricReading, ObserveError, Observer, TargetState};

use crate::cluster::{Cluster, ClusterError, ScaleState};
use crate::engine::pause::{self, Controls, Pause, PauseNote};
use crate::engine::vertical_plan::PlanState;
use crate::engine::{self, Algorithm, Decision, Horizontal, Observation, Seconds, State};
use crate::policy::{MetricQuery, Policy};
use crate::prometheus::{PrometheusClient, PrometheusError};
use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;
use tracing::{debug, info, warn};
use usage::{HistorySeed, Recommenders, UsageError, UsageSource, VerticalTick};
use vertical::VerticalOutcome;

/// The Prometheus of `policy`: a client of its own for `spec.prometheus`, else `default` (the
/// command's `--prometheus`, whose connections every such policy shares), else None. Built once
/// per policy and handed to its [`Observer`] and its [`usage::UsageSource`].
pub fn policy_prometheus(
    policy: &crate::policy::Policy,
    default: Option<&PrometheusClient>,
) -> Result<Option<PrometheusClient>, PrometheusError> {
    match &policy.prometheus {
        Some(config) => PrometheusClient::new(config).map(Some),
        None => Ok(default.cloned()),
    }
}

/// Attempts at one tick's patch when the target keeps changing under it (409 Conflict).
pub const CONFLICT_ATTEMPTS: u32 = 3;

/// Why a policy cannot be ticked at all.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Its metrics cannot be read.
    #[error(transparent)]
    Observe(#[from] ObserveError),
    /// Its vertical part's usage cannot be read.
    #[error(transparent)]
    Usage(#[from] UsageError),
}

/// How a policy's memory starts, at its first tick.
#[derive(Debug)]
enum Start {
    /// The daemon: the memory of the previous version of the policy (a reload), else what the
    /// target's annotation holds, else conservative ([`State::conservative`]).
    Daemon { carried: Option<State> },
    /// One read-only look: no memory. `replicas` and `ready` stand for the cluster's counts
    /// where given.
    Look {
        replicas: Option<u32>,
        ready: Option<u32>,
    },
}

/// What one policy remembers from tick to tick: the one owner of the governor's and the
/// policies' memory, the vertical recommenders and the planner's state.
#[derive(Debug)]
pub struct TickState {
    observer: Observer,
    start: Start,
    /// None until the first tick has read the target.
    horizontal: Option<State>,
    /// Whether the pods' counters have been scraped once (pod metrics need two scrapes).
    primed: bool,
    vertical: Option<VerticalTick>,
    /// Whether the planner's state has been restored (at the first tick that saw the pods).
    vertical_started: bool,
    /// The pause controls as last read (kept when a read of the target's annotations fails).
    controls: Controls,
    /// The pause of a policy without a horizontal part at its last tick (with one, the
    /// governor remembers it).
    vertical_paused: Option<Pause>,
}

impl TickState {
    /// A daemon's policy: Prometheus metrics and usage from `prometheus` (the policy's, see
    /// [`policy_prometheus`]), retried for at most one interval; `carried` is the memory of the
    /// previous version of the policy, after a reload.
    pub fn daemon(
        policy: &Policy,
        prometheus: Option<&PrometheusClient>,
        carried: Option<State>,
    ) -> Result<TickState, SetupError> {
        // A tick's retries end with its interval, as the observer's do.
        let budget = Duration::from_secs_f64(policy.interval);
        let usage = prometheus.map(|c| c.with_retry_budget(budget));
        TickState::new(policy, prometheus, usage, Start::Daemon { carried })
    }

    /// One read-only look (`recommend`): no memory from before; `replicas` and `ready`, where
    /// given, stand for the target's counts (without `ready`, all of `replicas` are ready).
    pub fn look(
        policy: &Policy,
        prometheus: Option<&PrometheusClient>,
        replicas: Option<u32>,
        ready: Option<u32>,
    ) -> Result<TickState, SetupError> {
        let start = Start::Look { replicas, ready };
        TickState::new(policy, prometheus, prometheus.cloned(), start)
    }

    fn new(
        policy: &Policy,
        prometheus: Option<&PrometheusClient>,
        usage: Option<PrometheusClient>,
        start: Start,
    ) -> Result<TickState, SetupError> {
        let observer = Observer::new(policy, prometheus)?;
        let vertical = match &policy.vertical {
            None => None,
            Some(_) => VerticalTick::new(policy, UsageSource::for_policy(policy, usage)?),
        };
        Ok(TickState {
            observer,
            start,
            horizontal: None,
            primed: false,
            vertical,
            vertical_started: false,
            controls: Controls::default(),
            vertical_paused: None,
        })
    }

    /// Whether some metric reads the target's pods (and so needs the cluster).
    pub fn reads_pods(&self) -> bool {
        self.observer.reads_pods()
    }

    /// The governor's and the policies' memory (None before the first tick).
    pub fn memory(&self) -> Option<&State> {
        self.horizontal.as_ref()
    }

    /// The memory, for the next version of the policy (a reload).
    pub fn into_memory(self) -> Option<State> {
        match self.start {
            Start::Daemon { carried } if self.horizontal.is_none() => carried,
            _ => self.horizontal,
        }
    }

    /// The vertical planner's state (None without a vertical part).
    pub fn plan_state(&self) -> Option<&PlanState> {
        self.vertical.as_ref().map(VerticalTick::state)
    }

    /// The vertical part's recommenders (None without a vertical part).
    pub fn recommenders(&self) -> Option<&Recommenders> {
        self.vertical.as_ref().map(VerticalTick::recommenders)
    }

    /// The vertical part's usage reading: its source and the last tick's readings without data.
    pub fn usage(&self) -> Option<(&UsageSource, &[String])> {
        self.vertical.as_ref().map(|v| (v.source(), v.problems()))
    }

    fn scrapes_counters(&self, policy: &Policy) -> bool {
        self.observer.reads_pods()
            && policy
                .queries
                .iter()
                .any(|q| matches!(q, MetricQuery::Pods(_)))
    }

    /// Whether the first tick reads the target's annotation for a kept memory.
    fn restores(&self, policy: &Policy) -> bool {
        let Start::Daemon { carried } = &self.start else {
            return false;
        };
        let horizontal = policy.horizontal.is_some() && self.horizontal.is_none();
        let horizontal = horizontal && carried.is_none();
        horizontal || (self.vertical.is_some() && !self.vertical_started)
    }
}

/// Everything one tick did, for its caller to publish.
#[derive(Debug)]
pub struct TickOutcome {
    /// The tick's time, Unix seconds (after the wait of a first look that primes counters).
    pub now: Seconds,
    /// The act step, and why it is what it is.
    pub actuator: Actuator,
    /// Why.
    pub why: Why,
    /// The target's `/scale` as read (last read, after a 409); None without a cluster, or when
    /// it could not be read.
    pub scale: Option<ScaleState>,
    /// The target's counts and pods, as the metrics were read.
    pub target: TargetState,
    /// Each metric's reading (empty without a horizontal part).
    pub readings: Vec<MetricReading>,
    /// The horizontal decision and its explanation.
    pub decision: Option<Decision>,
    /// The target's `/scale` after the patch, when one was made.
    pub patched: Option<ScaleState>,
    /// 409 Conflicts answered by reading the target again.
    pub conflicts: u32,
    /// Whether the patch failed with an error other than 409.
    pub patch_failed: bool,
    /// The vertical plan and what became of it.
    pub vertical: Option<VerticalOutcome>,
    /// What the vertical part's history step did this tick.
    pub history: Option<HistorySeed>,
    /// The planner's state restored from the target's annotation (the first tick only).
    pub restored_plan: Option<PlanState>,
    /// The target's annotations could not be read: at the first tick it started
    /// conservatively; a policy file's pause controls stay as last read.
    pub annotations_error: Option<ClusterError>,
    /// The pause the tick was under (the decision's, or a vertical-only policy's).
    pub pause: Option<PauseNote>,
    /// The pause that ended at this tick.
    pub resumed: Option<Pause>,
    /// What the first tick read of the predictive policy's history (one note per metric).
    pub notes: Vec<String>,
    /// The tick stopped at this error: the fields above hold what it had done before.
    pub error: Option<ClusterError>,
}

impl TickOutcome {
    /// The outcome of a tick at `now` that has done nothing yet.
    pub fn new(now: Seconds, actuator: Actuator, why: Why) -> TickOutcome {
        TickOutcome {
            now,
            actuator,
            why,
            scale: None,
            target: TargetState::default(),
            readings: Vec::new(),
            decision: None,
            patched: None,
            conflicts: 0,
            patch_failed: false,
            vertical: None,
            history: None,
            restored_plan: None,
            annotations_error: None,
            pause: None,
            resumed: None,
            notes: Vec::new(),
            error: None,
        }
    }
}

/// Seconds since the Unix epoch.
fn unix(t: SystemTime) -> Seconds {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// One tick of `policy` at `wall`, on `cluster` (None: a look without the cluster, where only
/// Prometheus metrics are read and the counts come from [`TickState::look`]), under `hold`.
pub async fn run<C: Cluster>(
    cluster: Option<&C>,
    policy: &Policy,
    st: &mut TickState,
    hold: Hold,
    wall: SystemTime,
) -> TickOutcome {
    let (actuator, why) = Actuator::choose(policy.mode, hold);
    let mut out = TickOutcome::new(unix(wall), actuator, why);
    let clock = Clock {
        wall: out.now,
        started: Instant::now(),
    };
    if let Err(e) = ticked(cluster, policy, st, &clock, &mut out).await {
        out.error = Some(e);
    }
    out
}

/// The tick's clock: `wall` at its start, then tokio's clock (paused in tests) from there.
struct Clock {
    wall: Seconds,
    started: Instant,
}

impl Clock {
    fn now(&self) -> Seconds {
        self.wall + self.started.elapsed().as_secs_f64()
    }
}

async fn ticked<C: Cluster>(
    cluster: Option<&C>,
    policy: &Policy,
    st: &mut TickState,
    clock: &Clock,
    out: &mut TickOutcome,
) -> Result<(), ClusterError> {
    let budget = Duration::from_secs_f64(policy.interval / 2.0);
    if let Some(c) = cluster {
        let scale = retrying(budget, || c.scale(&policy.target)).await?;
        out.target = target_state(c, &scale, budget).await?;
        out.scale = Some(scale);
        // The tick's time is when the target was read.
        out.now = clock.now();
    }
    st_counts(st, &mut out.target);
    let restores = st.restores(policy);
    let read = match cluster {
        Some(c) if restores || policy.object.is_none() => {
            Some(target_annotations(c, policy, restores, &mut out.annotations_error).await)
        }
        _ => None,
    };
    st.read_controls(policy, read.as_ref());
    let saved = match (cluster, read) {
        (Some(_), Some(read)) if restores => Some(read.unwrap_or_default()),
        _ => None,
    };
    horizontal(cluster, policy, st, saved.as_ref(), budget, clock, out).await?;
    st.pause_of(policy, out);
    let Some(v) = st.vertical.as_mut() else {
        return Ok(());
    };
    let (Some(c), Some(pods), Some(selector)) = (cluster, &out.target.pods, &out.target.selector)
    else {
        return Err(ClusterError::Invalid {
            what: format!("GET scale of {} {}", policy.target.kind, policy.target.name),
            message: "no pod selector: the vertical part needs the target's pods".into(),
        });
    };
    if !st.vertical_started {
        if let Some(saved) = &saved {
            let (state, note) = restart::restore_vertical(
                &policy.name,
                saved,
                pods.iter().map(|p| p.name.as_str()),
                out.now,
            );
            info!(%note, "vertical start");
            v.restore(state.clone());
            out.restored_plan = Some(state);
        }
        st.vertical_started = true;
    }
    let paused = out.pause.as_ref().filter(|p| p.pause.freezes_vertical());
    let paused = paused.map(|p| format!("the policy is {p}"));
    let hold = out.why.hold().or(paused.as_deref());
    let outcome = v.tick(c, policy, pods, selector, out.now, hold).await;
    out.history = v.take_history();
    out.vertical = Some(outcome);
    Ok(())
}

/// A look's counts in place of the cluster's.
fn st_counts(st: &TickState, target: &mut TargetState) {
    if let Start::Look { replicas, ready } = st.start {
        if let Some(n) = replicas {
            target.current = n;
            target.ready = n;
        }
        if let Some(r) = ready {
            target.ready = r;
        }
    }
}

/// The target's annotations: what a previous daemon kept there (at the first tick:
/// `restores`), and a policy file's pause controls. A failed read is logged and returned in
/// `failed`: the policy starts conservatively, and its pause controls stay as last read.
async fn target_annotations<C: Cluster>(
    cluster: &C,
    policy: &Policy,
    restores: bool,
    failed: &mut Option<ClusterError>,
) -> Option<BTreeMap<String, String>> {
    match cluster.annotations(&policy.target).await {
        Ok(a) => Some(a),
        Err(e) => {
            let then = match restores {
                true => "starting conservatively",
                false => "the pause controls stay as last read",
            };
            warn!(error = %e, "cannot read the target's annotations: {then}");
            *failed = Some(e);
            None
        }
    }
}

impl TickState {
    /// This tick's pause controls: a ScalingPolicy object's own annotations (and a look's
    /// without the cluster); for a policy file, the target's annotations (`read`) over the
    /// file's own, the target's value winning; kept as they were when that read failed.
    fn read_controls(&mut self, policy: &Policy, read: Option<&Option<BTreeMap<String, String>>>) {
        self.controls = match read {
            Some(None) if policy.object.is_none() => return,
            Some(Some(target)) if policy.object.is_none() => {
                let layered = pause::ANNOTATIONS
                    .iter()
                    .filter_map(|k| {
                        let v = target.get(*k).or_else(|| policy.annotations.get(*k))?;
                        Some((k.to_string(), v.clone()))
                    })
                    .collect();
                Controls::from_annotations(&layered)
            }
            _ => Controls::from_annotations(&policy.annotations),
        };
    }

    /// The tick's pause: the decision's; for a policy without a horizontal part, the controls
    /// that freeze its vertical part, started and ended as the governor would say.
    fn pause_of(&mut self, policy: &Policy, out: &mut TickOutcome) {
        if let Some(d) = &out.decision {
            out.pause = d.explanation.pause.clone();
            out.resumed = d.explanation.resumed.clone();
            return;
        }
        if policy.horizontal.is_some() {
            return;
        }
        let note = self.controls.vertical().map(|(pause, a)| PauseNote {
            started: self.vertical_paused.as_ref() != Some(&pause),
            pause,
            annotation: Some(a),
        });
        out.resumed = match &note {
            Some(_) => None,
            None => self.vertical_paused.take(),
        };
        self.vertical_paused = note.as_ref().map(|n| n.pause.clone());
        out.pause = note;
    }
}

/// The horizontal part of a tick (nothing without one): the first state, the metrics, then
/// decide and act, again after a 409.
async fn horizontal<C: Cluster>(
    cluster: Option<&C>,
    policy: &Policy,
    st: &mut TickState,
    saved: Option<&BTreeMap<String, String>>,
    budget: Duration,
    clock: &Clock,
    out: &mut TickOutcome,
) -> Result<(), ClusterError> {
    let Some(h) = &policy.horizontal else {
        return Ok(());
    };
    if !st.primed && st.scrapes_counters(policy) {
        // Counters need two scrapes: this tick's reading has rates from the next one on. A
        // look has no next tick: it waits one interval and reads then.
        let look = matches!(st.start, Start::Look { .. });
        if look {
            out.now = clock.now();
        }
        st.observer.prime(policy, &out.target, out.now).await;
        st.primed = true;
        if look {
            tokio::time::sleep(Duration::from_secs_f64(policy.interval)).await;
            out.now = clock.now();
        }
    }
    if st.horizontal.is_none() {
        let state = first_state(policy, h, st, saved, out).await;
        st.horizontal = Some(state);
    }
    out.readings = st
        .observer
        .observe(policy, cluster, &out.target, out.now, None)
        .await;
    let controls = st.controls.clone();
    let mut attempt = 1;
    loop {
        let state = st.horizontal.as_mut().expect("set above");
        let before = state.clone();
        let obs = Observation {
            current_replicas: out.target.current,
            ready_replicas: out.target.ready,
            samples: out.readings.iter().map(|r| r.sample.clone()).collect(),
        };
        let decision = engine::decide(h, state, &obs, &controls, out.now);
        let acted = match (cluster, &out.scale) {
            (Some(c), Some(scale)) => out.actuator.act(c, &policy.target, scale, &decision).await,
            _ => Ok(None),
        };
        match acted {
            Ok(patched) => {
                if patched.is_some() {
                    // Applied: only now does the governor count it (cooldowns, rate limits).
                    state.governor.commit(&decision, out.now);
                }
                out.decision = Some(decision);
                out.patched = patched;
                return Ok(());
            }
            Err(e) if e.code() == Some(409) && attempt < CONFLICT_ATTEMPTS => {
                out.conflicts += 1;
                info!(
                    attempt,
                    "the target changed under the patch (409): reading it again"
                );
                *state = before;
                let c = cluster.expect("a patch was tried");
                // From the API server: a cached read may be what was stale.
                let scale = retrying(budget, || c.scale_fresh(&policy.target)).await?;
                out.target = target_state(c, &scale, budget).await?;
                out.scale = Some(scale);
                attempt += 1;
            }
            Err(e) => {
                *state = before;
                out.patch_failed = e.code() != Some(409);
                return Err(e);
            }
        }
    }
}

/// The memory of the first tick: carried over from the previous version of the policy, else
/// restored from the target's annotations (`saved`), else conservative; none for a look. The
/// predictive policy's history is read from Prometheus.
async fn first_state(
    policy: &Policy,
    h: &Horizontal,
    st: &mut TickState,
    saved: Option<&BTreeMap<String, String>>,
    out: &mut TickOutcome,
) -> State {
    let current = out
        .scale
        .as_ref()
        .map_or(out.target.current, |s| s.spec_replicas);
    let ready = out.target.ready;
    let mut state = match &mut st.start {
        Start::Look { .. } => State::default(),
        Start::Daemon { carried } => match carried.take() {
            Some(s) => {
                info!("a new version of the policy goes on from the previous one's memory");
                State {
                    governor: s.governor,
                    ..State::default()
                }
            }
            None => {
                let empty = BTreeMap::new();
                let (s, note) =
                    restart::restore(&policy.name, saved.unwrap_or(&empty), current, out.now);
                info!(%note, "start");
                s
            }
        },
    };
    if let Algorithm::Predictive(params) = &h.algorithm {
        let notes = st
            .observer
            .seed_history(policy, params, &mut state, ready, out.now)
            .await;
        out.notes.extend(notes);
    }
    state
}

/// The target's pods and how many are ready (its status.replicas when the scale reports no
/// selector).
async fn target_state<C: Cluster>(
    cluster: &C,
    scale: &ScaleState,
    budget: Duration,
) -> Result<TargetState, ClusterError> {
    let mut target = TargetState {
        current: scale.spec_replicas,
        ready: scale.status_replicas,
        pods: None,
        selector: scale.selector.clone(),
    };
    if let Some(selector) = &scale.selector {
        let pods = retrying(budget, || cluster.pods(selector)).await?;
        target.ready = pods.iter().filter(|p| p.is_ready()).count() as u32;
        target.pods = Some(pods);
    }
    Ok(target)
}

/// How long one tick retries a 403 (an API server whose RBAC caches are still filling).
const FORBIDDEN_RETRY: Duration = Duration::from_secs(3);

/// How long a failure like `e` is tried again within a tick's `budget`: all of it when
/// retrying may help ([`ClusterError::is_retryable`]), [`FORBIDDEN_RETRY`] at most for a 403
/// (an API server that has just started), not at all otherwise.
fn retry_budget(e: &ClusterError, budget: Duration) -> Duration {
    match e.code() {
        _ if e.is_retryable() => budget,
        Some(403) => budget.min(FORBIDDEN_RETRY),
        _ => Duration::ZERO,
    }
}

/// Calls `call` until it succeeds, fails for good, or `budget` would run out: failures that
/// may pass ([`retry_budget`]) wait 250 ms, then twice as long each time.
async fn retrying<T, F, Fut>(budget: Duration, mut call: F) -> Result<T, ClusterError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ClusterError>>,
{
    let start = Instant::now();
    let mut delay = Duration::from_millis(250);
    loop {
        match call().await {
            Err(e) if start.elapsed() + delay < retry_budget(&e, budget) => {
                debug!(error = %e, ?delay, "trying again");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn retries_stop_at_the_budget_and_at_lasting_errors() {
        let api = |code| ClusterError::Api {
            what: "GET scale".into(),
            code,
            reason: String::new(),
            message: String::new(),
        };
        let calls = std::cell::Cell::new(0);
        let r: Result<(), _> = retrying(Duration::from_secs(2), || {
            calls.set(calls.get() + 1);
            std::future::ready(Err(api(503)))
        })
        .await;
        assert!(r.is_err());
        // 250 + 500 + 1000 ms fit in 2 s; the next wait (2 s) does not.
        assert_eq!(calls.get(), 4);
        calls.set(0);
        let r: Result<(), _> = retrying(Duration::from_secs(2), || {
            calls.set(calls.get() + 1);
            std::future::ready(Err(api(404)))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.get(), 1);
        // A 403 is tried again for 3 s at most (an API server filling its RBAC caches), even
        // with a longer budget: 250 + 500 + 1000 ms.
        calls.set(0);
        let r: Result<(), _> = retrying(Duration::from_secs(30), || {
            calls.set(calls.get() + 1);
            std::future::ready(Err(api(403)))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.get(), 4);
        calls.set(1);
        let r = retrying(Duration::from_secs(2), || {
            calls.set(calls.get() + 1);
            std::future::ready(if calls.get() < 3 {
                Err(api(429))
            } else {
                Ok(7)
            })
        })
        .await;
        assert_eq!(r.unwrap(), 7);
    }
}
