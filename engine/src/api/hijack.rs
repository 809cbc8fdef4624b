//! Hijacked connections (`attach`, `exec start`): the 101 answer, the detach keys, and the
//! relay between the client and a process's streams.
//!
//! The client's bytes go to the process's stdin until the client closes its side (stdin is
//! then closed) or types the detach keys (the connection ends, the process runs on). The
//! process's output goes to the client until it ends.

use super::body::{empty, Response};
use super::error::{ApiError, ApiResult};
use super::router::Ctx;
use crate::util::pty::Size;
use bytes::Bytes;
use hyper::StatusCode;
use std::pin::Pin;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Where a process's stdin goes.
pub type Input = Pin<Box<dyn AsyncWrite + Send>>;

/// Docker's default: ctrl-p, ctrl-q.
pub const DEFAULT_DETACH_KEYS: &[u8] = &[16, 17];

/// Parses Docker's detach-key syntax: a comma-separated list of single characters or
/// `ctrl-<c>` with `<c>` one of `a-z @ [ \ ] ^ _`. Empty means the default.
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>, ApiError> {
    if s.is_empty() {
        return Ok(DEFAULT_DETACH_KEYS.to_vec());
    }
    let bad = || ApiError::bad_request(format!("Invalid detach keys ({s}) provided"));
    s.split(',')
        .map(|k| {
            if let Some(c) = k.strip_prefix("ctrl-") {
                match c.as_bytes() {
                    [b @ b'a'..=b'z'] => Ok(b - b'a' + 1),
                    [b @ (b'@' | b'[' | b'\\' | b']' | b'^' | b'_')] => Ok(b - b'@'),
                    _ => Err(bad()),
                }
            } else {
                match k.as_bytes() {
                    [b] if b.is_ascii() => Ok(*b),
                    _ => Err(bad()),
                }
            }
        })
        .collect()
}

/// Finds the detach sequence in a byte stream that may split it across reads. Bytes that
/// could start the sequence are held back until it is clear they do not.
pub struct DetachScanner {
    keys: Vec<u8>,
    held: usize,
}

impl DetachScanner {
    pub fn new(keys: Vec<u8>) -> Self {
        DetachScanner { keys, held: 0 }
    }

    /// The bytes to pass on, and whether the sequence was completed (nothing after it is
    /// passed on).
    pub fn feed(&mut self, data: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(data.len());
        if self.keys.is_empty() {
            out.extend_from_slice(data);
            return (out, false);
        }
        for &b in data {
            if b == self.keys[self.held] {
                self.held += 1;
                if self.held == self.keys.len() {
                    return (out, true);
                }
            } else {
                out.extend_from_slice(&self.keys[..self.held]);
                self.held = 0;
                if b == self.keys[0] {
                    self.held = 1;
                    if self.keys.len() == 1 {
                        return (out, true);
                    }
                } else {
                    out.push(b);
                }
            }
        }
        (out, false)
    }
}

/// The `h` and `w` of a resize request.
pub fn terminal_size(ctx: &Ctx) -> ApiResult<Size> {
    let get = |k: &str| -> ApiResult<u16> {
        let v = ctx.q.int(k)?.ok_or_else(|| ApiError::bad_request(format!("{k} is required")))?;
        u16::try_from(v).map_err(|_| ApiError::bad_request(format!("invalid {k} {v}")))
    };
    Ok(Size { rows: get("h")?, cols: get("w")? })
}

/// The 101 answer that hands the connection over to the stream protocol.
pub fn switching_protocols(content_type: &'static str) -> Response {
    hyper::Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("Content-Type", content_type)
        .header("Connection", "Upgrade")
        .header("Upgrade", "tcp")
        .body(empty())
        .unwrap()
}

/// How a relay ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The output ended (the process exited, or the attach's run did).
    Output,
    /// The client typed the detach keys or went away.
    Detached,
}

/// Relays until the output ends or the client detaches. `output` carries ready-made chunks
/// (multiplexed frames or raw terminal bytes); it is left open on detach so the caller can
/// keep draining it. `input` resolves to stdin once it can take bytes (an attach made before
/// the start waits for the container); the client is not read before.
pub async fn relay<S, I>(client: S, output: &mut mpsc::Receiver<Bytes>, input: I, detach_keys: Vec<u8>) -> Ended
where
    S: AsyncRead + AsyncWrite + Send + 'static,
    I: std::future::Future<Output = Option<Input>> + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(client);
    let (detach_tx, mut detached) = tokio::sync::oneshot::channel::<()>();
    let pump = tokio::spawn(async move {
        let mut scan = DetachScanner::new(detach_keys);
        let mut input = input.await;
        let mut buf = vec![0u8; 8192];
        loop {
            let n = match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let (pass, detach) = scan.feed(&buf[..n]);
            if let Some(w) = input.as_mut() {
                if !pass.is_empty() && w.write_all(&pass).await.is_err() {
                    input = None;
                }
            }
            if detach {
                let _ = detach_tx.send(());
                return;
            }
        }
        // The client closed its side: stdin ends here (EOF for the process).
        if let Some(mut w) = input {
            let _ = w.shutdown().await;
        }
        // Keep the sender alive: the client closing its write side is not a detach.
        std::future::pending::<()>().await;
    });
    let ended = loop {
        tokio::select! {
            chunk = output.recv() => match chunk {
                Some(b) => {
                    if wr.write_all(&b).await.is_err() {
                        break Ended::Detached;
                    }
                }
                None => break Ended::Output,
            },
            _ = &mut detached => break Ended::Detached,
        }
    };
    pump.abort();
    let _ = wr.flush().await;
    let _ = wr.shutdown().await;
    ended
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_like_docker() {
        assert_eq!(parse_detach_keys("").unwrap(), vec![16, 17]);
        assert_eq!(parse_detach_keys("ctrl-a,x").unwrap(), vec![1, b'x']);
        assert_eq!(parse_detach_keys("ctrl-@,ctrl-_").unwrap(), vec![0, 31]);
        assert!(parse_detach_keys("ctrl-1").is_err());
        assert!(parse_detach_keys("ab").is_err());
    }

    #[test]
    fn scanner_holds_partial_sequences_and_releases_them() {
        let mut s = DetachScanner::new(vec![16, 17]);
        assert_eq!(s.feed(b"ab\x10"), (b"ab".to_vec(), false));
        // The held ctrl-p turns out not to start the sequence: it is passed on.
        assert_eq!(s.feed(b"c"), (b"\x10c".to_vec(), false));
        assert_eq!(s.feed(b"\x10\x10"), (b"\x10".to_vec(), false));
        assert_eq!(s.feed(b"\x11rest"), (vec![], true));
        let mut one = DetachScanner::new(vec![16]);
        assert_eq!(one.feed(b"x\x10y"), (b"x".to_vec(), true));
    }
}
