//! The Broker data model (ZB-25..31): fifteen types, type-sensitive equality and the total
//! ordering Broker uses, so that sets and tables are ordered containers and every encoder
//! emits their elements in the same order.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ValueError;

/// An ordered set of unique values (ZB-31).
pub type Set = BTreeSet<Data>;
/// An ordered map with unique keys (ZB-31).
pub type Table = BTreeMap<Data, Data>;

/// One Broker value. The variant order is the type tag (ZB-25) and the primary ordering key
/// (ZB-27): `None < Boolean < Count < ... < Vector`.
///
/// Strings hold bytes: Broker strings need not be UTF-8. [`Data::as_str`] gives the text when
/// it is valid UTF-8.
///
/// Equality and ordering are total so that any value can be a set element or table key.
/// Reals compare numerically, except that all NaNs are equal to each other and greater than
/// every other real (IEEE says `NaN != NaN`; a set could never find such an element again).
#[derive(Clone, Debug, Default)]
pub enum Data {
    /// `nil`, the default value.
    #[default]
    None,
    Boolean(bool),
    /// Unsigned 64-bit integer.
    Count(u64),
    /// Signed 64-bit integer.
    Integer(i64),
    /// IEEE-754 binary64.
    Real(f64),
    /// Arbitrary bytes, usually UTF-8 text.
    String(Vec<u8>),
    Address(Address),
    Subnet(Subnet),
    Port(Port),
    Timestamp(Timestamp),
    Timespan(Timespan),
    /// An enum value: just its name, e.g. `Foo::BAR`.
    Enum(String),
    Set(Set),
    Table(Table),
    /// A sequence; Zeek records and events are vectors too.
    Vector(Vec<Data>),
}

/// The fifteen type tags, in Broker's order (ZB-25).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum DataType {
    None = 0,
    Boolean = 1,
    Count = 2,
    Integer = 3,
    Real = 4,
    String = 5,
    Address = 6,
    Subnet = 7,
    Port = 8,
    Timestamp = 9,
    Timespan = 10,
    Enum = 11,
    Set = 12,
    Table = 13,
    Vector = 14,
}

impl DataType {
    /// Every type, in tag order.
    pub const ALL: [DataType; 15] = [
        DataType::None,
        DataType::Boolean,
        DataType::Count,
        DataType::Integer,
        DataType::Real,
        DataType::String,
        DataType::Address,
        DataType::Subnet,
        DataType::Port,
        DataType::Timestamp,
        DataType::Timespan,
        DataType::Enum,
        DataType::Set,
        DataType::Table,
        DataType::Vector,
    ];

    /// The type for a binary tag byte.
    pub fn from_tag(tag: u8) -> Option<DataType> {
        DataType::ALL.get(usize::from(tag)).copied()
    }

    /// The `@data-type` name used by Broker's JSON encoding (ZB-39).
    pub fn name(self) -> &'static str {
        match self {
            DataType::None => "none",
            DataType::Boolean => "boolean",
            DataType::Count => "count",
            DataType::Integer => "integer",
            DataType::Real => "real",
            DataType::String => "string",
            DataType::Address => "address",
            DataType::Subnet => "subnet",
            DataType::Port => "port",
            DataType::Timestamp => "timestamp",
            DataType::Timespan => "timespan",
            DataType::Enum => "enum-value",
            DataType::Set => "set",
            DataType::Table => "table",
            DataType::Vector => "vector",
        }
    }

    /// The type for a `@data-type` name.
    pub fn from_name(name: &str) -> Option<DataType> {
        DataType::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// Deepest nesting of containers (sets, tables, vectors) a value may have to enter a gateway.
/// Every decoder (binary, native JSON, Zeek JSON) reads values this deep inside any message,
/// so a value accepted from one client can be delivered to all others, whatever their
/// encoding. A scalar has nesting 0, `[1]` has 1, `[[1]]` has 2.
pub const MAX_NESTING: usize = 32;

/// The error text for a value nested deeper than [`MAX_NESTING`].
pub fn too_deep_text() -> String {
    format!("value nested deeper than {MAX_NESTING} levels")
}

impl Data {
    /// How deeply containers nest in this value (0 for a scalar); stops counting past
    /// `limit + 1`, so a check against `limit` costs at most that much recursion.
    pub fn nesting(&self, limit: usize) -> usize {
        fn walk(d: &Data, depth: usize, limit: usize) -> usize {
            if depth > limit {
                return depth;
            }
            let inner = |it: &mut dyn Iterator<Item = &Data>| {
                it.map(|c| walk(c, depth + 1, limit))
                    .max()
                    .unwrap_or(depth + 1)
            };
            match d {
                Data::Vector(v) => inner(&mut v.iter()),
                Data::Set(s) => inner(&mut s.iter()),
                Data::Table(t) => inner(&mut t.iter().flat_map(|(k, v)| [k, v])),
                _ => depth,
            }
        }
        walk(self, 0, limit)
    }

    /// True if this value nests deeper than [`MAX_NESTING`].
    pub fn too_deep(&self) -> bool {
        self.nesting(MAX_NESTING) > MAX_NESTING
    }

    /// The value's type tag.
    pub fn data_type(&self) -> DataType {
        match self {
            Data::None => DataType::None,
            Data::Boolean(_) => DataType::Boolean,
            Data::Count(_) => DataType::Count,
            Data::Integer(_) => DataType::Integer,
            Data::Real(_) => DataType::Real,
            Data::String(_) => DataType::String,
            Data::Address(_) => DataType::Address,
            Data::Subnet(_) => DataType::Subnet,
            Data::Port(_) => DataType::Port,
            Data::Timestamp(_) => DataType::Timestamp,
            Data::Timespan(_) => DataType::Timespan,
            Data::Enum(_) => DataType::Enum,
            Data::Set(_) => DataType::Set,
            Data::Table(_) => DataType::Table,
            Data::Vector(_) => DataType::Vector,
        }
    }

    /// A string value from text.
    pub fn string(s: impl Into<String>) -> Data {
        Data::String(s.into().into_bytes())
    }

    /// An enum value from its name.
    pub fn enum_value(name: impl Into<String>) -> Data {
        Data::Enum(name.into())
    }

    /// The text of a string value, if it is one and is valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Data::String(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// The elements of a vector value.
    pub fn as_vector(&self) -> Option<&[Data]> {
        match self {
            Data::Vector(v) => Some(v),
            _ => None,
        }
    }

    /// Nesting depth: 0 for scalars and empty containers' contents, 1 + max child depth for
    /// containers.
    pub fn depth(&self) -> usize {
        match self {
            Data::Set(s) => 1 + s.iter().map(Data::depth).max().unwrap_or(0),
            Data::Table(t) => {
                1 + t
                    .iter()
                    .map(|(k, v)| k.depth().max(v.depth()))
                    .max()
                    .unwrap_or(0)
            }
            Data::Vector(v) => 1 + v.iter().map(Data::depth).max().unwrap_or(0),
            _ => 0,
        }
    }
}

/// Real ordering: numeric, `-0.0 == 0.0`, every NaN equal to every other NaN and above +inf.
fn cmp_real(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

impl Ord for Data {
    fn cmp(&self, other: &Self) -> Ordering {
        use Data::*;
        match (self, other) {
            (None, None) => Ordering::Equal,
            (Boolean(a), Boolean(b)) => a.cmp(b),
            (Count(a), Count(b)) => a.cmp(b),
            (Integer(a), Integer(b)) => a.cmp(b),
            (Real(a), Real(b)) => cmp_real(*a, *b),
            (String(a), String(b)) => a.cmp(b),
            (Address(a), Address(b)) => a.cmp(b),
            (Subnet(a), Subnet(b)) => a.cmp(b),
            (Port(a), Port(b)) => a.cmp(b),
            (Timestamp(a), Timestamp(b)) => a.cmp(b),
            (Timespan(a), Timespan(b)) => a.cmp(b),
            (Enum(a), Enum(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Set(a), Set(b)) => a.iter().cmp(b.iter()),
            (Table(a), Table(b)) => a.iter().cmp(b.iter()),
            (Vector(a), Vector(b)) => a.iter().cmp(b.iter()),
            _ => self.data_type().cmp(&other.data_type()),
        }
    }
}

impl PartialOrd for Data {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Data {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Data {}

impl Hash for Data {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u8(self.data_type() as u8);
        match self {
            Data::None => {}
            Data::Boolean(b) => b.hash(state),
            Data::Count(c) => c.hash(state),
            Data::Integer(i) => i.hash(state),
            Data::Real(r) => {
                // Consistent with cmp_real: one hash for all NaNs and for both zeros.
                let canonical = if r.is_nan() {
                    f64::NAN.to_bits()
                } else if *r == 0.0 {
                    0
                } else {
                    r.to_bits()
                };
                canonical.hash(state)
            }
            Data::String(s) => s.hash(state),
            Data::Address(a) => a.hash(state),
            Data::Subnet(s) => s.hash(state),
            Data::Port(p) => p.hash(state),
            Data::Timestamp(t) => t.hash(state),
            Data::Timespan(t) => t.hash(state),
            Data::Enum(e) => e.hash(state),
            Data::Set(s) => s.iter().for_each(|d| d.hash(state)),
            Data::Table(t) => t.iter().for_each(|(k, v)| {
                k.hash(state);
                v.hash(state)
            }),
            Data::Vector(v) => v.iter().for_each(|d| d.hash(state)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Conversions from plain Rust values.

impl From<bool> for Data {
    fn from(v: bool) -> Self {
        Data::Boolean(v)
    }
}
impl From<u64> for Data {
    fn from(v: u64) -> Self {
        Data::Count(v)
    }
}
impl From<i64> for Data {
    fn from(v: i64) -> Self {
        Data::Integer(v)
    }
}
impl From<f64> for Data {
    fn from(v: f64) -> Self {
        Data::Real(v)
    }
}
impl From<&str> for Data {
    fn from(v: &str) -> Self {
        Data::String(v.as_bytes().to_vec())
    }
}
impl From<String> for Data {
    fn from(v: String) -> Self {
        Data::String(v.into_bytes())
    }
}
impl From<Address> for Data {
    fn from(v: Address) -> Self {
        Data::Address(v)
    }
}
impl From<Subnet> for Data {
    fn from(v: Subnet) -> Self {
        Data::Subnet(v)
    }
}
impl From<Port> for Data {
    fn from(v: Port) -> Self {
        Data::Port(v)
    }
}
impl From<Timestamp> for Data {
    fn from(v: Timestamp) -> Self {
        Data::Timestamp(v)
    }
}
impl From<Timespan> for Data {
    fn from(v: Timespan) -> Self {
        Data::Timespan(v)
    }
}
impl From<Vec<Data>> for Data {
    fn from(v: Vec<Data>) -> Self {
        Data::Vector(v)
    }
}
impl From<Set> for Data {
    fn from(v: Set) -> Self {
        Data::Set(v)
    }
}
impl From<Table> for Data {
    fn from(v: Table) -> Self {
        Data::Table(v)
    }
}

// ---------------------------------------------------------------------------------------------
// Address, subnet, port, time.

const V4_MAPPED_PREFIX: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

/// An IP address, stored as 16 bytes; IPv4 addresses are IPv4-mapped (`::ffff:a.b.c.d`), so
/// addresses order by their 16-byte form (ZB-27, ZB-28).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Address(pub [u8; 16]);

impl Address {
    /// The 16-byte network-order form.
    pub fn octets(&self) -> [u8; 16] {
        self.0
    }

    /// True for IPv4 (IPv4-mapped) addresses.
    pub fn is_v4(&self) -> bool {
        self.0[..12] == V4_MAPPED_PREFIX
    }

    /// The address as a standard library value.
    pub fn to_ip(&self) -> IpAddr {
        if self.is_v4() {
            IpAddr::V4(Ipv4Addr::new(
                self.0[12], self.0[13], self.0[14], self.0[15],
            ))
        } else {
            IpAddr::V6(Ipv6Addr::from(self.0))
        }
    }

    /// The address with all bits after the first `len` (counted in the 128-bit form) cleared.
    fn masked(&self, len: u8) -> Address {
        let mut out = self.0;
        for (i, byte) in out.iter_mut().enumerate() {
            let bit = (i * 8) as u32;
            let keep = u32::from(len).saturating_sub(bit).min(8);
            *byte &= if keep == 0 { 0 } else { 0xffu8 << (8 - keep) };
        }
        Address(out)
    }
}

impl From<IpAddr> for Address {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Address(v4.to_ipv6_mapped().octets()),
            IpAddr::V6(v6) => Address(v6.octets()),
        }
    }
}
impl From<Ipv4Addr> for Address {
    fn from(ip: Ipv4Addr) -> Self {
        Address::from(IpAddr::V4(ip))
    }
}
impl From<Ipv6Addr> for Address {
    fn from(ip: Ipv6Addr) -> Self {
        Address::from(IpAddr::V6(ip))
    }
}

impl FromStr for Address {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        s.parse::<IpAddr>()
            .map(Address::from)
            .map_err(|_| ValueError::Address(s.to_owned()))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_ip().fmt(f)
    }
}

/// A subnet: a masked network address and a prefix length (ZB-28). The length is kept in the
/// 128-bit form (IPv4 lengths + 96), which is the ordering key together with the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Subnet {
    network: Address,
    len128: u8,
}

impl Subnet {
    /// A subnet of `address` with a prefix length in the address's own family (0..=32 for
    /// IPv4, 0..=128 for IPv6). The network is masked. Broker turns an invalid length into
    /// `::/0`; we reject it.
    pub fn new(address: Address, prefix_len: u8) -> Result<Subnet, ValueError> {
        let len128 = if address.is_v4() {
            if prefix_len > 32 {
                return Err(ValueError::PrefixLength(prefix_len, 32));
            }
            prefix_len + 96
        } else {
            if prefix_len > 128 {
                return Err(ValueError::PrefixLength(prefix_len, 128));
            }
            prefix_len
        };
        Ok(Subnet {
            network: address.masked(len128),
            len128,
        })
    }

    /// From the 128-bit form of the length, as stored on the wire.
    pub fn from_raw(address: Address, len128: u8) -> Result<Subnet, ValueError> {
        if len128 > 128 || (address.is_v4() && len128 < 96) {
            return Err(ValueError::PrefixLength(len128, 128));
        }
        Ok(Subnet {
            network: address.masked(len128),
            len128,
        })
    }

    /// The (masked) network address.
    pub fn network(&self) -> Address {
        self.network
    }

    /// The prefix length in the network's own family.
    pub fn prefix_len(&self) -> u8 {
        if self.network.is_v4() {
            self.len128 - 96
        } else {
            self.len128
        }
    }

    /// The prefix length in the 128-bit form.
    pub fn raw_len(&self) -> u8 {
        self.len128
    }

    /// True if `addr` lies in this subnet.
    pub fn contains(&self, addr: &Address) -> bool {
        addr.masked(self.len128) == self.network
    }
}

impl FromStr for Subnet {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let bad = || ValueError::Subnet(s.to_owned());
        let (addr, len) = s.split_once('/').ok_or_else(bad)?;
        let addr: Address = addr.parse().map_err(|_| bad())?;
        if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let len: u8 = len.parse().map_err(|_| bad())?;
        Subnet::new(addr, len)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len())
    }
}

/// Transport protocol of a port (ZB-29).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(u8)]
pub enum Protocol {
    #[default]
    Unknown = 0,
    Tcp = 1,
    Udp = 2,
    Icmp = 3,
}

impl Protocol {
    /// From the wire code.
    pub fn from_code(code: u8) -> Option<Protocol> {
        match code {
            0 => Some(Protocol::Unknown),
            1 => Some(Protocol::Tcp),
            2 => Some(Protocol::Udp),
            3 => Some(Protocol::Icmp),
            _ => None,
        }
    }

    /// The text form: `tcp`, `udp`, `icmp` or `?`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Unknown => "?",
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
        }
    }
}

/// A transport-layer port: number and protocol, ordered by (number, protocol code).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Port {
    pub number: u16,
    pub protocol: Protocol,
}

impl Port {
    pub fn new(number: u16, protocol: Protocol) -> Port {
        Port { number, protocol }
    }
}

impl FromStr for Port {
    type Err = ValueError;
    /// Accepts `N` (TCP, as Broker does) and `N/tcp|udp|icmp|?`. Unlike Broker, an unknown
    /// protocol or a number above 65535 is an error, not `?` or a wrapped number.
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let bad = || ValueError::Port(s.to_owned());
        let (num, proto) = match s.split_once('/') {
            Some((n, p)) => (n, p),
            None => (s, "tcp"),
        };
        if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let number: u16 = num.parse().map_err(|_| bad())?;
        let protocol = match proto {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "icmp" => Protocol::Icmp,
            "?" => Protocol::Unknown,
            _ => return Err(bad()),
        };
        Ok(Port { number, protocol })
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.number, self.protocol.as_str())
    }
}

/// Nanoseconds since 1970-01-01T00:00:00Z (ZB-30).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Timestamp(pub i64);

/// A signed duration in nanoseconds (ZB-30).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Timespan(pub i64);

impl Timespan {
    pub const fn from_secs(s: i64) -> Timespan {
        Timespan(s.saturating_mul(1_000_000_000))
    }
    pub const fn from_millis(ms: i64) -> Timespan {
        Timespan(ms.saturating_mul(1_000_000))
    }
}

impl Timestamp {
    /// The timestamp `span` later, or `None` on overflow.
    pub fn checked_add(self, span: Timespan) -> Option<Timestamp> {
        self.0.checked_add(span.0).map(Timestamp)
    }
}

impl std::ops::Add<Timespan> for Timestamp {
    type Output = Timestamp;
    /// Saturating: the result of adding past the representable range is the range's end.
    fn add(self, rhs: Timespan) -> Timestamp {
        Timestamp(self.0.saturating_add(rhs.0))
    }
}

// ---------------------------------------------------------------------------------------------
// Debug text rendering (ZB-32): for logs only, never parsed.

impl fmt::Display for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn list<'a>(
            f: &mut fmt::Formatter<'_>,
            open: &str,
            close: &str,
            items: impl Iterator<Item = &'a Data>,
        ) -> fmt::Result {
            f.write_str(open)?;
            for (i, d) in items.enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{d}")?;
            }
            f.write_str(close)
        }
        match self {
            Data::None => f.write_str("nil"),
            Data::Boolean(b) => f.write_str(if *b { "T" } else { "F" }),
            Data::Count(c) => write!(f, "{c}"),
            Data::Integer(i) => write!(f, "{i}"),
            Data::Real(r) => write!(f, "{r:.6}"),
            Data::String(s) => f.write_str(&String::from_utf8_lossy(s)),
            Data::Address(a) => write!(f, "{a}"),
            Data::Subnet(s) => write!(f, "{s}"),
            Data::Port(p) => write!(f, "{p}"),
            Data::Timestamp(t) => write!(f, "{}ns", t.0),
            Data::Timespan(t) => write!(f, "{}ns", t.0),
            Data::Enum(e) => f.write_str(e),
            Data::Set(s) => list(f, "{", "}", s.iter()),
            Data::Table(t) => {
                f.write_str("{")?;
                for (i, (k, v)) in t.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k} -> {v}")?;
                }
                f.write_str("}")
            }
            Data::Vector(v) => list(f, "(", ")", v.iter()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Address {
        s.parse().unwrap()
    }

    #[test]
    fn zb26_equality_is_type_sensitive() {
        assert_ne!(Data::Count(1), Data::Integer(1));
        assert_ne!(Data::Integer(1), Data::Real(1.0));
        assert_ne!(Data::string("X"), Data::enum_value("X"));
        assert_ne!(
            Data::Port(Port::new(80, Protocol::Tcp)),
            Data::Port(Port::new(80, Protocol::Udp))
        );
        assert_eq!(Data::Real(f64::NAN), Data::Real(f64::NAN));
        assert_eq!(Data::Real(0.0), Data::Real(-0.0));
    }

    #[test]
    fn zb27_ordering_by_tag_then_value() {
        assert!(Data::Count(5) < Data::Integer(-3));
        assert!(Data::Integer(100) < Data::Real(0.5));
        assert!(Data::None < Data::Boolean(false));
        assert!(Data::Boolean(false) < Data::Boolean(true));
        assert!(Data::Address(addr("::1")) < Data::Address(addr("1.2.3.4")));
        assert!(Data::Address(addr("1.2.3.4")) < Data::Address(addr("2001:db8::")));
        assert!(Data::Real(f64::INFINITY) < Data::Real(f64::NAN));
        assert!(Data::Vector(vec![]) > Data::Table(Table::new()));
        let set: Set = ["b", "a", "c"].into_iter().map(Data::from).collect();
        let order: Vec<_> = set.iter().map(|d| d.as_str().unwrap()).collect();
        assert_eq!(order, ["a", "b", "c"]);
    }

    #[test]
    fn zb28_addresses_and_subnets() {
        assert_eq!(addr("192.168.1.1").to_string(), "192.168.1.1");
        assert_eq!(addr("2001:DB8:0::").to_string(), "2001:db8::");
        assert!(addr("10.0.0.1").is_v4());
        let s: Subnet = "10.1.2.3/8".parse().unwrap();
        assert_eq!(s.to_string(), "10.0.0.0/8");
        assert_eq!(s.raw_len(), 104);
        assert!(s.contains(&addr("10.200.0.1")));
        assert!(!s.contains(&addr("11.0.0.1")));
        assert!("10.0.0.0/33".parse::<Subnet>().is_err());
        assert!("2001:db8::/129".parse::<Subnet>().is_err());
        assert_eq!(
            "2001:db8:ff::/32".parse::<Subnet>().unwrap().to_string(),
            "2001:db8::/32"
        );
        assert!("1.2.3.4".parse::<Subnet>().is_err());
        assert!("1.2.3.4/".parse::<Subnet>().is_err());
        assert!("123ns".parse::<Address>().is_err());
    }

    #[test]
    fn zb29_ports() {
        assert_eq!("80".parse::<Port>().unwrap(), Port::new(80, Protocol::Tcp));
        assert_eq!("53/udp".parse::<Port>().unwrap().to_string(), "53/udp");
        assert_eq!("0/?".parse::<Port>().unwrap().protocol, Protocol::Unknown);
        assert!("80/xyz".parse::<Port>().is_err());
        assert!("65536/tcp".parse::<Port>().is_err());
        assert!("-1/tcp".parse::<Port>().is_err());
    }

    #[test]
    fn zb30_time_arithmetic() {
        let t = Timestamp(1_000) + Timespan::from_secs(2);
        assert_eq!(t, Timestamp(2_000_001_000));
        assert_eq!(Timestamp(i64::MAX).checked_add(Timespan(1)), None);
    }

    #[test]
    fn zb32_text_rendering() {
        let v = Data::Vector(vec![
            Data::Real(-7.5),
            Data::Boolean(true),
            Data::Port(Port::new(53, Protocol::Udp)),
        ]);
        assert_eq!(v.to_string(), "(-7.500000, T, 53/udp)");
    }
}
