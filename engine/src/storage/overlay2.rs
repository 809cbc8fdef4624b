//! The overlay2 driver.
//!
//! Layout under `<data-root>/overlay2/`:
//! ```text
//! <chain-hex>/diff            a layer's own files (whiteouts in overlayfs form)
//! l/<16 hex>                  short symlink to ../<chain-hex>/diff: keeps the mount option
//!                             string under the kernel's one-page limit for deep images
//! <id>-init/diff              the container's init layer (/etc/hosts, /etc/hostname ...)
//! <id>/{diff,work,merged}     the container's writable layer, overlay workdir, mount point
//! tmp-*                       layers being unpacked; removed at open
//! ```

use super::{remove_tree, sync_filesystem, ApplyFn, Driver};
use crate::util::id::ContainerId;
use anyhow::{Context, Result};
use berth_images::unpack::Whiteouts;
use berth_images::{durable, Digest};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

pub struct Overlay2 {
    root: PathBuf,
}

impl Overlay2 {
    pub fn open(root: &Path) -> Result<Self> {
        fs::create_dir_all(root.join("l")).with_context(|| format!("creating {}", root.display()))?;
        super::remove_stale_tmp(root)?;
        Ok(Overlay2 { root: root.to_path_buf() })
    }

    fn layer_dir(&self, chain: &Digest) -> PathBuf {
        self.root.join(chain.hex())
    }

    fn short_link(&self, chain: &Digest) -> PathBuf {
        self.root.join("l").join(&chain.hex()[..16])
    }

    fn container_dir(&self, id: &ContainerId) -> PathBuf {
        self.root.join(id.as_str())
    }

    fn init_dir(&self, id: &ContainerId) -> PathBuf {
        self.root.join(format!("{id}-init"))
    }
}

impl Driver for Overlay2 {
    fn name(&self) -> &'static str {
        "overlay2"
    }

    fn has_layer(&self, chain: &Digest) -> bool {
        self.layer_dir(chain).join("diff").is_dir()
    }

    fn create_layer(&self, chain: &Digest, _parent: Option<&Digest>, apply: &mut ApplyFn<'_>) -> Result<()> {
        let tmp = self.root.join(format!("tmp-{}-{}", chain.hex(), std::process::id()));
        remove_tree(&tmp)?;
        fs::create_dir_all(tmp.join("diff"))?;
        let result = (|| {
            apply(&tmp.join("diff"), Whiteouts::Overlay)?;
            // A directory without a record (an interrupted earlier attempt) is replaced.
            remove_tree(&self.layer_dir(chain))?;
            durable::rename(&tmp, &self.layer_dir(chain))
        })();
        if let Err(e) = result {
            let _ = remove_tree(&tmp);
            return Err(e);
        }
        let link = self.short_link(chain);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(format!("../{}/diff", chain.hex()), &link).with_context(|| format!("linking {}", link.display()))?;
        Ok(())
    }

    fn sync_layers(&self) -> Result<()> {
        sync_filesystem(&self.root)
    }

    fn remove_layer(&self, chain: &Digest) -> Result<()> {
        let _ = fs::remove_file(self.short_link(chain));
        remove_tree(&self.layer_dir(chain))
    }

    fn independent_layers(&self) -> bool {
        true
    }

    fn layer_content(&self, chain: &Digest) -> PathBuf {
        self.layer_dir(chain).join("diff")
    }

    fn create_container(&self, id: &ContainerId, _layers: &[Digest], init: &dyn Fn(&Path) -> Result<()>) -> Result<()> {
        let dir = self.container_dir(id);
        let init_dir = self.init_dir(id);
        let result = (|| {
            fs::create_dir_all(init_dir.join("diff"))?;
            init(&init_dir.join("diff"))?;
            for sub in ["diff", "work", "merged"] {
                fs::create_dir_all(dir.join(sub))?;
            }
            durable::sync_dir(&self.root)
        })();
        if result.is_err() {
            let _ = remove_tree(&dir);
            let _ = remove_tree(&init_dir);
        }
        result.with_context(|| format!("creating the overlay2 layers of container {}", id.short()))
    }

    fn container_view(&self, id: &ContainerId, layers: &[Digest]) -> super::changes::ContainerView {
        let mut lower = vec![self.init_dir(id).join("diff")];
        lower.extend(layers.iter().rev().map(|c| self.layer_content(c)));
        super::changes::ContainerView::Layered { upper: self.container_dir(id).join("diff"), lower }
    }

    fn mount(&self, id: &ContainerId, layers: &[Digest]) -> Result<PathBuf> {
        let dir = self.container_dir(id);
        let merged = dir.join("merged");
        if is_mountpoint(&merged) {
            return Ok(merged);
        }
        let mut lower = vec![self.init_dir(id).join("diff").display().to_string()];
        lower.extend(layers.iter().rev().map(|c| self.short_link(c).display().to_string()));
        let opts = format!("lowerdir={},upperdir={},workdir={}", lower.join(":"), dir.join("diff").display(), dir.join("work").display());
        mount(Some("overlay"), &merged, Some("overlay"), MsFlags::empty(), Some(opts.as_str()))
            .with_context(|| format!("mounting overlay for container {} ({opts})", id.short()))?;
        Ok(merged)
    }

    fn unmount(&self, id: &ContainerId) -> Result<()> {
        let merged = self.container_dir(id).join("merged");
        if !is_mountpoint(&merged) {
            return Ok(());
        }
        umount2(&merged, MntFlags::empty())
            .or_else(|_| umount2(&merged, MntFlags::MNT_DETACH))
            .with_context(|| format!("unmounting {}", merged.display()))
    }

    fn remove_container(&self, id: &ContainerId) -> Result<()> {
        self.unmount(id)?;
        remove_tree(&self.container_dir(id))?;
        remove_tree(&self.init_dir(id))?;
        durable::sync_dir(&self.root)
    }

    fn status(&self) -> Vec<[String; 2]> {
        vec![
            ["Backing Filesystem".into(), backing_fs(&self.root)],
            ["Supports d_type".into(), "true".into()],
            ["Using metacopy".into(), "false".into()],
            ["Native Overlay Diff".into(), "true".into()],
        ]
    }

    fn container_exists(&self, id: &ContainerId) -> bool {
        self.container_dir(id).join("diff").is_dir() && self.init_dir(id).join("diff").is_dir()
    }

    fn container_rw_size(&self, id: &ContainerId) -> u64 {
        super::dir_size(&self.container_dir(id).join("diff"))
    }

    fn mounted(&self) -> Vec<ContainerId> {
        let prefix = format!("{}/", self.root.display());
        super::mount_points().iter().filter_map(|m| m.strip_prefix(&prefix)?.strip_suffix("/merged")?.parse().ok()).collect()
    }

    fn reconcile(&self, layers: &BTreeSet<Digest>, containers: &BTreeSet<ContainerId>) -> Result<Vec<String>> {
        let layer_names: BTreeSet<&str> = layers.iter().map(|l| l.hex()).collect();
        let container_names: BTreeSet<&str> = containers.iter().map(|c| c.as_str()).collect();
        let keep = |name: &str| {
            let id = name.strip_suffix("-init").unwrap_or(name);
            name == "l" || layer_names.contains(name) || container_names.contains(id)
        };
        let mut actions = super::remove_unowned(&self.root, &keep, "overlay2 entry")?;
        // Short links whose layer is gone.
        for e in fs::read_dir(self.root.join("l"))? {
            let e = e?;
            if !e.path().join(".").exists() {
                fs::remove_file(e.path())?;
                actions.push(format!("removed dangling layer link {}", e.file_name().to_string_lossy()));
            }
        }
        Ok(actions)
    }

    fn container_paths(&self, id: &ContainerId) -> Vec<(String, String)> {
        let d = self.container_dir(id);
        vec![
            ("MergedDir".into(), d.join("merged").display().to_string()),
            ("UpperDir".into(), d.join("diff").display().to_string()),
            ("WorkDir".into(), d.join("work").display().to_string()),
        ]
    }
}

/// Is `path` a mount point? (Its device differs from its parent's, or /proc says so.)
pub(crate) fn is_mountpoint(path: &Path) -> bool {
    let Ok(mounts) = fs::read_to_string("/proc/self/mountinfo") else { return false };
    let want = path.display().to_string();
    mounts.lines().any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

fn backing_fs(path: &Path) -> String {
    match nix::sys::statfs::statfs(path).map(|s| s.filesystem_type().0) {
        Ok(0xEF53) => "extfs".into(),
        Ok(0x58465342) => "xfs".into(),
        Ok(0x01021994) => "tmpfs".into(),
        Ok(0x9123683E) => "btrfs".into(),
        Ok(m) => format!("{m:#x}"),
        Err(_) => "unknown".into(),
    }
}
