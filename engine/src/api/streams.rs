//! `logs` and `attach`: the container's output as Docker's multiplexed stream.
//!
//! Both read the json-file log the monitor writes. `logs` starts from what exists (with
//! `tail`/`since`/`until`) and, with `follow`, keeps going while the container runs. `attach`
//! starts at the current end of the log and lasts until the container's next exit; it
//! hijacks the connection (101 Upgrade) as the Docker CLI expects.

use super::body::mux_frame;
use super::error::{ApiError, ApiResult};
use super::router::Ctx;
use crate::containers::RunState;
use crate::logs::reader::{read_existing, Filter, Follower};
use crate::logs::Entry;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};

/// How often a follower looks for new lines while the container runs (exits wake it at once).
const POLL: Duration = Duration::from_millis(50);

fn frame(e: &Entry, timestamps: bool) -> Bytes {
    let stream = if e.stream == "stderr" { 2 } else { 1 };
    if timestamps {
        mux_frame(stream, format!("{} {}", e.time, e.log).as_bytes())
    } else {
        mux_frame(stream, e.log.as_bytes())
    }
}

fn content_type(version: &str) -> &'static str {
    // API 1.42 introduced the explicit multiplexed content type.
    let v: Vec<u32> = version.split('.').map(|p| p.parse().unwrap_or(0)).collect();
    if v >= vec![1, 42] {
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
    timestamps: bool,
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
                batch.push(frame(&e, timestamps));
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
    let timestamps = q.bool("timestamps");
    let follow_on = q.bool("follow");
    let c = entry.get();
    let rx = entry.subscribe();
    let (tx, body) = super::body::channel();
    let f2 = filter.clone();
    tokio::spawn(async move {
        // Frames go out as they are read (the channel is bounded): a large log is streamed,
        // never held in memory.
        let tx2 = tx.clone();
        let existing = tokio::task::spawn_blocking(move || {
            read_existing(&c.log_path, c.log_limits.max_file, &f2, tail, &mut |e| {
                let _ = tx2.blocking_send(frame(&e, timestamps));
            })
        })
        .await;
        let Ok(follower) = existing else { return };
        if follow_on && filter.until.is_none() {
            if let Ok(f) = follower {
                follow(f, filter, timestamps, rx, |s| !s.running, tx).await;
            }
        }
    });
    Ok(hyper::Response::builder().header("Content-Type", content_type(&ctx.version)).body(body).unwrap())
}

fn point(s: &str) -> ApiResult<i128> {
    crate::util::time::parse_point(s, ::time::OffsetDateTime::now_utc())
        .ok_or_else(|| ApiError::bad_request(format!("invalid time value {s:?}")))
}

pub fn attach(ctx: &Ctx, name: &str, req: Request<Incoming>) -> ApiResult {
    let entry = ctx.d.containers.lookup(name)?;
    let upgrade = req.headers().get(hyper::header::UPGRADE).is_some();
    if !upgrade {
        return Err(ApiError::bad_request("attach needs a hijacked connection (Connection: Upgrade, Upgrade: tcp)"));
    }
    if ctx.q.bool("stdin") && !entry.get().config.open_stdin {
        tracing::debug!("attach: stdin requested for a container without OpenStdin; ignored");
    }
    let filter = Filter { stdout: ctx.q.bool("stdout"), stderr: ctx.q.bool("stderr"), since: None, until: None };
    let logs_only = ctx.q.bool("logs") && !ctx.q.bool("stream");
    if logs_only {
        return Err(ApiError::not_implemented("attach with logs=1 and stream=0"));
    }
    let c = entry.get();
    let follower = Follower::at_end(&c.log_path);
    let rx = entry.subscribe();
    let exits_at_attach = rx.borrow().exits;
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!("attach upgrade failed: {e}");
                return;
            }
        };
        let mut io = TokioIo::new(upgraded);
        let (tx, mut rx_frames) = mpsc::channel::<Bytes>(16);
        let pump = tokio::spawn(follow(follower, filter, false, rx, move |s| s.exits > exits_at_attach || s.removed, tx));
        while let Some(b) = rx_frames.recv().await {
            if io.write_all(&b).await.is_err() {
                break;
            }
        }
        let _ = io.flush().await;
        let _ = io.shutdown().await;
        pump.abort();
    });
    Ok(hyper::Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("Content-Type", content_type(&ctx.version))
        .header("Connection", "Upgrade")
        .header("Upgrade", "tcp")
        .body(super::body::empty())
        .unwrap())
}
