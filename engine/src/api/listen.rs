//! Listeners: `unix:///path` (mode 0660, group `berth` when it exists) and `fd://` (systemd
//! socket activation). TCP with mutual TLS comes with the remote-management work; a `tcp://`
//! host is refused at start rather than served without TLS.

use anyhow::{bail, Context, Result};
use std::os::fd::FromRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use tokio::net::{UnixListener, UnixStream};

pub struct Listener {
    inner: UnixListener,
}

impl Listener {
    pub async fn accept(&self) -> std::io::Result<UnixStream> {
        self.inner.accept().await.map(|(s, _)| s)
    }
}

/// The first descriptor systemd passes.
const SD_LISTEN_FDS_START: i32 = 3;

pub fn open(hosts: &[String]) -> Result<Vec<Listener>> {
    let mut out = Vec::new();
    for h in hosts {
        if let Some(path) = h.strip_prefix("unix://") {
            out.push(unix(Path::new(path))?);
        } else if let Some(rest) = h.strip_prefix("fd://") {
            out.extend(systemd(rest)?);
        } else if h.starts_with("tcp://") {
            bail!("listener {h}: TCP listeners (with mutual TLS) are not implemented in berth yet");
        } else {
            bail!("invalid listen address {h:?} (expected unix:///path or fd://)");
        }
    }
    Ok(out)
}

fn unix(path: &Path) -> Result<Listener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing stale socket {}", path.display())),
    }
    let inner = UnixListener::bind(path).with_context(|| format!("listening on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    if let Ok(Some(g)) = nix::unistd::Group::from_name("berth") {
        nix::unistd::chown(path, None, Some(g.gid)).with_context(|| format!("chown of {}", path.display()))?;
    }
    tracing::info!(socket = %path.display(), "API listening");
    Ok(Listener { inner })
}

fn systemd(which: &str) -> Result<Vec<Listener>> {
    let pid: u32 = std::env::var("LISTEN_PID").ok().and_then(|p| p.parse().ok()).unwrap_or(0);
    let n: i32 = std::env::var("LISTEN_FDS").ok().and_then(|p| p.parse().ok()).unwrap_or(0);
    if pid != std::process::id() || n < 1 {
        bail!("fd:// given but no sockets were passed by systemd (LISTEN_PID/LISTEN_FDS)");
    }
    let wanted: Option<i32> = if which.is_empty() { None } else { Some(which.parse().context("fd://N needs a number")?) };
    let mut out = Vec::new();
    for fd in SD_LISTEN_FDS_START..SD_LISTEN_FDS_START + n {
        if wanted.is_some_and(|w| w != fd) {
            continue;
        }
        // SAFETY: systemd passed this descriptor to us for our exclusive use (LISTEN_PID
        // matches); it is wrapped exactly once.
        let std_listener = unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) };
        std_listener.set_nonblocking(true)?;
        out.push(Listener { inner: UnixListener::from_std(std_listener)? });
    }
    if out.is_empty() {
        bail!("fd://{which}: no such descriptor was passed");
    }
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    Ok(out)
}
