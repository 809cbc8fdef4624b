//! The intent journal: every operation with more than one side effect writes, before its
//! first side effect, a durable intent naming every resource it will create or destroy. Its
//! last step commits the resulting records and deletes the intent in one transaction. An
//! intent still present at start-up is an operation a crash interrupted: recovery rolls it
//! forward or back (see each subsystem's `recover`), idempotently, since recovery itself may
//! be interrupted and run again.
//!
//! The resources are derived from the ids an `Op` holds (a container's root filesystem
//! layers, data dir, bundle and runtime id all come from its id; a layer's directory from its
//! chain id), so the intent names them without repeating paths.

use super::{Record, Store, Txn};
use anyhow::Result;
use berth_images::Digest;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// Root filesystem, init layer and data dir of a container being created. Rolled back.
    CreateContainer { id: String },
    /// Mount, bundle, runtime container and monitor of a container being started. Rolled back
    /// unless its record already says running.
    StartContainer { id: String },
    /// The record is gone; its files, mount and runtime state are to follow. Rolled forward.
    RemoveContainer { id: String },
    /// Layer directories being unpacked (chain ids that had no record). Rolled back.
    CreateLayers { chains: Vec<Digest> },
    /// Layer directories (and config blobs) whose records are gone. Rolled forward.
    RemoveLayers { chains: Vec<Digest>, blobs: Vec<Digest> },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    pub op: Op,
    pub started: String,
}

impl Record for Intent {
    const TABLE: &'static str = "intents";
    const VERSION: u8 = 1;
}

/// An intent's key: the kind and the object, unique among operations in flight (an object
/// has at most one lifecycle operation at a time; layer operations get a random suffix).
fn key(op: &Op) -> String {
    let nonce = || crate::util::id::ContainerId::random().map(|i| i.short().to_string()).unwrap_or_default();
    match op {
        Op::CreateContainer { id } => format!("create-{id}"),
        Op::StartContainer { id } => format!("start-{id}"),
        Op::RemoveContainer { id } => format!("remove-{id}"),
        Op::CreateLayers { .. } => format!("layers-{}", nonce()),
        Op::RemoveLayers { .. } => format!("rmlayers-{}", nonce()),
    }
}

/// A durable intent in flight; `commit` ends it.
#[must_use = "an intent must be committed or finished"]
pub struct Pending {
    pub key: String,
}

impl Store {
    /// Writes the intent durably, before any side effect.
    pub fn begin(&self, op: Op) -> Result<Pending> {
        let key = key(&op);
        self.write(|tx| tx.put(&key, &Intent { op, started: crate::util::time::now() }))?;
        Ok(Pending { key })
    }

    /// Writes the intent as part of a larger transaction (the commit point of a removal).
    pub fn begin_in(&self, tx: &Txn<'_>, op: Op) -> Result<Pending> {
        let key = key(&op);
        tx.put(&key, &Intent { op, started: crate::util::time::now() })?;
        Ok(Pending { key })
    }

    /// Commits `f`'s writes and deletes the intent, atomically.
    pub fn commit<R>(&self, p: &Pending, f: impl FnOnce(&Txn<'_>) -> Result<R>) -> Result<R> {
        self.write(|tx| {
            let r = f(tx)?;
            tx.delete::<Intent>(&p.key)?;
            Ok(r)
        })
    }

    /// Ends an intent that leaves no records (undone, or only cleanup).
    pub fn finish(&self, p: &Pending) -> Result<()> {
        self.write(|tx| tx.delete::<Intent>(&p.key))
    }

    /// The intents a crash left behind, oldest first.
    pub fn open_intents(&self) -> Result<Vec<(Pending, Intent)>> {
        let mut v: Vec<(String, Intent)> = self.collection::<Intent>()?.list()?;
        v.sort_by(|a, b| a.1.started.cmp(&b.1.started));
        Ok(v.into_iter().map(|(key, i)| (Pending { key }, i)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intents_commit_atomically_with_records() {
        let dir = std::env::temp_dir().join(format!("berth-intent-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let p = store.begin(Op::CreateContainer { id: "abc".into() }).unwrap();
        let open = store.open_intents().unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].1.op, Op::CreateContainer { id: "abc".into() });
        store.commit(&p, |tx| tx.put("marker", &Intent { op: Op::StartContainer { id: "x".into() }, started: String::new() })).unwrap();
        let open = store.open_intents().unwrap();
        assert_eq!(open.len(), 1, "the commit must drop the intent and write the record");
        assert_eq!(open[0].0.key, "marker");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
