//! `docker save`: images as one tar, in the layout Docker 25+ writes — an OCI image layout
//! (`oci-layout`, `index.json`, `blobs/sha256/...`) that also carries `manifest.json` and
//! `repositories`, so both `docker load` of any age and OCI tools (skopeo, umoci) read it.
//! `--format oci` leaves out the Docker files.
//!
//! Layers are rebuilt byte for byte from their directories and recorded layouts
//! ([`berth_images::tarsplit`]), hashed as they stream and checked against their `diff_id`: a
//! layer damaged on disk ends the stream with an error, never a tar with wrong content.

use super::{ImageError, ImageRecord, ImageStore};
use anyhow::{ensure, Context, Result};
use berth_images::digest::HashingReader;
use berth_images::tarsplit::Rebuild;
use berth_images::{Digest, Reference};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveFormat {
    /// OCI layout plus `manifest.json` and `repositories` (what `docker save` writes).
    Docker,
    /// OCI layout only.
    Oci,
}

/// One image to save and the names it is saved under.
pub struct SaveItem {
    image: ImageRecord,
    names: Vec<Reference>,
}

/// A layer of a saved image: its `diff_id` and the size of its tar.
#[derive(Clone)]
pub(crate) struct LayerTar {
    pub chain: Digest,
    pub diff_id: Digest,
    pub size: u64,
}

impl ImageStore {
    /// Resolves what `save` was asked for, as Docker does: a tag saves that tag, a bare
    /// repository every tag of it, an id the image without names. Unknown names fail here,
    /// before any byte is sent.
    pub fn save_items(&self, names: &[String]) -> Result<Vec<SaveItem>, ImageError> {
        let mut items: Vec<SaveItem> = Vec::new();
        for name in names {
            let repo_tags: Vec<Reference> = {
                let index = self.index.lock().unwrap();
                let bare = !name.contains('@') && !name.rsplit('/').next().unwrap_or("").contains(':');
                match name.parse::<Reference>() {
                    Ok(r) if bare => {
                        let repo = r.repository();
                        index.refs.keys().filter(|t| t.tag().is_some() && t.repository() == repo).cloned().collect()
                    }
                    _ => vec![],
                }
            };
            let mut found: Vec<(ImageRecord, Option<Reference>)> = Vec::new();
            if repo_tags.is_empty() {
                let img = self.resolve(name)?;
                let tag =
                    name.parse::<Reference>().ok().filter(|r| r.tag().is_some() && self.index.lock().unwrap().refs.get(r) == Some(&img.id));
                found.push((img, tag));
            } else {
                for t in repo_tags {
                    found.push((self.resolve(&t.to_string())?, Some(t)));
                }
            }
            for (img, tag) in found {
                match items.iter_mut().find(|i| i.image.id == img.id) {
                    Some(item) => item.names.extend(tag.filter(|t| !item.names.contains(t))),
                    None => items.push(SaveItem { image: img, names: tag.into_iter().collect() }),
                }
            }
        }
        Ok(items)
    }

    /// The layers of an image with the size of each rebuilt tar; an error names a layer
    /// that cannot be rebuilt (stored before berth recorded layer layouts).
    pub(crate) fn layer_tars(&self, img: &ImageRecord) -> Result<Vec<LayerTar>> {
        let mut out = Vec::new();
        for (i, chain) in img.layers.iter().enumerate() {
            let rec =
                self.layers.get(chain.hex())?.with_context(|| format!("layer {} of image {} has no record", i + 1, img.id.short()))?;
            let split = self.split_path(chain);
            ensure!(
                split.exists(),
                "layer {} of image {} cannot be exported: its tar layout was not recorded (the image was stored by an older berth; pull or load it again)",
                rec.diff_id.short(),
                img.id.short()
            );
            let size = Rebuild::tar_size(&split).with_context(|| format!("reading the layout of layer {}", rec.diff_id.short()))?;
            out.push(LayerTar { chain: chain.clone(), diff_id: rec.diff_id, size });
        }
        Ok(out)
    }

    /// Writes layer `l`'s exact tar to `out`, checking it against its `diff_id` as it goes.
    pub(crate) fn write_layer_tar(&self, l: &LayerTar, out: &mut dyn Write) -> Result<()> {
        let rebuild = Rebuild::open(&self.split_path(&l.chain), &self.driver.layer_content(&l.chain))
            .with_context(|| format!("opening layer {}", l.diff_id.short()))?;
        let mut r = HashingReader::new(rebuild);
        std::io::copy(&mut r, out).with_context(|| format!("rebuilding layer {}", l.diff_id.short()))?;
        let (got, n) = r.finish()?;
        ensure!(
            got == l.diff_id && n == l.size,
            "layer {} is damaged on disk: it rebuilds to {got} ({n} bytes, expected {})",
            l.diff_id.short(),
            l.size
        );
        Ok(())
    }

    /// Writes the archive of `items` to `out`.
    pub fn save(&self, items: &[SaveItem], format: SaveFormat, out: impl Write) -> Result<()> {
        let mut tar = tar::Builder::new(out);
        let mut written: BTreeSet<Digest> = BTreeSet::new();
        let mut index_entries = Vec::new();
        let mut docker_manifest = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for item in items {
            let img = &item.image;
            let config = self.config_bytes(&img.id)?;
            let layers = self.layer_tars(img)?;
            let manifest = serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": img.id, "size": config.len()},
                "layers": layers.iter().map(|l| json!({"mediaType": OCI_LAYER_TAR, "digest": l.diff_id, "size": l.size})).collect::<Vec<_>>(),
            }))?;
            let manifest_digest = Digest::of(&manifest);

            for l in &layers {
                if written.insert(l.diff_id.clone()) {
                    // By hand rather than `append_data`: that pads whatever the reader gave,
                    // and a short or wrong rebuild must fail instead.
                    let mut h = header(l.size);
                    h.set_path(blob_path(&l.diff_id))?;
                    h.set_cksum();
                    let w = tar.get_mut();
                    w.write_all(h.as_bytes())?;
                    self.write_layer_tar(l, w)?;
                    w.write_all(&[0u8; 512][..((512 - l.size % 512) % 512) as usize])?;
                }
            }
            for (digest, data) in [(&img.id, &config), (&manifest_digest, &manifest)] {
                if written.insert(digest.clone()) {
                    tar.append_data(&mut header(data.len() as u64), blob_path(digest), &data[..])?;
                }
            }
            let descriptor = |annotations: Value| {
                let mut d = json!({"mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": manifest.len()});
                if !annotations.is_null() {
                    d["annotations"] = annotations;
                }
                d
            };
            if item.names.is_empty() {
                index_entries.push(descriptor(Value::Null));
            }
            for n in &item.names {
                index_entries.push(descriptor(json!({
                    "io.containerd.image.name": n.to_string(),
                    "org.opencontainers.image.ref.name": n.tag().unwrap_or("latest"),
                })));
                if let (Some(tag), Some(top)) = (n.tag(), layers.last()) {
                    repositories.entry(n.familiar_repository()).or_default().insert(tag.to_string(), top.diff_id.hex().to_string());
                }
            }
            docker_manifest.push(json!({
                "Config": blob_path(&img.id),
                "RepoTags": item.names.iter().map(Reference::familiar).collect::<Vec<_>>(),
                "Layers": layers.iter().map(|l| blob_path(&l.diff_id)).collect::<Vec<_>>(),
            }));
        }
        let index = serde_json::to_vec(
            &json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": index_entries}),
        )?;
        let mut files: Vec<(&str, Vec<u8>)> = vec![("index.json", index), ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec())];
        if format == SaveFormat::Docker {
            files.push(("manifest.json", serde_json::to_vec(&docker_manifest)?));
            if !repositories.is_empty() {
                files.push(("repositories", serde_json::to_vec(&repositories)?));
            }
        }
        for (name, data) in files {
            tar.append_data(&mut header(data.len() as u64), name, &data[..])?;
        }
        tar.into_inner()?.flush()?;
        Ok(())
    }
}

fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

fn header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}
