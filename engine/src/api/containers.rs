//! Container endpoints and the JSON shapes Docker clients expect.

use super::error::{ApiError, ApiResult};
use super::router::{json, json_status, no_content, Ctx};
use crate::containers::model::{Container, State};
use crate::containers::{CreateRequest, WaitCondition};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::{json, Map, Value};

fn command_line(c: &Container) -> String {
    let mut parts = vec![c.path.clone()];
    parts.extend(c.args.iter().cloned());
    parts.join(" ")
}

fn summary(c: &Container, ctx: &Ctx) -> Value {
    let image = if c.image_name.is_empty() { c.image_id.to_string() } else { c.image_name.clone() };
    let networks: Map<String, Value> = ctx
        .d
        .networks
        .endpoints_of(&c.id)
        .iter()
        .filter_map(|e| {
            ctx.d
                .networks
                .find(&e.network)
                .ok()
                .map(|n| (n.name, json!({"NetworkID": n.id, "IPAddress": e.ip.to_string(), "MacAddress": e.mac})))
        })
        .collect();
    json!({
        "Id": c.id,
        "Names": [format!("/{}", c.name)],
        "Image": image,
        "ImageID": c.image_id,
        "Command": command_line(c),
        "Created": crate::util::time::unix(&c.created),
        "Ports": super::networks::port_summary(ctx, c),
        "Labels": c.config.labels.clone().unwrap_or_default(),
        "State": c.state.name(),
        "Status": status(ctx, c),
        "HostConfig": {"NetworkMode": if c.host_config.network_mode.is_empty() { "none" } else { &c.host_config.network_mode }},
        "NetworkSettings": {"Networks": networks},
        "Mounts": super::volumes::mounts(ctx, c),
    })
}

/// "Up 3 minutes (healthy)".
fn status(ctx: &Ctx, c: &Container) -> String {
    let mut s = c.state.describe(c.started_at.as_deref(), c.finished_at.as_deref());
    if c.state.is_running() {
        if let Some(h) = ctx.d.containers.lookup(c.id.as_str()).ok().and_then(|e| e.health()) {
            s.push_str(h.describe());
        }
    }
    s
}

fn matches_filters(c: &Container, f: &std::collections::HashMap<String, Vec<String>>) -> bool {
    f.iter().all(|(k, vals)| {
        vals.is_empty()
            || vals.iter().any(|v| match k.as_str() {
                "status" => c.state.name() == v,
                "name" => c.name.contains(v.trim_start_matches('/')),
                "id" => c.id.as_str().starts_with(v.as_str()),
                "label" => super::query::label_matches(&c.config.labels.clone().unwrap_or_default(), v),
                "exited" => matches!(c.state, State::Exited { exit_code, .. } if exit_code.to_string() == *v),
                "ancestor" => c.image_name == *v || c.image_id.as_str().contains(v.as_str()),
                _ => false,
            })
    })
}

pub fn list(ctx: &Ctx) -> ApiResult {
    let filters = ctx.q.filters()?;
    for k in filters.keys() {
        if !["status", "name", "id", "label", "exited", "ancestor"].contains(&k.as_str()) {
            return Err(ApiError::bad_request(format!("invalid filter '{k}'")));
        }
    }
    let all = ctx.q.bool("all") || filters.contains_key("status") || filters.contains_key("exited");
    let limit = ctx.q.int("limit")?.filter(|l| *l > 0).map(|l| l as usize);
    let list: Vec<Value> = ctx
        .d
        .containers
        .list()
        .iter()
        .filter(|c| all || limit.is_some() || c.state.is_running())
        .filter(|c| matches_filters(c, &filters))
        .take(limit.unwrap_or(usize::MAX))
        .map(|c| summary(c, ctx))
        .collect();
    json(&list)
}

pub fn inspect(ctx: &Ctx, name: &str) -> ApiResult {
    let entry = ctx.d.containers.lookup(name)?;
    let c = entry.get();
    let health = entry.health().filter(|_| c.state.is_running());
    let (pid, running) = c.state.process().map_or((0, false), |p| (p.pid, true));
    let error = match &c.state {
        State::Exited { error: Some(e), .. } => e.clone(),
        State::Dead { error } => error.clone(),
        _ => String::new(),
    };
    let zero = crate::util::time::ZERO;
    let mut hc = serde_json::to_value(&c.host_config).map_err(anyhow::Error::from)?;
    if hc["NetworkMode"] == "" {
        hc["NetworkMode"] = json!("none");
    }
    if hc.get("PortBindings").is_none_or(Value::is_null) {
        hc["PortBindings"] = json!({});
    }
    hc["Runtime"] = json!(c.runtime);
    hc["LogConfig"] =
        json!({"Type": c.log_driver(), "Config": c.host_config.log_config.as_ref().map(|l| l.config.clone()).unwrap_or_default()});
    let mut config = serde_json::to_value(&c.config).map_err(anyhow::Error::from)?;
    config["Image"] = json!(c.image_name);
    let graph: serde_json::Map<String, Value> = ctx.d.driver.container_paths(&c.id).into_iter().map(|(k, v)| (k, json!(v))).collect();
    json(&json!({
        "Id": c.id,
        "Created": c.created,
        "Path": c.path,
        "Args": c.args,
        "State": {
            "Status": if entry.restarting() { "restarting" } else { c.state.name() },
            "Running": running,
            "Paused": matches!(c.state, State::Paused(_)),
            "Restarting": entry.restarting(),
            "OOMKilled": false,
            "Dead": matches!(c.state, State::Dead { .. }),
            "Pid": pid,
            "ExitCode": c.state.exit_code(),
            "Error": error,
            "StartedAt": c.started_at.as_deref().unwrap_or(zero),
            "FinishedAt": c.finished_at.as_deref().unwrap_or(zero),
            "Health": health,
        },
        "ExecIDs": Some(ctx.d.execs.running_in(&c.id)).filter(|v| !v.is_empty()),
        "Image": c.image_id,
        "ResolvConfPath": "",
        "HostnamePath": "",
        "HostsPath": "",
        "LogPath": c.log_path,
        "Name": format!("/{}", c.name),
        "RestartCount": c.restart_count,
        "Driver": ctx.d.driver.name(),
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": null,
        "HostConfig": hc,
        "GraphDriver": {"Name": ctx.d.driver.name(), "Data": graph},
        "Mounts": super::volumes::mounts(ctx, &c),
        "Config": config,
        "NetworkSettings": super::networks::settings(ctx, &c),
    }))
}

pub async fn create(ctx: &Ctx, req: Request<Incoming>) -> ApiResult {
    let body: Option<CreateRequest> = super::query::read_json(req.into_body()).await?;
    let body = body.ok_or_else(|| ApiError::bad_request("request body is empty: a container config is required"))?;
    let id = ctx.d.containers.create(ctx.q.get("name"), body).await?;
    json_status(StatusCode::CREATED, &json!({"Id": id, "Warnings": []}))
}

pub async fn start(ctx: &Ctx, id: &str) -> ApiResult {
    ctx.d.containers.start(id).await?;
    no_content()
}

pub async fn stop(ctx: &Ctx, id: &str) -> ApiResult {
    let t = ctx.q.int("t")?;
    ctx.d.containers.stop(id, t, ctx.q.get("signal")).await?;
    no_content()
}

pub async fn restart(ctx: &Ctx, id: &str) -> ApiResult {
    let t = ctx.q.int("t")?;
    ctx.d.containers.restart(id, t, ctx.q.get("signal")).await?;
    no_content()
}

pub async fn kill(ctx: &Ctx, id: &str) -> ApiResult {
    ctx.d.containers.kill(id, ctx.q.get("signal")).await?;
    no_content()
}

pub fn rename(ctx: &Ctx, id: &str) -> ApiResult {
    let name = ctx.q.get("name").filter(|n| !n.is_empty()).ok_or_else(|| ApiError::bad_request("name is required"))?;
    ctx.d.containers.rename(id, name)?;
    no_content()
}

/// `docker diff`: `[{"Path": "/etc/x", "Kind": 0|1|2}]` (modified, added, deleted).
pub async fn changes(ctx: &Ctx, id: &str) -> ApiResult {
    let changes = ctx.d.containers.changes(id).await?;
    let out: Vec<Value> = changes.iter().map(|c| json!({"Path": format!("/{}", c.path.display()), "Kind": c.kind as u8})).collect();
    json(&out)
}

/// `docker export`: the container's whole file system as a tar, streamed as it is read.
pub async fn export(ctx: &Ctx, id: &str) -> ApiResult {
    let view = ctx.d.containers.export_view(id).await?;
    let (mut out, body) = super::body::writer();
    let id = id.to_string();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = view.write_export_tar(&mut out) {
            tracing::warn!(container = %id, "export failed: {e:#}");
            out.fail(&e);
        }
    });
    Ok(hyper::Response::builder().header("Content-Type", "application/x-tar").body(body).unwrap())
}

/// `docker commit`: `POST /commit?container=&repo=&tag=&author=&comment=&pause=&changes=`,
/// with an optional configuration in the body.
pub async fn commit(ctx: &Ctx, req: Request<Incoming>) -> ApiResult {
    let container = ctx.q.get("container").filter(|c| !c.is_empty()).ok_or_else(|| ApiError::bad_request("container is required"))?;
    let tag = match ctx.q.get("repo").filter(|r| !r.is_empty()) {
        None => None,
        Some(repo) => Some(
            match ctx.q.get("tag").filter(|t| !t.is_empty()) {
                Some(t) => berth_images::Reference::with_tag(repo, t),
                None => repo.parse(),
            }
            .map_err(|e| ApiError::bad_request(e.to_string()))?,
        ),
    };
    let overrides: Option<berth_images::config::RunConfig> = super::query::read_json(req.into_body()).await?;
    let opts = crate::containers::CommitOptions {
        tag,
        author: ctx.q.get("author").unwrap_or("").to_string(),
        comment: ctx.q.get("comment").unwrap_or("").to_string(),
        pause: ctx.q.get("pause").is_none_or(|p| p != "0" && p != "false"),
        config: crate::containers::CommitConfig::Container { overrides, changes: ctx.q.all("changes").to_vec() },
        created_by: None,
    };
    let id = ctx.d.containers.commit(container, opts).await?;
    json_status(StatusCode::CREATED, &json!({"Id": id}))
}

pub async fn remove(ctx: &Ctx, id: &str) -> ApiResult {
    if ctx.q.bool("link") {
        return Err(ApiError::not_implemented("removing links (rm --link)"));
    }
    let cid = ctx.d.containers.lookup(id)?.id();
    ctx.d.containers.remove(id, ctx.q.bool("force"), ctx.q.bool("v")).await?;
    ctx.d.execs.forget_container(&cid);
    no_content()
}

/// The headers go out as soon as the waiter is registered; the status follows at the exit.
pub fn wait(ctx: &Ctx, id: &str) -> ApiResult {
    let cond = WaitCondition::parse(ctx.q.get("condition").unwrap_or("")).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let entry = ctx.d.containers.lookup(id)?;
    let waiter = entry.waiter(cond);
    let (tx, body) = super::body::channel();
    tokio::spawn(async move {
        let code = waiter.wait().await;
        let _ = tx.send(Bytes::from(format!("{{\"Error\":null,\"StatusCode\":{code}}}\n"))).await;
    });
    Ok(hyper::Response::builder().header("Content-Type", "application/json").body(body).unwrap())
}

/// `docker container prune`: every container that is not running (label filters honoured),
/// with the bytes their writable layers held.
pub async fn prune(ctx: &Ctx) -> ApiResult {
    let filters = ctx.q.filters()?;
    for k in filters.keys() {
        if k != "label" {
            return Err(ApiError::bad_request(format!("invalid filter '{k}' for container prune (label is supported)")));
        }
    }
    let mut deleted = Vec::new();
    let mut reclaimed = 0u64;
    for c in ctx.d.containers.list() {
        if c.state.is_running() || !matches_filters(&c, &filters) {
            continue;
        }
        let size = ctx.d.driver.container_rw_size(&c.id);
        match ctx.d.containers.remove(c.id.as_str(), false, false).await {
            Ok(()) => {
                deleted.push(c.id.to_string());
                reclaimed += size;
            }
            Err(e) => tracing::warn!(container = %c.id.short(), "prune: {e:#}"),
        }
    }
    json(&json!({"ContainersDeleted": deleted, "SpaceReclaimed": reclaimed}))
}

pub async fn pause(ctx: &Ctx, id: &str) -> ApiResult {
    ctx.d.containers.pause(id).await?;
    no_content()
}

pub async fn unpause(ctx: &Ctx, id: &str) -> ApiResult {
    ctx.d.containers.unpause(id).await?;
    no_content()
}

pub async fn top(ctx: &Ctx, id: &str) -> ApiResult {
    let top = ctx.d.containers.top(id, ctx.q.get("ps_args").unwrap_or("")).await?;
    json(&json!({"Titles": top.titles, "Processes": top.processes}))
}

/// `docker update`: a `Resources` document with an optional `RestartPolicy`.
pub async fn update(ctx: &Ctx, id: &str, req: Request<Incoming>) -> ApiResult {
    let body: Option<Map<String, Value>> = super::query::read_json(req.into_body()).await?;
    let warnings = ctx.d.containers.update_config(id, body.unwrap_or_default()).await?;
    json(&json!({"Warnings": warnings}))
}

fn archive_path(ctx: &Ctx) -> ApiResult<String> {
    match ctx.q.get("path") {
        Some(p) if !p.is_empty() => Ok(p.to_string()),
        _ => Err(ApiError::bad_request("path is required (the path inside the container)")),
    }
}

/// The stat of a path as Docker clients read it: base64 JSON in a header.
fn stat_header(stat: &crate::containers::PathStat) -> ApiResult<String> {
    use base64::Engine;
    Ok(base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(stat).map_err(anyhow::Error::from)?))
}

pub async fn archive_head(ctx: &Ctx, id: &str) -> ApiResult {
    let stat = ctx.d.containers.stat_path(id, &archive_path(ctx)?).await?;
    Ok(hyper::Response::builder().header("X-Docker-Container-Path-Stat", stat_header(&stat)?).body(super::body::empty()).unwrap())
}

/// `docker cp CONTAINER:PATH -`: the stat in a header, then the tar, streamed.
pub async fn archive_get(ctx: &Ctx, id: &str) -> ApiResult {
    let path = archive_path(ctx)?;
    let (out, body) = super::body::writer();
    let (stat_tx, stat_rx) = tokio::sync::oneshot::channel();
    let containers = ctx.d.containers.clone();
    let (id, p2) = (id.to_string(), path.clone());
    let copy = tokio::spawn(async move {
        let fail = |out: super::body::BodyWriter, e: &anyhow::Error| out.fail(e);
        let result = containers.archive_get(&id, &p2, stat_tx, out, fail).await;
        if let Err(e) = &result {
            tracing::warn!(container = %id, path = %p2, "copy out failed: {e:#}");
        }
        result
    });
    let stat = match stat_rx.await {
        Ok(stat) => stat,
        // No stat: the copy failed before it began; its error is the answer.
        Err(_) => {
            return Err(match copy.await {
                Ok(Err(e)) => e.into(),
                _ => ApiError::from(anyhow::anyhow!("the copy of {path} ended before it began")),
            })
        }
    };
    Ok(hyper::Response::builder()
        .header("Content-Type", "application/x-tar")
        .header("X-Docker-Container-Path-Stat", stat_header(&stat)?)
        .body(body)
        .unwrap())
}

/// `docker cp - CONTAINER:PATH`: the upload is spooled, checked whole, then extracted.
pub async fn archive_put(ctx: &Ctx, id: &str, req: Request<Incoming>) -> ApiResult {
    let path = archive_path(ctx)?;
    ctx.d.containers.lookup(id)?;
    let file = super::query::spool(req.into_body(), ctx.d.images.tmp_dir(), "cp").await?;
    let opts = crate::containers::PutOptions {
        no_overwrite_dir_non_dir: ctx.q.bool("noOverwriteDirNonDir"),
        copy_uid_gid: ctx.q.bool("copyUIDGID"),
    };
    ctx.d.containers.archive_put(id, &path, file.0.clone(), opts).await?;
    drop(file);
    // Docker answers 200 (not 204) here.
    Ok(hyper::Response::builder().status(StatusCode::OK).body(super::body::empty()).unwrap())
}
