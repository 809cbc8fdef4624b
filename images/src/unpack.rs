//! Applying a layer tar to a directory.
//!
//! A layer comes from outside (a registry, an archive a user hands us), so every entry is
//! treated as hostile until checked:
//! - names must be relative and free of `..`: `/etc/x` and `a/../../x` are refused, not
//!   "cleaned", because a layer that contains them was made to attack;
//! - no entry may be written through a symlink (`link -> /etc` then `link/passwd`): each parent
//!   component is checked with `lstat` before the write;
//! - hard links must point at a file inside the same directory, by the same rules;
//! - a relative symlink whose target climbs above the root is refused; absolute targets are
//!   fine (`/bin/sh -> /bin/busybox`): they resolve inside the container's root, and nothing here
//!   follows them.
//!
//! Whiteouts (`.wh.name`, `.wh..wh..opq`) become overlayfs' own form (a 0/0 character device,
//! the `trusted.overlay.opaque` xattr) or, for the copying driver, deletions.

use nix::sys::stat::{mknod, Mode, SFlag};
use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use tar::EntryType;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// How whiteouts are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whiteouts {
    /// Layer directories stacked by overlayfs: keep them as overlay markers.
    Overlay,
    /// A directory that already holds the lower layers (vfs): delete what they name.
    Apply,
    /// Not a layer (`docker cp` into a container): `.wh.` names are ordinary files.
    Keep,
}

/// How an archive is applied: [`apply_layer`] is [`apply_archive`] with the defaults.
#[derive(Clone, Copy, Debug)]
pub struct ApplyOptions {
    pub whiteouts: Whiteouts,
    /// Every entry owned by this uid and gid instead of the archive's (`docker cp -a`).
    pub owner: Option<(u32, u32)>,
}

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("layer entry {0:?} has an absolute path")]
    Absolute(String),
    #[error("layer entry {0:?} climbs out of the layer with '..'")]
    DotDot(String),
    #[error("layer entry {entry:?} would be written through the symlink {link:?}")]
    ThroughSymlink { entry: String, link: String },
    #[error("layer entry {entry:?}: hard link target {target:?} is outside the layer")]
    HardlinkOutside { entry: String, target: String },
    #[error("layer entry {entry:?}: symlink target {target:?} climbs above the root")]
    SymlinkEscapes { entry: String, target: String },
    #[error("layer entry {0:?} is a whiteout of an invalid name")]
    BadWhiteout(String),
    #[error("layer entry {0:?} has an unsupported type")]
    Unsupported(String),
    #[error("cannot overwrite directory {0:?} with a non-directory")]
    DirWithNonDir(String),
    #[error("cannot overwrite non-directory {0:?} with a directory")]
    NonDirWithDir(String),
    #[error("reading the layer tar: {0}")]
    Read(#[source] io::Error),
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

fn wr<T>(path: &Path, r: io::Result<T>) -> Result<T, UnpackError> {
    r.map_err(|source| UnpackError::Write { path: path.to_path_buf(), source })
}

fn errno<T>(path: &Path, r: nix::Result<T>) -> Result<T, UnpackError> {
    wr(path, r.map_err(io::Error::from))
}

/// Checks an archive path and returns it as a list of plain components.
fn clean_name(raw: &[u8]) -> Result<PathBuf, UnpackError> {
    let shown = String::from_utf8_lossy(raw).into_owned();
    let p = Path::new(OsStr::from_bytes(raw));
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::RootDir | Component::Prefix(_) => return Err(UnpackError::Absolute(shown)),
            Component::ParentDir => return Err(UnpackError::DotDot(shown)),
            Component::CurDir => {}
            Component::Normal(n) => out.push(n),
        }
    }
    Ok(out)
}

/// Makes sure every ancestor of `rel` below `root` is a real directory (creating missing ones)
/// and none is a symlink.
fn prepare_parents(root: &Path, rel: &Path, entry: &str) -> Result<(), UnpackError> {
    let mut cur = root.to_path_buf();
    let parent = rel.parent().unwrap_or(Path::new(""));
    for c in parent.components() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(UnpackError::ThroughSymlink {
                    entry: entry.into(),
                    link: cur.strip_prefix(root).unwrap_or(&cur).display().to_string(),
                })
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                wr(&cur, fs::remove_file(&cur))?;
                wr(&cur, fs::create_dir(&cur))?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => wr(&cur, fs::create_dir(&cur))?,
            Err(e) => return Err(UnpackError::Write { path: cur, source: e }),
        }
    }
    Ok(())
}

/// Removes whatever is at `path` (file, symlink or tree), not following symlinks.
fn remove_any(path: &Path) -> Result<(), UnpackError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => wr(path, fs::remove_dir_all(path)),
        Ok(_) => wr(path, fs::remove_file(path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(UnpackError::Write { path: path.into(), source: e }),
    }
}

/// Does a relative symlink at `rel` pointing to `target` stay inside the root?
fn symlink_stays_inside(rel: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return true;
    }
    let mut depth: i64 = rel.parent().map(|p| p.components().count() as i64).unwrap_or(0);
    for c in target.components() {
        match c {
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::Normal(_) => depth += 1,
            _ => {}
        }
    }
    true
}

/// What applying a layer produced.
#[derive(Debug, Default, Clone, Copy)]
pub struct LayerStats {
    /// Bytes of regular file content written.
    pub size: u64,
    pub entries: u64,
}

/// Applies the layer tar read from `reader` to `root`. On error the directory holds a partial
/// layer: callers unpack into a fresh directory and discard it on failure.
pub fn apply_layer<R: Read>(reader: R, root: &Path, whiteouts: Whiteouts) -> Result<LayerStats, UnpackError> {
    apply_archive(reader, root, ApplyOptions { whiteouts, owner: None })
}

/// Checks an archive before it is applied to a directory that already holds files (`docker
/// cp`), so that a bad archive changes nothing: every name, link target, and (when
/// `no_overwrite_dir_non_dir`) the types of what the entries would replace. Reads `reader`
/// to its end; writes nothing.
pub fn check_archive<R: Read>(reader: R, root: &Path, no_overwrite_dir_non_dir: bool) -> Result<u64, UnpackError> {
    let mut archive = tar::Archive::new(reader);
    let mut entries = 0;
    // What the archive itself makes: a later entry must not be written through its links.
    let mut links = std::collections::BTreeSet::new();
    let mut dirs = std::collections::BTreeSet::new();
    for entry in archive.entries().map_err(UnpackError::Read)? {
        let entry = entry.map_err(UnpackError::Read)?;
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let rel = clean_name(&raw)?;
        let typ = entry.header().entry_type();
        if rel.as_os_str().is_empty() || matches!(typ, EntryType::XGlobalHeader | EntryType::XHeader) {
            continue;
        }
        match typ {
            EntryType::Symlink => {
                let link = entry.link_name_bytes().map(|l| PathBuf::from(OsStr::from_bytes(&l))).unwrap_or_default();
                if !symlink_stays_inside(&rel, &link) {
                    return Err(UnpackError::SymlinkEscapes { entry: shown, target: link.display().to_string() });
                }
            }
            EntryType::Link => {
                let raw_link = entry.link_name_bytes().map(|l| l.into_owned()).unwrap_or_default();
                clean_name(&raw_link).map_err(|_| UnpackError::HardlinkOutside {
                    entry: shown.clone(),
                    target: String::from_utf8_lossy(&raw_link).into(),
                })?;
            }
            EntryType::Directory
            | EntryType::Regular
            | EntryType::Continuous
            | EntryType::Char
            | EntryType::Block
            | EntryType::Fifo
            | EntryType::GNULongName
            | EntryType::GNULongLink => {}
            _ => return Err(UnpackError::Unsupported(shown)),
        }
        let mut prefix = PathBuf::new();
        for c in rel.parent().unwrap_or(Path::new("")).components() {
            prefix.push(c);
            let existing_link =
                !dirs.contains(&prefix) && fs::symlink_metadata(root.join(&prefix)).is_ok_and(|m| m.file_type().is_symlink());
            if links.contains(&prefix) || existing_link {
                return Err(UnpackError::ThroughSymlink { entry: shown, link: prefix.display().to_string() });
            }
        }
        if typ == EntryType::Symlink {
            links.insert(rel.clone());
        } else {
            links.remove(&rel);
        }
        if typ.is_dir() {
            dirs.insert(rel.clone());
        }
        if no_overwrite_dir_non_dir {
            if let Ok(m) = fs::symlink_metadata(root.join(&rel)) {
                if m.is_dir() && !typ.is_dir() {
                    return Err(UnpackError::DirWithNonDir(shown));
                }
                if !m.is_dir() && typ.is_dir() {
                    return Err(UnpackError::NonDirWithDir(shown));
                }
            }
        }
        entries += 1;
    }
    Ok(entries)
}

/// Applies the archive read from `reader` to `root` (see [`apply_layer`]).
pub fn apply_archive<R: Read>(reader: R, root: &Path, opts: ApplyOptions) -> Result<LayerStats, UnpackError> {
    let whiteouts = opts.whiteouts;
    let mut archive = tar::Archive::new(reader);
    let mut stats = LayerStats::default();
    let mut dir_times: Vec<(PathBuf, i64)> = Vec::new();
    for entry in archive.entries().map_err(UnpackError::Read)? {
        let mut entry = entry.map_err(UnpackError::Read)?;
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let rel = clean_name(&raw)?;
        let header = entry.header();
        let typ = header.entry_type();
        if matches!(typ, EntryType::XGlobalHeader | EntryType::XHeader | EntryType::GNULongName | EntryType::GNULongLink) {
            continue;
        }
        if rel.as_os_str().is_empty() {
            continue; // "./": the root itself
        }
        prepare_parents(root, &rel, &shown)?;
        let target = root.join(&rel);
        let name = rel.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();

        if name == OPAQUE_MARKER && whiteouts != Whiteouts::Keep {
            let dir = target.parent().unwrap_or(root);
            match whiteouts {
                Whiteouts::Overlay => wr(dir, xattr_set(dir, "trusted.overlay.opaque", b"y"))?,
                Whiteouts::Keep => unreachable!("whiteouts are kept as files"),
                Whiteouts::Apply => {
                    for child in wr(dir, fs::read_dir(dir))? {
                        remove_any(&wr(dir, child)?.path())?;
                    }
                }
            }
            stats.entries += 1;
            continue;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX).filter(|_| whiteouts != Whiteouts::Keep) {
            if hidden.is_empty() || hidden == "." || hidden == ".." || hidden.contains('/') {
                return Err(UnpackError::BadWhiteout(shown));
            }
            let victim = target.with_file_name(hidden);
            remove_any(&victim)?;
            if whiteouts == Whiteouts::Overlay {
                errno(&victim, mknod(&victim, SFlag::S_IFCHR, Mode::empty(), 0))?;
            }
            stats.entries += 1;
            continue;
        }

        let mode = header.mode().map_err(UnpackError::Read)? & 0o7777;
        let (uid, gid) = match opts.owner {
            Some(owner) => owner,
            None => (header.uid().map_err(UnpackError::Read)? as u32, header.gid().map_err(UnpackError::Read)? as u32),
        };
        let mtime = header.mtime().map_err(UnpackError::Read)? as i64;

        // Anything already there (from an earlier entry of the same tar) is replaced, except
        // a directory replaced by a directory, which keeps its children.
        let existing = fs::symlink_metadata(&target).ok();
        if !(typ.is_dir() && existing.as_ref().is_some_and(|m| m.is_dir())) && existing.is_some() {
            remove_any(&target)?;
        }

        match typ {
            EntryType::Directory => {
                if existing.as_ref().is_none_or(|m| !m.is_dir()) {
                    wr(&target, fs::create_dir(&target))?;
                }
                dir_times.push((target.clone(), mtime));
            }
            EntryType::Regular | EntryType::Continuous => {
                let mut f =
                    wr(&target, OpenOptions::new().write(true).create_new(true).custom_flags(libc::O_NOFOLLOW).mode(0o600).open(&target))?;
                stats.size += io::copy(&mut entry, &mut f).map_err(UnpackError::Read)?;
            }
            EntryType::Symlink => {
                let link = entry.link_name_bytes().map(|l| PathBuf::from(OsStr::from_bytes(&l))).unwrap_or_default();
                if !symlink_stays_inside(&rel, &link) {
                    return Err(UnpackError::SymlinkEscapes { entry: shown, target: link.display().to_string() });
                }
                wr(&target, std::os::unix::fs::symlink(&link, &target))?;
            }
            EntryType::Link => {
                let raw_link = entry.link_name_bytes().map(|l| l.into_owned()).unwrap_or_default();
                let link_rel = clean_name(&raw_link).map_err(|_| UnpackError::HardlinkOutside {
                    entry: shown.clone(),
                    target: String::from_utf8_lossy(&raw_link).into(),
                })?;
                prepare_parents(root, &link_rel, &shown)?;
                let source = root.join(&link_rel);
                match fs::symlink_metadata(&source) {
                    Ok(m) if !m.is_dir() => wr(&target, fs::hard_link(&source, &target))?,
                    _ => return Err(UnpackError::HardlinkOutside { entry: shown, target: link_rel.display().to_string() }),
                }
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let kind = match typ {
                    EntryType::Char => SFlag::S_IFCHR,
                    EntryType::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                let major = header.device_major().ok().flatten().unwrap_or(0) as u64;
                let minor = header.device_minor().ok().flatten().unwrap_or(0) as u64;
                let dev = libc::makedev(major as u32, minor as u32);
                errno(&target, mknod(&target, kind, Mode::from_bits_truncate(mode), dev))?;
            }
            _ => return Err(UnpackError::Unsupported(shown)),
        }

        if typ != EntryType::Link {
            errno(
                &target,
                nix::unistd::fchownat(None, &target, Some(uid.into()), Some(gid.into()), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW),
            )?;
            if typ != EntryType::Symlink {
                // After chown: chown clears setuid/setgid bits.
                wr(&target, fs::set_permissions(&target, fs::Permissions::from_mode(mode)))?;
            }
            if !typ.is_dir() {
                set_mtime(&target, mtime)?;
            }
        }
        stats.entries += 1;
    }
    // Directory times last: creating their children changed them.
    for (dir, mtime) in dir_times.iter().rev() {
        set_mtime(dir, *mtime)?;
    }
    Ok(stats)
}

fn set_mtime(path: &Path, secs: i64) -> Result<(), UnpackError> {
    let t = nix::sys::time::TimeSpec::new(secs, 0);
    errno(path, nix::sys::stat::utimensat(None, path, &t, &t, nix::sys::stat::UtimensatFlags::NoFollowSymlink))
}

fn xattr_set(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let n = std::ffi::CString::new(name).map_err(io::Error::other)?;
    // SAFETY: both pointers come from live CStrings and `value` outlives the call.
    let rc = unsafe { libc::lsetxattr(p.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, EntryType, &str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, typ, link, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*typ);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(1_700_000_000);
            h.set_size(data.len() as u64);
            // set_path refuses '..' and absolute names: write them raw, as an attacker would.
            let bytes = name.as_bytes();
            h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            if !link.is_empty() {
                h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
            }
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("berth-unpack-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("root")).unwrap();
        d
    }

    #[test]
    fn writes_files_dirs_and_absolute_symlinks() {
        let d = scratch("ok");
        let t = tar_of(&[
            ("bin/", EntryType::Directory, "", b""),
            ("bin/busybox", EntryType::Regular, "", b"ELF"),
            ("bin/sh", EntryType::Symlink, "/bin/busybox", b""),
            ("bin/ash", EntryType::Link, "bin/busybox", b""),
        ]);
        let s = apply_layer(&t[..], &d.join("root"), Whiteouts::Overlay).unwrap();
        assert_eq!(s.size, 3);
        assert_eq!(fs::read(d.join("root/bin/ash")).unwrap(), b"ELF");
        assert_eq!(fs::read_link(d.join("root/bin/sh")).unwrap(), Path::new("/bin/busybox"));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn refuses_dotdot_and_absolute_names() {
        let d = scratch("dotdot");
        let t = tar_of(&[("../escape", EntryType::Regular, "", b"x")]);
        assert!(matches!(apply_layer(&t[..], &d.join("root"), Whiteouts::Overlay), Err(UnpackError::DotDot(_))));
        assert!(!d.join("escape").exists());
        let t = tar_of(&[("/abs", EntryType::Regular, "", b"x")]);
        assert!(matches!(apply_layer(&t[..], &d.join("root"), Whiteouts::Overlay), Err(UnpackError::Absolute(_))));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn refuses_writing_through_a_symlink() {
        let d = scratch("through");
        fs::create_dir_all(d.join("outside")).unwrap();
        let out = d.join("outside");
        let t = tar_of(&[("evil", EntryType::Symlink, out.to_str().unwrap(), b""), ("evil/passwd", EntryType::Regular, "", b"pwned")]);
        let e = apply_layer(&t[..], &d.join("root"), Whiteouts::Overlay).unwrap_err();
        assert!(matches!(e, UnpackError::ThroughSymlink { .. }), "{e}");
        assert!(!out.join("passwd").exists());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn checks_a_whole_archive_before_anything_is_written() {
        let d = scratch("check");
        let root = d.join("root");
        fs::create_dir_all(root.join("dir")).unwrap();
        std::os::unix::fs::symlink("/", root.join("link")).unwrap();
        let check =
            |entries: &[(&str, EntryType, &str, &[u8])], no_overwrite: bool| check_archive(&tar_of(entries)[..], &root, no_overwrite);
        let fine: &[(&str, EntryType, &str, &[u8])] = &[("ok", EntryType::Regular, "", b"x")];
        assert_eq!(check(fine, true).unwrap(), 1);
        // A good entry first, then a bad one: the check fails and wrote nothing.
        let e = check(&[fine[0], ("../escape", EntryType::Regular, "", b"x")], false).unwrap_err();
        assert!(matches!(e, UnpackError::DotDot(_)), "{e}");
        let e = check(&[("evil", EntryType::Symlink, "/", b""), ("evil/etc/x", EntryType::Regular, "", b"x")], false).unwrap_err();
        assert!(matches!(e, UnpackError::ThroughSymlink { .. }), "{e}");
        let e = check(&[("link/etc/x", EntryType::Regular, "", b"x")], false).unwrap_err();
        assert!(matches!(e, UnpackError::ThroughSymlink { .. }), "an existing link: {e}");
        let e = check(&[("dir", EntryType::Regular, "", b"x")], true).unwrap_err();
        assert!(matches!(e, UnpackError::DirWithNonDir(_)), "{e}");
        assert!(check(&[("dir", EntryType::Regular, "", b"x")], false).is_ok());
        assert!(!root.join("ok").exists());

        // Applied as a copy: whiteout names are files, the owner is the one asked for.
        let t = tar_of(&[(".wh.kept", EntryType::Regular, "", b"w"), ("dir/f", EntryType::Regular, "", b"f")]);
        apply_archive(&t[..], &root, ApplyOptions { whiteouts: Whiteouts::Keep, owner: Some((1234, 5678)) }).unwrap();
        assert_eq!(fs::read(root.join(".wh.kept")).unwrap(), b"w");
        let m = fs::metadata(root.join("dir/f")).unwrap();
        use std::os::unix::fs::MetadataExt;
        if nix::unistd::geteuid().is_root() {
            assert_eq!((m.uid(), m.gid()), (1234, 5678));
        }
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn refuses_escaping_links() {
        let d = scratch("links");
        let t = tar_of(&[("a/up", EntryType::Symlink, "../../etc", b"")]);
        assert!(matches!(apply_layer(&t[..], &d.join("root"), Whiteouts::Overlay), Err(UnpackError::SymlinkEscapes { .. })));
        let t = tar_of(&[("hl", EntryType::Link, "../secret", b"")]);
        assert!(matches!(apply_layer(&t[..], &d.join("root"), Whiteouts::Overlay), Err(UnpackError::HardlinkOutside { .. })));
        let t = tar_of(&[("a/.wh...", EntryType::Regular, "", b"")]);
        assert!(matches!(apply_layer(&t[..], &d.join("root"), Whiteouts::Overlay), Err(UnpackError::BadWhiteout(_))));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn whiteouts_delete_in_apply_mode() {
        let d = scratch("wh");
        fs::create_dir_all(d.join("root/etc/sub")).unwrap();
        fs::write(d.join("root/etc/gone"), b"x").unwrap();
        fs::write(d.join("root/etc/sub/y"), b"y").unwrap();
        let t = tar_of(&[("etc/.wh.gone", EntryType::Regular, "", b""), ("etc/sub/.wh..wh..opq", EntryType::Regular, "", b"")]);
        apply_layer(&t[..], &d.join("root"), Whiteouts::Apply).unwrap();
        assert!(!d.join("root/etc/gone").exists());
        assert!(d.join("root/etc/sub").is_dir());
        assert!(!d.join("root/etc/sub/y").exists());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn whiteouts_become_overlay_char_devices() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root for mknod");
            return;
        }
        let d = scratch("whov");
        let t = tar_of(&[("etc/.wh.gone", EntryType::Regular, "", b"")]);
        apply_layer(&t[..], &d.join("root"), Whiteouts::Overlay).unwrap();
        use std::os::unix::fs::FileTypeExt;
        assert!(fs::symlink_metadata(d.join("root/etc/gone")).unwrap().file_type().is_char_device());
        fs::remove_dir_all(&d).unwrap();
    }
}
