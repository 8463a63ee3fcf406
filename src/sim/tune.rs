//! `setpoint tune`: the cheapest quantile-sizing setting of a policy that meets an SLO on a trace,
//! found with the simulator.
//!
//! The search space ([`Space::standard`]) is the predictive policy's quantile sizing and the
//! governor: `quantile`, `margin` (horizon beyond start-up + interval), `smoothing` (centre),
//! `calibration` (of the quantile in force), `tolerance.up`, the scale-down stabilization window,
//! `tolerance.down`, the scale-down rate limit (percent per minute), and the action budget
//! (`scaleDown.adaptive`). Scale-up is at once,
//! without rate limits: the proposal is the capacity the quantile asks for, and a limit would
//! only add unserved load (and actions, one per step).
//!
//! The search, in four stages, each run on every core (`std::thread::scope`):
//! 1. for each governor setting (tolerance.up × window × tolerance.down × limit), with the first
//!    margin, smoothing and calibration, the lowest quantile that qualifies (see `Runner::best_quantile`:
//!    the scan starts near the quantile the last one found);
//! 2. for the three cheapest governor settings that met the SLO within the action budget, the
//!    same at every margin × smoothing;
//! 3. the cheapest setting so far at the other calibration steps (`Space::calibrations`): the
//!    default step meets bursts the model did not foresee by sizing higher after its misses,
//!    which does not suit every load;
//! 4. the cheapest setting so far with the action budget on (`Space::adaptive`), the quantiles
//!    from its own up: a window fixed on a history cannot hold the actions on a busier future,
//!    the budget does. It is taken when it qualifies at a cost at most [`ADAPTIVE_COST`] above.
//!
//! A quantile scan stops early once its cost is [`PRUNE_SLACK`] above the cheapest qualifying
//! setting found so far (by any thread): its higher quantiles would cost more still.
//!
//! A setting qualifies when its unserved load is at most the SLO and its actions at most the
//! budget: [`ACTION_MARGIN`] of the fewer of the hpa example's actions as written and at its
//! target lowered to meet the same SLO ([`hpa_at_slo`]). The cheapest qualifying setting wins. Pure over the simulator:
//! no clock, no I/O; the caller reads the files and shows progress.

use super::{ServiceModel, Summary, Trace};
use crate::engine::budget::ActionBudget;
use crate::engine::predictive::{PredictiveParams, Sizing, fmt_quantile};
use crate::engine::{Algorithm, ScalingRules, Select, StepLimit, Target};
use crate::forecast::quantile::CALIBRATION;
use crate::policy::Policy;
use crate::text::secs;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The values searched, per knob.
#[derive(Debug, Clone, PartialEq)]
pub struct Space {
    /// Quantiles, ascending.
    pub quantiles: Vec<f64>,
    /// Margins (seconds); the first is stage 1's.
    pub margins: Vec<f64>,
    /// Centre smoothings; the first is stage 1's.
    pub smoothings: Vec<f64>,
    /// Scale-down stabilization windows (seconds).
    pub windows: Vec<f64>,
    /// `tolerance.down` values.
    pub tolerances: Vec<f64>,
    /// Scale-down limits, percent per minute.
    pub down_percents: Vec<f64>,
    /// `tolerance.up` values.
    pub tolerance_ups: Vec<f64>,
    /// Calibration steps; the first is stages 1 and 2's, stage 3 tries the others.
    pub calibrations: Vec<f64>,
    /// The `scaleDown.adaptive` share stage 4 tries on the cheapest setting (None: no stage 4).
    pub adaptive: Option<f64>,
}

/// How much dearer (a share of the cost) the action budget may make the cheapest setting on the
/// history and still be taken: it is insurance against a busier future.
pub const ADAPTIVE_COST: f64 = 0.03;

impl Space {
    /// The documented search space.
    pub fn standard() -> Space {
        Space {
            quantiles: vec![
                0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.993, 0.995, 0.997, 0.998, 0.999,
                0.9995, 0.9999,
            ],
            margins: vec![30.0, 0.0, 60.0],
            smoothings: vec![1.0, 0.5],
            windows: vec![120.0, 300.0, 600.0, 1200.0, 2400.0, 3600.0],
            tolerances: vec![0.0, 0.1, 0.2, 0.3],
            down_percents: vec![100.0],
            tolerance_ups: vec![0.0, 0.1],
            calibrations: vec![CALIBRATION, 0.002, 0.0],
            adaptive: Some(0.95),
        }
    }
}

/// One point of the space.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Setting {
    /// Quantile sized for.
    pub quantile: f64,
    /// Horizon beyond start-up + interval, seconds.
    pub margin: f64,
    /// Centre smoothing.
    pub smoothing: f64,
    /// Scale-down stabilization window, seconds.
    pub window: f64,
    /// `tolerance.down`.
    pub tolerance: f64,
    /// Scale-down limit, percent per minute.
    pub down_percent: f64,
    /// `tolerance.up`.
    pub tolerance_up: f64,
    /// Calibration step of the quantile in force.
    pub calibration: f64,
    /// `scaleDown.adaptive.actionsVsHpa` (None: no action budget).
    pub adaptive: Option<f64>,
}

impl Setting {
    /// The setting in one line ("p99, margin 30s, ..."), as the comment block and the
    /// benchmark show it.
    pub fn summary(&self) -> String {
        let adaptive = match self.adaptive {
            Some(share) => format!(", adaptive {share}"),
            None => String::new(),
        };
        format!(
            "p{}, margin {}, smoothing {}, calibration {}, tolerance.up {}, scale-down window {}, \
             tolerance.down {}, {} %/min{adaptive}",
            fmt_quantile(self.quantile),
            secs(self.margin),
            self.smoothing,
            self.calibration,
            self.tolerance_up,
            secs(self.window),
            self.tolerance,
            self.down_percent
        )
    }

    fn key(&self) -> [u64; 9] {
        [
            self.quantile.to_bits(),
            self.margin.to_bits(),
            self.smoothing.to_bits(),
            self.window.to_bits(),
            self.tolerance.to_bits(),
            self.down_percent.to_bits(),
            self.adaptive.map_or(u64::MAX, f64::to_bits),
            self.tolerance_up.to_bits(),
            self.calibration.to_bits(),
        ]
    }
}

/// A setting and how it did.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The setting.
    pub setting: Setting,
    /// The simulator's summary.
    pub summary: Summary,
}

/// The hpa example at the same SLO.
#[derive(Debug, Clone, PartialEq)]
pub struct HpaPoint {
    /// As written.
    pub as_written: Summary,
    /// The highest target (utilization, or share of the capacity for a total) tried that met
    /// the SLO, and how it did; None when none did.
    pub lowered: Option<(f64, Summary)>,
}

/// Share of the hpa example's actions a tuned setting may make on the history: the rest is room
/// for what the history did not show (a tuned policy makes more actions on busier days).
pub const ACTION_MARGIN: f64 = 0.9;

impl HpaPoint {
    /// The action budget: [`ACTION_MARGIN`] of the fewer of its actions as written and at the
    /// lowered target.
    pub fn budget(&self) -> u32 {
        let fewer = self
            .lowered
            .as_ref()
            .map_or(self.as_written.actions, |(_, s)| {
                s.actions.min(self.as_written.actions)
            });
        (fewer as f64 * ACTION_MARGIN).floor() as u32
    }
}

/// What a search found.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The cheapest qualifying point, if any.
    pub best: Option<Point>,
    /// Every point simulated.
    pub points: Vec<Point>,
    /// The hpa example's comparison point.
    pub hpa: HpaPoint,
    /// Unserved load allowed, %.
    pub max_unserved_pct: f64,
}

impl Outcome {
    /// The cost/unserved frontier of the points within the action budget: the points no other
    /// is cheaper and no worse in unserved load than, by unserved load.
    pub fn frontier(&self) -> Vec<&Point> {
        let budget = self.hpa.budget();
        let mut pts: Vec<&Point> = self
            .points
            .iter()
            .filter(|p| p.summary.actions <= budget)
            .collect();
        pts.sort_by(|a, b| {
            a.summary
                .unserved_pct
                .total_cmp(&b.summary.unserved_pct)
                .then(by_cost(a, b))
        });
        let mut out: Vec<&Point> = Vec::new();
        for p in pts {
            if out
                .last()
                .is_none_or(|l| p.summary.cost_vs_oracle < l.summary.cost_vs_oracle)
            {
                out.push(p);
            }
        }
        out
    }
}

/// Why a policy cannot be tuned.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TuneError {
    /// No horizontal part.
    #[error("{0}: the policy has no horizontal part to tune")]
    NotHorizontal(String),
    /// Quantile sizing needs metrics of one kind.
    #[error(
        "{0}: quantile sizing needs metrics of one kind (all targetPerReplica or all utilization)"
    )]
    MixedMetrics(String),
}

/// Capacity per replica in the metrics' unit: the service's for totals, 1 for utilizations.
fn metric_capacity(policy: &Policy, model: ServiceModel) -> Result<f64, TuneError> {
    let h = policy
        .horizontal
        .as_ref()
        .ok_or_else(|| TuneError::NotHorizontal(policy.source.display().to_string()))?;
    let util = h
        .metrics
        .iter()
        .filter(|m| matches!(m.target, Target::Utilization(_)))
        .count();
    match util {
        0 => Ok(model.capacity),
        n if n == h.metrics.len() => Ok(1.0),
        _ => Err(TuneError::MixedMetrics(policy.source.display().to_string())),
    }
}

/// History the written policy keeps (and the daemon re-reads on a restart).
fn history_of(policy: &Policy) -> f64 {
    match policy.horizontal.as_ref().map(|h| &h.algorithm) {
        Some(Algorithm::Predictive(p)) => p.history,
        _ => 7.0 * 86400.0,
    }
}

/// `policy` with quantile sizing at `s` (what [`write_policy`]'s file parses to).
pub fn apply(policy: &Policy, s: &Setting, model: ServiceModel) -> Result<Policy, TuneError> {
    let capacity = metric_capacity(policy, model)?;
    let mut p = policy.clone();
    let history = history_of(policy);
    let interval = p.interval;
    let h = p.horizontal.as_mut().expect("checked by metric_capacity");
    h.algorithm = Algorithm::Predictive(PredictiveParams {
        history,
        season: None,
        quantile: s.quantile,
        horizon: model.startup + interval + s.margin,
        target_scale: 1.0,
        sizing: Some(Sizing {
            capacity,
            smoothing: s.smoothing,
            calibration: s.calibration,
        }),
    });
    let g = &mut h.governor;
    g.tolerance_up = s.tolerance_up;
    g.tolerance_down = s.tolerance;
    g.scale_up.limits.clear();
    g.scale_up.select = Select::Max;
    g.scale_down = ScalingRules {
        stabilization: s.window,
        cooldown: 0.0,
        select: Select::Max,
        limits: vec![StepLimit::Percent {
            value: s.down_percent,
            period: 60.0,
        }],
    };
    g.budget = s.adaptive.map(|share| ActionBudget { share });
    Ok(p)
}

/// Runs `jobs` on every core, in any order; `f` gets each job.
fn parallel<J: Sync, R: Send>(jobs: &[J], f: impl Fn(&J) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next = AtomicUsize::new(0);
    let out = Mutex::new(Vec::with_capacity(jobs.len()));
    std::thread::scope(|sc| {
        for _ in 0..threads.min(jobs.len()) {
            sc.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(j) = jobs.get(i) else { break };
                    let r = f(j);
                    out.lock().unwrap_or_else(|e| e.into_inner()).push((i, r));
                }
            });
        }
    });
    let mut out = out.into_inner().unwrap_or_else(|e| e.into_inner());
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

/// The hpa policy with every metric's target at `target` (a utilization, or that share of the
/// capacity for a total).
pub fn hpa_at(hpa: &Policy, target: f64, capacity: f64) -> Policy {
    let mut p = hpa.clone();
    if let Some(h) = p.horizontal.as_mut() {
        for m in &mut h.metrics {
            m.target = match m.target {
                Target::Utilization(_) => Target::Utilization(target),
                Target::PerReplica(_) => Target::PerReplica(target * capacity),
            };
        }
    }
    p
}

/// Targets tried when lowering the hpa example's.
pub const HPA_TARGETS: [f64; 17] = [
    0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5, 0.45, 0.4, 0.35, 0.3, 0.25, 0.2, 0.15, 0.1,
];

/// The hpa example as written and with its target lowered until its unserved load is at most
/// `max_unserved_pct` (the highest of [`HPA_TARGETS`] that meets it).
pub fn hpa_at_slo(
    hpa: &Policy,
    trace: &Trace,
    model: ServiceModel,
    max_unserved_pct: f64,
) -> HpaPoint {
    let runs = parallel(&HPA_TARGETS, |t| {
        super::run(&hpa_at(hpa, *t, model.capacity), trace, model).summary
    });
    HpaPoint {
        as_written: super::run(hpa, trace, model).summary,
        lowered: HPA_TARGETS
            .iter()
            .zip(runs)
            .find(|(_, s)| s.unserved_pct <= max_unserved_pct)
            .map(|(t, s)| (*t, s)),
    }
}

/// Cheaper first.
fn by_cost(a: &Point, b: &Point) -> std::cmp::Ordering {
    a.summary
        .cost_vs_oracle
        .total_cmp(&b.summary.cost_vs_oracle)
}

/// Simulations memoized by setting.
struct Runner<'a> {
    policy: &'a Policy,
    trace: &'a Trace,
    model: ServiceModel,
    done: Mutex<HashMap<[u64; 9], Point>>,
    runs: AtomicUsize,
    progress: &'a (dyn Fn(usize) + Sync),
    /// The cost of the cheapest qualifying setting found so far.
    cheapest: Mutex<f64>,
    /// Index of the quantile the last scan found (where the next one starts).
    hint: AtomicUsize,
}

/// A quantile scan stops once its cost is this share above the cheapest qualifying setting
/// found so far: a higher quantile sizes for more at every tick, so it costs more.
pub const PRUNE_SLACK: f64 = 0.05;

impl Runner<'_> {
    fn eval(&self, s: &Setting) -> Summary {
        if let Some(done) = self.lock().get(&s.key()) {
            return done.summary.clone();
        }
        let p = apply(self.policy, s, self.model).expect("checked before the search");
        let r = super::run(&p, self.trace, self.model).summary;
        let point = Point {
            setting: *s,
            summary: r.clone(),
        };
        self.lock().insert(s.key(), point);
        (self.progress)(self.runs.fetch_add(1, Ordering::Relaxed) + 1);
        r
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u64; 9], Point>> {
        self.done.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The lowest quantile of `qs` (ascending) meeting `pct` within `budget` actions at `base`
    /// (its quantile replaced): a higher quantile sizes for more at every tick, so it costs
    /// more. None when none does, or when the scan passed `slack` above the cheapest qualifying
    /// cost found so far without qualifying.
    ///
    /// The scan starts at `start` (None: one below the quantile the last scan found, since the
    /// settings of one search need similar quantiles): from a start within `pct` it walks down
    /// until unserved load exceeds `pct` and keeps the lowest that qualified; without one, up to
    /// the first that qualifies. That assumes unserved load falls as the quantile rises, which holds
    /// near the answer; actions do not fall with it (the scale-down rules interact with the
    /// quantile), so a quantile over the action budget does not end the walk down.
    fn best_quantile(
        &self,
        base: Setting,
        start: Option<usize>,
        qs: &[f64],
        pct: f64,
        budget: u32,
        slack: f64,
    ) -> Option<Point> {
        let served = |p: &Point| p.summary.unserved_pct <= pct;
        let at = |i: usize| {
            let setting = Setting {
                quantile: qs[i],
                ..base
            };
            let p = Point {
                setting,
                summary: self.eval(&setting),
            };
            let ok = served(&p) && p.summary.actions <= budget;
            (p, ok)
        };
        let found = |i: usize, p: Point| {
            self.hint.store(i, Ordering::Relaxed);
            let mut cheapest = self.cheapest.lock().unwrap_or_else(|e| e.into_inner());
            *cheapest = cheapest.min(p.summary.cost_vs_oracle);
            Some(p)
        };
        let start = start
            .unwrap_or_else(|| self.hint.load(Ordering::Relaxed).saturating_sub(1))
            .min(qs.len().checked_sub(1)?);
        let (first, ok) = at(start);
        if served(&first) {
            let mut best = ok.then(|| (start, first.clone()));
            let mut j = start;
            while j > 0 {
                j -= 1;
                let (p, ok) = at(j);
                if ok {
                    best = Some((j, p));
                } else if !served(&p) {
                    break;
                }
            }
            if let Some((i, p)) = best {
                return found(i, p);
            }
        }
        let mut last = first;
        for i in start + 1..qs.len() {
            let cheapest = *self.cheapest.lock().unwrap_or_else(|e| e.into_inner());
            if last.summary.cost_vs_oracle > cheapest * (1.0 + slack) {
                return None;
            }
            let (p, ok) = at(i);
            if ok {
                return found(i, p);
            }
            last = p;
        }
        None
    }
}

/// Simulations the search makes at most (for a progress bar).
pub fn max_runs(space: &Space) -> usize {
    let bisect = space.quantiles.len();
    let governors = space.tolerance_ups.len()
        * space.windows.len()
        * space.tolerances.len()
        * space.down_percents.len();
    let models = space.margins.len() * space.smoothings.len();
    let calibrations = space.calibrations.len().saturating_sub(1);
    bisect
        * (governors
            + 3 * models.saturating_sub(1)
            + calibrations
            + usize::from(space.adaptive.is_some()))
}

/// Searches `space` for the cheapest setting of `policy` on `trace` whose unserved load is at
/// most `max_unserved_pct` and whose actions are at most the hpa example's (see the module
/// docs). `progress` gets the number of simulations done so far.
pub fn tune(
    policy: &Policy,
    hpa: &Policy,
    trace: &Trace,
    model: ServiceModel,
    max_unserved_pct: f64,
    space: &Space,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Outcome, TuneError> {
    metric_capacity(policy, model)?;
    let hpa_point = hpa_at_slo(hpa, trace, model, max_unserved_pct);
    let budget = hpa_point.budget();
    let runner = Runner {
        policy,
        trace,
        model,
        done: Mutex::new(HashMap::new()),
        runs: AtomicUsize::new(0),
        progress,
        cheapest: Mutex::new(f64::INFINITY),
        hint: AtomicUsize::new(0),
    };
    // Stage 1: the governor, at the first margin and smoothing.
    let mut governors = Vec::new();
    for &tolerance_up in &space.tolerance_ups {
        for &window in &space.windows {
            for &tolerance in &space.tolerances {
                for &down_percent in &space.down_percents {
                    governors.push(Setting {
                        quantile: space.quantiles[0],
                        margin: space.margins[0],
                        smoothing: space.smoothings[0],
                        calibration: space.calibrations[0],
                        tolerance_up,
                        window,
                        tolerance,
                        down_percent,
                        adaptive: None,
                    });
                }
            }
        }
    }
    let scan = |s: &Setting| {
        runner.best_quantile(
            *s,
            None,
            &space.quantiles,
            max_unserved_pct,
            budget,
            PRUNE_SLACK,
        )
    };
    let stage1 = parallel(&governors, scan);
    let mut good: Vec<Point> = stage1.into_iter().flatten().collect();
    good.sort_by(by_cost);
    // Stage 2: margin and smoothing around the three cheapest governors.
    let mut models = Vec::new();
    for g in good.iter().take(3) {
        for &margin in &space.margins {
            for &smoothing in &space.smoothings {
                models.push(Setting {
                    margin,
                    smoothing,
                    ..g.setting
                });
            }
        }
    }
    let stage2 = parallel(&models, scan);
    good.extend(stage2.into_iter().flatten());
    let mut best = good.into_iter().min_by(by_cost);
    let index_of = |q: f64| space.quantiles.iter().position(|&x| x >= q);
    // Stage 3: the other calibrations on the cheapest, from its quantile.
    if let Some(b) = best.take() {
        let from = index_of(b.setting.quantile);
        let others: Vec<Setting> = space.calibrations[1..]
            .iter()
            .map(|&calibration| Setting {
                calibration,
                ..b.setting
            })
            .collect();
        let found = parallel(&others, |s| {
            runner.best_quantile(
                *s,
                from,
                &space.quantiles,
                max_unserved_pct,
                budget,
                PRUNE_SLACK,
            )
        });
        best = found.into_iter().flatten().chain([b]).min_by(by_cost);
    }
    // Stage 4: the action budget on the cheapest.
    if let (Some(share), Some(b)) = (space.adaptive, &best) {
        let from = index_of(b.setting.quantile).unwrap_or(0);
        let base = Setting {
            adaptive: Some(share),
            ..b.setting
        };
        // From its own quantile up, never below: insurance, not a cheaper bet on the history.
        let insured = runner.best_quantile(
            base,
            Some(0),
            &space.quantiles[from..],
            max_unserved_pct,
            budget,
            ADAPTIVE_COST,
        );
        if let Some(i) = insured
            && i.summary.cost_vs_oracle <= b.summary.cost_vs_oracle * (1.0 + ADAPTIVE_COST)
        {
            best = Some(i);
        }
    }
    let done = runner.done.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut points: Vec<Point> = done.into_values().collect();
    points.sort_by(by_cost);
    Ok(Outcome {
        best,
        points,
        hpa: hpa_point,
        max_unserved_pct,
    })
}

/// The lines `tune` writes into `horizontal:` for setting `s`.
fn horizontal_lines(
    policy: &Policy,
    s: &Setting,
    model: ServiceModel,
    indent: &str,
) -> Vec<String> {
    let capacity = metric_capacity(policy, model).unwrap_or(model.capacity);
    let up = policy
        .horizontal
        .as_ref()
        .map_or_else(ScalingRules::unlimited, |h| h.governor.scale_up.clone());
    let i2 = format!("{indent}  ");
    let i3 = format!("{indent}    ");
    let mut lines = vec![
        format!("{indent}policy:"),
        format!("{i2}predictive:"),
        format!("{i3}history: {}", secs(history_of(policy))),
        format!("{i3}quantile: {}", s.quantile),
        format!("{i3}startup: {}", secs(model.startup)),
        format!("{i3}margin: {}", secs(s.margin)),
        format!("{i3}capacityPerReplica: {capacity}"),
        format!("{i3}smoothing: {}", s.smoothing),
        format!("{i3}calibration: {}", s.calibration),
        format!(
            "{indent}tolerance: {{up: {}, down: {}}}",
            s.tolerance_up, s.tolerance
        ),
        // Scale-up at once (see the module docs), with the policy's window and cooldown.
        format!("{indent}scaleUp:"),
        format!("{i2}stabilization: {}", secs(up.stabilization)),
        format!("{i2}cooldown: {}", secs(up.cooldown)),
        format!("{i2}limits: []"),
        format!("{indent}scaleDown:"),
        format!("{i2}stabilization: {}", secs(s.window)),
        format!("{i2}limits:"),
        format!("{i2}  - {{percent: {}, per: 1m}}", s.down_percent),
    ];
    if let Some(share) = s.adaptive {
        lines.push(format!("{i2}adaptive: {{actionsVsHpa: {share}}}"));
    }
    lines
}

/// Prefix of the comment lines `tune` writes (a file tuned again loses the old ones).
pub const COMMENT: &str = "# setpoint tune:";

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn is_blank(line: &str) -> bool {
    let t = line.trim_start();
    t.is_empty() || t.starts_with('#')
}

/// The policy file `text` with setting `s` written into its (block-style) `horizontal:` part:
/// its `policy`, `tolerance`, `scaleUp` and `scaleDown` replaced, everything else as it was, and `comment`
/// (lines without the `#`) on top.
pub fn write_policy(
    text: &str,
    policy: &Policy,
    s: &Setting,
    model: ServiceModel,
    comment: &[String],
) -> Result<String, String> {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with(COMMENT))
        .collect();
    let Some(h) = lines
        .iter()
        .position(|l| l.trim_start().starts_with("horizontal:"))
    else {
        return Err("no `horizontal:` key found".into());
    };
    if !lines[h].trim_end().ends_with("horizontal:") {
        return Err(
            "`horizontal:` is written in flow style ({...}): tune rewrites block style only".into(),
        );
    }
    let base = indent_of(lines[h]);
    let end = (h + 1..lines.len())
        .find(|&i| !is_blank(lines[i]) && indent_of(lines[i]) <= base)
        .unwrap_or(lines.len());
    let child = (h + 1..end)
        .find(|&i| !is_blank(lines[i]))
        .map_or(base + 2, |i| indent_of(lines[i]));
    let mut body: Vec<String> = Vec::new();
    let mut skipping = false;
    for l in &lines[h + 1..end] {
        if !is_blank(l) && indent_of(l) == child {
            let key = l.trim_start().split(':').next().unwrap_or("");
            skipping = matches!(key, "policy" | "tolerance" | "scaleUp" | "scaleDown");
        } else if !is_blank(l) && indent_of(l) < child {
            skipping = false;
        }
        if !skipping {
            body.push(l.to_string());
        }
    }
    while body.last().is_some_and(|l| l.trim().is_empty()) {
        body.pop();
    }
    body.extend(horizontal_lines(policy, s, model, &" ".repeat(child)));
    let mut out: Vec<String> = comment.iter().map(|c| format!("{COMMENT} {c}")).collect();
    out.extend(lines[..=h].iter().map(|l| l.to_string()));
    out.extend(body);
    out.extend(lines[end..].iter().map(|l| l.to_string()));
    let mut text = out.join("\n");
    text.push('\n');
    Ok(text)
}

/// The comment block of a tuned policy: what it was tuned on and what it reached.
pub fn comment(o: &Outcome, best: &Point, tuned_on: &str, reproduce: &str) -> Vec<String> {
    let s = &best.summary;
    let mut c = vec![
        format!(
            "tuned on {tuned_on} ({:.1} h, capacity {}/replica, start-up {}) for unserved load <= {} %",
            s.hours,
            crate::engine::fmt_num(s.capacity),
            secs(s.startup_s),
            o.max_unserved_pct
        ),
        format!(
            "and at most {} scaling actions ({ACTION_MARGIN} of the hpa example's); search space: Space::standard",
            o.hpa.budget()
        ),
        format!(
            "reached: unserved {:.4} %, cost vs oracle {:.4}, {} actions ({})",
            s.unserved_pct,
            s.cost_vs_oracle,
            s.actions,
            best.setting.summary()
        ),
    ];
    match &o.hpa.lowered {
        Some((t, h)) => c.push(format!(
            "the hpa example at target {t} meets it at cost {:.4} (unserved {:.4} %, {} actions)",
            h.cost_vs_oracle, h.unserved_pct, h.actions
        )),
        None => c.push("the hpa example meets it at no target tried".into()),
    }
    c.push(format!("reproduce: {reproduce}"));
    c
}

/// The frontier and the comparison as a table.
pub fn table(o: &Outcome) -> String {
    let mut t = String::from(
        "| quantile | margin | smoothing | calibration | tolerance.up | scale-down window | tolerance.down | down %/min | adaptive | unserved % | cost vs oracle | actions |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for p in o.frontier() {
        let (s, r) = (&p.setting, &p.summary);
        t += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.4} | {:.4} | {} |\n",
            s.quantile,
            secs(s.margin),
            s.smoothing,
            s.calibration,
            s.tolerance_up,
            secs(s.window),
            s.tolerance,
            s.down_percent,
            s.adaptive.map_or("-".to_string(), |b| b.to_string()),
            r.unserved_pct,
            r.cost_vs_oracle,
            r.actions
        );
    }
    let w = &o.hpa.as_written;
    t += &format!(
        "\nhpa example as written: unserved {:.4} %, cost vs oracle {:.4}, {} actions\n",
        w.unserved_pct, w.cost_vs_oracle, w.actions
    );
    match &o.hpa.lowered {
        Some((tg, h)) => {
            t += &format!(
                "hpa example at target {tg} (the highest meeting {} %): unserved {:.4} %, cost vs oracle {:.4}, {} actions\n",
                o.max_unserved_pct, h.unserved_pct, h.cost_vs_oracle, h.actions
            )
        }
        None => {
            t += &format!(
                "hpa example: no target tried meets {} %\n",
                o.max_unserved_pct
            )
        }
    }
    t
}

/// An SVG of the points (cost against unserved load), the frontier, the SLO and the hpa point.
pub fn plot(o: &Outcome, title: &str, path: &std::path::Path) -> Result<(), String> {
    use plotters::prelude::*;
    let mut xs: Vec<f64> = o.points.iter().map(|p| p.summary.unserved_pct).collect();
    let mut ys: Vec<f64> = o.points.iter().map(|p| p.summary.cost_vs_oracle).collect();
    if let Some((_, h)) = &o.hpa.lowered {
        xs.push(h.unserved_pct);
        ys.push(h.cost_vs_oracle);
    }
    xs.push(o.max_unserved_pct);
    let xmax = xs
        .iter()
        .copied()
        .fold(1e-6, f64::max)
        .min(4.0 * o.max_unserved_pct.max(0.01))
        * 1.05;
    let ymin = ys.iter().copied().fold(f64::INFINITY, f64::min).min(1.0);
    let ymax = ys.iter().copied().fold(0.0, f64::max).max(ymin + 0.1) * 1.02;
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..xmax, (ymin * 0.98)..ymax)?;
        chart
            .configure_mesh()
            .x_desc("unserved load, %")
            .y_desc("cost vs oracle")
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        chart
            .draw_series(
                o.points
                    .iter()
                    .filter(|p| p.summary.unserved_pct <= xmax)
                    .map(|p| {
                        Circle::new(
                            (p.summary.unserved_pct, p.summary.cost_vs_oracle),
                            2,
                            BLUE.mix(0.4).filled(),
                        )
                    }),
            )?
            .label("settings simulated")
            .legend(|(x, y)| Circle::new((x + 10, y), 3, BLUE.filled()));
        let f: Vec<(f64, f64)> = o
            .frontier()
            .iter()
            .map(|p| (p.summary.unserved_pct, p.summary.cost_vs_oracle))
            .filter(|p| p.0 <= xmax)
            .collect();
        chart
            .draw_series(LineSeries::new(f, BLUE.stroke_width(2)))?
            .label("frontier (within the action budget)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        chart
            .draw_series(LineSeries::new(
                vec![
                    (o.max_unserved_pct, ymin * 0.98),
                    (o.max_unserved_pct, ymax),
                ],
                BLACK.mix(0.5),
            ))?
            .label("SLO")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
        if let Some((t, h)) = &o.hpa.lowered {
            chart
                .draw_series(std::iter::once(TriangleMarker::new(
                    (h.unserved_pct, h.cost_vs_oracle),
                    7,
                    RED.filled(),
                )))?
                .label(format!("hpa example at target {t}"))
                .legend(|(x, y)| TriangleMarker::new((x + 10, y), 5, RED.filled()));
        }
        if let Some(b) = &o.best {
            chart
                .draw_series(std::iter::once(Circle::new(
                    (b.summary.unserved_pct, b.summary.cost_vs_oracle),
                    6,
                    GREEN.filled(),
                )))?
                .label("chosen")
                .legend(|(x, y)| Circle::new((x + 10, y), 5, GREEN.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| format!("{}: cannot write the plot: {e}", path.display()))
}
