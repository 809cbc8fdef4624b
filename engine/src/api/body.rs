//! Response bodies: whole JSON documents, and streams fed through a channel (logs, JSON
//! progress, wait results) so the headers leave before the content exists.

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

pub type ResBody = BoxBody<Bytes, std::io::Error>;
pub type Response = hyper::Response<ResBody>;

pub fn full(data: impl Into<Bytes>) -> ResBody {
    Full::new(data.into()).map_err(|never| match never {}).boxed()
}

pub fn empty() -> ResBody {
    full(Bytes::new())
}

/// A body whose chunks come from a channel; it ends when every sender is dropped.
pub struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.rx.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b))))
    }
}

/// A streaming body and the sender that feeds it. The small buffer gives back-pressure: a
/// slow client slows the producer instead of growing the daemon's memory.
pub fn channel() -> (mpsc::Sender<Bytes>, ResBody) {
    let (tx, rx) = mpsc::channel(16);
    (tx, ChannelBody { rx }.boxed())
}

/// A body fed by a blocking producer through [`BodyWriter`]. An error from the producer
/// aborts the response (the client sees a broken transfer, not a clean but short end).
struct FallibleBody {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
}

impl Body for FallibleBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.rx.poll_recv(cx).map(|c| c.map(|r| r.map(Frame::data)))
    }
}

/// `std::io::Write` into a response body, from a blocking thread: 64 KiB chunks, back-pressure
/// from the client through the channel's small buffer.
pub struct BodyWriter {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

const WRITER_CHUNK: usize = 64 * 1024;

impl BodyWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(WRITER_CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"))
    }

    /// Ends the body with an error instead of a clean end.
    pub fn fail(mut self, e: &anyhow::Error) {
        self.buf.clear();
        let _ = self.tx.blocking_send(Err(std::io::Error::other(format!("{e:#}"))));
    }
}

impl std::io::Write for BodyWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= WRITER_CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

impl Drop for BodyWriter {
    fn drop(&mut self) {
        let _ = self.send();
    }
}

/// A streaming body whose producer can end it with an error.
pub fn fallible_channel() -> (mpsc::Sender<std::io::Result<Bytes>>, ResBody) {
    let (tx, rx) = mpsc::channel(8);
    (tx, FallibleBody { rx }.boxed())
}

/// A streaming body written by a blocking producer.
pub fn writer() -> (BodyWriter, ResBody) {
    let (tx, rx) = mpsc::channel(8);
    (BodyWriter { tx, buf: Vec::with_capacity(WRITER_CHUNK) }, FallibleBody { rx }.boxed())
}

/// One frame of Docker's multiplexed stream: `[stream, 0, 0, 0, len (u32 BE)]` + payload.
pub fn mux_frame(stream: u8, payload: &[u8]) -> Bytes {
    let mut v = Vec::with_capacity(8 + payload.len());
    v.push(stream);
    v.extend_from_slice(&[0, 0, 0]);
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    Bytes::from(v)
}

#[cfg(test)]
mod tests {
    #[test]
    fn frame_header_is_docker_shaped() {
        let f = super::mux_frame(2, b"hi");
        assert_eq!(&f[..], &[2, 0, 0, 0, 0, 0, 0, 2, b'h', b'i']);
    }
}
