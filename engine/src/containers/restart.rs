//! Restart policies (`--restart no|always|unless-stopped|on-failure[:N]`), Docker's rules:
//!
//! - After an exit, a container is started again unless it was stopped by hand (`stop`),
//!   with a delay that starts at 100 ms and doubles up to a minute, back to 100 ms once a run
//!   lasted 10 s. `on-failure` restarts only non-zero exits, at most N times.
//! - At daemon start (after a crash, an update or a power cut) `always` containers start
//!   again, stopped by hand or not; `unless-stopped` ones unless stopped by hand; `on-failure`
//!   ones whose last exit was a failure with retries left.

use super::model::{Container, RestartPolicy, State};
use super::{ContainerError, Containers, Entry};
use std::sync::Arc;
use std::time::Duration;

const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(60);
/// A run this long resets the delay.
const STABLE: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Policy {
    No,
    Always,
    UnlessStopped,
    /// At most this many restarts (0: no limit).
    OnFailure(u32),
}

impl Policy {
    pub fn of(rp: Option<&RestartPolicy>) -> Result<Self, ContainerError> {
        let Some(rp) = rp else { return Ok(Policy::No) };
        match rp.name.as_str() {
            "" | "no" => Ok(Policy::No),
            "always" => Ok(Policy::Always),
            "unless-stopped" => Ok(Policy::UnlessStopped),
            "on-failure" => {
                if rp.maximum_retry_count < 0 {
                    return Err(ContainerError::Invalid("maximum retry count cannot be negative".into()));
                }
                Ok(Policy::OnFailure(rp.maximum_retry_count as u32))
            }
            other => Err(ContainerError::Invalid(format!("invalid restart policy '{other}'"))),
        }
    }

    fn after_exit(self, c: &Container, code: i32) -> bool {
        match self {
            Policy::No => false,
            Policy::Always | Policy::UnlessStopped => !c.manually_stopped,
            Policy::OnFailure(max) => !c.manually_stopped && code != 0 && (max == 0 || c.restart_count < max),
        }
    }

    fn at_daemon_start(self, c: &Container) -> bool {
        match self {
            Policy::No => false,
            Policy::Always => true,
            Policy::UnlessStopped => !c.manually_stopped,
            Policy::OnFailure(max) => !c.manually_stopped && c.state.exit_code() != 0 && (max == 0 || c.restart_count < max),
        }
    }
}

fn ran_for(c: &Container) -> Duration {
    let (Some(s), Some(f)) = (c.started_at.as_deref(), c.finished_at.as_deref()) else { return Duration::ZERO };
    Duration::from_secs((crate::util::time::unix(f) - crate::util::time::unix(s)).max(0) as u64)
}

impl Containers {
    /// Called once an exit is recorded: schedules the restart the policy asks for.
    pub(super) fn restart_after_exit(self: &Arc<Self>, entry: &Arc<Entry>, code: i32) {
        let c = entry.get();
        let policy = Policy::of(c.host_config.restart_policy.as_ref()).unwrap_or(Policy::No);
        if !policy.after_exit(&c, code) {
            return;
        }
        if self.starting_up.load(std::sync::atomic::Ordering::SeqCst) {
            tracing::info!(container = %c.id.short(), "exited while the daemon was down: its restart policy applies once start-up is done");
            return;
        }
        let delay = {
            let mut d = entry.restart_delay.lock().unwrap();
            if ran_for(&c) >= STABLE {
                *d = FIRST_DELAY;
            }
            let now = (*d).max(FIRST_DELAY);
            *d = (now * 2).min(MAX_DELAY);
            now
        };
        tracing::info!(container = %c.id.short(), delay_ms = delay.as_millis() as u64, "restart policy: restarting");
        entry.set_restarting(true);
        let (this, entry) = (self.clone(), entry.clone());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            this.restart_by_policy(&entry).await;
        });
    }

    async fn restart_by_policy(self: &Arc<Self>, entry: &Arc<Entry>) {
        let _op = entry.op.lock().await;
        entry.set_restarting(false);
        let c = entry.get();
        // Removed, started or stopped by hand while we waited: nothing to do.
        if entry.watch.borrow().removed || !matches!(c.state, State::Exited { .. }) || c.manually_stopped {
            return;
        }
        if let Err(e) = self.update(entry, |c| c.restart_count += 1) {
            tracing::error!(container = %c.id.short(), "restart policy: {e:#}");
            return;
        }
        if let Err(e) = self.start_locked(entry).await {
            tracing::warn!(container = %c.id.short(), "restart policy: the start failed: {e:#}");
        }
    }

    /// At daemon start, after re-adoption: starts what the policies say should run.
    pub async fn start_by_policy(self: &Arc<Self>) -> Vec<String> {
        self.starting_up.store(false, std::sync::atomic::Ordering::SeqCst);
        let entries: Vec<Arc<Entry>> = self.table.lock().unwrap().by_id.values().cloned().collect();
        let mut started = Vec::new();
        for entry in entries {
            let c = entry.get();
            if !matches!(c.state, State::Exited { .. } | State::Created) || c.finished_at.is_none() {
                continue;
            }
            let policy = Policy::of(c.host_config.restart_policy.as_ref()).unwrap_or(Policy::No);
            if !policy.at_daemon_start(&c) || self.held.lock().unwrap().contains(c.id.as_str()) {
                continue;
            }
            let _op = entry.op.lock().await;
            match self.start_locked(&entry).await {
                Ok(()) => started.push(format!("restart policy: started {} ({})", c.id.short(), c.name)),
                Err(e) => tracing::warn!(container = %c.id.short(), "restart policy at start-up: {e:#}"),
            }
        }
        started
    }
}
