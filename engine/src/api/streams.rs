//! `logs` and `attach`: the container's output as Docker's multiplexed stream.
//!
//! Both read the json-file log the monitor writes. `logs` starts from what exists (with
//! `tail`/`since`/`until`) and, with `follow`, keeps going while the container runs. `attach`
//! starts at the current end of the log and lasts until the container's next exit; it
//! hijacks the connection (101 Upgrade) as the Docker CLI expects.

use super::body::mux_frame;
use super::error::{ApiError, ApiResult};
use super::hijack::{parse_detach_keys, relay, switching_protocols, Input};
use super::router::Ctx;
use crate::containers::RunState;
use crate::logs::reader::{read_existing, Filter, Follower};
use crate::logs::Entry;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// How often a follower looks for new lines while the container runs (exits wake it at once).
const POLL: Duration = Duration::from_millis(50);

/// How records go out: multiplexed frames, or raw bytes for a container with a TTY (its
/// output is one stream, as Docker sends it).
#[derive(Clone, Copy)]
struct Framing {
    timestamps: bool,
    raw: bool,
}

impl Framing {
    fn frame(self, e: &Entry) -> Bytes {
        let stream = if e.stream == "stderr" { 2 } else { 1 };
        let text = if self.timestamps { format!("{} {}", e.time, e.log) } else { e.log.clone() };
        if self.raw {
            Bytes::from(text)
        } else {
            mux_frame(stream, text.as_bytes())
        }
    }
}

/// The stream's content type: raw bytes, or multiplexed frames (API 1.42 named those
/// explicitly; older clients expect the raw-stream name for both).
pub(super) fn content_type(version: &str, raw: bool) -> &'static str {
    let v: Vec<u32> = version.split('.').map(|p| p.parse().unwrap_or(0)).collect();
    if !raw && v >= vec![1, 42] {
        "application/vnd.docker.multiplexed-stream"
    } else {
        "application/vnd.docker.raw-stream"
    }
}

/// Sends new records until `done` holds (checked before each read, so the records written
/// before the exit are always sent) or the client goes away.
async fn follow(
    mut f: Follower,
    filter: Filter,
    framing: Framing,
    mut rx: watch::Receiver<RunState>,
    done: impl Fn(&RunState) -> bool,
    tx: mpsc::Sender<Bytes>,
) {
    let mut gone = false;
    loop {
        let finished = gone || {
            let s = rx.borrow_and_update();
            done(&s)
        };
        let mut batch = Vec::new();
        if let Err(e) = f.read_new(&mut |e| {
            if filter.accepts(&e) {
                batch.push(framing.frame(&e));
            }
        }) {
            tracing::warn!("reading log: {e}");
            return;
        }
        for b in batch {
            if tx.send(b).await.is_err() {
                return;
            }
        }
        if finished {
            return;
        }
        tokio::select! {
            r = rx.changed() => gone = r.is_err(),
            _ = tokio::time::sleep(POLL) => {},
            _ = tx.closed() => return,
        }
    }
}

/// When following stops: the container's run state, and the test for "done" on it.
type FollowUntil = (watch::Receiver<RunState>, Box<dyn Fn(&RunState) -> bool + Send>);

/// Sends the log's existing records (the last `tail`), then with `follow` the new ones until
/// `done`. The live part starts exactly where the existing part ended. Frames go out as they
/// are read (the channel is bounded): a large log is streamed, never held in memory.
async fn existing_then_follow(
    c: crate::containers::model::Container,
    filter: Filter,
    tail: Option<usize>,
    framing: Framing,
    follow_until: Option<FollowUntil>,
    tx: mpsc::Sender<Bytes>,
) {
    let (tx2, f2) = (tx.clone(), filter.clone());
    let existing = tokio::task::spawn_blocking(move || {
        read_existing(&c.log_path, c.log_limits.max_file, &f2, tail, &mut |e| {
            let _ = tx2.blocking_send(framing.frame(&e));
        })
    })
    .await;
    if let (Ok(Ok(follower)), Some((rx, done))) = (existing, follow_until) {
        follow(follower, filter, framing, rx, done, tx).await;
    }
}

pub async fn logs(ctx: &Ctx, name: &str) -> ApiResult {
    let entry = ctx.d.containers.lookup(name)?;
    let q = &ctx.q;
    let filter = Filter {
        stdout: q.bool("stdout"),
        stderr: q.bool("stderr"),
        since: q.get("since").filter(|s| !s.is_empty() && *s != "0").map(point).transpose()?,
        until: q.get("until").filter(|s| !s.is_empty() && *s != "0").map(point).transpose()?,
    };
    if !filter.stdout && !filter.stderr {
        return Err(ApiError::bad_request("Bad parameters: you must choose at least one stream"));
    }
    let tail = match q.get("tail").unwrap_or("all") {
        "all" | "" => None,
        n => Some(n.parse::<i64>().map_err(|_| ApiError::bad_request(format!("invalid tail {n:?}")))?)
            .filter(|n| *n >= 0)
            .map(|n| n as usize),
    };
    let follow_on = q.bool("follow");
    let c = entry.get();
    if c.log_driver() == "none" {
        return Err(ApiError::new(hyper::StatusCode::NOT_IMPLEMENTED, "configured logging driver does not support reading"));
    }
    let framing = Framing { timestamps: q.bool("timestamps"), raw: c.config.tty };
    let follow_until: Option<FollowUntil> =
        (follow_on && filter.until.is_none()).then(|| (entry.subscribe(), Box::new(|s: &RunState| !s.running) as _));
    let (tx, body) = super::body::channel();
    tokio::spawn(existing_then_follow(c, filter, tail, framing, follow_until, tx));
    Ok(hyper::Response::builder().header("Content-Type", content_type(&ctx.version, framing.raw)).body(body).unwrap())
}

fn point(s: &str) -> ApiResult<i128> {
    crate::util::time::parse_point(s, ::time::OffsetDateTime::now_utc())
        .ok_or_else(|| ApiError::bad_request(format!("invalid time value {s:?}")))
}

/// `POST /containers/{id}/attach`: past output with `logs`, live output with `stream`
/// (until the container's next exit), stdin with `stdin` for a container made with
/// `OpenStdin` (through its monitor, once it runs).
pub fn attach(ctx: &Ctx, name: &str, req: Request<Incoming>) -> ApiResult {
    let entry = ctx.d.containers.lookup(name)?;
    if req.headers().get(hyper::header::UPGRADE).is_none() {
        return Err(ApiError::bad_request("attach needs a hijacked connection (Connection: Upgrade, Upgrade: tcp)"));
    }
    let c = entry.get();
    let keys = parse_detach_keys(ctx.q.get("detachKeys").unwrap_or(""))?;
    let filter = Filter { stdout: ctx.q.bool("stdout"), stderr: ctx.q.bool("stderr"), since: None, until: None };
    let (logs, stream) = (ctx.q.bool("logs"), ctx.q.bool("stream"));
    let framing = Framing { timestamps: false, raw: c.config.tty };
    let rx = entry.subscribe();
    let (exits_at_attach, starts_at_attach) = {
        let s = rx.borrow();
        (s.exits, s.starts)
    };
    // Without the past, the live part starts now, before the client could miss anything.
    let follower = (!logs).then(|| Follower::at_end(&c.log_path));
    let socket = ctx.d.containers.control_socket(&c.id);
    let with_stdin = ctx.q.bool("stdin") && c.config.open_stdin && stream;
    let mut stdin_rx = rx.clone();
    let input = async move {
        if !with_stdin {
            return None;
        }
        // A container attached before its start (`docker run`, `start -a`) gets its stdin
        // once its monitor is up.
        let up = stdin_rx.wait_for(|s| s.removed || s.running || s.starts > starts_at_attach).await.map(|s| !s.removed).unwrap_or(false);
        if !up {
            return None;
        }
        match crate::monitor::client::stdin(&socket).await {
            Ok(s) => Some(Box::pin(s) as Input),
            Err(e) => {
                tracing::debug!("attach: no stdin: {e:#}");
                None
            }
        }
    };
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!("attach upgrade failed: {e}");
                return;
            }
        };
        let io = TokioIo::new(upgraded);
        let (tx, mut rx_frames) = mpsc::channel::<Bytes>(16);
        let done: Box<dyn Fn(&RunState) -> bool + Send> = Box::new(move |s| s.exits > exits_at_attach || s.removed);
        let pump = tokio::spawn(async move {
            match follower {
                None => existing_then_follow(c, filter, None, framing, stream.then_some((rx, done)), tx).await,
                Some(f) if stream => follow(f, filter, framing, rx, done, tx).await,
                Some(_) => {}
            }
        });
        relay(io, &mut rx_frames, input, keys).await;
        pump.abort();
    });
    Ok(switching_protocols(content_type(&ctx.version, framing.raw)))
}

/// `POST /containers/{id}/resize`: the terminal of a running container with a TTY.
pub async fn resize(ctx: &Ctx, name: &str) -> ApiResult {
    let c = ctx.d.containers.lookup(name)?.get();
    let size = super::hijack::terminal_size(ctx)?;
    if !c.state.is_running() {
        return Err(ApiError::new(StatusCode::CONFLICT, format!("Container {} is not running", c.id)));
    }
    if !c.config.tty {
        return Err(ApiError::new(StatusCode::CONFLICT, format!("Container {} has no TTY", c.id)));
    }
    crate::monitor::client::resize(&ctx.d.containers.control_socket(&c.id), size.rows, size.cols)
        .await
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, format!("resizing container {}: {e:#}", c.id)))?;
    super::router::json(&serde_json::json!({}))
}
