//! The daemon stops and starts again (SIGTERM, or SIGKILL as in a crash): containers keep
//! running under their monitors, and every container is listed with its state and exit code.

use berth_tests::{require_root, Daemon};
use std::time::Duration;

fn states(d: &Daemon) -> Vec<String> {
    let mut v: Vec<String> = d
        .api("GET", "/containers/json?all=1", None, b"")
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{} {}", c["Names"][0].as_str().unwrap(), c["State"].as_str().unwrap()))
        .collect();
    v.sort();
    v
}

fn inspect(d: &Daemon, name: &str, field: &str) -> String {
    d.berth(&["inspect", "-f", field, name]).ok().stdout.trim().to_string()
}

#[test]
fn restart_keeps_every_container_and_running_ones_keep_running() {
    require_root!();
    let mut d = Daemon::start();
    d.load_busybox();
    d.berth(&["run", "--name", "five", "busybox", "sh", "-c", "exit 5"]);
    d.berth(&["create", "--name", "fresh", "busybox", "true"]).ok();
    d.berth(&["run", "-d", "--name", "ticker", "busybox", "sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"])
        .ok();
    let pid = inspect(&d, "ticker", "{{.State.Pid}}");
    let before = states(&d);
    assert_eq!(before, vec!["/five exited", "/fresh created", "/ticker running"]);

    d.stop();
    let lines_before = std::fs::read_dir(d.data_root().join("containers")).unwrap().count();
    std::thread::sleep(Duration::from_millis(600)); // the ticker writes while no daemon runs
    d.spawn();

    assert_eq!(states(&d), before);
    assert_eq!(inspect(&d, "five", "{{.State.ExitCode}}"), "5");
    assert_eq!(inspect(&d, "ticker", "{{.State.Pid}}"), pid, "the running container was restarted, not re-adopted");
    assert_eq!(std::fs::read_dir(d.data_root().join("containers")).unwrap().count(), lines_before);
    let logs = d.berth(&["logs", "ticker"]).ok().stdout;
    let n = logs.lines().count();
    assert!(n >= 5, "lines written during the downtime are missing: {logs}");

    // The re-adopted container is still managed: stop works and records its exit.
    d.berth(&["stop", "-t", "0", "ticker"]).ok();
    assert_eq!(inspect(&d, "ticker", "{{.State.Status}} {{.State.ExitCode}}"), "exited 137");
    assert_eq!(d.berth(&["start", "-a", "fresh"]).code, 0);
}

#[test]
fn exits_during_a_crash_are_recorded() {
    require_root!();
    let mut d = Daemon::start();
    d.load_busybox();
    d.berth(&["run", "-d", "--name", "short", "busybox", "sh", "-c", "sleep 1; echo bye; exit 7"]).ok();
    d.kill9();
    std::thread::sleep(Duration::from_millis(1800));
    d.spawn();
    assert_eq!(inspect(&d, "short", "{{.State.Status}} {{.State.ExitCode}}"), "exited 7");
    assert_ne!(inspect(&d, "short", "{{.State.FinishedAt}}"), "0001-01-01T00:00:00Z");
    assert_eq!(d.berth(&["logs", "short"]).ok().stdout, "bye\n");
    assert_eq!(d.berth(&["wait", "short"]).ok().stdout.trim(), "7");
}

/// Issue 7's scenario: ten running containers and a SIGKILLed daemon.
#[test]
fn ten_containers_ride_out_a_daemon_crash() {
    require_root!();
    let mut d = Daemon::start();
    d.load_busybox();
    let mut tickers = Vec::new();
    for i in 0..8 {
        let name = format!("t{i}");
        d.berth(&["run", "-d", "--name", &name, "busybox", "sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"])
            .ok();
        tickers.push((name.clone(), inspect(&d, &name, "{{.State.Pid}}")));
    }
    d.berth(&["run", "-d", "--name", "exiter", "busybox", "sh", "-c", "sleep 1.5; exit 7"]).ok();
    d.berth(&["run", "-d", "--name", "always", "--restart", "always", "busybox", "sh", "-c", "echo run; sleep 1; exit 3"]).ok();
    let ticks_before = d.berth(&["logs", "t0"]).ok().stdout.lines().count();

    d.kill9();
    let crashed = std::time::SystemTime::now();
    std::thread::sleep(Duration::from_millis(3000));
    d.spawn();

    for (name, pid) in &tickers {
        assert_eq!(&inspect(&d, name, "{{.State.Status}} {{.State.Pid}}"), &format!("running {pid}"), "{name} was not re-adopted");
    }
    let ticks_after = d.berth(&["logs", "t0"]).ok().stdout.lines().count();
    assert!(ticks_after >= ticks_before + 20, "lines printed during 3 s of downtime are missing: {ticks_before} -> {ticks_after}");
    assert_eq!(inspect(&d, "exiter", "{{.State.Status}} {{.State.ExitCode}}"), "exited 7");
    let finished = inspect(&d, "exiter", "{{.State.FinishedAt}}");
    let crashed_unix = crashed.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let finished_unix = berth::util::time::unix(&finished);
    assert!((crashed_unix - 1..=crashed_unix + 3).contains(&finished_unix), "FinishedAt {finished} is not the real exit time");
    // `docker wait` on a container started before the crash gives its real code.
    assert_eq!(d.docker(&["wait", "exiter"]).ok().stdout.trim(), "7");
    // The restart=always container that exited during the downtime runs again.
    let mut restarted = false;
    for _ in 0..50 {
        if d.berth(&["logs", "always"]).ok().stdout.matches("run").count() >= 2 {
            restarted = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(restarted, "the restart=always container was not started again after re-adoption");
}

#[test]
fn restart_policies_follow_dockers_rules() {
    require_root!();
    let mut d = Daemon::start();
    d.load_busybox();
    // on-failure:2 — two restarts, then it stays exited; a success is never restarted.
    d.berth(&["run", "-d", "--name", "fails", "--restart", "on-failure:2", "busybox", "sh", "-c", "exit 1"]).ok();
    d.berth(&["run", "-d", "--name", "succeeds", "--restart", "on-failure", "busybox", "true"]).ok();
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(inspect(&d, "fails", "{{.State.Status}} {{.RestartCount}}"), "exited 2");
    assert_eq!(inspect(&d, "succeeds", "{{.State.Status}} {{.RestartCount}}"), "exited 0");

    // always: restarted after it exits by itself or is killed, not after `stop`.
    d.berth(&["run", "-d", "--name", "always", "--restart", "always", "busybox", "sleep", "60"]).ok();
    d.berth(&["run", "-d", "--name", "unless", "--restart", "unless-stopped", "busybox", "sleep", "60"]).ok();
    let pid = inspect(&d, "always", "{{.State.Pid}}");
    d.berth(&["kill", "always"]).ok();
    let mut back = false;
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(100));
        if inspect(&d, "always", "{{.State.Status}}") == "running" && inspect(&d, "always", "{{.State.Pid}}") != pid {
            back = true;
            break;
        }
    }
    assert!(back, "a killed restart=always container was not restarted");
    d.berth(&["stop", "-t", "1", "always", "unless"]).ok();
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(inspect(&d, "always", "{{.State.Status}}"), "exited", "a stopped container was restarted");

    // After a daemon restart: always starts again, unless-stopped stopped by hand does not.
    d.restart();
    assert_eq!(inspect(&d, "always", "{{.State.Status}}"), "running");
    assert_eq!(inspect(&d, "unless", "{{.State.Status}}"), "exited");

    let rm = d.berth(&["create", "--rm", "--restart", "always", "busybox", "true"]);
    assert!(rm.code != 0 && rm.stderr.contains("conflicting options"), "{rm:?}");
    let bad = d.berth(&["create", "--restart", "sometimes", "busybox", "true"]);
    assert!(bad.code != 0 && bad.stderr.contains("invalid restart policy"), "{bad:?}");
}

#[test]
fn attach_and_follow_streams_work_again_on_re_adopted_containers() {
    require_root!();
    let mut d = Daemon::start();
    d.load_busybox();
    d.docker(&["run", "-dit", "--name", "sh", "busybox", "sh"]).ok();
    d.docker(&["run", "-d", "--name", "ticker", "busybox", "sh", "-c", "i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.2; done"])
        .ok();
    d.kill9();
    d.spawn();
    // After re-adoption: the terminal of the running shell answers an attach, which detaches
    // and leaves it running; the ticker's lines keep coming to a new follower.
    let att = d.docker_typed(&["attach", "sh"], true, &[(800, b"echo again-$((40+2))\r"), (800, b"\x10\x11"), (1500, b"")]);
    assert!(att.stdout.contains("again-42"), "{att:?}");
    assert_eq!(d.docker(&["inspect", "-f", "{{.State.Running}}", "sh"]).ok().stdout.trim(), "true");
    let before: usize = d.docker(&["logs", "ticker"]).ok().stdout.lines().count();
    let follow = std::process::Command::new("timeout")
        .args(["2", "docker", "-H", &d.host(), "logs", "-f", "--tail", "0", "ticker"])
        .output()
        .unwrap();
    let followed = String::from_utf8_lossy(&follow.stdout);
    assert!(followed.lines().count() >= 3 && followed.lines().all(|l| l.starts_with("tick-")), "{followed}");
    let first: usize = followed.lines().next().unwrap().trim_start_matches("tick-").parse().unwrap();
    assert!(first > before, "the follower repeated old lines: first {first}, {before} before");
    d.docker(&["rm", "-f", "sh", "ticker"]).ok();
}
