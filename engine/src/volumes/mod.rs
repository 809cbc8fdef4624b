//! Volumes (the `local` driver) and container mounts: named and anonymous volumes, binds,
//! tmpfs, `--volumes-from`, and the copy of an image's content into an empty new volume.
//!
//! Records: [`model::Volume`] (table `volumes`) and each container's [`model::ContainerMounts`]
//! (table `mounts`), written in the container's create transaction together with the volumes
//! the create makes, and deleted in its removal transaction (with its anonymous volumes for
//! `rm -v` and `--rm`). A volume's directory is made before its record and removed after it;
//! directories no record owns are removed at start.

pub mod model;
pub mod parse;

use crate::state::{Collection, Store, Txn};
use crate::util::id::ContainerId;
use anyhow::{Context, Result};
use model::{ContainerMounts, MountPoint, Source, Volume};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("get {0}: no such volume")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
}

/// The local driver's options.
const OPTION_KEYS: &[&str] = &["type", "device", "o"];

pub struct Volumes {
    root: PathBuf,
    vols: Collection<Volume>,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    volumes: BTreeMap<String, Volume>,
    by_container: BTreeMap<ContainerId, Vec<MountPoint>>,
    /// Names of volumes that creates in flight are making.
    pending: BTreeSet<String>,
    /// Volumes with driver options mounted on their `_data`, and the running containers
    /// using each.
    mounted: BTreeMap<String, BTreeSet<ContainerId>>,
}

/// What a create needs: its mounts and the volumes it makes.
pub struct Prepared {
    pub mounts: Vec<MountPoint>,
    new: Vec<Volume>,
}

fn invalid(m: impl Into<String>) -> VolumeError {
    VolumeError::Invalid(m.into())
}

impl Volumes {
    pub fn open(data_root: &Path, store: &Store) -> Result<Arc<Self>> {
        let root = data_root.join("volumes");
        std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        let vols: Collection<Volume> = store.collection()?;
        let mounts: Collection<ContainerMounts> = store.collection()?;
        let mut inner = Inner::default();
        for (k, v) in vols.list()? {
            inner.volumes.insert(k, v);
        }
        for (k, m) in mounts.list()? {
            if let Ok(id) = k.parse::<ContainerId>() {
                inner.by_container.insert(id, m.0);
            }
        }
        Ok(Arc::new(Volumes { root, vols, inner: Mutex::new(inner) }))
    }

    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.root.join(name).join("_data")
    }

    pub fn get(&self, name: &str) -> Result<Volume, VolumeError> {
        self.inner.lock().unwrap().volumes.get(name).cloned().ok_or_else(|| VolumeError::NotFound(name.to_string()))
    }

    pub fn list(&self) -> Vec<Volume> {
        self.inner.lock().unwrap().volumes.values().cloned().collect()
    }

    /// Containers (in any state) whose mounts use the volume.
    pub fn users(&self, name: &str) -> Vec<ContainerId> {
        let inner = self.inner.lock().unwrap();
        Self::users_locked(&inner, name)
    }

    fn users_locked(inner: &Inner, name: &str) -> Vec<ContainerId> {
        inner
            .by_container
            .iter()
            .filter(|(_, ms)| ms.iter().any(|m| m.source == Source::Volume(name.to_string())))
            .map(|(c, _)| c.clone())
            .collect()
    }

    pub fn mounts_of(&self, c: &ContainerId) -> Vec<MountPoint> {
        self.inner.lock().unwrap().by_container.get(c).cloned().unwrap_or_default()
    }

    fn new_volume(
        name: Option<&str>,
        anonymous: bool,
        labels: BTreeMap<String, String>,
        options: BTreeMap<String, String>,
    ) -> Result<Volume> {
        let name = match name {
            Some(n) if !model::valid_name(n) => {
                return Err(invalid(format!(
                    "create {n}: {n:?} includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed"
                ))
                .into())
            }
            Some(n) => n.to_string(),
            None => ContainerId::random().context("naming a volume")?.to_string(),
        };
        for k in options.keys() {
            if !OPTION_KEYS.contains(&k.as_str()) {
                return Err(invalid(format!("invalid option key: {k:?} (the local driver takes type, device, o)")).into());
            }
        }
        if !options.is_empty() && !options.contains_key("type") {
            return Err(invalid("the local driver's options need type= (and device=, o=)").into());
        }
        Ok(Volume { name, created: crate::util::time::now(), anonymous, labels, options })
    }

    /// `volume create`: a new volume, or the existing one of that name (as Docker, when the
    /// options agree).
    pub fn create(&self, name: Option<&str>, labels: BTreeMap<String, String>, options: BTreeMap<String, String>) -> Result<Volume> {
        let v = Self::new_volume(name, name.is_none(), labels, options)?;
        let mut inner = self.inner.lock().unwrap();
        if let Some(old) = inner.volumes.get(&v.name) {
            if old.options != v.options {
                return Err(VolumeError::Conflict(format!("volume {} already exists with other options", v.name)).into());
            }
            return Ok(old.clone());
        }
        if inner.pending.contains(&v.name) {
            return Err(VolumeError::Conflict(format!("volume {} is being created", v.name)).into());
        }
        let dir = self.data_dir(&v.name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        if let Err(e) = self.vols.put(&v.name, &v) {
            let _ = crate::storage::remove_tree(&self.root.join(&v.name));
            return Err(e.context(format!("recording volume {}", v.name)));
        }
        inner.volumes.insert(v.name.clone(), v.clone());
        tracing::info!(volume = %v.name, "volume created");
        Ok(v)
    }

    /// `volume rm`: refused while any container (running or not) uses it.
    pub fn remove(&self, name: &str) -> Result<()> {
        let mut inner = self.inner.lock().unwrap();
        if !inner.volumes.contains_key(name) {
            return Err(VolumeError::NotFound(name.to_string()).into());
        }
        let users = Self::users_locked(&inner, name);
        if !users.is_empty() {
            let ids: Vec<String> = users.iter().map(|c| c.to_string()).collect();
            return Err(VolumeError::Conflict(format!("remove {name}: volume is in use - [{}]", ids.join(", "))).into());
        }
        self.vols.delete(name).with_context(|| format!("removing the record of volume {name}"))?;
        inner.volumes.remove(name);
        drop(inner);
        self.remove_dirs(&[name.to_string()]);
        Ok(())
    }

    /// `volume prune`: unused anonymous volumes (all unused ones with `all`) whose labels
    /// `wanted` accepts. Returns their names and the bytes freed.
    pub fn prune(&self, all: bool, wanted: &dyn Fn(&BTreeMap<String, String>) -> bool) -> Result<(Vec<String>, u64)> {
        let names: Vec<String> = {
            let inner = self.inner.lock().unwrap();
            inner
                .volumes
                .values()
                .filter(|v| (all || v.anonymous) && wanted(&v.labels) && Self::users_locked(&inner, &v.name).is_empty())
                .map(|v| v.name.clone())
                .collect()
        };
        let mut removed = Vec::new();
        let mut bytes = 0;
        for n in names {
            let size = du(&self.data_dir(&n));
            if self.remove(&n).is_ok() {
                bytes += size;
                removed.push(n);
            }
        }
        Ok((removed, bytes))
    }

    /// At create: checks every mount (a bind's source must exist), names anonymous volumes,
    /// makes the directories of new volumes, and adds `--volumes-from` mounts. Nothing is
    /// recorded until [`Volumes::commit_prepared`].
    pub fn prepare(&self, requests: Vec<parse::Request>, from: Vec<(Vec<MountPoint>, Option<bool>)>) -> Result<Prepared> {
        let mut mounts = Vec::new();
        let mut new: Vec<Volume> = Vec::new();
        let mut inner = self.inner.lock().unwrap();
        let result = (|| -> Result<()> {
            for r in requests {
                let mut m = r.mount;
                match &m.source {
                    Source::Bind(p) => {
                        if !p.exists() {
                            return Err(invalid(format!(
                                "invalid mount config for type \"bind\": bind source path does not exist: {}",
                                p.display()
                            ))
                            .into());
                        }
                    }
                    Source::Volume(_) => {
                        let exists = r.name.as_ref().is_some_and(|n| inner.volumes.contains_key(n) || inner.pending.contains(n));
                        if !exists && !new.iter().any(|v| Some(&v.name) == r.name.as_ref()) {
                            let v = Self::new_volume(r.name.as_deref(), r.name.is_none(), Default::default(), Default::default())?;
                            std::fs::create_dir_all(self.data_dir(&v.name)).with_context(|| format!("creating volume {}", v.name))?;
                            inner.pending.insert(v.name.clone());
                            new.push(v);
                        }
                        let name = r.name.clone().unwrap_or_else(|| new.last().map(|v| v.name.clone()).unwrap_or_default());
                        m.source = Source::Volume(name);
                    }
                    Source::Tmpfs(_) => {}
                }
                mounts.push(m);
            }
            for (theirs, mode) in from {
                for mut m in theirs {
                    if mounts.iter().any(|x: &MountPoint| x.destination == m.destination) || matches!(m.source, Source::Tmpfs(_)) {
                        continue;
                    }
                    if let Some(rw) = mode {
                        m.rw = rw;
                    }
                    mounts.push(m);
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            for v in &new {
                inner.pending.remove(&v.name);
                let _ = crate::storage::remove_tree(&self.root.join(&v.name));
            }
            return Err(e);
        }
        Ok(Prepared { mounts, new })
    }

    /// Writes the container's mounts and its new volumes in the caller's transaction.
    pub fn commit_prepared(&self, tx: &Txn<'_>, c: &ContainerId, p: &Prepared) -> Result<()> {
        for v in &p.new {
            tx.put(&v.name, v)?;
        }
        if !p.mounts.is_empty() {
            tx.put(c.as_str(), &ContainerMounts(p.mounts.clone()))?;
        }
        Ok(())
    }

    /// After the create committed (or failed: the new volumes' directories go).
    pub fn settle_prepared(&self, c: &ContainerId, p: Prepared, committed: bool) {
        let mut inner = self.inner.lock().unwrap();
        for v in p.new {
            inner.pending.remove(&v.name);
            if committed {
                inner.volumes.insert(v.name.clone(), v);
            } else {
                let _ = crate::storage::remove_tree(&self.root.join(&v.name));
            }
        }
        if committed && !p.mounts.is_empty() {
            inner.by_container.insert(c.clone(), p.mounts);
        }
    }

    /// In the container's removal transaction: its mounts go, and with `anonymous` its
    /// anonymous volumes no other container uses. Returns those volumes.
    pub fn delete_for_container(&self, tx: &Txn<'_>, c: &ContainerId, anonymous: bool) -> Result<Vec<String>> {
        let inner = self.inner.lock().unwrap();
        let mut gone = Vec::new();
        if let Some(ms) = inner.by_container.get(c) {
            tx.delete::<ContainerMounts>(c.as_str())?;
            if anonymous {
                for m in ms {
                    if let Source::Volume(n) = &m.source {
                        let only_us = Self::users_locked(&inner, n).iter().all(|u| u == c);
                        if inner.volumes.get(n).is_some_and(|v| v.anonymous) && only_us {
                            tx.delete::<Volume>(n)?;
                            gone.push(n.clone());
                        }
                    }
                }
            }
        }
        Ok(gone)
    }

    /// After the removal committed.
    pub fn forget(&self, c: &ContainerId, removed: &[String]) {
        {
            let mut inner = self.inner.lock().unwrap();
            inner.by_container.remove(c);
            for n in removed {
                inner.volumes.remove(n);
            }
        }
        self.remove_dirs(removed);
    }

    fn remove_dirs(&self, names: &[String]) {
        for n in names {
            let data = self.data_dir(n);
            if is_mount_point(&data) {
                let _ = nix::mount::umount2(&data, nix::mount::MntFlags::MNT_DETACH);
            }
            if let Err(e) = crate::storage::remove_tree(&self.root.join(n)) {
                tracing::warn!(volume = %n, "removing its directory: {e:#} (start-up cleanup will retry)");
            }
        }
    }

    /// At start: mounts volumes with driver options, copies the image's content into empty
    /// volumes (unless `nocopy`), and returns the OCI mounts. `rootfs` is the mounted root
    /// filesystem (where the image's content is read).
    pub fn attach(&self, c: &ContainerId, rootfs: &Path) -> Result<Vec<Value>> {
        let mounts = self.mounts_of(c);
        let mut out = Vec::new();
        for m in &mounts {
            let mode = if m.rw { "rw" } else { "ro" };
            match &m.source {
                Source::Bind(p) => {
                    if !p.exists() {
                        return Err(invalid(format!("bind source path does not exist: {}", p.display())).into());
                    }
                    let prop = if m.propagation.is_empty() { "rprivate" } else { m.propagation.as_str() };
                    out.push(json!({"destination": m.destination, "type": "bind", "source": p, "options": ["rbind", mode, prop]}));
                }
                Source::Volume(name) => {
                    let v = self.get(name)?;
                    let data = self.data_dir(name);
                    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
                    self.mount_driver(&v, c)?;
                    if !m.nocopy {
                        copy_up(rootfs, &m.destination, &data).with_context(|| format!("copying {} into volume {name}", m.destination))?;
                    }
                    out.push(json!({"destination": m.destination, "type": "bind", "source": data, "options": ["rbind", mode, "rprivate"]}));
                }
                Source::Tmpfs(opts) => {
                    let mut o: Vec<String> = vec!["nosuid".into(), "nodev".into(), "noexec".into()];
                    o.extend(opts.iter().filter(|x| x.as_str() != "ro" && x.as_str() != "rw").cloned());
                    o.push(mode.into());
                    out.push(json!({"destination": m.destination, "type": "tmpfs", "source": "tmpfs", "options": o}));
                }
            }
        }
        Ok(out)
    }

    /// Mounts a volume's device (`-o type=,device=,o=`) on its `_data` for its first running
    /// user.
    fn mount_driver(&self, v: &Volume, c: &ContainerId) -> Result<()> {
        if v.options.is_empty() {
            return Ok(());
        }
        let mut inner = self.inner.lock().unwrap();
        let users = inner.mounted.entry(v.name.clone()).or_default();
        let data = self.data_dir(&v.name);
        if users.is_empty() && !is_mount_point(&data) {
            let typ = v.options.get("type").map(String::as_str).unwrap_or("");
            let device = v.options.get("device").map(String::as_str).unwrap_or(typ);
            let o = v.options.get("o").cloned().unwrap_or_default();
            let bind = o.split(',').any(|x| x == "bind" || x == "rbind");
            let flags = if bind { nix::mount::MsFlags::MS_BIND | nix::mount::MsFlags::MS_REC } else { nix::mount::MsFlags::empty() };
            let data_opts: Vec<&str> = o.split(',').filter(|x| !x.is_empty() && *x != "bind" && *x != "rbind").collect();
            let data_opts = data_opts.join(",");
            let fstype = if bind || typ == "none" { None } else { Some(typ) };
            nix::mount::mount(Some(device), &data, fstype, flags, (!data_opts.is_empty()).then_some(data_opts.as_str()))
                .with_context(|| format!("mounting {device} ({typ}) for volume {}", v.name))?;
        }
        users.insert(c.clone());
        Ok(())
    }

    /// After the container stopped: volumes with driver options that no running container
    /// uses any more are unmounted.
    pub fn detach(&self, c: &ContainerId) {
        let mut inner = self.inner.lock().unwrap();
        let mut done = Vec::new();
        for (name, users) in inner.mounted.iter_mut() {
            if users.remove(c) && users.is_empty() {
                done.push(name.clone());
            }
        }
        for name in done {
            inner.mounted.remove(&name);
            if let Err(e) = nix::mount::umount2(&self.data_dir(&name), nix::mount::MntFlags::MNT_DETACH) {
                tracing::warn!(volume = %name, "unmounting: {e}");
            }
        }
    }

    /// At daemon start, with the running containers: their driver-mounted volumes are
    /// counted again; directories no volume record owns are removed.
    pub fn restore(&self, running: &[ContainerId]) -> Result<Vec<String>> {
        let mut actions = Vec::new();
        {
            let mut inner = self.inner.lock().unwrap();
            let with_options: Vec<String> = inner.volumes.values().filter(|v| !v.options.is_empty()).map(|v| v.name.clone()).collect();
            for c in running {
                let names: Vec<String> = inner
                    .by_container
                    .get(c)
                    .map(|ms| ms.iter().filter_map(|m| if let Source::Volume(n) = &m.source { Some(n.clone()) } else { None }).collect())
                    .unwrap_or_default();
                for n in names.into_iter().filter(|n| with_options.contains(n)) {
                    inner.mounted.entry(n).or_default().insert(c.clone());
                }
            }
        }
        let known: BTreeSet<String> = self.inner.lock().unwrap().volumes.keys().cloned().collect();
        for e in std::fs::read_dir(&self.root)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !known.contains(&name) {
                self.remove_dirs(std::slice::from_ref(&name));
                actions.push(format!("removed volume directory {name} that no record owns"));
            }
        }
        for a in &actions {
            tracing::warn!("reconcile: {a}");
        }
        Ok(actions)
    }

    /// Bytes used by a volume (for `system df` and prune).
    pub fn size(&self, name: &str) -> u64 {
        du(&self.data_dir(name))
    }
}

fn is_mount_point(p: &Path) -> bool {
    let Ok(m) = std::fs::read_to_string("/proc/self/mountinfo") else { return false };
    let want = p.display().to_string();
    m.lines().any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

fn du(p: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(p) else { return 0 };
    if meta.is_dir() {
        std::fs::read_dir(p).map(|r| r.flatten().map(|e| du(&e.path())).sum()).unwrap_or(0)
    } else {
        meta.len()
    }
}

/// Docker's copy-up: an empty volume mounted over a directory of the image gets that
/// directory's content, owner and mode.
fn copy_up(rootfs: &Path, destination: &str, data: &Path) -> Result<()> {
    if std::fs::read_dir(data)?.next().is_some() {
        return Ok(());
    }
    let src = crate::util::scope::secure_join(rootfs, Path::new(destination))?;
    let Ok(meta) = std::fs::metadata(&src) else { return Ok(()) };
    if !meta.is_dir() {
        return Ok(());
    }
    for e in std::fs::read_dir(&src)? {
        let e = e?;
        crate::storage::copy_tree(&e.path(), &data.join(e.file_name()))?;
    }
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    nix::unistd::chown(data, Some(meta.uid().into()), Some(meta.gid().into()))?;
    std::fs::set_permissions(data, std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    Ok(())
}
