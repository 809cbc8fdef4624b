//! Image endpoints: list, inspect, tag, rmi, load, import, save, pull.

use super::error::{ApiError, ApiResult};
use super::query::spool;
use super::registry_headers::registry_auth;
use super::router::{json, json_status, Ctx};
use crate::images::transport::Credentials;
use crate::images::{Deleted, LoadProgress};
use berth_images::Reference;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::json;

pub fn list(ctx: &Ctx) -> ApiResult {
    let filters = ctx.q.filters()?;
    let dangling = filters.get("dangling").and_then(|v| v.first()).map(|v| v == "true" || v == "1");
    let refs = filters.get("reference").cloned().unwrap_or_default();
    let (users, _) = ctx.d.containers.image_users();
    let parents = ctx.d.images.parents_in_use();
    let mut out = Vec::new();
    for img in ctx.d.images.list() {
        let tags = ctx.d.images.tags_of(&img.id);
        let intermediate = tags.is_empty() && parents.contains(&img.id);
        if dangling.is_some_and(|d| d != (tags.is_empty() && !intermediate)) || (intermediate && !ctx.q.bool("all")) {
            continue;
        }
        if !refs.is_empty() && !tags.iter().any(|t| refs.iter().any(|r| t == r || t.split(':').next() == Some(r.as_str()))) {
            continue;
        }
        let config = ctx.d.images.config(&img.id).ok();
        out.push(json!({
            "Id": img.id,
            "ParentId": ctx.d.images.parent_of(&img.id).map(|p| p.to_string()).unwrap_or_default(),
            // Untagged: an empty list (API >= 1.25); older daemons said "<none>:<none>".
            "RepoTags": tags,
            "RepoDigests": ctx.d.images.digests_of(&img.id),
            "Created": crate::util::time::unix(&img.created),
            "Size": img.size,
            "VirtualSize": img.size,
            "SharedSize": -1,
            "Labels": config.and_then(|c| c.config.labels).unwrap_or_default(),
            "Containers": users.keys().filter(|k| **k == img.id).count(),
            // berth's own: why the image cannot be used (image-layer-check, missing layers).
            "Damaged": ctx.d.images.damage(&img),
        }));
    }
    out.sort_by_key(|v| std::cmp::Reverse(v["Created"].as_i64().unwrap_or(0)));
    json(&out)
}

pub fn inspect(ctx: &Ctx, name: &str) -> ApiResult {
    let img = ctx.d.images.resolve(name)?;
    let config = ctx.d.images.config(&img.id)?;
    json(&json!({
        "Id": img.id,
        "RepoTags": ctx.d.images.tags_of(&img.id),
        "RepoDigests": ctx.d.images.digests_of(&img.id),
        "Parent": ctx.d.images.parent_of(&img.id).map(|p| p.to_string()).unwrap_or_default(),
        "Comment": config.history.last().and_then(|h| h.comment.clone()).unwrap_or_default(),
        "Created": img.created,
        "DockerVersion": "",
        "Author": config.author.clone().unwrap_or_default(),
        "Config": config.config,
        "Architecture": config.architecture,
        "Variant": config.variant,
        "Os": config.os,
        "Size": img.size,
        "VirtualSize": img.size,
        "GraphDriver": {"Name": ctx.d.driver.name(), "Data": null},
        "RootFS": {"Type": "layers", "Layers": config.rootfs.diff_ids},
        "Metadata": {"LastTagTime": img.last_tag_time.clone().unwrap_or_else(|| crate::util::time::ZERO.into())},
        "Damaged": ctx.d.images.damage(&img),
    }))
}

/// `docker history`: the config's history, newest first, each entry that made a layer with
/// that layer's size.
pub fn history(ctx: &Ctx, name: &str) -> ApiResult {
    let img = ctx.d.images.resolve(name)?;
    let config = ctx.d.images.config(&img.id)?;
    let sizes = ctx.d.images.layer_sizes(&img)?;
    let mut layer = 0;
    let mut out = Vec::new();
    for h in &config.history {
        let size = if h.empty_layer {
            0
        } else {
            layer += 1;
            sizes.get(layer - 1).copied().unwrap_or(0)
        };
        out.push(json!({
            "Id": "<missing>",
            "Created": h.created.as_deref().map(crate::util::time::unix).unwrap_or(0),
            "CreatedBy": h.created_by.clone().unwrap_or_default(),
            "Tags": null,
            "Size": size,
            "Comment": h.comment.clone().unwrap_or_default(),
        }));
    }
    out.reverse();
    if let Some(top) = out.first_mut() {
        top["Id"] = json!(img.id);
        top["Tags"] = json!(ctx.d.images.tags_of(&img.id));
    }
    json(&out)
}

/// Which container uses an image, for `ImageStore::delete`.
fn user_of(
    users: &std::collections::BTreeMap<berth_images::Digest, (String, bool)>,
) -> impl Fn(&berth_images::Digest) -> Option<crate::images::DeleteUser> + '_ {
    |id| users.get(id).map(|(c, running)| crate::images::DeleteUser { container: c.clone(), running: *running })
}

/// `docker image prune`: dangling images (with `dangling=false`, every image) no container
/// uses.
pub fn prune(ctx: &Ctx) -> ApiResult {
    let filters = ctx.q.filters()?;
    let only_dangling = filters.get("dangling").and_then(|v| v.first()).is_none_or(|v| v == "true" || v == "1");
    let (users, layers) = ctx.d.containers.image_users();
    let mut deleted = Vec::new();
    let mut reclaimed = 0u64;
    let parents = ctx.d.images.parents_in_use();
    // What deleting each image frees, counted as its layers are (an approximation when
    // images share layers, as Docker's is).
    let sizes: std::collections::BTreeMap<String, u64> = ctx.d.images.list().into_iter().map(|i| (i.id.to_string(), i.size)).collect();
    for img in ctx.d.images.list() {
        // Untagged parents go with the dangling image they lead to.
        let dangling = ctx.d.images.tags_of(&img.id).is_empty() && !parents.contains(&img.id);
        if users.contains_key(&img.id) || (only_dangling && !dangling) || ctx.d.images.resolve(img.id.as_str()).is_err() {
            continue;
        }
        match ctx.d.images.delete(img.id.as_str(), true, &user_of(&users), &layers, false) {
            Ok(items) => {
                for i in items {
                    deleted.push(match i {
                        Deleted::Untagged(t) => json!({"Untagged": t}),
                        Deleted::Deleted(id) => {
                            reclaimed += sizes.get(&id).copied().unwrap_or(0);
                            json!({"Deleted": id})
                        }
                    });
                }
            }
            Err(e) => tracing::warn!(image = %img.id.short(), "prune: {e:#}"),
        }
    }
    json(&json!({"ImagesDeleted": deleted, "SpaceReclaimed": reclaimed}))
}

pub fn tag(ctx: &Ctx, name: &str) -> ApiResult {
    let repo = ctx.q.get("repo").filter(|r| !r.is_empty()).ok_or_else(|| ApiError::bad_request("repo is required"))?;
    let tag = ctx.q.get("tag").filter(|t| !t.is_empty()).unwrap_or("latest");
    let target = if repo.contains('@') || repo.rsplit('/').next().is_some_and(|last| last.contains(':')) {
        return Err(ApiError::bad_request(format!("invalid repository name {repo:?}: give the tag in the tag parameter")));
    } else {
        Reference::with_tag(repo, tag).map_err(|e| ApiError::bad_request(e.to_string()))?
    };
    let shown = target.familiar();
    ctx.d.images.tag(name, target)?;
    ctx.d.events.emit(crate::events::Event::new("image", "tag", name).attr("name", shown));
    json_status(StatusCode::CREATED, &json!(null))
}

pub fn remove(ctx: &Ctx, name: &str) -> ApiResult {
    let (users, layers) = ctx.d.containers.image_users();
    let out = ctx.d.images.delete(name, ctx.q.bool("force"), &user_of(&users), &layers, ctx.q.bool("noprune"))?;
    for d in &out {
        let e = match d {
            Deleted::Untagged(t) => crate::events::Event::new("image", "untag", name).attr("name", t.to_string()),
            Deleted::Deleted(id) => crate::events::Event::new("image", "delete", id.to_string()),
        };
        ctx.d.events.emit(e);
    }
    let items: Vec<serde_json::Value> = out
        .into_iter()
        .map(|d| match d {
            Deleted::Untagged(t) => json!({"Untagged": t}),
            Deleted::Deleted(id) => json!({"Deleted": id}),
        })
        .collect();
    json(&items)
}

/// `docker save`: `GET /images/{name}/get` and `GET /images/get?names=...`. Names are
/// resolved before the answer starts (404 for an unknown one); the tar is then written from a
/// blocking thread as it is built. `format=oci` (berth's own) leaves out the Docker files.
pub fn save(ctx: &Ctx, names: Vec<String>) -> ApiResult {
    if names.is_empty() {
        return Err(ApiError::bad_request("no image names given"));
    }
    let format = match ctx.q.get("format").unwrap_or("") {
        "" | "docker" => crate::images::SaveFormat::Docker,
        "oci" => crate::images::SaveFormat::Oci,
        other => return Err(ApiError::bad_request(format!("unknown save format {other:?} (docker or oci)"))),
    };
    let items = ctx.d.images.save_items(&names)?;
    let (mut out, body) = super::body::writer();
    let images = ctx.d.images.clone();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = images.save(&items, format, &mut out) {
            tracing::warn!(images = ?names, "save failed: {e:#}");
            out.fail(&e);
        }
    });
    Ok(hyper::Response::builder().header("Content-Type", "application/x-tar").body(body).unwrap())
}

fn message_line(v: serde_json::Value) -> Bytes {
    Bytes::from(v.to_string() + "\n")
}

/// `docker load`: the upload is spooled to disk, then loaded with Docker's JSON progress lines.
/// A broken archive is reported as an error line in the stream (status 200), as dockerd does:
/// docker-py's `ImageLoadError` depends on it.
pub async fn load(ctx: &Ctx, req: Request<Incoming>) -> ApiResult {
    let quiet = ctx.q.bool("quiet");
    let file = spool(req.into_body(), ctx.d.images.tmp_dir(), "load").await?;
    let (tx, body) = super::body::channel();
    let images = ctx.d.images.clone();
    tokio::task::spawn_blocking(move || {
        let send = |v: serde_json::Value| {
            let _ = tx.blocking_send(message_line(v));
        };
        let result = images.load_archive(&file.0, &|p| match p {
            LoadProgress::Layer { diff_id, existed, .. } if !quiet => send(json!({
                "status": if existed { "Already exists" } else { "Loading layer" },
                "id": &diff_id.hex()[..12],
            })),
            LoadProgress::Layer { .. } => {}
            LoadProgress::Loaded { id, tags } => {
                if tags.is_empty() {
                    send(json!({"stream": format!("Loaded image ID: {id}\n")}));
                }
                for t in tags {
                    send(json!({"stream": format!("Loaded image: {}\n", t.familiar())}));
                }
            }
        });
        if let Err(e) = result {
            tracing::warn!("load failed: {e:#}");
            let _ = tx.blocking_send(error_line(&e));
        }
        drop(file);
    });
    Ok(hyper::Response::builder().header("Content-Type", "application/json").body(body).unwrap())
}

/// `docker login`: checks the credentials against the registry (`GET /v2/`).
pub async fn auth(ctx: &Ctx, req: Request<Incoming>) -> ApiResult {
    let body: serde_json::Value = super::query::read_json(req.into_body()).await?;
    let username = body["username"].as_str().unwrap_or("").to_string();
    let password = body["password"].as_str().unwrap_or("").to_string();
    let server = body["serveraddress"].as_str().unwrap_or("").to_string();
    if username.is_empty() || server.is_empty() {
        return Err(ApiError::bad_request("username and serveraddress are required"));
    }
    let host = super::registry_headers::server_host(&server);
    let host = if host == "index.docker.io" || host == "docker.io" { "registry-1.docker.io".to_string() } else { host };
    let insecure =
        berth_images::registry::is_loopback_host(&host) && !server.starts_with("https://") || ctx.d.cfg.insecure_registries.contains(&host);
    let reg = crate::images::transport::Registry::new(
        &host,
        insecure,
        Some(&ctx.d.cfg.registry_certs_dir),
        Some(Credentials { username, password }),
    )?;
    match reg.get("/v2/", &[]).await {
        Ok(_) => json(&json!({"Status": "Login Succeeded", "IdentityToken": ""})),
        Err(e) if format!("{e:#}").contains("unauthorized") => {
            Err(ApiError::new(hyper::StatusCode::UNAUTHORIZED, format!("login attempt to {host} failed: {e:#}")))
        }
        Err(e) => Err(ApiError::new(hyper::StatusCode::INTERNAL_SERVER_ERROR, format!("login attempt to {host} failed: {e:#}"))),
    }
}

/// `docker search`: `term` (`host[:port]/text` searches that registry's catalog), `limit`
/// (1 to 100, 25 when left out), `filters` (`stars`, `is-official`, `is-automated`).
pub async fn search(ctx: &Ctx, headers: &hyper::HeaderMap) -> ApiResult {
    use crate::images::search::{SearchFilters, SearchOptions};
    let term = ctx.q.get("term").filter(|t| !t.trim().is_empty()).ok_or_else(|| ApiError::bad_request("term is required"))?;
    let limit = ctx.q.int("limit")?.unwrap_or(25);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit {limit} is outside the range of [1, 100]")));
    }
    let mut filters = SearchFilters::default();
    for (key, values) in ctx.q.filters()? {
        let Some(v) = values.last() else { continue };
        let flag = || match v.as_str() {
            "true" | "1" => Ok(Some(true)),
            "false" | "0" => Ok(Some(false)),
            _ => Err(ApiError::bad_request(format!("invalid filter '{key}={v}'"))),
        };
        match key.as_str() {
            "stars" => filters.stars = v.parse().map_err(|_| ApiError::bad_request(format!("invalid filter 'stars={v}'")))?,
            "is-official" => filters.is_official = flag()?,
            "is-automated" => filters.is_automated = flag()?,
            other => return Err(ApiError::bad_request(format!("invalid filter '{other}'"))),
        }
    }
    let opts = SearchOptions {
        limit: limit as usize,
        filters,
        insecure: &ctx.d.cfg.insecure_registries,
        certs_dir: &ctx.d.cfg.registry_certs_dir,
        credentials: registry_auth(headers)?,
    };
    match crate::images::search::search(term, &opts).await {
        Ok(found) => json(&found),
        // The registry's fault or the network's: the daemon could not ask it.
        Err(e) => Err(ApiError::new(StatusCode::BAD_GATEWAY, format!("{e:#}"))),
    }
}

/// `docker pull`: answered at once with a stream of Docker's progress lines.
fn pull(ctx: &Ctx, image: &str, credentials: Option<Credentials>) -> ApiResult {
    let reference: Reference = match ctx.q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) if t.starts_with("sha256:") => format!("{image}@{t}").parse(),
        Some(t) => Reference::with_tag(image, t),
        None => image.parse(),
    }
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let platform = match ctx.q.get("platform").filter(|p| !p.is_empty()) {
        Some(p) => Some(p.parse().map_err(ApiError::bad_request)?),
        None => None,
    };
    let opts = crate::images::PullOptions::new(&ctx.d.cfg, platform, credentials);
    let images = ctx.d.images.clone();
    Ok(progress_stream(format!("pull of {}", reference.familiar()), move |progress| async move {
        images.pull(&reference, &opts, &progress).await.map(drop)
    }))
}

/// Answers at once with Docker's JSON progress stream, fed by `op`; a failure ends the stream
/// with an `errorDetail` line, as dockerd does once it has started streaming.
fn progress_stream<F, Fut>(what: String, op: F) -> super::body::Response
where
    F: FnOnce(crate::images::Progress) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let (tx, body) = super::body::channel();
    tokio::spawn(async move {
        if let Err(e) = op(crate::images::Progress(tx.clone())).await {
            tracing::warn!("{what} failed: {e:#}");
            let _ = tx.send(error_line(&e)).await;
        }
    });
    hyper::Response::builder().header("Content-Type", "application/json").body(body).unwrap()
}

fn error_line(e: &anyhow::Error) -> Bytes {
    let msg = format!("{e:#}");
    message_line(json!({"errorDetail": {"message": msg}, "error": msg}))
}

/// `docker push`: `POST /images/{name}/push?tag=`, answered with Docker's progress stream;
/// a failure ends it with an `errorDetail` line.
pub fn push(ctx: &Ctx, name: &str, req: &Request<Incoming>) -> ApiResult {
    let reference = match ctx.q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => Reference::with_tag(name, t),
        None => name.parse(),
    }
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    // The image must exist before anything streams (Docker: 404 "No such image").
    ctx.d.images.resolve(&reference.to_string())?;
    let opts = crate::images::PushOptions {
        insecure: ctx.d.cfg.insecure_registries.clone(),
        certs_dir: Some(ctx.d.cfg.registry_certs_dir.clone()),
        credentials: registry_auth(req.headers())?,
    };
    let images = ctx.d.images.clone();
    Ok(progress_stream(format!("push of {}", reference.familiar()), move |progress| async move {
        images.push(&reference, &opts, &progress).await.map(drop)
    }))
}

/// `POST /images/create`: `fromSrc` imports a root filesystem tar; `fromImage` (pull)
/// comes with the registry work.
pub async fn create(ctx: &Ctx, req: Request<Incoming>) -> ApiResult {
    if let Some(image) = ctx.q.get("fromImage").filter(|s| !s.is_empty()) {
        let credentials = registry_auth(req.headers())?;
        return pull(ctx, image, credentials);
    }
    let src = ctx.q.get("fromSrc").unwrap_or("");
    if src != "-" {
        return Err(if src.is_empty() {
            ApiError::bad_request("fromImage or fromSrc is required")
        } else {
            ApiError::not_implemented(format!("importing from a URL ({src})"))
        });
    }
    let tag = match ctx.q.get("repo").filter(|r| !r.is_empty()) {
        None => None,
        Some(repo) => {
            let r = match ctx.q.get("tag").filter(|t| !t.is_empty()) {
                Some(t) => Reference::with_tag(repo, t),
                None => repo.parse(),
            };
            Some(r.map_err(|e| ApiError::bad_request(e.to_string()))?)
        }
    };
    let changes: Vec<String> = ctx.q.all("changes").to_vec();
    let mut probe = berth_images::config::RunConfig::default();
    crate::images::apply_changes(&mut probe, &changes).map_err(|e| ApiError::bad_request(format!("{e:#}")))?;
    let message = ctx.q.get("message").unwrap_or("").to_string();
    let file = spool(req.into_body(), ctx.d.images.tmp_dir(), "import").await?;
    let images = ctx.d.images.clone();
    let id = tokio::task::spawn_blocking(move || images.import_rootfs(&file.0, tag, &message, &changes))
        .await
        .map_err(anyhow::Error::from)?
        .map_err(|e| ApiError::bad_request(format!("import failed: {e:#}")))?;
    Ok(hyper::Response::builder()
        .header("Content-Type", "application/json")
        .body(super::body::full(message_line(json!({"status": id.to_string()}))))
        .unwrap())
}
