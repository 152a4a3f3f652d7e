//! The SQLite copy of persistent namespaces (`<data-dir>/namespaces.sqlite3`, WAL,
//! `synchronous=NORMAL`): every change of a namespace of a `PERMANENT_*` level is written
//! here before the operation is acknowledged, and everything is loaded back at start.
//!
//! Group commit: a change runs its statements at once (so a failing statement fails its
//! operation before anything changes in memory) inside a transaction that stays open; the
//! namespaces commit it once the operations that arrived meanwhile joined it
//! ([`Db::commit`]), and answer them only then.
//!
//! The tuple-space rules live in [`super::space`]; this file only stores what they decide.

use std::collections::HashMap;
use std::path::Path;

use broker_wasm::dbr::DbrCode;
use broker_wasm::protocol::Failure;
use broker_wasm::Data;
use rusqlite::{params, Connection};

use super::failure;

/// File name of the SQLite database under the data directory.
pub const DB_FILE: &str = "namespaces.sqlite3";

type Res<T> = Result<T, Failure>;

fn sql_err(e: rusqlite::Error) -> Failure {
    failure(DbrCode::BeGeneral, format!("SQLite: {e}"))
}

/// A namespace as stored: its level, groups and the values of each tuple name in order.
#[derive(Debug, Default)]
pub(super) struct Stored {
    pub level: u8,
    pub groups: Vec<String>,
    /// (tuple name, sequence number, value), ordered by name and sequence number.
    pub values: Vec<(String, i64, Data)>,
}

/// The open database, and whether a transaction holds changes not yet committed.
#[derive(Debug)]
pub(super) struct Db {
    conn: Connection,
    in_tx: bool,
}

impl Db {
    /// Opens (or creates) `<data_dir>/namespaces.sqlite3`.
    pub(super) fn open(data_dir: &Path) -> Res<Db> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            failure(
                DbrCode::NoConnect,
                format!("cannot create {}: {e}", data_dir.display()),
            )
        })?;
        Db::open_file(&data_dir.join(DB_FILE))
            .map_err(|e| failure(DbrCode::NoConnect, format!("cannot open the database: {e}")))
    }

    fn open_file(path: &Path) -> rusqlite::Result<Db> {
        let db = Connection::open(path)?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS ns_spaces(
                 name TEXT PRIMARY KEY, level INTEGER NOT NULL, groups TEXT NOT NULL,
                 marked INTEGER NOT NULL DEFAULT 0);
             CREATE TABLE IF NOT EXISTS ns_tuples(
                 ns TEXT NOT NULL, key TEXT NOT NULL, seq INTEGER NOT NULL, value BLOB NOT NULL,
                 PRIMARY KEY(ns, key, seq)) WITHOUT ROWID;",
        )?;
        Ok(Db {
            conn: db,
            in_tx: false,
        })
    }

    /// The database of `data_dir` and the namespaces it holds, if there is one.
    pub(super) fn load_existing(
        data_dir: &Path,
    ) -> Option<rusqlite::Result<(Db, HashMap<String, Stored>)>> {
        let path = data_dir.join(DB_FILE);
        if !path.exists() {
            return None;
        }
        Some(Db::open_file(&path).and_then(|db| {
            let spaces = db.load()?;
            Ok((db, spaces))
        }))
    }

    /// Opens the group's transaction unless it is open.
    fn begin(&mut self) -> Res<&Connection> {
        if !self.in_tx {
            self.conn.execute_batch("BEGIN").map_err(sql_err)?;
            self.in_tx = true;
        }
        Ok(&self.conn)
    }

    /// Whether changes wait for [`Db::commit`].
    pub(super) fn in_tx(&self) -> bool {
        self.in_tx
    }

    /// Commits the group's transaction (nothing to do without one). On failure nothing of
    /// the group is in the file.
    pub(super) fn commit(&mut self) -> Res<()> {
        if !std::mem::take(&mut self.in_tx) {
            return Ok(());
        }
        if self.conn.is_autocommit() {
            // SQLite rolled the transaction back itself (an I/O error in a statement).
            return Err(failure(
                DbrCode::BeGeneral,
                "SQLite: the transaction was rolled back",
            ));
        }
        self.conn.execute_batch("COMMIT").map_err(|e| {
            let _ = self.conn.execute_batch("ROLLBACK");
            sql_err(e)
        })
    }

    /// Runs `f` on the open transaction inside a savepoint: its statements all take effect
    /// or none does (the group's other changes stay).
    fn atomically(&mut self, f: impl FnOnce(&Connection) -> rusqlite::Result<()>) -> Res<()> {
        self.begin()?;
        let sp = self.conn.savepoint().map_err(sql_err)?;
        f(&sp).map_err(sql_err)?;
        sp.commit().map_err(sql_err)
    }

    pub(super) fn create_space(&mut self, name: &str, level: u8, groups: &[String]) -> Res<()> {
        let groups_json = serde_json::to_string(groups).unwrap_or_default();
        self.begin()?
            .execute(
                "INSERT INTO ns_spaces(name, level, groups, marked) VALUES (?1, ?2, ?3, 0)",
                params![name, level, groups_json],
            )
            .map(drop)
            .map_err(sql_err)
    }

    /// Marks a namespace for deletion (DB-04): after a restart it is deleted.
    pub(super) fn mark(&mut self, name: &str) -> Res<()> {
        self.begin()?
            .execute("UPDATE ns_spaces SET marked = 1 WHERE name = ?1", [name])
            .map(drop)
            .map_err(sql_err)
    }

    /// Deletes a namespace and its tuples, atomically.
    pub(super) fn delete_space(&mut self, ns: &str) -> Res<()> {
        self.atomically(|c| {
            c.execute("DELETE FROM ns_tuples WHERE ns = ?1", [ns])?;
            c.execute("DELETE FROM ns_spaces WHERE name = ?1", [ns])?;
            Ok(())
        })
    }

    pub(super) fn insert(&mut self, ns: &str, key: &str, seq: i64, value: &Data) -> Res<()> {
        let bytes = broker_wasm::binary::to_vec(value)
            .map_err(|e| failure(DbrCode::Invalid, e.to_string()))?;
        self.begin()?
            .prepare_cached("INSERT INTO ns_tuples(ns, key, seq, value) VALUES (?1, ?2, ?3, ?4)")
            .and_then(|mut s| s.execute(params![ns, key, seq, bytes]))
            .map(drop)
            .map_err(sql_err)
    }

    /// Deletes one value of a tuple.
    pub(super) fn delete_value(&mut self, ns: &str, key: &str, seq: i64) -> Res<()> {
        self.begin()?
            .prepare_cached("DELETE FROM ns_tuples WHERE ns = ?1 AND key = ?2 AND seq = ?3")
            .and_then(|mut s| s.execute(params![ns, key, seq]))
            .map(drop)
            .map_err(sql_err)
    }

    /// Deletes every value of a tuple.
    pub(super) fn delete_key(&mut self, ns: &str, key: &str) -> Res<()> {
        self.begin()?
            .execute(
                "DELETE FROM ns_tuples WHERE ns = ?1 AND key = ?2",
                [ns, key],
            )
            .map(drop)
            .map_err(sql_err)
    }

    /// Moves tuple `key` from `from` to `to` atomically: all values or none (DB-18).
    /// `values` are the tuple's values with their sequence numbers; which side is persistent
    /// says what to write.
    pub(super) fn move_key<'a>(
        &mut self,
        from: (&str, bool),
        to: (&str, bool),
        key: &str,
        values: impl Iterator<Item = &'a (i64, Data)>,
    ) -> Res<()> {
        self.atomically(|c| {
            match (from.1, to.1) {
                (true, true) => {
                    c.execute(
                        "UPDATE ns_tuples SET ns = ?1 WHERE ns = ?2 AND key = ?3",
                        [to.0, from.0, key],
                    )?;
                }
                (true, false) => {
                    c.execute(
                        "DELETE FROM ns_tuples WHERE ns = ?1 AND key = ?2",
                        [from.0, key],
                    )?;
                }
                (false, true) => {
                    for (seq, value) in values {
                        let bytes = broker_wasm::binary::to_vec(value).unwrap_or_default();
                        c.execute(
                            "INSERT INTO ns_tuples(ns, key, seq, value) VALUES (?1, ?2, ?3, ?4)",
                            params![to.0, key, seq, bytes],
                        )?;
                    }
                }
                (false, false) => {}
            }
            Ok(())
        })
    }

    /// Every persistent namespace with its tuples; namespaces marked for deletion are
    /// deleted now (after a restart nobody holds them).
    fn load(&self) -> rusqlite::Result<HashMap<String, Stored>> {
        let db = &self.conn;
        let mut spaces = HashMap::new();
        let mut stmt = db.prepare("SELECT name, level, groups, marked FROM ns_spaces")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, u8>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, bool>(3)?,
            ))
        })?;
        let mut purge = Vec::new();
        for row in rows {
            let (name, level, groups, marked) = row?;
            if marked {
                purge.push(name);
                continue;
            }
            spaces.insert(
                name,
                Stored {
                    level,
                    groups: serde_json::from_str(&groups).unwrap_or_default(),
                    values: Vec::new(),
                },
            );
        }
        for name in purge {
            db.execute("DELETE FROM ns_tuples WHERE ns = ?1", [&name])?;
            db.execute("DELETE FROM ns_spaces WHERE name = ?1", [&name])?;
        }
        let mut stmt =
            db.prepare("SELECT ns, key, seq, value FROM ns_tuples ORDER BY ns, key, seq")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let ns: String = r.get(0)?;
            let key: String = r.get(1)?;
            let seq: i64 = r.get(2)?;
            let bytes: Vec<u8> = r.get(3)?;
            let Ok(value) = broker_wasm::binary::from_slice::<Data>(&bytes) else {
                tracing::warn!(ns, key, seq, "skipping an undecodable value");
                continue;
            };
            let Some(space) = spaces.get_mut(&ns) else {
                continue;
            };
            space.values.push((key, seq, value));
        }
        Ok(spaces)
    }
}
