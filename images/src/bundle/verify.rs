//! Checking a bundle front to back before anything is applied: the signature over the
//! manifest first, then every member against the manifest while it streams (never held in
//! memory), then that nothing the manifest names is missing.

use super::manifest::check_member_path as check_member_path_of;
use super::{Manifest, Signature, Trust, TrustedKey, MANIFEST, MAX_MANIFEST, MAX_SIGNATURE, SIGNATURE};
use crate::digest::HashingReader;
use anyhow::{bail, ensure, Context, Result};
use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;

/// A bundle whose signature and every member checked.
#[derive(Debug)]
pub struct Verified {
    pub manifest: Manifest,
    pub key: TrustedKey,
    /// The members present (a delta bundle lacks its `in_base` ones).
    pub present: BTreeSet<String>,
    pub bytes: u64,
}

/// Reads the bundle at `path` once, front to back. `progress` hears each member as it is
/// checked (path, bytes so far).
pub fn verify_file(path: &Path, trust: &Trust, progress: &mut dyn FnMut(&str, u64)) -> Result<Verified> {
    let f = std::fs::File::open(path).with_context(|| format!("opening the bundle {}", path.display()))?;
    verify_stream(std::io::BufReader::new(f), trust, progress)
}

pub fn verify_stream(r: impl Read, trust: &Trust, progress: &mut dyn FnMut(&str, u64)) -> Result<Verified> {
    let mut archive = tar::Archive::new(r);
    let mut entries = archive.entries().context("the bundle is not a tar file")?;
    let mut next = |what: &str| -> Result<tar::Entry<'_, _>> {
        entries
            .next()
            .with_context(|| format!("the bundle ends before its {what} (truncated?)"))?
            .context("the bundle is not a valid tar (truncated?)")
    };
    let manifest_bytes = small(next(MANIFEST)?, MANIFEST, MAX_MANIFEST)?;
    let sig_bytes = small(next(SIGNATURE)?, SIGNATURE, MAX_SIGNATURE)?;
    let sig: Signature = serde_json::from_slice(&sig_bytes).context("bundle.sig is not a valid signature file")?;
    let key = trust.verify(&manifest_bytes, &sig)?.clone();
    let manifest = Manifest::parse(&manifest_bytes)?;
    let mut present = BTreeSet::new();
    let mut bytes = (manifest_bytes.len() + sig_bytes.len()) as u64;
    progress(MANIFEST, bytes);
    for entry in entries {
        let entry = entry.context("the bundle is not a valid tar (truncated?)")?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).trim_start_matches("./").to_string();
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            check_member_path_of(name.trim_end_matches('/'))?;
            continue;
        }
        ensure!(kind.is_file(), "bundle member {name:?} is a {kind:?}, not a regular file: refused");
        check_member_path_of(&name)?;
        let Some(want) = manifest.file(&name) else { bail!("bundle member {name:?} is not listed in the signed manifest") };
        ensure!(!want.in_base, "bundle member {name} is listed as left to the base bundle, yet present");
        ensure!(present.insert(name.clone()), "bundle member {name} appears twice");
        let size = entry.size();
        ensure!(size == want.size, "bundle member {name} is {size} bytes; the manifest says {}", want.size);
        let mut h = HashingReader::new(entry);
        std::io::copy(&mut h, &mut std::io::sink()).with_context(|| format!("reading bundle member {name} (truncated?)"))?;
        let (digest, n) = h.finish()?;
        ensure!(n == want.size, "bundle member {name} is truncated: {n} of {} bytes", want.size);
        ensure!(digest == want.digest, "bundle member {name} has digest {digest}; the manifest says {} (corrupted)", want.digest);
        bytes += n;
        progress(&name, bytes);
    }
    for f in manifest.files.iter().filter(|f| !f.in_base) {
        ensure!(present.contains(&f.path), "the manifest names {} ({} bytes), which the bundle lacks (truncated?)", f.path, f.size);
    }
    Ok(Verified { manifest, key, present, bytes })
}

fn small(mut entry: tar::Entry<'_, impl Read>, want: &str, max: u64) -> Result<Vec<u8>> {
    let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
    ensure!(name == want, "not a berth bundle: its first members must be {MANIFEST} then {SIGNATURE}; found {name:?} where {want} belongs");
    ensure!(entry.header().entry_type().is_file(), "{want} is not a regular file");
    ensure!(entry.size() <= max, "{want} is {} bytes, over the {max}-byte limit", entry.size());
    let mut buf = Vec::with_capacity(entry.size() as usize);
    entry.read_to_end(&mut buf).with_context(|| format!("reading {want} (truncated?)"))?;
    Ok(buf)
}
