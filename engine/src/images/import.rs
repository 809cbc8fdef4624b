//! `docker import`: an image from a root filesystem tar (plain or gzip).

use super::{apply_changes, ImageStore};
use anyhow::{Context, Result};
use berth_images::archive::open_tar_file;
use berth_images::config::{History, RootFs};
use berth_images::digest::HashingReader;
use berth_images::tarsplit::apply_recorded;
use berth_images::{Digest, ImageConfig, Reference};
use std::path::Path;

/// The architecture name images use for this machine.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        other => other,
    }
}

impl ImageStore {
    /// Imports the root filesystem tar at `path` as a one-layer image.
    pub fn import_rootfs(&self, path: &Path, tag: Option<Reference>, message: &str, changes: &[String]) -> Result<Digest> {
        // The config names the layer by digest, so the tar is hashed once before it is
        // unpacked, and checked again as it unpacks (it must not change in between).
        let (diff_id, _) = HashingReader::new(open_tar_file(path)?).finish().context("reading the imported tar")?;
        let now = crate::util::time::now();
        let mut config = ImageConfig {
            architecture: host_arch().into(),
            os: "linux".into(),
            created: Some(now.clone()),
            rootfs: RootFs { typ: "layers".into(), diff_ids: vec![diff_id.clone()] },
            history: vec![History {
                created: Some(now),
                comment: Some(if message.is_empty() { "Imported from -".into() } else { message.into() }),
                ..Default::default()
            }],
            ..Default::default()
        };
        apply_changes(&mut config.config, changes)?;
        let bytes = serde_json::to_vec(&config)?;
        self.add_image(
            &bytes,
            tag.as_slice(),
            false,
            &|_, dir, wh, split| {
                // Hashed once before (the config names the layer) and checked again here: the
                // tar must not change in between.
                Ok(apply_recorded(open_tar_file(path)?, dir, wh, split, &diff_id)?.size)
            },
            &|_, _, _| {},
        )
    }
}
