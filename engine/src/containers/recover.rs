//! Start-up recovery for containers: finish or undo the operations a crash interrupted (the
//! intents), then compare the records with the world and clean what nothing owns.

use super::model::State;
use super::Containers;
use crate::state::Op;
use crate::util::id::ContainerId;
use anyhow::{bail, Context, Result};
use std::collections::BTreeSet;
use std::sync::Arc;

fn entries(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|r| r.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

impl Containers {
    /// Finishes or undoes one interrupted container operation. Idempotent.
    pub async fn recover(self: &Arc<Self>, op: &Op) -> Result<String> {
        match op {
            Op::CreateContainer { id } => {
                let cid: ContainerId = id.parse().context("create intent")?;
                if self.records.get(id)?.is_some() {
                    return Ok(format!("create of {} had committed", cid.short()));
                }
                let this = self.clone();
                let c2 = cid.clone();
                tokio::task::spawn_blocking(move || this.remove_files(&c2)).await?;
                Ok(format!("rolled back: create of {} undone", cid.short()))
            }
            Op::StartContainer { id } => {
                let cid: ContainerId = id.parse().context("start intent")?;
                match self.records.get(id)?.map(|r| r.state) {
                    Some(s) if s.is_running() => Ok(format!("start of {} had committed", cid.short())),
                    _ => {
                        self.undo_start(&cid).await;
                        Ok(format!("rolled back: unacknowledged start of {} undone", cid.short()))
                    }
                }
            }
            Op::RemoveContainer { id } => {
                let cid: ContainerId = id.parse().context("remove intent")?;
                self.runtime_delete(id).await;
                let this = self.clone();
                let c2 = cid.clone();
                tokio::task::spawn_blocking(move || this.remove_files(&c2)).await?;
                Ok(format!("rolled forward: removal of {} finished", cid.short()))
            }
            other => bail!("not a container operation: {other:?}"),
        }
    }

    /// After recovery and re-adoption: removes root filesystems, data dirs, bundles and
    /// runtime containers that no record owns, and marks containers whose root filesystem is
    /// gone as dead (shown, never dropped). Returns what it did; each action is also logged.
    pub async fn reconcile(self: &Arc<Self>, layers: &BTreeSet<berth_images::Digest>) -> Result<Vec<String>> {
        let mut actions = Vec::new();
        let all = self.list();
        let ids: BTreeSet<ContainerId> = all.iter().map(|c| c.id.clone()).collect();
        let running: BTreeSet<String> = all.iter().filter(|c| c.state.is_running()).map(|c| c.id.to_string()).collect();

        let this = self.clone();
        let ids2 = ids.clone();
        let layers2 = layers.clone();
        actions.extend(tokio::task::spawn_blocking(move || this.driver.reconcile(&layers2, &ids2)).await??);

        let id_names: BTreeSet<&str> = ids.iter().map(|i| i.as_str()).collect();
        for name in entries(&self.cfg.data_root.join("containers")) {
            if !id_names.contains(name.as_str()) {
                crate::storage::remove_tree(&self.cfg.data_root.join("containers").join(&name))?;
                actions.push(format!("removed data dir {name} that no container owns"));
            }
        }
        for name in entries(&self.cfg.exec_root.join("containers")) {
            if !running.contains(&name) {
                crate::storage::remove_tree(&self.cfg.exec_root.join("containers").join(&name))?;
                actions.push(format!("removed bundle {name} of no running container"));
            }
        }
        for rt in self.cfg.runtimes.values() {
            for name in entries(&crate::runtime::runtime_root(&self.cfg.exec_root, &rt.name)) {
                if !running.contains(&name) {
                    let bundle = self.cfg.exec_root.join("containers").join(&name);
                    let _ = tokio::task::spawn_blocking(move || super::start::kill_monitors_of(&bundle)).await;
                    self.runtime_delete(&name).await;
                    actions.push(format!("deleted runtime container {name} ({}) of no running container", rt.name));
                }
            }
        }
        for c in all.iter().filter(|c| !matches!(c.state, State::Dead { .. })) {
            if !self.driver.container_exists(&c.id) {
                let entry = self.lookup(c.id.as_str())?;
                let error = "its root filesystem is missing".to_string();
                self.update(&entry, |r| r.state = State::Dead { error: error.clone() })?;
                actions.push(format!("container {} ({}) is dead: {error}", c.id.short(), c.name));
            }
        }
        for a in &actions {
            tracing::warn!("reconcile: {a}");
        }
        Ok(actions)
    }
}
