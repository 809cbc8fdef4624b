//! The volume record and a container's mount list (both in the state store).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A named or anonymous volume of the `local` driver: a directory under
/// `<data-root>/volumes/<name>/_data`, or a device mounted there (`-o type=,device=,o=`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    pub created: String,
    /// Made for one container (`-v /path`, an image's VOLUME): `rm -v` removes it with it.
    pub anonymous: bool,
    pub labels: BTreeMap<String, String>,
    /// The local driver's mount options (`type`, `device`, `o`).
    pub options: BTreeMap<String, String>,
}

impl crate::state::Record for Volume {
    const TABLE: &'static str = "volumes";
    const VERSION: u8 = 1;
}

/// Where a mount comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Source {
    Bind(PathBuf),
    Volume(String),
    /// tmpfs options (`size=64m`, `mode=1777`, ...).
    Tmpfs(Vec<String>),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MountPoint {
    pub destination: String,
    pub source: Source,
    pub rw: bool,
    /// Do not copy the image's content into an empty new volume.
    pub nocopy: bool,
    /// Bind propagation (`rprivate` unless asked).
    pub propagation: String,
}

/// A container's mounts, written with the container in one transaction.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ContainerMounts(pub Vec<MountPoint>);

impl crate::state::Record for ContainerMounts {
    const TABLE: &'static str = "mounts";
    const VERSION: u8 = 1;
}

/// Docker's rule for volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphanumeric() && b.iter().all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}
