//! Paths inside a container's file system, resolved the way the container sees them:
//! symlinks (absolute ones included) and `..` never lead outside its root, so a hostile
//! image or a process in the container cannot make the daemon read or write host files.

use anyhow::Result;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

const MAX_LINKS: u32 = 40;

/// Resolves `path` inside a scope and returns it relative to the scope's root. `host` maps a
/// relative path to where it is on the host (the root, or a volume mounted inside it).
/// `follow_last`: resolve a symlink in the last component too (`false` for `stat` and `cp`
/// out of a container, which treat the link itself).
pub fn resolve(path: &Path, follow_last: bool, host: &dyn Fn(&Path) -> PathBuf) -> Result<PathBuf> {
    let mut parts: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .rev()
        .collect();
    let mut cur = PathBuf::new();
    let mut links = 0;
    while let Some(part) = parts.pop() {
        if part == ".." {
            cur.pop();
            continue;
        }
        let next = cur.join(&part);
        let last = parts.is_empty();
        match std::fs::symlink_metadata(host(&next)) {
            Ok(m) if m.file_type().is_symlink() && (follow_last || !last) => {
                links += 1;
                anyhow::ensure!(links <= MAX_LINKS, "too many levels of symbolic links in {}", path.display());
                let target = std::fs::read_link(host(&next))?;
                if target.is_absolute() {
                    cur = PathBuf::new();
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(n) => parts.push(n.to_os_string()),
                        Component::ParentDir => parts.push("..".into()),
                        _ => {}
                    }
                }
            }
            _ => cur = next,
        }
    }
    Ok(cur)
}

/// `root` joined with `path`, every symlink resolved inside `root`.
pub fn secure_join(root: &Path, path: &Path) -> Result<PathBuf> {
    Ok(root.join(resolve(path, true, &|p| root.join(p))?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_join_stays_inside() {
        let root = std::env::temp_dir().join(format!("berth-sj-{}", std::process::id()));
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("a/etc")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("a/up")).unwrap();
        assert_eq!(secure_join(&root, Path::new("/a/etc/x")).unwrap(), root.join("etc/x"));
        assert_eq!(secure_join(&root, Path::new("/a/up/tmp")).unwrap(), root.join("tmp"));
        assert_eq!(secure_join(&root, Path::new("/../../a/../etc")).unwrap(), root.join("etc"));
        // The link itself, when the last component is not followed.
        assert_eq!(resolve(Path::new("/a/etc"), false, &|p| root.join(p)).unwrap(), PathBuf::from("a/etc"));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
