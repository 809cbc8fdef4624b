//! What happens when the store itself is damaged (a torn file, a flipped bit on flash).
//!
//! The rule: never refuse to start and never delete state. The damaged file is moved aside
//! (`berth.redb.corrupt-<unix time>`), every record that can still be read is copied into a
//! fresh store, and the fresh store is marked *salvaged*. While it is, start-up reconciliation
//! only reports what no record owns instead of removing it: a lost record must not turn into
//! a deleted image or container. `berth system check --repair` clears the mark once an operator
//! has looked. Opening goes through `catch_unwind`: a damaged file can make the database
//! library panic, and a panic must not become a boot loop.

use super::{schema, Store};
use anyhow::{Context, Result};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

const SALVAGED_KEY: &str = "salvaged";

/// Is `e` the database saying its file is damaged (rather than busy, or newer)? That
/// includes a file that is not (yet) a database at all: a power cut while the very first
/// start creates the store leaves one (found by the power-loss tests).
pub fn is_corruption(e: &anyhow::Error) -> bool {
    let storage = |s: &redb::StorageError| match s {
        redb::StorageError::Corrupted(_) => true,
        redb::StorageError::Io(io) => io.kind() == std::io::ErrorKind::InvalidData,
        _ => false,
    };
    e.chain().any(|c| match c.downcast_ref::<redb::DatabaseError>() {
        Some(redb::DatabaseError::Storage(s)) => storage(s),
        _ => c.downcast_ref::<redb::StorageError>().is_some_and(storage),
    })
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_else(|| "panic".into())
}

impl Store {
    /// At daemon start: opens the store and verifies it; a damaged one is salvaged (see the
    /// module docs). Other errors (a newer schema, a store in use) are returned as they are.
    pub fn open_or_salvage(data_root: &Path) -> Result<Store> {
        let attempt = catch_unwind(|| -> Result<Store> {
            let mut s = Store::open(data_root)?;
            if !s.verify()? {
                tracing::warn!("the state store had damage that redb repaired from its previous commit");
            }
            Ok(s)
        });
        let reason = match attempt {
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(e)) if !is_corruption(&e) => return Err(e),
            Ok(Err(e)) => format!("{e:#}"),
            Err(p) => format!("the database library panicked: {}", panic_text(&*p)),
        };
        let path = data_root.join("state/berth.redb");
        let now = ::time::OffsetDateTime::now_utc().unix_timestamp();
        let aside = PathBuf::from(format!("{}.corrupt-{now}", path.display()));
        tracing::error!(store = %path.display(), moved_to = %aside.display(), "THE STATE STORE IS DAMAGED ({reason}); salvaging what can be read");
        berth_images::durable::rename(&path, &aside).context("moving the damaged store aside")?;
        let store = Store::open(data_root)?;
        let (copied, lost) = copy_readable(&aside, &store);
        let summary = format!(
            "salvaged at {} from {} ({reason}): {copied} record(s) copied, {lost} unreadable",
            crate::util::time::now(),
            aside.display()
        );
        tracing::error!("{summary}");
        store.write(|tx| {
            tx.0.open_table(schema::META)?.insert(SALVAGED_KEY, summary.as_bytes())?;
            Ok(())
        })?;
        Ok(store)
    }

    /// The salvage summary while the store is marked salvaged.
    pub fn salvaged(&self) -> Result<Option<String>> {
        let rtx = self.db.begin_read()?;
        let t = rtx.open_table(schema::META)?;
        let v = t.get(SALVAGED_KEY)?;
        Ok(v.map(|g| String::from_utf8_lossy(g.value()).into_owned()))
    }

    /// Ends salvage mode: the next start reconciles (and removes leftovers) again.
    pub fn clear_salvaged(&self) -> Result<()> {
        self.write(|tx| {
            tx.0.open_table(schema::META)?.remove(SALVAGED_KEY)?;
            Ok(())
        })
    }
}

/// `(key, encoded record)` pairs read from a damaged table.
type RawRecords = Vec<(String, Vec<u8>)>;

/// Copies every readable record of every table of the damaged file into `into`: (copied,
/// unreadable). Each table is copied under its own `catch_unwind`, so damage in one table
/// does not cost the others.
fn copy_readable(damaged: &Path, into: &Store) -> (usize, usize) {
    let opened = catch_unwind(|| Database::open(damaged));
    let db = match opened {
        Ok(Ok(db)) => db,
        Ok(Err(e)) => {
            tracing::error!("the damaged store cannot be opened at all ({e}); nothing salvaged");
            return (0, 0);
        }
        Err(p) => {
            tracing::error!("opening the damaged store panicked ({}); nothing salvaged", panic_text(&*p));
            return (0, 0);
        }
    };
    let names: Vec<String> = match catch_unwind(AssertUnwindSafe(|| -> Result<Vec<String>> {
        let rtx = db.begin_read()?;
        let names = rtx.list_tables()?.map(|t| t.name().to_string()).collect();
        Ok(names)
    })) {
        Ok(Ok(n)) => n,
        _ => return (0, 0),
    };
    let (mut copied, mut lost) = (0, 0);
    for name in names.iter().filter(|n| n.as_str() != "meta") {
        let table = catch_unwind(AssertUnwindSafe(|| -> Result<(RawRecords, usize)> {
            let rtx = db.begin_read()?;
            let t = rtx.open_table(TableDefinition::<&str, &[u8]>::new(name))?;
            let mut good = Vec::new();
            let mut bad = 0;
            for item in t.iter()? {
                match item {
                    Ok((k, v)) => good.push((k.value().to_string(), v.value().to_vec())),
                    Err(_) => bad += 1,
                }
            }
            Ok((good, bad))
        }));
        match table {
            Ok(Ok((good, bad))) => {
                let n = good.len();
                let written = into.write(|tx| {
                    let mut t = tx.0.open_table(TableDefinition::<&str, &[u8]>::new(name))?;
                    for (k, v) in &good {
                        t.insert(k.as_str(), v.as_slice())?;
                    }
                    Ok(())
                });
                match written {
                    Ok(()) => copied += n,
                    Err(e) => {
                        tracing::error!(table = %name, "copying salvaged records failed: {e:#}");
                        lost += n;
                    }
                }
                lost += bad;
            }
            _ => {
                tracing::error!(table = %name, "the table cannot be read; its records are lost (the damaged file keeps them)");
                lost += 1;
            }
        }
    }
    (copied, lost)
}
