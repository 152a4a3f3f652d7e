//! Zeek's live tables (ZU-11..17): `Cluster::table_change_infos(tcheader, tcinfos)` events
//! read as batches of store changes, and the end marker of a re-sent table.
//!
//! Layer: data only (no I/O); the uplink driver reads events with it and the `zeek:` master
//! stores apply what it returns.

use broker_wasm::zeek::EventRef;
use broker_wasm::Data;

/// The event Zeek publishes a `&publish_on_change` table's changes with (ZU-11).
pub const TABLE_CHANGE_INFOS: &str = "Cluster::table_change_infos";
/// The event the project's Zeek script (`zeek/broker-gateway.zeek`) publishes after it
/// re-sent a table to a new client with `Cluster::publish_table` (ZU-15).
pub const TABLE_PUBLISHED: &str = "BrokerGateway::table_published";
/// Prefix of the stores that mirror Zeek tables: `zeek:<identifier>`.
pub const STORE_PREFIX: &str = "zeek:";

/// One change of a table, as the store applies it (ZU-17).
#[derive(Debug, Clone, PartialEq)]
pub enum TableChange {
    /// `TABLE_ELEMENT_NEW` or `TABLE_ELEMENT_CHANGED`: the key now has this value (`none` for
    /// sets).
    Put { key: Data, value: Data },
    /// `TABLE_ELEMENT_REMOVED` (`expired` false) or `TABLE_ELEMENT_EXPIRED` (true).
    Remove { key: Data, expired: bool },
}

/// A batch of changes of one table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableBatch {
    /// The table's identifier, e.g. `Test::endpoints`.
    pub id: String,
    pub changes: Vec<TableChange>,
}

impl TableBatch {
    /// The name of the store that mirrors the table.
    pub fn store(&self) -> String {
        store_name(&self.id)
    }
}

pub fn store_name(id: &str) -> String {
    format!("{STORE_PREFIX}{id}")
}

/// What an uplink makes of a Zeek event beyond delivering it.
#[derive(Debug, Clone, PartialEq)]
pub enum TableEvent {
    Changes(TableBatch),
    /// The table `id` was re-sent whole (ZU-15).
    Published(String),
}

/// Reads a table event; `Ok(None)` for any other event, `Err` for a table event of the wrong
/// shape (the text says what).
pub fn parse(data: &Data) -> Result<Option<TableEvent>, String> {
    let Ok(ev) = EventRef::from_data(data) else {
        return Ok(None);
    };
    match ev.name {
        TABLE_CHANGE_INFOS => changes(ev.args).map(|b| Some(TableEvent::Changes(b))),
        TABLE_PUBLISHED => match ev.args.first() {
            Some(Data::String(id)) => Ok(Some(TableEvent::Published(
                String::from_utf8_lossy(id).into_owned(),
            ))),
            _ => Err(format!(
                "{TABLE_PUBLISHED}: the argument must be the table's name"
            )),
        },
        _ => Ok(None),
    }
}

/// `tcheader` is `[id: string, ts: time, node_id: string]` (ZU-12); `tcinfos` a vector of
/// `[change: enum, ts: time, index: vector, value: any or none, previous_value: any or none]`
/// (ZU-13).
fn changes(args: &[Data]) -> Result<TableBatch, String> {
    let bad = |what: &str| format!("{TABLE_CHANGE_INFOS}: {what}");
    let [Data::Vector(header), Data::Vector(infos)] = args else {
        return Err(bad("expected the arguments (tcheader, tcinfos)"));
    };
    let Some(Data::String(id)) = header.first() else {
        return Err(bad("the header's first field must be the table's name"));
    };
    let mut changes = Vec::with_capacity(infos.len());
    for (i, info) in infos.iter().enumerate() {
        let Data::Vector(f) = info else {
            return Err(bad(&format!("change {i} is not a record")));
        };
        let (Some(Data::Enum(change)), Some(Data::Vector(index))) = (f.first(), f.get(2)) else {
            return Err(bad(&format!(
                "change {i} must start with an enum change, a time and an index vector"
            )));
        };
        let key = match index.as_slice() {
            [one] => one.clone(),
            _ => Data::Vector(index.clone()),
        };
        // The part after a module prefix, should a Zeek version qualify the enum's names.
        let name = change.rsplit("::").next().unwrap_or(change);
        changes.push(match name {
            "TABLE_ELEMENT_NEW" | "TABLE_ELEMENT_CHANGED" => TableChange::Put {
                key,
                value: f.get(3).cloned().unwrap_or(Data::None),
            },
            "TABLE_ELEMENT_REMOVED" => TableChange::Remove {
                key,
                expired: false,
            },
            "TABLE_ELEMENT_EXPIRED" => TableChange::Remove { key, expired: true },
            other => return Err(bad(&format!("change {i}: unknown change {other:?}"))),
        });
    }
    Ok(TableBatch {
        id: String::from_utf8_lossy(id).into_owned(),
        changes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use broker_wasm::data::{Port, Protocol};
    use broker_wasm::zeek::Event;
    use broker_wasm::Timestamp;

    fn info(change: &str, index: Vec<Data>, value: Data, prev: Data) -> Data {
        Data::Vector(vec![
            Data::Enum(change.into()),
            Data::Timestamp(Timestamp(1_700_000_000_000_000_000)),
            Data::Vector(index),
            value,
            prev,
        ])
    }

    fn event(id: &str, infos: Vec<Data>) -> Data {
        Event::new(
            TABLE_CHANGE_INFOS,
            vec![
                Data::Vector(vec![
                    Data::String(id.into()),
                    Data::Timestamp(Timestamp(1_700_000_000_000_000_000)),
                    Data::String("zeek".into()),
                ]),
                Data::Vector(infos),
            ],
        )
        .to_data()
    }

    #[test]
    fn zu17_single_and_two_column_indexes_sets_and_expiry() {
        let a = Data::Address("10.0.0.1".parse().unwrap());
        let p = Data::Port(Port::new(80, Protocol::Tcp));
        let ev = event(
            "Test::endpoints",
            vec![
                info(
                    "TABLE_ELEMENT_NEW",
                    vec![a.clone()],
                    Data::Count(1),
                    Data::None,
                ),
                info(
                    "TABLE_ELEMENT_CHANGED",
                    vec![a.clone(), p.clone()],
                    Data::String("x".into()),
                    Data::String("w".into()),
                ),
                info(
                    "TABLE_ELEMENT_REMOVED",
                    vec![a.clone()],
                    Data::None,
                    Data::Count(1),
                ),
                info(
                    "TABLE_ELEMENT_EXPIRED",
                    vec![p.clone()],
                    Data::None,
                    Data::None,
                ),
            ],
        );
        let Some(TableEvent::Changes(b)) = parse(&ev).unwrap() else {
            panic!("not a table event")
        };
        assert_eq!(b.store(), "zeek:Test::endpoints");
        assert_eq!(
            b.changes,
            vec![
                TableChange::Put {
                    key: a.clone(),
                    value: Data::Count(1)
                },
                TableChange::Put {
                    key: Data::Vector(vec![a.clone(), p.clone()]),
                    value: Data::String("x".into())
                },
                TableChange::Remove {
                    key: a,
                    expired: false
                },
                TableChange::Remove {
                    key: p,
                    expired: true
                },
            ]
        );
    }

    #[test]
    fn zu13_malformed_batches_are_errors_and_other_events_are_not_tables() {
        let other = Event::new("Test::ping", vec![Data::Count(1)]).to_data();
        assert_eq!(parse(&other), Ok(None));
        assert_eq!(parse(&Data::Count(1)), Ok(None));
        let bad = Event::new(TABLE_CHANGE_INFOS, vec![Data::Count(1)]).to_data();
        assert!(parse(&bad).is_err());
        let unknown = event(
            "t",
            vec![info(
                "TABLE_ELEMENT_MOVED",
                vec![Data::Count(1)],
                Data::None,
                Data::None,
            )],
        );
        assert!(parse(&unknown).unwrap_err().contains("TABLE_ELEMENT_MOVED"));
        let done = Event::new(TABLE_PUBLISHED, vec![Data::String("t".into())]).to_data();
        assert_eq!(parse(&done), Ok(Some(TableEvent::Published("t".into()))));
    }
}
