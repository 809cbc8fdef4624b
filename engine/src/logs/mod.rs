//! The json-file log format: one JSON object per line, `{"log":"...\n","stream":"stdout",
//! "time":"<RFC 3339 nanoseconds>"}`, as Docker writes it, so existing tools read it. Monitors
//! write it ([`writer`]); the daemon reads it for `logs` and `attach` ([`reader`]).
//!
//! Rotation: `<id>-json.log` is the current file, `.1`, `.2` ... older ones, up to `max-file`
//! files in all, each at most `max-size` bytes.

pub mod reader;
pub mod writer;

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One log record.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// Docker splits longer lines into partial records of this size.
pub const MAX_LINE: usize = 16 * 1024;

/// The log files of a container, oldest first.
pub fn files(path: &Path, max_file: u32) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = (1..max_file.max(1)).rev().map(|n| rotated(path, n)).filter(|p| p.exists()).collect();
    out.push(path.to_path_buf());
    out
}

pub fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}
