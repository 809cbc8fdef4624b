//! The signed part of a bundle: what it is for and what it holds.

use super::App;
use crate::Digest;
use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};

/// The layout of `bundle.json` this berth writes and reads.
pub const FORMAT: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    /// Only grows from one bundle to the next: devices refuse a lower one (anti-rollback).
    pub version: u64,
    pub created: String,
    pub compatible: Compatible,
    /// The oldest berth that can install it (`MAJOR.MINOR.PATCH`).
    pub min_berth: String,
    pub app: App,
    /// Each image the app names, and the digest of its image manifest in the layout.
    pub images: Vec<ImageEntry>,
    /// Every member after `bundle.sig`, with what it must hash to. `in_base`: left out of this
    /// (delta) bundle because its base had it.
    pub files: Vec<FileEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta_base: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compatible {
    /// Docker's names: `arm64`, `amd64`, `arm`.
    pub architectures: Vec<String>,
    /// Board names (a device's configured `board`); empty: any board.
    #[serde(default)]
    pub boards: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageEntry {
    pub name: String,
    pub manifest: Digest,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub path: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_base: bool,
}

/// `bundle.sig`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    pub algorithm: String,
    /// The signing key's id ([`super::keys::key_id`]).
    pub key: String,
    /// base64 of the 64-byte ed25519 signature over bundle.json.
    pub signature: String,
}

impl Manifest {
    /// Reads a manifest whose signature was checked; refuses layouts it does not know and
    /// member paths that are not plain relative names.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let m: Manifest = serde_json::from_slice(bytes).context("bundle.json is not a valid bundle manifest")?;
        ensure!(m.format == FORMAT, "bundle format {} is not supported by this berth (it reads format {FORMAT})", m.format);
        m.app.validate()?;
        for f in &m.files {
            check_member_path(&f.path)?;
        }
        Ok(m)
    }

    pub fn file(&self, path: &str) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.path == path)
    }

    /// Refuses a bundle not made for this device: architecture, board, berth version.
    pub fn check_compatible(&self, arch: &str, board: Option<&str>, berth_version: &str) -> Result<()> {
        ensure!(
            self.compatible.architectures.iter().any(|a| a == arch),
            "the bundle is for {} and this device is {arch}",
            self.compatible.architectures.join(", ")
        );
        if !self.compatible.boards.is_empty() {
            let Some(board) = board else {
                bail!("the bundle is for boards {} and this device has no board name configured", self.compatible.boards.join(", "))
            };
            ensure!(
                self.compatible.boards.iter().any(|b| b == board),
                "the bundle is for boards {} and this device is {board}",
                self.compatible.boards.join(", ")
            );
        }
        ensure!(
            version_tuple(berth_version)? >= version_tuple(&self.min_berth)?,
            "the bundle needs berth {} or newer; this is berth {berth_version}",
            self.min_berth
        );
        Ok(())
    }
}

/// A member name inside the bundle: relative, no `..`, no empty or `.` parts.
pub fn check_member_path(path: &str) -> Result<()> {
    let ok = !path.is_empty()
        && !path.starts_with('/')
        && path.split('/').all(|p| !p.is_empty() && p != "." && p != "..")
        && !path.contains('\0');
    ensure!(ok, "bundle member {path:?} escapes its folder or is not a plain relative path");
    Ok(())
}

fn version_tuple(v: &str) -> Result<(u64, u64, u64)> {
    let core = v.split(['-', '+']).next().unwrap_or_default();
    let mut parts = core.split('.').map(|p| p.parse::<u64>());
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(Ok(a)), Some(Ok(b)), Some(Ok(c)), None) => Ok((a, b, c)),
        _ => bail!("{v:?} is not a MAJOR.MINOR.PATCH version"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            format: FORMAT,
            version: 3,
            created: "2026-12-03T00:00:00Z".into(),
            compatible: Compatible { architectures: vec!["arm64".into()], boards: vec!["rpi4".into()] },
            min_berth: "0.1.0".into(),
            app: App::from_toml("[containers.web]\nimage = \"a:1\"\n").unwrap(),
            images: vec![],
            files: vec![],
            delta_base: None,
        }
    }

    #[test]
    fn compatibility_is_checked_with_reasons() {
        let m = manifest();
        m.check_compatible("arm64", Some("rpi4"), "0.1.0").unwrap();
        let e = |r: Result<()>| format!("{:#}", r.unwrap_err());
        assert!(e(m.check_compatible("amd64", Some("rpi4"), "0.1.0")).contains("is amd64"));
        assert!(e(m.check_compatible("arm64", Some("rpi5"), "0.1.0")).contains("is rpi5"));
        assert!(e(m.check_compatible("arm64", None, "0.1.0")).contains("no board name"));
        let mut newer = m.clone();
        newer.min_berth = "0.10.0".into();
        assert!(e(newer.check_compatible("arm64", Some("rpi4"), "0.9.9")).contains("needs berth 0.10.0"));
    }

    #[test]
    fn member_paths_stay_inside() {
        for bad in ["../x", "/etc/passwd", "blobs/../../x", "a//b", "./a", ""] {
            assert!(check_member_path(bad).is_err(), "{bad}");
        }
        check_member_path("blobs/sha256/ab").unwrap();
    }

    #[test]
    fn unknown_formats_and_fields_are_refused() {
        let mut m = serde_json::to_value(manifest()).unwrap();
        m["format"] = 2.into();
        assert!(format!("{:#}", Manifest::parse(m.to_string().as_bytes()).unwrap_err()).contains("format 2"));
        m["format"] = 1.into();
        m["surprise"] = true.into();
        assert!(Manifest::parse(m.to_string().as_bytes()).is_err());
    }
}
