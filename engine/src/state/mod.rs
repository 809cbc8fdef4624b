//! The record store every subsystem persists through.
//!
//! On-disk layout, under `<data-root>/state/`:
//! ```text
//! <collection>/<key>.json     one record, replaced atomically (temp, fsync, rename, dir fsync)
//! ```
//! Keys are validated ids/digests, never user text, so they are safe file names.
//!
//! This is the small interface the state-journal work replaces the inside of (one database
//! with an intent journal); callers see only `put`/`get`/`delete`/`list` on typed
//! collections, and a `put` returns only once the record is durable.

use anyhow::{bail, Context, Result};
use berth_images::durable;
use serde::{de::DeserializeOwned, Serialize};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

/// The store's root.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

/// One typed collection of records.
pub struct Collection<T> {
    dir: PathBuf,
    _t: PhantomData<fn() -> T>,
}

fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > 200 || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)) || key.starts_with('.') {
        bail!("invalid store key {key:?}");
    }
    Ok(())
}

impl Store {
    pub fn open(data_root: &Path) -> Result<Self> {
        let root = data_root.join("state");
        std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        Ok(Store { root })
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    pub fn collection<T: Serialize + DeserializeOwned>(&self, name: &str) -> Result<Collection<T>> {
        check_key(name)?;
        let dir = self.root.join(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Collection { dir, _t: PhantomData })
    }
}

impl<T: Serialize + DeserializeOwned> Collection<T> {
    fn file(&self, key: &str) -> Result<PathBuf> {
        check_key(key)?;
        Ok(self.dir.join(format!("{key}.json")))
    }

    /// Writes the record durably.
    pub fn put(&self, key: &str, value: &T) -> Result<()> {
        durable::write_json(&self.file(key)?, value)
    }

    pub fn get(&self, key: &str) -> Result<Option<T>> {
        let path = self.file(key)?;
        match std::fs::read(&path) {
            Ok(data) => Ok(Some(serde_json::from_slice(&data).with_context(|| format!("decoding record {}", path.display()))?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading record {}", path.display())),
        }
    }

    pub fn delete(&self, key: &str) -> Result<()> {
        durable::remove_file(&self.file(key)?)
    }

    /// Every record. One that cannot be decoded is reported and skipped rather than keeping
    /// the daemon from starting; it stays on disk for `system check` to look at.
    pub fn list(&self) -> Result<Vec<(String, T)>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).with_context(|| format!("listing {}", self.dir.display()))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(key) = name.strip_suffix(".json").filter(|k| !k.starts_with('.')) else { continue };
            match self.get(key) {
                Ok(Some(v)) => out.push((key.to_string(), v)),
                Ok(None) => {}
                Err(e) => tracing::error!("skipping unreadable record: {e:#}"),
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_list_delete() {
        let dir = std::env::temp_dir().join(format!("berth-store-{}", std::process::id()));
        let store = Store::open(&dir).unwrap();
        let c: Collection<Vec<u32>> = store.collection("things").unwrap();
        c.put("a", &vec![1, 2]).unwrap();
        c.put("b", &vec![3]).unwrap();
        assert_eq!(c.get("a").unwrap(), Some(vec![1, 2]));
        assert_eq!(c.list().unwrap().len(), 2);
        c.delete("a").unwrap();
        assert_eq!(c.get("a").unwrap(), None);
        assert!(c.put("../x", &vec![]).is_err());
        std::fs::write(dir.join("state/things/bad.json"), b"{").unwrap();
        assert_eq!(c.list().unwrap().len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
