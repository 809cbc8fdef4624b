//! Failpoints: named places in multi-step operations where a test makes the daemon die on
//! the spot (abort: no unwinding, no cleanup, like a crash or a power cut), to check that
//! recovery finishes or undoes what was in flight. Armed by `BERTH_FAILPOINTS=name[,name]` in
//! debug builds only; in release builds `hit` is empty.

/// Every failpoint, so tests can walk them all.
pub const ALL: &[&str] = &[
    "container.create.after-intent",
    "container.create.after-rootfs",
    "container.start.after-mount",
    "container.start.after-network",
    "container.start.after-monitor",
    "container.remove.after-commit",
    "container.exit.before-autoremove",
    "image.layers.after-intent",
    "image.layers.after-first-layer",
    "image.layers.before-commit",
    "image.delete.after-commit",
];

#[inline]
pub fn hit(name: &str) {
    #[cfg(debug_assertions)]
    if let Some(list) = std::env::var_os("BERTH_FAILPOINTS") {
        if list.to_string_lossy().split(',').any(|n| n == name) {
            eprintln!("berth: failpoint {name} reached: aborting");
            std::process::abort();
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}
