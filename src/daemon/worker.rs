//! One policy's loop: tick on the policy's interval (the first tick at a random offset inside
//! the first interval, so that many policies spread out), and on each tick observe, decide,
//! act and record.
//!
//! The first tick reads what a previous daemon kept on the target ([`restart`]): the governor's
//! memory and the vertical planner's state. The annotation is written again after a scaling
//! action and when the planner's state changed in a way that matters
//! ([`restart::plan_write_due`]).
//!
//! A failed tick never ends the loop. API calls that fail with 429, 5xx or no answer are tried
//! again inside the tick while half the interval lasts; a tick that still fails delays the next
//! ones (twice the interval, then four times, up to eight times or five minutes).

use super::actuator::{Actuator, Why};
use super::admin::{AdminState, PolicyRecommendation};
use super::restart;
use super::telemetry::{ErrorKind, Source};
use crate::cluster::vertical::{Applied, VerticalOutcome};
use crate::cluster::{Cluster, ClusterError, EventNote, ScaleState};
use crate::engine::governor::Direction;
use crate::engine::vertical_plan::{PlanState, UpdateMode, VerticalAction};
use crate::engine::{self, Algorithm, Decision, Horizontal, Observation, Seconds, State};
use crate::metrics::prometheus::PrometheusClient;
use crate::metrics::usage::{HistorySeed, UsageSource, VerticalTick};
use crate::metrics::{MetricReading, Observer, TargetState, policy_prometheus};
use crate::policy::{MetricQuery, Policy, TargetRef};
use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{Instrument, debug, info, info_span, warn};

/// What every worker shares.
pub(crate) struct Context<C> {
    /// The cluster.
    pub cluster: C,
    /// What the admin server shows, and the daemon's metrics.
    pub admin: AdminState,
    /// The Prometheus of policies that name none.
    pub prometheus: Option<PrometheusClient>,
    /// `--dry-run`.
    pub dry_run: bool,
    /// Whether this replica holds the Lease.
    pub leader: watch::Receiver<bool>,
}

/// Attempts at one tick's patch when the target keeps changing under it (409 Conflict).
const CONFLICT_ATTEMPTS: u32 = 3;

/// While the vertical part keeps reporting a change it will not make (a Guaranteed pod with
/// `limits: requestsOnly`, `resize.fallback: report`, ...), its Warning Event is repeated at
/// most this often: once when the report starts, then hourly, not on every tick.
const REPORT_EVENT_EVERY: Duration = Duration::from_secs(3600);

/// Runs `policy` until `stop` turns true (or its sender is dropped), then returns the governor's
/// memory, so that a reloaded version of the policy can go on from it.
pub(crate) async fn run<C: Cluster>(
    ctx: Rc<Context<C>>,
    policy: Arc<Policy>,
    carried: Option<State>,
    mut stop: watch::Receiver<bool>,
) -> Option<State> {
    let span = info_span!(
        "policy",
        policy = %policy.name,
        target = %format!("{}/{}", policy.target.kind, policy.target.name),
        namespace = %ctx.cluster.namespace(),
    );
    async move {
        let mut worker = match Worker::new(&ctx, policy, carried) {
            Ok(w) => w,
            Err(e) => {
                warn!(error = %e, "the policy cannot run");
                let _ = stop.wait_for(|s| *s).await;
                return None;
            }
        };
        let interval = Duration::from_secs_f64(worker.policy.interval);
        let mut next = Instant::now() + jitter(&worker.policy.name, interval);
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            let started = Instant::now();
            let delay = match worker.tick(&ctx).await {
                Ok(()) => interval,
                Err(()) => backoff(interval, worker.failures),
            };
            next += delay;
            if next <= Instant::now() {
                // Overran: skip the missed ticks rather than run them back to back.
                let behind = Instant::now() - started;
                next = Instant::now() + delay.saturating_sub(behind).max(delay / 4);
            }
        }
        worker.state
    }
    .instrument(span)
    .await
}

/// A random offset in `[0, interval)`, different for each policy and each start.
fn jitter(name: &str, interval: Duration) -> Duration {
    use std::hash::BuildHasher;
    let h = std::collections::hash_map::RandomState::new().hash_one(name);
    interval.mul_f64((h % 10_000) as f64 / 10_000.0)
}

/// The wait after `failures` failed ticks in a row.
fn backoff(interval: Duration, failures: u32) -> Duration {
    let factor = 1u32 << failures.min(3);
    (interval * factor).min(Duration::from_secs(300).max(interval))
}

/// Seconds since the Unix epoch.
fn unix(t: SystemTime) -> Seconds {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

struct Worker {
    policy: Arc<Policy>,
    observer: Observer,
    /// None until the first tick has read the target.
    state: Option<State>,
    /// The replicas last published in an Event (or the target's at the first tick).
    announced: Option<u32>,
    /// Failed ticks in a row.
    failures: u32,
    /// The last error logged, so that a lasting error is logged once.
    last_error: Option<String>,
    /// Whether the pods' counters have been scraped once (pod metrics need two scrapes).
    primed: bool,
    /// The vertical part: usage reader, recommenders and planner state.
    vertical: Option<VerticalTick>,
    /// The planner's state as the target's annotation holds it (None until restored at the
    /// first tick).
    plan_kept: Option<PlanKept>,
    /// When the vertical part's last `ResizeNotApplied` Event went out, while it keeps
    /// reporting (None when its last plan was no report).
    reported: Option<SystemTime>,
}

/// The vertical planner's state as the target's annotation holds it.
struct PlanKept {
    /// The state restored, or last written.
    state: PlanState,
    /// When this process last wrote it (None: restored, not written yet).
    written_at: Option<Seconds>,
    /// When the last write failed (the next waits [`restart::PLAN_WRITE_EVERY`]).
    failed_at: Option<Seconds>,
}

impl Worker {
    fn new<C>(
        ctx: &Context<C>,
        policy: Arc<Policy>,
        carried: Option<State>,
    ) -> Result<Worker, String> {
        let prometheus =
            policy_prometheus(&policy, ctx.prometheus.as_ref()).map_err(|e| e.to_string())?;
        let observer = Observer::new(&policy, prometheus.as_ref()).map_err(|e| e.to_string())?;
        let vertical = match &policy.vertical {
            None => None,
            Some(_) => {
                // A tick's retries end with its interval, as the observer's do.
                let budget = Duration::from_secs_f64(policy.interval);
                let usage = prometheus.map(|c| c.with_retry_budget(budget));
                let source = UsageSource::for_policy(&policy, usage).map_err(|e| e.to_string())?;
                VerticalTick::new(&policy, source)
            }
        };
        Ok(Worker {
            policy,
            observer,
            state: carried,
            announced: None,
            failures: 0,
            last_error: None,
            primed: false,
            vertical,
            plan_kept: None,
            reported: None,
        })
    }

    /// One tick. Errors are logged, counted and shown on `/recommendations` here.
    async fn tick<C: Cluster>(&mut self, ctx: &Context<C>) -> Result<(), ()> {
        let admin = &ctx.admin;
        admin.telemetry().record_tick(&self.policy.name);
        match self.try_tick(ctx).await {
            Ok(()) => {
                self.failures = 0;
                if self.last_error.take().is_some() {
                    info!("the policy works again");
                }
                admin.set_error(&self.policy.name, None);
                Ok(())
            }
            Err(e) => {
                admin.telemetry().record_error(error_kind(&e));
                let text = e.to_string();
                if self.last_error.as_deref() != Some(text.as_str()) {
                    warn!(error = %text, "tick failed");
                } else {
                    debug!(error = %text, "tick failed again");
                }
                admin.set_error(&self.policy.name, Some(&text));
                self.last_error = Some(text);
                if retryable(&e) {
                    self.failures += 1;
                    Err(())
                } else {
                    // 403, 404 and the like: wait for a fix at the usual pace.
                    Ok(())
                }
            }
        }
    }

    async fn try_tick<C: Cluster>(&mut self, ctx: &Context<C>) -> Result<(), ClusterError> {
        let policy = self.policy.clone();
        let cluster = &ctx.cluster;
        let budget = Duration::from_secs_f64(policy.interval / 2.0);
        let mut scale = retrying(budget, || cluster.scale(&policy.target)).await?;
        ctx.admin.mark_api_ok(std::time::Instant::now());
        let mut target = self.target_state(ctx, &scale, budget).await?;

        let wall = SystemTime::now();
        let now = unix(wall);
        let (actuator, why) = Actuator::choose(policy.mode, ctx.dry_run, *ctx.leader.borrow());
        let saved = self.saved(ctx).await;
        let horizontal = match &policy.horizontal {
            Some(h) => Some(
                self.horizontal(
                    ctx,
                    h,
                    actuator,
                    &mut scale,
                    &mut target,
                    budget,
                    saved.as_ref(),
                    now,
                )
                .await?,
            ),
            None => None,
        };
        let acted = matches!(horizontal, Some((_, Some(_))));
        let mut keep_plan = false;
        let vertical = match (self.vertical.as_mut(), &target.pods, &target.selector) {
            (Some(v), Some(pods), Some(selector)) => {
                if self.plan_kept.is_none() {
                    let empty = BTreeMap::new();
                    let (state, note) = restart::restore_vertical(
                        &policy.name,
                        saved.as_ref().unwrap_or(&empty),
                        pods.iter().map(|p| p.name.as_str()),
                        now,
                    );
                    info!(%note, "vertical start");
                    v.restore(state.clone());
                    self.plan_kept = Some(PlanKept {
                        state,
                        written_at: None,
                        failed_at: None,
                    });
                }
                let hold = match why {
                    Why::Applying | Why::PolicyRecommends => None,
                    Why::DryRun => Some("the daemon runs with --dry-run"),
                    Why::Standby => Some("another replica holds the Lease"),
                };
                let outcome = v.tick(cluster, &policy, pods, selector, now, hold).await;
                match v.take_history() {
                    Some(HistorySeed::Failed { note }) => {
                        ctx.admin.telemetry().record_error(ErrorKind::Query);
                        warn!(%note, "vertical usage history");
                    }
                    Some(h) => info!(note = %h.note(), "vertical usage history"),
                    None => {}
                }
                let writes = actuator == Actuator::Apply
                    && policy
                        .vertical
                        .as_ref()
                        .is_some_and(|s| s.plan.update != UpdateMode::Off);
                if let (true, Some(kept)) = (writes, &self.plan_kept) {
                    let alive = |pod: &str| pods.iter().any(|p| p.name == pod);
                    keep_plan = kept
                        .failed_at
                        .is_none_or(|t| now - t >= restart::PLAN_WRITE_EVERY)
                        && restart::plan_write_due(
                            &kept.state,
                            kept.written_at,
                            v.state(),
                            &alive,
                            now,
                        );
                }
                Some(outcome)
            }
            (Some(_), _, _) => {
                return Err(ClusterError::Invalid {
                    what: format!("GET scale of {} {}", policy.target.kind, policy.target.name),
                    message: "no pod selector: the vertical part needs the target's pods".into(),
                });
            }
            (None, _, _) => None,
        };
        self.record(ctx, actuator, why, horizontal, vertical, wall)
            .await;
        if acted || keep_plan {
            self.keep_state(ctx, now).await;
        }
        Ok(())
    }

    /// At the first tick, the target's annotations, for what a previous daemon kept there (the
    /// governor's memory, the planner's state); None once both are restored. A failed read is
    /// logged and reads as no annotation: the policy starts conservatively.
    async fn saved<C: Cluster>(&self, ctx: &Context<C>) -> Option<BTreeMap<String, String>> {
        let horizontal = self.policy.horizontal.is_some() && self.state.is_none();
        let vertical = self.vertical.is_some() && self.plan_kept.is_none();
        if !horizontal && !vertical {
            return None;
        }
        match ctx.cluster.annotations(&self.policy.target).await {
            Ok(a) => Some(a),
            Err(e) => {
                ctx.admin.telemetry().record_error(error_kind(&e));
                warn!(error = %e, "cannot read the target's annotations: starting conservatively");
                Some(BTreeMap::new())
            }
        }
    }

    /// Writes the governor's memory and the planner's state to the target's annotation (after
    /// a scaling action, or a change of the planner's state that matters). A failure is logged
    /// and counted; the planner's state is tried again [`restart::PLAN_WRITE_EVERY`] later.
    async fn keep_state<C: Cluster>(&mut self, ctx: &Context<C>, now: Seconds) {
        let plan = self.vertical.as_ref().map(|v| v.state().clone());
        let annotations =
            restart::annotations(&self.policy.name, self.state.as_ref(), plan.as_ref(), now);
        match ctx
            .cluster
            .apply_annotations(&self.policy.target, &annotations)
            .await
        {
            Ok(()) => {
                if let Some(state) = plan {
                    debug!("the planner's state is kept on the target");
                    self.plan_kept = Some(PlanKept {
                        state,
                        written_at: Some(now),
                        failed_at: None,
                    });
                }
            }
            Err(e) => {
                ctx.admin.telemetry().record_error(error_kind(&e));
                warn!(error = %e, "cannot keep the governor's memory and the planner's state on the target");
                if let Some(kept) = self.plan_kept.as_mut() {
                    kept.failed_at = Some(now);
                }
            }
        }
    }

    /// The horizontal part of a tick: decide and act, again after a 409.
    #[allow(clippy::too_many_arguments)]
    async fn horizontal<C: Cluster>(
        &mut self,
        ctx: &Context<C>,
        horizontal: &Horizontal,
        actuator: Actuator,
        scale: &mut ScaleState,
        target: &mut TargetState,
        budget: Duration,
        saved: Option<&BTreeMap<String, String>>,
        now: Seconds,
    ) -> Result<(Decision, Option<ScaleState>), ClusterError> {
        let policy = self.policy.clone();
        let cluster = &ctx.cluster;
        if self.state.is_none() {
            let state = self
                .first_state(horizontal, scale, target, saved, now)
                .await;
            self.state = Some(state);
        }
        if !self.primed && self.scrapes_counters() {
            // Counters need two scrapes: this tick's reading has rates from the next one on.
            self.observer.prime(&policy, target, now).await;
            self.primed = true;
        }
        let readings = self
            .observer
            .observe(&policy, Some(cluster), target, now, None)
            .await;
        self.record_queries(ctx, &readings);
        let mut attempt = 1;
        loop {
            let before = self.state.clone().expect("set above");
            let obs = Observation {
                current_replicas: scale.spec_replicas,
                ready_replicas: target.ready,
                samples: readings.iter().map(|r| r.sample.clone()).collect(),
            };
            let state = self.state.as_mut().expect("set above");
            let decision = engine::tick(horizontal, state, &obs, now);
            match actuator
                .act(cluster, &policy.target, scale, &decision)
                .await
            {
                Ok(patched) => {
                    if patched.is_none() {
                        // Nothing was changed: the governor must not count an action that
                        // was not taken (its cooldowns and rate limits).
                        state.governor.last_action = before.governor.last_action;
                        state.governor.events = before.governor.events;
                    }
                    return Ok((decision, patched));
                }
                Err(e) if e.code() == Some(409) && attempt < CONFLICT_ATTEMPTS => {
                    ctx.admin.telemetry().record_error(ErrorKind::Conflict);
                    info!(
                        attempt,
                        "the target changed under the patch (409): reading it again"
                    );
                    self.state = Some(before);
                    *scale = retrying(budget, || cluster.scale(&policy.target)).await?;
                    *target = self.target_state(ctx, scale, budget).await?;
                    attempt += 1;
                }
                Err(e) => {
                    self.state = Some(before);
                    if e.code() != Some(409) {
                        ctx.admin.telemetry().record_error(ErrorKind::Patch);
                    }
                    return Err(e);
                }
            }
        }
    }

    fn scrapes_counters(&self) -> bool {
        self.policy
            .queries
            .iter()
            .any(|q| matches!(q, MetricQuery::Pods(_)))
    }

    /// The target's pods and how many are ready (its status.replicas when the scale reports no
    /// selector).
    async fn target_state<C: Cluster>(
        &self,
        ctx: &Context<C>,
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
            let pods = retrying(budget, || ctx.cluster.pods(selector)).await?;
            target.ready = pods.iter().filter(|p| p.is_ready()).count() as u32;
            target.pods = Some(pods);
        }
        Ok(target)
    }

    /// The state of the first tick: carried over from the previous version of the policy,
    /// else restored from the target's annotations (`saved`), else conservative. The predictive
    /// policy's history is read from Prometheus.
    async fn first_state(
        &mut self,
        horizontal: &Horizontal,
        scale: &ScaleState,
        target: &TargetState,
        saved: Option<&BTreeMap<String, String>>,
        now: Seconds,
    ) -> State {
        let mut state = match self.state.take() {
            Some(s) => {
                info!("a new version of the policy goes on from the previous one's memory");
                State {
                    governor: s.governor,
                    ..State::default()
                }
            }
            None => {
                let empty = BTreeMap::new();
                let a = saved.unwrap_or(&empty);
                let (s, note) = restart::restore(&self.policy.name, a, scale.spec_replicas, now);
                info!(%note, "start");
                s
            }
        };
        if let Algorithm::Predictive(params) = &horizontal.algorithm {
            let notes = self
                .observer
                .seed_history(&self.policy, params, &mut state, target.ready, now)
                .await;
            for note in notes {
                info!(%note, "forecast history");
            }
        }
        state
    }

    fn record_queries<C>(&self, ctx: &Context<C>, readings: &[MetricReading]) {
        let telemetry = ctx.admin.telemetry();
        for (r, q) in readings.iter().zip(&self.policy.queries) {
            let source = match q {
                MetricQuery::Prometheus { .. } => Source::Prometheus,
                MetricQuery::Resource { .. } => Source::MetricsApi,
                MetricQuery::Pods(_) => Source::PodScrape,
            };
            telemetry.record_query(source, r.took);
            if let engine::Sample::NoData { reason } = &r.sample {
                telemetry.record_error(ErrorKind::Query);
                debug!(metric = %r.metric, %reason, "no data");
            }
        }
    }

    /// Publishes the tick's outcome: `/recommendations`, `/metrics`, the log and Events.
    #[allow(clippy::too_many_arguments)]
    async fn record<C: Cluster>(
        &mut self,
        ctx: &Context<C>,
        actuator: Actuator,
        why: Why,
        horizontal: Option<(Decision, Option<ScaleState>)>,
        vertical: Option<VerticalOutcome>,
        wall: SystemTime,
    ) {
        let policy = self.policy.clone();
        let telemetry = ctx.admin.telemetry();
        // Standby replicas stay quiet: the leader speaks for the policy.
        let speaks = why != Why::Standby;
        let mut events = Vec::new();
        if let Some((decision, patched)) = &horizontal {
            telemetry.record_decision(&policy.name, decision);
            events.extend(window_event(&policy, decision, wall));
            if let Some(e) = self
                .horizontal_event(ctx, actuator, decision, patched.as_ref(), wall)
                .await
            {
                events.push(e);
            }
        }
        if let (Some(outcome), Some(v)) = (&vertical, &self.vertical) {
            telemetry.set_vertical(&policy.name, &v.recommenders().recommendations());
            events.extend(vertical_event(ctx, &policy, outcome, wall));
        }
        if let Some(outcome) = &vertical {
            events.extend(self.report_event(&policy, outcome, wall));
        }
        let mut published = match (horizontal, vertical) {
            (Some((decision, _)), vertical) => PolicyRecommendation {
                vertical,
                ..PolicyRecommendation::new(&policy, decision, wall)
            },
            (None, Some(vertical)) => PolicyRecommendation::vertical_only(&policy, vertical, wall),
            (None, None) => return,
        };
        published.mode = actuator.mode();
        ctx.admin.publish(published);
        if speaks {
            for e in &events {
                publish_event(ctx, e).await;
            }
        }
    }

    /// The log line and the Event of a horizontal decision.
    async fn horizontal_event<C: Cluster>(
        &mut self,
        ctx: &Context<C>,
        actuator: Actuator,
        decision: &Decision,
        patched: Option<&ScaleState>,
        time: SystemTime,
    ) -> Option<EventNote> {
        let policy = &self.policy;
        let telemetry = ctx.admin.telemetry();
        let summary = decision.to_string();
        if let Some(new) = patched {
            let direction = decision.direction().expect("a patch changes the count");
            telemetry.record_scaling_action(&policy.name, direction);
            info!(
                from = decision.current_replicas,
                to = new.spec_replicas,
                "scaled: {summary}"
            );
            self.announced = Some(decision.desired_replicas);
            let reason = match (decision.current_replicas, new.spec_replicas, direction) {
                (0, _, _) => "Activated",
                (_, 0, _) => "Deactivated",
                (_, _, Direction::Up) => "ScaledUp",
                (_, _, Direction::Down) => "ScaledDown",
            };
            return Some(EventNote::new(
                &policy.target,
                reason,
                "Scale",
                summary,
                time,
            ));
        }
        let previous = *self.announced.get_or_insert(decision.current_replicas);
        if decision.desired_replicas != previous && actuator == Actuator::Recommend {
            info!(
                replicas = decision.desired_replicas,
                "recommendation changed: {summary}"
            );
            self.announced = Some(decision.desired_replicas);
            let note = format!(
                "recommends {} replicas: {summary}",
                decision.desired_replicas
            );
            let action = "Recommend";
            return Some(EventNote::new(
                &policy.target,
                "Recommendation",
                action,
                note,
                time,
            ));
        }
        debug!("{summary}");
        None
    }

    /// The Warning Event of a vertical plan that reports a change it will not make: when the
    /// report starts, then at most every [`REPORT_EVENT_EVERY`] while it lasts.
    fn report_event(
        &mut self,
        policy: &Policy,
        outcome: &VerticalOutcome,
        wall: SystemTime,
    ) -> Option<EventNote> {
        let VerticalAction::Report { reason } = &outcome.plan.action else {
            self.reported = None;
            return None;
        };
        let recent = self.reported.is_some_and(|at| {
            wall.duration_since(at)
                .is_ok_and(|since| since < REPORT_EVENT_EVERY)
        });
        if recent {
            return None;
        }
        self.reported = Some(wall);
        warn!("vertical change not made: {reason}");
        let note = EventNote::new(
            &policy.target,
            "ResizeNotApplied",
            "Resize",
            reason.clone(),
            wall,
        );
        Some(note.warning())
    }
}

/// The log line and the Event of a schedule window that this decision is the first to see open.
fn window_event(policy: &Policy, decision: &Decision, time: SystemTime) -> Option<EventNote> {
    let w = decision.explanation.window.as_ref().filter(|w| w.started)?;
    info!(schedule = %w.schedule, "schedule window starts: {w}");
    let note = format!("{w} starts: {decision}");
    Some(EventNote::new(
        &policy.target,
        "ScheduleStarted",
        "Schedule",
        note,
        time,
    ))
}

/// Publishes an Event; a failure is logged and counted, and changes nothing else.
pub(crate) async fn publish_event<C: Cluster>(ctx: &Context<C>, event: &EventNote) {
    if let Err(e) = ctx.cluster.create_event(event).await {
        ctx.admin.telemetry().record_error(error_kind(&e));
        warn!(error = %e, reason = %event.reason, "cannot publish an Event");
    }
}

/// The log line and the Event of what the vertical part wrote (nothing when it wrote nothing).
fn vertical_event<C>(
    ctx: &Context<C>,
    policy: &Policy,
    outcome: &VerticalOutcome,
    time: SystemTime,
) -> Option<EventNote> {
    let text = outcome.to_string();
    match &outcome.applied {
        Applied::Resized { pod, .. } => {
            info!(%pod, "resized in place: {text}");
            let pod = TargetRef {
                api_version: "v1".into(),
                kind: "Pod".into(),
                name: pod.clone(),
            };
            Some(EventNote::new(&pod, "Resized", "Resize", text, time))
        }
        Applied::TemplatePatched { .. } => {
            info!("pod template patched: {text}");
            let reason = "TemplatePatched";
            Some(EventNote::new(&policy.target, reason, "Resize", text, time))
        }
        Applied::Failed { error } => {
            ctx.admin.telemetry().record_error(ErrorKind::Patch);
            warn!(%error, "vertical change refused: {text}");
            Some(EventNote::new(&policy.target, "ResizeFailed", "Resize", text, time).warning())
        }
        Applied::Nothing | Applied::NotApplied { .. } => {
            debug!("vertical: {text}");
            None
        }
    }
}

/// Whether trying again may help: 429, 5xx, or no answer.
fn retryable(e: &ClusterError) -> bool {
    match e {
        ClusterError::Api { code, .. } => *code == 429 || *code >= 500,
        ClusterError::Transport { .. } => true,
        ClusterError::Config(_)
        | ClusterError::Invalid { .. }
        | ClusterError::Unsupported { .. } => false,
    }
}

/// The `kind` label of an error.
fn error_kind(e: &ClusterError) -> ErrorKind {
    match e.code() {
        Some(409) => ErrorKind::Conflict,
        Some(403) => ErrorKind::Forbidden,
        Some(404) => ErrorKind::NotFound,
        Some(429) => ErrorKind::Throttled,
        _ => ErrorKind::Api,
    }
}

/// Calls `call` until it succeeds, fails for good, or `budget` would run out: retryable
/// failures wait 250 ms, then twice as long each time.
async fn retrying<T, F, Fut>(budget: Duration, mut call: F) -> Result<T, ClusterError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ClusterError>>,
{
    let start = Instant::now();
    let mut delay = Duration::from_millis(250);
    loop {
        match call().await {
            Err(e) if retryable(&e) && start.elapsed() + delay < budget => {
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

    #[test]
    fn backoff_doubles_up_to_eight_intervals_or_five_minutes() {
        let i = Duration::from_secs(15);
        assert_eq!(backoff(i, 0), i);
        assert_eq!(backoff(i, 1), i * 2);
        assert_eq!(backoff(i, 3), i * 8);
        assert_eq!(backoff(i, 9), i * 8);
        let slow = Duration::from_secs(60);
        assert_eq!(backoff(slow, 3), Duration::from_secs(300));
        let slower = Duration::from_secs(600);
        assert_eq!(backoff(slower, 3), slower);
    }

    #[test]
    fn jitter_stays_inside_the_interval() {
        let i = Duration::from_secs(15);
        for n in 0..100 {
            assert!(jitter(&format!("p{n}"), i) < i);
        }
    }

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
            std::future::ready(Err(api(403)))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.get(), 1);
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
