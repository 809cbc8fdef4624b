//! The daemon's configuration and listeners: daemon.json validation, the socket's mode,
//! systemd socket activation, the vfs driver, daemon-wide options; plus the stop and lookup
//! rules that depend on them.

use berth_tests::{berth_bin, busybox_tar, require_root, scratch_root, Daemon};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn unknown_or_invalid_config_keys_stop_the_daemon_at_start() {
    require_root!();
    for (config, expect) in [
        (r#"{"data-rooot": "/x"}"#, "unknown field `data-rooot`"),
        (r#"{"exec-opts": ["native.umask=weird"]}"#, "invalid native.umask"),
        (r#"{"log-driver": "syslog"}"#, "not supported"),
        (r#"{"storage-driver": "zfs"}"#, "not supported"),
        ("{not json", "invalid configuration file"),
    ] {
        let (code, err) = berth_tests::refused_start(config, &[], &[]);
        assert_eq!(code, Some(1), "{config}: {err}");
        assert!(err.contains(expect), "{config}: expected {expect:?} in {err}");
    }
}

#[test]
fn socket_is_group_only() {
    require_root!();
    let d = Daemon::start();
    let mode = std::fs::metadata(d.sock()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
}

#[test]
fn systemd_socket_activation() {
    require_root!();
    if Command::new("systemd-socket-activate").arg("--help").stdout(Stdio::null()).status().is_err() {
        eprintln!("skipped: systemd-socket-activate is not installed");
        return;
    }
    let root = scratch_root();
    let sock = root.join("activated.sock");
    std::fs::write(root.join("daemon.json"), "{}").unwrap();
    let mut child = Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(&sock)
        .arg(berth_bin())
        .args(["-H", "fd://", "daemon", "--config-file"])
        .arg(root.join("daemon.json"))
        .arg("--data-root")
        .arg(root.join("data"))
        .arg("--exec-root")
        .arg(root.join("run"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut answered = false;
    while Instant::now() < deadline && !answered {
        let out = Command::new(berth_bin()).args(["-H", &format!("unix://{}", sock.display()), "version"]).output().unwrap();
        answered = out.status.success() && String::from_utf8_lossy(&out.stdout).contains("API version:  1.45");
        if !answered {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // SAFETY: kill with a pid we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    std::fs::remove_dir_all(&root).unwrap();
    assert!(answered, "the daemon never answered on the activated socket");
}

#[test]
fn vfs_driver_runs_containers_and_applies_whiteouts() {
    require_root!();
    let d = Daemon::start_with_config(r#"{"storage-driver": "vfs", "exec-opts": ["native.umask=normal"]}"#);
    assert_eq!(d.berth(&["info"]).ok().stdout.lines().find(|l| l.contains("Storage Driver")).unwrap().trim(), "Storage Driver: vfs");
    d.load_busybox();
    // Daemon-wide umask from exec-opts; the container's annotation still wins.
    assert_eq!(d.berth(&["run", "--rm", "busybox", "sh", "-c", "umask"]).ok().stdout.trim(), "0022");
    assert_eq!(d.berth(&["run", "--rm", "--annotation", "native.umask=secure", "busybox", "sh", "-c", "umask"]).ok().stdout.trim(), "0027");
    check_layered_image(&d);
}

#[test]
fn overlay2_driver_applies_whiteouts() {
    require_root!();
    let d = Daemon::start();
    d.load_busybox();
    check_layered_image(&d);
}

/// A two-layer image (busybox, then a layer that deletes /etc/hostname and adds a file) runs
/// with the deletion and the addition applied.
fn check_layered_image(d: &Daemon) {
    let base = std::fs::read(busybox_tar()).unwrap();
    let mut ar = tar::Archive::new(&base[..]);
    let mut layer = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().ends_with("layer.tar") {
            std::io::Read::read_to_end(&mut e, &mut layer).unwrap();
        }
    }
    let top = berth_tests::raw_layer(&[
        ("etc/", tar::EntryType::Directory, "", b""),
        ("etc/.wh.os-release", tar::EntryType::Regular, "", b""),
        ("etc/added", tar::EntryType::Regular, "", b"new\n"),
        ("var/www/", tar::EntryType::Directory, "", b""),
        ("var/www/.wh..wh..opq", tar::EntryType::Regular, "", b""),
        ("var/www/fresh.html", tar::EntryType::Regular, "", b"fresh\n"),
    ]);
    let archive = berth_tests::docker_archive_layers(&[&layer, &top], "layered:1");
    let r = d.api("POST", "/images/load", Some("application/x-tar"), &archive);
    assert_eq!(r.status, 200);
    assert!(!r.text().contains("error"), "{}", r.text());
    let out = d
        .berth(&[
            "run",
            "--rm",
            "layered:1",
            "sh",
            "-c",
            "cat /etc/added; ls /etc/passwd; test -e /etc/os-release || echo deleted; ls /var/www",
        ])
        .ok();
    // The whiteout deleted os-release; the opaque marker hid the lower index.html.
    assert_eq!(out.stdout, "new\n/etc/passwd\ndeleted\nfresh.html\n");
    // /etc/hostname is the init layer's (the container's own), not the image's deleted one.
    let out = d.berth(&["run", "--rm", "-h", "box", "layered:1", "cat", "/etc/hostname"]).ok();
    assert_eq!(out.stdout, "box\n");
}

#[test]
fn stop_with_negative_timeout_waits_for_the_container() {
    require_root!();
    let d = Daemon::start();
    d.load_busybox();
    // The container ignores SIGTERM and ends by itself after ~1.5 s: `-t -1` must not kill it.
    d.berth(&["run", "-d", "--name", "patient", "busybox", "sh", "-c", "trap '' TERM; sleep 1.5; exit 4"]).ok();
    std::thread::sleep(Duration::from_millis(200));
    d.berth(&["stop", "-t", "-1", "patient"]).ok();
    assert_eq!(d.berth(&["inspect", "-f", "{{.State.ExitCode}}", "patient"]).ok().stdout.trim(), "4");
    // With the default timeout a SIGTERM-ignoring container is killed.
    d.berth(&["run", "-d", "--name", "stubborn", "--stop-timeout", "1", "busybox", "sh", "-c", "trap '' TERM; sleep 100"]).ok();
    std::thread::sleep(Duration::from_millis(200));
    d.berth(&["stop", "stubborn"]).ok();
    assert_eq!(d.berth(&["inspect", "-f", "{{.State.ExitCode}}", "stubborn"]).ok().stdout.trim(), "137");
}

#[test]
fn ambiguous_id_prefixes_are_refused() {
    require_root!();
    let d = Daemon::start();
    d.load_busybox();
    // 17 ids over 16 hex digits: two share their first digit.
    let ids: Vec<String> = (0..17).map(|_| d.berth(&["create", "busybox", "true"]).ok().stdout.trim().to_string()).collect();
    let digit = (0..16).map(|n| format!("{n:x}")).find(|h| ids.iter().filter(|i| i.starts_with(h.as_str())).count() >= 2).unwrap();
    let r = d.api("GET", &format!("/containers/{digit}/json"), None, b"");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("multiple containers"), "{}", r.text());
    // A unique prefix, an exact name and an exact id all work.
    let unique = &ids[0][..12];
    assert_eq!(d.api("GET", &format!("/containers/{unique}/json"), None, b"").json()["Id"], ids[0].as_str());
}

#[test]
fn configured_runtime_is_the_one_that_runs() {
    require_root!();
    let root = scratch_root();
    let wrapper = root.join("logging-runc");
    let marker = root.join("runtime-was-used");
    std::fs::write(&wrapper, format!("#!/bin/sh\necho \"$@\" >> {}\nexec runc \"$@\"\n", marker.display())).unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = serde_json::json!({"runtimes": {"logged": {"path": wrapper}}, "default-runtime": "logged"}).to_string();
    let d = Daemon::start_with_config(&config);
    d.load_busybox();
    assert_eq!(d.berth(&["run", "--rm", "busybox", "echo", "via-wrapper"]).ok().stdout, "via-wrapper\n");
    let calls = std::fs::read_to_string(&marker).unwrap();
    assert!(calls.contains("run --detach") && calls.contains("delete --force"), "{calls}");
    // An unknown runtime on create is a 400 before anything exists.
    let r = d.api("POST", "/containers/create", Some("application/json"), br#"{"Image":"busybox","HostConfig":{"Runtime":"nope"}}"#);
    assert_eq!(r.status, 400);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn network_modes_env_files() {
    require_root!();
    let d = Daemon::start();
    d.load_busybox();
    let count = |args: &[&str]| -> usize {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["busybox", "sh", "-c", "tail -n +3 /proc/net/dev | wc -l"]);
        d.berth(&a).ok().stdout.trim().parse().unwrap()
    };
    // The default bridge: loopback and eth0. none: a namespace with only the loopback.
    assert_eq!(count(&[]), 2);
    assert_eq!(count(&["--network", "none"]), 1);
    // host: the daemon's namespace (the test's own: lo and the bridge berth0).
    let host_ifaces = d.netns.run("cat", &["/proc/net/dev"]).stdout.lines().count() - 2;
    assert_eq!(count(&["--network", "host"]), host_ifaces);
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(d.berth(&["run", "--rm", "--network", "host", "busybox", "hostname"]).ok().stdout, host_name);

    let env_file = d.root.join("env.list");
    std::fs::write(&env_file, "# comment\nFROM_FILE=yes\n\nSPACED=a b\n").unwrap();
    let out = d
        .berth(&[
            "run",
            "--rm",
            "--env-file",
            env_file.to_str().unwrap(),
            "-e",
            "FROM_FILE=overridden",
            "busybox",
            "sh",
            "-c",
            "echo $FROM_FILE/$SPACED/$PATH",
        ])
        .ok();
    assert_eq!(out.stdout.trim(), "overridden/a b//usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
}

/// `berth check-config` on this machine's kernel: it says what is there and what is missing,
/// device-mapper included (this kernel has none; the VM rig's does, see its smoke scenarios).
#[test]
fn check_config_reports_this_kernel() {
    let out = std::process::Command::new(berth_tests::berth_bin()).arg("check-config").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    if !std::path::Path::new("/proc/config.gz").exists() && !text.contains("kernel config:") {
        eprintln!("skipped: no kernel config readable here");
        return;
    }
    assert!(text.contains("Required:") && text.contains("storage drivers available:"), "{text}");
    let dm = std::fs::read_to_string("/proc/devices").unwrap_or_default().contains("device-mapper");
    if dm {
        assert!(text.contains("device-mapper            present"), "{text}");
    } else {
        assert!(text.contains("device-mapper            missing: the devicemapper storage driver cannot run"), "{text}");
    }
    // The exit status follows the verdict.
    let ok = text.contains("Result: 0 required option(s) missing") && !text.contains("storage drivers available: none");
    assert_eq!(out.status.code(), Some(if ok { 0 } else { 1 }), "{text}");
}
