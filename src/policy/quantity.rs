//! Kubernetes resource quantities ("100m", "2", "1.5", "512Mi", "8Gi", "1e3") as numbers: cores
//! for CPU, bytes for memory.

/// Parses a quantity into its plain value (cores or bytes). Errors say what was expected.
pub fn parse(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(t.len());
    let (num, suffix) = t.split_at(split);
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0f64.powi(4),
        other => {
            return Err(format!(
                "unknown unit \"{other}\" in \"{s}\": expected m, k, M, G, T, Ki, Mi, Gi or Ti"
            ));
        }
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("\"{s}\" is not a quantity: expected a number with an optional unit, such as 500m or 512Mi"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("\"{s}\" must be zero or more"));
    }
    Ok(v * factor)
}

/// Formats cores ("250m", "2") or bytes ("512Mi", "3Gi") compactly.
pub fn format(resource_is_cpu: bool, v: f64) -> String {
    if resource_is_cpu {
        let m = (v * 1000.0).round();
        if m % 1000.0 == 0.0 {
            format!("{}", m / 1000.0)
        } else {
            format!("{m}m")
        }
    } else {
        let mi = v / (1024.0 * 1024.0);
        if mi >= 1024.0 && (mi / 1024.0).fract() == 0.0 {
            format!("{}Gi", mi / 1024.0)
        } else {
            format!("{}Mi", mi.round())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubernetes_notation() {
        assert_eq!(parse("100m").unwrap(), 0.1);
        assert_eq!(parse("2").unwrap(), 2.0);
        assert_eq!(parse("1.5").unwrap(), 1.5);
        assert_eq!(parse("512Mi").unwrap(), 512.0 * 1048576.0);
        assert_eq!(parse("8Gi").unwrap(), 8.0 * 1073741824.0);
        assert_eq!(parse("1G").unwrap(), 1e9);
        assert_eq!(parse("1e3").unwrap(), 1000.0);
        assert!(parse("12Qi").unwrap_err().contains("unknown unit \"Qi\""));
        assert!(parse("lots").unwrap_err().contains("unknown unit"));
        assert!(parse("-1").unwrap_err().contains("zero or more"));
        assert!(parse("").unwrap_err().contains("not a quantity"));
    }

    #[test]
    fn formats_compactly() {
        assert_eq!(format(true, 0.25), "250m");
        assert_eq!(format(true, 2.0), "2");
        assert_eq!(format(false, 512.0 * 1048576.0), "512Mi");
        assert_eq!(format(false, 3.0 * 1073741824.0), "3Gi");
    }
}
