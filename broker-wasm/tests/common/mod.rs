//! proptest strategies for values and frames, shared by the round-trip and fuzz tests.
#![allow(dead_code)]

use broker_wasm::data::{Address, Data, Port, Protocol, Set, Subnet, Table, Timespan, Timestamp};
use broker_wasm::protocol::*;
use broker_wasm::{ErrorCode, NodeId, StatusCode};
use proptest::prelude::*;

pub fn address() -> impl Strategy<Value = Address> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|b| Address::from(std::net::Ipv4Addr::from(b))),
        any::<[u8; 16]>().prop_map(Address),
    ]
}

/// Any value; `finite_reals` keeps NaN and infinities out (JSON cannot carry them).
pub fn data(finite_reals: bool) -> impl Strategy<Value = Data> {
    let real = if finite_reals {
        prop_oneof![
            any::<f64>().prop_filter("finite", |r| r.is_finite()),
            Just(-0.0),
            Just(f64::MAX),
            Just(f64::MIN_POSITIVE)
        ]
        .boxed()
    } else {
        any::<f64>().boxed()
    };
    let leaf = prop_oneof![
        Just(Data::None),
        any::<bool>().prop_map(Data::Boolean),
        prop_oneof![any::<u64>(), Just(u64::MAX), Just(0)].prop_map(Data::Count),
        prop_oneof![any::<i64>(), Just(i64::MIN), Just(i64::MAX)].prop_map(Data::Integer),
        real.prop_map(Data::Real),
        ".{0,12}".prop_map(Data::string),
        proptest::collection::vec(any::<u8>(), 0..12).prop_map(Data::String),
        address().prop_map(Data::Address),
        (address(), 0u8..=128).prop_map(|(a, l)| {
            let l = if a.is_v4() { l % 33 } else { l };
            Data::Subnet(Subnet::new(a, l).unwrap())
        }),
        (any::<u16>(), 0u8..4)
            .prop_map(|(n, p)| Data::Port(Port::new(n, Protocol::from_code(p).unwrap()))),
        any::<i64>().prop_map(|t| Data::Timestamp(Timestamp(t))),
        any::<i64>().prop_map(|t| Data::Timespan(Timespan(t))),
        "[A-Za-z:_]{1,12}".prop_map(Data::Enum),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Data::Vector),
            proptest::collection::btree_set(inner.clone(), 0..6).prop_map(|s: Set| Data::Set(s)),
            proptest::collection::btree_map(inner.clone(), inner, 0..6)
                .prop_map(|t: Table| Data::Table(t)),
        ]
    })
}

pub fn topic() -> impl Strategy<Value = String> {
    "(/[a-z0-9]{0,6}){0,4}"
}

fn node_id() -> impl Strategy<Value = NodeId> {
    any::<[u8; 16]>().prop_map(NodeId::from_random)
}

fn expiry() -> impl Strategy<Value = Option<Timespan>> {
    proptest::option::of(any::<i64>().prop_map(Timespan))
}

fn endpoint_info() -> impl Strategy<Value = EndpointInfo> {
    (
        proptest::option::of(node_id()),
        proptest::option::of(
            ("[0-9.]{1,15}", any::<u16>())
                .prop_map(|(address, port)| NetworkInfo { address, port }),
        ),
    )
        .prop_map(|(node, network)| EndpointInfo { node, network })
}

fn error_info() -> impl Strategy<Value = ErrorInfo> {
    (proptest::sample::select(ErrorCode::ALL), ".{0,20}")
        .prop_map(|(code, context)| ErrorInfo { code, context })
}

fn wait() -> impl Strategy<Value = Wait> {
    prop_oneof![
        Just(Wait::NoWait),
        Just(Wait::Forever),
        any::<i64>().prop_map(|t| Wait::Timeout(Timespan(t)))
    ]
}

pub fn store_op(finite: bool) -> impl Strategy<Value = StoreOp> {
    let d = move || data(finite);
    prop_oneof![
        (d(), d(), expiry()).prop_map(|(key, value, expiry)| StoreOp::Put { key, value, expiry }),
        (d(), d(), expiry()).prop_map(|(key, value, expiry)| StoreOp::PutUnique {
            key,
            value,
            expiry
        }),
        d().prop_map(|key| StoreOp::Erase { key }),
        Just(StoreOp::Clear),
        (d(), d(), expiry()).prop_map(|(key, amount, expiry)| StoreOp::Increment {
            key,
            amount,
            expiry
        }),
        (d(), d(), expiry()).prop_map(|(key, amount, expiry)| StoreOp::Decrement {
            key,
            amount,
            expiry
        }),
        (d(), d(), expiry()).prop_map(|(key, value, expiry)| StoreOp::Append {
            key,
            value,
            expiry
        }),
        (d(), d(), proptest::option::of(d()), expiry()).prop_map(|(key, index, value, expiry)| {
            StoreOp::InsertInto {
                key,
                index,
                value,
                expiry,
            }
        }),
        (d(), d(), expiry()).prop_map(|(key, index, expiry)| StoreOp::RemoveFrom {
            key,
            index,
            expiry
        }),
        (d(), d(), expiry()).prop_map(|(key, value, expiry)| StoreOp::Push { key, value, expiry }),
        (d(), expiry()).prop_map(|(key, expiry)| StoreOp::Pop { key, expiry }),
        d().prop_map(|key| StoreOp::Get { key }),
        (d(), d()).prop_map(|(key, index)| StoreOp::GetIndexFromValue { key, index }),
        d().prop_map(|key| StoreOp::Exists { key }),
        Just(StoreOp::Keys),
        Just(StoreOp::AwaitIdle),
    ]
}

pub fn namespace_op(finite: bool) -> impl Strategy<Value = NamespaceOp> {
    let s = || ".{0,10}";
    prop_oneof![
        Just(NamespaceOp::List),
        (s(), any::<u8>(), proptest::collection::vec(s(), 0..3)).prop_map(
            |(name, level, groups)| NamespaceOp::Create {
                name,
                level,
                groups
            }
        ),
        s().prop_map(|name| NamespaceOp::Attach { name }),
        s().prop_map(|name| NamespaceOp::Detach { name }),
        s().prop_map(|name| NamespaceOp::Delete { name }),
        s().prop_map(|name| NamespaceOp::Query { name }),
        (s(), s(), data(finite)).prop_map(|(ns, key, value)| NamespaceOp::Put { ns, key, value }),
        (
            s(),
            s(),
            any::<u64>(),
            wait(),
            proptest::option::of(any::<u64>()),
            any::<bool>()
        )
            .prop_map(
                |(ns, key, index, wait, capacity, partial)| NamespaceOp::Read {
                    ns,
                    key,
                    index,
                    wait,
                    capacity,
                    partial
                }
            ),
        (
            s(),
            s(),
            wait(),
            proptest::option::of(any::<u64>()),
            any::<bool>()
        )
            .prop_map(|(ns, key, wait, capacity, partial)| NamespaceOp::Get {
                ns,
                key,
                wait,
                capacity,
                partial
            }),
        (s(), s()).prop_map(|(ns, key)| NamespaceOp::Remove { ns, key }),
        (s(), s(), s()).prop_map(|(from, key, to)| NamespaceOp::Move { from, key, to }),
        (s(), s()).prop_map(|(ns, key)| NamespaceOp::TestKey { ns, key }),
        (s(), s(), data(finite)).prop_map(|(ns, key, value)| NamespaceOp::Restore {
            ns,
            key,
            value
        }),
        (s(), s(), any::<u64>()).prop_map(|(ns, pattern, limit)| NamespaceOp::Directory {
            ns,
            pattern,
            limit
        }),
        (s(), s(), proptest::option::of(s()), any::<u64>()).prop_map(
            |(ns, pattern, after, limit)| NamespaceOp::Iterate {
                ns,
                pattern,
                after,
                limit
            }
        ),
    ]
}

pub fn request(finite: bool) -> impl Strategy<Value = Request> {
    prop_oneof![
        (topic(), any::<bool>(), data(finite)).prop_map(|(store, mem, options)| {
            Request::AttachMaster {
                store,
                backend: if mem {
                    Backend::Memory
                } else {
                    Backend::Sqlite
                },
                options,
            }
        }),
        topic().prop_map(|store| Request::AttachClone { store }),
        topic().prop_map(|store| Request::DetachClone { store }),
        (topic(), store_op(finite)).prop_map(|(store, op)| Request::Store { store, op }),
        namespace_op(finite).prop_map(Request::Namespace),
        ("[a-z.]{1,10}", any::<u16>(), expiry()).prop_map(|(host, port, retry)| Request::Peer {
            host,
            port,
            retry
        }),
        ("[a-z.]{1,10}", any::<u16>()).prop_map(|(host, port)| Request::Unpeer { host, port }),
        Just(Request::Peers),
        Just(Request::PeerSubscriptions),
        Just(Request::Stores),
    ]
}

pub fn client_msg(finite: bool) -> impl Strategy<Value = ClientMsg> {
    prop_oneof![
        (".{0,10}", proptest::option::of(".{0,10}"), any::<bool>()).prop_map(
            |(client, token, statuses)| ClientMsg::Hello(Hello {
                client,
                token,
                statuses
            })
        ),
        proptest::collection::vec(topic(), 0..4).prop_map(|topics| ClientMsg::Subscribe { topics }),
        proptest::collection::vec(topic(), 0..4)
            .prop_map(|topics| ClientMsg::Unsubscribe { topics }),
        (topic(), data(finite))
            .prop_map(|(topic, data)| ClientMsg::Publish(Publish { topic, data })),
        (any::<u64>(), request(finite))
            .prop_map(|(id, request)| ClientMsg::Request { id, request }),
        any::<u64>().prop_map(|id| ClientMsg::Cancel { id }),
        any::<u64>().prop_map(|nonce| ClientMsg::Ping { nonce }),
        any::<u64>().prop_map(|nonce| ClientMsg::Pong { nonce }),
        Just(ClientMsg::Bye),
    ]
}

fn store_update(finite: bool) -> impl Strategy<Value = StoreUpdate> {
    let d = move || data(finite);
    let exp = || proptest::option::of(any::<i64>().prop_map(Timestamp));
    prop_oneof![
        (d(), d(), exp()).prop_map(|(key, value, expiry)| StoreUpdate::Insert {
            key,
            value,
            expiry
        }),
        (d(), d(), d(), exp()).prop_map(|(key, old, value, expiry)| StoreUpdate::Update {
            key,
            old,
            value,
            expiry
        }),
        d().prop_map(|key| StoreUpdate::Erase { key }),
        d().prop_map(|key| StoreUpdate::Expire { key }),
        Just(StoreUpdate::Clear),
    ]
}

fn response(finite: bool) -> impl Strategy<Value = Response> {
    let s = || ".{0,8}";
    prop_oneof![
        Just(Response::Done),
        any::<bool>().prop_map(Response::Bool),
        data(finite).prop_map(Response::Value),
        (data(finite), any::<u64>()).prop_map(|(value, size)| Response::Tuple { value, size }),
        (
            s(),
            any::<u8>(),
            proptest::collection::vec(s(), 0..3),
            any::<u64>(),
            any::<bool>(),
            any::<u64>(),
            any::<u64>()
        )
            .prop_map(
                |(name, level, groups, refcount, marked_for_delete, tuple_names, total_values)| {
                    Response::Namespace(NamespaceInfo {
                        name,
                        level,
                        groups,
                        refcount,
                        marked_for_delete,
                        tuple_names,
                        total_values,
                    })
                }
            ),
        (proptest::collection::vec(s(), 0..4), any::<bool>())
            .prop_map(|(names, done)| Response::Names { names, done }),
        proptest::collection::vec(
            (endpoint_info(), 0u8..6, any::<bool>()).prop_map(|(endpoint, st, outbound)| {
                PeerInfo {
                    endpoint,
                    status: [
                        PeerStatus::Initialized,
                        PeerStatus::Connecting,
                        PeerStatus::Connected,
                        PeerStatus::Peered,
                        PeerStatus::Disconnected,
                        PeerStatus::Reconnecting,
                    ][st as usize],
                    outbound,
                }
            }),
            0..3
        )
        .prop_map(Response::Peers),
        proptest::collection::vec(topic(), 0..4).prop_map(Response::Topics),
    ]
}

pub fn server_msg(finite: bool) -> impl Strategy<Value = ServerMsg> {
    let failure = prop_oneof![
        error_info().prop_map(Failure::Broker),
        (any::<i32>(), ".{0,10}").prop_map(|(code, context)| Failure::Namespace { code, context }),
    ];
    prop_oneof![
        (node_id(), ".{0,8}", any::<u64>()).prop_map(|(endpoint, version, max_frame)| {
            ServerMsg::Welcome(Welcome {
                endpoint,
                version,
                max_frame,
            })
        }),
        (topic(), data(finite))
            .prop_map(|(topic, data)| ServerMsg::Message(Publish { topic, data })),
        (
            proptest::sample::select(StatusCode::ALL),
            proptest::option::of(endpoint_info()),
            ".{0,10}"
        )
            .prop_map(|(code, endpoint, message)| ServerMsg::Status(Status {
                code,
                endpoint,
                message
            })),
        error_info().prop_map(ServerMsg::Error),
        (
            any::<u64>(),
            prop_oneof![response(finite).prop_map(Ok), failure.prop_map(Err)]
        )
            .prop_map(|(id, result)| ServerMsg::Response { id, result }),
        (
            topic(),
            node_id(),
            any::<u64>(),
            proptest::collection::vec(
                (
                    data(finite),
                    data(finite),
                    proptest::option::of(any::<i64>().prop_map(Timestamp))
                )
                    .prop_map(|(key, value, expiry)| StoreEntry {
                        key,
                        value,
                        expiry
                    }),
                0..4
            )
        )
            .prop_map(|(store, master, seq, entries)| ServerMsg::Snapshot {
                more: seq % 2 == 0,
                store,
                master,
                seq,
                entries
            }),
        (topic(), any::<u64>(), store_update(finite))
            .prop_map(|(store, seq, update)| ServerMsg::StoreUpdate { store, seq, update }),
        (topic(), any::<bool>())
            .prop_map(|(store, reachable)| ServerMsg::StoreMaster { store, reachable }),
        any::<u64>().prop_map(|nonce| ServerMsg::Ping { nonce }),
        any::<u64>().prop_map(|nonce| ServerMsg::Pong { nonce }),
        Just(ServerMsg::Bye),
    ]
}

pub fn peer_msg(finite: bool) -> impl Strategy<Value = PeerMsg> {
    prop_oneof![
        (node_id(), ".{0,8}").prop_map(|(endpoint, version)| PeerMsg::Hello { endpoint, version }),
        (
            node_id(),
            any::<u64>(),
            proptest::collection::vec(node_id(), 0..3),
            proptest::collection::vec(topic(), 0..4)
        )
            .prop_map(|(origin, version, peers, topics)| PeerMsg::Advert {
                origin,
                version,
                peers,
                masters: topics.iter().take(1).cloned().collect(),
                uplinks: topics
                    .iter()
                    .take(1)
                    .map(|t| broker_wasm::protocol::UplinkAdvert {
                        zeek: format!("{t}-zeek"),
                        subscribe: vec![t.clone()],
                        publish: topics.clone(),
                    })
                    .collect(),
                topics
            }),
        (node_id(), any::<u64>(), any::<u8>(), topic(), data(finite)).prop_map(
            |(origin, seq, ttl, topic, data)| PeerMsg::Forward {
                origin,
                seq,
                ttl,
                zeek: (ttl % 2 == 1).then(|| format!("{topic}-zeek")),
                topic,
                data
            }
        ),
        any::<u64>().prop_map(|nonce| PeerMsg::Ping { nonce }),
        any::<u64>().prop_map(|nonce| PeerMsg::Pong { nonce }),
        any::<u64>().prop_map(|token| PeerMsg::Bye { token }),
        any::<u64>().prop_map(|token| PeerMsg::ByeAck { token }),
        topic().prop_map(|store| PeerMsg::StoreAttach { store }),
        topic().prop_map(|store| PeerMsg::StoreDetach { store }),
        topic().prop_map(|store| PeerMsg::StoreMissing { store }),
        (topic(), node_id(), any::<u64>(), data(finite), data(finite)).prop_map(
            |(store, master, seq, key, value)| PeerMsg::StoreSnapshot {
                store,
                master,
                seq,
                entries: vec![StoreEntry {
                    key,
                    value,
                    expiry: None
                }],
                more: seq % 2 == 1,
            }
        ),
        (topic(), any::<u64>(), store_update(finite))
            .prop_map(|(store, seq, update)| PeerMsg::StoreUpdate { store, seq, update }),
        (topic(), any::<bool>())
            .prop_map(|(store, reachable)| PeerMsg::StoreMaster { store, reachable }),
        (any::<u64>(), topic(), store_op(finite))
            .prop_map(|(id, store, op)| PeerMsg::StoreRequest { id, store, op }),
        (any::<u64>(), response(finite))
            .prop_map(|(id, r)| PeerMsg::StoreResponse { id, result: Ok(r) }),
        Just(PeerMsg::Moved),
    ]
}
