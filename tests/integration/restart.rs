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
