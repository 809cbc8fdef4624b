//! A damaged state (torn store file, flipped bytes, a missing blob, records or a schema from
//! a newer berth): each gets its documented behaviour and a clear message, `berth system check`
//! reports it, and nothing is deleted to get started.

use berth_tests::{berth_bin, require_root, Daemon};
use redb::{Database, ReadableDatabase, TableDefinition};
use std::path::Path;
use std::process::Command;

fn store_file(d: &Daemon) -> std::path::PathBuf {
    d.data_root().join("state/berth.redb")
}

/// `berth system check` on the daemon's roots (the daemon must be stopped).
fn system_check(d: &Daemon, repair: bool) -> (i32, String) {
    let mut cmd = Command::new(berth_bin());
    cmd.args(["system", "check", "--config-file"])
        .arg(d.root.join("daemon.json"))
        .arg("--data-root")
        .arg(d.data_root())
        .arg("--exec-root")
        .arg(d.root.join("run"));
    if repair {
        cmd.arg("--repair");
    }
    let out = cmd.output().unwrap();
    (out.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|r| r.count()).unwrap_or(0)
}

fn populated() -> Daemon {
    let d = Daemon::start();
    d.load_busybox();
    d.berth(&["create", "--name", "needle-one", "busybox", "true"]).ok();
    d.berth(&["create", "--name", "needle-two", "busybox", "true"]).ok();
    d
}

#[test]
fn a_clean_store_checks_clean() {
    require_root!();
    let mut d = populated();
    d.stop();
    let (code, out) = system_check(&d, false);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 problem(s)") && out.contains("2 containers record(s) decode"), "{out}");
    d.spawn();
    let (code, out) = system_check(&d, false);
    assert_ne!(code, 0, "system check must refuse a store the daemon holds: {out}");
    assert!(out.contains("stop the daemon first"), "{out}");
}

#[test]
fn a_torn_store_is_salvaged_and_nothing_is_deleted() {
    require_root!();
    let mut d = populated();
    d.stop();
    let overlay_before = count(&d.data_root().join("overlay2"));
    // A torn write at the end of the file: the last pages never reached the disk.
    let path = store_file(&d);
    let data = std::fs::read(&path).unwrap();
    std::fs::write(&path, &data[..data.len() - 4096]).unwrap();

    d.spawn(); // must start, not refuse
    let info = d.api("GET", "/info", None, b"").json();
    let salvaged = info["BerthState"]["LastRecovery"]["Salvaged"].as_str().unwrap_or_default().to_string();
    assert!(salvaged.contains("salvaged") && salvaged.contains("corrupt-"), "{}", info["BerthState"]);
    assert!(d.log().contains("THE STATE STORE IS DAMAGED"), "no loud error in the log");
    let kept: Vec<_> = std::fs::read_dir(d.data_root().join("state"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
        .collect();
    assert_eq!(kept.len(), 1, "the damaged file must be kept aside");
    assert_eq!(count(&d.data_root().join("overlay2")), overlay_before, "files were deleted although records may be missing");

    d.stop();
    let (code, out) = system_check(&d, false);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("PROBLEM") && out.contains("salvaged"), "{out}");
    let (code, out) = system_check(&d, true);
    assert_eq!(code, 0, "after --repair the check passes:\n{out}");
    d.spawn();
    assert!(d.api("GET", "/info", None, b"").json()["BerthState"]["LastRecovery"]["Salvaged"].is_null());
    assert!(d.inconsistencies().is_empty(), "{:?}", d.inconsistencies());
    d.load_busybox();
    assert_eq!(d.berth(&["run", "--rm", "busybox", "echo", "alive"]).ok().stdout, "alive\n");
}

#[test]
fn flipped_bytes_in_a_record_are_caught() {
    require_root!();
    let mut d = populated();
    d.stop();
    let path = store_file(&d);
    let mut data = std::fs::read(&path).unwrap();
    // Flip a byte inside every stored copy of the container's name: the record's page no
    // longer matches its checksum.
    let needle = b"needle-one";
    let mut hits = 0;
    let mut i = 0;
    while let Some(pos) = data[i..].windows(needle.len()).position(|w| w == needle) {
        data[i + pos + 3] ^= 0x20;
        hits += 1;
        i += pos + needle.len();
    }
    assert!(hits > 0, "the record's bytes were not found in the store");
    std::fs::write(&path, &data).unwrap();
    d.spawn();
    // The daemon runs, says what happened, and what could be read is there.
    let info = d.api("GET", "/info", None, b"").json();
    assert!(info["BerthState"]["LastRecovery"]["Salvaged"].is_string() || d.log().contains("repaired"), "{}", info["BerthState"]);
    let names: Vec<String> = d
        .api("GET", "/containers/json?all=1", None, b"")
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["Names"][0].as_str().unwrap().to_string())
        .collect();
    assert!(!names.iter().any(|n| n == "/needle-one"), "a damaged record was read back as if it were fine: {names:?}");
    d.stop();
    let (code, out) = system_check(&d, false);
    assert_eq!(code, 1, "{out}");
}

#[test]
fn a_missing_blob_is_reported() {
    require_root!();
    let mut d = populated();
    let id =
        d.api("GET", "/images/busybox:latest/json", None, b"").json()["Id"].as_str().unwrap().trim_start_matches("sha256:").to_string();
    d.stop();
    std::fs::remove_file(d.data_root().join("images/blobs/sha256").join(&id)).unwrap();
    let (code, out) = system_check(&d, false);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("image {}: its config blob is missing", &id[..12])), "{out}");
    d.spawn();
    let r = d.api("GET", "/images/busybox:latest/json", None, b"");
    assert_eq!(r.status, 500);
    assert!(r.text().contains("reading config of image"), "{}", r.text());
    assert_eq!(d.api("POST", "/containers/create", Some("application/json"), br#"{"Image":"busybox"}"#).status, 500);
}

#[test]
fn newer_schema_is_refused_and_newer_records_are_set_aside() {
    require_root!();
    let mut d = populated();
    d.stop();
    let path = store_file(&d);
    let meta: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
    let containers: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("containers");
    // A record written by a newer layout of its type: set aside, the others stay usable.
    {
        let db = Database::open(&path).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(containers).unwrap().insert("f".repeat(64).as_str(), [99u8, 1, 2, 3].as_slice()).unwrap();
        tx.commit().unwrap();
    }
    d.spawn();
    let list = d.api("GET", "/containers/json?all=1", None, b"").json();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    assert!(d.log().contains("cannot be decoded and is set aside"), "no loud error");
    d.stop();
    let (code, out) = system_check(&d, false);
    assert_eq!(code, 1);
    assert!(out.contains("was set aside as unreadable"), "{out}");

    // A whole store from a newer schema: refused, untouched, with a message saying what to do.
    {
        let db = Database::open(&path).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(meta).unwrap().insert("schema", 99u32.to_le_bytes().as_slice()).unwrap();
        tx.commit().unwrap();
    }
    let out = Command::new(berth_bin())
        .args(["-H", &d.host(), "daemon", "--config-file"])
        .arg(d.root.join("daemon.json"))
        .arg("--data-root")
        .arg(d.data_root())
        .arg("--exec-root")
        .arg(d.root.join("run"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("written by a newer berth (schema 99"), "{err}");
    let db = Database::open(&path).unwrap();
    let rtx = db.begin_read().unwrap();
    let v = rtx.open_table(meta).unwrap().get("schema").unwrap().unwrap().value().to_vec();
    assert!(v == 99u32.to_le_bytes(), "the newer store was rewritten");
    drop((rtx, db));
    // Put it back so the harness can clean up through the daemon.
    let db = Database::open(&path).unwrap();
    let tx = db.begin_write().unwrap();
    tx.open_table(meta).unwrap().insert("schema", 1u32.to_le_bytes().as_slice()).unwrap();
    tx.commit().unwrap();
    drop(db);
    d.spawn();
}
