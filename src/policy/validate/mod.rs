//! Validation: from the file as written ([`super::model`]) to a [`Policy`], every problem with
//! its line, column and field. This file holds the top of the spec; `horizontal.rs` and
//! `vertical.rs` the two parts.

mod horizontal;
mod vertical;
mod zero;

use super::model::{self, Dur, PolicyFile};
use super::{API_VERSION, KIND, MetricQuery, Policy, Problem, VerticalSpec};
use crate::engine::quantity::Resource;
use crate::engine::{Horizontal, Seconds, Target};
use serde_saphyr::Spanned;
use std::ops::RangeBounds;
use std::path::Path;

#[derive(Default)]
pub(super) struct Validator {
    pub(super) problems: Vec<Problem>,
}

impl Validator {
    fn err<T>(&mut self, at: &Spanned<T>, field: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            line: at.referenced.line() as u32,
            column: at.referenced.column() as u32,
            field: field.into(),
            message: message.into(),
        });
    }

    pub(super) fn policy(&mut self, f: PolicyFile, path: &Path) -> Option<Policy> {
        if f.api_version.value != API_VERSION {
            self.err(
                &f.api_version,
                "apiVersion",
                format!(
                    "expected \"{API_VERSION}\", found \"{}\"",
                    f.api_version.value
                ),
            );
        }
        if f.kind.value != KIND {
            self.err(
                &f.kind,
                "kind",
                format!("expected \"{KIND}\", found \"{}\"", f.kind.value),
            );
        }
        let name = &f.metadata.name;
        if !is_dns_label(&name.value) {
            self.err(
                name,
                "metadata.name",
                format!(
                    "\"{}\" is not a valid name: expected 1-63 lowercase letters, digits or '-', \
                     starting and ending with a letter or digit",
                    name.value
                ),
            );
        }
        let spec = &f.spec.value;
        let t = &spec.target;
        if t.value.kind.trim().is_empty() || t.value.name.trim().is_empty() {
            self.err(
                t,
                "spec.target",
                "expected a kind and a name, such as {kind: Deployment, name: web}",
            );
        }
        let interval = match &spec.interval {
            None => 15.0,
            Some(i) => self.duration(i, "spec.interval", 1.0, 3600.0),
        };
        if spec.horizontal.is_none() && spec.vertical.is_none() {
            self.err(
                &f.spec,
                "spec",
                "nothing to scale: expected `horizontal`, `vertical` or both",
            );
            return None;
        }
        let (horizontal, queries) = match &spec.horizontal {
            Some(h) => {
                let (h, q) = self.horizontal(h, interval)?;
                (Some(h), q)
            }
            None => (None, Vec::new()),
        };
        let prometheus = spec.prometheus.as_ref().map(|p| {
            if let Err(why) = p.value.check() {
                self.err(p, "spec.prometheus", why);
            }
            p.value.clone()
        });
        let vertical = spec.vertical.as_ref().map(|v| self.vertical(v));
        if let (Some(h), Some(v), Some(hm)) = (&horizontal, &vertical, &spec.horizontal) {
            self.feedback_loop(h, v, &queries, hm);
        }
        Some(Policy {
            name: name.value.clone(),
            namespace: f.metadata.namespace.clone(),
            source: path.to_owned(),
            object: None,
            annotations: f.metadata.annotations.clone(),
            target: t.value.clone(),
            mode: spec.mode,
            interval,
            prometheus,
            queries,
            horizontal,
            vertical,
        })
    }

    /// Rejects a policy whose horizontal side holds CPU utilization relative to the request
    /// while its vertical side changes that request: each request change would move the
    /// utilization and so the replica count (a feedback loop between the two).
    fn feedback_loop(
        &mut self,
        h: &Horizontal,
        v: &VerticalSpec,
        queries: &[MetricQuery],
        hm: &model::Horizontal,
    ) {
        if !v.plan.resources.contains(&Resource::Cpu) {
            return;
        }
        for (i, (m, q)) in h.metrics.iter().zip(queries).enumerate() {
            // A metrics.k8s.io CPU utilization is relative to the request by definition; a PromQL
            // utilization is when it divides by the CPU requests.
            let relative_to_request = matches!(m.target, Target::Utilization(_))
                && match q {
                    MetricQuery::Resource { resource, .. } => *resource == Resource::Cpu,
                    MetricQuery::Prometheus { query, .. } => {
                        let text = query.to_ascii_lowercase();
                        text.contains("cpu") && text.contains("resource_requests")
                    }
                    MetricQuery::Pods(_) => false,
                };
            if relative_to_request {
                self.err(
                    &hm.metrics.value[i],
                    &format!("spec.horizontal.metrics[{i}]"),
                    "scales on CPU utilization relative to the request, which spec.vertical changes: \
                     every request change would move the utilization and the replica count (a feedback \
                     loop). Scale on absolute usage instead, e.g. `prometheus: sum(rate(container_cpu_usage_seconds_total{...}[1m]))` \
                     with `targetPerReplica: 0.5` (cores per replica), or remove cpu from spec.vertical.resources",
                );
            }
        }
    }

    /// An optional number: `default` when absent, else its value, with an error when it is
    /// not within `ok` (`expected` says the range, e.g. "0.5 to 2").
    fn number(
        &mut self,
        v: Option<&Spanned<f64>>,
        field: &str,
        default: f64,
        ok: impl RangeBounds<f64>,
        expected: &str,
    ) -> f64 {
        let Some(s) = v else { return default };
        if !ok.contains(&s.value) {
            self.err(
                s,
                field,
                format!("{} is out of range: expected {expected}", s.value),
            );
        }
        s.value
    }

    /// A duration in seconds within [lo, hi] (None bound checks when lo = 0).
    fn duration(&mut self, d: &Spanned<Dur>, field: &str, lo: f64, hi: f64) -> Seconds {
        let s = d.value.0.as_secs_f64();
        if s < lo || s > hi {
            self.err(
                d,
                field,
                format!(
                    "{} is out of range: expected between {} and {}",
                    humantime::format_duration(d.value.0),
                    humantime::format_duration(std::time::Duration::from_secs_f64(lo)),
                    humantime::format_duration(std::time::Duration::from_secs_f64(hi)),
                ),
            );
        }
        s
    }
}

fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}
