//! The validation of the scale-to-zero and schedule fields (`replicas.min: 0`,
//! `metrics[].activation`, `horizontal.idle`, `horizontal.schedules`).

use super::Validator;
use crate::engine::activation::{DEFAULT_IDLE, ScaleToZero};
use crate::engine::schedule::{self, Capacity, Schedule};
use crate::policy::model;

/// What to use instead of a metric that means nothing at zero pods.
const ZERO_HINT: &str = "a target at zero has no pods to measure, so only a total that exists without \
     pods can wake it: use a prometheus query with targetPerReplica, such as the queue length \
     (`sum(rabbitmq_queue_messages{queue=\"jobs\"})`) or the request rate at the ingress, or set \
     replicas.min to 1";

impl Validator {
    /// `min: 0`: every metric a Prometheus total with `targetPerReplica`. Then the activation
    /// thresholds and the idle time.
    pub(super) fn scale_to_zero(&mut self, h: &model::Horizontal, min: u32) -> ScaleToZero {
        let f = "spec.horizontal";
        let mut out = ScaleToZero::default();
        for (i, m) in h.metrics.value.iter().enumerate() {
            let mf = format!("{f}.metrics[{i}]");
            let v = &m.value;
            if min == 0 {
                let why = if v.resource.is_some() {
                    Some("reads metrics.k8s.io, which has no value without pods")
                } else if v.pods.is_some() {
                    Some("is scraped from the target's pods, which has no value without pods")
                } else if v.utilization.is_some() {
                    Some("is a utilization per pod, which has no value without pods")
                } else {
                    None
                };
                if let Some(why) = why {
                    self.err(
                        m,
                        &mf,
                        format!("replicas.min 0 needs every metric to be a total, and this one {why}: {ZERO_HINT}"),
                    );
                }
            }
            if let Some(a) = &v.activation {
                let t = a.value.threshold.value;
                if !(t.is_finite() && t >= 0.0) {
                    self.err(
                        &a.value.threshold,
                        &format!("{mf}.activation.threshold"),
                        format!("{t} is out of range: expected a number of 0 or more"),
                    );
                }
                let name = v
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("metric-{}", i + 1));
                out.thresholds.push((name, t));
            }
        }
        out.idle = match &h.idle {
            None => DEFAULT_IDLE,
            Some(d) => self.duration(d, &format!("{f}.idle"), 0.0, 86400.0),
        };
        out
    }

    /// `schedules`: each expression and zone checked, with its window's value within the bounds.
    pub(super) fn schedules(&mut self, h: &model::Horizontal, max: u32) -> Vec<Schedule> {
        let Some(list) = &h.schedules else {
            return Vec::new();
        };
        let mut out: Vec<Schedule> = Vec::new();
        for (i, s) in list.value.iter().enumerate() {
            let sf = format!("spec.horizontal.schedules[{i}]");
            let v = &s.value;
            let name = v.name.value.trim();
            if name.is_empty() {
                self.err(&v.name, &format!("{sf}.name"), "expected a name");
            } else if list.value[..i]
                .iter()
                .any(|o| o.value.name.value.trim() == name)
            {
                self.err(
                    &v.name,
                    &format!("{sf}.name"),
                    format!("duplicate schedule name \"{name}\""),
                );
            }
            let pattern = schedule::parse_cron(&v.cron.value);
            if let Err(e) = &pattern {
                self.err(&v.cron, &format!("{sf}.cron"), e.to_string());
            }
            let zone = schedule::parse_zone(&v.timezone.value);
            if let Err(e) = &zone {
                self.err(&v.timezone, &format!("{sf}.timezone"), e.to_string());
            }
            let duration =
                self.duration(&v.duration, &format!("{sf}.duration"), 60.0, 31.0 * 86400.0);
            let capacity = match (&v.min, &v.replicas) {
                (Some(n), None) => Some((n, "min", Capacity::Min(n.value))),
                (None, Some(n)) => Some((n, "replicas", Capacity::Fixed(n.value))),
                (Some(_), Some(_)) => {
                    self.err(
                        s,
                        &sf,
                        "give either min (a floor) or replicas (a fixed count), not both",
                    );
                    None
                }
                (None, None) => {
                    self.err(
                        s,
                        &sf,
                        "missing capacity: expected min (a floor) or replicas (a fixed count)",
                    );
                    None
                }
            };
            let Some((at, field, capacity)) = capacity else {
                continue;
            };
            let n = capacity.replicas();
            if n < 1 || n > max {
                self.err(
                    at,
                    &format!("{sf}.{field}"),
                    format!("{n} is out of range: expected 1 to replicas.max ({max})"),
                );
            }
            if pattern.is_ok() && zone.is_ok() {
                let made =
                    Schedule::new(name, &v.cron.value, duration, &v.timezone.value, capacity);
                out.extend(made.ok());
            }
        }
        out
    }
}
