//! `docker cp`: the archive endpoints. Paths resolve as the container sees them (symlinks
//! stay inside its root; volumes and binds are where it mounts them). A running container's
//! files are reached through its own root (`/proc/<pid>/root`); a stopped one's root
//! filesystem is mounted for the operation, its volumes found from its mount list.

use super::model::Container;
use super::{ContainerError, Containers, Entry};
use crate::util::scope;
use crate::volumes::model::Source;
use anyhow::{Context, Result};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `X-Docker-Container-Path-Stat`: what Docker clients learn about a path before a copy.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// Go's `os.FileMode` bits: Docker clients test them for directories and links.
    pub mode: u32,
    pub mtime: String,
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

pub struct PutOptions {
    /// Refuse to replace a directory with a file or a file with a directory (the CLI's default).
    pub no_overwrite_dir_non_dir: bool,
    /// Own every copied file by the container's user (`docker cp -a`).
    pub copy_uid_gid: bool,
}

/// The container's file system for one operation.
struct Scope {
    root: PathBuf,
    /// Mount destinations (relative to the root) and their host directories, longest first.
    mounts: Vec<(PathBuf, PathBuf)>,
}

impl Scope {
    fn host(&self, rel: &Path) -> PathBuf {
        for (dest, src) in &self.mounts {
            if let Ok(rest) = rel.strip_prefix(dest) {
                return src.join(rest);
            }
        }
        self.root.join(rel)
    }

    /// The host path of container path `path`, and the path as the container resolves it.
    fn resolve(&self, path: &str, follow_last: bool) -> Result<(PathBuf, PathBuf)> {
        let rel = scope::resolve(Path::new(path), follow_last, &|p| self.host(p))?;
        Ok((self.host(&rel), rel))
    }
}

/// Go's `os.FileMode` of a file.
fn go_mode(m: &std::fs::Metadata) -> u32 {
    let ft = m.file_type();
    let mode = m.mode();
    let mut out = mode & 0o777;
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        out |= 1 << 31;
    }
    if ft.is_symlink() {
        out |= 1 << 27;
    }
    if ft.is_block_device() {
        out |= 1 << 26;
    }
    if ft.is_char_device() {
        out |= (1 << 26) | (1 << 21);
    }
    if ft.is_fifo() {
        out |= 1 << 25;
    }
    if ft.is_socket() {
        out |= 1 << 24;
    }
    if mode & 0o4000 != 0 {
        out |= 1 << 23;
    }
    if mode & 0o2000 != 0 {
        out |= 1 << 22;
    }
    if mode & 0o1000 != 0 {
        out |= 1 << 20;
    }
    out
}

/// The name an archive of `path` gives its top entry: its last component, or `.` for the
/// contents of a directory (`dir/.`) and for `/`.
fn archive_name(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.ends_with("/.") || trimmed == "." || trimmed.is_empty() {
        return ".".into();
    }
    Path::new(trimmed).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| ".".into())
}

fn not_found(path: &str, c: &Container) -> anyhow::Error {
    ContainerError::NotFoundPath(format!("Could not find the file {path} in container {}", c.name)).into()
}

impl Containers {
    /// Opens the container's file system; `None` in the second place when nothing was mounted
    /// for it. Called with the `op` lock held.
    async fn open_scope(self: &Arc<Self>, entry: &Entry) -> Result<(Scope, bool)> {
        let c = entry.get();
        if let Some(p) = c.state.process() {
            return Ok((Scope { root: PathBuf::from(format!("/proc/{}/root", p.pid)), mounts: Vec::new() }, false));
        }
        if !self.driver.container_exists(&c.id) {
            return Err(ContainerError::Conflict(format!("container {} has no root filesystem (it is dead)", c.id.short())).into());
        }
        entry.settle_unmount().await;
        let this = self.clone();
        let (id, layers) = (c.id.clone(), c.layers.clone());
        let root = tokio::task::spawn_blocking(move || this.driver.mount(&id, &layers)).await??;
        let mut mounts: Vec<(PathBuf, PathBuf)> = self
            .volumes
            .mounts_of(&c.id)
            .into_iter()
            .filter_map(|m| {
                let src = match m.source {
                    Source::Volume(name) => self.volumes.data_dir(&name),
                    Source::Bind(p) => p,
                    Source::Tmpfs(_) => return None,
                };
                Some((PathBuf::from(m.destination.trim_start_matches('/')), src))
            })
            .collect();
        mounts.sort_by_key(|(d, _)| std::cmp::Reverse(d.components().count()));
        Ok((Scope { root, mounts }, true))
    }

    async fn close_scope(self: &Arc<Self>, c: &Container, mounted: bool) {
        if mounted {
            let this = self.clone();
            let id = c.id.clone();
            match tokio::task::spawn_blocking(move || this.driver.unmount(&id)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(container = %c.id.short(), "unmounting after a copy: {e:#}"),
                Err(e) => tracing::warn!(container = %c.id.short(), "unmounting after a copy: {e}"),
            }
        }
    }

    /// Runs `f` on the container's file system, off the reactor, with no start, stop or
    /// removal in between.
    async fn with_scope<T: Send + 'static>(
        self: &Arc<Self>,
        name: &str,
        f: impl FnOnce(&Container, &Scope) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let entry = self.lookup(name)?;
        let _op = entry.op.lock().await;
        let c = entry.get();
        let (scope, mounted) = self.open_scope(&entry).await?;
        let c2 = c.clone();
        let result = tokio::task::spawn_blocking(move || f(&c2, &scope)).await;
        self.close_scope(&c, mounted).await;
        result?
    }

    /// Runs `f` on the root filesystem of a container that mounts nothing into it (the
    /// builder's COPY containers), off the reactor.
    pub(crate) async fn with_root_fs<T: Send + 'static>(
        self: &Arc<Self>,
        name: &str,
        f: impl FnOnce(&Container, &Path) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.with_scope(name, move |c, s| {
            anyhow::ensure!(s.mounts.is_empty(), "container {} has volumes mounted in its root filesystem", c.id.short());
            f(c, &s.root)
        })
        .await
    }

    /// `HEAD /containers/{id}/archive`.
    pub async fn stat_path(self: &Arc<Self>, name: &str, path: &str) -> Result<PathStat> {
        let path = path.to_string();
        self.with_scope(name, move |c, s| stat(c, s, &path)).await
    }

    /// `GET /containers/{id}/archive`: the path's stat goes to `stat` as soon as it is known
    /// (the answer's header), then its tar is written to `out`, all under one mount of the
    /// container's file system. An error before the stat drops `stat` (the request fails as a
    /// whole); one while writing goes to `fail` with the writer, to end the stream as failed
    /// rather than as a short tar.
    pub async fn archive_get<W, F>(
        self: &Arc<Self>,
        name: &str,
        path: &str,
        stat_to: tokio::sync::oneshot::Sender<PathStat>,
        mut out: W,
        fail: F,
    ) -> Result<()>
    where
        W: Write + Send + 'static,
        F: FnOnce(W, &anyhow::Error) + Send + 'static,
    {
        let path = path.to_string();
        self.with_scope(name, move |c, s| {
            let _ = stat_to.send(stat(c, s, &path)?);
            write_tar(s, &path, &mut out).inspect_err(|e| fail(out, e))
        })
        .await
    }

    /// `PUT /containers/{id}/archive`: the tar (plain or gzip) in `upload` extracted into the
    /// directory `path`. The whole archive is checked before anything is written.
    pub async fn archive_put(self: &Arc<Self>, name: &str, path: &str, upload: PathBuf, opts: PutOptions) -> Result<()> {
        let path = path.to_string();
        self.with_scope(name, move |c, s| {
            let (dir, _) = s.resolve(&path, true)?;
            match std::fs::metadata(&dir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(ContainerError::Invalid(format!("extraction point is not a directory: {path}")).into()),
                Err(_) => return Err(not_found(&path, c)),
            }
            let bad = |e: berth_images::unpack::UnpackError| -> anyhow::Error { ContainerError::Invalid(format!("{e}")).into() };
            berth_images::unpack::check_archive(berth_images::archive::open_tar_file(&upload)?, &dir, opts.no_overwrite_dir_non_dir)
                .map_err(bad)?;
            let owner = if opts.copy_uid_gid {
                let u = super::user::resolve(&s.root, &c.config.user)?;
                Some((u.uid, u.gid))
            } else {
                None
            };
            let options = berth_images::unpack::ApplyOptions { whiteouts: berth_images::unpack::Whiteouts::Keep, owner };
            berth_images::unpack::apply_archive(berth_images::archive::open_tar_file(&upload)?, &dir, options).map_err(bad)?;
            Ok(())
        })
        .await
    }
}

/// The tar of `path` (whose stat was taken: it exists).
fn write_tar(s: &Scope, path: &str, out: &mut dyn Write) -> Result<()> {
    let (host, _) = s.resolve(path, false)?;
    let m = std::fs::symlink_metadata(&host).with_context(|| format!("archiving {path}"))?;
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let name = archive_name(path);
    if m.is_dir() {
        b.append_dir_all(&name, &host).with_context(|| format!("archiving {path}"))?;
    } else {
        b.append_path_with_name(&host, &name).with_context(|| format!("archiving {path}"))?;
    }
    b.into_inner()?.flush()?;
    Ok(())
}

fn stat(c: &Container, s: &Scope, path: &str) -> Result<PathStat> {
    let (host, _) = s.resolve(path, false)?;
    let m = std::fs::symlink_metadata(&host).map_err(|_| not_found(path, c))?;
    let link_target = if m.file_type().is_symlink() {
        let (_, target) = s.resolve(path, true)?;
        format!("/{}", target.display())
    } else {
        String::new()
    };
    let mtime = ::time::OffsetDateTime::from_unix_timestamp(m.mtime())
        .ok()
        .and_then(|t| t.format(&::time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default();
    Ok(PathStat { name: archive_name(path), size: m.size() as i64, mode: go_mode(&m), mtime, link_target })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn names_archives_as_docker_does() {
        assert_eq!(archive_name("/vol1/data.txt"), "data.txt");
        assert_eq!(archive_name("/etc/"), "etc");
        assert_eq!(archive_name("/etc/."), ".");
        assert_eq!(archive_name("/"), ".");
    }

    #[test]
    fn file_modes_are_gos() {
        let m = std::fs::metadata("/").unwrap();
        assert_eq!(go_mode(&m) & (1 << 31), 1 << 31);
        let t = std::env::temp_dir().join(format!("berth-mode-{}", std::process::id()));
        std::fs::write(&t, b"x").unwrap();
        std::fs::set_permissions(&t, std::fs::Permissions::from_mode(0o4755)).unwrap();
        assert_eq!(go_mode(&std::fs::metadata(&t).unwrap()), 0o755 | (1 << 23));
        std::fs::remove_file(&t).unwrap();
    }

    #[test]
    fn volumes_resolve_to_their_sources() {
        let s = Scope { root: "/r".into(), mounts: vec![("vol1/sub".into(), "/v2".into()), ("vol1".into(), "/v1".into())] };
        assert_eq!(s.host(Path::new("vol1/a")), PathBuf::from("/v1/a"));
        assert_eq!(s.host(Path::new("vol1/sub/b")), PathBuf::from("/v2/b"));
        assert_eq!(s.host(Path::new("vol10")), PathBuf::from("/r/vol10"));
    }
}
