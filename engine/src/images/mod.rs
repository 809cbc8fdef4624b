//! The daemon's image store: image records, references (tags), the config blobs, and the
//! operations that change them (`load`, `import`, `tag`, `rmi`). Layer content lives in the
//! storage driver; the parsing and verifying lives in the `berth-images` crate.
//!
//! On disk: `<data-root>/images/blobs/sha256/<hex>` (config blobs, checked against their
//! name when read) and the `images`, `layers`, `references` collections of the state store.
//! Write order, so a crash never shows a half-made image: layers, layer records, config
//! blob, image record, references.

mod changes;
mod delete;
mod import;
mod load;

pub use changes::apply_changes;
pub use delete::{Deleted, User as DeleteUser};
pub use import::host_arch;
pub use load::LoadProgress;

use crate::state::{Collection, Store};
use crate::storage::Driver;
use anyhow::{Context, Result};
use berth_images::{durable, Digest, ImageConfig, Reference};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// What the daemon knows of an image.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImageRecord {
    pub id: Digest,
    /// Chain ids of its layers, bottom first.
    pub layers: Vec<Digest>,
    /// Bytes of all its layers.
    pub size: u64,
    pub created: String,
    #[serde(default)]
    pub last_tag_time: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LayerRecord {
    pub chain: Digest,
    pub diff_id: Digest,
    pub parent: Option<Digest>,
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("No such image: {0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
}

/// The in-memory view of the store, loaded at start and kept in step with every write.
#[derive(Default)]
struct Index {
    images: BTreeMap<Digest, ImageRecord>,
    refs: BTreeMap<Reference, Digest>,
}

pub struct ImageStore {
    blobs: PathBuf,
    tmp: PathBuf,
    images: Collection<ImageRecord>,
    layers: Collection<LayerRecord>,
    references: Collection<BTreeMap<String, Digest>>,
    driver: Arc<dyn Driver>,
    index: Mutex<Index>,
}

/// The one key of the `references` collection: all tags in one record, so a tag move is one
/// atomic write.
const REFS_KEY: &str = "all";

impl ImageStore {
    pub fn open(data_root: &std::path::Path, store: &Store, driver: Arc<dyn Driver>) -> Result<Self> {
        let blobs = data_root.join("images/blobs/sha256");
        let tmp = data_root.join("tmp");
        std::fs::create_dir_all(&blobs).with_context(|| format!("creating {}", blobs.display()))?;
        std::fs::create_dir_all(&tmp)?;
        let s = ImageStore {
            blobs,
            tmp,
            images: store.collection("images")?,
            layers: store.collection("layers")?,
            references: store.collection("references")?,
            driver,
            index: Mutex::new(Index::default()),
        };
        let mut index = Index::default();
        for (_, rec) in s.images.list()? {
            index.images.insert(rec.id.clone(), rec);
        }
        for (name, id) in s.references.get(REFS_KEY)?.unwrap_or_default() {
            match name.parse::<Reference>() {
                Ok(r) if index.images.contains_key(&id) => {
                    index.refs.insert(r, id);
                }
                _ => tracing::warn!(reference = %name, "dropping a reference to a missing image"),
            }
        }
        *s.index.lock().unwrap() = index;
        Ok(s)
    }

    /// Where uploads are spooled (same filesystem as the store).
    pub fn tmp_dir(&self) -> &std::path::Path {
        &self.tmp
    }

    pub fn driver(&self) -> &dyn Driver {
        &*self.driver
    }

    fn save_refs(&self, refs: &BTreeMap<Reference, Digest>) -> Result<()> {
        let map: BTreeMap<String, Digest> = refs.iter().map(|(r, d)| (r.to_string(), d.clone())).collect();
        self.references.put(REFS_KEY, &map)
    }

    /// Finds an image by reference, full or short id (`sha256:` optional). An ambiguous short
    /// id is an error, as in Docker.
    pub fn resolve(&self, name: &str) -> Result<ImageRecord, ImageError> {
        let index = self.index.lock().unwrap();
        if let Ok(r) = name.parse::<Reference>() {
            if let Some(id) = index.refs.get(&r) {
                return Ok(index.images[id].clone());
            }
        }
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut hits = index.images.values().filter(|i| i.id.hex().starts_with(hex));
            if let Some(first) = hits.next() {
                if hits.next().is_some() {
                    return Err(ImageError::Invalid(format!("image id prefix {name:?} is ambiguous")));
                }
                return Ok(first.clone());
            }
        }
        Err(ImageError::NotFound(name.to_string()))
    }

    /// The tags of an image, as Docker prints them.
    pub fn tags_of(&self, id: &Digest) -> Vec<String> {
        let index = self.index.lock().unwrap();
        index.refs.iter().filter(|(_, d)| *d == id).map(|(r, _)| r.familiar()).collect()
    }

    pub fn list(&self) -> Vec<ImageRecord> {
        self.index.lock().unwrap().images.values().cloned().collect()
    }

    /// The image's configuration, read from its blob and checked against the id.
    pub fn config(&self, id: &Digest) -> Result<ImageConfig> {
        let path = self.blobs.join(id.hex());
        let data = std::fs::read(&path).with_context(|| format!("reading config of image {}", id.short()))?;
        anyhow::ensure!(Digest::of(&data) == *id, "config blob of image {} is damaged (digest mismatch)", id.short());
        Ok(ImageConfig::parse(&data)?)
    }

    /// Points `target` at the image `source` names.
    pub fn tag(&self, source: &str, target: Reference) -> Result<(), anyhow::Error> {
        let img = self.resolve(source)?;
        let mut index = self.index.lock().unwrap();
        let mut refs = index.refs.clone();
        refs.insert(target, img.id.clone());
        self.save_refs(&refs)?;
        index.refs = refs;
        if let Some(rec) = index.images.get_mut(&img.id) {
            rec.last_tag_time = Some(crate::util::time::now());
            let _ = self.images.put(rec.id.hex(), rec);
        }
        Ok(())
    }

    /// Records a complete image (layers already in place) and points `tags` at it.
    fn commit(&self, config_bytes: &[u8], layers: Vec<Digest>, size: u64, tags: &[Reference]) -> Result<Digest> {
        let id = Digest::of(config_bytes);
        durable::write_file_mode(&self.blobs.join(id.hex()), config_bytes, 0o644)?;
        let config = ImageConfig::parse(config_bytes)?;
        let rec = ImageRecord {
            id: id.clone(),
            layers,
            size,
            created: config.created.clone().unwrap_or_else(|| crate::util::time::ZERO.into()),
            last_tag_time: (!tags.is_empty()).then(crate::util::time::now),
        };
        let mut index = self.index.lock().unwrap();
        self.images.put(id.hex(), &rec)?;
        index.images.insert(id.clone(), rec);
        if !tags.is_empty() {
            let mut refs = index.refs.clone();
            for t in tags {
                if let Some(old) = refs.insert(t.clone(), id.clone()).filter(|old| *old != id) {
                    tracing::info!(tag = %t.familiar(), old = %old.short(), "tag moved; the old image keeps no name");
                }
            }
            self.save_refs(&refs)?;
            index.refs = refs;
        }
        Ok(id)
    }

    /// Creates the layer `chain` unless it exists, filling it with `apply`.
    fn ensure_layer(
        &self,
        chain: &Digest,
        diff_id: &Digest,
        parent: Option<&Digest>,
        apply: &mut crate::storage::ApplyFn<'_>,
    ) -> Result<u64> {
        if let Some(rec) = self.layers.get(chain.hex())? {
            if self.driver.has_layer(chain) {
                return Ok(rec.size);
            }
        }
        let mut size = 0;
        self.driver.create_layer(chain, parent, &mut |dir, wh| {
            size = apply(dir, wh)?;
            Ok(size)
        })?;
        self.layers.put(chain.hex(), &LayerRecord { chain: chain.clone(), diff_id: diff_id.clone(), parent: parent.cloned(), size })?;
        Ok(size)
    }
}
