//! The per-container monitor: `berth monitor <bundle>`.
//!
//! The container's parent is not the daemon but this small process (the role of Podman's
//! conmon), so the daemon can stop, crash or be upgraded while containers run. It:
//! 1. forks; the first process waits for the second to report readiness and exits, so the
//!    monitor is nobody's child but init's and the daemon reaps only a short-lived process;
//! 2. becomes a child subreaper and a session leader, runs `runc run --detach` with the
//!    container's stdout and stderr on pipes it owns; the container process is re-parented
//!    to it when runc exits;
//! 3. writes everything the container prints to the json-file log itself (so output made
//!    while the daemon is down is kept);
//! 4. when the container exits: drains the pipes, runs `runc delete`, writes the exit status
//!    durably to the exit file, and exits.
//!
//! With a TTY, runc sends the container's terminal over a console socket and the monitor
//! keeps its master instead of the pipes. A control socket (see [`control`]) takes stdin,
//! resizes and signals from the daemon.
//!
//! No async runtime and no threads: one `poll` over the pipes, the sockets and a signalfd.

pub mod client;
mod console;
mod control;
mod process;

pub use process::run;

use crate::config::LogLimits;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What the daemon hands a monitor, as `monitor.json` in the bundle directory.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MonitorConfig {
    pub id: String,
    pub runtime_path: String,
    pub runtime_args: Vec<String>,
    /// runc's `--root`.
    pub runtime_root: PathBuf,
    pub bundle: PathBuf,
    pub log_path: PathBuf,
    pub log_limits: LogLimits,
    pub exit_file: PathBuf,
    /// Where the monitor answers (see `control`); short, under exec-root: a socket path has
    /// at most 107 bytes.
    pub control_socket: PathBuf,
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub open_stdin: bool,
    #[serde(default)]
    pub stdin_once: bool,
    /// Rows and columns of the terminal at start.
    #[serde(default)]
    pub console_size: Option<(u16, u16)>,
}

impl MonitorConfig {
    pub const FILE: &'static str = "monitor.json";
}

/// The exit file: how the container ended, written durably by the monitor.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ExitStatus {
    pub exit_code: i32,
    pub finished_at: String,
    /// Set when the container could not be waited for normally.
    #[serde(default)]
    pub error: Option<String>,
}

/// What the first monitor process prints for the daemon: `ok <monitor pid> <container pid>`
/// or `err <message>`.
#[derive(Debug, PartialEq)]
pub enum Ready {
    Started { monitor_pid: i32, container_pid: i32 },
    Failed(String),
}

impl Ready {
    pub fn parse(s: &str) -> Ready {
        let s = s.trim();
        if let Some(rest) = s.strip_prefix("ok ") {
            let mut it = rest.split(' ').map(|n| n.parse::<i32>());
            if let (Some(Ok(m)), Some(Ok(c))) = (it.next(), it.next()) {
                return Ready::Started { monitor_pid: m, container_pid: c };
            }
        }
        Ready::Failed(s.strip_prefix("err ").unwrap_or(s).to_string())
    }
}
