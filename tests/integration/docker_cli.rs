//! The real `docker` CLI and the berth CLI against a real daemon, runc and overlayfs.

use berth_tests::{busybox_tar, require_root, Daemon};
use std::time::Duration;

fn eventually(what: &str, f: impl FnMut() -> bool) {
    berth_tests::eventually(what, Duration::from_secs(10), f)
}

#[test]
fn docker_cli_lifecycle() {
    require_root!();
    let d = Daemon::start();
    let tar = busybox_tar();

    let v = d.docker(&["version", "--format", "{{.Server.APIVersion}}"]).ok();
    assert_eq!(v.stdout.trim(), "1.45");
    let info = d.docker(&["info", "--format", "{{.Driver}} {{.LoggingDriver}} {{.Containers}}"]).ok();
    assert_eq!(info.stdout.trim(), "overlay2 json-file 0");

    let load = d.docker(&["load", "-i", tar.to_str().unwrap()]).ok();
    assert!(load.stdout.contains("Loaded image: busybox:latest"), "{}", load.stdout);
    let images = d.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]).ok();
    assert!(images.stdout.lines().any(|l| l == "busybox:latest"), "{}", images.stdout);

    let hi = d.docker(&["run", "--rm", "busybox", "echo", "hi"]).ok();
    assert_eq!(hi.stdout, "hi\n");
    let all = d.docker(&["ps", "-a", "-q"]).ok();
    assert_eq!(all.stdout.trim(), "", "--rm left a container behind");

    let id = d.docker(&["run", "-d", "--name", "x", "busybox", "sh", "-c", "echo ready; sleep 1000"]).ok().stdout.trim().to_string();
    assert_eq!(id.len(), 64, "{id}");
    let ps = d.docker(&["ps", "--format", "{{.ID}} {{.Names}} {{.Status}}"]).ok();
    assert!(ps.stdout.starts_with(&format!("{} x Up", &id[..12])), "{}", ps.stdout);
    eventually("the container's output in docker logs", || d.docker(&["logs", "x"]).stdout == "ready\n");
    assert_eq!(d.docker(&["inspect", "-f", "{{.State.Running}}", "x"]).ok().stdout.trim(), "true");

    // sleep as PID 1 ignores SIGTERM: after 1 s it gets SIGKILL.
    d.docker(&["stop", "-t", "1", "x"]).ok();
    assert_eq!(d.docker(&["inspect", "-f", "{{.State.Running}} {{.State.ExitCode}}", "x"]).ok().stdout.trim(), "false 137");
    assert_eq!(d.docker(&["wait", "x"]).ok().stdout.trim(), "137");
    d.docker(&["rm", "x"]).ok();
    assert!(!d.docker(&["ps", "-a", "--format", "{{.Names}}"]).ok().stdout.contains('x'));

    let three = d.docker(&["run", "busybox", "sh", "-c", "exit 3"]);
    assert_eq!(three.code, 3, "{three:?}");
    let missing = d.docker(&["run", "busybox", "no-such-command"]);
    assert_eq!(missing.code, 127, "{missing:?}");
    assert!(missing.stderr.contains("executable file not found"), "{}", missing.stderr);
}

#[test]
fn docker_cli_reports_missing_objects() {
    require_root!();
    let d = Daemon::start();
    let out = d.docker(&["inspect", "nothing-here"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("No such object: nothing-here"), "{}", out.stderr);
    let out = d.docker(&["rm", "nothing-here"]);
    assert!(out.stderr.contains("No such container: nothing-here"), "{}", out.stderr);
    let out = d.docker(&["run", "--rm", "--network", "bridge", "busybox", "true"]);
    assert_ne!(out.code, 0);
}

#[test]
fn berth_cli_runs_hello_and_keeps_docker_semantics() {
    require_root!();
    let d = Daemon::start();
    d.load_busybox();
    let hello = d.berth(&["run", "--rm", "busybox", "echo", "hello"]).ok();
    assert_eq!(hello.stdout, "hello\n");

    // stderr stays stderr, stdout stays stdout.
    let both = d.berth(&["run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2"]).ok();
    assert_eq!(both.stdout, "out\n");
    assert_eq!(both.stderr, "err\n");

    // Environment, working directory, user, hostname, umask.
    let env = d
        .berth(&[
            "run",
            "--rm",
            "-e",
            "A=1",
            "-w",
            "/tmp/wd",
            "-u",
            "postgres",
            "-h",
            "boat",
            "busybox",
            "sh",
            "-c",
            "echo $A $(pwd) $(id -u) $(hostname) $(umask)",
        ])
        .ok();
    assert_eq!(env.stdout.trim(), "1 /tmp/wd 70 boat 0027");
    let normal = d.berth(&["run", "--rm", "--annotation", "native.umask=normal", "busybox", "sh", "-c", "umask"]).ok();
    assert_eq!(normal.stdout.trim(), "0022");

    // --read-only: the root filesystem refuses writes; /tmp is not special.
    let ro = d.berth(&["run", "--rm", "--read-only", "busybox", "touch", "/x"]);
    assert_ne!(ro.code, 0);
    assert!(ro.stderr.contains("Read-only file system"), "{}", ro.stderr);

    // Default capabilities: no CAP_SYS_ADMIN, so mounting fails; --cap-add gives it.
    let caps = d.berth(&["run", "--rm", "busybox", "sh", "-c", "grep CapEff /proc/self/status"]).ok();
    assert!(caps.stdout.contains("00000000a80425fb"), "{}", caps.stdout);

    // --entrypoint replaces the image's command; labels are kept.
    d.berth(&["create", "--name", "lab", "-l", "tier=edge", "--entrypoint", "echo", "busybox", "a", "b"]).ok();
    let insp = d.berth(&["inspect", "-f", "{{.Config.Labels.tier}} {{.Path}} {{json .Args}}", "lab"]).ok();
    assert_eq!(insp.stdout.trim(), "edge echo [\"a\",\"b\"]");
    // Back-to-back starts: each waits for the previous run's unmount and `runc delete`.
    for _ in 0..5 {
        let started = d.berth(&["start", "-a", "lab"]).ok();
        assert_eq!(started.stdout, "a b\n");
    }
    d.berth(&["rename", "lab", "lab2"]).ok();
    assert_eq!(d.berth(&["logs", "lab2"]).ok().stdout, "a b\n".repeat(5));
    d.berth(&["rm", "lab2"]).ok();
}

#[test]
fn logs_tail_timestamps_and_rotation() {
    require_root!();
    let d = Daemon::start();
    d.load_busybox();
    d.berth(&[
        "run",
        "--name",
        "l",
        "--log-opt",
        "max-size=2k",
        "--log-opt",
        "max-file=2",
        "busybox",
        "sh",
        "-c",
        "for i in $(seq 1 200); do echo line $i; done",
    ])
    .ok();
    let tail = d.berth(&["logs", "--tail", "3", "l"]).ok();
    assert_eq!(tail.stdout, "line 198\nline 199\nline 200\n");
    let ts = d.berth(&["logs", "-t", "--tail", "1", "l"]).ok();
    let (stamp, rest) = ts.stdout.split_once(' ').unwrap();
    assert!(stamp.ends_with('Z') && stamp.contains('T'), "{stamp}");
    assert_eq!(rest, "line 200\n");
    // Rotation kept at most two files of about 2 KiB: the oldest lines are gone.
    let all = d.berth(&["logs", "l"]).ok();
    assert!(!all.stdout.contains("line 1\n"), "rotation kept everything");
    assert!(all.stdout.len() < 4096 + 200, "{} bytes of logs", all.stdout.len());
    let files: Vec<_> = std::fs::read_dir(d.data_root().join("containers"))
        .unwrap()
        .flat_map(|e| std::fs::read_dir(e.unwrap().path()).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("-json.log"))
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    // since in the future: nothing.
    let none = d.berth(&["logs", "--since", "2099-01-01T00:00:00Z", "l"]).ok();
    assert_eq!(none.stdout, "");
}

#[test]
fn oci_layouts_written_by_skopeo_load_and_run() {
    require_root!();
    if std::process::Command::new("skopeo").arg("--version").output().is_err() {
        eprintln!("skipped: skopeo is not installed (ci/install-deps.sh installs it)");
        return;
    }
    let d = Daemon::start();
    let src = busybox_tar();
    let oci = d.root.join("busybox-oci.tar");
    // skopeo gzips the layer and names the image in org.opencontainers.image.ref.name.
    let out = std::process::Command::new("skopeo")
        .args(["copy", "--quiet", &format!("docker-archive:{}", src.display()), &format!("oci-archive:{}:busybox:oci", oci.display())])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let load = d.docker(&["load", "-i", oci.to_str().unwrap()]).ok();
    assert!(load.stdout.contains("Loaded image: busybox:oci"), "{}", load.stdout);
    assert_eq!(d.docker(&["run", "--rm", "busybox:oci", "echo", "from-oci"]).ok().stdout, "from-oci\n");
    // skopeo rewrites the config (another image id) but the layer content is the same: the
    // gzip layer was verified against the same diff_id.
    d.load_busybox();
    let a = d.docker(&["inspect", "-f", "{{json .RootFS.Layers}}", "busybox:oci"]).ok().stdout;
    let b = d.docker(&["inspect", "-f", "{{json .RootFS.Layers}}", "busybox:latest"]).ok().stdout;
    assert_eq!(a, b);
}

#[test]
fn history_prune_and_disk_usage() {
    require_root!();
    let d = Daemon::start();
    d.load_busybox();
    let history = d.docker(&["history", "busybox"]).ok().stdout;
    assert!(history.contains("busybox-image.sh") && history.lines().count() >= 2, "{history}");

    // A tag moved to another image leaves the first one dangling; prune removes only it.
    for content in ["one", "two"] {
        let layer = berth_tests::raw_layer(&[("f", tar::EntryType::Regular, "", content.as_bytes())]);
        let r = d.api("POST", "/images/load", Some("application/x-tar"), &berth_tests::docker_archive(&layer, "moving:1"));
        assert_eq!(r.status, 200);
    }
    let dangling = d.docker(&["images", "-q", "-f", "dangling=true"]).ok().stdout;
    assert_eq!(dangling.lines().count(), 1, "{dangling}");
    let out = d.docker(&["image", "prune", "-f"]).ok().stdout;
    assert!(out.contains("deleted: sha256:"), "{out}");
    assert_eq!(d.docker(&["images", "-q", "-f", "dangling=true"]).ok().stdout, "");
    assert!(d.image_tags().contains(&"moving:1".to_string()) && d.image_tags().contains(&"busybox:latest".to_string()));

    // Disk usage counts what a container wrote.
    d.berth(&["run", "--name", "writer", "busybox", "dd", "if=/dev/zero", "of=/data.bin", "bs=1024", "count=100"]).ok();
    let df = d.api("GET", "/system/df", None, b"").json();
    let writer = df["Containers"].as_array().unwrap().iter().find(|c| c["Names"][0] == "/writer").unwrap().clone();
    assert!(writer["SizeRw"].as_u64().unwrap() >= 100 * 1024, "{writer}");
    assert!(df["LayersSize"].as_u64().unwrap() > 1_000_000, "{}", df["LayersSize"]);
    let out = d.docker(&["system", "df"]).ok().stdout;
    assert!(out.contains("Images") && out.contains("Containers"), "{out}");

    // Container prune: stopped containers go, running ones stay; the space is counted.
    d.berth(&["run", "-d", "--name", "busy", "busybox", "sleep", "100"]).ok();
    d.berth(&["create", "--name", "idle", "busybox", "true"]).ok();
    let out = d.docker(&["container", "prune", "-f"]).ok().stdout;
    assert!(out.contains("Total reclaimed space"), "{out}");
    let left = d.docker(&["ps", "-a", "--format", "{{.Names}}"]).ok().stdout;
    assert_eq!(left.trim(), "busy", "{left}");
}

#[test]
fn a_large_log_is_streamed_not_held_in_memory() {
    require_root!();
    let d = Daemon::start();
    d.load_busybox();
    // ~30 MB of output in 8000-byte lines.
    d.berth(&["run", "--name", "chatty", "busybox", "sh", "-c", "dd if=/dev/zero bs=1M count=30 2>/dev/null | tr '\\0' x | fold -w 8000"])
        .ok();
    let before = d.peak_rss_kib();
    let out = d.berth(&["logs", "chatty"]).ok();
    assert!(out.stdout.len() >= 30 << 20, "{} bytes of logs", out.stdout.len());
    let grown = d.peak_rss_kib().saturating_sub(before);
    assert!(grown < 12 * 1024, "the daemon's peak memory grew by {grown} KiB while sending a 30 MB log");
}

/// The networking scenario through the docker CLI: a user network, a published port
/// answering the host, `docker port`, name resolution between containers.
#[test]
fn docker_cli_networks_and_published_ports() {
    require_root!();
    let d = Daemon::start();
    d.docker(&["load", "-i", busybox_tar().to_str().unwrap()]).ok();
    let id = d.docker(&["network", "create", "--subnet", "10.88.0.0/24", "front"]).ok().stdout.trim().to_string();
    assert_eq!(id.len(), 64);
    let ls = d.docker(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]).ok().stdout;
    for want in ["bridge bridge", "front bridge", "host host", "none null"] {
        assert!(ls.lines().any(|l| l == want), "network ls lacks {want:?}:\n{ls}");
    }
    let subnet = d.docker(&["network", "inspect", "-f", "{{(index .IPAM.Config 0).Subnet}}", "front"]).ok();
    assert_eq!(subnet.stdout.trim(), "10.88.0.0/24");
    let web = d
        .docker(&[
            "run",
            "-d",
            "--name",
            "web",
            "--network",
            "front",
            "-p",
            "127.0.0.1:18180:80",
            "busybox",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/etc",
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert_eq!(d.docker(&["port", "web", "80"]).ok().stdout.trim(), "127.0.0.1:18180");
    let mut body = Err(String::new());
    eventually("the published port to answer", || {
        body = d.netns.http_get("127.0.0.1:18180", "/hostname");
        body.is_ok()
    });
    assert_eq!(body.unwrap().trim(), &web[..12]);
    let ip = d.docker(&["inspect", "-f", "{{.NetworkSettings.Networks.front.IPAddress}}", "web"]).ok().stdout;
    assert!(ip.trim().starts_with("10.88.0."), "{ip}");
    let got = d
        .docker(&[
            "run",
            "--rm",
            "--network",
            "front",
            "busybox",
            "sh",
            "-c",
            "printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w 3 web 80 | tail -n 1",
        ])
        .ok();
    assert_eq!(got.stdout.trim(), &web[..12]);
    let members = d.docker(&["network", "inspect", "-f", "{{json .Containers}}", "front"]).ok().stdout;
    assert!(members.contains(&web), "{members}");
    d.docker(&["rm", "-f", "web"]).ok();
    d.docker(&["network", "rm", "front"]).ok();
    assert!(d.docker(&["network", "inspect", "front"]).code != 0);
}

/// Volumes through the docker CLI: create, write from one container, read from the next,
/// inspect, and rm only once no container uses it.
#[test]
fn docker_cli_volumes() {
    require_root!();
    let d = Daemon::start();
    d.docker(&["load", "-i", busybox_tar().to_str().unwrap()]).ok();
    assert_eq!(d.docker(&["volume", "create", "appdata"]).ok().stdout.trim(), "appdata");
    d.docker(&["run", "--name", "writer", "-v", "appdata:/data", "busybox", "sh", "-c", "echo persisted > /data/f"]).ok();
    let read = d.docker(&["run", "--rm", "-v", "appdata:/data", "busybox", "cat", "/data/f"]).ok();
    assert_eq!(read.stdout.trim(), "persisted");
    let mp = d.docker(&["volume", "inspect", "-f", "{{.Driver}} {{.Mountpoint}}", "appdata"]).ok().stdout;
    assert!(mp.starts_with("local ") && mp.trim().ends_with("/volumes/appdata/_data"), "{mp}");
    let ls = d.docker(&["volume", "ls", "--format", "{{.Name}}"]).ok().stdout;
    assert_eq!(ls.trim(), "appdata");
    let src = d.docker(&["inspect", "-f", "{{range .Mounts}}{{.Type}}:{{.Name}}:{{.Destination}}{{end}}", "writer"]).ok();
    assert_eq!(src.stdout.trim(), "volume:appdata:/data");
    assert_ne!(d.docker(&["volume", "rm", "appdata"]).code, 0, "a volume in use was removed");
    d.docker(&["rm", "-v", "writer"]).ok();
    d.docker(&["volume", "rm", "appdata"]).ok();
    assert!(d.docker(&["volume", "inspect", "appdata"]).code != 0);
}

/// `berth images | head -1` and friends: a reader that goes away ends the CLI quietly, as a
/// shell tool does, not with a panic message; `image inspect` answers as docker's does.
#[test]
fn berth_cli_is_quiet_when_its_reader_goes_away() {
    require_root!();
    let d = Daemon::start();
    d.load_busybox();
    // 300 copies of an image's inspect output: far more than a pipe buffers, so the CLI is
    // still writing when `head` has gone.
    let names = vec!["busybox"; 300].join(" ");
    let line = format!("{} inspect {names} | head -1", berth_tests::berth_bin().display());
    let out = std::process::Command::new("sh").args(["-c", &line]).env("BERTH_HOST", d.host()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let arch = d.berth(&["image", "inspect", "-f", "{{.Architecture}}", "busybox"]).ok();
    assert!(!arch.stdout.trim().is_empty(), "{}", arch.stdout);
    assert_eq!(d.berth(&["image", "inspect", "no-such-image"]).code, 1);
}
