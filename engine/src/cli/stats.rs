//! `berth stats`: Docker's table from the stats documents, the CPU share computed as the
//! Docker CLI does (container CPU time over host CPU time between two samples, times CPUs).

use super::client::Client;
use super::commands::enc;
use super::format::{human_size, table};
use anyhow::Result;
use hyper::Method;
use serde_json::Value;

fn cpu_percent(s: &Value) -> f64 {
    let delta = |k: &str| {
        s["cpu_stats"].pointer(k).and_then(Value::as_f64).unwrap_or(0.0)
            - s["precpu_stats"].pointer(k).and_then(Value::as_f64).unwrap_or(0.0)
    };
    let (cpu, system) = (delta("/cpu_usage/total_usage"), delta("/system_cpu_usage"));
    let cpus = s["cpu_stats"]["online_cpus"].as_f64().unwrap_or(1.0);
    if cpu > 0.0 && system > 0.0 {
        cpu / system * cpus * 100.0
    } else {
        0.0
    }
}

/// Memory in use as the Docker CLI counts it: without the page cache it could drop.
fn memory_used(s: &Value) -> u64 {
    let m = &s["memory_stats"];
    let usage = m["usage"].as_u64().unwrap_or(0);
    let cache = m["stats"]["total_inactive_file"].as_u64().or(m["stats"]["inactive_file"].as_u64()).unwrap_or(0);
    usage.saturating_sub(cache)
}

/// Binary units, as the Docker CLI shows memory ("752KiB / 64MiB").
fn binary_size(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    let text = format!("{v:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}{}", units[i])
}

fn row(s: &Value) -> Vec<String> {
    let used = memory_used(s);
    let limit = s["memory_stats"]["limit"].as_u64().unwrap_or(0);
    let sum = |v: &Value, k: &str| v.as_object().map_or(0, |o| o.values().filter_map(|n| n[k].as_u64()).sum::<u64>());
    let (rx, tx) = (sum(&s["networks"], "rx_bytes"), sum(&s["networks"], "tx_bytes"));
    let io = |op: &str| {
        s["blkio_stats"]["io_service_bytes_recursive"].as_array().map_or(0, |a| {
            a.iter().filter(|e| e["op"].as_str().is_some_and(|o| o.eq_ignore_ascii_case(op))).filter_map(|e| e["value"].as_u64()).sum()
        })
    };
    vec![
        s["id"].as_str().unwrap_or("").chars().take(12).collect(),
        s["name"].as_str().unwrap_or("").trim_start_matches('/').to_string(),
        format!("{:.2}%", cpu_percent(s)),
        format!("{} / {}", binary_size(used), binary_size(limit)),
        format!("{:.2}%", if limit > 0 { used as f64 / limit as f64 * 100.0 } else { 0.0 }),
        format!("{} / {}", human_size(rx), human_size(tx)),
        format!("{} / {}", human_size(io("read")), human_size(io("write"))),
        s["pids_stats"]["current"].as_u64().unwrap_or(0).to_string(),
    ]
}

pub async fn run(client: &Client, containers: &[String], no_stream: bool) -> Result<i32> {
    let titles: Vec<String> =
        ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"].map(String::from).to_vec();
    loop {
        let mut rows = Vec::new();
        for c in containers {
            let s = client.json(Method::GET, &format!("/containers/{}/stats?stream=false", enc(c)), None).await?;
            rows.push(row(&s));
        }
        if !no_stream {
            // Redraw in place, as docker stats does.
            print!("\x1b[2J\x1b[H");
        }
        table(&titles, &rows);
        if no_stream {
            return Ok(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn computes_docker_cli_figures() {
        let s = json!({
            "id": "0123456789abcdef", "name": "/web",
            "cpu_stats": {"cpu_usage": {"total_usage": 300}, "system_cpu_usage": 2000, "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 100}, "system_cpu_usage": 1000},
            "memory_stats": {"usage": 3 * 1024 * 1024, "limit": 64 * 1024 * 1024, "stats": {"total_inactive_file": 1024 * 1024}},
            "networks": {"eth0": {"rx_bytes": 1000, "tx_bytes": 2000}},
            "blkio_stats": {"io_service_bytes_recursive": [{"op": "Read", "value": 4096}]},
            "pids_stats": {"current": 3},
        });
        let r = row(&s);
        assert_eq!(r[0], "0123456789ab");
        assert_eq!(r[2], "40.00%");
        assert_eq!(r[3], "2MiB / 64MiB");
        assert_eq!(binary_size(770_048), "752KiB");
        assert_eq!(r[7], "3");
    }
}
