//! Property tests: arbitrary values and frames survive every encoding (ZB-25, ZB-31, ZB-39).

mod common;

use broker_wasm::protocol::{self, ClientMsg, Encoding, PeerMsg, ServerMsg, DEFAULT_MAX_FRAME};
use broker_wasm::{binary, zeek_json, Data};
use proptest::prelude::*;

fn bits_equal(a: &Data, b: &Data) -> bool {
    // Data's equality treats 0.0 == -0.0; a round trip must keep every bit, so compare the
    // binary encodings too (which hold the raw IEEE bits).
    binary::to_vec(a).unwrap() == binary::to_vec(b).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn zb25_values_round_trip_binary(d in common::data(false)) {
        let bytes = binary::to_vec(&d).unwrap();
        let back: Data = binary::from_slice(&bytes).unwrap();
        prop_assert_eq!(&back, &d);
        prop_assert!(bits_equal(&back, &d));
    }

    #[test]
    fn zb39_values_round_trip_json(d in common::data(true)) {
        let text = zeek_json::encode_value(&d).unwrap();
        let back = zeek_json::decode_value(text.as_bytes()).unwrap();
        prop_assert_eq!(&back, &d);
        prop_assert!(bits_equal(&back, &d));
        // Encoding is deterministic: sets and tables come out in data order (ZB-27).
        prop_assert_eq!(zeek_json::encode_value(&back).unwrap(), text);
    }

    #[test]
    fn zb38_data_messages_round_trip(topic in common::topic(), d in common::data(true)) {
        let text = zeek_json::data_message(&topic, &d).unwrap();
        let p = zeek_json::decode_data_message(text.as_bytes(), 1).unwrap();
        prop_assert_eq!(p.topic, topic);
        prop_assert!(bits_equal(&p.data, &d));
    }

    #[test]
    fn client_frames_round_trip(msgs in proptest::collection::vec(common::client_msg(true), 0..5)) {
        for enc in [Encoding::Binary, Encoding::Json] {
            let bytes = enc.encode(&msgs).unwrap();
            let back: Vec<ClientMsg> = enc.decode(&bytes, DEFAULT_MAX_FRAME).unwrap();
            prop_assert_eq!(&back, &msgs);
        }
    }

    #[test]
    fn server_frames_round_trip(msgs in proptest::collection::vec(common::server_msg(true), 0..5)) {
        for enc in [Encoding::Binary, Encoding::Json] {
            let bytes = enc.encode(&msgs).unwrap();
            let back: Vec<ServerMsg> = enc.decode(&bytes, DEFAULT_MAX_FRAME).unwrap();
            prop_assert_eq!(&back, &msgs);
        }
    }

    #[test]
    fn peer_frames_round_trip(msgs in proptest::collection::vec(common::peer_msg(true), 0..5)) {
        for enc in [Encoding::Binary, Encoding::Json] {
            let bytes = enc.encode(&msgs).unwrap();
            let back: Vec<PeerMsg> = enc.decode(&bytes, DEFAULT_MAX_FRAME).unwrap();
            prop_assert_eq!(&back, &msgs);
        }
    }

    #[test]
    fn binary_frames_with_non_finite_reals(msgs in proptest::collection::vec(common::server_msg(false), 0..5)) {
        let bytes = protocol::to_binary(&msgs).unwrap();
        let back: Vec<ServerMsg> = protocol::from_binary(&bytes, DEFAULT_MAX_FRAME).unwrap();
        prop_assert_eq!(&back, &msgs);
    }

    #[test]
    fn streams_of_frames_decode_frame_by_frame(
        frames in proptest::collection::vec(proptest::collection::vec(common::client_msg(false), 0..3), 1..4),
        split in any::<prop::sample::Index>(),
    ) {
        let mut stream = Vec::new();
        for f in &frames {
            protocol::encode_binary(f, &mut stream).unwrap();
        }
        // Deliver the stream in two chunks at an arbitrary point.
        let cut = split.index(stream.len() + 1);
        let mut buf = stream[..cut].to_vec();
        let mut rest = &stream[cut..];
        let mut got = Vec::new();
        loop {
            match protocol::decode_binary::<ClientMsg>(&buf, DEFAULT_MAX_FRAME) {
                Ok((msgs, used)) => {
                    got.push(msgs);
                    buf.drain(..used);
                }
                Err(e) if e.is_incomplete() => {
                    if rest.is_empty() {
                        prop_assert!(buf.is_empty(), "leftover bytes");
                        break;
                    }
                    buf.extend_from_slice(rest);
                    rest = &[];
                }
                Err(e) => return Err(TestCaseError::fail(e.to_string())),
            }
        }
        prop_assert_eq!(got, frames);
    }

    #[test]
    fn zb27_ordering_is_total_and_consistent(a in common::data(false), b in common::data(false), c in common::data(false)) {
        use std::cmp::Ordering;
        prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
        prop_assert_eq!(a.cmp(&a), Ordering::Equal);
        if a <= b && b <= c {
            prop_assert!(a <= c);
        }
        prop_assert_eq!(a == b, a.cmp(&b) == Ordering::Equal);
    }
}
