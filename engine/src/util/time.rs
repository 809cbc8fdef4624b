//! Timestamps as the Docker API writes them (RFC 3339 with nanoseconds, UTC) and the human
//! durations `docker ps` shows.

use ::time::format_description::well_known::Rfc3339;
use ::time::OffsetDateTime;

/// Docker's zero time, shown for events that have not happened.
pub const ZERO: &str = "0001-01-01T00:00:00Z";

/// Now, as an RFC 3339 UTC timestamp with nanoseconds.
pub fn now() -> String {
    format(OffsetDateTime::now_utc())
}

pub fn format(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| ZERO.to_string())
}

/// Parses an RFC 3339 timestamp.
pub fn parse(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// Seconds since the epoch of an RFC 3339 timestamp (0 if it does not parse).
pub fn unix(s: &str) -> i64 {
    parse(s).map(|t| t.unix_timestamp()).unwrap_or(0)
}

/// Parses Docker's `since`/`until` values: Unix seconds with optional fraction
/// (`1700000000.5`), RFC 3339, or a duration before now (`10m`, `1h30m`, `5s`). Returns
/// nanoseconds since the epoch.
pub fn parse_point(s: &str, now: OffsetDateTime) -> Option<i128> {
    if s.is_empty() {
        return None;
    }
    if let Some((secs, frac)) = s.split_once('.').or(Some((s, ""))).filter(|(a, _)| a.bytes().all(|b| b.is_ascii_digit())) {
        if frac.bytes().all(|b| b.is_ascii_digit()) && !secs.is_empty() {
            let secs: i128 = secs.parse().ok()?;
            let mut nanos = format!("{frac:0<9}");
            nanos.truncate(9);
            return Some(secs * 1_000_000_000 + nanos.parse::<i128>().ok()?);
        }
    }
    if let Some(t) = parse(s) {
        return Some(t.unix_timestamp_nanos());
    }
    parse_duration(s).map(|d| now.unix_timestamp_nanos() - d.as_nanos() as i128)
}

/// `1h30m`, `10m`, `5s`, `250ms` (Go's form, as Docker writes it).
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    berth_images::duration::parse(s)
}

/// "2 seconds", "About a minute", "3 hours": Go's units.HumanDuration as `docker ps` uses it.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".into(),
        _ if s < 3600 => format!("{} minutes", s / 60),
        _ if s < 2 * 3600 => "About an hour".into(),
        _ if s < 48 * 3600 => format!("{} hours", s / 3600),
        _ if s < 14 * 86400 => format!("{} days", s / 86400),
        _ if s < 60 * 86400 => format!("{} weeks", s / (7 * 86400)),
        _ if s < 2 * 365 * 86400 => format!("{} months", s / (30 * 86400)),
        _ => format!("{} years", s / (365 * 86400)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_time_points() {
        let now = OffsetDateTime::from_unix_timestamp(1_000).unwrap();
        assert_eq!(parse_point("900", now), Some(900_000_000_000));
        assert_eq!(parse_point("900.5", now), Some(900_500_000_000));
        assert_eq!(parse_point("10s", now), Some(990_000_000_000));
        assert_eq!(parse_point("1970-01-01T00:00:10Z", now), Some(10_000_000_000));
        assert_eq!(parse_point("bogus", now), None);
        assert_eq!(parse_duration("1h30m"), Some(std::time::Duration::from_secs(5400)));
    }

    #[test]
    fn round_trips_rfc3339() {
        let s = now();
        assert!(parse(&s).is_some(), "{s}");
    }
}
