//! Connection handling: one native-protocol client ([`native`]), one Zeek JSON API client
//! ([`zeek`]), the keepalive of every connection ([`keepalive`]) and the limits they share
//! ([`limits`]). Peer links have their driver in [`crate::peering::link`].

pub(crate) mod keepalive;
pub(crate) mod limits;
pub(crate) mod native;
pub(crate) mod zeek;
