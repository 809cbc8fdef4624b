//! Request routing, and the serve loop that takes its shutdown as an argument.

use super::body::{full, Response};
use super::error::{ApiError, ApiResult};
use super::limits::{self, Limits};
use super::listen::{Listener, Peer};
use super::query::{percent_decode, Query};
use super::{containers, exec, images, networks, system, volumes};
use crate::daemon::Daemon;
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Compares "1.41" with "1.45".
fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let parse = |s: &str| s.split('.').map(|p| p.parse::<u32>().unwrap_or(0)).collect::<Vec<_>>();
    parse(a).cmp(&parse(b))
}

/// Splits `/v1.45/containers/x/json` into the version and the rest.
fn strip_version(path: &str) -> (Option<&str>, &str) {
    if let Some(rest) = path.strip_prefix("/v") {
        if let Some((v, tail)) = rest.split_once('/') {
            if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                return (Some(v), tail);
            }
        }
    }
    (None, path.trim_start_matches('/'))
}

/// Everything a handler gets.
pub struct Ctx {
    pub d: Arc<Daemon>,
    pub q: Query,
    pub version: String,
}

/// Requests that may change something: what the audit trail records.
fn mutating(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

async fn route(d: Arc<Daemon>, peer: &Peer, limits: &Limits, req: Request<Incoming>) -> Response {
    let method = req.method().clone();
    let raw_path = req.uri().path().to_string();
    let (version, path) = strip_version(&raw_path);
    let version = version.unwrap_or(crate::API_VERSION).to_string();
    if version_cmp(&version, crate::API_VERSION).is_gt() {
        return ApiError::bad_request(format!(
            "client version {version} is too new. Maximum supported API version is {}",
            crate::API_VERSION
        ))
        .into_response();
    }
    if version_cmp(&version, crate::MIN_API_VERSION).is_lt() {
        return ApiError::bad_request(format!(
            "client version {version} is too old. Minimum supported API version is {}, please upgrade your client to a newer version",
            crate::MIN_API_VERSION
        ))
        .into_response();
    }
    let segs: Vec<String> = path.split('/').map(|s| percent_decode(s, false)).collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let ctx = Ctx { d, q: Query::parse(req.uri().query()), version };
    tracing::debug!(%method, path = %raw_path, "request");
    // An internal error names the request it failed, for whoever reads the daemon's log.
    let answer = |e: ApiError| {
        if e.status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(%method, path = %raw_path, "request failed: {}", e.message);
        }
        e.into_response()
    };
    let Peer::Remote { addr, role, subject, .. } = peer else {
        return finish(dispatch(&ctx, &method, &segs, req).await.unwrap_or_else(answer));
    };
    let resp = if !limits.allow(&format!("{subject} {}", addr.ip())) {
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, format!("too many requests from {subject}: slow down")).into_response()
    } else if peer.allows(&method, &segs) {
        dispatch(&ctx, &method, &segs, req).await.unwrap_or_else(answer)
    } else {
        tracing::warn!(%addr, %subject, role = role.name(), %method, path = %raw_path, "denied");
        ApiError::new(StatusCode::FORBIDDEN, format!("{method} {raw_path} is not allowed for the {} role of {subject}", role.name()))
            .into_response()
    };
    if mutating(&method) {
        let entry = crate::audit::Entry {
            seq: 0,
            at: crate::util::time::now(),
            subject: subject.clone(),
            role: role.name().into(),
            addr: addr.to_string(),
            method: method.to_string(),
            path: raw_path.clone(),
            status: resp.status().as_u16(),
        };
        // On record before the answer leaves; a change that cannot be recorded is not
        // acknowledged as done.
        let d = ctx.d.clone();
        let event = crate::events::Event::new("daemon", "audit", ctx.d.id.clone())
            .attr("subject", entry.subject.clone())
            .attr("role", entry.role.clone())
            .attr("request", format!("{} {}", entry.method, entry.path))
            .attr("status", entry.status.to_string());
        let written = tokio::task::spawn_blocking(move || d.audit.append(entry)).await;
        if let Err(e) = written.map_err(anyhow::Error::from).and_then(|r| r) {
            tracing::error!("writing the audit trail: {e:#}");
            return finish(ApiError::from(e.context("the request ran but could not be recorded in the audit trail")).into_response());
        }
        ctx.d.events.emit(event);
    }
    finish(resp)
}

fn finish(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert("Api-Version", hyper::header::HeaderValue::from_static(crate::API_VERSION));
    h.insert("Server", hyper::header::HeaderValue::from_static(concat!("berth/", env!("CARGO_PKG_VERSION"))));
    resp
}

async fn dispatch(ctx: &Ctx, method: &Method, segs: &[&str], req: Request<Incoming>) -> ApiResult {
    use Method as M;
    match (method, segs) {
        (&M::GET | &M::HEAD, ["_ping"]) => Ok(system::ping(method == M::HEAD)),
        (&M::GET, ["version"]) => system::version(ctx),
        (&M::GET, ["info"]) => system::info(ctx).await,

        (&M::POST, ["containers", "create"]) => containers::create(ctx, req).await,
        (&M::POST, ["containers", "prune"]) => containers::prune(ctx).await,
        (&M::GET, ["containers", "json"]) => containers::list(ctx),
        (&M::GET, ["containers", id, "json"]) => containers::inspect(ctx, id),
        (&M::POST, ["containers", id, "start"]) => containers::start(ctx, id).await,
        (&M::POST, ["containers", id, "stop"]) => containers::stop(ctx, id).await,
        (&M::POST, ["containers", id, "restart"]) => containers::restart(ctx, id).await,
        (&M::POST, ["containers", id, "kill"]) => containers::kill(ctx, id).await,
        (&M::POST, ["containers", id, "wait"]) => containers::wait(ctx, id),
        (&M::POST, ["containers", id, "rename"]) => containers::rename(ctx, id),
        (&M::DELETE, ["containers", id]) => containers::remove(ctx, id).await,
        (&M::GET, ["containers", id, "changes"]) => containers::changes(ctx, id).await,
        (&M::GET, ["containers", id, "export"]) => containers::export(ctx, id).await,
        (&M::POST, ["commit"]) => containers::commit(ctx, req).await,
        (&M::POST, ["build"]) => super::build::build(ctx, req).await,
        (&M::POST, ["build", "prune"]) => super::build::prune(ctx).await,
        (&M::GET, ["containers", id, "logs"]) => super::streams::logs(ctx, id).await,
        (&M::POST, ["containers", id, "attach"]) => super::streams::attach(ctx, id, req),
        (&M::POST, ["containers", id, "resize"]) => super::streams::resize(ctx, id).await,
        (&M::POST, ["containers", id, "pause"]) => containers::pause(ctx, id).await,
        (&M::POST, ["containers", id, "unpause"]) => containers::unpause(ctx, id).await,
        (&M::GET, ["containers", id, "top"]) => containers::top(ctx, id).await,
        (&M::GET, ["containers", id, "stats"]) => super::stats::stats(ctx, id).await,
        (&M::POST, ["containers", id, "update"]) => containers::update(ctx, id, req).await,
        (&M::HEAD, ["containers", id, "archive"]) => containers::archive_head(ctx, id).await,
        (&M::GET, ["containers", id, "archive"]) => containers::archive_get(ctx, id).await,
        (&M::PUT, ["containers", id, "archive"]) => containers::archive_put(ctx, id, req).await,

        (&M::POST, ["containers", id, "exec"]) => exec::create(ctx, id, req).await,
        (&M::POST, ["exec", id, "start"]) => exec::start(ctx, id, req).await,
        (&M::GET, ["exec", id, "json"]) => exec::inspect(ctx, id),
        (&M::POST, ["exec", id, "resize"]) => exec::resize(ctx, id),

        (&M::GET, ["images", "json"]) => images::list(ctx),
        (&M::GET, ["images", "search"]) => images::search(ctx, req.headers()).await,
        (&M::POST, ["images", "load"]) => images::load(ctx, req).await,
        (&M::POST, ["images", "create"]) => images::create(ctx, req).await,
        (&M::POST, ["images", "prune"]) => images::prune(ctx),
        (&M::POST, ["auth"]) => images::auth(ctx, req).await,
        (&M::GET, ["images", "get"]) => images::save(ctx, ctx.q.all("names").to_vec()),
        (&M::GET, ["images", name @ .., "get"]) if !name.is_empty() => images::save(ctx, vec![name.join("/")]),
        (&M::GET, ["system", "df"]) => system::df(ctx),
        (&M::GET, ["events"]) => super::events::events(ctx),
        (&M::POST, ["berth", "bundles"]) => super::bundles::install(ctx, req).await,
        (&M::GET, ["berth", "bundles"]) => super::bundles::status(ctx),
        (&M::GET, ["system", "audit"]) => {
            let since = ctx.q.int("since")?.unwrap_or(0).max(0) as u64;
            json(&ctx.d.audit.list(since)?)
        }
        (&M::GET, ["images", name @ .., "json"]) if !name.is_empty() => images::inspect(ctx, &name.join("/")),
        (&M::GET, ["images", name @ .., "history"]) if !name.is_empty() => images::history(ctx, &name.join("/")),
        (&M::POST, ["images", name @ .., "tag"]) if !name.is_empty() => images::tag(ctx, &name.join("/")),
        (&M::POST, ["images", name @ .., "push"]) if !name.is_empty() => images::push(ctx, &name.join("/"), &req),
        (&M::DELETE, ["images", name @ ..]) if !name.is_empty() => images::remove(ctx, &name.join("/")),

        (&M::GET, ["networks"]) => networks::list(ctx),
        (&M::POST, ["networks", "create"]) => networks::create(ctx, req).await,
        (&M::POST, ["networks", "prune"]) => networks::prune(ctx).await,
        (&M::GET, ["networks", id]) => networks::inspect(ctx, id),
        (&M::DELETE, ["networks", id]) => networks::remove(ctx, id).await,
        (&M::POST, ["networks", id, "connect"]) => networks::connect(ctx, id, req).await,
        (&M::POST, ["networks", id, "disconnect"]) => networks::disconnect(ctx, id, req).await,
        (&M::GET, ["volumes"]) => volumes::list(ctx),
        (&M::POST, ["volumes", "create"]) => volumes::create(ctx, req).await,
        (&M::POST, ["volumes", "prune"]) => volumes::prune(ctx).await,
        (&M::GET, ["volumes", name]) => volumes::inspect(ctx, name),
        (&M::DELETE, ["volumes", name]) => volumes::remove(ctx, name).await,
        (&M::GET, ["plugins", name, "json"]) => Err(ApiError::new(StatusCode::NOT_FOUND, format!("plugin \"{name}\" not found"))),

        // docker-py's network tests leave swarm mode in teardown; Docker answers 503 when
        // the node is not part of a swarm, and clients treat that as "nothing to leave".
        (_, ["swarm", ..] | ["nodes", ..] | ["services", ..] | ["tasks", ..] | ["secrets", ..] | ["configs", ..]) => {
            Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "This node is not a swarm manager. berth does not support swarm mode."))
        }
        (
            _,
            ["containers", ..]
            | ["images", ..]
            | ["networks", ..]
            | ["volumes", ..]
            | ["exec", ..]
            | ["build", ..]
            | ["commit", ..]
            | ["auth", ..]
            | ["events", ..]
            | ["system", ..]
            | ["session", ..]
            | ["distribution", ..]
            | ["plugins", ..]
            | ["grpc", ..],
        ) => Err(ApiError::not_implemented(format!("{method} /{}", segs.join("/")))),
        _ => Err(ApiError::new(StatusCode::NOT_FOUND, "page not found")),
    }
}

/// JSON response with status 200.
pub fn json(value: &impl serde::Serialize) -> ApiResult {
    json_status(StatusCode::OK, value)
}

pub fn json_status(status: StatusCode, value: &impl serde::Serialize) -> ApiResult {
    let body = serde_json::to_vec(value).map_err(anyhow::Error::from)?;
    Ok(hyper::Response::builder().status(status).header("Content-Type", "application/json").body(full(body)).unwrap())
}

pub fn no_content() -> ApiResult {
    Ok(hyper::Response::builder().status(StatusCode::NO_CONTENT).body(super::body::empty()).unwrap())
}

/// Serves every listener until `shutdown` resolves, then gives open requests a moment to
/// finish. Containers are not touched: they belong to their monitors.
pub async fn serve(d: Arc<Daemon>, listeners: Vec<Listener>, shutdown: impl Future<Output = ()>) {
    let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let limits = Arc::new(Limits::default());
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(1);
    for l in listeners {
        let d = d.clone();
        let limits = limits.clone();
        let mut stop = stop_tx.subscribe();
        let done = done_tx.clone();
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    _ = stop.recv() => break,
                    s = l.accept() => s,
                };
                let accepted = match stream {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let d = d.clone();
                let done = done.clone();
                let limits = limits.clone();
                tokio::spawn(async move {
                    let remote = accepted.is_remote();
                    let established = if remote {
                        let mut waiting = limits.pending();
                        tokio::select! {
                            r = accepted.establish() => r,
                            _ = &mut waiting.evicted => Err(anyhow::anyhow!("dropped before its handshake: too many connections waiting")),
                        }
                    } else {
                        accepted.establish().await
                    };
                    let (stream, peer) = match established {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::warn!("connection refused: {e:#}");
                            return;
                        }
                    };
                    // Held for the connection's life: hijacked streams count too.
                    let _place = match remote {
                        false => None,
                        true => match limits.establish() {
                            Some(p) => Some(p),
                            None => {
                                tracing::warn!("connection refused: {} remote connections are being served", limits::MAX_ESTABLISHED);
                                return;
                            }
                        },
                    };
                    let peer = Arc::new(peer);
                    let limits2 = limits.clone();
                    let svc = hyper::service::service_fn(move |req| {
                        let (d, peer, limits) = (d.clone(), peer.clone(), limits2.clone());
                        async move { Ok::<_, std::convert::Infallible>(route(d, &peer, &limits, req).await) }
                    });
                    let header_timeout = if remote { limits::REMOTE_HEADER_TIMEOUT } else { Duration::from_secs(30) };
                    let conn = hyper::server::conn::http1::Builder::new()
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(header_timeout)
                        .max_buf_size(limits::MAX_HEADER_BYTES)
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades();
                    if let Err(e) = conn.await {
                        tracing::debug!("connection ended: {e}");
                    }
                    drop(done);
                });
            }
        });
    }
    drop(done_tx);
    shutdown.await;
    tracing::info!("shutting down: no new connections; containers keep running");
    let _ = stop_tx.send(());
    // Followers (logs -f, attach) may stay open for as long as their container runs: wait
    // a little for the rest, not for them.
    let _ = tokio::time::timeout(Duration::from_secs(2), done_rx.recv()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_versions() {
        assert_eq!(strip_version("/v1.45/containers/json"), (Some("1.45"), "containers/json"));
        assert_eq!(strip_version("/containers/json"), (None, "containers/json"));
        assert_eq!(strip_version("/version"), (None, "version"));
        assert!(version_cmp("1.9", "1.45").is_lt());
        assert!(version_cmp("1.50", "1.45").is_gt());
    }
}
