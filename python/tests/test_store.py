"""Stores from Python (ZB-44..62): masters, clones on peers (also attached before the
peering), every operation, expiry, typed errors, and the SQLite backend."""

import time

import pytest

import broker

T = 10.0


def tri():
    """A master on ep0 and clones on ep1 and ep2, attached before the peerings exist."""
    ep0, ep1, ep2 = broker.Endpoint(), broker.Endpoint(), broker.Endpoint()
    m = ep0.attach_master("test", broker.Backend.Memory)
    c1, c2 = ep1.attach_clone("test"), ep2.attach_clone("test")
    port = ep0.listen("127.0.0.1", 0)
    assert ep1.peer("127.0.0.1", port) and ep2.peer("127.0.0.1", port)
    assert c1.await_idle(T) and c2.await_idle(T)
    return (ep0, ep1, ep2), m, c1, c2


def close(eps, *stores):
    for s in stores:
        s.reset()
    for e in eps:
        e.shutdown()


def test_zb44_master_operations_and_answers():
    with broker.Endpoint() as ep, ep.attach_master("ops", broker.Backend.Memory) as m:
        assert m.name() == "ops" and not m.is_clone()
        m.put("n", broker.Count(5))
        m.increment("n", broker.Count(2))
        m.decrement("n", broker.Count(1))
        assert m.get("n") == broker.Count(6)
        m.put("s", "b")
        m.append("s", "ar")
        m.put("set", {1, 2})
        m.insert_into("set", 3)
        m.remove_from("set", 1)
        m.put("t", {1: "A", "2": "C"})
        m.insert_into("t", 3, "D")
        m.remove_from("t", 1)
        m.put("v", (1, 2))
        m.push("v", 3)
        m.push("v", 4)
        m.pop("v")
        assert m.get("s") == "bar"
        assert m.get("set") == {2, 3}
        assert m.get("t") == {3: "D", "2": "C"}
        assert m.get("v") == (1, 2, 3)
        assert m.get_index_from_value("set", 2) is True
        assert m.get_index_from_value("t", 3) == "D"
        assert m.get_index_from_value("v", 1) == 2
        assert m.get_index_from_value("v", 10) is None
        assert m.put_unique("u", 1) is True and m.put_unique("u", 2) is False
        assert m.exists("u") and not m.exists("X") and m.get("X") is None
        assert m.keys() == {"n", "s", "set", "t", "v", "u"}
        m.erase("u")
        assert not m.exists("u")
        m.clear()
        assert m.keys() == set()
        assert m.await_idle(T)


def test_zb57_a_refused_write_raises_broker_error_with_its_code():
    with broker.Endpoint() as ep, ep.attach_master("typed", broker.Backend.Memory) as m:
        m.put("s", "text")
        with pytest.raises(broker.BrokerError) as e:
            m.increment("s", 1)
        assert e.value.code == broker.EC.TypeClash
        assert m.get("s") == "text"
        with pytest.raises(ValueError):
            m.put("k", 1, -1.0)


def test_zb56_expiry_in_seconds_or_timedelta():
    with broker.Endpoint() as ep, ep.attach_master("exp", broker.Backend.Memory) as m:
        m.put("short", 1, 0.05)
        m.put("span", 1, broker.Timespan(0.05))
        m.put("long", 1, 60)
        deadline = time.monotonic() + T
        while (m.exists("short") or m.exists("span")) and time.monotonic() < deadline:
            m.await_idle(0.05)
        assert not m.exists("short") and not m.exists("span") and m.exists("long")


def test_zb47_zb58_clones_attached_before_peering_see_every_write():
    eps, m, c1, c2 = tri()
    try:
        assert c1.is_clone() and repr(c1) == "Store('test', clone)"
        m.put("a", "A")
        c1.put("b", {"A", "B"})
        c2.put("c", {1: "x"})
        assert c2.put_unique("e", "first") is True
        assert c1.put_unique("e", "second") is False
        for s in (c1, c2, m):
            assert s.await_idle(T)
        for s in (m, c1, c2):
            assert s.get("a") == "A"
            assert s.get("b") == {"A", "B"}
            assert s.get("c") == {1: "x"}
            assert s.get("e") == "first"
            assert s.get_index_from_value("b", "A") is True
            assert s.get_index_from_value("c", 1) == "x"
            assert s.get_index_from_value("c", 2) is None
            assert s.keys() == {"a", "b", "c", "e"}
        c2.increment("n", 3)
        c1.push("v", 1)
        m.clear()
        for s in (c1, c2, m):
            assert s.await_idle(T)
        assert m.keys() == c1.keys() == c2.keys() == set()
    finally:
        close(eps, m, c1, c2)


def test_zb44_sqlite_master_keeps_its_data_across_endpoints(tmp_path):
    path = str(tmp_path / "kept.sqlite")
    with broker.Endpoint() as ep:
        m = ep.attach_master("kept", broker.Backend.SQLite, {"path": path})
        m.put("k", (1, "two", broker.Count(3)))
        assert m.await_idle(T)
        m.reset()
    with broker.Endpoint() as ep:
        m = ep.attach_master("kept", broker.Backend.SQLite, {"path": path})
        assert m.get("k") == (1, "two", broker.Count(3))
        m.reset()


def test_zb44_a_clone_of_a_store_with_a_master_elsewhere_cannot_become_master():
    with broker.Endpoint() as ep0, broker.Endpoint() as ep1:
        m = ep0.attach_master("one", broker.Backend.Memory)
        assert ep1.peer("127.0.0.1", ep0.listen("127.0.0.1", 0))
        c = ep1.attach_clone("one")
        assert c.await_idle(T)
        with pytest.raises(broker.BrokerError) as e:
            ep1.attach_master("one", broker.Backend.Memory)
        assert e.value.code == broker.EC.MasterExists
        c.reset()
        m.reset()
        with pytest.raises(RuntimeError):
            m.get("x")


def test_zb44_bad_backend_is_a_value_error():
    with broker.Endpoint() as ep:
        with pytest.raises(ValueError):
            ep.attach_master("x", 7)
