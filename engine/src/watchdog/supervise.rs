//! `berth supervise`: runs `berth daemon` as its child and keeps it alive for good.
//!
//! - The daemon says `READY=1` and then `WATCHDOG=1` after each passing self-check, over a
//!   datagram socket the supervisor owns (the sd_notify protocol, `$NOTIFY_SOCKET`).
//! - No heartbeat for `--watchdog-timeout` (or no READY within `--start-timeout`): SIGABRT,
//!   SIGKILL after `--kill-grace`, restart. An exit: restart.
//! - Restarts back off exponentially (`--backoff-initial` doubling to `--backoff-max`, back
//!   to the start after `--stable-after` of health) and never stop for good.
//! - `--hw-watchdog /dev/watchdog` is fed while the supervisor runs; with `--reboot-after`,
//!   only until the daemon has been unhealthy that long (the board then reboots).
//! - Each restart is recorded in `<state-dir>/history.json` (`berth system watchdog`).
//!
//! Plain threads and blocking calls, no async runtime: the supervisor must be the simplest
//! process on the board.

use super::hardware::Hardware;
use super::history::{Entry, History};
use anyhow::{bail, Context, Result};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// `500ms`, `2s`, `1m`, `1h30m`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    berth_images::duration::parse_or_secs(s).ok_or_else(|| format!("invalid duration {:?}: units are ms, s, m, h", s.trim()))
}

#[derive(Debug, Clone, clap::Args)]
pub struct SuperviseArgs {
    /// Restart the daemon when no heartbeat came for this long
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub watchdog_timeout: Duration,
    /// ... or when it is not ready this long after its start (recovery included)
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub start_timeout: Duration,
    /// Between SIGABRT and SIGKILL for a hung daemon
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub kill_grace: Duration,
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub backoff_initial: Duration,
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub backoff_max: Duration,
    /// Healthy this long: the next restart waits backoff-initial again
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub stable_after: Duration,
    /// The supervisor's own files: notify socket, daemon pid, restart history
    #[arg(long, default_value = "/var/lib/berth/supervisor")]
    pub state_dir: PathBuf,
    /// The hardware watchdog device to feed (default: the board profile's)
    #[arg(long)]
    pub hw_watchdog: Option<PathBuf>,
    /// Its timeout in seconds (WDIOC_SETTIMEOUT); it is fed three times as often (default:
    /// the board profile's, else 30)
    #[arg(long)]
    pub hw_timeout: Option<u32>,
    /// Stop feeding the hardware watchdog (the board reboots) once the daemon has been
    /// unhealthy this long. Off by default: a supervisor that runs keeps the board up.
    #[arg(long, value_parser = parse_duration)]
    pub reboot_after: Option<Duration>,
    /// ... or once the daemon was restarted this many times within --restart-window. Off by
    /// default.
    #[arg(long)]
    pub reboot_after_restarts: Option<usize>,
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub restart_window: Duration,
    /// The board profile (default /etc/berth/board.toml when it exists): its watchdog
    /// fills in --hw-watchdog, --hw-timeout and --reboot-after; the daemon is given it too
    #[arg(long)]
    pub board_profile: Option<PathBuf>,
    /// As PID 1: how long processes get between SIGTERM and SIGKILL at shutdown
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// Arguments for `berth daemon` (after `--`)
    #[arg(last = true)]
    pub daemon_args: Vec<String>,
}

impl SuperviseArgs {
    /// `--hw-timeout`, else the board profile's (filled in at start), else 30 s; at least 1.
    fn hw_timeout(&self) -> u32 {
        self.hw_timeout.unwrap_or(30).max(1)
    }
}

/// The signal that told us to stop; 0 while none came.
static STOP: AtomicI32 = AtomicI32::new(0);

fn stopping() -> bool {
    STOP.load(Ordering::SeqCst) != 0
}

extern "C" fn on_stop(sig: libc::c_int) {
    STOP.store(sig, Ordering::SeqCst);
}

/// SIGTERM and SIGINT stop the supervisor; as PID 1 also busybox's halt (SIGUSR1) and
/// poweroff (SIGUSR2), which would otherwise be dropped by the kernel.
fn install_stop_handler(pid1: bool) -> Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(SigHandler::Handler(on_stop), SaFlags::SA_RESTART, SigSet::empty());
    let mut signals = vec![Signal::SIGTERM, Signal::SIGINT];
    if pid1 {
        signals.extend([Signal::SIGUSR1, Signal::SIGUSR2]);
    }
    for sig in signals {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { sigaction(sig, &action) }.context("installing the stop handler")?;
    }
    Ok(())
}

/// The daemon's status once it ended (reaping any orphan on the way, see `pid1::reap`).
fn ended(child: &Child) -> Option<std::process::ExitStatus> {
    super::pid1::reap(child.id())
}

fn signal(child: &Child, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig);
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (_, Some(s)) => format!("killed by signal {s}"),
        _ => status.to_string(),
    }
}

/// How one run of the daemon ended.
enum End {
    Exited(std::process::ExitStatus),
    Hung(String),
    Stop,
}

struct Supervisor {
    args: SuperviseArgs,
    hosts: Vec<String>,
    sock: UnixDatagram,
    sock_path: PathBuf,
    hw: Option<Hardware>,
    last_feed: Instant,
    /// Since when the daemon has not been healthy (None: it is).
    unhealthy_since: Option<Instant>,
    /// When the daemon was restarted, within the last --restart-window.
    restarts: std::collections::VecDeque<Instant>,
    starving: bool,
}

impl Supervisor {
    /// Feeds the hardware watchdog when due, unless the daemon has been unhealthy longer
    /// than `--reboot-after`.
    fn tend_hardware(&mut self) {
        let Some(hw) = self.hw.as_mut() else { return };
        let window = self.args.restart_window;
        while self.restarts.front().is_some_and(|t| t.elapsed() > window) {
            self.restarts.pop_front();
        }
        let too_many = self.args.reboot_after_restarts.is_some_and(|n| n > 0 && self.restarts.len() >= n);
        let starve = too_many
            || match (self.args.reboot_after, self.unhealthy_since) {
                (Some(limit), Some(since)) => since.elapsed() > limit,
                _ => false,
            };
        if starve != self.starving {
            self.starving = starve;
            if starve {
                tracing::error!("the daemon has been unhealthy too long or restarted too often: no longer feeding the hardware watchdog");
            } else {
                tracing::warn!("the daemon is healthy again: feeding the hardware watchdog");
            }
        }
        let every = Duration::from_secs(self.args.hw_timeout() as u64) / 3;
        if !starve && self.last_feed.elapsed() >= every {
            hw.feed();
            self.last_feed = Instant::now();
        }
    }

    fn set_healthy(&mut self, healthy: bool) {
        match (healthy, self.unhealthy_since) {
            (true, _) => self.unhealthy_since = None,
            (false, None) => self.unhealthy_since = Some(Instant::now()),
            (false, Some(_)) => {}
        }
    }

    fn spawn(&self) -> Result<Child> {
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        for h in &self.hosts {
            cmd.args(["-H", h]);
        }
        cmd.arg("daemon").args(&self.args.daemon_args);
        cmd.env("NOTIFY_SOCKET", &self.sock_path)
            .env("WATCHDOG_USEC", (self.args.watchdog_timeout.as_micros() as u64).to_string())
            .env_remove("WATCHDOG_PID")
            .env(super::history::STATE_DIR_ENV, &self.args.state_dir);
        let child = cmd.spawn().context("starting berth daemon")?;
        berth_images::durable::write_file_mode(&self.args.state_dir.join("daemon.pid"), child.id().to_string().as_bytes(), 0o644)?;
        Ok(child)
    }

    /// Runs the daemon until it exits, hangs, or we are told to stop. Returns how it ended
    /// and whether it had been healthy for `--stable-after`.
    fn watch(&mut self, child: &mut Child) -> (End, bool) {
        let started = Instant::now();
        let mut ready_at: Option<Instant> = None;
        let mut last_beat = Instant::now();
        let mut buf = [0u8; 4096];
        loop {
            if stopping() {
                return (End::Stop, false);
            }
            if let Ok(n) = self.sock.recv(&mut buf) {
                for line in String::from_utf8_lossy(&buf[..n]).lines() {
                    match line {
                        "READY=1" => {
                            ready_at.get_or_insert_with(Instant::now);
                            last_beat = Instant::now();
                            tracing::info!(pid = child.id(), "daemon ready");
                        }
                        "WATCHDOG=1" => last_beat = Instant::now(),
                        l if l.starts_with("STATUS=") => tracing::debug!("daemon status: {}", &l[7..]),
                        _ => {}
                    }
                }
            }
            let stable = ready_at.is_some_and(|r| r.elapsed() >= self.args.stable_after);
            if let Some(status) = ended(child) {
                return (End::Exited(status), stable);
            }
            let healthy = ready_at.is_some() && last_beat.elapsed() <= self.args.watchdog_timeout;
            self.set_healthy(healthy);
            self.tend_hardware();
            if ready_at.is_none() && started.elapsed() > self.args.start_timeout {
                return (End::Hung(format!("not ready within {:?}", self.args.start_timeout)), false);
            }
            if ready_at.is_some() && last_beat.elapsed() > self.args.watchdog_timeout {
                return (End::Hung(format!("no heartbeat for {:?}", self.args.watchdog_timeout)), stable);
            }
        }
    }

    /// SIGABRT (a core for the post-mortem), then SIGKILL after the grace.
    fn put_down(&mut self, child: &mut Child) -> String {
        signal(child, nix::sys::signal::Signal::SIGABRT);
        if let Some(s) = self.wait_for(child, self.args.kill_grace) {
            return describe(s);
        }
        signal(child, nix::sys::signal::Signal::SIGKILL);
        match self.wait_for(child, Duration::from_secs(60)) {
            Some(s) => describe(s),
            None => "did not die of SIGKILL within 60 s".to_string(),
        }
    }

    /// Waits up to `limit` for the daemon to end, still feeding the hardware watchdog.
    fn wait_for(&mut self, child: &Child, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = ended(child) {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            self.tend_hardware();
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits `delay`, still feeding and still listening for a stop. False: stop now.
    fn pause(&mut self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        while Instant::now() < until {
            if stopping() {
                return false;
            }
            super::pid1::reap(0);
            self.set_healthy(false);
            self.tend_hardware();
            std::thread::sleep(Duration::from_millis(20).min(until.saturating_duration_since(Instant::now())));
        }
        true
    }
}

/// Takes what the flags leave open from the board profile's watchdog, and hands the daemon
/// the profile the supervisor was given.
fn apply_profile(args: &mut SuperviseArgs) -> Result<()> {
    let Some((path, p)) = crate::board::Profile::find(args.board_profile.as_deref())? else { return Ok(()) };
    p.check_arch()?;
    if let Some(w) = &p.watchdog {
        args.hw_watchdog.get_or_insert_with(|| w.device.clone());
        args.hw_timeout.get_or_insert(w.timeout);
        if args.reboot_after.is_none() {
            args.reboot_after = w.reboot_after();
        }
    }
    if args.board_profile.is_some() && !args.daemon_args.iter().any(|a| a.starts_with("--board-profile")) {
        args.daemon_args.push(format!("--board-profile={}", path.display()));
    }
    tracing::info!(profile = %path.display(), board = %p.board.name, "board profile");
    Ok(())
}

/// `berth supervise`. Returns when SIGTERM/SIGINT arrives (after stopping the daemon); as
/// PID 1 it never returns but shuts the system down (`pid1`).
pub fn run(args: SuperviseArgs, hosts: Vec<String>) -> Result<()> {
    let pid1 = super::pid1::is_pid1();
    install_stop_handler(pid1)?;
    let grace = args.shutdown_grace;
    let result = supervise(args, hosts);
    if pid1 {
        if let Err(e) = &result {
            // Exiting would panic the kernel; a reboot after a pause gives a person (or the
            // next boot's fixed config) a chance.
            tracing::error!("berth supervise as PID 1: {e:#}; rebooting in 10 s");
            std::thread::sleep(Duration::from_secs(10));
        }
        let how = super::pid1::Shutdown::from_signal(STOP.load(Ordering::SeqCst));
        super::pid1::shut_down(how, grace);
    }
    result
}

fn supervise(mut args: SuperviseArgs, hosts: Vec<String>) -> Result<()> {
    if args.backoff_initial.is_zero() || args.backoff_max < args.backoff_initial {
        bail!("--backoff-initial must be > 0 and not above --backoff-max");
    }
    apply_profile(&mut args)?;
    std::fs::create_dir_all(&args.state_dir).with_context(|| format!("creating {}", args.state_dir.display()))?;
    let sock_path = args.state_dir.join("notify.sock");
    let _ = std::fs::remove_file(&sock_path);
    let sock = UnixDatagram::bind(&sock_path).with_context(|| format!("binding {}", sock_path.display()))?;
    sock.set_read_timeout(Some(Duration::from_millis(50)))?;
    let hw = args.hw_watchdog.as_deref().map(|p| Hardware::open(p, args.hw_timeout())).transpose()?;
    let mut history = History::load(&args.state_dir);
    let mut sup = Supervisor {
        args,
        hosts,
        sock,
        sock_path,
        hw,
        last_feed: Instant::now() - Duration::from_secs(3600),
        unhealthy_since: None,
        restarts: Default::default(),
        starving: false,
    };
    sup.tend_hardware();
    let mut backoff = sup.args.backoff_initial;
    loop {
        let mut child = match sup.spawn() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("{e:#}");
                if !sup.pause(backoff) {
                    break;
                }
                backoff = (backoff * 2).min(sup.args.backoff_max);
                continue;
            }
        };
        tracing::info!(pid = child.id(), "daemon started");
        let (end, stable) = sup.watch(&mut child);
        if stable {
            backoff = sup.args.backoff_initial;
        }
        let (reason, status) = match end {
            End::Stop => {
                tracing::info!("stopping: SIGTERM to the daemon (its containers keep running)");
                signal(&child, nix::sys::signal::Signal::SIGTERM);
                if sup.wait_for(&child, Duration::from_secs(30)).is_none() {
                    signal(&child, nix::sys::signal::Signal::SIGKILL);
                    sup.wait_for(&child, Duration::from_secs(10));
                }
                break;
            }
            End::Exited(s) => ("exited".to_string(), describe(s)),
            End::Hung(why) => {
                tracing::error!(pid = child.id(), "daemon hung ({why}): SIGABRT, then SIGKILL");
                let status = sup.put_down(&mut child);
                (format!("hung: {why}"), status)
            }
        };
        tracing::warn!(%reason, %status, delay_ms = backoff.as_millis() as u64, "restarting the daemon");
        sup.restarts.push_back(Instant::now());
        let entry = Entry { at: crate::util::time::now(), reason, status, delay_ms: backoff.as_millis() as u64 };
        if let Err(e) = history.push(entry) {
            tracing::error!("recording the restart: {e:#}");
        }
        if !sup.pause(backoff) {
            break;
        }
        backoff = (backoff * 2).min(sup.args.backoff_max);
    }
    if let Some(hw) = sup.hw.take() {
        hw.disarm();
    }
    let _ = std::fs::remove_file(&sup.sock_path);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }
}
