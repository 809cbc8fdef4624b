//! Crash torture: the daemon dies at every failpoint in turn and at random moments of a
//! random workload (containers created, started, stopped, removed; images loaded, tagged,
//! removed); after each restart, everything acknowledged exists and works, nothing
//! half-made is listed, and nothing is left on disk or in the kernel that no record owns.
//!
//! The default run is short. `BERTH_TORTURE_KILLS=N` sets the number of random kills
//! (default 6); `ci/test.sh --torture` runs the long version.

use berth_tests::{docker_archive, raw_layer, require_root, Daemon, Rng};
use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tar::EntryType;

/// Every failpoint in the engine: the test walks the engine's own list, so a new failpoint
/// cannot be left out (the match below must learn its operation).
const FAILPOINTS: &[&str] = berth::util::failpoint::ALL;

fn state(d: &Daemon, name: &str) -> Option<String> {
    let r = d.api("GET", &format!("/containers/{name}/json"), None, b"");
    (r.status == 200).then(|| r.json()["State"]["Status"].as_str().unwrap().to_string())
}

fn image_archive(tag: &str) -> Vec<u8> {
    let layer = raw_layer(&[("extra/", EntryType::Directory, "", b""), ("extra/tag", EntryType::Regular, "", tag.as_bytes())]);
    docker_archive(&layer, tag)
}

fn assert_consistent(d: &Daemon, when: &str) {
    let problems = d.inconsistencies();
    assert!(problems.is_empty(), "after {when}:\n{}\n--- daemon log ---\n{}", problems.join("\n"), tail(&d.log()));
}

fn tail(s: &str) -> String {
    s.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
}

#[test]
fn every_failpoint_is_recovered() {
    require_root!();
    let mut d = Daemon::start();
    d.load_busybox();
    d.berth(&["run", "-d", "--name", "keeper", "busybox", "sleep", "1000"]).ok();
    let keeper_pid = d.berth(&["inspect", "-f", "{{.State.Pid}}", "keeper"]).ok().stdout;
    d.berth(&["run", "--name", "done", "busybox", "true"]).ok();

    for (i, fp) in FAILPOINTS.iter().enumerate() {
        let victim = format!("victim{i}");
        let tag = format!("extra:{i}");
        // What the operation needs, made while nothing is armed.
        if fp.starts_with("container.start") || fp.starts_with("container.remove") {
            d.berth(&["create", "--name", &victim, "busybox", "echo", "started"]).ok();
        }
        if fp.starts_with("image.delete") {
            let r = d.api("POST", "/images/load", Some("application/x-tar"), &image_archive(&tag));
            assert!(r.status == 200 && !r.text().contains("error"), "{}", r.text());
        }
        d.stop();
        d.spawn_env(&[("BERTH_FAILPOINTS", fp)]);
        // The operation: the daemon dies in the middle, the client gets no answer.
        match *fp {
            f if f.starts_with("container.create") => drop(d.berth(&["create", "--name", &victim, "busybox", "echo", "started"])),
            f if f.starts_with("container.start") => drop(d.berth(&["start", &victim])),
            f if f.starts_with("container.remove") => drop(d.berth(&["rm", &victim])),
            f if f.starts_with("container.exit") => drop(d.berth(&["run", "--rm", "--name", &victim, "busybox", "true"])),
            f if f.starts_with("image.layers") => drop(d.try_api_for_tests("POST", "/images/load", &image_archive(&tag))),
            f if f.starts_with("image.delete") => drop(d.berth(&["rmi", &tag])),
            _ => unreachable!(),
        }
        let status = d.wait_died();
        assert!(!status.success(), "{fp}: the daemon did not die at its failpoint");
        d.spawn();
        assert_consistent(&d, fp);
        let info = d.api("GET", "/info", None, b"").json();
        // An exit is not journaled: it is replayed from the monitor's exit file.
        assert!(
            fp.starts_with("container.exit") || !info["BerthState"]["LastRecovery"]["Intents"].as_array().unwrap().is_empty(),
            "{fp}: no interrupted operation was recovered: {}",
            info["BerthState"]["LastRecovery"]
        );
        match *fp {
            f if f.starts_with("container.create") => assert_eq!(state(&d, &victim), None, "{fp}: an unacknowledged create is listed"),
            f if f.starts_with("container.start") => {
                assert_eq!(state(&d, &victim).as_deref(), Some("created"), "{fp}: the unacknowledged start was not undone");
                assert_eq!(
                    d.berth(&["start", "-a", &victim]).ok().stdout,
                    "started\n",
                    "{fp}: the container does not start after recovery"
                );
            }
            f if f.starts_with("container.remove") => assert_eq!(state(&d, &victim), None, "{fp}: the removal was not finished"),
            f if f.starts_with("container.exit") => {
                // Its monitor may still be finishing `runc delete` and be re-adopted: the
                // replayed exit and removal then follow its end.
                let deadline = Instant::now() + Duration::from_secs(10);
                while state(&d, &victim).is_some() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
                assert_eq!(state(&d, &victim), None, "{fp}: the --rm container was not removed after recovery");
            }
            f if f.starts_with("image.layers") => assert!(!d.image_tags().contains(&tag), "{fp}: a half-loaded image is listed"),
            f if f.starts_with("image.delete") => assert!(!d.image_tags().contains(&tag), "{fp}: the deletion was not finished"),
            _ => unreachable!(),
        }
        assert_eq!(d.berth(&["inspect", "-f", "{{.State.Pid}}", "keeper"]).ok().stdout, keeper_pid, "{fp}: keeper was disturbed");
        assert_eq!(d.berth(&["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "done"]).ok().stdout.trim(), "exited 0");
    }
    // After all that, loading and running still work.
    let r = d.api("POST", "/images/load", Some("application/x-tar"), &image_archive("extra:final"));
    assert_eq!(r.status, 200);
    assert_eq!(d.berth(&["run", "--rm", "busybox", "echo", "fine"]).ok().stdout, "fine\n");
    eprintln!("torture: {} failpoints exercised", FAILPOINTS.len());
}

/// What the workload learned for sure about a name: acknowledged to exist, acknowledged
/// removed; an operation cut by the kill leaves it unknown.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Known {
    Exists,
    Gone,
    Unknown,
}

#[test]
fn random_kills_lose_nothing_acknowledged() {
    require_root!();
    let kills: u64 = std::env::var("BERTH_TORTURE_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(6);
    let seed: u64 = std::env::var("BERTH_TORTURE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1);
    eprintln!("torture: seed {seed} (BERTH_TORTURE_SEED reproduces it)");
    let mut rng = Rng(seed);
    let mut d = Daemon::start();
    d.load_busybox();
    let mut model: BTreeMap<String, Known> = BTreeMap::new();
    let mut tag_model: BTreeMap<String, Known> = BTreeMap::new();
    let mut ops_total = 0;
    for round in 0..kills {
        let (tx, rx) = mpsc::channel::<(String, Known)>();
        let host = d.host();
        let names: Vec<String> = model.iter().filter(|(_, k)| **k == Known::Exists).map(|(n, _)| n.clone()).collect();
        let tags: Vec<String> = tag_model.iter().filter(|(_, k)| **k == Known::Exists).map(|(n, _)| n.clone()).collect();
        let archives = d.root.join("archives");
        std::fs::create_dir_all(&archives).unwrap();
        let (ttx, trx) = mpsc::channel::<(String, Known)>();
        let mut wrng = Rng(rng.next_u64() | 1);
        let worker = std::thread::spawn(move || {
            let berth = |args: &[&str]| std::process::Command::new(berth_tests::berth_bin()).args(args).env("BERTH_HOST", &host).output();
            let mut existing = names;
            let mut tags = tags;
            let mut n = 0;
            loop {
                n += 1;
                let op = wrng.below(13);
                let name = format!("r{round}n{n}");
                let result = if op >= 10 {
                    // Images: load a new one, tag busybox, or remove a tag.
                    let tag = format!("extra{round}:{n}");
                    match op {
                        10 => {
                            let file = archives.join(format!("{round}-{n}.tar"));
                            std::fs::write(&file, image_archive(&tag)).unwrap();
                            ttx.send((tag.clone(), Known::Unknown)).ok();
                            match berth(&["load", "-i", file.to_str().unwrap()]) {
                                Ok(o) if o.status.success() => {
                                    tags.push(tag.clone());
                                    ttx.send((tag, Known::Exists)).ok();
                                    true
                                }
                                _ => false,
                            }
                        }
                        11 => {
                            ttx.send((tag.clone(), Known::Unknown)).ok();
                            match berth(&["tag", "busybox", &tag]) {
                                Ok(o) if o.status.success() => {
                                    tags.push(tag.clone());
                                    ttx.send((tag, Known::Exists)).ok();
                                    true
                                }
                                _ => false,
                            }
                        }
                        _ if !tags.is_empty() => {
                            let victim = tags[wrng.below(tags.len() as u64) as usize].clone();
                            ttx.send((victim.clone(), Known::Unknown)).ok();
                            match berth(&["rmi", &victim]) {
                                Ok(o) if o.status.success() => {
                                    tags.retain(|t| *t != victim);
                                    ttx.send((victim, Known::Gone)).ok();
                                    true
                                }
                                _ => false,
                            }
                        }
                        _ => true,
                    }
                } else if op < 4 || existing.is_empty() {
                    let detached = op == 0;
                    tx.send((name.clone(), Known::Unknown)).ok();
                    let out = if detached {
                        berth(&["run", "-d", "--name", &name, "busybox", "sleep", "1000"])
                    } else {
                        berth(&["create", "--name", &name, "busybox", "true"])
                    };
                    match out {
                        Ok(o) if o.status.success() => {
                            existing.push(name.clone());
                            tx.send((name, Known::Exists)).ok();
                            true
                        }
                        _ => false,
                    }
                } else {
                    let victim = existing[wrng.below(existing.len() as u64) as usize].clone();
                    match op {
                        4..=6 => {
                            tx.send((victim.clone(), Known::Unknown)).ok();
                            match berth(&["rm", "-f", &victim]) {
                                Ok(o) if o.status.success() => {
                                    existing.retain(|e| *e != victim);
                                    tx.send((victim, Known::Gone)).ok();
                                    true
                                }
                                _ => false,
                            }
                        }
                        7 | 8 => berth(&["start", &victim]).map(|o| o.status.code().is_some()).unwrap_or(false),
                        _ => berth(&["stop", "-t", "0", &victim]).map(|o| o.status.code().is_some()).unwrap_or(false),
                    }
                };
                if !result {
                    // The daemon may be gone: check before deciding.
                    if berth(&["version"]).map(|o| !o.status.success()).unwrap_or(true) {
                        return n;
                    }
                }
            }
        });
        let wait = Duration::from_millis(100 + rng.below(700));
        let started = Instant::now();
        while started.elapsed() < wait {
            std::thread::sleep(Duration::from_millis(10));
        }
        d.kill9();
        ops_total += worker.join().unwrap();
        for (name, k) in rx.try_iter() {
            model.insert(name, k);
        }
        for (tag, k) in trx.try_iter() {
            tag_model.insert(tag, k);
        }
        d.spawn();
        assert_consistent(&d, &format!("kill {round} (seed {seed})"));
        for (name, k) in &model {
            let s = state(&d, name);
            match k {
                Known::Exists => assert!(s.is_some(), "kill {round} (seed {seed}): acknowledged container {name} is lost"),
                Known::Gone => assert!(s.is_none(), "kill {round} (seed {seed}): container {name} was removed but is listed"),
                Known::Unknown => {}
            }
        }
        let listed = d.image_tags();
        for (tag, k) in &tag_model {
            match k {
                Known::Exists => assert!(listed.contains(tag), "kill {round} (seed {seed}): acknowledged tag {tag} is lost"),
                Known::Gone => assert!(!listed.contains(tag), "kill {round} (seed {seed}): removed tag {tag} is listed"),
                Known::Unknown => {}
            }
        }
        for (tag, k) in tag_model.iter_mut() {
            if *k == Known::Unknown {
                *k = if listed.contains(tag) { Known::Exists } else { Known::Gone };
            }
        }
        // Unknown outcomes are now known.
        for (name, k) in model.iter_mut() {
            if *k == Known::Unknown {
                *k = if state(&d, name).is_some() { Known::Exists } else { Known::Gone };
            }
        }
        // Every listed container that does not run can start and run.
        for (name, _) in model.iter().filter(|(_, k)| **k == Known::Exists).take(3) {
            if state(&d, name).as_deref() != Some("running") {
                let out = d.berth(&["start", name]);
                assert_eq!(out.code, 0, "kill {round} (seed {seed}): {name} does not start after recovery: {}", out.stderr);
            }
        }
    }
    eprintln!(
        "torture: {kills} kills during {ops_total} operations ({} containers, {} image tags tracked), seed {seed}: nothing acknowledged lost, nothing left over",
        model.len(),
        tag_model.len()
    );
}
