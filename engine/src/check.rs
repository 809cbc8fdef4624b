//! `berth system check [--repair]`: an offline look at the state (the daemon must be
//! stopped: the store is opened exclusively). It reports, and with `--repair` acts:
//! - the store: schema, size, redb's page checksums, a salvage mark;
//! - every record decodes; records set aside (quarantine); operations a crash interrupted;
//! - references between records: tags → images → layers → layer directories, containers →
//!   their root filesystems; config blobs present and matching their digests.
//!
//! `--repair` runs the daemon's start-up recovery (journal, re-adoption, reconciliation) after
//! clearing a salvage mark, then checks again. Exit status 0 when nothing is wrong.

use crate::config::{DaemonConfig, Flags};
use crate::containers::model::Container;
use crate::images::{ImageRecord, LayerRecord, RefMap};
use crate::state::{Intent, Record, Store};
use anyhow::{Context, Result};
use berth_images::Digest;

struct Report {
    problems: usize,
}

impl Report {
    fn ok(&self, what: impl std::fmt::Display) {
        println!("ok       {what}");
    }
    fn bad(&mut self, what: impl std::fmt::Display) {
        self.problems += 1;
        println!("PROBLEM  {what}");
    }
    fn note(&self, what: impl std::fmt::Display) {
        println!("note     {what}");
    }
}

fn records<T: Record>(store: &Store, r: &mut Report) -> Result<Vec<(String, T)>> {
    let crate::state::Scan { good, bad } = store.scan::<T>()?;
    for (k, e) in &bad {
        r.bad(format!("{} record {k} cannot be read: {e}", T::TABLE));
    }
    r.ok(format!("{} {} record(s) decode", good.len(), T::TABLE));
    Ok(good)
}

fn check(cfg: &DaemonConfig) -> Result<usize> {
    let mut r = Report { problems: 0 };
    let mut store = Store::open(&cfg.data_root).map_err(|e| {
        if format!("{e:#}").contains("already open") || format!("{e:#}").contains("lock") {
            anyhow::anyhow!("the state store is in use: stop the daemon first ({e:#})")
        } else {
            e
        }
    })?;
    r.ok(format!("store {} (schema {}, {} bytes)", store.path().display(), store.schema(), store.size()));
    match store.verify() {
        Ok(true) => r.ok("page checksums"),
        Ok(false) => r.note("page damage found and repaired from the previous commit"),
        Err(e) => r.bad(format!("page checksums: {e:#}")),
    }
    if let Some(s) = store.salvaged()? {
        r.bad(format!("the store was {s}; leftovers are kept until --repair"));
    }
    for (key, _) in store.quarantined()? {
        r.bad(format!("record {key} was set aside as unreadable (kept in the quarantine table)"));
    }
    for (k, i) in records::<Intent>(&store, &mut r)? {
        r.note(format!("interrupted operation {k}: {:?} (begun {}); the next start finishes or undoes it", i.op, i.started));
    }
    let driver = crate::storage::open(&cfg.data_root, cfg.storage_driver.as_deref(), &cfg.storage_opts, &store)?;
    let layers = records::<LayerRecord>(&store, &mut r)?;
    let layer_ids: std::collections::BTreeSet<Digest> = layers.iter().map(|(_, l)| l.chain.clone()).collect();
    for (_, l) in &layers {
        if !driver.has_layer(&l.chain) {
            r.bad(format!("layer {} has a record but no directory", l.chain.short()));
        }
    }
    let images = records::<ImageRecord>(&store, &mut r)?;
    let blobs = cfg.data_root.join("images/blobs/sha256");
    for (_, img) in &images {
        match std::fs::read(blobs.join(img.id.hex())) {
            Ok(data) if Digest::of(&data) == img.id => {}
            Ok(_) => r.bad(format!("image {}: its config blob does not match its digest", img.id.short())),
            Err(e) => r.bad(format!("image {}: its config blob is missing ({e})", img.id.short())),
        }
        for c in &img.layers {
            if !layer_ids.contains(c) {
                r.bad(format!("image {}: layer {} has no record", img.id.short(), c.short()));
            }
        }
    }
    let image_ids: std::collections::BTreeSet<&Digest> = images.iter().map(|(_, i)| &i.id).collect();
    for (_, refs) in records::<RefMap>(&store, &mut r)? {
        for (name, id) in &refs.0 {
            if !image_ids.contains(id) {
                r.bad(format!("tag {name} points at image {} that has no record", id.short()));
            }
        }
    }
    for (_, c) in records::<Container>(&store, &mut r)? {
        if !driver.container_exists(&c.id) {
            r.bad(format!("container {} ({}): its root filesystem is missing", c.id.short(), c.name));
        }
        if let Some(l) = c.layers.iter().find(|l| !layer_ids.contains(l)) {
            r.bad(format!("container {} ({}): image layer {} has no record", c.id.short(), c.name, l.short()));
        }
    }
    println!("{} problem(s)", r.problems);
    Ok(r.problems)
}

/// Runs the check; returns the exit status.
pub fn run(flags: &Flags, repair: bool) -> Result<i32> {
    let cfg = DaemonConfig::load(flags)?;
    let problems = check(&cfg)?;
    if !repair || problems == 0 {
        return Ok(i32::from(problems > 0));
    }
    println!("\nrepairing: running the daemon's recovery");
    {
        let store = Store::open(&cfg.data_root)?;
        store.clear_salvaged()?;
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let d = crate::daemon::Daemon::open(cfg.clone())?;
        d.recover().await.context("recovery")?;
        let rec = d.recovery.lock().unwrap().clone();
        for line in rec.intents.iter().chain(&rec.reconciled) {
            println!("repaired {line}");
        }
        anyhow::Ok(())
    })?;
    println!();
    Ok(i32::from(check(&cfg)? > 0))
}
