//! Malformed input of every kind gives a typed error, never a panic, a hang or an allocation
//! the input does not justify (ZB-31, ZB-40).

use broker_wasm::binary::{self, write_varint};
use broker_wasm::protocol::{
    self, ClientMsg, Encoding, Publish, ServerMsg, DEFAULT_MAX_FRAME, HEADER_LEN,
};
use broker_wasm::{zeek_json, Data, DecodeError};

/// Wraps a message body (count already included) in a binary frame header.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = vec![protocol::PROTOCOL_VERSION];
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// A frame with one Publish message on topic "/t" whose value is `value` (binary Data bytes).
fn publish_frame(value: &[u8]) -> Vec<u8> {
    let mut body = vec![1, 3]; // one message; variant 3 = Publish
    body.extend_from_slice(&[2, b'/', b't']);
    body.extend_from_slice(value);
    frame(&body)
}

fn decode(bytes: &[u8]) -> Result<Vec<ClientMsg>, DecodeError> {
    protocol::from_binary(bytes, DEFAULT_MAX_FRAME)
}

#[test]
fn the_publish_frame_helper_matches_the_encoder() {
    let msg = ClientMsg::Publish(Publish {
        topic: "/t".into(),
        data: Data::Count(5),
    });
    assert_eq!(
        protocol::to_binary(std::slice::from_ref(&msg)).unwrap(),
        publish_frame(&[2, 5])
    );
    assert_eq!(decode(&publish_frame(&[2, 5])).unwrap(), vec![msg]);
}

#[test]
fn truncated_input() {
    let full = publish_frame(&[5, 3, b'a', b'b', b'c']);
    for cut in 0..full.len() {
        let err =
            protocol::decode_binary::<ClientMsg>(&full[..cut], DEFAULT_MAX_FRAME).unwrap_err();
        assert!(err.is_incomplete(), "cut {cut}: {err}");
        // As a whole WebSocket message the same bytes are malformed, not incomplete.
        assert!(!decode(&full[..cut]).unwrap_err().is_incomplete());
    }
    // A body whose own lengths run past the frame's end.
    let err = decode(&publish_frame(&[5, 9, b'a'])).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::BadLength {
                len: 9,
                remaining: 1
            }
        ),
        "{err}"
    );
    assert_eq!(
        decode(&publish_frame(&[4, 0, 0])).unwrap_err(),
        DecodeError::Truncated
    );
}

#[test]
fn unknown_tags() {
    let err = decode(&publish_frame(&[99])).unwrap_err();
    assert!(
        matches!(err, DecodeError::UnknownTag { tag: 99, .. }),
        "{err}"
    );
    let err = decode(&frame(&[1, 77])).unwrap_err();
    assert!(
        matches!(err, DecodeError::UnknownTag { tag: 77, .. }),
        "{err}"
    );
    let err = protocol::from_binary::<ServerMsg>(&frame(&[1, 120]), DEFAULT_MAX_FRAME).unwrap_err();
    assert!(matches!(err, DecodeError::UnknownTag { .. }), "{err}");
    // Port protocol 9, boolean byte 2, option byte 7.
    assert!(decode(&publish_frame(&[8, 80, 9])).is_err());
    assert!(decode(&publish_frame(&[1, 2])).is_err());
    assert!(decode(&frame(&[1, 0, 0, 7])).is_err());
    let err = decode(&[9, 0, 0, 0, 0]).unwrap_err();
    assert_eq!(err, DecodeError::UnsupportedVersion(9));
    assert_eq!(err.code(), broker_wasm::ErrorCode::PeerIncompatible);
}

#[test]
fn absurd_lengths() {
    // A string claiming 2^60 bytes.
    let mut v = vec![5];
    write_varint(&mut v, 1 << 60);
    v.push(b'x');
    let err = decode(&publish_frame(&v)).unwrap_err();
    assert!(matches!(err, DecodeError::BadLength { .. }), "{err}");
    // A vector claiming 2^60 elements.
    let mut v = vec![14];
    write_varint(&mut v, 1 << 60);
    let err = decode(&publish_frame(&v)).unwrap_err();
    assert!(matches!(err, DecodeError::BadLength { .. }), "{err}");
    // A frame of 2^32-1 bytes is refused from its header, before any body arrives.
    let header = [protocol::PROTOCOL_VERSION, 0xff, 0xff, 0xff, 0xff];
    let err = protocol::decode_binary::<ClientMsg>(&header, DEFAULT_MAX_FRAME).unwrap_err();
    assert!(matches!(err, DecodeError::TooLarge { .. }), "{err}");
    // A message count of 2^60.
    let mut body = Vec::new();
    write_varint(&mut body, 1 << 60);
    assert!(matches!(
        decode(&frame(&body)).unwrap_err(),
        DecodeError::BadLength { .. }
    ));
    // An overlong varint.
    let err = decode(&frame(&[0xff; 12])).unwrap_err();
    assert_eq!(err, DecodeError::BadVarint);
    // JSON frames over the limit are refused before parsing.
    let big = vec![b' '; 100];
    assert!(matches!(
        protocol::from_json::<ClientMsg>(&big, 10).unwrap_err(),
        DecodeError::TooLarge { .. }
    ));
    assert_eq!(HEADER_LEN, 5);
}

#[test]
fn nesting_100k_deep() {
    // Binary: vector(1) of vector(1) of ... 100k levels.
    let mut v = Vec::new();
    for _ in 0..100_000 {
        v.extend_from_slice(&[14, 1]);
    }
    v.push(0);
    let err = decode(&publish_frame(&v)).unwrap_err();
    assert!(matches!(err, DecodeError::TooDeep(_)), "{err}");
    // JSON value.
    let mut text = String::new();
    for _ in 0..100_000 {
        text.push_str(r#"{"@data-type":"vector","data":["#);
    }
    assert!(zeek_json::decode_value(text.as_bytes()).is_err());
    // Plain arrays in a data message.
    let deep = format!(
        r#"{{"type":"data-message","topic":"/t","@data-type":"vector","data":{}}}"#,
        "[".repeat(100_000)
    );
    assert!(zeek_json::decode_data_message(deep.as_bytes(), 1).is_err());
    // JSON frame.
    let deep_frame = format!(r#"{{"v":1,"messages":{}"#, "[".repeat(100_000));
    assert!(protocol::from_json::<ClientMsg>(deep_frame.as_bytes(), DEFAULT_MAX_FRAME).is_err());
}

#[test]
fn invalid_utf8() {
    // Topic bytes 0xff 0xfe.
    let mut body = vec![1, 3, 2, 0xff, 0xfe];
    body.extend_from_slice(&[2, 1]);
    assert_eq!(decode(&frame(&body)).unwrap_err(), DecodeError::InvalidUtf8);
    // Enum names must be text (strings may be bytes).
    assert_eq!(
        decode(&publish_frame(&[11, 1, 0xff])).unwrap_err(),
        DecodeError::InvalidUtf8
    );
    assert!(
        decode(&publish_frame(&[5, 1, 0xff])).is_ok(),
        "binary strings are allowed"
    );
    assert!(zeek_json::decode_value(b"{\"@data-type\":\"string\",\"data\":\"\xff\"}").is_err());
    assert!(Encoding::Json
        .decode::<ClientMsg>(b"{\"v\":1,\"messages\":[\xff]}", 1000)
        .is_err());
}

#[test]
fn out_of_range_numbers() {
    // Port number 70000 (varint) in a binary value.
    let mut v = vec![8];
    write_varint(&mut v, 70_000);
    v.push(1);
    assert!(decode(&publish_frame(&v)).is_err());
    // Subnet length 200, and an IPv4 subnet with a 128-bit length below 96.
    let mut s = vec![7];
    s.extend_from_slice(&[0; 16]);
    s.push(200);
    assert!(decode(&publish_frame(&s)).is_err());
    let mut s = vec![7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 0];
    s.push(8);
    assert!(decode(&publish_frame(&s)).is_err());
    for text in [
        r#"{"@data-type":"count","data":18446744073709551616}"#,
        r#"{"@data-type":"integer","data":-9223372036854775809}"#,
        r#"{"@data-type":"count","data":1e3}"#,
        r#"{"@data-type":"integer","data":1.5}"#,
        r#"{"@data-type":"port","data":"65536/tcp"}"#,
        r#"{"@data-type":"subnet","data":"10.0.0.0/33"}"#,
        r#"{"@data-type":"timespan","data":"99999999999999999d"}"#,
        r#"{"@data-type":"timestamp","data":"3000-01-01T00:00:00"}"#,
        r#"{"@data-type":"address","data":"123ns"}"#,
        r#"{"@data-type":"address","data":"300.1.1.1"}"#,
        r#"{"@data-type":"boolean","data":1}"#,
        r#"{"@data-type":"table","data":[{"key":{"@data-type":"none","data":{}}}]}"#,
        r#"{"@data-type":"vector","data":{}}"#,
        r#"{"data":1}"#,
        r#"{"@data-type":"count"}"#,
        r#"{"@data-type":"count","data":1,"data":2}"#,
    ] {
        assert!(zeek_json::decode_value(text.as_bytes()).is_err(), "{text}");
    }
}

#[test]
fn duplicate_set_and_table_entries() {
    // Binary set {1, 1} and table {1: 2, 1: 3}.
    let err = decode(&publish_frame(&[12, 2, 2, 1, 2, 1])).unwrap_err();
    assert!(err.to_string().contains("duplicate set element"), "{err}");
    let err = decode(&publish_frame(&[13, 2, 2, 1, 2, 2, 2, 1, 2, 3])).unwrap_err();
    assert!(err.to_string().contains("duplicate table key"), "{err}");
    assert!(decode(&publish_frame(&[12, 2, 2, 1, 2, 2])).is_ok());
    let err = zeek_json::decode_value(
        br#"{"@data-type":"table","data":[{"key":{"@data-type":"count","data":1},"value":{"@data-type":"none","data":{}}},{"key":{"@data-type":"count","data":1},"value":{"@data-type":"none","data":{}}}]}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("duplicate table key"), "{err}");
    // Reals: 0.0 and -0.0 are the same set element.
    let err = zeek_json::decode_value(
        br#"{"@data-type":"set","data":[{"@data-type":"real","data":0.0},{"@data-type":"real","data":-0.0}]}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("duplicate"), "{err}");
}

#[test]
fn trailing_garbage() {
    let mut bytes = publish_frame(&[2, 5]);
    bytes.push(0);
    assert_eq!(decode(&bytes).unwrap_err(), DecodeError::Trailing(1));
    let mut body = vec![1, 3, 2, b'/', b't', 2, 5, 0xaa];
    assert_eq!(decode(&frame(&body)).unwrap_err(), DecodeError::Trailing(1));
    body.truncate(7);
    assert!(decode(&frame(&body)).is_ok());
    assert!(binary::from_slice::<Data>(&[2, 5, 0]).is_err());
}

/// Found by the `binary_frames` fuzz target (crash-9025a7c8): a publish whose variant index
/// was written overlong (`83 00` for 3) decoded, and the gateway, which forwards a publish by
/// its own bytes with only the first byte swapped for the server's tag, would have sent
/// subscribers `01 00 ...`: a stray byte that broke their whole frame. Varints must be in
/// their shortest form.
#[test]
fn fuzz_binary_frames_overlong_publish_tag() {
    let crash = [1, 5, 0, 0, 0, 2, 0x83, 0, 0, 0];
    assert_eq!(decode(&crash).unwrap_err(), DecodeError::BadVarint);
    let mut seen = 0;
    let r = protocol::for_each_binary::<ClientMsg>(&crash, DEFAULT_MAX_FRAME, |_, _| seen += 1);
    assert_eq!((r, seen), (Err(DecodeError::BadVarint), 0));
    // Overlong lengths and integers are refused too; the shortest forms still decode.
    assert_eq!(
        decode(&publish_frame(&[2, 0x85, 0])).unwrap_err(),
        DecodeError::BadVarint
    );
    let mut body = vec![1, 3, 0x82, 0, b'/', b't', 2, 5];
    assert_eq!(decode(&frame(&body)).unwrap_err(), DecodeError::BadVarint);
    body.drain(2..4);
    body.insert(2, 2);
    assert_eq!(
        decode(&frame(&body)).unwrap(),
        [ClientMsg::Publish(Publish {
            topic: "/t".into(),
            data: Data::Count(5)
        })]
    );
}

/// A directed check of a `binary_frames` fuzz property (`for_each_binary`, the gateway's
/// decoder, and `from_binary`, the clients', agree), which random inputs rarely reach: a
/// publish of a value nested 62 deep passed the gateway, which forwards it by its bytes, but
/// no client could decode the frame that carried it. Both decoders now count the frame's
/// sequence of messages as a level.
#[test]
fn gateway_and_client_decoders_accept_the_same_nesting() {
    for depth in [60, 61, 62, 63] {
        let mut v = Data::Count(1);
        for _ in 0..depth {
            v = Data::Vector(vec![v]);
        }
        let f = protocol::to_binary(&[ClientMsg::Publish(Publish {
            topic: "/a".into(),
            data: v,
        })])
        .unwrap();
        let each = protocol::for_each_binary::<ClientMsg>(&f, DEFAULT_MAX_FRAME, |_, _| {});
        assert_eq!(each.is_ok(), decode(&f).is_ok(), "depth {depth}");
        assert_eq!(each.is_ok(), depth <= 61, "depth {depth}");
    }
}
