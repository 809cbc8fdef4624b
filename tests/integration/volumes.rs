//! Volumes, binds and tmpfs, end to end: data that outlives containers and daemon restarts,
//! `rm -v` taking only anonymous volumes, copy-up and `nocopy`, `--volumes-from`, and the bad
//! inputs that must change nothing.

use berth_tests::{require_root, Daemon};

fn volume_names(d: &Daemon) -> Vec<String> {
    let mut v: Vec<String> = d.berth(&["volume", "ls", "-q"]).ok().stdout.lines().map(String::from).collect();
    v.sort();
    v
}

fn container_count(d: &Daemon) -> usize {
    d.api("GET", "/containers/json?all=1", None, b"").json().as_array().unwrap().len()
}

#[test]
fn volume_data_outlives_containers_and_daemon_restarts() {
    require_root!();
    let mut d = Daemon::start();
    d.load_busybox();
    d.berth(&["volume", "create", "data"]).ok();
    d.berth(&["run", "--rm", "-v", "data:/data", "busybox", "sh", "-c", "echo kept > /data/f"]).ok();
    let read = d.berth(&["run", "--rm", "-v", "data:/data:ro", "busybox", "cat", "/data/f"]).ok();
    assert_eq!(read.stdout.trim(), "kept");
    let ro = d.berth(&["run", "--rm", "-v", "data:/data:ro", "busybox", "sh", "-c", "echo x > /data/g"]);
    assert_ne!(ro.code, 0, "a read-only volume was written");

    d.berth(&["create", "--name", "user", "-v", "data:/data", "busybox", "true"]).ok();
    d.kill9();
    d.spawn();
    assert_eq!(volume_names(&d), vec!["data"]);
    assert_eq!(d.berth(&["run", "--rm", "-v", "data:/data", "busybox", "cat", "/data/f"]).ok().stdout.trim(), "kept");
    let busy = d.berth(&["volume", "rm", "data"]);
    assert!(busy.code != 0 && busy.stderr.contains("in use"), "{busy:?}");
    d.berth(&["rm", "-v", "user"]).ok();
    assert_eq!(volume_names(&d), vec!["data"], "rm -v removed a named volume");
    d.berth(&["volume", "rm", "data"]).ok();
    assert!(volume_names(&d).is_empty());
    assert!(!d.data_root().join("volumes/data").exists(), "the volume's directory stayed");
    assert!(d.inconsistencies().is_empty(), "{:?}", d.inconsistencies());
}

#[test]
fn rm_v_removes_only_anonymous_volumes_and_run_rm_too() {
    require_root!();
    let d = Daemon::start();
    d.load_busybox();
    d.berth(&["create", "--name", "c", "-v", "named:/n", "-v", "/anon", "busybox", "true"]).ok();
    let mounts = d.api("GET", "/containers/c/json", None, b"").json()["Mounts"].clone();
    let names: Vec<String> = mounts.as_array().unwrap().iter().map(|m| m["Name"].as_str().unwrap().to_string()).collect();
    let anon = names.iter().find(|n| n.len() == 64).unwrap_or_else(|| panic!("no anonymous volume in {mounts}")).clone();
    assert!(names.contains(&"named".to_string()));
    d.berth(&["rm", "-v", "c"]).ok();
    assert_eq!(volume_names(&d), vec!["named"]);
    assert!(!d.data_root().join("volumes").join(&anon).exists());
    // Without -v, the anonymous volume stays (Docker's rule) and `volume prune` takes it.
    d.berth(&["create", "--name", "k", "-v", "/anon", "busybox", "true"]).ok();
    d.berth(&["rm", "k"]).ok();
    assert_eq!(volume_names(&d).len(), 2);
    d.berth(&["volume", "prune", "-f"]).ok();
    assert_eq!(volume_names(&d), vec!["named"], "prune takes unused anonymous volumes only");
    // run --rm takes its anonymous volumes with it.
    d.berth(&["run", "--rm", "-v", "/scratch", "busybox", "true"]).ok();
    assert_eq!(volume_names(&d), vec!["named"]);
}

#[test]
fn binds_tmpfs_copy_up_and_volumes_from() {
    require_root!();
    let d = Daemon::start();
    d.load_busybox();
    let host = d.root.join("shared");
    std::fs::create_dir(&host).unwrap();
    let bind = format!("{}:/shared", host.display());
    d.berth(&["run", "--rm", "-v", &bind, "busybox", "sh", "-c", "echo from-container > /shared/out"]).ok();
    assert_eq!(std::fs::read_to_string(host.join("out")).unwrap(), "from-container\n");
    let ro = d.berth(&["run", "--rm", "-v", &format!("{bind}:ro"), "busybox", "sh", "-c", "echo x > /shared/out"]);
    assert_ne!(ro.code, 0, "a read-only bind was written");
    let mount = format!("type=bind,source={},target=/m,readonly", host.display());
    assert_eq!(d.berth(&["run", "--rm", "--mount", &mount, "busybox", "cat", "/m/out"]).ok().stdout, "from-container\n");

    let t = d
        .berth(&[
            "run",
            "--rm",
            "--tmpfs",
            "/scratch:size=1m",
            "--mount",
            "type=tmpfs,target=/t",
            "busybox",
            "grep",
            "tmpfs",
            "/proc/mounts",
        ])
        .ok();
    assert!(t.stdout.contains(" /scratch tmpfs ") && t.stdout.contains("size=1024k"), "{}", t.stdout);
    assert!(t.stdout.contains(" /t tmpfs "), "{}", t.stdout);

    // Copy-up: an empty new volume over /etc gets the image's /etc; nocopy stays empty.
    d.berth(&["run", "--rm", "-v", "etc:/etc", "busybox", "true"]).ok();
    assert!(d.data_root().join("volumes/etc/_data/hostname").exists(), "the image's /etc was not copied into the new volume");
    d.berth(&["run", "--rm", "-v", "bare:/etc:nocopy", "busybox", "true"]).ok();
    assert_eq!(std::fs::read_dir(d.data_root().join("volumes/bare/_data")).unwrap().count(), 0, "nocopy copied");

    // The local driver's options: a tmpfs mounted on the volume while a container uses it.
    d.berth(&["volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=2m", "tv"]).ok();
    let df = d.berth(&["run", "--rm", "-v", "tv:/x", "busybox", "grep", " /x ", "/proc/mounts"]).ok();
    assert!(df.stdout.contains("tmpfs") && df.stdout.contains("size=2048k"), "{}", df.stdout);
    let data = d.data_root().join("volumes/tv/_data").display().to_string();
    // The unmount follows the exit (the answer to `run --rm` does not wait for it).
    let mounted = || std::fs::read_to_string("/proc/self/mountinfo").unwrap().contains(&data);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while mounted() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!mounted(), "the volume stayed mounted after its user exited");

    d.berth(&["run", "--name", "src", "-v", "shared-vol:/vol", "busybox", "sh", "-c", "echo hi > /vol/x"]).ok();
    let from = d.berth(&["run", "--rm", "--volumes-from", "src:ro", "busybox", "sh", "-c", "cat /vol/x; echo y > /vol/y"]);
    assert_eq!(from.stdout.trim(), "hi");
    assert_ne!(from.code, 0, "--volumes-from :ro was writable");
}

#[test]
fn bad_volume_input_is_refused_and_changes_nothing() {
    require_root!();
    let d = Daemon::start();
    d.load_busybox();
    let slash = d.berth(&["volume", "create", "a/b"]);
    assert!(slash.code != 0 && slash.stderr.contains("invalid characters"), "{slash:?}");
    let r = d.api("POST", "/volumes/create", Some("application/json"), br#"{"Name":"../x"}"#);
    assert_eq!(r.status, 400, "{}", r.text());
    let r = d.api("POST", "/volumes/create", Some("application/json"), br#"{"Name":"v","DriverOpts":{"bogus":"1"}}"#);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(d.api("POST", "/volumes/create", Some("application/json"), b"{\"Name\":").status, 400);
    for bad in [
        &["-v", "a/b:/x"][..],
        &["-v", "vol:relative"],
        &["-v", "/nonexistent-berth-src:/x"],
        &["-v", "v1:/x", "-v", "v2:/x"],
        &["--mount", "type=bind,source=rel,target=/x"],
    ] {
        let mut args = vec!["create"];
        args.extend_from_slice(bad);
        args.extend_from_slice(&["busybox", "true"]);
        let out = d.berth(&args);
        assert_ne!(out.code, 0, "{bad:?} was accepted");
        assert!(
            out.stderr.contains("invalid") || out.stderr.contains("does not exist") || out.stderr.contains("Duplicate"),
            "{bad:?}: {}",
            out.stderr
        );
    }
    assert_eq!(container_count(&d), 0, "a half-created container exists");
    assert!(volume_names(&d).is_empty(), "a refused create left volumes: {:?}", volume_names(&d));
    assert_eq!(d.api("GET", "/volumes/nosuch", None, b"").status, 404);
    assert_eq!(d.api("DELETE", "/volumes/nosuch", None, b"").status, 404);
    assert!(d.inconsistencies().is_empty(), "{:?}", d.inconsistencies());
}

#[test]
fn a_crash_during_create_leaves_no_volume_behind() {
    require_root!();
    let mut d = Daemon::start();
    d.load_busybox();
    d.stop();
    d.spawn_env(&[("BERTH_FAILPOINTS", "container.create.after-rootfs")]);
    let _ = d.berth(&["create", "--name", "c", "-v", "fresh:/x", "-v", "/anon", "busybox", "true"]);
    assert!(!d.wait_died().success());
    assert!(d.data_root().join("volumes/fresh").exists(), "the failpoint should sit after the volume's directory was made");
    d.spawn();
    assert!(volume_names(&d).is_empty(), "an unacknowledged create left volumes: {:?}", volume_names(&d));
    assert!(!d.data_root().join("volumes/fresh").exists());
    assert!(d.inconsistencies().is_empty(), "{:?}", d.inconsistencies());
    // The same create goes through now.
    d.berth(&["create", "--name", "c", "-v", "fresh:/x", "busybox", "true"]).ok();
    assert_eq!(volume_names(&d), vec!["fresh"]);
}

#[test]
fn prune_filters_are_applied_or_refused_never_ignored() {
    require_root!();
    let d = Daemon::start();
    d.berth(&["volume", "create", "--label", "keep=yes", "kept"]).ok();
    d.berth(&["volume", "create", "--label", "tmp", "scratch"]).ok();
    d.berth(&["network", "create", "--label", "tmp", "n1"]).ok();
    d.berth(&["network", "create", "n2"]).ok();
    // An unknown filter would prune more than asked: it is refused.
    let until = format!("/volumes/prune?filters={}", "%7B%22until%22%3A%5B%2224h%22%5D%7D");
    assert_eq!(d.api("POST", &until, None, b"").status, 400);
    assert_eq!(d.api("POST", &until.replace("volumes", "networks"), None, b"").status, 400);
    assert_eq!(volume_names(&d), vec!["kept", "scratch"]);
    // label=tmp with all=true: only the labelled volume; only the labelled network.
    let r = d.api("POST", "/volumes/prune?filters=%7B%22all%22%3A%5B%22true%22%5D%2C%22label%22%3A%5B%22tmp%22%5D%7D", None, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(volume_names(&d), vec!["kept"]);
    let r = d.api("POST", "/networks/prune?filters=%7B%22label%22%3A%5B%22tmp%22%5D%7D", None, b"");
    assert_eq!(r.json()["NetworksDeleted"], serde_json::json!(["n1"]));
    assert!(d.berth(&["network", "inspect", "n2"]).code == 0);
}
