//! `rm`: the record first (once it is gone the container is gone, durably), then its files.
//! A crash in between leaves only unowned files, which start-up reconciliation removes.

use super::wait::WaitCondition;
use super::{ContainerError, Containers};
use crate::state::Op;
use crate::util::failpoint;
use anyhow::Result;
use std::sync::Arc;
use std::time::Duration;

impl Containers {
    /// `rm [-f] [-v]`: with `volumes`, the container's anonymous volumes go with it.
    pub async fn remove(self: &Arc<Self>, name: &str, force: bool, volumes: bool) -> Result<()> {
        let entry = self.lookup(name)?;
        let _op = entry.op.lock().await;
        let c = entry.get();
        if entry.restarting() && !force {
            return Err(ContainerError::Conflict(format!(
                "You cannot remove a restarting container {}. Stop the container before attempting removal or force remove",
                c.id
            ))
            .into());
        }
        if let Some(super::model::Process { pid, .. }) = c.state.process() {
            if !force {
                return Err(ContainerError::Conflict(format!(
                    "cannot remove container \"/{}\": container is running: stop the container before removing or force remove",
                    c.name
                ))
                .into());
            }
            let waiter = entry.waiter(WaitCondition::NotRunning);
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            self.thaw_if_paused(&entry).await?;
            tokio::time::timeout(Duration::from_secs(30), waiter.wait())
                .await
                .map_err(|_| anyhow::anyhow!("container {} did not exit after SIGKILL", c.id.short()))?;
        }
        entry.settle_unmount().await;
        // The commit point: the record goes and the removal of its files is journaled, in
        // one transaction.
        let (intent, gone_volumes) = self.store.write(|tx| {
            tx.delete::<super::model::Container>(c.id.as_str())?;
            self.networks.delete_endpoints(tx, &c.id)?;
            let gone = self.volumes.delete_for_container(tx, &c.id, volumes)?;
            Ok((self.store.begin_in(tx, Op::RemoveContainer { id: c.id.to_string() })?, gone))
        })?;
        self.table.lock().unwrap().by_id.remove(&c.id);
        self.emit(&c, "destroy", &[]);
        self.networks.forget(&c.id);
        let vols = self.volumes.clone();
        let cid = c.id.clone();
        tokio::task::spawn_blocking(move || vols.forget(&cid, &gone_volumes)).await?;
        // Gone for good once the record is: waiters (`run --rm`) need not wait for the files.
        entry.watch.send_modify(|s| s.removed = true);
        failpoint::hit("container.remove.after-commit");
        let this = self.clone();
        let id = c.id.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            this.remove_files(&id);
            this.store.finish(&intent)
        })
        .await??;
        tracing::info!(container = %c.id.short(), "removed");
        Ok(())
    }

    /// Removes a container's root filesystem, data dir and bundle, carrying on past errors
    /// (each is logged): what is left is found again by start-up reconciliation.
    pub(super) fn remove_files(&self, id: &crate::util::id::ContainerId) {
        self.leave_networks_and_volumes(id);
        let no_log = self.no_log_path(id);
        let steps: [(&str, Result<()>); 4] = [
            ("root filesystem", self.driver.remove_container(id)),
            ("data dir", crate::storage::remove_tree(&self.data_dir(id))),
            ("bundle", crate::storage::remove_tree(&self.bundle_dir(id))),
            (
                "attach output",
                std::fs::remove_file(&no_log).or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e.into()) }),
            ),
        ];
        for (what, r) in steps {
            if let Err(e) = r {
                tracing::warn!(container = %id.short(), "removing the {what}: {e:#}");
            }
        }
    }
}
