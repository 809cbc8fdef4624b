//! `pause` and `unpause`: the runtime freezes the container's cgroup; the record says so,
//! so a paused container stays paused (and is shown so) across daemon restarts.

use super::model::State;
use super::{ContainerError, Containers, Entry};
use anyhow::{Context, Result};
use std::sync::Arc;

impl Containers {
    /// `runc pause` / `runc resume` of the container's runtime.
    pub(super) async fn freeze(&self, c: &super::model::Container, verb: &str) -> Result<()> {
        let rt = self.cfg.runtimes.get(&c.runtime).with_context(|| format!("runtime {:?} is not configured", c.runtime))?;
        crate::runtime::command(&self.cfg.exec_root, rt, &[verb, c.id.as_str()])
            .await
            .map(drop)
            .with_context(|| format!("{verb} of container {}", c.id.short()))
    }

    pub async fn pause(self: &Arc<Self>, name: &str) -> Result<()> {
        let entry = self.lookup(name)?;
        let _op = entry.op.lock().await;
        let c = entry.get();
        match c.state {
            State::Running(_) => {}
            State::Paused(_) => return Err(ContainerError::Conflict(format!("Container {} is already paused", c.id)).into()),
            _ => return Err(ContainerError::Conflict(format!("Container {} is not running", c.id)).into()),
        }
        self.freeze(&c, "pause").await?;
        self.emit(&c, "pause", &[]);
        // The exit watcher may have recorded an exit meanwhile: only a running record pauses.
        self.update(&entry, |r| {
            if let State::Running(p) = r.state {
                r.state = State::Paused(p);
            }
        })?;
        Ok(())
    }

    pub async fn unpause(self: &Arc<Self>, name: &str) -> Result<()> {
        let entry = self.lookup(name)?;
        let _op = entry.op.lock().await;
        let c = entry.get();
        if !matches!(c.state, State::Paused(_)) {
            return Err(ContainerError::Conflict(format!("Container {} is not paused", c.id)).into());
        }
        self.thaw(&entry).await
    }

    /// Resumes a paused container and records it as running.
    pub(super) async fn thaw(&self, entry: &Entry) -> Result<()> {
        let c = entry.get();
        self.freeze(&c, "resume").await?;
        self.emit(&c, "unpause", &[]);
        self.update(entry, |r| {
            if let State::Paused(p) = r.state {
                r.state = State::Running(p);
            }
        })?;
        Ok(())
    }

    /// After a signal to a paused container: a frozen process acts on it only once thawed
    /// (Docker resumes it too, so `stop`, `kill` and `rm -f` work on paused containers).
    pub(super) async fn thaw_if_paused(&self, entry: &Entry) -> Result<()> {
        if matches!(entry.get().state, State::Paused(_)) {
            self.thaw(entry).await?;
        }
        Ok(())
    }
}
