//! OCI and Docker images for berth.
//!
//! # Layout
//! - [`digest`]: the `sha256:<hex>` newtype and a hashing reader that verifies while it streams.
//! - [`reference`]: image names (`busybox`, `registry:5000/a/b:tag`, `name@sha256:...`) and
//!   Docker's normalisation (`docker.io/library/...`).
//! - [`config`]: the image configuration JSON (Docker's superset of OCI's), and chain ids.
//! - [`archive`]: reading `docker save` archives and OCI image layouts from a tar file.
//! - [`unpack`]: applying a layer tar to a directory, refusing entries that escape it and
//!   translating whiteouts into overlayfs' form.
//! - [`tarsplit`]: a layer tar's layout kept beside its unpacked directory, so the exact tar
//!   (and its `diff_id`) can be rebuilt for `save` and `push`.
//! - [`registry`]: the registry protocol as data: manifests, indexes, platforms, auth
//!   challenges.
//! - [`durable`]: the one place where files that must survive a power cut are written.
//!
//! Nothing here knows about the daemon: the engine stores what this crate parses.

pub mod archive;
pub mod bundle;
pub mod config;
pub mod digest;
pub mod dockerfile;
pub mod durable;
pub mod duration;
pub mod reference;
pub mod registry;
pub mod tarsplit;
pub mod unpack;

pub use config::ImageConfig;
pub use digest::Digest;
pub use reference::Reference;
