//! Zeek events as Broker data (ZB-34).
//!
//! A Zeek message is the vector `[version, type, content]` with `version` = count 1 and
//! `type` = count 1 for events. An event's content is `[name, args]` or
//! `[name, args, metadata]`, metadata being a vector of `[count key, value]` pairs; key 1
//! (network timestamp) must carry a timestamp.

use thiserror::Error;

use crate::data::{Data, Timestamp};

/// `ProtocolVersion` of Zeek messages.
pub const ZEEK_PROTOCOL_VERSION: u64 = 1;
/// Message type of events.
pub const ZEEK_TYPE_EVENT: u64 = 1;
/// Metadata key of the network timestamp.
pub const METADATA_NETWORK_TIMESTAMP: u64 = 1;
/// First metadata key free for users; 1..199 are reserved for Zeek.
pub const METADATA_USER_START: u64 = 200;

/// Why a value is not a valid Zeek event.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EventError {
    #[error("a Zeek message is a vector of at least 3 fields")]
    NotAMessage,
    #[error("unsupported Zeek message version")]
    Version,
    #[error("not an event message (type must be count 1)")]
    NotAnEvent,
    #[error("event content must be a vector of name and arguments")]
    Content,
    #[error("event name must be a string")]
    Name,
    #[error("event arguments must be a vector")]
    Args,
    #[error("event metadata must be a vector of [count, value] pairs")]
    Metadata,
    #[error("metadata key 1 (network timestamp) must carry a timestamp")]
    NetworkTimestamp,
}

/// A Zeek event: name, positional arguments and optional metadata.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Event {
    pub name: String,
    pub args: Vec<Data>,
    /// `None` omits the metadata field; `Some(vec![])` sends an empty one (as Zeek 8 may).
    pub metadata: Option<Vec<(u64, Data)>>,
}

impl Event {
    /// An event without metadata.
    pub fn new(name: impl Into<String>, args: Vec<Data>) -> Event {
        Event {
            name: name.into(),
            args,
            metadata: None,
        }
    }

    /// Adds one metadata entry.
    pub fn with_metadata(mut self, key: u64, value: Data) -> Event {
        self.metadata
            .get_or_insert_with(Vec::new)
            .push((key, value));
        self
    }

    /// Sets the network timestamp (metadata key 1).
    pub fn with_network_timestamp(self, ts: Timestamp) -> Event {
        self.with_metadata(METADATA_NETWORK_TIMESTAMP, Data::Timestamp(ts))
    }

    /// The network timestamp, if present.
    pub fn network_timestamp(&self) -> Option<Timestamp> {
        self.metadata
            .as_ref()?
            .iter()
            .find_map(|(k, v)| match (k, v) {
                (&METADATA_NETWORK_TIMESTAMP, Data::Timestamp(t)) => Some(*t),
                _ => None,
            })
    }

    /// The Broker value `[1, 1, [name, args, metadata?]]`.
    pub fn to_data(&self) -> Data {
        let mut content = vec![
            Data::string(self.name.clone()),
            Data::Vector(self.args.clone()),
        ];
        if let Some(meta) = &self.metadata {
            content.push(Data::Vector(
                meta.iter()
                    .map(|(k, v)| Data::Vector(vec![Data::Count(*k), v.clone()]))
                    .collect(),
            ));
        }
        Data::Vector(vec![
            Data::Count(ZEEK_PROTOCOL_VERSION),
            Data::Count(ZEEK_TYPE_EVENT),
            Data::Vector(content),
        ])
    }

    /// Reads an event from a Broker value, checking every validity rule of ZB-34.
    pub fn from_data(data: &Data) -> Result<Event, EventError> {
        let e = EventRef::from_data(data)?;
        Ok(Event {
            name: e.name.to_owned(),
            args: e.args.to_vec(),
            // Each entry is a checked `[count, value]` pair.
            metadata: e.metadata.map(|entries| {
                entries
                    .iter()
                    .filter_map(|entry| match entry.as_vector() {
                        Some([Data::Count(k), v]) => Some((*k, v.clone())),
                        _ => None,
                    })
                    .collect()
            }),
        })
    }
}

/// A Zeek event borrowed from the Broker value that holds it: for checking or reading a
/// received value without copying its arguments.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventRef<'a> {
    pub name: &'a str,
    pub args: &'a [Data],
    /// The metadata entries, each a `[count, value]` pair.
    pub metadata: Option<&'a [Data]>,
}

impl<'a> EventRef<'a> {
    /// Reads an event from a Broker value, checking every validity rule of ZB-34 (the same
    /// rules as [`Event::from_data`]).
    pub fn from_data(data: &'a Data) -> Result<EventRef<'a>, EventError> {
        let top = data
            .as_vector()
            .filter(|v| v.len() >= 3)
            .ok_or(EventError::NotAMessage)?;
        if top[0] != Data::Count(ZEEK_PROTOCOL_VERSION) {
            return Err(EventError::Version);
        }
        if top[1] != Data::Count(ZEEK_TYPE_EVENT) {
            return Err(EventError::NotAnEvent);
        }
        let content = top[2]
            .as_vector()
            .filter(|c| c.len() >= 2)
            .ok_or(EventError::Content)?;
        let name = content[0].as_str().ok_or(EventError::Name)?;
        let args = content[1].as_vector().ok_or(EventError::Args)?;
        let metadata = match content.get(2) {
            None => None,
            Some(meta) => {
                let entries = meta.as_vector().ok_or(EventError::Metadata)?;
                for entry in entries {
                    match entry.as_vector() {
                        Some([Data::Count(k), v]) => {
                            if *k == METADATA_NETWORK_TIMESTAMP && !matches!(v, Data::Timestamp(_))
                            {
                                return Err(EventError::NetworkTimestamp);
                            }
                        }
                        _ => return Err(EventError::Metadata),
                    }
                }
                Some(entries)
            }
        };
        Ok(EventRef {
            name,
            args,
            metadata,
        })
    }
}

impl From<Event> for Data {
    fn from(e: Event) -> Data {
        e.to_data()
    }
}

impl TryFrom<&Data> for Event {
    type Error = EventError;
    fn try_from(d: &Data) -> Result<Event, EventError> {
        Event::from_data(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zb34_layout() {
        let e = Event::new("ping", vec![Data::string("x"), Data::Count(1)]);
        assert_eq!(e.to_data().to_string(), "(1, 1, (ping, (x, 1)))");
        assert_eq!(Event::from_data(&e.to_data()), Ok(e.clone()));
        let data = e.to_data();
        let r = EventRef::from_data(&data).unwrap();
        assert_eq!((r.name, r.args), (e.name.as_str(), e.args.as_slice()));
        let m = e
            .with_network_timestamp(Timestamp(5))
            .with_metadata(200, Data::Boolean(true));
        let back = Event::from_data(&m.to_data()).unwrap();
        assert_eq!(back.network_timestamp(), Some(Timestamp(5)));
        assert_eq!(back, m);
    }

    #[test]
    fn zb34_validity_rules() {
        let v = |items: Vec<Data>| Data::Vector(items);
        let ok_content = v(vec![Data::string("e"), v(vec![])]);
        let cases = [
            (Data::Count(1), EventError::NotAMessage),
            (
                v(vec![Data::Count(1), Data::Count(1)]),
                EventError::NotAMessage,
            ),
            (
                v(vec![Data::Count(2), Data::Count(1), ok_content.clone()]),
                EventError::Version,
            ),
            (
                v(vec![Data::Count(1), Data::Count(2), ok_content.clone()]),
                EventError::NotAnEvent,
            ),
            (
                v(vec![Data::Count(1), Data::Integer(1), ok_content.clone()]),
                EventError::NotAnEvent,
            ),
            (
                v(vec![
                    Data::Count(1),
                    Data::Count(1),
                    v(vec![Data::string("e")]),
                ]),
                EventError::Content,
            ),
            (
                v(vec![
                    Data::Count(1),
                    Data::Count(1),
                    v(vec![Data::Count(3), v(vec![])]),
                ]),
                EventError::Name,
            ),
            (
                v(vec![
                    Data::Count(1),
                    Data::Count(1),
                    v(vec![Data::string("e"), Data::None]),
                ]),
                EventError::Args,
            ),
            (
                v(vec![
                    Data::Count(1),
                    Data::Count(1),
                    v(vec![
                        Data::string("e"),
                        v(vec![]),
                        v(vec![v(vec![Data::Integer(1), Data::None])]),
                    ]),
                ]),
                EventError::Metadata,
            ),
            (
                v(vec![
                    Data::Count(1),
                    Data::Count(1),
                    v(vec![
                        Data::string("e"),
                        v(vec![]),
                        v(vec![v(vec![Data::Count(1), Data::Count(7)])]),
                    ]),
                ]),
                EventError::NetworkTimestamp,
            ),
        ];
        for (data, err) in cases {
            assert_eq!(
                EventRef::from_data(&data).err(),
                Some(err.clone()),
                "{data}"
            );
            assert_eq!(Event::from_data(&data), Err(err), "{data}");
        }
        // Empty metadata vector (Zeek 8) is valid.
        let empty = v(vec![
            Data::Count(1),
            Data::Count(1),
            v(vec![Data::string("e"), v(vec![]), v(vec![])]),
        ]);
        assert_eq!(Event::from_data(&empty).unwrap().metadata, Some(vec![]));
    }
}
