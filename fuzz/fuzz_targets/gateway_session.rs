//! The gateway's per-connection session (`Session::handle` behind `session::run`), driven
//! in-process by `gateway::fuzzing`: after the hello, a sequence of frames, mostly
//! well-formed ones built from the input (publish/subscribe, store and namespace requests,
//! cancellations, pings, bye), some arbitrary bytes. It must never panic, and everything the
//! gateway queues for its clients must decode.
#![no_main]

use std::sync::Mutex;

use broker_fuzz::{client_msg, frame};
use broker_wasm::protocol::Encoding;
use gateway::fuzzing::Harness;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

static HARNESS: Mutex<Option<Harness>> = Mutex::new(None);

fn frames(u: &mut Unstructured, encoding: Encoding) -> Result<Vec<Vec<u8>>> {
    let mut frames = Vec::new();
    while !u.is_empty() && frames.len() < 32 {
        frames.push(frame(u, encoding, client_msg)?);
    }
    Ok(frames)
}

fuzz_target!(|input: &[u8]| {
    let mut u = Unstructured::new(input);
    let Ok(flags) = u.arbitrary::<u8>() else {
        return;
    };
    let encoding = if flags & 1 == 0 {
        Encoding::Binary
    } else {
        Encoding::Json
    };
    let Ok(frames) = frames(&mut u, encoding) else {
        return;
    };
    let mut h = HARNESS.lock().unwrap_or_else(|e| e.into_inner());
    h.get_or_insert_with(Harness::new)
        .session(encoding, flags & 2 != 0, &frames);
});
