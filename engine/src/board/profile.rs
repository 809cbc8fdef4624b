//! A board profile: what one kind of board needs from berth, in one TOML file a vendor ships
//! at `/etc/berth/board.toml`. The daemon takes its storage, data-root, cgroup parent, log
//! caps and board name from it (daemon.json and flags still win, key by key); the supervisor
//! takes the watchdog device and timeout; `check-config` turns what the profile chooses into
//! requirements (a devicemapper profile needs dm-thin, a watchdog profile its driver).
//!
//! ```toml
//! [board]
//! name = "raspberrypi4"          # matched against bundles' boards and signing keys
//! description = "Raspberry Pi 4 Model B"
//! arch = "arm64"                 # a profile for another architecture is refused at start
//!
//! [watchdog]                     # optional: boards without one leave it out
//! device = "/dev/watchdog"
//! timeout = 15                   # seconds, within what the driver can count
//! kernel-option = "BCM2835_WDT"  # the driver, so check-config can require it
//! reboot-after = "5m"            # optional: stop feeding once the daemon is unhealthy this long
//!
//! [storage]
//! driver = "overlay2"            # or "devicemapper"
//! data-root = "/data/berth"
//! options = []                   # Docker's storage-opts (dm.*) for devicemapper
//!
//! [cgroups]
//! version = 2                    # optional: check-config warns when the board runs another
//! parent = "/berth"              # containers' cgroups go under it
//!
//! [logs]
//! max-size = "1m"                # json-file caps for every container unless it sets its own
//! max-file = 2
//! ```

use crate::config::LogLimits;
use anyhow::{bail, ensure, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the daemon, the supervisor and check-config look when no profile is named.
pub const DEFAULT_PROFILE: &str = "/etc/berth/board.toml";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub board: Board,
    pub watchdog: Option<Watchdog>,
    pub storage: Storage,
    #[serde(default)]
    pub cgroups: Cgroups,
    pub logs: Option<Logs>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub arch: Arch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Arm64,
    Amd64,
}

impl Arch {
    /// The architecture this binary was built for.
    pub fn host() -> Option<Arch> {
        match std::env::consts::ARCH {
            "aarch64" => Some(Arch::Arm64),
            "x86_64" => Some(Arch::Amd64),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Arm64 => "arm64",
            Arch::Amd64 => "amd64",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Watchdog {
    pub device: PathBuf,
    pub timeout: u32,
    pub kernel_option: Option<String>,
    reboot_after: Option<String>,
}

impl Watchdog {
    /// `reboot-after`, checked when the profile was loaded.
    pub fn reboot_after(&self) -> Option<Duration> {
        self.reboot_after.as_deref().and_then(crate::util::time::parse_duration)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    Overlay2,
    Devicemapper,
}

impl Driver {
    pub fn as_str(self) -> &'static str {
        match self {
            Driver::Overlay2 => "overlay2",
            Driver::Devicemapper => "devicemapper",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Storage {
    pub driver: Driver,
    pub data_root: PathBuf,
    #[serde(default)]
    pub options: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cgroups {
    pub version: Option<u8>,
    pub parent: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Logs {
    pub max_size: String,
    pub max_file: u32,
}

impl Logs {
    /// As the daemon's `log-opts`.
    pub fn opts(&self) -> BTreeMap<String, String> {
        BTreeMap::from([("max-size".to_string(), self.max_size.clone()), ("max-file".to_string(), self.max_file.to_string())])
    }
}

impl Profile {
    /// Parses and checks a profile; every error names the file and the field.
    pub fn parse(text: &str, source: &str) -> Result<Profile> {
        let p: Profile = toml::from_str(text).with_context(|| format!("invalid board profile {source}"))?;
        p.validate().with_context(|| format!("invalid board profile {source}"))?;
        Ok(p)
    }

    pub fn load(path: &Path) -> Result<Profile> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading board profile {}", path.display()))?;
        Profile::parse(&text, &path.display().to_string())
    }

    /// The named profile; without a name the default one when it exists (a missing default
    /// is no profile, a missing named one is an error).
    pub fn find(named: Option<&Path>) -> Result<Option<(PathBuf, Profile)>> {
        let path = match named {
            Some(p) => p.to_path_buf(),
            None if Path::new(DEFAULT_PROFILE).exists() => PathBuf::from(DEFAULT_PROFILE),
            None => return Ok(None),
        };
        let p = Profile::load(&path)?;
        Ok(Some((path, p)))
    }

    fn validate(&self) -> Result<()> {
        let name = &self.board.name;
        ensure!(
            !name.is_empty() && name.len() <= 64 && name.bytes().all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c)),
            "board.name {name:?}: 1 to 64 characters of [A-Za-z0-9-_.]"
        );
        if let Some(w) = &self.watchdog {
            ensure!(w.device.is_absolute(), "watchdog.device {:?} must be an absolute path", w.device);
            ensure!((1..=3600).contains(&w.timeout), "watchdog.timeout {} must be between 1 and 3600 seconds", w.timeout);
            if let Some(r) = &w.reboot_after {
                ensure!(crate::util::time::parse_duration(r).is_some(), "watchdog.reboot-after {r:?} is not a duration (e.g. 5m)");
            }
            if let Some(o) = &w.kernel_option {
                ensure!(kernel_option_name(o), "watchdog.kernel-option {o:?}: a kernel option without CONFIG_, e.g. BCM2835_WDT");
            }
        }
        let s = &self.storage;
        ensure!(s.data_root.is_absolute(), "storage.data-root {:?} must be an absolute path", s.data_root);
        match s.driver {
            Driver::Devicemapper => {
                crate::storage::devicemapper::options::Options::parse(&s.options).context("storage.options")?;
            }
            Driver::Overlay2 => {
                if let Some(o) = s.options.first() {
                    bail!("storage.options {o:?}: overlay2 takes no options here");
                }
            }
        }
        if let Some(v) = self.cgroups.version {
            ensure!(v == 1 || v == 2, "cgroups.version {v}: 1 or 2");
        }
        if let Some(p) = &self.cgroups.parent {
            cgroup_parent(p).context("cgroups.parent")?;
        }
        if let Some(l) = &self.logs {
            LogLimits::from_opts(&l.opts(), LogLimits { max_size: None, max_file: 1 }).context("logs")?;
        }
        Ok(())
    }

    /// Refuses a profile made for another architecture: flashing the wrong one must fail
    /// loudly at the first start, not half-work.
    pub fn check_arch(&self) -> Result<()> {
        match Arch::host() {
            Some(h) if h != self.board.arch => {
                bail!("board profile {:?} is for {}, this is {}", self.board.name, self.board.arch.as_str(), h.as_str())
            }
            _ => Ok(()),
        }
    }

    /// Kernel options this profile's choices make required (without `CONFIG_`).
    pub fn kernel_needs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.storage.driver == Driver::Devicemapper {
            for o in crate::kconfig::OPTIONS.iter().filter(|o| o.need == crate::kconfig::Need::Storage("devicemapper")) {
                out.push((o.name.to_string(), "the profile's storage driver, devicemapper".to_string()));
            }
        } else {
            out.push(("OVERLAY_FS".to_string(), "the profile's storage driver, overlay2".to_string()));
        }
        if let Some(w) = &self.watchdog {
            out.push(("WATCHDOG".to_string(), format!("the profile's watchdog {}", w.device.display())));
            if let Some(o) = &w.kernel_option {
                out.push((o.clone(), format!("the driver of the profile's watchdog {}", w.device.display())));
            }
        }
        out
    }
}

fn kernel_option_name(o: &str) -> bool {
    !o.is_empty() && !o.starts_with("CONFIG_") && o.bytes().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
}

/// A cgroup parent as Docker's `cgroup-parent`: an absolute path of plain components.
pub fn cgroup_parent(p: &str) -> Result<String> {
    let trimmed = p.trim_end_matches('/');
    ensure!(trimmed.starts_with('/') && trimmed.len() > 1, "{p:?}: an absolute cgroup path such as /berth");
    for part in trimmed[1..].split('/') {
        ensure!(
            !part.is_empty() && part != "." && part != ".." && part.bytes().all(|c| c.is_ascii_alphanumeric() || b"-_.@:".contains(&c)),
            "{p:?}: each part of a cgroup path must be a plain name"
        );
    }
    Ok(trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RPI: &str = r#"
[board]
name = "raspberrypi4"
arch = "arm64"
[watchdog]
device = "/dev/watchdog"
timeout = 15
kernel-option = "BCM2835_WDT"
reboot-after = "5m"
[storage]
driver = "overlay2"
data-root = "/data/berth"
[cgroups]
version = 2
parent = "/berth"
[logs]
max-size = "1m"
max-file = 2
"#;

    fn err(text: &str) -> String {
        format!("{:#}", Profile::parse(text, "test.toml").unwrap_err())
    }

    #[test]
    fn a_profile_parses_into_what_the_daemon_and_supervisor_use() {
        let p = Profile::parse(RPI, "rpi").unwrap();
        assert_eq!(p.board.arch, Arch::Arm64);
        let w = p.watchdog.as_ref().unwrap();
        assert_eq!((w.device.as_path(), w.timeout), (Path::new("/dev/watchdog"), 15));
        assert_eq!(w.reboot_after(), Some(Duration::from_secs(300)));
        assert_eq!(p.logs.as_ref().unwrap().opts()["max-size"], "1m");
        let needs: Vec<String> = p.kernel_needs().into_iter().map(|(o, _)| o).collect();
        assert_eq!(needs, ["OVERLAY_FS", "WATCHDOG", "BCM2835_WDT"]);
    }

    #[test]
    fn mistakes_are_refused_with_the_field_named() {
        assert!(err(&RPI.replace("timeout = 15", "timeout = 15\ntimout = 3")).contains("unknown field `timout`"));
        assert!(err(&RPI.replace("arch = \"arm64\"", "arch = \"mips\"")).contains("unknown variant `mips`"));
        assert!(err(&RPI.replace("/data/berth", "data/berth")).contains("storage.data-root"));
        assert!(err(&RPI.replace("timeout = 15", "timeout = 0")).contains("watchdog.timeout 0"));
        assert!(err(&RPI.replace("\"5m\"", "\"soon\"")).contains("watchdog.reboot-after"));
        assert!(err(&RPI.replace("\"BCM2835_WDT\"", "\"CONFIG_BCM2835_WDT\"")).contains("without CONFIG_"));
        assert!(err(&RPI.replace("\"/berth\"", "\"/berth/../x\"")).contains("cgroups.parent"));
        assert!(err(&RPI.replace("max-file = 2", "max-file = 0")).contains("logs"));
        assert!(err(&RPI.replace("name = \"raspberrypi4\"", "name = \"pi 4\"")).contains("board.name"));
        let dm = RPI.replace("\"overlay2\"", "\"devicemapper\"");
        assert!(err(&dm).contains("storage.options"), "{}", err(&dm));
        assert!(err(&RPI.replace("data-root = \"/data/berth\"", "data-root = \"/d\"\noptions = [\"dm.basesize=1G\"]"))
            .contains("overlay2 takes no options"));
    }

    #[test]
    fn cgroup_parents() {
        assert_eq!(cgroup_parent("/berth/").unwrap(), "/berth");
        assert_eq!(cgroup_parent("/system.slice/berth").unwrap(), "/system.slice/berth");
        assert!(cgroup_parent("berth").is_err());
        assert!(cgroup_parent("/").is_err());
        assert!(cgroup_parent("/a//b").is_err());
    }
}
