//! The monitor's process logic (see the module docs for the protocol).

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
use std::path::Path;
use std::process::{Command, Stdio};

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

    let (out_r, out_w) = nix::unistd::pipe().context("stdout pipe")?;
    let (err_r, err_w) = nix::unistd::pipe().context("stderr pipe")?;
    let pid_file = cfg.bundle.join("pid");
    let runc_log = cfg.bundle.join("runc.log");
    let _ = std::fs::remove_file(&pid_file);
    let mut cmd = Command::new(&cfg.runtime_path);
    cmd.args(&cfg.runtime_args)
        .arg("--root")
        .arg(&cfg.runtime_root)
        .arg("--log")
        .arg(&runc_log)
        .arg("--log-format")
        .arg("json")
        .args(["run", "--detach", "--pid-file"])
        .arg(&pid_file)
        .arg("--bundle")
        .arg(&cfg.bundle)
        .arg(&cfg.id)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out_w))
        .stderr(Stdio::from(err_w));
    let runtime = cmd.spawn().with_context(|| format!("starting the runtime {}", cfg.runtime_path))?;
    drop(cmd); // closes our copies of the write ends: EOF comes when the container's close

    let mut log = JsonFileWriter::open(&cfg.log_path, cfg.log_limits).with_context(|| format!("opening {}", cfg.log_path.display()))?;
    let mut out_split = LineSplitter::default();
    let mut err_split = LineSplitter::default();
    let mut out_r = Some(File::from(out_r));
    let mut err_r = Some(File::from(err_r));
    let runtime_pid = Pid::from_raw(runtime.id() as i32);
    let mut container: Option<Pid> = None;
    let mut exit: Option<i32> = None;
    // Exits reaped before the container's pid was known (it can die before runc returns).
    let mut early: Vec<(Pid, i32)> = Vec::new();
    let mut drain_deadline: Option<std::time::Instant> = None;

    loop {
        // Reap whatever exited: the runtime process first, then the container.
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => break,
                Ok(status) => {
                    let (pid, code) = match status {
                        WaitStatus::Exited(p, c) => (p, c),
                        WaitStatus::Signaled(p, s, _) => (p, 128 + s as i32),
                        _ => continue,
                    };
                    if pid == runtime_pid {
                        if code != 0 {
                            bail!("{}", runtime_error(&runc_log).unwrap_or_else(|| format!("runtime exited with status {code}")));
                        }
                        let cpid: i32 = std::fs::read_to_string(&pid_file)
                            .context("reading the container's pid file")?
                            .trim()
                            .parse()
                            .context("parsing the container's pid file")?;
                        container = Some(Pid::from_raw(cpid));
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
                Err(e) => bail!("waitpid: {e}"),
            }
        }
        if exit.is_some() && out_r.is_none() && err_r.is_none() {
            break;
        }
        if drain_deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            break; // something in the container kept the pipes open after it exited
        }
        let now = crate::util::time::now();
        let mut fds = vec![PollFd::new(sigfd.as_fd(), PollFlags::POLLIN)];
        let pipes: Vec<(usize, &File)> = [&out_r, &err_r].iter().enumerate().filter_map(|(i, f)| f.as_ref().map(|f| (i, f))).collect();
        for (_, f) in &pipes {
            fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
        }
        let timeout = if drain_deadline.is_some() { PollTimeout::from(100u16) } else { PollTimeout::NONE };
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => bail!("poll: {e}"),
        }
        let ready_pipes: Vec<usize> =
            pipes.iter().zip(&fds[1..]).filter(|(_, fd)| fd.revents().is_some_and(|r| !r.is_empty())).map(|((i, _), _)| *i).collect();
        while let Ok(Some(_)) = sigfd.read_signal() {}
        for i in ready_pipes {
            let (slot, split, stream) =
                if i == 0 { (&mut out_r, &mut out_split, "stdout") } else { (&mut err_r, &mut err_split, "stderr") };
            let mut buf = [0u8; 8192];
            let n = slot.as_mut().map(|f| f.read(&mut buf)).unwrap_or(Ok(0)).unwrap_or(0);
            if n == 0 {
                *slot = None;
                split.flush(&mut |l| {
                    let _ = log.write(stream, l, &now);
                });
            } else {
                split.feed(&buf[..n], &mut |l| {
                    let _ = log.write(stream, l, &now);
                });
            }
        }
    }
    let now = crate::util::time::now();
    out_split.flush(&mut |l| {
        let _ = log.write("stdout", l, &now);
    });
    err_split.flush(&mut |l| {
        let _ = log.write("stderr", l, &now);
    });
    let _ = log.sync();

    // The exit is durable before anyone hears of it; then the daemon is told (closing the
    // pipe) and runc's cleanup runs while the daemon already answers waiters.
    let status = ExitStatus { exit_code: exit.unwrap_or(255), finished_at: crate::util::time::now(), error: None };
    berth_images::durable::write_json(&cfg.exit_file, &status).context("writing the exit file")?;
    drop(notify);
    let delete = Command::new(&cfg.runtime_path)
        .args(&cfg.runtime_args)
        .arg("--root")
        .arg(&cfg.runtime_root)
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

/// The last error runc logged.
fn runtime_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["level"] == "error" || v["level"] == "fatal")
        .find_map(|v| v["msg"].as_str().map(String::from))
        .map(|m| format!("OCI runtime create failed: {m}"))
}
