//! The in-cluster daemon (`setpoint run`): scheduling, restart state, reload, the admin HTTP
//! server and telemetry, and shutdown.
//!
//! - [`run`]: loads every policy of a folder, runs each on its own interval in its own task,
//!   reloads the folder when files change, and stops every task at shutdown. One policy failing
//!   (a bad file, a target that is gone, a missing RBAC right) never stops the others.
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

use crate::cluster::{Cluster, EventNote};
use crate::engine::State;
use crate::policy::{self, Policy, PolicyError};
use crate::prometheus::PrometheusClient;
use admin::AdminState;
use reload::{Change, Scanner};
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
    /// The folder of policy files.
    pub policies: PathBuf,
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
    stop: watch::Sender<bool>,
    task: JoinHandle<Option<State>>,
}

impl Running {
    async fn stop(self) -> Option<State> {
        let _ = self.stop.send(true);
        self.task.await.ok().flatten()
    }
}

/// Runs every policy of `config.policies` against `cluster` until `shutdown` resolves, then
/// lets the ticks in flight finish and returns. `leader` says whether this replica may act.
pub async fn run<C: Cluster + 'static>(
    config: DaemonConfig,
    cluster: C,
    admin: AdminState,
    leader: watch::Receiver<bool>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let mut scanner = Scanner::new(&config.policies);
    let first = scanner.scan()?;
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
            policies.apply(&ctx, first).await;
            let mut every = tokio::time::interval(config.reload_every);
            every.tick().await;
            tokio::pin!(shutdown);
            loop {
                tokio::select! {
                    _ = every.tick() => match scanner.scan() {
                        Ok(changes) if changes.is_empty() => {}
                        Ok(changes) => policies.apply(&ctx, changes).await,
                        Err(e) => warn!(error = %e, "cannot read the policy folder"),
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

/// The policies running, by file.
#[derive(Default)]
struct Policies {
    running: BTreeMap<PathBuf, Running>,
    /// Files with an error, and the name they are shown under on `/recommendations`.
    invalid: BTreeMap<PathBuf, String>,
}

impl Policies {
    async fn apply<C: Cluster + 'static>(&mut self, ctx: &Rc<Context<C>>, changes: Vec<Change>) {
        for change in changes {
            match change {
                Change::Removed(path) => {
                    if let Some(r) = self.running.remove(&path) {
                        info!(policy = %r.policy.name, file = %path.display(), "policy file removed: stopping the policy");
                        let name = r.policy.name.clone();
                        // Stopped first: a tick in flight would list the policy again.
                        r.stop().await;
                        ctx.admin.remove(&name);
                    }
                    if let Some(key) = self.invalid.remove(&path) {
                        ctx.admin.clear_invalid(&key);
                    }
                }
                Change::Changed(path) => {
                    let loaded = policy::load(&path).and_then(|p| {
                        match self
                            .running
                            .iter()
                            .find(|(f, r)| **f != path && r.policy.name == p.name)
                        {
                            Some((first, _)) => Err(PolicyError::Duplicate {
                                path: path.clone(),
                                name: p.name,
                                first: first.clone(),
                            }),
                            None => {
                                let others = self.running.values().map(|r| r.policy.as_ref());
                                match policy::shared_target(&p, others) {
                                    Some(e) => Err(e),
                                    None => Ok(p),
                                }
                            }
                        }
                    });
                    match loaded {
                        Ok(p) => self.start(ctx, path, p).await,
                        Err(e) => self.refuse(ctx, path, e.to_string()).await,
                    }
                }
            }
        }
        ctx.admin.set_loaded(self.running.len());
    }

    /// Starts a new or changed policy; a changed one goes on from its previous version's
    /// governor memory when its target is the same.
    async fn start<C: Cluster + 'static>(
        &mut self,
        ctx: &Rc<Context<C>>,
        path: PathBuf,
        policy: Policy,
    ) {
        let policy = Arc::new(policy);
        if let Some(key) = self.invalid.remove(&path) {
            ctx.admin.clear_invalid(&key);
        }
        let mut carried = None;
        if let Some(old) = self.running.remove(&path) {
            let same_target = old.policy.target == policy.target;
            let old_name = old.policy.name.clone();
            let state = old.stop().await;
            if old_name != policy.name {
                ctx.admin.remove(&old_name);
            } else if same_target {
                carried = state;
            }
            info!(policy = %policy.name, file = %path.display(), "policy reloaded");
        } else {
            info!(policy = %policy.name, file = %path.display(), "policy loaded");
        }
        ctx.admin.telemetry().record_reload(true);
        let (stop, stopped) = watch::channel(false);
        let task =
            tokio::task::spawn_local(worker::run(ctx.clone(), policy.clone(), carried, stopped));
        self.running.insert(path, Running { policy, stop, task });
    }

    /// Records a file that does not load; the previous version of its policy keeps running.
    async fn refuse<C: Cluster>(&mut self, ctx: &Context<C>, path: PathBuf, error: String) {
        let running = self.running.get(&path).map(|r| r.policy.clone());
        let key = match &running {
            Some(p) => p.name.clone(),
            None => path.display().to_string(),
        };
        ctx.admin.telemetry().record_reload(false);
        ctx.admin
            .telemetry()
            .record_error(telemetry::ErrorKind::Policy);
        ctx.admin.set_invalid(&key, &error);
        self.invalid.insert(path.clone(), key);
        let error = admin::redact(&error);
        match running {
            None => error!(file = %path.display(), %error, "invalid policy file: not loaded"),
            Some(p) => {
                error!(policy = %p.name, file = %path.display(), %error,
                    "invalid new version of a policy file: the previous version keeps running");
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
