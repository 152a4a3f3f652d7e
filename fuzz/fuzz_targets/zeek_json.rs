//! The decoders of Zeek's WebSocket JSON API: the client's handshake, its data messages,
//! single values and what a server sends. They never panic; what they accept re-encodes and
//! decodes to the same thing, and a data message from a Zeek client can be delivered to
//! native clients in either encoding.
#![no_main]

use broker_wasm::protocol::{self, ServerMsg, DEFAULT_MAX_FRAME};
use broker_wasm::zeek_json::{self, ServerMessage};
use broker_wasm::ErrorCode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    if let Ok(topics) = zeek_json::decode_handshake(input) {
        let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        let again = zeek_json::handshake(&refs);
        assert_eq!(zeek_json::decode_handshake(again.as_bytes()), Ok(topics));
    }

    match zeek_json::decode_data_message(input, 1) {
        Ok(p) => {
            let again =
                zeek_json::data_message(&p.topic, &p.data).expect("decoded data re-encodes");
            assert_eq!(
                zeek_json::decode_data_message(again.as_bytes(), 1),
                Ok(p.clone())
            );
            // The gateway routes it to native clients too.
            let msgs = vec![ServerMsg::Message(p)];
            let bin = protocol::to_binary(&msgs).expect("binary encodes everything");
            assert_eq!(
                protocol::from_binary(&bin, DEFAULT_MAX_FRAME),
                Ok(msgs.clone())
            );
            let json = protocol::to_json(&msgs).expect("a Zeek value is JSON");
            assert_eq!(protocol::from_json(&json, DEFAULT_MAX_FRAME), Ok(msgs));
        }
        Err(e) => assert!(e.context.starts_with("input #1 "), "{e}"),
    }

    if let Ok(d) = zeek_json::decode_value(input) {
        let again = zeek_json::encode_value(&d).expect("a decoded value re-encodes");
        assert_eq!(zeek_json::decode_value(again.as_bytes()).ok(), Some(d));
    }

    match zeek_json::decode_server_message(input) {
        Ok(ServerMessage::Ack { endpoint, version }) => {
            let again = zeek_json::ack(&endpoint, &version);
            assert_eq!(
                zeek_json::decode_server_message(again.as_bytes()).ok(),
                Some(ServerMessage::Ack { endpoint, version })
            );
        }
        Ok(ServerMessage::Error { code, context }) => {
            if let Some(c) = ErrorCode::from_name(&code) {
                let again = zeek_json::error(c, &context);
                assert_eq!(
                    zeek_json::decode_server_message(again.as_bytes()).ok(),
                    Some(ServerMessage::Error { code, context })
                );
            }
        }
        Ok(ServerMessage::Data(p)) => {
            let again =
                zeek_json::data_message(&p.topic, &p.data).expect("decoded data re-encodes");
            assert_eq!(
                zeek_json::decode_server_message(again.as_bytes()).ok(),
                Some(ServerMessage::Data(p))
            );
        }
        Err(e) => {
            let _ = e.code();
        }
    }
});
