//! The one runner for external tools (runc, mkfs, lvm ...): logs the command line, enforces a
//! timeout, and on failure returns an error carrying the command line and its stderr.

use anyhow::{bail, Context, Result};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

/// Runs `program args...` and returns its stdout.
pub async fn run(program: &str, args: &[&str], timeout: Duration) -> Result<Vec<u8>> {
    let line = format!("{program} {}", args.join(" "));
    tracing::debug!(command = %line, "running");
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting `{line}`"))?;
    let out = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .with_context(|| format!("`{line}` did not finish within {timeout:?}"))?
        .with_context(|| format!("waiting for `{line}`"))?;
    checked(&line, out)
}

/// [`run`] for blocking code (storage drivers run off the async reactor). For tools whose
/// output fits in a pipe (64 KiB: mkfs, lvm): it is read after the exit.
pub fn run_blocking(program: &str, args: &[&str], timeout: Duration) -> Result<Vec<u8>> {
    let line = format!("{program} {}", args.join(" "));
    tracing::debug!(command = %line, "running");
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting `{line}`"))?;
    let deadline = std::time::Instant::now() + timeout;
    while child.try_wait().with_context(|| format!("waiting for `{line}`"))?.is_none() {
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("`{line}` did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    checked(&line, child.wait_with_output().with_context(|| format!("waiting for `{line}`"))?)
}

fn checked(line: &str, out: std::process::Output) -> Result<Vec<u8>> {
    if !out.status.success() {
        bail!("`{line}` failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(out.stdout)
}
