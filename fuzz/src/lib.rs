//! Shared parts of the fuzz targets: the round-trip properties of the frame codecs and
//! generators that turn fuzzer bytes into protocol values (for the session targets, which
//! get deeper when most of their input is well-formed).

use std::fmt::Debug;

use broker_wasm::data::{Address, Port, Protocol, Subnet, Timespan, Timestamp};
use broker_wasm::protocol::{
    self, Backend, ClientMsg, EndpointInfo, ErrorInfo, Failure, Hello, NamespaceInfo, NamespaceOp,
    NetworkInfo, NodeId, Publish, Request, Response, ServerMsg, Status, StoreEntry, StoreOp,
    StoreUpdate, Wait, Welcome, DEFAULT_MAX_FRAME,
};
use broker_wasm::{binary, Data, ErrorCode, StatusCode};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use serde::de::DeserializeOwned;
use serde::Serialize;

// ---------------------------------------------------------------------------------------------
// Codec properties

/// The binary decoders on one frame. Whatever `for_each_binary` (the gateway's decoder)
/// accepts, `from_binary` (the clients') accepts too, with the same messages; each message's
/// own bytes decode alone to it (`raw` is what the gateway forwards); the messages re-encode
/// and decode to the same values. `extra` sees each message with its bytes.
pub fn check_binary<M>(frame: &[u8], extra: impl Fn(&M, &[u8]))
where
    M: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let mut parts = Vec::new();
    let each = protocol::for_each_binary::<M>(frame, DEFAULT_MAX_FRAME, |m, raw| {
        let alone: M = binary::from_slice(raw).expect("a message's own bytes decode alone");
        assert_eq!(alone, m, "a message's own bytes decode to it");
        extra(&m, raw);
        parts.push(m);
    });
    let whole = protocol::from_binary::<M>(frame, DEFAULT_MAX_FRAME);
    match (each, whole) {
        (Ok(()), Ok(msgs)) => {
            assert_eq!(msgs, parts, "for_each_binary and from_binary agree");
            let again = protocol::to_binary(&msgs).expect("decoded messages re-encode");
            let back = protocol::from_binary::<M>(&again, DEFAULT_MAX_FRAME)
                .expect("a re-encoded frame decodes");
            assert_eq!(back, msgs, "binary round trip");
        }
        (Err(a), Err(b)) => {
            let _ = (a.code(), b.code());
        }
        (a, b) => panic!("for_each_binary says {a:?}, from_binary says {b:?}"),
    }
    // The streaming decoder (a frame at the start of a buffer).
    match protocol::decode_binary::<M>(frame, DEFAULT_MAX_FRAME) {
        Ok((msgs, used)) => {
            assert!(used <= frame.len());
            let exact = protocol::from_binary::<M>(&frame[..used], DEFAULT_MAX_FRAME)
                .expect("the frame decode_binary found decodes alone");
            assert_eq!(exact, msgs);
        }
        Err(e) => {
            let _ = e.code();
        }
    }
}

/// What the gateway does with a client's binary publish: it forwards the publish's own
/// bytes with the first byte replaced by the server's tag (`hub.rs`). The result, framed,
/// must decode at a client to exactly the publish the gateway decoded and routed.
pub fn check_forwarded_publish(msg: &ClientMsg, raw: &[u8]) {
    let ClientMsg::Publish(p) = msg else { return };
    let mut frame = Vec::new();
    let start = protocol::begin_frame(&mut frame);
    binary::write_varint(&mut frame, 1);
    frame.push(protocol::SERVER_MESSAGE_TAG);
    frame.extend_from_slice(&raw[1..]);
    protocol::finish_frame(&mut frame, start);
    let got = protocol::from_binary::<ServerMsg>(&frame, DEFAULT_MAX_FRAME);
    assert_eq!(
        got,
        Ok(vec![ServerMsg::Message(p.clone())]),
        "a forwarded publish reaches clients as it was routed"
    );
}

/// The JSON decoder on one frame: what it accepts re-encodes (as JSON and as binary, for
/// subscribers of the other encoding) and decodes to the same messages.
pub fn check_json<M>(frame: &[u8])
where
    M: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let Ok(msgs) = protocol::from_json::<M>(frame, DEFAULT_MAX_FRAME) else {
        return;
    };
    let again = protocol::to_json(&msgs).expect("decoded JSON frames re-encode");
    let back =
        protocol::from_json::<M>(&again, DEFAULT_MAX_FRAME).expect("re-encoded JSON decodes");
    assert_eq!(back, msgs, "JSON round trip");
    let bin = protocol::to_binary(&msgs).expect("decoded JSON frames encode as binary");
    let back = protocol::from_binary::<M>(&bin, DEFAULT_MAX_FRAME).expect("binary form decodes");
    assert_eq!(back, msgs, "JSON -> binary round trip");
}

// ---------------------------------------------------------------------------------------------
// Generators

/// Topics: mostly a few that overlap as prefixes, sometimes invalid ones, rarely anything.
pub fn topic(u: &mut Unstructured) -> Result<String> {
    const TOPICS: &[&str] = &[
        "/a",
        "/a/b",
        "/a/b/c",
        "/b",
        "/zeek/event",
        "/",
        "bad<$>",
        "",
        "/a/",
    ];
    if u.ratio(1u8, 16u8)? {
        return u.arbitrary();
    }
    Ok((*u.choose(TOPICS)?).to_owned())
}

pub fn topics(u: &mut Unstructured) -> Result<Vec<String>> {
    let n = u.int_in_range(0..=3)?;
    (0..n).map(|_| topic(u)).collect()
}

/// A name from `names`, rarely anything.
pub fn name(u: &mut Unstructured, names: &[&str]) -> Result<String> {
    if u.ratio(1u8, 32u8)? {
        return u.arbitrary();
    }
    Ok((*u.choose(names)?).to_owned())
}

pub const STORES: &[&str] = &["s", "t", "u", ""];
pub const NAMESPACES: &[&str] = &["n", "m", "p", "", "x y"];
pub const TUPLES: &[&str] = &["k", "k1", "k2", "*", "k?"];

fn string(u: &mut Unstructured) -> Result<Data> {
    Ok(match u.int_in_range(0..=3)? {
        0 => Data::string("k"),
        1 => Data::string("v"),
        2 => Data::String(Vec::new()),
        _ => Data::String(u.arbitrary()?),
    })
}

/// A value of any type; containers nest at most `depth` levels.
pub fn data(u: &mut Unstructured, depth: u8) -> Result<Data> {
    let top = if depth == 0 { 12 } else { 15 };
    Ok(match u.int_in_range(0..=top)? {
        0 => Data::None,
        1 => Data::Boolean(u.arbitrary()?),
        2 => Data::Count(u.int_in_range(0..=3)?),
        3 => Data::Count(u.arbitrary()?),
        4 => Data::Integer(u.arbitrary()?),
        5 => Data::Real(f64::from_bits(u.arbitrary()?)),
        6 | 7 => string(u)?,
        8 => Data::Address(Address(u.arbitrary()?)),
        9 => match Subnet::new(Address(u.arbitrary()?), u.arbitrary()?) {
            Ok(s) => Data::Subnet(s),
            Err(_) => Data::None,
        },
        10 => Data::Port(Port {
            number: u.arbitrary()?,
            protocol: *u.choose(&[
                Protocol::Unknown,
                Protocol::Tcp,
                Protocol::Udp,
                Protocol::Icmp,
            ])?,
        }),
        11 => Data::Timestamp(Timestamp(u.arbitrary()?)),
        12 => Data::Timespan(Timespan(u.arbitrary()?)),
        13 => Data::Vector(items(u, depth)?),
        14 => Data::Set(items(u, depth)?.into_iter().collect()),
        _ => {
            let keys = items(u, depth)?;
            let mut t = broker_wasm::Table::new();
            for k in keys {
                t.insert(k, data(u, depth - 1)?);
            }
            Data::Table(t)
        }
    })
}

fn items(u: &mut Unstructured, depth: u8) -> Result<Vec<Data>> {
    let n = u.int_in_range(0..=3)?;
    (0..n).map(|_| data(u, depth - 1)).collect()
}

/// A store key: mostly one of a few, so operations meet the same entries.
pub fn key(u: &mut Unstructured) -> Result<Data> {
    if u.ratio(1u8, 8u8)? {
        return data(u, 1);
    }
    Ok(match u.int_in_range(0..=3)? {
        0 => Data::string("k"),
        1 => Data::string("k2"),
        2 => Data::Count(1),
        _ => Data::Integer(-1),
    })
}

fn expiry(u: &mut Unstructured) -> Result<Option<Timespan>> {
    Ok(match u.int_in_range(0..=3)? {
        0 | 1 => None,
        2 => Some(Timespan(u.int_in_range(-1..=1_000_000)?)),
        _ => Some(Timespan(u.arbitrary()?)),
    })
}

pub fn store_op(u: &mut Unstructured) -> Result<StoreOp> {
    let k = key(u)?;
    Ok(match u.int_in_range(0..=15)? {
        0 => StoreOp::Put {
            key: k,
            value: data(u, 2)?,
            expiry: expiry(u)?,
        },
        1 => StoreOp::PutUnique {
            key: k,
            value: data(u, 2)?,
            expiry: expiry(u)?,
        },
        2 => StoreOp::Erase { key: k },
        3 => StoreOp::Clear,
        4 => StoreOp::Increment {
            key: k,
            amount: data(u, 0)?,
            expiry: expiry(u)?,
        },
        5 => StoreOp::Decrement {
            key: k,
            amount: data(u, 0)?,
            expiry: expiry(u)?,
        },
        6 => StoreOp::Append {
            key: k,
            value: data(u, 1)?,
            expiry: expiry(u)?,
        },
        7 => StoreOp::InsertInto {
            key: k,
            index: data(u, 1)?,
            value: if u.arbitrary()? {
                Some(data(u, 1)?)
            } else {
                None
            },
            expiry: expiry(u)?,
        },
        8 => StoreOp::RemoveFrom {
            key: k,
            index: data(u, 1)?,
            expiry: expiry(u)?,
        },
        9 => StoreOp::Push {
            key: k,
            value: data(u, 1)?,
            expiry: expiry(u)?,
        },
        10 => StoreOp::Pop {
            key: k,
            expiry: expiry(u)?,
        },
        11 => StoreOp::Get { key: k },
        12 => StoreOp::GetIndexFromValue {
            key: k,
            index: data(u, 1)?,
        },
        13 => StoreOp::Exists { key: k },
        14 => StoreOp::Keys,
        _ => StoreOp::AwaitIdle,
    })
}

fn wait(u: &mut Unstructured) -> Result<Wait> {
    Ok(match u.int_in_range(0..=3)? {
        0 | 1 => Wait::NoWait,
        2 => Wait::Timeout(Timespan(u.int_in_range(-1..=50_000_000)?)),
        _ => Wait::Forever,
    })
}

pub fn namespace_op(u: &mut Unstructured) -> Result<NamespaceOp> {
    let ns = name(u, NAMESPACES)?;
    Ok(match u.int_in_range(0..=15)? {
        0 | 1 => NamespaceOp::Create {
            name: ns,
            // Levels 0..=5 are valid; odd ones persist (a file in the data directory).
            level: u.int_in_range(0..=6)?,
            groups: if u.arbitrary()? {
                vec!["g".into()]
            } else {
                Vec::new()
            },
        },
        2 => NamespaceOp::Attach { name: ns },
        3 => NamespaceOp::Detach { name: ns },
        4 => NamespaceOp::Delete { name: ns },
        5 => NamespaceOp::Query { name: ns },
        6 => NamespaceOp::List,
        7 | 8 => NamespaceOp::Put {
            ns,
            key: name(u, TUPLES)?,
            value: data(u, 1)?,
        },
        9 => NamespaceOp::Read {
            ns,
            key: name(u, TUPLES)?,
            index: u.int_in_range(0..=3)?,
            wait: wait(u)?,
            capacity: if u.arbitrary()? {
                Some(u.int_in_range(0..=8)?)
            } else {
                None
            },
            partial: u.arbitrary()?,
        },
        10 => NamespaceOp::Get {
            ns,
            key: name(u, TUPLES)?,
            wait: wait(u)?,
            capacity: if u.arbitrary()? {
                Some(u.int_in_range(0..=8)?)
            } else {
                None
            },
            partial: u.arbitrary()?,
        },
        11 => NamespaceOp::Remove {
            ns,
            key: name(u, TUPLES)?,
        },
        12 => NamespaceOp::Move {
            from: ns,
            key: name(u, TUPLES)?,
            to: name(u, NAMESPACES)?,
        },
        13 => NamespaceOp::TestKey {
            ns,
            key: name(u, TUPLES)?,
        },
        14 => NamespaceOp::Directory {
            ns,
            pattern: name(u, TUPLES)?,
            limit: u.int_in_range(0..=4)?,
        },
        _ => {
            if u.arbitrary()? {
                NamespaceOp::Iterate {
                    ns,
                    pattern: name(u, TUPLES)?,
                    after: if u.arbitrary()? {
                        Some(name(u, TUPLES)?)
                    } else {
                        None
                    },
                    limit: u.int_in_range(0..=4)?,
                }
            } else {
                NamespaceOp::Restore {
                    ns,
                    key: name(u, TUPLES)?,
                    value: data(u, 1)?,
                }
            }
        }
    })
}

/// A request. Runtime peering (`Peer`) is left out: it would reach for the network.
pub fn request(u: &mut Unstructured) -> Result<Request> {
    Ok(match u.int_in_range(0..=11)? {
        0 => Request::AttachMaster {
            store: name(u, STORES)?,
            backend: if u.ratio(1u8, 4u8)? {
                Backend::Sqlite
            } else {
                Backend::Memory
            },
            options: Data::None,
        },
        1 => Request::AttachClone {
            store: name(u, STORES)?,
        },
        2 => Request::DetachClone {
            store: name(u, STORES)?,
        },
        3..=5 => Request::Store {
            store: name(u, STORES)?,
            op: store_op(u)?,
        },
        6..=8 => Request::Namespace(namespace_op(u)?),
        9 => Request::Unpeer {
            host: "127.0.0.1".into(),
            port: u.arbitrary()?,
        },
        10 => u.choose(&[Request::Peers, Request::PeerSubscriptions])?.clone(),
        _ => Request::Stores,
    })
}

/// Request ids: small, so cancellations and responses meet pending requests.
pub fn request_id(u: &mut Unstructured) -> Result<u64> {
    if u.ratio(1u8, 16u8)? {
        return u.arbitrary();
    }
    u.int_in_range(0..=16)
}

/// A message a client sends (after its hello).
pub fn client_msg(u: &mut Unstructured) -> Result<ClientMsg> {
    Ok(match u.int_in_range(0..=12)? {
        0 => ClientMsg::Hello(Hello {
            client: "again".into(),
            token: None,
            statuses: u.arbitrary()?,
        }),
        1 | 2 => ClientMsg::Subscribe { topics: topics(u)? },
        3 => ClientMsg::Unsubscribe { topics: topics(u)? },
        4 | 5 => ClientMsg::Publish(Publish {
            topic: topic(u)?,
            data: data(u, 2)?,
        }),
        6..=9 => ClientMsg::Request {
            id: request_id(u)?,
            request: request(u)?,
        },
        10 => ClientMsg::Cancel { id: request_id(u)? },
        11 => {
            if u.arbitrary()? {
                ClientMsg::Ping {
                    nonce: u.arbitrary()?,
                }
            } else {
                ClientMsg::Pong {
                    nonce: u.arbitrary()?,
                }
            }
        }
        _ => ClientMsg::Bye,
    })
}

fn node(u: &mut Unstructured) -> Result<NodeId> {
    Ok(NodeId([u.int_in_range(0..=2)?; 16]))
}

fn error_info(u: &mut Unstructured) -> Result<ErrorInfo> {
    Ok(ErrorInfo {
        code: *u.choose(ErrorCode::ALL)?,
        context: "x".into(),
    })
}

fn response(u: &mut Unstructured) -> Result<Result<Response, Failure>> {
    Ok(match u.int_in_range(0..=9)? {
        0 => Err(Failure::Broker(error_info(u)?)),
        1 => Err(Failure::Namespace {
            code: u.arbitrary()?,
            context: "x".into(),
        }),
        2 => Ok(Response::Done),
        3 => Ok(Response::Bool(u.arbitrary()?)),
        4 => Ok(Response::Value(data(u, 1)?)),
        5 => Ok(Response::Tuple {
            value: data(u, 1)?,
            size: u.arbitrary()?,
        }),
        6 => Ok(Response::Namespace(NamespaceInfo {
            name: name(u, NAMESPACES)?,
            level: u.arbitrary()?,
            groups: Vec::new(),
            refcount: u.arbitrary()?,
            marked_for_delete: u.arbitrary()?,
            tuple_names: u.arbitrary()?,
            total_values: u.arbitrary()?,
        })),
        7 => Ok(Response::Names {
            names: vec![name(u, TUPLES)?],
            done: u.arbitrary()?,
        }),
        8 => Ok(Response::Peers(Vec::new())),
        _ => Ok(Response::Topics(topics(u)?)),
    })
}

fn store_update(u: &mut Unstructured) -> Result<StoreUpdate> {
    let k = key(u)?;
    let expiry = if u.arbitrary()? {
        Some(Timestamp(u.arbitrary()?))
    } else {
        None
    };
    Ok(match u.int_in_range(0..=4)? {
        0 => StoreUpdate::Insert {
            key: k,
            value: data(u, 1)?,
            expiry,
        },
        1 => StoreUpdate::Update {
            key: k,
            old: data(u, 1)?,
            value: data(u, 1)?,
            expiry,
        },
        2 => StoreUpdate::Erase { key: k },
        3 => StoreUpdate::Expire { key: k },
        _ => StoreUpdate::Clear,
    })
}

/// Store sequence numbers: near each other, so updates follow snapshots (and gaps happen).
fn seq(u: &mut Unstructured) -> Result<u64> {
    if u.ratio(1u8, 16u8)? {
        return u.arbitrary();
    }
    u.int_in_range(0..=8)
}

/// A message a gateway sends.
pub fn server_msg(u: &mut Unstructured) -> Result<ServerMsg> {
    Ok(match u.int_in_range(0..=13)? {
        0 => ServerMsg::Welcome(Welcome {
            endpoint: node(u)?,
            version: "v".into(),
            max_frame: u.arbitrary()?,
        }),
        1 | 2 => ServerMsg::Message(Publish {
            topic: topic(u)?,
            data: data(u, 1)?,
        }),
        3 => ServerMsg::Status(Status {
            code: *u.choose(StatusCode::ALL)?,
            endpoint: if u.arbitrary()? {
                Some(EndpointInfo {
                    node: Some(node(u)?),
                    network: Some(NetworkInfo {
                        address: "::1".into(),
                        port: u.arbitrary()?,
                    }),
                })
            } else {
                None
            },
            message: "m".into(),
        }),
        4 => ServerMsg::Error(error_info(u)?),
        5 | 6 => ServerMsg::Response {
            id: request_id(u)?,
            result: response(u)?,
        },
        7 | 8 => {
            let n = u.int_in_range(0..=3)?;
            let mut entries = Vec::new();
            for _ in 0..n {
                entries.push(StoreEntry {
                    key: key(u)?,
                    value: data(u, 1)?,
                    expiry: if u.arbitrary()? {
                        Some(Timestamp(u.arbitrary()?))
                    } else {
                        None
                    },
                });
            }
            ServerMsg::Snapshot {
                store: name(u, STORES)?,
                master: node(u)?,
                seq: seq(u)?,
                entries,
                more: u.ratio(1u8, 4u8)?,
            }
        }
        9 | 10 => ServerMsg::StoreUpdate {
            store: name(u, STORES)?,
            seq: seq(u)?,
            update: store_update(u)?,
        },
        11 => ServerMsg::StoreMaster {
            store: name(u, STORES)?,
            reachable: u.arbitrary()?,
        },
        12 => {
            if u.arbitrary()? {
                ServerMsg::Ping {
                    nonce: u.arbitrary()?,
                }
            } else {
                ServerMsg::Pong {
                    nonce: u.arbitrary()?,
                }
            }
        }
        _ => ServerMsg::Bye,
    })
}

/// A frame of 1..=4 messages from `gen`, or (one time in eight) arbitrary bytes.
pub fn frame<M: Serialize>(
    u: &mut Unstructured,
    encoding: protocol::Encoding,
    gen: impl Fn(&mut Unstructured) -> Result<M>,
) -> Result<Vec<u8>> {
    if u.ratio(1u8, 8u8)? {
        return u.arbitrary();
    }
    let n = u.int_in_range(1..=4)?;
    let msgs = (0..n).map(|_| gen(u)).collect::<Result<Vec<M>>>()?;
    // JSON cannot carry every value (a NaN): then the frame goes out in binary, which a JSON
    // session rejects as malformed; that path is worth exercising too.
    Ok(encoding
        .encode(&msgs)
        .unwrap_or_else(|_| protocol::to_binary(&msgs).expect("binary encodes everything")))
}
