//! A dm-thin pool made by LVM (or anyone): its status, the messages that create and delete
//! thin devices in it, and the activation of one thin device as a dm device of berth's.

use super::ioctl::{is_errno, Control, Target};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// A thin device's id inside the pool (24 bits, the kernel's limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct ThinId(pub u32);

pub const MAX_THIN_ID: u32 = (1 << 24) - 1;

/// The thin-pool target's status line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolStatus {
    pub transaction_id: u64,
    pub meta_used: u64,
    pub meta_total: u64,
    pub data_used: u64,
    pub data_total: u64,
    /// `rw`, `ro` (metadata problems) or `out_of_data_space`; `Fail` when the pool failed.
    pub mode: String,
    pub needs_check: bool,
}

impl PoolStatus {
    pub fn parse(line: &str) -> Result<PoolStatus> {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.first() == Some(&"Fail") || f.first() == Some(&"Error") {
            return Ok(PoolStatus {
                transaction_id: 0,
                meta_used: 0,
                meta_total: 0,
                data_used: 0,
                data_total: 0,
                mode: "Fail".into(),
                needs_check: true,
            });
        }
        if f.len() < 5 {
            bail!("thin-pool status {line:?}: too few fields");
        }
        let pair = |s: &str| -> Result<(u64, u64)> {
            let (a, b) = s.split_once('/').with_context(|| format!("thin-pool status field {s:?}"))?;
            Ok((a.parse()?, b.parse()?))
        };
        let (meta_used, meta_total) = pair(f[1])?;
        let (data_used, data_total) = pair(f[2])?;
        Ok(PoolStatus {
            transaction_id: f[0].parse().with_context(|| format!("thin-pool transaction id in {line:?}"))?,
            meta_used,
            meta_total,
            data_used,
            data_total,
            mode: f.get(4).unwrap_or(&"rw").to_string(),
            needs_check: f.get(7) == Some(&"needs_check"),
        })
    }
}

pub struct Pool {
    pub dm: Control,
    /// The dm name of the device whose table is the thin-pool target.
    pub name: String,
    major: u32,
    minor: u32,
    /// Data block size, in 512-byte sectors.
    pub block_sectors: u64,
    /// Where berth makes the block nodes of its thin devices (no udev on a board).
    nodes: PathBuf,
}

impl Pool {
    /// Opens the pool `dev`: `/dev/mapper/<name>`, `/dev/<vg>/<lv>` or a dm name. An LVM thin
    /// pool LV with thin volumes of its own is a linear device over `<name>-tpool`: that is
    /// where the messages go.
    pub fn open(dev: &str, nodes: &Path) -> Result<Pool> {
        let dm = Control::open()?;
        let name = dm_name(dev)?;
        for candidate in [name.clone(), format!("{name}-tpool")] {
            let Some(info) = dm.info(&candidate)? else { continue };
            let table = dm.table(&candidate)?;
            if let [t] = table.as_slice() {
                if t.kind == "thin-pool" {
                    // metadata_dev data_dev data_block_size low_water_mark [features]
                    let block_sectors =
                        t.params.split_whitespace().nth(2).and_then(|b| b.parse().ok()).context("thin-pool table without a block size")?;
                    std::fs::create_dir_all(nodes).with_context(|| format!("creating {}", nodes.display()))?;
                    return Ok(Pool {
                        dm,
                        name: candidate,
                        major: info.major,
                        minor: info.minor,
                        block_sectors,
                        nodes: nodes.to_path_buf(),
                    });
                }
            }
        }
        bail!("{dev} is not an active thin pool (no thin-pool target in device-mapper device {name:?} or {name}-tpool)")
    }

    pub fn status(&self) -> Result<PoolStatus> {
        let s = self.dm.status(&self.name)?;
        let line = s.first().with_context(|| format!("thin pool {} has no status", self.name))?;
        PoolStatus::parse(&line.params)
    }

    /// The kernel commits the pool's metadata after every successful message, before the
    /// ioctl returns (dm-thin's pool_message): a device created or deleted here survives a
    /// power cut from the moment this returns Ok, which is what the record order relies on.
    fn message(&self, m: &str) -> Result<()> {
        self.dm.message(&self.name, m)
    }

    pub fn create_thin(&self, id: ThinId) -> Result<()> {
        self.message(&format!("create_thin {}", id.0))
    }

    /// A snapshot of `origin`. The origin must not be written during the call: berth only
    /// snapshots image layers, which are never written after they are made, and containers
    /// that are not running (commit).
    pub fn create_snap(&self, id: ThinId, origin: ThinId) -> Result<()> {
        self.message(&format!("create_snap {} {}", id.0, origin.0))
    }

    /// Deletes thin device `id`; Ok(false) when the pool has no such device.
    pub fn delete(&self, id: ThinId) -> Result<bool> {
        match self.message(&format!("delete {}", id.0)) {
            Ok(()) => Ok(true),
            Err(e) if is_errno(&e, nix::libc::ENODATA) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub fn set_transaction_id(&self, old: u64, new: u64) -> Result<()> {
        self.message(&format!("set_transaction_id {old} {new}"))
    }

    /// Activates thin device `id` as dm device `name` of `sectors`; returns its block node.
    pub fn activate(&self, name: &str, id: ThinId, sectors: u64) -> Result<PathBuf> {
        if self.dm.info(name)?.is_none() {
            self.dm.create(name, &format!("BERTH-{name}"))?;
            let table =
                [Target { start: 0, length: sectors, kind: "thin".into(), params: format!("{}:{} {}", self.major, self.minor, id.0) }];
            if let Err(e) = self.dm.load(name, &table).and_then(|()| self.dm.resume(name)) {
                let _ = self.dm.remove(name, false);
                return Err(e.context(format!("activating thin device {} as {name}", id.0)));
            }
        }
        let info = self.dm.info(name)?.with_context(|| format!("{name} vanished after activation"))?;
        let node = self.nodes.join(name);
        let dev = nix::sys::stat::makedev(info.major.into(), info.minor.into());
        match nix::sys::stat::stat(&node) {
            Ok(st) if st.st_rdev == dev => {}
            _ => {
                let _ = std::fs::remove_file(&node);
                nix::sys::stat::mknod(&node, nix::sys::stat::SFlag::S_IFBLK, nix::sys::stat::Mode::from_bits_truncate(0o600), dev)
                    .with_context(|| format!("making the block node {}", node.display()))?;
            }
        }
        Ok(node)
    }

    /// Flushes and removes dm device `name`. When it is busy (a process still holds it open)
    /// and `deferred`, the kernel removes it at its last close; Ok(false) then.
    pub fn deactivate(&self, name: &str, deferred: bool) -> Result<bool> {
        let Some(info) = self.dm.info(name)? else {
            let _ = std::fs::remove_file(self.nodes.join(name));
            return Ok(true);
        };
        if info.open_count == 0 {
            // A flush to the thin device commits the pool's metadata: what was written is
            // durable before the device goes.
            if let Ok(f) = std::fs::File::open(self.nodes.join(name)) {
                f.sync_all().with_context(|| format!("flushing {name}"))?;
            }
        }
        match self.dm.remove(name, false) {
            Ok(()) => {
                let _ = std::fs::remove_file(self.nodes.join(name));
                Ok(true)
            }
            Err(e) if is_errno(&e, nix::libc::EBUSY) && deferred => {
                self.dm.remove(name, true)?;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Names of berth's active dm devices (its prefix).
    pub fn active(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(self.dm.list()?.into_iter().filter(|n| n.starts_with(prefix)).collect())
    }
}

/// The dm name behind `dev`: a path under /dev (followed to /dev/dm-N, whose sysfs entry names
/// it) or a bare name.
fn dm_name(dev: &str) -> Result<String> {
    if let Some(n) = dev.strip_prefix("/dev/mapper/") {
        return Ok(n.to_string());
    }
    if !dev.starts_with('/') {
        return Ok(dev.to_string());
    }
    let real = std::fs::canonicalize(dev).with_context(|| format!("thin pool device {dev}"))?;
    let base = real.file_name().and_then(|b| b.to_str()).unwrap_or_default().to_string();
    let sys = format!("/sys/block/{base}/dm/name");
    Ok(std::fs::read_to_string(&sys).with_context(|| format!("{dev} is not a device-mapper device ({sys})"))?.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_status_lines_parse() {
        let s = PoolStatus::parse("7 210/4161600 4880/1638400 - rw no_discard_passdown queue_if_no_space - 1024").unwrap();
        assert_eq!((s.transaction_id, s.meta_used, s.meta_total, s.data_used, s.data_total), (7, 210, 4161600, 4880, 1638400));
        assert_eq!(s.mode, "rw");
        assert!(!s.needs_check);
        let ro = PoolStatus::parse("9 1/2 3/4 - out_of_data_space discard_passdown error_if_no_space needs_check 10").unwrap();
        assert_eq!(ro.mode, "out_of_data_space");
        assert!(ro.needs_check);
        assert_eq!(PoolStatus::parse("Fail").unwrap().mode, "Fail");
        assert!(PoolStatus::parse("x 1/2").is_err());
    }
}
