//! Field updates from signed bundles (format: `berth_images::bundle`): verify, import, stage
//! the new application beside the old, switch, hold the new one to a health gate, then commit
//! or go back. One install at a time; each step recorded in the [`record::AppRecord`] before
//! its side effects, so a crash or power cut at any point ends, after [`Bundles::recover`], in
//! exactly one of the two applications running.

mod gate;
pub mod install;
pub mod record;
mod recover;
mod spec;

pub use install::InstallOptions;

use crate::containers::Containers;
use crate::images::ImageStore;
use crate::state::{Collection, Store};
use anyhow::Result;
use record::{AppRecord, Step, KEY};
use std::path::PathBuf;
use std::sync::Arc;

pub struct Bundles {
    records: Collection<AppRecord>,
    containers: Arc<Containers>,
    images: Arc<ImageStore>,
    events: Arc<crate::events::Events>,
    /// Where trusted public keys live (`bundle-trust-dir`, default /etc/berth/trust).
    pub trust_dir: PathBuf,
    /// This device's board name (`board`), matched against bundles and keys.
    pub board: Option<String>,
    /// Where uploads are spooled and verified before anything is applied.
    pub incoming: PathBuf,
    installing: tokio::sync::Mutex<()>,
}

impl Bundles {
    pub fn open(
        cfg: &crate::config::DaemonConfig,
        store: &Store,
        containers: Arc<Containers>,
        images: Arc<ImageStore>,
        events: Arc<crate::events::Events>,
    ) -> Result<Arc<Self>> {
        let incoming = cfg.data_root.join("bundles");
        std::fs::create_dir_all(&incoming)?;
        // Uploads a crash interrupted are not worth keeping: the sender retries.
        crate::storage::remove_stale_tmp(&incoming)?;
        Ok(Arc::new(Bundles {
            records: store.collection()?,
            containers,
            images,
            events,
            trust_dir: cfg.bundle_trust_dir.clone(),
            board: cfg.board.clone(),
            incoming,
            installing: Default::default(),
        }))
    }

    pub fn record(&self) -> Result<AppRecord> {
        Ok(self.records.get(KEY)?.unwrap_or_default())
    }

    /// Changes the record and writes it durably (the journal step).
    fn update(&self, f: impl FnOnce(&mut AppRecord)) -> Result<AppRecord> {
        let mut rec = self.record()?;
        f(&mut rec);
        self.records.put(KEY, &rec)?;
        Ok(rec)
    }

    /// Appends a step to the attempt's log, emits it as an event and says it to `progress`.
    fn step(&self, progress: &dyn Fn(String), what: String) -> Result<()> {
        let at = crate::util::time::now();
        let version = self
            .update(|r| {
                if let Some(a) = r.attempt.as_mut() {
                    a.steps.push(Step { at, what: what.clone() });
                }
            })?
            .attempt
            .map(|a| a.version.to_string())
            .unwrap_or_default();
        tracing::info!(version = %version, "bundle: {what}");
        self.events.emit(crate::events::Event::new("bundle", "step", version).attr("step", what.clone()));
        progress(what);
        Ok(())
    }

    /// `GET /berth/bundles`.
    pub fn status(&self) -> Result<serde_json::Value> {
        use serde_json::json;
        let r = self.record()?;
        let release = |rel: &Option<record::Release>| {
            rel.as_ref().map(|x| {
                json!({
                    "Version": x.version,
                    "Key": x.key,
                    "InstalledAt": x.installed_at,
                    "Images": x.images,
                    "Containers": x.containers.iter().map(|m| json!({"Name": m.name, "Id": m.id})).collect::<Vec<_>>(),
                })
            })
        };
        let attempt = r.attempt.as_ref().map(|a| {
            json!({
                "Version": a.version,
                "Key": a.key,
                "Started": a.started,
                "Phase": a.phase.name(),
                "Reason": a.phase.reason(),
                "Steps": a.steps.iter().map(|s| json!({"At": s.at, "What": s.what})).collect::<Vec<_>>(),
            })
        });
        Ok(json!({"Installed": release(&r.installed), "Previous": release(&r.previous), "LastAttempt": attempt}))
    }
}
