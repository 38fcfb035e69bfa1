//! The schema: migrations in order (`schema/v*.sql`), applied on open;
//! `PRAGMA user_version` says how many a database has had.

use std::path::Path;

use rusqlite::Connection;

use super::{Result, StoreError, sqlite_err};

/// Migrations, in order; entry i brings the schema from version i to i+1.
const MIGRATIONS: &[&str] = &[
    include_str!("schema/v1.sql"),
    include_str!("schema/v2.sql"),
    include_str!("schema/v3.sql"),
    include_str!("schema/v4.sql"),
    include_str!("schema/v5.sql"),
    include_str!("schema/v6.sql"),
    include_str!("schema/v7.sql"),
    include_str!("schema/v8.sql"),
    include_str!("schema/v9.sql"),
    include_str!("schema/v10.sql"),
    include_str!("schema/v11.sql"),
    include_str!("schema/v12.sql"),
    include_str!("schema/v13.sql"),
    include_str!("schema/v14.sql"),
    include_str!("schema/v15.sql"),
];

pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Bring the database at `path` to [`SCHEMA_VERSION`]; a newer one is refused.
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let err = sqlite_err(path);
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction().map_err(err)?;
        tx.execute_batch(sql).map_err(err)?;
        if sql.contains("PRAGMA writable_schema") {
            // The schema's text was edited in place: every connection must
            // read it again, which a new schema version makes them do.
            let v: i64 = tx
                .query_row("PRAGMA schema_version", [], |r| r.get(0))
                .map_err(err)?;
            tx.pragma_update(None, "schema_version", v + 1)
                .map_err(err)?;
        }
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(err)?;
        tx.commit().map_err(err)?;
    }
    Ok(())
}
