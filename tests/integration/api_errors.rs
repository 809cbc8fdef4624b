//! Bad input gets a clear error with Docker's status code and changes nothing.

use berth_tests::{busybox_tar, docker_archive, raw_layer, require_root, Daemon};
use tar::EntryType;

#[test]
fn malformed_and_oversized_requests() {
    require_root!();
    let d = Daemon::start();
    let r = d.api("POST", "/v1.45/containers/create", Some("application/json"), b"{\"Image\": ");
    assert_eq!(r.status, 400);
    assert!(r.json()["message"].as_str().unwrap().contains("invalid JSON"), "{}", r.text());
    let r = d.api("POST", "/containers/create", Some("application/json"), b"");
    assert_eq!(r.status, 400);
    let big = vec![b' '; 2 << 20];
    let r = d.api("POST", "/containers/create", Some("application/json"), &big);
    assert_eq!(r.status, 413, "{}", r.text());
    let r = d.api("GET", "/v1.99/version", None, b"");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("too new"));
    let r = d.api("GET", "/containers/json?filters=notjson", None, b"");
    assert_eq!(r.status, 400);
    assert_eq!(d.api("GET", "/containers/json", None, b"").json(), serde_json::json!([]), "a bad request created something");
}

#[test]
fn ping_and_negotiation_headers() {
    require_root!();
    let d = Daemon::start();
    let r = d.api("HEAD", "/_ping", None, b"");
    assert_eq!(r.status, 200);
    let h = r.headers.to_ascii_lowercase();
    assert!(h.contains("api-version: 1.45") && h.contains("ostype: linux"), "{h}");
    let r = d.api("GET", "/_ping", None, b"");
    assert_eq!(r.text(), "OK");
    let v = d.api("GET", "/v1.41/version", None, b"").json();
    assert_eq!(v["ApiVersion"], "1.45");
    assert_eq!(v["MinAPIVersion"], "1.24");
}

#[test]
fn status_codes_for_containers() {
    require_root!();
    let d = Daemon::start();
    d.load_busybox();
    for (m, p) in [
        ("GET", "/containers/nope/json"),
        ("POST", "/containers/nope/start"),
        ("DELETE", "/containers/nope"),
        ("POST", "/containers/nope/wait"),
    ] {
        let r = d.api(m, p, None, b"");
        assert_eq!(r.status, 404, "{m} {p}");
        assert_eq!(r.json()["message"], "No such container: nope");
    }
    let body = br#"{"Image":"busybox","Cmd":["sleep","100"]}"#;
    assert_eq!(d.api("POST", "/containers/create?name=dup", Some("application/json"), body).status, 201);
    let r = d.api("POST", "/containers/create?name=dup", Some("application/json"), body);
    assert_eq!(r.status, 409);
    assert!(r.json()["message"].as_str().unwrap().contains("is already in use"), "{}", r.text());
    let r = d.api("POST", "/containers/create?name=bad/name", Some("application/json"), body);
    assert_eq!(r.status, 400);
    let r = d.api("POST", "/containers/create", Some("application/json"), br#"{"Image":"nosuch:image"}"#);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "No such image: nosuch:image");

    // Start twice: 304; stop a stopped container: 304; remove a running one: 409.
    assert_eq!(d.api("POST", "/containers/dup/start", None, b"").status, 204);
    assert_eq!(d.api("POST", "/containers/dup/start", None, b"").status, 304);
    assert_eq!(d.api("DELETE", "/containers/dup", None, b"").status, 409);
    assert_eq!(d.api("POST", "/containers/dup/kill", None, b"").status, 204);
    assert_eq!(d.api("POST", "/containers/dup/stop", None, b"").status, 304);
    assert_eq!(d.api("POST", "/containers/dup/kill", None, b"").status, 409);
    // An image a container uses cannot be deleted unforced.
    assert_eq!(d.api("DELETE", "/images/busybox:latest?force=0", None, b"").status, 200, "untag of one of several tags");
    let id = d.api("GET", "/images/alpine:latest/json", None, b"").json()["Id"].as_str().unwrap().to_string();
    assert_eq!(d.api("DELETE", &format!("/images/{id}"), None, b"").status, 409);

    // Features that come later answer 501 with a message, before anything is created.
    let r = d.api("POST", "/containers/create", Some("application/json"), br#"{"Image":"busybox","HostConfig":{"Links":["dup:d"]}}"#);
    assert_eq!(r.status, 501);
    assert!(r.json()["message"].as_str().unwrap().contains("not implemented"));
    // Out-of-range limits are the client's error.
    let r = d.api("POST", "/containers/create", Some("application/json"), br#"{"Image":"busybox","HostConfig":{"Memory":1048576}}"#);
    assert_eq!(r.status, 400);
    assert!(r.json()["message"].as_str().unwrap().contains("Minimum memory limit"));
    assert_eq!(d.api("POST", "/networks/bridge/connect", Some("application/json"), b"{}").status, 400, "Container is required");
    assert_eq!(d.api("POST", "/networks/nosuch/connect", Some("application/json"), br#"{"Container":"dup"}"#).status, 404);
    let r = d.api("POST", "/containers/create", Some("application/json"), br#"{"Image":"busybox","HostConfig":{"NetworkMode":"nosuch"}}"#);
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(d.api("POST", "/networks/create", Some("application/json"), b"{}").status, 400, "a network needs a name");
    assert_eq!(d.api("POST", "/networks/create", Some("application/json"), b"{\"Name\":").status, 400, "malformed JSON");
    assert_eq!(d.api("POST", "/swarm/leave", None, b"").status, 503);
    let list = d.api("GET", "/containers/json?all=1", None, b"").json();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
}

fn load_must_fail(d: &Daemon, archive: &[u8], tag: &str) {
    let r = d.api("POST", "/images/load", Some("application/x-tar"), archive);
    // As dockerd: the stream carries the error (docker-py turns it into ImageLoadError).
    let failed = r.status == 200 && r.text().contains("\"errorDetail\"");
    assert!(failed, "load of {tag} did not fail: {} {}", r.status, r.text());
    assert!(!d.image_tags().contains(&tag.to_string()), "{tag} is listed after a failed load");
}

#[test]
fn hostile_layers_are_refused_and_write_nothing_outside() {
    require_root!();
    let d = Daemon::start();
    let outside = d.root.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let victim = format!("../../../../../../../..{}/dotdot", outside.display());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("evil:dotdot", raw_layer(&[(victim.as_str(), EntryType::Regular, "", b"pwned")])),
        ("evil:absolute", raw_layer(&[(&format!("{}/abs", outside.display()), EntryType::Regular, "", b"pwned")])),
        (
            "evil:through-symlink",
            raw_layer(&[("link", EntryType::Symlink, outside.to_str().unwrap(), b""), ("link/through", EntryType::Regular, "", b"pwned")]),
        ),
        ("evil:climbing-symlink", raw_layer(&[("a/up", EntryType::Symlink, "../../../../../../etc", b"")])),
        ("evil:hardlink", raw_layer(&[("hl", EntryType::Link, "../../../../etc/passwd", b"")])),
        ("evil:whiteout-dotdot", raw_layer(&[("a/.wh...", EntryType::Regular, "", b"")])),
    ];
    for (tag, layer) in &cases {
        load_must_fail(&d, &docker_archive(layer, tag), tag);
    }
    let left: Vec<_> = std::fs::read_dir(&outside).unwrap().collect();
    assert!(left.is_empty(), "files written outside the layer: {left:?}");

    // Import takes the same path.
    let r = d.api("POST", "/images/create?fromSrc=-&repo=evil-import", Some("application/x-tar"), &cases[0].1);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(!d.image_tags().iter().any(|t| t.starts_with("evil")));
}

#[test]
fn truncated_and_corrupted_archives_leave_no_image() {
    require_root!();
    let d = Daemon::start();
    let full = std::fs::read(busybox_tar()).unwrap();
    load_must_fail(&d, &full[..full.len() / 2], "busybox:latest");
    load_must_fail(&d, &full[..1000], "busybox:latest");
    load_must_fail(&d, b"this is not a tar file at all", "busybox:latest");

    // A layer whose content does not match the config's diff_id. The file's content is
    // changed, not its name: a changed header would fail the tar checksum instead, and the
    // diff_id check would go untested.
    let layer = raw_layer(&[("greeting", EntryType::Regular, "", b"hello")]);
    let mut archive = docker_archive(&layer, "flipped:1");
    let pos = archive.windows(5).position(|w| w == b"hello").unwrap();
    archive[pos] = b'j';
    load_must_fail(&d, &archive, "flipped:1");
    assert_eq!(d.api("GET", "/images/json", None, b"").json(), serde_json::json!([]));

    // After all that, the real archive still loads and runs.
    d.load_busybox();
    assert_eq!(d.berth(&["run", "--rm", "busybox", "echo", "ok"]).ok().stdout, "ok\n");
}

#[test]
fn import_with_changes_and_tag_rmi() {
    require_root!();
    let d = Daemon::start();
    let layer = raw_layer(&[("bin/", EntryType::Directory, "", b""), ("etc/motd", EntryType::Regular, "", b"imported\n")]);
    let r = d.api(
        "POST",
        "/images/create?fromSrc=-&repo=mine&tag=v1&changes=ENV%20A%3D1&changes=WORKDIR%20%2Fetc",
        Some("application/x-tar"),
        &layer,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let insp = d.api("GET", "/images/mine:v1/json", None, b"").json();
    assert_eq!(insp["Config"]["Env"][0], "A=1");
    assert_eq!(insp["Config"]["WorkingDir"], "/etc");
    assert_eq!(d.api("POST", "/images/mine:v1/tag?repo=other&tag=t", None, b"").status, 201);
    assert!(d.image_tags().contains(&"other:t".to_string()));
    let del = d.api("DELETE", "/images/mine:v1", None, b"").json();
    assert_eq!(del, serde_json::json!([{"Untagged": "mine:v1"}]));
    let del = d.api("DELETE", "/images/other:t", None, b"").json();
    assert_eq!(del[0]["Untagged"], "other:t");
    assert!(del[1]["Deleted"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(d.api("GET", "/images/json", None, b"").json(), serde_json::json!([]));
    let r = d.api("POST", "/images/create?fromSrc=-&repo=x&changes=RUN%20rm", Some("application/x-tar"), &layer);
    assert_eq!(r.status, 400);
}
