//! Board profiles (`board-support/profiles/*.toml`, built into the binary so a vendor can
//! start from one: `berth board show raspberrypi4 > /etc/berth/board.toml`).

pub mod profile;

pub use profile::{Profile, DEFAULT_PROFILE};

use std::path::Path;

/// The profiles berth ships, by name.
pub const BUILT_IN: &[(&str, &str)] = &[
    ("generic-arm64", include_str!("../../../board-support/profiles/generic-arm64.toml")),
    ("raspberrypi4", include_str!("../../../board-support/profiles/raspberrypi4.toml")),
    ("raspberrypi5", include_str!("../../../board-support/profiles/raspberrypi5.toml")),
    ("qemu-virt", include_str!("../../../board-support/profiles/qemu-virt.toml")),
];

#[derive(Debug, clap::Subcommand)]
pub enum BoardCommand {
    /// The profiles built into berth
    #[command(alias = "ls")]
    List,
    /// Print a built-in profile (to start /etc/berth/board.toml from)
    Show { name: String },
    /// Check a profile and print what berth takes from it (default /etc/berth/board.toml)
    Check { file: Option<std::path::PathBuf> },
}

/// `berth board ...`; the exit status.
pub fn run(cmd: BoardCommand) -> i32 {
    match cmd {
        BoardCommand::List => {
            println!("{:<16} {:<6} {:<13} {:<14} DESCRIPTION", "NAME", "ARCH", "STORAGE", "WATCHDOG");
            for (name, text) in BUILT_IN {
                match Profile::parse(text, name) {
                    Ok(p) => println!(
                        "{:<16} {:<6} {:<13} {:<14} {}",
                        name,
                        p.board.arch.as_str(),
                        p.storage.driver.as_str(),
                        p.watchdog.as_ref().map(|w| w.device.display().to_string()).unwrap_or_else(|| "-".into()),
                        p.board.description
                    ),
                    Err(e) => println!("{name:<16} {e:#}"),
                }
            }
            0
        }
        BoardCommand::Show { name } => match BUILT_IN.iter().find(|(n, _)| *n == name) {
            Some((_, text)) => {
                print!("{text}");
                0
            }
            None => {
                let names: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
                eprintln!("berth board: no built-in profile {name:?} (there are: {})", names.join(", "));
                1
            }
        },
        BoardCommand::Check { file } => {
            let path = file.unwrap_or_else(|| DEFAULT_PROFILE.into());
            match Profile::load(&path) {
                Ok(p) => {
                    print!("{}", describe(&path, &p));
                    match p.check_arch() {
                        Ok(()) => 0,
                        Err(e) => {
                            eprintln!("berth board: {e:#}");
                            1
                        }
                    }
                }
                Err(e) => {
                    eprintln!("berth board: {e:#}");
                    1
                }
            }
        }
    }
}

/// What each part of berth takes from a profile.
pub fn describe(path: &Path, p: &Profile) -> String {
    let mut t = format!("board profile {} ({}, {})\n", path.display(), p.board.name, p.board.arch.as_str());
    t.push_str(&format!("  daemon:     storage-driver {}, data-root {}", p.storage.driver.as_str(), p.storage.data_root.display()));
    for o in &p.storage.options {
        t.push_str(&format!(", {o}"));
    }
    if let Some(parent) = &p.cgroups.parent {
        t.push_str(&format!(", cgroup-parent {parent}"));
    }
    if let Some(l) = &p.logs {
        t.push_str(&format!(", log-opts max-size={} max-file={}", l.max_size, l.max_file));
    }
    t.push('\n');
    match &p.watchdog {
        Some(w) => t.push_str(&format!(
            "  supervisor: --hw-watchdog {} --hw-timeout {}{}\n",
            w.device.display(),
            w.timeout,
            w.reboot_after().map(|d| format!(" --reboot-after {}s", d.as_secs())).unwrap_or_default()
        )),
        None => t.push_str("  supervisor: no hardware watchdog\n"),
    }
    let needs: Vec<String> = p.kernel_needs().into_iter().map(|(o, _)| format!("CONFIG_{o}")).collect();
    t.push_str(&format!("  kernel:     also requires {}\n", needs.join(", ")));
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_profile_is_valid_and_named_as_its_file() {
        for (name, text) in BUILT_IN {
            let p = Profile::parse(text, name).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert_eq!(&p.board.name, name);
            assert!(!p.board.description.is_empty(), "{name} has no description");
        }
        let on_disk = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../board-support/profiles")).unwrap().count();
        assert_eq!(on_disk, BUILT_IN.len(), "a profile in board-support/profiles is not built in");
    }
}
