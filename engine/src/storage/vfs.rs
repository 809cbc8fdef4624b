//! The vfs driver: every layer and container is a full copy. Slow and large, but needs
//! nothing from the kernel; used only where overlayfs is missing.
//!
//! Layout under `<data-root>/vfs/`: `dir/<chain-hex>` (a layer with everything below it),
//! `dir/<id>` (a container's root filesystem, init files included), `tmp-*` (in progress).

use super::copy::copy_tree;
use super::{remove_tree, sync_filesystem, ApplyFn, Driver};
use crate::util::id::ContainerId;
use anyhow::{Context, Result};
use berth_images::unpack::Whiteouts;
use berth_images::{durable, Digest};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

pub struct Vfs {
    root: PathBuf,
}

impl Vfs {
    pub fn open(root: &Path) -> Result<Self> {
        fs::create_dir_all(root.join("dir")).with_context(|| format!("creating {}", root.display()))?;
        super::remove_stale_tmp(root)?;
        Ok(Vfs { root: root.to_path_buf() })
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.join("dir").join(name)
    }

    /// Builds `target` from a copy of `base` and `fill`; `sync`: flush it before it appears
    /// (layers are flushed together by `sync_layers` instead).
    fn build(&self, target: &Path, name: &str, base: Option<&Path>, sync: bool, fill: &mut dyn FnMut(&Path) -> Result<()>) -> Result<()> {
        let tmp = self.root.join(format!("tmp-{name}-{}", std::process::id()));
        remove_tree(&tmp)?;
        let result = (|| {
            match base {
                Some(b) => copy_tree(b, &tmp)?,
                None => fs::create_dir(&tmp)?,
            }
            fill(&tmp)?;
            if sync {
                sync_filesystem(&tmp)?;
            }
            remove_tree(target)?;
            durable::rename(&tmp, target)
        })();
        if result.is_err() {
            let _ = remove_tree(&tmp);
        }
        result
    }
}

impl Driver for Vfs {
    fn name(&self) -> &'static str {
        "vfs"
    }

    fn has_layer(&self, chain: &Digest) -> bool {
        self.dir(chain.hex()).is_dir()
    }

    fn create_layer(&self, chain: &Digest, parent: Option<&Digest>, apply: &mut ApplyFn<'_>) -> Result<()> {
        let base = parent.map(|p| self.dir(p.hex()));
        self.build(&self.dir(chain.hex()), chain.hex(), base.as_deref(), false, &mut |d| apply(d, Whiteouts::Apply).map(drop))
    }

    fn sync_layers(&self) -> Result<()> {
        sync_filesystem(&self.root)
    }

    fn remove_layer(&self, chain: &Digest) -> Result<()> {
        remove_tree(&self.dir(chain.hex()))
    }

    fn independent_layers(&self) -> bool {
        false
    }

    fn layer_content(&self, chain: &Digest) -> PathBuf {
        // A vfs layer holds everything below it too; the files its own tar wrote are at the
        // same paths, which is all a rebuild reads.
        self.dir(chain.hex())
    }

    fn create_container(&self, id: &ContainerId, layers: &[Digest], init: &dyn Fn(&Path) -> Result<()>) -> Result<()> {
        let base = layers.last().map(|c| self.dir(c.hex()));
        self.build(&self.dir(id.as_str()), id.as_str(), base.as_deref(), true, &mut |d| init(d))
    }

    fn container_view(&self, id: &ContainerId, layers: &[Digest]) -> super::changes::ContainerView {
        super::changes::ContainerView::Copy { root: self.dir(id.as_str()), base: layers.last().map(|c| self.dir(c.hex())) }
    }

    fn mount(&self, id: &ContainerId, _layers: &[Digest]) -> Result<PathBuf> {
        Ok(self.dir(id.as_str()))
    }

    fn unmount(&self, _id: &ContainerId) -> Result<()> {
        Ok(())
    }

    fn remove_container(&self, id: &ContainerId) -> Result<()> {
        remove_tree(&self.dir(id.as_str()))
    }

    fn status(&self) -> Vec<[String; 2]> {
        vec![]
    }

    fn container_exists(&self, id: &ContainerId) -> bool {
        self.dir(id.as_str()).is_dir()
    }

    fn container_rw_size(&self, id: &ContainerId) -> u64 {
        // A vfs root filesystem is a full copy: all of it is the container's.
        super::dir_size(&self.dir(id.as_str()))
    }

    fn mounted(&self) -> Vec<ContainerId> {
        vec![]
    }

    fn reconcile(&self, layers: &BTreeSet<Digest>, containers: &BTreeSet<ContainerId>) -> Result<Vec<String>> {
        let names: BTreeSet<&str> = layers.iter().map(|l| l.hex()).chain(containers.iter().map(|c| c.as_str())).collect();
        let keep = |name: &str| names.contains(name);
        super::remove_unowned(&self.root.join("dir"), &keep, "vfs entry")
    }

    fn container_paths(&self, id: &ContainerId) -> Vec<(String, String)> {
        vec![("Dir".into(), self.dir(id.as_str()).display().to_string())]
    }
}
