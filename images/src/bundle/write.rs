//! Making a bundle on the operator's workstation: the app's images (a `docker save` archive or
//! OCI layout, as the engine's `GET /images/get` writes it) become an OCI layout inside the
//! bundle, every member listed with its digest in the signed manifest.

use super::manifest::{Compatible, FileEntry, ImageEntry, FORMAT};
use super::{App, KeyPair, Manifest, MANIFEST, OCI_LAYOUT, SIGNATURE};
use crate::archive::ArchiveIndex;
use crate::digest::HashingReader;
use crate::{Digest, Reference};
use anyhow::{bail, ensure, Context, Result};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::Path;

pub struct Spec<'a> {
    pub app: App,
    pub version: u64,
    pub compatible: Compatible,
    pub min_berth: String,
    pub created: String,
    /// The archive holding every image the app names.
    pub images: &'a Path,
    /// A delta against this bundle: its blobs are left out.
    pub base: Option<&'a Path>,
}

/// What went into the bundle, for the CLI's report.
pub struct Written {
    pub manifest: Manifest,
    pub bytes: u64,
    pub left_to_base: u64,
}

enum Source {
    Bytes(Vec<u8>),
    Member(String),
}

/// Writes the bundle to `out` (through a temporary file renamed at the end).
pub fn create(spec: Spec<'_>, key: &KeyPair, out: &Path, progress: &mut dyn FnMut(&str)) -> Result<Written> {
    spec.app.validate()?;
    let archive = ArchiveIndex::open(spec.images)?;
    let images = archive.images()?;
    let mut blobs: BTreeMap<Digest, (u64, Source)> = BTreeMap::new();
    let mut index = Vec::new();
    let mut entries = Vec::new();
    for name in spec.app.images() {
        let want: Reference = name.parse().with_context(|| format!("image name {name:?} in the app"))?;
        let Some(img) = images.iter().find(|i| i.tags.contains(&want)) else {
            bail!("image {name} is not in the images archive (is it present on the engine?)")
        };
        let mut layers = Vec::new();
        for l in &img.layers {
            progress(&format!("hashing {} layer {}", name, l.member));
            let (size, r) = archive.raw_member(&l.member)?;
            let mut magic = [0u8; 2];
            let mut h = HashingReader::new(r);
            h.read_exact(&mut magic).ok();
            std::io::copy(&mut h, &mut std::io::sink()).with_context(|| format!("reading {}", l.member))?;
            let (digest, n) = h.finish()?;
            ensure!(n == size, "archive member {} is truncated", l.member);
            let media = if magic == [0x1f, 0x8b] {
                "application/vnd.oci.image.layer.v1.tar+gzip"
            } else {
                "application/vnd.oci.image.layer.v1.tar"
            };
            layers.push(json!({"mediaType": media, "digest": digest, "size": size}));
            blobs.insert(digest, (size, Source::Member(l.member.clone())));
        }
        let config_len = img.config_bytes.len() as u64;
        blobs.insert(img.id.clone(), (config_len, Source::Bytes(img.config_bytes.clone())));
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": img.id, "size": config_len},
            "layers": layers,
        }))?;
        let digest = Digest::of(&manifest);
        index.push(json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": manifest.len(),
            "annotations": {"io.containerd.image.name": want.to_string()},
        }));
        entries.push(ImageEntry { name: want.to_string(), manifest: digest.clone() });
        blobs.insert(digest, (manifest.len() as u64, Source::Bytes(manifest)));
    }
    let index =
        serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": index}))?;

    let base: BTreeSet<Digest> = match spec.base {
        Some(p) => {
            let m = read_manifest(p)?;
            ensure!(m.version < spec.version, "the base bundle has version {}, not below {}", m.version, spec.version);
            m.files.iter().filter(|f| f.path.starts_with("blobs/")).map(|f| f.digest.clone()).collect()
        }
        None => BTreeSet::new(),
    };
    let mut files = vec![
        FileEntry { path: "oci-layout".into(), digest: Digest::of(OCI_LAYOUT), size: OCI_LAYOUT.len() as u64, in_base: false },
        FileEntry { path: "index.json".into(), digest: Digest::of(&index), size: index.len() as u64, in_base: false },
    ];
    let mut left_to_base = 0;
    for (d, (size, _)) in &blobs {
        let in_base = base.contains(d);
        if in_base {
            left_to_base += size;
        }
        files.push(FileEntry { path: blob_path(d), digest: d.clone(), size: *size, in_base });
    }
    let manifest = Manifest {
        format: FORMAT,
        version: spec.version,
        created: spec.created,
        compatible: spec.compatible,
        min_berth: spec.min_berth,
        app: spec.app,
        images: entries,
        files,
        delta_base: spec.base.map(|p| read_manifest(p).map(|m| m.version)).transpose()?,
    };
    let manifest_bytes = serde_json::to_vec_pretty(&manifest)?;
    let sig = serde_json::to_vec_pretty(&key.sign(&manifest_bytes))?;

    let tmp = out.with_extension("partial");
    let file = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
    let put = |tar: &mut tar::Builder<_>, path: &str, size: u64, data: &mut dyn Read| -> Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, path, data).with_context(|| format!("writing {path} into the bundle"))
    };
    put(&mut tar, MANIFEST, manifest_bytes.len() as u64, &mut manifest_bytes.as_slice())?;
    put(&mut tar, SIGNATURE, sig.len() as u64, &mut sig.as_slice())?;
    put(&mut tar, "oci-layout", OCI_LAYOUT.len() as u64, &mut &OCI_LAYOUT[..])?;
    put(&mut tar, "index.json", index.len() as u64, &mut index.as_slice())?;
    for (d, (size, src)) in &blobs {
        if base.contains(d) {
            continue;
        }
        progress(&format!("writing {}", d.short()));
        match src {
            Source::Bytes(b) => put(&mut tar, &blob_path(d), *size, &mut b.as_slice())?,
            Source::Member(m) => {
                let (_, mut r) = archive.raw_member(m)?;
                put(&mut tar, &blob_path(d), *size, &mut r)?
            }
        }
    }
    let mut w = tar.into_inner().context("finishing the bundle")?;
    w.flush()?;
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, out).with_context(|| format!("renaming {} to {}", tmp.display(), out.display()))?;
    let bytes = std::fs::metadata(out)?.len();
    Ok(Written { manifest, bytes, left_to_base })
}

/// Re-signs the bundle at `input` with `key` into `out`: members copied, `bundle.sig` replaced.
pub fn resign(input: &Path, key: &KeyPair, out: &Path) -> Result<()> {
    let f = std::fs::File::open(input).with_context(|| format!("opening {}", input.display()))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(f));
    let tmp = out.with_extension("partial");
    let mut tar =
        tar::Builder::new(std::io::BufWriter::new(std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?));
    let mut manifest: Option<Vec<u8>> = None;
    for (i, entry) in archive.entries()?.enumerate() {
        let mut entry = entry.context("reading the bundle (truncated?)")?;
        let mut header = entry.header().clone();
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        match (i, path.as_str()) {
            (0, MANIFEST) => {
                let mut b = Vec::new();
                entry.read_to_end(&mut b)?;
                tar.append_data(&mut header, MANIFEST, b.as_slice())?;
                manifest = Some(b);
            }
            (1, SIGNATURE) => {
                let m = manifest.as_ref().context("no manifest")?;
                let sig = serde_json::to_vec_pretty(&key.sign(m))?;
                header.set_size(sig.len() as u64);
                tar.append_data(&mut header, SIGNATURE, sig.as_slice())?;
            }
            (0 | 1, other) => bail!("{} is not a berth bundle (found {other:?} where {MANIFEST} / {SIGNATURE} belong)", input.display()),
            _ => tar.append_data(&mut header, &path, &mut entry)?,
        }
    }
    let mut w = tar.into_inner()?;
    w.flush()?;
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, out).with_context(|| format!("renaming {} to {}", tmp.display(), out.display()))?;
    Ok(())
}

/// The manifest of a bundle, unverified (the operator's own base bundle).
pub fn read_manifest(path: &Path) -> Result<Manifest> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(f));
    let mut entries = archive.entries()?;
    let mut first = entries.next().with_context(|| format!("{} is empty", path.display()))??;
    ensure!(&*first.path_bytes() == MANIFEST.as_bytes(), "{} is not a berth bundle", path.display());
    ensure!(first.size() <= super::MAX_MANIFEST, "{}: bundle.json is too large", path.display());
    let mut b = Vec::new();
    first.read_to_end(&mut b)?;
    Manifest::parse(&b).with_context(|| format!("reading the manifest of {}", path.display()))
}

pub fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}
