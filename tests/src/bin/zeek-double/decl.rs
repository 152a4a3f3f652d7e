//! Event declarations: which events the double accepts from clients, and the argument types
//! it checks, the way Zeek's `to_zeek_event` checks a client's event against the script-level
//! declaration (`data_to_val` per argument).
//!
//! ```text
//! SPEC   := NAME | NAME '(' [TYPE {',' TYPE}] ')'     NAME alone: any arguments
//! TYPE   := any | none | boolean | count | integer | real | string | address | subnet
//!         | port | timestamp | timespan | enum-value | set | table | vector
//!         | vector '<' TYPE '>'                       every element of that type
//!         | '[' TYPE {',' TYPE} ']'                   a record: a vector with at least these
//!                                                     fields, each of its type or none
//! Zeek's names work too: bool int double addr time interval enum.
//! ```

use std::collections::HashMap;

use broker_wasm::{Data, DataType};

/// Declared before any `--event` unless `--no-default-events` is given.
pub const DEFAULTS: [&str; 2] = [
    // Cluster::table_change_infos(tcheader: TableChangeHeader, tcinfos: TableChangeInfos)
    "Cluster::table_change_infos([string,timestamp,string],vector<[enum-value,timestamp,vector,any,any]>)",
    // The end marker of zeek/broker-gateway.zeek.
    "BrokerGateway::table_published(string)",
];

/// An argument type.
#[derive(Debug, Clone, PartialEq)]
pub enum Ty {
    Any,
    Base(DataType),
    VectorOf(Box<Ty>),
    Record(Vec<Ty>),
}

impl Ty {
    /// Whether `d` converts to this type (Zeek's `data_to_val` rules, as far as Broker data
    /// can tell: a record field may be `none`, extra trailing fields are ignored).
    pub fn accepts(&self, d: &Data) -> bool {
        match self {
            Ty::Any => true,
            Ty::Base(t) => d.data_type() == *t,
            Ty::VectorOf(t) => d
                .as_vector()
                .is_some_and(|v| v.iter().all(|x| t.accepts(x))),
            Ty::Record(fields) => d.as_vector().is_some_and(|v| {
                v.len() >= fields.len()
                    && fields
                        .iter()
                        .zip(v)
                        .all(|(f, x)| matches!(x, Data::None) || f.accepts(x))
            }),
        }
    }
}

/// The declared events: name -> argument types (`None`: any arguments).
#[derive(Debug, Default)]
pub struct Decls(HashMap<String, Option<Vec<Ty>>>);

impl Decls {
    /// Adds (or replaces) a declaration.
    pub fn declare(&mut self, spec: &str) -> Result<(), String> {
        let (name, args) = parse_spec(spec)?;
        self.0.insert(name, args);
        Ok(())
    }

    /// Whether an event `name(args)` may be published.
    pub fn accepts(&self, name: &str, args: &[Data]) -> bool {
        match self.0.get(name) {
            None => false,
            Some(None) => true,
            Some(Some(types)) => {
                types.len() == args.len() && types.iter().zip(args).all(|(t, a)| t.accepts(a))
            }
        }
    }
}

fn parse_spec(spec: &str) -> Result<(String, Option<Vec<Ty>>), String> {
    let spec = spec.trim();
    let Some(open) = spec.find('(') else {
        check_name(spec)?;
        return Ok((spec.to_owned(), None));
    };
    let name = spec[..open].trim();
    check_name(name)?;
    let inner = spec[open + 1..]
        .strip_suffix(')')
        .ok_or_else(|| format!("`{spec}`: missing `)` at the end"))?;
    let args = if inner.trim().is_empty() {
        Vec::new()
    } else {
        split_top(inner)?
            .into_iter()
            .map(parse_ty)
            .collect::<Result<_, _>>()?
    };
    Ok((name.to_owned(), Some(args)))
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.contains(|c: char| c.is_whitespace() || "()<>[],".contains(c)) {
        return Err(format!("bad event name `{name}`"));
    }
    Ok(())
}

/// Splits at the commas that are not inside `<>` or `[]`.
fn split_top(s: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '<' | '[' => depth += 1,
            '>' | ']' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if depth < 0 {
            return Err(format!("unbalanced brackets in `{s}`"));
        }
    }
    if depth != 0 {
        return Err(format!("unbalanced brackets in `{s}`"));
    }
    parts.push(&s[start..]);
    Ok(parts)
}

fn parse_ty(s: &str) -> Result<Ty, String> {
    let s = s.trim();
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        let fields = split_top(inner)?
            .into_iter()
            .map(parse_ty)
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Ty::Record(fields));
    }
    if let Some(inner) = s.strip_prefix("vector<").and_then(|r| r.strip_suffix('>')) {
        return Ok(Ty::VectorOf(Box::new(parse_ty(inner)?)));
    }
    let name = match s {
        "any" => return Ok(Ty::Any),
        "bool" => "boolean",
        "int" => "integer",
        "double" => "real",
        "addr" => "address",
        "time" => "timestamp",
        "interval" => "timespan",
        "enum" => "enum-value",
        other => other,
    };
    DataType::from_name(name)
        .map(Ty::Base)
        .ok_or_else(|| format!("unknown type `{s}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        let mut d = Decls::default();
        for s in DEFAULTS {
            d.declare(s).unwrap();
        }
        d.declare("ping(string, count)").unwrap();
        d.declare("free").unwrap();
        d.declare("none()").unwrap();
        assert!(d.accepts("ping", &[Data::string("a"), Data::Count(1)]));
        assert!(!d.accepts("ping", &[Data::Count(1), Data::string("a")]));
        assert!(!d.accepts("ping", &[Data::string("a")]));
        assert!(d.accepts("free", &[Data::Count(1)]));
        assert!(d.accepts("none", &[]));
        assert!(!d.accepts("other", &[]));
        let header = Data::Vector(vec![
            Data::string("T"),
            Data::Timestamp(broker_wasm::Timestamp(0)),
            Data::string("n"),
        ]);
        let info = Data::Vector(vec![
            Data::Enum("TABLE_ELEMENT_NEW".into()),
            Data::Timestamp(broker_wasm::Timestamp(0)),
            Data::Vector(vec![Data::Count(1)]),
            Data::Count(2),
            Data::None,
        ]);
        let infos = Data::Vector(vec![info.clone(), info]);
        assert!(d.accepts("Cluster::table_change_infos", &[header.clone(), infos]));
        let bad = Data::Vector(vec![Data::Count(1)]);
        assert!(!d.accepts("Cluster::table_change_infos", &[header, bad]));
        assert!(d.declare("x(vector<count>").is_err());
        assert!(d.declare("x(money)").is_err());
        assert!(d.declare("x([count)").is_err());
    }
}
