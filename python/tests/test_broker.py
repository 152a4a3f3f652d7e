"""The `broker` module against itself: two in-process endpoints (ZB-02..09, ZB-20..23, ZB-34)."""

import datetime
import ipaddress

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
