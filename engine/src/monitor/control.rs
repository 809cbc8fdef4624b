//! The monitor's control socket: what the daemon asks of a running container.
//!
//! One command line per connection:
//! - `stdin`: answered `ok`; every later byte goes to the container's stdin. When the
//!   client closes its side and the container was created with `StdinOnce`, stdin closes.
//! - `resize <rows> <cols>`: the container's terminal size.
//! - `signal <n>`: a signal to the container's process.
//! - `status`: `running <pid>`.
//!
//! Answers are one line, `ok ...` or `err <message>`. The socket never blocks the monitor:
//! every descriptor is non-blocking, and a client's bytes are read only when the previous
//! ones reached stdin, so memory stays bounded by one buffer.

use nix::poll::{PollFd, PollFlags};
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};

const BUF: usize = 4096;
/// A command line longer than this is refused.
const MAX_LINE: usize = 128;

enum Mode {
    /// Reading the command line.
    Command(Vec<u8>),
    /// Passing bytes to stdin.
    Stdin,
}

struct Client {
    stream: UnixStream,
    mode: Mode,
}

pub struct Control {
    listener: UnixListener,
    clients: Vec<Client>,
    /// The container's stdin (pipe or terminal); `None` once closed or never opened.
    stdin: Option<File>,
    stdin_once: bool,
    /// Bytes read from a client that stdin has not taken yet.
    pending: Vec<u8>,
    terminal: Option<File>,
    container_pid: i32,
}

/// One round of a poll: which descriptors were asked for, in order.
pub struct Interest {
    listener: bool,
    clients: Vec<usize>,
    stdin: bool,
}

impl Control {
    pub fn new(listener: UnixListener, stdin: Option<OwnedFd>, stdin_once: bool, terminal: Option<OwnedFd>, container_pid: i32) -> Self {
        let _ = listener.set_nonblocking(true);
        let stdin = stdin.map(File::from);
        if let Some(s) = &stdin {
            let _ = nix::fcntl::fcntl(std::os::fd::AsRawFd::as_raw_fd(s), nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK));
        }
        Control {
            listener,
            clients: Vec::new(),
            stdin,
            stdin_once,
            pending: Vec::with_capacity(BUF),
            terminal: terminal.map(File::from),
            container_pid,
        }
    }

    pub fn set_container_pid(&mut self, pid: i32) {
        self.container_pid = pid;
    }

    /// Adds this round's descriptors to `fds`.
    pub fn register<'a>(&'a self, fds: &mut Vec<PollFd<'a>>) -> Interest {
        let mut i = Interest { listener: true, clients: Vec::new(), stdin: false };
        fds.push(PollFd::new(self.listener.as_fd(), PollFlags::POLLIN));
        for (n, c) in self.clients.iter().enumerate() {
            let wants = match c.mode {
                Mode::Command(_) => true,
                Mode::Stdin => self.pending.is_empty(),
            };
            if wants {
                fds.push(PollFd::new(c.stream.as_fd(), PollFlags::POLLIN));
                i.clients.push(n);
            }
        }
        if let (Some(s), false) = (&self.stdin, self.pending.is_empty()) {
            fds.push(PollFd::new(s.as_fd(), PollFlags::POLLOUT));
            i.stdin = true;
        }
        i
    }

    /// Acts on the events of the descriptors `register` added (in its order).
    pub fn handle(&mut self, interest: Interest, events: &[PollFlags]) {
        let mut ev = events.iter();
        if interest.listener && ev.next().is_some_and(|e| !e.is_empty()) {
            while let Ok((stream, _)) = self.listener.accept() {
                let _ = stream.set_nonblocking(true);
                if self.clients.len() < 16 {
                    self.clients.push(Client { stream, mode: Mode::Command(Vec::new()) });
                }
            }
        }
        let mut gone = Vec::new();
        for n in interest.clients {
            if ev.next().is_some_and(|e| !e.is_empty()) && !self.read_client(n) {
                gone.push(n);
            }
        }
        if interest.stdin && ev.next().is_some_and(|e| !e.is_empty()) {
            self.flush_stdin();
        }
        for n in gone.into_iter().rev() {
            let c = self.clients.remove(n);
            if matches!(c.mode, Mode::Stdin) && self.stdin_once {
                self.close_stdin_after_pending();
            }
        }
    }

    /// Reads what client `n` sent; false when it is gone.
    fn read_client(&mut self, n: usize) -> bool {
        let mut buf = [0u8; BUF];
        let got = match self.clients[n].stream.read(&mut buf) {
            Ok(0) => return false,
            Ok(k) => k,
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => return true,
            Err(_) => return false,
        };
        match &mut self.clients[n].mode {
            Mode::Stdin => {
                self.pending.extend_from_slice(&buf[..got]);
                self.flush_stdin();
                true
            }
            Mode::Command(line) => {
                line.extend_from_slice(&buf[..got]);
                let Some(end) = line.iter().position(|b| *b == b'\n') else {
                    return line.len() <= MAX_LINE;
                };
                let rest = line.split_off(end + 1);
                let cmd = String::from_utf8_lossy(&line[..end]).trim().to_string();
                self.command(n, &cmd, rest)
            }
        }
    }

    fn reply(&mut self, n: usize, text: &str) {
        // A short line into an empty socket buffer: it fits.
        let _ = self.clients[n].stream.write_all(format!("{text}\n").as_bytes());
    }

    /// Runs one command; false when the connection is done.
    fn command(&mut self, n: usize, cmd: &str, rest: Vec<u8>) -> bool {
        let mut words = cmd.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("stdin"), None, None) => {
                if self.stdin.is_none() {
                    self.reply(n, "err the container's stdin is closed");
                    return false;
                }
                self.reply(n, "ok");
                self.clients[n].mode = Mode::Stdin;
                if !rest.is_empty() {
                    self.pending.extend_from_slice(&rest);
                    self.flush_stdin();
                }
                true
            }
            (Some("resize"), Some(r), Some(c)) => {
                let answer = match (&self.terminal, r.parse::<u16>(), c.parse::<u16>()) {
                    (None, _, _) => "err the container has no terminal".to_string(),
                    (Some(t), Ok(rows), Ok(cols)) => match crate::util::pty::resize(t, crate::util::pty::Size { rows, cols }) {
                        Ok(()) => "ok".into(),
                        Err(e) => format!("err {e:#}"),
                    },
                    _ => "err bad size".into(),
                };
                self.reply(n, &answer);
                false
            }
            (Some("signal"), Some(s), None) => {
                let answer = match s.parse::<i32>().ok().and_then(|s| nix::sys::signal::Signal::try_from(s).ok()) {
                    Some(sig) => match nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.container_pid), sig) {
                        Ok(()) => "ok".to_string(),
                        Err(e) => format!("err {e}"),
                    },
                    None => "err bad signal".to_string(),
                };
                self.reply(n, &answer);
                false
            }
            (Some("status"), None, None) => {
                let answer = format!("running {}", self.container_pid);
                self.reply(n, &answer);
                false
            }
            _ => {
                self.reply(n, "err unknown command");
                false
            }
        }
    }

    fn flush_stdin(&mut self) {
        let Some(s) = self.stdin.as_mut() else {
            self.pending.clear();
            return;
        };
        while !self.pending.is_empty() {
            match s.write(&self.pending) {
                Ok(k) => {
                    self.pending.drain(..k);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => return,
                Err(_) => {
                    // The container closed its end: nothing more can go in.
                    self.stdin = None;
                    self.pending.clear();
                    return;
                }
            }
        }
    }

    fn close_stdin_after_pending(&mut self) {
        self.flush_stdin();
        // A terminal is the container's output too: only a pipe is closed.
        if self.terminal.is_none() {
            self.stdin = None;
        }
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::poll::{poll, PollTimeout};
    use std::io::BufRead;

    /// One round of the monitor's loop, for the control socket alone.
    fn round(c: &mut Control) {
        let mut fds = Vec::new();
        let interest = c.register(&mut fds);
        poll(&mut fds, PollTimeout::from(200u16)).unwrap();
        let events: Vec<PollFlags> = fds.iter().map(|f| f.revents().unwrap_or(PollFlags::empty())).collect();
        drop(fds);
        c.handle(interest, &events);
    }

    fn ask(c: &mut Control, path: &std::path::Path, line: &str) -> (String, UnixStream) {
        let mut s = UnixStream::connect(path).unwrap();
        s.write_all(format!("{line}\n").as_bytes()).unwrap();
        round(c); // accept
        round(c); // read the command, answer
        let mut answer = String::new();
        std::io::BufReader::new(s.try_clone().unwrap()).read_line(&mut answer).unwrap();
        (answer.trim().to_string(), s)
    }

    #[test]
    fn speaks_the_protocol() {
        let dir = std::env::temp_dir().join(format!("berth-ctl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ctl");
        let _ = std::fs::remove_file(&path);
        let (in_r, in_w) = nix::unistd::pipe().unwrap();
        let mut c = Control::new(UnixListener::bind(&path).unwrap(), Some(in_w), true, None, 42);

        assert_eq!(ask(&mut c, &path, "status").0, "running 42");
        assert_eq!(ask(&mut c, &path, "resize 24 80").0, "err the container has no terminal");
        assert_eq!(ask(&mut c, &path, "bogus").0, "err unknown command");

        // stdin: bytes reach the container's pipe; with StdinOnce the client's end closes it.
        let (answer, mut s) = ask(&mut c, &path, "stdin");
        assert_eq!(answer, "ok");
        s.write_all(b"typed").unwrap();
        round(&mut c);
        s.shutdown(std::net::Shutdown::Write).unwrap();
        round(&mut c);
        let mut got = Vec::new();
        File::from(in_r).read_to_end(&mut got).unwrap();
        assert_eq!(got, b"typed", "stdin ends (EOF) once the StdinOnce client is gone");
        assert_eq!(ask(&mut c, &path, "stdin").0, "err the container's stdin is closed");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn resizes_the_terminal() {
        let dir = std::env::temp_dir().join(format!("berth-ctl-tty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ctl");
        let _ = std::fs::remove_file(&path);
        let (master, slave) = crate::util::pty::open(None).unwrap();
        let mut c = Control::new(UnixListener::bind(&path).unwrap(), None, false, Some(master), 1);
        assert_eq!(ask(&mut c, &path, "resize 33 99").0, "ok");
        let ws = nix::pty::Winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
        nix::ioctl_read_bad!(get_winsize, libc::TIOCGWINSZ, nix::pty::Winsize);
        let mut got = ws;
        // SAFETY: TIOCGWINSZ writes one winsize into `got`.
        unsafe { get_winsize(std::os::fd::AsRawFd::as_raw_fd(&slave), &mut got) }.unwrap();
        assert_eq!((got.ws_row, got.ws_col), (33, 99));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
