//! The layer cache: a step's key (its parent image, the instruction as it ran, and for COPY
//! and ADD the checksum of what they copy) → the image the step made. An entry whose image
//! was removed since is a miss; `builder prune` removes the images only the cache holds.

use crate::state::{Collection, Record, Store};
use anyhow::Result;
use berth_images::Digest;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CacheEntry {
    pub image: Digest,
    /// Images the same step made before (`--no-cache` builds): no longer hits, but the
    /// cache's to remove.
    #[serde(default)]
    pub older: Vec<Digest>,
}

impl Record for CacheEntry {
    const TABLE: &'static str = "build_cache";
    const VERSION: u8 = 1;
}

/// What identifies a step's result.
pub struct Key(String);

impl Key {
    /// `parent`: the image the step starts from; `step`: the instruction as it runs (variables
    /// expanded, the build arguments a RUN sees); `content`: the checksum of copied files.
    pub fn new(parent: &Digest, step: &str, content: Option<&[u8]>) -> Key {
        let mut h = Sha256::new();
        h.update(parent.as_str());
        h.update([0]);
        h.update(step);
        if let Some(c) = content {
            h.update([0]);
            h.update(c);
        }
        Key(hex::encode(h.finalize()))
    }
}

pub struct Cache {
    entries: Collection<CacheEntry>,
}

impl Cache {
    pub fn open(store: &Store) -> Result<Cache> {
        Ok(Cache { entries: store.collection()? })
    }

    /// The image a step with this key made that `usable` accepts (the newest first).
    pub fn get(&self, key: &Key, usable: impl Fn(&Digest) -> bool) -> Result<Option<Digest>> {
        let Some(e) = self.entries.get(&key.0)? else { return Ok(None) };
        Ok(std::iter::once(e.image).chain(e.older.into_iter().rev()).find(|i| usable(i)))
    }

    pub fn put(&self, key: &Key, image: &Digest) -> Result<()> {
        let mut older = Vec::new();
        if let Some(old) = self.entries.get(&key.0)? {
            older = old.older;
            if old.image != *image && !older.contains(&old.image) {
                older.push(old.image);
            }
        }
        older.retain(|o| o != image);
        self.entries.put(&key.0, &CacheEntry { image: image.clone(), older })
    }

    /// Every entry: `(key, the images it made)`.
    pub fn list(&self) -> Result<Vec<(String, Vec<Digest>)>> {
        Ok(self.entries.list()?.into_iter().map(|(k, e)| (k, std::iter::once(e.image).chain(e.older).collect())).collect())
    }

    pub fn remove(&self, key: &str) -> Result<()> {
        self.entries.delete(key)
    }
}
