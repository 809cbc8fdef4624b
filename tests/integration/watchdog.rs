//! `berth supervise`: a hung daemon is restarted within the watchdog timeout, a daemon that
//! cannot start is retried with growing back-off for as long as it takes, containers keep
//! running through all of it, and the hardware watchdog (a FIFO standing in for the device)
//! is fed while the daemon is healthy, starved once it has been unhealthy too long, and
//! disarmed with the magic close on a clean stop.

use berth_tests::{children, require_root, Daemon};
use std::time::{Duration, Instant};

const FAST: &[&str] = &["--watchdog-timeout", "2s", "--kill-grace", "300ms", "--backoff-initial", "100ms", "--backoff-max", "800ms"];

fn history(d: &Daemon) -> Vec<serde_json::Value> {
    std::fs::read(d.root.join("supervisor/history.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Vec<serde_json::Value>>(&b).ok())
        .unwrap_or_default()
}

fn kill(pid: i32, sig: i32) {
    // SAFETY: kill with a pid from the supervisor's pid file and a valid signal number.
    unsafe { libc::kill(pid, sig) };
}

#[test]
fn a_stopped_daemon_is_restarted_within_the_timeout_and_containers_keep_running() {
    require_root!();
    let d = Daemon::supervised("{}", FAST);
    assert!(d.wait_ready(Duration::from_secs(15)), "{}", d.log());
    d.load_busybox();
    let id = d.berth(&["run", "-d", "busybox", "sh", "-c", "while true; do echo tick; sleep 0.2; done"]).ok().stdout.trim().to_string();
    let pid_before = d.berth(&["inspect", "-f", "{{.State.Pid}}", &id]).ok().stdout;
    let first = d.daemon_pid().unwrap();

    kill(first, libc::SIGSTOP);
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(15);
    while Instant::now() < deadline && (d.daemon_pid() == Some(first) || !d.wait_ready(Duration::from_millis(50))) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = t0.elapsed();
    assert_ne!(d.daemon_pid(), Some(first), "the stopped daemon was not replaced:\n{}", d.log());
    // 2 s without a heartbeat, 0.3 s grace, 0.1 s back-off, and the new daemon's start.
    assert!(took < Duration::from_secs(6), "restart took {took:?}");
    let h = history(&d);
    assert!(h.last().unwrap()["reason"].as_str().unwrap().contains("no heartbeat"), "{h:?}");
    assert!(h.last().unwrap()["status"].as_str().unwrap().contains("signal"), "{h:?}");
    // The container ran on through the daemon's death and was re-adopted.
    assert_eq!(d.berth(&["inspect", "-f", "{{.State.Pid}}", &id]).ok().stdout, pid_before);
    assert_eq!(d.berth(&["inspect", "-f", "{{.State.Status}}", &id]).ok().stdout.trim(), "running");
}

#[test]
fn a_daemon_that_cannot_start_is_retried_with_growing_backoff_until_its_config_is_fixed() {
    require_root!();
    let d = Daemon::supervised(r#"{"no-such-key": true}"#, FAST);
    let supervisor = d.child_pid().unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let h = history(&d);
    assert!(h.len() >= 4, "too few retries in 2.5 s: {h:?}");
    let delays: Vec<u64> = h.iter().map(|e| e["delay_ms"].as_u64().unwrap()).collect();
    assert_eq!(&delays[..4], &[100, 200, 400, 800], "the back-off does not grow as configured: {delays:?}");
    assert!(delays.iter().all(|d| *d <= 800), "the back-off exceeds its maximum: {delays:?}");
    assert!(h.iter().all(|e| e["reason"] == "exited" && e["status"] == "exit code 1"), "{h:?}");

    std::fs::write(d.root.join("daemon.json"), "{}").unwrap();
    assert!(d.wait_ready(Duration::from_secs(5)), "the daemon did not come up once its config was fixed:\n{}", d.log());
    assert_eq!(d.child_pid(), Some(supervisor), "the supervisor itself was restarted");
    let shown = d.berth(&["system", "watchdog", "--state-dir", d.root.join("supervisor").to_str().unwrap()]).ok().stdout;
    assert!(shown.lines().count() > h.len(), "`system watchdog` does not list the history:\n{shown}");
    // The daemon it runs shows the same history in `info`.
    let info = d.api("GET", "/info", None, b"").json();
    let recorded = history(&d);
    assert_eq!(info["BerthSupervisor"]["Restarts"], recorded.len(), "{}", info["BerthSupervisor"]);
    assert_eq!(info["BerthSupervisor"]["Recent"].as_array().unwrap().last(), recorded.last());
    let text = d.berth(&["info"]).ok().stdout;
    assert!(text.contains(&format!("Supervisor Restarts: {}", recorded.len())), "{text}");
}

/// A FIFO standing in for /dev/watchdog at `<root>/watchdog`, and what was written to it
/// (when, which byte), read by a thread.
type Feeds = std::sync::Arc<std::sync::Mutex<Vec<(Instant, u8)>>>;
fn fake_watchdog(root: &std::path::Path) -> (std::path::PathBuf, Feeds) {
    let fifo = root.join("watchdog");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid C path; mkfifo creates a named pipe standing in for /dev/watchdog.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let seen: Feeds = Default::default();
    let (seen2, reader_path) = (seen.clone(), fifo.clone());
    std::thread::spawn(move || {
        use std::io::Read;
        let mut f = std::fs::File::open(reader_path).unwrap();
        let mut b = [0u8; 1];
        while let Ok(1) = f.read(&mut b) {
            seen2.lock().unwrap().push((Instant::now(), b[0]));
        }
    });
    (fifo, seen)
}

#[test]
fn the_hardware_watchdog_is_fed_while_healthy_starved_when_not_and_disarmed_on_stop() {
    require_root!();
    let root = berth_tests::scratch_root();
    let (fifo, seen) = fake_watchdog(&root);
    let fifo_s = fifo.to_str().unwrap().to_string();
    let mut flags: Vec<&str> = FAST.to_vec();
    flags.extend_from_slice(&["--hw-watchdog", &fifo_s, "--hw-timeout", "1", "--reboot-after", "1s"]);
    let mut d = Daemon::supervised("{}", &flags);
    assert!(d.wait_ready(Duration::from_secs(15)), "{}", d.log());
    std::thread::sleep(Duration::from_millis(1500));
    let fed = |from: Instant, to: Instant| seen.lock().unwrap().iter().filter(|(t, b)| *t >= from && *t <= to && *b == 0).count();
    let now = Instant::now();
    assert!(fed(now - Duration::from_millis(1400), now) >= 3, "not fed while healthy: {:?}", seen.lock().unwrap().len());

    // Unhealthy for good: a broken config and a dead daemon. After --reboot-after, no food.
    std::fs::write(d.root.join("daemon.json"), r#"{"no-such-key": true}"#).unwrap();
    kill(d.daemon_pid().unwrap(), libc::SIGKILL);
    let broke = Instant::now();
    std::thread::sleep(Duration::from_millis(3000));
    let starved_from = broke + Duration::from_millis(1500);
    assert_eq!(fed(starved_from, Instant::now()), 0, "fed while the daemon was unhealthy past --reboot-after");

    // Healthy again: fed again; then a clean stop ends with the magic close.
    std::fs::write(d.root.join("daemon.json"), "{}").unwrap();
    assert!(d.wait_ready(Duration::from_secs(5)));
    std::thread::sleep(Duration::from_millis(1000));
    let now = Instant::now();
    assert!(fed(now - Duration::from_millis(900), now) >= 1, "feeding did not resume");
    d.stop();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(seen.lock().unwrap().last().map(|(_, b)| *b), Some(b'V'), "no magic close on a clean stop");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn too_many_restarts_in_the_window_escalate_to_a_reboot() {
    require_root!();
    let root = berth_tests::scratch_root();
    let (fifo, seen) = fake_watchdog(&root);
    let fifo_s = fifo.to_str().unwrap().to_string();
    let mut flags: Vec<&str> = FAST.to_vec();
    flags.extend_from_slice(&["--hw-watchdog", &fifo_s, "--hw-timeout", "1", "--reboot-after-restarts", "3", "--restart-window", "1m"]);
    // A daemon that never starts: restarted at 0.1, 0.3, 0.7 s; the third restart starves
    // the watchdog (no --reboot-after: unhealthiness alone would not).
    let d = Daemon::supervised(r#"{"no-such-key": true}"#, &flags);
    std::thread::sleep(Duration::from_millis(2500));
    assert!(history(&d).len() >= 3);
    let (last, _) = *seen.lock().unwrap().last().expect("never fed");
    assert!(last.elapsed() > Duration::from_millis(1200), "still fed after 3 restarts within the window");
    drop(d);
    let _ = std::fs::remove_dir_all(&root);
}

/// `(state, command, parent)` of a process, from /proc/<pid>/stat; `None` once it is gone
/// (reaped).
fn proc_state(pid: u32) -> Option<(char, String, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let comm = stat[stat.find('(')? + 1..stat.rfind(')')?].to_string();
    let mut rest = stat[stat.rfind(')')? + 2..].split(' ');
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some((state, comm, ppid))
}

/// The processes whose parent is `pid` (of any of its threads, which a per-thread
/// `children` file would miss).
fn adopted_by(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| proc_state(*p).is_some_and(|s| s.2 == pid))
        .collect()
}

#[test]
fn as_pid_1_the_supervisor_reaps_orphans_and_ends_with_the_shutdown_it_was_asked_for() {
    require_root!();
    use std::os::unix::process::ExitStatusExt;
    // busybox's poweroff is SIGUSR2 to PID 1, its reboot SIGTERM. In a PID namespace the
    // kernel answers reboot(2) by killing the namespace's init: SIGINT for a power-off,
    // SIGHUP for a reboot; unshare dies of the same signal.
    for (ask, ends_with, what) in [(libc::SIGUSR2, libc::SIGINT, "poweroff"), (libc::SIGTERM, libc::SIGHUP, "reboot")] {
        let mut d = Daemon::supervised_as_pid1("{}", FAST);
        assert!(d.wait_ready(Duration::from_secs(15)), "{}", d.log());
        let sup = children(d.child_pid().unwrap())[0];
        assert_eq!(proc_state(sup).map(|s| s.1), Some("berth".to_string()));

        // An orphan in the namespace: its parent exits at once, so the kernel gives it to
        // PID 1, which must reap it when it ends or it stays a zombie for good.
        let st = std::process::Command::new("nsenter")
            .args(["-t", &sup.to_string(), "-p", "--", "sh", "-c", "sleep 2 & exit 0"])
            .status()
            .unwrap();
        assert!(st.success());
        // (The forked child is called `sh` until it has exec'd sleep.)
        let seen = Instant::now();
        let orphan = loop {
            if let Some(p) = adopted_by(sup).into_iter().find(|p| proc_state(*p).is_some_and(|s| s.1 == "sleep")) {
                break p;
            }
            assert!(seen.elapsed() < Duration::from_millis(1500), "the orphan was not given to the supervisor");
            std::thread::sleep(Duration::from_millis(10));
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Some((state, ..)) = proc_state(orphan) {
            assert!(Instant::now() < deadline, "the orphan was not reaped (state {state})");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(d.is_running(), "the supervisor ended by itself:\n{}", d.log());

        kill(sup as i32, ask);
        let status = d.wait_exit(Duration::from_secs(30)).unwrap_or_else(|| panic!("{what}: PID 1 did not end:\n{}", d.log()));
        assert_eq!(status.signal(), Some(ends_with), "{what}: ended with {status:?}:\n{}", d.log());
        let log = d.log();
        assert!(log.contains("stopping: SIGTERM to the daemon"), "{what}: the daemon was not stopped first:\n{log}");
        assert!(log.contains("PID 1 is shutting down"), "{log}");
    }
}

#[test]
fn a_board_profile_sets_the_supervisors_watchdog_and_the_daemons_defaults() {
    require_root!();
    let root = berth_tests::scratch_root();
    let (fifo, seen) = fake_watchdog(&root);
    let arch = if cfg!(target_arch = "aarch64") { "arm64" } else { "amd64" };
    let profile = root.join("board.toml");
    std::fs::write(
        &profile,
        format!(
            r#"
[board]
name = "test-board"
description = "the test's board"
arch = "{arch}"
[watchdog]
device = "{}"
timeout = 1
[storage]
driver = "overlay2"
data-root = "/var/lib/berth-never-used"
[cgroups]
parent = "/berth-board-test"
[logs]
max-size = "2k"
max-file = 2
"#,
            fifo.display()
        ),
    )
    .unwrap();
    // The supervisor hands the daemon its profile; the harness's --data-root flag wins over
    // the profile's data-root, as flags do.
    let mut flags: Vec<&str> = FAST.to_vec();
    let p = profile.to_str().unwrap().to_string();
    flags.extend_from_slice(&["--board-profile", &p]);
    let mut d = Daemon::supervised("{}", &flags);
    assert!(d.wait_ready(Duration::from_secs(15)), "{}", d.log());
    std::thread::sleep(Duration::from_millis(1200));
    assert!(seen.lock().unwrap().len() >= 2, "the profile's watchdog is not fed (timeout 1 s: every 333 ms)");
    assert!(!std::path::Path::new("/var/lib/berth-never-used").exists());

    d.load_busybox();
    let id = d
        .berth(&[
            "run",
            "-d",
            "busybox",
            "sh",
            "-c",
            "i=0; while [ $i -lt 300 ]; do echo line $i of the profile test; i=$((i+1)); done; sleep 1000",
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    let pid = d.api("GET", &format!("/containers/{id}/json"), None, b"").json()["State"]["Pid"].as_i64().unwrap();
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(cgroup.contains(&format!("/berth-board-test/{id}")), "not under the profile's cgroup parent: {cgroup}");
    // The profile's log caps: 2 KiB per file, 2 files, for ~11 KiB written.
    let dir = d.data_root().join("containers").join(&id);
    let log = dir.join(format!("{id}-json.log"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.berth(&["logs", &id]).ok().stdout.contains("line 299 ") {
        assert!(Instant::now() < deadline, "the container did not write its lines");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(std::fs::metadata(&log).unwrap().len() <= 2048, "log over the profile's max-size");
    assert!(dir.join(format!("{id}-json.log.1")).exists(), "no rotation");
    assert!(!dir.join(format!("{id}-json.log.2")).exists(), "more files than the profile's max-file");
    d.berth(&["rm", "-f", &id]).ok();
    d.stop();
    let _ = std::fs::remove_dir_all(&root);
}
