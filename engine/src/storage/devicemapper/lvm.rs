//! LVM, through its tools: the direct-lvm pool berth makes on a whole device, and the
//! activation of a pool's volume group when the board's boot did not do it.

use super::options::{Options, PoolSource};
use crate::util::command::run_blocking;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::time::Duration;

const VG: &str = "berth";
const LV: &str = "thinpool";
const PROFILE: &str = "berth-thinpool";
const LVM_TIMEOUT: Duration = Duration::from_secs(120);

fn lvm(args: &[&str]) -> Result<String> {
    Ok(String::from_utf8_lossy(&run_blocking("lvm", args, LVM_TIMEOUT)?).into_owned())
}

/// Makes (once) PV, VG `berth` and the thin pool `berth/thinpool` on the configured device, as
/// Docker's direct-lvm does, with an LVM profile for autoextension. Returns the pool device.
/// A device that already carries berth's VG is taken as it is; one that carries anything else
/// (another VG, a filesystem) is refused.
pub fn direct_lvm(root: &Path, opts: &Options) -> Result<String> {
    let PoolSource::DirectLvm { device, data_percent, meta_percent, autoextend_threshold, autoextend_percent } = &opts.pool else {
        bail!("not a direct-lvm configuration");
    };
    let pool = format!("/dev/mapper/{VG}-{LV}");
    // Made by an earlier start: skip asking LVM (a second or more per tool on a small board).
    if std::fs::read_to_string(root.join("direct-lvm")).is_ok_and(|d| d == *device) {
        return Ok(pool);
    }
    let owner = lvm(&["pvs", "--noheadings", "-o", "vg_name", device]).map(|s| s.trim().to_string());
    match owner {
        Ok(vg) if vg == VG => return Ok(pool),
        Ok(vg) if !vg.is_empty() => bail!("dm.directlvm_device {device} belongs to volume group {vg:?}, not berth's"),
        _ => {}
    }
    if let Ok(sig) = run_blocking("blkid", &["-p", "-o", "value", "-s", "TYPE", device], Duration::from_secs(30)) {
        let sig = String::from_utf8_lossy(&sig).trim().to_string();
        if !sig.is_empty() && sig != "LVM2_member" {
            bail!("dm.directlvm_device {device} holds a {sig} filesystem: berth will not overwrite it");
        }
    }
    tracing::info!(device = %device, "making the direct-lvm thin pool");
    // The profile must exist before the pool refers to it.
    let profile_dir = Path::new("/etc/lvm/profile");
    std::fs::create_dir_all(profile_dir).with_context(|| format!("creating {}", profile_dir.display()))?;
    let profile = format!("activation {{\n  thin_pool_autoextend_threshold = {autoextend_threshold}\n  thin_pool_autoextend_percent = {autoextend_percent}\n}}\n");
    berth_images::durable::write_file_mode(&profile_dir.join(format!("{PROFILE}.profile")), profile.as_bytes(), 0o644)?;
    let data = format!("{data_percent}%VG");
    let meta = format!("{meta_percent}%VG");
    let chunk = format!("{}k", opts.block_size.0 / 1024);
    lvm(&["pvcreate", "-y", device])?;
    lvm(&["vgcreate", VG, device])?;
    lvm(&["lvcreate", "-y", "--wipesignatures", "y", "-n", LV, "-l", &data, VG])?;
    lvm(&["lvcreate", "-y", "--wipesignatures", "y", "-n", "thinpoolmeta", "-l", &meta, VG])?;
    lvm(&[
        "lvconvert",
        "-y",
        "--zero",
        "n",
        "-c",
        &chunk,
        "--thinpool",
        &format!("{VG}/{LV}"),
        "--poolmetadata",
        &format!("{VG}/thinpoolmeta"),
    ])?;
    lvm(&["lvchange", "--metadataprofile", PROFILE, &format!("{VG}/{LV}")])?;
    berth_images::durable::write_file_mode(&root.join("direct-lvm"), device.as_bytes(), 0o644)?;
    Ok(pool)
}

/// Activates the LV behind `dev` (`/dev/mapper/<vg>-<lv>` or `/dev/<vg>/<lv>`). Ok(false)
/// when `dev` names no LVM volume.
pub fn activate(dev: &str) -> Result<bool> {
    let Some(lv) = lv_name(dev) else { return Ok(false) };
    tracing::info!(pool = %lv, "activating the thin pool's logical volume");
    lvm(&["lvchange", "-ay", &lv]).with_context(|| format!("activating the thin pool {lv}"))?;
    Ok(true)
}

/// `vg/lv` from `/dev/mapper/vg-lv` (LVM doubles a dash inside a name) or `/dev/vg/lv`.
fn lv_name(dev: &str) -> Option<String> {
    if let Some(m) = dev.strip_prefix("/dev/mapper/") {
        let b = m.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'-' {
                if b.get(i + 1) == Some(&b'-') {
                    i += 2;
                    continue;
                }
                let (vg, lv) = (&m[..i], &m[i + 1..]);
                return Some(format!("{}/{}", vg.replace("--", "-"), lv.replace("--", "-")));
            }
            i += 1;
        }
        return None;
    }
    let rest = dev.strip_prefix("/dev/")?;
    let (vg, lv) = rest.split_once('/')?;
    (!lv.contains('/')).then(|| format!("{vg}/{lv}"))
}

#[cfg(test)]
mod tests {
    use super::lv_name;

    #[test]
    fn lvm_names_come_from_either_path_form() {
        assert_eq!(lv_name("/dev/mapper/berth-thinpool").as_deref(), Some("berth/thinpool"));
        assert_eq!(lv_name("/dev/mapper/my--vg-thin--pool").as_deref(), Some("my-vg/thin-pool"));
        assert_eq!(lv_name("/dev/vg0/pool").as_deref(), Some("vg0/pool"));
        assert_eq!(lv_name("/dev/mapper/nodash"), None);
        assert_eq!(lv_name("/dev/sda"), None);
    }
}
