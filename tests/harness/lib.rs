//! Test harness for berth's integration suites: starts a real `berth daemon` with roots of
//! its own, and speaks to it the ways users do: the berth CLI, the docker CLI, raw HTTP.
//!
//! Every daemon gets a fresh directory under the system temp dir; dropping a [`Daemon`]
//! force-removes its containers, stops it, unmounts what is left under its root and deletes
//! the directory, also when the test panicked.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Tests that need root (runc, mounts) return early, saying so, when not root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::is_root() {
            eprintln!("skipped: this test needs root (runc, mounts)");
            return;
        }
    };
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The berth binary under test: `BERTH_BIN`, else next to the test executable's target dir.
pub fn berth_bin() -> PathBuf {
    if let Ok(p) = std::env::var("BERTH_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("berth");
    assert!(bin.exists(), "{} not found: run `cargo build --bins` before the tests (ci/test.sh does)", bin.display());
    bin
}

/// The busybox docker-archive fixture, built once per target dir. Tests run in parallel
/// threads (and test binaries may run side by side): each build goes to a name of its own
/// and is renamed into place, so nobody reads a half-written tar.
/// A statically linked berth (the product's form), which `--init` mounts into containers:
/// `BERTH_STATIC_BIN`, else the musl build next to the test's target directory.
pub fn static_berth() -> PathBuf {
    if let Ok(p) = std::env::var("BERTH_STATIC_BIN") {
        return PathBuf::from(p);
    }
    let target = berth_bin().parent().unwrap().parent().unwrap().to_path_buf();
    let bin = target.join(format!("{}-unknown-linux-musl/debug/berth", std::env::consts::ARCH));
    assert!(bin.exists(), "{} not found: ci/test.sh builds it (cargo build --bin berth --target <arch>-unknown-linux-musl)", bin.display());
    bin
}

/// Polls `f` until it holds; panics naming `what` after `limit`.
pub fn eventually(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

pub fn busybox_tar() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| fixture("busybox-image", "busybox-image.sh")).clone()
}

/// The linux/arm64 busybox image (tag `busybox:arm64`), built from Debian's arm64
/// busybox-static package (downloaded once into the target dir; see the script).
pub fn busybox_arm64_tar() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| fixture("busybox-arm64-image", "busybox-arm64-image.sh")).clone()
}

/// Builds `tests/fixtures/<script>` into `<target>/berth-fixtures/<name>.tar` once; the
/// script gets the output path and a work directory of its own.
fn fixture(name: &str, script: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("berth-fixtures");
    let tar = dir.join(format!("{name}.tar"));
    if !tar.exists() {
        std::fs::create_dir_all(&dir).unwrap();
        let tmp = dir.join(format!("{name}.{}.tar", std::process::id()));
        let out = Command::new("bash")
            .arg(workspace_root().join("tests/fixtures").join(script))
            .arg(&tmp)
            .arg(dir.join(format!("{name}-work")))
            .output()
            .unwrap();
        assert!(out.status.success(), "fixture {name} failed: {}", String::from_utf8_lossy(&out.stderr));
        std::fs::rename(&tmp, &tar).unwrap();
    }
    tar
}

/// What a command printed and how it ended.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Panics with both streams unless the command succeeded.
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "command failed:\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: String,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(nl) = data.windows(2).position(|w| w == b"\r\n") else { return out };
        let size = usize::from_str_radix(std::str::from_utf8(&data[..nl]).unwrap_or("0").trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = nl + 2;
        let end = (start + size).min(data.len());
        out.extend_from_slice(&data[start..end]);
        data = &data[(end + 2).min(data.len())..];
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A network namespace of the test's own: each daemon runs in one, so its bridges, veths
/// and nftables rules never touch the machine's network. Kept alive by the open handle;
/// it goes (with everything in it) when the handle drops and nothing runs in it.
pub struct NetNs(std::fs::File);

impl NetNs {
    pub fn new() -> Self {
        std::thread::spawn(|| {
            // SAFETY: unshare with a valid flag; it changes only this short-lived thread.
            assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare(CLONE_NEWNET): {}", std::io::Error::last_os_error());
            // A child forked here starts in this thread's namespace.
            let up = Command::new("ip").args(["link", "set", "lo", "up"]).status().expect("running ip");
            assert!(up.success(), "ip link set lo up failed");
            NetNs(std::fs::File::open("/proc/thread-self/ns/net").unwrap())
        })
        .join()
        .unwrap()
    }

    /// Makes `cmd` start inside this namespace (and nothing else changes for it).
    pub fn enter(&self, cmd: &mut Command) {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let fd = self.0.as_raw_fd();
        // SAFETY: setns is async-signal-safe; the fd stays open until the child has exec'd
        // (we hold the File for as long as the Command is used).
        unsafe {
            cmd.pre_exec(move || if libc::setns(fd, libc::CLONE_NEWNET) == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) });
        }
    }

    /// Runs `program args` inside the namespace.
    pub fn run(&self, program: &str, args: &[&str]) -> Out {
        let mut cmd = Command::new(program);
        cmd.args(args).stdin(Stdio::null());
        self.enter(&mut cmd);
        let out = cmd.output().unwrap_or_else(|e| panic!("running {program}: {e}"));
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
        }
    }

    /// A TCP listener on `addr` inside the namespace (another program holding a port).
    pub fn listen(&self, addr: &str) -> std::net::TcpListener {
        use std::os::fd::AsRawFd;
        let fd = self.0.as_raw_fd();
        let addr = addr.to_string();
        std::thread::scope(|s| {
            s.spawn(move || {
                // SAFETY: setns on this scoped thread only, with a namespace fd we hold open.
                assert_eq!(unsafe { libc::setns(fd, libc::CLONE_NEWNET) }, 0);
                std::net::TcpListener::bind(&addr).unwrap()
            })
            .join()
            .unwrap()
        })
    }

    /// `GET path` from `addr` (host:port) inside the namespace: the body, or the error.
    pub fn http_get(&self, addr: &str, path: &str) -> Result<String, String> {
        use std::os::fd::AsRawFd;
        let fd = self.0.as_raw_fd();
        let (addr, path) = (addr.to_string(), path.to_string());
        std::thread::scope(|s| {
            s.spawn(move || {
                // SAFETY: setns on this scoped thread only, with a namespace fd we hold open.
                if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                    return Err(format!("setns: {}", std::io::Error::last_os_error()));
                }
                let sa: std::net::SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
                let mut c =
                    std::net::TcpStream::connect_timeout(&sa, Duration::from_secs(3)).map_err(|e| format!("connect {addr}: {e}"))?;
                c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                c.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes()).map_err(|e| e.to_string())?;
                let mut resp = String::new();
                c.read_to_string(&mut resp).map_err(|e| format!("read from {addr}: {e}"))?;
                Ok(resp.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or(resp))
            })
            .join()
            .unwrap()
        })
    }
}

impl Default for NetNs {
    fn default() -> Self {
        Self::new()
    }
}

/// A running daemon with its own data-root and exec-root, in a network namespace of its own.
pub struct Daemon {
    pub root: PathBuf,
    pub netns: NetNs,
    /// Runs in the test process's namespace (see [`Daemon::on_host_network`]).
    host_net: bool,
    /// Started by `berth supervise` with these flags (see [`Daemon::supervised`]).
    supervise: Option<Vec<String>>,
    child: Option<Child>,
    /// Listen addresses besides the unix socket (`tcp://...`).
    extra_hosts: Vec<String>,
    /// A command berth runs under (`unshare --pid --fork`), empty for none.
    wrapper: Vec<String>,
}

/// The pids of `pid`'s children (of its main thread).
pub fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// A fresh directory for one daemon's roots.
pub fn scratch_root() -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let root = std::env::temp_dir().join(format!("berth-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    root
}

impl Daemon {
    pub fn start() -> Self {
        Self::start_with_config("{}")
    }

    /// A daemon whose `daemon.json` is `config`.
    pub fn start_with_config(config: &str) -> Self {
        let mut d = Self::unstarted(config, false, None);
        d.spawn();
        d
    }

    /// A daemon listening on `hosts` (inside its network namespace) besides its socket.
    pub fn start_with_hosts(config: &str, hosts: &[&str]) -> Self {
        let mut d = Self::unstarted(config, false, None);
        d.extra_hosts = hosts.iter().map(|h| h.to_string()).collect();
        d.spawn();
        d
    }
}

/// A daemon that must refuse to start: `berth -H <its own socket> <before> daemon <after>`
/// on a fresh root with `config` as its daemon.json. Returns its exit code and stderr.
pub fn refused_start(config: &str, before: &[&str], after: &[&str]) -> (Option<i32>, String) {
    let root = scratch_root();
    std::fs::write(root.join("daemon.json"), config).unwrap();
    let out = Command::new(berth_bin())
        .args(["-H", &format!("unix://{}/s.sock", root.display())])
        .args(before)
        .arg("daemon")
        .args(after)
        .arg("--config-file")
        .arg(root.join("daemon.json"))
        .arg("--data-root")
        .arg(root.join("data"))
        .arg("--exec-root")
        .arg(root.join("run"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&root);
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

impl Daemon {
    /// A fresh root with `config` as its daemon.json; nothing started yet.
    fn unstarted(config: &str, host_net: bool, supervise: Option<&[&str]>) -> Self {
        let root = scratch_root();
        std::fs::write(root.join("daemon.json"), config).unwrap();
        let supervise = supervise.map(|f| f.iter().map(|s| s.to_string()).collect());
        Daemon { root, netns: NetNs::new(), host_net, supervise, child: None, extra_hosts: Vec::new(), wrapper: Vec::new() }
    }

    /// `berth supervise <flags> -- <daemon flags>` on a fresh root with `config` as its
    /// daemon.json. Does not wait for the daemon (its config may be broken on purpose);
    /// [`Daemon::wait_ready`] does. The supervisor's files are in `<root>/supervisor`.
    pub fn supervised(config: &str, flags: &[&str]) -> Self {
        let mut d = Self::unstarted(config, false, Some(flags));
        d.launch(&[]);
        d
    }

    /// [`Daemon::supervised`] as the first process (PID 1) of a new PID namespace, under
    /// `unshare --pid --fork`, which dies of the signal its PID 1 died of.
    pub fn supervised_as_pid1(config: &str, flags: &[&str]) -> Self {
        let mut d = Self::unstarted(config, false, Some(flags));
        d.wrapper = ["unshare", "--pid", "--fork", "--kill-child=SIGTERM", "--"].map(String::from).to_vec();
        d.launch(&[]);
        d
    }

    /// Waits up to `limit` for the process the harness started to end; `None`: it runs on.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        let c = self.child.as_mut()?;
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The pid of the daemon the supervisor runs now.
    pub fn daemon_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.root.join("supervisor/daemon.pid")).ok()?.trim().parse().ok()
    }

    /// The pid of the process the harness started (the daemon, or its supervisor).
    pub fn child_pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Waits (up to `limit`) until the daemon answers `/_ping`.
    pub fn wait_ready(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.try_api("GET", "/_ping", None, b"").map(|r| r.status == 200).unwrap_or(false) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// A daemon in the test process's own network namespace, for tests that talk to servers
    /// the test runs on 127.0.0.1 (registries, fault proxies). So that it changes nothing
    /// there, it makes no default bridge, writes no rules and leaves ip_forward alone:
    /// its containers run with `--network none` unless told otherwise.
    pub fn on_host_network(config: &str) -> Self {
        let mut cfg: serde_json::Value = serde_json::from_str(config).unwrap();
        cfg["bridge"] = "none".into();
        cfg["iptables"] = false.into();
        cfg["ip-forward"] = false.into();
        let mut d = Self::unstarted(&cfg.to_string(), true, None);
        d.spawn();
        d
    }

    pub fn data_root(&self) -> PathBuf {
        self.root.join("data")
    }

    pub fn sock(&self) -> PathBuf {
        self.root.join("run/berth.sock")
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.sock().display())
    }

    /// Starts the daemon on this root (again) and waits until it answers.
    pub fn spawn(&mut self) {
        self.spawn_env(&[]);
    }

    /// [`Daemon::spawn`] with extra environment (`BERTH_FAILPOINTS`).
    pub fn spawn_env(&mut self, env: &[(&str, &str)]) {
        self.launch(env);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!("daemon exited ({status}) at start:\n{}", self.log());
                }
            }
            if self.try_api("GET", "/_ping", None, b"").map(|r| r.status == 200).unwrap_or(false) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("daemon did not answer within 15s:\n{}", self.log());
    }

    /// Starts the daemon (or its supervisor) without waiting for it.
    fn launch(&mut self, env: &[(&str, &str)]) {
        assert!(self.child.is_none(), "daemon already running");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.root.join("daemon.log")).unwrap();
        let mut cmd = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(berth_bin());
                c
            }
            None => Command::new(berth_bin()),
        };
        if !self.host_net {
            self.netns.enter(&mut cmd);
        }
        cmd.args(["-H", &self.host()]);
        for h in &self.extra_hosts {
            cmd.args(["-H", h]);
        }
        match &self.supervise {
            Some(flags) => {
                cmd.arg("supervise").args(flags).arg("--state-dir").arg(self.root.join("supervisor")).args(["--", "--log-level", "debug"]);
            }
            None => {
                cmd.args(["daemon", "--log-level", "debug"]);
            }
        }
        let child = cmd
            .arg("--config-file")
            .arg(self.root.join("daemon.json"))
            .arg("--data-root")
            .arg(self.data_root())
            .arg("--exec-root")
            .arg(self.root.join("run"))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting berth daemon");
        self.child = Some(child);
    }

    /// The daemon's peak resident memory so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let pid = self.child.as_ref().expect("no daemon running").id();
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:").map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap()))
            .unwrap()
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("daemon.log")).unwrap_or_default()
    }

    fn signal_and_wait(&mut self, sig: i32) {
        if let Some(mut c) = self.child.take() {
            // Under a wrapper (unshare, which ignores SIGTERM while it waits) berth is its child.
            let pid = match self.wrapper.is_empty() {
                true => c.id(),
                false => children(c.id()).first().copied().unwrap_or(c.id()),
            };
            // SAFETY: kill with a pid we spawned (or its child) and a valid signal number.
            unsafe { libc::kill(pid as i32, sig) };
            let _ = c.wait();
        }
    }

    /// SIGTERM, as systemd stops a service.
    pub fn stop(&mut self) {
        self.signal_and_wait(libc::SIGTERM);
    }

    /// SIGKILL: no clean-up at all.
    pub fn kill9(&mut self) {
        self.signal_and_wait(libc::SIGKILL);
    }

    /// Waits (up to 30 s) for the daemon to die by itself (a failpoint) and returns how.
    pub fn wait_died(&mut self) -> std::process::ExitStatus {
        assert!(self.child.is_some(), "no daemon running");
        match self.wait_exit(Duration::from_secs(30)) {
            Some(status) => status,
            None => {
                let _ = self.child.take().map(|mut c| c.kill());
                panic!("the daemon did not die at its failpoint:\n{}", self.log());
            }
        }
    }

    /// Is the daemon process still running?
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// What, on disk and in the kernel, no record owns, and what a record owns but is gone:
    /// empty when the state is consistent. The daemon must be running (it is asked for its
    /// records). Removal finishes its files just after it answers, so a moment (up to 3 s)
    /// is given for cleanup in progress; a leak stays and is reported.
    pub fn inconsistencies(&self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let found = self.inconsistencies_now();
            if found.is_empty() || Instant::now() > deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn inconsistencies_now(&self) -> Vec<String> {
        use sha2::{Digest, Sha256};
        let mut problems = Vec::new();
        let list = self.api("GET", "/containers/json?all=1", None, b"").json();
        let mut all = std::collections::BTreeSet::new();
        for c in list.as_array().unwrap() {
            let id = c["Id"].as_str().unwrap().to_string();
            all.insert(id);
        }
        let mut chains = std::collections::BTreeSet::new();
        for img in self.api("GET", "/images/json", None, b"").json().as_array().unwrap() {
            let insp = self.api("GET", &format!("/images/{}/json", img["Id"].as_str().unwrap()), None, b"").json();
            let mut prev: Option<String> = None;
            for d in insp["RootFS"]["Layers"].as_array().unwrap() {
                let d = d.as_str().unwrap().to_string();
                let chain = match prev {
                    None => d,
                    Some(p) => format!("sha256:{}", hex::encode(Sha256::digest(format!("{p} {d}").as_bytes()))),
                };
                chains.insert(chain.trim_start_matches("sha256:").to_string());
                prev = Some(chain);
            }
        }
        let names = |dir: PathBuf| -> Vec<String> {
            std::fs::read_dir(dir).map(|r| r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default()
        };
        let ov = self.data_root().join("overlay2");
        for n in names(ov.clone()) {
            let base = n.strip_suffix("-init").unwrap_or(&n);
            if n != "l" && !all.contains(base) && !chains.contains(&n) {
                problems.push(format!("overlay2/{n} has no record"));
            }
        }
        for c in &all {
            if !ov.join(c).join("diff").is_dir() || !ov.join(format!("{c}-init")).is_dir() {
                let state = self.api("GET", &format!("/containers/{c}/json"), None, b"").json()["State"]["Status"].clone();
                if state != "dead" {
                    problems.push(format!("container {c} ({state}) has no root filesystem and is not marked dead"));
                }
            }
        }
        for l in &chains {
            if !ov.join(l).join("diff").is_dir() {
                problems.push(format!("layer {l} of a listed image is missing"));
            }
            if !self.data_root().join(format!("images/layers/{l}.split")).is_file() {
                problems.push(format!("layer {l} of a listed image has no recorded tar layout"));
            }
        }
        for n in names(self.data_root().join("images/layers")) {
            if !n.strip_suffix(".split").is_some_and(|c| chains.contains(c)) {
                problems.push(format!("layer layout images/layers/{n} belongs to no listed layer"));
            }
        }
        for n in names(self.data_root().join("containers")) {
            if !all.contains(&n) {
                problems.push(format!("data dir containers/{n} has no record"));
            }
        }
        // Bundles, runtime containers and mounts must belong to a container that exists. (A
        // container that has just exited may still have them for a moment: its monitor runs
        // `runc delete` and the unmount follows the exit.)
        for (dir, what) in [(self.root.join("run/containers"), "bundle"), (self.root.join("run/runtime-runc"), "runtime container")] {
            for n in names(dir) {
                if !all.contains(&n) {
                    problems.push(format!("{what} {n} belongs to no container"));
                }
            }
        }
        let volumes: Vec<String> = self.api("GET", "/volumes", None, b"").json()["Volumes"]
            .as_array()
            .map(|l| l.iter().map(|v| v["Name"].as_str().unwrap_or("").to_string()).collect())
            .unwrap_or_default();
        for n in names(self.data_root().join("volumes")) {
            if !volumes.contains(&n) {
                problems.push(format!("volume directory volumes/{n} has no record"));
            }
        }
        let root = self.root.display().to_string();
        for m in std::fs::read_to_string("/proc/self/mountinfo").unwrap().lines().filter_map(|l| l.split(' ').nth(4)) {
            if let Some(rest) = m.strip_prefix(&root) {
                if rest
                    .strip_prefix("/data/volumes/")
                    .and_then(|r| r.strip_suffix("/_data"))
                    .is_some_and(|v| volumes.iter().any(|n| n == v))
                {
                    continue; // a volume's device, mounted while a container uses it
                }
                let owner = rest.trim_start_matches("/data/overlay2/").trim_start_matches("/run/netns/").trim_end_matches("/merged");
                if !all.contains(owner) {
                    problems.push(format!("mount {m} belongs to no container"));
                }
            }
        }
        // Host-side veths (vb + 12 hex digits of the container id) of containers that exist.
        for line in self.netns.run("ip", &["-o", "link", "show"]).stdout.lines() {
            let name = line.split(':').nth(1).unwrap_or("").trim().split('@').next().unwrap_or("");
            if let Some(short) = name.strip_prefix("vb").filter(|s| s.len() == 12 && s.bytes().all(|b| b.is_ascii_hexdigit())) {
                if !all.iter().any(|c| c.starts_with(short)) {
                    problems.push(format!("veth {name} belongs to no container"));
                }
            }
        }

        problems
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn run(&self, program: &Path, args: &[&str], env: &[(&str, String)]) -> Out {
        let mut cmd = Command::new(program);
        cmd.args(args).stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap_or_else(|e| panic!("running {}: {e}", program.display()));
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
        }
    }

    /// The berth CLI against this daemon (its client config in the test root).
    pub fn berth(&self, args: &[&str]) -> Out {
        self.run(&berth_bin(), args, &[("BERTH_HOST", self.host()), ("BERTH_CONFIG", self.root.join("berth-config").display().to_string())])
    }

    /// The real docker CLI against this daemon.
    pub fn docker(&self, args: &[&str]) -> Out {
        self.run(
            Path::new("docker"),
            args,
            &[("DOCKER_HOST", self.host()), ("DOCKER_CONFIG", self.root.join("docker-config").display().to_string())],
        )
    }

    /// The real docker CLI with its stdin fed `input`: each chunk after its pause (an
    /// interactive user), then closed. With `tty`, the CLI runs under a pseudo-terminal
    /// (`script`), as it does for a person at a terminal.
    pub fn docker_typed(&self, args: &[&str], tty: bool, input: &[(u64, &[u8])]) -> Out {
        let mut cmd = if tty {
            let line = std::iter::once("docker").chain(args.iter().copied()).map(shell_quote).collect::<Vec<_>>().join(" ");
            let mut c = Command::new("script");
            c.args(["-qefc", &line, "/dev/null"]);
            c
        } else {
            let mut c = Command::new("docker");
            c.args(args);
            c
        };
        cmd.env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.root.join("docker-config"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("starting docker");
        let mut stdin = child.stdin.take().unwrap();
        let input: Vec<(u64, Vec<u8>)> = input.iter().map(|(ms, b)| (*ms, b.to_vec())).collect();
        let feeder = std::thread::spawn(move || {
            for (ms, bytes) in input {
                std::thread::sleep(Duration::from_millis(ms));
                if stdin.write_all(&bytes).is_err() {
                    return;
                }
            }
        });
        let out = child.wait_with_output().expect("waiting for docker");
        let _ = feeder.join();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
        }
    }

    pub fn load_busybox(&self) {
        let tar = busybox_tar();
        self.berth(&["load", "-i", tar.to_str().unwrap()]).ok();
    }

    fn try_api(&self, method: &str, path: &str, content_type: Option<&str>, body: &[u8]) -> std::io::Result<Resp> {
        let mut s = UnixStream::connect(self.sock())?;
        s.set_read_timeout(Some(Duration::from_secs(120)))?;
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: berth\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
        if let Some(ct) = content_type {
            req.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes())?;
        // A server may answer (413) and close before a large body is written: read its answer.
        if let Err(e) = s.write_all(body) {
            if e.kind() != std::io::ErrorKind::BrokenPipe && e.kind() != std::io::ErrorKind::ConnectionReset {
                return Err(e);
            }
        }
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| std::io::Error::other("no header end"))?;
        let headers = String::from_utf8_lossy(&raw[..split]).into_owned();
        let status = headers.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let mut body = raw[split + 4..].to_vec();
        if headers.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            body = dechunk(&body);
        }
        Ok(Resp { status, headers, body })
    }

    /// One raw HTTP request whose failure (the daemon dying) is an answer, not a panic.
    pub fn try_api_for_tests(&self, method: &str, path: &str, body: &[u8]) -> std::io::Result<Resp> {
        self.try_api(method, path, Some("application/x-tar"), body)
    }

    /// One raw HTTP request.
    pub fn api(&self, method: &str, path: &str, content_type: Option<&str>, body: &[u8]) -> Resp {
        self.try_api(method, path, content_type, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Names of the images the daemon lists, as `repo:tag`.
    pub fn image_tags(&self) -> Vec<String> {
        let r = self.api("GET", "/images/json", None, b"");
        r.json()
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|i| i["RepoTags"].as_array().cloned().unwrap_or_default())
            .map(|t| t.as_str().unwrap().to_string())
            .collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            if let Ok(r) = self.try_api("GET", "/containers/json?all=1", None, b"") {
                if let Ok(serde_json::Value::Array(list)) = serde_json::from_slice::<serde_json::Value>(&r.body) {
                    for c in list {
                        let _ = self.try_api("DELETE", &format!("/containers/{}?force=1", c["Id"].as_str().unwrap_or("")), None, b"");
                    }
                }
            }
            self.stop();
        }
        // Whatever is still mounted under the root (a test that killed the daemon).
        let root = self.root.display().to_string();
        if let Ok(m) = std::fs::read_to_string("/proc/self/mountinfo") {
            let mut points: Vec<&str> = m.lines().filter_map(|l| l.split(' ').nth(4)).filter(|p| p.starts_with(&root)).collect();
            points.sort_by_key(|p| std::cmp::Reverse(p.len()));
            for p in points {
                let c = std::ffi::CString::new(p).unwrap();
                // SAFETY: a valid C string path; MNT_DETACH never blocks.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
        if std::env::var_os("BERTH_KEEP_TEST_ROOT").is_none() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// A docker-archive tar with one image made of `layers` (uncompressed tars, bottom first),
/// tagged `tag`: for feeding the daemon layers an attacker made.
pub fn docker_archive_layers(layers: &[&[u8]], tag: &str) -> Vec<u8> {
    docker_archive_for(layers, tag, "amd64")
}

/// [`docker_archive_layers`] for another architecture (the config says so; the content is
/// whatever the layers hold).
pub fn docker_archive_for(layers: &[&[u8]], tag: &str, arch: &str) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let diff_ids: Vec<String> = layers.iter().map(|l| format!("sha256:{}", hex::encode(Sha256::digest(l)))).collect();
    let config = serde_json::json!({
        "architecture": arch, "os": "linux", "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    })
    .to_string();
    let config_name = format!("{}.json", hex::encode(Sha256::digest(config.as_bytes())));
    let names: Vec<String> = (0..layers.len()).map(|i| format!("layer{i}/layer.tar")).collect();
    let manifest = serde_json::json!([{"Config": config_name, "RepoTags": [tag], "Layers": names}]).to_string();
    let mut members: Vec<(&str, &[u8])> = names.iter().map(String::as_str).zip(layers.iter().copied()).collect();
    members.push((&config_name, config.as_bytes()));
    members.push(("manifest.json", manifest.as_bytes()));
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    }
    b.into_inner().unwrap()
}

/// [`docker_archive_layers`] with one layer.
pub fn docker_archive(layer: &[u8], tag: &str) -> Vec<u8> {
    docker_archive_layers(&[layer], tag)
}

/// A layer tar built from raw entries, names and link targets written as given (the tar
/// crate's own checks would refuse the hostile ones). `(name, type, link target, content)`.
pub fn raw_layer(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, typ, link, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*typ);
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_size(data.len() as u64);
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// Debian's `docker-registry` on 127.0.0.1 with a free port and storage of its own; stopped
/// and removed on drop.
/// A loopback port no other server of this test process was given: the kernel may hand
/// the same ephemeral port to two `bind(:0)` calls once the first socket is closed, and two
/// registries started side by side would then share one.
fn unused_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap();
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

pub struct Registry {
    pub port: u16,
    dir: PathBuf,
    child: Child,
}

fn sh(dir: &Path, script: &str) {
    let out = Command::new("sh").arg("-ec").arg(script).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Registry {
    pub fn start() -> Option<Self> {
        Self::start_with(None, false)
    }

    /// A registry over TLS that wants a client certificate signed by the test CA (no
    /// password). `client_dir()` holds Docker's certs.d files for it: `ca.crt`,
    /// `client.cert`, `client.key`.
    pub fn start_mutual_tls() -> Option<Self> {
        Self::start_with(None, true)
    }

    pub fn client_dir(&self) -> PathBuf {
        self.dir.join("client")
    }

    /// A registry over TLS (a CA made for the test; its certificate is `ca_cert()`) that
    /// wants `user`/`password` (htpasswd, bcrypt).
    pub fn start_secure(user: &str, password: &str) -> Option<Self> {
        Self::start_with(Some((user, password)), false)
    }

    /// The test CA's certificate (secure registries only).
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    fn start_with(secure: Option<(&str, &str)>, mutual: bool) -> Option<Self> {
        if Command::new("docker-registry").arg("--version").output().is_err() {
            eprintln!("skipped: docker-registry is not installed (ci/install-deps.sh installs it)");
            return None;
        }
        let dir = scratch_root();
        let port = unused_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.join("data").display()
        );
        let tls = secure.is_some() || mutual;
        if tls {
            sh(
                &dir,
                "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj '/CN=berth test CA' 2>/dev/null
                 openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj '/CN=127.0.0.1' 2>/dev/null
                 printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > ext.cnf
                 openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile ext.cnf 2>/dev/null
                 mkdir client && cp ca.crt client/ca.crt
                 openssl req -newkey rsa:2048 -nodes -keyout client/client.key -out client.csr -subj '/CN=edge-device' 2>/dev/null
                 printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n' > client-ext.cnf
                 openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client/client.cert -days 2 -extfile client-ext.cnf 2>/dev/null",
            );
            config.push_str(&format!("  tls:\n    certificate: {d}/server.crt\n    key: {d}/server.key\n", d = dir.display()));
            if mutual {
                config.push_str(&format!("    clientcas:\n      - {d}/ca.crt\n", d = dir.display()));
            }
        }
        if let Some((user, password)) = secure {
            sh(&dir, &format!("htpasswd -Bbn '{user}' '{password}' > htpasswd"));
            config.push_str(&format!("auth:\n  htpasswd:\n    realm: berth-test\n    path: {d}/htpasswd\n", d = dir.display()));
        }
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting docker-registry");
        let mut r = Registry { port, dir, child };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            // A registry that could not bind its port exits: never take whoever holds the
            // port for ours.
            if let Ok(Some(status)) = r.child.try_wait() {
                panic!("docker-registry exited ({status}): {}", std::fs::read_to_string(r.dir.join("registry.log")).unwrap_or_default());
            }
            if tls {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Some(r);
                }
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n");
                let mut buf = [0u8; 12];
                if s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.0 200") {
                    return Some(r);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("docker-registry did not come up: {}", std::fs::read_to_string(r.dir.join("registry.log")).unwrap_or_default());
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Pushes a docker-archive tar as `name` (repo:tag) with skopeo.
    pub fn push_archive(&self, archive: &Path, name: &str) {
        self.push_archive_as(archive, name, None)
    }

    /// [`Registry::push_archive`] with `user:password` credentials.
    pub fn push_archive_as(&self, archive: &Path, name: &str, creds: Option<&str>) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--quiet", "--dest-tls-verify=false"]);
        if self.client_dir().join("client.cert").exists() {
            cmd.arg("--dest-cert-dir").arg(self.client_dir());
        }
        if let Some(c) = creds {
            cmd.arg("--dest-creds").arg(c);
        }
        let out =
            cmd.arg(format!("docker-archive:{}", archive.display())).arg(format!("docker://{}/{name}", self.host())).output().unwrap();
        assert!(out.status.success(), "skopeo push failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// One raw HTTP request to the registry: (status, headers, body).
    pub fn http(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String, Vec<u8>) {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let mut req =
            format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n", self.host(), body.len());
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let mut body = raw[split + 4..].to_vec();
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            body = dechunk(&body);
        }
        (status, head, body)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What the fault proxy does to large blob responses.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Forward everything.
    None,
    /// Close the connection after this many body bytes of the first large blob response.
    CutAfter(usize),
    /// Flip the body byte at this offset of every large blob response.
    Flip(usize),
    /// Forward large blob bodies slowly (bytes per 10 ms), for killing the daemon mid-pull.
    Slow(usize),
}

/// One request the proxy saw: path, its Range header, body bytes forwarded.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub range: Option<String>,
    pub body_bytes: usize,
}

/// A TCP proxy in front of a registry that injects [`Fault`]s into blob downloads.
pub struct FaultProxy {
    pub port: u16,
    pub seen: std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
}

/// Blob responses at least this large count as layers (configs and manifests are smaller).
const LARGE: usize = 64 * 1024;

impl FaultProxy {
    pub fn start(upstream: u16, fault: Fault) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let cut_done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen2 = seen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let (seen, cut_done) = (seen2.clone(), cut_done.clone());
                std::thread::spawn(move || {
                    let _ = proxy_one(client, upstream, fault, &seen, &cut_done);
                });
            }
        });
        FaultProxy { port, seen }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

fn read_head(s: &mut std::net::TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(b[0]);
    }
    Ok(head)
}

fn proxy_one(
    mut client: std::net::TcpStream,
    upstream: u16,
    fault: Fault,
    seen: &std::sync::Mutex<Vec<Seen>>,
    cut_done: &std::sync::atomic::AtomicBool,
) -> std::io::Result<()> {
    // A TLS handshake (berth probes HTTPS first): this proxy speaks plain HTTP, so it hangs up,
    // as a plain-HTTP server's refusal would make the client fall back.
    let mut first = [0u8; 1];
    if client.peek(&mut first)? == 1 && first[0] == 0x16 {
        return Ok(());
    }
    let head = read_head(&mut client)?;
    let text = String::from_utf8_lossy(&head).into_owned();
    let path = text.split(' ').nth(1).unwrap_or("").to_string();
    let range =
        text.lines().find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("range")).map(|(_, v)| v.trim().to_string()));
    // One request per connection: ask the registry to close after it.
    let head = text.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n").replacen("Connection: keep-alive\r\n", "", 1);
    let mut up = std::net::TcpStream::connect(("127.0.0.1", upstream))?;
    up.write_all(head.as_bytes())?;
    let resp_head = read_head(&mut up)?;
    let rh = String::from_utf8_lossy(&resp_head).to_ascii_lowercase();
    let length: usize = rh.lines().find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0))).unwrap_or(0);
    client.write_all(&resp_head)?;
    let large = path.contains("/blobs/") && length >= LARGE;
    let mut sent = 0usize;
    let mut buf = [0u8; 8192];
    let result = loop {
        let n = match up.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) => break Err(e),
        };
        let chunk = &mut buf[..n];
        if large {
            match fault {
                Fault::CutAfter(limit) if !cut_done.load(std::sync::atomic::Ordering::SeqCst) && sent + n > limit => {
                    let keep = limit - sent;
                    let _ = client.write_all(&chunk[..keep]);
                    sent += keep;
                    cut_done.store(true, std::sync::atomic::Ordering::SeqCst);
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    break Ok(());
                }
                Fault::Flip(at) if at >= sent && at < sent + n => chunk[at - sent] ^= 0x01,
                Fault::Slow(per_tick) => {
                    for part in chunk.chunks(per_tick.max(1)) {
                        client.write_all(part)?;
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    sent += n;
                    continue;
                }
                _ => {}
            }
        }
        if client.write_all(chunk).is_err() {
            break Ok(());
        }
        sent += n;
    };
    seen.lock().unwrap().push(Seen { path, range, body_bytes: sent });
    result
}

/// A registry that answers with canned responses: path (without query) → (status, extra
/// headers, body). For the answers real registries never give.
pub struct FakeRegistry {
    pub port: u16,
}

/// One canned answer.
pub type Canned = (u16, Vec<(String, String)>, Vec<u8>);

impl FakeRegistry {
    pub fn start(routes: std::collections::HashMap<String, Canned>) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let routes = std::sync::Arc::new(routes);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { break };
                let routes = routes.clone();
                std::thread::spawn(move || {
                    let mut first = [0u8; 1];
                    if conn.peek(&mut first).ok() != Some(1) || first[0] == 0x16 {
                        return; // plain HTTP only: a TLS probe is hung up on
                    }
                    let Ok(head) = read_head(&mut conn) else { return };
                    let text = String::from_utf8_lossy(&head).into_owned();
                    let path = text.split(' ').nth(1).unwrap_or("").split('?').next().unwrap_or("").to_string();
                    let (status, headers, body) =
                        routes.get(&path).cloned().unwrap_or((404, vec![], b"{\"errors\":[{\"code\":\"NOT_FOUND\"}]}".to_vec()));
                    let mut resp = format!("HTTP/1.1 {status} X\r\nConnection: close\r\n");
                    let mut has_length = false;
                    for (k, v) in &headers {
                        has_length |= k.eq_ignore_ascii_case("content-length");
                        resp.push_str(&format!("{k}: {v}\r\n"));
                    }
                    if !has_length {
                        resp.push_str(&format!("Content-Length: {}\r\n", body.len()));
                    }
                    resp.push_str("\r\n");
                    let _ = conn.write_all(resp.as_bytes());
                    let _ = conn.write_all(&body);
                });
            }
        });
        FakeRegistry { port }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// xorshift64*: reproducible randomness from a printed seed, no dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}
