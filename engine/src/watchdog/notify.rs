//! The sd_notify protocol, daemon side: datagrams such as `READY=1`, `WATCHDOG=1` and
//! `STATUS=...` to the socket in `$NOTIFY_SOCKET` (a path, or `@name` for an abstract
//! socket). The same messages serve systemd (`Type=notify`, `WatchdogSec=`) and
//! `berth supervise`.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

pub struct Notifier {
    sock: UnixDatagram,
    target: std::os::unix::net::SocketAddr,
    /// Half the watchdog timeout asked for (`$WATCHDOG_USEC`), as systemd advises.
    pub interval: Option<Duration>,
}

impl Notifier {
    /// From the environment, which it then clears: the containers' runtime must not see
    /// the daemon's notify socket (runc would hand it to the container). Call it before any
    /// thread starts. `None` when nobody listens.
    pub fn take_from_env() -> Option<Self> {
        let n = Self::from_env();
        for var in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
            std::env::remove_var(var);
        }
        n
    }

    fn from_env() -> Option<Self> {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        let path = path.to_string_lossy().into_owned();
        let target = if let Some(name) = path.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).ok()?
        } else {
            std::os::unix::net::SocketAddr::from_pathname(&path).ok()?
        };
        // WATCHDOG_PID, when set, names the process the watchdog is meant for.
        let for_us = std::env::var("WATCHDOG_PID").ok().and_then(|p| p.parse::<u32>().ok()).is_none_or(|p| p == std::process::id());
        let interval = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|u| *u > 0 && for_us)
            .map(|u| Duration::from_micros(u / 2));
        let sock = UnixDatagram::unbound().ok()?;
        Some(Notifier { sock, target, interval })
    }

    pub fn send(&self, msg: &str) {
        if let Err(e) = self.sock.send_to_addr(msg.as_bytes(), &self.target) {
            tracing::warn!("sd_notify {msg:?}: {e}");
        }
    }
}
