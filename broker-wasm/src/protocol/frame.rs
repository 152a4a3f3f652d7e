//! Frame codecs: the binary frame (version, length, varint count, messages) and its JSON
//! form, with size limits checked before buffering.

#[allow(unused_imports)]
use super::*;

/// Appends one binary frame holding `messages` to `out`.
pub fn encode_binary<M: Serialize>(messages: &[M], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = begin_frame(out);
    if let Err(e) = binary::to_writer(out, messages) {
        out.truncate(start);
        return Err(e);
    }
    let body = out.len() - start - HEADER_LEN;
    if u32::try_from(body).is_err() {
        out.truncate(start);
        return Err(EncodeError::Unrepresentable(format!(
            "frame body of {body} bytes exceeds 4 GiB"
        )));
    }
    finish_frame(out, start);
    Ok(())
}

/// One binary frame holding `messages`.
pub fn to_binary<M: Serialize>(messages: &[M]) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    encode_binary(messages, &mut out)?;
    Ok(out)
}

/// Decodes the binary frame at the start of `input`: its messages and the bytes it used.
///
/// # Errors
/// [`DecodeError::Incomplete`] if `input` holds only part of a frame whose size is within
/// `max_body`; any other error means the input is malformed and the stream unusable.
pub fn decode_binary<M: DeserializeOwned>(
    input: &[u8],
    max_body: usize,
) -> Result<(Vec<M>, usize), DecodeError> {
    let Some(&version) = input.first() else {
        return Err(DecodeError::Incomplete(HEADER_LEN));
    };
    if version != PROTOCOL_VERSION {
        return Err(DecodeError::UnsupportedVersion(u64::from(version)));
    }
    if input.len() < HEADER_LEN {
        return Err(DecodeError::Incomplete(HEADER_LEN - input.len()));
    }
    let len = u32::from_le_bytes([input[1], input[2], input[3], input[4]]) as usize;
    if len > max_body {
        return Err(DecodeError::TooLarge {
            len: len as u64,
            max: max_body,
        });
    }
    let total = HEADER_LEN + len;
    if input.len() < total {
        return Err(DecodeError::Incomplete(total - input.len()));
    }
    let messages = binary::from_slice(&input[HEADER_LEN..total])?;
    Ok((messages, total))
}

/// Variant index of [`ClientMsg::Publish`] in the binary encoding.
pub const CLIENT_PUBLISH_TAG: u8 = 3;
/// Variant index of [`ServerMsg::Message`] in the binary encoding.
pub const SERVER_MESSAGE_TAG: u8 = 1;

/// Variant index of [`ServerMsg::Logged`] in the binary encoding.
pub const SERVER_LOGGED_TAG: u8 = 12;

/// The binary encoding of `ServerMsg::Logged { history, seq, message }` from the binary
/// encoding of the message's [`Publish`] (`publish`, no tag), without decoding it.
pub fn logged_message_binary(history: u32, seq: u64, publish: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(publish.len() + 12);
    out.push(SERVER_LOGGED_TAG);
    binary::write_varint(&mut out, u64::from(history));
    binary::write_varint(&mut out, seq);
    out.extend_from_slice(publish);
    out
}

/// The binary encoding of `ServerMsg::Message(publish)` without copying `publish` first.
pub fn server_message_binary(publish: &Publish) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(64);
    out.push(SERVER_MESSAGE_TAG);
    binary::to_writer(&mut out, publish)?;
    Ok(out)
}

/// Decodes a buffer holding exactly one binary frame, handing each message to `f` together
/// with its own bytes. A [`ClientMsg::Publish`] and a [`ServerMsg::Message`] differ only in
/// their first byte, so a gateway can forward a publish without encoding it again.
pub fn for_each_binary<M: DeserializeOwned>(
    input: &[u8],
    max_body: usize,
    mut f: impl FnMut(M, &[u8]),
) -> Result<(), DecodeError> {
    let Some(&version) = input.first() else {
        return Err(DecodeError::Truncated);
    };
    if version != PROTOCOL_VERSION {
        return Err(DecodeError::UnsupportedVersion(u64::from(version)));
    }
    if input.len() < HEADER_LEN {
        return Err(DecodeError::Truncated);
    }
    let len = u32::from_le_bytes([input[1], input[2], input[3], input[4]]) as usize;
    if len > max_body {
        return Err(DecodeError::TooLarge {
            len: len as u64,
            max: max_body,
        });
    }
    let body = &input[HEADER_LEN..];
    match body.len().cmp(&len) {
        std::cmp::Ordering::Less => return Err(DecodeError::Truncated),
        std::cmp::Ordering::Greater => return Err(DecodeError::Trailing(body.len() - len)),
        std::cmp::Ordering::Equal => {}
    }
    let mut d = binary::Decoder::new(body);
    let count = d.read_length()?;
    // The messages are a sequence: one level deep, as for `from_binary`, so the gateway
    // accepts no value nested deeper than the clients it forwards it to can decode.
    d.enter_sequence()?;
    for _ in 0..count {
        let start = d.position();
        let msg = M::deserialize(&mut d)?;
        f(msg, &body[start..d.position()]);
    }
    d.finish()
}

/// Starts a binary frame in `out`; returns the offset to pass to [`finish_frame`].
/// Between the two calls, append the varint message count and then the messages.
pub fn begin_frame(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.push(PROTOCOL_VERSION);
    out.extend_from_slice(&[0; 4]);
    start
}

/// Writes the body length into a frame started by [`begin_frame`]. The body must be under
/// 4 GiB (frames are far smaller: they are bounded by the frame limit and batch sizes).
pub fn finish_frame(out: &mut [u8], start: usize) {
    let body = (out.len() - start - HEADER_LEN) as u32;
    out[start + 1..start + HEADER_LEN].copy_from_slice(&body.to_le_bytes());
}

/// Decodes a buffer that must hold exactly one binary frame (a WebSocket message).
pub fn from_binary<M: DeserializeOwned>(
    input: &[u8],
    max_body: usize,
) -> Result<Vec<M>, DecodeError> {
    let (messages, used) = match decode_binary(input, max_body) {
        Err(DecodeError::Incomplete(_)) => return Err(DecodeError::Truncated),
        other => other?,
    };
    if used != input.len() {
        return Err(DecodeError::Trailing(input.len() - used));
    }
    Ok(messages)
}

#[cfg(feature = "json-frames")]
#[derive(Serialize)]
struct JsonFrameOut<'a, M> {
    v: u8,
    messages: &'a [M],
}

#[cfg(feature = "json-frames")]
#[derive(Deserialize)]
struct JsonFrameIn<M> {
    v: u64,
    messages: Vec<M>,
}

#[cfg(feature = "json-frames")]
#[derive(Deserialize)]
struct JsonVersion {
    v: u64,
}

/// Why a build without the `json-frames` feature cannot do JSON frames.
pub const NO_JSON_FRAMES: &str =
    "JSON frames are not in this build (the browser build speaks the binary encoding)";

/// The JSON form of a frame holding `messages`.
#[cfg(feature = "json-frames")]
pub fn to_json<M: Serialize>(messages: &[M]) -> Result<Vec<u8>, EncodeError> {
    Ok(serde_json::to_vec(&JsonFrameOut {
        v: PROTOCOL_VERSION,
        messages,
    })?)
}

/// The JSON form of a frame: not in this build.
#[cfg(not(feature = "json-frames"))]
pub fn to_json<M: Serialize>(_messages: &[M]) -> Result<Vec<u8>, EncodeError> {
    Err(EncodeError::Unrepresentable(NO_JSON_FRAMES.into()))
}

/// Whether `message` has a JSON form (a NaN has none).
#[cfg(feature = "json-frames")]
pub fn json_encodable<M: Serialize>(message: &M) -> bool {
    serde_json::to_vec(message).is_ok()
}

/// Whether `message` has a JSON form: none in this build.
#[cfg(not(feature = "json-frames"))]
pub fn json_encodable<M: Serialize>(_message: &M) -> bool {
    false
}

/// Decodes the JSON form of a frame.
pub fn from_json<M: DeserializeOwned>(
    input: &[u8],
    max_body: usize,
) -> Result<Vec<M>, DecodeError> {
    if input.len() > max_body {
        return Err(DecodeError::TooLarge {
            len: input.len() as u64,
            max: max_body,
        });
    }
    #[cfg(not(feature = "json-frames"))]
    return Err(DecodeError::Invalid(NO_JSON_FRAMES.into()));
    #[cfg(feature = "json-frames")]
    match serde_json::from_slice::<JsonFrameIn<M>>(input) {
        Ok(f) if f.v == u64::from(PROTOCOL_VERSION) => Ok(f.messages),
        Ok(f) => Err(DecodeError::UnsupportedVersion(f.v)),
        Err(e) => match serde_json::from_slice::<JsonVersion>(input) {
            Ok(JsonVersion { v }) if v != u64::from(PROTOCOL_VERSION) => {
                Err(DecodeError::UnsupportedVersion(v))
            }
            _ => Err(e.into()),
        },
    }
}

/// The two encodings of the native protocol, chosen by WebSocket subprotocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Binary,
    Json,
}

impl Encoding {
    /// The encoding for a WebSocket subprotocol name.
    pub fn from_subprotocol(name: &str) -> Option<Encoding> {
        match name {
            SUBPROTOCOL_BINARY => Some(Encoding::Binary),
            SUBPROTOCOL_JSON => Some(Encoding::Json),
            _ => None,
        }
    }

    pub fn subprotocol(self) -> &'static str {
        match self {
            Encoding::Binary => SUBPROTOCOL_BINARY,
            Encoding::Json => SUBPROTOCOL_JSON,
        }
    }

    /// Encodes a frame.
    pub fn encode<M: Serialize>(self, messages: &[M]) -> Result<Vec<u8>, EncodeError> {
        match self {
            Encoding::Binary => to_binary(messages),
            Encoding::Json => to_json(messages),
        }
    }

    /// Decodes a complete frame.
    pub fn decode<M: DeserializeOwned>(
        self,
        input: &[u8],
        max_body: usize,
    ) -> Result<Vec<M>, DecodeError> {
        match self {
            Encoding::Binary => from_binary(input, max_body),
            Encoding::Json => from_json(input, max_body),
        }
    }
}
