//! The audit trail of remote management: every request that may change something, made over
//! TCP, with who made it (the client certificate's subject and role), what, on what, and how
//! it ended. Written to the state store in the request's own path, before the answer leaves,
//! so an acknowledged change is always on record. The oldest entries go once there are
//! [`KEEP`].

use crate::state::{Collection, Record, Store};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Mutex;

const KEEP: usize = 10_000;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Entry {
    pub seq: u64,
    pub at: String,
    pub subject: String,
    pub role: String,
    pub addr: String,
    pub method: String,
    pub path: String,
    pub status: u16,
}

impl Record for Entry {
    const TABLE: &'static str = "audit";
    const VERSION: u8 = 1;
}

pub struct Audit {
    store: Store,
    records: Collection<Entry>,
    /// The sequence numbers held, oldest first; read from the store at the first append, not
    /// at start (only remote changes need it).
    seqs: Mutex<Option<VecDeque<u64>>>,
}

fn key(seq: u64) -> String {
    format!("{seq:020}")
}

impl Audit {
    pub fn open(store: &Store) -> Result<Self> {
        Ok(Audit { store: store.clone(), records: store.collection()?, seqs: Mutex::new(None) })
    }

    /// Appends an entry (its `seq` is given here) durably, dropping the oldest beyond [`KEEP`]
    /// in the same transaction.
    pub fn append(&self, mut e: Entry) -> Result<()> {
        let mut guard = self.seqs.lock().unwrap();
        let seqs = match guard.as_mut() {
            Some(s) => s,
            None => guard.insert(self.records.keys()?.iter().filter_map(|k| k.parse().ok()).collect()),
        };
        e.seq = seqs.back().map_or(1, |k| k + 1);
        let dropped: Vec<u64> = seqs.iter().take((seqs.len() + 1).saturating_sub(KEEP)).copied().collect();
        self.store.write(|tx| {
            tx.put(&key(e.seq), &e)?;
            dropped.iter().try_for_each(|old| tx.delete::<Entry>(&key(*old)))
        })?;
        seqs.drain(..dropped.len());
        seqs.push_back(e.seq);
        Ok(())
    }

    /// Entries after `since`, oldest first.
    pub fn list(&self, since: u64) -> Result<Vec<Entry>> {
        let mut v: Vec<Entry> = self.records.list()?.into_iter().map(|(_, e)| e).filter(|e| e.seq > since).collect();
        v.sort_by_key(|e| e.seq);
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            seq: 0,
            at: "t".into(),
            subject: "CN=a".into(),
            role: "admin".into(),
            addr: "127.0.0.1:1".into(),
            method: "POST".into(),
            path: "/x".into(),
            status: 200,
        }
    }

    #[test]
    fn numbers_entries_across_reopens_and_keeps_the_newest() {
        let dir = std::env::temp_dir().join(format!("berth-audit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        {
            let store = Store::open(&dir).unwrap();
            let a = Audit::open(&store).unwrap();
            a.append(entry()).unwrap();
            a.append(entry()).unwrap();
        }
        let store = Store::open(&dir).unwrap();
        let a = Audit::open(&store).unwrap();
        a.append(entry()).unwrap();
        assert_eq!(a.list(0).unwrap().iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(a.list(2).unwrap().len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
