//! Learning that a container exited: the daemon watches each monitor with a pidfd (the
//! monitor is not its child, so it cannot `wait` for it), then reads the exit file the
//! monitor wrote. At start-up the same path re-adopts monitors that outlived a daemon.

use super::model::State;
use super::{Containers, Entry};
use crate::monitor::ExitStatus;
use crate::util::id::ContainerId;
use anyhow::Result;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::unix::AsyncFd;

/// Fields 3 onwards of /proc/<pid>/stat. The command name (field 2) may hold spaces and
/// parentheses: the rest starts after the last ')'.
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(stat[stat.rfind(')')? + 2..].split(' ').map(String::from).collect())
}

/// A process's start time in clock ticks after boot (field 22).
pub fn process_start_time(pid: i32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// Is the process alive (present and not a zombie)?
pub fn process_alive(pid: i32) -> bool {
    stat_fields(pid).and_then(|f| f.first().cloned()).is_some_and(|state| state != "Z" && state != "X")
}

fn pidfd_open(pid: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Resolves once process `pid` (started at `start`) is gone.
pub(super) async fn process_gone(pid: i32, start: u64) {
    match pidfd_open(pid) {
        Ok(fd) => {
            // The pid may have been reused between our check and the open.
            if process_start_time(pid) != Some(start) {
                return;
            }
            // SAFETY: `fd` is an OwnedFd moved into the AsyncFd: it stays open and refers to
            // the same pidfd until the AsyncFd drops it, and its as_raw_fd never changes.
            if let Ok(afd) = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) } {
                let _ = afd.readable().await;
                return;
            }
        }
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return,
        Err(_) => {}
    }
    // Kernels before 5.3 have no pidfd: poll.
    while process_start_time(pid) == Some(start) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl Containers {
    pub(super) fn exit_file(&self, id: &ContainerId) -> PathBuf {
        self.data_dir(id).join("exit.json")
    }

    /// Watches the container's monitor and records the exit when the monitor says it is
    /// recorded (`notify` reaches EOF) or, without that pipe (after a daemon restart), when
    /// the monitor is gone.
    pub(super) fn watch_exit(self: &Arc<Self>, entry: Arc<Entry>, monitor_pid: i32, notify: Option<OwnedFd>) {
        let this = self.clone();
        let start = process_start_time(monitor_pid).unwrap_or(0);
        *entry.last_monitor.lock().unwrap() = Some((monitor_pid, start));
        tokio::spawn(async move {
            let pipe = notify.and_then(|fd| tokio::net::unix::pipe::Receiver::from_owned_fd(fd).ok());
            match pipe {
                Some(mut rx) => {
                    let mut buf = [0u8; 16];
                    tokio::select! {
                        _ = async { while let Ok(n) = tokio::io::AsyncReadExt::read(&mut rx, &mut buf).await { if n == 0 { break } } } => {},
                        _ = process_gone(monitor_pid, start) => {},
                    }
                }
                None => process_gone(monitor_pid, start).await,
            }
            if let Err(e) = this.record_exit(&entry).await {
                tracing::error!(container = %entry.id().short(), "recording the exit failed: {e:#}");
            }
        });
    }

    /// Reads the exit file, records the exit durably, unmounts, wakes waiters, and removes
    /// the container if it was started with `--rm`.
    async fn record_exit(self: &Arc<Self>, entry: &Arc<Entry>) -> Result<()> {
        let c = entry.get();
        if !c.state.is_running() {
            return Ok(());
        }
        let status: ExitStatus = match std::fs::read(self.exit_file(&c.id)).ok().and_then(|d| serde_json::from_slice(&d).ok()) {
            Some(s) => s,
            None => ExitStatus {
                exit_code: 255,
                finished_at: crate::util::time::now(),
                error: Some("the container's monitor ended without recording an exit status (daemon or host restarted?)".into()),
            },
        };
        let exited = |c: &mut super::model::Container| {
            c.state = State::Exited { exit_code: status.exit_code, error: status.error.clone() };
            c.finished_at = Some(status.finished_at.clone());
        };
        if c.host_config.auto_remove {
            // Its removal follows at once and is what gets written. Should the daemon die in
            // between, the record still says running, the exit file is on disk, and recovery
            // replays this exit and the removal.
            exited(&mut entry.rec.lock().unwrap());
        } else {
            self.update(entry, exited)?;
        }
        entry.watch.send_modify(|s| {
            s.running = false;
            s.exits += 1;
            s.exit_code = status.exit_code;
        });
        tracing::info!(container = %c.id.short(), code = status.exit_code, "exited");
        self.emit(&c, "die", &[("exitCode", status.exit_code.to_string())]);
        self.restart_after_exit(entry, status.exit_code);
        // Waiters have their answer; the root filesystem comes off after it, and the next
        // start waits for that (`pending_unmount`). Removal unmounts by itself.
        if !c.host_config.auto_remove {
            let this = self.clone();
            let id = c.id.clone();
            let unmount = tokio::task::spawn_blocking(move || {
                if let Err(e) = this.release(&id) {
                    tracing::warn!(container = %id.short(), "unmount after exit: {e:#}");
                }
            });
            *entry.pending_unmount.lock().unwrap() = Some(unmount);
        } else {
            crate::util::failpoint::hit("container.exit.before-autoremove");
            let this = self.clone();
            let id = c.id.to_string();
            tokio::spawn(async move {
                if let Err(e) = this.remove(&id, false, true).await {
                    tracing::error!(container = %id, "auto-remove failed: {e:#}");
                }
            });
        }
        Ok(())
    }

    /// At daemon start: re-adopt the monitors still running, record the exits that happened
    /// while the daemon was down, and unmount what no running container needs.
    pub async fn restore(self: &Arc<Self>) -> Result<()> {
        self.starting_up.store(true, std::sync::atomic::Ordering::SeqCst);
        let entries: Vec<Arc<Entry>> = self.table.lock().unwrap().by_id.values().cloned().collect();
        let mounted: std::collections::BTreeSet<ContainerId> = self.driver.mounted().into_iter().collect();
        for entry in entries {
            let c = entry.get();
            match c.state {
                State::Running(p) | State::Paused(p) if process_start_time(p.monitor_pid) == Some(p.monitor_start) => {
                    let monitor_pid = p.monitor_pid;
                    tracing::info!(container = %c.id.short(), monitor = monitor_pid, "re-adopted running container");
                    self.watch_exit(entry.clone(), monitor_pid, None);
                    self.watch_health(entry.clone());
                }
                State::Running(_) | State::Paused(_) => self.record_exit(&entry).await?,
                _ if mounted.contains(&c.id) => {
                    let this = self.clone();
                    let id = c.id.clone();
                    tokio::task::spawn_blocking(move || this.release(&id)).await??;
                }
                _ => {}
            }
        }
        Ok(())
    }
}
