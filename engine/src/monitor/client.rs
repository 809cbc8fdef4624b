//! The daemon's side of a monitor's control socket (the protocol is in `control`).

use anyhow::{bail, Context, Result};
use std::path::Path;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// Sends one command and reads its one-line answer. The stream is handed back for
/// commands that go on (`stdin`).
async fn ask(socket: &Path, command: &str) -> Result<(String, UnixStream)> {
    let mut s = UnixStream::connect(socket).await.with_context(|| format!("connecting to the monitor at {}", socket.display()))?;
    s.write_all(format!("{command}\n").as_bytes()).await.context("writing to the monitor")?;
    // Byte by byte: nothing after the answer line may be taken from the stream.
    let mut line = Vec::new();
    let mut reader = BufReader::with_capacity(1, &mut s);
    reader.read_until(b'\n', &mut line).await.context("reading the monitor's answer")?;
    let answer = String::from_utf8_lossy(&line).trim().to_string();
    if let Some(e) = answer.strip_prefix("err ") {
        bail!("{e}");
    }
    if !answer.starts_with("ok") && !answer.starts_with("running") {
        bail!("unexpected answer from the monitor: {answer:?}");
    }
    Ok((answer, s))
}

/// A stream into the container's stdin.
pub async fn stdin(socket: &Path) -> Result<UnixStream> {
    Ok(ask(socket, "stdin").await?.1)
}

pub async fn resize(socket: &Path, rows: u16, cols: u16) -> Result<()> {
    ask(socket, &format!("resize {rows} {cols}")).await.map(|_| ())
}
