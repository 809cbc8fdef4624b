//! The OCI runtime spec (`config.json`) for a container, shaped like Docker's defaults:
//! Docker's default capability set, masked and read-only /proc paths, the device cgroup
//! allow-list, and the openEuler engine's umask rule (0027 unless `native.umask=normal`).

use crate::containers::model::Container;
use crate::containers::user::ResolvedUser;
use anyhow::{bail, Context, Result};
use oci_spec::runtime::Spec;
use serde_json::json;
use std::path::Path;

/// Docker's default capabilities (moby `oci/caps/defaults.go`).
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability `--cap-add ALL` grants.
const ALL_CAPS: &[&str] = &[
    "CAP_AUDIT_CONTROL",
    "CAP_AUDIT_READ",
    "CAP_AUDIT_WRITE",
    "CAP_BLOCK_SUSPEND",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_KILL",
    "CAP_LEASE",
    "CAP_LINUX_IMMUTABLE",
    "CAP_MAC_ADMIN",
    "CAP_MAC_OVERRIDE",
    "CAP_MKNOD",
    "CAP_NET_ADMIN",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_RAW",
    "CAP_PERFMON",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_CHROOT",
    "CAP_SYS_MODULE",
    "CAP_SYS_NICE",
    "CAP_SYS_PACCT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
];

fn normalise_cap(c: &str) -> Result<String> {
    let up = c.trim().to_ascii_uppercase();
    if up == "ALL" {
        return Ok(up);
    }
    let full = if up.starts_with("CAP_") { up } else { format!("CAP_{up}") };
    if !ALL_CAPS.contains(&full.as_str()) {
        bail!("unknown capability: {c:?}");
    }
    Ok(full)
}

/// The capability set after `--cap-add`/`--cap-drop`, Docker's way: drops apply to the
/// defaults, adds win over drops, `ALL` means every capability.
pub fn capabilities(add: &[String], drop: &[String]) -> Result<Vec<String>> {
    let add: Vec<String> = add.iter().map(|c| normalise_cap(c)).collect::<Result<_>>()?;
    let drop: Vec<String> = drop.iter().map(|c| normalise_cap(c)).collect::<Result<_>>()?;
    let mut caps: Vec<String> = if add.iter().any(|c| c == "ALL") {
        ALL_CAPS.iter().map(|s| s.to_string()).collect()
    } else if drop.iter().any(|c| c == "ALL") {
        vec![]
    } else {
        DEFAULT_CAPS.iter().map(|s| s.to_string()).filter(|c| !drop.contains(c)).collect()
    };
    for c in add.into_iter().filter(|c| c != "ALL") {
        if !caps.contains(&c) {
            caps.push(c);
        }
    }
    Ok(caps)
}

/// Everything the spec needs that is not in the record.
pub struct SpecInputs<'a> {
    pub rootfs: &'a Path,
    pub user: &'a ResolvedUser,
    pub env: &'a [String],
    pub hostname: &'a str,
    /// The network namespace to join; `None`: the host's.
    pub netns: Option<&'a Path>,
    /// Volumes, binds and tmpfs mounts, after the standard ones.
    pub mounts: &'a [serde_json::Value],
    pub umask: u32,
    /// Namespaces not of its own: (type, `None` for the host's, or the path of another
    /// container's) for `--pid`, `--ipc`, `--uts`.
    pub shared_ns: Vec<(&'static str, Option<std::path::PathBuf>)>,
    /// The init to run as PID 1 (`--init`), bind-mounted at [`crate::init::CONTAINER_PATH`].
    pub init: Option<&'a Path>,
    /// The daemon's hooks then the container's.
    pub hooks: &'a super::hooks::HookSpec,
    /// The daemon's `cgroup-parent`: the container's cgroup is `<parent>/<id>`.
    pub cgroup_parent: &'a str,
}

pub fn build(c: &Container, inputs: &SpecInputs<'_>) -> Result<Spec> {
    let hc = &c.host_config;
    let caps = capabilities(hc.cap_add.as_deref().unwrap_or(&[]), hc.cap_drop.as_deref().unwrap_or(&[]))?;
    let mut args = match inputs.init {
        Some(_) => vec![crate::init::CONTAINER_PATH.to_string(), "--".into(), c.path.clone()],
        None => vec![c.path.clone()],
    };
    args.extend(c.args.iter().cloned());
    let cwd = if c.config.working_dir.is_empty() { "/".to_string() } else { c.config.working_dir.clone() };
    let mut namespaces = vec![json!({"type": "mount"})];
    for kind in ["uts", "pid", "ipc"] {
        match inputs.shared_ns.iter().find(|(k, _)| *k == kind) {
            None => namespaces.push(json!({"type": kind})),
            Some((_, Some(path))) => namespaces.push(json!({"type": kind, "path": path})),
            Some((_, None)) => {} // the host's
        }
    }
    let host_uts = inputs.shared_ns.iter().any(|(k, p)| *k == "uts" && p.is_none());
    if let Some(path) = inputs.netns {
        namespaces.push(json!({"type": "network", "path": path}));
    }
    let annotations = hc.annotations.clone().unwrap_or_default();
    let value = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": c.config.tty,
            "user": {
                "uid": inputs.user.uid,
                "gid": inputs.user.gid,
                "additionalGids": inputs.user.additional_gids,
                "umask": inputs.umask,
            },
            "args": args,
            "env": inputs.env,
            "cwd": cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": false,
            "oomScoreAdj": 0,
        },
        "root": {"path": inputs.rootfs, "readonly": hc.readonly_rootfs},
        "hostname": if host_uts { None } else { Some(inputs.hostname) },
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]},
        ],
        "annotations": annotations,
        "linux": {
            "cgroupsPath": format!("{}/{}", inputs.cgroup_parent, c.id),
            "namespaces": namespaces,
            "resources": {
                "devices": [
                    {"allow": false, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 136, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rwm"},
                    {"allow": false, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
                ]
            },
            "maskedPaths": [
                "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"
            ],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        }
    });
    let mut value = value;
    super::resources::apply(&mut value, &hc.extra);
    inputs.hooks.apply(&mut value);
    if let Some(list) = value["mounts"].as_array_mut() {
        list.extend(inputs.mounts.iter().cloned());
        if let Some(init) = inputs.init {
            list.push(json!({"destination": crate::init::CONTAINER_PATH, "type": "bind", "source": init, "options": ["rbind", "ro", "nosuid", "nodev"]}));
        }
    }
    serde_json::from_value(value).context("building the OCI runtime spec")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_rules_match_docker() {
        let d = capabilities(&[], &[]).unwrap();
        assert_eq!(d.len(), DEFAULT_CAPS.len());
        let c = capabilities(&["NET_ADMIN".into()], &["chown".into()]).unwrap();
        assert!(c.contains(&"CAP_NET_ADMIN".to_string()) && !c.contains(&"CAP_CHOWN".to_string()));
        assert_eq!(capabilities(&[], &["ALL".into()]).unwrap().len(), 0);
        assert_eq!(capabilities(&["ALL".into()], &[]).unwrap().len(), ALL_CAPS.len());
        assert!(capabilities(&["BOGUS".into()], &[]).is_err());
    }
}
