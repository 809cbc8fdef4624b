//! Durable file writes: the single helper every file that must survive a power cut goes
//! through. Write a temp file in the same directory, fsync it, rename it over the target, fsync
//! the directory. A failure at any step is returned, never ignored: an acknowledged write that
//! was not synced would be a lie to the client.

use anyhow::{Context, Result};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Atomically replaces `path` with `data` (mode 0600 unless the caller chmods afterwards).
pub fn write_file(path: &Path, data: &[u8]) -> Result<()> {
    write_file_mode(path, data, 0o600)
}

/// As [`write_file`] with an explicit mode.
pub fn write_file_mode(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().with_context(|| format!("{} has no parent directory", path.display()))?;
    let name = path.file_name().with_context(|| format!("{} has no file name", path.display()))?;
    let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let result = (|| -> Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(data).with_context(|| format!("writing {}", tmp.display()))?;
        f.sync_all().with_context(|| format!("fsync of {}", tmp.display()))?;
        fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Serialises `value` as JSON and writes it durably.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let data = serde_json::to_vec(value).with_context(|| format!("encoding {}", path.display()))?;
    write_file(path, &data)
}

/// Fsyncs a directory, making renames and unlinks inside it durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("fsync of directory {}", dir.display()))
}

/// Renames `from` to `to` (same filesystem) and makes the rename durable.
pub fn rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).with_context(|| format!("renaming {} to {}", from.display(), to.display()))?;
    if let Some(dir) = to.parent() {
        sync_dir(dir)?;
    }
    if let Some(dir) = from.parent().filter(|d| Some(*d) != to.parent()) {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Removes `path` durably; a missing file is not an error.
pub fn remove_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
    }
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temp_file() {
        let dir = std::env::temp_dir().join(format!("berth-durable-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("rec.json");
        write_file(&p, b"one").unwrap();
        write_file(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "temp files left: {names:?}");
        remove_file(&p).unwrap();
        remove_file(&p).unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }
}
