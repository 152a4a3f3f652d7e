//! Fuzz targets, one per decoder, run for a bounded time (`FUZZ_SECONDS` per target, default
//! 1): random bytes and mutations of valid encodings. A decoder must return (never panic,
//! hang or over-allocate), and whatever it accepts must re-encode and decode to the same thing.
//!
//! Run longer: `FUZZ_SECONDS=600 cargo test --release -p broker-wasm --test fuzz -- --nocapture`

mod common;

use std::time::{Duration, Instant};

use broker_wasm::protocol::{self, ClientMsg, PeerMsg, ServerMsg, DEFAULT_MAX_FRAME};
use broker_wasm::zeek_json;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRng, TestRunner};
use serde::de::DeserializeOwned;
use serde::Serialize;

fn budget() -> Duration {
    let secs = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(1.0);
    Duration::from_secs_f64(secs)
}

/// Random edits of a valid input: flips, truncation, insertion, duplication, length bytes.
fn mutate(rng: &mut TestRng, mut input: Vec<u8>) -> Vec<u8> {
    let edits = rng.random_range(1..4);
    for _ in 0..edits {
        let len = input.len();
        match rng.random_range(0..6) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                input[i] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => input.truncate(rng.random_range(0..len)),
            2 => {
                let i = rng.random_range(0..=len);
                input.insert(i, rng.random());
            }
            3 if len > 1 => {
                let a = rng.random_range(0..len);
                let b = rng.random_range(a..len);
                let chunk = input[a..b].to_vec();
                let at = rng.random_range(0..=input.len());
                input.splice(at..at, chunk);
            }
            4 if len > 0 => {
                let i = rng.random_range(0..len);
                input[i] = [0x00, 0x7f, 0x80, 0xff, b'[', b'{', b'"'][rng.random_range(0..7)];
            }
            _ => input.extend((0..rng.random_range(0..8)).map(|_| rng.random::<u8>())),
        }
    }
    input
}

/// Runs `target` on random and mutated inputs until the time budget is spent.
fn fuzz<S: Strategy>(
    name: &str,
    seeds: S,
    encode: impl Fn(&S::Value) -> Vec<u8>,
    target: impl Fn(&[u8]),
) {
    let mut runner = TestRunner::new(Config::default());
    let deadline = Instant::now() + budget();
    let (mut tried, mut from_seed) = (0u64, 0u64);
    while Instant::now() < deadline {
        for _ in 0..64 {
            let input = if runner.rng().random_bool(0.2) {
                let len = runner.rng().random_range(0..256);
                (0..len).map(|_| runner.rng().random::<u8>()).collect()
            } else {
                from_seed += 1;
                let valid = encode(&seeds.new_tree(&mut runner).unwrap().current());
                mutate(runner.rng(), valid)
            };
            target(&input);
            tried += 1;
        }
    }
    println!("fuzz {name}: {tried} inputs ({from_seed} mutated from valid encodings)");
    assert!(tried > 0);
}

fn binary_target<M: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(input: &[u8]) {
    match protocol::decode_binary::<M>(input, DEFAULT_MAX_FRAME) {
        Ok((msgs, used)) => {
            assert!(used <= input.len());
            let again = protocol::to_binary(&msgs).expect("decoded frames re-encode");
            let (back, _) = protocol::decode_binary::<M>(&again, DEFAULT_MAX_FRAME).unwrap();
            assert_eq!(back, msgs);
        }
        Err(e) => {
            let _ = e.code();
        }
    }
}

fn json_target<M: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(input: &[u8]) {
    if let Ok(msgs) = protocol::from_json::<M>(input, DEFAULT_MAX_FRAME) {
        let again = protocol::to_json(&msgs).expect("decoded frames re-encode");
        assert_eq!(
            protocol::from_json::<M>(&again, DEFAULT_MAX_FRAME).unwrap(),
            msgs
        );
    }
}

#[test]
fn fuzz_binary_client_frames() {
    fuzz(
        "binary ClientMsg",
        proptest::collection::vec(common::client_msg(false), 0..4),
        |m| protocol::to_binary(m).unwrap(),
        binary_target::<ClientMsg>,
    );
}

#[test]
fn fuzz_binary_server_frames() {
    fuzz(
        "binary ServerMsg",
        proptest::collection::vec(common::server_msg(false), 0..4),
        |m| protocol::to_binary(m).unwrap(),
        binary_target::<ServerMsg>,
    );
}

#[test]
fn fuzz_binary_peer_frames() {
    fuzz(
        "binary PeerMsg",
        proptest::collection::vec(common::peer_msg(false), 0..4),
        |m| protocol::to_binary(m).unwrap(),
        binary_target::<PeerMsg>,
    );
}

#[test]
fn fuzz_json_frames() {
    fuzz(
        "JSON ClientMsg",
        proptest::collection::vec(common::client_msg(true), 0..4),
        |m| protocol::to_json(m).unwrap(),
        json_target::<ClientMsg>,
    );
    fuzz(
        "JSON ServerMsg",
        proptest::collection::vec(common::server_msg(true), 0..4),
        |m| protocol::to_json(m).unwrap(),
        json_target::<ServerMsg>,
    );
}

#[test]
fn fuzz_zeek_json() {
    fuzz(
        "Zeek JSON data-message",
        (common::topic(), common::data(true)),
        |(t, d)| zeek_json::data_message(t, d).unwrap().into_bytes(),
        |input| {
            if let Ok(p) = zeek_json::decode_data_message(input, 1) {
                let again = zeek_json::data_message(&p.topic, &p.data).unwrap();
                assert_eq!(
                    zeek_json::decode_data_message(again.as_bytes(), 1).unwrap(),
                    p
                );
            }
            let _ = zeek_json::decode_server_message(input);
        },
    );
    fuzz(
        "Zeek JSON handshake",
        proptest::collection::vec(common::topic(), 0..4),
        |t| serde_json::to_vec(t).unwrap(),
        |input| {
            let _ = zeek_json::decode_handshake(input);
        },
    );
}
