//! `--init`: a minimal init as the container's PID 1 (the role of Docker's tini).
//!
//! A process that runs as PID 1 gets no default signal handling (SIGTERM is ignored unless it
//! installs a handler) and inherits every orphan in the container, which it must reap or they
//! stay zombies. This init starts the real command, forwards every catchable signal to it,
//! reaps everything, and exits with the command's status (128 + signal when killed).
//!
//! The daemon bind-mounts its own executable read-only at [`CONTAINER_PATH`]; invoked under
//! that name, `main` comes here. That needs a statically linked executable (the product is
//! one), or `init-path` in daemon.json.

use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::ffi::OsString;
use std::path::Path;

/// Where the init appears inside the container (Docker's path).
pub const CONTAINER_PATH: &str = "/sbin/docker-init";

/// True when `argv0` names the init.
pub fn invoked_as_init(argv0: &std::ffi::OsStr) -> bool {
    Path::new(argv0).file_name().is_some_and(|n| n == "docker-init")
}

/// Runs `args` (after an optional `--`) under the init; returns the exit code.
pub fn run(args: Vec<OsString>) -> i32 {
    let args: Vec<OsString> = match args.first() {
        Some(a) if a == "--" => args[1..].to_vec(),
        _ => args,
    };
    let Some((prog, rest)) = args.split_first() else {
        eprintln!("docker-init: no command given");
        return 2;
    };
    // Every signal is taken synchronously (blocked, then waited for: blocked signals reach
    // a namespace's PID 1 even without handlers). The child must not inherit the mask.
    let all = SigSet::all();
    if let Err(e) = all.thread_block() {
        eprintln!("docker-init: blocking signals: {e}");
        return 2;
    }
    let mut cmd = std::process::Command::new(prog);
    cmd.args(rest);
    // SAFETY: pthread_sigmask is async-signal-safe, so it may run between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || SigSet::all().thread_unblock().map_err(std::io::Error::from));
    }
    let child = match cmd.spawn() {
        Ok(c) => Pid::from_raw(c.id() as i32),
        Err(e) => {
            eprintln!("docker-init: cannot run {}: {e}", prog.to_string_lossy());
            return if e.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 };
        }
    };
    loop {
        let sig = match all.wait() {
            Ok(s) => s,
            Err(_) => continue,
        };
        if sig != Signal::SIGCHLD {
            let _ = kill(child, sig);
            continue;
        }
        // Reap everything that exited: the child and any orphans reparented to us.
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, code)) if p == child => return code,
                Ok(WaitStatus::Signaled(p, s, _)) if p == child => return 128 + s as i32,
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}

/// True when the ELF file at `path` has no program interpreter (is statically linked).
pub fn is_static(path: &Path) -> bool {
    let Ok(data) = std::fs::read(path) else { return false };
    if data.len() < 64 || &data[..4] != b"\x7fELF" || data[4] != 2 {
        return false; // not a 64-bit ELF file
    }
    let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(data[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).all(|i| {
        let o = phoff + i * phentsize;
        // PT_INTERP = 3.
        data.get(o..o + 4).is_some_and(|t| u32::from_le_bytes(t.try_into().unwrap()) != 3)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn tells_static_from_dynamic() {
        // The test binary itself is dynamically linked on a glibc host.
        let me = std::env::current_exe().unwrap();
        if cfg!(target_env = "gnu") {
            assert!(!super::is_static(&me));
        }
        assert!(!super::is_static(std::path::Path::new("/nonexistent")));
        assert!(super::invoked_as_init(std::ffi::OsStr::new("/sbin/docker-init")));
    }
}
