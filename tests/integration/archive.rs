//! Images as archives and containers as images: `save`/`load` round trips that keep the image
//! id, OCI tools reading what berth saved, and a layer damaged on disk refused instead of
//! exported.

use berth_tests::{require_root, scratch_root, Daemon};
use std::process::Command;

fn skopeo(args: &[&str]) -> (bool, String) {
    let out = Command::new("skopeo").args(args).output().expect("skopeo (ci/install-deps.sh installs it)");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

fn tar_members(path: &std::path::Path) -> Vec<String> {
    let mut a = tar::Archive::new(std::fs::File::open(path).unwrap());
    a.entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect()
}

/// Changes the content of busybox's /etc/passwd in its layer behind berth's back (a byte
/// flipped, same size: only a content check can tell).
fn damage_busybox_layer(d: &Daemon) {
    let passwd = std::fs::read_dir(d.data_root().join("overlay2"))
        .unwrap()
        .map(|e| e.unwrap().path().join("diff/etc/passwd"))
        .find(|p| p.is_file())
        .expect("the busybox layer has /etc/passwd");
    let mut content = std::fs::read(&passwd).unwrap();
    content[0] ^= 0x20;
    std::fs::write(&passwd, &content).unwrap();
}

#[test]
fn save_then_load_keeps_the_image_and_oci_tools_read_it() {
    require_root!();
    let d = Daemon::start();
    d.load_busybox();
    let id = d.berth(&["inspect", "-f", "{{.Id}}", "busybox:latest"]).ok().stdout.trim().to_string();
    let dir = scratch_root();
    let saved = dir.join("busybox.tar");

    // A tag saves that tag; the archive is Docker's and an OCI layout at once.
    d.berth(&["save", "-o", saved.to_str().unwrap(), "busybox:latest"]).ok();
    let members = tar_members(&saved);
    for m in ["manifest.json", "index.json", "oci-layout", "repositories"] {
        assert!(members.iter().any(|n| n == m), "{m} missing from {members:?}");
    }
    let (ok, out) = skopeo(&["inspect", &format!("docker-archive:{}", saved.display())]);
    assert!(ok, "skopeo could not read the docker archive: {out}");
    let (ok, out) = skopeo(&["inspect", "--config", &format!("oci-archive:{}", saved.display())]);
    assert!(ok && out.contains("\"architecture\""), "skopeo could not read the OCI layout: {out}");
    // skopeo copies it (every layer checked against its digest on the way).
    let (ok, out) = skopeo(&["copy", &format!("docker-archive:{}", saved.display()), &format!("oci:{}:copied", dir.join("oci").display())]);
    assert!(ok, "{out}");

    // The docker CLI's save streams the same bytes (the archive is deterministic).
    let via_docker = dir.join("docker.tar");
    d.docker(&["save", "-o", via_docker.to_str().unwrap(), "busybox:latest"]).ok();
    assert!(std::fs::read(&via_docker).unwrap() == std::fs::read(&saved).unwrap(), "docker save and berth save differ");

    // rmi, load: the same id and tag, and it runs.
    for t in ["busybox:latest", "busybox:buildroot-2014.02", "alpine:3.10", "alpine:latest"] {
        d.berth(&["rmi", t]).ok();
    }
    assert!(d.image_tags().is_empty(), "{:?}", d.image_tags());
    let out = d.berth(&["load", "-i", saved.to_str().unwrap()]).ok();
    assert!(out.stdout.contains("Loaded image: busybox:latest"), "{}", out.stdout);
    assert_eq!(d.berth(&["inspect", "-f", "{{.Id}}", "busybox:latest"]).ok().stdout.trim(), id);
    assert_eq!(d.berth(&["run", "--rm", "busybox", "echo", "reloaded"]).ok().stdout, "reloaded\n");

    // Several images in one archive; a bare repository name saves all its tags.
    d.berth(&["tag", "busybox:latest", "busybox:second"]).ok();
    d.berth(&["tag", "busybox:latest", "other/tool:1"]).ok();
    let several = dir.join("several.tar");
    d.docker(&["save", "-o", several.to_str().unwrap(), "busybox", "other/tool:1"]).ok();
    let manifest: serde_json::Value = {
        let mut a = tar::Archive::new(std::fs::File::open(&several).unwrap());
        let mut e = a.entries().unwrap().map(|e| e.unwrap()).find(|e| e.path().unwrap().to_str() == Some("manifest.json")).unwrap();
        serde_json::from_reader(&mut e).unwrap()
    };
    let mut tags: Vec<String> = manifest[0]["RepoTags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
    tags.sort();
    assert_eq!(tags, ["busybox:latest", "busybox:second", "other/tool:1"], "{manifest}");

    // `--format oci`: the layout alone.
    let oci = dir.join("oci.tar");
    d.berth(&["save", "--format", "oci", "-o", oci.to_str().unwrap(), "busybox:latest"]).ok();
    let members = tar_members(&oci);
    assert!(members.contains(&"index.json".to_string()) && !members.contains(&"manifest.json".to_string()), "{members:?}");
    let (ok, out) = skopeo(&["inspect", &format!("oci-archive:{}", oci.display())]);
    assert!(ok, "{out}");

    // Unknown names fail before anything is written.
    let missing = dir.join("missing.tar");
    let out = d.berth(&["save", "-o", missing.to_str().unwrap(), "nothing:here"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("No such image"), "{}", out.stderr);
    assert!(!missing.exists());
    assert!(d.inconsistencies().is_empty(), "{:?}", d.inconsistencies());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_layer_damaged_on_disk_is_not_exported() {
    require_root!();
    let d = Daemon::start();
    d.load_busybox();
    let dir = scratch_root();
    damage_busybox_layer(&d);

    let out_file = dir.join("damaged.tar");
    let out = d.berth(&["save", "-o", out_file.to_str().unwrap(), "busybox:latest"]);
    assert_ne!(out.code, 0, "a damaged layer was exported");
    assert!(!out_file.exists(), "a partial archive was left behind");
    assert!(d.log().contains("damaged on disk"), "{}", d.log());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn commit_diff_export_and_import_round_trip() {
    require_root!();
    let d = Daemon::start();
    d.load_busybox();
    let dir = scratch_root();
    d.berth(&["run", "--name", "maker", "busybox", "sh", "-c", "mkdir /data && echo committed > /data/hello && rm /etc/group"]).ok();

    // diff: the user's changes only (not the files the daemon writes into every container).
    let diff = d.berth(&["diff", "maker"]).ok().stdout;
    for line in ["A /data", "A /data/hello", "D /etc/group", "C /etc"] {
        assert!(diff.lines().any(|l| l == line), "{line:?} missing from:\n{diff}");
    }
    assert!(!diff.contains("/etc/hosts") && !diff.contains("/etc/hostname"), "{diff}");
    assert_eq!(d.docker(&["diff", "maker"]).ok().stdout, diff);

    // commit: a new image whose top layer is those changes, with -c applied.
    let id = d
        .berth(&["commit", "-a", "berth tests", "-m", "add hello", "-c", r#"CMD ["cat", "/data/hello"]"#, "maker", "committed:1"])
        .ok()
        .stdout;
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(d.berth(&["run", "--rm", "committed:1"]).ok().stdout, "committed\n");
    assert_ne!(d.berth(&["run", "--rm", "committed:1", "ls", "/etc/group"]).code, 0, "the deletion was not committed");
    let base = d.berth(&["inspect", "-f", "{{.Id}}", "busybox:latest"]).ok().stdout;
    assert_eq!(d.berth(&["inspect", "-f", "{{.Parent}}", "committed:1"]).ok().stdout, base, "Parent names the image committed from");
    let insp = d.berth(&["inspect", "-f", "{{.Author}}|{{.Comment}}", "committed:1"]).ok().stdout;
    assert_eq!(insp.trim(), "berth tests|add hello");
    let layers: Vec<String> =
        serde_json::from_str(&d.berth(&["inspect", "-f", "{{json .RootFS.Layers}}", "committed:1"]).ok().stdout).unwrap();
    assert_eq!(layers.len(), 2, "{layers:?}");
    // The committed image is saved and pushed like any other: its new layer has a layout.
    let saved = dir.join("committed.tar");
    d.berth(&["save", "-o", saved.to_str().unwrap(), "committed:1"]).ok();

    // docker commit of a running container pauses it and lets it run on.
    d.berth(&["run", "-d", "--name", "busy", "busybox", "sh", "-c", "echo x > /tmp/x; sleep 60"]).ok();
    std::thread::sleep(std::time::Duration::from_millis(300));
    d.docker(&["commit", "busy", "from-running:1"]).ok();
    assert_eq!(d.berth(&["inspect", "-f", "{{.State.Status}}", "busy"]).ok().stdout.trim(), "running");
    assert_eq!(d.berth(&["run", "--rm", "from-running:1", "cat", "/tmp/x"]).ok().stdout, "x\n");
    d.berth(&["rm", "-f", "busy"]).ok();

    // export -> import -> run: the whole tree, the deletion honoured.
    let exported = dir.join("maker.tar");
    d.docker(&["export", "-o", exported.to_str().unwrap(), "maker"]).ok();
    let names = tar_members(&exported);
    assert!(names.iter().any(|n| n == "data/hello") && names.iter().any(|n| n == "bin/busybox"), "{names:?}");
    assert!(!names.iter().any(|n| n == "etc/group"), "a deleted file was exported");
    assert!(!names.iter().any(|n| n.contains(".wh.")), "whiteouts leaked into the export");
    d.berth(&["import", exported.to_str().unwrap(), "imported:1"]).ok();
    assert_eq!(d.berth(&["run", "--rm", "imported:1", "cat", "/data/hello"]).ok().stdout, "committed\n");

    // Errors: unknown container, bad change instruction; nothing is created.
    let before = d.image_tags().len();
    let out = d.berth(&["commit", "nothing", "x:1"]);
    assert!(out.code != 0 && out.stderr.contains("No such container"), "{}", out.stderr);
    let out = d.berth(&["commit", "-c", "FROB x", "maker", "x:2"]);
    assert!(out.code != 0, "{}", out.stderr);
    assert_eq!(d.image_tags().len(), before);
    assert!(d.inconsistencies().is_empty(), "{:?}", d.inconsistencies());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn image_layer_check_marks_a_damaged_image_unusable() {
    require_root!();
    let mut d = Daemon::start_with_config(r#"{"image-layer-check": true}"#);
    d.load_busybox();
    d.berth(&["tag", "busybox:latest", "second:1"]).ok();
    // An image with a layer of its own is not touched by the other's damage.
    let dir = scratch_root();
    std::fs::create_dir_all(dir.join("rootfs")).unwrap();
    std::fs::write(dir.join("rootfs/hello"), b"hi\n").unwrap();
    let t = dir.join("rootfs.tar");
    assert!(Command::new("tar").arg("-C").arg(dir.join("rootfs")).arg("-cf").arg(&t).arg(".").status().unwrap().success());
    d.berth(&["import", t.to_str().unwrap(), "healthy:1"]).ok();

    // While the daemon is down.
    d.stop();
    damage_busybox_layer(&d);
    d.spawn();

    let insp = d.api("GET", "/images/busybox:latest/json", None, b"").json();
    let why = insp["Damaged"].as_str().unwrap_or_default().to_string();
    assert!(why.contains("failed verification"), "{insp}");
    let out = d.berth(&["run", "--rm", "second:1", "true"]);
    assert_ne!(out.code, 0, "a damaged image was run");
    assert!(out.stderr.contains("damaged"), "{}", out.stderr);
    let out = d.berth(&["images"]).ok();
    assert!(out.stderr.contains("is damaged"), "{}", out.stderr);
    assert!(d.api("GET", "/images/healthy:1/json", None, b"").json()["Damaged"].is_null());
    let _ = std::fs::remove_dir_all(&dir);
}
