//! The binary frame decoders (`for_each_binary`, `from_binary`, `decode_binary`) for every
//! message direction: never panic, agree with each other, and what they accept re-encodes
//! and decodes to the same messages. A client's publish, forwarded by its own bytes as the
//! gateway does, must reach subscribers unchanged.
#![no_main]

use broker_fuzz::{check_binary, check_forwarded_publish};
use broker_wasm::protocol::{ClientMsg, PeerMsg, ServerMsg};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    check_binary::<ClientMsg>(frame, check_forwarded_publish);
    check_binary::<ServerMsg>(frame, |_, _| {});
    check_binary::<PeerMsg>(frame, |_, _| {});
});
