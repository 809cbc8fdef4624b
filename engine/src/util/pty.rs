//! Pseudo-terminals: allocating a pair with a size, resizing it, and the master side as an
//! async reader/writer for the daemon's single-threaded runtime.

use anyhow::{Context, Result};
use nix::pty::{openpty, Winsize};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context as TaskContext, Poll};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A terminal size in character cells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    pub rows: u16,
    pub cols: u16,
}

impl Size {
    fn winsize(self) -> Winsize {
        Winsize { ws_row: self.rows, ws_col: self.cols, ws_xpixel: 0, ws_ypixel: 0 }
    }
}

/// A new pair: (master, slave). The master is non-blocking and close-on-exec; the slave is
/// what a child gets as its stdio. The pair starts raw: it relays, and the terminal that
/// echoes and translates is the container's own.
pub fn open(size: Option<Size>) -> Result<(OwnedFd, OwnedFd)> {
    use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, OutputFlags, SetArg};
    let ws = size.map(Size::winsize);
    let pair = openpty(ws.as_ref(), None).context("allocating a pseudo-terminal")?;
    let mut t = tcgetattr(&pair.slave).context("reading the pty's modes")?;
    cfmakeraw(&mut t);
    // A foreground `runc exec -t` turns output processing back on for its terminal (it keeps
    // OPOST when it makes it raw): without ONLCR that still translates nothing.
    t.output_flags.remove(OutputFlags::ONLCR);
    tcsetattr(&pair.slave, SetArg::TCSANOW, &t).context("making the pty raw")?;
    use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
    fcntl(pair.master.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).context("making the pty master non-blocking")?;
    fcntl(pair.master.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).context("pty master close-on-exec")?;
    Ok((pair.master, pair.slave))
}

nix::ioctl_write_ptr_bad!(set_winsize, libc::TIOCSWINSZ, Winsize);

/// Sets the size of the terminal `fd` belongs to (either side).
pub fn resize(fd: &impl AsRawFd, size: Size) -> Result<()> {
    let ws = size.winsize();
    // SAFETY: TIOCSWINSZ reads one `struct winsize` from the pointer, which lives across the call.
    unsafe { set_winsize(fd.as_raw_fd(), &ws) }.context("setting the terminal size")?;
    Ok(())
}

/// The master side, readable and writable from async code. Clones share the descriptor, so
/// one task can read while another writes.
#[derive(Clone)]
pub struct Master {
    fd: Arc<AsyncFd<std::fs::File>>,
}

impl Master {
    pub fn new(master: OwnedFd) -> Result<Self> {
        // SAFETY: the File owns the descriptor and is owned by the AsyncFd, so it stays open and
        // the same for the AsyncFd's whole life.
        let fd =
            unsafe { AsyncFd::register(std::fs::File::from(master)) }.map_err(|e| anyhow::anyhow!("registering the pty master: {e}"))?;
        Ok(Master { fd: Arc::new(fd) })
    }

    pub fn resize(&self, size: Size) -> Result<()> {
        resize(self.fd.get_ref(), size)
    }
}

impl AsyncRead for Master {
    fn poll_read(self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|f| f.get_ref().read(unfilled)) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // EIO: every slave is closed. For a reader that is the end of the stream.
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Poll::Ready(Ok(())),
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for Master {
    fn poll_write(self: Pin<&mut Self>, cx: &mut TaskContext<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            match guard.try_io(|f| f.get_ref().write(data)) {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_with_size_and_resizes() {
        let (m, s) = open(Some(Size { rows: 24, cols: 80 })).unwrap();
        let ws = nix::pty::Winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
        nix::ioctl_read_bad!(get_winsize, libc::TIOCGWINSZ, Winsize);
        let mut got = ws;
        // SAFETY: TIOCGWINSZ writes one winsize into `got`.
        unsafe { get_winsize(s.as_raw_fd(), &mut got) }.unwrap();
        assert_eq!((got.ws_row, got.ws_col), (24, 80));
        resize(&m, Size { rows: 50, cols: 132 }).unwrap();
        // SAFETY: as above.
        unsafe { get_winsize(s.as_raw_fd(), &mut got) }.unwrap();
        assert_eq!((got.ws_row, got.ws_col), (50, 132));
    }
}
