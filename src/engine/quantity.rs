//! Kubernetes resource quantities (`250m`, `1.5`, `64Mi`, `1e3`, `12345n`) as numbers, CPU in
//! cores and memory in bytes, and [`Resource`], the one CPU/memory enum.
//!
//! One grammar, the API server's (`k8s.io/apimachinery` `resource.Quantity`): a number (`2`,
//! `1.5`, `.5`, `+3`) followed by an optional suffix: a binary multiplier (`Ki` `Mi` `Gi` `Ti`
//! `Pi` `Ei`), a decimal one (`n` `u` `m` `k` `M` `G` `T` `P` `E`), or a decimal exponent (`e3`,
//! `E-2`). What the API server refuses is refused here, with what was expected: spaces, an
//! unknown suffix (`Qi`, `K`, `mi`), no number, a negative amount (no request or limit may be
//! negative). Policy files, pod specs and metrics.k8s.io usage are all read with [`parse`].

use serde::{Deserialize, Serialize};
use std::fmt;

/// CPU (cores) or memory (bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Resource {
    /// Cores.
    Cpu,
    /// Bytes.
    Memory,
}

impl Resource {
    /// Lowercase name, as in Kubernetes.
    pub fn as_str(&self) -> &'static str {
        match self {
            Resource::Cpu => "cpu",
            Resource::Memory => "memory",
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Bytes in a MiB.
pub const MIB: f64 = 1024.0 * 1024.0;

/// Why a text is not a quantity the API server accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// A suffix that is neither a multiplier nor an exponent.
    #[error(
        "unknown unit \"{unit}\" in \"{text}\": expected n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, \
         Ti, Pi, Ei or an exponent such as e3"
    )]
    UnknownUnit {
        /// The whole text.
        text: String,
        /// The suffix.
        unit: String,
    },
    /// No number, or a malformed one.
    #[error(
        "\"{0}\" is not a quantity: expected a number with an optional unit, such as 500m or 512Mi"
    )]
    NotANumber(String),
    /// Spaces around or inside.
    #[error("\"{0}\" has spaces: a quantity has none (the API server refuses them)")]
    Spaces(String),
    /// Below zero.
    #[error("\"{0}\" must be zero or more")]
    Negative(String),
    /// Too large to be a number here.
    #[error("\"{0}\" is too large")]
    TooLarge(String),
}

/// The multiplier of a suffix: a binary or decimal SI one, or a decimal exponent.
fn multiplier(suffix: &str) -> Option<f64> {
    Some(match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e if e.starts_with(['e', 'E']) => {
            let digits = e[1..].strip_prefix(['+', '-']).unwrap_or(&e[1..]);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            10f64.powi(e[1..].parse::<i32>().ok()?)
        }
        _ => return None,
    })
}

/// Parses a Kubernetes quantity into its plain value (cores or bytes).
pub fn parse(text: &str) -> Result<f64, QuantityError> {
    if text.chars().any(char::is_whitespace) {
        return Err(QuantityError::Spaces(text.into()));
    }
    let end = text
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || ((c == '+' || c == '-') && i == 0)))
        .map_or(text.len(), |(i, _)| i);
    let (number, suffix) = text.split_at(end);
    let factor = multiplier(suffix).ok_or_else(|| QuantityError::UnknownUnit {
        text: text.into(),
        unit: suffix.into(),
    })?;
    let digits = number.trim_start_matches(['+', '-']);
    if digits.is_empty() || digits == "." {
        return Err(QuantityError::NotANumber(text.into()));
    }
    let n: f64 = number
        .parse()
        .map_err(|_| QuantityError::NotANumber(text.into()))?;
    let v = n * factor;
    if v < 0.0 {
        return Err(QuantityError::Negative(text.into()));
    }
    if !v.is_finite() {
        return Err(QuantityError::TooLarge(text.into()));
    }
    Ok(v)
}

/// Formats cores (`250m`, `2`) or bytes (`512Mi`, `3Gi`) compactly, as the simulator and the
/// policy errors show them.
pub fn format(r: Resource, v: f64) -> String {
    match r {
        Resource::Cpu => {
            let m = (v * 1000.0).round();
            if m % 1000.0 == 0.0 {
                format!("{}", m / 1000.0)
            } else {
                format!("{m}m")
            }
        }
        Resource::Memory => {
            let mi = v / MIB;
            if mi >= 1024.0 && (mi / 1024.0).fract() == 0.0 {
                format!("{}Gi", mi / 1024.0)
            } else {
                format!("{}Mi", mi.round())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message of a refused text.
    fn refused(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn parses_kubernetes_notation() {
        assert_eq!(parse("100m").unwrap(), 0.1);
        assert_eq!(parse("2").unwrap(), 2.0);
        assert_eq!(parse("1.5").unwrap(), 1.5);
        assert_eq!(parse("512Mi").unwrap(), 512.0 * 1048576.0);
        assert_eq!(parse("8Gi").unwrap(), 8.0 * 1073741824.0);
        assert_eq!(parse("1G").unwrap(), 1e9);
        assert_eq!(parse("1e3").unwrap(), 1000.0);
        assert!(refused("12Qi").contains("unknown unit \"Qi\""));
        assert!(refused("lots").contains("unknown unit"));
        assert!(refused("-1").contains("zero or more"));
        assert!(refused("").contains("not a quantity"));
    }

    #[test]
    fn suffixes() {
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(1.0);
        for (text, want) in [
            ("250m", 0.25),
            ("1", 1.0),
            ("1.5", 1.5),
            ("123456789n", 0.123456789),
            ("12u", 12e-6),
            ("64Mi", 64.0 * 1024.0 * 1024.0),
            ("1Gi", 1024.0 * 1024.0 * 1024.0),
            ("100M", 1e8),
            ("2k", 2000.0),
            ("1e3", 1000.0),
            ("5E-1", 0.5),
            ("0", 0.0),
            // What policy files used to refuse and the API server accepts.
            ("2P", 2e15),
            ("1E", 1e18),
            ("1Pi", 1024f64.powi(5)),
            ("1Ei", 1024f64.powi(6)),
            (".5", 0.5),
            ("+3", 3.0),
            ("1.5e3", 1500.0),
            ("2E+2", 200.0),
        ] {
            let got = parse(text).unwrap();
            assert!(close(got, want), "{text}: {got} != {want}");
        }
    }

    #[test]
    fn rubbish_is_refused() {
        for text in ["", "m", "1x", "Mi", "1.2.3", "1e", "--1"] {
            assert!(parse(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn what_the_api_server_refuses_is_refused_with_what_was_expected() {
        assert!(refused("1K").contains("unknown unit \"K\" in \"1K\": expected n, u, m, k"));
        assert!(refused("1mi").contains("unknown unit \"mi\""));
        assert!(refused("1e+").contains("unknown unit \"e+\""));
        assert!(refused("1e3.5").contains("unknown unit \"e3.5\""));
        assert!(refused(" 500m").contains("has spaces"));
        assert!(refused("500 m").contains("has spaces"));
        assert!(refused("Mi").contains("\"Mi\" is not a quantity"));
        assert!(refused(".").contains("not a quantity"));
        assert!(refused("-250m").contains("\"-250m\" must be zero or more"));
        assert!(refused("1e400").contains("too large"));
    }

    #[test]
    fn formats_compactly() {
        assert_eq!(format(Resource::Cpu, 0.25), "250m");
        assert_eq!(format(Resource::Cpu, 2.0), "2");
        assert_eq!(format(Resource::Memory, 512.0 * 1048576.0), "512Mi");
        assert_eq!(format(Resource::Memory, 3.0 * 1073741824.0), "3Gi");
    }

    #[test]
    fn resources_by_their_kubernetes_names() {
        assert_eq!(Resource::Cpu.to_string(), "cpu");
        assert_eq!(Resource::Memory.as_str(), "memory");
    }
}
