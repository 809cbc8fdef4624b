//! Field updates through signed bundles (issue 11): made and signed with the CLI, installed
//! through the daemon's API, updated, refused, rolled back, and interrupted by SIGKILL at
//! every step of an install.

use berth_tests::{require_root, scratch_root, Daemon, Out};
use std::io::Read;
use std::path::{Path, PathBuf};

/// A workstation: a key pair, the device's trust folder holding its public key, app files.
struct Kit {
    dir: PathBuf,
}

impl Kit {
    fn new() -> Self {
        let dir = scratch_root();
        let k = Kit { dir };
        k.cli(&["bundle", "keygen", "--out", k.path("keys").to_str().unwrap()]).ok();
        std::fs::create_dir_all(k.path("trust")).unwrap();
        std::fs::copy(k.path("keys/bundle.pub"), k.path("trust/vendor.pub")).unwrap();
        k
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.join(p)
    }

    /// berth without a daemon (keygen, sign, verify).
    fn cli(&self, args: &[&str]) -> Out {
        let out = std::process::Command::new(berth_tests::berth_bin()).args(args).output().unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
        }
    }

    fn daemon(&self) -> Daemon {
        let d = Daemon::start_with_config(&format!(r#"{{"bundle-trust-dir": "{}", "board": "test-board"}}"#, self.path("trust").display()));
        d.load_busybox();
        d
    }

    /// An app of one web container serving `text`, from image `image`. `health`: the
    /// healthcheck's test (a passing wget by default).
    fn app(&self, name: &str, image: &str, text: &str, health: &str) -> PathBuf {
        let p = self.path(&format!("{name}.toml"));
        let health = if health.is_empty() { r#"["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]"# } else { health };
        std::fs::write(
            &p,
            format!(
                r#"[gate]
timeout = "20s"
settle = "1s"

[containers.web]
image = "{image}"
command = ["sh", "-c", "mkdir -p /www; echo {text} > /www/index.html; httpd -p 80 -h /www; trap 'exit 0' TERM; while :; do sleep 0.2; done"]
[containers.web.healthcheck]
test = {health}
interval = "300ms"
retries = 2
"#
            ),
        )
        .unwrap();
        p
    }

    fn create(&self, d: &Daemon, app: &Path, version: u64, extra: &[&str]) -> PathBuf {
        let out = self.path(&format!("v{version}-{}.bundle", app.file_stem().unwrap().to_string_lossy()));
        let keys = self.path("keys");
        let mut args = vec!["bundle", "create", "--app", app.to_str().unwrap(), "--key", keys.to_str().unwrap()];
        let v = version.to_string();
        args.extend(["--version", &v, "-o", out.to_str().unwrap()]);
        args.extend(extra);
        d.berth(&args).ok();
        out
    }
}

fn install(d: &Daemon, bundle: &Path) -> Out {
    d.berth(&["bundle", "install", bundle.to_str().unwrap()])
}

fn status(d: &Daemon) -> serde_json::Value {
    d.api("GET", "/berth/bundles", None, b"").json()
}

fn installed(d: &Daemon) -> Option<u64> {
    status(d)["Installed"]["Version"].as_u64()
}

/// What the running web container serves.
fn served(d: &Daemon) -> String {
    // (the berth CLI has no exec verb yet: the docker CLI asks)
    d.docker(&["exec", "web", "wget", "-q", "-O-", "http://127.0.0.1/"]).stdout.trim().to_string()
}

/// The application's containers that run: (name, bundle version).
fn running(d: &Daemon) -> Vec<(String, String)> {
    let list = d.api("GET", "/containers/json?filters=%7B%22label%22%3A%5B%22berth.bundle.version%22%5D%7D", None, b"").json();
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["Names"][0].as_str().unwrap().trim_start_matches('/').to_string(),
                c["Labels"]["berth.bundle.version"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Commits a busybox container that wrote `text` to /www as image `tag` (a one-layer change).
fn image_with(d: &Daemon, tag: &str, text: &str) {
    d.berth(&["rm", "-f", "mk"]);
    d.berth(&[
        "run",
        "--name",
        "mk",
        "busybox",
        "sh",
        "-c",
        &format!("mkdir -p /www /data && echo {text} > /www/v && head -c 1048576 /dev/urandom > /data/blob"),
    ])
    .ok();
    d.berth(&["commit", "mk", tag]).ok();
    d.berth(&["rm", "mk"]).ok();
}

#[test]
fn round_trip_install_then_update_with_a_delta() {
    require_root!();
    let kit = Kit::new();
    let d = kit.daemon();
    d.berth(&["tag", "busybox", "app:1"]).ok();
    let v1 = kit.create(&d, &kit.app("a1", "app:1", "one", ""), 1, &[]);
    let verified = kit.cli(&["bundle", "verify", "--trust", kit.path("trust").to_str().unwrap(), v1.to_str().unwrap()]);
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);
    assert!(verified.stdout.contains("signature and"), "{}", verified.stdout);
    // Version 1 from a file server, as a device fetches an update.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = std::process::Command::new("python3")
        .args(["-m", "http.server", "--bind", "127.0.0.1", &port.to_string(), "--directory", kit.dir.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/{}", v1.file_name().unwrap().to_string_lossy());
    let mut out = d.berth(&["bundle", "install", &url]);
    for _ in 0..50 {
        if out.code == 0 || !out.stderr.contains("connecting") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        out = d.berth(&["bundle", "install", &url]);
    }
    let _ = server.kill();
    let _ = server.wait();
    let out = out.ok();
    assert!(out.stdout.contains("installed version 1"), "{}", out.stdout);
    assert_eq!(served(&d), "one");
    assert_eq!(running(&d), vec![("web".to_string(), "1".to_string())]);

    image_with(&d, "app:2", "two");
    let v2 = kit.create(&d, &kit.app("a2", "app:2", "two", ""), 2, &["--delta", v1.to_str().unwrap()]);
    let out = install(&d, &v2).ok();
    assert!(out.stdout.contains("installed version 2"), "{}", out.stdout);
    assert_eq!(served(&d), "two");
    assert_eq!(running(&d), vec![("web".to_string(), "2".to_string())]);
    let s = status(&d);
    assert_eq!(s["Installed"]["Version"], 2);
    assert_eq!(s["Previous"]["Version"], 1);
    assert_eq!(s["LastAttempt"]["Phase"], "installed");
    let text = d.berth(&["bundle", "status"]).ok().stdout;
    assert!(text.contains("Installed: version 2") && text.contains("Previous:  version 1"), "{text}");

    // The delta holds the changed layer and little else (acceptance 5).
    let layers = d.api("GET", "/images/app:2/json", None, b"").json()["RootFS"]["Layers"].as_array().unwrap().len();
    assert_eq!(layers, 2);
    let changed = {
        let full = kit.create(&d, &kit.app("a2full", "app:2", "two", ""), 3, &[]);
        std::fs::metadata(&full).unwrap().len() - std::fs::metadata(&v1).unwrap().len()
    };
    let delta = std::fs::metadata(&v2).unwrap().len();
    eprintln!("delta bundle: {delta} bytes; the changed layer and its metadata: about {changed} bytes");
    assert!(delta <= changed + 16 * 1024, "a delta of {delta} bytes for a change of {changed}");
    assert!(delta < std::fs::metadata(&v1).unwrap().len(), "the delta is not smaller than the full bundle");
}

/// A member's new name and content, or None to drop it.
type Edit<'a> = &'a mut dyn FnMut(&str, Vec<u8>) -> Option<(String, Vec<u8>)>;

/// Rewrites the bundle at `from` into `to`, member by member through `edit`.
fn rewrite(from: &Path, to: &Path, edit: Edit<'_>) {
    let mut archive = tar::Archive::new(std::fs::File::open(from).unwrap());
    let mut out = tar::Builder::new(std::fs::File::create(to).unwrap());
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        if let Some((name, data)) = edit(&name, data) {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            // `append_data` refuses `..`: the hostile name is written into the header as is.
            let bytes = name.as_bytes();
            h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            h.set_cksum();
            out.append(&h, data.as_slice()).unwrap();
        }
    }
    out.finish().unwrap();
}

#[test]
fn hostile_and_wrong_bundles_are_refused_and_change_nothing() {
    require_root!();
    let kit = Kit::new();
    let d = kit.daemon();
    d.berth(&["tag", "busybox", "app:1"]).ok();
    let app = kit.app("a1", "app:1", "one", "");
    let v1 = kit.create(&d, &app, 1, &[]);
    install(&d, &v1).ok();
    image_with(&d, "app:2", "two");
    let good = kit.create(&d, &kit.app("a2", "app:2", "two", ""), 2, &[]);
    let before = (status(&d), running(&d), d.api("GET", "/images/json", None, b"").json().as_array().unwrap().len());

    let layer = {
        let m = berth_images::bundle::write::read_manifest(&good).unwrap();
        m.files.iter().max_by_key(|f| f.size).unwrap().path.clone()
    };
    let p = |n: &str| kit.path(n);
    let mut cases: Vec<(&str, PathBuf, &str)> = Vec::new();
    rewrite(&good, &p("badsig.bundle"), &mut |n, mut data| {
        if n == "bundle.json" {
            let i = data.iter().position(|&b| b == b'2').unwrap();
            data[i] = b'9';
        }
        Some((n.into(), data))
    });
    cases.push(("a manifest changed after signing", p("badsig.bundle"), "bad signature"));
    // Another vendor's key, not in the device's trust folder.
    kit.cli(&["bundle", "keygen", "--out", p("other").to_str().unwrap()]).ok();
    kit.cli(&[
        "bundle",
        "sign",
        "--key",
        p("other").to_str().unwrap(),
        "-o",
        p("unknown.bundle").to_str().unwrap(),
        good.to_str().unwrap(),
    ])
    .ok();
    cases.push(("an unknown key", p("unknown.bundle"), "does not trust"));
    rewrite(&good, &p("flipped.bundle"), &mut |n, mut data| {
        if n == layer {
            let mid = data.len() / 2;
            data[mid] ^= 0x40;
        }
        Some((n.into(), data))
    });
    cases.push(("a flipped byte in a blob", p("flipped.bundle"), "corrupted"));
    let len = std::fs::metadata(&good).unwrap().len();
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(p("truncated.bundle"), &bytes[..(len as usize * 2 / 3)]).unwrap();
    cases.push(("a truncated bundle", p("truncated.bundle"), "truncated"));
    let arm = kit.create(&d, &kit.app("arch", "app:2", "two", ""), 2, &["--arch", "s390x"]);
    cases.push(("another architecture", arm, "this device is"));
    let board = kit.create(&d, &kit.app("board", "app:2", "two", ""), 2, &["--board", "rpi5"]);
    cases.push(("another board", board, "this device is test-board"));
    let newer = kit.create(&d, &kit.app("newer", "app:2", "two", ""), 2, &["--min-berth", "99.0.0"]);
    cases.push(("a berth too old", newer, "needs berth 99.0.0"));
    let same = kit.create(&d, &kit.app("same", "app:2", "two", ""), 1, &[]);
    cases.push(("the installed version again", same, "already installed"));
    rewrite(&good, &p("missing.bundle"), &mut |n, data| (n != layer).then(|| (n.into(), data)));
    cases.push(("a manifest naming a blob that is missing", p("missing.bundle"), "lacks"));
    rewrite(&good, &p("escape.bundle"), &mut |n, data| Some((if n == layer { "../../escape".into() } else { n.into() }, data)));
    cases.push(("a tar entry escaping its folder", p("escape.bundle"), "escapes its folder"));

    for (what, file, why) in &cases {
        let out = install(&d, file);
        let said = format!("{}{}", out.stdout, out.stderr);
        assert_ne!(out.code, 0, "{what}: installed:\n{said}");
        assert!(said.contains(why), "{what}: expected {why:?} in:\n{said}");
        let after = (status(&d), running(&d), d.api("GET", "/images/json", None, b"").json().as_array().unwrap().len());
        assert_eq!(after, before, "{what}: the device changed");
        assert_eq!(served(&d), "one", "{what}");
    }
    // The CLI's own check says no to the damaged ones, before any device sees them.
    for f in ["badsig.bundle", "flipped.bundle", "truncated.bundle", "missing.bundle", "escape.bundle", "unknown.bundle"] {
        let v = kit.cli(&["bundle", "verify", "--trust", p("trust").to_str().unwrap(), p(f).to_str().unwrap()]);
        assert_eq!(v.code, 1, "{f}: {}{}", v.stdout, v.stderr);
    }
    // A lower version than the installed one: anti-rollback, even with the flag when the key
    // may not downgrade.
    install(&d, &good).ok();
    let low = install(&d, &v1);
    assert!(low.stderr.contains("not above the installed version 2"), "{}", low.stderr);
    let forced = d.berth(&["bundle", "install", "--allow-downgrade", v1.to_str().unwrap()]);
    assert!(forced.stderr.contains("not allowed to downgrade"), "{}", forced.stderr);
    assert_eq!(installed(&d), Some(2));
}

#[test]
fn an_unhealthy_or_exiting_update_is_rolled_back_with_its_reason() {
    require_root!();
    let kit = Kit::new();
    let d = kit.daemon();
    d.berth(&["tag", "busybox", "app:1"]).ok();
    install(&d, &kit.create(&d, &kit.app("a1", "app:1", "one", ""), 1, &[])).ok();

    let sick = kit.create(&d, &kit.app("sick", "app:1", "sick", r#"["CMD", "false"]"#), 2, &[]);
    let t0 = std::time::Instant::now();
    let out = install(&d, &sick);
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(out.stderr.contains("rolled back to version 1") && out.stderr.contains("unhealthy"), "{}", out.stderr);
    assert!(t0.elapsed() < std::time::Duration::from_secs(25), "the rollback took {:?}", t0.elapsed());
    assert_eq!(served(&d), "one");
    assert_eq!(running(&d), vec![("web".to_string(), "1".to_string())]);
    let s = status(&d);
    assert_eq!(s["Installed"]["Version"], 1);
    assert_eq!(s["LastAttempt"]["Phase"], "rolled-back");
    assert!(s["LastAttempt"]["Reason"].as_str().unwrap().contains("unhealthy"), "{s}");

    let dies = kit.path("dies.toml");
    std::fs::write(&dies, "[containers.web]\nimage = \"app:1\"\ncommand = [\"sh\", \"-c\", \"exit 3\"]\n").unwrap();
    let out = install(&d, &kit.create(&d, &dies, 3, &[]));
    assert!(out.stderr.contains("exited with code 3"), "{}", out.stderr);
    assert_eq!(served(&d), "one");
    assert_eq!(status(&d)["LastAttempt"]["Version"], 3);
    assert!(d.berth(&["bundle", "status"]).ok().stdout.contains("Reason: container web is not running: it exited with code 3"));
}

#[test]
fn sigkill_at_every_step_of_an_install_leaves_one_application_running() {
    require_root!();
    let kit = Kit::new();
    let mut d = kit.daemon();
    d.berth(&["tag", "busybox", "app:1"]).ok();
    install(&d, &kit.create(&d, &kit.app("a1", "app:1", "v1", ""), 1, &[])).ok();
    // (failpoint, whether the new version is the one running afterwards)
    let steps = [
        ("bundle.install.after-stage", false),
        ("bundle.install.after-stop-old", false),
        ("bundle.install.after-start-new", false),
        ("bundle.install.in-gate", false),
        ("bundle.install.after-healthy", true),
        ("bundle.install.in-rollback", false),
    ];
    let mut version = 1u64;
    let mut kills = 0;
    for round in 0..4 {
        for (fp, lands) in steps {
            let next = version + 1;
            let health = if fp == "bundle.install.in-rollback" { r#"["CMD", "false"]"# } else { "" };
            let bundle = kit.create(&d, &kit.app(&format!("r{round}-{next}"), "app:1", &format!("v{next}"), health), next, &[]);
            d.stop();
            d.spawn_env(&[("BERTH_FAILPOINTS", fp)]);
            let _ = install(&d, &bundle);
            assert!(!d.wait_died().success(), "{fp}: the daemon did not die");
            kills += 1;
            d.spawn();
            let want = if lands { next } else { version };
            assert_eq!(installed(&d), Some(want), "{fp} (round {round}): status after the restart:\n{}", status(&d));
            let run = running(&d);
            assert_eq!(run, vec![("web".to_string(), want.to_string())], "{fp} (round {round}): exactly one application must run");
            assert_eq!(served(&d), format!("v{want}"), "{fp} (round {round})");
            let phase = status(&d)["LastAttempt"]["Phase"].as_str().unwrap().to_string();
            assert!(matches!(phase.as_str(), "installed" | "rolled-back" | "abandoned"), "{fp}: left in phase {phase}");
            version = want;
        }
    }
    eprintln!("{kills} installs killed at every step; each time exactly one application ran afterwards");
    assert!(d.inconsistencies().is_empty(), "{:?}", d.inconsistencies());
}
