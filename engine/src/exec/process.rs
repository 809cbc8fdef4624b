//! Running one exec process: `<runtime> exec --process <file>` in the foreground, so the
//! runtime's exit status is the process's.
//!
//! Without a TTY the process's stdio are pipes the daemon reads. With one, the daemon gives
//! the runtime a pseudo-terminal as its stdio; the runtime sets it raw, makes the container's
//! own terminal, copies between the two, and on SIGWINCH copies our size to the container's.

use super::ExecConfig;
use crate::api::hijack::Input;
use crate::config::Runtime;
use crate::util::pty::{self, Master, Size};
use anyhow::{Context, Result};
use bytes::Bytes;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

/// What the runtime needs to reach the container.
pub struct Launch {
    pub container_id: String,
    pub bundle: PathBuf,
    pub runtime: Runtime,
    pub runtime_root: PathBuf,
}

/// A started exec.
pub struct Started {
    /// Multiplexed frames, or raw bytes with a TTY. Ends after the exit is recorded.
    pub output: mpsc::Receiver<Bytes>,
    pub input: Option<Input>,
    pub terminal: Option<Master>,
    pub runtime_pid: i32,
    pub pid_file: PathBuf,
}

/// The process section of the container's own spec, changed as the exec asks.
fn process_spec(bundle: &Path, cfg: &ExecConfig) -> Result<Value> {
    let spec: Value = serde_json::from_slice(&std::fs::read(bundle.join("config.json")).context("reading the container's config.json")?)
        .context("decoding the container's config.json")?;
    let mut p = spec["process"].clone();
    p["args"] = serde_json::json!(cfg.cmd.clone().unwrap_or_default());
    p["terminal"] = Value::Bool(cfg.tty);
    let mut env: Vec<String> = serde_json::from_value(p["env"].take()).unwrap_or_default();
    for e in &cfg.env {
        let key = e.split('=').next().unwrap_or(e);
        env.retain(|x| x.split('=').next() != Some(key));
        env.push(e.clone());
    }
    p["env"] = serde_json::json!(env);
    if !cfg.working_dir.is_empty() {
        p["cwd"] = Value::String(cfg.working_dir.clone());
    }
    if !cfg.user.is_empty() {
        let rootfs = spec["root"]["path"].as_str().context("config.json has no root path")?;
        let u = crate::containers::user::resolve(Path::new(rootfs), &cfg.user)?;
        p["user"]["uid"] = u.uid.into();
        p["user"]["gid"] = u.gid.into();
        p["user"]["additionalGids"] = serde_json::json!(u.additional_gids);
    }
    if cfg.privileged {
        let all = crate::runtime::spec::capabilities(&["ALL".into()], &[])?;
        p["capabilities"] = serde_json::json!({"bounding": all, "effective": all, "permitted": all});
    }
    Ok(p)
}

/// Reads `src` to its end, sending each chunk through `wrap`.
/// The line ends of a terminal's output as Docker gives them: every `\n` as `\r\n`.
///
/// A foreground `runc exec -t` clears ONLCR on the container's terminal once it has it, so
/// output written before that arrives as `\r\n` and output after as `\n`. Translating only
/// a `\n` that is not already preceded by `\r` makes both `\r\n`, whatever the timing.
#[derive(Default)]
struct LineEnds {
    after_cr: bool,
}

impl LineEnds {
    fn translate(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + data.len() / 16);
        for &b in data {
            if b == b'\n' && !self.after_cr {
                out.push(b'\r');
            }
            out.push(b);
            self.after_cr = b == b'\r';
        }
        out
    }
}

async fn pump(mut src: impl AsyncRead + Unpin, tx: mpsc::Sender<Bytes>, mut wrap: impl FnMut(&[u8]) -> Bytes) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match src.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                // A departed client does not stop the reading: the process must not block
                // on a full pipe.
                let _ = tx.send(wrap(&buf[..n])).await;
            }
        }
    }
}

pub async fn start(
    exec_id: &str,
    cfg: &ExecConfig,
    launch: Launch,
    attach_stdin: bool,
    raw: bool,
    on_exit: impl FnOnce(i32) + Send + 'static,
) -> Result<Started> {
    let short = &exec_id[..12];
    let process_file = launch.bundle.join(format!("exec-{short}.json"));
    let pid_file = launch.bundle.join(format!("exec-{short}.pid"));
    let log_file = launch.bundle.join(format!("exec-{short}.log"));
    let spec = process_spec(&launch.bundle, cfg)?;
    std::fs::write(&process_file, serde_json::to_vec(&spec)?).with_context(|| format!("writing {}", process_file.display()))?;
    let mut cmd = tokio::process::Command::from(crate::runtime::invocation(
        &launch.runtime.path,
        &launch.runtime.args,
        &launch.runtime_root,
        Some(&log_file),
    ));
    cmd.arg("exec").arg("--process").arg(&process_file).arg("--pid-file").arg(&pid_file);
    if cfg.tty {
        cmd.arg("--tty");
    }
    cmd.arg(&launch.container_id);
    let (tx, output) = mpsc::channel::<Bytes>(16);
    let mut pumps = Vec::new();
    let (mut child, input, terminal): (_, Option<Input>, _) = if cfg.tty {
        let size = cfg.console_size.map(|[rows, cols]| Size { rows, cols }).filter(|s| s.rows > 0 && s.cols > 0);
        let (master, slave) = pty::open(size.or(Some(Size { rows: 24, cols: 80 })))?;
        cmd.stdin(Stdio::from(slave.try_clone()?)).stdout(Stdio::from(slave.try_clone()?)).stderr(Stdio::from(slave));
        let child = cmd.spawn().with_context(|| format!("starting {} exec", launch.runtime.path))?;
        drop(cmd); // our copies of the slave: the master reads EOF once the runtime is gone
        let master = Master::new(master)?;
        let mut ends = LineEnds::default();
        let wrap = move |b: &[u8]| {
            let b = ends.translate(b);
            if raw {
                Bytes::from(b)
            } else {
                crate::api::body::mux_frame(1, &b)
            }
        };
        pumps.push(tokio::spawn(pump(master.clone(), tx.clone(), wrap)));
        let input: Option<Input> = attach_stdin.then(|| Box::pin(master.clone()) as Input);
        (child, input, Some(master))
    } else {
        cmd.stdin(if attach_stdin { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().with_context(|| format!("starting {} exec", launch.runtime.path))?;
        let (out, err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let wrap = move |stream: u8| move |b: &[u8]| if raw { Bytes::copy_from_slice(b) } else { crate::api::body::mux_frame(stream, b) };
        pumps.push(tokio::spawn(pump(out, tx.clone(), wrap(1))));
        pumps.push(tokio::spawn(pump(err, tx.clone(), wrap(2))));
        let input = child.stdin.take().map(|s| Box::pin(s) as Input);
        (child, input, None)
    };
    let runtime_pid = child.id().map(|p| p as i32).unwrap_or(0);
    let files = [process_file, log_file.clone()];
    let pid_file2 = pid_file.clone();
    tokio::spawn(async move {
        let status = child.wait().await;
        for p in pumps {
            let _ = p.await;
        }
        let code = match status {
            Ok(s) => s.code().unwrap_or_else(|| 128 + std::os::unix::process::ExitStatusExt::signal(&s).unwrap_or(0)),
            Err(_) => 255,
        };
        // The runtime's own failure (the command could not be started) is told apart from
        // the process's exit by its log, and reported with Docker's codes.
        let code = match crate::runtime::last_error(&log_file) {
            // (The runtime has printed the message on the process's stderr already.)
            Some(msg) if code != 0 => crate::runtime::start_failure_code(&msg).unwrap_or(126),
            _ => code,
        };
        on_exit(code);
        for f in files.iter().chain([&pid_file2]) {
            let _ = std::fs::remove_file(f);
        }
        drop(tx);
    });
    Ok(Started { output, input, terminal, runtime_pid, pid_file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ends_come_out_once_translated_whatever_the_timing() {
        let mut e = LineEnds::default();
        // Before runc cleared ONLCR (already \r\n), then after (bare \n), split anywhere.
        let mut out = e.translate(b"hello out\r");
        out.extend(e.translate(b"\nhello err\n"));
        out.extend(e.translate(b"a\n\nb"));
        assert_eq!(out, b"hello out\r\nhello err\r\na\r\n\r\nb");
    }
}
