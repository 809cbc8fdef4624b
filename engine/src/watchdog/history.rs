//! The supervisor's restart history: why the daemon was restarted, when, how it ended and how
//! long the supervisor waited. Written durably (temp file, fsync, rename, directory fsync) at
//! each restart only, and kept to the last [`KEEP`] entries.

use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

const KEEP: usize = 200;

/// Set by the supervisor for the daemon it runs: where the history is, for `info`.
pub const STATE_DIR_ENV: &str = "BERTH_SUPERVISOR_STATE_DIR";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub at: String,
    /// `exited`, `hung` (no heartbeat), `not ready` (none within the start timeout).
    pub reason: String,
    /// How the daemon ended (exit code or signal).
    pub status: String,
    /// The wait before the next start, in milliseconds.
    pub delay_ms: u64,
}

pub struct History {
    path: PathBuf,
    pub entries: Vec<Entry>,
}

impl History {
    pub fn file(state_dir: &Path) -> PathBuf {
        state_dir.join("history.json")
    }

    /// Reads the history (empty when there is none, or it cannot be read: it is a log for
    /// people, not state anything depends on).
    pub fn load(state_dir: &Path) -> Self {
        let path = Self::file(state_dir);
        let entries = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        History { path, entries }
    }

    /// `info`'s view: restarts recorded and the last few, or `null` when the daemon does not
    /// run under `berth supervise`.
    pub fn for_info() -> serde_json::Value {
        let Some(dir) = std::env::var_os(STATE_DIR_ENV) else { return serde_json::Value::Null };
        let h = Self::load(Path::new(&dir));
        let recent = &h.entries[h.entries.len().saturating_sub(5)..];
        serde_json::json!({"StateDir": Path::new(&dir), "Restarts": h.entries.len(), "Recent": recent})
    }

    pub fn push(&mut self, e: Entry) -> Result<()> {
        self.entries.push(e);
        let drop = self.entries.len().saturating_sub(KEEP);
        self.entries.drain(..drop);
        berth_images::durable::write_file_mode(&self.path, &serde_json::to_vec_pretty(&self.entries)?, 0o644)
    }
}
