//! The board's hardware watchdog (`/dev/watchdog`): once opened, the board reboots unless it
//! is written to within its timeout. The supervisor feeds it while the daemon is healthy
//! enough and closes it with the magic `V` only on a clean stop, so a supervisor that dies
//! (or a board that hangs) is rebooted by the hardware.

use anyhow::{Context, Result};
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;

// WDIOC_SETTIMEOUT = _IOWR('W', 6, int), from linux/watchdog.h.
nix::ioctl_readwrite!(wdioc_settimeout, b'W', 6, libc::c_int);

pub struct Hardware {
    file: File,
}

impl Hardware {
    /// Opens the device and sets its timeout. A file that is not a watchdog (a stand-in in
    /// tests) takes writes but no ioctl: that is logged, not an error.
    pub fn open(path: &Path, timeout_secs: u32) -> Result<Self> {
        let file =
            std::fs::OpenOptions::new().write(true).open(path).with_context(|| format!("opening the watchdog {}", path.display()))?;
        let mut t = timeout_secs as libc::c_int;
        // SAFETY: a valid open descriptor and a pointer to an int, as WDIOC_SETTIMEOUT expects.
        match unsafe { wdioc_settimeout(file.as_raw_fd(), &mut t) } {
            Ok(_) => tracing::info!(device = %path.display(), timeout_s = t, "hardware watchdog armed"),
            Err(nix::errno::Errno::ENOTTY) | Err(nix::errno::Errno::EINVAL) => {
                tracing::warn!(device = %path.display(), "not a watchdog device (no WDIOC_SETTIMEOUT): fed by writes only")
            }
            Err(e) => return Err(e).with_context(|| format!("setting the timeout of {}", path.display())),
        }
        Ok(Hardware { file })
    }

    /// One keepalive (any write is one, for every Linux watchdog driver).
    pub fn feed(&mut self) {
        if let Err(e) = self.file.write_all(b"\0").and_then(|_| self.file.flush()) {
            tracing::error!("feeding the hardware watchdog: {e}");
        }
    }

    /// The magic close: the driver disarms instead of rebooting. Only on a clean stop.
    pub fn disarm(mut self) {
        if let Err(e) = self.file.write_all(b"V") {
            tracing::error!("magic close of the hardware watchdog: {e}");
        }
    }
}
