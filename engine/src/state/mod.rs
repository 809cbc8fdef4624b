//! The state store every subsystem persists through, and its intent journal.
//!
//! On disk: `<data-root>/state/berth.redb`, one redb database. Each commit is checksummed and
//! made durable (`Durability::Immediate`, two-phase: the data is synced before the header that
//! points at it) before it returns, so the API only answers once what it acknowledges is on
//! disk. Tables: one per record type ([`Record`]),
//! `intents` for the journal ([`intent`]), `meta` for the schema ([`schema`]).
//!
//! Why redb and not sled (which the product card names): sled 0.34's `flush()` only calls
//! `sync_file_range`, which does not flush the disk's write cache (spacejam/sled#1452), and it
//! has open reports of corruption after abrupt stops. redb is pure Rust, fsyncs each durable
//! commit, and checksums its pages. See README.md, design notes.
//!
//! Callers see typed collections (`put`/`get`/`delete`/`list`) and [`Store::write`] for the
//! times several records (and an intent) must change in one atomic commit.

pub mod codec;
pub mod intent;
mod salvage;
mod schema;

pub use codec::Record;
pub use intent::{Intent, Op};
pub use salvage::is_corruption;

use anyhow::{Context, Result};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// redb's page cache: small, the daemon's memory budget is a few MiB and the working set
/// (a few hundred records) fits many times over.
const CACHE_BYTES: usize = 1 << 20;

type Table = TableDefinition<'static, &'static str, &'static [u8]>;

fn table<T: Record>() -> Table {
    TableDefinition::new(T::TABLE)
}

/// Where a record is decoded from, for error messages and quarantine.
const QUARANTINE: Table = TableDefinition::new("quarantine");

#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    path: PathBuf,
    schema: u32,
}

/// One atomic, durable write: everything done through it commits together or not at all.
pub struct Txn<'a>(&'a redb::WriteTransaction);

impl Txn<'_> {
    pub fn put<T: Record>(&self, key: &str, value: &T) -> Result<()> {
        let bytes = codec::encode(value)?;
        self.0.open_table(table::<T>())?.insert(key, bytes.as_slice())?;
        Ok(())
    }

    pub fn delete<T: Record>(&self, key: &str) -> Result<()> {
        self.0.open_table(table::<T>())?.remove(key)?;
        Ok(())
    }

    pub fn get<T: Record>(&self, key: &str) -> Result<Option<T>> {
        let t = self.0.open_table(table::<T>())?;
        let v = t.get(key)?;
        v.map(|g| codec::decode(g.value())).transpose()
    }
}

impl Store {
    /// Opens (or creates) the store under `data_root`.
    pub fn open(data_root: &Path) -> Result<Self> {
        let dir = data_root.join("state");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("berth.redb");
        if !path.exists() {
            // A new store is made aside and renamed into place once its first commit is
            // durable: a power cut while redb lays out a fresh file (found by the VM rig's
            // dm-log-writes replay) must leave no store, not a torn one.
            let fresh = dir.join("berth.redb.new");
            let _ = std::fs::remove_file(&fresh);
            let db = Database::builder()
                .set_cache_size(CACHE_BYTES)
                .create(&fresh)
                .with_context(|| format!("creating the state store {}", fresh.display()))?;
            drop(Self::init(db, &fresh)?);
            berth_images::durable::rename(&fresh, &path).context("putting the new state store in place")?;
            // The `state` folder may be as new as the store: its own entry must last too.
            berth_images::durable::sync_dir(data_root)?;
        }
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .with_context(|| format!("opening the state store {}", path.display()))?;
        Self::init(db, &path)
    }

    /// Checks the schema and creates the tables every store has.
    fn init(db: Database, path: &Path) -> Result<Self> {
        let schema = schema::check(&db, path)?;
        let store = Store { db: Arc::new(db), path: path.to_path_buf(), schema };
        store.write(|tx| {
            tx.0.open_table(table::<Intent>())?;
            tx.0.open_table(QUARANTINE)?;
            Ok(())
        })?;
        Ok(store)
    }

    /// A store over any redb storage backend (the power-loss tests, in
    /// tests/integration/power_loss.rs, record every write).
    pub fn with_backend(backend: impl redb::StorageBackend, label: &Path) -> Result<Self> {
        let db = Database::builder().set_cache_size(CACHE_BYTES).create_with_backend(backend).context("opening a state store backend")?;
        Self::init(db, label)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn schema(&self) -> u32 {
        self.schema
    }

    /// The store file's size in bytes.
    pub fn size(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    /// The collection of `T` records (its table is created if new).
    pub fn collection<T: Record>(&self) -> Result<Collection<T>> {
        self.write(|tx| {
            tx.0.open_table(table::<T>())?;
            Ok(())
        })?;
        Ok(Collection { store: self.clone(), _t: PhantomData })
    }

    /// Runs `f` in one write transaction and commits it durably; nothing is written if `f`
    /// fails.
    pub fn write<R>(&self, f: impl FnOnce(&Txn<'_>) -> Result<R>) -> Result<R> {
        let mut tx = self.db.begin_write().context("beginning a state transaction")?;
        // Two-phase commit: the new state is synced before the header points at it. With one
        // phase, writes reordered by the disk around a power cut can leave a partial commit
        // behind a valid header (redb's docs describe it; our power-loss test found it, about
        // one run in ten, with random torn writes). A second fsync per commit is the price.
        tx.set_two_phase_commit(true);
        let out = f(&Txn(&tx))?;
        tx.commit().context("committing to the state store")?;
        Ok(out)
    }

    /// A write transaction that is committed but not made durable: the watchdog's proof that
    /// the store takes commits, without an fsync per heartbeat (flash wear).
    pub fn heartbeat(&self) -> Result<()> {
        let mut tx = self.db.begin_write().context("beginning a heartbeat transaction")?;
        let _ = tx.set_durability(redb::Durability::None);
        tx.open_table(QUARANTINE)?;
        tx.commit().context("committing a heartbeat transaction")?;
        Ok(())
    }

    /// Moves a record that cannot be decoded out of its table, keeping its bytes under
    /// `quarantine` for `berth system check` and a human, and says so loudly.
    fn quarantine(&self, table_name: &str, key: &str, err: &anyhow::Error) {
        tracing::error!(table = table_name, key, "record cannot be decoded and is set aside: {err:#}");
        let moved = self.write(|tx| {
            let mut t = tx.0.open_table(TableDefinition::<&str, &[u8]>::new(table_name))?;
            let bytes = t.remove(key)?.map(|v| v.value().to_vec());
            if let Some(b) = bytes {
                tx.0.open_table(QUARANTINE)?.insert(format!("{table_name}/{key}").as_str(), b.as_slice())?;
            }
            Ok(())
        });
        if let Err(e) = moved {
            tracing::error!("setting the record aside failed: {e:#}");
        }
    }

    /// Reads every record of table `T` without changing anything.
    pub fn scan<T: Record>(&self) -> Result<Scan<T>> {
        let rtx = self.db.begin_read()?;
        let t = match rtx.open_table(table::<T>()) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Scan { good: vec![], bad: vec![] }),
            Err(e) => return Err(e.into()),
        };
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for item in t.iter()? {
            match item {
                Ok((k, v)) => match codec::decode::<T>(v.value()) {
                    Ok(rec) => good.push((k.value().to_string(), rec)),
                    Err(e) => bad.push((k.value().to_string(), format!("{e:#}"))),
                },
                Err(e) => bad.push(("?".into(), e.to_string())),
            }
        }
        Ok(Scan { good, bad })
    }

    /// Verifies every page's checksum (redb's own check). `Ok(false)`: damage was found and
    /// repaired from the previous commit.
    pub fn verify(&mut self) -> Result<bool> {
        let db = Arc::get_mut(&mut self.db).context("the store is shared; verify it before handing it out")?;
        Ok(db.check_integrity()?)
    }

    /// Records set aside by [`Store::quarantine`]: `(table/key, bytes)`.
    pub fn quarantined(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let rtx = self.db.begin_read()?;
        let t = rtx.open_table(QUARANTINE)?;
        t.iter()?.map(|r| r.map(|(k, v)| (k.value().to_string(), v.value().to_vec())).map_err(Into::into)).collect()
    }
}

/// What [`Store::scan`] found: the decodable records and `(key, error)` for the others.
pub struct Scan<T> {
    pub good: Vec<(String, T)>,
    pub bad: Vec<(String, String)>,
}

/// One typed collection of records.
pub struct Collection<T> {
    store: Store,
    _t: PhantomData<fn() -> T>,
}

impl<T: Record> Collection<T> {
    /// Writes the record durably.
    pub fn put(&self, key: &str, value: &T) -> Result<()> {
        self.store.write(|tx| tx.put(key, value))
    }

    pub fn get(&self, key: &str) -> Result<Option<T>> {
        let rtx = self.store.db.begin_read()?;
        let t = rtx.open_table(table::<T>())?;
        let v = t.get(key)?;
        v.map(|g| codec::decode(g.value())).transpose()
    }

    pub fn delete(&self, key: &str) -> Result<()> {
        self.store.write(|tx| tx.delete::<T>(key))
    }

    /// Every key, in order, without decoding the records.
    pub fn keys(&self) -> Result<Vec<String>> {
        let rtx = self.store.db.begin_read()?;
        let t = rtx.open_table(table::<T>())?;
        let mut out = Vec::new();
        for item in t.iter()? {
            out.push(item?.0.value().to_string());
        }
        Ok(out)
    }

    /// Every record. One that cannot be decoded is set aside (quarantine) with a loud error
    /// rather than keeping the daemon from starting or being dropped silently.
    pub fn list(&self) -> Result<Vec<(String, T)>> {
        let mut out = Vec::new();
        let mut bad = Vec::new();
        {
            let rtx = self.store.db.begin_read()?;
            let t = rtx.open_table(table::<T>())?;
            for item in t.iter()? {
                let (k, v) = item?;
                match codec::decode::<T>(v.value()) {
                    Ok(rec) => out.push((k.value().to_string(), rec)),
                    Err(e) => bad.push((k.value().to_string(), e)),
                }
            }
        }
        for (k, e) in bad {
            self.store.quarantine(T::TABLE, &k, &e);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Thing(Vec<u32>);
    impl Record for Thing {
        const TABLE: &'static str = "things";
        const VERSION: u8 = 1;
    }

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("berth-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn put_get_list_delete_and_atomic_writes() {
        let dir = scratch("basic");
        let store = Store::open(&dir).unwrap();
        let c: Collection<Thing> = store.collection().unwrap();
        c.put("a", &Thing(vec![1, 2])).unwrap();
        c.put("b", &Thing(vec![3])).unwrap();
        assert_eq!(c.get("a").unwrap(), Some(Thing(vec![1, 2])));
        assert_eq!(c.list().unwrap().len(), 2);
        c.delete("a").unwrap();
        assert_eq!(c.get("a").unwrap(), None);
        // A failing transaction writes nothing.
        let r: Result<()> = store.write(|tx| {
            tx.put("c", &Thing(vec![9]))?;
            anyhow::bail!("abort")
        });
        assert!(r.is_err());
        assert_eq!(c.get("c").unwrap(), None);
        drop((c, store));
        let store = Store::open(&dir).unwrap();
        let c: Collection<Thing> = store.collection().unwrap();
        assert_eq!(c.list().unwrap().len(), 1, "a committed record was lost across a reopen");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn undecodable_records_are_quarantined_not_fatal() {
        let dir = scratch("quarantine");
        let store = Store::open(&dir).unwrap();
        let c: Collection<Thing> = store.collection().unwrap();
        c.put("good", &Thing(vec![1])).unwrap();
        store
            .write(|tx| {
                tx.0.open_table(table::<Thing>())?.insert("bad", [1u8, 0xff, 0xff, 0xff].as_slice())?;
                Ok(())
            })
            .unwrap();
        let all = c.list().unwrap();
        assert_eq!(all.len(), 1);
        let q = store.quarantined().unwrap();
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].0, "things/bad");
        assert!(c.list().unwrap().len() == 1 && store.quarantined().unwrap().len() == 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn newer_schema_is_refused_untouched() {
        let dir = scratch("schema");
        let store = Store::open(&dir).unwrap();
        store
            .write(|tx| {
                tx.0.open_table(schema::META)?.insert("schema", (schema::SCHEMA + 1).to_le_bytes().as_slice())?;
                Ok(())
            })
            .unwrap();
        let path = store.path().to_path_buf();
        drop(store);
        let err = Store::open(&dir).err().expect("a newer schema must be refused");
        assert!(format!("{err:#}").contains("written by a newer berth"), "{err:#}");
        // Nothing was migrated or rewritten: the store still says the newer schema.
        let db = Database::open(&path).unwrap();
        let rtx = db.begin_read().unwrap();
        let v = rtx.open_table(schema::META).unwrap().get("schema").unwrap().unwrap().value().to_vec();
        assert!(v == (schema::SCHEMA + 1).to_le_bytes(), "the refused store's schema was changed");
        drop((rtx, db));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
