//! Small text helpers shared by the rooms: an error chain on one line, and durations written as
//! text. A leaf: it imports nothing of the crate.

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use std::fmt;
use std::time::Duration;

/// An error and its sources on one line, without repeats ("a: b: c").
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// A number of seconds in humantime's words, rounded to whole seconds ("15s", "5m").
pub(crate) fn secs(s: f64) -> String {
    humantime::format_duration(Duration::from_secs_f64(s.max(0.0).round())).to_string()
}

/// A duration written as a humantime string ("15s", "5m", "1h 30m").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl schemars::JsonSchema for Dur {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string"})
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"30s\" or \"5m\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Dur, E> {
                let t = s.trim();
                if t.starts_with('-') {
                    return Err(E::custom(format!(
                        "negative duration \"{s}\": durations are zero or more"
                    )));
                }
                humantime::parse_duration(t).map(Dur).map_err(|e| {
                    E::custom(format!(
                        "invalid duration \"{s}\": {e}; expected a duration such as \"30s\" or \"5m\""
                    ))
                })
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dur, E> {
                Err(E::custom(format!(
                    "{v} has no unit: expected a duration such as \"{}s\"",
                    v.unsigned_abs()
                )))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dur, E> {
                self.visit_i64(v.min(i64::MAX as u64) as i64)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Dur, E> {
                Err(E::custom(format!(
                    "{v} has no unit: expected a duration such as \"30s\""
                )))
            }
        }
        d.deserialize_any(V)
    }
}
