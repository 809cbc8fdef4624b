//! `rm`: the record first (once it is gone the container is gone, durably), then its files.
//! A crash in between leaves only unowned files, which start-up reconciliation removes.

use super::wait::WaitCondition;
use super::{ContainerError, Containers};
use anyhow::Result;
use std::sync::Arc;
use std::time::Duration;

impl Containers {
    pub async fn remove(self: &Arc<Self>, name: &str, force: bool) -> Result<()> {
        let entry = self.lookup(name)?;
        let _op = entry.op.lock().await;
        let c = entry.get();
        if let super::model::State::Running { pid, .. } = c.state {
            if !force {
                return Err(ContainerError::Conflict(format!(
                    "cannot remove container \"/{}\": container is running: stop the container before removing or force remove",
                    c.name
                ))
                .into());
            }
            let waiter = entry.waiter(WaitCondition::NotRunning);
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            tokio::time::timeout(Duration::from_secs(30), waiter.wait())
                .await
                .map_err(|_| anyhow::anyhow!("container {} did not exit after SIGKILL", c.id.short()))?;
        }
        entry.settle_unmount().await;
        self.records.delete(c.id.as_str())?;
        self.table.lock().unwrap().by_id.remove(&c.id);
        // Gone for good once the record is: waiters (`run --rm`) need not wait for the files.
        entry.watch.send_modify(|s| s.removed = true);
        let this = self.clone();
        let id = c.id.clone();
        let cleanup = tokio::task::spawn_blocking(move || -> Result<()> {
            this.driver.remove_container(&id)?;
            crate::storage::remove_tree(&this.data_dir(&id))?;
            crate::storage::remove_tree(&this.bundle_dir(&id))?;
            Ok(())
        })
        .await?;
        tracing::info!(container = %c.id.short(), "removed");
        if let Err(e) = cleanup {
            tracing::warn!(container = %c.id.short(), "leftover files after removal: {e:#}");
        }
        Ok(())
    }
}
