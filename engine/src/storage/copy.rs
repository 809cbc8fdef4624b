//! Copying a directory tree with owners, modes, times, symlinks and device nodes kept: what
//! the vfs driver does instead of stacking layers.

use anyhow::{Context, Result};
use nix::sys::stat::{mknod, Mode, SFlag};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(from).with_context(|| format!("reading {}", from.display()))?;
    let ft = meta.file_type();
    if ft.is_dir() {
        fs::create_dir(to).with_context(|| format!("creating {}", to.display()))?;
        for e in fs::read_dir(from)? {
            let e = e?;
            copy_tree(&e.path(), &to.join(e.file_name()))?;
        }
    } else if ft.is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(from)?, to)?;
    } else if ft.is_file() {
        fs::copy(from, to).with_context(|| format!("copying {}", from.display()))?;
    } else {
        let kind = if ft.is_char_device() {
            SFlag::S_IFCHR
        } else if ft.is_block_device() {
            SFlag::S_IFBLK
        } else if ft.is_fifo() {
            SFlag::S_IFIFO
        } else {
            return Ok(()); // sockets are not copied
        };
        mknod(to, kind, Mode::from_bits_truncate(meta.mode()), meta.rdev()).with_context(|| format!("mknod {}", to.display()))?;
    }
    nix::unistd::fchownat(None, to, Some(meta.uid().into()), Some(meta.gid().into()), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
        .with_context(|| format!("chown {}", to.display()))?;
    if !ft.is_symlink() {
        fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    }
    let at = nix::sys::time::TimeSpec::new(meta.atime(), meta.atime_nsec());
    let mt = nix::sys::time::TimeSpec::new(meta.mtime(), meta.mtime_nsec());
    nix::sys::stat::utimensat(None, to, &at, &mt, nix::sys::stat::UtimensatFlags::NoFollowSymlink)?;
    Ok(())
}
