//! `docker load`: images from a `docker save` archive or an OCI layout tar.

use super::ImageStore;
use anyhow::{Context, Result};
use berth_images::archive::ArchiveIndex;
use berth_images::unpack::apply_layer;
use berth_images::{Digest, Reference};
use std::path::Path;

/// What `load` reports as it goes (the API turns it into Docker's JSON message stream).
pub enum LoadProgress<'a> {
    Layer { image: &'a Digest, index: usize, total: usize, diff_id: &'a Digest, existed: bool },
    Loaded { id: &'a Digest, tags: &'a [Reference] },
}

impl ImageStore {
    /// Loads every image in the archive at `path`. All layers of an image are verified
    /// against its config before the image is recorded; a failure leaves no image behind
    /// (layers that were fully verified stay, for the next attempt).
    pub fn load_archive(&self, path: &Path, progress: &mut dyn FnMut(LoadProgress<'_>)) -> Result<Vec<(Digest, Vec<Reference>)>> {
        let archive = ArchiveIndex::open(path)?;
        let images = archive.images()?;
        let mut loaded = Vec::new();
        for img in images {
            let chains = img.config.chain_ids();
            let mut size = 0;
            for (i, (src, chain)) in img.layers.iter().zip(&chains).enumerate() {
                let diff_id = &img.config.rootfs.diff_ids[i];
                let parent = i.checked_sub(1).map(|p| &chains[p]);
                let existed = self.driver.has_layer(chain) && self.layers.get(chain.hex())?.is_some();
                size += self
                    .ensure_layer(chain, diff_id, parent, &mut |dir, wh| {
                        let mut reader = archive.open_layer(src)?;
                        let stats = apply_layer(&mut reader, dir, wh)?;
                        reader.finish(diff_id)?;
                        Ok(stats.size)
                    })
                    .with_context(|| format!("layer {} of image {}", i + 1, img.id.short()))?;
                progress(LoadProgress::Layer { image: &img.id, index: i, total: chains.len(), diff_id, existed });
            }
            let id = self.commit(&img.config_bytes, chains, size, &img.tags)?;
            progress(LoadProgress::Loaded { id: &id, tags: &img.tags });
            loaded.push((id, img.tags));
        }
        Ok(loaded)
    }
}
