//! The client state machine (`ClientCore`): a sequence of transport events, server frames
//! (well-formed ones built from the input, and raw bytes) and API calls chosen by the input.
//! It must never panic, and every frame it hands out must decode as client messages.
#![no_main]

use broker_fuzz::{data, frame, name, request, request_id, server_msg, store_op, topics, STORES};
use broker_wasm::client::{ClientCore, CloneOptions};
use broker_wasm::protocol::{self, ClientMsg, Encoding, DEFAULT_MAX_FRAME};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

/// Sends everything queued (sometimes in parts) and checks it decodes.
fn drain(c: &mut ClientCore, max: usize) {
    while let Some(f) = c.take_frame_max(max) {
        let msgs = protocol::from_binary::<ClientMsg>(&f, DEFAULT_MAX_FRAME)
            .or_else(|_| protocol::from_json::<ClientMsg>(&f, DEFAULT_MAX_FRAME))
            .expect("the client's frames decode");
        assert!(!msgs.is_empty() || c.encoding() == Encoding::Json);
        assert!(msgs.len() <= max);
        if msgs.is_empty() {
            break;
        }
    }
}

fn run(u: &mut Unstructured) -> Result<()> {
    let encoding = if u.arbitrary()? {
        Encoding::Binary
    } else {
        Encoding::Json
    };
    let mut c = ClientCore::new(encoding, "fuzz");
    c.set_statuses(u.arbitrary()?);
    // Resuming on: every connection sends its position; histories, logged messages,
    // replays and gaps from the frames below go through the resume rules.
    if u.arbitrary()? {
        c.set_instance("fuzz".into());
    }
    let mut subscribers = Vec::new();
    let mut requests = Vec::new();
    let mut now = 0.0f64;
    for _ in 0..256 {
        if u.is_empty() {
            break;
        }
        match u.int_in_range(0..=21)? {
            0 => c.on_open(),
            1 => {
                let _ = c.on_close();
            }
            2..=5 => {
                let f = frame(u, encoding, server_msg)?;
                let _ = c.on_frame(&f);
            }
            6 => {
                let _ = c.publish(broker_fuzz::topic(u)?, data(u, 2)?);
            }
            7 => {
                if encoding == Encoding::Binary {
                    let value = broker_wasm::binary::to_vec(&data(u, 2)?).expect("encodes");
                    let _ = c.publish_encoded(&broker_fuzz::topic(u)?, &value);
                }
            }
            8 => {
                if let Ok(id) = c.add_subscriber(&topics(u)?) {
                    subscribers.push(id);
                }
            }
            9 => {
                let id = u.choose(&subscribers).copied().unwrap_or(0);
                let _ = c.add_topics(id, &topics(u)?);
            }
            10 => {
                let id = u.choose(&subscribers).copied().unwrap_or(0);
                c.remove_topics(id, &topics(u)?);
            }
            11 => {
                let id = u.choose(&subscribers).copied().unwrap_or(0);
                c.remove_subscriber(id);
            }
            12 => requests.push(c.request(request(u)?)),
            13 => {
                if let Ok(id) = c.store_request(&name(u, STORES)?, store_op(u)?) {
                    requests.push(id);
                }
                // An optimistic clone's pending write.
                let _ = c.take_events();
            }
            14 => {
                let opts = CloneOptions {
                    resync_interval_ms: f64::from(u.int_in_range(-1..=100)?),
                    stale_interval_ms: f64::from(u.int_in_range(-1..=100)?),
                    mutation_buffer_interval_ms: f64::from(u.int_in_range(-1..=100)?),
                    optimistic: u.arbitrary()?,
                };
                c.attach_clone(&name(u, STORES)?, opts);
            }
            15 => c.detach_clone(&name(u, STORES)?),
            16 => c.set_clone_changes(&name(u, STORES)?, u.arbitrary()?),
            17 => {
                now += f64::from(u.int_in_range(0..=200)?);
                let _ = c.tick(now);
                let _ = c.needs_tick();
            }
            18 => {
                let id = match u.choose(&requests) {
                    Ok(id) if u.arbitrary()? => *id,
                    _ => request_id(u)?,
                };
                c.cancel(id);
            }
            19 => {
                if u.arbitrary()? {
                    c.ping();
                } else {
                    c.bye();
                }
            }
            20 => {
                let store = name(u, STORES)?;
                let _ = c.clone_get(&store, &broker_fuzz::key(u)?);
                let _ = c.clone_idle(&store);
                if let Ok(r) = c.clone_replica(&store) {
                    let _ = (r.len(), r.seq(), r.is_synced());
                }
                let _ = (c.subscriptions(), c.queued(), c.is_open());
            }
            _ => {
                let max = u.int_in_range(1..=8)?;
                drain(&mut c, max);
            }
        }
    }
    drain(&mut c, usize::MAX);
    let _ = c.on_close();
    Ok(())
}

fuzz_target!(|input: &[u8]| {
    let _ = run(&mut Unstructured::new(input));
});
