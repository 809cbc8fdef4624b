//! A container's file system as data: `diff` (what changed), `export` (all of it as a tar)
//! and `commit` (the changes as a new image layer). Read from the driver's directories (overlay2)
//! or a mount of its own (devicemapper), so they work on stopped containers; each waits for
//! the unmount that followed the container's last exit, which would otherwise take the
//! device away under the read.

use super::error::ContainerError;
use super::model::State;
use super::{Containers, Entry};
use crate::images::CommitMeta;
use crate::storage::changes::{Change, ContainerView};
use anyhow::{Context, Result};
use berth_images::config::RunConfig;
use berth_images::{Digest, Reference};
use std::io::Write;
use std::sync::Arc;

/// `docker commit`'s options.
pub struct CommitOptions {
    pub tag: Option<Reference>,
    pub author: String,
    pub comment: String,
    /// Freeze a running container while its changes are read (Docker's default).
    pub pause: bool,
    pub config: CommitConfig,
    /// The history line's `created_by` (the builder's instruction).
    pub created_by: Option<String>,
}

/// The new image's configuration.
pub enum CommitConfig {
    /// `docker commit`'s: the container's, with what the request body sets (`overrides`)
    /// and then the Dockerfile instructions of `--change` applied.
    Container { overrides: Option<RunConfig>, changes: Vec<String> },
    /// The builder's: exactly this (a RUN step's container ran the step's command, which
    /// is not the image's).
    Given(RunConfig),
}

impl Containers {
    fn view(&self, entry: &Entry) -> Result<ContainerView> {
        let c = entry.get();
        if !self.driver.container_exists(&c.id) {
            return Err(ContainerError::Conflict(format!("container {} has no root filesystem (it is dead)", c.id.short())).into());
        }
        Ok(self.driver.container_view(&c.id, &c.layers))
    }

    /// `docker diff`.
    pub async fn changes(self: &Arc<Self>, name: &str) -> Result<Vec<Change>> {
        let entry = self.lookup(name)?;
        let _op = entry.op.lock().await;
        // The unmount after the last exit must be done before the view mounts the root
        // filesystem again (devicemapper: the device would be taken away under it).
        entry.settle_unmount().await;
        let view = self.view(&entry)?;
        tokio::task::spawn_blocking(move || view.changes()).await?
    }

    /// Checks `name` can be exported and returns the view to write from (blocking).
    pub async fn export_view(&self, name: &str) -> Result<ContainerView> {
        let entry = self.lookup(name)?;
        entry.settle_unmount().await;
        self.view(&entry)
    }

    /// `docker commit`: the container's changes become the top layer of a new image with the
    /// container's configuration (after `changes`).
    pub async fn commit(self: &Arc<Self>, name: &str, opts: CommitOptions) -> Result<Digest> {
        let entry = self.lookup(name)?;
        // No start, stop or removal while the changes are read.
        let _op = entry.op.lock().await;
        entry.settle_unmount().await;
        let c = entry.get();
        let config = match opts.config {
            CommitConfig::Given(config) => config,
            CommitConfig::Container { overrides, changes } => {
                let mut config: RunConfig = serde_json::from_value(serde_json::to_value(&c.config)?)?;
                config.extra.remove("Image");
                if let Some(o) = overrides {
                    config.user = o.user.or(config.user);
                    config.env = o.env.or(config.env);
                    config.entrypoint = o.entrypoint.or(config.entrypoint);
                    config.cmd = o.cmd.or(config.cmd);
                    config.working_dir = o.working_dir.or(config.working_dir);
                    config.labels = o.labels.or(config.labels);
                    config.stop_signal = o.stop_signal.or(config.stop_signal);
                    config.exposed_ports = o.exposed_ports.or(config.exposed_ports);
                    config.volumes = o.volumes.or(config.volumes);
                }
                crate::images::apply_changes(&mut config, &changes).map_err(|e| ContainerError::Invalid(format!("{e:#}")))?;
                config
            }
        };
        let view = self.view(&entry)?;
        let spool = self.images.tmp_dir().join(format!("commit-{}-{}.tar", c.id.short(), std::process::id()));
        let paused = opts.pause && matches!(c.state, State::Running(_));
        if paused {
            self.freeze(&c, "pause").await.context("pausing the container for the commit")?;
        }
        let spool2 = spool.clone();
        let written = tokio::task::spawn_blocking(move || -> Result<()> {
            let changes = view.changes()?;
            let mut f = std::io::BufWriter::new(std::fs::File::create(&spool2).with_context(|| format!("creating {}", spool2.display()))?);
            view.write_changes_tar(&changes, &mut f)?;
            f.flush()?;
            Ok(())
        })
        .await;
        if paused {
            if let Err(e) = self.freeze(&c, "resume").await {
                tracing::error!(container = %c.id.short(), "resuming after the commit failed: {e:#}");
            }
        }
        let result = async {
            written??;
            let images = self.images.clone();
            let meta =
                CommitMeta { config, author: opts.author, comment: opts.comment, container: c.id.to_string(), created_by: opts.created_by };
            let (base, spool2, tag) = (c.image_id.clone(), spool.clone(), opts.tag);
            tokio::task::spawn_blocking(move || images.commit_layer(&base, &spool2, meta, tag)).await?
        }
        .await;
        let _ = std::fs::remove_file(&spool);
        result
    }
}
