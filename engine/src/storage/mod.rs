//! Storage drivers: where image layers and container root filesystems live.
//!
//! Layers are named by chain id (a layer together with everything under it), containers by
//! id. A driver never decides what exists: the image and container records do; the driver
//! only makes and removes directories, devices and mounts. devicemapper (a dm-thin pool) is
//! the driver of devices; overlay2 that of development hosts.

pub mod changes;
mod copy;
pub(crate) use copy::copy_tree;
pub mod devicemapper;
mod overlay2;
mod vfs;

pub use overlay2::Overlay2;
pub use vfs::Vfs;

use crate::util::id::ContainerId;
use anyhow::{bail, Context, Result};
use berth_images::unpack::Whiteouts;
use berth_images::Digest;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Fills a fresh layer directory; returns the bytes written.
pub type ApplyFn<'a> = dyn FnMut(&Path, Whiteouts) -> Result<u64> + 'a;

/// A storage driver. Calls block (mounts, file trees): run them off the async reactor.
pub trait Driver: Send + Sync {
    fn name(&self) -> &'static str;
    fn has_layer(&self, chain: &Digest) -> bool;
    /// Creates layer `chain` above `parent`. The layer appears only once `apply` succeeded;
    /// on error nothing is left behind. Its content is on disk only after [`Driver::sync_layers`]:
    /// the caller syncs once for all the layers it made, before it records them.
    fn create_layer(&self, chain: &Digest, parent: Option<&Digest>, apply: &mut ApplyFn<'_>) -> Result<()>;
    /// Flushes every layer created so far to disk.
    fn sync_layers(&self) -> Result<()>;
    fn remove_layer(&self, chain: &Digest) -> Result<()>;
    /// Can a layer be created before its parent exists (its directory holds only its own
    /// files)? Then layers of one image may be unpacked side by side.
    fn independent_layers(&self) -> bool;
    /// The directory holding layer `chain`'s files as its tar unpacked them: where `save`
    /// and `push` read file content back from.
    fn layer_content(&self, chain: &Digest) -> PathBuf;
    /// Creates a container's writable layer above the image's `layers` (chain ids, bottom
    /// first), with an init layer that `init` fills (`/etc/hosts` ...).
    fn create_container(&self, id: &ContainerId, layers: &[Digest], init: &dyn Fn(&Path) -> Result<()>) -> Result<()>;
    /// Where the container's files are, for `diff`, `export` and `commit` (nothing mounted).
    fn container_view(&self, id: &ContainerId, layers: &[Digest]) -> changes::ContainerView;
    /// Mounts the container's root filesystem and returns where.
    fn mount(&self, id: &ContainerId, layers: &[Digest]) -> Result<PathBuf>;
    fn unmount(&self, id: &ContainerId) -> Result<()>;
    fn remove_container(&self, id: &ContainerId) -> Result<()>;
    /// `[key, value]` pairs for `info`'s DriverStatus.
    fn status(&self) -> Vec<[String; 2]>;
    /// Paths for `inspect`'s GraphDriver.Data.
    fn container_paths(&self, id: &ContainerId) -> Vec<(String, String)>;
    /// Does the container's root filesystem exist?
    fn container_exists(&self, id: &ContainerId) -> bool;
    /// Bytes the container has written to its root filesystem.
    fn container_rw_size(&self, id: &ContainerId) -> u64;
    /// Containers whose root filesystem is mounted now (one read of the mount table).
    fn mounted(&self) -> Vec<ContainerId>;
    /// Removes layers and container filesystems that are not in `layers`/`containers`
    /// (leftovers of crashes), unmounting first; returns what it removed.
    fn reconcile(&self, layers: &BTreeSet<Digest>, containers: &BTreeSet<ContainerId>) -> Result<Vec<String>>;
}

/// Bytes of the regular files under `path` (symlinks are not followed).
pub(crate) fn dir_size(path: &Path) -> u64 {
    let Ok(m) = std::fs::symlink_metadata(path) else { return 0 };
    if m.is_dir() {
        std::fs::read_dir(path).map(|r| r.filter_map(|e| e.ok()).map(|e| dir_size(&e.path())).sum()).unwrap_or(0)
    } else if m.is_file() {
        m.len()
    } else {
        0
    }
}

/// Every mount point of this mount namespace, read once.
pub(crate) fn mount_points() -> BTreeSet<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| m.lines().filter_map(|l| l.split(' ').nth(4).map(String::from)).collect())
        .unwrap_or_default()
}

/// The shared part of a driver's reconcile: every entry of `dir` whose name is not kept is
/// unmounted (`merged` below it, if any) and removed.
pub(crate) fn remove_unowned(dir: &Path, keep: &dyn Fn(&str) -> bool, what: &str) -> Result<Vec<String>> {
    let mut actions = Vec::new();
    let mounts = mount_points();
    for e in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if keep(&name) {
            continue;
        }
        let merged = e.path().join("merged");
        if mounts.contains(&merged.display().to_string()) {
            nix::mount::umount2(&merged, nix::mount::MntFlags::MNT_DETACH).with_context(|| format!("unmounting {}", merged.display()))?;
        }
        remove_tree(&e.path())?;
        actions.push(format!("removed {what} {name} that no record owns"));
    }
    Ok(actions)
}

/// Picks the configured driver, or overlay2 when the kernel has overlayfs and vfs otherwise.
/// `opts` are the `storage-opts` (only devicemapper takes any; the configuration checked them).
pub fn open(data_root: &Path, name: Option<&str>, opts: &[String], store: &crate::state::Store) -> Result<Box<dyn Driver>> {
    let overlay = overlay_supported();
    match name {
        Some("overlay2") if !overlay => bail!("storage-driver overlay2: the kernel has no overlay filesystem"),
        Some("overlay2") => Ok(Box::new(Overlay2::open(&data_root.join("overlay2"))?)),
        Some("vfs") => Ok(Box::new(Vfs::open(&data_root.join("vfs"))?)),
        Some("devicemapper") => {
            let opts = devicemapper::options::Options::parse(opts)?;
            Ok(Box::new(
                devicemapper::DeviceMapper::open(&data_root.join("devicemapper"), &opts, store).context("storage-driver devicemapper")?,
            ))
        }
        Some(other) => bail!("unknown storage driver {other:?}"),
        None if overlay => Ok(Box::new(Overlay2::open(&data_root.join("overlay2"))?)),
        None => {
            tracing::warn!("overlayfs is not available: using the vfs driver (full copies per layer)");
            Ok(Box::new(Vfs::open(&data_root.join("vfs"))?))
        }
    }
}

fn overlay_supported() -> bool {
    std::fs::read_to_string("/proc/filesystems").map(|s| s.lines().any(|l| l.trim_end().ends_with("\toverlay"))).unwrap_or(false)
}

/// Flushes everything written to the filesystem holding `path`: one `syncfs` instead of a
/// fsync per file of a freshly unpacked layer.
pub(crate) fn sync_filesystem(path: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: syncfs takes a valid open descriptor, which `f` holds for the call's duration.
    if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("syncfs on {}", path.display()));
    }
    Ok(())
}

/// Removes the `tmp-*` directories a crash left under a driver's root: work in progress that
/// never became a layer or a container.
pub(crate) fn remove_stale_tmp(root: &Path) -> Result<()> {
    for e in std::fs::read_dir(root).with_context(|| format!("listing {}", root.display()))? {
        let e = e?;
        if e.file_name().to_string_lossy().starts_with("tmp-") {
            tracing::info!(path = %e.path().display(), "removing an unfinished layer");
            remove_tree(&e.path())?;
        }
    }
    Ok(())
}

/// Removes a directory tree; a missing one is fine.
pub(crate) fn remove_tree(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}
