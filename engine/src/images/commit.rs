//! The image half of `docker commit`: a new image made of a base image's layers plus one
//! layer tar (the container's changes), with the container's configuration.

use super::ImageStore;
use anyhow::{Context, Result};
use berth_images::config::{History, RunConfig};
use berth_images::digest::HashingReader;
use berth_images::tarsplit::apply_recorded;
use berth_images::{Digest, Reference};
use std::path::Path;

/// What the new image says about itself.
pub struct CommitMeta {
    pub config: RunConfig,
    pub author: String,
    pub comment: String,
    pub container: String,
}

impl ImageStore {
    /// Adds the image `base` + the layer tar at `layer`, tagged `tag`.
    pub fn commit_layer(&self, base: &Digest, layer: &Path, meta: CommitMeta, tag: Option<Reference>) -> Result<Digest> {
        let mut config = self.config(base).with_context(|| format!("the container's image {}", base.short()))?;
        let (diff_id, _) = HashingReader::new(std::fs::File::open(layer)?).finish().context("reading the container's changes")?;
        let now = crate::util::time::now();
        config.rootfs.diff_ids.push(diff_id.clone());
        config.config = meta.config;
        config.created = Some(now.clone());
        config.author = (!meta.author.is_empty()).then(|| meta.author.clone());
        config.history.push(History {
            created: Some(now),
            author: config.author.clone(),
            comment: (!meta.comment.is_empty()).then_some(meta.comment),
            ..Default::default()
        });
        config.extra.insert("container".into(), meta.container.into());
        let bytes = serde_json::to_vec(&config)?;
        let top = config.rootfs.diff_ids.len() - 1;
        let id = self.add_image(
            &bytes,
            tag.as_slice(),
            false,
            &|i, dir, wh, split| {
                anyhow::ensure!(i == top, "layer {} of the container's image is missing", i + 1);
                let changes = std::io::BufReader::new(std::fs::File::open(layer)?);
                Ok(apply_recorded(changes, dir, wh, split, &diff_id)?.size)
            },
            &|_, _, _| {},
        )?;
        self.parents.put(id.hex(), &super::ParentRecord(base.clone()))?;
        Ok(id)
    }
}
