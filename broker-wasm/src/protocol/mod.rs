//! The native protocol: frames by direction, in a compact binary encoding and a JSON form.
//!
//! - [`ClientMsg`]: client -> gateway. [`ServerMsg`]: gateway -> client. [`PeerMsg`]: between
//!   two gateways, in both directions.
//! - A frame carries any number of messages (so a batch of publishes is one frame).
//!
//! Binary frame layout (protocol version 1):
//!
//! ```text
//! +---------+----------------------+------------------------------------------+
//! | version | body length (u32 LE) | body: varint count, then the messages     |
//! | 1 byte  | 4 bytes              | in the format of crate::binary            |
//! +---------+----------------------+------------------------------------------+
//! ```
//!
//! JSON form: `{"v":1,"messages":[...]}` with values in Broker's typed JSON encoding, e.g.
//! `{"v":1,"messages":[{"publish":{"topic":"/t","data":{"@data-type":"count","data":1}}}]}`.
//!
//! [`decode_binary`] tells "need more bytes" ([`DecodeError::Incomplete`]) from malformed input,
//! refuses frames over a size limit before buffering them, and never panics.

use std::fmt;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::binary;
use crate::codes::{ErrorCode, StatusCode};
use crate::data::{Data, Timespan, Timestamp};
use crate::error::{DecodeError, EncodeError};

/// The protocol version this crate speaks (first byte of every binary frame, `v` in JSON).
pub const PROTOCOL_VERSION: u8 = 1;
/// Bytes before the body of a binary frame.
pub const HEADER_LEN: usize = 5;
/// Default limit on a frame's body.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;
/// WebSocket subprotocol of the binary encoding.
pub const SUBPROTOCOL_BINARY: &str = "broker.v1.bin";
/// WebSocket subprotocol of the JSON encoding.
pub const SUBPROTOCOL_JSON: &str = "broker.v1.json";
/// HTTP path of the native protocol for clients (a gateway's WebSocket endpoint).
pub const CLIENT_PATH: &str = "/v1/broker";
/// HTTP path of the native protocol for peering gateways.
pub const PEER_PATH: &str = "/v1/peer";

// ---------------------------------------------------------------------------------------------
// Identities

/// An endpoint's identity: 16 random bytes, shown as a lower-case UUID
/// (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, ZB-01).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NodeId(pub [u8; 16]);

impl NodeId {
    /// A version-4 UUID from 16 random bytes supplied by the caller (the core does no I/O).
    pub fn from_random(mut bytes: [u8; 16]) -> NodeId {
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        NodeId(bytes)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

impl FromStr for NodeId {
    type Err = DecodeError;
    fn from_str(s: &str) -> Result<NodeId, DecodeError> {
        let bad = || DecodeError::Invalid(format!("invalid node id `{s}`"));
        let hex: Vec<u8> = s.bytes().filter(|&b| b != b'-').collect();
        let dashes_ok = s.len() == 36 && [8, 13, 18, 23].iter().all(|&i| s.as_bytes()[i] == b'-');
        if hex.len() != 32 || !dashes_ok {
            return Err(bad());
        }
        let mut out = [0u8; 16];
        for (i, pair) in hex.chunks(2).enumerate() {
            let text = std::str::from_utf8(pair).map_err(|_| bad())?;
            out[i] = u8::from_str_radix(text, 16).map_err(|_| bad())?;
        }
        Ok(NodeId(out))
    }
}

impl Serialize for NodeId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<NodeId, D::Error> {
        if d.is_human_readable() {
            let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            <[u8; 16]>::deserialize(d).map(NodeId)
        }
    }
}

/// Where an endpoint is (ZB-20, ZB-24): its id and, if known, its network address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointInfo {
    pub node: Option<NodeId>,
    pub network: Option<NetworkInfo>,
}

/// A host and port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    pub address: String,
    pub port: u16,
}

// ---------------------------------------------------------------------------------------------
// Shared payloads

/// A message on a topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Publish {
    pub topic: String,
    pub data: Data,
}

/// A status event (ZB-20, ZB-21).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub code: StatusCode,
    pub endpoint: Option<EndpointInfo>,
    pub message: String,
}

/// An error event or a failed request (ZB-22).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub code: ErrorCode,
    pub context: String,
}

/// Why a request failed: a Broker error code, or a Data Broker error code (`DBR_ERR_*`
/// number) for namespace operations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    Broker(ErrorInfo),
    Namespace { code: i32, context: String },
}

mod client_msg;
mod frame;
mod peer_msg;
mod server_msg;

pub use client_msg::*;
pub use frame::*;
pub use peer_msg::*;
pub use server_msg::*;

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(i: u64) -> ClientMsg {
        ClientMsg::Publish(Publish {
            topic: "/t".into(),
            data: Data::Vector(vec![Data::string("ping"), Data::Count(i)]),
        })
    }

    #[test]
    fn binary_frame_layout_and_batches() {
        let batch: Vec<_> = (0..3).map(publish).collect();
        let bytes = to_binary(&batch).unwrap();
        assert_eq!(bytes[0], PROTOCOL_VERSION);
        let len = u32::from_le_bytes(bytes[1..5].try_into().unwrap()) as usize;
        assert_eq!(len + HEADER_LEN, bytes.len());
        assert_eq!(bytes[5], 3, "message count");
        let (back, used) = decode_binary::<ClientMsg>(&bytes, DEFAULT_MAX_FRAME).unwrap();
        assert_eq!((back, used), (batch, bytes.len()));
    }

    #[test]
    fn streaming_decode_needs_more_then_succeeds() {
        let mut stream = to_binary(&[publish(1)]).unwrap();
        stream.extend(to_binary(&[publish(2), publish(3)]).unwrap());
        for cut in 0..stream.len() {
            match decode_binary::<ClientMsg>(&stream[..cut], DEFAULT_MAX_FRAME) {
                Err(DecodeError::Incomplete(n)) => assert!(n > 0),
                Ok((msgs, used)) => {
                    assert_eq!(msgs, vec![publish(1)]);
                    assert!(used <= cut);
                }
                Err(e) => panic!("cut {cut}: {e}"),
            }
        }
        let (_, used) = decode_binary::<ClientMsg>(&stream, DEFAULT_MAX_FRAME).unwrap();
        let (second, _) = decode_binary::<ClientMsg>(&stream[used..], DEFAULT_MAX_FRAME).unwrap();
        assert_eq!(second, vec![publish(2), publish(3)]);
    }

    #[test]
    fn limits_and_versions() {
        let frame = to_binary(&[publish(1)]).unwrap();
        let err = decode_binary::<ClientMsg>(&frame, 4).unwrap_err();
        assert!(matches!(err, DecodeError::TooLarge { max: 4, .. }));
        // The size check fires from the header alone, before the body arrives.
        let err = decode_binary::<ClientMsg>(&frame[..HEADER_LEN], 4).unwrap_err();
        assert!(matches!(err, DecodeError::TooLarge { .. }));
        let mut v2 = frame.clone();
        v2[0] = 2;
        assert_eq!(
            decode_binary::<ClientMsg>(&v2, DEFAULT_MAX_FRAME).unwrap_err(),
            DecodeError::UnsupportedVersion(2)
        );
        assert_eq!(
            from_json::<ClientMsg>(br#"{"v":7,"messages":[{"bogus":1}]}"#, DEFAULT_MAX_FRAME)
                .unwrap_err(),
            DecodeError::UnsupportedVersion(7)
        );
        assert_eq!(
            from_binary::<ClientMsg>(&frame[..frame.len() - 1], DEFAULT_MAX_FRAME).unwrap_err(),
            DecodeError::Truncated
        );
    }

    #[test]
    fn json_form() {
        let text = to_json(&[publish(7)]).unwrap();
        assert_eq!(
            std::str::from_utf8(&text).unwrap(),
            r#"{"v":1,"messages":[{"publish":{"topic":"/t","data":{"@data-type":"vector","data":[{"@data-type":"string","data":"ping"},{"@data-type":"count","data":7}]}}}]}"#
        );
        let back: Vec<ClientMsg> = from_json(&text, DEFAULT_MAX_FRAME).unwrap();
        assert_eq!(back, vec![publish(7)]);
    }

    #[test]
    fn publish_and_message_differ_in_the_first_byte() {
        let p = Publish {
            topic: "/a/b".into(),
            data: Data::Vector(vec![Data::Count(9)]),
        };
        let client = to_binary(&[ClientMsg::Publish(p.clone())]).unwrap();
        let server = to_binary(&[ServerMsg::Message(p.clone())]).unwrap();
        let mut seen = Vec::new();
        for_each_binary::<ClientMsg>(&client, DEFAULT_MAX_FRAME, |m, raw| {
            seen.push(m);
            assert_eq!(raw[0], CLIENT_PUBLISH_TAG);
            let mut swapped = raw.to_vec();
            swapped[0] = SERVER_MESSAGE_TAG;
            assert_eq!(&swapped[..], &server[HEADER_LEN + 1..]);
        })
        .unwrap();
        assert_eq!(
            &server_message_binary(&p).unwrap()[..],
            &server[HEADER_LEN + 1..]
        );
        assert_eq!(seen, vec![ClientMsg::Publish(p)]);
        // A frame assembled from raw messages equals the encoder's.
        let mut out = Vec::new();
        let start = begin_frame(&mut out);
        binary::write_varint(&mut out, 1);
        out.extend_from_slice(&server[HEADER_LEN + 1..]);
        finish_frame(&mut out, start);
        assert_eq!(out, server);
    }

    #[test]
    fn logged_message_from_publish_bytes_equals_the_encoder() {
        let p = Publish {
            topic: "/zeek/conn".into(),
            data: Data::Count(300),
        };
        let body = &server_message_binary(&p).unwrap()[1..];
        let msg = ServerMsg::Logged {
            history: 2,
            seq: 1_000_000,
            message: p,
        };
        assert_eq!(
            logged_message_binary(2, 1_000_000, body),
            binary::to_vec(&msg).unwrap()
        );
    }

    #[test]
    fn node_ids() {
        let id = NodeId::from_random([0xab; 16]);
        let text = id.to_string();
        assert_eq!(text, "abababab-abab-4bab-abab-abababababab");
        assert_eq!(text.parse::<NodeId>().unwrap(), id);
        assert!("abababab-abab-4bab-abab-ababababab"
            .parse::<NodeId>()
            .is_err());
        assert!("zzababab-abab-4bab-abab-abababababab"
            .parse::<NodeId>()
            .is_err());
    }
}
