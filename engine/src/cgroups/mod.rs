//! The cgroups of a container, found from its init process: read for `stats` and `top`.
//! Limits are written by the runtime (at start and by `runc update`), never here.
//!
//! Both layouts are read: v1 with one hierarchy per controller (these development hosts) and
//! the unified v2 hierarchy (current device kernels).

pub mod stats;

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where a process's cgroups are.
#[derive(Debug, Clone, PartialEq)]
pub enum Cgroup {
    /// Controller name ("memory", "cpuacct", ...) to its directory.
    V1(BTreeMap<String, PathBuf>),
    V2(PathBuf),
}

/// A mounted cgroup hierarchy: its mount point, the cgroup path it shows as its root, and
/// (v1) its controllers.
struct Hierarchy {
    mount_point: PathBuf,
    root: String,
    controllers: Option<Vec<String>>,
}

/// The cgroup hierarchies of `/proc/self/mountinfo`.
fn hierarchies(mountinfo: &str) -> Vec<Hierarchy> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let mut post = post.split(' ');
            let (fstype, _source, options) = (post.next()?, post.next()?, post.next().unwrap_or(""));
            let controllers = match fstype {
                "cgroup2" => None,
                "cgroup" => Some(options.split(',').filter(|o| !matches!(*o, "rw" | "ro") && !o.contains('=')).map(String::from).collect()),
                _ => return None,
            };
            Some(Hierarchy { mount_point: PathBuf::from(pre.get(4)?), root: pre.get(3)?.to_string(), controllers })
        })
        .collect()
}

/// The directory of cgroup `path` in a hierarchy mounted with root `root` at `mount_point`.
fn dir_in(h: &Hierarchy, path: &str) -> PathBuf {
    let rel = path.strip_prefix(h.root.as_str()).unwrap_or(path);
    h.mount_point.join(rel.trim_start_matches('/'))
}

impl Cgroup {
    /// The cgroups of process `pid`.
    pub fn of_pid(pid: i32) -> Result<Self> {
        let membership =
            std::fs::read_to_string(format!("/proc/{pid}/cgroup")).with_context(|| format!("reading the cgroups of pid {pid}"))?;
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").context("reading the mount table")?;
        Self::resolve(&membership, &mountinfo).with_context(|| format!("finding the cgroups of pid {pid}"))
    }

    fn resolve(membership: &str, mountinfo: &str) -> Result<Self> {
        let hs = hierarchies(mountinfo);
        let mut v1 = BTreeMap::new();
        let mut unified = None;
        for line in membership.lines() {
            let mut parts = line.splitn(3, ':');
            let (_, ctrls, path) = (parts.next(), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            if ctrls.is_empty() {
                unified = hs.iter().find(|h| h.controllers.is_none()).map(|h| dir_in(h, path));
                continue;
            }
            for ctrl in ctrls.split(',') {
                if let Some(h) = hs.iter().find(|h| h.controllers.as_ref().is_some_and(|c| c.iter().any(|c| c == ctrl))) {
                    v1.insert(ctrl.to_string(), dir_in(h, path));
                }
            }
        }
        // A hybrid host has both; the controllers live in the v1 hierarchies then.
        if !v1.is_empty() {
            return Ok(Cgroup::V1(v1));
        }
        unified.map(Cgroup::V2).context("no mounted cgroup hierarchy holds the process")
    }

    /// The directory holding `controller`'s files.
    pub fn dir(&self, controller: &str) -> Option<&Path> {
        match self {
            Cgroup::V1(m) => m.get(controller).map(PathBuf::as_path),
            Cgroup::V2(p) => Some(p),
        }
    }

    /// Every process in the cgroup (and, on v2, its descendants'), sorted.
    pub fn procs(&self) -> Result<Vec<i32>> {
        let dir = match self {
            Cgroup::V1(m) => m.get("pids").or_else(|| m.get("memory")).or_else(|| m.values().next()).context("no v1 cgroup")?.clone(),
            Cgroup::V2(p) => p.clone(),
        };
        let mut out = Vec::new();
        collect_procs(&dir, &mut out)?;
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }
}

fn collect_procs(dir: &Path, out: &mut Vec<i32>) -> Result<()> {
    let file = dir.join("cgroup.procs");
    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            collect_procs(&e.path(), out)?;
        }
    }
    Ok(())
}

/// One value of a cgroup file ("max" and missing files are `None`).
pub(crate) fn read_u64(dir: &Path, file: &str) -> Option<u64> {
    std::fs::read_to_string(dir.join(file)).ok()?.trim().parse().ok()
}

/// A flat-keyed file ("key value" per line), as `memory.stat` and `cpu.stat`.
pub(crate) fn read_keyed(dir: &Path, file: &str) -> BTreeMap<String, u64> {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
30 25 0:26 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw
33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
34 30 0:30 /outer /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
35 30 0:31 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
";

    #[test]
    fn finds_v1_dirs_under_their_mount_roots() {
        let cg = Cgroup::resolve("4:memory:/outer/berth/x\n3:cpu,cpuacct:/berth/x\n1:name=systemd:/berth/x\n0::/\n", MOUNTINFO).unwrap();
        assert_eq!(cg.dir("memory"), Some(Path::new("/sys/fs/cgroup/memory/berth/x")));
        assert_eq!(cg.dir("cpuacct"), Some(Path::new("/sys/fs/cgroup/cpu,cpuacct/berth/x")));
        assert_eq!(cg.dir("pids"), None);
    }

    #[test]
    fn finds_the_unified_dir() {
        let mi = "31 30 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let cg = Cgroup::resolve("0::/berth/x\n", mi).unwrap();
        assert_eq!(cg, Cgroup::V2(PathBuf::from("/sys/fs/cgroup/berth/x")));
        assert_eq!(cg.dir("memory"), Some(Path::new("/sys/fs/cgroup/berth/x")));
        assert!(Cgroup::resolve("0::/berth/x\n", "").is_err());
    }
}
