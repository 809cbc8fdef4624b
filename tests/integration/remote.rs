//! Remote management over TCP: mutual TLS with the real docker CLI and docker-py, client
//! roles, the audit trail, and the refusals (no certificate, another CA, an expired one,
//! plain TCP). The daemon listens inside its test network namespace; clients run there too.

use berth_tests::{berth_bin, require_root, Daemon, Out};
use std::path::{Path, PathBuf};

const HOST: &str = "tcp://127.0.0.1:2376";

fn berth(args: &[&str]) {
    let out = std::process::Command::new(berth_bin()).args(args).output().unwrap();
    assert!(out.status.success(), "berth {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// `berth tls client`: a certificate for `name` with `role`, signed by the CA in `ca_dir`,
/// written to `out`.
fn client_cert(ca_dir: &Path, out: &Path, name: &str, role: &str) {
    let (ca_dir, out) = (ca_dir.display().to_string(), out.display().to_string());
    berth(&["tls", "client", "--ca-dir", &ca_dir, "--out", &out, "--name", name, "--role", role]);
}

/// A device CA with its server certificate, clients of each role, a client of another CA
/// and an expired client: each a DOCKER_CERT_PATH-style directory.
fn certificates(root: &Path) -> PathBuf {
    let dir = root.join("tls");
    let s = |p: PathBuf| p.display().to_string();
    berth(&["tls", "init", "--dir", &s(dir.join("ca")), "--hostname", "localhost", "--ip", "127.0.0.1"]);
    for role in ["admin", "operator", "viewer"] {
        client_cert(&dir.join("ca"), &dir.join(role), &format!("{role}-client"), role);
    }
    berth(&["tls", "init", "--dir", &s(dir.join("other-ca"))]);
    client_cert(&dir.join("other-ca"), &dir.join("foreign"), "stranger", "admin");
    // Expired yesterday, signed by the right CA.
    let ca = berth::tls::certs::load_ca(&dir.join("ca")).unwrap();
    let old = berth::tls::certs::client(&ca, "late", "admin", time::OffsetDateTime::now_utc() - time::Duration::days(10), 9).unwrap();
    std::fs::create_dir_all(dir.join("expired")).unwrap();
    std::fs::write(dir.join("expired/cert.pem"), old.cert).unwrap();
    std::fs::write(dir.join("expired/key.pem"), old.key).unwrap();
    std::fs::copy(dir.join("ca/ca.pem"), dir.join("expired/ca.pem")).unwrap();
    dir
}

fn remote_daemon(tls: &Path) -> Daemon {
    remote_daemon_with(tls, "")
}

/// [`remote_daemon`] with more daemon.json keys (`, "key": value` ...).
fn remote_daemon_with(tls: &Path, more: &str) -> Daemon {
    let ca = tls.join("ca");
    let config = format!(
        r#"{{"tlsverify": true, "tlscacert": "{}", "tlscert": "{}", "tlskey": "{}"{more}}}"#,
        ca.join("ca.pem").display(),
        ca.join("cert.pem").display(),
        ca.join("key.pem").display()
    );
    Daemon::start_with_hosts(&config, &[HOST])
}

/// The docker CLI over TLS with the client certificate in `certs`.
fn docker(d: &Daemon, certs: &Path, args: &[&str]) -> Out {
    let (ca, cert, key) = (certs.join("ca.pem"), certs.join("cert.pem"), certs.join("key.pem"));
    let mut all = vec![
        "--tlsverify",
        "--tlscacert",
        ca.to_str().unwrap(),
        "--tlscert",
        cert.to_str().unwrap(),
        "--tlskey",
        key.to_str().unwrap(),
        "-H",
        HOST,
    ];
    all.extend(args);
    d.netns.run("docker", &all)
}

/// A bare TLS connection (python's ssl) that sends GET /_ping: "ok 200", or "refused <why>".
fn handshake(d: &Daemon, ca: &Path, client: Option<&Path>) -> String {
    let script = r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
if len(sys.argv) > 2:
    ctx.load_cert_chain(sys.argv[2] + "/cert.pem", sys.argv[2] + "/key.pem")
try:
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", 2376), timeout=10), server_hostname="localhost")
    s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = s.recv(64)
    print("ok", data.split(b" ")[1].decode() if data else "eof")
except Exception as e:
    print("refused", type(e).__name__, e)
"#;
    let mut args = vec!["-c", script, ca.to_str().unwrap()];
    if let Some(c) = client {
        args.push(c.to_str().unwrap());
    }
    d.netns.run("python3", &args).stdout.trim().to_string()
}

#[test]
fn docker_over_mutual_tls_with_roles_refusals_and_an_audit_trail() {
    require_root!();
    let scratch = berth_tests::scratch_root();
    let tls = certificates(&scratch);
    let d = remote_daemon(&tls);
    d.load_busybox();
    let admin = tls.join("admin");

    // The admin does everything a docker user does.
    assert_eq!(docker(&d, &admin, &["version", "--format", "{{.Server.APIVersion}}"]).ok().stdout.trim(), "1.45");
    assert_eq!(docker(&d, &admin, &["run", "--rm", "busybox", "echo", "over-tls"]).ok().stdout, "over-tls\n");
    docker(&d, &admin, &["run", "-d", "--name", "w", "busybox", "sh", "-c", "echo one; sleep 1; echo two"]).ok();
    assert_eq!(docker(&d, &admin, &["logs", "-f", "w"]).ok().stdout, "one\ntwo\n");
    docker(&d, &admin, &["run", "-d", "--name", "s", "busybox", "sleep", "1000"]).ok();
    assert_eq!(docker(&d, &admin, &["exec", "s", "sh", "-c", "echo $((6*7))"]).ok().stdout, "42\n");
    assert!(docker(&d, &admin, &["ps"]).ok().stdout.contains(" s\n"));

    // A viewer looks; it cannot change anything.
    let viewer = tls.join("viewer");
    assert!(docker(&d, &viewer, &["ps", "-a"]).ok().stdout.contains(" w\n"));
    assert_eq!(docker(&d, &viewer, &["inspect", "-f", "{{.State.Running}}", "s"]).ok().stdout.trim(), "true");
    let denied = docker(&d, &viewer, &["run", "--rm", "busybox", "true"]);
    assert!(denied.code != 0 && denied.stderr.contains("not allowed for the viewer role"), "{denied:?}");
    assert!(docker(&d, &viewer, &["stop", "s"]).stderr.contains("not allowed"));
    // An operator runs the lifecycle of what exists, nothing more.
    let operator = tls.join("operator");
    docker(&d, &operator, &["restart", "-t", "0", "s"]).ok();
    assert!(docker(&d, &operator, &["rm", "-f", "w"]).stderr.contains("not allowed for the operator role"));
    assert!(docker(&d, &operator, &["exec", "s", "true"]).stderr.contains("not allowed"));

    // Refused at the handshake: no certificate, another CA's, an expired one. The server's
    // own certificate checks out (the same script succeeds with a good client).
    let ca = tls.join("ca/ca.pem");
    assert_eq!(handshake(&d, &ca, Some(&admin)), "ok 200");
    for (what, client) in [("no certificate", None), ("another CA", Some(tls.join("foreign"))), ("expired", Some(tls.join("expired")))] {
        let got = handshake(&d, &ca, client.as_deref());
        assert!(got.starts_with("refused"), "{what}: {got}");
    }
    let log = d.log();
    assert!(log.contains("TLS handshake from 127.0.0.1"), "no log line for the refused handshakes");
    assert!(log.to_lowercase().contains("expired"), "the expired certificate is not named in the log");

    // The audit trail: who did what remotely, the refusals included; reads are not there.
    let trail = d.api("GET", "/system/audit", None, b"").json();
    let entries = trail.as_array().unwrap();
    let find = |subject: &str, method: &str, path_end: &str| {
        entries.iter().find(|e| {
            e["Subject"].as_str().unwrap().contains(subject) && e["Method"] == method && e["Path"].as_str().unwrap().ends_with(path_end)
        })
    };
    let created = find("CN=admin-client", "POST", "/containers/create").expect("the admin's create is not on record");
    assert_eq!((created["Role"].as_str(), created["Status"].as_u64()), (Some("admin"), Some(201)));
    assert_eq!(find("CN=admin-client", "POST", "/exec").map(|e| e["Status"].as_u64()), Some(Some(201)));
    let refused = find("CN=viewer-client", "POST", "/containers/create").expect("the viewer's refused run is not on record");
    assert_eq!(refused["Status"], 403);
    assert!(find("CN=operator-client", "POST", "/restart").is_some());
    assert!(entries.iter().all(|e| e["Method"] != "GET"), "reads are audited: {trail}");
    // The trail is also readable as daemon events.
    let until = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 1;
    let events = d.api("GET", &format!("/events?since=0&until={until}&filters=%7B%22type%22%3A%5B%22daemon%22%5D%7D"), None, b"").text();
    assert!(
        events.lines().any(|l| l.contains("\"Action\":\"audit\"") && l.contains("CN=viewer-client") && l.contains("\"status\":\"403\"")),
        "{events}"
    );

    // berth's own CLI, as the docker CLI: DOCKER_CERT_PATH and DOCKER_TLS_VERIFY.
    let berth_remote = |certs: &Path, args: &[&str]| {
        let path = format!("DOCKER_CERT_PATH={}", certs.display());
        let bin = berth_bin();
        let mut all = vec![path.as_str(), "DOCKER_TLS_VERIFY=1", bin.to_str().unwrap(), "-H", HOST];
        all.extend(args);
        d.netns.run("env", &all)
    };
    assert!(berth_remote(&admin, &["ps"]).ok().stdout.lines().any(|l| l.trim_end().ends_with(" s")));
    let audit = berth_remote(&admin, &["system", "audit"]).ok().stdout;
    assert!(audit.contains("CN=admin-client") && audit.contains("POST /v1.45/containers/create"), "{audit}");
    let peek = berth_remote(&viewer, &["system", "audit"]);
    assert!(peek.code != 0 && peek.stderr.contains("not allowed for the viewer role"), "{peek:?}");
    assert_ne!(berth_remote(&tls.join("foreign"), &["ps"]).code, 0);
    d.docker(&["rm", "-f", "s", "w"]).ok();
}

#[test]
fn docker_py_runs_a_container_over_mutual_tls() {
    require_root!();
    let scratch = berth_tests::scratch_root();
    let tls = certificates(&scratch);
    let d = remote_daemon(&tls);
    d.load_busybox();
    let admin = tls.join("admin");
    let script = r#"
import sys, docker
d = sys.argv[1]
tls = docker.tls.TLSConfig(client_cert=(d + "/cert.pem", d + "/key.pem"), ca_cert=d + "/ca.pem", verify=True)
c = docker.DockerClient(base_url="tcp://127.0.0.1:2376", tls=tls)
print(c.containers.run("busybox", ["echo", "from-docker-py"], remove=True).decode().strip())
"#;
    // requests lets these variables override the CA a caller gives it: a test machine may set them.
    let out = d.netns.run("env", &["-u", "REQUESTS_CA_BUNDLE", "-u", "CURL_CA_BUNDLE", "python3", "-c", script, admin.to_str().unwrap()]);
    assert_eq!(out.stdout.trim(), "from-docker-py", "{out:?}");
}

#[test]
fn plain_tcp_is_refused_unless_asked_for_by_name_and_on_loopback() {
    require_root!();
    let (code, err) = berth_tests::refused_start("{}", &["-H", "tcp://127.0.0.1:0"], &[]);
    assert!(code != Some(0) && err.contains("refusing to serve the API over plain TCP"), "{err}");
    let (code, err) = berth_tests::refused_start("{}", &["-H", "tcp://0.0.0.0:0"], &["--insecure-plain-tcp"]);
    assert!(code != Some(0) && err.contains("loopback addresses only"), "{err}");
}

/// Starts `script` with python3 in the daemon's namespace, in the background; waits until it
/// prints "ready".
fn background(d: &Daemon, script: &str, args: &[&str]) -> std::process::Child {
    use std::io::BufRead;
    let mut cmd = std::process::Command::new("python3");
    cmd.arg("-c").arg(script).args(args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::inherit());
    d.netns.enter(&mut cmd);
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "the hostile client did not start");
    child
}

#[test]
fn hostile_clients_do_not_keep_a_well_behaved_one_out() {
    require_root!();
    let scratch = berth_tests::scratch_root();
    let tls = certificates(&scratch);
    let d = remote_daemon(&tls);
    let admin = tls.join("admin");
    let served = |what: &str| {
        for _ in 0..5 {
            let out = docker(&d, &admin, &["ps", "-q"]);
            assert_eq!(out.code, 0, "{what}: a well-behaved client was not served: {out:?}");
        }
    };
    let rss_before = d.peak_rss_kib();

    // 1000 connections that never say a word.
    let idle = background(
        &d,
        r#"
import resource, socket, sys, time
resource.setrlimit(resource.RLIMIT_NOFILE, (4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
conns = [socket.create_connection(("127.0.0.1", 2376)) for _ in range(1000)]
print("ready", flush=True)
time.sleep(60)
"#,
        &[],
    );
    served("1000 idle connections");
    // One byte a second, and garbage instead of a handshake.
    let slow = background(
        &d,
        r#"
import socket, sys, time
s = socket.create_connection(("127.0.0.1", 2376))
print("ready", flush=True)
t = time.time()
try:
    while time.time() - t < 60:
        s.send(b"\x16")
        time.sleep(1)
    sys.exit(3)  # never closed
except OSError:
    pass
"#,
        &[],
    );
    let garbage = d.netns.run(
        "python3",
        &[
            "-c",
            "import socket; s = socket.create_connection(('127.0.0.1', 2376)); s.sendall(b'GET / HTTP/1.1\\r\\n\\r\\n' * 50)\n\
             d = s.recv(100); print('alert' if d[:1] == b'\\x15' else 'closed' if not d else 'answered'); print(len(s.recv(100)))",
        ],
    );
    // A TLS alert, then the connection closes: no HTTP answer.
    assert_eq!(garbage.stdout, "alert\n0\n", "{garbage:?}");
    served("a slow client and garbage");
    let mut slow = slow;
    // The daemon closed it (its handshake timeout), well before the client gave up.
    assert!(slow.wait().unwrap().success(), "the one-byte-a-second client was never closed");
    let mut idle = idle;
    let _ = idle.kill();
    let _ = idle.wait();

    // A body over the limit: refused, and nothing is created.
    let big = format!(r#"{{"Image":"busybox","Labels":{{"x":"{}"}}}}"#, "a".repeat(2 * 1024 * 1024));
    let script = r#"
import socket, ssl, sys
d = sys.argv[1]
ctx = ssl.create_default_context(cafile=d + "/ca.pem")
ctx.load_cert_chain(d + "/cert.pem", d + "/key.pem")
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", 2376)), server_hostname="localhost")
body = sys.stdin.buffer.read()
s.sendall(b"POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
try:
    s.sendall(body)
except OSError:
    pass
print(s.recv(64).split(b" ")[1].decode())
"#;
    let mut cmd = std::process::Command::new("python3");
    cmd.args(["-c", script, admin.to_str().unwrap()]).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped());
    d.netns.enter(&mut cmd);
    let mut child = cmd.spawn().unwrap();
    {
        use std::io::Write;
        let _ = child.stdin.take().unwrap().write_all(big.as_bytes());
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "413");
    assert_eq!(d.docker(&["ps", "-aq"]).ok().stdout, "");
    served("after the big body");

    // Memory stayed bounded through all of it.
    let grown = d.peak_rss_kib().saturating_sub(rss_before);
    assert!(grown < 48 * 1024, "the daemon grew by {grown} KiB");
}

#[test]
fn sighup_reloads_the_certificates_and_open_streams_keep_going() {
    require_root!();
    let scratch = berth_tests::scratch_root();
    let tls = certificates(&scratch);
    let d = remote_daemon(&tls);
    d.load_busybox();
    let admin = tls.join("admin");
    docker(&d, &admin, &["run", "-d", "--name", "t", "busybox", "sh", "-c", "i=0; while true; do i=$((i+1)); echo $i; sleep 0.2; done"])
        .ok();
    // A follower over TLS, opened before the reload.
    let (ca, cert, key) = (admin.join("ca.pem"), admin.join("cert.pem"), admin.join("key.pem"));
    let mut cmd = std::process::Command::new("timeout");
    cmd.args(["6", "docker", "--tlsverify", "--tlscacert", ca.to_str().unwrap(), "--tlscert", cert.to_str().unwrap()])
        .args(["--tlskey", key.to_str().unwrap(), "-H", HOST, "logs", "-f", "t"])
        .stdout(std::process::Stdio::piped());
    d.netns.enter(&mut cmd);
    let follower = cmd.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));

    // A new CA and server certificate in place of the old files, then SIGHUP.
    let s = |p: PathBuf| p.display().to_string();
    let new = scratch.join("renewed");
    berth(&["tls", "init", "--dir", &s(new.join("ca")), "--hostname", "localhost", "--ip", "127.0.0.1"]);
    client_cert(&new.join("ca"), &new.join("admin"), "renewed", "admin");
    for f in ["ca.pem", "cert.pem", "key.pem"] {
        std::fs::copy(new.join("ca").join(f), tls.join("ca").join(f)).unwrap();
    }
    let pid = d.child_pid().unwrap() as i32;
    // SAFETY: a signal to the daemon this test started.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    let new_ca = new.join("ca/ca.pem");
    berth_tests::eventually("the renewed certificates to be served", std::time::Duration::from_secs(5), || {
        handshake(&d, &new_ca, Some(&new.join("admin"))) == "ok 200"
    });
    assert!(handshake(&d, &new_ca, Some(&admin)).starts_with("refused"), "a client of the old CA is still let in");
    assert_eq!(docker(&d, &new.join("admin"), &["ps", "-q"]).code, 0);

    // The follower opened before the reload kept receiving.
    let out = follower.wait_with_output().unwrap();
    let lines: Vec<u64> = String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.parse().ok()).collect();
    assert!(lines.len() >= 20, "the open stream stopped at the reload: {lines:?}");

    // A broken file on the next reload: the current certificates stay, and the log says why.
    std::fs::write(tls.join("ca/cert.pem"), "not a certificate").unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    berth_tests::eventually("the failed reload in the log", std::time::Duration::from_secs(5), || d.log().contains("not reloaded"));
    assert_eq!(handshake(&d, &new_ca, Some(&new.join("admin"))), "ok 200");
    d.docker(&["rm", "-f", "t"]).ok();
}

#[test]
fn a_stalled_body_is_given_up_on() {
    require_root!();
    let scratch = berth_tests::scratch_root();
    let tls = certificates(&scratch);
    let d = remote_daemon(&tls);
    // A client with a good certificate announces 100 bytes, sends 10, then nothing.
    let script = r#"
import socket, ssl, sys, time
d = sys.argv[1]
ctx = ssl.create_default_context(cafile=d + "/ca.pem")
ctx.load_cert_chain(d + "/cert.pem", d + "/key.pem")
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", 2376), timeout=120), server_hostname="localhost")
s.sendall(b"POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"Image\":")
t = time.time()
answer = s.recv(64)
print(answer.split(b" ")[1].decode() if answer else "closed", round(time.time() - t))
"#;
    let out = d.netns.run("python3", &["-c", script, tls.join("admin").to_str().unwrap()]);
    let words: Vec<&str> = out.stdout.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"408"), "{out:?}");
    assert_eq!(d.docker(&["ps", "-aq"]).ok().stdout, "");
}

#[test]
fn revoked_client_certificates_are_refused() {
    require_root!();
    let scratch = berth_tests::scratch_root();
    let tls = certificates(&scratch);
    let s = |p: PathBuf| p.display().to_string();
    berth(&["tls", "revoke", "--ca-dir", &s(tls.join("ca")), &s(tls.join("viewer/cert.pem"))]);
    let ca = tls.join("ca");
    let config = format!(
        r#"{{"tlsverify": true, "tlscacert": "{}", "tlscert": "{}", "tlskey": "{}", "tlscrl": "{}"}}"#,
        ca.join("ca.pem").display(),
        ca.join("cert.pem").display(),
        ca.join("key.pem").display(),
        ca.join("crl.pem").display()
    );
    let d = Daemon::start_with_hosts(&config, &[HOST]);
    let ca_pem = ca.join("ca.pem");
    assert_eq!(handshake(&d, &ca_pem, Some(&tls.join("admin"))), "ok 200");
    assert!(handshake(&d, &ca_pem, Some(&tls.join("viewer"))).starts_with("refused"), "a revoked certificate got in");
    // Revoked later: refused from the next SIGHUP on.
    assert_eq!(handshake(&d, &ca_pem, Some(&tls.join("operator"))), "ok 200");
    berth(&["tls", "revoke", "--ca-dir", &s(ca.clone()), &s(tls.join("operator/cert.pem"))]);
    // SAFETY: a signal to the daemon this test started.
    unsafe { libc::kill(d.child_pid().unwrap() as i32, libc::SIGHUP) };
    berth_tests::eventually("the new CRL to apply", std::time::Duration::from_secs(5), || {
        handshake(&d, &ca_pem, Some(&tls.join("operator"))).starts_with("refused")
    });
    assert_eq!(handshake(&d, &ca_pem, Some(&tls.join("admin"))), "ok 200");
    let log = d.log();
    assert!(
        log.to_lowercase().contains("revoked"),
        "the log does not say why: {}",
        log.lines().filter(|l| l.contains("handshake")).collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn the_role_field_and_operator_exec_are_configurable() {
    require_root!();
    let scratch = berth_tests::scratch_root();
    let tls = certificates(&scratch);
    // The role in the CN this time: "operator", whatever the OU says.
    client_cert(&tls.join("ca"), &tls.join("cn-operator"), "operator", "viewer");
    let d = remote_daemon_with(&tls, r#", "tls-role-field": "CN", "tls-operator-exec": true"#);
    d.load_busybox();
    d.docker(&["run", "-d", "--name", "s", "busybox", "sleep", "1000"]).ok();
    let op = tls.join("cn-operator");
    assert_eq!(docker(&d, &op, &["exec", "s", "echo", "granted"]).ok().stdout, "granted\n");
    docker(&d, &op, &["restart", "-t", "0", "s"]).ok();
    assert!(docker(&d, &op, &["rm", "-f", "s"]).stderr.contains("not allowed for the operator role"));
    // A CN that names no role is a viewer.
    assert!(docker(&d, &tls.join("admin"), &["stop", "s"]).stderr.contains("not allowed for the viewer role"));
    d.docker(&["rm", "-f", "s"]).ok();
    // A bad field is refused at start.
    let (code, err) = berth_tests::refused_start(r#"{"tls-role-field": "email"}"#, &[], &[]);
    assert!(code != Some(0) && err.contains("tls-role-field"), "{err}");
}

#[test]
fn berth_uses_the_docker_clis_contexts() {
    require_root!();
    let scratch = berth_tests::scratch_root();
    let tls = certificates(&scratch);
    let d = remote_daemon(&tls);
    let admin = tls.join("admin");
    let config = scratch.join("docker-config");
    let cfg = format!("DOCKER_CONFIG={}", config.display());
    // The docker CLI writes the context (its own file layout, TLS material included).
    let endpoint = format!(
        "host={HOST},ca={},cert={},key={}",
        admin.join("ca.pem").display(),
        admin.join("cert.pem").display(),
        admin.join("key.pem").display()
    );
    d.netns.run("env", &[&cfg, "docker", "context", "create", "device", "--docker", &endpoint]).ok();
    let bin = berth_bin();
    let berth_in = |extra: &[&str], args: &[&str]| {
        let mut all: Vec<&str> = vec![&cfg];
        all.extend(extra);
        all.push(bin.to_str().unwrap());
        all.extend(args);
        d.netns.run("env", &all)
    };
    let by_env = berth_in(&["DOCKER_CONTEXT=device"], &["ps", "-a"]);
    assert_eq!(by_env.code, 0, "DOCKER_CONTEXT was not used: {by_env:?}");
    d.netns.run("env", &[&cfg, "docker", "context", "use", "device"]).ok();
    let ps = berth_in(&[], &["ps"]);
    assert_eq!(ps.code, 0, "the current context was not used: {ps:?}");
    // It went over TLS with the context's certificate: the audit trail names it.
    assert_ne!(berth_in(&[], &["rm", "no-such-container"]).code, 0);
    let trail = d.api("GET", "/system/audit", None, b"").text();
    assert!(trail.contains("CN=admin-client") && trail.contains("no-such-container"), "{trail}");
    assert!(berth_in(&["DOCKER_CONTEXT=missing"], &["ps"]).stderr.contains("context \"missing\""));
}
