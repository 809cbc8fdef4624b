//! `POST /build`: the context is received and checked, the Dockerfile parsed (400 with
//! Docker's messages for bad input, 413 over `build-context-limit`), then the build runs and
//! answers with Docker's JSON stream (a failing step ends it with `errorDetail`).

use super::error::{ApiError, ApiResult};
use super::query::spool_limited;
use super::router::Ctx;
use crate::build::{prepare, BuildOptions, Output, Refused, WorkDir};
use berth_images::Reference;
use hyper::body::Incoming;
use hyper::Request;
use std::collections::BTreeMap;

/// A JSON-object query parameter (`buildargs`, `labels`): 400 when it is not one.
fn json_object<V: serde::de::DeserializeOwned>(ctx: &Ctx, key: &str) -> ApiResult<BTreeMap<String, V>> {
    match ctx.q.get(key).filter(|v| !v.is_empty()) {
        None => Ok(BTreeMap::new()),
        Some(v) => serde_json::from_str(v).map_err(|e| ApiError::bad_request(format!("invalid {key}: {e}"))),
    }
}

/// A boolean that is true unless given as false (`rm`).
fn default_true(ctx: &Ctx, key: &str) -> bool {
    !matches!(ctx.q.get(key), Some("0" | "false" | "False" | "FALSE" | "no"))
}

/// The limits a build's RUN steps run under (`--memory`, `--cpu-quota`, `--ulimit`, ...), as
/// the HostConfig fields of their containers; checked here as `create` checks them, so a bad
/// value is a 400 before the context is read.
fn step_limits(ctx: &Ctx) -> ApiResult<serde_json::Map<String, serde_json::Value>> {
    if ctx.q.get("cgroupparent").is_some_and(|c| !c.is_empty()) {
        return Err(ApiError::not_implemented("--cgroup-parent for a build (set cgroup-parent in daemon.json)"));
    }
    let mut hc = serde_json::Map::new();
    for (query, field) in [
        ("memory", "Memory"),
        ("memswap", "MemorySwap"),
        ("cpushares", "CpuShares"),
        ("cpuquota", "CpuQuota"),
        ("cpuperiod", "CpuPeriod"),
        ("shmsize", "ShmSize"),
    ] {
        if let Some(v) = ctx.q.int(query)?.filter(|v| *v != 0) {
            hc.insert(field.into(), v.into());
        }
    }
    for (query, field) in [("cpusetcpus", "CpusetCpus"), ("cpusetmems", "CpusetMems")] {
        if let Some(v) = ctx.q.get(query).filter(|v| !v.is_empty()) {
            hc.insert(field.into(), v.into());
        }
    }
    if let Some(v) = ctx.q.get("ulimits").filter(|v| !v.is_empty()) {
        let list: Vec<serde_json::Value> =
            serde_json::from_str::<Option<_>>(v).map_err(|e| ApiError::bad_request(format!("invalid ulimits: {e}")))?.unwrap_or_default();
        if !list.is_empty() {
            hc.insert("Ulimits".into(), list.into());
        }
    }
    crate::runtime::resources::validate(&hc).map_err(ApiError::bad_request)?;
    Ok(hc)
}

fn options(ctx: &Ctx) -> ApiResult<BuildOptions> {
    if ctx.q.get("remote").is_some_and(|r| !r.is_empty()) {
        return Err(ApiError::not_implemented("builds from a remote context (git or URL); send the context as a tar"));
    }
    if ctx.q.bool("squash") {
        return Err(ApiError::not_implemented("--squash"));
    }
    let mut tags = Vec::new();
    for t in ctx.q.all("t").iter().filter(|t| !t.is_empty()) {
        tags.push(t.parse::<Reference>().map_err(|e| ApiError::bad_request(format!("invalid tag {t:?}: {e}")))?);
    }
    let platform = match ctx.q.get("platform").filter(|p| !p.is_empty()) {
        Some(p) => Some(p.parse().map_err(ApiError::bad_request)?),
        None => None,
    };
    let network_mode = ctx.q.get("networkmode").filter(|m| !m.is_empty() && *m != "default").unwrap_or("").to_string();
    Ok(BuildOptions {
        tags,
        build_args: json_object(ctx, "buildargs")?,
        labels: json_object(ctx, "labels")?,
        target: ctx.q.get("target").filter(|t| !t.is_empty()).map(String::from),
        no_cache: ctx.q.bool("nocache"),
        pull: ctx.q.bool("pull"),
        rm: default_true(ctx, "rm"),
        force_rm: ctx.q.bool("forcerm"),
        network_mode,
        extra_hosts: ctx.q.all("extrahosts").iter().flat_map(|h| h.split(',')).filter(|h| !h.is_empty()).map(String::from).collect(),
        limits: step_limits(ctx)?,
        platform,
        logins: BTreeMap::new(),
        cache_from: match ctx.q.get("cachefrom").filter(|v| !v.is_empty()) {
            None => Vec::new(),
            Some(v) => serde_json::from_str(v).map_err(|e| ApiError::bad_request(format!("invalid cachefrom: {e}")))?,
        },
    })
}

pub async fn build(ctx: &Ctx, req: Request<Incoming>) -> ApiResult {
    let mut opts = options(ctx)?;
    opts.logins = super::registry_headers::registry_logins(req.headers())?;
    let limit = ctx.d.cfg.build_context_limit;
    let tmp = ctx.d.images.tmp_dir().to_path_buf();
    let tar = spool_limited(req.into_body(), &tmp, "build-context", Some((limit, "the build context"))).await?;
    let work = WorkDir(tmp.join(format!("build-{}", crate::util::id::ContainerId::random().map_err(anyhow::Error::from)?.short())));
    let dockerfile = ctx.q.get("dockerfile").unwrap_or("Dockerfile").to_string();
    let work_path = work.0.clone();
    let parsed = tokio::task::spawn_blocking(move || prepare(&tar.0, &work_path, &dockerfile)).await.map_err(anyhow::Error::from)?;
    let dockerfile = match parsed {
        Ok(d) => d,
        Err(Refused::BadRequest(m)) => return Err(ApiError::bad_request(m)),
        Err(Refused::Internal(e)) => return Err(e.into()),
    };
    let (tx, body) = super::body::channel();
    let out = Output::new(tx, ctx.q.bool("q"));
    let builder = ctx.d.builder.clone();
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        match builder.build(&dockerfile, work.0.clone(), &opts, &out).await {
            Ok(id) => tracing::info!(image = %id.short(), ms = started.elapsed().as_millis() as u64, "build done"),
            Err(e) => {
                tracing::warn!("build failed: {}", e.message);
                out.error(&e.message, e.code).await;
            }
        }
        drop(work);
    });
    Ok(hyper::Response::builder().header("Content-Type", "application/json").body(body).unwrap())
}

/// `docker builder prune`: the images only the build cache holds (untagged, no container on
/// them), and the cache entries that lead to them or to images gone.
pub async fn prune(ctx: &Ctx) -> ApiResult {
    let builder = ctx.d.builder.clone();
    let (deleted, reclaimed) = tokio::task::spawn_blocking(move || builder.prune()).await.map_err(anyhow::Error::from)??;
    super::router::json(&serde_json::json!({ "CachesDeleted": deleted, "SpaceReclaimed": reclaimed }))
}
