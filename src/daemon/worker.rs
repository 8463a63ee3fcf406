//! One policy's loop: [`tick::run`] on the policy's interval (the first tick at a random offset
//! inside the first interval, so that many policies spread out), then record what it returned:
//! `/recommendations`, the daemon's `/metrics`, the log and Events, the restart state, and for a
//! policy from a ScalingPolicy object its status ([`super::status`]).
//!
//! The first tick reads what a previous daemon kept on the target ([`restart`]): the governor's
//! memory and the vertical planner's state. The annotation is written again here after a scaling
//! action, when a pause starts or ends (so that a restarted daemon does not announce it again),
//! and when the planner's state changed in a way that matters ([`restart::plan_write_due`]).
//!
//! A pause ([`crate::engine::pause`]) is announced once when it starts (or changes) and once
//! when it ends: a `Paused` Event (a Warning when its annotation cannot be read) and a
//! `Resumed` Event, and `setpoint_paused` is 1 while it lasts.
//!
//! A failed tick never ends the loop. API calls that fail with 429, 5xx or no answer are tried
//! again inside the tick while half the interval lasts (a 403 for 3 s at most: an API server that
//! has just started answers 403 while its RBAC caches fill); a tick that still fails with 429 or
//! 5xx delays the next ones (twice the interval, then four times, up to eight times or five
//! minutes). One that got no answer at all (connection refused, timeout) does not: the next tick
//! comes at the usual interval, so that the policy acts again within one interval of the API
//! server's return. Outages are logged when they start and when they end ([`super::outage`]).

use super::admin::{AdminState, PolicyRecommendation};
use super::outage::{self, Change, Tracker};
use super::status::{InvalidSpec, StatusWriter};
use super::telemetry::{ErrorKind, Source};
use crate::cluster::{Cluster, ClusterError, EventNote, ScaleState};
use crate::engine::governor::Direction;
use crate::engine::pause::Pause;
use crate::engine::vertical_plan::{PlanState, UpdateMode, VerticalAction};
use crate::engine::{self, Decision, Seconds, State};
use crate::policy::status::PolicyStatus;
use crate::policy::{MetricQuery, Policy, TargetRef};
use crate::prometheus::PrometheusClient;
use crate::tick::usage::HistorySeed;
use crate::tick::vertical::{Applied, VerticalOutcome};
use crate::tick::{self, Actuator, Hold, MetricReading, TickOutcome, TickState, Why, restart};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{Instrument, debug, error, info, info_span, warn};

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
    live: Option<Box<PolicyStatus>>,
    invalid: watch::Receiver<Option<InvalidSpec>>,
    mut stop: watch::Receiver<bool>,
) -> Option<State> {
    let span = info_span!(
        "policy",
        policy = %policy.name,
        target = %format!("{}/{}", policy.target.kind, policy.target.name),
        namespace = %ctx.cluster.namespace(),
    );
    async move {
        let mut worker = match Worker::new(&ctx, policy, carried, invalid) {
            Ok(mut w) => {
                // The object's status as it is: its conditions keep their transition times.
                if let Some(live) = live {
                    w.status.seed(*live);
                }
                w
            }
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
        worker.tick.into_memory()
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

struct Worker {
    policy: Arc<Policy>,
    /// What the policy remembers from tick to tick.
    tick: TickState,
    /// The replicas last published in an Event (or the target's at the first tick).
    announced: Option<u32>,
    /// Failed ticks in a row.
    failures: u32,
    /// The last error logged, so that a lasting error is logged once.
    last_error: Option<String>,
    /// The planner's state as the target's annotation holds it (None until restored at the
    /// first tick).
    plan_kept: Option<PlanKept>,
    /// When the vertical part's last `ResizeNotApplied` Event went out, while it keeps
    /// reporting (None when its last plan was no report).
    reported: Option<SystemTime>,
    /// Failed ticks in a row, as one outage.
    failing: Tracker,
    /// Ticks with metrics that gave no data, as one outage.
    blind: Tracker,
    /// Ticks that held because a watch had not synced (or was relisting), as one outage.
    waiting: Tracker,
    /// Since when the ticks have failed with 403, and whether that was logged as lasting.
    forbidden: Option<(Instant, bool)>,
    /// The status of a policy from a ScalingPolicy object.
    status: StatusWriter,
    /// A newer spec of its object that does not validate (this version runs on meanwhile).
    invalid: watch::Receiver<Option<InvalidSpec>>,
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
        invalid: watch::Receiver<Option<InvalidSpec>>,
    ) -> Result<Worker, String> {
        let prometheus =
            tick::policy_prometheus(&policy, ctx.prometheus.as_ref()).map_err(|e| e.to_string())?;
        let tick =
            TickState::daemon(&policy, prometheus.as_ref(), carried).map_err(|e| e.to_string())?;
        // A new version starts without an outage: a previous version's "since" series would
        // otherwise stay until the process ends.
        let telemetry = ctx.admin.telemetry();
        telemetry.set_failing(&policy.name, None);
        telemetry.set_blind(&policy.name, None);
        Ok(Worker {
            policy,
            tick,
            announced: None,
            failures: 0,
            last_error: None,
            plan_kept: None,
            reported: None,
            failing: Tracker::default(),
            blind: Tracker::default(),
            waiting: Tracker::default(),
            forbidden: None,
            status: StatusWriter::default(),
            invalid,
        })
    }

    /// One tick: [`tick::run`], then its outcome recorded. Errors are logged, counted and shown
    /// on `/recommendations` here.
    async fn tick<C: Cluster>(&mut self, ctx: &Context<C>) -> Result<(), ()> {
        let admin = &ctx.admin;
        admin.telemetry().record_tick(&self.policy.name);
        let policy = self.policy.clone();
        let leading = *ctx.leader.borrow();
        let hold = Hold::of(ctx.dry_run, leading);
        let wall = SystemTime::now();
        let mut outcome = tick::run(Some(&ctx.cluster), &policy, &mut self.tick, hold, wall).await;
        self.count(ctx, &outcome);
        // Written only while the Lease was held for the whole tick.
        let leading = leading && *ctx.leader.borrow();
        let memory = self.tick.memory();
        self.status.set_invalid(self.invalid.borrow().clone());
        let telemetry = admin.telemetry();
        (self.status)
            .after_tick(&ctx.cluster, telemetry, &policy, &outcome, memory, leading)
            .await;
        if let Some(e @ ClusterError::NotSynced { .. }) = &outcome.error {
            // Not a failure: the policy holds until the watch has (re)listed, at its pace.
            let text = e.to_string();
            if let Change::Started(o) = self.waiting.tick(Some(text.clone()), wall) {
                info!(since = %o.since_text(), "holding: {text}");
            }
            let shown = self
                .waiting
                .current()
                .map(|o| format!("holding: {}", failing_text(o)));
            admin.set_error(&self.policy.name, shown.as_deref());
            return Ok(());
        }
        if let Change::Ended(o, lasted) = self.waiting.tick(None, wall) {
            info!(since = %o.since_text(), lasted = %humantime::format_duration(lasted),
                "the watch has synced: the policy goes on");
        }
        match outcome.error.take() {
            None => {
                let pause_changed = outcome.actuator == Actuator::Apply
                    && policy.horizontal.is_some()
                    && (outcome.pause.as_ref().is_some_and(|p| p.started)
                        || outcome.resumed.is_some());
                let kept = self.record(ctx, &mut outcome, wall).await;
                if outcome.patched.is_some() || kept || pause_changed {
                    self.keep_state(ctx, outcome.now).await;
                }
                self.failures = 0;
                self.last_error = None;
                self.forbidden = None;
                if let Change::Ended(o, lasted) = self.failing.tick(None, SystemTime::now()) {
                    admin.telemetry().set_failing(&self.policy.name, None);
                    info!(since = %o.since_text(), lasted = %humantime::format_duration(lasted),
                        "the policy works again");
                }
                // Still blind: the outage of the metrics stays listed.
                let blind = self.blind.current().map(failing_text);
                admin.set_error(&self.policy.name, blind.as_deref());
                Ok(())
            }
            Some(e) => {
                admin.telemetry().record_error(ErrorKind::of(&e));
                let text = e.to_string();
                if let Change::Started(o) = self.failing.tick(Some(text.clone()), SystemTime::now())
                {
                    let since = outage::unix(o.since);
                    admin
                        .telemetry()
                        .set_failing(&self.policy.name, Some(since));
                }
                let since = self.failing.current().map(|o| o.since_text());
                let since = since.unwrap_or_default();
                if self.last_error.as_deref() != Some(text.as_str()) {
                    warn!(error = %text, %since, "tick failed");
                } else {
                    debug!(error = %text, "tick failed again");
                }
                self.lasting_forbidden(&e);
                let shown = self.failing.current().map(failing_text);
                admin.set_error(&self.policy.name, shown.as_deref());
                self.last_error = Some(text);
                if e.is_retryable() && !matches!(e, ClusterError::Transport { .. }) {
                    self.failures += 1;
                    Err(())
                } else {
                    // No answer (the server is down: asking costs it nothing), 403, 404 and the
                    // like: again at the usual pace.
                    Ok(())
                }
            }
        }
    }

    /// A 403 that lasts [`FORBIDDEN_GRACE`] is logged once more, as an error: a Role missing
    /// a right, not an API server that has just started.
    fn lasting_forbidden(&mut self, e: &ClusterError) {
        if e.code() != Some(403) {
            self.forbidden = None;
            return;
        }
        let (since, logged) = self.forbidden.get_or_insert((Instant::now(), false));
        if !*logged && since.elapsed() >= FORBIDDEN_GRACE {
            *logged = true;
            error!(error = %e, lasted = ?FORBIDDEN_GRACE,
                "forbidden for the whole grace: the Role bound to this identity lacks a right");
        }
    }

    /// Tracks an outage of the metrics: the log line, the gauge and the Warning Event
    /// `MetricsUnavailable` when it starts, the log line when it ends.
    fn track_blind<C>(
        &mut self,
        ctx: &Context<C>,
        missing: &[engine::Missing],
        wall: SystemTime,
    ) -> Option<EventNote> {
        let telemetry = ctx.admin.telemetry();
        match self.blind.tick(outage::missing_text(missing), wall) {
            Change::Started(o) => {
                warn!(since = %o.since_text(), "metrics unavailable: {}", o.what);
                telemetry.set_blind(&self.policy.name, Some(outage::unix(o.since)));
                let note = format!(
                    "{} (since {}): no scale-down until the metrics are back and a scale-down \
                     window has passed",
                    o.what,
                    o.since_text()
                );
                let event = EventNote::new(
                    &self.policy.target,
                    "MetricsUnavailable",
                    "Observe",
                    note,
                    wall,
                );
                Some(event.warning())
            }
            Change::Ended(o, lasted) => {
                info!(since = %o.since_text(), lasted = %humantime::format_duration(lasted),
                    "metrics available again");
                telemetry.set_blind(&self.policy.name, None);
                None
            }
            Change::Same => None,
        }
    }

    /// Counts and logs what happened on the way: the API reached, the metrics read, 409s,
    /// failed patches and reads, the start notes.
    fn count<C>(&mut self, ctx: &Context<C>, outcome: &TickOutcome) {
        let telemetry = ctx.admin.telemetry();
        if outcome.scale.is_some() {
            ctx.admin.mark_api_ok(std::time::Instant::now());
        }
        if let Some(e) = &outcome.annotations_error {
            telemetry.record_error(ErrorKind::of(e));
        }
        for note in &outcome.notes {
            info!(%note, "forecast history");
        }
        self.record_queries(ctx, &outcome.readings);
        for _ in 0..outcome.conflicts {
            telemetry.record_error(ErrorKind::Conflict);
        }
        if outcome.patch_failed {
            telemetry.record_error(ErrorKind::Patch);
        }
        match &outcome.history {
            Some(HistorySeed::Failed { note }) => {
                telemetry.record_error(ErrorKind::Query);
                warn!(%note, "vertical usage history");
            }
            Some(h) => info!(note = %h.note(), "vertical usage history"),
            None => {}
        }
        if let Some(state) = &outcome.restored_plan {
            self.plan_kept = Some(PlanKept {
                state: state.clone(),
                written_at: None,
                failed_at: None,
            });
        }
    }

    /// Whether the planner's state is to be written to the target's annotation now.
    fn plan_write_due(&self, outcome: &TickOutcome) -> bool {
        let writes = outcome.actuator == Actuator::Apply
            && self
                .policy
                .vertical
                .as_ref()
                .is_some_and(|s| s.plan.update != UpdateMode::Off);
        let (Some(kept), Some(state), Some(pods)) = (
            &self.plan_kept,
            self.tick.plan_state(),
            &outcome.target.pods,
        ) else {
            return false;
        };
        let alive = |pod: &str| pods.iter().any(|p| p.name == pod);
        let now = outcome.now;
        writes
            && kept
                .failed_at
                .is_none_or(|t| now - t >= restart::PLAN_WRITE_EVERY)
            && restart::plan_write_due(&kept.state, kept.written_at, state, &alive, now)
    }

    /// Writes the governor's memory and the planner's state to the target's annotation (after
    /// a scaling action, or a change of the planner's state that matters). A failure is logged
    /// and counted; the planner's state is tried again [`restart::PLAN_WRITE_EVERY`] later.
    async fn keep_state<C: Cluster>(&mut self, ctx: &Context<C>, now: Seconds) {
        let plan = self.tick.plan_state().cloned();
        let annotations =
            restart::annotations(&self.policy.name, self.tick.memory(), plan.as_ref(), now);
        match ctx
            .cluster
            .apply_annotations(
                &self.policy.target,
                &restart::field_manager(&self.policy.name),
                &annotations,
            )
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
                ctx.admin.telemetry().record_error(ErrorKind::of(&e));
                warn!(error = %e, "cannot keep the governor's memory and the planner's state on the target");
                if let Some(kept) = self.plan_kept.as_mut() {
                    kept.failed_at = Some(now);
                }
            }
        }
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
    /// Returns whether the planner's state is to be kept on the target now.
    async fn record<C: Cluster>(
        &mut self,
        ctx: &Context<C>,
        outcome: &mut TickOutcome,
        wall: SystemTime,
    ) -> bool {
        let policy = self.policy.clone();
        let telemetry = ctx.admin.telemetry();
        let keep_plan = outcome.vertical.is_some() && self.plan_write_due(outcome);
        // Standby replicas stay quiet: the leader speaks for the policy.
        let speaks = outcome.why != Why::Standby;
        let actuator = outcome.actuator;
        let mut events = Vec::new();
        if let Some(decision) = &outcome.decision {
            telemetry.record_decision(&policy.name, decision);
            if let Some(h) = &policy.horizontal {
                telemetry.set_max_replicas(&policy.name, h.governor.max);
            }
            events.extend(self.track_blind(ctx, &decision.explanation.missing, wall));
            events.extend(window_event(&policy, decision, wall));
            if let Some(e) = self
                .horizontal_event(ctx, actuator, decision, outcome.patched.as_ref(), wall)
                .await
            {
                events.push(e);
            }
        }
        if let (Some(v), Some(recommenders)) = (&outcome.vertical, self.tick.recommenders()) {
            telemetry.set_vertical(&policy.name, &recommenders.recommendations());
            events.extend(vertical_event(ctx, &policy, v, wall));
        }
        if let Some(v) = &outcome.vertical {
            events.extend(self.report_event(&policy, v, wall));
        }
        if outcome.decision.is_some() || outcome.vertical.is_some() {
            telemetry.set_paused(&policy.name, outcome.pause.is_some());
            events.extend(pause_event(&policy, outcome, wall));
        }
        let mut published = match (outcome.decision.take(), outcome.vertical.take()) {
            (Some(decision), vertical) => PolicyRecommendation {
                vertical,
                ..PolicyRecommendation::new(&policy, decision, wall)
            },
            (None, Some(vertical)) => PolicyRecommendation::vertical_only(&policy, vertical, wall),
            (None, None) => return keep_plan,
        };
        published.mode = actuator.mode();
        published.last_scale_time = super::status::last_scale_time(self.tick.memory());
        ctx.admin.publish(published);
        if speaks {
            for e in &events {
                publish_event(ctx, e).await;
            }
        }
        keep_plan
    }

    /// The log line and the Event of a horizontal decision.
    async fn horizontal_event<C>(
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

/// The log line and the Event of a pause that starts (or changes) or ends at this tick.
fn pause_event(policy: &Policy, outcome: &TickOutcome, time: SystemTime) -> Option<EventNote> {
    let decision = outcome.decision.as_ref().map(|d| format!(": {d}"));
    let decision = decision.unwrap_or_default();
    if let Some(p) = outcome.pause.as_ref().filter(|p| p.started) {
        info!(pause = %p, "paused");
        let note = format!("{p}{decision}");
        let event = EventNote::new(&policy.target, "Paused", "Pause", note, time);
        return Some(match p.pause {
            Pause::Invalid { .. } => event.warning(),
            _ => event,
        });
    }
    let ended = outcome.resumed.as_ref()?;
    info!(pause = %ended, "resumed");
    let note = format!("no longer {ended}: the policy acts again{decision}");
    Some(EventNote::new(
        &policy.target,
        "Resumed",
        "Resume",
        note,
        time,
    ))
}

/// Publishes an Event; a failure is logged and counted, and changes nothing else.
pub(crate) async fn publish_event<C: Cluster>(ctx: &Context<C>, event: &EventNote) {
    if let Err(e) = ctx.cluster.create_event(event).await {
        ctx.admin.telemetry().record_error(ErrorKind::of(&e));
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

/// How long 403 answers in a row are taken for an API server that has just started (its RBAC
/// caches fill in about a second) before they are logged as a Role missing a right. The tick
/// goes on at its usual pace meanwhile, and the error is on `/recommendations` at once.
const FORBIDDEN_GRACE: Duration = crate::cluster::lease::DEFAULT_FORBIDDEN_GRACE;

/// The `failing` entry of an outage: what failed, and since when.
fn failing_text(o: &outage::Outage) -> String {
    format!("{} (since {})", o.what, o.since_text())
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
}
