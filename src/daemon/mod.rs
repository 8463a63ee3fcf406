//! The in-cluster daemon (`setpoint run`): scheduling, restart state, reload, the admin HTTP
//! server and telemetry, and shutdown.
//!
//! - [`run`]: loads every policy of a folder and of the namespace's ScalingPolicy objects
//!   (watched), runs each on its own interval in its own task, reloads a policy when its file
//!   or object changes, and stops every task at shutdown. Both sources go through one path
//!   (`Policies::apply`), keyed by source (a file path or an object), with the same checks
//!   across both (one policy per name, one horizontal policy per target). One policy failing
//!   (a bad file or object, a target that is gone, a missing RBAC right) never stops the
//!   others.
//! - [`reload`]: which policy files changed (ConfigMap symlink swaps included).
//! - [`telemetry`]: the daemon's own metrics on one prometheus-client registry, with bounded
//!   label values.
//! - [`admin`]: the admin HTTP server (`/healthz`, `/readyz`, `/metrics`, `/recommendations`) and
//!   the [`admin::AdminState`] handle that the control loop updates.
//! - [`status`]: the status of a policy from a ScalingPolicy object, from each tick's outcome,
//!   written to the object's `/status` by the Lease holder when it changed.
//! - `outage`: an outage (failing ticks, metrics without data) seen once when it starts and
//!   once when it ends: a log line each, a `failing` entry, a gauge and one Warning Event.
//!
//! # One tick of one policy
//!
//! Each policy's worker calls [`crate::tick::run`] on the policy's interval, with a
//! [`crate::tick::Hold`] from the Lease ([`crate::cluster::lease`]) and `--dry-run`; the tick
//! observes, decides, governs, acts (a 409 Conflict reads the target again and decides again)
//! and runs the vertical part. The worker then records what it returned: the decision on
//! `/recommendations` and `/metrics`, an Event when it is an action or a changed
//! recommendation, and after an action, or a change of the planner's state that matters, the
//! restart state on the target's annotation ([`crate::tick::restart`]).
//!
//! Tasks run on one thread (a `LocalSet`): a tick is mostly waiting on the network, and one
//! thread keeps the footprint of a thousand policies small.

pub mod admin;
mod outage;
pub mod reload;
pub mod status;
pub mod telemetry;
mod worker;

use crate::cluster::policies::PolicyChange;
use crate::cluster::{Cluster, EventNote};
use crate::engine::State;
use crate::policy::status::PolicyStatus;
use crate::policy::{self, Policy, PolicyError};
use crate::prometheus::PrometheusClient;
use admin::AdminState;
use futures_util::{Stream, StreamExt};
use reload::{Change, Scanner};
use status::{InvalidSpec, StatusWriter};
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tokio::task::{JoinHandle, LocalSet};
use tracing::{error, info, warn};
use worker::Context;

/// Settings of [`run`].
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// The folder of policy files (None: policies come from ScalingPolicy objects only).
    pub policies: Option<PathBuf>,
    /// The Prometheus of policies that name none (one client: its connections are shared).
    pub prometheus: Option<PrometheusClient>,
    /// Patch nothing: every policy only recommends.
    pub dry_run: bool,
    /// How often the folder is looked at for changed files.
    pub reload_every: Duration,
}

/// Why the daemon cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The policy folder cannot be read.
    #[error("{0}")]
    Policies(#[from] PolicyError),
}

struct Running {
    policy: Arc<Policy>,
    /// A newer spec of its object that does not validate, for its status.
    invalid: watch::Sender<Option<InvalidSpec>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Option<State>>,
}

impl Running {
    async fn stop(self) -> Option<State> {
        let _ = self.stop.send(true);
        self.task.await.ok().flatten()
    }
}

/// Runs every policy of `config.policies` and of `objects` (the ScalingPolicy watch,
/// [`crate::cluster::policies::watch`]) against `cluster` until `shutdown` resolves, then lets
/// the ticks in flight finish and returns. `leader` says whether this replica may act.
pub async fn run<C: Cluster + 'static>(
    config: DaemonConfig,
    cluster: C,
    objects: Option<impl Stream<Item = PolicyChange>>,
    admin: AdminState,
    leader: watch::Receiver<bool>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let mut scanner = config.policies.as_deref().map(Scanner::new);
    let first = match scanner.as_mut() {
        Some(s) => s.scan()?,
        None => Vec::new(),
    };
    let ctx = Rc::new(Context {
        cluster,
        admin,
        prometheus: config.prometheus.clone(),
        dry_run: config.dry_run,
        leader,
    });
    LocalSet::new()
        .run_until(async move {
            let mut policies = Policies::default();
            policies
                .apply(&ctx, first.into_iter().map(Update::from).collect())
                .await;
            let mut every = tokio::time::interval(config.reload_every);
            every.tick().await;
            let mut objects = objects.map(Box::pin);
            let ns = ctx.cluster.namespace().to_string();
            tokio::pin!(shutdown);
            loop {
                let object = async {
                    match objects.as_mut() {
                        Some(s) => s.next().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = every.tick(), if scanner.is_some() => {
                        match scanner.as_mut().map(Scanner::scan) {
                            Some(Ok(changes)) if changes.is_empty() => {}
                            Some(Ok(changes)) => {
                                let updates = changes.into_iter().map(Update::from).collect();
                                policies.apply(&ctx, updates).await
                            }
                            Some(Err(e)) => warn!(error = %e, "cannot read the policy folder"),
                            None => {}
                        }
                    }
                    change = object => match change {
                        Some(c) => policies.apply(&ctx, vec![Update::object(&ns, c)]).await,
                        None => {
                            warn!("the ScalingPolicy watch ended: objects are no longer followed");
                            objects = None;
                        }
                    },
                    () = &mut shutdown => break,
                }
            }
            info!(
                policies = policies.running.len(),
                "stopping: letting the ticks in flight finish"
            );
            let running = std::mem::take(&mut policies.running);
            for r in running.values() {
                let _ = r.stop.send(true);
            }
            for (_, r) in running {
                let _ = r.task.await;
            }
        })
        .await;
    Ok(())
}

/// Where a policy comes from: the key it runs under.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    /// A policy file.
    File(PathBuf),
    /// A ScalingPolicy object, as `ScalingPolicy <namespace>/<name>`.
    Object(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::Object(o) => f.write_str(o),
        }
    }
}

/// A change of one source: loaded (a policy, or why it is not one), or gone.
enum Update {
    /// With the object's status as it is (None for a file).
    Loaded(
        Source,
        Box<Result<Policy, PolicyError>>,
        Option<Box<PolicyStatus>>,
    ),
    Removed(Source),
}

impl From<Change> for Update {
    fn from(c: Change) -> Update {
        match c {
            Change::Changed(path) => {
                let loaded = policy::load(&path);
                Update::Loaded(Source::File(path), Box::new(loaded), None)
            }
            Change::Removed(path) => Update::Removed(Source::File(path)),
        }
    }
}

impl Update {
    fn object(namespace: &str, c: PolicyChange) -> Update {
        match c {
            PolicyChange::Applied(name, loaded, status) => Update::Loaded(
                Source::Object(policy::object_name(namespace, &name)),
                loaded,
                status,
            ),
            PolicyChange::Deleted(name) => {
                Update::Removed(Source::Object(policy::object_name(namespace, &name)))
            }
        }
    }
}

/// The policies running, by source (file or object).
#[derive(Default)]
struct Policies {
    running: BTreeMap<Source, Running>,
    /// Sources with an error, and the name they are shown under on `/recommendations`.
    invalid: BTreeMap<Source, String>,
    /// Valid policies refused for another source's name or target, until that one goes.
    blocked: BTreeMap<Source, Policy>,
    /// The status of each invalid object that runs no previous version.
    statuses: BTreeMap<Source, StatusWriter>,
}

impl Policies {
    /// The one path of every change, from the folder and from the watch alike.
    async fn apply<C: Cluster + 'static>(&mut self, ctx: &Rc<Context<C>>, updates: Vec<Update>) {
        for update in updates {
            match update {
                Update::Removed(source) => {
                    self.blocked.remove(&source);
                    self.statuses.remove(&source);
                    if let Some(r) = self.running.remove(&source) {
                        info!(policy = %r.policy.name, %source, "policy removed: stopping it");
                        let name = r.policy.name.clone();
                        // Stopped first: a tick in flight would list the policy again.
                        r.stop().await;
                        ctx.admin.remove(&name);
                    }
                    if let Some(key) = self.invalid.remove(&source) {
                        ctx.admin.clear_invalid(&key);
                    }
                }
                Update::Loaded(source, loaded, live) => {
                    self.blocked.remove(&source);
                    match *loaded {
                        Err(e) => {
                            self.invalid_status(ctx, &source, &e, live).await;
                            self.refuse(ctx, source, e.to_string()).await
                        }
                        Ok(p) => match self.admit(&source, &p) {
                            Ok(()) => self.start(ctx, source, p, live).await,
                            Err(e) => {
                                self.refuse(ctx, source.clone(), e.to_string()).await;
                                self.blocked.insert(source, p);
                            }
                        },
                    }
                }
            }
        }
        // A policy refused for another one's name or target starts once that one is gone (a
        // file policy moved to an object, say) or changed.
        let waiting: Vec<Source> = self.blocked.keys().cloned().collect();
        for source in waiting {
            if self.admit(&source, &self.blocked[&source]).is_ok()
                && let Some(p) = self.blocked.remove(&source)
            {
                self.start(ctx, source, p, None).await;
            }
        }
        ctx.admin.set_loaded(self.running.len());
    }

    /// The checks across sources: one policy per name, one horizontal policy per target.
    fn admit(&self, source: &Source, p: &Policy) -> Result<(), PolicyError> {
        let same_name = self
            .running
            .iter()
            .find(|(s, r)| *s != source && r.policy.name == p.name);
        if let Some((first, r)) = same_name {
            return Err(match (first, source) {
                (Source::File(first), Source::File(path)) => PolicyError::Duplicate {
                    path: path.clone(),
                    name: p.name.clone(),
                    first: first.clone(),
                },
                _ => PolicyError::TwoSources {
                    name: p.name.clone(),
                    first: policy::source_name(&r.policy),
                    second: source.to_string(),
                },
            });
        }
        let others = self
            .running
            .iter()
            .filter(|(s, _)| *s != source)
            .map(|(_, r)| r.policy.as_ref());
        match policy::shared_target(p, others) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Starts a new or changed policy; a changed one goes on from its previous version's
    /// governor memory when its target is the same.
    async fn start<C: Cluster + 'static>(
        &mut self,
        ctx: &Rc<Context<C>>,
        source: Source,
        policy: Policy,
        live: Option<Box<PolicyStatus>>,
    ) {
        let policy = Arc::new(policy);
        if let Some(key) = self.invalid.remove(&source) {
            ctx.admin.clear_invalid(&key);
        }
        let mut carried = None;
        if let Some(old) = self.running.remove(&source) {
            let same_target = old.policy.target == policy.target;
            let old_name = old.policy.name.clone();
            let state = old.stop().await;
            if old_name != policy.name {
                ctx.admin.remove(&old_name);
            } else if same_target {
                carried = state;
            }
            info!(policy = %policy.name, %source, "policy reloaded");
        } else {
            info!(policy = %policy.name, %source, "policy loaded");
        }
        ctx.admin.telemetry().record_reload(true);
        self.statuses.remove(&source);
        let (stop, stopped) = watch::channel(false);
        let (invalid, spec) = watch::channel(None);
        let run = worker::run(ctx.clone(), policy.clone(), carried, live, spec, stopped);
        let task = tokio::task::spawn_local(run);
        let running = Running {
            policy,
            invalid,
            stop,
            task,
        };
        self.running.insert(source, running);
    }

    /// The status of an object whose spec does not validate: Ready False `InvalidSpec`, with
    /// the field path and message of each problem. Written by the previous version's worker
    /// when one runs (with the rest of its status), else here.
    async fn invalid_status<C: Cluster>(
        &mut self,
        ctx: &Context<C>,
        source: &Source,
        e: &PolicyError,
        live: Option<Box<PolicyStatus>>,
    ) {
        let PolicyError::InvalidObject {
            reference,
            problems,
            ..
        } = e
        else {
            return;
        };
        if let Some(r) = self.running.get(source) {
            let spec = InvalidSpec {
                object: reference.clone(),
                problems: problems.clone(),
            };
            let _ = r.invalid.send(Some(spec));
            return;
        }
        let leading = *ctx.leader.borrow();
        let telemetry = ctx.admin.telemetry();
        let writer = self.statuses.entry(source.clone()).or_default();
        if let Some(live) = live {
            writer.seed(*live);
        }
        let now = SystemTime::now();
        (writer)
            .after_invalid(&ctx.cluster, telemetry, reference, problems, leading, now)
            .await;
    }

    /// Records a file or object that does not load; the previous version of its policy keeps
    /// running.
    async fn refuse<C: Cluster>(&mut self, ctx: &Context<C>, source: Source, error: String) {
        let running = self.running.get(&source).map(|r| r.policy.clone());
        let key = match (&running, &source) {
            (Some(p), _) => p.name.clone(),
            (None, Source::File(path)) => path.display().to_string(),
            (None, Source::Object(o)) => o.clone(),
        };
        ctx.admin.telemetry().record_reload(false);
        ctx.admin
            .telemetry()
            .record_error(telemetry::ErrorKind::Policy);
        ctx.admin.set_invalid(&key, &error);
        self.invalid.insert(source.clone(), key);
        let error = admin::redact(&error);
        match running {
            None => error!(%source, %error, "invalid policy: not loaded"),
            Some(p) => {
                error!(policy = %p.name, %source, %error,
                    "invalid new version of a policy: the previous version keeps running");
                if *ctx.leader.borrow() {
                    let note = format!(
                        "the new version of policy {} is invalid; the previous version keeps \
                         running: {error}",
                        p.name
                    );
                    let event = EventNote::new(
                        &p.target,
                        "PolicyInvalid",
                        "Reload",
                        note,
                        SystemTime::now(),
                    )
                    .warning();
                    worker::publish_event(ctx, &event).await;
                }
            }
        }
    }
}
