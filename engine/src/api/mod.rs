//! The Docker-compatible HTTP API.
//!
//! - [`listen`]: unix sockets and systemd-activated descriptors.
//! - [`router`]: version prefixes, method + path to handler.
//! - [`system`], [`containers`], [`images`]: handlers; [`streams`]: logs and attach.
//! - [`error`]: engine errors to HTTP statuses (the only place that decides them).
//! - [`body`], [`query`]: bodies, JSON and uploads, query strings.

pub mod body;
mod build;
mod bundles;
mod containers;
pub mod error;
mod events;
mod exec;
pub mod hijack;
mod images;
pub mod limits;
pub mod listen;
mod networks;
pub mod query;
mod registry_headers;
mod router;
mod stats;
mod streams;
mod system;
mod volumes;

pub use router::serve;
