//! Durations as text, the one parser for all of berth: Go's form as Docker writes it
//! (`30s`, `1m30s`, `250ms`, `1.5h`; units ns, us/µs, ms, s, m, h), and for berth's own
//! flags and files also a bare number of seconds.

use std::time::Duration;

/// Go's `time.ParseDuration` without signs: one or more number+unit pairs.
pub fn parse(s: &str) -> Option<Duration> {
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n = rest.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(rest.len());
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[u..];
        total += value * unit;
    }
    (total.is_finite() && total >= 0.0).then(|| Duration::from_secs_f64(total))
}

/// [`parse`], or a bare number of seconds (`30`, `1.5`).
pub fn parse_or_secs(s: &str) -> Option<Duration> {
    match s.trim().parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 => Some(Duration::from_secs_f64(secs)),
        Ok(_) => None,
        Err(_) => parse(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_and_bare_seconds() {
        assert_eq!(parse("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse("10us"), Some(Duration::from_micros(10)));
        for bad in ["", "10", "5 parsecs", "s", "1x", "-1s"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        assert_eq!(parse_or_secs("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_or_secs("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_or_secs("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_or_secs("-3"), None);
    }
}
