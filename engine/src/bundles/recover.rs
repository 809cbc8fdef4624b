//! At daemon start, before restart policies run: an install a crash interrupted is finished
//! (it had passed its gate) or undone (it had not), so exactly one application runs; the
//! other application's containers are held back from the restart policies.

use super::record::Phase;
use super::spec::LABEL_VERSION;
use super::Bundles;
use anyhow::Result;
use std::collections::BTreeSet;
use std::sync::Arc;

const RESTARTED: &str = "interrupted by a daemon restart or power loss during the switch";

impl Bundles {
    /// What it did, one line each, for the recovery summary.
    pub async fn recover(self: &Arc<Self>) -> Result<Vec<String>> {
        let mut done = Vec::new();
        if let Some(a) = self.record()?.attempt {
            let what = match a.phase {
                Phase::Staged => {
                    self.abandon("interrupted before the switch by a daemon restart or power loss").await?;
                    Some("abandoned: it was interrupted before the switch; the installed application was not touched")
                }
                Phase::Switching | Phase::Gate => {
                    self.set_phase(Phase::RollingBack(RESTARTED.into()))?;
                    self.roll_back(RESTARTED.into()).await?;
                    Some("rolled back: it was interrupted before its health gate passed")
                }
                Phase::RollingBack(reason) => {
                    self.roll_back(reason).await?;
                    Some("rolled back (the rollback itself had been interrupted)")
                }
                Phase::Committing => {
                    self.commit().await?;
                    Some("committed: it had passed its health gate")
                }
                Phase::Installed | Phase::RolledBack(_) | Phase::Abandoned(_) => None,
            };
            if let Some(w) = what {
                let line = format!("bundle version {}: {w}", a.version);
                tracing::warn!("recovery: {line}");
                done.push(line);
            }
        }
        let rec = self.record()?;
        let current: BTreeSet<String> = rec.installed.iter().flat_map(|r| r.containers.iter().map(|m| m.id.clone())).collect();
        let held: BTreeSet<String> = self
            .containers
            .list()
            .into_iter()
            .filter(|c| c.config.labels.as_ref().is_some_and(|l| l.contains_key(LABEL_VERSION)))
            .map(|c| c.id.to_string())
            .filter(|id| !current.contains(id))
            .collect();
        self.containers.hold(held);
        // The installed application runs, whatever its restart policies say after a power cut.
        if let Some(i) = &rec.installed {
            for m in &i.containers {
                self.start(m).await;
            }
        }
        Ok(done)
    }
}
