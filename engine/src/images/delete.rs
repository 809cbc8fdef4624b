//! `docker rmi`: untag, and delete an image once nothing names or uses it.

use super::{ImageError, ImageStore};
use anyhow::Result;
use berth_images::{Digest, Reference};
use std::collections::BTreeSet;

/// One line of `rmi`'s answer.
#[derive(Debug, serde::Serialize)]
pub enum Deleted {
    Untagged(String),
    Deleted(String),
}

/// Who uses an image: a container id (short) and whether it runs.
pub struct User {
    pub container: String,
    pub running: bool,
}

impl ImageStore {
    /// Removes `name` as Docker does. `users` says which container uses an image;
    /// `layers_in_use` are chain ids containers stand on (never deleted).
    pub fn delete(
        &self,
        name: &str,
        force: bool,
        users: &dyn Fn(&Digest) -> Option<User>,
        layers_in_use: &BTreeSet<Digest>,
    ) -> Result<Vec<Deleted>> {
        let img = self.resolve(name)?;
        let by_ref: Option<Reference> = name.parse::<Reference>().ok().filter(|r| {
            self.index.lock().unwrap().refs.get(r) == Some(&img.id) && !name.starts_with("sha256:") && !img.id.hex().starts_with(name)
        });
        let tags: Vec<Reference> = self.index.lock().unwrap().refs.iter().filter(|(_, d)| **d == img.id).map(|(r, _)| r.clone()).collect();
        let user = users(&img.id);
        let mut out = Vec::new();

        let untag = |refs: &[Reference], out: &mut Vec<Deleted>| -> Result<()> {
            let mut index = self.index.lock().unwrap();
            let mut map = index.refs.clone();
            for r in refs {
                map.remove(r);
                out.push(Deleted::Untagged(r.familiar()));
            }
            self.save_refs(&map)?;
            index.refs = map;
            Ok(())
        };

        if let Some(r) = by_ref {
            if tags.len() > 1 {
                untag(&[r], &mut out)?;
                return Ok(out);
            }
            if let Some(u) = &user {
                if !force {
                    return Err(ImageError::Conflict(format!(
                        "conflict: unable to remove repository reference \"{}\" (must force) - container {} is using its referenced image {}",
                        r.familiar(),
                        u.container,
                        img.id.short()
                    ))
                    .into());
                }
                untag(&[r], &mut out)?;
                return Ok(out);
            }
            untag(&[r], &mut out)?;
        } else {
            if let Some(u) = &user {
                let how = if u.running {
                    "cannot be forced) - image is being used by running"
                } else {
                    "must be forced) - image is being used by stopped"
                };
                if u.running || !force {
                    return Err(ImageError::Conflict(format!(
                        "conflict: unable to delete {} ({how} container {}",
                        img.id.short(),
                        u.container
                    ))
                    .into());
                }
                untag(&tags, &mut out)?;
                return Ok(out);
            }
            if tags.len() > 1 && !force {
                return Err(ImageError::Conflict(format!(
                    "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                    img.id.short()
                ))
                .into());
            }
            untag(&tags, &mut out)?;
        }

        // Nothing names or uses it any more: delete the record, then layers nothing stands on.
        let mut index = self.index.lock().unwrap();
        self.images.delete(img.id.hex())?;
        index.images.remove(&img.id);
        let _ = berth_images::durable::remove_file(&self.blobs.join(img.id.hex()));
        out.push(Deleted::Deleted(img.id.to_string()));
        let still_used: BTreeSet<&Digest> = index.images.values().flat_map(|i| i.layers.iter()).collect();
        for chain in img.layers.iter().rev() {
            if still_used.contains(chain) || layers_in_use.contains(chain) {
                continue;
            }
            self.driver.remove_layer(chain)?;
            self.layers.delete(chain.hex())?;
        }
        Ok(out)
    }
}
