//! `docker load`: images from a `docker save` archive or an OCI layout tar.

use super::ImageStore;
use anyhow::Result;
use berth_images::archive::ArchiveIndex;
use berth_images::tarsplit::apply_recorded;
use berth_images::{Digest, Reference};
use std::path::Path;

/// What `load` reports as it goes (the API turns it into Docker's JSON message stream).
pub enum LoadProgress<'a> {
    Layer { image: &'a Digest, index: usize, total: usize, diff_id: &'a Digest, existed: bool },
    Loaded { id: &'a Digest, tags: &'a [Reference] },
}

impl ImageStore {
    /// Loads every image in the archive at `path`. Each layer is verified against the image's
    /// config as it is unpacked; an image appears only once all of it is in place.
    pub fn load_archive(&self, path: &Path, progress: &(dyn Fn(LoadProgress<'_>) + Sync)) -> Result<Vec<(Digest, Vec<Reference>)>> {
        let archive = ArchiveIndex::open(path)?;
        let images = archive.images()?;
        let mut loaded = Vec::new();
        for img in images {
            let total = img.layers.len();
            let id = self.add_image(
                &img.config_bytes,
                &img.tags,
                // One archive file, read at one offset at a time.
                false,
                &|i, dir, wh, split| {
                    let mut reader = archive.open_layer(&img.layers[i])?;
                    let stats = apply_recorded(&mut reader, dir, wh, split, &img.config.rootfs.diff_ids[i])?;
                    reader.finish()?;
                    Ok(stats.size)
                },
                &|index, diff_id, existed| progress(LoadProgress::Layer { image: &img.id, index, total, diff_id, existed }),
            )?;
            progress(LoadProgress::Loaded { id: &id, tags: &img.tags });
            loaded.push((id, img.tags));
        }
        Ok(loaded)
    }
}
