//! The OCI runtime side: the runtime spec a container runs with, and signals to the
//! container's process. The runtime binary itself (runc) is run by the monitor.

pub mod signal;
pub mod spec;

use std::path::{Path, PathBuf};

/// runc's `--root` for berth's containers, kept apart from any other engine's.
pub fn runtime_root(exec_root: &Path, runtime: &str) -> PathBuf {
    exec_root.join(format!("runtime-{runtime}"))
}
