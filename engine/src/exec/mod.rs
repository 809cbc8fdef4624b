//! `exec`: extra processes in a running container, run through the runtime's `exec`.
//!
//! An exec instance is created (`POST /containers/{id}/exec`), started once, and inspected
//! for its exit code afterwards, as in Docker. Instances live in memory only: like Docker's,
//! they do not survive the daemon, and an exec's process dies with its runtime process.
//! The registry is bounded: the oldest finished instances go first.

mod process;

pub use process::{start as start_process, Launch, Started};

use crate::containers::model::{null_default, strslice};
use crate::util::id::ContainerId;
use crate::util::pty::{Master, Size};
use anyhow::Result;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// How many instances are kept; beyond it finished ones are dropped, oldest first.
const KEEP: usize = 256;

/// The body of `POST /containers/{id}/exec`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecConfig {
    #[serde(default)]
    pub attach_stdin: bool,
    #[serde(default)]
    pub attach_stdout: bool,
    #[serde(default)]
    pub attach_stderr: bool,
    /// docker-py sends `detachKeys` (Go decodes JSON keys case-insensitively).
    #[serde(default, alias = "detachKeys", deserialize_with = "null_default")]
    pub detach_keys: String,
    #[serde(default)]
    pub tty: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub env: Vec<String>,
    #[serde(default, deserialize_with = "strslice")]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub privileged: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub user: String,
    #[serde(default, deserialize_with = "null_default")]
    pub working_dir: String,
    /// `[height, width]`.
    #[serde(default)]
    pub console_size: Option<[u16; 2]>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExecState {
    Created,
    Running { runtime_pid: i32 },
    Exited { exit_code: i32 },
}

/// One exec instance.
pub struct Exec {
    pub id: String,
    pub container: ContainerId,
    pub config: ExecConfig,
    seq: u64,
    state: Mutex<ExecState>,
    /// The terminal of a running TTY exec, for resizes.
    terminal: Mutex<Option<Master>>,
    /// Where the runtime writes the process's pid.
    pid_file: Mutex<Option<std::path::PathBuf>>,
}

impl Exec {
    pub fn state(&self) -> ExecState {
        self.state.lock().unwrap().clone()
    }

    /// Moves Created -> Running once; a second start is refused.
    fn claim(&self) -> bool {
        let mut s = self.state.lock().unwrap();
        if *s != ExecState::Created {
            return false;
        }
        *s = ExecState::Running { runtime_pid: 0 };
        true
    }

    pub fn set_exited(&self, exit_code: i32) {
        *self.state.lock().unwrap() = ExecState::Exited { exit_code };
        self.terminal.lock().unwrap().take();
    }

    pub fn resize(&self, size: Size) -> Result<()> {
        let ExecState::Running { runtime_pid } = self.state() else {
            anyhow::bail!("exec {} is not running", self.id);
        };
        let Some(t) = self.terminal.lock().unwrap().clone() else {
            anyhow::bail!("exec {} has no terminal", self.id);
        };
        t.resize(size)?;
        // The runtime copies its own terminal's size to the container's on SIGWINCH.
        if runtime_pid > 0 {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(runtime_pid), nix::sys::signal::Signal::SIGWINCH);
        }
        Ok(())
    }

    fn pid(&self) -> i32 {
        let file = self.pid_file.lock().unwrap().clone();
        file.and_then(|f| std::fs::read_to_string(f).ok()).and_then(|s| s.trim().parse().ok()).unwrap_or(0)
    }

    /// `GET /exec/{id}/json`.
    pub fn inspect(&self) -> Value {
        let state = self.state();
        let cmd = self.config.cmd.clone().unwrap_or_default();
        let (running, exit_code, pid) = match state {
            ExecState::Created => (false, Value::Null, 0),
            ExecState::Running { .. } => (true, Value::Null, self.pid()),
            ExecState::Exited { exit_code } => (false, json!(exit_code), 0),
        };
        json!({
            "ID": self.id,
            "ContainerID": self.container.as_str(),
            "Running": running,
            "ExitCode": exit_code,
            "ProcessConfig": {
                "entrypoint": cmd.first().cloned().unwrap_or_default(),
                "arguments": cmd.iter().skip(1).collect::<Vec<_>>(),
                "privileged": self.config.privileged,
                "tty": self.config.tty,
                "user": self.config.user,
            },
            "OpenStdin": self.config.attach_stdin,
            "OpenStdout": self.config.attach_stdout,
            "OpenStderr": self.config.attach_stderr,
            "CanRemove": false,
            "DetachKeys": self.config.detach_keys,
            "Pid": pid,
        })
    }
}

/// The daemon's exec instances.
#[derive(Default)]
pub struct Execs {
    table: Mutex<(u64, BTreeMap<String, Arc<Exec>>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("No such exec instance: {0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
}

impl Execs {
    pub fn create(&self, container: ContainerId, config: ExecConfig) -> Result<Arc<Exec>, ExecError> {
        match &config.cmd {
            Some(c) if !c.is_empty() && !c[0].is_empty() => {}
            _ => return Err(ExecError::Invalid("No exec command specified".into())),
        }
        let id = ContainerId::random().map_err(|e| ExecError::Invalid(format!("creating an exec id: {e}")))?.to_string();
        let mut t = self.table.lock().unwrap();
        t.0 += 1;
        let exec = Arc::new(Exec {
            id: id.clone(),
            container,
            config,
            seq: t.0,
            state: Mutex::new(ExecState::Created),
            terminal: Mutex::new(None),
            pid_file: Mutex::new(None),
        });
        t.1.insert(id, exec.clone());
        if t.1.len() > KEEP {
            let mut finished: Vec<(u64, String)> =
                t.1.values().filter(|e| matches!(e.state(), ExecState::Exited { .. })).map(|e| (e.seq, e.id.clone())).collect();
            finished.sort();
            let excess = t.1.len() - KEEP;
            for (_, id) in finished.into_iter().take(excess) {
                t.1.remove(&id);
            }
        }
        Ok(exec)
    }

    pub fn get(&self, id: &str) -> Result<Arc<Exec>, ExecError> {
        self.table.lock().unwrap().1.get(id).cloned().ok_or_else(|| ExecError::NotFound(id.to_string()))
    }

    /// Ids of the running execs of a container (inspect's `ExecIDs`).
    pub fn running_in(&self, container: &ContainerId) -> Vec<String> {
        let t = self.table.lock().unwrap();
        t.1.values().filter(|e| &e.container == container && matches!(e.state(), ExecState::Running { .. })).map(|e| e.id.clone()).collect()
    }

    /// Forgets a removed container's instances.
    pub fn forget_container(&self, container: &ContainerId) {
        self.table.lock().unwrap().1.retain(|_, e| &e.container != container);
    }

    /// Starts the process of `exec` (once). The output ends after the exit is recorded.
    /// `raw`: the output goes out as the process wrote it, not in multiplexed frames (the
    /// start request's `Tty`, as in Docker, which may differ from the exec's own).
    pub async fn start(&self, exec: &Arc<Exec>, launch: Launch, attach_stdin: bool, raw: bool) -> Result<Started> {
        if !exec.claim() {
            return Err(ExecError::Conflict(format!("Exec command {} has already run", exec.id)).into());
        }
        let e2 = exec.clone();
        let started = process::start(&exec.id, &exec.config, launch, attach_stdin, raw, move |code| e2.set_exited(code)).await;
        match &started {
            Ok(s) => {
                let mut st = exec.state.lock().unwrap();
                if let ExecState::Running { runtime_pid } = &mut *st {
                    *runtime_pid = s.runtime_pid;
                    // Set only while it runs: a process that is already gone keeps nothing.
                    *exec.terminal.lock().unwrap() = s.terminal.clone();
                }
                *exec.pid_file.lock().unwrap() = Some(s.pid_file.clone());
            }
            Err(_) => exec.set_exited(126),
        }
        started
    }
}
