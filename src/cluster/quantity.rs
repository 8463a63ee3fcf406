//! Kubernetes quantities (`250m`, `1.5`, `64Mi`, `1e3`, `12345n`) as numbers: CPU in cores,
//! memory in bytes.

/// Parses a Kubernetes quantity: a decimal number followed by an optional suffix: a binary
/// (`Ki` `Mi` `Gi` `Ti` `Pi` `Ei`) or decimal (`n` `u` `m` `k` `M` `G` `T` `P` `E`) multiplier, or
/// a decimal exponent (`e3`, `E-2`).
pub fn parse(text: &str) -> Result<f64, String> {
    let s = text.trim();
    let end = s
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || ((c == '+' || c == '-') && i == 0)))
        .map_or(s.len(), |(i, _)| i);
    let (number, suffix) = s.split_at(end);
    let bad = || {
        format!(
            "invalid quantity {text:?}: expected a number with an optional suffix such as m, Mi or G"
        )
    };
    if number.is_empty() || number == "+" || number == "-" || number == "." {
        return Err(bad());
    }
    let n: f64 = number.parse().map_err(|_| bad())?;
    let factor = match suffix {
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
            let exp: i32 = e[1..].parse().map_err(|_| bad())?;
            10f64.powi(exp)
        }
        _ => return Err(bad()),
    };
    Ok(n * factor)
}

#[cfg(test)]
mod tests {
    use super::parse;

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
}
