//! The JSON frame decoder (`from_json`) for every message direction: never panics, and what
//! it accepts re-encodes (as JSON and as binary) and decodes to the same messages.
#![no_main]

use broker_fuzz::check_json;
use broker_wasm::protocol::{ClientMsg, PeerMsg, ServerMsg};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    check_json::<ClientMsg>(frame);
    check_json::<ServerMsg>(frame);
    check_json::<PeerMsg>(frame);
});
