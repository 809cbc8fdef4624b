//! The build context as the client sends it: a tar of a directory without what
//! `.dockerignore` leaves out. The Dockerfile and `.dockerignore` themselves always travel
//! (the daemon needs them; it drops them from what COPY sees when they are ignored), as the
//! docker CLI does. Entries are sorted, so the same tree gives the same tar.

use super::ignore::Ignore;
use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

/// Writes the context tar of `dir` to `out`; `dockerfile` is the Dockerfile's path relative
/// to `dir` (when it is inside). Returns the number of entries.
pub fn write<W: Write>(dir: &Path, dockerfile: Option<&str>, out: W) -> Result<usize> {
    let ignore = match std::fs::read_to_string(dir.join(".dockerignore")) {
        Ok(t) => Ignore::parse(&t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ignore::default(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.join(".dockerignore").display())),
    };
    let always: Vec<String> =
        [Some(".dockerignore"), dockerfile].into_iter().flatten().map(|p| p.trim_start_matches("./").to_string()).collect();
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    tar.mode(tar::HeaderMode::Complete);
    let mut count = 0;
    walk(dir, "", &ignore, &always, &mut tar, &mut count)?;
    tar.into_inner().context("finishing the context tar")?.flush()?;
    Ok(count)
}

fn walk<W: Write>(root: &Path, rel: &str, ignore: &Ignore, always: &[String], tar: &mut tar::Builder<W>, count: &mut usize) -> Result<()> {
    let dir = root.join(rel);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("reading {}", dir.display()))?;
    names.sort();
    for name in names {
        let path = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
        let full = root.join(&path);
        let meta = std::fs::symlink_metadata(&full).with_context(|| format!("reading {}", full.display()))?;
        let excluded = ignore.excludes(&path) && !always.contains(&path);
        if meta.is_dir() {
            if !excluded {
                tar.append_path_with_name(&full, &path).with_context(|| format!("adding {path}"))?;
                *count += 1;
            }
            // An exception may bring back something below an excluded directory.
            if !excluded || ignore.has_exceptions() {
                walk(root, &path, ignore, always, tar, count)?;
            }
        } else if !excluded {
            tar.append_path_with_name(&full, &path).with_context(|| format!("adding {path}"))?;
            *count += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignored_files_stay_home_and_the_build_files_always_travel() {
        let dir = std::env::temp_dir().join(format!("berth-context-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("logs/keep")).unwrap();
        std::fs::create_dir_all(dir.join("src")).unwrap();
        for (f, body) in [
            ("Dockerfile", "FROM scratch\n"),
            (".dockerignore", "logs\n!logs/keep/me\nDockerfile\n.dockerignore\n*.tmp\n"),
            ("src/a.rs", "a"),
            ("x.tmp", "t"),
            ("logs/big.log", "l"),
            ("logs/keep/me", "k"),
        ] {
            std::fs::write(dir.join(f), body).unwrap();
        }
        std::os::unix::fs::symlink("/etc/passwd", dir.join("src/link")).unwrap();
        let mut buf = Vec::new();
        write(&dir, Some("Dockerfile"), &mut buf).unwrap();
        let mut names = Vec::new();
        let mut link = None;
        for e in tar::Archive::new(buf.as_slice()).entries().unwrap() {
            let e = e.unwrap();
            let p = e.path().unwrap().to_string_lossy().trim_end_matches('/').to_string();
            if p == "src/link" {
                link = e.link_name().unwrap().map(|l| l.to_string_lossy().into_owned());
            }
            names.push(p);
        }
        assert_eq!(names, [".dockerignore", "Dockerfile", "logs/keep/me", "src", "src/a.rs", "src/link"]);
        assert_eq!(link.as_deref(), Some("/etc/passwd"), "a symlink travels as a link, never followed");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
