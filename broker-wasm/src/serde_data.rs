//! serde support for [`Data`], in two shapes chosen by `is_human_readable()`:
//!
//! - Human-readable formats (JSON) get Broker's typed JSON encoding (ZB-39):
//!   `{"@data-type":"count","data":1}`, nested the same way. This is the value encoding of
//!   both the Zeek WebSocket API and the JSON form of our native frames. One extension: a
//!   string that is not valid UTF-8 has `data` as an array of byte values (JSON strings cannot
//!   carry raw bytes; Broker would emit invalid JSON).
//! - Binary formats get a compact tagged form: the type tag, then the payload.
//!
//! Both decoders reject duplicate set elements and table keys (ZB-31), out-of-range numbers,
//! and unparsable address/subnet/port/time strings.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeStruct, SerializeTuple, Serializer};
use serde::{Deserialize, Serialize};

use crate::data::{
    Address, Data, DataType, Port, Protocol, Set, Subnet, Table, Timespan, Timestamp,
};
use crate::timefmt;

/// The largest magnitude up to which every integer is exactly representable as a real.
const MAX_EXACT_INT_IN_F64: u64 = 1 << 53;

// ---------------------------------------------------------------------------------------------
// DataType: binary encodings carry the tag as an enum variant index, JSON the name.

impl Serialize for DataType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(self.name())
        } else {
            s.serialize_unit_variant("DataType", *self as u32, self.name())
        }
    }
}

struct DataTypeVisitor;

impl<'de> Visitor<'de> for DataTypeVisitor {
    type Value = DataType;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Broker data type")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<DataType, E> {
        DataType::from_name(v).ok_or_else(|| E::custom(format!("unknown @data-type `{v}`")))
    }
    fn visit_u32<E: de::Error>(self, v: u32) -> Result<DataType, E> {
        u8::try_from(v)
            .ok()
            .and_then(DataType::from_tag)
            .ok_or_else(|| E::custom(format!("unknown data type tag {v}")))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<DataType, E> {
        self.visit_u32(u32::try_from(v).unwrap_or(u32::MAX))
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<DataType, A::Error> {
        let (t, variant) = data.variant_seed(TagSeed)?;
        de::VariantAccess::unit_variant(variant)?;
        Ok(t)
    }
}

struct TagSeed;

impl<'de> DeserializeSeed<'de> for TagSeed {
    type Value = DataType;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<DataType, D::Error> {
        d.deserialize_identifier(DataTypeVisitor)
    }
}

const TYPE_NAMES: &[&str] = &[
    "none",
    "boolean",
    "count",
    "integer",
    "real",
    "string",
    "address",
    "subnet",
    "port",
    "timestamp",
    "timespan",
    "enum-value",
    "set",
    "table",
    "vector",
];

impl<'de> Deserialize<'de> for DataType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<DataType, D::Error> {
        if d.is_human_readable() {
            d.deserialize_str(DataTypeVisitor)
        } else {
            d.deserialize_enum("DataType", TYPE_NAMES, DataTypeVisitor)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Serialize

/// The payload of a value (the `data` member in JSON), without its type.
pub(crate) struct Payload<'a>(pub &'a Data);

struct Entry<'a>(&'a Data, &'a Data);

impl Serialize for Entry<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Entry", 2)?;
        st.serialize_field("key", self.0)?;
        st.serialize_field("value", self.1)?;
        st.end()
    }
}

impl Serialize for Payload<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let hr = s.is_human_readable();
        match self.0 {
            Data::None if hr => s.serialize_map(Some(0))?.end(),
            Data::None => s.serialize_unit(),
            Data::Boolean(b) => s.serialize_bool(*b),
            Data::Count(c) => s.serialize_u64(*c),
            Data::Integer(i) => s.serialize_i64(*i),
            Data::Real(r) => {
                if hr && !r.is_finite() {
                    return Err(serde::ser::Error::custom(format!(
                        "the real {r} has no JSON representation"
                    )));
                }
                s.serialize_f64(*r)
            }
            Data::String(bytes) => match (hr, std::str::from_utf8(bytes)) {
                (true, Ok(text)) => s.serialize_str(text),
                (true, Err(_)) => s.collect_seq(bytes.iter()),
                (false, _) => s.serialize_bytes(bytes),
            },
            Data::Address(a) if hr => s.collect_str(a),
            Data::Address(a) => a.0.serialize(s),
            Data::Subnet(n) if hr => s.collect_str(n),
            Data::Subnet(n) => {
                let mut t = s.serialize_tuple(2)?;
                t.serialize_element(&n.network().0)?;
                t.serialize_element(&n.raw_len())?;
                t.end()
            }
            Data::Port(p) if hr => s.collect_str(p),
            Data::Port(p) => {
                let mut t = s.serialize_tuple(2)?;
                t.serialize_element(&p.number)?;
                t.serialize_element(&(p.protocol as u8))?;
                t.end()
            }
            Data::Timestamp(t) if hr => s.serialize_str(&timefmt::format_timestamp(*t)),
            Data::Timestamp(t) => s.serialize_i64(t.0),
            Data::Timespan(t) if hr => s.serialize_str(&timefmt::format_timespan(*t)),
            Data::Timespan(t) => s.serialize_i64(t.0),
            Data::Enum(e) => s.serialize_str(e),
            Data::Set(set) => s.collect_seq(set.iter()),
            Data::Table(t) if hr => s.collect_seq(t.iter().map(|(k, v)| Entry(k, v))),
            Data::Table(t) => s.collect_map(t.iter()),
            Data::Vector(v) => s.collect_seq(v.iter()),
        }
    }
}

impl Serialize for Data {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            let mut m = s.serialize_map(Some(2))?;
            m.serialize_entry("@data-type", self.data_type().name())?;
            m.serialize_entry("data", &Payload(self))?;
            m.end()
        } else if let Data::None = self {
            let mut t = s.serialize_tuple(1)?;
            t.serialize_element(&DataType::None)?;
            t.end()
        } else {
            let mut t = s.serialize_tuple(2)?;
            t.serialize_element(&self.data_type())?;
            t.serialize_element(&Payload(self))?;
            t.end()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Deserialize

impl<'de> Deserialize<'de> for Data {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Data, D::Error> {
        if d.is_human_readable() {
            d.deserialize_map(JsonDataVisitor)
        } else {
            d.deserialize_tuple(2, BinaryDataVisitor)
        }
    }
}

fn parse_text<T, E: de::Error>(
    text: &str,
    parse: impl FnOnce(&str) -> Result<T, crate::error::ValueError>,
) -> Result<T, E> {
    parse(text).map_err(E::custom)
}

/// Decodes the payload of a value whose type is known.
struct PayloadSeed(DataType);

impl<'de> DeserializeSeed<'de> for PayloadSeed {
    type Value = Data;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Data, D::Error> {
        let hr = d.is_human_readable();
        Ok(match self.0 {
            DataType::None => {
                if hr {
                    IgnoredAny::deserialize(d)?;
                } else {
                    <()>::deserialize(d)?;
                }
                Data::None
            }
            DataType::Boolean => Data::Boolean(bool::deserialize(d)?),
            DataType::Count => Data::Count(u64::deserialize(d)?),
            DataType::Integer => Data::Integer(i64::deserialize(d)?),
            DataType::Real => Data::Real(d.deserialize_f64(RealVisitor)?),
            DataType::String => Data::String(if hr {
                d.deserialize_any(JsonStringVisitor)?
            } else {
                d.deserialize_byte_buf(ByteBufVisitor)?
            }),
            DataType::Enum => Data::Enum(String::deserialize(d)?),
            DataType::Address if hr => {
                Data::Address(parse_text(&<Cow<str>>::deserialize(d)?, str::parse)?)
            }
            DataType::Address => Data::Address(Address(<[u8; 16]>::deserialize(d)?)),
            DataType::Subnet if hr => {
                Data::Subnet(parse_text(&<Cow<str>>::deserialize(d)?, str::parse)?)
            }
            DataType::Subnet => {
                let (addr, len) = <([u8; 16], u8)>::deserialize(d)?;
                Data::Subnet(Subnet::from_raw(Address(addr), len).map_err(de::Error::custom)?)
            }
            DataType::Port if hr => {
                Data::Port(parse_text(&<Cow<str>>::deserialize(d)?, str::parse)?)
            }
            DataType::Port => {
                let (number, proto) = <(u16, u8)>::deserialize(d)?;
                let protocol = Protocol::from_code(proto)
                    .ok_or_else(|| de::Error::custom(format!("unknown port protocol {proto}")))?;
                Data::Port(Port { number, protocol })
            }
            DataType::Timestamp if hr => Data::Timestamp(parse_text(
                &<Cow<str>>::deserialize(d)?,
                timefmt::parse_timestamp,
            )?),
            DataType::Timestamp => Data::Timestamp(Timestamp(i64::deserialize(d)?)),
            DataType::Timespan if hr => Data::Timespan(parse_text(
                &<Cow<str>>::deserialize(d)?,
                timefmt::parse_timespan,
            )?),
            DataType::Timespan => Data::Timespan(Timespan(i64::deserialize(d)?)),
            DataType::Set => Data::Set(d.deserialize_seq(SetVisitor)?),
            DataType::Table if hr => Data::Table(d.deserialize_seq(TableEntriesVisitor)?),
            DataType::Table => Data::Table(d.deserialize_map(TableMapVisitor)?),
            DataType::Vector => Data::Vector(Vec::<Data>::deserialize(d)?),
        })
    }
}

struct BinaryDataVisitor;

impl<'de> Visitor<'de> for BinaryDataVisitor {
    type Value = Data;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a tagged Broker value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Data, A::Error> {
        let ty: DataType = seq
            .next_element()?
            .ok_or_else(|| de::Error::custom("missing data type tag"))?;
        if ty == DataType::None {
            return Ok(Data::None);
        }
        seq.next_element_seed(PayloadSeed(ty))?
            .ok_or_else(|| de::Error::custom("missing payload"))
    }
}

/// Collects the `@data-type` and `data` members of a JSON object, in either order. Shared by
/// value objects and by Zeek data messages, which inline the two members.
#[derive(Default)]
pub(crate) struct TypedSlot {
    ty: Option<DataType>,
    value: Option<Data>,
    /// `data` before `@data-type` has to wait for its type: kept as a JSON tree.
    early: Option<serde_json::Value>,
}

impl TypedSlot {
    /// Takes the value of an `@data-type` key.
    pub(crate) fn on_type<'de, A: MapAccess<'de>>(&mut self, map: &mut A) -> Result<(), A::Error> {
        if self.ty.is_some() {
            return Err(de::Error::duplicate_field("@data-type"));
        }
        self.ty = Some(map.next_value()?);
        Ok(())
    }

    /// Takes the value of a `data` key.
    pub(crate) fn on_data<'de, A: MapAccess<'de>>(&mut self, map: &mut A) -> Result<(), A::Error> {
        if self.value.is_some() || self.early.is_some() {
            return Err(de::Error::duplicate_field("data"));
        }
        match self.ty {
            Some(t) => self.value = Some(map.next_value_seed(PayloadSeed(t))?),
            None => self.early = Some(map.next_value()?),
        }
        Ok(())
    }

    /// The value, once the object has ended.
    pub(crate) fn finish<E: de::Error>(self) -> Result<Data, E> {
        let ty = self.ty.ok_or_else(|| E::missing_field("@data-type"))?;
        match (self.value, self.early) {
            (Some(v), _) => Ok(v),
            (None, Some(tree)) => PayloadSeed(ty).deserialize(tree).map_err(E::custom),
            (None, None) => Err(E::missing_field("data")),
        }
    }
}

struct JsonDataVisitor;

impl<'de> Visitor<'de> for JsonDataVisitor {
    type Value = Data;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"an object {"@data-type": ..., "data": ...}"#)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Data, A::Error> {
        let mut slot = TypedSlot::default();
        while let Some(key) = map.next_key::<Cow<str>>()? {
            match key.as_ref() {
                "@data-type" => slot.on_type(&mut map)?,
                "data" => slot.on_data(&mut map)?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        slot.finish()
    }
}

struct RealVisitor;

impl Visitor<'_> for RealVisitor {
    type Value = f64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }
    fn visit_f32<E: de::Error>(self, v: f32) -> Result<f64, E> {
        Ok(f64::from(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        if v > MAX_EXACT_INT_IN_F64 {
            return Err(E::custom(format!(
                "{v} is not exactly representable as a real"
            )));
        }
        Ok(v as f64)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        if v.unsigned_abs() > MAX_EXACT_INT_IN_F64 {
            return Err(E::custom(format!(
                "{v} is not exactly representable as a real"
            )));
        }
        Ok(v as f64)
    }
}

struct JsonStringVisitor;

impl<'de> Visitor<'de> for JsonStringVisitor {
    type Value = Vec<u8>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or an array of byte values")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
        Ok(v.as_bytes().to_vec())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Vec<u8>, E> {
        Ok(v.into_bytes())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(b) = seq.next_element::<u8>()? {
            out.push(b);
        }
        Ok(out)
    }
}

struct ByteBufVisitor;

impl Visitor<'_> for ByteBufVisitor {
    type Value = Vec<u8>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bytes")
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }
    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }
}

struct SetVisitor;

impl<'de> Visitor<'de> for SetVisitor {
    type Value = Set;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of unique values")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Set, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(elem) = seq.next_element::<Data>()? {
            items.push(elem);
        }
        build_set(items)
    }
}

/// Encoders emit sets and tables in order, so the common case is strictly ascending input,
/// which builds in linear time; anything else goes element by element to find duplicates.
fn build_set<E: de::Error>(items: Vec<Data>) -> Result<Set, E> {
    if items.windows(2).all(|w| w[0] < w[1]) {
        return Ok(items.into_iter().collect());
    }
    let mut set = Set::new();
    for elem in items {
        if let Some(dup) = set.replace(elem) {
            return Err(E::custom(format!("duplicate set element {dup}")));
        }
    }
    Ok(set)
}

fn build_table<E: de::Error>(entries: Vec<(Data, Data)>) -> Result<Table, E> {
    if entries.windows(2).all(|w| w[0].0 < w[1].0) {
        return Ok(entries.into_iter().collect());
    }
    let mut table = Table::new();
    for (k, v) in entries {
        insert_unique(&mut table, k, v)?;
    }
    Ok(table)
}

fn insert_unique<E: de::Error>(table: &mut Table, k: Data, v: Data) -> Result<(), E> {
    match table.entry(k) {
        std::collections::btree_map::Entry::Occupied(o) => {
            Err(E::custom(format!("duplicate table key {}", o.key())))
        }
        std::collections::btree_map::Entry::Vacant(slot) => {
            slot.insert(v);
            Ok(())
        }
    }
}

struct TableMapVisitor;

impl<'de> Visitor<'de> for TableMapVisitor {
    type Value = Table;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map with unique keys")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Table, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
        while let Some(entry) = map.next_entry::<Data, Data>()? {
            entries.push(entry);
        }
        build_table(entries)
    }
}

struct TableEntriesVisitor;

impl<'de> Visitor<'de> for TableEntriesVisitor {
    type Value = Table;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"an array of {"key": ..., "value": ...} objects"#)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Table, A::Error> {
        let mut entries = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(EntryOwned { key, value }) = seq.next_element()? {
            entries.push((key, value));
        }
        build_table(entries)
    }
}

#[derive(Deserialize)]
struct EntryOwned {
    key: Data,
    value: Data,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(d: &Data) -> String {
        serde_json::to_string(d).unwrap()
    }

    #[test]
    fn none_and_scalars() {
        assert_eq!(json(&Data::None), r#"{"@data-type":"none","data":{}}"#);
        assert_eq!(
            json(&Data::Real(-7.5)),
            r#"{"@data-type":"real","data":-7.5}"#
        );
        assert!(serde_json::to_string(&Data::Real(f64::NAN)).is_err());
        let d: Data = serde_json::from_str(r#"{"data":5,"@data-type":"count"}"#).unwrap();
        assert_eq!(d, Data::Count(5));
        let d: Data = serde_json::from_str(r#"{"@data-type":"real","data":1}"#).unwrap();
        assert_eq!(d, Data::Real(1.0));
        assert!(
            serde_json::from_str::<Data>(r#"{"@data-type":"real","data":9007199254740993}"#)
                .is_err()
        );
    }

    #[test]
    fn unsorted_containers_are_accepted_and_ordered() {
        let c = |n: u64| format!(r#"{{"@data-type":"count","data":{n}}}"#);
        let text = format!(
            r#"{{"@data-type":"set","data":[{},{},{}]}}"#,
            c(3),
            c(1),
            c(2)
        );
        let d: Data = serde_json::from_str(&text).unwrap();
        let want: Set = [1u64, 2, 3].into_iter().map(Data::Count).collect();
        assert_eq!(d, Data::Set(want));
        let entry = |k: u64| format!(r#"{{"key":{},"value":{}}}"#, c(k), c(k * 10));
        let text = format!(
            r#"{{"@data-type":"table","data":[{},{}]}}"#,
            entry(2),
            entry(1)
        );
        let Data::Table(t) = serde_json::from_str::<Data>(&text).unwrap() else {
            panic!()
        };
        assert_eq!(
            t.keys().cloned().collect::<Vec<_>>(),
            [Data::Count(1), Data::Count(2)]
        );
        let dup = format!(
            r#"{{"@data-type":"set","data":[{},{},{}]}}"#,
            c(3),
            c(1),
            c(3)
        );
        assert!(serde_json::from_str::<Data>(&dup).is_err());
    }

    #[test]
    fn non_utf8_strings_round_trip_as_byte_arrays() {
        let d = Data::String(vec![0xff, 0x00, b'a']);
        let text = json(&d);
        assert_eq!(text, r#"{"@data-type":"string","data":[255,0,97]}"#);
        assert_eq!(serde_json::from_str::<Data>(&text).unwrap(), d);
    }
}
