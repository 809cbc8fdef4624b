//! Receiving the container's terminal from the runtime.
//!
//! With `process.terminal`, runc makes the container's pseudo-terminal itself and sends its
//! master over the `--console-socket` as an SCM_RIGHTS message; the monitor keeps it for
//! the container's whole life.

use anyhow::{bail, Context, Result};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;

/// Takes the master from a runtime that has connected to `listener`.
pub fn receive(listener: &UnixListener) -> Result<OwnedFd> {
    let (conn, _) = listener.accept().context("accepting the runtime's console connection")?;
    conn.set_nonblocking(false)?;
    let mut name = [0u8; 256];
    let mut iov = [IoSliceMut::new(&mut name)];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<UnixAddr>(conn.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC)
        .context("receiving the container's terminal")?;
    for c in msg.cmsgs().context("reading the control messages")? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            let mut fds = fds.into_iter();
            if let Some(fd) = fds.next() {
                for extra in fds {
                    // SAFETY: the kernel just installed these descriptors for us; nothing else owns them.
                    drop(unsafe { OwnedFd::from_raw_fd(extra) });
                }
                // SAFETY: as above: a fresh descriptor, owned from here on.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    bail!("the runtime sent no terminal over the console socket")
}
