//! `GET /containers/{id}/stats`: Docker's stats document, one per second while streaming.
//! The CPU share a client shows is the difference between `cpu_stats` and `precpu_stats`.

use super::error::ApiResult;
use super::router::{json, Ctx};
use crate::cgroups::stats::{Sample, Sampler};
use crate::containers::model::Container;
use crate::containers::Containers;
use bytes::Bytes;
use serde_json::{json, Map, Value};
use std::time::Duration;

const INTERVAL: Duration = Duration::from_secs(1);

fn cpu_json(s: &Sample) -> Value {
    let c = &s.cpu;
    let mut usage = json!({
        "total_usage": c.total_ns,
        "usage_in_kernelmode": c.system_ns,
        "usage_in_usermode": c.user_ns,
    });
    if !c.percpu_ns.is_empty() {
        usage["percpu_usage"] = json!(c.percpu_ns);
    }
    json!({
        "cpu_usage": usage,
        "system_cpu_usage": c.host_ns,
        "online_cpus": c.online_cpus,
        "throttling_data": {"periods": c.periods, "throttled_periods": c.throttled_periods, "throttled_time": c.throttled_ns},
    })
}

fn document(c: &Container, cur: Option<&(String, Sample)>, pre: Option<&(String, Sample)>) -> Value {
    let zero = crate::util::time::ZERO;
    let Some((read, s)) = cur else {
        // Not running: Docker's empty document.
        return json!({
            "read": zero, "preread": zero, "name": format!("/{}", c.name), "id": c.id,
            "pids_stats": {}, "blkio_stats": {}, "num_procs": 0, "storage_stats": {},
            "cpu_stats": {"cpu_usage": {"total_usage": 0}, "throttling_data": {}},
            "precpu_stats": {"cpu_usage": {"total_usage": 0}, "throttling_data": {}},
            "memory_stats": {}, "networks": {},
        });
    };
    let mut memory = json!({"usage": s.memory.usage, "limit": s.memory.limit, "stats": s.memory.stats});
    if let Some(m) = s.memory.max_usage {
        memory["max_usage"] = json!(m);
    }
    if let Some(f) = s.memory.failcnt {
        memory["failcnt"] = json!(f);
    }
    let blkio: Vec<Value> = s.blkio.iter().map(|b| json!({"major": b.major, "minor": b.minor, "op": b.op, "value": b.value})).collect();
    let networks: Map<String, Value> = s
        .networks
        .iter()
        .map(|(name, n)| {
            (
                name.clone(),
                json!({
                    "rx_bytes": n.rx_bytes, "rx_packets": n.rx_packets, "rx_errors": n.rx_errors, "rx_dropped": n.rx_dropped,
                    "tx_bytes": n.tx_bytes, "tx_packets": n.tx_packets, "tx_errors": n.tx_errors, "tx_dropped": n.tx_dropped,
                }),
            )
        })
        .collect();
    let mut pids = json!({"current": s.pids_current});
    if let Some(l) = s.pids_limit {
        pids["limit"] = json!(l);
    }
    json!({
        "read": read,
        "preread": pre.map_or(zero, |p| p.0.as_str()),
        "name": format!("/{}", c.name),
        "id": c.id,
        "pids_stats": pids,
        "blkio_stats": {
            "io_service_bytes_recursive": blkio,
            "io_serviced_recursive": null, "io_queue_recursive": null, "io_service_time_recursive": null,
            "io_wait_time_recursive": null, "io_merged_recursive": null, "io_time_recursive": null, "sectors_recursive": null,
        },
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu_json(s),
        "precpu_stats": pre.map_or_else(|| json!({"cpu_usage": {"total_usage": 0}, "throttling_data": {}}), |p| cpu_json(&p.1)),
        "memory_stats": memory,
        "networks": networks,
    })
}

/// A sample of the container as it is now; `None` when it is not running. `sampler` is kept
/// between the samples of a stream, and made anew when the container's process changed.
async fn take(containers: &Containers, id: &str, sampler: &mut Option<Sampler>) -> ApiResult<(Container, Option<(String, Sample)>)> {
    let c = containers.lookup(id)?.get();
    let Some(p) = c.state.process() else { return Ok((c, None)) };
    let own_network = c.host_config.network_mode != "host";
    let current = sampler.take().filter(|s| s.pid == p.pid);
    let result = tokio::task::spawn_blocking(move || {
        let s = match current {
            Some(s) => s,
            None => Sampler::new(p.pid, own_network)?,
        };
        let sample = s.sample()?;
        anyhow::Ok((s, sample))
    })
    .await
    .map_err(anyhow::Error::from)?;
    // The container may have exited since the record was read: that is "not running".
    Ok((
        c,
        result.ok().map(|(s, sample)| {
            *sampler = Some(s);
            (crate::util::time::now(), sample)
        }),
    ))
}

pub async fn stats(ctx: &Ctx, id: &str) -> ApiResult {
    let stream = ctx.q.get("stream").is_none_or(|_| ctx.q.bool("stream"));
    let mut sampler = None;
    let (c, first) = take(&ctx.d.containers, id, &mut sampler).await?;
    if !stream {
        if first.is_none() || ctx.q.bool("one-shot") {
            return json(&document(&c, first.as_ref(), None));
        }
        tokio::time::sleep(INTERVAL).await;
        let (c, second) = take(&ctx.d.containers, id, &mut sampler).await?;
        return json(&document(&c, second.as_ref().or(first.as_ref()), second.as_ref().and(first.as_ref())));
    }
    let (tx, body) = super::body::channel();
    let containers = ctx.d.containers.clone();
    let id = c.id.to_string();
    tokio::spawn(async move {
        let mut pre = None;
        let mut cur = first;
        let mut c = c;
        loop {
            let mut line = serde_json::to_vec(&document(&c, cur.as_ref(), pre.as_ref())).unwrap_or_default();
            line.push(b'\n');
            if tx.send(Bytes::from(line)).await.is_err() || cur.is_none() {
                return;
            }
            tokio::time::sleep(INTERVAL).await;
            let Ok((next_c, next)) = take(&containers, &id, &mut sampler).await else { return };
            c = next_c;
            pre = cur;
            cur = next;
        }
    });
    Ok(hyper::Response::builder().header("Content-Type", "application/json").body(body).unwrap())
}
