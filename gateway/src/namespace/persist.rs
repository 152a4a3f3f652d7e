//! The SQLite copy of persistent namespaces (`<data-dir>/namespaces.sqlite3`, WAL,
//! `synchronous=NORMAL`): every change of a namespace of a `PERMANENT_*` level is written
//! here before the operation is acknowledged, and everything is loaded back at start.
//!
//! Group commit: the namespaces decide each operation in memory under their lock and hand
//! its changes to one writer thread, which owns the SQLite connection and writes everything
//! queued meanwhile in one transaction. While writes are not committed, every answer goes
//! to the writer too and is sent after them ([`Db::after`]), so no client sees a change
//! (its own or another's) before it is in the file. A group whose transaction fails answers
//! every operation in it with `DBR_ERR_BE_GENERAL`.
//!
//! The tuple-space rules live in [`super::space`]; this file only stores what they decide.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;

use broker_wasm::dbr::DbrCode;
use broker_wasm::protocol::{Failure, Response};
use broker_wasm::Data;
use rusqlite::{params, Connection};

use super::answer::Deferred;
use super::failure;

/// Puts a value back in front of (namespace, tuple name): for a value whose getter went away
/// before its answer (see [`Deferred::taken_from`]).
pub(super) type PutBack = Box<dyn Fn(&str, &str, Data) + Send>;

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

/// Most jobs committed in one transaction.
const MAX_GROUP: usize = 8192;

/// One change to write.
#[derive(Debug)]
enum Write {
    CreateSpace {
        name: String,
        level: u8,
        groups: String,
    },
    Mark(String),
    DeleteSpace(String),
    Insert {
        ns: String,
        key: String,
        seq: i64,
        value: Vec<u8>,
    },
    DeleteValue {
        ns: String,
        key: String,
        seq: i64,
    },
    DeleteKey {
        ns: String,
        key: String,
    },
    /// Move tuple `key` (DB-18); which sides persist says what to write. `values` are the
    /// encoded values with their sequence numbers (for a move into a persistent namespace).
    Move {
        from: (String, bool),
        to: (String, bool),
        key: String,
        values: Vec<(i64, Vec<u8>)>,
    },
}

/// What the writer thread takes, in the order the namespaces decided it.
#[derive(Debug)]
enum Job {
    Write(Write),
    /// Sent once everything before it committed (or the failure if its group failed).
    Answer(Deferred),
}

/// The database: a writer thread that owns the SQLite connection and commits in groups
/// (everything queued while it wrote the last group is one transaction), and answers the
/// operations that waited for those writes once they are committed.
#[derive(Debug)]
pub(super) struct Db {
    tx: std_mpsc::Sender<Job>,
    /// Writes sent to the writer, and (its side) writes it has finished.
    sent: u64,
    finished: Arc<AtomicU64>,
}

/// A connection that is not the writer's yet.
pub(super) struct Opened(Connection);

impl Db {
    /// Opens (or creates) `<data_dir>/namespaces.sqlite3`.
    pub(super) fn open(data_dir: &Path) -> Res<Opened> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            failure(
                DbrCode::NoConnect,
                format!("cannot create {}: {e}", data_dir.display()),
            )
        })?;
        Db::open_file(&data_dir.join(DB_FILE))
            .map_err(|e| failure(DbrCode::NoConnect, format!("cannot open the database: {e}")))
    }

    fn open_file(path: &Path) -> rusqlite::Result<Opened> {
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
        Ok(Opened(db))
    }

    /// The database of `data_dir` and the namespaces it holds, if there is one.
    pub(super) fn load_existing(
        data_dir: &Path,
    ) -> Option<rusqlite::Result<(Opened, HashMap<String, Stored>)>> {
        let path = data_dir.join(DB_FILE);
        if !path.exists() {
            return None;
        }
        Some(Db::open_file(&path).and_then(|db| {
            let spaces = load(&db.0)?;
            Ok((db, spaces))
        }))
    }

    /// Starts the writer thread on `db`; it calls `put_back` for a value whose getter went
    /// away before its answer.
    pub(super) fn start(db: Opened, put_back: PutBack) -> Res<Db> {
        let (tx, rx) = std_mpsc::channel();
        let finished = Arc::new(AtomicU64::new(0));
        let done = finished.clone();
        std::thread::Builder::new()
            .name("namespaces-sqlite".into())
            .spawn(move || writer_loop(db.0, rx, &done, &put_back))
            .map_err(|e| failure(DbrCode::NoConnect, format!("cannot start the writer: {e}")))?;
        Ok(Db {
            tx,
            sent: 0,
            finished,
        })
    }

    /// Whether writes sent are not committed yet: answers then go through [`Db::after`].
    pub(super) fn writes_pending(&self) -> bool {
        self.sent > self.finished.load(Ordering::Acquire)
    }

    /// Has the writer send `d` once everything sent before it is committed.
    pub(super) fn after(&self, d: Deferred) {
        if let Err(std_mpsc::SendError(Job::Answer(d))) = self.tx.send(Job::Answer(d)) {
            let _ = d.tx.send(Err(stopped()));
        }
    }

    fn write(&mut self, w: Write) -> Res<()> {
        self.tx.send(Job::Write(w)).map_err(|_| stopped())?;
        self.sent += 1;
        Ok(())
    }

    pub(super) fn create_space(&mut self, name: &str, level: u8, groups: &[String]) -> Res<()> {
        self.write(Write::CreateSpace {
            name: name.to_owned(),
            level,
            groups: serde_json::to_string(groups).unwrap_or_default(),
        })
    }

    /// Marks a namespace for deletion (DB-04): after a restart it is deleted.
    pub(super) fn mark(&mut self, name: &str) -> Res<()> {
        self.write(Write::Mark(name.to_owned()))
    }

    /// Deletes a namespace and its tuples, atomically.
    pub(super) fn delete_space(&mut self, ns: &str) -> Res<()> {
        self.write(Write::DeleteSpace(ns.to_owned()))
    }

    pub(super) fn insert(&mut self, ns: &str, key: &str, seq: i64, value: &Data) -> Res<()> {
        let value = broker_wasm::binary::to_vec(value)
            .map_err(|e| failure(DbrCode::Invalid, e.to_string()))?;
        self.write(Write::Insert {
            ns: ns.to_owned(),
            key: key.to_owned(),
            seq,
            value,
        })
    }

    /// Deletes one value of a tuple.
    pub(super) fn delete_value(&mut self, ns: &str, key: &str, seq: i64) -> Res<()> {
        self.write(Write::DeleteValue {
            ns: ns.to_owned(),
            key: key.to_owned(),
            seq,
        })
    }

    /// Deletes every value of a tuple.
    pub(super) fn delete_key(&mut self, ns: &str, key: &str) -> Res<()> {
        self.write(Write::DeleteKey {
            ns: ns.to_owned(),
            key: key.to_owned(),
        })
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
        let values = if to.1 && !from.1 {
            values
                .map(|(seq, v)| (*seq, broker_wasm::binary::to_vec(v).unwrap_or_default()))
                .collect()
        } else {
            Vec::new()
        };
        self.write(Write::Move {
            from: (from.0.to_owned(), from.1),
            to: (to.0.to_owned(), to.1),
            key: key.to_owned(),
            values,
        })
    }
}

fn stopped() -> Failure {
    failure(DbrCode::BeGeneral, "the namespaces' writer stopped")
}

fn writer_loop(
    mut conn: Connection,
    rx: std_mpsc::Receiver<Job>,
    finished: &AtomicU64,
    put_back: &PutBack,
) {
    let mut group: Vec<Job> = Vec::with_capacity(64);
    while crate::store::sqlite::next_group(&rx, &mut group, MAX_GROUP) {
        let writes = group.iter().filter(|j| matches!(j, Job::Write(_))).count() as u64;
        let result = if writes == 0 {
            Ok(())
        } else {
            commit(&mut conn, &group).map_err(sql_err)
        };
        if let Err(e) = &result {
            tracing::error!("namespaces: a write failed: {e:?}");
        }
        finished.fetch_add(writes, Ordering::Release);
        for job in group.drain(..) {
            let Job::Answer(d) = job else { continue };
            match &result {
                Ok(()) => {
                    if let (Err(Ok(Response::Tuple { value, .. })), Some((ns, key))) =
                        (d.tx.send(d.reply), d.taken_from)
                    {
                        // The getter went away before its answer: the value goes back.
                        put_back(&ns, &key, value);
                    }
                }
                Err(e) => {
                    let _ = d.tx.send(Err(e.clone()));
                }
            }
        }
        if group.capacity() > 1024 {
            group = Vec::with_capacity(64);
        }
    }
    let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
}

/// Writes a group in one transaction; a change of several statements in a savepoint.
fn commit(conn: &mut Connection, group: &[Job]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    for job in group {
        let Job::Write(w) = job else { continue };
        match w {
            Write::CreateSpace {
                name,
                level,
                groups,
            } => {
                tx.execute(
                    "INSERT INTO ns_spaces(name, level, groups, marked) VALUES (?1, ?2, ?3, 0)",
                    params![name, level, groups],
                )?;
            }
            Write::Mark(name) => {
                tx.execute("UPDATE ns_spaces SET marked = 1 WHERE name = ?1", [name])?;
            }
            Write::DeleteSpace(ns) => {
                tx.execute("DELETE FROM ns_tuples WHERE ns = ?1", [ns])?;
                tx.execute("DELETE FROM ns_spaces WHERE name = ?1", [ns])?;
            }
            Write::Insert {
                ns,
                key,
                seq,
                value,
            } => {
                tx.prepare_cached(
                    "INSERT INTO ns_tuples(ns, key, seq, value) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![ns, key, seq, value])?;
            }
            Write::DeleteValue { ns, key, seq } => {
                tx.prepare_cached("DELETE FROM ns_tuples WHERE ns = ?1 AND key = ?2 AND seq = ?3")?
                    .execute(params![ns, key, seq])?;
            }
            Write::DeleteKey { ns, key } => {
                tx.execute(
                    "DELETE FROM ns_tuples WHERE ns = ?1 AND key = ?2",
                    [ns, key],
                )?;
            }
            Write::Move {
                from,
                to,
                key,
                values,
            } => match (from.1, to.1) {
                (true, true) => {
                    tx.execute(
                        "UPDATE ns_tuples SET ns = ?1 WHERE ns = ?2 AND key = ?3",
                        [&to.0, &from.0, key],
                    )?;
                }
                (true, false) => {
                    tx.execute(
                        "DELETE FROM ns_tuples WHERE ns = ?1 AND key = ?2",
                        [&from.0, key],
                    )?;
                }
                (false, true) => {
                    for (seq, value) in values {
                        tx.execute(
                            "INSERT INTO ns_tuples(ns, key, seq, value) VALUES (?1, ?2, ?3, ?4)",
                            params![to.0, key, seq, value],
                        )?;
                    }
                }
                (false, false) => {}
            },
        }
    }
    tx.commit()
}

/// Every persistent namespace with its tuples; namespaces marked for deletion are
/// deleted now (after a restart nobody holds them).
fn load(db: &Connection) -> rusqlite::Result<HashMap<String, Stored>> {
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
    let mut stmt = db.prepare("SELECT ns, key, seq, value FROM ns_tuples ORDER BY ns, key, seq")?;
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
