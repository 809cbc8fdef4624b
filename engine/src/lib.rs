#![recursion_limit = "256"]
//! berth: a container engine for edge devices. One binary, four roles (see README.md):
//! the CLI, the daemon, a per-container monitor and (later) the watchdog supervisor.
//!
//! # Layout
//! - [`config`]: `daemon.json` plus flags, validated once at start.
//! - [`state`]: the record store every subsystem persists through (durable writes).
//! - [`images`]: the daemon's image store: records, references, `load` and `import`.
//! - [`storage`]: storage drivers (overlay2; vfs where overlayfs is missing).
//! - [`containers`]: the container model (state machine enum) and its operations.
//! - [`network`]: bridge networks, addresses, published ports (nftables), embedded DNS.
//! - [`cgroups`]: a container's cgroups (v1 and v2), read for `stats` and `top`.
//! - [`runtime`]: the OCI runtime (runc) command lines and the runtime spec.
//! - [`monitor`]: the per-container monitor role: parent of the container, owner of its stdio
//!   and logs, recorder of its exit status. It outlives the daemon.
//! - [`exec`]: exec instances: extra processes in running containers.
//! - [`init`]: the minimal init run as PID 1 of `--init` containers.
//! - [`logs`]: the json-file log format, written by monitors and read by the daemon.
//! - [`api`]: the Docker-compatible HTTP API: listeners, routing, handlers, errors.
//! - [`cli`]: the command-line client role.
//! - [`daemon`]: wiring: start-up (open, recover), serving, shutdown.
//! - [`check`]: `berth system check`, the offline look at the state.
//! - [`volumes`]: volumes of the local driver, binds, tmpfs: the mounts a container gets.
//! - [`watchdog`]: the daemon's heartbeat (sd_notify), `berth supervise`, the hardware watchdog.
//! - [`util`]: ids, time formatting, the external-command runner.

pub mod api;
pub mod audit;
pub mod board;
pub mod build;
pub mod bundles;
pub mod cgroups;
pub mod check;
pub mod cli;
pub mod config;
pub mod containers;
pub mod daemon;
pub mod events;
pub mod exec;
pub mod images;
pub mod init;
pub mod kconfig;
pub mod logs;
pub mod monitor;
pub mod network;
pub mod runtime;
pub mod state;
pub mod storage;
pub mod tls;
pub mod util;
pub mod volumes;
pub mod watchdog;

/// The engine version reported by `/version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The highest Docker Engine API version served.
pub const API_VERSION: &str = "1.45";
/// The lowest Docker Engine API version accepted.
pub const MIN_API_VERSION: &str = "1.24";
