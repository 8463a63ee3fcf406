//! `setpoint run`: the daemon, in one namespace, until SIGTERM or SIGINT.

use super::{Failure, default_prometheus};
use crate::cluster::lease::{self, LeaseConfig};
use crate::cluster::{Cluster, ClusterConfig, KubeCluster};
use crate::daemon::admin::{self, AdminConfig, AdminState};
use crate::daemon::telemetry::Telemetry;
use crate::daemon::{self, DaemonConfig};
use std::path::PathBuf;
use tokio::sync::watch;

/// Log line format of `run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for a person.
    Text,
    /// One JSON object per line.
    Json,
}

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct DaemonArgs {
    /// The folder of policy files (in a pod: the ConfigMap mount). Changed files are reloaded.
    /// Optional: the namespace's ScalingPolicy objects are watched too (unless
    /// --no-policy-objects); a name used by both is refused.
    #[arg(long)]
    pub policies: Option<PathBuf>,
    /// Do not watch ScalingPolicy objects: policies come from --policies only (for a cluster
    /// without the CRD, or a Role without the right to read them).
    #[arg(long)]
    pub no_policy_objects: bool,
    /// Namespace to serve (default: the service account's in a pod, else the context's).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Prometheus base URL, for policies without `spec.prometheus`.
    #[arg(long)]
    pub prometheus: Option<String>,
    /// Patch nothing: every policy only recommends (on /recommendations, /metrics and Events).
    #[arg(long)]
    pub dry_run: bool,
    /// Address of the admin HTTP server (/healthz, /readyz, /metrics, /recommendations).
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub listen: std::net::SocketAddr,
    /// Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current one).
    #[arg(long)]
    pub context: Option<String>,
    /// How often the policy folder is looked at for changes.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub reload_every: std::time::Duration,
    /// Name of the coordination.k8s.io Lease that elects the replica that acts.
    #[arg(long, default_value = "setpoint")]
    pub lease: String,
    /// Lease duration: a replica that holds the Lease and stops renewing it loses it after this.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub lease_duration: std::time::Duration,
    /// Act without a Lease (one replica only, e.g. on a laptop).
    #[arg(long)]
    pub no_leader_election: bool,
    /// How long 403 answers on the Lease are retried before the daemon exits with an error
    /// naming the missing right (a restarted API server answers 403 for a second or so).
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    pub forbidden_grace: std::time::Duration,
    /// text or json.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// error, warn, info, debug or trace.
    #[arg(long, default_value = "info")]
    pub log_level: tracing::Level,
}

/// `setpoint run`: the daemon, until SIGTERM or SIGINT.
pub async fn daemon(a: &DaemonArgs) -> Result<(), Failure> {
    {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        // setpoint's own lines at the level asked; the libraries' warnings and errors only,
        // but for the kube client's line per failed request (an ERROR each, retries included)
        // and kube-lease-manager's and kube-runtime's (a watcher's retries), which only debug
        // shows: setpoint says once what failed and once when it works again.
        let retries = if a.log_level >= tracing::Level::DEBUG {
            tracing::level_filters::LevelFilter::from_level(a.log_level)
        } else {
            tracing::level_filters::LevelFilter::OFF
        };
        let filter = tracing_subscriber::filter::Targets::new()
            .with_target("setpoint", a.log_level)
            .with_target("kube_client::client::builder", retries)
            .with_target("kube_lease_manager", retries)
            .with_target("kube_runtime", retries)
            .with_default(tracing::Level::WARN);
        let logs = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
        let registry = tracing_subscriber::registry().with(filter);
        match a.log_format {
            LogFormat::Text => registry.with(logs).init(),
            LogFormat::Json => registry.with(logs.json().flatten_event(true)).init(),
        }
    }
    if a.policies.is_none() && a.no_policy_objects {
        return Err(Failure(
            "no source of policies: give --policies DIR, or leave out --no-policy-objects to \
             watch ScalingPolicy objects"
                .into(),
        ));
    }
    let cluster = KubeCluster::connect(&ClusterConfig {
        kubeconfig: a.kubeconfig.clone(),
        context: a.context.clone(),
        namespace: a.namespace.clone(),
    })
    .await?;
    let admin = AdminState::new(Telemetry::new(), AdminConfig::default());
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .map_err(|e| Failure(format!("cannot listen on {}: {e}", a.listen)))?;
    let (stop, stopped) = watch::channel(false);
    // Reads from watches (pods, Deployments, StatefulSets, ReplicaSets), until shutdown.
    let cluster = cluster.with_cache(stopped.clone());
    tokio::spawn(async move {
        signalled().await;
        tracing::info!("shutdown signal received");
        let _ = stop.send(true);
    });
    let until_stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let server = tokio::spawn(admin::serve(
        listener,
        admin.clone(),
        until_stopped(stopped.clone()),
    ));
    tracing::info!(
        namespace = cluster.namespace(),
        policies = %a.policies.as_deref().map_or("none".into(), |p| p.display().to_string()),
        policy_objects = !a.no_policy_objects,
        dry_run = a.dry_run,
        "setpoint starts"
    );
    // The Lease: only its holder acts. Without election this replica always may.
    let (_always, mut leader) = watch::channel(true);
    let mut leadership = None;
    if !a.no_leader_election {
        let mut config = LeaseConfig::new(cluster.namespace());
        config.name = a.lease.clone();
        config.lease_duration = a.lease_duration;
        config.renew_period = (a.lease_duration / 3).max(std::time::Duration::from_secs(1));
        config.forbidden_grace = a.forbidden_grace;
        if let Some(note) = crate::cluster::kube::identity_note() {
            tracing::info!(identity = %config.identity, "{note}");
        }
        let l = lease::elect(cluster.client().clone(), config)
            .await
            .map_err(|e| Failure(e.to_string()))?;
        leader = l.subscribe();
        leadership = Some(l);
    }
    let telemetry = admin.telemetry().clone();
    let mut watched = leader.clone();
    tokio::spawn(async move {
        loop {
            let now = *watched.borrow_and_update();
            telemetry.set_leader(now);
            tracing::info!(leader = now, "leadership");
            if watched.changed().await.is_err() {
                break;
            }
        }
    });
    let config = DaemonConfig {
        policies: a.policies.clone(),
        prometheus: default_prometheus(a.prometheus.as_deref())?,
        dry_run: a.dry_run,
        reload_every: a.reload_every,
    };
    let objects = (!a.no_policy_objects)
        .then(|| crate::cluster::policies::watch(cluster.client().clone(), cluster.namespace()));
    let lost = async {
        match leadership.as_mut() {
            Some(l) => l.failed().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = daemon::run(config, cluster, objects, admin, leader, until_stopped(stopped)) => {
            r.map_err(|e| Failure(e.to_string()))?
        }
        // If the election cannot go on, the process exits (and is restarted): acting without
        // knowing who leads is not an option.
        e = lost => return Err(Failure(format!("leader election ended: {e}"))),
    }
    if let Some(l) = leadership
        && let Err(e) = l.release().await
    {
        tracing::warn!(error = %e, "cannot release the Lease: the other replica takes over when it expires");
    }
    match server.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Failure(format!("the admin server failed: {e}"))),
        Err(e) => Err(Failure(format!("the admin server failed: {e}"))),
    }
}

/// Resolves at SIGTERM (what the kubelet sends) or SIGINT.
async fn signalled() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            tracing::error!("cannot install signal handlers: stop with SIGKILL");
            std::future::pending::<()>().await
        }
    }
}
