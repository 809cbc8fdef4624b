//! The devicemapper driver: a dm-thin pool (direct-lvm), a base device with a filesystem, each
//! image layer a thin snapshot of its parent with the layer applied (a full tree, as vfs), each
//! container's root filesystem a snapshot of its image's top layer.
//!
//! Which thin device is what lives in the state store (table `dm-devices`), written before
//! the pool is told anything: a device is recorded `Creating` before its `create_thin` /
//! `create_snap` message and `Deleting` before its `delete`, so a crash between a pool message
//! and the record commit leaves a record naming the device, and the next start finishes the
//! deletion or undoes the creation. The pool's transaction id is advanced with each change
//! and recorded with it; `info` shows both.
//!
//! Layout: `<data-root>/devicemapper/mnt/<key>` mount points, `dev/<name>` block nodes (no
//! udev on a board).

mod ioctl;
mod lvm;
pub mod options;
mod pool;

use super::{ApplyFn, Driver};
use crate::state::{Collection, Record, Store};
use crate::util::id::ContainerId;
use anyhow::{bail, Context, Result};
use berth_images::unpack::Whiteouts;
use berth_images::Digest;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use options::{Fs, Options};
use pool::{Pool, PoolStatus, ThinId, MAX_THIN_ID};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DevState {
    /// Recorded before the pool message: may or may not exist in the pool.
    Creating,
    Ready,
    /// Recorded before the delete message (or while a busy device waits for its release).
    Deleting,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub thin: ThinId,
    pub sectors: u64,
    pub state: DevState,
    /// The pool's transaction id after this device's last pool message.
    pub transaction: u64,
}

impl Record for DeviceRecord {
    const TABLE: &'static str = "dm-devices";
    const VERSION: u8 = 1;
}

const BASE: &str = "base";
/// berth's dm device names have no dash: LVM's always do (`vg-lv`), so the two never meet,
/// whatever the volume group is called.
const PREFIX: &str = "berth_";

fn layer_key(chain: &Digest) -> String {
    format!("layer_{}", chain.hex())
}

fn container_key(id: &ContainerId) -> String {
    format!("ctr_{}", id.as_str())
}

pub struct DeviceMapper {
    pool: Mutex<Pool>,
    devices: Collection<DeviceRecord>,
    opts: Options,
    mnt: PathBuf,
}

impl DeviceMapper {
    pub fn open(root: &Path, opts: &Options, store: &Store) -> Result<Self> {
        std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
        let pool_dev = match &opts.pool {
            options::PoolSource::Existing(dev) => dev.clone(),
            options::PoolSource::DirectLvm { .. } => lvm::direct_lvm(root, opts)?,
        };
        let pool = match Pool::open(&pool_dev, &root.join("dev")) {
            Ok(p) => p,
            // Boards without an LVM boot service: activate the pool's LV ourselves, once.
            Err(first) => {
                if !lvm::activate(&pool_dev)? {
                    return Err(first);
                }
                Pool::open(&pool_dev, &root.join("dev")).with_context(|| format!("thin pool {pool_dev} after activating it"))?
            }
        };
        let status = pool.status()?;
        if status.mode == "Fail" {
            bail!("thin pool {pool_dev} has failed: its metadata needs thin_check/thin_repair");
        }
        let mnt = root.join("mnt");
        std::fs::create_dir_all(&mnt).with_context(|| format!("creating {}", mnt.display()))?;
        let dm = DeviceMapper { pool: Mutex::new(pool), devices: store.collection()?, opts: opts.clone(), mnt };
        dm.recover()?;
        dm.ensure_base()?;
        Ok(dm)
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Finishes what a crash interrupted: devices recorded `Creating` are undone, `Deleting`
    /// ones deleted; berth's dm devices that no record names are removed.
    fn recover(&self) -> Result<()> {
        for (key, rec) in self.devices.list()? {
            match rec.state {
                DevState::Ready => {}
                DevState::Creating | DevState::Deleting => {
                    tracing::info!(device = %key, thin = rec.thin.0, state = ?rec.state, "finishing an interrupted thin device operation");
                    self.unmount_key(&key)?;
                    self.delete_key(&key, &rec)?;
                }
            }
        }
        let known: BTreeSet<String> = self.devices.keys()?.into_iter().map(|k| dm_name(&k)).collect();
        let pool = self.pool();
        let mounted = super::mount_points();
        for name in pool.active(PREFIX)?.into_iter().filter(|n| !n.contains('-')) {
            if !known.contains(&name) && !mounted.contains(&self.mnt.join(name.trim_start_matches(PREFIX)).display().to_string()) {
                tracing::info!(device = %name, "removing a dm device no record owns");
                pool.deactivate(&name, false)?;
            }
        }
        Ok(())
    }

    fn ensure_base(&self) -> Result<()> {
        if matches!(self.devices.get(BASE)?, Some(r) if r.state == DevState::Ready) {
            return Ok(());
        }
        let sectors = self.opts.base_size.0 / 512;
        self.new_device(BASE, None, sectors)?;
        let made = (|| {
            let node = self.pool().activate(&dm_name(BASE), self.thin(BASE)?, sectors)?;
            let node = node.display().to_string();
            let mut args: Vec<&str> = match self.opts.fs {
                // Initialised now, not lazily in the background: a board's flash is written
                // once, and the writes don't land later under a container's load.
                Fs::Ext4 => vec!["-q", "-E", "nodiscard,lazy_itable_init=0,lazy_journal_init=0"],
                Fs::Xfs => vec!["-q", "-K"],
            };
            args.extend(self.opts.mkfs_args.iter().map(String::as_str));
            args.push(&node);
            let mkfs = match self.opts.fs {
                Fs::Ext4 => "mkfs.ext4",
                Fs::Xfs => "mkfs.xfs",
            };
            crate::util::command::run_blocking(mkfs, &args, Duration::from_secs(600))?;
            self.pool().deactivate(&dm_name(BASE), false)?;
            self.finish(BASE)
        })();
        if let Err(e) = made {
            let _ = self.remove_device(BASE);
            return Err(e.context("making the base device"));
        }
        Ok(())
    }

    fn thin(&self, key: &str) -> Result<ThinId> {
        Ok(self.devices.get(key)?.with_context(|| format!("no thin device {key}"))?.thin)
    }

    /// Refuses new devices when the pool is below `dm.min_free_space` (data or metadata) or
    /// is not writable.
    fn check_space(&self, s: &PoolStatus) -> Result<()> {
        if s.mode != "rw" {
            bail!("the thin pool is {} (not writable): no new devices until it is repaired or extended", s.mode);
        }
        let min = u64::from(self.opts.min_free_percent);
        for (what, used, total) in [("data", s.data_used, s.data_total), ("metadata", s.meta_used, s.meta_total)] {
            if total > 0 && (total - used) * 100 < min * total {
                bail!(
                    "thin pool {what} space is {}% free, below dm.min_free_space ({min}%): remove containers or images, or extend the pool",
                    (total - used) * 100 / total
                );
            }
        }
        Ok(())
    }

    /// Records and creates thin device `key`, empty or a snapshot of `origin`.
    fn new_device(&self, key: &str, origin_key: Option<&str>, sectors: u64) -> Result<ThinId> {
        let origin = origin_key.map(|o| self.thin(o)).transpose()?;
        let pool = self.pool();
        let status = pool.status()?;
        self.check_space(&status)?;
        let used: BTreeSet<u32> = self.devices.list()?.iter().map(|(_, r)| r.thin.0).collect();
        let mut id = used.iter().next_back().map_or(1, |m| m + 1);
        loop {
            if id > MAX_THIN_ID {
                id = (1..=MAX_THIN_ID).find(|i| !used.contains(i)).context("no free thin device id")?;
            }
            let txn = status.transaction_id + 1;
            self.devices.put(key, &DeviceRecord { thin: ThinId(id), sectors, state: DevState::Creating, transaction: txn })?;
            crate::util::failpoint::hit("dm.create.after-record");
            let made = match (origin, origin_key) {
                (Some(o), Some(okey)) => self.snapshot_of(&pool, ThinId(id), o, okey),
                _ => pool.create_thin(ThinId(id)),
            };
            match made {
                Ok(()) => {
                    crate::util::failpoint::hit("dm.create.after-message");
                    pool.set_transaction_id(status.transaction_id, txn)?;
                    return Ok(ThinId(id));
                }
                // An id some earlier, unrecorded life of this pool left: take the next.
                Err(e) if ioctl::is_errno(&e, nix::libc::EEXIST) => id += 1,
                Err(e) => {
                    self.devices.delete(key)?;
                    return Err(e.context(format!("creating thin device {id} for {key}")));
                }
            }
        }
    }

    /// `create_snap` of an origin that is active (a layer still mounted after its diff was
    /// applied, or read by a commit) needs the origin suspended around it: the kernel's
    /// thin-provisioning docs warn of corruption otherwise, and the VM rig saw a container's
    /// snapshot of a just-written layer miss files. Suspending freezes the filesystem on it,
    /// so the snapshot holds everything written to it.
    fn snapshot_of(&self, pool: &Pool, id: ThinId, origin: ThinId, origin_key: &str) -> Result<()> {
        let name = dm_name(origin_key);
        if pool.dm.info(&name)?.is_none() {
            return pool.create_snap(id, origin);
        }
        pool.dm.suspend(&name).with_context(|| format!("suspending {name} to snapshot it"))?;
        let made = pool.create_snap(id, origin);
        let resumed = pool.dm.resume(&name).with_context(|| format!("resuming {name} after its snapshot"));
        made.and(resumed)
    }

    fn finish(&self, key: &str) -> Result<()> {
        let mut rec = self.devices.get(key)?.with_context(|| format!("no thin device {key}"))?;
        rec.state = DevState::Ready;
        self.devices.put(key, &rec)
    }

    /// Marks `key` Deleting, then deactivates and deletes it. A busy device with deferred
    /// deletion stays recorded as Deleting and is retried at the next operation.
    fn remove_device(&self, key: &str) -> Result<()> {
        let Some(mut rec) = self.devices.get(key)? else { return Ok(()) };
        self.unmount_key(key)?;
        if rec.state != DevState::Deleting {
            rec.state = DevState::Deleting;
            self.devices.put(key, &rec)?;
        }
        self.delete_key(key, &rec)
    }

    fn delete_key(&self, key: &str, rec: &DeviceRecord) -> Result<()> {
        let pool = self.pool();
        let deferred = self.opts.deferred_removal || self.opts.deferred_deletion;
        if !pool.deactivate(&dm_name(key), deferred)? && self.opts.deferred_deletion {
            tracing::info!(device = %key, "busy: its deletion is deferred until it is released");
            return Ok(());
        }
        let status = pool.status()?;
        pool.delete(rec.thin).with_context(|| format!("deleting thin device {} ({key})", rec.thin.0))?;
        pool.set_transaction_id(status.transaction_id, status.transaction_id + 1)?;
        self.devices.delete(key)
    }

    /// Retries deferred deletions whose devices were released since.
    fn retry_deferred(&self) {
        let Ok(list) = self.devices.list() else { return };
        for (key, rec) in list.into_iter().filter(|(_, r)| r.state == DevState::Deleting) {
            if self.pool().dm.info(&dm_name(&key)).ok().flatten().is_none() {
                if let Err(e) = self.delete_key(&key, &rec) {
                    tracing::warn!(device = %key, "deferred deletion: {e:#}");
                }
            }
        }
    }

    /// Activates and mounts `key` at `mnt/<key>`; `ro` for image layers.
    fn mount_key(&self, key: &str, ro: bool) -> Result<PathBuf> {
        let target = self.mnt.join(key);
        if super::mount_points().contains(&target.display().to_string()) {
            return Ok(target);
        }
        let rec = self.devices.get(key)?.with_context(|| format!("no thin device {key}"))?;
        let node = self.pool().activate(&dm_name(key), rec.thin, rec.sectors)?;
        std::fs::create_dir_all(&target).with_context(|| format!("creating {}", target.display()))?;
        let fs = match self.opts.fs {
            Fs::Ext4 => "ext4",
            Fs::Xfs => "xfs",
        };
        let mut flags = MsFlags::MS_NODEV;
        if ro {
            flags |= MsFlags::MS_RDONLY;
        }
        let data = (!self.opts.mount_opts.is_empty()).then_some(self.opts.mount_opts.as_str());
        mount(Some(&node), &target, Some(fs), flags, data)
            .with_context(|| format!("mounting {} on {}", node.display(), target.display()))?;
        Ok(target)
    }

    fn unmount_key(&self, key: &str) -> Result<()> {
        let target = self.mnt.join(key);
        if super::mount_points().contains(&target.display().to_string()) {
            umount2(&target, MntFlags::empty()).with_context(|| format!("unmounting {}", target.display()))?;
        }
        let _ = std::fs::remove_dir(&target);
        self.pool().deactivate(&dm_name(key), self.opts.deferred_removal)?;
        Ok(())
    }

    /// Makes device `key` from `origin`, fills it through its mount, and leaves it inactive.
    fn build(&self, key: &str, origin: &str, fill: &mut dyn FnMut(&Path) -> Result<()>) -> Result<()> {
        self.retry_deferred();
        let sectors = self.devices.get(origin)?.with_context(|| format!("no thin device {origin}"))?.sectors;
        self.new_device(key, Some(origin), sectors)?;
        let made = (|| {
            let dir = self.mount_key(key, false)?;
            fill(&dir)?;
            self.unmount_key(key)?;
            self.finish(key)
        })();
        if let Err(e) = made {
            if let Err(e2) = self.remove_device(key) {
                tracing::warn!(device = %key, "cleaning up after a failed build: {e2:#}");
            }
            return Err(e);
        }
        Ok(())
    }

    fn ready(&self, key: &str) -> bool {
        matches!(self.devices.get(key), Ok(Some(r)) if r.state == DevState::Ready)
    }
}

/// The dm name of device `key` (`berth_layer_<hex>`, `berth_ctr_<id>`, `berth_base`).
fn dm_name(key: &str) -> String {
    format!("{PREFIX}{key}")
}

impl Driver for DeviceMapper {
    fn name(&self) -> &'static str {
        "devicemapper"
    }

    fn has_layer(&self, chain: &Digest) -> bool {
        self.ready(&layer_key(chain))
    }

    fn create_layer(&self, chain: &Digest, parent: Option<&Digest>, apply: &mut ApplyFn<'_>) -> Result<()> {
        let origin = parent.map(layer_key).unwrap_or_else(|| BASE.to_string());
        self.build(&layer_key(chain), &origin, &mut |d| apply(d, Whiteouts::Apply).map(drop))
    }

    fn sync_layers(&self) -> Result<()> {
        // Each layer was flushed when its device was deactivated.
        Ok(())
    }

    fn remove_layer(&self, chain: &Digest) -> Result<()> {
        self.remove_device(&layer_key(chain))
    }

    fn independent_layers(&self) -> bool {
        false
    }

    fn layer_content(&self, chain: &Digest) -> PathBuf {
        let key = layer_key(chain);
        match self.mount_key(&key, true) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(layer = %chain.short(), "mounting the layer to read it: {e:#}");
                self.mnt.join(key)
            }
        }
    }

    fn create_container(&self, id: &ContainerId, layers: &[Digest], init: &dyn Fn(&Path) -> Result<()>) -> Result<()> {
        let origin = layers.last().map(layer_key).unwrap_or_else(|| BASE.to_string());
        self.build(&container_key(id), &origin, &mut |d| init(d))
    }

    fn container_view(&self, id: &ContainerId, layers: &[Digest]) -> super::changes::ContainerView {
        let root = match self.mount_key(&container_key(id), false) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(container = %id.short(), "mounting the container to read it: {e:#}");
                self.mnt.join(container_key(id))
            }
        };
        super::changes::ContainerView::Copy { root, base: layers.last().map(|c| self.layer_content(c)) }
    }

    fn mount(&self, id: &ContainerId, _layers: &[Digest]) -> Result<PathBuf> {
        self.mount_key(&container_key(id), false)
    }

    fn unmount(&self, id: &ContainerId) -> Result<()> {
        self.unmount_key(&container_key(id))
    }

    fn remove_container(&self, id: &ContainerId) -> Result<()> {
        self.retry_deferred();
        self.remove_device(&container_key(id))
    }

    fn status(&self) -> Vec<[String; 2]> {
        let pool = self.pool();
        let mut out = vec![["Pool Name".to_string(), pool.name.clone()], ["Pool Blocksize".into(), human(pool.block_sectors * 512)]];
        out.push(["Base Device Size".into(), human(self.opts.base_size.0)]);
        out.push(["Backing Filesystem".into(), if self.opts.fs == Fs::Ext4 { "extfs".into() } else { "xfs".into() }]);
        match pool.status() {
            Ok(s) => {
                let block = pool.block_sectors * 512;
                // Metadata blocks are 4 KiB.
                let meta = 4096;
                out.push(["Data Space Used".into(), human(s.data_used * block)]);
                out.push(["Data Space Total".into(), human(s.data_total * block)]);
                out.push(["Data Space Available".into(), human((s.data_total - s.data_used) * block)]);
                out.push(["Metadata Space Used".into(), human(s.meta_used * meta)]);
                out.push(["Metadata Space Total".into(), human(s.meta_total * meta)]);
                out.push(["Metadata Space Available".into(), human((s.meta_total - s.meta_used) * meta)]);
                out.push(["Pool Mode".into(), s.mode.clone()]);
                out.push(["Pool Transaction Id".into(), s.transaction_id.to_string()]);
                if s.needs_check {
                    out.push(["Pool Needs Check".into(), "true".into()]);
                }
            }
            Err(e) => out.push(["Pool Status".into(), format!("unreadable: {e:#}")]),
        }
        out.push(["Thin Pool Minimum Free Space".into(), format!("{}%", self.opts.min_free_percent)]);
        out.push(["Deferred Removal Enabled".into(), self.opts.deferred_removal.to_string()]);
        out.push(["Deferred Deletion Enabled".into(), self.opts.deferred_deletion.to_string()]);
        let deferred = self.devices.list().map(|l| l.iter().filter(|(_, r)| r.state == DevState::Deleting).count()).unwrap_or(0);
        out.push(["Deferred Deleted Device Count".into(), deferred.to_string()]);
        out
    }

    fn container_paths(&self, id: &ContainerId) -> Vec<(String, String)> {
        let key = container_key(id);
        let thin = self.devices.get(&key).ok().flatten().map(|r| r.thin.0.to_string()).unwrap_or_default();
        vec![
            ("DeviceId".into(), thin),
            ("DeviceName".into(), dm_name(&key)),
            ("MergedDir".into(), self.mnt.join(&key).display().to_string()),
        ]
    }

    fn container_exists(&self, id: &ContainerId) -> bool {
        self.ready(&container_key(id))
    }

    fn container_rw_size(&self, _id: &ContainerId) -> u64 {
        // A thin snapshot shares its blocks with the image: what the container wrote is not
        // told apart cheaply. Docker reports 0 for devicemapper too.
        0
    }

    fn mounted(&self) -> Vec<ContainerId> {
        let prefix = format!("{}/ctr_", self.mnt.display());
        super::mount_points().iter().filter_map(|m| m.strip_prefix(&prefix)?.parse().ok()).collect()
    }

    fn reconcile(&self, layers: &BTreeSet<Digest>, containers: &BTreeSet<ContainerId>) -> Result<Vec<String>> {
        let keep: BTreeSet<String> =
            layers.iter().map(layer_key).chain(containers.iter().map(container_key)).chain([BASE.to_string()]).collect();
        let mut actions = Vec::new();
        for key in self.devices.keys()? {
            if !keep.contains(&key) {
                self.remove_device(&key)?;
                actions.push(format!("removed thin device {key} that no record owns"));
            }
        }
        Ok(actions)
    }
}

fn human(bytes: u64) -> String {
    crate::cli::format::human_size(bytes)
}
