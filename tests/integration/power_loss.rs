//! Power-loss simulation below the page cache. A recording storage backend keeps two images
//! of the store file: what the process sees (the page cache) and what a power cut would leave
//! on the disk, which advances only at `sync_data`. A workload of container creates, updates
//! and removals (each through the intent journal, as the engine does them) runs on it; then,
//! for every sync point, the store is reopened from the disk image as it was there — and from
//! torn variants where a random subset of the later, unsynced writes also reached the disk —
//! and the invariants are checked:
//! - every commit syncs twice (data, then the header that points at it): with one phase, the
//!   torn images below lose an acknowledged commit about one run in ten;
//! - the store opens (no image a power cut can produce makes it unreadable);
//! - every commit acknowledged before the cut is there;
//! - no commit is half there: a record never stands beside the intent its commit removed.

use berth::config::LogLimits;
use berth::containers::model::{Container, ContainerConfig, HostConfig, State};
use berth::state::{Intent, Op, Store};
use berth::util::id::ContainerId;
use berth_images::Digest;
use berth_tests::Rng;
use redb::StorageBackend;
use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct Disk {
    live: Vec<u8>,
    durable: Vec<u8>,
    /// Writes since the last sync, for torn images.
    unsynced: Vec<(u64, Vec<u8>)>,
    /// At each sync: the durable image, the unsynced writes that followed it (filled in at
    /// the next sync), and how many commits had been acknowledged before the sync began.
    points: Vec<Point>,
    acked: usize,
}

#[derive(Debug, Clone)]
struct Point {
    image: Vec<u8>,
    after: Vec<(u64, Vec<u8>)>,
    acked: usize,
}

#[derive(Debug, Clone, Default)]
struct Recorder(Arc<Mutex<Disk>>);

impl StorageBackend for Recorder {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.lock().unwrap().live.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let d = self.0.lock().unwrap();
        let end = offset as usize + out.len();
        if end > d.live.len() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"));
        }
        out.copy_from_slice(&d.live[offset as usize..end]);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.lock().unwrap().live.resize(len as usize, 0);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut d = self.0.lock().unwrap();
        let unsynced = std::mem::take(&mut d.unsynced);
        if let Some(last) = d.points.last_mut() {
            last.after = unsynced;
        }
        d.durable = d.live.clone();
        let p = Point { image: d.durable.clone(), after: vec![], acked: d.acked };
        d.points.push(p);
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut d = self.0.lock().unwrap();
        let end = offset as usize + data.len();
        if end > d.live.len() {
            d.live.resize(end, 0);
        }
        d.live[offset as usize..end].copy_from_slice(data);
        d.unsynced.push((offset, data.to_vec()));
        Ok(())
    }
}

/// A backend over a fixed image: the disk after the power cut.
fn reopen(image: Vec<u8>) -> anyhow::Result<Store> {
    let rec = Recorder::default();
    rec.0.lock().unwrap().live = image;
    Store::with_backend(rec, Path::new("power-loss-image"))
}

fn container(i: usize) -> Container {
    let id = ContainerId::random().unwrap();
    Container {
        name: format!("c{i}"),
        created: berth::util::time::now(),
        image_name: "busybox".into(),
        image_id: Digest::of(b"config"),
        layers: vec![Digest::of(b"layer")],
        config: ContainerConfig { cmd: Some(vec!["true".into()]), ..Default::default() },
        host_config: HostConfig::default(),
        path: "true".into(),
        args: vec![],
        state: State::Created,
        started_at: None,
        finished_at: None,
        restart_count: 0,
        log_path: "/var/lib/berth/x.log".into(),
        log_limits: LogLimits { max_size: None, max_file: 1 },
        umask: 0o027,
        runtime: "runc".into(),
        manually_stopped: false,
        hooks: Default::default(),
        id,
    }
}

/// What the workload had been told, in acknowledgement order.
#[derive(Debug, Clone)]
enum Ack {
    Created(String),
    Updated(String, i32),
    Removed(String),
}

#[test]
fn every_flush_point_recovers_with_nothing_acknowledged_lost() {
    let rec = Recorder::default();
    let store = Store::with_backend(rec.clone(), Path::new("recorded")).unwrap();
    // Every commit is two-phase: its data is synced before the header that points at it.
    let before = rec.0.lock().unwrap().points.len();
    store.write(|tx| tx.put("probe", &container(999))).unwrap();
    store.write(|tx| tx.delete::<Container>("probe")).unwrap();
    let syncs = rec.0.lock().unwrap().points.len() - before;
    assert!(syncs >= 4, "two commits made {syncs} syncs: commits are not two-phase");
    let mut acks: Vec<Ack> = Vec::new();
    let mut live: Vec<String> = Vec::new();
    let ack = |rec: &Recorder, acks: &mut Vec<Ack>, a: Ack| {
        acks.push(a);
        rec.0.lock().unwrap().acked = acks.len();
    };
    for i in 0..40 {
        // Create: intent, then the record with the intent's end.
        let c = container(i);
        let p = store.begin(Op::CreateContainer { id: c.id.to_string() }).unwrap();
        store.commit(&p, |tx| tx.put(c.id.as_str(), &c)).unwrap();
        ack(&rec, &mut acks, Ack::Created(c.id.to_string()));
        live.push(c.id.to_string());
        // Every other round: an exit recorded on an older container.
        if i % 2 == 1 {
            let id = live[i / 3].clone();
            let mut r: Container = store.collection::<Container>().unwrap().get(&id).unwrap().unwrap();
            r.state = State::Exited { exit_code: i as i32, error: None };
            store.collection::<Container>().unwrap().put(&id, &r).unwrap();
            ack(&rec, &mut acks, Ack::Updated(id, i as i32));
        }
        // Every third round: a removal (record gone + intent, then the intent's end).
        if i % 3 == 2 {
            let id = live.remove(0);
            let p = store
                .write(|tx| {
                    tx.delete::<Container>(&id)?;
                    store.begin_in(tx, Op::RemoveContainer { id: id.clone() })
                })
                .unwrap();
            ack(&rec, &mut acks, Ack::Removed(id));
            store.finish(&p).unwrap();
        }
    }
    drop(store);
    let points = rec.0.lock().unwrap().points.clone();
    assert!(points.len() > 100, "too few sync points recorded: {}", points.len());

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut checked = 0;
    let mut unopenable_at_creation = 0;
    for (n, p) in points.iter().enumerate() {
        let mut images = vec![("synced only".to_string(), p.image.clone())];
        for t in 0..5 {
            // Torn: some of the writes after this sync reached the disk, some did not.
            let mut img = p.image.clone();
            for (off, data) in &p.after {
                if rng.next_u64().is_multiple_of(2) {
                    let end = *off as usize + data.len();
                    if end > img.len() {
                        img.resize(end, 0);
                    }
                    img[*off as usize..end].copy_from_slice(data);
                }
            }
            images.push((format!("torn variant {t}"), img));
        }
        for (what, img) in images {
            let s = match reopen(img) {
                Ok(s) => s,
                Err(e) => {
                    // Only while the store is being created, before anything was acknowledged:
                    // the daemon salvages such a file (nothing to lose) instead of refusing.
                    assert!(
                        berth::state::is_corruption(&e),
                        "sync point {n} ({what}): the store does not open and is not taken for damage: {e:#}"
                    );
                    assert_eq!(p.acked, 0, "sync point {n} ({what}): the store does not open after acknowledged commits: {e:#}");
                    unopenable_at_creation += 1;
                    checked += 1;
                    continue;
                }
            };
            let scan = s.scan::<Container>().unwrap();
            assert!(scan.bad.is_empty(), "sync point {n} ({what}): unreadable records after the cut: {:?}", scan.bad);
            let records: BTreeMap<String, Container> = scan.good.into_iter().collect();
            let intents: Vec<Intent> = s.open_intents().unwrap().into_iter().map(|(_, i)| i).collect();
            // Everything acknowledged before the cut is there.
            let mut expect: BTreeMap<String, Option<i32>> = BTreeMap::new();
            let mut gone: Vec<String> = Vec::new();
            for a in &acks[..p.acked] {
                match a {
                    Ack::Created(id) => {
                        expect.insert(id.clone(), None);
                    }
                    Ack::Updated(id, code) => {
                        expect.insert(id.clone(), Some(*code));
                    }
                    Ack::Removed(id) => {
                        expect.remove(id);
                        gone.push(id.clone());
                    }
                }
            }
            // The one commit in flight at the cut (not yet acknowledged) may or may not have
            // landed: its effect is allowed either way, and only its.
            let in_flight = acks.get(p.acked);
            for (id, code) in &expect {
                let Some(r) = records.get(id) else {
                    assert!(
                        matches!(in_flight, Some(Ack::Removed(x)) if x == id),
                        "sync point {n} ({what}): acknowledged container {id} is lost"
                    );
                    continue;
                };
                if let Some(code) = code {
                    let landed = matches!(in_flight, Some(Ack::Updated(x, c)) if x == id && *c == r.state.exit_code());
                    assert!(r.state.exit_code() == *code || landed, "sync point {n} ({what}): an acknowledged exit of {id} is lost");
                }
            }
            for id in &gone {
                assert!(!records.contains_key(id), "sync point {n} ({what}): removed container {id} is back");
            }
            // No half commit: a record never stands beside the intent its commit ended.
            for i in &intents {
                match &i.op {
                    Op::CreateContainer { id } => {
                        assert!(
                            !records.contains_key(id),
                            "sync point {n} ({what}): half commit: {id} has its record and its create intent"
                        )
                    }
                    Op::RemoveContainer { id } => {
                        assert!(
                            !records.contains_key(id),
                            "sync point {n} ({what}): half commit: {id} has its record and its remove intent"
                        )
                    }
                    _ => {}
                }
            }
            checked += 1;
        }
    }
    eprintln!(
        "power loss: {} sync points, {checked} disk images checked ({} acknowledged commits; {unopenable_at_creation} images from before the store existed were salvageable damage)",
        points.len(),
        acks.len()
    );
}
