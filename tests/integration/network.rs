//! Networking, end to end, in a network namespace each daemon gets from the harness: user
//! networks with name resolution, published ports reached from the host with no proxy
//! process, `-P` and `port`, `icc=false`, the host and none modes, restarts and a crash in
//! the middle of a start, and the bad inputs that must change nothing.

use berth_tests::{require_root, Daemon};

/// httpd serving /etc: `/hostname` answers the container's short id.
const HTTPD: &[&str] = &["busybox", "httpd", "-f", "-p", "80", "-h", "/etc"];

/// Inside a container: an HTTP GET with busybox nc (busybox's wget crashes in this build).
fn get_from_container(target: &str) -> String {
    format!("printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {target} 80 | tail -n 1")
}

fn run_d(d: &Daemon, args: &[&str]) -> String {
    let mut a = vec!["run", "-d"];
    a.extend_from_slice(args);
    d.berth(&a).ok().stdout.trim().to_string()
}

fn inspect(d: &Daemon, name: &str, field: &str) -> String {
    d.berth(&["inspect", "-f", field, name]).ok().stdout.trim().to_string()
}

/// GETs `/hostname` from the host side, retrying briefly while httpd starts.
fn host_get(d: &Daemon, addr: &str) -> Result<String, String> {
    let mut last = Err(String::new());
    for _ in 0..30 {
        last = d.netns.http_get(addr, "/hostname");
        if last.is_ok() {
            return last.map(|s| s.trim().to_string());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    last
}

fn links(d: &Daemon) -> String {
    d.netns.run("ip", &["-o", "link", "show"]).stdout
}

fn dnat_rules(d: &Daemon) -> usize {
    d.netns.run("nft", &["list", "chain", "ip", "berth", "publish"]).stdout.matches("dnat to").count()
}

#[test]
fn user_network_resolves_names_and_a_published_port_answers_the_host() {
    require_root!();
    let d = Daemon::start();
    d.load_busybox();
    d.berth(&["network", "create", "appnet"]).ok();
    let web =
        run_d(&d, &[&["--name", "web", "--network", "appnet", "--network-alias", "www", "-p", "127.0.0.1:18080:80"][..], HTTPD].concat());
    let short = &web[..12];
    assert_eq!(host_get(&d, "127.0.0.1:18080").unwrap(), short, "the published port did not answer from the host");
    for name in ["web", "www"] {
        let out = d.berth(&["run", "--rm", "--network", "appnet", "busybox", "sh", "-c", &get_from_container(name)]).ok();
        assert_eq!(out.stdout.trim(), short, "a container on the network could not reach {name}: {out:?}");
    }
    // No process per published port: the daemon and the container's monitor are all.
    let procs = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|p| std::fs::read(p.path().join("cmdline")).map(|c| c.windows(5).any(|w| w == b"proxy")).unwrap_or(false));
    assert_eq!(procs.count(), 0, "a proxy process runs");
    // The inspect shape the docker CLI reads.
    let ports = inspect(&d, "web", "{{json .NetworkSettings.Ports}}");
    assert!(ports.contains(r#""80/tcp":[{"HostIp":"127.0.0.1","HostPort":"18080"}]"#), "{ports}");
    let ip = inspect(&d, "web", "{{.NetworkSettings.Networks.appnet.IPAddress}}");
    assert!(ip.starts_with("172."), "{ip}");
    // The network cannot go while the container is on it.
    let busy = d.berth(&["network", "rm", "appnet"]);
    assert_ne!(busy.code, 0);
    assert!(busy.stderr.contains("active endpoints"), "{}", busy.stderr);
    d.berth(&["rm", "-f", "web"]).ok();
    assert_eq!(dnat_rules(&d), 0, "the removed container's rule stayed");
    d.berth(&["network", "rm", "appnet"]).ok();
    assert!(d.inconsistencies().is_empty(), "{:?}", d.inconsistencies());
}

#[test]
fn publish_all_and_port_agree() {
    require_root!();
    let d = Daemon::start();
    d.load_busybox();
    run_d(&d, &[&["--name", "p", "--expose", "80", "-P"][..], HTTPD].concat());
    let line = d.berth(&["port", "p"]).ok().stdout;
    let (key, addr) = line.trim().split_once(" -> ").unwrap_or_else(|| panic!("port printed {line:?}"));
    assert_eq!(key, "80/tcp");
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    let (lo, hi) = (32768, 60999);
    assert!((lo..=hi).contains(&port), "ephemeral port {port}");
    assert_eq!(d.berth(&["port", "p", "80"]).ok().stdout.trim(), addr);
    assert_eq!(host_get(&d, &format!("127.0.0.1:{port}")).unwrap().len(), 12);
    let ps = d.api("GET", "/containers/json", None, b"").json();
    assert_eq!(ps[0]["Ports"][0]["PublicPort"], port);
    assert_ne!(d.berth(&["port", "p", "81"]).code, 0, "an unpublished port was reported");
}

#[test]
fn icc_false_blocks_container_to_container_but_not_published_ports() {
    require_root!();
    let d = Daemon::start_with_config(r#"{"icc": false, "bip": "10.77.0.1/24"}"#);
    d.load_busybox();
    run_d(&d, &[&["--name", "web", "-p", "127.0.0.1:18081:80"][..], HTTPD].concat());
    let ip = inspect(&d, "web", "{{.NetworkSettings.IPAddress}}");
    assert!(ip.starts_with("10.77.0."), "bip not applied: {ip}");
    assert_eq!(host_get(&d, "127.0.0.1:18081").unwrap().len(), 12, "the published port must still answer");
    let out = d.berth(&["run", "--rm", "busybox", "sh", "-c", &get_from_container(&ip)]);
    assert!(out.stdout.trim().is_empty(), "icc=false let a container reach another: {out:?}");

    // And with icc (the default), the same reaches it.
    let open = Daemon::start();
    open.load_busybox();
    run_d(&open, &[&["--name", "web"][..], HTTPD].concat());
    let ip = inspect(&open, "web", "{{.NetworkSettings.IPAddress}}");
    let out = open.berth(&["run", "--rm", "busybox", "sh", "-c", &get_from_container(&ip)]).ok();
    assert_eq!(out.stdout.trim().len(), 12, "{out:?}");
}

#[test]
fn host_and_none_modes_behave_as_documented() {
    require_root!();
    let d = Daemon::start();
    d.load_busybox();
    let none = d.berth(&["run", "--rm", "--network", "none", "busybox", "ip", "-o", "link"]).ok().stdout;
    assert_eq!(none.lines().count(), 1, "--network none has only lo: {none}");
    assert!(none.contains("lo:"));
    // host: the daemon's namespace, with its bridge.
    let host = d.berth(&["run", "--rm", "--network", "host", "busybox", "ip", "-o", "link"]).ok().stdout;
    assert!(host.contains("berth0"), "--network host does not see the host's links: {host}");
    // container:<name>: the other's namespace.
    run_d(&d, &["--name", "base", "busybox", "sleep", "60"]);
    let ip = inspect(&d, "base", "{{.NetworkSettings.IPAddress}}");
    let shared = d.berth(&["run", "--rm", "--network", "container:base", "busybox", "ip", "-o", "addr"]).ok().stdout;
    assert!(shared.contains(&ip), "container mode did not share {ip}: {shared}");
    assert!(d.berth(&["run", "--rm", "--network", "none", "-p", "80", "busybox", "true"]).code != 0);
}

#[test]
fn restart_keeps_addresses_rules_and_ports_and_never_reuses_an_address() {
    require_root!();
    let mut d = Daemon::start();
    d.load_busybox();
    run_d(&d, &[&["--name", "web", "-p", "127.0.0.1:18082:80"][..], HTTPD].concat());
    let ip = inspect(&d, "web", "{{.NetworkSettings.IPAddress}}");
    let gone = run_d(&d, &["--name", "gone", "busybox", "true"]);
    let gone_ip = inspect(&d, &gone, "{{.NetworkSettings.IPAddress}}");
    d.berth(&["rm", "-f", "gone"]).ok();
    let rules = d.netns.run("nft", &["list", "table", "ip", "berth"]).stdout;

    d.kill9();
    d.spawn();
    assert_eq!(inspect(&d, "web", "{{.NetworkSettings.IPAddress}}"), ip);
    assert_eq!(d.netns.run("nft", &["list", "table", "ip", "berth"]).stdout, rules, "the rules changed across a restart");
    assert_eq!(host_get(&d, "127.0.0.1:18082").unwrap().len(), 12);
    let next = run_d(&d, &["--name", "next", "busybox", "sleep", "60"]);
    let next_ip = inspect(&d, &next, "{{.NetworkSettings.IPAddress}}");
    assert_ne!(next_ip, ip);
    assert_ne!(next_ip, gone_ip, "a just-released address was handed out again");
    // The port is held while the container runs: nobody else can bind it.
    let taken = d.berth(&["run", "-d", "--name", "thief", "-p", "127.0.0.1:18082:80", "busybox", "sleep", "60"]);
    assert_ne!(taken.code, 0, "a second container got a published port in use");
    assert!(taken.stderr.contains("18082"), "{}", taken.stderr);
    assert!(d.inconsistencies().is_empty(), "{:?}", d.inconsistencies());
}

#[test]
fn a_crash_between_veth_and_commit_leaks_nothing() {
    require_root!();
    let mut d = Daemon::start();
    d.load_busybox();
    d.berth(&["create", "--name", "c", "-p", "127.0.0.1:18083:80", "busybox", "sleep", "60"]).ok();
    d.stop();
    d.spawn_env(&[("BERTH_FAILPOINTS", "container.start.after-network")]);
    let _ = d.berth(&["start", "c"]);
    assert!(!d.wait_died().success());
    assert!(links(&d).contains("vb"), "the failpoint should sit after the veth was made");
    d.spawn();
    assert!(!links(&d).contains(": vb"), "a veth survived recovery:\n{}", links(&d));
    assert_eq!(dnat_rules(&d), 0);
    assert!(d.inconsistencies().is_empty(), "{:?}", d.inconsistencies());
    d.berth(&["start", "c"]).ok();
    assert_eq!(dnat_rules(&d), 1);
}

#[test]
fn bad_network_input_is_refused_and_changes_nothing() {
    require_root!();
    let d = Daemon::start();
    d.load_busybox();
    d.berth(&["network", "create", "--subnet", "10.50.0.0/16", "a"]).ok();
    let overlap = d.berth(&["network", "create", "--subnet", "10.50.1.0/24", "b"]);
    assert!(overlap.code != 0 && overlap.stderr.contains("overlaps"), "{overlap:?}");
    let dup = d.berth(&["network", "create", "a"]);
    assert!(dup.code != 0 && dup.stderr.contains("already exists"), "{dup:?}");
    assert!(d.berth(&["network", "create", "--subnet", "10.60.0.1/16", "hostbits"]).code != 0);
    assert!(d.berth(&["network", "create", "bad/name"]).code != 0);
    assert_eq!(d.api("GET", "/networks", None, b"").json().as_array().unwrap().len(), 4, "bridge, a, host, none");

    // A /30 has one address for containers: the second create is refused, cleanly.
    d.berth(&["network", "create", "--subnet", "10.70.0.0/30", "tiny"]).ok();
    d.berth(&["create", "--name", "first", "--network", "tiny", "busybox", "true"]).ok();
    let full = d.berth(&["create", "--name", "second", "--network", "tiny", "busybox", "true"]);
    assert!(full.code != 0 && full.stderr.contains("no address left"), "{full:?}");
    assert!(d.berth(&["inspect", "second"]).code != 0, "a half-created container exists");
    let static_ip = d.berth(&["create", "--network", "a", "--ip", "10.51.0.5", "busybox", "true"]);
    assert!(static_ip.code != 0 && static_ip.stderr.contains("not in subnet"), "{static_ip:?}");

    for p in ["abc", "1:2:3:4", "80/tcpx", "70000", "localhost:80:80"] {
        let out = d.berth(&["create", "-p", p, "busybox", "true"]);
        assert!(out.code != 0 && out.stderr.contains("invalid"), "-p {p}: {out:?}");
    }
    let api = d.api(
        "POST",
        "/containers/create",
        Some("application/json"),
        br#"{"Image":"busybox","HostConfig":{"PortBindings":{"80/tcp":[{"HostPort":"nope"}]}}}"#,
    );
    assert_eq!(api.status, 400, "{}", api.text());
    let missing = d.berth(&["create", "--network", "nosuchnet", "busybox", "true"]);
    assert!(missing.code != 0 && missing.stderr.contains("not found"), "{missing:?}");

    // A host port someone else listens on: a clear error, and nothing left half-made.
    let _other = d.netns.listen("0.0.0.0:18091");
    let busy = d.berth(&["run", "-d", "--name", "busy", "-p", "18091:80", "busybox", "sleep", "60"]);
    assert!(busy.code != 0 && busy.stderr.contains("18091"), "{busy:?}");
    run_d(&d, &["--name", "holder", "-p", "18090:80", "busybox", "sleep", "60"]);
    let clash = d.berth(&["run", "-d", "--name", "clash", "-p", "18090:80", "busybox", "sleep", "60"]);
    assert!(clash.code != 0 && clash.stderr.contains("18090"), "{clash:?}");
    assert_eq!(dnat_rules(&d), 1, "only the holder's rule");
    assert!(d.netns.run("ls", &[d.root.join("run/netns").to_str().unwrap()]).stdout.lines().count() == 1, "only the holder's namespace");
    assert!(d.inconsistencies().is_empty(), "{:?}", d.inconsistencies());
    assert_eq!(links(&d).matches(": vb").count(), 1, "only the holder's veth:\n{}", links(&d));
}

#[test]
fn connect_and_disconnect_a_running_container() {
    require_root!();
    let d = Daemon::start();
    d.load_busybox();
    d.berth(&["network", "create", "--subnet", "10.91.0.0/24", "back"]).ok();
    run_d(&d, &[&["--name", "web"][..], HTTPD].concat());
    d.berth(&["network", "connect", "--alias", "api", "back", "web"]).ok();
    let ip = inspect(&d, "web", "{{.NetworkSettings.Networks.back.IPAddress}}");
    assert!(ip.starts_with("10.91.0."), "{ip}");
    let addrs = d.berth(&["run", "--rm", "--network", "container:web", "busybox", "ip", "-o", "addr"]).ok().stdout;
    assert!(addrs.contains(&format!("eth1    inet {ip}/24")) || addrs.contains(&ip), "eth1 was not plugged in: {addrs}");
    for name in ["web", "api"] {
        let out = d.berth(&["run", "--rm", "--network", "back", "busybox", "sh", "-c", &get_from_container(name)]).ok();
        assert_eq!(out.stdout.trim().len(), 12, "{name} did not answer on the connected network: {out:?}");
    }
    let twice = d.berth(&["network", "connect", "back", "web"]);
    assert!(twice.code != 0 && twice.stderr.contains("already exists"), "{twice:?}");
    d.berth(&["network", "disconnect", "back", "web"]).ok();
    let addrs = d.berth(&["run", "--rm", "--network", "container:web", "busybox", "ip", "-o", "addr"]).ok().stdout;
    assert!(!addrs.contains(&ip), "eth1 stayed after disconnect: {addrs}");
    let gone = d.berth(&["run", "--rm", "--network", "back", "busybox", "sh", "-c", &get_from_container("web")]);
    assert!(gone.stdout.trim().is_empty(), "web still answers on back: {gone:?}");
    d.berth(&["network", "rm", "back"]).ok();
    run_d(&d, &["--name", "h", "--network", "host", "busybox", "sleep", "60"]);
    d.berth(&["network", "create", "other"]).ok();
    assert_ne!(d.berth(&["network", "connect", "other", "h"]).code, 0, "a host-network container was connected");
    assert!(d.inconsistencies().is_empty(), "{:?}", d.inconsistencies());
}

#[test]
fn without_nftables_the_rules_go_through_iptables() {
    require_root!();
    let mut d = Daemon::start();
    d.load_busybox();
    d.stop();
    // A PATH with runc and iptables but no nft: as on a device whose kernel or image lacks it.
    let bin = d.root.join("bin-without-nft");
    std::fs::create_dir(&bin).unwrap();
    for tool in ["runc", "iptables", "iptables-restore"] {
        let path = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"].iter().map(|d| std::path::Path::new(d).join(tool)).find(|p| p.exists());
        let Some(path) = path else {
            eprintln!("skipped: {tool} is not installed");
            return;
        };
        std::os::unix::fs::symlink(path, bin.join(tool)).unwrap();
    }
    d.spawn_env(&[("PATH", bin.to_str().unwrap())]);
    assert!(d.log().contains("nftables is not available"), "the daemon did not fall back");
    let web = run_d(&d, &[&["--name", "web", "-p", "127.0.0.1:18095:80"][..], HTTPD].concat());
    assert_eq!(host_get(&d, "127.0.0.1:18095").unwrap(), &web[..12]);
    let nat = d.netns.run("iptables-save", &["-t", "nat"]).stdout;
    assert!(nat.contains("--dport 18095 -j DNAT --to-destination"), "{nat}");
    assert_eq!(nat.matches("-j BERTH-PREROUTING").count(), 1, "the jump must be added once:\n{nat}");
    d.berth(&["rm", "-f", "web"]).ok();
    assert!(!d.netns.run("iptables-save", &["-t", "nat"]).stdout.contains("18095"), "the rule outlived its container");
}

#[test]
fn dns_hosts_mac_static_ip_and_hairpin_from_containers() {
    require_root!();
    let d = Daemon::start();
    d.load_busybox();
    let out = d
        .berth(&[
            "run",
            "--rm",
            "--dns",
            "192.0.2.53",
            "--dns-search",
            "example.test",
            "--dns-option",
            "ndots:3",
            "--add-host",
            "db:10.1.2.3",
            "--mac-address",
            "02:42:0a:0b:0c:0d",
            "busybox",
            "sh",
            "-c",
            "cat /etc/resolv.conf /etc/hosts; cat /sys/class/net/eth0/address",
        ])
        .ok()
        .stdout;
    for want in ["nameserver 192.0.2.53", "search example.test", "options ndots:3", "10.1.2.3\tdb", "02:42:0a:0b:0c:0d"] {
        assert!(out.contains(want), "{want:?} missing in:\n{out}");
    }
    d.berth(&["network", "create", "--subnet", "10.92.0.0/24", "--ip-range", "10.92.0.128/25", "ranged"]).ok();
    let fixed = d.berth(&["run", "--rm", "--network", "ranged", "--ip", "10.92.0.7", "busybox", "ip", "-o", "addr", "show", "eth0"]).ok();
    assert!(fixed.stdout.contains("10.92.0.7/24"), "{}", fixed.stdout);
    let auto = d.berth(&["run", "--rm", "--network", "ranged", "busybox", "ip", "-o", "addr", "show", "eth0"]).ok();
    assert!(auto.stdout.contains("10.92.0.128/24"), "--ip-range not used: {}", auto.stdout);

    // Hairpin: a container reaches a published port through the host's bridge address,
    // its own included.
    run_d(&d, &[&["--name", "web", "-p", "18096:80"][..], HTTPD].concat());
    let gw = inspect(&d, "web", "{{.NetworkSettings.Gateway}}");
    let web_id = inspect(&d, "web", "{{.Id}}");
    assert_eq!(host_get(&d, "127.0.0.1:18096").unwrap(), &web_id[..12]);
    let via = d
        .berth(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            &format!("printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {gw} 18096 | tail -n 1"),
        ])
        .ok();
    assert_eq!(via.stdout.trim(), &web_id[..12], "another container could not reach the published port");
    // Its own published port (hairpin mode on its bridge port), from a container sharing its
    // namespace (exec comes with issue 8).
    let selfie = d
        .berth(&[
            "run",
            "--rm",
            "--network",
            "container:web",
            "busybox",
            "sh",
            "-c",
            &format!("printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {gw} 18096 | tail -n 1"),
        ])
        .ok();
    assert_eq!(selfie.stdout.trim(), &web_id[..12], "the container could not reach its own published port");
}

#[test]
fn concurrent_creates_cannot_share_a_network_name() {
    require_root!();
    let d = Daemon::start();
    let body = br#"{"Name":"same","CheckDuplicate":false}"#;
    let codes: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> =
            (0..8).map(|_| s.spawn(|| d.api("POST", "/networks/create", Some("application/json"), body).status)).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(codes.iter().filter(|c| **c == 201).count(), 1, "{codes:?}");
    assert!(codes.iter().all(|c| *c == 201 || *c == 409), "{codes:?}");
    let same = d.api("GET", "/networks", None, b"").json().as_array().unwrap().iter().filter(|n| n["Name"] == "same").count();
    assert_eq!(same, 1);
}

#[test]
fn a_changed_bip_is_applied() {
    require_root!();
    let mut d = Daemon::start();
    d.load_busybox();
    d.berth(&["create", "--name", "c", "busybox", "sleep", "60"]).ok();
    assert!(inspect(&d, "c", "{{.NetworkSettings.IPAddress}}").starts_with("172.17."));
    d.stop();
    std::fs::write(d.root.join("daemon.json"), r#"{"bip": "10.66.0.1/24"}"#).unwrap();
    d.spawn();
    let bridge = d.netns.run("ip", &["-o", "-4", "addr", "show", "berth0"]).stdout;
    assert!(bridge.contains("10.66.0.1/24") && !bridge.contains("172.17."), "the bridge kept its old address: {bridge}");
    d.berth(&["start", "c"]).ok();
    let ip = inspect(&d, "c", "{{.NetworkSettings.IPAddress}}");
    assert!(ip.starts_with("10.66.0."), "the container kept an address outside the new subnet: {ip}");
    let inside = d.berth(&["run", "--rm", "--network", "container:c", "busybox", "ip", "-o", "addr", "show", "eth0"]).ok().stdout;
    assert!(inside.contains(&format!("{ip}/24")), "{inside}");
}
