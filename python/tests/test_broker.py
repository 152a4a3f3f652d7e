"""The `broker` module against itself: two in-process endpoints (ZB-02..09, ZB-20..23, ZB-34)."""

import datetime
import ipaddress
import time

import broker

T = 5.0


def pair():
    a, b = broker.Endpoint(), broker.Endpoint()
    return a, b


def test_zb03_peer_publish_subscribe_poll_and_batches():
    with broker.Endpoint() as a, broker.Endpoint() as b, a.make_subscriber("/test") as s:
        port = a.listen("127.0.0.1", 0)
        assert b.peer("127.0.0.1", port, 1.0)
        assert b.await_peer(a.node_id(), T)
        assert b.peer_subscriptions() == ["/test"]
        b.publish("/test/1", ())
        b.publish_batch(("/test/2", (1, 2, 3)), ("/test/3", ("x",)))
        assert s.get(3, T) == [("/test/1", ()), ("/test/2", (1, 2, 3)), ("/test/3", ("x",))]
        assert s.available() == 0
        assert s.get(0.05) is None
        assert s.poll() == []


def test_zb34_every_type_round_trips():
    value = (
        None,
        True,
        broker.Count(2**64 - 1),
        -(2**63),
        1.5,
        "text",
        ipaddress.ip_address("2001:db8::1"),
        ipaddress.ip_network("10.0.0.0/8"),
        broker.Port(53, broker.Port.UDP),
        datetime.datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=datetime.timezone.utc),
        datetime.timedelta(seconds=-1, microseconds=5),
        broker.Enum("Log::WRITER_ASCII"),
        {1, 2},
        {(1, "a"): {"nested": (broker.Count(1),)}},
    )
    with broker.Endpoint() as a, broker.Endpoint() as b, a.make_subscriber("/v") as s:
        port = a.listen("", 0)
        assert b.peer("", port, 1.0)
        b.publish("/v", value)
        topic, got = s.get(T)
        assert topic == "/v"
        assert got == value


def test_zb20_statuses_and_errors():
    with broker.Endpoint() as a, broker.Endpoint() as b, b.make_status_subscriber(True) as ss:
        port = a.listen("", 0)
        assert b.peer("", port, 1.0)
        first, second = ss.get(T), ss.get(T)
        assert isinstance(first, broker.Status) and first.code() == broker.SC.EndpointDiscovered
        assert second.code() == broker.SC.PeerAdded
        assert second.context().node_id() == a.node_id()
        assert b.peer("", 1, 0) is False
        err = ss.get(T)
        assert isinstance(err, broker.Error) and err.code() == broker.EC.PeerUnavailable


def test_zb34_zeek_events_and_safe_subscribers():
    with broker.Endpoint() as a, broker.Endpoint() as b, a.make_safe_subscriber("/z") as s:
        port = a.listen("", 0)
        assert b.peer("", port, 1.0)
        b.publish("/z", broker.zeek.Event("ping", broker.Count(1), {"k": "v"}))
        _, data = s.get(T)
        ev = broker.zeek.Event(data)
        assert ev.name() == "ping"
        assert ev.args()[0] == broker.Count(1)
        try:
            ev.args()[1]["k"] = "w"
            raise AssertionError("a safe subscriber's table must be read-only")
        except TypeError:
            pass


def test_zb16_fd_is_readable_while_messages_wait():
    import select

    with broker.Endpoint() as a, broker.Endpoint() as b, a.make_subscriber("/fd") as s:
        fd = s.fd()
        assert select.select([fd], [], [], 0) == ([], [], [])
        assert b.peer("127.0.0.1", a.listen("127.0.0.1", 0), 1.0)
        b.publish("/fd/1", 1)
        b.publish("/fd/2", 2)
        r, _, _ = select.select([fd], [], [], T)
        assert r == [fd]
        assert s.get(T) == ("/fd/1", 1)
        deadline = time.monotonic() + T
        while s.available() < 1 and time.monotonic() < deadline:
            select.select([fd], [], [], 0.05)
        assert select.select([fd], [], [], 0)[0] == [fd]
        assert s.poll() == [("/fd/2", 2)]
        assert select.select([fd], [], [], 0) == ([], [], [])
        assert s.get(0.05) is None
        s.reset()


def test_zb13_await_peer_and_forwarding_across_a_line_of_four():
    eps = [broker.Endpoint() for _ in range(4)]
    subs = [e.make_subscriber("/line/") for e in eps]
    try:
        ports = [None] + [e.listen("127.0.0.1", 0) for e in eps[1:]]
        for i in range(3):
            assert eps[i].peer("127.0.0.1", ports[i + 1], 1.0)
        assert eps[0].await_peer(eps[3].node_id(), T)
        assert eps[3].await_peer(eps[0].node_id(), T)
        eps[0].publish("/line/a", "from 1")
        eps[3].publish("/line/b", "from 4")
        assert subs[3].get(T) == ("/line/a", "from 1")
        assert subs[0].get(T) == ("/line/b", "from 4")
        assert not eps[0].await_peer(broker.Endpoint().node_id(), 0.05)
    finally:
        for s in subs:
            s.reset()
        for e in eps:
            e.shutdown()


def test_zb34_timestamps_keep_nanoseconds_and_naive_datetimes_are_local_time():
    t = broker.Timestamp.from_ns(1_700_000_000_123_456_789)
    assert t.nanosecond == 789 and t.ns == 1_700_000_000_123_456_789
    assert broker.Data.to_py(broker.Data(t)).ns == t.ns
    naive = datetime.datetime(2024, 5, 1, 12, 0, 0)
    back = broker.Data.to_py(broker.Data(naive))
    assert back.timestamp() == naive.timestamp()
    span = broker.Timespan(1_234_567_891)
    assert broker.Data.to_py(broker.Data(span)).ns == 1_234_567_891
    assert broker.Timespan(1.5) == datetime.timedelta(seconds=1.5)
