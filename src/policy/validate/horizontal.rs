//! Validation of `spec.horizontal`: replicas, metrics and their sources, tolerance, the
//! scale-up and scale-down rules, onMetricError and the algorithm.

use super::Validator;
use crate::engine::{
    Algorithm, Governor, Horizontal, MetricTarget, Seconds, Target,
    budget::ActionBudget,
    governor::OnMissing,
    governor::ScalingRules,
    governor::Select,
    governor::StepLimit,
    hpa,
    pid::PidParams,
    predictive::{PredictiveParams, Sizing},
};
use crate::forecast::quantile::{CALIBRATION, MAX_CALIBRATION};
use crate::policy::model::{self, Dur, OnMetricError, PolicyKind, Preset, SelectModel};
use crate::policy::{MAX_REPLICAS, MetricQuery, PodsQuery};
use serde_saphyr::Spanned;
use std::ops::Bound;

impl Validator {
    fn algorithm(&mut self, p: Option<&PolicyKind>, f: &str, interval: Seconds) -> Algorithm {
        match p {
            None | Some(PolicyKind::Threshold(_)) => Algorithm::Threshold,
            Some(PolicyKind::Pid(m)) => {
                let pf = format!("{f}.policy.pid");
                let g = &m.value;
                for (name, v) in [("kp", g.kp), ("ki", g.ki), ("kd", g.kd)] {
                    if !(v.is_finite() && (0.0..=1000.0).contains(&v)) {
                        self.err(
                            m,
                            &format!("{pf}.{name}"),
                            format!("{v} is out of range: expected 0 to 1000"),
                        );
                    }
                }
                if g.ki == 0.0 {
                    self.err(m, &format!("{pf}.ki"), "must be above 0: without an integral term the metric never settles on its target");
                }
                let derivative_filter = match &g.derivative_filter {
                    None => 30.0,
                    Some(d) => self.duration(d, &format!("{pf}.derivativeFilter"), 0.0, 3600.0),
                };
                Algorithm::Pid(PidParams {
                    kp: g.kp,
                    ki: g.ki,
                    kd: g.kd,
                    derivative_filter,
                    interval,
                })
            }
            Some(PolicyKind::Predictive(m)) => {
                let pf = format!("{f}.policy.predictive");
                let p = &m.value;
                let dur = |v: &mut Self,
                           d: &Option<Spanned<Dur>>,
                           name: &str,
                           default: f64,
                           lo: f64,
                           hi: f64| {
                    d.as_ref()
                        .map_or(default, |d| v.duration(d, &format!("{pf}.{name}"), lo, hi))
                };
                let history = dur(
                    self,
                    &p.history,
                    "history",
                    7.0 * 86400.0,
                    3600.0,
                    35.0 * 86400.0,
                );
                let startup = dur(self, &p.startup, "startup", 60.0, 0.0, 3600.0);
                let margin = dur(self, &p.margin, "margin", 30.0, 0.0, 3600.0);
                let season = match &p.season {
                    None
                    | Some(Spanned {
                        value: model::Season::Auto,
                        ..
                    }) => None,
                    Some(
                        s @ Spanned {
                            value: model::Season::Fixed(d),
                            ..
                        },
                    ) => {
                        let secs = d.as_secs_f64();
                        if secs < 900.0 || secs * 3.0 > history {
                            self.err(
                                s,
                                &format!("{pf}.season"),
                                format!(
                                    "{} is out of range: expected from 15m to a third of the history ({})",
                                    humantime::format_duration(*d),
                                    humantime::format_duration(std::time::Duration::from_secs_f64(history / 3.0))
                                ),
                            );
                        }
                        Some(secs)
                    }
                };
                let quantile = self.number(
                    p.quantile.as_ref(),
                    &format!("{pf}.quantile"),
                    0.9,
                    0.5..1.0,
                    "0.5 <= quantile < 1",
                );
                let target_scale = self.number(
                    p.target_scale.as_ref(),
                    &format!("{pf}.targetScale"),
                    1.0,
                    0.5..=2.0,
                    "0.5 to 2",
                );
                let sizing = self.sizing(p, &pf);
                Algorithm::Predictive(PredictiveParams {
                    history,
                    season,
                    quantile,
                    horizon: startup + interval + margin,
                    target_scale,
                    sizing,
                })
            }
        }
    }

    /// Quantile sizing's settings, checked (None without `capacityPerReplica`).
    fn sizing(&mut self, p: &model::PredictiveModel, pf: &str) -> Option<Sizing> {
        let c = p.capacity_per_replica.as_ref()?;
        if !(c.value.is_finite() && c.value > 0.0) {
            self.err(
                c,
                &format!("{pf}.capacityPerReplica"),
                format!("{} is out of range: expected a positive number", c.value),
            );
        }
        let smoothing = self.number(
            p.smoothing.as_ref(),
            &format!("{pf}.smoothing"),
            1.0,
            (Bound::Excluded(0.0), Bound::Included(1.0)),
            "0 < smoothing <= 1",
        );
        let calibration = self.number(
            p.calibration.as_ref(),
            &format!("{pf}.calibration"),
            CALIBRATION,
            0.0..=MAX_CALIBRATION,
            &format!("0 <= calibration <= {MAX_CALIBRATION}"),
        );
        Some(Sizing {
            capacity: c.value,
            smoothing,
            calibration,
        })
    }

    /// Quantile sizing reads every metric in one unit: all totals, or all utilizations with a
    /// capacity of 1 (a replica at saturation).
    fn sizing_metrics(
        &mut self,
        h: &model::Horizontal,
        algorithm: &Algorithm,
        metrics: &[MetricTarget],
    ) {
        let Algorithm::Predictive(PredictiveParams {
            sizing: Some(s), ..
        }) = algorithm
        else {
            return;
        };
        let f = "spec.horizontal.policy.predictive.capacityPerReplica";
        let util = metrics
            .iter()
            .filter(|m| matches!(m.target, Target::Utilization(_)))
            .count();
        if util > 0 && util < metrics.len() {
            self.err(
                &h.metrics,
                f,
                "quantile sizing needs metrics of one kind: all targetPerReplica or all utilization",
            );
        } else if util > 0 && s.capacity != 1.0 {
            self.err(
                &h.metrics,
                f,
                format!(
                    "{} with utilization metrics: expected 1 (a replica at saturation is a utilization of 1)",
                    s.capacity
                ),
            );
        }
    }

    pub(super) fn horizontal(
        &mut self,
        h: &model::Horizontal,
        interval: Seconds,
    ) -> Option<(Horizontal, Vec<MetricQuery>)> {
        let f = "spec.horizontal";
        let algorithm = self.algorithm(h.policy.as_ref(), f, interval);
        let r = &h.replicas;
        if r.value.max > MAX_REPLICAS {
            self.err(
                r,
                &format!("{f}.replicas.max"),
                format!("must be at most {MAX_REPLICAS}"),
            );
        }
        if r.value.min > r.value.max {
            self.err(
                r,
                &format!("{f}.replicas"),
                format!(
                    "min ({}) is greater than max ({})",
                    r.value.min, r.value.max
                ),
            );
        }
        if h.metrics.value.is_empty() {
            self.err(
                &h.metrics,
                &format!("{f}.metrics"),
                "expected at least one metric",
            );
        }
        let mut metrics = Vec::new();
        let mut queries = Vec::new();
        for (i, m) in h.metrics.value.iter().enumerate() {
            let mf = format!("{f}.metrics[{i}]");
            let name = m
                .value
                .name
                .clone()
                .unwrap_or_else(|| format!("metric-{}", i + 1));
            if metrics.iter().any(|x: &MetricTarget| x.name == name) {
                self.err(
                    m,
                    &format!("{mf}.name"),
                    format!("duplicate metric name \"{name}\""),
                );
            }
            let query = self.metric_source(&m.value, m, &mf);
            let target = match (m.value.target_per_replica, m.value.utilization) {
                (Some(t), None) => Target::PerReplica(t),
                (None, Some(u)) => Target::Utilization(u),
                (Some(_), Some(_)) => {
                    self.err(
                        m,
                        &mf,
                        "give either targetPerReplica or utilization, not both",
                    );
                    continue;
                }
                (None, None) => {
                    self.err(
                        m,
                        &mf,
                        "missing target: expected targetPerReplica or utilization",
                    );
                    continue;
                }
            };
            let (Target::PerReplica(v) | Target::Utilization(v)) = target;
            if !(v.is_finite() && v > 0.0) {
                self.err(
                    m,
                    &mf,
                    format!("target must be a positive number, found {v}"),
                );
            }
            metrics.push(MetricTarget { name, target });
            if let Some(q) = query {
                queries.push(q);
            }
        }
        self.sizing_metrics(h, &algorithm, &metrics);
        let preset = h.preset;
        let (tol_up, tol_down) = match &h.tolerance {
            None if preset == Preset::Hpa => (hpa::TOLERANCE, hpa::TOLERANCE),
            None => (0.0, 0.0),
            Some(t) => {
                for v in [t.value.up, t.value.down] {
                    if !(0.0..1.0).contains(&v) {
                        self.err(
                            t,
                            &format!("{f}.tolerance"),
                            format!("{v} is out of range: expected 0 <= tolerance < 1"),
                        );
                    }
                }
                (t.value.up, t.value.down)
            }
        };
        let scale_up = self.rules(h.scale_up.as_ref(), &format!("{f}.scaleUp"), preset, true);
        let scale_down = self.rules(
            h.scale_down.as_ref(),
            &format!("{f}.scaleDown"),
            preset,
            false,
        );
        let on_missing = match &h.on_metric_error {
            None => OnMissing::Hold,
            Some(s) => match s.value {
                OnMetricError::Hold => OnMissing::Hold,
                OnMetricError::Fallback { replicas, after } => {
                    if replicas < r.value.min || replicas > r.value.max {
                        self.err(
                            s,
                            &format!("{f}.onMetricError.fallback.replicas"),
                            format!(
                                "{replicas} is outside replicas [{}, {}]",
                                r.value.min, r.value.max
                            ),
                        );
                    }
                    if after < 1 {
                        self.err(
                            s,
                            &format!("{f}.onMetricError.fallback.after"),
                            "must be at least 1",
                        );
                    }
                    OnMissing::Fallback { replicas, after }
                }
            },
        };
        Some((
            Horizontal {
                metrics,
                algorithm,
                governor: Governor {
                    min: r.value.min,
                    max: r.value.max,
                    tolerance_up: tol_up,
                    tolerance_down: tol_down,
                    scale_up,
                    scale_down,
                    on_missing,
                    scale_to_zero: self.scale_to_zero(h, r.value.min),
                    schedules: self.schedules(h, r.value.max),
                    budget: self.budget(h, f),
                },
            },
            queries,
        ))
    }

    /// `scaleDown.adaptive` (and its absence on `scaleUp`).
    fn budget(&mut self, h: &model::Horizontal, f: &str) -> Option<ActionBudget> {
        if let Some(a) = h.scale_up.as_ref().and_then(|r| r.adaptive.as_ref()) {
            self.err(
                a,
                &format!("{f}.scaleUp.adaptive"),
                "adaptive goes on scaleDown only: scale-up is never slowed by the action budget",
            );
        }
        let a = h.scale_down.as_ref()?.adaptive.as_ref()?;
        let share = a.value.actions_vs_hpa;
        if !(share > 0.0 && share <= 1.0) {
            self.err(
                a,
                &format!("{f}.scaleDown.adaptive.actionsVsHpa"),
                format!("{share} is out of range: expected 0 < actionsVsHpa <= 1"),
            );
        }
        Some(ActionBudget { share })
    }

    /// The source of one metric: exactly one of `prometheus`, `resource` or `pods`.
    fn metric_source(
        &mut self,
        m: &model::Metric,
        at: &Spanned<model::Metric>,
        mf: &str,
    ) -> Option<MetricQuery> {
        let given: Vec<&str> = [
            m.prometheus.is_some().then_some("prometheus"),
            m.resource.is_some().then_some("resource"),
            m.pods.is_some().then_some("pods"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if given.len() > 1 {
            self.err(
                at,
                mf,
                format!(
                    "give one source, not {}: prometheus, resource or pods",
                    given.join(" and ")
                ),
            );
            return None;
        }
        if let Some(s) = &m.sum
            && m.prometheus.is_none()
        {
            self.err(
                s,
                &format!("{mf}.sum"),
                "sum goes with a prometheus query only",
            );
        }
        if let Some(q) = &m.prometheus {
            if q.value.trim().is_empty() {
                self.err(
                    q,
                    &format!("{mf}.prometheus"),
                    "empty query: expected a PromQL expression",
                );
            }
            return Some(MetricQuery::Prometheus {
                query: q.value.clone(),
                sum: m.sum.as_ref().is_some_and(|s| s.value),
            });
        }
        if let Some(r) = &m.resource {
            if let Some(c) = &r.value.container
                && c.trim().is_empty()
            {
                self.err(
                    r,
                    &format!("{mf}.resource.container"),
                    "empty container name",
                );
            }
            return Some(MetricQuery::Resource {
                resource: r.value.name,
                container: r.value.container.clone(),
            });
        }
        if let Some(p) = &m.pods {
            let pf = format!("{mf}.pods");
            let v = &p.value;
            if !is_metric_name(&v.metric) {
                self.err(
                    p,
                    &format!("{pf}.metric"),
                    format!(
                        "\"{}\" is not a metric name: expected letters, digits, '_' or ':', \
                         not starting with a digit",
                        v.metric
                    ),
                );
            }
            if v.port == 0 {
                self.err(p, &format!("{pf}.port"), "expected a port from 1 to 65535");
            }
            let path = v.path.clone().unwrap_or_else(|| "/metrics".into());
            if !path.starts_with('/') {
                self.err(
                    p,
                    &format!("{pf}.path"),
                    format!("\"{path}\" is not an absolute path: expected it to start with '/'"),
                );
            }
            return Some(MetricQuery::Pods(PodsQuery {
                metric: v.metric.clone(),
                port: v.port,
                path,
                labels: v.labels.clone(),
                kind: v.kind,
            }));
        }
        self.err(
            at,
            mf,
            "missing source: expected prometheus, resource or pods",
        );
        None
    }

    fn rules(
        &mut self,
        r: Option<&model::Rules>,
        f: &str,
        preset: Preset,
        up: bool,
    ) -> ScalingRules {
        let mut out = preset_rules(preset, up);
        let Some(r) = r else { return out };
        if let Some(s) = &r.stabilization {
            out.stabilization = self.duration(s, &format!("{f}.stabilization"), 0.0, 3600.0);
        }
        if let Some(c) = &r.cooldown {
            out.cooldown = self.duration(c, &format!("{f}.cooldown"), 0.0, 3600.0);
        }
        if let Some(s) = r.select {
            out.select = match s {
                SelectModel::Max => Select::Max,
                SelectModel::Min => Select::Min,
                SelectModel::Disabled => Select::Disabled,
            };
        }
        if let Some(ls) = &r.limits {
            out.limits.clear();
            for (i, l) in ls.iter().enumerate() {
                let lf = format!("{f}.limits[{i}]");
                let period = l.value.per.0.as_secs_f64();
                if !(1.0..=1800.0).contains(&period) {
                    self.err(
                        l,
                        &format!("{lf}.per"),
                        "expected a period between 1s and 30m",
                    );
                }
                match (l.value.pods, l.value.percent) {
                    (Some(p), None) if p >= 1 => {
                        out.limits.push(StepLimit::Pods { value: p, period })
                    }
                    (None, Some(p)) if p.is_finite() && p > 0.0 => {
                        out.limits.push(StepLimit::Percent { value: p, period })
                    }
                    (Some(_), Some(_)) => self.err(l, &lf, "give either pods or percent, not both"),
                    (None, None) => self.err(l, &lf, "missing limit: expected pods or percent"),
                    _ => self.err(l, &lf, "the limit must be a positive number"),
                }
            }
        }
        out
    }
}

/// The rules a preset gives a direction.
fn preset_rules(preset: Preset, up: bool) -> ScalingRules {
    match (preset, up) {
        (Preset::Hpa, true) => ScalingRules::hpa_up(),
        (Preset::Hpa, false) => ScalingRules::hpa_down(),
        (Preset::None, _) => ScalingRules::unlimited(),
    }
}

/// A Prometheus metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}
