//! Network namespaces the daemon makes for containers: each is kept alive by a bind mount at
//! `<exec-root>/netns/<container id>` (the way `ip netns` keeps them), so the daemon can set
//! up its interfaces before the runtime starts the container in it, and find it again after a
//! daemon restart. exec-root is a tmpfs on devices: after a reboot none is left, as none of
//! their containers runs.

use anyhow::{Context, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use std::fs::File;
use std::path::{Path, PathBuf};

pub fn dir(exec_root: &Path) -> PathBuf {
    exec_root.join("netns")
}

/// Makes a new, empty network namespace and pins it at `path`. Idempotent: an existing one
/// is kept.
pub fn create(path: &Path) -> Result<()> {
    if is_pinned(path) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let target = path.to_path_buf();
    // unshare changes only the calling thread's namespace: a thread of its own, which ends
    // with it, so no thread of the daemon's pool is left in the container's namespace.
    std::thread::scope(|s| {
        s.spawn(move || -> Result<()> {
            unshare(CloneFlags::CLONE_NEWNET).context("unshare(CLONE_NEWNET)")?;
            let own = format!("/proc/self/task/{}/ns/net", nix::unistd::gettid());
            mount(Some(own.as_str()), &target, None::<&str>, MsFlags::MS_BIND, None::<&str>)
                .with_context(|| format!("pinning the network namespace at {}", target.display()))
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the namespace thread panicked"))?
    })
}

/// Whether `path` is a pinned namespace (a bind mount of an nsfs file).
pub fn is_pinned(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).map(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC).unwrap_or(false)
}

/// Unpins and deletes the namespace file; the namespace goes when its last process does.
pub fn remove(path: &Path) -> Result<()> {
    if is_pinned(path) {
        umount2(path, MntFlags::MNT_DETACH).with_context(|| format!("unmounting {}", path.display()))?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).with_context(|| format!("removing {}", path.display())),
        _ => Ok(()),
    }
}

/// Runs `f` on a thread inside the namespace at `path` (the caller's namespace when `None`).
pub fn run_in<T: Send>(path: Option<&Path>, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(move || {
            if let Some(p) = path {
                let ns = File::open(p).with_context(|| format!("opening the network namespace {}", p.display()))?;
                setns(ns, CloneFlags::CLONE_NEWNET).with_context(|| format!("entering the network namespace {}", p.display()))?;
            }
            f()
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the namespace thread panicked"))?
    })
}
