//! COPY and ADD on files: finding the sources (wildcards, never outside their root), their
//! checksum for the cache, and placing them under the destination inside a container's root
//! filesystem, every path resolved inside that root so a symlink in the image cannot send a
//! write to the host.

use crate::util::scope::secure_join;
use anyhow::{bail, Context, Result};
use berth_images::dockerfile::ignore::glob;
use sha2::{Digest as _, Sha256};
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// A source found: where it is on the host and the name it takes under a directory
/// destination.
#[derive(Debug, Clone)]
pub struct Source {
    pub host: PathBuf,
    pub name: String,
    pub dir: bool,
}

/// Why a source was refused: the user's mistake, reported as the step's error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The lexically cleaned components of `pattern` (relative to the root), or an error when it
/// climbs out of it (`../x`), as Docker refuses it.
fn clean(pattern: &str) -> Result<Vec<String>, SourceError> {
    let mut parts: Vec<String> = Vec::new();
    for c in Path::new(pattern).components() {
        match c {
            Component::Normal(n) => parts.push(n.to_string_lossy().into_owned()),
            Component::ParentDir if parts.pop().is_some() => {}
            Component::ParentDir => {
                return Err(SourceError(format!("forbidden path outside the build context: {pattern}")));
            }
            _ => {}
        }
    }
    Ok(parts)
}

/// The sources `patterns` name under `root` (the build context, or a stage's files).
/// Wildcards match within one path element; a pattern that matches nothing is an error.
pub fn find(root: &Path, patterns: &[String]) -> Result<Vec<Source>> {
    let mut out = Vec::new();
    for pattern in patterns {
        let parts = clean(pattern)?;
        // Expanded one element at a time: each step's candidates are real paths inside root.
        let mut found: Vec<PathBuf> = vec![PathBuf::new()];
        for part in &parts {
            let mut next = Vec::new();
            for base in &found {
                if has_glob(part) {
                    let dir = secure_join(root, base)?;
                    let Ok(entries) = fs::read_dir(&dir) else { continue };
                    let mut names: Vec<String> =
                        entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
                    names.sort();
                    next.extend(names.into_iter().filter(|n| glob(part.as_bytes(), n.as_bytes())).map(|n| base.join(n)));
                } else {
                    next.push(base.join(part));
                }
            }
            found = next;
        }
        let before = out.len();
        for rel in found {
            let host = secure_join(root, &rel)?;
            let Ok(meta) = fs::symlink_metadata(&host) else { continue };
            let name = rel.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            out.push(Source { host, name, dir: meta.is_dir() });
        }
        if out.len() == before {
            let what = if has_glob(pattern) {
                "no source files were specified"
            } else {
                "file not found in build context or excluded by .dockerignore"
            };
            return Err(SourceError(format!("{what}: stat {pattern}: file does not exist")).into());
        }
    }
    Ok(out)
}

/// Feeds everything that decides what a copy writes into `h`: each file's name, type,
/// permissions and content, each link's target. Dates are left out, so a fresh checkout
/// of the same files still hits the cache.
pub fn checksum(sources: &[Source], h: &mut Sha256) -> Result<()> {
    for s in sources {
        h.update(format!("source {}\n", s.name));
        walk(&s.host, Path::new(""), &mut |host, rel, meta| {
            h.update(format!("{} {:o} {} {}\n", rel.display(), meta.mode(), meta.uid(), meta.gid()));
            if meta.file_type().is_symlink() {
                h.update(fs::read_link(host)?.as_os_str().as_encoded_bytes());
            } else if meta.is_file() {
                let mut f = fs::File::open(host).with_context(|| format!("reading {}", host.display()))?;
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = f.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// Visits `host` and, for a directory, everything under it (sorted, symlinks not followed),
/// with the path relative to `host`.
fn walk(host: &Path, rel: &Path, f: &mut dyn FnMut(&Path, &Path, &fs::Metadata) -> Result<()>) -> Result<()> {
    let meta = fs::symlink_metadata(host).with_context(|| format!("reading {}", host.display()))?;
    f(host, rel, &meta)?;
    if meta.is_dir() {
        let mut names: Vec<_> = fs::read_dir(host)?.filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
        names.sort();
        for n in names {
            walk(&host.join(&n), &rel.join(&n), f)?;
        }
    }
    Ok(())
}

/// How copied files are owned and their permissions set.
#[derive(Debug, Clone, Copy, Default)]
pub struct Placing {
    /// `--chown` resolved, or root (a COPY from the context); `None`: as the source is
    /// (`--from`, and a stage's files staged on the host).
    pub owner: Option<(u32, u32)>,
    /// `--chmod`.
    pub mode: Option<u32>,
    /// ADD: a local tar archive is unpacked into the destination.
    pub unpack_archives: bool,
}

/// Where a copy goes, in the container's terms.
pub struct Dest {
    /// Absolute, the working directory already applied.
    pub path: String,
    /// Written as a directory (`/` at the end): the sources go under it.
    pub dir: bool,
}

impl Dest {
    pub fn new(dest: &str, workdir: &str) -> Dest {
        let dir = dest.ends_with('/') || dest == "." || dest.ends_with("/.");
        let path = if dest.starts_with('/') { dest.to_string() } else { format!("{}/{dest}", workdir.trim_end_matches('/')) };
        Dest { path, dir }
    }
}

/// The host path of container path `rel` under `root`, resolved inside it.
fn inside(root: &Path, rel: &Path) -> Result<PathBuf> {
    secure_join(root, rel)
}

/// Creates the missing directories of `rel` (0755, owned by `owner` or root).
fn make_dirs(root: &Path, rel: &Path, owner: Option<(u32, u32)>) -> Result<()> {
    let mut cur = PathBuf::new();
    for c in rel.components() {
        if let Component::Normal(n) = c {
            cur.push(n);
            let host = inside(root, &cur)?;
            match fs::symlink_metadata(&host) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => bail!("cannot copy to {}: it is not a directory", Path::new("/").join(&cur).display()),
                Err(_) => {
                    // The path resolved through a link of the image's may need more than one
                    // directory made; all of them are inside the root.
                    fs::create_dir_all(&host).with_context(|| format!("creating {}", host.display()))?;
                    fs::set_permissions(&host, fs::Permissions::from_mode(0o755))?;
                    let (u, g) = owner.unwrap_or((0, 0));
                    std::os::unix::fs::lchown(&host, Some(u), Some(g))?;
                }
            }
        }
    }
    Ok(())
}

/// Copies `sources` to `dest` inside the root filesystem at `root`, as COPY and ADD do:
/// a directory's content goes into the destination, a file under it by its name, or to it
/// when the destination names a file.
pub fn place(root: &Path, sources: &[Source], dest: &Dest, how: Placing) -> Result<()> {
    let dest_rel = PathBuf::from(dest.path.trim_start_matches('/'));
    let existing_dir = inside(root, &dest_rel).ok().and_then(|h| fs::metadata(h).ok()).is_some_and(|m| m.is_dir());
    if sources.len() > 1 && !dest.dir && !existing_dir {
        bail!(SourceError("When using COPY with more than one source file, the destination must be a directory and end with a /".into()));
    }
    let into_dir = dest.dir || existing_dir || sources.iter().any(|s| s.dir);
    if into_dir {
        make_dirs(root, &dest_rel, how.owner)?;
    } else if let Some(parent) = dest_rel.parent() {
        make_dirs(root, parent, how.owner)?;
    }
    for s in sources {
        if s.dir {
            copy_tree(root, &s.host, &dest_rel, how)?;
        } else if how.unpack_archives && is_archive(&s.host) {
            unpack(root, &s.host, &dest_rel, how)?;
        } else {
            let target = if into_dir { dest_rel.join(&s.name) } else { dest_rel.clone() };
            let meta = fs::symlink_metadata(&s.host)?;
            copy_one(root, &s.host, &meta, &target, how)?;
        }
    }
    Ok(())
}

/// `COPY --from`'s first half: each source found under `root` (a stage's files) copied to
/// its own directory under `dir` on the host, owners, modes and dates kept.
pub fn stage(root: &Path, patterns: &[String], dir: &Path) -> Result<Vec<Source>> {
    let mut out = Vec::new();
    for (i, s) in find(root, patterns)?.into_iter().enumerate() {
        let to = dir.join(i.to_string());
        fs::create_dir_all(&to).with_context(|| format!("creating {}", to.display()))?;
        let keep = Placing::default();
        if s.dir {
            copy_tree(&to, &s.host, Path::new(""), keep)?;
            out.push(Source { host: to, name: s.name, dir: true });
        } else {
            copy_one(&to, &s.host, &fs::symlink_metadata(&s.host)?, Path::new(&s.name), keep)?;
            out.push(Source { host: to.join(&s.name), name: s.name, dir: false });
        }
    }
    Ok(out)
}

/// A directory's content (not the directory itself) under `dest_rel`.
fn copy_tree(root: &Path, src: &Path, dest_rel: &Path, how: Placing) -> Result<()> {
    walk(src, Path::new(""), &mut |host, rel, meta| {
        if rel.as_os_str().is_empty() {
            return Ok(());
        }
        copy_one(root, host, meta, &dest_rel.join(rel), how)
    })
}

/// One entry: a directory is made (or kept), anything else replaces what is there.
fn copy_one(root: &Path, src: &Path, meta: &fs::Metadata, rel: &Path, how: Placing) -> Result<()> {
    let parent = rel.parent().unwrap_or(Path::new(""));
    let name = rel.file_name().context("copying to the root directory itself")?;
    // The parent resolved inside the root; the entry itself is never followed.
    let target = inside(root, parent)?.join(name);
    let (uid, gid) = how.owner.unwrap_or((meta.uid(), meta.gid()));
    let mode = how.mode.unwrap_or(meta.mode() & 0o7777);
    let ft = meta.file_type();
    let existing = fs::symlink_metadata(&target).ok();
    if ft.is_dir() {
        if !existing.as_ref().is_some_and(|m| m.is_dir()) {
            if existing.is_some() {
                fs::remove_file(&target)?;
            }
            fs::create_dir(&target).with_context(|| format!("creating {}", target.display()))?;
        }
    } else {
        match existing {
            Some(m) if m.is_dir() => bail!("cannot replace the directory /{} with a file", rel.display()),
            Some(_) => fs::remove_file(&target)?,
            None => {}
        }
        if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(src)?, &target)?;
            std::os::unix::fs::lchown(&target, Some(uid), Some(gid))?;
            return Ok(());
        } else if ft.is_file() {
            let mut from = fs::File::open(src).with_context(|| format!("reading {}", src.display()))?;
            let mut to = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&target)
                .with_context(|| format!("creating {}", target.display()))?;
            std::io::copy(&mut from, &mut to).with_context(|| format!("copying to {}", target.display()))?;
        } else {
            // Sockets, fifos and devices have no place in a build context.
            tracing::warn!(path = %src.display(), "build: a special file is not copied");
            return Ok(());
        }
    }
    std::os::unix::fs::lchown(&target, Some(uid), Some(gid))?;
    fs::set_permissions(&target, fs::Permissions::from_mode(mode))?;
    let mtime = nix::sys::time::TimeSpec::new(meta.mtime(), meta.mtime_nsec());
    nix::sys::stat::utimensat(None, &target, &mtime, &mtime, nix::sys::stat::UtimensatFlags::NoFollowSymlink)?;
    Ok(())
}

/// ADD unpacks tar archives (plain or gzip); anything else is copied as a file.
fn is_archive(path: &Path) -> bool {
    let mut head = [0u8; 512];
    let Ok(mut f) = fs::File::open(path) else { return false };
    let n = f.read(&mut head).unwrap_or(0);
    if n >= 2 && head[0] == 0x1f && head[1] == 0x8b {
        return true;
    }
    n == 512 && &head[257..262] == b"ustar"
}

fn unpack(root: &Path, archive: &Path, dest_rel: &Path, how: Placing) -> Result<()> {
    let dir = inside(root, dest_rel)?;
    let bad = |e: berth_images::unpack::UnpackError| SourceError(format!("ADD {}: {e}", archive.display()));
    let open = || berth_images::archive::open_tar_file(archive).map(std::io::BufReader::new);
    berth_images::unpack::check_archive(open()?, &dir, false).map_err(bad)?;
    let opts = berth_images::unpack::ApplyOptions { whiteouts: berth_images::unpack::Whiteouts::Keep, owner: how.owner };
    berth_images::unpack::apply_archive(open()?, &dir, opts).map_err(bad)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("berth-copy-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn names(s: &[Source]) -> Vec<&str> {
        s.iter().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn sources_are_matched_inside_their_root_only() {
        let ctx = tmp("find");
        fs::create_dir_all(ctx.join("src/sub")).unwrap();
        for f in ["a.txt", "b.txt", "c.md", "src/x.rs", "src/sub/y.rs"] {
            fs::write(ctx.join(f), f).unwrap();
        }
        std::os::unix::fs::symlink("/etc", ctx.join("etc-link")).unwrap();
        let find = |p: &[&str]| find(&ctx, &p.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(names(&find(&["*.txt"]).unwrap()), ["a.txt", "b.txt"]);
        assert_eq!(names(&find(&["src/*"]).unwrap()), ["sub", "x.rs"]);
        assert_eq!(names(&find(&["./src/../c.md"]).unwrap()), ["c.md"]);
        let err = find(&["../outside"]).unwrap_err().to_string();
        assert_eq!(err, "forbidden path outside the build context: ../outside");
        assert!(find(&["nope.txt"]).unwrap_err().to_string().contains("file not found in build context"));
        assert!(find(&["*.none"]).unwrap_err().to_string().contains("no source files were specified"));
        // A link out of the context resolves inside it: /etc of the host is not reachable.
        assert!(find(&["etc-link/passwd"]).is_err());
        fs::remove_dir_all(&ctx).unwrap();
    }

    #[test]
    fn checksums_follow_content_and_modes_not_dates() {
        let ctx = tmp("sum");
        fs::write(ctx.join("f"), "one").unwrap();
        let sum = || {
            let mut h = Sha256::new();
            checksum(&find(&ctx, &["f".to_string()]).unwrap(), &mut h).unwrap();
            h.finalize().to_vec()
        };
        let first = sum();
        let t = nix::sys::time::TimeSpec::new(1_000_000, 0);
        nix::sys::stat::utimensat(None, &ctx.join("f"), &t, &t, nix::sys::stat::UtimensatFlags::NoFollowSymlink).unwrap();
        assert_eq!(sum(), first, "a new date changed the checksum");
        fs::write(ctx.join("f"), "two").unwrap();
        assert_ne!(sum(), first);
        let second = sum();
        fs::set_permissions(ctx.join("f"), fs::Permissions::from_mode(0o700)).unwrap();
        assert_ne!(sum(), second);
        fs::remove_dir_all(&ctx).unwrap();
    }

    #[test]
    fn placing_files_directories_and_renames() {
        let ctx = tmp("ctx");
        let root = tmp("root");
        fs::create_dir_all(ctx.join("dir/inner")).unwrap();
        fs::write(ctx.join("dir/inner/f"), "f").unwrap();
        fs::write(ctx.join("one"), "1").unwrap();
        fs::create_dir_all(root.join("existing")).unwrap();
        let src = |p: &str| find(&ctx, &[p.to_string()]).unwrap();
        let how = Placing { owner: Some((0, 0)), ..Default::default() };
        // A directory's content goes into the destination.
        place(&root, &src("dir"), &Dest::new("/app/", "/"), how).unwrap();
        assert_eq!(fs::read_to_string(root.join("app/inner/f")).unwrap(), "f");
        // A file to a new name, relative to the working directory.
        place(&root, &src("one"), &Dest::new("renamed", "/work"), how).unwrap();
        assert_eq!(fs::read_to_string(root.join("work/renamed")).unwrap(), "1");
        // A file into a directory that exists in the image.
        place(&root, &src("one"), &Dest::new("/existing", "/"), how).unwrap();
        assert_eq!(fs::read_to_string(root.join("existing/one")).unwrap(), "1");
        // Several sources need a directory destination.
        let both = find(&ctx, &["one".to_string(), "dir".to_string()]).unwrap();
        assert!(place(&root, &both, &Dest::new("/newfile", "/"), how).unwrap_err().to_string().contains("must be a directory"));
        // --chmod applies to what is copied.
        place(&root, &src("one"), &Dest::new("/m/", "/"), Placing { mode: Some(0o600), ..how }).unwrap();
        assert_eq!(fs::metadata(root.join("m/one")).unwrap().mode() & 0o7777, 0o600);
        fs::remove_dir_all(&ctx).unwrap();
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_symlink_in_the_image_keeps_the_copy_inside_the_root() {
        let ctx = tmp("ctx2");
        let root = tmp("root2");
        let outside = tmp("outside");
        fs::write(ctx.join("f"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
        place(&root, &find(&ctx, &["f".to_string()]).unwrap(), &Dest::new("/escape/", "/"), Placing::default()).unwrap();
        assert!(!outside.join("f").exists(), "a write went through the image's absolute symlink");
        assert!(root.join(outside.strip_prefix("/").unwrap()).join("f").exists());
        for d in [ctx, root, outside] {
            fs::remove_dir_all(d).unwrap();
        }
    }
}
