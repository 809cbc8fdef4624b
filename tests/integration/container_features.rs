//! Container features through the real docker CLI and the API: exec, interactive stdin and
//! TTYs, attach with detach keys, healthchecks, `--init`, limits, restart-policy rules.

use berth_tests::{eventually, require_root, static_berth, Daemon};
use std::time::{Duration, Instant};

#[test]
fn exec_runs_in_the_container_with_its_options_and_exit_codes() {
    require_root!();
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&["run", "-d", "--name", "x", "busybox", "sleep", "1000"]).ok();

    assert_eq!(d.docker(&["exec", "x", "sh", "-c", "echo $((1+1))"]).ok().stdout, "2\n");
    assert_eq!(d.docker(&["exec", "x", "sh", "-c", "exit 3"]).code, 3);
    let missing = d.docker(&["exec", "x", "no-such-command"]);
    assert_eq!(missing.code, 127, "{missing:?}");
    let opts = d.docker(&["exec", "-u", "nobody", "-w", "/tmp", "-e", "A=b", "x", "sh", "-c", "id -u; pwd; echo $A"]).ok();
    assert_eq!(opts.stdout, "65534\n/tmp\nb\n");
    // stdout and stderr stay apart.
    let both = d.docker(&["exec", "x", "sh", "-c", "echo out; echo err >&2"]).ok();
    assert_eq!((both.stdout.as_str(), both.stderr.as_str()), ("out\n", "err\n"));
    // -i: the client's stdin reaches the process, and its end is the process's EOF.
    let piped = d.docker_typed(&["exec", "-i", "x", "sh", "-c", "cat; echo end"], false, &[(0, b"typed\n")]);
    assert_eq!(piped.stdout, "typed\nend\n", "{piped:?}");
    // -t: a terminal inside, with the size the client has.
    let tty = d.docker_typed(&["exec", "-t", "x", "sh", "-c", "tty; echo $((6*7))"], true, &[]);
    // (Without -i the client leaves its terminal cooked: it adds its own \r.)
    assert!(tty.stdout.contains("/dev/pts/") && tty.stdout.contains("42\r"), "{tty:?}");
    // Each line end comes out as one \r\n, as from Docker, however runc's terminal set-up
    // races the first output (docker-py compares these bytes).
    for _ in 0..5 {
        assert_eq!(d.docker(&["exec", "-t", "x", "sh", "-c", "echo a; echo b"]).ok().stdout, "a\r\nb\r\n");
    }
    // -d: started, not waited for; the process runs in the container.
    d.docker(&["exec", "-d", "x", "sh", "-c", "echo detached > /tmp/d"]).ok();
    eventually("the detached exec's file", Duration::from_secs(5), || d.docker(&["exec", "x", "cat", "/tmp/d"]).stdout == "detached\n");

    d.docker(&["stop", "-t", "0", "x"]).ok();
    let stopped = d.docker(&["exec", "x", "true"]);
    assert_ne!(stopped.code, 0);
    assert!(stopped.stderr.contains("is not running"), "{}", stopped.stderr);
}

#[test]
fn interactive_run_attach_and_detach_keys() {
    require_root!();
    let d = Daemon::start();
    d.load_busybox();

    // -i without a terminal: stdin is a pipe that closes when the client's does.
    let cat = d.docker_typed(&["run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo done"], false, &[(300, b"hello\n")]);
    assert_eq!((cat.code, cat.stdout.as_str()), (0, "hello\ndone\n"), "{cat:?}");

    // -it: a shell at a terminal echoes what is typed and answers; its exit code is ours.
    let sh = d.docker_typed(&["run", "--rm", "-it", "busybox", "sh"], true, &[(800, b"echo $((6*7))\r"), (500, b"exit 5\r")]);
    assert!(sh.stdout.contains("echo $((6*7))\r\n42\r\n"), "{sh:?}");
    assert_eq!(sh.code, 5, "{sh:?}");

    // attach, type, detach with ctrl-p ctrl-q: the container keeps running.
    d.docker(&["run", "-dit", "--name", "a", "busybox", "sh"]).ok();
    let att = d.docker_typed(&["attach", "a"], true, &[(800, b"echo attached-$((2+3))\r"), (800, b"\x10\x11"), (1500, b"")]);
    assert!(att.stdout.contains("attached-5"), "{att:?}");
    assert!(att.stdout.contains("read escape sequence"), "{att:?}");
    assert_eq!(d.docker(&["inspect", "-f", "{{.State.Running}}", "a"]).ok().stdout.trim(), "true");
    // What the shell printed while attached is in its log too.
    assert!(d.docker(&["logs", "a"]).ok().stdout.contains("attached-5"));
    // Another key sequence, given on the command line.
    let att2 = d.docker_typed(&["attach", "--detach-keys", "ctrl-a,x", "a"], true, &[(800, b"\x01x"), (1500, b"")]);
    assert!(att2.stdout.contains("read escape sequence"), "{att2:?}");
    assert_eq!(d.docker(&["inspect", "-f", "{{.State.Running}}", "a"]).ok().stdout.trim(), "true");
    d.docker(&["rm", "-f", "a"]).ok();
}

fn health(d: &Daemon, name: &str) -> serde_json::Value {
    let out = d.docker(&["inspect", "-f", "{{json .State.Health}}", name]).ok();
    serde_json::from_str(out.stdout.trim()).unwrap()
}

#[test]
fn healthchecks_follow_the_documented_rules() {
    require_root!();
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "h",
        "--health-cmd",
        "test -e /tmp/ok && echo fine",
        "--health-interval",
        "300ms",
        "--health-retries",
        "2",
        "busybox",
        "sleep",
        "1000",
    ])
    .ok();
    assert_eq!(health(&d, "h")["Status"], "starting");
    eventually("unhealthy after 2 failed probes", Duration::from_secs(10), || health(&d, "h")["Status"] == "unhealthy");
    let h = health(&d, "h");
    assert!(h["FailingStreak"].as_u64().unwrap() >= 2, "{h}");
    assert!(d.docker(&["ps", "--format", "{{.Status}}"]).ok().stdout.contains("(unhealthy)"));
    d.docker(&["exec", "h", "touch", "/tmp/ok"]).ok();
    eventually("healthy once the probe passes", Duration::from_secs(10), || health(&d, "h")["Status"] == "healthy");
    let h = health(&d, "h");
    assert_eq!(h["FailingStreak"], 0);
    let log = h["Log"].as_array().unwrap();
    assert!(log.len() <= 5, "at most 5 probes are kept: {h}");
    assert_eq!(log.last().unwrap()["Output"], "fine\n");
    assert_eq!(log.last().unwrap()["ExitCode"], 0);

    // Zero values mean the defaults; a negative retry count is refused before creation.
    let bad = d.api(
        "POST",
        "/containers/create",
        Some("application/json"),
        br#"{"Image":"busybox","Cmd":["true"],"Healthcheck":{"Test":["CMD","true"],"Retries":-1}}"#,
    );
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(bad.text().contains("Retries"), "{}", bad.text());

    // The openEuler engine's exit-on-unhealthy: an unhealthy container is killed.
    let c = d
        .api(
            "POST",
            "/containers/create?name=e",
            Some("application/json"),
            br#"{"Image":"busybox","Cmd":["sleep","1000"],"Healthcheck":{"Test":["CMD","false"],"Interval":200000000,"Retries":1,"ExitOnUnhealthy":true}}"#,
        );
    assert_eq!(c.status, 201, "{}", c.text());
    d.docker(&["start", "e"]).ok();
    eventually("the unhealthy container to be killed", Duration::from_secs(10), || {
        d.docker(&["inspect", "-f", "{{.State.Running}} {{.State.ExitCode}}", "e"]).stdout.trim() == "false 137"
    });
    // A container without the option stays up while unhealthy (the h above did).
}

#[test]
fn init_reaps_zombies_and_forwards_signals() {
    require_root!();
    let init = static_berth();
    let d = Daemon::start_with_config(&format!(r#"{{"init-path": "{}"}}"#, init.display()));
    d.load_busybox();
    // PID 1 is `sleep`, which never waits: the orphan the shell leaves becomes a zombie...
    let maker = ["sh", "-c", "sh -c 'sleep 0.2 &'; exec sleep 1000"];
    let run = |name: &str, init: bool| {
        let mut args = vec!["run", "-d", "--name", name];
        if init {
            args.push("--init");
        }
        args.push("busybox");
        args.extend(maker);
        d.docker(&args).ok();
    };
    let zombies = |name: &str| d.docker(&["exec", name, "ps", "-o", "stat"]).ok().stdout.lines().filter(|l| l.starts_with('Z')).count();
    run("plain", false);
    eventually("a zombie without --init", Duration::from_secs(5), || zombies("plain") == 1);
    // ...unless the init is PID 1.
    run("inited", true);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(zombies("inited"), 0);
    let pid1 = d.docker(&["exec", "inited", "cat", "/proc/1/cmdline"]).ok().stdout;
    assert!(pid1.starts_with("/sbin/docker-init\0--\0"), "{pid1:?}");
    assert_eq!(d.docker(&["inspect", "-f", "{{.HostConfig.Init}}", "inited"]).ok().stdout.trim(), "true");

    // SIGTERM reaches the command through the init: it stops at once, killed by SIGTERM.
    let t = Instant::now();
    d.docker(&["stop", "-t", "20", "inited"]).ok();
    assert!(t.elapsed() < Duration::from_secs(10), "stop waited for the timeout: the signal was not forwarded");
    assert_eq!(d.docker(&["inspect", "-f", "{{.State.ExitCode}}", "inited"]).ok().stdout.trim(), "143");
    d.docker(&["rm", "-f", "plain", "inited"]).ok();
}

#[test]
fn limits_are_applied_and_bad_values_refused_before_creation() {
    require_root!();
    let d = Daemon::start();
    d.load_busybox();
    let before = d.docker(&["ps", "-aq"]).ok().stdout;
    for (flags, message) in [
        (&["-m", "2m"][..], "Minimum memory limit allowed is 4MB"),
        (&["--blkio-weight", "5"], "Range of blkio weight is from 10 to 1000"),
        (&["--cpus", "512"], "Range of CPUs"),
        (&["--cpuset-cpus", "0-511"], "Requested CPUs are not available"),
        (&["--memory-swap", "8m"], "always set the Memory limit"),
    ] {
        let mut args = vec!["create"];
        args.extend(flags);
        args.extend(["busybox", "true"]);
        let out = d.docker(&args);
        assert_ne!(out.code, 0, "{flags:?} was accepted");
        assert!(out.stderr.contains(message), "{flags:?}: {}", out.stderr);
    }
    let kmem =
        d.api("POST", "/containers/create", Some("application/json"), br#"{"Image":"busybox","HostConfig":{"KernelMemory":8388608}}"#);
    assert_eq!(kmem.status, 400, "{}", kmem.text());
    assert_eq!(d.docker(&["ps", "-aq"]).ok().stdout, before, "a refused create left a container");

    // Applied: the cgroup limits as the container sees them (cgroup v1 or v2).
    let out = d
        .docker(&[
            "run",
            "--rm",
            "-m",
            "8m",
            "--pids-limit",
            "7",
            "--cpu-shares",
            "512",
            "--group-add",
            "wheel",
            "--ulimit",
            "nofile=100:200",
            "--shm-size",
            "1m",
            "busybox",
            "sh",
            "-c",
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max 2>/dev/null; \
             cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max 2>/dev/null; id -G; ulimit -n; df -k /dev/shm | tail -1",
        ])
        .ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!((lines[0], lines[1], lines[3]), ("8388608", "7", "100"), "{}", out.stdout);
    assert!(lines[2].split(' ').any(|g| g == "10"), "--group-add wheel: {}", lines[2]);
    assert!(lines[4].contains(" 1024 "), "shm size: {}", lines[4]);
    // --uts host: the host's name.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(d.docker(&["run", "--rm", "--uts", "host", "busybox", "hostname"]).ok().stdout, host);
}

#[test]
fn restarting_containers_refuse_removal_and_stop_for_good() {
    require_root!();
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&["run", "-d", "--name", "r", "--restart", "always", "busybox", "sh", "-c", "sleep 0.3; exit 1"]).ok();
    eventually("a restart", Duration::from_secs(10), || d.docker(&["inspect", "-f", "{{.RestartCount}}", "r"]).stdout.trim() != "0");
    // Between runs the container is restarting: removal needs a stop or force.
    eventually("the restarting state", Duration::from_secs(10), || {
        d.docker(&["inspect", "-f", "{{.State.Restarting}}", "r"]).stdout.trim() == "true"
    });
    let rm = d.docker(&["rm", "r"]);
    if rm.code == 0 {
        panic!("a restarting container was removed without force");
    }
    assert!(rm.stderr.to_lowercase().contains("stop the container before"), "{}", rm.stderr);
    d.docker(&["stop", "r"]).ok();
    let count = d.docker(&["inspect", "-f", "{{.RestartCount}}", "r"]).ok().stdout;
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        d.docker(&["inspect", "-f", "{{.RestartCount}} {{.State.Running}}", "r"]).ok().stdout.trim(),
        format!("{} false", count.trim())
    );
    d.docker(&["rm", "r"]).ok();
}

#[test]
fn pause_survives_a_daemon_restart_and_paused_containers_still_stop() {
    require_root!();
    let mut d = Daemon::start();
    d.load_busybox();
    // A counter the container bumps 10 times a second: it stands still while frozen.
    d.docker(&[
        "run",
        "-d",
        "--name",
        "p",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 7' TERM; i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.1; done",
    ])
    .ok();
    // Read through the archive endpoint (`docker cp`), which works while exec does not.
    let count = |d: &Daemon| -> u64 {
        let r = d.api("GET", "/containers/p/archive?path=/tmp/n", None, b"");
        assert_eq!(r.status, 200, "{}", r.text());
        let mut a = tar::Archive::new(&r.body[..]);
        let mut e = a.entries().unwrap().next().unwrap().unwrap();
        let mut s = String::new();
        std::io::Read::read_to_string(&mut e, &mut s).unwrap();
        s.trim().parse().unwrap()
    };
    eventually("the counter to run", Duration::from_secs(5), || count(&d) > 2);
    d.berth(&["pause", "p"]).ok();
    let state = |d: &Daemon| d.docker(&["inspect", "-f", "{{.State.Status}} {{.State.Paused}} {{.State.Running}}", "p"]).ok().stdout;
    assert_eq!(state(&d).trim(), "paused true true");
    assert!(d.docker(&["ps", "--format", "{{.Status}}"]).ok().stdout.contains("(Paused)"));
    let info = d.api("GET", "/info", None, b"").json();
    assert_eq!((info["ContainersRunning"].as_u64(), info["ContainersPaused"].as_u64()), (Some(0), Some(1)));
    let frozen = count(&d);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(count(&d), frozen, "a paused container kept running");
    let exec = d.docker(&["exec", "p", "true"]);
    assert!(exec.code != 0 && exec.stderr.contains("is paused"), "{exec:?}");
    assert!(d.docker(&["pause", "p"]).stderr.contains("already paused"));

    // The daemon goes away and comes back: the container is still paused, and known so.
    d.restart();
    assert_eq!(state(&d).trim(), "paused true true");
    assert_eq!(count(&d), frozen);
    d.docker(&["unpause", "p"]).ok();
    assert_eq!(state(&d).trim(), "running false true");
    eventually("the counter to move again", Duration::from_secs(5), || count(&d) > frozen);
    assert!(d.docker(&["unpause", "p"]).stderr.contains("is not paused"));

    // stop of a paused container: the signal is delivered once thawed (the trap's exit
    // code shows it was SIGTERM, not the SIGKILL after the timeout).
    d.docker(&["pause", "p"]).ok();
    d.docker(&["stop", "p"]).ok();
    assert_eq!(
        d.docker(&["inspect", "-f", "{{.State.Status}} {{.State.Paused}} {{.State.ExitCode}}", "p"]).ok().stdout.trim(),
        "exited false 7"
    );
    d.docker(&["rm", "p"]).ok();
}

#[test]
fn top_stats_and_update_of_a_running_container() {
    require_root!();
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&["run", "-d", "--name", "t", "-m", "64m", "busybox", "sh", "-c", "sleep 1000 & exec sleep 999"]).ok();

    // top: every process of the container and nothing else, busybox ps' columns by default.
    let top = d.api("GET", "/containers/t/top", None, b"").json();
    assert_eq!(top["Titles"], serde_json::json!(["PID", "USER", "TIME", "COMMAND"]));
    let commands: Vec<&str> = top["Processes"].as_array().unwrap().iter().map(|p| p[3].as_str().unwrap()).collect();
    assert_eq!(commands.len(), 2, "{top}");
    assert!(commands.contains(&"sleep 1000") && commands.contains(&"sleep 999"), "{top}");
    // With ps arguments: the host's ps, filtered to the container.
    let custom = d.docker(&["top", "t", "-o", "pid,args"]).ok().stdout;
    assert!(custom.lines().next().unwrap().contains("PID") && custom.lines().count() == 3, "{custom}");

    // stats: the limit the container has, one document without streaming.
    let s = d.api("GET", "/containers/t/stats?stream=false", None, b"").json();
    assert_eq!(s["memory_stats"]["limit"], 64 * 1024 * 1024, "{s}");
    assert!(s["memory_stats"]["usage"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(s["pids_stats"]["current"], 2, "{s}");
    assert!(s["cpu_stats"]["system_cpu_usage"].as_u64().unwrap() > s["precpu_stats"]["system_cpu_usage"].as_u64().unwrap());
    assert!(s["networks"]["eth0"]["rx_bytes"].is_u64(), "{s}");
    let cli = d.docker(&["stats", "--no-stream", "--format", "{{.MemUsage}} {{.PIDs}}", "t"]).ok().stdout;
    assert!(cli.contains("/ 64MiB 2"), "{cli}");
    // berth's own CLI: the same figures and processes.
    assert!(d.berth(&["stats", "--no-stream", "t"]).ok().stdout.contains("/ 64MiB"));
    assert!(d.berth(&["top", "t"]).ok().stdout.contains("sleep 999"));

    // update: new limits reach the running container's cgroup, and inspect.
    d.docker(&["update", "-m", "32m", "--memory-swap", "64m", "--pids-limit", "10", "--restart", "on-failure:3", "t"]).ok();
    let inside = d
        .docker(&["exec", "t", "sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max 2>/dev/null; true"])
        .ok()
        .stdout;
    assert_eq!(inside.trim(), "33554432");
    let hc = d.docker(&["inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.HostConfig.RestartPolicy.Name}}", "t"]).ok();
    assert_eq!(hc.stdout.trim(), "33554432 10 on-failure");
    // A bad value is refused and changes nothing.
    d.berth(&["update", "--cpus", "0.5", "t"]).ok();
    assert_eq!(d.docker(&["inspect", "-f", "{{.HostConfig.NanoCpus}}", "t"]).ok().stdout.trim(), "500000000");
    let bad = d.docker(&["update", "-m", "1m", "t"]);
    assert!(bad.code != 0 && bad.stderr.contains("Minimum memory limit"), "{bad:?}");
    assert_eq!(d.docker(&["inspect", "-f", "{{.HostConfig.Memory}}", "t"]).ok().stdout.trim(), "33554432");
    d.docker(&["run", "-d", "--rm", "--name", "auto", "busybox", "sleep", "1000"]).ok();
    let rp = d.docker(&["update", "--restart", "always", "auto"]);
    assert!(rp.stderr.contains("AutoRemove"), "{rp:?}");

    // Streaming: one document a second until the container stops, each knowing the last.
    d.docker(&["run", "-d", "--name", "short", "busybox", "sleep", "2.5"]).ok();
    let stream = d.api("GET", "/containers/short/stats", None, b"");
    let docs: Vec<serde_json::Value> = stream.text().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(docs.len() >= 2, "{}", stream.text());
    assert_eq!(docs[1]["preread"], docs[0]["read"]);
    d.docker(&["rm", "-f", "t", "auto", "short"]).ok();
}

/// A tar of `entries` (name, content; a content starting with "->" makes a symlink).
fn tar_of(entries: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, content) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        if let Some(target) = content.strip_prefix("->") {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, name, target).unwrap();
        } else {
            h.set_size(content.len() as u64);
            h.set_path(name).unwrap_or_else(|_| {
                // Names the tar crate refuses to set (`../x`) are written raw.
                let raw = &mut h.as_old_mut().name;
                raw[..name.len()].copy_from_slice(name.as_bytes());
            });
            h.set_cksum();
            b.append(&h, content.as_bytes()).unwrap();
        }
    }
    b.into_inner().unwrap()
}

#[test]
fn cp_both_ways_through_volumes_links_and_refusing_hostile_archives() {
    require_root!();
    let d = Daemon::start();
    d.load_busybox();
    let dir = berth_tests::scratch_root().join(format!("cp-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("src/sub")).unwrap();
    std::fs::write(dir.join("src/a"), "alpha\n").unwrap();
    std::fs::write(dir.join("src/sub/b"), "beta\n").unwrap();
    let path = |p: &str| dir.join(p).display().to_string();

    // Into a created (never started) container's volume: the run finds the files.
    d.docker(&["create", "--name", "c", "-v", "/vol", "busybox", "sh", "-c", "cat /vol/src/a /vol/src/sub/b"]).ok();
    d.docker(&["cp", &path("src"), "c:/vol/"]).ok();
    assert_eq!(d.docker(&["start", "-a", "c"]).ok().stdout, "alpha\nbeta\n");

    // Out of a running container, a symlink as itself and with -L as what it points to
    // inside the container (never the host's file of that name).
    d.docker(&[
        "run",
        "-d",
        "--name",
        "r",
        "busybox",
        "sh",
        "-c",
        "echo container > /tmp/f; ln -s /tmp/f /tmp/l; ln -s /etc/hostname /tmp/h; sleep 1000",
    ])
    .ok();
    eventually("the container's files", Duration::from_secs(5), || d.docker(&["exec", "r", "test", "-L", "/tmp/h"]).code == 0);
    d.docker(&["cp", "r:/tmp/l", &path("link")]).ok();
    assert_eq!(std::fs::read_link(dir.join("link")).unwrap().display().to_string(), "/tmp/f");
    d.docker(&["cp", "-L", "r:/tmp/l", &path("followed")]).ok();
    assert_eq!(std::fs::read_to_string(dir.join("followed")).unwrap(), "container\n");
    let stat = d.api("HEAD", "/containers/r/archive?path=/tmp/h", None, b"");
    assert_eq!(stat.status, 200);
    assert!(stat.headers.contains("X-Docker-Container-Path-Stat") || stat.headers.contains("x-docker-container-path-stat"));
    // A directory comes out whole.
    d.docker(&["cp", "r:/etc", &path("etc")]).ok();
    assert!(dir.join("etc/passwd").is_file());
    let missing = d.docker(&["cp", "r:/no/such", &path("x")]);
    assert!(missing.code != 0 && missing.stderr.contains("Could not find the file /no/such"), "{missing:?}");

    // Hostile archives: refused with a message, and nothing of them is written, not even
    // the good entries before the bad one.
    for (what, entries) in [
        ("dot-dot", vec![("good", "x"), ("../../escape", "x")]),
        ("through a link", vec![("good", "x"), ("evil", "->/"), ("evil/tmp/pwned", "x")]),
        ("absolute name", vec![("good", "x"), ("/abs", "x")]),
    ] {
        let r = d.api("PUT", "/containers/r/archive?path=/tmp", Some("application/x-tar"), &tar_of(&entries));
        assert_eq!(r.status, 400, "{what}: {}", r.text());
        assert_eq!(d.docker(&["exec", "r", "ls", "/tmp"]).ok().stdout, "f\nh\nl\n", "{what} changed the container");
    }
    // Into a path through an absolute symlink: it resolves inside the container.
    d.docker(&["exec", "r", "ln", "-s", "/etc", "/tmp/etclink"]).ok();
    let r = d.api("PUT", "/containers/r/archive?path=/tmp/etclink", Some("application/x-tar"), &tar_of(&[("dropped", "in\n")]));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(d.docker(&["exec", "r", "cat", "/etc/dropped"]).ok().stdout, "in\n");
    assert!(!std::path::Path::new("/etc/dropped").exists());
    // Not a directory; not there.
    assert_eq!(d.api("PUT", "/containers/r/archive?path=/tmp/f", Some("application/x-tar"), &tar_of(&[("x", "")])).status, 400);
    assert_eq!(d.api("PUT", "/containers/r/archive?path=/nope", Some("application/x-tar"), &tar_of(&[("x", "")])).status, 404);
    d.docker(&["rm", "-f", "c", "r"]).ok();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn log_driver_none_keeps_no_log_but_attach_works() {
    require_root!();
    let d = Daemon::start();
    d.load_busybox();
    // `docker run` attaches: the output arrives though nothing is logged.
    assert_eq!(d.docker(&["run", "--name", "n", "--log-driver", "none", "busybox", "echo", "hi"]).ok().stdout, "hi\n");
    let logs = d.docker(&["logs", "n"]);
    assert!(logs.code != 0 && logs.stderr.contains("does not support reading"), "{logs:?}");
    assert_eq!(d.docker(&["inspect", "-f", "{{.HostConfig.LogConfig.Type}}", "n"]).ok().stdout.trim(), "none");
    let data = d.data_root().join("containers");
    let logged = std::fs::read_dir(&data)
        .unwrap()
        .flatten()
        .any(|c| std::fs::read_dir(c.path()).unwrap().flatten().any(|f| f.file_name().to_string_lossy().ends_with("-json.log")));
    assert!(!logged, "a log file was written to the data root");
    let bad = d.docker(&["create", "--log-driver", "asdf", "busybox"]);
    assert!(bad.stderr.contains("no log driver named 'asdf'"), "{bad:?}");
    d.docker(&["rm", "n"]).ok();
}

#[test]
fn hook_specs_run_daemon_hooks_first_and_refuse_what_the_rules_forbid() {
    require_root!();
    use std::os::unix::fs::PermissionsExt;
    let mut d = Daemon::start();
    d.load_busybox();
    let hooks = d.data_root().join("hooks");
    let log = d.root.join("hooks.log");
    let hooks = hooks.as_path();
    let script = |name: &str, body: &str| {
        let p = hooks.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p.display().to_string()
    };
    let logger = script("log.sh", &format!("echo \"$1 $2\" >> {}", log.display()));
    let failing = script("fail.sh", "echo 'hook refused the start' >&2; exit 3");
    let hook = |stage_args: &str| format!(r#"{{"path":"{logger}","args":["log.sh",{stage_args}],"timeout":10}}"#);
    let root = d.root.clone();
    let spec_file = |name: &str, text: &str| {
        let p = root.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    // The daemon's hooks, from daemon.json.
    let daemon_spec = spec_file("daemon-hooks.json", &format!(r#"{{"prestart":[{}]}}"#, hook(r#""daemon","prestart""#)));
    std::fs::write(d.root.join("daemon.json"), format!(r#"{{"hook-spec":"{daemon_spec}"}}"#)).unwrap();
    d.restart();

    let create = |name: &str, spec: &str| {
        let body = format!(r#"{{"Image":"busybox","Cmd":["true"],"HostConfig":{{"HookSpec":"{spec}"}}}}"#);
        d.api("POST", &format!("/containers/create?name={name}"), Some("application/json"), body.as_bytes())
    };
    let own = spec_file(
        "own.json",
        &format!(r#"{{"prestart":[{}],"poststop":[{}]}}"#, hook(r#""container","prestart""#), hook(r#""container","poststop""#)),
    );
    assert_eq!(create("h", &own).status, 201);
    assert_eq!(d.docker(&["start", "-a", "h"]).code, 0);
    eventually("the poststop hook", Duration::from_secs(10), || {
        std::fs::read_to_string(&log).unwrap_or_default() == "daemon prestart\ncontainer prestart\ncontainer poststop\n"
    });

    // Refused before anything is created: outside the hooks directory, a bad timeout, bad JSON.
    let before = d.docker(&["ps", "-aq"]).ok().stdout;
    for (text, message) in [
        (r#"{"prestart":[{"path":"/bin/true"}]}"#.to_string(), "outside"),
        (format!(r#"{{"prestart":[{{"path":"{logger}","timeout":121}}]}}"#), "timeout 121"),
        (format!(r#"{{"prestart":[{{"path":"{logger}","timeout":0}}]}}"#), "timeout 0"),
        ("{\"prestart\": [".to_string(), "invalid JSON"),
    ] {
        let r = create("bad", &spec_file("bad.json", &text));
        assert_eq!(r.status, 400, "{text}: {}", r.text());
        assert!(r.text().contains(message), "{text}: {}", r.text());
    }
    assert_eq!(d.docker(&["ps", "-aq"]).ok().stdout, before);

    // A failing prestart hook fails the start, and its stderr reaches the client.
    let failing_spec = spec_file("fail.json", &format!(r#"{{"prestart":[{{"path":"{failing}"}}]}}"#));
    assert_eq!(create("f", &failing_spec).status, 201);
    let start = d.docker(&["start", "f"]);
    assert_ne!(start.code, 0);
    assert!(start.stderr.contains("hook refused the start"), "{start:?}");
    assert_eq!(d.docker(&["inspect", "-f", "{{.State.Running}}", "f"]).ok().stdout.trim(), "false");

    // A daemon hook spec that breaks the rules stops the daemon from starting, with the reason.
    let (code, err) = berth_tests::refused_start(r#"{"hook-spec":"/nonexistent/hooks.json"}"#, &[], &[]);
    assert!(code != Some(0) && err.contains("hook-spec"), "{err}");
}

#[test]
fn events_stream_what_happens_with_docker_filters() {
    require_root!();
    let d = Daemon::start();
    d.load_busybox();
    let start = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs().to_string();
    assert_eq!(d.docker(&["run", "--name", "ev", "--label", "tier=front", "busybox", "sh", "-c", "exit 3"]).code, 3);
    d.docker(&["rename", "ev", "ev2"]).ok();
    d.docker(&["rm", "ev2"]).ok();
    d.docker(&["tag", "busybox", "busybox:evtag"]).ok();
    d.docker(&["network", "create", "evnet"]).ok();
    d.docker(&["network", "rm", "evnet"]).ok();
    // A moment from now: the past is read and the stream ends.
    let until = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 1).to_string();
    std::thread::sleep(Duration::from_millis(1100));
    // `docker events` over the window above with `filters`, printed with `format`. (The docker
    // CLI's template prints "<no value>" for an attribute an event does not have.)
    let past = |filters: &[&str], format: &str| {
        let mut args = vec!["events", "--since", &start, "--until", &until, "--format", format];
        for f in filters {
            args.extend(["--filter", f]);
        }
        d.docker(&args).ok().stdout.replace(" <no value>", "")
    };
    // The container's life in order, with Docker's fields.
    let life = past(&["type=container"], "{{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.exitCode}}");
    assert_eq!(life.lines().collect::<Vec<_>>(), ["create ev", "start ev", "die ev 3", "rename ev2", "destroy ev2"], "{life}");
    assert_eq!(past(&["label=tier=front", "event=die"], "{{.Action}}"), "die\n");
    assert_eq!(past(&["type=network"], "{{.Action}} {{.Actor.Attributes.name}}"), "create evnet\ndestroy evnet\n");
    let images = past(&["type=image"], "{{.Action}} {{.Actor.Attributes.name}}");
    assert!(images.contains("tag busybox:evtag"), "{images}");
    // Live: a follower sees what happens after it started.
    let mut cmd = std::process::Command::new("timeout");
    cmd.args(["4", "docker", "-H", &d.host(), "events", "--filter", "container=live", "--format", "{{.Action}}"])
        .stdout(std::process::Stdio::piped());
    let follower = cmd.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    d.docker(&["run", "--rm", "--name", "live", "busybox", "true"]).ok();
    let seen = String::from_utf8_lossy(&follower.wait_with_output().unwrap().stdout).into_owned();
    assert_eq!(seen.lines().collect::<Vec<_>>(), ["create", "start", "die", "destroy"], "{seen}");
    let bad = d.api("GET", "/events?filters=%7B%22bogus%22%3A%5B%22x%22%5D%7D", None, b"");
    assert_eq!(bad.status, 400);
}
