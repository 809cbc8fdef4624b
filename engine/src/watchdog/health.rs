//! The daemon's heartbeat: `WATCHDOG=1` is sent only after a real self-check, so a daemon
//! whose API loop or state store is stuck stops beating and gets restarted.
//!
//! The check: a `GET /_ping` through the daemon's own unix socket (the accept loop, the
//! router and the runtime all answer), then a write transaction on the state store (its
//! writer lock is free). The write is not made durable (no fsync): beating every few seconds
//! must not wear a device's flash; it proves the store takes commits, and is flushed with the
//! next durable one.

use super::notify::Notifier;
use crate::daemon::Daemon;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long one self-check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

fn own_socket(d: &Daemon) -> Option<PathBuf> {
    d.cfg.hosts.iter().find_map(|h| h.strip_prefix("unix://").map(PathBuf::from))
}

async fn ping(path: &PathBuf) -> Result<()> {
    let mut s = tokio::net::UnixStream::connect(path).await.with_context(|| format!("connecting to {}", path.display()))?;
    s.write_all(b"GET /_ping HTTP/1.1\r\nHost: berth\r\nConnection: close\r\n\r\n").await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    if !buf.starts_with(b"HTTP/1.1 200") {
        bail!("the API answered {:?}", String::from_utf8_lossy(&buf[..buf.len().min(40)]));
    }
    Ok(())
}

/// One self-check.
pub async fn check(d: &Arc<Daemon>) -> Result<()> {
    if let Some(path) = own_socket(d) {
        ping(&path).await.context("the API does not answer")?;
    }
    let store = d.store.clone();
    tokio::task::spawn_blocking(move || store.heartbeat()).await?.context("the state store takes no commits")?;
    Ok(())
}

/// Tells the supervisor (or systemd) the daemon is ready, then beats while healthy.
pub fn start(d: Arc<Daemon>, notifier: Option<Notifier>) {
    let Some(n) = notifier else { return };
    n.send(&format!("READY=1\nSTATUS=serving\nMAINPID={}", std::process::id()));
    let Some(interval) = n.interval else { return };
    tracing::info!(interval_ms = interval.as_millis() as u64, "watchdog heartbeat on");
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match tokio::time::timeout(CHECK_TIMEOUT, check(&d)).await {
                Ok(Ok(())) => n.send("WATCHDOG=1"),
                Ok(Err(e)) => {
                    tracing::error!("self-check failed, no heartbeat: {e:#}");
                    n.send(&format!("STATUS=unhealthy: {e:#}"));
                }
                Err(_) => tracing::error!("self-check took longer than {CHECK_TIMEOUT:?}, no heartbeat"),
            }
        }
    });
}
