//! `POST /build`, the classic builder. The context a client uploads is spooled to disk
//! under a size limit (`build-context-limit`), unpacked with the same checks as a layer (no
//! `..`, no absolute names, no links out), and the Dockerfile is read from it and parsed, so
//! bad input is refused with Docker's messages before anything runs (`prepare`). Then
//! `builder` runs the stages: `steps` runs each instruction (RUN in a container, COPY/ADD
//! through `copy`, configuration through `config`), with the layer `cache`, telling the
//! client through `output`.

mod builder;
mod cache;
mod config;
mod copy;
mod output;
mod stage;
mod steps;

pub use builder::{BuildError, BuildOptions, Builder};
pub use output::Output;

use anyhow::{Context, Result};
use berth_images::dockerfile::Dockerfile;
use berth_images::unpack::{apply_archive, ApplyOptions, Whiteouts};
use std::path::{Path, PathBuf};

/// Marks the containers a build step makes: a daemon that stopped mid-build finds its
/// leftovers by it at the next start (no build survives a restart).
pub const STEP_LABEL: &str = "org.berth.build-step";

/// The largest Dockerfile read (Docker's parser has no limit; a megabyte of instructions is
/// no Dockerfile).
const MAX_DOCKERFILE: u64 = 1 << 20;

/// Why a build was refused before it started.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The client's fault: a broken or hostile context, a missing or invalid Dockerfile.
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// A directory removed with everything in it when dropped.
pub struct WorkDir(pub PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Unpacks the context tar (plain or gzip, as docker-py may send it) into `dir`.
fn unpack_context(tar: &Path, dir: &Path) -> Result<(), Refused> {
    let reader = berth_images::archive::open_tar_file(tar)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    apply_archive(std::io::BufReader::new(reader), dir, ApplyOptions { whiteouts: Whiteouts::Keep, owner: None })
        .map_err(|e| Refused::BadRequest(format!("the build context: {e}")))?;
    Ok(())
}

/// Reads `name` (as `POST /build`'s `dockerfile`, relative to the context; symlinks are
/// resolved inside it) and parses it.
fn read_dockerfile(context: &Path, name: &str) -> Result<Dockerfile, Refused> {
    let path = crate::util::scope::secure_join(context, Path::new(name))
        .map_err(|e| Refused::BadRequest(format!("the Dockerfile {name:?}: {e:#}")))?;
    let meta = std::fs::metadata(&path).map_err(|_| Refused::BadRequest(format!("Cannot locate specified Dockerfile: {name}")))?;
    if !meta.is_file() || meta.len() > MAX_DOCKERFILE {
        return Err(Refused::BadRequest(format!("the Dockerfile {name:?} is not a file of at most {MAX_DOCKERFILE} bytes")));
    }
    let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let text = String::from_utf8(text).map_err(|_| Refused::BadRequest(format!("the Dockerfile {name:?} is not UTF-8 text")))?;
    Dockerfile::parse(&text).map_err(|e| Refused::BadRequest(e.to_string()))
}

/// The front of a build: the context unpacked into `work`, its Dockerfile parsed.
pub fn prepare(tar: &Path, work: &Path, dockerfile: &str) -> Result<Dockerfile, Refused> {
    let context = work.join("context");
    unpack_context(tar, &context)?;
    let name = if dockerfile.is_empty() { "Dockerfile" } else { dockerfile };
    let parsed = read_dockerfile(&context, name)?;
    remove_ignored(&context, name)?;
    Ok(parsed)
}

/// As dockerd does once the Dockerfile is read: `.dockerignore` and the Dockerfile leave the
/// context when `.dockerignore` names them (clients send both whatever it says; docker-py
/// lists a Dockerfile from outside the context there).
fn remove_ignored(context: &Path, dockerfile: &str) -> Result<(), Refused> {
    let Ok(text) = std::fs::read_to_string(context.join(".dockerignore")) else { return Ok(()) };
    let ignore = berth_images::dockerfile::ignore::Ignore::parse(&text);
    for name in [".dockerignore", dockerfile] {
        if ignore.excludes(name) {
            let path = crate::util::scope::secure_join(context, Path::new(name)).map_err(Refused::Internal)?;
            if path.is_file() {
                std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_entry_type(tar::EntryType::Regular);
            // Written by hand: the tar crate refuses to write a `..` name itself.
            let raw = h.as_old_mut();
            raw.name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn work() -> WorkDir {
        let d = std::env::temp_dir().join(format!(
            "berth-build-{}-{}",
            std::process::id(),
            crate::util::id::ContainerId::random().unwrap().short()
        ));
        std::fs::create_dir_all(&d).unwrap();
        WorkDir(d)
    }

    #[test]
    fn a_context_is_unpacked_and_its_dockerfile_parsed() {
        let w = work();
        std::fs::write(w.0.join("ctx.tar"), tar_of(&[("build/Dockerfile.dev", b"FROM busybox\nRUN true\n"), ("a.txt", b"a")])).unwrap();
        let d = prepare(&w.0.join("ctx.tar"), &w.0, "build/Dockerfile.dev").unwrap();
        assert_eq!(d.stages[0].base, "busybox");
        assert!(w.0.join("context/a.txt").exists());
        let err = prepare(&w.0.join("ctx.tar"), &work().0, "Dockerfile").unwrap_err().to_string();
        assert_eq!(err, "Cannot locate specified Dockerfile: Dockerfile");
    }

    #[test]
    fn parse_errors_and_hostile_contexts_are_refused_with_the_reason() {
        let w = work();
        std::fs::write(w.0.join("bad.tar"), tar_of(&[("Dockerfile", b"FROM busybox\nFROBNICATE x\n")])).unwrap();
        let err = prepare(&w.0.join("bad.tar"), &w.0, "").unwrap_err();
        assert!(matches!(err, Refused::BadRequest(_)));
        assert_eq!(err.to_string(), "dockerfile parse error on line 2: unknown instruction: FROBNICATE");
        let w2 = work();
        std::fs::write(w2.0.join("evil.tar"), tar_of(&[("Dockerfile", b"FROM x\n"), ("../escaped", b"x")])).unwrap();
        let err = prepare(&w2.0.join("evil.tar"), &w2.0, "").unwrap_err().to_string();
        assert!(err.starts_with("the build context:"), "{err}");
        assert!(!w2.0.join("escaped").exists(), "an entry was written outside the context");
    }
}
