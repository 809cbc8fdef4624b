//! New images made from an existing one: `docker commit`'s (a base image's layers plus one
//! layer tar, the container's changes) and the builder's (a new configuration and no new
//! layer, for the instructions that only set configuration; an empty base for `scratch`).

use super::import::host_arch;
use super::ImageStore;
use anyhow::{Context, Result};
use berth_images::config::{History, RootFs, RunConfig};
use berth_images::digest::HashingReader;
use berth_images::tarsplit::apply_recorded;
use berth_images::{Digest, ImageConfig, Reference};
use std::path::Path;

/// What the new image says about itself.
pub struct CommitMeta {
    pub config: RunConfig,
    pub author: String,
    pub comment: String,
    pub container: String,
    /// The history line's `created_by` (the builder's instruction).
    pub created_by: Option<String>,
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
            created_by: meta.created_by,
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

    /// Adds the image `base` with `config` and no new layer (an `ENV`, `CMD`, ... step).
    pub fn derive_config(&self, base: &Digest, config: RunConfig, author: Option<String>, created_by: String) -> Result<Digest> {
        let mut image = self.config(base).with_context(|| format!("the step's base image {}", base.short()))?;
        let now = crate::util::time::now();
        image.config = config;
        image.author = author;
        image.created = Some(now.clone());
        image.extra.remove("container");
        image.history.push(History { created: Some(now), created_by: Some(created_by), empty_layer: true, ..Default::default() });
        let bytes = serde_json::to_vec(&image)?;
        let id =
            self.add_image(&bytes, &[], false, &|i, _, _, _| anyhow::bail!("a configuration step made layer {}", i + 1), &|_, _, _| {})?;
        self.parents.put(id.hex(), &super::ParentRecord(base.clone()))?;
        Ok(id)
    }

    /// The image `FROM scratch` starts with: no layer, no configuration. Its config has no
    /// date, so it is the same image every time.
    pub fn scratch(&self, architecture: &str) -> Result<Digest> {
        let image = ImageConfig {
            architecture: if architecture.is_empty() { host_arch().into() } else { architecture.into() },
            os: "linux".into(),
            rootfs: RootFs { typ: "layers".into(), diff_ids: vec![] },
            ..Default::default()
        };
        let bytes = serde_json::to_vec(&image)?;
        let id = Digest::of(&bytes);
        if self.resolve(id.as_str()).is_ok() {
            return Ok(id);
        }
        self.add_image(&bytes, &[], false, &|_, _, _, _| anyhow::bail!("the scratch image has no layer"), &|_, _, _| {})
    }
}
