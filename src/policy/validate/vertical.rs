//! Validation of `spec.vertical`.

use super::Validator;
use crate::engine::quantity::{self, MIB, Resource};
use crate::engine::vertical::{ResourceParams, VerticalParams};
use crate::engine::vertical_plan::PlanSettings;
use crate::policy::model::{self, Dur};
use crate::policy::{ResizeFallback, USAGE_PLACEHOLDERS, UsageQueries, VerticalSpec, placeholders};
use serde_saphyr::Spanned;

impl Validator {
    pub(super) fn vertical(&mut self, v: &Spanned<model::Vertical>) -> VerticalSpec {
        let f = "spec.vertical";
        let m = &v.value;
        if m.containers.value.is_empty() || m.containers.value.iter().any(|c| c.trim().is_empty()) {
            self.err(
                &m.containers,
                &format!("{f}.containers"),
                "expected one or more container names",
            );
        }
        let resources: Vec<Resource> = match &m.resources {
            None => vec![Resource::Cpu, Resource::Memory],
            Some(r) => {
                if r.value.is_empty() {
                    self.err(r, &format!("{f}.resources"), "expected cpu, memory or both");
                }
                let mut out = Vec::new();
                for &res in &r.value {
                    if !out.contains(&res) {
                        out.push(res);
                    }
                }
                out
            }
        };
        let unit =
            |v: &mut Self, x: &Option<Spanned<f64>>, name: &str, default: f64, lo: f64, hi: f64| {
                let expected = format!("{lo} to {hi}");
                v.number(
                    x.as_ref(),
                    &format!("{f}.{name}"),
                    default,
                    lo..=hi,
                    &expected,
                )
            };
        let cpu_p = unit(self, &m.cpu_percentile, "cpuPercentile", 0.9, 0.01, 1.0);
        let mem_p = unit(
            self,
            &m.memory_percentile,
            "memoryPercentile",
            0.9,
            0.01,
            1.0,
        );
        let margin = unit(self, &m.margin, "margin", 0.15, 0.0, 1.0);
        let (lower, upper) = match &m.bounds {
            None => (0.5, 0.95),
            Some(b) => {
                let (l, u) = (b.value.lower, b.value.upper);
                if !(0.0 < l && l <= cpu_p.min(mem_p) && cpu_p.max(mem_p) <= u && u <= 1.0) {
                    self.err(
                        b,
                        &format!("{f}.bounds"),
                        format!(
                            "expected 0 < lower ({l}) <= the target percentiles <= upper ({u}) <= 1"
                        ),
                    );
                }
                (l, u)
            }
        };
        let dur = |v: &mut Self, d: &Option<Spanned<Dur>>, name: &str, default: f64| {
            d.as_ref().map_or(default, |d| {
                v.duration(d, &format!("{f}.{name}"), 60.0, 30.0 * 86400.0)
            })
        };
        let half_life = dur(self, &m.half_life, "halfLife", 86400.0);
        let window = dur(self, &m.memory_peak_window, "memoryPeakWindow", 86400.0);
        let q = |x: &Option<Spanned<model::Quantities>>, cpu: bool| {
            x.as_ref()
                .and_then(|q| {
                    if cpu {
                        q.value.cpu.clone()
                    } else {
                        q.value.memory.clone()
                    }
                })
                .map(|q| q.value())
        };
        // The VPA's minimums per container: 25 millicores and 250 MiB.
        let (min_cpu, min_mem) = (
            q(&m.min, true).unwrap_or(0.025),
            q(&m.min, false).unwrap_or(250.0 * MIB),
        );
        let (max_cpu, max_mem) = (
            q(&m.max, true).unwrap_or(1000.0),
            q(&m.max, false).unwrap_or(1024.0 * 1024.0 * MIB),
        );
        if let Some(mx) = &m.max {
            for (r, lo, hi) in [
                (Resource::Cpu, min_cpu, max_cpu),
                (Resource::Memory, min_mem, max_mem),
            ] {
                if lo > hi {
                    self.err(
                        mx,
                        &format!("{f}.max.{r}"),
                        format!(
                            "max ({}) is below min ({})",
                            quantity::format(r, hi),
                            quantity::format(r, lo)
                        ),
                    );
                }
            }
        }
        let (stale_difference, stale_after) = match &m.min_change {
            None => (0.1, 12.0 * 3600.0),
            Some(c) => {
                if !(0.0..=10.0).contains(&c.value.difference) {
                    self.err(
                        c,
                        &format!("{f}.minChange.difference"),
                        "expected 0 to 10 (a share of the target)",
                    );
                }
                (c.value.difference, c.value.after.0.as_secs_f64())
            }
        };
        let (deferred_timeout, fallback, allow_restart) = match &m.resize {
            None => (300.0, ResizeFallback::Report, true),
            Some(r) => (
                r.value
                    .deferred_timeout
                    .map_or(300.0, |d| d.0.as_secs_f64()),
                r.value.fallback,
                r.value.allow_restart.unwrap_or(true),
            ),
        };
        let mut usage = UsageQueries::default();
        if let Some(u) = &m.usage {
            for (name, q, slot) in [
                ("cpu", &u.value.cpu, &mut usage.cpu),
                ("memory", &u.value.memory, &mut usage.memory),
            ] {
                let Some(q) = q else { continue };
                *slot = Some(q.value.clone());
                let field = format!("{f}.usage.{name}");
                if q.value.trim().is_empty() {
                    self.err(q, &field, "empty query: expected a PromQL expression");
                    continue;
                }
                let found = placeholders(&q.value);
                if let Some(bad) = found.iter().find(|p| !USAGE_PLACEHOLDERS.contains(p)) {
                    self.err(
                        q,
                        &field,
                        format!(
                            "unknown placeholder ${bad}: expected $namespace, $pod or $container"
                        ),
                    );
                }
                for needed in ["pod", "container"] {
                    if !found.contains(&needed) {
                        self.err(
                            q,
                            &field,
                            format!(
                                "the query has no ${needed}: it is evaluated once per pod and \
                                 container, e.g. {{namespace=\"$namespace\", pod=\"$pod\", \
                                 container=\"$container\"}}"
                            ),
                        );
                    }
                }
            }
        }
        let rp = |target_percentile, min, max| ResourceParams {
            target_percentile,
            lower_percentile: lower,
            upper_percentile: upper,
            margin,
            min,
            max,
        };
        VerticalSpec {
            plan: PlanSettings {
                containers: m.containers.value.clone(),
                resources,
                params: VerticalParams {
                    half_life,
                    memory_peak_window: window,
                    cpu: rp(cpu_p, min_cpu, max_cpu),
                    memory: rp(mem_p, min_mem, max_mem),
                    stale_difference,
                    stale_after,
                },
                update: m.update,
                limits: m.limits,
                deferred_timeout,
                fallback,
                allow_restart,
            },
            usage,
        }
    }
}
