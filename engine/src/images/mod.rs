//! The daemon's image store: image records, references (tags), the config blobs, and the
//! operations that change them (`load`, `import`, `tag`, `rmi`). Layer content lives in the
//! storage driver; the parsing and verifying lives in the `berth-images` crate.
//!
//! On disk: `<data-root>/images/blobs/sha256/<hex>` (config blobs, checked against their
//! name when read), `<data-root>/images/layers/<chain-hex>.split` (each layer tar's layout,
//! see `berth_images::tarsplit`: what `save` and `push` rebuild the exact tar from) and the
//! `images`, `layers`, `references` collections of the state store. Write order, so a crash
//! never shows a half-made image: layers and their layouts, layer records, config blob,
//! image record, references.

mod changes;
mod commit;
mod delete;
mod import;
mod load;
mod pull;
mod push;
mod save;
pub mod search;
pub mod transport;

pub use changes::apply_changes;
pub use commit::CommitMeta;
pub use delete::{Deleted, User as DeleteUser};
pub use import::host_arch;
pub use load::LoadProgress;
pub use pull::{Progress, PullOptions};
pub use push::PushOptions;
pub use save::{SaveFormat, SaveItem};

use crate::state::{Collection, Op, Record, Store};
use crate::storage::Driver;
use crate::util::failpoint;
use anyhow::{Context, Result};
use berth_images::unpack::Whiteouts;
use berth_images::{durable, Digest, ImageConfig, Reference};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Unpacks layer `i` of an image being added into a directory (whiteouts as given), writing
/// its tar's layout to the writer; returns the bytes written.
/// Called from several threads at once when layers are unpacked side by side.
pub(crate) type FillLayer<'a> = dyn Fn(usize, &std::path::Path, Whiteouts, &mut dyn std::io::Write) -> Result<u64> + Sync + 'a;

/// Layers unpacked at once by a pull: decompressing and hashing are CPU-bound, and a device
/// has few cores.
const UNPACK_WORKERS: usize = 3;

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

/// The image a committed image was made from (Docker's local `Parent`; not in the config).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ParentRecord(pub Digest);

impl Record for ParentRecord {
    const TABLE: &'static str = "image_parents";
    const VERSION: u8 = 1;
}

/// All tags, one record: a tag move is one write.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RefMap(pub BTreeMap<String, Digest>);

impl Record for ImageRecord {
    const TABLE: &'static str = "images";
    const VERSION: u8 = 1;
}

impl Record for LayerRecord {
    const TABLE: &'static str = "layers";
    const VERSION: u8 = 1;
}

impl Record for RefMap {
    const TABLE: &'static str = "references";
    const VERSION: u8 = 1;
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
    splits: PathBuf,
    tmp: PathBuf,
    store: Store,
    images: Collection<ImageRecord>,
    layers: Collection<LayerRecord>,
    references: Collection<RefMap>,
    blob_sources: Collection<push::BlobSource>,
    parents: Collection<ParentRecord>,
    driver: Arc<dyn Driver>,
    index: Mutex<Index>,
    /// Layers found damaged (chain id → why): images standing on them are refused by `run`.
    damaged: Mutex<BTreeMap<Digest, String>>,
    /// Serialises operations that create or delete layers, so two loads never race on one
    /// layer directory and a deletion never removes a layer a load is about to reuse.
    writer: Mutex<()>,
}

/// The one key of the `references` collection: all tags in one record, so a tag move is one
/// atomic write.
pub(super) const REFS_KEY: &str = "all";

impl ImageStore {
    pub fn open(data_root: &std::path::Path, store: &Store, driver: Arc<dyn Driver>) -> Result<Self> {
        let blobs = data_root.join("images/blobs/sha256");
        let splits = data_root.join("images/layers");
        let tmp = data_root.join("tmp");
        for dir in [&blobs, &splits, &tmp] {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        remove_spooled(&tmp);
        pull::collect_stale_downloads(&tmp.join("pull"));
        let s = ImageStore {
            blobs,
            splits,
            tmp,
            store: store.clone(),
            images: store.collection()?,
            layers: store.collection()?,
            references: store.collection()?,
            blob_sources: store.collection()?,
            parents: store.collection()?,
            driver,
            index: Mutex::new(Index::default()),
            damaged: Mutex::new(BTreeMap::new()),
            writer: Mutex::new(()),
        };
        let mut index = Index::default();
        for (_, rec) in s.images.list()? {
            index.images.insert(rec.id.clone(), rec);
        }
        for (name, id) in s.references.get(REFS_KEY)?.unwrap_or_default().0 {
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

    /// Where the layout of layer `chain`'s tar is kept.
    fn split_path(&self, chain: &Digest) -> PathBuf {
        self.splits.join(format!("{}.split", chain.hex()))
    }

    /// Removes a layer's directory and its recorded layout.
    fn remove_layer_files(&self, chain: &Digest) -> Result<()> {
        self.driver.remove_layer(chain)?;
        durable::remove_file(&self.split_path(chain))
    }

    fn save_refs(&self, refs: &BTreeMap<Reference, Digest>) -> Result<()> {
        self.references.put(REFS_KEY, &ref_map(refs))
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
        index.refs.iter().filter(|(r, d)| *d == id && r.tag().is_some()).map(|(r, _)| r.familiar()).collect()
    }

    /// `repo@sha256:...` names of an image (the manifests it was pulled by).
    pub fn digests_of(&self, id: &Digest) -> Vec<String> {
        let index = self.index.lock().unwrap();
        index.refs.iter().filter(|(r, d)| *d == id && r.tag().is_none()).map(|(r, _)| r.familiar()).collect()
    }

    pub fn list(&self) -> Vec<ImageRecord> {
        self.index.lock().unwrap().images.values().cloned().collect()
    }

    /// The image's configuration, read from its blob and checked against the id.
    pub fn config(&self, id: &Digest) -> Result<ImageConfig> {
        Ok(ImageConfig::parse(&self.config_bytes(id)?)?)
    }

    /// The image's configuration blob as stored (what `save` and `push` send), checked
    /// against the id.
    pub fn config_bytes(&self, id: &Digest) -> Result<Vec<u8>> {
        let data = std::fs::read(self.blobs.join(id.hex())).with_context(|| format!("reading config of image {}", id.short()))?;
        anyhow::ensure!(Digest::of(&data) == *id, "config blob of image {} is damaged (digest mismatch)", id.short());
        Ok(data)
    }

    /// Points `target` at the image `source` names.
    pub fn tag(&self, source: &str, target: Reference) -> Result<(), anyhow::Error> {
        let img = self.resolve(source)?;
        let mut index = self.index.lock().unwrap();
        let mut refs = index.refs.clone();
        refs.insert(target, img.id.clone());
        let mut rec = img;
        rec.last_tag_time = Some(crate::util::time::now());
        // The tag and the image's tag time: one commit.
        self.store.write(|tx| {
            tx.put(REFS_KEY, &ref_map(&refs))?;
            tx.put(rec.id.hex(), &rec)
        })?;
        index.refs = refs;
        index.images.insert(rec.id.clone(), rec);
        Ok(())
    }

    /// Adds an image: the layers it lacks are named in an intent, created with `fill`
    /// (layer index, directory, whiteout mode, where the tar's layout goes → bytes written;
    /// see [`berth_images::tarsplit::apply_recorded`]; `concurrent`: several layers at once
    /// where the driver allows), then the layer records, the image
    /// record and its tags commit in one transaction with the intent's removal. A crash
    /// anywhere before that commit leaves no image and, after recovery, no layer directory.
    pub(crate) fn add_image(
        &self,
        config_bytes: &[u8],
        tags: &[Reference],
        concurrent: bool,
        fill: &FillLayer<'_>,
        progress: &(dyn Fn(usize, &Digest, bool) + Sync),
    ) -> Result<Digest> {
        let _writer = self.writer.lock().unwrap();
        let id = Digest::of(config_bytes);
        let config = ImageConfig::parse(config_bytes)?;
        let chains = config.chain_ids();
        let mut existing = Vec::new();
        for c in &chains {
            existing.push(self.layers.get(c.hex())?.filter(|_| self.driver.has_layer(c)));
        }
        let missing: Vec<Digest> = chains.iter().zip(&existing).filter(|(_, e)| e.is_none()).map(|(c, _)| c.clone()).collect();
        let intent = self.store.begin(Op::CreateLayers { chains: missing.clone() })?;
        failpoint::hit("image.layers.after-intent");
        let made = (|| -> Result<(Vec<LayerRecord>, u64)> {
            let mut size = 0;
            let mut todo = Vec::new();
            for (i, e) in existing.iter().enumerate() {
                match e {
                    Some(rec) => {
                        size += rec.size;
                        progress(i, &config.rootfs.diff_ids[i], true);
                    }
                    None => todo.push(i),
                }
            }
            // Layers that stand alone on disk (overlay2) are unpacked side by side when the
            // caller can feed them so (a pull, whose downloads finish in any order); a vfs
            // layer is a copy of its parent and waits for it.
            let workers = if concurrent && self.driver.independent_layers() { UNPACK_WORKERS.min(todo.len()).max(1) } else { 1 };
            let next = std::sync::atomic::AtomicUsize::new(0);
            let failed = std::sync::atomic::AtomicBool::new(false);
            let done: Mutex<BTreeMap<usize, Result<LayerRecord>>> = Mutex::new(BTreeMap::new());
            let work = || {
                use std::sync::atomic::Ordering;
                while !failed.load(Ordering::SeqCst) {
                    let Some(&i) = todo.get(next.fetch_add(1, Ordering::SeqCst)) else { break };
                    let t = std::time::Instant::now();
                    let r = self.create_one_layer(&id, &chains, i, &config.rootfs.diff_ids[i], fill);
                    tracing::debug!(layer = i + 1, ms = t.elapsed().as_millis() as u64, "layer unpacked");
                    match &r {
                        Ok(_) => progress(i, &config.rootfs.diff_ids[i], false),
                        Err(_) => failed.store(true, Ordering::SeqCst),
                    }
                    done.lock().unwrap().insert(i, r);
                }
            };
            if workers == 1 {
                work();
            } else {
                std::thread::scope(|s| {
                    for _ in 0..workers {
                        s.spawn(work);
                    }
                });
            }
            let mut new_layers = Vec::new();
            for (_, r) in done.into_inner().unwrap() {
                let rec = r?;
                size += rec.size;
                new_layers.push(rec);
            }
            anyhow::ensure!(new_layers.len() == todo.len(), "not every layer of image {} was created", id.short());
            // One flush for all new layers. The fills have deleted what they read from (pull
            // downloads on the same filesystem), so the flush writes layer content only.
            if !todo.is_empty() {
                let t = std::time::Instant::now();
                self.driver.sync_layers()?;
                tracing::debug!(image = %id.short(), layers = todo.len(), ms = t.elapsed().as_millis() as u64, "new layers flushed");
            }
            durable::write_file_mode(&self.blobs.join(id.hex()), config_bytes, 0o644)?;
            failpoint::hit("image.layers.before-commit");
            Ok((new_layers, size))
        })();
        let (new_layers, size) = match made {
            Ok(v) => v,
            Err(e) => {
                for c in &missing {
                    if let Err(undo) = self.remove_layer_files(c) {
                        tracing::error!(layer = %c.short(), "undoing a failed layer: {undo:#}");
                    }
                }
                self.store.finish(&intent)?;
                return Err(e);
            }
        };
        let rec = ImageRecord {
            id: id.clone(),
            layers: chains,
            size,
            created: config.created.clone().unwrap_or_else(|| crate::util::time::ZERO.into()),
            last_tag_time: (!tags.is_empty()).then(crate::util::time::now),
        };
        let mut index = self.index.lock().unwrap();
        let mut refs = index.refs.clone();
        for t in tags {
            if let Some(old) = refs.insert(t.clone(), id.clone()).filter(|old| *old != id) {
                tracing::info!(tag = %t.familiar(), old = %old.short(), "tag moved; the old image keeps no name");
            }
        }
        self.store.commit(&intent, |tx| {
            for l in &new_layers {
                tx.put(l.chain.hex(), l)?;
            }
            tx.put(id.hex(), &rec)?;
            tx.put(REFS_KEY, &ref_map(&refs))
        })?;
        index.images.insert(id.clone(), rec);
        index.refs = refs;
        Ok(id)
    }

    /// Creates layer `i` of image `id` with `fill`, its tar's layout recorded beside it.
    fn create_one_layer(&self, id: &Digest, chains: &[Digest], i: usize, diff_id: &Digest, fill: &FillLayer<'_>) -> Result<LayerRecord> {
        let chain = &chains[i];
        let parent = i.checked_sub(1).map(|p| &chains[p]);
        let mut written = 0;
        let split_tmp = self.tmp.join(format!("{}.split", chain.hex()));
        let made = (|| -> Result<()> {
            let file = std::fs::File::create(&split_tmp).with_context(|| format!("creating {}", split_tmp.display()))?;
            let mut split = flate2::write::GzEncoder::new(std::io::BufWriter::new(file), flate2::Compression::fast());
            self.driver
                .create_layer(chain, parent, &mut |dir, wh| {
                    written = fill(i, dir, wh, &mut split)?;
                    Ok(written)
                })
                .with_context(|| format!("layer {} of image {}", i + 1, id.short()))?;
            let file = split.finish()?.into_inner().map_err(|e| e.into_error())?;
            file.sync_all().with_context(|| format!("fsync of {}", split_tmp.display()))?;
            durable::rename(&split_tmp, &self.split_path(chain))
        })();
        if made.is_err() {
            let _ = std::fs::remove_file(&split_tmp);
        }
        made?;
        failpoint::hit("image.layers.after-first-layer");
        Ok(LayerRecord { chain: chain.clone(), diff_id: diff_id.clone(), parent: parent.cloned(), size: written })
    }

    /// The image `id` was committed or built from, if it is still here.
    pub fn parent_of(&self, id: &Digest) -> Option<Digest> {
        let parent = self.parents.get(id.hex()).ok().flatten().map(|p| p.0)?;
        self.index.lock().unwrap().images.contains_key(&parent).then_some(parent)
    }

    /// Images another image here was made from: an untagged one is an intermediate image
    /// (hidden by `images` without `-a`), not a dangling one.
    pub fn parents_in_use(&self) -> std::collections::BTreeSet<Digest> {
        let index = self.index.lock().unwrap();
        let children = self.parents.list().unwrap_or_default();
        children
            .into_iter()
            .filter(|(child, _)| format!("sha256:{child}").parse::<Digest>().is_ok_and(|c| index.images.contains_key(&c)))
            .map(|(_, p)| p.0)
            .collect()
    }

    /// Why the image cannot be used, if one of its layers was found damaged.
    pub fn damage(&self, img: &ImageRecord) -> Option<String> {
        let damaged = self.damaged.lock().unwrap();
        img.layers.iter().find_map(|c| damaged.get(c).cloned())
    }

    /// `image-layer-check`: rebuilds every layer's tar from its directory and compares it
    /// with its `diff_id`. A layer that differs is marked damaged (with the reason), so the
    /// images on it are refused by `run` instead of failing deep inside a container start.
    /// Returns one line per damaged layer. Blocking, and as slow as reading every layer.
    pub fn check_layers(&self) -> Result<Vec<String>> {
        let mut found = Vec::new();
        for (_, l) in self.layers.list()? {
            let split = self.split_path(&l.chain);
            if !split.exists() {
                tracing::warn!(layer = %l.diff_id.short(), "image-layer-check: the layer's tar layout was not recorded; not checked");
                continue;
            }
            let checked = berth_images::tarsplit::Rebuild::tar_size(&split).map_err(anyhow::Error::from).and_then(|size| {
                self.write_layer_tar(&save::LayerTar { chain: l.chain.clone(), diff_id: l.diff_id.clone(), size }, &mut std::io::sink())
            });
            if let Err(e) = checked {
                let why = format!("layer {} failed verification: {e:#}", l.diff_id.short());
                tracing::error!("image-layer-check: {why}");
                self.damaged.lock().unwrap().insert(l.chain.clone(), why.clone());
                found.push(why);
            }
        }
        Ok(found)
    }

    /// Finishes or undoes an image operation a crash interrupted.
    pub fn recover(&self, op: &Op) -> Result<String> {
        let _writer = self.writer.lock().unwrap();
        match op {
            Op::CreateLayers { chains } => {
                for c in chains {
                    if self.layers.get(c.hex())?.is_none() {
                        self.remove_layer_files(c)?;
                    }
                }
                Ok(format!("rolled back: {} unfinished layer(s) removed", chains.len()))
            }
            Op::RemoveLayers { chains, blobs } => {
                for c in chains {
                    if self.layers.get(c.hex())?.is_none() {
                        self.remove_layer_files(c)?;
                    }
                }
                for b in blobs {
                    if self.images.get(b.hex())?.is_none() {
                        durable::remove_file(&self.blobs.join(b.hex()))?;
                    }
                }
                Ok(format!("rolled forward: {} layer(s) removed", chains.len()))
            }
            other => anyhow::bail!("not an image operation: {other:?}"),
        }
    }

    /// The size of each of an image's layers, bottom first.
    pub fn layer_sizes(&self, img: &ImageRecord) -> Result<Vec<u64>> {
        img.layers.iter().map(|c| Ok(self.layers.get(c.hex())?.map(|l| l.size).unwrap_or(0))).collect()
    }

    /// Bytes of all layers on disk (each counted once).
    pub fn layers_size(&self) -> Result<u64> {
        Ok(self.layers.list()?.iter().map(|(_, l)| l.size).sum())
    }

    /// Chain ids of every recorded layer.
    pub fn layer_ids(&self) -> Result<std::collections::BTreeSet<Digest>> {
        Ok(self.layers.list()?.into_iter().map(|(_, l)| l.chain).collect())
    }

    /// Removes config blobs no image record owns; reports images whose layers are missing.
    pub fn reconcile(&self) -> Result<Vec<String>> {
        let mut actions = Vec::new();
        let index = self.index.lock().unwrap();
        for e in std::fs::read_dir(&self.blobs)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            let owned = format!("sha256:{name}").parse::<Digest>().ok().is_some_and(|d| index.images.contains_key(&d));
            if !owned {
                durable::remove_file(&e.path())?;
                actions.push(format!("removed config blob {name} that no image owns"));
            }
        }
        let records: Vec<LayerRecord> = self.layers.list()?.into_iter().map(|(_, l)| l).collect();
        let layers: std::collections::BTreeSet<&Digest> = records.iter().map(|l| &l.chain).collect();
        for e in std::fs::read_dir(&self.splits)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            let owned = name
                .strip_suffix(".split")
                .and_then(|hex| format!("sha256:{hex}").parse::<Digest>().ok())
                .is_some_and(|d| layers.contains(&d));
            if !owned {
                durable::remove_file(&e.path())?;
                actions.push(format!("removed layer layout {name} that no layer owns"));
            }
        }
        // Records about images and layers that are gone (each a lookup key) are dropped.
        for (key, _) in self.parents.list()? {
            if !format!("sha256:{key}").parse::<Digest>().is_ok_and(|d| index.images.contains_key(&d)) {
                self.parents.delete(&key)?;
            }
        }
        let diff_ids: std::collections::BTreeSet<&str> = records.iter().map(|l| l.diff_id.hex()).collect();
        for (key, _) in self.blob_sources.list()? {
            if !diff_ids.contains(key.as_str()) {
                self.blob_sources.delete(&key)?;
            }
        }
        for img in index.images.values() {
            if let Some(missing) = img.layers.iter().find(|c| !layers.contains(c) || !self.driver.has_layer(c)) {
                let msg = format!("image {} is damaged: its layer {} is missing", img.id.short(), missing.short());
                tracing::error!("{msg}");
                self.damaged.lock().unwrap().insert(missing.clone(), format!("layer {} is missing", missing.short()));
                actions.push(msg);
            }
        }
        Ok(actions)
    }
}

/// Removes the uploads, layer layouts and unpacked build contexts a crash left in `tmp` (the
/// pull downloads below it are kept for a resume). Called at start, before anything writes
/// there.
fn remove_spooled(tmp: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else { return };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_file()) {
            tracing::info!(file = %e.path().display(), "removing a leftover upload");
            let _ = std::fs::remove_file(e.path());
        } else if e.file_name().to_string_lossy().starts_with("build-") {
            tracing::info!(dir = %e.path().display(), "removing a leftover build context");
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

pub(super) fn ref_map(refs: &BTreeMap<Reference, Digest>) -> RefMap {
    RefMap(refs.iter().map(|(r, d)| (r.to_string(), d.clone())).collect())
}
