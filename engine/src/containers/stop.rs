//! `stop`, `kill`, `restart`. Signals go straight to the container's init process: no
//! runtime process per signal.

use super::model::Process;
use super::wait::WaitCondition;
use super::{ContainerError, Containers, Entry};
use anyhow::{Context, Result};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::sync::Arc;
use std::time::Duration;

/// After SIGKILL, how long to wait before reporting the container as stuck.
const KILL_GRACE: Duration = Duration::from_secs(30);

fn send(pid: i32, sig: Signal) -> Result<()> {
    match nix::sys::signal::kill(Pid::from_raw(pid), sig) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("sending {sig} to pid {pid}")),
    }
}

impl Containers {
    /// `stop -t`: the stop signal, then SIGKILL after `timeout` seconds. A negative timeout
    /// waits forever (the openEuler engine's rule); none means the container's StopTimeout
    /// or 10 s.
    pub async fn stop(self: &Arc<Self>, name: &str, timeout: Option<i64>, signal: Option<&str>) -> Result<()> {
        let entry = self.lookup(name)?;
        let _op = entry.op.lock().await;
        self.stop_locked(&entry, timeout, signal).await
    }

    pub(super) async fn stop_locked(self: &Arc<Self>, entry: &Arc<Entry>, timeout: Option<i64>, signal: Option<&str>) -> Result<()> {
        let c = entry.get();
        if entry.restarting() {
            // Stopped for good: the restart that is due will not happen.
            self.update(entry, |c| c.manually_stopped = true)?;
            entry.set_restarting(false);
            return Ok(());
        }
        let Some(Process { pid, .. }) = c.state.process() else {
            return Err(ContainerError::NotModified("stopped").into());
        };
        let sig_name =
            signal.filter(|s| !s.is_empty()).map(String::from).or(c.config.stop_signal.clone()).unwrap_or_else(|| "SIGTERM".into());
        let sig = crate::runtime::signal::parse(&sig_name).map_err(|e| ContainerError::Invalid(e.to_string()))?;
        let t = timeout.or(c.config.stop_timeout).unwrap_or(10);
        // Before the signal: the exit it causes must not be restarted by a policy.
        self.update(entry, |c| c.manually_stopped = true)?;
        let waiter = entry.waiter(WaitCondition::NotRunning);
        send(pid, sig)?;
        self.emit(&c, "kill", &[("signal", (sig as i32).to_string())]);
        self.thaw_if_paused(entry).await?;
        let waited = if t < 0 {
            waiter.wait().await;
            true
        } else {
            tokio::time::timeout(Duration::from_secs(t as u64), waiter.wait()).await.is_ok()
        };
        if !waited {
            tracing::info!(container = %c.id.short(), "did not stop after {t}s: sending SIGKILL");
            self.emit(&c, "kill", &[("signal", "9".into())]);
            self.kill_and_wait(entry, pid).await?;
        }
        self.emit(&c, "stop", &[]);
        Ok(())
    }

    async fn kill_and_wait(&self, entry: &Entry, pid: i32) -> Result<()> {
        let waiter = entry.waiter(WaitCondition::NotRunning);
        send(pid, Signal::SIGKILL)?;
        self.thaw_if_paused(entry).await?;
        tokio::time::timeout(KILL_GRACE, waiter.wait())
            .await
            .map_err(|_| anyhow::anyhow!("container {} did not exit {KILL_GRACE:?} after SIGKILL", entry.id().short()))?;
        Ok(())
    }

    /// `kill -s`: any signal; SIGKILL waits for the exit so `kill` then `rm` works.
    pub async fn kill(self: &Arc<Self>, name: &str, signal: Option<&str>) -> Result<()> {
        let entry = self.lookup(name)?;
        let sig = crate::runtime::signal::parse(signal.filter(|s| !s.is_empty()).unwrap_or("SIGKILL"))
            .map_err(|e| ContainerError::Invalid(e.to_string()))?;
        let c = entry.get();
        let Some(Process { pid, .. }) = c.state.process() else {
            return Err(ContainerError::Conflict(format!("Container {} is not running", c.id)).into());
        };
        self.emit(&c, "kill", &[("signal", (sig as i32).to_string())]);
        if sig == Signal::SIGKILL {
            self.kill_and_wait(&entry, pid).await
        } else {
            send(pid, sig)?;
            self.thaw_if_paused(&entry).await
        }
    }

    pub async fn restart(self: &Arc<Self>, name: &str, timeout: Option<i64>, signal: Option<&str>) -> Result<()> {
        let entry = self.lookup(name)?;
        let _op = entry.op.lock().await;
        match self.stop_locked(&entry, timeout, signal).await {
            Ok(()) => {}
            Err(e) if matches!(e.downcast_ref(), Some(ContainerError::NotModified(_))) => {}
            Err(e) => return Err(e),
        }
        self.start_locked(&entry).await?;
        self.emit(&entry.get(), "restart", &[]);
        Ok(())
    }
}
