//! The daemon's own metrics: one prometheus-client [`Registry`] behind a typed API.
//!
//! Every label value comes from a closed set, so the number of series is bounded by the number of
//! policies (which the policy files bound) times small constants:
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `setpoint_ticks_total` | counter | `policy` |
//! | `setpoint_decisions_total` | counter | `policy`, `direction` (up, down, none), `reason` ([`Rule::as_str`] of the last rule that changed the count, or none) |
//! | `setpoint_recommended_replicas` | gauge | `policy` |
//! | `setpoint_current_replicas` | gauge | `policy` |
//! | `setpoint_max_replicas` | gauge | `policy`: the policy's `replicas.max` (horizontal policies) |
//! | `setpoint_active` | gauge | `policy`: 1 while the last decision leaves the target running, 0 at zero (policies with `replicas.min: 0` only) |
//! | `setpoint_scaling_actions_total` | counter | `policy`, `direction` (up, down) |
//! | `setpoint_query_duration_seconds` | histogram | `source` ([`Source`]) |
//! | `setpoint_errors_total` | counter | `kind` ([`ErrorKind`]) |
//! | `setpoint_leader` | gauge | none: 1 while this replica holds the Lease |
//! | `setpoint_policies` | gauge | `state` (loaded, invalid) |
//! | `setpoint_policy_reloads_total` | counter | `result` (ok, error) |
//! | `setpoint_status_writes_total` | counter | `result` (ok, error): writes of a ScalingPolicy's `/status` |
//! | `setpoint_blind_since_seconds` | gauge | `policy`: the Unix time since which some of the policy's metrics give no data; no series while they all do |
//! | `setpoint_failing_since_seconds` | gauge | `policy`: the Unix time since which the policy's ticks fail; no series while they succeed |
//! | `setpoint_paused` | gauge | `policy`: 1 while the policy is paused (an annotation, or a target switched off at zero), else 0 |
//!
//! The series of fixed label sets (every error kind, both policy states, both reload and status-write results) are
//! created at zero up front, so `rate()` and `increase()` see the first event. A deleted policy's
//! series are removed with [`Telemetry::forget_policy`].

use crate::cluster::ClusterError;
use crate::engine::quantity::Resource;
use crate::engine::vertical_plan::ContainerRecommendation;
use crate::engine::{Decision, Direction, Rule};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds (seconds) of the query-duration histogram's buckets: 5 ms to 30 s.
pub const QUERY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The `reason` label of a decision that no rule changed.
pub const NO_REASON: &str = "none";

/// Every rule of the governor, so that [`Telemetry::forget_policy`] can remove every series of a
/// policy. A new [`Rule`] variant is a compile error in [`reasons`] until it is listed here too.
const RULES: [Rule; 13] = [
    Rule::Bounds,
    Rule::MissingData,
    Rule::Fallback,
    Rule::PartialData,
    Rule::Tolerance,
    Rule::Stabilization,
    Rule::Cooldown,
    Rule::RateLimit,
    Rule::Schedule,
    Rule::Activation,
    Rule::Idle,
    Rule::Deactivation,
    Rule::Pause,
];

/// Every value the `reason` label of `setpoint_decisions_total` can take.
pub fn reasons() -> impl Iterator<Item = &'static str> {
    // Exhaustive on purpose: a new rule must be added to RULES above.
    let _listed_in_rules = |r: Rule| match r {
        Rule::Bounds
        | Rule::MissingData
        | Rule::Fallback
        | Rule::PartialData
        | Rule::Tolerance
        | Rule::Stabilization
        | Rule::Cooldown
        | Rule::RateLimit
        | Rule::Schedule
        | Rule::Activation
        | Rule::Idle
        | Rule::Deactivation
        | Rule::Pause => (),
    };
    RULES
        .iter()
        .map(|r| r.as_str())
        .chain(std::iter::once(NO_REASON))
}

/// Where a metric value came from: the `source` label of `setpoint_query_duration_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The Prometheus HTTP API.
    Prometheus,
    /// The metrics.k8s.io API.
    MetricsApi,
    /// A direct scrape of pods' /metrics.
    PodScrape,
}

impl Source {
    /// Every source.
    pub const ALL: [Source; 3] = [Source::Prometheus, Source::MetricsApi, Source::PodScrape];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Prometheus => "prometheus",
            Source::MetricsApi => "metrics_api",
            Source::PodScrape => "pod_scrape",
        }
    }
}

/// What failed: the `kind` label of `setpoint_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A metric query failed (Prometheus, metrics.k8s.io or a pod scrape).
    Query,
    /// Another Kubernetes API error (connection, 5xx, unexpected answer).
    Api,
    /// 409 Conflict from the API server.
    Conflict,
    /// 403 Forbidden: a missing RBAC right.
    Forbidden,
    /// 404 Not Found: the target does not exist.
    NotFound,
    /// 429 Too Many Requests.
    Throttled,
    /// A policy file failed to load or validate.
    Policy,
    /// A scale or resource patch was rejected.
    Patch,
}

impl ErrorKind {
    /// The kind of an API error, by its HTTP status (409, 403, 404, 429; anything else `api`).
    pub fn of(e: &ClusterError) -> ErrorKind {
        match e.code() {
            Some(409) => ErrorKind::Conflict,
            Some(403) => ErrorKind::Forbidden,
            Some(404) => ErrorKind::NotFound,
            Some(429) => ErrorKind::Throttled,
            _ => ErrorKind::Api,
        }
    }

    /// Every kind.
    pub const ALL: [ErrorKind; 8] = [
        ErrorKind::Query,
        ErrorKind::Api,
        ErrorKind::Conflict,
        ErrorKind::Forbidden,
        ErrorKind::NotFound,
        ErrorKind::Throttled,
        ErrorKind::Policy,
        ErrorKind::Patch,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Query => "query",
            ErrorKind::Api => "api",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Policy => "policy",
            ErrorKind::Patch => "patch",
        }
    }
}

/// A label value from a closed set of static strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Fixed(&'static str);

impl EncodeLabelValue for Fixed {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.0)
    }
}

fn direction_label(d: Option<Direction>) -> Fixed {
    Fixed(match d {
        Some(Direction::Up) => "up",
        Some(Direction::Down) => "down",
        None => "none",
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PolicyLabels {
    policy: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DecisionLabels {
    policy: String,
    direction: Fixed,
    reason: Fixed,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ActionLabels {
    policy: String,
    direction: Fixed,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SourceLabels {
    source: Fixed,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabels {
    kind: Fixed,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StateLabels {
    state: Fixed,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct VerticalLabels {
    policy: String,
    container: String,
    resource: Fixed,
    bound: Fixed,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabels {
    result: Fixed,
}

fn query_histogram() -> Histogram {
    Histogram::new(QUERY_BUCKETS)
}

struct Metrics {
    registry: Registry,
    ticks: Family<PolicyLabels, Counter>,
    decisions: Family<DecisionLabels, Counter>,
    recommended: Family<PolicyLabels, Gauge>,
    current: Family<PolicyLabels, Gauge>,
    max: Family<PolicyLabels, Gauge>,
    active: Family<PolicyLabels, Gauge>,
    actions: Family<ActionLabels, Counter>,
    query_duration: Family<SourceLabels, Histogram, fn() -> Histogram>,
    errors: Family<KindLabels, Counter>,
    leader: Gauge,
    policies: Family<StateLabels, Gauge>,
    reloads: Family<ResultLabels, Counter>,
    status_writes: Family<ResultLabels, Counter>,
    vertical: Family<VerticalLabels, Gauge<f64, AtomicU64>>,
    blind: Family<PolicyLabels, Gauge<f64, AtomicU64>>,
    failing: Family<PolicyLabels, Gauge<f64, AtomicU64>>,
    paused: Family<PolicyLabels, Gauge>,
    /// The vertical series of each policy, to forget them with the policy.
    vertical_series: Mutex<BTreeMap<String, Vec<VerticalLabels>>>,
}

/// The daemon's metrics. A cheap handle: clones share one registry.
#[derive(Clone)]
pub struct Telemetry {
    m: Arc<Metrics>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::new()
    }
}

impl Telemetry {
    /// A registry with every metric registered, the fixed label sets at zero and the leader
    /// gauge at 0.
    pub fn new() -> Telemetry {
        let mut registry = Registry::with_prefix("setpoint");
        let ticks = Family::<PolicyLabels, Counter>::default();
        let decisions = Family::<DecisionLabels, Counter>::default();
        let recommended = Family::<PolicyLabels, Gauge>::default();
        let current = Family::<PolicyLabels, Gauge>::default();
        let max = Family::<PolicyLabels, Gauge>::default();
        let active = Family::<PolicyLabels, Gauge>::default();
        let actions = Family::<ActionLabels, Counter>::default();
        let query_duration: Family<SourceLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(query_histogram);
        let errors = Family::<KindLabels, Counter>::default();
        let leader = Gauge::default();
        let policies = Family::<StateLabels, Gauge>::default();
        let reloads = Family::<ResultLabels, Counter>::default();
        let status_writes = Family::<ResultLabels, Counter>::default();
        let vertical = Family::<VerticalLabels, Gauge<f64, AtomicU64>>::default();
        let blind = Family::<PolicyLabels, Gauge<f64, AtomicU64>>::default();
        let failing = Family::<PolicyLabels, Gauge<f64, AtomicU64>>::default();
        let paused = Family::<PolicyLabels, Gauge>::default();

        registry.register("ticks", "Ticks run, per policy", ticks.clone());
        registry.register(
            "decisions",
            "Decisions made, by direction and by the last governor rule that changed the count",
            decisions.clone(),
        );
        registry.register(
            "recommended_replicas",
            "Replicas the last decision asked for",
            recommended.clone(),
        );
        registry.register(
            "current_replicas",
            "Replicas the target had at the last decision",
            current.clone(),
        );
        registry.register(
            "max_replicas",
            "The policy's replicas.max: the most replicas it may ask for",
            max.clone(),
        );
        registry.register(
            "active",
            "1 while the last decision leaves the target running, 0 at zero (scale-to-zero \
             policies only)",
            active.clone(),
        );
        registry.register(
            "scaling_actions",
            "Replica changes applied to a target",
            actions.clone(),
        );
        registry.register_with_unit(
            "query_duration",
            "Time taken by one metric query, by source",
            Unit::Seconds,
            query_duration.clone(),
        );
        registry.register("errors", "Errors, by kind", errors.clone());
        registry.register(
            "leader",
            "1 while this replica holds the Lease and acts, else 0",
            leader.clone(),
        );
        registry.register(
            "policies",
            "Policies running (loaded) and policy files with errors (invalid)",
            policies.clone(),
        );
        registry.register(
            "policy_reloads",
            "Reloads of the policy folder, by result",
            reloads.clone(),
        );
        registry.register(
            "status_writes",
            "Writes of a ScalingPolicy object's status subresource, by result",
            status_writes.clone(),
        );
        registry.register(
            "vertical_recommendation",
            "The vertical recommendation per container and resource (CPU in cores, memory in \
             bytes): the target request and the bounds outside which a request is changed",
            vertical.clone(),
        );
        registry.register_with_unit(
            "blind_since",
            "Unix time since which some metrics of the policy give no data (no series while \
             they all do)",
            Unit::Seconds,
            blind.clone(),
        );
        registry.register_with_unit(
            "failing_since",
            "Unix time since which the ticks of the policy fail (no series while they succeed)",
            Unit::Seconds,
            failing.clone(),
        );
        registry.register(
            "paused",
            "1 while the policy is paused (a pause annotation, or a target scaled to 0 by \
             someone else), else 0",
            paused.clone(),
        );

        for kind in ErrorKind::ALL {
            errors.get_or_create_owned(&KindLabels {
                kind: Fixed(kind.as_str()),
            });
        }
        for state in ["loaded", "invalid"] {
            policies.get_or_create_owned(&StateLabels {
                state: Fixed(state),
            });
        }
        for result in ["ok", "error"] {
            reloads.get_or_create_owned(&ResultLabels {
                result: Fixed(result),
            });
            status_writes.get_or_create_owned(&ResultLabels {
                result: Fixed(result),
            });
        }

        Telemetry {
            m: Arc::new(Metrics {
                registry,
                ticks,
                decisions,
                recommended,
                current,
                max,
                active,
                actions,
                query_duration,
                errors,
                leader,
                policies,
                reloads,
                status_writes,
                vertical,
                blind,
                failing,
                paused,
                vertical_series: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// Sets `setpoint_vertical_recommendation` of `policy`: for each container and resource
    /// with data, its target, lower and upper bound. Series of containers or resources no longer
    /// recommended are removed.
    pub fn set_vertical(&self, policy: &str, recommendations: &[ContainerRecommendation]) {
        let mut series = Vec::new();
        for rec in recommendations {
            for resource in [Resource::Cpu, Resource::Memory] {
                let Some(r) = rec.get(resource) else { continue };
                for (bound, value) in [("target", r.target), ("lower", r.lower), ("upper", r.upper)]
                {
                    let labels = VerticalLabels {
                        policy: policy.to_owned(),
                        container: rec.container.clone(),
                        resource: Fixed(resource.as_str()),
                        bound: Fixed(bound),
                    };
                    self.m.vertical.get_or_create(&labels).set(value);
                    series.push(labels);
                }
            }
        }
        let mut known = self
            .m
            .vertical_series
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for old in known.remove(policy).unwrap_or_default() {
            if !series.contains(&old) {
                self.m.vertical.remove(&old);
            }
        }
        if !series.is_empty() {
            known.insert(policy.to_owned(), series);
        }
    }

    /// Counts one tick of `policy`, whatever its outcome.
    pub fn record_tick(&self, policy: &str) {
        self.m.ticks.get_or_create(&policy_labels(policy)).inc();
    }

    /// Records a decision: counts it by direction and reason, and sets the recommended and
    /// current replica gauges.
    pub fn record_decision(&self, policy: &str, decision: &Decision) {
        let reason = decision
            .explanation
            .limited_by()
            .map_or(NO_REASON, |r| r.as_str());
        self.m
            .decisions
            .get_or_create(&DecisionLabels {
                policy: policy.to_owned(),
                direction: direction_label(decision.direction()),
                reason: Fixed(reason),
            })
            .inc();
        let labels = policy_labels(policy);
        self.m
            .recommended
            .get_or_create(&labels)
            .set(decision.desired_replicas.into());
        self.m
            .current
            .get_or_create(&labels)
            .set(decision.current_replicas.into());
        if let Some(a) = &decision.explanation.activity {
            self.m.active.get_or_create(&labels).set(a.active.into());
        }
    }

    /// Counts a replica change that was applied to the target (not a recommendation).
    pub fn record_scaling_action(&self, policy: &str, direction: Direction) {
        self.m
            .actions
            .get_or_create(&ActionLabels {
                policy: policy.to_owned(),
                direction: direction_label(Some(direction)),
            })
            .inc();
    }

    /// Observes the duration of one metric query.
    pub fn record_query(&self, source: Source, took: Duration) {
        self.m
            .query_duration
            .get_or_create(&SourceLabels {
                source: Fixed(source.as_str()),
            })
            .observe(took.as_secs_f64());
    }

    /// Counts one error.
    pub fn record_error(&self, kind: ErrorKind) {
        self.m
            .errors
            .get_or_create(&KindLabels {
                kind: Fixed(kind.as_str()),
            })
            .inc();
    }

    /// Sets (Some: the Unix time the outage began) or removes (None) the policy's
    /// `setpoint_blind_since_seconds` series.
    pub fn set_blind(&self, policy: &str, since: Option<f64>) {
        set_since(&self.m.blind, policy, since);
    }

    /// Sets (Some: the Unix time of the first failing tick) or removes (None: a tick succeeded)
    /// the policy's `setpoint_failing_since_seconds` series.
    pub fn set_failing(&self, policy: &str, since: Option<f64>) {
        set_since(&self.m.failing, policy, since);
    }

    /// Sets the policy's `setpoint_max_replicas`.
    pub fn set_max_replicas(&self, policy: &str, max: u32) {
        self.m
            .max
            .get_or_create(&policy_labels(policy))
            .set(max.into());
    }

    /// Sets `setpoint_paused` of `policy`.
    pub fn set_paused(&self, policy: &str, paused: bool) {
        self.m
            .paused
            .get_or_create(&policy_labels(policy))
            .set(paused.into());
    }

    /// Sets the leader gauge.
    pub fn set_leader(&self, leader: bool) {
        self.m.leader.set(i64::from(leader));
    }

    /// Sets the number of running policies and of policy files with errors.
    pub fn set_policies(&self, loaded: usize, invalid: usize) {
        for (state, n) in [("loaded", loaded), ("invalid", invalid)] {
            self.m
                .policies
                .get_or_create(&StateLabels {
                    state: Fixed(state),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Counts one reload of the policy folder.
    pub fn record_reload(&self, ok: bool) {
        self.m
            .reloads
            .get_or_create(&ResultLabels {
                result: Fixed(if ok { "ok" } else { "error" }),
            })
            .inc();
    }

    /// Counts a write of a ScalingPolicy object's `/status`, and whether it worked.
    pub fn record_status_write(&self, ok: bool) {
        self.m
            .status_writes
            .get_or_create(&ResultLabels {
                result: Fixed(if ok { "ok" } else { "error" }),
            })
            .inc();
    }

    /// Removes every series of a policy that is gone (its file was deleted or renamed), so that
    /// its last values do not linger on /metrics.
    pub fn forget_policy(&self, policy: &str) {
        self.set_vertical(policy, &[]);
        let labels = policy_labels(policy);
        self.m.ticks.remove(&labels);
        self.m.recommended.remove(&labels);
        self.m.current.remove(&labels);
        self.m.max.remove(&labels);
        self.m.blind.remove(&labels);
        self.m.failing.remove(&labels);
        self.m.active.remove(&labels);
        self.m.paused.remove(&labels);
        for direction in [Some(Direction::Up), Some(Direction::Down), None] {
            for reason in reasons() {
                self.m.decisions.remove(&DecisionLabels {
                    policy: policy.to_owned(),
                    direction: direction_label(direction),
                    reason: Fixed(reason),
                });
            }
            if let Some(direction) = direction {
                self.m.actions.remove(&ActionLabels {
                    policy: policy.to_owned(),
                    direction: direction_label(Some(direction)),
                });
            }
        }
    }

    /// The registry in the OpenMetrics text format, ending with `# EOF`.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing to a String cannot fail, and the registry holds no metric whose encoding can.
        if prometheus_client::encoding::text::encode(&mut out, &self.m.registry).is_err() {
            out.clear();
            let _ = writeln!(out, "# EOF");
        }
        out
    }
}

/// Sets (Some) or removes (None) the policy's series of a "since when" gauge.
fn set_since(
    family: &Family<PolicyLabels, Gauge<f64, AtomicU64>>,
    policy: &str,
    since: Option<f64>,
) {
    let labels = policy_labels(policy);
    match since {
        Some(t) => {
            family.get_or_create(&labels).set(t);
        }
        None => {
            family.remove(&labels);
        }
    }
}

fn policy_labels(policy: &str) -> PolicyLabels {
    PolicyLabels {
        policy: policy.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Explanation, RuleStep};

    fn decision(current: u32, desired: u32, rules: &[Rule]) -> Decision {
        Decision {
            current_replicas: current,
            desired_replicas: desired,
            explanation: Explanation {
                ready_replicas: current,
                proposals: vec![],
                missing: vec![],
                forecasts: vec![],
                proposed_replicas: Some(desired),
                activity: None,
                window: None,
                pause: None,
                resumed: None,
                steps: rules
                    .iter()
                    .map(|r| RuleStep {
                        rule: *r,
                        from: current,
                        to: desired,
                        detail: String::new(),
                    })
                    .collect(),
            },
        }
    }

    #[test]
    fn names_and_units_are_the_documented_ones() {
        let t = Telemetry::new();
        t.record_tick("web");
        t.record_decision("web", &decision(2, 4, &[Rule::RateLimit]));
        t.record_scaling_action("web", Direction::Up);
        t.record_query(Source::Prometheus, Duration::from_millis(30));
        t.set_leader(true);
        t.set_policies(3, 1);
        t.record_reload(true);
        t.set_max_replicas("web", 10);
        t.set_blind("web", Some(1_700_000_000.0));
        t.set_failing("web", Some(1_700_000_060.0));
        t.set_paused("web", true);
        t.record_status_write(true);
        let text = t.encode();
        for line in [
            "# TYPE setpoint_ticks counter",
            "setpoint_ticks_total{policy=\"web\"} 1",
            "setpoint_decisions_total{policy=\"web\",direction=\"up\",reason=\"rate_limit\"} 1",
            "setpoint_recommended_replicas{policy=\"web\"} 4",
            "setpoint_current_replicas{policy=\"web\"} 2",
            "setpoint_max_replicas{policy=\"web\"} 10",
            "# UNIT setpoint_blind_since_seconds seconds",
            "setpoint_blind_since_seconds{policy=\"web\"} 1700000000.0",
            "# UNIT setpoint_failing_since_seconds seconds",
            "setpoint_failing_since_seconds{policy=\"web\"} 1700000060.0",
            "setpoint_scaling_actions_total{policy=\"web\",direction=\"up\"} 1",
            "# TYPE setpoint_query_duration_seconds histogram",
            "# UNIT setpoint_query_duration_seconds seconds",
            "setpoint_query_duration_seconds_bucket{le=\"0.05\",source=\"prometheus\"} 1",
            "setpoint_query_duration_seconds_count{source=\"prometheus\"} 1",
            "setpoint_errors_total{kind=\"not_found\"} 0",
            "setpoint_leader 1",
            "setpoint_policies{state=\"loaded\"} 3",
            "setpoint_policies{state=\"invalid\"} 1",
            "setpoint_policy_reloads_total{result=\"ok\"} 1",
            "setpoint_policy_reloads_total{result=\"error\"} 0",
            "# TYPE setpoint_paused gauge",
            "setpoint_paused{policy=\"web\"} 1",
            "setpoint_status_writes_total{result=\"ok\"} 1",
            "setpoint_status_writes_total{result=\"error\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn a_decision_no_rule_changed_has_reason_none_and_direction_none() {
        let t = Telemetry::new();
        t.record_decision("web", &decision(3, 3, &[]));
        assert!(t.encode().contains(
            "setpoint_decisions_total{policy=\"web\",direction=\"none\",reason=\"none\"} 1"
        ));
    }

    #[test]
    fn the_last_rule_is_the_reason() {
        let t = Telemetry::new();
        t.record_decision(
            "web",
            &decision(5, 3, &[Rule::Tolerance, Rule::Stabilization]),
        );
        assert!(t.encode().contains(
            "setpoint_decisions_total{policy=\"web\",direction=\"down\",reason=\"stabilization\"} 1"
        ));
    }

    #[test]
    fn every_rule_is_a_reason() {
        let listed: Vec<&str> = reasons().collect();
        assert_eq!(listed.len(), RULES.len() + 1);
        for r in RULES {
            assert!(listed.contains(&r.as_str()));
        }
        let mut unique = listed.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), listed.len());
    }

    #[test]
    fn forget_policy_removes_every_series_of_that_policy_only() {
        let t = Telemetry::new();
        for p in ["a", "b"] {
            t.record_tick(p);
            for r in RULES {
                t.record_decision(p, &decision(2, 4, &[r]));
                t.record_decision(p, &decision(4, 2, &[r]));
                t.record_decision(p, &decision(4, 4, &[r]));
            }
            t.record_decision(p, &decision(4, 4, &[]));
            t.record_scaling_action(p, Direction::Up);
            t.record_scaling_action(p, Direction::Down);
            t.set_max_replicas(p, 10);
            t.set_blind(p, Some(1.0));
            t.set_failing(p, Some(2.0));
            t.set_paused(p, false);
        }
        t.forget_policy("a");
        let text = t.encode();
        assert!(!text.contains("policy=\"a\""), "{text}");
        assert!(text.contains("setpoint_ticks_total{policy=\"b\"} 1"));
        assert_eq!(
            text.matches("policy=\"b\"").count(),
            1 + 3 * RULES.len() + 1 + 2 + 2 + 3 + 1
        );
    }

    #[test]
    fn clones_share_one_registry() {
        let t = Telemetry::new();
        let u = t.clone();
        u.record_error(ErrorKind::Forbidden);
        assert!(
            t.encode()
                .contains("setpoint_errors_total{kind=\"forbidden\"} 1")
        );
    }
}
