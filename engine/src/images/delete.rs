//! `docker rmi`: untag, and delete an image once nothing names or uses it.

use super::{ImageError, ImageStore};
use crate::state::Op;
use crate::util::failpoint;
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
    /// `layers_in_use` are chain ids containers stand on (never deleted). Unless `noprune`,
    /// an image deleted takes its untagged parents with it (a build's intermediate images)
    /// while nothing else stands on them.
    pub fn delete(
        &self,
        name: &str,
        force: bool,
        users: &dyn Fn(&Digest) -> Option<User>,
        layers_in_use: &BTreeSet<Digest>,
        noprune: bool,
    ) -> Result<Vec<Deleted>> {
        let mut parent = self.resolve(name).ok().and_then(|img| self.parent_of(&img.id));
        let mut out = self.delete_one(name, force, users, layers_in_use)?;
        if noprune || !out.iter().any(|d| matches!(d, Deleted::Deleted(_))) {
            return Ok(out);
        }
        while let Some(p) = parent.take() {
            let unnamed = self.index.lock().unwrap().refs.values().all(|d| *d != p);
            if !unnamed || users(&p).is_some() || self.parents_in_use().contains(&p) || self.resolve(p.as_str()).is_err() {
                break;
            }
            parent = self.parent_of(&p);
            out.extend(self.delete_one(p.as_str(), false, users, layers_in_use)?);
        }
        Ok(out)
    }

    fn delete_one(
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
        // Names of the image: tags decide whether it goes; digest references go with the last tag.
        let names: Vec<Reference> = self.index.lock().unwrap().refs.iter().filter(|(_, d)| **d == img.id).map(|(r, _)| r.clone()).collect();
        let tags: Vec<Reference> = names.iter().filter(|r| r.tag().is_some()).cloned().collect();
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
                untag(&names, &mut out)?;
                return Ok(out);
            }
            if tags.len() > 1 && !force {
                return Err(ImageError::Conflict(format!(
                    "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                    img.id.short()
                ))
                .into());
            }
        }

        // Nothing else names or uses it. One commit drops its names, the image record and the
        // records of layers nothing else stands on, and journals their removal; the
        // directories and the blob go after it (rolled forward after a crash).
        let _writer = self.writer.lock().unwrap();
        let mut index = self.index.lock().unwrap();
        let mut refs = index.refs.clone();
        for r in &names {
            refs.remove(r);
            out.push(Deleted::Untagged(r.familiar()));
        }
        let still_used: BTreeSet<&Digest> = index.images.values().filter(|i| i.id != img.id).flat_map(|i| i.layers.iter()).collect();
        let chains: Vec<Digest> =
            img.layers.iter().rev().filter(|c| !still_used.contains(c) && !layers_in_use.contains(c)).cloned().collect();
        let intent = self.store.write(|tx| {
            tx.put(super::REFS_KEY, &super::ref_map(&refs))?;
            tx.delete::<super::ImageRecord>(img.id.hex())?;
            tx.delete::<super::ParentRecord>(img.id.hex())?;
            for c in &chains {
                tx.delete::<super::LayerRecord>(c.hex())?;
            }
            self.store.begin_in(tx, Op::RemoveLayers { chains: chains.clone(), blobs: vec![img.id.clone()] })
        })?;
        index.images.remove(&img.id);
        index.refs = refs;
        drop(index);
        out.push(Deleted::Deleted(img.id.to_string()));
        failpoint::hit("image.delete.after-commit");
        // The deletion is committed: a file that will not go now is left to the journal (the
        // next start rolls the removal forward), not reported as a failed deletion.
        let removed = chains
            .iter()
            .map(|c| self.remove_layer_files(c))
            .chain(std::iter::once(berth_images::durable::remove_file(&self.blobs.join(img.id.hex()))))
            .collect::<Result<Vec<()>>>();
        match removed {
            Ok(_) => self.store.finish(&intent)?,
            Err(e) => tracing::warn!(image = %img.id.short(), "files of a deleted image remain until the next start: {e:#}"),
        }
        Ok(out)
    }
}
