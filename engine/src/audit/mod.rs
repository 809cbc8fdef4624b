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
    records: Collection<Entry>,
    /// The keys held, oldest first.
    keys: Mutex<VecDeque<u64>>,
}

fn key(seq: u64) -> String {
    format!("{seq:020}")
}

impl Audit {
    pub fn open(store: &Store) -> Result<Self> {
        let records: Collection<Entry> = store.collection()?;
        let mut keys: Vec<u64> = records.list()?.into_iter().map(|(_, e)| e.seq).collect();
        keys.sort_unstable();
        Ok(Audit { records, keys: Mutex::new(keys.into()) })
    }

    /// Appends an entry (its `seq` is given here) durably, dropping the oldest beyond [`KEEP`].
    pub fn append(&self, mut e: Entry) -> Result<()> {
        let mut keys = self.keys.lock().unwrap();
        e.seq = keys.back().map_or(1, |k| k + 1);
        self.records.put(&key(e.seq), &e)?;
        keys.push_back(e.seq);
        while keys.len() > KEEP {
            let old = keys.pop_front().expect("more than KEEP keys");
            self.records.delete(&key(old))?;
        }
        Ok(())
    }

    /// Entries after `since`, oldest first.
    pub fn list(&self, since: u64) -> Result<Vec<Entry>> {
        let mut v: Vec<Entry> = self.records.list()?.into_iter().map(|(_, e)| e).filter(|e| e.seq > since).collect();
        v.sort_by_key(|e| e.seq);
        Ok(v)
    }
}
