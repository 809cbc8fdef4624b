//! `berth check-config`: is this kernel (or a given config) fit for berth? Like Moby's
//! check-config.sh, built in: the kernel's config from `/proc/config.gz` or
//! `/boot/config-<release>`, and for the running kernel a look at the live system too
//! (device-mapper registered, overlay known, cgroup v2 controllers, a watchdog device).
//! Exit status: 0 all required options present, 1 something required (or every storage
//! driver) is missing, 2 no config to read.

mod requirements;

pub use requirements::{fragment, Need, OPTIONS};

use crate::board::Profile;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// `CONFIG_X` → `y`, `m` or a value; options "is not set" are absent.
pub fn parse(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("CONFIG_"))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

/// Reads a config file, gzip-compressed or not.
pub fn read(path: &Path) -> Result<String> {
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut s = String::new();
        flate2::read::GzDecoder::new(raw.as_slice()).read_to_string(&mut s).with_context(|| format!("decompressing {}", path.display()))?;
        Ok(s)
    } else {
        Ok(String::from_utf8_lossy(&raw).into_owned())
    }
}

/// Where the running kernel's config is.
fn running_config() -> Option<PathBuf> {
    let release = nix::sys::utsname::uname().ok()?.release().to_string_lossy().into_owned();
    [PathBuf::from("/proc/config.gz"), PathBuf::from(format!("/boot/config-{release}"))].into_iter().find(|p| p.exists())
}

fn enabled(cfg: &BTreeMap<String, String>, name: &str) -> bool {
    matches!(cfg.get(name).map(String::as_str), Some("y" | "m"))
}

/// The report, and how it ends (the exit status).
pub struct Report {
    pub text: String,
    pub code: i32,
}

pub fn check(cfg: &BTreeMap<String, String>, source: &str, live: bool, profile: Option<&Profile>) -> Report {
    let mut t = format!("kernel config: {source}\n");
    let mut missing_required = 0;
    let line = |t: &mut String, o: &requirements::KernelOption, ok: bool| {
        let state = match (ok, cfg.get(o.name).map(String::as_str)) {
            (true, Some("m")) => "ok (module)".to_string(),
            (true, _) => "ok".to_string(),
            (false, _) => format!("missing: {}", o.breaks),
        };
        t.push_str(&format!("  CONFIG_{:<24} {state}\n", o.name));
    };
    t.push_str("\nRequired:\n");
    for o in OPTIONS.iter().filter(|o| o.need == Need::Required) {
        let ok = enabled(cfg, o.name);
        missing_required += usize::from(!ok);
        line(&mut t, o, ok);
    }
    t.push_str("\nStorage drivers (at least one complete):\n");
    let mut drivers: Vec<&str> = OPTIONS.iter().filter_map(|o| if let Need::Storage(d) = o.need { Some(d) } else { None }).collect();
    drivers.dedup();
    let mut complete = Vec::new();
    for d in &drivers {
        let opts: Vec<_> = OPTIONS.iter().filter(|o| o.need == Need::Storage(d)).collect();
        let ok = opts.iter().all(|o| enabled(cfg, o.name));
        t.push_str(&format!("  {d}: {}\n", if ok { "available" } else { "NOT available" }));
        for o in opts {
            line(&mut t, o, enabled(cfg, o.name));
        }
        if ok {
            complete.push(*d);
        }
    }
    t.push_str("\nOptional:\n");
    for o in OPTIONS.iter().filter(|o| o.need == Need::Optional) {
        line(&mut t, o, enabled(cfg, o.name));
    }
    if live {
        t.push_str("\nThe running system:\n");
        t.push_str(&live_report());
    }
    if let Some(p) = profile {
        missing_required += board_report(cfg, p, live, &mut t);
    }
    let code = if missing_required > 0 || complete.is_empty() { 1 } else { 0 };
    t.push_str(&format!(
        "\nResult: {} required option(s) missing; storage drivers available: {}\n",
        missing_required,
        if complete.is_empty() { "none".to_string() } else { complete.join(", ") }
    ));
    Report { text: t, code }
}

/// What the board profile's choices require; the number of them missing.
fn board_report(cfg: &BTreeMap<String, String>, p: &Profile, live: bool, t: &mut String) -> usize {
    let mut missing = 0;
    t.push_str(&format!("\nBoard profile {} ({}):\n", p.board.name, p.board.description));
    for (name, why) in p.kernel_needs() {
        let ok = enabled(cfg, &name);
        missing += usize::from(!ok);
        let state = if ok { "ok".to_string() } else { format!("missing: needed by {why}") };
        t.push_str(&format!("  CONFIG_{name:<24} {state}\n"));
    }
    if !live {
        return missing;
    }
    let mut fact = |ok: bool, what: String, bad: String| {
        missing += usize::from(!ok);
        t.push_str(&format!("  {what:<32} {}\n", if ok { "ok".to_string() } else { format!("missing: {bad}") }));
    };
    if let Some(w) = &p.watchdog {
        fact(w.device.exists(), format!("watchdog {}", w.device.display()), "the supervisor cannot feed it (driver not loaded?)".into());
    }
    if p.storage.driver == crate::board::profile::Driver::Devicemapper {
        fact(device_mapper_present(), "device-mapper".into(), "the profile's devicemapper driver cannot start (load dm-thin-pool)".into());
        for o in &p.storage.options {
            if let Some((_, dev)) = o.split_once("dm.directlvm_device=").or_else(|| o.split_once("dm.thinpooldev=")) {
                fact(Path::new(dev).exists(), dev.to_string(), "the profile's thin pool device is not there".into());
            }
        }
    }
    if let Some(v) = p.cgroups.version {
        let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        let running = if v2 { 2 } else { 1 };
        fact(running == v, format!("cgroup v{v}"), format!("the board runs cgroup v{running}"));
    }
    missing
}

/// Is device-mapper registered with the running kernel?
fn device_mapper_present() -> bool {
    std::fs::read_to_string("/proc/devices").is_ok_and(|s| s.split_whitespace().any(|w| w == "device-mapper"))
        || Path::new("/dev/mapper/control").exists()
}

/// What the config cannot say: modules loaded or loadable, mounts, devices.
fn live_report() -> String {
    let mut t = String::new();
    let has = |file: &str, word: &str| std::fs::read_to_string(file).is_ok_and(|s| s.split_whitespace().any(|w| w == word));
    let dm = device_mapper_present();
    t.push_str(&format!(
        "  device-mapper            {}\n",
        if dm { "present" } else { "missing: the devicemapper storage driver cannot run (load dm-mod and dm-thin-pool)" }
    ));
    let overlay = has("/proc/filesystems", "overlay");
    t.push_str(&format!(
        "  overlay filesystem       {}\n",
        if overlay { "present" } else { "not loaded (modprobe overlay; overlay2 needs it)" }
    ));
    match std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers") {
        Ok(c) => t.push_str(&format!("  cgroup v2 controllers    {}\n", c.trim())),
        Err(_) if Path::new("/sys/fs/cgroup/memory").exists() => t.push_str("  cgroups                  v1 hierarchy\n"),
        Err(_) => t.push_str("  cgroups                  missing: no cgroup hierarchy mounted at /sys/fs/cgroup\n"),
    }
    let wd = Path::new("/dev/watchdog").exists();
    t.push_str(&format!(
        "  watchdog device          {}\n",
        if wd { "present (/dev/watchdog)" } else { "missing: the supervisor cannot feed a hardware watchdog" }
    ));
    t
}

/// `berth check-config [--config FILE] [--fragment] [--board-profile FILE]`.
pub fn run(config: Option<&Path>, fragment_only: bool, board_profile: Option<&Path>) -> i32 {
    if fragment_only {
        print!("{}", fragment());
        return 0;
    }
    let profile = match Profile::find(board_profile) {
        Ok(p) => p.map(|(_, p)| p),
        Err(e) => {
            eprintln!("berth check-config: {e:#}");
            return 2;
        }
    };
    let (path, live) = match config {
        Some(p) => (p.to_path_buf(), false),
        None => match running_config() {
            Some(p) => (p, true),
            None => {
                eprintln!("berth check-config: no kernel config found (/proc/config.gz, /boot/config-<release>): give one with --config");
                return 2;
            }
        },
    };
    match read(&path) {
        Ok(text) => {
            let r = check(&parse(&text), &path.display().to_string(), live, profile.as_ref());
            print!("{}", r.text);
            r.code
        }
        Err(e) => {
            eprintln!("berth check-config: {e:#}");
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(missing: &[&str], modules: &[&str]) -> BTreeMap<String, String> {
        let mut text = String::new();
        for o in OPTIONS {
            if missing.contains(&o.name) {
                text.push_str(&format!("# CONFIG_{} is not set\n", o.name));
            } else {
                text.push_str(&format!("CONFIG_{}={}\n", o.name, if modules.contains(&o.name) { "m" } else { "y" }));
            }
        }
        parse(&text)
    }

    /// The report's line about `CONFIG_<name>`, after the name.
    fn state(text: &str, name: &str) -> String {
        let key = format!("CONFIG_{name} ");
        text.lines().find(|l| l.trim_start().starts_with(&key)).map(|l| l.trim_start()[key.len()..].trim().to_string()).unwrap_or_default()
    }

    #[test]
    fn a_complete_config_passes_and_modules_count() {
        let r = check(&config(&[], &["BLK_DEV_DM", "DM_THIN_PROVISIONING"]), "sample", false, None);
        assert_eq!(r.code, 0, "{}", r.text);
        assert_eq!(state(&r.text, "BLK_DEV_DM"), "ok (module)");
        assert_eq!(state(&r.text, "VETH"), "ok");
        assert!(r.text.contains("storage drivers available: overlay2, devicemapper"), "{}", r.text);
    }

    #[test]
    fn no_device_mapper_leaves_overlay2_and_says_what_is_lost() {
        let r = check(&config(&["BLK_DEV_DM", "DM_THIN_PROVISIONING"], &[]), "sample", false, None);
        assert_eq!(r.code, 0);
        assert!(r.text.contains("devicemapper: NOT available"), "{}", r.text);
        assert_eq!(state(&r.text, "BLK_DEV_DM"), "missing: the devicemapper storage driver (thin pools)");
    }

    #[test]
    fn a_missing_required_option_or_every_driver_fails() {
        let r = check(&config(&["NET_NS"], &[]), "sample", false, None);
        assert_eq!(r.code, 1);
        assert_eq!(state(&r.text, "NET_NS"), "missing: no container networking");
        let r = check(&config(&["OVERLAY_FS", "BLK_DEV_DM"], &[]), "sample", false, None);
        assert_eq!(r.code, 1);
        assert!(r.text.contains("storage drivers available: none"), "{}", r.text);
    }

    #[test]
    fn a_board_profile_makes_its_choices_required() {
        let (_, rpi5) = crate::board::BUILT_IN.iter().find(|(n, _)| *n == "raspberrypi5").unwrap();
        let p = Profile::parse(rpi5, "rpi5").unwrap();
        // Without the profile a kernel without dm-thin passes (overlay2 is there) ...
        let no_dm = config(&["DM_THIN_PROVISIONING"], &[]);
        assert_eq!(check(&no_dm, "sample", false, None).code, 0);
        // ... with a devicemapper profile it does not, and says why.
        let r = check(&no_dm, "sample", false, Some(&p));
        assert_eq!(r.code, 1, "{}", r.text);
        let board = &r.text[r.text.find("Board profile raspberrypi5").expect("a board section")..];
        assert_eq!(state(board, "DM_THIN_PROVISIONING"), "missing: needed by the profile's storage driver, devicemapper");
        // The watchdog driver the profile names is required too; the generic list has no such option.
        assert_eq!(state(board, "BCM2835_WDT"), "missing: needed by the driver of the profile's watchdog /dev/watchdog");
        let mut full = config(&[], &[]);
        full.insert("BCM2835_WDT".into(), "m".into());
        assert_eq!(check(&full, "sample", false, Some(&p)).code, 0);
    }

    #[test]
    fn gzip_and_plain_configs_read_alike() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("berth-kconfig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let plain = "CONFIG_OVERLAY_FS=m\n# CONFIG_VETH is not set\nCONFIG_CMDLINE=\"a b\"\n";
        std::fs::write(dir.join("plain"), plain).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(plain.as_bytes()).unwrap();
        std::fs::write(dir.join("config.gz"), gz.finish().unwrap()).unwrap();
        let a = parse(&read(&dir.join("plain")).unwrap());
        assert_eq!(a, parse(&read(&dir.join("config.gz")).unwrap()));
        assert_eq!(a.get("OVERLAY_FS").map(String::as_str), Some("m"));
        assert!(!a.contains_key("VETH"));
        assert_eq!(a.get("CMDLINE").map(String::as_str), Some("a b"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
