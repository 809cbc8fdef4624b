//! The OCI runtime side: the runtime spec a container runs with, signals to the container's
//! process, and the runtime verbs the daemon itself runs (`delete`, `pause`, `resume`); the
//! container's start and wait belong to the monitor.

pub mod hooks;
pub mod resources;
pub mod signal;
pub mod spec;

use std::path::{Path, PathBuf};

/// runc's `--root` for berth's containers, kept apart from any other engine's.
pub fn runtime_root(exec_root: &Path, runtime: &str) -> PathBuf {
    exec_root.join(format!("runtime-{runtime}"))
}

/// Runs `<runtime> [runtime args] --root <its root> <verb...>` through the one command runner.
pub async fn command(exec_root: &Path, rt: &crate::config::Runtime, verb: &[&str]) -> anyhow::Result<Vec<u8>> {
    let root = runtime_root(exec_root, &rt.name).display().to_string();
    let mut args: Vec<&str> = rt.args.iter().map(String::as_str).collect();
    args.extend(["--root", root.as_str()]);
    args.extend_from_slice(verb);
    crate::util::command::run(&rt.path, &args, std::time::Duration::from_secs(30)).await
}

/// `<runtime> [runtime args] --root <root> [--log <log> --log-format json]`: the start of
/// every runtime command line the monitor and the exec runner build.
pub fn invocation(path: &str, args: &[String], root: &Path, log: Option<&Path>) -> std::process::Command {
    let mut cmd = std::process::Command::new(path);
    cmd.args(args).arg("--root").arg(root);
    if let Some(log) = log {
        cmd.arg("--log").arg(log).args(["--log-format", "json"]);
    }
    cmd
}

/// Docker's exit code for a process the runtime could not start, from the runtime's message:
/// 127 when the command is missing, 126 when it cannot be run; `None` when the message says
/// neither.
pub fn start_failure_code(msg: &str) -> Option<i32> {
    if msg.contains("executable file not found") || msg.contains("no such file or directory") {
        Some(127)
    } else if msg.contains("permission denied") {
        Some(126)
    } else {
        None
    }
}

/// The last error the runtime wrote to its `--log` file (JSON lines).
pub fn last_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["level"] == "error" || v["level"] == "fatal")
        .find_map(|v| v["msg"].as_str().map(String::from))
}
