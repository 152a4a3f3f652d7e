//! Typed errors, one enum per concern. Decoders keep "need more bytes"
//! ([`DecodeError::Incomplete`]) apart from every kind of malformed input.

use std::fmt::Display;

use thiserror::Error;

use crate::codes::ErrorCode;

/// A value that does not parse or is out of its type's range.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValueError {
    #[error("invalid address `{0}`")]
    Address(String),
    #[error("invalid subnet `{0}`")]
    Subnet(String),
    #[error("prefix length {0} exceeds {1}")]
    PrefixLength(u8, u8),
    #[error("invalid port `{0}` (expected N or N/tcp|udp|icmp|?)")]
    Port(String),
    #[error("invalid timespan `{0}` (expected <integer><ns|us|ms|s|min|h|d>)")]
    Timespan(String),
    #[error("invalid timestamp `{0}` (expected YYYY-MM-DDThh:mm:ss[.fff][Z|±hh:mm])")]
    Timestamp(String),
    #[error("{0} is out of range")]
    OutOfRange(String),
}

/// Why bytes or text could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Not malformed, just short: at least this many more bytes are needed.
    #[error("incomplete input: {0} more bytes needed")]
    Incomplete(usize),
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u64),
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: u64, max: usize },
    #[error("unknown {what} tag {tag}")]
    UnknownTag { what: &'static str, tag: u64 },
    #[error("length {len} exceeds the {remaining} bytes left")]
    BadLength { len: u64, remaining: usize },
    #[error("truncated input")]
    Truncated,
    #[error("{0} trailing bytes after the end of the frame")]
    Trailing(usize),
    #[error("nesting deeper than {0} levels")]
    TooDeep(usize),
    #[error("invalid UTF-8 in a string")]
    InvalidUtf8,
    #[error("varint is longer than 10 bytes, overflows 64 bits or is not in its shortest form")]
    BadVarint,
    #[error(transparent)]
    Value(#[from] ValueError),
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("{0}")]
    Invalid(String),
}

impl DecodeError {
    /// True if more input may complete the frame; every other error is final.
    pub fn is_incomplete(&self) -> bool {
        matches!(self, DecodeError::Incomplete(_))
    }

    /// The Broker error code this maps to on the wire.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::UnsupportedVersion(_) => ErrorCode::PeerIncompatible,
            DecodeError::Json(_) => ErrorCode::InvalidJson,
            _ => ErrorCode::DeserializationFailed,
        }
    }
}

impl serde::de::Error for DecodeError {
    fn custom<T: Display>(msg: T) -> Self {
        DecodeError::Invalid(msg.to_string())
    }
}

impl From<serde_json::Error> for DecodeError {
    fn from(e: serde_json::Error) -> Self {
        DecodeError::Json(e.to_string())
    }
}

/// Why a value or frame could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EncodeError {
    #[error("{0}")]
    Unrepresentable(String),
    #[error("nesting deeper than {0} levels")]
    TooDeep(usize),
}

impl EncodeError {
    /// The Broker error code this maps to on the wire.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::SerializationFailed
    }
}

impl serde::ser::Error for EncodeError {
    fn custom<T: Display>(msg: T) -> Self {
        EncodeError::Unrepresentable(msg.to_string())
    }
}

impl From<serde_json::Error> for EncodeError {
    fn from(e: serde_json::Error) -> Self {
        EncodeError::Unrepresentable(e.to_string())
    }
}
