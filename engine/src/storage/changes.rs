//! What a container changed, and its root filesystem as one tree, read from the driver's
//! directories without mounting anything (so `diff`, `export` and `commit` work on a stopped
//! container and never race a start over a mount).
//!
//! Overlay semantics are applied by hand: a 0/0 character device is a whiteout, a directory
//! with `trusted.overlay.opaque=y` hides everything below it in lower layers.

use anyhow::{Context, Result};
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Where a container's files are.
pub enum ContainerView {
    /// overlay2: the writable layer holds only what changed; `lower` is everything under it
    /// (init layer, then the image's layers), top first.
    Layered { upper: PathBuf, lower: Vec<PathBuf> },
    /// vfs: a full copy, and the image's top layer (also a full copy) it was made from.
    Copy { root: PathBuf, base: Option<PathBuf> },
}

/// Docker's change kinds (`Kind` in `GET /containers/{id}/changes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Modified = 0,
    Added = 1,
    Deleted = 2,
}

#[derive(Clone, Debug)]
pub struct Change {
    /// Relative to the root.
    pub path: PathBuf,
    pub kind: Kind,
    /// An overlay directory that hides what lower layers hold below it.
    pub opaque: bool,
}

/// Files the daemon writes into every container (the init layer): never the user's change.
const INIT_FILES: &[&str] = &["etc/hostname", "etc/hosts", "etc/resolv.conf"];

fn is_whiteout(m: &fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(path: &Path) -> bool {
    let mut buf = [0u8; 4];
    let Ok(p) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return false };
    // SAFETY: both names are NUL-terminated strings that live across the call, and `buf` is
    // writable for the length given.
    let n = unsafe { libc::lgetxattr(p.as_ptr(), c"trusted.overlay.opaque".as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    n == 1 && buf[0] == b'y'
}

fn sorted_children(dir: &Path) -> Result<Vec<OsString>> {
    let mut names: Vec<OsString> = fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    names.sort();
    Ok(names)
}

/// Layer directories stacked as overlayfs stacks them, top first.
pub struct Union<'a> {
    dirs: &'a [PathBuf],
}

impl<'a> Union<'a> {
    pub fn new(dirs: &'a [PathBuf]) -> Self {
        Union { dirs }
    }

    /// Does layer `dir` hide `rel` (missing in it) from the layers below: an ancestor that
    /// is a whiteout, not a directory, or an opaque directory?
    fn hides(dir: &Path, rel: &Path) -> bool {
        let mut cur = dir.to_path_buf();
        let parents: Vec<_> = rel.parent().map(|p| p.components().collect()).unwrap_or_default();
        for c in parents {
            cur.push(c);
            match fs::symlink_metadata(&cur) {
                Ok(m) if !m.is_dir() => return true,
                Ok(_) if is_opaque(&cur) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    }

    /// The visible file at `rel`, if any.
    pub fn lookup(&self, rel: &Path) -> Option<PathBuf> {
        for d in self.dirs {
            let p = d.join(rel);
            match fs::symlink_metadata(&p) {
                Ok(m) if is_whiteout(&m) => return None,
                Ok(_) => return Some(p),
                Err(_) if Self::hides(d, rel) => return None,
                Err(_) => {}
            }
        }
        None
    }

    /// The visible entries of directory `rel`, by name.
    pub fn children(&self, rel: &Path) -> Result<BTreeMap<OsString, PathBuf>> {
        let mut seen: BTreeMap<OsString, Option<PathBuf>> = BTreeMap::new();
        for d in self.dirs {
            let p = d.join(rel);
            match fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => {
                    for name in sorted_children(&p)? {
                        seen.entry(name).or_insert_with_key(|name| {
                            let child = p.join(name);
                            let visible = fs::symlink_metadata(&child).is_ok_and(|m| !is_whiteout(&m));
                            visible.then_some(child)
                        });
                    }
                    if is_opaque(&p) {
                        break;
                    }
                }
                Ok(_) => break,
                Err(_) if Self::hides(d, rel) => break,
                Err(_) => {}
            }
        }
        Ok(seen.into_iter().filter_map(|(n, p)| p.map(|p| (n, p))).collect())
    }
}

impl ContainerView {
    /// What changed, parents before children, sorted by path.
    pub fn changes(&self) -> Result<Vec<Change>> {
        let mut out = Vec::new();
        match self {
            ContainerView::Layered { upper, lower } => layered_changes(upper, &Union::new(lower), Path::new(""), &mut out)?,
            ContainerView::Copy { root, base } => copy_changes(root, base.as_deref(), Path::new(""), &mut out)?,
        }
        out.retain(|c| !INIT_FILES.iter().any(|f| c.path == Path::new(f)) || c.kind == Kind::Deleted);
        Ok(out)
    }

    /// Where the content of a change is read from.
    fn source(&self, rel: &Path) -> PathBuf {
        match self {
            ContainerView::Layered { upper, .. } => upper.join(rel),
            ContainerView::Copy { root, .. } => root.join(rel),
        }
    }

    /// The changes as a layer tar: added and modified entries as they are, deletions as
    /// whiteout files, hiding directories with an opaque marker.
    pub fn write_changes_tar(&self, changes: &[Change], out: impl Write) -> Result<()> {
        let mut tar = TarWriter::new(out);
        for c in changes {
            match c.kind {
                Kind::Deleted => {
                    let name = c.path.file_name().context("deleting the root")?;
                    let mut wh = OsString::from(".wh.");
                    wh.push(name);
                    tar.empty_file(&c.path.with_file_name(wh))?;
                }
                Kind::Added | Kind::Modified => {
                    tar.entry(&self.source(&c.path), &c.path)?;
                    if c.opaque {
                        tar.empty_file(&c.path.join(".wh..wh..opq"))?;
                    }
                }
            }
        }
        tar.finish()
    }

    /// The whole root filesystem as one tar (`docker export`).
    pub fn write_export_tar(&self, out: impl Write) -> Result<()> {
        let dirs: Vec<PathBuf> = match self {
            ContainerView::Layered { upper, lower } => std::iter::once(upper.clone()).chain(lower.iter().cloned()).collect(),
            ContainerView::Copy { root, .. } => vec![root.clone()],
        };
        let union = Union::new(&dirs);
        let mut tar = TarWriter::new(out);
        export_dir(&union, Path::new(""), &mut tar)?;
        tar.finish()
    }
}

fn export_dir(union: &Union<'_>, rel: &Path, tar: &mut TarWriter<impl Write>) -> Result<()> {
    for (name, path) in union.children(rel)? {
        let child = rel.join(&name);
        tar.entry(&path, &child)?;
        if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            export_dir(union, &child, tar)?;
        }
    }
    Ok(())
}

fn layered_changes(upper: &Path, lower: &Union<'_>, rel: &Path, out: &mut Vec<Change>) -> Result<()> {
    for name in sorted_children(&upper.join(rel))? {
        let child = rel.join(&name);
        let path = upper.join(&child);
        let m = fs::symlink_metadata(&path)?;
        if is_whiteout(&m) {
            out.push(Change { path: child, kind: Kind::Deleted, opaque: false });
            continue;
        }
        let kind = if lower.lookup(&child).is_some() { Kind::Modified } else { Kind::Added };
        let opaque = m.is_dir() && is_opaque(&path);
        out.push(Change { path: child.clone(), kind, opaque });
        if m.is_dir() {
            layered_changes(upper, lower, &child, out)?;
        }
    }
    Ok(())
}

/// Same entry, as far as a diff is concerned?
fn same(a: &fs::Metadata, b: &fs::Metadata, pa: &Path, pb: &Path) -> bool {
    a.file_type() == b.file_type()
        && a.mode() == b.mode()
        && a.uid() == b.uid()
        && a.gid() == b.gid()
        && a.rdev() == b.rdev()
        && (a.is_dir() || (a.size() == b.size() && a.mtime() == b.mtime() && a.mtime_nsec() == b.mtime_nsec()))
        && (!a.file_type().is_symlink() || fs::read_link(pa).ok() == fs::read_link(pb).ok())
}

fn copy_changes(root: &Path, base: Option<&Path>, rel: &Path, out: &mut Vec<Change>) -> Result<()> {
    let mine = sorted_children(&root.join(rel))?;
    let theirs = match base.map(|b| b.join(rel)) {
        Some(b) if b.is_dir() => sorted_children(&b)?,
        _ => vec![],
    };
    let mut entries: Vec<(OsString, bool)> = mine.iter().map(|n| (n.clone(), true)).collect();
    entries.extend(theirs.iter().filter(|n| !mine.contains(n)).map(|n| (n.clone(), false)));
    entries.sort();
    for (name, present) in entries {
        let child = rel.join(&name);
        if !present {
            out.push(Change { path: child, kind: Kind::Deleted, opaque: false });
            continue;
        }
        let path = root.join(&child);
        let m = fs::symlink_metadata(&path)?;
        let old = base.map(|b| b.join(&child)).filter(|p| fs::symlink_metadata(p).is_ok());
        match &old {
            None => out.push(Change { path: child.clone(), kind: Kind::Added, opaque: false }),
            Some(o) => {
                let om = fs::symlink_metadata(o)?;
                if !same(&m, &om, &path, o) {
                    out.push(Change { path: child.clone(), kind: Kind::Modified, opaque: false });
                }
            }
        }
        if m.is_dir() {
            copy_changes(root, old.as_ref().and(base), &child, out)?;
        }
    }
    Ok(())
}

/// Writes tar entries from files on disk: owners, modes, times, hard links kept; sockets
/// skipped (they cannot be archived).
struct TarWriter<W: Write> {
    tar: tar::Builder<W>,
    links: HashMap<(u64, u64), PathBuf>,
}

impl<W: Write> TarWriter<W> {
    fn new(out: W) -> Self {
        let mut tar = tar::Builder::new(out);
        tar.mode(tar::HeaderMode::Complete);
        tar.follow_symlinks(false);
        TarWriter { tar, links: HashMap::new() }
    }

    fn empty_file(&mut self, rel: &Path) -> Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(0);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        self.tar.append_data(&mut h, rel, std::io::empty()).with_context(|| format!("archiving {}", rel.display()))
    }

    fn entry(&mut self, path: &Path, rel: &Path) -> Result<()> {
        let m = fs::symlink_metadata(path).with_context(|| format!("reading {}", path.display()))?;
        let ft = m.file_type();
        if ft.is_socket() {
            return Ok(());
        }
        let mut h = tar::Header::new_gnu();
        h.set_metadata_in_mode(&m, tar::HeaderMode::Complete);
        let ctx = || format!("archiving {}", rel.display());
        if ft.is_file() && m.nlink() > 1 {
            if let Some(first) = self.links.get(&(m.dev(), m.ino())) {
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                let first = first.clone();
                return self.tar.append_link(&mut h, rel, first).with_context(ctx);
            }
            self.links.insert((m.dev(), m.ino()), rel.to_path_buf());
        }
        if ft.is_file() {
            let f = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            self.tar.append_data(&mut h, rel, f.take(m.size())).with_context(ctx)
        } else if ft.is_symlink() {
            let target = fs::read_link(path)?;
            self.tar.append_link(&mut h, rel, target).with_context(ctx)
        } else {
            h.set_size(0);
            if ft.is_char_device() || ft.is_block_device() {
                h.set_device_major(libc::major(m.rdev()))?;
                h.set_device_minor(libc::minor(m.rdev()))?;
            }
            self.tar.append_data(&mut h, rel, std::io::empty()).with_context(ctx)
        }
    }

    fn finish(self) -> Result<()> {
        self.tar.into_inner()?.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("berth-changes-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn copy_changes_find_added_modified_and_deleted() {
        let d = scratch("copy");
        let (base, root) = (d.join("base"), d.join("root"));
        for r in [&base, &root] {
            fs::create_dir_all(r.join("etc/sub")).unwrap();
            fs::write(r.join("etc/keep"), b"same").unwrap();
            fs::write(r.join("etc/sub/gone"), b"x").unwrap();
        }
        // Same times for what did not change.
        let t = nix::sys::time::TimeSpec::new(1_700_000_000, 0);
        for r in [&base, &root] {
            nix::sys::stat::utimensat(None, &r.join("etc/keep"), &t, &t, nix::sys::stat::UtimensatFlags::NoFollowSymlink).unwrap();
        }
        fs::remove_file(root.join("etc/sub/gone")).unwrap();
        fs::write(root.join("etc/new"), b"n").unwrap();
        let view = ContainerView::Copy { root: root.clone(), base: Some(base.clone()) };
        let got: Vec<(String, Kind)> = view.changes().unwrap().into_iter().map(|c| (c.path.display().to_string(), c.kind)).collect();
        assert!(got.contains(&("etc/new".into(), Kind::Added)), "{got:?}");
        assert!(got.contains(&("etc/sub/gone".into(), Kind::Deleted)), "{got:?}");
        assert!(!got.iter().any(|(p, _)| p == "etc/keep"), "{got:?}");

        let mut tar = Vec::new();
        view.write_changes_tar(&view.changes().unwrap(), &mut tar).unwrap();
        let names: Vec<String> =
            tar::Archive::new(&tar[..]).entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect();
        assert!(names.contains(&"etc/sub/.wh.gone".to_string()) && names.contains(&"etc/new".to_string()), "{names:?}");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn union_honours_whiteouts_and_opaque_dirs() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root for mknod and trusted xattrs");
            return;
        }
        let d = scratch("union");
        let (top, bottom) = (d.join("top"), d.join("bottom"));
        fs::create_dir_all(bottom.join("a/deep")).unwrap();
        fs::write(bottom.join("a/deep/f"), b"1").unwrap();
        fs::write(bottom.join("gone"), b"1").unwrap();
        fs::create_dir_all(bottom.join("b")).unwrap();
        fs::write(bottom.join("b/hidden"), b"1").unwrap();
        fs::create_dir_all(top.join("b")).unwrap();
        fs::write(top.join("b/fresh"), b"2").unwrap();
        nix::sys::stat::mknod(&top.join("gone"), nix::sys::stat::SFlag::S_IFCHR, nix::sys::stat::Mode::empty(), 0).unwrap();
        let p = std::ffi::CString::new(top.join("b").as_os_str().as_bytes()).unwrap();
        // SAFETY: valid C strings and a one-byte value that outlive the call.
        assert_eq!(unsafe { libc::lsetxattr(p.as_ptr(), c"trusted.overlay.opaque".as_ptr(), b"y".as_ptr().cast(), 1, 0) }, 0);
        let dirs = vec![top.clone(), bottom.clone()];
        let u = Union::new(&dirs);
        assert!(u.lookup(Path::new("a/deep/f")).is_some());
        assert!(u.lookup(Path::new("gone")).is_none());
        assert!(u.lookup(Path::new("b/hidden")).is_none());
        let names: Vec<_> = u.children(Path::new("b")).unwrap().into_keys().collect();
        assert_eq!(names, vec![OsString::from("fresh")]);
        let root: Vec<_> = u.children(Path::new("")).unwrap().into_keys().collect();
        assert_eq!(root, vec![OsString::from("a"), OsString::from("b")]);

        let view = ContainerView::Layered { upper: top.clone(), lower: vec![bottom.clone()] };
        let ch = view.changes().unwrap();
        assert!(ch.iter().any(|c| c.path == Path::new("gone") && c.kind == Kind::Deleted));
        assert!(ch.iter().any(|c| c.path == Path::new("b") && c.kind == Kind::Modified && c.opaque));
        assert!(ch.iter().any(|c| c.path == Path::new("b/fresh") && c.kind == Kind::Added));
        fs::remove_dir_all(&d).unwrap();
    }
}
