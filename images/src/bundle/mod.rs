//! Signed image bundles: how devices in the field get new software.
//!
//! A bundle is one uncompressed tar file, read front to back:
//!
//! ```text
//! bundle.json        the manifest (Manifest): versions, compatibility, the application, and
//!                    the sha256 and size of every other member
//! bundle.sig         a detached ed25519 signature over bundle.json's exact bytes (Signature)
//! oci-layout         an OCI image layout holding the application's images:
//! index.json           one image manifest per image, named by io.containerd.image.name
//! blobs/sha256/...     image manifests, configs, uncompressed layer tars
//! ```
//!
//! The manifest and its signature come first, so a reader checks the signature before it looks
//! at anything else, and then each member against the signed list while it streams: every byte
//! of a bundle is covered. A delta bundle leaves out blobs its base bundle had (listed with
//! `in_base`); installing it needs those layers on the device already.

pub mod app;
pub mod keys;
pub mod manifest;
pub mod verify;
pub mod write;

pub use app::App;
pub use keys::{KeyPair, Trust, TrustedKey};
pub use manifest::{Manifest, Signature};
pub use verify::{verify_file, Verified};

/// The first two members of every bundle, in this order.
pub const MANIFEST: &str = "bundle.json";
pub const SIGNATURE: &str = "bundle.sig";
/// Limits on the two small members, read into memory before anything is trusted.
pub const MAX_MANIFEST: u64 = 1 << 20;
pub const MAX_SIGNATURE: u64 = 4096;
/// The fixed content of an OCI layout's `oci-layout` file.
pub const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
