//! Broker's status codes (SC, ZB-21) and error codes (EC, ZB-22), with their numbers and the
//! text names that travel in JSON (`"code":"deserialization_failed"`).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! code_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $num:literal => $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[repr(u8)]
        pub enum $name {
            $($variant = $num,)*
        }

        impl $name {
            /// Every code, in numeric order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The numeric value.
            pub fn code(self) -> u8 {
                self as u8
            }

            /// The code for a number.
            pub fn from_code(code: u8) -> Option<$name> {
                match code {
                    $($num => Some($name::$variant),)*
                    _ => None,
                }
            }

            /// Broker's text name, e.g. `peer_added` or `invalid_data`.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// The code for a text name.
            pub fn from_name(name: &str) -> Option<$name> {
                match name {
                    $($text => Some($name::$variant),)*
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        /// Binary encodings carry the number, JSON carries the text name.
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.serialize_str(self.name())
                } else {
                    s.serialize_u8(self.code())
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                use serde::de::Error;
                if d.is_human_readable() {
                    let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                    $name::from_name(&name)
                        .ok_or_else(|| D::Error::custom(format!("unknown code `{name}`")))
                } else {
                    let code = u8::deserialize(d)?;
                    $name::from_code(code)
                        .ok_or_else(|| D::Error::custom(format!("unknown code {code}")))
                }
            }
        }
    };
}

code_enum! {
    /// Status codes (ZB-21): connectivity changes reported to status subscribers.
    StatusCode {
        Unspecified = 0 => "unspecified",
        PeerAdded = 1 => "peer_added",
        PeerRemoved = 2 => "peer_removed",
        PeerLost = 3 => "peer_lost",
        EndpointDiscovered = 4 => "endpoint_discovered",
        EndpointUnreachable = 5 => "endpoint_unreachable",
    }
}

code_enum! {
    /// Error codes (ZB-22), Broker 2.x numbering. `invalid_json` has no text name in Broker;
    /// we use `invalid_json`. `unauthorized` (42) is this project's own.
    ErrorCode {
        None = 0 => "none",
        Unspecified = 1 => "unspecified",
        PeerIncompatible = 2 => "peer_incompatible",
        PeerInvalid = 3 => "peer_invalid",
        PeerUnavailable = 4 => "peer_unavailable",
        PeerDisconnectDuringHandshake = 5 => "peer_disconnect_during_handshake",
        PeerTimeout = 6 => "peer_timeout",
        MasterExists = 7 => "master_exists",
        NoSuchMaster = 8 => "no_such_master",
        NoSuchKey = 9 => "no_such_key",
        RequestTimeout = 10 => "request_timeout",
        TypeClash = 11 => "type_clash",
        InvalidData = 12 => "invalid_data",
        BackendFailure = 13 => "backend_failure",
        StaleData = 14 => "stale_data",
        CannotOpenFile = 15 => "cannot_open_file",
        CannotWriteFile = 16 => "cannot_write_file",
        InvalidTopicKey = 17 => "invalid_topic_key",
        EndOfFile = 18 => "end_of_file",
        InvalidTag = 19 => "invalid_tag",
        InvalidMessage = 20 => "invalid_message",
        InvalidStatus = 21 => "invalid_status",
        ConversionFailed = 22 => "conversion_failed",
        ConsumerExists = 23 => "consumer_exists",
        ConnectionTimeout = 24 => "connection_timeout",
        BadMemberFunctionCall = 25 => "bad_member_function_call",
        RepeatedRequestId = 26 => "repeated_request_id",
        BrokenClone = 27 => "broken_clone",
        ShuttingDown = 28 => "shutting_down",
        InvalidPeeringRequest = 29 => "invalid_peering_request",
        RepeatedPeeringHandshakeRequest = 30 => "repeated_peering_handshake_request",
        UnexpectedHandshakeMessage = 31 => "unexpected_handshake_message",
        InvalidHandshakeState = 32 => "invalid_handshake_state",
        NoPathToPeer = 33 => "no_path_to_peer",
        NoConnectorAvailable = 34 => "no_connector_available",
        CannotOpenResource = 35 => "cannot_open_resource",
        SerializationFailed = 36 => "serialization_failed",
        DeserializationFailed = 37 => "deserialization_failed",
        WrongMagicNumber = 38 => "wrong_magic_number",
        RedundantConnection = 39 => "redundant_connection",
        LogicError = 40 => "logic_error",
        InvalidJson = 41 => "invalid_json",
        // Not in Broker: the connection's token does not allow the operation, or the token
        // is unknown, malformed or expired.
        Unauthorized = 42 => "unauthorized",
        // Not in Broker: a write to a store that mirrors a table of a Zeek node (`zeek:...`),
        // or a message Zeek would not take, refused before it is sent.
        ReadOnly = 43 => "read_only",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Broker's numbers and names, written out here rather than derived from the enums.
    const STATUS: [(u8, StatusCode, &str); 6] = [
        (0, StatusCode::Unspecified, "unspecified"),
        (1, StatusCode::PeerAdded, "peer_added"),
        (2, StatusCode::PeerRemoved, "peer_removed"),
        (3, StatusCode::PeerLost, "peer_lost"),
        (4, StatusCode::EndpointDiscovered, "endpoint_discovered"),
        (5, StatusCode::EndpointUnreachable, "endpoint_unreachable"),
    ];

    const ERRORS: [(u8, ErrorCode, &str); 44] = [
        (0, ErrorCode::None, "none"),
        (1, ErrorCode::Unspecified, "unspecified"),
        (2, ErrorCode::PeerIncompatible, "peer_incompatible"),
        (3, ErrorCode::PeerInvalid, "peer_invalid"),
        (4, ErrorCode::PeerUnavailable, "peer_unavailable"),
        (
            5,
            ErrorCode::PeerDisconnectDuringHandshake,
            "peer_disconnect_during_handshake",
        ),
        (6, ErrorCode::PeerTimeout, "peer_timeout"),
        (7, ErrorCode::MasterExists, "master_exists"),
        (8, ErrorCode::NoSuchMaster, "no_such_master"),
        (9, ErrorCode::NoSuchKey, "no_such_key"),
        (10, ErrorCode::RequestTimeout, "request_timeout"),
        (11, ErrorCode::TypeClash, "type_clash"),
        (12, ErrorCode::InvalidData, "invalid_data"),
        (13, ErrorCode::BackendFailure, "backend_failure"),
        (14, ErrorCode::StaleData, "stale_data"),
        (15, ErrorCode::CannotOpenFile, "cannot_open_file"),
        (16, ErrorCode::CannotWriteFile, "cannot_write_file"),
        (17, ErrorCode::InvalidTopicKey, "invalid_topic_key"),
        (18, ErrorCode::EndOfFile, "end_of_file"),
        (19, ErrorCode::InvalidTag, "invalid_tag"),
        (20, ErrorCode::InvalidMessage, "invalid_message"),
        (21, ErrorCode::InvalidStatus, "invalid_status"),
        (22, ErrorCode::ConversionFailed, "conversion_failed"),
        (23, ErrorCode::ConsumerExists, "consumer_exists"),
        (24, ErrorCode::ConnectionTimeout, "connection_timeout"),
        (
            25,
            ErrorCode::BadMemberFunctionCall,
            "bad_member_function_call",
        ),
        (26, ErrorCode::RepeatedRequestId, "repeated_request_id"),
        (27, ErrorCode::BrokenClone, "broken_clone"),
        (28, ErrorCode::ShuttingDown, "shutting_down"),
        (
            29,
            ErrorCode::InvalidPeeringRequest,
            "invalid_peering_request",
        ),
        (
            30,
            ErrorCode::RepeatedPeeringHandshakeRequest,
            "repeated_peering_handshake_request",
        ),
        (
            31,
            ErrorCode::UnexpectedHandshakeMessage,
            "unexpected_handshake_message",
        ),
        (
            32,
            ErrorCode::InvalidHandshakeState,
            "invalid_handshake_state",
        ),
        (33, ErrorCode::NoPathToPeer, "no_path_to_peer"),
        (
            34,
            ErrorCode::NoConnectorAvailable,
            "no_connector_available",
        ),
        (35, ErrorCode::CannotOpenResource, "cannot_open_resource"),
        (36, ErrorCode::SerializationFailed, "serialization_failed"),
        (
            37,
            ErrorCode::DeserializationFailed,
            "deserialization_failed",
        ),
        (38, ErrorCode::WrongMagicNumber, "wrong_magic_number"),
        (39, ErrorCode::RedundantConnection, "redundant_connection"),
        (40, ErrorCode::LogicError, "logic_error"),
        (41, ErrorCode::InvalidJson, "invalid_json"),
        (42, ErrorCode::Unauthorized, "unauthorized"),
        (43, ErrorCode::ReadOnly, "read_only"),
    ];

    #[test]
    fn zb21_status_codes_and_numbers() {
        assert_eq!(StatusCode::ALL, STATUS.map(|(_, c, _)| c));
        for (num, c, name) in STATUS {
            assert_eq!(c.code(), num, "{name}");
            assert_eq!(c.name(), name);
            assert_eq!(c.to_string(), name);
            assert_eq!(StatusCode::from_code(num), Some(c));
            assert_eq!(StatusCode::from_name(name), Some(c));
            assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{name}\""));
            assert_eq!(crate::binary::to_vec(&c).unwrap(), [num]);
        }
        assert_eq!(StatusCode::from_code(6), None);
        assert_eq!(StatusCode::from_name("Peer_Added"), None);
    }

    #[test]
    fn zb22_error_codes_and_names() {
        assert_eq!(ErrorCode::ALL, ERRORS.map(|(_, c, _)| c));
        for (num, c, name) in ERRORS {
            assert_eq!(c.code(), num, "{name}");
            assert_eq!(c.name(), name);
            assert_eq!(c.to_string(), name);
            assert_eq!(ErrorCode::from_code(num), Some(c));
            assert_eq!(ErrorCode::from_name(name), Some(c));
            // JSON carries the name, the binary encoding the number.
            assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{name}\""));
            assert_eq!(
                serde_json::from_str::<ErrorCode>(&format!("\"{name}\"")).unwrap(),
                c
            );
            assert_eq!(crate::binary::to_vec(&c).unwrap(), [num]);
            assert_eq!(crate::binary::from_slice::<ErrorCode>(&[num]).unwrap(), c);
        }
        assert_eq!(ErrorCode::from_code(44), None);
        assert_eq!(ErrorCode::from_code(255), None);
        assert_eq!(ErrorCode::from_name(""), None);
        assert_eq!(ErrorCode::from_name("Deserialization_Failed"), None);
    }
}
