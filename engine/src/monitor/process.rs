//! The monitor's process logic (see the module docs for the protocol).

use super::control::Control;
use super::{ExitStatus, MonitorConfig};
use crate::logs::writer::{JsonFileWriter, LineSplitter};
use anyhow::{bail, Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Stdio;

/// Entry point of `berth monitor <bundle>`. Returns the exit code of the first process.
pub fn run(bundle: &Path) -> i32 {
    let cfg: MonitorConfig = match std::fs::read(bundle.join(MonitorConfig::FILE))
        .context("reading monitor.json")
        .and_then(|d| serde_json::from_slice(&d).context("decoding monitor.json"))
    {
        Ok(c) => c,
        Err(e) => {
            println!("err {e:#}");
            return 1;
        }
    };
    let (ready_r, ready_w) = match nix::unistd::pipe() {
        Ok(p) => p,
        Err(e) => {
            println!("err creating the readiness pipe: {e}");
            return 1;
        }
    };
    // SAFETY: the monitor has just been exec'd and is single-threaded here, so the child may
    // run arbitrary code after fork.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { .. }) => {
            drop(ready_w);
            let mut msg = String::new();
            let _ = File::from(ready_r).read_to_string(&mut msg);
            if msg.is_empty() {
                msg = "err the monitor exited before the container started".into();
            }
            println!("{}", msg.trim());
            i32::from(!msg.starts_with("ok "))
        }
        Ok(ForkResult::Child) => {
            drop(ready_r);
            // stdin is the daemon's exit-notification pipe: keep it (out of runc's reach)
            // until the exit is recorded.
            let notify = nix::unistd::dup(0).ok().map(|fd| {
                let _ = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC));
                // SAFETY: dup just returned this descriptor; nothing else owns it.
                unsafe { OwnedFd::from_raw_fd(fd) }
            });
            // The daemon reads the first process's stdout to its end: the monitor must not
            // hold it. Its own diagnostics go to monitor.log in the bundle.
            detach_stdio(&bundle.join("monitor.log"));
            let code = match supervise(&cfg, ready_w, notify) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("berth monitor {}: {e:#}", cfg.id);
                    1
                }
            };
            std::process::exit(code)
        }
        Err(e) => {
            println!("err fork: {e}");
            1
        }
    }
}

/// Quiet this long, the monitor gives back the code pages it faulted in.
const IDLE_BEFORE_RELEASE_MS: u16 = 10_000;

fn detach_stdio(log: &Path) {
    use std::os::fd::AsRawFd;
    let null = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null");
    let err = std::fs::OpenOptions::new().create(true).append(true).open(log);
    if let Ok(null) = &null {
        let _ = nix::unistd::dup2(null.as_raw_fd(), 0);
        let _ = nix::unistd::dup2(null.as_raw_fd(), 1);
    }
    if let Ok(err) = err.as_ref().or(null.as_ref()) {
        let _ = nix::unistd::dup2(err.as_raw_fd(), 2);
    }
}

fn report(ready: &mut Option<File>, msg: &str) {
    if let Some(mut f) = ready.take() {
        let _ = writeln!(f, "{msg}");
    }
}

fn supervise(cfg: &MonitorConfig, ready_w: OwnedFd, notify: Option<OwnedFd>) -> Result<()> {
    let mut ready = Some(File::from(ready_w));
    let result = start_and_wait(cfg, &mut ready, notify);
    if let Err(e) = &result {
        report(&mut ready, &format!("err {e:#}"));
    }
    result
}

/// One source of container output: a pipe, or the terminal's master.
struct Source {
    file: Option<File>,
    stream: &'static str,
    split: LineSplitter,
    /// A terminal's output is logged as it comes (a prompt has no newline).
    eager: bool,
}

impl Source {
    fn new(file: File, stream: &'static str, eager: bool) -> Self {
        Source { file: Some(file), stream, split: LineSplitter::default(), eager }
    }

    /// Reads once; logs what came. A terminal whose container side is gone reads EIO: its end.
    fn read(&mut self, log: &mut JsonFileWriter) {
        let now = crate::util::time::now();
        let mut buf = [0u8; 8192];
        let n = self.file.as_mut().map(|f| f.read(&mut buf)).unwrap_or(Ok(0));
        let stream = self.stream;
        let mut write = |l: &[u8]| {
            let _ = log.write(stream, l, &now);
        };
        match n {
            Ok(0) => {
                self.file = None;
                self.split.flush(&mut write);
            }
            Ok(n) => {
                self.split.feed(&buf[..n], &mut write);
                if self.eager {
                    self.split.flush(&mut write);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted || e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => {
                self.file = None;
                self.split.flush(&mut write);
            }
        }
    }
}

/// A fresh listening socket at `path`.
fn listen(path: &Path) -> Result<UnixListener> {
    let _ = std::fs::remove_file(path);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let l = UnixListener::bind(path).with_context(|| format!("listening on {}", path.display()))?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(l)
}

/// Waits for the runtime to send the container's terminal; if the runtime exits first, its
/// error. Returns the master and the runtime's exit status if it was reaped meanwhile.
fn wait_console(listener: &UnixListener, sigfd: &SignalFd, runtime: Pid, runc_log: &Path) -> Result<(OwnedFd, Option<i32>)> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut exited = None;
    loop {
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN), PollFd::new(sigfd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(100u16)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => bail!("poll: {e}"),
        }
        let ready = fds[0].revents().is_some_and(|r| r.contains(PollFlags::POLLIN));
        while let Ok(Some(_)) = sigfd.read_signal() {}
        if ready || exited.is_some() {
            listener.set_nonblocking(exited.is_some())?;
            match super::console::receive(listener) {
                Ok(fd) => return Ok((fd, exited)),
                Err(e) if exited.is_some() => {
                    let code = exited.unwrap_or(0);
                    bail!(
                        "{}",
                        crate::runtime::last_error(runc_log)
                            .map(|m| format!("OCI runtime create failed: {m}"))
                            .unwrap_or_else(|| format!("runtime exited with status {code} without a terminal: {e:#}"))
                    );
                }
                Err(e) => return Err(e),
            }
        }
        if let Ok(WaitStatus::Exited(_, c)) = waitpid(runtime, Some(WaitPidFlag::WNOHANG)) {
            exited = Some(c);
            continue;
        }
        if std::time::Instant::now() >= deadline {
            bail!("the runtime sent no terminal within 60s");
        }
    }
}

fn start_and_wait(cfg: &MonitorConfig, ready: &mut Option<File>, notify: Option<OwnedFd>) -> Result<()> {
    nix::unistd::setsid().context("setsid")?;
    nix::sys::prctl::set_child_subreaper(true).context("becoming a child subreaper")?;
    for sig in [Signal::SIGHUP, Signal::SIGINT, Signal::SIGTERM, Signal::SIGPIPE] {
        // SAFETY: SIG_IGN installs no handler code; the process is single-threaded.
        unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigIgn) }.context("ignoring signals")?;
    }
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    chld.thread_block().context("blocking SIGCHLD")?;
    let sigfd = SignalFd::with_flags(&chld, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).context("signalfd")?;

    // The control socket exists before the container does: a client that was waiting for
    // the start can connect at once.
    let control_listener = listen(&cfg.control_socket)?;
    let console_path = cfg.control_socket.with_extension("console");
    let console_listener = if cfg.tty { Some(listen(&console_path)?) } else { None };
    let pid_file = cfg.bundle.join("pid");
    let runc_log = cfg.bundle.join("runc.log");
    let _ = std::fs::remove_file(&pid_file);
    let mut cmd = crate::runtime::invocation(&cfg.runtime_path, &cfg.runtime_args, &cfg.runtime_root, Some(&runc_log));
    cmd.args(["run", "--detach", "--pid-file"]).arg(&pid_file);
    if cfg.tty {
        cmd.arg("--console-socket").arg(&console_path);
    }
    cmd.arg("--bundle").arg(&cfg.bundle).arg(&cfg.id);
    let mut sources = Vec::new();
    let mut stdin_w: Option<OwnedFd> = None;
    if cfg.tty {
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    } else {
        let (out_r, out_w) = nix::unistd::pipe().context("stdout pipe")?;
        let (err_r, err_w) = nix::unistd::pipe().context("stderr pipe")?;
        if cfg.open_stdin {
            let (in_r, in_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("stdin pipe")?;
            cmd.stdin(Stdio::from(in_r));
            stdin_w = Some(in_w);
        } else {
            cmd.stdin(Stdio::null());
        }
        cmd.stdout(Stdio::from(out_w)).stderr(Stdio::from(err_w));
        sources.push(Source::new(File::from(out_r), "stdout", false));
        sources.push(Source::new(File::from(err_r), "stderr", false));
    }
    let runtime = cmd.spawn().with_context(|| format!("starting the runtime {}", cfg.runtime_path))?;
    drop(cmd); // closes our copies of the child's ends: EOF comes when the container's close
    let runtime_pid = Pid::from_raw(runtime.id() as i32);

    let mut terminal: Option<OwnedFd> = None;
    let mut runtime_exit: Option<i32> = None;
    if let Some(l) = &console_listener {
        let (master, exited) = wait_console(l, &sigfd, runtime_pid, &runc_log)?;
        let _ = std::fs::remove_file(&console_path);
        if let Some((rows, cols)) = cfg.console_size {
            let _ = crate::util::pty::resize(&master, crate::util::pty::Size { rows, cols });
        }
        sources.push(Source::new(File::from(master.try_clone()?), "stdout", true));
        if cfg.open_stdin {
            stdin_w = Some(master.try_clone()?);
        }
        terminal = Some(master);
        runtime_exit = exited;
    }
    let mut control = Control::new(control_listener, stdin_w, cfg.stdin_once, terminal, 0);

    let mut log = JsonFileWriter::open(&cfg.log_path, cfg.log_limits).with_context(|| format!("opening {}", cfg.log_path.display()))?;
    let mut container: Option<Pid> = None;
    let mut exit: Option<i32> = None;
    // Exits reaped before the container's pid was known (it can die before runc returns).
    let mut early: Vec<(Pid, i32)> = Vec::new();
    let mut drain_deadline: Option<std::time::Instant> = None;
    let mut code_released = false;

    loop {
        // Reap whatever exited: the runtime process first, then the container.
        let mut reaped: Vec<(Pid, i32)> = runtime_exit.take().map(|c| (runtime_pid, c)).into_iter().collect();
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => break,
                Ok(WaitStatus::Exited(p, c)) => reaped.push((p, c)),
                Ok(WaitStatus::Signaled(p, s, _)) => reaped.push((p, 128 + s as i32)),
                Ok(_) => continue,
                Err(e) => bail!("waitpid: {e}"),
            }
        }
        for (pid, code) in reaped {
            if pid == runtime_pid {
                if code != 0 {
                    bail!(
                        "{}",
                        crate::runtime::last_error(&runc_log)
                            .map(|m| format!("OCI runtime create failed: {m}"))
                            .unwrap_or_else(|| format!("runtime exited with status {code}"))
                    );
                }
                let cpid: i32 = std::fs::read_to_string(&pid_file)
                    .context("reading the container's pid file")?
                    .trim()
                    .parse()
                    .context("parsing the container's pid file")?;
                container = Some(Pid::from_raw(cpid));
                control.set_container_pid(cpid);
                report(ready, &format!("ok {} {cpid}", std::process::id()));
                if let Some((_, c)) = early.iter().find(|(p, _)| p.as_raw() == cpid) {
                    exit = Some(*c);
                }
            } else if Some(pid) == container {
                exit = Some(code);
            } else if container.is_none() {
                early.push((pid, code));
            }
            if exit.is_some() && drain_deadline.is_none() {
                drain_deadline = Some(std::time::Instant::now() + std::time::Duration::from_secs(2));
            }
        }
        if exit.is_some() && sources.iter().all(|s| s.file.is_none()) {
            break;
        }
        if drain_deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            break; // something in the container kept the pipes open after it exited
        }
        let mut fds = vec![PollFd::new(sigfd.as_fd(), PollFlags::POLLIN)];
        let open: Vec<usize> = (0..sources.len()).filter(|i| sources[*i].file.is_some()).collect();
        for i in &open {
            fds.push(PollFd::new(sources[*i].file.as_ref().unwrap().as_fd(), PollFlags::POLLIN));
        }
        let interest = control.register(&mut fds);
        let timeout = match (drain_deadline, code_released) {
            (Some(_), _) => PollTimeout::from(100u16),
            (None, false) => PollTimeout::from(IDLE_BEFORE_RELEASE_MS),
            (None, true) => PollTimeout::NONE,
        };
        match poll(&mut fds, timeout) {
            // Idle: the code this run faulted in goes back (see util::resident), once per
            // quiet spell.
            Ok(0) if drain_deadline.is_none() => {
                crate::util::resident::release_startup_code();
                code_released = true;
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => code_released = false,
            Err(e) => bail!("poll: {e}"),
        }
        let events: Vec<PollFlags> = fds.iter().map(|f| f.revents().unwrap_or(PollFlags::empty())).collect();
        drop(fds);
        while let Ok(Some(_)) = sigfd.read_signal() {}
        for (k, i) in open.iter().enumerate() {
            if !events[1 + k].is_empty() {
                sources[*i].read(&mut log);
            }
        }
        control.handle(interest, &events[1 + open.len()..]);
    }
    for s in &mut sources {
        s.file = None;
        let now = crate::util::time::now();
        s.split.flush(&mut |l| {
            let _ = log.write(s.stream, l, &now);
        });
    }
    let _ = log.sync();
    drop(control);
    let _ = std::fs::remove_file(&cfg.control_socket);

    // The exit is durable before anyone hears of it; then the daemon is told (closing the
    // pipe) and runc's cleanup runs while the daemon already answers waiters.
    let status = ExitStatus { exit_code: exit.unwrap_or(255), finished_at: crate::util::time::now(), error: None };
    berth_images::durable::write_json(&cfg.exit_file, &status).context("writing the exit file")?;
    drop(notify);
    let delete = crate::runtime::invocation(&cfg.runtime_path, &cfg.runtime_args, &cfg.runtime_root, None)
        .args(["delete", "--force", &cfg.id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match delete {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => bail!("runc delete: {}", String::from_utf8_lossy(&o.stderr).trim()),
        Err(e) => bail!("runc delete: {e}"),
    }
}
