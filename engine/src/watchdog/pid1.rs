//! The supervisor as PID 1: on a minimal board (`init=/usr/bin/berth supervise`, after an
//! initramfs or a script mounted the file systems) or as the first process of a PID
//! namespace. PID 1 has duties no other process has:
//! - every orphan on the system becomes its child: it must reap them, or zombies pile up;
//! - the kernel delivers it only signals it handles, and busybox's `reboot`, `poweroff` and
//!   `halt` speak to it by signal (SIGTERM, SIGUSR2, SIGUSR1; ctrl-alt-del is SIGINT);
//! - it must never exit (the kernel panics): it ends by asking the kernel to reboot.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

pub fn is_pid1() -> bool {
    std::process::id() == 1
}

/// What the signal that stopped PID 1 asks for, as busybox init reads its signals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    Reboot,
    PowerOff,
    Halt,
}

impl Shutdown {
    pub fn from_signal(sig: i32) -> Shutdown {
        match sig {
            libc::SIGUSR2 => Shutdown::PowerOff,
            libc::SIGUSR1 => Shutdown::Halt,
            _ => Shutdown::Reboot,
        }
    }

    fn request(self) -> nix::sys::reboot::RebootMode {
        use nix::sys::reboot::RebootMode;
        match self {
            Shutdown::Reboot => RebootMode::RB_AUTOBOOT,
            Shutdown::PowerOff => RebootMode::RB_POWER_OFF,
            Shutdown::Halt => RebootMode::RB_HALT_SYSTEM,
        }
    }
}

/// Reaps every child that has ended (the daemon, and as PID 1 any orphan) without blocking.
/// Returns the daemon's status when it was among them: after this, `Child::try_wait` cannot
/// see it any more, so callers ask here instead.
pub fn reap(daemon: u32) -> Option<ExitStatus> {
    let mut found = None;
    loop {
        let mut raw: libc::c_int = 0;
        // SAFETY: waitpid with a valid pointer to a local; WNOHANG never blocks.
        let pid = unsafe { libc::waitpid(-1, &mut raw, libc::WNOHANG) };
        if pid > 0 {
            if pid as u32 == daemon {
                found = Some(ExitStatus::from_raw(raw));
            } else {
                tracing::debug!(pid, "reaped an orphan");
            }
            continue;
        }
        if pid < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return found;
    }
}

/// The end of PID 1: SIGTERM to every other process, SIGKILL to what is left after `grace`,
/// file systems synced, then the kernel reboots, powers off or halts. In a PID namespace the
/// kernel ends the namespace instead (its init dies of SIGHUP for a reboot, SIGINT otherwise).
pub fn shut_down(how: Shutdown, grace: Duration) -> ! {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    tracing::warn!(?how, "PID 1 is shutting down: SIGTERM to every process");
    let _ = kill(Pid::from_raw(-1), Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        reap(0);
        // ESRCH: no process left to signal.
        if kill(Pid::from_raw(-1), None).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
    reap(0);
    nix::unistd::sync();
    let err = nix::sys::reboot::reboot(how.request()).unwrap_err();
    // Only without CAP_SYS_BOOT: PID 1 must still not exit, so it waits for the power switch.
    tracing::error!("reboot({how:?}) failed: {err}; waiting for a power cycle");
    loop {
        reap(0);
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busybox_signals_map_to_shutdowns() {
        assert_eq!(Shutdown::from_signal(libc::SIGTERM), Shutdown::Reboot);
        assert_eq!(Shutdown::from_signal(libc::SIGINT), Shutdown::Reboot);
        assert_eq!(Shutdown::from_signal(libc::SIGUSR2), Shutdown::PowerOff);
        assert_eq!(Shutdown::from_signal(libc::SIGUSR1), Shutdown::Halt);
    }
}
