//! The SQLite backend of a master store (ZB-46): Broker's schema and option names, WAL with
//! `synchronous=NORMAL` by default, and one writer thread that commits in groups.
//!
//! The master keeps every entry in memory as well (reads never touch the disk); the file is
//! the durable copy. A write is acknowledged to its client only after the transaction that
//! holds it committed, so an acknowledged write survives a crash of the gateway.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;

use broker_wasm::store::Entry;
use broker_wasm::{Data, ErrorCode, Timestamp};
use rusqlite::{params, Connection, OpenFlags};

use super::{Reply, StoreError};
use broker_wasm::protocol::Response;

/// Most writes committed in one transaction.
const MAX_GROUP: usize = 8192;

/// Parsed `attach_master` options of the SQLite backend.
#[derive(Debug, Clone, PartialEq)]
pub struct SqliteOptions {
    pub path: PathBuf,
    /// `PRAGMA synchronous` value (0..=3); ours defaults to NORMAL (1).
    pub synchronous: u8,
    /// `PRAGMA journal_mode`; ours defaults to `wal`.
    pub journal_mode: &'static str,
    /// Delete and recreate a corrupt or unopenable file instead of failing.
    pub delete_on_failure: bool,
    pub integrity_check: bool,
}

fn failure(context: impl Into<String>) -> StoreError {
    StoreError {
        code: ErrorCode::BackendFailure,
        context: context.into(),
    }
}

impl SqliteOptions {
    /// Reads Broker's option table (`path`, `synchronous`, `journal_mode`, `failure_mode`,
    /// `integrity_check`). A missing path becomes `<data_dir>/<escaped store name>.sqlite`
    /// (see [`file_name`]). Wrong types and unknown values are a `backend_failure`, as in
    /// Broker.
    ///
    /// A store a client asks for (`by_client`) always lives in its own file inside `data_dir`:
    /// a `path` or `failure_mode` DELETE from a client is `unauthorized`, so no client can
    /// make the gateway write, delete or recreate a file of its choosing, or share another
    /// store's file. Both stay available to the operator (`Endpoint::attach_master`).
    pub fn parse(
        options: &Data,
        data_dir: &Path,
        store: &str,
        by_client: bool,
    ) -> Result<SqliteOptions, StoreError> {
        let mut o = SqliteOptions {
            path: data_dir.join(format!("{}.sqlite", file_name(store))),
            synchronous: 1,
            journal_mode: "wal",
            delete_on_failure: false,
            integrity_check: false,
        };
        let table = match options {
            Data::None => return Ok(o),
            Data::Table(t) => t,
            other => {
                return Err(failure(format!(
                    "backend options must be a table, got {}",
                    other.data_type().name()
                )))
            }
        };
        let enum_of = |v: &Data, prefix: &str, key: &str| -> Result<String, StoreError> {
            match v {
                Data::Enum(e) => e
                    .strip_prefix(prefix)
                    .map(str::to_owned)
                    .ok_or_else(|| failure(format!("{key}: expected {prefix}*, got {e}"))),
                other => Err(failure(format!(
                    "{key}: expected an enum value, got {}",
                    other.data_type().name()
                ))),
            }
        };
        for (k, v) in table {
            let Some(key) = k.as_str() else {
                return Err(failure("option names must be strings"));
            };
            match key {
                "path" => match v.as_str() {
                    Some("") => {}
                    Some(_) if by_client => {
                        return Err(refused(
                            "`path`: a client cannot choose a store's file; stores of clients \
                             live in the gateway's data directory, named after the store",
                        ))
                    }
                    Some(p) => o.path = PathBuf::from(p),
                    None => return Err(failure("path: expected a string")),
                },
                "synchronous" => {
                    o.synchronous = match enum_of(v, "Broker::SQLITE_SYNCHRONOUS_", key)?.as_str() {
                        "OFF" => 0,
                        "NORMAL" => 1,
                        "FULL" => 2,
                        "EXTRA" => 3,
                        other => {
                            return Err(failure(format!("synchronous: unknown value {other}")))
                        }
                    }
                }
                "journal_mode" => {
                    o.journal_mode = match enum_of(v, "Broker::SQLITE_JOURNAL_MODE_", key)?.as_str()
                    {
                        "DELETE" => "delete",
                        "WAL" => "wal",
                        other => {
                            return Err(failure(format!("journal_mode: unknown value {other}")))
                        }
                    }
                }
                "failure_mode" => {
                    o.delete_on_failure =
                        match enum_of(v, "Broker::SQLITE_FAILURE_MODE_", key)?.as_str() {
                            "FAIL" => false,
                            "DELETE" if by_client => {
                                return Err(refused(
                                    "`failure_mode` DELETE: a client cannot make the gateway \
                                     delete a store file",
                                ))
                            }
                            "DELETE" => true,
                            other => {
                                return Err(failure(format!("failure_mode: unknown value {other}")))
                            }
                        }
                }
                "integrity_check" => match v {
                    Data::Boolean(b) => o.integrity_check = *b,
                    _ => return Err(failure("integrity_check: expected a bool")),
                },
                other => return Err(failure(format!("unknown SQLite option `{other}`"))),
            }
        }
        Ok(o)
    }
}

fn refused(context: &str) -> StoreError {
    StoreError {
        code: ErrorCode::Unauthorized,
        context: format!("not allowed: {context}"),
    }
}

/// Longest escaped name used as is; longer ones are shortened and end in a digest.
const MAX_FILE_STEM: usize = 160;

/// A store name as a file name of its own: ASCII letters, digits, `-`, `_` and `.` stay, every
/// other byte becomes `%XX`, so distinct names give distinct files and none contains a path
/// separator. A leading `.` is escaped too (no `.`/`..`, no hidden files). A stem longer than
/// [`MAX_FILE_STEM`] keeps its first 96 bytes, then `~` (which escaping never produces) and
/// the SHA-256 of the name, so it fits every file system's name limit and stays distinct.
pub fn file_name(store: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(store.len());
    for (i, b) in store.bytes().enumerate() {
        let keep = b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && i > 0);
        if keep {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    if out.len() <= MAX_FILE_STEM {
        return out;
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, store.as_bytes());
    let mut short: String = out.chars().take(96).collect();
    short.push('~');
    for b in digest.as_ref() {
        let _ = write!(short, "{b:02x}");
    }
    short
}

fn encode(d: &Data) -> Vec<u8> {
    broker_wasm::binary::to_vec(d).expect("data always encodes")
}

fn decode(b: &[u8]) -> Option<Data> {
    broker_wasm::binary::from_slice(b).ok()
}

/// First byte of a key written as a fixed-width big-endian integer (see [`encode_key`]); never
/// the first byte of our binary encoding (a type tag below 0x80).
const KEY_COUNT: u8 = 0xF0;
const KEY_INTEGER: u8 = 0xF1;
const KEY_TIMESTAMP: u8 = 0xF2;
const KEY_TIMESPAN: u8 = 0xF3;

/// `meta` row naming the key format of [`encode_key`].
const KEY_FORMAT: &str = "ordered-1";

/// A key as stored: integers, timestamps and timespans as a marker byte and 8 big-endian
/// bytes (signed ones with the sign bit flipped), so their byte order is their numeric order;
/// everything else in our binary encoding. Keys that follow each other (counters, times) then
/// sit next to each other in the file's B-tree, and a group commit of such writes touches a
/// few pages instead of one per key (LEB128 varints scatter them).
fn encode_key(d: &Data) -> Vec<u8> {
    let (marker, bits) = match d {
        Data::Count(n) => (KEY_COUNT, *n),
        Data::Integer(i) => (KEY_INTEGER, (*i as u64) ^ (1 << 63)),
        Data::Timestamp(t) => (KEY_TIMESTAMP, (t.0 as u64) ^ (1 << 63)),
        Data::Timespan(t) => (KEY_TIMESPAN, (t.0 as u64) ^ (1 << 63)),
        other => return encode(other),
    };
    let mut out = Vec::with_capacity(9);
    out.push(marker);
    out.extend_from_slice(&bits.to_be_bytes());
    out
}

/// Reads a key of either format (a file from before [`KEY_FORMAT`] holds binary encodings).
fn decode_key(b: &[u8]) -> Option<Data> {
    if let [marker @ KEY_COUNT..=KEY_TIMESPAN, rest @ ..] = b {
        let bits = u64::from_be_bytes(rest.try_into().ok()?);
        let signed = (bits ^ (1 << 63)) as i64;
        return Some(match *marker {
            KEY_COUNT => Data::Count(bits),
            KEY_INTEGER => Data::Integer(signed),
            KEY_TIMESTAMP => Data::Timestamp(Timestamp(signed)),
            _ => Data::Timespan(broker_wasm::Timespan(signed)),
        });
    }
    decode(b)
}

/// One change to persist.
pub(crate) enum Write {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
        expiry: Option<i64>,
    },
    Delete {
        key: Vec<u8>,
    },
    Clear,
    /// Nothing to write: its reply fires once everything before it committed.
    Barrier,
}

impl Write {
    pub(crate) fn put(key: &Data, value: &Data, expiry: Option<Timestamp>) -> Write {
        Write::Put {
            key: encode_key(key),
            value: encode(value),
            expiry: expiry.map(|t| t.0),
        }
    }
    pub(crate) fn delete(key: &Data) -> Write {
        Write::Delete {
            key: encode_key(key),
        }
    }
}

/// A write plus what to answer once it committed.
pub(crate) type Job = (Write, Option<(Reply, Result<Response, StoreError>)>);

/// Handle to the writer thread; dropping it lets the thread finish and close the file.
pub(crate) struct Writer {
    tx: std_mpsc::Sender<Job>,
}

impl Writer {
    pub(crate) fn send(&self, job: Job) {
        if let Err(std_mpsc::SendError((_, Some((reply, _))))) = self.tx.send(job) {
            reply(Err(failure("the store's writer stopped")));
        }
    }
}

fn open_conn(o: &SqliteOptions) -> Result<Connection, String> {
    if let Some(dir) = o.path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let conn = Connection::open_with_flags(
        &o.path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    )
    .map_err(|e| e.to_string())?;
    conn.pragma_update(None, "journal_mode", o.journal_mode)
        .map_err(|e| e.to_string())?;
    conn.pragma_update(None, "synchronous", o.synchronous)
        .map_err(|e| e.to_string())?;
    if o.integrity_check {
        let r: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| e.to_string())?;
        if r != "ok" {
            return Err(format!("integrity check failed: {r}"));
        }
    }
    // Broker's schema; WITHOUT ROWID keeps each entry in one B-tree (the key's), which
    // halves the work per write. A 64 MiB page cache and a larger WAL before checkpoints let
    // group commits write each page once per group.
    conn.execute_batch(
        "PRAGMA cache_size = -65536;
         PRAGMA wal_autocheckpoint = 8192;
         CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
         CREATE TABLE IF NOT EXISTS store(key BLOB PRIMARY KEY, value BLOB, expiry INTEGER)
             WITHOUT ROWID;",
    )
    .map_err(|e| e.to_string())?;
    conn.execute(
        "INSERT OR REPLACE INTO meta(key, value) VALUES ('broker_version', ?1)",
        params![crate::VERSION],
    )
    .map_err(|e| e.to_string())?;
    Ok(conn)
}

/// Opens (or creates) the file, loads every entry and starts the writer thread.
pub(crate) fn open(
    o: &SqliteOptions,
    store: &str,
) -> Result<(BTreeMap<Data, Entry>, Writer), StoreError> {
    let conn = match open_conn(o) {
        Ok(c) => c,
        Err(e) if o.delete_on_failure => {
            tracing::warn!(store, path = %o.path.display(), error = e, "recreating the store file");
            for suffix in ["", "-wal", "-shm"] {
                let mut p = o.path.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(p);
            }
            open_conn(o).map_err(|e| failure(format!("{}: {e}", o.path.display())))?
        }
        Err(e) => return Err(failure(format!("{}: {e}", o.path.display()))),
    };
    let mut entries = BTreeMap::new();
    {
        let mut stmt = conn
            .prepare("SELECT key, value, expiry FROM store")
            .map_err(|e| failure(e.to_string()))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                ))
            })
            .map_err(|e| failure(e.to_string()))?;
        for row in rows {
            let (k, v, exp) = row.map_err(|e| failure(e.to_string()))?;
            match (decode_key(&k), decode(&v)) {
                (Some(k), Some(v)) => {
                    entries.insert(
                        k,
                        Entry {
                            value: v,
                            expiry: exp.map(Timestamp),
                        },
                    );
                }
                _ => tracing::warn!(store, "skipping an undecodable row"),
            }
        }
    }
    let mut conn = conn;
    migrate_keys(&mut conn, &entries)
        .map_err(|e| failure(format!("{}: rewriting keys: {e}", o.path.display())))?;
    let (tx, rx) = std_mpsc::channel::<Job>();
    let name = store.to_owned();
    std::thread::Builder::new()
        .name(format!("store-{name}"))
        .spawn(move || writer_loop(conn, rx, &name))
        .map_err(|e| failure(format!("cannot start the writer: {e}")))?;
    Ok((entries, Writer { tx }))
}

/// Brings a file to [`KEY_FORMAT`]: a file written before it (keys in the binary encoding)
/// gets its rows rewritten once, in one transaction, from the `entries` just loaded from it.
fn migrate_keys(conn: &mut Connection, entries: &BTreeMap<Data, Entry>) -> rusqlite::Result<()> {
    let format: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'key_format'", [], |r| {
            r.get(0)
        })
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    if format.as_deref() == Some(KEY_FORMAT) {
        return Ok(());
    }
    let tx = conn.transaction()?;
    tx.execute("DELETE FROM store", [])?;
    {
        let mut put = tx.prepare("INSERT INTO store(key, value, expiry) VALUES (?1, ?2, ?3)")?;
        for (k, e) in entries {
            put.execute(params![
                encode_key(k),
                encode(&e.value),
                e.expiry.map(|t| t.0)
            ])?;
        }
    }
    tx.execute(
        "INSERT OR REPLACE INTO meta(key, value) VALUES ('key_format', ?1)",
        [KEY_FORMAT],
    )?;
    tx.commit()
}

/// Waits for the next job of a group commit, then adds it and everything queued behind it
/// (up to `max` in all) to `group`; false once every sender is gone and nothing is left.
pub(crate) fn next_group<T>(rx: &std_mpsc::Receiver<T>, group: &mut Vec<T>, max: usize) -> bool {
    let Ok(first) = rx.recv() else {
        return false;
    };
    group.push(first);
    while group.len() < max {
        match rx.try_recv() {
            Ok(j) => group.push(j),
            Err(_) => break,
        }
    }
    true
}

fn writer_loop(mut conn: Connection, rx: std_mpsc::Receiver<Job>, store: &str) {
    let mut group: Vec<Job> = Vec::with_capacity(MAX_GROUP);
    while next_group(&rx, &mut group, MAX_GROUP) {
        let result = commit(&mut conn, &group);
        if let Err(e) = &result {
            tracing::error!(store, error = %e, "store write failed");
        }
        for (_, answer) in group.drain(..) {
            if let Some((reply, ok)) = answer {
                match &result {
                    Ok(()) => reply(ok),
                    Err(e) => reply(Err(failure(format!("write failed: {e}")))),
                }
            }
        }
    }
    // The master is gone: checkpoint so the file is complete on its own.
    let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
}

fn commit(conn: &mut Connection, group: &[Job]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut put = tx.prepare_cached(
            "INSERT OR REPLACE INTO store(key, value, expiry) VALUES (?1, ?2, ?3)",
        )?;
        let mut del = tx.prepare_cached("DELETE FROM store WHERE key = ?1")?;
        for (w, _) in group {
            match w {
                Write::Put { key, value, expiry } => {
                    put.execute(params![key, value, expiry])?;
                }
                Write::Delete { key } => {
                    del.execute(params![key])?;
                }
                Write::Clear => {
                    tx.execute("DELETE FROM store", [])?;
                }
                Write::Barrier => {}
            }
        }
    }
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, Data)]) -> Data {
        Data::Table(
            pairs
                .iter()
                .map(|(k, v)| (Data::from(*k), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn zb46_options_are_parsed_like_broker() {
        let dir = Path::new("/tmp/x");
        let o = SqliteOptions::parse(&Data::None, dir, "a/b", false).unwrap();
        assert_eq!(o.path, dir.join("a%2Fb.sqlite"));
        assert_eq!((o.synchronous, o.journal_mode), (1, "wal"));
        let o = SqliteOptions::parse(
            &opts(&[
                ("path", "/tmp/y.db".into()),
                (
                    "synchronous",
                    Data::enum_value("Broker::SQLITE_SYNCHRONOUS_FULL"),
                ),
                (
                    "journal_mode",
                    Data::enum_value("Broker::SQLITE_JOURNAL_MODE_DELETE"),
                ),
                (
                    "failure_mode",
                    Data::enum_value("Broker::SQLITE_FAILURE_MODE_DELETE"),
                ),
                ("integrity_check", Data::Boolean(true)),
            ]),
            dir,
            "s",
            false,
        )
        .unwrap();
        assert_eq!(o.path, PathBuf::from("/tmp/y.db"));
        assert_eq!((o.synchronous, o.journal_mode), (2, "delete"));
        assert!(o.delete_on_failure && o.integrity_check);
        for bad in [
            opts(&[("synchronous", Data::enum_value("SQLITE_SYNCHRONOUS_FULL"))]),
            opts(&[(
                "synchronous",
                Data::enum_value("Broker::SQLITE_SYNCHRONOUS_FAST"),
            )]),
            opts(&[("synchronous", "Broker::SQLITE_SYNCHRONOUS_FULL".into())]),
            opts(&[("path", Data::Count(1))]),
            opts(&[("bogus", Data::Count(1))]),
            Data::Count(1),
        ] {
            let e = SqliteOptions::parse(&bad, dir, "s", false).unwrap_err();
            assert_eq!(e.code, ErrorCode::BackendFailure, "{bad}");
        }
    }

    #[test]
    fn zb46_clients_cannot_choose_or_delete_files() {
        let dir = Path::new("/tmp/x");
        let path = opts(&[("path", "/tmp/victim.txt".into())]);
        let e = SqliteOptions::parse(&path, dir, "evil", true).unwrap_err();
        assert_eq!(e.code, ErrorCode::Unauthorized);
        let delete = opts(&[(
            "failure_mode",
            Data::enum_value("Broker::SQLITE_FAILURE_MODE_DELETE"),
        )]);
        let e = SqliteOptions::parse(&delete, dir, "evil", true).unwrap_err();
        assert_eq!(e.code, ErrorCode::Unauthorized);
        // What stays allowed: an empty path (the default) and the other options.
        let ok = opts(&[
            ("path", "".into()),
            (
                "failure_mode",
                Data::enum_value("Broker::SQLITE_FAILURE_MODE_FAIL"),
            ),
            (
                "synchronous",
                Data::enum_value("Broker::SQLITE_SYNCHRONOUS_FULL"),
            ),
        ]);
        let o = SqliteOptions::parse(&ok, dir, "fine", true).unwrap();
        assert_eq!(o.path, dir.join("fine.sqlite"));
        assert!(!o.delete_on_failure);
    }

    #[test]
    fn store_file_names_are_distinct_and_stay_in_the_directory() {
        let names = [
            "a b", "a_b", "a%20b", "a/b", "a\\b", "..", ".", ".hidden", "x.y", "ü", "a:b", "CON",
            "a\u{0}b",
        ];
        let mut seen = std::collections::HashSet::new();
        for n in names {
            let f = file_name(n);
            assert!(seen.insert(f.clone()), "{n:?} shares the file {f:?}");
            assert!(
                !f.contains('/') && !f.contains('\\') && !f.starts_with('.'),
                "{f:?}"
            );
            assert!(!f.is_empty());
        }
        // Names made only of safe characters keep their old file names.
        assert_eq!(file_name("users-2.v1"), "users-2.v1");
        // Long names stay under the file-name limit and distinct.
        let long_a = "é".repeat(127) + "a";
        let long_b = "é".repeat(127) + "b";
        let (fa, fb) = (file_name(&long_a), file_name(&long_b));
        assert_ne!(fa, fb);
        assert!(fa.len() + ".sqlite-wal".len() <= 255, "{}", fa.len());
        assert_eq!(file_name(&long_a), fa, "stable");
    }

    #[test]
    fn stored_keys_of_numbers_sort_as_the_numbers_and_read_back() {
        let counts = [0u64, 1, 127, 128, 300, 65_535, 1 << 40, u64::MAX];
        let ints = [i64::MIN, -300, -1, 0, 1, 128, i64::MAX];
        let as_keys = |v: Vec<Data>| v.iter().map(encode_key).collect::<Vec<_>>();
        for keys in [
            as_keys(counts.iter().map(|&n| Data::Count(n)).collect()),
            as_keys(ints.iter().map(|&i| Data::Integer(i)).collect()),
            as_keys(
                ints.iter()
                    .map(|&i| Data::Timestamp(Timestamp(i)))
                    .collect(),
            ),
            as_keys(
                ints.iter()
                    .map(|&i| Data::Timespan(broker_wasm::Timespan(i)))
                    .collect(),
            ),
        ] {
            assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        }
        for d in [
            Data::Count(300),
            Data::Integer(-5),
            Data::Timestamp(Timestamp(-1)),
            Data::Timespan(broker_wasm::Timespan(7)),
            Data::string("k"),
            Data::Vector(vec![Data::Count(1)]),
        ] {
            assert_eq!(decode_key(&encode_key(&d)), Some(d.clone()));
            // A key in the binary encoding (files from before the ordered keys) reads too.
            assert_eq!(decode_key(&encode(&d)), Some(d));
        }
    }

    #[test]
    fn a_file_with_binary_encoded_keys_is_rewritten_once_and_keeps_its_entries() {
        let dir = std::env::temp_dir().join(format!("sqlite-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let o = SqliteOptions::parse(&Data::None, &dir, "old", false).unwrap();
        let entries = [
            (Data::Count(1), Data::string("one")),
            (Data::Count(300), Data::string("three hundred")),
            (Data::string("k"), Data::Integer(-1)),
        ];
        {
            // As an earlier version wrote it: keys in the binary encoding, no key format.
            let conn = open_conn(&o).unwrap();
            conn.execute("DELETE FROM meta WHERE key = 'key_format'", [])
                .unwrap();
            for (k, v) in &entries {
                conn.execute(
                    "INSERT INTO store(key, value, expiry) VALUES (?1, ?2, NULL)",
                    params![encode(k), encode(v)],
                )
                .unwrap();
            }
        }
        for _ in 0..2 {
            let (loaded, writer) = open(&o, "old").unwrap();
            let want: BTreeMap<Data, Data> = entries.iter().cloned().collect();
            let got: BTreeMap<Data, Data> = loaded.into_iter().map(|(k, e)| (k, e.value)).collect();
            assert_eq!(got, want);
            drop(writer);
            let conn = Connection::open(&o.path).unwrap();
            let keys: Vec<Vec<u8>> = conn
                .prepare("SELECT key FROM store")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let mut want_keys: Vec<Vec<u8>> = entries.iter().map(|(k, _)| encode_key(k)).collect();
            want_keys.sort();
            let mut keys = keys;
            keys.sort();
            assert_eq!(keys, want_keys);
            let format: String = conn
                .query_row("SELECT value FROM meta WHERE key = 'key_format'", [], |r| {
                    r.get(0)
                })
                .unwrap();
            assert_eq!(format, KEY_FORMAT);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
