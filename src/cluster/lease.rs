//! Leader election on a `coordination.k8s.io/v1` Lease: of the daemon's replicas, only the one
//! that holds the Lease acts.
//!
//! [`elect`] joins the election and returns a [`Leadership`]: a flag that is true while this
//! instance holds the Lease, a future that resolves if the election fails for good (so that the
//! process can exit), and [`Leadership::release`] to step down on shutdown, so that the other
//! replica takes over within about one renew period rather than after the Lease expires.
//!
//! # How
//!
//! [kube-lease-manager](https://docs.rs/kube-lease-manager) drives the Lease: it creates it when
//! missing (GET, then POST), takes a free or expired Lease with a server-side apply (PATCH
//! `application/apply-patch+yaml` with its own field manager, without `force`: of two contenders
//! the API server lets only the first own `spec.holderIdentity`, the second gets 409
//! `Conflict`), renews it with a strategic merge patch `renew_period` after each renewal, and
//! releases it by clearing the holder. On top of it, this module:
//!
//! - says "leader" only while the Lease, as this instance last read it, names this identity and
//!   its `renewTime + leaseDurationSeconds` is still ahead (less a margin of a tenth of the
//!   duration, at most 1 s). It reads the Lease once per renew period, just after the expected
//!   renewal. So the flag turns false at once when another holder is seen, and by the Lease's
//!   expiry at the latest when it cannot be renewed: kube-lease-manager alone would keep saying
//!   "leader" through failed renewals;
//! - as a follower, reads the Lease once per renew period and takes part again at once when it
//!   is free: kube-lease-manager would look again only when the last holder's Lease expires, so
//!   a release would save nothing;
//! - creates the Lease again when it is deleted (kube-lease-manager would not);
//! - ends the election with an error on 401, and on a 403 that lasts [`LeaseConfig::forbidden_grace`]
//!   (default [`DEFAULT_FORBIDDEN_GRACE`], two minutes): a kube-apiserver that has just started
//!   answers 403 to service accounts for about a second while its RBAC caches fill, which must
//!   not end the election, but a Role that really lacks a verb does not heal by retrying and
//!   must show up soon. The error then names the verb, the resource and the right to add. Other
//!   errors (timeouts, refused connections, 5xx, 429), and a 403 inside the grace, are retried
//!   with a backoff of at most one renew period; a leader keeps its flag through them until the
//!   Lease would expire. [`elect`] retries the first read or create the same way.

use super::kube::identity_from_env;
use super::{ClusterError, hint};
use crate::text::error_chain;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube_lease_manager::{LeaseCreateMode, LeaseManager, LeaseManagerError, LeaseParams};
use std::time::{Duration, SystemTime};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{Instrument, debug, info, warn};

/// The Lease's name unless configured.
pub const DEFAULT_LEASE_NAME: &str = "setpoint";
/// How long a Lease holds after its last renewal unless configured.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the holder renews unless configured.
pub const DEFAULT_RENEW_PERIOD: Duration = Duration::from_secs(5);

/// How long a 403 on the Lease is retried before the election ends unless configured: long
/// enough for the RBAC caches of a restarted kube-apiserver (about a second, more on a loaded
/// control plane), short enough that a Role missing a right shows up within minutes.
pub const DEFAULT_FORBIDDEN_GRACE: Duration = Duration::from_secs(120);

/// The longest identity: the field manager (`setpoint-lease-` and the identity) must stay within
/// the API server's 128 characters.
const MAX_IDENTITY: usize = 110;

/// How to take part in the election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// The Lease's name (default `setpoint`).
    pub name: String,
    /// The Lease's namespace: the daemon's own.
    pub namespace: String,
    /// This instance's identity, written as the Lease's holder: unique among the replicas
    /// (default: `$POD_NAME`, then `$HOSTNAME`; see [`crate::cluster::kube::identity_from_env`]).
    pub identity: String,
    /// How long the Lease holds after its last renewal (default 15 s). Whole seconds, at least 2.
    pub lease_duration: Duration,
    /// How often the holder renews (default 5 s). Whole seconds, at least 1, less than the
    /// lease duration; a follower takes a released Lease within about this long.
    pub renew_period: Duration,
    /// How long 403 answers in a row are retried before the election ends (default two
    /// minutes, [`DEFAULT_FORBIDDEN_GRACE`]).
    pub forbidden_grace: Duration,
}

impl LeaseConfig {
    /// The defaults, in `namespace`, with the identity from the environment (empty when neither
    /// `POD_NAME` nor `HOSTNAME` is set: [`elect`] then refuses to start).
    pub fn new(namespace: impl Into<String>) -> LeaseConfig {
        LeaseConfig {
            name: DEFAULT_LEASE_NAME.to_string(),
            namespace: namespace.into(),
            identity: identity_from_env().unwrap_or_default(),
            lease_duration: DEFAULT_LEASE_DURATION,
            renew_period: DEFAULT_RENEW_PERIOD,
            forbidden_grace: DEFAULT_FORBIDDEN_GRACE,
        }
    }

    /// `namespace/name`, as errors and logs name the Lease.
    pub fn lease(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Checks what the API server and kube-lease-manager need.
    pub fn validate(&self) -> Result<(), LeaseError> {
        let fail = |m: String| Err(LeaseError::Config(format!("Lease {}: {m}", self.lease())));
        if self.name.is_empty() || self.namespace.is_empty() {
            return fail("the Lease needs a name and a namespace".into());
        }
        if self.identity.trim().is_empty() {
            return fail(
                "no identity: set POD_NAME (or HOSTNAME) to this replica's name (the machine's \
                 host name could not be read either)"
                    .into(),
            );
        }
        if self.identity.len() > MAX_IDENTITY {
            return fail(format!(
                "the identity is longer than {MAX_IDENTITY} characters"
            ));
        }
        let whole = |d: Duration| d.subsec_nanos() == 0;
        if !whole(self.lease_duration) || !whole(self.renew_period) {
            return fail("the lease duration and the renew period are whole seconds".into());
        }
        if self.renew_period < Duration::from_secs(1) || self.renew_period >= self.lease_duration {
            return fail(format!(
                "the renew period ({}s) must be at least 1s and less than the lease duration ({}s)",
                self.renew_period.as_secs(),
                self.lease_duration.as_secs()
            ));
        }
        Ok(())
    }

    /// The field manager of this instance's writes: one per identity, so that two replicas'
    /// applies conflict.
    fn field_manager(&self) -> String {
        format!("setpoint-lease-{}", self.identity)
    }

    /// How long before the Lease's expiry this instance stops saying "leader".
    fn margin(&self) -> Duration {
        (self.lease_duration / 10).min(Duration::from_secs(1))
    }
}

/// What went wrong with the election. Messages name the Lease and what was being done; they
/// carry the API server's status, never credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// A configuration that cannot work.
    #[error("{0}")]
    Config(String),
    /// The API server answered with an error status.
    #[error("Lease {lease}: {doing}: HTTP {code} {reason}: {message}{}", hint(*code, "Lease ", message))]
    Api {
        /// `namespace/name`.
        lease: String,
        /// What was being done, with the verbs it takes (`renewing it (get, patch)`).
        doing: String,
        /// The HTTP status code.
        code: u16,
        /// The Status `reason` (`Forbidden`, ...).
        reason: String,
        /// The Status `message`.
        message: String,
    },
    /// No answer, or another failure.
    #[error("Lease {lease}: {doing}: {message}")]
    Other {
        /// `namespace/name`.
        lease: String,
        /// What was being done.
        doing: String,
        /// What went wrong.
        message: String,
    },
    /// A 403 that lasted the whole grace: the Role bound to this identity lacks a right.
    #[error("{error} (forbidden for {}s in a row)", lasted.as_secs())]
    Forbidden {
        /// The last 403.
        error: Box<LeaseError>,
        /// How long the 403 answers lasted.
        lasted: Duration,
    },
    /// The election task ended without a result (it panicked or was cancelled).
    #[error("Lease {lease}: the election task ended: {message}")]
    Task {
        /// `namespace/name`.
        lease: String,
        /// How it ended.
        message: String,
    },
}

impl LeaseError {
    /// The HTTP status code of an API error.
    pub fn code(&self) -> Option<u16> {
        match self {
            LeaseError::Api { code, .. } => Some(*code),
            LeaseError::Forbidden { .. } => Some(403),
            _ => None,
        }
    }

    /// Whether retrying cannot help: bad configuration, credentials, or a 403 that lasted the
    /// grace (a 403 alone is retried: see [`Forbidden`]).
    fn is_fatal(&self) -> bool {
        matches!(
            self,
            LeaseError::Config(_) | LeaseError::Task { .. } | LeaseError::Forbidden { .. }
        ) || self.code() == Some(401)
    }
}

/// How long 403 answers have lasted, per call (`doing`: electing, reading, creating): a 403 is
/// retried until 403s to that call have lasted the grace, then it ends the election
/// ([`LeaseError::Forbidden`]). An answer to that call that is not a 403 starts it again, so a
/// Role that lets the Lease be read but not renewed still ends the election.
#[derive(Debug)]
struct Forbidden {
    grace: Duration,
    since: std::sync::Mutex<std::collections::BTreeMap<String, Instant>>,
}

impl Forbidden {
    fn new(grace: Duration) -> Forbidden {
        Forbidden {
            grace,
            since: std::sync::Mutex::new(std::collections::BTreeMap::new()),
        }
    }

    /// An answer to `doing` that was not a 403.
    fn answered(&self, doing: &str) {
        self.since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(doing);
    }

    /// `e` as the election should take it: a 403 becomes fatal once 403s to the same call have
    /// lasted the grace; others are as they are.
    fn judge(&self, e: LeaseError) -> LeaseError {
        let doing = match &e {
            LeaseError::Api { doing, .. } => doing.clone(),
            // No answer: neither a 403 nor a sign that the 403s are over.
            _ => return e,
        };
        if e.code() != Some(403) {
            self.answered(&doing);
            return e;
        }
        let now = Instant::now();
        let since = *self
            .since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(doing)
            .or_insert(now);
        let lasted = now - since;
        if lasted >= self.grace {
            LeaseError::Forbidden {
                error: Box::new(e),
                lasted,
            }
        } else {
            e
        }
    }
}

/// A kube-rs error while `doing` something with `lease`, mapped as every other API error is
/// ([`super::kube::api_error`]).
fn kube_error(lease: &str, doing: &str, e: &kube::Error) -> LeaseError {
    let (lease, doing) = (lease.to_string(), doing.to_string());
    match super::kube::api_error(String::new(), e) {
        ClusterError::Api {
            code,
            reason,
            message,
            ..
        } => LeaseError::Api {
            lease,
            doing,
            code,
            reason,
            message,
        },
        ClusterError::Transport { message, .. }
        | ClusterError::Invalid { message, .. }
        | ClusterError::Unsupported { message, .. }
        | ClusterError::NotSynced {
            reason: message, ..
        }
        | ClusterError::Config(message) => LeaseError::Other {
            lease,
            doing,
            message,
        },
    }
}

/// What [`new_manager`] does, as errors name it.
const CREATING: &str = "reading or creating it (get, create)";
/// What kube-lease-manager's `changed` does, as errors name it.
const ELECTING: &str = "electing (get, patch)";

/// What a failure of kube-lease-manager means for the election.
enum Failure {
    /// The Lease is not there (any more): create it again.
    Gone,
    /// Retrying cannot help.
    Fatal(LeaseError),
    /// Retry after a backoff.
    Transient(LeaseError),
}

fn classify(lease: &str, doing: &str, e: &LeaseManagerError, forbidden: &Forbidden) -> Failure {
    let error = match e {
        LeaseManagerError::NonexistentLease(_) => return Failure::Gone,
        LeaseManagerError::KubeError(kube::Error::Api(s)) if s.code == 404 => {
            return Failure::Gone;
        }
        LeaseManagerError::KubeError(k) => forbidden.judge(kube_error(lease, doing, k)),
        // An internal inconsistency of kube-lease-manager: start over from a fresh process.
        other => {
            return Failure::Fatal(LeaseError::Other {
                lease: lease.to_string(),
                doing: doing.to_string(),
                message: error_chain(other),
            });
        }
    };
    if error.is_fatal() {
        Failure::Fatal(error)
    } else {
        Failure::Transient(error)
    }
}

/// This instance's part in the election, from [`elect`].
///
/// Dropping it steps down too, in the background; [`Leadership::release`] waits for that.
#[derive(Debug)]
pub struct Leadership {
    lease: String,
    leader: watch::Receiver<bool>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), LeaseError>>>,
    ended: Option<LeaseError>,
}

impl Leadership {
    /// Whether this instance holds the Lease now and may act.
    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// The leadership flag: true while this instance holds the Lease and may act. It turns
    /// false when the Lease is seen taken by another holder or deleted, when it was not renewed
    /// in time, when the election fails, and before a release.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.leader.clone()
    }

    /// Resolves when the election has ended on its own, which it does only for good: a 401 or
    /// 403 on the Lease, or an internal failure. The flag is false by then. The daemon should
    /// exit with this error. Cancel-safe; after it has resolved once it resolves at once with the
    /// same error.
    pub async fn failed(&mut self) -> LeaseError {
        if let Some(e) = &self.ended {
            return e.clone();
        }
        let Some(task) = self.task.as_mut() else {
            return std::future::pending().await;
        };
        let outcome = task.await;
        self.task = None;
        let error = match outcome {
            Ok(Err(e)) => e,
            Ok(Ok(())) => LeaseError::Task {
                lease: self.lease.clone(),
                message: "it stopped without being asked to".into(),
            },
            Err(e) => LeaseError::Task {
                lease: self.lease.clone(),
                message: if e.is_panic() {
                    "it panicked".into()
                } else {
                    "it was cancelled".into()
                },
            },
        };
        self.ended = Some(error.clone());
        error
    }

    /// Steps down: the flag turns false first, then the Lease is released if this instance
    /// holds it, so that the other replica takes over within about one renew period. Returns the
    /// election's error if it had already failed.
    pub async fn release(mut self) -> Result<(), LeaseError> {
        if let Some(e) = self.ended.take() {
            return Err(e);
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(task) = self.task.take() else {
            return Ok(());
        };
        match task.await {
            Ok(result) => result,
            Err(e) => Err(LeaseError::Task {
                lease: self.lease.clone(),
                message: e.to_string(),
            }),
        }
    }
}

/// Joins the election for `config`'s Lease: creates the Lease if it is missing and starts the
/// election task (in a `lease` span). Returns once the Lease exists; the flag starts false.
/// Fails at once on a bad configuration or a 401; a 403 is retried for the grace
/// ([`LeaseConfig::forbidden_grace`]), other failures (no answer, 5xx) as long as they last.
pub async fn elect(client: kube::Client, config: LeaseConfig) -> Result<Leadership, LeaseError> {
    config.validate()?;
    let lease = config.lease();
    let forbidden = Forbidden::new(config.forbidden_grace);
    let manager = first_manager(&client, &config, &forbidden).await?;
    let (tx, leader) = watch::channel(false);
    let (stop, stopped) = oneshot::channel();
    let span = tracing::info_span!("lease", lease = %lease, identity = %config.identity);
    let election = Election {
        api: Api::namespaced(client.clone(), &config.namespace),
        client,
        lease: lease.clone(),
        config,
        tx,
        forbidden,
    };
    let task = tokio::spawn(election.run(manager, stopped).instrument(span));
    Ok(Leadership {
        lease,
        leader,
        stop: Some(stop),
        task: Some(task),
        ended: None,
    })
}

/// The first kube-lease-manager of [`elect`]: failures that may heal (a 403 inside the grace,
/// no answer, 5xx) are logged once and retried with a backoff of at most one renew period.
async fn first_manager(
    client: &kube::Client,
    config: &LeaseConfig,
    forbidden: &Forbidden,
) -> Result<LeaseManager, LeaseError> {
    let mut failures = 0u32;
    loop {
        match new_manager(client, config).await {
            Ok(m) => {
                if failures > 0 {
                    info!(lease = %config.lease(), failures, "the Lease can be read again");
                }
                return Ok(m);
            }
            Err(e) => {
                let e = forbidden.judge(e);
                if e.is_fatal() {
                    return Err(e);
                }
                if failures == 0 {
                    warn!(lease = %config.lease(), error = %e, "cannot read or create the Lease yet: retrying");
                }
                failures += 1;
                let delay = Duration::from_millis(200).saturating_mul(1 << failures.min(10));
                tokio::time::sleep(delay.min(config.renew_period)).await;
            }
        }
    }
}

/// A kube-lease-manager for `config`, the Lease created if it is missing.
async fn new_manager(
    client: &kube::Client,
    config: &LeaseConfig,
) -> Result<LeaseManager, LeaseError> {
    let duration = config.lease_duration.as_secs();
    let grace = duration - config.renew_period.as_secs();
    let params = LeaseParams::new(config.identity.clone(), duration, grace)
        .with_field_manager(config.field_manager());
    LeaseManager::new(
        client.clone(),
        config.name.clone(),
        config.namespace.clone(),
        params,
        LeaseCreateMode::AutoCreate,
    )
    .await
    .map_err(|e| match e {
        LeaseManagerError::KubeError(k) => kube_error(&config.lease(), CREATING, &k),
        other => LeaseError::Other {
            lease: config.lease(),
            doing: CREATING.into(),
            message: error_chain(&other),
        },
    })
}

/// One call of kube-lease-manager's `changed` (which returns when this instance's holding
/// changes, and renews the Lease meanwhile), after `delay`.
async fn step(manager: &LeaseManager, delay: Duration) -> Result<bool, LeaseManagerError> {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    manager.changed().await
}

/// A timer for `at`, or one that does not fire.
fn sleep_until(at: Option<Instant>) -> tokio::time::Sleep {
    tokio::time::sleep_until(at.unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400)))
}

/// How an election round ended.
enum Ended {
    /// Asked to stop.
    Stop,
    /// The Lease is gone.
    Gone,
    /// A follower saw the Lease free (released): kube-lease-manager would wait for the last
    /// holder's expiry before it looked again.
    Free,
    /// For good.
    Fatal(LeaseError),
}

/// What a read of the Lease showed.
enum Read {
    /// This instance holds it, valid until then; it was last renewed then.
    Holder {
        valid_until: Instant,
        renewed: Instant,
    },
    /// Someone else holds it, or nobody, or it has expired.
    NotHolder(Option<String>),
    /// It is gone.
    Gone,
    /// No answer.
    Failed(Failure),
}

struct Election {
    client: kube::Client,
    api: Api<Lease>,
    lease: String,
    config: LeaseConfig,
    tx: watch::Sender<bool>,
    /// How long 403s have lasted.
    forbidden: Forbidden,
}

impl Election {
    async fn run(
        self,
        mut manager: LeaseManager,
        mut stop: oneshot::Receiver<()>,
    ) -> Result<(), LeaseError> {
        loop {
            let ended = self.round(&manager, &mut stop).await;
            self.publish(false);
            match ended {
                Ended::Stop => return self.release(&manager).await,
                Ended::Fatal(e) => {
                    warn!(error = %e, "leader election failed");
                    return Err(e);
                }
                Ended::Gone | Ended::Free => {
                    if matches!(ended, Ended::Gone) {
                        warn!("the Lease is gone: creating it again");
                    } else {
                        info!("the Lease was released: taking part again at once");
                    }
                    match self.recreate(&mut stop).await? {
                        Some(m) => manager = m,
                        None => return Ok(()),
                    }
                }
            }
        }
    }

    fn publish(&self, leader: bool) {
        let changed = self.tx.send_if_modified(|v| {
            let changed = *v != leader;
            *v = leader;
            changed
        });
        if changed {
            info!(leader, "leadership changed");
        }
    }

    fn backoff(&self, failures: u32) -> Duration {
        let exp = Duration::from_millis(200).saturating_mul(1 << failures.min(10));
        exp.min(self.config.renew_period)
    }

    /// Drives kube-lease-manager and checks the Lease until the round ends.
    async fn round(&self, manager: &LeaseManager, stop: &mut oneshot::Receiver<()>) -> Ended {
        let renew = self.config.renew_period;
        let mut changed = Box::pin(step(manager, Duration::ZERO));
        // kube-lease-manager's view: it took the Lease and has not seen it lost.
        let mut holds = false;
        // This module's view: the Lease as last read names this instance until then.
        let mut valid_until: Option<Instant> = None;
        // When to read the Lease next: a follower once per renew period, to see a release.
        let mut read_at: Option<Instant> = Some(Instant::now() + renew);
        let mut failures = 0;
        loop {
            let leader = holds && valid_until.is_some_and(|v| Instant::now() < v);
            self.publish(leader);
            let deadline = valid_until.filter(|_| leader);
            tokio::select! {
                biased;
                _ = &mut *stop => return Ended::Stop,
                _ = sleep_until(deadline), if deadline.is_some() => {
                    warn!("the Lease was not renewed in time: not leading until it is");
                }
                result = &mut changed => {
                    let mut delay = Duration::ZERO;
                    match result {
                        Ok(now_holds) => {
                            if failures > 0 {
                                info!(failures, "leader election: the API server answers again");
                            }
                            failures = 0;
                            self.forbidden.answered(ELECTING);
                            holds = now_holds;
                            valid_until = None;
                            read_at = Some(if now_holds {
                                Instant::now()
                            } else {
                                Instant::now() + renew
                            });
                        }
                        Err(e) => match classify(&self.lease, ELECTING, &e, &self.forbidden) {
                            Failure::Gone => return Ended::Gone,
                            Failure::Fatal(e) => return Ended::Fatal(e),
                            Failure::Transient(e) => {
                                failures += 1;
                                delay = self.backoff(failures);
                                // Once per run of failures: an outage is not a line per retry.
                                if failures == 1 {
                                    warn!(error = %e, "leader election: retrying until the API server answers");
                                } else {
                                    debug!(error = %e, retry_in = ?delay, failures, "leader election: retrying");
                                }
                            }
                        },
                    }
                    changed.set(step(manager, delay));
                }
                _ = sleep_until(read_at), if read_at.is_some() => {
                    let limit = match deadline {
                        Some(d) => d.saturating_duration_since(Instant::now()).min(renew),
                        None => renew,
                    };
                    let now = Instant::now();
                    let read = self.read(limit).await;
                    if !holds {
                        match read {
                            Read::NotHolder(None) => return Ended::Free,
                            Read::Gone | Read::Failed(Failure::Gone) => return Ended::Gone,
                            Read::Failed(Failure::Fatal(e)) => return Ended::Fatal(e),
                            // Taken meanwhile (kube-lease-manager says so next), held by
                            // another, or no answer: look again later.
                            _ => read_at = Some(now + renew),
                        }
                        continue;
                    }
                    match read {
                        Read::Holder { valid_until: v, renewed } => {
                            valid_until = Some(v);
                            // Just after the next renewal is due.
                            read_at = Some((renewed + renew + renew / 4).max(now + renew / 4));
                        }
                        Read::NotHolder(holder) => {
                            if valid_until.is_some() {
                                warn!(
                                    holder = holder.as_deref().unwrap_or(""),
                                    "the Lease names another holder, or has expired"
                                );
                            }
                            valid_until = None;
                            read_at = Some(now + renew);
                        }
                        Read::Gone => return Ended::Gone,
                        Read::Failed(Failure::Fatal(e)) => return Ended::Fatal(e),
                        Read::Failed(Failure::Gone) => return Ended::Gone,
                        Read::Failed(Failure::Transient(e)) => {
                            if failures == 0 {
                                warn!(error = %e, "could not read the Lease");
                            } else {
                                debug!(error = %e, "could not read the Lease");
                            }
                            read_at = Some(now + renew / 4);
                        }
                    }
                }
            }
        }
    }

    /// Reads the Lease, giving up after `limit`.
    async fn read(&self, limit: Duration) -> Read {
        let doing = "reading it (get)";
        let started = Instant::now();
        let wall = SystemTime::now();
        let lease = match tokio::time::timeout(limit, self.api.get_opt(&self.config.name)).await {
            Err(_) => {
                return Read::Failed(Failure::Transient(LeaseError::Other {
                    lease: self.lease.clone(),
                    doing: doing.into(),
                    message: format!("no answer within {limit:?}"),
                }));
            }
            Ok(Err(e)) => {
                let e = self.forbidden.judge(kube_error(&self.lease, doing, &e));
                return Read::Failed(if e.is_fatal() {
                    Failure::Fatal(e)
                } else {
                    Failure::Transient(e)
                });
            }
            Ok(Ok(None)) => {
                self.forbidden.answered(doing);
                return Read::Gone;
            }
            Ok(Ok(Some(lease))) => {
                self.forbidden.answered(doing);
                lease
            }
        };
        let spec = lease.spec.unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Read::NotHolder(spec.holder_identity);
        }
        let (Some(renew_time), Some(seconds)) = (spec.renew_time, spec.lease_duration_seconds)
        else {
            return Read::NotHolder(spec.holder_identity);
        };
        let renewed_wall = SystemTime::from(renew_time.0);
        let expiry = renewed_wall + Duration::from_secs(seconds.max(0) as u64);
        let left = expiry.duration_since(wall).unwrap_or(Duration::ZERO);
        let Some(left) = left.checked_sub(self.config.margin()) else {
            return Read::NotHolder(spec.holder_identity);
        };
        let ago = wall.duration_since(renewed_wall).unwrap_or(Duration::ZERO);
        Read::Holder {
            valid_until: started + left,
            renewed: started.checked_sub(ago).unwrap_or(started),
        }
    }

    /// Releases the Lease if it names this instance.
    async fn release(&self, manager: &LeaseManager) -> Result<(), LeaseError> {
        let limit = self.config.renew_period;
        match self.read(limit).await {
            Read::Holder { .. } => {}
            Read::NotHolder(_) | Read::Gone => return Ok(()),
            Read::Failed(Failure::Fatal(e) | Failure::Transient(e)) => return Err(e),
            Read::Failed(Failure::Gone) => return Ok(()),
        }
        let doing = "releasing it (get, patch)";
        match tokio::time::timeout(limit, manager.release()).await {
            Ok(Ok(())) => {
                info!("released the Lease");
                Ok(())
            }
            Ok(Err(e)) => Err(match classify(&self.lease, doing, &e, &self.forbidden) {
                Failure::Fatal(e) | Failure::Transient(e) => e,
                Failure::Gone => return Ok(()),
            }),
            Err(_) => Err(LeaseError::Other {
                lease: self.lease.clone(),
                doing: doing.into(),
                message: format!("no answer within {limit:?}"),
            }),
        }
    }

    /// Creates the Lease again, retrying with a backoff; None when asked to stop meanwhile.
    async fn recreate(
        &self,
        stop: &mut oneshot::Receiver<()>,
    ) -> Result<Option<LeaseManager>, LeaseError> {
        let mut failures = 0;
        loop {
            tokio::select! {
                biased;
                _ = &mut *stop => return Ok(None),
                made = new_manager(&self.client, &self.config) => match made {
                    Ok(m) => {
                        self.forbidden.answered(CREATING);
                        return Ok(Some(m));
                    }
                    Err(e) => {
                        let e = self.forbidden.judge(e);
                        if e.is_fatal() {
                            return Err(e);
                        }
                        failures += 1;
                        if failures == 1 {
                            warn!(error = %e, "could not create the Lease again: retrying");
                        } else {
                            debug!(error = %e, failures, "could not create the Lease again: retrying");
                        }
                    }
                },
            }
            tokio::select! {
                biased;
                _ = &mut *stop => return Ok(None),
                _ = tokio::time::sleep(self.backoff(failures)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LeaseConfig {
        LeaseConfig {
            identity: "setpoint-7d9f-abcde".into(),
            ..LeaseConfig::new("demo")
        }
    }

    #[test]
    fn defaults() {
        let c = config();
        assert_eq!(c.name, "setpoint");
        assert_eq!(c.lease(), "demo/setpoint");
        assert_eq!(c.lease_duration, Duration::from_secs(15));
        assert_eq!(c.renew_period, Duration::from_secs(5));
        assert_eq!(c.margin(), Duration::from_secs(1));
        assert_eq!(c.field_manager(), "setpoint-lease-setpoint-7d9f-abcde");
        assert!(c.validate().is_ok());
    }

    #[test]
    fn configurations_that_cannot_work_are_refused() {
        let refused = |c: LeaseConfig| c.validate().unwrap_err().to_string();
        let e = refused(LeaseConfig {
            identity: String::new(),
            ..config()
        });
        assert!(e.contains("set POD_NAME"), "{e}");
        assert!(e.starts_with("Lease demo/setpoint: "), "{e}");
        let e = refused(LeaseConfig {
            renew_period: Duration::from_secs(15),
            ..config()
        });
        assert!(e.contains("less than the lease duration"), "{e}");
        let e = refused(LeaseConfig {
            lease_duration: Duration::from_millis(1500),
            ..config()
        });
        assert!(e.contains("whole seconds"), "{e}");
        let e = refused(LeaseConfig {
            identity: "x".repeat(111),
            ..config()
        });
        assert!(e.contains("longer than"), "{e}");
        // The shortest election: a 2 s lease renewed every second.
        assert!(
            LeaseConfig {
                lease_duration: Duration::from_secs(2),
                renew_period: Duration::from_secs(1),
                ..config()
            }
            .validate()
            .is_ok()
        );
    }

    #[test]
    fn errors_name_the_lease_and_the_status() {
        let e = LeaseError::Api {
            lease: "demo/setpoint".into(),
            doing: "electing (get, patch)".into(),
            code: 403,
            reason: "Forbidden".into(),
            message: "leases.coordination.k8s.io \"setpoint\" is forbidden".into(),
        };
        assert_eq!(
            e.to_string(),
            "Lease demo/setpoint: electing (get, patch): HTTP 403 Forbidden: \
             leases.coordination.k8s.io \"setpoint\" is forbidden (the Role bound to this \
             identity needs get, create and patch on leases in coordination.k8s.io)"
        );
        // A 403 alone is retried: a restarted API server answers 403 for a second or so.
        assert!(!e.is_fatal());
        assert_eq!(e.code(), Some(403));
    }

    #[tokio::test(start_paused = true)]
    async fn a_403_ends_the_election_only_after_the_grace() {
        let forbidden = Forbidden::new(Duration::from_secs(120));
        let e = || LeaseError::Api {
            lease: "demo/setpoint".into(),
            doing: "electing (get, patch)".into(),
            code: 403,
            reason: "Forbidden".into(),
            message: "forbidden".into(),
        };
        assert!(!forbidden.judge(e()).is_fatal());
        tokio::time::advance(Duration::from_secs(119)).await;
        assert!(!forbidden.judge(e()).is_fatal());
        // An answer to another call does not start the count again; one to this call does.
        forbidden.answered("reading it (get)");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(forbidden.judge(e()).is_fatal());
        forbidden.answered("electing (get, patch)");
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(!forbidden.judge(e()).is_fatal());
        tokio::time::advance(Duration::from_secs(120)).await;
        let end = forbidden.judge(e());
        assert!(end.is_fatal());
        assert_eq!(end.code(), Some(403));
        assert!(
            end.to_string().ends_with(
                "(the Role bound to this identity needs get, create and patch on leases in \
                 coordination.k8s.io) (forbidden for 120s in a row)"
            ),
            "{end}"
        );
    }
}
