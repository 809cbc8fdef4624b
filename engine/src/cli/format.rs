//! Output helpers: Docker's sizes and ages, and a small `--format` template language
//! (`{{.Path.To.Field}}`, `{{json .X}}`) enough for scripts that inspect one field.

use serde_json::Value;

/// `4.26MB`: decimal units with three significant digits, as Docker prints sizes.
/// Docker's memory sizes: "67108864", "64m", "1g", "512k", "100b"; -1 stays -1 (unlimited).
pub fn parse_bytes(s: &str) -> anyhow::Result<i64> {
    if s == "-1" {
        return Ok(-1);
    }
    let lower = s.trim().to_ascii_lowercase();
    let digits = lower.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &lower[digits.len()..];
    let n: f64 = digits.parse().map_err(|_| anyhow::anyhow!("invalid size: {s:?}"))?;
    let mult: f64 = match unit {
        "" | "b" => 1.0,
        "k" | "kb" => 1024.0,
        "m" | "mb" => 1024.0 * 1024.0,
        "g" | "gb" => 1024.0 * 1024.0 * 1024.0,
        _ => anyhow::bail!("invalid size: {s:?} (units: b, k, m, g)"),
    };
    Ok((n * mult) as i64)
}

/// Prints rows under titles in columns, as Docker's tables (three spaces between columns).
pub fn table(titles: &[String], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = titles.iter().map(String::len).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.len());
            }
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}   ", w = widths.get(i).copied().unwrap_or(0)));
            }
        }
        println!("{out}");
    };
    line(titles);
    for r in rows {
        line(r);
    }
}

pub fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let mut s = format!("{v:.digits$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{}", units[i])
}

/// "3 minutes ago" for a Unix time.
pub fn ago(unix: i64) -> String {
    let now = ::time::OffsetDateTime::now_utc().unix_timestamp();
    format!("{} ago", crate::util::time::human_duration(now - unix))
}

fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.trim_start_matches('.').split('.').filter(|p| !p.is_empty()).try_fold(v, |cur, key| cur.get(key))
}

fn render_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<no value>".into(),
        other => other.to_string(),
    }
}

/// Renders `template` against `v`.
pub fn template(template: &str, v: &Value) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("}}").ok_or_else(|| format!("unclosed action in template {template:?}"))? + start;
        let action = rest[start + 2..end].trim();
        let (json, path) = match action.strip_prefix("json ") {
            Some(p) => (true, p.trim()),
            None => (false, action),
        };
        if !path.starts_with('.') {
            return Err(format!("unsupported template action {action:?} (berth supports {{{{.Field}}}} and {{{{json .Field}}}})"));
        }
        let value = lookup(v, path).cloned().unwrap_or(Value::Null);
        out.push_str(&if json { value.to_string() } else { render_value(&value) });
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes_like_docker() {
        assert_eq!(parse_bytes("64m").unwrap(), 64 * 1024 * 1024);
        assert_eq!(parse_bytes("1G").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert_eq!(parse_bytes("-1").unwrap(), -1);
        assert!(parse_bytes("12q").is_err());
    }

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(4_260_000), "4.26MB");
        assert_eq!(human_size(12_300_000), "12.3MB");
        assert_eq!(human_size(123_000_000), "123MB");
        assert_eq!(human_size(10_000), "10kB");
    }

    #[test]
    fn templates() {
        let v = serde_json::json!({"State": {"Running": true, "ExitCode": 3}, "Name": "/x"});
        assert_eq!(template("{{.State.Running}}", &v).unwrap(), "true");
        assert_eq!(template("{{.Name}} {{.State.ExitCode}}", &v).unwrap(), "/x 3");
        assert_eq!(template("{{json .State}}", &v).unwrap(), r#"{"ExitCode":3,"Running":true}"#);
        assert!(template("{{if .X}}", &v).is_err());
    }
}
