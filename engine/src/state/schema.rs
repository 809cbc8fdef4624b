//! The store's schema version: one number for the whole database, in the `meta` table.
//!
//! - A new store gets [`SCHEMA`].
//! - An older store is copied aside (`berth.redb.schema-<N>`) before it is migrated, so a
//!   field update that rolls back to the older berth can be given its own store back.
//! - A newer store is refused with a message saying so: an older berth never rewrites what a
//!   newer one wrote. After a rollback of berth itself, restore the copy the newer berth kept
//!   (`berth.redb.schema-<old>`) or roll forward again.

use anyhow::{bail, Context, Result};
use redb::{Database, ReadableDatabase, TableDefinition};
use std::path::Path;

pub const SCHEMA: u32 = 1;
pub const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
const KEY: &str = "schema";

/// Reads the stored schema (writing [`SCHEMA`] into a new store) and refuses a newer one.
pub fn check(db: &Database, path: &Path) -> Result<u32> {
    let stored = {
        let rtx = db.begin_read()?;
        match rtx.open_table(META) {
            Ok(t) => t.get(KEY)?.map(|v| {
                let b = v.value();
                u32::from_le_bytes([b[0], b[1], b[2], b[3]])
            }),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(e.into()),
        }
    };
    match stored {
        None => {
            let mut tx = db.begin_write()?;
            tx.set_two_phase_commit(true);
            tx.open_table(META)?.insert(KEY, SCHEMA.to_le_bytes().as_slice())?;
            tx.commit().context("writing the schema version")?;
            Ok(SCHEMA)
        }
        Some(v) if v == SCHEMA => Ok(v),
        Some(v) if v > SCHEMA => bail!(
            "the state store {} was written by a newer berth (schema {v}; this berth knows schema {SCHEMA}). \
             It is left untouched. To run this berth, restore the copy the newer berth kept before it migrated \
             ({}.schema-{SCHEMA}) or install the newer berth again.",
            path.display(),
            path.display()
        ),
        Some(v) => bail!("the state store {} has schema {v}, older than any this berth can migrate from", path.display()),
    }
}
